/* target.h — turns an LLVM module into native code for the host, two ways: an object file
 * linked into a shared library by the system C compiler driver (AOT), or machine code in
 * this process through an ORC LLJIT (JIT).  Both optimise with a new-pass-manager pipeline
 * (TargetPipeline) and compile for the host CPU and its features; native.c puts the compile
 * cache in front of them.
 *
 * Ownership and threading:
 *  - A Target owns one host TargetMachine.  It is not thread-safe: use one per thread
 *    (create one per compile).  target_* never take ownership of the module passed in;
 *    target_emit_asm / target_emit_shared_lib codegen a clone, so the module is unchanged;
 *    target_emit_object rewrites it (dispose it afterwards).
 *  - A Jit owns an LLJIT, the LLVM context modules for it are built in (jit_context), and a
 *    Target used to optimise them.  Build modules with jit_module_new (already configured)
 *    or in jit_context(j); jit_add_module takes ownership of the module in every case,
 *    success or failure.  Modules built in jit_context(j) but never added must be disposed
 *    by the caller before jit_free.  jit_free releases the JIT'd code, so function
 *    pointers from jit_lookup are dead afterwards.
 *  - Many Jits may live at once, on different threads; one Jit (and its context) must be
 *    used by one thread at a time.  The only global state is LLVM's one-time target init.
 *  - Errors: functions returning int give 0 / -1, pointers give non-NULL / NULL; on failure
 *    a message is written to err (errlen bytes, always NUL-terminated; err may be NULL). */
#ifndef NNC_TARGET_H
#define NNC_TARGET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <llvm-c/Core.h>

#include "host_caches.h"

typedef struct Target Target;

/* Host triple, CPU and features, PIC, default code model; code generator at the aggressive
 * level (at none for PIPELINE_ONCE's code: target_codegen_text). */
Target *target_new_host(char *err, size_t errlen);
void target_free(Target *t); /* NULL harmless */
/* Set the module's triple and data layout.  Call before building layout-dependent IR. */
void target_configure_module(Target *t, LLVMModuleRef m);
/* Everything besides a module that decides its object code: LLVM's version, the triple, CPU
 * and features, the code generator's settings (a part of the compile cache's keys); and the
 * cache sizes the lowering planned for (target_host_caches: they reach the module's code
 * already, named here so that no key can miss them). */
const char *target_identity(const Target *t);

/* The optimisation pipelines: the model's code, and code that runs once (the init entry
 * that computes derived parameters while compiling). */
typedef enum TargetPipeline { PIPELINE_MODEL, PIPELINE_ONCE } TargetPipeline;
const char *target_pipeline_text(TargetPipeline p); /* the LLVMRunPasses text */
const char *target_codegen_text(TargetPipeline p);  /* its code generator's settings */
/* Verify m (the verifier's message on failure), then run pipeline p on it in place. */
int target_optimize_with(Target *t, LLVMModuleRef m, TargetPipeline p, char *err, size_t errlen);
/* The same with PIPELINE_MODEL. */
int target_optimize(Target *t, LLVMModuleRef m, char *err, size_t errlen);
/* Textual assembly of m, malloc'd (caller frees). */
char *target_emit_asm(Target *t, LLVMModuleRef m, char *err, size_t errlen);
/* The object code of m (already optimised by pipeline p), by p's code generator, malloc'd
 * into *obj, *len.  Rewrites m. */
int target_emit_object(Target *t, LLVMModuleRef m, TargetPipeline p, void **obj, size_t *len,
                       char *err, size_t errlen);
/* Write each object objs[i] (lens[i] bytes) into a temp file (removed afterwards) and run
 *   $NNC_CC (default "cc") -shared -o out_path OBJ... link_args...
 * without a shell; NNC_CC is split on blanks ("ccache gcc" works, no quoting).  On failure
 * err holds the exit status and the driver's output. */
int target_link_shared_lib(const void *const *objs, const size_t *lens, int n_objs,
                           const char *out_path, const char *const *link_args, int n_link_args,
                           char *err, size_t errlen);
/* The same for the object code of m (a clone of it; m should already be optimised). */
int target_emit_shared_lib(Target *t, LLVMModuleRef m, const char *out_path,
                           const char *const *link_args, int n_link_args, char *err,
                           size_t errlen);

/* The host's SIMD registers, for kernels that block work in registers (a direct
 * convolution's tile): floats per vector (16 with AVX-512, 8 with AVX, 4 otherwise) and the
 * number of vector registers (32 with AVX-512, 16 otherwise).  From LLVM's host features,
 * the same ones the code is compiled for. */
void target_host_simd(int *floats, int *regs);
/* Does a vector of the host's full width (16 floats) take one FMA at the rate of a narrower
 * one?  True for cores whose AVX-512 units are full width (Zen 5, Intel's server cores: a
 * 16-float FMA doubles the FLOPs of an 8-float one), false where it is split into 256-bit
 * halves or shares one unit (Zen 4, Intel's client cores) and on hosts without AVX-512.
 * From LLVM's host CPU name; $NNC_PLAN_WIDE_FMA (0 or 1) plans for the other kind, and with
 * $NNC_PLAN_SIMD set it is false unless that says 1 (the golden dumps' plans). */
bool target_host_wide_fma(void);


typedef struct Jit Jit;
typedef struct JitSymbol {
  const char *name; /* unmangled C name */
  void *addr;
} JitSymbol;

/* An LLJIT for the host.  syms are defined as absolute symbols in the main JITDylib and win
 * over the process's own symbols (libc, libm, ...), which are searched as a fallback. */
Jit *jit_new(const JitSymbol *syms, int n_syms, char *err, size_t errlen);
void jit_free(Jit *j); /* NULL harmless */
/* The context to build this JIT's modules in; owned by the Jit. */
LLVMContextRef jit_context(Jit *j);
/* A new empty module in jit_context(j), triple and data layout already set. */
LLVMModuleRef jit_module_new(Jit *j, const char *name);
/* Verify and optimise m (as target_optimize), then hand it to the JIT.  Takes ownership of m
 * whatever the outcome.  Code is generated lazily, at the first jit_lookup. */
int jit_add_module(Jit *j, LLVMModuleRef m, char *err, size_t errlen);
/* Hand object code (from target_emit_object, made by jit_target(j) or the same target) to
 * the JIT; obj is copied. */
int jit_add_object(Jit *j, const void *obj, size_t len, char *err, size_t errlen);
/* The Jit's Target: the host's, as target_new_host. */
Target *jit_target(Jit *j);
/* Address of a symbol defined by an added module (or a JitSymbol); NULL + err if missing. */
void *jit_lookup(Jit *j, const char *name, char *err, size_t errlen);

#endif
