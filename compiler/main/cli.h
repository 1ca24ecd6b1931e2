/* cli.h — what the nnc command's parts share (nnc_main.c, the compiler's commands, and
 * nnc_launch.c, the front door that serves warm builds without loading LLVM): the messages
 * and exit statuses, the option parser, and the compile command's arguments, read the same
 * way by both. */
#ifndef NNC_CLI_H
#define NNC_CLI_H

#include <getopt.h>
#include <stdbool.h>

#include "compile.h"

enum { EXIT_USER = 1, EXIT_USAGE = 2 };

/* Set: usage errors are not printed (nnc_launch.c only asks whether a command line is a build
 * it can serve; the compiler it hands the rest to prints them). */
extern bool cli_quiet;

/* "nnc: error: ..." and "Try 'nnc CMD --help'." on stderr; returns EXIT_USAGE. */
int usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A library message printed as is (the final newline added) and freed; returns EXIT_USER. */
int user_error_msg(char *msg);
int user_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Each command reads its arguments with getopt_long in argument order (optstring "-": a model
 * file comes back as option 1); see cli.c. */
enum { OPT_FILE = 1, OPT_MISSING = ':', OPT_UNKNOWN = '?' };

typedef struct OptParser {
  int argc;
  char **argv; /* argv[0] is the command's name, as getopt expects */
  const char *shorts;
  const struct option *longs;
  const char *text; /* the argument being read, for messages */
} OptParser;

void opt_start(OptParser *p, int argc, char **argv, const char *shorts, const struct option *longs);
/* The next option (its value in optarg): a short option's letter or a long option's val,
 * OPT_FILE for a model file, OPT_MISSING, OPT_UNKNOWN, or -1 at the end. */
int opt_next(OptParser *p);
/* Model file or bad option, the same for every command: 0 taken, else the exit status. */
int opt_common(const OptParser *p, int c, const char *cmd, const char **in);

#define MAX_DEFINES 64
/* -D NAME=VALUE (also -DNAME=VALUE): 0 taken, else the exit status */
int add_define(const char *cmd, const char *v, const char **defines, int *n);

/* Does `nnc ARG ...` name a command (run, check, ...) rather than a model to compile? */
bool cli_command(const char *arg);

/* `nnc FILE -o LIB.so [--weights W] [--header H] [-D NAME=VALUE]...` */
typedef struct CompileArgs {
  const char *in, *so;
  const char *defines[MAX_DEFINES];
  NncCompileOptions opt; /* its defines point into this struct's */
} CompileArgs;
enum { CLI_PARSED = -1 };
/* CLI_PARSED, or the exit status the command ends with (0 after --help, which is printed). */
int cli_parse_compile(int argc, char **argv, CompileArgs *a);

#endif
