/* builtins.c — the built-in functions of the language (torch.* / torch.nn.functional.*
 * names and defaults; `axis=` and torch's `dim=` are both accepted).  Composite functions
 * (mean, softmax, log_softmax, logsumexp, linear algebra helpers) are written here in terms
 * of the primitive ops of ops.def, so the passes and codegen only ever see primitives. */
#include <math.h>
#include <string.h>
#include "builtins.h"
#include "nn.h"
#include "eval.h"
#include "layers.h"

#define M (S->m)
#define E (S->e)
#define D (S->d)

/* variants of the handlers below that serve several names */
enum { REDUCE_SUM, REDUCE_MEAN, REDUCE_MAX, REDUCE_MIN, REDUCE_VAR, REDUCE_STD };
enum { SOFTMAX, LOG_SOFTMAX, LOGSUMEXP };
enum { SQUEEZE, UNSQUEEZE };
enum { EXPAND, BROADCAST_TO };
enum { TRANSPOSE, PERMUTE };
enum { FILL_ZEROS, FILL_ONES, FILL_FULL, FILL_ZEROS_LIKE, FILL_ONES_LIKE };
enum { META_LEN, META_REVERSED, META_RANGE, META_FLOAT, META_INT, META_LONG };

/* ---- helpers ---- */

static INode *tensor_arg(Sema *S, const Args *a, int i, const char *name) {
  const Value *v = arg_get(a, i, name);
  if (!v) {
    diag_error(D, a->loc, "missing argument '%s'", name);
    return NULL;
  }
  return to_tensor(S, v, i < a->npos ? a->pos_loc[i] : a->loc);
}

static bool need_entry(Sema *S, const Args *a, const char *name) {
  return E ? true : diag_error(D, a->loc, "%s() can only be used inside fn and export bodies", name);
}

static bool norm_axis(Sema *S, int64_t ax, int rank, SrcLoc loc, int *out) {
  if (ax < -rank || ax >= (rank ? rank : 1))
    return diag_error(D, loc, "axis %lld is out of range for a tensor of rank %d", (long long)ax, rank);
  *out = (int)(ax < 0 ? ax + rank : ax);
  return true;
}

/* The axis argument (positional i, `axis=` or `dim=`): one int, a list of ints, or absent
 * (all axes).  Returns a bitmask. */
static bool axes_arg(Sema *S, const Args *a, int i, int rank, uint32_t *out) {
  const Value *v = arg_get(a, i, "axis");
  if (!v) v = arg_get(a, -1, "dim");
  if (!v || v->k == V_NONE) {
    *out = rank ? (1u << rank) - 1 : 0;
    return true;
  }
  *out = 0;
  const Value *items = v;
  int n = 1;
  if (v->k == V_LIST || v->k == V_TUPLE) {
    items = v->items;
    n = v->len;
  }
  for (int k = 0; k < n; k++) {
    int64_t ax;
    int axis = 0;
    if (!to_int(S, &items[k], a->loc, &ax) || !norm_axis(S, ax, rank, a->loc, &axis)) return false;
    *out |= 1u << axis;
  }
  return true;
}

static bool int_arg(Sema *S, const Args *a, int i, const char *name, int64_t def, int64_t *out) {
  const Value *v = arg_get(a, i, name);
  if (!v) {
    *out = def;
    return true;
  }
  return to_int(S, v, a->loc, out);
}

static bool num_arg(Sema *S, const Args *a, int i, const char *name, double def, double *out) {
  const Value *v = arg_get(a, i, name);
  if (!v) {
    *out = def;
    return true;
  }
  if (!v_is_number(v)) return diag_error(D, a->loc, "argument '%s' must be a number", name);
  *out = v_num(v);
  return true;
}

static bool keepdim_arg(Sema *S, const Args *a, int i) {
  const Value *v = arg_get(a, i, "keepdim");
  return v && v_is_number(v) && v_num(v) != 0;
}

/* A shape from a list of dims or from positional dims starting at `first`. */
/* The dims from argument `first` on (or the list there); with `like` (a reshape of it), one
 * may be -1: what the element count of `like` leaves for it. */
static bool shape_arg(Sema *S, const Args *a, int first, const Shape *like, Shape *s) {
  const Value *items = a->pos + first;
  int n = a->npos - first, infer = -1;
  if (n == 1 && (a->pos[first].k == V_LIST || a->pos[first].k == V_TUPLE)) {
    items = a->pos[first].items;
    n = a->pos[first].len;
  }
  if (n > MAX_RANK) return diag_error(D, a->loc, "rank %d exceeds the maximum of %d", n, MAX_RANK);
  s->rank = n;
  Dim known = dim_const(1);
  bool overflow = false;
  for (int i = 0; i < n; i++) {
    if (like && items[i].k == V_INT && items[i].i == -1 && infer < 0) {
      infer = i;
      continue;
    }
    if (!to_dim(S, &items[i], a->loc, &s->d[i])) return false;
    overflow |= __builtin_mul_overflow(known.k, s->d[i].k, &(int64_t){0});
    known = dim_mul(M, known, s->d[i]);
  }
  if (infer >= 0) { /* numel(like) / known, symbols (and squares) included */
    char b[160];
    if (overflow || !dim_div(M, shape_numel(M, like), known, &s->d[infer]))
      return diag_error(D, a->loc, "cannot infer the -1 of this shape: %s elements do not split into the other dims",
                        shape_str(M, DT_F32, like, b, sizeof b));
  }
  return ir_shape_supported(M, s, a->loc, D);
}

static INode *reduce(Sema *S, Op op, INode *x, uint32_t axes, int keepdim, SrcLoc loc) {
  return ir_reduce(M, E, op, x, axes, keepdim, loc, D);
}

/* the minimum over axes, as -max(-x) (the registry has one max reduction, NaN-propagating) */
static INode *reduce_min(Sema *S, INode *x, uint32_t axes, int keepdim, SrcLoc loc) {
  return ir_unary(M, E, OP_NEG, reduce(S, OP_RMAX, ir_unary(M, E, OP_NEG, x, loc, D), axes, keepdim, loc), loc, D);
}

