/* test_runtime.c — unit tests for the context ABI (runtime/support/ctx.c) and the public
 * runtime API (nnc.h), against a model table written by hand here: entries with C bodies
 * (y = w*x + b, outer products, pair sums, ...) over symbolic dims N, M, K.
 *
 * Covered: weights from a file (missing, extra, wrongly shaped or typed tensors) and embedded;
 * workspace sizes, growth and reuse; nnc_ctx_call argument errors; nnc_call's binding of
 * symbolic dims and its errors; output allocation; loading libraries that are not models;
 * separate contexts on separate threads; the thread pool's split loops (pool.h). */
#include <setjmp.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <cblas.h>
#include <dlfcn.h>
#include <math.h>
#include <pthread.h>
#include <unistd.h>

#include "nnc.h"
#include "pool.h"
#include "safetensors.h"

nnc_ctx *nnc_ctx_open(const nnc_model_desc *, const char *, char *, size_t);
void nnc_ctx_close(nnc_ctx *);
int nnc_ctx_call(nnc_ctx *, int, void *const *, const int64_t *);
const char *nnc_ctx_error(const nnc_ctx *);
int64_t nnc_entry_workspace_size(const nnc_entry_desc *, const int64_t *);

/* ---- the fake model ---- */

enum { N = 1u << 0, M = 1u << 1, K = 1u << 2 };
enum { E_SCALE, E_OUTER, E_PAIRS, E_BAD, E_PROD, E_ADD, E_COUNT };

static const char *last_ws; /* workspace pointer seen by the last scale call */

/* scale(x: f32[N, 2]) -> (y: f32[N, 2]): y = w*x + fc.bias, through the workspace. */
static void body_scale(void *const *args, const int64_t *syms, const char *weights, char *ws) {
  const float *x = args[0], *w = (const float *)weights, *b = (const float *)(weights + 64);
  float *y = args[1], *tmp = (float *)ws;
  last_ws = ws;
  for (int64_t i = 0; i < 2 * syms[0]; i++) tmp[i] = x[i];
  for (int64_t i = 0; i < syms[0]; i++)
    for (int j = 0; j < 2; j++) y[2 * i + j] = w[j] * tmp[2 * i + j] + b[j];
}

/* outer(a: f32[N], b: f32[M]) -> (c: f32[N*M]) */
static void body_outer(void *const *args, const int64_t *syms, const char *weights, char *ws) {
  const float *a = args[0], *b = args[1];
  float *c = args[2];
  for (int64_t i = 0; i < syms[0]; i++)
    for (int64_t j = 0; j < syms[1]; j++) c[i * syms[1] + j] = a[i] * b[j];
}

/* pairs(x: f32[2*N]) -> (y: f32[N]) */
static void body_pairs(void *const *args, const int64_t *syms, const char *weights, char *ws) {
  const float *x = args[0];
  float *y = args[1];
  for (int64_t i = 0; i < syms[0]; i++) y[i] = x[2 * i] + x[2 * i + 1];
}

/* bad(x: f32[N]) -> (y: f32[K]): K cannot be inferred; never called. */
static void body_bad(void *const *args, const int64_t *syms, const char *weights, char *ws) {
  fail();
}

/* prod(a: f32[N*M], b: f32[M]) -> (c: f32[N]): c[i] = sum_j a[i, j] * b[j] */
static void body_prod(void *const *args, const int64_t *syms, const char *weights, char *ws) {
  const float *a = args[0], *b = args[1];
  float *c = args[2];
  for (int64_t i = 0; i < syms[0]; i++) {
    c[i] = 0;
    for (int64_t j = 0; j < syms[1]; j++) c[i] += a[i * syms[1] + j] * b[j];
  }
}

/* add(x: f32[N, 2], y: f32[N, 2]) -> (z: f32[N, 2]) */
static void body_add(void *const *args, const int64_t *syms, const char *weights, char *ws) {
  const float *x = args[0], *y = args[1];
  float *z = args[2];
  for (int64_t i = 0; i < 2 * syms[0]; i++) z[i] = x[i] + y[i];
}

/* count(x: i64[N]) -> (s: i64[]) */
static void body_count(void *const *args, const int64_t *syms, const char *weights, char *ws) {
  const int64_t *x = args[0];
  int64_t *s = args[1];
  *s = 0;
  for (int64_t i = 0; i < syms[0]; i++) *s += x[i];
}

static const nnc_dim d_n = {1, N}, d_m = {1, M}, d_k = {1, K}, d_2n = {2, N},
                     d_nm = {1, N | M};
static const nnc_dim dims_n2[] = {{1, N}, {2, 0}};
static const nnc_arg_desc args_scale[] = {{"x", NNC_F32, 2, dims_n2}, {"y", NNC_F32, 2, dims_n2}};
static const nnc_arg_desc args_outer[] = {
    {"a", NNC_F32, 1, &d_n}, {"b", NNC_F32, 1, &d_m}, {"c", NNC_F32, 1, &d_nm}};
