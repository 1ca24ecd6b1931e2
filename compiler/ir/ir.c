/* ir.c — building the graph IR: the model's symbols and parameters, and node constructors
 * that apply each op's shape rule (broadcasting, reductions, matmul, movement ops) and
 * report a mismatch at the source location of the expression that caused it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "fault.h"
#include "ir.h"
#include "scalar.h"

bool shape_eq(const Shape *a, const Shape *b) {
  if (a->rank != b->rank) return false;
  for (int i = 0; i < a->rank; i++)
    if (!dim_eq(a->d[i], b->d[i])) return false;
  return true;
}

Dim shape_numel(Model *m, const Shape *s) {
  Dim n = dim_const(1);
  for (int i = 0; i < s->rank; i++) n = dim_mul(m, n, s->d[i]);
  return n;
}

int64_t shape_static_numel(const Shape *s) {
  int64_t n = 1;
  for (int i = 0; i < s->rank; i++) n *= s->d[i].k;
  return n;
}

bool shape_is_static(const Shape *s) {
  for (int i = 0; i < s->rank; i++)
    if (s->d[i].syms) return false;
  return true;
}

void dim_str(const Model *m, Dim d, char *buf, size_t len) {
  size_t n = 0;
  buf[0] = 0;
  /* a derived symbol's formula in parentheses when multiplied: 2*((H+1)/2), 32*N*(H+8) */
  bool product = d.k != 1 || (d.syms & (d.syms - 1));
  if (d.k != 1 || !d.syms) n += snprintf(buf + n, len - n, "%lld", (long long)d.k);
  for (int i = 0; i < MAX_SYMS && n < len; i++)
    if (d.syms & (1u << i)) {
      const char *name = m ? m->sym_names[i] : "?";
      bool paren = product && strpbrk(name, "+-/");
      n += snprintf(buf + n, len - n, "%s%s%s%s", n ? "*" : "", paren ? "(" : "", name, paren ? ")" : "");
    }
}

const char *shape_str(const Model *m, DType dt, const Shape *s, char *buf, size_t len) {
  size_t n = snprintf(buf, len, "%s[", dt == DT_I64 ? "i64" : "f32");
  for (int i = 0; i < s->rank && n < len; i++) {
    char d[64];
    dim_str(m, s->d[i], d, sizeof d);
    n += snprintf(buf + n, len - n, "%s%s", i ? ", " : "", d);
  }
  if (n < len) snprintf(buf + n, len - n, "]");
  return buf;
}

int model_sym(Model *m, const char *name) {
  for (int i = 0; i < m->nsyms; i++)
    if (!strcmp(m->sym_names[i], name)) return i;
  if (m->nsyms == MAX_SYMS) return -1;
  m->sym_names[m->nsyms] = arena_strdup(m->arena, name);
  return m->nsyms++;
}

const char *model_param_error(int code) {
  return code == PARAM_DUPLICATE ? "is defined twice" : "is too large: more than 2^40 elements";
}

static uint64_t name_hash(const char *s) { /* FNV-1a */
  uint64_t h = 0xCBF29CE484222325ull;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001B3ull;
  return h;
}

/* The slot of `name` in the table of parameter names (open addressing): where it is, or the
 * empty slot where it would go. */
static int *param_slot(const Model *m, const char *name) {
  int mask = m->param_slots_cap - 1;
  for (int s = (int)(name_hash(name) & mask);; s = (s + 1) & mask)
    if (!m->param_slots[s] || !strcmp(m->params[m->param_slots[s] - 1].name, name)) return &m->param_slots[s];
}

/* Keeps the table at most half full: a model of 10,000 layers looks its names up in O(1). */
static void param_slots_grow(Model *m) {
  int cap = m->param_slots_cap ? 2 * m->param_slots_cap : 256;
  m->param_slots = arena_alloc(m->arena, cap * sizeof *m->param_slots);
  m->param_slots_cap = cap;
  for (int i = 0; i < m->nparams; i++) *param_slot(m, m->params[i].name) = i + 1;
}

int model_find_param(const Model *m, const char *name) {
  if (!m->param_slots_cap) return -1;
  return *param_slot(m, name) - 1;
}

int model_loaded_params(const Model *m) {
  int n = 0;
  while (n < m->nparams && !m->params[n].derived) n++;
  return n;
}

bool ir_is_constant(INode *n) {
  if (n->cst) return n->cst == 1;
  bool c;
  if (n->op == OP_PARAM || n->op == OP_CONST) c = true;
  else if (n->op == OP_INPUT || n->op == OP_DIMVAL || op_info[n->op].kind == FK_SCAN) c = false;
  else {
    c = true;
    for (int k = 0; k < 3; k++) /* inputs come first in topological order: memoized already */
      if (n->in[k] && !ir_is_constant(n->in[k])) c = false;
  }
  n->cst = c ? 1 : 2;
  return c;
}