static INode *mean_of(Sema *S, INode *x, uint32_t axes, int keepdim, SrcLoc loc) {
  Dim n = dim_const(1);
  for (int i = 0; i < x->shape.rank; i++)
    if (axes & (1u << i)) n = dim_mul(M, n, x->shape.d[i]);
  INode *s = reduce(S, OP_SUM, x, axes, keepdim, loc);
  return ir_binary(M, E, OP_DIV, s, ir_dim_value(M, E, n, loc), loc, D);
}

/* ---- elementwise: the FUNCTION column of ops.def ---- */

/* The tensor operands' argument names, by arity (torch's: `where(condition, input, other)`). */
static const char *const operand_names[4][3] = {{NULL}, {"input"}, {"input", "other"}, {"condition", "input", "other"}};

INode *elementwise_node(Sema *S, Op op, INode **x, const double *attrs, SrcLoc loc) {
  const OpInfo *o = &op_info[op];
  INode *n = o->arity == 1 ? ir_unary(M, E, op, x[0], loc, D)
           : o->arity == 2 ? ir_binary(M, E, op, x[0], x[1], loc, D)
                           : ir_where(M, E, x[0], x[1], x[2], loc, D);
  if (n && o->attrs.n) {
    n->f[0] = attrs ? attrs[0] : o->attrs.def[0];
    n->f[1] = attrs ? attrs[1] : o->attrs.def[1];
  }
  return n;
}

/* f(operands..., attributes...): of numbers, a number computed now (exp(1.0)); else the op */
static bool b_elementwise(Sema *S, const Builtin *self, const Args *a, Value *out) {
  Op op = (Op)self->variant;
  const OpInfo *o = &op_info[op];
  const char *names[5] = {0};
  int n = 0;
  for (int i = 0; i < o->arity; i++) names[n++] = operand_names[o->arity][i];
  for (int i = 0; i < o->attrs.n; i++) names[n++] = o->attrs.name[i];
  double attrs[2] = {0, 0}, nums[3];
  bool numbers = true;
  for (int i = 0; i < o->arity; i++) {
    const Value *v = arg_get(a, i, names[i]);
    if (v && v_is_number(v)) nums[i] = v_num(v);
    else numbers = false;
  }
  if ((!numbers && !need_entry(S, a, self->name)) || !args_check(S, a, self->name, names, n)) return false;
  for (int i = 0; i < o->attrs.n; i++)
    if (!num_arg(S, a, o->arity + i, o->attrs.name[i], o->attrs.def[i], &attrs[i])) return false;
  if (numbers) {
    *out = v_float(o->eval(nums, attrs));
    return true;
  }
  INode *x[3];
  for (int i = 0; i < o->arity; i++)
    if (!(x[i] = tensor_arg(S, a, i, names[i]))) return false;
  *out = v_tensor(elementwise_node(S, op, x, attrs, a->loc));
  return out->t != NULL;
}

static const Builtin elementwise_builtins[OP_COUNT] = {
#define OP(id, nm, ar, kind, print)
#define ELEM(id, nm, ar, traits, fn, layer, attrs, ev) [OP_##id] = {fn, b_elementwise, OP_##id},
#include "ops.def"
};

const Builtin *elementwise_builtin(Op op) { return &elementwise_builtins[op]; }

bool gelu_op(Sema *S, const Value *v, SrcLoc loc, Op *op) {
  const char *form = !v ? "none" : v->k == V_STR ? v->s : NULL;
  if (form && !strcmp(form, "none")) *op = OP_GELU;
  else if (form && !strcmp(form, "tanh")) *op = OP_GELU_TANH;
  else return diag_error(D, loc, "GELU: approximate must be \"none\" or \"tanh\"");
  return true;
}

/* Unary op `op` (attributes attrs, NULL: none) of argument 0, "input": of a number, a number
 * computed now; of a tensor, the op. */
static bool unary_value(Sema *S, const Builtin *self, const Args *a, Op op, const double *attrs, Value *out) {
  const Value *v = arg_get(a, 0, "input");
  if (v && v_is_number(v)) {
    *out = v_float(op_info[op].eval((const double[]){v_num(v)}, attrs));
    return true;
  }
  INode *x = need_entry(S, a, self->name) ? tensor_arg(S, a, 0, "input") : NULL;
  if (!x) return false;
  *out = v_tensor(elementwise_node(S, op, &x, attrs, a->loc));
  return out->t != NULL;
}

/* gelu(input, approximate="none"): of a number, a number computed now */
static bool b_gelu(Sema *S, const Builtin *self, const Args *a, Value *out) {
  static const char *names[] = {"input", "approximate"};
  Op op;
  if (!args_check(S, a, self->name, names, 2) || !gelu_op(S, arg_get(a, 1, names[1]), a->loc, &op)) return false;
  return unary_value(S, self, a, op, NULL, out);
}

/* clamp(input, min=None, max=None), clip(...): bounds that are numbers (absent: unbounded);
 * hardtanh's op, NaN kept.  Tensor bounds: maximum(minimum(x, hi), lo). */
static bool b_clamp(Sema *S, const Builtin *self, const Args *a, Value *out) {
  static const char *names[] = {"input", "min", "max"};
  double bound[2] = {-INFINITY, INFINITY};
  if (!args_check(S, a, self->name, names, 3)) return false;
  for (int i = 0; i < 2; i++) {
    const Value *v = arg_get(a, 1 + i, names[1 + i]);
    if (v && v->k != V_NONE && !v_is_number(v))
      return diag_error(D, a->loc, "%s: '%s' must be a number (tensor bounds: maximum(minimum(x, hi), lo))", self->name, names[1 + i]);
    if (v && v->k != V_NONE) bound[i] = v_num(v);
  }
  return unary_value(S, self, a, OP_HARDTANH, bound, out);
}

/* matmul(input, other) */
static bool b_matmul(Sema *S, const Builtin *self, const Args *a, Value *out) {
  static const char *names[] = {"input", "other"};
  if (!need_entry(S, a, self->name) || !args_check(S, a, self->name, names, 2)) return false;
  INode *x = tensor_arg(S, a, 0, "input"), *y = x ? tensor_arg(S, a, 1, "other") : NULL;
  if (!y) return false;
  *out = v_tensor(ir_matmul(M, E, x, y, 0, 0, a->loc, D));
  return out->t != NULL;
}

/* ---- reductions ---- */

