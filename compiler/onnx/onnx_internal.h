/* onnx_internal.h — what the files of the ONNX reader share (onnx_reader.c: the model and
 * graph; onnx_tensor.c: tensors; onnx_external.c: external data; onnx_wire.c: the wire format
 * check; onnx_util.c: messages, name sets).  Only the reader includes the
 * protobuf-c types; callers see onnx_reader.h. */
#ifndef NNC_ONNX_INTERNAL_H
#define NNC_ONNX_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "onnx.pb-c.h"
#include "onnx_reader.h"

/* ---- the arena that owns an OnnxModel: the compiler's (dsl/arena.h) in its fallible
 * mode, 64-byte aligned (tensor data) ---- */
typedef struct Arena OnnxArena;
static inline OnnxArena *onnx_arena_new(void) { return arena_new_aligned(64); } /* NULL: no memory */
static inline void onnx_arena_free(OnnxArena *a) { arena_free(a); } /* NULL is harmless */
/* zeroed, 64-byte aligned; NULL: no memory */
static inline void *onnx_arena_alloc(OnnxArena *a, size_t size) { return arena_try_alloc(a, size); }
/* n items of `size` bytes, the product checked for overflow; NULL when out of memory */
static inline void *onnx_arena_array(OnnxArena *a, size_t n, size_t size) {
  return arena_try_array(a, n, size);
}

/* ---- one read ---- */
typedef struct OnnxReader {
  const char *path;     /* the model, in messages */
  const char *dir;      /* the folder of external data files; NULL: external data refused */
  OnnxArena *arena;
  char **errmsg;
  int n_external;       /* tensors read from external data files so far */
} OnnxReader;

/* "PATH: error: " and the message into a malloc'd *r->errmsg, unprintable bytes as \xNN;
 * returns -1. */
int onnx_fail(OnnxReader *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int onnx_out_of_memory(OnnxReader *r, const char *what);
/* A copy of a protobuf string (NULL: "") in the arena; NULL with a message when it is longer
 * than ONNX_MAX_NAME bytes (`where`, `what`: "node 3 'x' (Conv)", "input 2") or out of memory. */
const char *onnx_name(OnnxReader *r, const char *s, const char *where, const char *what);

/* A name for messages: s itself, or its first bytes and "..." (buf: ONNX_CLIP_SIZE bytes). */
enum { ONNX_CLIP_SIZE = 104 };
const char *onnx_clip(char *buf, const char *s);

/* A set of names, to find duplicates (open addressing over the arena). */
typedef struct OnnxNameSet {
  const char **slots;
  size_t cap;
} OnnxNameSet;
int onnx_nameset_init(OnnxReader *r, OnnxNameSet *s, size_t n);
bool onnx_nameset_add(OnnxNameSet *s, const char *name); /* false: already there */

/* ---- tensors (onnx_tensor.c) ---- */
/* Convert `tp` into *t, its data copied into the arena.  `where` names it in messages
 * ("initializer 'fc.weight'"). */
int onnx_read_tensor(OnnxReader *r, const Onnx__TensorProto *tp, const char *where,
                     OnnxTensor *t);
/* "f32[10, 10]" into buf[size] */
const char *onnx_describe(char *buf, size_t size, OnnxDtype dtype, int rank, const int64_t *dims);
/* An element type of a file, checked: 0 and a supported dtype in *out, or -1 with a message
 * naming ONNX's type ("STRING (8)") and `where`. */
int onnx_check_dtype(OnnxReader *r, int32_t type, const char *where, OnnxDtype *out);

/* ---- external data (onnx_external.c) ---- */
/* Tensor `tp`'s external data, t->nbytes of them, copied into the arena: t->data
 * (`shape`: "f32[10, 10]", for messages). */
int onnx_read_external(OnnxReader *r, const Onnx__TensorProto *tp, const char *where,
                       const char *shape, OnnxTensor *t);

/* ---- wire format (onnx_wire.c) ---- */
/* Check that data[len] is a well-formed message `desc` (keys, varints, lengths within their
 * message, no groups) nested at most ONNX_MAX_DEPTH deep; -1 with a message otherwise. */
int onnx_wire_check(OnnxReader *r, const uint8_t *data, size_t len,
                    const ProtobufCMessageDescriptor *desc);

#endif
