/* conv.c — a convolution kernel (convplan.h) as loops: the padded, phase-split copy of each
 * (image, group)'s input channels into scratch, then one LS_CONV statement that codegen
 * emits as the register-tiled direct convolution (or winograd.c's transforms around a
 * batch of such products).  conv_stmt also serves gemm.c's row tiles. */
#include "target.h"
#include "lower_internal.h"

/* The copy's layout as expressions: constants for a static plan, else computed from the
 * run-time sizes (convplan.h) the way convplan.c computes the static ones. */
static ConvSizes conv_sizes(Lower *L, const ConvPlan *c) {
  const Shape *xs = &c->x->shape;
  ConvSizes z = {.H = lx_dim(L, xs->d[2]), .W = lx_dim(L, xs->d[3]), .oh = lx_dim(L, c->ohd), .ow = lx_dim(L, c->owd)};
  if (!c->symbolic) {
    z.hq = lx_i(L, c->hq);
    z.wq = lx_i(L, c->wq);
    z.chan = lx_i(L, conv_plan_channel_floats(c));
    z.copy = lx_i(L, conv_plan_copy_floats(c));
    return z;
  }
  Lx *chunks = ibin(L, '/', ibin(L, '+', z.ow, lx_i(L, c->lanes - 1)), lx_i(L, c->lanes));
  z.hq = ibin(L, '+', z.oh, lx_i(L, conv_plan_rows_excess(c)));
  z.wq = ibin(L, '+', ibin(L, '*', chunks, lx_i(L, c->lanes)), lx_i(L, c->shift[1]));
  z.chan = ibin(L, '*', lx_i(L, c->nphase[0] * c->nphase[1]), ibin(L, '*', z.hq, z.wq));
  z.copy = ibin(L, '*', lx_i(L, c->cin), z.chan);
  return z;
}

/* Columns ww of phase pw whose input column ww*sw + pw - pad_l lies inside [0, W): [lo, hi),
 * clamped to the plane's wq columns. */
static void conv_copy_columns(Lower *L, const ConvPlan *c, const ConvSizes *z, int64_t pw, Lx **lo, Lx **hi) {
  int64_t sw = c->stride[1], first = c->pad[1] - pw; /* ww*sw >= first */
  int64_t lo_c = first <= 0 ? 0 : (first + sw - 1) / sw;
  if (!c->symbolic) { /* static: constants */
    int64_t W = c->x->shape.d[3].k, wq = c->wq;
    lo_c = lo_c < wq ? lo_c : wq;
    int64_t hi_c = (first + W - 1 + sw) / sw; /* ww*sw <= first + W - 1 */
    hi_c = hi_c < wq ? hi_c : wq;
    *lo = lx_i(L, lo_c);
    *hi = lx_i(L, hi_c > lo_c ? hi_c : lo_c);
    return;
  }
  /* first + W - 1 + sw >= 0 (W >= 1, first >= 1 - sw): a plain division.  The run-time ow is
   * at least 1 (the derived sizes are checked), so wq >= lanes + shift: no clamp below that */
  *lo = lo_c <= c->lanes + c->shift[1] ? lx_i(L, lo_c) : ibin(L, 'm', lx_i(L, lo_c), z->wq);
  Lx *h = ibin(L, '/', ibin(L, '+', z->W, lx_i(L, first - 1 + sw)), lx_i(L, sw));
  *hi = ibin(L, 'M', ibin(L, 'm', h, z->wq), *lo);
}

/* The zero padding right of the columns inside X, [hi, wq) of a row of a symbolic plan's copy,
 * as a vector row (codegen: whole vectors, the last one ending at wq) over at least a vector's
 * columns: from hi, or from wq - lanes when the padding is shorter, over columns the rest of
 * the row rewrites after it.  A loop over the few run-time columns became a memset call per
 * row.  wq >= lanes (convplan.h: a whole vector of output columns at least). */
static void lower_conv_copy_right_pad(Lower *L, Ls *s, const ConvPlan *c, const ConvSizes *z, int xbuf, Lx *row, Lx *hi) {
  Lx *ww, *from = ibin(L, 'M', ibin(L, 'm', hi, ibin(L, '-', z->wq, lx_i(L, c->lanes))), lx_i(L, 0));
  Ls *right = loop(L, s, from, z->wq, lx_i(L, 1), &ww);
  right->vector_row = true;
  store(L, right, xbuf, ibin(L, '+', row, ww), lx_f(L, 0.0));
}

