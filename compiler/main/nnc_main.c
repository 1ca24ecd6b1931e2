/* nnc_main.c — the `nnc` command: parse the command line and hand the work to the compiler
 * library (compile.h: AOT, check, dump) or the runtime (nnc.h: JIT or load a .so, run one
 * entry on .npy inputs).
 *
 * Exit status: 0 success; 1 user error (bad model, weights or inputs: the library's message,
 * already in "file:line:col: error:" form, is printed to stderr as is); 2 usage error. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <limits.h>
#include <string.h>
#include <getopt.h>
#include <unistd.h>

#include "cache.h"
#include "cli.h"
#include "compile.h"
#include "nnc_help.h"
#include "nnc.h"
#include "npy.h"

#define MAX_PAIRS 64
#define SHOW_VALUES 8

typedef struct Pair {
  const char *name;
  const char *path;
} Pair;

static int add_pair(const char *cmd, const char *opt, const char *arg, Pair *pairs, int *n) {
  const char *eq = strchr(arg, '=');
  if (!eq || eq == arg || !eq[1])
    return usage_error(cmd, "%s expects NAME=PATH.npy, got '%s'", opt, arg);
  if (*n >= MAX_PAIRS) return usage_error(cmd, "too many %s options (at most %d)", opt, MAX_PAIRS);
  size_t len = (size_t)(eq - arg);
  char *name = malloc(len + 1);
  if (!name) return user_error("nnc: error: out of memory");
  memcpy(name, arg, len);
  name[len] = '\0';
  pairs[(*n)++] = (Pair){name, eq + 1};
  return 0;
}

static void free_pairs(Pair *pairs, int n) {
  for (int i = 0; i < n; i++) free((char *)pairs[i].name);
}

/* ---- nnc FILE.nn -o FILE.so ---- */

/* argv[0] is the program */
static int cmd_compile(int argc, char **argv) {
  CompileArgs a;
  int rc = cli_parse_compile(argc, argv, &a);
  if (rc != CLI_PARSED) return rc;
  char *msg = NULL;
  if (nnc_compile_so(a.in, a.so, &a.opt, &msg)) return user_error_msg(msg);
  free(msg);
  return 0;
}

/* ---- nnc check ---- */

