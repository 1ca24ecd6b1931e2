/* test_weights.c — weights replaced, missing, unbounded or damaged (issue 16, items 1, 5, 6,
 * 10, 11), through the C API and a library's own exported functions:
 *   - a library compiled with embedded weights W1, opened with a file W2 (nnc_context_open,
 *     the header's <model>_open, a JIT model), computes bit for bit what a library with W2
 *     embedded computes, on a model whose derived parameters are not trivial (BatchNorm
 *     folded into a convolution, Winograd weights, an LSTM, hoisted transposes of Linear:
 *     seven derived parameters);
 *   - num_batches_tracked may be absent from a weights file, for every norm layer;
 *   - a missing tensor names the file's unused look-alike;
 *   - /dev/zero, a directory or a too-large file are refused before anything is read;
 *   - a truncated library, a model table with a bad count, a flipped bit in the embedded
 *     weights are errors that name the file, never a crash or a changed result. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <elf.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "compile.h"
#include "fileio.h"
#include "nnc.h"
#include "npy.h"
#include "safetensors.h"

static const char model_src[] =
    "conv = Conv2d(8, 16, 3, padding=1)\n"
    "bn = BatchNorm2d(16)\n"
    "conv2 = Conv2d(16, 4, 1)\n"
    "wg = Conv2d(16, 16, 3, padding=1)\n" /* Winograd: its transformed weights are derived */
    "mlp = Sequential(Linear(2, 64), ReLU(), Linear(64, 2))\n"
    "lstm = LSTM(4, 8, batch_first=true)\n"
    "export forward(x: f32[N, 8, 12, 12], v: f32[N, 2], s: f32[N, 5, 4], u: f32[N, 16, 16, 16]) "
    "-> (y: f32[N, 4, 12, 12], m: f32[N, 2], h: f32[N, 5, 8], g: f32[N, 16, 16, 16]) {\n"
    "  y = conv2(relu(bn(conv(x))))\n"
    "  m = mlp(v)\n"
    "  h, state = lstm(s)\n"
    "  g = wg(u)\n"
    "}\n";

static const char norms_src[] =
    "bn1 = BatchNorm1d(4)\n"
    "inorm = InstanceNorm2d(4, affine=true, track_running_stats=true)\n"
    "export forward(x: f32[N, 4], z: f32[N, 4, 3, 3]) -> (y: f32[N, 4], w: f32[N, 4, 3, 3]) {\n"
    "  y = bn1(x)\n"
    "  w = inorm(z)\n"
    "}\n";

enum { NB = 2, NX = NB * 8 * 12 * 12, NV = NB * 2, NS = NB * 5 * 4, NU = NB * 16 * 16 * 16 };
enum { NY = NB * 4 * 12 * 12, NM = NB * 2, NH = NB * 5 * 8, NG = NU };

static char dir[64];
static float x_in[NX], v_in[NV], s_in[NS], u_in[NU];

static const char *tmp(const char *name) {
  static char paths[16][128];
  static int next;
  char *p = paths[next++ % 16];
  snprintf(p, 128, "%s/%s", dir, name);
  return p;
}

static float noise(uint64_t *state) { /* uniform in [-1, 1) */
  *state = *state * 6364136223846793005ull + 1442695040888963407ull;
  return (float)((*state >> 40) / (double)(1 << 24)) * 2 - 1;
}

static void write_text(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
}

/* Random weights for the parameters of `m` into `path`: running_var positive; the tensors
 * named in skip[] left out, the one called `rename` (if any) written as `to`. */
static void write_weights(const nnc_model *m, uint64_t seed, const char *path,
                          const char *const *skip, const char *rename, const char *to) {
  const nnc_model_desc *d = nnc_model_desc_of(m);
  StTensor *t = calloc((size_t)d->n_params, sizeof *t);
  int n = 0;
  for (int i = 0; i < d->n_params; i++) {
    const nnc_param_desc *p = &d->params[i];
    bool skipped = false;
    for (int k = 0; skip && skip[k]; k++) skipped |= !strcmp(skip[k], p->name);
    if (skipped) continue;
    t[n] = (StTensor){.name = (char *)(rename && !strcmp(rename, p->name) ? to : p->name),
                      .dtype = p->dtype == NNC_I64 ? ST_I64 : ST_F32, .rank = p->rank,
                      .nbytes = p->nbytes};
    if (p->rank) memcpy(t[n].shape, p->shape, sizeof(int64_t) * (size_t)p->rank);
    void *data = malloc(p->nbytes + 1);
    for (uint64_t k = 0; k < p->nbytes / 4; k++)
      if (p->dtype == NNC_I64) ((int64_t *)data)[k / 2] = 7;
      else ((float *)data)[k] = strstr(p->name, "running_var") ? noise(&seed) + 1.5f : noise(&seed);
    t[n++].data = data;
  }
  char err[512];
  if (st_write_file(path, t, n, err, sizeof err)) fail_msg("%s", err);
  for (int i = 0; i < n; i++) free((void *)t[i].data);
  free(t);
}