/* sum/mean/amax/amin(x, axis=None, keepdim=False); max/min of numbers or of two tensors too */
static bool b_reduce(Sema *S, const Builtin *self, const Args *a, Value *out) {
  const char *name = self->name;
  bool is_max = self->variant == REDUCE_MAX, is_min = self->variant == REDUCE_MIN;
  if ((is_max || is_min) && a->npos >= 1 && v_is_number(&a->pos[0])) {
    double best = v_num(&a->pos[0]);
    bool ints = a->pos[0].k != V_FLOAT;
    for (int i = 1; i < a->npos; i++) {
      if (!v_is_number(&a->pos[i])) return diag_error(D, a->loc, "%s of numbers takes numbers", name);
      double x = v_num(&a->pos[i]);
      ints = ints && a->pos[i].k != V_FLOAT;
      best = is_max ? fmax(best, x) : fmin(best, x);
    }
    *out = ints ? v_int((int64_t)best) : v_float(best);
    return true;
  }
  if ((is_max || is_min) && a->npos == 2 && a->pos[1].k == V_TENSOR)
    return b_elementwise(S, elementwise_builtin(is_max ? OP_MAX : OP_MIN), a, out);
  static const char *names[] = {"input", "axis", "keepdim", "dim"};
  if (!need_entry(S, a, name) || !args_check(S, a, name, names, 4)) return false;
  INode *x = tensor_arg(S, a, 0, "input");
  uint32_t axes;
  if (!x || !axes_arg(S, a, 1, x->shape.rank, &axes)) return false;
  int keep = keepdim_arg(S, a, 2);
  for (int i = 0; (is_max || is_min) && i < x->shape.rank; i++) /* torch raises: no identity */
    if (axes & (1u << i) && dim_is(x->shape.d[i], 0))
      return diag_error(D, a->loc, "%s over axis %d of size 0: the %s of no elements is undefined", name, i,
                        is_max ? "maximum" : "minimum");
  INode *r;
  if (self->variant == REDUCE_SUM) r = reduce(S, OP_SUM, x, axes, keep, a->loc);
  else if (self->variant == REDUCE_MEAN) r = mean_of(S, x, axes, keep, a->loc);
  else if (is_max) r = reduce(S, OP_RMAX, x, axes, keep, a->loc);
  else r = reduce_min(S, x, axes, keep, a->loc);
  *out = v_tensor(r);
  return r != NULL;
}

INode *softmax_node(Sema *S, INode *x, int axis, SrcLoc loc) {
  uint32_t ax_mask = 1u << axis;
  INode *ex = ir_unary(M, E, OP_EXP, ir_binary(M, E, OP_SUB, x, reduce(S, OP_RMAX, x, ax_mask, 1, loc), loc, D), loc, D);
  return ir_binary(M, E, OP_DIV, ex, reduce(S, OP_SUM, ex, ax_mask, 1, loc), loc, D);
}

/* softmax / log_softmax / logsumexp (x, axis=-1, temperature=1): the max-shifted forms */
static bool b_softmax(Sema *S, const Builtin *self, const Args *a, Value *out) {
  const char *name = self->name;
  bool lse = self->variant == LOGSUMEXP;
  /* softmax(x, axis, temperature); logsumexp(x, axis, keepdim) as torch.logsumexp */
  static const char *sm_names[] = {"input", "axis", "temperature", "dim"};
  static const char *lse_names[] = {"input", "axis", "keepdim", "dim"};
  if (!need_entry(S, a, name) || !args_check(S, a, name, lse ? lse_names : sm_names, 4)) return false;
  INode *x = tensor_arg(S, a, 0, "input");
  double temp = 1.0;
  if (!x || (!lse && !num_arg(S, a, 2, "temperature", 1.0, &temp))) return false;
  if (!(temp > 0)) return diag_error(D, a->loc, "temperature must be positive, got %g", temp);
  const Value *av = arg_get(a, 1, "axis");
  if (!av) av = arg_get(a, -1, "dim");
  int64_t ax = -1;
  int axis = 0;
  if (av && !to_int(S, av, a->loc, &ax)) return false;
  if (!norm_axis(S, ax, x->shape.rank, a->loc, &axis)) return false;
  if (x->shape.rank == 0) return diag_error(D, a->loc, "%s needs a tensor of rank >= 1", name);
  if (temp != 1.0) x = ir_binary(M, E, OP_DIV, x, ir_fill(M, E, temp, &(Shape){0}, a->loc), a->loc, D);
  if (self->variant == SOFTMAX) {
    *out = v_tensor(softmax_node(S, x, axis, a->loc));
    return out->t != NULL;
  }
  uint32_t ax_mask = 1u << axis;
  INode *mx = reduce(S, OP_RMAX, x, ax_mask, 1, a->loc);
  INode *sh = ir_binary(M, E, OP_SUB, x, mx, a->loc, D);
  INode *ex = ir_unary(M, E, OP_EXP, sh, a->loc, D);
  INode *sm = reduce(S, OP_SUM, ex, ax_mask, 1, a->loc);
  INode *r;
  if (self->variant == LOG_SOFTMAX) r = ir_binary(M, E, OP_SUB, sh, ir_unary(M, E, OP_LOG, sm, a->loc, D), a->loc, D);
  else {
    INode *l = ir_binary(M, E, OP_ADD, ir_unary(M, E, OP_LOG, sm, a->loc, D), mx, a->loc, D);
    if (!keepdim_arg(S, a, 2)) {
      Shape s = {0};
      for (int i = 0; i < x->shape.rank; i++)
        if (i != axis) s.d[s.rank++] = x->shape.d[i];
      l = ir_reshape(M, E, l, &s, a->loc, D);
    }
    r = l;
  }
  *out = v_tensor(r);
  return r != NULL;
}

/* ---- shapes and movement ---- */

static bool b_reshape(Sema *S, const Builtin *self, const Args *a, Value *out) {
  const char *name = self->name;
  if (!need_entry(S, a, name)) return false;
  if (a->npos < 2) return diag_error(D, a->loc, "%s(x, shape) needs a shape", name);
  INode *x = tensor_arg(S, a, 0, "input");
  Shape s;
  if (!x || !shape_arg(S, a, 1, &x->shape, &s)) return false;
  *out = v_tensor(ir_reshape(M, E, x, &s, a->loc, D));
  return out->t != NULL;
}

