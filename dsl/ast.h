/* ast.h — the syntax tree of a .nn program, as produced by the parser (dsl/parser.y).
 *
 * Every node keeps the source location of its first token so that any later stage can
 * report `file:line:col: error: ...` with a caret.  Nodes are allocated from one arena per
 * parse (ast_arena) and are never freed one by one.
 */
#ifndef NNC_AST_H
#define NNC_AST_H

#include <stddef.h>
#include <stdint.h>

#include "arena.h"

typedef struct SrcLoc {
  int line; /* 1-based */
  int col;  /* 1-based, in bytes */
  int file; /* which file of the compilation: 0 the main one, else SrcFile.files[file] */
} SrcLoc;

/* One source file: its name and text, kept for diagnostics.  The main file of a compilation
 * also lists every file read for it (`include "x.nn"`, dsl/include.c): files[0] is itself,
 * files[i] the file of the locations whose .file is i (nfiles 0: the main file alone). */
typedef struct SrcFile {
  const char *path;
  const char *text;
  size_t len;
  struct SrcFile **files;
  int nfiles;
  SrcLoc included_at; /* an included file: the include that read it (in the main file's terms) */
} SrcFile;
/* The file of `loc` in the compilation whose main file is `main`. */
const SrcFile *srcfile_of(const SrcFile *main, SrcLoc loc);


typedef struct Node Node;

/* A growable list of node pointers (arguments, statements, list elements). */
typedef struct NodeList {
  Node **items;
  int len, cap;
} NodeList;
void nodelist_push(Arena *a, NodeList *l, Node *n);

typedef enum NodeKind {
  /* expressions */
  N_INT,      /* ival */
  N_FLOAT,    /* fval */
  N_BOOL,     /* ival (0/1) */
  N_STRING,   /* name = the text, without quotes */
  N_NAME,     /* name */
  N_MEMBER,   /* lhs.name */
  N_CALL,     /* lhs(args...) ; keyword args are N_KWARG in args */
  N_KWARG,    /* name = rhs  (only inside N_CALL args) */
  N_INDEX,    /* lhs[args...] ; each arg an expression or N_SLICE */
  N_SLICE,    /* a:b:c inside [] ; lhs=start, rhs=stop, extra=step, each may be NULL */
  N_LIST,     /* [args...] */
  N_COMPREHENSION, /* [lhs for name in rhs] */
  N_RANGE,    /* lhs..rhs (half-open) */
  N_UNARY,    /* op lhs ; op is '-', '!' */
  N_BINARY,   /* lhs op rhs ; op is a Tok* code below */
  N_TERNARY,  /* cond ? lhs : rhs ; cond in `cond` */
  N_TUPLE,    /* (a, b) — only as a statement target or return value */
  /* statements */
  N_ASSIGN,   /* targets (args) = rhs ; one or more N_NAME targets */
  N_FOR,      /* for name in rhs { body } — compile-time, unrolled */
  N_IF,       /* if cond { body } else { orelse } — compile-time condition */
  N_RETURN,   /* return args... */
  N_SCAN,     /* reserved for run-time loops (issue: recurrent models) */
  N_EXPR_STMT,/* lhs as a statement (a call for its effect) */
  /* declarations */
  N_CONST,    /* const name = rhs */
  N_MODULE,   /* module name(params) { body } ; body holds N_ASSIGN, N_FN, N_CONST */
  N_FN,       /* fn name(params) { body } — inlined at each call */
  N_EXPORT,   /* export name(params) -> (outs) { body } */
  N_ALIAS,    /* export name = lhs with args ; lhs an N_NAME (the export), args N_KWARG (const = rhs) */
  N_INCLUDE,  /* include "name" ; replaced by the file's declarations (dsl/include.c) */
  N_PARAM,    /* name [: type] [= rhs default] (module / fn / export parameter) */
  N_TYPE,     /* dtype[dims...] ; name = "f32"/"i64", args = dims (expressions) */
  N_PROGRAM,  /* body = top-level declarations */
} NodeKind;

/* Binary operator codes stored in Node.op (single-char ops use the char itself). */
enum {
  AST_EQ = 256, /* == */
  AST_NE,       /* != */
  AST_LE,       /* <= */
  AST_GE,       /* >= */
  AST_AND,      /* && */
  AST_OR,       /* || */
  AST_POW,      /* ** */
  /* '+', '-', '*', '/', '%', '<', '>', '@' are their own chars */
};

struct Node {
  NodeKind kind;
  SrcLoc loc;
  int op;            /* N_UNARY / N_BINARY */
  const char *name;  /* N_NAME, N_MEMBER, N_KWARG, N_STRING, decl names, N_FOR var, N_PARAM */
  int64_t ival;
  double fval;
  Node *lhs, *rhs, *cond, *extra;
  Node *type;        /* N_PARAM: optional N_TYPE */
  NodeList args;     /* call/index args, list items, params, N_ASSIGN targets, N_RETURN values */
  NodeList body;     /* statements / declarations */
  NodeList orelse;   /* N_IF else branch */
  NodeList outs;     /* N_EXPORT outputs: N_PARAM with type */
};

Node *node_new(Arena *a, NodeKind kind, SrcLoc loc);

/* Parse a whole file.  On success returns the N_PROGRAM node (allocated in `a`).
 * On a syntax error returns NULL after writing one diagnostic (see diag.h) to `err`. */
struct Diag;
Node *parse_program(Arena *a, const SrcFile *file, struct Diag *err);

/* Read and parse every `include "x.nn"` of `prog` (the main file's tree), recursively, each
 * file once, its path relative to the including file; their declarations replace the include
 * in place, and `main` lists the files read (SrcFile.files).  on_disk false: the source was
 * given as text, with no directory to resolve a path in, so an include is an error.  Returns
 * false after writing one diagnostic to `err`. */
#include <stdbool.h>
bool include_expand(Arena *a, SrcFile *main, Node *prog, bool on_disk, struct Diag *err);
/* Parse one more file of a compilation: its locations carry file index `file_index`. */
Node *parse_program_at(Arena *a, const SrcFile *file, int file_index, struct Diag *err);

/* Print the tree in a stable, indented S-expression form (nnc dump --stage=ast). */
#include <stdio.h>
void ast_dump(FILE *out, const Node *n);

#endif
