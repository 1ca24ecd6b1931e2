#!/usr/bin/env bash
# fuzz.sh — build the libFuzzer targets (tests/fuzz/, cmake/fuzz.cmake) with clang-19 and
# ASan+UBSan, and run each for a given time.
#
#   scripts/fuzz.sh SECONDS [TARGET...]     targets: compile compile_tokens safetensors npy
#                                           (default: all)
#
# Corpora persist in $NNC_FUZZ_BUILD_DIR/corpus/<target> (default build-fuzz/), seeded from
# examples/, tests/ and 100 programs of the differential tester's generator on every run;
# crashing inputs land in build-fuzz/artifacts/<target>/.  Each target's executions are added
# to build-fuzz/fuzz-stats.txt (cumulative totals).  Exits 1 if a target crashed, leaked or hit
# a sanitizer error (copy the input into tests/fuzz/regressions/<target>/ once fixed), 0
# otherwise.  Timeouts and out-of-memory inputs are reported but do not fail the run.
# The mutation seed is NNC_FUZZ_SEED (default 1: repeatable CI runs; 0: random, for long runs).
# An input running over NNC_FUZZ_TIMEOUT seconds (default 60) ends the run as a timeout; long
# runs on a busy machine may want more, as programs at the bound on statements executed
# (10,000,000) take that long under the sanitizers.
set -uo pipefail

usage() { sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; }

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 1
[ $# -ge 1 ] || { usage >&2; exit 2; }
case "$1" in -h|--help) usage; exit 0 ;; esac
secs="$1"; shift
[[ "$secs" =~ ^[0-9]+$ ]] || { echo "fuzz.sh: SECONDS must be a number" >&2; exit 2; }
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(compile compile_tokens safetensors npy)

DIR="${NNC_FUZZ_BUILD_DIR:-build-fuzz}"
CC_FUZZ="${NNC_FUZZ_CC:-clang-19}"
JOBS="${NNC_JOBS:-$(nproc 2>/dev/null || echo 2)}"
command -v "$CC_FUZZ" >/dev/null || { echo "fuzz.sh: $CC_FUZZ not found (apt-get install clang-19 libclang-rt-19-dev)" >&2; exit 1; }

echo "==> building fuzz targets in $DIR ($CC_FUZZ)"
cmake -S . -B "$DIR" -DCMAKE_C_COMPILER="$CC_FUZZ" -DNNC_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null || exit 1
cmake --build "$DIR" -j "$JOBS" --target "${targets[@]/#/fuzz_}" >/dev/null || exit 1

seed() { # seed TARGET CORPUS_DIR
  if [[ "$1" = compile* ]]; then # 100 random programs of the differential tester, too
    cmake --build "$DIR" -j "$JOBS" --target difftest_gen >/dev/null && "$DIR/difftest_gen" 1 100 "$2"
  fi
  case "$1" in
    compile|compile_tokens) find examples tests/compile tests/golden tests/difftest -name '*.nn' ;;
    safetensors) find tests/golden -name '*.safetensors' ;;
    npy) find tests/golden -name '*.npy' | head -n 200 ;;
  esac | while read -r f; do cp "$f" "$2/seed-$(printf '%s' "$f" | md5sum | cut -c1-12)"; done
}

status=0
for t in "${targets[@]}"; do
  corpus="$DIR/corpus/$t" artifacts="$DIR/artifacts/$t/"
  mkdir -p "$corpus" "$artifacts"
  seed "$t" "$corpus"
  # Regressions are in the corpus too, so fixed crashes stay covered.
  cp tests/fuzz/regressions/"$t"/* "$corpus"/ 2>/dev/null
  # A fixed seed (NNC_FUZZ_SEED, default 1) makes the short CI run explore the same mutations
  # each time, so CI does not fail at random; NNC_FUZZ_SEED=0 lets libFuzzer pick one.
  opts=(-max_total_time="$secs" -print_final_stats=1 -artifact_prefix="$artifacts"
        -timeout="${NNC_FUZZ_TIMEOUT:-60}" -rss_limit_mb=4096
        -seed="${NNC_FUZZ_SEED:-1}")
  [ "$t" = compile ] && opts+=(-max_len=8192)
  # Token mutants may grow a list or a nesting to thousands of elements at once (the
  # mutator keeps within max_len; no slow growth of the length limit).
  [ "$t" = compile_tokens ] && opts+=(-max_len=32768 -len_control=0)
  [ "$t" = safetensors ] && opts+=(-max_len=65536)
  log="$DIR/fuzz-$t.log"
  echo "==> fuzz_$t for $secs s (corpus $corpus)"
  before=$(ls "$artifacts" | wc -l)
  ASAN_OPTIONS="detect_leaks=1:allocator_may_return_null=1" \
  LSAN_OPTIONS="suppressions=$ROOT/scripts/lsan.supp:print_suppressions=0" \
  UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" \
    "$DIR/fuzz_$t" "${opts[@]}" "$corpus" >"$log" 2>&1
  rc=$?
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -n 1)
  runs=${runs:-0}
  prev=$(grep "^$t " "$DIR/fuzz-stats.txt" 2>/dev/null | awk '{print $2}')
  total=$(( ${prev:-0} + runs ))
  { grep -v "^$t " "$DIR/fuzz-stats.txt" 2>/dev/null; echo "$t $total"; } > "$DIR/fuzz-stats.tmp"
  mv "$DIR/fuzz-stats.tmp" "$DIR/fuzz-stats.txt"
  new=$(( $(ls "$artifacts" | wc -l) - before ))
  echo "    $runs executions (total $total); exit $rc; new artifacts: $new; log $log"
  if grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer: deadly signal)|runtime error:' "$log"; then
    echo "    FAILED: see $log and $artifacts"
    grep -E 'ERROR:|runtime error:|Test unit written to' "$log" | head -n 5 | sed 's/^/    /'
    status=1
  elif [ "$rc" -ne 0 ]; then
    echo "    note: exit $rc without a crash (timeout or out-of-memory input):"
    grep -E 'ERROR:|Test unit written to' "$log" | head -n 3 | sed 's/^/    /'
  fi
done
exit "$status"
