/* col2im.c — col2im (the adjoint of im2col) in PyTorch's summation order: a gather writing
 * each output once when there is no dilation, else PyTorch's scatter of additions. */
#include <string.h>
#include "lower_internal.h"

/* col2im without dilation as a gather: output (.., y, x) sums the column elements that land
 * on it, those of kh = (y + pad) % s + t s and ih = (y + pad) / s - t for t = 0, 1, .. (kh <
 * KH, 0 <= ih < H; the same along x), from 0 in PyTorch's order (kh, then kw, ascending): the
 * sums are PyTorch's, bit for bit.  One pass writing each output once, which splits among
 * threads, instead of a scatter of read-modify-writes (markedly slower on fcn's 16x16
 * stride-8 upsampling). */
static void lower_col2im_gather(Lower *L, Ls *body, int ibuf, int obuf) {
  INode *n = L->K->outs[0];
  const Shape *cs = &n->in[0]->shape, *os = &n->shape;
  int lead = cs->rank - 4, order[MAX_RANK];
  for (int i = 0; i < MAX_RANK; i++) order[i] = i;
  Lx *v[MAX_RANK], *q[2], *rem[2], *zero = lx_f(L, 0.0);
  Ls *blk = loop_nest(L, body, os, order, os->rank, v);
  int64_t taps[2];
  for (int a = 0; a < 2; a++) {
    Lx *p = ibin(L, '+', v[lead + a], lx_i(L, n->i[2 + a]));
    q[a] = ibin(L, '/', p, lx_i(L, n->i[a]));
    rem[a] = ibin(L, '%', p, lx_i(L, n->i[a]));
    taps[a] = (cs->d[lead + a].k + n->i[a] - 1) / n->i[a];
  }
  Lx *sum = zero, *ci[MAX_RANK];
  memcpy(ci, v, lead * sizeof *ci);
  for (int64_t ty = 0; ty < taps[0]; ty++)
    for (int64_t tx = 0; tx < taps[1]; tx++) {
      Lx *valid = NULL, *t[2] = {lx_i(L, ty), lx_i(L, tx)};
      for (int a = 0; a < 2; a++) {
        int64_t k = cs->d[lead + a].k;
        Dim in = cs->d[lead + 2 + a]; /* symbolic on a symbolic image size */
        Lx *kk = ibin(L, '+', rem[a], ibin(L, '*', t[a], lx_i(L, n->i[a]))), *ii = ibin(L, '-', q[a], t[a]);
        Lx *c = ibin(L, '&', ibin(L, '<', kk, lx_i(L, k)), inside_dim(L, ii, in));
        valid = valid ? ibin(L, '&', valid, c) : c;
        ci[lead + a] = clamp(L, kk, 0, k - 1);
        ci[lead + 2 + a] = clamp_dim(L, ii, in);
      }
      Lx *x = lx(L, (Lx){.k = LX_LOAD, .buf = ibuf, .a = {linear(L, cs, ci)}});
      sum = fop(L, OP_ADD, sum, select3(L, valid, x, zero));
    }
  store(L, blk, obuf, linear(L, os, v), sum);
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
