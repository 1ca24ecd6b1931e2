/* onnx_import_internal.h — what the ONNX translation's files share: onnx_import.c (the
 * entry, values by name, parameters and constants, messages), onnx_ops.c (the op table and
 * the handlers of the first op set) and the handlers by topic (onnx_shape.c, onnx_ops_nn.c,
 * onnx_ops_rnn.c, onnx_ops_logic.c, onnx_ops_index.c, onnx_ops_einsum.c). */
#ifndef NNC_ONNX_IMPORT_INTERNAL_H
#define NNC_ONNX_IMPORT_INTERNAL_H

#include "builtins.h"
#include "nn.h"
#include "onnx_import.h"

/* An integer vector known at compile time whose entries may be symbolic dims: what Shape
 * gives, and Gather, Slice, Unsqueeze, Squeeze and Concat of such vectors and of integer
 * constants; Reshape takes it as its shape.  Folded here, never run. */
#define SHAPE_VAL_MAX 16
typedef struct ShapeVal {
  int rank;                /* 0 (a scalar, n = 1) or 1 */
  int n;
  Dim d[SHAPE_VAL_MAX];    /* k x product of symbols; k may be negative (-1 of a shape) */
} ShapeVal;

/* A value of the graph by name: a tensor of the entry, and, when it is an initializer or a
 * Constant's output, its data (read at compile time by ops that take attributes as inputs). */
typedef struct ImpValue {
  const char *name;
  INode *t;               /* NULL until an op uses it as a tensor */
  const OnnxTensor *data; /* constant data, or NULL */
  const ShapeVal *sv;     /* an integer vector folded at compile time, or NULL */
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
  const ShapeVal *out_sv; /* set by a handler whose output is a folded integer vector */
  bool worded;            /* the diagnostic is imp_fail's (else an IR builder's, said again) */
  /* a 1-D window op translated as 2-D (onnx_ops.c with_1d): inputs 0 and 1 as [.., 1, L],
   * the spatial attributes read with a leading 1 (pads: 0) */
  bool one_d;
  INode *lifted[2];
} Imp;

#define IM (I->S.m)
#define IE (I->S.e)
#define ID (I->S.d)

