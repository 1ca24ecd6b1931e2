#!/bin/sh
# test_cli.sh — the `nnc` command's contract: help, version, exit codes (0 success, 1 user
# error, 2 usage error) and the messages of common mistakes.  Runs realnvp through JIT and
# AOT when its golden data is present.
#   usage: tests/unit/test_cli.sh BUILD/nnc SOURCE_DIR
set -u
NNC=${1:?usage: test_cli.sh NNC SOURCE_DIR}
SRC=${2:?usage: test_cli.sh NNC SOURCE_DIR}
TMP=$(mktemp -d /tmp/nnc_cli_XXXXXX)
trap 'rm -rf "$TMP"' EXIT
failures=0

# expect STATUS PATTERN -- ARGS...: run nnc ARGS, check the exit status and that stdout+stderr
# contains PATTERN (a fixed string; empty: anything).
# npy_zeros FILE COUNT: a 1-D float32 .npy of COUNT zeros (format 1.0: magic, header length,
# the header padded with spaces to a multiple of 64 bytes in all, then the data)
npy_zeros() {
  local header="{'descr': '<f4', 'fortran_order': False, 'shape': ($2,), }"
  while [ $(( (10 + ${#header} + 1) % 64 )) -ne 0 ]; do header="$header "; done
  { printf '\223NUMPY\001\000'; printf "\\$(printf %03o $(( ${#header} + 1 )))\\000"
    printf '%s\n' "$header"; head -c $(( 4 * $2 )) /dev/zero; } > "$1"
}

expect() {
  want=$1 pattern=$2
  shift 3
  "$NNC" "$@" >"$TMP/out" 2>&1
  got=$?
  if [ "$got" -ne "$want" ] || { [ -n "$pattern" ] && ! grep -qF -- "$pattern" "$TMP/out"; }; then
    echo "FAIL: nnc $* -> exit $got (want $want), output:"
    sed 's/^/  | /' "$TMP/out"
    [ -n "$pattern" ] && echo "  expected to contain: $pattern"
    failures=$((failures + 1))
  fi
}

G=$SRC/tests/golden/realnvp
M=$SRC/examples/realnvp.nn

expect 0 "usage: nnc FILE.nn -o FILE.so" -- --help
expect 0 "nnc 0.1.0" -- --version
expect 0 "usage: nnc run" -- run --help
expect 0 "usage: nnc check" -- check --help
expect 0 "usage: nnc dump" -- dump --help
expect 0 "usage: nnc FILE.nn -o" -- "$M" --help
expect 2 "usage:" --
expect 2 "unknown option '--bogus'" -- "$M" -o "$TMP/x.so" --bogus
expect 2 "missing -o FILE.so" -- "$M"
expect 2 "option '-o' needs a value" -- "$M" -o
expect 2 "no model file given" -- run
expect 2 "--in expects NAME=PATH.npy" -- run "$M" --in x
expect 2 "missing --stage=STAGE" -- dump "$M"
expect 2 "unknown stage" -- dump --stage=nope "$M"
expect 1 "nope.nn" -- check "$TMP/nope.nn"
# a binary file where a .nn is expected is said to be one, without echoing its bytes
printf '\010\007\022\007pytorch\032\003\n' >"$TMP/binary.nn"
expect 1 "binary.nn: error: not a .nn source file: byte 0 is 0x08" -- run "$TMP/binary.nn"
expect 1 "not a .nn source file" -- check "$TMP/binary.nn"
if tr -d '\n\t' <"$TMP/out" | LC_ALL=C grep -q '[[:cntrl:]]'; then
  echo "FAIL: nnc check binary.nn printed control bytes"; failures=$((failures + 1))
fi
# the same bytes as an .onnx are read as ONNX (compiler/onnx/): a truncated protobuf
cp "$TMP/binary.nn" "$TMP/model.onnx"
expect 1 "model.onnx: error: malformed protobuf at byte 12 (ModelProto.producer_version): a length of 3 bytes runs past the end of the file (1 bytes left)" -- run "$TMP/model.onnx"
expect 1 "malformed protobuf" -- check "$TMP/model.onnx"

if [ -f "$M" ] && [ -f "$G/weights.safetensors" ]; then
  W=$G/weights.safetensors
  expect 0 "ok" -- check "$M"
  expect 0 "z: f32[64, 2]" -- run "$M" --weights "$W" --in x="$G/forward.in.x.npy"
  expect 0 "" -- run "$M" --weights "$W" --entry inverse --in z="$G/inverse.in.z.npy" \
    --out x="$TMP/x.npy"
  [ -s "$TMP/x.npy" ] || { echo "FAIL: --out x did not write $TMP/x.npy"; failures=$((failures + 1)); }
  expect 1 "missing --in x=FILE.npy for input 'x' of entry 'forward'" -- run "$M" --weights "$W"
  expect 1 "has no entry 'nope'" -- run "$M" --weights "$W" --entry nope --in x="$G/forward.in.x.npy"
  expect 1 "has no input 'q'" -- run "$M" --weights "$W" --in q="$G/forward.in.x.npy"
  expect 1 "has no output 'q'" -- run "$M" --weights "$W" --in x="$G/forward.in.x.npy" --out q="$TMP/q.npy"
  expect 1 "input 'x' of entry 'forward' must have rank 2" -- run "$M" --weights "$W" \
    --in x="$G/forward.out.logdet.npy"
  expect 1 "compiled without weights" -- run "$M" --in x="$G/forward.in.x.npy"
  expect 0 "" -- "$M" -o "$TMP/realnvp.so" --weights "$W" --header "$TMP/realnvp.h"
  expect 0 "logdet: f32[64]" -- run "$TMP/realnvp.so" --in x="$G/forward.in.x.npy"
  expect 0 "" -- "$M" -o "$TMP/plain.so"
  expect 1 "compiled without weights" -- run "$TMP/plain.so" --in x="$G/forward.in.x.npy"
  expect 0 "lp: f32[64]" -- run "$TMP/plain.so" --weights "$W" --entry log_prob \
    --in x="$G/forward.in.x.npy"
  for stage in ast ir fused llvm; do expect 0 "" -- dump --stage=$stage "$M"; done
  # the compile cache (docs/cli.md): a hit writes the same library; info and clear
  NNC_CACHE_DIR="$TMP/cache"
  export NNC_CACHE_DIR
  expect 0 "" -- "$M" -o "$TMP/cached1.so" --weights "$W"
  expect 0 "" -- "$M" -o "$TMP/cached2.so" --weights "$W"
  cmp -s "$TMP/cached1.so" "$TMP/cached2.so" ||
    { echo "FAIL: a cache hit wrote another library"; failures=$((failures + 1)); }
  expect 0 "directory: $TMP/cache" -- cache
  expect 0 "state: on" -- cache info
  expect 0 "removed " -- cache clear
  expect 0 "entries: 0," -- cache
  NNC_CACHE=off expect 0 "state: off" -- cache
  unset NNC_CACHE
  expect 2 "unknown cache command 'bogus'" -- cache bogus
  expect 0 "usage: nnc cache" -- help cache
  unset NNC_CACHE_DIR
  expect 0 "logdet: f32[64]" -- run "$TMP/realnvp.so" --threads 3 --in x="$G/forward.in.x.npy"
  expect 2 "--threads needs a number from 1 to 1024, not '0'" -- run "$TMP/realnvp.so" --threads 0 \
    --in x="$G/forward.in.x.npy"
  expect 2 "not 'two'" -- run "$TMP/realnvp.so" --threads two --in x="$G/forward.in.x.npy"
  expect 0 "parallel for" -- dump --stage=loops "$M"
  expect 0 "memory forward planned=" -- dump --stage=memory --dims N=64 "$M"
  expect 1 "--dims: the model has no symbolic dim 'T'" -- dump --stage=memory --dims T=3 "$M"
  expect 1 "--dims: N needs a positive integer value" -- dump --stage=memory --dims N=0 "$M"
  expect 1 "--dims: expected NAME=VALUE" -- dump --stage=memory --dims N "$M"
  # derived dims are computed from the given ones: a convolution's output size, a square
  printf 'conv = Conv2d(1, 1, 3, stride=2)\nexport f(x: f32[1, 1, H, 8], q: f32[T, 4]) -> (y: f32[1, 1, (H - 1) / 2, 3], s: f32[T, T]) {\n  y = conv(x)\n  s = q @ transpose(q, 0, 1)\n}\n' > "$TMP/derived.nn"
  expect 0 "memory f planned=" -- dump --stage=memory --dims H=9,T=100 "$TMP/derived.nn"
  expect 1 "--dims: (H+1)/2-1 is computed from H; give that" -- dump --stage=memory --dims '(H+1)/2-1=4' "$TMP/derived.nn"
  expect 1 "conv2d: the output height (H+1)/2-1 is 0 for H = 1" -- dump --stage=memory --dims T=3 "$TMP/derived.nn"
  # an input of a derived size is checked against the computed value, never binds it
  printf 'export f(a: f32[T], x: f32[T * T]) -> (y: f32[T, T]) {\n  y = reshape(x, [T, T]) + a\n}\nexport g(x: f32[H + 1]) -> (y: f32[H + 1]) {\n  y = x + 1.0\n}\n' > "$TMP/square_in.nn"
  for n in 3 8 9; do npy_zeros "$TMP/z$n.npy" "$n"; done
  expect 0 "y: f32[3, 3]" -- run "$TMP/square_in.nn" --entry f --in a="$TMP/z3.npy" --in x="$TMP/z9.npy"
  expect 1 "input 'x' of entry 'f': dim 0 is 8 but T*T = 9 here" -- run "$TMP/square_in.nn" --entry f --in a="$TMP/z3.npy" --in x="$TMP/z8.npy"
  expect 1 "cannot infer H from the input shapes (the inputs have H+1, computed from it, not H itself)" -- run "$TMP/square_in.nn" --entry g --in x="$TMP/z9.npy"
  # the plan stays within 1.2x of the lifetime lower bound (one group of symbols here)
  "$NNC" dump --stage=memory --dims N=64 "$M" | awk '/^memory/ {
      split($3, p, "="); split($4, b, "=");
      if (p[2] > 1.2 * b[2] || p[2] < b[2]) { print "FAIL: " $0; bad = 1 } }
      END { exit bad }' || failures=$((failures + 1))
fi

# issue 16: a weights file replaces embedded weights, derived parameters included (infogan
# folds BatchNorms into its convolutions and linears): the same bits as the embedded ones
GI=$SRC/tests/golden/infogan
if [ -f "$GI/weights.safetensors" ]; then
  WI=$GI/weights.safetensors
  expect 0 "" -- "$SRC/examples/infogan.nn" -o "$TMP/infogan.so" --weights "$WI"
  expect 0 "" -- "$SRC/examples/infogan.nn" -o "$TMP/infogan_plain.so"
  for e in discriminate generate; do
    ins=""
    for f in "$GI/$e".in.*.npy; do n=${f#"$GI/$e".in.}; ins="$ins --in ${n%.npy}=$f"; done
    for f in "$GI/$e".out.*.npy; do out=${f#"$GI/$e".out.}; out=${out%.npy}; break; done
    # shellcheck disable=SC2086
    expect 0 "" -- run "$TMP/infogan.so" --entry $e $ins --out "$out=$TMP/emb.npy"
    # shellcheck disable=SC2086
    expect 0 "" -- run "$TMP/infogan.so" --weights "$WI" --entry $e $ins --out "$out=$TMP/rep.npy"
    # shellcheck disable=SC2086
    expect 0 "" -- run "$TMP/infogan_plain.so" --weights "$WI" --entry $e $ins --out "$out=$TMP/rt.npy"
    cmp -s "$TMP/emb.npy" "$TMP/rep.npy" && cmp -s "$TMP/emb.npy" "$TMP/rt.npy" ||
      { echo "FAIL: infogan $e: --weights on an embedded build differs from the embedded weights"; failures=$((failures + 1)); }
  done

  # files that are not regular are refused before anything is read (no endless read)
  expect_t() { # like expect, under a time limit
    want=$1 pattern=$2
    shift 3
    timeout 60 "$NNC" "$@" >"$TMP/out" 2>&1
    got=$?
    if [ "$got" -ne "$want" ] || ! grep -qF -- "$pattern" "$TMP/out"; then
      echo "FAIL: nnc $* -> exit $got (want $want), output:"; sed 's/^/  | /' "$TMP/out"
      echo "  expected to contain: $pattern"; failures=$((failures + 1))
    fi
  }
  expect_t 1 "/dev/zero: error: not a regular file (a character device)" -- \
    run "$TMP/infogan_plain.so" --weights /dev/zero --entry discriminate --in x="$GI/discriminate.in.x.npy"
  expect_t 1 "/dev/zero: error: not a regular file (a character device)" -- \
    run "$TMP/infogan.so" --entry discriminate --in x=/dev/zero
  expect_t 1 "error: not a regular file (a directory)" -- \
    run "$TMP/infogan_plain.so" --weights "$TMP" --entry discriminate --in x="$GI/discriminate.in.x.npy"

  # a truncated library is an error naming it, not SIGBUS
  size=$(wc -c <"$TMP/infogan.so")
  head -c 4096 "$TMP/infogan.so" >"$TMP/cut.so"
  expect_t 1 "$TMP/cut.so: error: the library is truncated" -- \
    run "$TMP/cut.so" --entry discriminate --in x="$GI/discriminate.in.x.npy"
  head -c $((size / 2)) "$TMP/infogan.so" >"$TMP/half.so"
  expect_t 1 "$TMP/half.so: error: the library is truncated" -- \
    run "$TMP/half.so" --entry discriminate --in x="$GI/discriminate.in.x.npy"
fi

# Untrusted inputs (docs/cli.md): .npy files whose shapes are empty, huge or bind huge dims
# through zero-size arrays are a message and exit 1, never a crash, a hang or a huge allocation.
# npy FILE SHAPE [DATA_BYTES]: an '<f4' file of that shape holding DATA_BYTES zero bytes.
npy() {
  hdr="{'descr': '<f4', 'fortran_order': False, 'shape': $2, }"
  pad=$(( 127 - 10 - ${#hdr} ))
  { printf '\223NUMPY\001\000'; printf "\\$(printf %03o $((pad + ${#hdr} + 1)))\\000"
    printf '%s%*s\n' "$hdr" "$pad" ''; head -c "${3:-0}" /dev/zero; } >"$1"
}
cat >"$TMP/dims.nn" <<'EOF'
export twice(x: f32[N, 2]) -> (y: f32[N, 2]) { y = x * 2.0 }
export outer(a: f32[N, K], b: f32[K, M]) -> (y: f32[N, M]) { y = relu(a @ b) }
export rows(a: f32[N, K], b: f32[K, M]) -> (y: f32[N]) {
  t = softmax(a @ b, axis=1)
  y = sum(t * t, axis=1)
}
EOF
npy "$TMP/empty.npy" "(0, 2)"
npy "$TMP/three.npy" "(3, 2)" 24
npy "$TMP/huge.npy" "(1099511627776, 2)"
npy "$TMP/over.npy" "(4611686018427387904, 4)"
npy "$TMP/neg.npy" "(-3, 2)"
npy "$TMP/tall0.npy" "(1099511627776, 0)"
npy "$TMP/wide0.npy" "(0, 1099511627776)"
D=$TMP/dims.nn
expect 0 "y: f32[0, 2] (empty)" -- run "$D" --in x="$TMP/empty.npy"
expect 0 "" -- run "$D" --in x="$TMP/empty.npy" --out y="$TMP/y0.npy"
head -c 128 "$TMP/y0.npy" | grep -q "'shape': (0, 2)" ||
  { echo "FAIL: --out of an empty batch is not a (0, 2) .npy"; failures=$((failures + 1)); }
expect 0 "y: f32[3, 2]" -- run "$D" --in x="$TMP/three.npy"
expect 1 "huge.npy: error: data too short: 0 bytes from byte 128 but '<f4' shape (1099511627776, 2) needs 8796093022208" -- \
  run "$D" --in x="$TMP/huge.npy"
expect 1 "over.npy: error: shape (4611686018427387904, 4) of '<f4' overflows" -- run "$D" --in x="$TMP/over.npy"
expect 1 "neg.npy: error: invalid header dict at header byte 51: negative shape entry" -- run "$D" --in x="$TMP/neg.npy"
expect 1 "nnc: error: output 'y' of entry 'outer' (f32[N, M]) would need more than 2^63 bytes (N = 1099511627776, M = 1099511627776)" -- \
  run "$D" --entry outer --in a="$TMP/tall0.npy" --in b="$TMP/wide0.npy"
expect 1 "nnc: error: entry 'rows': the workspace would need more than 2^63 bytes (N = 1099511627776, M = 1099511627776)" -- \
  run "$D" --entry rows --in a="$TMP/tall0.npy" --in b="$TMP/wide0.npy"
expect 2 "--threads needs a number from 1 to 1024, not '5000'" -- run "$D" --threads 5000 --in x="$TMP/three.npy"
expect 2 "--threads needs a number from 1 to 1024, not '-1'" -- run "$D" --threads -1 --in x="$TMP/three.npy"
expect 1 "has no entry 'nope'" -- run "$D" --entry nope --in x="$TMP/three.npy"

# Out of memory while compiling (docs/language.md, Limits): with the compiler's arena capped
# by the test hook NNC_ARENA_LIMIT, every command that compiles says so and exits 1.
NNC_ARENA_LIMIT=100000
export NNC_ARENA_LIMIT
oom="out of memory while compiling $M: the compiler's arena reached its limit of 100000 bytes (NNC_ARENA_LIMIT)"
expect 1 "nnc: error: $oom" -- check "$M"
expect 1 "nnc: error: $oom" -- "$M" -o "$TMP/oom.so"
expect 1 "nnc: error: $oom" -- dump --stage=llvm "$M"
expect 1 "nnc: error: $oom" -- run "$M" --in x="$TMP/three.npy"
unset NNC_ARENA_LIMIT
[ -e "$TMP/oom.so" ] && { echo "FAIL: a compilation out of memory wrote $TMP/oom.so"; failures=$((failures + 1)); }

# an index outside its dimension fails the run, naming the place, op, argument and value
cat >"$TMP/hot.nn" <<'EOF'
export hot(t: f32[N]) -> (y: f32[N, 4]) {
  y = one_hot(t, 4)
}
EOF
npy "$TMP/t_frac.npy" "(2,)"; printf '\000\000\100\100\000\000\220\100' >>"$TMP/t_frac.npy" # [3, 4.5]
npy "$TMP/t_big.npy" "(2,)"; printf '\000\000\100\100\000\000\200\100' >>"$TMP/t_big.npy"   # [3, 4]
npy "$TMP/t_ok.npy" "(2,)"; printf '\000\000\100\100\000\000\000\000' >>"$TMP/t_ok.npy"     # [3, 0]
expect 0 "" -- run "$TMP/hot.nn" --in t="$TMP/t_ok.npy" --out y="$TMP/y.npy"
expect 1 "error: entry 'hot': $TMP/hot.nn:2:7: one_hot: argument 'tensor' holds 4, outside [0, 4)" -- \
  run "$TMP/hot.nn" --threads 3 --in t="$TMP/t_big.npy" --out y="$TMP/y.npy"
expect 1 "one_hot: argument 'tensor' holds 4.5, outside [0, 4)" -- \
  run "$TMP/hot.nn" --in t="$TMP/t_frac.npy" --out y="$TMP/y.npy"

# i64 outputs print as exact integers and are written as '<i8' (docs/cli.md)
cat >"$TMP/ints.nn" <<'EOF'
export big(x: f32[N, 2]) -> (y: i64[N, 2]) { y = x + 1099511627776.0 }
EOF
expect 0 "y: i64[3, 2]" -- run "$TMP/ints.nn" --in x="$TMP/three.npy"
expect 0 "[1099511627776, 1099511627776, 1099511627776" -- run "$TMP/ints.nn" --in x="$TMP/three.npy"
expect 0 "" -- run "$TMP/ints.nn" --in x="$TMP/three.npy" --out y="$TMP/ints.npy"
if ! head -c 80 "$TMP/ints.npy" | grep -q "'descr': '<i8'"; then
  echo "FAIL: an i64 output is not written as '<i8'"
  failures=$((failures + 1))
fi
# $NNC_PROFILE (docs/c-api.md, Profiling): per-kernel times at exit, JIT and .so alike; off
# by default; a file it cannot write is named
cat >"$TMP/prof.nn" <<'EOF'
export scaled(x: f32[N, 2]) -> (y: f32[N, 2]) { y = softmax(x * 2.0, 1) }
EOF
expect 0 "" -- "$TMP/prof.nn" -o "$TMP/prof.so"
for model in "$TMP/prof.nn" "$TMP/prof.so"; do
  NNC_PROFILE=1 "$NNC" run "$model" --in x="$TMP/three.npy" >"$TMP/out" 2>"$TMP/err"
  if ! grep -q "^nnc profile (pid [0-9]*): prof.scaled, 1 call, [0-9.]* us$" "$TMP/err" ||
     ! grep -qE "^ +[0-9.]+% +[0-9.]+ +1  scaled\.k0\." "$TMP/err" || ! grep -q "(outside the kernels)" "$TMP/err" ||
     ! grep -q "y: f32\[3, 2\]" "$TMP/out"; then
    echo "FAIL: NNC_PROFILE=1 nnc run $model: no profile of the call on stderr:"
    sed 's/^/  | /' "$TMP/err"
    failures=$((failures + 1))
  fi
done
"$NNC" run "$TMP/prof.so" --in x="$TMP/three.npy" >/dev/null 2>"$TMP/err"
if [ -s "$TMP/err" ]; then
  echo "FAIL: without NNC_PROFILE a run printed to stderr:"
  sed 's/^/  | /' "$TMP/err"
  failures=$((failures + 1))
fi
for i in 1 2; do
  NNC_PROFILE="$TMP/profile.txt" "$NNC" run "$TMP/prof.so" --in x="$TMP/three.npy" >/dev/null 2>>"$TMP/err"
done
if [ "$(grep -c "prof.scaled, 1 call," "$TMP/profile.txt" 2>/dev/null)" != 2 ] || [ -s "$TMP/err" ]; then
  echo "FAIL: NNC_PROFILE=FILE: two runs did not append two profiles to the file"
  failures=$((failures + 1))
fi
NNC_PROFILE="$TMP/no/such/dir" "$NNC" run "$TMP/prof.so" --in x="$TMP/three.npy" >/dev/null 2>"$TMP/err"
if ! grep -qF "nnc: cannot write the profile to '$TMP/no/such/dir' (\$NNC_PROFILE): No such file or directory" "$TMP/err"; then
  echo "FAIL: NNC_PROFILE naming a file that cannot be written: no message naming it"
  sed 's/^/  | /' "$TMP/err"
  failures=$((failures + 1))
fi
if [ "$failures" -ne 0 ]; then
  echo "$failures CLI check(s) failed"
  exit 1
fi
echo "CLI checks passed"
