/* test_index_checks.c — indices are data (issue 16, item 2): every op that takes indices at run
 * time (gather, index_select, Embedding, one_hot, roi_align's batch index) reads them through
 * a check.  An index that is negative, too large, NaN or not whole fails the call with
 * NNC_ERR_USER and a message naming the place, the op, the argument and the value, as
 * PyTorch raises; the boundary indices 0 and size - 1 read the right elements.  Run at 1 and
 * 3 threads (a fault reported from a pool thread), and in the sanitizer build, where a read
 * outside a buffer would be reported. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "nnc.h"

#ifndef NNC_BINARY_DIR
#define NNC_BINARY_DIR "."
#endif

static const char *SRC =
    "net = Embedding(6, 4)\n"
    "export rows(x: f32[5, M], i: f32[N, M]) -> y: f32[N, M] { y = gather(x, 0, i) }\n"
    "export cols(x: f32[N, 5], i: f32[N, 3]) -> y: f32[N, 3] { y = gather(x, 1, i) }\n"
    "export sel(x: f32[5, M], i: i64[K]) -> y: f32[K, M] { y = index_select(x, 0, i) }\n"
    "export embed(t: i64[N, L]) -> y: f32[N, L, 4] { y = net(t) }\n"
    "export hot(t: f32[N]) -> y: f32[N, 4] { y = one_hot(t, 4) }\n"
    "export roi(f: f32[N, 2, 6, 6], b: f32[K, 5]) -> y: f32[K, 2, 2, 2] { y = roi_align(f, b, [2, 2], sampling_ratio=2) }\n"
    "export roi_adaptive(f: f32[N, 2, 6, 6], b: f32[K, 5]) -> y: f32[K, 2, 2, 2] { y = roi_align(f, b, [2, 2]) }\n";

typedef struct Fixture {
  nnc_model *m;
  nnc_context *ctx;
} Fixture;

/* net.weight [6, 4], row r = r * 100 + column, as a safetensors file */
static int write_weights(const char *path) {
  static const char header[] = "{\"net.weight\":{\"dtype\":\"F32\",\"shape\":[6,4],\"data_offsets\":[0,96]}}";
  uint64_t len = sizeof header - 1;
  float w[24];
  for (int k = 0; k < 24; k++) w[k] = (float)(k / 4 * 100 + k % 4);
  FILE *f = fopen(path, "wb");
  if (!f) return -1;
  fwrite(&len, 8, 1, f);
  fwrite(header, 1, len, f);
  fwrite(w, sizeof w, 1, f);
  return fclose(f);
}

static int setup(void **state) {
  char path[512], weights[512];
  snprintf(path, sizeof path, "%s/index_checks.nn", NNC_BINARY_DIR);
  FILE *f = fopen(path, "w");
  if (!f) return -1;
  fputs(SRC, f);
  fclose(f);
  snprintf(weights, sizeof weights, "%s/index_checks.safetensors", NNC_BINARY_DIR);
  if (write_weights(weights)) return -1;
  Fixture *fx = calloc(1, sizeof *fx);
  char *msg = NULL;
  *state = fx;
  if (nnc_model_compile(path, NULL, &fx->m, &msg) || nnc_context_open(fx->m, weights, &fx->ctx, &msg)) {
    fprintf(stderr, "%s\n", msg);
    nnc_free(msg);
    return -1;
  }
  return 0;
}

static int teardown(void **state) {
  Fixture *fx = *state;
  nnc_context_free(fx->ctx);
  nnc_model_free(fx->m);
  free(fx);
  return 0;
}

/* Call entry `name` at each thread count; returns its status (the same at every count: a
 * failure's message must contain `want`), the output of the last run in *out (allocated by
 * the call: the caller frees it). */
static int call(Fixture *fx, const char *name, const nnc_tensor *in, int n_in, nnc_tensor *out, const char *want) {
  static const int threads[] = {1, 3};
  int e = nnc_model_find_entry(fx->m, name), first = -1;
  assert_true(e >= 0);
  memset(out, 0, sizeof *out);
  for (int t = 0; t < 2; t++) {
    assert_int_equal(nnc_context_set_threads(fx->ctx, threads[t]), 0);
    nnc_free(out->data); /* the previous thread count's */
    memset(out, 0, sizeof *out);
    int rc = nnc_call(fx->ctx, e, in, n_in, out, 1);
    if (first >= 0 && rc != first) fail_msg("%s: status %d on %d threads, %d on 1", name, rc, threads[t], first);
    first = rc;
    if (rc && (!want || !strstr(nnc_context_error(fx->ctx), want)))
      fail_msg("%s on %d threads: status %d, message \"%s\", expected \"%s\"", name, threads[t], rc,
               nnc_context_error(fx->ctx), want ? want : "(success)");
  }
  return first;
}

