/* builtins_index.c — index-valued and index-using functions: arange, argmax/argmin, topk,
 * one_hot, gather/index_select, cosine_similarity and Gumbel-max sampling.  Indices are f32 tensors
 * holding integers (exact up to 2^24; an i64 entry output stores them as int64, export.c);
 * index inputs may be i64 or f32.
 * All are written with primitives: an iota (each element's index) and the reductions, e.g.
 *   argmax(x) = min over the axis of (x == max(x) or x is NaN ? index : size)
 * which gives torch's first maximal index, NaN counting as the maximum. */
#include <math.h>
#include <string.h>
#include "builtins.h"
#include "nn.h"

/* variants of the handlers that serve two names */
enum { ARGMAX, ARGMIN };
enum { GATHER, INDEX_SELECT };
enum { RAND_UNIFORM, RAND_NORMAL };

#define M (S->m)
#define E (S->e)
#define D (S->d)

static INode *tensor_at(Sema *S, const Args *a, int i, const char *name) {
  const Value *v = arg_get(a, i, name);
  if (!v) {
    diag_error(D, a->loc, "missing argument '%s'", name);
    return NULL;
  }
  return to_tensor(S, v, a->loc);
}

static bool axis_at(Sema *S, const Args *a, int i, int rank, bool required, int64_t def, int *out) {
  const Value *v = arg_get(a, i, "dim");
  if (!v) v = arg_get(a, -1, "axis");
  int64_t ax = def;
  if (!v && required) return diag_error(D, a->loc, "missing argument 'dim'");
  if (v && !to_int(S, v, a->loc, &ax)) return false;
  if (ax < -rank || ax >= (rank ? rank : 1)) return diag_error(D, a->loc, "dim %lld is out of range for rank %d", (long long)ax, rank);
  *out = (int)(ax < 0 ? ax + rank : ax);
  return true;
}

static bool flag_at(const Args *a, int i, const char *name) {
  const Value *v = arg_get(a, i, name);
  return v && v_is_number(v) && v_num(v) != 0;
}

static bool in_entry(Sema *S, const Args *a, const char *name) {
  return E ? true : diag_error(D, a->loc, "%s() can only be used inside fn and export bodies", name);
}

static INode *fill(Sema *S, double v, SrcLoc loc) { return ir_fill(M, E, v, &(Shape){0}, loc); }
static INode *bin(Sema *S, Op op, INode *a, INode *b, SrcLoc loc) { return ir_binary(M, E, op, a, b, loc, D); }
static INode *amin(Sema *S, INode *x, uint32_t axes, int keep, SrcLoc loc) {
  INode *n = ir_unary(M, E, OP_NEG, x, loc, D);
  return ir_unary(M, E, OP_NEG, ir_reduce(M, E, OP_RMAX, n, axes, keep, loc, D), loc, D);
}

/* first index of the maximum (largest) or minimum along `axis`; NaN counts as extreme */
INode *index_of_extreme(Sema *S, INode *x, int axis, bool largest, bool keepdim, SrcLoc loc) {
  if (!x) return NULL;
  if (x->shape.d[axis].syms) return diag_error(D, loc, "argmax/argmin: the axis must be static"), NULL;
  INode *y = largest ? x : ir_unary(M, E, OP_NEG, x, loc, D);
  INode *m = ir_reduce(M, E, OP_RMAX, y, 1u << axis, 1, loc, D);
  INode *hit = bin(S, OP_OR, bin(S, OP_EQ, y, m, loc), bin(S, OP_NE, y, y, loc), loc);
  INode *cand = ir_where(M, E, hit, ir_iota(M, E, &x->shape, axis, loc), fill(S, (double)x->shape.d[axis].k, loc), loc, D);
  return amin(S, cand, 1u << axis, keepdim, loc);
}

/* argmax(input, dim, keepdim=False), argmin(...) */
static bool b_argmax(Sema *S, const Builtin *self, const Args *a, Value *out) {
  const char *name = self->name;
  static const char *names[] = {"input", "dim", "keepdim", "axis"};
  if (!in_entry(S, a, name) || !args_check(S, a, name, names, 4)) return false;
  INode *x = tensor_at(S, a, 0, "input");
  int ax;
  if (!x || !axis_at(S, a, 1, x->shape.rank, true, 0, &ax)) return false;
  *out = v_tensor(index_of_extreme(S, x, ax, self->variant == ARGMAX, flag_at(a, 2, "keepdim"), a->loc));
  return out->t != NULL;
}