/* Depth-first post-order with an explicit stack (graphs can be deep chains). */
void ir_toposort(Model *m, Entry *e) {
  int n = e->nnodes;
  INode **order = arena_alloc(m->arena, (n + 1) * sizeof *order);
  INode **stack = nnc_xmalloc((size_t)(n + 1) * sizeof *stack);
  int *next = nnc_xmalloc((size_t)(n + 1) * sizeof *next);
  for (int i = 0; i < n; i++) e->nodes[i]->id = i;
  char *state = nnc_xcalloc((size_t)n + 1, 1); /* 0 new, 1 on the stack, 2 placed */
  int placed = 0;
  for (int i = 0; i < n; i++) {
    if (state[i]) continue;
    int sp = 0;
    stack[sp] = e->nodes[i];
    next[sp++] = 0;
    state[i] = 1;
    while (sp) {
      INode *t = stack[sp - 1];
      if (next[sp - 1] < 3) {
        INode *in = t->in[next[sp - 1]++];
        if (in && !state[in->id]) {
          state[in->id] = 1;
          stack[sp] = in;
          next[sp++] = 0;
        }
        continue;
      }
      state[t->id] = 2;
      order[placed++] = t;
      sp--;
    }
  }
  free(stack);
  free(next);
  free(state);
  for (int i = 0; i < n; i++) (e->nodes[i] = order[i])->id = i;
}

int model_add_param(Model *m, const char *name, DType dt, int rank, const int64_t *shape,
                    SrcLoc loc) {
  if (model_find_param(m, name) >= 0) return PARAM_DUPLICATE;
  int64_t count = 1;
  for (int i = 0; i < rank; i++)
    if (shape[i] < 0 || __builtin_mul_overflow(count, shape[i], &count) || count > IR_MAX_STATIC_ELEMENTS)
      return PARAM_TOO_LARGE;
  if (m->nparams == m->params_cap) {
    int cap = m->params_cap ? 2 * m->params_cap : 64;
    Param *p = arena_alloc(m->arena, cap * sizeof *p);
    if (m->nparams) memcpy(p, m->params, m->nparams * sizeof *p);
    m->params = p;
    m->params_cap = cap;
  }
  Param *p = &m->params[m->nparams];
  p->name = arena_strdup(m->arena, name);
  p->dtype = dt;
  p->rank = rank;
  uint64_t n = 1;
  for (int i = 0; i < rank; i++) n *= (uint64_t)(p->shape[i] = shape[i]);
  p->nbytes = n * (dt == DT_I64 ? 8 : 4);
  p->offset = (m->weights_size + 63) & ~(uint64_t)63;
  p->loc = loc;
  m->weights_size = p->offset + p->nbytes;
  m->nparams++;
  if (2 * m->nparams > m->param_slots_cap) param_slots_grow(m);
  else *param_slot(m, p->name) = m->nparams;
  return m->nparams - 1;
}

INode *ir_new(Model *m, Entry *e, Op op, DType dt, const Shape *shape, SrcLoc loc) {
  INode *n = arena_alloc(m->arena, sizeof *n);
  n->op = op;
  n->dtype = dt;
  n->shape = *shape;
  n->loc = loc;
  n->kernel = n->slot = n->out_index = -1;
  n->owner = e;
  if (e->nnodes == e->cap) {
    int cap = e->cap ? 2 * e->cap : 256;
    INode **v = arena_alloc(m->arena, cap * sizeof *v);
    if (e->nnodes) memcpy(v, e->nodes, e->nnodes * sizeof *v);
    e->nodes = v;
    e->cap = cap;
  }
  n->id = e->nnodes;
  e->nodes[e->nnodes++] = n;
  return n;
}

INode *ir_input(Model *m, Entry *e, int index, DType dt, const Shape *s, SrcLoc loc) {
  INode *n = ir_new(m, e, OP_INPUT, dt, s, loc);
  n->index = index;
  return n;
}

/* The entry's PARAM node of parameter `index`, or NULL.  Every PARAM node is remembered when
 * it is made (ir_param, ir_remember_param), so an empty memo slot means none: no scan (a scan
 * per new parameter made building a model of P parameters O(P x nodes)).  A remembered node
 * that a pass has since dropped or moved is looked for once. */
static INode *find_param_node(Model *m, Entry *e, int index) {
  if (index >= e->param_nodes_cap || !e->param_nodes[index]) return NULL;
  INode *n = e->param_nodes[index];
  if (n->id >= 0 && n->id < e->nnodes && e->nodes[n->id] == n && n->op == OP_PARAM && n->index == index) return n;
  for (int i = 0; i < e->nnodes; i++)
    if (e->nodes[i]->op == OP_PARAM && e->nodes[i]->index == index) return e->param_nodes[index] = e->nodes[i];
  return e->param_nodes[index] = NULL;
}

