/* gemm.c — matmul kernels: the im2col prologue, then per batch item either sgemm calls (in
 * blocks of rows for a plain 2-D product) or row tiles (convplan.h: C's rows as output
 * channels of a one-tap image, emitted by codegen's conv kernel), optionally starting from
 * an addend D; the epilogue runs while a block is warm in cache.  Convolutions go to conv.c. */
#include <string.h>
#include "target.h"
#include "lower_internal.h"

#define GEMM_ROW_BLOCK 512  /* rows per sgemm call: the epilogue runs on a cache-warm tile; fewer rows repack the weights too often */

/* Element offset of the matrix of operand `x` (rank >= 2) for the batch index `bidx` of the
 * result's nb batch dims: NumPy broadcasting, so a missing or size-1 batch dim stays at 0. */
Lx *batch_offset(Lower *L, const Shape *out, int nb, Lx *const *bidx, const Shape *x) {
  int xb = x->rank - 2;
  Lx *off = lx_i(L, 0);
  for (int i = 0; i < xb; i++) {
    int o = i + nb - xb;
    Dim d = x->d[i];
    Lx *ix = dim_is(d, 1) && !dim_is(out->d[o], 1) ? lx_i(L, 0) : bidx[o];
    off = ibin(L, '+', ibin(L, '*', off, lx_dim(L, d)), ix);
  }
  Lx *mat = ibin(L, '*', lx_dim(L, x->d[x->rank - 2]), lx_dim(L, x->d[x->rank - 1]));
  return ibin(L, '*', off, mat);
}

/* Rows of the row block starting at r0 of an m-row product (all m when not blocked). */
static Lx *block_rows(Lower *L, bool blocked, Lx *m, Lx *r0) {
  return blocked ? ibin(L, 'm', lx_i(L, GEMM_ROW_BLOCK), ibin(L, '-', m, r0)) : m;
}

static bool uses_var(const Lx *x, int var, int depth) {
  if (!x || depth > 64) return x != NULL;
  if (x->k == LX_VAR) return x->var == var;
  return uses_var(x->a[0], var, depth + 1) || uses_var(x->a[1], var, depth + 1) || uses_var(x->a[2], var, depth + 1);
}

/* Is integer x affine in var (sums, differences and products by var-free factors)? */
static bool affine_in(const Lx *x, int var, int depth) {
  if (!uses_var(x, var, depth)) return true;
  if (x->k == LX_VAR) return true;
  if (x->k != LX_IBIN || depth > 64) return false;
  if (x->op == '+' || x->op == '-') return affine_in(x->a[0], var, depth + 1) && affine_in(x->a[1], var, depth + 1);
  if (x->op == '*')
    return (!uses_var(x->a[0], var, depth + 1) && affine_in(x->a[1], var, depth + 1)) ||
           (!uses_var(x->a[1], var, depth + 1) && affine_in(x->a[0], var, depth + 1));
  return false;
}

/* x - var when x is var plus terms free of it (a sum with var as one term), else NULL. */
static Lx *without_var(Lower *L, Lx *x, Lx *var, int depth) {
  if (x == var) return lx_i(L, 0);
  if (x->k != LX_IBIN || x->op != '+' || depth > 64) return NULL;
  for (int i = 0; i < 2; i++) {
    Lx *r = uses_var(x->a[1 - i], var->var, 0) ? NULL : without_var(L, x->a[i], var, depth + 1);
    if (r) return ibin(L, '+', x->a[1 - i], r);
  }
  return NULL;
}

/* D's element (row, col) of C = D + A B, broadcast to C's shape. */
static Lx *addend_at(Lower *L, INode *d, const Shape *c, Lx *row, Lx *col) {
  Lx *idx[2] = {row, col}, *r[MAX_RANK];
  broadcast_idx(L, c, idx, &d->shape, r);
  return value(L, d, r);
}

/* C = D + A B on row tiles: when the kernel's one result is a 2-D product plus a float
 * tensor D whose rows are contiguous runs at affine offsets (an LSTM step's input share of
 * the gates, a slice of a tensor computed before the loop; a Linear layer's bias row), the
 * tiles start from D's values instead of zeros (codegen conv_tile) and write the result: no
 * epilogue pass over C.  Each element is then D + the products in the tile's order (the
 * epilogue added D last).  Returns whether cv takes D. */
