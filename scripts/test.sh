#!/usr/bin/env bash
# test.sh — the whole test suite (what .ci/run calls):
#   1. scripts/setup.sh: install missing packages, build into build/, run its ctest;
#   2. scripts/setup.sh --sanitize: build into build-asan/ (ASan + UBSan), run its ctest with
#      leak detection (suppressions for third-party leaks in scripts/lsan.supp; tests whose
#      only failure is LeakSanitizer's own tracer crashing at exit run once more);
#   3. build-tsan/ (ThreadSanitizer, -DNNC_TSAN=ON): only test_compile_threads, which compiles
#      models on several threads at once (suppressions for third-party reports in
#      scripts/tsan.supp);
#   4. scripts/fuzz.sh --repeatable: each libFuzzer target for a fixed number of executions
#      from a fixed seed (about a minute each; at most $NNC_FUZZ_SECONDS, default 300, s).
# Prints a summary and exits non-zero if any build or test failed.
#
#   scripts/test.sh [--no-sanitize] [--no-fuzz] [-R REGEX]
#
#   --no-sanitize   skip the sanitizer builds (quicker local runs)
#   --no-fuzz       skip the fuzzing step (also skipped with -R)
#   -R REGEX        only tests matching REGEX (passed to ctest)
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 1

usage() { sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; }

sanitize=1 fuzz=1 ctest_filter=()
while [ $# -gt 0 ]; do
  case "$1" in
    --no-sanitize) sanitize=0; shift ;;
    --no-fuzz) fuzz=0; shift ;;
    -R) [ $# -ge 2 ] || { usage >&2; exit 2; }; ctest_filter=(-R "$2"); fuzz=0; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "test.sh: unknown option '$1'" >&2; usage >&2; exit 2 ;;
  esac
done

JOBS="${NNC_JOBS:-$(nproc 2>/dev/null || echo 2)}"
summary=() total_pass=0 total_fail=0 status=0

# run_ctest NAME DIR [ENV...]: runs ctest in DIR (the tests of ctest_filter), adds its counts
# to the totals.
run_ctest() {
  local name="$1" dir="$2" log rc
  shift 2
  log="$dir/ctest.log"
  echo "==> ctest in $dir"
  env "$@" ctest --test-dir "$dir" --output-on-failure --no-tests=error --timeout 1200 \
      -j "$JOBS" "${ctest_filter[@]}" 2>&1 | tee "$log"
  rc="${PIPESTATUS[0]}"
  # "100% tests passed, 0 tests failed out of 12"
  local line passed failed total
  line="$(grep -E '^[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' "$log" | tail -n 1)"
  if [ -n "$line" ]; then
    failed="$(sed -E 's/.* ([0-9]+) tests? failed.*/\1/' <<<"$line")"
    total="$(sed -E 's/.*out of ([0-9]+).*/\1/' <<<"$line")"
    passed=$((total - failed))
  else
    passed=0 failed=1
  fi
  # LeakSanitizer's stop-the-world tracer itself sometimes segfaults at a process's exit
  # under load ("Tracer caught signal 11 ... LeakSanitizer has encountered a fatal error",
  # google/sanitizers#1353): not a leak report, and no suppression can fix it.  Only then are
  # the failed tests run once more, with leak detection still on; a real failure fails again.
  local rerun_note=""
  if [ "$failed" -gt 0 ] && grep -q "^Tracer caught signal" "$log"; then
    echo "==> LeakSanitizer's tracer crashed at exit: running the $failed failed test(s) again"
    env "$@" ctest --test-dir "$dir" --output-on-failure --timeout 1200 --rerun-failed 2>&1 | tee "$log.rerun"
    rc="${PIPESTATUS[0]}"
    line="$(grep -E '^[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' "$log.rerun" | tail -n 1)"
    local again
    again="$(sed -E 's/.* ([0-9]+) tests? failed.*/\1/' <<<"$line")"
    [ -n "$line" ] || again="$failed"
    rerun_note=" ($failed run again after LeakSanitizer's tracer crashed at exit; $again failed again)"
    passed=$((passed + failed - again))
    failed="$again"
  fi
  total_pass=$((total_pass + passed))
  total_fail=$((total_fail + failed))
  if [ "$rc" -eq 0 ] && [ "$failed" -eq 0 ]; then
    summary+=("$name: $passed passed$rerun_note")
  else
    summary+=("$name: FAILED ($passed passed, $failed failed, ctest exit $rc; log $log)$rerun_note")
    status=1
  fi
}

# 1. install + normal build + tests
if bash scripts/setup.sh; then
  run_ctest "tests (build)" build
else
  summary+=("build: FAILED (scripts/setup.sh)")
  total_fail=$((total_fail + 1))
  status=1
fi

# 2. sanitizer build + tests
if [ "$sanitize" = 1 ]; then
  if bash scripts/setup.sh --sanitize --no-install; then
    run_ctest "tests (build-asan, ASan+UBSan)" build-asan \
      ASAN_OPTIONS="detect_leaks=1" \
      LSAN_OPTIONS="suppressions=$ROOT/scripts/lsan.supp:print_suppressions=0" \
      UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
  else
    summary+=("build-asan: FAILED (scripts/setup.sh --sanitize)")
    total_fail=$((total_fail + 1))
    status=1
  fi
fi

# 3. ThreadSanitizer: only test_compile_threads (and what it links) is built, so ctest runs
# just that test; skipped when -R selects other tests.
tsan_test=test_compile_threads
if [ "$sanitize" = 1 ] && { [ ${#ctest_filter[@]} -eq 0 ] || [[ $tsan_test =~ ${ctest_filter[1]} ]]; }; then
  if cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DNNC_TSAN=ON &&
     cmake --build build-tsan -j "$JOBS" --target "$tsan_test"; then
    saved_filter=("${ctest_filter[@]}")
    ctest_filter=(-R "^$tsan_test\$")
    run_ctest "$tsan_test (build-tsan, ThreadSanitizer)" build-tsan \
      TSAN_OPTIONS="suppressions=$ROOT/scripts/tsan.supp:halt_on_error=1:second_deadlock_stack=1"
    ctest_filter=("${saved_filter[@]}")
  else
    summary+=("build-tsan: FAILED (cmake -DNNC_TSAN=ON, target $tsan_test)")
    total_fail=$((total_fail + 1))
    status=1
  fi
fi

# 4. fuzzing: a short run of each target (scripts/fuzz.sh; clang-19 is installed by setup.sh)
if [ "$fuzz" = 1 ]; then
  secs="${NNC_FUZZ_SECONDS:-300}"
  mkdir -p build-fuzz
  if bash scripts/fuzz.sh --repeatable "$secs" 2>&1 | tee build-fuzz/test.log; then
    runs="$(grep -oE '^    [0-9]+ executions' build-fuzz/test.log | grep -oE '[0-9]+' | paste -sd/)"
    summary+=("fuzz: compile, compile_tokens, safetensors, npy, onnx without a crash ($runs executions)")
  else
    summary+=("fuzz: FAILED (see build-fuzz/test.log and build-fuzz/artifacts/)")
    total_fail=$((total_fail + 1))
    status=1
  fi
fi

echo
echo "==> summary"
for s in "${summary[@]}"; do echo "  $s"; done
echo "test: $total_pass passed, $total_fail failed"
exit "$status"
