/* pass_dce.c — dead-code elimination: keep the nodes the entry's outputs depend on (and its
 * inputs, which are part of the signature), in their topological order. */
#include "passes.h"

static void mark(INode *n) {
  if (!n || n->live) return;
  n->live = true;
  for (int k = 0; k < 3; k++) mark(n->in[k]);
}

bool pass_dce(Model *m, Entry *e, Diag *d) {
  for (int i = 0; i < e->nnodes; i++) e->nodes[i]->live = false;
  for (int i = 0; i < e->nout; i++) mark(e->outputs[i]);
  for (int i = 0; i < e->nin; i++) e->inputs[i]->live = true;
  int n = 0;
  for (int i = 0; i < e->nnodes; i++)
    if (e->nodes[i]->live) {
      e->nodes[n] = e->nodes[i];
      e->nodes[n]->id = n; /* dense ids: stable dumps and per-node arrays in later passes */
      n++;
    }
  e->nnodes = n;
  ir_count_users(e);
  return true;
}
