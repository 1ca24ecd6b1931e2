/* pass_hoist.c — computations on parameters alone move out of the entries into the model's
 * init entry, which runs once when the weights are known: at compile time when they are
 * embedded (compile.c), else when a context opens (runtime/support/ctx.c).  Its results are
 * derived parameters, stored after the loaded ones in the weight blob.  This is how a
 * BatchNorm folds into the preceding convolution (pass_fold.c moves its scale into the
 * weights; this pass computes the scaled weights once) and how a transposed convolution's
 * weights are reordered once instead of per call.
 *
 * Equal computations (the same BatchNorm folding in three entries) share one derived
 * parameter: they are keyed by their structure. */
#include <stdlib.h>
#include <string.h>
#include "passes.h"

typedef struct Hoist {
  Model *m;
  Entry *init;
  char **keys;   /* per derived parameter made so far */
  uint64_t *key_hashes;
  int *params;
  int n, cap;
  INode **clone_from, **clone_to; /* original node -> its clone in the init entry */
  int nclones, capclones;
  int capout;    /* of the init entry's output arrays */
} Hoist;

/* A reshape chain down to a leaf is a view of the weights, not a computation. */
static bool is_view_of_leaf(const INode *n) {
  while (n->op == OP_RESHAPE) n = n->in[0];
  return op_info[n->op].kind == FK_LEAF;
}

/* Structural key of a constant subgraph: op, attributes, shape, and its inputs' keys. */
static void write_key(FILE *f, const INode *n) {
  fprintf(f, "(%s", op_info[n->op].name);
  if (n->op == OP_PARAM) fprintf(f, " p%d", n->index);
  else if (n->op == OP_CONST) n->data ? fprintf(f, " d%p", (const void *)n->data) : fprintf(f, " %a", n->f[0]);
  fprintf(f, " %a %a %x %d", n->f[0], n->f[1], n->axes, n->flag);
  for (int i = 0; i < MAX_RANK; i++) fprintf(f, " %lld", (long long)n->i[i]);
  for (int i = 0; i < n->shape.rank; i++) fprintf(f, " %lldx%x", (long long)n->shape.d[i].k, n->shape.d[i].syms);
  for (int k = 0; k < 3; k++)
    if (n->in[k]) write_key(f, n->in[k]);
  fprintf(f, ")");
}

/* The key, in the arena (out of memory jumps to the compilation's recovery point). */
static char *key_of(Model *m, const INode *n) {
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  if (!f) nnc_out_of_memory("open_memstream for a constant's key");
  write_key(f, n);
  bool ok = fclose(f) == 0 && buf;
  char *key = ok ? arena_strndup(m->arena, buf, len) : NULL; /* buf is freed on any path */
  free(buf);
  if (!key) nnc_out_of_memory("a constant's key of %zu bytes", len);
  return key;
}

/* *items (n of them, `size` bytes each) with room for twice as many, in the arena (the old
 * array stays: 2x the final size at most). */
static void *grow(Model *m, void *items, int n, int *cap, size_t size) {
  *cap = *cap ? 2 * *cap : 16;
  void *t = arena_alloc(m->arena, (size_t)*cap * size);
  if (n) memcpy(t, items, (size_t)n * size);
  return t;
}

static Entry *new_init(Model *m) {
  Entry *e = arena_alloc(m->arena, sizeof *e);
  e->name = "__init";
  return e;
}

static INode *clone(Hoist *H, INode *n) {
  for (int i = 0; i < H->nclones; i++)
    if (H->clone_from[i] == n) return H->clone_to[i];
  INode *c;
  if (n->op == OP_PARAM) {
    c = ir_param(H->m, H->init, n->index, n->loc);
  } else {
    INode *in[3] = {0};
    for (int k = 0; k < 3; k++)
      if (n->in[k]) in[k] = clone(H, n->in[k]);
    c = ir_new(H->m, H->init, n->op, n->dtype, &n->shape, n->loc);
    memcpy(c->f, n->f, sizeof c->f);
    memcpy(c->i, n->i, sizeof c->i);
    c->axes = n->axes;
    c->flag = n->flag;
    c->index = n->index;
    c->data = n->data;
    memcpy(c->in, in, sizeof in);
  }
  if (H->nclones == H->capclones) {
    int cap = H->capclones;
    H->clone_from = grow(H->m, H->clone_from, H->nclones, &cap, sizeof *H->clone_from);
    H->clone_to = grow(H->m, H->clone_to, H->nclones, &H->capclones, sizeof *H->clone_to);
  }
  H->clone_from[H->nclones] = n;
  H->clone_to[H->nclones++] = c;
  return c;
}

/* The init entry's output arrays with room for twice as many (arena memory: old copies stay,
 * 2x the final size at most). */
