/* test_compile_golden.c — golden files for compiler stages, diffed by one runner:
 *   tests/compile/errors/X.nn  must fail `nnc check` with exactly tests/compile/errors/X.err
 *   tests/compile/ok/X.nn      must pass `nnc check` (its compile-time asserts included)
 *   tests/compile/fused/X.nn   `nnc dump --stage=fused` must equal tests/compile/fused/X.fused
 *   examples/X.nn              `nnc dump --stage=fused` must equal tests/compile/fused/examples.X.fused
 * so diagnostics and fusion decisions cannot change unnoticed.  The dumps are planned for
 * 16-lane vectors ($NNC_PLAN_SIMD) and a 1 MiB L2 ($NNC_PLAN_L2), so they do not depend on the
 * machine.  Run with NNC_UPDATE_GOLDEN=1
 * to (re)write the expected files after an intended change, then review the diff. */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "compile.h"

#ifndef NNC_SOURCE_DIR
#define NNC_SOURCE_DIR "."
#endif

static char *read_text(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  char *buf = NULL;
  size_t len = 0;
  FILE *m = open_memstream(&buf, &len);
  int c;
  while ((c = fgetc(f)) != EOF) fputc(c, m);
  fclose(f);
  fclose(m);
  return buf;
}

static void write_text(const char *path, const char *text) {
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
}

/* Compare `got` with the expected file (or write it when updating). */
static void check_golden(const char *expected_path, const char *got) {
  if (getenv("NNC_UPDATE_GOLDEN")) {
    write_text(expected_path, got);
    return;
  }
  char *want = read_text(expected_path);
  if (!want) fail_msg("missing expected file %s (run with NNC_UPDATE_GOLDEN=1)", expected_path);
  if (strcmp(want, got)) {
    fprintf(stderr, "--- expected %s\n%s--- got\n%s", expected_path, want, got);
    free(want);
    fail_msg("%s differs", expected_path);
  }
  free(want);
}

static char *replace_ext(const char *path, const char *ext) {
  size_t n = strrchr(path, '.') - path;
  char *s = malloc(n + strlen(ext) + 1);
  memcpy(s, path, n);
  strcpy(s + n, ext);
  return s;
}

/* Paths relative to the source tree, so messages name `tests/compile/...`. */
static int count_files(const char *dir, int (*each)(const char *path)) {
  DIR *d = opendir(dir);
  if (!d) fail_msg("cannot open %s", dir);
  struct dirent *de;
  char **names = NULL;
  int n = 0;
  while ((de = readdir(d))) {
    size_t len = strlen(de->d_name);
    if (len < 4 || strcmp(de->d_name + len - 3, ".nn")) continue;
    names = realloc(names, (n + 1) * sizeof *names);
    if (asprintf(&names[n++], "%s/%s", dir, de->d_name) < 0) abort();
  }
  closedir(d);
  int failures = 0;
  for (int i = 0; i < n; i++) {
    failures += each(names[i]);
    free(names[i]);
  }
  free(names);
  return n ? failures : -1;
}

static int check_error_case(const char *path) {
  char *msg = NULL;
  int rc = nnc_check(path, NULL, &msg);
  if (rc == 0) {
    fprintf(stderr, "%s: expected an error, compiled fine\n", path);
    return 1;
  }
  char *exp = replace_ext(path, ".err");
  check_golden(exp, msg);
  free(exp);
  free(msg);
  return 0;
}

static int check_ok_case(const char *path) {
  char *msg = NULL;
  if (nnc_check(path, NULL, &msg) == 0) return 0;
  fprintf(stderr, "%s: expected to check fine, got\n%s", path, msg);
  free(msg);
  return 1;
}

static char *dump_fused(const char *path) {
  char *buf = NULL, *msg = NULL;
  size_t len = 0;
  FILE *m = open_memstream(&buf, &len);
  int rc = nnc_dump(path, "fused", m, &msg);
  fclose(m);
  if (rc) fail_msg("%s", msg);
  return buf;
}

static int check_fused_case(const char *path) {
  char *got = dump_fused(path);
  char *exp = replace_ext(path, ".fused");
  check_golden(exp, got);
  free(exp);
  free(got);
  return 0;
}

static int check_example(const char *path) {
  char *got = dump_fused(path);
  const char *base = strrchr(path, '/') + 1;
  char *exp;
  if (asprintf(&exp, "tests/compile/fused/examples.%.*s.fused", (int)(strlen(base) - 3), base) < 0) abort();
  check_golden(exp, got);
  free(exp);
  free(got);
  return 0;
}

static void test_error_diagnostics(void **state) {
  assert_int_equal(count_files("tests/compile/errors", check_error_case), 0);
}

static void test_ok_programs(void **state) {
  assert_int_equal(count_files("tests/compile/ok", check_ok_case), 0);
}

static void test_fused_dumps(void **state) {
  assert_int_equal(count_files("tests/compile/fused", check_fused_case), 0);
}

static void test_example_fused_dumps(void **state) {
  assert_int_equal(count_files("examples", check_example), 0);
}

int main(void) {
  if (chdir(NNC_SOURCE_DIR)) return 1;
  /* The plans (tile widths, slot sizes) depend on the vector width: the expected dumps are
   * those of a 16-lane (AVX-512) host, whatever this machine has. */
  setenv("NNC_PLAN_SIMD", "16", 1);
  /* and on the L2 size (which products take row tiles, and their weights' transposed copies):
   * a 1 MiB L2 */
  setenv("NNC_PLAN_L2", "1048576", 1);
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_error_diagnostics),
    cmocka_unit_test(test_ok_programs),
    cmocka_unit_test(test_fused_dumps),
    cmocka_unit_test(test_example_fused_dumps),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
