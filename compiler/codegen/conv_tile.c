/* conv_tile.c — the direct convolution (LS_CONV) as a register-tiled kernel, in a function
 * of its own that nnc_rt_parallel_for runs.  Row tiles (a plain product C = D + A B, C's rows
 * as the output channels: convplan.h) take the same path.
 *
 * Output rows are cut into vectors of `lanes` columns (the last one of a row masked); the
 * vectors of all rows are numbered v = oh * chunks + chunk.  A tile of tile_co output channels
 * x tile_vec vectors stays in registers while one loop over (input channel, tap) pairs, with
 * each pair's input offset from a constant table, multiply-adds a broadcast weight into each:
 * per pair, tile_vec loads of the padded image and tile_co weight broadcasts feed
 * tile_co * tile_vec vector FMAs.
 * Each output is a sum in one fixed order (channels, then taps), whatever the tiling.  The
 * tiles of output channels run through nnc_rt_parallel_for: split among threads when the
 * kernel's own loop over images is not (one image), on the image's thread when it is. */
#include <stdlib.h>
#include <string.h>
#include "cg.h"

typedef struct ConvCg {
  const Ls *s;
  LLVMTypeRef vt;               /* <lanes x float> */
  LLVMValueRef x, w, y;         /* base pointers with their offsets applied (of the current
                                   item of a batch) */
  LLVMValueRef x0, w0, y0;      /* a batch's first item's */
  LLVMValueRef x_bstride, y_bstride; /* a batch's x and y strides (run-time with cv.bstride) */
  LLVMValueRef count;           /* output channels (cout, or the run-time rows) */
  LLVMValueRef xtab;            /* i64[cin * ntaps]: input offset of (channel, tap) */
  int64_t chunks;               /* vectors per output row */
  LLVMValueRef co0;             /* the current tile's first output channel */
  int nco;                      /* and its number of output channels */
  LLVMValueRef v_lo, v_hi, tail; /* with cv.parts: the current part's whole vector tiles
                                    [v_lo, v_hi), and whether it has the partial one */
  LLVMValueRef add, add_ld;     /* with cv.add: D's first row, and its row stride */
  LLVMValueRef tile_lo, tile_hi; /* with vector blocks: the channel tiles of the call */
  int64_t vblock;               /* vector tiles per block (conv_vector_block), or 0 */
  /* symbolic spatial sizes (cv.size): the layout's run-time values, computed once at the
   * function's entry; for static sizes only `symbolic` (false) is set */
  bool symbolic;
  LLVMValueRef oh, ow, xrow, xplane;
  LLVMValueRef nchunks, nv;     /* vectors per output row, per output channel */
  LLVMValueRef ysize;           /* oh * ow: an output channel's floats */
  LLVMValueRef inv_chunks;      /* 1.0 / nchunks: a vector's row without a division */
  LLVMValueRef *koff;           /* unrolled steps: step k's input offset; else the taps' */
  LLVMValueRef whole_v;         /* the vectors in whole tiles of tile_vec */
  LLVMValueRef vblock_v, nblocks_v; /* with vblock: vector tiles per block (all of them when
                                   blocks do not pay at this size), and blocks */
} ConvCg;

/* The vector type of vector v0 + j of a tile.  A one-row image's last vector, when the tile's
 * origin is static (the partial tile after the whole ones) and at most half its lanes are
 * used, takes the fewest lanes (4 or more) that hold them: a 512-bit FMA costs two 256-bit
 * ones on Zen 4, so lm logits' output projection, 84 = 5 x 16 + 4 columns, multiplies 5.25
 * vectors a row instead of 6.  *mask becomes that vector's mask, or
 * NULL when its lanes are all used. */
static LLVMTypeRef narrow_tail(Cg *g, const ConvCg *c, LLVMValueRef v0, int j, LLVMValueRef *mask) {
  const Ls *s = c->s;
  int lanes = s->cv.lanes;
  if (c->symbolic || s->cv.oh != 1 || !LLVMIsAConstantInt(v0)) return c->vt;
  int64_t used = s->cv.ow - (LLVMConstIntGetSExtValue(v0) + j) * lanes;
  int n = lanes;
  while (n / 2 >= 4 && n / 2 >= used) n /= 2;
  if (n == lanes) return c->vt;
  *mask = used == n ? NULL : lane_mask(g, n, 1, 0, used);
  return LLVMVectorType(g->f32, (unsigned)n);
}

/* Up to this many (input channel, tap) steps are unrolled (a 7x7 depthwise convolution's). */
#define CONV_UNROLLED_STEPS 49

/* A register tile being computed: output channels co0 .. co0 + nco - 1, vectors 0 .. nvec-1
 * of types vty at input offsets xo (masked by mask when x's rows are tight). */
typedef struct ConvTile {
  LLVMValueRef co0;
  int nco, nvec;
  const LLVMTypeRef *vty;
  const LLVMValueRef *xo, *mask;
} ConvTile;

/* Step k (= ci * ntaps + tap) of tile t: acc[r * nvec + j] += w[co0 + r, k] * x[xoff + xo[j]]. */
static void conv_step(Cg *g, const ConvCg *c, const ConvTile *t, LLVMValueRef k, LLVMValueRef xoff, LLVMValueRef *acc) {
  const Ls *s = c->s;
  LLVMValueRef xk = gep_f32(g, c->x, xoff);
  int64_t ldw = s->cv.cin * s->cv.ntaps; /* a weight row */
  LLVMValueRef wk = gep_f32(g, c->w, LLVMBuildNSWAdd(g->b, LLVMBuildNSWMul(g->b, t->co0, ci64(g, ldw), ""), k, ""));
  unsigned fma = LLVMLookupIntrinsicID("llvm.fmuladd", 12);
  LLVMValueRef w[16], wv[16], w_narrow[16] = {0};
  for (int r = 0; r < t->nco; r++) {
    w[r] = LLVMBuildLoad2(g->b, g->f32, gep_f32(g, wk, ci64(g, r * ldw)), "");
    wv[r] = splat(g, c->vt, w[r]);
  }
  for (int j = 0; j < t->nvec; j++) {
    LLVMTypeRef vt = t->vty[j];
    LLVMValueRef fma_fn = LLVMGetIntrinsicDeclaration(g->mod, fma, &vt, 1);
    LLVMTypeRef fma_t = LLVMIntrinsicGetType(g->ctx, fma, &vt, 1);
    LLVMValueRef xv = load_vector(g, vt, gep_f32(g, xk, t->xo[j]), s->cv.tight ? t->mask[j] : NULL, -1);
    for (int r = 0; r < t->nco; r++) {
      LLVMValueRef wr = wv[r];
      if (vt != c->vt) wr = w_narrow[r] ? w_narrow[r] : (w_narrow[r] = splat(g, vt, w[r]));
      acc[r * t->nvec + j] = LLVMBuildCall2(g->b, fma_t, fma_fn, (LLVMValueRef[]){wr, xv, acc[r * t->nvec + j]}, 3, "");
    }
  }
}