static const nnc_arg_desc args_pairs[] = {{"x", NNC_F32, 1, &d_2n}, {"y", NNC_F32, 1, &d_n}};
static const nnc_arg_desc args_bad[] = {{"x", NNC_F32, 1, &d_n}, {"y", NNC_F32, 1, &d_k}};
static const nnc_arg_desc args_prod[] = {
    {"a", NNC_F32, 1, &d_nm}, {"b", NNC_F32, 1, &d_m}, {"c", NNC_F32, 1, &d_n}};
static const nnc_arg_desc args_add[] = {
    {"x", NNC_F32, 2, dims_n2}, {"y", NNC_F32, 2, dims_n2}, {"z", NNC_F32, 2, dims_n2}};
static const nnc_arg_desc args_count[] = {{"x", NNC_I64, 1, &d_n}, {"s", NNC_I64, 0, NULL}};
static const nnc_slot slots_scale[] = {{{8, N}}, {{4, 0}}}; /* 8N bytes of x, 4 spare */

static const nnc_entry_desc entries[] = {
    [E_SCALE] = {"scale", 1, 1, args_scale, 2, slots_scale, body_scale},
    [E_OUTER] = {"outer", 2, 1, args_outer, 0, NULL, body_outer},
    [E_PAIRS] = {"pairs", 1, 1, args_pairs, 0, NULL, body_pairs},
    [E_BAD] = {"bad", 1, 1, args_bad, 0, NULL, body_bad},
    [E_PROD] = {"prod", 2, 1, args_prod, 0, NULL, body_prod},
    [E_ADD] = {"add", 2, 1, args_add, 0, NULL, body_add},
    [E_COUNT] = {"count", 1, 1, args_count, 0, NULL, body_count},
};

static const int64_t shape_2[] = {2};
static const nnc_param_desc params[] = {
    {"w", NNC_F32, 1, shape_2, 0, 8},
    {"fc.bias", NNC_F32, 1, shape_2, 64, 8},
};
static const char *const sym_names[] = {"N", "M", "K"};

static _Alignas(64) const float embedded[32] = {2, 3, [16] = 0.5f, -1};

static const nnc_model_desc fake = {
    NNC_MODEL_ABI, "fake", 3, sym_names, 7, entries, 2, params, 128, NULL, NULL};
static const nnc_model_desc fake_embedded = {
    NNC_MODEL_ABI, "fake", 3, sym_names, 7, entries, 2, params, 128, (const char *)embedded, NULL};

/* ---- helpers ---- */

static char tmpdir[64];

static int setup_dir(void **state) {
  strcpy(tmpdir, "/tmp/nnc_runtime_XXXXXX");
  return mkdtemp(tmpdir) ? 0 : -1;
}

static int remove_dir(void **state) {
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
  return system(cmd) == 0 ? 0 : -1;
}

static const char *tmp_path(const char *name) {
  static char buf[256];
  snprintf(buf, sizeof buf, "%s/%s", tmpdir, name);
  return buf;
}

static StTensor f32_tensor(const char *name, int rank, int64_t d0, int64_t d1, const void *data) {
  StTensor t = {(char *)name, ST_F32, rank, {d0, d1}, data, 4};
  for (int i = 0; i < rank; i++) t.nbytes *= (size_t)t.shape[i];
  return t;
}

/* Write the tensors to NAME in the temp dir; returns the path. */
static const char *write_weights(const char *name, const StTensor *t, int n) {
  char err[1024];
  const char *path = tmp_path(name);
  if (st_write_file(path, t, n, err, sizeof err)) fail_msg("%s", err);
  return path;
}

static const float w_vals[] = {10, 20}, b_vals[] = {1, 2};

static const char *good_weights(void) {
  StTensor t[] = {f32_tensor("w", 1, 2, 0, w_vals), f32_tensor("fc.bias", 1, 2, 0, b_vals)};
  return write_weights("good.safetensors", t, 2);
}

/* Open the raw context on `path`; returns its error message ("" on success). */
static const char *open_error(const nnc_model_desc *d, const char *path) {
  static char err[1024];
  err[0] = '\0';
  nnc_ctx *ctx = nnc_ctx_open(d, path, err, sizeof err);
  if (ctx) assert_string_equal(err, "");
  nnc_ctx_close(ctx);
  return err;
}

static void expect_error(const char *got, const char *want_fmt, const char *path) {
  char want[1024];
  snprintf(want, sizeof want, want_fmt, path);
  assert_string_equal(got, want);
}

static void call_scale(nnc_ctx *ctx, int64_t n, float *x, float *y) {
  int64_t syms[3] = {n, 0, 0};
  void *args[] = {x, y};
  assert_int_equal(nnc_ctx_call(ctx, E_SCALE, args, syms), NNC_OK);
}

