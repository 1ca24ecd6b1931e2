/* layers.c — torch.nn-style layer constructors (same names, argument order and defaults as
 * PyTorch), binding of module trees to state_dict names, and calling layers on tensors.
 *
 * A layer is built unnamed; when it is assigned to a top-level name or a module member, the
 * whole tree below it is bound: `phi = Sequential(Linear(25, 200), ELU())` registers
 * `phi.0.weight` and `phi.0.bias`, exactly as PyTorch's state_dict() names them.
 * The activation layers are the LAYER column of ops.def (`ELU(alpha=1.0, inplace=False)`):
 * each calls its elementwise op with the attributes given to its constructor. */
#include <string.h>
#include "eval.h"
#include "layers.h"

static ModInst *mod_new(Sema *S, ModKind k, const char *type_name, SrcLoc loc) {
  ModInst *mi = arena_alloc(S->arena, sizeof *mi);
  mi->kind = k;
  mi->type_name = type_name;
  mi->loc = loc;
  mi->p_weight = mi->p_bias = -1;
  return mi;
}

static bool num_arg(Sema *S, const Args *a, int i, const char *name, double def, double *out) {
  const Value *v = arg_get(a, i, name);
  if (!v) {
    *out = def;
    return true;
  }
  if (!v_is_number(v)) return diag_error(S->d, a->loc, "argument '%s' must be a number", name);
  *out = v_num(v);
  return true;
}

/* An activation layer of ops.def (variant: its op; OP_COUNT for Identity): its attributes
 * (PyTorch's names and defaults), then `inplace`, which changes nothing here. */
static bool b_activation(Sema *S, const Builtin *self, const Args *a, Value *out) {
  Op op = (Op)self->variant;
  OpAttrs attrs = op < OP_COUNT ? op_info[op].attrs : (OpAttrs)NO_ATTRS;
  const char *names[] = {attrs.name[0], attrs.name[1], "inplace"};
  if (!args_check(S, a, self->name, names, 3)) return false;
  ModInst *mi = mod_new(S, MK_ACTIVATION, self->name, a->loc);
  mi->act = op;
  if (!num_arg(S, a, 0, attrs.name[0], attrs.def[0], &mi->a0) || !num_arg(S, a, 1, attrs.name[1], attrs.def[1], &mi->a1))
    return false;
  *out = (Value){.k = V_MOD, .mod = mi};
  return true;
}

static const Builtin activation_layers[OP_COUNT] = {
#define OP(id, nm, ar, kind, print)
#define ELEM(id, nm, ar, traits, fn, layer, attrs, ev) [OP_##id] = {layer, b_activation, OP_##id},
#include "ops.def"
};

/* Linear(in_features, out_features, bias=True) */
static bool b_linear(Sema *S, const Builtin *self, const Args *a, Value *out) {
  static const char *names[] = {"in_features", "out_features", "bias"};
  if (!args_check(S, a, "Linear", names, 3)) return false;
  const Value *in = arg_get(a, 0, names[0]), *o = arg_get(a, 1, names[1]), *b = arg_get(a, 2, names[2]);
  if (!in || !o) return diag_error(S->d, a->loc, "Linear needs in_features and out_features");
  ModInst *mi = mod_new(S, MK_LINEAR, "Linear", a->loc);
  if (!to_int(S, in, a->loc, &mi->in_features) || !to_int(S, o, a->loc, &mi->out_features)) return false;
  if (mi->in_features <= 0 || mi->out_features <= 0)
    return diag_error(S->d, a->loc, "Linear sizes must be positive");
  mi->bias = !b || (v_is_number(b) && v_num(b) != 0);
  *out = (Value){.k = V_MOD, .mod = mi};
  return true;
}

/* Sequential(m0, m1, ...), or Sequential(list) as torch's nn.Sequential(*list): children
 * named 0, 1, ... */