/* expand(input, *sizes) as torch's x.expand (-1 keeps the input's size), broadcast_to(input,
 * shape): the input broadcast to the shape, as a product with ones (exact for every value,
 * inf and NaN included; fusion makes it an index computation). */
static bool b_expand(Sema *S, const Builtin *self, const Args *a, Value *out) {
  const char *name = self->name;
  if (!need_entry(S, a, name)) return false;
  if (a->npos < 2) return diag_error(D, a->loc, "%s(x, shape) needs a shape", name);
  INode *x = tensor_arg(S, a, 0, "input");
  if (!x) return false;
  const Value *items = a->pos + 1;
  int n = a->npos - 1, r = x->shape.rank;
  if (n == 1 && (items[0].k == V_LIST || items[0].k == V_TUPLE)) {
    n = items[0].len;
    items = items[0].items;
  }
  if (n > MAX_RANK) return diag_error(D, a->loc, "rank %d exceeds the maximum of %d", n, MAX_RANK);
  if (n < r) return diag_error(D, a->loc, "%s: %d sizes for a tensor of rank %d (at least as many are needed)", name, n, r);
  Shape s = {.rank = n};
  for (int i = 0; i < n; i++) {
    int from = i - (n - r); /* the input's axis under this one (right-aligned), or < 0: new */
    if (self->variant == EXPAND && items[i].k == V_INT && items[i].i == -1) {
      if (from < 0) return diag_error(D, a->loc, "expand: -1 (keep the size) is not allowed for a new leading axis %d", i);
      s.d[i] = x->shape.d[from];
    } else if (!to_dim(S, &items[i], a->loc, &s.d[i])) {
      return false;
    }
    if (from >= 0 && !dim_eq(x->shape.d[from], s.d[i]) && !dim_is(x->shape.d[from], 1)) {
      char b[128];
      return diag_error(D, a->loc, "%s: axis %d of %s must be 1 to become another size", name, from,
                        shape_str(M, x->dtype, &x->shape, b, sizeof b));
    }
  }
  if (!ir_shape_supported(M, &s, a->loc, D)) return false;
  *out = v_tensor(ir_binary(M, E, OP_MUL, x, ir_fill(M, E, 1.0, &s, a->loc), a->loc, D));
  return out->t != NULL;
}

static bool b_squeeze(Sema *S, const Builtin *self, const Args *a, Value *out) {
  const char *name = self->name;
  static const char *names[] = {"input", "axis", "dim"};
  if (!need_entry(S, a, name) || !args_check(S, a, name, names, 3)) return false;
  INode *x = tensor_arg(S, a, 0, "input");
  if (!x) return false;
  bool un = self->variant == UNSQUEEZE;
  const Value *av = arg_get(a, 1, "axis");
  if (!av) av = arg_get(a, -1, "dim");
  int64_t ax;
  int axis = 0;
  Shape s = {0};
  if (!av) {
    if (un) return diag_error(D, a->loc, "unsqueeze needs an axis");
    for (int i = 0; i < x->shape.rank; i++)
      if (!dim_is(x->shape.d[i], 1)) s.d[s.rank++] = x->shape.d[i];
  } else {
    if (!to_int(S, av, a->loc, &ax) || !norm_axis(S, ax, x->shape.rank + un, a->loc, &axis)) return false;
    if (un && x->shape.rank == MAX_RANK) return diag_error(D, a->loc, "rank would exceed %d", MAX_RANK);
    for (int i = 0; i <= x->shape.rank; i++) {
      if (un && i == axis) s.d[s.rank++] = dim_const(1);
      if (i == x->shape.rank) break;
      if (!un && i == axis && dim_is(x->shape.d[i], 1)) continue;
      s.d[s.rank++] = x->shape.d[i];
    }
  }
  *out = v_tensor(ir_reshape(M, E, x, &s, a->loc, D));
  return out->t != NULL;
}

/* torch.flatten: merge axes start..end (negative: from the end) */
INode *flatten_node(Sema *S, INode *x, int64_t s0, int64_t e0, SrcLoc loc) {
  int st = 0, en = 0, r = x->shape.rank;
  if (r == 0) return ir_reshape(M, E, x, &(Shape){.rank = 1, .d = {dim_const(1)}}, loc, D);
  if (!norm_axis(S, s0, r, loc, &st) || !norm_axis(S, e0, r, loc, &en)) return NULL;
  if (st > en) return diag_error(D, loc, "flatten: start_dim comes after end_dim"), NULL;
  Shape s = {0};
  for (int i = 0; i < r; i++) {
    if (i <= st || i > en) s.d[s.rank++] = x->shape.d[i];
    else s.d[s.rank - 1] = dim_mul(M, s.d[s.rank - 1], x->shape.d[i]);
  }
  return ir_reshape(M, E, x, &s, loc, D);
}

/* flatten(x, start_dim=0, end_dim=-1) */
static bool b_flatten(Sema *S, const Builtin *self, const Args *a, Value *out) {
  const char *name = self->name;
  static const char *names[] = {"input", "start_dim", "end_dim"};
  if (!need_entry(S, a, name) || !args_check(S, a, name, names, 3)) return false;
  INode *x = tensor_arg(S, a, 0, "input");
  int64_t s0, e0;
  if (!x || !int_arg(S, a, 1, "start_dim", 0, &s0) || !int_arg(S, a, 2, "end_dim", -1, &e0)) return false;
  *out = v_tensor(flatten_node(S, x, s0, e0, a->loc));
  return out->t != NULL;
}

static bool b_transpose(Sema *S, const Builtin *self, const Args *a, Value *out) {
  const char *name = self->name;
  if (!need_entry(S, a, name)) return false;
  INode *x = tensor_arg(S, a, 0, "input");
  if (!x) return false;
  int r = x->shape.rank, perm[MAX_RANK];
  for (int i = 0; i < r; i++) perm[i] = i;
  if (self->variant == TRANSPOSE) {
    int64_t d0, d1;
    int x0 = 0, x1 = 0;
    if (a->npos != 3) return diag_error(D, a->loc, "transpose(x, dim0, dim1) takes two axes");
    if (!to_int(S, &a->pos[1], a->loc, &d0) || !to_int(S, &a->pos[2], a->loc, &d1) ||
        !norm_axis(S, d0, r, a->loc, &x0) || !norm_axis(S, d1, r, a->loc, &x1))
      return false;
    perm[x0] = x1;
    perm[x1] = x0;
  } else {
    Shape dims;
    if (a->npos < 2 || !shape_arg(S, a, 1, NULL, &dims)) return diag_error(D, a->loc, "permute(x, dims) needs the axes");
    if (dims.rank != r) return diag_error(D, a->loc, "permute needs %d axes, got %d", r, dims.rank);
    for (int i = 0; i < r; i++)
      if (!norm_axis(S, dims.d[i].k, r, a->loc, &perm[i])) return false;
  }
  *out = v_tensor(ir_permute(M, E, x, perm, a->loc, D));
  return out->t != NULL;
}

