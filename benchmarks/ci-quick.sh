#!/usr/bin/env bash
# CI smoke run of the load tool (< 60 s on 2 cores): both systems once, default scenario, quick sizes. It checks that
# the tool and both hosts work end to end; it asserts no timing.
set -euo pipefail
cd "$(dirname "$0")/.."
dotnet build benchmarks/ChatScale.LoadTest -c Release -v q -nologo
timeout 120 dotnet benchmarks/ChatScale.LoadTest/bin/Release/net10.0/ChatScale.LoadTest.dll run --quick --out "${TMPDIR:-/tmp}/chatscale-loadtest"
