/* test_cache.c — the compile cache (compiler/codegen/cache.h, native.h).
 *
 * The store: a round trip; damaged entries (truncated, a flipped byte in the payload or the
 * header, a wrong magic, an entry under another key's name) are misses and a store repairs
 * them; readers racing a writer see a whole entry or none; the size limit; where the cache
 * lives and NNC_CACHE=off.  Keys: a module's key is stable, changes with its code, its
 * weights, the pipeline and nnc's version, and leaves the module as it was.  Compiles:
 * miss then hit (the hit proven by planting an entry), a damaged library entry rebuilt,
 * cached and uncached code computing the same bits (JIT and AOT), an unwritable cache
 * directory, the cache off, and several `nnc` processes filling one cache at once.  The
 * parts of a module compiled on several threads (split.c) reach each other's symbols only
 * through the GOT: never by a 32-bit offset, which fails when the JIT maps them far apart.
 *
 * Each test points NNC_CACHE_DIR at a directory of its own under a temp dir. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <dirent.h>
#include <elf.h>
#include <fcntl.h>
#include <pthread.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cache.h"
#include "compile.h"
#include "native.h"
#include "nnc.h"
#include "npy.h"
#include "support.h"

#define MODEL "realnvp" /* small, with an init entry (derived parameters) */
#define PROCESSES 4

extern char **environ;

/* ---- helpers ---- */

/* A fresh directory tmp_dir/<name> as the cache (NNC_CACHE_DIR, NNC_CACHE on); its path. */
static const char *use_cache(const char *name, Cache *c) {
  static char dir[1024]; /* the tests run one at a time */
  snprintf(dir, sizeof dir, "%s/%s", tmp_dir, name);
  setenv("NNC_CACHE_DIR", dir, 1);
  unsetenv("NNC_CACHE");
  unsetenv("NNC_CACHE_MAX");
  if (c) cache_open(c);
  return dir;
}

static CacheKey key_of(const char *s) { return cache_hash(s, strlen(s), 7); }

static bool parse_key(const char *name, CacheKey *k) {
  for (int i = 0; i < 16; i++) {
    unsigned v;
    if (sscanf(name + 2 * i, "%2x", &v) != 1) return false;
    k->b[i] = (unsigned char)v;
  }
  return name[32] == '.';
}

/* Entries in dir with extension ext (NULL: any); the first one's name into first[]. */
static int count_entries(const char *dir, const char *ext, char *first, size_t n) {
  DIR *d = opendir(dir);
  int count = 0;
  if (!d) return 0;
  for (struct dirent *e; (e = readdir(d));) {
    if (e->d_name[0] == '.') continue;
    const char *dot = strchr(e->d_name, '.');
    if (ext && (!dot || strcmp(dot + 1, ext))) continue;
    if (count++ == 0 && first) snprintf(first, n, "%.64s", e->d_name);
  }
  closedir(d);
  return count;
}

static int count_temps(const char *dir) {
  DIR *d = opendir(dir);
  int count = 0;
  for (struct dirent *e; d && (e = readdir(d));) count += !strncmp(e->d_name, ".tmp-", 5);
  if (d) closedir(d);
  return count;
}

/* ---- the store ---- */

static void test_store_load(void **state) {
  (void)state;
  Cache c;
  use_cache("store", &c);
  assert_true(c.on);
  CacheKey k = key_of("a"), other = key_of("b");
  void *data;
  size_t len;
  assert_int_equal(cache_load(&c, &k, "o", &data, &len), -1); /* empty: a miss */
  assert_int_equal(cache_store(&c, &k, "o", "payload", 7), 0);
  assert_int_equal(cache_load(&c, &k, "o", &data, &len), 0);
  assert_int_equal(len, 7);
  assert_memory_equal(data, "payload", 7);
  free(data);
  assert_int_equal(cache_load(&c, &other, "o", &data, &len), -1);
  assert_int_equal(cache_load(&c, &k, "so", &data, &len), -1);
  assert_int_equal(cache_store(&c, &k, "o", "", 0), 0); /* replaced, and empty is fine */
  assert_int_equal(cache_load(&c, &k, "o", &data, &len), 0);
  assert_int_equal(len, 0);
  free(data);
  int n;
  uint64_t bytes;
  cache_usage(&c, &n, &bytes);
  assert_int_equal(n, 1);
  assert_int_equal(bytes, 64);
  assert_int_equal(cache_clear(&c, &n), 0);
  assert_int_equal(n, 1);
  assert_int_equal(cache_load(&c, &k, "o", &data, &len), -1);
}

