/* nnc.c — the public runtime API (nnc.h): models (JIT-compiled, loaded from a .so, or wrapped
 * from a table), contexts, and nnc_call, which checks the caller's tensors against the
 * entry's argument table, binds the symbolic dims from the input shapes, allocates outputs
 * and calls the entry through the model library's own nnc_ctx_* functions.
 *
 * A JIT model uses the support library linked into this runtime; a loaded .so uses the
 * functions it exports (dlsym on its handle), so each library runs its own support code. */
#include "nnc.h"

#include <dlfcn.h>
#include <elf.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compile.h"
#include "table.h"

#define ALIGN 64
#define MAX_SYMS 32
#define MAX_THREADS 1024 /* as $NNC_NUM_THREADS and `nnc run --threads` */

/* The ABI functions of the support library linked into this runtime (runtime/support/ctx.c). */
nnc_ctx *nnc_ctx_open(const nnc_model_desc *, const char *, char *, size_t);
void nnc_ctx_close(nnc_ctx *);
int nnc_ctx_call(nnc_ctx *, int, void *const *, const int64_t *);
const char *nnc_ctx_error(const nnc_ctx *);
int nnc_ctx_set_threads(nnc_ctx *, int);
int nnc_ctx_threads(const nnc_ctx *);
int64_t nnc_entry_workspace_size(const nnc_entry_desc *, const int64_t *);

typedef const nnc_model_desc *(*info_fn)(void);
typedef nnc_ctx *(*open_fn)(const nnc_model_desc *, const char *, char *, size_t);
typedef void (*close_fn)(nnc_ctx *);
typedef int (*call_fn)(nnc_ctx *, int, void *const *, const int64_t *);
typedef const char *(*error_fn)(const nnc_ctx *);
typedef int (*set_threads_fn)(nnc_ctx *, int);
typedef int (*threads_fn)(const nnc_ctx *);

struct nnc_model {
  const nnc_model_desc *desc;
  NncJit *jit;   /* JIT-compiled, or NULL */
  void *dl;      /* dlopen handle of a loaded .so, or NULL */
  open_fn open;  /* the model library's nnc_ctx_* functions */
  close_fn close;
  call_fn call;
  error_fn error;
  set_threads_fn set_threads;
  threads_fn threads;
};

struct nnc_context {
  nnc_model *model;
  nnc_ctx *ctx;
  int64_t syms[MAX_SYMS];   /* [desc->n_syms] values bound by the last call */
  int src_arg[MAX_SYMS];    /* input that bound each sym, -1: unbound */
  void **args;              /* [max over entries of n_in + n_out] */
  char err[1024];
};

/* ---- errors ---- */

static char *vformat(const char *fmt, va_list ap) {
  va_list ap2;
  va_copy(ap2, ap);
  int n = vsnprintf(NULL, 0, fmt, ap2);
  va_end(ap2);
  char *s = malloc(n > 0 ? (size_t)n + 1 : 1);
  if (s) vsnprintf(s, (size_t)n + 1, fmt, ap);
  return s;
}

static int fail_msg(char **errmsg, int status, const char *fmt, ...) {
  if (!errmsg) return status;
  va_list ap;
  va_start(ap, fmt);
  *errmsg = vformat(fmt, ap);
  va_end(ap);
  return status;
}

static int fail_call(nnc_context *c, int status, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(c->err, sizeof c->err, fmt, ap);
  va_end(ap);
  return status;
}

/* ---- models ---- */

/* The table is checked before anything reads it: counts, ranks and every pointer against the
 * library's own loaded segments (table.h), so a damaged library is an error, not a crash. */
static int check_desc(const nnc_model_desc *d, const char *what, bool from_file, char **errmsg) {
  if (!d) return fail_msg(errmsg, NNC_ERR_USER, "%s: error: the model table is NULL", what);
  char err[1024];
  if (nnc_table_check(d, what, from_file, err, sizeof err))
    return fail_msg(errmsg, NNC_ERR_USER, "%s", err);
  if (d->n_syms > MAX_SYMS)
    return fail_msg(errmsg, NNC_ERR_USER, "%s: error: %d symbolic dims (at most %d)", what,
                    d->n_syms, MAX_SYMS);
  return NNC_OK;
}

