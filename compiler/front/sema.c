/* sema.c — semantic analysis of a .nn program.
 *
 * The program is evaluated at compile time: constants fold, `for` loops unroll, `if`
 * conditions are decided, module constructors build instances (whose parameters are named
 * after the path of assignments that reach them, as PyTorch's state_dict does), and every
 * function or method call is inlined.  What remains are tensor operations, recorded as graph
 * IR nodes of the entry being built (ir.c checks their shapes).  Errors point at the source
 * and stop the analysis. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "builtins.h"
#include "eval.h"
#include "layers.h"
#include "scan.h"
#include "sema.h"

#define MAX_INLINE_DEPTH 64      /* nested calls and module instantiations */
/* Expressions being evaluated at once, across calls: each level is a few stack frames, and a
 * 1000-deep expression (the parser's limit) in each of 64 nested calls overflowed the stack. */
#define MAX_EVAL_NESTING 1500
#define MAX_UNROLL 100000        /* items of one range that a `for` or a list unrolls */
#define MAX_EVAL_STEPS 10000000  /* statements executed at compile time, in all */
#define MAX_ENTRY_OPS 1000000    /* graph operations of one entry */

/* ---- expressions ---- */

static bool eval(Sema *S, Scope *sc, const Node *n, Value *out);
static int exec_block(Sema *S, Scope *sc, const NodeList *body, Value *ret);

static bool eval_name(Sema *S, Scope *sc, const Node *n, Value *out) {
  Value *v = scope_lookup(sc, n->name);
  if (v) {
    *out = *v;
    if (out->k == V_MOD) /* a Parameter becomes its tensor, made in this entry: not captured */
      return nn_parameter_read(S, out, n->loc) && (out->k == V_TENSOR || !S->scan || capture_value(S, out));
    return !S->scan || capture_value(S, out); /* a scan body reads outer tensors as inputs */
  }
  const Builtin *b = builtin_find(n->name);
  if (b) {
    *out = (Value){.k = V_BUILTIN, .builtin = b, .s = n->name};
    return true;
  }
  if (!strcmp(n->name, "PI")) {
    *out = v_float(M_PI);
    return true;
  }
  if (!strcmp(n->name, "inf") || !strcmp(n->name, "nan")) { /* math.inf, math.nan */
    *out = v_float(n->name[0] == 'i' ? INFINITY : NAN);
    return true;
  }
  if (!strcmp(n->name, "none")) { /* Python's None: an absent member or argument */
    *out = v_none();
    return true;
  }
  for (int i = 0; i < S->m->nsyms; i++) /* a symbolic dim of the entry's signature */
    if (!strcmp(S->m->sym_names[i], n->name)) {
      if (!(S->entry_syms >> i & 1)) /* another entry's: not bound by this one's inputs */
        return diag_error(S->d, n->loc, "'%s' is not a symbolic dimension of '%s': its inputs do not name it",
                          n->name, S->m->entries[S->m->nentries - 1].name);
      *out = (Value){.k = V_DIM, .dim = {1, 1u << i}};
      return true;
    }
  return diag_error(S->d, n->loc, "unknown name '%s'", n->name);
}

static bool eval_list(Sema *S, Scope *sc, const NodeList *l, VKind k, Value *out) {
  Value *items = arena_alloc(S->arena, (l->len ? l->len : 1) * sizeof *items);
  for (int i = 0; i < l->len; i++)
    if (!eval(S, sc, l->items[i], &items[i])) return false;
  *out = (Value){.k = k, .items = items, .len = l->len};
  return true;
}

/* Items of an iterable (list, tuple, range) as an array. */
static bool iterate(Sema *S, const Value *v, SrcLoc loc, Value **items, int *len) {
  if (v->k == V_LIST || v->k == V_TUPLE) {
    *items = v->items;
    *len = v->len;
    return true;
  }
  if (v->k == V_RANGE) {
    uint64_t n = v->i2 > v->i ? (uint64_t)v->i2 - (uint64_t)v->i : 0;
    if (n > MAX_UNROLL) return diag_error(S->d, loc, "range of %llu items is too long to unroll", (unsigned long long)n);
    *items = arena_alloc(S->arena, (n ? n : 1) * sizeof **items);
    for (int64_t i = 0; i < (int64_t)n; i++) (*items)[i] = v_int(v->i + i);
    *len = (int)n;
    return true;
  }
  if (v->k == V_MOD && v->mod->kind == MK_SEQUENTIAL) {
    *len = v->mod->nchildren;
    *items = arena_alloc(S->arena, (*len ? *len : 1) * sizeof **items);
    for (int i = 0; i < *len; i++) (*items)[i] = (Value){.k = V_MOD, .mod = v->mod->children[i]};
    return true;
  }
  return diag_error(S->d, loc, "cannot iterate over a %s", v_kind_name(v->k));
}