/* ---- weights ---- */

static void test_open_without_weights(void **state) {
  assert_string_equal(open_error(&fake, NULL),
                      "fake: error: model was compiled without weights: give a weights file");
}

static void test_embedded_weights(void **state) {
  char err[256];
  nnc_ctx *ctx = nnc_ctx_open(&fake_embedded, NULL, err, sizeof err);
  assert_non_null(ctx);
  float x[] = {1, 1, 2, 2}, y[4];
  call_scale(ctx, 2, x, y);
  float want[] = {2.5f, 2, 4.5f, 5};
  for (int i = 0; i < 4; i++) assert_float_equal(y[i], want[i], 0);
  nnc_ctx_close(ctx);
}

static void test_weights_from_file(void **state) {
  const char *path = good_weights();
  char err[256];
  /* a file replaces embedded weights too */
  for (int e = 0; e < 2; e++) {
    nnc_ctx *ctx = nnc_ctx_open(e ? &fake_embedded : &fake, path, err, sizeof err);
    assert_non_null(ctx);
    float x[] = {1, 2}, y[2];
    call_scale(ctx, 1, x, y);
    assert_float_equal(y[0], 11, 0);
    assert_float_equal(y[1], 42, 0);
    nnc_ctx_close(ctx);
  }
}

static void test_missing_tensor(void **state) {
  StTensor t[] = {f32_tensor("w", 1, 2, 0, w_vals)};
  const char *path = write_weights("missing.safetensors", t, 1);
  expect_error(open_error(&fake, path), "%s: error: missing tensor 'fc.bias' (expected F32[2])",
               path);
}

static void test_missing_with_prefix(void **state) {
  StTensor t[] = {f32_tensor("module.w", 1, 2, 0, w_vals),
                  f32_tensor("module.fc.bias", 1, 2, 0, b_vals)};
  const char *path = write_weights("prefixed.safetensors", t, 2);
  expect_error(open_error(&fake, path),
               "%s: error: missing tensor 'w' (expected F32[2]); also missing: 'fc.bias' (the "
               "file has 'module.w': strip the 'module.' prefix from its names)",
               path);
}

static void test_extra_tensor(void **state) {
  StTensor t[] = {f32_tensor("w", 1, 2, 0, w_vals), f32_tensor("fc.bias", 1, 2, 0, b_vals),
                  f32_tensor("foo", 1, 2, 0, b_vals)};
  const char *path = write_weights("extra.safetensors", t, 3);
  expect_error(open_error(&fake, path),
               "%s: error: unexpected tensor 'foo' (the model has no such parameter)", path);
}

static void test_wrong_shape(void **state) {
  StTensor t[] = {f32_tensor("w", 2, 2, 1, w_vals), f32_tensor("fc.bias", 1, 2, 0, b_vals)};
  const char *path = write_weights("shape.safetensors", t, 2);
  expect_error(open_error(&fake, path),
               "%s: error: tensor 'w' has shape [2, 1], the model expects [2]", path);
}

static void test_wrong_dtype(void **state) {
  static const int64_t ints[] = {1, 2};
  StTensor w = {"w", ST_I64, 1, {2}, ints, 16};
  StTensor t[] = {w, f32_tensor("fc.bias", 1, 2, 0, b_vals)};
  const char *path = write_weights("dtype.safetensors", t, 2);
  expect_error(open_error(&fake, path),
               "%s: error: tensor 'w' has dtype I64, the model expects F32", path);
}

static void test_unreadable_file(void **state) {
  const char *path = tmp_path("nonexistent.safetensors");
  const char *err = open_error(&fake, path);
  assert_true(strncmp(err, path, strlen(path)) == 0);
  assert_non_null(strstr(err, ": error: "));
}

#define STR_(x) #x
#define STR(x) STR_(x)
#define ABI_TEXT STR(NNC_MODEL_ABI)

static void test_bad_abi_version(void **state) {
  nnc_model_desc d = fake_embedded;
  d.abi_version = 99;
  assert_string_equal(open_error(&d, NULL),
                      "fake: error: model ABI version 99, this runtime expects " ABI_TEXT);
}

/* ---- workspace ---- */

static void test_workspace_size(void **state) {
  const nnc_entry_desc *e = &entries[E_SCALE];
  int64_t syms[3] = {3, 0, 0};
  assert_int_equal(nnc_entry_workspace_size(e, syms), 64 + 64);
  syms[0] = 100; /* 800 -> 832 */
  assert_int_equal(nnc_entry_workspace_size(e, syms), 832 + 64);
  syms[0] = 0;
  assert_int_equal(nnc_entry_workspace_size(e, syms), 64);
  syms[0] = INT64_MAX / 4;
  assert_int_equal(nnc_entry_workspace_size(e, syms), -1);
  syms[0] = -1;
  assert_int_equal(nnc_entry_workspace_size(e, syms), -1);
  assert_int_equal(nnc_entry_workspace_size(&entries[E_OUTER], syms), 0);
  assert_int_equal(nnc_entry_workspace_size(NULL, syms), -1);
}

