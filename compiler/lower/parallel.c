/* parallel.c — which loop of a kernel the runtime may split among threads.
 *
 * A kernel's outer loop runs split (runtime/support/pool.c) when its iterations are
 * independent, so that any split computes exactly the sequential result:
 *   - it is the only statement of the kernel, with bounds that only depend on symbolic dims;
 *   - every store inside it, and every load of a buffer stored inside it, has an index that
 *     depends on the loop's variable: the lowering linearizes an output's own domain, so
 *     such an index is a distinct place per iteration (an accumulation into one place over
 *     the loop, or columns reused by every iteration, have indices without it);
 *   - every accumulator it updates is initialized inside it (a reduction over the loop itself
 *     is not split: a different order of the sum would change the bits);
 *   - it calls no scan body, and sgemm only for products small enough that nnc_rt_sgemm
 *     runs them as one call (pool.h SGEMM_THREADED_FLOPS: a larger one shares its own tiles
 *     among the threads), each into this iteration's part of its result (a direct convolution or row
 *     tiles likewise: each image has its own padded copy and output).
 * When that loop is a batch loop (symbolic, often 1 at inference) or short, and holds one
 * loop nest whose own iterations are independent too, the two are collapsed: the runtime
 * splits their (batch, channel) pairs.  With it goes an estimate of the scalar work of one
 * iteration, so that the runtime keeps small loops on the calling thread. */
#include <stdlib.h>
#include <string.h>

#include "loopir.h"
#include "pool.h"

#define SYMBOLIC_TRIP 16  /* the assumed trip count of a loop with symbolic bounds */
#define COLLAPSE_BELOW 16 /* an outer loop with fewer iterations is split with the next one */

typedef struct Check {
  int var;
  int64_t step;               /* the loop's constant step, or 0 */
  bool *owned;                /* [nvars] loop variables confined to an iteration's own range
                                 (a GEMM epilogue's rows i0..i0+rows, rows <= step) */
  int nvars;
  bool ok;
  bool *acc_init;             /* [naccs] initialized inside the loop so far */
  bool *stored_bufs;          /* [nbufs] stored inside the loop */
  int nbufs;
  bool chunk_local;           /* LX_CHUNK is this iteration's own (the kernel's split loop;
                                 not a loop inside it: its iterations share the chunk) */
  const Lx **seen;            /* visited expressions (a DAG: without it, exponential) */
  size_t nseen, capseen;
} Check;

/* At most 2 m n k for an sgemm (infinity when a size has no static bound). */
static double gemm_flops(const Ls *s) {
  int64_t m = loopir_size_bound(s->g.m), n = loopir_size_bound(s->g.n), k = loopir_size_bound(s->g.k);
  if (m < 0 || n < 0 || k < 0) return 1e300;
  return 2.0 * (double)m * (double)n * (double)k;
}

/* Does x use the loop's variable, or a variable confined to its iteration?  LX_CHUNK counts:
 * scratch at a chunk's place is the iteration's own while it runs, since the chunk's
 * iterations run one after another, each writing it before it reads it (conv.c). */
static bool uses_iteration(const Check *c, const Lx *x) {
  if (!x) return false;
  if (x->k == LX_CHUNK) return c->chunk_local;
  if (x->k == LX_VAR) return x->var == c->var || (x->var < c->nvars && c->owned[x->var]);
  return uses_iteration(c, x->a[0]) || uses_iteration(c, x->a[1]) || uses_iteration(c, x->a[2]);
}

/* Loop s runs over [v, v + n) with v the split loop's variable and n <= its step. */
static bool confined(const Check *c, const Ls *s) {
  const Lx *lo = s->lo, *hi = s->hi;
  if (!c->step || lo->k != LX_VAR || lo->var != c->var || hi->k != LX_IBIN || hi->op != '+' || hi->a[0] != lo) return false;
  int64_t n = loopir_size_bound(hi->a[1]);
  return n >= 0 && n <= c->step;
}

/* Insert x into the visited set; false if it was there. */
static bool visit(Check *c, const Lx *x) {
  if (c->nseen * 2 >= c->capseen) {
    size_t cap = c->capseen ? 2 * c->capseen : 256;
    const Lx **t = calloc(cap, sizeof *t);
    if (!t) {
      c->ok = false;
      return false;
    }
    for (size_t i = 0; i < c->capseen; i++)
      if (c->seen[i])
        for (size_t h = ((uintptr_t)c->seen[i] >> 4) & (cap - 1);; h = (h + 1) & (cap - 1))
          if (!t[h]) {
            t[h] = c->seen[i];
            break;
          }
    free(c->seen);
    c->seen = t;
    c->capseen = cap;
  }
  for (size_t h = ((uintptr_t)x >> 4) & (c->capseen - 1);; h = (h + 1) & (c->capseen - 1)) {
    if (c->seen[h] == x) return false;
    if (!c->seen[h]) {
      c->seen[h] = x;
      c->nseen++;
      return true;
    }
  }
}

