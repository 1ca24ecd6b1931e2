/* test_interp.c — the reference interpreter (compiler/ir/interp.c) against PyTorch: every golden
 * model under tests/golden/<m>/ (program examples/<m>.nn or tests/golden/<m>/model.nn) is
 * run through nnc_interpret on its stored inputs, on the IR after sema (stage "ir") and after
 * fold/cse/dce ("opt"), in double and in float32 precision, and each output is compared with the PyTorch reference with the
 * golden runner's tolerance |got - want| <= 1e-5 + 1e-4 |want|.  Plus a few hand-computed
 * cases (broadcasting, transposed matmul, NaN semantics) and the interpreter's error paths. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <dirent.h>
#include <math.h>
#include <sys/stat.h>

#include "compile.h"
#include "nnc.h"
#include "npy.h"

#ifndef NNC_SOURCE_DIR
#define NNC_SOURCE_DIR "."
#endif
#define GOLDEN_DIR NNC_SOURCE_DIR "/tests/golden"
#define MAX_MODELS 64
#define MAX_ARGS 64

static bool file_exists(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static bool model_program(const char *model, char *nn, size_t len) {
  snprintf(nn, len, "%s/%s/model.nn", GOLDEN_DIR, model);
  if (file_exists(nn)) return true;
  snprintf(nn, len, "%s/examples/%s.nn", NNC_SOURCE_DIR, model);
  return file_exists(nn);
}

static nnc_tensor as_tensor(const NpyArray *a) {
  nnc_tensor t = {a->data, a->dtype == NPY_I64 ? NNC_I64 : NNC_F32, a->rank, {0}};
  memcpy(t.shape, a->shape, sizeof(int64_t) * (size_t)a->rank);
  return t;
}

/* 0 if got matches want within the golden tolerance (NaN matches NaN), else 1 (reported). */
static int compare(const char *what, const nnc_tensor *got, const nnc_tensor *want) {
  if (got->rank != want->rank) return print_message("  %s: rank %d, expected %d\n", what, got->rank, want->rank), 1;
  for (int i = 0; i < got->rank; i++)
    if (got->shape[i] != want->shape[i]) return print_message("  %s: dim %d is %lld, expected %lld\n", what, i, (long long)got->shape[i], (long long)want->shape[i]), 1;
  int64_t n = nnc_tensor_numel(want);
  double max_err = 0;
  for (int64_t i = 0; i < n; i++) {
    double a = ((const float *)got->data)[i], b = ((const float *)want->data)[i];
    if (isnan(a) && isnan(b)) continue;
    double err = a == b ? 0 : fabs(a - b);
    if (!(err <= 1e-5 + 1e-4 * fabs(b)))
      return print_message("  %s: element %lld is %.9g, expected %.9g\n", what, (long long)i, a, b), 1;
    if (err > max_err) max_err = err;
  }
  print_message("  %-32s max abs error %.3g\n", what, max_err);
  return 0;
}

static int run_entry(const char *model, const char *nn, const char *weights,
                     const nnc_entry_desc *e, const char *stage, bool f32) {
  char path[1024];
  NpyArray arr[MAX_ARGS] = {{0}};
  nnc_tensor in[MAX_ARGS] = {{0}}, out[MAX_ARGS] = {{0}};
  int n = e->n_in + e->n_out, failures = 0;
  if (n > MAX_ARGS) return 1;
  for (int i = 0; i < n; i++) {
    char err[1024];
    snprintf(path, sizeof path, "%s/%s/%s.%s.%s.npy", GOLDEN_DIR, model, e->name, i < e->n_in ? "in" : "out", e->args[i].name);
    if (!file_exists(path)) {
      for (int k = 0; k < i; k++) npy_free(&arr[k]);
      return 0; /* no golden data for this entry */
    }
    if (npy_read(path, &arr[i], err, sizeof err)) return print_message("  %s\n", err), 1;
    if (i < e->n_in) in[i] = as_tensor(&arr[i]);
  }
  char *msg = NULL;
  NncInterpOptions opt = {.weights_path = weights, .stage = stage, .f32 = f32};
  if (nnc_interpret(nn, &opt, e->name, in, e->n_in, out, e->n_out, &msg)) {
    print_message("  %s: %s\n", e->name, msg);
    failures++;
  }
  for (int o = 0; !failures && o < e->n_out; o++) {
    char what[256];
    nnc_tensor want = as_tensor(&arr[e->n_in + o]);
    snprintf(what, sizeof what, "%s.%s (%s%s)", e->name, e->args[e->n_in + o].name, stage, f32 ? ", f32" : "");
    failures += compare(what, &out[o], &want);
  }
  free(msg);
  for (int o = 0; o < e->n_out; o++) free(out[o].data);
  for (int i = 0; i < n; i++) npy_free(&arr[i]);
  return failures;
}

