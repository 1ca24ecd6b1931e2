/* onnx_ops_index.c — ONNX ops that make, repeat, rank or place values along axes:
 * ConstantOfShape, Range, Expand, Tile, CumSum, Trilu, ArgMax/ArgMin, TopK, OneHot and
 * ScatterElements (whose run-time indices go through index_from_end, as Gather's do).
 * Shapes, counts, axes and k are read at compile time (constants or shapes folded by
 * onnx_shape.c); integer results are i64 tensors (nnc carries ONNX's int32 as i64; index
 * values are exact up to 2^24, as the .nn front end's argmax and topk).  Every size and
 * attribute is checked here before it reaches a builder: the file is untrusted. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "builtins.h"
#include "nn.h"
#include "onnx_import_internal.h"

#define S_ (&I->S)

enum { CUMSUM_MAX = 1024, TOPK_MAX = 64, TILE_MAX = 1 << 20 };
#define EXACT_INT 16777216.0 /* 2^24: integers f32 holds exactly */

/* y as x's dtype (an i64 input's result back to i64) */
static INode *like(Imp *I, INode *y, const INode *x) {
  return y && x->dtype == DT_I64 ? ir_convert(IM, IE, y, DT_I64, I->loc, ID) : y;
}

/* Input i as a shape: a rank-1 integer vector (constant or folded) of sizes >= 0 */
static bool shape_input(Imp *I, int i, Shape *s) {
  ShapeVal v;
  if (!imp_int_vector(I, i, &v)) return false;
  if (v.rank != 1 || v.n > MAX_RANK)
    return imp_fail(I, "input %d (a shape) has %d values in %d dims, expected at most %d in one", i, v.n, v.rank, MAX_RANK);
  s->rank = v.n;
  for (int k = 0; k < v.n; k++) {
    if (v.d[k].k <= 0) return imp_fail(I, "input %d (a shape) has %lld at %d, expected sizes > 0", i, (long long)v.d[k].k, k);
    s->d[k] = v.d[k];
  }
  return ir_shape_supported(IM, s, I->loc, ID);
}

/* Input i as one static integer (a scalar or a vector of one) */
static bool int_scalar(Imp *I, int i, const char *what, int64_t *out) {
  ShapeVal v;
  if (!imp_int_vector(I, i, &v)) return false;
  if (v.n != 1 || v.d[0].syms) return imp_fail(I, "input %d (%s) is not one static integer", i, what);
  *out = v.d[0].k;
  return true;
}

/* ConstantOfShape: `value` (one f32, int or bool; default f32 0) filled to the shape */
bool op_constant_of_shape(Imp *I, const OpRow *row, INode **out) {
  Shape s;
  const OnnxAttr *a = onnx_node_attr(I->node, "value");
  if (!shape_input(I, 0, &s)) return false;
  if (a && (a->kind != ONNX_ATTR_TENSOR || a->t->numel != 1))
    return imp_fail(I, "attribute 'value' is not a tensor of one value");
  const OnnxTensor *t = a ? a->t : NULL;
  double v = 0;
  int64_t iv = 0; /* an integer value, exact */
  DType dt = DT_F32;
  if (!t || t->dtype == ONNX_F32) v = t ? *(const float *)t->data : 0.0;
  else if (t->dtype == ONNX_I64) iv = *(const int64_t *)t->data, v = (double)iv, dt = DT_I64;
  else if (t->dtype == ONNX_I32) iv = *(const int32_t *)t->data, v = (double)iv, dt = DT_I64;
  else if (t->dtype == ONNX_BOOL) v = *(const uint8_t *)t->data != 0; /* bool as f32 1.0 / 0.0 */
  else return imp_fail(I, "attribute 'value' is %s, expected f32, int64, int32 or bool", onnx_dtype_name(t->dtype));
  if (dt == DT_I64 && s.rank == 1 && !s.d[0].syms && s.d[0].k <= SHAPE_VAL_MAX) { /* shape arithmetic, folded */
    ShapeVal *sv = arena_alloc(I->S.arena, sizeof *sv);
    *sv = (ShapeVal){.rank = 1, .n = (int)s.d[0].k};
    for (int k = 0; k < sv->n; k++) sv->d[k] = dim_const(iv);
    I->out_sv = sv;
    return true;
  }
  if (fabs(v) > EXACT_INT && dt == DT_I64) return imp_fail(I, "attribute 'value' %.0f is beyond 2^24", v);
  INode *y = ir_fill(IM, IE, v, &s, I->loc);
  return (out[0] = dt == DT_I64 ? ir_convert(IM, IE, y, DT_I64, I->loc, ID) : y) != NULL;
}

