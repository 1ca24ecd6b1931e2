/* loops.c — the loops of a kernel: the counted-loop emitter (loop_open .. loop_close, or
 * counted_loop with a body callback) that codegen's loops use, the scan's included (only the
 * convolution tile's loop, whose accumulators are phis of its head, builds its own); a
 * parallel kernel's loop restricted to this thread's iterations (and collapsed with its
 * inner loop); reductions accumulated in REDUCE_LANES independent lanes in a fixed order;
 * and the loop hints (vectorize, unroll, interleave) that steer LLVM's O3 pipeline.  A short
 * static row goes to vector_row.c instead (emit_loop decides). */
#include <llvm-c/DebugInfo.h>
#include "cg.h"

/* The trip count of loop s: ceil((hi - lo) / step), hi >= lo. */
LLVMValueRef trip_of(Cg *g, const Ls *s) {
  LLVMValueRef lo = emit(g, s->lo), hi = emit(g, s->hi), step = emit(g, s->step);
  LLVMValueRef span = LLVMBuildNSWAdd(g->b, LLVMBuildNSWSub(g->b, hi, lo, ""), LLVMBuildNSWSub(g->b, step, ci64(g, 1), ""), "");
  return LLVMBuildSDiv(g->b, span, step, "trip");
}

/* Does expression x evaluate an op whose code is a long chain of dependent instructions
 * (OPT_CHAIN in ops.def)? */
static bool lx_has_chain_op(Cg *g, Lx *x) {
  if (!x || x->cg_walk == g->walk_gen) return false;
  x->cg_walk = g->walk_gen;
  if (x->k == LX_OP && (op_info[x->op].traits & OPT_CHAIN)) return true;
  for (int i = 0; i < 3; i++)
    if (lx_has_chain_op(g, x->a[i])) return true;
  return false;
}

static bool ls_has_chain_op(Cg *g, const Ls *s) {
  if ((s->k == LS_STORE || s->k == LS_EVAL || s->k == LS_ACC_UPDATE) && lx_has_chain_op(g, s->val)) return true;
  for (int i = 0; (s->k == LS_BLOCK || s->k == LS_LOOP) && i < s->nbody; i++)
    if (ls_has_chain_op(g, s->body[i])) return true;
  return false;
}

bool has_chain_op(Cg *g, const Ls *s) {
  g->walk_gen++;
  return ls_has_chain_op(g, s);
}

/* The interleave count for vectorizable loop s: 4 or 2, the largest that splits its static
 * trip count into two or more whole rounds of that many vectors, when its statements
 * evaluate a chain op (lx_has_chain_op), so that independent vectors hide the chains'
 * latency (LLVM's cost model leaves such a large body at 1), as in an LSTM step's gates over
 * 128 hidden units.  0 (LLVM's choice) otherwise: with a remainder, or forced on every loop,
 * it made short rows (mann's, cfr's) slower. */
static int chain_interleave(Cg *g, const Ls *s) {
  if (s->scalar || s->lo->k != LX_I || s->hi->k != LX_I || s->step->k != LX_I || s->step->c != 1) return 0;
  int64_t trip = s->hi->c - s->lo->c;
  int ic = trip % (4 * g->floats) == 0 && trip >= 8 * g->floats   ? 4
           : trip % (2 * g->floats) == 0 && trip >= 4 * g->floats ? 2
                                                                  : 0;
  return ic && has_chain_op(g, s) ? ic : 0;
}

/* Loop hints on the loop whose back edge is `br`: llvm.loop.vectorize.enable false when not
 * `vectorize`, llvm.loop.unroll.disable when not `unroll`, llvm.loop.interleave.count when
 * `interleave` (a self-referencing llvm.loop ID, built through a temporary node). */
void loop_hints(Cg *g, LLVMValueRef br, bool vectorize, bool unroll, int interleave) {
  if (vectorize && unroll && !interleave) return;
  LLVMMetadataRef tmp = LLVMTemporaryMDNode(g->ctx, NULL, 0), ops[4] = {tmp};
  size_t n = 1;
  if (interleave) {
    LLVMMetadataRef v[2] = {LLVMMDStringInContext2(g->ctx, "llvm.loop.interleave.count", 26),
                            LLVMValueAsMetadata(LLVMConstInt(g->i32, (unsigned long long)interleave, 0))};
    ops[n++] = LLVMMDNodeInContext2(g->ctx, v, 2);
  }
  if (!vectorize) {
    LLVMMetadataRef v[2] = {LLVMMDStringInContext2(g->ctx, "llvm.loop.vectorize.enable", 26),
                            LLVMValueAsMetadata(LLVMConstInt(LLVMInt1TypeInContext(g->ctx), 0, 0))};
    ops[n++] = LLVMMDNodeInContext2(g->ctx, v, 2);
  }
  if (!unroll) {
    LLVMMetadataRef u = LLVMMDStringInContext2(g->ctx, "llvm.loop.unroll.disable", 24);
    ops[n++] = LLVMMDNodeInContext2(g->ctx, &u, 1);
  }
  LLVMMetadataRef id = LLVMMDNodeInContext2(g->ctx, ops, n);
  LLVMMetadataReplaceAllUsesWith(tmp, id);
  LLVMSetMetadata(br, LLVMGetMDKindIDInContext(g->ctx, "llvm.loop", 9), LLVMMetadataAsValue(g->ctx, id));
}

