/* test_streaming.c — the step entries of the recurrent models reproduce their whole-sequence
 * entries: feeding examples/fast_weights.nn's `step` one time step at a time from the zero
 * state gives exactly `classify`'s logits, and examples/mann.nn's `step` gives exactly
 * `episode`'s logits at every step (same compiled step code: bit for bit). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "nnc.h"
#include "npy.h"

#ifndef NNC_SOURCE_DIR
#define NNC_SOURCE_DIR "."
#endif

static nnc_context *open_model(const char *name, nnc_model **m) {
  char nn[512], w[512], *msg = NULL;
  snprintf(nn, sizeof nn, "%s/examples/%s.nn", NNC_SOURCE_DIR, name);
  snprintf(w, sizeof w, "%s/tests/golden/%s/weights.safetensors", NNC_SOURCE_DIR, name);
  nnc_context *c = NULL;
  if (nnc_model_compile(nn, NULL, m, &msg) || nnc_context_open(*m, w, &c, &msg)) fail_msg("%s", msg);
  return c;
}

static NpyArray load(const char *model, const char *file) {
  char path[512], err[512];
  NpyArray a;
  snprintf(path, sizeof path, "%s/tests/golden/%s/%s", NNC_SOURCE_DIR, model, file);
  if (npy_read(path, &a, err, sizeof err)) fail_msg("%s", err);
  return a;
}

static nnc_tensor tensor(float *data, int rank, const int64_t *shape) {
  nnc_tensor t = {data, NNC_F32, rank, {0}};
  memcpy(t.shape, shape, rank * sizeof *shape);
  return t;
}

static void test_fast_weights(void **state) {
  nnc_model *m;
  nnc_context *c = open_model("fast_weights", &m);
  NpyArray x = load("fast_weights", "classify.in.x.npy");
  int64_t B = x.shape[0], T = x.shape[1], X = x.shape[2], H = 32, K = 10;
  nnc_tensor in = tensor(x.data, 3, x.shape), whole = {0};
  if (nnc_call(c, nnc_model_find_entry(m, "classify"), &in, 1, &whole, 1)) fail_msg("%s", nnc_context_error(c));
  float *h = calloc(B * H, 4), *A = calloc(B * H * H, 4), *xt = malloc(B * X * 4), *logits = malloc(B * K * 4);
  for (int64_t t = 0; t < T; t++) {
    for (int64_t b = 0; b < B; b++) memcpy(xt + b * X, (float *)x.data + (b * T + t) * X, X * 4);
    nnc_tensor ins[3] = {tensor(xt, 2, (int64_t[]){B, X}), tensor(h, 2, (int64_t[]){B, H}), tensor(A, 3, (int64_t[]){B, H, H})};
    float *h2 = malloc(B * H * 4), *A2 = malloc(B * H * H * 4);
    nnc_tensor outs[3] = {tensor(logits, 2, (int64_t[]){B, K}), tensor(h2, 2, (int64_t[]){B, H}), tensor(A2, 3, (int64_t[]){B, H, H})};
    if (nnc_call(c, nnc_model_find_entry(m, "step"), ins, 3, outs, 3)) fail_msg("%s", nnc_context_error(c));
    free(h);
    free(A);
    h = h2;
    A = A2;
  }
  for (int64_t i = 0; i < B * K; i++)
    if (logits[i] != ((float *)whole.data)[i]) fail_msg("logit %lld: step-by-step %.9g, whole sequence %.9g", (long long)i, logits[i], ((float *)whole.data)[i]);
  free(h), free(A), free(xt), free(logits);
  nnc_free(whole.data);
  npy_free(&x);
  nnc_context_free(c);
  nnc_model_free(m);
}

static void test_mann(void **state) {
  nnc_model *m;
  nnc_context *c = open_model("mann", &m);
  NpyArray x = load("mann", "episode.in.x.npy"), y = load("mann", "episode.in.y.npy");
  int64_t B = x.shape[0], T = x.shape[1], X = x.shape[2], C = y.shape[2], H = 32, N = 16, M = 8, R = 2;
  nnc_tensor ins2[2] = {tensor(x.data, 3, x.shape), tensor(y.data, 3, y.shape)}, whole = {0};
  if (nnc_call(c, nnc_model_find_entry(m, "episode"), ins2, 2, &whole, 1)) fail_msg("%s", nnc_context_error(c));
  int64_t sizes[6] = {B * H, B * H, B * N * M, B * N, B * R * N};
  float *st[5];
  for (int i = 0; i < 5; i++) st[i] = calloc(sizes[i], 4);
  for (int64_t i = 0; i < sizes[2]; i++) st[2][i] = 1e-6f; /* the episode's initial memory */
  float *xt = malloc(B * X * 4), *yp = calloc(B * C, 4), *logits = malloc(B * C * 4);
  for (int64_t t = 0; t < T; t++) {
    for (int64_t b = 0; b < B; b++) memcpy(xt + b * X, (float *)x.data + (b * T + t) * X, X * 4);
    nnc_tensor ins[7] = {tensor(xt, 2, (int64_t[]){B, X}), tensor(yp, 2, (int64_t[]){B, C}),
                         tensor(st[0], 2, (int64_t[]){B, H}), tensor(st[1], 2, (int64_t[]){B, H}),
                         tensor(st[2], 3, (int64_t[]){B, N, M}), tensor(st[3], 2, (int64_t[]){B, N}),
                         tensor(st[4], 3, (int64_t[]){B, R, N})};
    float *nx[5];
    for (int i = 0; i < 5; i++) nx[i] = malloc(sizes[i] * 4);
    nnc_tensor outs[6] = {tensor(logits, 2, (int64_t[]){B, C}), tensor(nx[0], 2, (int64_t[]){B, H}),
                          tensor(nx[1], 2, (int64_t[]){B, H}), tensor(nx[2], 3, (int64_t[]){B, N, M}),
                          tensor(nx[3], 2, (int64_t[]){B, N}), tensor(nx[4], 3, (int64_t[]){B, R, N})};
    if (nnc_call(c, nnc_model_find_entry(m, "step"), ins, 7, outs, 6)) fail_msg("%s", nnc_context_error(c));
    for (int64_t b = 0; b < B; b++)
      for (int64_t k = 0; k < C; k++) {
        float w = ((float *)whole.data)[(b * T + t) * C + k];
        if (logits[b * C + k] != w) fail_msg("step %lld: logit %.9g, episode %.9g", (long long)t, logits[b * C + k], w);
      }
    for (int i = 0; i < 5; i++) {
      free(st[i]);
      st[i] = nx[i];
    }
    for (int64_t b = 0; b < B; b++) memcpy(yp + b * C, (float *)y.data + (b * T + t) * C, C * 4);
  }
  for (int i = 0; i < 5; i++) free(st[i]);
  free(xt), free(yp), free(logits);
  nnc_free(whole.data);
  npy_free(&x);
  npy_free(&y);
  nnc_context_free(c);
  nnc_model_free(m);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_fast_weights),
    cmocka_unit_test(test_mann),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
