/* pass_memplan.c — the workspace plan of an entry.  Every materialized intermediate (and every
 * scratch buffer: GEMM prologue columns, scan states) is a tenancy: a size and the kernels
 * from the one that writes it to the last that reads it.  Sizes can depend on symbolic dims
 * (k × N), so tenancies are grouped by their symbols; each group gets one region of the
 * workspace and its tenancies offsets in it, placed greedily by size (largest first, each at
 * the lowest offset that no tenancy alive at the same time occupies; Pisarchyk & Lee's
 * "greedy by size", as TFLite plans).  A tenancy becomes a view slot (region, offset), so the
 * plan stays a formula in the symbolic dims, evaluated per call.  `nnc dump --stage=memory`
 * compares it with the lifetime lower bound (memreport.c). */
#include <stdlib.h>

#include "convplan.h"
#include "passes.h"

typedef struct Tenancy {
  Dim bytes;      /* rounded up to MEM_GRANULE × its symbols */
  int first, last;
  int *slot;      /* where the slot index goes */
  int64_t off;    /* placed: offset in the group's region, in units of its symbols */
} Tenancy;

typedef struct Plan {
  Tenancy *t;
  int n;
} Plan;

static INode *base_buffer(INode *n) {
  while (n->kernel == -2) n = n->in[0];
  return n;
}

static bool needs_slot(const INode *n) {
  return n->kernel >= 0 && n->out_index < 0;
}

static int new_slot(Entry *e, Slot s) {
  e->slots[e->nslots] = s;
  return e->nslots++;
}

/* A tensor of `bytes` written by kernel `first` and last read by kernel `last`. */
static void tenant(Entry *e, Plan *p, Dim bytes, int first, int last, int *slot) {
  bytes.k = (bytes.k + MEM_GRANULE - 1) / MEM_GRANULE * MEM_GRANULE;
  p->t[p->n++] = (Tenancy){bytes, first, last, slot, 0};
  e->lifetimes[e->nlifetimes++] = (Lifetime){bytes, first, last, NULL};
}

/* A scan kernel needs two state buffers per carried value (the steps alternate between
 * them), a buffer for each per-step output nobody reads, and its body's own workspace: the
 * body's slots, appended in order as regions so that the body finds them at its usual
 * offsets from the base it is given. */
static void plan_scan(Model *m, Entry *e, Plan *p, Kernel *K, int k) {
  INode *scan = NULL;
  for (int c = 0; c < K->ncovers && !scan; c++)
    if (K->covers[c]->op == OP_SCAN) scan = K->covers[c];
  ScanInfo *sc = scan->scan;
  const Entry *b = sc->body;
  int n = 2 * sc->ncarried + sc->nsteps;
  sc->scratch = arena_alloc(m->arena, (n + 1) * sizeof *sc->scratch);
  for (int i = 0; i < sc->ncarried; i++) {
    Dim bytes = dim_mul(shape_numel(&b->out_shapes[i]), dim_const(4));
    tenant(e, p, bytes, k, k, &sc->scratch[2 * i]);
    tenant(e, p, bytes, k, k, &sc->scratch[2 * i + 1]);
  }
  for (int j = 0; j < sc->nsteps; j++) {
    bool read = false;
    for (int o = 0; o < K->nouts; o++) read |= K->outs[o]->i[0] == sc->ncarried + j;
    Dim bytes = dim_mul(dim_mul(shape_numel(&b->out_shapes[sc->ncarried + j]), sc->bound), dim_const(4));
    sc->scratch[2 * sc->ncarried + j] = -1;
    if (!read) tenant(e, p, bytes, k, k, &sc->scratch[2 * sc->ncarried + j]);
  }
  sc->body_slots = e->nslots;
  for (int i = 0; i < b->nslots; i++) new_slot(e, (Slot){b->slots[i].bytes, -1, dim_const(0)});
  e->lifetimes[e->nlifetimes++] = (Lifetime){dim_const(0), k, k, b};
}

static bool overlap_in_time(const Tenancy *a, const Tenancy *b) { return a->first <= b->last && b->first <= a->last; }

static int by_size_desc(const void *x, const void *y) {
  const Tenancy *a = *(Tenancy *const *)x, *b = *(Tenancy *const *)y;
  if (a->bytes.k != b->bytes.k) return a->bytes.k > b->bytes.k ? -1 : 1;
  return a->first - b->first;
}

