/* vector_row.c — a short row as explicit vectors.
 *
 * A loop marked vector_row (lower.c: a short static innermost loop, such as the output
 * columns of a pooling window or a row of Winograd tiles) whose body only stores is emitted
 * as a few vectors, the last one masked, instead of a loop: LLVM unrolls such a short row
 * and then gathers its stride-2 loads one element at a time.  Every expression in the row is
 * either uniform (it does not depend on the row's variable: computed once, as a scalar) or
 * varying; a varying integer must be affine in the variable (value at the vector's first
 * column + stride * lane), a varying load must read contiguous (stride 1) or every other
 * (stride 2) element, or interleave two contiguous halves, or be a padded column
 * (guarded_column: read masked);
 * a varying store writes contiguous elements, an even/odd pair of columns (interleaved), or
 * elements a fixed stride apart (lane by lane).
 * A row of run-time length (conv.c: a padded copy's row on symbolic sizes; winograd.c: a
 * row of tiles) runs as whole vectors in a loop, its last columns as one masked vector
 * (runtime_row).
 * A row that does not qualify is emitted as a plain loop (loops.c).  The whole blocks of a
 * lane reduction (loops.c) take the same path when their value vectorizes
 * (lane_blocks_as_vectors).  The masked vector loads and stores here serve conv_tile.c too. */
#include <string.h>
#include "cg.h"
#include "target.h"

#define VEC_DEPTH 48   /* deeper expressions are not looked into (not vectorized) */
#define VEC_MEMO 128

typedef struct VecRow VecRow;
struct VecRow {
  int var, lanes;
  LLVMTypeRef vt, it;            /* <lanes x float>, <lanes x i64> */
  int64_t valid;                 /* columns in the current vector */
  LLVMValueRef nvalid;           /* their number at run time (a run-time row's last vector,
                                    masked), or NULL: `valid` */
  LLVMValueRef mask;             /* lane < valid, or NULL when every lane is valid */
  LLVMValueRef end;              /* a run-time row: its end */
  struct { const Lx *x; LLVMValueRef v; } memo[VEC_MEMO];
  int nmemo;
};

static bool varies(const Lx *x, int var, int depth) {
  if (!x) return false;
  if (depth > VEC_DEPTH) return true;
  if (x->k == LX_VAR) return x->var == var;
  return varies(x->a[0], var, depth + 1) || varies(x->a[1], var, depth + 1) || varies(x->a[2], var, depth + 1);
}

/* x = x(var = 0) + *a * (var / 2) + *b * (var % 2) for integer x (the column of a pixel
 * shuffle's or a 2x upsampling's input), or false. */
static bool halves_of(const Lx *x, int var, int64_t *a, int64_t *b, int depth) {
  int64_t a0, b0, a1, b1;
  if (!varies(x, var, depth)) {
    *a = *b = 0;
    return true;
  }
  if (x->k == LX_VAR) { /* var = 2 (var / 2) + var % 2 */
    *a = 2;
    *b = 1;
    return true;
  }
  if (x->k != LX_IBIN || depth > VEC_DEPTH) return false;
  if ((x->op == '/' || x->op == '%') && x->a[0]->k == LX_VAR && x->a[0]->var == var && x->a[1]->k == LX_I && x->a[1]->c == 2) {
    *a = x->op == '/';
    *b = x->op == '%';
    return true;
  }
  if (x->op == '+' || x->op == '-') {
    if (!halves_of(x->a[0], var, &a0, &b0, depth + 1) || !halves_of(x->a[1], var, &a1, &b1, depth + 1)) return false;
    *a = x->op == '+' ? a0 + a1 : a0 - a1;
    *b = x->op == '+' ? b0 + b1 : b0 - b1;
    return true;
  }
  if (x->op == '*' && (x->a[0]->k == LX_I || x->a[1]->k == LX_I)) {
    const Lx *c = x->a[0]->k == LX_I ? x->a[0] : x->a[1], *o = c == x->a[0] ? x->a[1] : x->a[0];
    if (!halves_of(o, var, &a0, &b0, depth + 1)) return false;
    *a = c->c * a0;
    *b = c->c * b0;
    return true;
  }
  return false;
}

/* x = x(var = 0) + *stride * var for integer x, or false: halves (2 stride, stride). */
static bool stride_of(const Lx *x, int var, int64_t *stride, int depth) {
  int64_t a, b;
  if (!halves_of(x, var, &a, &b, depth) || a != 2 * b) return false;
  *stride = b;
  return true;
}

/* A load the row can make as vectors: contiguous or every other element (stride 1 or 2), or
 * interleaved halves (index + var / 2 for even columns, + offset for odd ones). */
static bool vec_load_ok(const Lx *idx, int var) {
  int64_t st, a, b;
  if (stride_of(idx, var, &st, 0)) return st == 1 || st == 2;
  return halves_of(idx, var, &a, &b, 0) && a == 1;
}

static bool is_condition(const Lx *c) {
  return c->k == LX_IBIN && (c->op == '<' || c->op == '=' || c->op == '&');
}

