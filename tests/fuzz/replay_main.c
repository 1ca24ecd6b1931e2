/* replay_main.c — runs a fuzz target's LLVMFuzzerTestOneInput on the files (or every file of
 * the directories) named on the command line, without libFuzzer: the fuzz regressions and
 * seed corpora in ctest, under the normal and the sanitizer builds. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path) {
  fprintf(stderr, "replay: %s\n", path); /* the last name printed is the one that crashed */
  FILE *f = fopen(path, "rb");
  if (!f) return fprintf(stderr, "replay: cannot open %s\n", path), 1;
  size_t cap = 1 << 16, n = 0;
  uint8_t *buf = malloc(cap);
  for (size_t r; buf && (r = fread(buf + n, 1, cap - n, f)) > 0;)
    if ((n += r) == cap) buf = realloc(buf, cap *= 2);
  fclose(f);
  if (!buf) return fprintf(stderr, "replay: out of memory\n"), 1;
  /* an exact-size copy, so that ASan sees any read past the end */
  uint8_t *exact = malloc(n ? n : 1);
  memcpy(exact, buf, n);
  free(buf);
  LLVMFuzzerTestOneInput(exact, n);
  free(exact);
  return 0;
}

static int run_path(const char *path) {
  struct stat st;
  if (stat(path, &st)) return fprintf(stderr, "replay: no such file %s\n", path), 1;
  if (!S_ISDIR(st.st_mode)) return run_file(path);
  DIR *d = opendir(path);
  int rc = 0;
  for (struct dirent *de; d && (de = readdir(d));) {
    char p[4096];
    if (de->d_name[0] == '.') continue;
    snprintf(p, sizeof p, "%s/%s", path, de->d_name);
    rc |= run_path(p);
  }
  if (d) closedir(d);
  return rc;
}

int main(int argc, char **argv) {
  int rc = 0;
  for (int i = 1; i < argc; i++) rc |= run_path(argv[i]);
  printf("replay: %d path(s) run\n", argc - 1);
  return rc;
}
