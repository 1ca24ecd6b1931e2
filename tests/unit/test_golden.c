/* test_golden.c — the golden runner: every model under tests/golden/<m>/ whose program is
 * examples/<m>.nn (the paper models) or tests/golden/<m>/model.nn (the op tests, ops_*) is
 * run on its stored inputs through both paths, and every output is
 * (a directory <m> with a one-line file `defines`, e.g. groupnorm_bn with NORM=bn, runs the
 * program of the name before its last '_', examples/groupnorm.nn, compiled with -D NORM=bn)
 * compared with the PyTorch reference (tests/golden/README.md describes the files):
 *   <m>/jit  nnc_model_compile(examples/<m>.nn), context with <m>/weights.safetensors
 *   <m>/aot  nnc_compile_so with the weights embedded into NNC_BINARY_DIR/golden/<m>.so,
 *            then nnc_model_load and a context on the embedded weights.
 * Tolerance per element: |got - want| <= 1e-5 + 1e-4 * |want|.  A failure names the worst
 * element (index, got, expected); the max abs error of each output is printed either way.
 * A model with entries `forward` and `inverse` (realnvp) also checks inverse(forward(x)) ≈ x. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <dirent.h>
#include <math.h>
#include <sys/stat.h>
#include <time.h>

#include "compile.h"
#include "nnc.h"
#include "npy.h"

#ifndef NNC_BINARY_DIR
#define NNC_BINARY_DIR "."
#endif
#ifndef NNC_SOURCE_DIR
#define NNC_SOURCE_DIR "."
#endif

/* A case is a directory of tests/: golden/<model> (PyTorch references) or onnx/<test> (ONNX
 * backend node tests converted by tests/onnx/convert.py); Golden.model holds that path. */
#define GOLDEN_DIR NNC_SOURCE_DIR "/tests"
#define MAX_MODELS 512
#define ABS_TOL 1e-5
#define REL_TOL 1e-4
#define ROUNDTRIP_TOL 1e-4

typedef struct Golden {
  char model[160];  /* "golden/realnvp", "onnx/test_conv_with_strides_padding" */
  int aot;          /* 0: JIT, 1: AOT .so */
  char name[180];   /* "golden/realnvp/jit" */
} Golden;

static const char *base_name(const char *model) {
  const char *s = strrchr(model, '/');
  return s ? s + 1 : model;
}