void ir_remember_param(Model *m, Entry *e, INode *n) {
  if (n->index >= e->param_nodes_cap) {
    int cap = e->param_nodes_cap ? e->param_nodes_cap : 64;
    while (cap <= n->index) cap *= 2;
    INode **v = arena_alloc(m->arena, cap * sizeof *v);
    if (e->param_nodes_cap) memcpy(v, e->param_nodes, e->param_nodes_cap * sizeof *v);
    e->param_nodes = v;
    e->param_nodes_cap = cap;
  }
  e->param_nodes[n->index] = n;
}

INode *ir_param(Model *m, Entry *e, int index, SrcLoc loc) {
  INode *n = find_param_node(m, e, index);
  if (!n) {
    const Param *p = &m->params[index];
    Shape s = {.rank = p->rank};
    for (int i = 0; i < p->rank; i++) s.d[i] = dim_const(p->shape[i]);
    n = ir_new(m, e, OP_PARAM, p->dtype, &s, loc);
    n->index = index;
  }
  ir_remember_param(m, e, n);
  return n;
}

INode *ir_fill(Model *m, Entry *e, double v, const Shape *s, SrcLoc loc) {
  INode *n = ir_new(m, e, OP_CONST, DT_F32, s, loc);
  n->f[0] = v;
  return n;
}

INode *ir_const_data(Model *m, Entry *e, const float *data, const Shape *s, SrcLoc loc) {
  INode *n = ir_new(m, e, OP_CONST, DT_F32, s, loc);
  n->data = data;
  return n;
}

/* Sizes are k × a product of distinct symbols (nnc_model.h's nnc_dim): a tensor whose
 * element count holds a symbol twice (f32[T, T]) is sized with the square's symbol, which
 * dim_mul makes here if the model has room for it.  The static factor k is bounded too, so
 * that byte sizes (k × 8 × symbols, at run time) and index arithmetic stay far from int64
 * overflow. */
bool ir_shape_supported(Model *m, const Shape *s, SrcLoc loc, Diag *d) {
  int64_t k = 1;
  char b[160];
  for (int i = 0; i < s->rank; i++)
    if (__builtin_mul_overflow(k, s->d[i].k, &k) || k > IR_MAX_STATIC_ELEMENTS)
      return diag_error(d, loc, "shape %s is too large: more than 2^40 elements (the limit of a tensor's static size)",
                        shape_str(m, DT_F32, s, b, sizeof b));
  shape_numel(m, s); /* makes the squares it needs */
  if (m->syms_full)
    return diag_error(d, loc, "shape %s: more than %d symbolic sizes in the model (squares included); pin some "
                      "with -D", shape_str(m, DT_F32, s, b, sizeof b), MAX_SYMS);
  return true;
}

static INode *shape_error(Model *m, Diag *d, SrcLoc loc, const char *what, const INode *a,
                          const INode *b) {
  char sa[128], sb[128];
  shape_str(m, a->dtype, &a->shape, sa, sizeof sa);
  if (b)
    diag_error(d, loc, "%s: %s and %s", what, sa, shape_str(m, b->dtype, &b->shape, sb, sizeof sb));
  else
    diag_error(d, loc, "%s: %s", what, sa);
  return NULL;
}

/* Broadcast two shapes the NumPy way (right-aligned; a dim of 1 stretches). */
static bool broadcast(const Shape *a, const Shape *b, Shape *out) {
  int r = a->rank > b->rank ? a->rank : b->rank;
  out->rank = r;
  for (int i = 0; i < r; i++) {
    int ia = i - (r - a->rank), ib = i - (r - b->rank);
    Dim da = ia >= 0 ? a->d[ia] : dim_const(1), db = ib >= 0 ? b->d[ib] : dim_const(1);
    if (dim_eq(da, db) || dim_is(db, 1)) out->d[i] = da;
    else if (dim_is(da, 1)) out->d[i] = db;
    else return false;
  }
  return true;
}

INode *ir_unary(Model *m, Entry *e, Op op, INode *a, SrcLoc loc, Diag *d) {
  if (!a) return NULL;
  INode *n = ir_new(m, e, op, DT_F32, &a->shape, loc);
  n->in[0] = a;
  return n;
}

/* a as element type dt, as torch's .long() and .float() convert: values are computed in f32,
 * so to i64 is a truncation toward zero whose node is of dtype i64 (stored as int64 when it
 * is an entry's output: lowering, codegen's emit_store), and to f32 a relabelling. */
INode *ir_convert(Model *m, Entry *e, INode *a, DType dt, SrcLoc loc, Diag *d) {
  if (!a || a->dtype == dt) return a;
  INode *n = ir_unary(m, e, OP_TRUNC, a, loc, d); /* of an i64 (whole) value: the identity */
  n->dtype = dt;
  return n;
}

