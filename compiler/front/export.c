/* export.c — an exported entry point: its signature (inputs with types whose symbolic dims
 * become the model's symbols, declared outputs) and its body, evaluated into the graph IR of
 * a new entry whose outputs are checked against the declared types.  An alias (sema.c,
 * build_alias) builds its export's declaration again under its own name. */
#include <string.h>
#include "eval.h"

bool eval_type(Sema *S, const Node *type, Shape *s, DType *dt) {
  if (!type) return diag_error(S->d, (SrcLoc){0, 0}, "missing type");
  if (!strcmp(type->name, "f32")) *dt = DT_F32;
  else if (!strcmp(type->name, "i64")) *dt = DT_I64;
  else return diag_error(S->d, type->loc, "unknown element type '%s' (expected f32 or i64)", type->name);
  if (type->args.len > MAX_RANK) return diag_error(S->d, type->loc, "rank %d exceeds the maximum of %d", type->args.len, MAX_RANK);
  s->rank = type->args.len;
  for (int i = 0; i < s->rank; i++) {
    const Node *dn = type->args.items[i];
    if (dn->kind == N_NAME && !scope_lookup(S->globals, dn->name)) {
      int sym = model_sym(S->m, dn->name);
      if (sym < 0) return diag_error(S->d, dn->loc, "too many symbolic dimensions (at most %d)", MAX_SYMS);
      s->d[i] = (Dim){1, 1u << sym};
      continue;
    }
    Value v;
    if (!eval_api(S, S->globals, dn, &v) || !to_dim(S, &v, dn->loc, &s->d[i])) return false;
  }
  return ir_shape_supported(S->m, s, type->loc, S->d);
}

bool check_declared(Sema *S, const Node *p, INode *t, const Shape *want, DType dt, SrcLoc loc) {
  if (shape_eq(&t->shape, want) && t->dtype == dt) return true;
  char a[128], b[128];
  return diag_error(S->d, loc, "'%s' is declared %s but its value is %s", p->name,
                    shape_str(S->m, dt, want, a, sizeof a), shape_str(S->m, t->dtype, &t->shape, b, sizeof b));
}

/* The model's symbolic dims named anywhere in dim expression n (`2 * N`): bound by the input. */
static uint32_t syms_named(Sema *S, const Node *n) {
  if (!n) return 0;
  uint32_t m = syms_named(S, n->lhs) | syms_named(S, n->rhs) | syms_named(S, n->cond);
  for (int i = 0; i < n->args.len; i++) m |= syms_named(S, n->args.items[i]);
  if (n->kind == N_NAME && !scope_lookup(S->globals, n->name))
    for (int i = 0; i < S->m->nsyms; i++)
      if (!strcmp(S->m->sym_names[i], n->name)) m |= 1u << i;
  return m;
}

/* The symbolic dims an entry's inputs name alone (`x: f32[N, 4]`), known before any input
 * type is evaluated, so that an earlier input may use them in an expression (`f32[2 * N]`). */
static bool declare_input_symbols(Sema *S, const Node *decl) {
  for (int i = 0; i < decl->args.len; i++) {
    const Node *type = decl->args.items[i]->type;
    for (int j = 0; type && j < type->args.len; j++) {
      const Node *dn = type->args.items[j];
      if (dn->kind != N_NAME || scope_lookup(S->globals, dn->name)) continue;
      int sym = model_sym(S->m, dn->name);
      if (sym < 0) return diag_error(S->d, dn->loc, "too many symbolic dimensions (at most %d)", MAX_SYMS);
      S->entry_syms |= 1u << sym; /* the names the body may use (sema.c, eval_name) */
    }
  }
  for (int i = 0; i < decl->args.len; i++) /* and those in expressions, f32[2 * N] */
    for (int j = 0; decl->args.items[i]->type && j < decl->args.items[i]->type->args.len; j++)
      S->entry_syms |= syms_named(S, decl->args.items[i]->type->args.items[j]);
  return true;
}

