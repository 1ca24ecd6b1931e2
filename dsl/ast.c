/* ast.c — node construction and ast_dump() (the arena the nodes live in: arena.c).
 *
 * ast_dump prints one node per line as an indented S-expression (two spaces per level):
 *
 *     (export forward                 decls:  (const|module|fn|export NAME
 *       (params                                 groups (params ...) (outs ...) (body ...)
 *         (param x                              (else ...) are always printed for
 *           (type f32                           module/fn/export, else only when non-empty
 *             (name N)
 *             (name D))))
 *       (outs ...)
 *       (body
 *         (assign z ld                  assign: the target names, then the value
 *           (call
 *             (name l)
 *             (name z)))))
 *
 * Leaves: (int 2) (float 0.5) (bool true) (string "a\n") (name x).  Operators:
 * (binary + lhs rhs), (unary - x), (ternary cond a b), (range a b).  Postfix: (call f args...),
 * (kwarg axis value), (index x subs...), (slice start stop step) with `_` for a missing part,
 * (member name x).  Others: (list ...), (comprehension var elem iterable), (for var iterable
 * (body ...)), (if cond (body ...) (else ...)), (return ...), (expr e), (param name type? default?).
 * Floats use the shortest %g form that reads back exactly.
 */
#include "ast.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void nodelist_push(Arena *a, NodeList *l, Node *n) {
  if (l->len == l->cap) {
    int cap = l->cap ? 2 * l->cap : 4;
    Node **items = arena_alloc(a, (size_t)cap * sizeof *items);
    if (l->len) memcpy(items, l->items, (size_t)l->len * sizeof *items);
    l->items = items;
    l->cap = cap;
  }
  l->items[l->len++] = n;
}

Node *node_new(Arena *a, NodeKind kind, SrcLoc loc) {
  Node *n = arena_alloc(a, sizeof *n);
  n->kind = kind;
  n->loc = loc;
  return n;
}

/* ---- ast_dump ---- */

static const char *op_name(int op, char buf[2]) {
  switch (op) {
  case AST_EQ: return "==";
  case AST_NE: return "!=";
  case AST_LE: return "<=";
  case AST_GE: return ">=";
  case AST_AND: return "&&";
  case AST_OR: return "||";
  case AST_POW: return "**";
  default:
    buf[0] = (char)op;
    buf[1] = '\0';
    return buf;
  }
}

/* The shortest digits that read back exactly, positional for exponents in [-4, 16)
 * (0.001, 25000.0) and scientific otherwise (1e-05, 1e+20), like Python's repr. */
static void dump_float(FILE *out, double v) {
  char buf[64];
  if (!isfinite(v)) {
    fprintf(out, "%g", v);
    return;
  }
  int prec = 1;
  for (; prec < 17; prec++) {
    snprintf(buf, sizeof buf, "%.*e", prec - 1, v);
    if (strtod(buf, NULL) == v) break;
  }
  snprintf(buf, sizeof buf, "%.*e", prec - 1, v);
  int exp = atoi(strchr(buf, 'e') + 1);
  if (exp >= -4 && exp < 16) {
    int decimals = prec - 1 - exp;
    snprintf(buf, sizeof buf, "%.*f", decimals < 1 ? 1 : decimals, v);
  } else {
    snprintf(buf, sizeof buf, "%.*g", prec, v);
  }
  fputs(buf, out);
}

static void dump_string(FILE *out, const char *s) {
  fputc('"', out);
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') fprintf(out, "\\%c", c);
    else if (c == '\n') fputs("\\n", out);
    else if (c == '\t') fputs("\\t", out);
    else if (c < 0x20 || c == 0x7f) fprintf(out, "\\x%02x", c);
    else fputc(c, out);
  }
  fputc('"', out);
}

static void dump(FILE *out, const Node *n, int ind);

static void child(FILE *out, const Node *n, int ind) {
  fprintf(out, "\n%*s", ind + 2, "");
  dump(out, n, ind + 2);
}

static void children(FILE *out, NodeList l, int ind) {
  for (int i = 0; i < l.len; i++) child(out, l.items[i], ind);
}

