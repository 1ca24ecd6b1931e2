/* roi_align.c — torchvision.ops.roi_align (float32) as loops over boxes, bins and channels:
 * each bilinear sample's corners and weights are computed once for all channels. */
#include "lower_internal.h"

/* One sample of torchvision's bilinear_interpolate at float (y, x), in float32: the offsets
 * of its four corners in a feature plane, their weights, and whether it falls outside.  The
 * same for every channel. */
typedef struct RoiSample { Lx *off[4], *w[4], *outside; } RoiSample;

static RoiSample roi_sample(Lower *L, Dim H, Dim W, Lx *y, Lx *x) {
  Lx *one = lx_f(L, 1.0), *zero = lx_f(L, 0.0);
  RoiSample r;
  r.outside = fop(L, OP_OR, fop(L, OP_OR, fop(L, OP_LT, y, lx_f(L, -1.0)), fop(L, OP_GT, y, itof(L, lx_dim(L, H)))),
                  fop(L, OP_OR, fop(L, OP_LT, x, lx_f(L, -1.0)), fop(L, OP_GT, x, itof(L, lx_dim(L, W)))));
  Lx *c[2], *lo[2], *hi[2], *l[2];
  c[0] = fop(L, OP_MAX, y, zero);
  c[1] = fop(L, OP_MAX, x, zero);
  for (int a = 0; a < 2; a++) { /* the size is known at run time on a symbolic feature map */
    Lx *last = ibin(L, '-', lx_dim(L, a ? W : H), lx_i(L, 1));
    Lx *i0 = ftoi(L, c[a]);
    Lx *at_edge = ibin(L, '<', ibin(L, '-', last, lx_i(L, 1)), i0); /* i0 >= size - 1 */
    lo[a] = select3(L, at_edge, last, i0);
    hi[a] = select3(L, at_edge, last, ibin(L, '+', i0, lx_i(L, 1)));
    Lx *pos = select3(L, at_edge, itof(L, last), c[a]);
    l[a] = fop(L, OP_SUB, pos, itof(L, lo[a]));
  }
  Lx *hy = fop(L, OP_SUB, one, l[0]), *hx = fop(L, OP_SUB, one, l[1]);
  r.w[0] = fop(L, OP_MUL, hy, hx);
  r.w[1] = fop(L, OP_MUL, hy, l[1]);
  r.w[2] = fop(L, OP_MUL, l[0], hx);
  r.w[3] = fop(L, OP_MUL, l[0], l[1]);
  for (int i = 0; i < 4; i++)
    r.off[i] = ibin(L, '+', ibin(L, '*', i < 2 ? lo[0] : hi[0], lx_dim(L, W)), i % 2 ? hi[1] : lo[1]);
  return r;
}

/* The sample's value in channel c of image b's features: [N, C, H, W], or [N, H, W, C] when
 * channels_last (roi_sample's offsets are y * W + x either way). */
static Lx *roi_gather(Lower *L, int fbuf, int64_t C, Dim HW, bool channels_last, Lx *b, Lx *c, const RoiSample *r) {
  Lx *v[4], *hw = lx_dim(L, HW);
  for (int i = 0; i < 4; i++) {
    Lx *at = channels_last ? ibin(L, '+', ibin(L, '*', ibin(L, '+', ibin(L, '*', b, hw), r->off[i]), lx_i(L, C)), c)
                           : ibin(L, '+', ibin(L, '*', ibin(L, '+', ibin(L, '*', b, lx_i(L, C)), c), hw), r->off[i]);
    v[i] = lx(L, (Lx){.k = LX_LOAD, .buf = fbuf, .a = {at}});
  }
  Lx *sum = fop(L, OP_ADD, fop(L, OP_ADD, fop(L, OP_ADD, fop(L, OP_MUL, r->w[0], v[0]), fop(L, OP_MUL, r->w[1], v[1])),
                                fop(L, OP_MUL, r->w[2], v[2])), fop(L, OP_MUL, r->w[3], v[3]));
  return select3(L, r->outside, lx_f(L, 0.0), sum);
}

