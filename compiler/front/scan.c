/* scan.c — run-time loops:
 *
 *   scan t in 0..T {
 *     h, c = cell(x[:, t], [h, c])     # h, c defined before the loop: carried state
 *     ys[:, t] = h                      # a per-step output, stacked along the t axis
 *   }
 *
 * The body is analyzed once, into its own entry (the scan body), compiled once and run T
 * times by the SCAN node's kernel — never unrolled.  Variables assigned in the body that
 * exist before it are carried from step to step (their shapes may not change); outer tensors
 * the body reads are captured as inputs; `name[..., t, ...] = value` collects a per-step
 * output, available after the loop with T on that axis.  t is a symbolic dim inside the body:
 * it indexes (x[:, t] needs that axis to be exactly T long) and converts to a tensor. */
#include <string.h>
#include "eval.h"
#include "scan.h"

#define D (S->d)

static void push_node(Sema *S, INode ***v, int *n, int *cap, INode *x) {
  if (*n == *cap) {
    *cap = *cap ? 2 * *cap : 8;
    INode **w = arena_alloc(S->arena, *cap * sizeof *w);
    if (*n) memcpy(w, *v, *n * sizeof *w);
    *v = w;
  }
  (*v)[(*n)++] = x;
}

/* The body input standing for an outer tensor (made on first use). */
static INode *capture(Sema *S, ScanCtx *c, INode *t) {
  if (!c || t->owner == c->body) return t;
  if (t->owner != c->outer) t = capture(S, c->parent, t); /* from further out: through the outer body */
  for (int i = 0; i < c->ncap; i++)
    if (c->outer_nodes[i] == t) return c->inputs[i];
  INode *in = ir_input(S->m, c->body, c->ninputs++, t->dtype, &t->shape, t->loc);
  int n = c->ncap, cap = c->capcap;
  push_node(S, &c->outer_nodes, &n, &cap, t); /* two parallel arrays, one count */
  push_node(S, &c->inputs, &c->ncap, &c->capcap, in);
  return in;
}

bool capture_value(Sema *S, Value *v) {
  if (v->k == V_TENSOR) {
    v->t = capture(S, S->scan, v->t);
    return true;
  }
  if (v->k == V_LIST || v->k == V_TUPLE) {
    Value *items = arena_alloc(S->arena, (v->len + 1) * sizeof *items);
    for (int i = 0; i < v->len; i++) {
      items[i] = v->items[i];
      if (!capture_value(S, &items[i])) return false;
    }
    v->items = items;
  }
  return true;
}

/* x[..., t, ...]: the step's element along `axis`, which must run over the loop's range */
/* The scan (of those around the code) whose step v is, or NULL. */
static ScanCtx *step_of(Sema *S, const Value *v) {
  ScanCtx *c = S->scan;
  if (v->k != V_DIM) return NULL;
  for (; c; c = c->parent)
    if (v->dim.syms == (1u << c->tsym) && v->dim.k == 1) break;
  return c;
}

bool is_scan_step(Sema *S, const Value *v) { return step_of(S, v) != NULL; }

bool scan_index(Sema *S, INode *t, int axis, const Value *index, SrcLoc loc, INode **out) {
  ScanCtx *c = step_of(S, index);
  if (!c) return diag_error(D, loc, "a symbolic dimension is not an index (only a scan's step is)");
  if (!dim_eq(t->shape.d[axis], c->bound)) {
    char a[64], b[64];
    dim_str(S->m, t->shape.d[axis], a, sizeof a);
    dim_str(S->m, c->bound, b, sizeof b);
    return diag_error(D, loc, "the step runs over 0..%s but this axis has size %s", b, a);
  }
  *out = ir_index_dynamic(S->m, S->e, t, axis, index->dim.syms, loc, D);
  return *out != NULL;
}

