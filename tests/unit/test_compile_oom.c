/* test_compile_oom.c — running out of memory while compiling is a diagnostic, not an abort
 * (docs/language.md, Limits): with the compiler's arena capped ($NNC_ARENA_LIMIT, a test
 * hook) at sizes that stop the parse, the semantic analysis, the passes, the lowering and
 * the init entry's compilation, every entry point (JIT, AOT, check, dump, the reference
 * interpreter) returns NNC_COMPILE_NOMEM / NNC_ERR_NOMEM with "out of memory while compiling
 * FILE: ...", frees all it allocated (LeakSanitizer checks it in the ASan build), and the
 * next compilation works.  Compilations on several threads at once each recover on their
 * own thread. */
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
#include "support.h"

#define REALNVP NNC_SOURCE_DIR "/examples/realnvp.nn"
#define INFOGAN NNC_SOURCE_DIR "/examples/infogan.nn"
#define INFOGAN_W NNC_SOURCE_DIR "/tests/golden/infogan/weights.safetensors"

static void set_limit(long long bytes) {
  char v[32];
  snprintf(v, sizeof v, "%lld", bytes);
  if (bytes) setenv("NNC_ARENA_LIMIT", v, 1);
  else unsetenv("NNC_ARENA_LIMIT");
}

/* The message of a compilation that ran out of memory. */
static void expect_oom(const char *msg, const char *path, long long limit) {
  char want[512];
  snprintf(want, sizeof want, "nnc: error: out of memory while compiling %s: the compiler's arena "
           "reached its limit of %lld bytes (NNC_ARENA_LIMIT)\n", path, limit);
  if (!msg || strcmp(msg, want)) fail_msg("got '%s', expected '%s'", msg ? msg : "(none)", want);
}

/* The smallest limit in (lo, hi] under which ok() succeeds (hi must): a multiple of 16, as
 * the arena hands out multiples of 16 bytes. */
static long long threshold(int (*ok)(void), long long lo, long long hi) {
  while (hi - lo > 16) {
    long long mid = (lo + (hi - lo) / 2) / 16 * 16;
    set_limit(mid);
    if (ok()) hi = mid;
    else lo = mid;
  }
  set_limit(0);
  return hi;
}

static int check_ok(void) {
  char *msg = NULL;
  int rc = nnc_check(REALNVP, NULL, &msg);
  free(msg);
  return rc == 0;
}

static int fused_ok(void) {
  FILE *out = fopen("/dev/null", "w");
  char *msg = NULL;
  int rc = nnc_dump(REALNVP, "fused", out, &msg);
  fclose(out);
  free(msg);
  return rc == 0;
}

static int jit_ok(void) {
  nnc_model *m = NULL;
  char *msg = NULL;
  int rc = nnc_model_compile(REALNVP, NULL, &m, &msg);
  nnc_model_free(m);
  nnc_free(msg);
  return rc == NNC_OK;
}

/* Limits across every stage of a JIT compilation: the ones below its need fail cleanly. */
static void test_jit_every_stage(void **state) {
  (void)state;
  long long check = threshold(check_ok, 0, 1 << 21), fused = threshold(fused_ok, check, 1 << 21),
            jit = threshold(jit_ok, fused, 1 << 21);
  printf("realnvp needs %lld bytes of arena to check, %lld to fuse, %lld to JIT\n", check, fused, jit);
  assert_true(check < fused && fused < jit); /* parse + sema < passes < lowering */
  long long limits[] = {1, 16, 1000, check / 2, check - 1, (check + fused) / 2, fused - 1,
                        (fused + jit) / 2, jit - 16, jit - 1};
  for (size_t i = 0; i < sizeof limits / sizeof *limits; i++) {
    set_limit(limits[i]);
    nnc_model *m = (nnc_model *)1;
    char *msg = NULL;
    assert_int_equal(nnc_model_compile(REALNVP, NULL, &m, &msg), NNC_ERR_NOMEM);
    assert_null(m);
    expect_oom(msg, REALNVP, limits[i]);
    nnc_free(msg);
  }
  set_limit(jit);
  assert_true(jit_ok()); /* the next compilation, at its exact need, works */
  set_limit(0);
}

