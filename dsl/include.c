/* include.c — `include "other.nn"`: reads and parses the files a program includes and puts
 * their declarations in place of each include, so that semantic analysis sees one program.
 *
 * A path is relative to the directory of the including file (or absolute).  A file is read
 * once per compilation, known by its real path: including it again (two files that both
 * include a shared one) adds nothing.  A file that includes itself, directly or through
 * others, is an error (a cycle), as is one that cannot be read.  Every file read is listed in
 * the main SrcFile and its nodes' locations carry its index there, so that diagnostics name
 * the file and line they come from.  Source given as text (no file) cannot include. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "ast.h"
#include "diag.h"

#define MAX_INCLUDE_BYTES (64u << 20) /* as the main file (compile.c); in a message below */
#define MAX_INCLUDE_DEPTH 64          /* files nested in files */

typedef struct Includer {
  Arena *a;
  SrcFile *main;
  Diag *err;
  const char **real; /* real[i]: the real path of main->files[i] */
  int *chain;        /* the files being expanded, outermost first */
  int depth;
  int cap;
} Includer;

/* Adds `f` (real path `real`) to the compilation's files; returns its index. */
static int add_file(Includer *in, SrcFile *f, const char *real) {
  SrcFile *m = in->main;
  if (m->nfiles == in->cap) {
    int cap = in->cap ? 2 * in->cap : 8;
    SrcFile **files = arena_alloc(in->a, cap * sizeof *files);
    const char **real2 = arena_alloc(in->a, cap * sizeof *real2);
    if (m->nfiles) {
      memcpy(files, m->files, m->nfiles * sizeof *files);
      memcpy(real2, in->real, m->nfiles * sizeof *real2);
    }
    m->files = files;
    in->real = real2;
    in->cap = cap;
  }
  m->files[m->nfiles] = f;
  in->real[m->nfiles] = arena_strdup(in->a, real);
  return m->nfiles++;
}

static int find_file(const Includer *in, const char *real) {
  for (int i = 0; i < in->main->nfiles; i++)
    if (!strcmp(in->real[i], real)) return i;
  return -1;
}

/* `name` relative to the directory of the file at `from`. */
static char *resolve(Arena *a, const char *from, const char *name) {
  const char *slash = strrchr(from, '/');
  size_t dir = name[0] == '/' || !slash ? 0 : (size_t)(slash - from) + 1;
  char *p = arena_alloc(a, dir + strlen(name) + 1);
  memcpy(p, from, dir);
  strcpy(p + dir, name);
  return p;
}

/* "cannot include 'x.nn' (lib/x.nn): why", the path as resolved when it is not the name. */
static bool cannot(Includer *in, const Node *at, const char *path, const char *why) {
  if (!strcmp(path, at->name)) return diag_error(in->err, at->loc, "cannot include '%s': %s", at->name, why);
  return diag_error(in->err, at->loc, "cannot include '%s' (%s): %s", at->name, path, why);
}

/* Reads the regular file at `path` into the arena (no allocation while it is open). */
static bool read_source(Includer *in, const Node *at, const char *path, SrcFile *f) {
  struct stat st;
  if (stat(path, &st) != 0) return cannot(in, at, path, strerror(errno));
  if (!S_ISREG(st.st_mode)) return cannot(in, at, path, "not a regular file");
  if ((unsigned long long)st.st_size > MAX_INCLUDE_BYTES) return cannot(in, at, path, "larger than 64 MiB");
  char *text = arena_alloc(in->a, (size_t)st.st_size + 1);
  FILE *fp = fopen(path, "rb");
  if (!fp) return cannot(in, at, path, strerror(errno));
  size_t n = fread(text, 1, (size_t)st.st_size, fp);
  bool bad = ferror(fp);
  fclose(fp);
  if (bad) return cannot(in, at, path, "read error");
  *f = (SrcFile){.path = path, .text = text, .len = n};
  return true;
}

/* "a.nn includes b.nn, which includes a.nn": the chain from file `first` back to it. */
static bool cycle_error(Includer *in, const Node *at, int first) {
  char msg[1024];
  size_t o = 0;
  int k = 0;
  while (k < in->depth && in->chain[k] != first) k++;
  for (int i = k; i <= in->depth && o < sizeof msg; i++)
    o += (size_t)snprintf(msg + o, sizeof msg - o, "%s%s", i == k ? "" : i == k + 1 ? " includes " : ", which includes ",
                          in->main->files[i < in->depth ? in->chain[i] : first]->path);
  return diag_error(in->err, at->loc, "include cycle: %s", msg);
}

static bool expand(Includer *in, int file, Node *prog);

/* The declarations `include "name"` (in file `from`) adds: *decls, none when already read. */
static bool include_one(Includer *in, int from, const Node *inc, NodeList *out) {
  if (!inc->name[0]) return diag_error(in->err, inc->loc, "include of an empty path");
  char *path = resolve(in->a, in->main->files[from]->path, inc->name);
  char real[PATH_MAX];
  if (!realpath(path, real)) return cannot(in, inc, path, strerror(errno));
  int seen = find_file(in, real);
  if (seen >= 0) {
    for (int i = 0; i < in->depth; i++)
      if (in->chain[i] == seen) return cycle_error(in, inc, seen);
    return true; /* read already: its declarations are in the program */
  }
  if (in->depth >= MAX_INCLUDE_DEPTH)
    return diag_error(in->err, inc->loc, "includes nested more than %d deep", MAX_INCLUDE_DEPTH);
  SrcFile *f = arena_alloc(in->a, sizeof *f);
  if (!read_source(in, inc, path, f)) return false;
  f->included_at = inc->loc;
  int idx = add_file(in, f, real);
  Node *sub = parse_program_at(in->a, f, idx, in->err);
  if (!sub || !expand(in, idx, sub)) return false;
  for (int i = 0; i < sub->body.len; i++) nodelist_push(in->a, out, sub->body.items[i]);
  return true;
}

/* Replaces the includes of `prog` (the tree of file `file`) by their declarations. */
static bool expand(Includer *in, int file, Node *prog) {
  in->chain[in->depth++] = file;
  NodeList body = {0};
  for (int i = 0; i < prog->body.len; i++) {
    Node *n = prog->body.items[i];
    if (n->kind != N_INCLUDE) nodelist_push(in->a, &body, n);
    else if (!include_one(in, file, n, &body)) return false;
  }
  prog->body = body;
  in->depth--;
  return true;
}

bool include_expand(Arena *a, SrcFile *main, Node *prog, bool on_disk, Diag *err) {
  const Node *first = NULL;
  for (int i = 0; i < prog->body.len && !first; i++)
    if (prog->body.items[i]->kind == N_INCLUDE) first = prog->body.items[i];
  if (!first) return true;
  if (!on_disk)
    return diag_error(err, first->loc, "cannot include '%s': this model was given as source text, not "
                      "read from a file, so there is no directory to find it in (compile the file "
                      "by its path)", first->name);
  Includer in = {.a = a, .main = main, .err = err};
  in.chain = arena_alloc(a, (MAX_INCLUDE_DEPTH + 1) * sizeof *in.chain);
  char real[PATH_MAX];
  add_file(&in, main, realpath(main->path, real) ? real : main->path);
  return expand(&in, 0, prog);
}
