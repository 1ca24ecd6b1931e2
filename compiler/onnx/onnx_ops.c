/* onnx_ops.c — the ONNX ops nnc translates: one row each in `ops[]` (name, handler, the IR
 * op of an elementwise row, input and output counts, the attributes it takes), and their
 * handlers, which build the node's outputs from the IR builders and the torch.nn.functional
 * forms of nn.c (the .nn front end's own).  Everything else is an error that names the node:
 * an op, a domain, an attribute or an attribute value not handled here. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "onnx_import_internal.h"

#define S_ (&I->S)

/* ---- attributes ---- */

static const char *const kind_names[] = {"", "FLOAT", "INT", "STRING", "TENSOR", "", "FLOATS", "INTS", "STRINGS"};

static const OnnxAttr *attr_of(Imp *I, const char *name, OnnxAttrKind kind, bool *bad) {
  const OnnxAttr *a = onnx_node_attr(I->node, name);
  *bad = a && a->kind != kind;
  if (*bad) imp_fail(I, "attribute '%s' is %s, expected %s", name, kind_names[a->kind], kind_names[kind]);
  return *bad ? NULL : a;
}

bool attr_int(Imp *I, const char *name, int64_t def, int64_t *out) {
  bool bad;
  const OnnxAttr *a = attr_of(I, name, ONNX_ATTR_INT, &bad);
  *out = a ? a->i : def;
  return !bad;
}

bool attr_float(Imp *I, const char *name, double def, double *out) {
  bool bad;
  const OnnxAttr *a = attr_of(I, name, ONNX_ATTR_FLOAT, &bad);
  *out = a ? a->f : def;
  return !bad;
}

/* A string attribute, or `def`; NULL after a message. */
const char *attr_string(Imp *I, const char *name, const char *def) {
  bool bad;
  const OnnxAttr *a = attr_of(I, name, ONNX_ATTR_STRING, &bad);
  return bad ? NULL : a ? a->s.data : def;
}

/* An INTS attribute of exactly n values into v, or `def` for each when absent.  For a 1-D op
 * made 2-D (I->one_d) it has n / 2 values, those of the width: the height's are 1 (a kernel
 * of 1, stride 1, dilation 1; output_padding 0 and pads 0 when `def` is 0). */
bool attr_ints_n(Imp *I, const char *name, int n, int64_t def, int64_t *v) {
  bool bad;
  const OnnxAttr *a = attr_of(I, name, ONNX_ATTR_INTS, &bad);
  if (bad) return false;
  int given = I->one_d && n % 2 == 0 ? n / 2 : n;
  if (a && a->n != given) return imp_fail(I, "attribute '%s' has %d values, expected %d", name, a->n, given);
  for (int k = 0; k < n; k++) v[k] = a && given == n ? a->ints[k] : def;
  if (!a || given == n) return true;
  for (int k = 0; k < given; k++) /* (w) -> (h = 1, w); (wb, we) -> (0, wb, 0, we) */
    v[2 * k] = !strcmp(name, "kernel_shape") ? 1 : n == 4 ? 0 : def, v[2 * k + 1] = a->ints[k];
  return true;
}

static bool attr_positive(Imp *I, const char *name, const int64_t *v, int n) {
  for (int k = 0; k < n; k++)
    if (v[k] <= 0) return imp_fail(I, "attribute '%s' has %lld, expected positive values", name, (long long)v[k]);
  return true;
}

/* ---- inputs ---- */

INode *input_f32(Imp *I, int i) {
  INode *t = imp_input(I, i);
  if (t && t->dtype != DT_F32) return imp_fail(I, "input %d '%s' is i64, expected f32", i, I->node->inputs[i]), NULL;
  return t;
}

INode *optional_f32(Imp *I, int i, bool *ok) {
  *ok = true;
  if (!imp_has_input(I, i)) return NULL;
  INode *t = input_f32(I, i);
  *ok = t != NULL;
  return t;
}

/* An input of rank 4: what the 2-D windows of nn.c take (H and W may be symbolic: the output
 * sizes are then derived dims, docs/language.md "Symbolic sizes"). */
static INode *image_input(Imp *I, const char *what) {
  INode *x = input_f32(I, 0);
  if (!x) return NULL;
  if (x->shape.rank != 4)
    return imp_fail(I, "input 0 has rank %d: nnc supports 2-D %s on [N, C, H, W] only", x->shape.rank, what), NULL;
  return x;
}

bool norm_axis(Imp *I, int64_t axis, int rank, const char *name, int *out) {
  if (axis < -rank || axis >= (rank ? rank : 1))
    return imp_fail(I, "attribute '%s' is %lld, expected -%d to %d", name, (long long)axis, rank, rank - 1);
  *out = (int)(axis < 0 ? axis + rank : axis);
  return true;
}

INode *imp_scalar(Imp *I, double v) { return ir_fill(IM, IE, v, &(Shape){0}, I->loc); }

/* ---- padding: explicit pads, or auto_pad ---- */

/* pads[4] (top, left, bottom, right) of a window op over the H, W of x from `pads` or
 * `auto_pad` (SAME_UPPER / SAME_LOWER as the ONNX spec computes them; VALID: none). */
