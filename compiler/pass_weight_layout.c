/* pass_weight_layout.c — a product by a constant transposed matrix, A B^T with B [N, K] (a
 * Linear layer's x W^T) or A^T B with A [K, M] (a transposed convolution's weights), becomes
 * a product of untransposed operands with the transposed one materialized: the hoist pass
 * that follows computes the copy once, in the init entry, and the product then runs on row
 * tiles, which read A's and B's rows (convplan.h).  Only where row tiles take the product
 * and the other operand is not transposed: elsewhere OpenBLAS reads the operands as they are,
 * and a copy would only cost memory. */
#include "convplan.h"
#include "passes.h"

/* Operand i of product g, constant and stored transposed (flag g->i[i]), as its transposed
 * copy. */
static bool transpose_operand(Model *m, Entry *e, INode *g, int i, Diag *d) {
  int r = g->in[i]->shape.rank, perm[MAX_RANK];
  for (int a = 0; a < r; a++) perm[a] = a;
  perm[r - 2] = r - 1;
  perm[r - 1] = r - 2;
  INode *t = ir_permute(m, e, g->in[i], perm, g->loc, d);
  if (!t) return false;
  g->in[i] = t;
  g->i[i] = 0;
  return true;
}

/* A constant of static shape: matrices, or a stack of them (a grouped transposed convolution's). */
static bool static_constant(const INode *x) {
  for (int a = 0; a < x->shape.rank; a++)
    if (x->shape.d[a].syms) return false;
  return ir_is_constant((INode *)x);
}

/* Row tiles read A [M, K] by rows and B [K, N] by rows: a constant A^T or B^T gets its copy. */
static bool transpose_weights(Model *m, Entry *e, INode *g, Diag *d) {
  INode *a = g->in[0], *b = g->in[1];
  const Shape *bs = &b->shape;
  if (g->in[2] || (g->i[0] && !static_constant(a)) || (g->i[1] && !static_constant(b))) return true;
  Dim k = bs->d[bs->rank - 2 + g->i[1]], n = bs->d[bs->rank - 1 - g->i[1]];
  if (k.syms || n.syms || !row_tile_lanes(k.k, n.k)) return true;
  return (!g->i[0] || transpose_operand(m, e, g, 0, d)) && (!g->i[1] || transpose_operand(m, e, g, 1, d));
}

bool pass_weight_layout(Model *m, Entry *e, Diag *d) {
  int n = e->nnodes; /* the permutes made here are not products */
  for (int i = 0; i < e->nnodes; i++) e->nodes[i]->cst = 0;
  for (int i = 0; i < n; i++)
    if (e->nodes[i]->op == OP_MATMUL && !e->nodes[i]->replaced && !transpose_weights(m, e, e->nodes[i], d)) return false;
  if (e->nnodes > n) ir_toposort(m, e);
  return true;
}
