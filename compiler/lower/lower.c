/* lower.c — fused kernels → loop nests (loopir.h).
 *
 * The value of a tensor at an index is built by walking the kernel's inlined tree: loads of
 * tensors in memory (inputs, weights, workspace slots, constants), elementwise ops with
 * broadcasting, and movement ops as index arithmetic (a slice offsets, a permutation
 * reorders, a concat selects, a reshape re-linearizes).
 *   elementwise kernel:  for idx in domain { out[idx] = value(out, idx) }
 *   reduction kernel:    for kept { acc = init; for reduced { acc op= value(in, idx);
 *                        full-domain outputs stored here }; epilogue outputs at kept }
 *   GEMM kernel:         for row blocks { sgemm into the output; epilogue over the block }
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "loopir.h"
#include "philox.h"
#include "convplan.h"
#include "target.h"

#define GEMM_ROW_BLOCK 512  /* rows per sgemm call: the epilogue runs on a cache-warm tile; fewer rows repack the weights too often */
#define HASH_SIZE 4096

typedef struct Lower {
  Model *m;
  const Entry *e;
  LEntry *le;
  Lx *hash[HASH_SIZE];
  int nvars, naccs;
  struct VarRange { int64_t lo, hi; bool known; } *range; /* per loop variable of the kernel:
                                            its static bounds (hi INT64_MAX: unbounded) */
  int caprange;
  /* the kernel being lowered */
  const Kernel *K;
  INode *red;          /* its reduction, if any */
  int red_acc;
  int red_buf;         /* >= 0: the reduction accumulates in this buffer instead */
  Lx *red_value;       /* or: the reduction is this expression (a small window, unrolled) */
  Lx *gemm_value;      /* the GEMM's result at the element being stored (Winograd's A^T M A),
                          when the epilogue is evaluated right there */
  INode *gemm;         /* its matmul, if any */
  INode *computing;    /* a node the kernel computes although it has a buffer (a GEMM prologue) */
  int gemm_cbuf;
  /* memo of value(node, idx) */
  struct Memo { const INode *n; Lx *idx[MAX_RANK]; Lx *v; } *memo;
  int nmemo, capmemo;
} Lower;

/* ---- hash-consed expressions ---- */

static Lx *lx(Lower *L, Lx t) {
  uint64_t h = t.k * 31 + t.op * 17 + (uint64_t)t.c * 131 + t.syms * 7 + t.var * 13 + t.buf * 19 + t.acc * 23;
  uint64_t fb[2];
  memcpy(fb, t.f, sizeof fb);
  h ^= fb[0] * 0x9E3779B97F4A7C15ull ^ fb[1];
  for (int i = 0; i < 3; i++) h = h * 1000003 ^ (uintptr_t)t.a[i];
  h %= HASH_SIZE;
  for (Lx *x = L->hash[h]; x; x = x->next_hash)
    if (x->k == t.k && x->op == t.op && !memcmp(x->f, t.f, sizeof t.f) && x->c == t.c &&
        x->syms == t.syms && x->var == t.var && x->buf == t.buf && x->acc == t.acc &&
        !memcmp(x->a, t.a, sizeof t.a))
      return x;
  Lx *x = arena_alloc(L->m->arena, sizeof *x);
  *x = t;
  x->next_hash = L->hash[h];
  L->hash[h] = x;
  return x;
}

static Lx *lx_i(Lower *L, int64_t c) { return lx(L, (Lx){.k = LX_I, .c = c}); }
static Lx *lx_f(Lower *L, double f) { return lx(L, (Lx){.k = LX_F, .f = {f}}); }
static Lx *lx_var(Lower *L, int v) { return lx(L, (Lx){.k = LX_VAR, .var = v}); }
static Lx *lx_dim(Lower *L, Dim d) { return d.syms ? lx(L, (Lx){.k = LX_SYM, .c = d.k, .syms = d.syms}) : lx_i(L, d.k); }

/* lo <= x <= hi for integer x, from the static bounds of the kernel's loops (hi INT64_MAX
 * when unbounded above), or false. */
static bool int_range(const Lower *L, const Lx *x, int64_t *lo, int64_t *hi, int depth) {
  int64_t l0, h0, l1, h1;
  if (depth > 32) return false;
  switch (x->k) {
  case LX_I: *lo = *hi = x->c; return true;
  case LX_SYM: /* a product of dims: unknown but not negative */
    if (x->c < 0) return false;
    *lo = x->syms ? 0 : x->c;
    *hi = x->syms ? INT64_MAX : x->c;
    return true;
  case LX_VAR:
    if (x->var >= L->nvars || !L->range[x->var].known) return false;
    *lo = L->range[x->var].lo;
    *hi = L->range[x->var].hi;
    return true;
  case LX_IBIN:
    if (!int_range(L, x->a[0], &l0, &h0, depth + 1)) return false;
    if (x->op == '+' || x->op == '*') {
      if (!int_range(L, x->a[1], &l1, &h1, depth + 1) || l0 < 0 || l1 < 0) return false;
      bool big = h0 > (INT64_MAX >> 2) || h1 > (INT64_MAX >> 2) || (x->op == '*' && h1 && h0 > (INT64_MAX >> 2) / h1);
      *lo = x->op == '+' ? l0 + l1 : l0 * l1;
      *hi = big ? INT64_MAX : x->op == '+' ? h0 + h1 : h0 * h1;
      return true;
    }
    if ((x->op == '/' || x->op == '%') && x->a[1]->k == LX_I && x->a[1]->c > 0 && l0 >= 0) {
      int64_t d = x->a[1]->c;
      *lo = x->op == '/' ? l0 / d : 0;
      *hi = x->op == '/' ? (h0 == INT64_MAX ? INT64_MAX : h0 / d) : (h0 < d - 1 ? h0 : d - 1);
      return true;
    }
    return false;
  default: return false;
  }
}

static Lx *ibin(Lower *L, int op, Lx *a, Lx *b);

/* x / d or x % d (d > 0) of a non-negative x = p * c + q with c a multiple of d, or d a
 * multiple of c and q < c: what a reshape's unflattening gives when a tensor is read back in
 * blocks (a group norm's statistics per group of channels: (c * H*W + f) / (G*H*W) with
 * f < H*W is c / G).  NULL when no rule applies. */
static Lx *div_mod_simplified(Lower *L, int op, Lx *a, int64_t d) {
  int64_t lo, hi, ql, qh, xl, xh;
  if (!int_range(L, a, &lo, &hi, 0) || lo < 0) return NULL;
  if (hi < d) return op == '/' ? lx_i(L, 0) : a;
  if (a->k != LX_IBIN || (a->op != '+' && a->op != '*')) return NULL;
  for (int side = 0; side < 2; side++) {
    Lx *p = a->op == '*' ? a : a->a[side], *q = a->op == '*' ? NULL : a->a[1 - side], *x = p;
    int64_t c = 1;
    while (x->k == LX_IBIN && x->op == '*' && x->a[1]->k == LX_I && x->a[1]->c > 0 && c <= (INT64_MAX >> 2) / x->a[1]->c) {
      c *= x->a[1]->c; /* (x c1) c2 = x (c1 c2) */
      x = x->a[0];
    }
    if (c == 1) continue;
    if (!int_range(L, x, &xl, &xh, 0) || xl < 0) continue;
    if (q && (!int_range(L, q, &ql, &qh, 0) || ql < 0)) continue;
    if (c % d == 0) /* (x c + q) / d = x (c / d) + q / d;  (x c + q) % d = q % d */
      return op == '/' ? ibin(L, '+', ibin(L, '*', x, lx_i(L, c / d)), q ? ibin(L, '/', q, lx_i(L, d)) : lx_i(L, 0))
                       : q ? ibin(L, '%', q, lx_i(L, d)) : lx_i(L, 0);
    if (d % c == 0 && (!q || qh < c)) /* q never carries into a multiple of d */
      return op == '/' ? ibin(L, '/', x, lx_i(L, d / c))
                       : ibin(L, '+', ibin(L, '*', ibin(L, '%', x, lx_i(L, d / c)), lx_i(L, c)), q ? q : lx_i(L, 0));
    if (a->op == '*') break;
  }
  return NULL;
}

static Lx *ibin(Lower *L, int op, Lx *a, Lx *b) {
  if ((op == '/' || op == '%') && b->k == LX_I && b->c > 1 && a->k != LX_I) {
    Lx *r = div_mod_simplified(L, op, a, b->c);
    if (r) return r;
  }
  if (a->k == LX_I && b->k == LX_I && op != '<' && op != '=' && op != '&') {
    int64_t x = a->c, y = b->c;
    switch (op) {
    case '+': return lx_i(L, x + y);
    case '-': return lx_i(L, x - y);
    case '*': return lx_i(L, x * y);
    case '/': if (y) return lx_i(L, x / y); break;
    case '%': if (y) return lx_i(L, x % y); break;
    case 'm': return lx_i(L, x < y ? x : y);
    case 'M': return lx_i(L, x > y ? x : y);
    }
  }
  if (op == '+' && a->k == LX_I && a->c == 0) return b;
  if ((op == '+' || op == '-') && b->k == LX_I && b->c == 0) return a;
  if (op == '*' && ((a->k == LX_I && a->c == 0) || (b->k == LX_I && b->c == 0))) return lx_i(L, 0);
  if (op == '*' && a->k == LX_I && a->c == 1) return b;
  if ((op == '*' || op == '/') && b->k == LX_I && b->c == 1) return a;
  if (op == '%' && b->k == LX_I && b->c == 1) return lx_i(L, 0);
  if (op == '+' && b->k == LX_IBIN && b->op == '%' && b->a[1]->k == LX_I) {
    /* (x / c) * c + x % c == x, and (A + x / c) * c + x % c == A * c + x (truncating
     * division): a reshape read back through its own linearization is contiguous again */
    Lx *x = b->a[0], *c = b->a[1];
    if (a->k == LX_IBIN && a->op == '*' && a->a[1] == c) {
      Lx *e = a->a[0];
      bool quotient = e->k == LX_IBIN && e->op == '/' && e->a[0] == x && e->a[1] == c;
      if (quotient) return x;
      Lx *q = e->k == LX_IBIN && e->op == '+' ? e->a[1] : NULL;
      if (q && q->k == LX_IBIN && q->op == '/' && q->a[0] == x && q->a[1] == c)
        return ibin(L, '+', ibin(L, '*', e->a[0], c), x);
    }
  }
  return lx(L, (Lx){.k = LX_IBIN, .op = op, .a = {a, b}});
}