static bool window_pads(Imp *I, const INode *x, const int64_t k[2], const int64_t s[2], const int64_t d[2],
                        int64_t pads[4]) {
  const char *mode = attr_string(I, "auto_pad", "NOTSET");
  if (!mode || !attr_ints_n(I, "pads", 4, 0, pads)) return false;
  for (int a = 0; a < 4; a++)
    if (pads[a] < 0) return imp_fail(I, "attribute 'pads' has %lld, expected values >= 0", (long long)pads[a]);
  if (!strcmp(mode, "NOTSET")) return true;
  if (onnx_node_attr(I->node, "pads")) return imp_fail(I, "attributes 'pads' and 'auto_pad' = '%s' are both given", mode);
  bool upper = !strcmp(mode, "SAME_UPPER");
  if (!strcmp(mode, "VALID")) return true;
  if (!upper && strcmp(mode, "SAME_LOWER"))
    return imp_fail(I, "attribute 'auto_pad' is '%s', expected NOTSET, SAME_UPPER, SAME_LOWER or VALID", mode);
  for (int a = 0; a < 2; a++) {
    if (x->shape.d[2 + a].syms && s[a] != 1) /* the total padding would depend on the size mod s */
      return imp_fail(I, "attribute 'auto_pad' is '%s' with stride %lld on a symbolic size: pin the size (--dim) "
                      "or give pads", mode, (long long)s[a]);
    int64_t in = x->shape.d[2 + a].k, out = (in + s[a] - 1) / s[a];
    int64_t total = x->shape.d[2 + a].syms ? (k[a] - 1) * d[a] : (out - 1) * s[a] + (k[a] - 1) * d[a] + 1 - in;
    if (total < 0) total = 0;
    pads[a] = upper ? total / 2 : total - total / 2;
    pads[a + 2] = total - pads[a];
  }
  return true;
}

/* ---- the ops ---- */


static bool op_unary(Imp *I, const OpRow *row, INode **out) {
  INode *x = input_f32(I, 0);
  return x && (*out = elementwise_node(S_, row->op, &x, NULL, I->loc));
}

static bool op_binary(Imp *I, const OpRow *row, INode **out) {
  int folded = fold_int_elementwise(I, row->op, 2);
  if (folded) return folded > 0;
  INode *x[2] = {input_f32(I, 0), input_f32(I, 1)};
  return x[0] && x[1] && (*out = elementwise_node(S_, row->op, x, NULL, I->loc));
}

/* Max, Min, Sum, Mean of one or more inputs, broadcast: folded pairwise */
static bool op_variadic(Imp *I, const OpRow *row, INode **out) {
  INode *y = input_f32(I, 0);
  for (int i = 1; i < I->node->n_inputs && y; i++) {
    INode *t = input_f32(I, i);
    y = t ? ir_binary(IM, IE, row->op, y, t, I->loc, ID) : NULL;
  }
  if (y && !strcmp(row->name, "Mean") && I->node->n_inputs > 1)
    y = ir_binary(IM, IE, OP_DIV, y, imp_scalar(I, I->node->n_inputs), I->loc, ID);
  return (*out = y) != NULL;
}

/* Selu: torch's selu for its alpha and gamma (ONNX's defaults), else gamma elu(x, alpha) */
static bool op_selu(Imp *I, const OpRow *row, INode **out) {
  double alpha[2] = {0, 0}, gamma;
  INode *x = input_f32(I, 0);
  if (!x || !attr_float(I, "alpha", 1.67326319217681884765625, &alpha[0]) ||
      !attr_float(I, "gamma", 1.05070102214813232421875, &gamma))
    return false;
  if ((float)alpha[0] == 1.67326319217681884765625f && (float)gamma == 1.05070102214813232421875f)
    return (*out = elementwise_node(S_, OP_SELU, &x, NULL, I->loc)) != NULL;
  INode *y = elementwise_node(S_, OP_ELU, &x, alpha, I->loc);
  return y && (*out = ir_binary(IM, IE, OP_MUL, y, imp_scalar(I, (float)gamma), I->loc, ID));
}

/* LeakyRelu(alpha = 0.01), Elu(alpha = 1): the ops.def rows with their attribute */
static bool op_alpha(Imp *I, const OpRow *row, INode **out) {
  double alpha[2] = {0, 0};
  INode *x = input_f32(I, 0);
  if (!x || !attr_float(I, "alpha", op_info[row->op].attrs.def[0], &alpha[0])) return false;
  return (*out = elementwise_node(S_, row->op, &x, alpha, I->loc)) != NULL;
}

/* HardSigmoid: clamp(alpha x + beta, 0, 1); torch's hardsigmoid when alpha = 1/6, beta = 1/2 */
static bool op_hard_sigmoid(Imp *I, const OpRow *row, INode **out) {
  double alpha, beta, bounds[2] = {0, 1};
  INode *x = input_f32(I, 0);
  if (!x || !attr_float(I, "alpha", 0.2, &alpha) || !attr_float(I, "beta", 0.5, &beta)) return false;
  if ((float)alpha == (float)(1.0 / 6) && beta == 0.5)
    return (*out = elementwise_node(S_, OP_HARDSIGMOID, &x, NULL, I->loc)) != NULL;
  INode *y = ir_binary(IM, IE, OP_MUL, x, imp_scalar(I, (float)alpha), I->loc, ID);
  y = y ? ir_binary(IM, IE, OP_ADD, y, imp_scalar(I, (float)beta), I->loc, ID) : NULL;
  return y && (*out = elementwise_node(S_, OP_HARDTANH, &y, bounds, I->loc));
}

static bool op_identity(Imp *I, const OpRow *row, INode **out) {
  if (!strcmp(row->name, "Dropout") && imp_has_input(I, 2)) {
    const OnnxTensor *t = imp_const_input(I, 2);
    if (!t) return false;
    if (t->nbytes && ((const unsigned char *)t->data)[0])
      return imp_fail(I, "input 2 (training_mode) is true: nnc runs models in inference mode");
  }
  return (*out = imp_input(I, 0)) != NULL;
}