static nnc_model *load(const char *so) {
  nnc_model *m = NULL;
  char *msg = NULL;
  if (nnc_model_load(so, &m, &msg)) fail_msg("%s", msg);
  return m;
}

static void compile_so(const char *nn, const char *so, const char *weights) {
  char *msg = NULL;
  NncCompileOptions opt = {.weights_path = weights};
  if (nnc_compile_so(nn, so, &opt, &msg)) fail_msg("%s", msg);
}

static int setup(void **state) {
  (void)state;
  strcpy(dir, "/tmp/nnc_weights_XXXXXX");
  if (!mkdtemp(dir)) return -1;
  uint64_t seed = 5;
  for (int i = 0; i < NX; i++) x_in[i] = noise(&seed);
  for (int i = 0; i < NV; i++) v_in[i] = noise(&seed) * 3;
  for (int i = 0; i < NS; i++) s_in[i] = noise(&seed);
  for (int i = 0; i < NU; i++) u_in[i] = noise(&seed);
  write_text(tmp("replace.nn"), model_src);
  write_text(tmp("norms.nn"), norms_src);
  compile_so(tmp("replace.nn"), tmp("plain.so"), NULL);
  nnc_model *m = load(tmp("plain.so"));
  static const char *const no_nbt[] = {"bn.num_batches_tracked", NULL};
  write_weights(m, 1, tmp("w1.safetensors"), NULL, NULL, NULL);
  write_weights(m, 2, tmp("w2.safetensors"), no_nbt, NULL, NULL); /* item 5 too */
  nnc_model_free(m);
  compile_so(tmp("replace.nn"), tmp("emb1.so"), tmp("w1.safetensors"));
  compile_so(tmp("replace.nn"), tmp("emb2.so"), tmp("w2.safetensors"));
  return 0;
}

static int teardown(void **state) {
  (void)state;
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  return system(cmd) == 0 ? 0 : -1;
}

typedef struct Out {
  float y[NY], m[NM], h[NH], g[NG];
} Out;

static void run_api(nnc_model *model, const char *weights, Out *o) {
  nnc_context *c = NULL;
  char *msg = NULL;
  if (nnc_context_open(model, weights, &c, &msg)) fail_msg("%s", msg);
  nnc_tensor in[4] = {{x_in, NNC_F32, 4, {NB, 8, 12, 12}}, {v_in, NNC_F32, 2, {NB, 2}},
                      {s_in, NNC_F32, 3, {NB, 5, 4}}, {u_in, NNC_F32, 4, {NB, 16, 16, 16}}};
  nnc_tensor out[4] = {{o->y, NNC_F32, 4, {NB, 4, 12, 12}}, {o->m, NNC_F32, 2, {NB, 2}},
                       {o->h, NNC_F32, 3, {NB, 5, 8}}, {o->g, NNC_F32, 4, {NB, 16, 16, 16}}};
  if (nnc_call(c, nnc_model_find_entry(model, "forward"), in, 4, out, 4))
    fail_msg("%s", nnc_context_error(c));
  nnc_context_free(c);
}

static void run_so(const char *so, const char *weights, Out *o) {
  nnc_model *m = load(so);
  run_api(m, weights, o);
  nnc_model_free(m);
}

/* The typed functions of the generated header: replace_open, replace_forward. */
static void run_header(const char *so, const char *weights, Out *o) {
  void *dl = dlopen(so, RTLD_NOW | RTLD_LOCAL);
  assert_non_null(dl);
  void *(*open)(const char *, char *, size_t) = (void *(*)(const char *, char *, size_t))dlsym(dl, "replace_open");
  void (*close)(void *) = (void (*)(void *))dlsym(dl, "replace_close");
  typedef int fwd_fn(void *, int64_t, const float *, const float *, const float *, const float *,
                     float *, float *, float *, float *);
  fwd_fn *fwd = (fwd_fn *)dlsym(dl, "replace_forward");
  assert_true(open && close && fwd);
  char err[1024];
  void *ctx = open(weights, err, sizeof err);
  if (!ctx) fail_msg("%s", err);
  assert_int_equal(fwd(ctx, NB, x_in, v_in, s_in, u_in, o->y, o->m, o->h, o->g), 0);
  close(ctx);
  dlclose(dl);
}

