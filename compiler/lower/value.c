/* value.c — value(): the value of a tensor at an index, as an expression.  It walks a
 * kernel's inlined tree down to loads of tensors in memory, applying elementwise ops with
 * NumPy broadcasting and turning movement ops into index arithmetic (a slice offsets, a
 * permutation reorders, a concat selects, a reshape re-linearizes, a window pads, a resize
 * interpolates).  Values are memoized per kernel (Lower.memo); random numbers are rand.c's. */
#include <string.h>
#include "lower_internal.h"

static Lx *memo_get(Lower *L, const INode *n, Lx *const *idx) {
  for (int i = L->nmemo - 1; i >= 0; i--)
    if (L->memo[i].n == n && !memcmp(L->memo[i].idx, idx, n->shape.rank * sizeof *idx)) return L->memo[i].v;
  return NULL;
}

static Lx *memo_put(Lower *L, const INode *n, Lx *const *idx, Lx *v) {
  if (L->nmemo == L->capmemo) {
    L->capmemo = L->capmemo ? 2 * L->capmemo : 64;
    struct Memo *w = arena_alloc(L->m->arena, L->capmemo * sizeof *w);
    if (L->nmemo) memcpy(w, L->memo, L->nmemo * sizeof *w);
    L->memo = w;
  }
  struct Memo *mm = &L->memo[L->nmemo++];
  mm->n = n;
  memcpy(mm->idx, idx, n->shape.rank * sizeof *idx);
  mm->v = v;
  return v;
}

/* Index of operand `in` of an elementwise node of shape `out` (NumPy broadcasting). */
void broadcast_idx(Lower *L, const Shape *out, Lx *const *idx, const Shape *in, Lx **r) {
  for (int i = 0; i < in->rank; i++) {
    int o = i + out->rank - in->rank;
    r[i] = dim_is(in->d[i], 1) && !dim_is(out->d[o], 1) ? lx_i(L, 0) : idx[o];
  }
}

/* Reshape index map, group by group: a reshape merges and splits runs of adjacent axes, so
 * each run of output axes is linearized and unraveled into its run of input axes only (a
 * conv's im2col gets a division per split axis, not per axis of the whole tensor). */
static Lx *reshape_value(Lower *L, INode *n, Lx *const *idx) {
  INode *in = n->in[0];
  const Shape *os = &n->shape, *is = &in->shape;
  Lx *r[MAX_RANK];
  if (unit_map(os, idx, is, r, lx_i(L, 0))) return value(L, in, r);
  int i = 0, j = 0;
  while (i < os->rank || j < is->rank) {
    int i0 = i, j0 = j;
    Dim po = dim_const(1), pi = dim_const(1);
    if (i < os->rank) po = os->d[i++];
    if (j < is->rank) pi = is->d[j++];
    while (!dim_eq(po, pi)) { /* grow the smaller side (static sizes; symbols must pair up) */
      bool grow_out = i < os->rank && (j == is->rank || (!po.syms && !pi.syms && po.k < pi.k) || (po.syms && !pi.syms));
      if (grow_out) po = dim_mul(L->m, po, os->d[i++]);
      else if (j < is->rank) pi = dim_mul(L->m, pi, is->d[j++]);
      else break;
      if (i == os->rank && j == is->rank && !dim_eq(po, pi)) break;
    }
    if (!dim_eq(po, pi)) { /* no grouping found: linearize everything */
      Lx *lin = linear(L, os, idx);
      for (int k = is->rank - 1; k >= 0; k--) {
        Lx *d = lx_dim(L, is->d[k]);
        r[k] = k ? ibin(L, '%', lin, d) : lin;
        lin = ibin(L, '/', lin, d);
      }
      return value(L, in, r);
    }
    Lx *lin = lx_i(L, 0);
    for (int k = i0; k < i; k++) lin = ibin(L, '+', ibin(L, '*', lin, lx_dim(L, os->d[k])), idx[k]);
    for (int k = j - 1; k >= j0; k--) {
      Lx *d = lx_dim(L, is->d[k]);
      r[k] = k > j0 ? ibin(L, '%', lin, d) : lin;
      lin = ibin(L, '/', lin, d);
    }
  }
  return value(L, in, r);
}