static bool op_conv(Imp *I, const OpRow *row, INode **out) {
  bool ok;
  INode *x = image_input(I, "convolutions"), *w = x ? input_f32(I, 1) : NULL, *b = w ? optional_f32(I, 2, &ok) : NULL;
  if (!w || !ok) return false;
  if (w->shape.rank != 4) return imp_fail(I, "input 1 (the weight) has rank %d, expected 4", w->shape.rank);
  int64_t k[2] = {w->shape.d[2].k, w->shape.d[3].k}, given[2], pads[4], group;
  ConvSpec c = {.output_padding = {0, 0}};
  if (!attr_ints_n(I, "kernel_shape", 2, 0, given) || !attr_ints_n(I, "strides", 2, 1, c.stride) ||
      !attr_ints_n(I, "dilations", 2, 1, c.dilation) || !attr_int(I, "group", 1, &group) ||
      !attr_positive(I, "strides", c.stride, 2) || !attr_positive(I, "dilations", c.dilation, 2))
    return false;
  if (onnx_node_attr(I->node, "kernel_shape") && (given[0] != k[0] || given[1] != k[1]))
    return imp_fail(I, "attribute 'kernel_shape' is [%lld, %lld] but the weight's kernel is %lldx%lld",
                    (long long)given[0], (long long)given[1], (long long)k[0], (long long)k[1]);
  if (group <= 0) return imp_fail(I, "attribute 'group' is %lld, expected a positive count", (long long)group);
  if (!window_pads(I, x, k, c.stride, c.dilation, pads)) return false;
  memcpy(c.pad, pads, sizeof pads);
  c.groups = group;
  return (*out = nn_conv2d(S_, x, w, b, &c, I->loc)) != NULL;
}

/* MaxPool and AveragePool: the window, symmetric padding (torch's pooling takes no other) */
static bool pool_spec(Imp *I, const INode *x, PoolSpec *p) {
  int64_t pads[4], ceil, include_pad = 0, order = 0;
  memset(p, 0, sizeof *p);
  if (!onnx_node_attr(I->node, "kernel_shape")) return imp_fail(I, "attribute 'kernel_shape' is missing");
  if (!attr_ints_n(I, "kernel_shape", 2, 0, p->kernel) || !attr_ints_n(I, "strides", 2, 1, p->stride) ||
      !attr_ints_n(I, "dilations", 2, 1, p->dilation) || !attr_int(I, "ceil_mode", 0, &ceil) ||
      !attr_int(I, "count_include_pad", 0, &include_pad) || !attr_int(I, "storage_order", 0, &order) ||
      !attr_positive(I, "kernel_shape", p->kernel, 2) || !attr_positive(I, "strides", p->stride, 2) ||
      !attr_positive(I, "dilations", p->dilation, 2) || !window_pads(I, x, p->kernel, p->stride, p->dilation, pads))
    return false;
  if (order) return imp_fail(I, "attribute 'storage_order' is %lld: only 0 (row major) is supported", (long long)order);
  if (pads[0] != pads[2] || pads[1] != pads[3])
    return imp_fail(I, "pads [%lld, %lld, %lld, %lld] are not symmetric: nnc pools with equal padding on both "
                    "sides only", (long long)pads[0], (long long)pads[1], (long long)pads[2], (long long)pads[3]);
  p->pad[0] = pads[0], p->pad[1] = pads[1];
  p->ceil_mode = ceil != 0;
  p->count_include_pad = include_pad != 0;
  return true;
}

static bool op_pool(Imp *I, const OpRow *row, INode **out) {
  bool is_max = !strcmp(row->name, "MaxPool");
  PoolSpec p;
  INode *x = image_input(I, "pooling");
  if (!x || !pool_spec(I, x, &p)) return false;
  *out = is_max ? nn_max_pool2d(S_, x, &p, I->loc) : nn_avg_pool2d(S_, x, &p, I->loc);
  return *out != NULL;
}

static bool op_global_avg_pool(Imp *I, const OpRow *row, INode **out) {
  INode *x = image_input(I, "pooling");
  return x && (*out = nn_adaptive_avg_pool2d(S_, x, 1, 1, I->loc));
}

static INode *unit_axis(Imp *I, INode *x, int axis, bool remove);

/* A window op (Conv, ConvTranspose, pools) on [N, C, L]: fn on [N, C, 1, L] (and a weight
 * [O, I, K] as [O, I, 1, K]), as the .nn front end's Conv1d; the result loses the unit axis.
 * Other ranks go to fn as they are. */
static bool with_1d(Imp *I, const OpRow *row, INode **out, OpFn fn, int ninputs) {
  INode *x = imp_input(I, 0);
  if (!x) return false;
  if (x->shape.rank != 3) return fn(I, row, out);
  for (int i = 0; i < ninputs; i++) {
    INode *t = i ? imp_input(I, i) : x;
    if (!t) return false;
    if (t->shape.rank != 3) return imp_fail(I, "input %d has rank %d, expected 3 for a 1-D %s", i, t->shape.rank, row->name);
    if (!(I->lifted[i] = unit_axis(I, t, 2, false))) return false;
  }
  I->one_d = true;
  bool ok = fn(I, row, out);
  I->one_d = false, I->lifted[0] = I->lifted[1] = NULL;
  return ok && (out[0] = unit_axis(I, out[0], 2, true));
}

static bool op_conv_any(Imp *I, const OpRow *row, INode **out) { return with_1d(I, row, out, op_conv, 2); }
static bool op_conv_transpose_any(Imp *I, const OpRow *row, INode **out) {
  return with_1d(I, row, out, op_conv_transpose, 2);
}
static bool op_pool_any(Imp *I, const OpRow *row, INode **out) { return with_1d(I, row, out, op_pool, 1); }
static bool op_global_avg_pool_any(Imp *I, const OpRow *row, INode **out) {
  return with_1d(I, row, out, op_global_avg_pool, 1);
}