/* Symbolic sizes: the input offset xo, output offset yo and columns left in the row rem of
 * vectors v0 .. v0 + nvec - 1.  One row/column split of v0 (by a reciprocal, corrected to
 * the exact quotient: an integer division per tile cost as much as a depthwise tile's FMAs),
 * then each next vector steps a column, wrapping to the next row. */
static void conv_tile_positions(Cg *g, const ConvCg *c, LLVMValueRef v0, int nvec, LLVMValueRef *xo, LLVMValueRef *yo,
                                LLVMValueRef *rem) {
  LLVMTypeRef f64 = LLVMDoubleTypeInContext(g->ctx);
  LLVMValueRef q = LLVMBuildFPToSI(g->b, LLVMBuildFMul(g->b, LLVMBuildSIToFP(g->b, v0, f64, ""), c->inv_chunks, ""), g->i64, "");
  LLVMValueRef r = LLVMBuildNSWSub(g->b, v0, LLVMBuildNSWMul(g->b, q, c->nchunks, ""), "");
  LLVMValueRef low = LLVMBuildICmp(g->b, LLVMIntSLT, r, ci64(g, 0), "");
  q = LLVMBuildSelect(g->b, low, LLVMBuildNSWSub(g->b, q, ci64(g, 1), ""), q, "");
  r = LLVMBuildSelect(g->b, low, LLVMBuildNSWAdd(g->b, r, c->nchunks, ""), r, "");
  LLVMValueRef high = LLVMBuildICmp(g->b, LLVMIntSGE, r, c->nchunks, "");
  LLVMValueRef row = LLVMBuildSelect(g->b, high, LLVMBuildNSWAdd(g->b, q, ci64(g, 1), ""), q, "");
  LLVMValueRef chunk = LLVMBuildSelect(g->b, high, LLVMBuildNSWSub(g->b, r, c->nchunks, ""), r, "");
  int lanes = c->s->cv.lanes;
  for (int j = 0; j < nvec; j++) {
    if (j > 0) {
      LLVMValueRef next = LLVMBuildNSWAdd(g->b, chunk, ci64(g, 1), "");
      LLVMValueRef wrap = LLVMBuildICmp(g->b, LLVMIntSGE, next, c->nchunks, "");
      row = LLVMBuildNSWAdd(g->b, row, LLVMBuildZExt(g->b, wrap, g->i64, ""), "");
      chunk = LLVMBuildSelect(g->b, wrap, ci64(g, 0), next, "");
    }
    LLVMValueRef col = LLVMBuildNSWMul(g->b, chunk, ci64(g, lanes), "");
    xo[j] = LLVMBuildNSWAdd(g->b, LLVMBuildNSWMul(g->b, row, c->xrow, ""), col, "");
    yo[j] = LLVMBuildNSWAdd(g->b, LLVMBuildNSWMul(g->b, row, c->ow, ""), col, "");
    rem[j] = LLVMBuildNSWSub(g->b, c->ow, col, "");
  }
}

/* Do all tiles start a row (static sizes)?  Whole tiles run from vector 0 (or a block's or
 * part's first, a multiple of tile_vec) in steps of tile_vec or twice that, the partial one
 * from the last multiple: so when a row's vectors divide tile_vec. */
static bool conv_tiles_start_rows(const ConvCg *c) { return !c->symbolic && c->s->cv.tile_vec % c->chunks == 0; }

/* Static sizes: the input offset xo, output offset yo and columns left in the row rem of
 * vectors v0 .. v0 + nvec - 1.  When tiles start rows, each is the first row's offset plus a
 * constant: the taps of the tile's rows then load the same input vectors (output row r's tap
 * (i + 1, j) is row r + 1's tap (i, j)), and LLVM loads each once (a 5x5 depthwise tile of
 * 4 rows x 2 vectors: 80 loads for 200 FMAs instead of 200). */
static void conv_tile_static_positions(Cg *g, const ConvCg *c, LLVMValueRef v0, int nvec, LLVMValueRef *xo, LLVMValueRef *yo,
                                       LLVMValueRef *rem) {
  const Ls *s = c->s;
  int lanes = s->cv.lanes;
  bool starts_row = conv_tiles_start_rows(c);
  LLVMValueRef x0 = NULL, y0 = NULL;
  if (starts_row) {
    LLVMValueRef row0 = c->chunks == 1 ? v0 : LLVMBuildExactSDiv(g->b, v0, ci64(g, c->chunks), "");
    x0 = LLVMBuildNSWMul(g->b, row0, ci64(g, s->cv.xrow), "");
    y0 = LLVMBuildNSWMul(g->b, row0, ci64(g, s->cv.ow), "");
  }
  for (int j = 0; j < nvec; j++) {
    if (starts_row) {
      int64_t row = j / c->chunks, col = j % c->chunks * lanes;
      xo[j] = LLVMBuildNSWAdd(g->b, x0, ci64(g, row * s->cv.xrow + col), "");
      yo[j] = LLVMBuildNSWAdd(g->b, y0, ci64(g, row * s->cv.ow + col), "");
      rem[j] = ci64(g, s->cv.ow - col);
      continue;
    }
    LLVMValueRef v = LLVMBuildNSWAdd(g->b, v0, ci64(g, j), "");
    LLVMValueRef row = c->chunks == 1 ? v : LLVMBuildSDiv(g->b, v, ci64(g, c->chunks), "");
    LLVMValueRef col = c->chunks == 1 ? ci64(g, 0) : LLVMBuildNSWMul(g->b, LLVMBuildSRem(g->b, v, ci64(g, c->chunks), ""), ci64(g, lanes), "");
    xo[j] = LLVMBuildNSWAdd(g->b, LLVMBuildNSWMul(g->b, row, ci64(g, s->cv.xrow), ""), col, "");
    yo[j] = LLVMBuildNSWAdd(g->b, LLVMBuildNSWMul(g->b, row, ci64(g, s->cv.ow), ""), col, "");
    rem[j] = LLVMBuildNSWSub(g->b, ci64(g, s->cv.ow), col, "");
  }
}

/* Does one of the tile's vectors end a row short of whole? */
static LLVMValueRef conv_tile_partial(Cg *g, const ConvCg *c, int nvec, LLVMValueRef *rem) {
  LLVMValueRef partial = LLVMConstInt(LLVMInt1TypeInContext(g->ctx), 0, 0);
  for (int j = 0; j < nvec; j++)
    partial = LLVMBuildOr(g->b, partial, LLVMBuildICmp(g->b, LLVMIntSLT, rem[j], ci64(g, c->s->cv.lanes), ""), "");
  return partial;
}

/* A fused epilogue (cv.epi) on the accumulators v of output channel co at position pos in
 * its plane: the kernel's tail as vectors, in the tile function (its buffers and variables taken
 * from the kernel by outline.c). */
