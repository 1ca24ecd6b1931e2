/* nn.c — convolution, pooling, normalization, resampling and padding in terms of primitive
 * ops, with PyTorch's semantics (torch.nn.functional; output sizes and padding rules from
 * ATen).  A convolution is a sliding window (im2col as an index transform) and a matmul, a
 * product per channel group (a depthwise one too), so it reaches the direct-convolution kernel
 * or OpenBLAS with its bias and activation as the GEMM's epilogue; pooling is a window and a
 * reduction; norms are two reductions (mean, then the mean of squared deviations) and one
 * elementwise kernel. */
#include <math.h>
#include <string.h>
#include "nn.h"

#define M (S->m)
#define E (S->e)
#define D (S->d)

/* Sizes computed from a program's parameters (kernel, stride, padding, dilation, scale) in 128
 * bits, so that absurd ones make an error, not an int64 overflow. */
typedef __int128 Wide;

/* The most elements of a constant this file builds at compile time (avg_pool2d's divisors,
 * adaptive_avg_pool2d's averaging matrices): 256 MiB of floats. */
#define NN_MAX_CONST_ELEMENTS ((int64_t)1 << 26)

static INode *reshape_to(Sema *S, INode *x, int rank, const Dim *dims, SrcLoc loc) {
  Shape s = {.rank = rank};
  memcpy(s.d, dims, rank * sizeof *dims);
  return ir_reshape(M, E, x, &s, loc, D);
}

static bool need_rank(Sema *S, INode *x, int rank, const char *what, SrcLoc loc) {
  if (x->shape.rank == rank) return true;
  char b[128];
  return diag_error(D, loc, "%s expects a tensor of rank %d, got %s", what, rank,
                    shape_str(M, x->dtype, &x->shape, b, sizeof b));
}

static bool static_dims(Sema *S, INode *x, int from, const char *what, SrcLoc loc) {
  for (int i = from; i < x->shape.rank; i++)
    if (x->shape.d[i].syms)
      return diag_error(D, loc, "%s: dimension %d must be static", what, i);
  return true;
}

static bool fits_int64(Wide v) { return v >= INT64_MIN && v <= INT64_MAX; }

/* b [C] -> [C, 1, ..., 1] to broadcast over the `trailing` axes after the channel axis */
static INode *per_channel(Sema *S, INode *b, int trailing, SrcLoc loc) {
  if (!b || trailing == 0) return b;
  Dim d[MAX_RANK] = {b->shape.d[0]};
  for (int i = 1; i <= trailing; i++) d[i] = dim_const(1);
  return reshape_to(S, b, trailing + 1, d, loc);
}

bool pair_arg(Sema *S, const Value *v, SrcLoc loc, const char *name, int64_t out[2]) {
  if (v->k == V_LIST || v->k == V_TUPLE) {
    if (v->len != 2) return diag_error(D, loc, "%s takes one integer or a list of two", name);
    return to_int(S, &v->items[0], loc, &out[0]) && to_int(S, &v->items[1], loc, &out[1]);
  }
  if (!to_int(S, v, loc, &out[0])) return false;
  out[1] = out[0];
  return true;
}

/* ---- convolution ---- */

static bool conv_check(Sema *S, INode *x, INode *w, INode *b, int64_t cin_w, int64_t cout, const ConvSpec *c,
                       const char *what, SrcLoc loc) {
  /* H and W may be symbolic: the output sizes are then derived ones (symdim.c) */
  if (!need_rank(S, x, 4, what, loc) || !need_rank(S, w, 4, what, loc) || !static_dims(S, w, 0, what, loc))
    return false;
  if (x->shape.d[1].syms) return diag_error(D, loc, "%s: the channel count (dimension 1) must be static", what);
  int64_t C = x->shape.d[1].k, g = c->groups;
  if (g <= 0 || C % g || cout % g)
    return diag_error(D, loc, "%s: groups=%lld must divide the %lld input and %lld output channels", what,
                      (long long)g, (long long)C, (long long)cout);
  if (cin_w != C / g)
    return diag_error(D, loc, "%s: the weight expects %lld input channels per group, the input has %lld", what,
                      (long long)cin_w, (long long)(C / g));
  if (b && (b->shape.rank != 1 || !dim_is(b->shape.d[0], cout)))
    return diag_error(D, loc, "%s: bias must be f32[%lld]", what, (long long)cout);
  return true;
}

/* [N, C, OH, OW, KH, KW] windows -> [N, g, C/g * KH * KW, OH * OW] columns (im2col) */
static INode *columns(Sema *S, INode *win, int64_t g, SrcLoc loc) {
  const Shape *s = &win->shape;
  int64_t cg = s->d[1].k / g, kh = s->d[4].k, kw = s->d[5].k;
  Dim oh = s->d[2], ow = s->d[3];
  Dim split[7] = {s->d[0], dim_const(g), dim_const(cg), oh, ow, dim_const(kh), dim_const(kw)};
  INode *t = reshape_to(S, win, 7, split, loc);
  int perm[7] = {0, 1, 2, 5, 6, 3, 4};
  t = ir_permute(M, E, t, perm, loc, D);
  Dim cols[4] = {s->d[0], dim_const(g), dim_const(cg * kh * kw), dim_mul(M, oh, ow)};
  return reshape_to(S, t, 4, cols, loc);
}