static void expect_fails(Fixture *fx, const char *name, const nnc_tensor *in, int n_in, const char *want) {
  nnc_tensor out = {0};
  if (call(fx, name, in, n_in, &out, want) != NNC_ERR_USER) fail_msg("%s: no error, expected \"%s\"", name, want);
  assert_null(out.data); /* freed again after the failure */
}

/* Row i of x [R, M] = i * 100 + column: a gathered value names where it came from. */
static float *numbered(int64_t rows, int64_t cols) {
  float *x = malloc(rows * cols * sizeof *x);
  for (int64_t r = 0; r < rows; r++)
    for (int64_t c = 0; c < cols; c++) x[r * cols + c] = (float)(r * 100 + c);
  return x;
}

/* gather along axis 0 of x [5, M], M large enough that the kernel splits among threads */
static void test_gather_rows(void **state) {
  Fixture *fx = *state;
  enum { M = 4096, N = 4 };
  float *x = numbered(5, M), *i = malloc(N * M * sizeof *i);
  for (int r = 0; r < N; r++)
    for (int c = 0; c < M; c++) i[r * M + c] = (float)((r + c) % 2 ? 4 : 0); /* the boundaries */
  nnc_tensor in[2] = {{x, NNC_F32, 2, {5, M}}, {i, NNC_F32, 2, {N, M}}}, out = {0};
  assert_int_equal(call(fx, "rows", in, 2, &out, NULL), 0);
  const float *y = out.data;
  for (int r = 0; r < N; r++)
    for (int c = 0; c < M; c++) assert_true(y[r * M + c] == i[r * M + c] * 100 + c);
  nnc_free(out.data);
  static const struct { float v; const char *want; } bad[] = {
      {5, "gather: argument 'index' holds 5, outside [0, 5)"},
      {-1, "gather: argument 'index' holds -1, outside [0, 5)"},
      {NAN, "gather: argument 'index' holds nan, which is not a number"},
      {2.5f, "gather: argument 'index' holds 2.5, which is not a whole number"},
      {1e30f, "outside [0, 5)"},
      {-INFINITY, "gather: argument 'index' holds -inf, outside [0, 5)"},
  };
  for (size_t b = 0; b < sizeof bad / sizeof *bad; b++) {
    i[N * M - 7] = bad[b].v; /* late in the last chunk: reported from a pool thread */
    expect_fails(fx, "rows", in, 2, bad[b].want);
    i[N * M - 7] = 0;
  }
  assert_int_equal(call(fx, "rows", in, 2, &out, NULL), 0); /* a fault does not outlive its call */
  nnc_free(out.data);
  free(x);
  free(i);
}

static void test_gather_cols(void **state) {
  Fixture *fx = *state;
  float x[2 * 5], i[2 * 3] = {0, 4, 2, 4, 0, 1};
  for (int k = 0; k < 10; k++) x[k] = (float)k;
  nnc_tensor in[2] = {{x, NNC_F32, 2, {2, 5}}, {i, NNC_F32, 2, {2, 3}}}, out = {0};
  assert_int_equal(call(fx, "cols", in, 2, &out, NULL), 0);
  static const float want[6] = {0, 4, 2, 9, 5, 6}; /* torch.gather(x, 1, i) */
  assert_memory_equal(out.data, want, sizeof want);
  nnc_free(out.data);
  i[5] = 5;
  expect_fails(fx, "cols", in, 2, "index_checks.nn:3:63: gather: argument 'index' holds 5");
  expect_fails(fx, "cols", in, 2, "entry 'cols': ");
  i[5] = -0.5f;
  expect_fails(fx, "cols", in, 2, "holds -0.5, outside [0, 5)");
}