/* x = min(max(y, 0), top) or max(min(y, top), 0) (expr.c clamp, clamp_dim): y and top. */
static bool clamp_of(const Lx *x, Lx **y, Lx **top) {
  if (x->k != LX_IBIN) return false;
  Lx *in = x->a[0], *b = x->a[1];
  if (in->k != LX_IBIN) return false;
  if (x->op == 'm' && in->op == 'M' && in->a[1]->k == LX_I && in->a[1]->c == 0) {
    *y = in->a[0], *top = b;
    return true;
  }
  if (x->op == 'M' && in->op == 'm' && b->k == LX_I && b->c == 0) {
    *y = in->a[0], *top = in->a[1];
    return true;
  }
  return false;
}

/* Is u = top + 1 (a constant, or top written as u - 1)? */
static bool one_past(const Lx *u, const Lx *top) {
  if (u->k == LX_I && top->k == LX_I) return top->c == u->c - 1;
  return top->k == LX_IBIN && top->op == '-' && top->a[0] == u && top->a[1]->k == LX_I && top->a[1]->c == 1;
}

/* Does condition c, a conjunction, include -1 < y and y < top + 1 (*lo, *hi: found)? */
static void find_guard(const Lx *c, const Lx *y, const Lx *top, bool *lo, bool *hi, int depth) {
  if (c->k != LX_IBIN || depth > VEC_DEPTH) return;
  if (c->op == '&') {
    find_guard(c->a[0], y, top, lo, hi, depth + 1);
    find_guard(c->a[1], y, top, lo, hi, depth + 1);
  } else if (c->op == '<') {
    *lo |= c->a[0]->k == LX_I && c->a[0]->c == -1 && c->a[1] == y;
    *hi |= c->a[0] == y && one_past(c->a[1], top);
  }
}

/* A padded column (value.c window_value: a pooling window's point): select(c, b[rest +
 * clamp(y, 0, top)], f) with y every column or every other one and c false wherever y is
 * outside [0, top].  Its vectors read b[rest + y] with those lanes masked (they are not
 * read), instead of gathering the clamped columns one by one. */
typedef struct Guarded {
  Lx *rest, *y, *top;
  int64_t st;
} Guarded;

static bool guarded_column(const Cg *g, const Lx *sel, int var, Guarded *gd) {
  const Lx *ld = sel->a[1], *idx = ld->a[0];
  bool lo = false, hi = false;
  if (ld->k != LX_LOAD || g->le->bufs[ld->buf].dtype != DT_F32 || idx->k != LX_IBIN || idx->op != '+' ||
      varies(idx->a[0], var, 0) || !clamp_of(idx->a[1], &gd->y, &gd->top) || varies(gd->top, var, 0) ||
      !stride_of(gd->y, var, &gd->st, 0) || (gd->st != 1 && gd->st != 2))
    return false;
  gd->rest = idx->a[0];
  find_guard(sel->a[0], gd->y, gd->top, &lo, &hi, 0);
  return lo && hi;
}

static bool vec_value_ok(const Cg *g, const Lx *x, int var, int depth);

static bool vec_cond_ok(const Cg *g, const Lx *c, int var, int depth) {
  int64_t st;
  if (!varies(c, var, depth)) return true;
  if (!is_condition(c)) return vec_value_ok(g, c, var, depth);
  if (c->op == '&') return vec_cond_ok(g, c->a[0], var, depth + 1) && vec_cond_ok(g, c->a[1], var, depth + 1);
  return stride_of(c->a[0], var, &st, depth + 1) && stride_of(c->a[1], var, &st, depth + 1);
}

static bool vec_value_ok(const Cg *g, const Lx *x, int var, int depth) {
  int64_t st;
  if (!varies(x, var, depth)) return true;
  if (depth > VEC_DEPTH) return false;
  switch (x->k) {
  case LX_LOAD: return g->le->bufs[x->buf].dtype == DT_F32 && vec_load_ok(x->a[0], var);
  case LX_ITOF: return stride_of(x->a[0], var, &st, depth + 1);
  case LX_SELECT: {
    Guarded gd;
    return vec_cond_ok(g, x->a[0], var, depth + 1) &&
           (guarded_column(g, x, var, &gd) || vec_value_ok(g, x->a[1], var, depth + 1)) &&
           vec_value_ok(g, x->a[2], var, depth + 1);
  }
  case LX_OP:
    for (int k = 0; k < 3; k++)
      if (x->a[k] && !vec_value_ok(g, x->a[k], var, depth + 1)) return false;
    return op_info[x->op].traits & OPT_VECTOR;
  default: return false;
  }
}

/* Does store b write the element after store a's (a pair of columns of a stride-2 row)? */
static bool pairs_with(const Ls *a, const Ls *b) {
  const Lx *x = b->idx;
  return b->k == LS_STORE && b->buf == a->buf && x->k == LX_IBIN && x->op == '+' && x->a[0] == a->idx &&
         x->a[1]->k == LX_I && x->a[1]->c == 1;
}

/* Is store i of row s the even column of an interleaved pair (stride 2, the next store
 * writing the element after it)? */
