/* pass_fold.c — constant folding and local simplifications:
 *   - elementwise ops on constants are evaluated (op_info[].eval, in double precision);
 *   - x + 0, x - 0, x * 1, x / 1 become x when no broadcasting is involved; x ** 2 becomes
 *     x * x (as torch computes it);
 *   - reshape of a constant or of a reshape collapses;
 *   - matmul of a transposed matrix uses sgemm's transpose flag instead of a copy;
 *   - a constant per-row or per-column scale of a matmul's result (a BatchNorm after a Linear
 *     or a convolution, once its statistics are folded into a scale and a shift) moves into
 *     the constant operand, and constants distribute and reassociate towards it:
 *       (A @ B + c1) * c2  ->  (A @ (B * c2)) + c1 * c2,   (x + c1) + c2  ->  x + (c1 + c2)
 *     so that pass_hoist.c computes the scaled weights once, not per call;
 *   - rows of a constant table times a constant matrix are rows of their product
 *     (gather_product: an Embedding before a Linear). */
#include <math.h>
#include <string.h>
#include "passes.h"

#define FOLD_MAX_ELEMS 65536

static bool fold_constants(Model *m, Entry *e, Diag *d);

static bool is_fill(const INode *n, double v) { return n && n->op == OP_CONST && !n->data && n->f[0] == v; }
static bool is_const(const INode *n) { return n && n->op == OP_CONST; }

/* Value of constant `c` at the output multi-index `idx` of a broadcast of rank `rank`. */
static double const_at(const INode *c, const int64_t *idx, int rank) {
  if (!c->data) return c->f[0];
  int64_t off = 0;
  for (int i = 0; i < c->shape.rank; i++) {
    int64_t dim = c->shape.d[i].k, x = idx[i + rank - c->shape.rank];
    off = off * dim + (dim == 1 ? 0 : x);
  }
  return c->data[off];
}

static void fold_elementwise(Model *m, INode *n) {
  int ar = op_info[n->op].arity;
  bool all_fills = true;
  for (int k = 0; k < ar; k++) {
    if (!is_const(n->in[k])) return;
    all_fills = all_fills && !n->in[k]->data;
  }
  double in[3], r;
  if (all_fills) {
    for (int k = 0; k < ar; k++) in[k] = n->in[k]->f[0];
    r = op_info[n->op].eval(in, n->f);
    if (n->op == OP_CHECK_INDEX && isnan(r)) return; /* fails at run time, as it should */
    n->op = OP_CONST;
    n->f[0] = r;
    memset(n->in, 0, sizeof n->in);
    return;
  }
  int64_t total;
  if (!shape_is_static(&n->shape) || (total = shape_static_numel(&n->shape)) > FOLD_MAX_ELEMS) return;
  float *data = arena_alloc(m->arena, (total ? total : 1) * sizeof *data);
  int64_t idx[MAX_RANK] = {0};
  for (int64_t o = 0; o < total; o++) {
    for (int64_t rest = o, i = n->shape.rank - 1; i >= 0; i--) {
      idx[i] = rest % n->shape.d[i].k;
      rest /= n->shape.d[i].k;
    }
    for (int k = 0; k < ar; k++) in[k] = const_at(n->in[k], idx, n->shape.rank);
    double r = op_info[n->op].eval(in, n->f);
    if (n->op == OP_CHECK_INDEX && isnan(r)) return;
    data[o] = (float)r;
  }
  n->op = OP_CONST;
  n->data = data;
  memset(n->in, 0, sizeof n->in);
}