static bool row_tiles_onto(Lower *L, Ls *cv, Lx *r0) {
  const Kernel *K = L->K;
  INode *g = K->gemm, *sum = K->outs[0];
  while (sum->op == OP_RESHAPE && sum->in[0]->kernel == -1) sum = sum->in[0]; /* same memory order */
  if (K->nouts != 1 || sum->op != OP_ADD || g->shape.rank != 2 || !shape_eq(&sum->shape, &g->shape)) return false;
  INode *d = sum->in[0] == g ? sum->in[1] : sum->in[1] == g ? sum->in[0] : NULL;
  if (!d || d == g || d->dtype != DT_F32) return false;
  int rv = new_var(L, 0, INT64_MAX, true), cvar = new_var(L, 0, INT64_MAX, true);
  Lx *row = lx_var(L, rv), *col = lx_var(L, cvar);
  L->nmemo = 0;
  Lx *v = addend_at(L, d, &g->shape, row, col);
  L->nmemo = 0;
  if (v->k != LX_LOAD) return false;
  Lx *rest = without_var(L, v->a[0], col, 0); /* the index is rest + col */
  if (!rest || !affine_in(rest, rv, 0)) return false;
  Lx *zero = lx_i(L, 0);
  Lx *at0 = addend_at(L, d, &g->shape, r0, zero), *at1 = addend_at(L, d, &g->shape, ibin(L, '+', r0, lx_i(L, 1)), zero);
  L->nmemo = 0;
  if (at0->k != LX_LOAD || at1->k != LX_LOAD || at0->buf != v->buf || at1->buf != v->buf) return false;
  cv->cv.add = v->buf;
  cv->cv.add_off = at0->a[0];
  cv->cv.add_ld = ibin(L, '-', at1->a[0], at0->a[0]);
  return true;
}

/* Row tiles over a symbolic column count n (a 1x1 convolution on symbolic H, W: B is
 * [K, H*W]).  B is then a one-row image of n columns, its rows not padded (tight), the sizes
 * LS_CONV's run-time ones (loopir.h); NULL when that does not apply.  Any B: one larger than
 * the core's cache is swept in vector blocks that every tile of rows reads while they are
 * cached (conv_tile.c conv_vector_block_symbolic).  Until December 2026 a B of more than 64
 * rows that outgrew L2 at run time went to OpenBLAS, 1.3-2x slower on one thread (1x1
 * convolutions 256 -> 256 at 112x112 18.0 -> 8.8-10.1 ms, 512 -> 512 at 28x28 4.0-4.5 ->
 * 2.2-2.3, 1024 -> 64 at 32x32 1.5 -> 1.1, 160 -> 960 at 14x14 0.39 -> 0.33). */
static Ls *symbolic_row_tiles(Lower *L, Lx *k, Lx *n, Lx *rows, int b, Lx *b_off, int a, Lx *a_off, Lx *c_off) {
  if (k->k != LX_I || n->k == LX_I || k->c < 1) return NULL;
  int64_t bound = loopir_size_bound(rows); /* for the work estimates; unbounded: a batch's 16 */
  Ls *cv = conv_stmt(L, k->c, row_tile_lanes_symbolic(), b, b_off, a, a_off, L->gemm_cbuf, c_off, bound >= 0 ? bound : 16);
  cv->cv.rows = rows->k == LX_I ? NULL : rows;
  cv->cv.ntaps = 1;
  cv->cv.tap = arena_alloc(L->m->arena, 3 * sizeof *cv->cv.tap);
  cv->cv.tap[0] = cv->cv.tap[1] = cv->cv.tap[2] = 0;
  Lx *one = lx_i(L, 1);
  cv->cv.size[0] = cv->cv.size[2] = one;
  cv->cv.size[1] = cv->cv.size[3] = n;
  cv->cv.nplanes = 1;
  cv->cv.tight = true;
  return cv;
}

/* With 32 vector registers, tiles of 6 rows x 4 vectors (24 accumulators) instead of the
 * convolution's 4 x 4: B is read once per 6 rows of C, not 4, which is what bounds a B that
 * fills L2 ([512, 256] x [256, 1024] on Zen 5: 160 -> 213 GFLOP/s; 2-10 % faster on a B of
 * 64-512 KiB; 8 x 3 was slower, 8 x 2 between). */
