/* mutate_main.c — fuzz_compile_tokens' mutator without libFuzzer: writes token-level mutants
 * of .nn files (to look at them, or to measure how far they get: scripts/fuzz_stages.py) and
 * runs each through the compiler (fuzz_compile.c's entry point), so ctest checks that the
 * mutator and the compiler stand its mutants under the sanitizers.
 *
 *   fuzz_compile_tokens_mutate [-n COUNT] [-s SEED] [-o DIR [-x]] FILE...
 *
 * COUNT mutants (default 100), of the FILEs in turn; mutant k comes from seed SEED + k
 * (default SEED 1), so a run repeats; -o writes mutant k to DIR/mutant-<k>.nn, -x does not
 * compile them. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { MAX_SIZE = 32768 }; /* scripts/fuzz.sh's -max_len for compile_tokens */

size_t nnc_mutate(uint8_t *data, size_t size, size_t max_size, unsigned seed);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The first MAX_SIZE bytes of the file, into buf[MAX_SIZE]; their number, or -1. */
static long read_file(const char *path, uint8_t *buf) {
  FILE *f = fopen(path, "rb");
  if (!f) return fprintf(stderr, "mutate: cannot open %s\n", path), -1;
  size_t n = fread(buf, 1, MAX_SIZE, f);
  fclose(f);
  return (long)n;
}

static int write_file(const char *dir, long k, const uint8_t *data, size_t size) {
  char path[4096];
  snprintf(path, sizeof path, "%s/mutant-%ld.nn", dir, k);
  FILE *f = fopen(path, "wb");
  if (!f || fwrite(data, 1, size, f) != size || fclose(f))
    return fprintf(stderr, "mutate: cannot write %s\n", path), 0;
  return 1;
}

int main(int argc, char **argv) {
  long count = 100;
  unsigned seed = 1;
  const char *dir = NULL;
  int run = 1;
  for (int c; (c = getopt(argc, argv, "n:s:o:x")) != -1;) {
    switch (c) {
    case 'n': count = strtol(optarg, NULL, 10); break;
    case 's': seed = (unsigned)strtoul(optarg, NULL, 10); break;
    case 'o': dir = optarg; break;
    case 'x': run = 0; break;
    default:
      return fputs("usage: fuzz_compile_tokens_mutate [-n COUNT] [-s SEED] [-o DIR [-x]] FILE...\n",
                   stderr), 2;
    }
  }
  if (optind >= argc) return fputs("mutate: no input files\n", stderr), 2;
  uint8_t *buf = malloc(MAX_SIZE), *exact;
  if (!buf) return 1;
  for (long k = 0; k < count; k++) {
    const char *path = argv[optind + k % (argc - optind)];
    long n = read_file(path, buf);
    if (n < 0) return free(buf), 1;
    size_t size = nnc_mutate(buf, (size_t)n, MAX_SIZE, seed + (unsigned)k);
    fprintf(stderr, "mutate: %s, seed %u\n", path, seed + (unsigned)k); /* the last one crashed */
    if (dir && !write_file(dir, k, buf, size)) return free(buf), 1;
    if (!run) continue;
    if (!(exact = malloc(size ? size : 1))) return free(buf), 1; /* ASan sees reads past it */
    memcpy(exact, buf, size);
    LLVMFuzzerTestOneInput(exact, size);
    free(exact);
  }
  free(buf);
  printf("mutate: %ld mutant(s) %s\n", count, run ? "compiled" : "written");
  return 0;
}
