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

#define GEMM_ROW_BLOCK 512  /* rows per sgemm call: the epilogue runs on a cache-warm tile; fewer rows repack the weights too often */
#define HASH_SIZE 4096

typedef struct Lower {
  Model *m;
  const Entry *e;
  LEntry *le;
  Lx *hash[HASH_SIZE];
  int nvars, naccs;
  /* the kernel being lowered */
  const Kernel *K;
  INode *red;          /* its reduction, if any */
  int red_acc;
  int red_buf;         /* >= 0: the reduction accumulates in this buffer instead */
  INode *gemm;         /* its matmul, if any */
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

static Lx *ibin(Lower *L, int op, Lx *a, Lx *b) {
  if (a->k == LX_I && b->k == LX_I && op != '<') {
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
  return lx(L, (Lx){.k = LX_IBIN, .op = op, .a = {a, b}});
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

static Ls *loop(Lower *L, Ls *parent, Lx *lo, Lx *hi, Lx *step, Lx **var) {
  Ls *s = ls_new(L, LS_LOOP);
  s->var = L->nvars++;
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

static Lx *reshape_value(Lower *L, INode *n, Lx *const *idx) {
  INode *in = n->in[0];
  Lx *r[MAX_RANK];
  if (!unit_map(&n->shape, idx, &in->shape, r, lx_i(L, 0))) {
    Lx *lin = linear(L, &n->shape, idx);
    for (int i = in->shape.rank - 1; i >= 0; i--) {
      Lx *d = lx_dim(L, in->shape.d[i]);
      r[i] = i ? ibin(L, '%', lin, d) : lin;
      lin = ibin(L, '/', lin, d);
    }
  }
  return value(L, in, r);
}

static Lx *move_value(Lower *L, INode *n, Lx *const *idx) {
  INode *in = n->in[0];
  Lx *r[MAX_RANK];
  switch (n->op) {
  case OP_RESHAPE: return reshape_value(L, n, idx);
  case OP_PERMUTE:
    for (int k = 0; k < n->shape.rank; k++) r[n->i[k]] = idx[k];
    return value(L, in, r);
  case OP_SLICE:
    memcpy(r, idx, n->shape.rank * sizeof *r);
    r[n->i[0]] = ibin(L, '+', lx_i(L, n->i[1]), ibin(L, '*', idx[n->i[0]], lx_i(L, n->i[2])));
    return value(L, in, r);
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
  default: unreachable("not a movement op");
  }
}

static Lx *value(Lower *L, INode *n, Lx *const *idx) {
  Lx *v = memo_get(L, n, idx);
  if (v) return v;
  if (n == L->red && L->red_buf >= 0)
    return memo_put(L, n, idx, lx(L, (Lx){.k = LX_LOAD, .buf = L->red_buf, .a = {linear(L, &n->shape, idx)}}));
  if (n == L->red) return memo_put(L, n, idx, lx(L, (Lx){.k = LX_ACC, .acc = L->red_acc}));
  if (n == L->gemm)
    return memo_put(L, n, idx, lx(L, (Lx){.k = LX_LOAD, .buf = L->gemm_cbuf, .a = {linear(L, &n->shape, idx)}}));
  if (n->op == OP_CONST && !n->data) return memo_put(L, n, idx, lx_f(L, n->f[0]));
  if (n->op == OP_DIMVAL)
    return memo_put(L, n, idx, lx(L, (Lx){.k = LX_ITOF, .a = {lx_dim(L, (Dim){n->i[0], n->axes})}}));
  bool is_out = false;
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

/* Loops over every axis of `s` in the listed order; returns the innermost block. */
static Ls *loop_nest(Lower *L, Ls *parent, const Shape *s, const int *order, int n, Lx **vars) {
  for (int i = 0; i < n; i++) {
    int ax = order[i];
    parent = loop(L, parent, lx_i(L, 0), lx_dim(L, s->d[ax]), lx_i(L, 1), &vars[ax]);
  }
  return parent;
}

static void store_out(Lower *L, Ls *blk, INode *out, Lx *const *idx) {
  int buf = buffer_of(L, out);
  store(L, blk, buf, linear(L, &out->shape, idx), value(L, out, idx));
}

static void lower_elementwise(Lower *L, Ls *body) {
  const Kernel *K = L->K;
  int order[MAX_RANK];
  Lx *vars[MAX_RANK];
  for (int i = 0; i < K->domain.rank; i++) order[i] = i;
  Ls *blk = loop_nest(L, body, &K->domain, order, K->domain.rank, vars);
  for (int o = 0; o < K->nouts; o++) store_out(L, blk, K->outs[o], vars);
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
  Lx *ridx[MAX_RANK];
  Shape kept = *D;
  Lx *kidx[MAX_RANK];
  for (int i = 0; i < D->rank; i++) {
    bool r = K->raxes & (1u << i);
    kept.d[i] = r ? dim_const(1) : D->d[i];
    kidx[i] = r ? zero : vars[i];
  }
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

static void lower_reduce(Lower *L, Ls *body) {
  const Kernel *K = L->K;
  L->red = find_reduction(K);
  if (K->domain.rank > 1 && !(K->raxes & (1u << (K->domain.rank - 1)))) {
    lower_column_reduce(L, body);
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
  /* epilogue at the kept index */
  Shape kept = *D;
  Lx *kidx[MAX_RANK], *zero = lx_i(L, 0);
  for (int i = 0; i < D->rank; i++) {
    bool r = K->raxes & (1u << i);
    kept.d[i] = r ? dim_const(1) : D->d[i];
    kidx[i] = r ? zero : vars[i];
  }
  for (int o = 0; o < K->nouts; o++) {
    INode *out = K->outs[o];
    if (full_domain_out(K, out, red)) continue;
    Lx *oidx[MAX_RANK];
    if (!unit_map(&kept, kidx, &out->shape, oidx, zero)) unreachable("epilogue shape");
    store_out(L, outer, out, oidx);
  }
}

static void lower_gemm(Lower *L, Ls *body) {
  const Kernel *K = L->K;
  INode *g = K->gemm, *root = K->outs[0], *A = g->in[0], *B = g->in[1];
  const Shape *s = &g->shape;
  int r = s->rank, ta = (int)g->i[0], tb = (int)g->i[1];
  Dim M = s->d[r - 2], N = s->d[r - 1], Kd = A->shape.d[A->shape.rank - 1 - ta];
  L->gemm = root == g ? NULL : g;
  L->gemm_cbuf = buffer_of(L, root);
  Lx *m = lx_dim(L, M), *n = lx_dim(L, N), *k = lx_dim(L, Kd);
  Lx *lda = ta ? m : k, *ldb = tb ? k : n;
  Lx *a_stride = A->shape.rank > 2 ? ibin(L, '*', m, k) : lx_i(L, 0);
  Lx *b_stride = B->shape.rank > 2 ? ibin(L, '*', k, n) : lx_i(L, 0);
  Lx *batch = lx_i(L, 1);
  for (int i = 0; i < r - 2; i++) batch = ibin(L, '*', batch, lx_dim(L, s->d[i]));
  bool blocked = r == 2 && shape_eq(&root->shape, s);
  Lx *bv, *r0, *zero = lx_i(L, 0);
  Ls *bl = loop(L, body, zero, batch, lx_i(L, 1), &bv);
  Ls *rl = blocked ? loop(L, bl, zero, m, lx_i(L, GEMM_ROW_BLOCK), &r0) : bl;
  if (!blocked) r0 = zero;
  Lx *rows = blocked ? ibin(L, 'm', lx_i(L, GEMM_ROW_BLOCK), ibin(L, '-', m, r0)) : m;
  Ls *gs = ls_new(L, LS_GEMM);
  gs->g.a = buffer_of(L, A);
  gs->g.b = buffer_of(L, B);
  gs->g.c = L->gemm_cbuf;
  if (gs->g.a < 0 || gs->g.b < 0) unreachable("matmul operand not in memory");
  gs->g.a_off = ibin(L, '+', ibin(L, '*', bv, a_stride), ibin(L, '*', r0, ta ? lx_i(L, 1) : k));
  gs->g.b_off = ibin(L, '*', bv, b_stride);
  gs->g.c_off = ibin(L, '+', ibin(L, '*', bv, ibin(L, '*', m, n)), ibin(L, '*', r0, n));
  gs->g.m = rows;
  gs->g.n = n;
  gs->g.k = k;
  gs->g.lda = lda;
  gs->g.ldb = ldb;
  gs->g.ldc = n;
  gs->g.ta = ta;
  gs->g.tb = tb;
  ls_add(L, rl, gs);
  if (root == g) return;
  Lx *vars[MAX_RANK];
  if (blocked) {
    Ls *ri = loop(L, rl, r0, ibin(L, '+', r0, rows), lx_i(L, 1), &vars[0]);
    Ls *ci = loop(L, ri, zero, n, lx_i(L, 1), &vars[1]);
    store_out(L, ci, root, vars);
  } else {
    int order[MAX_RANK];
    for (int i = 0; i < root->shape.rank; i++) order[i] = i;
    Ls *blk = loop_nest(L, body, &root->shape, order, root->shape.rank, vars);
    store_out(L, blk, root, vars);
  }
}

static const char *kind_names[] = {"elementwise", "reduce", "gemm"};

static void lower_kernel(Lower *L, const Kernel *K, int index, LKernel *out) {
  L->K = K;
  L->red = L->gemm = NULL;
  L->red_buf = -1;
  L->nvars = L->naccs = 0;
  L->nmemo = 0;
  Ls *body = ls_new(L, LS_BLOCK);
  switch (K->kind) {
  case KK_ELEM: lower_elementwise(L, body); break;
  case KK_REDUCE: lower_reduce(L, body); break;
  case KK_GEMM: lower_gemm(L, body); break;
  }
  char name[160];
  snprintf(name, sizeof name, "%s.k%d.%s", L->e->name, index, kind_names[K->kind]);
  out->name = arena_strdup(L->m->arena, name);
  out->body = body;
  out->nvars = L->nvars;
  out->naccs = L->naccs;
}

LEntry *lower_model(Model *m) {
  LEntry *les = arena_alloc(m->arena, (m->nentries + 1) * sizeof *les);
  Lower *L = calloc(1, sizeof *L);
  if (!L) return NULL;
  for (int i = 0; i < m->nentries; i++) {
    memset(L->hash, 0, sizeof L->hash);
    L->m = m;
    L->e = &m->entries[i];
    L->le = &les[i];
    les[i].e = L->e;
    les[i].nkernels = L->e->nkernels;
    les[i].kernels = arena_alloc(m->arena, (L->e->nkernels + 1) * sizeof *les[i].kernels);
    for (int k = 0; k < L->e->nkernels; k++) lower_kernel(L, &L->e->kernels[k], k, &les[i].kernels[k]);
  }
  free(L);
  return les;
}

/* ---- text form: nnc dump --stage=loops, and the canonical key codegen uses to emit
 * structurally equal kernels once (buffers renumbered by first use, exact constants) ---- */

typedef struct Printer {
  FILE *out;
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
  bool compound = x->k == LX_IBIN || x->k == LX_LOAD || x->k == LX_OP || x->k == LX_SELECT || x->k == LX_ITOF;
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
  }
}

static _Thread_local int print_generation; /* per compiling thread */

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
    fprintf(out, "for i%d in ", s->var);
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
    print_buf(p, s->buf);
    fprintf(out, "[");
    print_lx(p, s->idx);
    fprintf(out, "] = ");
    print_lx(p, s->val);
    fprintf(out, "\n");
    break;
  case LS_ACC_INIT: fprintf(out, "acc%d = %s\n", s->acc, s->rop == OP_SUM ? "0" : "-inf"); break;
  case LS_ACC_UPDATE:
    fprintf(out, "acc%d = %s(acc%d, ", s->acc, s->rop == OP_SUM ? "add" : "max", s->acc);
    print_lx(p, s->val);
    fprintf(out, ")\n");
    break;
  case LS_GEMM: {
    fprintf(out, "sgemm%s%s ", s->g.ta ? " transA" : "", s->g.tb ? " transB" : "");
    print_buf(p, s->g.c);
    fprintf(out, "[");
    print_lx(p, s->g.c_off);
    fprintf(out, "] = ");
    print_buf(p, s->g.a);
    fprintf(out, "[");
    print_lx(p, s->g.a_off);
    fprintf(out, "] x ");
    print_buf(p, s->g.b);
    fprintf(out, "[");
    print_lx(p, s->g.b_off);
    fprintf(out, "]");
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
  Printer p = {.out = f, .le = le, .rename = rename, .canonical = true, .gen = ++print_generation};
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
    Printer p = {.out = out, .le = le, .gen = ++print_generation};
    fprintf(out, "kernel %s\n", le->kernels[k].name);
    print_ls(&p, le->kernels[k].body, 1);
  }
}