static void row_tile_shape(Ls *cv) {
  int host, regs;
  target_host_simd(&host, &regs);
  if (regs < 32) return;
  cv->cv.tile_co = 6;
  cv->cv.tile_vec = 4;
}

/* The im2col prologue (if any) and the sgemm calls of lower_gemm inside its batch loops
 * (cur); returns the loop the epilogue of a row block goes into. */
static Ls *lower_sgemm(Lower *L, Ls *cur, Lx *const *bidx, bool blocked, Lx **row0, bool *done) {
  const Kernel *K = L->K;
  INode *g = K->gemm, *A = g->in[0], *B = g->in[1];
  const Shape *s = &g->shape;
  int r = s->rank, nb = r - 2, ta = (int)g->i[0], tb = (int)g->i[1];
  Lx *m = lx_dim(L, s->d[r - 2]), *n = lx_dim(L, s->d[r - 1]), *k = lx_dim(L, A->shape.d[A->shape.rank - 1 - ta]);
  Lx *zero = lx_i(L, 0), *one = lx_i(L, 1), *r0 = zero;
  Lx *cbatch = zero;
  for (int i = 0; i < nb; i++) cbatch = ibin(L, '+', ibin(L, '*', cbatch, lx_dim(L, s->d[i])), bidx[i]);
  /* each batch item's B in its own part of the scratch slot (pass_memplan.c), so that the
   * items can run on different threads */
  Lx *item_b = K->prologue ? ibin(L, '*', cbatch, ibin(L, '*', k, n)) : zero;
  if (K->prologue) { /* this batch item's B (im2col columns) into the scratch slot */
    INode *pb = K->prologue, *src = pb;
    /* walk the reshapes back to the computed value, as lower_elementwise does, while the batch
     * axes stay in front: the inner loop then runs along an image row */
    while (src->op == OP_RESHAPE && src->in[0]->kernel == -1 && src->in[0]->shape.rank >= nb) {
      bool lead = true;
      for (int a = 0; a < nb; a++) lead &= dim_eq(src->in[0]->shape.d[a], s->d[a]);
      if (!lead) break;
      src = src->in[0];
    }
    int sr = src->shape.rank;
    Lx *pv[MAX_RANK];
    memcpy(pv, bidx, nb * sizeof *pv);
    Ls *blk = cur;
    for (int a = nb; a < sr; a++) blk = loop(L, blk, zero, lx_dim(L, src->shape.d[a]), one, &pv[a]);
    if (sr > nb && !src->shape.d[sr - 1].syms && src->shape.d[sr - 1].k <= SHORT_ROW) blk->vector_row = true;
    Lx *off = zero;
    for (int a = nb; a < sr; a++) off = ibin(L, '+', ibin(L, '*', off, lx_dim(L, src->shape.d[a])), pv[a]);
    off = ibin(L, '+', item_b, off);
    L->computing = pb;
    Lx *v = value(L, src, pv);
    L->computing = NULL;
    L->nmemo = 0; /* the GEMM below reads pb from memory */
    store(L, blk, buffer_of(L, pb), off, v);
  }
  if (blocked) cur = loop(L, cur, zero, m, lx_i(L, GEMM_ROW_BLOCK), &r0);
  Lx *rows = block_rows(L, blocked, m, r0);
  Lx *a_off = ibin(L, '+', batch_offset(L, s, nb, bidx, &A->shape), ibin(L, '*', r0, ta ? one : k));
  Lx *b_off = K->prologue ? item_b : batch_offset(L, s, nb, bidx, &B->shape);
  Lx *c_off = ibin(L, '+', ibin(L, '*', cbatch, ibin(L, '*', m, n)), ibin(L, '*', r0, n));
  Ls *sym = ta || tb || nb < 1 ? NULL : symbolic_row_tiles(L, k, n, rows, buffer_of(L, B), b_off, buffer_of(L, A), a_off, c_off);
  if (sym) {
    ls_add(L, cur, sym);
    *row0 = r0;
    return cur;
  }
  int lanes = ta || tb || n->k != LX_I || k->k != LX_I ? 0 : row_tile_lanes(k->c, n->c);
  if (lanes) { /* row tiles (convplan.h): C's rows as output channels of a one-tap image B */
    int64_t bound = loopir_size_bound(rows); /* for the work estimates; unbounded: a batch's 16 */
    Ls *cv = conv_stmt(L, k->c, lanes, buffer_of(L, B), b_off, buffer_of(L, A), a_off, L->gemm_cbuf, c_off,
                       bound >= 0 ? bound : 16);
    cv->cv.rows = rows->k == LX_I ? NULL : rows;
    cv->cv.ntaps = 1;
    cv->cv.tap = arena_alloc(L->m->arena, sizeof *cv->cv.tap);
    cv->cv.xplane = cv->cv.xrow = cv->cv.ow = n->c;
    cv->cv.oh = 1;
    cv->cv.tight = n->c % lanes != 0;
    if (n->c <= lanes) cv->cv.tile_co *= 2; /* one vector a row: 8 rows share each loaded
                                               vector (fcn's 2x2 maps) */
    else row_tile_shape(cv);
    /* B's columns in up to 4 parts of at least 2 register tiles: with one or two tiles of
     * rows (an LSTM step's h W_hh^T at batch 1) the threads then split B, each reading its
     * part into its own core's cache */
    int64_t vtiles = (n->c + lanes - 1) / lanes / cv->cv.tile_vec;
    cv->cv.parts = vtiles >= 8 ? 4 : vtiles >= 4 ? 2 : 1;
    /* and a B too large for L2 in as many parts as keep each part within row_tiles_part_floats:
     * the parts run one after another on a thread, each part's columns read by every row tile
     * while they are in cache (a 1x1 convolution over a 112x112 map: 12544 columns) */
    int64_t part = row_tiles_part_floats(), cached = (k->c * n->c + part - 1) / part;
    if (cached > cv->cv.parts && vtiles > cv->cv.parts) cv->cv.parts = cached < vtiles ? (int)cached : (int)vtiles;
    cv->cv.part_major = cached > 1;
    *done = nb == 0 && row_tiles_onto(L, cv, r0);
    ls_add(L, cur, cv);
    *row0 = r0;
    return cur;
  }
  Ls *gs = ls_new(L, LS_GEMM);
  gs->g.a = buffer_of(L, A);
  gs->g.b = buffer_of(L, B);
  gs->g.c = L->gemm_cbuf;
  if (gs->g.a < 0 || gs->g.b < 0) unreachable("matmul operand not in memory");
  gs->g.a_off = a_off;
  gs->g.b_off = b_off;
  gs->g.c_off = c_off;
  gs->g.m = rows;
  gs->g.n = n;
  gs->g.k = k;
  gs->g.lda = ta ? m : k;
  gs->g.ldb = tb ? k : n;
  gs->g.ldc = n;
  gs->g.ta = ta;
  gs->g.tb = tb;
  ls_add(L, cur, gs);
  *row0 = r0;
  return cur;
}

