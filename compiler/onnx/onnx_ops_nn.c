/* onnx_ops_nn.c — the ONNX ops of onnx_ops.c's table that build on reductions and nn.c:
 * ReduceSum / ReduceMean / ReduceMax / ReduceMin, LayerNormalization, InstanceNormalization
 * (nn.c's group norm with a group per channel), DepthToSpace / SpaceToDepth (reshapes and a
 * permutation) and ConvTranspose (nn.c's). */
#include <string.h>

#include "onnx_import_internal.h"

#define S_ (&I->S)

/* ---- reductions ---- */

/* The reduced axes: attribute 'axes' (ReduceSum before opset 13, the others before 18) or
 * constant input 1; none given: all axes, or none with noop_with_empty_axes */
static bool reduce_axes(Imp *I, int rank, uint32_t *mask, bool *noop) {
  int64_t v[MAX_RANK], empty_noop;
  int n;
  if (!imp_axes(I, 1, v, &n) || !attr_int(I, "noop_with_empty_axes", 0, &empty_noop)) return false;
  *noop = !n && empty_noop;
  *mask = n ? 0 : (rank ? (1u << rank) - 1 : 0);
  for (int k = 0; k < n; k++) {
    int ax;
    if (!norm_axis(I, v[k], rank, "axes", &ax)) return false;
    *mask |= 1u << ax;
  }
  return true;
}

static int64_t reduced_count(const INode *x, uint32_t mask, bool *symbolic) {
  int64_t c = 1;
  *symbolic = false;
  for (int k = 0; k < x->shape.rank; k++)
    if (mask & (1u << k)) c *= x->shape.d[k].k, *symbolic |= x->shape.d[k].syms != 0;
  return c;
}

/* Sum, mean (sum / count), max, min (-max(-x)) over the axes */
bool op_reduce(Imp *I, const OpRow *row, INode **out) {
  INode *x = input_f32(I, 0);
  int64_t keep;
  uint32_t mask;
  bool noop, sym;
  if (!x || !attr_int(I, "keepdims", 1, &keep) || !reduce_axes(I, x->shape.rank, &mask, &noop)) return false;
  if (noop || !mask) return (*out = x) != NULL;
  bool is_min = !strcmp(row->name, "ReduceMin"), is_max = is_min || !strcmp(row->name, "ReduceMax");
  if (is_min) x = elementwise_node(S_, OP_NEG, &x, NULL, I->loc);
  INode *y = x ? ir_reduce(IM, IE, is_max ? OP_RMAX : OP_SUM, x, mask, keep != 0, I->loc, ID) : NULL;
  if (y && is_min) y = elementwise_node(S_, OP_NEG, &y, NULL, I->loc);
  if (y && !strcmp(row->name, "ReduceMean")) {
    int64_t c = reduced_count(x, mask, &sym);
    if (sym) return imp_fail(I, "a mean over a symbolic dim is not supported");
    y = ir_binary(IM, IE, OP_DIV, y, imp_scalar(I, (double)c), I->loc, ID);
  }
  return (*out = y) != NULL;
}

/* ---- normalizations ---- */

/* LayerNormalization over the axes from `axis` on, scale and bias of those axes' shape */
bool op_layer_norm(Imp *I, const OpRow *row, INode **out) {
  bool ok;
  INode *x = input_f32(I, 0), *w = x ? input_f32(I, 1) : NULL, *b = w ? optional_f32(I, 2, &ok) : NULL;
  int64_t axis, stash;
  double eps;
  int ax;
  if (!w || !ok || !attr_int(I, "axis", -1, &axis) || !attr_float(I, "epsilon", 1e-5, &eps) ||
      !attr_int(I, "stash_type", 1, &stash) || !norm_axis(I, axis, x->shape.rank, "axis", &ax))
    return false;
  if (stash != 1) return imp_fail(I, "attribute 'stash_type' is %lld: nnc computes the statistics in f32 only", (long long)stash);
  int ns = x->shape.rank - ax;
  Shape want = {.rank = ns};
  for (int k = 0; k < ns; k++) want.d[k] = x->shape.d[ax + k];
  if (!shape_eq(&w->shape, &want) || (b && !shape_eq(&b->shape, &want)))
    return imp_fail(I, "the scale and bias must have the shape of the normalized axes (nnc does not broadcast them)");
  return (*out = nn_layer_norm(S_, x, ns, w, b, eps, I->loc)) != NULL;
}

/* InstanceNormalization: per sample and channel over the spatial axes, a group per channel */
bool op_instance_norm(Imp *I, const OpRow *row, INode **out) {
  INode *x = input_f32(I, 0), *w = x ? input_f32(I, 1) : NULL, *b = w ? input_f32(I, 2) : NULL;
  double eps;
  if (!b || !attr_float(I, "epsilon", 1e-5, &eps)) return false;
  if (x->shape.rank < 3 || x->shape.d[1].syms)
    return imp_fail(I, "input 0 must be [N, C, ...] with a static C");
  return (*out = nn_group_norm(S_, x, x->shape.d[1].k, w, b, eps, I->loc)) != NULL;
}

/* ---- DepthToSpace, SpaceToDepth ---- */

static INode *reshape_to(Imp *I, INode *x, int rank, const Dim *d) {
  Shape s = {.rank = rank};
  memcpy(s.d, d, rank * sizeof *d);
  return x ? ir_reshape(IM, IE, x, &s, I->loc, ID) : NULL;
}

