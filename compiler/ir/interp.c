/* interp.c — the reference interpreter (interp.h).  Each node of an entry, in topological
 * order, becomes a malloc'd array of doubles of its concrete shape; a value is freed after its
 * last use.  Elementwise ops evaluate in double with the scalar semantics of ops.def's EVAL
 * column (PyTorch's, NaN included), the reference that constant folding shares; the
 * independent implementation they are tested against is codegen's lowering.  Values are doubles; in the
 * default precision nothing is rounded but constants and inputs (f32 tensors), so the result
 * is close to exact.  In f32 precision every result and every partial sum of a reduction or
 * matrix product is rounded to float32, as a float32 implementation would, to the nearest
 * float or (stochastic arithmetic) up or down at random: the spread of such runs around the
 * double result estimates how much an output can move under float32 round-off, which is what
 * the differential tester's tolerance is built from.  Accumulation is in index order.
 *
 * Every op of ops.def needs a function interp_<OP> here: the table at the end is expanded
 * from ops.def, so adding an op without an interpreter case fails to compile. */
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include "interp.h"
#include "philox.h"
#include "scalar.h"

#define INTERP_MAX_ELEMS ((int64_t)1 << 32) /* per tensor */

typedef struct Tensor {
  int rank;
  int64_t d[MAX_RANK];
  int64_t numel;
  double *v;           /* [numel], C order */
} Tensor;

typedef struct Interp {
  const Model *m;
  const Entry *e;
  const void *weights;
  const void *const *inputs;
  const int64_t *syms;
  InterpRounding rounding;
  uint64_t rng;        /* INTERP_F32_RANDOM: xorshift state */
  Tensor *val;         /* [node id] */
  char *err;
  size_t errlen;
} Interp;

