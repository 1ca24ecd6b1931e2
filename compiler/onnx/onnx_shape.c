/* onnx_shape.c — integer vectors folded at compile time (ShapeVal, onnx_import_internal.h)
 * and the ops that move data along axes: Shape gives a tensor's dims, symbolic ones included;
 * Gather, Slice, Unsqueeze, Squeeze and Concat of such vectors (or of integer constants) give
 * vectors again, which Reshape takes as its shape.  This is how an exporter's
 * Shape -> Gather -> Unsqueeze -> Concat -> Reshape for a dynamic batch becomes a reshape with
 * the symbolic dim.  On f32 tensors Gather (constant indices), Slice (constant bounds),
 * Unsqueeze and Squeeze become IR reshapes, slices and nn_take; Gather of run-time indices an
 * IR gather; Split slices. */
#include <stdio.h>
#include <string.h>

#include "onnx_import_internal.h"

#define S_ (&I->S)

/* ---- integer vectors ---- */

static const ImpValue *input_value(Imp *I, int i) {
  return imp_has_input(I, i) ? imp_find(I, I->node->inputs[i]) : NULL;
}

static bool is_int_data(const OnnxTensor *t) {
  return t && (t->dtype == ONNX_I64 || t->dtype == ONNX_I32);
}

bool imp_is_int_vector(Imp *I, int i) {
  const ImpValue *v = input_value(I, i);
  return v && (v->sv || (is_int_data(v->data) && v->data->rank <= 1 && !v->t));
}

bool imp_int_vector(Imp *I, int i, ShapeVal *out) {
  const ImpValue *v = input_value(I, i);
  if (v && v->sv) return *out = *v->sv, true;
  const OnnxTensor *t = imp_const_input(I, i);
  int64_t vals[SHAPE_VAL_MAX];
  char what[32];
  snprintf(what, sizeof what, "input %d", i);
  if (!t || !imp_const_ints(I, t, vals, &out->n, SHAPE_VAL_MAX, what)) return false;
  out->rank = t->rank;
  for (int k = 0; k < out->n; k++) out->d[k] = dim_const(vals[k]);
  return true;
}

static bool define_vector(Imp *I, const ShapeVal *v) {
  ShapeVal *copy = arena_alloc(I->S.arena, sizeof *copy);
  *copy = *v;
  I->out_sv = copy;
  return true;
}

bool imp_axes(Imp *I, int input, int64_t *v, int *n) {
  const OnnxAttr *a = onnx_node_attr(I->node, "axes");
  *n = 0;
  if (a) {
    if (a->kind != ONNX_ATTR_INTS || a->n > MAX_RANK)
      return imp_fail(I, "attribute 'axes' is not a list of at most %d ints", MAX_RANK);
    for (*n = 0; *n < a->n; (*n)++) v[*n] = a->ints[*n];
    return true;
  }
  if (!imp_has_input(I, input)) return true;
  const OnnxTensor *t = imp_const_input(I, input);
  return t && imp_const_ints(I, t, v, n, MAX_RANK, "the axes input");
}

/* axes v[n] normalized against rank into a mask, each once */
static bool axes_mask(Imp *I, const int64_t *v, int n, int rank, uint32_t *mask) {
  *mask = 0;
  for (int k = 0; k < n; k++) {
    int ax;
    if (!norm_axis(I, v[k], rank, "axes", &ax)) return false;
    if (*mask & (1u << ax)) return imp_fail(I, "axis %d is given twice", ax);
    *mask |= 1u << ax;
  }
  return true;
}

/* ---- Shape ---- */

bool op_shape(Imp *I, const OpRow *row, INode **out) {
  INode *x = imp_input(I, 0);
  int64_t start, end;
  if (!x || !attr_int(I, "start", 0, &start) || !attr_int(I, "end", x->shape.rank, &end)) return false;
  int r = x->shape.rank;
  start = start < 0 ? start + r : start, end = end < 0 ? end + r : end;
  start = start < 0 ? 0 : start > r ? r : start, end = end < start ? start : end > r ? r : end;
  ShapeVal v = {.rank = 1, .n = (int)(end - start)};
  for (int k = 0; k < v.n; k++) v.d[k] = x->shape.d[start + k];
  return define_vector(I, &v);
}

