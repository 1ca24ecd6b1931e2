/* ctx.c — the generic functions every generated library exports (see nnc_model.h):
 * open a context (weights: embedded, or read from a safetensors file and checked against the
 * model's parameter table), size and grow the workspace, call an entry, report errors.
 *
 * Part of the support library linked into every generated .so, so it uses only libc and
 * OpenBLAS.  The eight ABI functions are exported explicitly (NNC_EXPORT); everything else here
 * is static. */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nnc_model.h"
#include "pool.h"
#include "safetensors.h"
#include "table.h"

#define NNC_EXPORT __attribute__((visibility("default")))
#define ALIGN 64
#define MAX_LISTED 3 /* missing tensors named in one message after the first */
#define NNC_MAX_THREADS 1024 /* as $NNC_NUM_THREADS and `nnc run --threads` */

struct nnc_ctx {
  const nnc_model_desc *desc;
  char *weights;  /* 64-byte aligned blob; == desc->embedded_weights when embedded */
  bool owned;     /* weights were allocated here */
  char *ws;       /* workspace, 64-byte aligned; grows, never shrinks */
  size_t ws_cap;
  nnc_pool *pool; /* threads of this context's calls */
  const nnc_entry_desc *fits_entry; /* the workspace is known to fit this entry ... */
  int64_t fits_syms[32];            /* ... at these dims (it never shrinks) */
  char err[1024];
};

NNC_EXPORT nnc_ctx *nnc_ctx_open(const nnc_model_desc *desc, const char *weights_path,
                                 char *err, size_t errlen);
NNC_EXPORT void nnc_ctx_close(nnc_ctx *ctx);
NNC_EXPORT int nnc_ctx_call(nnc_ctx *ctx, int entry, void *const *args, const int64_t *syms);
NNC_EXPORT const char *nnc_ctx_error(const nnc_ctx *ctx);
NNC_EXPORT int64_t nnc_entry_workspace_size(const nnc_entry_desc *entry, const int64_t *syms);
NNC_EXPORT int nnc_ctx_set_threads(nnc_ctx *ctx, int n);
NNC_EXPORT int nnc_ctx_threads(const nnc_ctx *ctx);

static void say(char *err, size_t errlen, const char *fmt, ...) {
  if (!err || errlen == 0) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

/* Append to a message being built in err[0..errlen). */
static void append(char *err, size_t errlen, const char *fmt, ...) {
  if (!err || errlen == 0) return;
  size_t n = strlen(err);
  if (n + 1 >= errlen) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err + n, errlen - n, fmt, ap);
  va_end(ap);
}

static size_t round_up(size_t x) { return (x + ALIGN - 1) / ALIGN * ALIGN; }

static const char *dtype_name(int32_t dtype) { return dtype == NNC_I64 ? "I64" : "F32"; }

static void shape_str(const int64_t *shape, int rank, char *buf, size_t len) {
  size_t n = 0;
  buf[0] = '\0';
  n += snprintf(buf + n, len - n, "[");
  for (int i = 0; i < rank && n < len; i++)
    n += snprintf(buf + n, len - n, "%s%lld", i ? ", " : "", (long long)shape[i]);
  if (n < len) snprintf(buf + n, len - n, "]");
}

static void param_type_str(const nnc_param_desc *p, char *buf, size_t len) {
  char shape[256];
  shape_str(p->shape, p->rank, shape, sizeof shape);
  snprintf(buf, len, "%s%s", dtype_name(p->dtype), shape);
}

/* ---- weights ---- */

static bool param_in_file(const StFile *f, const nnc_param_desc *p) {
  return st_find(f, p->name) != NULL;
}

static bool tensor_is_param(const nnc_model_desc *desc, const char *name) {
  for (int i = 0; i < desc->n_params; i++)
    if (strcmp(desc->params[i].name, name) == 0) return true;
  return false;
}

/* A file tensor whose name is `name` with a prefix (a wrapped model's state_dict, e.g.
 * "module.fc.weight" for "fc.weight"), or NULL. */
static const char *prefixed_twin(const StFile *f, const char *name) {
  size_t n = strlen(name);
  for (int i = 0; i < f->count; i++) {
    const char *t = f->tensors[i].name;
    size_t m = strlen(t);
    if (m > n + 1 && t[m - n - 1] == '.' && strcmp(t + m - n, name) == 0) return t;
  }
  return NULL;
}

static bool optional(const nnc_param_desc *p) { return p->flags & NNC_PARAM_OPTIONAL; }

