/* winograd.c — Winograd F(2x2, 3x3) of a 3x3 stride-1 convolution (convplan.h): the input
 * transform of conv.c's padded copy, 16 channel products as one batched LS_CONV, and the
 * output transform, with the kernel's epilogue applied as each output is computed.
 *
 * Symbolic sizes: the tiles are ceil(oh / 2) x ceil(ow / 2), counted at run time; an odd
 * output's last tile row (column) is half outside it, and only its inside half is stored.
 * Its input tile reads one row (column) past the output's window: the copy has it (zero),
 * conv_plan_rows_excess. */
#include "lower_internal.h"

static Lx *f_add(Lower *L, Lx *a, Lx *b) { return fop(L, OP_ADD, a, b); }
static Lx *f_sub(Lower *L, Lx *a, Lx *b) { return fop(L, OP_SUB, a, b); }

/* The tiles and the layout of V and M as expressions, the way convplan.c computes them for
 * static sizes (constants then). */
typedef struct WinoSizes {
  Lx *th, *tw;  /* tile rows and columns: ceil(oh / 2), ceil(ow / 2) */
  Lx *fh, *fw;  /* of them, the tiles wholly inside the output: oh / 2, ow / 2 */
  Lx *t, *tp;   /* tiles, and that count rounded up to whole vectors */
  Lx *vs, *ms;  /* floats from one of the 16 matrices of V (of M) to the next */
} WinoSizes;

static WinoSizes wino_sizes(Lower *L, const ConvPlan *c, const ConvSizes *z) {
  Lx *two = lx_i(L, 2), *one = lx_i(L, 1), *lanes = lx_i(L, c->lanes);
  WinoSizes w = {.th = ibin(L, '/', ibin(L, '+', z->oh, one), two), .tw = ibin(L, '/', ibin(L, '+', z->ow, one), two),
                 .fh = ibin(L, '/', z->oh, two), .fw = ibin(L, '/', z->ow, two)};
  w.t = ibin(L, '*', w.th, w.tw);
  w.tp = ibin(L, '*', ibin(L, '/', ibin(L, '+', w.t, lx_i(L, c->lanes - 1)), lanes), lanes);
  w.vs = ibin(L, '+', ibin(L, '*', lx_i(L, c->cin), w.tp), lx_i(L, WINOGRAD_SKEW));
  w.ms = ibin(L, '+', ibin(L, '*', lx_i(L, c->cout), w.t), lx_i(L, WINOGRAD_SKEW));
  return w;
}

/* A loop over [lo, hi), left out when that is statically empty (the partial tiles of an
 * even static size). */
static Ls *loop_unless_empty(Lower *L, Ls *parent, Lx *lo, Lx *hi, Lx **var) {
  if (lo == hi) return NULL;
  return loop(L, parent, lo, hi, lx_i(L, 1), var);
}

/* V = B^T d B with B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1], for the 4x4 input tile d
 * of each 2x2 output tile, into V[xi, ci, tile] */
static void wino_input(Lower *L, Ls *parent, const ConvPlan *c, const ConvSizes *z, const WinoSizes *w, int xbuf,
                       Lx *base, int vbuf, Lx *vbase) {
  Lx *zero = lx_i(L, 0), *one = lx_i(L, 1), *ci, *ty, *tx;
  Ls *in = loop(L, parent, zero, lx_i(L, c->cin), one, &ci);
  in = loop(L, in, zero, w->th, one, &ty);
  in = loop(L, in, zero, w->tw, one, &tx);
  in->vector_row = true;
  Lx *corner = ibin(L, '+', ibin(L, '+', base, ibin(L, '*', ci, z->chan)),
                    ibin(L, '+', ibin(L, '*', ty, ibin(L, '*', lx_i(L, 2), z->wq)), ibin(L, '*', tx, lx_i(L, 2))));
  Lx *d[4][4], *r[4][4], *v[4][4];
  for (int a = 0; a < 4; a++)
    for (int b = 0; b < 4; b++)
      d[a][b] = lx(L, (Lx){.k = LX_LOAD, .buf = xbuf,
                           .a = {ibin(L, '+', corner, ibin(L, '+', ibin(L, '*', lx_i(L, a), z->wq), lx_i(L, b)))}});
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
  Lx *tile = ibin(L, '+', ibin(L, '*', ty, w->tw), tx);
  for (int e = 0; e < 16; e++)
    store(L, in, vbuf, ibin(L, '+', ibin(L, '+', vbase, ibin(L, '*', lx_i(L, e), w->vs)), ibin(L, '+', ibin(L, '*', ci, w->tp), tile)),
          v[e / 4][e % 4]);
}