static LLVMValueRef conv_epilogue(Cg *g, const Ls *s, LLVMValueRef co, LLVMValueRef pos, LLVMTypeRef vt,
                                  LLVMValueRef mask, LLVMValueRef v) {
  int parent = scope_push(g);
  g->vars[s->cv.epi_ch] = co;
  g->vars[s->cv.epi_pos] = pos;
  v = vector_value(g, s->cv.epi, s->cv.epi_pos, vt, mask, s->cv.epi_y, v);
  scope_pop(g, parent);
  return v;
}

/* Symbolic sizes: a tile's accumulators to y (t->xo holds the output offsets), masked where
 * mask says. */
static void conv_tile_store(Cg *g, const ConvCg *c, const ConvTile *t, const LLVMValueRef *mask, LLVMValueRef *acc) {
  for (int j = 0; j < t->nvec; j++)
    for (int r = 0; r < t->nco; r++) {
      LLVMValueRef co = LLVMBuildNSWAdd(g->b, t->co0, ci64(g, r), ""), v = acc[r * t->nvec + j];
      LLVMValueRef plane = LLVMBuildNSWMul(g->b, co, c->ysize, "");
      LLVMValueRef p = gep_f32(g, c->y, LLVMBuildNSWAdd(g->b, plane, t->xo[j], ""));
      if (c->s->cv.epi) v = conv_epilogue(g, c->s, co, t->xo[j], t->vty[j], mask ? mask[j] : NULL, v);
      store_vector(g, t->vty[j], v, p, mask ? mask[j] : NULL, -1);
    }
}

/* Must the tile's stores be masked (symbolic sizes, rows not tight)?  Only when a vector of it
 * would store past the end of the output plane: a row's partial last vector stored whole
 * spills into the next rows of the same plane, which later vectors of the same channel write,
 * on the same thread (a channel's vectors run in order in one call, without cv.parts),
 * while masked stores are slow (a 28-column row is 3.5 vectors: a tile of 6 held a
 * row's end in every tile, and on Zen 2 its masked stores took half the depthwise
 * convolution's time).  The vectors' offsets grow: the tile's last one decides. */
static LLVMValueRef conv_tile_ends_plane(Cg *g, const ConvCg *c, int nvec, const LLVMValueRef *yo) {
  LLVMValueRef end = LLVMBuildNSWAdd(g->b, yo[nvec - 1], ci64(g, c->s->cv.lanes), "");
  return LLVMBuildICmp(g->b, LLVMIntSGT, end, c->ysize, "");
}

static void conv_tile_store_symbolic(Cg *g, const ConvCg *c, const ConvTile *t, LLVMValueRef ends, LLVMValueRef *acc) {
  if (c->s->cv.tight) { /* conv_tile chose already: t->mask all NULL, or the row's end is here */
    conv_tile_store(g, c, t, t->mask[0] ? t->mask : NULL, acc);
    return;
  }
  LLVMBasicBlockRef masked = LLVMAppendBasicBlockInContext(g->ctx, g->fn, "conv_store_masked");
  LLVMBasicBlockRef plain = LLVMAppendBasicBlockInContext(g->ctx, g->fn, "conv_store_whole");
  LLVMBasicBlockRef done = LLVMAppendBasicBlockInContext(g->ctx, g->fn, "conv_stored");
  LLVMBuildCondBr(g->b, ends, masked, plain);
  for (int pass = 0; pass < 2; pass++) {
    LLVMPositionBuilderAtEnd(g->b, pass ? plain : masked);
    conv_tile_store(g, c, t, pass ? NULL : t->mask, acc);
    LLVMBuildBr(g->b, done);
  }
  LLVMPositionBuilderAtEnd(g->b, done);
}

/* y[co0 + r, vector v0 + j] for r < nco, j < nvec (static tile sizes, dynamic origin);
 * full_tiles: the tile is one of the whole tiles (not the partial one after them). */
static void conv_tile_sum(Cg *g, const ConvCg *c, const ConvTile *t, const LLVMValueRef *yo, LLVMValueRef ends);

static void conv_tile(Cg *g, const ConvCg *c, LLVMValueRef co0, LLVMValueRef v0, int nco, int nvec, bool full_tiles) {
  const Ls *s = c->s;
  int lanes = s->cv.lanes;
  LLVMValueRef xo[16], yo[16], rem[16];
  if (c->symbolic) conv_tile_positions(g, c, v0, nvec, xo, yo, rem);
  if (!c->symbolic) conv_tile_static_positions(g, c, v0, nvec, xo, yo, rem);
  /* a row's last vector: only its first rem lanes are stored (and loaded, when x's rows are
   * not padded to whole vectors).  A one-row image's whole tiles never hold it when the row's
   * vectors are not a whole number of tiles: their masks (recomputed in the loop when
   * registers run short) are left out.  32-bit lane indices: one compare per mask. */
  int64_t nv = s->cv.oh * c->chunks;
  bool whole = !c->symbolic && (s->cv.ow % lanes == 0 || (s->cv.oh == 1 && full_tiles && nv % s->cv.tile_vec != 0));
  LLVMValueRef lane_ix = lane_constants(g, g->i32, lanes, 1, 0), mask[16];
  for (int j = 0; j < nvec; j++)
    mask[j] = whole ? NULL : LLVMBuildICmp(g->b, LLVMIntSLT, lane_ix, splat(g, LLVMVectorType(g->i32, lanes), LLVMBuildTrunc(g->b, rem[j], g->i32, "")), "");
  LLVMTypeRef vty[16];
  for (int j = 0; j < nvec; j++) vty[j] = narrow_tail(g, c, v0, j, &mask[j]);
  LLVMValueRef ends = !c->symbolic || s->cv.tight ? NULL
                     : s->cv.parts > 1 ? conv_tile_partial(g, c, nvec, rem) /* the next row: another part's */
                                       : conv_tile_ends_plane(g, c, nvec, yo);
  if (c->symbolic && s->cv.tight) { /* masked loads only in a tile that holds a row's end */
    LLVMBasicBlockRef masked = LLVMAppendBasicBlockInContext(g->ctx, g->fn, "conv_tile_masked");
    LLVMBasicBlockRef plain = LLVMAppendBasicBlockInContext(g->ctx, g->fn, "conv_tile_whole");
    LLVMBasicBlockRef done = LLVMAppendBasicBlockInContext(g->ctx, g->fn, "conv_tile_done");
    LLVMBuildCondBr(g->b, conv_tile_partial(g, c, nvec, rem), masked, plain);
    LLVMValueRef none[16] = {0};
    for (int pass = 0; pass < 2; pass++) {
      LLVMPositionBuilderAtEnd(g->b, pass ? plain : masked);
      conv_tile_sum(g, c, &(ConvTile){co0, nco, nvec, vty, xo, pass ? none : mask}, yo, ends);
      LLVMBuildBr(g->b, done);
    }
    LLVMPositionBuilderAtEnd(g->b, done);
    return;
  }
  conv_tile_sum(g, c, &(ConvTile){co0, nco, nvec, vty, xo, mask}, yo, ends);
}

/* The tile's sums over (input channel, tap) steps, stored to y at output offsets yo (symbolic
 * sizes: masked when `ends`). */