static bool op_batch_norm(Imp *I, const OpRow *row, INode **out) {
  double eps, momentum;
  int64_t training, spatial;
  INode *in[5];
  for (int i = 0; i < 5; i++)
    if (!(in[i] = input_f32(I, i))) return false;
  if (!attr_float(I, "epsilon", 1e-5, &eps) || !attr_float(I, "momentum", 0.9, &momentum) ||
      !attr_int(I, "training_mode", 0, &training) || !attr_int(I, "spatial", 1, &spatial))
    return false;
  if (training) return imp_fail(I, "attribute 'training_mode' is 1: nnc runs models in inference mode");
  if (!spatial) return imp_fail(I, "attribute 'spatial' is 0: per-activation statistics are not supported");
  return (*out = nn_batch_norm(S_, in[0], in[3], in[4], in[1], in[2], eps, I->loc)) != NULL;
}

/* Gemm: alpha op(A) op(B) + beta C, C broadcast */
static bool op_gemm(Imp *I, const OpRow *row, INode **out) {
  bool ok;
  INode *a = input_f32(I, 0), *b = a ? input_f32(I, 1) : NULL, *c = b ? optional_f32(I, 2, &ok) : NULL;
  double alpha, beta;
  int64_t ta, tb;
  if (!b || !ok || !attr_float(I, "alpha", 1.0, &alpha) || !attr_float(I, "beta", 1.0, &beta) ||
      !attr_int(I, "transA", 0, &ta) || !attr_int(I, "transB", 0, &tb))
    return false;
  if (a->shape.rank != 2 || b->shape.rank != 2)
    return imp_fail(I, "inputs A and B have ranks %d and %d, expected 2", a->shape.rank, b->shape.rank);
  INode *y = ir_matmul(IM, IE, a, b, ta != 0, tb != 0, I->loc, ID);
  if (y && alpha != 1.0) y = ir_binary(IM, IE, OP_MUL, y, imp_scalar(I, alpha), I->loc, ID);
  if (y && c && beta != 1.0) c = ir_binary(IM, IE, OP_MUL, c, imp_scalar(I, beta), I->loc, ID);
  if (y && c) y = ir_binary(IM, IE, OP_ADD, y, c, I->loc, ID);
  return (*out = y) != NULL;
}

/* x with a size-1 axis inserted at `axis` (or removed, when `remove`) */
static INode *unit_axis(Imp *I, INode *x, int axis, bool remove) {
  Shape s = {0};
  for (int k = 0; k < x->shape.rank; k++) {
    if (k == axis && !remove) s.d[s.rank++] = dim_const(1);
    if (k != axis || !remove) s.d[s.rank++] = x->shape.d[k];
  }
  if (!remove && axis == x->shape.rank) s.d[s.rank++] = dim_const(1);
  return ir_reshape(IM, IE, x, &s, I->loc, ID);
}

/* MatMul as numpy.matmul: a 1-D operand is a row (A) or a column (B), removed after */
static bool op_matmul(Imp *I, const OpRow *row, INode **out) {
  INode *a = input_f32(I, 0), *b = a ? input_f32(I, 1) : NULL;
  if (!b) return false;
  bool va = a->shape.rank == 1, vb = b->shape.rank == 1;
  if (va) a = unit_axis(I, a, 0, false);
  if (vb) b = unit_axis(I, b, 1, false);
  INode *y = ir_matmul(IM, IE, a, b, 0, 0, I->loc, ID);
  if (y && vb) y = unit_axis(I, y, y->shape.rank - 1, true);
  if (y && va) y = unit_axis(I, y, y->shape.rank - (vb ? 1 : 2), true);
  return (*out = y) != NULL;
}

static bool op_flatten(Imp *I, const OpRow *row, INode **out) {
  INode *x = imp_input(I, 0);
  int64_t axis;
  if (!x || !attr_int(I, "axis", 1, &axis)) return false;
  int r = x->shape.rank, ax = (int)(axis < 0 ? axis + r : axis);
  if (axis < -r || axis > r) return imp_fail(I, "attribute 'axis' is %lld, expected -%d to %d", (long long)axis, r, r);
  Shape s = {.rank = 2, .d = {dim_const(1), dim_const(1)}};
  for (int k = 0; k < x->shape.rank; k++) s.d[k >= ax] = dim_mul(IM, s.d[k >= ax], x->shape.d[k]);
  return (*out = ir_reshape(IM, IE, x, &s, I->loc, ID)) != NULL;
}

/* Reshape to a shape known at compile time (constant or folded, with symbolic dims): 0 copies the input's dim, -1 takes what is left (a quotient
 * of dims k × symbols, exact) */
/* A folded integer vector reshaped to a vector ([-1] or [n]) or a scalar ([] of one value)
 * stays folded: an exporter's expand(x.shape[0], -1) reshapes its concatenated sizes to
 * [-1] before comparing them with -1.  False when the shape is another. */
static bool reshape_vector(Imp *I, const ShapeVal *shape) {
  ShapeVal v;
  if (!imp_is_int_vector(I, 0) || !imp_int_vector(I, 0, &v)) return false;
  bool to_vector = shape->n == 1 && !shape->d[0].syms && (shape->d[0].k == -1 || shape->d[0].k == v.n);
  if (!to_vector && !(shape->n == 0 && v.n == 1)) return false;
  ShapeVal *r = arena_alloc(I->S.arena, sizeof *r);
  *r = v;
  r->rank = to_vector ? 1 : 0;
  I->out_sv = r;
  return true;
}

