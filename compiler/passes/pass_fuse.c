/* pass_fuse.c — fusion of an entry's ops into kernels, by op kind (as TVM does).
 *
 * 1. Materialize: a node gets its own buffer when it is a GEMM or a reduction, an entry
 *    output, an input of a GEMM, or used more than once (unless it is a pure view of
 *    buffers).  Every other elementwise or movement op is inlined into its consumers.
 * 2. GEMM epilogues: the chain of single-use elementwise ops after a matmul whose other
 *    operands are already in memory (bias, scale, residual) runs on the GEMM's output
 *    tile; the matmul writes straight into the chain's result.
 * 3. Reduction epilogues: elementwise ops on a reduction's result (logdet + sum(...),
 *    1 / sum(...)) run right after its inner loop.
 * 4. Horizontal fusion: an elementwise kernel over the same domain as a reduction kernel,
 *    reading the same tensors and independent of it, joins it — e.g. Real NVP's coupling
 *    step computes y and the log-det row sum in one pass over s and t.
 * 5. Kernels are ordered topologically; a reshape of a tensor in memory is an alias. */
#include <stdlib.h>
#include <string.h>
#include "convplan.h"
#include "passes.h"

#define MAX_INLINE_TREE 48 /* deeper elementwise chains are materialized in pieces */
/* Nodes of an inlined tree counted once per path to them: a node shared inside it (cat([y, y])
 * of cat([z, z]) ...) is recomputed for each path, so a chain of them doubles at each level */
#define MAX_INLINE_PATHS 256

typedef struct Fuse {
  Model *m;
  Entry *e;
  INode ***users;   /* [node id] -> users */
  int *nusers;
  bool *mat;        /* has its own buffer (kernel root or alias) */
  bool *alias;      /* reshape sharing its input's buffer */
  bool *view;       /* movement ops over leaves only */
  bool *prologue;   /* computed inside its GEMM's batch loop (im2col columns) */
  int *depth;       /* height of the inlined expression tree below the node */
  int64_t *paths;   /* its nodes counted once per path (MAX_INLINE_PATHS) */
  INode **gemm_of;  /* [root id] matmul fused into this root's kernel */
  INode **red_of;   /* [root id] reduction fused into this root's kernel */
} Fuse;

static bool is_leaf(const INode *n) { return op_info[n->op].kind == FK_LEAF; }
/* A leaf that no buffer holds: a fill constant, a dim's value, an index (computed inline). */
static bool computed_leaf(const INode *n) {
  return (n->op == OP_CONST && !n->data) || n->op == OP_DIMVAL || n->op == OP_IOTA;
}
static bool in_memory(const Fuse *F, const INode *n) { return (is_leaf(n) && !computed_leaf(n)) || F->mat[n->id]; }

static void check_owner(const Fuse *F, const INode *n, const INode *u) {
  if (n->owner == F->e && n->id >= 0 && n->id < F->e->nnodes) return;
  fprintf(stderr, "nnc: %s %%%d (%s, of %s) used by %s %%%d in %s\n", op_info[n->op].name, n->id,
          n->owner ? n->owner->name : "?", F->e->name, op_info[u->op].name, u->id, F->e->name);
  unreachable("a node uses a node of another entry");
}

/* The distinct users of every node, in node order (x * x has one user): counted first, then
 * filled, so that a node used a hundred thousand times costs one array of that size. */
static void find_users(Fuse *F) {
  const Entry *e = F->e;
  for (int pass = 0; pass < 2; pass++) {
    for (int i = 0; i < e->nnodes; i++) {
      INode *u = e->nodes[i];
      for (int k = 0; k < 3; k++) {
        INode *n = u->in[k];
        if (!n || (k && n == u->in[k - 1]) || (k == 2 && n == u->in[0])) continue;
        check_owner(F, n, u);
        if (pass == 0) F->nusers[n->id]++;
        else F->users[n->id][F->nusers[n->id]++] = u;
      }
    }
    if (pass == 1) break;
    for (int i = 0; i < e->nnodes; i++) {
      F->users[i] = arena_alloc(F->m->arena, (F->nusers[i] + 1) * sizeof *F->users[i]);
      F->nusers[i] = 0;
    }
  }
}

/* Outputs are written by kernels into the caller's buffers: an output that is a leaf, or
 * the same node as an earlier output, gets a copy node of its own. */
