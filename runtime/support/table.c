/* table.c — nnc_table_check and nnc_weights_checksum (table.h). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <elf.h>
#include <link.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "table.h"

#define MAX_SEGS 16
#define MAX_COUNT (1 << 20) /* entries, params, arguments, slots: far beyond any model */
#define MAX_NAME 65536

/* The loaded segments of the object holding the table. */
typedef struct Mem {
  bool found;
  const char *file; /* the object's path ("" for the main program) */
  int n;
  uintptr_t lo[MAX_SEGS], hi[MAX_SEGS];
  bool exec[MAX_SEGS];
} Mem;

typedef struct Check {
  Mem mem;
  const char *what;
  char *err;
  size_t errlen;
} Check;

static int find_object(struct dl_phdr_info *info, size_t size, void *data) {
  (void)size;
  Mem *m = data;
  uintptr_t at = (uintptr_t)m->lo[0];
  Mem seen = {.file = info->dlpi_name};
  bool holds = false;
  for (int i = 0; i < info->dlpi_phnum && seen.n < MAX_SEGS; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_R)) continue;
    uintptr_t lo = info->dlpi_addr + ph->p_vaddr, hi = lo + ph->p_memsz;
    seen.lo[seen.n] = lo;
    seen.hi[seen.n] = hi;
    seen.exec[seen.n++] = ph->p_flags & PF_X;
    if (at >= lo && at < hi) holds = true;
  }
  if (!holds) return 0;
  seen.found = true;
  *m = seen;
  return 1;
}

static Mem object_of(const void *p) {
  Mem m = {.lo = {(uintptr_t)p}};
  dl_iterate_phdr(find_object, &m);
  if (!m.found) m.n = 0;
  return m;
}

