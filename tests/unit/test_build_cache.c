/* test_build_cache.c — the compile cache's first level (compiler/codegen/build_cache.h).
 *
 * The build key: stable, the same from a relative or an absolute path, and different when
 * the model's bytes, the weights' bytes (or their absence), a define, the defines' order, the
 * support library's bytes or an NNC_* variable (one nnc does not know of included) change;
 * the same when only a variable of the cache does.  Builds: the first one
 * stores an entry under its key; the `nnc` command alone (a copy without the compiler beside
 * it) then serves the same build, byte for byte, and fails on a miss for want of the
 * compiler — so a hit loads no compiler; a build that writes a C header (--header) has an
 * entry of its own, which serves the header too.  An edited include is a miss whose library computes
 * the new value (undoing the edit is a miss too: an entry lists the includes of the latest
 * build, native.h's key then serves the old library); a damaged entry is
 * a miss and the build repairs it; an entry holds the hashes of the includes as compiled
 * (one edited during the build is a miss); an unwritable output is an error naming it.  The JIT
 * (nnc_model_compile): a hit runs the object code its entry names without compiling
 * (proven by planting other code there), a changed include is a miss.
 *
 * Each test points NNC_CACHE_DIR at a directory of its own under a temp dir. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "build_cache.h"
#include "cache.h"
#include "compile.h"
#include "support.h"

static const char MAIN_NN[] = "include \"inc.nn\"\n"
                              "export f(x: f32[N]) -> (y: f32[N]) { y = x * K }\n";

/* tmp_dir/<name>/ with main.nn, inc.nn (`const K = k`) and w.bin; the directory into dir. */
static void model_dir(const char *name, const char *k, char *dir, size_t n) {
  char path[1200], inc[64];
  snprintf(dir, n, "%s/%s", tmp_dir, name);
  mkdir(dir, 0700);
  snprintf(path, sizeof path, "%s/main.nn", dir);
  file_spit(path, MAIN_NN, strlen(MAIN_NN));
  snprintf(path, sizeof path, "%s/inc.nn", dir);
  snprintf(inc, sizeof inc, "const K = %s\n", k);
  file_spit(path, inc, strlen(inc));
  snprintf(path, sizeof path, "%s/w.bin", dir);
  file_spit(path, "weights1", 8);
}

static void use_cache(const char *name, Cache *c) {
  char dir[1024];
  snprintf(dir, sizeof dir, "%s/cache_%s", tmp_dir, name);
  setenv("NNC_CACHE_DIR", dir, 1);
  unsetenv("NNC_CACHE");
  cache_open(c);
}

static bool same_key(CacheKey a, CacheKey b) { return !memcmp(&a, &b, sizeof a); }

static CacheKey key_of(const BuildInputs *in) {
  CacheKey k;
  assert_true(build_key(in, &k));
  return k;
}

/* The build key of dir/main.nn (no weights, no defines) for `kind`. */
static CacheKey main_key(const char *dir, BuildKind kind) {
  char nn[1200];
  snprintf(nn, sizeof nn, "%s/main.nn", dir);
  BuildInputs in = {kind, nn, NULL, NULL, 0};
  return key_of(&in);
}

/* ---- the key ---- */

