/* onnx_ops_nn.c — the ONNX ops of onnx_ops.c's table that build on reductions and nn.c:
 * ReduceSum / ReduceMean / ReduceMax / ReduceMin, LayerNormalization, InstanceNormalization
 * (nn.c's group norm with a group per channel), DepthToSpace / SpaceToDepth (reshapes and a
 * permutation), ConvTranspose and Resize (nn.c's, in the forms torch exports). */
#include <math.h>
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
  if (x->shape.rank != 4 || w->shape.rank != 4)
    return imp_fail(I, "nnc supports 2-D transposed convolutions on [N, C, H, W] only");
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

/* ---- Resize ---- */

/* An input of Resize that an exporter may give as "" or as an empty tensor: absent */
static bool resize_input_given(Imp *I, int i) {
  if (!imp_has_input(I, i)) return false;
  const ImpValue *v = imp_find(I, I->node->inputs[i]);
  return !(v && v->data && v->data->numel == 0);
}

/* The output H, W from sizes (constant or folded, symbolic ones too; N and C unchanged) or the
 * scale factors (out[] then 0) */
static bool resize_target(Imp *I, const INode *x, bool align, Dim out[2], double scale[2]) {
  int si = 2;
  bool has_scales = resize_input_given(I, si), has_sizes = resize_input_given(I, 3);
  out[0] = out[1] = dim_const(0), scale[0] = scale[1] = 0;
  if (has_scales == has_sizes) return imp_fail(I, "expected exactly one of scales (input %d) and sizes (input 3)", si);
  if (has_sizes) {
    ShapeVal s;
    if (!imp_int_vector(I, 3, &s)) return false;
    if (s.rank != 1 || s.n != 4 || !dim_eq(s.d[0], x->shape.d[0]) || !dim_eq(s.d[1], x->shape.d[1]) ||
        s.d[2].k <= 0 || s.d[3].k <= 0)
      return imp_fail(I, "sizes must be 4 values, N and C those of the input, H and W positive");
    out[0] = s.d[2], out[1] = s.d[3];
    return true;
  }
  const OnnxTensor *t = imp_const_input(I, si);
  if (!t) return false;
  const float *f = t->data;
  if (t->dtype != ONNX_F32 || t->numel != 4 || f[0] != 1 || f[1] != 1 || !(f[2] > 0) || !(f[3] > 0))
    return imp_fail(I, "scales must be 4 f32 values, 1 for N and C and positive for H and W");
  scale[0] = f[2], scale[1] = f[3];
  for (int a = 0; a < 2; a++) /* ONNX's align_corners takes in x scale unrounded, torch the output length */
    if (align && (x->shape.d[2 + a].syms ? scale[a] != floor(scale[a])
                                         : x->shape.d[2 + a].k * scale[a] != floor(x->shape.d[2 + a].k * scale[a])))
      return imp_fail(I, "align_corners with a scale that does not give a whole output length is not supported");
  return true;
}

/* ONNX's cubic kernel (cubic_coeff_a = A) at distance d */
static double cubic_weight(double d, double A) {
  d = fabs(d);
  return d <= 1 ? ((A + 2) * d - (A + 3)) * d * d + 1 : d < 2 ? ((A * d - 5 * A) * d + 8 * A) * d - 4 * A : 0;
}

/* The input coordinate of output index o along an axis of `in` -> `out` at scale s
 * (align_corners: ONNX's reference divides by in x s - 1, unrounded) */
static double source_coord(const char *ctm, int64_t o, int64_t in, int64_t out, double s) {
  double len = (double)in * s;
  if (!strcmp(ctm, "align_corners")) return len == 1 ? 0 : (double)o * (double)(in - 1) / (len - 1);
  if (!strcmp(ctm, "asymmetric")) return o / s;
  if (!strcmp(ctm, "pytorch_half_pixel") && out == 1) return 0;
  return (o + 0.5) / s - 0.5; /* half_pixel, pytorch_half_pixel */
}

/* The [out, in] matrix of cubic interpolation along one axis: 4 taps around each source
 * coordinate, indices outside clamped to the edge (ONNX's reference pads with edge values) or,
 * with exclude_outside, dropped and the rest renormalized */