static bool eval_comprehension(Sema *S, Scope *sc, const Node *n, Value *out) {
  Value it;
  Value *items;
  int len;
  if (!eval(S, sc, n->rhs, &it) || !iterate(S, &it, n->rhs->loc, &items, &len)) return false;
  Scope *inner = scope_new(S, sc);
  Value *res = arena_alloc(S->arena, (len ? len : 1) * sizeof *res);
  for (int i = 0; i < len; i++) {
    scope_set(S, inner, n->name, items[i]);
    if (!eval(S, inner, n->lhs, &res[i])) return false;
  }
  *out = (Value){.k = V_LIST, .items = res, .len = len};
  return true;
}

static bool eval_member(Sema *S, Scope *sc, const Node *n, Value *out) {
  Value obj;
  if (!eval(S, sc, n->lhs, &obj)) return false;
  if (obj.k == V_MOD && obj.mod->kind == MK_USER) {
    Value *v = scope_find_local(obj.mod->scope, n->name);
    if (v) {
      *out = *v;
      return nn_parameter_read(S, out, n->loc);
    }
    return diag_error(S->d, n->loc, "module %s has no member '%s'", obj.mod->type_name, n->name);
  }
  if (obj.k == V_MOD && obj.mod->kind == MK_LAYER) return nn_layer_member(S, obj.mod, n->name, n->loc, out);
  if (obj.k == V_TENSOR && !strcmp(n->name, "T")) {
    int perm[MAX_RANK];
    int r = obj.t->shape.rank;
    for (int i = 0; i < r; i++) perm[i] = r - 1 - i;
    INode *t = ir_permute(S->m, S->e, obj.t, perm, n->loc, S->d);
    *out = v_tensor(t);
    return t != NULL;
  }
  if (obj.k == V_TENSOR && !strcmp(n->name, "shape")) { /* torch's x.shape: sizes, symbolic or not */
    int r = obj.t->shape.rank;
    Value *items = arena_alloc(S->arena, (r ? r : 1) * sizeof *items);
    for (int i = 0; i < r; i++) {
      Dim d = obj.t->shape.d[i];
      items[i] = d.syms ? (Value){.k = V_DIM, .dim = d} : v_int(d.k);
    }
    *out = (Value){.k = V_TUPLE, .items = items, .len = r};
    return true;
  }
  return diag_error(S->d, n->loc, "a %s has no member '%s'", v_kind_name(obj.k), n->name);
}

/* Integer and float arithmetic on compile-time numbers. */
static bool fold_numbers(Sema *S, const Node *n, const Value *a, const Value *b, Value *out) {
  bool ints = a->k != V_FLOAT && b->k != V_FLOAT;
  double x = v_num(a), y = v_num(b);
  int64_t p = a->i, q = b->i;
  int64_t r;
  switch (n->op) {
  case '+':
  case '-':
  case '*':
    if (!ints) {
      *out = v_float(n->op == '+' ? x + y : n->op == '-' ? x - y : x * y);
      return true;
    }
    if (n->op == '+' ? __builtin_add_overflow(p, q, &r) : n->op == '-' ? __builtin_sub_overflow(p, q, &r)
                                                       : __builtin_mul_overflow(p, q, &r))
      return diag_error(S->d, n->loc, "integer overflow in a constant expression");
    *out = v_int(r);
    return true;
  case '/': /* exact integer quotients stay integers (1024 / 8 is a width) */
    if (ints && q == 0) return diag_error(S->d, n->loc, "division by zero");
    *out = ints && !(q == -1 && p == INT64_MIN) && p % q == 0 ? v_int(p / q) : v_float(x / y);
    return true;
  case '%':
    if (!ints) { *out = v_float(fmod(x, y)); return true; }
    if (q == 0) return diag_error(S->d, n->loc, "modulo by zero");
    if (q == -1) { *out = v_int(0); return true; }
    r = p % q; /* the sign of the divisor, as in Python; r + q cannot overflow then */
    *out = v_int(r != 0 && (r < 0) != (q < 0) ? r + q : r);
    return true;
  case AST_POW: {
    double v = pow(x, y);
    *out = ints && q >= 0 && fabs(v) < 9.2e18 ? v_int((int64_t)llround(v)) : v_float(v);
    return true;
  }
  case AST_EQ: *out = (Value){.k = V_BOOL, .i = x == y}; return true;
  case AST_NE: *out = (Value){.k = V_BOOL, .i = x != y}; return true;
  case '<': *out = (Value){.k = V_BOOL, .i = x < y}; return true;
  case AST_LE: *out = (Value){.k = V_BOOL, .i = x <= y}; return true;
  case '>': *out = (Value){.k = V_BOOL, .i = x > y}; return true;
  case AST_GE: *out = (Value){.k = V_BOOL, .i = x >= y}; return true;
  case AST_AND: *out = (Value){.k = V_BOOL, .i = x != 0 && y != 0}; return true;
  case AST_OR: *out = (Value){.k = V_BOOL, .i = x != 0 || y != 0}; return true;
  }
  return diag_error(S->d, n->loc, "this operator does not apply to numbers");
}