static const struct option help_only[] = {
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* argv[0] is "check" */
static int cmd_check(int argc, char **argv) {
  const char *in = NULL, *defines[MAX_DEFINES];
  NncCompileOptions opt = {.defines = defines};
  OptParser p;
  opt_start(&p, argc, argv, "-:hD:", help_only);
  for (int c, rc = 0; (c = opt_next(&p)) != -1;) {
    switch (c) {
    case 'h': return fputs(help_check, stdout), 0;
    case 'D': rc = add_define("check", optarg, defines, &opt.ndefines); break;
    default: rc = opt_common(&p, c, "check", &in);
    }
    if (rc) return rc;
  }
  if (!in) return usage_error("check", "no model file given");
  char *msg = NULL;
  if (nnc_check(in, &opt, &msg)) return user_error_msg(msg);
  free(msg);
  printf("%s: ok\n", in);
  return 0;
}

/* ---- nnc import ---- */

static const struct option import_options[] = {
    {"help", no_argument, NULL, 'h'},
    {"weights-out", required_argument, NULL, 'w'},
    {"dim", required_argument, NULL, 'D'},
    {NULL, 0, NULL, 0},
};

/* FILE.nn -> FILE.safetensors (the same folder and stem) */
static char *default_weights_path(const char *nn) {
  const char *slash = strrchr(nn, '/'), *dot = strrchr(nn, '.');
  size_t stem = dot && (!slash || dot > slash + 1) ? (size_t)(dot - nn) : strlen(nn);
  char *w = malloc(stem + sizeof ".safetensors");
  if (w) snprintf(w, stem + sizeof ".safetensors", "%.*s.safetensors", (int)stem, nn);
  return w;
}

/* argv[0] is "import" */
static int cmd_import(int argc, char **argv) {
  const char *in = NULL, *nn = NULL, *weights = NULL, *dims[MAX_DEFINES];
  int ndims = 0;
  OptParser p;
  opt_start(&p, argc, argv, "-:ho:D:", import_options);
  for (int c, rc = 0; (c = opt_next(&p)) != -1;) {
    switch (c) {
    case 'h': return fputs(help_import, stdout), 0;
    case 'o': nn = optarg; break;
    case 'w': weights = optarg; break;
    case 'D': rc = add_define("import", optarg, dims, &ndims); break;
    default: rc = opt_common(&p, c, "import", &in);
    }
    if (rc) return rc;
  }
  if (!in) return usage_error("import", "no model file given");
  if (!nn) return usage_error("import", "missing -o FILE.nn (the .nn to write)");
  char *own = weights ? NULL : default_weights_path(nn), *msg = NULL;
  int rc = nnc_import_onnx(in, nn, weights ? weights : own, dims, ndims, &msg);
  free(own);
  if (rc) return user_error_msg(msg);
  free(msg);
  return 0;
}

/* ---- nnc cache ---- */

/* argv[0] is "cache" */
static int cmd_cache(int argc, char **argv) {
  const char *what = argc > 1 ? argv[1] : "info";
  if (!strcmp(what, "--help") || !strcmp(what, "-h")) return fputs(help_cache, stdout), 0;
  if (strcmp(what, "info") && strcmp(what, "clear"))
    return usage_error("cache", "unknown cache command '%s' (info, clear)", what);
  if (argc > 2) return usage_error("cache", "unexpected argument '%s'", argv[2]);
  Cache c;
  cache_open(&c);
  if (!c.dir[0]) return user_error("nnc: error: no cache directory: set NNC_CACHE_DIR or HOME");
  int n;
  if (!strcmp(what, "clear")) {
    if (cache_clear(&c, &n)) return user_error("nnc: error: cannot read %s: %s", c.dir, strerror(errno));
    return printf("removed %d entries from %s\n", n, c.dir), 0;
  }
  uint64_t bytes;
  cache_usage(&c, &n, &bytes);
  printf("directory: %s\nstate: %s\nentries: %d, %.1f MiB", c.dir,
         c.on ? "on" : "off (NNC_CACHE)", n, bytes / 1048576.0);
  if (c.max_bytes) printf(" of at most %llu MiB", (unsigned long long)(c.max_bytes >> 20));
  return puts(""), 0;
}

/* ---- nnc dump ---- */

static void list_stages(FILE *f) {
  for (int i = 0; nnc_dump_stages[i]; i++) fprintf(f, "%s%s", i ? ", " : "", nnc_dump_stages[i]);
}

static bool known_stage(const char *s) {
  for (int i = 0; nnc_dump_stages[i]; i++)
    if (strcmp(nnc_dump_stages[i], s) == 0) return true;
  return false;
}

static bool known_format(const char *s) {
  for (int i = 0; nnc_dump_formats[i]; i++)
    if (strcmp(nnc_dump_formats[i], s) == 0) return true;
  return false;
}

static const struct option dump_options[] = {
    {"help", no_argument, NULL, 'h'},
    {"stage", required_argument, NULL, 's'},
    {"format", required_argument, NULL, 'f'},
    {"dims", required_argument, NULL, 'd'},
    {NULL, 0, NULL, 0},
};

/* argv[0] is "dump" */
static int cmd_dump(int argc, char **argv) {
  const char *in = NULL, *stage = NULL, *format = "text", *defines[MAX_DEFINES];
  NncCompileOptions opt = {.defines = defines};
  OptParser p;
  opt_start(&p, argc, argv, "-:hD:", dump_options);
  for (int c, rc = 0; (c = opt_next(&p)) != -1;) {
    switch (c) {
    case 'h': return fputs(help_dump, stdout), 0;
    case 's': stage = optarg; break;
    case 'f': format = optarg; break;
    case 'd': opt.dims = optarg; break;
    case 'D': rc = add_define("dump", optarg, defines, &opt.ndefines); break;
    default: rc = opt_common(&p, c, "dump", &in);
    }
    if (rc) return rc;
  }
  if (!in) return usage_error("dump", "no model file given");
  if (!stage || !known_stage(stage)) {
    fprintf(stderr, "nnc: error: %s --stage=STAGE; STAGE is one of: ",
            stage ? "unknown stage in" : "missing");
    list_stages(stderr);
    fputs("\nTry 'nnc dump --help'.\n", stderr);
    return EXIT_USAGE;
  }
  if (!known_format(format)) return usage_error("dump", "unknown format '%s' (text or dot)", format);
  if (strcmp(format, "dot") == 0 && strcmp(stage, "ir") && strcmp(stage, "opt") && strcmp(stage, "fused"))
    return usage_error("dump", "--format=dot draws the stages ir, opt and fused, not '%s'", stage);
  char *msg = NULL;
  if (nnc_dump_format(in, stage, format, &opt, stdout, &msg)) return user_error_msg(msg);
  free(msg);
  return 0;
}

/* ---- nnc run ---- */

typedef struct Run {
  const char *model_path, *weights, *entry_name, *threads;
  const char *defines[MAX_DEFINES];
  int n_defines;
  Pair in[MAX_PAIRS], out[MAX_PAIRS];
  int n_in, n_out;
  nnc_model *model;
  nnc_context *ctx;
  const nnc_model_desc *desc;
  const nnc_entry_desc *entry;
  int entry_index;
  NpyArray arrays[MAX_PAIRS];  /* [entry->n_in] */
  const char *files[MAX_PAIRS]; /* [entry->n_in] the .npy of each input */
  nnc_tensor inputs[MAX_PAIRS], outputs[MAX_PAIRS];
} Run;

static const struct option run_options[] = {
    {"help", no_argument, NULL, 'h'},
    {"weights", required_argument, NULL, 'w'},
    {"entry", required_argument, NULL, 'e'},
    {"threads", required_argument, NULL, 't'},
    {"in", required_argument, NULL, 'i'},
    {"out", required_argument, NULL, 'O'},
    {NULL, 0, NULL, 0},
};

/* argv[0] is "run"; -1 after printing the help */
static int parse_run(Run *r, int argc, char **argv) {
  OptParser p;
  opt_start(&p, argc, argv, "-:hD:", run_options);
  for (int c, rc = 0; (c = opt_next(&p)) != -1;) {
    switch (c) {
    case 'h': return fputs(help_run, stdout), -1;
    case 'w': r->weights = optarg; break;
    case 'e': r->entry_name = optarg; break;
    case 't': r->threads = optarg; break;
    case 'i': rc = add_pair("run", "--in", optarg, r->in, &r->n_in); break;
    case 'O': rc = add_pair("run", "--out", optarg, r->out, &r->n_out); break;
    case 'D': rc = add_define("run", optarg, r->defines, &r->n_defines); break;
    case OPT_MISSING:
      if (!strcmp(p.text, "--in") || !strcmp(p.text, "--out")) {
        rc = usage_error("run", "option '%s' needs NAME=PATH.npy", p.text);
        break;
      }
      /* fall through */
    default: rc = opt_common(&p, c, "run", &r->model_path);
    }
    if (rc) return rc;
  }
  if (!r->model_path) return usage_error("run", "no model file given");
  if (r->threads) {
    char *end;
    long n = strtol(r->threads, &end, 10);
    if (!*r->threads || *end || n < 1 || n > 1024)
      return usage_error("run", "--threads needs a number from 1 to 1024, not '%s'", r->threads);
  }
  return 0;
}

static bool is_library(const char *path) {
  size_t n = strlen(path);
  return (n > 3 && strcmp(path + n - 3, ".so") == 0) || strstr(path, ".so.") != NULL;
}

static void list_args(const nnc_entry_desc *e, int from, int to, char *buf, size_t len) {
  size_t n = 0;
  buf[0] = '\0';
  for (int i = from; i < to && n < len; i++)
    n += snprintf(buf + n, len - n, "%s%s", i > from ? ", " : "", e->args[i].name);
  if (from == to) snprintf(buf, len, "none");
}

static int open_model(Run *r) {
  char *msg = NULL;
  int rc = is_library(r->model_path) ? nnc_model_load(r->model_path, &r->model, &msg)
                                     : nnc_model_compile_defines(r->model_path, NULL, r->defines,
                                                                 r->n_defines, &r->model, &msg);
  if (rc) return user_error_msg(msg);
  r->desc = nnc_model_desc_of(r->model);
  if (r->desc->n_entries == 0) return user_error("%s: error: the model exports no entries", r->model_path);
  r->entry_index = r->entry_name ? nnc_model_find_entry(r->model, r->entry_name) : 0;
  if (r->entry_index < 0) {
    char names[1024] = "";
    size_t n = 0;
    for (int i = 0; i < r->desc->n_entries && n < sizeof names; i++)
      n += snprintf(names + n, sizeof names - n, "%s%s", i ? ", " : "", r->desc->entries[i].name);
    return user_error("nnc: error: model '%s' has no entry '%s' (its entries: %s)", r->desc->name,
                      r->entry_name, names);
  }
  r->entry = &r->desc->entries[r->entry_index];
  if (r->entry->n_in > MAX_PAIRS || r->entry->n_out > MAX_PAIRS)
    return user_error("nnc: error: entry '%s' has too many arguments for nnc run", r->entry->name);
  if (nnc_context_open(r->model, r->weights, &r->ctx, &msg)) {
    if (!r->weights && msg && strstr(msg, "without weights")) {
      fprintf(stderr, "%s (--weights W.safetensors)\n", msg);
      free(msg);
      return EXIT_USER;
    }
    return user_error_msg(msg);
  }
  if (r->threads && nnc_context_set_threads(r->ctx, atoi(r->threads)))
    return user_error("nnc: error: cannot start %s threads", r->threads);
  return 0;
}

/* Index of argument `name` in [from, to) of the entry, or -1. */
static int find_arg(const nnc_entry_desc *e, int from, int to, const char *name) {
  for (int i = from; i < to; i++)
    if (strcmp(e->args[i].name, name) == 0) return i;
  return -1;
}

/* Each --in and --out must name an argument of the entry, once. */
static int match_pairs(Run *r) {
  const nnc_entry_desc *e = r->entry;
  char names[1024];
  for (int p = 0; p < r->n_in; p++) {
    int i = find_arg(e, 0, e->n_in, r->in[p].name);
    list_args(e, 0, e->n_in, names, sizeof names);
    if (i < 0)
      return user_error("nnc: error: entry '%s' has no input '%s' (its inputs: %s)", e->name,
                        r->in[p].name, names);
    if (r->files[i]) return user_error("nnc: error: input '%s' given twice", r->in[p].name);
    r->files[i] = r->in[p].path;
  }
  for (int p = 0; p < r->n_out; p++) {
    list_args(e, e->n_in, e->n_in + e->n_out, names, sizeof names);
    if (find_arg(e, e->n_in, e->n_in + e->n_out, r->out[p].name) < 0)
      return user_error("nnc: error: entry '%s' has no output '%s' (its outputs: %s)", e->name,
                        r->out[p].name, names);
    for (int q = 0; q < p; q++)
      if (strcmp(r->out[q].name, r->out[p].name) == 0)
        return user_error("nnc: error: output '%s' given twice", r->out[p].name);
  }
  return 0;
}

static const char *dtype_name(int dtype) { return dtype == NNC_I64 ? "i64" : "f32"; }

static int load_input(Run *r, int i) {
  const nnc_arg_desc *a = &r->entry->args[i];
  char type[512], err[1024];
  nnc_arg_type_str(r->desc, a, type, sizeof type);
  if (!r->files[i])
    return user_error("nnc: error: missing --in %s=FILE.npy for input '%s' of entry '%s' (%s: %s)",
                      a->name, a->name, r->entry->name, a->name, type);
  NpyArray *x = &r->arrays[i];
  if (npy_read(r->files[i], x, err, sizeof err)) return user_error("%s", err);
  int dtype = x->dtype == NPY_I64 ? NNC_I64 : NNC_F32;
  if (dtype != a->dtype)
    return user_error("%s: error: input '%s' of entry '%s' must be %s, the file holds %s",
                      r->files[i], a->name, r->entry->name, dtype_name(a->dtype), dtype_name(dtype));
  if (x->rank != a->rank)
    return user_error("%s: error: input '%s' of entry '%s' must have rank %d (%s), the file "
                      "holds rank %d", r->files[i], a->name, r->entry->name, a->rank, type, x->rank);
  nnc_tensor *t = &r->inputs[i];
  t->data = x->data;
  t->dtype = dtype;
  t->rank = x->rank;
  memcpy(t->shape, x->shape, sizeof(int64_t) * (size_t)x->rank);
  return 0;
}

/* A call error about an input is reported against that input's file. */
static int call_error(Run *r) {
  const char *msg = nnc_context_error(r->ctx);
  const char *prefix = "input '";
  if (strncmp(msg, prefix, strlen(prefix)) == 0) {
    const char *name = msg + strlen(prefix), *end = strchr(name, '\'');
    for (int i = 0; end && i < r->entry->n_in; i++)
      if (strlen(r->entry->args[i].name) == (size_t)(end - name) &&
          strncmp(r->entry->args[i].name, name, (size_t)(end - name)) == 0)
        return user_error("%s: error: %s", r->files[i], msg);
  }
  return user_error("nnc: error: %s", msg);
}

static double value_at(const nnc_tensor *t, int64_t i) {
  return t->dtype == NNC_I64 ? (double)((const int64_t *)t->data)[i]
                             : (double)((const float *)t->data)[i];
}

/* Element i as printed: an i64 exactly, an f32 to 6 (or `digits`) significant digits. */
static void print_value(const nnc_tensor *t, int64_t i, int digits) {
  if (t->dtype == NNC_I64) printf("%lld", (long long)((const int64_t *)t->data)[i]);
  else printf("%.*g", digits, value_at(t, i));
}

static void summarize(const nnc_arg_desc *a, const nnc_tensor *t) {
  char shape[256];
  size_t n = (size_t)snprintf(shape, sizeof shape, "%s[", dtype_name(t->dtype));
  for (int j = 0; j < t->rank && n < sizeof shape; j++)
    n += snprintf(shape + n, sizeof shape - n, "%s%lld", j ? ", " : "", (long long)t->shape[j]);
  if (n < sizeof shape) snprintf(shape + n, sizeof shape - n, "]");
  int64_t count = nnc_tensor_numel(t);
  if (count == 1 && t->rank == 0) {
    printf("%s: %s = ", a->name, shape);
    print_value(t, 0, 8);
    printf("\n");
    return;
  }
  if (count <= 0) {
    printf("%s: %s (empty)\n", a->name, shape);
    return;
  }
  double lo = INFINITY, hi = -INFINITY, sum = 0;
  int64_t nans = 0;
  for (int64_t i = 0; i < count; i++) {
    double v = value_at(t, i);
    if (isnan(v)) {
      nans++;
      continue;
    }
    lo = v < lo ? v : lo;
    hi = v > hi ? v : hi;
    sum += v;
  }
  printf("%s: %s  min %.6g  max %.6g  mean %.6g", a->name, shape, lo, hi,
         count > nans ? sum / (double)(count - nans) : NAN);
  if (nans) printf("  (%lld NaN)", (long long)nans);
  printf("\n  [");
  for (int64_t i = 0; i < count && i < SHOW_VALUES; i++) {
    printf("%s", i ? ", " : "");
    print_value(t, i, 6);
  }
  printf("%s]\n", count > SHOW_VALUES ? ", ..." : "");
}

static const char *out_path(const Run *r, const char *name) {
  for (int p = 0; p < r->n_out; p++)
    if (strcmp(r->out[p].name, name) == 0) return r->out[p].path;
  return NULL;
}

static int write_outputs(Run *r) {
  for (int o = 0; o < r->entry->n_out; o++) {
    const nnc_arg_desc *a = &r->entry->args[r->entry->n_in + o];
    const nnc_tensor *t = &r->outputs[o];
    const char *path = out_path(r, a->name);
    char err[1024];
    if (!path) {
      summarize(a, t);
      continue;
    }
    if (npy_write(path, t->dtype == NNC_I64 ? NPY_I64 : NPY_F32, t->rank, t->shape, t->data, err,
                  sizeof err))
      return user_error("%s", err);
  }
  return 0;
}

static int run_entry(Run *r) {
  int rc = open_model(r);
  if (rc == 0) rc = match_pairs(r);
  for (int i = 0; rc == 0 && i < r->entry->n_in; i++) rc = load_input(r, i);
  if (rc == 0 && nnc_call(r->ctx, r->entry_index, r->inputs, r->entry->n_in, r->outputs,
                          r->entry->n_out))
    rc = call_error(r);
  if (rc == 0) rc = write_outputs(r);
  return rc;
}

static void free_run(Run *r) {
  for (int i = 0; i < MAX_PAIRS; i++) {
    npy_free(&r->arrays[i]);
    nnc_free(r->outputs[i].data);
  }
  free_pairs(r->in, r->n_in);
  free_pairs(r->out, r->n_out);
  nnc_context_free(r->ctx);
  nnc_model_free(r->model);
  free(r);
}

static int cmd_run(int argc, char **argv) {
  Run *r = calloc(1, sizeof *r);
  if (!r) return user_error("nnc: error: out of memory");
  int rc = parse_run(r, argc, argv);
  if (rc == 0) rc = run_entry(r);
  free_run(r);
  return rc < 0 ? 0 : rc;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fputs(help_main, stderr);
    return EXIT_USAGE;
  }
  const char *cmd = argv[1];
  if (!cli_command(cmd)) return cmd_compile(argc, argv); /* the test nnc_launch.c makes too */
  if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) return fputs(help_main, stdout), 0;
  if (strcmp(cmd, "--version") == 0) return puts("nnc " NNC_VERSION), 0;
  if (strcmp(cmd, "run") == 0) return cmd_run(argc - 1, argv + 1);
  if (strcmp(cmd, "check") == 0) return cmd_check(argc - 1, argv + 1);
  if (strcmp(cmd, "dump") == 0) return cmd_dump(argc - 1, argv + 1);
  if (strcmp(cmd, "cache") == 0) return cmd_cache(argc - 1, argv + 1);
  if (strcmp(cmd, "import") == 0) return cmd_import(argc - 1, argv + 1);
  if (strcmp(cmd, "help") == 0) {
    const char *topic = argc > 2 ? argv[2] : "";
    char *h[] = {argv[0], "--help", NULL};
    if (strcmp(topic, "run") == 0) return cmd_run(2, h);
    if (strcmp(topic, "check") == 0) return cmd_check(2, h);
    if (strcmp(topic, "dump") == 0) return cmd_dump(2, h);
    if (strcmp(topic, "compile") == 0) return cmd_compile(2, h);
    if (strcmp(topic, "cache") == 0) return cmd_cache(2, h);
    if (strcmp(topic, "import") == 0) return cmd_import(2, h);
    return fputs(help_main, stdout), 0;
  }
  return cmd_compile(argc, argv);
}