static int infogan_ok(void) {
  NncCompileOptions opt = {.weights_path = INFOGAN_W};
  NncJit *jit = NULL;
  const nnc_model_desc *desc = NULL;
  char *msg = NULL;
  int rc = nnc_compile_jit(INFOGAN, &opt, &jit, &desc, &msg);
  nnc_jit_free(jit);
  free(msg);
  return rc == 0;
}

/* With weights, the derived parameters are computed at compile time by a second lowering
 * and a JIT of the init entry: running out there frees that JIT too. */
static void test_derived_params(void **state) {
  (void)state;
  long long need = threshold(infogan_ok, 1 << 19, 1 << 22);
  printf("infogan with weights needs %lld bytes of arena\n", need);
  for (long long cut = 1; cut <= 1 << 16; cut *= 4) {
    set_limit(need - cut);
    NncCompileOptions opt = {.weights_path = INFOGAN_W};
    NncJit *jit = NULL;
    const nnc_model_desc *desc = NULL;
    char *msg = NULL;
    assert_int_equal(nnc_compile_jit(INFOGAN, &opt, &jit, &desc, &msg), NNC_COMPILE_NOMEM);
    assert_null(jit);
    assert_null(desc);
    expect_oom(msg, INFOGAN, need - cut);
    free(msg);
  }
  set_limit(0);
}

/* Every other entry point: AOT, check, each dump stage, the interpreter. */
static void test_other_entry_points(void **state) {
  (void)state;
  set_limit(5000);
  char *msg = NULL;
  const char *so = NNC_BINARY_DIR "/compile_oom.so";
  assert_int_equal(nnc_compile_so(REALNVP, so, NULL, &msg), NNC_COMPILE_NOMEM);
  expect_oom(msg, REALNVP, 5000);
  free(msg);
  assert_int_equal(nnc_check(REALNVP, NULL, &msg), NNC_COMPILE_NOMEM);
  expect_oom(msg, REALNVP, 5000);
  free(msg);
  FILE *out = fopen("/dev/null", "w");
  for (int i = 0; nnc_dump_stages[i]; i++) {
    assert_int_equal(nnc_dump(REALNVP, nnc_dump_stages[i], out, &msg), NNC_COMPILE_NOMEM);
    expect_oom(msg, REALNVP, 5000);
    free(msg);
  }
  const char *src = "export f(x: f32[N]) -> (y: f32[N]) { y = x * 2.0 }\n";
  set_limit(0);
  assert_int_equal(nnc_dump_source("mem.nn", src, strlen(src), "loops", out, &msg), 0);
  set_limit(100);
  assert_int_equal(nnc_dump_source("mem.nn", src, strlen(src), "loops", out, &msg), NNC_COMPILE_NOMEM);
  expect_oom(msg, "mem.nn", 100);
  free(msg);
  float x[3] = {1, 2, 3};
  nnc_tensor in = {x, NNC_F32, 1, {3}}, res = {0};
  assert_int_equal(nnc_interpret_source("mem.nn", src, strlen(src), NULL, "f", &in, 1, &res, 1, &msg),
                   NNC_COMPILE_NOMEM);
  expect_oom(msg, "mem.nn", 100);
  free(msg);
  fclose(out);
  set_limit(0);
}

/* Several compilations at once, all running out: each returns to its own thread's point. */
typedef struct Job {
  int rc;
  char *msg;
} Job;

static void *compile_job(void *p) {
  Job *j = p;
  nnc_model *m = NULL;
  j->rc = nnc_model_compile(REALNVP, NULL, &m, &j->msg);
  nnc_model_free(m);
  return NULL;
}

static void test_threads(void **state) {
  (void)state;
  set_limit(200000);
  Job jobs[3] = {{0}};
  run_threads(3, compile_job, jobs, sizeof *jobs);
  for (int i = 0; i < 3; i++) {
    assert_int_equal(jobs[i].rc, NNC_ERR_NOMEM);
    expect_oom(jobs[i].msg, REALNVP, 200000);
    nnc_free(jobs[i].msg);
  }
  set_limit(0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_jit_every_stage),
      cmocka_unit_test(test_derived_params),
      cmocka_unit_test(test_other_entry_points),
      cmocka_unit_test(test_threads),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
