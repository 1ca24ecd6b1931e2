/* col2im.c — col2im (the adjoint of im2col) in PyTorch's summation order: a gather writing
 * each output once when there is no dilation, else PyTorch's scatter of additions. */
#include <string.h>
#include "lower_internal.h"

/* The taps of one axis that land on output position v (y or x) of a col2im without dilation:
 * tap t is kernel position k = (v + pad) % s + t s and input position i = (v + pad) / s - t,
 * valid when k < K and 0 <= i < size; k and i are clamped so that an invalid tap still loads
 * inside the columns (its value is then dropped). */
typedef struct AxisTaps {
  int64_t n;        /* taps: at most ceil(K / s) */
  Lx **k, **i;      /* [n] each tap's kernel and input position */
  Lx **valid;       /* [n] each tap's condition; NULL: always valid */
} AxisTaps;

static void taps_alloc(Lower *L, int64_t kernel, int64_t stride, AxisTaps *a) {
  size_t n = (size_t)((kernel + stride - 1) / stride);
  a->k = arena_alloc(L->m->arena, n * sizeof *a->k);
  a->i = arena_alloc(L->m->arena, n * sizeof *a->i);
  a->valid = arena_alloc(L->m->arena, n * sizeof *a->valid);
}

static void general_taps(Lower *L, Lx *v, int64_t kernel, int64_t stride, int64_t pad, Dim in, AxisTaps *a) {
  Lx *p = ibin(L, '+', v, lx_i(L, pad)), *q = ibin(L, '/', p, lx_i(L, stride)), *rem = ibin(L, '%', p, lx_i(L, stride));
  taps_alloc(L, kernel, stride, a);
  a->n = (kernel + stride - 1) / stride;
  for (int64_t t = 0; t < a->n; t++) {
    Lx *kk = ibin(L, '+', rem, lx_i(L, t * stride)), *ii = ibin(L, '-', q, lx_i(L, t));
    a->valid[t] = ibin(L, '&', ibin(L, '<', kk, lx_i(L, kernel)), inside_dim(L, ii, in));
    a->k[t] = clamp(L, kk, 0, kernel - 1);
    a->i[t] = clamp_dim(L, ii, in);
  }
}

/* The taps of output column x = j s + r - pad for a static phase r and a j at which every
 * tap's input column j - t is inside the input: kernel columns r + t s past the kernel are
 * left out (they added 0), and the others load contiguous columns as j runs. */
static void interior_taps(Lower *L, Lx *j, int64_t r, int64_t kernel, int64_t stride, AxisTaps *a) {
  taps_alloc(L, kernel, stride, a);
  a->n = 0;
  for (int64_t t = 0; r + t * stride < kernel; t++, a->n++) {
    a->k[a->n] = lx_i(L, r + t * stride);
    a->i[a->n] = ibin(L, '-', j, lx_i(L, t));
    a->valid[a->n] = NULL;
  }
}

/* Output element (.., y, x) stored as the sum over the taps of both axes from 0, in PyTorch's
 * order (kernel row, then kernel column, ascending): PyTorch's sums, bit for bit (a dropped
 * tap added 0, which changes no sum that starts at +0). */
static void store_sum(Lower *L, Ls *blk, int ibuf, int obuf, const Shape *cs, const Shape *os, Lx *const *out,
                      const AxisTaps *ty, const AxisTaps *tx) {
  int lead = cs->rank - 4;
  Lx *sum = lx_f(L, 0.0), *zero = sum, *ci[MAX_RANK];
  memcpy(ci, out, lead * sizeof *ci);
  for (int64_t a = 0; a < ty->n; a++)
    for (int64_t b = 0; b < tx->n; b++) {
      ci[lead] = ty->k[a];
      ci[lead + 1] = tx->k[b];
      ci[lead + 2] = ty->i[a];
      ci[lead + 3] = tx->i[b];
      Lx *valid = ty->valid[a] && tx->valid[b] ? ibin(L, '&', ty->valid[a], tx->valid[b])
                                               : ty->valid[a] ? ty->valid[a] : tx->valid[b];
      Lx *x = lx(L, (Lx){.k = LX_LOAD, .buf = ibuf, .a = {linear(L, cs, ci)}});
      sum = fop(L, OP_ADD, sum, valid ? select3(L, valid, x, zero) : x);
    }
  store(L, blk, obuf, linear(L, os, out), sum);
}

/* Columns [lo, hi) of the output row at out[0 .. lead + 1), each from the general taps. */
static void general_columns(Lower *L, Ls *row, int ibuf, int obuf, const Shape *cs, const Shape *os, Lx **out,
                            const AxisTaps *ty, int64_t lo, Lx *hi) {
  INode *n = L->K->outs[0];
  int lead = cs->rank - 4;
  if (hi->k == LX_I && hi->c <= lo) return;
  AxisTaps tx;
  Ls *cols = loop(L, row, lx_i(L, lo), hi, lx_i(L, 1), &out[lead + 1]);
  cols->vector_row = lo == 0 && hi->k == LX_I && hi->c <= SHORT_ROW; /* a whole short row, as loop_nest's */
  general_taps(L, out[lead + 1], cs->d[lead + 1].k, n->i[1], n->i[3], cs->d[lead + 3], &tx);
  store_sum(L, cols, ibuf, obuf, cs, os, out, ty, &tx);
}