/* window: input position v = o*stride - pad + k*dilation on the input dilated by
 * input_dilation; outside the input (or between dilated elements) the pad value. */
static Lx *window_value(Lower *L, INode *n, Lx *const *idx) {
  INode *in = n->in[0];
  int r = in->shape.rank;
  Lx *ri[MAX_RANK], *cond = NULL;
  memcpy(ri, idx, (r - 2) * sizeof *ri);
  for (int a = 0; a < 2; a++) {
    Dim Hd = in->shape.d[r - 2 + a];
    int64_t K = n->shape.d[r + a].k, H = Hd.k, ld = n->i[6 + a];
    Lx *k = n->flag ? ibin(L, '-', lx_i(L, K - 1), idx[r + a]) : idx[r + a];
    Lx *v = ibin(L, '+', ibin(L, '-', ibin(L, '*', idx[r - 2 + a], lx_i(L, n->i[a])), lx_i(L, n->i[2 + a])),
                 ibin(L, '*', k, lx_i(L, n->i[4 + a])));
    Dim Od = n->shape.d[r - 2 + a];
    int64_t O = Od.k, last = (O - 1) * n->i[a] - n->i[2 + a] + (K - 1) * n->i[4 + a];
    if (!Hd.syms && !Od.syms && ld == 1 && n->i[2 + a] <= 0 && last <= H - 1) { /* never outside (no padding) */
      ri[r - 2 + a] = v;
      continue;
    }
    /* inside: 0 <= v <= (H - 1) * ld, H known at run time when symbolic */
    Lx *top = ibin(L, '-', ibin(L, '*', lx_dim(L, Hd), lx_i(L, ld)), lx_i(L, ld - 1));
    Lx *c = ibin(L, '&', ibin(L, '<', lx_i(L, -1), v), ibin(L, '<', v, top));
    if (ld > 1) c = ibin(L, '&', c, ibin(L, '=', ibin(L, '%', v, lx_i(L, ld)), lx_i(L, 0)));
    Lx *at = ld > 1 ? ibin(L, '/', v, lx_i(L, ld)) : v;
    ri[r - 2 + a] = clamp_dim(L, at, Hd);
    cond = cond ? ibin(L, '&', cond, c) : c;
  }
  return cond ? select3(L, cond, value(L, in, ri), lx_f(L, n->f[0])) : value(L, in, ri);
}

/* Source coordinate of a bilinear sample along one axis (PyTorch's
 * area_pixel_compute_source_index, in float32): index i0, i1 and weight of i1. */
/* RESIZE's coordinate scale of axis a: f[a], or when 0 (a symbolic size), ATen's
 * area_pixel_compute_scale from the sizes at run time, in float32 */
static Lx *resize_scale(Lower *L, INode *n, int a) {
  if (n->f[a] != 0) return lx_f(L, (float)n->f[a]);
  int r = n->shape.rank;
  Lx *in = itof(L, lx_dim(L, n->in[0]->shape.d[r - 2 + a])), *out = itof(L, lx_dim(L, n->shape.d[r - 2 + a]));
  if (!n->flag) return fop(L, OP_DIV, in, out);
  Lx *one = lx_f(L, 1.0);
  Lx *s = fop(L, OP_DIV, fop(L, OP_SUB, in, one), fop(L, OP_MAX, fop(L, OP_SUB, out, one), one));
  return select3(L, fop(L, OP_GT, out, one), s, lx_f(L, 0.0));
}