static void test_golden_model(void **state) {
  const char *model = *state;
  char nn[1024], weights[1024], *msg = NULL;
  model_program(model, nn, sizeof nn);
  snprintf(weights, sizeof weights, "%s/%s/weights.safetensors", GOLDEN_DIR, model);
  const char *w = file_exists(weights) ? weights : NULL;
  /* the entries and their argument names, from the JIT's introspection table */
  nnc_model *m = NULL;
  if (nnc_model_compile(nn, NULL, &m, &msg)) fail_msg("%s: %s", model, msg);
  const nnc_model_desc *d = nnc_model_desc_of(m);
  int failures = 0;
  for (int i = 0; i < d->n_entries; i++) {
    failures += run_entry(model, nn, w, &d->entries[i], "ir", false);
    failures += run_entry(model, nn, w, &d->entries[i], "opt", false);
    failures += run_entry(model, nn, w, &d->entries[i], "ir", true);
  }
  nnc_model_free(m);
  if (failures) fail_msg("%s: %d failure(s), see above", model, failures);
}

/* ---- hand-computed cases ---- */

static void interpret_text(const char *src, const char *entry, const nnc_tensor *in, int n_in,
                           nnc_tensor *out, int n_out) {
  char *msg = NULL;
  int rc = nnc_interpret_source("t.nn", src, strlen(src), NULL, entry, in, n_in, out, n_out, &msg);
  if (rc) fail_msg("%s", msg);
}

static void test_broadcast_matmul(void **state) {
  const char *src =
      "export f(a: f32[N, 2], b: f32[3, 2], c: f32[3]) -> (y: f32[N, 3], s: f32[3], m: f32[N]) {\n"
      "  y = a @ b.T + c\n"
      "  s = sum(y, axis=0)\n"
      "  m = amax(y, axis=1)\n"
      "}\n";
  float a[] = {1, 2, 3, 4}, b[] = {1, 0, 0, 1, 1, 1}, c[] = {10, 20, 30};
  nnc_tensor in[3] = {{a, NNC_F32, 2, {2, 2}}, {b, NNC_F32, 2, {3, 2}}, {c, NNC_F32, 1, {3}}}, out[3];
  interpret_text(src, "f", in, 3, out, 3);
  float y[] = {11, 22, 33, 13, 24, 37}, s[] = {24, 46, 70}, m[] = {33, 37};
  assert_int_equal(out[0].shape[0], 2);
  assert_memory_equal(out[0].data, y, sizeof y);
  assert_memory_equal(out[1].data, s, sizeof s);
  assert_memory_equal(out[2].data, m, sizeof m);
  for (int i = 0; i < 3; i++) free(out[i].data);
}

static void test_nan_semantics(void **state) {
  const char *src =
      "export f(x: f32[4]) -> (r: f32[4], mx: f32[4], mn: f32[4], am: f32[]) {\n"
      "  r = relu(x); mx = maximum(x, 0.0); mn = minimum(x, 0.0); am = amax(x)\n"
      "}\n";
  float x[] = {-1, NAN, 2, -INFINITY};
  nnc_tensor in = {x, NNC_F32, 1, {4}}, out[4];
  interpret_text(src, "f", &in, 1, out, 4);
  const float *r = out[0].data, *mx = out[1].data, *mn = out[2].data, *am = out[3].data;
  assert_true(r[0] == 0 && isnan(r[1]) && r[2] == 2 && r[3] == 0);
  assert_true(mx[0] == 0 && isnan(mx[1]) && mx[2] == 2 && mx[3] == 0);
  assert_true(mn[0] == -1 && isnan(mn[1]) && mn[2] == 0 && mn[3] == -INFINITY);
  assert_true(isnan(am[0]));
  for (int i = 0; i < 4; i++) free(out[i].data);
}

/* i64 outputs as compiled code stores them: toward zero, NaN as 0, saturating */
static void test_i64_outputs(void **state) {
  const char *src = "export f(x: f32[6], ids: i64[2]) -> (y: i64[6], k: i64[], same: i64[2]) {\n"
                    "  y = x; k = argmax(x, 0); same = ids\n"
                    "}\n";
  float x[] = {-2.5f, 3.9f, NAN, 1e30f, -1e30f, 7.0f};
  int64_t ids[] = {(int64_t)1 << 24, -3}; /* read as compiled code reads them: f32 */
  nnc_tensor in[2] = {{x, NNC_F32, 1, {6}}, {ids, NNC_I64, 1, {2}}}, out[3];
  interpret_text(src, "f", in, 2, out, 3);
  int64_t y[] = {-2, 3, 0, INT64_MAX, INT64_MIN, 7}, k = 2; /* a NaN is the maximum, as in torch */
  for (int i = 0; i < 3; i++) assert_int_equal(out[i].dtype, NNC_I64);
  assert_memory_equal(out[0].data, y, sizeof y);
  assert_int_equal(*(const int64_t *)out[1].data, k);
  assert_memory_equal(out[2].data, ids, sizeof ids);
  for (int i = 0; i < 3; i++) free(out[i].data);
}

