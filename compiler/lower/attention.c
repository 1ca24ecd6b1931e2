/* attention.c — ATTENTION (softmax(q kᵀ · scale) v) as loops over (leading block, query row)
 * with no [L, S] scores in memory, so L and S may be symbolic, even the same symbol.
 *
 * Per query row, three passes over the keys:
 *   m   = max_s (q·k_s) · scale                       (the row's largest score)
 *   out = Σ_s exp((q·k_s) · scale − m) · v_s,  z = Σ_s exp(...)   (into the output row)
 *   out = out / z
 * The dot products are computed twice; the loop IR's accumulators are sums and maxima, so
 * the online softmax's rescaled accumulator does not fit them, and at head dims of 32–64 a
 * second dot product costs about what rescaling the output row at every key would.  A
 * causal row l reads keys 0..min(l, S - 1).  NaN in a score propagates to its row, as in
 * torch's softmax. */
#include "lower_internal.h"

/* acc = (rop's identity); for s in [lo, hi): acc (rop)= value — a new accumulator's index */
static int new_acc(Lower *L, Ls *parent, Op rop) {
  Ls *init = ls_new(L, LS_ACC_INIT);
  init->acc = L->naccs++;
  init->rop = rop;
  ls_add(L, parent, init);
  return init->acc;
}

static void acc_update(Lower *L, Ls *parent, int acc, Op rop, Lx *val) {
  Ls *upd = ls_new(L, LS_ACC_UPDATE);
  upd->acc = acc;
  upd->rop = rop;
  upd->val = val;
  ls_add(L, parent, upd);
}

static Lx *acc_value(Lower *L, int acc) { return lx(L, (Lx){.k = LX_ACC, .acc = acc}); }

static Lx *load(Lower *L, int buf, Lx *idx) { return lx(L, (Lx){.k = LX_LOAD, .buf = buf, .a = {idx}}); }

/* q_row · k_s scaled, summed into a new accumulator inside `parent` */
static Lx *score(Lower *L, Ls *parent, int qbuf, int kbuf, Lx *qrow, Lx *krow, Lx *E, double scale) {
  Lx *e, *zero = lx_i(L, 0), *one = lx_i(L, 1);
  int dot = new_acc(L, parent, OP_SUM);
  Ls *le = loop(L, parent, zero, E, one, &e);
  acc_update(L, le, dot, OP_SUM, fop(L, OP_MUL, load(L, qbuf, ibin(L, '+', qrow, e)), load(L, kbuf, ibin(L, '+', krow, e))));
  return fop(L, OP_MUL, acc_value(L, dot), lx_f(L, scale));
}

void lower_attention(Lower *L, Ls *body) {
  INode *n = L->K->outs[0], *q = n->in[0], *k = n->in[1], *v = n->in[2];
  int qbuf = buffer_of(L, q), kbuf = buffer_of(L, k), vbuf = buffer_of(L, v), obuf = buffer_of(L, n);
  if (qbuf < 0 || kbuf < 0 || vbuf < 0) unreachable("attention operand not in memory");
  int r = n->shape.rank;
  Lx *zero = lx_i(L, 0), *one = lx_i(L, 1), *blocks = one;
  for (int i = 0; i < r - 2; i++) blocks = ibin(L, '*', blocks, lx_dim(L, n->shape.d[i]));
  Lx *Lq = lx_dim(L, q->shape.d[r - 2]), *E = lx_dim(L, q->shape.d[r - 1]);
  Lx *S = lx_dim(L, k->shape.d[r - 2]), *Ev = lx_dim(L, v->shape.d[r - 1]);
  double scale = n->f[0];
  Lx *b, *l, *s, *e;
  Ls *row = loop(L, loop(L, body, zero, blocks, one, &b), zero, Lq, one, &l);
  Lx *bl = ibin(L, '+', ibin(L, '*', b, Lq), l);
  Lx *qrow = ibin(L, '*', bl, E), *orow = ibin(L, '*', bl, Ev);
  Lx *keys = n->flag ? ibin(L, 'm', ibin(L, '+', l, one), S) : S;
#define KROW(s) ibin(L, '*', ibin(L, '+', ibin(L, '*', b, S), s), E)
#define VROW(s) ibin(L, '*', ibin(L, '+', ibin(L, '*', b, S), s), Ev)
  /* the row's largest score */
  int mx = new_acc(L, row, OP_RMAX);
  Ls *ls1 = loop(L, row, zero, keys, one, &s);
  acc_update(L, ls1, mx, OP_RMAX, score(L, ls1, qbuf, kbuf, qrow, KROW(s), E, scale));
  Lx *m = acc_value(L, mx);
  /* the weighted sum of the values and the weights' sum */
  Ls *lz = loop(L, row, zero, Ev, one, &e);
  store(L, lz, obuf, ibin(L, '+', orow, e), lx_f(L, 0.0));
  int z = new_acc(L, row, OP_SUM);
  Lx *s2, *e2;
  Ls *ls2 = loop(L, row, zero, keys, one, &s2);
  Lx *p = lx(L, (Lx){.k = LX_OP, .op = OP_EXP, .a = {fop(L, OP_SUB, score(L, ls2, qbuf, kbuf, qrow, KROW(s2), E, scale), m)}});
  acc_update(L, ls2, z, OP_SUM, p);
  Ls *lv = loop(L, ls2, zero, Ev, one, &e2);
  Lx *at = ibin(L, '+', orow, e2);
  store(L, lv, obuf, at, fop(L, OP_ADD, load(L, obuf, at), fop(L, OP_MUL, p, load(L, vbuf, ibin(L, '+', VROW(s2), e2)))));
  /* normalized */
  Lx *e3;
  Ls *ld = loop(L, row, zero, Ev, one, &e3);
  Lx *at3 = ibin(L, '+', orow, e3);
  store(L, ld, obuf, at3, fop(L, OP_DIV, load(L, obuf, at3), acc_value(L, z)));
#undef KROW
#undef VROW
}
