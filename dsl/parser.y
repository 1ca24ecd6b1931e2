/* parser.y — the grammar of the .nn language; builds the AST of dsl/ast.h.
 *
 * A pure LALR(1) parser (no conflicts: %expect 0) fed by the flex scanner in lexer.l,
 * whose entry parse_program() drives it.  Each rule carries its shape in the grammar
 * itself; precedence is encoded by one nonterminal per level (see docs/language.md).
 * Every node's loc is its first token, except N_BINARY whose loc is the operator's.
 *
 * All nodes and strings live in the parse arena, so no %destructor is needed: on a syntax
 * error the partial tree is simply dropped with the arena.
 *
 * Limits that keep later (recursive) stages safe: NNC_MAX_BRACKETS open brackets (checked by
 * the lexer), a parser stack of YYMAXDEPTH entries, and a tree at most NNC_MAX_TREE_DEPTH
 * nodes deep (checked after the parse by parse_check_depth).
 */

%code requires {
#include <setjmp.h>
#include <stdint.h>
#include "ast.h"
#include "diag.h"

#ifndef YY_TYPEDEF_YY_SCANNER_T
#define YY_TYPEDEF_YY_SCANNER_T
typedef void *yyscan_t;
#endif

enum {
  NNC_MAX_BRACKETS = 200,    /* nested ( [ { */
  NNC_MAX_TREE_DEPTH = 1000, /* nested nodes, including operator chains like a+b+c+... */
};

/* Shared by the scanner and the parser of one parse_program() call. */
typedef struct ParseState {
  Arena *arena;
  const SrcFile *file;
  int file_index;     /* of file in its compilation (SrcLoc.file) */
  Diag *diag;
  Node *program;      /* the result */
  int line, col;      /* scanner position, 1-based (col in bytes) */
  size_t off;         /* scanner byte offset */
  size_t tok_off;     /* the last token: offset and length in file->text */
  int tok_len;
  int pdepth;         /* open ( and [ : NEWLINE is suppressed inside */
  int depth;          /* open ( [ { : limited to NNC_MAX_BRACKETS */
  int lex_failed;
  int last_tok, prev_tok; /* the last two tokens returned (0: none) */
  jmp_buf fatal;      /* where flex's fatal errors return to */
} ParseState;
}

%code provides {
int nn_lex(YYSTYPE *lval, YYLTYPE *lloc, yyscan_t scanner, ParseState *ps);
int parse_check_depth(ParseState *ps, const Node *root);
}

%code {
#include <stdlib.h>
#include <string.h>

#define yylex nn_lex
#define YYMAXDEPTH 10000
#define L(l) ((SrcLoc){(l).first_line, (l).first_column, ps->file_index})
#define NEW(kind, l) node_new(ps->arena, kind, L(l))

static void yyerror(YYLTYPE *loc, yyscan_t scanner, ParseState *ps, const char *msg);
static Node *tuple_of(ParseState *ps, YYLTYPE loc, NodeList items);
static Node *mk_binary(ParseState *ps, YYLTYPE op_loc, int op, Node *lhs, Node *rhs);
static Node *mk_unary(ParseState *ps, YYLTYPE loc, int op, Node *operand);
static Node *mk_decl(ParseState *ps, NodeKind kind, YYLTYPE loc, const char *name);
static NodeList list1(ParseState *ps, Node *n);
static NodeList list_add(ParseState *ps, NodeList l, Node *n);
static Node *check_type(ParseState *ps, YYLTYPE loc, const char *name, NodeList dims);
static int check_arg_order(ParseState *ps, NodeList args, Node *arg);
static int check_list_len(ParseState *ps, NodeList l, Node *next);
}

%define api.pure full
%define parse.error custom
%define parse.lac full
%locations
%expect 0
%param {yyscan_t scanner} {ParseState *ps}

%union {
  Node *node;
  NodeList list;
  char *str;
  int64_t ival;
  double fval;
}

%token NEWLINE "newline"
%token <str> NAME "identifier"
%token <ival> INT "integer"
%token <fval> FLOAT "number"
%token <str> STRING "string"
%token CONST "'const'" MODULE "'module'" FN "'fn'" EXPORT "'export'" FOR "'for'"
%token IN "'in'" IF "'if'" ELSE "'else'" RETURN "'return'" TRUE "'true'" FALSE "'false'"
%token SCAN "'scan'" INCLUDE "'include'" WITH "'with'"
%token POW "'**'" EQ "'=='" NE "'!='" LE "'<='" GE "'>='" ANDAND "'&&'" OROR "'||'"
%token DOTDOT "'..'" ARROW "'->'"

