/* pass_fold.c — constant folding and local simplifications:
 *   - elementwise ops on constants are evaluated (op_info[].eval, in double precision);
 *   - x + 0, x - 0, x * 1, x / 1 become x when no broadcasting is involved; x ** 2 becomes
 *     x * x (as torch computes it);
 *   - reshape of a constant or of a reshape collapses;
 *   - matmul of a transposed matrix uses sgemm's transpose flag instead of a copy. */
#include <string.h>
#include "passes.h"

#define FOLD_MAX_ELEMS 65536

static bool is_fill(const INode *n, double v) { return n && n->op == OP_CONST && !n->data && n->f[0] == v; }
static bool is_const(const INode *n) { return n && n->op == OP_CONST; }

static bool static_numel(const Shape *s, int64_t *n) {
  Dim d = shape_numel(s);
  *n = d.k;
  return d.syms == 0;
}

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
    n->op = OP_CONST;
    n->f[0] = r;
    memset(n->in, 0, sizeof n->in);
    return;
  }
  int64_t total;
  if (!static_numel(&n->shape, &total) || total > FOLD_MAX_ELEMS) return;
  float *data = arena_alloc(m->arena, (total ? total : 1) * sizeof *data);
  int64_t idx[MAX_RANK] = {0};
  for (int64_t o = 0; o < total; o++) {
    for (int64_t rest = o, i = n->shape.rank - 1; i >= 0; i--) {
      idx[i] = rest % n->shape.d[i].k;
      rest /= n->shape.d[i].k;
    }
    for (int k = 0; k < ar; k++) in[k] = const_at(n->in[k], idx, n->shape.rank);
    data[o] = (float)op_info[n->op].eval(in, n->f);
  }
  n->op = OP_CONST;
  n->data = data;
  memset(n->in, 0, sizeof n->in);
}

static void simplify(Model *m, Entry *e, INode *n) {
  INode *a = n->in[0], *b = n->in[1];
  bool a_full = a && shape_eq(&a->shape, &n->shape), b_full = b && shape_eq(&b->shape, &n->shape);
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
  case OP_POWER:
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

bool pass_fold(Model *m, Entry *e, Diag *d) {
  for (int i = 0; i < e->nnodes; i++) {
    INode *n = e->nodes[i];
    for (int k = 0; k < 3; k++)
      while (n->in[k] && n->in[k]->replaced) n->in[k] = n->in[k]->replaced;
    if (op_info[n->op].kind == FK_ELEM) fold_elementwise(m, n);
    if (n->op != OP_CONST) simplify(m, e, n);
  }
  ir_replace_uses(e);
  return true;
}
