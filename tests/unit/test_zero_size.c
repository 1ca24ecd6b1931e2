/* test_zero_size.c — reductions over axes of static size 0 (issue 16, item 8) give
 * PyTorch's results: sum 0, mean NaN, logsumexp -inf, softmax an empty tensor; amax, amin,
 * max and min stop compilation with an error (torch raises).  The empty input's data pointer
 * points at a NaN: a kernel that reads "element 0" of an empty axis shows up in the result.
 * A run-time zero (a symbolic dim bound to 0) gives the same. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "compile.h"
#include "nnc.h"

#ifndef NNC_BINARY_DIR
#define NNC_BINARY_DIR "."
#endif

/* Compile `src` by JIT; returns the model, or NULL with the message in *msg. */
static nnc_model *compile_src(const char *name, const char *src, char **msg) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s.nn", NNC_BINARY_DIR, name);
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(src, f);
  fclose(f);
  nnc_model *m = NULL;
  *msg = NULL;
  if (nnc_model_compile(path, NULL, &m, msg)) return NULL;
  return m;
}

static const char *REDUCE_SRC =
    "export rows(x: f32[N, 0]) -> (s: f32[N], m: f32[N], l: f32[N], t: f32[], k: f32[N, 1]) {\n"
    "  s = sum(x, axis=1)\n"
    "  m = mean(x, axis=1)\n"
    "  l = logsumexp(x, 1)\n"
    "  t = sum(x)\n"
    "  k = sum(x * 2.0, axis=1, keepdim=true) + 1.0\n"
    "}\n"
    "export cols(x: f32[0, N]) -> (s: f32[N], m: f32[N]) {\n"
    "  s = sum(x, axis=0)\n"
    "  m = mean(x, axis=0)\n"
    "}\n"
    "export soft(x: f32[N, 0]) -> y: f32[N, 0] { y = softmax(x, axis=1) }\n"
    "export late(x: f32[N, T]) -> (s: f32[N], m: f32[N]) {\n"
    "  s = sum(x, axis=1)\n"
    "  m = mean(x, axis=1)\n"
    "}\n";

/* Call entry `name` on x; out[] gets its outputs. */
static void call(nnc_context *ctx, nnc_model *m, const char *name, const nnc_tensor *x, nnc_tensor *out, int n_out) {
  memset(out, 0, n_out * sizeof *out);
  int e = nnc_model_find_entry(m, name);
  assert_true(e >= 0);
  if (nnc_call(ctx, e, x, 1, out, n_out)) fail_msg("%s: %s", name, nnc_context_error(ctx));
}

static void expect_all(const nnc_tensor *t, double want, const char *what) {
  const float *v = t->data;
  for (int64_t i = 0; i < nnc_tensor_numel(t); i++)
    if (isnan(want) ? !isnan(v[i]) : v[i] != want) fail_msg("%s[%lld] = %g, expected %g", what, (long long)i, v[i], want);
}

static void test_empty_axis_reductions(void **state) {
  (void)state;
  char *msg;
  nnc_model *m = compile_src("zero_size", REDUCE_SRC, &msg);
  if (!m) fail_msg("%s", msg);
  nnc_context *ctx;
  assert_int_equal(nnc_context_open(m, NULL, &ctx, &msg), 0);
  static float poison[64];
  for (int i = 0; i < 64; i++) poison[i] = NAN;
  nnc_tensor out[5];
  nnc_tensor rows = {poison, NNC_F32, 2, {3, 0}};
  call(ctx, m, "rows", &rows, out, 5);
  expect_all(&out[0], 0.0, "sum");
  expect_all(&out[1], NAN, "mean");
  expect_all(&out[2], -INFINITY, "logsumexp");
  expect_all(&out[3], 0.0, "sum of all");
  expect_all(&out[4], 1.0, "sum keepdim + 1");
  assert_int_equal(nnc_tensor_numel(&out[0]), 3);
  for (int o = 0; o < 5; o++) nnc_free(out[o].data);
  nnc_tensor cols = {poison, NNC_F32, 2, {0, 4}};
  call(ctx, m, "cols", &cols, out, 2);
  expect_all(&out[0], 0.0, "column sum");
  expect_all(&out[1], NAN, "column mean");
  assert_int_equal(nnc_tensor_numel(&out[0]), 4);
  for (int o = 0; o < 2; o++) nnc_free(out[o].data);
  call(ctx, m, "soft", &rows, out, 1);
  assert_int_equal(nnc_tensor_numel(&out[0]), 0);
  nnc_free(out[0].data);
  call(ctx, m, "late", &rows, out, 2); /* T = 0 at run time */
  expect_all(&out[0], 0.0, "sum, T = 0");
  expect_all(&out[1], NAN, "mean, T = 0");
  for (int o = 0; o < 2; o++) nnc_free(out[o].data);
  nnc_context_free(ctx);
  nnc_model_free(m);
}

/* The maximum or minimum of no elements: a compile-time error naming the function and axis. */
static void test_empty_axis_max_is_an_error(void **state) {
  (void)state;
  static const char *cases[][2] = {
      {"export f(x: f32[N, 0]) -> y: f32[N] { y = amax(x, axis=1) }", "amax over axis 1 of size 0"},
      {"export f(x: f32[N, 0]) -> y: f32[N] { y = amin(x, axis=-1) }", "amin over axis 1 of size 0"},
      {"export f(x: f32[0, N]) -> y: f32[N] { y = max(x, axis=0) }", "max over axis 0 of size 0"},
      {"export f(x: f32[0]) -> y: f32[] { y = min(x) }", "min over axis 0 of size 0"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    char *msg;
    nnc_model *m = compile_src("zero_size_max", cases[i][0], &msg);
    if (m) fail_msg("compiled: %s", cases[i][0]);
    if (!msg || !strstr(msg, cases[i][1])) fail_msg("%s: message %s", cases[i][0], msg ? msg : "(none)");
    nnc_free(msg);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_empty_axis_reductions),
      cmocka_unit_test(test_empty_axis_max_is_an_error),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