%type <node> top_decl top_call const_decl module_decl fn_decl export_decl assign1 module_item
%type <node> include_decl alias_decl binding
%type <node> param out_param type stmt for_stmt if_stmt return_stmt scan_stmt
%type <node> expr ternary range or and eq cmp add mul unary power postfix primary
%type <node> arg subscript opt_expr list
%type <list> top_items top_chain module_items module_chain stmts stmt_chain block
%type <list> params param_list outs out_list targets expr_list call_args arg_list
%type <list> subscripts opt_dims opt_bindings bindings

%%

program: top_items { ps->program = node_new(ps->arena, N_PROGRAM, (SrcLoc){1, 1, ps->file_index});
                     ps->program->body = $1; }
  ;

/* Separators: statements end at a newline (outside ( ) [ ]) or ';'. */
sep: NEWLINE | ';' ;
seps: sep | seps sep ;
opt_seps: %empty | seps ;

/* ---- top level ---- */

top_items: opt_seps                     { $$ = (NodeList){0}; }
  | opt_seps top_chain opt_seps         { $$ = $2; }
  ;
top_chain: top_decl                     { $$ = list1(ps, $1); }
  | top_chain seps top_decl             { $$ = list_add(ps, $1, $3); }
  ;
top_decl: const_decl | module_decl | fn_decl | export_decl | alias_decl | include_decl | assign1 | top_call ;

/* include "path.nn"   (the file's declarations, read by include_expand) */
include_decl: INCLUDE STRING            { $$ = mk_decl(ps, N_INCLUDE, @1, $2); }
  ;

/* NAME(call_args) at top level or in a module: sema accepts only assert(...), a compile-time
 * check */
top_call: NAME '(' call_args ')'        { Node *c = NEW(N_CALL, @1); c->lhs = mk_decl(ps, N_NAME, @1, $1);
                                          c->args = $3; $$ = NEW(N_EXPR_STMT, @1); $$->lhs = c; }
  ;

/* const NAME = expr */
const_decl: CONST NAME '=' expr         { $$ = mk_decl(ps, N_CONST, @1, $2); $$->rhs = $4; }
  ;

/* NAME = expr   (a single target: top-level components, module members) */
assign1: NAME '=' expr                  { $$ = NEW(N_ASSIGN, @1);
                                          nodelist_push(ps->arena, &$$->args, mk_decl(ps, N_NAME, @1, $1));
                                          $$->rhs = $3; }
  ;

/* module NAME(params) { (NAME = expr | const | fn)* } */
module_decl: MODULE NAME params '{' module_items '}'
                                        { $$ = mk_decl(ps, N_MODULE, @1, $2); $$->args = $3; $$->body = $5; }
  ;
module_items: opt_seps                  { $$ = (NodeList){0}; }
  | opt_seps module_chain opt_seps      { $$ = $2; }
  ;
module_chain: module_item               { $$ = list1(ps, $1); }
  | module_chain seps module_item       { $$ = list_add(ps, $1, $3); }
  ;
module_item: assign1 | const_decl | fn_decl | top_call ;

/* fn NAME(params) { stmts } */
fn_decl: FN NAME params block           { $$ = mk_decl(ps, N_FN, @1, $2); $$->args = $3; $$->body = $4; }
  ;

/* export NAME(params) -> (NAME: type, ...) { stmts }   |   export NAME(params) -> NAME: type { stmts }
 * (the header may break before the arrow) */
export_decl: EXPORT NAME params opt_seps ARROW outs block
                                        { $$ = mk_decl(ps, N_EXPORT, @1, $2); $$->args = $3;
                                          $$->outs = $6; $$->body = $7; }
  ;
/* export NAME = NAME (with NAME = expr ("," NAME = expr)*)?   (an alias: the export with
 * top-level constants rebound) */
alias_decl: EXPORT NAME '=' NAME opt_bindings
                                        { $$ = mk_decl(ps, N_ALIAS, @1, $2); $$->lhs = mk_decl(ps, N_NAME, @4, $4);
                                          $$->args = $5; }
  ;
