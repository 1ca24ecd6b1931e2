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
  int *busy_until = arena_alloc(m->arena, (n + 1) * sizeof *busy_until);
  e->slots = arena_alloc(m->arena, (n + 1) * sizeof *e->slots);
  e->nslots = 0;
  e->intermediate_bytes_static = 0;
  for (int k = 0; k < e->nkernels; k++) {
    Kernel *K = &e->kernels[k];
    for (int o = 0; o < K->nouts; o++) {
      INode *t = K->outs[o];
      if (!needs_slot(t)) continue;
      Dim bytes = dim_mul(shape_numel(&t->shape), dim_const(4));
      e->intermediate_bytes_static += bytes.k;
      int s = -1;
      for (int i = 0; i < e->nslots && s < 0; i++)
        if (busy_until[i] < k && e->slots[i].bytes.syms == bytes.syms) s = i;
      if (s < 0) {
        s = e->nslots++;
        e->slots[s].bytes = bytes;
      } else if (e->slots[s].bytes.k < bytes.k) {
        e->slots[s].bytes.k = bytes.k;
      }
      busy_until[s] = last_use[t->id];
      t->slot = s;
    }
  }
  return true;
}
