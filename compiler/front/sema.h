/* sema.h — semantic analysis: evaluates a parsed program at compile time (constants,
 * module instantiation, compile-time loops and conditions, function inlining) and records
 * every tensor operation of each exported entry as graph IR with checked shapes. */
#ifndef NNC_SEMA_H
#define NNC_SEMA_H

#include "ir.h"

/* Build the model for `prog`.  defines ("NAME=VALUE", may be NULL) override the values of
 * top-level constants.  Returns NULL after recording a diagnostic. */
Model *sema_program(Arena *a, const SrcFile *file, const Node *prog, const char *model_name,
                    const char *const *defines, int ndefines, Diag *d);

#endif
