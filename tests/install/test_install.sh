#!/usr/bin/env bash
# test_install.sh — `cmake --install` gives a usable, relocatable nnc (cmake/install.cmake):
#   1. install BUILD into a temporary prefix, then move the whole tree elsewhere;
#   2. check the layout, and that libnnc.so exports exactly the functions of nnc.h;
#   3. compile examples/realnvp.nn with the installed nnc (from a copy outside the source
#      tree) and check it linked the installed libnnc_support.a;
#   4. build tests/install/consumer/app.c against the installed runtime with pkg-config, and
#      with CMake's find_package(nnc) (shared and static), and run each;
#   5. import the installed Python package and call the model from Python (JIT and .so).
#   usage: test_install.sh BUILD_DIR SOURCE_DIR CC CMAKE [CFLAGS]
set -euo pipefail
BUILD=${1:?usage: test_install.sh BUILD SRC CC CMAKE [CFLAGS]}
SRC=${2:?}
CC=${3:?}
CMAKE=${4:?}
CFLAGS=${5:-}
TMP=$(mktemp -d /tmp/nnc_install_XXXXXX)
trap 'rm -rf "$TMP"' EXIT
step() { printf '==> %s\n' "$*"; }
die() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }

step "cmake --install $BUILD --prefix $TMP/stage, moved to $TMP/prefix"
"$CMAKE" --install "$BUILD" --prefix "$TMP/stage" >"$TMP/install.log" || { cat "$TMP/install.log"; die "install failed"; }
mv "$TMP/stage" "$TMP/prefix"
P=$TMP/prefix
SO=$(find "$P" -name libnnc.so -print -quit)
[ -n "$SO" ] || die "no libnnc.so under the prefix"
LIBDIR=$(dirname "$SO")
for f in bin/nnc libexec/nnc/nnc-compiler include/nnc.h include/nnc_model.h \
         lib/python3/dist-packages/nnc/__init__.py; do
  [ -e "$P/$f" ] || die "missing $f"
done
for f in libnnc.a libnnc_support.a libnnc.so.0 pkgconfig/nnc.pc cmake/nnc/nncConfig.cmake \
         cmake/nnc/nncConfigVersion.cmake cmake/nnc/nncTargets.cmake; do
  [ -e "$LIBDIR/$f" ] || die "missing ${LIBDIR#$P/}/$f"
done
grep -R -l "$TMP/stage" "$LIBDIR/pkgconfig" "$LIBDIR/cmake" && die "the package files name the install path"

step "libnnc.so exports exactly the functions of nnc.h"
sed -n 's/^[a-z].*[ *]\(nnc_[a-z_]*\)(.*/\1/p' "$SRC/runtime/include/nnc.h" | sort -u >"$TMP/api"
nm -D --defined-only "$SO" | awk '$2 == "T" {sub(/@.*/, "", $3); print $3}' | sort -u >"$TMP/exported"
[ "$(wc -l <"$TMP/api")" -ge 10 ] || die "could not read the functions of nnc.h"
diff "$TMP/api" "$TMP/exported" || die "exports of libnnc.so differ from nnc.h (left: nnc.h)"

step "the installed nnc compiles a model with the installed support library"
mkdir "$TMP/work"
cp "$SRC/examples/realnvp.nn" "$SRC/tests/golden/realnvp/weights.safetensors" "$SRC/tests/golden/realnvp/forward.in.x.npy" "$TMP/work/"
cd "$TMP/work"
printf '#!/bin/sh\necho "$@" >>"%s/link.log"\nexec %s "$@"\n' "$TMP" "${NNC_CC:-cc}" >"$TMP/cc-log"
chmod +x "$TMP/cc-log"
(unset NNC_SUPPORT_LIB; NNC_CC="$TMP/cc-log" "$P/bin/nnc" realnvp.nn -o realnvp.so --weights weights.safetensors)
grep -q "$LIBDIR/libnnc_support.a" "$TMP/link.log" || { cat "$TMP/link.log"; die "did not link $LIBDIR/libnnc_support.a"; }
# again: served from the compile cache by bin/nnc (the same bytes; no link)
cp realnvp.so first.so
(unset NNC_SUPPORT_LIB; NNC_CC="$TMP/cc-log" "$P/bin/nnc" realnvp.nn -o realnvp.so --weights weights.safetensors)
cmp -s first.so realnvp.so || die "the second build differs from the first"
[ "$(grep -c . "$TMP/link.log")" = 1 ] || die "the second build linked again (not served from the cache)"
"$P/bin/nnc" --version
"$P/bin/nnc" run realnvp.so --in x=forward.in.x.npy >/dev/null

step "pkg-config: cc app.c \$(pkg-config --cflags --libs nnc)"
export PKG_CONFIG_PATH=$LIBDIR/pkgconfig
[ "$(pkg-config --modversion nnc)" = "$(sed -n 's/^project(nnc VERSION \([0-9.]*\).*/\1/p' "$SRC/CMakeLists.txt")" ] || die "pkg-config version"
# shellcheck disable=SC2046,SC2086
"$CC" $CFLAGS -std=c11 "$SRC/tests/install/consumer/app.c" $(pkg-config --cflags --libs nnc) -lm \
  -Wl,-rpath,"$LIBDIR" -o app_pc
./app_pc "$PWD/realnvp.so" realnvp.nn weights.safetensors

step "CMake: find_package(nnc) -> nnc::nnc, nnc::nnc_static"
cp -r "$SRC/tests/install/consumer" "$TMP/consumer"
"$CMAKE" -S "$TMP/consumer" -B "$TMP/consumer/build" -DCMAKE_PREFIX_PATH="$P" \
  -DCMAKE_C_COMPILER="$CC" -DCMAKE_C_FLAGS="$CFLAGS" \
  -DMODEL_NN="$TMP/work/realnvp.nn" -DMODEL_WEIGHTS="$TMP/work/weights.safetensors" >"$TMP/cmake.log" ||
  { cat "$TMP/cmake.log"; die "configuring the consumer failed"; }
"$CMAKE" --build "$TMP/consumer/build" >"$TMP/build.log" 2>&1 || { cat "$TMP/build.log"; die "building the consumer failed"; }
"$TMP/consumer/build/app" "$TMP/consumer/build/model.so" realnvp.nn weights.safetensors
"$TMP/consumer/build/app_static" "$TMP/consumer/build/model.so" realnvp.nn weights.safetensors
ldd "$TMP/consumer/build/app_static" | grep -q libnnc && die "app_static depends on libnnc.so"

step "Python: the installed package finds the installed libnnc.so"
preload=""
if [ -n "$CFLAGS" ]; then  # sanitizer build: the instrumented libraries need their runtimes
  preload="$("$CC" -print-file-name=libasan.so):$("$CC" -print-file-name=libubsan.so)"
fi
env -u NNC_LIBRARY PYTHONPATH="$P/lib/python3/dist-packages" PYTHONDONTWRITEBYTECODE=1 \
  ${preload:+LD_PRELOAD=$preload ASAN_OPTIONS=detect_leaks=0} /usr/bin/python3 - <<PY
import numpy as np, nnc
assert nnc.__file__.startswith("$P/"), nnc.__file__
x = np.load("forward.in.x.npy")
with nnc.compile("realnvp.nn", weights="weights.safetensors") as j, nnc.load("realnvp.so") as m:
    z1, ld1 = j.forward(x)
    z2, ld2 = m.forward(x)
    assert np.abs(z1 - z2).max() < 1e-5 and np.abs(ld1 - ld2).max() < 1e-5
print("python: nnc.compile and nnc.load agree")
PY
echo "test_install: ok"