/* cat([a, b, ...], axis=0) */
static bool b_cat(Sema *S, const Builtin *self, const Args *a, Value *out) {
  const char *name = self->name;
  static const char *names[] = {"tensors", "axis", "dim"};
  if (!need_entry(S, a, name) || !args_check(S, a, name, names, 3)) return false;
  const Value *l = arg_get(a, 0, "tensors");
  if (!l || (l->k != V_LIST && l->k != V_TUPLE) || l->len == 0)
    return diag_error(D, a->loc, "%s takes a non-empty list of tensors", name);
  INode *acc = to_tensor(S, &l->items[0], a->loc);
  if (!acc) return false;
  const Value *av = arg_get(a, 1, "axis");
  if (!av) av = arg_get(a, -1, "dim");
  int64_t ax = 0;
  int axis = 0;
  if ((av && !to_int(S, av, a->loc, &ax)) || !norm_axis(S, ax, acc->shape.rank, a->loc, &axis)) return false;
  for (int i = 1; i < l->len && acc; i++) {
    INode *t = to_tensor(S, &l->items[i], a->loc);
    acc = t ? ir_concat(M, E, acc, t, axis, a->loc, D) : NULL;
  }
  *out = v_tensor(acc);
  return acc != NULL;
}

/* x cut along axis into n pieces of sizes[] (summing to the axis) -> a tuple */
static bool split_value(Sema *S, INode *x, int axis, const int64_t *sizes, int n, SrcLoc loc, Value *out) {
  Value *items = arena_alloc(S->arena, (n + 1) * sizeof *items);
  int64_t off = 0;
  for (int i = 0; i < n; i++) {
    items[i] = v_tensor(ir_slice(M, E, x, axis, off, off + sizes[i], 1, loc, D));
    if (!items[i].t) return false;
    off += sizes[i];
  }
  *out = (Value){.k = V_TUPLE, .items = items, .len = n};
  return true;
}

/* split(x, split_size_or_sections, axis=0) -> tuple, as torch.split */
static bool b_split(Sema *S, const Builtin *self, const Args *a, Value *out) {
  const char *name = self->name;
  static const char *names[] = {"input", "split_size_or_sections", "axis", "dim"};
  if (!need_entry(S, a, name) || !args_check(S, a, name, names, 4)) return false;
  INode *x = tensor_arg(S, a, 0, "input");
  const Value *sv = arg_get(a, 1, "split_size_or_sections");
  if (!x) return false;
  if (!sv) return diag_error(D, a->loc, "split needs split_size_or_sections");
  const Value *av = arg_get(a, 2, "axis");
  if (!av) av = arg_get(a, -1, "dim");
  int64_t ax = 0;
  int axis = 0;
  if ((av && !to_int(S, av, a->loc, &ax)) || !norm_axis(S, ax, x->shape.rank, a->loc, &axis)) return false;
  Dim len = x->shape.d[axis];
  if (len.syms) return diag_error(D, a->loc, "cannot split along a symbolic dimension");
  int64_t sizes[1024];
  int n = 0;
  if (sv->k == V_LIST || sv->k == V_TUPLE) {
    int64_t tot = 0;
    if (sv->len > 1024) return diag_error(D, a->loc, "too many sections");
    for (int i = 0; i < sv->len; i++) {
      if (!to_int(S, &sv->items[i], a->loc, &sizes[n]) || sizes[n] < 0) return diag_error(D, a->loc, "section sizes must be non-negative integers");
      if (__builtin_add_overflow(tot, sizes[n++], &tot))
        return diag_error(D, a->loc, "split sections sum to more than the axis has (%lld)", (long long)len.k);
    }
    if (tot != len.k) return diag_error(D, a->loc, "split sections sum to %lld but the axis has %lld", (long long)tot, (long long)len.k);
  } else {
    int64_t sz;
    if (!to_int(S, sv, a->loc, &sz)) return false;
    if (sz <= 0) return diag_error(D, a->loc, "split size must be positive");
    if (len.k / sz + (len.k % sz != 0) > 1024) return diag_error(D, a->loc, "too many sections");
    for (int64_t off = 0; off < len.k; off += sizes[n - 1]) sizes[n++] = sz <= len.k - off ? sz : len.k - off;
  }
  return split_value(S, x, axis, sizes, n, a->loc, out);
}

/* chunk(input, chunks, dim=0) -> tuple, as torch.chunk: pieces of ceil(size / chunks) (the
 * last smaller; fewer pieces when they run out) */
static bool b_chunk(Sema *S, const Builtin *self, const Args *a, Value *out) {
  static const char *names[] = {"input", "chunks", "dim", "axis"};
  if (!need_entry(S, a, self->name) || !args_check(S, a, self->name, names, 4)) return false;
  INode *x = tensor_arg(S, a, 0, "input");
  const Value *cv = arg_get(a, 1, "chunks"), *av = arg_get(a, 2, "dim");
  if (!av) av = arg_get(a, -1, "axis");
  int64_t chunks, ax = 0;
  int axis = 0;
  if (!x || !cv || !to_int(S, cv, a->loc, &chunks) || (av && !to_int(S, av, a->loc, &ax)) ||
      !norm_axis(S, ax, x->shape.rank, a->loc, &axis))
    return x && !cv ? diag_error(D, a->loc, "chunk needs chunks") : false;
  Dim len = x->shape.d[axis];
  if (chunks <= 0 || chunks > 1024) return diag_error(D, a->loc, "chunk: chunks must be 1 to 1024, got %lld", (long long)chunks);
  if (len.syms) return diag_error(D, a->loc, "cannot chunk a symbolic dimension");
  int64_t sizes[1024], sz = len.k ? (len.k + chunks - 1) / chunks : 0;
  int n = 0;
  for (int64_t off = 0; off < len.k; off += sz) sizes[n++] = off + sz <= len.k ? sz : len.k - off;
  if (!len.k) sizes[n++] = 0;
  return split_value(S, x, axis, sizes, n, a->loc, out);
}