static INode *cubic_matrix(Imp *I, const char *ctm, int64_t in, int64_t out, double s, double A, bool exclude) {
  float *m = arena_alloc(I->S.arena, (size_t)(out * in) * sizeof *m);
  for (int64_t o = 0; o < out; o++) {
    double x = source_coord(ctm, o, in, out, s), x0 = floor(x), w[4], total = 0;
    for (int j = 0; j < 4; j++) {
      int64_t idx = (int64_t)x0 - 1 + j;
      w[j] = exclude && (idx < 0 || idx >= in) ? 0 : cubic_weight(x - (double)idx, A);
      total += w[j];
    }
    for (int j = 0; j < 4; j++) {
      int64_t idx = (int64_t)x0 - 1 + j;
      idx = idx < 0 ? 0 : idx >= in ? in - 1 : idx;
      m[o * in + idx] += (float)(exclude && total != 0 ? w[j] / total : w[j]);
    }
  }
  Shape sh = {.rank = 2, .d = {dim_const(out), dim_const(in)}};
  return ir_const_data(IM, IE, m, &sh, I->loc);
}

/* Cubic Resize of H and W: A_h x A_w^T with the constant interpolation matrices (at most
 * RESIZE_MAX_SIDE on a side, so that they stay small) */
enum { RESIZE_MAX_SIDE = 4096 };
static bool resize_cubic(Imp *I, INode *x, const char *ctm, const int64_t size[2], const double scale[2], bool exclude,
                         INode **out) {
  double A, s[2];
  int64_t o[2];
  if (!attr_float(I, "cubic_coeff_a", -0.75, &A)) return false;
  if (strcmp(ctm, "half_pixel") && strcmp(ctm, "pytorch_half_pixel") && strcmp(ctm, "align_corners") && strcmp(ctm, "asymmetric"))
    return imp_fail(I, "mode 'cubic' with coordinate_transformation_mode '%s' is not supported (half_pixel, "
                    "pytorch_half_pixel, align_corners, asymmetric)", ctm);
  for (int a = 0; a < 2; a++) {
    int64_t in = x->shape.d[2 + a].k;
    o[a] = size[a] ? size[a] : (int64_t)floor((double)in * scale[a]);
    s[a] = size[a] ? (double)size[a] / (double)in : scale[a];
    if (o[a] < 1 || o[a] > RESIZE_MAX_SIDE || in > RESIZE_MAX_SIDE)
      return imp_fail(I, "cubic resize from %lld to %lld: nnc takes sides of 1 to %d", (long long)in, (long long)o[a],
                      RESIZE_MAX_SIDE);
  }
  INode *ah = cubic_matrix(I, ctm, x->shape.d[2].k, o[0], s[0], A, exclude);
  INode *aw = cubic_matrix(I, ctm, x->shape.d[3].k, o[1], s[1], A, exclude);
  INode *y = ir_matmul(IM, IE, x, aw, 0, 1, I->loc, ID); /* [N, C, H, OW] */
  return (*out = ir_matmul(IM, IE, ah, y, 0, 0, I->loc, ID)) != NULL;
}

/* Resize of H, W as F.interpolate: nearest (asymmetric, floor) or bilinear (half_pixel, or
 * align_corners); cubic as two products with interpolation matrices; other modes and
 * coordinate transformations are errors */