static nnc_model *model_new(const nnc_model_desc *desc) {
  nnc_model *m = calloc(1, sizeof *m);
  if (!m) return NULL;
  m->desc = desc;
  m->open = nnc_ctx_open;
  m->close = nnc_ctx_close;
  m->call = nnc_ctx_call;
  m->error = nnc_ctx_error;
  m->set_threads = nnc_ctx_set_threads;
  m->threads = nnc_ctx_threads;
  return m;
}

int nnc_model_from_desc(const nnc_model_desc *desc, nnc_model **out, char **errmsg) {
  if (errmsg) *errmsg = NULL;
  if (!out) return NNC_ERR_USAGE;
  *out = NULL;
  int rc = check_desc(desc, desc && desc->name ? desc->name : "model", false, errmsg);
  if (rc) return rc;
  *out = model_new(desc);
  return *out ? NNC_OK : fail_msg(errmsg, NNC_ERR_NOMEM, "error: out of memory");
}

int nnc_model_compile(const char *nn_path, const char *weights_path, nnc_model **out,
                      char **errmsg) {
  return nnc_model_compile_defines(nn_path, weights_path, NULL, 0, out, errmsg);
}

int nnc_model_compile_defines(const char *nn_path, const char *weights_path,
                              const char *const *defines, int n_defines, nnc_model **out,
                              char **errmsg) {
  if (errmsg) *errmsg = NULL;
  if (!out || !nn_path || n_defines < 0 || (n_defines && !defines)) return NNC_ERR_USAGE;
  *out = NULL;
  NncCompileOptions opt = {.weights_path = weights_path, .defines = defines, .ndefines = n_defines};
  NncJit *jit = NULL;
  const nnc_model_desc *desc = NULL;
  char *msg = NULL;
  int failed = nnc_compile_jit(nn_path, &opt, &jit, &desc, &msg);
  if (failed) {
    if (errmsg && msg) *errmsg = msg;
    else free(msg);
    if (errmsg && !*errmsg) fail_msg(errmsg, 0, "%s: error: compilation failed", nn_path);
    return failed == NNC_COMPILE_NOMEM ? NNC_ERR_NOMEM : NNC_ERR_USER;
  }
  int rc = check_desc(desc, nn_path, false, errmsg);
  if (rc == NNC_OK && !(*out = model_new(desc)))
    rc = fail_msg(errmsg, NNC_ERR_NOMEM, "%s: error: out of memory", nn_path);
  if (rc) {
    nnc_jit_free(jit);
    return rc;
  }
  (*out)->jit = jit;
  return NNC_OK;
}

/* A path without a slash names a file in the current directory, not a library to search. */
static void *open_library(const char *path) {
  if (strchr(path, '/')) return dlopen(path, RTLD_NOW | RTLD_LOCAL);
  size_t n = strlen(path);
  char *p = malloc(n + 3);
  if (!p) return NULL;
  memcpy(p, "./", 2);
  memcpy(p + 2, path, n + 1);
  void *dl = dlopen(p, RTLD_NOW | RTLD_LOCAL);
  free(p);
  return dl;
}

static void *find_symbol(void *dl, const char *so_path, const char *name, int *rc,
                         char **errmsg) {
  if (*rc) return NULL;
  void *f = dlsym(dl, name);
  if (!f)
    *rc = fail_msg(errmsg, NNC_ERR_USER,
                   "%s: error: not a model library made by nnc (no symbol '%s')", so_path, name);
  return f;
}

/* dlopen maps a library's segments from the file: a truncated file faults (SIGBUS) when a
 * part past its end is touched.  Check that the file holds every segment and the section
 * table its ELF header names; a file that is not 64-bit ELF is left to dlopen to refuse. */