opt_bindings: %empty                    { $$ = (NodeList){0}; }
  | WITH bindings                       { $$ = $2; }
  ;
bindings: binding                       { $$ = list1(ps, $1); }
  | bindings ',' binding                { $$ = list_add(ps, $1, $3); }
  ;
binding: NAME '=' expr                  { $$ = mk_decl(ps, N_KWARG, @1, $1); $$->rhs = $3; }
  ;
outs: out_param                         { $$ = list1(ps, $1); }
  | '(' out_list ')'                    { $$ = $2; }
  | '(' out_list ',' ')'                { $$ = $2; }
  ;
out_list: out_param                     { $$ = list1(ps, $1); }
  | out_list ',' out_param              { $$ = list_add(ps, $1, $3); }
  ;
out_param: NAME ':' type                { $$ = mk_decl(ps, N_PARAM, @1, $1); $$->type = $3; }
  ;

/* params = "(" (param ("," param)* ","?)? ")" */
params: '(' ')'                         { $$ = (NodeList){0}; }
  | '(' param_list ')'                  { $$ = $2; }
  | '(' param_list ',' ')'              { $$ = $2; }
  ;
param_list: param                       { $$ = list1(ps, $1); }
  | param_list ',' param                { $$ = list_add(ps, $1, $3); }
  ;
/* param = NAME (":" type)? ("=" expr)? */
param: NAME                             { $$ = mk_decl(ps, N_PARAM, @1, $1); }
  | NAME ':' type                       { $$ = mk_decl(ps, N_PARAM, @1, $1); $$->type = $3; }
  | NAME '=' expr                       { $$ = mk_decl(ps, N_PARAM, @1, $1); $$->rhs = $3; }
  | NAME ':' type '=' expr              { $$ = mk_decl(ps, N_PARAM, @1, $1); $$->type = $3; $$->rhs = $5; }
  ;
/* type = ("f32" | "i64") "[" (expr ("," expr)*)? "]" */
type: NAME '[' opt_dims ']'             { $$ = check_type(ps, @1, $1, $3); if (!$$) YYABORT; }
  ;
opt_dims: %empty                        { $$ = (NodeList){0}; }
  | expr_list
  ;

/* ---- statements ---- */

block: '{' stmts '}'                    { $$ = $2; }
  ;
stmts: opt_seps                         { $$ = (NodeList){0}; }
  | opt_seps stmt_chain opt_seps        { $$ = $2; }
  ;
stmt_chain: stmt                        { $$ = list1(ps, $1); }
  | stmt_chain seps stmt                { $$ = list_add(ps, $1, $3); }
  ;
stmt: targets '=' expr_list             { $$ = NEW(N_ASSIGN, @1); $$->args = $1; $$->rhs = tuple_of(ps, @3, $3); }
  | for_stmt
  | scan_stmt
  | if_stmt
  | return_stmt
  | expr                                { $$ = NEW(N_EXPR_STMT, @1); $$->lhs = $1; }
  ;
/* assignment targets: names, or (in a scan) a name indexed by the step, ys[:, t]; any
 * other expression is refused by semantic analysis */
targets: postfix                        { $$ = list1(ps, $1); }
  | targets ',' postfix                 { $$ = list_add(ps, $1, $3); }
  ;
/* for NAME in expr { stmts } */
for_stmt: FOR NAME IN expr block        { $$ = mk_decl(ps, N_FOR, @1, $2); $$->rhs = $4; $$->body = $5; }
  ;
/* scan NAME in expr { stmts }   (a run-time loop: see docs/language.md) */
scan_stmt: SCAN NAME IN expr block      { $$ = mk_decl(ps, N_SCAN, @1, $2); $$->rhs = $4; $$->body = $5; }
  ;
/* if expr { stmts } (else { stmts } | else if_stmt)? */
if_stmt: IF expr block                  { $$ = NEW(N_IF, @1); $$->cond = $2; $$->body = $3; }
  | IF expr block ELSE block            { $$ = NEW(N_IF, @1); $$->cond = $2; $$->body = $3; $$->orelse = $5; }
  | IF expr block ELSE if_stmt          { $$ = NEW(N_IF, @1); $$->cond = $2; $$->body = $3;
                                          $$->orelse = list1(ps, $5); }
  ;