static bool op_reshape(Imp *I, const OpRow *row, INode **out) {
  ShapeVal sv;
  int64_t v[MAX_RANK], allowzero;
  int n, infer = -1;
  if (!imp_int_vector(I, 1, &sv)) return false;
  if (reshape_vector(I, &sv)) return true;
  INode *x = imp_input(I, 0);
  if (!x || !attr_int(I, "allowzero", 0, &allowzero)) return false;
  if (sv.rank != 1 || sv.n > MAX_RANK) return imp_fail(I, "input 1 (the shape) has %d values in %d dims, expected at most %d in one", sv.n, sv.rank, MAX_RANK);
  n = sv.n;
  Shape s = {.rank = n};
  Dim known = dim_const(1);
  for (int k = 0; k < n; k++) {
    v[k] = sv.d[k].k;
    if (sv.d[k].syms && v[k] > 0) s.d[k] = sv.d[k]; /* a dim of a Shape */
    else if (v[k] == -1 && infer < 0) infer = k;
    else if (v[k] == 0 && !allowzero && k < x->shape.rank) s.d[k] = x->shape.d[k];
    else if (v[k] >= 0 && !(v[k] == 0 && !allowzero)) s.d[k] = dim_const(v[k]);
    else return imp_fail(I, "input 1 (the shape) has %lld at %d, expected a size, 0 (copy) or one -1", (long long)v[k], k);
    int64_t product;
    if (k != infer && (__builtin_mul_overflow(known.k, s.d[k].k, &product) || product > IR_MAX_STATIC_ELEMENTS))
      return imp_fail(I, "input 1 (the shape) has more than 2^40 elements");
    if (k != infer) known = dim_mul(IM, known, s.d[k]);
  }
  if (infer >= 0) {
    if (!dim_div(IM, shape_numel(IM, &x->shape), known, &s.d[infer]))
      return imp_fail(I, "the -1 of the shape cannot be inferred: the input's elements are not a multiple of the rest");
  }
  return (*out = ir_reshape(IM, IE, x, &s, I->loc, ID)) != NULL;
}

static bool op_transpose(Imp *I, const OpRow *row, INode **out) {
  INode *x = imp_input(I, 0);
  if (!x) return false;
  int r = x->shape.rank, perm[MAX_RANK];
  int64_t p[MAX_RANK];
  for (int k = 0; k < r; k++) p[k] = r - 1 - k;
  if (onnx_node_attr(I->node, "perm") && !attr_ints_n(I, "perm", r, 0, p)) return false;
  for (int k = 0; k < r; k++) {
    if (p[k] < 0 || p[k] >= r) return imp_fail(I, "attribute 'perm' has %lld, expected 0 to %d", (long long)p[k], r - 1);
    perm[k] = (int)p[k];
  }
  return (*out = ir_permute(IM, IE, x, perm, I->loc, ID)) != NULL;
}

static bool op_concat(Imp *I, const OpRow *row, INode **out) {
  int64_t axis;
  int ax = 0;
  if (!onnx_node_attr(I->node, "axis")) return imp_fail(I, "attribute 'axis' is missing");
  if (!attr_int(I, "axis", 0, &axis)) return false;
  if (imp_is_int_vector(I, 0)) return shape_concat(I, (int)axis, out);
  INode *y = imp_input(I, 0);
  if (!y) return false;
  if (!attr_int(I, "axis", 0, &axis) || !norm_axis(I, axis, y->shape.rank, "axis", &ax)) return false;
  for (int i = 1; i < I->node->n_inputs && y; i++) {
    INode *t = imp_input(I, i);
    y = t ? ir_concat(IM, IE, y, t, ax, I->loc, ID) : NULL;
  }
  return (*out = y) != NULL;
}

/* A bound of Clip: an attribute (opset < 11) or an input (opset >= 11), a constant read here
 * (*v) or a scalar tensor computed at run time (*t) */
static bool clip_bound(Imp *I, int input, const char *attr, double def, double *v, INode **t) {
  *t = NULL;
  if (I->opset < 11) return attr_float(I, attr, def, v);
  *v = def;
  if (!imp_has_input(I, input)) return true;
  const ImpValue *known = imp_find(I, I->node->inputs[input]);
  if (known && !known->data) {
    *t = input_f32(I, input);
    if (*t && (*t)->shape.rank != 0)
      return imp_fail(I, "input %d (%s) has rank %d, expected a scalar", input, attr, (*t)->shape.rank);
    return *t != NULL;
  }
  const OnnxTensor *c = imp_const_input(I, input);
  if (!c) return false;
  if (c->dtype != ONNX_F32 || c->numel != 1)
    return imp_fail(I, "input %d (%s) is %s with %lld values, expected one f32", input, attr,
                    onnx_dtype_name(c->dtype), (long long)c->numel);
  *v = *(const float *)c->data;
  return true;
}

/* Clip: hardtanh between constant bounds; maximum / minimum with bounds computed at run time */
static bool op_clip(Imp *I, const OpRow *row, INode **out) {
  double b[2];
  INode *t[2], *x = input_f32(I, 0);
  if (!x || !clip_bound(I, 1, "min", -INFINITY, &b[0], &t[0]) || !clip_bound(I, 2, "max", INFINITY, &b[1], &t[1]))
    return false;
  if (I->opset >= 11 && (onnx_node_attr(I->node, "min") || onnx_node_attr(I->node, "max")))
    return imp_fail(I, "attributes 'min' and 'max' are inputs since opset 11");
  if (!t[0] && !t[1]) return (*out = elementwise_node(S_, OP_HARDTANH, &x, b, I->loc)) != NULL;
  INode *y = x;
  for (int k = 0; k < 2 && y; k++) {
    INode *bound = t[k] ? t[k] : isinf(b[k]) ? NULL : imp_scalar(I, b[k]);
    if (bound) y = ir_binary(IM, IE, k ? OP_MIN : OP_MAX, y, bound, I->loc, ID);
  }
  return (*out = y) != NULL;
}

/* log_softmax along axis, max-shifted as F.log_softmax: (x - max) - log(sum(exp(x - max))) */
static INode *log_softmax_node(Imp *I, INode *x, int axis) {
  uint32_t mask = 1u << axis;
  INode *shifted = ir_binary(IM, IE, OP_SUB, x, ir_reduce(IM, IE, OP_RMAX, x, mask, 1, I->loc, ID), I->loc, ID);
  INode *sum = ir_reduce(IM, IE, OP_SUM, ir_unary(IM, IE, OP_EXP, shifted, I->loc, ID), mask, 1, I->loc, ID);
  return ir_binary(IM, IE, OP_SUB, shifted, ir_unary(IM, IE, OP_LOG, sum, I->loc, ID), I->loc, ID);
}

