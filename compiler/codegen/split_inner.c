/* split_inner.c — a loop inside a kernel's split loop, split among the threads too
 * (Ls.split_inner, parallel.c: a convolution's padded copy, Winograd's transforms).
 *
 * The loop becomes a kernel function of its own, void f(ptr args, ptr syms, i64 lo, i64 hi),
 * called through nnc_rt_parallel_for with its trip count: the pool splits it when it is idle
 * (the kernel's split loop had one item, one image, and runs on the calling thread), and
 * runs it whole on the calling thread when busy (a chunk of the split loop).  `args` holds
 * the buffers the loop uses, then a pointer to the values it takes from around it: the
 * variables of the loops it is in, and the kernel's chunk (LX_CHUNK: scratch at the split
 * loop's chunk, shared by the inner loop's iterations, each writing its own part).
 * While the function is emitted, the caller's function-local values (buffers, variables,
 * accumulators, symbolic dims, memoized expressions) are put aside: the function may not
 * refer to them. */
#include <stdlib.h>
#include <string.h>
#include "cg.h"

/* What the loop uses from around it. */
typedef struct Uses {
  bool *bufs;   /* [nbufs] */
  bool *vars;   /* [nvars] read inside */
  bool *inner;  /* [nvars] a loop's variable inside it */
  int nvars;
} Uses;

static void uses_of_expr(Cg *g, Uses *u, Lx *x) {
  if (!x || x->cg_walk == g->walk_gen) return;
  x->cg_walk = g->walk_gen;
  if (x->k == LX_VAR && x->var < u->nvars) u->vars[x->var] = true;
  if ((x->k == LX_LOAD || x->k == LX_LOADI) && x->buf >= 0) u->bufs[x->buf] = true;
  for (int i = 0; i < 3; i++) uses_of_expr(g, u, x->a[i]);
}

static void uses_of(Cg *g, Uses *u, const Ls *s) {
  if (s->k == LS_LOOP && s->var < u->nvars) u->inner[s->var] = true;
  if (s->k == LS_STORE && s->buf >= 0) u->bufs[s->buf] = true;
  Lx *xs[] = {s->lo, s->hi, s->step, s->idx, s->val};
  for (int i = 0; i < 5; i++) uses_of_expr(g, u, xs[i]);
  for (int i = 0; i < s->nbody; i++) uses_of(g, u, s->body[i]);
}

/* The caller's function-local state. */
typedef struct Caller {
  LLVMValueRef fn, syms, par_lo, par_hi, chunk;
  LLVMValueRef sym_vals[MAX_SYMS], lanes[REDUCE_LANES + 1];
  LLVMValueRef *bufs, *vars, *accs;
  const Ls *par, *par_inner;
  LLVMBasicBlockRef resume;
  int scope, *open, nopen;
} Caller;

