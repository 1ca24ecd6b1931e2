/* build_cache.h — the compile cache's first level for ahead-of-time builds: the library that
 * `nnc FILE -o LIB.so` wrote before, found from the compile's inputs alone, before the front
 * end, the weights check, the init entry and the LLVM module (native.h keys the module,
 * which takes all of those to build).  A warm `nnc` then costs reading and hashing its
 * inputs and copying the library; the `nnc` command does it without loading LLVM at all
 * (compiler/main/nnc_launch.c).
 *
 * The build key covers every input the library depends on:
 *   - this nnc: its version and NNC_BUILD_FINGERPRINT, a hash of every source of the
 *     compiler (front end, passes, lowering, code generation) and LLVM's version;
 *   - the host: its CPU's identity (CPUID's vendor, family, model, stepping, brand and
 *     feature bits, the OS's enabled vector state; on other machines the kernel's hardware
 *     capabilities and the CPU's ID register) and the data cache sizes the plans use;
 *   - the environment: every NNC_* variable but those that only find the cache (NNC_CACHE*),
 *     so that NNC_PLAN_SIMD, NNC_PLAN_L2 and whatever variable comes next are covered
 *     without being listed (tests/unit/test_build_inputs.sh fails on a compiler that reads
 *     another kind of variable, or files from a new place);
 *   - the model file's absolute path (includes are found relative to it) and bytes, the
 *     weights file's bytes, the -D defines in order, what the build makes (BuildKind) and,
 *     for a library, the link (aot_link_args: the support library's path and bytes, OpenBLAS,
 *     $NNC_CC).
 * Files the model includes are known only after parsing it: the entry stored under the build
 * key lists them, each with the hash of its bytes, and a look-up re-reads and compares them
 * (a changed include is a miss).  The entry then names the library entry (native.c's library
 * key), which holds the bytes; one library serves every build key that leads to it.  A JIT
 * compile of the same inputs (nnc_compile_jit, what nnc.compile calls) has an entry of its
 * own, naming the module's object code, which it loads without building the module; so does
 * a build that writes a C header (--header), whose entry holds the header's bytes.
 *
 * A miss is never an error: the caller compiles as without the cache and stores the entry. */
#ifndef NNC_BUILD_CACHE_H
#define NNC_BUILD_CACHE_H

#include <stdbool.h>
#include <stddef.h>

#include "cache.h"

#define AOT_LINK_ARGS 4

/* What `nnc FILE -o LIB.so` links every library with: the support library ($NNC_SUPPORT_LIB,
 * else the build tree's, else the installed one), OpenBLAS, libm, -Bsymbolic. */
void aot_link_args(const char *args[AOT_LINK_ARGS]);

/* What a build makes: a library (`nnc -o`), a library and its C header (`--header`: the
 * entry keeps the header's bytes), or object code for the JIT (nnc_compile_jit, what
 * nnc.compile runs: the entry names the module's object code; no link). */
typedef enum { BUILD_LIBRARY, BUILD_LIBRARY_HEADER, BUILD_JIT } BuildKind;

typedef struct BuildInputs {
  BuildKind kind;
  const char *model_path;           /* as given (relative to the working directory or absolute) */
  const char *weights_path;         /* NULL: none */
  const char *const *defines;       /* "NAME=VALUE", in command-line order */
  int ndefines;
} BuildInputs;

/* The build key of `in`: true, or false when there is none (a file cannot be read, the host's
 * identity is unknown): then there is no look-up and no store. */
bool build_key(const BuildInputs *in, CacheKey *key);

/* The key that the entry under `key` names, when the files it lists are unchanged: 0, or 1 on
 * a miss (no entry, a damaged one, an include changed). */
int build_cache_lookup(const Cache *c, const CacheKey *key, CacheKey *named);

/* The library the entry under `key` names, written to out_path, and the header it holds to
 * header_path (NULL: none): 0 when written; 1 on a miss (as build_cache_lookup, the library
 * entry gone, no header in the entry); -1 when a file cannot be written (the message in
 * err). */
int build_cache_fetch(const Cache *c, const CacheKey *key, const char *out_path,
                      const char *header_path, char *err, size_t errlen);

/* A file the build read besides the model and the weights (an include): its path as the
 * front end opened it (relative to the working directory, or absolute) and the bytes it
 * compiled — not the file's bytes now, which may have changed since. */
typedef struct BuildDep {
  const char *path;
  const void *data;
  size_t len;
} BuildDep;

/* Store under `key` that the build read deps[ndeps], made what is stored under `named` (a
 * library, or object code) and wrote header[header_len] (NULL, 0: no header).  Silent when
 * it cannot (a path too long, the cache refusing). */
void build_cache_store(const Cache *c, const CacheKey *key, const BuildDep *deps, int ndeps,
                       const CacheKey *named, const void *header, size_t header_len);

/* data[len] as the file `path`, made anew as the linker does: 0, or -1 with a message. */
int library_file_write(const char *path, const void *data, size_t len, char *err, size_t errlen);

#endif