static Op binary_op(int op) {
  switch (op) {
  case '+': return OP_ADD;
  case '-': return OP_SUB;
  case '*': return OP_MUL;
  case '/': return OP_DIV;
  case AST_POW: return OP_POW;
  case AST_EQ: return OP_EQ;
  case AST_NE: return OP_NE;
  case '<': return OP_LT;
  case AST_LE: return OP_LE;
  case '>': return OP_GT;
  case AST_GE: return OP_GE;
  case AST_AND: return OP_AND;
  case AST_OR: return OP_OR;
  }
  return OP_COUNT;
}

/* `H + 1`, `H - 3`, `(H + 3) / 8` on a symbolic size: the sizes a layer computes (symdim.c),
 * so that a declared type can name them; `/` is floor division, as for every size. */
static bool eval_dim_affine(Sema *S, const Node *n, Dim x, const Value *b, Value *out) {
  int64_t c;
  if (!to_int(S, b, n->rhs->loc, &c)) return false;
  if (n->op == '/' && c <= 0) return diag_error(S->d, n->rhs->loc, "a symbolic size is divided by a positive integer");
  if (c > IR_MAX_STATIC_ELEMENTS || c < -IR_MAX_STATIC_ELEMENTS)
    return diag_error(S->d, n->rhs->loc, "%lld is too large for a size (at most 2^40)", (long long)c);
  bool ok;
  Dim d = n->op == '/' ? dim_derive(S->m, x, 1, 0, c, TYPE_SIZE, n->loc, S->d, &ok)
                       : dim_derive(S->m, x, 1, n->op == '+' ? c : -c, 1, TYPE_SIZE, n->loc, S->d, &ok);
  *out = (Value){.k = V_DIM, .dim = d};
  return ok;
}

static bool eval_binary(Sema *S, Scope *sc, const Node *n, Value *out) {
  Value a, b;
  if (!eval(S, sc, n->lhs, &a) || !eval(S, sc, n->rhs, &b)) return false;
  if (v_is_number(&a) && v_is_number(&b)) return fold_numbers(S, n, &a, &b, out);
  if ((a.k == V_DIM || b.k == V_DIM) && a.k != V_TENSOR && b.k != V_TENSOR && n->op == '*') {
    Dim x, y;
    if (!to_dim(S, &a, n->lhs->loc, &x) || !to_dim(S, &b, n->rhs->loc, &y)) return false;
    *out = (Value){.k = V_DIM, .dim = dim_mul(S->m, x, y)};
    return true;
  }
  if (S->in_type && a.k == V_DIM && a.dim.syms && v_is_number(&b) && (n->op == '+' || n->op == '-' || n->op == '/'))
    return eval_dim_affine(S, n, a.dim, &b, out);
  if (a.k == V_DIM && b.k == V_DIM && (n->op == AST_EQ || n->op == AST_NE)) {
    *out = (Value){.k = V_BOOL, .i = dim_eq(a.dim, b.dim) == (n->op == AST_EQ)};
    return true;
  }
  if ((a.k == V_NONE || b.k == V_NONE) && (n->op == AST_EQ || n->op == AST_NE)) {
    *out = (Value){.k = V_BOOL, .i = (a.k == V_NONE && b.k == V_NONE) == (n->op == AST_EQ)};
    return true;
  }
  if (a.k == V_STR && b.k == V_STR && (n->op == AST_EQ || n->op == AST_NE)) {
    *out = (Value){.k = V_BOOL, .i = !strcmp(a.s, b.s) == (n->op == AST_EQ)};
    return true;
  }
  if (a.k == V_LIST && b.k == V_LIST && n->op == '+') {
    Value *items = arena_alloc(S->arena, (a.len + b.len + 1) * sizeof *items);
    memcpy(items, a.items, a.len * sizeof *items);
    memcpy(items + a.len, b.items, b.len * sizeof *items);
    *out = (Value){.k = V_LIST, .items = items, .len = a.len + b.len};
    return true;
  }
  bool tensor_literal = S->e && (a.k == V_LIST || b.k == V_LIST || a.k == V_DIM || b.k == V_DIM); /* [1.0, 0.0] * x, x * t */
  if (a.k != V_TENSOR && b.k != V_TENSOR && !tensor_literal)
    return diag_error(S->d, n->loc, "operator does not apply to a %s and a %s", v_kind_name(a.k),
                      v_kind_name(b.k));
  INode *x = to_tensor(S, &a, n->lhs->loc), *y = x ? to_tensor(S, &b, n->rhs->loc) : NULL;
  if (!y) return false;
  INode *r;
  if (n->op == '@') {
    r = ir_matmul(S->m, S->e, x, y, 0, 0, n->loc, S->d);
  } else {
    Op op = binary_op(n->op);
    if (op == OP_COUNT) return diag_error(S->d, n->loc, "operator does not apply to tensors");
    r = ir_binary(S->m, S->e, op, x, y, n->loc, S->d);
  }
  *out = v_tensor(r);
  return r != NULL;
}

