/* eval.h — the evaluator of sema.c as the layers and run-time loops call back into it:
 * calling a value (a function, a module's forward, a built-in), evaluating an expression
 * and running a block of statements in a scope. */
#ifndef NNC_EVAL_H
#define NNC_EVAL_H

#include "value.h"

bool call_value(Sema *S, const Value *callee, const Args *a, Value *out);
bool eval_api(Sema *S, Scope *sc, const Node *n, Value *out);
/* index.c: x[...] of a list or a tensor */
bool eval_index(Sema *S, Scope *sc, const Node *n, Value *out);
/* The items of a list, tuple, range or Sequential (a range unrolled: at most 100,000 items). */
bool iterate_api(Sema *S, const Value *v, SrcLoc loc, Value **items, int *len);
/* 0 after a diagnostic, 1 when the block ran to its end, 2 after a `return` (*ret set) */
int exec_block_api(Sema *S, Scope *sc, const NodeList *body, Value *ret);
/* export.c: build the entry of an `export` declaration (named `name`: an alias's, or its own); a declared type's shape and dtype;
 * does tensor t (argument or result p) have them (a diagnostic at loc when not)? */
bool build_export(Sema *S, const Node *decl, const char *name, SrcLoc loc); /* entry `name` */
bool eval_type(Sema *S, const Node *type, Shape *s, DType *dt);
bool check_declared(Sema *S, const Node *p, INode *t, const Shape *want, DType dt, SrcLoc loc);
/* export.c: the entry of an export alias `n` (export NAME = EXPORT with CONST = expr, ...) */
bool build_alias(Sema *S, const Node *prog, const Node *n);
/* sema.c: the -D value given for top-level constant `name` (marked used), or NULL */
const char *find_define(Sema *S, const char *name);

#endif
