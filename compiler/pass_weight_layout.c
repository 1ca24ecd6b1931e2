/* pass_weight_layout.c — a product by a constant transposed matrix, A B^T with B [N, K] (a
 * Linear layer's x W^T), becomes A (B^T) with B^T materialized: the hoist pass that follows
 * computes the transposed copy once, in the init entry, and the product then runs on row
 * tiles that read B^T's rows as vectors (convplan.h).  Only where row tiles take the product:
 * elsewhere OpenBLAS reads B as it is, and a copy would only cost memory. */
#include "convplan.h"
#include "passes.h"

static bool transpose_weights(Model *m, Entry *e, INode *g, Diag *d) {
  INode *b = g->in[1];
  if (g->i[0] || !g->i[1] || g->in[2] || b->shape.rank != 2 || b->shape.d[0].syms || b->shape.d[1].syms ||
      !ir_is_constant(b) || !row_tile_lanes(b->shape.d[1].k, b->shape.d[0].k))
    return true;
  static const int swap[2] = {1, 0};
  INode *bt = ir_permute(m, e, b, swap, g->loc, d);
  if (!bt) return false;
  g->in[1] = bt;
  g->i[1] = 0;
  return true;
}

bool pass_weight_layout(Model *m, Entry *e, Diag *d) {
  int n = e->nnodes; /* the permutes made here are not products */
  for (int i = 0; i < e->nnodes; i++) e->nodes[i]->cst = 0;
  for (int i = 0; i < n; i++)
    if (e->nodes[i]->op == OP_MATMUL && !e->nodes[i]->replaced && !transpose_weights(m, e, e->nodes[i], d)) return false;
  if (e->nnodes > n) ir_toposort(m, e);
  return true;
}