/* Record (or replace) per-step output `name` of scan c. */
static void add_step(Sema *S, ScanCtx *c, const char *name, int axis, INode *x) {
  for (int i = 0; i < c->nsteps; i++)
    if (!strcmp(c->step_names[i], name)) {
      c->step_values[i] = x;
      return;
    }
  if (c->nsteps == c->capsteps) {
    c->capsteps = c->capsteps ? 2 * c->capsteps : 4;
    const char **n2 = arena_alloc(S->arena, c->capsteps * sizeof *n2);
    int *a2 = arena_alloc(S->arena, c->capsteps * sizeof *a2);
    INode **v2 = arena_alloc(S->arena, c->capsteps * sizeof *v2);
    if (c->nsteps) {
      memcpy(n2, c->step_names, c->nsteps * sizeof *n2);
      memcpy(a2, c->step_axes, c->nsteps * sizeof *a2);
      memcpy(v2, c->step_values, c->nsteps * sizeof *v2);
    }
    c->step_names = n2;
    c->step_axes = a2;
    c->step_values = v2;
  }
  c->step_names[c->nsteps] = name;
  c->step_axes[c->nsteps] = axis;
  c->step_values[c->nsteps++] = x;
}

/* name[:, t] = value inside a scan: a per-step output */
bool assign_step_output(Sema *S, Scope *sc, const Node *target, const Value *v) {
  ScanCtx *c = S->scan;
  if (!c) return diag_error(D, target->loc, "an indexed assignment collects a scan's per-step output; outside a scan, build the tensor instead");
  INode *x = to_tensor(S, v, target->loc);
  if (!x) return false;
  int axis = -1;
  for (int i = 0; i < target->args.len; i++) {
    const Node *ix = target->args.items[i];
    if (ix->kind == N_SLICE && !ix->lhs && !ix->rhs && !ix->extra) continue;
    Value iv;
    if (ix->kind != N_SLICE && eval_api(S, sc, ix, &iv) && iv.k == V_DIM && iv.dim.syms == (1u << c->tsym) &&
        iv.dim.k == 1 && axis < 0) {
      axis = i;
      continue;
    }
    if (D->has_error) return false;
    return diag_error(D, ix->loc, "a per-step output is indexed by the step (%s) and full slices ':' only",
                      S->m->sym_names[c->tsym]);
  }
  if (axis < 0) return diag_error(D, target->loc, "a per-step output must be indexed by the step");
  if (axis > x->shape.rank || target->args.len > x->shape.rank + 1)
    return diag_error(D, target->loc, "the step's axis does not fit a value of rank %d", x->shape.rank);
  const char *name = target->lhs->name;
  for (int i = 0; i < c->nsteps; i++)
    if (!strcmp(c->step_names[i], name) && (c->step_axes[i] != axis || !shape_eq(&c->step_values[i]->shape, &x->shape)))
      return diag_error(D, target->loc, "'%s' is assigned per step with two different layouts", name);
  add_step(S, c, name, axis, x);
  return true;
}

/* Names assigned (as plain names) anywhere in a body. */
static void assigned_names(const NodeList *body, const char **names, int *n, int max) {
  for (int i = 0; i < body->len; i++) {
    const Node *s = body->items[i];
    if (s->kind == N_ASSIGN)
      for (int k = 0; k < s->args.len; k++) {
        if (s->args.items[k]->kind != N_NAME) continue;
        bool seen = false;
        for (int j = 0; j < *n; j++) seen |= !strcmp(names[j], s->args.items[k]->name);
        if (!seen && *n < max) names[(*n)++] = s->args.items[k]->name;
      }
    if (s->kind == N_FOR || s->kind == N_IF || s->kind == N_SCAN) {
      assigned_names(&s->body, names, n, max);
      assigned_names(&s->orelse, names, n, max);
    }
  }
}

static void register_body(Sema *S, Entry *body) {
  Model *m = S->m;
  if (m->nbodies == m->bodies_cap) {
    m->bodies_cap = m->bodies_cap ? 2 * m->bodies_cap : 4;
    Entry **v = arena_alloc(S->arena, m->bodies_cap * sizeof *v);
    if (m->nbodies) memcpy(v, m->bodies, m->nbodies * sizeof *v);
    m->bodies = v;
  }
  m->bodies[m->nbodies++] = body;
}