/* Input i of Range: f32 (constant data, or a folded dim Cast to float) or not (integer) */
static bool is_float_input(Imp *I, int i) {
  const ImpValue *v = imp_has_input(I, i) ? imp_find(I, I->node->inputs[i]) : NULL;
  return v && (v->data ? v->data->dtype == ONNX_F32 : v->t && v->t->dtype == DT_F32);
}

/* Range's scalar input i: a constant f32, or one integer of a constant or folded vector (a
 * symbolic dim in *sym) */
static bool range_scalar(Imp *I, int i, double *out, Dim *sym) {
  *sym = dim_const(0);
  if (imp_is_int_vector(I, i)) {
    ShapeVal v;
    if (!imp_int_vector(I, i, &v)) return false;
    if (v.n != 1) return imp_fail(I, "input %d is not a scalar", i);
    if (v.d[0].syms) *sym = v.d[0];
    *out = (double)v.d[0].k;
    return true;
  }
  const OnnxTensor *t = imp_const_input(I, i);
  if (!t) return false;
  if (t->dtype != ONNX_F32 || t->numel != 1)
    return imp_fail(I, "input %d is %s of %lld values, expected one f32 or integer", i, onnx_dtype_name(t->dtype),
                    (long long)t->numel);
  *out = *(const float *)t->data;
  return true;
}

/* Range: start + k delta for k < max(ceil((limit - start) / delta), 0), f32 or integer (i64);
 * bounds may be folded dims, a symbolic limit taken as the length when start = 0 and
 * delta = 1 */
bool op_range(Imp *I, const OpRow *row, INode **out) {
  bool floats = is_float_input(I, 0) || is_float_input(I, 1) || is_float_input(I, 2);
  double v[3];
  Dim sym[3];
  for (int i = 0; i < 3; i++)
    if (!range_scalar(I, i, &v[i], &sym[i])) return false;
  if (sym[0].syms || sym[2].syms || (sym[1].syms && (v[0] != 0 || v[2] != 1)))
    return imp_fail(I, "the bounds are symbolic: nnc takes a symbolic limit with start 0 and delta 1 only");
  Dim n = sym[1];
  if (v[2] == 0 || !isfinite(v[0]) || !isfinite(v[1]) || !isfinite(v[2]))
    return imp_fail(I, "start, limit and delta must be finite and delta nonzero");
  if (!n.syms) {
    double count = ceil((v[1] - v[0]) / v[2]);
    if (count < 1 || count > EXACT_INT) return imp_fail(I, "the range has %.0f elements, expected 1 to 2^24", count);
    n = dim_const((int64_t)count);
  }
  if (!floats && (fabs(v[0]) > EXACT_INT || fabs(v[0] + v[2] * (double)n.k) > EXACT_INT))
    return imp_fail(I, "integer range beyond 2^24 (nnc computes index values in f32)");
  Shape s = {.rank = 1, .d = {n}};
  if (!ir_shape_supported(IM, &s, I->loc, ID)) return false;
  INode *y = ir_iota(IM, IE, &s, 0, I->loc);
  if (v[2] != 1) y = ir_binary(IM, IE, OP_MUL, y, imp_scalar(I, v[2]), I->loc, ID);
  if (v[0] != 0) y = ir_binary(IM, IE, OP_ADD, y, imp_scalar(I, v[0]), I->loc, ID);
  return (out[0] = floats ? y : ir_convert(IM, IE, y, DT_I64, I->loc, ID)) != NULL;
}