static void prepare_outputs(Fuse *F) {
  Entry *e = F->e;
  for (int i = 0; i < e->nout; i++) {
    INode *o = e->outputs[i];
    bool dup = o->out_index >= 0;
    if (is_leaf(o) || dup) {
      INode *c = ir_new(F->m, e, OP_RESHAPE, o->dtype, &o->shape, o->loc);
      c->in[0] = o;
      o = e->outputs[i] = c;
    }
    o->out_index = i;
  }
}

/* A movement op all of whose inputs are (views of) leaves: free to recompute.  Inputs come
 * first in topological order, so one forward sweep decides it for every node. */
static void find_views(Fuse *F) {
  for (int i = 0; i < F->e->nnodes; i++) {
    INode *n = F->e->nodes[i];
    bool v = is_leaf(n) || op_info[n->op].kind == FK_MOVE;
    for (int k = 0; k < 3 && v && !is_leaf(n); k++)
      if (n->in[k] && !F->view[n->in[k]->id]) v = false;
    F->view[i] = v;
  }
}

/* Cheap to recompute in every consumer: a few arithmetic or movement ops over tensors that
 * are in memory (x / T feeding both a max and a subtraction, x - max feeding exp and log). */
static int cheap_cost(const Fuse *F, const INode *n, int depth) {
  if (is_leaf(n) || F->mat[n->id]) return 0;
  bool ok = op_info[n->op].kind == FK_MOVE || (op_info[n->op].traits & OPT_CHEAP);
  if (!ok || depth > 3) return 100;
  int cost = 1;
  for (int k = 0; k < 3; k++)
    if (n->in[k]) cost += cheap_cost(F, n->in[k], depth + 1);
  return cost;
}

static void decide_materialized(Fuse *F) {
  Entry *e = F->e;
  for (int i = 0; i < e->nnodes; i++) {
    INode *n = e->nodes[i];
    FusionKind k = op_info[n->op].kind;
    bool gemm_input = false; /* matmuls and opaque ops read their operands from memory */
    for (int u = 0; u < F->nusers[i]; u++) {
      const INode *user = F->users[i][u];
      FusionKind uk = op_info[user->op].kind;
      gemm_input |= uk == FK_GEMM || uk == FK_OPAQUE || user->op == OP_PACK;
      /* a window or a bilinear resize reads each input element several times: compute
       * anything costlier than a copy once, into memory, rather than once per read */
      bool expands = (user->op == OP_WINDOW && user->shape.d[user->shape.rank - 1].k * user->shape.d[user->shape.rank - 2].k > 1) ||
                     (user->op == OP_RESIZE && user->i[0] != 0);
      gemm_input |= expands && k == FK_ELEM;
    }
    if (k == FK_LEAF) F->mat[i] = computed_leaf(n) && gemm_input; /* zeros(B, H) as a scan's initial state */
    else if (n->op == OP_PACK) F->mat[i] = false;
    else if (n->op == OP_SCAN || n->op == OP_SCAN_OUT) F->mat[i] = true; /* the loop and its results */
    else if (k == FK_GEMM || k == FK_REDUCE || k == FK_OPAQUE || n->out_index >= 0) F->mat[i] = true;
    else if (gemm_input) F->mat[i] = true;
    else F->mat[i] = F->nusers[i] + (n->out_index >= 0) > 1 && !F->view[i] && cheap_cost(F, n, 0) > 3;
    /* bound the inlined trees, so lowering and codegen recurse only so deep */
    F->depth[i] = 0;
    F->paths[i] = 1;
    if (!F->mat[i] && !is_leaf(n))
      for (int k = 0; k < 3; k++) {
        if (!n->in[k]) continue;
        int d = n->in[k]->id;
        if (F->depth[d] + 1 > F->depth[i]) F->depth[i] = F->depth[d] + 1;
        if (!F->mat[d]) F->paths[i] += F->paths[d];
      }
    if (F->depth[i] > MAX_INLINE_TREE || F->paths[i] > MAX_INLINE_PATHS) {
      F->mat[i] = true;
      F->depth[i] = 0;
      F->paths[i] = 1;
    }
  }
}

/* A reshape that only inserts or removes axes of size 1 keeps every element's position
 * relative to the others, so index maps through it are per-axis. */
static bool reshape_is_unit(const Shape *a, const Shape *b) {
  int i = 0, j = 0;
  for (;;) {
    while (i < a->rank && dim_is(a->d[i], 1)) i++;
    while (j < b->rank && dim_is(b->d[j], 1)) j++;
    if (i == a->rank || j == b->rank) return i == a->rank && j == b->rank;
    if (!dim_eq(a->d[i++], b->d[j++])) return false;
  }
}

