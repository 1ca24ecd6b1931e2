/* model_table.c — what a generated library exports besides its kernels: the introspection
 * table `nnc_model_info()` (the layout of nnc_model.h: entries with their argument shapes and
 * workspace slots, parameters, the embedded weights, the init entry) that the runtime's
 * nnc_ctx_* functions read, and the typed C wrappers `<model>_open`, `<model>_<entry>`, ...
 * over them, whose prototypes header.c writes. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include "cg.h"
#include "nnc_model.h"
#include "passes.h"
#include "table.h"

/* ---- introspection table (layout of nnc_model.h) ---- */

static LLVMValueRef cstring(Cg *g, const char *s) {
  LLVMValueRef init = LLVMConstStringInContext2(g->ctx, s, strlen(s), 0);
  LLVMValueRef gv = LLVMAddGlobal(g->mod, LLVMTypeOf(init), "nnc.str");
  LLVMSetInitializer(gv, init);
  LLVMSetGlobalConstant(gv, 1);
  LLVMSetLinkage(gv, LLVMPrivateLinkage);
  LLVMSetUnnamedAddress(gv, LLVMGlobalUnnamedAddr);
  return gv;
}

static LLVMValueRef const_array_global(Cg *g, LLVMTypeRef elem, LLVMValueRef *vals, int n, const char *name) {
  if (n == 0) return LLVMConstNull(g->ptr);
  LLVMValueRef init = LLVMConstArray2(elem, vals, (uint64_t)n);
  LLVMValueRef gv = LLVMAddGlobal(g->mod, LLVMTypeOf(init), name);
  LLVMSetInitializer(gv, init);
  LLVMSetGlobalConstant(gv, 1);
  LLVMSetLinkage(gv, LLVMPrivateLinkage);
  return gv;
}

static LLVMValueRef i32c(Cg *g, int64_t v) { return LLVMConstInt(g->i32, (unsigned long long)v, 1); }

/* An nnc_dim {k, syms} constant. */
static LLVMValueRef const_dim(Cg *g, LLVMTypeRef dim_t, int64_t k, uint32_t syms) {
  return LLVMConstNamedStruct(dim_t, (LLVMValueRef[]){ci64(g, k), i32c(g, syms)}, 2);
}

static LLVMValueRef dims_global(Cg *g, LLVMTypeRef dim_t, const Shape *s) {
  LLVMValueRef v[MAX_RANK];
  for (int i = 0; i < s->rank; i++)
    v[i] = const_dim(g, dim_t, s->d[i].k, s->d[i].syms);
  return const_array_global(g, dim_t, v, s->rank, "nnc.dims");
}

/* nnc_sym_rule[n_syms], or NULL when every symbolic dim is bound by the caller. */
static LLVMValueRef sym_rules_global(Cg *g) {
  const Model *m = g->m;
  bool any = false;
  for (int i = 0; i < m->nsyms; i++) any |= m->sym_rules[i].derived;
  if (!any) return LLVMConstNull(g->ptr);
  LLVMTypeRef rule_t = LLVMStructCreateNamed(g->ctx, "nnc_sym_rule");
  LLVMStructSetBody(rule_t, (LLVMTypeRef[]){g->i32, g->i32, g->i64, g->i64, g->i64, g->ptr}, 6, 0);
  LLVMValueRef v[MAX_SYMS];
  for (int i = 0; i < m->nsyms; i++) {
    const SymRule *r = &m->sym_rules[i];
    v[i] = LLVMConstNamedStruct(rule_t, (LLVMValueRef[]){i32c(g, r->derived ? r->src : -1),
      i32c(g, sym_rule_flags(r)), ci64(g, r->mul), ci64(g, r->add), ci64(g, r->div),
      r->derived ? cstring(g, r->site) : LLVMConstNull(g->ptr)}, 6);
  }
  return const_array_global(g, rule_t, v, m->nsyms, "nnc.sym_rules");
}