/* Row hh of stride phase (ph, pw) of input channel ci in the padded copy (lower_conv_copy),
 * into loop s. */
static void lower_conv_copy_row(Lower *L, Ls *s, const ConvPlan *c, const ConvSizes *z, Lx *const *bidx, int xbuf, Lx *base,
                                Lx *ci, Lx *hh, int64_t ph, int64_t pw) {
  Lx *zero = lx_i(L, 0), *one = lx_i(L, 1), *ww, *lo, *hi;
  int64_t sw = c->stride[1];
  Lx *plane = ibin(L, '+', ibin(L, '*', ci, lx_i(L, c->nphase[0] * c->nphase[1])), lx_i(L, ph * c->nphase[1] + pw));
  Lx *row = ibin(L, '+', base, ibin(L, '*', ibin(L, '+', ibin(L, '*', plane, z->hq), hh), z->wq));
  /* the zero padding on either side of the columns inside X is stored apart, so the row
   * between loads a plain run of X (every sw-th element: a vector row) */
  conv_copy_columns(L, c, z, pw, &lo, &hi);
  if (c->symbolic) lower_conv_copy_right_pad(L, s, c, z, xbuf, row, hi);
  Ls *left = loop(L, s, zero, lo, one, &ww);
  left->scalar = left->rolled = true;
  store(L, left, xbuf, ibin(L, '+', row, ww), lx_f(L, 0.0));
  Ls *mid = loop(L, s, lo, hi, one, &ww);
  mid->vector_row = c->symbolic || (lo->k == LX_I && hi->k == LX_I && hi->c - lo->c <= SHORT_ROW);
  Lx *ih = ibin(L, '-', ibin(L, '+', ibin(L, '*', hh, lx_i(L, c->stride[0])), lx_i(L, ph)), lx_i(L, c->pad[0]));
  Lx *iw = ibin(L, '-', ibin(L, '+', ibin(L, '*', ww, lx_i(L, sw)), lx_i(L, pw)), lx_i(L, c->pad[1]));
  Dim H = c->x->shape.d[2];
  Lx *xi[4] = {bidx[0], ibin(L, '+', ibin(L, '*', bidx[1], lx_i(L, c->cin)), ci),
               H.syms ? clamp_dim(L, ih, H) : clamp(L, ih, 0, H.k - 1), iw};
  Lx *row_inside = H.syms ? inside_dim(L, ih, H) : ibin(L, '&', ibin(L, '<', lx_i(L, -1), ih), ibin(L, '<', ih, lx_i(L, H.k)));
  store(L, mid, xbuf, ibin(L, '+', row, ww), select3(L, row_inside, value(L, c->x, xi), lx_f(L, 0.0)));
  L->nmemo = 0;
  if (c->symbolic) return;
  Ls *right = loop(L, s, hi, z->wq, one, &ww);
  right->scalar = right->rolled = true;
  store(L, right, xbuf, ibin(L, '+', row, ww), lx_f(L, 0.0));
}

/* The padded, phase-split copy of an (image, group)'s input channels (convplan.h), each
 * stride phase's row in its own loops: their column ranges are then static (for static
 * sizes).  Row hh of every phase in turn: they read input rows hh * sh - pad_t .. in order,
 * each once (phase by phase, a 112x112 stride-2 depthwise layer read the even rows, then
 * the odd ones, and every row twice). */