static bool pair_at(const Ls *s, int i, int64_t stride) {
  return stride == 2 && i + 1 < s->nbody && pairs_with(s->body[i], s->body[i + 1]);
}

/* Does x load buffer `buf` at an index other than `idx`?  (Vectors would reorder such a read
 * and the row's store: the one lane reads before another lane's store.) */
static bool reads_other(const Lx *x, int buf, const Lx *idx, int depth) {
  if (!x) return false;
  if (depth > VEC_DEPTH) return true;
  if ((x->k == LX_LOAD || x->k == LX_LOADI) && x->buf == buf && x->a[0] != idx) return true; /* idx NULL: any */
  return reads_other(x->a[0], buf, idx, depth + 1) || reads_other(x->a[1], buf, idx, depth + 1) ||
         reads_other(x->a[2], buf, idx, depth + 1);
}

/* Does x load two interleaved halves (halves_of) along var? */
static bool reads_halves(const Lx *x, int var, int depth) {
  int64_t st, a, b;
  if (!x || depth > VEC_DEPTH) return false;
  if (x->k == LX_LOAD && varies(x->a[0], var, depth) && !stride_of(x->a[0], var, &st, 0) && halves_of(x->a[0], var, &a, &b, 0))
    return true;
  return reads_halves(x->a[0], var, depth + 1) || reads_halves(x->a[1], var, depth + 1) ||
         reads_halves(x->a[2], var, depth + 1);
}

/* Does a value of row s load from a buffer the row stores to? */
static bool reads_own_store(const Ls *s) {
  for (int i = 0; i < s->nbody; i++)
    for (int j = 0; j < s->nbody; j++)
      if (reads_other(s->body[j]->val, s->body[i]->buf, NULL, 0)) return true;
  return false;
}

static bool is_runtime_row(const Ls *s) { return s->lo->k != LX_I || s->hi->k != LX_I; }

/* Can loop s run as vectors, and with how many lanes (a power of two >= 4 no wider than the
 * host's, the narrowest that holds the row when it fits in one; the host's for a row of
 * run-time length)? */
int vector_row_lanes(Cg *g, const Ls *s) {
  if (!s->vector_row || s == g->par || s->step->k != LX_I || s->step->c != 1) return 0;
  int host, regs;
  target_host_simd(&host, &regs);
  bool runtime = is_runtime_row(s);
  int64_t n = runtime ? 0 : s->hi->c - s->lo->c;
  /* up to 8 vectors (a stride-2 convolution's input copy: 56 columns after the padding) */
  if (host < 4 || (!runtime && (n < 2 || n > 8 * (int64_t)host))) return 0;
  /* a row narrower than the host's vector computes its chains on idle lanes too, where the
     plain loop lets LLVM vectorize the loop around it (realnvp's tanh over rows of 2 columns
     ran at a quarter of the lanes) */
  if (!runtime && n < host && has_chain_op(g, s)) return 0;
  for (int i = 0; i < s->nbody; i++) /* every vector of halves_of loads starts at an even column */
    if ((runtime || s->lo->c % 2) && reads_halves(s->body[i]->val, s->var, 0)) return 0;
  for (int i = 0; i < s->nbody; i++) {
    const Ls *b = s->body[i];
    int64_t st;
    if (b->k != LS_STORE || g->le->bufs[b->buf].dtype != DT_F32 || !stride_of(b->idx, s->var, &st, 0) ||
        !vec_value_ok(g, b->val, s->var, 0))
      return 0;
    if (pair_at(s, i, st)) { /* an even and an odd column: stored interleaved */
      if (!vec_value_ok(g, s->body[++i]->val, s->var, 0)) return 0;
    } else if (st == 0) {
      return 0; /* every column to one element: the last one stays */
    }
  }
  for (int i = 0; i < s->nbody; i++) /* a column read from a buffer the row writes must be the one written */
    for (int j = 0; j < s->nbody; j++)
      if (reads_other(s->body[j]->val, s->body[i]->buf, s->body[i]->idx, 0)) return 0;
  int lanes = host;
  while (!runtime && lanes > 4 && lanes / 2 >= n) lanes /= 2;
  return lanes;
}

LLVMValueRef lane_constants(Cg *g, LLVMTypeRef elem, int lanes, int64_t mul, int64_t add) {
  LLVMValueRef e[32];
  for (int l = 0; l < lanes; l++) e[l] = LLVMConstInt(elem, (unsigned long long)(mul * l + add), 1);
  return LLVMConstVector(e, (unsigned)lanes);
}

/* The shuffle mask that interleaves lanes [from, from + lanes / 2) of two vectors a, b:
 * a[from], b[from], a[from + 1], b[from + 1], ... */
static LLVMValueRef interleave_lanes(Cg *g, int lanes, int from) {
  LLVMValueRef e[32];
  for (int l = 0; l < lanes; l++) e[l] = LLVMConstInt(g->i32, (unsigned long long)(from + l / 2 + (l % 2) * lanes), 0);
  return LLVMConstVector(e, (unsigned)lanes);
}