/* ---- Gather ---- */

static bool gather_vector(Imp *I, int64_t axis) {
  ShapeVal data, idx, v = {0};
  if (!imp_int_vector(I, 0, &data) || !imp_int_vector(I, 1, &idx)) return false;
  if (data.rank != 1 || (axis != 0 && axis != -1))
    return imp_fail(I, "gathering from a folded integer vector of rank %d along axis %lld", data.rank, (long long)axis);
  v.rank = idx.rank, v.n = idx.n;
  for (int k = 0; k < idx.n; k++) {
    int64_t j = idx.d[k].k;
    if (idx.d[k].syms || j < -data.n || j >= data.n)
      return imp_fail(I, "index %lld is out of range for %d values", (long long)j, data.n);
    v.d[k] = data.d[j < 0 ? j + data.n : j];
  }
  return define_vector(I, &v);
}

/* x's shape with the axis replaced by the dims of an index of shape ix */
static Shape gathered_shape(const Shape *x, int ax, const Shape *ix) {
  Shape s = {0};
  for (int k = 0; k < x->rank; k++) {
    if (k != ax) s.d[s.rank++] = x->d[k];
    else
      for (int j = 0; j < ix->rank; j++) s.d[s.rank++] = ix->d[j];
  }
  return s;
}

/* Gather of run-time indices (an embedding's tokens): the indices, negative ones counted from
 * the end and checked against the axis at run time, flattened into one gather along the axis
 * (torch's index_select), whose result takes the indices' dims in place of the axis */
static bool gather_runtime(Imp *I, INode *x, int ax, INode **out) {
  INode *ix = imp_input(I, 1);
  if (!ix) return false;
  if (x->shape.rank - 1 + ix->shape.rank > MAX_RANK) return imp_fail(I, "the result has rank above %d", MAX_RANK);
  Dim n = dim_const(1), len = x->shape.d[ax];
  for (int k = 0; k < ix->shape.rank; k++) n = dim_mul(IM, n, ix->shape.d[k]);
  Shape column = {.rank = x->shape.rank - ax}, picked = x->shape;
  for (int k = 0; k < column.rank; k++) column.d[k] = k ? dim_const(1) : n;
  picked.d[ax] = n;
  INode *f = ir_reshape(IM, IE, index_from_end(I, ix, len, "Gather: input 1 (indices)"), &column, I->loc, ID);
  Shape s = gathered_shape(&x->shape, ax, &ix->shape);
  INode *y = f ? ir_gather(IM, IE, x, f, ax, &picked, I->loc, ID) : NULL;
  return y && (*out = ir_reshape(IM, IE, y, &s, I->loc, ID));
}

/* Gather of a tensor: by constant indices, nn_take along the axis, then the indices' dims in
 * place of the axis; by run-time ones, gather_runtime */
bool op_gather(Imp *I, const OpRow *row, INode **out) {
  int64_t axis;
  if (!attr_int(I, "axis", 0, &axis)) return false;
  if (imp_is_int_vector(I, 0)) return gather_vector(I, axis);
  INode *x = input_f32(I, 0);
  int ax;
  if (!x || !norm_axis(I, axis, x->shape.rank, "axis", &ax)) return false;
  const ImpValue *iv = input_value(I, 1);
  if (iv && !iv->data && !iv->sv) return gather_runtime(I, x, ax, out);
  const OnnxTensor *t = imp_const_input(I, 1);
  if (!t) return false;
  if (t->dtype != ONNX_I64 && t->dtype != ONNX_I32) return imp_fail(I, "the indices are %s, expected int64 or int32", onnx_dtype_name(t->dtype));
  Dim len = x->shape.d[ax];
  if (len.syms) return imp_fail(I, "gathering along a symbolic axis is not supported");
  if (x->shape.rank - 1 + t->rank > MAX_RANK) return imp_fail(I, "the result has rank above %d", MAX_RANK);
  int64_t *src = arena_alloc(I->S.arena, (t->numel ? t->numel : 1) * sizeof *src);
  for (int64_t k = 0; k < t->numel; k++) {
    int64_t j = t->dtype == ONNX_I64 ? ((const int64_t *)t->data)[k] : ((const int32_t *)t->data)[k];
    if (j < -len.k || j >= len.k) return imp_fail(I, "index %lld is out of range for an axis of %lld", (long long)j, (long long)len.k);
    src[k] = j < 0 ? j + len.k : j;
  }
  INode *y = nn_take(S_, x, ax, src, t->numel, I->loc);
  Shape ix = {.rank = t->rank};
  for (int j = 0; j < t->rank; j++) ix.d[j] = dim_const(t->dims[j]);
  Shape s = gathered_shape(&x->shape, ax, &ix);
  return y && (*out = ir_reshape(IM, IE, y, &s, I->loc, ID));
}