/* [g, og, K] weights @ [N, g, K, OH*OW] columns -> [N, g*og, OH, OW] + bias */
static INode *conv_gemm(Sema *S, INode *wmat, INode *cols, INode *b, int64_t cout, Dim oh, Dim ow, Dim n,
                        SrcLoc loc) {
  INode *y = ir_matmul(M, E, wmat, cols, 0, 0, loc, D);
  Dim out[4] = {n, dim_const(cout), oh, ow};
  y = y ? reshape_to(S, y, 4, out, loc) : NULL;
  if (y && b) y = ir_binary(M, E, OP_ADD, y, per_channel(S, b, 2, loc), loc, D);
  return y;
}

INode *nn_conv2d(Sema *S, INode *x, INode *w, INode *b, const ConvSpec *c, SrcLoc loc) {
  if (!x || !w) return NULL;
  int64_t cout = w->shape.rank == 4 ? w->shape.d[0].k : 0, kh = 0, kw = 0;
  if (!conv_check(S, x, w, b, w->shape.rank == 4 ? w->shape.d[1].k : 0, cout, c, "conv2d", loc)) return NULL;
  kh = w->shape.d[2].k;
  kw = w->shape.d[3].k;
  int64_t C = x->shape.d[1].k, g = c->groups;
  Dim n = x->shape.d[0];
  bool pointwise = kh == 1 && kw == 1 && c->stride[0] == 1 && c->stride[1] == 1 && !c->pad[0] && !c->pad[1] &&
                   !c->pad[2] && !c->pad[3];
  Dim h = x->shape.d[2], w_ = x->shape.d[3];
  if (pointwise && g == 1 && dim_is(h, 1) && dim_is(w_, 1)) { /* on 1x1 maps, a Linear layer */
    Dim xs[2] = {n, dim_const(C)}, ys[4] = {n, dim_const(cout), dim_const(1), dim_const(1)};
    Dim ws[2] = {dim_const(cout), dim_const(C)}, bs[2] = {dim_const(1), dim_const(cout)};
    /* x W^T with the images as rows: the weights transposed once (pass_weight_layout.c), not
     * one matrix-vector product per image (squeeze-excitation blocks) */
    INode *y = ir_matmul(M, E, reshape_to(S, x, 2, xs, loc), reshape_to(S, w, 2, ws, loc), 0, 1, loc, D);
    if (y && b) y = ir_binary(M, E, OP_ADD, y, reshape_to(S, b, 2, bs, loc), loc, D);
    return y ? reshape_to(S, y, 4, ys, loc) : NULL;
  }
  if (pointwise && g == 1) { /* a 1x1 convolution is a plain GEMM over the pixels */
    Dim xs[3] = {n, dim_const(C), dim_mul(M, h, w_)}, ws[2] = {dim_const(cout), dim_const(C)};
    return conv_gemm(S, reshape_to(S, w, 2, ws, loc), reshape_to(S, x, 3, xs, loc), b, cout, h, w_, n, loc);
  }
  WindowSpec ws = {.kernel = {kh, kw}, .stride = {c->stride[0], c->stride[1]}, .dilation = {c->dilation[0], c->dilation[1]},
                   .input_dilation = {1, 1}, .pad = {c->pad[0], c->pad[1], c->pad[2], c->pad[3]},
                   .what = "conv2d", .params = "padding, kernel size or dilation"};
  INode *win = ir_window(M, E, x, &ws, loc, D);
  if (!win) return NULL;
  Dim oh = win->shape.d[2], ow = win->shape.d[3];
  Dim wm[3] = {dim_const(g), dim_const(cout / g), dim_const(C / g * kh * kw)};
  return conv_gemm(S, reshape_to(S, w, 3, wm, loc), columns(S, win, g, loc), b, cout, oh, ow, n, loc);
}

/* The transposed convolution as PyTorch computes it: one GEMM per image and group, W^T @ x,
 * gives a column per input pixel and kernel tap ([Cout*KH*KW, H*W], no zeros), and col2im
 * adds each into its output pixel; then the bias. */
