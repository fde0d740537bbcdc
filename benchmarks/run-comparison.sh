#!/usr/bin/env bash
# Runs ChatScale and SignalR's Redis backplane alternately on this machine and writes the generated sections of
# docs/benchmarks.md (medians, ratios, chart docs/img/loadtest-groups.png, mass connect, idle connections).
#   benchmarks/run-comparison.sh            # full: 3 alternating runs x group sizes 5, 50, 500 (~15 min on 2 cores)
#   benchmarks/run-comparison.sh --quick    # a smoke run of the same (~3 min); figures are not for publishing
set -euo pipefail
cd "$(dirname "$0")/.."
dotnet build benchmarks/ChatScale.LoadTest -c Release -v q -nologo
tool="dotnet benchmarks/ChatScale.LoadTest/bin/Release/net10.0/ChatScale.LoadTest.dll"
$tool compare --runs 3 --groups 5,50,500 --doc docs/benchmarks.md --chart docs/img/loadtest-groups.png "$@"
$tool massconnect --users 10000 --runs 3 --doc docs/benchmarks.md
$tool idle --max 50000 --doc docs/benchmarks.md