/* Open `for (i = lo; i < hi; ...)`: the builder is left in its body, where l->i is i. */
CountedLoop loop_open(Cg *g, LLVMValueRef lo, LLVMValueRef hi, const LoopNames *names) {
  CountedLoop l = {.pre = LLVMGetInsertBlock(g->b), .lo = lo};
  l.head = LLVMAppendBasicBlockInContext(g->ctx, g->fn, names->head);
  LLVMBasicBlockRef blk = LLVMAppendBasicBlockInContext(g->ctx, g->fn, names->body);
  l.exit = LLVMAppendBasicBlockInContext(g->ctx, g->fn, names->exit);
  LLVMBuildBr(g->b, l.head);
  LLVMPositionBuilderAtEnd(g->b, l.head);
  l.i = LLVMBuildPhi(g->b, g->i64, names->var);
  LLVMBuildCondBr(g->b, LLVMBuildICmp(g->b, LLVMIntSLT, l.i, hi, ""), blk, l.exit);
  LLVMPositionBuilderAtEnd(g->b, blk);
  return l;
}

/* Close loop l with `i += step` at the end of the body emitted so far; the builder moves to
 * the code after the loop.  Returns the back edge (for loop_hints). */
LLVMValueRef loop_close(Cg *g, const CountedLoop *l, LLVMValueRef step) {
  LLVMValueRef next = LLVMBuildNSWAdd(g->b, l->i, step, "");
  LLVMBasicBlockRef latch = LLVMGetInsertBlock(g->b);
  LLVMValueRef back = LLVMBuildBr(g->b, l->head);
  LLVMAddIncoming(l->i, (LLVMValueRef[]){l->lo, next}, (LLVMBasicBlockRef[]){l->pre, latch}, 2);
  LLVMPositionBuilderAtEnd(g->b, l->exit);
  return back;
}

/* for (i = lo; i < hi; i += step) body(g, s, i), with loop s's hints when it is a loop */
void counted_loop(Cg *g, LLVMValueRef lo, LLVMValueRef hi, LLVMValueRef step,
                  void (*body)(Cg *, const Ls *, LLVMValueRef), const Ls *s) {
  static const LoopNames names = {"loop", "body", "exit", "i"};
  CountedLoop l = loop_open(g, lo, hi, &names);
  body(g, s, l.i);
  LLVMValueRef back = loop_close(g, &l, step);
  if (s->k == LS_LOOP) loop_hints(g, back, !s->scalar, !s->rolled, chain_interleave(g, s));
}

static void emit_body(Cg *g, const Ls *s) {
  int parent = scope_push(g);
  for (int k = 0; k < s->nbody; k++) emit_stmt(g, s->body[k]);
  scope_pop(g, parent);
}

static void loop_body(Cg *g, const Ls *s, LLVMValueRef i) {
  g->vars[s->var] = i;
  emit_body(g, s);
}

/* One iteration `it` of the collapsed pair (s, its only statement g->par_inner): the outer
 * variable steps every trip(inner) iterations, the inner one cycles. */
static void collapsed_body(Cg *g, const Ls *s, LLVMValueRef it) {
  const Ls *in = g->par_inner;
  LLVMValueRef q = LLVMBuildSDiv(g->b, it, g->par_trip_inner, ""), r = LLVMBuildSRem(g->b, it, g->par_trip_inner, "");
  g->vars[s->var] = LLVMBuildNSWAdd(g->b, emit(g, s->lo), LLVMBuildNSWMul(g->b, q, emit(g, s->step), ""), "");
  g->vars[in->var] = LLVMBuildNSWAdd(g->b, emit(g, in->lo), LLVMBuildNSWMul(g->b, r, emit(g, in->step), ""), "");
  emit_body(g, in);
}

static void lane_body(Cg *g, const Ls *s, LLVMValueRef i) {
  const Ls *u = g->lane_update;
  for (int j = 0; j < REDUCE_LANES; j++) {
    g->vars[s->var] = LLVMBuildNSWAdd(g->b, i, ci64(g, j), "");
    int parent = scope_push(g);
    LLVMValueRef cur = LLVMBuildLoad2(g->b, g->f32, g->lanes[j], "");
    LLVMBuildStore(g->b, reduce_op(g, u->rop, cur, emit(g, u->val)), g->lanes[j]);
    scope_pop(g, parent);
  }
}