LLVMValueRef emit_desc(Cg *g, const LEntry *les, LLVMValueRef *bodies, const unsigned char *weights) {
  const Model *m = g->m;
  LLVMContextRef C = g->ctx;
  LLVMTypeRef dim_t = LLVMStructCreateNamed(C, "nnc_dim");
  LLVMStructSetBody(dim_t, (LLVMTypeRef[]){g->i64, g->i32}, 2, 0);
  LLVMTypeRef slot_t = LLVMStructCreateNamed(C, "nnc_slot");
  LLVMStructSetBody(slot_t, (LLVMTypeRef[]){dim_t, dim_t, g->i32}, 3, 0);
  LLVMTypeRef arg_t = LLVMStructCreateNamed(C, "nnc_arg_desc");
  LLVMStructSetBody(arg_t, (LLVMTypeRef[]){g->ptr, g->i32, g->i32, g->ptr}, 4, 0);
  LLVMTypeRef entry_t = LLVMStructCreateNamed(C, "nnc_entry_desc");
  LLVMStructSetBody(entry_t, (LLVMTypeRef[]){g->ptr, g->i32, g->i32, g->ptr, g->i32, g->ptr, g->ptr, g->i32}, 8, 0);
  LLVMTypeRef param_t = LLVMStructCreateNamed(C, "nnc_param_desc");
  LLVMStructSetBody(param_t, (LLVMTypeRef[]){g->ptr, g->i32, g->i32, g->ptr, g->i64, g->i64, g->i32}, 7, 0);
  LLVMTypeRef model_t = LLVMStructCreateNamed(C, "nnc_model_desc");
  LLVMStructSetBody(model_t, (LLVMTypeRef[]){g->i32, g->ptr, g->i32, g->ptr, g->i32, g->ptr, g->i32, g->ptr, g->i64, g->ptr, g->ptr, g->i64, g->ptr}, 13, 0);

  /* entries, then (index nentries) the init entry when it runs at load time */
  int nent = m->nentries + (bodies[m->nentries] != NULL);
  LLVMValueRef *entries = nnc_xcalloc(nent + 1, sizeof *entries);
  for (int i = 0; i < nent; i++) {
    const Entry *e = les[i].e;
    int na = e->nin + e->nout;
    LLVMValueRef *args = nnc_xcalloc(na + 1, sizeof *args);
    for (int a = 0; a < na; a++) {
      bool in = a < e->nin;
      const Shape *s = in ? &e->inputs[a]->shape : &e->out_shapes[a - e->nin];
      DType dt = in ? e->inputs[a]->dtype : e->out_dtypes[a - e->nin];
      args[a] = LLVMConstNamedStruct(arg_t, (LLVMValueRef[]){
        cstring(g, in ? e->in_names[a] : e->out_names[a - e->nin]), i32c(g, dt), i32c(g, s->rank),
        dims_global(g, dim_t, s)}, 4);
    }
    int nr = plan_regions(e, NULL);
    nnc_slot *regions = nnc_xcalloc(nr + 1, sizeof *regions);
    LLVMValueRef *slots = nnc_xcalloc(nr + 1, sizeof *slots);
    plan_regions(e, regions);
    for (int r = 0; r < nr; r++) {
      const nnc_slot *sl = &regions[r];
      slots[r] = LLVMConstNamedStruct(slot_t, (LLVMValueRef[]){const_dim(g, dim_t, sl->bytes.k, sl->bytes.syms),
        const_dim(g, dim_t, sl->at.k, sl->at.syms), i32c(g, sl->overlay)}, 3);
    }
    free(regions);
    entries[i] = LLVMConstNamedStruct(entry_t, (LLVMValueRef[]){
      cstring(g, e->name), i32c(g, e->nin), i32c(g, e->nout),
      const_array_global(g, arg_t, args, na, "nnc.args"), i32c(g, nr),
      const_array_global(g, slot_t, slots, nr, "nnc.slots"), bodies[i], i32c(g, (int32_t)entry_syms_used(g->m, e))}, 8);
    free(args);
    free(slots);
  }
  int nparams = m->nparams_loaded; /* derived parameters are not in the table */
  LLVMValueRef *params = nnc_xcalloc(nparams + 1, sizeof *params);
  for (int i = 0; i < nparams; i++) {
    const Param *p = &m->params[i];
    LLVMValueRef sh[MAX_RANK];
    for (int k = 0; k < p->rank; k++) sh[k] = ci64(g, p->shape[k]);
    params[i] = LLVMConstNamedStruct(param_t, (LLVMValueRef[]){
      cstring(g, p->name), i32c(g, p->dtype), i32c(g, p->rank),
      const_array_global(g, g->i64, sh, p->rank, "nnc.shape"), ci64(g, (int64_t)p->offset), ci64(g, (int64_t)p->nbytes),
      i32c(g, p->optional ? NNC_PARAM_OPTIONAL : 0)}, 7);
  }
  LLVMValueRef *syms = nnc_xcalloc(m->nsyms + 1, sizeof *syms);
  for (int i = 0; i < m->nsyms; i++) syms[i] = cstring(g, m->sym_names[i]);
  LLVMValueRef blob = LLVMConstNull(g->ptr);
  uint64_t checksum = 0;
  if (weights && m->weights_size) {
    checksum = nnc_weights_checksum(weights, m->weights_size);
    LLVMValueRef init = LLVMConstStringInContext2(C, (const char *)weights, m->weights_size, 1);
    blob = LLVMAddGlobal(g->mod, LLVMTypeOf(init), "nnc.weights");
    LLVMSetInitializer(blob, init);
    LLVMSetGlobalConstant(blob, 1);
    LLVMSetLinkage(blob, LLVMPrivateLinkage);
    LLVMSetAlignment(blob, 64);
  }
  LLVMValueRef init = LLVMConstNull(g->ptr);
  if (nent > m->nentries) {
    init = LLVMAddGlobal(g->mod, entry_t, "nnc.init");
    LLVMSetInitializer(init, entries[m->nentries]);
    LLVMSetGlobalConstant(init, 1);
    LLVMSetLinkage(init, LLVMPrivateLinkage);
  }
  LLVMValueRef rules = sym_rules_global(g);
  LLVMValueRef desc_init = LLVMConstNamedStruct(model_t, (LLVMValueRef[]){
    i32c(g, NNC_MODEL_ABI), cstring(g, m->name), i32c(g, m->nsyms),
    const_array_global(g, g->ptr, syms, m->nsyms, "nnc.syms"), i32c(g, m->nentries),
    const_array_global(g, entry_t, entries, m->nentries, "nnc.entries"), i32c(g, nparams),
    const_array_global(g, param_t, params, nparams, "nnc.params"), ci64(g, (int64_t)m->weights_size), blob,
    init, ci64(g, (int64_t)checksum), rules}, 13);
  free(entries);
  free(params);
  free(syms);
  LLVMValueRef desc = LLVMAddGlobal(g->mod, model_t, "nnc.model");
  LLVMSetInitializer(desc, desc_init);
  LLVMSetGlobalConstant(desc, 1);
  LLVMSetLinkage(desc, LLVMInternalLinkage);
  return desc;
}

