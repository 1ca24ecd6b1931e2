/* profile.c — the timed sites of an entry body ($NNC_PROFILE: runtime/support/profile.h).
 *
 * Every entry body and every kernel call in it gets a static nnc_prof_site.  The body loads
 * nnc_rt_profiling once; each timed place then costs a branch when profiling is off, and a
 * clock read before and nnc_rt_prof_end after when it is on.  Init entries are not timed:
 * they run once, inside the compiler too. */
#include <string.h>

#include "cg.h"

static LLVMTypeRef site_type(Cg *g) {
  /* nnc_prof_site: name, entry, calls, ns, first_ns, next, listed */
  LLVMTypeRef f[] = {g->ptr, g->ptr, g->i64, g->i64, g->i64, g->ptr, g->i64};
  return LLVMStructTypeInContext(g->ctx, f, 7, 0);
}

/* A site named `name`, belonging to the entry body's site `entry` (NULL: it is one). */
LLVMValueRef prof_site(Cg *g, const char *name, LLVMValueRef entry) {
  LLVMValueRef text = LLVMConstStringInContext2(g->ctx, name, strlen(name), 0);
  LLVMValueRef str = LLVMAddGlobal(g->mod, LLVMTypeOf(text), "nnc.prof.name");
  LLVMSetInitializer(str, text);
  LLVMSetGlobalConstant(str, 1);
  LLVMSetLinkage(str, LLVMPrivateLinkage);
  LLVMValueRef zero = ci64(g, 0), null = LLVMConstNull(g->ptr);
  LLVMValueRef f[] = {str, entry ? entry : null, zero, zero, zero, null, zero};
  LLVMValueRef site = LLVMAddGlobal(g->mod, site_type(g), "nnc.prof.site");
  LLVMSetInitializer(site, LLVMConstNamedStruct(site_type(g), f, 7));
  LLVMSetLinkage(site, LLVMInternalLinkage);
  LLVMSetAlignment(site, 8);
  return site;
}

/* At the start of a timed body: whether profiling is on (an i1), into g->prof_on. */
void prof_load_flag(Cg *g) {
  LLVMValueRef flag = LLVMGetNamedGlobal(g->mod, "nnc_rt_profiling");
  if (!flag) flag = LLVMAddGlobal(g->mod, g->i32, "nnc_rt_profiling");
  LLVMValueRef on = LLVMBuildLoad2(g->b, g->i32, flag, "profiling");
  g->prof_on = LLVMBuildICmp(g->b, LLVMIntNE, on, LLVMConstInt(g->i32, 0, 0), "");
}

/* if (prof_on) { ... }: if_on branches into a block of its own (the function's last
 * blocks: their order does not matter) and end_if_on joins after it. */
typedef struct IfOn { LLVMBasicBlockRef from, join; } IfOn;

static IfOn if_on(Cg *g, const char *what) {
  IfOn c = {LLVMGetInsertBlock(g->b), NULL};
  LLVMBasicBlockRef on = LLVMAppendBasicBlockInContext(g->ctx, g->fn, what);
  c.join = LLVMAppendBasicBlockInContext(g->ctx, g->fn, "prof.join");
  LLVMBuildCondBr(g->b, g->prof_on, on, c.join);
  LLVMPositionBuilderAtEnd(g->b, on);
  return c;
}

static void end_if_on(Cg *g, IfOn c) {
  LLVMBuildBr(g->b, c.join);
  LLVMPositionBuilderAtEnd(g->b, c.join);
}

/* The time a timed place starts: the clock when profiling is on, else 0. */
LLVMValueRef prof_begin(Cg *g) {
  IfOn c = if_on(g, "prof.begin");
  LLVMValueRef t = call_extern(g, "nnc_rt_prof_begin", g->i64, NULL, 0, NULL);
  LLVMBasicBlockRef read = LLVMGetInsertBlock(g->b);
  end_if_on(g, c);
  LLVMValueRef t0 = LLVMBuildPhi(g->b, g->i64, "prof.t0");
  LLVMAddIncoming(t0, (LLVMValueRef[]){ci64(g, 0), t}, (LLVMBasicBlockRef[]){c.from, read}, 2);
  return t0;
}

/* One call of `site`, begun at t0 (prof_begin). */
void prof_end(Cg *g, LLVMValueRef site, LLVMValueRef t0) {
  IfOn c = if_on(g, "prof.end");
  call_extern(g, "nnc_rt_prof_end", g->voidt, (LLVMTypeRef[]){g->ptr, g->i64}, 2, (LLVMValueRef[]){site, t0});
  end_if_on(g, c);
}