/* Is root (the kernel's output) a chain of reshapes of its product g?  The product written
 * into root's buffer is root already. */
static bool is_view_of(const INode *root, const INode *g) {
  while (root != g && root->op == OP_RESHAPE) root = root->in[0];
  return root == g;
}

/* A grouped convolution's epilogue inside its loop over groups, right after the group's
 * product while its output channels are in cache: with the images' loop holding only the
 * groups' loop, the runtime then splits (image, group) pairs among threads, where the
 * images alone leave a depthwise convolution of one image on one thread: each channel's
 * product split by rows, a fork and join a channel, its padded copy on one thread
 * (mobilenet_v2's at 112x112, whose result is the [N, C, H*W] view: 2.3x their one-thread
 * time on two, until December 2026).  True when done. */
static bool conv_epilogue_per_group(Lower *L, Ls *group, const ConvPlan *c, INode *root, Lx **bidx, Lx **vars) {
  const Shape *rs = &root->shape;
  if (c->groups < 2 || !conv_epilogue_per_group_fits(L, c)) return false;
  vars[0] = bidx[0];
  vars[1] = bidx[1];
  Ls *in = group;
  if (c->cout > 1) {
    Lx *j;
    in = loop(L, group, lx_i(L, 0), lx_i(L, c->cout), lx_i(L, 1), &j);
    vars[1] = ibin(L, '+', ibin(L, '*', bidx[1], lx_i(L, c->cout)), j);
  }
  store_planes(L, in, rs, 2, vars, &root, 1);
  return true;
}

