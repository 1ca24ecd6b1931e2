/* so_timer.c — time one entry of an nnc-generated .so through the generic ABI.
 *
 *   so_timer LIB.so ENTRY OUTDIR [-n MAX_ITERS] NAME=IN.npy ...
 *
 * Loads the library with dlopen, opens a context (embedded weights), reads the inputs (by
 * argument name), binds the symbolic dims from their shapes, allocates the outputs, calls the
 * entry once to warm up, then times up to MAX_ITERS calls (at most ~0.5 s) and prints
 * "median_us=<µs>".  Each output is written to OUTDIR/<name>.npy.  Uses only
 * runtime/include/nnc_model.h, so it does not depend on the runtime library.  Used by
 * scripts/run_examples.sh; the .npy reader/writer here handles just '<f4' and '<i8', C order. */
#define _GNU_SOURCE /* clock_gettime, aligned_alloc under -std=c11 */
#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nnc_model.h"

#define MAX_RANK 8

typedef const nnc_model_desc *(*info_fn)(void);
typedef nnc_ctx *(*open_fn)(const nnc_model_desc *, const char *, char *, size_t);
typedef void (*close_fn)(nnc_ctx *);
typedef int (*call_fn)(nnc_ctx *, int, void *const *, const int64_t *);
typedef const char *(*error_fn)(const nnc_ctx *);
typedef int (*derive_fn)(const nnc_sym_rule *, int, const char *const *, uint32_t, int64_t *, char *, size_t);

typedef struct Array {
  int dtype; /* enum nnc_dtype */
  int rank;
  int64_t shape[MAX_RANK];
  void *data;
  size_t nbytes;
} Array;

static void fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "so_timer: ");
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  exit(1);
}

static size_t elem_size(int dtype) { return dtype == NNC_I64 ? 8 : 4; }

static void *alloc64(size_t n) {
  void *p = aligned_alloc(64, (n + 63) / 64 * 64 + 64);
  if (!p) fail("out of memory");
  memset(p, 0, n);
  return p;
}

/* Parses the header dict of a version 1/2/3 .npy file. */
static void npy_read(const char *path, Array *a) {
  FILE *f = fopen(path, "rb");
  if (!f) fail("cannot open %s", path);
  unsigned char pre[12];
  if (fread(pre, 1, 10, f) != 10 || memcmp(pre, "\x93NUMPY", 6) != 0)
    fail("%s: not a .npy file", path);
  size_t hlen = pre[8] | (size_t)pre[9] << 8;
  if (pre[6] >= 2) {
    if (fread(pre + 10, 1, 2, f) != 2) fail("%s: truncated", path);
    hlen |= (size_t)pre[10] << 16 | (size_t)pre[11] << 24;
  }
  if (hlen > 100000) fail("%s: header too long", path);
  char *h = calloc(1, hlen + 1);
  if (!h || fread(h, 1, hlen, f) != hlen) fail("%s: truncated header", path);
  if (strstr(h, "'<f4'")) a->dtype = NNC_F32;
  else if (strstr(h, "'<i8'")) a->dtype = NNC_I64;
  else fail("%s: only '<f4' and '<i8' are supported: %s", path, h);
  if (strstr(h, "'fortran_order': True")) fail("%s: Fortran order is not supported", path);
  char *s = strstr(h, "'shape':");
  s = s ? strchr(s, '(') : NULL;
  if (!s) fail("%s: no shape in header", path);
  a->rank = 0;
  size_t n = 1;
  for (s++; *s && *s != ')';) {
    char *end;
    long long d = strtoll(s, &end, 10);
    if (end == s) { s++; continue; }
    if (a->rank == MAX_RANK) fail("%s: rank too large", path);
    a->shape[a->rank++] = d;
    n *= (size_t)d;
    s = end;
  }
  free(h);
  a->nbytes = n * elem_size(a->dtype);
  a->data = alloc64(a->nbytes);
  if (fread(a->data, 1, a->nbytes, f) != a->nbytes) fail("%s: truncated data", path);
  fclose(f);
}

