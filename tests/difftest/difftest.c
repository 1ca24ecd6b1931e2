/* difftest.c — the differential tester: random .nn programs (gen.c) run through the JIT and
 * an AOT .so and compared with the reference interpreter (compiler/ir/interp.c).
 *
 *   difftest [--seed S] [--count N] [--out DIR] [--jobs J] [--no-aot] [--no-reduce] [-v]
 *   difftest FILE.nn...          run the given programs (regressions; see below)
 *
 * Each program runs in a child process (a crash or a hang is a finding, not the end of the
 * run): the JIT (nnc_model_compile) and the AOT library (nnc_compile_so with the weights
 * embedded, then nnc_model_load) are called on random inputs drawn as the `# difftest:`
 * header line says, and their outputs are compared with the interpreter's on the IR after
 * sema.  The interpreter also runs on the IR after fold/cse/dce, which must agree too, and
 * the JIT and AOT results must be bit-identical (same IR, same target, same passes).  Every
 * entry is called twice on the same contexts: with the header's symbolic dims, then with
 * others (a larger or a smaller workspace).
 *
 * Tolerance, per output element.  The interpreter computes each output in double (ref, the
 * oracle) and, as stochastic arithmetic does, NSENS more times rounding every intermediate
 * result and partial sum to float32: to the nearest float, and up or down at random with
 * different seeds.  sens = max |ref32_k - ref| estimates how far float32 round-off can move
 * that element through the program's own conditioning (cancellation, exp, division,
 * comparisons that flip); as a few random runs can all miss it, the mean of sens over the
 * tensor is a floor.  An element of a compiled result `got` passes when
 *     |got - ref| <= 1e-5 * (|ref| + rms(ref)) + 16 * max(sens, mean(sens))
 * where rms is over the output tensor: 1e-5 is about 80 float32 ulps, room for a different
 * summation order and a 1-ulp exp over a chain of ops; the second term follows the
 * program's sensitivity.  Non-finite values must match in kind (NaN, +inf, -inf); elements
 * where ref and a float32 run differ in kind are not compared (at the mercy of round-off).
 *
 * A failing generated program is written to DIR/seed-S.nn and, unless --no-reduce, shrunk
 * (outputs dropped, statements cut into fresh inputs, N lowered) while it fails the same way,
 * into DIR/seed-S.min.nn.  Regression files are such programs; a header containing
 * `xfail=REASON` marks a known, unfixed bug: it must still fail (and reports XPASS — a test
 * failure, so the marker gets removed — once the bug is fixed); `expect=rejected` says that
 * the right outcome is a compile-time diagnostic.  Exit status: 0 when every
 * program passed (or failed as expected), 1 otherwise, 2 on a usage error. */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "compile.h"
#include "gen.h"
#include "nnc.h"
#include "safetensors.h"
#include "table.h"

#define CHILD_TIMEOUT_S 120 /* a program takes seconds; a header can set timeout=S */
#define REL_TOL 1e-5
#define SENS_FACTOR 16
#define MAX_ARGS 32
#define NSENS 3       /* float32 runs of the interpreter: nearest, then random rounding */

typedef enum Verdict { V_PASS, V_MISMATCH, V_BITDIFF, V_REJECT, V_ERROR, V_CRASH, V_TIMEOUT } Verdict;
static const char *verdict_name[] = {"pass", "mismatch", "jit/aot differ", "rejected", "error", "crash", "timeout"};

typedef struct Options {
  uint64_t seed;
  int count;
  const char *out;
  bool aot, reduce, verbose;
} Options;

/* The result of one program: a verdict, the path that failed ("jit", "aot", "opt") and a
 * message. */