/* Edit distance between a and b (bytes), or `cap` + 1 when it exceeds cap. */
static size_t edit_distance(const char *a, const char *b, size_t cap) {
  size_t n = strlen(a), m = strlen(b);
  if ((n > m ? n - m : m - n) > cap || m > 255) return cap + 1;
  size_t row[256];
  for (size_t j = 0; j <= m; j++) row[j] = j;
  for (size_t i = 1; i <= n; i++) {
    size_t diag = row[0], best = row[0] = i;
    for (size_t j = 1; j <= m; j++) {
      size_t up = row[j], v = diag + (a[i - 1] != b[j - 1]);
      if (up + 1 < v) v = up + 1;
      if (row[j - 1] + 1 < v) v = row[j - 1] + 1;
      diag = up;
      row[j] = v;
      if (v < best) best = v;
    }
    if (best > cap) return cap + 1;
  }
  return row[m];
}

/* The part of a name after its last '.' ("weight" of "fc.0.weight"). */
static const char *last_part(const char *name) {
  const char *dot = strrchr(name, '.');
  return dot ? dot + 1 : name;
}

/* Length of the common prefix of a and b, counted in whole dotted components. */
static size_t common_path(const char *a, const char *b) {
  size_t n = 0, i = 0;
  for (; a[i] && a[i] == b[i]; i++)
    if (a[i] == '.') n = i + 1;
  return n;
}

/* An unused file tensor that looks like `name` (a did-you-mean), or NULL: the nearest by edit
 * distance, at most a third of the name and at least 2 ("attn.in_proj_weight" for
 * "attn.in_proj.weight"), else one with the same last part nested deeper under the same path
 * ("enc.fc.0.weight" for "enc.fc.weight"). */
static const char *lookalike(const nnc_model_desc *desc, const StFile *f, const char *name) {
  size_t len = strlen(name), cap = len / 3 > 2 ? len / 3 : 2, best = cap + 1;
  const char *hit = NULL;
  for (int i = 0; i < f->count; i++) {
    const char *t = f->tensors[i].name;
    if (tensor_is_param(desc, t)) continue;
    size_t d = edit_distance(name, t, cap);
    if (d < best) best = d, hit = t;
  }
  const char *dot = strrchr(name, '.');
  if (hit || !dot) return hit;
  for (int i = 0; i < f->count; i++) {
    const char *t = f->tensors[i].name;
    if (!tensor_is_param(desc, t) && common_path(name, t) >= (size_t)(dot - name) + 1 &&
        strcmp(last_part(t), dot + 1) == 0)
      return t;
  }
  return NULL;
}

static int report_missing(const nnc_model_desc *desc, const StFile *f, const char *path,
                          char *err, size_t errlen) {
  int missing = 0, first = -1;
  for (int i = 0; i < desc->n_params; i++)
    if (!optional(&desc->params[i]) && !param_in_file(f, &desc->params[i])) {
      if (first < 0) first = i;
      missing++;
    }
  if (!missing) return 0;
  const nnc_param_desc *p = &desc->params[first];
  const char *twin = prefixed_twin(f, p->name), *like = twin ? NULL : lookalike(desc, f, p->name);
  char type[300];
  param_type_str(p, type, sizeof type);
  say(err, errlen, "%s: error: missing tensor '%s' (expected %s)", path, p->name, type);
  if (like) append(err, errlen, "; the file has an unused '%s'", like);
  int listed = 0;
  for (int i = first + 1; i < desc->n_params && listed < MAX_LISTED; i++)
    if (!optional(&desc->params[i]) && !param_in_file(f, &desc->params[i])) {
      append(err, errlen, "%s'%s'", listed ? ", " : "; also missing: ", desc->params[i].name);
      if (!twin && (like = lookalike(desc, f, desc->params[i].name)))
        append(err, errlen, " (the file has an unused '%s')", like);
      listed++;
    }
  if (missing - 1 > listed) append(err, errlen, " and %d more", missing - 1 - listed);
  if (twin)
    append(err, errlen, " (the file has '%s': strip the '%.*s' prefix from its names)", twin,
           (int)(strlen(twin) - strlen(p->name)), twin);
  return -1;
}

