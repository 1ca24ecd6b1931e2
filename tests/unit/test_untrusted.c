/* test_untrusted.c — every run-time input is untrusted: symbolic dims whose sizes overflow
 * (N = 2^40, 2^62, INT64_MAX, products of dims), zero-size batches, negative dims, NULL
 * pointers, bad entry indices and thread counts, through the context ABI (nnc_ctx_*, ctx.c)
 * and the public API (nnc.h).  Each is a status and a message naming the argument, dim and
 * value (docs/c-api.md, "Untrusted inputs"); nothing is allocated or run for a call that
 * fails.  The model is a table written by hand whose bodies do nothing at sizes a test
 * cannot hold, so a check that let a huge call through shows up as NNC_OK.  A call whose
 * outputs are all empty is checked but not run (body_runs counts the runs). */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "nnc.h"

nnc_ctx *nnc_ctx_open(const nnc_model_desc *, const char *, char *, size_t);
void nnc_ctx_close(nnc_ctx *);
int nnc_ctx_call(nnc_ctx *, int, void *const *, const int64_t *);
const char *nnc_ctx_error(const nnc_ctx *);
int nnc_ctx_set_threads(nnc_ctx *, int);
int nnc_ctx_threads(const nnc_ctx *);

enum { N = 1u << 0, K = 1u << 1, M = 1u << 2 };
enum { E_SCALE, E_WIDE, E_OUTER, E_COUNT, E_ENTRIES };
#define SMALL (1 << 16) /* bodies touch their buffers only up to this size */

static int body_runs;

/* scale(x: f32[N, 2]) -> (y: f32[N, 2]), through 8N bytes of workspace */
static void body_scale(void *const *args, const int64_t *syms, const char *weights, char *ws) {
  body_runs++;
  if (syms[0] > SMALL) return;
  const float *x = args[0];
  float *y = args[1];
  for (int64_t i = 0; i < 2 * syms[0]; i++) ((float *)ws)[i] = x[i];
  for (int64_t i = 0; i < 2 * syms[0]; i++) y[i] = 2 * ((float *)ws)[i];
}

/* wide(a: f32[N, K], b: f32[K, M]) -> (y: f32[N]): y = row sums of a @ b, whose N*M values
 * take 4*N*M bytes of workspace */
static void body_wide(void *const *args, const int64_t *syms, const char *weights, char *ws) {
  body_runs++;
  if (syms[0] > SMALL || syms[2] > SMALL) return;
  float *y = args[2];
  for (int64_t i = 0; i < syms[0]; i++) y[i] = 0; /* K = 0 in the tests that run it */
}

/* outer(a: f32[N], b: f32[M]) -> (c: f32[N*M]) */
static void body_outer(void *const *args, const int64_t *syms, const char *weights, char *ws) {
  body_runs++;
}

/* count(x: i64[N]) -> (s: i64[]) */
static void body_count(void *const *args, const int64_t *syms, const char *weights, char *ws) {
  body_runs++;
  if (syms[0] <= SMALL) *(int64_t *)args[1] = syms[0];
}

static const nnc_dim d_n = {1, N}, d_m = {1, M}, d_nm = {1, N | M};
static const nnc_dim dims_n2[] = {{1, N}, {2, 0}}, dims_nk[] = {{1, N}, {1, K}},
                     dims_km[] = {{1, K}, {1, M}};
static const nnc_arg_desc args_scale[] = {{"x", NNC_F32, 2, dims_n2}, {"y", NNC_F32, 2, dims_n2}};
static const nnc_arg_desc args_wide[] = {
    {"a", NNC_F32, 2, dims_nk}, {"b", NNC_F32, 2, dims_km}, {"y", NNC_F32, 1, &d_n}};
static const nnc_arg_desc args_outer[] = {
    {"a", NNC_F32, 1, &d_n}, {"b", NNC_F32, 1, &d_m}, {"c", NNC_F32, 1, &d_nm}};
static const nnc_arg_desc args_count[] = {{"x", NNC_I64, 1, &d_n}, {"s", NNC_I64, 0, NULL}};
static const nnc_slot slots_scale[] = {{{8, N}}};
static const nnc_slot slots_wide[] = {{{4, N | M}}};
static const nnc_entry_desc entries[] = {
    [E_SCALE] = {"scale", 1, 1, args_scale, 1, slots_scale, body_scale},
    [E_WIDE] = {"wide", 2, 1, args_wide, 1, slots_wide, body_wide},
    [E_OUTER] = {"outer", 2, 1, args_outer, 0, NULL, body_outer},
    [E_COUNT] = {"count", 1, 1, args_count, 0, NULL, body_count},
};
static const char *const sym_names[] = {"N", "K", "M"};
static const nnc_model_desc model = {NNC_MODEL_ABI, "untrusted", 3, sym_names, E_ENTRIES, entries,
                                     0, NULL, 0, NULL, NULL};