/* ceil of a float, as an integer: trunc(a) + (trunc(a) < a) */
static Lx *ceil_int(Lower *L, Lx *a) {
  Lx *t = ftoi(L, a);
  return ibin(L, '+', t, ftoi(L, fop(L, OP_LT, itof(L, t), a)));
}

/* roi_align (torchvision.ops.roi_align, float32): for each box and output bin, the mean of
 * a grid of bilinear samples; the grid size is sampling_ratio, or adaptive (ceil(roi size /
 * bins), so data-dependent loop bounds).  A sample's position and weights are computed once
 * for all channels: the channel loop is innermost and sums into the output, in the order of
 * the samples, then divides by their count.  A fixed grid of at most ROI_UNROLLED samples is
 * unrolled: the channel loop sums all of them in registers. */
#define ROI_UNROLLED 16
void lower_roi_align(Lower *L, Ls *body) {
  INode *n = L->K->outs[0], *feat = n->in[0], *boxes = n->in[1];
  int fbuf = buffer_of(L, feat), bbuf = buffer_of(L, boxes), obuf = buffer_of(L, n);
  if (fbuf < 0 || bbuf < 0) unreachable("roi_align operand not in memory");
  bool last = n->i[1];
  const Shape *fs = &feat->shape;
  int64_t C = n->shape.d[1].k, PH = n->shape.d[2].k, PW = n->shape.d[3].k;
  Dim H = fs->d[last ? 1 : 2], W = fs->d[last ? 2 : 3], HW = dim_mul(L->m, H, W);
  Lx *k, *ph, *pw, *zero = lx_i(L, 0), *one = lx_i(L, 1);
  Ls *blk = loop(L, body, zero, lx_dim(L, n->shape.d[0]), one, &k);
  blk = loop(L, blk, zero, lx_i(L, PH), one, &ph);
  blk = loop(L, blk, zero, lx_i(L, PW), one, &pw);
  Lx *box[5];
  for (int i = 0; i < 5; i++)
    box[i] = lx(L, (Lx){.k = LX_LOAD, .buf = bbuf, .a = {ibin(L, '+', ibin(L, '*', k, lx_i(L, 5)), lx_i(L, i))}});
  Lx *scale = lx_f(L, (float)n->f[0]), *off = lx_f(L, n->flag ? 0.5 : 0.0);
  Lx *x1 = fop(L, OP_SUB, fop(L, OP_MUL, box[1], scale), off), *y1 = fop(L, OP_SUB, fop(L, OP_MUL, box[2], scale), off);
  Lx *x2 = fop(L, OP_SUB, fop(L, OP_MUL, box[3], scale), off), *y2 = fop(L, OP_SUB, fop(L, OP_MUL, box[4], scale), off);
  Lx *rw = fop(L, OP_SUB, x2, x1), *rh = fop(L, OP_SUB, y2, y1);
  if (!n->flag) { /* legacy: force malformed boxes to 1x1 */
    rw = fop(L, OP_MAX, rw, lx_f(L, 1.0));
    rh = fop(L, OP_MAX, rh, lx_f(L, 1.0));
  }
  Lx *bh = fop(L, OP_DIV, rh, lx_f(L, (double)PH)), *bw = fop(L, OP_DIV, rw, lx_f(L, (double)PW));
  Lx *gh = n->i[0] > 0 ? lx_i(L, n->i[0]) : ceil_int(L, fop(L, OP_DIV, rh, lx_f(L, (double)PH)));
  Lx *gw = n->i[0] > 0 ? lx_i(L, n->i[0]) : ceil_int(L, fop(L, OP_DIV, rw, lx_f(L, (double)PW)));
  Lx *count = itof(L, ibin(L, 'M', ibin(L, '*', gh, gw), one));
  /* the batch index is data: checked (CHECK_INDEX), a bad one fails the call */
  Lx *image = ftoi(L, lx(L, (Lx){.k = LX_OP, .op = OP_CHECK_INDEX, .f = {(double)n->i[2]},
                                 .a = {box[0], itof(L, lx_dim(L, fs->d[0]))}}));
  eval(L, blk, count);
  eval(L, blk, image);
#define OUT(c) ibin(L, '+', ibin(L, '*', ibin(L, '+', ibin(L, '*', ibin(L, '+', ibin(L, '*', k, lx_i(L, C)), c), lx_i(L, PH)), ph), lx_i(L, PW)), pw)
  Lx *half = lx_f(L, 0.5), *sc;
#define SAMPLE_Y(iy) fop(L, OP_ADD, fop(L, OP_ADD, y1, fop(L, OP_MUL, itof(L, ph), bh)), \
                         fop(L, OP_DIV, fop(L, OP_MUL, fop(L, OP_ADD, itof(L, iy), half), bh), itof(L, gh)))