static void lower_conv_copy(Lower *L, Ls *parent, const ConvPlan *c, const ConvSizes *z, Lx *const *bidx, int xbuf,
                            Lx *base) {
  Lx *ci, *hh;
  Ls *chan = loop(L, parent, lx_i(L, 0), lx_i(L, c->cin), lx_i(L, 1), &ci);
  Ls *rows = loop(L, chan, lx_i(L, 0), z->hq, lx_i(L, 1), &hh);
  rows->rolled = true;
  for (int64_t ph = 0; ph < c->nphase[0]; ph++)
    for (int64_t pw = 0; pw < c->nphase[1]; pw++) lower_conv_copy_row(L, rows, c, z, bidx, xbuf, base, ci, hh, ph, pw);
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

/* The LS_CONV's layout: static offsets, or for a symbolic plan the run-time sizes and each
 * tap's (plane, row, column) (loopir.h). */
static void conv_stmt_layout(Lower *L, Ls *cv, const ConvPlan *c, const ConvSizes *z) {
  int64_t ntaps = c->kh * c->kw;
  if (!c->symbolic) {
    cv->cv.xplane = conv_plan_channel_floats(c);
    cv->cv.xrow = c->wq;
    cv->cv.oh = c->oh;
    cv->cv.ow = c->ow;
    cv->cv.tap = arena_alloc(L->m->arena, ntaps * sizeof *cv->cv.tap);
    for (int64_t i = 0; i < c->kh; i++)
      for (int64_t j = 0; j < c->kw; j++) cv->cv.tap[i * c->kw + j] = conv_plan_tap(c, i, j);
    return;
  }
  cv->cv.size[0] = z->oh;
  cv->cv.size[1] = z->ow;
  cv->cv.size[2] = z->hq;
  cv->cv.size[3] = z->wq;
  cv->cv.nplanes = c->nphase[0] * c->nphase[1];
  cv->cv.tap = arena_alloc(L->m->arena, 3 * ntaps * sizeof *cv->cv.tap);
  for (int64_t i = 0; i < c->kh; i++)
    for (int64_t j = 0; j < c->kw; j++) conv_plan_tap_parts(c, i, j, &cv->cv.tap[3 * (i * c->kw + j)]);
}

/* A depthwise convolution's vectors a tile (static sizes): its one output channel leaves
 * registers for twice tile_vec accumulators (conv_tile.c's wide tiles), so as many whole
 * rows as fit, and tiles that start a row share the loads of the taps among their rows: up
 * to 8 vectors with 3 rows of taps (a 7x7 map in one tile of 7 rows, not 4 + 3; a 56-column
 * row's 7 vectors, not 4: 246 -> 160 us for 144 channels), 4 with more (16 accumulators and
 * 5 rows of taps ran 7 % slower than 8); a row of 5 .. 8 vectors whole.  Longer rows keep the
 * default. */
static int depthwise_tile_vec(const ConvPlan *c, int tile_vec) {
  int64_t chunks = (c->ow + c->lanes - 1) / c->lanes, most = c->kh <= 3 ? 8 : 4;
  int host, regs;
  target_host_simd(&host, &regs);
  if (regs < 32 || c->symbolic || c->cin != 1 || c->cout != 1 || chunks > 8) return tile_vec;
  return (int)(chunks <= most ? most / chunks * chunks : chunks);
}

/* Where an iteration's padded copies go in the scratch slot, in copies: the first of `n`
 * (a block of groups) at the parallel loop's chunk (LX_CHUNK) times n.  The slot holds a
 * copy per (image, group) (conv_plan_copy_bound); an iteration is an image or an (image,
 * block of groups) pair, so chunks that run at once use distinct copies, and a chunk's
 * iterations reuse theirs while they are in cache: a copy per (image, group) of its own had
 * every copy's first store miss the cache (mobilenet_v2's 96 copies of 56 KiB a 112x112
 * layer). */
static Lx *conv_copy_at(Lower *L, int64_t n) { return ibin(L, '*', lx_chunk(L), lx_i(L, n)); }

/* The kernel's direct convolution of the (image, group) pairs from `item` on, from the copies
 * from `copy` on (the copy's place in the slot: conv_copy_at): one, or a batch of `nbatch`
 * groups (their copies `z->copy` floats apart). */
static Ls *conv_groups_stmt(Lower *L, const ConvPlan *c, const ConvSizes *z, Lx *const *bidx, int xbuf, Lx *item,
                            Lx *copy, int64_t nbatch) {
  INode *g = L->K->gemm, *A = g->in[0];
  const Shape *s = &g->shape;
  int64_t cout = s->d[2].k, ntaps = c->kh * c->kw;
  Lx *y_item = s->d[3].syms ? ibin(L, '*', lx_i(L, cout), lx_dim(L, s->d[3])) : lx_i(L, cout * s->d[3].k);
  Ls *cv = conv_stmt(L, c->cin, c->lanes, xbuf, ibin(L, '*', copy, z->copy), buffer_of(L, A),
                     batch_offset(L, s, 2, bidx, &A->shape), L->gemm_cbuf, ibin(L, '*', item, y_item), cout);
  cv->cv.ntaps = ntaps;
  cv->cv.tile_vec = depthwise_tile_vec(c, cv->cv.tile_vec);
  conv_stmt_layout(L, cv, c, z);
  if (nbatch > 1) { /* a block of groups (conv_plan_group_block) */
    cv->cv.nbatch = nbatch;
    cv->cv.w_bstride = cout * c->cin * ntaps;
    if (c->symbolic) {
      cv->cv.bstride[0] = z->copy;
      cv->cv.bstride[1] = y_item;
    } else {
      cv->cv.x_bstride = z->copy->c;
      cv->cv.y_bstride = y_item->c;
    }
  }
  return cv;
}

bool conv_epilogue_per_group_fits(const Lower *L, const ConvPlan *c) {
  const Shape *rs = &L->K->outs[0]->shape;
  return (rs->rank == 3 || rs->rank == 4) && !rs->d[1].syms && rs->d[1].k == c->groups * c->cout &&
         dim_eq(rs->d[0], L->K->gemm->shape.d[0]);
}

/* Does the kernel's result take an epilogue per block of groups (conv_epilogue_per_group_fits)?
 * *none: it is the product itself (or a view of it), with no epilogue at all. */
static bool conv_block_epilogue_fits(const Lower *L, const ConvPlan *c, bool *none) {
  INode *g = L->K->gemm, *root = L->K->outs[0];
  while (root != g && root->op == OP_RESHAPE) root = root->in[0];
  *none = root == g;
  return *none || conv_epilogue_per_group_fits(L, c);
}

/* Groups bidx[1] .. bidx[1] + block - 1 of image bidx[0] (the caller's loop over groups,
 * `parent`, then steps by block): each group's padded copy, one batch of convolutions over
 * them, and the block's epilogue while its outputs are in cache.  A depthwise convolution
 * on a small map (960 channels of 7x7) spent more on a kernel call, the tile set-up and an
 * epilogue loop per channel than on its 9 taps.  On symbolic sizes the block's copies and
 * outputs may outgrow the cache at run time: then each group's copy and convolution in turn
 * (two loops of one or no iterations choose), and the block's epilogue after them. */
static void lower_conv_group_block(Lower *L, Ls *parent, const ConvPlan *c, const ConvSizes *z, Lx *const *bidx, int xbuf,
                                   int64_t block, bool epilogue) {
  if (parent->k != LS_LOOP || parent->var != bidx[1]->var) unreachable("convolution groups not in their own loop");
  parent->step = lx_i(L, block);
  Lx *zero = lx_i(L, 0), *one = lx_i(L, 1), *j, *v;
  Lx *item = ibin(L, '+', ibin(L, '*', bidx[0], lx_i(L, c->groups)), bidx[1]), *copy = conv_copy_at(L, block);
  Lx *fits = one; /* 1 batched, 0 a group at a time */
  if (c->symbolic) {
    Lx *bytes = ibin(L, '*', lx_i(L, 4 * block), ibin(L, '+', z->copy, ibin(L, '*', lx_i(L, c->cout), ibin(L, '*', z->oh, z->ow))));
    int64_t budget = target_host_caches().l2 / GROUP_BLOCK_L2_SHARE;
    Lx *room = ibin(L, '-', lx_i(L, budget + 1), bytes); /* >= 1 when they fit */
    fits = ibin(L, 'M', ibin(L, 'm', room, one), zero);
  }
  /* group j's copy: the block's j-th when batched, else the one copy each group reuses (one
   * copy loop serves both ways: a second one doubled the copy's code and compile time) */
  Ls *each = loop(L, parent, zero, lx_i(L, block), one, &j);
  Lx *group[2] = {bidx[0], ibin(L, '+', bidx[1], j)};
  Lx *at = fits == one ? ibin(L, '+', copy, j) : ibin(L, '+', copy, ibin(L, '*', j, fits));
  lower_conv_copy(L, each, c, z, group, xbuf, ibin(L, '*', at, z->copy));
  if (fits != one) {
    Ls *apart = loop(L, each, zero, ibin(L, '-', one, fits), one, &v);
    apart->rolled = apart->scalar = true;
    ls_add(L, apart, conv_groups_stmt(L, c, z, group, xbuf, ibin(L, '+', item, j), copy, 1));
  }
  Ls *batched = parent;
  if (fits != one) {
    batched = loop(L, parent, zero, fits, one, &v);
    batched->rolled = batched->scalar = true;
  }
  ls_add(L, batched, conv_groups_stmt(L, c, z, bidx, xbuf, item, copy, block));
  if (!epilogue) return;
  INode *root = L->K->outs[0];
  Lx *ch, *vars[MAX_RANK] = {bidx[0]};
  Ls *chans = loop(L, parent, zero, lx_i(L, block * c->cout), one, &ch);
  vars[1] = ibin(L, '+', ibin(L, '*', bidx[1], lx_i(L, c->cout)), ch);
  store_planes(L, chans, &root->shape, 2, vars, &root, 1);
}

bool conv_epilogue_inline(const Lower *L, const ConvPlan *c) {
  const Kernel *K = L->K;
  const Shape *rs = &K->outs[0]->shape;
  return L->gemm && K->nouts == 1 && rs->rank == 4 && dim_eq(rs->d[0], K->gemm->shape.d[0]) &&
         dim_is(rs->d[1], c->groups * c->cout) && dim_eq(rs->d[2], c->ohd) && dim_eq(rs->d[3], c->owd);
}

Lx *conv_epilogue_value(Lower *L, const ConvPlan *c, Lx *const *bidx, Lx *co, Lx *oy, Lx *ox, Lx *y) {
  Lx *ri[4] = {bidx[0], ibin(L, '+', ibin(L, '*', bidx[1], lx_i(L, c->cout)), co), oy, ox};
  L->gemm_value = y;
  y = value(L, L->K->outs[0], ri);
  L->gemm_value = NULL;
  L->nmemo = 0;
  return y;
}

/* A flat convolution (convplan.h) of (image, group) `item`, from its padded copy: the rows as
 * one run into the scratch slot, then each output row from there into the product's place,
 * through the kernel's epilogue when it can take it (then true). */
static bool lower_conv_flat(Lower *L, Ls *parent, const ConvPlan *c, const ConvSizes *z, Lx *const *bidx, int xbuf,
                            Lx *item) {
  int64_t cols = conv_plan_flat_columns(c), plane = c->oh * c->ow;
  int fbuf = add_buf(L, (LBuf){.k = LB_SLOT, .dtype = DT_F32, .index = L->K->conv_slot[1]});
  Lx *fbase = ibin(L, '*', item, lx_i(L, c->cout * cols));
  Ls *cv = conv_groups_stmt(L, c, z, bidx, xbuf, item, conv_copy_at(L, 1), 1);
  cv->cv.y = fbuf;
  cv->cv.y_off = fbase;
  cv->cv.oh = 1;
  cv->cv.ow = cols;
  ls_add(L, parent, cv);
  Lx *zero = lx_i(L, 0), *one = lx_i(L, 1), *co, *r, *col;
  Ls *row = loop(L, loop(L, loop(L, parent, zero, lx_i(L, c->cout), one, &co), zero, lx_i(L, c->oh), one, &r), zero,
                 lx_i(L, c->ow), one, &col);
  row->vector_row = true;
  Lx *y = lx(L, (Lx){.k = LX_LOAD, .buf = fbuf,
                     .a = {ibin(L, '+', fbase, ibin(L, '+', ibin(L, '*', co, lx_i(L, cols)),
                                                     ibin(L, '+', ibin(L, '*', r, lx_i(L, c->wq)), col)))}});
  bool fused = conv_epilogue_inline(L, c);
  if (fused) y = conv_epilogue_value(L, c, bidx, co, r, col, y);
  /* the product's layout, [item][cout][oh * ow], is the image's too */
  Lx *at = ibin(L, '+', ibin(L, '*', item, lx_i(L, c->cout * plane)),
                ibin(L, '+', ibin(L, '*', co, lx_i(L, plane)), ibin(L, '+', ibin(L, '*', r, lx_i(L, c->ow)), col)));
  store(L, row, L->gemm_cbuf, at, y);
  return fused;
}

/* Returns whether the kernel's epilogue was applied too (Winograd's output transform, a flat
 * convolution's rows, or a block of groups'). */
bool lower_conv(Lower *L, Ls *parent, const ConvPlan *c, Lx *const *bidx) {
  int xbuf = buffer_of(L, L->K->prologue);
  ConvSizes z = conv_sizes(L, c);
  int64_t block = conv_plan_group_block(c);
  bool no_epilogue;
  if (block > 1 && conv_block_epilogue_fits(L, c, &no_epilogue)) {
    lower_conv_group_block(L, parent, c, &z, bidx, xbuf, block, !no_epilogue);
    return true;
  }
  Lx *item = ibin(L, '+', ibin(L, '*', bidx[0], lx_i(L, c->groups)), bidx[1]), *copy = conv_copy_at(L, 1);
  Lx *base = ibin(L, '*', copy, z.copy);
  lower_conv_copy(L, parent, c, &z, bidx, xbuf, base);
  if (c->winograd) return lower_winograd(L, parent, c, &z, bidx, xbuf, base, item, copy);
  if (c->flat) return lower_conv_flat(L, parent, c, &z, bidx, xbuf, item);
  ls_add(L, parent, conv_groups_stmt(L, c, &z, bidx, xbuf, item, copy, 1));
  return false;
}
