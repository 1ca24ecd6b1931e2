/* native.h — a model's LLVM module to native code through the compile cache (cache.h): the
 * module's key, its object code (what the JIT loads and the AOT path links) and, for AOT,
 * the linked shared library.  A hit skips LLVM's optimiser and code generator (and, for a
 * library, the link); a miss does them and stores the result.  Cached and freshly made
 * code are the same bytes, so a model computes the same bits either way.
 *
 * The key of a module covers everything its object code depends on: the module's bitcode
 * (the embedded weights, the global `nnc.weights` of model_table.c, hashed directly rather
 * than through the bitcode writer), the optimisation pipeline, target_identity (LLVM's
 * version, triple, CPU, features), nnc's version and a fingerprint of the sources that turn
 * a module into code (this file, target.c, split.c, cache.c: NNC_NATIVE_FINGERPRINT, made
 * by CMake).
 * A library's key adds the link: $NNC_CC, the link arguments, and the contents of the
 * archives and objects among them (the support library). */
#ifndef NNC_NATIVE_H
#define NNC_NATIVE_H

#include "cache.h"
#include "split.h"
#include "target.h"

/* The key of m's object code under pipeline p.  m is unchanged. */
CacheKey native_module_key(const Target *t, LLVMModuleRef m, TargetPipeline p);
/* The same as another nnc would compute it: `version` in place of this build's version and
 * source fingerprint (the tests check that another version misses). */
CacheKey native_module_key_as(const Target *t, LLVMModuleRef m, TargetPipeline p,
                              const char *version);

/* The object code of m (an object per part, split.h; objcode_free them): from cache c, else
 * verified, optimised with pipeline p, emitted and stored.  With the cache on, *stored_as
 * (when not NULL) gets its key.  m is rewritten; dispose it afterwards.  0, or -1 with a
 * message (an invalid module, a failed code generation). */
int native_object(Target *t, const Cache *c, LLVMModuleRef m, TargetPipeline p, CacheKey *stored_as,
                  char *err, size_t errlen, ObjCode *out);
/* The object code stored under k (as native_object stores it): 0, or -1 on a miss. */
int native_cached_object(const Cache *c, const CacheKey *k, ObjCode *out);

/* AOT: the shared library of m (pipeline PIPELINE_MODEL) written to out_path, linked as
 * target_link_shared_lib does; from the cache when it holds it (or object code from it: a
 * JIT compile stores that).  With the cache on, *stored_as gets the key the library is
 * stored under (for build_cache.h's entries).  m is rewritten.  0, or with a message in err NATIVE_ECODE (the
 * module does not verify, or code generation failed) or NATIVE_ELINK (the link failed or
 * out_path cannot be written). */
enum { NATIVE_ECODE = -1, NATIVE_ELINK = -2 };
int native_shared_lib(Target *t, const Cache *c, LLVMModuleRef m, const char *out_path,
                      const char *const *link_args, int n_link_args, CacheKey *stored_as,
                      char *err, size_t errlen);

#endif
