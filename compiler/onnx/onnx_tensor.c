/* onnx_tensor.c — an ONNX TensorProto into an OnnxTensor: dtype, dims, and data from exactly
 * one source — raw_data (little-endian bytes), the typed field of its dtype (float_data,
 * int32_data, int64_data, double_data, uint64_data; narrower types widened into int32_data,
 * float16/bfloat16 as their bits) or external data (onnx_external.c) — checked against
 * numel × element size and copied into one 64-byte aligned buffer of the arena. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "onnx_internal.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the ONNX reader copies raw_data as is: it needs a little-endian host"
#endif

/* The typed fields of TensorProto, and which one each dtype uses. */
typedef enum Field { F_NONE, F_FLOAT, F_INT32, F_INT64, F_DOUBLE, F_UINT64, F_STRING } Field;
static const char *const field_names[] = {"", "float_data", "int32_data", "int64_data",
                                          "double_data", "uint64_data", "string_data"};

typedef struct DtypeInfo {
  const char *name;     /* nnc's name; NULL: not supported */
  size_t size;
  Field field;
  int64_t lo, hi;       /* F_INT32 and F_UINT64: the range of values */
} DtypeInfo;

static const DtypeInfo dtypes[] = {
  [ONNX_F32] = {"f32", 4, F_FLOAT, 0, 0},
  [ONNX_U8] = {"u8", 1, F_INT32, 0, UINT8_MAX},
  [ONNX_I8] = {"i8", 1, F_INT32, INT8_MIN, INT8_MAX},
  [ONNX_U16] = {"u16", 2, F_INT32, 0, UINT16_MAX},
  [ONNX_I16] = {"i16", 2, F_INT32, INT16_MIN, INT16_MAX},
  [ONNX_I32] = {"i32", 4, F_INT32, INT32_MIN, INT32_MAX},
  [ONNX_I64] = {"i64", 8, F_INT64, 0, 0},
  [ONNX_BOOL] = {"bool", 1, F_INT32, 0, 1},
  [ONNX_F16] = {"f16", 2, F_INT32, 0, UINT16_MAX},
  [ONNX_F64] = {"f64", 8, F_DOUBLE, 0, 0},
  [ONNX_U32] = {"u32", 4, F_UINT64, 0, UINT32_MAX},
  [ONNX_U64] = {"u64", 8, F_UINT64, 0, 0},
  [ONNX_BF16] = {"bf16", 2, F_INT32, 0, UINT16_MAX},
};
enum { N_DTYPES = sizeof dtypes / sizeof dtypes[0] };

/* ONNX's names of the types the reader refuses, for messages. */
static const char *const onnx_type_names[] = {
  "UNDEFINED", "FLOAT", "UINT8", "INT8", "UINT16", "INT16", "INT32", "INT64", "STRING", "BOOL",
  "FLOAT16", "DOUBLE", "UINT32", "UINT64", "COMPLEX64", "COMPLEX128", "BFLOAT16",
  "FLOAT8E4M3FN", "FLOAT8E4M3FNUZ", "FLOAT8E5M2", "FLOAT8E5M2FNUZ", "UINT4", "INT4",
  "FLOAT4E2M1"};

static const DtypeInfo *info_of(int32_t t) {
  return t > 0 && t < N_DTYPES && dtypes[t].name ? &dtypes[t] : NULL;
}

const char *onnx_dtype_name(OnnxDtype t) {
  const DtypeInfo *d = info_of(t);
  return d ? d->name : "undefined";
}

size_t onnx_dtype_size(OnnxDtype t) {
  const DtypeInfo *d = info_of(t);
  return d ? d->size : 0;
}

int onnx_check_dtype(OnnxReader *r, int32_t type, const char *where, OnnxDtype *out) {
  if (info_of(type)) {
    *out = (OnnxDtype)type;
    return 0;
  }
  int n = sizeof onnx_type_names / sizeof onnx_type_names[0];
  const char *name = type >= 0 && type < n ? onnx_type_names[type] : "unknown";
  if (type == 0) return onnx_fail(r, "%s: has no data type", where);
  return onnx_fail(r, "%s: data type %s (%" PRId32 ") is not supported (supported: float, double, "
                   "float16, bfloat16, int8 to int64, uint8 to uint64, bool)", where, name, type);
}