static void simplify(Model *m, Entry *e, INode *n) {
  INode *a = n->in[0], *b = n->in[1];
  /* x + 0 -> x only when x already is the result: same shape (no broadcast) and dtype */
  bool a_full = a && a->dtype == n->dtype && shape_eq(&a->shape, &n->shape);
  bool b_full = b && b->dtype == n->dtype && shape_eq(&b->shape, &n->shape);
  switch (n->op) {
  case OP_ADD:
    if (a_full && is_fill(b, 0)) n->replaced = a;
    else if (b_full && is_fill(a, 0)) n->replaced = b;
    break;
  case OP_SUB:
    if (a_full && is_fill(b, 0)) n->replaced = a;
    break;
  case OP_MUL:
    if (a_full && is_fill(b, 1)) n->replaced = a;
    else if (b_full && is_fill(a, 1)) n->replaced = b;
    break;
  case OP_DIV:
    if (a_full && is_fill(b, 1)) n->replaced = a;
    break;
  case OP_POW:
    if (a_full && is_fill(b, 2)) {
      n->op = OP_MUL;
      n->in[1] = a;
    }
    break;
  case OP_RESHAPE:
    if (a->op == OP_RESHAPE) n->in[0] = a->in[0];
    else if (is_const(a)) {
      n->op = OP_CONST;
      n->data = a->data;
      n->f[0] = a->f[0];
      n->in[0] = NULL;
    }
    break;
  case OP_MATMUL:
    for (int k = 0; k < 2; k++) {
      INode *x = n->in[k];
      int r = x->shape.rank;
      if (x->op == OP_PERMUTE && r >= 2 && x->i[r - 1] == r - 2 && x->i[r - 2] == r - 1) {
        bool batch_kept = true;
        for (int i = 0; i < r - 2; i++) batch_kept = batch_kept && x->i[i] == i;
        if (batch_kept) {
          n->in[k] = x->in[0];
          n->i[k] ^= 1;
        }
      }
    }
    break;
  default:
    break;
  }
}

/* ---- scales into matmul operands ---- */

static INode *mk(Model *m, Entry *e, Op op, INode *a, INode *b, const Shape *s) {
  INode *n = ir_new(m, e, op, DT_F32, s, a->loc);
  n->in[0] = a;
  n->in[1] = b;
  n->nusers = 1;
  return n;
}

static INode *mk_reshape(Model *m, Entry *e, INode *a, int rank, const Dim *d) {
  Shape s = {.rank = rank};
  memcpy(s.d, d, rank * sizeof *d);
  INode *n = mk(m, e, OP_RESHAPE, a, NULL, &s);
  n->dtype = a->dtype;
  return n;
}

/* The only axis of `target` along which `p` (broadcast to it) varies, -2 if none, -1 if
 * several. */
static int varying_axis(const Shape *target, const Shape *p) {
  int axis = -2;
  for (int i = 0; i < p->rank; i++) {
    if (dim_is(p->d[i], 1)) continue;
    if (axis != -2) return -1;
    axis = i + target->rank - p->rank;
  }
  return axis;
}

static INode *matmul_like(Model *m, Entry *e, INode *g, INode *a, INode *b) {
  INode *n = mk(m, e, OP_MATMUL, a, b, &g->shape);
  n->i[0] = g->i[0];
  n->i[1] = g->i[1];
  return n;
}

/* g * p with g = A @ B, p constant varying along the rows (M) or columns (N) of g */
static INode *scale_matmul(Model *m, Entry *e, INode *g, INode *p) {
  int r = g->shape.rank, ax = varying_axis(&g->shape, &p->shape);
  INode *a = g->in[0], *b = g->in[1];
  int ta = (int)g->i[0], tb = (int)g->i[1];
  if (ax == r - 2 && ir_is_constant(a)) {
    Dim d = g->shape.d[r - 2], sh[2] = {ta ? dim_const(1) : d, ta ? d : dim_const(1)};
    INode *s = mk_reshape(m, e, p, 2, sh);
    return matmul_like(m, e, g, mk(m, e, OP_MUL, a, s, &a->shape), b);
  }
  if (ax == r - 1 && ir_is_constant(b)) {
    Dim d = g->shape.d[r - 1], sh[2] = {tb ? d : dim_const(1), tb ? dim_const(1) : d};
    INode *s = mk_reshape(m, e, p, 2, sh);
    return matmul_like(m, e, g, a, mk(m, e, OP_MUL, b, s, &b->shape));
  }
  return NULL;
}

