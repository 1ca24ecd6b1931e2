/* pipeline.c — the pass pipeline, in order.  `nnc dump --stage=opt` shows the IR after
 * fold/cse/dce; `--stage=fused` after fusion and memory planning. */
#include <string.h>
#include "passes.h"

const Pass pipeline[] = {
  {"fold", pass_fold, false},
  {"cse", pass_cse, false},
  {"dce", pass_dce, false},
  {"winograd", pass_winograd, false},
  {"weight_layout", pass_weight_layout, false},
  {"hoist", pass_hoist, true},
  {"fuse", pass_fuse, false},
  {"memplan", pass_memplan, false},
};
const int pipeline_len = sizeof pipeline / sizeof *pipeline;

/* Each pass over every entry (and the init entry once hoisting made one), in order. */
bool run_pipeline(Model *m, const char *until, Diag *d) {
  for (int p = 0; p < pipeline_len; p++) {
    if (pipeline[p].model_wide) {
      if (!pipeline[p].fn(m, NULL, d)) return false;
    } else { /* scan bodies first: an entry's memory plan includes its bodies' */
      for (int i = 0; i < m->nbodies; i++)
        if (!pipeline[p].fn(m, m->bodies[i], d)) return false;
      for (int i = 0; i < m->nentries; i++)
        if (!pipeline[p].fn(m, &m->entries[i], d)) return false;
      if (m->init && !pipeline[p].fn(m, m->init, d)) return false;
    }
#ifndef NDEBUG
    ir_check(m);
#endif
    if (until && !strcmp(until, pipeline[p].name)) break;
  }
  return true;
}

INode *ir_resolve(INode *n) {
  while (n && n->replaced) n = n->replaced;
  return n;
}

void ir_resolve_inputs(INode *n) {
  for (int k = 0; k < 3; k++) n->in[k] = ir_resolve(n->in[k]);
}

void ir_replace_uses(Entry *e) {
  for (int i = 0; i < e->nnodes; i++)
    ir_resolve_inputs(e->nodes[i]);
  for (int i = 0; i < e->nout; i++) e->outputs[i] = ir_resolve(e->outputs[i]);
}

void ir_count_users(Entry *e) {
  for (int i = 0; i < e->nnodes; i++) e->nodes[i]->nusers = 0;
  for (int i = 0; i < e->nnodes; i++)
    for (int k = 0; k < 3; k++)
      if (e->nodes[i]->in[k]) e->nodes[i]->in[k]->nusers++;
  for (int i = 0; i < e->nout; i++) e->outputs[i]->nusers++;
}