/* ---- Unsqueeze, Squeeze ---- */

bool op_unsqueeze(Imp *I, const OpRow *row, INode **out) {
  int64_t v[MAX_RANK];
  int n;
  uint32_t mask;
  if (!imp_axes(I, 1, v, &n)) return false;
  if (!n) return imp_fail(I, "no axes are given");
  if (imp_is_int_vector(I, 0)) {
    ShapeVal s;
    if (!imp_int_vector(I, 0, &s)) return false;
    if (s.rank != 0 || n != 1 || (v[0] != 0 && v[0] != -1))
      return imp_fail(I, "unsqueezing a folded integer vector: only a scalar into one axis");
    s.rank = 1;
    return define_vector(I, &s);
  }
  INode *x = imp_input(I, 0);
  if (!x) return false;
  int r = x->shape.rank + n;
  if (r > MAX_RANK) return imp_fail(I, "the result has rank %d, above %d", r, MAX_RANK);
  if (!axes_mask(I, v, n, r, &mask)) return false;
  Shape s = {.rank = r};
  for (int k = 0, j = 0; k < r; k++) s.d[k] = mask & (1u << k) ? dim_const(1) : x->shape.d[j++];
  return (*out = ir_reshape(IM, IE, x, &s, I->loc, ID)) != NULL;
}

bool op_squeeze(Imp *I, const OpRow *row, INode **out) {
  int64_t v[MAX_RANK];
  int n;
  uint32_t mask = 0;
  if (!imp_axes(I, 1, v, &n)) return false;
  if (imp_is_int_vector(I, 0)) {
    ShapeVal s;
    if (!imp_int_vector(I, 0, &s)) return false;
    if (s.rank != 1 || s.n != 1) return imp_fail(I, "squeezing a folded integer vector of %d values", s.n);
    s.rank = 0;
    return define_vector(I, &s);
  }
  INode *x = imp_input(I, 0);
  if (!x || !axes_mask(I, v, n, x->shape.rank, &mask)) return false;
  Shape s = {0};
  for (int k = 0; k < x->shape.rank; k++) {
    Dim d = x->shape.d[k];
    bool unit = d.k == 1 && !d.syms;
    if ((mask & (1u << k)) && !unit) return imp_fail(I, "axis %d has size other than 1", k);
    if (n ? !(mask & (1u << k)) : !unit) s.d[s.rank++] = d;
  }
  return (*out = ir_reshape(IM, IE, x, &s, I->loc, ID)) != NULL;
}

/* ---- Concat of integer vectors ---- */

bool shape_concat(Imp *I, int axis, INode **out) {
  ShapeVal v = {.rank = 1}, part;
  if (axis != 0 && axis != -1) return imp_fail(I, "concatenating folded integer vectors along axis %d", axis);
  for (int i = 0; i < I->node->n_inputs; i++) {
    if (!imp_int_vector(I, i, &part)) return false;
    if (part.rank != 1 || v.n + part.n > SHAPE_VAL_MAX)
      return imp_fail(I, "input %d: concatenating folded integer vectors of rank 1 (at most %d values)", i, SHAPE_VAL_MAX);
    memcpy(v.d + v.n, part.d, part.n * sizeof *part.d);
    v.n += part.n;
  }
  return define_vector(I, &v);
}

/* ---- Slice ---- */

typedef struct SliceArgs {
  int n;                         /* axes sliced */
  int64_t start[MAX_RANK], end[MAX_RANK], axis[MAX_RANK], step[MAX_RANK];
} SliceArgs;

