/* onnx_reader.h — a strict reader of ONNX model files (.onnx, a protobuf ModelProto) into
 * plain C structures owned by nnc; protobuf-c and its generated types stay inside the reader.
 *
 * The file is untrusted input.  Checked before anything else is allocated for it: the size
 * (at most ONNX_MAX_FILE_BYTES), the protobuf wire format and its nesting (at most
 * ONNX_MAX_DEPTH messages deep; protobuf-c itself recurses without a limit), the memory the
 * unpacked message takes (proportional to the file).  Then: counts and name lengths within
 * the limits below; tensors of rank <= ONNX_MAX_RANK with dims >= 0 whose element count and
 * byte size do not overflow; every tensor's data (raw_data, the typed field of its dtype, or
 * an external file) holding exactly numel × element size bytes, or numel values; typed
 * values within their dtype's range; external data only in regular files inside the model's
 * folder (no absolute path, no `..`, no symlink out of it) with offset + length inside the
 * file; nodes' domains imported by the model; unsupported dtypes (string, complex, 8-bit
 * floats) and attribute kinds (graphs, sparse tensors, type protos) refused by name.
 *
 * Errors are one line, "PATH: error: WHERE: WHAT, expected ...\n", e.g.
 *   model.onnx: error: initializer 'fc.weight': raw_data holds 396 bytes, expected 400 for f32[10, 10]
 * Bytes that would not print as themselves are written as \xNN. */
#ifndef NNC_ONNX_READER_H
#define NNC_ONNX_READER_H

#include <stddef.h>
#include <stdint.h>

#define ONNX_MAX_FILE_BYTES ((size_t)2 << 30) /* protobuf's own limit: 2 GiB */
#define ONNX_MAX_DEPTH 64          /* messages nested in messages */
#define ONNX_MAX_RANK 8
#define ONNX_MAX_NAME 4096         /* bytes in a name, op type, domain or dim_param */
#define ONNX_MAX_ITEMS 1000000     /* nodes, initializers, graph inputs/outputs, value_info */
#define ONNX_MAX_NODE_ITEMS 65536  /* a node's inputs, outputs, attributes */
#define ONNX_MAX_OPSETS 64         /* opset imports (domains) */

/* Element types, numbered as ONNX's TensorProto.DataType.  Only these are read. */
typedef enum OnnxDtype {
  ONNX_UNDEFINED = 0, /* a value_info without an element type */
  ONNX_F32 = 1, ONNX_U8 = 2, ONNX_I8 = 3, ONNX_U16 = 4, ONNX_I16 = 5, ONNX_I32 = 6,
  ONNX_I64 = 7, ONNX_BOOL = 9, ONNX_F16 = 10, ONNX_F64 = 11, ONNX_U32 = 12, ONNX_U64 = 13,
  ONNX_BF16 = 16,
} OnnxDtype;

const char *onnx_dtype_name(OnnxDtype t); /* "f32", "i64", "bool", ... */
size_t onnx_dtype_size(OnnxDtype t);      /* bytes per element; 0 for ONNX_UNDEFINED */

/* A dense tensor: an initializer, a tensor attribute (Constant's `value`). */
typedef struct OnnxTensor {
  const char *name;              /* "" when the tensor has none (attributes) */
  OnnxDtype dtype;
  int rank;
  int64_t dims[ONNX_MAX_RANK];
  int64_t numel;                 /* product of dims (1 for rank 0) */
  size_t nbytes;                 /* numel × onnx_dtype_size(dtype) */
  const void *data;              /* [nbytes], little-endian, C order, 64-byte aligned */
} OnnxTensor;

typedef enum OnnxAttrKind {
  ONNX_ATTR_FLOAT = 1, ONNX_ATTR_INT = 2, ONNX_ATTR_STRING = 3, ONNX_ATTR_TENSOR = 4,
  ONNX_ATTR_FLOATS = 6, ONNX_ATTR_INTS = 7, ONNX_ATTR_STRINGS = 8, /* ONNX's numbers */
} OnnxAttrKind;