INode *nn_conv_transpose2d(Sema *S, INode *x, INode *w, INode *b, const ConvSpec *c, SrcLoc loc) {
  if (!x || !w) return NULL;
  int64_t g = c->groups, og = w->shape.rank == 4 ? w->shape.d[1].k : 0, cout = og * g;
  if (!conv_check(S, x, w, b, w->shape.rank == 4 ? w->shape.d[0].k / (g > 0 ? g : 1) : 0, cout, c,
                  "conv_transpose2d", loc))
    return NULL;
  int64_t C = x->shape.d[1].k, kh = w->shape.d[2].k, kw = w->shape.d[3].k;
  Dim H = x->shape.d[2], W = x->shape.d[3];
  if (w->shape.d[0].k != C)
    return diag_error(D, loc, "conv_transpose2d: the weight has %lld input channels, the input %lld",
                      (long long)w->shape.d[0].k, (long long)C), NULL;
  int64_t k[2] = {kh, kw}, pad[2] = {c->pad[0], c->pad[1]};
  Dim in[2] = {H, W}, out[2];
  for (int a = 0; a < 2; a++) {
    if (c->output_padding[a] < 0 || (c->output_padding[a] >= c->stride[a] && c->output_padding[a] >= c->dilation[a]))
      return diag_error(D, loc, "conv_transpose2d: output_padding must be smaller than stride or dilation"), NULL;
    /* (in - 1) s - 2p + d (k - 1) + output_padding + 1 */
    Wide add = -(Wide)c->stride[a] - (Wide)2 * c->pad[a] + (Wide)c->dilation[a] * ((Wide)k[a] - 1) +
               c->output_padding[a] + 1;
    if (in[a].syms) { /* exactly s * in + add: a multiple of in when add is 0 (fcn's upsampling) */
      bool ok;
      if (add > IR_MAX_STATIC_ELEMENTS || add < -IR_MAX_STATIC_ELEMENTS || c->stride[a] > IR_MAX_STATIC_ELEMENTS)
        return diag_error(D, loc, "conv_transpose2d: the output would be too large"), NULL;
      out[a] = dim_derive(M, in[a], c->stride[a], (int64_t)add, 1,
                          a ? "conv_transpose2d: the output width" : "conv_transpose2d: the output height", loc, D, &ok);
      if (!ok) return NULL;
      continue;
    }
    Wide o = (Wide)in[a].k * c->stride[a] + add;
    if (o <= 0) return diag_error(D, loc, "conv_transpose2d: the output would be empty"), NULL;
    if (o > IR_MAX_STATIC_ELEMENTS)
      return diag_error(D, loc, "conv_transpose2d: the output would be too large"), NULL;
    out[a] = dim_const((int64_t)o);
  }
  int64_t cg = C / g;
  Dim wg[3] = {dim_const(g), dim_const(cg), dim_const(og * kh * kw)};
  Dim xg[4] = {x->shape.d[0], dim_const(g), dim_const(cg), dim_mul(M, H, W)};
  INode *cols = ir_matmul(M, E, reshape_to(S, w, 3, wg, loc), reshape_to(S, x, 4, xg, loc), 1, 0, loc, D);
  if (!cols) return NULL;
  Dim cd[6] = {x->shape.d[0], dim_const(cout), dim_const(kh), dim_const(kw), H, W};
  INode *y;
  bool tiles = true; /* kernel == stride, no padding: the taps' outputs tile the image, each pixel gets one */
  for (int a = 0; a < 2; a++)
    tiles &= c->stride[a] == k[a] && c->pad[a] == 0 && c->dilation[a] == 1 && c->output_padding[a] == 0;
  if (tiles) { /* then col2im is a pixel shuffle: [N, Cout, KH, KW, H, W] -> [N, Cout, H, KH, W, KW] */
    static const int shuffle[6] = {0, 1, 4, 2, 5, 3};
    Dim yd[4] = {x->shape.d[0], dim_const(cout), out[0], out[1]};
    y = reshape_to(S, ir_permute(M, E, reshape_to(S, cols, 6, cd, loc), shuffle, loc, D), 4, yd, loc);
  } else {
    y = ir_col2im(M, E, reshape_to(S, cols, 6, cd, loc), out[0], out[1], c->stride, pad, c->dilation, loc, D);
  }
  if (y && b) y = ir_binary(M, E, OP_ADD, y, per_channel(S, b, 2, loc), loc, D);
  return y;
}

/* ---- pooling ---- */

/* ATen's pooling_output_shape for one axis */
static Wide pool_out(Wide in, Wide k, Wide s, Wide p, Wide d, bool ceil_mode) {
  Wide num = in + 2 * p - d * (k - 1) - 1 + (ceil_mode ? s - 1 : 0);
  Wide o = (num < 0 ? num - s + 1 : num) / s + 1;
  if (ceil_mode && (o - 1) * s >= in + p) o--;
  return o;
}

/* The window's end padding along a symbolic axis a, so that ir_window's output size is ATen's:
 * floor((in + 2p - span) / s) + 1, with ceil_mode + (s - 1).  ATen drops a last ceil_mode
 * window that would start in the end padding; it never does when p + s <= span, the only
 * case taken here, since the drop would depend on the run-time size. */
static bool pool_symbolic_axis(Sema *S, const PoolSpec *p, int a, WindowSpec *ws, const char *what, SrcLoc loc) {
  Wide span = (Wide)p->dilation[a] * (p->kernel[a] - 1) + 1;
  if (p->ceil_mode && p->pad[a] + p->stride[a] > span)
    return diag_error(D, loc, "%s: ceil_mode with a stride larger than the kernel less the padding needs a "
                      "static size (pin it with -D)", what);
  ws->pad[a] = p->pad[a];
  ws->pad[a + 2] = p->pad[a] + (p->ceil_mode ? p->stride[a] - 1 : 0);
  return true;
}