static void assert_same(const Out *a, const Out *b) {
  assert_memory_equal(a, b, sizeof *a);
}

/* ---- item 1: a weights file replaces embedded weights, derived parameters included ---- */

static void test_replaced_weights_equal_embedded(void **state) {
  (void)state;
  static Out want, got, other;
  run_so(tmp("emb2.so"), NULL, &want);
  /* the result is not trivial: the two rows of m differ (not a constant row) */
  assert_true(want.m[0] != want.m[2] || want.m[1] != want.m[3]);
  run_so(tmp("emb1.so"), NULL, &other);
  assert_memory_not_equal(&want, &other, sizeof want);
  nnc_model *m = load(tmp("emb1.so")); /* the init entry is in an embedded build too */
  assert_non_null(nnc_model_desc_of(m)->init);
  nnc_model_free(m);
  run_so(tmp("emb1.so"), tmp("w2.safetensors"), &got);  /* nnc_context_open */
  assert_same(&want, &got);
  run_so(tmp("plain.so"), tmp("w2.safetensors"), &got); /* weights at run time only */
  assert_same(&want, &got);
  memset(&got, 0, sizeof got);
  run_header(tmp("emb1.so"), tmp("w2.safetensors"), &got); /* <model>_open */
  assert_same(&want, &got);
  run_header(tmp("emb1.so"), NULL, &got); /* and the embedded ones are still W1's */
  assert_same(&other, &got);
}

static void test_replaced_weights_jit(void **state) {
  (void)state;
  static Out want, got;
  run_so(tmp("emb2.so"), NULL, &want);
  nnc_model *m = NULL;
  char *msg = NULL;
  if (nnc_model_compile(tmp("replace.nn"), tmp("w1.safetensors"), &m, &msg)) fail_msg("%s", msg);
  run_api(m, tmp("w2.safetensors"), &got);
  assert_same(&want, &got);
  nnc_model_free(m);
}

/* ---- item 5: num_batches_tracked is optional, for every norm layer ---- */

static void test_num_batches_tracked_optional(void **state) {
  (void)state;
  compile_so(tmp("norms.nn"), tmp("norms.so"), NULL);
  nnc_model *m = load(tmp("norms.so"));
  static const char *const none[] = {"bn1.num_batches_tracked", "inorm.num_batches_tracked", NULL};
  static const char *const stats[] = {"bn1.running_mean", NULL};
  write_weights(m, 3, tmp("n_all.safetensors"), NULL, NULL, NULL);
  write_weights(m, 3, tmp("n_none.safetensors"), none, NULL, NULL);
  write_weights(m, 3, tmp("n_stats.safetensors"), stats, NULL, NULL);
  const nnc_model_desc *d = nnc_model_desc_of(m);
  int optional = 0;
  for (int i = 0; i < d->n_params; i++) optional += (d->params[i].flags & NNC_PARAM_OPTIONAL) != 0;
  assert_int_equal(optional, 2);
  nnc_context *c = NULL;
  char *msg = NULL;
  assert_int_equal(nnc_context_open(m, tmp("n_all.safetensors"), &c, &msg), NNC_OK);
  nnc_context_free(c);
  assert_int_equal(nnc_context_open(m, tmp("n_none.safetensors"), &c, &msg), NNC_OK);
  nnc_context_free(c);
  assert_int_equal(nnc_context_open(m, tmp("n_stats.safetensors"), &c, &msg), NNC_ERR_USER);
  assert_non_null(strstr(msg, "missing tensor 'bn1.running_mean'"));
  nnc_free(msg);
  nnc_model_free(m);
  /* and at compile time (the compiler checks a weights file with the same code) */
  compile_so(tmp("norms.nn"), tmp("norms_emb.so"), tmp("n_none.safetensors"));
}

/* ---- item 6: a missing tensor names the file's unused look-alike ---- */

static void expect_open_error(nnc_model *m, const char *weights, const char *want) {
  nnc_context *c = NULL;
  char *msg = NULL;
  assert_int_equal(nnc_context_open(m, weights, &c, &msg), NNC_ERR_USER);
  if (!strstr(msg, want)) fail_msg("got: %s\nwant: ...%s...", msg, want);
  nnc_free(msg);
}

