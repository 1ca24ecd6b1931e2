/* pass_winograd.c — a 3x3 stride-1 convolution that can run as Winograd F(2x2, 3x3)
 * (convplan.h) gets its transformed weights U = G g G^T as a third input of its GEMM:
 * U[xi, co * cin + ci] for the 16 elements xi of a 4x4 tile, one matrix product
 * [16, 9] x [9, cout * cin] of the weights.  U depends on the weights alone, so the hoist
 * pass that follows computes it once, in the init entry; the convolution's lowering
 * (lower.c lower_winograd) finds it there.  The GEMM's own weights input stays (the
 * reference interpreter and the other lowerings read it). */
#include "convplan.h"
#include "passes.h"

/* The kernel transform of every 3x3 kernel as one matrix: (G g G^T)[i][j] =
 * sum over a, b of G[i][a] G[j][b] g[a][b], row i * 4 + j, column a * 3 + b. */
static const float *kernel_transform(Model *m) {
  float *k = arena_alloc(m->arena, 16 * 9 * sizeof *k);
  for (int i = 0; i < 4; i++)
    for (int j = 0; j < 4; j++)
      for (int a = 0; a < 3; a++)
        for (int b = 0; b < 3; b++) k[(i * 4 + j) * 9 + a * 3 + b] = (float)(winograd_G[i][a] * winograd_G[j][b]);
  return k;
}

/* Symbolic sizes: the scratch bounds of the copy, V and M (convplan.h) must exist, made here
 * (before lowering) with the derived symbols that fusion and the memory plan then find. */
static bool scratch_bounded(Model *m, ConvPlan c, SrcLoc loc) {
  Dim copy, v, mm;
  c.winograd = true;
  return !c.symbolic || (conv_plan_copy_bound(m, &c, loc, &copy) && conv_plan_winograd_bound(m, &c, loc, &v, &mm));
}

static bool add_transformed_weights(Model *m, Entry *e, INode *g, Diag *d) {
  ConvPlan c;
  INode *w = g->in[0];
  if (g->in[2] || !conv_plan_of(g, g->in[1], &c) || !conv_plan_winograd_fits(&c) || !ir_is_constant(w)) return true;
  for (int i = 0; i < w->shape.rank; i++)
    if (w->shape.d[i].syms) return true;
  if (!scratch_bounded(m, c, g->loc)) return true;
  int64_t kernels = shape_static_numel(&w->shape) / 9;
  Shape ks = {.rank = 2, .d = {dim_const(16), dim_const(9)}}, ws = {.rank = 2, .d = {dim_const(kernels), dim_const(9)}};
  INode *k = ir_const_data(m, e, kernel_transform(m), &ks, g->loc);
  INode *u = ir_matmul(m, e, k, ir_reshape(m, e, w, &ws, g->loc, d), 0, 1, g->loc, d);
  if (!u) return false;
  g->in[2] = u;
  return true;
}

bool pass_winograd(Model *m, Entry *e, Diag *d) {
  int n = e->nnodes; /* the nodes made here are not convolutions */
  for (int i = 0; i < e->nnodes; i++) e->nodes[i]->cst = 0;
  for (int i = 0; i < n; i++)
    if (e->nodes[i]->op == OP_MATMUL && !add_transformed_weights(m, e, e->nodes[i], d)) return false;
  if (e->nnodes > n) ir_toposort(m, e);
  return true;
}