static bool eval_unary(Sema *S, Scope *sc, const Node *n, Value *out) {
  Value a;
  if (!eval(S, sc, n->lhs, &a)) return false;
  if (n->op == '-') {
    if (a.k == V_INT && a.i != INT64_MIN) { *out = v_int(-a.i); return true; }
    if (a.k == V_FLOAT) { *out = v_float(-a.f); return true; }
    if (a.k == V_TENSOR) {
      *out = v_tensor(ir_unary(S->m, S->e, OP_NEG, a.t, n->loc, S->d));
      return true;
    }
  } else {
    if (v_is_number(&a)) { *out = (Value){.k = V_BOOL, .i = v_num(&a) == 0}; return true; }
    if (a.k == V_TENSOR) {
      *out = v_tensor(ir_unary(S->m, S->e, OP_NOT, a.t, n->loc, S->d));
      return true;
    }
  }
  return diag_error(S->d, n->loc, "unary '%c' does not apply to a %s", n->op, v_kind_name(a.k));
}

static bool truthy(Sema *S, const Value *v, SrcLoc loc, bool *out) {
  if (v_is_number(v)) {
    *out = v_num(v) != 0;
    return true;
  }
  if (v->k == V_TENSOR)
    return diag_error(S->d, loc, "a condition must be known at compile time; use where(c, a, b) for tensors");
  return diag_error(S->d, loc, "a %s cannot be a condition", v_kind_name(v->k));
}

/* Whether n is a call of `assert`, the one statement allowed at top level. */
static bool is_assert_call(const Node *n) {
  return n->kind == N_CALL && n->lhs->kind == N_NAME && !strcmp(n->lhs->name, "assert");
}

static bool eval_call(Sema *S, Scope *sc, const Node *n, Value *out) {
  Value callee;
  if (!eval(S, sc, n->lhs, &callee)) return false;
  Args a = {.loc = n->loc};
  int cap = n->args.len ? n->args.len : 1;
  a.pos = arena_alloc(S->arena, cap * sizeof *a.pos);
  a.pos_loc = arena_alloc(S->arena, cap * sizeof *a.pos_loc);
  a.kw = arena_alloc(S->arena, cap * sizeof *a.kw);
  a.kwnames = arena_alloc(S->arena, cap * sizeof *a.kwnames);
  for (int i = 0; i < n->args.len; i++) {
    const Node *arg = n->args.items[i];
    if (arg->kind == N_KWARG) {
      for (int k = 0; k < a.nkw; k++)
        if (!strcmp(a.kwnames[k], arg->name))
          return diag_error(S->d, arg->loc, "keyword argument '%s' repeated", arg->name);
      a.kwnames[a.nkw] = arg->name;
      if (!eval(S, sc, arg->rhs, &a.kw[a.nkw++])) return false;
    } else {
      if (a.nkw) return diag_error(S->d, arg->loc, "positional argument after a keyword argument");
      a.pos_loc[a.npos] = arg->loc;
      if (!eval(S, sc, arg, &a.pos[a.npos++])) return false;
    }
  }
  return call_value(S, &callee, &a, out);
}

static bool eval_node(Sema *S, Scope *sc, const Node *n, Value *out) {
  switch (n->kind) {
  case N_INT: *out = v_int(n->ival); return true;
  case N_FLOAT: *out = v_float(n->fval); return true;
  case N_BOOL: *out = (Value){.k = V_BOOL, .i = n->ival}; return true;
  case N_STRING: *out = (Value){.k = V_STR, .s = n->name}; return true;
  case N_NAME: return eval_name(S, sc, n, out);
  case N_MEMBER: return eval_member(S, sc, n, out);
  case N_CALL: return eval_call(S, sc, n, out);
  case N_INDEX: return eval_index(S, sc, n, out);
  case N_LIST: return eval_list(S, sc, &n->args, V_LIST, out);
  case N_TUPLE: return eval_list(S, sc, &n->args, V_TUPLE, out);
  case N_COMPREHENSION: return eval_comprehension(S, sc, n, out);
  case N_UNARY: return eval_unary(S, sc, n, out);
  case N_BINARY: return eval_binary(S, sc, n, out);
  case N_RANGE: {
    Value a, b;
    int64_t x, y;
    if (!eval(S, sc, n->lhs, &a) || !to_int(S, &a, n->lhs->loc, &x)) return false;
    if (!eval(S, sc, n->rhs, &b) || !to_int(S, &b, n->rhs->loc, &y)) return false;
    *out = (Value){.k = V_RANGE, .i = x, .i2 = y};
    return true;
  }
  case N_TERNARY: {
    Value c;
    bool t = false;
    if (!eval(S, sc, n->cond, &c) || !truthy(S, &c, n->cond->loc, &t)) return false;
    return eval(S, sc, t ? n->lhs : n->rhs, out);
  }
  default:
    return diag_error(S->d, n->loc, "expected an expression");
  }
}