typedef struct Result {
  Verdict v;
  char where[16];
  char msg[1024];
} Result;

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static Verdict set(Result *r, Verdict v, const char *where, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static Verdict set(Result *r, Verdict v, const char *where, const char *fmt, ...) {
  r->v = v;
  snprintf(r->where, sizeof r->where, "%s", where);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(r->msg, sizeof r->msg, fmt, ap);
  va_end(ap);
  for (char *p = r->msg; *p; p++)
    if (*p == '\n' && p[1]) *p = ' '; /* one line */
  size_t n = strlen(r->msg);
  if (n && r->msg[n - 1] == '\n') r->msg[n - 1] = 0;
  return v;
}

/* ---- the `# difftest:` header ---- */

typedef struct Header {
  struct { char name[128]; double lo, hi; long long v; } kv[64];
  int n;
  bool xfail;
  bool expect_reject;  /* expect=rejected: the program must get a compile-time diagnostic */
  int timeout;         /* timeout=S: seconds for the child, 0 for the default */
} Header;

static void parse_header(const char *text, Header *h) {
  memset(h, 0, sizeof *h);
  const char *p = strstr(text, "# difftest:");
  if (!p) return;
  p += strlen("# difftest:");
  while (*p && *p != '\n' && h->n < 64) {
    while (*p == ' ') p++;
    char word[128];
    int len = 0;
    while (*p && *p != ' ' && *p != '\n' && len < 127) word[len++] = *p++;
    word[len] = 0;
    char *eq = strchr(word, '=');
    if (!eq) continue;
    *eq = 0;
    if (!strcmp(word, "xfail")) {
      h->xfail = true;
      continue;
    }
    if (!strcmp(word, "expect")) {
      h->expect_reject = !strcmp(eq + 1, "rejected");
      continue;
    }
    if (!strcmp(word, "timeout")) {
      h->timeout = atoi(eq + 1);
      continue;
    }
    snprintf(h->kv[h->n].name, sizeof h->kv[0].name, "%s", word);
    h->kv[h->n].v = atoll(eq + 1);
    h->kv[h->n].lo = -2;
    h->kv[h->n].hi = 2;
    sscanf(eq + 1, "%lf:%lf", &h->kv[h->n].lo, &h->kv[h->n].hi);
    h->n++;
  }
}

static int header_find(const Header *h, const char *name) {
  for (int i = 0; i < h->n; i++)
    if (!strcmp(h->kv[i].name, name)) return i;
  return -1;
}

/* ---- inputs and weights ---- */

static uint64_t mix(uint64_t *s) {
  uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
static double uniform(uint64_t *s, double lo, double hi) { return lo + (hi - lo) * (double)(mix(s) >> 11) * 0x1p-53; }

static int64_t eval_dim(const nnc_model_desc *d, nnc_dim dim, const int64_t *syms) {
  int64_t v = dim.k;
  for (int i = 0; i < d->n_syms; i++)
    if (dim.syms & (1u << i)) v *= syms[i];
  return v;
}

static void *make_input(const nnc_model_desc *d, const nnc_arg_desc *a, const int64_t *syms,
                        const Header *h, uint64_t *rng, nnc_tensor *t) {
  *t = (nnc_tensor){.dtype = a->dtype, .rank = a->rank};
  int64_t n = 1;
  for (int k = 0; k < a->rank; k++) n *= (t->shape[k] = eval_dim(d, a->dims[k], syms));
  int hi_ = header_find(h, a->name);
  double lo = hi_ >= 0 ? h->kv[hi_].lo : -2, hi = hi_ >= 0 ? h->kv[hi_].hi : 2;
  t->data = malloc((n ? n : 1) * 8);
  for (int64_t i = 0; t->data && i < n; i++) {
    if (a->dtype == NNC_I64) ((int64_t *)t->data)[i] = (int64_t)floor(uniform(rng, lo, hi + 1));
    else ((float *)t->data)[i] = (float)uniform(rng, lo, hi);
  }
  return t->data;
}

/* Weights like PyTorch's default init: uniform(±1/sqrt(fan_in)). */
static int write_weights(const nnc_model_desc *d, const char *path, uint64_t *rng, char *err, size_t len) {
  StTensor *ts = calloc(d->n_params + 1, sizeof *ts);
  int rc = ts ? 0 : -1;
  for (int i = 0; !rc && i < d->n_params; i++) {
    const nnc_param_desc *p = &d->params[i];
    int64_t n = 1;
    for (int k = 0; k < p->rank; k++) n *= p->shape[k];
    double b = 1 / sqrt((double)(p->rank >= 2 ? p->shape[p->rank - 1] : 4)), lo = -b;
    size_t nl = strlen(p->name);
    if (nl >= 11 && !strcmp(p->name + nl - 11, "running_var")) lo = 0.5, b = 1.5; /* a variance */
    void *data = malloc((n ? n : 1) * 8);
    if (!data) { rc = -1; break; }
    for (int64_t k = 0; k < n; k++) {
      if (p->dtype == NNC_I64) ((int64_t *)data)[k] = (int64_t)floor(uniform(rng, -3, 4));
      else ((float *)data)[k] = (float)uniform(rng, lo, b);
    }
    ts[i] = (StTensor){.name = (char *)p->name, .dtype = p->dtype == NNC_I64 ? ST_I64 : ST_F32, .rank = p->rank,
                       .data = data, .nbytes = (size_t)n * (p->dtype == NNC_I64 ? 8 : 4)};
    if (p->rank) memcpy(ts[i].shape, p->shape, p->rank * sizeof *p->shape);
  }
  if (!rc) rc = st_write_file(path, ts, d->n_params, err, len);
  for (int i = 0; ts && i < d->n_params; i++) free((void *)ts[i].data);
  free(ts);
  return rc;
}

/* ---- comparing ---- */

static int kind(double x) { return isnan(x) ? 3 : isinf(x) ? (x > 0 ? 1 : 2) : 0; }

/* 0 if got matches ref (with the float32 runs ref32[NSENS] as the round-off estimate), else
 * -1 with the worst element in msg. */
static int compare(const char *what, const nnc_tensor *got, const nnc_tensor *ref, nnc_tensor (*ref32)[MAX_ARGS],
                   int o, char *msg, size_t len) {
  if (got->rank != ref->rank) return snprintf(msg, len, "%s: rank %d, expected %d", what, got->rank, ref->rank), -1;
  for (int k = 0; k < ref->rank; k++)
    if (got->shape[k] != ref->shape[k])
      return snprintf(msg, len, "%s: dim %d is %lld, expected %lld", what, k, (long long)got->shape[k], (long long)ref->shape[k]), -1;
  int64_t n = nnc_tensor_numel(ref), worst = -1;
  const float *g = got->data, *r = ref->data;
  double *sens = malloc((n ? n : 1) * sizeof *sens);
  if (!sens) return snprintf(msg, len, "%s: out of memory", what), -1;
  double ss = 0, sum_sens = 0, worst_ratio = 1, worst_sens = 0;
  for (int64_t i = 0; i < n; i++) {
    if (isfinite(r[i])) ss += (double)r[i] * r[i];
    sens[i] = 0;
    for (int k = 0; k < NSENS; k++) {
      float e = ((const float *)ref32[k][o].data)[i];
      if (kind(e) != kind(r[i])) sens[i] = NAN; /* unstable: not compared */
      else if (!kind(e)) sens[i] = fmax(sens[i], fabs((double)e - r[i]));
    }
    if (isfinite(sens[i])) sum_sens += sens[i];
  }
  /* a few random runs can all miss an element's sensitivity: the tensor's mean is a floor */
  double rms = n ? sqrt(ss / n) : 0, floor_sens = n ? sum_sens / n : 0;
  for (int64_t i = 0; i < n; i++) {
    if (isnan(sens[i])) continue;
    double ratio, s = fmax(sens[i], floor_sens);
    if (kind(r[i]) || kind(g[i])) ratio = kind(r[i]) == kind(g[i]) ? 0 : INFINITY;
    else ratio = fabs((double)g[i] - r[i]) / (REL_TOL * (fabs(r[i]) + rms) + SENS_FACTOR * s + 1e-37);
    if (ratio > worst_ratio) worst_ratio = ratio, worst = i, worst_sens = s;
  }
  free(sens);
  if (worst < 0) return 0;
  snprintf(msg, len, "%s: element %lld of %lld is %.9g, expected %.9g (float32 round-off estimate %.3g; error %.3g x tolerance)",
           what, (long long)worst, (long long)n, g[worst], r[worst], worst_sens, worst_ratio);
  return -1;
}

static bool bit_equal(const nnc_tensor *a, const nnc_tensor *b, int64_t *at) {
  int64_t n = nnc_tensor_numel(a);
  const float *x = a->data, *y = b->data;
  for (int64_t i = 0; i < n; i++)
    if (memcmp(&x[i], &y[i], 4) && !(isnan(x[i]) && isnan(y[i]))) {
      *at = i;
      return false;
    }
  return true;
}

/* ---- running one program (in the child) ---- */

typedef struct Run {
  const char *path, *dir;
  const Options *opt;
  Header h;
  nnc_model *jit, *aot;
  nnc_context *jctx, *actx;
  const nnc_model_desc *d;
  const nnc_entry_desc *e;   /* the entry being checked */
  int ei;
  uint64_t rng;
  int64_t syms[32];
  nnc_tensor in[MAX_ARGS], ref[MAX_ARGS], ref32[NSENS][MAX_ARGS], opt_out[MAX_ARGS], jout[MAX_ARGS], aout[MAX_ARGS];
  char weights[600];
  bool has_weights;
} Run;

/* The interpreter at `stage`; in double, or with f32 rounding (to nearest when seed is 0). */
static Verdict interpret(Run *R, Result *res, const char *stage, bool f32, unsigned seed, nnc_tensor *out) {
  char *msg = NULL;
  NncInterpOptions io = {.weights_path = R->has_weights ? R->weights : NULL, .stage = stage, .f32 = f32,
                         .random_rounding = seed};
  if (nnc_interpret(R->path, &io, R->e->name, R->in, R->e->n_in, out, R->e->n_out, &msg)) {
    set(res, V_ERROR, "interp", "reference interpreter: %s", msg ? msg : "?");
    free(msg);
    return V_ERROR;
  }
  return V_PASS;
}

static Verdict call(Run *R, Result *res, const char *where, nnc_context *c, nnc_tensor *out) {
  if (nnc_call(c, R->ei, R->in, R->e->n_in, out, R->e->n_out))
    return set(res, V_ERROR, where, "%s call failed: %s", where, nnc_context_error(c));
  return V_PASS;
}

/* The derived symbolic dims (layer output sizes, squares) from the bound ones: what an input
 * typed with one (`f32[N, ((H + 1) / 2)]`) holds. */
static Verdict derive_syms(Run *R, Result *res) {
  char err[300];
  if (R->d->sym_rules && nnc_derive_syms(R->d->sym_rules, R->d->n_syms, R->d->sym_names, UINT32_MAX, R->syms, err, sizeof err))
    return set(res, V_ERROR, "inputs", "deriving the sizes: %s", err);
  return V_PASS;
}

static bool is_derived(const Run *R, int sym) { return R->d->sym_rules && R->d->sym_rules[sym].src >= 0; }

static Verdict open_models(Run *R, Result *res) {
  char *msg = NULL, so[700];
  if (nnc_model_compile(R->path, NULL, &R->jit, &msg)) {
    Verdict v = strstr(msg ? msg : "", "internal error") ? V_ERROR : V_REJECT;
    set(res, v, "jit", "%s", msg ? msg : "?");
    free(msg);
    return v;
  }
  R->d = nnc_model_desc_of(R->jit);
  R->rng = 12345;
  for (int i = 0; i < R->d->n_syms; i++) {
    int k = header_find(&R->h, R->d->sym_names[i]);
    R->syms[i] = k >= 0 ? R->h.kv[k].v : 3;
  }
  if (derive_syms(R, res)) return res->v;
  if (R->d->n_params) {
    char err[512];
    snprintf(R->weights, sizeof R->weights, "%s/w.safetensors", R->dir);
    if (write_weights(R->d, R->weights, &R->rng, err, sizeof err)) return set(res, V_ERROR, "weights", "%s", err);
    R->has_weights = true;
  }
  if (nnc_context_open(R->jit, R->has_weights ? R->weights : NULL, &R->jctx, &msg)) {
    set(res, V_ERROR, "jit", "context: %s", msg ? msg : "?");
    free(msg);
    return V_ERROR;
  }
  if (!R->opt->aot) return V_PASS;
  snprintf(so, sizeof so, "%s/m.so", R->dir);
  NncCompileOptions co = {.weights_path = R->has_weights ? R->weights : NULL};
  if (nnc_compile_so(R->path, so, &co, &msg) || nnc_model_load(so, &R->aot, &msg) ||
      nnc_context_open(R->aot, NULL, &R->actx, &msg)) {
    set(res, V_ERROR, "aot", "%s", msg ? msg : "?");
    free(msg);
    return V_ERROR;
  }
  return V_PASS;
}

static Verdict check(Run *R, Result *res) {
  const nnc_entry_desc *e = R->e;
  for (int o = 0; o < e->n_out; o++) {
    char what[160], msg[900], oname[128];
    snprintf(oname, sizeof oname, "%s.%s", e->name, e->args[e->n_in + o].name);
    snprintf(what, sizeof what, "opt %s", oname);
    if (compare(what, &R->opt_out[o], &R->ref[o], R->ref32, o, msg, sizeof msg)) return set(res, V_MISMATCH, "opt", "%s", msg);
    snprintf(what, sizeof what, "jit %s", oname);
    if (compare(what, &R->jout[o], &R->ref[o], R->ref32, o, msg, sizeof msg)) return set(res, V_MISMATCH, "jit", "%s", msg);
    if (!R->opt->aot) continue;
    snprintf(what, sizeof what, "aot %s", oname);
    if (compare(what, &R->aout[o], &R->ref[o], R->ref32, o, msg, sizeof msg)) return set(res, V_MISMATCH, "aot", "%s", msg);
    int64_t at;
    if (!bit_equal(&R->jout[o], &R->aout[o], &at))
      return set(res, V_BITDIFF, "aot", "%s: element %lld: JIT %.9g, AOT %.9g", oname, (long long)at,
                 ((float *)R->jout[o].data)[at], ((float *)R->aout[o].data)[at]);
  }
  return V_PASS;
}

static Verdict run_entries(Run *R, Result *res);

static Verdict run_program(const char *path, const char *dir, const Options *opt, Result *res) {
  static Run R;
  memset(&R, 0, sizeof R);
  R.path = path;
  R.dir = dir;
  R.opt = opt;
  FILE *f = fopen(path, "r");
  if (!f) return set(res, V_ERROR, "read", "cannot open %s", path);
  char text[4096] = "";
  size_t n = fread(text, 1, sizeof text - 1, f);
  text[n] = 0;
  fclose(f);
  parse_header(text, &R.h);
  res->v = V_PASS;
  if (open_models(&R, res)) return res->v;
  /* two rounds on the same contexts: the header's dims, then others (the workspace grows or
   * is reused) */
  for (int round = 0; round < 2; round++) {
    if (round) { /* the generator's derived sizes grow with their sources, so stay valid */
      for (int i = 0; i < R.d->n_syms; i++)
        if (!is_derived(&R, i)) R.syms[i] = R.syms[i] < 20 ? R.syms[i] * 3 + 2 : R.syms[i] / 3;
      if (derive_syms(&R, res)) return res->v;
    }
    if (run_entries(&R, res)) return res->v;
  }
  return V_PASS; /* the child exits: nothing is freed */
}

static Verdict run_entries(Run *R, Result *res) {
  const Options *opt = R->opt;
  for (R->ei = 0; R->ei < R->d->n_entries; R->ei++) {
    R->e = &R->d->entries[R->ei];
    if (R->e->n_in > MAX_ARGS || R->e->n_out > MAX_ARGS) return set(res, V_ERROR, "jit", "too many arguments");
    for (int i = 0; i < R->e->n_in; i++)
      if (!make_input(R->d, &R->e->args[i], R->syms, &R->h, &R->rng, &R->in[i])) return set(res, V_ERROR, "inputs", "out of memory");
    memset(R->jout, 0, sizeof R->jout);
    memset(R->aout, 0, sizeof R->aout);
    for (unsigned k = 0; k < NSENS; k++)
      if (interpret(R, res, "ir", true, k, R->ref32[k])) return res->v;
    if (interpret(R, res, "ir", false, 0, R->ref) || interpret(R, res, "opt", false, 0, R->opt_out) ||
        call(R, res, "jit", R->jctx, R->jout) ||
        (opt->aot && call(R, res, "aot", R->actx, R->aout)) || check(R, res))
      return res->v;
  }
  return V_PASS;
}

/* ---- processes ---- */

/* Run `path` in a child (killed after `timeout` seconds, 0: the default); its Result comes
 * back through a pipe. */
static void run_isolated(const char *path, const Options *opt, int timeout, Result *res) {
  int fds[2];
  memset(res, 0, sizeof *res);
  if (pipe(fds)) {
    set(res, V_ERROR, "fork", "pipe: %s", strerror(errno));
    return;
  }
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    alarm(timeout > 0 ? (unsigned)timeout : CHILD_TIMEOUT_S);
    char dir[] = "/tmp/nnc-difftest-XXXXXX";
    Result r = {0};
    if (!mkdtemp(dir)) set(&r, V_ERROR, "tmp", "mkdtemp: %s", strerror(errno));
    else run_program(path, dir, opt, &r);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd)) { /* leftovers in /tmp are harmless */ }
    if (write(fds[1], &r, sizeof r) != (ssize_t)sizeof r) _exit(3);
    _exit(0);
  }
  close(fds[1]);
  if (pid < 0) {
    close(fds[0]);
    set(res, V_ERROR, "fork", "fork: %s", strerror(errno));
    return;
  }
  ssize_t got = read(fds[0], res, sizeof *res);
  close(fds[0]);
  int st;
  waitpid(pid, &st, 0);
  if (WIFSIGNALED(st))
    set(res, WTERMSIG(st) == SIGALRM ? V_TIMEOUT : V_CRASH, "child", "killed by signal %d (%s)", WTERMSIG(st), strsignal(WTERMSIG(st)));
  else if (got != (ssize_t)sizeof *res)
    set(res, V_CRASH, "child", "exited with status %d without a result", WEXITSTATUS(st));
}