/* Offsets for the tenancies of one group (same symbols); returns the region's size (k). */
static int64_t place_group(Tenancy **g, int n) {
  qsort(g, (size_t)n, sizeof *g, by_size_desc);
  int64_t peak = 0;
  for (int i = 0; i < n; i++) {
    int64_t at = 0;
    for (bool moved = true; moved;) { /* lowest offset clear of every placed, live tenancy */
      moved = false;
      for (int j = 0; j < i; j++)
        if (overlap_in_time(g[i], g[j]) && at < g[j]->off + g[j]->bytes.k && g[j]->off < at + g[i]->bytes.k) {
          at = g[j]->off + g[j]->bytes.k;
          moved = true;
        }
    }
    g[i]->off = at;
    if (at + g[i]->bytes.k > peak) peak = at + g[i]->bytes.k;
  }
  return peak;
}

/* One region per group of symbols, one view slot per tenancy. */
static void place_all(Model *m, Entry *e, Plan *p) {
  Tenancy **g = arena_alloc(m->arena, (p->n + 1) * sizeof *g);
  bool *done = arena_alloc(m->arena, (p->n + 1) * sizeof *done);
  for (int i = 0; i < p->n; i++) {
    if (done[i]) continue;
    int n = 0;
    for (int j = i; j < p->n; j++)
      if (!done[j] && p->t[j].bytes.syms == p->t[i].bytes.syms) {
        g[n++] = &p->t[j];
        done[j] = true;
      }
    int64_t size = place_group(g, n);
    int region = new_slot(e, (Slot){{size, p->t[i].bytes.syms}, -1, dim_const(0)});
    for (int j = 0; j < n; j++)
      *g[j]->slot = new_slot(e, (Slot){dim_const(0), region, {g[j]->off, g[j]->bytes.syms}});
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
        extra += 2 * sc->ncarried + sc->nsteps + sc->body->nslots + 1;
      }
  int cap = n + extra + 3 * e->nkernels + 1; /* tenancies: outputs, prologues (and Winograd V, M), scan buffers */
  Plan p = {arena_alloc(m->arena, cap * sizeof *p.t), 0};
  e->slots = arena_alloc(m->arena, (2 * cap + 1) * sizeof *e->slots); /* + one region per group */
  e->nslots = 0;
  e->lifetimes = arena_alloc(m->arena, cap * sizeof *e->lifetimes);
  e->nlifetimes = 0;
  e->intermediate_bytes_static = 0;
  for (int k = 0; k < e->nkernels; k++) {
    Kernel *K = &e->kernels[k];
    if (K->kind == KK_SCAN) plan_scan(m, e, &p, K, k);
    ConvPlan conv;
    if (conv_plan(K, &conv)) { /* every (image, group)'s padded copy, so images can run in parallel */
      Dim items = dim_mul(K->gemm->shape.d[0], dim_const(conv.groups));
      tenant(e, &p, dim_mul(items, dim_const(4 * conv_plan_copy_floats(&conv))), k, k, &K->prologue->slot);
      if (conv.winograd) { /* and its transformed input and products, 16 matrices each */
        int64_t v = 16 * conv_plan_winograd_v_stride(&conv), mm = 16 * conv_plan_winograd_m_stride(&conv);
        tenant(e, &p, dim_mul(items, dim_const(4 * v)), k, k, &K->wino_slot[0]);
        tenant(e, &p, dim_mul(items, dim_const(4 * mm)), k, k, &K->wino_slot[1]);
      }
    } else if (K->prologue) { /* the GEMM's B operand, each batch item's apart (lower.c
                                 lower_sgemm), so items can run in parallel */
      const Shape *s = &K->prologue->shape;
      Dim items = dim_const(1);
      for (int a = 0; a < K->gemm->shape.rank - 2; a++) items = dim_mul(items, K->gemm->shape.d[a]);
      Dim item = dim_mul(s->d[s->rank - 2], s->d[s->rank - 1]);
      tenant(e, &p, dim_mul(dim_mul(items, item), dim_const(4)), k, k, &K->prologue->slot);
    }
    for (int o = 0; o < K->nouts; o++) {
      INode *t = K->outs[o];
      if (!needs_slot(t)) continue;
      Dim bytes = dim_mul(shape_numel(&t->shape), dim_const(4));
      e->intermediate_bytes_static += bytes.k;
      tenant(e, &p, bytes, k, last_use[t->id], &t->slot);
    }
  }
  place_all(m, e, &p);
  return true;
}