/* A row of a static width, in three parts: the columns every tap of which is inside the
 * input, j = (x + pad) / s in [jlo, jhi), as one loop over j that stores the s columns j s
 * + r - pad (r = 0 .. s-1) side by side, each from contiguous input columns, so that LLVM
 * vectorizes it with whole loads (the general taps divide x by s in every column: gathers);
 * and the columns before and after, from the general taps.  False when no j is inside. */
static bool phase_split_row(Lower *L, Ls *row, int ibuf, int obuf, const Shape *cs, const Shape *os, Lx **out,
                            const AxisTaps *ty) {
  INode *n = L->K->outs[0];
  int lead = cs->rank - 4;
  int64_t kernel = cs->d[lead + 1].k, in = cs->d[lead + 3].k, width = os->d[lead + 1].k;
  int64_t s = n->i[1], pad = n->i[3], taps = (kernel + s - 1) / s;
  int64_t jlo = taps - 1, jhi = in;
  if (jlo * s < pad) jlo = (pad + s - 1) / s;        /* x = j s - pad >= 0 */
  if (jhi * s - pad > width) jhi = (width + pad) / s; /* x = j s + s - 1 - pad < width */
  if (jhi <= jlo) return false;
  general_columns(L, row, ibuf, obuf, cs, os, out, ty, 0, lx_i(L, jlo * s - pad));
  Lx *j;
  Ls *inner = loop(L, row, lx_i(L, jlo), lx_i(L, jhi), lx_i(L, 1), &j);
  for (int64_t r = 0; r < s; r++) {
    AxisTaps tx;
    interior_taps(L, j, r, kernel, s, &tx);
    out[lead + 1] = ibin(L, '+', ibin(L, '*', j, lx_i(L, s)), lx_i(L, r - pad));
    store_sum(L, inner, ibuf, obuf, cs, os, out, ty, &tx);
  }
  general_columns(L, row, ibuf, obuf, cs, os, out, ty, jhi * s - pad, lx_i(L, width));
  return true;
}

/* col2im without dilation as a gather: output (.., y, x) sums the column elements that land
 * on it (general_taps), from 0 in PyTorch's order.  One pass writing each output once, which
 * splits among threads, instead of a scatter of read-modify-writes (markedly slower on fcn's
 * 16x16 stride-8 upsampling); rows of a static width in phases (phase_split_row). */
static void lower_col2im_gather(Lower *L, Ls *body, int ibuf, int obuf) {
  INode *n = L->K->outs[0];
  const Shape *cs = &n->in[0]->shape, *os = &n->shape;
  int lead = cs->rank - 4, order[MAX_RANK];
  for (int i = 0; i < MAX_RANK; i++) order[i] = i;
  Lx *v[MAX_RANK];
  Ls *row = loop_nest(L, body, os, order, os->rank - 1, v);
  row->vector_row = false; /* the row loops inside are the candidates */
  AxisTaps ty;
  general_taps(L, v[lead], cs->d[lead].k, n->i[0], n->i[2], cs->d[lead + 2], &ty);
  bool static_row = !os->d[lead + 1].syms && !cs->d[lead + 3].syms;
  if (!static_row || !phase_split_row(L, row, ibuf, obuf, cs, os, v, &ty))
    general_columns(L, row, ibuf, obuf, cs, os, v, &ty, 0, lx_dim(L, os->d[lead + 1]));
}

/* col2im as PyTorch's: zero the output, then add every column element at its position, in
 * the order (channel, kh, kw, ih, iw); positions outside the output add nothing. */
void lower_col2im(Lower *L, Ls *body) {
  INode *n = L->K->outs[0], *cols = n->in[0];
  int ibuf = buffer_of(L, cols), obuf = buffer_of(L, n);
  if (ibuf < 0) unreachable("col2im operand not in memory");
  if (n->i[4] == 1 && n->i[5] == 1) {
    lower_col2im_gather(L, body, ibuf, obuf);
    return;
  }
  const Shape *cs = &cols->shape, *os = &n->shape;
  int r = cs->rank, lead = r - 4;
  int order[MAX_RANK];
  for (int i = 0; i < MAX_RANK; i++) order[i] = i;
  Lx *zv[MAX_RANK];
  Ls *zero = loop_nest(L, body, os, order, os->rank, zv);
  store(L, zero, obuf, linear(L, os, zv), lx_f(L, 0.0));
  Lx *v[MAX_RANK];
  Ls *blk = loop_nest(L, body, cs, order, r, v);
  Lx *oidx[MAX_RANK], *cond = NULL;
  memcpy(oidx, v, lead * sizeof *oidx);
  for (int a = 0; a < 2; a++) {
    Dim size = os->d[lead + a];
    Lx *o = ibin(L, '+', ibin(L, '-', ibin(L, '*', v[lead + 2 + a], lx_i(L, n->i[a])), lx_i(L, n->i[2 + a])),
                 ibin(L, '*', v[lead + a], lx_i(L, n->i[4 + a])));
    Lx *c = inside_dim(L, o, size);
    cond = cond ? ibin(L, '&', cond, c) : c;
    oidx[lead + a] = clamp_dim(L, o, size);
  }
  Lx *at = linear(L, os, oidx);
  Lx *add = select3(L, cond, lx(L, (Lx){.k = LX_LOAD, .buf = ibuf, .a = {linear(L, cs, v)}}), lx_f(L, 0.0));
  store(L, blk, obuf, at, fop(L, OP_ADD, lx(L, (Lx){.k = LX_LOAD, .buf = obuf, .a = {at}}), add));
}