/* Loads of buffers stored in the loop must read this iteration's part. */
static void check_loads(Check *c, const Lx *x) {
  if (!x || !c->ok || !visit(c, x)) return;
  if ((x->k == LX_LOAD || x->k == LX_LOADI) && x->buf >= 0 && x->buf < c->nbufs && c->stored_bufs[x->buf] &&
      !uses_iteration(c, x->a[0]))
    c->ok = false;
  for (int i = 0; i < 3; i++) check_loads(c, x->a[i]);
}

static void mark_stores(Check *c, const Ls *s) {
  if (s->k == LS_STORE && s->buf >= 0 && s->buf < c->nbufs) c->stored_bufs[s->buf] = true;
  if (s->k == LS_GEMM && s->g.c >= 0 && s->g.c < c->nbufs) c->stored_bufs[s->g.c] = true;
  if (s->k == LS_CONV && s->cv.y >= 0 && s->cv.y < c->nbufs) c->stored_bufs[s->cv.y] = true;
  for (int i = 0; i < s->nbody; i++) mark_stores(c, s->body[i]);
}

static void check_stmt(Check *c, const Ls *s) {
  if (!c->ok) return;
  switch (s->k) {
  case LS_BLOCK:
  case LS_LOOP:
    if (s->k == LS_LOOP && s->var < c->nvars && confined(c, s)) c->owned[s->var] = true;
    check_loads(c, s->lo);
    check_loads(c, s->hi);
    for (int i = 0; i < s->nbody && c->ok; i++) check_stmt(c, s->body[i]);
    break;
  case LS_STORE:
    if (!uses_iteration(c, s->idx)) c->ok = false;
    check_loads(c, s->idx);
    check_loads(c, s->val);
    break;
  case LS_EVAL:
    check_loads(c, s->val);
    break;
  case LS_ACC_INIT:
    c->acc_init[s->acc] = true;
    break;
  case LS_ACC_UPDATE:
    if (!c->acc_init[s->acc]) c->ok = false;
    check_loads(c, s->val);
    break;
  case LS_CONV: /* its image's output from its image's padded copy (a product's rows from
                   operands not written by another iteration) */
    if (!uses_iteration(c, s->cv.y_off) || (c->stored_bufs[s->cv.x] && !uses_iteration(c, s->cv.x_off)) ||
        (c->stored_bufs[s->cv.w] && !uses_iteration(c, s->cv.w_off)))
      c->ok = false;
    if (s->cv.rows) check_loads(c, s->cv.rows);
    if (s->cv.epi) check_loads(c, s->cv.epi);
    check_loads(c, s->cv.x_off);
    check_loads(c, s->cv.w_off);
    check_loads(c, s->cv.y_off);
    break;
  case LS_GEMM: /* C at this iteration's offset; A and B not written by another iteration */
    if (gemm_flops(s) >= SGEMM_THREADED_FLOPS || !uses_iteration(c, s->g.c_off) ||
        (c->stored_bufs[s->g.a] && !uses_iteration(c, s->g.a_off)) || (c->stored_bufs[s->g.b] && !uses_iteration(c, s->g.b_off)))
      c->ok = false;
    check_loads(c, s->g.a_off);
    check_loads(c, s->g.b_off);
    check_loads(c, s->g.c_off);
    break;
  case LS_SCAN:
  case LS_CALL: /* splits its own work (nnc_rt_attention) */
    c->ok = false;
    break;
  }
}

static int64_t trip_count(const Ls *s) {
  if (s->lo->k != LX_I || s->hi->k != LX_I || s->step->k != LX_I || s->step->c <= 0) return SYMBOLIC_TRIP;
  return s->hi->c > s->lo->c ? (s->hi->c - s->lo->c + s->step->c - 1) / s->step->c : 0;
}

/* Scalar statements executed by s, loops multiplied out (saturating); a direct convolution
 * counts one per vector multiply-add. */
static int64_t work_of(const Ls *s) {
  if (s->k == LS_CONV) { /* its channels, of each item of a batch */
    int64_t f = loopir_conv_fmas(s, s->cv.cout), b = s->cv.nbatch;
    return f > INT64_MAX / b ? INT64_MAX : f * b;
  }
  if (s->k == LS_GEMM) return gemm_flops(s) < 1e18 ? (int64_t)(gemm_flops(s) / 32) : INT64_MAX / 2; /* vector FMAs */
  if (s->k != LS_BLOCK && s->k != LS_LOOP) return 1;
  int64_t w = 0;
  for (int i = 0; i < s->nbody; i++) {
    int64_t b = work_of(s->body[i]);
    w = w > INT64_MAX - b ? INT64_MAX : w + b;
  }
  if (s->k == LS_LOOP) {
    int64_t t = trip_count(s);
    w = t && w > INT64_MAX / t ? INT64_MAX : w * t;
  }
  return w;
}