/* Can x be computed along a row of output positions, variable pos, as vectors: float
 * ops with a vector form and no long chain (not SiLU, say) of the product y, constants,
 * loads that do not depend on pos (a channel's scale, a bias) and loads of consecutive
 * floats (index rest + pos: a residual)? */
static bool row_epilogue_ok(Lower *L, const Lx *x, const Lx *y, Lx *pos, int depth) {
  if (depth > 48) return false;
  switch (x->k) {
  case LX_F: return true;
  case LX_OP: /* one codegen emits on vectors (vector_row.c) */
    for (int i = 0; i < 3; i++)
      if (x->a[i] && !row_epilogue_ok(L, x->a[i], y, pos, depth + 1)) return false;
    /* a long chain (SiLU's exp and division) stays in the epilogue pass: on efficientnet's
       1x1 convolutions, 24 such chains on a tile ran 7-9 % slower than the pass */
    return (op_info[x->op].traits & OPT_VECTOR) && !(op_info[x->op].traits & OPT_CHAIN);
  case LX_LOAD: {
    if (x == y) return true;
    if (x->buf == L->gemm_cbuf) return false; /* the product elsewhere: not in the tile */
    if (!uses_var(x->a[0], pos->var, 0)) return true;
    Lx *rest = without_var(L, x->a[0], pos, 0);
    return rest && !uses_var(rest, pos->var, 0) && L->le->bufs[x->buf].dtype == DT_F32;
  }
  default: return false;
  }
}

/* The kernel's epilogue onto the register tiles of its product (cv.epi): each tile's values
 * go through the kernel's elementwise tail (a BatchNorm's scale and shift, ReLU6, a residual
 * add) before they are stored, so that the output is written once, not written, read and
 * written again by an epilogue pass (mobilenet_v2's 16 -> 96 1x1 convolution at 112x112:
 * 4.8 MB, from L3 at batch 1 and from memory at batch 8).  The product: row tiles of a 1x1
 * convolution, C [N, M, H*W] = A B per image, or a direct convolution of one group,
 * [N, 1, M, OH*OW]; its last statement in `image`, static or symbolic sizes.  The kernel's
 * one output (per image: the caller checks its leading dim) must be its shape (or the
 * [N, M, H, W] or [N, M, H*W] view of it), in its buffer.  True when done. */
static bool fuse_tile_epilogue(Lower *L, Ls *image, Lx *const *bidx) {
  const Kernel *K = L->K;
  INode *g = K->gemm, *root = K->outs[0];
  const Shape *s = &g->shape, *rs = &root->shape;
  Ls *cv = image->nbody ? image->body[image->nbody - 1] : NULL;
  if (!cv || cv->k != LS_CONV || cv->cv.add >= 0 || cv->cv.rows || cv->cv.nbatch > 1) return false;
  bool symbolic = cv->cv.size[0] != NULL, conv = s->rank == 4; /* [N, groups = 1, M, OH * OW], else [N, M, n] */
  int64_t m = cv->cv.cout, n = cv->cv.oh * cv->cv.ow; /* n: 0 on symbolic sizes */
  if (K->nouts != 1 || buffer_of(L, root) != L->gemm_cbuf || s->rank != 3 + conv || (conv && !dim_is(s->d[1], 1)) ||
      !dim_is(s->d[1 + conv], m) || (!symbolic && !dim_is(s->d[2 + conv], n)))
    return false;
  /* root, computed elementwise from the product in its buffer, has its elements: on
   * symbolic sizes H * W is n at run time */
  bool planes = rs->rank == 4 && (symbolic || (!rs->d[2].syms && !rs->d[3].syms && rs->d[2].k * rs->d[3].k == n));
  if (!(planes || (rs->rank == 3 && (symbolic || dim_is(rs->d[2], n)))) || !dim_is(rs->d[1], m)) return false;
  Lx *ch = lx_var(L, new_var(L, 0, m - 1, true)), *pos = lx_var(L, new_var(L, 0, symbolic ? INT64_MAX : n - 1, true));
  if (symbolic) /* below the plane's size, as store_planes's loop over it */
    L->range[pos->var].below = planes ? ibin(L, '*', lx_dim(L, rs->d[2]), lx_dim(L, rs->d[3])) : lx_dim(L, rs->d[2]);
  Lx *gvars[MAX_RANK] = {bidx[0], conv ? lx_i(L, 0) : ch, conv ? ch : pos, pos}, *vars[MAX_RANK] = {bidx[0], ch, pos};
  if (planes) { /* the map's (row, column) from its position */
    Lx *w = lx_dim(L, rs->d[3]);
    vars[2] = ibin(L, '/', pos, w);
    vars[3] = ibin(L, '%', pos, w);
  }
  L->nmemo = 0;
  Lx *y = value(L, g, gvars), *v = value(L, root, vars);
  L->nmemo = 0;
  /* (root, in the product's buffer with the product's order, is stored where y is read) */
  if (y->k != LX_LOAD || !row_epilogue_ok(L, v, y, pos, 0)) return false;
  cv->cv.epi = v;
  cv->cv.epi_y = y;
  cv->cv.epi_ch = ch->var;
  cv->cv.epi_pos = pos->var;
  return true;
}

