/* nnc.h — the nnc runtime's public API: compile a .nn model in process (JIT) or load a .so
 * that `nnc -o` produced, open a context with its weights, call an entry with tensors.
 *
 *   nnc_model *m; nnc_context *c; char *msg;
 *   if (nnc_model_load("realnvp.so", &m, &msg)) { fprintf(stderr, "%s\n", msg); nnc_free(msg); }
 *   nnc_context_open(m, NULL, &c, &msg);                  // NULL: the embedded weights
 *   nnc_tensor x = {xs, NNC_F32, 2, {64, 2}}, out[2] = {{0}};   // data NULL: allocated
 *   if (nnc_call(c, nnc_model_find_entry(m, "forward"), &x, 1, out, 2))
 *     fprintf(stderr, "%s\n", nnc_context_error(c));
 *   nnc_free(out[0].data); nnc_free(out[1].data);
 *   nnc_context_free(c); nnc_model_free(m);
 *
 * Handles are opaque; freeing NULL is harmless.  Functions return an enum nnc_status
 * (nnc_model.h): NNC_OK, NNC_ERR_USER (bad model, weights or inputs), NNC_ERR_USAGE (bad API
 * arguments), NNC_ERR_NOMEM.  There is no global mutable state: separate contexts may be used
 * from separate threads at once (one context is not to be shared by concurrent calls).  A
 * model must outlive its contexts. */
#ifndef NNC_H
#define NNC_H

#include <stddef.h>
#include <stdint.h>

#include "nnc_model.h"

#ifdef __cplusplus
extern "C" {
#endif

#define NNC_MAX_RANK 8

typedef struct nnc_model nnc_model;     /* a compiled model: JIT-compiled .nn or loaded .so */
typedef struct nnc_context nnc_context; /* weights + workspace of one model; one caller */

/* A dense C-order tensor.  The caller owns `data` unless nnc_call allocated it. */
typedef struct nnc_tensor {
  void *data;
  int32_t dtype;                /* enum nnc_dtype */
  int32_t rank;
  int64_t shape[NNC_MAX_RANK];  /* [rank] */
} nnc_tensor;

/* Error messages handed back through `char **errmsg` (may be NULL) are malloc'd, in the form
 * "FILE:LINE:COL: error: ..." or "FILE: error: ...", without a trailing newline; free them
 * with nnc_free.  On failure *out is NULL. */

/* JIT-compile a .nn file.  With weights_path, the weights are checked now and embedded, so
 * contexts can be opened with weights_path NULL. */
int nnc_model_compile(const char *nn_path, const char *weights_path, nnc_model **out,
                      char **errmsg);
/* The same with compile-time definitions: defines[n_defines] are "NAME=VALUE" strings that
 * override the model's top-level `const NAME` (as `nnc -D NAME=VALUE`). */
int nnc_model_compile_defines(const char *nn_path, const char *weights_path,
                              const char *const *defines, int n_defines, nnc_model **out,
                              char **errmsg);
/* Load a shared library made by `nnc FILE.nn -o FILE.so`.  The library's own exported
 * functions are used for its contexts. */
int nnc_model_load(const char *so_path, nnc_model **out, char **errmsg);
/* Wrap a model table already in the process (a generated object linked statically, or a
 * table written by hand): for tests and embedding.  The table must outlive the model. */
int nnc_model_from_desc(const nnc_model_desc *desc, nnc_model **out, char **errmsg);
void nnc_model_free(nnc_model *model);

/* The introspection table: entries, their arguments (names, dtypes, dims), parameters. */
const nnc_model_desc *nnc_model_desc_of(const nnc_model *model);
/* Index of the entry called `name`, or -1. */
int nnc_model_find_entry(const nnc_model *model, const char *name);

/* Open a context: weights from the safetensors file `weights_path` (names and shapes must
 * match the model's parameters exactly), or the embedded ones when weights_path is NULL. */
int nnc_context_open(nnc_model *model, const char *weights_path, nnc_context **out,
                     char **errmsg);
void nnc_context_free(nnc_context *ctx);

/* Call entry `entry` (from nnc_model_find_entry).  inputs[n_in] and outputs[n_out] are in the
 * entry's argument order.  Symbolic dims are bound from the inputs' shapes; every dtype,
 * rank and dim is checked, with errors naming the argument.  An output whose data is NULL is
 * allocated (free with nnc_free) and given its dtype, rank and shape; otherwise its dtype,
 * rank and shape must be exactly the computed ones.  After a failure, outputs allocated by
 * this call are freed again (data reset to NULL) and nnc_context_error tells why.  Once the
 * workspace has grown to the largest call, calls allocate nothing but requested outputs. */
int nnc_call(nnc_context *ctx, int entry, const nnc_tensor *inputs, int n_in,
             nnc_tensor *outputs, int n_out);
/* Threads of ctx's calls: n in all, the caller's thread included; 0: the default, which is
 * $NNC_NUM_THREADS if set, else the CPUs this process may run on.  A kernel's outer loop is
 * split among them when it is large enough, and a large product's tiles too (OpenBLAS runs
 * on one thread; contexts used at once from several threads should ask for threads that add
 * up to the cores).  Results are bit-identical for every n.
 * Returns NNC_ERR_USAGE for n < 0, NNC_ERR_NOMEM. */
int nnc_context_set_threads(nnc_context *ctx, int n);
/* The current thread count of ctx. */
int nnc_context_threads(const nnc_context *ctx);
/* Why the last nnc_call on ctx failed (a sentence without a "file: error:" prefix); "" after
 * a success.  Valid until the next call on ctx. */
const char *nnc_context_error(const nnc_context *ctx);

/* Number of elements of a tensor (product of its shape); -1 on overflow or a bad rank. */
int64_t nnc_tensor_numel(const nnc_tensor *t);
/* Bytes per element of a dtype (4 or 8), or 0 for an unknown dtype. */
int nnc_dtype_size(int32_t dtype);
/* Write an argument's type, e.g. "f32[N, 2]" or "f32[2*N]", into buf[len]. */
void nnc_arg_type_str(const nnc_model_desc *desc, const nnc_arg_desc *arg, char *buf,
                      size_t len);
/* Free what the runtime allocated (error messages, output tensors).  NULL is harmless. */
void nnc_free(void *p);

#ifdef __cplusplus
}
#endif

#endif