#define SAMPLE_X(ix) fop(L, OP_ADD, fop(L, OP_ADD, x1, fop(L, OP_MUL, itof(L, pw), bw)), \
                         fop(L, OP_DIV, fop(L, OP_MUL, fop(L, OP_ADD, itof(L, ix), half), bw), itof(L, gw)))
  if (n->i[0] > 0 && n->i[0] <= ROI_UNROLLED / n->i[0]) {
    /* a fixed grid: every sample's corners and weights first, then one pass over the
     * channels that sums the samples in order and stores each output once */
    RoiSample smp[ROI_UNROLLED];
    int ns = 0;
    for (int64_t iy = 0; iy < n->i[0]; iy++)
      for (int64_t ix = 0; ix < n->i[0]; ix++, ns++) {
        smp[ns] = roi_sample(L, H, W, SAMPLE_Y(lx_i(L, iy)), SAMPLE_X(lx_i(L, ix)));
        for (int i = 0; i < 4; i++) {
          eval(L, blk, smp[ns].off[i]);
          eval(L, blk, smp[ns].w[i]);
        }
        eval(L, blk, smp[ns].outside);
      }
    Ls *lc = loop(L, blk, zero, lx_i(L, C), one, &sc);
    /* channels-last: the channels of a corner are contiguous, the row runs as vectors (its
     * outputs H*W apart stored lane by lane); else every corner would be a gather */
    lc->vector_row = last && C <= SHORT_ROW;
    lc->scalar = !lc->vector_row;
    Lx *sum = NULL;
    for (int i = 0; i < ns; i++) {
      Lx *v = roi_gather(L, fbuf, C, HW, last, image, sc, &smp[i]);
      sum = sum ? fop(L, OP_ADD, sum, v) : v;
    }
    store(L, lc, obuf, OUT(sc), fop(L, OP_DIV, sum, count));
    return;
  }
  Lx *c;
  Ls *lz = loop(L, blk, zero, lx_i(L, C), one, &c);
  store(L, lz, obuf, OUT(c), lx_f(L, 0.0));
  Lx *iy, *ix;
  Ls *ly = loop(L, blk, zero, gh, one, &iy);
  Ls *lxl = loop(L, ly, zero, gw, one, &ix);
  RoiSample smp = roi_sample(L, H, W, SAMPLE_Y(iy), SAMPLE_X(ix));
  for (int i = 0; i < 4; i++) {
    eval(L, lxl, smp.off[i]);
    eval(L, lxl, smp.w[i]);
  }
  eval(L, lxl, smp.outside);
  Ls *lc = loop(L, lxl, zero, lx_i(L, C), one, &sc);
  lc->scalar = true;
  Lx *v = roi_gather(L, fbuf, C, HW, last, image, sc, &smp);
  store(L, lc, obuf, OUT(sc), fop(L, OP_ADD, lx(L, (Lx){.k = LX_LOAD, .buf = obuf, .a = {OUT(sc)}}), v));
  Lx *dc;
  Ls *ld = loop(L, blk, zero, lx_i(L, C), one, &dc);
  store(L, ld, obuf, OUT(dc), fop(L, OP_DIV, lx(L, (Lx){.k = LX_LOAD, .buf = obuf, .a = {OUT(dc)}}), count));
#undef OUT
#undef SAMPLE_Y
#undef SAMPLE_X
}