const char *onnx_describe(char *buf, size_t size, OnnxDtype dtype, int rank, const int64_t *dims) {
  size_t o = (size_t)snprintf(buf, size, "%s[", onnx_dtype_name(dtype));
  for (int i = 0; i < rank && o < size; i++)
    o += (size_t)snprintf(buf + o, size - o, "%s%" PRId64, i ? ", " : "", dims[i]);
  if (o < size) snprintf(buf + o, size - o, "]");
  return buf;
}

/* dtype, rank, dims, numel and nbytes of `tp`, checked. */
static int read_shape(OnnxReader *r, const Onnx__TensorProto *tp, const char *where, OnnxTensor *t) {
  if (onnx_check_dtype(r, tp->has_data_type ? tp->data_type : 0, where, &t->dtype)) return -1;
  if (tp->n_dims > ONNX_MAX_RANK)
    return onnx_fail(r, "%s: rank %zu, expected at most %d", where, tp->n_dims, ONNX_MAX_RANK);
  t->rank = (int)tp->n_dims;
  t->numel = 1;
  for (int i = 0; i < t->rank; i++) {
    int64_t d = tp->dims[i];
    if (d < 0) return onnx_fail(r, "%s: dim %d is %" PRId64 ", expected >= 0", where, i, d);
    t->dims[i] = d;
    if (d && t->numel > INT64_MAX / d) {
      char shape[256];
      t->rank = (int)tp->n_dims; /* all dims, for the message */
      for (int k = i; k < t->rank; k++) t->dims[k] = tp->dims[k];
      return onnx_fail(r, "%s: the element count of %s overflows", where,
                       onnx_describe(shape, sizeof shape, t->dtype, t->rank, t->dims));
    }
    t->numel *= d;
  }
  size_t size = dtypes[t->dtype].size;
  if ((uint64_t)t->numel > (uint64_t)(INT64_MAX / 2) / size || (uint64_t)t->numel > SIZE_MAX / size) {
    char shape[256];
    return onnx_fail(r, "%s: %s takes more than 2^62 bytes", where,
                     onnx_describe(shape, sizeof shape, t->dtype, t->rank, t->dims));
  }
  t->nbytes = (size_t)t->numel * size;
  return 0;
}

/* The number of values in a typed field. */
static size_t typed_count(const Onnx__TensorProto *tp, Field f) {
  switch (f) {
  case F_FLOAT: return tp->n_float_data;
  case F_INT32: return tp->n_int32_data;
  case F_INT64: return tp->n_int64_data;
  case F_DOUBLE: return tp->n_double_data;
  case F_UINT64: return tp->n_uint64_data;
  case F_STRING: return tp->n_string_data;
  default: return 0;
  }
}

/* int32_data (or uint64_data) values into elements of `size` bytes, each in [lo, hi]. */
static int copy_ints(OnnxReader *r, const Onnx__TensorProto *tp, const OnnxTensor *t,
                     const char *where, unsigned char *dst) {
  const DtypeInfo *d = &dtypes[t->dtype];
  for (int64_t i = 0; i < t->numel; i++) {
    int64_t v;
    if (d->field == F_UINT64) {
      if (tp->uint64_data[i] > (uint64_t)d->hi)
        return onnx_fail(r, "%s: uint64_data[%" PRId64 "] is %" PRIu64 ", out of range for %s",
                         where, i, tp->uint64_data[i], d->name);
      v = (int64_t)tp->uint64_data[i];
    } else {
      v = tp->int32_data[i];
      if (v < d->lo || v > d->hi)
        return onnx_fail(r, "%s: int32_data[%" PRId64 "] is %" PRId64 ", out of range for %s",
                         where, i, v, d->name);
    }
    uint64_t u = (uint64_t)v; /* little-endian: the low `size` bytes */
    memcpy(dst + (size_t)i * d->size, &u, d->size);
  }
  return 0;
}

/* Data from the typed field `have` (checked to be the dtype's and to hold numel values). */
static int read_typed(OnnxReader *r, const Onnx__TensorProto *tp, OnnxTensor *t, Field have,
                      const char *where, const char *shape) {
  const DtypeInfo *d = &dtypes[t->dtype];
  if (have != d->field)
    return onnx_fail(r, "%s: holds %s, expected %s or raw_data for %s", where,
                     field_names[have], field_names[d->field], shape);
  size_t n = typed_count(tp, have);
  if (n != (uint64_t)t->numel)
    return onnx_fail(r, "%s: %s holds %zu values, expected %" PRId64 " for %s", where,
                     field_names[have], n, t->numel, shape);
  unsigned char *dst = onnx_arena_alloc(r->arena, t->nbytes);
  if (!dst) return onnx_out_of_memory(r, where);
  t->data = dst;
  switch (have) {
  case F_FLOAT: memcpy(dst, tp->float_data, t->nbytes); return 0;
  case F_INT64: memcpy(dst, tp->int64_data, t->nbytes); return 0;
  case F_DOUBLE: memcpy(dst, tp->double_data, t->nbytes); return 0;
  case F_UINT64:
    if (t->dtype == ONNX_U64) {
      memcpy(dst, tp->uint64_data, t->nbytes);
      return 0;
    }
    return copy_ints(r, tp, t, where, dst);
  default: return copy_ints(r, tp, t, where, dst);
  }
}