/* <lanes x i1>: lane * mul + add < limit */
LLVMValueRef lane_mask(Cg *g, int lanes, int64_t mul, int64_t add, int64_t limit) {
  LLVMValueRef e[32];
  LLVMTypeRef i1 = LLVMInt1TypeInContext(g->ctx);
  for (int l = 0; l < lanes; l++) e[l] = LLVMConstInt(i1, mul * l + add < limit, 0);
  return LLVMConstVector(e, (unsigned)lanes);
}

/* The low min(max(m, 0), lanes) bits of an i64 (lanes <= 32). */
static LLVMValueRef low_bits(Cg *g, LLVMValueRef m, int lanes) {
  LLVMValueRef low = ci64(g, 0), high = ci64(g, lanes);
  m = LLVMBuildSelect(g->b, LLVMBuildICmp(g->b, LLVMIntSLT, m, low, ""), low, m, "");
  m = LLVMBuildSelect(g->b, LLVMBuildICmp(g->b, LLVMIntSGT, m, high, ""), high, m, "");
  return LLVMBuildSub(g->b, LLVMBuildShl(g->b, ci64(g, 1), m, ""), ci64(g, 1), "");
}

/* Bit l of an i64 as lane l of a <lanes x i1> mask. */
static LLVMValueRef bits_mask(Cg *g, LLVMValueRef bits, int lanes) {
  LLVMTypeRef in = LLVMIntTypeInContext(g->ctx, (unsigned)lanes);
  return LLVMBuildBitCast(g->b, LLVMBuildTrunc(g->b, bits, in, ""), LLVMVectorType(LLVMInt1TypeInContext(g->ctx), (unsigned)lanes), "");
}

/* The lanes l of r's vector with l + add < k * (its valid columns) + c, as bits: an integer's
 * low bits (a compare of lane numbers took a dozen instructions a mask; a stride-2 copy's
 * rows, 30 columns, ran a third slower). */
static LLVMValueRef row_bits(Cg *g, const VecRow *r, int64_t add, int64_t k, int64_t c) {
  LLVMValueRef n = r->nvalid ? r->nvalid : ci64(g, r->valid);
  return low_bits(g, LLVMBuildNSWAdd(g->b, LLVMBuildNSWMul(g->b, n, ci64(g, k), ""), ci64(g, c - add), ""), r->lanes);
}

static LLVMValueRef lanes_below(Cg *g, const VecRow *r, int64_t add, int64_t k, int64_t c) {
  return bits_mask(g, row_bits(g, r, add, k, c), r->lanes);
}

static LLVMValueRef masked_mem(Cg *g, const char *name, LLVMTypeRef vt, LLVMValueRef *args, int n) {
  unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
  LLVMTypeRef ty[2] = {vt, g->ptr};
  return LLVMBuildCall2(g->b, LLVMIntrinsicGetType(g->ctx, id, ty, 2), LLVMGetIntrinsicDeclaration(g->mod, id, ty, 2), args, n, "");
}

/* A vector from p (only the lanes of mask, when given: a masked lane is not read). */
LLVMValueRef load_vector(Cg *g, LLVMTypeRef vt, LLVMValueRef p, LLVMValueRef mask, int buf) {
  if (!mask) {
    LLVMValueRef v = LLVMBuildLoad2(g->b, vt, p, "");
    LLVMSetAlignment(v, 4);
    return buffer_access(g, v, buf);
  }
  LLVMValueRef args[] = {p, LLVMConstInt(g->i32, 4, 0), mask, LLVMConstNull(vt)};
  return buffer_access(g, masked_mem(g, "llvm.masked.load", vt, args, 4), buf);
}

/* Vector v of type vt to p (only the lanes of mask, when given); buf: its buffer, for the
 * alias scopes, or -1. */
void store_vector(Cg *g, LLVMTypeRef vt, LLVMValueRef v, LLVMValueRef p, LLVMValueRef mask, int buf) {
  if (mask) {
    LLVMValueRef args[] = {v, p, LLVMConstInt(g->i32, 4, 0), mask};
    buffer_access(g, masked_mem(g, "llvm.masked.store", vt, args, 4), buf);
  } else {
    LLVMSetAlignment(buffer_access(g, LLVMBuildStore(g->b, v, p), buf), 4);
  }
}

static LLVMValueRef vec_splat(Cg *g, VecRow *r, LLVMValueRef v) {
  return splat(g, LLVMTypeOf(v) == g->f32 ? r->vt : r->it, v);
}

/* A varying integer: its value at the first column, plus stride * lane. */
static LLVMValueRef vec_int(Cg *g, VecRow *r, Lx *x) {
  int64_t st = 0;
  stride_of(x, r->var, &st, 0);
  LLVMValueRef base = vec_splat(g, r, emit(g, x));
  return st ? LLVMBuildAdd(g->b, base, lane_constants(g, g->i64, r->lanes, st, 0), "") : base;
}

/* The even elements of the 2 * lanes floats from p, each of the two vectors read with its
 * mask (a stride-2 row's span), as one vector. */