static int check_elf_size(const char *path, char **errmsg) {
  FILE *f = fopen(path, "rb");
  if (!f) return NNC_OK; /* dlopen says why */
  Elf64_Ehdr eh;
  int rc = NNC_OK;
  long size = -1;
  if (fread(&eh, sizeof eh, 1, f) == 1 && !memcmp(eh.e_ident, ELFMAG, SELFMAG) &&
      eh.e_ident[EI_CLASS] == ELFCLASS64 && fseek(f, 0, SEEK_END) == 0 && (size = ftell(f)) >= 0) {
    uint64_t n = (uint64_t)size, ph_end = eh.e_phoff + (uint64_t)eh.e_phnum * eh.e_phentsize;
    uint64_t sh_end = eh.e_shoff + (uint64_t)eh.e_shnum * eh.e_shentsize;
    if (eh.e_phentsize != sizeof(Elf64_Phdr) || ph_end > n || ph_end < eh.e_phoff || sh_end > n)
      rc = fail_msg(errmsg, NNC_ERR_USER, "%s: error: the library is truncated or damaged: its "
                    "ELF header names tables up to byte %llu, the file has %llu bytes", path,
                    (unsigned long long)(ph_end > sh_end ? ph_end : sh_end), (unsigned long long)n);
    for (int i = 0; rc == NNC_OK && i < eh.e_phnum; i++) {
      Elf64_Phdr ph;
      if (fseek(f, (long)(eh.e_phoff + (uint64_t)i * sizeof ph), SEEK_SET) || fread(&ph, sizeof ph, 1, f) != 1)
        break;
      if (ph.p_offset > n || ph.p_filesz > n - ph.p_offset)
        rc = fail_msg(errmsg, NNC_ERR_USER, "%s: error: the library is truncated: program header "
                      "%d needs bytes %llu to %llu, the file has %llu (rebuild it with nnc)", path,
                      i, (unsigned long long)ph.p_offset,
                      (unsigned long long)(ph.p_offset + ph.p_filesz), (unsigned long long)n);
    }
  }
  fclose(f);
  return rc;
}

int nnc_model_load(const char *so_path, nnc_model **out, char **errmsg) {
  if (errmsg) *errmsg = NULL;
  if (!out || !so_path) return NNC_ERR_USAGE;
  *out = NULL;
  int checked = check_elf_size(so_path, errmsg);
  if (checked) return checked;
  void *dl = open_library(so_path);
  if (!dl) {
    const char *why = dlerror();
    return fail_msg(errmsg, NNC_ERR_USER, "%s: error: cannot load the library: %s", so_path,
                    why ? why : "unknown reason");
  }
  int rc = NNC_OK;
  info_fn info = (info_fn)find_symbol(dl, so_path, "nnc_model_info", &rc, errmsg);
  open_fn open = (open_fn)find_symbol(dl, so_path, "nnc_ctx_open", &rc, errmsg);
  close_fn close = (close_fn)find_symbol(dl, so_path, "nnc_ctx_close", &rc, errmsg);
  call_fn call = (call_fn)find_symbol(dl, so_path, "nnc_ctx_call", &rc, errmsg);
  error_fn error = (error_fn)find_symbol(dl, so_path, "nnc_ctx_error", &rc, errmsg);
  set_threads_fn set_threads = (set_threads_fn)find_symbol(dl, so_path, "nnc_ctx_set_threads", &rc, errmsg);
  threads_fn threads = (threads_fn)find_symbol(dl, so_path, "nnc_ctx_threads", &rc, errmsg);
  const nnc_model_desc *desc = rc ? NULL : info();
  if (rc == NNC_OK) rc = check_desc(desc, so_path, true, errmsg);
  if (rc == NNC_OK && !(*out = model_new(desc)))
    rc = fail_msg(errmsg, NNC_ERR_NOMEM, "%s: error: out of memory", so_path);
  if (rc) {
    dlclose(dl);
    return rc;
  }
  **out = (nnc_model){desc, NULL, dl, open, close, call, error, set_threads, threads};
  return NNC_OK;
}

void nnc_model_free(nnc_model *m) {
  if (!m) return;
  nnc_jit_free(m->jit);
  if (m->dl) dlclose(m->dl);
  free(m);
}

const nnc_model_desc *nnc_model_desc_of(const nnc_model *m) { return m ? m->desc : NULL; }

int nnc_model_find_entry(const nnc_model *m, const char *name) {
  if (!m || !name) return -1;
  for (int i = 0; i < m->desc->n_entries; i++)
    if (strcmp(m->desc->entries[i].name, name) == 0) return i;
  return -1;
}

/* ---- contexts ---- */

static int max_args(const nnc_model_desc *d) {
  int n = 1;
  for (int i = 0; i < d->n_entries; i++)
    if (d->entries[i].n_in + d->entries[i].n_out > n) n = d->entries[i].n_in + d->entries[i].n_out;
  return n;
}