static void bilinear_axis(Lower *L, INode *n, int a, Lx *dst, Lx **i0, Lx **i1, Lx **w1) {
  Dim in = n->in[0]->shape.d[n->shape.rank - 2 + a];
  Lx *scale = resize_scale(L, n, a), *src;
  if (n->flag) src = fop(L, OP_MUL, itof(L, dst), scale);
  else {
    src = fop(L, OP_SUB, fop(L, OP_MUL, fop(L, OP_ADD, itof(L, dst), lx_f(L, 0.5)), scale), lx_f(L, 0.5));
    src = fop(L, OP_MAX, src, lx_f(L, 0.0));
  }
  *i0 = ftoi(L, src);
  *i1 = ibin(L, '+', *i0, select3(L, ibin(L, '<', *i0, ibin(L, '-', lx_dim(L, in), lx_i(L, 1))), lx_i(L, 1), lx_i(L, 0)));
  *w1 = fop(L, OP_SUB, src, itof(L, *i0));
}

static Lx *resize_value(Lower *L, INode *n, Lx *const *idx) {
  INode *in = n->in[0];
  int r = n->shape.rank;
  Lx *ri[MAX_RANK];
  memcpy(ri, idx, r * sizeof *ri);
  if (n->i[0] == 0) { /* nearest: floor(dst * scale), clamped */
    for (int a = 0; a < 2; a++) {
      Lx *src = ftoi(L, fop(L, OP_MUL, itof(L, idx[r - 2 + a]), resize_scale(L, n, a)));
      ri[r - 2 + a] = ibin(L, 'm', src, ibin(L, '-', lx_dim(L, in->shape.d[r - 2 + a]), lx_i(L, 1)));
    }
    return value(L, in, ri);
  }
  Lx *h0, *h1, *hl, *w0, *w1, *wl, *one = lx_f(L, 1.0);
  bilinear_axis(L, n, 0, idx[r - 2], &h0, &h1, &hl);
  bilinear_axis(L, n, 1, idx[r - 1], &w0, &w1, &wl);
  Lx *v[2][2];
  for (int a = 0; a < 2; a++)
    for (int b = 0; b < 2; b++) {
      ri[r - 2] = a ? h1 : h0;
      ri[r - 1] = b ? w1 : w0;
      v[a][b] = value(L, in, ri);
    }
  Lx *hw0 = fop(L, OP_SUB, one, hl), *ww0 = fop(L, OP_SUB, one, wl);
  Lx *top = fop(L, OP_ADD, fop(L, OP_MUL, ww0, v[0][0]), fop(L, OP_MUL, wl, v[0][1]));
  Lx *bot = fop(L, OP_ADD, fop(L, OP_MUL, ww0, v[1][0]), fop(L, OP_MUL, wl, v[1][1]));
  return fop(L, OP_ADD, fop(L, OP_MUL, hw0, top), fop(L, OP_MUL, hl, bot));
}