/* Expand: x broadcast with the shape (NumPy's rules, both ways), as a product with ones
 * (exact for every value; the .nn front end's expand) */
bool op_expand(Imp *I, const OpRow *row, INode **out) {
  Shape s;
  INode *x = imp_input(I, 0);
  if (!x || !shape_input(I, 1, &s)) return false;
  INode *y = ir_binary(IM, IE, OP_MUL, x, ir_fill(IM, IE, 1.0, &s, I->loc), I->loc, ID);
  return (out[0] = like(I, y, x)) != NULL;
}

/* x repeated r times along ax: concatenations of x, 2x, 4x, ... (every block is x's period) */
static INode *repeat_axis(Imp *I, INode *x, int ax, int64_t r) {
  INode *y = NULL, *p = x;
  for (; r && p; r >>= 1) {
    if (r & 1) y = y ? ir_concat(IM, IE, y, p, ax, I->loc, ID) : p;
    if (r >> 1) p = ir_concat(IM, IE, p, p, ax, I->loc, ID);
  }
  return p ? y : NULL;
}

/* Tile: repeats (constant, one per axis, >= 1) */
bool op_tile(Imp *I, const OpRow *row, INode **out) {
  INode *y = imp_input(I, 0);
  ShapeVal r;
  if (!y || !imp_int_vector(I, 1, &r)) return false;
  if (r.rank != 1 || r.n != y->shape.rank)
    return imp_fail(I, "input 1 (repeats) has %d values, expected one per axis (%d)", r.n, y->shape.rank);
  Shape s = y->shape; /* the result's, checked before any concatenation */
  for (int k = 0; k < r.n; k++) {
    if (r.d[k].syms || r.d[k].k < 1 || r.d[k].k > TILE_MAX)
      return imp_fail(I, "input 1 (repeats) has %lld at %d, expected a static count of 1 to %d", (long long)r.d[k].k, k,
                      TILE_MAX);
    if (__builtin_mul_overflow(s.d[k].k, r.d[k].k, &s.d[k].k)) return imp_fail(I, "the result is too large");
  }
  if (!ir_shape_supported(IM, &s, I->loc, ID)) return false;
  for (int k = 0; k < r.n && y; k++)
    if (r.d[k].k > 1) y = repeat_axis(I, y, k, r.d[k].k);
  return (out[0] = y) != NULL;
}

/* The [L, L] matrix T of a cumulative sum as x T over the last axis: T[i][j] = 1 when x[i]
 * counts in y[j] */
static INode *cumsum_matrix(Imp *I, int64_t len, bool exclusive, bool reverse) {
  float *t = arena_alloc(I->S.arena, (size_t)(len * len) * sizeof *t);
  for (int64_t i = 0; i < len; i++)
    for (int64_t j = 0; j < len; j++) {
      bool in = reverse ? i >= j : i <= j;
      t[i * len + j] = in && !(exclusive && i == j);
    }
  Shape s = {.rank = 2, .d = {dim_const(len), dim_const(len)}};
  return ir_const_data(IM, IE, t, &s, I->loc);
}

/* CumSum along a constant axis (static, at most CUMSUM_MAX long): a GEMM with a triangular
 * matrix of ones, the axis moved last and back */