static void conv_tile_sum(Cg *g, const ConvCg *c, const ConvTile *t, const LLVMValueRef *yo, LLVMValueRef ends) {
  const Ls *s = c->s;
  LLVMValueRef co0 = t->co0, acc[64];
  int nco = t->nco, nvec = t->nvec, nacc = nco * nvec;
  const LLVMTypeRef *vty = t->vty;
  const LLVMValueRef *xo = t->xo, *mask = t->mask;
  /* for (k = 0; k < cin * ntaps; k++), k = ci * ntaps + tap: the accumulators are phis of
   * the loop; the tap's input offset ci * xplane + tap[t] comes from the table xtab (with one
   * tap, it is computed) */
  LLVMValueRef init[64];       /* zeros, or D's values (C = D + A B, row tiles) */
  for (int r = 0; r < nco; r++) {
    LLVMValueRef d_row = c->add ? gep_f32(g, c->add, LLVMBuildNSWMul(g->b, LLVMBuildNSWAdd(g->b, co0, ci64(g, r), ""), c->add_ld, "")) : NULL;
    for (int j = 0; j < nvec; j++)
      init[r * nvec + j] = d_row ? load_vector(g, vty[j], gep_f32(g, d_row, yo[j]), mask[j], -1) : LLVMConstNull(vty[j]);
  }
  if (s->cv.cin * s->cv.ntaps <= CONV_UNROLLED_STEPS) {
    /* a few steps (a depthwise convolution's taps): unrolled, each tap's input offset a
     * constant, no table or loop counter to keep in registers */
    for (int64_t k = 0; k < s->cv.cin * s->cv.ntaps; k++) {
      int64_t xoff = c->symbolic ? 0 : k / s->cv.ntaps * s->cv.xplane + s->cv.tap[k % s->cv.ntaps];
      conv_step(g, c, &(ConvTile){co0, nco, nvec, vty, xo, mask}, ci64(g, k), c->symbolic ? c->koff[k] : ci64(g, xoff), init);
    }
    memcpy(acc, init, nacc * sizeof *acc);
  } else {
    LLVMBasicBlockRef pre = LLVMGetInsertBlock(g->b);
    LLVMBasicBlockRef head = LLVMAppendBasicBlockInContext(g->ctx, g->fn, "conv_k");
    LLVMBasicBlockRef body = LLVMAppendBasicBlockInContext(g->ctx, g->fn, "conv_fma");
    LLVMBasicBlockRef exit = LLVMAppendBasicBlockInContext(g->ctx, g->fn, "conv_store");
    LLVMBuildBr(g->b, head);
    LLVMPositionBuilderAtEnd(g->b, head);
    LLVMValueRef ci = LLVMBuildPhi(g->b, g->i64, "k");
    for (int a = 0; a < nacc; a++) acc[a] = LLVMBuildPhi(g->b, vty[a % nvec], "acc");
    /* symbolic sizes: a loop over input channels, the taps unrolled in it (their offsets
     * are run-time values: no constant table) */
    int64_t bound = c->symbolic ? s->cv.cin : s->cv.cin * s->cv.ntaps;
    LLVMBuildCondBr(g->b, LLVMBuildICmp(g->b, LLVMIntSLT, ci, ci64(g, bound), ""), body, exit);
    LLVMPositionBuilderAtEnd(g->b, body);
    LLVMValueRef next[64];
    memcpy(next, acc, nacc * sizeof *acc);
    if (c->symbolic) {
      LLVMValueRef plane = LLVMBuildNSWMul(g->b, ci, c->xplane, ""), k0 = LLVMBuildNSWMul(g->b, ci, ci64(g, s->cv.ntaps), "");
      for (int64_t t = 0; t < s->cv.ntaps; t++)
        conv_step(g, c, &(ConvTile){co0, nco, nvec, vty, xo, mask}, LLVMBuildNSWAdd(g->b, k0, ci64(g, t), ""),
                  LLVMBuildNSWAdd(g->b, plane, c->koff[t], ""), next);
    } else {
      LLVMValueRef xoff = c->xtab ? LLVMBuildLoad2(g->b, g->i64, LLVMBuildGEP2(g->b, g->i64, c->xtab, &ci, 1, ""), "")
                                  : LLVMBuildNSWAdd(g->b, LLVMBuildNSWMul(g->b, ci, ci64(g, s->cv.xplane), ""), ci64(g, s->cv.tap[0]), "");
      conv_step(g, c, &(ConvTile){co0, nco, nvec, vty, xo, mask}, ci, xoff, next);
    }
    LLVMValueRef ci1 = LLVMBuildNSWAdd(g->b, ci, ci64(g, 1), "");
    LLVMBasicBlockRef latch = LLVMGetInsertBlock(g->b);
    /* the tile's loop is 16 FMAs an iteration already: LLVM's runtime unrolling of it only
     * doubled the compile time */
    loop_hints(g, LLVMBuildBr(g->b, head), true, false, 0);
    LLVMAddIncoming(ci, (LLVMValueRef[]){ci64(g, 0), ci1}, (LLVMBasicBlockRef[]){pre, latch}, 2);
    for (int a = 0; a < nacc; a++)
      LLVMAddIncoming(acc[a], (LLVMValueRef[]){init[a], next[a]}, (LLVMBasicBlockRef[]){pre, latch}, 2);
    LLVMPositionBuilderAtEnd(g->b, exit);
  }
  if (c->symbolic) {
    conv_tile_store_symbolic(g, c, &(ConvTile){co0, nco, nvec, vty, yo, mask}, ends, acc);
    return;
  }
  for (int j = 0; j < nvec; j++)
    for (int r = 0; r < nco; r++) {
      LLVMValueRef co = LLVMBuildNSWAdd(g->b, co0, ci64(g, r), ""), v = acc[r * nvec + j];
      LLVMValueRef plane = LLVMBuildNSWMul(g->b, co, ci64(g, s->cv.oh * s->cv.ow), "");
      if (s->cv.epi) v = conv_epilogue(g, s, co, yo[j], vty[j], mask[j], v);
      store_vector(g, vty[j], v, gep_f32(g, c->y, LLVMBuildNSWAdd(g->b, plane, yo[j], "")), mask[j], -1);
    }
}

static void conv_vector_tile(Cg *g, const Ls *s, LLVMValueRef v0) {
  conv_tile(g, g->conv, g->conv->co0, v0, g->conv->nco, s->cv.tile_vec, true);
}

static void conv_wide_tile(Cg *g, const Ls *s, LLVMValueRef v0) {
  conv_tile(g, g->conv, g->conv->co0, v0, g->conv->nco, 2 * s->cv.tile_vec, true);
}

/* Symbolic sizes: the 0 .. tile_vec - 1 vectors after the whole tiles (from `first`), one
 * register tile per possible count. */