/* A reduction epilogue stops before an op that combines it with another reduction (logdet
 * + sum_k + sum_k+1 ...): each sum then folds into its own running total in its own kernel. */
static bool other_operand_is_reduction(const INode *u, const INode *from) {
  for (int k = 0; k < 3; k++)
    if (u->in[k] && u->in[k] != from && op_info[u->in[k]->op].kind == FK_REDUCE) return true;
  return false;
}

/* Are u's operands other than `from` in memory, or views of it (a bias reshaped to
 * [C, 1, 1] is index arithmetic on the parameter)? */
static bool operands_in_memory(const Fuse *F, const INode *u, const INode *from) {
  for (int k = 0; k < 3; k++)
    if (u->in[k] && u->in[k] != from && !in_memory(F, u->in[k]) && !F->view[u->in[k]->id]) return false;
  return true;
}

/* Follow the single-use chain of elementwise ops from `head` (a matmul or a reduction);
 * returns the node whose kernel will compute the head, making it materialized if needed. */
static INode *epilogue_chain(Fuse *F, INode *head, bool gemm) {
  INode *cur = head;
  if (head->out_index >= 0) return head; /* needed in its own (output) buffer */
  for (;;) {
    if (cur != head && F->mat[cur->id]) return cur;
    if (F->nusers[cur->id] != 1) break;
    INode *u = F->users[cur->id][0];
    bool ok;
    if (u->dtype != DT_F32 || (u->out_index >= 0 && F->e->out_dtypes[u->out_index] != DT_F32))
      ok = false; /* stored as int64 (an i64 output): the GEMM's or reduction's f32 stays apart */
    else if (u->op == OP_RESHAPE)
      ok = gemm || reshape_is_unit(&cur->shape, &u->shape);
    else
      ok = op_info[u->op].kind == FK_ELEM && shape_eq(&u->shape, &cur->shape) &&
           (gemm ? operands_in_memory(F, u, cur) : !other_operand_is_reduction(u, cur));
    if (!ok) break;
    cur = u;
  }
  F->mat[cur->id] = true;
  return cur;
}

static void fuse_epilogues(Fuse *F) {
  Entry *e = F->e;
  for (int i = 0; i < e->nnodes; i++) {
    INode *g = e->nodes[i];
    if (op_info[g->op].kind != FK_GEMM) continue;
    INode *root = epilogue_chain(F, g, true);
    if (root == g) continue;
    F->mat[g->id] = false;
    F->gemm_of[root->id] = g;
  }
  for (int i = 0; i < e->nnodes; i++) {
    INode *r = e->nodes[i];
    if (op_info[r->op].kind != FK_REDUCE || r->out_index >= 0) continue;
    INode *root = epilogue_chain(F, r, false);
    if (root == r) continue;
    if (F->gemm_of[root->id] || F->red_of[root->id])
      continue; /* one anchor per kernel; the root stays materialized on its own */
    F->mat[r->id] = false;
    F->red_of[root->id] = r;
  }
}

/* Columns of a symbolic size (a convolution over x: f32[N, C, H, W]) only as a direct
 * convolution's padded copy, whose scratch bound needs derived symbols (convplan.h); the
 * im2col columns of one image otherwise stay a tensor of their own. */
static bool symbolic_direct_conv(Model *m, const INode *g, const INode *cols) {
  ConvPlan c;
  Dim floats;
  return conv_plan_of(g, cols, &c) && conv_plan_copy_bound(m, &c, g->loc, &floats);
}

/* A batched GEMM's B operand that only it reads (a convolution's im2col columns) is computed
 * per batch item, inside the GEMM's batch loop, into a scratch buffer that stays in cache:
 * [N, G, K, P] columns are never all in memory at once. */
static void find_prologues(Fuse *F) {
  Entry *e = F->e;
  for (int i = 0; i < e->nnodes; i++) {
    INode *g = e->nodes[i];
    if (g->op != OP_MATMUL || g->shape.rank < 3) continue;
    INode *b = g->in[1];
    FusionKind k = op_info[b->op].kind;
    if (!F->mat[b->id] || F->alias[b->id] || F->gemm_of[b->id] || F->red_of[b->id] || F->nusers[b->id] != 1 ||
        b->out_index >= 0 || (k != FK_ELEM && k != FK_MOVE) || b->shape.rank != g->shape.rank || b == g->in[0])
      continue;
    bool same_batch = true;
    for (int a = 0; a < g->shape.rank - 2; a++) same_batch &= dim_eq(b->shape.d[a], g->shape.d[a]);
    const Shape *bs = &b->shape;
    if (!same_batch || bs->d[bs->rank - 2].syms) continue;
    if (bs->d[bs->rank - 1].syms && !symbolic_direct_conv(F->m, g, b)) continue;
    F->prologue[b->id] = true;
  }
}

