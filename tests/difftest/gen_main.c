/* gen_main.c — difftest_gen: write random programs of the differential tester's generator
 * (gen.c) without running them, e.g. as seeds for the compile fuzz target.
 *
 *   difftest_gen SEED COUNT DIR      writes DIR/gen-<seed>.nn for COUNT seeds from SEED */
#include <stdio.h>
#include <stdlib.h>
#include "gen.h"

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: difftest_gen SEED COUNT DIR\n");
    return 2;
  }
  unsigned long long seed = strtoull(argv[1], NULL, 10);
  int count = atoi(argv[2]);
  static GProg g;
  for (int i = 0; i < count; i++) {
    char path[4096];
    gen_program(&g, seed + (unsigned long long)i);
    char *text = gen_emit(&g);
    snprintf(path, sizeof path, "%s/gen-%llu.nn", argv[3], seed + (unsigned long long)i);
    FILE *f = text ? fopen(path, "w") : NULL;
    if (!f || fputs(text, f) < 0 || fclose(f)) {
      fprintf(stderr, "difftest_gen: cannot write %s\n", path);
      return 1;
    }
    free(text);
  }
  return 0;
}