static bool b_sequential(Sema *S, const Builtin *self, const Args *a, Value *out) {
  if (a->nkw) return diag_error(S->d, a->loc, "Sequential takes modules as positional arguments");
  const Value *items = a->pos;
  const SrcLoc *locs = a->pos_loc;
  int n = a->npos;
  if (n == 1 && (items[0].k == V_LIST || items[0].k == V_TUPLE)) { /* the modules of a list */
    n = items[0].len;
    items = items[0].items;
    locs = NULL;
  }
  ModInst *mi = mod_new(S, MK_SEQUENTIAL, "Sequential", a->loc);
  mi->nchildren = n;
  mi->children = arena_alloc(S->arena, (n + 1) * sizeof *mi->children);
  for (int i = 0; i < n; i++) {
    if (items[i].k != V_MOD)
      return diag_error(S->d, locs ? locs[i] : a->loc, "Sequential takes modules (or one list of them), not %s%s",
                        locs ? "" : "a list holding ", v_kind_phrase(items[i].k));
    mi->children[i] = items[i].mod;
  }
  *out = (Value){.k = V_MOD, .mod = mi};
  return true;
}

/* GELU(approximate='none'): the exact or the tanh form */
static bool b_gelu_layer(Sema *S, const Builtin *self, const Args *a, Value *out) {
  static const char *names[] = {"approximate"};
  Op op;
  if (!args_check(S, a, self->name, names, 1) || !gelu_op(S, arg_get(a, 0, names[0]), a->loc, &op)) return false;
  ModInst *mi = mod_new(S, MK_ACTIVATION, self->name, a->loc);
  mi->act = op;
  *out = (Value){.k = V_MOD, .mod = mi};
  return true;
}

static const Builtin layers[] = {
  {"Linear", b_linear}, {"Sequential", b_sequential}, {"Identity", b_activation, OP_COUNT},
  {"GELU", b_gelu_layer},
};

const Builtin *layer_find(const char *name) {
  for (size_t i = 0; i < sizeof layers / sizeof *layers; i++)
    if (!strcmp(layers[i].name, name)) return &layers[i];
  for (int op = 0; op < OP_COUNT; op++)
    if (activation_layers[op].name && !strcmp(activation_layers[op].name, name)) return &activation_layers[op];
  return nn_layer_find(name);
}

static const char *join(Sema *S, const char *prefix, const char *name) {
  size_t n = strlen(prefix) + strlen(name) + 2;
  char *s = arena_alloc(S->arena, n);
  snprintf(s, n, "%s.%s", prefix, name);
  return s;
}

static bool add_param(Sema *S, ModInst *mi, const char *name, int rank, const int64_t *shape, int *out) {
  const char *full = join(S, mi->prefix, name);
  *out = model_add_param(S->m, full, DT_F32, rank, shape, mi->loc);
  if (*out < 0) return diag_error(S->d, mi->loc, "parameter '%s' %s", full, model_param_error(*out));
  return true;
}

bool value_bind(Sema *S, Value *v, const char *prefix, SrcLoc loc) {
  if (v->k == V_MOD) return module_bind(S, v->mod, prefix, loc);
  if (v->k == V_LIST || v->k == V_TUPLE) {
    for (int i = 0; i < v->len; i++) {
      char idx[24];
      snprintf(idx, sizeof idx, "%d", i);
      if (!value_bind(S, &v->items[i], join(S, prefix, idx), loc)) return false;
    }
  }
  return true;
}

/* Name a module tree and register its parameters (PyTorch's registration order). */
bool module_bind(Sema *S, ModInst *mi, const char *prefix, SrcLoc loc) {
  if (mi->prefix) return true; /* shared module: its parameters keep their first name */
  mi->prefix = prefix;
  switch (mi->kind) {
  case MK_LINEAR: {
    int64_t w[2] = {mi->out_features, mi->in_features};
    if (!add_param(S, mi, "weight", 2, w, &mi->p_weight)) return false;
    return !mi->bias || add_param(S, mi, "bias", 1, &mi->out_features, &mi->p_bias);
  }
  case MK_SEQUENTIAL:
    for (int i = 0; i < mi->nchildren; i++) {
      char idx[24];
      snprintf(idx, sizeof idx, "%d", i);
      if (!module_bind(S, mi->children[i], join(S, prefix, idx), loc)) return false;
    }
    return true;
  case MK_USER:
    for (int i = 0; i < mi->scope->n; i++) {
      const char *name = mi->scope->names[i];
      if (!strcmp(name, "self")) continue;
      if (!value_bind(S, &mi->scope->vals[i], join(S, prefix, name), loc)) return false;
    }
    return true;
  case MK_ACTIVATION:
    return true;
  case MK_LAYER:
    return nn_layer_bind(S, mi);
  }
  return true;
}

