/* attention.c — scaled dot-product attention and nn.MultiheadAttention's forward pass, as
 * PyTorch defines them (inference: dropout is the identity), written in the primitive ops of
 * ops.def.  Used by the function scaled_dot_product_attention (builtins_nn.c) and by the
 * layers MultiheadAttention and TransformerEncoderLayer (layers_nn.c).
 *
 * Attention is one fused ATTENTION op (FlashAttention's blocks: lower/attention.c) where the
 * weights are not wanted and it is the faster way (fused_pays), else matmul, softmax, matmul.
 *
 * Masks follow PyTorch's two kinds, told apart by dtype since nnc has no bool: an i64 mask is
 * boolean (nonzero: not attended, PyTorch's True), an f32 mask is added to the scores
 * (PyTorch's float mask).  A condition computed in nnc is f32 (1.0 / 0.0): pass it as
 * where(cond, -inf, 0.0). */
#include <math.h>
#include "builtins.h"
#include "nn.h"

#define M (S->m)
#define E (S->e)
#define D (S->d)

static INode *reshape(Sema *S, INode *x, int rank, const Dim *d, SrcLoc loc) {
  Shape s = {.rank = rank};
  for (int i = 0; i < rank; i++) s.d[i] = d[i];
  return ir_reshape(M, E, x, &s, loc, D);
}

static INode *permute(Sema *S, INode *x, const int *perm, SrcLoc loc) { return ir_permute(M, E, x, perm, loc, D); }

/* A mask as scores to add: an i64 (boolean) mask becomes -inf where nonzero, 0 elsewhere. */
static INode *additive_mask(Sema *S, INode *mask, SrcLoc loc) {
  if (!mask || mask->dtype != DT_I64) return mask;
  INode *zero = ir_fill(M, E, 0.0, &(Shape){0}, loc);
  INode *hit = ir_binary(M, E, OP_NE, mask, zero, loc, D);
  return ir_where(M, E, hit, ir_fill(M, E, -INFINITY, &(Shape){0}, loc), zero, loc, D);
}

/* -inf above the diagonal of [L, S] (is_causal: position l attends to s <= l) */
static INode *causal_mask(Sema *S, Dim l, Dim s, SrcLoc loc) {
  Shape sh = {.rank = 2, .d = {l, s}};
  INode *above = ir_binary(M, E, OP_GT, ir_iota(M, E, &sh, 1, loc), ir_iota(M, E, &sh, 0, loc), loc, D);
  return ir_where(M, E, above, ir_fill(M, E, -INFINITY, &(Shape){0}, loc), ir_fill(M, E, 0.0, &(Shape){0}, loc), loc, D);
}

/* Scores [L, S] from which the fused op is at least as fast as matmul-softmax-matmul (one
 * thread, head dims 32 and 64: 0.8-0.95x the GEMMs' speed at 64-256 squared, 1.1-1.2x at
 * 512-1024 squared); a causal one skips the blocks above the diagonal (1.1-1.4x at 256
 * squared).  Figures in docs/architecture.md, "Fused attention". */
#define FUSED_MIN_SCORES (512 * 512)
#define FUSED_MIN_SCORES_CAUSAL (256 * 256)

/* Is the fused op the faster (or the only bounded) way: scores of a symbolic size (they
 * could be any size, and the op needs no memory for them) or at least the sizes above? */
static bool fused_pays(const INode *q, const INode *k, bool causal) {
  int r = q->shape.rank;
  Dim l = q->shape.d[r - 2], s = k->shape.d[r - 2];
  if (l.syms || s.syms) return true;
  return (double)l.k * (double)s.k >= (causal ? FUSED_MIN_SCORES_CAUSAL : FUSED_MIN_SCORES);
}

