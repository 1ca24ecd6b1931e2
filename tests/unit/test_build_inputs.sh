#!/bin/sh
# test_build_inputs.sh — a tripwire for the build cache (compiler/codegen/build_cache.h): its key
# covers what the compiler reads from outside — the files a build names (model, weights,
# includes, the support library), NNC_* variables, the host's CPUID and cache sizes — and a
# hit serves the old library without running the compiler.  Code that starts reading
# something else (another environment variable, a file from somewhere new) could make a hit
# serve a stale library silently, so this test fails until that code is reviewed against
# the key and listed here.
#   usage: test_build_inputs.sh SOURCE_DIR
set -eu
SRC=${1:?usage: test_build_inputs.sh SOURCE_DIR}
cd "$SRC"
fail=0

# Environment variables read by the compiler, the front end and the support code the compiler
# runs (the init entry): NNC_* ones are in the key (build_cache.c, add_environment); others
# only where they cannot change a library: HOME, XDG_CACHE_HOME (where the cache is), TMPDIR
# (where the link's temporary objects go).  getenv(name) with a variable name: host_caches.c
# (NNC_PLAN_L1D, NNC_PLAN_L2) and pool.c (NNC_NUM_THREADS, NNC_PARALLEL_GRAIN).
bad=$(grep -rnoE '\bgetenv\([^)]*\)' compiler dsl runtime/support |
      grep -vE 'getenv\("NNC_[A-Z0-9_]+"\)|getenv\("(HOME|XDG_CACHE_HOME|TMPDIR)"\)' |
      grep -vE '^(compiler/codegen/host_caches\.c|runtime/support/pool\.c):[0-9]+:getenv\(name\)$' || true)
if [ -n "$bad" ]; then
  echo "FAIL: environment variables the build key does not cover (see build_cache.h):"
  echo "$bad"
  fail=1
fi

# Files opened by the compiler and the front end: only in these files, each reviewed — the
# build key hashes what they read, or what they read cannot change a library.
allowed='compiler/codegen/build_cache.c   the key: the inputs themselves
compiler/codegen/cache.c         the cache: its own entries
compiler/codegen/header.c        writes the --header file
compiler/codegen/host_caches.c   sysfs cache sizes: in the key
compiler/codegen/native.c        the link inputs: in the key
compiler/codegen/target.c        the link: temporary objects it writes
compiler/compile.c               the model file: in the key
compiler/main/nnc_launch.c       finds the compiler and the support library
compiler/main/nnc_main.c         nnc run: inputs and outputs, not a build
compiler/onnx/onnx_external.c    external data: such builds are not stored (store_build)
compiler/onnx/onnx_reader.c      the model file: in the key
compiler/onnx/onnx_to_nn.c       nnc import writes .nn and weights, not a build
dsl/include.c                    includes: listed in the entry with their hashes'
for f in $(grep -rlE '\b(fopen|open|openat|nnc_read_file|nnc_map_file|opendir|freopen)\(' compiler dsl); do
  printf '%s\n' "$allowed" | grep -q "^$f " || {
    echo "FAIL: $f opens files; review what it reads against the build key (build_cache.h) and list it here"
    fail=1
  }
done
[ "$fail" = 0 ] && echo "ok: every outside input the compiler reads is covered by the build key"
exit "$fail"