int nnc_context_open(nnc_model *m, const char *weights_path, nnc_context **out,
                     char **errmsg) {
  if (errmsg) *errmsg = NULL;
  if (!out) return NNC_ERR_USAGE;
  *out = NULL;
  if (!m) return fail_msg(errmsg, NNC_ERR_USAGE, "error: no model (NULL)");
  nnc_context *c = calloc(1, sizeof *c);
  if (c) c->args = calloc((size_t)max_args(m->desc), sizeof *c->args);
  if (!c || !c->args) {
    if (c) free(c);
    return fail_msg(errmsg, NNC_ERR_NOMEM, "%s: error: out of memory", m->desc->name);
  }
  char err[2048] = "";
  c->model = m;
  c->ctx = m->open(m->desc, weights_path, err, sizeof err);
  if (!c->ctx) {
    free(c->args);
    free(c);
    return fail_msg(errmsg, NNC_ERR_USER, "%s", err[0] ? err : "error: cannot open a context");
  }
  *out = c;
  return NNC_OK;
}

void nnc_context_free(nnc_context *c) {
  if (!c) return;
  c->model->close(c->ctx);
  free(c->args);
  free(c);
}

const char *nnc_context_error(const nnc_context *c) { return c ? c->err : "no context (NULL)"; }

int nnc_context_set_threads(nnc_context *c, int n) {
  if (!c) return NNC_ERR_USAGE;
  c->err[0] = '\0';
  if (n < 0 || n > MAX_THREADS)
    return fail_call(c, NNC_ERR_USAGE, "thread count %d out of range (0 to %d; 0: the default)",
                     n, MAX_THREADS);
  int rc = c->model->set_threads(c->ctx, n);
  if (rc == NNC_ERR_NOMEM) fail_call(c, rc, "out of memory for a pool of %d threads", n);
  return rc;
}

int nnc_context_threads(const nnc_context *c) { return c ? c->model->threads(c->ctx) : 0; }

/* ---- tensors ---- */

int nnc_dtype_size(int32_t dtype) {
  return dtype == NNC_F32 ? 4 : dtype == NNC_I64 ? 8 : 0;
}

int64_t nnc_tensor_numel(const nnc_tensor *t) {
  if (!t || t->rank < 0 || t->rank > NNC_MAX_RANK) return -1;
  int64_t n = 1;
  for (int i = 0; i < t->rank; i++)
    if (t->shape[i] < 0 || __builtin_mul_overflow(n, t->shape[i], &n)) return -1;
  return n;
}

void nnc_free(void *p) { free(p); }

static const char *dtype_str(int32_t dtype) {
  return dtype == NNC_F32 ? "f32" : dtype == NNC_I64 ? "i64" : "an unknown dtype";
}

/* "2*N*M", "N", "3" */
static void dim_str(const nnc_model_desc *d, nnc_dim dim, char *buf, size_t len) {
  size_t n = 0;
  buf[0] = '\0';
  if (dim.k != 1 || !dim.syms) n += snprintf(buf, len, "%lld", (long long)dim.k);
  for (int i = 0; i < d->n_syms && n < len; i++)
    if (dim.syms & (1u << i)) n += snprintf(buf + n, len - n, "%s%s", n ? "*" : "", d->sym_names[i]);
}

/* "f32[N, 2]" */
void nnc_arg_type_str(const nnc_model_desc *d, const nnc_arg_desc *a, char *buf, size_t len) {
  size_t n = (size_t)snprintf(buf, len, "%s[", dtype_str(a->dtype));
  for (int i = 0; i < a->rank && n < len; i++) {
    char s[128];
    dim_str(d, a->dims[i], s, sizeof s);
    n += snprintf(buf + n, len - n, "%s%s", i ? ", " : "", s);
  }
  if (n < len) snprintf(buf + n, len - n, "]");
}

static void shape_str(const int64_t *shape, int rank, char *buf, size_t len) {
  size_t n = (size_t)snprintf(buf, len, "[");
  for (int i = 0; i < rank && n < len; i++)
    n += snprintf(buf + n, len - n, "%s%lld", i ? ", " : "", (long long)shape[i]);
  if (n < len) snprintf(buf + n, len - n, "]");
}

/* ---- binding symbolic dims ---- */