/* Softmax, and LogSoftmax (the row's op OP_LOG), over `axis`; before opset 13, over all axes
 * from `axis` on (the input seen as 2-D) */
static bool op_softmax(Imp *I, const OpRow *row, INode **out) {
  INode *x = input_f32(I, 0);
  int64_t axis;
  int ax = 0, r = x ? x->shape.rank : 0;
  if (!x || !attr_int(I, "axis", I->opset < 13 ? 1 : -1, &axis) || !norm_axis(I, axis, r, "axis", &ax)) return false;
  if (r == 0) return imp_fail(I, "input 0 is a scalar, expected rank >= 1");
  bool coerced = I->opset < 13 && ax != r - 1;
  Shape s = {.rank = 2, .d = {dim_const(1), dim_const(1)}};
  for (int k = 0; coerced && k < r; k++) s.d[k >= ax] = dim_mul(IM, s.d[k >= ax], x->shape.d[k]);
  INode *in = coerced ? ir_reshape(IM, IE, x, &s, I->loc, ID) : x;
  int along = coerced ? 1 : ax;
  INode *y = row->op == OP_LOG ? log_softmax_node(I, in, along) : softmax_node(S_, in, along, I->loc);
  return (*out = y && coerced ? ir_reshape(IM, IE, y, &x->shape, I->loc, ID) : y) != NULL;
}

/* Pad of the last two axes (nn.c's, torch's F.pad): constant, reflect or edge */
static bool pad_values(Imp *I, int rank, int64_t *pads, double *value) {
  int n = 0;
  *value = 0;
  if (I->opset < 11) {
    bool bad;
    const OnnxAttr *a = attr_of(I, "pads", ONNX_ATTR_INTS, &bad);
    if (!a || a->n > 2 * MAX_RANK) return bad ? false : imp_fail(I, "attribute 'pads' is missing or too long");
    for (n = 0; n < a->n; n++) pads[n] = a->ints[n];
    if (!attr_float(I, "value", 0.0, value)) return false;
  } else {
    const OnnxTensor *t = imp_const_input(I, 1);
    if (!t || !imp_const_ints(I, t, pads, &n, 2 * MAX_RANK, "input 1 (pads)")) return false;
    if (imp_has_input(I, 2)) {
      const OnnxTensor *v = imp_const_input(I, 2);
      if (!v) return false;
      if (v->dtype != ONNX_F32 || v->numel != 1) return imp_fail(I, "input 2 (constant_value) is not one f32");
      *value = *(const float *)v->data;
    }
  }
  if (n != 2 * rank) return imp_fail(I, "%d pads for a tensor of rank %d, expected %d", n, rank, 2 * rank);
  for (int a = 0; a < rank - 2; a++)
    if (pads[a] || pads[rank + a])
      return imp_fail(I, "pads axis %d: nnc pads the last two axes only", a);
  return true;
}

static bool op_pad(Imp *I, const OpRow *row, INode **out) {
  INode *x = input_f32(I, 0);
  const char *mode = x ? attr_string(I, "mode", "constant") : NULL;
  int64_t pads[2 * MAX_RANK];
  double value;
  if (!mode || x->shape.rank < 2 || !pad_values(I, x->shape.rank, pads, &value))
    return mode && x->shape.rank < 2 ? imp_fail(I, "input 0 has rank %d, expected at least 2", x->shape.rank) : false;
  int r = x->shape.rank;
  int64_t p[4] = {pads[r - 1], pads[2 * r - 1], pads[r - 2], pads[2 * r - 2]}; /* torch's order */
  if (!strcmp(mode, "constant")) *out = nn_pad(S_, x, p, 4, value, I->loc);
  else if (!strcmp(mode, "reflect") || !strcmp(mode, "edge"))
    *out = nn_pad_mode(S_, x, p, 4, mode[0] == 'r' ? "reflect" : "replicate", I->loc);
  else return imp_fail(I, "attribute 'mode' is '%s', expected constant, reflect or edge", mode);
  return *out != NULL;
}