/* ---- exported functions ---- */

static LLVMValueRef add_exported(Cg *g, const char *name, LLVMTypeRef ft) {
  LLVMValueRef fn = LLVMAddFunction(g->mod, name, ft);
  LLVMPositionBuilderAtEnd(g->b, LLVMAppendBasicBlockInContext(g->ctx, fn, "entry"));
  return fn;
}

void emit_wrappers(Cg *g, LLVMValueRef desc) {
  const Model *m = g->m;
  const char *mn = g->model_name;
  char name[256];
  LLVMTypeRef p = g->ptr, i32 = g->i32, i64 = g->i64;
  /* const nnc_model_desc *nnc_model_info(void) */
  add_exported(g, "nnc_model_info", LLVMFunctionType(p, NULL, 0, 0));
  LLVMBuildRet(g->b, desc);
  /* <m>_ctx *<m>_open(const char *weights_path, char *err, size_t n) */
  LLVMTypeRef open_pt[] = {p, p, p, i64};
  snprintf(name, sizeof name, "%s_open", mn);
  LLVMValueRef fn = add_exported(g, name, LLVMFunctionType(p, open_pt + 1, 3, 0));
  LLVMValueRef args[4] = {desc, LLVMGetParam(fn, 0), LLVMGetParam(fn, 1), LLVMGetParam(fn, 2)};
  LLVMBuildRet(g->b, call_extern(g, "nnc_ctx_open", p, open_pt, 4, args));
  snprintf(name, sizeof name, "%s_close", mn);
  fn = add_exported(g, name, LLVMFunctionType(g->voidt, &p, 1, 0));
  call_extern(g, "nnc_ctx_close", g->voidt, &p, 1, (LLVMValueRef[]){LLVMGetParam(fn, 0)});
  LLVMBuildRetVoid(g->b);
  snprintf(name, sizeof name, "%s_error", mn);
  fn = add_exported(g, name, LLVMFunctionType(p, &p, 1, 0));
  LLVMBuildRet(g->b, call_extern(g, "nnc_ctx_error", p, &p, 1, (LLVMValueRef[]){LLVMGetParam(fn, 0)}));
  /* int <m>_set_threads(ctx, int n) */
  snprintf(name, sizeof name, "%s_set_threads", mn);
  LLVMTypeRef st_pt[] = {p, i32};
  fn = add_exported(g, name, LLVMFunctionType(i32, st_pt, 2, 0));
  LLVMBuildRet(g->b, call_extern(g, "nnc_ctx_set_threads", i32, st_pt, 2,
                                 (LLVMValueRef[]){LLVMGetParam(fn, 0), LLVMGetParam(fn, 1)}));
  /* int <m>_<entry>(ctx, int64_t syms..., inputs..., outputs...) */
  for (int i = 0; i < m->nentries; i++) {
    const Entry *e = &m->entries[i];
    uint32_t mask = entry_sym_mask(m, e);
    int ns = __builtin_popcount(mask), na = e->nin + e->nout;
    LLVMTypeRef *pt = nnc_xcalloc(1 + ns + na, sizeof *pt);
    pt[0] = p;
    for (int k = 0; k < ns; k++) pt[1 + k] = i64;
    for (int k = 0; k < na; k++) pt[1 + ns + k] = p;
    snprintf(name, sizeof name, "%s_%s", mn, e->name);
    fn = add_exported(g, name, LLVMFunctionType(i32, pt, 1 + ns + na, 0));
    free(pt);
    LLVMValueRef argv = LLVMBuildArrayAlloca(g->b, p, ci64(g, na ? na : 1), "args");
    LLVMValueRef symv = LLVMBuildArrayAlloca(g->b, i64, ci64(g, m->nsyms ? m->nsyms : 1), "syms");
    for (int k = 0, s = 0; k < m->nsyms; k++) {
      LLVMValueRef v = mask & (1u << k) ? LLVMGetParam(fn, 1 + s++) : ci64(g, 0);
      LLVMBuildStore(g->b, v, LLVMBuildGEP2(g->b, i64, symv, (LLVMValueRef[]){ci64(g, k)}, 1, ""));
    }
    for (int k = 0; k < na; k++)
      LLVMBuildStore(g->b, LLVMGetParam(fn, 1 + ns + k), LLVMBuildGEP2(g->b, p, argv, (LLVMValueRef[]){ci64(g, k)}, 1, ""));
    LLVMTypeRef call_pt[] = {p, i32, p, p};
    LLVMValueRef cargs[] = {LLVMGetParam(fn, 0), i32c(g, i), argv, symv};
    LLVMBuildRet(g->b, call_extern(g, "nnc_ctx_call", i32, call_pt, 4, cargs));
  }
}

const char *model_c_name(const Model *m, char *buf, size_t size) {
  size_t n = 0;
  if (!isalpha((unsigned char)m->name[0]) && m->name[0] != '_') buf[n++] = '_';
  for (const char *s = m->name; *s && n < size - 1; s++) buf[n++] = isalnum((unsigned char)*s) ? *s : '_';
  buf[n] = 0;
  return buf;
}

uint32_t entry_sym_mask(const Model *m, const Entry *e) {
  uint32_t mask = 0;
  for (int i = 0; i < e->nin; i++)
    for (int k = 0; k < e->inputs[i]->shape.rank; k++) mask |= e->inputs[i]->shape.d[k].syms;
  for (int i = 0; i < e->nout; i++)
    for (int k = 0; k < e->out_shapes[i].rank; k++) mask |= e->out_shapes[i].d[k].syms;
  return model_sym_roots(m, mask); /* a derived dim is computed from its root's value */
}