static void find_aliases(Fuse *F) {
  Entry *e = F->e;
  for (int i = 0; i < e->nnodes; i++) {
    INode *n = e->nodes[i];
    if (n->op == OP_RESHAPE && F->mat[i] && n->out_index < 0 && !F->gemm_of[i] &&
        !F->red_of[i] && in_memory(F, n->in[0]))
      F->alias[i] = true;
  }
}

/* ---- kernel construction ---- */

typedef struct KBuild {
  Kernel k;
  int cap_out, cap_cov;
  INode **reads; int nreads, cap_reads;   /* buffers read */
  int first;                               /* smallest root id, for a stable order */
  bool dead;
} KBuild;

/* Adds x to the set v[n]; false when it was there already. */
static bool push(Arena *a, INode ***v, int *n, int *cap, INode *x) {
  for (int i = 0; i < *n; i++)
    if ((*v)[i] == x) return false;
  if (*n == *cap) {
    *cap = *cap ? 2 * *cap : 8;
    INode **w = arena_alloc(a, *cap * sizeof *w);
    if (*n) memcpy(w, *v, *n * sizeof *w);
    *v = w;
  }
  (*v)[(*n)++] = x;
  return true;
}

/* Walk the inlined tree below `n` (stopping at buffers), recording what the kernel covers
 * and reads. */
static void cover(Fuse *F, KBuild *kb, INode *n, bool top) {
  Arena *a = F->m->arena;
  if (!top && (in_memory(F, n) || F->alias[n->id])) {
    push(a, &kb->reads, &kb->nreads, &kb->cap_reads, n);
    return;
  }
  if (is_leaf(n)) return; /* fills and dim values are computed in place */
  /* a node reached again (x + x, a chain of cat([y, y])) was walked already: walking it once
   * per path took time exponential in the depth of such a chain */
  if (!push(a, &kb->k.covers, &kb->k.ncovers, &kb->cap_cov, n)) return;
  for (int k = 0; k < 3; k++)
    if (n->in[k]) cover(F, kb, n->in[k], false);
}

static void build_kernel(Fuse *F, KBuild *kb, INode *root) {
  Arena *a = F->m->arena;
  memset(kb, 0, sizeof *kb);
  kb->first = root->id;
  INode *g = F->gemm_of[root->id], *r = F->red_of[root->id];
  if (op_info[root->op].kind == FK_GEMM) g = root;
  if (op_info[root->op].kind == FK_REDUCE) r = root;
  if (g) {
    kb->k.kind = KK_GEMM;
    kb->k.gemm = g;
    kb->k.domain = g->shape;
    if (F->prologue[g->in[1]->id]) { /* computed here: its inputs are this kernel's reads */
      kb->k.prologue = g->in[1];
      cover(F, kb, g->in[1], true);
    }
  } else if (root->op == OP_SCAN) { /* one kernel runs the loop; it writes every SCAN_OUT */
    kb->k.kind = KK_SCAN;
    kb->k.domain = root->shape;
    for (int u = 0; u < F->nusers[root->id]; u++)
      push(a, &kb->k.outs, &kb->k.nouts, &kb->cap_out, F->users[root->id][u]);
    push(a, &kb->k.covers, &kb->k.ncovers, &kb->cap_cov, root);
    for (INode *p = root->in[0]; p; p = p->in[1]) {
      push(a, &kb->k.covers, &kb->k.ncovers, &kb->cap_cov, p);
      push(a, &kb->reads, &kb->nreads, &kb->cap_reads, p->in[0]);
    }
    return;
  } else if (op_info[root->op].kind == FK_OPAQUE) {
    kb->k.kind = KK_OPAQUE;
    kb->k.domain = root->shape;
  } else if (r) {
    kb->k.kind = KK_REDUCE;
    kb->k.domain = r->in[0]->shape;
    kb->k.raxes = r->axes;
  } else {
    kb->k.kind = KK_ELEM;
    kb->k.domain = root->shape;
  }
  if (kb->k.kind == KK_SCAN) return;
  push(a, &kb->k.outs, &kb->k.nouts, &kb->cap_out, root);
  cover(F, kb, root, true);
}