static const OpRow ops[] = {
  {"Abs", op_unary, OP_ABS, 1, 1, 1, ""},
  {"Add", op_binary, OP_ADD, 2, 2, 1, ""},
  {"And", op_compare, OP_AND, 2, 2, 1, ""},
  {"ArgMax", op_arg_extreme, 0, 1, 1, 1, "axis keepdims select_last_index "},
  {"ArgMin", op_arg_extreme, 0, 1, 1, 1, "axis keepdims select_last_index "},
  {"AveragePool", op_pool_any, 0, 1, 1, 1, "auto_pad ceil_mode count_include_pad kernel_shape pads strides "},
  {"BatchNormalization", op_batch_norm, 0, 5, 5, 1, "epsilon momentum spatial training_mode "},
  {"Cast", op_cast, 0, 1, 1, 1, "to "},
  {"Ceil", op_unary, OP_CEIL, 1, 1, 1, ""},
  {"Celu", op_alpha, OP_CELU, 1, 1, 1, "alpha "},
  {"Clip", op_clip, 0, 1, 3, 1, "min max "},
  {"Concat", op_concat, 0, 1, 1 << 16, 1, "axis "},
  {"ConstantOfShape", op_constant_of_shape, 0, 1, 1, 1, "value "},
  {"Conv", op_conv_any, 0, 2, 3, 1, "auto_pad dilations group kernel_shape pads strides "},
  {"ConvTranspose", op_conv_transpose_any, 0, 2, 3, 1, "auto_pad dilations group kernel_shape output_padding pads strides "},
  {"Cos", op_unary, OP_COS, 1, 1, 1, ""},
  {"CumSum", op_cumsum, 0, 2, 2, 1, "exclusive reverse "},
  {"DepthToSpace", op_depth_to_space, 0, 1, 1, 1, "blocksize mode "},
  {"Div", op_binary, OP_DIV, 2, 2, 1, ""},
  {"Dropout", op_identity, 0, 1, 3, 1, "ratio seed "},
  {"Einsum", op_einsum, 0, 1, 2, 1, "equation "},
  {"Elu", op_alpha, OP_ELU, 1, 1, 1, "alpha "},
  {"Equal", op_compare, OP_EQ, 2, 2, 1, ""},
  {"Erf", op_unary, OP_ERF, 1, 1, 1, ""},
  {"Exp", op_unary, OP_EXP, 1, 1, 1, ""},
  {"Expand", op_expand, 0, 2, 2, 1, ""},
  {"Flatten", op_flatten, 0, 1, 1, 1, "axis "},
  {"Floor", op_unary, OP_FLOOR, 1, 1, 1, ""},
  {"GRU", op_rnn, 0, 3, 6, 2, "activation_alpha activation_beta activations clip direction hidden_size layout linear_before_reset "},
  {"Gather", op_gather, 0, 2, 2, 1, "axis "},
  {"Gemm", op_gemm, 0, 2, 3, 1, "alpha beta transA transB "},
  {"GlobalAveragePool", op_global_avg_pool_any, 0, 1, 1, 1, ""},
  {"Greater", op_compare, OP_GT, 2, 2, 1, ""},
  {"GreaterOrEqual", op_compare, OP_GE, 2, 2, 1, ""},
  {"HardSigmoid", op_hard_sigmoid, 0, 1, 1, 1, "alpha beta "},
  {"HardSwish", op_unary, OP_HARDSWISH, 1, 1, 1, ""},
  {"Identity", op_identity, 0, 1, 1, 1, ""},
  {"InstanceNormalization", op_instance_norm, 0, 3, 3, 1, "epsilon "},
  {"LSTM", op_rnn, 0, 3, 8, 3, "activation_alpha activation_beta activations clip direction hidden_size input_forget layout "},
  {"LayerNormalization", op_layer_norm, 0, 2, 3, 1, "axis epsilon stash_type "},
  {"LeakyRelu", op_alpha, OP_LEAKY_RELU, 1, 1, 1, "alpha "},
  {"Less", op_compare, OP_LT, 2, 2, 1, ""},
  {"LessOrEqual", op_compare, OP_LE, 2, 2, 1, ""},
  {"Log", op_unary, OP_LOG, 1, 1, 1, ""},
  {"LogSoftmax", op_softmax, OP_LOG, 1, 1, 1, "axis "},
  {"MatMul", op_matmul, 0, 2, 2, 1, ""},
  {"Max", op_variadic, OP_MAX, 1, 1 << 16, 1, ""},
  {"MaxPool", op_pool_any, 0, 1, 1, 1, "auto_pad ceil_mode dilations kernel_shape pads storage_order strides "},
  {"Mean", op_variadic, OP_ADD, 1, 1 << 16, 1, ""},
  {"Min", op_variadic, OP_MIN, 1, 1 << 16, 1, ""},
  {"Mul", op_binary, OP_MUL, 2, 2, 1, ""},
  {"Neg", op_unary, OP_NEG, 1, 1, 1, ""},
  {"Not", op_not, 0, 1, 1, 1, ""},
  {"OneHot", op_one_hot, 0, 3, 3, 1, "axis "},
  {"Or", op_compare, OP_OR, 2, 2, 1, ""},
  {"Pad", op_pad, 0, 1, 3, 1, "mode pads value "},
  {"Pow", op_binary, OP_POW, 2, 2, 1, ""},
  {"RNN", op_rnn, 0, 3, 6, 2, "activation_alpha activation_beta activations clip direction hidden_size layout "},
  {"Range", op_range, 0, 3, 3, 1, ""},
  {"Reciprocal", op_unary, OP_RECIPROCAL, 1, 1, 1, ""},
  {"ReduceMax", op_reduce, 0, 1, 2, 1, "axes keepdims noop_with_empty_axes "},
  {"ReduceMean", op_reduce, 0, 1, 2, 1, "axes keepdims noop_with_empty_axes "},
  {"ReduceMin", op_reduce, 0, 1, 2, 1, "axes keepdims noop_with_empty_axes "},
  {"ReduceSum", op_reduce, 0, 1, 2, 1, "axes keepdims noop_with_empty_axes "},
  {"Relu", op_unary, OP_RELU, 1, 1, 1, ""},
  {"Reshape", op_reshape, 0, 2, 2, 1, "allowzero "},
  {"Resize", op_resize, 0, 1, 4, 1, "antialias coordinate_transformation_mode cubic_coeff_a exclude_outside extrapolation_value keep_aspect_ratio_policy mode nearest_mode "},
  {"RoiAlign", op_roi_align, 0, 3, 3, 1, "coordinate_transformation_mode mode output_height output_width sampling_ratio spatial_scale "},
  {"Round", op_unary, OP_ROUND, 1, 1, 1, ""},
  {"ScatterElements", op_scatter_elements, 0, 3, 3, 1, "axis reduction "},
  {"Selu", op_selu, 0, 1, 1, 1, "alpha gamma "},
  {"Shape", op_shape, 0, 1, 1, 1, "end start "},
  {"Sigmoid", op_unary, OP_SIGMOID, 1, 1, 1, ""},
  {"Sign", op_unary, OP_SIGN, 1, 1, 1, ""},
  {"Sin", op_unary, OP_SIN, 1, 1, 1, ""},
  {"Slice", op_slice, 0, 1, 5, 1, "axes ends starts "},
  {"Softmax", op_softmax, 0, 1, 1, 1, "axis "},
  {"Softsign", op_unary, OP_SOFTSIGN, 1, 1, 1, ""},
  {"SpaceToDepth", op_depth_to_space, 0, 1, 1, 1, "blocksize "},
  {"Split", op_split, 0, 1, 2, OP_MAX_OUT, "axis num_outputs split "},
  {"Sqrt", op_unary, OP_SQRT, 1, 1, 1, ""},
  {"Squeeze", op_squeeze, 0, 1, 2, 1, "axes "},
  {"Sub", op_binary, OP_SUB, 2, 2, 1, ""},
  {"Sum", op_variadic, OP_ADD, 1, 1 << 16, 1, ""},
  {"Tanh", op_unary, OP_TANH, 1, 1, 1, ""},
  {"Tile", op_tile, 0, 2, 2, 1, ""},
  {"TopK", op_topk, 0, 1, 2, 2, "axis k largest sorted "},
  {"Transpose", op_transpose, 0, 1, 1, 1, "perm "},
  {"Trilu", op_trilu, 0, 1, 2, 1, "upper "},
  {"Unsqueeze", op_unsqueeze, 0, 1, 2, 1, "axes "},
  {"Where", op_where, 0, 3, 3, 1, ""},
  {"Xor", op_compare, OP_NE, 2, 2, 1, ""},
};