/* return (expr ("," expr)*)? */
return_stmt: RETURN                     { $$ = NEW(N_RETURN, @1); }
  | RETURN expr_list                    { $$ = NEW(N_RETURN, @1); $$->args = $2; }
  ;
expr_list: expr                         { $$ = list1(ps, $1); }
  | expr_list ',' expr                  { if (!check_list_len(ps, $1, $3)) YYABORT; $$ = list_add(ps, $1, $3); }
  ;

/* ---- expressions, lowest precedence first ---- */

expr: ternary ;

/* ternary = range ("?" expr ":" ternary)? */
ternary: range
  | range '?' expr ':' ternary          { $$ = NEW(N_TERNARY, @1); $$->loc = $1->loc;
                                          $$->cond = $1; $$->lhs = $3; $$->rhs = $5; }
  ;
/* range = or (".." or)? */
range: or
  | or DOTDOT or                        { $$ = NEW(N_RANGE, @1); $$->loc = $1->loc; $$->lhs = $1; $$->rhs = $3; }
  ;
or: and
  | or OROR and                         { $$ = mk_binary(ps, @2, AST_OR, $1, $3); }
  ;
and: eq
  | and ANDAND eq                       { $$ = mk_binary(ps, @2, AST_AND, $1, $3); }
  ;
/* eq = cmp (("==" | "!=") cmp)?   (non-associative) */
eq: cmp
  | cmp EQ cmp                          { $$ = mk_binary(ps, @2, AST_EQ, $1, $3); }
  | cmp NE cmp                          { $$ = mk_binary(ps, @2, AST_NE, $1, $3); }
  ;
/* cmp = add (("<" | "<=" | ">" | ">=") add)?   (non-associative) */
cmp: add
  | add '<' add                         { $$ = mk_binary(ps, @2, '<', $1, $3); }
  | add LE add                          { $$ = mk_binary(ps, @2, AST_LE, $1, $3); }
  | add '>' add                         { $$ = mk_binary(ps, @2, '>', $1, $3); }
  | add GE add                          { $$ = mk_binary(ps, @2, AST_GE, $1, $3); }
  ;
add: mul
  | add '+' mul                         { $$ = mk_binary(ps, @2, '+', $1, $3); }
  | add '-' mul                         { $$ = mk_binary(ps, @2, '-', $1, $3); }
  ;
mul: unary
  | mul '*' unary                       { $$ = mk_binary(ps, @2, '*', $1, $3); }
  | mul '/' unary                       { $$ = mk_binary(ps, @2, '/', $1, $3); }
  | mul '%' unary                       { $$ = mk_binary(ps, @2, '%', $1, $3); }
  | mul '@' unary                       { $$ = mk_binary(ps, @2, '@', $1, $3); }
  ;
/* unary = ("-" | "!") unary | power */
unary: power
  | '-' unary                           { $$ = mk_unary(ps, @1, '-', $2); }
  | '!' unary                           { $$ = mk_unary(ps, @1, '!', $2); }
  ;
/* power = postfix ("**" unary)?   (right-assoc; -x**2 is -(x**2); 2**-1 is allowed) */
power: postfix
  | postfix POW unary                   { $$ = mk_binary(ps, @2, AST_POW, $1, $3); }
  ;
/* postfix = primary ("(" call_args ")" | "[" subscripts "]" | "." NAME)* */
postfix: primary
  | postfix '(' call_args ')'           { $$ = NEW(N_CALL, @1); $$->loc = $1->loc; $$->lhs = $1; $$->args = $3; }
  | postfix '[' subscripts ']'          { $$ = NEW(N_INDEX, @1); $$->loc = $1->loc; $$->lhs = $1; $$->args = $3; }
  | postfix '.' NAME                    { $$ = NEW(N_MEMBER, @1); $$->loc = $1->loc; $$->lhs = $1; $$->name = $3; }
  ;
/* call_args = (arg ("," arg)* ","?)?   positional arguments before keyword ones */
call_args: %empty                       { $$ = (NodeList){0}; }
  | arg_list
  | arg_list ','
  ;
arg_list: arg                           { $$ = list1(ps, $1); }
  | arg_list ',' arg                    { if (!check_arg_order(ps, $1, $3)) YYABORT; $$ = list_add(ps, $1, $3); }
  ;
arg: expr
  | NAME '=' expr                       { $$ = mk_decl(ps, N_KWARG, @1, $1); $$->rhs = $3; }
  ;