/* An activation layer's op on x (Identity: x itself). */
static INode *call_activation(Sema *S, const ModInst *mi, INode *x, SrcLoc loc) {
  if (mi->act == OP_COUNT) return x;
  return elementwise_node(S, mi->act, &x, (const double[2]){mi->a0, mi->a1}, loc);
}

/* y = x W^T + b, as torch.nn.Linear (x of any rank >= 1, features last). */
static INode *call_linear(Sema *S, ModInst *mi, INode *x, SrcLoc loc) {
  if (mi->p_weight < 0) {
    diag_error(S->d, loc, "this Linear has no parameter name: assign it to a module member or a top-level name");
    return NULL;
  }
  const Shape *s = &x->shape;
  if (s->rank < 1 || !dim_is(s->d[s->rank - 1], mi->in_features)) {
    char b[128];
    diag_error(S->d, loc, "Linear(%lld, %lld) '%s' expects %lld input features, got %s",
               (long long)mi->in_features, (long long)mi->out_features, mi->prefix,
               (long long)mi->in_features, shape_str(S->m, x->dtype, s, b, sizeof b));
    return NULL;
  }
  /* flatten leading dims to rows, multiply, restore */
  Shape rows = {.rank = 2, .d = {shape_numel(S->m, s), s->d[s->rank - 1]}};
  rows.d[0].k /= mi->in_features;
  INode *x2 = s->rank == 2 ? x : ir_reshape(S->m, S->e, x, &rows, loc, S->d);
  INode *w = ir_param(S->m, S->e, mi->p_weight, loc);
  INode *y = ir_matmul(S->m, S->e, x2, w, 0, 1, loc, S->d);
  if (y && mi->p_bias >= 0) y = ir_binary(S->m, S->e, OP_ADD, y, ir_param(S->m, S->e, mi->p_bias, loc), loc, S->d);
  if (y && s->rank != 2) {
    Shape out = *s;
    out.d[out.rank - 1] = dim_const(mi->out_features);
    y = ir_reshape(S->m, S->e, y, &out, loc, S->d);
  }
  return y;
}

bool layer_call(Sema *S, ModInst *mi, const Args *a, Value *out) {
  if (!S->e) return diag_error(S->d, a->loc, "layers can only be called inside fn and export bodies");
  if (mi->kind == MK_LAYER) { /* layers with several arguments or results (LSTMCell) */
    bool handled = false, ok = nn_layer_call_args(S, mi, a, out, &handled);
    if (handled || !ok) return ok;
  }
  if (a->npos != 1 || a->nkw) return diag_error(S->d, a->loc, "%s takes one tensor", mi->type_name);
  INode *x = to_tensor(S, &a->pos[0], a->pos_loc[0]);
  if (!x) return false;
  switch (mi->kind) {
  case MK_LINEAR: x = call_linear(S, mi, x, a->loc); break;
  case MK_ACTIVATION: x = call_activation(S, mi, x, a->loc); break;
  case MK_LAYER: x = nn_layer_call(S, mi, x, a->loc); break;
  case MK_SEQUENTIAL:
    for (int i = 0; i < mi->nchildren && x; i++) {
      Value v;
      Args sub = *a;
      sub.pos = &(Value){.k = V_TENSOR, .t = x};
      Value callee = {.k = V_MOD, .mod = mi->children[i]};
      if (!call_value(S, &callee, &sub, &v)) return false;
      if (v.k != V_TENSOR) return diag_error(S->d, a->loc, "module %s in a Sequential must return one tensor", mi->children[i]->type_name);
      x = v.t;
    }
    break;
  case MK_USER: unreachable("user modules are called through their forward");
  }
  *out = v_tensor(x);
  return x != NULL;
}
