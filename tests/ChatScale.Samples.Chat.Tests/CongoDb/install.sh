#!/usr/bin/env bash
# Installs CongoDB beside this script (idempotent): the server's small dependencies with npm, then
# @push.rocks/smartmongo 2.2.0 itself by `npm pack` + unpack, because `npm install` of it fails on one missing
# transitive version (its mongodb-memory-server side, which CongoDB does not use).
set -euo pipefail
cd "$(dirname "$0")"
target=node_modules/@push.rocks/smartmongo
if [ -f "$target/dist_ts/congodb/index.js" ] && [ -d node_modules/mingo ] && [ -d node_modules/bson ]; then
  exit 0
fi
command -v npm >/dev/null 2>&1 || { echo "CongoDB needs Node.js and npm (apt-get install nodejs npm)" >&2; exit 1; }
npm install --no-audit --no-fund --loglevel=error
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent @push.rocks/smartmongo@2.2.0 >/dev/null)
mkdir -p "$target"
tar -xzf "$tmp"/push.rocks-smartmongo-2.2.0.tgz -C "$target" --strip-components=1
test -f "$target/dist_ts/congodb/index.js"