/* A region over the tail of the one before: it starts `at` (rounded up to 64) after that
 * one's start; the workspace ends at the larger end. */
static void test_workspace_overlay(void **state) {
  (void)state;
  static const nnc_slot regions[] = {{{32, 0}}, {{128, N}}, {{100, 0}, {64, N}, 1}};
  nnc_entry_desc e = {.name = "overlay", .n_slots = 3, .slots = regions};
  int64_t syms[3] = {3, 0, 0};
  assert_int_equal(nnc_entry_workspace_size(&e, syms), 64 + 384);        /* 64+192+128 = 384 < 448 */
  syms[0] = 1;
  assert_int_equal(nnc_entry_workspace_size(&e, syms), 64 + 64 + 128);   /* past the 128 below */
  syms[0] = 0;
  assert_int_equal(nnc_entry_workspace_size(&e, syms), 64 + 128);
  static const nnc_slot first_over[] = {{{64, 0}, {0, 0}, 1}}; /* nothing before it to lie over */
  e.slots = first_over;
  e.n_slots = 1;
  assert_int_equal(nnc_entry_workspace_size(&e, syms), -1);
}

static void test_workspace_growth(void **state) {
  char err[256];
  nnc_ctx *ctx = nnc_ctx_open(&fake_embedded, NULL, err, sizeof err);
  float x[2000] = {0}, y[2000];
  call_scale(ctx, 4, x, y);
  const char *first = last_ws;
  assert_int_equal((uintptr_t)first % 64, 0);
  call_scale(ctx, 2, x, y); /* smaller: reused */
  assert_ptr_equal(last_ws, first);
  call_scale(ctx, 4, x, y);
  assert_ptr_equal(last_ws, first);
  call_scale(ctx, 1000, x, y); /* grows */
  const char *grown = last_ws;
  assert_int_equal((uintptr_t)grown % 64, 0);
  call_scale(ctx, 3, x, y); /* never shrinks */
  assert_ptr_equal(last_ws, grown);
  nnc_ctx_close(ctx);
}

/* ---- nnc_ctx_call errors ---- */

static void test_ctx_call_errors(void **state) {
  char err[256];
  nnc_ctx *ctx = nnc_ctx_open(&fake_embedded, NULL, err, sizeof err);
  float x[4] = {0}, y[4];
  void *args[] = {x, y}, *null_args[] = {NULL, y};
  int64_t syms[3] = {2, 0, 0}, neg[3] = {2, -1, 0}, empty[3] = {0, 0, 0};
  assert_int_equal(nnc_ctx_call(ctx, 7, args, syms), NNC_ERR_USAGE);
  assert_string_equal(nnc_ctx_error(ctx), "entry index 7 out of range (the model has 7 entries)");
  assert_int_equal(nnc_ctx_call(ctx, -1, args, syms), NNC_ERR_USAGE);
  assert_int_equal(nnc_ctx_call(ctx, E_SCALE, args, neg), NNC_ERR_USAGE);
  assert_string_equal(nnc_ctx_error(ctx), "symbolic dim M is -1 (must be >= 0)");
  assert_int_equal(nnc_ctx_call(ctx, E_SCALE, args, NULL), NNC_ERR_USAGE);
  assert_int_equal(nnc_ctx_call(ctx, E_SCALE, null_args, syms), NNC_ERR_USAGE);
  assert_string_equal(nnc_ctx_error(ctx), "entry 'scale': argument 'x' is NULL");
  assert_int_equal(nnc_ctx_call(ctx, E_SCALE, NULL, syms), NNC_ERR_USAGE);
  assert_int_equal(nnc_ctx_call(ctx, E_SCALE, null_args, empty), NNC_OK); /* empty x */
  assert_string_equal(nnc_ctx_error(ctx), "");
  assert_int_equal(nnc_ctx_call(NULL, E_SCALE, args, syms), NNC_ERR_USAGE);
  nnc_ctx_close(ctx);
  nnc_ctx_close(NULL);
}

/* ---- nnc.h ---- */

typedef struct Fixture {
  nnc_model *model;
  nnc_context *ctx;
} Fixture;

static int setup_api(void **state) {
  Fixture *f = calloc(1, sizeof *f);
  char *msg = NULL;
  if (nnc_model_from_desc(&fake_embedded, &f->model, &msg)) return -1;
  if (nnc_context_open(f->model, NULL, &f->ctx, &msg)) return -1;
  *state = f;
  return 0;
}

