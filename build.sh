#!/usr/bin/env bash
# ChatScale's one set-up-and-test command (README, "Run the tests").
#
#   ./build.sh test [dotnet test arguments...]
#       Sets this machine up for the test suite, then runs `dotnet test ChatScale.sln -c Release` (built first, then
#       one test project at a time) with its normal
#       output and exit code. Set-up: what the tests need and this machine lacks is installed when it can be
#       (as root, with apt-get: redis-server, nodejs, npm, chromium; then CongoDB's npm packages); otherwise the
#       script stops before running anything, with one line naming what is missing and the command that installs it.
#   ./build.sh deps
#       The set-up step alone.
#
# What the tests need: redis-server and redis-cli (the Redis, ASP.NET Core, sample and cluster tests start their own
# servers on free loopback ports), Node.js and npm (CongoDB, the MongoDB-wire server of the sample's store tests;
# not needed when CHATSCALE_TEST_MONGO names a real MongoDB), Chromium (the browser tests; CHATSCALE_TEST_CHROMIUM
# names another binary). The check uses only shell built-ins, so it also runs on a PATH that lacks everything else.
set -uo pipefail

root=${BASH_SOURCE[0]%/*}
[ "$root" = "${BASH_SOURCE[0]}" ] && root=.
cd "$root" || exit 2

export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

missing_tools=()  # what is missing, as the user would call it
missing_pkgs=()   # the Debian packages that provide it

check() {
  missing_tools=()
  missing_pkgs=()
  command -v dotnet >/dev/null 2>&1 || missing_tools+=(dotnet)
  if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
    missing_tools+=(redis-server); missing_pkgs+=(redis-server)
  fi
  if [ -z "${CHATSCALE_TEST_MONGO:-}" ]; then
    command -v node >/dev/null 2>&1 || { missing_tools+=(node); missing_pkgs+=(nodejs); }
    command -v npm >/dev/null 2>&1 || { missing_tools+=(npm); missing_pkgs+=(npm); }
  fi
  if [ -n "${CHATSCALE_TEST_CHROMIUM:-}" ]; then
    [ -x "$CHATSCALE_TEST_CHROMIUM" ] || missing_tools+=("chromium (CHATSCALE_TEST_CHROMIUM=$CHATSCALE_TEST_CHROMIUM is not executable)")
  elif ! command -v chromium >/dev/null 2>&1; then
    missing_tools+=(chromium); missing_pkgs+=(chromium)
  fi
}

# One line, then stop: what is missing and the exact command that installs it.
fail_missing() {
  local what cmd
  what=$(IFS=,; echo "${missing_tools[*]}")
  what=${what//,/, }
  if [[ " ${missing_tools[*]} " == *" dotnet "* ]]; then
    cmd="the .NET 10 SDK (https://dot.net)${missing_pkgs[*]:+ and: sudo apt-get install -y ${missing_pkgs[*]}}"
  elif [ ${#missing_pkgs[@]} -gt 0 ]; then
    if [ "${EUID:-1}" -eq 0 ]; then
      cmd="apt-get install -y ${missing_pkgs[*]} (apt-get was not found on PATH)"
    else
      cmd="sudo apt-get install -y ${missing_pkgs[*]} (or run ./build.sh test as root to install them)"
    fi
  else
    cmd="a Chromium binary in CHATSCALE_TEST_CHROMIUM (or unset it)"
  fi
  echo "build.sh: missing ${what}: install with ${cmd}" >&2
  exit 2
}

setup() {
  check
  if [ ${#missing_tools[@]} -gt 0 ]; then
    if [ ${#missing_pkgs[@]} -eq ${#missing_tools[@]} ] && [ "${EUID:-1}" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
      echo "build.sh: installing ${missing_pkgs[*]} with apt-get"
      DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing_pkgs[@]}" >/dev/null || {
          echo "build.sh: apt-get install ${missing_pkgs[*]} failed" >&2; exit 2; }
      hash -r
      check
    fi
    [ ${#missing_tools[@]} -eq 0 ] || fail_missing
  fi
  if [ -z "${CHATSCALE_TEST_CHROMIUM:-}" ]; then
    CHATSCALE_TEST_CHROMIUM=$(command -v chromium)
    export CHATSCALE_TEST_CHROMIUM
  fi
  if [ -z "${CHATSCALE_TEST_MONGO:-}" ]; then
    # CongoDB and its dependencies from npm (idempotent; quick when already there).
    bash tests/ChatScale.Samples.Chat.Tests/CongoDb/install.sh ||
      { echo "build.sh: installing CongoDB from npm failed (see above); or set CHATSCALE_TEST_MONGO to a real MongoDB" >&2; exit 2; }
  fi
}

case "${1:-}" in
  test)
    shift
    setup
    # One test project at a time (-m:1): the fault and abuse tests measure lease renewals and delivery latency, which
    # a 2-core machine running six test hosts at once would starve. The build before it still uses every core.
    dotnet build ChatScale.sln -c Release || exit $?
    dotnet test ChatScale.sln -c Release --no-build -m:1 "$@"
    ;;
  deps)
    setup
    echo "build.sh: every test dependency is present"
    ;;
  *)
    echo "usage: ./build.sh test [dotnet test arguments...] | ./build.sh deps" >&2
    exit 2
    ;;
esac