/* The ints of input i, a constant or a shape folded at compile time to static values (an
 * exporter's `size // chunks` arithmetic), at most MAX_RANK of them. */
static bool static_ints_input(Imp *I, int i, int64_t *dst, int *n, const char *what) {
  ShapeVal v;
  if (!imp_is_int_vector(I, i)) return imp_const_input(I, i) && imp_fail(I, "the %s input is not integer", what);
  if (!imp_int_vector(I, i, &v)) return false;
  if (v.n > MAX_RANK) return imp_fail(I, "the %s input has %d values, at most %d", what, v.n, MAX_RANK);
  for (int k = 0; k < v.n; k++) {
    if (v.d[k].syms) return imp_fail(I, "the %s input holds a symbolic size: nnc needs it known at compile time", what);
    dst[k] = v.d[k].k;
  }
  *n = v.n;
  return true;
}

/* starts, ends, axes, steps: attributes before opset 10, constant inputs 1 to 4 from it */
static bool slice_args(Imp *I, SliceArgs *a) {
  int ne, na, ns;
  if (I->opset < 10) {
    int64_t v[3][MAX_RANK];
    const char *names[3] = {"starts", "ends", "axes"};
    int counts[3];
    for (int j = 0; j < 3; j++) {
      const OnnxAttr *at = onnx_node_attr(I->node, names[j]);
      if (!at && j < 2) return imp_fail(I, "attribute '%s' is missing", names[j]);
      if (at && (at->kind != ONNX_ATTR_INTS || at->n > MAX_RANK)) return imp_fail(I, "attribute '%s' is not a list of at most %d ints", names[j], MAX_RANK);
      counts[j] = at ? at->n : -1;
      for (int k = 0; at && k < at->n; k++) v[j][k] = at->ints[k];
    }
    a->n = counts[0], ne = counts[1], na = counts[2] < 0 ? a->n : counts[2], ns = a->n;
    memcpy(a->start, v[0], sizeof v[0]), memcpy(a->end, v[1], sizeof v[1]);
    for (int k = 0; k < a->n; k++) a->axis[k] = counts[2] < 0 ? k : v[2][k], a->step[k] = 1;
  } else {
    bool given[4] = {false};
    const char *names[4] = {"starts", "ends", "axes", "steps"};
    int *counts[4] = {&a->n, &ne, &na, &ns};
    int64_t *dst[4] = {a->start, a->end, a->axis, a->step};
    for (int j = 0; j < 4; j++) {
      if (j >= 2 && !imp_has_input(I, j + 1)) continue;
      if (!static_ints_input(I, j + 1, dst[j], counts[j], names[j])) return false;
      given[j] = true;
    }
    if (!given[2]) na = a->n;
    if (!given[3]) ns = a->n;
    for (int k = 0; k < a->n; k++) {
      if (!given[2]) a->axis[k] = k;
      if (!given[3]) a->step[k] = 1;
    }
  }
  if (ne != a->n || na != a->n || ns != a->n)
    return imp_fail(I, "starts, ends, axes and steps have %d, %d, %d and %d values, expected as many", a->n, ne, na, ns);
  return true;
}

/* ONNX's clamping of one axis of length len: the first index and the count */
static bool slice_range(Imp *I, int64_t len, int64_t start, int64_t end, int64_t *stepp, int64_t *first, int64_t *count) {
  if (*stepp == 0) return imp_fail(I, "a step is 0");
  if (*stepp > len + 1 || *stepp < -len - 1) *stepp = *stepp > 0 ? len + 1 : -len - 1; /* one element at most */
  int64_t step = *stepp;
  if (start < 0) start += len;
  if (end < 0) end += len;
  if (step > 0) {
    start = start < 0 ? 0 : start > len ? len : start;
    end = end < 0 ? 0 : end > len ? len : end;
    *count = end > start ? (end - start + step - 1) / step : 0;
  } else {
    start = start < 0 ? 0 : start > len - 1 ? len - 1 : start;
    end = end < -1 ? -1 : end > len - 1 ? len - 1 : end;
    *count = start > end ? (start - end + (-step) - 1) / (-step) : 0;
  }
  *first = start;
  return true;
}