static bool eval(Sema *S, Scope *sc, const Node *n, Value *out) {
  *out = v_none(); /* a path that forgets its result yields 'nothing', never stack garbage */
  if (S->nesting >= MAX_EVAL_NESTING)
    return diag_error(S->d, n->loc, "expressions and calls nested more than %d deep in all",
                      MAX_EVAL_NESTING);
  S->nesting++;
  bool ok = eval_node(S, sc, n, out);
  S->nesting--;
  return ok;
}

/* ---- calls of user functions, methods, modules and exports ---- */

/* Bind call arguments to declared parameters in a new scope. */
static bool bind_params(Sema *S, Scope *sc, const Node *decl, const Args *a, const char *what) {
  const NodeList *ps = &decl->args;
  if (a->npos > ps->len)
    return diag_error(S->d, a->loc, "%s '%s' takes %d arguments, got %d", what, decl->name, ps->len, a->npos);
  for (int k = 0; k < a->nkw; k++) {
    int found = -1;
    for (int i = 0; i < ps->len; i++)
      if (!strcmp(ps->items[i]->name, a->kwnames[k])) found = i;
    if (found < 0) return diag_error(S->d, a->loc, "%s '%s' has no parameter '%s'", what, decl->name, a->kwnames[k]);
    if (found < a->npos) return diag_error(S->d, a->loc, "parameter '%s' given twice", a->kwnames[k]);
  }
  for (int i = 0; i < ps->len; i++) {
    const Node *p = ps->items[i];
    const Value *v = arg_get(a, i, p->name);
    Value dv;
    if (!v) {
      if (!p->rhs) return diag_error(S->d, a->loc, "missing argument '%s' of %s '%s'", p->name, what, decl->name);
      if (!eval(S, S->globals, p->rhs, &dv)) return false;
      v = &dv;
    }
    scope_set(S, sc, p->name, *v);
  }
  return true;
}

static bool instantiate(Sema *S, const Node *decl, const Args *a, Value *out);

static bool call_fn(Sema *S, const Value *fv, const Args *a, Value *out) {
  const Node *decl = fv->fn;
  if (++S->depth > MAX_INLINE_DEPTH)
    return diag_error(S->d, a->loc, "calls nested more than %d deep (recursion is not supported)", MAX_INLINE_DEPTH);
  Scope *parent = fv->mod ? fv->mod->scope : S->globals;
  Scope *sc = scope_new(S, parent);
  bool is_export = decl->kind == N_EXPORT;
  if (!bind_params(S, sc, decl, a, is_export ? "entry" : "function")) return false;
  if (is_export) {
    for (int i = 0; i < decl->args.len; i++) {
      const Node *p = decl->args.items[i];
      Value *v = scope_find_local(sc, p->name);
      Shape s;
      DType dt;
      INode *t = to_tensor(S, v, a->loc);
      if (!t || !eval_type(S, p->type, &s, &dt) || !check_declared(S, p, t, &s, dt, a->loc)) return false;
      *v = v_tensor(t);
    }
  }
  Value ret = v_none();
  int r = exec_block(S, sc, &decl->body, &ret);
  if (!r) return false;
  if (is_export) {
    Value *items = arena_alloc(S->arena, (decl->outs.len + 1) * sizeof *items);
    for (int i = 0; i < decl->outs.len; i++) {
      Value *v = scope_find_local(sc, decl->outs.items[i]->name);
      if (!v) return diag_error(S->d, decl->outs.items[i]->loc, "output '%s' is never assigned", decl->outs.items[i]->name);
      items[i] = *v;
    }
    ret = decl->outs.len == 1 ? items[0] : (Value){.k = V_TUPLE, .items = items, .len = decl->outs.len};
  }
  S->depth--;
  *out = ret;
  return true;
}

bool call_value(Sema *S, const Value *callee, const Args *a, Value *out) {
  *out = v_none();
  switch (callee->k) {
  case V_BUILTIN: return callee->builtin->fn(S, callee->builtin, a, out);
  case V_FN:
    if (callee->fn->kind == N_MODULE) return instantiate(S, callee->fn, a, out);
    if (callee->fn->kind == N_ALIAS)
      return diag_error(S->d, a->loc, "'%s' is an alias of the export '%s': call '%s' (the constants an "
                        "alias rebinds apply to its own entry only)", callee->fn->name, callee->fn->lhs->name,
                        callee->fn->lhs->name);
    return call_fn(S, callee, a, out);
  case V_MOD:
    if (callee->mod->kind == MK_USER) {
      Value *fwd = scope_find_local(callee->mod->scope, "forward");
      if (!fwd || fwd->k != V_FN)
        return diag_error(S->d, a->loc, "module %s has no 'fn forward' to call", callee->mod->type_name);
      return call_fn(S, fwd, a, out);
    }
    return layer_call(S, callee->mod, a, out);
  default:
    return diag_error(S->d, a->loc, "a %s cannot be called", v_kind_name(callee->k));
  }
}

