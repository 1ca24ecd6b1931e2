/* lower.c — fused kernels → loop nests (loopir.h): the driver, buffers, statements, and the
 * elementwise and scan kernels.
 *
 * The value of a tensor at an index is built by walking the kernel's inlined tree (value.c)
 * over hash-consed expressions (expr.c).  Per kernel kind:
 *   elementwise kernel:  for idx in domain { out[idx] = value(out, idx) }          (here)
 *   reduction kernel:    for kept { acc = init; for reduced { acc op= value(in, idx);
 *                        full-domain outputs stored here }; epilogue outputs at kept }
 *                                                                            (reduce.c)
 *   GEMM kernel:         for row blocks { sgemm into the output; epilogue over the block }
 *                        (gemm.c; convolutions conv.c and winograd.c)
 *   opaque kernel:       roi_align.c, col2im.c, attention.c
 *   scan kernel:         one LS_SCAN statement (here)
 * All state of a lowering lives in its Lower (lower_internal.h), so that compilations on
 * different threads do not share any. */
#include <stdlib.h>
#include <string.h>
#include "lower_internal.h"

/* ---- buffers ---- */

int add_buf(Lower *L, LBuf b) {
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

/* The caller's buffer of output o, in its declared element type (stores convert). */
static int output_buf(Lower *L, int o) {
  return add_buf(L, (LBuf){.k = LB_ARG, .dtype = L->e->out_dtypes[o], .index = L->e->nin + o});
}

/* The buffer holding node n, or -1 when n is not in memory. */
int buffer_of(Lower *L, INode *n) {
  n = base_buffer(n);
  bool computed_leaf = (n->op == OP_CONST && !n->data) || n->op == OP_DIMVAL || n->op == OP_IOTA;
  if (computed_leaf && n->kernel >= 0) /* materialized for a reader that needs memory */
    return n->out_index >= 0 ? output_buf(L, n->out_index)
                             : add_buf(L, (LBuf){.k = LB_SLOT, .index = n->slot});
  switch (n->op) {
  case OP_INPUT: return add_buf(L, (LBuf){.k = LB_ARG, .dtype = n->dtype, .index = n->index});
  case OP_PARAM: {
    const Param *p = &L->m->params[n->index];
    return add_buf(L, (LBuf){.k = LB_WEIGHT, .dtype = p->dtype, .index = -1, .offset = p->offset});
  }
  case OP_CONST:
    if (!n->data) return -1;
    return add_buf(L, (LBuf){.k = LB_CONST, .index = -1, .data = n->data, .n = shape_static_numel(&n->shape)});
  default:
    break;
  }
  if (n->kernel < 0) return -1;
  if (n->out_index >= 0 && L->e->out_params) { /* the init entry writes derived parameters */
    const Param *p = &L->m->params[L->e->out_params[n->out_index]];
    return add_buf(L, (LBuf){.k = LB_WEIGHT, .dtype = DT_F32, .index = -1, .offset = p->offset});
  }
  if (n->out_index >= 0) return output_buf(L, n->out_index);
  return add_buf(L, (LBuf){.k = LB_SLOT, .index = n->slot});
}

/* ---- statements ---- */

Ls *ls_new(Lower *L, LsKind k) {
  Ls *s = arena_alloc(L->m->arena, sizeof *s);
  s->k = k;
  return s;
}

void ls_add(Lower *L, Ls *parent, Ls *child) {
  if (parent->nbody == parent->cap) {
    parent->cap = parent->cap ? 2 * parent->cap : 4;
    Ls **v = arena_alloc(L->m->arena, parent->cap * sizeof *v);
    if (parent->nbody) memcpy(v, parent->body, parent->nbody * sizeof *v);
    parent->body = v;
  }
  parent->body[parent->nbody++] = child;
}

/* A new loop variable whose values lie in [lo, hi] (known: bounds for index simplification). */
int new_var(Lower *L, int64_t lo, int64_t hi, bool known) {
  int v = L->nvars++;
  if (v >= L->caprange) { /* in the arena (out of memory jumps, leaking nothing); the old
                            * array stays: 2x at most */
    L->caprange = 2 * v + 16;
    struct VarRange *r = arena_alloc(L->m->arena, L->caprange * sizeof *r);
    if (v) memcpy(r, L->range, (size_t)v * sizeof *r);
    L->range = r;
  }
  L->range[v] = (struct VarRange){lo, hi, known};
  return v;
}

Ls *loop(Lower *L, Ls *parent, Lx *lo, Lx *hi, Lx *step, Lx **var) {
  Ls *s = ls_new(L, LS_LOOP);
  /* the variable's bounds, for index simplification: lo..hi-1 when lo is a non-negative
   * constant and the step positive */
  s->var = new_var(L, lo->k == LX_I ? lo->c : 0, hi->k == LX_I ? hi->c - 1 : INT64_MAX,
                   lo->k == LX_I && lo->c >= 0 && step->k == LX_I && step->c > 0);
  if (hi->k != LX_I && L->range[s->var].known) L->range[s->var].below = hi;
  s->lo = lo;
  s->hi = hi;
  s->step = step;
  *var = lx_var(L, s->var);
  ls_add(L, parent, s);
  return s;
}

void store(Lower *L, Ls *parent, int buf, Lx *idx, Lx *val) {
  Ls *s = ls_new(L, LS_STORE);
  s->buf = buf;
  s->idx = idx;
  s->val = val;
  ls_add(L, parent, s);
}

void eval(Lower *L, Ls *parent, Lx *v) {
  Ls *s = ls_new(L, LS_EVAL);
  s->val = v;
  ls_add(L, parent, s);
}

/* ---- kernels ---- */

/* Loops over every axis of `s` in the listed order; returns the innermost block.  A short
 * static innermost loop is a vector row candidate (codegen decides, from its body). */
Ls *loop_nest(Lower *L, Ls *parent, const Shape *s, const int *order, int n, Lx **vars) {
  for (int i = 0; i < n; i++) {
    int ax = order[i];
    parent = loop(L, parent, lx_i(L, 0), lx_dim(L, s->d[ax]), lx_i(L, 1), &vars[ax]);
  }
  if (n > 0 && !s->d[order[n - 1]].syms && s->d[order[n - 1]].k <= SHORT_ROW) parent->vector_row = true;
  return parent;
}

void store_out(Lower *L, Ls *blk, INode *out, Lx *const *idx) {
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
 * last two axes become one loop over the plane when the rows are short (7x7, 28x28 images)
 * or of a run-time length (symbolic H, W: as short as 7 too), so that the inner loop is long
 * enough to vectorize; a short row loop would be unrolled and the loop around it vectorized
 * with gathers, and a run-time one of 28 never reaches the vector loop LLVM unrolls to 32
 * floats.  The plane index is (f / W, f % W), which linear() folds back to f; when some
 * value still needs the division (an operand broadcast along rows or columns alone) the
 * plain loop nest is used instead. */
void store_planes(Lower *L, Ls *parent, const Shape *s, int from, Lx **vars, INode *const *outs, int nouts) {
  int r = s->rank, order[MAX_RANK];
  for (int i = 0; i < MAX_RANK; i++) order[i] = i;
  bool symbolic_plane = r - from >= 2 && (s->d[r - 1].syms || s->d[r - 2].syms);
  if (r - from >= 2 && (symbolic_plane || s->d[r - 1].k < SHORT_ROW)) {
    Ls *blk = ls_new(L, LS_BLOCK), *in = blk;
    for (int ax = from; ax < r - 2; ax++) { /* the planes: LLVM would unroll them around the
                                                vectorized plane loop, only adding code */
      in = loop(L, in, lx_i(L, 0), lx_dim(L, s->d[ax]), lx_i(L, 1), &vars[ax]);
      in->rolled = true;
    }
    Lx *f, *w = lx_dim(L, s->d[r - 1]);
    in = loop(L, in, lx_i(L, 0), ibin(L, '*', lx_dim(L, s->d[r - 2]), w), lx_i(L, 1), &f);
    vars[r - 2] = ibin(L, '/', f, w);
    vars[r - 1] = ibin(L, '%', f, w);
    for (int o = 0; o < nouts; o++) store_out(L, in, outs[o], vars);
    bool split = false;
    unsigned gen = ++L->walk_gen;
    for (int i = 0; i < in->nbody && !split; i++) split = splits_var(in->body[i]->idx, f, gen) || splits_var(in->body[i]->val, f, gen);
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

static void lower_opaque(Lower *L, Ls *body) {
  switch (L->K->outs[0]->op) {
  case OP_ROI_ALIGN: lower_roi_align(L, body); break;
  case OP_COL2IM: lower_col2im(L, body); break;
  case OP_ATTENTION: lower_attention(L, body); break;
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
  for (int i = 0; i < b->nout; i++) s->sc.numel[i] = lx_dim(L, shape_numel(L->m, &b->out_shapes[i]));
  s->sc.steps = lx_dim(L, sc->bound);
  ls_add(L, body, s);
}

static const char *const kind_names[] = {"elementwise", "reduce", "gemm", "opaque", "scan"};

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
  Lower *L = arena_alloc(m->arena, sizeof *L);
  for (int i = 0; i < n; i++) {
    if (L->hash) memset(L->hash, 0, L->hash_cap * sizeof *L->hash); /* expressions are per entry */
    L->hash_count = 0;
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
  return les;
}