static void put_aside(Cg *g, Caller *c) {
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

static void restore(Cg *g, Caller *c) {
  for (int i = 0; i < c->nopen; i++) g->scope_open[c->open[i]] = true;
  free(c->open);
  g->fn = c->fn, g->syms = c->syms, g->par_lo = c->par_lo, g->par_hi = c->par_hi, g->chunk = c->chunk;
  g->bufs = c->bufs, g->vars = c->vars, g->accs = c->accs, g->par = c->par, g->par_inner = c->par_inner;
  g->scope = c->scope;
  memcpy(g->sym_vals, c->sym_vals, sizeof c->sym_vals);
  memcpy(g->lanes, c->lanes, sizeof c->lanes);
  LLVMPositionBuilderAtEnd(g->b, c->resume);
}

/* Element i of the pointer array at p. */
static LLVMValueRef ptr_at(Cg *g, LLVMValueRef p, int i) {
  return LLVMBuildGEP2(g->b, g->ptr, p, (LLVMValueRef[]){ci64(g, i)}, 1, "");
}

static LLVMValueRef i64_at(Cg *g, LLVMValueRef p, int i) {
  return LLVMBuildGEP2(g->b, g->i64, p, (LLVMValueRef[]){ci64(g, i)}, 1, "");
}

/* The loop's function: its iterations [lo, hi), from the buffers and values in args. */
static LLVMValueRef split_function(Cg *g, Ls *s, const Uses *u, int nkernel_vars) {
  int nb = g->le->nbufs;
  char name[256];
  size_t len = 0;
  const char *caller = LLVMGetValueName2(g->fn, &len);
  snprintf(name, sizeof name, "%.*s.split", (int)len, caller);
  LLVMValueRef fn = LLVMAddFunction(g->mod, name, g->kernel_fn);
  LLVMSetLinkage(fn, LLVMInternalLinkage);
  unsigned nounwind = LLVMGetEnumAttributeKindForName("nounwind", 8);
  LLVMAddAttributeAtIndex(fn, LLVMAttributeFunctionIndex, LLVMCreateEnumAttribute(g->ctx, nounwind, 0));
  LLVMPositionBuilderAtEnd(g->b, LLVMAppendBasicBlockInContext(g->ctx, fn, "entry"));
  g->fn = fn;
  LLVMValueRef args = LLVMGetParam(fn, 0);
  g->syms = LLVMGetParam(fn, 1);
  g->par_lo = LLVMGetParam(fn, 2);
  g->par_hi = LLVMGetParam(fn, 3);
  g->par = s;
  g->par_inner = NULL;
  load_syms(g);
  g->bufs = nnc_xcalloc((size_t)nb + 1, sizeof *g->bufs);
  for (int i = 0; i < nb; i++)
    if (u->bufs[i]) g->bufs[i] = LLVMBuildLoad2(g->b, g->ptr, ptr_at(g, args, i), "");
  LLVMValueRef vals = LLVMBuildLoad2(g->b, g->ptr, ptr_at(g, args, nb), "");
  g->vars = nnc_xcalloc((size_t)nkernel_vars + 1, sizeof *g->vars);
  for (int i = 0; i < nkernel_vars; i++)
    if (u->vars[i] && !u->inner[i]) g->vars[i] = LLVMBuildLoad2(g->b, g->i64, i64_at(g, vals, i), "");
  g->chunk = LLVMBuildLoad2(g->b, g->i64, i64_at(g, vals, nkernel_vars), "chunk");
  int naccs = g->le_kernel->naccs;
  g->accs = nnc_xcalloc((size_t)naccs + 1, sizeof *g->accs);
  for (int i = 0; i < naccs; i++) g->accs[i] = LLVMBuildAlloca(g->b, g->f32, "acc");
  int parent = scope_push(g); /* what is memoized in the function stays in it */
  emit_loop(g, s);             /* s is g->par here: this call's iterations */
  LLVMBuildRetVoid(g->b);
  scope_pop(g, parent);
  free(g->bufs);
  free(g->vars);
  free(g->accs);
  return fn;
}

void emit_split_inner(Cg *g, Ls *s) {
  int nb = g->le->nbufs, nv = g->le_kernel->nvars;
  Uses u = {.bufs = nnc_xcalloc((size_t)nb + 1, 1), .vars = nnc_xcalloc((size_t)nv + 1, 1),
            .inner = nnc_xcalloc((size_t)nv + 1, 1), .nvars = nv};
  g->walk_gen++;
  uses_of(g, &u, s);
  /* the caller's side: the buffers and values the loop takes */
  LLVMValueRef args = entry_alloca(g, LLVMArrayType(g->ptr, (unsigned)nb + 1), "split_args");
  LLVMValueRef vals = entry_alloca(g, LLVMArrayType(g->i64, (unsigned)nv + 1), "split_vals");
  for (int i = 0; i < nb; i++)
    if (u.bufs[i]) LLVMBuildStore(g->b, g->bufs[i], ptr_at(g, args, i));
  LLVMBuildStore(g->b, vals, ptr_at(g, args, nb));
  for (int i = 0; i < nv; i++)
    if (u.vars[i] && !u.inner[i]) LLVMBuildStore(g->b, g->vars[i], i64_at(g, vals, i));
  LLVMBuildStore(g->b, g->chunk, i64_at(g, vals, nv));
  LLVMValueRef trip = trip_of(g, s);
  Caller c;
  put_aside(g, &c);
  LLVMValueRef fn = split_function(g, s, &u, nv);
  restore(g, &c);
  call_parallel(g, "nnc_rt_parallel_for", fn, args, trip, s->split_work);
  free(u.bufs);
  free(u.vars);
  free(u.inner);
}