typedef struct Call {
  nnc_context *c;
  const nnc_model_desc *d;
  const nnc_entry_desc *e;
  const nnc_tensor *in;
  uint32_t bound;  /* bit i: syms[i] is known */
} Call;

static int64_t known_product(const Call *k, nnc_dim dim, bool *overflow) {
  int64_t v = dim.k;
  for (int i = 0; i < k->d->n_syms; i++)
    if ((dim.syms & k->bound & (1u << i)) && __builtin_mul_overflow(v, k->c->syms[i], &v))
      *overflow = true;
  return v;
}

static int bind_sym(Call *k, int arg, int j, int sym) {
  nnc_dim dim = k->e->args[arg].dims[j];
  bool overflow = false;
  int64_t p = known_product(k, dim, &overflow), v = k->in[arg].shape[j];
  if (overflow || p <= 0) return NNC_OK; /* cannot solve here; checked afterwards */
  if (v % p) {
    char s[128];
    dim_str(k->d, dim, s, sizeof s);
    return fail_call(k->c, NNC_ERR_USER,
                     "input '%s' of entry '%s': dim %d is %lld, not a multiple of %lld (it is %s)",
                     k->e->args[arg].name, k->e->name, j, (long long)v, (long long)p, s);
  }
  k->c->syms[sym] = v / p;
  k->c->src_arg[sym] = arg;
  k->bound |= 1u << sym;
  return NNC_OK;
}

/* Bind the syms of dims with exactly one unknown sym: with single_only, only dims that have
 * one sym in all (so "N" binds N before "N*M" does); otherwise repeat until nothing changes.
 * A derived sym (`derived`: a layer's output size, a square) is computed, never bound: an
 * input of such a dim is checked against the computed value afterwards. */
static int bind_pass(Call *k, uint32_t derived, bool single_only, bool *changed) {
  for (int i = 0; i < k->e->n_in; i++)
    for (int j = 0; j < k->e->args[i].rank; j++) {
      nnc_dim dim = k->e->args[i].dims[j];
      uint32_t unknown = dim.syms & ~k->bound;
      if (__builtin_popcount(unknown) != 1 || (unknown & derived)) continue;
      if (single_only && __builtin_popcount(dim.syms) != 1) continue;
      int rc = bind_sym(k, i, j, __builtin_ctz(unknown));
      if (rc) return rc;
      if (k->bound & unknown) *changed = true;
    }
  return NNC_OK;
}

static int dim_mismatch(Call *k, int arg, int j, int64_t want) {
  const nnc_arg_desc *a = &k->e->args[arg];
  nnc_dim dim = a->dims[j];
  long long got = k->in[arg].shape[j];
  char type[512], s[128];
  nnc_arg_type_str(k->d, a, type, sizeof type);
  if (!dim.syms)
    return fail_call(k->c, NNC_ERR_USER, "input '%s' of entry '%s': dim %d is %lld, expected %lld (%s: %s)",
                     a->name, k->e->name, j, got, (long long)want, a->name, type);
  int sym = __builtin_ctz(dim.syms), from = k->c->src_arg[sym]; /* -1: a derived sym */
  if (dim.k == 1 && __builtin_popcount(dim.syms) == 1 && from >= 0)
    return fail_call(k->c, NNC_ERR_USER, "input '%s' of entry '%s': dim %d is %lld but %s is already %lld from input '%s'",
                     a->name, k->e->name, j, got, k->d->sym_names[sym], (long long)k->c->syms[sym], k->e->args[from].name);
  dim_str(k->d, dim, s, sizeof s);
  return fail_call(k->c, NNC_ERR_USER, "input '%s' of entry '%s': dim %d is %lld but %s = %lld here (%s: %s)",
                   a->name, k->e->name, j, got, s, (long long)want, a->name, type);
}

static int check_input_dims(Call *k) {
  for (int i = 0; i < k->e->n_in; i++)
    for (int j = 0; j < k->e->args[i].rank; j++) {
      bool overflow = false;
      int64_t want = known_product(k, k->e->args[i].dims[j], &overflow);
      if (overflow)
        return fail_call(k->c, NNC_ERR_USER, "input '%s' of entry '%s': dim %d overflows",
                         k->e->args[i].name, k->e->name, j);
      if (want != k->in[i].shape[j]) return dim_mismatch(k, i, j, want);
    }
  return NNC_OK;
}