typedef enum Damage { TRUNCATE_HALF, TRUNCATE_HEADER, EMPTY, FLIP_PAYLOAD, FLIP_HEADER,
                      FLIP_LENGTH, MAGIC, FOREIGN, N_DAMAGE } Damage;
static const char *const damage_names[] = {"truncated to half", "header only", "empty",
                                           "payload byte flipped", "key byte flipped",
                                           "length byte flipped", "wrong magic",
                                           "another key's entry"};

static void damage(const char *path, Damage how, const char *foreign) {
  size_t len = 0;
  unsigned char *d = file_slurp(path, &len);
  assert_non_null(d);
  switch (how) {
  case TRUNCATE_HALF: len /= 2; break;
  case TRUNCATE_HEADER: len = 64; break;
  case EMPTY: len = 0; break;
  case FLIP_PAYLOAD: d[len - 100] ^= 0x10; break;
  case FLIP_HEADER: d[20] ^= 1; break;
  case FLIP_LENGTH: d[32] ^= 1; break;
  case MAGIC: d[0] = 'X'; break;
  case FOREIGN: free(d); d = file_slurp(foreign, &len); break;
  case N_DAMAGE: break;
  }
  file_spit(path, d, len);
  free(d);
}

static void test_damaged_entries(void **state) {
  (void)state;
  Cache c;
  const char *dir = use_cache("damaged", &c);
  char payload[5000], path[1200], foreign[1200];
  for (size_t i = 0; i < sizeof payload; i++) payload[i] = (char)(i * 7);
  CacheKey k = key_of("entry"), f = key_of("foreign");
  assert_int_equal(cache_store(&c, &f, "o", payload, 3000), 0);
  char name[80];
  for (int i = 0; i < 16; i++) snprintf(name + 2 * i, 3, "%02x", f.b[i]);
  snprintf(foreign, sizeof foreign, "%s/%s.o", dir, name);
  for (int i = 0; i < 16; i++) snprintf(name + 2 * i, 3, "%02x", k.b[i]);
  snprintf(path, sizeof path, "%s/%s.o", dir, name);
  for (Damage how = 0; how < N_DAMAGE; how++) {
    void *data;
    size_t len;
    assert_int_equal(cache_store(&c, &k, "o", payload, sizeof payload), 0);
    damage(path, how, foreign);
    if (!cache_load(&c, &k, "o", &data, &len)) fail_msg("an entry %s was read", damage_names[how]);
    assert_int_equal(cache_store(&c, &k, "o", payload, sizeof payload), 0); /* repaired */
    assert_int_equal(cache_load(&c, &k, "o", &data, &len), 0);
    assert_int_equal(len, sizeof payload);
    assert_memory_equal(data, payload, len);
    free(data);
  }
  assert_int_equal(count_temps(dir), 0);
}

/* A writer replacing one entry with payloads of two sizes while readers read it: every
 * read is a whole payload or a miss, never a mixture or a part. */
enum { RACE_ROUNDS = 200, BIG = 300000, SMALL = 1000 };
typedef struct Race {
  Cache c;
  CacheKey k;
  unsigned char *a, *b; /* BIG bytes of 'a', SMALL of 'b' */
  int bad, hits;
  int started; /* threads started: the first two write, the others read */
} Race;

static void *race_writer(void *arg) {
  Race *r = arg;
  for (int i = 0; i < RACE_ROUNDS; i++)
    cache_store(&r->c, &r->k, "o", i % 2 ? r->b : r->a, i % 2 ? SMALL : BIG);
  return NULL;
}