bool op_cumsum(Imp *I, const OpRow *row, INode **out) {
  INode *x = imp_input(I, 0);
  int64_t axis = 0, exclusive, reverse;
  int ax, perm[MAX_RANK];
  if (!x || !int_scalar(I, 1, "axis", &axis) || !norm_axis(I, axis, x->shape.rank, "axis", &ax) ||
      !attr_int(I, "exclusive", 0, &exclusive) || !attr_int(I, "reverse", 0, &reverse))
    return false;
  if (x->shape.rank == 0) return imp_fail(I, "input 0 is a scalar, expected rank >= 1");
  Dim len = x->shape.d[ax];
  if (len.syms || len.k > CUMSUM_MAX)
    return imp_fail(I, "the axis is symbolic or longer than %d: nnc sums it as a product with a triangular matrix", CUMSUM_MAX);
  int last = x->shape.rank - 1;
  for (int k = 0; k <= last; k++) perm[k] = k == ax ? last : k == last ? ax : k; /* a swap: its own inverse */
  INode *y = ir_permute(IM, IE, ir_convert(IM, IE, x, DT_F32, I->loc, ID), perm, I->loc, ID);
  y = ir_matmul(IM, IE, y, cumsum_matrix(I, len.k, exclusive != 0, reverse != 0), 0, 0, I->loc, ID);
  return (out[0] = like(I, ir_permute(IM, IE, y, perm, I->loc, ID), x)) != NULL;
}

/* Trilu: the upper (column - row >= k) or lower (column - row <= k) triangle of the last two
 * axes, the rest 0; a causal mask's triu(full(-inf), 1) on a symbolic T too (iota compares,
 * k an optional static scalar) */
bool op_trilu(Imp *I, const OpRow *row, INode **out) {
  INode *x = imp_input(I, 0);
  int64_t k = 0, upper;
  if (!x || (imp_has_input(I, 1) && !int_scalar(I, 1, "k", &k)) ||
      !attr_int(I, "upper", 1, &upper))
    return false;
  int r = x->shape.rank;
  if (r < 2) return imp_fail(I, "input 0 has rank %d, expected at least 2", r);
  if (k < -IR_MAX_STATIC_ELEMENTS || k > IR_MAX_STATIC_ELEMENTS) return imp_fail(I, "input 1 (k) is %lld, beyond 2^40", (long long)k);
  Shape plane = {.rank = 2, .d = {x->shape.d[r - 2], x->shape.d[r - 1]}};
  INode *diag = ir_binary(IM, IE, OP_SUB, ir_iota(IM, IE, &plane, 1, I->loc), ir_iota(IM, IE, &plane, 0, I->loc),
                          I->loc, ID); /* column - row */
  INode *keep = ir_binary(IM, IE, upper ? OP_GE : OP_LE, diag, imp_scalar(I, (double)k), I->loc, ID);
  INode *zero = x->dtype == DT_I64 ? ir_convert(IM, IE, imp_scalar(I, 0), DT_I64, I->loc, ID) : imp_scalar(I, 0);
  return (out[0] = like(I, ir_where(IM, IE, keep, x, zero, I->loc, ID), x)) != NULL;
}

/* ArgMax, ArgMin: the first extreme index along the axis (i64), or with select_last_index the
 * last: L - 1 - the first of the axis reversed (a constant re-indexing, nn_take) */
bool op_arg_extreme(Imp *I, const OpRow *row, INode **out) {
  INode *x = imp_input(I, 0);
  int64_t axis, keep, last;
  int ax;
  if (!x || !attr_int(I, "axis", 0, &axis) || !attr_int(I, "keepdims", 1, &keep) ||
      !attr_int(I, "select_last_index", 0, &last) || !norm_axis(I, axis, x->shape.rank, "axis", &ax))
    return false;
  if (x->shape.rank == 0) return imp_fail(I, "input 0 is a scalar, expected rank >= 1");
  Dim len = x->shape.d[ax];
  if (len.syms) return imp_fail(I, "the axis is symbolic: nnc takes a static one");
  if (last) {
    int64_t *rev = arena_alloc(I->S.arena, (size_t)len.k * sizeof *rev);
    for (int64_t k = 0; k < len.k; k++) rev[k] = len.k - 1 - k;
    x = nn_take(S_, x, ax, rev, len.k, I->loc);
  }
  INode *y = index_of_extreme(S_, x, ax, !strcmp(row->name, "ArgMax"), keep != 0, I->loc);
  if (y && last) y = ir_binary(IM, IE, OP_SUB, imp_scalar(I, (double)(len.k - 1)), y, I->loc, ID);
  return (out[0] = ir_convert(IM, IE, y, DT_I64, I->loc, ID)) != NULL;
}

