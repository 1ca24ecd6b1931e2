/* memreport.c — `nnc dump --stage=memory`: per entry, the workspace the planner laid out
 * (pass_memplan.c) against two references, with the symbolic dims bound to values:
 *   planned  the end of the regions' layout (what a context allocates:
 *            nnc_entry_workspace_size);
 *   bound    the lifetime lower bound: the most bytes live at once, over the kernels in their
 *            order (each tensor rounded up to MEM_GRANULE bytes, as placed); no plan can use less;
 *   sum      every intermediate tensor in its own buffer (no reuse at all).
 * A scan body's workspace counts as live while its scan runs: its planned size in `planned`,
 * its own bound in `bound`, its sum in `sum`. */
#include <stdlib.h>
#include <string.h>

#include "memreport.h"
#include "passes.h"

static int64_t eval_dim(Dim d, const int64_t *syms) {
  int64_t v = d.k;
  for (int i = 0; i < MAX_SYMS; i++)
    if (d.syms & (1u << i)) v *= syms[i];
  return v;
}

typedef struct Report {
  int64_t planned, bound, sum;
} Report;

static Report entry_report(const Entry *e, const int64_t *syms) {
  Report r = {0, 0, 0};
  r.planned = plan_workspace_bytes(e, syms);
  int nk = e->nkernels > 0 ? e->nkernels : 1;
  int64_t *live = calloc((size_t)nk, sizeof *live);
  if (!live) return r;
  for (int i = 0; i < e->nlifetimes; i++) {
    const Lifetime *l = &e->lifetimes[i];
    int64_t bytes;
    if (l->body) { /* its slots are already among ours (appended by the planner) */
      Report b = entry_report(l->body, syms);
      bytes = b.bound;
      r.sum += b.sum;
    } else {
      bytes = eval_dim(l->bytes, syms); /* placed at MEM_GRANULE multiples, like the plan */
      r.sum += bytes;
    }
    for (int k = l->first; k <= l->last && k < nk; k++) live[k] += bytes;
  }
  for (int k = 0; k < nk; k++)
    if (live[k] > r.bound) r.bound = live[k];
  free(live);
  return r;
}

/* "N=8,T=16" into syms[]; unnamed dims stay 1.  Only dims bound from the inputs' shapes. */
static bool parse_dims(const Model *m, const char *dims, int64_t *syms, char *err, size_t errlen) {
  for (int i = 0; i < MAX_SYMS; i++) syms[i] = 1;
  if (!dims || !*dims) return true;
  const char *p = dims;
  while (*p) {
    const char *eq = strchr(p, '='), *end = strchr(p, ',');
    if (!end) end = p + strlen(p);
    if (!eq || eq > end || eq == p) {
      snprintf(err, errlen, "--dims: expected NAME=VALUE[,NAME=VALUE...], not '%s'", dims);
      return false;
    }
    int s = -1;
    for (int i = 0; i < m->nsyms; i++)
      if ((size_t)(eq - p) == strlen(m->sym_names[i]) && !strncmp(p, m->sym_names[i], eq - p)) s = i;
    if (s < 0) {
      snprintf(err, errlen, "--dims: the model has no symbolic dim '%.*s'", (int)(eq - p), p);
      return false;
    }
    if (m->sym_rules[s].derived) {
      snprintf(err, errlen, "--dims: %s is computed from %s; give that", m->sym_names[s],
               m->sym_names[m->sym_rules[s].src]);
      return false;
    }
    char *num_end;
    long long v = strtoll(eq + 1, &num_end, 10);
    if (num_end != end || v < 1 || v > (1LL << 31)) {
      snprintf(err, errlen, "--dims: %.*s needs a positive integer value", (int)(eq - p), p);
      return false;
    }
    syms[s] = v;
    p = *end ? end + 1 : end;
  }
  return true;
}

/* The given dims, then the derived ones the entries use (a layer's output size, a square). */
static bool bind_dims(const Model *m, const char *dims, int64_t *syms, uint32_t *used, char *err, size_t errlen) {
  if (!parse_dims(m, dims, syms, err, errlen)) return false;
  *used = 0;
  for (int i = 0; i < m->nentries; i++) *used |= entry_syms_used(m, &m->entries[i]);
  *used |= model_sym_roots(m, *used);
  char why[256];
  if (model_derive_syms(m, *used, syms, why, sizeof why)) return true;
  snprintf(err, errlen, "--dims: %s", why);
  return false;
}

int memory_report(FILE *out, const Model *m, const char *dims, char *err, size_t errlen) {
  int64_t syms[MAX_SYMS];
  uint32_t used;
  if (!bind_dims(m, dims, syms, &used, err, errlen)) return -1;
  fprintf(out, "# workspace bytes per entry");
  for (int i = 0, n = 0; i < m->nsyms; i++)
    if (used >> i & 1) fprintf(out, "%s %s=%lld", n++ ? "," : " with", m->sym_names[i], (long long)syms[i]);
  fprintf(out, ": planned (slots), bound (most bytes live at once), sum (no reuse)\n");
  for (int i = 0; i < m->nentries; i++) {
    Report r = entry_report(&m->entries[i], syms);
    fprintf(out, "memory %s planned=%lld bound=%lld sum=%lld\n", m->entries[i].name, (long long)r.planned,
            (long long)r.bound, (long long)r.sum);
  }
  return 0;
}