static void *race_reader(void *arg) {
  Race *r = arg;
  for (int i = 0; i < RACE_ROUNDS; i++) {
    void *data;
    size_t len;
    if (cache_load(&r->c, &r->k, "o", &data, &len)) continue;
    bool whole = (len == BIG && !memcmp(data, r->a, BIG)) || (len == SMALL && !memcmp(data, r->b, SMALL));
    __atomic_add_fetch(whole ? &r->hits : &r->bad, 1, __ATOMIC_RELAXED);
    free(data);
  }
  return NULL;
}

static void *race_thread(void *arg) {
  Race *r = arg;
  return __atomic_fetch_add(&r->started, 1, __ATOMIC_RELAXED) < 2 ? race_writer(r) : race_reader(r);
}

static void test_concurrent_store(void **state) {
  (void)state;
  Race r = {.k = key_of("race")};
  use_cache("race", &r.c);
  r.a = malloc(BIG);
  r.b = malloc(SMALL);
  memset(r.a, 'a', BIG);
  memset(r.b, 'b', SMALL);
  cache_store(&r.c, &r.k, "o", r.a, BIG);
  run_threads(4, race_thread, &r, 0);
  print_message("%d whole reads, %d partial\n", r.hits, r.bad);
  assert_int_equal(r.bad, 0);
  assert_true(r.hits > 0);
  assert_int_equal(count_temps(r.c.dir), 0);
  free(r.a);
  free(r.b);
}

static void test_size_limit(void **state) {
  (void)state;
  Cache c;
  const char *dir = use_cache("limit", NULL);
  setenv("NNC_CACHE_MAX", "1", 1); /* MiB */
  cache_open(&c);
  assert_int_equal(c.max_bytes, 1 << 20);
  static char block[400000];
  char path[40];
  for (int i = 0; i < 3; i++) {
    char name[8];
    snprintf(name, sizeof name, "k%d", i);
    CacheKey k = key_of(name);
    assert_int_equal(cache_store(&c, &k, "o", block, sizeof block), 0);
    /* ages 30, 20, 10 s: the first stored is the least recently used */
    for (int j = 0; j < 16; j++) snprintf(path + 2 * j, 3, "%02x", k.b[j]);
    char full[1300];
    snprintf(full, sizeof full, "%s/%s.o", dir, path);
    struct timespec ts[2] = {{time(NULL) - 30 + 10 * i, 0}, {time(NULL) - 30 + 10 * i, 0}};
    assert_int_equal(utimensat(AT_FDCWD, full, ts, 0), 0);
  }
  /* the third store took the cache over 1 MiB: the oldest went */
  void *data;
  size_t len;
  CacheKey k0 = key_of("k0"), k2 = key_of("k2");
  assert_int_equal(cache_load(&c, &k0, "o", &data, &len), -1);
  assert_int_equal(cache_load(&c, &k2, "o", &data, &len), 0);
  free(data);
  int n;
  uint64_t bytes;
  cache_usage(&c, &n, &bytes);
  assert_true(bytes <= c.max_bytes);
  unsetenv("NNC_CACHE_MAX");
}

static void test_where(void **state) {
  (void)state;
  Cache c;
  char *home = getenv("HOME") ? strdup(getenv("HOME")) : NULL;
  unsetenv("NNC_CACHE");
  setenv("NNC_CACHE_DIR", "/x/y", 1);
  cache_open(&c);
  assert_true(c.on);
  assert_string_equal(c.dir, "/x/y");
  unsetenv("NNC_CACHE_DIR");
  setenv("XDG_CACHE_HOME", "/xdg", 1);
  setenv("HOME", "/home/u", 1);
  cache_open(&c);
  assert_string_equal(c.dir, "/xdg/nnc");
  setenv("XDG_CACHE_HOME", "relative", 1); /* XDG: ignored unless absolute */
  cache_open(&c);
  assert_string_equal(c.dir, "/home/u/.cache/nnc");
  unsetenv("XDG_CACHE_HOME");
  unsetenv("HOME");
  cache_open(&c);
  assert_false(c.on);
  const char *offs[] = {"off", "0", "OFF", "no", "false"};
  setenv("NNC_CACHE_DIR", "/x/y", 1);
  for (int i = 0; i < 5; i++) {
    setenv("NNC_CACHE", offs[i], 1);
    cache_open(&c);
    assert_false(c.on);
  }
  setenv("NNC_CACHE", "on", 1);
  cache_open(&c);
  assert_true(c.on);
  unsetenv("NNC_CACHE");
  if (home) setenv("HOME", home, 1);
  free(home);
}

