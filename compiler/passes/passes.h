/* passes.h — the optimization pipeline over one entry's graph IR.  Every pass has the same
 * signature; pipeline.c lists them in order and can print the IR after each. */
#ifndef NNC_PASSES_H
#define NNC_PASSES_H

#include "ir.h"
#include "nnc_model.h"

typedef bool (*PassFn)(Model *m, Entry *e, Diag *d);

bool pass_fold(Model *m, Entry *e, Diag *d);    /* pass_fold.c: constants, identities, matmul transposes */
bool pass_cse(Model *m, Entry *e, Diag *d);     /* pass_cse.c: common subexpressions */
bool pass_dce(Model *m, Entry *e, Diag *d);     /* pass_dce.c: dead nodes */
bool pass_winograd(Model *m, Entry *e, Diag *d); /* pass_winograd.c: Winograd weights for 3x3 convolutions */
bool pass_weight_layout(Model *m, Entry *e, Diag *d); /* pass_weight_layout.c: B^T of x W^T made once */
bool pass_hoist(Model *m, Entry *e, Diag *d);   /* pass_hoist.c: parameter-only work -> init (model-wide; e unused) */
bool pass_fuse(Model *m, Entry *e, Diag *d);    /* pass_fuse.c: kernels */
bool pass_memplan(Model *m, Entry *e, Diag *d); /* pass_memplan.c: workspace slots */
int plan_regions(const Entry *e, nnc_slot *out);                   /* the ABI's regions (out may be NULL): count */
int64_t plan_workspace_bytes(const Entry *e, const int64_t *syms); /* nnc_entry_workspace_size of the plan */

typedef struct Pass {
  const char *name;
  PassFn fn;
  bool model_wide; /* runs once for the model rather than once per entry */
} Pass;
extern const Pass pipeline[];
extern const int pipeline_len;

/* Run the pipeline over every entry; stop after the pass named `until` (NULL: all). */
bool run_pipeline(Model *m, const char *until, Diag *d);

/* Shared helpers. A rewrite marks a node `replaced` by an equivalent one; a replaced node is
 * dead: passes neither rewrite it nor offer it as a replacement (which could close a cycle). */
INode *ir_resolve(INode *n);         /* the end of n's replacement chain */
void ir_resolve_inputs(INode *n);    /* point n's inputs at the ends of their chains */
void ir_replace_uses(Entry *e);      /* rewrite inputs/outputs through INode.replaced */
void ir_count_users(Entry *e);       /* INode.nusers over the live node list */

#endif
