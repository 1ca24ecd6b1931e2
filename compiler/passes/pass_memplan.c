/* pass_memplan.c — the workspace plan of an entry.  Every materialized intermediate (and every
 * scratch buffer: GEMM prologue columns, scan states) is a tenancy: a size and the kernels
 * from the one that writes it to the last that reads it.  Sizes can depend on symbolic dims
 * (k × N), so tenancies are grouped by their symbols; each group gets one region of the
 * workspace and its tenancies offsets in it, placed greedily by size (largest first, each at
 * the lowest offset that no tenancy alive at the same time occupies; Pisarchyk & Lee's
 * "greedy by size", as TFLite plans).  A tenancy becomes a view slot (region, offset), so the
 * plan stays a formula in the symbolic dims, evaluated per call.  Regions follow one another,
 * or, in the order their groups first live, one lies over the tail of the one before it from
 * the highest point its tensors reach while the later group's live (overlay_offset): a static
 * backbone's dead activations under per-box tensors, per-row activations under a static
 * reduction's.  `nnc dump --stage=memory` compares the plan with the lifetime lower bound
 * (memreport.c). */
#include <stdlib.h>

#include "convplan.h"
#include "passes.h"

/* From the support library (runtime/support/ctx.c): the layout every context allocates. */
int64_t nnc_entry_workspace_size(const nnc_entry_desc *, const int64_t *);

typedef struct Tenancy {
  Dim bytes;      /* rounded up to MEM_GRANULE × its symbols */
  int first, last;
  int *slot;      /* where the slot index goes */
  int64_t off;    /* placed: offset in the group's region, in units of its symbols */
  int64_t align;  /* of off: MEM_GRANULE, or 64 for a scan body's workspace */
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
  p->t[p->n++] = (Tenancy){bytes, first, last, slot, 0, MEM_GRANULE};
  e->lifetimes[e->nlifetimes++] = (Lifetime){bytes, first, last, NULL};
}

/* The bytes of a scan body's workspace as one Dim, when its regions follow one another and
 * share their symbols: each region rounded up to 64 at most takes round64(k) times them. */
static bool body_workspace(const Entry *b, Dim *bytes) {
  *bytes = dim_const(0);
  bool first = true;
  for (int i = 0; i < b->nslots; i++) {
    const Slot *s = &b->slots[i];
    if (s->region >= 0) continue;
    if (s->overlay || (!first && s->bytes.syms != bytes->syms)) return false;
    *bytes = (Dim){bytes->k + (s->bytes.k + 63) / 64 * 64, s->bytes.syms};
    first = false;
  }
  return !first;
}

/* A scan kernel needs two state buffers per carried value (the steps alternate between
 * them), a buffer for each per-step output nobody reads, and its body's own workspace, which
 * the body lays out from the base it is given: a tenancy like the others when its size is one
 * Dim, else the body's regions appended in order. */
static void plan_scan(Model *m, Entry *e, Plan *p, Kernel *K, int k) {
  INode *scan = NULL;
  for (int c = 0; c < K->ncovers && !scan; c++)
    if (K->covers[c]->op == OP_SCAN) scan = K->covers[c];
  ScanInfo *sc = scan->scan;
  const Entry *b = sc->body;
  int n = 2 * sc->ncarried + sc->nsteps;
  sc->scratch = arena_alloc(m->arena, (n + 1) * sizeof *sc->scratch);
  for (int i = 0; i < sc->ncarried; i++) {
    Dim bytes = dim_mul(m, shape_numel(m, &b->out_shapes[i]), dim_const(4));
    tenant(e, p, bytes, k, k, &sc->scratch[2 * i]);
    tenant(e, p, bytes, k, k, &sc->scratch[2 * i + 1]);
  }
  for (int j = 0; j < sc->nsteps; j++) {
    bool read = false;
    for (int o = 0; o < K->nouts; o++) read |= K->outs[o]->i[0] == sc->ncarried + j;
    Dim bytes = dim_mul(m, dim_mul(m, shape_numel(m, &b->out_shapes[sc->ncarried + j]), sc->bound), dim_const(4));
    sc->scratch[2 * sc->ncarried + j] = -1;
    if (!read) tenant(e, p, bytes, k, k, &sc->scratch[2 * sc->ncarried + j]);
  }
  Dim body;
  if (body_workspace(b, &body)) { /* one tenancy, live while the scan runs */
    p->t[p->n++] = (Tenancy){body, k, k, &sc->body_slots, 0, 64};
  } else { /* the body's regions in their order, appended: its layout from this base */
    sc->body_slots = e->nslots;
    for (int i = 0; i < b->nslots; i++)
      if (b->slots[i].region < 0) new_slot(e, b->slots[i]);
  }
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
          at = (g[j]->off + g[j]->bytes.k + g[i]->align - 1) / g[i]->align * g[i]->align;
          moved = true;
        }
    }
    g[i]->off = at;
    if (at + g[i]->bytes.k > peak) peak = at + g[i]->bytes.k;
  }
  return peak;
}

