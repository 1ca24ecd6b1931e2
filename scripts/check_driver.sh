#!/usr/bin/env bash
# check_driver.sh — ctest for the generated C header: compile examples/realnvp.nn to a .so
# with embedded weights and a header, build examples/driver_realnvp.c against them with the
# C compiler alone, run it, and require "roundtrip ok".  Registered by tests/tests.cmake.
#
#   scripts/check_driver.sh NNC SOURCE_DIR WORK_DIR CC [CFLAG...]
set -euo pipefail

[ $# -ge 4 ] || { echo "usage: check_driver.sh NNC SOURCE_DIR WORK_DIR CC [CFLAG...]" >&2; exit 2; }
nnc="$1" src="$2" work="$3" cc="$4"
shift 4

rm -rf "$work"
mkdir -p "$work"
work="$(cd "$work" && pwd)"

echo "+ nnc examples/realnvp.nn -o $work/realnvp.so --weights ... --header $work/realnvp.h"
"$nnc" "$src/examples/realnvp.nn" -o "$work/realnvp.so" \
  --weights "$src/tests/golden/realnvp/weights.safetensors" --header "$work/realnvp.h"
[ -f "$work/realnvp.so" ] || { echo "no realnvp.so was written" >&2; exit 1; }
[ -f "$work/realnvp.h" ] || { echo "no realnvp.h was written" >&2; exit 1; }

# The header must stand alone: C11, warnings as errors, nothing but -I for the header.
echo "+ $cc $* -std=c11 -Wall -Wextra -Werror -I$work driver_realnvp.c -l:realnvp.so"
"$cc" "$@" -std=c11 -Wall -Wextra -Werror -I"$work" "$src/examples/driver_realnvp.c" \
  -L"$work" -l:realnvp.so -Wl,-rpath,"$work" -lm -o "$work/driver_realnvp"

echo "+ driver_realnvp"
out="$("$work/driver_realnvp")" || { echo "$out"; echo "driver_realnvp failed" >&2; exit 1; }
echo "$out"
grep -qx "roundtrip ok" <<<"$out" || { echo "driver did not print 'roundtrip ok'" >&2; exit 1; }