static LLVMValueRef masked_evens(Cg *g, const VecRow *r, LLVMValueRef p, LLVMValueRef lo_mask, LLVMValueRef hi_mask, int buf) {
  LLVMValueRef lo = load_vector(g, r->vt, p, lo_mask, buf);
  LLVMValueRef hi = load_vector(g, r->vt, gep_f32(g, p, ci64(g, r->lanes)), hi_mask, buf);
  return LLVMBuildShuffleVector(g->b, lo, hi, lane_constants(g, g->i32, r->lanes, 2, 0), "");
}

/* The mask of the span's elements [k * lanes, (k + 1) * lanes) of a padded column: those the
 * row has and whose column y0 + e lies in [0, top] (past = top + 1 - y0, before = -y0). */
static LLVMValueRef padded_mask(Cg *g, const VecRow *r, const Guarded *gd, LLVMValueRef past, LLVMValueRef before, int k) {
  LLVMValueRef off = ci64(g, (int64_t)k * r->lanes);
  LLVMValueRef inside = LLVMBuildAnd(g->b, low_bits(g, LLVMBuildNSWSub(g->b, past, off, ""), r->lanes),
                                     LLVMBuildNot(g->b, low_bits(g, LLVMBuildNSWSub(g->b, before, off, ""), r->lanes), ""), "");
  return bits_mask(g, LLVMBuildAnd(g->b, inside, row_bits(g, r, (int64_t)k * r->lanes, gd->st, 1 - gd->st), ""), r->lanes);
}

/* A padded column's load (guarded_column): the span's elements e (column y0 + e) of b[rest +
 * y0 + e] that the row has and that lie in [0, top]; every other element when st = 2. */
static LLVMValueRef guarded_load(Cg *g, VecRow *r, const Lx *ld, const Guarded *gd) {
  LLVMValueRef y0 = emit(g, gd->y), past = LLVMBuildNSWSub(g->b, LLVMBuildNSWAdd(g->b, emit(g, gd->top), ci64(g, 1), ""), y0, "");
  LLVMValueRef before = LLVMBuildNSWSub(g->b, ci64(g, 0), y0, "");
  LLVMValueRef p = gep_f32(g, g->bufs[ld->buf], LLVMBuildNSWAdd(g->b, emit(g, gd->rest), y0, ""));
  LLVMValueRef first = padded_mask(g, r, gd, past, before, 0);
  if (gd->st == 1) return load_vector(g, r->vt, p, first, ld->buf);
  if (!r->nvalid && 2 * r->valid - 1 <= r->lanes) /* the span in one vector */
    return LLVMBuildShuffleVector(g->b, load_vector(g, r->vt, p, first, ld->buf), LLVMGetUndef(r->vt),
                                  lane_constants(g, g->i32, r->lanes, 2, 0), "");
  return masked_evens(g, r, p, first, padded_mask(g, r, gd, past, before, 1), ld->buf);
}

static LLVMValueRef vec_value(Cg *g, VecRow *r, Lx *x);

static LLVMValueRef vec_cond(Cg *g, VecRow *r, Lx *c) {
  if (!is_condition(c)) return LLVMBuildFCmp(g->b, LLVMRealUNE, vec_value(g, r, c), LLVMConstNull(r->vt), "");
  if (c->op == '&') return LLVMBuildAnd(g->b, vec_cond(g, r, c->a[0]), vec_cond(g, r, c->a[1]), "");
  return LLVMBuildICmp(g->b, c->op == '<' ? LLVMIntSLT : LLVMIntEQ, vec_int(g, r, c->a[0]), vec_int(g, r, c->a[1]), "");
}