/* The tenancies of one symbol set, placed in one region of `size` (k) bytes. */
typedef struct Group {
  Tenancy **t;
  int n;
  int64_t size;
  int first; /* the first kernel any of them is live in */
} Group;

static bool live_with(const Tenancy *t, const Group *h) {
  for (int i = 0; i < h->n; i++)
    if (overlap_in_time(t, h->t[i])) return true;
  return false;
}

/* How high (k of g's symbols) g's tenancies reach while any of h's is live. */
static int64_t reach_while(const Group *g, const Group *h) {
  int64_t top = 0;
  for (int i = 0; i < g->n; i++)
    if (g->t[i]->off + g->t[i]->bytes.k > top && live_with(g->t[i], h)) top = g->t[i]->off + g->t[i]->bytes.k;
  return top;
}

/* Where h's region can start over the last of the chain of overlaid regions (-1: it can't):
 * above everything the last keeps live with h, and every earlier region of the chain must
 * keep what is live with h below where the next one starts (cut[j]), since h's region can
 * reach past the tails that the chain's later regions cover. */
static int64_t overlay_offset(Group **chain, const int64_t *cut, int len, const Group *h) {
  if (len == 0) return -1;
  for (int j = 0; j + 1 < len; j++)
    if (reach_while(chain[j], h) > cut[j]) return -1;
  int64_t at = reach_while(chain[len - 1], h);
  return at < chain[len - 1]->size ? at : -1;
}

static int by_first(const void *x, const void *y) {
  const Group *a = x, *b = y;
  return a->first - b->first;
}

/* One region per group of symbols, overlaid where it can be; one view slot per tenancy. */
static void place_all(Model *m, Entry *e, Plan *p) {
  Tenancy **all = arena_alloc(m->arena, (p->n + 1) * sizeof *all);
  Group *groups = arena_alloc(m->arena, (p->n + 1) * sizeof *groups);
  bool *done = arena_alloc(m->arena, (p->n + 1) * sizeof *done);
  int ng = 0, used = 0;
  for (int i = 0; i < p->n; i++) {
    if (done[i]) continue;
    Group *g = &groups[ng++];
    *g = (Group){all + used, 0, 0, p->t[i].first};
    for (int j = i; j < p->n; j++)
      if (!done[j] && p->t[j].bytes.syms == p->t[i].bytes.syms) {
        g->t[g->n++] = &p->t[j];
        if (p->t[j].first < g->first) g->first = p->t[j].first;
        done[j] = true;
      }
    used += g->n;
    g->size = place_group(g->t, g->n);
  }
  qsort(groups, (size_t)ng, sizeof *groups, by_first);
  Group **chain = arena_alloc(m->arena, (ng + 1) * sizeof *chain);
  int64_t *cut = arena_alloc(m->arena, (ng + 1) * sizeof *cut);
  int len = 0;
  for (int i = 0; i < ng; i++) {
    Group *h = &groups[i];
    uint32_t syms = h->t[0]->bytes.syms;
    int64_t at = overlay_offset(chain, cut, len, h);
    Slot region = {{h->size, syms}, -1, dim_const(0), false, dim_const(0)};
    if (at >= 0) {
      region.overlay = true;
      region.at = (Dim){at, chain[len - 1]->t[0]->bytes.syms};
      cut[len - 1] = at;
    } else {
      len = 0;
    }
    chain[len++] = h;
    int r = new_slot(e, region);
    for (int j = 0; j < h->n; j++)
      *h->t[j]->slot = new_slot(e, (Slot){dim_const(0), r, {h->t[j]->off, syms}, false, dim_const(0)});
  }
}