static void test_unwritable(void **state) {
  (void)state;
  char file[1200], dir[1300];
  snprintf(file, sizeof file, "%s/a_file", tmp_dir);
  file_spit(file, "x", 1);
  snprintf(dir, sizeof dir, "%s/cache", file); /* under a regular file: even root cannot */
  setenv("NNC_CACHE_DIR", dir, 1);
  Cache c;
  cache_open(&c);
  CacheKey k = key_of("k");
  void *data;
  size_t len;
  assert_int_equal(cache_store(&c, &k, "o", "x", 1), -1);
  assert_int_equal(cache_load(&c, &k, "o", &data, &len), -1);
  /* a compile still works, without the cache */
  char nn[1024], weights[1024], so[1300], *msg = NULL;
  example_paths(MODEL, nn, weights, sizeof nn);
  snprintf(so, sizeof so, "%s/unwritable.so", tmp_dir);
  NncCompileOptions opt = {.weights_path = weights};
  if (nnc_compile_so(nn, so, &opt, &msg)) fail_msg("%s", msg);
  nnc_free(msg);
}

/* ---- keys of modules ---- */

/* A module with a function returning `ret` and embedded weights `w` (as model_table.c). */
static LLVMModuleRef small_module(Target *t, LLVMContextRef ctx, int ret, const char *w) {
  LLVMModuleRef m = LLVMModuleCreateWithNameInContext("small", ctx);
  target_configure_module(t, m);
  LLVMTypeRef i32 = LLVMInt32TypeInContext(ctx);
  LLVMValueRef fn = LLVMAddFunction(m, "f", LLVMFunctionType(i32, NULL, 0, 0));
  LLVMBuilderRef b = LLVMCreateBuilderInContext(ctx);
  LLVMPositionBuilderAtEnd(b, LLVMAppendBasicBlockInContext(ctx, fn, "entry"));
  LLVMBuildRet(b, LLVMConstInt(i32, (unsigned long long)ret, 0));
  LLVMDisposeBuilder(b);
  LLVMValueRef init = LLVMConstStringInContext2(ctx, w, strlen(w), 1);
  LLVMValueRef g = LLVMAddGlobal(m, LLVMTypeOf(init), "nnc.weights");
  LLVMSetInitializer(g, init);
  LLVMSetGlobalConstant(g, 1);
  LLVMSetLinkage(g, LLVMPrivateLinkage);
  return m;
}

static bool same_key(CacheKey a, CacheKey b) { return !memcmp(&a, &b, sizeof a); }