INode *ir_binary(Model *m, Entry *e, Op op, INode *a, INode *b, SrcLoc loc, Diag *d) {
  if (!a || !b) return NULL;
  Shape s;
  if (!broadcast(&a->shape, &b->shape, &s))
    return shape_error(m, d, loc, "shapes cannot be broadcast together", a, b);
  if (!ir_shape_supported(m, &s, loc, d)) return NULL;
  INode *n = ir_new(m, e, op, DT_F32, &s, loc);
  n->in[0] = a;
  n->in[1] = b;
  return n;
}

INode *ir_where(Model *m, Entry *e, INode *c, INode *a, INode *b, SrcLoc loc, Diag *d) {
  if (!c || !a || !b) return NULL;
  Shape s1, s;
  if (!broadcast(&a->shape, &b->shape, &s1) || !broadcast(&c->shape, &s1, &s))
    return shape_error(m, d, loc, "where: shapes cannot be broadcast together", a, b);
  if (!ir_shape_supported(m, &s, loc, d)) return NULL;
  INode *n = ir_new(m, e, OP_WHERE, DT_F32, &s, loc);
  n->in[0] = c;
  n->in[1] = a;
  n->in[2] = b;
  return n;
}

INode *ir_reduce(Model *m, Entry *e, Op op, INode *a, uint32_t axes, int keepdim, SrcLoc loc,
                 Diag *d) {
  if (!a) return NULL;
  Shape s = {0};
  for (int i = 0; i < a->shape.rank; i++) {
    if (!(axes & (1u << i))) s.d[s.rank++] = a->shape.d[i];
    else if (keepdim) s.d[s.rank++] = dim_const(1);
  }
  INode *n = ir_new(m, e, op, DT_F32, &s, loc);
  n->in[0] = a;
  n->axes = axes;
  n->flag = keepdim;
  return n;
}

/* matmul follows torch.matmul for ranks >= 2: the batch dims (all but the last two)
 * broadcast as NumPy's do, so [g, m, k] @ [N, g, k, n] gives [N, g, m, n]. */
INode *ir_matmul(Model *m, Entry *e, INode *a, INode *b, int ta, int tb, SrcLoc loc, Diag *d) {
  if (!a || !b) return NULL;
  const Shape *sa = &a->shape, *sb = &b->shape;
  if (sa->rank < 2 || sb->rank < 2)
    return shape_error(m, d, loc, "matmul needs operands of rank >= 2", a, b);
  /* GEMMs run on OpenBLAS sgemm, which reads f32 only. */
  if (a->dtype != DT_F32 || b->dtype != DT_F32)
    return shape_error(m, d, loc, "matmul needs f32 operands (an i64 tensor is an index; multiply a one_hot or gather instead)", a, b);
  Dim am = sa->d[sa->rank - 2 + ta], ak = sa->d[sa->rank - 1 - ta];
  Dim bk = sb->d[sb->rank - 2 + tb], bn = sb->d[sb->rank - 1 - tb];
  if (!dim_eq(ak, bk)) return shape_error(m, d, loc, "matmul: inner dimensions differ", a, b);
  Shape ba = {.rank = sa->rank - 2}, bb = {.rank = sb->rank - 2}, s;
  memcpy(ba.d, sa->d, ba.rank * sizeof *ba.d);
  memcpy(bb.d, sb->d, bb.rank * sizeof *bb.d);
  if (!broadcast(&ba, &bb, &s)) return shape_error(m, d, loc, "matmul: batch dimensions cannot be broadcast", a, b);
  s.d[s.rank++] = am;
  s.d[s.rank++] = bn;
  if (!ir_shape_supported(m, &s, loc, d)) return NULL;
  INode *n = ir_new(m, e, OP_MATMUL, DT_F32, &s, loc);
  n->in[0] = a;
  n->in[1] = b;
  n->i[0] = ta;
  n->i[1] = tb;
  return n;
}

INode *ir_reshape(Model *m, Entry *e, INode *a, const Shape *s, SrcLoc loc, Diag *d) {
  if (!a || !ir_shape_supported(m, s, loc, d)) return NULL;
  Dim x = shape_numel(m, &a->shape), y = shape_numel(m, s);
  if (!dim_eq(x, y)) {
    char sb[128];
    diag_error(d, loc, "cannot reshape %s into %s (different number of elements)",
               shape_str(m, a->dtype, &a->shape, (char[128]){0}, 128),
               shape_str(m, a->dtype, s, sb, sizeof sb));
    return NULL;
  }
  if (shape_eq(&a->shape, s)) return a;
  INode *n = ir_new(m, e, OP_RESHAPE, a->dtype, s, loc);
  n->in[0] = a;
  return n;
}