static LLVMValueRef vec_value_uncached(Cg *g, VecRow *r, Lx *x) {
  if (!varies(x, r->var, 0)) return vec_splat(g, r, emit(g, x));
  switch (x->k) {
  case LX_LOAD: {
    int64_t st = 0, a, b;
    LLVMValueRef p = gep_f32(g, g->bufs[x->buf], emit(g, x->a[0]));
    if (!stride_of(x->a[0], r->var, &st, 0)) { /* halves: even columns from p, odd ones from p + b */
      halves_of(x->a[0], r->var, &a, &b, 0);
      LLVMValueRef even = load_vector(g, r->vt, p, lane_mask(g, r->lanes, 1, 0, (r->valid + 1) / 2), x->buf);
      LLVMValueRef odd = load_vector(g, r->vt, gep_f32(g, p, ci64(g, b)), lane_mask(g, r->lanes, 1, 0, r->valid / 2), x->buf);
      return LLVMBuildShuffleVector(g->b, even, odd, interleave_lanes(g, r->lanes, 0), "");
    }
    if (st == 1) return load_vector(g, r->vt, p, r->mask, x->buf);
    if (r->nvalid) { /* every other element of a span of 2 * valid - 1: the span's part of the
                        2 * lanes elements from p, masked, then their even elements */
      return masked_evens(g, r, p, lanes_below(g, r, 0, 2, -1), lanes_below(g, r, r->lanes, 2, -1), x->buf);
    }
    /* every other element of the span p[0, span): two whole vectors, the first and the last
     * `lanes` elements of the span, then the even elements of both.  Nothing beyond the span
     * is touched; a span shorter than a vector is one masked load.  (Masking the second
     * vector instead, LLVM turned the masked load and shuffle into one scalar load per
     * element: a stride-2 convolution's input copy ran at a scalar copy's speed.) */
    int64_t span = 2 * (r->valid - 1) + 1;
    if (span <= r->lanes)
      return LLVMBuildShuffleVector(g->b, load_vector(g, r->vt, p, lane_mask(g, r->lanes, 1, 0, span), x->buf),
                                    LLVMGetUndef(r->vt), lane_constants(g, g->i32, r->lanes, 2, 0), "");
    LLVMValueRef lo = load_vector(g, r->vt, p, NULL, x->buf);
    LLVMValueRef hi = load_vector(g, r->vt, gep_f32(g, p, ci64(g, span - r->lanes)), NULL, x->buf);
    LLVMValueRef ix[64];
    for (int i = 0; i < r->lanes; i++) {
      int64_t e = 2 * i; /* element e of the span: in lo, or element e - (span - lanes) of hi;
                            lanes past the row's last column are not stored */
      ix[i] = e >= span ? LLVMGetUndef(g->i32)
                        : LLVMConstInt(g->i32, (unsigned long long)(e < r->lanes ? e : r->lanes + e - (span - r->lanes)), 0);
    }
    return LLVMBuildShuffleVector(g->b, lo, hi, LLVMConstVector(ix, (unsigned)r->lanes), "");
  }
  case LX_ITOF: return LLVMBuildSIToFP(g->b, vec_int(g, r, x->a[0]), r->vt, "");
  case LX_SELECT: {
    Guarded gd;
    LLVMValueRef t = guarded_column(g, x, r->var, &gd) ? guarded_load(g, r, x->a[1], &gd) : vec_value(g, r, x->a[1]);
    return LLVMBuildSelect(g->b, vec_cond(g, r, x->a[0]), t, vec_value(g, r, x->a[2]), "");
  }
  case LX_OP: {
    LLVMValueRef a[3] = {0};
    for (int k = 0; k < 3; k++)
      if (x->a[k]) a[k] = vec_value(g, r, x->a[k]);
    g->vec_lanes = r->lanes;
    LLVMValueRef v = emit_scalar_op(g, (Op)x->op, x->f, a);
    g->vec_lanes = 0;
    return v;
  }
  default: unreachable("not a vector row expression");
  }
}

static LLVMValueRef vec_value(Cg *g, VecRow *r, Lx *x) {
  for (int i = 0; i < r->nmemo; i++)
    if (r->memo[i].x == x) return r->memo[i].v;
  LLVMValueRef v = vec_value_uncached(g, r, x);
  if (r->nmemo < VEC_MEMO) r->memo[r->nmemo++] = (typeof(r->memo[0])){x, v};
  return v;
}

LLVMValueRef vector_value(Cg *g, Lx *x, int var, LLVMTypeRef vt, LLVMValueRef mask, const Lx *known, LLVMValueRef v) {
  int lanes = (int)LLVMGetVectorSize(vt);
  VecRow r = {.var = var, .lanes = lanes, .vt = vt, .it = LLVMVectorType(g->i64, (unsigned)lanes), .valid = lanes,
              .mask = mask, .nmemo = 1};
  r.memo[0].x = known;
  r.memo[0].v = v;
  return vec_value(g, &r, x);
}

/* Lanes of v to p[st * lane], those below r's run-time count (a masked scatter). */
static void scatter_vector(Cg *g, const VecRow *r, LLVMValueRef v, LLVMValueRef p, int64_t st, int buf) {
  LLVMValueRef at = lane_constants(g, g->i64, r->lanes, st, 0);
  LLVMValueRef ptrs = LLVMBuildGEP2(g->b, g->f32, p, &at, 1, "");
  LLVMTypeRef ty[2] = {r->vt, LLVMTypeOf(ptrs)};
  unsigned id = LLVMLookupIntrinsicID("llvm.masked.scatter", strlen("llvm.masked.scatter"));
  LLVMValueRef args[] = {v, ptrs, LLVMConstInt(g->i32, 4, 0), lanes_below(g, r, 0, 1, 0)};
  buffer_access(g, LLVMBuildCall2(g->b, LLVMIntrinsicGetType(g->ctx, id, ty, 2), LLVMGetIntrinsicDeclaration(g->mod, id, ty, 2), args, 4, ""), buf);
}