/* ---- Constant ---- */

/* A Constant's value: `value`, or value_float(s) / value_int(s) as a tensor of the arena */
static bool op_constant(Imp *I, const OnnxNode *n) {
  if (n->n_attrs != 1 || n->n_outputs != 1)
    return imp_fail(I, "expected one attribute (value, value_float(s) or value_int(s)) and one output");
  const OnnxAttr *a = &n->attrs[0];
  if (!strcmp(a->name, "value") && a->kind == ONNX_ATTR_TENSOR) return imp_define(I, n->outputs[0], NULL, a->t);
  OnnxTensor *t = arena_alloc(I->S.arena, sizeof *t);
  bool one = a->kind == ONNX_ATTR_FLOAT || a->kind == ONNX_ATTR_INT;
  bool is_float = a->kind == ONNX_ATTR_FLOAT || a->kind == ONNX_ATTR_FLOATS;
  if ((is_float && strncmp(a->name, "value_float", 11)) || (!is_float && strncmp(a->name, "value_int", 9)) ||
      (a->kind != ONNX_ATTR_FLOAT && a->kind != ONNX_ATTR_INT && a->kind != ONNX_ATTR_FLOATS && a->kind != ONNX_ATTR_INTS))
    return imp_fail(I, "attribute '%s' is not supported (value, value_float(s), value_int(s))", a->name);
  *t = (OnnxTensor){.name = "", .dtype = is_float ? ONNX_F32 : ONNX_I64, .rank = one ? 0 : 1,
                    .dims = {one ? 0 : a->n}, .numel = one ? 1 : a->n};
  t->nbytes = (size_t)t->numel * (is_float ? 4 : 8);
  t->data = one ? (is_float ? (const void *)&a->f : (const void *)&a->i) : is_float ? (const void *)a->floats
                                                                                    : (const void *)a->ints;
  return imp_define(I, n->outputs[0], NULL, t);
}

/* ---- dispatch ---- */

static const OpRow *find_op(const char *name) {
  for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
    if (!strcmp(ops[i].name, name)) return &ops[i];
  return NULL;
}

static bool takes_attr(const OpRow *row, const char *name) {
  size_t n = strlen(name);
  for (const char *p = row->attrs; (p = strstr(p, name)); p += n)
    if ((p == row->attrs || p[-1] == ' ') && p[n] == ' ') return true;
  return false;
}

/* The node's counts and attributes against its row. */
static bool check_node(Imp *I, const OpRow *row, const OnnxNode *n) {
  if (n->n_inputs < row->min_in || n->n_inputs > row->max_in)
    return imp_fail(I, "%d inputs, expected %d to %d", n->n_inputs, row->min_in, row->max_in);
  for (int k = row->max_out; k < n->n_outputs; k++)
    if (*n->outputs[k]) return imp_fail(I, "output %d '%s' is not supported (nnc computes the first %d)", k, n->outputs[k], row->max_out);
  for (int k = 0; k < n->n_attrs; k++)
    if (!takes_attr(row, n->attrs[k].name)) return imp_fail(I, "attribute '%s' is not supported", n->attrs[k].name);
  return true;
}

bool imp_node(Imp *I, const OnnxNode *n) {
  if (*n->domain && strcmp(n->domain, "ai.onnx"))
    return imp_fail(I, "domain '%s' is not supported (only the default domain, ai.onnx)", n->domain);
  if (!strcmp(n->op_type, "Constant")) return op_constant(I, n);
  const OpRow *row = find_op(n->op_type);
  if (!row) return imp_fail(I, "op '%s' is not supported", n->op_type);
  INode *out[OP_MAX_OUT] = {NULL};
  I->out_sv = NULL;
  if (!check_node(I, row, n) || !row->fn(I, row, out)) return false;
  if (I->out_sv) { /* a folded vector (and, from Cast to float, its tensor too) */
    if (n->n_outputs < 1 || !*n->outputs[0]) return true;
    if (!imp_define_vector(I, n->outputs[0], I->out_sv)) return false;
    imp_find(I, n->outputs[0])->t = out[0];
    return true;
  }
  for (int k = 0; k < n->n_outputs && k < row->max_out; k++) {
    if (!*n->outputs[k]) continue; /* an omitted optional output */
    if (!out[k]) return imp_fail(I, "internal error: output %d was not computed", k);
    if (!imp_define(I, n->outputs[k], out[k], NULL)) return false;
  }
  return true;
}
