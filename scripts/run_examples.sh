#!/usr/bin/env bash
# run_examples.sh — the main job: compile every paper model in examples/ that has a golden
# (tests/golden/<model>/) to a .so with embedded weights, run each entry on the golden inputs,
# and print a table: model, entry, compile time, run time, max error against PyTorch.
#
#   scripts/run_examples.sh [--build-dir DIR] [--model NAME]... [--jit]
#
#   --build-dir DIR  where nnc was built (default: build); outputs go to DIR/examples/
#   --model NAME     only this model (repeatable)
#   --jit            run the .nn through the JIT (`nnc run FILE.nn --weights W`) instead of
#                    compiling a .so; no compile or run times
#
# Entries and their inputs come from the golden files <entry>.in.<arg>.npy; expected outputs
# from <entry>.out.<name>.npy.  Outputs are produced by `nnc run`; the run time is the median
# of repeated in-process calls through the generic ABI (scripts/so_timer.c), whose outputs are
# checked too.  The compile time is a cold compile's (NNC_CACHE=off).  An output passes when
# max|got - expected| <= 1e-5 + 1e-4 * max|expected|.
# Exit status: 0 when every entry passes, 1 otherwise, 2 on a usage error.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

usage() { sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; }

build_dir=build jit=0 models=()
while [ $# -gt 0 ]; do
  case "$1" in
    --build-dir) [ $# -ge 2 ] || { usage >&2; exit 2; }; build_dir="$2"; shift 2 ;;
    --build-dir=*) build_dir="${1#*=}"; shift ;;
    --model) [ $# -ge 2 ] || { usage >&2; exit 2; }; models+=("$2"); shift 2 ;;
    --model=*) models+=("${1#*=}"); shift ;;
    --jit) jit=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "run_examples.sh: unknown option '$1'" >&2; usage >&2; exit 2 ;;
  esac
done

build_dir="$(cd "$build_dir" 2>/dev/null && pwd)" || {
  echo "run_examples.sh: no build directory; run scripts/setup.sh first" >&2; exit 1; }
NNC="$build_dir/nnc"
[ -x "$NNC" ] || { echo "run_examples.sh: $NNC not found; run scripts/setup.sh first" >&2; exit 1; }
PY=/usr/bin/python3
"$PY" -c 'import numpy' 2>/dev/null || {
  echo "run_examples.sh: $PY with numpy is needed (apt-get install python3-numpy, or scripts/setup.sh)" >&2
  exit 1; }

WORK="$build_dir/examples"
rm -rf "$WORK"
mkdir -p "$WORK"
RESULTS="$WORK/results.tsv"
: >"$RESULTS"

now_ns() { date +%s%N; }

# The timer: built here from scripts/so_timer.c against runtime/include/nnc_model.h only.
TIMER=""
if [ "$jit" = 0 ]; then
  CC_BIN="${CC:-cc}"
  if "$CC_BIN" -std=c11 -O2 -I runtime/include scripts/so_timer.c \
       -o "$WORK/so_timer" -ldl 2>"$WORK/so_timer.log"; then
    TIMER="$WORK/so_timer"
  else
    echo "warning: could not build scripts/so_timer.c (no run times); see $WORK/so_timer.log" >&2
  fi
fi

# Entries of a golden dir: the <entry> prefixes of its <entry>.in.*.npy / <entry>.out.*.npy.
entries_of() {
  local f b
  for f in "$1"/*.in.*.npy "$1"/*.out.*.npy; do
    [ -e "$f" ] || continue
    b="$(basename "$f")"
    echo "${b%%.*}"
  done | sort -u
}

# arg name of <entry>.in.<name>.npy / <entry>.out.<name>.npy
arg_name() { local b; b="$(basename "$1" .npy)"; echo "${b#*.*.}"; }

# One line of $RESULTS: model entry compile_ms run_us status golden cli_dir timer_dir log
row() { local IFS=$'\t'; echo "$*" >>"$RESULTS"; }

shopt -s nullglob
n_models=0
for nn in examples/*.nn; do
  model="$(basename "$nn" .nn)"
  golden="tests/golden/$model"
  if [ "${#models[@]}" -gt 0 ]; then
    keep=0
    for m in "${models[@]}"; do [ "$m" = "$model" ] && keep=1; done
    [ "$keep" = 1 ] || continue
  fi
  if [ ! -d "$golden" ]; then
    echo "note: $nn has no $golden/, skipped" >&2
    continue
  fi
  n_models=$((n_models + 1))
  mdir="$WORK/$model"
  mkdir -p "$mdir"
  weights="$ROOT/$golden/weights.safetensors"
  wargs=()
  [ -f "$weights" ] && wargs=(--weights "$weights")

  # Compile (AOT) or use the .nn directly (JIT).
  compile_ms="-" compile_ok=1 target="$ROOT/$nn"
  if [ "$jit" = 0 ]; then
    target="$mdir/$model.so"
    echo "compiling $nn ..." >&2
    t0="$(now_ns)"
    # the compile cache off: the column is a cold compile's time, not a cache hit's
    if NNC_CACHE=off "$NNC" "$ROOT/$nn" -o "$target" "${wargs[@]}" >"$mdir/compile.log" 2>&1; then
      t1="$(now_ns)"
      compile_ms="$(( (t1 - t0) / 1000000 )).$(( (t1 - t0) / 100000 % 10 ))"
    else
      compile_ok=0
    fi
  fi

  for entry in $(entries_of "$golden"); do
    edir="$mdir/$entry"
    mkdir -p "$edir/cli" "$edir/timer"
    if [ "$compile_ok" = 0 ]; then
      row "$model" "$entry" "-" "-" "compile" "$golden" "$edir/cli" "" "$mdir/compile.log"
      continue
    fi
    ins=() outs=()
    for f in "$golden/$entry".in.*.npy; do ins+=(--in "$(arg_name "$f")=$ROOT/$f"); done
    for f in "$golden/$entry".out.*.npy; do
      outs+=(--out "$(arg_name "$f")=$edir/cli/$(arg_name "$f").npy")
    done
    runargs=("$target")
    [ "$jit" = 1 ] && runargs+=("${wargs[@]}")
    status="ok" log=""
    if ! "$NNC" run "${runargs[@]}" --entry "$entry" "${ins[@]}" "${outs[@]}" \
         >"$edir/cli.log" 2>&1; then
      status="run" log="$edir/cli.log"
    fi
    run_us="-" timer_dir=""
    if [ -n "$TIMER" ]; then
      tin=()
      for f in "$golden/$entry".in.*.npy; do tin+=("$(arg_name "$f")=$ROOT/$f"); done
      if "$TIMER" "$target" "$entry" "$edir/timer" "${tin[@]}" >"$edir/timer.log" 2>&1; then
        run_us="$(sed -n 's/^median_us=\([0-9.]*\).*/\1/p' "$edir/timer.log")"
        timer_dir="$edir/timer"
      else
        [ "$status" = ok ] && status="timer" log="$edir/timer.log"
      fi
    fi
    row "$model" "$entry" "$compile_ms" "${run_us:--}" "$status" "$golden" "$edir/cli" \
        "$timer_dir" "$log"
  done
done

if [ "$n_models" = 0 ]; then
  echo "run_examples.sh: no examples/*.nn with a tests/golden/<model>/ directory" >&2
  exit 1
fi

cmp_args=("$RESULTS")
[ "$jit" = 1 ] && cmp_args+=(--jit)
exec "$PY" scripts/compare_golden.py "${cmp_args[@]}"