/* The stores of row s for the vector of columns from g->vars[s->var] (r->valid of them). */
static void vector_row_columns(Cg *g, const Ls *s, VecRow *r) {
  int lanes = r->lanes;
  r->nmemo = 0;
  for (int i = 0; i < s->nbody; i++) {
    const Ls *b = s->body[i];
    LLVMValueRef v = vec_value(g, r, b->val), p = gep_f32(g, g->bufs[b->buf], emit(g, b->idx));
    int64_t st = 1;
    stride_of(b->idx, s->var, &st, 0);
    if (st == 1) {
      store_vector(g, r->vt, v, p, r->mask, b->buf);
      continue;
    }
    if (!pair_at(s, i, st) && r->nvalid) { /* elements st apart, below the run-time count */
      scatter_vector(g, r, v, p, st, b->buf);
      continue;
    }
    if (!pair_at(s, i, st)) { /* lane by lane */
      for (int64_t l = 0; l < r->valid; l++)
        LLVMSetAlignment(buffer_access(g, LLVMBuildStore(g->b, LLVMBuildExtractElement(g->b, v, LLVMConstInt(g->i32, (unsigned long long)l, 0), ""),
                                                         gep_f32(g, p, ci64(g, l * st))), b->buf), 4);
      continue;
    }
    /* a pair: lanes (even[0], odd[0], even[1], odd[1], ...) in two vectors */
    LLVMValueRef odd = vec_value(g, r, s->body[++i]->val);
    int64_t n = 2 * r->valid;
    LLVMValueRef first = r->nvalid ? lanes_below(g, r, 0, 2, 0) : n < lanes ? lane_mask(g, lanes, 1, 0, n) : NULL;
    store_vector(g, r->vt, LLVMBuildShuffleVector(g->b, v, odd, interleave_lanes(g, lanes, 0), ""), p, first, b->buf);
    if (n > lanes) /* (a masked last vector: its mask may leave every lane out) */
      store_vector(g, r->vt, LLVMBuildShuffleVector(g->b, v, odd, interleave_lanes(g, lanes, lanes / 2), ""),
                   gep_f32(g, p, ci64(g, lanes)),
                   r->nvalid ? lanes_below(g, r, lanes, 2, 0) : n < 2 * lanes ? lane_mask(g, lanes, 1, lanes, n) : NULL, b->buf);
  }
}

/* The whole vector of row s (g->vec_row) from column j0. */
static void vector_at(Cg *g, const Ls *s, LLVMValueRef j0) {
  int parent = scope_push(g);
  g->vars[s->var] = j0;
  vector_row_columns(g, s, g->vec_row);
  scope_pop(g, parent);
}

/* The vector of row s from column j, masked to the columns before the row's end (r->end). */
static void masked_vector_at(Cg *g, const Ls *s, LLVMValueRef j) {
  VecRow *r = g->vec_row;
  r->nvalid = LLVMBuildNSWSub(g->b, r->end, j, "");
  r->mask = lanes_below(g, r, 0, 1, 0);
  vector_at(g, s, j);
  r->nvalid = r->mask = NULL;
}

/* A block that runs body(g, s, at) when cond holds. */
static void emit_if(Cg *g, LLVMValueRef cond, void (*body)(Cg *, const Ls *, LLVMValueRef), const Ls *s, LLVMValueRef at) {
  LLVMBasicBlockRef then = LLVMAppendBasicBlockInContext(g->ctx, g->fn, "row_vector");
  LLVMBasicBlockRef done = LLVMAppendBasicBlockInContext(g->ctx, g->fn, "row_vector_done");
  LLVMBuildCondBr(g->b, cond, then, done);
  LLVMPositionBuilderAtEnd(g->b, then);
  body(g, s, at);
  LLVMBuildBr(g->b, done);
  LLVMPositionBuilderAtEnd(g->b, done);
}

/* The vectors of a run-time row of n >= lanes columns from lo: the first one, the loop over the
 * other whole ones, then the columns left (fewer than a vector) as one more whole vector
 * ending at the row's end, over columns already stored: they get the same values again,
 * unless the row reads what it stores (then that vector is masked to the columns left).
 * The first vector outside the loop: a row of one or two vectors (a padded copy's row of 30
 * columns, its zero padding) runs no loop, which LLVM would have made a memset or memcpy
 * call; masking every vector instead cost a stride-2 copy half its time again. */
static void runtime_row_vectors(Cg *g, const Ls *s, LLVMValueRef lo, LLVMValueRef hi, LLVMValueRef whole_end) {
  int lanes = g->vec_row->lanes;
  vector_at(g, s, lo);
  counted_loop(g, LLVMBuildNSWAdd(g->b, lo, ci64(g, lanes), ""), whole_end, ci64(g, lanes), vector_at, s);
  LLVMValueRef rest = LLVMBuildICmp(g->b, LLVMIntSLT, whole_end, hi, "");
  if (reads_own_store(s)) emit_if(g, rest, masked_vector_at, s, whole_end);
  else emit_if(g, rest, vector_at, s, LLVMBuildNSWSub(g->b, hi, ci64(g, lanes), ""));
}

/* Columns [lo, hi) of a row of run-time length (a padded copy's row, a row of Winograd
 * tiles on symbolic sizes): whole vectors when it has that many columns
 * (runtime_row_vectors), else one masked vector.  (Vectors of 4, then single columns, for
 * rows shorter than a vector had the row's code seven times in all: symbolic resnet18 took
 * twice as long to compile with its Winograd rows as vectors.) */