/* Float arithmetic on scalars, as elementwise ops of ops.def. */
static Lx *fop(Lower *L, Op op, Lx *a, Lx *b) { return lx(L, (Lx){.k = LX_OP, .op = op, .a = {a, b}}); }
static Lx *itof(Lower *L, Lx *a) { return a->k == LX_I ? lx_f(L, (double)a->c) : lx(L, (Lx){.k = LX_ITOF, .a = {a}}); }
static Lx *ftoi(Lower *L, Lx *a) { return lx(L, (Lx){.k = LX_FTOI, .a = {a}}); }
static Lx *select3(Lower *L, Lx *c, Lx *t, Lx *f) { return lx(L, (Lx){.k = LX_SELECT, .a = {c, t, f}}); }
static Lx *clamp(Lower *L, Lx *v, int64_t lo, int64_t hi) {
  return ibin(L, 'm', ibin(L, 'M', v, lx_i(L, lo)), lx_i(L, hi));
}

/* Row-major linear offset of idx in shape s. */
static Lx *linear(Lower *L, const Shape *s, Lx *const *idx) {
  Lx *off = lx_i(L, 0);
  for (int i = 0; i < s->rank; i++) off = ibin(L, '+', ibin(L, '*', off, lx_dim(L, s->d[i])), idx[i]);
  return off;
}

/* Map an index between shapes that differ only in axes of size 1. */
static bool unit_map(const Shape *from, Lx *const *fi, const Shape *to, Lx **ti, Lx *zero) {
  int j = 0;
  for (int i = 0; i < to->rank; i++) {
    if (dim_is(to->d[i], 1)) {
      ti[i] = zero;
      continue;
    }
    while (j < from->rank && dim_is(from->d[j], 1)) j++;
    if (j == from->rank || !dim_eq(from->d[j], to->d[i])) return false;
    ti[i] = fi[j++];
  }
  for (; j < from->rank; j++)
    if (!dim_is(from->d[j], 1)) return false;
  return true;
}

/* ---- buffers ---- */

static int add_buf(Lower *L, LBuf b) {
  LEntry *le = L->le;
  for (int i = 0; i < le->nbufs; i++) {
    LBuf *x = &le->bufs[i];
    if (x->k == b.k && x->index == b.index && x->offset == b.offset && x->data == b.data) return i;
  }
  if (le->nbufs == le->cap) {
    le->cap = le->cap ? 2 * le->cap : 16;
    LBuf *v = arena_alloc(L->m->arena, le->cap * sizeof *v);
    if (le->nbufs) memcpy(v, le->bufs, le->nbufs * sizeof *v);
    le->bufs = v;
  }
  le->bufs[le->nbufs] = b;
  return le->nbufs++;
}

static INode *base_buffer(INode *n) {
  while (n->kernel == -2) n = n->in[0];
  return n;
}

/* The buffer holding node n, or -1 when n is not in memory. */
static int buffer_of(Lower *L, INode *n) {
  n = base_buffer(n);
  bool computed_leaf = (n->op == OP_CONST && !n->data) || n->op == OP_DIMVAL || n->op == OP_IOTA;
  if (computed_leaf && n->kernel >= 0) /* materialized for a reader that needs memory */
    return n->out_index >= 0 ? add_buf(L, (LBuf){.k = LB_ARG, .index = L->e->nin + n->out_index})
                             : add_buf(L, (LBuf){.k = LB_SLOT, .index = n->slot});
  switch (n->op) {
  case OP_INPUT: return add_buf(L, (LBuf){.k = LB_ARG, .dtype = n->dtype, .index = n->index});
  case OP_PARAM: {
    const Param *p = &L->m->params[n->index];
    return add_buf(L, (LBuf){.k = LB_WEIGHT, .dtype = p->dtype, .index = -1, .offset = p->offset});
  }
  case OP_CONST:
    if (!n->data) return -1;
    return add_buf(L, (LBuf){.k = LB_CONST, .index = -1, .data = n->data, .n = shape_numel(&n->shape).k});
  default:
    break;
  }
  if (n->kernel < 0) return -1;
  if (n->out_index >= 0 && L->e->out_params) { /* the init entry writes derived parameters */
    const Param *p = &L->m->params[L->e->out_params[n->out_index]];
    return add_buf(L, (LBuf){.k = LB_WEIGHT, .dtype = DT_F32, .index = -1, .offset = p->offset});
  }
  if (n->out_index >= 0) return add_buf(L, (LBuf){.k = LB_ARG, .index = L->e->nin + n->out_index});
  return add_buf(L, (LBuf){.k = LB_SLOT, .index = n->slot});
}

/* ---- statements ---- */

static Ls *ls_new(Lower *L, LsKind k) {
  Ls *s = arena_alloc(L->m->arena, sizeof *s);
  s->k = k;
  return s;
}

static void ls_add(Lower *L, Ls *parent, Ls *child) {
  if (parent->nbody == parent->cap) {
    parent->cap = parent->cap ? 2 * parent->cap : 4;
    Ls **v = arena_alloc(L->m->arena, parent->cap * sizeof *v);
    if (parent->nbody) memcpy(v, parent->body, parent->nbody * sizeof *v);
    parent->body = v;
  }
  parent->body[parent->nbody++] = child;
}

/* A new loop variable whose values lie in [lo, hi] (known: bounds for index simplification). */
static int new_var(Lower *L, int64_t lo, int64_t hi, bool known) {
  int v = L->nvars++;
  if (v >= L->caprange) {
    L->caprange = 2 * v + 16;
    L->range = realloc(L->range, L->caprange * sizeof *L->range);
    if (!L->range) unreachable("out of memory");
  }
  L->range[v] = (struct VarRange){lo, hi, known};
  return v;
}

static Ls *loop(Lower *L, Ls *parent, Lx *lo, Lx *hi, Lx *step, Lx **var) {
  Ls *s = ls_new(L, LS_LOOP);
  /* the variable's bounds, for index simplification: lo..hi-1 when lo is a non-negative
   * constant and the step positive */
  s->var = new_var(L, lo->k == LX_I ? lo->c : 0, hi->k == LX_I ? hi->c - 1 : INT64_MAX,
                   lo->k == LX_I && lo->c >= 0 && step->k == LX_I && step->c > 0);
  s->lo = lo;
  s->hi = hi;
  s->step = step;
  *var = lx_var(L, s->var);
  ls_add(L, parent, s);
  return s;
}

static void store(Lower *L, Ls *parent, int buf, Lx *idx, Lx *val) {
  Ls *s = ls_new(L, LS_STORE);
  s->buf = buf;
  s->idx = idx;
  s->val = val;
  ls_add(L, parent, s);
}

/* ---- values ---- */

static Lx *value(Lower *L, INode *n, Lx *const *idx);

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
static void broadcast_idx(Lower *L, const Shape *out, Lx *const *idx, const Shape *in, Lx **r) {
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
      if (grow_out) po = dim_mul(po, os->d[i++]);
      else if (j < is->rank) pi = dim_mul(pi, is->d[j++]);
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
    int64_t K = n->shape.d[r + a].k, H = in->shape.d[r - 2 + a].k, ld = n->i[6 + a];
    Lx *k = n->flag ? ibin(L, '-', lx_i(L, K - 1), idx[r + a]) : idx[r + a];
    Lx *v = ibin(L, '+', ibin(L, '-', ibin(L, '*', idx[r - 2 + a], lx_i(L, n->i[a])), lx_i(L, n->i[2 + a])),
                 ibin(L, '*', k, lx_i(L, n->i[4 + a])));
    int64_t O = n->shape.d[r - 2 + a].k, last = (O - 1) * n->i[a] - n->i[2 + a] + (K - 1) * n->i[4 + a];
    if (ld == 1 && n->i[2 + a] <= 0 && last <= H - 1) { /* never outside (no padding): no test */
      ri[r - 2 + a] = v;
      continue;
    }
    Lx *c = ibin(L, '&', ibin(L, '<', lx_i(L, -1), v), ibin(L, '<', v, lx_i(L, (H - 1) * ld + 1)));
    if (ld > 1) c = ibin(L, '&', c, ibin(L, '=', ibin(L, '%', v, lx_i(L, ld)), lx_i(L, 0)));
    ri[r - 2 + a] = clamp(L, ld > 1 ? ibin(L, '/', v, lx_i(L, ld)) : v, 0, H - 1);
    cond = cond ? ibin(L, '&', cond, c) : c;
  }
  return cond ? select3(L, cond, value(L, in, ri), lx_f(L, n->f[0])) : value(L, in, ri);
}

/* Source coordinate of a bilinear sample along one axis (PyTorch's
 * area_pixel_compute_source_index, in float32): index i0, i1 and weight of i1. */