static INode *pool_windows(Sema *S, INode *x, const PoolSpec *p, double fill, const char *what, SrcLoc loc,
                           int64_t out[2]) {
  if (!x) return NULL;
  int r = x->shape.rank;
  if (r < 3) return diag_error(D, loc, "%s expects [N, C, H, W] or [C, H, W]", what), NULL;
  WindowSpec ws = {.kernel = {p->kernel[0], p->kernel[1]}, .stride = {p->stride[0], p->stride[1]},
                   .dilation = {p->dilation[0], p->dilation[1]}, .input_dilation = {1, 1}, .pad_value = fill,
                   .what = what, .params = "kernel size, stride or dilation"};
  for (int a = 0; a < 2; a++) {
    int64_t in = x->shape.d[r - 2 + a].k;
    if (p->kernel[a] <= 0 || p->stride[a] <= 0 || p->dilation[a] <= 0)
      return diag_error(D, loc, "%s: kernel size, stride and dilation must be positive", what), NULL;
    if (p->pad[a] < 0 || p->pad[a] > p->kernel[a] / 2)
      return diag_error(D, loc, "%s: padding must be at most half the kernel size", what), NULL;
    if (x->shape.d[r - 2 + a].syms) { /* a symbolic size: ir_window derives the output size */
      if (!pool_symbolic_axis(S, p, a, &ws, what, loc)) return NULL;
      out[a] = 0;
      continue;
    }
    Wide o = pool_out(in, p->kernel[a], p->stride[a], p->pad[a], p->dilation[a], p->ceil_mode);
    if (o <= 0) return diag_error(D, loc, "%s: the output would be empty", what), NULL;
    Wide pad_end = (o - 1) * p->stride[a] + (Wide)p->dilation[a] * (p->kernel[a] - 1) + 1 - in - p->pad[a];
    if (!fits_int64(o) || !fits_int64(pad_end))
      return diag_error(D, loc, "%s: kernel size, stride or dilation too large", what), NULL;
    out[a] = (int64_t)o;
    ws.pad[a] = p->pad[a];
    ws.pad[a + 2] = (int64_t)pad_end;
  }
  return ir_window(M, E, x, &ws, loc, D);
}

INode *nn_max_pool2d(Sema *S, INode *x, const PoolSpec *p, SrcLoc loc) {
  int64_t out[2];
  INode *win = pool_windows(S, x, p, -INFINITY, "max_pool2d", loc, out);
  if (!win) return NULL;
  int r = win->shape.rank;
  return ir_reduce(M, E, OP_RMAX, win, (1u << (r - 2)) | (1u << (r - 1)), 0, loc, D);
}

/* Whether the constant matrix `what` of rows x cols stays within NN_MAX_CONST_ELEMENTS; an
 * error if not. */
static bool const_fits(Sema *S, int64_t rows, int64_t cols, const char *what, SrcLoc loc) {
  int64_t n;
  if (!__builtin_mul_overflow(rows, cols, &n) && n <= NN_MAX_CONST_ELEMENTS) return true;
  return diag_error(D, loc, "%s (%lld x %lld) would have more than %lld elements", what,
                    (long long)rows, (long long)cols, (long long)NN_MAX_CONST_ELEMENTS);
}

/* The divisor of every output position, as ATen's avg_pool2d computes it. */
static INode *avg_divisors(Sema *S, const PoolSpec *p, int64_t h, int64_t w, const int64_t out[2], SrcLoc loc) {
  if (!const_fits(S, out[0], out[1], "avg_pool2d: the divisors of the output", loc)) return NULL;
  float *div = arena_alloc(S->arena, out[0] * out[1] * sizeof *div);
  int64_t in[2] = {h, w};
  for (int64_t i = 0; i < out[0]; i++)
    for (int64_t j = 0; j < out[1]; j++) {
      Wide o[2] = {i, j}, pool = 1, inside = 1;
      for (int a = 0; a < 2; a++) {
        Wide start = o[a] * p->stride[a] - p->pad[a], end = start + p->kernel[a];
        if (end > in[a] + p->pad[a]) end = in[a] + p->pad[a];
        pool *= end - start;
        if (start < 0) start = 0;
        if (end > in[a]) end = in[a];
        inside *= end - start;
      }
      div[i * out[1] + j] = (float)(p->divisor_override ? p->divisor_override : p->count_include_pad ? pool : inside);
    }
  Shape s = {.rank = 2, .d = {dim_const(out[0]), dim_const(out[1])}};
  return ir_const_data(M, E, div, &s, loc);
}

INode *nn_avg_pool2d(Sema *S, INode *x, const PoolSpec *p, SrcLoc loc) {
  int64_t out[2];
  if (p->dilation[0] != 1 || p->dilation[1] != 1) return diag_error(D, loc, "avg_pool2d has no dilation"), NULL;
  INode *win = pool_windows(S, x, p, 0.0, "avg_pool2d", loc, out);
  if (!win) return NULL;
  int r = win->shape.rank;
  INode *sum = ir_reduce(M, E, OP_SUM, win, (1u << (r - 2)) | (1u << (r - 1)), 0, loc, D);
  int xr = x->shape.rank;
  if (x->shape.d[xr - 2].syms || x->shape.d[xr - 1].syms) { /* one divisor for every window */
    if (!p->divisor_override && (p->ceil_mode || (!p->count_include_pad && (p->pad[0] || p->pad[1]))))
      return diag_error(D, loc, "avg_pool2d: on a symbolic size, the divisor varies across the output with "
                        "ceil_mode or count_include_pad=false and padding; pin the size with -D"), NULL;
    double div = p->divisor_override ? (double)p->divisor_override : (double)(p->kernel[0] * p->kernel[1]);
    return ir_binary(M, E, OP_DIV, sum, ir_fill(M, E, div, &(Shape){0}, loc), loc, D);
  }
  return ir_binary(M, E, OP_DIV, sum, avg_divisors(S, p, x->shape.d[xr - 2].k, x->shape.d[xr - 1].k, out, loc), loc, D);
}

