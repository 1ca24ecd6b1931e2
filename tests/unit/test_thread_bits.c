/* test_thread_bits.c — the same bits for any thread count (docs/c-api.md, Threads): random
 * products over a sample of shapes around the OpenBLAS threshold (M 1..600, N and K
 * 1..4096; nnc_rt_sgemm's tiles begin at 8 MFLOP), plain, with either operand transposed,
 * batched, at static shapes (row tiles, sgemm with a transposed weight) and as a 1x1
 * convolution, each called on 1, 2, 3 and 5 threads and compared bit for bit.  Products
 * whose sums depended on OpenBLAS's thread count (issue 16, item 3) are among them.
 *
 * NNC_THREAD_BITS_SWEEP=n runs n more random shapes of the whole grid (long; not in CI). */
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

static const int THREADS[] = {1, 2, 3, 5};
#define NTHREADS (int)(sizeof THREADS / sizeof *THREADS)

static uint64_t rng = 0x9e3779b97f4a7c15u;

static uint32_t next(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return (uint32_t)(rng >> 16);
}

static float uniform(void) { return (float)(next() % 2000001) / 1e6f - 1.0f; }

static float *random_floats(int64_t n) {
  float *x = malloc((size_t)(n ? n : 1) * sizeof *x);
  for (int64_t i = 0; i < n; i++) x[i] = uniform();
  return x;
}

/* A model compiled by JIT from `src`, with one context. */
typedef struct Jit {
  nnc_model *model;
  nnc_context *ctx;
} Jit;

static Jit jit_open(const char *name, const char *src) {
  char path[512], *msg = NULL;
  snprintf(path, sizeof path, "%s/%s.nn", NNC_BINARY_DIR, name);
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(src, f);
  fclose(f);
  Jit j = {0};
  if (nnc_model_compile(path, NULL, &j.model, &msg) || nnc_context_open(j.model, NULL, &j.ctx, &msg))
    fail_msg("%s: %s", name, msg ? msg : "?");
  nnc_free(msg);
  return j;
}

static void jit_close(Jit *j) {
  nnc_context_free(j->ctx);
  nnc_model_free(j->model);
}

/* Call `entry` on every thread count; returns the number of outputs that differ from the
 * 1-thread call in any bit (printing the first few). */
static int64_t differing(Jit *j, const char *entry, const nnc_tensor *in, int n_in, const char *what) {
  int e = nnc_model_find_entry(j->model, entry);
  assert_true(e >= 0);
  nnc_tensor ref = {0};
  int64_t bad = 0;
  for (int t = 0; t < NTHREADS; t++) {
    nnc_tensor out = {0};
    assert_int_equal(nnc_context_set_threads(j->ctx, THREADS[t]), 0);
    if (nnc_call(j->ctx, e, in, n_in, &out, 1)) fail_msg("%s %s: %s", entry, what, nnc_context_error(j->ctx));
    if (!t) {
      ref = out;
      continue;
    }
    int64_t n = nnc_tensor_numel(&out), d = 0;
    const float *a = ref.data, *b = out.data;
    for (int64_t i = 0; i < n; i++) d += memcmp(&a[i], &b[i], sizeof *a) != 0;
    if (d) print_message("  %s %s: %lld of %lld outputs differ between 1 and %d threads\n", entry, what,
                         (long long)d, (long long)n, THREADS[t]);
    bad += d;
    nnc_free(out.data);
  }
  nnc_free(ref.data);
  return bad;
}

/* ---- products of run-time shapes: every sgemm path ---- */

static const char *DYNAMIC_SRC =
    "export mm(x: f32[M, K], w: f32[K, N]) -> y: f32[M, N] { y = x @ w }\n"
    "export mt(x: f32[M, K], w: f32[N, K]) -> y: f32[M, N] { y = x @ w.T }\n"
    "export tm(x: f32[K, M], w: f32[K, N]) -> y: f32[M, N] { y = x.T @ w }\n"
    "export bmm(x: f32[B, M, K], w: f32[B, K, N]) -> y: f32[B, M, N] { y = tanh(x @ w) }\n";

/* {M, N, K}: the reported ones, both sides of 8 MFLOP and of the 512-row blocks, thin and
 * flat, odd sizes that cut the tiles unevenly. */
static const int SHAPES[][3] = {
    {12, 256, 1568}, {16, 12544, 32}, {1, 4096, 4096}, {600, 600, 600}, {513, 97, 81},
    {1, 1, 1},       {7, 3, 4096},    {600, 1, 4096},  {31, 4096, 33},  {100, 4096, 100},
    {599, 2047, 5},  {64, 65, 977},   {2, 2999, 1500}, {511, 128, 64},  {300, 17, 1600},
    {5, 1000, 1000}, {45, 701, 127},  {257, 257, 257}, {1, 2048, 1},    {577, 576, 12},
};

