/* index.c — indexing in the evaluator (sema.c): x[i, a:b, ...] of lists at compile time and
 * of tensors — slices (of a static length, or of a symbolic one: ir.c), integers that drop an
 * axis, `none` that adds one, and positions known only when the call runs (checked then). */
#include "builtins.h"
#include "eval.h"
#include "scan.h"

/* t[..., i, ...] at `axis` for an index known only at run time: a scalar tensor (`x[t - 1]` in
 * a scan), or an integer on a symbolic axis (`x[:, -1]` of f32[N, T, D]).  As in torch, a
 * negative index counts from the end; the result is checked against [0, size) when the call
 * runs (a failing call returns an error naming the place).  A gather of one position. */
static INode *index_at_run_time(Sema *S, INode *t, int axis, const Value *v, SrcLoc loc) {
  Model *m = S->m;
  Entry *e = S->e;
  if (!e) return diag_error(S->d, loc, "a tensor is indexed at run time only inside an export"), NULL;
  INode *i = to_tensor(S, v, loc);
  if (!i) return NULL;
  if (i->shape.rank != 0) return diag_error(S->d, loc, "an index must be a scalar (use index_select or gather)"), NULL;
  INode *len = ir_dim_value(m, e, t->shape.d[axis], loc), *zero = ir_fill(m, e, 0, &(Shape){0}, loc);
  INode *neg = ir_binary(m, e, OP_LT, i, zero, loc, S->d);
  i = ir_where(m, e, neg, ir_binary(m, e, OP_ADD, i, len, loc, S->d), i, loc, S->d);
  i = ir_check_index(m, e, i, t->shape.d[axis], "index", loc, S->d);
  if (!i) return NULL;
  Shape one = {.rank = t->shape.rank - axis}, out = t->shape;
  for (int k = 0; k < one.rank; k++) one.d[k] = dim_const(1);
  out.d[axis] = dim_const(1);
  return ir_gather(m, e, t, ir_reshape(m, e, i, &one, loc, S->d), axis, &out, loc, S->d);
}

/* x[:, a:b:s] on a symbolic axis, when the result has a static length: both ends counted
 * from the start (x[:, :2]) or both from the end (x[:, -2:], x[:, -3:-1]).  The positions
 * are gathered, each checked when the call runs: with T = 1, x[:, -2:] is a run-time error
 * naming the place (PyTorch would return the one row; a shape cannot depend on T here).
 * NULL with *handled false when the slice's length would be symbolic. */
static INode *slice_at_run_time(Sema *S, INode *t, int axis, int64_t start, int64_t stop, int64_t step, SrcLoc loc,
                                bool *handled) {
  Model *m = S->m;
  Entry *e = S->e;
  bool from_end = start < 0 && (stop == INT64_MAX || stop <= 0);
  *handled = step > 0 && (from_end || (start >= 0 && stop >= 0 && stop != INT64_MAX));
  if (!*handled) return NULL;
  if (!e) return diag_error(S->d, loc, "a tensor is sliced at run time only inside an export"), NULL;
  int64_t end = from_end && stop == INT64_MAX ? 0 : stop, span = end - start;
  if (span <= 0) return diag_error(S->d, loc, "the slice %lld:%lld along a symbolic dimension is empty", (long long)start,
                                   (long long)stop), NULL;
  int64_t count = (span + step - 1) / step;
  Shape cs = {.rank = 1, .d = {dim_const(count)}};
  INode *first = ir_fill(m, e, (double)start, &(Shape){0}, loc);
  if (from_end) first = ir_binary(m, e, OP_ADD, first, ir_dim_value(m, e, t->shape.d[axis], loc), loc, S->d);
  INode *pos = ir_binary(m, e, OP_MUL, ir_iota(m, e, &cs, 0, loc), ir_fill(m, e, (double)step, &(Shape){0}, loc), loc, S->d);
  pos = ir_check_index(m, e, ir_binary(m, e, OP_ADD, pos, first, loc, S->d), t->shape.d[axis], "slice position", loc, S->d);
  if (!pos) return NULL;
  Shape one = {.rank = t->shape.rank - axis}, out = t->shape;
  for (int k = 0; k < one.rank; k++) one.d[k] = dim_const(1);
  one.d[0] = dim_const(count);
  out.d[axis] = dim_const(count);
  return ir_gather(m, e, t, ir_reshape(m, e, pos, &one, loc, S->d), axis, &out, loc, S->d);
}

/* l[a:b:s] of a list or tuple (x.shape[2:]), with Python's clamping */
static bool slice_list(Sema *S, Scope *sc, const Value *obj, const Node *ix, Value *out) {
  int64_t v[3] = {0, obj->len, 1};
  const Node *part[3] = {ix->lhs, ix->rhs, ix->extra};
  for (int k = 0; k < 3; k++) {
    Value p;
    if (part[k] && (!eval_api(S, sc, part[k], &p) || !to_int(S, &p, part[k]->loc, &v[k]))) return false;
  }
  if (v[2] <= 0) return diag_error(S->d, ix->loc, "a list slice takes a positive step");
  for (int k = 0; k < 2; k++) {
    if (v[k] < 0) v[k] += obj->len;
    v[k] = v[k] < 0 ? 0 : v[k] > obj->len ? obj->len : v[k];
  }
  Value *items = arena_alloc(S->arena, (size_t)(obj->len ? obj->len : 1) * sizeof *items);
  int len = 0;
  for (int64_t i = v[0]; i < v[1]; i += v[2]) items[len++] = obj->items[i];
  *out = (Value){.k = obj->k, .items = items, .len = len};
  return true;
}