INode *topk_node(Sema *S, INode *x, int64_t k, int ax, bool largest, INode **indices, SrcLoc loc) {
  INode *cur = x, *vals = NULL, *idxs = NULL;
  INode *iota = ir_iota(M, E, &x->shape, ax, loc);
  for (int64_t j = 0; j < k; j++) {
    INode *i = index_of_extreme(S, cur, ax, largest, true, loc);
    INode *sel = bin(S, OP_EQ, iota, i, loc);
    INode *v = ir_reduce(M, E, OP_SUM, ir_where(M, E, sel, cur, fill(S, 0, loc), loc, D), 1u << ax, 1, loc, D);
    vals = vals ? ir_concat(M, E, vals, v, ax, loc, D) : v;
    idxs = idxs ? ir_concat(M, E, idxs, i, ax, loc, D) : i;
    cur = ir_where(M, E, sel, fill(S, largest ? -INFINITY : INFINITY, loc), cur, loc, D);
    if (!cur || !vals || !idxs) return NULL;
  }
  *indices = idxs;
  return vals;
}

/* topk(input, k, dim=-1, largest=True, sorted=True) -> (values, indices): k rounds of
 * argmax, each masking the element it found; ties to the lowest index */
static bool b_topk(Sema *S, const Builtin *self, const Args *a, Value *out) {
  const char *name = self->name;
  static const char *names[] = {"input", "k", "dim", "largest", "sorted", "axis"};
  if (!in_entry(S, a, name) || !args_check(S, a, name, names, 6)) return false;
  INode *x = tensor_at(S, a, 0, "input");
  const Value *kv = arg_get(a, 1, "k"), *lv = arg_get(a, 3, "largest");
  int64_t k;
  int ax;
  if (!x || !kv || !to_int(S, kv, a->loc, &k) || !axis_at(S, a, 2, x->shape.rank, false, -1, &ax)) return kv ? false : diag_error(D, a->loc, "missing argument 'k'");
  bool largest = !lv || (v_is_number(lv) && v_num(lv) != 0);
  if (x->shape.d[ax].syms || k < 1 || k > x->shape.d[ax].k || k > 64)
    return diag_error(D, a->loc, "topk: k must be between 1 and the (static) axis size, at most 64");
  INode *idxs, *vals = topk_node(S, x, k, ax, largest, &idxs, a->loc);
  if (!vals) return false;
  Value *items = arena_alloc(S->arena, 2 * sizeof *items);
  items[0] = v_tensor(vals);
  items[1] = v_tensor(idxs);
  *out = (Value){.k = V_TUPLE, .items = items, .len = 2};
  return true;
}

/* one_hot(tensor, num_classes) -> f32[..., num_classes] */
/* an integer argument of arange: a number, or (end only) a symbolic dim */
static bool arange_arg(Sema *S, const Args *a, int i, bool dim_ok, Dim *out) {
  const Value *v = &a->pos[i];
  if (v->k == V_DIM && dim_ok) return *out = v->dim, true;
  if (v->k == V_INT && v->i >= -IR_MAX_STATIC_ELEMENTS && v->i <= IR_MAX_STATIC_ELEMENTS) return *out = dim_const(v->i), true;
  return diag_error(D, a->loc, "arange: argument %d must be an integer%s (of at most 2^40)", i + 1,
                    dim_ok ? " or a symbolic dim" : "");
}

/* arange(end), arange(start, end, step=1): torch.arange's integers, as f32 (indices are f32
 * here); end may be symbolic (arange(T) for a causal mask), then the length is the derived
 * max(0, ceil((end - start) / step)) with step > 0 */