/* TopK: k (an input since opset 10, else an attribute) largest or smallest along the axis,
 * sorted; the indices (i64) of ties in order */
bool op_topk(Imp *I, const OpRow *row, INode **out) {
  INode *x = imp_input(I, 0);
  int64_t axis, largest, sorted, k;
  int ax;
  if (!x || !attr_int(I, "axis", -1, &axis) || !attr_int(I, "largest", 1, &largest) || !attr_int(I, "sorted", 1, &sorted) ||
      !norm_axis(I, axis, x->shape.rank, "axis", &ax))
    return false;
  if (I->opset < 10 ? !attr_int(I, "k", -1, &k) : !int_scalar(I, 1, "K", &k)) return false;
  if (x->shape.rank == 0) return imp_fail(I, "input 0 is a scalar, expected rank >= 1");
  Dim len = x->shape.d[ax];
  if (len.syms || k < 1 || k > len.k || k > TOPK_MAX)
    return imp_fail(I, "k is %lld: nnc takes 1 to the axis's static size, at most %d", (long long)k, TOPK_MAX);
  INode *idx, *v = topk_node(S_, x, k, ax, largest != 0, &idx, I->loc);
  out[0] = like(I, v, x);
  out[1] = v ? ir_convert(IM, IE, idx, DT_I64, I->loc, ID) : NULL;
  return out[0] && out[1];
}

INode *index_wrapped(Imp *I, INode *ix, Dim len) {
  INode *f = ir_convert(IM, IE, ix, DT_F32, I->loc, ID);
  INode *negative = ir_binary(IM, IE, OP_LT, f, imp_scalar(I, 0), I->loc, ID);
  return ir_binary(IM, IE, OP_ADD, f, ir_binary(IM, IE, OP_MUL, negative, ir_dim_value(IM, IE, len, I->loc), I->loc, ID),
                   I->loc, ID);
}

INode *index_from_end(Imp *I, INode *ix, Dim len, const char *what) {
  return ir_check_index(IM, IE, index_wrapped(I, ix, len), len, what, I->loc, ID);
}

/* The n numbers of OneHot's constant input i (depth: 1, values: 2), f32 or integer; *integer
 * when they are integers */
static bool one_hot_numbers(Imp *I, int i, const char *what, int n, double *v, bool *integer) {
  const OnnxTensor *t = imp_const_input(I, i);
  if (!t) return false;
  if (t->numel != n || (t->dtype != ONNX_F32 && t->dtype != ONNX_I64 && t->dtype != ONNX_I32))
    return imp_fail(I, "input %d (%s) is not %d f32 or integer value%s", i, what, n, n > 1 ? "s" : "");
  *integer = t->dtype != ONNX_F32;
  for (int k = 0; k < n; k++)
    v[k] = t->dtype == ONNX_F32 ? ((const float *)t->data)[k]
           : t->dtype == ONNX_I64 ? (double)((const int64_t *)t->data)[k] : ((const int32_t *)t->data)[k];
  return true;
}

/* OneHot: a new axis of `depth` (a constant, its fraction dropped) at `axis`, `on` where its
 * position is the index (negative ones counted from the end), `off` elsewhere; an index
 * outside [-depth, depth) gives a row of `off`, as ONNX says, so the indices are not checked.
 * The output is i64 when `values` are integers. */