/* Can ATTENTION compute it: static widths, a mask that broadcasts to [..., L, S]? */
static bool fusable(const INode *q, const INode *k, const INode *v, const INode *mask) {
  int r = q->shape.rank;
  if (v->shape.d[r - 1].syms || q->shape.d[r - 1].k == 0) return false; /* (E = 0: no sgemm) */
  if (!mask) return true;
  if (mask->shape.rank > r) return false;
  for (int i = 1; i <= mask->shape.rank; i++) {
    Dim m = mask->shape.d[mask->shape.rank - i];
    Dim to = i == 1 ? k->shape.d[r - 2] : q->shape.d[r - i];
    if (!dim_is(m, 1) && !dim_eq(m, to)) return false;
  }
  return true;
}

/* One ATTENTION op (lower/attention.c): FlashAttention's blocks, no [..., L, S] scores in
 * memory.  Keys and values travel as one operand [..., S, E + Ev]: their concatenation, which
 * fuses into the copy that splits the heads of a MultiheadAttention. */
static INode *fused_attention(Sema *S, INode *q, INode *k, INode *v, INode *mask, bool causal, double scale,
                              SrcLoc loc) {
  INode *kv = ir_concat(M, E, k, v, q->shape.rank - 1, loc, D);
  return ir_attention(M, E, q, kv, mask, scale, causal, loc, D);
}

INode *nn_attention(Sema *S, INode *q, INode *k, INode *v, INode *mask, bool causal, double scale, INode **weights,
                    SrcLoc loc) {
  if (!q || !k || !v) return NULL;
  int r = q->shape.rank;
  if (r < 2 || k->shape.rank != r || v->shape.rank != r)
    return diag_error(D, loc, "attention: query, key and value must have the same rank (>= 2)"), NULL;
  if (!dim_eq(q->shape.d[r - 1], k->shape.d[r - 1]) || !dim_eq(k->shape.d[r - 2], v->shape.d[r - 2]))
    return diag_error(D, loc, "attention: query [..., L, E] and key [..., S, E] must share E, key and value S"), NULL;
  if (q->shape.d[r - 1].syms) return diag_error(D, loc, "attention: the embedding size must be static"), NULL;
  if (scale <= 0) scale = 1.0 / sqrt((double)q->shape.d[r - 1].k);
  INode *add = additive_mask(S, mask, loc);
  if (!weights && fused_pays(q, k, causal) && fusable(q, k, v, add)) return fused_attention(S, q, k, v, add, causal, scale, loc);
  INode *scores = ir_matmul(M, E, q, k, 0, 1, loc, D);
  scores = ir_binary(M, E, OP_MUL, scores, ir_fill(M, E, scale, &(Shape){0}, loc), loc, D);
  if (causal) scores = ir_binary(M, E, OP_ADD, scores, causal_mask(S, q->shape.d[r - 2], k->shape.d[r - 2], loc), loc, D);
  if (add) scores = ir_binary(M, E, OP_ADD, scores, add, loc, D);
  if (!scores) return NULL;
  INode *w = softmax_node(S, scores, r - 1, loc);
  if (weights) *weights = w;
  return ir_matmul(M, E, w, v, 0, 0, loc, D);
}

/* x [..., in] W^T + b (W [out, in]); b may be NULL */
static INode *project(Sema *S, INode *x, INode *w, INode *b, SrcLoc loc) {
  const Shape *s = &x->shape;
  Dim rows = shape_numel(M, s);
  rows.k /= s->d[s->rank - 1].k;
  INode *y = ir_matmul(M, E, reshape(S, x, 2, (Dim[]){rows, s->d[s->rank - 1]}, loc), w, 0, 1, loc, D);
  if (y && b) y = ir_binary(M, E, OP_ADD, y, b, loc, D);
  if (!y) return NULL;
  Shape out = *s;
  out.d[out.rank - 1] = w->shape.d[0];
  return ir_reshape(M, E, y, &out, loc, D);
}

/* rows [lo, lo + n) of a packed projection (in_proj_weight's q, k, v blocks) */
static INode *rows(Sema *S, INode *w, int64_t lo, int64_t n, SrcLoc loc) {
  return w ? ir_slice(M, E, w, 0, lo, lo + n, 1, loc, D) : NULL;
}