static bool b_arange(Sema *S, const Builtin *self, const Args *a, Value *out) {
  if (a->npos < 1 || a->npos > 3 || a->nkw) return diag_error(D, a->loc, "arange takes (end) or (start, end[, step])");
  Dim start = dim_const(0), end, step = dim_const(1);
  int e = a->npos == 1 ? 0 : 1;
  if (!arange_arg(S, a, e, true, &end) || (e && !arange_arg(S, a, 0, false, &start)) ||
      (a->npos == 3 && !arange_arg(S, a, 2, false, &step)))
    return false;
  if (step.k == 0 || (end.syms && step.k < 0))
    return diag_error(D, a->loc, "arange: the step must be %s", step.k ? "positive with a symbolic end" : "nonzero");
  Dim len;
  if (!end.syms) {
    int64_t span = end.k - start.k, n = span / step.k + (span % step.k != 0 && (span < 0) == (step.k < 0));
    len = dim_const(n < 0 ? 0 : n);
  } else {
    bool ok;
    len = dim_slice_length(M, end, step.k - 1 - start.k, step.k, a->loc, D, &ok);
    if (!ok) return false;
  }
  Shape s = {.rank = 1, .d = {len}};
  if (!ir_shape_supported(M, &s, a->loc, D)) return false;
  INode *y = ir_iota(M, E, &s, 0, a->loc);
  if (step.k != 1) y = ir_binary(M, E, OP_MUL, y, fill(S, (double)step.k, a->loc), a->loc, D);
  if (start.k) y = ir_binary(M, E, OP_ADD, y, fill(S, (double)start.k, a->loc), a->loc, D);
  *out = v_tensor(y);
  return y != NULL;
}

static bool b_one_hot(Sema *S, const Builtin *self, const Args *a, Value *out) {
  const char *name = self->name;
  static const char *names[] = {"tensor", "num_classes"};
  if (!in_entry(S, a, name) || !args_check(S, a, name, names, 2)) return false;
  INode *t = tensor_at(S, a, 0, "tensor");
  const Value *cv = arg_get(a, 1, "num_classes");
  int64_t c;
  if (!t) return false;
  if (!cv || !to_int(S, cv, a->loc, &c) || c <= 0) return diag_error(D, a->loc, "one_hot needs a positive num_classes");
  if (t->shape.rank >= MAX_RANK) return diag_error(D, a->loc, "one_hot: rank would exceed %d", MAX_RANK);
  Shape s = t->shape, u = t->shape;
  s.d[s.rank++] = dim_const(c);
  u.d[u.rank++] = dim_const(1);
  t = ir_check_index(M, E, t, dim_const(c), "one_hot: argument 'tensor'", a->loc, D);
  INode *col = ir_reshape(M, E, t, &u, a->loc, D);
  *out = v_tensor(bin(S, OP_EQ, col, ir_iota(M, E, &s, s.rank - 1, a->loc), a->loc));
  return out->t != NULL;
}

/* check_index(index, size): the index itself, after a run-time check that every element is an
 * integer in [0, size) that fails the call naming this place: the check gather, embeddings
 * and one_hot make, for an index computed in other ways (nnc import writes it) */
static bool b_check_index(Sema *S, const Builtin *self, const Args *a, Value *out) {
  static const char *names[] = {"index", "size"};
  if (!in_entry(S, a, self->name) || !args_check(S, a, self->name, names, 2)) return false;
  INode *ix = tensor_at(S, a, 0, "index");
  const Value *sv = arg_get(a, 1, "size");
  Dim size;
  if (!ix) return false;
  if (!sv) return diag_error(D, a->loc, "missing argument 'size'");
  if (!to_dim(S, sv, a->loc, &size)) return false;
  *out = v_tensor(ir_check_index(M, E, ix, size, "check_index: argument 'index'", a->loc, D));
  return out->t != NULL;
}

/* index_select(input, dim, index [L]); gather(input, dim, index) as torch */
static bool b_gather(Sema *S, const Builtin *self, const Args *a, Value *out) {
  const char *name = self->name;
  static const char *names[] = {"input", "dim", "index", "axis"};
  if (!in_entry(S, a, name) || !args_check(S, a, name, names, 4)) return false;
  INode *x = tensor_at(S, a, 0, "input"), *ix = x ? tensor_at(S, a, 2, "index") : NULL;
  int ax;
  if (!ix || !axis_at(S, a, 1, x->shape.rank, true, 0, &ax)) return false;
  char what[64];
  snprintf(what, sizeof what, "%s: argument 'index'", name);
  if (!(ix = ir_check_index(M, E, ix, x->shape.d[ax], what, a->loc, D))) return false;
  Shape s = x->shape;
  if (self->variant == INDEX_SELECT) {
    if (ix->shape.rank != 1) return diag_error(D, a->loc, "index_select: the index must be 1-D");
    s.d[ax] = ix->shape.d[0];
    Shape u = {.rank = x->shape.rank - ax};
    for (int i = 0; i < u.rank; i++) u.d[i] = i == 0 ? ix->shape.d[0] : dim_const(1);
    ix = ir_reshape(M, E, ix, &u, a->loc, D); /* broadcasts over the axes after dim */
  } else {
    if (ix->shape.rank != x->shape.rank) return diag_error(D, a->loc, "gather: the index must have the input's rank");
    s = ix->shape;
    for (int i = 0; i < s.rank; i++)
      if (i != ax && !dim_eq(s.d[i], x->shape.d[i]))
        return diag_error(D, a->loc, "gather: index sizes off dim must equal the input's (torch allows smaller; nnc does not)");
  }
  *out = v_tensor(ir_gather(M, E, x, ix, ax, &s, a->loc, D));
  return out->t != NULL;
}