static void test_module_keys(void **state) {
  (void)state;
  char err[1024];
  Target *t = target_new_host(err, sizeof err);
  assert_non_null(t);
  LLVMContextRef ctx = LLVMContextCreate();
  LLVMModuleRef m = small_module(t, ctx, 1, "weights1");
  char *before = LLVMPrintModuleToString(m);
  CacheKey k = native_module_key(t, m, PIPELINE_MODEL);
  char *after = LLVMPrintModuleToString(m);
  assert_string_equal(before, after); /* the weights were put back */
  LLVMDisposeMessage(before);
  LLVMDisposeMessage(after);
  LLVMModuleRef same = small_module(t, ctx, 1, "weights1");
  LLVMModuleRef code = small_module(t, ctx, 2, "weights1");
  LLVMModuleRef weights = small_module(t, ctx, 1, "weights2");
  assert_true(same_key(k, native_module_key(t, same, PIPELINE_MODEL)));
  assert_false(same_key(k, native_module_key(t, code, PIPELINE_MODEL)));
  assert_false(same_key(k, native_module_key(t, weights, PIPELINE_MODEL)));
  bool one_pipeline = !strcmp(target_pipeline_text(PIPELINE_MODEL), target_pipeline_text(PIPELINE_ONCE));
  assert_int_equal(same_key(k, native_module_key(t, m, PIPELINE_ONCE)), one_pipeline);
  assert_false(same_key(native_module_key_as(t, m, PIPELINE_MODEL, "0.1.0"),
                        native_module_key_as(t, m, PIPELINE_MODEL, "0.1.1")));
  /* what one version stored, another does not find */
  Cache c;
  use_cache("versions", &c);
  ObjCode objs;
  void *again;
  size_t len;
  assert_int_equal(native_object(t, &c, same, PIPELINE_MODEL, NULL, err, sizeof err, &objs), 0);
  assert_int_equal(objs.n, 1); /* too small to split */
  assert_int_equal(cache_load(&c, &k, "o", &again, &len), 0);
  assert_true(len > objs.len[0]);
  assert_non_null(memmem(again, len, objs.obj[0], objs.len[0]));
  free(again);
  CacheKey other = native_module_key_as(t, m, PIPELINE_MODEL, "0.0.0 another build");
  assert_int_equal(cache_load(&c, &other, "o", &again, &len), -1);
  objcode_free(&objs);
  LLVMDisposeModule(m);
  LLVMDisposeModule(same);
  LLVMDisposeModule(code);
  LLVMDisposeModule(weights);
  LLVMContextDispose(ctx);
  target_free(t);
}

/* ---- compiles ---- */

static void compile_so(const char *so) {
  char nn[1024], weights[1024], *msg = NULL;
  example_paths(MODEL, nn, weights, sizeof nn);
  NncCompileOptions opt = {.weights_path = weights};
  if (nnc_compile_so(nn, so, &opt, &msg)) fail_msg("%s", msg);
  nnc_free(msg);
}

static void test_aot_hit_miss(void **state) {
  (void)state;
  Cache c;
  const char *dir = use_cache("aot", &c);
  char a[1200], b[1200], p[1200], d[1200], name[80], entry[1300];
  snprintf(a, sizeof a, "%s/a.so", tmp_dir);
  snprintf(b, sizeof b, "%s/b.so", tmp_dir);
  snprintf(p, sizeof p, "%s/planted.so", tmp_dir);
  snprintf(d, sizeof d, "%s/d.so", tmp_dir);
  compile_so(a); /* a miss: stores the library (and the init entry's object code) */
  int entries = count_entries(dir, NULL, NULL, 0);
  assert_int_equal(count_entries(dir, "so", name, sizeof name), 1);
  compile_so(b); /* a hit: nothing new, the same bytes */
  assert_int_equal(count_entries(dir, NULL, NULL, 0), entries);
  assert_same_file(a, b);
  /* the hit really comes from the entry: plant another payload under its key */
  CacheKey k;
  assert_true(parse_key(name, &k));
  assert_int_equal(cache_store(&c, &k, "so", "planted", 7), 0);
  compile_so(p);
  size_t len;
  char *got = file_slurp(p, &len);
  assert_int_equal(len, 7);
  assert_memory_equal(got, "planted", 7);
  free(got);
  /* a damaged entry is rebuilt, and the library is right */
  snprintf(entry, sizeof entry, "%s/%s", dir, name);
  damage(entry, TRUNCATE_HALF, NULL);
  compile_so(d);
  assert_same_file(a, d);
  void *data;
  assert_int_equal(cache_load(&c, &k, "so", &data, &len), 0);
  free(data);
}