/* The entry's regions as the model ABI lists them (views are the generated code's own). */
int plan_regions(const Entry *e, nnc_slot *out) {
  int n = 0;
  for (int i = 0; i < e->nslots; i++) {
    const Slot *s = &e->slots[i];
    if (s->region >= 0) continue;
    if (out)
      out[n] = (nnc_slot){{s->bytes.k, s->bytes.syms}, {s->at.k, s->at.syms}, s->overlay};
    n++;
  }
  return n;
}

/* The workspace the entry needs for these symbol values (nnc_entry_workspace_size). */
int64_t plan_workspace_bytes(const Entry *e, const int64_t *syms) {
  int n = plan_regions(e, NULL);
  nnc_slot *regions = malloc((size_t)(n + 1) * sizeof *regions);
  if (!regions) return -1;
  plan_regions(e, regions);
  nnc_entry_desc d = {.name = e->name, .n_slots = n, .slots = regions};
  int64_t bytes = nnc_entry_workspace_size(&d, syms);
  free(regions);
  return bytes;
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
    if (conv_plan(K, &conv)) { /* every (image, group)'s padded copy, so images can run in parallel;
                                  for symbolic sizes, as many as their bound (convplan.h) holds */
      Dim items = dim_mul(m, K->gemm->shape.d[0], dim_const(conv.groups)), copy;
      if (!conv_plan_copy_bound(m, &conv, K->gemm->loc, &copy)) unreachable("a direct convolution without its scratch bound");
      tenant(e, &p, dim_mul(m, items, dim_mul(m, copy, dim_const(4))), k, k, &K->prologue->slot);
      if (conv.winograd) { /* and its transformed input and products, 16 matrices each */
        Dim v, mm;
        if (!conv_plan_winograd_bound(m, &conv, K->gemm->loc, &v, &mm)) unreachable("a Winograd convolution without its scratch bound");
        tenant(e, &p, dim_mul(m, items, dim_mul(m, v, dim_const(4))), k, k, &K->conv_slot[0]);
        tenant(e, &p, dim_mul(m, items, dim_mul(m, mm, dim_const(4))), k, k, &K->conv_slot[1]);
      }
      if (conv.flat) /* and its rows run together, before the epilogue */
        tenant(e, &p, dim_mul(m, items, dim_const(4 * conv.cout * conv_plan_flat_columns(&conv))), k, k, &K->conv_slot[1]);
    } else if (K->prologue) { /* the GEMM's B operand, each batch item's apart (lower.c
                                 lower_sgemm), so items can run in parallel */
      const Shape *s = &K->prologue->shape;
      Dim items = dim_const(1);
      for (int a = 0; a < K->gemm->shape.rank - 2; a++) items = dim_mul(m, items, K->gemm->shape.d[a]);
      Dim item = dim_mul(m, s->d[s->rank - 2], s->d[s->rank - 1]);
      tenant(e, &p, dim_mul(m, dim_mul(m, items, item), dim_const(4)), k, k, &K->prologue->slot);
    }
    for (int o = 0; o < K->nouts; o++) {
      INode *t = K->outs[o];
      if (!needs_slot(t)) continue;
      Dim bytes = dim_mul(m, shape_numel(m, &t->shape), dim_const(4));
      e->intermediate_bytes_static += bytes.k;
      tenant(e, &p, bytes, k, last_use[t->id], &t->slot);
    }
  }
  place_all(m, e, &p);
  return true;
}
