/* pass_memplan.c — the workspace plan of an entry.  Every materialized intermediate lives in
 * a slot of the per-call workspace; a slot is reused by a later tensor once the last kernel
 * reading its previous tenant has run.  Sizes can depend on symbolic dims (k × N), so slots
 * only pair tensors whose sizes have the same symbols, and a slot's size is the largest k of
 * its tenants: the whole plan stays a formula in the symbolic dims, evaluated per call. */
#include "passes.h"

static INode *base_buffer(INode *n) {
  while (n->kernel == -2) n = n->in[0];
  return n;
}

static bool needs_slot(const INode *n) {
  return n->kernel >= 0 && n->out_index < 0;
}

/* A slot for a tensor of `bytes` that lives only while kernel k runs. */
static int temp_slot(Entry *e, Dim bytes, int k, int *busy_until) {
  int s = -1;
  for (int i = 0; i < e->nslots && s < 0; i++)
    if (busy_until[i] < k && e->slots[i].bytes.syms == bytes.syms) s = i;
  if (s < 0) {
    s = e->nslots++;
    e->slots[s].bytes = bytes;
  } else if (e->slots[s].bytes.k < bytes.k) {
    e->slots[s].bytes.k = bytes.k;
  }
  busy_until[s] = k;
  return s;
}

/* A scan kernel needs two state buffers per carried value (the steps alternate between
 * them), a buffer for each per-step output nobody reads, and its body's own workspace: the
 * body's slots, appended in order so that the body finds them at its usual offsets. */
static void plan_scan(Model *m, Entry *e, Kernel *K, int k, int *busy_until) {
  INode *scan = NULL;
  for (int c = 0; c < K->ncovers && !scan; c++)
    if (K->covers[c]->op == OP_SCAN) scan = K->covers[c];
  ScanInfo *sc = scan->scan;
  const Entry *b = sc->body;
  int n = 2 * sc->ncarried + sc->nsteps;
  sc->scratch = arena_alloc(m->arena, (n + 1) * sizeof *sc->scratch);
  for (int i = 0; i < sc->ncarried; i++) {
    Dim bytes = dim_mul(shape_numel(&b->out_shapes[i]), dim_const(4));
    sc->scratch[2 * i] = temp_slot(e, bytes, k, busy_until);
    sc->scratch[2 * i + 1] = temp_slot(e, bytes, k, busy_until);
  }
  for (int j = 0; j < sc->nsteps; j++) {
    bool read = false;
    for (int o = 0; o < K->nouts; o++) read |= K->outs[o]->i[0] == sc->ncarried + j;
    Dim bytes = dim_mul(dim_mul(shape_numel(&b->out_shapes[sc->ncarried + j]), sc->bound), dim_const(4));
    sc->scratch[2 * sc->ncarried + j] = read ? -1 : temp_slot(e, bytes, k, busy_until);
  }
  sc->body_slots = e->nslots;
  for (int i = 0; i < b->nslots; i++) {
    e->slots[e->nslots].bytes = b->slots[i].bytes;
    busy_until[e->nslots++] = 1 << 30; /* never shared: the body lays them out contiguously */
  }
}

bool pass_memplan(Model *m, Entry *e, Diag *d) {
  int n = e->nnodes;
  int *last_use = arena_alloc(m->arena, (n + 1) * sizeof *last_use);
  for (int i = 0; i < n; i++) last_use[i] = e->nodes[i]->kernel;
  for (int k = 0; k < e->nkernels; k++) {
    Kernel *K = &e->kernels[k];
    for (int c = 0; c < K->ncovers; c++)
      for (int j = 0; j < 3; j++) {
        INode *in = K->covers[c]->in[j];
        if (!in) continue;
        INode *b = base_buffer(in);
        if (last_use[b->id] < k) last_use[b->id] = k;
      }
  }
  int extra = 0; /* scans add state buffers and their bodies' slots */
  for (int k = 0; k < e->nkernels; k++)
    for (int c = 0; c < e->kernels[k].ncovers; c++)
      if (e->kernels[k].covers[c]->op == OP_SCAN) {
        ScanInfo *sc = e->kernels[k].covers[c]->scan;
        extra += 2 * sc->ncarried + sc->nsteps + sc->body->nslots;
      }
  int *busy_until = arena_alloc(m->arena, (n + extra + 1) * sizeof *busy_until);
  e->slots = arena_alloc(m->arena, (n + extra + 1) * sizeof *e->slots);
  e->nslots = 0;
  e->intermediate_bytes_static = 0;
  for (int k = 0; k < e->nkernels; k++) {
    Kernel *K = &e->kernels[k];
    if (K->kind == KK_SCAN) plan_scan(m, e, K, k, busy_until);
    if (K->prologue) { /* one batch item of the GEMM's B operand at a time */
      const Shape *s = &K->prologue->shape;
      Dim bytes = dim_mul(dim_mul(s->d[s->rank - 2], s->d[s->rank - 1]), dim_const(4));
      K->prologue->slot = temp_slot(e, bytes, k, busy_until);
    }
    for (int o = 0; o < K->nouts; o++) {
      INode *t = K->outs[o];
      if (!needs_slot(t)) continue;
      Dim bytes = dim_mul(shape_numel(&t->shape), dim_const(4));
      e->intermediate_bytes_static += bytes.k;
      t->slot = temp_slot(e, bytes, k, busy_until);
      busy_until[t->slot] = last_use[t->id];
    }
  }
  return true;
}
