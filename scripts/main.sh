#!/usr/bin/env bash
# main.sh — the main job in one command, on a fresh Debian 12 machine as root:
# install what is missing and build (scripts/setup.sh), then compile every paper model in
# examples/ to a .so, run it on its golden inputs and print the table (scripts/run_examples.sh).
# Options are passed to run_examples.sh (e.g. --model realnvp).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup.sh"
exec bash "$ROOT/scripts/run_examples.sh" "$@"