/* subscripts = subscript ("," subscript)* ","? ; subscript = expr | expr? ":" expr? (":" expr?)? */
subscripts: subscript                   { $$ = list1(ps, $1); }
  | subscripts ',' subscript            { $$ = list_add(ps, $1, $3); }
  ;
subscript: expr
  | opt_expr ':' opt_expr               { $$ = NEW(N_SLICE, @2); if ($1) $$->loc = $1->loc;
                                          $$->lhs = $1; $$->rhs = $3; }
  | opt_expr ':' opt_expr ':' opt_expr  { $$ = NEW(N_SLICE, @2); if ($1) $$->loc = $1->loc;
                                          $$->lhs = $1; $$->rhs = $3; $$->extra = $5; }
  ;
opt_expr: %empty                        { $$ = NULL; }
  | expr
  ;
primary: INT                            { $$ = NEW(N_INT, @1); $$->ival = $1; }
  | FLOAT                               { $$ = NEW(N_FLOAT, @1); $$->fval = $1; }
  | TRUE                                { $$ = NEW(N_BOOL, @1); $$->ival = 1; }
  | FALSE                               { $$ = NEW(N_BOOL, @1); $$->ival = 0; }
  | STRING                              { $$ = NEW(N_STRING, @1); $$->name = $1; }
  | NAME                                { $$ = mk_decl(ps, N_NAME, @1, $1); }
  | '(' expr ')'                        { $$ = $2; }
  | list
  ;
/* list = "[" (expr ("," expr)* ","?)? "]" | "[" expr "for" NAME "in" expr "]" */
list: '[' ']'                           { $$ = NEW(N_LIST, @1); }
  | '[' expr_list ']'                   { $$ = NEW(N_LIST, @1); $$->args = $2; }
  | '[' expr_list ',' ']'               { $$ = NEW(N_LIST, @1); $$->args = $2; }
  | '[' expr FOR NAME IN expr ']'       { $$ = NEW(N_COMPREHENSION, @1); $$->lhs = $2;
                                          $$->name = $4; $$->rhs = $6; }
  ;

%%

/* The right side of an assignment: one expression, or a tuple of several (a, b = x, y). */
static Node *tuple_of(ParseState *ps, YYLTYPE loc, NodeList items) {
  if (items.len == 1) return items.items[0];
  Node *n = NEW(N_TUPLE, loc);
  n->args = items;
  return n;
}

static Node *mk_binary(ParseState *ps, YYLTYPE op_loc, int op, Node *lhs, Node *rhs) {
  Node *n = NEW(N_BINARY, op_loc);
  n->op = op;
  n->lhs = lhs;
  n->rhs = rhs;
  return n;
}

static Node *mk_unary(ParseState *ps, YYLTYPE loc, int op, Node *operand) {
  Node *n = NEW(N_UNARY, loc);
  n->op = op;
  n->lhs = operand;
  return n;
}

static Node *mk_decl(ParseState *ps, NodeKind kind, YYLTYPE loc, const char *name) {
  Node *n = NEW(kind, loc);
  n->name = name;
  return n;
}

static NodeList list1(ParseState *ps, Node *n) {
  NodeList l = {0};
  nodelist_push(ps->arena, &l, n);
  return l;
}

static NodeList list_add(ParseState *ps, NodeList l, Node *n) {
  nodelist_push(ps->arena, &l, n);
  return l;
}

static Node *check_type(ParseState *ps, YYLTYPE loc, const char *name, NodeList dims) {
  if (strcmp(name, "f32") != 0 && strcmp(name, "i64") != 0) {
    diag_error(ps->diag, L(loc), "unknown type '%s', expected 'f32' or 'i64'", name);
    return NULL;
  }
  Node *t = mk_decl(ps, N_TYPE, loc, name);
  t->args = dims;
  return t;
}

/* A list literal (or argument list) of at most MAX_LIST_ITEMS items: bounds the memory a
 * source file can make the compiler use (docs/language.md, Limits). */
#define MAX_LIST_ITEMS 1000000
static int check_list_len(ParseState *ps, NodeList l, Node *next) {
  if (l.len < MAX_LIST_ITEMS) return 1;
  return diag_error(ps->diag, next->loc, "a list of more than %d items (limit); large constants belong in the weights file", MAX_LIST_ITEMS);
}

