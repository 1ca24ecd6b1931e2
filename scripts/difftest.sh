#!/usr/bin/env bash
# difftest.sh — a long run of the differential tester (tests/difftest/README.md): N random
# programs through the JIT and the AOT library, compared with the reference interpreter.
#
#   scripts/difftest.sh N [SEED]      (default SEED: the current time)
#
# Builds build/ if needed (NNC_BUILD_DIR), runs NNC_JOBS shards in parallel (default: nproc)
# on consecutive seed ranges, and shrinks every failing program.  Failing programs and their
# reductions go to build/difftest-long/ (seed-S.nn, seed-S.min.nn); copy a reduced one into
# tests/difftest/regressions/ (with `xfail=REASON` in its header while the bug is open).
# Exits 1 if any program failed.
set -uo pipefail

usage() { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; }

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 1
[ $# -ge 1 ] || { usage >&2; exit 2; }
case "$1" in -h|--help) usage; exit 0 ;; esac
count="$1"
seed="${2:-$(date +%s)}"
[[ "$count" =~ ^[0-9]+$ && "$seed" =~ ^[0-9]+$ ]] || { usage >&2; exit 2; }

DIR="${NNC_BUILD_DIR:-build}"
JOBS="${NNC_JOBS:-$(nproc 2>/dev/null || echo 2)}"
if [ ! -x "$DIR/difftest" ]; then
  cmake -S . -B "$DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null && cmake --build "$DIR" -j "$JOBS" --target difftest >/dev/null || exit 1
fi
out="$DIR/difftest-long"
mkdir -p "$out"
per=$(( (count + JOBS - 1) / JOBS ))
echo "==> difftest: $count programs from seed $seed in $JOBS shards; findings in $out"
pids=()
for ((j = 0; j < JOBS; j++)); do
  n=$(( count - j * per < per ? count - j * per : per ))
  [ "$n" -gt 0 ] || break
  "$DIR/difftest" --seed $((seed + j * per)) --count "$n" --out "$out" > "$out/shard-$j.log" 2>&1 &
  pids+=($!)
done
status=0
for p in "${pids[@]}"; do wait "$p" || status=1; done
cat "$out"/shard-*.log | grep -v '^difftest:' || true
grep -h '^difftest:' "$out"/shard-*.log
exit "$status"
