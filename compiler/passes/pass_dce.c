/* pass_dce.c — dead-code elimination: keep the nodes the entry's outputs depend on (and its
 * inputs, which are part of the signature), in their topological order. */
#include "passes.h"

bool pass_dce(Model *m, Entry *e, Diag *d) {
  for (int i = 0; i < e->nnodes; i++) e->nodes[i]->live = false;
  for (int i = 0; i < e->nout; i++) e->outputs[i]->live = true;
  for (int i = 0; i < e->nin; i++) e->inputs[i]->live = true;
  /* reverse topological order: no recursion, however long the graph's chains */
  for (int i = e->nnodes - 1; i >= 0; i--)
    if (e->nodes[i]->live)
      for (int k = 0; k < 3; k++)
        if (e->nodes[i]->in[k]) e->nodes[i]->in[k]->live = true;
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