static uint32_t entry_syms(const nnc_entry_desc *e) {
  uint32_t s = e->syms; /* its kernels' dims (derived ones among them) */
  for (int i = 0; i < e->n_in + e->n_out; i++)
    for (int j = 0; j < e->args[i].rank; j++) s |= e->args[i].dims[j].syms;
  for (int i = 0; i < e->n_slots; i++) s |= e->slots[i].bytes.syms | e->slots[i].at.syms;
  return s;
}

static bool sym_in_inputs(const nnc_entry_desc *e, int sym) {
  for (int i = 0; i < e->n_in; i++)
    for (int j = 0; j < e->args[i].rank; j++)
      if (e->args[i].dims[j].syms & (1u << sym)) return true;
  return false;
}

static int bind_syms(Call *k) {
  for (int i = 0; i < k->d->n_syms; i++) {
    k->c->syms[i] = 0;
    k->c->src_arg[i] = -1;
  }
  uint32_t derived = 0; /* computed from the others (a layer's output size, a square), not bound */
  for (int i = 0; k->d->sym_rules && i < k->d->n_syms; i++)
    if (k->d->sym_rules[i].src >= 0) derived |= 1u << i;
  bool changed = false;
  int rc = bind_pass(k, derived, true, &changed);
  for (changed = true; rc == NNC_OK && changed;) {
    changed = false;
    rc = bind_pass(k, derived, false, &changed);
  }
  if (rc) return rc;
  uint32_t need = entry_syms(k->e); /* and the syms the derived ones are computed from */
  for (int i = k->d->n_syms - 1; i >= 0; i--)
    if ((need & derived) >> i & 1) need |= 1u << k->d->sym_rules[i].src;
  uint32_t unbound = need & ~k->bound & ~derived;
  if (unbound) {
    int sym = __builtin_ctz(unbound), user = -1; /* a size computed from it that an input has */
    for (int i = sym + 1; i < k->d->n_syms && user < 0; i++)
      if ((derived >> i & 1) && k->d->sym_rules[i].src == sym && sym_in_inputs(k->e, i)) user = i;
    char why[160] = "";
    if (user >= 0) snprintf(why, sizeof why, " (the inputs have %s, computed from it, not %s itself)",
                            k->d->sym_names[user], k->d->sym_names[sym]);
    else if (!sym_in_inputs(k->e, sym)) snprintf(why, sizeof why, " (it appears only in outputs)");
    return fail_call(k->c, NNC_ERR_USER, "entry '%s': cannot infer %s from the input shapes%s", k->e->name,
                     k->d->sym_names[sym], why);
  }
  char err[512];
  if (derived &&
      nnc_derive_syms(k->d->sym_rules, k->d->n_syms, k->d->sym_names, entry_syms(k->e), k->c->syms, err, sizeof err))
    return fail_call(k->c, NNC_ERR_USER, "entry '%s': %s", k->e->name, err);
  k->bound |= derived;
  return check_input_dims(k); /* every input dim, the derived ones included */
}

/* ---- checking arguments ---- */

static int check_inputs(Call *k) {
  for (int i = 0; i < k->e->n_in; i++) {
    const nnc_arg_desc *a = &k->e->args[i];
    const nnc_tensor *t = &k->in[i];
    char type[512];
    nnc_arg_type_str(k->d, a, type, sizeof type);
    if (t->dtype != a->dtype)
      return fail_call(k->c, NNC_ERR_USER, "input '%s' of entry '%s' must be %s, got %s",
                       a->name, k->e->name, dtype_str(a->dtype), dtype_str(t->dtype));
    if (t->rank != a->rank)
      return fail_call(k->c, NNC_ERR_USER, "input '%s' of entry '%s' must have rank %d (%s), got rank %d",
                       a->name, k->e->name, a->rank, type, t->rank);
    int64_t n = 1, bytes = nnc_dtype_size(t->dtype);
    char shape[256];
    for (int j = 0; j < t->rank; j++) {
      if (t->shape[j] < 0)
        return fail_call(k->c, NNC_ERR_USER, "input '%s' of entry '%s': dim %d is %lld (must be >= 0)",
                         a->name, k->e->name, j, (long long)t->shape[j]);
      n *= t->shape[j] > 0; /* 0 or 1: an empty tensor */
      if (t->shape[j] > 0 && __builtin_mul_overflow(bytes, t->shape[j], &bytes)) {
        shape_str(t->shape, t->rank, shape, sizeof shape);
        return fail_call(k->c, NNC_ERR_USER, "input '%s' of entry '%s': shape %s would need more "
                         "than 2^63 bytes%s", a->name, k->e->name, shape,
                         nnc_tensor_numel(t) == 0 ? " (its zero dims aside)" : "");
      }
    }
    if (n > 0 && !t->data)
      return fail_call(k->c, NNC_ERR_USAGE, "input '%s' of entry '%s' has no data (NULL)",
                       a->name, k->e->name);
  }
  return NNC_OK;
}