/* Instantiate a user module: bind its parameters, evaluate its members in order. */
static bool instantiate_body(Sema *S, const Node *decl, const Args *a, Value *out) {
  ModInst *mi = arena_alloc(S->arena, sizeof *mi);
  mi->kind = MK_USER;
  mi->type_name = decl->name;
  mi->decl = decl;
  mi->loc = a->loc;
  mi->scope = scope_new(S, S->globals);
  mi->scope->self = mi;
  if (!bind_params(S, mi->scope, decl, a, "module")) return false;
  scope_set(S, mi->scope, "self", (Value){.k = V_MOD, .mod = mi});
  Entry *saved = S->e;
  S->e = NULL; /* members are compile-time values and modules, not tensors */
  for (int i = 0; i < decl->body.len; i++) {
    const Node *it = decl->body.items[i];
    Value v;
    if (it->kind == N_FN) {
      v = (Value){.k = V_FN, .fn = it, .mod = mi};
      scope_set(S, mi->scope, it->name, v);
      continue;
    }
    if (it->kind == N_EXPR_STMT) {
      if (!is_assert_call(it->lhs))
        return diag_error(S->d, it->loc, "only assert(...) may stand alone in a module; other statements belong in a fn or export body");
      if (!eval(S, mi->scope, it->lhs, &v)) return false;
      continue;
    }
    const char *name = it->kind == N_CONST ? it->name : it->args.items[0]->name;
    if (it->kind == N_ASSIGN && it->args.len != 1)
      return diag_error(S->d, it->loc, "a module member is assigned one value");
    if (!eval(S, mi->scope, it->rhs, &v)) return false;
    scope_set(S, mi->scope, name, v);
  }
  S->e = saved;
  *out = (Value){.k = V_MOD, .mod = mi};
  return true;
}

static bool instantiate(Sema *S, const Node *decl, const Args *a, Value *out) {
  if (S->depth >= MAX_INLINE_DEPTH)
    return diag_error(S->d, a->loc, "modules instantiated more than %d deep (a module cannot contain itself)",
                      MAX_INLINE_DEPTH);
  S->depth++;
  bool ok = instantiate_body(S, decl, a, out);
  S->depth--;
  return ok;
}

/* ---- statements ---- */

static bool assign(Sema *S, Scope *sc, const Node *n) {
  Value v = v_none(); /* an evaluation that succeeds without a value leaves `nothing` */
  for (int i = 0; i < n->args.len; i++) {
    const Node *t = n->args.items[i];
    bool indexed = t->kind == N_INDEX && t->lhs->kind == N_NAME && n->args.len == 1;
    if (t->kind != N_NAME && !indexed)
      return diag_error(S->d, t->loc, "cannot assign to this expression (assign to a name, or in a scan to name[..., t, ...])");
  }
  if (!eval(S, sc, n->rhs, &v)) return false;
  if (n->args.items[0]->kind == N_INDEX) return assign_step_output(S, sc, n->args.items[0], &v);
  if (n->args.len == 1) {
    scope_set(S, sc, n->args.items[0]->name, v);
    return true;
  }
  if (v.k != V_TUPLE && v.k != V_LIST)
    return diag_error(S->d, n->loc, "cannot unpack a %s into %d names", v_kind_name(v.k), n->args.len);
  if (v.len != n->args.len)
    return diag_error(S->d, n->loc, "cannot unpack %d values into %d names", v.len, n->args.len);
  for (int i = 0; i < v.len; i++) scope_set(S, sc, n->args.items[i]->name, v.items[i]);
  return true;
}

/* Returns 0 on error, 1 when the block ran to its end, 2 after a `return` (value in *ret). */
/* for NAME in ITERABLE { body }: a range's numbers are made one at a time, not as a list */
static int exec_for(Sema *S, Scope *sc, const Node *n, Value *ret) {
  Value it, *items;
  int len;
  if (!eval(S, sc, n->rhs, &it)) return 0;
  if (it.k == V_RANGE) {
    uint64_t count = it.i2 > it.i ? (uint64_t)it.i2 - (uint64_t)it.i : 0;
    if (count > MAX_UNROLL)
      return diag_error(S->d, n->rhs->loc, "range of %llu items is too long to unroll", (unsigned long long)count);
    for (int64_t k = it.i; k < it.i2; k++) {
      scope_set(S, sc, n->name, v_int(k));
      int r = exec_block(S, sc, &n->body, ret);
      if (r != 1) return r;
    }
    return 1;
  }
  if (!iterate(S, &it, n->rhs->loc, &items, &len)) return 0;
  for (int k = 0; k < len; k++) {
    scope_set(S, sc, n->name, items[k]);
    int r = exec_block(S, sc, &n->body, ret);
    if (r != 1) return r;
  }
  return 1;
}