static int check_param(const nnc_param_desc *p, const StTensor *t, const char *path, char *err,
                       size_t errlen) {
  char want[300], got[256];
  if (t->dtype != (p->dtype == NNC_I64 ? ST_I64 : ST_F32)) {
    say(err, errlen, "%s: error: tensor '%s' has dtype %s, the model expects %s", path,
        p->name, t->dtype == ST_I64 ? "I64" : "F32", dtype_name(p->dtype));
    return -1;
  }
  bool same = t->rank == p->rank;
  for (int i = 0; same && i < p->rank; i++) same = t->shape[i] == p->shape[i];
  if (!same) {
    shape_str(t->shape, t->rank, got, sizeof got);
    shape_str(p->shape, p->rank, want, sizeof want);
    say(err, errlen, "%s: error: tensor '%s' has shape %s, the model expects %s", path, p->name,
        got, want);
    return -1;
  }
  if (t->nbytes != p->nbytes) {
    say(err, errlen, "%s: error: tensor '%s' holds %zu bytes, the model expects %llu", path,
        p->name, t->nbytes, (unsigned long long)p->nbytes);
    return -1;
  }
  return 0;
}

static int check_file(const nnc_model_desc *desc, const StFile *f, const char *path, char *err,
                      size_t errlen) {
  if (report_missing(desc, f, path, err, errlen)) return -1;
  for (int i = 0; i < desc->n_params; i++) {
    const StTensor *t = st_find(f, desc->params[i].name);
    if (t && check_param(&desc->params[i], t, path, err, errlen)) return -1;
  }
  for (int i = 0; i < f->count; i++)
    if (!tensor_is_param(desc, f->tensors[i].name)) {
      say(err, errlen, "%s: error: unexpected tensor '%s' (the model has no such parameter)",
          path, f->tensors[i].name);
      return -1;
    }
  return 0;
}

static char *alloc_blob(const nnc_model_desc *desc, const char *path, char *err,
                        size_t errlen) {
  size_t size = round_up((size_t)desc->weights_size);
  char *blob = aligned_alloc(ALIGN, size ? size : ALIGN);
  if (!blob) {
    say(err, errlen, "%s: error: out of memory for %zu bytes of weights", path, size);
    return NULL;
  }
  memset(blob, 0, size ? size : ALIGN);
  return blob;
}

/* Read `path`, check it against the parameter table and copy it into a new aligned blob. */
static char *load_weights(const nnc_model_desc *desc, const char *path, char *err,
                          size_t errlen) {
  StFile f;
  if (st_read_file(path, &f, err, errlen)) return NULL;
  char *blob = NULL;
  if (check_file(desc, &f, path, err, errlen) == 0) blob = alloc_blob(desc, path, err, errlen);
  for (int i = 0; blob && i < desc->n_params; i++) {
    const nnc_param_desc *p = &desc->params[i];
    const StTensor *t = st_find(&f, p->name);
    if (t) memcpy(blob + p->offset, t->data, p->nbytes); /* absent: optional, stays zero */
  }
  st_free(&f);
  return blob;
}

/* Run the model's init entry (derived parameters) on the context's own weight blob; not on
 * embedded weights, which hold them already. */
static int run_init(nnc_ctx *ctx, char *err, size_t errlen) {
  const nnc_entry_desc *init = ctx->desc->init;
  if (!init || (ctx->weights && ctx->weights == ctx->desc->embedded_weights)) return 0;
  if (!ctx->owned) { /* embedded weights are read-only: work on a copy */
    char *blob = alloc_blob(ctx->desc, ctx->desc->name, err, errlen);
    if (!blob) return -1;
    if (ctx->weights) memcpy(blob, ctx->weights, (size_t)ctx->desc->weights_size);
    ctx->weights = blob;
    ctx->owned = true;
  }
  int64_t need = nnc_entry_workspace_size(init, NULL);
  if (need < 0) {
    say(err, errlen, "%s: error: the init entry's workspace cannot be sized", ctx->desc->name);
    return -1;
  }
  char *ws = aligned_alloc(ALIGN, round_up((size_t)need) + ALIGN);
  if (!ws) {
    say(err, errlen, "%s: error: out of memory", ctx->desc->name);
    return -1;
  }
  nnc_pool *prev = nnc_pool_enter(ctx->pool);
  init->body(NULL, NULL, ctx->weights, ws);
  nnc_pool_enter(prev);
  free(ws);
  char fault[512];
  if (nnc_pool_take_fault(ctx->pool, fault, sizeof fault)) {
    say(err, errlen, "%s: error: computing the derived parameters: %s", ctx->desc->name, fault);
    return -1;
  }
  return 0;
}