static int bad(Check *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int bad(Check *c, const char *fmt, ...) {
  if (!c->err || !c->errlen) return -1;
  int n = snprintf(c->err, c->errlen, "%s: error: the model table is damaged: ", c->what);
  if (n < 0 || (size_t)n >= c->errlen) return -1;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(c->err + n, c->errlen - (size_t)n, fmt, ap);
  va_end(ap);
  size_t len = strlen(c->err);
  snprintf(c->err + len, c->errlen - len, " (the library was modified or truncated: rebuild it with nnc)");
  return -1;
}

/* Does [p, p + n) lie inside one segment (exec: an executable one)?  Without a known object,
 * only p != NULL is checked. */
static bool in_mem(const Check *c, const void *p, uint64_t n, bool exec) {
  if (!p) return n == 0 && !exec;
  if (!c->mem.found) return true;
  uintptr_t a = (uintptr_t)p;
  for (int i = 0; i < c->mem.n; i++)
    if (a >= c->mem.lo[i] && a < c->mem.hi[i] && n <= c->mem.hi[i] - a && (!exec || c->mem.exec[i]))
      return true;
  return false;
}

static bool str_ok(const Check *c, const char *s) {
  if (!s) return false;
  if (!c->mem.found) return true;
  uintptr_t a = (uintptr_t)s;
  for (int i = 0; i < c->mem.n; i++)
    if (a >= c->mem.lo[i] && a < c->mem.hi[i]) {
      size_t room = c->mem.hi[i] - a;
      return memchr(s, 0, room < MAX_NAME ? room : MAX_NAME) != NULL;
    }
  return false;
}

static bool count_ok(int32_t n) { return n >= 0 && n <= MAX_COUNT; }

static int check_args(Check *c, const nnc_entry_desc *e, const char *where, int32_t n_syms) {
  int32_t n = e->n_in + e->n_out;
  if (!in_mem(c, e->args, (uint64_t)n * sizeof *e->args, false))
    return bad(c, "%s: its %d arguments lie outside the library", where, n);
  for (int j = 0; j < n; j++) {
    const nnc_arg_desc *a = &e->args[j];
    if (!str_ok(c, a->name)) return bad(c, "%s: argument %d has no readable name", where, j);
    if (a->dtype != NNC_F32 && a->dtype != NNC_I64)
      return bad(c, "%s: argument '%s' has dtype %d", where, a->name, a->dtype);
    if (a->rank < 0 || a->rank > 8)
      return bad(c, "%s: argument '%s' has rank %d (0 to 8)", where, a->name, a->rank);
    if (!in_mem(c, a->dims, (uint64_t)a->rank * sizeof *a->dims, false))
      return bad(c, "%s: the dims of argument '%s' lie outside the library", where, a->name);
    for (int k = 0; k < a->rank; k++)
      if (a->dims[k].k < 0 || (n_syms < 32 && a->dims[k].syms >> n_syms))
        return bad(c, "%s: argument '%s' has a bad dim %d", where, a->name, k);
  }
  return 0;
}

static int check_entry(Check *c, const nnc_entry_desc *e, const char *where, int32_t n_syms) {
  if (!str_ok(c, e->name)) return bad(c, "%s has no readable name", where);
  if (!count_ok(e->n_in) || !count_ok(e->n_out))
    return bad(c, "%s ('%s') has %d inputs and %d outputs", where, e->name, e->n_in, e->n_out);
  if (check_args(c, e, where, n_syms)) return -1;
  if (!count_ok(e->n_slots) || !in_mem(c, e->slots, (uint64_t)e->n_slots * sizeof *e->slots, false))
    return bad(c, "%s ('%s'): its %d workspace slots lie outside the library", where, e->name,
               e->n_slots);
  if (!e->body || !in_mem(c, (const void *)e->body, 1, true))
    return bad(c, "%s ('%s'): its code pointer lies outside the library's code", where, e->name);
  if (n_syms < 32 && e->syms >> n_syms)
    return bad(c, "%s ('%s') uses symbolic dims beyond the %d the model has", where, e->name, n_syms);
  return 0;
}

static int check_param(Check *c, const nnc_model_desc *d, int i) {
  const nnc_param_desc *p = &d->params[i];
  if (!str_ok(c, p->name)) return bad(c, "params[%d] has no readable name", i);
  if ((p->dtype != NNC_F32 && p->dtype != NNC_I64) || p->rank < 0 || p->rank > 8 ||
      (p->flags & ~(uint32_t)NNC_PARAM_OPTIONAL))
    return bad(c, "parameter '%s' has dtype %d, rank %d, flags %u", p->name, p->dtype, p->rank,
               p->flags);
  if (!in_mem(c, p->shape, (uint64_t)p->rank * sizeof *p->shape, false))
    return bad(c, "the shape of parameter '%s' lies outside the library", p->name);
  uint64_t bytes = p->dtype == NNC_I64 ? 8 : 4;
  for (int k = 0; k < p->rank; k++)
    if (p->shape[k] < 0 || __builtin_mul_overflow(bytes, (uint64_t)p->shape[k], &bytes))
      return bad(c, "parameter '%s' has a bad shape", p->name);
  if (bytes != p->nbytes || p->offset > d->weights_size || p->nbytes > d->weights_size - p->offset)
    return bad(c, "parameter '%s' (%llu bytes at %llu) does not fit its shape or the %llu-byte "
               "weight blob", p->name, (unsigned long long)p->nbytes,
               (unsigned long long)p->offset, (unsigned long long)d->weights_size);
  return 0;
}

static int check_desc(Check *c, const nnc_model_desc *d) {
  if (!count_ok(d->n_syms) || d->n_syms > 32 ||
      !in_mem(c, d->sym_names, (uint64_t)d->n_syms * sizeof *d->sym_names, false))
    return bad(c, "n_syms = %d (at most 32, names inside the library)", d->n_syms);
  for (int i = 0; i < d->n_syms; i++)
    if (!str_ok(c, d->sym_names[i])) return bad(c, "symbolic dim %d has no readable name", i);
  if (d->sym_rules && !in_mem(c, d->sym_rules, (uint64_t)d->n_syms * sizeof *d->sym_rules, false))
    return bad(c, "the symbolic dims' rules lie outside the library");
  for (int i = 0; d->sym_rules && i < d->n_syms; i++) {
    const nnc_sym_rule *r = &d->sym_rules[i];
    if (r->src >= i || (r->src >= 0 && (r->mul < 1 || r->div < 1 || !str_ok(c, r->site))))
      return bad(c, "the rule of symbolic dim %d (%s) is malformed", i, d->sym_names[i]);
  }
  if (!count_ok(d->n_entries) ||
      !in_mem(c, d->entries, (uint64_t)d->n_entries * sizeof *d->entries, false))
    return bad(c, "n_entries = %d: the entry table lies outside the library", d->n_entries);
  char where[64];
  for (int i = 0; i < d->n_entries; i++) {
    snprintf(where, sizeof where, "entries[%d]", i);
    if (check_entry(c, &d->entries[i], where, d->n_syms)) return -1;
  }
  if (!count_ok(d->n_params) ||
      !in_mem(c, d->params, (uint64_t)d->n_params * sizeof *d->params, false))
    return bad(c, "n_params = %d: the parameter table lies outside the library", d->n_params);
  for (int i = 0; i < d->n_params; i++)
    if (check_param(c, d, i)) return -1;
  if (d->embedded_weights && !in_mem(c, d->embedded_weights, d->weights_size, false))
    return bad(c, "the %llu bytes of embedded weights lie outside the library",
               (unsigned long long)d->weights_size);
  if (d->init && !in_mem(c, d->init, sizeof *d->init, false))
    return bad(c, "the init entry lies outside the library");
  return d->init ? check_entry(c, d->init, "the init entry", d->n_syms) : 0;
}

int nnc_table_check(const nnc_model_desc *desc, const char *what, bool from_file, char *err,
                    size_t errlen) {
  Check c = {.mem = object_of(desc), .err = err, .errlen = errlen};
  if (c.mem.found && !from_file) { /* a generated library's own table: in this object */
    Mem self = object_of((const void *)nnc_table_check);
    if (!self.found || self.lo[0] != c.mem.lo[0]) c.mem.found = false;
  }
  if (err && errlen) err[0] = '\0';
  c.what = what ? what : c.mem.found && c.mem.file && c.mem.file[0] ? c.mem.file : "model";
  if (!desc) return bad(&c, "the table is NULL");
  if (!in_mem(&c, desc, sizeof *desc, false)) return bad(&c, "the table lies outside the library");
  if (!str_ok(&c, desc->name)) return bad(&c, "the model has no readable name");
  if (!what) c.what = desc->name;
  if (desc->abi_version != NNC_MODEL_ABI) {
    if (err && errlen)
      snprintf(err, errlen, "%s: error: model ABI version %u, this runtime expects %d", c.what,
               desc->abi_version, NNC_MODEL_ABI);
    return -1;
  }
  return check_desc(&c, desc);
}

int nnc_derive_syms(const nnc_sym_rule *rules, int n, const char *const *names, uint32_t used,
                    int64_t *syms, char *err, size_t errlen) {
  if (err && errlen) err[0] = '\0';
  for (int i = n - 1; rules && i >= 0; i--) /* a derived dim needs the dims it derives from */
    if ((used >> i & 1) && rules[i].src >= 0) used |= 1u << rules[i].src;
  for (int i = 0; rules && i < n; i++) {
    const nnc_sym_rule *r = &rules[i];
    if (r->src < 0 || !(used >> i & 1)) continue;
    int64_t x = syms[r->src], v;
    bool overflow;
    if (r->flags & NNC_SYM_SQUARE) overflow = __builtin_mul_overflow(x, x, &v);
    else if (!(overflow = __builtin_mul_overflow(r->mul, x, &v) || __builtin_add_overflow(v, r->add, &v)))
      v = v / r->div - (v % r->div != 0 && v < 0); /* floor division, div >= 1 */
    if (!overflow && (r->flags & NNC_SYM_CLAMP) && v < 0) v = 0; /* an empty slice */
    if (overflow || (v < 1 && !(r->flags & (NNC_SYM_CLAMP | NNC_SYM_SQUARE)))) { /* "m.nn:3:9: conv2d: the output height (H+1)/2 is 0 for H = 0 ..." */
      char val[32];
      snprintf(val, sizeof val, overflow ? "overflows" : "is %lld", (long long)v);
      if (err && errlen)
        snprintf(err, errlen, "%s %s %s for %s = %lld (must be at least 1: the input is too small)",
                 r->site ? r->site : "a size", names ? names[i] : "", val, names ? names[r->src] : "a dim",
                 (long long)x);
      return -1;
    }
    syms[i] = v;
  }
  return 0;
}

static inline uint64_t rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

#define P1 0x9E3779B185EBCA87ull
#define P2 0xC2B2AE3D27D4EB4Full
#define P3 0x165667B19E3779F9ull

uint64_t nnc_weights_checksum(const void *bytes, size_t n) {
  const unsigned char *s = bytes;
  uint64_t h[4] = {P1 + P2, P2, 0, -P1};
  size_t i = 0;
  for (; i + 32 <= n; i += 32)
    for (int k = 0; k < 4; k++) {
      uint64_t w;
      memcpy(&w, s + i + 8 * k, 8);
      h[k] = rotl(h[k] + w * P2, 31) * P1;
    }
  uint64_t r = rotl(h[0], 1) + rotl(h[1], 7) + rotl(h[2], 12) + rotl(h[3], 18);
  for (int k = 0; k < 4; k++) r = (r ^ rotl(h[k] * P2, 31) * P1) * P1 + P3;
  for (; i < n; i++) r = rotl(r ^ (s[i] * P3), 11) * P1;
  r ^= (uint64_t)n;
  r ^= r >> 33;
  r *= P2;
  r ^= r >> 29;
  return r ? r : 1; /* 0 in a table means "none recorded" */
}