static int write_text(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  if (!f) return -1;
  fputs(text, f);
  return fclose(f);
}

/* Does the program `g` still fail like `want`? */
static bool fails_same(const GProg *g, const char *path, const Options *opt, const Result *want) {
  char *text = gen_emit(g);
  if (!text || write_text(path, text)) {
    free(text);
    return false;
  }
  free(text);
  Result r;
  run_isolated(path, opt, 0, &r);
  return r.v == want->v && !strcmp(r.where, want->where);
}

/* Shrink a failing program while it fails the same way. */
static void reduce(GProg *g, const char *path, const Options *opt, const Result *want) {
  for (bool changed = true; changed;) {
    changed = false;
    for (int e = 0; e < g->nentries; e++)
      for (int o = 0; o < g->nouts[e]; o++) {
        int total = 0;
        for (int k = 0; k < g->nentries; k++) total += g->nouts[k];
        if (total == 1) break;
        GProg t = *g;
        memmove(&t.outs[e][o], &t.outs[e][o + 1], (t.nouts[e] - o - 1) * sizeof **t.outs);
        t.nouts[e]--;
        if (fails_same(&t, path, opt, want)) *g = t, changed = true, o--;
      }
    for (int i = g->nv - 1; i >= 0; i--) {
      GProg t = *g;
      if (gen_cut(&t, i) && fails_same(&t, path, opt, want)) *g = t, changed = true;
    }
    static const int ns[] = {1, 2, 3, 4};
    for (int k = 0; k < 4 && ns[k] < g->N; k++) {
      GProg t = *g;
      t.N = ns[k];
      if (fails_same(&t, path, opt, want)) {
        *g = t, changed = true;
        break;
      }
    }
    for (int k = 0; k < 4 && ns[k] < g->T; k++) {
      GProg t = *g;
      t.T = ns[k];
      if (fails_same(&t, path, opt, want)) {
        *g = t, changed = true;
        break;
      }
    }
  }
  char *text = gen_emit(g);
  if (text) write_text(path, text);
  free(text);
}