typedef struct Run {
  const Golden *g;
  double abs_tol, rel_tol; /* ABS_TOL/REL_TOL, or the case's `tolerance` file */
  nnc_model *model;
  nnc_context *ctx;
  const nnc_model_desc *desc;
} Run;

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static bool file_exists(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static void golden_path(char *buf, size_t len, const char *model, const char *entry,
                        const char *io, const char *arg) {
  snprintf(buf, len, "%s/%s/%s.%s.%s.npy", GOLDEN_DIR, model, entry, io, arg);
}

/* ---- opening the model both ways ---- */

/* Keep a library message for the failure report; returns 1. */
static int failed(char *buf, size_t len, const char *what, char *msg) {
  snprintf(buf, len, "%s:\n%s", what, msg ? msg : "(no message)");
  nnc_free(msg);
  return 1;
}

/* The golden directory's compile-time definition ("NAME=VALUE"), or NULL. */
static const char *read_define(const char *model, char *buf, size_t len) {
  char path[1024];
  snprintf(path, sizeof path, "%s/%s/defines", GOLDEN_DIR, model);
  FILE *f = fopen(path, "r");
  if (!f) return NULL;
  if (!fgets(buf, (int)len, f)) buf[0] = 0;
  fclose(f);
  buf[strcspn(buf, "\r\n")] = 0;
  return buf[0] ? buf : NULL;
}

static int open_jit(Run *r, const char *nn, const char *weights, char *err, size_t len) {
  char *msg = NULL, dbuf[256];
  const char *def = read_define(r->g->model, dbuf, sizeof dbuf);
  if (nnc_model_compile_defines(nn, NULL, &def, def ? 1 : 0, &r->model, &msg))
    return failed(err, len, "JIT compile", msg);
  if (nnc_context_open(r->model, weights, &r->ctx, &msg)) return failed(err, len, "weights", msg);
  return 0;
}

static int open_aot(Run *r, const char *nn, const char *weights, char *err, size_t len) {
  char dir[512], so[1024], *msg = NULL;
  snprintf(dir, sizeof dir, "%s/golden", NNC_BINARY_DIR);
  mkdir(dir, 0777);
  snprintf(so, sizeof so, "%s/%s.so", dir, base_name(r->g->model));
  char dbuf[256];
  const char *def = read_define(r->g->model, dbuf, sizeof dbuf);
  NncCompileOptions opt = {.weights_path = weights, .defines = &def, .ndefines = def ? 1 : 0};
  if (nnc_compile_so(nn, so, &opt, &msg)) return failed(err, len, "AOT compile", msg);
  free(msg);
  if (nnc_model_load(so, &r->model, &msg)) return failed(err, len, "load", msg);
  if (nnc_context_open(r->model, NULL, &r->ctx, &msg)) return failed(err, len, "context", msg);
  return 0;
}

/* The program of golden model `model`: tests/golden/<m>/model.nn or examples/<m>.nn. */
static bool model_program(const char *model, char *nn, size_t len) {
  snprintf(nn, len, "%s/%s/model.nn", GOLDEN_DIR, model);
  if (file_exists(nn)) return true;
  const char *base = base_name(model);
  snprintf(nn, len, "%s/examples/%s.nn", NNC_SOURCE_DIR, base);
  if (file_exists(nn)) return true;
  char defines[1024];
  const char *us = strrchr(base, '_');
  snprintf(defines, sizeof defines, "%s/%s/defines", GOLDEN_DIR, model);
  if (!us || !file_exists(defines)) return false;
  snprintf(nn, len, "%s/examples/%.*s.nn", NNC_SOURCE_DIR, (int)(us - base), base);
  return file_exists(nn);
}

static int open_model(Run *r, char *err, size_t len) {
  char nn[1024], weights[512];
  model_program(r->g->model, nn, sizeof nn);
  snprintf(weights, sizeof weights, "%s/%s/weights.safetensors", GOLDEN_DIR, r->g->model);
  const char *w = file_exists(weights) ? weights : NULL; /* op tests without parameters */
  double t0 = now();
  int rc = r->g->aot ? open_aot(r, nn, w, err, len) : open_jit(r, nn, w, err, len);
  if (rc) return rc;
  r->desc = nnc_model_desc_of(r->model);
  print_message("%s: compiled and opened in %.3f s\n", r->g->name, now() - t0);
  return 0;
}

/* ---- comparing ---- */

static double element(const nnc_tensor *t, int64_t i) {
  return t->dtype == NNC_I64 ? (double)((const int64_t *)t->data)[i]
                             : (double)((const float *)t->data)[i];
}

static void index_str(const nnc_tensor *t, int64_t flat, char *buf, size_t len) {
  int64_t idx[NNC_MAX_RANK];
  for (int j = t->rank - 1; j >= 0; j--) {
    idx[j] = t->shape[j] ? flat % t->shape[j] : 0;
    flat = t->shape[j] ? flat / t->shape[j] : 0;
  }
  size_t n = (size_t)snprintf(buf, len, "[");
  for (int j = 0; j < t->rank && n < len; j++)
    n += snprintf(buf + n, len - n, "%s%lld", j ? ", " : "", (long long)idx[j]);
  if (n < len) snprintf(buf + n, len - n, "]");
}

static bool same_shape(const nnc_tensor *a, const nnc_tensor *b) {
  if (a->rank != b->rank) return false;
  for (int j = 0; j < a->rank; j++)
    if (a->shape[j] != b->shape[j]) return false;
  return true;
}

static void shape_str(const nnc_tensor *t, char *buf, size_t len) {
  size_t n = (size_t)snprintf(buf, len, "%s[", t->dtype == NNC_I64 ? "i64" : "f32");
  for (int j = 0; j < t->rank && n < len; j++)
    n += snprintf(buf + n, len - n, "%s%lld", j ? ", " : "", (long long)t->shape[j]);
  if (n < len) snprintf(buf + n, len - n, "]");
}

/* Compare got with want elementwise; returns 0 if within tolerance, else 1 (reported). */
static int compare(const char *what, const nnc_tensor *got, const nnc_tensor *want,
                   double abs_tol, double rel_tol) {
  char gs[128], ws[128];
  shape_str(got, gs, sizeof gs);
  shape_str(want, ws, sizeof ws);
  if (got->dtype != want->dtype || !same_shape(got, want)) {
    print_message("  %s: got %s, expected %s\n", what, gs, ws);
    return 1;
  }
  int64_t n = nnc_tensor_numel(want), worst = -1, bad = 0;
  double max_abs = 0, worst_ratio = 0;
  for (int64_t i = 0; i < n; i++) {
    double a = element(got, i), b = element(want, i), err = fabs(a - b);
    double ratio = err / (abs_tol + rel_tol * fabs(b));
    if (isnan(a) != isnan(b) || isinf(a) != isinf(b)) ratio = INFINITY;
    if (isnan(a) && isnan(b)) ratio = err = 0;
    if (err > max_abs) max_abs = err;
    if (ratio > 1) bad++;
    if (ratio > worst_ratio || worst < 0) worst_ratio = ratio, worst = i;
  }
  print_message("  %-24s %s max abs error %.3g\n", what, gs, max_abs);
  if (bad == 0) return 0;
  char idx[128];
  index_str(want, worst, idx, sizeof idx);
  print_message("  %s: %lld of %lld elements out of tolerance; worst at %s: got %.9g, "
                "expected %.9g\n",
                what, (long long)bad, (long long)n, idx, element(got, worst), element(want, worst));
  return 1;
}

/* ---- running entries ---- */

static nnc_tensor as_tensor(const NpyArray *a) {
  nnc_tensor t = {a->data, a->dtype == NPY_I64 ? NNC_I64 : NNC_F32, a->rank, {0}};
  memcpy(t.shape, a->shape, sizeof(int64_t) * (size_t)a->rank);
  return t;
}

/* Read the golden file of argument `arg`; 1 (reported) if it cannot be read. */
static int read_golden(const Run *r, const char *entry, const char *io, const char *arg,
                       NpyArray *out) {
  char path[1024], err[1024];
  golden_path(path, sizeof path, r->g->model, entry, io, arg);
  if (npy_read(path, out, err, sizeof err) == 0) return 0;
  print_message("  %s\n", err);
  return 1;
}

static bool has_golden_data(const Run *r, const nnc_entry_desc *e) {
  char path[1024];
  for (int i = 0; i < e->n_in + e->n_out; i++) {
    golden_path(path, sizeof path, r->g->model, e->name, i < e->n_in ? "in" : "out", e->args[i].name);
    if (file_exists(path)) return true;
  }
  return false;
}

/* Run entry `ei` on inputs `in`; outputs are allocated into out[]. */
static int call(const Run *r, int ei, const nnc_tensor *in, nnc_tensor *out) {
  const nnc_entry_desc *e = &r->desc->entries[ei];
  if (nnc_call(r->ctx, ei, in, e->n_in, out, e->n_out) == NNC_OK) return 0;
  print_message("  %s: call failed: %s\n", e->name, nnc_context_error(r->ctx));
  return 1;
}

static int run_entry(const Run *r, int ei) {
  const nnc_entry_desc *e = &r->desc->entries[ei];
  if (!has_golden_data(r, e)) {
    print_message("  %s: no golden data; skipped\n", e->name);
    return 0;
  }
  NpyArray arrays[64] = {{0}};
  nnc_tensor in[64] = {{0}}, out[64] = {{0}};
  int failures = 0, n = e->n_in + e->n_out;
  if (n > 64) return print_message("  %s: too many arguments\n", e->name), 1;
  for (int i = 0; i < n; i++) {
    failures += read_golden(r, e->name, i < e->n_in ? "in" : "out", e->args[i].name, &arrays[i]);
    if (i < e->n_in) in[i] = as_tensor(&arrays[i]);
  }
  double t0 = now();
  if (!failures) failures += call(r, ei, in, out);
  double t1 = now();
  for (int o = 0; !failures && o < e->n_out; o++) {
    char what[256];
    snprintf(what, sizeof what, "%s.%s", e->name, e->args[e->n_in + o].name);
    nnc_tensor want = as_tensor(&arrays[e->n_in + o]);
    failures += compare(what, &out[o], &want, r->abs_tol, r->rel_tol);
  }
  if (!failures) print_message("  %s: ran in %.3f ms\n", e->name, 1e3 * (t1 - t0));
  for (int i = 0; i < n; i++) npy_free(&arrays[i]);
  for (int o = 0; o < e->n_out; o++) nnc_free(out[o].data);
  return failures;
}

/* inverse(forward(x)) ≈ x, feeding forward's output named like inverse's input. */
static int check_roundtrip(const Run *r) {
  int fi = nnc_model_find_entry(r->model, "forward"), ii = nnc_model_find_entry(r->model, "inverse");
  if (fi < 0 || ii < 0) return 0;
  const nnc_entry_desc *f = &r->desc->entries[fi], *inv = &r->desc->entries[ii];
  if (f->n_in != 1 || inv->n_in != 1 || inv->n_out < 1) return 0;
  int z = -1;
  for (int o = 0; o < f->n_out; o++)
    if (strcmp(f->args[f->n_in + o].name, inv->args[0].name) == 0) z = o;
  if (z < 0) return 0;
  NpyArray x = {0};
  nnc_tensor fout[64] = {{0}}, iout[64] = {{0}};
  int failures = read_golden(r, "forward", "in", f->args[0].name, &x);
  nnc_tensor xt = as_tensor(&x);
  if (!failures) failures += call(r, fi, &xt, fout);
  if (!failures) failures += call(r, ii, &fout[z], iout);
  if (!failures) failures += compare("inverse(forward(x))", &iout[0], &xt, ROUNDTRIP_TOL, ROUNDTRIP_TOL);
  for (int o = 0; o < 64; o++) nnc_free(fout[o].data), nnc_free(iout[o].data);
  npy_free(&x);
  return failures;
}

/* Every golden file must name an entry of the model and one of its arguments. */
static int check_file_names(const Run *r) {
  char dir[512];
  snprintf(dir, sizeof dir, "%s/%s", GOLDEN_DIR, r->g->model);
  DIR *d = opendir(dir);
  if (!d) return print_message("  cannot open %s\n", dir), 1;
  int failures = 0;
  struct dirent *de;
  while ((de = readdir(d)) != NULL) {
    char entry[256], io[8], arg[256];
    size_t len = strlen(de->d_name);
    if (len < 5 || strcmp(de->d_name + len - 4, ".npy") != 0) continue;
    if (sscanf(de->d_name, "%255[^.].%7[^.].%255[^.].npy", entry, io, arg) != 3) continue;
    int ei = nnc_model_find_entry(r->model, entry);
    bool found = false;
    for (int i = 0; ei >= 0 && i < r->desc->entries[ei].n_in + r->desc->entries[ei].n_out; i++)
      found |= strcmp(r->desc->entries[ei].args[i].name, arg) == 0 &&
               (i < r->desc->entries[ei].n_in) == (strcmp(io, "in") == 0);
    if (!found) {
      print_message("  %s/%s: the model has no %s '%s' of entry '%s'\n", dir, de->d_name,
                    strcmp(io, "in") == 0 ? "input" : "output", arg, entry);
      failures++;
    }
  }
  closedir(d);
  return failures;
}

/* A case may widen the tolerance, with the reason beside it: a file `tolerance` with the line
 * "atol=A rtol=R" (the ONNX RoiAlign data are stored with 4 decimals). */
static void read_tolerance(Run *r) {
  char path[1024];
  snprintf(path, sizeof path, "%s/%s/tolerance", GOLDEN_DIR, r->g->model);
  r->abs_tol = ABS_TOL;
  r->rel_tol = REL_TOL;
  FILE *f = fopen(path, "r");
  if (!f) return;
  if (fscanf(f, "atol=%lf rtol=%lf", &r->abs_tol, &r->rel_tol) != 2) fail_msg("%s: expected 'atol=A rtol=R'", path);
  fclose(f);
  print_message("  tolerance from %s: atol %g rtol %g\n", path, r->abs_tol, r->rel_tol);
}

/* A case whose directory has a file `pending` needs a feature not built yet: it is reported
 * as skipped, with the file's one-line reason, so it stays visible. */
static bool pending(const Golden *g) {
  char path[1024], why[512] = "";
  snprintf(path, sizeof path, "%s/%s/pending", GOLDEN_DIR, g->model);
  FILE *f = fopen(path, "r");
  if (!f) return false;
  if (!fgets(why, sizeof why, f)) why[0] = 0;
  fclose(f);
  print_message("  %s: pending: %s", g->name, why);
  return true;
}

static void test_golden(void **state) {
  Run r = {.g = *state};
  static char err[8192];
  if (pending(r.g)) skip();
  read_tolerance(&r);
  if (open_model(&r, err, sizeof err)) {
    nnc_context_free(r.ctx);
    nnc_model_free(r.model);
    fail_msg("%s: %s", r.g->name, err);
  }
  int failures = check_file_names(&r);
  for (int ei = 0; ei < r.desc->n_entries; ei++) failures += run_entry(&r, ei);
  failures += check_roundtrip(&r);
  nnc_context_free(r.ctx);
  nnc_model_free(r.model);
  if (failures) fail_msg("%s: %d failure(s), see above", r.g->name, failures);
}

/* ---- discovery ---- */

static int cmp_golden(const void *a, const void *b) {
  return strcmp(((const Golden *)a)->name, ((const Golden *)b)->name);
}

static int find_in(const char *sub, Golden *out, int n, int max) {
  char dir[1024];
  snprintf(dir, sizeof dir, "%s/%s", GOLDEN_DIR, sub);
  DIR *d = opendir(dir);
  if (!d) return n;
  struct dirent *de;
  while ((de = readdir(d)) != NULL && n + 2 <= max) {
    char nn[1024], model[sizeof out->model];
    if (de->d_name[0] == '.' || strlen(sub) + strlen(de->d_name) + 2 > sizeof model) continue;
    memcpy(model, sub, strlen(sub));
    model[strlen(sub)] = '/';
    strcpy(model + strlen(sub) + 1, de->d_name); /* length checked above */
    if (!model_program(model, nn, sizeof nn)) continue;
    for (int aot = 0; aot < 2; aot++, n++) {
      snprintf(out[n].model, sizeof out[n].model, "%s", model);
      out[n].aot = aot;
      snprintf(out[n].name, sizeof out[n].name, "%s/%s", model, aot ? "aot" : "jit");
    }
  }
  closedir(d);
  return n;
}

static int find_models(Golden *out, int max) {
  int n = find_in("golden", out, 0, max);
  n = find_in("onnx", out, n, max);
  n = find_in("onnx_rnn", out, n, max);
  qsort(out, (size_t)n, sizeof *out, cmp_golden);
  return n;
}

static void test_no_models(void **state) { fail_msg("no golden models found in %s", GOLDEN_DIR); }

int main(void) {
  static Golden golden[MAX_MODELS];
  static struct CMUnitTest tests[MAX_MODELS];
  int n = find_models(golden, MAX_MODELS);
  for (int i = 0; i < n; i++)
    tests[i] = (struct CMUnitTest){golden[i].name, test_golden, NULL, NULL, &golden[i]};
  if (n == 0) tests[n++] = (struct CMUnitTest){"no_models", test_no_models, NULL, NULL, NULL};
  return _cmocka_run_group_tests("golden", tests, (size_t)n, NULL, NULL);
}
