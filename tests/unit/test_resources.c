/* test_resources.c — resource hygiene of the runtime and the JIT:
 *   - compiling (JIT), running and freeing the same model 1000 times in one process does not
 *     grow the resident set (ORC resources released with the model);
 *   - loading, running and freeing an AOT library 200 times does not either (dlclose);
 *   - threads calling one model (AOT .so or JIT) on separate contexts get results
 *     bit-identical to a single-threaded run;
 *   - threads compiling models at the same time (the front end is reentrant, LLVM's
 *     initialization happens once) get the same results as one thread.
 * Under AddressSanitizer the loops are shorter and the RSS bound is not checked (the
 * allocator keeps freed memory in quarantine); LeakSanitizer checks for leaks instead. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <pthread.h>

#include "twoways.h"

#ifndef NNC_SOURCE_DIR
#define NNC_SOURCE_DIR "."
#endif

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#ifndef UNDER_ASAN
#define UNDER_ASAN 0
#endif

#define RSS_GROWTH_LIMIT_MB 16.0

static const char *small_model =
    "l = Linear(8, 16)\n"
    "export f(x: f32[N, 8]) -> (y: f32[N, 16], s: f32[N]) {\n"
    "  y = relu(l(x))\n"
    "  s = logsumexp(y, 1)\n"
    "}\n";

static double rss_mb(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  long pages = 0, resident = 0;
  if (f) {
    if (fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
    fclose(f);
  }
  return (double)resident * (double)sysconf(_SC_PAGESIZE) / (1 << 20);
}

/* The small model's source and weights files in the build directory. */
static void write_small_model(char *nn, char *w, size_t len) {
  snprintf(nn, len, "%s/res_small.nn", NNC_BINARY_DIR);
  snprintf(w, len, "%s/res_small.safetensors", NNC_BINARY_DIR);
  FILE *f = fopen(nn, "w");
  assert_non_null(f);
  fputs(small_model, f);
  fclose(f);
  /* weights through the JIT's own parameter table */
  nnc_model *m = NULL;
  char *msg = NULL;
  if (nnc_model_compile(nn, NULL, &m, &msg)) fail_msg("%s", msg);
  const nnc_model_desc *d = nnc_model_desc_of(m);
  f = fopen(w, "wb");
  assert_non_null(f);
  /* safetensors by hand: the two parameters in order */
  char hdr[512];
  int64_t n0 = d->params[0].nbytes, n1 = d->params[1].nbytes;
  int h = snprintf(hdr, sizeof hdr,
                   "{\"%s\":{\"dtype\":\"F32\",\"shape\":[16,8],\"data_offsets\":[0,%lld]},"
                   "\"%s\":{\"dtype\":\"F32\",\"shape\":[16],\"data_offsets\":[%lld,%lld]}}",
                   d->params[0].name, (long long)n0, d->params[1].name, (long long)n0, (long long)(n0 + n1));
  uint64_t hl = (uint64_t)h;
  fwrite(&hl, 8, 1, f);
  fwrite(hdr, 1, (size_t)h, f);
  for (int64_t i = 0; i < (n0 + n1) / 4; i++) {
    float v = sinf((float)i) * 0.3f;
    fwrite(&v, 4, 1, f);
  }
  fclose(f);
  nnc_model_free(m);
}

static void run_small(nnc_model *m, const char *weights, float *y0) {
  nnc_context *c = NULL;
  char *msg = NULL;
  if (nnc_context_open(m, weights, &c, &msg)) fail_msg("%s", msg);
  float x[3 * 8];
  for (int i = 0; i < 24; i++) x[i] = (float)i / 7 - 1;
  nnc_tensor in = {x, NNC_F32, 2, {3, 8}}, out[2] = {{0}};
  if (nnc_call(c, 0, &in, 1, out, 2)) fail_msg("%s", nnc_context_error(c));
  if (y0) memcpy(y0, out[0].data, 3 * 16 * sizeof *y0);
  nnc_free(out[0].data);
  nnc_free(out[1].data);
  nnc_context_free(c);
}

