/* outline.c — part of a kernel emitted as a function of its own, called through the pool
 * (split_inner.c: a loop inside the split loop; conv_tile.c: a convolution's fused epilogue
 * inside its tile function).
 *
 * The caller passes `args`: the buffers the part uses, then a pointer to the values it takes
 * from around it (the variables of the loops it is in, and the kernel's chunk, LX_CHUNK).
 * While the function is emitted, the caller's function-local values (buffers, variables,
 * accumulators, symbolic dims, memoized expressions) are put aside: the function may not
 * refer to them. */
#include <stdlib.h>
#include <string.h>
#include "cg.h"

Uses uses_new(Cg *g) {
  int nb = g->le->nbufs, nv = g->le_kernel->nvars;
  g->walk_gen++;
  return (Uses){.bufs = nnc_xcalloc((size_t)nb + 1, 1), .vars = nnc_xcalloc((size_t)nv + 1, 1),
                .inner = nnc_xcalloc((size_t)nv + 1, 1), .nvars = nv};
}

void uses_free(Uses *u) {
  free(u->bufs);
  free(u->vars);
  free(u->inner);
}

void uses_of_expr(Cg *g, Uses *u, Lx *x) {
  if (!x || x->cg_walk == g->walk_gen) return;
  x->cg_walk = g->walk_gen;
  if (x->k == LX_VAR && x->var < u->nvars) u->vars[x->var] = true;
  if ((x->k == LX_LOAD || x->k == LX_LOADI) && x->buf >= 0) u->bufs[x->buf] = true;
  for (int i = 0; i < 3; i++) uses_of_expr(g, u, x->a[i]);
}

/* Element i of the pointer array at p. */
static LLVMValueRef ptr_at(Cg *g, LLVMValueRef p, int i) {
  return LLVMBuildGEP2(g->b, g->ptr, p, (LLVMValueRef[]){ci64(g, i)}, 1, "");
}

static LLVMValueRef i64_at(Cg *g, LLVMValueRef p, int i) {
  return LLVMBuildGEP2(g->b, g->i64, p, (LLVMValueRef[]){ci64(g, i)}, 1, "");
}

LLVMValueRef uses_pass(Cg *g, const Uses *u) {
  int nb = g->le->nbufs, nv = u->nvars;
  LLVMValueRef args = entry_alloca(g, LLVMArrayType(g->ptr, (unsigned)nb + 1), "outlined_args");
  LLVMValueRef vals = entry_alloca(g, LLVMArrayType(g->i64, (unsigned)nv + 1), "outlined_vals");
  for (int i = 0; i < nb; i++)
    if (u->bufs[i]) LLVMBuildStore(g->b, g->bufs[i], ptr_at(g, args, i));
  LLVMBuildStore(g->b, vals, ptr_at(g, args, nb));
  for (int i = 0; i < nv; i++)
    if (u->vars[i] && !u->inner[i]) LLVMBuildStore(g->b, g->vars[i], i64_at(g, vals, i));
  LLVMBuildStore(g->b, g->chunk, i64_at(g, vals, nv));
  return args;
}

void put_aside(Cg *g, Caller *c) {
  *c = (Caller){.fn = g->fn, .syms = g->syms, .par_lo = g->par_lo, .par_hi = g->par_hi, .chunk = g->chunk,
                .bufs = g->bufs, .vars = g->vars, .accs = g->accs, .par = g->par, .par_inner = g->par_inner,
                .resume = LLVMGetInsertBlock(g->b), .scope = g->scope};
  memcpy(c->sym_vals, g->sym_vals, sizeof c->sym_vals);
  memcpy(c->lanes, g->lanes, sizeof c->lanes);
  memset(g->lanes, 0, sizeof g->lanes);
  c->open = nnc_xcalloc((size_t)g->nscopes + 1, sizeof *c->open);
  for (int i = 0; i < g->nscopes; i++) /* no value memoized in the caller is reused */
    if (g->scope_open[i]) {
      c->open[c->nopen++] = i;
      g->scope_open[i] = false;
    }
}

void restore(Cg *g, Caller *c) {
  for (int i = 0; i < c->nopen; i++) g->scope_open[c->open[i]] = true;
  free(c->open);
  g->fn = c->fn, g->syms = c->syms, g->par_lo = c->par_lo, g->par_hi = c->par_hi, g->chunk = c->chunk;
  g->bufs = c->bufs, g->vars = c->vars, g->accs = c->accs, g->par = c->par, g->par_inner = c->par_inner;
  g->scope = c->scope;
  memcpy(g->sym_vals, c->sym_vals, sizeof c->sym_vals);
  memcpy(g->lanes, c->lanes, sizeof c->lanes);
  LLVMPositionBuilderAtEnd(g->b, c->resume);
}

void uses_take(Cg *g, const Uses *u, LLVMValueRef args) {
  int nb = g->le->nbufs, nv = u->nvars;
  g->syms = LLVMGetParam(g->fn, 1);
  load_syms(g);
  g->bufs = nnc_xcalloc((size_t)nb + 1, sizeof *g->bufs);
  for (int i = 0; i < nb; i++)
    if (u->bufs[i]) g->bufs[i] = LLVMBuildLoad2(g->b, g->ptr, ptr_at(g, args, i), "");
  LLVMValueRef vals = LLVMBuildLoad2(g->b, g->ptr, ptr_at(g, args, nb), "");
  g->vars = nnc_xcalloc((size_t)nv + 1, sizeof *g->vars);
  for (int i = 0; i < nv; i++)
    if (u->vars[i] && !u->inner[i]) g->vars[i] = LLVMBuildLoad2(g->b, g->i64, i64_at(g, vals, i), "");
  g->chunk = LLVMBuildLoad2(g->b, g->i64, i64_at(g, vals, nv), "chunk");
  int naccs = g->le_kernel->naccs;
  g->accs = nnc_xcalloc((size_t)naccs + 1, sizeof *g->accs);
  for (int i = 0; i < naccs; i++) g->accs[i] = LLVMBuildAlloca(g->b, g->f32, "acc");
}

void uses_drop(Cg *g) {
  free(g->bufs);
  free(g->vars);
  free(g->accs);
}
