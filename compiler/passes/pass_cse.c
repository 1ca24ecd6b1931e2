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
  /* float attributes bit for bit: a fill of -0.0 is not one of 0.0 */
  if (memcmp(a->f, b->f, sizeof a->f) || a->axes != b->axes || a->flag != b->flag ||
      a->index != b->index || memcmp(a->i, b->i, sizeof a->i))
    return false;
  if (a->op == OP_CONST) {
    if (!a->data || !b->data) return a->data == b->data;
    return !memcmp(a->data, b->data, shape_static_numel(&a->shape) * sizeof(float));
  }
  return true;
}

/* splitmix64's finalizer: every input bit moves every output bit, so the table's slot (the
 * low bits) depends on all of a node's fields, also the pointers' high bits */
static uint64_t mix(uint64_t h, uint64_t v) {
  h ^= v + 0x9E3779B97F4A7C15ull + (h << 6) + (h >> 2);
  h ^= h >> 30;
  h *= 0xBF58476D1CE4E5B9ull;
  h ^= h >> 27;
  h *= 0x94D049BB133111EBull;
  return h ^ (h >> 31);
}

static uint64_t mix_double(uint64_t h, double x) {
  uint64_t bits;
  memcpy(&bits, &x, sizeof bits);
  return mix(h, bits);
}

/* A hash of what same() compares (a constant's data by content: a program may hold many
 * constants of one shape that differ only in their values, e.g. an unrolled loop's counters). */
static uint64_t hash(const INode *n) {
  uint64_t h = mix(n->op, n->dtype);
  for (int k = 0; k < 3; k++) h = mix(h, (uintptr_t)n->in[k]);
  h = mix(mix(mix(h, (uint64_t)n->index), n->axes), (uint64_t)n->flag);
  h = mix_double(mix_double(h, n->f[0]), n->f[1]);
  for (size_t k = 0; k < sizeof n->i / sizeof n->i[0]; k++) h = mix(h, (uint64_t)n->i[k]);
  for (int k = 0; k < n->shape.rank; k++) h = mix(mix(h, (uint64_t)n->shape.d[k].k), n->shape.d[k].syms);
  if (n->op == OP_CONST && n->data) {
    int64_t c = shape_static_numel(&n->shape);
    for (int64_t k = 0; k < c; k++) {
      uint32_t bits;
      memcpy(&bits, &n->data[k], sizeof bits);
      h = mix(h, bits);
    }
  }
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