static void bilinear_axis(Lower *L, INode *n, int a, Lx *dst, Lx **i0, Lx **i1, Lx **w1) {
  int64_t in = n->in[0]->shape.d[n->shape.rank - 2 + a].k;
  Lx *scale = lx_f(L, (float)n->f[a]), *src;
  if (n->flag) src = fop(L, OP_MUL, itof(L, dst), scale);
  else {
    src = fop(L, OP_SUB, fop(L, OP_MUL, fop(L, OP_ADD, itof(L, dst), lx_f(L, 0.5)), scale), lx_f(L, 0.5));
    src = fop(L, OP_MAX, src, lx_f(L, 0.0));
  }
  *i0 = ftoi(L, src);
  *i1 = ibin(L, '+', *i0, select3(L, ibin(L, '<', *i0, lx_i(L, in - 1)), lx_i(L, 1), lx_i(L, 0)));
  *w1 = fop(L, OP_SUB, src, itof(L, *i0));
}

static Lx *resize_value(Lower *L, INode *n, Lx *const *idx) {
  INode *in = n->in[0];
  int r = n->shape.rank;
  Lx *ri[MAX_RANK];
  memcpy(ri, idx, r * sizeof *ri);
  if (n->i[0] == 0) { /* nearest: floor(dst * scale), clamped */
    for (int a = 0; a < 2; a++) {
      int64_t size = in->shape.d[r - 2 + a].k;
      Lx *src = ftoi(L, fop(L, OP_MUL, itof(L, idx[r - 2 + a]), lx_f(L, (float)n->f[a])));
      ri[r - 2 + a] = ibin(L, 'm', src, lx_i(L, size - 1));
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

/* ---- random numbers: Philox4x32-10 (philox.h) in integer expressions ---- */

static Lx *seed_value(Lower *L, INode *s) {
  if (s->op == OP_CONST && !s->data) return lx_i(L, (int64_t)s->f[0]);
  int b = s->dtype == DT_I64 ? buffer_of(L, s) : -1;
  if (b >= 0) return lx(L, (Lx){.k = LX_LOADI, .buf = b, .a = {lx_i(L, 0)}}); /* all 64 bits */
  Lx *zero[MAX_RANK];
  for (int i = 0; i < MAX_RANK; i++) zero[i] = lx_i(L, 0);
  return ftoi(L, value(L, s, zero));
}

static Lx *rand_value(Lower *L, INode *n, Lx *const *idx) {
  Lx *m32 = lx_i(L, 0xffffffffLL), *s32 = lx_i(L, 32), *seed = seed_value(L, n->in[0]);
  Lx *lin = linear(L, &n->shape, idx);
  uint64_t stream = (uint64_t)n->i[1];
  Lx *c0 = ibin(L, '&', lin, m32), *c1 = ibin(L, 'r', lin, s32);
  Lx *c2 = lx_i(L, (int64_t)(stream & 0xffffffffu)), *c3 = lx_i(L, (int64_t)(stream >> 32));
  Lx *k0 = ibin(L, '&', seed, m32), *k1 = ibin(L, 'r', seed, s32);
  for (int r = 0; r < PHILOX_ROUNDS; r++) {
    Lx *p0 = ibin(L, 'u', lx_i(L, PHILOX_M0), c0), *p1 = ibin(L, 'u', lx_i(L, PHILOX_M1), c2);
    Lx *n0 = ibin(L, 'x', ibin(L, 'x', ibin(L, 'r', p1, s32), c1), k0);
    Lx *n2 = ibin(L, 'x', ibin(L, 'x', ibin(L, 'r', p0, s32), c3), k1);
    c0 = n0;
    c1 = ibin(L, '&', p1, m32);
    c2 = n2;
    c3 = ibin(L, '&', p0, m32);
    k0 = ibin(L, '&', ibin(L, 'w', k0, lx_i(L, PHILOX_W0)), m32);
    k1 = ibin(L, '&', ibin(L, 'w', k1, lx_i(L, PHILOX_W1)), m32);
  }
  Lx *scale = lx_f(L, 1.0 / 16777216.0);
  Lx *b0 = itof(L, ibin(L, 'r', c0, lx_i(L, 8)));
  if (!n->i[0]) return fop(L, OP_MUL, b0, scale);
  Lx *u1 = fop(L, OP_MUL, fop(L, OP_ADD, b0, lx_f(L, 0.5)), scale);
  Lx *u2 = fop(L, OP_MUL, itof(L, ibin(L, 'r', c1, lx_i(L, 8))), scale);
  Lx *rad = lx(L, (Lx){.k = LX_OP, .op = OP_SQRT, .a = {fop(L, OP_MUL, lx_f(L, -2.0), lx(L, (Lx){.k = LX_OP, .op = OP_LOG, .a = {u1}}))}});
  Lx *ang = lx(L, (Lx){.k = LX_OP, .op = OP_COS, .a = {fop(L, OP_MUL, lx_f(L, 6.2831853071795864769), u2)}});
  return fop(L, OP_MUL, rad, ang);
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
    r[ax] = clamp(L, ftoi(L, value(L, n->in[1], bi)), 0, in->shape.d[ax].k - 1);
    return value(L, in, r);
  }
  case OP_WINDOW: return window_value(L, n, idx);
  case OP_RAND: return rand_value(L, n, idx);
  case OP_RESIZE: return resize_value(L, n, idx);
  default: unreachable("not a movement op");
  }
}

static Lx *value(Lower *L, INode *n, Lx *const *idx) {
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

/* ---- kernels ---- */

/* Loops over every axis of `s` in the listed order; returns the innermost block.  A short
 * static innermost loop is a vector row candidate (codegen decides, from its body). */
#define SHORT_ROW 64
static Ls *loop_nest(Lower *L, Ls *parent, const Shape *s, const int *order, int n, Lx **vars) {
  for (int i = 0; i < n; i++) {
    int ax = order[i];
    parent = loop(L, parent, lx_i(L, 0), lx_dim(L, s->d[ax]), lx_i(L, 1), &vars[ax]);
  }
  if (n > 0 && !s->d[order[n - 1]].syms && s->d[order[n - 1]].k <= SHORT_ROW) parent->vector_row = true;
  return parent;
}

static void store_out(Lower *L, Ls *blk, INode *out, Lx *const *idx) {
  int buf = buffer_of(L, out);
  store(L, blk, buf, linear(L, &out->shape, idx), value(L, out, idx));
}

/* Does x divide loop variable f (f / c or f % c)? */
static bool splits_var(Lx *x, const Lx *f, unsigned gen) {
  if (!x || x->walk_gen == gen) return false;
  x->walk_gen = gen;
  if (x->k == LX_IBIN && (x->op == '/' || x->op == '%') && x->a[0] == f) return true;
  return splits_var(x->a[0], f, gen) || splits_var(x->a[1], f, gen) || splits_var(x->a[2], f, gen);
}

/* Store outs[] at every index of axes [from, rank) of s (vars[0..from) already bound).  The
 * last two axes become one loop over the plane when both are static and the rows short
 * (7x7, 28x28 images), so that the inner loop is long enough to vectorize; a short row loop
 * would be unrolled and the loop around it vectorized with gathers.  The plane index is
 * (f / W, f % W), which linear() folds back to f; when some value still needs the division
 * (an operand broadcast along rows or columns alone) the plain loop nest is used instead. */
static void store_planes(Lower *L, Ls *parent, const Shape *s, int from, Lx **vars, INode *const *outs, int nouts) {
  static unsigned walk_gen;
  int r = s->rank, order[MAX_RANK];
  for (int i = 0; i < MAX_RANK; i++) order[i] = i;
  if (r - from >= 2 && !s->d[r - 1].syms && !s->d[r - 2].syms && s->d[r - 1].k < SHORT_ROW) {
    Ls *blk = ls_new(L, LS_BLOCK), *in = blk;
    for (int ax = from; ax < r - 2; ax++) { /* the planes: LLVM would unroll them around the
                                                vectorized plane loop, only adding code */
      in = loop(L, in, lx_i(L, 0), lx_dim(L, s->d[ax]), lx_i(L, 1), &vars[ax]);
      in->rolled = true;
    }
    Lx *f, *w = lx_i(L, s->d[r - 1].k);
    in = loop(L, in, lx_i(L, 0), lx_i(L, s->d[r - 2].k * s->d[r - 1].k), lx_i(L, 1), &f);
    vars[r - 2] = ibin(L, '/', f, w);
    vars[r - 1] = ibin(L, '%', f, w);
    for (int o = 0; o < nouts; o++) store_out(L, in, outs[o], vars);
    bool split = false;
    walk_gen++;
    for (int i = 0; i < in->nbody && !split; i++) split = splits_var(in->body[i]->idx, f, walk_gen) || splits_var(in->body[i]->val, f, walk_gen);
    if (!split) {
      ls_add(L, parent, blk);
      return;
    }
    L->nmemo = 0;
  }
  Ls *blk = loop_nest(L, parent, s, order + from, r - from, vars);
  for (int o = 0; o < nouts; o++) store_out(L, blk, outs[o], vars);
}

static void lower_elementwise(Lower *L, Ls *body) {
  const Kernel *K = L->K;
  int order[MAX_RANK];
  Lx *vars[MAX_RANK];
  for (int i = 0; i < MAX_RANK; i++) order[i] = i;
  INode *root = K->outs[0], *src = root;
  /* A result that is a reshape of a computed value (im2col's [N, K, P] columns) is written in
   * the value's own index space: a reshape keeps the memory order, and the inner loop then
   * runs along the value's last axis (the image row) instead of along merged axes. */
  while (K->nouts == 1 && src->op == OP_RESHAPE && src->in[0]->kernel == -1 && src->in[0]->shape.rank <= MAX_RANK)
    src = src->in[0];
  if (src != root) {
    Ls *blk = loop_nest(L, body, &src->shape, order, src->shape.rank, vars);
    store(L, blk, buffer_of(L, root), linear(L, &src->shape, vars), value(L, src, vars));
    return;
  }
  store_planes(L, body, &K->domain, 0, vars, K->outs, K->nouts);
}

static bool tree_contains(const INode *n, const INode *x, int depth) {
  if (n == x) return true;
  if (depth > 64) return true; /* deep trees: treat as dependent (epilogue) */
  for (int k = 0; k < 3; k++)
    if (n->in[k] && n->in[k]->kernel == -1 && tree_contains(n->in[k], x, depth + 1)) return true;
  return false;
}

static INode *find_reduction(const Kernel *K) {
  for (int c = 0; c < K->ncovers; c++)
    if (op_info[K->covers[c]->op].kind == FK_REDUCE) return K->covers[c];
  unreachable("reduction kernel without a reduction");
}

/* The outputs of a reduction kernel that are computed at every point of the domain (the
 * elementwise ones horizontal fusion added), as opposed to the epilogue at the kept index. */
static bool full_domain_out(const Kernel *K, const INode *out, const INode *red) {
  return shape_eq(&out->shape, &K->domain) && !tree_contains(out, red, 0);
}

/* The reduction kernel's domain with its reduced axes made 1, and the index there of domain
 * index vars (0 on the reduced axes). */
static Shape kept_index(Lower *L, Lx *const *vars, Lx **kidx) {
  const Kernel *K = L->K;
  Shape kept = K->domain;
  for (int i = 0; i < kept.rank; i++) {
    bool r = K->raxes & (1u << i);
    if (r) kept.d[i] = dim_const(1);
    kidx[i] = r ? lx_i(L, 0) : vars[i];
  }
  return kept;
}

/* The epilogue: every output not computed over the whole domain, stored at the kept index. */
static void store_epilogue(Lower *L, Ls *parent, Lx *const *vars) {
  const Kernel *K = L->K;
  Lx *kidx[MAX_RANK];
  Shape kept = kept_index(L, vars, kidx);
  for (int o = 0; o < K->nouts; o++) {
    INode *out = K->outs[o];
    if (full_domain_out(K, out, L->red)) continue;
    Lx *oidx[MAX_RANK];
    if (!unit_map(&kept, kidx, &out->shape, oidx, lx_i(L, 0))) unreachable("epilogue shape");
    store_out(L, parent, out, oidx);
  }
}

/* A reduction over leading axes with the last axis kept (column sums): the accumulators
 * live in the output buffer and the domain is walked in memory order, so the inner loop
 * runs along contiguous rows and vectorizes:
 *   out[kept] = init;  for idx in domain { out[kept(idx)] op= value(in, idx) }
 *   for kept { out[kept] = epilogue(out[kept]) } */
static void lower_column_reduce(Lower *L, Ls *body) {
  const Kernel *K = L->K;
  const Shape *D = &K->domain;
  INode *red = L->red, *root = NULL;
  for (int o = 0; o < K->nouts; o++)
    if (!full_domain_out(K, K->outs[o], red)) root = K->outs[o];
  int order[MAX_RANK];
  Lx *vars[MAX_RANK], *zero = lx_i(L, 0);
  for (int i = 0; i < MAX_RANK; i++) order[i] = i;
  L->red_buf = buffer_of(L, root);
  Lx *kv[MAX_RANK];
  Ls *init = loop_nest(L, body, &root->shape, order, root->shape.rank, kv);
  store(L, init, L->red_buf, linear(L, &root->shape, kv), lx_f(L, red->op == OP_SUM ? 0.0 : -INFINITY));
  Ls *blk = loop_nest(L, body, D, order, D->rank, vars);
  Lx *ridx[MAX_RANK], *kidx[MAX_RANK];
  Shape kept = kept_index(L, vars, kidx);
  if (!unit_map(&kept, kidx, &red->shape, ridx, zero)) unreachable("reduction shape");
  Lx *at = linear(L, &red->shape, ridx);
  Lx *cur = lx(L, (Lx){.k = LX_LOAD, .buf = L->red_buf, .a = {at}});
  L->red = NULL;
  Lx *v = value(L, red->in[0], vars);
  for (int o = 0; o < K->nouts; o++)
    if (K->outs[o] != root) store_out(L, blk, K->outs[o], vars);
  L->red = red;
  Lx *acc = lx(L, (Lx){.k = LX_OP, .op = red->op == OP_SUM ? OP_ADD : OP_MAX, .a = {cur, v}});
  store(L, blk, L->red_buf, at, acc);
  if (root == red) return;
  Lx *ev[MAX_RANK];
  Ls *epi = loop_nest(L, body, &root->shape, order, root->shape.rank, ev);
  store_out(L, epi, root, ev);
}

/* Is the reduction over a small static window (a pooling window: 2x2, 3x3) whose kernel
 * writes only at the kept index?  Then it is unrolled into one expression (lower_window). */
#define SMALL_WINDOW 16
static bool small_window(const Kernel *K, const INode *red) {
  int64_t points = 1;
  for (int i = 0; i < K->domain.rank; i++) {
    if (!(K->raxes & (1u << i))) continue;
    if (K->domain.d[i].syms) return false;
    points *= K->domain.d[i].k;
  }
  for (int o = 0; o < K->nouts; o++)
    if (full_domain_out(K, K->outs[o], red)) return false;
  return points <= SMALL_WINDOW && K->domain.rank >= 2;
}

/* A small window's reduction as one expression per output element, its points combined in
 * the order the accumulating loops would visit them:
 *   for kept { out[kept] = epilogue(v(p0) op v(p1) op ... ) }
 * The kept loops then only store, so the row loop can run as vectors (pooling reads two or
 * three neighbouring columns per output: LLVM's interleaved loads). */
static void lower_window(Lower *L, Ls *body) {
  const Kernel *K = L->K;
  const Shape *D = &K->domain;
  INode *red = L->red;
  int order[MAX_RANK], nkept = 0, nred = 0, raxis[MAX_RANK];
  Lx *vars[MAX_RANK];
  for (int i = 0; i < D->rank; i++) {
    if (K->raxes & (1u << i)) raxis[nred++] = i;
    else order[nkept++] = i;
  }
  Ls *outer = loop_nest(L, body, D, order, nkept, vars);
  int64_t at[MAX_RANK] = {0};
  Lx *acc = NULL;
  L->red = NULL;
  for (bool more = true; more;) {
    for (int r = 0; r < nred; r++) vars[raxis[r]] = lx_i(L, at[r]);
    Lx *v = value(L, red->in[0], vars);
    acc = !acc ? v : fop(L, red->op == OP_SUM ? OP_ADD : OP_MAX, acc, v);
    more = false;
    for (int r = nred - 1; r >= 0 && !more; r--) { /* next point, last axis fastest */
      if (++at[r] < D->d[raxis[r]].k) more = true;
      else at[r] = 0;
    }
  }
  L->red = red;
  L->red_value = acc;
  store_epilogue(L, outer, vars);
}

static void lower_reduce(Lower *L, Ls *body) {
  const Kernel *K = L->K;
  L->red = find_reduction(K);
  if (K->domain.rank > 1 && !(K->raxes & (1u << (K->domain.rank - 1)))) {
    lower_column_reduce(L, body);
    return;
  }
  if (small_window(K, L->red)) {
    lower_window(L, body);
    return;
  }
  const Shape *D = &K->domain;
  int order[MAX_RANK], n = 0, nkept = 0;
  Lx *vars[MAX_RANK];
  for (int i = 0; i < D->rank; i++)
    if (!(K->raxes & (1u << i))) order[n++] = i;
  nkept = n;
  for (int i = 0; i < D->rank; i++)
    if (K->raxes & (1u << i)) order[n++] = i;
  L->red_acc = L->naccs++;
  Ls *outer = loop_nest(L, body, D, order, nkept, vars);
  Ls *init = ls_new(L, LS_ACC_INIT);
  init->acc = L->red_acc;
  init->rop = L->red->op;
  ls_add(L, outer, init);
  Ls *inner = loop_nest(L, outer, D, order + nkept, n - nkept, vars);
  Ls *upd = ls_new(L, LS_ACC_UPDATE);
  upd->acc = L->red_acc;
  upd->rop = L->red->op;
  /* the reduction input is evaluated without the accumulator in scope */
  INode *red = L->red;
  L->red = NULL;
  upd->val = value(L, red->in[0], vars);
  for (int o = 0; o < K->nouts; o++)
    if (full_domain_out(K, K->outs[o], red)) store_out(L, inner, K->outs[o], vars);
  L->red = red;
  ls_add(L, inner, upd);
  store_epilogue(L, outer, vars);
}

/* Element offset of the matrix of operand `x` (rank >= 2) for the batch index `bidx` of the
 * result's nb batch dims: NumPy broadcasting, so a missing or size-1 batch dim stays at 0. */
static Lx *batch_offset(Lower *L, const Shape *out, int nb, Lx *const *bidx, const Shape *x) {
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

/* ---- direct convolution (convplan.h) ---- */

/* The padded, phase-split copy of image bidx[0]'s channels of group bidx[1] into the
 * scratch buffer `xbuf` at `base`. */
/* One stride phase (ph, pw) of every input channel in the padded copy (lower_conv_copy). */
static void lower_conv_copy_phase(Lower *L, Ls *chan, const ConvPlan *c, Lx *const *bidx, int xbuf, Lx *base, Lx *ci,
                                  int64_t ph, int64_t pw) {
  Lx *zero = lx_i(L, 0), *one = lx_i(L, 1), *hh, *ww;
  int64_t H = c->x->shape.d[2].k, W = c->x->shape.d[3].k, sw = c->stride[1];
  Ls *s = loop(L, chan, zero, lx_i(L, c->hq), one, &hh);
  s->rolled = true;
  Lx *plane = ibin(L, '+', ibin(L, '*', ci, lx_i(L, c->nphase[0] * c->nphase[1])), lx_i(L, ph * c->nphase[1] + pw));
  Lx *row = ibin(L, '+', base, ibin(L, '*', ibin(L, '+', ibin(L, '*', plane, lx_i(L, c->hq)), hh), lx_i(L, c->wq)));
  /* columns ww with input column iw = ww*sw + pw - pad_l inside [0, W): [lo, hi), static
   * for a static phase; the zero padding on either side is stored apart, so the row between
   * loads a plain run of X (every sw-th element: a vector row) */
  int64_t first = c->pad[1] - pw; /* ww*sw >= first */
  int64_t lo = first <= 0 ? 0 : (first + sw - 1) / sw;
  lo = lo < c->wq ? lo : c->wq;
  int64_t hi = (first + W - 1 + sw) / sw; /* ww*sw <= first + W - 1 */
  hi = hi < c->wq ? hi : c->wq;
  hi = hi > lo ? hi : lo;
  Ls *left = loop(L, s, zero, lx_i(L, lo), one, &ww);
  left->scalar = left->rolled = true;
  store(L, left, xbuf, ibin(L, '+', row, ww), lx_f(L, 0.0));
  Ls *mid = loop(L, s, lx_i(L, lo), lx_i(L, hi), one, &ww);
  mid->vector_row = hi - lo <= SHORT_ROW;
  Lx *ih = ibin(L, '-', ibin(L, '+', ibin(L, '*', hh, lx_i(L, c->stride[0])), lx_i(L, ph)), lx_i(L, c->pad[0]));
  Lx *iw = ibin(L, '-', ibin(L, '+', ibin(L, '*', ww, lx_i(L, sw)), lx_i(L, pw)), lx_i(L, c->pad[1]));
  Lx *xi[4] = {bidx[0], ibin(L, '+', ibin(L, '*', bidx[1], lx_i(L, c->cin)), ci), clamp(L, ih, 0, H - 1), iw};
  Lx *row_inside = ibin(L, '&', ibin(L, '<', lx_i(L, -1), ih), ibin(L, '<', ih, lx_i(L, H)));
  store(L, mid, xbuf, ibin(L, '+', row, ww), select3(L, row_inside, value(L, c->x, xi), lx_f(L, 0.0)));
  L->nmemo = 0;
  Ls *right = loop(L, s, lx_i(L, hi), lx_i(L, c->wq), one, &ww);
  right->scalar = right->rolled = true;
  store(L, right, xbuf, ibin(L, '+', row, ww), lx_f(L, 0.0));
}

/* The padded, phase-split copy of an (image, group)'s input channels (convplan.h), each
 * stride phase in its own loops: their column ranges are then static. */
static void lower_conv_copy(Lower *L, Ls *parent, const ConvPlan *c, Lx *const *bidx, int xbuf, Lx *base) {
  Lx *ci;
  Ls *chan = loop(L, parent, lx_i(L, 0), lx_i(L, c->cin), lx_i(L, 1), &ci);
  for (int64_t ph = 0; ph < c->nphase[0]; ph++)
    for (int64_t pw = 0; pw < c->nphase[1]; pw++) lower_conv_copy_phase(L, chan, c, bidx, xbuf, base, ci, ph, pw);
}

/* The direct convolution's register-tiled kernel (codegen emit_conv) over x (channel planes
 * of xplane floats) and weight rows of cin * ntaps, into y: cin input channels, vectors of
 * `lanes` floats. */
static Ls *conv_stmt(Lower *L, int64_t cin, int lanes, int x, Lx *x_off, int w, Lx *w_off, int y, Lx *y_off, int64_t cout) {
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

static Lx *f_add(Lower *L, Lx *a, Lx *b) { return fop(L, OP_ADD, a, b); }
static Lx *f_sub(Lower *L, Lx *a, Lx *b) { return fop(L, OP_SUB, a, b); }

/* Winograd F(2x2, 3x3) of one (image, group) (convplan.h), from its padded copy at `base`:
 *   V[xi, ci, tile] = (B^T d B)[xi]  for the 4x4 input tile d of each 2x2 output tile
 *   M[xi] = U[xi] V[xi]              16 products over the channels (the conv tile kernel, one tap)
 *   C[co, 2ty + i, 2tx + j] = (A^T M[., co, tile] A)[i][j]
 * Tiles along a row run as vectors (vector_row: the input tile's columns are read every
 * other element, the two output columns stored interleaved); the epilogue then reads C. */
static bool lower_winograd(Lower *L, Ls *parent, const ConvPlan *c, Lx *const *bidx, int xbuf, Lx *base, Lx *item) {
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

/* Returns whether the kernel's epilogue was applied too (Winograd's output transform). */
static bool lower_conv(Lower *L, Ls *parent, const ConvPlan *c, Lx *const *bidx) {
  const Kernel *K = L->K;
  INode *g = K->gemm, *A = g->in[0];
  const Shape *s = &g->shape;
  int xbuf = buffer_of(L, K->prologue);
  Lx *item = ibin(L, '+', ibin(L, '*', bidx[0], lx_i(L, c->groups)), bidx[1]);
  Lx *base = ibin(L, '*', item, lx_i(L, conv_plan_copy_floats(c)));
  lower_conv_copy(L, parent, c, bidx, xbuf, base);
  if (c->winograd) return lower_winograd(L, parent, c, bidx, xbuf, base, item);
  int64_t cout = s->d[2].k, ntaps = c->kh * c->kw;
  Ls *cv = conv_stmt(L, c->cin, c->lanes, xbuf, base, buffer_of(L, A), batch_offset(L, s, 2, bidx, &A->shape), L->gemm_cbuf,
                     ibin(L, '*', item, lx_i(L, cout * s->d[3].k)), cout);
  cv->cv.ntaps = ntaps;
  cv->cv.xplane = conv_plan_channel_floats(c);
  cv->cv.xrow = c->wq;
  cv->cv.oh = c->oh;
  cv->cv.ow = c->ow;
  cv->cv.tap = arena_alloc(L->m->arena, ntaps * sizeof *cv->cv.tap);
  for (int64_t i = 0; i < c->kh; i++)
    for (int64_t j = 0; j < c->kw; j++) cv->cv.tap[i * c->kw + j] = conv_plan_tap(c, i, j);
  ls_add(L, parent, cv);
  return false;
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
                                               vector (fcn's 2x2 maps: 455 -> 440 us) */
    /* B's columns in up to 4 parts of at least 2 register tiles: with one or two tiles of
     * rows (an LSTM step's h W_hh^T at batch 1) the threads then split B, each reading its
     * part into its own core's cache */
    int64_t vtiles = (n->c + lanes - 1) / lanes / cv->cv.tile_vec;
    cv->cv.parts = vtiles >= 8 ? 4 : vtiles >= 4 ? 2 : 1;
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

/* sgemm per matrix of the batch (per block of GEMM_ROW_BLOCK rows for a plain 2-D product),
 * with the epilogue applied while the block is warm in cache: after each row block, or after
 * each index of the leading batch dim when the result keeps it (a convolution's images). */
static void lower_gemm(Lower *L, Ls *body) {
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
  bool done = false;
  if (conv_plan(K, &conv)) done = lower_conv(L, cur, &conv, bidx);
  else cur = lower_sgemm(L, cur, bidx, blocked, &r0, &done);
  Lx *rows = block_rows(L, blocked, m, r0);
  if (root == g || done || is_view_of(root, g)) return;
  Lx *vars[MAX_RANK];
  int order[MAX_RANK];
  for (int i = 0; i < MAX_RANK; i++) order[i] = i;
  if (blocked) {
    Ls *ri = loop(L, cur, r0, ibin(L, '+', r0, rows), one, &vars[0]);
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

/* One sample of torchvision's bilinear_interpolate at float (y, x), in float32: the offsets
 * of its four corners in a feature plane, their weights, and whether it falls outside.  The
 * same for every channel. */
typedef struct RoiSample { Lx *off[4], *w[4], *outside; } RoiSample;

static RoiSample roi_sample(Lower *L, const Shape *fs, Lx *y, Lx *x) {
  int64_t H = fs->d[2].k, W = fs->d[3].k;
  Lx *one = lx_f(L, 1.0), *zero = lx_f(L, 0.0);
  RoiSample r;
  r.outside = fop(L, OP_LOGIC_OR, fop(L, OP_LOGIC_OR, fop(L, OP_CMP_LT, y, lx_f(L, -1.0)), fop(L, OP_CMP_GT, y, lx_f(L, (double)H))),
                  fop(L, OP_LOGIC_OR, fop(L, OP_CMP_LT, x, lx_f(L, -1.0)), fop(L, OP_CMP_GT, x, lx_f(L, (double)W))));
  Lx *c[2], *lo[2], *hi[2], *l[2];
  c[0] = fop(L, OP_MAX, y, zero);
  c[1] = fop(L, OP_MAX, x, zero);
  for (int a = 0; a < 2; a++) {
    int64_t size = a ? W : H;
    Lx *i0 = ftoi(L, c[a]);
    Lx *at_edge = ibin(L, '<', lx_i(L, size - 2), i0); /* i0 >= size - 1 */
    lo[a] = select3(L, at_edge, lx_i(L, size - 1), i0);
    hi[a] = select3(L, at_edge, lx_i(L, size - 1), ibin(L, '+', i0, lx_i(L, 1)));
    Lx *pos = select3(L, at_edge, lx_f(L, (double)(size - 1)), c[a]);
    l[a] = fop(L, OP_SUB, pos, itof(L, lo[a]));
  }
  Lx *hy = fop(L, OP_SUB, one, l[0]), *hx = fop(L, OP_SUB, one, l[1]);
  r.w[0] = fop(L, OP_MUL, hy, hx);
  r.w[1] = fop(L, OP_MUL, hy, l[1]);
  r.w[2] = fop(L, OP_MUL, l[0], hx);
  r.w[3] = fop(L, OP_MUL, l[0], l[1]);
  for (int i = 0; i < 4; i++)
    r.off[i] = ibin(L, '+', ibin(L, '*', i < 2 ? lo[0] : hi[0], lx_i(L, W)), i % 2 ? hi[1] : lo[1]);
  return r;
}

/* The sample's value in channel c of image b's features: [N, C, H, W], or [N, H, W, C] when
 * channels_last (roi_sample's offsets are y * W + x either way). */
static Lx *roi_gather(Lower *L, int fbuf, int64_t C, int64_t H, int64_t W, bool channels_last, Lx *b, Lx *c,
                      const RoiSample *r) {
  Lx *v[4];
  for (int i = 0; i < 4; i++) {
    Lx *at = channels_last ? ibin(L, '+', ibin(L, '*', ibin(L, '+', ibin(L, '*', b, lx_i(L, H * W)), r->off[i]), lx_i(L, C)), c)
                           : ibin(L, '+', ibin(L, '*', ibin(L, '+', ibin(L, '*', b, lx_i(L, C)), c), lx_i(L, H * W)), r->off[i]);
    v[i] = lx(L, (Lx){.k = LX_LOAD, .buf = fbuf, .a = {at}});
  }
  Lx *sum = fop(L, OP_ADD, fop(L, OP_ADD, fop(L, OP_ADD, fop(L, OP_MUL, r->w[0], v[0]), fop(L, OP_MUL, r->w[1], v[1])),
                                fop(L, OP_MUL, r->w[2], v[2])), fop(L, OP_MUL, r->w[3], v[3]));
  return select3(L, r->outside, lx_f(L, 0.0), sum);
}

static void eval(Lower *L, Ls *parent, Lx *v) {
  Ls *s = ls_new(L, LS_EVAL);
  s->val = v;
  ls_add(L, parent, s);
}

/* ceil of a float, as an integer: trunc(a) + (trunc(a) < a) */
static Lx *ceil_int(Lower *L, Lx *a) {
  Lx *t = ftoi(L, a);
  return ibin(L, '+', t, ftoi(L, fop(L, OP_CMP_LT, itof(L, t), a)));
}

/* roi_align (torchvision.ops.roi_align, float32): for each box and output bin, the mean of
 * a grid of bilinear samples; the grid size is sampling_ratio, or adaptive (ceil(roi size /
 * bins), so data-dependent loop bounds).  A sample's position and weights are computed once
 * for all channels: the channel loop is innermost and sums into the output, in the order of
 * the samples, then divides by their count.  A fixed grid of at most ROI_UNROLLED samples is
 * unrolled: the channel loop sums all of them in registers. */
#define ROI_UNROLLED 16
static void lower_roi_align(Lower *L, Ls *body) {
  INode *n = L->K->outs[0], *feat = n->in[0], *boxes = n->in[1];
  int fbuf = buffer_of(L, feat), bbuf = buffer_of(L, boxes), obuf = buffer_of(L, n);
  if (fbuf < 0 || bbuf < 0) unreachable("roi_align operand not in memory");
  bool last = n->i[1];
  const Shape *fs = &feat->shape;
  int64_t C = n->shape.d[1].k, H = fs->d[last ? 1 : 2].k, W = fs->d[last ? 2 : 3].k, PH = n->shape.d[2].k, PW = n->shape.d[3].k;
  Shape spatial = {.rank = 4, .d = {fs->d[0], dim_const(C), dim_const(H), dim_const(W)}}; /* for roi_sample */
  Lx *k, *ph, *pw, *zero = lx_i(L, 0), *one = lx_i(L, 1);
  Ls *blk = loop(L, body, zero, lx_dim(L, n->shape.d[0]), one, &k);
  blk = loop(L, blk, zero, lx_i(L, PH), one, &ph);
  blk = loop(L, blk, zero, lx_i(L, PW), one, &pw);
  Lx *box[5];
  for (int i = 0; i < 5; i++)
    box[i] = lx(L, (Lx){.k = LX_LOAD, .buf = bbuf, .a = {ibin(L, '+', ibin(L, '*', k, lx_i(L, 5)), lx_i(L, i))}});
  Lx *scale = lx_f(L, (float)n->f[0]), *off = lx_f(L, n->flag ? 0.5 : 0.0);
  Lx *x1 = fop(L, OP_SUB, fop(L, OP_MUL, box[1], scale), off), *y1 = fop(L, OP_SUB, fop(L, OP_MUL, box[2], scale), off);
  Lx *x2 = fop(L, OP_SUB, fop(L, OP_MUL, box[3], scale), off), *y2 = fop(L, OP_SUB, fop(L, OP_MUL, box[4], scale), off);
  Lx *rw = fop(L, OP_SUB, x2, x1), *rh = fop(L, OP_SUB, y2, y1);
  if (!n->flag) { /* legacy: force malformed boxes to 1x1 */
    rw = fop(L, OP_MAX, rw, lx_f(L, 1.0));
    rh = fop(L, OP_MAX, rh, lx_f(L, 1.0));
  }
  Lx *bh = fop(L, OP_DIV, rh, lx_f(L, (double)PH)), *bw = fop(L, OP_DIV, rw, lx_f(L, (double)PW));
  Lx *gh = n->i[0] > 0 ? lx_i(L, n->i[0]) : ceil_int(L, fop(L, OP_DIV, rh, lx_f(L, (double)PH)));
  Lx *gw = n->i[0] > 0 ? lx_i(L, n->i[0]) : ceil_int(L, fop(L, OP_DIV, rw, lx_f(L, (double)PW)));
  Lx *count = itof(L, ibin(L, 'M', ibin(L, '*', gh, gw), one));
  Lx *image = ftoi(L, box[0]);
  eval(L, blk, count);
  eval(L, blk, image);
#define OUT(c) ibin(L, '+', ibin(L, '*', ibin(L, '+', ibin(L, '*', ibin(L, '+', ibin(L, '*', k, lx_i(L, C)), c), lx_i(L, PH)), ph), lx_i(L, PW)), pw)
  Lx *half = lx_f(L, 0.5), *sc;
#define SAMPLE_Y(iy) fop(L, OP_ADD, fop(L, OP_ADD, y1, fop(L, OP_MUL, itof(L, ph), bh)), \
                         fop(L, OP_DIV, fop(L, OP_MUL, fop(L, OP_ADD, itof(L, iy), half), bh), itof(L, gh)))
#define SAMPLE_X(ix) fop(L, OP_ADD, fop(L, OP_ADD, x1, fop(L, OP_MUL, itof(L, pw), bw)), \
                         fop(L, OP_DIV, fop(L, OP_MUL, fop(L, OP_ADD, itof(L, ix), half), bw), itof(L, gw)))
  if (n->i[0] > 0 && n->i[0] * n->i[0] <= ROI_UNROLLED) {
    /* a fixed grid: every sample's corners and weights first, then one pass over the
     * channels that sums the samples in order and stores each output once */
    RoiSample smp[ROI_UNROLLED];
    int ns = 0;
    for (int64_t iy = 0; iy < n->i[0]; iy++)
      for (int64_t ix = 0; ix < n->i[0]; ix++, ns++) {
        smp[ns] = roi_sample(L, &spatial, SAMPLE_Y(lx_i(L, iy)), SAMPLE_X(lx_i(L, ix)));
        for (int i = 0; i < 4; i++) {
          eval(L, blk, smp[ns].off[i]);
          eval(L, blk, smp[ns].w[i]);
        }
        eval(L, blk, smp[ns].outside);
      }
    Ls *lc = loop(L, blk, zero, lx_i(L, C), one, &sc);
    /* channels-last: the channels of a corner are contiguous, the row runs as vectors (its
     * outputs H*W apart stored lane by lane); else every corner would be a gather */
    lc->vector_row = last && C <= SHORT_ROW;
    lc->scalar = !lc->vector_row;
    Lx *sum = NULL;
    for (int i = 0; i < ns; i++) {
      Lx *v = roi_gather(L, fbuf, C, H, W, last, image, sc, &smp[i]);
      sum = sum ? fop(L, OP_ADD, sum, v) : v;
    }
    store(L, lc, obuf, OUT(sc), fop(L, OP_DIV, sum, count));
    return;
  }
  Lx *c;
  Ls *lz = loop(L, blk, zero, lx_i(L, C), one, &c);
  store(L, lz, obuf, OUT(c), lx_f(L, 0.0));
  Lx *iy, *ix;
  Ls *ly = loop(L, blk, zero, gh, one, &iy);
  Ls *lxl = loop(L, ly, zero, gw, one, &ix);
  RoiSample smp = roi_sample(L, &spatial, SAMPLE_Y(iy), SAMPLE_X(ix));
  for (int i = 0; i < 4; i++) {
    eval(L, lxl, smp.off[i]);
    eval(L, lxl, smp.w[i]);
  }
  eval(L, lxl, smp.outside);
  Ls *lc = loop(L, lxl, zero, lx_i(L, C), one, &sc);
  lc->scalar = true;
  Lx *v = roi_gather(L, fbuf, C, H, W, last, image, sc, &smp);
  store(L, lc, obuf, OUT(sc), fop(L, OP_ADD, lx(L, (Lx){.k = LX_LOAD, .buf = obuf, .a = {OUT(sc)}}), v));
  Lx *dc;
  Ls *ld = loop(L, blk, zero, lx_i(L, C), one, &dc);
  store(L, ld, obuf, OUT(dc), fop(L, OP_DIV, lx(L, (Lx){.k = LX_LOAD, .buf = obuf, .a = {OUT(dc)}}), count));
#undef OUT
#undef SAMPLE_Y
#undef SAMPLE_X
}

/* col2im without dilation as a gather: output (.., y, x) sums the column elements that land
 * on it, those of kh = (y + pad) % s + t s and ih = (y + pad) / s - t for t = 0, 1, .. (kh <
 * KH, 0 <= ih < H; the same along x), from 0 in PyTorch's order (kh, then kw, ascending): the
 * sums are PyTorch's, bit for bit.  One pass writing each output once, which splits among
 * threads, instead of a scatter of read-modify-writes (fcn's 16x16 stride-8 upsampling: the
 * scatter took 37 us). */
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
        int64_t k = cs->d[lead + a].k, in = cs->d[lead + 2 + a].k;
        Lx *kk = ibin(L, '+', rem[a], ibin(L, '*', t[a], lx_i(L, n->i[a]))), *ii = ibin(L, '-', q[a], t[a]);
        Lx *c = ibin(L, '&', ibin(L, '<', kk, lx_i(L, k)), ibin(L, '&', ibin(L, '<', lx_i(L, -1), ii), ibin(L, '<', ii, lx_i(L, in))));
        valid = valid ? ibin(L, '&', valid, c) : c;
        ci[lead + a] = clamp(L, kk, 0, k - 1);
        ci[lead + 2 + a] = clamp(L, ii, 0, in - 1);
      }
      Lx *x = lx(L, (Lx){.k = LX_LOAD, .buf = ibuf, .a = {linear(L, cs, ci)}});
      sum = fop(L, OP_ADD, sum, select3(L, valid, x, zero));
    }
  store(L, blk, obuf, linear(L, os, v), sum);
}

/* col2im as PyTorch's: zero the output, then add every column element at its position, in
 * the order (channel, kh, kw, ih, iw); positions outside the output add nothing. */
static void lower_col2im(Lower *L, Ls *body) {
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
    int64_t size = os->d[lead + a].k;
    Lx *o = ibin(L, '+', ibin(L, '-', ibin(L, '*', v[lead + 2 + a], lx_i(L, n->i[a])), lx_i(L, n->i[2 + a])),
                 ibin(L, '*', v[lead + a], lx_i(L, n->i[4 + a])));
    Lx *c = ibin(L, '&', ibin(L, '<', lx_i(L, -1), o), ibin(L, '<', o, lx_i(L, size)));
    cond = cond ? ibin(L, '&', cond, c) : c;
    oidx[lead + a] = clamp(L, o, 0, size - 1);
  }
  Lx *at = linear(L, os, oidx);
  Lx *add = select3(L, cond, lx(L, (Lx){.k = LX_LOAD, .buf = ibuf, .a = {linear(L, cs, v)}}), lx_f(L, 0.0));
  store(L, blk, obuf, at, fop(L, OP_ADD, lx(L, (Lx){.k = LX_LOAD, .buf = obuf, .a = {at}}), add));
}

static void lower_opaque(Lower *L, Ls *body) {
  switch (L->K->outs[0]->op) {
  case OP_ROI_ALIGN: lower_roi_align(L, body); break;
  case OP_COL2IM: lower_col2im(L, body); break;
  default: unreachable("opaque op without a lowering");
  }
}

/* The loop of a scan kernel; codegen.c emits it as calls of the body's function. */
static void lower_scan(Lower *L, Ls *body) {
  const Kernel *K = L->K;
  INode *scan = NULL;
  for (int c = 0; c < K->ncovers && !scan; c++)
    if (K->covers[c]->op == OP_SCAN) scan = K->covers[c];
  const ScanInfo *sc = scan->scan;
  const Entry *b = sc->body;
  int nc = sc->ncarried, ncap = sc->ncaptured, ns = sc->nsteps;
  int n = nc + nc + 2 * nc + ncap + ns + 2;
  Ls *s = ls_new(L, LS_SCAN);
  s->sc.info = sc;
  for (int i = 0; i < L->m->nbodies; i++)
    if (L->m->bodies[i] == b) s->sc.body = i;
  s->sc.bufs = arena_alloc(L->m->arena, n * sizeof *s->sc.bufs);
  int *bufs = s->sc.bufs, at = 0;
  INode *p = scan->in[0];
  INode *operands[512];
  for (int i = 0; p && i < 512; p = p->in[1]) operands[i++] = p->in[0];
  for (int i = 0; i < nc; i++) bufs[at++] = buffer_of(L, operands[i]);
  for (int i = 0; i < nc; i++) {
    int f = -1;
    for (int o = 0; o < K->nouts; o++)
      if (K->outs[o]->i[0] == i) f = buffer_of(L, K->outs[o]);
    bufs[at++] = f;
  }
  for (int i = 0; i < 2 * nc; i++) bufs[at++] = add_buf(L, (LBuf){.k = LB_SLOT, .index = sc->scratch[i]});
  for (int j = 0; j < ncap; j++) bufs[at++] = buffer_of(L, operands[nc + j]);
  for (int j = 0; j < ns; j++) {
    int f = -1;
    for (int o = 0; o < K->nouts; o++)
      if (K->outs[o]->i[0] == nc + j) f = buffer_of(L, K->outs[o]);
    bufs[at++] = f >= 0 ? f : add_buf(L, (LBuf){.k = LB_SLOT, .index = sc->scratch[2 * nc + j]});
  }
  bufs[at++] = add_buf(L, (LBuf){.k = LB_WEIGHT, .dtype = DT_F32, .index = -1, .offset = 0});
  bufs[at++] = b->nslots ? add_buf(L, (LBuf){.k = LB_SLOT, .index = sc->body_slots}) : -1;
  for (int i = 0; i < n; i++)
    if (i != n - 1 && bufs[i] < 0 && !(i >= nc && i < 2 * nc)) unreachable("scan operand not in memory");
  s->sc.numel = arena_alloc(L->m->arena, (b->nout + 1) * sizeof *s->sc.numel);
  for (int i = 0; i < b->nout; i++) s->sc.numel[i] = lx_dim(L, shape_numel(&b->out_shapes[i]));
  s->sc.steps = lx_dim(L, sc->bound);
  ls_add(L, body, s);
}

static const char *kind_names[] = {"elementwise", "reduce", "gemm", "opaque", "scan"};

static void lower_kernel(Lower *L, const Kernel *K, int index, LKernel *out) {
  L->K = K;
  L->red = L->gemm = L->computing = NULL;
  L->red_buf = -1;
  L->red_value = L->gemm_value = NULL;
  L->nvars = L->naccs = 0;
  L->nmemo = 0;
  Ls *body = ls_new(L, LS_BLOCK);
  switch (K->kind) {
  case KK_ELEM: lower_elementwise(L, body); break;
  case KK_REDUCE: lower_reduce(L, body); break;
  case KK_GEMM: lower_gemm(L, body); break;
  case KK_OPAQUE: lower_opaque(L, body); break;
  case KK_SCAN: lower_scan(L, body); break;
  }
  char name[160];
  snprintf(name, sizeof name, "%s.k%d.%s", L->e->name, index, kind_names[K->kind]);
  out->name = arena_strdup(L->m->arena, name);
  out->body = body;
  out->nvars = L->nvars;
  out->naccs = L->naccs;
}

/* One LEntry per entry, then the init entry's (at index nentries) when the model has one. */
LEntry *lower_model(Model *m) {
  int n = m->nentries + (m->init != NULL) + m->nbodies;
  LEntry *les = arena_alloc(m->arena, (n + 1) * sizeof *les);
  Lower *L = calloc(1, sizeof *L);
  if (!L) return NULL;
  for (int i = 0; i < n; i++) {
    memset(L->hash, 0, sizeof L->hash);
    L->m = m;
    if (i < m->nentries) L->e = &m->entries[i];
    else if (i == m->nentries && m->init) L->e = m->init;
    else L->e = m->bodies[i - m->nentries - (m->init != NULL)];
    ((Entry *)L->e)->lower_index = i;
    L->le = &les[i];
    les[i].e = L->e;
    les[i].nkernels = L->e->nkernels;
    les[i].kernels = arena_alloc(m->arena, (L->e->nkernels + 1) * sizeof *les[i].kernels);
    for (int k = 0; k < L->e->nkernels; k++) lower_kernel(L, &L->e->kernels[k], k, &les[i].kernels[k]);
    for (int k = 0; k < L->e->nkernels; k++) loopir_mark_parallel(&les[i], &les[i].kernels[k]);
  }
  free(L->range);
  free(L);
  return les;
}

/* ---- text form: nnc dump --stage=loops, and the canonical key codegen uses to emit
 * structurally equal kernels once (buffers renumbered by first use, exact constants) ---- */

typedef struct Printer {
  FILE *out;
  const Ls *par, *par_inner; /* the kernel's loops that run split among threads */
  int gen, next_id;   /* shared subexpressions print as %id after their first use */
  const LEntry *le;
  int *rename;      /* entry buffer -> local number, or NULL */
  int nlocal;
  bool canonical;
} Printer;

static void print_buf(Printer *p, int b) {
  if (p->rename) {
    if (p->rename[b] < 0) p->rename[b] = p->nlocal++;
    b = p->rename[b];
  }
  fprintf(p->out, "b%d", b);
}

static void print_lx(Printer *p, Lx *x) {
  FILE *out = p->out;
  bool compound = x->k == LX_IBIN || x->k == LX_LOAD || x->k == LX_OP || x->k == LX_SELECT ||
                  x->k == LX_ITOF || x->k == LX_FTOI || x->k == LX_LOADI;
  if (compound) {
    if (x->print_gen == p->gen) {
      fprintf(out, "%%%d", x->print_id);
      return;
    }
    x->print_gen = p->gen;
    x->print_id = p->next_id++;
    fprintf(out, "%%%d=", x->print_id);
  }
  switch (x->k) {
  case LX_F: fprintf(out, p->canonical ? "%a" : "%g", x->f[0]); break;
  case LX_I: fprintf(out, "%lld", (long long)x->c); break;
  case LX_VAR: fprintf(out, "i%d", x->var); break;
  case LX_SYM: fprintf(out, "%lld*sym%x", (long long)x->c, x->syms); break;
  case LX_IBIN:
    fprintf(out, "(");
    print_lx(p, x->a[0]);
    fprintf(out, " %c ", x->op);
    print_lx(p, x->a[1]);
    fprintf(out, ")");
    break;
  case LX_LOAD:
    print_buf(p, x->buf);
    if (p->canonical && p->le->bufs[x->buf].dtype == DT_I64) fprintf(out, ":i64");
    fprintf(out, "[");
    print_lx(p, x->a[0]);
    fprintf(out, "]");
    break;
  case LX_OP:
    fprintf(out, "%s(", op_info[x->op].name);
    for (int k = 0; k < op_info[x->op].arity; k++) {
      if (k) fprintf(out, ", ");
      print_lx(p, x->a[k]);
    }
    if (p->canonical) fprintf(out, "; %a %a", x->f[0], x->f[1]);
    fprintf(out, ")");
    break;
  case LX_SELECT:
    fprintf(out, "select(");
    for (int k = 0; k < 3; k++) {
      if (k) fprintf(out, ", ");
      print_lx(p, x->a[k]);
    }
    fprintf(out, ")");
    break;
  case LX_ACC: fprintf(out, "acc%d", x->acc); break;
  case LX_ITOF: fprintf(out, "float("); print_lx(p, x->a[0]); fprintf(out, ")"); break;
  case LX_FTOI: fprintf(out, "int("); print_lx(p, x->a[0]); fprintf(out, ")"); break;
  case LX_LOADI:
    print_buf(p, x->buf);
    fprintf(out, ":i64raw[");
    print_lx(p, x->a[0]);
    fprintf(out, "]");
    break;
  }
}

static _Thread_local int print_generation; /* per compiling thread */

/* buf[off] */
static void print_ref(Printer *p, int buf, Lx *off) {
  print_buf(p, buf);
  fprintf(p->out, "[");
  print_lx(p, off);
  fprintf(p->out, "]");
}

static void print_ls(Printer *p, const Ls *s, int depth) {
  FILE *out = p->out;
  fprintf(out, "%*s", 2 * depth, "");
  switch (s->k) {
  case LS_BLOCK:
    fprintf(out, "{\n");
    for (int i = 0; i < s->nbody; i++) print_ls(p, s->body[i], depth + 1);
    fprintf(out, "%*s}\n", 2 * depth, "");
    break;
  case LS_LOOP:
    fprintf(out, "%s%sfor i%d in ", s == p->par || s == p->par_inner ? "parallel " : "", s->vector_row ? "vector " : "", s->var);
    print_lx(p, s->lo);
    fprintf(out, "..");
    print_lx(p, s->hi);
    if (!(s->step->k == LX_I && s->step->c == 1)) {
      fprintf(out, " step ");
      print_lx(p, s->step);
    }
    fprintf(out, " {\n");
    for (int i = 0; i < s->nbody; i++) print_ls(p, s->body[i], depth + 1);
    fprintf(out, "%*s}\n", 2 * depth, "");
    break;
  case LS_STORE:
    print_ref(p, s->buf, s->idx);
    fprintf(out, " = ");
    print_lx(p, s->val);
    fprintf(out, "\n");
    break;
  case LS_EVAL:
    fprintf(out, "eval ");
    print_lx(p, s->val);
    fprintf(out, "\n");
    break;
  case LS_ACC_INIT: fprintf(out, "acc%d = %s\n", s->acc, s->rop == OP_SUM ? "0" : "-inf"); break;
  case LS_ACC_UPDATE:
    fprintf(out, "acc%d = %s(acc%d, ", s->acc, s->rop == OP_SUM ? "add" : "max", s->acc);
    print_lx(p, s->val);
    fprintf(out, ")\n");
    break;
  case LS_SCAN: {
    const ScanInfo *sc = s->sc.info;
    int nb = 4 * sc->ncarried + sc->ncaptured + sc->nsteps + 2;
    fprintf(out, "scan %s steps=", sc->body->name);
    print_lx(p, s->sc.steps);
    fprintf(out, " bufs");
    for (int i = 0; i < nb; i++) {
      fprintf(out, " ");
      if (s->sc.bufs[i] < 0) fprintf(out, "-");
      else print_buf(p, s->sc.bufs[i]);
    }
    for (int i = 0; i < sc->body->nout; i++) {
      fprintf(out, " n%d=", i);
      print_lx(p, s->sc.numel[i]);
    }
    fprintf(out, "\n");
    break;
  }
  case LS_CONV: {
    fprintf(out, "conv ");
    print_ref(p, s->cv.y, s->cv.y_off);
    fprintf(out, " = ");
    print_ref(p, s->cv.w, s->cv.w_off);
    fprintf(out, " * ");
    print_ref(p, s->cv.x, s->cv.x_off);
    fprintf(out, " cout=%lld cin=%lld oh=%lld ow=%lld xplane=%lld xrow=%lld lanes=%d tile=%dx%d taps=",
            (long long)s->cv.cout, (long long)s->cv.cin, (long long)s->cv.oh, (long long)s->cv.ow,
            (long long)s->cv.xplane, (long long)s->cv.xrow, s->cv.lanes, s->cv.tile_co, s->cv.tile_vec);
    for (int64_t t = 0; t < s->cv.ntaps; t++) fprintf(out, "%s%lld", t ? "," : "", (long long)s->cv.tap[t]);
    if (s->cv.rows) {
      fprintf(out, " rows=");
      print_lx(p, s->cv.rows);
    }
    if (s->cv.tight) fprintf(out, " tight");
    if (s->cv.parts > 1) fprintf(out, " parts=%d", s->cv.parts);
    if (s->cv.add >= 0) {
      fprintf(out, " plus ");
      print_ref(p, s->cv.add, s->cv.add_off);
      fprintf(out, " ld=");
      print_lx(p, s->cv.add_ld);
    }
    if (s->cv.nbatch > 1)
      fprintf(out, " batch=%lld strides=%lld,%lld,%lld", (long long)s->cv.nbatch, (long long)s->cv.x_bstride,
              (long long)s->cv.w_bstride, (long long)s->cv.y_bstride);
    fprintf(out, "\n");
    break;
  }
  case LS_GEMM: {
    fprintf(out, "sgemm%s%s ", s->g.ta ? " transA" : "", s->g.tb ? " transB" : "");
    print_ref(p, s->g.c, s->g.c_off);
    fprintf(out, " = ");
    print_ref(p, s->g.a, s->g.a_off);
    fprintf(out, " x ");
    print_ref(p, s->g.b, s->g.b_off);
    const char *names[] = {"m", "n", "k", "lda", "ldb", "ldc"};
    Lx *vals[] = {s->g.m, s->g.n, s->g.k, s->g.lda, s->g.ldb, s->g.ldc};
    for (int i = 0; i < 6; i++) {
      fprintf(out, " %s=", names[i]);
      print_lx(p, vals[i]);
    }
    fprintf(out, "\n");
    break;
  }
  }
}

char *loopir_kernel_key(const LEntry *le, const LKernel *k, int *rename, int *nlocal) {
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  if (!f) return NULL;
  for (int i = 0; i < le->nbufs; i++) rename[i] = -1;
  Printer p = {.out = f, .le = le, .rename = rename, .canonical = true, .gen = ++print_generation, .par = k->par, .par_inner = k->par_inner};
  print_ls(&p, k->body, 0);
  fclose(f);
  *nlocal = p.nlocal;
  return buf;
}

void loopir_dump(FILE *out, const Model *m, const LEntry *le) {
  static const char *bk[] = {"arg", "weight", "slot", "const"};
  fprintf(out, "entry %s\n", le->e->name);
  for (int i = 0; i < le->nbufs; i++) {
    const LBuf *b = &le->bufs[i];
    fprintf(out, "  b%d = %s", i, bk[b->k]);
    if (b->k == LB_ARG || b->k == LB_SLOT) fprintf(out, " %d", b->index);
    if (b->k == LB_WEIGHT) fprintf(out, " +%llu", (unsigned long long)b->offset);
    if (b->k == LB_CONST) fprintf(out, " [%lld]", (long long)b->n);
    if (b->dtype == DT_I64) fprintf(out, " i64");
    fprintf(out, "\n");
  }
  for (int k = 0; k < le->nkernels; k++) {
    Printer p = {.out = out, .le = le, .gen = ++print_generation, .par = le->kernels[k].par, .par_inner = le->kernels[k].par_inner};
    fprintf(out, "kernel %s\n", le->kernels[k].name);
    print_ls(&p, le->kernels[k].body, 1);
  }
}
