/* split_inner.c — a loop inside a kernel's split loop, split among the threads too
 * (Ls.split_inner, parallel.c: a convolution's padded copy, Winograd's transforms).
 *
 * The loop becomes a kernel function of its own, void f(ptr args, ptr syms, i64 lo, i64 hi),
 * called through nnc_rt_parallel_for with its trip count: the pool splits it when it is idle
 * (the kernel's split loop had one item, one image, and runs on the calling thread), and
 * runs it whole on the calling thread when busy (a chunk of the split loop).  `args` holds
 * the buffers the loop uses, then a pointer to the values it takes from around it: the
 * variables of the loops it is in, and the kernel's chunk (LX_CHUNK: scratch at the split
 * loop's chunk, shared by the inner loop's iterations, each writing its own part), as
 * outline.c passes and takes them. */
#include "cg.h"

static void uses_of(Cg *g, Uses *u, const Ls *s) {
  if (s->k == LS_LOOP && s->var < u->nvars) u->inner[s->var] = true;
  if (s->k == LS_STORE && s->buf >= 0) u->bufs[s->buf] = true;
  Lx *xs[] = {s->lo, s->hi, s->step, s->idx, s->val};
  for (int i = 0; i < 5; i++) uses_of_expr(g, u, xs[i]);
  for (int i = 0; i < s->nbody; i++) uses_of(g, u, s->body[i]);
}

/* The loop's function: its iterations [lo, hi), from the buffers and values in args. */
static LLVMValueRef split_function(Cg *g, Ls *s, const Uses *u) {
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
  g->par_lo = LLVMGetParam(fn, 2);
  g->par_hi = LLVMGetParam(fn, 3);
  g->par = s;
  g->par_inner = NULL;
  uses_take(g, u, LLVMGetParam(fn, 0));
  int parent = scope_push(g); /* what is memoized in the function stays in it */
  emit_loop(g, s);             /* s is g->par here: this call's iterations */
  LLVMBuildRetVoid(g->b);
  scope_pop(g, parent);
  uses_drop(g);
  return fn;
}

void emit_split_inner(Cg *g, Ls *s) {
  Uses u = uses_new(g);
  uses_of(g, &u, s);
  LLVMValueRef args = uses_pass(g, &u); /* the caller's side: the buffers and values the loop takes */
  LLVMValueRef trip = trip_of(g, s);
  Caller c;
  put_aside(g, &c);
  LLVMValueRef fn = split_function(g, s, &u);
  restore(g, &c);
  call_parallel(g, "nnc_rt_parallel_for", fn, args, trip, s->split_work);
  uses_free(&u);
}