INode *ir_permute(Model *m, Entry *e, INode *a, const int *perm, SrcLoc loc, Diag *d) {
  if (!a) return NULL;
  Shape s = {.rank = a->shape.rank};
  uint32_t seen = 0;
  for (int k = 0; k < s.rank; k++) {
    if (perm[k] < 0 || perm[k] >= s.rank || (seen & (1u << perm[k]))) {
      diag_error(d, loc, "permutation is not a permutation of the %d axes", s.rank);
      return NULL;
    }
    seen |= 1u << perm[k];
    s.d[k] = a->shape.d[perm[k]];
  }
  INode *n = ir_new(m, e, OP_PERMUTE, a->dtype, &s, loc);
  n->in[0] = a;
  for (int k = 0; k < s.rank; k++) n->i[k] = perm[k];
  return n;
}

static INode *slice_node(Model *m, Entry *e, INode *a, int axis, int64_t start, int64_t step, const Shape *s,
                         SrcLoc loc) {
  INode *n = ir_new(m, e, OP_SLICE, a->dtype, s, loc);
  n->in[0] = a;
  n->i[0] = axis;
  n->i[1] = start;
  n->i[2] = step;
  return n;
}

/* a[start::step] or a[start:stop:step] with stop < 0 along a symbolic axis of size T (start
 * >= 0): of length max(0, ceil((T + stop - start) / step)), a derived size that Python's
 * clamping makes 0, not an error, when the slice is empty (x[:, 1:] of a T = 1 sequence).
 * Slices of a static length (both ends from the start, or both from the end) are gathers of
 * checked positions (sema.c slice_at_run_time). */
static INode *slice_symbolic(Model *m, Entry *e, INode *a, int axis, int64_t start, int64_t stop, int64_t step,
                             SrcLoc loc, Diag *d) {
  const int64_t lim = IR_MAX_STATIC_ELEMENTS;
  if (start < 0 || (stop != INT64_MAX && stop >= 0)) {
    diag_error(d, loc, "a slice along a symbolic dimension takes a start >= 0 with no stop or a negative one "
                       "(x[:, 1:], x[:, 2:-1]), or both ends from one side (x[:, :2], x[:, -3:])");
    return NULL;
  }
  if (start > lim || step > lim || (stop != INT64_MAX && stop < -lim)) {
    diag_error(d, loc, "slice bounds too large (at most 2^40)");
    return NULL;
  }
  bool ok;
  int64_t end = stop == INT64_MAX ? 0 : stop;
  Shape s = a->shape;
  s.d[axis] = dim_slice_length(m, a->shape.d[axis], end - start + step - 1, step, loc, d, &ok);
  if (!ok) return NULL;
  if (start == 0 && step == 1 && dim_eq(s.d[axis], a->shape.d[axis])) return a;
  return slice_node(m, e, a, axis, start, step, &s, loc);
}

INode *ir_slice(Model *m, Entry *e, INode *a, int axis, int64_t start, int64_t stop,
                int64_t step, SrcLoc loc, Diag *d) {
  if (!a) return NULL;
  Dim n0 = a->shape.d[axis];
  if (step <= 0) {
    diag_error(d, loc, "slice step must be positive");
    return NULL;
  }
  if (n0.syms) return slice_symbolic(m, e, a, axis, start, stop, step, loc, d);
  int64_t len = n0.k;
  /* Python's clamping of start/stop */
  if (start < 0) start += len;
  if (stop < 0) stop += len;
  start = start < 0 ? 0 : start > len ? len : start;
  stop = stop < start ? start : stop > len ? len : stop;
  if (start == 0 && stop == len && step == 1) return a;
  Shape s = a->shape;
  s.d[axis] = dim_const((stop - start + step - 1) / step);
  return slice_node(m, e, a, axis, start, step, &s, loc);
}

INode *ir_concat(Model *m, Entry *e, INode *a, INode *b, int axis, SrcLoc loc, Diag *d) {
  if (!a || !b) return NULL;
  if (a->shape.rank != b->shape.rank)
    return shape_error(m, d, loc, "cat: tensors of different rank", a, b);
  Shape s = a->shape;
  for (int i = 0; i < s.rank; i++)
    if (i != axis && !dim_eq(a->shape.d[i], b->shape.d[i]))
      return shape_error(m, d, loc, "cat: sizes differ off the concatenation axis", a, b);
  Dim x = a->shape.d[axis], y = b->shape.d[axis];
  if (x.syms != y.syms) /* N + 3 is not a dim of the form k × symbols */
    return shape_error(m, d, loc, "cat: sizes along the axis must have the same symbols", a, b);
  s.d[axis] = (Dim){x.k + y.k, x.syms};
  INode *n = ir_new(m, e, OP_CONCAT, a->dtype, &s, loc);
  n->in[0] = a;
  n->in[1] = b;
  n->i[0] = axis;
  return n;
}

