/* test_random.c — the counter-based random numbers (Philox4x32-10):
 *   - the C reference (compiler/ir/philox.h) against Random123's known-answer vectors;
 *   - rand/randn compiled through the JIT and an AOT .so equal the reference element by
 *     element (so they cannot depend on threads or build), and have the right moments;
 *   - sample_categorical's frequencies follow softmax(logits / T). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "compile.h"
#include "nnc.h"
#include "philox.h"

#ifndef NNC_BINARY_DIR
#define NNC_BINARY_DIR "."
#endif

#define COUNT 65536
#define ROWS 20000

static const char program[] =
    "export draw(seed: i64[]) -> (u: f32[65536], z: f32[65536], u2: f32[65536]) {\n"
    "  u = rand(65536, seed=seed)\n"
    "  z = randn([65536], seed=seed, stream=7)\n"
    "  u2 = rand(65536, seed=12345)\n"
    "}\n"
    "export pick(logits: f32[N, 4], temperature: f32[]) -> (s: f32[N]) {\n"
    "  s = sample_categorical(logits, seed=99, temperature=temperature)\n"
    "}\n";

static void test_known_answers(void **state) {
  static const uint32_t ctr[3][4] = {{0, 0, 0, 0},
                                     {0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff},
                                     {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}};
  static const uint32_t key[3][2] = {{0, 0}, {0xffffffff, 0xffffffff}, {0xa4093822, 0x299f31d0}};
  static const uint32_t want[3][4] = {{0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8},
                                      {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd},
                                      {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}};
  for (int t = 0; t < 3; t++) {
    uint32_t out[4];
    philox4x32(ctr[t], key[t], out);
    for (int i = 0; i < 4; i++) assert_int_equal(out[i], want[t][i]);
  }
}

static nnc_model *open_model(bool aot) {
  char path[512], *msg = NULL;
  snprintf(path, sizeof path, "%s/random_test.nn", NNC_BINARY_DIR);
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(program, f);
  fclose(f);
  nnc_model *m = NULL;
  if (!aot) {
    if (nnc_model_compile(path, NULL, &m, &msg)) fail_msg("%s", msg);
    return m;
  }
  char so[600];
  snprintf(so, sizeof so, "%s/random_test.so", NNC_BINARY_DIR);
  if (nnc_compile_so(path, so, &(NncCompileOptions){0}, &msg)) fail_msg("%s", msg);
  if (nnc_model_load(so, &m, &msg)) fail_msg("%s", msg);
  return m;
}

static void check_draws(bool aot) {
  nnc_model *m = open_model(aot);
  nnc_context *c = NULL;
  char *msg = NULL;
  if (nnc_context_open(m, NULL, &c, &msg)) fail_msg("%s", msg);
  int64_t seed = 0x123456789abcdefLL;
  nnc_tensor in = {&seed, NNC_I64, 0, {0}}, out[3] = {{0}};
  if (nnc_call(c, nnc_model_find_entry(m, "draw"), &in, 1, out, 3)) fail_msg("%s", nnc_context_error(c));
  const float *u = out[0].data, *z = out[1].data, *u2 = out[2].data;
  double su = 0, suu = 0, sz = 0, szz = 0;
  for (int i = 0; i < COUNT; i++) {
    assert_true(u[i] == philox_uniform((uint64_t)seed, 0, (uint64_t)i)); /* bit for bit */
    assert_true(u2[i] == philox_uniform(12345, 0, (uint64_t)i));
    assert_true(fabsf(z[i] - philox_normal((uint64_t)seed, 7, (uint64_t)i)) <= 1e-6f * (1 + fabsf(z[i])));
    assert_true(u[i] >= 0 && u[i] < 1);
    su += u[i];
    suu += u[i] * u[i];
    sz += z[i];
    szz += z[i] * z[i];
  }
  double mu = su / COUNT, vu = suu / COUNT - mu * mu, mz = sz / COUNT, vz = szz / COUNT - mz * mz;
  assert_true(fabs(mu - 0.5) < 0.01 && fabs(vu - 1.0 / 12) < 0.005);   /* ~6 standard errors */
  assert_true(fabs(mz) < 0.03 && fabs(vz - 1) < 0.05);
  for (int i = 0; i < 3; i++) nnc_free(out[i].data);
  nnc_context_free(c);
  nnc_model_free(m);
}

static void test_draws_jit(void **state) { check_draws(false); }
static void test_draws_aot(void **state) { check_draws(true); }

static void test_categorical_frequencies(void **state) {
  nnc_model *m = open_model(false);
  nnc_context *c = NULL;
  char *msg = NULL;
  if (nnc_context_open(m, NULL, &c, &msg)) fail_msg("%s", msg);
  static float logits[ROWS * 4];
  const float row[4] = {1.0f, 0.0f, -1.0f, 2.0f}, temperature = 2.0f;
  for (int i = 0; i < ROWS; i++) memcpy(logits + 4 * i, row, sizeof row);
  nnc_tensor in[2] = {{logits, NNC_F32, 2, {ROWS, 4}}, {(void *)&temperature, NNC_F32, 0, {0}}}, out = {0};
  if (nnc_call(c, nnc_model_find_entry(m, "pick"), in, 2, &out, 1)) fail_msg("%s", nnc_context_error(c));
  int count[4] = {0};
  for (int i = 0; i < ROWS; i++) {
    float s = ((float *)out.data)[i];
    assert_true(s >= 0 && s < 4 && s == floorf(s));
    count[(int)s]++;
  }
  double z = 0, p[4];
  for (int k = 0; k < 4; k++) z += p[k] = exp(row[k] / temperature);
  for (int k = 0; k < 4; k++) {
    double want = p[k] / z, got = (double)count[k] / ROWS, se = sqrt(want * (1 - want) / ROWS);
    if (fabs(got - want) > 5 * se) fail_msg("class %d: frequency %.4f, softmax %.4f", k, got, want);
  }
  nnc_free(out.data);
  nnc_context_free(c);
  nnc_model_free(m);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_known_answers),
    cmocka_unit_test(test_draws_jit),
    cmocka_unit_test(test_draws_aot),
    cmocka_unit_test(test_categorical_frequencies),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
