#!/usr/bin/env bash
# Kept for old instructions: the set-up step of README's test command (`./build.sh test`) alone.
exec bash "$(dirname "$0")/../build.sh" deps