static int fail(Interp *I, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(Interp *I, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  if (I->errlen) vsnprintf(I->err, I->errlen, fmt, ap);
  va_end(ap);
  return -1;
}

int64_t interp_dim(Dim d, const int64_t *syms) {
  int64_t v = d.k;
  for (int i = 0; i < MAX_SYMS; i++)
    if ((d.syms & (1u << i)) && __builtin_mul_overflow(v, syms[i], &v)) return -1;
  return v;
}

/* ---- indexing ---- */

static void unravel(int64_t o, const Tensor *t, int64_t *idx) {
  for (int i = t->rank - 1; i >= 0; i--) {
    idx[i] = o % t->d[i];
    o /= t->d[i];
  }
}

static int64_t ravel(const Tensor *t, const int64_t *idx) {
  int64_t o = 0;
  for (int i = 0; i < t->rank; i++) o = o * t->d[i] + idx[i];
  return o;
}

/* Offset in `in` of the element broadcast to output index idx (rank `rank`): NumPy's rule,
 * right-aligned, an axis of size 1 repeats. */
static int64_t broadcast_at(const Tensor *in, const int64_t *idx, int rank) {
  int64_t o = 0;
  for (int i = 0; i < in->rank; i++) o = o * in->d[i] + (in->d[i] == 1 ? 0 : idx[i + rank - in->rank]);
  return o;
}

static const Tensor *arg(Interp *I, const INode *n, int k) { return &I->val[n->in[k]->id]; }

/* A result as the chosen precision stores it.  Random rounding (Monte Carlo arithmetic)
 * returns the float on the other side of x half of the time, and moves an exact result by
 * an ulp half of the time too — a float32 implementation that computes it another way (a
 * mean of equal values summed in another order) can be an ulp off — except integers
 * (counts, indices, 0/1 of comparisons), which other orders leave exact as well. */
static double rnd(Interp *I, double x) {
  if (I->rounding == INTERP_DOUBLE) return x;
  float f = (float)x;
  bool exact = (double)f == x;
  if (I->rounding == INTERP_F32 || !isfinite(f) || (exact && f == truncf(f))) return f;
  I->rng ^= I->rng << 13, I->rng ^= I->rng >> 7, I->rng ^= I->rng << 17;
  if (I->rng & 1) return f;
  if (!exact) return nextafterf(f, (double)f < x ? INFINITY : -INFINITY);
  return nextafterf(f, I->rng & 2 ? INFINITY : -INFINITY);
}

/* ---- leaves ---- */

/* i64 tensors are read as f32, as the compiled code reads them (exact up to 2^24) */
static void copy_typed(double *dst, const void *src, DType dt, int64_t n) {
  for (int64_t i = 0; i < n; i++)
    dst[i] = dt == DT_I64 ? (float)((const int64_t *)src)[i] : ((const float *)src)[i];
}

static void interp_INPUT(Interp *I, const INode *n, Tensor *out) {
  copy_typed(out->v, I->inputs[n->index], n->dtype, out->numel);
}

static void interp_PARAM(Interp *I, const INode *n, Tensor *out) {
  const Param *p = &I->m->params[n->index];
  copy_typed(out->v, (const char *)I->weights + p->offset, p->dtype, out->numel);
}

static void interp_CONST(Interp *I, const INode *n, Tensor *out) {
  /* constants are f32 tensors in both precisions */
  for (int64_t o = 0; o < out->numel; o++) out->v[o] = n->data ? n->data[o] : (float)n->f[0];
}

static void interp_IOTA(Interp *I, const INode *n, Tensor *out) {
  int64_t idx[MAX_RANK];
  for (int64_t o = 0; o < out->numel; o++) {
    unravel(o, out, idx);
    out->v[o] = (double)idx[n->i[0]];
  }
}

static void interp_DIMVAL(Interp *I, const INode *n, Tensor *out) {
  out->v[0] = (float)interp_dim((Dim){n->i[0], n->axes}, I->syms);
}

/* ---- elementwise: out[idx] = f(in0[bcast idx], in1[...], in2[...]) ---- */

typedef double (*ScalarFn)(const double *x, const double *attr);

static void elementwise(Interp *I, const INode *n, Tensor *out, ScalarFn f) {
  int ar = op_info[n->op].arity;
  int64_t idx[MAX_RANK];
  for (int64_t o = 0; o < out->numel; o++) {
    double x[3] = {0};
    unravel(o, out, idx);
    for (int k = 0; k < ar; k++) {
      const Tensor *a = arg(I, n, k);
      x[k] = a->v[broadcast_at(a, idx, out->rank)];
    }
    out->v[o] = rnd(I, f(x, n->f));
  }
}

/* interp_<NAME> of every elementwise op: its EVAL column of ops.def, elementwise */
#define OP(id, nm, ar, kind, print)
#define ELEM(id, nm, ar, traits, fn, layer, attrs, ev)                                  \
  static double scalar_##id(const double *x, const double *a) { (void)a; return (ev); } \
  static void interp_##id(Interp *I, const INode *n, Tensor *out) { elementwise(I, n, out, scalar_##id); }
#include "ops.def"

/* ---- movement ---- */

static void interp_RESHAPE(Interp *I, const INode *n, Tensor *out) {
  memcpy(out->v, arg(I, n, 0)->v, out->numel * sizeof *out->v);
}

/* out[idx] = in[r] with r[perm[k]] = idx[k] */
static void interp_PERMUTE(Interp *I, const INode *n, Tensor *out) {
  const Tensor *a = arg(I, n, 0);
  int64_t idx[MAX_RANK], r[MAX_RANK];
  for (int64_t o = 0; o < out->numel; o++) {
    unravel(o, out, idx);
    for (int k = 0; k < out->rank; k++) r[n->i[k]] = idx[k];
    out->v[o] = a->v[ravel(a, r)];
  }
}

/* out[.., j, ..] = in[.., start + j * step, ..] along axis i[0] */
static void interp_SLICE(Interp *I, const INode *n, Tensor *out) {
  const Tensor *a = arg(I, n, 0);
  int ax = (int)n->i[0];
  int64_t idx[MAX_RANK];
  for (int64_t o = 0; o < out->numel; o++) {
    unravel(o, out, idx);
    idx[ax] = n->i[1] + (n->i[3] ? interp_dim((Dim){1, (uint32_t)n->i[3]}, I->syms) : 0) + idx[ax] * n->i[2];
    out->v[o] = a->v[ravel(a, idx)];
  }
}

static void interp_CONCAT(Interp *I, const INode *n, Tensor *out) {
  const Tensor *a = arg(I, n, 0), *b = arg(I, n, 1);
  int ax = (int)n->i[0];
  int64_t idx[MAX_RANK];
  for (int64_t o = 0; o < out->numel; o++) {
    unravel(o, out, idx);
    if (idx[ax] < a->d[ax]) {
      out->v[o] = a->v[ravel(a, idx)];
    } else {
      idx[ax] -= a->d[ax];
      out->v[o] = b->v[ravel(b, idx)];
    }
  }
}

/* ---- reductions over the axes in n->axes (keepdim or not: same element order) ---- */

static int64_t reduced_at(const Tensor *in, uint32_t axes, const int64_t *idx) {
  int64_t o = 0;
  for (int i = 0; i < in->rank; i++)
    if (!(axes & (1u << i))) o = o * in->d[i] + idx[i];
  return o;
}

static void reduce(Interp *I, const INode *n, Tensor *out, bool is_max) {
  const Tensor *a = arg(I, n, 0);
  for (int64_t o = 0; o < out->numel; o++) out->v[o] = is_max ? -INFINITY : 0.0;
  int64_t idx[MAX_RANK];
  for (int64_t i = 0; i < a->numel; i++) {
    unravel(i, a, idx);
    double x = a->v[i], *r = &out->v[reduced_at(a, n->axes, idx)];
    if (!is_max) *r = rnd(I, *r + x);
    else if (isnan(x) || x > *r) *r = x;   /* torch.amax propagates NaN */
  }
}

static void interp_SUM(Interp *I, const INode *n, Tensor *out) { reduce(I, n, out, false); }
static void interp_RMAX(Interp *I, const INode *n, Tensor *out) { reduce(I, n, out, true); }

/* ---- matrix product: C[b] = op(A[b]) op(B[b]), op transposing when i[0] / i[1] is set; an
 * operand of rank 2 is shared by every batch ---- */

static void interp_MATMUL(Interp *I, const INode *n, Tensor *out) {
  const Tensor *a = arg(I, n, 0), *b = arg(I, n, 1);
  int ta = (int)n->i[0], tb = (int)n->i[1], r = out->rank;
  int64_t M = out->d[r - 2], N = out->d[r - 1], K = a->d[a->rank - 1 - ta];
  if (out->numel == 0) return;
  int64_t batch = out->numel / (M * N), bidx[MAX_RANK];
  Tensor ob = {.rank = r - 2};
  memcpy(ob.d, out->d, (r - 2) * sizeof *ob.d);
  for (int64_t bi = 0; bi < batch; bi++) {
    unravel(bi, &ob, bidx); /* batch dims broadcast: size-1 or missing dims stay at 0 */
    int64_t ai = 0, bj = 0;
    for (int i = 0; i < a->rank - 2; i++) ai = ai * a->d[i] + (a->d[i] == 1 ? 0 : bidx[i + r - a->rank]);
    for (int i = 0; i < b->rank - 2; i++) bj = bj * b->d[i] + (b->d[i] == 1 ? 0 : bidx[i + r - b->rank]);
    const double *A = a->v + ai * M * K;
    const double *B = b->v + bj * K * N;
    double *C = out->v + bi * M * N;
    for (int64_t i = 0; i < M; i++)
      for (int64_t j = 0; j < N; j++) {
        double s = 0;
        for (int64_t k = 0; k < K; k++)
          s = rnd(I, s + rnd(I, (ta ? A[k * M + i] : A[i * K + k]) * (tb ? B[j * K + k] : B[k * N + j])));
        C[i * N + j] = s;
      }
  }
}

/* out[idx] = x[idx with idx[axis] = index[broadcast idx]], the index clamped into range */
static void interp_GATHER(Interp *I, const INode *n, Tensor *out) {
  const Tensor *x = arg(I, n, 0), *ix = arg(I, n, 1);
  int ax = (int)n->i[0];
  int64_t idx[MAX_RANK];
  for (int64_t o = 0; o < out->numel; o++) {
    unravel(o, out, idx);
    double v = ix->v[broadcast_at(ix, idx, out->rank)]; /* checked (CHECK_INDEX); clamped all the same */
    idx[ax] = !(v >= 0) ? 0 : v >= (double)x->d[ax] ? x->d[ax] - 1 : (int64_t)v;
    out->v[o] = x->v[ravel(x, idx)];
  }
}

/* ---- random numbers: Philox4x32-10 of (seed, stream, element index), as philox.h ---- */

static void interp_RAND(Interp *I, const INode *n, Tensor *out) {
  uint64_t seed = (uint64_t)(int64_t)arg(I, n, 0)->v[0];
  for (int64_t o = 0; o < out->numel; o++)
    out->v[o] = n->i[0] ? philox_normal(seed, (uint64_t)n->i[1], (uint64_t)o) : philox_uniform(seed, (uint64_t)n->i[1], (uint64_t)o);
}

/* ---- sliding windows: out[.., oh, ow, kh, kw] = in[.., ih, iw] or the fill value, where
 * ih = (oh*stride - pad + k*dilation) / input_dilation when that divides and lands inside,
 * k = kh (or KH-1-kh when flipped) ---- */

static bool window_source(const INode *n, int a, int64_t o, int64_t k, int64_t size, int64_t *src) {
  int64_t K = n->shape.d[n->shape.rank - 2 + a].k;
  if (n->flag) k = K - 1 - k;
  int64_t v = o * n->i[a] - n->i[2 + a] + k * n->i[4 + a], ld = n->i[6 + a];
  if (v < 0 || v % ld != 0 || v / ld >= size) return false;
  *src = v / ld;
  return true;
}

static void interp_WINDOW(Interp *I, const INode *n, Tensor *out) {
  const Tensor *a = arg(I, n, 0);
  int r = a->rank;
  int64_t idx[MAX_RANK], src[MAX_RANK];
  for (int64_t o = 0; o < out->numel; o++) {
    unravel(o, out, idx);
    memcpy(src, idx, sizeof src);
    bool inside = window_source(n, 0, idx[r - 2], idx[r], a->d[r - 2], &src[r - 2]) &&
                  window_source(n, 1, idx[r - 1], idx[r + 1], a->d[r - 1], &src[r - 1]);
    out->v[o] = inside ? a->v[ravel(a, src)] : (float)n->f[0];
  }
}

/* ---- resampling (torch.nn.functional.interpolate, float32 coordinates as torch's) ---- */

/* RESIZE's coordinate scale of axis a: f[a], or when 0 (a symbolic size), ATen's
 * area_pixel_compute_scale from the sizes of this call */
static float resize_scale(const INode *n, int a, int64_t in, int64_t out) {
  if (n->f[a] != 0) return (float)n->f[a];
  if (n->flag) return out > 1 ? (float)(in - 1) / (float)(out - 1) : 0.0f;
  return (float)in / (float)out;
}

static void bilinear_source(const INode *n, int a, int64_t dst, int64_t size, int64_t out, int64_t *i0, int64_t *i1,
                            double *w1) {
  float scale = resize_scale(n, a, size, out);
  float src = n->flag ? (float)dst * scale : fmaxf(((float)dst + 0.5f) * scale - 0.5f, 0.0f);
  *i0 = (int64_t)src;
  *i1 = *i0 + (*i0 < size - 1 ? 1 : 0);
  *w1 = src - (float)*i0;
}

static void interp_RESIZE(Interp *I, const INode *n, Tensor *out) {
  const Tensor *a = arg(I, n, 0);
  int r = a->rank;
  int64_t idx[MAX_RANK], src[MAX_RANK];
  for (int64_t o = 0; o < out->numel; o++) {
    unravel(o, out, idx);
    memcpy(src, idx, sizeof src);
    if (n->i[0] == 0) {
      for (int k = 0; k < 2; k++) {
        int64_t s = (int64_t)floorf((float)idx[r - 2 + k] * resize_scale(n, k, a->d[r - 2 + k], out->d[r - 2 + k]));
        src[r - 2 + k] = s < a->d[r - 2 + k] - 1 ? s : a->d[r - 2 + k] - 1;
      }
      out->v[o] = a->v[ravel(a, src)];
      continue;
    }
    int64_t h[2], w[2];
    double lh, lw;
    bilinear_source(n, 0, idx[r - 2], a->d[r - 2], out->d[r - 2], &h[0], &h[1], &lh);
    bilinear_source(n, 1, idx[r - 1], a->d[r - 1], out->d[r - 1], &w[0], &w[1], &lw);
    double v[2][2];
    for (int y = 0; y < 2; y++)
      for (int x = 0; x < 2; x++) {
        src[r - 2] = h[y];
        src[r - 1] = w[x];
        v[y][x] = a->v[ravel(a, src)];
      }
    out->v[o] = (1 - lh) * ((1 - lw) * v[0][0] + lw * v[0][1]) + lh * ((1 - lw) * v[1][0] + lw * v[1][1]);
  }
}

/* ---- roi_align, transcribed from torchvision's CPU kernel ---- */

static double roi_bilinear(const double *plane, int64_t H, int64_t W, double y, double x) {
  if (y < -1.0 || y > H || x < -1.0 || x > W) return 0;
  y = y < 0 ? 0 : y;
  x = x < 0 ? 0 : x;
  int64_t yl = (int64_t)y, xl = (int64_t)x, yh, xh;
  if (yl >= H - 1) { yh = yl = H - 1; y = (double)yl; } else yh = yl + 1;
  if (xl >= W - 1) { xh = xl = W - 1; x = (double)xl; } else xh = xl + 1;
  double ly = y - yl, lx = x - xl, hy = 1 - ly, hx = 1 - lx;
  return hy * hx * plane[yl * W + xl] + hy * lx * plane[yl * W + xh] + ly * hx * plane[yh * W + xl] +
         ly * lx * plane[yh * W + xh];
}

static void interp_ROI_ALIGN(Interp *I, const INode *n, Tensor *out) {
  const Tensor *f = arg(I, n, 0), *bx = arg(I, n, 1);
  bool last = n->i[1]; /* features [N, H, W, C] */
  int64_t K = out->d[0], C = out->d[1], PH = out->d[2], PW = out->d[3], H = f->d[last ? 1 : 2], W = f->d[last ? 2 : 3];
  double *nchw = NULL;
  if (last) { /* read as NCHW */
    nchw = nnc_xmalloc((size_t)f->numel * sizeof *nchw);
    for (int64_t i = 0; i < f->numel; i++) { /* i = ((b H + y) W + x) C + c */
      int64_t c = i % C, x = i / C % W, y = i / C / W % H, b = i / C / W / H;
      nchw[((b * C + c) * H + y) * W + x] = f->v[i];
    }
  }
  const double *fv = last ? nchw : f->v;
  double off = n->flag ? 0.5 : 0.0, sc = n->f[0];
  for (int64_t k = 0; k < K; k++) {
    const double *b = bx->v + 5 * k;
    int64_t bi = (int64_t)b[0];
    double x1 = b[1] * sc - off, y1 = b[2] * sc - off, rw = b[3] * sc - off - x1, rh = b[4] * sc - off - y1;
    if (!n->flag) {
      rw = rw > 1 ? rw : 1;
      rh = rh > 1 ? rh : 1;
    }
    double bh = rh / PH, bw = rw / PW;
    int64_t gh = n->i[0] > 0 ? n->i[0] : (int64_t)ceil(rh / PH), gw = n->i[0] > 0 ? n->i[0] : (int64_t)ceil(rw / PW);
    double count = gh * gw > 1 ? (double)(gh * gw) : 1.0;
    for (int64_t c = 0; c < C; c++) {
      const double *plane = fv + (bi * C + c) * H * W;
      for (int64_t ph = 0; ph < PH; ph++)
        for (int64_t pw = 0; pw < PW; pw++) {
          double acc = 0;
          for (int64_t iy = 0; iy < gh; iy++)
            for (int64_t ix = 0; ix < gw; ix++)
              acc += roi_bilinear(plane, H, W, y1 + ph * bh + (iy + 0.5) * bh / gh, x1 + pw * bw + (ix + 0.5) * bw / gw);
          out->v[((k * C + c) * PH + ph) * PW + pw] = rnd(I, acc / count);
        }
    }
  }
  free(nchw);
}

/* ---- attention: softmax(q kᵀ · scale + mask) v, row by row (kv: keys' columns, then values') ---- */

/* The mask's element for scores element (b, l, s) of [lead..., L, S]: its broadcast index */
static double attention_mask_at(const Tensor *mask, const Tensor *q, int64_t b, int64_t l, int64_t s) {
  int r = q->rank, shift = r - mask->rank;
  int64_t idx[MAX_RANK], off = 0, stride = 1;
  for (int i = r - 3; i >= 0; i--) {
    idx[i] = b % q->d[i];
    b /= q->d[i];
  }
  idx[r - 2] = l;
  idx[r - 1] = s;
  for (int i = r - 1; i >= shift; i--) {
    int64_t size = mask->d[i - shift];
    off += (size == 1 ? 0 : idx[i]) * stride;
    stride *= size;
  }
  return mask->v[off];
}

static void interp_ATTENTION(Interp *I, const INode *n, Tensor *out) {
  const Tensor *q = arg(I, n, 0), *kv = arg(I, n, 1), *mask = n->in[2] ? arg(I, n, 2) : NULL;
  int r = q->rank;
  int64_t L = q->d[r - 2], E = q->d[r - 1], S = kv->d[r - 2], W = kv->d[r - 1], Ev = W - E;
  int64_t blocks = L ? q->numel / (L * E) : 0;
  double *p = nnc_xmalloc((S ? S : 1) * sizeof *p);
  for (int64_t b = 0; b < blocks; b++)
    for (int64_t l = 0; l < L; l++) {
      const double *ql = q->v + (b * L + l) * E;
      int64_t seen = n->flag ? (l + 1 < S ? l + 1 : S) : S; /* causal: keys 0..l */
      double mx = -INFINITY, sum = 0;
      for (int64_t s = 0; s < seen; s++) {
        double dot = 0;
        for (int64_t j = 0; j < E; j++) dot = rnd(I, dot + rnd(I, ql[j] * kv->v[(b * S + s) * W + j]));
        p[s] = rnd(I, dot * n->f[0]);
        if (mask) p[s] = rnd(I, p[s] + attention_mask_at(mask, q, b, l, s));
        mx = p[s] > mx || p[s] != p[s] ? p[s] : mx;
      }
      for (int64_t s = 0; s < seen; s++) sum = rnd(I, sum + (p[s] = rnd(I, exp(p[s] - mx))));
      for (int64_t j = 0; j < Ev; j++) {
        double acc = 0;
        for (int64_t s = 0; s < seen; s++) acc = rnd(I, acc + rnd(I, p[s] * kv->v[(b * S + s) * W + E + j]));
        out->v[(b * L + l) * Ev + j] = seen ? rnd(I, acc / sum) : NAN;
      }
    }
  free(p);
}

/* ---- col2im: the scatter-add of a transposed convolution ---- */

static void interp_COL2IM(Interp *I, const INode *n, Tensor *out) {
  const Tensor *a = arg(I, n, 0);
  int r = a->rank, lead = r - 4;
  int64_t idx[MAX_RANK], o[MAX_RANK];
  for (int64_t i = 0; i < out->numel; i++) out->v[i] = 0;
  for (int64_t i = 0; i < a->numel; i++) {
    unravel(i, a, idx);
    memcpy(o, idx, lead * sizeof *o);
    bool inside = true;
    for (int k = 0; k < 2; k++) {
      o[lead + k] = idx[lead + 2 + k] * n->i[k] - n->i[2 + k] + idx[lead + k] * n->i[4 + k];
      inside = inside && o[lead + k] >= 0 && o[lead + k] < out->d[lead + k];
    }
    if (inside) out->v[ravel(out, o)] = rnd(I, out->v[ravel(out, o)] + a->v[i]);
  }
}

/* ---- scans: the body entry is interpreted once per step ---- */

static void interp_PACK(Interp *I, const INode *n, Tensor *out) {
  memset(out->v, 0, (out->numel ? out->numel : 1) * sizeof *out->v); /* operands are read through the chain */
}

/* number of elements of body output i of a scan (stacked ones include the T steps) */
static int64_t scan_out_numel(const Interp *I, const ScanInfo *sc, int i, int64_t steps) {
  const Shape *s = &sc->body->out_shapes[i];
  int64_t n = i >= sc->ncarried ? steps : 1;
  for (int k = 0; k < s->rank; k++) n *= interp_dim(s->d[k], I->syms);
  return n;
}

/* The scan's value holds all its results back to back: final carried values, then the
 * stacked per-step outputs; SCAN_OUT nodes read their part. */
static void interp_SCAN(Interp *I, const INode *n, Tensor *out) {
  const ScanInfo *sc = n->scan;
  const Entry *b = sc->body;
  int64_t steps = interp_dim(sc->bound, I->syms), total = 0;
  for (int i = 0; i < b->nout; i++) total += scan_out_numel(I, sc, i, steps);
  free(out->v);
  out->v = nnc_xcalloc(total ? total : 1, sizeof *out->v);
  out->numel = total;
  int nin = b->nin;
  void **ins = nnc_xcalloc(nin + 1, sizeof *ins);
  float **outs = nnc_xcalloc(b->nout + 1, sizeof *outs); /* a scan body's outputs are f32 */
  int64_t syms[MAX_SYMS];
  memcpy(syms, I->syms, sizeof syms);
  const INode *p = n->in[0];
  for (int i = 0; i < nin; i++, p = p->in[1]) { /* the body's inputs as the compiled code sees them */
    const Tensor *t = &I->val[p->in[0]->id];
    bool i64 = b->inputs[i]->dtype == DT_I64;
    ins[i] = nnc_xmalloc((t->numel ? t->numel : 1) * (i64 ? sizeof(int64_t) : sizeof(float)));
    for (int64_t k = 0; k < t->numel; k++) {
      if (i64) ((int64_t *)ins[i])[k] = (int64_t)t->v[k];
      else ((float *)ins[i])[k] = (float)t->v[k];
    }
  }
  for (int64_t i = 0; i < steps; i++) {
    int64_t t = sc->reverse ? steps - 1 - i : i;
    syms[sc->tsym] = t;
    if (interp_run(I->m, b, I->weights, (const void *const *)ins, syms, I->rounding, I->rng, (void **)outs, I->err,
                   I->errlen))
      unreachable("scan body failed in the reference interpreter");
    int64_t off = 0;
    for (int i = 0; i < b->nout; i++) {
      int64_t each = scan_out_numel(I, sc, i, 1);
      if (i < sc->ncarried) { /* next state, and the final value once the loop ends */
        memcpy(ins[i], outs[i], each * sizeof(float));
        for (int64_t k = 0; k < each; k++) out->v[off + k] = outs[i][k];
        off += each;
      } else {
        for (int64_t k = 0; k < each; k++) out->v[off + t * each + k] = outs[i][k];
        off += each * steps;
      }
      free(outs[i]);
    }
  }
  if (steps == 0) { /* no step: the final carried values are the initial ones */
    int64_t off = 0;
    for (int i = 0; i < sc->ncarried; i++) {
      int64_t each = scan_out_numel(I, sc, i, 1);
      for (int64_t k = 0; k < each; k++) out->v[off + k] = ((float *)ins[i])[k];
      off += each;
    }
  }
  for (int i = 0; i < nin; i++) free(ins[i]);
  free(ins);
  free(outs);
}

static void interp_SCAN_OUT(Interp *I, const INode *n, Tensor *out) {
  const INode *scan = n->in[0];
  const ScanInfo *sc = scan->scan;
  int64_t steps = interp_dim(sc->bound, I->syms), off = 0;
  for (int i = 0; i < n->i[0]; i++) off += scan_out_numel(I, sc, i, steps);
  memcpy(out->v, I->val[scan->id].v + off, out->numel * sizeof *out->v);
}

/* ---- the table: one function per op of ops.def (a missing one does not compile) ---- */

typedef void (*InterpFn)(Interp *I, const INode *n, Tensor *out);

static const InterpFn interp_table[OP_COUNT] = {
#define OP(id, name, arity, kind, print) [OP_##id] = interp_##id,
#include "ops.def"
};

/* ---- driver ---- */

static int shape_of(Interp *I, const INode *n, Tensor *t) {
  t->rank = n->shape.rank;
  t->numel = 1;
  for (int i = 0; i < t->rank; i++) {
    t->d[i] = interp_dim(n->shape.d[i], I->syms);
    if (t->d[i] < 0 || __builtin_mul_overflow(t->numel, t->d[i], &t->numel) || t->numel > INTERP_MAX_ELEMS)
      return fail(I, "%s: the tensor of %s at %d:%d is too large for the reference interpreter",
                  I->e->name, op_info[n->op].name, n->loc.line, n->loc.col);
  }
  return 0;
}

static int eval_node(Interp *I, const INode *n) {
  Tensor *t = &I->val[n->id];
  if (n->op < 0 || n->op >= OP_COUNT || !interp_table[n->op]) unreachable("op unknown to the reference interpreter");
  for (int k = 0; k < 3; k++)
    if (n->in[k] && !I->val[n->in[k]->id].v) unreachable("an operand is not evaluated yet: the IR is not in topological order");
  if (shape_of(I, n, t)) return -1;
  t->v = malloc((t->numel ? t->numel : 1) * sizeof *t->v);
  if (!t->v) return fail(I, "%s: out of memory in the reference interpreter", I->e->name);
  if (n->op == OP_ROI_ALIGN) /* the boxes' batch indices: the compiled kernel checks them */
    for (int64_t k = 0; k < arg(I, n, 1)->d[0]; k++) {
      double bi = arg(I, n, 1)->v[5 * k];
      if (!scalar_index_ok(bi, (double)arg(I, n, 0)->d[0]))
        return fail(I, "%s: %s fails (index %g)", I->e->name, I->m->sites[n->i[2]], bi);
    }
  interp_table[n->op](I, n, t);
  if (n->op == OP_CHECK_INDEX) /* its EVAL gives NaN for a bad index: the call fails */
    for (int64_t i = 0; i < t->numel; i++)
      if (isnan(t->v[i])) return fail(I, "%s: %s fails (index %g)", I->e->name, I->m->sites[(int)n->f[0]], arg(I, n, 0)->v[i]);
  return 0;
}

/* For each node id, the position of its last use in the node list (outputs: the end).  A
 * scan reads its operands through the chain of PACK nodes it hangs from, so a value used by
 * a PACK lives as long as the PACK does (the list is walked backwards: users come first). */
static int *last_uses(const Entry *e, int nids) {
  int *last = malloc((nids ? nids : 1) * sizeof *last);
  if (!last) return NULL;
  for (int i = 0; i < nids; i++) last[i] = -1;
  for (int o = 0; o < e->nout; o++) last[e->outputs[o]->id] = e->nnodes;
  for (int i = e->nnodes - 1; i >= 0; i--) {
    const INode *n = e->nodes[i];
    int use = n->op == OP_PACK && last[n->id] > i ? last[n->id] : i;
    for (int k = 0; k < 3; k++)
      if (n->in[k] && last[n->in[k]->id] < use) last[n->in[k]->id] = use;
  }
  return last;
}

/* An i64 output's element: toward zero, NaN as 0, saturating (codegen's llvm.fptosi.sat) */
static int64_t to_int64(double v) {
  if (v != v) return 0;
  if (v >= 0x1p63) return INT64_MAX;
  if (v < -0x1p63) return INT64_MIN;
  return (int64_t)v;
}

int interp_run(const Model *m, const Entry *e, const void *weights, const void *const *inputs,
               const int64_t *syms, InterpRounding rounding, uint64_t seed, void **outputs, char *err,
               size_t errlen) {
  Interp I = {m, e, weights, inputs, syms, rounding, seed * 0x9E3779B97F4A7C15ull | 1, NULL, err, errlen};
  int nids = 0, rc = -1;
  for (int i = 0; i < e->nnodes; i++) nids = e->nodes[i]->id + 1 > nids ? e->nodes[i]->id + 1 : nids;
  for (int o = 0; o < e->nout; o++) outputs[o] = NULL;
  I.val = calloc(nids ? nids : 1, sizeof *I.val);
  int *last = last_uses(e, nids);
  if (!I.val || !last) {
    fail(&I, "%s: out of memory in the reference interpreter", e->name);
    goto done;
  }
  for (int i = 0; i < e->nnodes; i++) {
    const INode *n = e->nodes[i];
    if (n->replaced) continue;
    if (eval_node(&I, n)) goto done;
    for (int k = 0; k < 3; k++) {
      const INode *x = n->in[k];
      if (x && last[x->id] == i) {
        free(I.val[x->id].v);
        I.val[x->id].v = NULL;
      }
    }
  }
  for (int o = 0; o < e->nout; o++) {
    const Tensor *t = &I.val[e->outputs[o]->id];
    if (!t->v) unreachable("entry output not evaluated");
    bool i64 = e->out_dtypes[o] == DT_I64;
    if (!(outputs[o] = malloc((t->numel ? t->numel : 1) * (i64 ? sizeof(int64_t) : sizeof(float))))) {
      fail(&I, "%s: out of memory in the reference interpreter", e->name);
      goto done;
    }
    for (int64_t i = 0; i < t->numel; i++) {
      if (i64) ((int64_t *)outputs[o])[i] = to_int64(t->v[i]);
      else ((float *)outputs[o])[i] = (float)t->v[i];
    }
  }
  rc = 0;
done:
  if (rc)
    for (int o = 0; o < e->nout; o++) {
      free(outputs[o]);
      outputs[o] = NULL;
    }
  for (int i = 0; I.val && i < nids; i++) free(I.val[i].v);
  free(I.val);
  free(last);
  return rc;
}

/* ---- binding symbolic dims from input shapes ---- */

static int bind_fail(char *err, size_t errlen, const Model *m, const Entry *e, int i, const char *what) {
  char s[160];
  snprintf(err, errlen, "%s: input '%s' (%s): %s", e->name, e->in_names[i],
           shape_str(m, e->inputs[i]->dtype, &e->inputs[i]->shape, s, sizeof s), what);
  return -1;
}

int interp_bind(const Model *m, const Entry *e, const int *ranks, const int64_t *const *shapes,
                int64_t *syms, char *err, size_t errlen) {
  for (int s = 0; s < m->nsyms; s++) syms[s] = 0;
  /* first the dims of one symbol (k × N) that is not derived (a derived size is computed from
   * its source, never taken from an input: nnc.c bind_syms), then the derived ones, then
   * check every dim */
  for (int pass = 0; pass < 2; pass++) {
    if (pass == 1 && !model_derive_syms(m, entry_syms_used(m, e), syms, err, errlen)) return -1;
    for (int i = 0; i < e->nin; i++) {
      const Shape *sh = &e->inputs[i]->shape;
      if (ranks[i] != sh->rank) return bind_fail(err, errlen, m, e, i, "wrong rank");
      for (int k = 0; k < sh->rank; k++) {
        Dim d = sh->d[k];
        int64_t got = shapes[i][k];
        if (pass == 0 && d.syms && !(d.syms & (d.syms - 1)) && !m->sym_rules[__builtin_ctz(d.syms)].derived) {
          int s = __builtin_ctz(d.syms);
          if (got < 0 || got % d.k) return bind_fail(err, errlen, m, e, i, "a symbolic dim must be a multiple of its factor");
          if (syms[s] && syms[s] != got / d.k) return bind_fail(err, errlen, m, e, i, "symbolic dim bound to two values");
          syms[s] = got / d.k;
        }
        if (pass == 1 && interp_dim(d, syms) != got) return bind_fail(err, errlen, m, e, i, "shape mismatch");
      }
    }
  }
  return 0;
}