static Lx *move_value(Lower *L, INode *n, Lx *const *idx) {
  INode *in = n->in[0];
  Lx *r[MAX_RANK];
  switch (n->op) {
  case OP_RESHAPE: return reshape_value(L, n, idx);
  case OP_PERMUTE:
    for (int k = 0; k < n->shape.rank; k++) r[n->i[k]] = idx[k];
    return value(L, in, r);
  case OP_SLICE: {
    memcpy(r, idx, n->shape.rank * sizeof *r);
    Lx *start = lx_i(L, n->i[1]);
    if (n->i[3]) start = ibin(L, '+', start, lx_dim(L, (Dim){1, (uint32_t)n->i[3]})); /* a scan's step */
    r[n->i[0]] = ibin(L, '+', start, ibin(L, '*', idx[n->i[0]], lx_i(L, n->i[2])));
    return value(L, in, r);
  }
  case OP_CONCAT: {
    int ax = (int)n->i[0];
    Lx *sa = lx_dim(L, in->shape.d[ax]);
    Lx *ra[MAX_RANK], *rb[MAX_RANK];
    memcpy(ra, idx, n->shape.rank * sizeof *ra);
    memcpy(rb, idx, n->shape.rank * sizeof *rb);
    /* both sides are read at clamped, in-bounds indices; the select keeps the right one */
    ra[ax] = ibin(L, 'm', idx[ax], ibin(L, '-', sa, lx_i(L, 1)));
    rb[ax] = ibin(L, 'M', ibin(L, '-', idx[ax], sa), lx_i(L, 0));
    Lx *c = ibin(L, '<', idx[ax], sa);
    return lx(L, (Lx){.k = LX_SELECT, .a = {c, value(L, in, ra), value(L, n->in[1], rb)}});
  }
  case OP_GATHER: {
    int ax = (int)n->i[0];
    Lx *bi[MAX_RANK];
    broadcast_idx(L, &n->shape, idx, &n->in[1]->shape, bi);
    memcpy(r, idx, n->shape.rank * sizeof *r);
    /* clamped: an out-of-range index reads an edge element, never outside the buffer */
    Dim size = in->shape.d[ax];
    Lx *at = ftoi(L, value(L, n->in[1], bi));
    r[ax] = size.syms ? ibin(L, 'M', ibin(L, 'm', at, ibin(L, '-', lx_dim(L, size), lx_i(L, 1))), lx_i(L, 0))
                      : clamp(L, at, 0, size.k - 1);
    return value(L, in, r);
  }
  case OP_WINDOW: return window_value(L, n, idx);
  case OP_RAND: return rand_value(L, n, idx);
  case OP_RESIZE: return resize_value(L, n, idx);
  default: unreachable("not a movement op");
  }
}

Lx *value(Lower *L, INode *n, Lx *const *idx) {
  Lx *v = memo_get(L, n, idx);
  if (v) return v;
  if (n == L->red && L->red_buf >= 0)
    return memo_put(L, n, idx, lx(L, (Lx){.k = LX_LOAD, .buf = L->red_buf, .a = {linear(L, &n->shape, idx)}}));
  if (n == L->red && L->red_value) return L->red_value;
  if (n == L->gemm && L->gemm_value) return L->gemm_value;
  if (n == L->red) return memo_put(L, n, idx, lx(L, (Lx){.k = LX_ACC, .acc = L->red_acc}));
  if (n == L->gemm)
    return memo_put(L, n, idx, lx(L, (Lx){.k = LX_LOAD, .buf = L->gemm_cbuf, .a = {linear(L, &n->shape, idx)}}));
  if (n->op == OP_CONST && !n->data) return memo_put(L, n, idx, lx_f(L, n->f[0]));
  if (n->op == OP_IOTA) return memo_put(L, n, idx, itof(L, idx[n->i[0]]));
  if (n->op == OP_DIMVAL)
    return memo_put(L, n, idx, lx(L, (Lx){.k = LX_ITOF, .a = {lx_dim(L, (Dim){n->i[0], n->axes})}}));
  bool is_out = n == L->computing;
  for (int o = 0; o < L->K->nouts; o++) is_out |= L->K->outs[o] == n;
  int buf = is_out ? -1 : buffer_of(L, n);
  if (buf >= 0)
    return memo_put(L, n, idx, lx(L, (Lx){.k = LX_LOAD, .buf = buf, .a = {linear(L, &n->shape, idx)}}));
  switch (op_info[n->op].kind) {
  case FK_ELEM: {
    Lx *args[3] = {0};
    for (int k = 0; k < op_info[n->op].arity; k++) {
      Lx *r[MAX_RANK];
      broadcast_idx(L, &n->shape, idx, &n->in[k]->shape, r);
      args[k] = value(L, n->in[k], r);
    }
    v = lx(L, (Lx){.k = LX_OP, .op = n->op, .f = {n->f[0], n->f[1]}, .a = {args[0], args[1], args[2]}});
    return memo_put(L, n, idx, v);
  }
  case FK_MOVE: return memo_put(L, n, idx, move_value(L, n, idx));
  default: unreachable("a reduction or matmul outside its kernel is not in memory");
  }
}