static void conv_rest_symbolic(Cg *g, LLVMValueRef co0, int nco, LLVMValueRef first) {
  ConvCg *c = g->conv;
  int tv = c->s->cv.tile_vec;
  if (tv < 2) return;
  LLVMBasicBlockRef done = LLVMAppendBasicBlockInContext(g->ctx, g->fn, "conv_rest_done");
  LLVMValueRef sw = LLVMBuildSwitch(g->b, LLVMBuildNSWSub(g->b, c->nv, first, ""), done, (unsigned)(tv - 1));
  for (int n = 1; n < tv; n++) {
    LLVMBasicBlockRef bb = LLVMAppendBasicBlockInContext(g->ctx, g->fn, "conv_rest");
    LLVMAddCase(sw, ci64(g, n), bb);
    LLVMPositionBuilderAtEnd(g->b, bb);
    conv_tile(g, c, co0, first, nco, n, false);
    LLVMBuildBr(g->b, done);
  }
  LLVMPositionBuilderAtEnd(g->b, done);
}

/* output channels [co0, co0 + nco): the whole tiles of vectors in a loop, then the rest
 * (of the current part's vectors, with cv.parts).  A tile of half the channels or fewer
 * takes twice the vectors: as many accumulators, as many independent FMA chains (a one-row
 * product, an LSTM step's at batch 1, ran at its chains' latency) */
static void conv_channels(Cg *g, LLVMValueRef co0, int nco) {
  ConvCg *c = g->conv;
  const Ls *s = c->s;
  int64_t nv = s->cv.oh * c->chunks, tv = s->cv.tile_vec, whole = nv / tv * tv;
  c->co0 = co0;
  c->nco = nco;
  LLVMValueRef lo = c->v_lo ? c->v_lo : ci64(g, 0), hi = c->v_hi ? c->v_hi : c->symbolic ? c->whole_v : ci64(g, whole);
  if (2 * nco <= s->cv.tile_co) { /* the wide tiles that fit, then one of tv vectors */
    LLVMValueRef span = LLVMBuildNSWSub(g->b, hi, lo, "");
    LLVMValueRef wide = LLVMBuildNSWAdd(g->b, lo, LLVMBuildNSWMul(g->b, LLVMBuildSDiv(g->b, span, ci64(g, 2 * tv), ""), ci64(g, 2 * tv), ""), "");
    counted_loop(g, lo, wide, ci64(g, 2 * tv), conv_wide_tile, s);
    lo = wide;
  }
  counted_loop(g, lo, hi, ci64(g, tv), conv_vector_tile, s);
  if (whole == nv && !c->symbolic) return;
  LLVMBasicBlockRef rest = NULL, done = NULL;
  if (c->tail) {
    rest = LLVMAppendBasicBlockInContext(g->ctx, g->fn, "conv_rest");
    done = LLVMAppendBasicBlockInContext(g->ctx, g->fn, "conv_rest_done");
    LLVMBuildCondBr(g->b, c->tail, rest, done);
    LLVMPositionBuilderAtEnd(g->b, rest);
  }
  if (c->symbolic) conv_rest_symbolic(g, co0, nco, c->whole_v);
  else conv_tile(g, c, co0, ci64(g, whole), nco, (int)(nv - whole), false);
  if (c->tail) {
    LLVMBuildBr(g->b, done);
    LLVMPositionBuilderAtEnd(g->b, done);
  }
}

static void conv_channel_tile(Cg *g, const Ls *s, LLVMValueRef t) {
  conv_channels(g, LLVMBuildNSWMul(g->b, t, ci64(g, s->cv.tile_co), ""), s->cv.tile_co);
}

/* Channel tiles [lo, hi) of the current item: the whole tiles in a loop, then the partial
 * last one (1 .. tile_co - 1 channels, by the chunk that holds it). */
static void conv_tile_range(Cg *g, LLVMValueRef lo, LLVMValueRef hi) {
  ConvCg *c = g->conv;
  const Ls *s = c->s;
  int64_t tc = s->cv.tile_co;
  LLVMValueRef whole = LLVMBuildSDiv(g->b, c->count, ci64(g, tc), "");
  LLVMValueRef whole_hi = LLVMBuildSelect(g->b, LLVMBuildICmp(g->b, LLVMIntSLT, hi, whole, ""), hi, whole, "");
  counted_loop(g, lo, whole_hi, ci64(g, 1), conv_channel_tile, s);
  if (!s->cv.rows && s->cv.cout % tc == 0) return;
  LLVMBasicBlockRef last = LLVMAppendBasicBlockInContext(g->ctx, g->fn, "conv_last_tile");
  LLVMBasicBlockRef done = LLVMAppendBasicBlockInContext(g->ctx, g->fn, "conv_done");
  LLVMBuildCondBr(g->b, LLVMBuildICmp(g->b, LLVMIntSGT, hi, whole, ""), last, done);
  LLVMPositionBuilderAtEnd(g->b, last);
  LLVMValueRef first = LLVMBuildNSWMul(g->b, whole, ci64(g, tc), "");
  /* its size: one register tile per possible size */
  int lo_rem = s->cv.rows ? 1 : (int)(s->cv.cout % tc), hi_rem = s->cv.rows ? (int)tc - 1 : lo_rem;
  LLVMValueRef sw = LLVMBuildSwitch(g->b, LLVMBuildNSWSub(g->b, c->count, first, ""), done, (unsigned)(hi_rem - lo_rem + 1));
  for (int r = lo_rem; r <= hi_rem; r++) {
    LLVMBasicBlockRef bb = LLVMAppendBasicBlockInContext(g->ctx, g->fn, "conv_rows");
    LLVMAddCase(sw, ci64(g, r), bb);
    LLVMPositionBuilderAtEnd(g->b, bb);
    conv_channels(g, first, r);
    LLVMBuildBr(g->b, done);
  }
  LLVMPositionBuilderAtEnd(g->b, done);
}

/* Cache-aware loop order.  The plain order (channel tiles outer, every vector tile inner)
 * keeps a channel tile's weights in L1 and reads the whole input again for each channel tile;
 * when the input is larger than L1 that re-reads it from L2 or further, row by row across
 * cin strided rows (a 1x1 convolution 384 -> 64 at 14x14 ran at a quarter of the FMA peak).
 * Blocked, the vector tiles go in blocks whose input fits in half of L1, and every channel
 * tile runs over a block before the next: the block's input is read once and the weights
 * (all of them, once per block) stream instead.  Blocks are used when that moves fewer
 * bytes. */
#define CONV_L1_BYTES (32 * 1024)

/* A vector tile's input bytes: tv vectors of each tap row of each input channel. */
static int64_t conv_tile_bytes(const Ls *s) {
  int64_t rows = 0, seen[64];
  for (int64_t t = 0; t < s->cv.ntaps && rows < 64; t++) {
    /* a row of the planes: symbolic sizes give the tap's (plane, row) */
    int64_t r = s->cv.size[0] ? s->cv.tap[3 * t] * 4096 + s->cv.tap[3 * t + 1] : s->cv.tap[t] / s->cv.xrow, k = 0;
    while (k < rows && seen[k] != r) k++;
    if (k == rows) seen[rows++] = r;
  }
  return 4 * s->cv.cin * rows * s->cv.tile_vec * s->cv.lanes;
}