/* reshape(g) * p for the convolution layout: g = W [G, OG, K] @ cols [N, G, K, P] reshaped to
 * [N, G*OG, ...], p varying along the channel axis 1 only -> W * p[G, OG, 1] */
static INode *scale_conv(Model *m, Entry *e, INode *rs, INode *p) {
  INode *g = rs->in[0], *w = g->in[0];
  if (g->op != OP_MATMUL || g->nusers != 1 || g->i[0] || g->shape.rank != 4 || w->shape.rank != 3 ||
      !ir_is_constant(w) || rs->shape.rank < 2 || varying_axis(&rs->shape, &p->shape) != 1)
    return NULL;
  if (!dim_eq(rs->shape.d[1], dim_mul(m, g->shape.d[1], g->shape.d[2])) || !dim_eq(rs->shape.d[0], g->shape.d[0]))
    return NULL;
  Dim sh[3] = {w->shape.d[0], w->shape.d[1], dim_const(1)};
  INode *s = mk_reshape(m, e, p, 3, sh);
  INode *g2 = matmul_like(m, e, g, mk(m, e, OP_MUL, w, s, &w->shape), g->in[1]);
  INode *r2 = mk(m, e, OP_RESHAPE, g2, NULL, &rs->shape);
  return r2;
}

static void simplify_scale(Model *m, Entry *e, INode *n);

/* g = (rows of a constant table T [V, E] picked by an index) @ W, W constant: the same rows
 * of T @ W, whose [V, N] products pass_hoist.c computes once (an Embedding before a Linear
 * or an LSTM's input weights: a gather replaces the per-call product).  Each row is the same
 * sum either way.  Only for a table of at most GATHER_TABLE_MAX_FLOATS products. */
#define GATHER_TABLE_MAX_FLOATS (256 * 1024)
static void gather_product(Model *m, Entry *e, INode *g, Diag *d) {
  INode *a = g->in[0], *w = g->in[1];
  if (g->i[0] || g->shape.rank != 2 || !ir_is_constant(w)) return;
  while (a->op == OP_RESHAPE && a->nusers == 1) a = a->in[0];
  if (a->op != OP_GATHER || a->i[0] != 0 || a->nusers != 1 || !shape_eq(&a->shape, &g->in[0]->shape)) return;
  INode *t = a->in[0], *idx = a->in[1];
  const Shape *ts = &t->shape, *is = &idx->shape;
  int64_t v = ts->d[0].k, n = g->shape.d[1].k;
  if (!ir_is_constant(t) || ts->d[0].syms || g->shape.d[1].syms || is->rank != 2 || !dim_is(is->d[1], 1) ||
      v > GATHER_TABLE_MAX_FLOATS / (n ? n : 1))
    return;
  INode *table = ir_matmul(m, e, t, w, 0, (int)g->i[1], g->loc, d);
  if (!table) return;
  INode *rows = ir_gather(m, e, table, idx, 0, &g->shape, g->loc, d);
  if (!rows) return;
  table->nusers = 1;
  rows->nusers = g->nusers;
  g->replaced = rows;
}