/* cosine_similarity(x1, x2, dim=1, eps=1e-8) as ATen: x1.x2 / sqrt(max(|x1|^2 |x2|^2, eps^2)) */
static bool b_cosine(Sema *S, const Builtin *self, const Args *a, Value *out) {
  const char *name = self->name;
  static const char *names[] = {"x1", "x2", "dim", "eps", "axis"};
  if (!in_entry(S, a, name) || !args_check(S, a, name, names, 5)) return false;
  INode *x = tensor_at(S, a, 0, "x1"), *y = x ? tensor_at(S, a, 1, "x2") : NULL;
  if (!y) return false;
  INode *xy = bin(S, OP_MUL, x, y, a->loc);
  int ax;
  if (!xy || !axis_at(S, a, 2, xy->shape.rank, false, 1, &ax)) return false;
  const Value *ev = arg_get(a, 3, "eps");
  double eps = ev && v_is_number(ev) ? v_num(ev) : 1e-8;
  uint32_t axes = 1u << ax;
  INode *w12 = ir_reduce(M, E, OP_SUM, xy, axes, 0, a->loc, D);
  INode *w1 = ir_reduce(M, E, OP_SUM, bin(S, OP_MUL, x, x, a->loc), axes, 0, a->loc, D);
  INode *w2 = ir_reduce(M, E, OP_SUM, bin(S, OP_MUL, y, y, a->loc), axes, 0, a->loc, D);
  INode *n = ir_unary(M, E, OP_SQRT, bin(S, OP_MAX, bin(S, OP_MUL, w1, w2, a->loc), fill(S, eps * eps, a->loc), a->loc), a->loc, D);
  *out = v_tensor(bin(S, OP_DIV, w12, n, a->loc));
  return out->t != NULL;
}

/* gumbel_argmax(logits, gumbel, temperature=1, dim=-1): a categorical sample by the Gumbel-max
 * trick with caller-given noise g ~ Gumbel(0, 1): argmax(logits / T + g) */
static bool b_gumbel(Sema *S, const Builtin *self, const Args *a, Value *out) {
  const char *name = self->name;
  static const char *names[] = {"logits", "gumbel", "temperature", "dim", "axis"};
  if (!in_entry(S, a, name) || !args_check(S, a, name, names, 5)) return false;
  INode *l = tensor_at(S, a, 0, "logits"), *g = l ? tensor_at(S, a, 1, "gumbel") : NULL;
  if (!g) return false;
  const Value *tv = arg_get(a, 2, "temperature");
  INode *t = tv ? to_tensor(S, tv, a->loc) : fill(S, 1.0, a->loc);
  INode *z = bin(S, OP_ADD, bin(S, OP_DIV, l, t, a->loc), g, a->loc);
  int ax;
  if (!z || !axis_at(S, a, 3, z->shape.rank, false, -1, &ax)) return false;
  *out = v_tensor(index_of_extreme(S, z, ax, true, false, a->loc));
  return out->t != NULL;
}

/* ---- random numbers (Philox4x32-10, philox.h): a pure function of (seed, stream, element
 * index), so the same seed gives the same numbers in every build and thread count ---- */

static INode *rand_node(Sema *S, const Shape *s, INode *seed, int normal, int64_t stream, SrcLoc loc) {
  if (!seed) return NULL;
  if (seed->shape.rank != 0) return diag_error(D, loc, "the seed must be a scalar (an integer or an i64[] input)"), NULL;
  INode *n = ir_new(M, E, OP_RAND, DT_F32, s, loc);
  n->in[0] = seed;
  n->i[0] = normal;
  n->i[1] = stream;
  return n;
}