/* The shape of output `o` from the bound syms. */
static int output_shape(Call *k, int o, int64_t *shape) {
  const nnc_arg_desc *a = &k->e->args[k->e->n_in + o];
  for (int j = 0; j < a->rank; j++) {
    bool overflow = false;
    shape[j] = known_product(k, a->dims[j], &overflow);
    if (overflow || shape[j] < 0)
      return fail_call(k->c, NNC_ERR_USER, "output '%s' of entry '%s': dim %d overflows",
                       a->name, k->e->name, j);
  }
  return NNC_OK;
}

static int check_output(Call *k, int o, const nnc_tensor *t, const int64_t *shape) {
  const nnc_arg_desc *a = &k->e->args[k->e->n_in + o];
  char got[256], want[256];
  shape_str(t->shape, t->rank >= 0 && t->rank <= NNC_MAX_RANK ? t->rank : 0, got, sizeof got);
  shape_str(shape, a->rank, want, sizeof want);
  if (t->dtype != a->dtype)
    return fail_call(k->c, NNC_ERR_USER, "output '%s' of entry '%s' must be %s, got %s", a->name,
                     k->e->name, dtype_str(a->dtype), dtype_str(t->dtype));
  bool same = t->rank == a->rank;
  for (int j = 0; same && j < a->rank; j++) same = t->shape[j] == shape[j];
  if (!same)
    return fail_call(k->c, NNC_ERR_USER, "output '%s' of entry '%s' has shape %s, expected %s",
                     a->name, k->e->name, got, want);
  return NNC_OK;
}

static int alloc_output(Call *k, int o, nnc_tensor *t, const int64_t *shape) {
  const nnc_arg_desc *a = &k->e->args[k->e->n_in + o];
  t->dtype = a->dtype;
  t->rank = a->rank;
  memcpy(t->shape, shape, sizeof(int64_t) * (size_t)a->rank);
  int64_t n = nnc_tensor_numel(t), bytes;
  if (n < 0 || __builtin_mul_overflow(n, (int64_t)nnc_dtype_size(a->dtype), &bytes) ||
      bytes > INT64_MAX - ALIGN)
    return fail_call(k->c, NNC_ERR_USER, "output '%s' of entry '%s' is too large", a->name,
                     k->e->name);
  size_t size = ((size_t)bytes + ALIGN - 1) / ALIGN * ALIGN;
  t->data = aligned_alloc(ALIGN, size ? size : ALIGN);
  if (!t->data)
    return fail_call(k->c, NNC_ERR_NOMEM, "output '%s' of entry '%s': out of memory (%lld bytes)",
                     a->name, k->e->name, (long long)bytes);
  return NNC_OK;
}

/* "N = 3, M = 4": the bound values of the symbolic dims in `mask`, for messages. */
static void bound_str(const Call *k, uint32_t mask, char *buf, size_t len) {
  size_t n = 0;
  buf[0] = '\0';
  for (int i = 0; i < k->d->n_syms && n < len; i++)
    if (mask & (1u << i))
      n += (size_t)snprintf(buf + n, len - n, "%s%s = %lld", n ? ", " : "", k->d->sym_names[i],
                            (long long)k->c->syms[i]);
}

/* Before anything is allocated: every output's byte size (its zero dims left out, as the
 * library's own check does) and the workspace fit in int64, exactly. */