#define P40 ((int64_t)1 << 40)
#define P62 ((int64_t)1 << 62)

static void expect_msg(const char *got, const char *want) {
  if (!strstr(got, want)) fail_msg("message '%s' does not contain '%s'", got, want);
}

/* ---- the context ABI: nnc_ctx_call takes the dims themselves ---- */

static nnc_ctx *open_ctx(void) {
  char err[256] = "";
  nnc_ctx *ctx = nnc_ctx_open(&model, NULL, err, sizeof err);
  if (!ctx) fail_msg("%s", err);
  return ctx;
}

/* Call entry e at dims n, k, m; returns the status (body_runs tells whether it ran). */
static int ctx_call(nnc_ctx *ctx, int e, int64_t n, int64_t k, int64_t m, void *const *args) {
  int64_t syms[3] = {n, k, m};
  return nnc_ctx_call(ctx, e, args, syms);
}

static void test_ctx_huge_dims(void **state) {
  (void)state;
  nnc_ctx *ctx = open_ctx();
  static float buf[64];
  void *args[3] = {buf, buf, buf};
  body_runs = 0;
  static const int64_t huge[] = {P62, INT64_MAX, P62 / 4}; /* 8N bytes: 2^65, ..., 2^63 */
  for (size_t i = 0; i < sizeof huge / sizeof *huge; i++) {
    assert_int_equal(ctx_call(ctx, E_SCALE, huge[i], 0, 0, args), NNC_ERR_USER);
    char want[128];
    snprintf(want, sizeof want, "entry 'scale': input 'x' would need more than 2^63 bytes (N = %lld)",
             (long long)huge[i]);
    assert_string_equal(nnc_ctx_error(ctx), want);
  }
  /* the workspace formula 4*N*M overflows though every argument is small (K = 0) */
  assert_int_equal(ctx_call(ctx, E_WIDE, P40, 0, P40, args), NNC_ERR_USER);
  assert_string_equal(nnc_ctx_error(ctx), "entry 'wide': the workspace would need more than "
                      "2^63 bytes (N = 1099511627776, M = 1099511627776)");
  /* an output's size: N*M elements overflow, then 4*N*M bytes */
  assert_int_equal(ctx_call(ctx, E_OUTER, (int64_t)1 << 32, 0, (int64_t)1 << 32, args), NNC_ERR_USER);
  expect_msg(nnc_ctx_error(ctx), "output 'c' would need more than 2^63 bytes (N = 4294967296, M = 4294967296)");
  assert_int_equal(ctx_call(ctx, E_OUTER, (int64_t)1 << 31, 0, (int64_t)1 << 31, args), NNC_ERR_USER);
  /* exact at the edge: i64[N] is 8N bytes, so N = 2^60 is one byte too many, 2^60 - 1 fits */
  assert_int_equal(ctx_call(ctx, E_COUNT, (int64_t)1 << 60, 0, 0, args), NNC_ERR_USER);
  expect_msg(nnc_ctx_error(ctx), "input 'x' would need more than 2^63 bytes (N = 1152921504606846976)");
  assert_int_equal(body_runs, 0);
  assert_int_equal(ctx_call(ctx, E_COUNT, ((int64_t)1 << 60) - 1, 0, 0, args), NNC_OK);
  assert_int_equal(body_runs, 1);
  nnc_ctx_close(ctx);
}