/* sgemm per matrix of the batch (per block of GEMM_ROW_BLOCK rows for a plain 2-D product),
 * with the epilogue applied while the block is warm in cache: after each row block, or after
 * each index of the leading batch dim when the result keeps it (a convolution's images). */
void lower_gemm(Lower *L, Ls *body) {
  const Kernel *K = L->K;
  INode *g = K->gemm, *root = K->outs[0];
  const Shape *s = &g->shape;
  int r = s->rank, nb = r - 2;
  L->gemm = root == g ? NULL : g;
  L->gemm_cbuf = buffer_of(L, root);
  Lx *m = lx_dim(L, s->d[r - 2]), *n = lx_dim(L, s->d[r - 1]), *zero = lx_i(L, 0), *one = lx_i(L, 1);
  bool blocked = nb == 0 && shape_eq(&root->shape, s);
  bool per_lead = root != g && nb >= 1 && dim_eq(root->shape.d[0], s->d[0]);
  Lx *bidx[MAX_RANK], *r0 = zero;
  Ls *cur = body, *lead = NULL;
  for (int i = 0; i < nb; i++) {
    cur = loop(L, cur, zero, lx_dim(L, s->d[i]), one, &bidx[i]);
    if (i == 0) lead = cur;
  }
  ConvPlan conv;
  bool done = false, planned = conv_plan(K, &conv);
  if (planned) done = lower_conv(L, cur, &conv, bidx);
  else cur = lower_sgemm(L, cur, bidx, blocked, &r0, &done);
  if (!done && per_lead && (planned ? nb == 2 && conv.groups == 1 && !conv.winograd && !conv.flat : nb == 1))
    done = fuse_tile_epilogue(L, cur, bidx);
  Lx *rows = block_rows(L, blocked, m, r0);
  if (root == g || done || is_view_of(root, g)) return;
  Lx *vars[MAX_RANK];
  if (planned && per_lead && nb == 2 && conv_epilogue_per_group(L, cur, &conv, root, bidx, vars)) return;
  int order[MAX_RANK];
  for (int i = 0; i < MAX_RANK; i++) order[i] = i;
  if (blocked) {
    /* rows r0 + j: a loop from 0 has a known range, so that a reshape's unflattening of the
     * row folds away ((r0 + j) * n + col) % n is col: a bias row read as a vector, not
     * gathered (a Transformer's GELU(x W + b) epilogue) */
    Lx *j;
    Ls *ri = loop(L, cur, zero, rows, one, &j);
    vars[0] = ibin(L, '+', r0, j);
    Ls *ci = loop(L, ri, zero, n, one, &vars[1]);
    ci->vector_row = n->k == LX_I && n->c <= SHORT_ROW;
    store_out(L, ci, root, vars);
  } else if (per_lead) {
    vars[0] = bidx[0];
    store_planes(L, lead, &root->shape, 1, vars, &root, 1);
  } else {
    Ls *blk = loop_nest(L, body, &root->shape, order, root->shape.rank, vars);
    store_out(L, blk, root, vars);
  }
}