/* stack(tensors, dim=0): each with a new axis of size 1 at dim, concatenated there */
static bool b_stack(Sema *S, const Builtin *self, const Args *a, Value *out) {
  static const char *names[] = {"tensors", "dim", "axis"};
  if (!need_entry(S, a, self->name) || !args_check(S, a, self->name, names, 3)) return false;
  const Value *l = arg_get(a, 0, "tensors"), *av = arg_get(a, 1, "dim");
  if (!av) av = arg_get(a, -1, "axis");
  if (!l || (l->k != V_LIST && l->k != V_TUPLE) || l->len == 0)
    return diag_error(D, a->loc, "stack takes a non-empty list of tensors");
  INode *acc = NULL;
  int64_t ax = 0;
  int axis = 0;
  for (int i = 0; i < l->len; i++) {
    INode *t = to_tensor(S, &l->items[i], a->loc);
    if (!t) return false;
    if (i == 0 && ((av && !to_int(S, av, a->loc, &ax)) || !norm_axis(S, ax, t->shape.rank + 1, a->loc, &axis))) return false;
    if (t->shape.rank == MAX_RANK) return diag_error(D, a->loc, "stack: rank would exceed %d", MAX_RANK);
    Shape u = {.rank = t->shape.rank + 1};
    for (int k = 0, j = 0; k < u.rank; k++) u.d[k] = k == axis ? dim_const(1) : t->shape.d[j++];
    t = ir_reshape(M, E, t, &u, a->loc, D);
    acc = acc ? ir_concat(M, E, acc, t, axis, a->loc, D) : t;
    if (!acc) return false;
  }
  *out = v_tensor(acc);
  return true;
}

/* An axis list argument (an int or a list of ints) as axes of rank `rank`, in order. */
static int axis_list(Sema *S, const Value *v, int rank, SrcLoc loc, int *axes) {
  const Value *items = v->k == V_LIST || v->k == V_TUPLE ? v->items : v;
  int n = v->k == V_LIST || v->k == V_TUPLE ? v->len : 1;
  if (n > MAX_RANK) return diag_error(D, loc, "too many axes"), -1;
  for (int i = 0; i < n; i++) {
    int64_t ax;
    if (!to_int(S, &items[i], loc, &ax) || !norm_axis(S, ax, rank, loc, &axes[i])) return -1;
  }
  return n;
}

/* x reversed along axis: re-indexed by size-1, ..., 0 */
static INode *reverse_axis(Sema *S, INode *x, int axis, SrcLoc loc) {
  Dim len = x->shape.d[axis];
  if (len.syms) return diag_error(D, loc, "flip: the axis must be static"), NULL;
  int64_t *src = arena_alloc(S->arena, (len.k ? len.k : 1) * sizeof *src);
  for (int64_t i = 0; i < len.k; i++) src[i] = len.k - 1 - i;
  return nn_take(S, x, axis, src, len.k, loc);
}

/* flip(input, dims) as torch.flip */
static bool b_flip(Sema *S, const Builtin *self, const Args *a, Value *out) {
  static const char *names[] = {"input", "dims"};
  if (!need_entry(S, a, self->name) || !args_check(S, a, self->name, names, 2)) return false;
  INode *x = tensor_arg(S, a, 0, "input");
  const Value *dv = arg_get(a, 1, "dims");
  int axes[MAX_RANK], n;
  if (!x) return false;
  if (!dv) return diag_error(D, a->loc, "flip needs dims");
  if ((n = axis_list(S, dv, x->shape.rank, a->loc, axes)) < 0) return false;
  for (int i = 0; i < n && x; i++) x = reverse_axis(S, x, axes[i], a->loc);
  *out = v_tensor(x);
  return x != NULL;
}

/* roll(input, shifts, dims=None) as torch.roll: without dims, of the flattened tensor */
static bool b_roll(Sema *S, const Builtin *self, const Args *a, Value *out) {
  static const char *names[] = {"input", "shifts", "dims"};
  if (!need_entry(S, a, self->name) || !args_check(S, a, self->name, names, 3)) return false;
  INode *x = tensor_arg(S, a, 0, "input");
  const Value *sv = arg_get(a, 1, "shifts"), *dv = arg_get(a, 2, "dims");
  if (!x) return false;
  if (!sv) return diag_error(D, a->loc, "roll needs shifts");
  Shape orig = x->shape;
  int axes[MAX_RANK], n = 1;
  if (!dv || dv->k == V_NONE) {
    Shape flat = {.rank = 1, .d = {shape_numel(M, &x->shape)}};
    x = ir_reshape(M, E, x, &flat, a->loc, D);
    axes[0] = 0;
  } else if ((n = axis_list(S, dv, x->shape.rank, a->loc, axes)) < 0) {
    return false;
  }
  const Value *shifts = sv->k == V_LIST || sv->k == V_TUPLE ? sv->items : sv;
  if ((sv->k == V_LIST || sv->k == V_TUPLE ? sv->len : 1) != n)
    return diag_error(D, a->loc, "roll: shifts and dims must have the same length");
  for (int i = 0; i < n && x; i++) {
    int64_t sh;
    Dim len = x->shape.d[axes[i]];
    if (!to_int(S, &shifts[i], a->loc, &sh)) return false;
    if (len.syms) return diag_error(D, a->loc, "roll: the axis must be static");
    if (!len.k || !(sh = ((sh % len.k) + len.k) % len.k)) continue;
    INode *tail = ir_slice(M, E, x, axes[i], len.k - sh, len.k, 1, a->loc, D);
    x = ir_concat(M, E, tail, ir_slice(M, E, x, axes[i], 0, len.k - sh, 1, a->loc, D), axes[i], a->loc, D);
  }
  if (x && (!dv || dv->k == V_NONE)) x = ir_reshape(M, E, x, &orig, a->loc, D);
  *out = v_tensor(x);
  return x != NULL;
}

/* var / std(input, dim=None, unbiased=True, keepdim=False, correction=None) as torch: the sum
 * of squared deviations from the mean over (count - correction); correction 1 unless
 * unbiased=False (0) or given */
