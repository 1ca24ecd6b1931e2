#!/usr/bin/env bash
# fuzz.sh — build the libFuzzer targets (tests/fuzz/, cmake/fuzz.cmake) with clang-19 and
# ASan+UBSan, and run each for a given time.
#
#   scripts/fuzz.sh [--repeatable] SECONDS [TARGET...]
#                          targets: compile compile_tokens safetensors npy onnx (default: all)
#
# Seeds (examples/, tests/, 100 programs of the differential tester's generator, and
# tests/fuzz/regressions/<target>/, so fixed crashes stay covered) are given to libFuzzer as a
# sorted list; what it finds persists in $NNC_FUZZ_BUILD_DIR/corpus/<target> (default
# build-fuzz/).  Crashing inputs land in build-fuzz/artifacts/<target>/.  Each target's
# executions are added to build-fuzz/fuzz-stats.txt (cumulative totals).  Exits 1 if a target
# crashed, leaked or hit a sanitizer error (copy the input into tests/fuzz/regressions/<target>/
# once fixed), 0 otherwise.  Timeouts and out-of-memory inputs are reported but do not fail.
#
# The mutation seed is NNC_FUZZ_SEED (default 1; 0: random, for long runs).  An input running
# over NNC_FUZZ_TIMEOUT seconds (default 60) ends the run as a timeout; long runs on a busy
# machine may want more, as programs at the bound on statements executed (10,000,000) take
# that long under the sanitizers.
#
# --repeatable (what scripts/test.sh, hence CI, runs): each target starts from an empty corpus
# and runs a fixed number of executions (NNC_FUZZ_RUNS overrides the count; SECONDS only caps
# the time), with address-space randomization and the timed corpus reload off, so that the
# same build explores the same inputs on every machine and a CI run cannot fail on an input a
# run on the developer's machine never tried.
set -uo pipefail

usage() { sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'; }

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 1
repeatable=0
[ "${1:-}" = --repeatable ] && { repeatable=1; shift; }
[ $# -ge 1 ] || { usage >&2; exit 2; }
case "$1" in -h|--help) usage; exit 0 ;; esac
secs="$1"; shift
[[ "$secs" =~ ^[0-9]+$ ]] || { echo "fuzz.sh: SECONDS must be a number" >&2; exit 2; }
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(compile compile_tokens safetensors npy onnx)

DIR="${NNC_FUZZ_BUILD_DIR:-build-fuzz}"
CC_FUZZ="${NNC_FUZZ_CC:-clang-19}"
JOBS="${NNC_JOBS:-$(nproc 2>/dev/null || echo 2)}"
command -v "$CC_FUZZ" >/dev/null || { echo "fuzz.sh: $CC_FUZZ not found (apt-get install clang-19 libclang-rt-19-dev)" >&2; exit 1; }

echo "==> building fuzz targets in $DIR ($CC_FUZZ)"
cmake -S . -B "$DIR" -DCMAKE_C_COMPILER="$CC_FUZZ" -DNNC_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null || exit 1
cmake --build "$DIR" -j "$JOBS" --target "${targets[@]/#/fuzz_}" >/dev/null || exit 1

# The executions of a --repeatable run: about a minute each on a quiet 2-core machine.
declare -A repeatable_runs=([compile]=4000 [compile_tokens]=8000 [safetensors]=500000 [npy]=5000000
                            [onnx]=1000000)

seed() { # seed TARGET SEED_DIR: fill SEED_DIR, print the sorted list of its files
  rm -rf "$2" && mkdir -p "$2" || return 1
  if [[ "$1" = compile* ]]; then # 100 random programs of the differential tester, too
    cmake --build "$DIR" -j "$JOBS" --target difftest_gen >/dev/null && "$DIR/difftest_gen" 1 100 "$2" >/dev/null
  fi
  { case "$1" in
      compile|compile_tokens) find examples tests/compile tests/golden tests/difftest -name '*.nn' ;;
      safetensors) find tests/golden -name '*.safetensors' ;;
      npy) find tests/golden -name '*.npy' | LC_ALL=C sort | head -n 200 ;;
      onnx) find tests/unit/onnx_models -name '*.onnx' ;;
    esac
    find tests/fuzz/regressions/"$1" -type f 2>/dev/null
  } | while read -r f; do cp "$f" "$2/seed-$(printf '%s' "$f" | md5sum | cut -c1-12)"; done
  # Sorted, so that libFuzzer reads the seeds in the same order on every file system.
  find "$2" -type f | LC_ALL=C sort
}

status=0
for t in "${targets[@]}"; do
  corpus="$DIR/corpus/$t" artifacts="$DIR/artifacts/$t/" seeds="$DIR/seeds/$t"
  [ "$repeatable" = 1 ] && { corpus="$DIR/repeatable-corpus/$t"; rm -rf "$corpus"; }
  mkdir -p "$corpus" "$artifacts"
  seed "$t" "$seeds" | paste -sd, > "$DIR/seeds-$t.txt" || { echo "fuzz.sh: seeding $t failed" >&2; exit 1; }
  opts=(-max_total_time="$secs" -print_final_stats=1 -artifact_prefix="$artifacts"
        -timeout="${NNC_FUZZ_TIMEOUT:-60}" -rss_limit_mb=4096
        -seed="${NNC_FUZZ_SEED:-1}" -seed_inputs=@"$DIR/seeds-$t.txt")
  launch=()
  if [ "$repeatable" = 1 ]; then
    opts+=(-runs="${NNC_FUZZ_RUNS:-${repeatable_runs[$t]}}" -reload=0)
    # Without ASLR the sanitizers' heap addresses, hence any order that depends on them, repeat.
    setarch "$(uname -m)" -R true 2>/dev/null && launch=(setarch "$(uname -m)" -R)
  fi
  [ "$t" = compile ] && opts+=(-max_len=8192)
  # Token mutants may grow a list or a nesting to thousands of elements at once (the
  # mutator keeps within max_len; no slow growth of the length limit).
  [ "$t" = compile_tokens ] && opts+=(-max_len=32768 -len_control=0)
  [ "$t" = safetensors ] && opts+=(-max_len=65536)
  [ "$t" = onnx ] && opts+=(-max_len=65536)
  log="$DIR/fuzz-$t.log"
  if [ "$repeatable" = 1 ]; then echo "==> fuzz_$t: ${NNC_FUZZ_RUNS:-${repeatable_runs[$t]}} executions (at most $secs s) from an empty corpus"
  else echo "==> fuzz_$t for $secs s (corpus $corpus)"; fi
  before=$(ls "$artifacts" | wc -l)
  ASAN_OPTIONS="detect_leaks=1:allocator_may_return_null=1" \
  LSAN_OPTIONS="suppressions=$ROOT/scripts/lsan.supp:print_suppressions=0" \
  UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" \
    "${launch[@]}" "$DIR/fuzz_$t" "${opts[@]}" "$corpus" >"$log" 2>&1
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