static void test_missing_names_lookalike(void **state) {
  (void)state;
  nnc_model *m = load(tmp("plain.so"));
  write_weights(m, 4, tmp("typo.safetensors"), NULL, "mlp.0.weight", "mlp.0_weight");
  expect_open_error(m, tmp("typo.safetensors"),
                    "missing tensor 'mlp.0.weight' (expected F32[64, 2]); the file has an "
                    "unused 'mlp.0_weight'");
  write_weights(m, 4, tmp("typo2.safetensors"), NULL, "lstm.bias_hh_l0", "lstm.bias_hh");
  expect_open_error(m, tmp("typo2.safetensors"), "the file has an unused 'lstm.bias_hh'");
  /* nothing alike: no suggestion */
  write_weights(m, 4, tmp("typo3.safetensors"), NULL, "conv2.bias", "zzzzzzzzzzzzzzz");
  nnc_context *c = NULL;
  char *msg = NULL;
  assert_int_equal(nnc_context_open(m, tmp("typo3.safetensors"), &c, &msg), NNC_ERR_USER);
  assert_null(strstr(msg, "unused"));
  nnc_free(msg);
  nnc_model_free(m);
}

/* ---- item 10: files are checked before they are read ---- */

static void test_unbounded_reads_refused(void **state) {
  (void)state;
  unsigned char *buf = NULL;
  size_t len = 0;
  char err[256];
  assert_int_equal(nnc_read_file("/dev/zero", 0, &buf, &len, err, sizeof err), -1);
  assert_string_equal(err, "not a regular file (a character device)");
  assert_int_equal(nnc_read_file(dir, 0, &buf, &len, err, sizeof err), -1);
  assert_string_equal(err, "not a regular file (a directory)");
  assert_int_equal(nnc_read_file(tmp("w1.safetensors"), 100, &buf, &len, err, sizeof err), -1);
  assert_non_null(strstr(err, "file larger than 100 bytes"));
  assert_int_equal(nnc_read_file(tmp("replace.nn"), 0, &buf, &len, err, sizeof err), 0);
  assert_int_equal(len, strlen(model_src));
  assert_string_equal((char *)buf, model_src);
  free(buf);
  StFile f;
  char msg[512];
  assert_int_equal(st_read_file("/dev/zero", &f, msg, sizeof msg), -1);
  assert_string_equal(msg, "/dev/zero: error: not a regular file (a character device)");
  NpyArray a;
  assert_int_equal(npy_read("/dev/zero", &a, msg, sizeof msg), -1);
  assert_string_equal(msg, "/dev/zero: error: not a regular file (a character device)");
  nnc_model *m = load(tmp("plain.so"));
  expect_open_error(m, "/dev/zero", "/dev/zero: error: not a regular file (a character device)");
  nnc_model_free(m);
  /* a mapped weights file reads as before */
  assert_int_equal(st_read_file(tmp("w1.safetensors"), &f, msg, sizeof msg), 0);
  assert_non_null(st_find(&f, "mlp.2.bias"));
  st_free(&f);
}

/* ---- item 11: a damaged library is an error, not a crash ---- */

static long file_size(const char *path) {
  struct stat st;
  assert_int_equal(stat(path, &st), 0);
  return (long)st.st_size;
}

static void copy_file(const char *from, const char *to, long len) {
  unsigned char *buf = NULL;
  size_t n = 0;
  char err[256];
  if (nnc_read_file(from, 0, &buf, &n, err, sizeof err)) fail_msg("%s", err);
  FILE *f = fopen(to, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(buf, 1, len < 0 ? n : (size_t)len, f), len < 0 ? n : (size_t)len);
  fclose(f);
  free(buf);
}

/* The file offset of address p of the library loaded from `so` (its PT_LOAD segments). */
static long file_offset(const char *so, const void *p) {
  Dl_info info;
  assert_true(dladdr(p, &info) != 0);
  uint64_t vaddr = (uint64_t)((const char *)p - (const char *)info.dli_fbase);
  FILE *f = fopen(so, "rb");
  Elf64_Ehdr eh;
  assert_int_equal(fread(&eh, sizeof eh, 1, f), 1);
  long off = -1;
  for (int i = 0; i < eh.e_phnum && off < 0; i++) {
    Elf64_Phdr ph;
    fseek(f, (long)(eh.e_phoff + (uint64_t)i * sizeof ph), SEEK_SET);
    assert_int_equal(fread(&ph, sizeof ph, 1, f), 1);
    if (ph.p_type == PT_LOAD && vaddr >= ph.p_vaddr && vaddr < ph.p_vaddr + ph.p_filesz)
      off = (long)(vaddr - ph.p_vaddr + ph.p_offset);
  }
  fclose(f);
  assert_true(off >= 0);
  return off;
}