/* The output size of a window along a symbolic axis: floor((padded - span) / stride) + 1 with
 * padded = (in - 1) * input_dilation + 1 + both paddings, a derived symbol (symdim.c) whose
 * run-time value below 1 fails the call, naming the layer. */
static Dim window_out_sym(Model *m, Dim in, const WindowSpec *w, int a, int64_t span, SrcLoc loc, Diag *d,
                          bool *ok) {
  char what[96];
  snprintf(what, sizeof what, "%s: the output %s", w->what, a ? "width" : "height");
  int64_t idil = w->input_dilation[a];
  return dim_derive(m, in, idil, 1 - idil + w->pad[a] + w->pad[a + 2] - span + w->stride[a], w->stride[a], what,
                    loc, d, ok);
}

INode *ir_window(Model *m, Entry *e, INode *x, const WindowSpec *w, SrcLoc loc, Diag *d) {
  if (!x) return NULL;
  if (x->shape.rank < 2) {
    char b[128];
    diag_error(d, loc, "%s needs at least two axes, got %s", w->what, shape_str(m, x->dtype, &x->shape, b, sizeof b));
    return NULL;
  }
  Shape s = x->shape;
  if (s.rank + 2 > MAX_RANK) {
    diag_error(d, loc, "rank would exceed %d", MAX_RANK);
    return NULL;
  }
  for (int a = 0; a < 2; a++) {
    if (w->kernel[a] <= 0 || w->stride[a] <= 0 || w->dilation[a] <= 0 || w->input_dilation[a] <= 0) {
      diag_error(d, loc, "%s: kernel size, stride and dilation must be positive", w->what);
      return NULL;
    }
    /* Every parameter at most 2^40 in size keeps the sizes here and the index arithmetic of
     * lowering (a few such terms summed) inside int64; the padding may be negative (cropping). */
    const int64_t lim = IR_MAX_STATIC_ELEMENTS;
    if (w->kernel[a] > lim || w->stride[a] > lim || w->dilation[a] > lim || w->input_dilation[a] > lim ||
        w->pad[a] > lim || w->pad[a] < -lim || w->pad[a + 2] > lim || w->pad[a + 2] < -lim) {
      diag_error(d, loc, "%s: %s too large (at most 2^40)", w->what, w->params);
      return NULL;
    }
    __int128 in = s.d[s.rank - 2 + a].k;
    __int128 eff = in ? (in - 1) * w->input_dilation[a] + 1 : 0;
    __int128 wspan = (__int128)w->dilation[a] * (w->kernel[a] - 1) + 1;
    if (s.d[s.rank - 2 + a].syms) { /* the size is known at run time: checked then */
      bool ok;
      if (wspan > lim) return diag_error(d, loc, "%s: %s too large (the window spans more than 2^40)", w->what, w->params), NULL;
      s.d[s.rank - 2 + a] = window_out_sym(m, s.d[s.rank - 2 + a], w, a, (int64_t)wspan, loc, d, &ok);
      if (!ok) return NULL;
      continue;
    }
    if (eff > lim || wspan > lim) {
      diag_error(d, loc, "%s: %s too large (the window or the input spans more than 2^40)", w->what, w->params);
      return NULL;
    }
    int64_t span = (int64_t)wspan, padded = (int64_t)eff + w->pad[a] + w->pad[a + 2];
    if (padded < span) {
      diag_error(d, loc, "the window (%lld with dilation) is larger than the padded input (%lld)",
                 (long long)span, (long long)padded);
      return NULL;
    }
    s.d[s.rank - 2 + a] = dim_const((padded - span) / w->stride[a] + 1);
  }
  s.d[s.rank++] = dim_const(w->kernel[0]);
  s.d[s.rank++] = dim_const(w->kernel[1]);
  if (!ir_shape_supported(m, &s, loc, d)) return NULL;
  INode *n = ir_new(m, e, OP_WINDOW, x->dtype, &s, loc);
  n->in[0] = x;
  for (int a = 0; a < 2; a++) {
    n->i[0 + a] = w->stride[a];
    n->i[2 + a] = w->pad[a];
    n->i[4 + a] = w->dilation[a];
    n->i[6 + a] = w->input_dilation[a];
  }
  n->f[0] = w->pad_value;
  n->flag = w->flip;
  return n;
}

INode *ir_resize(Model *m, Entry *e, INode *x, Dim out_h, Dim out_w, int mode,
                 bool align_corners, double scale_h, double scale_w, SrcLoc loc, Diag *d) {
  if (!x) return NULL;
  if ((!out_h.syms && out_h.k <= 0) || (!out_w.syms && out_w.k <= 0)) {
    diag_error(d, loc, "interpolate: output size must be positive");
    return NULL;
  }
  Shape s = x->shape;
  s.d[s.rank - 2] = out_h;
  s.d[s.rank - 1] = out_w;
  if (!ir_shape_supported(m, &s, loc, d)) return NULL;
  INode *n = ir_new(m, e, OP_RESIZE, x->dtype, &s, loc);
  n->in[0] = x;
  n->i[0] = mode;
  n->flag = align_corners;
  n->f[0] = scale_h;
  n->f[1] = scale_w;
  return n;
}

