/* conv.c — a convolution kernel (convplan.h) as loops: the padded, phase-split copy of each
 * (image, group)'s input channels into scratch, then one LS_CONV statement that codegen
 * emits as the register-tiled direct convolution (or winograd.c's transforms around a
 * batch of such products).  conv_stmt also serves gemm.c's row tiles. */
#include "target.h"
#include "lower_internal.h"

/* One stride phase (ph, pw) of every input channel in the padded copy (lower_conv_copy). */
static void lower_conv_copy_phase(Lower *L, Ls *chan, const ConvPlan *c, Lx *const *bidx, int xbuf, Lx *base, Lx *ci,
                                  int64_t ph, int64_t pw) {
  Lx *zero = lx_i(L, 0), *one = lx_i(L, 1), *hh, *ww;
  int64_t H = c->x->shape.d[2].k, W = c->x->shape.d[3].k, sw = c->stride[1];
  Ls *s = loop(L, chan, zero, lx_i(L, c->hq), one, &hh);
  s->rolled = true;
  Lx *plane = ibin(L, '+', ibin(L, '*', ci, lx_i(L, c->nphase[0] * c->nphase[1])), lx_i(L, ph * c->nphase[1] + pw));
  Lx *row = ibin(L, '+', base, ibin(L, '*', ibin(L, '+', ibin(L, '*', plane, lx_i(L, c->hq)), hh), lx_i(L, c->wq)));
  /* columns ww with input column iw = ww*sw + pw - pad_l inside [0, W): [lo, hi), static
   * for a static phase; the zero padding on either side is stored apart, so the row between
   * loads a plain run of X (every sw-th element: a vector row) */
  int64_t first = c->pad[1] - pw; /* ww*sw >= first */
  int64_t lo = first <= 0 ? 0 : (first + sw - 1) / sw;
  lo = lo < c->wq ? lo : c->wq;
  int64_t hi = (first + W - 1 + sw) / sw; /* ww*sw <= first + W - 1 */
  hi = hi < c->wq ? hi : c->wq;
  hi = hi > lo ? hi : lo;
  Ls *left = loop(L, s, zero, lx_i(L, lo), one, &ww);
  left->scalar = left->rolled = true;
  store(L, left, xbuf, ibin(L, '+', row, ww), lx_f(L, 0.0));
  Ls *mid = loop(L, s, lx_i(L, lo), lx_i(L, hi), one, &ww);
  mid->vector_row = hi - lo <= SHORT_ROW;
  Lx *ih = ibin(L, '-', ibin(L, '+', ibin(L, '*', hh, lx_i(L, c->stride[0])), lx_i(L, ph)), lx_i(L, c->pad[0]));
  Lx *iw = ibin(L, '-', ibin(L, '+', ibin(L, '*', ww, lx_i(L, sw)), lx_i(L, pw)), lx_i(L, c->pad[1]));
  Lx *xi[4] = {bidx[0], ibin(L, '+', ibin(L, '*', bidx[1], lx_i(L, c->cin)), ci), clamp(L, ih, 0, H - 1), iw};
  Lx *row_inside = ibin(L, '&', ibin(L, '<', lx_i(L, -1), ih), ibin(L, '<', ih, lx_i(L, H)));
  store(L, mid, xbuf, ibin(L, '+', row, ww), select3(L, row_inside, value(L, c->x, xi), lx_f(L, 0.0)));
  L->nmemo = 0;
  Ls *right = loop(L, s, lx_i(L, hi), lx_i(L, c->wq), one, &ww);
  right->scalar = right->rolled = true;
  store(L, right, xbuf, ibin(L, '+', row, ww), lx_f(L, 0.0));
}

/* The padded, phase-split copy of an (image, group)'s input channels (convplan.h), each
 * stride phase in its own loops: their column ranges are then static. */
static void lower_conv_copy(Lower *L, Ls *parent, const ConvPlan *c, Lx *const *bidx, int xbuf, Lx *base) {
  Lx *ci;
  Ls *chan = loop(L, parent, lx_i(L, 0), lx_i(L, c->cin), lx_i(L, 1), &ci);
  for (int64_t ph = 0; ph < c->nphase[0]; ph++)
    for (int64_t pw = 0; pw < c->nphase[1]; pw++) lower_conv_copy_phase(L, chan, c, bidx, xbuf, base, ci, ph, pw);
}

/* The direct convolution's register-tiled kernel (codegen emit_conv) over x (channel planes
 * of xplane floats) and weight rows of cin * ntaps, into y: cin input channels, vectors of
 * `lanes` floats. */
Ls *conv_stmt(Lower *L, int64_t cin, int lanes, int x, Lx *x_off, int w, Lx *w_off, int y, Lx *y_off, int64_t cout) {
  Ls *cv = ls_new(L, LS_CONV);
  if (w < 0 || x < 0) unreachable("convolution operands not in memory");
  cv->cv.x = x;
  cv->cv.w = w;
  cv->cv.y = y;
  cv->cv.x_off = x_off;
  cv->cv.w_off = w_off;
  cv->cv.y_off = y_off;
  cv->cv.cout = cout;
  cv->cv.cin = cin;
  cv->cv.lanes = lanes;
  cv->cv.nbatch = cv->cv.parts = 1;
  cv->cv.add = -1;
  /* a tile of output channels x vectors of output columns in registers, leaving room for the
   * loaded inputs and broadcast weights */
  int host, regs;
  target_host_simd(&host, &regs);
  cv->cv.tile_co = regs >= 32 ? 4 : 3;
  cv->cv.tile_vec = regs >= 32 ? 4 : 3;
  return cv;
}

/* Returns whether the kernel's epilogue was applied too (Winograd's output transform). */
bool lower_conv(Lower *L, Ls *parent, const ConvPlan *c, Lx *const *bidx) {
  const Kernel *K = L->K;
  INode *g = K->gemm, *A = g->in[0];
  const Shape *s = &g->shape;
  int xbuf = buffer_of(L, K->prologue);
  Lx *item = ibin(L, '+', ibin(L, '*', bidx[0], lx_i(L, c->groups)), bidx[1]);
  Lx *base = ibin(L, '*', item, lx_i(L, conv_plan_copy_floats(c)));
  lower_conv_copy(L, parent, c, bidx, xbuf, base);
  if (c->winograd) return lower_winograd(L, parent, c, bidx, xbuf, base, item);
  int64_t cout = s->d[2].k, ntaps = c->kh * c->kw;
  Ls *cv = conv_stmt(L, c->cin, c->lanes, xbuf, base, buffer_of(L, A), batch_offset(L, s, 2, bidx, &A->shape), L->gemm_cbuf,
                     ibin(L, '*', item, lx_i(L, cout * s->d[3].k)), cout);
  cv->cv.ntaps = ntaps;
  cv->cv.xplane = conv_plan_channel_floats(c);
  cv->cv.xrow = c->wq;
  cv->cv.oh = c->oh;
  cv->cv.ow = c->ow;
  cv->cv.tap = arena_alloc(L->m->arena, ntaps * sizeof *cv->cv.tap);
  for (int64_t i = 0; i < c->kh; i++)
    for (int64_t j = 0; j < c->kw; j++) cv->cv.tap[i * c->kw + j] = conv_plan_tap(c, i, j);
  ls_add(L, parent, cv);
  return false;
}