/* Embedded weights are what the compiler wrote: their checksum matches the table's. */
static int check_embedded(const nnc_model_desc *desc, char *err, size_t errlen) {
  if (!desc->weights_checksum) return 0; /* a table written by hand */
  uint64_t sum = nnc_weights_checksum(desc->embedded_weights, (size_t)desc->weights_size);
  if (sum == desc->weights_checksum) return 0;
  say(err, errlen, "%s: error: the embedded weights are damaged (checksum %016llx, the model "
      "table says %016llx): the library was modified after nnc wrote it; rebuild it, or give "
      "a weights file", desc->name, (unsigned long long)sum,
      (unsigned long long)desc->weights_checksum);
  return -1;
}

/* ---- the exported ABI ---- */

nnc_ctx *nnc_ctx_open(const nnc_model_desc *desc, const char *weights_path, char *err,
                      size_t errlen) {
  if (!desc) {
    say(err, errlen, "error: no model (NULL model table)");
    return NULL;
  }
  if (nnc_table_check(desc, NULL, false, err, errlen)) return NULL;
  if (!weights_path && desc->embedded_weights && check_embedded(desc, err, errlen)) return NULL;
  nnc_ctx *ctx = calloc(1, sizeof *ctx);
  if (!ctx) {
    say(err, errlen, "%s: error: out of memory", desc->name);
    return NULL;
  }
  ctx->desc = desc;
  if (!(ctx->pool = nnc_pool_new(nnc_pool_default_threads()))) {
    say(err, errlen, "%s: error: out of memory", desc->name);
    free(ctx);
    return NULL;
  }
  if (weights_path) {
    ctx->weights = load_weights(desc, weights_path, err, errlen);
    ctx->owned = true;
  } else if (desc->embedded_weights || desc->n_params == 0) {
    ctx->weights = (char *)desc->embedded_weights;
  } else {
    say(err, errlen, "%s: error: model was compiled without weights: give a weights file",
        desc->name);
    nnc_ctx_close(ctx);
    return NULL;
  }
  if (weights_path && !ctx->weights) {
    nnc_ctx_close(ctx);
    return NULL;
  }
  if (run_init(ctx, err, errlen)) {
    nnc_ctx_close(ctx);
    return NULL;
  }
  return ctx;
}

void nnc_ctx_close(nnc_ctx *ctx) {
  if (!ctx) return;
  if (ctx->owned) free(ctx->weights);
  nnc_pool_free(ctx->pool);
  free(ctx->ws);
  free(ctx);
}

int nnc_ctx_set_threads(nnc_ctx *ctx, int n) {
  if (!ctx) return NNC_ERR_USAGE;
  if (n < 0 || n > NNC_MAX_THREADS) {
    say(ctx->err, sizeof ctx->err, "thread count %d out of range (0 to %d; 0: the default)", n,
        NNC_MAX_THREADS);
    return NNC_ERR_USAGE;
  }
  nnc_pool *pool = nnc_pool_new(n ? n : nnc_pool_default_threads());
  if (!pool) {
    say(ctx->err, sizeof ctx->err, "out of memory for a pool of %d threads", n);
    return NNC_ERR_NOMEM;
  }
  nnc_pool_free(ctx->pool);
  ctx->pool = pool;
  return NNC_OK;
}

int nnc_ctx_threads(const nnc_ctx *ctx) { return ctx ? nnc_pool_threads(ctx->pool) : 0; }

const char *nnc_ctx_error(const nnc_ctx *ctx) { return ctx ? ctx->err : "no context (NULL)"; }

/* k times the product of the set syms, or -1 on overflow or a negative/missing sym. */
static int64_t dim_value(nnc_dim d, const int64_t *syms) {
  int64_t v = d.k;
  if (v < 0) return -1;
  for (uint32_t rest = d.syms; rest; rest &= rest - 1) { /* the set bits only: called per slot per call */
    int i = __builtin_ctz(rest);
    if (!syms || syms[i] < 0 || __builtin_mul_overflow(v, syms[i], &v)) return -1;
  }
  return v;
}

static bool round64_to(int64_t v, int64_t *out) {
  if (v < 0 || v > INT64_MAX - (ALIGN - 1)) return false;
  *out = (v + ALIGN - 1) / ALIGN * ALIGN;
  return true;
}