/* Does kernel `to` depend (transitively) on kernel `from`?  A depth-first walk up the kernels
 * writing what `to` reads (producer: node id -> live kernel + 1), marking those it visits
 * with `stamp` in seen[]; stack holds nk kernels.  Linear in the kernels and their reads. */
static bool depends(const KBuild *kbs, const int *producer, int to, int from, int *seen, int stamp,
                    int *stack) {
  int n = 0;
  stack[n++] = to;
  seen[to] = stamp;
  while (n > 0) {
    int k = stack[--n];
    if (k == from) return true;
    for (int i = 0; i < kbs[k].nreads; i++) {
      int j = producer[kbs[k].reads[i]->id] - 1;
      if (j >= 0 && seen[j] != stamp) {
        seen[j] = stamp;
        stack[n++] = j;
      }
    }
  }
  return false;
}

static bool share_input(const KBuild *a, const KBuild *b) {
  for (int i = 0; i < a->nreads; i++)
    for (int j = 0; j < b->nreads; j++)
      if (a->reads[i] == b->reads[j] && !is_leaf(a->reads[i])) return true;
  return false;
}

static void merge_horizontal(Fuse *F, KBuild *kbs, int nk) {
  Arena *a = F->m->arena;
  int *producer = arena_alloc(a, (F->e->nnodes + 1) * sizeof *producer); /* node id -> kernel + 1 */
  int *seen = arena_alloc(a, (nk + 1) * sizeof *seen), *stack = arena_alloc(a, (nk + 1) * sizeof *stack);
  int stamp = 0; /* arena memory starts zeroed */
  for (int j = 0; j < nk; j++)
    for (int k = 0; k < kbs[j].k.nouts; k++) producer[kbs[j].k.outs[k]->id] = j + 1;
  for (int i = 0; i < nk; i++) {
    if (kbs[i].dead || kbs[i].k.kind != KK_REDUCE) continue;
    for (int j = 0; j < nk; j++) {
      KBuild *x = &kbs[i], *y = &kbs[j];
      if (i == j || y->dead || y->k.kind != KK_ELEM || !shape_eq(&x->k.domain, &y->k.domain)) continue;
      if (!share_input(x, y)) continue;
      if (depends(kbs, producer, i, j, seen, ++stamp, stack)) continue;
      if (depends(kbs, producer, j, i, seen, ++stamp, stack)) continue;
      for (int k = 0; k < y->k.nouts; k++) {
        push(a, &x->k.outs, &x->k.nouts, &x->cap_out, y->k.outs[k]);
        producer[y->k.outs[k]->id] = i + 1;
      }
      for (int k = 0; k < y->k.ncovers; k++) push(a, &x->k.covers, &x->k.ncovers, &x->cap_cov, y->k.covers[k]);
      for (int k = 0; k < y->nreads; k++) push(a, &x->reads, &x->nreads, &x->cap_reads, y->reads[k]);
      if (y->first < x->first) x->first = y->first;
      y->dead = true;
    }
  }
}

/* A binary min-heap of kernel indices keyed by KBuild.first. */
typedef struct Heap {
  int *v, n;
  const KBuild *kbs;
} Heap;

static bool heap_less(const Heap *h, int a, int b) { return h->kbs[h->v[a]].first < h->kbs[h->v[b]].first; }

static void heap_swap(Heap *h, int a, int b) {
  int t = h->v[a];
  h->v[a] = h->v[b];
  h->v[b] = t;
}

static void heap_push(Heap *h, int k) {
  int i = h->n++;
  h->v[i] = k;
  for (; i > 0 && heap_less(h, i, (i - 1) / 2); i = (i - 1) / 2) heap_swap(h, i, (i - 1) / 2);
}

static int heap_pop(Heap *h) {
  int top = h->v[0];
  h->v[0] = h->v[--h->n];
  for (int i = 0;;) {
    int l = 2 * i + 1, r = l + 1, m = i;
    if (l < h->n && heap_less(h, l, m)) m = l;
    if (r < h->n && heap_less(h, r, m)) m = r;
    if (m == i) break;
    heap_swap(h, i, m);
    i = m;
  }
  return top;
}

/* Stable topological order of the live kernels (Kahn, smallest root id first): a kernel is
 * ready once every kernel whose outputs it reads is placed.  Linear in kernels and reads. */