static int read_raw(OnnxReader *r, const Onnx__TensorProto *tp, OnnxTensor *t,
                    const char *where, const char *shape) {
  if (tp->raw_data.len != t->nbytes)
    return onnx_fail(r, "%s: raw_data holds %zu bytes, expected %zu for %s", where,
                     tp->raw_data.len, t->nbytes, shape);
  unsigned char *dst = onnx_arena_alloc(r->arena, t->nbytes);
  if (!dst) return onnx_out_of_memory(r, where);
  if (t->nbytes) memcpy(dst, tp->raw_data.data, t->nbytes);
  t->data = dst;
  return 0;
}

/* No data at all: only right for a tensor without elements. */
static int read_empty(OnnxReader *r, OnnxTensor *t, const char *where, const char *shape) {
  if (t->numel)
    return onnx_fail(r, "%s: holds no data, expected %zu bytes for %s", where, t->nbytes, shape);
  if (!(t->data = onnx_arena_alloc(r->arena, 0))) return onnx_out_of_memory(r, where);
  return 0;
}

/* Where the data is: one of raw_data, a typed field (*typed), external data; -1 with a
 * message naming them when several hold data. */
typedef enum Source { S_NONE, S_RAW, S_TYPED, S_EXTERNAL } Source;
static int data_source(OnnxReader *r, const Onnx__TensorProto *tp, const char *where, Field *typed) {
  bool external = tp->has_data_location && tp->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
  if (tp->has_data_location && !external && tp->data_location != ONNX__TENSOR_PROTO__DATA_LOCATION__DEFAULT)
    return onnx_fail(r, "%s: data_location is %d, expected 0 (DEFAULT) or 1 (EXTERNAL)", where,
                     (int)tp->data_location);
  if (tp->segment) return onnx_fail(r, "%s: segmented tensors are not supported", where);
  if (!external && tp->n_external_data)
    return onnx_fail(r, "%s: has external_data entries but data_location is not EXTERNAL", where);
  const char *held[8];
  int n = 0;
  *typed = F_NONE;
  if (external) held[n++] = "external data";
  if (tp->has_raw_data) held[n++] = "raw_data";
  for (Field f = F_FLOAT; f <= F_STRING; f++)
    if (typed_count(tp, f)) held[n++] = field_names[*typed = f];
  if (n > 1)
    return onnx_fail(r, "%s: holds both %s and %s, expected one of them", where, held[0], held[1]);
  return external ? S_EXTERNAL : tp->has_raw_data ? S_RAW : *typed ? S_TYPED : S_NONE;
}

/* A bool tensor's bytes must be 0 or 1 (nnc reads them as numbers). */
static int check_bools(OnnxReader *r, const OnnxTensor *t, const char *where) {
  const unsigned char *b = t->data;
  for (size_t i = 0; i < t->nbytes; i++)
    if (b[i] > 1) return onnx_fail(r, "%s: bool element %zu is %u, expected 0 or 1", where, i, b[i]);
  return 0;
}

int onnx_read_tensor(OnnxReader *r, const Onnx__TensorProto *tp, const char *where,
                     OnnxTensor *t) {
  memset(t, 0, sizeof *t);
  if (!(t->name = onnx_name(r, tp->name, where, "the name"))) return -1;
  Field typed = F_NONE;
  int source;
  if (read_shape(r, tp, where, t) || (source = data_source(r, tp, where, &typed)) < 0) return -1;
  char shape[256];
  onnx_describe(shape, sizeof shape, t->dtype, t->rank, t->dims);
  int rc = source == S_RAW        ? read_raw(r, tp, t, where, shape)
           : source == S_TYPED    ? read_typed(r, tp, t, typed, where, shape)
           : source == S_EXTERNAL ? onnx_read_external(r, tp, where, shape, t)
                                  : read_empty(r, t, where, shape);
  return rc ? rc : t->dtype == ONNX_BOOL ? check_bools(r, t, where) : 0;
}