static void test_key_inputs(void **state) {
  (void)state;
  char dir[1024], nn[1200], w[1200], w2[1200], cwd[1024];
  model_dir("keys", "2.0", dir, sizeof dir);
  snprintf(nn, sizeof nn, "%s/main.nn", dir);
  snprintf(w, sizeof w, "%s/w.bin", dir);
  snprintf(w2, sizeof w2, "%s/w2.bin", dir);
  file_spit(w2, "weights2", 8);
  const char *defs[] = {"N=4", "M=5"}, *swapped[] = {"M=5", "N=4"};
  BuildInputs in = {BUILD_LIBRARY, nn, w, defs, 2};
  CacheKey k = key_of(&in);
  assert_true(same_key(k, key_of(&in)));
  /* the model's path relative to the working directory names the same file */
  assert_non_null(getcwd(cwd, sizeof cwd));
  assert_int_equal(chdir(dir), 0);
  BuildInputs rel = {BUILD_LIBRARY, "main.nn", w, defs, 2};
  assert_true(same_key(k, key_of(&rel)));
  assert_int_equal(chdir(cwd), 0);
  /* each input */
  BuildInputs other_w = {BUILD_LIBRARY, nn, w2, defs, 2}, no_w = {BUILD_LIBRARY, nn, NULL, defs, 2},
              one_def = {BUILD_LIBRARY, nn, w, defs, 1}, order = {BUILD_LIBRARY, nn, w, swapped, 2};
  assert_false(same_key(k, key_of(&other_w)));
  assert_false(same_key(k, key_of(&no_w)));
  assert_false(same_key(k, key_of(&one_def)));
  assert_false(same_key(k, key_of(&order)));
  file_spit(nn, "# edited\n", 9);
  assert_false(same_key(k, key_of(&in)));
  file_spit(nn, MAIN_NN, strlen(MAIN_NN));
  assert_true(same_key(k, key_of(&in)));
  /* the environment: NNC_* variables, but not the cache's or the run time's */
  setenv("NNC_PLAN_SIMD", "8", 1);
  assert_false(same_key(k, key_of(&in)));
  unsetenv("NNC_PLAN_SIMD");
  setenv("NNC_SOME_FUTURE_KNOB", "1", 1);
  assert_false(same_key(k, key_of(&in)));
  unsetenv("NNC_SOME_FUTURE_KNOB");
  setenv("NNC_NUM_THREADS", "3", 1); /* the init entry runs on the pool's threads */
  assert_false(same_key(k, key_of(&in)));
  unsetenv("NNC_NUM_THREADS");
  setenv("NNC_CACHE_DIR", "/elsewhere", 1);
  setenv("NNC_CACHE_MAX", "77", 1);
  setenv("NNC_PROFILE", "1", 1); /* read by the library when it is loaded */
  assert_true(same_key(k, key_of(&in)));
  unsetenv("NNC_CACHE_MAX");
  unsetenv("NNC_PROFILE");
  /* the support library linked in: its bytes */
  const char *args[AOT_LINK_ARGS];
  aot_link_args(args);
  size_t len;
  char *support = file_slurp(args[0], &len), copy[1200];
  assert_non_null(support);
  snprintf(copy, sizeof copy, "%s/support.a", dir);
  file_spit(copy, support, len);
  setenv("NNC_SUPPORT_LIB", copy, 1);
  CacheKey copied = key_of(&in);
  assert_false(same_key(k, copied)); /* another link argument */
  support[len / 2] ^= 1;
  file_spit(copy, support, len);
  assert_false(same_key(copied, key_of(&in)));
  unsetenv("NNC_SUPPORT_LIB");
  free(support);
  BuildInputs header = {BUILD_LIBRARY_HEADER, nn, w, defs, 2}, jit = {BUILD_JIT, nn, w, defs, 2};
  assert_false(same_key(k, key_of(&header)));
  assert_false(same_key(k, key_of(&jit)));
  CacheKey jk = key_of(&jit), none;
  setenv("NNC_SUPPORT_LIB", "/nonexistent/libnnc_support.a", 1); /* a library: no key ... */
  assert_false(build_key(&in, &none));
  assert_true(same_key(jk, key_of(&jit))); /* ... the JIT links nothing */
  unsetenv("NNC_SUPPORT_LIB");
  /* an unreadable input: no key */
  BuildInputs missing = {BUILD_LIBRARY, nn, "/nonexistent/w.bin", NULL, 0};
  assert_false(build_key(&missing, &none));
}

/* ---- builds ---- */

/* build/nnc copied alone into tmp_dir/alone (no compiler beside it); its path. */
static const char *nnc_alone(void) {
  static char exe[1100];
  char dir[1024];
  snprintf(dir, sizeof dir, "%s/alone", tmp_dir);
  snprintf(exe, sizeof exe, "%s/nnc", dir);
  if (access(exe, X_OK) == 0) return exe;
  mkdir(dir, 0700);
  size_t len;
  void *bytes = file_slurp(NNC_BINARY_DIR "/nnc", &len);
  assert_non_null(bytes);
  file_spit(exe, bytes, len);
  free(bytes);
  assert_int_equal(chmod(exe, 0755), 0);
  return exe;
}

/* `nnc main.nn -o so [more]` run by the lone nnc in dir; its exit status, stderr into err.txt. */
static int run_alone_with(const char *dir, const char *so, const char *more) {
  char cmd[4096];
  snprintf(cmd, sizeof cmd, "cd '%s' && '%s' main.nn -o '%s' %s 2>err.txt", dir, nnc_alone(), so, more);
  int status = system(cmd);
  assert_true(WIFEXITED(status));
  return WEXITSTATUS(status);
}

static int run_alone(const char *dir, const char *so) { return run_alone_with(dir, so, ""); }

/* What the last run_alone in dir printed to stderr contains `what`. */
static void assert_err_names(const char *dir, const char *what) {
  char err[1200];
  size_t len;
  snprintf(err, sizeof err, "%s/err.txt", dir);
  char *text = file_slurp(err, &len);
  assert_non_null(text);
  assert_non_null(strstr(text, what));
  free(text);
}

static void build_with_header(const char *dir, const char *so, const char *header) {
  char nn[1200], *msg = NULL;
  snprintf(nn, sizeof nn, "%s/main.nn", dir);
  NncCompileOptions opt = {.header_path = header};
  if (nnc_compile_so(nn, so, &opt, &msg)) fail_msg("%s", msg);
  free(msg);
}

