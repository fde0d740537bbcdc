#!/usr/bin/env bash
# Installs what the test suite needs on a fresh Debian 12 machine, and nothing when it is already there (exit 0):
#   - redis-server: the Redis, ASP.NET Core and sample tests start their own on free loopback ports;
#   - nodejs + npm: CongoDB, the in-memory MongoDB-wire server the store and end-to-end tests run on, and its npm deps;
#   - chromium: the headless browser of the browser tests (Playwright drives /usr/bin/chromium; no browser download).
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)
# With its recommended packages (fonts among them), as verified on these machines.
[ -x /usr/bin/chromium ] || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need[@]}"
fi

# CongoDB and its dependencies from npm (idempotent; the test fixture runs it too).
bash tests/ChatScale.Samples.Chat.Tests/CongoDb/install.sh