static void runtime_row(Cg *g, const Ls *s, int lanes, LLVMValueRef lo, LLVMValueRef hi) {
  VecRow r = {.var = s->var, .lanes = lanes, .vt = LLVMVectorType(g->f32, lanes), .it = LLVMVectorType(g->i64, lanes),
              .valid = lanes, .end = hi};
  LLVMValueRef n = LLVMBuildNSWSub(g->b, hi, lo, "");
  LLVMValueRef whole_end = LLVMBuildNSWAdd(g->b, lo, LLVMBuildAnd(g->b, n, ci64(g, ~(int64_t)(lanes - 1)), ""), "");
  LLVMBasicBlockRef vectors = LLVMAppendBasicBlockInContext(g->ctx, g->fn, "row_vectors");
  LLVMBasicBlockRef shorter = LLVMAppendBasicBlockInContext(g->ctx, g->fn, "row_short");
  LLVMBasicBlockRef done = LLVMAppendBasicBlockInContext(g->ctx, g->fn, "row_done");
  struct VecRow *outer = g->vec_row;
  g->vec_row = &r;
  LLVMBuildCondBr(g->b, LLVMBuildICmp(g->b, LLVMIntSGE, n, ci64(g, lanes), ""), vectors, shorter);
  LLVMPositionBuilderAtEnd(g->b, vectors);
  runtime_row_vectors(g, s, lo, hi, whole_end);
  LLVMBuildBr(g->b, done);
  LLVMPositionBuilderAtEnd(g->b, shorter);
  emit_if(g, LLVMBuildICmp(g->b, LLVMIntSGT, n, ci64(g, 0), ""), masked_vector_at, s, lo);
  LLVMBuildBr(g->b, done);
  LLVMPositionBuilderAtEnd(g->b, done);
  g->vec_row = outer;
}

void emit_vector_row(Cg *g, const Ls *s, int lanes) {
  if (is_runtime_row(s)) {
    runtime_row(g, s, lanes, emit(g, s->lo), emit(g, s->hi));
    return;
  }
  VecRow r = {.var = s->var, .lanes = lanes, .vt = LLVMVectorType(g->f32, lanes), .it = LLVMVectorType(g->i64, lanes)};
  for (int64_t j0 = s->lo->c; j0 < s->hi->c; j0 += lanes) {
    int parent = scope_push(g);
    g->vars[s->var] = ci64(g, j0);
    r.valid = s->hi->c - j0 < lanes ? s->hi->c - j0 : lanes;
    r.mask = r.valid < lanes ? lane_mask(g, lanes, 1, 0, r.valid) : NULL;
    vector_row_columns(g, s, &r);
    scope_pop(g, parent);
  }
}

static void vector_lane_body(Cg *g, const Ls *s, LLVMValueRef i) {
  VecRow *r = g->lane_row;
  g->vars[s->var] = i;
  int parent = scope_push(g);
  r->nmemo = 0;
  LLVMValueRef v = vec_value(g, r, g->lane_update->val);
  LLVMValueRef acc = LLVMBuildLoad2(g->b, r->vt, g->lane_vector, "");
  LLVMBuildStore(g->b, reduce_op(g, g->lane_update->rop, acc, v), g->lane_vector);
  scope_pop(g, parent);
}

/* The whole blocks [lo, end) of a lane reduction (emit_lane_reduction) as vectors, when its
 * value vectorizes as a vector row's does: lane j of one vector accumulator is lane j there,
 * and shuffles combine the lanes pairwise in the same order, so the result is the same.  The
 * SLP vectorizer made two-lane pieces of a maximum's compares and selects (softmax's max over
 * 84 logits ran as 42 of them).  Returns the combined lanes, or NULL (not vectorizable). */
LLVMValueRef lane_blocks_as_vectors(Cg *g, const Ls *s, LLVMValueRef lo, LLVMValueRef end) {
  const Ls *u = g->lane_update;
  if (!vec_value_ok(g, u->val, s->var, 0)) return NULL;
  VecRow r = {.var = s->var, .lanes = REDUCE_LANES, .vt = LLVMVectorType(g->f32, REDUCE_LANES),
              .it = LLVMVectorType(g->i64, REDUCE_LANES), .valid = REDUCE_LANES};
  g->lane_vector = entry_alloca(g, r.vt, "lanes");
  g->vec_lanes = REDUCE_LANES;
  LLVMBuildStore(g->b, reduce_identity(g, u->rop), g->lane_vector);
  g->vec_lanes = 0;
  g->lane_row = &r;
  counted_loop(g, lo, end, ci64(g, REDUCE_LANES), vector_lane_body, s);
  g->lane_row = NULL;
  LLVMValueRef v = LLVMBuildLoad2(g->b, r.vt, g->lane_vector, "");
  for (int w = REDUCE_LANES / 2; w >= 1; w /= 2) { /* lanes [0, w) op= lanes [w, 2w) */
    LLVMValueRef upper = LLVMBuildShuffleVector(g->b, v, LLVMGetUndef(r.vt), lane_constants(g, g->i32, REDUCE_LANES, 1, w), "");
    v = reduce_op(g, u->rop, v, upper);
  }
  return LLVMBuildExtractElement(g->b, v, LLVMConstInt(g->i32, 0, 0), "");
}