/* the fused ATTENTION op (self-attention over a symbolic T, no mask, no weights) against
 * softmax(q kᵀ / √E) v by hand, causal too: row l sees keys 0..l */
static void test_attention(void **state) {
  const char *src = "export f(q: f32[1, T, 2], k: f32[1, T, 2], v: f32[1, T, 1]) -> (y: f32[1, T, 1], c: f32[1, T, 1]) {\n"
                    "  y = scaled_dot_product_attention(q, k, v)\n"
                    "  c = scaled_dot_product_attention(q, k, v, is_causal=true)\n"
                    "}\n";
  float q[] = {1, 0, 0, 2, -1, 1}, k[] = {1, 1, -1, 0, 0, 3}, v[] = {10, 20, 30};
  nnc_tensor in[3] = {{q, NNC_F32, 3, {1, 3, 2}}, {k, NNC_F32, 3, {1, 3, 2}}, {v, NNC_F32, 3, {1, 3, 1}}}, out[2];
  interpret_text(src, "f", in, 3, out, 2);
  const float *y = out[0].data, *c = out[1].data;
  for (int l = 0; l < 3; l++) {
    double s[3], want[2];
    for (int j = 0; j < 3; j++) s[j] = (q[2 * l] * k[2 * j] + q[2 * l + 1] * k[2 * j + 1]) / sqrt(2.0);
    for (int causal = 0; causal < 2; causal++) {
      int seen = causal ? l + 1 : 3;
      double mx = -INFINITY, z = 0, acc = 0;
      for (int j = 0; j < seen; j++) mx = fmax(mx, s[j]);
      for (int j = 0; j < seen; j++) {
        z += exp(s[j] - mx);
        acc += exp(s[j] - mx) * v[j];
      }
      want[causal] = acc / z;
    }
    assert_true(fabs(y[l] - want[0]) < 1e-5);
    assert_true(fabs(c[l] - want[1]) < 1e-5);
  }
  free(out[0].data);
  free(out[1].data);
}

static void test_errors(void **state) {
  const char *src = "export f(x: f32[N, 2]) -> (y: f32[N, 2]) { y = x * 2 }\n";
  float x[6] = {0};
  nnc_tensor bad_shape = {x, NNC_F32, 2, {3, 3}}, bad_dtype = {x, NNC_I64, 2, {3, 2}}, out[1];
  char *msg = NULL;
  assert_int_not_equal(nnc_interpret_source("t.nn", src, strlen(src), NULL, "f", &bad_shape, 1, out, 1, &msg), 0);
  assert_non_null(strstr(msg, "input 'x'"));
  free(msg);
  assert_int_not_equal(nnc_interpret_source("t.nn", src, strlen(src), NULL, "f", &bad_dtype, 1, out, 1, &msg), 0);
  free(msg);
  assert_int_not_equal(nnc_interpret_source("t.nn", src, strlen(src), NULL, "g", &bad_shape, 1, out, 1, &msg), 0);
  assert_non_null(strstr(msg, "no entry 'g'"));
  free(msg);
  NncInterpOptions opt = {.stage = "fused"};
  assert_int_not_equal(nnc_interpret_source("t.nn", src, strlen(src), &opt, "f", &bad_shape, 1, out, 1, &msg), 0);
  free(msg);
}

/* ---- discovery ---- */

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int main(void) {
  static char names[MAX_MODELS][64];
  static char *sorted[MAX_MODELS];
  static struct CMUnitTest tests[MAX_MODELS + 5];
  int n = 0, nt = 0;
  DIR *d = opendir(GOLDEN_DIR);
  struct dirent *de;
  while (d && (de = readdir(d)) != NULL && n < MAX_MODELS) {
    char nn[1024];
    if (de->d_name[0] == '.' || strlen(de->d_name) >= sizeof names[0]) continue;
    if (!model_program(de->d_name, nn, sizeof nn)) continue;
    snprintf(names[n], sizeof names[n], "%s", de->d_name);
    sorted[n] = names[n];
    n++;
  }
  if (d) closedir(d);
  qsort(sorted, (size_t)n, sizeof *sorted, cmp_str);
  for (int i = 0; i < n; i++) tests[nt++] = (struct CMUnitTest){sorted[i], test_golden_model, NULL, NULL, sorted[i]};
  tests[nt++] = (struct CMUnitTest){"broadcast_matmul", test_broadcast_matmul, NULL, NULL, NULL};
  tests[nt++] = (struct CMUnitTest){"nan_semantics", test_nan_semantics, NULL, NULL, NULL};
  tests[nt++] = (struct CMUnitTest){"i64_outputs", test_i64_outputs, NULL, NULL, NULL};
  tests[nt++] = (struct CMUnitTest){"attention", test_attention, NULL, NULL, NULL};
  tests[nt++] = (struct CMUnitTest){"errors", test_errors, NULL, NULL, NULL};
  return _cmocka_run_group_tests("interp", tests, (size_t)nt, NULL, NULL);
}