/* (x + c1) * c2 -> x * c2 + c1 * c2, and (x + c1) + c2 -> x + (c1 + c2), with x not constant */
static void distribute(Model *m, Entry *e, INode *n) {
  INode *a = n->in[0], *c2 = n->in[1];
  if (ir_is_constant(a)) {
    INode *t = a;
    a = c2;
    c2 = t;
  }
  if (!ir_is_constant(c2) || ir_is_constant(a) || a->op != OP_ADD || a->nusers != 1) return;
  INode *x = a->in[0], *c1 = a->in[1];
  if (ir_is_constant(x)) {
    INode *t = x;
    x = c1;
    c1 = t;
  }
  if (!ir_is_constant(c1) || ir_is_constant(x)) return;
  if (n->op == OP_MUL) {
    INode *xs = mk(m, e, OP_MUL, x, c2, &n->shape);
    Shape cs;
    cs = c1->shape.rank >= c2->shape.rank ? c1->shape : c2->shape; /* constants broadcast */
    for (int i = 0; i < cs.rank; i++) {
      int i1 = i - (cs.rank - c1->shape.rank), i2 = i - (cs.rank - c2->shape.rank);
      Dim d1 = i1 >= 0 ? c1->shape.d[i1] : dim_const(1), d2 = i2 >= 0 ? c2->shape.d[i2] : dim_const(1);
      cs.d[i] = dim_is(d1, 1) ? d2 : d1;
    }
    INode *cc = mk(m, e, OP_MUL, c1, c2, &cs);
    INode *sum = mk(m, e, OP_ADD, xs, cc, &n->shape);
    sum->nusers = n->nusers;
    n->replaced = sum;
    simplify_scale(m, e, xs);
    if (xs->replaced) sum->in[0] = xs->replaced;
    distribute(m, e, sum); /* (x*c2 + c1*c2) may reassociate with what follows */
  } else if (n->op == OP_ADD && shape_eq(&x->shape, &n->shape)) {
    Shape cs = c1->shape.rank >= c2->shape.rank ? c1->shape : c2->shape;
    for (int i = 0; i < cs.rank; i++) {
      int i1 = i - (cs.rank - c1->shape.rank), i2 = i - (cs.rank - c2->shape.rank);
      Dim d1 = i1 >= 0 ? c1->shape.d[i1] : dim_const(1), d2 = i2 >= 0 ? c2->shape.d[i2] : dim_const(1);
      cs.d[i] = dim_is(d1, 1) ? d2 : d1;
    }
    n->in[0] = x;
    n->in[1] = mk(m, e, OP_ADD, c1, c2, &cs);
  }
}

static void simplify_scale(Model *m, Entry *e, INode *n) {
  if (n->op != OP_MUL) return;
  for (int k = 0; k < 2; k++) {
    INode *x = n->in[k], *p = n->in[1 - k], *r = NULL;
    if (!ir_is_constant(p) || ir_is_constant(x) || x->nusers != 1 || !shape_eq(&x->shape, &n->shape)) continue;
    if (x->op == OP_MATMUL) r = scale_matmul(m, e, x, p);
    else if (x->op == OP_RESHAPE) r = scale_conv(m, e, x, p);
    if (r) {
      r->nusers = n->nusers;
      n->replaced = r;
      return;
    }
  }
}

bool pass_fold(Model *m, Entry *e, Diag *d) {
  ir_count_users(e);
  int n0 = e->nnodes;
  for (int i = 0; i < n0; i++) e->nodes[i]->cst = 0;
  for (int i = 0; i < n0; i++) ir_is_constant(e->nodes[i]); /* in order: no deep recursion */
  for (int i = 0; i < n0; i++) {
    INode *n = e->nodes[i];
    if (n->replaced) continue;
    ir_resolve_inputs(n);
    if ((n->op == OP_MUL || n->op == OP_ADD) && !n->replaced) distribute(m, e, n);
    if (n->op == OP_MUL && !n->replaced) simplify_scale(m, e, n);
    if (n->op == OP_MATMUL && !n->replaced) gather_product(m, e, n, d);
  }
  if (e->nnodes != n0) { /* rewrites appended nodes: put them before their users */
    ir_replace_uses(e);
    ir_toposort(m, e);
  }
  return fold_constants(m, e, d);
}

static bool fold_constants(Model *m, Entry *e, Diag *d) {
  for (int i = 0; i < e->nnodes; i++) {
    INode *n = e->nodes[i];
    if (n->replaced) continue;
    ir_resolve_inputs(n);
    if (op_info[n->op].kind == FK_ELEM) fold_elementwise(m, n);
    if (n->op != OP_CONST) simplify(m, e, n);
  }
  ir_replace_uses(e);
  return true;
}