/* The bounds on what a program may unroll (docs/language.md, Limits): statements executed at
 * compile time, and operations recorded in one entry. */
static bool within_limits(Sema *S, const Node *n) {
  if (++S->steps > MAX_EVAL_STEPS)
    return diag_error(S->d, n->loc, "the program runs more than %d statements at compile time (loops are unrolled); "
                      "a loop over data belongs in a scan", MAX_EVAL_STEPS);
  if (S->e && S->e->nnodes > MAX_ENTRY_OPS)
    return diag_error(S->d, n->loc, "'%s' has more than %d operations after unrolling loops and inlining calls; "
                      "a loop over data belongs in a scan", S->e->name, MAX_ENTRY_OPS);
  return true;
}

static int exec_block(Sema *S, Scope *sc, const NodeList *body, Value *ret) {
  for (int i = 0; i < body->len; i++) {
    const Node *n = body->items[i];
    if (!within_limits(S, n)) return 0;
    switch (n->kind) {
    case N_ASSIGN:
      if (!assign(S, sc, n)) return 0;
      break;
    case N_EXPR_STMT: {
      Value v;
      if (!eval(S, sc, n->lhs, &v)) return 0;
      break;
    }
    case N_RETURN: {
      Value v;
      if (!eval_list(S, sc, &n->args, V_TUPLE, &v)) return 0;
      *ret = v.len == 1 ? v.items[0] : v;
      return 2;
    }
    case N_SCAN:
      if (!exec_scan(S, sc, n)) return 0;
      break;
    case N_FOR: {
      int r = exec_for(S, sc, n, ret);
      if (r != 1) return r;
      break;
    }
    case N_IF: {
      Value c;
      bool t = false;
      if (!eval(S, sc, n->cond, &c) || !truthy(S, &c, n->cond->loc, &t)) return 0;
      int r = exec_block(S, sc, t ? &n->body : &n->orelse, ret);
      if (r != 1) return r;
      break;
    }
    case N_CONST: {
      Value v;
      if (!eval(S, sc, n->rhs, &v)) return 0;
      scope_set(S, sc, n->name, v);
      break;
    }
    default:
      diag_error(S->d, n->loc, "this declaration is not allowed inside a body");
      return 0;
    }
  }
  return 1;
}

/* ---- the program ---- */

/* -D NAME=VALUE: an integer, a float, true/false, or else a string ("bn" or bn). */
static Value define_value(Sema *S, const char *text) {
  char *end;
  long long i = strtoll(text, &end, 10);
  if (*text && !*end) return v_int(i);
  double f = strtod(text, &end);
  if (*text && !*end) return v_float(f);
  if (!strcmp(text, "true") || !strcmp(text, "false")) return (Value){.k = V_BOOL, .i = text[0] == 't'};
  size_t n = strlen(text);
  if (n >= 2 && text[0] == '"' && text[n - 1] == '"') return (Value){.k = V_STR, .s = arena_strndup(S->arena, text + 1, n - 2)};
  return (Value){.k = V_STR, .s = arena_strdup(S->arena, text)};
}

const char *find_define(Sema *S, const char *name) {
  for (int i = 0; i < S->ndefines; i++) {
    const char *eq = strchr(S->defines[i], '=');
    if (eq && (size_t)(eq - S->defines[i]) == strlen(name) && !strncmp(S->defines[i], name, eq - S->defines[i])) {
      S->define_used[i] = true;
      return eq + 1;
    }
  }
  return NULL;
}