/* The regions' layout (nnc_slot): each starts at the end so far, or over the region before it. */
int64_t nnc_entry_workspace_size(const nnc_entry_desc *entry, const int64_t *syms) {
  if (!entry) return -1;
  int64_t end = 0, start = 0;
  for (int i = 0; i < entry->n_slots; i++) {
    const nnc_slot *s = &entry->slots[i];
    int64_t bytes, at = 0;
    if (!round64_to(dim_value(s->bytes, syms), &bytes)) return -1;
    if (s->overlay && (i == 0 || !round64_to(dim_value(s->at, syms), &at) || __builtin_add_overflow(start, at, &at)))
      return -1;
    start = s->overlay ? at : end;
    int64_t stop;
    if (__builtin_add_overflow(start, bytes, &stop)) return -1;
    if (stop > end) end = stop;
  }
  return end;
}

/* "N = 3, M = 4": the symbolic dims `mask` uses and their values, for messages. */
static void syms_str(const nnc_model_desc *d, uint32_t mask, const int64_t *syms, char *buf,
                     size_t len) {
  size_t n = 0;
  buf[0] = '\0';
  for (int i = 0; i < d->n_syms && n < len; i++)
    if (mask & (1u << i))
      n += (size_t)snprintf(buf + n, len - n, "%s%s = %lld", n ? ", " : "", d->sym_names[i],
                            (long long)syms[i]);
}

static uint32_t arg_syms(const nnc_arg_desc *a) {
  uint32_t m = 0;
  for (int j = 0; j < a->rank; j++) m |= a->dims[j].syms;
  return m;
}

/* The symbolic dims e uses: its arguments', its workspace's and its kernels'. */
static uint32_t entry_sym_mask(const nnc_entry_desc *e) {
  uint32_t s = e->syms;
  for (int i = 0; i < e->n_in + e->n_out; i++) s |= arg_syms(&e->args[i]);
  for (int i = 0; i < e->n_slots; i++) s |= e->slots[i].bytes.syms | e->slots[i].at.syms;
  return s;
}

static int check_syms(nnc_ctx *ctx, const nnc_entry_desc *e, const int64_t *syms) {
  const nnc_model_desc *d = ctx->desc;
  if (d->n_syms > 0 && !syms) {
    say(ctx->err, sizeof ctx->err, "entry '%s': syms is NULL but the model has %d symbolic "
        "dims (%s%s)", e->name, d->n_syms, d->sym_names[0], d->n_syms > 1 ? ", ..." : "");
    return NNC_ERR_USAGE;
  }
  for (int i = 0; i < d->n_syms; i++)
    if (syms[i] < 0 && !(d->sym_rules && d->sym_rules[i].src >= 0)) { /* derived ones are filled in */
      say(ctx->err, sizeof ctx->err, "symbolic dim %s is %lld (must be >= 0)", d->sym_names[i],
          (long long)syms[i]);
      return NNC_ERR_USAGE;
    }
  return NNC_OK;
}

/* Every argument's byte size (its zero dims left out) fits in int64, exactly: no kernel
 * indexes past 2^63.  Every non-empty argument has a buffer; an empty one may be NULL.
 * *idle: every output is empty, so there is nothing to compute (the loops over the other
 * dims of an empty output could still take minutes: N = 2^40 rows of nothing). */
static int check_args(nnc_ctx *ctx, const nnc_entry_desc *e, void *const *args,
                      const int64_t *syms, bool *idle) {
  int n = e->n_in + e->n_out;
  *idle = true;
  if (n > 0 && !args) {
    say(ctx->err, sizeof ctx->err, "entry '%s': NULL argument array", e->name);
    return NNC_ERR_USAGE;
  }
  for (int i = 0; i < n; i++) {
    const nnc_arg_desc *a = &e->args[i];
    int64_t bytes = a->dtype == NNC_I64 ? 8 : 4;
    bool empty = false;
    for (int j = 0; j < a->rank; j++) {
      int64_t v = dim_value(a->dims[j], syms);
      if (v == 0) empty = true; /* its other dims still bound loops: they must fit too */
      if (v < 0 || (v > 0 && __builtin_mul_overflow(bytes, v, &bytes))) {
        char vals[256];
        syms_str(ctx->desc, arg_syms(a), syms, vals, sizeof vals);
        say(ctx->err, sizeof ctx->err, "entry '%s': %s '%s' would need more than 2^63 bytes "
            "(%s)", e->name, i < e->n_in ? "input" : "output", a->name, vals);
        return NNC_ERR_USER;
      }
    }
    if (!empty && !args[i]) {
      say(ctx->err, sizeof ctx->err, "entry '%s': argument '%s' is NULL", e->name, a->name);
      return NNC_ERR_USAGE;
    }
    if (i >= e->n_in && !empty) *idle = false;
  }
  return NNC_OK;
}