/* Symbolic sizes: the same choice at run time.  The block size is static (the tile's bytes
 * are); whether blocks pay depends on the input's bytes and vector tiles: when they do not,
 * one block holds every vector tile (the plain order). */
static void conv_vector_block_symbolic(Cg *g, ConvCg *c) {
  const Ls *s = c->s;
  int64_t tv = s->cv.tile_vec, tile_bytes = conv_tile_bytes(s);
  if (s->cv.nbatch > 1 || s->cv.parts > 1) return;
  int64_t vb = tile_bytes >= CONV_L1_BYTES / 2 ? 1 : CONV_L1_BYTES / 2 / tile_bytes;
  int64_t w_bytes = 4 * s->cv.cout * s->cv.cin * s->cv.ntaps, co_tiles = (s->cv.cout + s->cv.tile_co - 1) / s->cv.tile_co;
  LLVMValueRef whole = LLVMBuildUDiv(g->b, c->whole_v, ci64(g, tv), "");
  LLVMValueRef x_bytes = LLVMBuildNSWMul(g->b, c->xplane, ci64(g, 4 * s->cv.cin), "");
  LLVMValueRef blocks = LLVMBuildUDiv(g->b, LLVMBuildNSWAdd(g->b, whole, ci64(g, vb - 1), ""), ci64(g, vb), "");
  LLVMValueRef pays = LLVMBuildAnd(g->b, LLVMBuildICmp(g->b, LLVMIntSGT, x_bytes, ci64(g, CONV_L1_BYTES), ""),
                                   LLVMBuildICmp(g->b, LLVMIntSGT, whole, ci64(g, vb), ""), "");
  pays = LLVMBuildAnd(g->b, pays, LLVMBuildICmp(g->b, LLVMIntSLT, LLVMBuildNSWMul(g->b, blocks, ci64(g, w_bytes), ""),
                                                LLVMBuildNSWMul(g->b, x_bytes, ci64(g, co_tiles), ""), ""), "");
  LLVMValueRef all = LLVMBuildSelect(g->b, LLVMBuildICmp(g->b, LLVMIntSGT, whole, ci64(g, 1), ""), whole, ci64(g, 1), "");
  c->vblock = vb;
  c->vblock_v = LLVMBuildSelect(g->b, pays, ci64(g, vb), all, "");
  /* no division by the run-time block size: a depthwise convolution calls this once a channel */
  c->nblocks_v = LLVMBuildSelect(g->b, pays, blocks, ci64(g, 1), "");
}

static int64_t conv_vector_block(const Ls *s, int64_t chunks) {
  int64_t tv = s->cv.tile_vec, whole = s->cv.oh * chunks / tv;
  if (s->cv.nbatch > 1 || s->cv.parts > 1 || whole < 2) return 0;
  int64_t x_bytes = 4 * s->cv.cin * s->cv.xplane, w_bytes = 4 * s->cv.cout * s->cv.cin * s->cv.ntaps;
  if (x_bytes <= CONV_L1_BYTES) return 0; /* the input stays in L1 anyway */
  int64_t tile_bytes = conv_tile_bytes(s);
  int64_t vb = tile_bytes >= CONV_L1_BYTES / 2 ? 1 : CONV_L1_BYTES / 2 / tile_bytes;
  if (vb >= whole) return 0;
  int64_t co_tiles = (s->cv.cout + s->cv.tile_co - 1) / s->cv.tile_co, blocks = (whole + vb - 1) / vb;
  return blocks * w_bytes < co_tiles * x_bytes ? vb : 0;
}

/* Block b of vector tiles: every channel tile of the call over it; the partial vector tile
 * with the last block. */
static void conv_block(Cg *g, const Ls *s, LLVMValueRef b) {
  ConvCg *c = g->conv;
  if (c->symbolic) {
    LLVMValueRef span = LLVMBuildNSWMul(g->b, c->vblock_v, ci64(g, s->cv.tile_vec), "");
    c->v_lo = LLVMBuildNSWMul(g->b, b, span, "");
    LLVMValueRef hi = LLVMBuildNSWAdd(g->b, c->v_lo, span, "");
    c->v_hi = LLVMBuildSelect(g->b, LLVMBuildICmp(g->b, LLVMIntSLT, hi, c->whole_v, ""), hi, c->whole_v, "");
    c->tail = LLVMBuildICmp(g->b, LLVMIntEQ, b, LLVMBuildNSWSub(g->b, c->nblocks_v, ci64(g, 1), ""), "");
    conv_tile_range(g, c->tile_lo, c->tile_hi);
    c->v_lo = c->v_hi = c->tail = NULL;
    return;
  }
  int64_t tv = s->cv.tile_vec, whole = s->cv.oh * c->chunks / tv, nblocks = (whole + c->vblock - 1) / c->vblock;
  c->v_lo = LLVMBuildNSWMul(g->b, b, ci64(g, c->vblock * tv), "");
  LLVMValueRef hi = LLVMBuildNSWAdd(g->b, c->v_lo, ci64(g, c->vblock * tv), "");
  c->v_hi = LLVMBuildSelect(g->b, LLVMBuildICmp(g->b, LLVMIntSLT, hi, ci64(g, whole * tv), ""), hi, ci64(g, whole * tv), "");
  c->tail = LLVMBuildICmp(g->b, LLVMIntEQ, b, ci64(g, nblocks - 1), "");
  conv_tile_range(g, c->tile_lo, c->tile_hi);
  c->v_lo = c->v_hi = c->tail = NULL;
}

/* Channel tiles [lo, hi), in vector blocks when c->vblock says so. */
static void conv_tile_blocks(Cg *g, const Ls *s, LLVMValueRef lo, LLVMValueRef hi) {
  ConvCg *c = g->conv;
  if (!c->vblock) {
    conv_tile_range(g, lo, hi);
    return;
  }
  int64_t whole = s->cv.oh * c->chunks / s->cv.tile_vec;
  c->tile_lo = lo, c->tile_hi = hi;
  LLVMValueRef nblocks = c->symbolic ? c->nblocks_v : ci64(g, (whole + c->vblock - 1) / c->vblock);
  counted_loop(g, ci64(g, 0), nblocks, ci64(g, 1), conv_block, s);
}

/* The channel tiles of `count` output channels (the last one partial). */
static LLVMValueRef conv_tiles(Cg *g, const Ls *s, LLVMValueRef count) {
  return LLVMBuildSDiv(g->b, LLVMBuildNSWAdd(g->b, count, ci64(g, s->cv.tile_co - 1), ""), ci64(g, s->cv.tile_co), "");
}