/* onnx_import.c */
/* An error about the node being translated ("node 3 'conv1' (Conv, opset 13): ..."); false. */
bool imp_fail(Imp *I, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
ImpValue *imp_find(Imp *I, const char *name);       /* NULL: no such value */
bool imp_define(Imp *I, const char *name, INode *t, const OnnxTensor *data);
bool imp_define_vector(Imp *I, const char *name, const ShapeVal *sv);
/* Input i of the node as a tensor (parameters and constants made on first use); NULL after a
 * message when it is missing or not a tensor nnc takes. */
INode *imp_input(Imp *I, int i);
bool imp_has_input(const Imp *I, int i);            /* present and not "" */
/* Input i's constant data (an initializer or a Constant's output), or NULL after a message. */
const OnnxTensor *imp_const_input(Imp *I, int i);
/* The integers of a constant i64 or i32 tensor into v[n] (at most max); false after a message. */
bool imp_const_ints(Imp *I, const OnnxTensor *t, int64_t *v, int *n, int max, const char *what);

/* onnx_ops.c: the table, the handlers of the first op set, attribute helpers */
typedef struct OpRow OpRow;
/* A handler sets out[k] for each output k < row->max_out (at most OP_MAX_OUT). */
#define OP_MAX_OUT 4
typedef bool (*OpFn)(Imp *I, const OpRow *row, INode **out);
struct OpRow {
  const char *name;
  OpFn fn;
  Op op;              /* elementwise rows: the IR op */
  int min_in, max_in; /* inputs */
  int max_out;        /* outputs computed (a node asking for more is an error) */
  const char *attrs;  /* the attributes taken, each followed by a space */
};
/* Translate the node: define its outputs; false after a diagnostic. */
bool imp_node(Imp *I, const OnnxNode *n);
bool attr_int(Imp *I, const char *name, int64_t def, int64_t *out);
bool attr_float(Imp *I, const char *name, double def, double *out);
const char *attr_string(Imp *I, const char *name, const char *def); /* NULL after a message */
bool attr_ints_n(Imp *I, const char *name, int n, int64_t def, int64_t *v);
INode *input_f32(Imp *I, int i);
INode *optional_f32(Imp *I, int i, bool *ok);
bool norm_axis(Imp *I, int64_t axis, int rank, const char *name, int *out);
INode *imp_scalar(Imp *I, double v);

/* onnx_shape.c: integer vectors folded at compile time */
/* Input i as an integer vector: a folded one, or constant int64/int32 data of rank <= 1;
 * false after a message. */
bool imp_int_vector(Imp *I, int i, ShapeVal *out);
bool imp_is_int_vector(Imp *I, int i); /* folded, or constant integer data */
/* The axes of the attribute 'axes' (older opsets) or of constant input i into v[*n] (at
 * most MAX_RANK, not normalized); *n = 0 when neither is given. */
bool imp_axes(Imp *I, int input, int64_t *v, int *n);
bool op_shape(Imp *I, const OpRow *row, INode **out);
bool op_gather(Imp *I, const OpRow *row, INode **out);
bool op_unsqueeze(Imp *I, const OpRow *row, INode **out);
bool op_squeeze(Imp *I, const OpRow *row, INode **out);
bool op_slice(Imp *I, const OpRow *row, INode **out);
bool shape_concat(Imp *I, int axis, INode **out);
bool op_split(Imp *I, const OpRow *row, INode **out);
/* Add, Sub, Mul, Div, Equal or Where (op) of nin folded integer vectors (exporters compute
 * shapes so): 1 folded into I->out_sv, 0 not foldable (not all folded, or a value that is no
 * dim; the tensor path takes it), -1 after a message */
int fold_int_elementwise(Imp *I, Op op, int nin);

/* onnx_ops_nn.c: reductions, normalizations, ConvTranspose, DepthToSpace, SpaceToDepth, Resize,
 * RoiAlign */
bool op_reduce(Imp *I, const OpRow *row, INode **out);
bool op_layer_norm(Imp *I, const OpRow *row, INode **out);
bool op_instance_norm(Imp *I, const OpRow *row, INode **out);
bool op_depth_to_space(Imp *I, const OpRow *row, INode **out);
bool op_conv_transpose(Imp *I, const OpRow *row, INode **out);
bool op_resize(Imp *I, const OpRow *row, INode **out);
bool op_roi_align(Imp *I, const OpRow *row, INode **out);

/* onnx_ops_rnn.c: LSTM, GRU, RNN */
bool op_rnn(Imp *I, const OpRow *row, INode **out);

/* onnx_ops_logic.c: comparisons, logic, Where, Cast (bool as f32 1.0 / 0.0) */
bool op_compare(Imp *I, const OpRow *row, INode **out);
bool op_not(Imp *I, const OpRow *row, INode **out);
bool op_where(Imp *I, const OpRow *row, INode **out);
bool op_cast(Imp *I, const OpRow *row, INode **out);

/* onnx_ops_index.c: ConstantOfShape, Range, Expand, Tile, CumSum, ArgMax/ArgMin, TopK, OneHot,
 * ScatterElements */
bool op_constant_of_shape(Imp *I, const OpRow *row, INode **out);
bool op_range(Imp *I, const OpRow *row, INode **out);
bool op_expand(Imp *I, const OpRow *row, INode **out);
bool op_tile(Imp *I, const OpRow *row, INode **out);
bool op_cumsum(Imp *I, const OpRow *row, INode **out);
bool op_trilu(Imp *I, const OpRow *row, INode **out);
bool op_arg_extreme(Imp *I, const OpRow *row, INode **out);
bool op_topk(Imp *I, const OpRow *row, INode **out);
/* Run-time indices (i64) as f32 with the negative ones counted from the end of an axis of
 * len; index_from_end also checks them against it at run time (its failure names `what`) */
INode *index_wrapped(Imp *I, INode *ix, Dim len);
INode *index_from_end(Imp *I, INode *ix, Dim len, const char *what);
bool op_one_hot(Imp *I, const OpRow *row, INode **out);
bool op_scatter_elements(Imp *I, const OpRow *row, INode **out);

/* onnx_ops_einsum.c */
bool op_einsum(Imp *I, const OpRow *row, INode **out);

#endif
