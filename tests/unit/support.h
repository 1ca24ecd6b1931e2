/* support.h — what the cmocka unit tests share (support.c, linked into every test): where
 * the sources and the build are, a temporary directory per test program, whole files read
 * and written, an example model's paths, and functions run on several threads at once. */
#ifndef NNC_TESTS_SUPPORT_H
#define NNC_TESTS_SUPPORT_H

#include <stddef.h>

#ifndef NNC_SOURCE_DIR
#define NNC_SOURCE_DIR "."
#endif
#ifndef NNC_BINARY_DIR
#define NNC_BINARY_DIR "."
#endif

/* The program's temporary directory, "/tmp/nnc_<program>_XXXXXX" once made: made by
 * tmp_make and removed with all in it by tmp_remove, the group set-up and tear-down of
 * cmocka_run_group_tests. */
extern char tmp_dir[64];
int tmp_make(void **state);
int tmp_remove(void **state);

/* All of `path`, malloc'd, with a NUL after its *len bytes; NULL (and *len 0) when it
 * cannot be read. */
void *file_slurp(const char *path, size_t *len);
/* data[len] as the file `path`, or the test fails. */
void file_spit(const char *path, const void *data, size_t len);
/* The files at a and b hold the same bytes, or the test fails. */
void assert_same_file(const char *a, const char *b);

/* examples/<model>.nn and its golden weights, tests/golden/<model>/weights.safetensors,
 * into nn[n] and weights[n]. */
void example_paths(const char *model, char *nn, char *weights, size_t n);

/* Runs fn(args + i * stride) for i in [0, n) on n threads at once (n at most 16) and waits
 * for them; returns how many returned non-NULL (a failure, by the tests' convention). */
int run_threads(int n, void *(*fn)(void *), void *args, size_t stride);

#endif