/* Adaptive average pooling: bin i covers [floor(i*in/out), ceil((i+1)*in/out)).  A 1x1 output
 * is a mean; otherwise the pooling is separable: P_h @ x @ P_w^T with constant averaging
 * matrices, two small GEMMs. */
static INode *pool_matrix(Sema *S, int64_t in, int64_t out, bool transposed, SrcLoc loc) {
  if (!const_fits(S, out, in, "adaptive_avg_pool2d: the averaging matrix", loc)) return NULL;
  float *m = arena_alloc(S->arena, in * out * sizeof *m);
  for (int64_t i = 0; i < out; i++) {
    int64_t start = i * in / out, end = ((i + 1) * in + out - 1) / out;
    for (int64_t j = start; j < end; j++) m[transposed ? j * out + i : i * in + j] = 1.0f / (float)(end - start);
  }
  Shape s = {.rank = 2, .d = {dim_const(transposed ? in : out), dim_const(transposed ? out : in)}};
  return ir_const_data(M, E, m, &s, loc);
}

/* The input and output size of adaptive pooling `what` are ones it takes; an error if not. */
static bool adaptive_args(Sema *S, INode *x, int64_t oh, int64_t ow, const char *what, SrcLoc loc) {
  if (!x) return false;
  int r = x->shape.rank;
  if (r < 3 || !static_dims(S, x, r - 2, what, loc))
    return diag_error(D, loc, "%s expects [N, C, H, W] or [C, H, W] with static H, W", what);
  if (oh <= 0 || ow <= 0) return diag_error(D, loc, "%s: output size must be positive", what);
  return true;
}

INode *nn_adaptive_avg_pool2d(Sema *S, INode *x, int64_t oh, int64_t ow, SrcLoc loc) {
  int r = x ? x->shape.rank : 0;
  if (x && r >= 3 && oh == 1 && ow == 1) { /* a mean, of a symbolic size too */
    INode *s = ir_reduce(M, E, OP_SUM, x, (1u << (r - 2)) | (1u << (r - 1)), 1, loc, D);
    Dim hw = dim_mul(M, x->shape.d[r - 2], x->shape.d[r - 1]);
    return ir_binary(M, E, OP_DIV, s, ir_dim_value(M, E, hw, loc), loc, D);
  }
  if (!adaptive_args(S, x, oh, ow, "adaptive_avg_pool2d", loc)) return NULL;
  int64_t h = x->shape.d[r - 2].k, w = x->shape.d[r - 1].k;
  INode *ph = pool_matrix(S, h, oh, false, loc);
  INode *pw = ph ? pool_matrix(S, w, ow, true, loc) : NULL;
  if (!pw) return NULL;
  return ir_matmul(M, E, ir_matmul(M, E, ph, x, 0, 0, loc, D), pw, 0, 0, loc, D);
}

/* Adaptive max pooling, the bins of adaptive average pooling.  Bins of one size (in a multiple
 * of out) are max_pool2d's windows; otherwise the maximum is separable: that of each column
 * bin, then of each row bin, a slice and a reduction per bin (oh + ow of them). */
#define ADAPTIVE_MAX_BINS 4096

static INode *max_over_bins(Sema *S, INode *x, int axis, int64_t in, int64_t out, SrcLoc loc) {
  INode *acc = NULL;
  if (!x) return NULL;
  for (int64_t i = 0; i < out; i++) {
    int64_t start = i * in / out, end = ((i + 1) * in + out - 1) / out;
    INode *bin = ir_reduce(M, E, OP_RMAX, ir_slice(M, E, x, axis, start, end, 1, loc, D), 1u << axis, 1, loc, D);
    acc = i ? ir_concat(M, E, acc, bin, axis, loc, D) : bin;
    if (!acc) return NULL;
  }
  return acc;
}

INode *nn_adaptive_max_pool2d(Sema *S, INode *x, int64_t oh, int64_t ow, SrcLoc loc) {
  if (!adaptive_args(S, x, oh, ow, "adaptive_max_pool2d", loc)) return NULL;
  int r = x->shape.rank;
  int64_t h = x->shape.d[r - 2].k, w = x->shape.d[r - 1].k;
  if (h % oh == 0 && w % ow == 0) {
    PoolSpec p = {.kernel = {h / oh, w / ow}, .stride = {h / oh, w / ow}, .dilation = {1, 1}};
    return nn_max_pool2d(S, x, &p, loc);
  }
  if (oh > ADAPTIVE_MAX_BINS || ow > ADAPTIVE_MAX_BINS)
    return diag_error(D, loc, "adaptive_max_pool2d: an output size that does not divide the input is at most %d",
                      ADAPTIVE_MAX_BINS), NULL;
  return max_over_bins(S, max_over_bins(S, x, r - 1, w, ow, loc), r - 2, h, oh, loc);
}

/* ---- normalization ---- */

static INode *rsqrt_eps(Sema *S, INode *var, double eps, SrcLoc loc) {
  INode *e = ir_fill(M, E, eps, &(Shape){0}, loc);
  INode *sd = ir_unary(M, E, OP_SQRT, ir_binary(M, E, OP_ADD, var, e, loc, D), loc, D);
  return ir_binary(M, E, OP_DIV, ir_fill(M, E, 1.0, &(Shape){0}, loc), sd, loc, D);
}