static int teardown_api(void **state) {
  Fixture *f = *state;
  nnc_context_free(f->ctx);
  nnc_model_free(f->model);
  free(f);
  return 0;
}

static nnc_tensor f32(float *data, int rank, int64_t d0, int64_t d1) {
  return (nnc_tensor){data, NNC_F32, rank, {d0, d1}};
}

static void test_api_find_entry(void **state) {
  Fixture *f = *state;
  assert_int_equal(nnc_model_find_entry(f->model, "scale"), E_SCALE);
  assert_int_equal(nnc_model_find_entry(f->model, "count"), E_COUNT);
  assert_int_equal(nnc_model_find_entry(f->model, "nope"), -1);
  assert_int_equal(nnc_model_find_entry(NULL, "scale"), -1);
  assert_ptr_equal(nnc_model_desc_of(f->model), &fake_embedded);
}

static void test_api_call_allocates(void **state) {
  Fixture *f = *state;
  float x[] = {1, 1, 2, 2, 3, 3};
  nnc_tensor in = f32(x, 2, 3, 2), out = {0};
  assert_int_equal(nnc_call(f->ctx, E_SCALE, &in, 1, &out, 1), NNC_OK);
  assert_string_equal(nnc_context_error(f->ctx), "");
  assert_int_equal(out.dtype, NNC_F32);
  assert_int_equal(out.rank, 2);
  assert_int_equal(out.shape[0], 3);
  assert_int_equal(out.shape[1], 2);
  assert_int_equal((uintptr_t)out.data % 64, 0);
  float *y = out.data;
  assert_float_equal(y[4], 6.5f, 0);
  assert_float_equal(y[5], 8, 0);
  nnc_free(out.data);
}

static void test_api_call_given_output(void **state) {
  Fixture *f = *state;
  float x[] = {1, 1}, y[2], bad[3];
  nnc_tensor in = f32(x, 2, 1, 2), out = f32(y, 2, 1, 2);
  assert_int_equal(nnc_call(f->ctx, E_SCALE, &in, 1, &out, 1), NNC_OK);
  assert_float_equal(y[0], 2.5f, 0);
  assert_ptr_equal(out.data, y);
  out = f32(bad, 2, 1, 3);
  assert_int_equal(nnc_call(f->ctx, E_SCALE, &in, 1, &out, 1), NNC_ERR_USER);
  assert_string_equal(nnc_context_error(f->ctx),
                      "output 'y' of entry 'scale' has shape [1, 3], expected [1, 2]");
  out.dtype = NNC_I64;
  assert_int_equal(nnc_call(f->ctx, E_SCALE, &in, 1, &out, 1), NNC_ERR_USER);
  assert_string_equal(nnc_context_error(f->ctx), "output 'y' of entry 'scale' must be f32, got i64");
}

static void test_api_multi_sym_output(void **state) {
  Fixture *f = *state;
  float a[] = {1, 2, 3}, b[] = {1, 10, 100, 1000};
  nnc_tensor in[] = {f32(a, 1, 3, 0), f32(b, 1, 4, 0)}, out = {0};
  assert_int_equal(nnc_call(f->ctx, E_OUTER, in, 2, &out, 1), NNC_OK);
  assert_int_equal(out.rank, 1);
  assert_int_equal(out.shape[0], 12);
  assert_float_equal(((float *)out.data)[11], 3000, 0);
  nnc_free(out.data);
}

static void test_api_multiple_of_k(void **state) {
  Fixture *f = *state;
  float x[] = {1, 2, 3, 4, 5, 6, 7};
  nnc_tensor in = f32(x, 1, 6, 0), out = {0};
  assert_int_equal(nnc_call(f->ctx, E_PAIRS, &in, 1, &out, 1), NNC_OK);
  assert_int_equal(out.shape[0], 3);
  assert_float_equal(((float *)out.data)[2], 11, 0);
  nnc_free(out.data);
  out = (nnc_tensor){0};
  in.shape[0] = 7;
  assert_int_equal(nnc_call(f->ctx, E_PAIRS, &in, 1, &out, 1), NNC_ERR_USER);
  assert_string_equal(nnc_context_error(f->ctx),
                      "input 'x' of entry 'pairs': dim 0 is 7, not a multiple of 2 (it is 2*N)");
  assert_null(out.data);
}

static void test_api_infer_from_product(void **state) {
  Fixture *f = *state;
  float a[] = {1, 2, 3, 4, 5, 6}, b[] = {1, 1, 1};
  nnc_tensor in[] = {f32(a, 1, 6, 0), f32(b, 1, 3, 0)}, out = {0};
  assert_int_equal(nnc_call(f->ctx, E_PROD, in, 2, &out, 1), NNC_OK); /* M = 3, then N = 2 */
  assert_int_equal(out.shape[0], 2);
  assert_float_equal(((float *)out.data)[1], 15, 0);
  nnc_free(out.data);
  out = (nnc_tensor){0};
  in[0].shape[0] = 5;
  assert_int_equal(nnc_call(f->ctx, E_PROD, in, 2, &out, 1), NNC_ERR_USER);
  assert_string_equal(nnc_context_error(f->ctx),
                      "input 'a' of entry 'prod': dim 0 is 5, not a multiple of 3 (it is N*M)");
}