static void npy_write(const char *path, const Array *a) {
  char dict[512];
  int off = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (",
                     a->dtype == NNC_I64 ? "<i8" : "<f4");
  for (int i = 0; i < a->rank; i++)
    off += snprintf(dict + off, sizeof dict - off, "%lld%s", (long long)a->shape[i],
                    a->rank == 1 ? "," : i + 1 < a->rank ? ", " : "");
  off += snprintf(dict + off, sizeof dict - off, "), }");
  size_t total = (size_t)(10 + off + 1 + 63) / 64 * 64; /* header padded to 64 bytes */
  size_t hlen = total - 10;
  memset(dict + off, ' ', hlen - 1 - off);
  dict[hlen - 1] = '\n';
  unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, hlen & 0xff, hlen >> 8};
  FILE *f = fopen(path, "wb");
  if (!f || fwrite(pre, 1, 10, f) != 10 || fwrite(dict, 1, hlen, f) != hlen ||
      fwrite(a->data, 1, a->nbytes, f) != a->nbytes || fclose(f) != 0)
    fail("cannot write %s", path);
}

static double now_us(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* Binds symbolic dims from input shapes: a dim k*prod(syms) with all syms but one known
 * determines the last one.  Repeats until nothing changes, then checks every input dim. */
static void bind_syms(const nnc_model_desc *m, const nnc_entry_desc *e, Array *in,
                      int64_t *syms) {
  int known[32] = {0};
  for (int changed = 1; changed;) {
    changed = 0;
    for (int i = 0; i < e->n_in; i++)
      for (int d = 0; d < e->args[i].rank; d++) {
        nnc_dim dim = e->args[i].dims[d];
        int64_t prod = dim.k;
        int unknown = -1, n_unknown = 0;
        for (int s = 0; s < m->n_syms && s < 32; s++)
          if (dim.syms >> s & 1) {
            if (known[s]) prod *= syms[s];
            else unknown = s, n_unknown++;
          }
        if (n_unknown == 1 && prod != 0 && in[i].shape[d] % prod == 0) {
          syms[unknown] = in[i].shape[d] / prod;
          known[unknown] = changed = 1;
        }
      }
  }
  for (int i = 0; i < e->n_in; i++)
    for (int d = 0; d < e->args[i].rank; d++) {
      nnc_dim dim = e->args[i].dims[d];
      int64_t want = dim.k;
      for (int s = 0; s < m->n_syms && s < 32; s++)
        if (dim.syms >> s & 1) want *= known[s] ? syms[s] : -1;
      if (want != in[i].shape[d])
        fail("input '%s' has a shape that does not match entry '%s'", e->args[i].name, e->name);
    }
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: so_timer LIB.so ENTRY OUTDIR [-n MAX_ITERS] NAME=IN.npy ...\n");
    return 2;
  }
  const char *lib = argv[1], *entry = argv[2], *outdir = argv[3];
  int argi = 4, max_iters = 1000;
  if (argi + 1 < argc && strcmp(argv[argi], "-n") == 0) {
    max_iters = atoi(argv[argi + 1]);
    if (max_iters < 1) max_iters = 1;
    argi += 2;
  }

  void *h = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
  if (!h) fail("dlopen: %s", dlerror());
  /* POSIX's way of turning dlsym's void * into a function pointer */
  info_fn info;
  open_fn ctx_open;
  close_fn ctx_close;
  call_fn ctx_call;
  error_fn ctx_error;
  derive_fn derive;
  *(void **)&info = dlsym(h, "nnc_model_info");
  *(void **)&ctx_open = dlsym(h, "nnc_ctx_open");
  *(void **)&ctx_close = dlsym(h, "nnc_ctx_close");
  *(void **)&ctx_call = dlsym(h, "nnc_ctx_call");
  *(void **)&ctx_error = dlsym(h, "nnc_ctx_error");
  *(void **)&derive = dlsym(h, "nnc_derive_syms");
  if (!info || !ctx_open || !ctx_close || !ctx_call || !ctx_error || !derive)
    fail("%s does not export the nnc model ABI", lib);
  const nnc_model_desc *m = info();
  if (m->abi_version != NNC_MODEL_ABI) fail("%s: unsupported ABI version", lib);

  int ei = -1;
  for (int i = 0; i < m->n_entries; i++)
    if (strcmp(m->entries[i].name, entry) == 0) ei = i;
  if (ei < 0) fail("%s has no entry '%s'", lib, entry);
  const nnc_entry_desc *e = &m->entries[ei];
  int nargs = e->n_in + e->n_out;
  Array *arrs = calloc(nargs, sizeof *arrs);
  void **args = calloc(nargs, sizeof *args);
  int64_t *syms = calloc(m->n_syms + 1, sizeof *syms);

  for (int i = e->n_in; i-- > 0;) {
    const char *name = e->args[i].name, *path = NULL;
    size_t len = strlen(name);
    for (int a = argi; a < argc; a++)
      if (strncmp(argv[a], name, len) == 0 && argv[a][len] == '=') path = argv[a] + len + 1;
    if (!path) fail("missing input %s=PATH.npy for entry '%s'", name, entry);
    npy_read(path, &arrs[i]);
    if (arrs[i].dtype != e->args[i].dtype || arrs[i].rank != e->args[i].rank)
      fail("input '%s': wrong dtype or rank (%s)", name, path);
  }
  bind_syms(m, e, arrs, syms);
  /* the dims derived from those (an output's (H + 1) / 2), as the library computes them */
  uint32_t used = 0;
  for (int i = 0; i < nargs; i++)
    for (int d = 0; d < e->args[i].rank; d++) used |= (uint32_t)e->args[i].dims[d].syms;
  char derr[512] = "";
  if (m->sym_rules && derive(m->sym_rules, m->n_syms, m->sym_names, used, syms, derr, sizeof derr) != 0)
    fail("%s", derr);
  for (int i = e->n_in; i < nargs; i++) {
    Array *a = &arrs[i];
    a->dtype = e->args[i].dtype;
    a->rank = e->args[i].rank;
    size_t n = 1;
    for (int d = 0; d < a->rank; d++) {
      nnc_dim dim = e->args[i].dims[d];
      a->shape[d] = dim.k;
      for (int s = 0; s < m->n_syms && s < 32; s++)
        if (dim.syms >> s & 1) a->shape[d] *= syms[s];
      n *= (size_t)a->shape[d];
    }
    a->nbytes = n * elem_size(a->dtype);
    a->data = alloc64(a->nbytes);
  }
  for (int i = 0; i < nargs; i++) args[i] = arrs[i].data;

  char err[1024] = "";
  nnc_ctx *ctx = ctx_open(m, NULL, err, sizeof err);
  if (!ctx) fail("cannot open a context: %s", err);
  if (ctx_call(ctx, ei, args, syms) != 0) fail("call failed: %s", ctx_error(ctx));

  double *t = calloc(max_iters, sizeof *t);
  double start = now_us();
  int n = 0;
  while (n < max_iters && (n < 5 || now_us() - start < 5e5)) {
    double t0 = now_us();
    if (ctx_call(ctx, ei, args, syms) != 0) fail("call failed: %s", ctx_error(ctx));
    t[n++] = now_us() - t0;
  }
  qsort(t, n, sizeof *t, cmp_double);
  double median = n % 2 ? t[n / 2] : (t[n / 2 - 1] + t[n / 2]) / 2;

  for (int i = e->n_in; i < nargs; i++) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.npy", outdir, e->args[i].name);
    npy_write(path, &arrs[i]);
  }
  printf("median_us=%.3f iters=%d\n", median, n);

  ctx_close(ctx);
  for (int i = 0; i < nargs; i++) free(arrs[i].data);
  free(arrs), free(args), free(syms), free(t);
  dlclose(h);
  return 0;
}