/* The workspace for e at syms: sized (an overflow is an error) and, with `alloc`, grown. */
static int grow_workspace(nnc_ctx *ctx, const nnc_entry_desc *e, const int64_t *syms,
                          bool alloc) {
  size_t nsyms = (size_t)ctx->desc->n_syms * sizeof *syms;
  bool cacheable = nsyms <= sizeof ctx->fits_syms;
  if (cacheable && e == ctx->fits_entry && (!nsyms || !memcmp(syms, ctx->fits_syms, nsyms))) return NNC_OK;
  int64_t need = nnc_entry_workspace_size(e, syms);
  if (need < 0 || (uint64_t)need > SIZE_MAX - ALIGN) {
    char vals[256];
    uint32_t used = 0;
    for (int i = 0; i < e->n_slots; i++) used |= e->slots[i].bytes.syms | e->slots[i].at.syms;
    syms_str(ctx->desc, used, syms, vals, sizeof vals);
    say(ctx->err, sizeof ctx->err, "entry '%s': the workspace would need more than 2^63 bytes "
        "(%s)", e->name, vals);
    return NNC_ERR_USER;
  }
  if (!alloc) return NNC_OK;
  if ((size_t)need > ctx->ws_cap) {
    char *ws = aligned_alloc(ALIGN, round_up((size_t)need));
    if (!ws) {
      say(ctx->err, sizeof ctx->err, "entry '%s': out of memory for a %lld-byte workspace",
          e->name, (long long)need);
      return NNC_ERR_NOMEM;
    }
    free(ctx->ws);
    ctx->ws = ws;
    ctx->ws_cap = round_up((size_t)need);
  }
  if (cacheable) { /* the same entry at the same dims skips the sizing next time */
    ctx->fits_entry = e;
    if (nsyms) memcpy(ctx->fits_syms, syms, nsyms);
  }
  return NNC_OK;
}

int nnc_ctx_call(nnc_ctx *ctx, int entry, void *const *args, const int64_t *syms) {
  if (!ctx) return NNC_ERR_USAGE;
  ctx->err[0] = '\0';
  const nnc_model_desc *d = ctx->desc;
  if (entry < 0 || entry >= d->n_entries) {
    say(ctx->err, sizeof ctx->err, "entry index %d out of range (the model has %d entries)",
        entry, d->n_entries);
    return NNC_ERR_USAGE;
  }
  const nnc_entry_desc *e = &d->entries[entry];
  bool idle = false; /* every output empty: checked, not run */
  int rc = check_syms(ctx, e, syms);
  int64_t all[32]; /* the caller's dims and the derived ones (n_syms <= 32: nnc_table_check) */
  if (rc == NNC_OK && d->sym_rules) {
    memcpy(all, syms, (size_t)d->n_syms * sizeof *syms);
    if (nnc_derive_syms(d->sym_rules, d->n_syms, d->sym_names, entry_sym_mask(e), all, ctx->err, sizeof ctx->err))
      return NNC_ERR_USER;
    syms = all;
  }
  if (rc == NNC_OK) rc = check_args(ctx, e, args, syms, &idle);
  if (rc == NNC_OK) rc = grow_workspace(ctx, e, syms, !idle);
  if (rc != NNC_OK || idle) return rc;
  nnc_pool *prev = nnc_pool_enter(ctx->pool);
  uint64_t t0 = nnc_pool_call_begin(ctx->pool, entry);
  e->body(args, syms, ctx->weights, ctx->ws);
  nnc_pool_call_end(ctx->pool, entry, t0);
  nnc_pool_enter(prev);
  /* a bad run-time index stopped a kernel: the outputs are not to be used */
  char fault[512];
  if (nnc_pool_take_fault(ctx->pool, fault, sizeof fault)) {
    say(ctx->err, sizeof ctx->err, "entry '%s': %s", e->name, fault);
    return NNC_ERR_USER;
  }
  return NNC_OK;
}

/* The context's weight blob: the compiler reads a checked weights file through a context to
 * embed it (compile.c), so the checks are the ones the generated library runs.  Not part of
 * the .so's ABI (hidden). */
const char *nnc_ctx_weights(const nnc_ctx *ctx) { return ctx ? ctx->weights : NULL; }
