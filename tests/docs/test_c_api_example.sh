#!/bin/sh
# test_c_api_example.sh — the runtime-API program in docs/c-api.md compiles and runs as shown:
# it is extracted (the C block that starts with `#include <stdio.h>`), built against this
# build's libnnc.so as the doc's "Building against the runtime" says, and run on realnvp.so.
#   usage: test_c_api_example.sh NNC LIBNNC_DIR SOURCE_DIR CC [CFLAGS]
set -eu
NNC=$1 LIBDIR=$2 SRC=$3 CC=$4 CFLAGS=${5:-}
TMP=$(mktemp -d /tmp/nnc_capi_XXXXXX)
trap 'rm -rf "$TMP"' EXIT
awk '/^```c$/ {c = 1; buf = ""; next} /^```$/ {if (c && buf ~ /^#include <stdio.h>/) {printf "%s", buf; exit} c = 0; next}
     c {buf = buf $0 "\n"}' "$SRC/docs/c-api.md" >"$TMP/app.c"
grep -q 'nnc_model_load("realnvp.so"' "$TMP/app.c" || { echo "FAIL: no runtime-API example found in docs/c-api.md"; exit 1; }
cd "$TMP"
"$NNC" "$SRC/examples/realnvp.nn" -o realnvp.so --weights "$SRC/tests/golden/realnvp/weights.safetensors"
# shellcheck disable=SC2086
"$CC" $CFLAGS app.c -I"$SRC/runtime/include" -L"$LIBDIR" -lnnc -Wl,-rpath,"$LIBDIR" -o app
./app | tee out.txt
grep -q '^z\[0\] = (' out.txt