static void test_jit_compile_free_1000(void **state) {
  char nn[512], w[512];
  write_small_model(nn, w, sizeof nn);
  int iters = UNDER_ASAN ? 40 : 1000, warm = iters / 10;
  double base = 0;
  for (int i = 0; i < iters; i++) {
    nnc_model *m = NULL;
    char *msg = NULL;
    if (nnc_model_compile(nn, w, &m, &msg)) fail_msg("%s", msg);
    run_small(m, NULL, NULL);
    nnc_model_free(m);
    if (i == warm) base = rss_mb();
  }
  double growth = rss_mb() - base;
  print_message("  %d JIT compilations: RSS %.1f MB after %d, grew %.1f MB since\n", iters, base, warm, growth);
  if (!UNDER_ASAN) assert_true(growth < RSS_GROWTH_LIMIT_MB);
}

static void test_aot_load_free_200(void **state) {
  char nn[512], w[512], so[512], *msg = NULL;
  write_small_model(nn, w, sizeof nn);
  snprintf(so, sizeof so, "%s/res_small.so", NNC_BINARY_DIR);
  NncCompileOptions opt = {.weights_path = w};
  if (nnc_compile_so(nn, so, &opt, &msg)) fail_msg("%s", msg);
  int iters = UNDER_ASAN ? 20 : 200, warm = iters / 10;
  double base = 0;
  for (int i = 0; i < iters; i++) {
    nnc_model *m = NULL;
    if (nnc_model_load(so, &m, &msg)) fail_msg("%s", msg);
    run_small(m, NULL, NULL);
    nnc_model_free(m);
    if (i == warm) base = rss_mb();
  }
  double growth = rss_mb() - base;
  print_message("  %d loads of the .so: RSS %.1f MB after %d, grew %.1f MB since\n", iters, base, warm, growth);
  if (!UNDER_ASAN) assert_true(growth < RSS_GROWTH_LIMIT_MB);
}

/* ---- threads ---- */

#define ROWS 300

typedef struct Worker {
  nnc_model *m;
  int entry, iters;
  const float *x;
  int64_t width;
  const nnc_tensor *want; /* single-threaded outputs */
  int n_out;
  int mismatches;
  char err[256];
} Worker;

static void *worker(void *arg) {
  Worker *w = arg;
  nnc_context *c = NULL;
  char *msg = NULL;
  if (nnc_context_open(w->m, NULL, &c, &msg)) {
    snprintf(w->err, sizeof w->err, "%s", msg);
    nnc_free(msg);
    return NULL;
  }
  nnc_tensor in = {(void *)w->x, NNC_F32, 2, {ROWS, w->width}};
  for (int it = 0; it < w->iters; it++) {
    nnc_tensor out[8] = {{0}};
    if (nnc_call(c, w->entry, &in, 1, out, w->n_out)) {
      snprintf(w->err, sizeof w->err, "%s", nnc_context_error(c));
      break;
    }
    for (int o = 0; o < w->n_out; o++) {
      w->mismatches += !tw_bits_equal(&out[o], &w->want[o]);
      nnc_free(out[o].data);
    }
  }
  nnc_context_free(c);
  return NULL;
}

/* Threads on separate contexts of one model `m`, calling `entry` on the same input. */
static void threads_agree(nnc_model *m, const char *entry, int nthreads) {
  const nnc_model_desc *d = nnc_model_desc_of(m);
  int ei = nnc_model_find_entry(m, entry);
  assert_true(ei >= 0);
  const nnc_entry_desc *e = &d->entries[ei];
  int64_t width = e->args[0].dims[e->args[0].rank - 1].k;
  float *x = malloc(ROWS * width * sizeof *x);
  for (int64_t i = 0; i < ROWS * width; i++) x[i] = sinf((float)i * 0.013f) * 2;
  /* the single-threaded reference */
  nnc_context *c = NULL;
  char *msg = NULL;
  if (nnc_context_open(m, NULL, &c, &msg)) fail_msg("%s", msg);
  nnc_tensor in = {x, NNC_F32, 2, {ROWS, width}}, want[8] = {{0}};
  if (nnc_call(c, ei, &in, 1, want, e->n_out)) fail_msg("%s", nnc_context_error(c));
  nnc_context_free(c);
  Worker w[8];
  pthread_t th[8];
  for (int i = 0; i < nthreads; i++) {
    w[i] = (Worker){m, ei, UNDER_ASAN ? 10 : 100, x, width, want, e->n_out, 0, ""};
    assert_int_equal(pthread_create(&th[i], NULL, worker, &w[i]), 0);
  }
  int bad = 0;
  for (int i = 0; i < nthreads; i++) {
    pthread_join(th[i], NULL);
    if (w[i].err[0]) print_message("  thread %d: %s\n", i, w[i].err);
    bad += w[i].mismatches + (w[i].err[0] != 0);
  }
  tw_free_outputs(want, e->n_out);
  free(x);
  assert_int_equal(bad, 0);
}