bool op_one_hot(Imp *I, const OpRow *row, INode **out) {
  INode *ix = imp_input(I, 0);
  int64_t axis = -1;
  double v[2] = {0, 1}, d = 0;
  bool integer = false, integer_depth;
  int ax;
  if (!ix || !one_hot_numbers(I, 1, "depth", 1, &d, &integer_depth) || !one_hot_numbers(I, 2, "values", 2, v, &integer) ||
      !attr_int(I, "axis", -1, &axis))
    return false;
  if (!(d >= 1 && d <= IR_MAX_STATIC_ELEMENTS)) return imp_fail(I, "depth is %g, expected a positive size", d);
  int64_t depth = (int64_t)d;
  if (ix->shape.rank >= MAX_RANK) return imp_fail(I, "the result has rank above %d", MAX_RANK);
  if (!norm_axis(I, axis, ix->shape.rank + 1, "axis", &ax)) return false;
  Shape s = {.rank = ix->shape.rank + 1}, column = s;
  for (int k = 0, j = 0; k < s.rank; k++) {
    s.d[k] = k == ax ? dim_const(depth) : ix->shape.d[j];
    column.d[k] = k == ax ? dim_const(1) : ix->shape.d[j++];
  }
  INode *f = index_wrapped(I, ix, dim_const(depth));
  INode *hot = ir_binary(IM, IE, OP_EQ, ir_reshape(IM, IE, f, &column, I->loc, ID), ir_iota(IM, IE, &s, ax, I->loc),
                         I->loc, ID);
  if (hot && (v[0] != 0 || v[1] != 1)) /* off + (on - off) * hot */
    hot = ir_binary(IM, IE, OP_ADD, imp_scalar(I, v[0]), ir_binary(IM, IE, OP_MUL, hot, imp_scalar(I, v[1] - v[0]), I->loc, ID),
                    I->loc, ID);
  return (*out = integer && hot ? ir_convert(IM, IE, hot, DT_I64, I->loc, ID) : hot) != NULL;
}

#define SCATTER_MAX 64 /* indices per line: each is one where over the data */

/* ScatterElements (reduction none) of run-time indices along `axis` whose other dims are the
 * data's (nnc scatters into whole lines): the K indices of each line (K static) are applied in
 * order, each as a where over the line (position == index ? update : what is there), so a
 * later index wins over an earlier equal one (ONNX leaves duplicates undefined) */
bool op_scatter_elements(Imp *I, const OpRow *row, INode **out) {
  INode *data = input_f32(I, 0), *ix = data ? imp_input(I, 1) : NULL, *up = ix ? input_f32(I, 2) : NULL;
  const char *reduction = up ? attr_string(I, "reduction", "none") : NULL;
  int64_t axis;
  int ax;
  if (!reduction || !attr_int(I, "axis", 0, &axis) || !norm_axis(I, axis, data->shape.rank, "axis", &ax)) return false;
  if (strcmp(reduction, "none")) return imp_fail(I, "attribute 'reduction' is '%s': nnc takes none only", reduction);
  if (!shape_eq(&ix->shape, &up->shape)) return imp_fail(I, "the indices and the updates differ in shape");
  if (ix->shape.rank != data->shape.rank) return imp_fail(I, "the indices' rank is not the data's");
  for (int k = 0; k < data->shape.rank; k++)
    if (k != ax && !dim_eq(ix->shape.d[k], data->shape.d[k]))
      return imp_fail(I, "the indices' dim %d is not the data's: nnc scatters into whole lines along the axis", k);
  Dim n = ix->shape.d[ax];
  if (n.syms || n.k > SCATTER_MAX) return imp_fail(I, "the indices have a symbolic or over %d long axis", SCATTER_MAX);
  INode *f = index_from_end(I, ix, data->shape.d[ax], "ScatterElements: input 1 (indices)");
  INode *position = ir_iota(IM, IE, &data->shape, ax, I->loc), *y = data;
  for (int64_t k = 0; k < n.k && y && f; k++) {
    INode *hit = ir_binary(IM, IE, OP_EQ, ir_slice(IM, IE, f, ax, k, k + 1, 1, I->loc, ID), position, I->loc, ID);
    y = ir_where(IM, IE, hit, ir_slice(IM, IE, up, ax, k, k + 1, 1, I->loc, ID), y, I->loc, ID);
  }
  return (*out = f ? y : NULL) != NULL;
}