bool op_resize(Imp *I, const OpRow *row, INode **out) {
  INode *x = input_f32(I, 0);
  const char *mode = x ? attr_string(I, "mode", "nearest") : NULL;
  const char *ctm = mode ? attr_string(I, "coordinate_transformation_mode", "half_pixel") : NULL;
  const char *nearest = ctm ? attr_string(I, "nearest_mode", "round_prefer_floor") : NULL;
  const char *policy = nearest ? attr_string(I, "keep_aspect_ratio_policy", "stretch") : NULL;
  int64_t exclude, antialias;
  Dim size[2];
  double scale[2];
  if (!policy || !attr_int(I, "exclude_outside", 0, &exclude) || !attr_int(I, "antialias", 0, &antialias)) return false;
  if (I->opset < 11) return imp_fail(I, "Resize before opset 11 is not supported (export at opset 11 or later)");
  if (x->shape.rank != 4) return imp_fail(I, "nnc resizes [N, C, H, W] only");
  bool cubic = !strcmp(mode, "cubic");
  if (cubic && (x->shape.d[2].syms || x->shape.d[3].syms))
    return imp_fail(I, "cubic resizing of a symbolic height or width is not supported (pin it with -D)");
  if ((exclude && !cubic) || antialias || strcmp(policy, "stretch"))
    return imp_fail(I, "exclude_outside (but with cubic), antialias and keep_aspect_ratio_policy other than 0, 0, "
                    "stretch are not supported");
  bool is_nearest = !strcmp(mode, "nearest"), align = !strcmp(ctm, "align_corners");
  if (!resize_target(I, x, align && !cubic, size, scale)) return false;
  if (cubic) {
    if (size[0].syms || size[1].syms) return imp_fail(I, "cubic resizing to a symbolic size is not supported");
    return resize_cubic(I, x, ctm, (int64_t[]){size[0].k, size[1].k}, scale, exclude != 0, out);
  }
  bool half = !strcmp(ctm, "half_pixel") || !strcmp(ctm, "pytorch_half_pixel");
  if (is_nearest && !strcmp(ctm, "asymmetric") && !strcmp(nearest, "floor"))
    return (*out = nn_interpolate(S_, x, size[0], size[1], scale[0], scale[1], "nearest", false, I->loc)) != NULL;
  if (!strcmp(mode, "linear") && (half || align)) {
    INode *y = nn_interpolate(S_, x, size[0], size[1], scale[0], scale[1], "bilinear", align, I->loc);
    /* ONNX reads position 0 of a length-1 output, torch's bilinear half a pixel in: a length
     * known only at run time could be either */
    if (y && ctm[0] == 'p' && (y->shape.d[2].syms || y->shape.d[3].syms))
      return imp_fail(I, "pytorch_half_pixel to a symbolic size is not supported (its length-1 case differs from "
                      "torch's); pin the size with -D");
    if (y && ctm[0] == 'p' && (dim_is(y->shape.d[2], 1) || dim_is(y->shape.d[3], 1)))
      return imp_fail(I, "pytorch_half_pixel with an output of length 1 is not supported");
    return (*out = y) != NULL;
  }
  return imp_fail(I, "mode '%s' with coordinate_transformation_mode '%s' and nearest_mode '%s' is not supported "
                  "(nearest: asymmetric, floor; linear: half_pixel, pytorch_half_pixel, align_corners)", mode, ctm, nearest);
}

/* ---- RoiAlign ---- */

/* RoiAlign (average mode) as roi_align: the boxes [K, 5] are the batch indices beside the rois
 * [K, 4]; coordinate_transformation_mode half_pixel (the default since opset 16) is torch's
 * aligned=True, output_half_pixel aligned=False; a sampling_ratio of 0 is adaptive */
bool op_roi_align(Imp *I, const OpRow *row, INode **out) {
  INode *x = input_f32(I, 0), *rois = x ? input_f32(I, 1) : NULL, *batch = rois ? imp_input(I, 2) : NULL;
  const char *mode = batch ? attr_string(I, "mode", "avg") : NULL;
  const char *ctm = mode ? attr_string(I, "coordinate_transformation_mode", I->opset >= 16 ? "half_pixel" : "output_half_pixel") : NULL;
  int64_t oh, ow, ratio;
  double scale;
  if (!ctm || !attr_int(I, "output_height", 1, &oh) || !attr_int(I, "output_width", 1, &ow) ||
      !attr_int(I, "sampling_ratio", 0, &ratio) || !attr_float(I, "spatial_scale", 1.0, &scale))
    return false;
  if (strcmp(mode, "avg")) return imp_fail(I, "attribute 'mode' is '%s': nnc takes avg only", mode);
  bool aligned = !strcmp(ctm, "half_pixel");
  if (!aligned && strcmp(ctm, "output_half_pixel"))
    return imp_fail(I, "attribute 'coordinate_transformation_mode' is '%s', expected half_pixel or output_half_pixel", ctm);
  if (x->shape.rank != 4 || rois->shape.rank != 2 || !dim_is(rois->shape.d[1], 4) || batch->shape.rank != 1 ||
      !dim_eq(batch->shape.d[0], rois->shape.d[0]))
    return imp_fail(I, "expected X [N, C, H, W], rois [K, 4] and batch_indices [K]");
  Shape column = {.rank = 2, .d = {rois->shape.d[0], dim_const(1)}};
  INode *index = ir_reshape(IM, IE, ir_convert(IM, IE, batch, DT_F32, I->loc, ID), &column, I->loc, ID);
  INode *boxes = index ? ir_concat(IM, IE, index, rois, 1, I->loc, ID) : NULL;
  INode *y = boxes ? ir_roi_align(IM, IE, x, boxes, oh, ow, scale, ratio, aligned, I->loc, ID) : NULL;
  if (y) y->i[2] = model_check_site(IM, I->loc, "RoiAlign: input 2 (batch_indices)");
  return (*out = y) != NULL;
}
