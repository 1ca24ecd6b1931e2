/* test_compile_threads.c — compiling on several threads at once gives what a serial compile
 * gives.  Each model of MODELS is first compiled alone, both ways (JIT: nnc_model_compile;
 * AOT: nnc_compile_so into a temporary directory, then nnc_model_load), and every entry with
 * golden inputs (tests/golden/<m>/<entry>.in.<arg>.npy) is run; then the same 2 x MODELS
 * compiles run again on THREADS threads at once, each thread taking the next job, and every
 * output must be bit-identical to the serial one.  The weights are the golden ones, embedded
 * in the AOT libraries.  The serial compiles run with the compile cache off; the threaded
 * ones twice with one cache directory, empty at first (the threads compile and store the
 * same entries at once), then full (every compile a hit): cached code must compute the
 * same bits as uncached code.  scripts/test.sh also runs this test in a ThreadSanitizer
 * build (build-tsan, -DNNC_TSAN=ON). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "compile.h"
#include "nnc.h"
#include "npy.h"
#include "support.h"

#define THREADS 4
#define MAX_ARGS 32
#define ERR_LEN 4096

/* Small and medium examples with different ops: flows, recurrent cells, attention, convs. */
static const char *const MODELS[] = {"realnvp", "cfr", "fast_weights", "lm_temperature", "mann",
                                     "cactus"};
enum { N_MODELS = sizeof MODELS / sizeof MODELS[0], N_JOBS = 2 * N_MODELS };

/* The outputs of one entry on its golden inputs. */
typedef struct EntryOut {
  int n_out;
  nnc_tensor out[MAX_ARGS];
} EntryOut;

/* One compile: model MODELS[job / 2], JIT when job is even, AOT when odd. */
typedef struct Job {
  int n_entries;
  EntryOut *entries; /* [n_entries]; n_out 0 for an entry without golden inputs */
  char err[ERR_LEN]; /* what failed, empty if nothing */
} Job;

static const char *job_model(int job) { return MODELS[job / 2]; }
static int job_aot(int job) { return job % 2; }

/* ---- compiling and running one job ---- */

static int fail_job(Job *j, int job, const char *what, const char *msg) {
  snprintf(j->err, sizeof j->err, "%s/%s: %s: %s", job_model(job), job_aot(job) ? "aot" : "jit",
           what, msg ? msg : "(no message)");
  return 1;
}

static int fail_free(Job *j, int job, const char *what, char *msg) {
  fail_job(j, job, what, msg);
  nnc_free(msg);
  return 1;
}

/* Open model `job` into *model and *ctx; `pass` names the AOT library ("serial", "thread3"). */
static int open_job(Job *j, int job, const char *pass, nnc_model **model, nnc_context **ctx) {
  char nn[1024], weights[1024], so[1024], *msg = NULL;
  example_paths(job_model(job), nn, weights, sizeof nn);
  const char *context_weights = weights;
  if (job_aot(job)) {
    snprintf(so, sizeof so, "%s/%s_%s.so", tmp_dir, job_model(job), pass);
    NncCompileOptions opt = {.weights_path = weights};
    if (nnc_compile_so(nn, so, &opt, &msg)) return fail_free(j, job, "AOT compile", msg);
    nnc_free(msg);
    msg = NULL;
    if (nnc_model_load(so, model, &msg)) return fail_free(j, job, "load", msg);
    context_weights = NULL; /* embedded */
  } else if (nnc_model_compile(nn, NULL, model, &msg)) {
    return fail_free(j, job, "JIT compile", msg);
  }
  nnc_free(msg);
  msg = NULL;
  if (nnc_context_open(*model, context_weights, ctx, &msg))
    return fail_free(j, job, "context", msg);
  nnc_free(msg);
  return 0;
}

/* Run entry `ei` on its golden inputs into *eo; no golden inputs: n_out stays 0. */
static int run_entry(Job *j, int job, nnc_model *model, nnc_context *ctx, int ei, EntryOut *eo) {
  const nnc_entry_desc *e = &nnc_model_desc_of(model)->entries[ei];
  NpyArray arrays[MAX_ARGS] = {{0}};
  nnc_tensor in[MAX_ARGS] = {{0}};
  char path[1024], err[1024];
  int rc = 0;
  if (e->n_in > MAX_ARGS || e->n_out > MAX_ARGS)
    return fail_job(j, job, e->name, "too many arguments");
  for (int i = 0; i < e->n_in && rc == 0; i++) {
    snprintf(path, sizeof path, "%s/tests/golden/%s/%s.in.%s.npy", NNC_SOURCE_DIR,
             job_model(job), e->name, e->args[i].name);
    if (access(path, R_OK) != 0) goto done; /* no golden data for this entry */
    if (npy_read(path, &arrays[i], err, sizeof err)) rc = fail_job(j, job, e->name, err);
    in[i] = (nnc_tensor){arrays[i].data, arrays[i].dtype == NPY_I64 ? NNC_I64 : NNC_F32,
                         arrays[i].rank, {0}};
    memcpy(in[i].shape, arrays[i].shape, sizeof(int64_t) * (size_t)arrays[i].rank);
  }
  if (rc == 0 && nnc_call(ctx, ei, in, e->n_in, eo->out, e->n_out) != NNC_OK)
    rc = fail_job(j, job, e->name, nnc_context_error(ctx));
  if (rc == 0) eo->n_out = e->n_out;
done:
  for (int i = 0; i < e->n_in; i++) npy_free(&arrays[i]);
  return rc;
}