static void test_ctx_zero_and_null(void **state) {
  (void)state;
  nnc_ctx *ctx = open_ctx();
  float x[6] = {1, 2, 3, 4, 5, 6}, y[6];
  void *args[] = {x, y}, *none[3] = {NULL, NULL, NULL};
  body_runs = 0;
  assert_int_equal(ctx_call(ctx, E_SCALE, 0, 0, 0, none), NNC_OK); /* empty: NULL is fine */
  assert_string_equal(nnc_ctx_error(ctx), "");
  assert_int_equal(body_runs, 0); /* every output empty: nothing to compute, not run */
  void *wide[] = {NULL, NULL, y}; /* a: [2^40, 0] and b: [0, 0] empty; y is the caller's word */
  assert_int_equal(ctx_call(ctx, E_WIDE, P40, 0, 0, wide), NNC_OK);
  assert_int_equal(body_runs, 1);
  /* outer at N = 2^40, M = 0: c is empty, so the 2^40 rows are not looped over */
  void *outer[] = {x, NULL, NULL};
  assert_int_equal(ctx_call(ctx, E_OUTER, P40, 0, 0, outer), NNC_OK);
  assert_int_equal(body_runs, 1);
  assert_int_equal(ctx_call(ctx, E_SCALE, 3, 0, 0, none), NNC_ERR_USAGE);
  assert_string_equal(nnc_ctx_error(ctx), "entry 'scale': argument 'x' is NULL");
  void *no_y[] = {x, NULL};
  assert_int_equal(ctx_call(ctx, E_SCALE, 3, 0, 0, no_y), NNC_ERR_USAGE);
  assert_string_equal(nnc_ctx_error(ctx), "entry 'scale': argument 'y' is NULL");
  assert_int_equal(ctx_call(ctx, E_SCALE, 3, 0, 0, NULL), NNC_ERR_USAGE);
  assert_string_equal(nnc_ctx_error(ctx), "entry 'scale': NULL argument array");
  assert_int_equal(nnc_ctx_call(ctx, E_SCALE, args, NULL), NNC_ERR_USAGE);
  assert_string_equal(nnc_ctx_error(ctx), "entry 'scale': syms is NULL but the model has 3 "
                      "symbolic dims (N, ...)");
  assert_int_equal(ctx_call(ctx, E_SCALE, 3, -5, 0, args), NNC_ERR_USAGE);
  assert_string_equal(nnc_ctx_error(ctx), "symbolic dim K is -5 (must be >= 0)");
  assert_int_equal(ctx_call(ctx, E_SCALE, INT64_MIN, 0, 0, args), NNC_ERR_USAGE);
  assert_string_equal(nnc_ctx_error(ctx), "symbolic dim N is -9223372036854775808 (must be >= 0)");
  assert_int_equal(ctx_call(ctx, E_ENTRIES, 3, 0, 0, args), NNC_ERR_USAGE);
  assert_string_equal(nnc_ctx_error(ctx), "entry index 4 out of range (the model has 4 entries)");
  assert_int_equal(ctx_call(ctx, INT_MIN, 3, 0, 0, args), NNC_ERR_USAGE);
  assert_string_equal(nnc_ctx_error(ctx), "entry index -2147483648 out of range (the model has 4 entries)");
  assert_int_equal(body_runs, 1);
  /* after all that, the context still works */
  assert_int_equal(ctx_call(ctx, E_SCALE, 3, 0, 0, args), NNC_OK);
  assert_float_equal(y[5], 12, 0);
  assert_string_equal(nnc_ctx_error(ctx), "");
  assert_int_equal(nnc_ctx_call(NULL, E_SCALE, args, NULL), NNC_ERR_USAGE);
  assert_string_equal(nnc_ctx_error(NULL), "no context (NULL)");
  assert_null(nnc_ctx_open(NULL, NULL, NULL, 0)); /* no room for a message: none written */
  nnc_ctx_close(ctx);
  nnc_ctx_close(NULL);
}

static void test_ctx_threads(void **state) {
  (void)state;
  nnc_ctx *ctx = open_ctx();
  assert_int_equal(nnc_ctx_set_threads(ctx, 3), NNC_OK);
  static const int bad[] = {-1, 1025, INT_MAX, INT_MIN};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    assert_int_equal(nnc_ctx_set_threads(ctx, bad[i]), NNC_ERR_USAGE);
    char want[128];
    snprintf(want, sizeof want, "thread count %d out of range (0 to 1024; 0: the default)", bad[i]);
    assert_string_equal(nnc_ctx_error(ctx), want);
    assert_int_equal(nnc_ctx_threads(ctx), 3); /* unchanged */
  }
  assert_int_equal(nnc_ctx_set_threads(ctx, 0), NNC_OK);
  assert_true(nnc_ctx_threads(ctx) >= 1);
  assert_int_equal(nnc_ctx_set_threads(ctx, 1024), NNC_OK); /* workers start on a call only */
  assert_int_equal(nnc_ctx_threads(ctx), 1024);
  assert_int_equal(nnc_ctx_set_threads(NULL, 2), NNC_ERR_USAGE);
  assert_int_equal(nnc_ctx_threads(NULL), 0);
  nnc_ctx_close(ctx);
}

