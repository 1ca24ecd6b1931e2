/* reduce.c — reduction kernels: the accumulator loop (kept axes outside, reduced axes
 * inside, the epilogue at the kept index), column sums accumulated in the output buffer so
 * the inner loop runs along rows, and small pooling windows unrolled into one expression.
 * Outputs computed at every point of the domain (horizontal fusion) are stored inside. */
#include <math.h>
#include "lower_internal.h"

static bool tree_contains(const INode *n, const INode *x, int depth) {
  if (n == x) return true;
  if (depth > 64) return true; /* deep trees: treat as dependent (epilogue) */
  for (int k = 0; k < 3; k++)
    if (n->in[k] && n->in[k]->kernel == -1 && tree_contains(n->in[k], x, depth + 1)) return true;
  return false;
}

static INode *find_reduction(const Kernel *K) {
  for (int c = 0; c < K->ncovers; c++)
    if (op_info[K->covers[c]->op].kind == FK_REDUCE) return K->covers[c];
  unreachable("reduction kernel without a reduction");
}

/* The outputs of a reduction kernel that are computed at every point of the domain (the
 * elementwise ones horizontal fusion added), as opposed to the epilogue at the kept index. */
static bool full_domain_out(const Kernel *K, const INode *out, const INode *red) {
  return shape_eq(&out->shape, &K->domain) && !tree_contains(out, red, 0);
}

/* The reduction kernel's domain with its reduced axes made 1, and the index there of domain
 * index vars (0 on the reduced axes). */
static Shape kept_index(Lower *L, Lx *const *vars, Lx **kidx) {
  const Kernel *K = L->K;
  Shape kept = K->domain;
  for (int i = 0; i < kept.rank; i++) {
    bool r = K->raxes & (1u << i);
    if (r) kept.d[i] = dim_const(1);
    kidx[i] = r ? lx_i(L, 0) : vars[i];
  }
  return kept;
}

/* The epilogue: every output not computed over the whole domain, stored at the kept index. */
static void store_epilogue(Lower *L, Ls *parent, Lx *const *vars) {
  const Kernel *K = L->K;
  Lx *kidx[MAX_RANK];
  Shape kept = kept_index(L, vars, kidx);
  for (int o = 0; o < K->nouts; o++) {
    INode *out = K->outs[o];
    if (full_domain_out(K, out, L->red)) continue;
    Lx *oidx[MAX_RANK];
    if (!unit_map(&kept, kidx, &out->shape, oidx, lx_i(L, 0))) unreachable("epilogue shape");
    store_out(L, parent, out, oidx);
  }
}

/* A reduction over leading axes with the last axis kept (column sums): the accumulators
 * live in the output buffer and the domain is walked in memory order, so the inner loop
 * runs along contiguous rows and vectorizes:
 *   out[kept] = init;  for idx in domain { out[kept(idx)] op= value(in, idx) }
 *   for kept { out[kept] = epilogue(out[kept]) } */
static void lower_column_reduce(Lower *L, Ls *body) {
  const Kernel *K = L->K;
  const Shape *D = &K->domain;
  INode *red = L->red, *root = NULL;
  for (int o = 0; o < K->nouts; o++)
    if (!full_domain_out(K, K->outs[o], red)) root = K->outs[o];
  int order[MAX_RANK];
  Lx *vars[MAX_RANK], *zero = lx_i(L, 0);
  for (int i = 0; i < MAX_RANK; i++) order[i] = i;
  L->red_buf = buffer_of(L, root);
  Lx *kv[MAX_RANK];
  Ls *init = loop_nest(L, body, &root->shape, order, root->shape.rank, kv);
  store(L, init, L->red_buf, linear(L, &root->shape, kv), lx_f(L, red->op == OP_SUM ? 0.0 : -INFINITY));
  Ls *blk = loop_nest(L, body, D, order, D->rank, vars);
  Lx *ridx[MAX_RANK], *kidx[MAX_RANK];
  Shape kept = kept_index(L, vars, kidx);
  if (!unit_map(&kept, kidx, &red->shape, ridx, zero)) unreachable("reduction shape");
  Lx *at = linear(L, &red->shape, ridx);
  Lx *cur = lx(L, (Lx){.k = LX_LOAD, .buf = L->red_buf, .a = {at}});
  L->red = NULL;
  Lx *v = value(L, red->in[0], vars);
  for (int o = 0; o < K->nouts; o++)
    if (K->outs[o] != root) store_out(L, blk, K->outs[o], vars);
  L->red = red;
  Lx *acc = lx(L, (Lx){.k = LX_OP, .op = red->op == OP_SUM ? OP_ADD : OP_MAX, .a = {cur, v}});
  store(L, blk, L->red_buf, at, acc);
  if (root == red) return;
  Lx *ev[MAX_RANK];
  Ls *epi = loop_nest(L, body, &root->shape, order, root->shape.rank, ev);
  store_out(L, epi, root, ev);
}