/* inference: y = x * alpha + beta with alpha = weight / sqrt(var + eps), beta = bias - mean *
 * alpha (ATen's CPU batch_norm) */
INode *nn_batch_norm(Sema *S, INode *x, INode *mean, INode *var, INode *w, INode *b, double eps, SrcLoc loc) {
  if (!x || !mean || !var) return NULL;
  if (x->shape.rank < 2) return diag_error(D, loc, "batch_norm expects [N, C, ...]"), NULL;
  Dim c = x->shape.d[1];
  INode *stats[4] = {mean, var, w, b};
  for (int i = 0; i < 4; i++)
    if (stats[i] && (stats[i]->shape.rank != 1 || !dim_eq(stats[i]->shape.d[0], c)))
      return diag_error(D, loc, "batch_norm: statistics and affine parameters must have the channel count"), NULL;
  int trailing = x->shape.rank - 2;
  INode *alpha = rsqrt_eps(S, var, eps, loc);
  if (w) alpha = ir_binary(M, E, OP_MUL, alpha, w, loc, D);
  INode *beta = ir_unary(M, E, OP_NEG, ir_binary(M, E, OP_MUL, mean, alpha, loc, D), loc, D);
  if (b) beta = ir_binary(M, E, OP_ADD, b, beta, loc, D);
  INode *y = ir_binary(M, E, OP_MUL, x, per_channel(S, alpha, trailing, loc), loc, D);
  return ir_binary(M, E, OP_ADD, y, per_channel(S, beta, trailing, loc), loc, D);
}

/* normalize x over the trailing axes from `from` on (two passes: mean, then variance) */
static INode *normalize_tail(Sema *S, INode *x, int from, double eps, SrcLoc loc) {
  uint32_t axes = 0;
  Dim n = dim_const(1);
  for (int i = from; i < x->shape.rank; i++) {
    axes |= 1u << i;
    n = dim_mul(M, n, x->shape.d[i]);
  }
  INode *count = ir_dim_value(M, E, n, loc); /* symbolic when the spatial size is */
  INode *mean = ir_binary(M, E, OP_DIV, ir_reduce(M, E, OP_SUM, x, axes, 1, loc, D), count, loc, D);
  INode *dev = ir_binary(M, E, OP_SUB, x, mean, loc, D);
  INode *var = ir_binary(M, E, OP_DIV, ir_reduce(M, E, OP_SUM, ir_binary(M, E, OP_MUL, dev, dev, loc, D), axes, 1, loc, D),
                         count, loc, D);
  return ir_binary(M, E, OP_MUL, dev, rsqrt_eps(S, var, eps, loc), loc, D);
}

INode *nn_group_norm(Sema *S, INode *x, int64_t groups, INode *w, INode *b, double eps, SrcLoc loc) {
  if (!x) return NULL;
  if (x->shape.rank < 2 || x->shape.d[1].syms)
    return diag_error(D, loc, "group_norm expects [N, C, ...] with a static C"), NULL;
  int64_t c = x->shape.d[1].k;
  if (groups <= 0 || c % groups)
    return diag_error(D, loc, "group_norm: %lld groups do not divide %lld channels", (long long)groups, (long long)c), NULL;
  Dim rest = dim_const(c / groups);
  for (int i = 2; i < x->shape.rank; i++) rest = dim_mul(M, rest, x->shape.d[i]);
  Dim g[3] = {x->shape.d[0], dim_const(groups), rest};
  INode *y = normalize_tail(S, reshape_to(S, x, 3, g, loc), 2, eps, loc);
  y = y ? ir_reshape(M, E, y, &x->shape, loc, D) : NULL;
  int trailing = x->shape.rank - 2;
  if (y && w) y = ir_binary(M, E, OP_MUL, y, per_channel(S, w, trailing, loc), loc, D);
  if (y && b) y = ir_binary(M, E, OP_ADD, y, per_channel(S, b, trailing, loc), loc, D);
  return y;
}

INode *nn_layer_norm(Sema *S, INode *x, int nshape, INode *w, INode *b, double eps, SrcLoc loc) {
  if (!x) return NULL;
  if (nshape <= 0 || nshape > x->shape.rank) return diag_error(D, loc, "layer_norm: normalized_shape does not fit the input"), NULL;
  INode *y = normalize_tail(S, x, x->shape.rank - nshape, eps, loc);
  if (y && w) y = ir_binary(M, E, OP_MUL, y, w, loc, D);
  if (y && b) y = ir_binary(M, E, OP_ADD, y, b, loc, D);
  return y;
}

/* ---- resampling, padding, pixel shuffle ---- */

/* Axis a of interpolate on a symbolic size `in`: to a static size (the scale in / size is
 * then computed when the call runs: scale 0), or by a scale factor p / q with q a power of two
 * up to 64 (2, 0.5, 1.5: floor(in * sf) is then exactly the derived size floor(p in / q), as
 * ATen computes it in double). */