/* ---- modes ---- */

static int run_generated(const Options *opt) {
  mkdir(opt->out, 0777);
  int counts[V_TIMEOUT + 1] = {0}, failures = 0;
  double t0 = now();
  for (int i = 0; i < opt->count; i++) {
    uint64_t seed = opt->seed + (uint64_t)i;
    static GProg g;
    gen_program(&g, seed);
    char *text = gen_emit(&g), path[700];
    snprintf(path, sizeof path, "%s/seed-%llu.nn", opt->out, (unsigned long long)seed);
    if (!text || write_text(path, text)) {
      fprintf(stderr, "difftest: cannot write %s\n", path);
      return 1;
    }
    free(text);
    Result r;
    run_isolated(path, opt, 0, &r);
    counts[r.v]++;
    if (r.v == V_PASS) {
      remove(path);
      if (opt->verbose) printf("seed %llu: pass\n", (unsigned long long)seed);
      continue;
    }
    failures++;
    printf("seed %llu: %s (%s): %s\n  program: %s\n", (unsigned long long)seed, verdict_name[r.v], r.where, r.msg, path);
    if (opt->reduce) {
      char min[720];
      snprintf(min, sizeof min, "%s/seed-%llu.min.nn", opt->out, (unsigned long long)seed);
      reduce(&g, min, opt, &r);
      printf("  reduced: %s\n", min);
    }
    fflush(stdout);
  }
  printf("difftest: %d programs from seed %llu in %.1f s:", opt->count, (unsigned long long)opt->seed, now() - t0);
  for (int v = 0; v <= V_TIMEOUT; v++)
    if (counts[v]) printf(" %d %s", counts[v], verdict_name[v]);
  printf("\n");
  return failures ? 1 : 0;
}

