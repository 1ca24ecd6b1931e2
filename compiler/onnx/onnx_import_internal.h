/* onnx_import_internal.h — what the ONNX translation's two files share: onnx_import.c (the
 * entry, values by name, parameters and constants, messages) and onnx_ops.c (the op table
 * and one handler per op). */
#ifndef NNC_ONNX_IMPORT_INTERNAL_H
#define NNC_ONNX_IMPORT_INTERNAL_H

#include "builtins.h"
#include "nn.h"
#include "onnx_import.h"

/* A value of the graph by name: a tensor of the entry, and, when it is an initializer or a
 * Constant's output, its data (read at compile time by ops that take attributes as inputs). */
typedef struct ImpValue {
  const char *name;
  INode *t;               /* NULL until an op uses it as a tensor */
  const OnnxTensor *data; /* constant data, or NULL */
} ImpValue;

typedef struct Imp {
  Sema S;                 /* arena, model, entry, diagnostics: what the IR builders take */
  const OnnxModel *om;
  const char *path;
  int64_t opset;          /* of the default domain */
  ImpValue *values;       /* open addressing by name */
  size_t cap, count;
  const OnnxNode *node;   /* the node being translated, for messages */
  SrcLoc loc;             /* its location: line = node index + 1 */
  bool worded;            /* the diagnostic is imp_fail's (else an IR builder's, said again) */
} Imp;

#define IM (I->S.m)
#define IE (I->S.e)
#define ID (I->S.d)

/* onnx_import.c */
/* An error about the node being translated ("node 3 'conv1' (Conv, opset 13): ..."); false. */
bool imp_fail(Imp *I, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
ImpValue *imp_find(Imp *I, const char *name);       /* NULL: no such value */
bool imp_define(Imp *I, const char *name, INode *t, const OnnxTensor *data);
/* Input i of the node as a tensor (parameters and constants made on first use); NULL after a
 * message when it is missing or not a tensor nnc takes. */
INode *imp_input(Imp *I, int i);
bool imp_has_input(const Imp *I, int i);            /* present and not "" */
/* Input i's constant data (an initializer or a Constant's output), or NULL after a message. */
const OnnxTensor *imp_const_input(Imp *I, int i);
/* The integers of a constant i64 or i32 tensor into v[n] (at most max); false after a message. */
bool imp_const_ints(Imp *I, const OnnxTensor *t, int64_t *v, int *n, int max, const char *what);

/* onnx_ops.c */
/* Translate the node: define its outputs; false after a diagnostic. */
bool imp_node(Imp *I, const OnnxNode *n);

#endif
