/* support.c — what the cmocka unit tests share (support.h). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* program_invocation_short_name */
#endif
#include "support.h"

#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

char tmp_dir[64];

int tmp_make(void **state) {
  (void)state;
  snprintf(tmp_dir, sizeof tmp_dir, "/tmp/nnc_%.32s_XXXXXX", program_invocation_short_name);
  return mkdtemp(tmp_dir) ? 0 : -1;
}

int tmp_remove(void **state) {
  (void)state;
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_dir);
  return system(cmd) == 0 ? 0 : -1;
}

void *file_slurp(const char *path, size_t *len) {
  *len = 0;
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  char *data = NULL;
  long n = fseek(f, 0, SEEK_END) ? -1 : ftell(f);
  if (n >= 0 && !fseek(f, 0, SEEK_SET) && (data = malloc((size_t)n + 1))) {
    *len = fread(data, 1, (size_t)n, f);
    data[*len] = '\0';
  }
  fclose(f);
  return data;
}

void file_spit(const char *path, const void *data, size_t len) {
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(data, 1, len, f), len);
  assert_int_equal(fclose(f), 0);
}

void assert_same_file(const char *a, const char *b) {
  size_t na = 0, nb = 0;
  char *da = file_slurp(a, &na), *db = file_slurp(b, &nb);
  assert_non_null(da);
  assert_non_null(db);
  assert_int_equal(na, nb);
  assert_memory_equal(da, db, na);
  free(da);
  free(db);
}

void example_paths(const char *model, char *nn, char *weights, size_t n) {
  snprintf(nn, n, "%s/examples/%s.nn", NNC_SOURCE_DIR, model);
  snprintf(weights, n, "%s/tests/golden/%s/weights.safetensors", NNC_SOURCE_DIR, model);
}

int run_threads(int n, void *(*fn)(void *), void *args, size_t stride) {
  pthread_t t[16];
  assert_true(n > 0 && n <= 16);
  for (int i = 0; i < n; i++)
    assert_int_equal(
        pthread_create(&t[i], NULL, fn, args ? (char *)args + (size_t)i * stride : NULL), 0);
  int failed = 0;
  for (int i = 0; i < n; i++) {
    void *res;
    pthread_join(t[i], &res);
    failed += res != NULL;
  }
  return failed;
}