static bool declare(Sema *S, const Node *n) {
  Value v;
  if (n->kind == N_EXPR_STMT) {
    if (!is_assert_call(n->lhs))
      return diag_error(S->d, n->loc, "only assert(...) may stand alone at top level; other statements belong in a fn or export body");
    return eval(S, S->globals, n->lhs, &v);
  }
  Value *old = scope_find_local(S->globals, n->name ? n->name : n->args.items[0]->name);
  bool entry = n->kind == N_EXPORT || n->kind == N_ALIAS;
  if (old && entry && old->k == V_FN && (old->fn->kind == N_EXPORT || old->fn->kind == N_ALIAS))
    return diag_error(S->d, n->loc, "there is already an entry named '%s'", n->name);
  if (old && n->kind != N_ASSIGN) return diag_error(S->d, n->loc, "'%s' is already defined", n->name);
  switch (n->kind) {
  case N_CONST: {
    const char *def = find_define(S, n->name);
    if (def) v = define_value(S, def);
    else if (!eval(S, S->globals, n->rhs, &v)) return false;
    scope_set(S, S->globals, n->name, v);
    return true;
  }
  case N_MODULE:
  case N_FN:
  case N_EXPORT:
  case N_ALIAS: /* checked and built with the exports (build_alias) */
    v = (Value){.k = V_FN, .fn = n};
    scope_set(S, S->globals, n->name, v);
    return true;
  case N_ASSIGN:
    if (n->args.len != 1) return diag_error(S->d, n->loc, "a top-level component is assigned one value");
    if (scope_find_local(S->globals, n->args.items[0]->name))
      return diag_error(S->d, n->loc, "'%s' is already defined", n->args.items[0]->name);
    if (!eval(S, S->globals, n->rhs, &v)) return false;
    if (!value_bind(S, &v, n->args.items[0]->name, n->loc)) return false;
    scope_set(S, S->globals, n->args.items[0]->name, v);
    return true;
  case N_INCLUDE: /* include_expand replaces them (compile.c), with the file's declarations */
    return diag_error(S->d, n->loc, "include is not available here (the source was not read from a file)");
  default:
    return diag_error(S->d, n->loc, "statements are only allowed inside fn and export bodies");
  }
}

/* Whether `name` is a symbolic dim an export's input type names (`x: f32[N, 3, H, W]`). */
static bool names_input_dim(const Node *prog, const char *name, size_t len) {
  for (int i = 0; i < prog->body.len; i++) {
    const Node *decl = prog->body.items[i];
    if (decl->kind != N_EXPORT) continue;
    for (int a = 0; a < decl->args.len; a++) {
      const Node *type = decl->args.items[a]->type;
      for (int j = 0; type && j < type->args.len; j++) {
        const Node *dn = type->args.items[j];
        if (dn->kind == N_NAME && strlen(dn->name) == len && !strncmp(dn->name, name, len)) return true;
      }
    }
  }
  return false;
}

/* -D H=224 on a symbolic dim pins it: H becomes a top-level constant, so the input types
 * read it as a static size and every kernel is specialised to it. */
static bool pin_symbolic_dim(Sema *S, const Node *prog, const char *define) {
  const char *eq = strchr(define, '=');
  if (!names_input_dim(prog, define, (size_t)(eq - define))) return false;
  scope_set(S, S->globals, arena_strndup(S->arena, define, (size_t)(eq - define)), define_value(S, eq + 1));
  return true;
}

Model *sema_program(Arena *a, const SrcFile *file, const Node *prog, const char *model_name,
                    const char *const *defines, int ndefines, Diag *d) {
  Model *m = arena_alloc(a, sizeof *m);
  m->arena = a;
  m->file = file;
  m->name = arena_strdup(a, model_name);
  Sema S = {.arena = a, .m = m, .d = d, .defines = defines, .ndefines = ndefines};
  S.define_used = arena_alloc(a, (ndefines + 1) * sizeof *S.define_used);
  S.globals = scope_new(&S, NULL);
  for (int i = 0; i < ndefines; i++)
    if (!strchr(defines[i], '=')) {
      diag_error_file(d, file->path, "-D %s: expected NAME=VALUE", defines[i]);
      return NULL;
    }
  for (int i = 0; i < prog->body.len; i++)
    if (!declare(&S, prog->body.items[i])) return NULL;
  for (int i = 0; i < ndefines; i++) {
    if (S.define_used[i]) continue;
    if (!pin_symbolic_dim(&S, prog, defines[i])) {
      diag_error_file(d, file->path, "-D %s: the model has no top-level constant or symbolic dimension of that name",
                      defines[i]);
      return NULL;
    }
  }
  for (int i = 0; i < prog->body.len; i++) {
    const Node *n = prog->body.items[i];
    if (n->kind == N_EXPORT && !build_export(&S, n, n->name, n->loc)) return NULL;
    if (n->kind == N_ALIAS && !build_alias(&S, prog, n)) return NULL;
  }
  /* the entries array grew while exports were built: point every node at its entry's final place */
  for (int i = 0; i < m->nentries; i++)
    for (int k = 0; k < m->entries[i].nnodes; k++) m->entries[i].nodes[k]->owner = &m->entries[i];
  if (m->nentries == 0) {
    diag_error(d, (SrcLoc){1, 1}, "the model exports no entry (write `export name(x: f32[N, 4]) -> (y: f32[N]) { ... }`)");
    return NULL;
  }
  return m;
}

/* for scan.c */
int exec_block_api(Sema *S, Scope *sc, const NodeList *body, Value *ret) { return exec_block(S, sc, body, ret); }
bool eval_api(Sema *S, Scope *sc, const Node *n, Value *out) { return eval(S, sc, n, out); }
bool iterate_api(Sema *S, const Value *v, SrcLoc loc, Value **items, int *len) { return iterate(S, v, loc, items, len); }