/* A byte string (ONNX strings are bytes); `data` is NUL-terminated, `len` excludes the NUL. */
typedef struct OnnxBytes {
  const char *data;
  size_t len;
} OnnxBytes;

typedef struct OnnxAttr {
  const char *name;
  OnnxAttrKind kind;
  float f;                       /* FLOAT */
  int64_t i;                     /* INT */
  OnnxBytes s;                   /* STRING */
  const OnnxTensor *t;           /* TENSOR */
  int n;                         /* FLOATS, INTS, STRINGS: the count */
  const float *floats;           /* [n] */
  const int64_t *ints;           /* [n] */
  const OnnxBytes *strings;      /* [n] */
} OnnxAttr;

typedef struct OnnxNode {
  int index;                     /* position in the graph */
  const char *name;              /* often "" */
  const char *op_type;
  const char *domain;            /* "" for the default domain (ai.onnx) */
  int n_inputs, n_outputs, n_attrs;
  const char **inputs;           /* [n_inputs]; "" is an omitted optional input */
  const char **outputs;          /* [n_outputs]; "" is an omitted optional output */
  const OnnxAttr *attrs;         /* [n_attrs], names unique */
} OnnxNode;

typedef enum OnnxDimKind { ONNX_DIM_UNKNOWN, ONNX_DIM_VALUE, ONNX_DIM_PARAM } OnnxDimKind;
typedef struct OnnxDim {
  OnnxDimKind kind;
  int64_t value;                 /* ONNX_DIM_VALUE: >= 0 */
  const char *param;             /* ONNX_DIM_PARAM: the symbolic dim's name, not empty */
} OnnxDim;

/* A graph input, output or value_info entry: a tensor's element type and shape. */
typedef struct OnnxValueInfo {
  const char *name;
  OnnxDtype dtype;               /* ONNX_UNDEFINED when not given */
  int rank;                      /* -1 when the shape is not given */
  OnnxDim dims[ONNX_MAX_RANK];
} OnnxValueInfo;

typedef struct OnnxOpset {
  const char *domain;            /* as written: "" or "ai.onnx" for the default domain */
  int64_t version;
} OnnxOpset;

typedef struct OnnxModel {
  const char *path;              /* as given to the reader */
  int64_t ir_version;
  const char *producer_name, *producer_version;
  int n_opsets;
  const OnnxOpset *opsets;       /* [n_opsets], domains unique */
  const char *graph_name;
  int n_nodes, n_initializers, n_inputs, n_outputs, n_value_info;
  const OnnxNode *nodes;         /* [n_nodes], in the file's order */
  const OnnxTensor *initializers;/* [n_initializers], names unique */
  const OnnxValueInfo *inputs;   /* [n_inputs] (may name initializers too, as IR < 4 did) */
  const OnnxValueInfo *outputs;  /* [n_outputs] */
  const OnnxValueInfo *value_info; /* [n_value_info] */
  int n_external;                /* tensors whose bytes came from external data files */
  struct Arena *arena;           /* owns everything above (dsl/arena.h) */
} OnnxModel;

/* Read the model file `path` (a regular file; external data is looked up in its folder).
 * Returns 0 and *out (free with onnx_model_free), or -1 and a malloc'd message in *errmsg
 * (free with free()). */
int onnx_read_file(const char *path, OnnxModel **out, char **errmsg);

/* The same from bytes in memory.  `path` names the model in messages; `dir` is the folder of
 * its external data files (NULL: a tensor with external data is an error).  The bytes are
 * not referenced after the call. */
int onnx_read_memory(const void *data, size_t len, const char *path, const char *dir,
                     OnnxModel **out, char **errmsg);

void onnx_model_free(OnnxModel *m); /* NULL is harmless */

/* The opset version the model imports for `domain` ("" and "ai.onnx" are the same), or -1. */
int64_t onnx_model_opset(const OnnxModel *m, const char *domain);
/* A node's attribute by name, or NULL. */
const OnnxAttr *onnx_node_attr(const OnnxNode *n, const char *name);
/* An initializer by name, or NULL (a linear search). */
const OnnxTensor *onnx_model_initializer(const OnnxModel *m, const char *name);

#endif
