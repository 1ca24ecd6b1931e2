/* winograd.c — Winograd F(2x2, 3x3) of a 3x3 stride-1 convolution (convplan.h): the input
 * transform of conv.c's padded copy, 16 channel products as one batched LS_CONV, and the
 * output transform, with the kernel's epilogue applied as each output is computed. */
#include "lower_internal.h"

static Lx *f_add(Lower *L, Lx *a, Lx *b) { return fop(L, OP_ADD, a, b); }
static Lx *f_sub(Lower *L, Lx *a, Lx *b) { return fop(L, OP_SUB, a, b); }

/* Winograd F(2x2, 3x3) of one (image, group) (convplan.h), from its padded copy at `base`:
 *   V[xi, ci, tile] = (B^T d B)[xi]  for the 4x4 input tile d of each 2x2 output tile
 *   M[xi] = U[xi] V[xi]              16 products over the channels (the conv tile kernel, one tap)
 *   C[co, 2ty + i, 2tx + j] = (A^T M[., co, tile] A)[i][j]
 * Tiles along a row run as vectors (vector_row: the input tile's columns are read every
 * other element, the two output columns stored interleaved); the epilogue then reads C. */
bool lower_winograd(Lower *L, Ls *parent, const ConvPlan *c, Lx *const *bidx, int xbuf, Lx *base, Lx *item) {
  const Kernel *K = L->K;
  Lx *zero = lx_i(L, 0), *one = lx_i(L, 1), *ci, *co, *ty, *tx;
  int64_t tw = c->ow / 2, t = conv_plan_tiles(c), tp = conv_plan_tiles_padded(c), cin = c->cin, cout = c->cout;
  int vbuf = add_buf(L, (LBuf){.k = LB_SLOT, .dtype = DT_F32, .index = K->wino_slot[0]});
  int mbuf = add_buf(L, (LBuf){.k = LB_SLOT, .dtype = DT_F32, .index = K->wino_slot[1]});
  int64_t vs = conv_plan_winograd_v_stride(c), ms = conv_plan_winograd_m_stride(c);
  Lx *vbase = ibin(L, '*', item, lx_i(L, 16 * vs)), *mbase = ibin(L, '*', item, lx_i(L, 16 * ms));
  /* V = B^T d B with B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1] */
  Ls *in = loop(L, parent, zero, lx_i(L, cin), one, &ci);
  in = loop(L, in, zero, lx_i(L, c->oh / 2), one, &ty);
  in = loop(L, in, zero, lx_i(L, tw), one, &tx);
  in->vector_row = true;
  Lx *corner = ibin(L, '+', ibin(L, '+', base, ibin(L, '*', ci, lx_i(L, conv_plan_channel_floats(c)))),
                    ibin(L, '+', ibin(L, '*', ty, lx_i(L, 2 * c->wq)), ibin(L, '*', tx, lx_i(L, 2))));
  Lx *d[4][4], *r[4][4], *v[4][4];
  for (int a = 0; a < 4; a++)
    for (int b = 0; b < 4; b++)
      d[a][b] = lx(L, (Lx){.k = LX_LOAD, .buf = xbuf, .a = {ibin(L, '+', corner, lx_i(L, a * c->wq + b))}});
  for (int b = 0; b < 4; b++) {
    r[0][b] = f_sub(L, d[0][b], d[2][b]);
    r[1][b] = f_add(L, d[1][b], d[2][b]);
    r[2][b] = f_sub(L, d[2][b], d[1][b]);
    r[3][b] = f_sub(L, d[1][b], d[3][b]);
  }
  for (int a = 0; a < 4; a++) {
    v[a][0] = f_sub(L, r[a][0], r[a][2]);
    v[a][1] = f_add(L, r[a][1], r[a][2]);
    v[a][2] = f_sub(L, r[a][2], r[a][1]);
    v[a][3] = f_sub(L, r[a][1], r[a][3]);
  }
  Lx *tile = ibin(L, '+', ibin(L, '*', ty, lx_i(L, tw)), tx);
  for (int e = 0; e < 16; e++)
    store(L, in, vbuf, ibin(L, '+', ibin(L, '+', vbase, lx_i(L, e * vs)), ibin(L, '+', ibin(L, '*', ci, lx_i(L, tp)), tile)),
          v[e / 4][e % 4]);
  /* M[xi] = U[xi] V[xi], xi < 16, one batch of products: U is [16, groups * cout * cin]
   * (pass_winograd.c) */
  Ls *cv = conv_stmt(L, c->cin, c->lanes, vbuf, vbase, buffer_of(L, K->gemm->in[2]),
                     ibin(L, '*', bidx[1], lx_i(L, cout * cin)), mbuf, mbase, cout);
  cv->cv.nbatch = 16;
  cv->cv.x_bstride = vs;
  cv->cv.w_bstride = c->groups * cout * cin;
  cv->cv.y_bstride = ms;
  cv->cv.ntaps = 1;
  /* half vectors when they waste fewer lanes on the tiles (49 tiles: 56 lanes, not 64) */
  if (c->lanes >= 16 && (t + 7) / 8 * 8 < (t + c->lanes - 1) / c->lanes * c->lanes) cv->cv.lanes = c->lanes / 2;
  cv->cv.tap = arena_alloc(L->m->arena, sizeof *cv->cv.tap);
  cv->cv.xplane = cv->cv.xrow = tp;
  cv->cv.oh = 1;
  cv->cv.ow = t;
  ls_add(L, parent, cv);
  /* C = A^T M A with A^T = [1 1 1 0; 0 1 -1 -1], one output row i of each tile row at a time;
   * with the epilogue applied there when the kernel's one output is the image [N, G*cout,
   * OH, OW] (a conv's bias, activation, residual): C is then never stored */
  INode *root = K->outs[0];
  const Shape *rs = &root->shape;
  bool fused = L->gemm && K->nouts == 1 && rs->rank == 4 && dim_eq(rs->d[0], K->gemm->shape.d[0]) &&
               dim_is(rs->d[1], c->groups * cout) && dim_is(rs->d[2], c->oh) && dim_is(rs->d[3], c->ow);
  int obuf = fused ? buffer_of(L, root) : L->gemm_cbuf;
  Ls *out = loop(L, parent, zero, lx_i(L, cout), one, &co);
  out = loop(L, out, zero, lx_i(L, c->oh / 2), one, &ty);
  Lx *cbase = ibin(L, '+', ibin(L, '*', item, lx_i(L, cout * c->oh * c->ow)), ibin(L, '*', co, lx_i(L, c->oh * c->ow)));
  for (int i = 0; i < 2; i++) {
    Ls *row = loop(L, out, zero, lx_i(L, tw), one, &tx);
    row->vector_row = true;
    Lx *at = ibin(L, '+', ibin(L, '*', ty, lx_i(L, tw)), tx), *m[4][4], *s4[4];
    for (int e = 0; e < 16; e++)
      m[e / 4][e % 4] = lx(L, (Lx){.k = LX_LOAD, .buf = mbuf,
                                   .a = {ibin(L, '+', ibin(L, '+', mbase, lx_i(L, e * ms)), ibin(L, '+', ibin(L, '*', co, lx_i(L, t)), at))}});
    for (int b = 0; b < 4; b++)
      s4[b] = i == 0 ? f_add(L, f_add(L, m[0][b], m[1][b]), m[2][b]) : f_sub(L, f_sub(L, m[1][b], m[2][b]), m[3][b]);
    Lx *y0 = f_add(L, f_add(L, s4[0], s4[1]), s4[2]), *y1 = f_sub(L, f_sub(L, s4[1], s4[2]), s4[3]);
    Lx *o = ibin(L, '+', cbase, ibin(L, '+', ibin(L, '*', ibin(L, '+', ibin(L, '*', ty, lx_i(L, 2)), lx_i(L, i)), lx_i(L, c->ow)),
                                     ibin(L, '*', tx, lx_i(L, 2))));
    if (fused) {
      Lx *ri[4] = {bidx[0], ibin(L, '+', ibin(L, '*', bidx[1], lx_i(L, cout)), co),
                   ibin(L, '+', ibin(L, '*', ty, lx_i(L, 2)), lx_i(L, i)), ibin(L, '*', tx, lx_i(L, 2))};
      L->gemm_value = y0;
      y0 = value(L, root, ri);
      ri[3] = ibin(L, '+', ri[3], one);
      L->gemm_value = y1;
      y1 = value(L, root, ri);
      L->gemm_value = NULL;
      L->nmemo = 0;
    }
    store(L, row, obuf, o, y0);
    store(L, row, obuf, ibin(L, '+', o, one), y1);
  }
  return fused;
}