/* The body entry's signature: inputs (carried, captured), outputs (carried, per step). */
static void finish_body(Sema *S, ScanCtx *c, INode **carried_in, INode **carried_out, const char **names, int nc) {
  Entry *b = c->body;
  b->nin = c->ninputs;
  b->inputs = arena_alloc(S->arena, (b->nin + 1) * sizeof *b->inputs);
  b->in_names = arena_alloc(S->arena, (b->nin + 1) * sizeof *b->in_names);
  for (int i = 0; i < nc; i++) {
    b->inputs[i] = carried_in[i];
    b->in_names[i] = names[i];
  }
  for (int i = 0; i < c->ncap; i++) {
    b->inputs[nc + i] = c->inputs[i];
    b->in_names[nc + i] = "captured";
  }
  b->nout = nc + c->nsteps;
  b->outputs = arena_alloc(S->arena, (b->nout + 1) * sizeof *b->outputs);
  b->out_names = arena_alloc(S->arena, (b->nout + 1) * sizeof *b->out_names);
  b->out_shapes = arena_alloc(S->arena, (b->nout + 1) * sizeof *b->out_shapes);
  b->out_dtypes = arena_alloc(S->arena, (b->nout + 1) * sizeof *b->out_dtypes);
  for (int i = 0; i < b->nout; i++) {
    INode *o = i < nc ? carried_out[i] : c->step_values[i - nc];
    b->outputs[i] = o;
    b->out_names[i] = i < nc ? names[i] : c->step_names[i - nc];
    b->out_shapes[i] = o->shape;
    b->out_dtypes[i] = DT_F32; /* the scan keeps its results in f32 buffers */
  }
}

/* The SCAN node and its results in the outer entry: results[i] for the carried values, then
 * the stacked per-step outputs (with T moved to their axis). */
static bool emit_scan_node(Sema *S, ScanCtx *c, INode **init, int nc, SrcLoc loc, INode **results) {
  Model *m = S->m;
  Entry *e = c->outer;
  INode *pack = NULL;
  int nin = nc + c->ncap;
  for (int i = nin - 1; i >= 0; i--) {
    INode *x = i < nc ? init[i] : c->outer_nodes[i - nc];
    INode *p = ir_new(m, e, OP_PACK, x->dtype, &x->shape, loc);
    p->in[0] = x;
    p->in[1] = pack;
    pack = p;
  }
  INode *scan = ir_new(m, e, OP_SCAN, DT_F32, &(Shape){0}, loc);
  scan->in[0] = pack;
  ScanInfo *info = arena_alloc(S->arena, sizeof *info);
  *info = (ScanInfo){.body = c->body, .bound = c->bound, .tsym = c->tsym, .reverse = c->reverse, .ncarried = nc,
                     .ncaptured = c->ncap, .nsteps = c->nsteps};
  scan->scan = info;
  for (int i = 0; i < nc + c->nsteps; i++) {
    Shape s = c->body->out_shapes[i];
    if (i >= nc) { /* stacked: [T, step shape...] */
      if (s.rank == MAX_RANK) return diag_error(D, loc, "a per-step output of rank %d cannot be stacked", s.rank);
      memmove(s.d + 1, s.d, s.rank * sizeof *s.d);
      s.d[0] = c->bound;
      s.rank++;
      if (!ir_shape_supported(m, &s, loc, D)) return false;
    }
    INode *o = ir_new(m, e, OP_SCAN_OUT, c->body->outputs[i]->dtype, &s, loc);
    o->in[0] = scan;
    o->i[0] = i;
    Value v = v_tensor(o);
    if (i >= nc && c->step_axes[i - nc] != 0) { /* move T from axis 0 to the user's axis */
      int perm[MAX_RANK], a = c->step_axes[i - nc], r = s.rank;
      for (int k = 0, src = 1; k < r; k++) perm[k] = k == a ? 0 : src++;
      v = v_tensor(ir_permute(m, e, o, perm, loc, D));
      if (!v.t) return false;
    }
    results[i] = v.t;
  }
  return true;
}

