/* emit_nn.h — an entry of the graph IR written back as .nn source: the parameters declared
 * by name and shape (`conv1_weight = Parameter([64, 3, 7, 7])`), one export with the entry's
 * inputs (symbolic dims by name) and outputs, and one statement per IR node in the
 * language's spelling of its op (ops.def: the FUNCTION column, SPELL rows, and the
 * structural ops here), so that compiling the text builds the same graph.  `nnc import`
 * writes ONNX models with it.  An op the language cannot express is an error, never an
 * approximation. */
#ifndef NNC_EMIT_NN_H
#define NNC_EMIT_NN_H

#include <stdio.h>
#include "ir.h"

/* A tensor the .nn reads from its weights file: a model parameter, or the data of a CONST
 * node too large to write as a literal. */
typedef struct NnWeight {
  const char *name;      /* its name in the .nn and in the weights file */
  int param;             /* the model parameter, or -1 */
  const INode *constant; /* else: the CONST node whose data it holds */
} NnWeight;

typedef struct NnEmitOptions {
  const char *export_name;        /* the export's name (an identifier or not: sanitized) */
  const char *const *value_names; /* by node id: a name to give the node's variable, or NULL */
  const char *banner;             /* comment lines written first (each without '#'), or NULL */
} NnEmitOptions;

/* Write entry e of m as .nn to `out`; *weights (arena-allocated, *nweights entries) lists
 * what the weights file must hold.  Returns false with a message in err ("cannot write ...
 * as .nn: ...") when a node has no .nn spelling. */
bool emit_nn(FILE *out, Arena *a, const Model *m, const Entry *e, const NnEmitOptions *opt,
             NnWeight **weights, int *nweights, char *err, size_t errlen);

#endif