/* Is the reduction over a small static window (a pooling window: 2x2, 3x3) whose kernel
 * writes only at the kept index?  Then it is unrolled into one expression (lower_window).
 * Not an empty window (a reduced axis of size 0): the accumulator loop gives its identity. */
#define SMALL_WINDOW 16
static bool small_window(const Kernel *K, const INode *red) {
  int64_t points = 1;
  for (int i = 0; i < K->domain.rank; i++) {
    if (!(K->raxes & (1u << i))) continue;
    if (K->domain.d[i].syms) return false;
    points *= K->domain.d[i].k;
  }
  for (int o = 0; o < K->nouts; o++)
    if (full_domain_out(K, K->outs[o], red)) return false;
  return points >= 1 && points <= SMALL_WINDOW && K->domain.rank >= 2;
}

/* A small window's reduction as one expression per output element, its points combined in
 * the order the accumulating loops would visit them:
 *   for kept { out[kept] = epilogue(v(p0) op v(p1) op ... ) }
 * The kept loops then only store, so the row loop can run as vectors (pooling reads two or
 * three neighbouring columns per output: LLVM's interleaved loads). */
static void lower_window(Lower *L, Ls *body) {
  const Kernel *K = L->K;
  const Shape *D = &K->domain;
  INode *red = L->red;
  int order[MAX_RANK], nkept = 0, nred = 0, raxis[MAX_RANK];
  Lx *vars[MAX_RANK];
  for (int i = 0; i < D->rank; i++) {
    if (K->raxes & (1u << i)) raxis[nred++] = i;
    else order[nkept++] = i;
  }
  Ls *outer = loop_nest(L, body, D, order, nkept, vars);
  /* a row of run-time length (a pooling's output row on symbolic sizes) is a vector row
     candidate too: its padded columns' loads vectorize only there (vector_row.c) */
  if (nkept > 0 && D->d[order[nkept - 1]].syms) outer->vector_row = true;
  int64_t at[MAX_RANK] = {0};
  Lx *acc = NULL;
  L->red = NULL;
  for (bool more = true; more;) {
    for (int r = 0; r < nred; r++) vars[raxis[r]] = lx_i(L, at[r]);
    Lx *v = value(L, red->in[0], vars);
    acc = !acc ? v : fop(L, red->op == OP_SUM ? OP_ADD : OP_MAX, acc, v);
    more = false;
    for (int r = nred - 1; r >= 0 && !more; r--) { /* next point, last axis fastest */
      if (++at[r] < D->d[raxis[r]].k) more = true;
      else at[r] = 0;
    }
  }
  L->red = red;
  L->red_value = acc;
  store_epilogue(L, outer, vars);
}

void lower_reduce(Lower *L, Ls *body) {
  const Kernel *K = L->K;
  L->red = find_reduction(K);
  if (K->domain.rank > 1 && !(K->raxes & (1u << (K->domain.rank - 1)))) {
    lower_column_reduce(L, body);
    return;
  }
  if (small_window(K, L->red)) {
    lower_window(L, body);
    return;
  }
  const Shape *D = &K->domain;
  int order[MAX_RANK], n = 0, nkept = 0;
  Lx *vars[MAX_RANK];
  for (int i = 0; i < D->rank; i++)
    if (!(K->raxes & (1u << i))) order[n++] = i;
  nkept = n;
  for (int i = 0; i < D->rank; i++)
    if (K->raxes & (1u << i)) order[n++] = i;
  L->red_acc = L->naccs++;
  Ls *outer = loop_nest(L, body, D, order, nkept, vars);
  Ls *init = ls_new(L, LS_ACC_INIT);
  init->acc = L->red_acc;
  init->rop = L->red->op;
  ls_add(L, outer, init);
  Ls *inner = loop_nest(L, outer, D, order + nkept, n - nkept, vars);
  Ls *upd = ls_new(L, LS_ACC_UPDATE);
  upd->acc = L->red_acc;
  upd->rop = L->red->op;
  /* the reduction input is evaluated without the accumulator in scope */
  INode *red = L->red;
  L->red = NULL;
  upd->val = value(L, red->in[0], vars);
  for (int o = 0; o < K->nouts; o++)
    if (full_domain_out(K, K->outs[o], red)) store_out(L, inner, K->outs[o], vars);
  L->red = red;
  ls_add(L, inner, upd);
  store_epilogue(L, outer, vars);
}