/* Iteration t of a batch of convolutions: tile t % tiles of item t / tiles. */
static void conv_item_tile(Cg *g, const Ls *s, LLVMValueRef t) {
  ConvCg *c = g->conv;
  LLVMValueRef tiles = conv_tiles(g, s, c->count);
  LLVMValueRef item = LLVMBuildSDiv(g->b, t, tiles, ""), tile = LLVMBuildSRem(g->b, t, tiles, "");
  c->x = gep_f32(g, c->x0, LLVMBuildNSWMul(g->b, item, c->x_bstride, ""));
  c->w = gep_f32(g, c->w0, LLVMBuildNSWMul(g->b, item, ci64(g, s->cv.w_bstride), ""));
  c->y = gep_f32(g, c->y0, LLVMBuildNSWMul(g->b, item, c->y_bstride, ""));
  conv_tile_range(g, tile, LLVMBuildNSWAdd(g->b, tile, ci64(g, 1), ""));
}

/* Iteration t of a convolution in parts: part t % parts of channel tile t / parts, or with
 * cv.part_major channel tile t % tiles of part t / tiles, so that a run of iterations (one
 * thread's) sweeps every channel tile over one part of an input larger than L2 while that
 * part is cached.  Whole vector tiles in equal runs, the partial one in the last part. */
static void conv_tile_part(Cg *g, const Ls *s, LLVMValueRef t) {
  ConvCg *c = g->conv;
  int64_t nv = s->cv.oh * c->chunks, tv = s->cv.tile_vec, whole = nv / tv;
  int64_t per = (whole + s->cv.parts - 1) / s->cv.parts * tv;
  LLVMValueRef part, tile;
  if (s->cv.part_major) {
    LLVMValueRef tiles = conv_tiles(g, s, c->count);
    part = LLVMBuildSDiv(g->b, t, tiles, "");
    tile = LLVMBuildSRem(g->b, t, tiles, "");
  } else {
    part = LLVMBuildSRem(g->b, t, ci64(g, s->cv.parts), "");
    tile = LLVMBuildSDiv(g->b, t, ci64(g, s->cv.parts), "");
  }
  c->v_lo = LLVMBuildNSWMul(g->b, part, ci64(g, per), "");
  LLVMValueRef hi = LLVMBuildNSWAdd(g->b, c->v_lo, ci64(g, per), "");
  c->v_hi = LLVMBuildSelect(g->b, LLVMBuildICmp(g->b, LLVMIntSLT, hi, ci64(g, whole * tv), ""), hi, ci64(g, whole * tv), "");
  c->tail = LLVMBuildICmp(g->b, LLVMIntEQ, part, ci64(g, s->cv.parts - 1), "");
  conv_tile_range(g, tile, LLVMBuildNSWAdd(g->b, tile, ci64(g, 1), ""));
  c->v_lo = c->v_hi = c->tail = NULL;
}

/* The constant table of input offsets ci * xplane + tap[t] at k = ci * ntaps + t. */
static LLVMValueRef conv_offsets(Cg *g, const Ls *s) {
  int64_t n = s->cv.cin * s->cv.ntaps;
  LLVMValueRef *v = nnc_xmalloc(n * sizeof *v);
  for (int64_t k = 0; k < n; k++) v[k] = ci64(g, k / s->cv.ntaps * s->cv.xplane + s->cv.tap[k % s->cv.ntaps]);
  LLVMTypeRef at = LLVMArrayType2(g->i64, (uint64_t)n);
  LLVMValueRef tab = LLVMAddGlobal(g->mod, at, "nnc.conv_offsets");
  LLVMSetInitializer(tab, LLVMConstArray2(g->i64, v, (uint64_t)n));
  LLVMSetGlobalConstant(tab, 1);
  LLVMSetLinkage(tab, LLVMPrivateLinkage);
  LLVMSetUnnamedAddress(tab, LLVMGlobalUnnamedAddr);
  free(v);
  return tab;
}

/* The pointer array a convolution's kernel function takes (emit_conv fills it): its input
 * copy, weights and output with their offsets applied; the run-time count of output channels
 * when s has one; D's first row and D's row stride when s adds D (C = D + A B); symbolic
 * sizes' oh, ow, hq, wq and a batch's run-time x and y strides; a fused epilogue's args
 * (outline.c).  Counts, sizes and strides are integers stored as pointers. */
enum { CONV_X, CONV_W, CONV_Y, CONV_ROWS, CONV_ADD, CONV_ADD_LD, CONV_SIZES, CONV_BSTRIDES = CONV_SIZES + 4, CONV_EPI = CONV_BSTRIDES + 2,
       CONV_NBUFS };

static LLVMValueRef conv_buf_at(Cg *g, LLVMValueRef bufs, int i) {
  return LLVMBuildGEP2(g->b, g->ptr, bufs, (LLVMValueRef[]){ci64(g, i)}, 1, "");
}

static LLVMValueRef conv_buf(Cg *g, LLVMValueRef bufs, int i) {
  return LLVMBuildLoad2(g->b, g->ptr, conv_buf_at(g, bufs, i), "");
}

static LLVMValueRef conv_buf_int(Cg *g, LLVMValueRef bufs, int i) {
  return LLVMBuildPtrToInt(g->b, conv_buf(g, bufs, i), g->i64, "");
}

static void set_conv_buf_int(Cg *g, LLVMValueRef bufs, int i, LLVMValueRef v) {
  LLVMBuildStore(g->b, LLVMBuildIntToPtr(g->b, v, g->ptr, ""), conv_buf_at(g, bufs, i));
}

/* Symbolic sizes: the layout's values from the run-time oh, ow, hq, wq (CONV_SIZES ..), and
 * each step's input offset (unrolled steps) or each tap's (the loop over input channels). */
static void conv_symbolic_layout(Cg *g, ConvCg *c, LLVMValueRef bufs) {
  const Ls *s = c->s;
  LLVMValueRef size[4];
  for (int i = 0; i < 4; i++) size[i] = conv_buf_int(g, bufs, CONV_SIZES + i);
  int64_t lanes = s->cv.lanes, ntaps = s->cv.ntaps, steps = s->cv.cin * ntaps;
  c->symbolic = true;
  c->oh = size[0], c->ow = size[1], c->xrow = size[3];
  c->xplane = LLVMBuildNSWMul(g->b, ci64(g, s->cv.nplanes), LLVMBuildNSWMul(g->b, size[2], size[3], ""), "");
  c->ysize = LLVMBuildNSWMul(g->b, c->oh, c->ow, "");
  c->nchunks = LLVMBuildUDiv(g->b, LLVMBuildNSWAdd(g->b, c->ow, ci64(g, lanes - 1), ""), ci64(g, lanes), "");
  c->nv = LLVMBuildNSWMul(g->b, c->oh, c->nchunks, "");
  c->whole_v = LLVMBuildNSWMul(g->b, LLVMBuildUDiv(g->b, c->nv, ci64(g, s->cv.tile_vec), ""), ci64(g, s->cv.tile_vec), "");
  LLVMTypeRef f64 = LLVMDoubleTypeInContext(g->ctx);
  c->inv_chunks = LLVMBuildFDiv(g->b, LLVMConstReal(f64, 1.0), LLVMBuildSIToFP(g->b, c->nchunks, f64, ""), "");
  LLVMValueRef *tap = nnc_xmalloc(ntaps * sizeof *tap);
  for (int64_t t = 0; t < ntaps; t++) { /* (plane * hq + row) * wq + col */
    const int64_t *p = &s->cv.tap[3 * t];
    LLVMValueRef rows = LLVMBuildNSWAdd(g->b, LLVMBuildNSWMul(g->b, ci64(g, p[0]), size[2], ""), ci64(g, p[1]), "");
    tap[t] = LLVMBuildNSWAdd(g->b, LLVMBuildNSWMul(g->b, rows, size[3], ""), ci64(g, p[2]), "");
  }
  if (steps <= CONV_UNROLLED_STEPS) {
    c->koff = nnc_xmalloc(steps * sizeof *c->koff);
    for (int64_t k = 0; k < steps; k++)
      c->koff[k] = LLVMBuildNSWAdd(g->b, LLVMBuildNSWMul(g->b, ci64(g, k / ntaps), c->xplane, ""), tap[k % ntaps], "");
    free(tap);
    return;
  }
  c->koff = tap;
}