static void group(FILE *out, const char *name, NodeList l, int ind) {
  fprintf(out, "\n%*s(%s", ind + 2, "", name);
  children(out, l, ind + 2);
  fputc(')', out);
}

static const char *kind_name(NodeKind k) {
  switch (k) {
  case N_INT: return "int";
  case N_FLOAT: return "float";
  case N_BOOL: return "bool";
  case N_STRING: return "string";
  case N_NAME: return "name";
  case N_MEMBER: return "member";
  case N_CALL: return "call";
  case N_KWARG: return "kwarg";
  case N_INDEX: return "index";
  case N_SLICE: return "slice";
  case N_LIST: return "list";
  case N_COMPREHENSION: return "comprehension";
  case N_RANGE: return "range";
  case N_UNARY: return "unary";
  case N_BINARY: return "binary";
  case N_TERNARY: return "ternary";
  case N_TUPLE: return "tuple";
  case N_ASSIGN: return "assign";
  case N_FOR: return "for";
  case N_IF: return "if";
  case N_RETURN: return "return";
  case N_SCAN: return "scan";
  case N_EXPR_STMT: return "expr";
  case N_CONST: return "const";
  case N_MODULE: return "module";
  case N_FN: return "fn";
  case N_EXPORT: return "export";
  case N_ALIAS: return "alias";
  case N_INCLUDE: return "include";
  case N_PARAM: return "param";
  case N_TYPE: return "type";
  case N_PROGRAM: return "program";
  }
  return "?";
}

/* Prints `n` from the current position, without a trailing newline. */
static void dump(FILE *out, const Node *n, int ind) {
  if (!n) {
    fputc('_', out);
    return;
  }
  char buf[2];
  fprintf(out, "(%s", kind_name(n->kind));
  switch (n->kind) {
  case N_INT: fprintf(out, " %lld", (long long)n->ival); break;
  case N_FLOAT: fputc(' ', out); dump_float(out, n->fval); break;
  case N_BOOL: fputs(n->ival ? " true" : " false", out); break;
  case N_STRING: fputc(' ', out); dump_string(out, n->name ? n->name : ""); break;
  case N_UNARY:
  case N_BINARY: fprintf(out, " %s", op_name(n->op, buf)); break;
  case N_ASSIGN:
    for (int i = 0; i < n->args.len; i++) {
      const Node *t = n->args.items[i];
      fprintf(out, " %s", t->kind == N_NAME && t->name ? t->name : "?");
    }
    break;
  default:
    if (n->name) fprintf(out, " %s", n->name);
  }
  switch (n->kind) {
  case N_SLICE:
    child(out, n->lhs, ind);
    child(out, n->rhs, ind);
    child(out, n->extra, ind);
    break;
  case N_TERNARY:
    child(out, n->cond, ind);
    child(out, n->lhs, ind);
    child(out, n->rhs, ind);
    break;
  case N_ASSIGN:
    child(out, n->rhs, ind);
    break;
  case N_FOR:
    child(out, n->rhs, ind);
    group(out, "body", n->body, ind);
    break;
  case N_IF:
    child(out, n->cond, ind);
    group(out, "body", n->body, ind);
    if (n->orelse.len) group(out, "else", n->orelse, ind);
    break;
  case N_MODULE:
  case N_FN:
  case N_EXPORT:
    group(out, "params", n->args, ind);
    if (n->kind == N_EXPORT) group(out, "outs", n->outs, ind);
    group(out, "body", n->body, ind);
    break;
  case N_PROGRAM:
    children(out, n->body, ind);
    break;
  default: /* generic: the fields that are set, in a fixed order */
    if (n->cond) child(out, n->cond, ind);
    if (n->lhs) child(out, n->lhs, ind);
    if (n->type) child(out, n->type, ind);
    if (n->rhs) child(out, n->rhs, ind);
    if (n->extra) child(out, n->extra, ind);
    children(out, n->args, ind);
    if (n->body.len) group(out, "body", n->body, ind);
    if (n->orelse.len) group(out, "else", n->orelse, ind);
    if (n->outs.len) group(out, "outs", n->outs, ind);
  }
  fputc(')', out);
}

void ast_dump(FILE *out, const Node *n) {
  dump(out, n, 0);
  fputc('\n', out);
}