static int run_job(Job *j, int job, const char *pass) {
  nnc_model *model = NULL;
  nnc_context *ctx = NULL;
  int rc = open_job(j, job, pass, &model, &ctx);
  if (rc == 0) {
    j->n_entries = nnc_model_desc_of(model)->n_entries;
    j->entries = calloc((size_t)j->n_entries, sizeof *j->entries);
    for (int ei = 0; ei < j->n_entries && rc == 0; ei++)
      rc = run_entry(j, job, model, ctx, ei, &j->entries[ei]);
  }
  nnc_context_free(ctx);
  nnc_model_free(model);
  return rc;
}

static void free_job(Job *j) {
  for (int ei = 0; ei < j->n_entries; ei++)
    for (int o = 0; o < j->entries[ei].n_out; o++) nnc_free(j->entries[ei].out[o].data);
  free(j->entries);
  j->entries = NULL;
  j->n_entries = 0;
}

/* ---- comparing ---- */

static int same_tensor(const nnc_tensor *a, const nnc_tensor *b) {
  if (a->dtype != b->dtype || a->rank != b->rank) return 0;
  if (memcmp(a->shape, b->shape, sizeof(int64_t) * (size_t)a->rank) != 0) return 0;
  size_t bytes = (size_t)nnc_tensor_numel(a) * (size_t)nnc_dtype_size(a->dtype);
  return bytes == 0 || memcmp(a->data, b->data, bytes) == 0;
}

/* Outputs of `got` bit-identical to `want`'s; 0 if so, else the count of differing outputs. */
static int compare_job(const Job *got, const Job *want, int job) {
  int diffs = 0, checked = 0;
  if (got->n_entries != want->n_entries) {
    print_message("%s/%s: %d entries, serially %d\n", job_model(job), job_aot(job) ? "aot" : "jit",
                  got->n_entries, want->n_entries);
    return 1;
  }
  for (int ei = 0; ei < want->n_entries; ei++) {
    const EntryOut *g = &got->entries[ei], *w = &want->entries[ei];
    diffs += g->n_out != w->n_out;
    for (int o = 0; o < w->n_out && g->n_out == w->n_out; o++, checked++)
      if (!same_tensor(&g->out[o], &w->out[o])) {
        print_message("%s/%s: entry %d output %d differs from the serial compile's\n",
                      job_model(job), job_aot(job) ? "aot" : "jit", ei, o);
        diffs++;
      }
  }
  print_message("%s/%s: %d outputs, %d differ\n", job_model(job), job_aot(job) ? "aot" : "jit",
                checked, diffs);
  if (checked == 0) diffs++; /* no golden inputs found: nothing was compared */
  return diffs;
}

/* ---- the threads ---- */

static Job serial[N_JOBS], threaded[N_JOBS];
static atomic_int next_job;

static void *worker(void *arg) {
  (void)arg;
  for (int job; (job = atomic_fetch_add(&next_job, 1)) < N_JOBS;) {
    char pass[32];
    snprintf(pass, sizeof pass, "thread%d", job);
    run_job(&threaded[job], job, pass);
  }
  return NULL;
}

/* All jobs on THREADS threads at once; the count of failures and differences from serial. */
static int run_threaded(const char *what) {
  atomic_store(&next_job, 0);
  run_threads(THREADS, worker, NULL, 0);
  int failures = 0;
  print_message("%s:\n", what);
  for (int job = 0; job < N_JOBS; job++) {
    if (threaded[job].err[0]) print_message("threaded: %s\n", threaded[job].err), failures++;
    else failures += compare_job(&threaded[job], &serial[job], job);
    free_job(&threaded[job]);
  }
  return failures;
}

static void test_compile_threads(void **state) {
  (void)state;
  setenv("NNC_CACHE", "off", 1);
  for (int job = 0; job < N_JOBS; job++)
    if (run_job(&serial[job], job, "serial")) fail_msg("serial: %s", serial[job].err);
  unsetenv("NNC_CACHE");
  char cache[sizeof tmp_dir + 16];
  snprintf(cache, sizeof cache, "%s/cache", tmp_dir);
  setenv("NNC_CACHE_DIR", cache, 1);
  int failures = run_threaded("threads, an empty compile cache");
  failures += run_threaded("threads, every compile a cache hit");
  for (int job = 0; job < N_JOBS; job++) free_job(&serial[job]);
  if (failures)
    fail_msg("%d difference(s) or failure(s) on %d threads, see above", failures, THREADS);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_compile_threads)};
  return cmocka_run_group_tests(tests, tmp_make, tmp_remove);
}
