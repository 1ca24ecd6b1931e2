/* driver_realnvp.c — call an AOT-compiled Real NVP from C through its generated header.
 *
 *   build/nnc examples/realnvp.nn -o realnvp.so \
 *       --weights tests/golden/realnvp/weights.safetensors --header realnvp.h
 *   cc -I. examples/driver_realnvp.c -L. -l:realnvp.so -Wl,-rpath,"$PWD" -lm -o driver_realnvp
 *   ./driver_realnvp
 *
 * Maps a few 2-D points to latent space (forward: z and log|det J|), maps them back
 * (inverse), and prints "roundtrip ok" when the round trip reproduces the points to 1e-4.
 * The weights are embedded in the .so, so realnvp_open gets no path. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>

#include "realnvp.h"

enum { N = 5, D = 2 };

int main(void) {
  float x[N][D] = {{0.0f, 0.0f}, {1.0f, 0.5f}, {-1.0f, 0.25f}, {0.5f, -0.5f}, {2.0f, 1.0f}};
  float z[N][D], logdet[N], x2[N][D];
  char err[256];

  realnvp_ctx *ctx = realnvp_open(NULL, err, sizeof err);
  if (!ctx) {
    fprintf(stderr, "realnvp_open: %s\n", err);
    return 1;
  }
  if (realnvp_forward(ctx, N, &x[0][0], &z[0][0], logdet) != 0 ||
      realnvp_inverse(ctx, N, &z[0][0], &x2[0][0]) != 0) {
    fprintf(stderr, "realnvp: %s\n", realnvp_error(ctx));
    realnvp_close(ctx);
    return 1;
  }

  float max_err = 0;
  printf("%-20s %-20s %-10s %s\n", "x", "z = forward(x)", "logdet", "inverse(z)");
  for (int i = 0; i < N; i++) {
    printf("(%7.4f, %7.4f)   (%7.4f, %7.4f)   %8.4f   (%7.4f, %7.4f)\n", x[i][0], x[i][1],
           z[i][0], z[i][1], logdet[i], x2[i][0], x2[i][1]);
    for (int d = 0; d < D; d++) {
      float e = fabsf(x[i][d] - x2[i][d]);
      if (isnan(e) || e > max_err) max_err = e; /* a NaN sticks */
    }
  }
  printf("max |x - inverse(forward(x))| = %.3g\n", max_err);
  realnvp_close(ctx);

  if (!(max_err < 1e-4f)) {
    printf("roundtrip FAILED\n");
    return 1;
  }
  printf("roundtrip ok\n");
  return 0;
}