static bool slice_vector(Imp *I, const SliceArgs *a) {
  ShapeVal v, r = {.rank = 1};
  int64_t first, count;
  if (!imp_int_vector(I, 0, &v)) return false;
  if (v.rank != 1 || a->n != 1 || (a->axis[0] != 0 && a->axis[0] != -1))
    return imp_fail(I, "slicing a folded integer vector: one axis, 0");
  int64_t step = a->step[0];
  if (!slice_range(I, v.n, a->start[0], a->end[0], &step, &first, &count)) return false;
  for (int64_t k = 0; k < count; k++) r.d[r.n++] = v.d[first + k * step];
  return define_vector(I, &r);
}

static INode *slice_axis(Imp *I, INode *x, int ax, int64_t start, int64_t end, int64_t step) {
  Dim len = x->shape.d[ax];
  int64_t first, count;
  if (len.syms) {
    if (start == 0 && end >= INT32_MAX && step == 1) return x;
    return imp_fail(I, "slicing along axis %d, a symbolic dim, other than all of it", ax), NULL;
  }
  if (!slice_range(I, len.k, start, end, &step, &first, &count)) return NULL;
  if (!count) return imp_fail(I, "slicing axis %d gives no elements: nnc has no empty tensors", ax), NULL;
  if (step > 0) return ir_slice(IM, IE, x, ax, first, first + (count - 1) * step + 1, step, I->loc, ID);
  int64_t *src = arena_alloc(I->S.arena, (count ? count : 1) * sizeof *src);
  for (int64_t k = 0; k < count; k++) src[k] = first + k * step;
  return nn_take(S_, x, ax, src, count, I->loc);
}

bool op_slice(Imp *I, const OpRow *row, INode **out) {
  SliceArgs a;
  if (!slice_args(I, &a)) return false;
  if (imp_is_int_vector(I, 0)) return slice_vector(I, &a);
  INode *x = imp_input(I, 0);
  uint32_t seen = 0;
  for (int k = 0; k < a.n && x; k++) {
    int ax;
    if (!norm_axis(I, a.axis[k], x->shape.rank, "axes", &ax)) return false;
    if (seen & (1u << ax)) return imp_fail(I, "axis %d is sliced twice", ax);
    seen |= 1u << ax;
    x = slice_axis(I, x, ax, a.start[k], a.end[k], a.step[k]);
  }
  return (*out = x) != NULL;
}

/* ---- integer arithmetic on folded vectors ---- */

/* One element of Add, Sub, Mul, Div, Equal or Where over dims x[] (a symbolic dim is k × a
 * product of sizes, positive at run time); false when the result is not such a dim or not
 * known at compile time. */
static bool fold_one(Model *m, Op op, const Dim *x, Dim *out) {
  Dim a = x[0], b = x[1];
  bool stat = !a.syms && !b.syms;
  int64_t v;
  switch (op) {
  case OP_ADD: if (!b.k && !b.syms) return *out = a, true;
               if (!a.k && !a.syms) return *out = b, true;
               return stat && !__builtin_add_overflow(a.k, b.k, &v) && (*out = dim_const(v), true);
  case OP_SUB: if (!b.k && !b.syms) return *out = a, true;
               return stat && !__builtin_sub_overflow(a.k, b.k, &v) && (*out = dim_const(v), true);
  case OP_MUL: if (__builtin_mul_overflow(a.k, b.k, &v)) return false;
               return *out = dim_mul(m, a, b), true; /* T × T: the square's symbol */
  case OP_DIV: if (b.syms) return dim_div(m, a, b, out); /* T*T / T, exactly only */
               if (!b.k || (b.k == -1 && a.k == INT64_MIN)) return false;
               if (stat) return *out = dim_const(a.k / b.k), true; /* ONNX's integer Div truncates, as C */
               if (a.k % b.k) return false; /* a symbolic size divides exactly only */
               return *out = (Dim){a.k / b.k, a.syms}, true;
  case OP_EQ:  if (dim_eq(a, b)) return *out = dim_const(1), true;
               if (stat || (a.syms && a.k > 0 && !b.syms && b.k <= 0) || (b.syms && b.k > 0 && !a.syms && a.k <= 0))
                 return *out = dim_const(0), true; /* a positive size is not <= 0 */
               return false;
  case OP_WHERE: if (a.syms) return false;
                 return *out = a.k ? b : x[2], true;
  default: return false;
  }
}

