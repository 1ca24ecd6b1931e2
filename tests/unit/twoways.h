/* twoways.h — test helpers: compile a .nn source text both ways (JIT in process, AOT .so
 * loaded back) and call an entry on both, checking that the two give bit-identical results.
 * Header-only, for the cmocka tests (test_numerics.c, test_resources.c). */
#ifndef NNC_TESTS_TWOWAYS_H
#define NNC_TESTS_TWOWAYS_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "compile.h"
#include "nnc.h"

#ifndef NNC_BINARY_DIR
#define NNC_BINARY_DIR "."
#endif

typedef struct TwoWays {
  char nn[512], so[512];
  nnc_model *jit, *aot;
  nnc_context *jctx, *actx;
} TwoWays;

/* Write `src` to NNC_BINARY_DIR/<name>.nn; compile it by JIT and to <name>.so.  Returns 0, or
 * -1 after printing why. */
static inline int tw_open(TwoWays *t, const char *name, const char *src, const char *weights) {
  memset(t, 0, sizeof *t);
  snprintf(t->nn, sizeof t->nn, "%s/%s.nn", NNC_BINARY_DIR, name);
  snprintf(t->so, sizeof t->so, "%s/%s.so", NNC_BINARY_DIR, name);
  FILE *f = fopen(t->nn, "w");
  if (!f) return fprintf(stderr, "cannot write %s\n", t->nn), -1;
  fputs(src, f);
  fclose(f);
  char *msg = NULL;
  NncCompileOptions opt = {.weights_path = weights};
  if (nnc_model_compile(t->nn, weights, &t->jit, &msg) || nnc_context_open(t->jit, NULL, &t->jctx, &msg) ||
      nnc_compile_so(t->nn, t->so, &opt, &msg) || nnc_model_load(t->so, &t->aot, &msg) ||
      nnc_context_open(t->aot, NULL, &t->actx, &msg)) {
    fprintf(stderr, "%s: %s\n", name, msg ? msg : "?");
    nnc_free(msg);
    return -1;
  }
  nnc_free(msg);
  return 0;
}

static inline void tw_close(TwoWays *t) {
  nnc_context_free(t->jctx);
  nnc_context_free(t->actx);
  nnc_model_free(t->jit);
  nnc_model_free(t->aot);
  memset(t, 0, sizeof *t);
}

static inline bool tw_bits_equal(const nnc_tensor *a, const nnc_tensor *b) {
  if (a->rank != b->rank || memcmp(a->shape, b->shape, a->rank * sizeof *a->shape)) return false;
  int64_t n = nnc_tensor_numel(a);
  return n == 0 || !memcmp(a->data, b->data, (size_t)n * nnc_dtype_size(a->dtype));
}

/* Call entry `entry` both ways; out[] gets the JIT's outputs (allocated; free with
 * tw_free_outputs).  Returns 0, or -1 after printing why (a failed call, or JIT and AOT
 * results that differ in any bit). */
static inline int tw_call(TwoWays *t, const char *entry, const nnc_tensor *in, int n_in, nnc_tensor *out, int n_out) {
  nnc_tensor aout[16] = {{0}};
  int e = nnc_model_find_entry(t->jit, entry), ea = nnc_model_find_entry(t->aot, entry);
  if (e < 0 || ea < 0 || n_out > 16) return fprintf(stderr, "no entry %s\n", entry), -1;
  memset(out, 0, n_out * sizeof *out);
  if (nnc_call(t->jctx, e, in, n_in, out, n_out)) return fprintf(stderr, "jit: %s\n", nnc_context_error(t->jctx)), -1;
  if (nnc_call(t->actx, ea, in, n_in, aout, n_out)) return fprintf(stderr, "aot: %s\n", nnc_context_error(t->actx)), -1;
  int rc = 0;
  for (int o = 0; o < n_out; o++) {
    if (!tw_bits_equal(&out[o], &aout[o])) {
      fprintf(stderr, "%s: output %d differs between JIT and AOT\n", entry, o);
      rc = -1;
    }
    nnc_free(aout[o].data);
  }
  return rc;
}

static inline void tw_free_outputs(nnc_tensor *out, int n) {
  for (int o = 0; o < n; o++) {
    nnc_free(out[o].data);
    out[o].data = NULL;
  }
}

#endif
