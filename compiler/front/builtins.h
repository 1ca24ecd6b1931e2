/* builtins.h — the language's built-in functions.  Each is a row {name, handler, variant}
 * of a table: builtins.c (math, reductions, shapes, creation, compile-time helpers),
 * builtins_nn.c (convolution, pooling, normalization, LSTM), builtins_index.c (indices and
 * random numbers); the functions of elementwise ops and the activation layers are rows
 * expanded from ops.def, the other layers rows of layers.c and layers_nn.c.  A handler
 * serving several names tells them apart by the row's variant, never by the name. */
#ifndef NNC_BUILTINS_H
#define NNC_BUILTINS_H

#include "value.h"

typedef struct Builtin Builtin;
typedef bool (*BuiltinFn)(Sema *S, const Builtin *b, const Args *a, Value *out);
struct Builtin {
  const char *name;
  BuiltinFn fn;
  int variant; /* which of the handler's functions: an Op, or the handler's own enum */
};

/* The built-in function or layer called `name`, or NULL. */
const Builtin *builtin_find(const char *name);
/* The function of elementwise op `op` (ops.def's FUNCTION column). */
const Builtin *elementwise_builtin(Op op);

/* Tables of the other files, ended by a row whose name is NULL. */
extern const Builtin nn_builtins[];    /* builtins_nn.c */
extern const Builtin index_builtins[]; /* builtins_index.c */

/* Elementwise op `op` of ops.def on x with its float attributes a[] (NULL: the defaults). */
INode *elementwise_node(Sema *S, Op op, INode **x, const double *attrs, SrcLoc loc);
/* The op of GELU's `approximate` v ("none" or absent: GELU, "tanh": GELU_TANH), or false
 * after a diagnostic. */
bool gelu_op(Sema *S, const Value *v, SrcLoc loc, Op *op);
/* softmax of x along axis, max-shifted (F.softmax) */
INode *softmax_node(Sema *S, INode *x, int axis, SrcLoc loc);
/* torch.flatten: merge axes start..end (negative: from the end) */
INode *flatten_node(Sema *S, INode *x, int64_t start, int64_t end, SrcLoc loc);
/* first index of the largest (smallest) element along axis, NaN counting as extreme */
INode *index_of_extreme(Sema *S, INode *x, int axis, bool largest, bool keepdim, SrcLoc loc);
/* torch.topk along axis (static, 1 <= k <= its size): the values, the indices (f32) in
 * *indices; k rounds of index_of_extreme, ties to the lowest index */
INode *topk_node(Sema *S, INode *x, int64_t k, int axis, bool largest, INode **indices, SrcLoc loc);

#endif