static int check_arg_order(ParseState *ps, NodeList args, Node *arg) {
  if (arg->kind != N_KWARG && args.len > 0 && args.items[args.len - 1]->kind == N_KWARG)
    return diag_error(ps->diag, arg->loc, "positional argument after keyword argument");
  return 1;
}

/* Only reached for "memory exhausted" (the parser stack is full): syntax errors go
 * through yyreport_syntax_error. */
static void yyerror(YYLTYPE *loc, yyscan_t scanner, ParseState *ps, const char *msg) {
  (void)scanner;
  (void)msg;
  diag_error(ps->diag, L(*loc), "expression too deeply nested");
}

/* ---- syntax error messages: "unexpected X, expected A, B or C" ---- */

static int is_char_token(yysymbol_kind_t k, const char *chars) {
  for (; *chars; chars++) {
    int c = (unsigned char)*chars;
    if (k == YYTRANSLATE(c)) return 1;
  }
  return 0;
}

static int is_expr_start(yysymbol_kind_t k) {
  switch (k) {
  case YYSYMBOL_NAME: case YYSYMBOL_INT: case YYSYMBOL_FLOAT: case YYSYMBOL_STRING:
  case YYSYMBOL_TRUE: case YYSYMBOL_FALSE:
    return 1;
  default:
    return is_char_token(k, "([-!");
  }
}

/* Tokens that may follow any complete operand: infix and postfix operators. */
static int is_operator(yysymbol_kind_t k) {
  switch (k) {
  case YYSYMBOL_POW: case YYSYMBOL_EQ: case YYSYMBOL_NE: case YYSYMBOL_LE: case YYSYMBOL_GE:
  case YYSYMBOL_ANDAND: case YYSYMBOL_OROR: case YYSYMBOL_DOTDOT:
    return 1;
  default:
    return is_char_token(k, "+-*/%@<>?([.");
  }
}

static int has(const yysymbol_kind_t *ks, int n, yysymbol_kind_t k) {
  for (int i = 0; i < n; i++)
    if (ks[i] == k) return 1;
  return 0;
}

/* The unexpected token, quoting the text of identifiers and numbers. */
static void describe_token(ParseState *ps, yysymbol_kind_t k, char *buf, size_t size) {
  if (k == YYSYMBOL_NAME || k == YYSYMBOL_INT || k == YYSYMBOL_FLOAT) {
    int len = ps->tok_len > 40 ? 40 : ps->tok_len;
    snprintf(buf, size, "%s '%.*s%s'", yysymbol_name(k), len, ps->file->text + ps->tok_off,
             ps->tok_len > len ? "..." : "");
  } else {
    snprintf(buf, size, "%s", yysymbol_name(k));
  }
}

static int is_closer(yysymbol_kind_t k) { return is_char_token(k, ")]}"); }

/* Builds the "expected ..." list: expression-start tokens become "expression" (or, with
 * for/if/return, "statement"; at top level "declaration"), operators after a complete operand
 * are left out, as are newline after a separator (blank lines) and end of file; at end of
 * file only the missing closing brackets are named. */
static int expected_names(const yypcontext_t *ctx, ParseState *ps, const char **names) {
  yysymbol_kind_t got[YYNTOKENS];
  int n = yypcontext_expected_tokens(ctx, got, YYNTOKENS);
  if (n < 0) n = 0;
  int after_operand = has(got, n, YYTRANSLATE('+'));
  int want_expr = has(got, n, YYSYMBOL_NAME) && has(got, n, YYSYMBOL_INT);
  int want_stmt = want_expr && has(got, n, YYSYMBOL_RETURN);
  int want_decl = has(got, n, YYSYMBOL_MODULE) && has(got, n, YYSYMBOL_EXPORT);
  int after_sep = ps->prev_tok == NEWLINE || ps->prev_tok == ';' || ps->prev_tok == '{' ||
                  ps->prev_tok == 0;
  int at_eof = yypcontext_token(ctx) == YYSYMBOL_YYEOF;
  int closers = 0;
  for (int i = 0; i < n; i++) closers += is_closer(got[i]);

  int m = 0;
  if (at_eof && closers) {
    for (int i = 0; i < n; i++)
      if (is_closer(got[i])) names[m++] = yysymbol_name(got[i]);
    return m;
  }
  if (want_stmt) names[m++] = "statement";
  else if (want_decl) names[m++] = "declaration";
  else if (want_expr) names[m++] = "expression";
  for (int i = 0; i < n; i++) {
    yysymbol_kind_t k = got[i];
    if (after_operand && is_operator(k)) continue;
    if (want_expr && is_expr_start(k)) continue;
    if (want_stmt && (k == YYSYMBOL_FOR || k == YYSYMBOL_IF || k == YYSYMBOL_RETURN)) continue;
    if (want_decl && (k == YYSYMBOL_NAME || k == YYSYMBOL_CONST || k == YYSYMBOL_MODULE ||
                      k == YYSYMBOL_FN || k == YYSYMBOL_EXPORT || k == YYSYMBOL_INCLUDE))
      continue;
    if (k == YYTRANSLATE(';') && has(got, n, YYSYMBOL_NEWLINE)) continue;
    if (k == YYSYMBOL_NEWLINE && after_sep) continue;
    if (k == YYSYMBOL_NEWLINE && has(got, n, YYSYMBOL_ARROW)) continue; /* a break before '->' */
    if (k == YYSYMBOL_YYEOF) continue;
    names[m++] = yysymbol_name(k);
  }
  return m;
}