/* ---- building a scan from C (the LSTM layer) ---- */

ScanCtx *scan_open(Sema *S, Dim bound, bool reverse, INode **init, int nc, INode **carried_in, SrcLoc loc) {
  char sym[64];
  snprintf(sym, sizeof sym, "step#%d", ++S->nscans);
  int tsym = model_sym(S->m, sym);
  if (tsym < 0) return diag_error(D, loc, "too many symbolic dimensions and scans (at most %d)", MAX_SYMS), NULL;
  ScanCtx *c = arena_alloc(S->arena, sizeof *c);
  *c = (ScanCtx){.parent = S->scan, .outer = S->e, .tsym = tsym, .bound = bound, .reverse = reverse};
  c->body = arena_alloc(S->arena, sizeof *c->body);
  char name[160];
  snprintf(name, sizeof name, "%s.scan%d", S->e->name, S->nscans);
  c->body->name = arena_strdup(S->arena, name);
  c->body->loc = loc;
  for (int i = 0; i < nc; i++) {
    init[i] = capture(S, S->scan, init[i]);
    carried_in[i] = ir_input(S->m, c->body, c->ninputs++, init[i]->dtype, &init[i]->shape, loc);
  }
  S->e = c->body;
  S->scan = c;
  return c;
}

/* an outer tensor used in the body being built (NULL stays NULL) */
INode *scan_capture(Sema *S, INode *x) { return x ? capture(S, S->scan, x) : NULL; }

/* the step's slice of an outer tensor along axis (dropped) */
INode *scan_step_of(Sema *S, INode *x, int axis, SrcLoc loc) {
  ScanCtx *c = S->scan;
  x = capture(S, c, x);
  INode *t;
  if (!scan_index(S, x, axis, &(Value){.k = V_DIM, .dim = {1, 1u << c->tsym}}, loc, &t)) return NULL;
  Shape s = {0};
  for (int i = 0; i < t->shape.rank; i++)
    if (i != axis) s.d[s.rank++] = t->shape.d[i];
  return ir_reshape(S->m, S->e, t, &s, loc, D);
}

bool scan_close(Sema *S, ScanCtx *c, INode **init, INode **carried_in, INode **carried_out, int nc,
                INode **steps, const int *axes, int ns, SrcLoc loc, INode **results) {
  S->e = c->outer;
  S->scan = c->parent;
  const char *names[64];
  if (nc > 64) return diag_error(D, loc, "too many carried values");
  for (int i = 0; i < nc; i++) names[i] = "state";
  for (int j = 0; j < ns; j++) {
    char name[32];
    snprintf(name, sizeof name, "output%d", j);
    add_step(S, c, arena_strdup(S->arena, name), axes[j], steps[j]);
  }
  finish_body(S, c, carried_in, carried_out, names, nc);
  register_body(S, c->body);
  return emit_scan_node(S, c, init, nc, loc, results);
}

/* `reversed(0..T)`: the range of a scan from its last step to its first */
static const Node *reversed_range(const Node *n) {
  bool call = n->kind == N_CALL && n->lhs->kind == N_NAME && !strcmp(n->lhs->name, "reversed") && n->args.len == 1;
  return call && n->args.items[0]->kind == N_RANGE ? n->args.items[0] : NULL;
}