static int64_t dynamic_shape(Jit *j, int m, int n, int k) {
  char what[64];
  snprintf(what, sizeof what, "[%d, %d] x [%d, %d]", m, k, k, n);
  float *x = random_floats((int64_t)m * k), *w = random_floats((int64_t)k * n);
  nnc_tensor mm[2] = {{x, NNC_F32, 2, {m, k}}, {w, NNC_F32, 2, {k, n}}};
  nnc_tensor mt[2] = {{x, NNC_F32, 2, {m, k}}, {w, NNC_F32, 2, {n, k}}};
  nnc_tensor tm[2] = {{x, NNC_F32, 2, {k, m}}, {w, NNC_F32, 2, {k, n}}};
  int64_t bad = differing(j, "mm", mm, 2, what) + differing(j, "mt", mt, 2, what) + differing(j, "tm", tm, 2, what);
  if (m % 2 == 0 && n % 2 == 0) { /* two items of half the rows and columns */
    nnc_tensor bm[2] = {{x, NNC_F32, 3, {2, m / 2, k}}, {w, NNC_F32, 3, {2, k, n / 2}}};
    bad += differing(j, "bmm", bm, 2, what);
  }
  free(x);
  free(w);
  return bad;
}

static void test_products_any_threads(void **state) {
  (void)state;
  Jit j = jit_open("thread_bits", DYNAMIC_SRC);
  int64_t bad = 0;
  for (size_t s = 0; s < sizeof SHAPES / sizeof *SHAPES; s++) bad += dynamic_shape(&j, SHAPES[s][0], SHAPES[s][1], SHAPES[s][2]);
  const char *sweep = getenv("NNC_THREAD_BITS_SWEEP");
  for (int i = 0, n = sweep ? atoi(sweep) : 0; i < n; i++) /* M 1..600, N and K 1..4096, log-uniform */
    bad += dynamic_shape(&j, 1 + (int)(600 * pow(next() / 4294967296.0, 2)), 1 + (int)(4096 * pow(next() / 4294967296.0, 2)),
                         1 + (int)(4096 * pow(next() / 4294967296.0, 2)));
  jit_close(&j);
  assert_int_equal(bad, 0);
}

/* ---- static shapes: a weight's transpose in the sgemm flags, row tiles, a 1x1 convolution
 * (mobilenet_v2's first: 32 -> 16 channels at 112 x 112) ---- */

static void test_static_products_any_threads(void **state) {
  (void)state;
  Jit j = jit_open("thread_bits_static",
                   "export lin(x: f32[12, 1568], w: f32[256, 1568]) -> y: f32[12, 256] { y = x @ w.T }\n"
                   "export tile(x: f32[6, 1568], w: f32[1568, 128]) -> y: f32[6, 128] { y = x @ w }\n"
                   "export wide(x: f32[16, 32], w: f32[32, 12544]) -> y: f32[16, 12544] { y = x @ w }\n"
                   "export pw(x: f32[1, 32, 112, 112], w: f32[16, 32, 1, 1]) -> y: f32[1, 16, 112, 112] {\n"
                   "  y = conv2d(x, w)\n"
                   "}\n");
  float *a = random_floats(32 * 112 * 112), *b = random_floats(256 * 1568);
  int64_t bad = 0;
  nnc_tensor lin[2] = {{a, NNC_F32, 2, {12, 1568}}, {b, NNC_F32, 2, {256, 1568}}};
  nnc_tensor tile[2] = {{a, NNC_F32, 2, {6, 1568}}, {b, NNC_F32, 2, {1568, 128}}};
  nnc_tensor wide[2] = {{a, NNC_F32, 2, {16, 32}}, {b, NNC_F32, 2, {32, 12544}}};
  nnc_tensor pw[2] = {{a, NNC_F32, 4, {1, 32, 112, 112}}, {b, NNC_F32, 4, {16, 32, 1, 1}}};
  bad += differing(&j, "lin", lin, 2, "x @ W.T");
  bad += differing(&j, "tile", tile, 2, "row tiles");
  bad += differing(&j, "wide", wide, 2, "[16, 32] @ [32, 12544]");
  bad += differing(&j, "pw", pw, 2, "1x1 conv");
  free(a);
  free(b);
  jit_close(&j);
  assert_int_equal(bad, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_products_any_threads),
      cmocka_unit_test(test_static_products_any_threads),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