static void build(const char *dir, const char *so) { build_with_header(dir, so, NULL); }

/* f(x) of the model at x = {1, 2}: y[0] (x[0] * K).  Frees the model. */
static float call_f(nnc_model *model) {
  nnc_context *ctx = NULL;
  char *msg = NULL;
  if (nnc_context_open(model, NULL, &ctx, &msg)) fail_msg("%s", msg);
  float x[2] = {1, 2};
  nnc_tensor in = {x, NNC_F32, 1, {2}}, out = {0};
  if (nnc_call(ctx, nnc_model_find_entry(model, "f"), &in, 1, &out, 1)) fail_msg("%s", nnc_context_error(ctx));
  float y = ((float *)out.data)[0];
  nnc_free(out.data);
  nnc_context_free(ctx);
  nnc_model_free(model);
  return y;
}

/* f(x) of library `so`, loaded as a user loads it. */
static float run_f(const char *so) {
  nnc_model *model = NULL;
  char *msg = NULL;
  if (nnc_model_load(so, &model, &msg)) fail_msg("%s", msg);
  return call_f(model);
}

/* f(x) of dir/main.nn compiled in process (nnc_model_compile, as nnc.compile does). */
static float jit_f(const char *dir) {
  char nn[1200], *msg = NULL;
  nnc_model *model = NULL;
  snprintf(nn, sizeof nn, "%s/main.nn", dir);
  if (nnc_model_compile(nn, NULL, &model, &msg)) fail_msg("%s", msg);
  return call_f(model);
}

static void test_served_without_compiler(void **state) {
  (void)state;
  Cache c;
  char dir[1024], a[1200], b[1200], inc[1200];
  use_cache("served", &c);
  model_dir("served", "2.0", dir, sizeof dir);
  snprintf(a, sizeof a, "%s/a.so", dir);
  snprintf(b, sizeof b, "%s/b.so", dir);
  snprintf(inc, sizeof inc, "%s/inc.nn", dir);
  assert_int_not_equal(run_alone(dir, b), 0); /* a miss, and no compiler to hand it to */
  assert_err_names(dir, "cannot run the compiler");
  build(dir, a);
  assert_float_equal(run_f(a), 2.0f, 0);
  assert_int_equal(run_alone(dir, b), 0); /* a hit */
  assert_same_file(a, b);
  /* an edited include: a miss, and the new library computes the new value */
  file_spit(inc, "const K = 3.0\n", 14);
  assert_int_not_equal(run_alone(dir, b), 0);
  build(dir, b);
  assert_float_equal(run_f(b), 3.0f, 0);
  assert_int_equal(run_alone(dir, "c.so"), 0);
  /* undone: a miss (the entry lists the includes of the latest build), which the module's
   * key serves (native.h) with the first library's bytes */
  file_spit(inc, "const K = 2.0\n", 14);
  assert_int_not_equal(run_alone(dir, "d.so"), 0);
  char d[1200];
  snprintf(d, sizeof d, "%s/d.so", dir);
  build(dir, d);
  assert_same_file(a, d);
  assert_int_equal(run_alone(dir, "d.so"), 0);
  /* an output that cannot be written: an error that names it */
  assert_int_equal(run_alone(dir, "no/such/dir/x.so"), 1);
  assert_err_names(dir, "no/such/dir/x.so");
}

/* An entry records the bytes the build compiled, not those on disk when it is stored: an
 * include edited while the compiler ran is a miss. */
static void test_deps_as_compiled(void **state) {
  (void)state;
  Cache c;
  char dir[1024], inc[1200], so[1200];
  use_cache("as_compiled", &c);
  model_dir("as_compiled", "2.0", dir, sizeof dir);
  snprintf(inc, sizeof inc, "%s/inc.nn", dir);
  snprintf(so, sizeof so, "%s/a.so", dir);
  build(dir, so);
  CacheKey k = main_key(dir, BUILD_LIBRARY), library, again;
  assert_int_equal(build_cache_lookup(&c, &k, &library), 0);
  BuildDep stale = {inc, "const K = 9.0\n", 14}, same = {inc, "const K = 2.0\n", 14};
  build_cache_store(&c, &k, &stale, 1, &library, NULL, 0);
  assert_int_equal(build_cache_lookup(&c, &k, &again), 1);
  build_cache_store(&c, &k, &same, 1, &library, NULL, 0);
  assert_int_equal(build_cache_lookup(&c, &k, &again), 0);
  assert_memory_equal(&again, &library, sizeof again);
}

