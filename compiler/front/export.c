/* export.c — an exported entry point: its signature (inputs with types whose symbolic dims
 * become the model's symbols, declared outputs) and its body, evaluated into the graph IR of
 * a new entry whose outputs are checked against the declared types; and export aliases
 * (build_alias, below), which build their export's declaration again under their own name
 * with some top-level constants rebound. */
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
    S->in_type = true;
    bool ok = eval_api(S, S->globals, dn, &v) && to_dim(S, &v, dn->loc, &s->d[i]);
    S->in_type = false;
    if (!ok) return false;
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

/* Declares the names of dim expression n that are not constants as symbolic dims. */
static bool declare_dim_names(Sema *S, const Node *n) {
  if (!n) return true;
  if (!declare_dim_names(S, n->lhs) || !declare_dim_names(S, n->rhs)) return false;
  if (n->kind != N_NAME || scope_lookup(S->globals, n->name)) return true;
  int sym = model_sym(S->m, n->name);
  if (sym < 0) return diag_error(S->d, n->loc, "too many symbolic dimensions (at most %d)", MAX_SYMS);
  S->entry_syms |= 1u << sym; /* the names the body may use (sema.c, eval_name) */
  return true;
}

/* The symbolic dims an entry's inputs name (`x: f32[N, 4]`, `f32[N, 3, 32 * HB, 32 * WB]`),
 * known before any input type is evaluated, so that an earlier input may use them. */
static bool declare_input_symbols(Sema *S, const Node *decl) {
  for (int i = 0; i < decl->args.len; i++) {
    const Node *type = decl->args.items[i]->type;
    for (int j = 0; type && j < type->args.len; j++)
      if (!declare_dim_names(S, type->args.items[j])) return false;
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

/* ---- export aliases: export NAME = EXPORT with CONST = expr, ... ---- */

static const Node *find_const(const Node *prog, const char *name) {
  for (int i = 0; i < prog->body.len; i++) {
    const Node *n = prog->body.items[i];
    if (n->kind == N_CONST && !strcmp(n->name, name)) return n;
  }
  return NULL;
}

static const char *decl_phrase(const Value *v) {
  if (v->k == V_MOD) return "a component";
  if (v->k != V_FN) return v_kind_phrase(v->k);
  switch (v->fn->kind) {
  case N_MODULE: return "a module";
  case N_EXPORT: return "an export";
  case N_ALIAS: return "an alias";
  default: return "a fn";
  }
}

/* The export alias `n` names, after checking what it rebinds: top-level consts, once each. */
static const Node *alias_target(Sema *S, const Node *prog, const Node *n) {
  const Node *t = n->lhs;
  Value *v = scope_find_local(S->globals, t->name);
  if (!v) return diag_error(S->d, t->loc, "unknown export '%s'", t->name), NULL;
  if (v->k == V_FN && v->fn->kind == N_ALIAS)
    return diag_error(S->d, t->loc, "'%s' is itself an alias (of '%s'): alias an export with a body, "
                      "with all the constants to rebind", t->name, v->fn->lhs->name), NULL;
  if (v->k != V_FN || v->fn->kind != N_EXPORT)
    return diag_error(S->d, t->loc, "'%s' is %s, not an export", t->name, decl_phrase(v)), NULL;
  for (int i = 0; i < n->args.len; i++) {
    const Node *b = n->args.items[i];
    for (int k = 0; k < i; k++)
      if (!strcmp(n->args.items[k]->name, b->name))
        return diag_error(S->d, b->loc, "'%s' is rebound twice", b->name), NULL;
    if (find_const(prog, b->name)) continue;
    Value *g = scope_find_local(S->globals, b->name);
    if (g) return diag_error(S->d, b->loc, "'%s' is %s, not a top-level const: an alias rebinds only "
                             "`const` declarations", b->name, decl_phrase(g)), NULL;
    return diag_error(S->d, b->loc, "unknown constant '%s' (an alias rebinds top-level `const` declarations)",
                      b->name), NULL;
  }
  return v->fn;
}

static int binding_of(const Node *alias, const char *name) {
  for (int i = 0; i < alias->args.len; i++)
    if (!strcmp(alias->args.items[i]->name, name)) return i;
  return -1;
}

/* Runs the top-level constants and asserts again, in order, with the alias's values vals[]
 * in place of the constants it rebinds, so that constants computed from those follow them
 * (as with -D; a -D value stays).  saved[] receives each constant's value before. */
static bool rebind_consts(Sema *S, const Node *prog, const Node *alias, const Value *vals, Value *saved) {
  int k = 0;
  for (int i = 0; i < prog->body.len; i++) {
    const Node *n = prog->body.items[i];
    Value v;
    if (n->kind == N_EXPR_STMT && !eval_api(S, S->globals, n->lhs, &v)) return false;
    if (n->kind != N_CONST) continue;
    Value *cur = scope_find_local(S->globals, n->name);
    saved[k++] = *cur;
    int b = binding_of(alias, n->name);
    if (b >= 0) v = vals[b];
    else if (find_define(S, n->name)) continue;
    else if (!eval_api(S, S->globals, n->rhs, &v)) return false;
    *cur = v;
  }
  return true;
}

static void restore_consts(Sema *S, const Node *prog, const Value *saved) {
  for (int i = 0, k = 0; i < prog->body.len; i++)
    if (prog->body.items[i]->kind == N_CONST) *scope_find_local(S->globals, prog->body.items[i]->name) = saved[k++];
}

/* The entry of an alias: its export's, built with the constants rebound (then restored).
 * The rebinding values are evaluated first, with the constants as they are: `T = 2 * T`. */
bool build_alias(Sema *S, const Node *prog, const Node *n) {
  const Node *target = alias_target(S, prog, n);
  if (!target) return false;
  Value *vals = arena_alloc(S->arena, (n->args.len + 1) * sizeof *vals);
  for (int i = 0; i < n->args.len; i++)
    if (!eval_api(S, S->globals, n->args.items[i]->rhs, &vals[i])) return false;
  Value *saved = arena_alloc(S->arena, (prog->body.len + 1) * sizeof *saved);
  if (!rebind_consts(S, prog, n, vals, saved) || !build_export(S, target, n->name, n->loc)) {
    diag_note(S->d, n->loc, "while building '%s', the export '%s' with %s%s rebound", n->name, target->name,
              n->args.len ? n->args.items[0]->name : "nothing", n->args.len > 1 ? ", ..." : "");
    return false;
  }
  restore_consts(S, prog, saved);
  return true;
}
