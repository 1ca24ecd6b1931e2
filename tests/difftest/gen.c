/* gen.c — random well-typed .nn programs for the differential tester (gen.h).
 *
 * A program grows one statement at a time: pick an operand among the values so far (recent
 * ones more often, so chains form and fusion has something to fuse; older ones sometimes, so
 * values get several users), pick an op whose shape rule it satisfies, build the other
 * operands (an existing value of a fitting shape, a fresh input, a literal or a fill) and the
 * result's shape and value interval.  In a statement's text `@<j>` names value j (a `@` not
 * followed by a digit is the matmul operator). */
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "gen.h"

#define MAX_STATIC_NUMEL 512
#define SHAPE_TEXT 512   /* room for a shape's text: derived sizes nest formulas */
#define BIG 1e3          /* values beyond this are scaled back by a power of two */

/* ---- randomness (splitmix64) ---- */

static uint64_t next(GProg *g) {
  uint64_t z = (g->rng += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
static int ri(GProg *g, int lo, int hi) { return lo + (int)(next(g) % (uint64_t)(hi - lo + 1)); }
static double rf(GProg *g) { return (double)(next(g) >> 11) * 0x1p-53; }
static bool chance(GProg *g, double p) { return rf(g) < p; }
#define PICK(g, arr) ((arr)[ri(g, 0, (int)(sizeof(arr) / sizeof *(arr)) - 1)])

/* ---- shapes ---- */

/* the symbols of the shape */
static unsigned syms_of(const GShape *s) {
  unsigned u = 0;
  for (int i = 0; i < s->rank; i++) u |= s->d[i].sy;
  return u;
}

static int64_t static_numel(const GShape *s) {
  int64_t n = 1;
  for (int i = 0; i < s->rank; i++) n *= s->d[i].k;
  return n;
}

static bool shape_ok(const GShape *s) { return s->rank <= G_MAX_RANK && static_numel(s) <= MAX_STATIC_NUMEL; }

/* A symbol on two axes ([N, N], from pairwise products): nnc sizes it with N*N's symbol.  The
 * generator's reshapes and images combine the symbols of a shape into one axis, which such a
 * shape would get wrong (GDim holds each symbol once), so they leave it alone. */
static bool repeats_sym(const GShape *s) {
  unsigned seen = 0;
  for (int i = 0; i < s->rank; i++) {
    if (seen & s->d[i].sy) return true;
    seen |= s->d[i].sy;
  }
  return false;
}

static bool dim_eq(GDim a, GDim b) { return a.k == b.k && a.sy == b.sy; }
static bool dim_one(GDim a) { return a.k == 1 && !a.sy; }

static int floor_div(int a, int b) { return a / b - (a % b != 0 && (a < 0) != (b < 0)); }

/* The value of symbol bit `bit` in the program's run (a derived size from its source's). */
static int sym_value(const GProg *g, int bit) {
  if (bit < G_BASE_SYMS) return (int[]){g->N, g->T, g->H, g->W}[bit];
  const GDerived *r = &g->der[bit - G_BASE_SYMS];
  return floor_div(r->mul * sym_value(g, __builtin_ctz(r->src)) + r->add, r->div);
}

/* The dim's size in the program's run. */
static int dim_max(const GProg *g, GDim d) {
  int v = d.k;
  for (unsigned sy = d.sy; sy; sy &= sy - 1) v *= sym_value(g, __builtin_ctz(sy));
  return v;
}

static bool shape_eq(const GShape *a, const GShape *b) {
  if (a->rank != b->rank) return false;
  for (int i = 0; i < a->rank; i++)
    if (!dim_eq(a->d[i], b->d[i])) return false;
  return true;
}

/* Append to buf[len] at *n (nothing once it is full: a caller checks *n < len). */
static void put(char *buf, size_t len, size_t *n, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void put(char *buf, size_t len, size_t *n, const char *fmt, ...) {
  if (*n >= len) return;
  va_list ap;
  va_start(ap, fmt);
  *n += vsnprintf(buf + *n, len - *n, fmt, ap);
  va_end(ap);
}

/* Symbol bit `bit` as text: its name, or a derived size's formula in a type (`((H + 1) / 2)`)
 * or its witness in a body (`@7.shape[2]`). */
static void sym_text(const GProg *g, int bit, bool body, char *buf, size_t len, size_t *n) {
  const GDerived *r = bit < G_BASE_SYMS ? NULL : &g->der[bit - G_BASE_SYMS];
  if (!r || body) {
    if (r) put(buf, len, n, "@%d.shape[%d]", r->witness, r->axis);
    else put(buf, len, n, "%c", "NTHW"[bit]);
    return;
  }
  put(buf, len, n, "%s", r->div == 1 ? "(" : "((");
  if (r->mul != 1) put(buf, len, n, "%d * ", r->mul);
  sym_text(g, __builtin_ctz(r->src), false, buf, len, n);
  if (r->add) put(buf, len, n, " %c %d", r->add < 0 ? '-' : '+', abs(r->add));
  if (r->div != 1) put(buf, len, n, ") / %d", r->div);
  put(buf, len, n, ")");
}

/* A dim as text, in a type or (body) in a statement. */
static void dim_text(const GProg *g, GDim d, bool body, char *buf, size_t len, size_t *n) {
  size_t start = *n;
  if (d.k != 1 || !d.sy) put(buf, len, n, "%d", d.k);
  for (unsigned sy = d.sy; sy; sy &= sy - 1) {
    if (*n > start) put(buf, len, n, " * ");
    sym_text(g, __builtin_ctz(sy), body, buf, len, n);
  }
}

/* The shape as text; NULL when it does not fit in buf[len]. */
static char *shape_text(const GProg *g, const GShape *s, bool body, char *buf, size_t len) {
  size_t n = 0;
  put(buf, len, &n, "[");
  for (int i = 0; i < s->rank; i++) {
    if (i) put(buf, len, &n, ", ");
    dim_text(g, s->d[i], body, buf, len, &n);
  }
  put(buf, len, &n, "]");
  return n < len ? buf : NULL;
}

/* NumPy broadcasting of the generator's shapes. */
static bool broadcast(const GShape *a, const GShape *b, GShape *out) {
  int r = a->rank > b->rank ? a->rank : b->rank;
  out->rank = r;
  for (int i = 0; i < r; i++) {
    int ia = i - (r - a->rank), ib = i - (r - b->rank);
    GDim da = ia >= 0 ? a->d[ia] : (GDim){1, 0}, db = ib >= 0 ? b->d[ib] : (GDim){1, 0};
    if (dim_eq(da, db) || dim_one(db)) out->d[i] = da;
    else if (dim_one(da)) out->d[i] = db;
    else return false;
  }
  return shape_ok(out);
}

static int small_dim(GProg *g) {
  static const int dims[] = {1, 1, 2, 2, 3, 3, 4, 4, 5, 6, 7, 8};
  return PICK(g, dims);
}

/* A shape of the given rank; with_n: N on one axis (mostly the first), sometimes T too. */
static GShape random_shape(GProg *g, int rank, bool with_n) {
  GShape s = {.rank = rank};
  int n_at = with_n && rank ? (chance(g, 0.7) ? 0 : ri(g, 0, rank - 1)) : -1;
  int t_at = n_at >= 0 && rank > 1 && chance(g, 0.15) ? ri(g, 0, rank - 1) : -1;
  for (int i = 0; i < rank; i++) {
    s.d[i] = (GDim){small_dim(g), 0};
    if (i == n_at) s.d[i] = (GDim){1, SYM_N};
    if (i == t_at) s.d[i] = (GDim){1, s.d[i].sy | SYM_T};
  }
  while (!shape_ok(&s))
    for (int i = 0; i < rank; i++)
      if (!s.d[i].sy && s.d[i].k > 1) s.d[i].k /= 2;
  return s;
}

/* A shape that broadcasts against s: a suffix of its axes, some of them set to 1. */
static GShape broadcastable(GProg *g, const GShape *s) {
  GShape b = {.rank = ri(g, s->rank ? 1 : 0, s->rank)};
  for (int i = 0; i < b.rank; i++) {
    b.d[i] = s->d[s->rank - b.rank + i];
    if (chance(g, 0.3)) b.d[i] = (GDim){1, 0};
  }
  return b;
}

/* ---- values ---- */

static double bound(const GVal *v) { return fmax(fabs(v->lo), fabs(v->hi)); }

static double clampd(double x) { return x > 1e30 ? 1e30 : x < -1e30 ? -1e30 : x; }

static int add_value(GProg *g, GShape s, double lo, double hi, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static int add_value(GProg *g, GShape s, double lo, double hi, const char *fmt, ...) {
  if (g->nv == G_MAX_VALS || !shape_ok(&s)) return -1;
  GVal *v = &g->v[g->nv];
  memset(v, 0, sizeof *v);
  v->s = s;
  v->lo = clampd(fmin(lo, hi));
  v->hi = clampd(fmax(lo, hi));
  v->decl = -1;
  v->entry = g->cur;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(v->expr, sizeof v->expr, fmt, ap);
  va_end(ap);
  if (n >= (int)sizeof v->expr) return -1;
  for (const char *p = v->expr; (p = strchr(p, '@')) != NULL; p++) {
    if (!isdigit((unsigned char)p[1])) continue; /* the matmul operator */
    int j = atoi(p + 1);
    bool seen = false;
    for (int k = 0; k < v->ndeps; k++) seen |= v->deps[k] == j;
    if (!seen && v->ndeps < G_MAX_DEPS) v->deps[v->ndeps++] = j;
  }
  return g->nv++;
}

static int add_input(GProg *g, GShape s, double lo, double hi, bool i64) {
  if (g->nv == G_MAX_VALS || !shape_ok(&s)) return -1;
  GVal *v = &g->v[g->nv];
  memset(v, 0, sizeof *v);
  v->s = s;
  v->lo = lo;
  v->hi = hi;
  v->input = true;
  v->i64 = i64;
  v->decl = -1;
  v->entry = g->cur;
  return g->nv++;
}

static int add_decl(GProg *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int add_decl(GProg *g, const char *fmt, ...) {
  if (g->ndecls == G_MAX_DECLS) return -1;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(g->decls[g->ndecls], sizeof g->decls[0], fmt, ap);
  va_end(ap);
  return g->ndecls++;
}

/* An operand of the current entry: recent values more often (chains), older ones too
 * (several users); f32 unless i64 is allowed. */
static int pick(GProg *g, bool allow_i64) {
  int cand[G_MAX_VALS], n = 0;
  for (int i = 0; i < g->nv; i++)
    if (g->v[i].entry == g->cur && (allow_i64 || !g->v[i].i64)) cand[n++] = i;
  if (!n) return -1;
  return chance(g, 0.55) ? cand[n - 1 - ri(g, 0, n < 3 ? n - 1 : 2)] : cand[ri(g, 0, n - 1)];
}

static bool same_entry(const GProg *g, int j) { return g->v[j].entry == g->cur; }

/* A power of two that brings |x| <= B down to at most 2. */
static double scale_for(double B) { return B > 2 ? exp2(-ceil(log2(B / 2))) : 1.0; }

/* Scale a value back when its bound is large (by a power of two: exact). */
static int tame(GProg *g, int a) {
  if (a < 0 || bound(&g->v[a]) <= BIG) return a;
  double c = scale_for(bound(&g->v[a]));
  int r = add_value(g, g->v[a].s, g->v[a].lo * c, g->v[a].hi * c, "@%d * %.17g", a, c);
  return r < 0 ? a : r;
}

/* A fresh f32 input of shape s. */
static int fresh(GProg *g, GShape s) {
  double lo = chance(g, 0.2) ? 0.1 : -2, hi = chance(g, 0.1) ? 0.5 : 2;
  return add_input(g, s, lo, hi, false);
}

/* ---- elementwise ---- */

static int op_unary(GProg *g, int a) {
  GVal *x = &g->v[a];
  double lo = x->lo, hi = x->hi, B = bound(x);
  GShape s = x->s;
  switch (ri(g, 0, 16)) {
  case 0: return add_value(g, s, -hi, -lo, chance(g, 0.5) ? "-@%d" : "neg(@%d)", a);
  case 1: return add_value(g, s, lo > 0 ? lo : hi < 0 ? -hi : 0, B, "abs(@%d)", a);
  case 2: return add_value(g, s, tanh(lo), tanh(hi), "tanh(@%d)", a);
  case 3: return add_value(g, s, 1 / (1 + exp(-lo)), 1 / (1 + exp(-hi)), "sigmoid(@%d)", a);
  case 4: return add_value(g, s, fmax(lo, 0), fmax(hi, 0), "relu(@%d)", a);
  case 5:
    if (hi > 10) {
      double c = exp2(-ceil(log2(hi / 10)));
      return add_value(g, s, exp(lo * c), exp(hi * c), "exp(@%d * %.17g)", a, c);
    }
    return add_value(g, s, exp(lo), exp(hi), "exp(@%d)", a);
  case 6:
    if (lo > 0.01) return add_value(g, s, log(lo), log(hi), "log(@%d)", a);
    return add_value(g, s, log(0.5), log(B + 0.5), "log(abs(@%d) + 0.5)", a);
  case 7:
    if (lo >= 0) return add_value(g, s, sqrt(lo), sqrt(hi), "sqrt(@%d)", a);
    return add_value(g, s, 0, sqrt(B), "sqrt(abs(@%d))", a);
  case 8: {
    double al = PICK(g, ((double[]){1.0, 0.5, 2.0}));
    return add_value(g, s, fmin(lo, -al), fmax(hi, 0), "elu(@%d, alpha=%g)", a, al);
  }
  case 9: {
    double sl = PICK(g, ((double[]){0.01, 0.2, 0.5}));
    return add_value(g, s, fmin(lo * sl, lo), fmax(hi, hi * sl), "leaky_relu(@%d, %g)", a, sl);
  }
  case 10: {
    double be = PICK(g, ((double[]){1.0, 2.0, 0.5})), th = PICK(g, ((double[]){20.0, 1.0, 5.0}));
    if (hi * be > 30) break;
    return add_value(g, s, 0, fmax(hi, 0) + 1, "softplus(@%d, beta=%g, threshold=%g)", a, be, th);
  }
  case 11: return add_value(g, s, 0, 1, chance(g, 0.5) ? "logical_not(@%d)" : "!@%d", a);
  case 12: return add_value(g, s, 0, B * B, chance(g, 0.5) ? "@%d ** 2" : "@%d * @%d", a, a);
  case 13: {
    double e = PICK(g, ((double[]){0.5, 1.5, -1.0, 3.0}));
    double blo = (lo > 0 ? lo : 0) + 0.5, bhi = B + 0.5;
    if (pow(bhi, fabs(e)) > 1e6) break;
    return add_value(g, s, fmin(pow(blo, e), pow(bhi, e)), fmax(pow(blo, e), pow(bhi, e)),
                     chance(g, 0.5) ? "(abs(@%d) + 0.5) ** %g" : "pow(abs(@%d) + 0.5, %g)", a, e);
  }
  case 14: {
    static const char *acts[] = {"ReLU", "Tanh", "Sigmoid"};
    const char *act = PICK(g, acts);
    int d = add_decl(g, "act%d = %s()", g->ndecls, act);
    if (d < 0) break;
    int r = add_value(g, s, !strcmp(act, "ReLU") ? fmax(lo, 0) : -1, !strcmp(act, "ReLU") ? fmax(hi, 0) : 1,
                      "act%d(@%d)", d, a);
    if (r >= 0) g->v[r].decl = d;
    return r;
  }
  case 15: { /* the functions of issue 17: their range, or [its lo, max(hi, 0) + 1] when hi = 0 */
    static const struct { const char *f; double lo, hi; } acts[] = {
        {"gelu(@%d)", -0.2, 0}, {"gelu(@%d, approximate=\"tanh\")", -0.2, 0}, {"silu(@%d)", -0.3, 0},
        {"mish(@%d)", -0.31, 0}, {"hardswish(@%d)", -0.38, 0}, {"erf(@%d)", -1, 1}, {"hardsigmoid(@%d)", 0, 1},
        {"relu6(@%d)", 0, 6}, {"hardtanh(@%d, -0.5, 1.5)", -0.5, 1.5}, {"selu(@%d)", -1.8, 0},
        {"celu(@%d, 0.5)", -0.5, 0}, {"softsign(@%d)", -1, 1}, {"tanhshrink(@%d)", -2, 0}, {"logsigmoid(@%d)", -3, 0},
        {"clamp(@%d, -0.25, 0.75)", -0.25, 0.75}, {"floor(tanh(@%d) * 4)", -4, 4}, {"sign(@%d)", -1, 1},
        {"expm1(tanh(@%d))", -0.64, 1.72}, {"log1p(sigmoid(@%d))", 0, 0.7},
    };
    int k = ri(g, 0, (int)(sizeof acts / sizeof *acts) - 1);
    return add_value(g, s, acts[k].lo, acts[k].hi ? acts[k].hi : fmax(hi, 0) + 1, acts[k].f, a);
  }
  default: return add_value(g, s, lo * 0.5 - 1, hi * 0.5 + 1, "@%d * 0.5 + %s", a, chance(g, 0.5) ? "1.0" : "-1.0 * -1");
  }
  return -1;
}

/* The second operand of a binary op: an existing value that broadcasts, a fresh input, a
 * literal, a list constant or a fill.  *text receives its expression. */
static bool operand(GProg *g, int a, char *text, size_t len, GShape *shape, double *lo, double *hi) {
  const GVal *x = &g->v[a];
  int kind = ri(g, 0, 9);
  if (kind <= 3) { /* an existing value */
    for (int tries = 0; tries < 8; tries++) {
      int b = pick(g, true);
      GShape r;
      if (b >= 0 && broadcast(&x->s, &g->v[b].s, &r)) {
        snprintf(text, len, "@%d", b);
        *shape = g->v[b].s;
        *lo = g->v[b].lo;
        *hi = g->v[b].hi;
        return true;
      }
    }
  }
  if (kind <= 6) { /* a fresh input */
    GShape s = chance(g, 0.5) ? x->s : broadcastable(g, &x->s);
    bool i64 = chance(g, 0.08);
    int b = i64 ? add_input(g, s, -3, 3, true) : fresh(g, s);
    if (b < 0) return false;
    snprintf(text, len, "@%d", b);
    *shape = s;
    *lo = g->v[b].lo;
    *hi = g->v[b].hi;
    return true;
  }
  double c = PICK(g, ((double[]){0.5, 2.0, -1.5, 3.0, 0.25, 1.0, 0.0}));
  *lo = *hi = c;
  if (kind == 7 || !x->s.rank) { /* a literal */
    *shape = (GShape){0};
    snprintf(text, len, "%g", c);
    return true;
  }
  GDim last = x->s.d[x->s.rank - 1];
  if (kind == 8 && !last.sy && last.k <= 8) { /* a list constant along the last axis */
    size_t n = snprintf(text, len, "[");
    for (int i = 0; i < last.k; i++) {
      double e = ri(g, -8, 8) * 0.25;
      *lo = fmin(*lo, e);
      *hi = fmax(*hi, e);
      n += snprintf(text + n, len - n, "%s%g", i ? ", " : "", e);
    }
    snprintf(text + n, len - n, "]");
    *shape = (GShape){1, {last}};
    return true;
  }
  /* a fill */
  GShape s = broadcastable(g, &x->s);
  char st[SHAPE_TEXT];
  if (!shape_text(g, &s, true, st, sizeof st)) return false;
  int w = c == 0 ? snprintf(text, len, "zeros(%s)", st)
          : c == 1 ? snprintf(text, len, "ones(%s)", st) : snprintf(text, len, "full(%s, %g)", st, c);
  *shape = s;
  return w < (int)len;
}

static void interval_mul(double alo, double ahi, double blo, double bhi, double *lo, double *hi) {
  double p[4] = {alo * blo, alo * bhi, ahi * blo, ahi * bhi};
  *lo = fmin(fmin(p[0], p[1]), fmin(p[2], p[3]));
  *hi = fmax(fmax(p[0], p[1]), fmax(p[2], p[3]));
}

static int op_binary(GProg *g, int a) {
  char b[160];
  GShape bs, r;
  double blo, bhi, lo, hi;
  if (!operand(g, a, b, sizeof b, &bs, &blo, &bhi) || !broadcast(&g->v[a].s, &bs, &r)) return -1;
  const GVal *x = &g->v[a];
  char A[16];
  snprintf(A, sizeof A, "@%d", a);
  bool swap = chance(g, 0.3);
  const char *l = swap ? b : A, *rr = swap ? A : b;
  bool both = l[0] == '@' && rr[0] == '@';
  double llo = swap ? blo : x->lo, lhi = swap ? bhi : x->hi, rlo = swap ? x->lo : blo, rhi = swap ? x->hi : bhi;
  switch (ri(g, 0, 11)) {
  case 0: return add_value(g, r, llo + rlo, lhi + rhi, "%s + %s", l, rr);
  case 1: return add_value(g, r, llo - rhi, lhi - rlo, "%s - %s", l, rr);
  case 2:
    interval_mul(llo, lhi, rlo, rhi, &lo, &hi);
    return add_value(g, r, lo, hi, "%s * %s", l, rr);
  case 3: {
    double dhi = fmax(fabs(rlo), fabs(rhi)) + 0.5;
    interval_mul(llo, lhi, 1 / dhi, 2, &lo, &hi);
    if (rlo > 0.4) {
      interval_mul(llo, lhi, 1 / rhi, 1 / rlo, &lo, &hi);
      return add_value(g, r, lo, hi, "%s / %s", l, rr);
    }
    return add_value(g, r, lo, hi, "%s / (abs(%s) + 0.5)", l, rr);
  }
  /* max(a, b) is elementwise only when both are tensors (else it is a reduction) */
  case 4: return add_value(g, r, fmax(llo, rlo), fmax(lhi, rhi), both && chance(g, 0.3) ? "max(%s, %s)" : "maximum(%s, %s)", l, rr);
  case 5: return add_value(g, r, fmin(llo, rlo), fmin(lhi, rhi), both && chance(g, 0.3) ? "min(%s, %s)" : "minimum(%s, %s)", l, rr);
  case 6: {
    static const char *cmp[] = {"<", "<=", ">", ">=", "==", "!="};
    return add_value(g, r, 0, 1, "%s %s %s", l, PICK(g, cmp), rr);
  }
  case 7: return add_value(g, r, 0, 1, "%s %s %s", l, chance(g, 0.5) ? "&&" : "||", rr);
  case 8: { /* where(cond, a, b) */
    static const char *cmp[] = {"<", ">", ">="};
    return add_value(g, r, fmin(llo, rlo), fmax(lhi, rhi), "where(%s %s 0.25, %s, %s)", A, PICK(g, cmp), l, rr);
  }
  case 9: { /* a positive base to a small power */
    double e = PICK(g, ((double[]){2.0, 0.5, -1.0, 1.5}));
    double Bb = fmax(fabs(llo), fabs(lhi)) + 0.5;
    if (pow(Bb, fabs(e)) > 1e6) return -1;
    double p1 = pow(0.5, e), p2 = pow(Bb, e);
    return add_value(g, r, fmin(p1, p2) + rlo, fmax(p1, p2) + rhi, "(abs(%s) + 0.5) ** %g + %s", l, e, rr);
  }
  default:
    interval_mul(llo, lhi, rlo, rhi, &lo, &hi);
    return add_value(g, r, lo + llo, hi + lhi, "%s * %s + %s", l, rr, l);
  }
}

/* ---- reductions and softmax ---- */

static int op_reduce(GProg *g, int a) {
  const GVal *x = &g->v[a];
  int rank = x->s.rank;
  if (rank == 0) return -1;
  uint32_t axes = 0;
  int nax = chance(g, 0.2) ? rank : ri(g, 1, rank);
  while (__builtin_popcount(axes) < nax) axes |= 1u << ri(g, 0, rank - 1);
  bool keep = chance(g, 0.4), all = axes == (1u << rank) - 1 && !keep && chance(g, 0.5);
  double n = 1;
  GShape s = {0};
  for (int i = 0; i < rank; i++) {
    if (axes & (1u << i)) n *= dim_max(g, x->s.d[i]);
    if (!(axes & (1u << i))) s.d[s.rank++] = x->s.d[i];
    else if (keep) s.d[s.rank++] = (GDim){1, 0};
  }
  char ax[64];
  if (__builtin_popcount(axes) == 1) {
    int i = __builtin_ctz(axes);
    snprintf(ax, sizeof ax, "%d", chance(g, 0.3) ? i - rank : i);
  } else {
    size_t k = snprintf(ax, sizeof ax, "[");
    for (int i = 0, first = 1; i < rank; i++)
      if (axes & (1u << i)) k += snprintf(ax + k, sizeof ax - k, "%s%d", first ? "" : ", ", i), first = 0;
    snprintf(ax + k, sizeof ax - k, "]");
  }
  static const char *ops[] = {"sum", "mean", "amax", "amin", "max", "min"};
  const char *op = PICK(g, ops);
  bool is_sum = !strcmp(op, "sum");
  double lo = is_sum ? fmin(x->lo * n, x->lo) : x->lo, hi = is_sum ? fmax(x->hi * n, x->hi) : x->hi;
  if ((!strcmp(op, "max") || !strcmp(op, "min")) && __builtin_popcount(axes) != 1) op = "amax";
  if (all) return add_value(g, s, lo, hi, "%s(@%d)", op, a);
  const char *kw = chance(g, 0.5) ? "axis" : "dim";
  if (!strcmp(op, "max") || !strcmp(op, "min"))
    return keep ? add_value(g, s, lo, hi, "%s(@%d, %s, keepdim=true)", op, a, ax)
                : add_value(g, s, lo, hi, "%s(@%d, %s)", op, a, ax);
  return add_value(g, s, lo, hi, "%s(@%d, %s=%s%s)", op, a, kw, ax, keep ? ", keepdim=true" : "");
}

static int op_softmax(GProg *g, int a) {
  const GVal *x = &g->v[a];
  int rank = x->s.rank;
  if (rank == 0) return -1;
  int ax = ri(g, 0, rank - 1);
  int axv = chance(g, 0.4) ? ax - rank : ax;
  double n = dim_max(g, x->s.d[ax]), B = bound(x);
  char temp[32] = "";
  if (chance(g, 0.3)) snprintf(temp, sizeof temp, ", temperature=%g", PICK(g, ((double[]){0.5, 2.0, 0.1})));
  switch (ri(g, 0, 2)) {
  case 0: return add_value(g, x->s, 0, 1, "softmax(@%d, %s=%d%s)", a, chance(g, 0.5) ? "axis" : "dim", axv, temp);
  case 1: return add_value(g, x->s, -2 * B * 10 - log(n), 0, "log_softmax(@%d, axis=%d%s)", a, axv, temp);
  default: {
    bool keep = chance(g, 0.3);
    GShape s = {0};
    for (int i = 0; i < rank; i++)
      if (i != ax) s.d[s.rank++] = x->s.d[i];
      else if (keep) s.d[s.rank++] = (GDim){1, 0};
    return add_value(g, s, x->lo, x->hi + log(n), keep ? "logsumexp(@%d, %d, keepdim=true)" : "logsumexp(@%d, %d)", a, axv);
  }
  }
}

/* ---- matrix products ---- */

static int linear(GProg *g, int a) {
  const GVal *x = &g->v[a];
  GDim K = x->s.d[x->s.rank - 1];
  if (K.sy || K.k > 64) return -1;
  int M = small_dim(g) + ri(g, 0, 1) * 8;
  GShape s = x->s;
  double B = bound(x) * sqrt((double)K.k) + 1;
  int d = -1;
  /* a layer declared before (maybe by the other entry): shared weights, an equal kernel */
  for (int k = 0; k < g->ndecls && chance(g, 0.5); k++)
    if (g->decl_in[k] == K.k && d < 0) d = k;
  if (d >= 0) {
    M = g->decl_out[d];
    B = B * sqrt(16.0 * 8) + 1;
    s.d[s.rank - 1] = (GDim){M, 0};
    bool res = M == K.k && chance(g, 0.5);
    int r = add_value(g, s, -B - (res ? bound(x) : 0), B + (res ? bound(x) : 0),
                      res ? "%s%d(@%d) + @%d" : "%s%d(@%d)", g->decls[d][0] == 's' ? "s" : "l", d, a, a);
    if (r >= 0) g->v[r].decl = d;
    return r;
  }
  if (chance(g, 0.25)) M = K.k;  /* a residual block: act(l(x) + x) */
  s.d[s.rank - 1] = (GDim){M, 0};
  if (chance(g, 0.3)) {
    int H = small_dim(g) * 4;
    static const char *acts[] = {"ReLU()", "Tanh()", "ELU()", "Sigmoid()", "LeakyReLU(0.1)"};
    d = add_decl(g, "s%d = Sequential(Linear(%d, %d), %s, Linear(%d, %d))", g->ndecls, K.k, H, PICK(g, acts), H, M);
    B = B * sqrt((double)H) + 1;
    if (d < 0) return -1;
    g->decl_in[d] = K.k;
    g->decl_out[d] = M;
    int r = add_value(g, s, -B, B, "s%d(@%d)", d, a);
    if (r >= 0) g->v[r].decl = d;
    return r;
  }
  d = add_decl(g, "l%d = Linear(%d, %d%s)", g->ndecls, K.k, M, chance(g, 0.2) ? ", bias=false" : "");
  if (d < 0) return -1;
  g->decl_in[d] = K.k;
  g->decl_out[d] = M;
  int r;
  if (M == K.k && chance(g, 0.7))
    r = add_value(g, s, fmin(0, -B - bound(x)), B + bound(x), chance(g, 0.5) ? "relu(l%d(@%d) + @%d)" : "l%d(@%d) + @%d", d, a, a);
  else
    r = add_value(g, s, -B, B, "l%d(@%d)", d, a);
  if (r >= 0) g->v[r].decl = d;
  return r;
}

static int op_matmul(GProg *g, int a) {
  const GVal *x = &g->v[a];
  if (x->i64 || x->s.rank == 0) return -1;
  if (x->s.rank == 1 || chance(g, 0.3)) return linear(g, a);
  int r = x->s.rank;
  GDim R = x->s.d[r - 2], K = x->s.d[r - 1], M = {small_dim(g) + ri(g, 0, 1) * 4, 0};
  double Kmax = dim_max(g, K), Rmax = dim_max(g, R);
  GShape out = x->s, w = {.rank = 2};
  int form = ri(g, 0, 5);
  if (form == 5) { /* pairwise products x @ y^T, y of x's shape: [.., R, R], [N, N] when R is N */
    int yi = -1;
    if (Rmax > 64) return -1;
    for (int j = 0; j < g->nv && yi < 0; j++)
      if (same_entry(g, j) && !g->v[j].i64 && shape_eq(&g->v[j].s, &x->s) && chance(g, 0.5)) yi = j;
    if (yi < 0) yi = fresh(g, x->s);
    if (yi < 0) return -1;
    out.d[r - 1] = R;
    double B = Kmax * bound(x) * bound(&g->v[yi]);
    return add_value(g, out, -B, B, "@%d @ transpose(@%d, -1, -2)", a, yi);
  }
  if (form == 0 || form == 1) { /* x @ w, x @ w.T */
    out.d[r - 1] = M;
    w.d[0] = form ? M : K;
    w.d[1] = form ? K : M;
    if (r == 3 && chance(g, 0.5)) { /* batched right operand */
      w.rank = 3;
      w.d[2] = w.d[1];
      w.d[1] = w.d[0];
      w.d[0] = x->s.d[0];
    }
    int wi = add_input(g, w, -1, 1, false);
    if (wi < 0) return -1;
    if (form == 0) return add_value(g, out, -Kmax * bound(x), Kmax * bound(x), chance(g, 0.5) ? "@%d @ @%d" : "matmul(@%d, @%d)", a, wi);
    return add_value(g, out, -Kmax * bound(x), Kmax * bound(x),
                     w.rank == 2 && chance(g, 0.5) ? "@%d @ @%d.T" : "@%d @ transpose(@%d, -1, -2)", a, wi);
  }
  if (form == 2) { /* w @ x */
    out.d[r - 2] = M;
    w.d[0] = M;
    w.d[1] = R;
    int wi = add_input(g, w, -1, 1, false);
    if (wi < 0) return -1;
    return add_value(g, out, -Rmax * bound(x), Rmax * bound(x), "@%d @ @%d", wi, a);
  }
  if (form == 3) { /* x^T @ y, contracting over R (N when R is symbolic) */
    out.d[r - 2] = K;
    out.d[r - 1] = M;
    GShape ys = x->s;
    ys.d[r - 1] = M;
    int yi = -1;
    for (int j = 0; j < g->nv && yi < 0; j++)
      if (same_entry(g, j) && !g->v[j].i64 && shape_eq(&g->v[j].s, &ys) && j != a && chance(g, 0.5)) yi = j;
    if (yi < 0) yi = fresh(g, ys);
    if (yi < 0) return -1;
    double B = Rmax * bound(x) * bound(&g->v[yi]);
    if (r == 2 && chance(g, 0.5)) return add_value(g, out, -B, B, "@%d.T @ @%d", a, yi);
    return add_value(g, out, -B, B, "transpose(@%d, %d, %d) @ @%d", a, r - 2, r - 1, yi);
  }
  /* x @ an existing value whose leading axis is K */
  for (int j = 0; j < g->nv; j++) {
    const GVal *y = &g->v[j];
    if (!same_entry(g, j) || y->i64 || y->s.rank != 2 || !dim_eq(y->s.d[0], K)) continue;
    out.d[r - 1] = y->s.d[1];
    double B = Kmax * bound(x) * bound(y);
    return add_value(g, out, -B, B, "@%d @ @%d", a, j);
  }
  return -1;
}

/* ---- movement ---- */

static int op_reshape(GProg *g, int a) {
  const GVal *x = &g->v[a];
  if (repeats_sym(&x->s)) return -1;
  int64_t S = static_numel(&x->s);
  unsigned sy = syms_of(&x->s);
  /* split S into factors */
  int f[16], nf = 0;
  for (int64_t p = 2, t = S; t > 1 && nf < 16; p++)
    while (t % p == 0 && nf < 16) f[nf++] = (int)p, t /= p;
  GShape s = {.rank = ri(g, 1, G_MAX_RANK)};
  if (!sy && nf == 0) s.rank = ri(g, 0, 2);
  for (int i = 0; i < s.rank; i++) s.d[i] = (GDim){1, 0};
  for (int i = 0; i < nf; i++) s.d[ri(g, 0, s.rank ? s.rank - 1 : 0)].k *= f[i];
  for (unsigned b = sy; b; b &= b - 1) s.d[ri(g, 0, s.rank - 1)].sy |= b & -b; /* each symbol anywhere, maybe together */
  if (s.rank == 0 && static_numel(&x->s) != 1) return -1;
  char st[SHAPE_TEXT];
  if (!shape_text(g, &s, true, st, sizeof st)) return -1;
  return add_value(g, s, x->lo, x->hi, chance(g, 0.8) ? "reshape(@%d, %s)" : "view(@%d, %s)", a, st);
}

static int op_permute(GProg *g, int a) {
  const GVal *x = &g->v[a];
  int r = x->s.rank;
  if (r < 2) return -1;
  if (r == 2 && chance(g, 0.3)) return add_value(g, (GShape){2, {x->s.d[1], x->s.d[0]}}, x->lo, x->hi, "@%d.T", a);
  if (chance(g, 0.4)) {
    int i = ri(g, 0, r - 1), j = ri(g, 0, r - 1);
    GShape s = x->s;
    s.d[i] = x->s.d[j];
    s.d[j] = x->s.d[i];
    return add_value(g, s, x->lo, x->hi, "transpose(@%d, %d, %d)", a, i - (chance(g, 0.3) ? r : 0), j);
  }
  int p[G_MAX_RANK];
  for (int i = 0; i < r; i++) p[i] = i;
  for (int i = r - 1; i > 0; i--) {
    int j = ri(g, 0, i), t = p[i];
    p[i] = p[j];
    p[j] = t;
  }
  GShape s = {.rank = r};
  char pt[64];
  size_t n = snprintf(pt, sizeof pt, "[");
  for (int i = 0; i < r; i++) {
    s.d[i] = x->s.d[p[i]];
    n += snprintf(pt + n, sizeof pt - n, "%s%d", i ? ", " : "", p[i]);
  }
  snprintf(pt + n, sizeof pt - n, "]");
  return add_value(g, s, x->lo, x->hi, "permute(@%d, %s)", a, pt);
}

/* A static axis of size >= min, or -1. */
static int static_axis(GProg *g, const GShape *s, int min) {
  int cand[G_MAX_RANK], n = 0;
  for (int i = 0; i < s->rank; i++)
    if (!s->d[i].sy && s->d[i].k >= min) cand[n++] = i;
  return n ? cand[ri(g, 0, n - 1)] : -1;
}

static int op_slice(GProg *g, int a) {
  const GVal *x = &g->v[a];
  int ax = static_axis(g, &x->s, 2);
  if (ax < 0) return -1;
  int len = x->s.d[ax].k;
  char sub[96] = "";
  size_t n = 0;
  for (int i = 0; i < ax; i++) n += snprintf(sub + n, sizeof sub - n, ":, ");
  GShape s = x->s;
  if (chance(g, 0.25)) { /* an integer index drops the axis */
    int i = ri(g, 0, len - 1);
    snprintf(sub + n, sizeof sub - n, "%d", chance(g, 0.3) ? i - len : i);
    for (int k = ax; k < s.rank - 1; k++) s.d[k] = s.d[k + 1];
    s.rank--;
  } else {
    int start = ri(g, 0, len - 1), stop = ri(g, start + 1, len), step = chance(g, 0.3) ? ri(g, 2, 3) : 1;
    char st[16] = "", sp[16] = "";
    if (start || chance(g, 0.3)) snprintf(st, sizeof st, "%d", chance(g, 0.3) ? start - len : start);
    if (stop != len || chance(g, 0.3)) snprintf(sp, sizeof sp, "%d", chance(g, 0.3) && stop < len ? stop - len : stop);
    if (step > 1) snprintf(sub + n, sizeof sub - n, "%s:%s:%d", st, sp, step);
    else snprintf(sub + n, sizeof sub - n, "%s:%s", st, sp);
    s.d[ax].k = (stop - start + step - 1) / step;
  }
  return add_value(g, s, x->lo, x->hi, "@%d[%s]", a, sub);
}

/* A sum over a static axis of size 0: an empty slice of x (`x[:, 2:2]`), summed over that
 * axis (and maybe others): zeros, as in torch.  The slice's element 0 is x's real data, so
 * a kernel that reads "element 0" of the empty axis shows.  Not amax/amin (an error) nor
 * mean (NaN, which would spread through the rest of the program). */
static int op_empty_sum(GProg *g, int a) {
  const GVal *x = &g->v[a];
  int ax = static_axis(g, &x->s, 1);
  if (ax < 0) return -1;
  int len = x->s.d[ax].k, at = ri(g, 0, len);
  char sub[96] = "";
  size_t n = 0;
  for (int i = 0; i < ax; i++) n += snprintf(sub + n, sizeof sub - n, ":, ");
  snprintf(sub + n, sizeof sub - n, "%d:%d", at, at);
  uint32_t axes = 1u << ax;
  if (chance(g, 0.3)) axes |= 1u << ri(g, 0, x->s.rank - 1);
  bool keep = chance(g, 0.4);
  GShape s = {0};
  char ax_text[64];
  size_t k = snprintf(ax_text, sizeof ax_text, "[");
  for (int i = 0, first = 1; i < x->s.rank; i++) {
    if (!(axes & (1u << i))) s.d[s.rank++] = x->s.d[i];
    else {
      if (keep) s.d[s.rank++] = (GDim){1, 0};
      k += snprintf(ax_text + k, sizeof ax_text - k, "%s%d", first ? "" : ", ", i), first = 0;
    }
  }
  snprintf(ax_text + k, sizeof ax_text - k, "]");
  if (axes == 1u << ax) snprintf(ax_text, sizeof ax_text, "%d", ax);
  return add_value(g, s, 0, 0, "sum(@%d[%s], axis=%s%s)", a, sub, ax_text, keep ? ", keepdim=true" : "");
}

static int op_cat(GProg *g, int a) {
  const GVal *x = &g->v[a];
  if (x->s.rank == 0) return -1;
  int ax = ri(g, 0, x->s.rank - 1);
  GShape bs = x->s, s = x->s;
  int b;
  if (x->s.d[ax].sy || chance(g, 0.3)) {
    b = a; /* cat([x, x]) (along N: 2 * N) */
  } else {
    bs.d[ax].k = small_dim(g);
    b = x->i64 ? add_input(g, bs, -3, 3, true) : fresh(g, bs);
    if (b < 0) return -1;
  }
  s.d[ax].k = x->s.d[ax].k + bs.d[ax].k;
  bool swap = chance(g, 0.5);
  return add_value(g, s, fmin(x->lo, g->v[b].lo), fmax(x->hi, g->v[b].hi), "%s([@%d, @%d], %s=%d)",
                   chance(g, 0.8) ? "cat" : "concat", swap ? b : a, swap ? a : b, chance(g, 0.5) ? "axis" : "dim",
                   chance(g, 0.3) ? ax - x->s.rank : ax);
}

static int op_split(GProg *g, int a) {
  const GVal *x = &g->v[a];
  int ax = static_axis(g, &x->s, 2);
  if (ax < 0) return -1;
  int len = x->s.d[ax].k;
  GShape s = x->s;
  if (chance(g, 0.5)) { /* split(x, size): equal chunks, the last one shorter */
    int size = ri(g, 1, len - 1), parts = (len + size - 1) / size, p = ri(g, 0, parts - 1);
    s.d[ax].k = p == parts - 1 ? len - size * (parts - 1) : size;
    return add_value(g, s, x->lo, x->hi, "split(@%d, %d, axis=%d)[%d]", a, size, ax, p);
  }
  int first = ri(g, 1, len - 1), p = ri(g, 0, 1);
  s.d[ax].k = p ? len - first : first;
  return add_value(g, s, x->lo, x->hi, "split(@%d, [%d, %d], dim=%d)[%d]", a, first, len - first, ax, p);
}

static int op_squeeze(GProg *g, int a) {
  const GVal *x = &g->v[a];
  GShape s = x->s;
  int r = s.rank;
  switch (ri(g, 0, 2)) {
  case 0: { /* unsqueeze */
    if (r == G_MAX_RANK) return -1;
    int ax = ri(g, 0, r);
    for (int k = r; k > ax; k--) s.d[k] = s.d[k - 1];
    s.d[ax] = (GDim){1, 0};
    s.rank++;
    return add_value(g, s, x->lo, x->hi, "unsqueeze(@%d, %d)", a, chance(g, 0.3) ? ax - r - 1 : ax);
  }
  case 1: { /* squeeze one axis of size 1 */
    int ax = -1;
    for (int i = 0; i < r; i++)
      if (dim_one(s.d[i])) ax = i;
    if (ax < 0) return -1;
    for (int k = ax; k < r - 1; k++) s.d[k] = s.d[k + 1];
    s.rank--;
    return add_value(g, s, x->lo, x->hi, "squeeze(@%d, %d)", a, ax);
  }
  default: { /* flatten(x, start, end) */
    if (r < 2 || repeats_sym(&s)) return -1;
    int st = ri(g, 0, r - 2), en = ri(g, st + 1, r - 1);
    GShape o = {0};
    for (int i = 0; i < r; i++) {
      if (i <= st || i > en) {
        o.d[o.rank++] = s.d[i];
        continue;
      }
      o.d[o.rank - 1].k *= s.d[i].k;
      o.d[o.rank - 1].sy |= s.d[i].sy;
    }
    if (st == 0 && en == r - 1 && chance(g, 0.5)) return add_value(g, o, x->lo, x->hi, "flatten(@%d)", a);
    return add_value(g, o, x->lo, x->hi, "flatten(@%d, %d, %d)", a, st, en);
  }
  }
}

/* ---- patterns: algebraic identities, normalization, long chains, repeated structure ---- */

/* What constant folding simplifies (x + 0, x * 1, x ** 2, ...) and near misses it must not
 * (0 - x, fills that broadcast to a larger shape, x ** 1). */
static int op_identity(GProg *g, int a) {
  const GVal *x = &g->v[a];
  double lo = x->lo, hi = x->hi, B = bound(x);
  GShape s = x->s, big = x->s;
  if (big.rank < G_MAX_RANK && chance(g, 0.3)) { /* a fill with an extra leading axis */
    for (int k = big.rank; k > 0; k--) big.d[k] = big.d[k - 1];
    big.d[0] = (GDim){ri(g, 2, 3), 0};
    big.rank++;
  }
  char st[SHAPE_TEXT];
  if (!shape_text(g, &big, true, st, sizeof st)) return -1;
  switch (ri(g, 0, 11)) {
  case 0: return add_value(g, s, lo, hi, "@%d + 0.0", a);
  case 1: return add_value(g, s, lo, hi, "0 + @%d", a);
  case 2: return add_value(g, s, lo, hi, "@%d - 0", a);
  case 3: return add_value(g, s, -hi, -lo, "0.0 - @%d", a);
  case 4: return add_value(g, s, lo, hi, "@%d * 1.0", a);
  case 5: return add_value(g, s, lo, hi, "1 * @%d", a);
  case 6: return add_value(g, s, lo, hi, "@%d / 1", a);
  case 7: return add_value(g, s, fmin(lo, 1), fmax(hi, 1), "1.0 / (abs(@%d) + 1.0)", a);
  case 8: return add_value(g, s, 0, B * B, "@%d ** 2.0", a);
  case 9: return add_value(g, s, lo, hi, "@%d ** 1", a);
  case 10: return add_value(g, big, lo, hi, "@%d + zeros(%.*s)", a, (int)strlen(st) - 2, st + 1);
  default: return add_value(g, big, lo, hi, "ones(%.*s) * @%d", (int)strlen(st) - 2, st + 1, a);
  }
}

/* Layer-norm and softmax written out: a reduction whose result broadcasts back. */
static int op_norm(GProg *g, int a) {
  const GVal *x = &g->v[a];
  int r = x->s.rank;
  if (r == 0) return -1;
  int ax = chance(g, 0.6) ? r - 1 : ri(g, 0, r - 1);
  double n = dim_max(g, x->s.d[ax]);
  char m[64];
  snprintf(m, sizeof m, "mean(@%d, axis=%d, keepdim=true)", a, ax);
  if (chance(g, 0.5))
    return add_value(g, x->s, -sqrt(n) - 1, sqrt(n) + 1, "(@%d - %s) / sqrt(mean((@%d - %s) ** 2, axis=%d, keepdim=true) + 1e-05)",
                     a, m, a, m, ax);
  return add_value(g, x->s, 0, 1, "exp(@%d - amax(@%d, %d, keepdim=true)) / sum(exp(@%d - amax(@%d, %d, keepdim=true)), %d, keepdim=true)",
                   a, a, ax, a, a, ax, ax);
}

/* One statement of nested elementwise ops, deeper than the fuser inlines at once. */
static int op_chain(GProg *g, int a) {
  const GVal *x = &g->v[a];
  int depth = PICK(g, ((int[]){6, 20, 40, 60}));
  char buf[1024], tmp[1100];
  snprintf(buf, sizeof buf, "tanh(@%d)", a);
  double lo = -1, hi = 1;
  for (int i = 0; i < depth; i++) {
    switch (ri(g, 0, 4)) {
    case 0: snprintf(tmp, sizeof tmp, "(%s * 0.75 + 0.125)", buf); lo = lo * 0.75 + 0.125; hi = hi * 0.75 + 0.125; break;
    case 1: snprintf(tmp, sizeof tmp, "tanh(%s)", buf); lo = tanh(lo); hi = tanh(hi); break;
    case 2: snprintf(tmp, sizeof tmp, "maximum(%s, -0.5)", buf); lo = fmax(lo, -0.5); hi = fmax(hi, -0.5); break;
    case 3: snprintf(tmp, sizeof tmp, "(%s - sigmoid(@%d))", buf, a); lo -= 1; hi -= 0; break;
    default: snprintf(tmp, sizeof tmp, "abs(%s)", buf); hi = fmax(fabs(lo), fabs(hi)); lo = 0; break;
    }
    if (strlen(tmp) >= sizeof x->expr - 8) break;
    memcpy(buf, tmp, sizeof buf - 1);
  }
  return add_value(g, x->s, lo, hi, "%s", buf);
}

/* The last statement again with one input operand replaced by a fresh input of the same
 * shape and range: a structurally equal kernel over other buffers. */
static int op_dup(GProg *g, int a) {
  int j = g->nv - 1;
  while (j >= 0 && (g->v[j].input || !same_entry(g, j))) j--;
  if (j < 0) return -1;
  GVal v = g->v[j];
  for (int k = 0; k < v.ndeps; k++) {
    const GVal *d = &g->v[v.deps[k]];
    if (!d->input) continue;
    int c = add_input(g, d->s, d->lo, d->hi, d->i64);
    if (c < 0) return -1;
    char from[16], to[16], out[1024];
    snprintf(from, sizeof from, "@%d", v.deps[k]);
    snprintf(to, sizeof to, "@%d", c);
    size_t n = 0;
    for (const char *p = v.expr; *p && n < sizeof out - 16;) {
      if (!strncmp(p, from, strlen(from)) && !isdigit((unsigned char)p[strlen(from)])) {
        n += snprintf(out + n, sizeof out - n, "%s", to);
        p += strlen(from);
      } else {
        out[n++] = *p++;
      }
    }
    out[n] = 0;
    int r = add_value(g, v.s, v.lo, v.hi, "%s", out);
    if (r >= 0) g->v[r].decl = v.decl, g->v[r].i64 = v.i64; /* a moved i64 input stays i64 */
    return r;
  }
  return -1;
}

/* ---- images [B, C, H, W]: convolution, pooling, normalization layers, resampling ---- */

/* An image's height or width: static, or k times one symbol that is H, W or a size derived
 * from them (N may be 0 and T is a sequence's). */
static bool spatial_dim(GDim d) { return !d.sy || (!(d.sy & (d.sy - 1)) && !(d.sy & (SYM_N | SYM_T))); }

/* The size floor((mul * in + add) / div) of a layer's output axis `axis`, `in` a spatial_dim:
 * static, a multiple of in's symbol, or a derived size whose witness is the value added
 * next.  Normalised as nnc's rules are (symdim.c), and the same rule in this entry is the
 * same symbol; false when it is below 1 at the program's sizes (or no symbol is left).  As
 * mul >= 1 and div >= 1, a larger run-time size keeps it at least 1. */
static bool layer_size(GProg *g, GDim in, int mul, int add, int div, int axis, GDim *out) {
  int v = floor_div(mul * dim_max(g, in) + add, div);
  if (v < 1) return false;
  if (!in.sy) {
    *out = (GDim){v, 0};
    return true;
  }
  mul *= in.k;
  int c = mul;
  for (int t = abs(add); t;) { int r = c % t; c = t; t = r; }
  for (int t = div; t;) { int r = c % t; c = t; t = r; }
  mul /= c, add /= c, div /= c;
  if (!add && div == 1) {
    *out = (GDim){mul, in.sy};
    return true;
  }
  GDerived r = {in.sy, mul, add, div, g->nv, axis};
  for (int i = 0; i < g->nder; i++) {
    const GDerived *o = &g->der[i];
    if (o->src == r.src && o->mul == mul && o->add == add && o->div == div && o->witness < g->nv &&
        g->v[o->witness].entry == g->cur) {
      *out = (GDim){1, 1u << (G_BASE_SYMS + i)};
      return true;
    }
  }
  if (g->nder == G_MAX_DERIVED) return false;
  g->der[g->nder] = r;
  *out = (GDim){1, 1u << (G_BASE_SYMS + g->nder++)};
  return true;
}

/* `a` as an image: itself if of rank 4 with static C and spatial H, W; else a reshape of it
 * (N, if any, leading) when its static size factors as C x H x W with H, W >= 2; else a
 * fresh input image, of symbolic H or W at times. */
static int image(GProg *g, int a) {
  const GVal *x = &g->v[a];
  if (x->s.rank == 4 && !x->s.d[1].sy && spatial_dim(x->s.d[2]) && spatial_dim(x->s.d[3])) return a;
  int64_t S = static_numel(&x->s);
  unsigned sy = syms_of(&x->s);
  bool hasn = sy != 0;
  for (int tries = 0; tries < 8 && !x->i64 && !repeats_sym(&x->s) && chance(g, 0.7); tries++) {
    int H = ri(g, 2, 6), W = ri(g, 2, 6);
    if (S % (H * W)) continue;
    int64_t rest = S / (H * W);
    int C = hasn ? (int)rest : ri(g, 1, 3);
    if (hasn ? C > 16 : rest % C) continue;
    GDim B = hasn ? (GDim){1, sy} : (GDim){(int)(rest / C), 0};
    if (hasn && (x->s.d[0].sy != sy || x->s.d[0].k != 1)) continue; /* keep the batch in front */
    GShape s = {4, {B, {C, 0}, {H, 0}, {W, 0}}};
    char st[SHAPE_TEXT];
    if (!shape_text(g, &s, true, st, sizeof st)) return -1;
    return add_value(g, s, x->lo, x->hi, "reshape(@%d, %s)", a, st);
  }
  GShape s = {4, {chance(g, 0.8) ? (GDim){1, SYM_N} : (GDim){ri(g, 1, 2), 0}, {ri(g, 1, 6), 0},
                  chance(g, 0.6) ? (GDim){1, SYM_H} : (GDim){ri(g, 3, 9), 0},
                  chance(g, 0.6) ? (GDim){1, SYM_W} : (GDim){ri(g, 3, 9), 0}}};
  return fresh(g, s);
}

static int declare_layer(GProg *g, int a, GShape s, double lo, double hi, const char *layer) {
  int d = add_decl(g, "m%d = %s", g->ndecls, layer);
  if (d < 0) return -1;
  int r = add_value(g, s, lo, hi, "m%d(@%d)", d, a);
  if (r >= 0) g->v[r].decl = d;
  return r;
}

static int op_conv(GProg *g, int a) {
  if ((a = image(g, a)) < 0) return -1;
  const GVal *x = &g->v[a];
  int C = x->s.d[1].k;
  GDim H = x->s.d[2], W = x->s.d[3];
  int k = ri(g, 1, 3), st = chance(g, 0.3) ? 2 : 1, d = chance(g, 0.15) ? 2 : 1, p = ri(g, 0, k - 1);
  int O = ri(g, 1, 8), grp = 1;
  if (C % 2 == 0 && O % 2 == 0 && chance(g, 0.3)) grp = 2;
  if (chance(g, 0.1)) grp = C, O = C * ri(g, 1, 2); /* depthwise */
  double fan = (double)C / grp * k * k, B = bound(x) * sqrt(fan) + 1;
  GShape s = x->s;
  char layer[160];
  if (chance(g, 0.25)) { /* transposed */
    int op = st > 1 || d > 1 ? ri(g, 0, (st > d ? st : d) - 1) : 0;
    int add = -st - 2 * p + d * (k - 1) + op + 1; /* (H - 1) * st - 2p + d(k - 1) + op + 1 */
    s.d[1].k = O;
    if (!layer_size(g, H, st, add, 1, 2, &s.d[2]) || !layer_size(g, W, st, add, 1, 3, &s.d[3]) ||
        dim_max(g, s.d[2]) > 24 || dim_max(g, s.d[3]) > 24)
      return -1;
    snprintf(layer, sizeof layer, "ConvTranspose2d(%d, %d, %d, stride=%d, padding=%d, output_padding=%d, groups=%d, dilation=%d%s)",
             C, O, k, st, p, op, grp, d, chance(g, 0.2) ? ", bias=false" : "");
    return declare_layer(g, a, s, -B * k, B * k, layer);
  }
  bool same = st == 1 && chance(g, 0.2);
  int eff = d * (k - 1);
  s.d[1].k = O;
  if (!same && (!layer_size(g, H, 1, 2 * p - eff - 1 + st, st, 2, &s.d[2]) || /* (H + 2p - eff - 1) / st + 1 */
                !layer_size(g, W, 1, 2 * p - eff - 1 + st, st, 3, &s.d[3])))
    return -1;
  char pad[32];
  if (same) snprintf(pad, sizeof pad, "\"same\"");
  else snprintf(pad, sizeof pad, "%d", p);
  snprintf(layer, sizeof layer, "Conv2d(%d, %d, %d, stride=%d, padding=%s, dilation=%d, groups=%d%s)", C, O, k, st,
           pad, d, grp, chance(g, 0.2) ? ", bias=false" : "");
  return declare_layer(g, a, s, -B, B, layer);
}

/* PyTorch's pooling output size */
static int pool_out(int n, int k, int s, int p, int d, bool ceil_mode) {
  int num = n + 2 * p - d * (k - 1) - 1;
  if (num < 0) return 0;
  int o = (ceil_mode ? num + s - 1 : num) / s + 1;
  if (ceil_mode && (o - 1) * s >= n + p) o--;
  return o;
}

/* A pooling output axis: ATen's size for a static one, else the derived size (symbolic
 * sizes take only a ceil_mode that drops no last window, so the formula is floor's). */
static bool pool_size(GProg *g, GDim in, int k, int st, int p, int d, bool cm, int axis, GDim *out) {
  if (!in.sy) {
    *out = (GDim){pool_out(in.k, k, st, p, d, cm), 0};
    return out->k >= 1;
  }
  return layer_size(g, in, 1, 2 * p - d * (k - 1) - 1 + (cm ? st - 1 : 0) + st, st, axis, out);
}

static int op_pool(GProg *g, int a) {
  if ((a = image(g, a)) < 0) return -1;
  const GVal *x = &g->v[a];
  GDim H = x->s.d[2], W = x->s.d[3];
  bool sym = H.sy || W.sy;
  GShape s = x->s;
  if (chance(g, 0.2)) { /* adaptive; to 1x1 only on a symbolic size */
    int oh = sym ? 1 : ri(g, 1, H.k), ow = sym ? 1 : ri(g, 1, W.k);
    s.d[2] = (GDim){oh, 0};
    s.d[3] = (GDim){ow, 0};
    return add_value(g, s, fmin(x->lo, 0), fmax(x->hi, 0), "adaptive_avg_pool2d(@%d, [%d, %d])", a, oh, ow);
  }
  bool is_max = chance(g, 0.5), cm = chance(g, 0.3), cip = chance(g, 0.5);
  int k = ri(g, 1, 3), st = ri(g, 1, 3), p = ri(g, 0, k / 2), d = is_max && chance(g, 0.2) ? 2 : 1;
  int div = !is_max && chance(g, 0.15) ? ri(g, 1, 4) : 0, span = d * (k - 1) + 1;
  /* on a symbolic size nnc takes a ceil_mode that never drops a last window (p + st <= span),
   * and average pooling whose divisor is the same for every window */
  if (sym && cm && (p + st > span || (!is_max && !div))) cm = false;
  if (sym && !is_max && !div && p && !cip) cip = true;
  if (!pool_size(g, H, k, st, p, d, cm, 2, &s.d[2]) || !pool_size(g, W, k, st, p, d, cm, 3, &s.d[3])) return -1;
  if (is_max)
    return add_value(g, s, x->lo, x->hi, "max_pool2d(@%d, %d, stride=%d, padding=%d, dilation=%d, ceil_mode=%s)", a, k, st, p,
                     d, cm ? "true" : "false");
  double lo = fmin(x->lo, 0) * k * k, hi = fmax(x->hi, 0) * k * k;
  char dv[32] = "";
  if (div) snprintf(dv, sizeof dv, ", divisor_override=%d", div);
  return add_value(g, s, lo, hi, "avg_pool2d(@%d, %d, stride=%d, padding=%d, ceil_mode=%s, count_include_pad=%s%s)", a, k, st, p,
                   cm ? "true" : "false", cip ? "true" : "false", dv);
}

static int op_norm_layer(GProg *g, int a) {
  const GVal *x = &g->v[a];
  char layer[160];
  if (x->s.rank >= 2 && x->s.rank <= 3 && !x->s.d[1].sy && chance(g, 0.3)) {
    int C = x->s.d[1].k;
    double B = (bound(x) + 0.5) / 0.7 * 0.5 + 0.5;
    snprintf(layer, sizeof layer, "BatchNorm1d(%d)", C);
    return declare_layer(g, a, x->s, -B, B, layer);
  }
  if (x->s.rank >= 1 && chance(g, 0.3)) { /* LayerNorm over the trailing axes */
    int n = ri(g, 1, x->s.rank < 3 ? x->s.rank : 3);
    char dims[64];
    size_t k = snprintf(dims, sizeof dims, "[");
    double cnt = 1;
    for (int i = x->s.rank - n; i < x->s.rank; i++) {
      if (x->s.d[i].sy) return -1;
      cnt *= x->s.d[i].k;
      k += snprintf(dims + k, sizeof dims - k, "%s%d", i > x->s.rank - n ? ", " : "", x->s.d[i].k);
    }
    snprintf(dims + k, sizeof dims - k, "]");
    snprintf(layer, sizeof layer, "LayerNorm(%s%s)", dims, chance(g, 0.3) ? ", elementwise_affine=false" : "");
    return declare_layer(g, a, x->s, -sqrt(cnt) - 1, sqrt(cnt) + 1, layer);
  }
  if ((a = image(g, a)) < 0) return -1;
  x = &g->v[a];
  int C = x->s.d[1].k;
  double cnt = (double)dim_max(g, x->s.d[2]) * dim_max(g, x->s.d[3]) * C, Bn = sqrt(cnt) + 1;
  switch (ri(g, 0, 2)) {
  case 0: {
    double B = (bound(x) + 0.5) / 0.7 * 0.5 + 0.5;
    snprintf(layer, sizeof layer, "BatchNorm2d(%d%s)", C, chance(g, 0.2) ? ", affine=false" : "");
    return declare_layer(g, a, x->s, -B, B, layer);
  }
  case 1: {
    int grp = C % 2 == 0 && chance(g, 0.5) ? 2 : chance(g, 0.5) ? 1 : C;
    snprintf(layer, sizeof layer, "GroupNorm(%d, %d%s)", grp, C, chance(g, 0.3) ? ", affine=false" : "");
    return declare_layer(g, a, x->s, -Bn, Bn, layer);
  }
  default:
    snprintf(layer, sizeof layer, "InstanceNorm2d(%d%s)", C, chance(g, 0.4) ? ", affine=true" : "");
    return declare_layer(g, a, x->s, -Bn, Bn, layer);
  }
}

static int op_resample(GProg *g, int a) {
  if ((a = image(g, a)) < 0) return -1;
  const GVal *x = &g->v[a];
  int C = x->s.d[1].k;
  GShape s = x->s; /* H and W scale as k times their symbol, if any */
  switch (ri(g, 0, 4)) {
  case 0: { /* interpolate by a scale factor */
    int f = ri(g, 2, 3);
    bool bil = chance(g, 0.5);
    s.d[2].k *= f;
    s.d[3].k *= f;
    if (bil) return add_value(g, s, x->lo, x->hi, "interpolate(@%d, scale_factor=%d, mode=\"bilinear\", align_corners=%s)", a, f,
                              chance(g, 0.5) ? "true" : "false");
    return add_value(g, s, x->lo, x->hi, "interpolate(@%d, scale_factor=%d)", a, f);
  }
  case 1: { /* to a size */
    s.d[2] = (GDim){ri(g, 1, 12), 0};
    s.d[3] = (GDim){ri(g, 1, 12), 0};
    bool bil = chance(g, 0.5);
    char layer[128];
    snprintf(layer, sizeof layer, "Upsample(size=[%d, %d]%s)", s.d[2].k, s.d[3].k,
             bil ? (chance(g, 0.5) ? ", mode=\"bilinear\", align_corners=true" : ", mode=\"bilinear\"") : "");
    return declare_layer(g, a, s, x->lo, x->hi, layer);
  }
  case 2: { /* pad */
    int l = ri(g, 0, 2), r = ri(g, 0, 2), t = ri(g, 0, 2), b = ri(g, 0, 2);
    double v = PICK(g, ((double[]){0.0, 0.5, -1.0}));
    if (!layer_size(g, x->s.d[2], 1, t + b, 1, 2, &s.d[2]) || !layer_size(g, x->s.d[3], 1, l + r, 1, 3, &s.d[3])) return -1;
    return add_value(g, s, fmin(x->lo, v), fmax(x->hi, v), "pad(@%d, [%d, %d, %d, %d], value=%g)", a, l, r, t, b, v);
  }
  case 3: /* pixel shuffle */
    if (C % 4) return -1;
    s.d[1].k = C / 4;
    s.d[2].k *= 2;
    s.d[3].k *= 2;
    return add_value(g, s, x->lo, x->hi, "pixel_shuffle(@%d, 2)", a);
  default:
    if (s.d[2].k % 2 || s.d[3].k % 2) return -1; /* on a symbolic size, one written 2 * H */
    s.d[1].k = C * 4;
    s.d[2].k /= 2;
    s.d[3].k /= 2;
    return add_value(g, s, x->lo, x->hi, "pixel_unshuffle(@%d, 2)", a);
  }
}

/* ---- indices: embeddings, argmax/topk, gather, index_select, one_hot; LSTM cells ---- */

/* A fresh i64 input of shape s holding indices in [0, n). */
static int index_input(GProg *g, GShape s, int n) { return add_input(g, s, 0, n - 1, true); }

static int op_index(GProg *g, int a) {
  const GVal *x = &g->v[a];
  switch (ri(g, 0, 4)) {
  case 0: { /* embedding of a fresh index tensor */
    int E = ri(g, 2, 12), D = small_dim(g) + 2;
    GShape is = random_shape(g, ri(g, 1, 2), chance(g, 0.7));
    int idx = index_input(g, is, E);
    if (idx < 0) return -1;
    GShape s = is;
    s.d[s.rank++] = (GDim){D, 0};
    if (s.rank > G_MAX_RANK) return -1;
    char layer[64];
    snprintf(layer, sizeof layer, "Embedding(%d, %d)", E, D);
    return declare_layer(g, idx, s, -1, 1, layer);
  }
  case 1: { /* argmax / argmin / topk of an input (exact values: no near-ties) */
    if (!x->input || x->i64) return -1;
    int ax = static_axis(g, &x->s, 1);
    if (ax < 0) return -1;
    int n = x->s.d[ax].k;
    GShape s = x->s;
    if (chance(g, 0.5)) {
      bool keep = chance(g, 0.3);
      if (keep) s.d[ax] = (GDim){1, 0};
      else {
        for (int k = ax; k < s.rank - 1; k++) s.d[k] = s.d[k + 1];
        s.rank--;
      }
      return add_value(g, s, 0, n - 1, "%s(@%d, %d%s)", chance(g, 0.5) ? "argmax" : "argmin", a, ax, keep ? ", keepdim=true" : "");
    }
    int k = ri(g, 1, n), part = ri(g, 0, 1);
    s.d[ax].k = k;
    return add_value(g, s, part ? 0 : x->lo, part ? n - 1 : x->hi, "topk(@%d, %d, dim=%d, largest=%s)[%d]", a, k, ax,
                     chance(g, 0.7) ? "true" : "false", part);
  }
  case 2: { /* gather along a static axis */
    int ax = static_axis(g, &x->s, 1);
    if (ax < 0 || x->i64) return -1;
    GShape is = x->s;
    is.d[ax].k = ri(g, 1, 6);
    int idx = index_input(g, is, x->s.d[ax].k);
    if (idx < 0) return -1;
    return add_value(g, is, x->lo, x->hi, "gather(@%d, %d, @%d)", a, ax, idx);
  }
  case 3: { /* index_select */
    int ax = static_axis(g, &x->s, 1);
    if (ax < 0 || x->i64) return -1;
    int k = ri(g, 1, 6);
    int idx = index_input(g, (GShape){1, {{k, 0}}}, x->s.d[ax].k);
    if (idx < 0) return -1;
    GShape s = x->s;
    s.d[ax].k = k;
    return add_value(g, s, x->lo, x->hi, "index_select(@%d, %d, @%d)", a, ax, idx);
  }
  default: { /* one_hot */
    int C = ri(g, 2, 6);
    GShape is = random_shape(g, ri(g, 1, 2), chance(g, 0.7));
    int idx = index_input(g, is, C);
    if (idx < 0) return -1;
    GShape s = is;
    s.d[s.rank++] = (GDim){C, 0};
    if (s.rank > G_MAX_RANK) return -1;
    return add_value(g, s, 0, 1, "one_hot(@%d, %d)", idx, C);
  }
  }
}

static int op_lstm(GProg *g, int a) {
  const GVal *x = &g->v[a];
  if (x->s.rank != 2 || x->s.d[1].sy || x->i64) return -1;
  int I = x->s.d[1].k, H = small_dim(g) + 1;
  GShape hs = {2, {x->s.d[0], {H, 0}}};
  int h = fresh(g, hs), c = fresh(g, hs);
  if (h < 0 || c < 0) return -1;
  int d = add_decl(g, "m%d = LSTMCell(%d, %d%s)", g->ndecls, I, H, chance(g, 0.2) ? ", bias=false" : "");
  if (d < 0) return -1;
  int part = ri(g, 0, 1);
  double B = part ? bound(&g->v[c]) + 1 : 1;
  int r = add_value(g, hs, -B, B, "m%d(@%d, [@%d, @%d])[%d]", d, a, h, c, part);
  if (r >= 0) g->v[r].decl = d;
  return r;
}

static int op_cosine(GProg *g, int a) {
  const GVal *x = &g->v[a];
  if (x->s.rank < 2 || x->i64) return -1;
  int b = fresh(g, x->s);
  if (b < 0) return -1;
  GShape s = x->s;
  int ax = 1;
  for (int k = ax; k < s.rank - 1; k++) s.d[k] = s.d[k + 1];
  s.rank--;
  return add_value(g, s, -1, 1, "cosine_similarity(@%d, @%d, dim=1)", a, b);
}

/* ---- run-time loops ---- */

/* A scan over T steps (static, or N): the value is the final carried state, or the stack of
 * per-step values.  Its statement is a block: `$` names the value itself, `$s` a helper. */
static int op_scan(GProg *g, int a) {
  const GVal *x = &g->v[a];
  if (x->i64 || x->s.rank > G_MAX_RANK - 1) return -1;
  /* over T (or N) when the state does not have that symbol already */
  unsigned sy = syms_of(&x->s), over = chance(g, 0.5) ? SYM_T : SYM_N;
  bool tn = !(sy & over) && chance(g, 0.5);
  GDim T = tn ? (GDim){1, over} : (GDim){ri(g, 1, 5), 0};
  int tax = ri(g, 0, x->s.rank); /* the step axis of the sliced input and of the stack */
  GShape xs = x->s;
  for (int k = xs.rank; k > tax; k--) xs.d[k] = xs.d[k - 1];
  xs.d[tax] = T;
  xs.rank++;
  if (!shape_ok(&xs)) return -1;
  int in = fresh(g, xs);
  if (in < 0) return -1;
  char step[64] = "", tt[16];
  size_t n = snprintf(step, sizeof step, "@%d[", in);
  for (int k = 0; k < tax; k++) n += snprintf(step + n, sizeof step - n, ":, ");
  snprintf(step + n, sizeof step - n, "t]");
  size_t tlen = 0;
  dim_text(g, T, true, tt, sizeof tt, &tlen);
  const GVal *xi = &g->v[in];
  double B = bound(x) + 1, steps = dim_max(g, T);
  char update[256];
  int d = -1;
  GDim last = x->s.rank ? x->s.d[x->s.rank - 1] : (GDim){1, 0};
  switch (ri(g, 0, 3)) {
  case 0: snprintf(update, sizeof update, "tanh(%%s * 0.5 + %s)", step); B = 1; break;
  case 1:
    if (last.sy || !x->s.rank) return -1;
    d = add_decl(g, "l%d = Linear(%d, %d)", g->ndecls, last.k, last.k);
    if (d < 0) return -1;
    g->decl_in[d] = g->decl_out[d] = last.k;
    snprintf(update, sizeof update, "tanh(l%d(%%s) + %s)", d, step);
    B = 1;
    break;
  case 2: /* accumulate, with the step index as a value */
    snprintf(update, sizeof update, "%%s * 0.5 + %s + t", step);
    B = 2 * (B + bound(xi) + steps);
    break;
  default:
    snprintf(update, sizeof update, "maximum(%%s, %s) - 0.25", step);
    B = fmax(B, bound(xi)) + 0.25 * steps;
    break;
  }
  char body[300], expr[1024];
  snprintf(body, sizeof body, update, "$s");
  int r;
  if (chance(g, 0.5)) { /* the final state */
    char own[300];
    snprintf(own, sizeof own, update, "$");
    snprintf(expr, sizeof expr, "@%d * 1.0\n  scan t in 0..%s {\n    $ = %s\n  }", a, tt, own);
    r = add_value(g, x->s, -B, B, "%s", expr);
  } else { /* the per-step values, stacked along axis tax */
    char zs[SHAPE_TEXT], sub[64] = "";
    size_t k = 0;
    for (int i = 0; i < tax; i++) k += snprintf(sub + k, sizeof sub - k, ":, ");
    snprintf(sub + k, sizeof sub - k, "t");
    if (!shape_text(g, &xs, true, zs, sizeof zs)) return -1;
    snprintf(expr, sizeof expr, "zeros(%.*s)\n  $s = @%d * 1.0\n  scan t in 0..%s {\n    $s = %s\n    $[%s] = $s * 2.0\n  }",
             (int)strlen(zs) - 2, zs + 1, a, tt, body, sub);
    r = add_value(g, xs, -2 * B, 2 * B, "%s", expr);
  }
  if (r >= 0) g->v[r].decl = d;
  return r;
}

/* ---- the program ---- */

typedef int (*GenOp)(GProg *g, int a);

/* elementwise, reductions and products first: ops from index MOVE_FIRST on move data */
static const struct { GenOp fn; int weight; } gen_ops[] = {
  {op_unary, 6}, {op_binary, 8}, {op_identity, 2}, {op_reduce, 3}, {op_softmax, 2}, {op_matmul, 4},
  {op_norm, 1}, {op_chain, 1}, {op_dup, 1}, {op_conv, 2}, {op_pool, 2}, {op_norm_layer, 2},
  {op_resample, 1}, {op_index, 2}, {op_lstm, 1}, {op_cosine, 1}, {op_scan, 2}, {op_empty_sum, 1},
  {op_reshape, 2}, {op_permute, 2}, {op_slice, 2}, {op_cat, 1}, {op_split, 1}, {op_squeeze, 2},
};
#define MOVE_FIRST 18

static int one_statement(GProg *g) {
  int total = 0;
  for (size_t i = 0; i < sizeof gen_ops / sizeof *gen_ops; i++) total += gen_ops[i].weight;
  int w = ri(g, 0, total - 1);
  size_t k = 0;
  while (w >= gen_ops[k].weight) w -= gen_ops[k++].weight;
  bool move = k >= MOVE_FIRST; /* movement ops may move i64 inputs (and keep their dtype) */
  int a = pick(g, move), nder = g->nder;
  if (a < 0) return -1;
  int r = gen_ops[k].fn(g, a);
  if (r < 0) g->nder = nder; /* a derived size of a value not added */
  if (r >= 0 && move) g->v[r].i64 = g->v[a].i64;
  return tame(g, r);
}

void gen_program(GProg *g, uint64_t seed) {
  memset(g, 0, sizeof *g);
  g->rng = seed * 0x2545F4914F6CDD1Dull + 1;
  static const int ns[] = {1, 2, 3, 4, 5, 7, 8, 13, 33};
  g->N = chance(g, 0.12) ? ri(g, 513, 700) : PICK(g, ns);
  if (chance(g, 0.02)) g->N = 0; /* empty batch */
  g->T = PICK(g, ((int[]){1, 2, 3, 4, 6}));
  g->H = PICK(g, ((int[]){2, 3, 4, 5, 6, 7, 9, 11}));
  g->W = PICK(g, ((int[]){2, 3, 4, 5, 6, 7, 9, 11}));
  g->nentries = chance(g, 0.3) ? 2 : 1;
  for (g->cur = 0; g->cur < g->nentries; g->cur++) {
    int e = g->cur, first = g->nv;
    int ninputs = ri(g, 1, 3);
    for (int i = 0; i < ninputs; i++) fresh(g, random_shape(g, PICK(g, ((int[]){1, 2, 2, 2, 3, 3, 4, 4})), chance(g, 0.85)));
    int nstmts = ri(g, 3, e ? 12 : 24);
    for (int i = 0, tries = 0; i < nstmts && tries < 200 && g->nv < G_MAX_VALS - 8; tries++)
      if (one_statement(g) >= 0) i++;
    /* outputs: the last f32 value, and sometimes a few earlier ones */
    int want = ri(g, 1, 3);
    for (int i = g->nv - 1; i >= first && g->nouts[e] < want; i--) {
      if (g->v[i].i64 || (g->nouts[e] && !chance(g, 0.3))) continue;
      g->outs[e][g->nouts[e]++] = i;
    }
  }
}

bool gen_cut(GProg *g, int i) {
  GVal *v = &g->v[i];
  if (v->input) return false;
  v->input = true;
  v->ndeps = 0;
  v->decl = -1;
  v->expr[0] = 0;
  v->lo = fmax(v->lo, -2);
  v->hi = fmin(v->hi, 2);
  if (v->lo >= v->hi) v->lo = v->hi - 1;
  return true;
}

/* ---- text ---- */

static void name_of(const GProg *g, int i, char *buf, size_t len) {
  snprintf(buf, len, "%s%d", g->v[i].input ? "x" : "v", i);
}

/* The statement of value `self` with @j replaced by value j's name, $ by its own name and $s
 * by its helper's. */
static void expand(const GProg *g, int self, const char *expr, FILE *f) {
  for (const char *p = expr; *p; p++) {
    if (*p == '$') {
      fprintf(f, "v%d%s", self, p[1] == 's' ? "_s" : "");
      p += p[1] == 's';
      continue;
    }
    if (*p != '@' || !isdigit((unsigned char)p[1])) {
      fputc(*p, f);
      continue;
    }
    char *end;
    long j = strtol(p + 1, &end, 10);
    char nm[16];
    name_of(g, (int)j, nm, sizeof nm);
    fputs(nm, f);
    p = end - 1;
  }
}

/* The symbols N, T, H, W that the symbols in sy are, or are derived from. */
static unsigned root_syms(const GProg *g, unsigned sy) {
  unsigned roots = sy & ((1u << G_BASE_SYMS) - 1);
  for (unsigned d = sy >> G_BASE_SYMS; d; d &= d - 1) roots |= root_syms(g, g->der[__builtin_ctz(d)].src);
  return roots;
}

/* An input whose dims are all static or a bare symbol: declaring it introduces the symbol. */
static bool simple_input(const GVal *v) {
  for (int k = 0; k < v->s.rank; k++)
    if (v->s.d[k].sy && (v->s.d[k].k != 1 || v->s.d[k].sy >= 1u << G_BASE_SYMS || (v->s.d[k].sy & (v->s.d[k].sy - 1))))
      return false;
  return true;
}

/* export f<e>(...) -> (...) { ... } */
static void emit_entry(const GProg *g, int e, const bool *live, FILE *f) {
  /* sema learns a symbol from an input typed with the bare symbol, so such inputs come first
   * (an input typed [2 * N] alone is not accepted: tests/difftest/regressions/
   * input_dim_multiple_of_sym.nn), then dummies xn: f32[N], xt: f32[T] for symbols still
   * unknown, then the other inputs */
  unsigned used = 0, known = 0;
  for (int i = 0; i < g->nv; i++)
    if (live[i] && g->v[i].input && g->v[i].entry == e) {
      used |= root_syms(g, syms_of(&g->v[i].s));
      if (simple_input(&g->v[i])) known |= syms_of(&g->v[i].s);
    }
  for (int o = 0; o < g->nouts[e]; o++) used |= root_syms(g, syms_of(&g->v[g->outs[e][o]].s));
  fprintf(f, "export f%d(", e);
  bool first = true;
  for (int pass = 0; pass < 2; pass++) {
    for (int i = 0; i < g->nv; i++) {
      if (!live[i] || !g->v[i].input || g->v[i].entry != e || simple_input(&g->v[i]) != (pass == 0)) continue;
      char st[4 * SHAPE_TEXT];
      fprintf(f, "%sx%d: %s%s", first ? "" : ", ", i, g->v[i].i64 ? "i64" : "f32", shape_text(g, &g->v[i].s, false, st, sizeof st));
      first = false;
    }
    for (int b = 0; pass == 0 && b < G_BASE_SYMS; b++)
      if ((used >> b & 1) && !(known >> b & 1)) {
        fprintf(f, "%sx%c: f32[%c]", first ? "" : ", ", "nthw"[b], "NTHW"[b]);
        first = false;
      }
  }
  fprintf(f, ") -> (");
  for (int o = 0; o < g->nouts[e]; o++) {
    char st[4 * SHAPE_TEXT];
    fprintf(f, "%so%d: f32%s", o ? ", " : "", o, shape_text(g, &g->v[g->outs[e][o]].s, false, st, sizeof st));
  }
  fprintf(f, ") {\n");
  for (int i = 0; i < g->nv; i++) {
    if (!live[i] || g->v[i].input || g->v[i].entry != e) continue;
    fprintf(f, "  v%d = ", i);
    expand(g, i, g->v[i].expr, f);
    fprintf(f, "\n");
  }
  for (int o = 0; o < g->nouts[e]; o++) {
    char nm[16];
    name_of(g, g->outs[e][o], nm, sizeof nm);
    fprintf(f, "  o%d = %s\n", o, nm);
  }
  fprintf(f, "}\n");
}

char *gen_emit(const GProg *g) {
  bool live[G_MAX_VALS] = {0}, decl_live[G_MAX_DECLS] = {0};
  for (int e = 0; e < g->nentries; e++)
    for (int o = 0; o < g->nouts[e]; o++) live[g->outs[e][o]] = true;
  for (int i = g->nv - 1; i >= 0; i--)
    if (live[i] && !g->v[i].input) {
      for (int k = 0; k < g->v[i].ndeps; k++) live[g->v[i].deps[k]] = true;
      if (g->v[i].decl >= 0) decl_live[g->v[i].decl] = true;
    }
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  if (!f) return NULL;
  fprintf(f, "# difftest: N=%d T=%d H=%d W=%d", g->N, g->T, g->H, g->W);
  for (int i = 0; i < g->nv; i++)
    if (live[i] && g->v[i].input) fprintf(f, " x%d=%g:%g", i, g->v[i].lo, g->v[i].hi);
  fprintf(f, "\n");
  for (int d = 0; d < g->ndecls; d++)
    if (decl_live[d]) fprintf(f, "%s\n", g->decls[d]);
  for (int e = 0; e < g->nentries; e++)
    if (g->nouts[e]) emit_entry(g, e, live, f);
  fclose(f);
  return buf;
}