/* A build with --header keeps the header in its entry: served with the library. */
static void test_header(void **state) {
  (void)state;
  Cache c;
  char dir[1024], a[1200], h[1200], h2[1200];
  use_cache("header", &c);
  model_dir("header", "2.0", dir, sizeof dir);
  snprintf(a, sizeof a, "%s/a.so", dir);
  snprintf(h, sizeof h, "%s/a.h", dir);
  snprintf(h2, sizeof h2, "%s/b.h", dir);
  build(dir, a);
  assert_int_not_equal(run_alone_with(dir, "b.so", "--header b.h"), 0); /* no header stored */
  build_with_header(dir, a, h);
  assert_int_equal(run_alone_with(dir, "b.so", "--header b.h"), 0);
  assert_same_file(h, h2);
  size_t len;
  char *text = file_slurp(h2, &len);
  assert_non_null(strstr(text, "_open(const char *weights_path"));
  free(text);
  assert_int_equal(run_alone(dir, "c.so"), 0); /* the build without a header: its own entry */
  /* a header that cannot be written: an error naming it */
  assert_int_equal(run_alone_with(dir, "b.so", "--header no/such/dir/b.h"), 1);
  assert_err_names(dir, "no/such/dir/b.h");
}

static void test_damaged_entry(void **state) {
  (void)state;
  Cache c;
  char dir[1024], a[1200];
  use_cache("damaged", &c);
  model_dir("damaged", "2.0", dir, sizeof dir);
  snprintf(a, sizeof a, "%s/a.so", dir);
  build(dir, a);
  CacheKey k = main_key(dir, BUILD_LIBRARY);
  void *data;
  size_t len;
  assert_int_equal(cache_load(&c, &k, "build", &data, &len), 0);
  free(data);
  /* the entry names a library that is not there: a miss */
  CacheKey nowhere = cache_hash("nowhere", 7, 0);
  build_cache_store(&c, &k, NULL, 0, &nowhere, NULL, 0);
  assert_int_not_equal(run_alone(dir, "b.so"), 0);
  /* a payload that is not an entry: a miss */
  assert_int_equal(cache_store(&c, &k, "build", "garbage", 7), 0);
  assert_int_not_equal(run_alone(dir, "b.so"), 0);
  build(dir, a); /* repairs it */
  assert_int_equal(run_alone(dir, "b.so"), 0);
  assert_float_equal(run_f(a), 2.0f, 0);
}

/* The object code the JIT entry of dir/main.nn names. */
static CacheKey jit_objects(const Cache *c, const char *dir) {
  CacheKey jit = main_key(dir, BUILD_JIT), named;
  assert_int_equal(build_cache_lookup(c, &jit, &named), 0);
  return named;
}

static void test_jit(void **state) {
  (void)state;
  Cache c;
  char dir[1024], inc[1200];
  use_cache("jit", &c);
  model_dir("jit", "2.0", dir, sizeof dir);
  snprintf(inc, sizeof inc, "%s/inc.nn", dir);
  assert_float_equal(jit_f(dir), 2.0f, 0); /* a miss: stores the entry */
  CacheKey two = jit_objects(&c, dir);
  assert_float_equal(jit_f(dir), 2.0f, 0); /* a hit */
  file_spit(inc, "const K = 3.0\n", 14); /* a changed include: a miss */
  assert_float_equal(jit_f(dir), 3.0f, 0);
  CacheKey three = jit_objects(&c, dir);
  assert_false(same_key(two, three));
  file_spit(inc, "const K = 2.0\n", 14);
  assert_float_equal(jit_f(dir), 2.0f, 0);
  assert_true(same_key(two, jit_objects(&c, dir)));
  /* a hit runs the object code the entry names, without compiling: plant K = 3's there */
  void *code;
  size_t len;
  assert_int_equal(cache_load(&c, &three, "o", &code, &len), 0);
  assert_int_equal(cache_store(&c, &two, "o", code, len), 0);
  free(code);
  assert_float_equal(jit_f(dir), 3.0f, 0);
  /* the entry names object code that is gone: a miss, compiled afresh */
  CacheKey nowhere = cache_hash("nowhere", 7, 0), jit = main_key(dir, BUILD_JIT);
  build_cache_store(&c, &jit, NULL, 0, &nowhere, NULL, 0);
  setenv("NNC_CACHE", "off", 1); /* the cache off: compiled, whatever the entries say */
  assert_float_equal(jit_f(dir), 2.0f, 0);
  unsetenv("NNC_CACHE");
  assert_float_equal(jit_f(dir), 3.0f, 0); /* the planted code, found again by the module key */
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_key_inputs),
    cmocka_unit_test(test_served_without_compiler),
    cmocka_unit_test(test_damaged_entry),
    cmocka_unit_test(test_header),
    cmocka_unit_test(test_deps_as_compiled),
    cmocka_unit_test(test_jit),
  };
  return cmocka_run_group_tests(tests, tmp_make, tmp_remove);
}