/* M[xi] = U[xi] V[xi], xi < 16, one batch of products: U is [16, groups * cout * cin]
 * (pass_winograd.c) */
static void wino_products(Lower *L, Ls *parent, const ConvPlan *c, const WinoSizes *w, Lx *const *bidx, int vbuf,
                          Lx *vbase, int mbuf, Lx *mbase) {
  const Kernel *K = L->K;
  int64_t cin = c->cin, cout = c->cout;
  Ls *cv = conv_stmt(L, cin, c->lanes, vbuf, vbase, buffer_of(L, K->gemm->in[2]), ibin(L, '*', bidx[1], lx_i(L, cout * cin)),
                     mbuf, mbase, cout);
  cv->cv.nbatch = 16;
  cv->cv.w_bstride = c->groups * cout * cin;
  cv->cv.ntaps = 1;
  if (c->symbolic) { /* one row of t tiles, its channels tp apart (conv_stmt_layout) */
    cv->cv.bstride[0] = w->vs;
    cv->cv.bstride[1] = w->ms;
    cv->cv.size[0] = cv->cv.size[2] = lx_i(L, 1);
    cv->cv.size[1] = w->t;
    cv->cv.size[3] = w->tp;
    cv->cv.nplanes = 1;
    cv->cv.tap = arena_alloc(L->m->arena, 3 * sizeof *cv->cv.tap);
    cv->cv.tap[0] = cv->cv.tap[1] = cv->cv.tap[2] = 0;
    ls_add(L, parent, cv);
    return;
  }
  int64_t t = w->t->c, tp = w->tp->c;
  cv->cv.x_bstride = w->vs->c;
  cv->cv.y_bstride = w->ms->c;
  /* half vectors when they take less time (conv_vector_cost: 49 tiles in 7 8-float FMAs, not
   * 4 16-float ones split in halves) */
  if (c->lanes >= 16 && conv_vector_cost(c->lanes / 2, t) < conv_vector_cost(c->lanes, t)) cv->cv.lanes = c->lanes / 2;
  cv->cv.tap = arena_alloc(L->m->arena, sizeof *cv->cv.tap);
  cv->cv.xplane = cv->cv.xrow = tp;
  cv->cv.oh = 1;
  cv->cv.ow = t;
  ls_add(L, parent, cv);
}

/* The output transform's state: where M is read and C written (wino_output). */
typedef struct WinoOut {
  const ConvSizes *z;
  const WinoSizes *w;
  Lx *const *bidx;
  int mbuf, obuf;
  Lx *mbase, *cbase, *co;
  bool fused;
} WinoOut;

/* Output row i of tile row ty, C = A^T M A with A^T = [1 1 1 0; 0 1 -1 -1]: the tiles wholly
 * inside the output, then (an odd ow) the last one, whose second column is outside. */
static void wino_output_row(Lower *L, Ls *parent, const ConvPlan *c, const WinoOut *o, Lx *ty, int i) {
  Lx *zero = lx_i(L, 0), *one = lx_i(L, 1), *tx;
  const WinoSizes *w = o->w;
  for (int part = 0; part < 2; part++) {
    Ls *row = part ? loop_unless_empty(L, parent, w->fw, w->tw, &tx) : loop(L, parent, zero, w->fw, one, &tx);
    if (!row) continue;
    row->vector_row = true;
    Lx *at = ibin(L, '+', ibin(L, '*', ty, w->tw), tx), *m[4][4], *s4[4];
    for (int e = 0; e < 16; e++)
      m[e / 4][e % 4] = lx(L, (Lx){.k = LX_LOAD, .buf = o->mbuf,
                                   .a = {ibin(L, '+', ibin(L, '+', o->mbase, ibin(L, '*', lx_i(L, e), w->ms)),
                                              ibin(L, '+', ibin(L, '*', o->co, w->t), at))}});
    for (int b = 0; b < 4; b++)
      s4[b] = i == 0 ? f_add(L, f_add(L, m[0][b], m[1][b]), m[2][b]) : f_sub(L, f_sub(L, m[1][b], m[2][b]), m[3][b]);
    Lx *y0 = f_add(L, f_add(L, s4[0], s4[1]), s4[2]), *y1 = f_sub(L, f_sub(L, s4[1], s4[2]), s4[3]);
    Lx *oy = ibin(L, '+', ibin(L, '*', ty, lx_i(L, 2)), lx_i(L, i)), *ox = ibin(L, '*', tx, lx_i(L, 2));
    Lx *at_c = ibin(L, '+', o->cbase, ibin(L, '+', ibin(L, '*', oy, o->z->ow), ox));
    if (o->fused) {
      y0 = conv_epilogue_value(L, c, o->bidx, o->co, oy, ox, y0);
      if (!part) y1 = conv_epilogue_value(L, c, o->bidx, o->co, oy, ibin(L, '+', ox, one), y1);
    }
    store(L, row, o->obuf, at_c, y0);
    if (!part) store(L, row, o->obuf, ibin(L, '+', at_c, one), y1);
  }
}