/* The outputs of MODEL's forward entry on its golden input, by JIT or from library `so`. */
static void run_forward(const char *so, nnc_tensor out[2]) {
  char nn[1024], weights[1024], x[1024], err[256], *msg = NULL;
  example_paths(MODEL, nn, weights, sizeof nn);
  snprintf(x, sizeof x, "%s/tests/golden/%s/forward.in.x.npy", NNC_SOURCE_DIR, MODEL);
  nnc_model *model = NULL;
  nnc_context *ctx = NULL;
  if ((so ? nnc_model_load(so, &model, &msg) : nnc_model_compile(nn, weights, &model, &msg)) ||
      nnc_context_open(model, NULL, &ctx, &msg))
    fail_msg("%s", msg);
  nnc_free(msg);
  NpyArray a;
  if (npy_read(x, &a, err, sizeof err)) fail_msg("%s", err);
  nnc_tensor in = {a.data, NNC_F32, a.rank, {0}};
  memcpy(in.shape, a.shape, sizeof(int64_t) * (size_t)a.rank);
  memset(out, 0, 2 * sizeof *out);
  if (nnc_call(ctx, nnc_model_find_entry(model, "forward"), &in, 1, out, 2))
    fail_msg("%s", nnc_context_error(ctx));
  npy_free(&a);
  nnc_context_free(ctx);
  nnc_model_free(model);
}

static void assert_same_outputs(nnc_tensor a[2], nnc_tensor b[2]) {
  for (int o = 0; o < 2; o++) {
    size_t n = (size_t)nnc_tensor_numel(&a[o]) * sizeof(float);
    assert_int_equal(n, (size_t)nnc_tensor_numel(&b[o]) * sizeof(float));
    assert_memory_equal(a[o].data, b[o].data, n);
  }
}

static void free_outputs(nnc_tensor out[2]) {
  for (int o = 0; o < 2; o++) nnc_free(out[o].data);
}

static void test_cached_same_bits(void **state) {
  (void)state;
  const char *dir = use_cache("bits", NULL);
  char so[1200];
  snprintf(so, sizeof so, "%s/bits.so", tmp_dir);
  nnc_tensor off[2], miss[2], hit[2], aot_off[2], aot_hit[2];
  setenv("NNC_CACHE", "off", 1);
  run_forward(NULL, off);
  compile_so(so);
  run_forward(so, aot_off);
  assert_int_equal(count_entries(dir, NULL, NULL, 0), 0); /* off: nothing stored */
  unsetenv("NNC_CACHE");
  run_forward(NULL, miss);
  assert_true(count_entries(dir, "o", NULL, 0) >= 1);
  run_forward(NULL, hit);
  compile_so(so); /* finds the JIT's object code: the same module, the same weights */
  compile_so(so); /* the library itself */
  run_forward(so, aot_hit);
  assert_same_outputs(off, miss);
  assert_same_outputs(off, hit);
  assert_same_outputs(off, aot_off);
  assert_same_outputs(off, aot_hit);
  free_outputs(off), free_outputs(miss), free_outputs(hit);
  free_outputs(aot_off), free_outputs(aot_hit);
}