/* Does mask broadcast to `to` without stretching `to` (the scores [..., L, S])? */
static bool broadcasts_to(const Shape *mask, const Shape *to) {
  Shape out;
  return mask->rank <= to->rank && broadcast(to, mask, &out) && shape_eq(&out, to);
}

INode *ir_attention(Model *m, Entry *e, INode *q, INode *kv, INode *mask, double scale, bool causal, SrcLoc loc,
                    Diag *d) {
  if (!q || !kv) return NULL;
  int r = q->shape.rank;
  if (r < 2 || kv->shape.rank != r || q->shape.d[r - 1].syms || kv->shape.d[r - 1].syms ||
      kv->shape.d[r - 1].k < q->shape.d[r - 1].k)
    return shape_error(m, d, loc, "attention needs query [..., L, E] and key-value [..., S, E + Ev]", q, kv);
  for (int i = 0; i < r - 2; i++)
    if (!dim_eq(q->shape.d[i], kv->shape.d[i]))
      return shape_error(m, d, loc, "attention: query, key and value must have the same leading dims", q, kv);
  Shape s = q->shape, scores = q->shape;
  s.d[r - 1] = dim_const(kv->shape.d[r - 1].k - q->shape.d[r - 1].k);
  scores.d[r - 1] = kv->shape.d[r - 2];
  if (mask && (mask->dtype != DT_F32 || !broadcasts_to(&mask->shape, &scores)))
    return shape_error(m, d, loc, "attention: the mask must be f32 and broadcast to the scores [..., L, S]", mask, q);
  if (!ir_shape_supported(m, &s, loc, d)) return NULL;
  INode *n = ir_new(m, e, OP_ATTENTION, DT_F32, &s, loc);
  n->in[0] = q;
  n->in[1] = kv;
  n->in[2] = mask;
  n->i[0] = q->shape.d[r - 1].k;
  n->f[0] = scale;
  n->flag = causal;
  return n;
}

INode *ir_roi_align(Model *m, Entry *e, INode *x, INode *boxes, int64_t ph, int64_t pw,
                    double spatial_scale, int64_t sampling_ratio, bool aligned, SrcLoc loc,
                    Diag *d) {
  if (!x || !boxes) return NULL;
  if (x->shape.rank != 4) return shape_error(m, d, loc, "roi_align needs features [N, C, H, W]", x, NULL);
  if (boxes->shape.rank != 2 || !dim_is(boxes->shape.d[1], 5))
    return shape_error(m, d, loc, "roi_align needs boxes [K, 5] (batch index, x1, y1, x2, y2)", boxes, NULL);
  if (ph <= 0 || pw <= 0) {
    diag_error(d, loc, "roi_align: output_size must be positive");
    return NULL;
  }
  if (sampling_ratio > ROI_MAX_SAMPLING_RATIO) { /* its square of samples per bin stays in int64 */
    diag_error(d, loc, "roi_align: sampling_ratio %lld is too large (at most %d)", (long long)sampling_ratio,
               ROI_MAX_SAMPLING_RATIO);
    return NULL;
  }
  Shape s = {.rank = 4, .d = {boxes->shape.d[0], x->shape.d[1], dim_const(ph), dim_const(pw)}};
  if (!ir_shape_supported(m, &s, loc, d)) return NULL;
  /* The kernel reads the features channels-last [N, H, W, C] (i[1] = 1) when C is static: a
   * sample's corners are then runs of channels, which its channel loop reads as vectors. */
  bool channels_last = !x->shape.d[1].syms && !x->shape.d[0].syms;
  if (channels_last) x = ir_permute(m, e, x, (const int[]){0, 2, 3, 1}, loc, d);
  if (!x) return NULL;
  INode *n = ir_new(m, e, OP_ROI_ALIGN, DT_F32, &s, loc);
  n->in[0] = x;
  n->in[1] = boxes;
  n->f[0] = spatial_scale;
  n->i[0] = sampling_ratio;
  n->i[1] = channels_last;
  n->flag = aligned;
  return n;
}