/* C from M, every output channel: the tile rows wholly inside the output, then (an odd oh)
 * the last one, whose second row is outside.  With the epilogue applied there when the
 * kernel's one output is the image [N, G*cout, OH, OW] (a conv's bias, activation,
 * residual): C is then never stored.  Returns whether it was. */
static bool wino_output(Lower *L, Ls *parent, const ConvPlan *c, WinoOut *o, Lx *item) {
  Lx *zero = lx_i(L, 0), *one = lx_i(L, 1), *ty;
  o->fused = conv_epilogue_inline(L, c);
  o->obuf = o->fused ? buffer_of(L, L->K->outs[0]) : L->gemm_cbuf;
  Ls *out = loop(L, parent, zero, lx_i(L, c->cout), one, &o->co);
  Lx *plane = ibin(L, '*', o->z->oh, o->z->ow);
  o->cbase = ibin(L, '+', ibin(L, '*', item, ibin(L, '*', lx_i(L, c->cout), plane)), ibin(L, '*', o->co, plane));
  Ls *rows = loop(L, out, zero, o->w->fh, one, &ty);
  for (int i = 0; i < 2; i++) wino_output_row(L, rows, c, o, ty, i);
  Ls *last = loop_unless_empty(L, out, o->w->fh, o->w->th, &ty);
  if (last) wino_output_row(L, last, c, o, ty, 0);
  return o->fused;
}

/* Winograd F(2x2, 3x3) of one (image, group) `item` (convplan.h), from its padded copy at
 * `base`, V and M at their slots' place `scratch` (the copy's: conv.c conv_copy_at):
 *   V[xi, ci, tile] = (B^T d B)[xi]  for the 4x4 input tile d of each 2x2 output tile
 *   M[xi] = U[xi] V[xi]              16 products over the channels (the conv tile kernel, one tap)
 *   C[co, 2ty + i, 2tx + j] = (A^T M[., co, tile] A)[i][j]
 * Tiles along a row run as vectors (vector_row, static sizes: the input tile's columns are
 * read every other element, the two output columns stored interleaved); the epilogue then
 * reads C. */
bool lower_winograd(Lower *L, Ls *parent, const ConvPlan *c, const ConvSizes *z, Lx *const *bidx, int xbuf, Lx *base,
                    Lx *item, Lx *scratch) {
  const Kernel *K = L->K;
  WinoSizes w = wino_sizes(L, c, z);
  int vbuf = add_buf(L, (LBuf){.k = LB_SLOT, .dtype = DT_F32, .index = K->conv_slot[0]});
  int mbuf = add_buf(L, (LBuf){.k = LB_SLOT, .dtype = DT_F32, .index = K->conv_slot[1]});
  Lx *vbase = ibin(L, '*', scratch, ibin(L, '*', lx_i(L, 16), w.vs));
  Lx *mbase = ibin(L, '*', scratch, ibin(L, '*', lx_i(L, 16), w.ms));
  wino_input(L, parent, c, z, &w, xbuf, base, vbuf, vbase);
  wino_products(L, parent, c, &w, bidx, vbuf, vbase, mbuf, mbase);
  WinoOut o = {.z = z, .w = &w, .bidx = bidx, .mbuf = mbuf, .mbase = mbase};
  return wino_output(L, parent, c, &o, item);
}