static int check_sizes(Call *k) {
  char type[512], vals[512];
  for (int o = 0; o < k->e->n_out; o++) {
    const nnc_arg_desc *a = &k->e->args[k->e->n_in + o];
    int64_t bytes = nnc_dtype_size(a->dtype);
    bool overflow = false;
    uint32_t mask = 0;
    for (int j = 0; j < a->rank && !overflow; j++) {
      int64_t v = known_product(k, a->dims[j], &overflow);
      mask |= a->dims[j].syms;
      if (v > 0) overflow |= __builtin_mul_overflow(bytes, v, &bytes);
    }
    if (overflow) {
      nnc_arg_type_str(k->d, a, type, sizeof type);
      bound_str(k, mask, vals, sizeof vals);
      return fail_call(k->c, NNC_ERR_USER, "output '%s' of entry '%s' (%s) would need more than "
                       "2^63 bytes (%s)", a->name, k->e->name, type, vals);
    }
  }
  if (nnc_entry_workspace_size(k->e, k->c->syms) < 0) {
    uint32_t mask = 0;
    for (int i = 0; i < k->e->n_slots; i++) mask |= k->e->slots[i].bytes.syms | k->e->slots[i].at.syms;
    bound_str(k, mask, vals, sizeof vals);
    return fail_call(k->c, NNC_ERR_USER, "entry '%s': the workspace would need more than 2^63 "
                     "bytes (%s)", k->e->name, vals);
  }
  return NNC_OK;
}

/* Check or allocate every output; `allocated` gets a bit per output allocated here. */
static int prepare_outputs(Call *k, nnc_tensor *out, uint64_t *allocated) {
  for (int o = 0; o < k->e->n_out; o++) {
    int64_t shape[NNC_MAX_RANK];
    int rc = output_shape(k, o, shape);
    if (rc == NNC_OK && out[o].data) rc = check_output(k, o, &out[o], shape);
    else if (rc == NNC_OK) {
      rc = alloc_output(k, o, &out[o], shape);
      if (rc == NNC_OK) *allocated |= 1ull << o;
    }
    if (rc) return rc;
  }
  return NNC_OK;
}

static void free_outputs(nnc_tensor *out, int n_out, uint64_t allocated) {
  for (int o = 0; o < n_out; o++)
    if (allocated & (1ull << o)) {
      free(out[o].data);
      out[o].data = NULL;
    }
}

static int check_call(nnc_context *c, int entry, const nnc_tensor *in, int n_in,
                      nnc_tensor *out, int n_out) {
  const nnc_model_desc *d = c->model->desc;
  if (entry < 0 || entry >= d->n_entries)
    return fail_call(c, NNC_ERR_USAGE, "entry index %d out of range (the model has %d entries)",
                     entry, d->n_entries);
  const nnc_entry_desc *e = &d->entries[entry];
  if (n_in != e->n_in || n_out != e->n_out)
    return fail_call(c, NNC_ERR_USAGE, "entry '%s' takes %d inputs and %d outputs, got %d and %d",
                     e->name, e->n_in, e->n_out, n_in, n_out);
  if ((n_in > 0 && !in) || (n_out > 0 && !out))
    return fail_call(c, NNC_ERR_USAGE, "entry '%s': NULL tensor array", e->name);
  if (n_out > 64)
    return fail_call(c, NNC_ERR_USAGE, "entry '%s' has more than 64 outputs", e->name);
  return NNC_OK;
}

int nnc_call(nnc_context *c, int entry, const nnc_tensor *in, int n_in, nnc_tensor *out,
             int n_out) {
  if (!c) return NNC_ERR_USAGE;
  c->err[0] = '\0';
  int rc = check_call(c, entry, in, n_in, out, n_out);
  if (rc) return rc;
  Call k = {c, c->model->desc, &c->model->desc->entries[entry], in, 0};
  rc = check_inputs(&k);
  if (rc == NNC_OK) rc = bind_syms(&k);
  if (rc == NNC_OK) rc = check_sizes(&k);
  uint64_t allocated = 0;
  if (rc == NNC_OK) rc = prepare_outputs(&k, out, &allocated);
  if (rc == NNC_OK) {
    for (int i = 0; i < n_in; i++) c->args[i] = in[i].data;
    for (int o = 0; o < n_out; o++) c->args[n_in + o] = out[o].data;
    rc = c->model->call(c->ctx, entry, c->args, c->syms);
    if (rc) snprintf(c->err, sizeof c->err, "%s", c->model->error(c->ctx));
  }
  if (rc) free_outputs(out, n_out, allocated);
  return rc;
}