static void order_kernels(Fuse *F, KBuild *kbs, int nk) {
  Entry *e = F->e;
  Arena *a = F->m->arena;
  int *producer = arena_alloc(a, (e->nnodes + 1) * sizeof *producer); /* node id -> kernel + 1 */
  int *waiting = arena_alloc(a, (nk + 1) * sizeof *waiting);          /* unplaced producers */
  int *nconsumers = arena_alloc(a, (nk + 1) * sizeof *nconsumers);
  int **consumers = arena_alloc(a, (nk + 1) * sizeof *consumers);
  for (int j = 0; j < nk; j++)
    for (int k = 0; !kbs[j].dead && k < kbs[j].k.nouts; k++) producer[kbs[j].k.outs[k]->id] = j + 1;
  /* the edges producer -> consumer, each once per pair (counted, then filled) */
  int *last = arena_alloc(a, (nk + 1) * sizeof *last);
  for (int pass = 0; pass < 2; pass++) {
    for (int j = 0; j < nk; j++) last[j] = -1;
    for (int i = 0; i < nk; i++)
      for (int r = 0; !kbs[i].dead && r < kbs[i].nreads; r++) {
        int j = producer[kbs[i].reads[r]->id] - 1;
        if (j < 0 || j == i || last[j] == i) continue;
        last[j] = i;
        if (pass == 0) {
          nconsumers[j]++;
          waiting[i]++;
        } else {
          consumers[j][nconsumers[j]++] = i;
        }
      }
    for (int j = 0; pass == 0 && j < nk; j++) {
      consumers[j] = arena_alloc(a, (nconsumers[j] + 1) * sizeof *consumers[j]);
      nconsumers[j] = 0;
    }
  }
  Heap ready = {arena_alloc(a, (nk + 1) * sizeof *ready.v), 0, kbs};
  for (int i = 0; i < nk; i++)
    if (!kbs[i].dead && !waiting[i]) heap_push(&ready, i);
  e->kernels = arena_alloc(a, (nk + 1) * sizeof *e->kernels);
  e->nkernels = 0;
  int live = 0;
  for (int i = 0; i < nk; i++) live += !kbs[i].dead;
  while (ready.n) {
    int pick = heap_pop(&ready);
    for (int k = 0; k < kbs[pick].k.nouts; k++) kbs[pick].k.outs[k]->kernel = e->nkernels;
    if (kbs[pick].k.prologue) kbs[pick].k.prologue->kernel = e->nkernels;
    e->kernels[e->nkernels++] = kbs[pick].k;
    for (int c = 0; c < nconsumers[pick]; c++)
      if (--waiting[consumers[pick][c]] == 0) heap_push(&ready, consumers[pick][c]);
  }
  if (e->nkernels != live) unreachable("cycle between kernels");
}

bool pass_fuse(Model *m, Entry *e, Diag *d) {
  Fuse F = {.m = m, .e = e};
  prepare_outputs(&F);
  for (int i = 0; i < e->nnodes; i++) e->nodes[i]->id = i;
  ir_count_users(e);
  int n = e->nnodes;
  F.users = arena_alloc(m->arena, n * sizeof *F.users);
  F.nusers = arena_alloc(m->arena, n * sizeof *F.nusers);
  F.mat = arena_alloc(m->arena, n * sizeof *F.mat);
  F.alias = arena_alloc(m->arena, n * sizeof *F.alias);
  F.gemm_of = arena_alloc(m->arena, n * sizeof *F.gemm_of);
  F.red_of = arena_alloc(m->arena, n * sizeof *F.red_of);
  F.view = arena_alloc(m->arena, n * sizeof *F.view);
  F.prologue = arena_alloc(m->arena, n * sizeof *F.prologue);
  F.depth = arena_alloc(m->arena, n * sizeof *F.depth);
  F.paths = arena_alloc(m->arena, n * sizeof *F.paths);
  find_users(&F);
  find_views(&F);
  decide_materialized(&F);
  fuse_epilogues(&F);
  find_aliases(&F);
  find_prologues(&F);
  KBuild *kbs = arena_alloc(m->arena, (n + 1) * sizeof *kbs);
  int nk = 0;
  for (int i = 0; i < n; i++) {
    e->nodes[i]->kernel = -1;
    if (F.mat[i] && !F.alias[i] && !F.prologue[i] && e->nodes[i]->op != OP_SCAN_OUT)
      build_kernel(&F, &kbs[nk++], e->nodes[i]);
  }
  merge_horizontal(&F, kbs, nk);
  order_kernels(&F, kbs, nk);
  for (int i = 0; i < n; i++)
    if (F.alias[i]) e->nodes[i]->kernel = -2; /* alias: shares its input's buffer */
  return true;
}