static bool b_var(Sema *S, const Builtin *self, const Args *a, Value *out) {
  static const char *names[] = {"input", "dim", "unbiased", "keepdim", "correction", "axis"};
  if (!need_entry(S, a, self->name) || !args_check(S, a, self->name, names, 6)) return false;
  INode *x = tensor_arg(S, a, 0, "input");
  uint32_t axes;
  if (!x || !axes_arg(S, a, 1, x->shape.rank, &axes)) return false;
  const Value *ub = arg_get(a, 2, "unbiased"), *cv = arg_get(a, 4, "correction");
  double correction = ub && v_is_number(ub) && v_num(ub) == 0 ? 0 : 1;
  if (cv && cv->k != V_NONE && !v_is_number(cv)) return diag_error(D, a->loc, "%s: correction must be a number", self->name);
  if (cv && cv->k != V_NONE) correction = v_num(cv);
  bool keep = keepdim_arg(S, a, 3);
  Dim n = dim_const(1);
  for (int i = 0; i < x->shape.rank; i++)
    if (axes & (1u << i)) n = dim_mul(M, n, x->shape.d[i]);
  INode *dev = ir_binary(M, E, OP_SUB, x, mean_of(S, x, axes, 1, a->loc), a->loc, D);
  INode *ss = reduce(S, OP_SUM, ir_binary(M, E, OP_MUL, dev, dev, a->loc, D), axes, keep, a->loc);
  INode *den = ir_binary(M, E, OP_SUB, ir_dim_value(M, E, n, a->loc), ir_fill(M, E, correction, &(Shape){0}, a->loc), a->loc, D);
  INode *v = ir_binary(M, E, OP_DIV, ss, den, a->loc, D);
  *out = v_tensor(self->variant == REDUCE_STD ? ir_unary(M, E, OP_SQRT, v, a->loc, D) : v);
  return out->t != NULL;
}

/* norm(input, p=2, dim=None, keepdim=False) as torch.norm / torch.linalg.vector_norm: over
 * `dim` (all axes when absent) (sum |x|^p)^(1/p); p = 2 or "fro" sqrt(sum x^2), 1 sum |x|,
 * inf / -inf the largest / smallest |x|, 0 the count of nonzeros */
static bool b_norm(Sema *S, const Builtin *self, const Args *a, Value *out) {
  static const char *names[] = {"input", "p", "dim", "keepdim", "axis"};
  if (!need_entry(S, a, self->name) || !args_check(S, a, self->name, names, 5)) return false;
  INode *x = tensor_arg(S, a, 0, "input");
  uint32_t axes;
  if (!x || !axes_arg(S, a, 2, x->shape.rank, &axes)) return false;
  const Value *pv = arg_get(a, 1, "p");
  double p = 2;
  if (pv && pv->k == V_STR && strcmp(pv->s, "fro"))
    return diag_error(D, a->loc, "norm: p must be a number or \"fro\", not \"%s\"", pv->s);
  if (pv && pv->k != V_NONE && pv->k != V_STR && !v_is_number(pv))
    return diag_error(D, a->loc, "norm: p must be a number or \"fro\"");
  if (pv && v_is_number(pv)) p = v_num(pv);
  bool keep = keepdim_arg(S, a, 3);
  SrcLoc l = a->loc;
  INode *ax = ir_unary(M, E, OP_ABS, x, l, D), *r;
  if (p == INFINITY) r = reduce(S, OP_RMAX, ax, axes, keep, l);
  else if (p == -INFINITY) r = reduce_min(S, ax, axes, keep, l);
  else if (p == 0) r = reduce(S, OP_SUM, ir_binary(M, E, OP_NE, x, ir_fill(M, E, 0, &(Shape){0}, l), l, D), axes, keep, l);
  else if (p == 1) r = reduce(S, OP_SUM, ax, axes, keep, l);
  else if (p == 2) r = ir_unary(M, E, OP_SQRT, reduce(S, OP_SUM, ir_binary(M, E, OP_MUL, x, x, l, D), axes, keep, l), l, D);
  else {
    INode *pw = ir_binary(M, E, OP_POW, ax, ir_fill(M, E, p, &(Shape){0}, l), l, D);
    r = ir_binary(M, E, OP_POW, reduce(S, OP_SUM, pw, axes, keep, l), ir_fill(M, E, 1.0 / p, &(Shape){0}, l), l, D);
  }
  *out = v_tensor(r);
  return r != NULL;
}

/* ---- creation ---- */

static bool b_fill(Sema *S, const Builtin *self, const Args *a, Value *out) {
  const char *name = self->name;
  if (!need_entry(S, a, name)) return false;
  Shape s;
  double v = self->variant == FILL_ONES || self->variant == FILL_ONES_LIKE ? 1.0 : 0.0;
  if (self->variant == FILL_ZEROS_LIKE || self->variant == FILL_ONES_LIKE) {
    INode *x = tensor_arg(S, a, 0, "input");
    if (!x) return false;
    s = x->shape;
  } else if (self->variant == FILL_FULL) {
    if (a->npos != 2 || !v_is_number(&a->pos[1])) return diag_error(D, a->loc, "full(shape, value) takes a shape and a number");
    Args sub = *a;
    sub.npos = 1;
    if (!shape_arg(S, &sub, 0, NULL, &s)) return false;
    v = v_num(&a->pos[1]);
  } else if (!shape_arg(S, a, 0, NULL, &s)) {
    return false;
  }
  *out = v_tensor(ir_fill(M, E, v, &s, a->loc));
  return true;
}

/* ---- compile-time helpers ---- */