static void patch(const char *path, long off, const void *bytes, size_t n) {
  FILE *f = fopen(path, "r+b");
  assert_non_null(f);
  fseek(f, off, SEEK_SET);
  assert_int_equal(fwrite(bytes, 1, n, f), n);
  fclose(f);
}

static void expect_load_error(const char *so, const char *want) {
  nnc_model *m = NULL;
  char *msg = NULL;
  assert_int_equal(nnc_model_load(so, &m, &msg), NNC_ERR_USER);
  assert_null(m);
  if (!strstr(msg, want) || strncmp(msg, so, strlen(so)))
    fail_msg("got: %s\nwant: %s: ...%s...", msg, so, want);
  nnc_free(msg);
}

static void test_truncated_library(void **state) {
  (void)state;
  long n = file_size(tmp("emb1.so"));
  copy_file(tmp("emb1.so"), tmp("cut4k.so"), 4096);
  expect_load_error(tmp("cut4k.so"), "the library is truncated");
  copy_file(tmp("emb1.so"), tmp("half.so"), n / 2);
  expect_load_error(tmp("half.so"), "the library is truncated");
}

/* Offsets in the file of emb1.so's model table and embedded weights. */
static void table_offsets(long *desc_off, long *weights_off, uint64_t *weights_size) {
  nnc_model *m = load(tmp("emb1.so"));
  const nnc_model_desc *d = nnc_model_desc_of(m);
  *desc_off = file_offset(tmp("emb1.so"), d);
  *weights_off = file_offset(tmp("emb1.so"), d->embedded_weights);
  *weights_size = d->weights_size;
  nnc_model_free(m);
}

static void test_damaged_table(void **state) {
  (void)state;
  long desc_off, weights_off;
  uint64_t size;
  table_offsets(&desc_off, &weights_off, &size);
  static const struct { size_t field; const char *name; int32_t value; const char *want; } cases[] = {
      {offsetof(nnc_model_desc, n_entries), "entries.so", 1000, "the model table is damaged"},
      {offsetof(nnc_model_desc, n_params), "params.so", 1000, "the model table is damaged"},
      {offsetof(nnc_model_desc, n_params), "params_neg.so", -1, "n_params = -1"},
      {offsetof(nnc_model_desc, n_syms), "syms.so", 40, "n_syms = 40"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    const char *so = tmp(cases[i].name);
    copy_file(tmp("emb1.so"), so, -1);
    patch(so, desc_off + (long)cases[i].field, &cases[i].value, sizeof cases[i].value);
    expect_load_error(so, cases[i].want);
    /* the library's own open (the header's <model>_open, Python's nnc.load) checks too */
    void *dl = dlopen(so, RTLD_NOW | RTLD_LOCAL);
    assert_non_null(dl);
    void *(*open)(const char *, char *, size_t) = (void *(*)(const char *, char *, size_t))dlsym(dl, "replace_open");
    char err[1024];
    assert_null(open(NULL, err, sizeof err));
    assert_non_null(strstr(err, cases[i].want));
    dlclose(dl);
  }
}

static void test_flipped_weight_bit(void **state) {
  (void)state;
  long desc_off, weights_off;
  uint64_t size;
  table_offsets(&desc_off, &weights_off, &size);
  const char *so = tmp("flip.so");
  copy_file(tmp("emb1.so"), so, -1);
  FILE *f = fopen(so, "rb");
  unsigned char byte;
  long at = weights_off + (long)(size / 3);
  fseek(f, at, SEEK_SET);
  assert_int_equal(fread(&byte, 1, 1, f), 1);
  fclose(f);
  byte ^= 0x10;
  patch(so, at, &byte, 1);
  nnc_model *m = load(so);
  nnc_context *c = NULL;
  char *msg = NULL;
  assert_int_equal(nnc_context_open(m, NULL, &c, &msg), NNC_ERR_USER);
  assert_non_null(strstr(msg, "the embedded weights are damaged"));
  nnc_free(msg);
  /* a weights file still replaces them */
  static Out want, got;
  run_so(tmp("emb2.so"), NULL, &want);
  run_api(m, tmp("w2.safetensors"), &got);
  assert_same(&want, &got);
  nnc_model_free(m);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_replaced_weights_equal_embedded),
      cmocka_unit_test(test_replaced_weights_jit),
      cmocka_unit_test(test_num_batches_tracked_optional),
      cmocka_unit_test(test_missing_names_lookalike),
      cmocka_unit_test(test_unbounded_reads_refused),
      cmocka_unit_test(test_truncated_library),
      cmocka_unit_test(test_damaged_table),
      cmocka_unit_test(test_flipped_weight_bit),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