static int yyreport_syntax_error(const yypcontext_t *ctx, yyscan_t scanner, ParseState *ps) {
  (void)scanner;
  const char *names[YYNTOKENS + 3];
  int m = expected_names(ctx, ps, names);
  char tok[128], msg[512];
  yysymbol_kind_t unexpected = yypcontext_token(ctx);
  describe_token(ps, unexpected, tok, sizeof tok);
  int len = snprintf(msg, sizeof msg, "unexpected %s", tok);
  if (unexpected == YYSYMBOL_ELSE && ps->prev_tok == NEWLINE) {
    snprintf(msg + len, sizeof msg - len, " ('else' must be on the same line as '}')");
  } else if (m > 0 && m <= 5) {
    len += snprintf(msg + len, sizeof msg - len, ", expected ");
    for (int i = 0; i < m && len < (int)sizeof msg; i++) {
      const char *joint = i == 0 ? "" : i == m - 1 ? " or " : ", ";
      len += snprintf(msg + len, sizeof msg - len, "%s%s", joint, names[i]);
    }
  }
  diag_error(ps->diag, L(*yypcontext_location(ctx)), "%s", msg);
  return 0;
}

/* ---- tree depth limit (iterative, so it is safe on any tree) ---- */

typedef struct DepthItem {
  const Node *n;
  int depth;
} DepthItem;

typedef struct DepthStack {
  DepthItem *items;
  int len, cap;
} DepthStack;

static void depth_push(ParseState *ps, DepthStack *s, const Node *n, int depth) {
  if (!n) return;
  if (s->len == s->cap) {
    int cap = s->cap ? 2 * s->cap : 256;
    DepthItem *items = arena_alloc(ps->arena, (size_t)cap * sizeof *items);
    if (s->len) memcpy(items, s->items, (size_t)s->len * sizeof *items);
    s->items = items;
    s->cap = cap;
  }
  s->items[s->len++] = (DepthItem){n, depth};
}

static void depth_push_list(ParseState *ps, DepthStack *s, NodeList l, int depth) {
  for (int i = 0; i < l.len; i++) depth_push(ps, s, l.items[i], depth);
}

/* Fails with a diagnostic if any node of `root` is more than NNC_MAX_TREE_DEPTH deep. */
int parse_check_depth(ParseState *ps, const Node *root) {
  DepthStack s = {0};
  depth_push(ps, &s, root, 1);
  while (s.len > 0) {
    DepthItem it = s.items[--s.len];
    const Node *n = it.n;
    if (it.depth > NNC_MAX_TREE_DEPTH)
      return diag_error(ps->diag, n->loc, "expression too deeply nested");
    int d = it.depth + 1;
    depth_push(ps, &s, n->lhs, d);
    depth_push(ps, &s, n->rhs, d);
    depth_push(ps, &s, n->cond, d);
    depth_push(ps, &s, n->extra, d);
    depth_push(ps, &s, n->type, d);
    depth_push_list(ps, &s, n->args, d);
    depth_push_list(ps, &s, n->body, d);
    depth_push_list(ps, &s, n->orelse, d);
    depth_push_list(ps, &s, n->outs, d);
  }
  return 1;
}