static bool seed_args(Sema *S, const Args *a, INode **seed, int64_t *stream) {
  const Value *sv = arg_get(a, -1, "seed"), *st = arg_get(a, -1, "stream");
  if (!sv) return diag_error(D, a->loc, "random numbers need seed= (an integer or an i64[] input)");
  *seed = to_tensor(S, sv, a->loc);
  *stream = 0;
  return *seed && (!st || to_int(S, st, a->loc, stream));
}

/* rand(dims..., seed=, stream=0) uniform in [0, 1); randn(...) standard normal */
static bool b_rand(Sema *S, const Builtin *self, const Args *a, Value *out) {
  const char *name = self->name;
  if (!in_entry(S, a, name)) return false;
  for (int k = 0; k < a->nkw; k++)
    if (strcmp(a->kwnames[k], "seed") && strcmp(a->kwnames[k], "stream"))
      return diag_error(D, a->loc, "%s has no argument named '%s'", name, a->kwnames[k]);
  Shape s = {.rank = 0};
  const Value *items = a->pos;
  int n = a->npos;
  if (n == 1 && (a->pos[0].k == V_LIST || a->pos[0].k == V_TUPLE)) {
    items = a->pos[0].items;
    n = a->pos[0].len;
  }
  if (n > MAX_RANK) return diag_error(D, a->loc, "rank %d exceeds the maximum of %d", n, MAX_RANK);
  for (int i = 0; i < n; i++)
    if (!to_dim(S, &items[i], a->loc, &s.d[s.rank++])) return false;
  INode *seed = NULL;
  int64_t stream = 0;
  if (!ir_shape_supported(M, &s, a->loc, D) || !seed_args(S, a, &seed, &stream)) return false;
  *out = v_tensor(rand_node(S, &s, seed, self->variant == RAND_NORMAL, stream, a->loc));
  return out->t != NULL;
}

/* sample_categorical(logits, seed=, temperature=1, stream=0, dim=-1): argmax(logits / T + g)
 * with Gumbel noise g = -log(-log(u)) drawn from the seed: a sample of softmax(logits / T) */
static bool b_sample(Sema *S, const Builtin *self, const Args *a, Value *out) {
  const char *name = self->name;
  static const char *names[] = {"logits", "seed", "temperature", "stream", "dim", "axis"};
  if (!in_entry(S, a, name) || !args_check(S, a, name, names, 6)) return false;
  INode *l = tensor_at(S, a, 0, "logits");
  INode *seed;
  int64_t stream = 0;
  if (!l) return false;
  const Value *sv = arg_get(a, 1, "seed"), *st = arg_get(a, 3, "stream"), *tv = arg_get(a, 2, "temperature");
  if (!sv) return diag_error(D, a->loc, "sample_categorical needs seed=");
  seed = to_tensor(S, sv, a->loc);
  if (!seed || (st && !to_int(S, st, a->loc, &stream))) return false;
  INode *u = rand_node(S, &l->shape, seed, 0, stream, a->loc);
  INode *g = ir_unary(M, E, OP_NEG, ir_unary(M, E, OP_LOG, ir_unary(M, E, OP_NEG, ir_unary(M, E, OP_LOG, u, a->loc, D), a->loc, D), a->loc, D), a->loc, D);
  INode *t = tv ? to_tensor(S, tv, a->loc) : fill(S, 1.0, a->loc);
  INode *z = bin(S, OP_ADD, bin(S, OP_DIV, l, t, a->loc), g, a->loc);
  int ax;
  if (!z || !axis_at(S, a, 4, z->shape.rank, false, -1, &ax)) return false;
  *out = v_tensor(index_of_extreme(S, z, ax, true, false, a->loc));
  return out->t != NULL;
}

const Builtin index_builtins[] = {
  {"rand", b_rand, RAND_UNIFORM}, {"randn", b_rand, RAND_NORMAL}, {"sample_categorical", b_sample},
  {"arange", b_arange}, {"argmax", b_argmax, ARGMAX}, {"argmin", b_argmax, ARGMIN}, {"topk", b_topk}, {"one_hot", b_one_hot},
  {"gather", b_gather, GATHER}, {"index_select", b_gather, INDEX_SELECT}, {"cosine_similarity", b_cosine},
  {"gumbel_argmax", b_gumbel}, {"check_index", b_check_index}, {NULL, NULL},
};