/* ---- nnc.h: dims come from the tensors' shapes ---- */

typedef struct Fixture {
  nnc_model *model;
  nnc_context *ctx;
} Fixture;

static int setup_api(void **state) {
  Fixture *f = calloc(1, sizeof *f);
  char *msg = NULL;
  if (!f || nnc_model_from_desc(&model, &f->model, &msg) ||
      nnc_context_open(f->model, NULL, &f->ctx, &msg))
    return -1;
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

static nnc_tensor f32(void *data, int rank, int64_t d0, int64_t d1) {
  return (nnc_tensor){data, NNC_F32, rank, {d0, d1}};
}

/* A failed call leaves the outputs as they were (nothing allocated) and runs nothing. */
static void expect_fail(Fixture *f, int e, const nnc_tensor *in, int n_in, int status,
                        const char *want) {
  nnc_tensor out = {0};
  body_runs = 0;
  assert_int_equal(nnc_call(f->ctx, e, in, n_in, &out, 1), status);
  expect_msg(nnc_context_error(f->ctx), want);
  assert_null(out.data);
  assert_int_equal(body_runs, 0);
}

static void test_api_huge_dims(void **state) {
  Fixture *f = *state;
  static float buf[4];
  /* zero-size inputs bind huge dims without holding any data */
  nnc_tensor wide[] = {f32(buf, 2, P40, 0), f32(buf, 2, 0, P40)};
  expect_fail(f, E_WIDE, wide, 2, NNC_ERR_USER, "entry 'wide': the workspace would need more than "
              "2^63 bytes (N = 1099511627776, M = 1099511627776)");
  nnc_tensor outer[] = {f32(buf, 1, (int64_t)1 << 32, 0), f32(buf, 1, (int64_t)1 << 32, 0)};
  expect_fail(f, E_OUTER, outer, 2, NNC_ERR_USER, "output 'c' of entry 'outer' (f32[N*M]) would "
              "need more than 2^63 bytes (N = 4294967296, M = 4294967296)");
  nnc_tensor x = f32(buf, 2, P62, 2);
  expect_fail(f, E_SCALE, &x, 1, NNC_ERR_USER, "input 'x' of entry 'scale': shape "
              "[4611686018427387904, 2] would need more than 2^63 bytes");
  x = f32(buf, 2, INT64_MAX, 0);
  expect_fail(f, E_SCALE, &x, 1, NNC_ERR_USER, "input 'x' of entry 'scale': shape "
              "[9223372036854775807, 0] would need more than 2^63 bytes (its zero dims aside)");
  nnc_tensor ids = {buf, NNC_I64, 1, {(int64_t)1 << 60}};
  expect_fail(f, E_COUNT, &ids, 1, NNC_ERR_USER, "input 'x' of entry 'count': shape "
              "[1152921504606846976] would need more than 2^63 bytes");
}

static void test_api_negative_and_null(void **state) {
  Fixture *f = *state;
  float x[6] = {1, 2, 3, 4, 5, 6};
  nnc_tensor in = f32(x, 2, -3, 2);
  expect_fail(f, E_SCALE, &in, 1, NNC_ERR_USER, "input 'x' of entry 'scale': dim 0 is -3 (must be >= 0)");
  in = f32(x, 2, 3, INT64_MIN);
  expect_fail(f, E_SCALE, &in, 1, NNC_ERR_USER, "input 'x' of entry 'scale': dim 1 is "
              "-9223372036854775808 (must be >= 0)");
  in = f32(NULL, 2, 3, 2);
  expect_fail(f, E_SCALE, &in, 1, NNC_ERR_USAGE, "input 'x' of entry 'scale' has no data (NULL)");
  in = f32(x, 2, 3, 2);
  expect_fail(f, E_ENTRIES, &in, 1, NNC_ERR_USAGE, "entry index 4 out of range (the model has 4 entries)");
  expect_fail(f, -1, &in, 1, NNC_ERR_USAGE, "entry index -1 out of range");
  expect_fail(f, E_SCALE, NULL, 1, NNC_ERR_USAGE, "entry 'scale': NULL tensor array");
  assert_int_equal(nnc_call(f->ctx, E_SCALE, &in, 1, NULL, 1), NNC_ERR_USAGE);
  expect_msg(nnc_context_error(f->ctx), "entry 'scale': NULL tensor array");
  expect_fail(f, E_SCALE, &in, -1, NNC_ERR_USAGE, "entry 'scale' takes 1 inputs and 1 outputs, got -1 and 1");
  in.rank = -1;
  expect_fail(f, E_SCALE, &in, 1, NNC_ERR_USER, "must have rank 2 (f32[N, 2]), got rank -1");
  in.rank = 2;
  in.dtype = 42;
  expect_fail(f, E_SCALE, &in, 1, NNC_ERR_USER, "input 'x' of entry 'scale' must be f32, got an unknown dtype");
  assert_int_equal(nnc_call(NULL, E_SCALE, &in, 1, NULL, 1), NNC_ERR_USAGE);
  assert_string_equal(nnc_context_error(NULL), "no context (NULL)");
}

static void test_api_zero_batch(void **state) {
  Fixture *f = *state;
  nnc_tensor in = f32(NULL, 2, 0, 2), out = {0};
  assert_int_equal(nnc_call(f->ctx, E_SCALE, &in, 1, &out, 1), NNC_OK);
  assert_string_equal(nnc_context_error(f->ctx), "");
  assert_non_null(out.data); /* allocated, empty: freeable like any output */
  assert_int_equal(out.rank, 2);
  assert_int_equal(out.shape[0], 0);
  assert_int_equal(nnc_tensor_numel(&out), 0);
  nnc_free(out.data);
  float x[2] = {1, 2}, y[2];
  in = f32(x, 2, 1, 2), out = f32(y, 2, 1, 2); /* still works after the empty call */
  assert_int_equal(nnc_call(f->ctx, E_SCALE, &in, 1, &out, 1), NNC_OK);
  assert_float_equal(y[1], 4, 0);
}

static void test_api_threads_and_handles(void **state) {
  Fixture *f = *state;
  assert_int_equal(nnc_context_set_threads(f->ctx, 2), NNC_OK);
  assert_int_equal(nnc_context_set_threads(f->ctx, -1), NNC_ERR_USAGE);
  assert_string_equal(nnc_context_error(f->ctx), "thread count -1 out of range (0 to 1024; 0: the default)");
  assert_int_equal(nnc_context_set_threads(f->ctx, INT_MAX), NNC_ERR_USAGE);
  assert_string_equal(nnc_context_error(f->ctx), "thread count 2147483647 out of range (0 to 1024; 0: the default)");
  assert_int_equal(nnc_context_threads(f->ctx), 2);
  assert_int_equal(nnc_context_set_threads(NULL, 1), NNC_ERR_USAGE);
  assert_int_equal(nnc_context_threads(NULL), 0);
  nnc_context *c = (nnc_context *)1;
  char *msg = NULL;
  assert_int_equal(nnc_context_open(NULL, NULL, &c, &msg), NNC_ERR_USAGE);
  assert_null(c);
  assert_string_equal(msg, "error: no model (NULL)");
  nnc_free(msg);
  assert_int_equal(nnc_context_open(f->model, NULL, NULL, &msg), NNC_ERR_USAGE);
  nnc_model *m = (nnc_model *)1;
  assert_int_equal(nnc_model_load(NULL, &m, &msg), NNC_ERR_USAGE);
  assert_int_equal(nnc_model_compile(NULL, NULL, &m, &msg), NNC_ERR_USAGE);
  assert_int_equal(nnc_model_compile_defines("x.nn", NULL, NULL, 1, &m, &msg), NNC_ERR_USAGE);
  assert_int_equal(nnc_model_from_desc(NULL, &m, &msg), NNC_ERR_USER);
  assert_string_equal(msg, "model: error: the model table is NULL");
  nnc_free(msg);
  assert_int_equal(nnc_model_find_entry(NULL, "scale"), -1);
  assert_int_equal(nnc_model_find_entry(f->model, NULL), -1);
  assert_null(nnc_model_desc_of(NULL));
  assert_int_equal(nnc_tensor_numel(NULL), -1);
  nnc_context_free(NULL);
  nnc_model_free(NULL);
  nnc_free(NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_ctx_huge_dims),
      cmocka_unit_test(test_ctx_zero_and_null),
      cmocka_unit_test(test_ctx_threads),
      cmocka_unit_test_setup_teardown(test_api_huge_dims, setup_api, teardown_api),
      cmocka_unit_test_setup_teardown(test_api_negative_and_null, setup_api, teardown_api),
      cmocka_unit_test_setup_teardown(test_api_zero_batch, setup_api, teardown_api),
      cmocka_unit_test_setup_teardown(test_api_threads_and_handles, setup_api, teardown_api),
  };
  return cmocka_run_group_tests_name("untrusted", tests, NULL, NULL);
}