bool exec_scan(Sema *S, Scope *sc, const Node *n) {
  if (!S->e) return diag_error(D, n->loc, "scan is only allowed inside fn and export bodies");
  const Node *range = reversed_range(n->rhs);
  bool reverse = range != NULL;
  if (!range) range = n->rhs;
  if (range->kind != N_RANGE) return diag_error(D, n->rhs->loc, "scan runs over a range 0..T (or reversed(0..T))");
  Value lo, hi;
  int64_t start;
  Dim bound;
  if (!eval_api(S, sc, range->lhs, &lo) || !to_int(S, &lo, range->lhs->loc, &start)) return false;
  if (start != 0) return diag_error(D, range->lhs->loc, "scan ranges start at 0");
  if (!eval_api(S, sc, range->rhs, &hi) || !to_dim(S, &hi, range->rhs->loc, &bound)) return false;
  /* the step is a symbol of its own inside the body */
  char sym[96];
  snprintf(sym, sizeof sym, "%s#%d", n->name, ++S->nscans);
  int tsym = model_sym(S->m, sym);
  if (tsym < 0) return diag_error(D, n->loc, "too many symbolic dimensions and scans (at most %d)", MAX_SYMS);
  ScanCtx c = {.parent = S->scan, .outer = S->e, .tsym = tsym, .bound = bound, .reverse = reverse};
  c.body = arena_alloc(S->arena, sizeof *c.body);
  char name[160];
  snprintf(name, sizeof name, "%s.scan%d", S->e->name, S->nscans);
  c.body->name = arena_strdup(S->arena, name);
  c.body->loc = n->loc;
  /* carried: names the body assigns that hold tensors before the loop */
  const char *assigned[256], *names[256];
  int na = 0, nc = 0;
  assigned_names(&n->body, assigned, &na, 256);
  INode *init[256], *carried_in[256], *carried_out[256];
  Scope *body_scope = scope_new(S, sc);
  for (int i = 0; i < na; i++) {
    Value *v = scope_lookup(sc, assigned[i]);
    if (!v) continue;
    if (v->k != V_TENSOR)
      return diag_error(D, n->loc, "'%s' is assigned in the scan but is a %s before it: carried state must be a tensor",
                        assigned[i], v_kind_name(v->k));
    names[nc] = assigned[i];
    init[nc] = capture(S, S->scan, v->t); /* an outer scan's value, seen from this level */
    carried_in[nc] = ir_input(S->m, c.body, c.ninputs++, v->t->dtype, &v->t->shape, n->loc);
    scope_set(S, body_scope, assigned[i], v_tensor(carried_in[nc]));
    nc++;
  }
  scope_set(S, body_scope, n->name, (Value){.k = V_DIM, .dim = {1, 1u << tsym}});
  Entry *outer = S->e;
  S->e = c.body;
  S->scan = &c;
  Value ret = v_none();
  int r = exec_block_api(S, body_scope, &n->body, &ret);
  S->e = outer;
  S->scan = c.parent;
  if (!r) return false;
  if (r == 2) return diag_error(D, n->loc, "return is not allowed inside a scan");
  for (int i = 0; i < nc; i++) {
    Value *v = scope_lookup(body_scope, names[i]);
    INode *t = v && v->k == V_TENSOR ? v->t : NULL;
    if (!t) return diag_error(D, n->loc, "carried '%s' is not a tensor at the end of the step", names[i]);
    if (!shape_eq(&t->shape, &carried_in[i]->shape) || t->dtype != carried_in[i]->dtype) {
      char a[128], b[128];
      return diag_error(D, n->loc, "carried '%s' changes from %s to %s in a step", names[i],
                        shape_str(S->m, carried_in[i]->dtype, &carried_in[i]->shape, a, sizeof a),
                        shape_str(S->m, t->dtype, &t->shape, b, sizeof b));
    }
    carried_out[i] = t;
  }
  if (nc + c.nsteps == 0) return diag_error(D, n->loc, "this scan carries nothing and outputs nothing");
  finish_body(S, &c, carried_in, carried_out, names, nc);
  register_body(S, c.body);
  INode *results[512];
  if (nc + c.nsteps > 512) return diag_error(D, n->loc, "too many carried values and outputs");
  if (!emit_scan_node(S, &c, init, nc, n->loc, results)) return false;
  for (int i = 0; i < nc + c.nsteps; i++)
    scope_set(S, sc, i < nc ? names[i] : c.step_names[i - nc], v_tensor(results[i]));
  return true;
}
