/* pass_cse.c — common-subexpression elimination: two nodes with the same op, attributes and
 * (already deduplicated) inputs compute the same tensor; later ones are replaced by the first.
 * Nodes are visited in topological order, so one sweep suffices. */
#include <string.h>
#include "passes.h"

static bool same(const INode *a, const INode *b) {
  if (a->op != b->op || a->dtype != b->dtype || !shape_eq(&a->shape, &b->shape)) return false;
  if (a->op == OP_INPUT) return a->index == b->index;
  if (a->op == OP_SCAN) return a == b; /* each loop has its own body */
  for (int k = 0; k < 3; k++)
    if (a->in[k] != b->in[k]) return false;
  if (a->f[0] != b->f[0] || a->f[1] != b->f[1] || a->axes != b->axes || a->flag != b->flag ||
      a->index != b->index || memcmp(a->i, b->i, sizeof a->i))
    return false;
  if (a->op == OP_CONST) {
    if (!a->data || !b->data) return a->data == b->data;
    Dim n = shape_numel(&a->shape);
    return !memcmp(a->data, b->data, n.k * sizeof(float));
  }
  return true;
}

static uint64_t hash(const INode *n) {
  uint64_t h = n->op * 0x9E3779B97F4A7C15ull;
  for (int k = 0; k < 3; k++) h = (h ^ (uintptr_t)n->in[k]) * 0x100000001B3ull;
  h ^= (uint64_t)n->index * 31 + n->axes * 7 + (uint64_t)n->i[0] * 13;
  return h;
}

bool pass_cse(Model *m, Entry *e, Diag *d) {
  int cap = 1;
  while (cap < 2 * e->nnodes) cap <<= 1;
  INode **table = arena_alloc(m->arena, cap * sizeof *table);
  for (int i = 0; i < e->nnodes; i++) {
    INode *n = e->nodes[i];
    if (n->replaced) continue;
    ir_resolve_inputs(n);
    for (uint64_t h = hash(n) & (cap - 1);; h = (h + 1) & (cap - 1)) {
      if (!table[h]) {
        table[h] = n;
        break;
      }
      if (same(table[h], n)) {
        n->replaced = table[h];
        break;
      }
    }
  }
  ir_replace_uses(e);
  return true;
}
