/* test_include.c — `include` in the source-text APIs of compile.h: text given in memory has no
 * directory to resolve a path in, so an include is an error that says so, at the include. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "compile.h"

static const char *const SRC = "const A = 1\ninclude \"helpers.nn\"\n"
                               "export f(x: f32[N]) -> (y: f32[N]) { y = x }\n";

static void test_dump_source_refuses_include(void **state) {
  (void)state;
  char *msg = NULL;
  FILE *out = fopen("/dev/null", "w");
  assert_non_null(out);
  assert_int_equal(nnc_dump_source("mem.nn", SRC, strlen(SRC), "ir", out, &msg), -1);
  fclose(out);
  assert_non_null(msg);
  assert_non_null(strstr(msg, "mem.nn:2:1: error: cannot include 'helpers.nn': this model was given as source text"));
  free(msg);
}

static void test_jit_source_refuses_include(void **state) {
  (void)state;
  char *msg = NULL;
  NncJit *jit = NULL;
  const nnc_model_desc *desc = NULL;
  assert_int_equal(nnc_compile_jit_source("mem.nn", SRC, strlen(SRC), NULL, &jit, &desc, &msg), -1);
  assert_null(jit);
  assert_non_null(strstr(msg, "no directory to find it in"));
  free(msg);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_dump_source_refuses_include),
    cmocka_unit_test(test_jit_source_refuses_include),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