INode *ir_col2im(Model *m, Entry *e, INode *cols, Dim oh, Dim ow, const int64_t stride[2],
                 const int64_t pad[2], const int64_t dilation[2], SrcLoc loc, Diag *d) {
  if (!cols) return NULL;
  const Shape *c = &cols->shape;
  if (c->rank < 4) return shape_error(m, d, loc, "col2im needs [..., KH, KW, H, W]", cols, NULL);
  Shape s = *c;
  s.rank -= 2;
  s.d[s.rank - 2] = oh;
  s.d[s.rank - 1] = ow;
  if (!ir_shape_supported(m, &s, loc, d)) return NULL;
  INode *n = ir_new(m, e, OP_COL2IM, DT_F32, &s, loc);
  n->in[0] = cols;
  for (int a = 0; a < 2; a++) {
    n->i[a] = stride[a];
    n->i[2 + a] = pad[a];
    n->i[4 + a] = dilation[a];
  }
  return n;
}

INode *ir_iota(Model *m, Entry *e, const Shape *s, int axis, SrcLoc loc) {
  INode *n = ir_new(m, e, OP_IOTA, DT_F32, s, loc);
  n->i[0] = axis;
  return n;
}

INode *ir_gather(Model *m, Entry *e, INode *x, INode *index, int axis, const Shape *out, SrcLoc loc, Diag *d) {
  if (!x || !index) return NULL;
  if (x->shape.rank != out->rank || index->shape.rank > out->rank)
    return shape_error(m, d, loc, "gather: the index and the result must have the input's rank", x, index);
  for (int i = 0; i < out->rank; i++)
    if (i != axis && !dim_eq(x->shape.d[i], out->d[i]))
      return shape_error(m, d, loc, "gather: sizes off the gathered axis must match", x, index);
  for (int i = 0; i < index->shape.rank; i++) {
    Dim di = index->shape.d[i], dout = out->d[i + out->rank - index->shape.rank];
    if (!dim_eq(di, dout) && !dim_is(di, 1))
      return shape_error(m, d, loc, "gather: the index does not fit the result shape", x, index);
  }
  INode *n = ir_new(m, e, OP_GATHER, x->dtype, out, loc);
  n->in[0] = x;
  n->in[1] = index;
  n->i[0] = axis;
  return n;
}

int model_check_site(Model *m, SrcLoc loc, const char *what) {
  if (m->nsites == m->sites_cap) {
    int cap = m->sites_cap ? 2 * m->sites_cap : 16;
    const char **s = arena_alloc(m->arena, cap * sizeof *s);
    if (m->nsites) memcpy(s, m->sites, m->nsites * sizeof *s);
    m->sites = s;
    m->sites_cap = cap;
  }
  const SrcFile *f = srcfile_of(m->file, loc);
  const char *path = f && f->path ? f->path : "<source>";
  int n = snprintf(NULL, 0, "%s:%d:%d: %s", path, loc.line, loc.col, what);
  char *text = arena_alloc(m->arena, (size_t)n + 1);
  snprintf(text, (size_t)n + 1, "%s:%d:%d: %s", path, loc.line, loc.col, what);
  m->sites[m->nsites] = text;
  return m->nsites++;
}

INode *ir_dim_value(Model *m, Entry *e, Dim dim, SrcLoc loc) {
  if (!dim.syms) return ir_fill(m, e, (double)dim.k, &(Shape){0}, loc);
  INode *n = ir_new(m, e, OP_DIMVAL, DT_F32, &(Shape){0}, loc);
  n->i[0] = dim.k;
  n->axes = dim.syms;
  return n;
}

/* A constant index is checked now (the run-time check would fail on every call). */
static bool constant_index_ok(const INode *index, Dim size, const char *what, SrcLoc loc, Diag *d) {
  if (size.syms || !shape_is_static(&index->shape)) return true;
  int64_t count = shape_static_numel(&index->shape);
  for (int64_t i = 0; i < (index->data ? count : 1) && count; i++) {
    double v = index->data ? index->data[i] : index->f[0];
    if (!scalar_index_ok(v, (double)size.k)) {
      char why[96];
      nnc_describe_bad_index(why, sizeof why, v, size.k);
      return diag_error(d, loc, "%s holds %s", what, why);
    }
  }
  return true;
}

INode *ir_check_index(Model *m, Entry *e, INode *index, Dim size, const char *what, SrcLoc loc, Diag *d) {
  if (!index) return NULL;
  if (index->op == OP_CONST) return constant_index_ok(index, size, what, loc, d) ? index : NULL;
  INode *n = ir_binary(m, e, OP_CHECK_INDEX, index, ir_dim_value(m, e, size, loc), loc, d);
  if (n) n->f[0] = model_check_site(m, loc, what);
  return n;
}

INode *ir_index_dynamic(Model *m, Entry *e, INode *x, int axis, uint32_t sym, SrcLoc loc, Diag *d) {
  if (!x) return NULL;
  Shape s = x->shape;
  s.d[axis] = dim_const(1);
  INode *n = ir_new(m, e, OP_SLICE, x->dtype, &s, loc);
  n->in[0] = x;
  n->i[0] = axis;
  n->i[1] = 0;
  n->i[2] = 1;
  n->i[3] = sym; /* start = the symbol's value */
  return n;
}