int fold_int_elementwise(Imp *I, Op op, int nin) {
  ShapeVal v[3], r = {.rank = 0, .n = 1};
  for (int i = 0; i < nin; i++)
    if (!imp_is_int_vector(I, i)) return 0;
  for (int i = 0; i < nin; i++) {
    if (!imp_int_vector(I, i, &v[i])) return -1;
    if (v[i].rank > r.rank) r.rank = v[i].rank;
    if (v[i].n != 1 && r.n != 1 && v[i].n != r.n) return 0; /* the tensor path says why */
    if (v[i].n != 1) r.n = v[i].n;
  }
  for (int k = 0; k < r.n; k++) {
    Dim x[3] = {{0}};
    for (int i = 0; i < nin; i++) x[i] = v[i].d[v[i].n == 1 ? 0 : k];
    if (!fold_one(IM, op, x, &r.d[k])) return 0;
  }
  return define_vector(I, &r) ? 1 : -1;
}

/* ---- Split ---- */

/* The sizes of Split's parts along a static axis of length len: constant input 1 (the
 * attribute 'split' before opset 13), else n equal parts (ceil(len / n), the last one smaller
 * since opset 18) where n is num_outputs (opset 18) or the node's outputs */
static bool split_sizes(Imp *I, int64_t len, int64_t *sizes, int *n) {
  int64_t parts;
  if (I->node->n_outputs > OP_MAX_OUT) return imp_fail(I, "%d outputs: nnc splits into 1 to %d", I->node->n_outputs, OP_MAX_OUT);
  if (I->opset < 13 && onnx_node_attr(I->node, "split")) {
    if (!attr_ints_n(I, "split", I->node->n_outputs, 0, sizes)) return false;
    *n = I->node->n_outputs;
  } else if (imp_has_input(I, 1)) {
    const OnnxTensor *t = imp_const_input(I, 1);
    if (!t || !imp_const_ints(I, t, sizes, n, OP_MAX_OUT, "input 1 (split)")) return false;
  } else {
    if (!attr_int(I, "num_outputs", I->node->n_outputs, &parts)) return false;
    if (parts < 1 || parts > OP_MAX_OUT) return imp_fail(I, "%lld parts: nnc splits into 1 to %d", (long long)parts, OP_MAX_OUT);
    *n = (int)parts;
    for (int k = 0; k < *n; k++) {
      int64_t step = (len + parts - 1) / parts, start = k * step;
      sizes[k] = start >= len ? 0 : (len - start < step ? len - start : step);
    }
  }
  int64_t total = 0;
  for (int k = 0; k < *n; k++) {
    if (sizes[k] < 0) return imp_fail(I, "part %d has size %lld", k, (long long)sizes[k]);
    total += sizes[k];
  }
  if (*n != I->node->n_outputs) return imp_fail(I, "%d parts for %d outputs", *n, I->node->n_outputs);
  if (total != len) return imp_fail(I, "the parts add up to %lld, the axis has %lld", (long long)total, (long long)len);
  return true;
}

/* Split: consecutive slices along a static axis */
bool op_split(Imp *I, const OpRow *row, INode **out) {
  INode *x = imp_input(I, 0);
  int64_t axis, sizes[OP_MAX_OUT];
  int ax, n = 0;
  if (!x || !attr_int(I, "axis", 0, &axis) || !norm_axis(I, axis, x->shape.rank, "axis", &ax)) return false;
  Dim len = x->shape.d[ax];
  if (len.syms) return imp_fail(I, "splitting a symbolic axis is not supported");
  if (!split_sizes(I, len.k, sizes, &n)) return false;
  int64_t start = 0;
  for (int k = 0; k < n; start += sizes[k], k++)
    if (!(out[k] = ir_slice(IM, IE, x, ax, start, start + sizes[k], 1, I->loc, ID))) return false;
  return true;
}