static bool interpolate_symbolic_axis(Sema *S, Dim in, Dim size, double sf, bool align_corners, int a, Dim *out,
                                      double *scale, SrcLoc loc) {
  bool given = size.syms || size.k > 0;
  *scale = given || align_corners ? 0.0 : 1.0 / sf;
  if (given) {
    *out = size;
    return true;
  }
  for (int64_t q = 1; q <= 64; q *= 2) {
    double p = sf * (double)q;
    if (p != floor(p) || p > (double)IR_MAX_STATIC_ELEMENTS) continue;
    bool ok;
    *out = dim_derive(M, in, (int64_t)p, 0, q, a ? "interpolate: the output width" : "interpolate: the output height",
                      loc, D, &ok);
    return ok;
  }
  return diag_error(D, loc, "interpolate: on a symbolic size, scale_factor must be a multiple of 1/64 (got %g); "
                    "pin the size with -D or give size=", sf);
}

INode *nn_interpolate(Sema *S, INode *x, Dim oh, Dim ow, double sh, double sw, const char *mode,
                      bool align_corners, SrcLoc loc) {
  if (!x) return NULL;
  int r = x->shape.rank;
  if (r < 3) return diag_error(D, loc, "interpolate expects [N, C, H, W]"), NULL;
  Dim size[2] = {oh, ow};
  int64_t in[2] = {x->shape.d[r - 2].k, x->shape.d[r - 1].k}, out[2] = {oh.k, ow.k};
  double sf[2] = {sh, sw}, scale[2];
  Dim dims[2];
  int m = !strcmp(mode, "nearest") ? 0 : !strcmp(mode, "bilinear") ? 1 : -1;
  if (m < 0) return diag_error(D, loc, "interpolate: mode \"%s\" is not one of \"nearest\", \"bilinear\"", mode), NULL;
  if (m == 0 && align_corners) return diag_error(D, loc, "interpolate: align_corners applies to bilinear only"), NULL;
  for (int a = 0; a < 2; a++) {
    if (x->shape.d[r - 2 + a].syms || size[a].syms) { /* the scale is computed when the call runs */
      if (!interpolate_symbolic_axis(S, x->shape.d[r - 2 + a], size[a], sf[a], m == 1 && align_corners, a, &dims[a],
                                     &scale[a], loc))
        return NULL;
      continue;
    }
    if (out[a] <= 0) {
      double o = floor((double)in[a] * sf[a]);
      if (!(o >= 1)) return diag_error(D, loc, "interpolate: the output would be empty"), NULL;
      if (o > (double)IR_MAX_STATIC_ELEMENTS)
        return diag_error(D, loc, "interpolate: the output would be too large"), NULL;
      out[a] = (int64_t)o;
    }
    /* ATen's area_pixel_compute_scale: the user's scale factor when given, else in / out */
    if (m == 1 && align_corners) scale[a] = out[a] > 1 ? (double)(in[a] - 1) / (double)(out[a] - 1) : 0.0;
    else scale[a] = sf[a] > 0 ? 1.0 / sf[a] : (double)in[a] / (double)out[a];
    dims[a] = dim_const(out[a]);
  }
  return ir_resize(M, E, x, dims[0], dims[1], m, align_corners, scale[0], scale[1], loc, D);
}

/* constant padding, torch's order: [left, right] of the last axis, then [top, bottom] */
INode *nn_pad(Sema *S, INode *x, const int64_t *pads, int npads, double value, SrcLoc loc) {
  if (!x) return NULL;
  if (npads != 2 && npads != 4) return diag_error(D, loc, "pad takes [left, right] or [left, right, top, bottom]"), NULL;
  if (x->shape.rank < 2) return diag_error(D, loc, "pad needs a tensor of rank >= 2"), NULL;
  WindowSpec ws = {.kernel = {1, 1}, .stride = {1, 1}, .dilation = {1, 1}, .input_dilation = {1, 1}, .pad_value = value,
                   .pad = {npads == 4 ? pads[2] : 0, pads[0], npads == 4 ? pads[3] : 0, pads[1]},
                   .what = "pad", .params = "padding"};
  INode *win = ir_window(M, E, x, &ws, loc, D);
  if (!win) return NULL;
  Shape s = win->shape;
  s.rank -= 2;
  return ir_reshape(M, E, win, &s, loc, D);
}

/* src[i] = a + b·i for every i (a reversal, a shift)? */
static bool affine(const int64_t *src, int64_t n, int64_t *a, int64_t *b) {
  *a = n ? src[0] : 0;
  *b = n > 1 ? src[1] - src[0] : 0;
  for (int64_t i = 2; i < n; i++)
    if (src[i] - src[i - 1] != *b) return false;
  return true;
}

INode *nn_take(Sema *S, INode *x, int axis, const int64_t *src, int64_t n, SrcLoc loc) {
  if (!x) return NULL;
  Shape is = {.rank = x->shape.rank - axis}, out = x->shape;
  for (int i = 0; i < is.rank; i++) is.d[i] = i == 0 ? dim_const(n) : dim_const(1);
  out.d[axis] = dim_const(n);
  int64_t a, b;
  INode *index;
  if (n > 16 && affine(src, n, &a, &b)) { /* a + b·i computed, not a table of n indices in the library */
    index = ir_binary(M, E, OP_MUL, ir_iota(M, E, &is, 0, loc), ir_fill(M, E, (double)b, &(Shape){0}, loc), loc, D);
    index = ir_binary(M, E, OP_ADD, index, ir_fill(M, E, (double)a, &(Shape){0}, loc), loc, D);
  } else {
    float *idx = arena_alloc(S->arena, (n ? n : 1) * sizeof *idx);
    for (int64_t i = 0; i < n; i++) idx[i] = (float)src[i];
    index = ir_const_data(M, E, idx, &is, loc);
  }
  return ir_gather(M, E, x, index, axis, &out, loc, D);
}