/* [N, T, E] -> [N, H, T, E/H] */
static INode *split_heads(Sema *S, INode *x, int64_t h, SrcLoc loc) {
  Dim n = x->shape.d[0], t = x->shape.d[1];
  x = reshape(S, x, 4, (Dim[]){n, t, dim_const(h), dim_const(x->shape.d[2].k / h)}, loc);
  return x ? permute(S, x, (const int[]){0, 2, 1, 3}, loc) : NULL;
}

INode *nn_multihead_attention(Sema *S, const MhaWeights *p, INode *q, INode *k, INode *v, const MhaOptions *o,
                              INode **weights, SrcLoc loc) {
  if (!q || !k || !v) return NULL;
  int64_t e = p->embed_dim, h = p->num_heads;
  for (int i = 0; i < 3; i++) {
    INode *x = i == 0 ? q : i == 1 ? k : v;
    if (x->shape.rank != 3 || !dim_is(x->shape.d[2], e)) {
      char b[128];
      return diag_error(D, loc, "MultiheadAttention(%lld, %lld): the %s must be [%s, %lld], not %s", (long long)e,
                        (long long)h, i == 0 ? "query" : i == 1 ? "key" : "value",
                        o->batch_first ? "batch, length" : "length, batch", (long long)e,
                        shape_str(M, x->dtype, &x->shape, b, sizeof b)), NULL;
    }
  }
  static const int swap01[] = {1, 0, 2};
  bool self = q == k && k == v;
  if (!o->batch_first) { /* [T, N, E] -> [N, T, E] */
    q = permute(S, q, swap01, loc);
    k = self ? q : permute(S, k, swap01, loc);
    v = self ? q : permute(S, v, swap01, loc);
  }
  INode *qp, *kp, *vp;
  if (self) { /* one product with the packed weights, then its three column blocks */
    INode *qkv = project(S, q, p->in_w, p->in_b, loc);
    if (!qkv) return NULL;
    qp = ir_slice(M, E, qkv, 2, 0, e, 1, loc, D);
    kp = ir_slice(M, E, qkv, 2, e, 2 * e, 1, loc, D);
    vp = ir_slice(M, E, qkv, 2, 2 * e, 3 * e, 1, loc, D);
  } else {
    qp = project(S, q, rows(S, p->in_w, 0, e, loc), rows(S, p->in_b, 0, e, loc), loc);
    kp = project(S, k, rows(S, p->in_w, e, e, loc), rows(S, p->in_b, e, e, loc), loc);
    vp = project(S, v, rows(S, p->in_w, 2 * e, e, loc), rows(S, p->in_b, 2 * e, e, loc), loc);
  }
  if (!qp || !kp || !vp) return NULL;
  Dim n = qp->shape.d[0], lq = qp->shape.d[1], ls = kp->shape.d[1];
  INode *mask = additive_mask(S, o->attn_mask, loc);
  if (mask && mask->shape.rank == 3) /* [N * H, L, S] -> [N, H, L, S] */
    mask = reshape(S, mask, 4, (Dim[]){n, dim_const(h), lq, ls}, loc);
  if (o->key_padding_mask) { /* [N, S] -> [N, 1, 1, S] */
    INode *kpm = additive_mask(S, o->key_padding_mask, loc);
    kpm = reshape(S, kpm, 4, (Dim[]){n, dim_const(1), dim_const(1), ls}, loc);
    mask = mask ? ir_binary(M, E, OP_ADD, mask, kpm, loc, D) : kpm;
  }
  INode *w = NULL;
  INode *y = nn_attention(S, split_heads(S, qp, h, loc), split_heads(S, kp, h, loc), split_heads(S, vp, h, loc), mask,
                          o->is_causal, 0, weights ? &w : NULL, loc);
  if (!y) return NULL;
  y = permute(S, y, (const int[]){0, 2, 1, 3}, loc); /* [N, L, H, E/H] -> [N, L, E] */
  y = project(S, reshape(S, y, 3, (Dim[]){n, lq, dim_const(e)}, loc), p->out_w, p->out_b, loc);
  if (weights) *weights = w;
  return y && !o->batch_first ? permute(S, y, swap01, loc) : y;
}