static bool b_meta(Sema *S, const Builtin *self, const Args *a, Value *out) {
  const char *name = self->name;
  if (a->npos != 1 && self->variant != META_RANGE) return diag_error(D, a->loc, "%s takes one argument", name);
  const Value *v = &a->pos[0];
  if (self->variant == META_LEN) {
    if (v->k == V_LIST || v->k == V_TUPLE) { *out = v_int(v->len); return true; }
    if (v->k == V_MOD && v->mod->kind == MK_SEQUENTIAL) { *out = v_int(v->mod->nchildren); return true; }
    if (v->k == V_RANGE) { /* i2 - i may not fit in int64_t */
      uint64_t n = v->i2 > v->i ? (uint64_t)v->i2 - (uint64_t)v->i : 0;
      if (n > INT64_MAX) return diag_error(D, a->loc, "len of a range of more than 2^63 - 1 items");
      *out = v_int((int64_t)n);
      return true;
    }
    return diag_error(D, a->loc, "len takes a list, a tuple, a range or a Sequential, not %s%s",
                      v_kind_phrase(v->k), v->k == V_TENSOR ? " (a tensor's sizes are in its type)" : "");
  }
  if (self->variant == META_REVERSED) {
    Value *items;
    int len;
    if (v->k != V_LIST && v->k != V_TUPLE && v->k != V_RANGE && !(v->k == V_MOD && v->mod->kind == MK_SEQUENTIAL))
      return diag_error(D, a->loc, "reversed takes a list, a tuple, a range or a Sequential, not %s", v_kind_phrase(v->k));
    if (!iterate_api(S, v, a->loc, &items, &len)) return false;
    Value *rev = arena_alloc(S->arena, (len + 1) * sizeof *rev);
    for (int i = 0; i < len; i++) rev[i] = items[len - 1 - i];
    *out = (Value){.k = V_LIST, .items = rev, .len = len};
    return true;
  }
  if (self->variant == META_RANGE) {
    int64_t lo = 0, hi;
    if (a->npos < 1 || a->npos > 2) return diag_error(D, a->loc, "range(stop) or range(start, stop)");
    if (!to_int(S, &a->pos[0], a->loc, &hi)) return false;
    if (a->npos == 2) {
      lo = hi;
      if (!to_int(S, &a->pos[1], a->loc, &hi)) return false;
    }
    *out = (Value){.k = V_RANGE, .i = lo, .i2 = hi};
    return true;
  }
  if (v->k == V_TENSOR && (self->variant == META_FLOAT || self->variant == META_LONG)) { /* x.float(), x.long() */
    *out = v_tensor(ir_convert(M, E, v->t, self->variant == META_LONG ? DT_I64 : DT_F32, a->loc, D));
    return true;
  }
  if (self->variant == META_FLOAT) {
    if (!v_is_number(v)) return diag_error(D, a->loc, "float() takes a number or a tensor");
    *out = v_float(v_num(v));
    return true;
  }
  if (self->variant == META_LONG && v->k != V_FLOAT && v->k != V_INT)
    return diag_error(D, a->loc, "long() takes a number or a tensor");
  int64_t i; /* int(), long(): truncate floats like Python */
  if (v->k == V_FLOAT) i = (int64_t)v->f;
  else if (!to_int(S, v, a->loc, &i)) return false;
  *out = v_int(i);
  return true;
}

/* assert(cond[, message]): a compile-time check, e.g. that a -D value is one the model knows. */
static bool b_assert(Sema *S, const Builtin *self, const Args *a, Value *out) {
  (void)out;
  if (a->npos < 1 || a->npos > 2) return diag_error(D, a->loc, "assert(condition) or assert(condition, message)");
  const Value *c = &a->pos[0];
  if (c->k != V_BOOL && c->k != V_INT)
    return diag_error(D, a->loc, "assert needs a compile-time condition, not a %s", v_kind_name(c->k));
  if (a->npos == 2 && a->pos[1].k != V_STR)
    return diag_error(D, a->loc, "assert's message must be a string, not a %s", v_kind_name(a->pos[1].k));
  if (c->i) return true;
  return diag_error(D, a->loc, "assertion failed%s%s", a->npos == 2 ? ": " : "", a->npos == 2 ? a->pos[1].s : "");
}

/* Rows of the functions above; a handler serving several names tells them apart by variant. */
static const Builtin builtins[] = {
  {"matmul", b_matmul}, {"gelu", b_gelu}, {"clamp", b_clamp}, {"clip", b_clamp},
  {"sum", b_reduce, REDUCE_SUM}, {"mean", b_reduce, REDUCE_MEAN}, {"amax", b_reduce, REDUCE_MAX},
  {"amin", b_reduce, REDUCE_MIN}, {"max", b_reduce, REDUCE_MAX}, {"min", b_reduce, REDUCE_MIN},
  {"softmax", b_softmax, SOFTMAX}, {"log_softmax", b_softmax, LOG_SOFTMAX}, {"logsumexp", b_softmax, LOGSUMEXP},
  {"reshape", b_reshape}, {"view", b_reshape}, {"squeeze", b_squeeze, SQUEEZE}, {"unsqueeze", b_squeeze, UNSQUEEZE},
  {"expand", b_expand, EXPAND}, {"broadcast_to", b_expand, BROADCAST_TO},
  {"flatten", b_flatten}, {"transpose", b_transpose, TRANSPOSE}, {"permute", b_transpose, PERMUTE},
  {"cat", b_cat}, {"concat", b_cat}, {"split", b_split}, {"chunk", b_chunk}, {"stack", b_stack},
  {"flip", b_flip}, {"roll", b_roll}, {"var", b_var, REDUCE_VAR}, {"norm", b_norm}, {"std", b_var, REDUCE_STD},
  {"zeros", b_fill, FILL_ZEROS}, {"ones", b_fill, FILL_ONES}, {"full", b_fill, FILL_FULL},
  {"zeros_like", b_fill, FILL_ZEROS_LIKE}, {"ones_like", b_fill, FILL_ONES_LIKE},
  {"len", b_meta, META_LEN}, {"reversed", b_meta, META_REVERSED}, {"range", b_meta, META_RANGE},
  {"float", b_meta, META_FLOAT}, {"int", b_meta, META_INT}, {"long", b_meta, META_LONG},
  {"assert", b_assert},
  {NULL, NULL},
};

/* The tables in lookup order; function names and layer names never coincide. */
static const Builtin *const tables[] = {builtins, nn_builtins, index_builtins};

const Builtin *builtin_find(const char *name) {
  for (int op = 0; op < OP_COUNT; op++)
    if (elementwise_builtins[op].name && !strcmp(elementwise_builtins[op].name, name)) return &elementwise_builtins[op];
  for (size_t t = 0; t < sizeof tables / sizeof *tables; t++)
    for (const Builtin *b = tables[t]; b->name; b++)
      if (!strcmp(b->name, name)) return b;
  return layer_find(name);
}