/* F.pad's "reflect", "replicate" and "circular" on the last axes: each padded axis
 * re-indexed (nn_take) by where its positions come from */
INode *nn_pad_mode(Sema *S, INode *x, const int64_t *pads, int npads, const char *mode, SrcLoc loc) {
  if (!x) return NULL;
  int kind = !strcmp(mode, "reflect") ? 0 : !strcmp(mode, "replicate") ? 1 : !strcmp(mode, "circular") ? 2 : -1;
  if (kind < 0)
    return diag_error(D, loc, "pad: mode \"%s\" is not one of \"constant\", \"reflect\", \"replicate\", \"circular\"", mode), NULL;
  if (npads != 2 && npads != 4) return diag_error(D, loc, "pad takes [left, right] or [left, right, top, bottom]"), NULL;
  for (int p = 0; p < npads / 2 && x; p++) {
    int axis = x->shape.rank - 1 - p;
    int64_t lo = pads[2 * p], hi = pads[2 * p + 1];
    if (axis < 0 || x->shape.d[axis].syms) return diag_error(D, loc, "pad: mode \"%s\" needs static padded axes", mode), NULL;
    int64_t n = x->shape.d[axis].k;
    if (lo < 0 || hi < 0) return diag_error(D, loc, "pad: mode \"%s\" takes non-negative paddings", mode), NULL;
    if ((kind == 0 && (lo >= n || hi >= n)) || (kind == 2 && (lo > n || hi > n)) || n == 0)
      return diag_error(D, loc, "pad: padding (%lld, %lld) is too large for mode \"%s\" on a dimension of size %lld",
                        (long long)lo, (long long)hi, mode, (long long)n), NULL;
    if (n + lo + hi > IR_MAX_STATIC_ELEMENTS) return diag_error(D, loc, "pad: the padded dimension is too large"), NULL;
    int64_t total = n + lo + hi, *src = arena_alloc(S->arena, total * sizeof *src);
    for (int64_t j = 0; j < total; j++) {
      int64_t i = j - lo;
      src[j] = kind == 0 ? (i < 0 ? -i : i >= n ? 2 * (n - 1) - i : i)
             : kind == 1 ? (i < 0 ? 0 : i >= n ? n - 1 : i)
                         : ((i % n) + n) % n;
    }
    x = nn_take(S, x, axis, src, total, loc);
  }
  return x;
}

INode *nn_pixel_shuffle(Sema *S, INode *x, int64_t r, bool inverse, SrcLoc loc) {
  if (!x) return NULL;
  const char *what = inverse ? "pixel_unshuffle" : "pixel_shuffle";
  if (!need_rank(S, x, 4, what, loc)) return NULL;
  if (x->shape.d[1].syms) return diag_error(D, loc, "%s: the channel count must be static", what), NULL;
  if (r <= 0) return diag_error(D, loc, "%s: the factor must be positive", what), NULL;
  Dim n = x->shape.d[0], h = x->shape.d[2], w = x->shape.d[3]; /* H, W: k x a symbol, or static */
  int64_t c = x->shape.d[1].k, rr, hr, wr, crr;
  if (__builtin_mul_overflow(r, r, &rr) || __builtin_mul_overflow(h.k, r, &hr) || __builtin_mul_overflow(w.k, r, &wr) ||
      __builtin_mul_overflow(c, rr, &crr))
    return diag_error(D, loc, "%s: the factor %lld is too large", what, (long long)r), NULL;
  if (!inverse) {
    if (c % (r * r)) return diag_error(D, loc, "pixel_shuffle: %lld channels are not divisible by %lld", (long long)c, (long long)(r * r)), NULL;
    Dim sp[6] = {n, dim_const(c / (r * r)), dim_const(r), dim_const(r), h, w};
    int perm[6] = {0, 1, 4, 2, 5, 3};
    Dim out[4] = {n, dim_const(c / (r * r)), (Dim){hr, h.syms}, (Dim){wr, w.syms}};
    return reshape_to(S, ir_permute(M, E, reshape_to(S, x, 6, sp, loc), perm, loc, D), 4, out, loc);
  }
  if (h.k % r || w.k % r) /* a symbolic size divides only through its static factor: f32[N, C, 2*HB, 2*WB] */
    return diag_error(D, loc, "pixel_unshuffle: height and width must be divisible by %lld (a symbolic one as %lld*H "
                      "in the input's type)", (long long)r, (long long)r), NULL;
  Dim sp[6] = {n, dim_const(c), (Dim){h.k / r, h.syms}, dim_const(r), (Dim){w.k / r, w.syms}, dim_const(r)};
  int perm[6] = {0, 1, 3, 5, 2, 4};
  Dim out[4] = {n, dim_const(c * r * r), (Dim){h.k / r, h.syms}, (Dim){w.k / r, w.syms}};
  return reshape_to(S, ir_permute(M, E, reshape_to(S, x, 6, sp, loc), perm, loc, D), 4, out, loc);
}
