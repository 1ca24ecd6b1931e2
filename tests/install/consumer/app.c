/* app.c — a program built against an installed nnc runtime (tests/install/test_install.sh),
 * from outside the source tree, through pkg-config and through CMake's find_package(nnc).
 *
 *   app MODEL.so MODEL.nn WEIGHTS.safetensors
 *
 * Loads MODEL.so (made by the installed `nnc -o`, weights embedded), lists its entries from
 * the introspection table, and runs Real NVP's forward then inverse on a fixed batch: the
 * round trip must give the input back.  Then JIT-compiles MODEL.nn with the weights through
 * the same runtime and checks that it computes the same forward.  Exit 0 when all agree. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "nnc.h"

#define N 5

static int fail(const char *what, char *msg) {
  fprintf(stderr, "app: %s: %s\n", what, msg ? msg : "?");
  nnc_free(msg);
  return 1;
}

static int run(nnc_context *c, nnc_model *m, const char *entry, float *in, float *out0,
               float *out1) {
  nnc_tensor x = {in, NNC_F32, 2, {N, 2}};
  nnc_tensor out[2] = {{out0, NNC_F32, 2, {N, 2}}, {out1, NNC_F32, 1, {N}}};
  int e = nnc_model_find_entry(m, entry);
  if (e < 0) return fprintf(stderr, "app: no entry '%s'\n", entry), 1;
  int n_out = nnc_model_desc_of(m)->entries[e].n_out;
  if (nnc_call(c, e, &x, 1, out, n_out)) return fprintf(stderr, "app: %s: %s\n", entry, nnc_context_error(c)), 1;
  return 0;
}

int main(int argc, char **argv) {
  if (argc != 4) return fprintf(stderr, "usage: app MODEL.so MODEL.nn WEIGHTS.safetensors\n"), 2;
  nnc_model *so = NULL, *jit = NULL;
  nnc_context *cs = NULL, *cj = NULL;
  char *msg = NULL;
  if (nnc_model_load(argv[1], &so, &msg)) return fail("load", msg);
  if (nnc_context_open(so, NULL, &cs, &msg)) return fail("context", msg);
  const nnc_model_desc *d = nnc_model_desc_of(so);
  printf("model %s:", d->name);
  for (int i = 0; i < d->n_entries; i++) {
    char type[128];
    nnc_arg_type_str(d, &d->entries[i].args[0], type, sizeof type);
    printf(" %s(%s: %s)", d->entries[i].name, d->entries[i].args[0].name, type);
  }
  printf("\n");

  float x[N * 2] = {0, 0, 1, 0.5f, -1, 0.25f, 0.5f, -0.5f, 2, -1}, z[N * 2], ld[N], back[N * 2];
  float z2[N * 2], ld2[N];
  if (run(cs, so, "forward", x, z, ld) || run(cs, so, "inverse", z, back, NULL)) return 1;
  double err = 0;
  for (int i = 0; i < N * 2; i++) err = fmax(err, fabs(back[i] - x[i]));
  printf("inverse(forward(x)) - x: max %.3g\n", err);
  if (!(err < 1e-4)) return fprintf(stderr, "app: round trip error %g\n", err), 1;

  if (nnc_model_compile(argv[2], argv[3], &jit, &msg)) return fail("JIT compile", msg);
  if (nnc_context_open(jit, NULL, &cj, &msg)) return fail("JIT context", msg);
  if (run(cj, jit, "forward", x, z2, ld2)) return 1;
  double diff = 0;
  for (int i = 0; i < N * 2; i++) diff = fmax(diff, fabs(z2[i] - z[i]));
  for (int i = 0; i < N; i++) diff = fmax(diff, fabs(ld2[i] - ld[i]));
  printf("JIT vs .so: max %.3g\n", diff);
  if (!(diff < 1e-5)) return fprintf(stderr, "app: JIT and .so differ by %g\n", diff), 1;

  nnc_context_free(cj);
  nnc_model_free(jit);
  nnc_context_free(cs);
  nnc_model_free(so);
  printf("ok\n");
  return 0;
}