/* DepthToSpace (DCR: [N, b, b, C', H, W] permuted 0 3 4 1 5 2; CRD: [N, C', b, b, H, W]
 * permuted 0 1 4 2 5 3) and SpaceToDepth ([N, C, H', b, W', b] permuted 0 3 5 1 2 4) */
bool op_depth_to_space(Imp *I, const OpRow *row, INode **out) {
  bool d2s = !strcmp(row->name, "DepthToSpace");
  INode *x = input_f32(I, 0);
  int64_t b;
  const char *mode = x && attr_int(I, "blocksize", 0, &b) ? attr_string(I, "mode", "DCR") : NULL;
  if (!mode) return false;
  if (!onnx_node_attr(I->node, "blocksize") || b <= 0) return imp_fail(I, "attribute 'blocksize' is missing or not positive");
  if (x->shape.rank != 4 || x->shape.d[1].syms || x->shape.d[2].syms || x->shape.d[3].syms)
    return imp_fail(I, "input 0 must be [N, C, H, W] with static C, H, W");
  bool crd = !strcmp(mode, "CRD");
  if (d2s && !crd && strcmp(mode, "DCR")) return imp_fail(I, "attribute 'mode' is '%s', expected DCR or CRD", mode);
  if (!d2s && onnx_node_attr(I->node, "mode")) return imp_fail(I, "attribute 'mode' is not supported");
  if (b > 65536) return imp_fail(I, "attribute 'blocksize' is %lld, expected at most 65536", (long long)b);
  Dim n = x->shape.d[0];
  int64_t c = x->shape.d[1].k, h = x->shape.d[2].k, w = x->shape.d[3].k;
  if (d2s ? c % (b * b) : h % b || w % b)
    return imp_fail(I, "the %s is not a multiple of the blocksize %lld", d2s ? "channel count" : "height or width", (long long)b);
  INode *y;
  if (d2s) {
    int64_t cc = c / (b * b);
    Dim split[6] = {n, dim_const(crd ? cc : b), dim_const(b), dim_const(crd ? b : cc), dim_const(h), dim_const(w)};
    int perm_dcr[6] = {0, 3, 4, 1, 5, 2}, perm_crd[6] = {0, 1, 4, 2, 5, 3};
    y = reshape_to(I, x, 6, split);
    y = y ? ir_permute(IM, IE, y, crd ? perm_crd : perm_dcr, I->loc, ID) : NULL;
    Dim merged[4] = {n, dim_const(cc), dim_const(h * b), dim_const(w * b)};
    return (*out = reshape_to(I, y, 4, merged)) != NULL;
  }
  Dim split[6] = {n, dim_const(c), dim_const(h / b), dim_const(b), dim_const(w / b), dim_const(b)};
  int perm[6] = {0, 3, 5, 1, 2, 4};
  y = reshape_to(I, x, 6, split);
  y = y ? ir_permute(IM, IE, y, perm, I->loc, ID) : NULL;
  Dim merged[4] = {n, dim_const(c * b * b), dim_const(h / b), dim_const(w / b)};
  return (*out = reshape_to(I, y, 4, merged)) != NULL;
}

/* ---- ConvTranspose ---- */

bool op_conv_transpose(Imp *I, const OpRow *row, INode **out) {
  bool ok;
  INode *x = input_f32(I, 0), *w = x ? input_f32(I, 1) : NULL, *b = w ? optional_f32(I, 2, &ok) : NULL;
  if (!w || !ok) return false;
  if (x->shape.rank != 4 || x->shape.d[2].syms || x->shape.d[3].syms || w->shape.rank != 4)
    return imp_fail(I, "nnc supports 2-D transposed convolutions on [N, C, H, W] with static H, W only");
  int64_t k[2] = {w->shape.d[2].k, w->shape.d[3].k}, given[2], group;
  ConvSpec c = {0};
  const char *mode = attr_string(I, "auto_pad", "NOTSET");
  if (!mode || !attr_ints_n(I, "kernel_shape", 2, 0, given) || !attr_ints_n(I, "strides", 2, 1, c.stride) ||
      !attr_ints_n(I, "dilations", 2, 1, c.dilation) || !attr_int(I, "group", 1, &group) ||
      !attr_ints_n(I, "pads", 4, 0, c.pad) || !attr_ints_n(I, "output_padding", 2, 0, c.output_padding))
    return false;
  if (onnx_node_attr(I->node, "kernel_shape") && (given[0] != k[0] || given[1] != k[1]))
    return imp_fail(I, "attribute 'kernel_shape' does not match the weight's kernel");
  if (strcmp(mode, "NOTSET") && strcmp(mode, "VALID"))
    return imp_fail(I, "attribute 'auto_pad' is '%s': nnc supports NOTSET and VALID", mode);
  if (group <= 0) return imp_fail(I, "attribute 'group' is %lld, expected a positive count", (long long)group);
  for (int a = 0; a < 2; a++)
    if (c.stride[a] <= 0 || c.dilation[a] <= 0 || c.pad[a] < 0 || c.pad[a + 2] < 0 || c.output_padding[a] < 0)
      return imp_fail(I, "strides and dilations must be positive, pads and output_padding >= 0");
  c.groups = group;
  return (*out = nn_conv_transpose2d(S_, x, w, b, &c, I->loc)) != NULL;
}