bool build_export(Sema *S, const Node *decl, const char *name, SrcLoc loc) {
  Model *m = S->m;
  if (m->nentries == m->entries_cap) {
    int cap = m->entries_cap ? 2 * m->entries_cap : 8;
    Entry *v = arena_alloc(S->arena, cap * sizeof *v);
    if (m->nentries) memcpy(v, m->entries, m->nentries * sizeof *v);
    m->entries = v;
    m->entries_cap = cap;
  }
  Entry *e = &m->entries[m->nentries++];
  memset(e, 0, sizeof *e);
  e->name = name;
  e->loc = loc;
  e->nin = decl->args.len;
  e->nout = decl->outs.len;
  e->inputs = arena_alloc(S->arena, (e->nin + 1) * sizeof *e->inputs);
  e->in_names = arena_alloc(S->arena, (e->nin + 1) * sizeof *e->in_names);
  e->outputs = arena_alloc(S->arena, (e->nout + 1) * sizeof *e->outputs);
  e->out_names = arena_alloc(S->arena, (e->nout + 1) * sizeof *e->out_names);
  e->out_shapes = arena_alloc(S->arena, (e->nout + 1) * sizeof *e->out_shapes);
  e->out_dtypes = arena_alloc(S->arena, (e->nout + 1) * sizeof *e->out_dtypes);
  if (e->nout == 0) return diag_error(S->d, decl->loc, "entry '%s' has no outputs", decl->name);
  S->e = e;
  S->entry_syms = 0;
  Scope *sc = scope_new(S, S->globals);
  if (!declare_input_symbols(S, decl)) return false;
  for (int i = 0; i < e->nin; i++) {
    const Node *p = decl->args.items[i];
    Shape s;
    DType dt;
    if (!p->type) return diag_error(S->d, p->loc, "entry input '%s' needs a type, e.g. %s: f32[N, 4]", p->name, p->name);
    if (!eval_type(S, p->type, &s, &dt)) return false;
    for (int k = 0; k < i; k++)
      if (!strcmp(e->in_names[k], p->name)) return diag_error(S->d, p->loc, "input '%s' declared twice", p->name);
    e->in_names[i] = p->name;
    e->inputs[i] = ir_input(m, e, i, dt, &s, p->loc);
    scope_set(S, sc, p->name, v_tensor(e->inputs[i]));
  }
  for (int i = 0; i < e->nout; i++) {
    const Node *p = decl->outs.items[i];
    if (!p->type) return diag_error(S->d, p->loc, "entry output '%s' needs a type", p->name);
    if (!eval_type(S, p->type, &e->out_shapes[i], &e->out_dtypes[i])) return false;
    e->out_names[i] = p->name;
  }
  Value ret = v_none();
  int r = exec_block_api(S, sc, &decl->body, &ret);
  if (!r) return false;
  if (r == 2) return diag_error(S->d, decl->loc, "an export assigns its named outputs instead of using return");
  for (int i = 0; i < e->nout; i++) {
    const Node *p = decl->outs.items[i];
    Value *v = scope_find_local(sc, p->name);
    if (!v) return diag_error(S->d, p->loc, "output '%s' is never assigned", p->name);
    INode *t = v->k == V_TENSOR ? v->t : NULL;
    if (!t && v_is_number(v)) t = ir_fill(m, e, v_num(v), &e->out_shapes[i], p->loc);
    if (!t) return diag_error(S->d, p->loc, "output '%s' is a %s, not a tensor", p->name, v_kind_name(v->k));
    t = ir_convert(m, e, t, e->out_dtypes[i], p->loc, S->d); /* an i64 output: as by .long() */
    if (!t || !check_declared(S, p, t, &e->out_shapes[i], e->out_dtypes[i], p->loc)) return false;
    e->outputs[i] = t;
  }
  S->e = NULL;
  S->entry_syms = 0;
  return true;
}
