#!/usr/bin/env bash
# snapshot.sh — "process replay" for refactors: writes every stage dump (ir, opt, fused,
# loops, asm) of every example and every tests/compile/fused program into DIR, so that two
# snapshots (before and after a change meant to keep behaviour) can be compared with
# `diff -r`.  Kernels must come out identical, down to the assembly.
#
#   scripts/snapshot.sh DIR [NNC]      (NNC: the compiler, default build/nnc)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
[ $# -ge 1 ] || { sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
out="$1" nnc="${2:-$ROOT/build/nnc}"
mkdir -p "$out"
for f in "$ROOT"/examples/*.nn "$ROOT"/tests/compile/fused/*.nn; do
  name="$(basename "$(dirname "$f")").$(basename "$f" .nn)"
  for stage in ir opt fused loops asm; do
    "$nnc" dump --stage="$stage" "$f" > "$out/$name.$stage" 2>&1 || echo "exit $?" >> "$out/$name.$stage"
  done
done
echo "snapshot: $(ls "$out" | wc -l) dumps in $out"