static void grow_init_outputs(Hoist *H, Entry *e) {
  int cap = H->capout ? 2 * H->capout : 16;
  INode **outs = arena_alloc(H->m->arena, cap * sizeof *outs);
  int *ps = arena_alloc(H->m->arena, cap * sizeof *ps);
  const char **names = arena_alloc(H->m->arena, cap * sizeof *names);
  Shape *shapes = arena_alloc(H->m->arena, cap * sizeof *shapes);
  DType *dts = arena_alloc(H->m->arena, cap * sizeof *dts);
  if (e->nout) {
    memcpy(outs, e->outputs, e->nout * sizeof *outs);
    memcpy(ps, e->out_params, e->nout * sizeof *ps);
    memcpy(names, e->out_names, e->nout * sizeof *names);
    memcpy(shapes, e->out_shapes, e->nout * sizeof *shapes);
    memcpy(dts, e->out_dtypes, e->nout * sizeof *dts);
  }
  e->outputs = outs;
  e->out_params = ps;
  e->out_names = names;
  e->out_shapes = shapes;
  e->out_dtypes = dts;
  H->capout = cap;
}

static void add_init_output(Hoist *H, INode *value, int param) {
  Entry *e = H->init;
  if (e->nout == H->capout) grow_init_outputs(H, e);
  e->outputs[e->nout] = value;
  e->out_params[e->nout] = param;
  e->out_names[e->nout] = H->m->params[param].name;
  e->out_shapes[e->nout] = value->shape;
  e->out_dtypes[e->nout] = DT_F32;
  e->nout++;
}

/* The derived parameter that holds constant node n (made on first sight of its structure). */
static int derive(Hoist *H, INode *n) {
  char *key = key_of(H->m, n);
  uint64_t h = 0xCBF29CE484222325ull; /* FNV-1a: most keys differ here, before any strcmp */
  for (const char *s = key; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001B3ull;
  for (int i = 0; i < H->n; i++)
    if (H->key_hashes[i] == h && !strcmp(H->keys[i], key)) return H->params[i];
  if (!H->init) H->init = new_init(H->m);
  char name[64];
  snprintf(name, sizeof name, "__derived.%d", H->n);
  int64_t shape[MAX_RANK];
  for (int i = 0; i < n->shape.rank; i++) shape[i] = n->shape.d[i].k;
  int p = model_add_param(H->m, name, DT_F32, n->shape.rank, shape, n->loc);
  if (p < 0) unreachable("derived parameter name taken");
  H->m->params[p].derived = true;
  H->nclones = 0; /* clones are per derived parameter; CSE on the init entry merges the rest */
  add_init_output(H, clone(H, n), p);
  if (H->n == H->cap) {
    int cap = H->cap, cap2 = H->cap;
    H->keys = grow(H->m, H->keys, H->n, &cap, sizeof *H->keys);
    H->key_hashes = grow(H->m, H->key_hashes, H->n, &cap2, sizeof *H->key_hashes);
    H->params = grow(H->m, H->params, H->n, &H->cap, sizeof *H->params);
  }
  H->key_hashes[H->n] = h;
  H->keys[H->n] = key;
  H->params[H->n++] = p;
  return p;
}

static void hoist_entry(Hoist *H, Entry *e, Diag *d) {
  ir_count_users(e);
  for (int i = 0; i < e->nnodes; i++) e->nodes[i]->cst = 0;
  for (int i = 0; i < e->nnodes; i++) ir_is_constant(e->nodes[i]);
  /* a constant node is hoisted where a computation that is not constant uses it */
  bool *needed = arena_alloc(H->m->arena, ((size_t)e->nnodes + 1) * sizeof *needed);
  for (int i = 0; i < e->nnodes; i++) {
    INode *n = e->nodes[i];
    if (n->cst == 1) continue;
    for (int k = 0; k < 3; k++)
      if (n->in[k] && n->in[k]->cst == 1) needed[n->in[k]->id] = true;
  }
  for (int i = 0; i < e->nout; i++)
    if (e->outputs[i]->cst == 1) needed[e->outputs[i]->id] = true;
  for (int i = 0; i < e->nnodes; i++) {
    INode *n = e->nodes[i];
    if (!needed[i] || is_view_of_leaf(n) || !shape_is_static(&n->shape) || n->dtype != DT_F32) continue;
    int p = derive(H, n);
    n->op = OP_PARAM; /* the entry now reads the derived parameter */
    n->index = p;
    memset(n->in, 0, sizeof n->in);
    ir_remember_param(H->m, e, n);
  }
  pass_dce(H->m, e, d);
}

bool pass_hoist(Model *m, Entry *unused, Diag *d) {
  Hoist H = {.m = m};
  m->nparams_loaded = model_loaded_params(m);
  for (int i = 0; i < m->nbodies; i++) hoist_entry(&H, m->bodies[i], d);
  for (int i = 0; i < m->nentries; i++) hoist_entry(&H, &m->entries[i], d);
  m->init = H.init;
  if (m->init) {
    pass_cse(m, m->init, d);
    pass_dce(m, m->init, d);
  }
  return true;
}
