/* cli.c — the nnc command's messages, option parser and compile arguments (cli.h). */
#include "cli.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nnc_help.h"

bool cli_quiet;

/* ---- messages ---- */

int usage_error(const char *cmd, const char *fmt, ...) {
  if (cli_quiet) return EXIT_USAGE;
  va_list ap;
  va_start(ap, fmt);
  fputs("nnc: error: ", stderr);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, "\nTry 'nnc %s%s--help'.\n", cmd ? cmd : "", cmd ? " " : "");
  return EXIT_USAGE;
}

int user_error_msg(char *msg) {
  const char *m = msg ? msg : "nnc: error: failed (no message)";
  size_t n = strlen(m);
  fprintf(stderr, "%s%s", m, n && m[n - 1] == '\n' ? "" : "\n");
  free(msg);
  return EXIT_USER;
}

int user_error(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  return EXIT_USER;
}

/* ---- option parsing ---- */

/* Each command reads its arguments with getopt_long in argument order (optstring "-": a model
 * file comes back as option 1), so "more than one model file" and `--help` are seen where they
 * stand.  opterr is off and ':' reports a missing value: the messages are ours.  getopt_long
 * takes more than nnc ever did, and opt_next turns those back into unknown options:
 * abbreviations (--wei), clusters (-hx), a value glued to a short option other than -D
 * (-oFILE; -o=FILE is taken) and "--", which is not an end of options here. */
void opt_start(OptParser *p, int argc, char **argv, const char *shorts, const struct option *longs) {
  *p = (OptParser){argc, argv, shorts, longs, NULL};
  optind = 0; /* glibc: start afresh, reading the optstring's flags again */
  opterr = 0;
}

/* Is p->text spelt exactly as the option it was read as? */
static bool opt_exact(const OptParser *p, int c) {
  const char *t = p->text;
  if (t[0] == '-' && t[1] == '-') {
    size_t n = strcspn(t + 2, "=");
    for (const struct option *o = p->longs; o->name; o++)
      if (strlen(o->name) == n && strncmp(o->name, t + 2, n) == 0)
        return c == OPT_MISSING || o->val == c;
    return false;
  }
  if (c == OPT_MISSING) return t[2] == '\0';
  const char *s = strchr(p->shorts, c);
  bool takes_value = s && s[1] == ':';
  return t[1] == c && (t[2] == '\0' || c == 'D' || (takes_value && t[2] == '='));
}

int opt_next(OptParser *p) {
  int at = optind ? optind : 1; /* 0: the first call, which starts at 1 */
  int c = getopt_long(p->argc, p->argv, p->shorts, p->longs, NULL);
  if (c == -1) {
    if (at >= p->argc) return -1;
    p->text = p->argv[at]; /* "--" */
    return OPT_UNKNOWN;
  }
  p->text = c == OPT_FILE ? optarg : p->argv[at];
  if (c == OPT_FILE || c == OPT_UNKNOWN) return c;
  if (!opt_exact(p, c)) return OPT_UNKNOWN;
  if (c != 'D' && p->text[1] != '-' && p->text[2] == '=')
    optarg = (char *)p->text + 3; /* -o=FILE: getopt would give "=FILE" */
  return c;
}

int opt_common(const OptParser *p, int c, const char *cmd, const char **in) {
  if (c == OPT_MISSING) return usage_error(cmd, "option '%s' needs a value", p->text);
  if (c == OPT_UNKNOWN) return usage_error(cmd, "unknown option '%s'", p->text);
  if (*in) return usage_error(cmd, "more than one model file ('%s' and '%s')", *in, p->text);
  *in = p->text;
  return 0;
}

/* ---- nnc FILE.nn -o FILE.so ---- */

bool cli_command(const char *arg) {
  static const char *const commands[] = {"run", "check", "dump", "cache", "import", "help",
                                         "--help", "-h", "--version"};
  for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
    if (!strcmp(arg, commands[i])) return true;
  return false;
}

int add_define(const char *cmd, const char *v, const char **defines, int *n) {
  if (*n == MAX_DEFINES) return usage_error(cmd, "too many -D options (at most %d)", MAX_DEFINES);
  defines[(*n)++] = v;
  return 0;
}

static const struct option compile_options[] = {
    {"help", no_argument, NULL, 'h'},
    {"weights", required_argument, NULL, 'w'},
    {"header", required_argument, NULL, 'H'},
    {NULL, 0, NULL, 0},
};

/* argv[0] is the program */
int cli_parse_compile(int argc, char **argv, CompileArgs *a) {
  *a = (CompileArgs){0};
  a->opt.defines = a->defines;
  OptParser p;
  opt_start(&p, argc, argv, "-:ho:D:", compile_options);
  for (int c, rc = 0; (c = opt_next(&p)) != -1;) {
    switch (c) {
    case 'h': return cli_quiet ? 0 : (fputs(help_compile, stdout), 0);
    case 'o': a->so = optarg; break;
    case 'w': a->opt.weights_path = optarg; break;
    case 'H': a->opt.header_path = optarg; break;
    case 'D': rc = add_define(NULL, optarg, a->defines, &a->opt.ndefines); break;
    default: rc = opt_common(&p, c, NULL, &a->in);
    }
    if (rc) return rc;
  }
  if (!a->in) return usage_error(NULL, "no model file given");
  if (!a->so) return usage_error(NULL, "missing -o FILE.so (the library to write)");
  return CLI_PARSED;
}
