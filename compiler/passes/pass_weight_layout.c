/* pass_weight_layout.c — a product by a constant transposed matrix, A B^T with B [N, K] (a
 * Linear layer's x W^T) or A^T B with A [K, M] (a transposed convolution's weights), becomes
 * a product of untransposed operands with the transposed one materialized: the hoist pass
 * that follows computes the copy once, in the init entry, and the product then runs on row
 * tiles, which read A's and B's rows (convplan.h).  Only where row tiles take the product
 * and the other operand is not transposed: elsewhere OpenBLAS reads the operands as they are,
 * and a copy would only cost memory.  A scan body's products by a captured constant get the
 * copy from the outer entry.  Bodies run this pass before their entries, so an entry's pass
 * may still change its bodies' inputs. */
#include "convplan.h"
#include "passes.h"

/* x with its last two axes swapped (materialized by whoever computes it: the init entry). */
static INode *transposed(Model *m, Entry *e, INode *x, SrcLoc loc, Diag *d) {
  int r = x->shape.rank, perm[MAX_RANK];
  for (int a = 0; a < r; a++) perm[a] = a;
  perm[r - 2] = r - 1;
  perm[r - 1] = r - 2;
  return ir_permute(m, e, x, perm, loc, d);
}

/* Operand i of product g, constant and stored transposed (flag g->i[i]), as its transposed
 * copy. */
static bool transpose_operand(Model *m, Entry *e, INode *g, int i, Diag *d) {
  INode *t = transposed(m, e, g->in[i], g->loc, d);
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

/* Does every use of body input x read it as the transposed B of a product that row tiles
 * take (and is it used at all)? */
static bool only_transposed_b(const Entry *body, const INode *x) {
  int uses = 0;
  for (int i = 0; i < body->nnodes; i++) {
    const INode *u = body->nodes[i];
    for (int k = 0; k < 3; k++) {
      if (u->in[k] != x) continue;
      if (u->op != OP_MATMUL || k != 1 || u->i[0] || !u->i[1] || u->in[2]) return false;
      uses++;
    }
  }
  return uses > 0;
}

static int scans_of(const Model *m, const Entry *body) {
  int n = 0;
  for (int i = 0; i < m->nentries + m->nbodies; i++) {
    const Entry *e = i < m->nentries ? &m->entries[i] : m->bodies[i - m->nentries];
    for (int j = 0; j < e->nnodes; j++) n += e->nodes[j]->op == OP_SCAN && e->nodes[j]->scan->body == body;
  }
  return n;
}

/* A scan body's products by a captured constant matrix W (an LSTM's h W_hhᵀ each step): the
 * outer entry passes Wᵀ instead (computed once: hoisted), and the body reads it as B. */
static bool transpose_captured(Model *m, Entry *e, INode *scan, Diag *d) {
  const ScanInfo *sc = scan->scan;
  Entry *body = sc->body;
  if (scans_of(m, body) != 1) return true;
  int i = 0;
  for (INode *p = scan->in[0]; p; p = p->in[1], i++) {
    INode *w = p->in[0], *x = i < body->nin ? body->inputs[i] : NULL;
    if (i < sc->ncarried || !x || w->shape.rank != 2 || !static_constant(w) ||
        !row_tile_lanes(w->shape.d[1].k, w->shape.d[0].k) || !only_transposed_b(body, x))
      continue;
    INode *wt = transposed(m, e, w, scan->loc, d);
    if (!wt) return false;
    p->in[0] = wt;
    p->shape = wt->shape;
    x->shape = wt->shape;
    for (int j = 0; j < body->nnodes; j++)
      if (body->nodes[j]->op == OP_MATMUL && body->nodes[j]->in[1] == x) body->nodes[j]->i[1] = 0;
  }
  return true;
}

bool pass_weight_layout(Model *m, Entry *e, Diag *d) {
  int n = e->nnodes; /* the permutes made here are not products */
  for (int i = 0; i < e->nnodes; i++) e->nodes[i]->cst = 0;
  for (int i = 0; i < n; i++) {
    INode *x = e->nodes[i];
    if (x->replaced) continue;
    if (x->op == OP_MATMUL && !transpose_weights(m, e, x, d)) return false;
    if (x->op == OP_SCAN && !transpose_captured(m, e, x, d)) return false;
  }
  if (e->nnodes > n) ir_toposort(m, e);
  return true;
}