static void test_api_cannot_infer(void **state) {
  Fixture *f = *state;
  float x[] = {1};
  nnc_tensor in = f32(x, 1, 1, 0), out = {0};
  assert_int_equal(nnc_call(f->ctx, E_BAD, &in, 1, &out, 1), NNC_ERR_USER);
  assert_string_equal(nnc_context_error(f->ctx),
                      "entry 'bad': cannot infer K from the input shapes (it appears only in outputs)");
}

static void test_api_sym_conflict(void **state) {
  Fixture *f = *state;
  float x[8] = {0}, y[8] = {0};
  nnc_tensor in[] = {f32(x, 2, 4, 2), f32(y, 2, 3, 2)}, out = {0};
  assert_int_equal(nnc_call(f->ctx, E_ADD, in, 2, &out, 1), NNC_ERR_USER);
  assert_string_equal(nnc_context_error(f->ctx),
                      "input 'y' of entry 'add': dim 0 is 3 but N is already 4 from input 'x'");
  assert_null(out.data);
}

static void test_api_input_errors(void **state) {
  Fixture *f = *state;
  float x[6] = {0};
  nnc_tensor in = f32(x, 2, 2, 3), out = {0};
  assert_int_equal(nnc_call(f->ctx, E_SCALE, &in, 1, &out, 1), NNC_ERR_USER);
  assert_string_equal(nnc_context_error(f->ctx),
                      "input 'x' of entry 'scale': dim 1 is 3, expected 2 (x: f32[N, 2])");
  in = f32(x, 1, 6, 0);
  assert_int_equal(nnc_call(f->ctx, E_SCALE, &in, 1, &out, 1), NNC_ERR_USER);
  assert_string_equal(nnc_context_error(f->ctx),
                      "input 'x' of entry 'scale' must have rank 2 (f32[N, 2]), got rank 1");
  in = f32(x, 2, 3, 2);
  in.dtype = NNC_I64;
  assert_int_equal(nnc_call(f->ctx, E_SCALE, &in, 1, &out, 1), NNC_ERR_USER);
  assert_string_equal(nnc_context_error(f->ctx), "input 'x' of entry 'scale' must be f32, got i64");
  in = f32(NULL, 2, 3, 2);
  assert_int_equal(nnc_call(f->ctx, E_SCALE, &in, 1, &out, 1), NNC_ERR_USAGE);
  in = f32(x, 2, -1, 2);
  assert_int_equal(nnc_call(f->ctx, E_SCALE, &in, 1, &out, 1), NNC_ERR_USER);
  in = f32(x, 2, 3, 2);
  assert_int_equal(nnc_call(f->ctx, E_SCALE, &in, 2, &out, 1), NNC_ERR_USAGE);
  assert_string_equal(nnc_context_error(f->ctx),
                      "entry 'scale' takes 1 inputs and 1 outputs, got 2 and 1");
  assert_int_equal(nnc_call(f->ctx, 99, &in, 1, &out, 1), NNC_ERR_USAGE);
  assert_int_equal(nnc_call(NULL, E_SCALE, &in, 1, &out, 1), NNC_ERR_USAGE);
  assert_null(out.data);
}

static void test_api_i64_scalar(void **state) {
  Fixture *f = *state;
  int64_t x[] = {1, 2, 3, 4};
  nnc_tensor in = {x, NNC_I64, 1, {4}}, out = {0};
  assert_int_equal(nnc_call(f->ctx, E_COUNT, &in, 1, &out, 1), NNC_OK);
  assert_int_equal(out.rank, 0);
  assert_int_equal(nnc_tensor_numel(&out), 1);
  assert_int_equal(*(int64_t *)out.data, 10);
  nnc_free(out.data);
}

static void test_api_context_weights(void **state) {
  nnc_model *m;
  nnc_context *c = NULL;
  char *msg = NULL;
  assert_int_equal(nnc_model_from_desc(&fake, &m, &msg), NNC_OK);
  assert_int_equal(nnc_context_open(m, NULL, &c, &msg), NNC_ERR_USER);
  assert_null(c);
  assert_string_equal(msg, "fake: error: model was compiled without weights: give a weights file");
  nnc_free(msg);
  assert_int_equal(nnc_context_open(m, good_weights(), &c, &msg), NNC_OK);
  assert_null(msg);
  float x[] = {1, 2}, y[2];
  nnc_tensor in = f32(x, 2, 1, 2), out = f32(y, 2, 1, 2);
  assert_int_equal(nnc_call(c, E_SCALE, &in, 1, &out, 1), NNC_OK);
  assert_float_equal(y[1], 42, 0);
  nnc_context_free(c);
  nnc_context_free(NULL);
  nnc_model_free(m);
  nnc_model_free(NULL);
}