static void realnvp_paths(char *nn, char *w, size_t len) {
  snprintf(nn, len, "%s/examples/realnvp.nn", NNC_SOURCE_DIR);
  snprintf(w, len, "%s/tests/golden/realnvp/weights.safetensors", NNC_SOURCE_DIR);
}

static void test_threads_one_so(void **state) {
  char nn[512], w[512], so[512], *msg = NULL;
  realnvp_paths(nn, w, sizeof nn);
  snprintf(so, sizeof so, "%s/res_realnvp.so", NNC_BINARY_DIR);
  NncCompileOptions opt = {.weights_path = w};
  if (nnc_compile_so(nn, so, &opt, &msg)) fail_msg("%s", msg);
  nnc_model *m = NULL;
  if (nnc_model_load(so, &m, &msg)) fail_msg("%s", msg);
  threads_agree(m, "forward", 2);
  threads_agree(m, "inverse", 4);
  nnc_model_free(m);
}

static void test_threads_one_jit(void **state) {
  char nn[512], w[512], *msg = NULL;
  realnvp_paths(nn, w, sizeof nn);
  nnc_model *m = NULL;
  if (nnc_model_compile(nn, w, &m, &msg)) fail_msg("%s", msg);
  threads_agree(m, "forward", 2);
  nnc_model_free(m);
}

/* ---- concurrent compilation ---- */

typedef struct Compiler {
  const char *nn, *w;
  int iters;
  float y[3 * 16];  /* the small model's result, from the last iteration */
  char err[256];
} Compiler;

static void *compiler_thread(void *arg) {
  Compiler *c = arg;
  for (int i = 0; i < c->iters && !c->err[0]; i++) {
    nnc_model *m = NULL;
    nnc_context *ctx = NULL;
    char *msg = NULL;
    if (nnc_model_compile(c->nn, c->w, &m, &msg) || nnc_context_open(m, NULL, &ctx, &msg)) {
      snprintf(c->err, sizeof c->err, "%s", msg ? msg : "?");
      nnc_free(msg);
    } else {
      float x[3 * 8];
      for (int k = 0; k < 24; k++) x[k] = (float)k / 7 - 1;
      nnc_tensor in = {x, NNC_F32, 2, {3, 8}}, out[2] = {{0}};
      if (nnc_call(ctx, 0, &in, 1, out, 2)) snprintf(c->err, sizeof c->err, "%s", nnc_context_error(ctx));
      else memcpy(c->y, out[0].data, sizeof c->y);
      nnc_free(out[0].data);
      nnc_free(out[1].data);
    }
    nnc_context_free(ctx);
    nnc_model_free(m);
  }
  return NULL;
}

static void test_threads_compile(void **state) {
  char nn[512], w[512];
  write_small_model(nn, w, sizeof nn);
  nnc_model *m = NULL;
  char *msg = NULL;
  if (nnc_model_compile(nn, w, &m, &msg)) fail_msg("%s", msg);
  float want[3 * 16];
  run_small(m, NULL, want);
  nnc_model_free(m);
  Compiler c[4];
  pthread_t th[4];
  for (int i = 0; i < 4; i++) {
    c[i] = (Compiler){nn, w, UNDER_ASAN ? 3 : 20, {0}, ""};
    assert_int_equal(pthread_create(&th[i], NULL, compiler_thread, &c[i]), 0);
  }
  int bad = 0;
  for (int i = 0; i < 4; i++) {
    pthread_join(th[i], NULL);
    if (c[i].err[0]) print_message("  thread %d: %s\n", i, c[i].err);
    bad += c[i].err[0] != 0 || memcmp(c[i].y, want, sizeof want) != 0;
  }
  assert_int_equal(bad, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_jit_compile_free_1000),
      cmocka_unit_test(test_aot_load_free_200),
      cmocka_unit_test(test_threads_one_so),
      cmocka_unit_test(test_threads_one_jit),
      cmocka_unit_test(test_threads_compile),
  };
  return cmocka_run_group_tests_name("resources", tests, NULL, NULL);
}