static int run_files(char **files, int n, const Options *opt) {
  int failures = 0;
  for (int i = 0; i < n; i++) {
    FILE *f = fopen(files[i], "r");
    char text[4096] = "";
    if (f) {
      size_t k = fread(text, 1, sizeof text - 1, f);
      text[k] = 0;
      fclose(f);
    }
    Header h;
    parse_header(text, &h);
    Result r;
    run_isolated(files[i], opt, h.timeout, &r);
    Verdict want = h.expect_reject ? V_REJECT : V_PASS;
    bool ok = h.xfail ? r.v != want : r.v == want;
    failures += !ok;
    if (h.xfail && !ok) printf("%s: XPASS: the bug is fixed; remove 'xfail' from its header\n", files[i]);
    else if (h.xfail) printf("%s: XFAIL (known bug): %s (%s): %s\n", files[i], verdict_name[r.v], r.where, r.msg);
    else if (r.v != want || r.v) printf("%s: %s%s (%s): %s\n", files[i], ok ? "as expected, " : "", verdict_name[r.v], r.where, r.msg);
    else printf("%s: pass\n", files[i]);
  }
  printf("difftest: %d of %d files as expected\n", n - failures, n);
  return failures ? 1 : 0;
}

static void usage(FILE *f) {
  fprintf(f, "usage: difftest [--seed S] [--count N] [--out DIR] [--no-aot] [--no-reduce] [-v]\n"
             "       difftest [--no-aot] FILE.nn...\n");
}

int main(int argc, char **argv) {
  Options opt = {.seed = 1, .count = 100, .out = "difftest-out", .aot = true, .reduce = true};
  int i = 1;
  for (; i < argc && argv[i][0] == '-'; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--seed") && i + 1 < argc) opt.seed = strtoull(argv[++i], NULL, 10);
    else if (!strcmp(a, "--count") && i + 1 < argc) opt.count = atoi(argv[++i]);
    else if (!strcmp(a, "--out") && i + 1 < argc) opt.out = argv[++i];
    else if (!strcmp(a, "--no-aot")) opt.aot = false;
    else if (!strcmp(a, "--no-reduce")) opt.reduce = false;
    else if (!strcmp(a, "-v")) opt.verbose = true;
    else if (!strcmp(a, "-h") || !strcmp(a, "--help")) return usage(stdout), 0;
    else return usage(stderr), 2;
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  return i < argc ? run_files(argv + i, argc - i, &opt) : run_generated(&opt);
}