/* i64 indices: values beyond float's exact range too */
static void test_index_select(void **state) {
  Fixture *fx = *state;
  float *x = numbered(5, 3);
  int64_t i[3] = {4, 0, 4};
  nnc_tensor in[2] = {{x, NNC_F32, 2, {5, 3}}, {i, NNC_I64, 1, {3}}}, out = {0};
  assert_int_equal(call(fx, "sel", in, 2, &out, NULL), 0);
  static const float want[9] = {400, 401, 402, 0, 1, 2, 400, 401, 402};
  assert_memory_equal(out.data, want, sizeof want);
  nnc_free(out.data);
  static const struct { int64_t v; const char *want; } bad[] = {
      {5, "index_select: argument 'index' holds 5, outside [0, 5)"},
      {-1, "holds -1, outside [0, 5)"},
      {(int64_t)1 << 40, "holds 1099511627776, outside [0, 5)"},
      {INT64_MIN, "outside [0, 5)"},
  };
  for (size_t b = 0; b < sizeof bad / sizeof *bad; b++) {
    i[1] = bad[b].v;
    expect_fails(fx, "sel", in, 2, bad[b].want);
  }
  free(x);
}

static void test_embedding(void **state) {
  Fixture *fx = *state;
  int64_t t[2 * 3] = {0, 5, 3, 5, 0, 1};
  nnc_tensor in = {t, NNC_I64, 2, {2, 3}}, out = {0};
  assert_int_equal(call(fx, "embed", &in, 1, &out, NULL), 0);
  const float *y = out.data;
  for (int k = 0; k < 6; k++)
    for (int c = 0; c < 4; c++) assert_true(y[k * 4 + c] == t[k] * 100 + c);
  nnc_free(out.data);
  t[4] = 6;
  expect_fails(fx, "embed", &in, 1, "Embedding: input holds 6, outside [0, 6)");
  t[4] = -1;
  expect_fails(fx, "embed", &in, 1, "Embedding: input holds -1, outside [0, 6)");
}

static void test_one_hot(void **state) {
  Fixture *fx = *state;
  float t[3] = {3, 0, 2};
  nnc_tensor in = {t, NNC_F32, 1, {3}}, out = {0};
  assert_int_equal(call(fx, "hot", &in, 1, &out, NULL), 0);
  static const float want[12] = {0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 1, 0};
  assert_memory_equal(out.data, want, sizeof want);
  nnc_free(out.data);
  t[1] = 4;
  expect_fails(fx, "hot", &in, 1, "one_hot: argument 'tensor' holds 4, outside [0, 4)");
  t[1] = -1;
  expect_fails(fx, "hot", &in, 1, "holds -1, outside [0, 4)");
  t[1] = NAN;
  expect_fails(fx, "hot", &in, 1, "holds nan, which is not a number");
}

/* A box's batch index picks its image: image 1 of two holds 1 everywhere, image 0 zeros. */
static void test_roi_align_batch_index(void **state) {
  Fixture *fx = *state;
  float f[2 * 2 * 36] = {0};
  for (int k = 72; k < 144; k++) f[k] = 1;
  float b[2 * 5] = {1, 0, 0, 4, 4, 0, 1, 1, 3, 3};
  nnc_tensor in[2] = {{f, NNC_F32, 4, {2, 2, 6, 6}}, {b, NNC_F32, 2, {2, 5}}}, out = {0};
  const char *entries[] = {"roi", "roi_adaptive"};
  for (int e = 0; e < 2; e++) {
    assert_int_equal(call(fx, entries[e], in, 2, &out, NULL), 0);
    const float *y = out.data;
    for (int k = 0; k < 8; k++) assert_true(y[k] == 1 && y[8 + k] == 0);
    nnc_free(out.data);
    out.data = NULL;
    static const struct { float v; const char *want; } bad[] = {
        {2, "roi_align: boxes[:, 0] (the batch index) holds 2, outside [0, 2)"},
        {-1, "holds -1, outside [0, 2)"},
        {1e9f, "holds 1000000000, outside [0, 2)"},
        {NAN, "holds nan, which is not a number"},
        {0.5f, "holds 0.5, which is not a whole number"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
      b[5] = bad[k].v;
      expect_fails(fx, entries[e], in, 2, bad[k].want);
    }
    b[5] = 0;
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_gather_rows),    cmocka_unit_test(test_gather_cols),
      cmocka_unit_test(test_index_select),   cmocka_unit_test(test_embedding),
      cmocka_unit_test(test_one_hot),        cmocka_unit_test(test_roi_align_batch_index),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