/* PROCESSES `nnc` commands compile MODEL into one empty cache at once. */
static void test_concurrent_processes(void **state) {
  (void)state;
  const char *dir = use_cache("processes", NULL);
  char nn[1024], weights[1024], so[PROCESSES][1200], exe[1024];
  example_paths(MODEL, nn, weights, sizeof nn);
  snprintf(exe, sizeof exe, "%s/nnc", NNC_BINARY_DIR);
  pid_t pid[PROCESSES];
  for (int i = 0; i < PROCESSES; i++) {
    snprintf(so[i], sizeof so[i], "%s/proc%d.so", tmp_dir, i);
    char *argv[] = {exe, nn, "-o", so[i], "--weights", weights, NULL};
    assert_int_equal(posix_spawn(&pid[i], exe, NULL, NULL, argv, environ), 0);
  }
  for (int i = 0; i < PROCESSES; i++) {
    int status;
    assert_int_equal(waitpid(pid[i], &status, 0), pid[i]);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  for (int i = 1; i < PROCESSES; i++) assert_same_file(so[0], so[i]);
  assert_int_equal(count_temps(dir), 0);
  char name[80];
  assert_int_equal(count_entries(dir, "so", name, sizeof name), 1);
  CacheKey k;
  Cache c;
  cache_open(&c);
  void *data;
  size_t len;
  assert_true(parse_key(name, &k));
  assert_int_equal(cache_load(&c, &k, "so", &data, &len), 0);
  free(data);
  /* and what they stored serves the next compile */
  char again[1200];
  snprintf(again, sizeof again, "%s/again.so", tmp_dir);
  compile_so(again);
  assert_same_file(so[0], again);
}

/* ---- the parts of a split module reach each other through the GOT ---- */

/* Relocations of obj that reach an undefined "__nnc_split." symbol (another part's) by a
 * 32-bit PC-relative or absolute offset: the JIT may map the parts more than 2 GiB apart. */
static int far_references(const unsigned char *obj, size_t len) {
  const Elf64_Ehdr *eh = (const void *)obj;
  assert_true(len > sizeof *eh && !memcmp(eh->e_ident, ELFMAG, SELFMAG));
  const Elf64_Shdr *sh = (const void *)(obj + eh->e_shoff);
  int bad = 0;
  for (int i = 0; i < eh->e_shnum; i++) {
    if (sh[i].sh_type != SHT_RELA) continue;
    const Elf64_Shdr *symtab = &sh[sh[i].sh_link], *strtab = &sh[symtab->sh_link];
    const Elf64_Rela *r = (const void *)(obj + sh[i].sh_offset);
    for (size_t k = 0; k < sh[i].sh_size / sizeof *r; k++) {
      const Elf64_Sym *sym = (const Elf64_Sym *)(obj + symtab->sh_offset) + ELF64_R_SYM(r[k].r_info);
      const char *name = (const char *)obj + strtab->sh_offset + sym->st_name;
      unsigned type = ELF64_R_TYPE(r[k].r_info);
      bool near = type == R_X86_64_PC32 || type == R_X86_64_32 || type == R_X86_64_32S;
      if (near && sym->st_shndx == SHN_UNDEF && !strncmp(name, "__nnc_split.", 12)) {
        print_message("relocation type %u to another part's %s\n", type, name);
        bad++;
      }
    }
  }
  return bad;
}

static void test_split_parts_use_got(void **state) {
  (void)state;
#if defined(__x86_64__)
  const char *dir = use_cache("split", NULL);
  char nn[1024], weights[1024], name[80], entry[1300], *msg = NULL;
  example_paths(MODEL, nn, weights, sizeof nn);
  nnc_model *model = NULL;
  if (nnc_model_compile(nn, weights, &model, &msg)) fail_msg("%s", msg); /* the JIT stores .o */
  nnc_model_free(model);
  nnc_free(msg);
  /* the model's entry is the largest .o (the init entry's is smaller) */
  DIR *d = opendir(dir);
  off_t largest = 0;
  for (struct dirent *e; d && (e = readdir(d));) {
    struct stat st;
    snprintf(entry, sizeof entry, "%s/%.64s", dir, e->d_name);
    if (strstr(e->d_name, ".o") && !stat(entry, &st) && st.st_size > largest)
      largest = st.st_size, snprintf(name, sizeof name, "%.64s", e->d_name);
  }
  if (d) closedir(d);
  snprintf(entry, sizeof entry, "%s/%s", dir, name);
  size_t len;
  unsigned char *data = file_slurp(entry, &len);
  assert_non_null(data);
  uint64_t n, lens[8];
  memcpy(&n, data + 64, 8); /* after the entry's header: n, the lengths, the objects */
  assert_true(n >= 2 && n <= 8); /* realnvp's model is large enough to be split */
  memcpy(lens, data + 72, 8 * n);
  size_t at = 72 + 8 * n;
  int bad = 0;
  for (uint64_t i = 0; i < n; at += lens[i], i++) bad += far_references(data + at, lens[i]);
  free(data);
  assert_int_equal(bad, 0);
#else
  skip();
#endif
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_store_load),      cmocka_unit_test(test_damaged_entries),
    cmocka_unit_test(test_concurrent_store), cmocka_unit_test(test_size_limit),
    cmocka_unit_test(test_module_keys),     cmocka_unit_test(test_aot_hit_miss),
    cmocka_unit_test(test_cached_same_bits), cmocka_unit_test(test_concurrent_processes),
    cmocka_unit_test(test_split_parts_use_got),
    cmocka_unit_test(test_unwritable),      cmocka_unit_test(test_where),
  };
  return cmocka_run_group_tests(tests, tmp_make, tmp_remove);
}
