#!/bin/sh
# test_headers.sh — every generated C header compiles cleanly: for every example and
# tests/compile/header/*.nn, `nnc X.nn -o X.so --header X.h`, then a C file that includes the
# header and takes the address of every entry function is compiled with
# `cc -std=c11 -Wall -Wextra -pedantic -Werror` (and as C++ when a C++ compiler is found).
#   usage: tests/unit/test_headers.sh BUILD/nnc SOURCE_DIR [CC]
set -u
NNC=${1:?usage: test_headers.sh NNC SOURCE_DIR [CC]}
SRC=${2:?usage: test_headers.sh NNC SOURCE_DIR [CC]}
CC=${3:-cc}
CXX=$(command -v c++ || command -v g++ || command -v clang++ || true)
TMP=$(mktemp -d /tmp/nnc_headers_XXXXXX)
trap 'rm -rf "$TMP"' EXIT
failures=0

for nn in "$SRC"/examples/*.nn "$SRC"/tests/compile/header/*.nn; do
  m=$(basename "$nn" .nn)
  if ! "$NNC" "$nn" -o "$TMP/$m.so" --header "$TMP/$m.h" >"$TMP/out" 2>&1; then
    echo "FAIL: nnc $nn"; sed 's/^/  | /' "$TMP/out"; failures=$((failures + 1)); continue
  fi
  # the names of awkward_names.nn: state carried through (h in, h_out out), x_t kept
  want="int awkward_names_step(awkward_names_ctx *ctx, int64_t B, const float *x_t, const float *h, const float *c, const float *h_out, float *y, float *h_out_, float *c_out);"
  if [ "$m" = awkward_names ] && ! grep -qxF "$want" "$TMP/$m.h"; then
    echo "FAIL: $m.h does not declare"; echo "  $want"; grep "^int ${m}_step" "$TMP/$m.h" | sed 's/^/  got: /'
    failures=$((failures + 1))
  fi
  # every typed entry function, by name, so that each prototype is used
  { echo "#include \"$m.h\""
    echo "typedef void (*fn)(void);"
    echo "fn entries[] = {"
    sed -n "s/^int \\(${m}_[A-Za-z0-9_]*\\)(${m}_ctx \\*ctx.*/  (fn)\\&\\1,/p" "$TMP/$m.h"
    echo "  0};"
    echo "int main(void) { return entries[0] == 0; }"; } >"$TMP/$m.c"
  if ! "$CC" -std=c11 -Wall -Wextra -pedantic -Werror -I"$TMP" -c "$TMP/$m.c" -o "$TMP/$m.o" >"$TMP/out" 2>&1; then
    echo "FAIL: $m.h does not compile as C11:"; sed 's/^/  | /' "$TMP/out"; failures=$((failures + 1))
  fi
  if [ -n "$CXX" ] && ! "$CXX" -x c++ -Wall -Wextra -Werror -I"$TMP" -c "$TMP/$m.c" -o "$TMP/$m.o" >"$TMP/out" 2>&1; then
    echo "FAIL: $m.h does not compile as C++:"; sed 's/^/  | /' "$TMP/out"; failures=$((failures + 1))
  fi
done
[ "$failures" -eq 0 ] && echo "test_headers: all headers compile" || echo "test_headers: $failures failure(s)"
[ "$failures" -eq 0 ]