static void tail_body(Cg *g, const Ls *s, LLVMValueRef i) {
  const Ls *u = g->lane_update;
  g->vars[s->var] = i;
  int parent = scope_push(g);
  LLVMValueRef cur = LLVMBuildLoad2(g->b, g->f32, g->lanes[REDUCE_LANES], "");
  LLVMBuildStore(g->b, reduce_op(g, u->rop, cur, emit(g, u->val)), g->lanes[REDUCE_LANES]);
  scope_pop(g, parent);
}

/* A reduction loop `for i in [lo, hi) { acc op= v(i) }` in a fixed order that vectorizes
 * without reassociating anything behind our back: lane j accumulates the iterations
 * lo + j, lo + j + LANES, ... of the whole blocks of LANES (independent chains, which the
 * SLP vectorizer turns into vector operations), the lanes combine pairwise, the remaining
 * iterations accumulate in order, and acc op= (lanes op rest).  The order depends only on
 * the trip count: the same for every thread count, for JIT and AOT. */
static void emit_lane_reduction(Cg *g, Ls *s) {
  const Ls *u = s->body[0];
  LLVMValueRef lo = emit(g, s->lo), hi = emit(g, s->hi);
  LLVMValueRef n = LLVMBuildNSWSub(g->b, hi, lo, "");
  n = LLVMBuildSelect(g->b, LLVMBuildICmp(g->b, LLVMIntSLT, n, ci64(g, 0), ""), ci64(g, 0), n, "");
  LLVMValueRef blocks_end = LLVMBuildNSWAdd(g->b, lo, LLVMBuildAnd(g->b, n, ci64(g, ~(int64_t)(REDUCE_LANES - 1)), ""), "");
  LLVMValueRef end = LLVMBuildNSWAdd(g->b, lo, n, "");
  for (int j = 0; j <= REDUCE_LANES; j++) {
    if (!g->lanes[j]) g->lanes[j] = entry_alloca(g, g->f32, "lane");
    LLVMBuildStore(g->b, reduce_identity(g, u->rop), g->lanes[j]);
  }
  g->lane_update = u;
  LLVMValueRef lanes = lane_blocks_as_vectors(g, s, lo, blocks_end);
  if (!lanes) {
    counted_loop(g, lo, blocks_end, ci64(g, REDUCE_LANES), lane_body, s);
    LLVMValueRef v[REDUCE_LANES];
    for (int j = 0; j < REDUCE_LANES; j++) v[j] = LLVMBuildLoad2(g->b, g->f32, g->lanes[j], "");
    for (int w = REDUCE_LANES / 2; w >= 1; w /= 2)
      for (int j = 0; j < w; j++) v[j] = reduce_op(g, u->rop, v[j], v[j + w]);
    lanes = v[0];
  }
  counted_loop(g, blocks_end, end, ci64(g, 1), tail_body, s);
  LLVMValueRef rest = LLVMBuildLoad2(g->b, g->f32, g->lanes[REDUCE_LANES], "");
  LLVMValueRef cur = LLVMBuildLoad2(g->b, g->f32, g->accs[u->acc], "");
  LLVMBuildStore(g->b, reduce_op(g, u->rop, cur, reduce_op(g, u->rop, lanes, rest)), g->accs[u->acc]);
}

/* Is s an innermost loop that only accumulates, by unit steps (emit_lane_reduction)? */
static bool lane_reducible(const Cg *g, const Ls *s) {
  return s != g->par && s->nbody == 1 && s->body[0]->k == LS_ACC_UPDATE && s->step->k == LX_I && s->step->c == 1;
}

void emit_loop(Cg *g, Ls *s) {
  if (s->split_inner && s != g->par) {
    emit_split_inner(g, s);
    return;
  }
  int lanes = vector_row_lanes(g, s);
  if (lanes) {
    emit_vector_row(g, s, lanes);
    return;
  }
  if (lane_reducible(g, s)) {
    emit_lane_reduction(g, s);
    return;
  }
  LLVMValueRef lo = emit(g, s->lo), hi = emit(g, s->hi), step = emit(g, s->step);
  if (s != g->par) {
    counted_loop(g, lo, hi, step, loop_body, s);
  } else if (g->par_inner) { /* this thread's iterations [par_lo, par_hi) of the pair */
    g->par_trip_inner = trip_of(g, g->par_inner);
    counted_loop(g, g->par_lo, g->par_hi, ci64(g, 1), collapsed_body, s);
  } else { /* this thread's iterations [par_lo, par_hi) */
    LLVMValueRef end = LLVMBuildNSWAdd(g->b, lo, LLVMBuildNSWMul(g->b, g->par_hi, step, ""), "");
    hi = LLVMBuildSelect(g->b, LLVMBuildICmp(g->b, LLVMIntSLT, end, hi, ""), end, hi, "");
    lo = LLVMBuildNSWAdd(g->b, lo, LLVMBuildNSWMul(g->b, g->par_lo, step, ""), "");
    counted_loop(g, lo, hi, step, loop_body, s);
  }
}