/* An nnc_kernel_fn computing the channel tiles [lo, hi) of convolution s, from the pointers
 * CONV_X .. CONV_ADD_LD (and the sizes CONV_SIZES .. and a batch's strides CONV_BSTRIDES ..
 * when they are symbolic). */
static LLVMValueRef conv_function(Cg *g, const Ls *s, const Uses *epi) {
  Caller aside; /* the kernel's state, put back at the end (its values not reachable here) */
  put_aside(g, &aside);
  size_t len;
  const char *kname = LLVMGetValueName2(aside.fn, &len);
  char name[256];
  snprintf(name, sizeof name, "%.*s.conv", (int)(len < 200 ? len : 200), kname);
  LLVMValueRef fn = LLVMAddFunction(g->mod, name, g->kernel_fn);
  LLVMSetLinkage(fn, LLVMInternalLinkage);
  g->fn = fn;
  LLVMPositionBuilderAtEnd(g->b, LLVMAppendBasicBlockInContext(g->ctx, fn, "entry"));
  ConvCg c = {.s = s, .vt = LLVMVectorType(g->f32, (unsigned)s->cv.lanes)};
  LLVMValueRef bufs = LLVMGetParam(fn, 0);
  c.x = conv_buf(g, bufs, CONV_X);
  c.w = conv_buf(g, bufs, CONV_W);
  c.y = conv_buf(g, bufs, CONV_Y);
  c.chunks = (s->cv.ow + s->cv.lanes - 1) / s->cv.lanes;
  int parent = 0;
  if (epi) {
    uses_take(g, epi, conv_buf(g, bufs, CONV_EPI));
    parent = scope_push(g);
  }
  if (s->cv.size[0]) conv_symbolic_layout(g, &c, bufs);
  else c.xtab = s->cv.ntaps > 1 ? conv_offsets(g, s) : NULL;
  g->conv = &c;
  LLVMValueRef lo = LLVMGetParam(fn, 2), hi = LLVMGetParam(fn, 3);
  /* the output channels: cout, or the run-time row count */
  c.count = s->cv.rows ? conv_buf_int(g, bufs, CONV_ROWS) : ci64(g, s->cv.cout);
  if (s->cv.add >= 0) {
    c.add = conv_buf(g, bufs, CONV_ADD);
    c.add_ld = conv_buf_int(g, bufs, CONV_ADD_LD);
  }
  if (s->cv.nbatch > 1) { /* iterations (item, tile), the items' operands strides apart */
    c.x0 = c.x, c.w0 = c.w, c.y0 = c.y;
    c.x_bstride = s->cv.bstride[0] ? conv_buf_int(g, bufs, CONV_BSTRIDES) : ci64(g, s->cv.x_bstride);
    c.y_bstride = s->cv.bstride[0] ? conv_buf_int(g, bufs, CONV_BSTRIDES + 1) : ci64(g, s->cv.y_bstride);
    counted_loop(g, lo, hi, ci64(g, 1), conv_item_tile, s);
  } else if (s->cv.parts > 1) {
    counted_loop(g, lo, hi, ci64(g, 1), conv_tile_part, s);
  } else {
    if (c.symbolic) conv_vector_block_symbolic(g, &c);
    else c.vblock = conv_vector_block(s, c.chunks);
    conv_tile_blocks(g, s, lo, hi);
  }
  LLVMBuildRetVoid(g->b);
  free(c.koff);
  g->conv = NULL;
  if (epi) {
    scope_pop(g, parent);
    uses_drop(g);
  }
  restore(g, &aside);
  return fn;
}

void emit_conv(Cg *g, Ls *s) {
  LLVMValueRef bufs = entry_alloca(g, LLVMArrayType(g->ptr, CONV_NBUFS), "conv_bufs");
  Uses epi = {0};
  if (s->cv.epi) { /* what the epilogue reads, but its own channel and column */
    epi = uses_new(g);
    uses_of_expr(g, &epi, s->cv.epi);
    epi.inner[s->cv.epi_ch] = epi.inner[s->cv.epi_pos] = true;
    LLVMBuildStore(g->b, uses_pass(g, &epi), conv_buf_at(g, bufs, CONV_EPI));
  }
  LLVMValueRef fn = conv_function(g, s, s->cv.epi ? &epi : NULL);
  if (s->cv.epi) uses_free(&epi);
  int bi[3] = {s->cv.x, s->cv.w, s->cv.y};
  Lx *off[3] = {s->cv.x_off, s->cv.w_off, s->cv.y_off};
  for (int i = CONV_X; i <= CONV_Y; i++)
    LLVMBuildStore(g->b, gep_f32(g, g->bufs[bi[i]], emit(g, off[i])), conv_buf_at(g, bufs, i));
  LLVMValueRef count = ci64(g, s->cv.cout);
  if (s->cv.rows) {
    count = emit(g, s->cv.rows);
    set_conv_buf_int(g, bufs, CONV_ROWS, count);
  }
  if (s->cv.add >= 0) {
    LLVMBuildStore(g->b, gep_f32(g, g->bufs[s->cv.add], emit(g, s->cv.add_off)), conv_buf_at(g, bufs, CONV_ADD));
    set_conv_buf_int(g, bufs, CONV_ADD_LD, emit(g, s->cv.add_ld));
  }
  for (int i = 0; i < 4 && s->cv.size[0]; i++) set_conv_buf_int(g, bufs, CONV_SIZES + i, emit(g, s->cv.size[i]));
  for (int i = 0; i < 2 && s->cv.bstride[0]; i++) set_conv_buf_int(g, bufs, CONV_BSTRIDES + i, emit(g, s->cv.bstride[i]));
  LLVMValueRef tiles = LLVMBuildNSWMul(g->b, conv_tiles(g, s, count), ci64(g, s->cv.nbatch * s->cv.parts), "");
  call_parallel(g, s->cv.parts > 1 ? "nnc_rt_parallel_parts" : "nnc_rt_parallel_for", fn, bufs, tiles,
                loopir_conv_fmas(s, s->cv.tile_co) / s->cv.parts);
}