static void test_api_load_errors(void **state) {
  nnc_model *m = (nnc_model *)1;
  char *msg = NULL;
  const char *path = tmp_path("nothing.so");
  assert_int_equal(nnc_model_load(path, &m, &msg), NNC_ERR_USER);
  assert_null(m);
  assert_true(strncmp(msg, path, strlen(path)) == 0);
  assert_non_null(strstr(msg, ": error: cannot load the library: "));
  nnc_free(msg);
  Dl_info info; /* a real library that is not a model: cmocka itself */
  assert_true(dladdr((void *)_cmocka_run_group_tests, &info));
  assert_int_equal(nnc_model_load(info.dli_fname, &m, &msg), NNC_ERR_USER);
  char want[1024];
  snprintf(want, sizeof want, "%s: error: not a model library made by nnc (no symbol 'nnc_model_info')",
           info.dli_fname);
  assert_string_equal(msg, want);
  nnc_free(msg);
  nnc_model_desc bad = fake;
  bad.abi_version = 1;
  assert_int_equal(nnc_model_from_desc(&bad, &m, &msg), NNC_ERR_USER);
  assert_string_equal(msg, "fake: error: model ABI version 1, this runtime expects " ABI_TEXT);
  nnc_free(msg);
}

/* ---- the thread pool ---- */

static _Atomic int pool_hits[64];

static void count_iterations(void *const *bufs, const int64_t *syms, int64_t lo, int64_t hi) {
  (void)bufs, (void)syms;
  for (int64_t i = lo; i < hi; i++) atomic_fetch_add(&pool_hits[i], 1);
}

/* Every iteration runs once, split or not: plain loops of little and much work, and parts
 * loops (split however short), over many calls of an entry whose doubtful splits are timed
 * both ways, then made or not (nnc_pool_call_begin), and outside any call. */
static void test_pool_split_loops(void **state) {
  (void)state;
  for (int threads = 1; threads <= 4; threads *= 2) {
    nnc_pool *pool = nnc_pool_new(threads), *prev = nnc_pool_enter(pool);
    for (int call = 0; call < 6000; call++) {
      int64_t n = 1 + call % 40;
      bool in_call = call < 5000;
      uint64_t t0 = in_call ? nnc_pool_call_begin(pool, call % 2) : 0;
      for (int i = 0; i < 64; i++) atomic_store(&pool_hits[i], 0);
      if (call % 3 == 0) nnc_rt_parallel_for(count_iterations, NULL, NULL, n, call % 2 ? 1 : 1 << 20);
      else nnc_rt_parallel_parts(count_iterations, NULL, NULL, n, 1);
      for (int i = 0; i < 64; i++) assert_int_equal(atomic_load(&pool_hits[i]), i < n);
      if (in_call) nnc_pool_call_end(pool, call % 2, t0);
    }
    nnc_pool_enter(prev);
    nnc_pool_free(pool);
  }
}

/* nnc_rt_sgemm's grid of tiles: a product of a few grains (a doubtful split, made or not as
 * the calls of its entry show) and a large one (always split) are close to a double-precision
 * sum and the same bits on 1-3 threads, inside calls timed both ways and outside any call. */
enum { SG_M = 72, SG_N = 200, SG_K = 600, SG_BIG_K = 2400 };

static void sgemm_reference(const float *a, const float *b, int k, float *want) {
  for (int i = 0; i < SG_M; i++)
    for (int j = 0; j < SG_N; j++) {
      double sum = 0;
      for (int p = 0; p < k; p++) sum += (double)a[i * k + p] * b[p * SG_N + j];
      want[i * SG_N + j] = (float)sum;
    }
}