static bool symbolic_only(const Lx *x) {
  if (!x) return true;
  if (x->k == LX_VAR || x->k == LX_LOAD || x->k == LX_LOADI || x->k == LX_ACC) return false;
  return symbolic_only(x->a[0]) && symbolic_only(x->a[1]) && symbolic_only(x->a[2]);
}

/* Are the iterations of `loop` independent (the rules above)? */
static bool independent(const LEntry *le, const LKernel *k, const Ls *loop, bool chunk_local) {
  if (!symbolic_only(loop->lo) || !symbolic_only(loop->hi) || !symbolic_only(loop->step)) return false;
  Check c = {.var = loop->var, .ok = true, .nbufs = le->nbufs, .nvars = k->nvars, .chunk_local = chunk_local};
  c.step = loop->step->k == LX_I ? loop->step->c : 0;
  c.acc_init = calloc((size_t)k->naccs + 1, sizeof *c.acc_init);
  c.stored_bufs = calloc((size_t)le->nbufs + 1, sizeof *c.stored_bufs);
  c.owned = calloc((size_t)k->nvars + 1, sizeof *c.owned);
  if (c.acc_init && c.stored_bufs && c.owned) {
    mark_stores(&c, loop);
    for (int i = 0; i < loop->nbody && c.ok; i++) check_stmt(&c, loop->body[i]);
  } else {
    c.ok = false;
  }
  free(c.acc_init);
  free(c.stored_bufs);
  free(c.owned);
  free(c.seen);
  return c.ok;
}

static bool contains_loop(const Ls *s) {
  for (int i = 0; i < s->nbody; i++)
    if (s->body[i]->k == LS_LOOP || contains_loop(s->body[i])) return true;
  return false;
}

static int64_t body_work(const Ls *loop) {
  int64_t w = 0;
  for (int i = 0; i < loop->nbody; i++) {
    int64_t x = work_of(loop->body[i]);
    w = w > INT64_MAX - x ? INT64_MAX : w + x;
  }
  return w;
}

/* Does s hold a statement that splits its own work (a convolution's or product's tiles, a
 * scan, a support call)? */
static bool splits_itself(const Ls *s) {
  if (s->k == LS_CONV || s->k == LS_GEMM || s->k == LS_SCAN || s->k == LS_CALL) return true;
  for (int i = 0; i < s->nbody; i++)
    if (splits_itself(s->body[i])) return true;
  return false;
}

/* The loops of the split loop's body (a convolution's padded copy and epilogue, Winograd's
 * transforms: one per channel) whose iterations are independent of each other, with a loop
 * inside (an innermost one stays whole, to be vectorized), at least two iterations and
 * nothing that splits its own work: split_inner.  At batch 1 the split loop has one item and
 * runs on the calling thread; these loops then split among the threads, where they ran on
 * that thread alone while the convolution between them ran split (resnet18's Winograd layers
 * at 56x56: 1.25x faster on 2 threads than on 1). */
static void mark_split_inner(const LEntry *le, LKernel *k, Ls *par) {
  for (int i = 0; i < par->nbody; i++) {
    Ls *s = par->body[i];
    if (s->k == LS_BLOCK) {
      mark_split_inner(le, k, s);
      continue;
    }
    if (s->k != LS_LOOP || trip_count(s) < 2 || !contains_loop(s) || splits_itself(s) || !independent(le, k, s, false))
      continue;
    s->split_inner = true;
    s->split_work = body_work(s);
  }
}

void loopir_mark_parallel(const LEntry *le, LKernel *k) {
  k->par = k->par_inner = NULL;
  k->par_work = 0;
  const Ls *b = k->body;
  while (b->k == LS_BLOCK && b->nbody == 1) b = b->body[0];
  if (b->k != LS_LOOP || !independent(le, k, b, true)) return;
  k->par = (Ls *)b;
  k->par_work = body_work(b);
  /* A batch loop (often of 1) with a loop nest inside: split the pair (batch, channels)
   * instead.  Not an innermost loop, which must stay whole to be vectorized. */
  const Ls *in = b->nbody == 1 ? b->body[0] : NULL;
  bool few = trip_count(b) == SYMBOLIC_TRIP || trip_count(b) < COLLAPSE_BELOW;
  if (few && in && in->k == LS_LOOP && contains_loop(in) && independent(le, k, in, true)) {
    k->par_inner = (Ls *)in;
    k->par_work = body_work(in);
  }
  mark_split_inner(le, k, k->par_inner ? k->par_inner : k->par);
}
