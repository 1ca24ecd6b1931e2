/* attention.c — ATTENTION (softmax(q kᵀ · scale + mask) v) as one call of the support
 * library's nnc_rt_attention (runtime/support/attention.h): FlashAttention's schedule, blocks
 * of query rows against blocks of keys with an online softmax, so the [L, S] scores never
 * exist and L and S may be symbolic, even the same symbol.  The call splits its own work
 * items among threads; the kernel around it is not split.
 *
 * Lowering fills the call's shape array: the lengths, the row strides of the keys and values
 * (both in one [..., S, E + Ev] operand), and the mask's strides over [lead..., L, S] (0 where
 * it broadcasts). */
#include <string.h>
#include "lower_internal.h"
#include "attention.h"

/* The stride of each of the out's dims in mask, a broadcast of [..., L, S] (0 along a dim it
 * lacks or has as 1) */
static void mask_strides(Lower *L, const Shape *out, const Shape *mask, Lx **stride) {
  int r = out->rank, shift = r - mask->rank;
  Lx *st = lx_i(L, 1);
  for (int i = r - 1; i >= 0; i--) {
    int mi = i - shift;
    bool present = mi >= 0 && !dim_is(mask->d[mi], 1);
    stride[i] = present ? st : lx_i(L, 0);
    if (mi >= 0) st = ibin(L, '*', st, lx_dim(L, mask->d[mi]));
  }
}

void lower_attention(Lower *L, Ls *body) {
  INode *n = L->K->outs[0], *q = n->in[0], *kv = n->in[1], *mask = n->in[2];
  int r = n->shape.rank, nlead = r - 2;
  Ls *call = ls_new(L, LS_CALL);
  call->call.fn = "nnc_rt_attention";
  int qbuf = buffer_of(L, q), kvbuf = buffer_of(L, kv), mbuf = mask ? buffer_of(L, mask) : -1;
  if (qbuf < 0 || kvbuf < 0 || (mask && mbuf < 0)) unreachable("attention operand not in memory");
  int bufs[] = {qbuf, kvbuf, kvbuf, mbuf, buffer_of(L, n)};
  memcpy(call->call.bufs, bufs, sizeof bufs);
  call->call.nbufs = 5;
  call->call.f = n->f[0];
  Lx *E = lx_i(L, n->i[0]), *ld = lx_dim(L, kv->shape.d[r - 1]);
  call->call.offs[2] = E; /* v: kv's columns from E on */
  Lx *stride[MAX_RANK];
  if (mask) mask_strides(L, &n->shape, &mask->shape, stride);
  int nints = ATTN_LEAD + 2 * nlead;
  Lx **v = arena_alloc(L->m->arena, nints * sizeof *v);
  v[ATTN_CAUSAL] = lx_i(L, n->flag);
  v[ATTN_NLEAD] = lx_i(L, nlead);
  v[ATTN_L] = lx_dim(L, q->shape.d[r - 2]);
  v[ATTN_S] = lx_dim(L, kv->shape.d[r - 2]);
  v[ATTN_E] = E;
  v[ATTN_EV] = lx_dim(L, n->shape.d[r - 1]);
  v[ATTN_LDK] = ld;
  v[ATTN_LDV] = ld;
  v[ATTN_MASK_ROW] = mask ? stride[r - 2] : lx_i(L, 0);
  v[ATTN_MASK_COL] = mask ? stride[r - 1] : lx_i(L, 0);
  for (int i = 0; i < nlead; i++) {
    v[ATTN_LEAD + i] = lx_dim(L, n->shape.d[i]);
    v[ATTN_LEAD + nlead + i] = mask ? stride[i] : lx_i(L, 0);
  }
  call->call.ints = v;
  call->call.nints = nints;
  ls_add(L, body, call);
}