/* x[i, a:b, ...] on lists (compile-time) and tensors (slicing; an integer drops the axis). */
bool eval_index(Sema *S, Scope *sc, const Node *n, Value *out) {
  Value obj;
  if (!eval_api(S, sc, n->lhs, &obj)) return false;
  if (obj.k == V_LIST || obj.k == V_TUPLE) {
    Value iv;
    int64_t i;
    if (n->args.len == 1 && n->args.items[0]->kind == N_SLICE) return slice_list(S, sc, &obj, n->args.items[0], out);
    if (n->args.len != 1) return diag_error(S->d, n->loc, "a list takes one integer index or a slice");
    if (!eval_api(S, sc, n->args.items[0], &iv) || !to_int(S, &iv, n->args.items[0]->loc, &i)) return false;
    if (i < 0) i += obj.len;
    if (i < 0 || i >= obj.len)
      return diag_error(S->d, n->args.items[0]->loc, "index %lld out of range for a list of %d", (long long)i, obj.len);
    *out = obj.items[i];
    return true;
  }
  if (obj.k != V_TENSOR) return diag_error(S->d, n->loc, "a %s cannot be indexed", v_kind_name(obj.k));
  INode *t = obj.t;
  int rank = t->shape.rank;
  int axis = 0, nnew = 0, new_at[MAX_RANK]; /* none: a new axis of size 1 before input axis new_at[] */
  uint32_t drop = 0;
  for (int k = 0; k < n->args.len; k++, axis++) {
    const Node *ix = n->args.items[k];
    int64_t start = 0, stop = INT64_MAX, step = 1;
    Value v = {0};
    if (ix->kind != N_SLICE && !eval_api(S, sc, ix, &v)) return false;
    if (ix->kind != N_SLICE && v.k == V_NONE) { /* x[:, none]: unsqueeze */
      if (rank + nnew == MAX_RANK) return diag_error(S->d, ix->loc, "rank would exceed %d", MAX_RANK);
      new_at[nnew++] = axis--;
      continue;
    }
    if (axis >= rank)
      return diag_error(S->d, n->loc, "too many indices for a tensor of rank %d", rank);
    if (ix->kind == N_SLICE) {
      Value v;
      if (ix->lhs && (!eval_api(S, sc, ix->lhs, &v) || !to_int(S, &v, ix->lhs->loc, &start))) return false;
      if (ix->rhs && (!eval_api(S, sc, ix->rhs, &v) || !to_int(S, &v, ix->rhs->loc, &stop))) return false;
      if (ix->extra && (!eval_api(S, sc, ix->extra, &v) || !to_int(S, &v, ix->extra->loc, &step))) return false;
      if (!ix->lhs && !ix->rhs && !ix->extra) continue;
    } else {
      if (v.k == V_DIM && v.dim.syms && is_scan_step(S, &v)) { /* x[:, t] with t a scan's step */
        if (!scan_index(S, t, axis, &v, ix->loc, &t)) return false;
        drop |= 1u << axis;
        continue;
      }
      Dim len = t->shape.d[axis];
      if (v.k == V_TENSOR || (v.k == V_DIM && v.dim.syms) || (v_is_number(&v) && len.syms)) {
        /* x[t - 1] in a scan, x[:, -1] on a symbolic axis: the index is known at run time */
        if (!(t = index_at_run_time(S, t, axis, &v, ix->loc))) return false;
        drop |= 1u << axis;
        continue;
      }
      if (!to_int(S, &v, ix->loc, &start)) return false;
      if (start < -len.k || start >= len.k)
        return diag_error(S->d, ix->loc, "index %lld out of range for dimension %d of size %lld",
                          (long long)start, axis, (long long)len.k);
      if (start < 0) start += len.k;
      stop = start + 1;
      drop |= 1u << axis;
    }
    if (t->shape.d[axis].syms && ix->kind == N_SLICE) {
      bool handled;
      INode *r = slice_at_run_time(S, t, axis, start, stop, step, ix->loc, &handled);
      if (handled) {
        if (!(t = r)) return false;
        continue;
      }
    }
    if (stop == INT64_MAX) stop = t->shape.d[axis].syms ? INT64_MAX : t->shape.d[axis].k;
    t = ir_slice(S->m, S->e, t, axis, start, stop, step, ix->loc, S->d);
    if (!t) return false;
  }
  if (drop || nnew) {
    Shape s = {0};
    for (int i = 0, k = 0; i <= rank; i++) {
      for (; k < nnew && new_at[k] == i; k++) s.d[s.rank++] = dim_const(1);
      if (i < rank && !(drop & (1u << i))) s.d[s.rank++] = t->shape.d[i];
    }
    t = ir_reshape(S->m, S->e, t, &s, n->loc, S->d);
  }
  *out = v_tensor(t);
  return t != NULL;
}