static void test_pool_sgemm_grid(void **state) {
  (void)state;
  static float a[SG_M * SG_BIG_K], b[SG_BIG_K * SG_N], c[SG_M * SG_N], first[2][SG_M * SG_N], want[2][SG_M * SG_N];
  for (int i = 0; i < SG_M * SG_BIG_K; i++) a[i] = (float)((i * 37) % 101) / 50.0f - 1.0f;
  for (int i = 0; i < SG_BIG_K * SG_N; i++) b[i] = (float)((i * 53) % 97) / 48.0f - 1.0f;
  int ks[2] = {SG_K, SG_BIG_K}; /* 17 MFLOP (16 grains), 69 MFLOP (66 grains) */
  for (int s = 0; s < 2; s++) sgemm_reference(a, b, ks[s], want[s]);
  for (int threads = 1; threads <= 3; threads++) {
    nnc_pool *pool = nnc_pool_new(threads), *prev = nnc_pool_enter(pool);
    for (int call = 0; call < 40; call++) {
      bool in_call = call < 36;
      uint64_t t0 = in_call ? nnc_pool_call_begin(pool, 0) : 0;
      for (int s = 0; s < 2; s++) {
        nnc_rt_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, SG_M, SG_N, ks[s], 1.0f, a, ks[s], b, SG_N, 0.0f, c, SG_N);
        if (threads == 1 && call == 0) {
          memcpy(first[s], c, sizeof c);
          for (int i = 0; i < SG_M * SG_N; i++) assert_true(fabsf(c[i] - want[s][i]) <= 1e-5f + 1e-4f * fabsf(want[s][i]));
        }
        assert_memory_equal(c, first[s], sizeof c);
      }
      if (in_call) nnc_pool_call_end(pool, 0, t0);
    }
    nnc_pool_enter(prev);
    nnc_pool_free(pool);
  }
}

/* Separate contexts on separate threads do not interfere. */
typedef struct Worker {
  nnc_context *ctx;
  int64_t n;
  int failures;
} Worker;

static void *work(void *p) {
  Worker *w = p;
  float x[512], y[512];
  for (int i = 0; i < 2 * w->n; i++) x[i] = (float)i;
  for (int round = 0; round < 2000; round++) {
    nnc_tensor in = f32(x, 2, w->n, 2), out = f32(y, 2, w->n, 2);
    if (nnc_call(w->ctx, E_SCALE, &in, 1, &out, 1) != NNC_OK) w->failures++;
    for (int i = 0; i < 2 * w->n; i++)
      if (y[i] != (i % 2 ? 3 * x[i] - 1 : 2 * x[i] + 0.5f)) w->failures++;
  }
  return NULL;
}

static void test_api_threads(void **state) {
  Fixture *f = *state;
  Worker w[4];
  pthread_t t[4];
  char *msg;
  for (int i = 0; i < 4; i++) {
    w[i] = (Worker){NULL, 10 + 50 * i, 0};
    assert_int_equal(nnc_context_open(f->model, NULL, &w[i].ctx, &msg), NNC_OK);
    assert_int_equal(pthread_create(&t[i], NULL, work, &w[i]), 0);
  }
  for (int i = 0; i < 4; i++) {
    pthread_join(t[i], NULL);
    assert_int_equal(w[i].failures, 0);
    nnc_context_free(w[i].ctx);
  }
}

int main(void) {
  const struct CMUnitTest ctx_tests[] = {
      cmocka_unit_test(test_open_without_weights),
      cmocka_unit_test(test_embedded_weights),
      cmocka_unit_test(test_weights_from_file),
      cmocka_unit_test(test_missing_tensor),
      cmocka_unit_test(test_missing_with_prefix),
      cmocka_unit_test(test_extra_tensor),
      cmocka_unit_test(test_wrong_shape),
      cmocka_unit_test(test_wrong_dtype),
      cmocka_unit_test(test_unreadable_file),
      cmocka_unit_test(test_bad_abi_version),
      cmocka_unit_test(test_workspace_size),
      cmocka_unit_test(test_workspace_overlay),
      cmocka_unit_test(test_pool_split_loops),
      cmocka_unit_test(test_pool_sgemm_grid),
      cmocka_unit_test(test_workspace_growth),
      cmocka_unit_test(test_ctx_call_errors),
      cmocka_unit_test_setup_teardown(test_api_find_entry, setup_api, teardown_api),
      cmocka_unit_test_setup_teardown(test_api_call_allocates, setup_api, teardown_api),
      cmocka_unit_test_setup_teardown(test_api_call_given_output, setup_api, teardown_api),
      cmocka_unit_test_setup_teardown(test_api_multi_sym_output, setup_api, teardown_api),
      cmocka_unit_test_setup_teardown(test_api_multiple_of_k, setup_api, teardown_api),
      cmocka_unit_test_setup_teardown(test_api_infer_from_product, setup_api, teardown_api),
      cmocka_unit_test_setup_teardown(test_api_cannot_infer, setup_api, teardown_api),
      cmocka_unit_test_setup_teardown(test_api_sym_conflict, setup_api, teardown_api),
      cmocka_unit_test_setup_teardown(test_api_input_errors, setup_api, teardown_api),
      cmocka_unit_test_setup_teardown(test_api_i64_scalar, setup_api, teardown_api),
      cmocka_unit_test(test_api_context_weights),
      cmocka_unit_test(test_api_load_errors),
      cmocka_unit_test_setup_teardown(test_api_threads, setup_api, teardown_api),
  };
  return cmocka_run_group_tests_name("runtime", ctx_tests, setup_dir, remove_dir);
}
