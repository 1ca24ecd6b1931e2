/* compile.h — the compiler as a library: .nn source → checked, optimized, fused model →
 * LLVM module → a shared library (AOT) or code in an ORC JIT.  Used by the `nnc` command
 * and by the runtime's JIT.  Every function reports failure through a malloc'd message
 * (*errmsg, free with free()) that already has the `file:line:col: error:` form; nothing
 * exits or prints.  They return 0, or -1 on an error, or NNC_COMPILE_NOMEM when memory ran
 * out while compiling ("nnc: error: out of memory while compiling FILE: ...": everything
 * allocated for that compilation is freed; $NNC_ARENA_LIMIT caps the compiler's arena, a
 * test hook, see docs/language.md "Limits").  Compilations may run on several threads. */
#ifndef NNC_COMPILE_H
#define NNC_COMPILE_H

#include <stdbool.h>
#include <stdio.h>
#include "nnc.h"
#include "nnc_model.h"

typedef struct NncCompileOptions {
  const char *weights_path;  /* safetensors to check (and embed when AOT); NULL: none */
  const char *header_path;   /* AOT: also write the C header here; NULL: none */
  const char *const *defines;/* "NAME=VALUE": override the model's `const NAME` (-D) */
  int ndefines;
  const char *dims;          /* nnc dump --stage=memory: "N=8,T=16" (unnamed dims are 1) */
} NncCompileOptions;

enum { NNC_COMPILE_NOMEM = -2 }; /* out of memory while compiling */

/* AOT: compile `nn_path` into the shared library `so_path`. */
int nnc_compile_so(const char *nn_path, const char *so_path, const NncCompileOptions *opt,
                   char **errmsg);

/* JIT: compile `nn_path` in process.  On success *desc points at the model's introspection
 * table (with embedded weights when opt->weights_path is given), valid until
 * nnc_jit_free(*jit). */
typedef struct NncJit NncJit;
int nnc_compile_jit(const char *nn_path, const NncCompileOptions *opt, NncJit **jit,
                    const nnc_model_desc **desc, char **errmsg);
void nnc_jit_free(NncJit *jit); /* NULL is harmless */

/* Same from source text in memory (`path` is used in diagnostics and as the model name). */
int nnc_compile_jit_source(const char *path, const char *text, size_t len,
                           const NncCompileOptions *opt, NncJit **jit,
                           const nnc_model_desc **desc, char **errmsg);

/* `nnc import`: the ONNX model `onnx_path` as editable .nn source at `nn_path` (one export
 * named after the graph) and the tensors it reads at `weights_path` (safetensors); dims[n]
 * ("NAME=VALUE") pin symbolic dims (dim_param) to sizes.  Compiling the .nn with those
 * weights gives what compiling the .onnx gives. */
int nnc_import_onnx(const char *onnx_path, const char *nn_path, const char *weights_path,
                    const char *const *dims, int ndims, char **errmsg);

/* `nnc check`: parse and type/shape-check only (opt: its defines; NULL: none). */
int nnc_check(const char *nn_path, const NncCompileOptions *opt, char **errmsg);

/* `nnc dump --stage=ast|ir|opt|fused|loops|llvm|asm|memory`: print that stage to `out`. */
int nnc_dump(const char *nn_path, const char *stage, FILE *out, char **errmsg);
extern const char *const nnc_dump_stages[]; /* NULL-terminated list of stage names */
/* The same in a given format: "text" (as nnc_dump) or "dot", a Graphviz digraph of the
 * stages ir, opt and fused (kernels drawn as clusters); NULL means "text".  opt: the
 * model's defines (-D); NULL: none. */
int nnc_dump_format(const char *nn_path, const char *stage, const char *format,
                    const NncCompileOptions *opt, FILE *out, char **errmsg);
extern const char *const nnc_dump_formats[]; /* NULL-terminated: "text", "dot" */
/* Same from source text in memory (`path` names it in diagnostics). */
int nnc_dump_source(const char *path, const char *text, size_t len, const char *stage, FILE *out,
                    char **errmsg);

/* Reference interpreter (interp.c): run one entry on the graph IR, node by node, without
 * fusion or LLVM — the oracle of the differential tester.  inputs[n_in] are in the entry's
 * argument order (dtype, rank and dims checked; symbolic dims bound from them); each of
 * outputs[n_out] receives a malloc'd f32 array (free with free()) and its shape. */
typedef struct NncInterpOptions {
  const char *weights_path;  /* safetensors with the model's parameters; NULL: none */
  const char *stage;         /* "ir" (after sema; default) or "opt" (after fold, cse, dce) */
  bool f32;                  /* round every result to float32 (default: compute in double) */
  unsigned random_rounding;  /* with f32, nonzero: round up or down at random, seeded by this */
} NncInterpOptions;
int nnc_interpret(const char *nn_path, const NncInterpOptions *opt, const char *entry,
                  const nnc_tensor *inputs, int n_in, nnc_tensor *outputs, int n_out,
                  char **errmsg);
int nnc_interpret_source(const char *path, const char *text, size_t len,
                         const NncInterpOptions *opt, const char *entry,
                         const nnc_tensor *inputs, int n_in, nnc_tensor *outputs, int n_out,
                         char **errmsg);

#endif
