/* ops.c — the op table op_info[] and the scalar semantics of elementwise ops (constant
 * folding), both expanded from the rows of ops.def. */
#include <math.h>
#include <stdlib.h>
#include "ir.h"
#include "scalar.h"

/* eval_<NAME>: an elementwise op's EVAL column as a function */
#define OP(id, nm, ar, kind, print)
#define ELEM(id, nm, ar, traits, fn, layer, attrs, ev) \
  static double eval_##id(const double *x, const double *a) { (void)a; return (ev); }
#include "ops.def"

/* the attribute printers of ir_dump.c */
#define OP(id, nm, ar, kind, print) void attrs_##print(const Model *m, const INode *n, char *buf, size_t len);
#include "ops.def"

const OpInfo op_info[OP_COUNT] = {
#define OP(id, nm, ar, kind, print) [OP_##id] = {nm, ar, FK_##kind, 0, NULL, NULL, NO_ATTRS, NULL, attrs_##print},
#define ELEM(id, nm, ar, traits, fn, layer, attrs, ev) \
  [OP_##id] = {nm, ar, FK_ELEM, traits, fn, layer, attrs, eval_##id, attrs_elem},
#include "ops.def"
};

_Noreturn void nnc_unreachable(const char *file, int line, const char *what) {
  fprintf(stderr, "nnc: internal error at %s:%d: %s\n", file, line, what);
  abort();
}
