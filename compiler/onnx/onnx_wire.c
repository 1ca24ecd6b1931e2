/* onnx_wire.c — a walk over the protobuf wire format of a model before protobuf-c unpacks it.
 *
 * protobuf-c recurses once per nested message without a limit, so a few hundred kilobytes of
 * nested attributes and subgraphs would overflow the stack; and it says only that unpacking
 * failed, not where.  This walk follows the schema's descriptors (onnx.pb-c.c): it checks every
 * key, varint and length against the bytes of its message, descends into the fields that are
 * messages (at most ONNX_MAX_DEPTH deep, counted on an explicit path, recursion bounded by
 * it), and names the byte and the fields around a fault:
 *   model.onnx: error: malformed protobuf at byte 1234 (ModelProto.graph.node): a length of
 *   5000 bytes runs past the end of its message (88 bytes left) */
#include <stdio.h>
#include <string.h>

#include "onnx_internal.h"

typedef struct Wire {
  OnnxReader *r;
  const uint8_t *data;
  const char *path[ONNX_MAX_DEPTH + 1]; /* the message's type, then the fields descended into */
  int depth;
} Wire;

/* The message at byte `at`, naming the fields descended into and the field `f` being read
 * (NULL: none, or one the schema does not know). */
static int wire_fail(Wire *w, size_t at, const ProtobufCFieldDescriptor *f, const char *what) {
  char where[512];
  size_t o = 0;
  for (int i = 0; i <= w->depth + (f != NULL) && o < sizeof where; i++) {
    int n = snprintf(where + o, sizeof where - o, "%s%s", i ? "." : "", i > w->depth ? f->name : w->path[i]);
    if (n < 0) break;
    o += (size_t)n;
  }
  return onnx_fail(w->r, "malformed protobuf at byte %zu (%s): %s", at, where, what);
}

/* A varint at data[*pos..end) into *v; -1 when it runs past end or over 10 bytes. */
static int varint(const uint8_t *data, size_t *pos, size_t end, uint64_t *v) {
  *v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (*pos >= end) return -1;
    uint8_t b = data[(*pos)++];
    if (shift == 63 && b > 1) return -1;
    *v |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) return 0;
  }
  return -1;
}

static int scan(Wire *w, const ProtobufCMessageDescriptor *desc, size_t pos, size_t end);

/* A length-delimited field at data[*pos..end): descend when it is a message of the schema. */
static int scan_delimited(Wire *w, const ProtobufCFieldDescriptor *f, size_t *pos, size_t end) {
  size_t at = *pos;
  uint64_t len;
  char what[160];
  if (varint(w->data, pos, end, &len)) return wire_fail(w, at, f, "a length runs past the end of its message");
  if (len > end - *pos) {
    snprintf(what, sizeof what, "a length of %llu bytes runs past the end of %s (%zu bytes left)",
             (unsigned long long)len, w->depth ? "its message" : "the file", end - *pos);
    return wire_fail(w, at, f, what);
  }
  size_t begin = *pos;
  *pos += (size_t)len;
  if (!f || f->type != PROTOBUF_C_TYPE_MESSAGE) return 0;
  if (w->depth >= ONNX_MAX_DEPTH) {
    snprintf(what, sizeof what, "messages nested more than %d deep", ONNX_MAX_DEPTH);
    return wire_fail(w, begin, f, what);
  }
  w->path[++w->depth] = f->name;
  int rc = scan(w, f->descriptor, begin, begin + (size_t)len);
  w->depth--;
  return rc;
}

/* One field (key, then value) at data[*pos..end). */
static int scan_field(Wire *w, const ProtobufCMessageDescriptor *desc, size_t *pos, size_t end) {
  size_t at = *pos;
  uint64_t key, v;
  char what[160];
  if (varint(w->data, pos, end, &key)) return wire_fail(w, at, NULL, "a field key runs past the end of its message");
  uint64_t number = key >> 3;
  unsigned type = key & 7;
  if (number == 0 || number > 536870911u) {
    snprintf(what, sizeof what, "field number %llu, expected 1 to 2^29 - 1", (unsigned long long)number);
    return wire_fail(w, at, NULL, what);
  }
  const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field(desc, (unsigned)number);
  if (f && f->type == PROTOBUF_C_TYPE_MESSAGE && type != 2) {
    snprintf(what, sizeof what, "field '%s' is a message but has wire type %u, expected 2", f->name, type);
    return wire_fail(w, at, f, what);
  }
  switch (type) {
  case 0:
    if (varint(w->data, pos, end, &v)) return wire_fail(w, at, f, "a varint runs past the end of its message");
    return 0;
  case 1:
  case 5: {
    size_t n = type == 1 ? 8 : 4;
    if (end - *pos < n) return wire_fail(w, at, f, "a fixed-size value runs past the end of its message");
    *pos += n;
    return 0;
  }
  case 2: return scan_delimited(w, f, pos, end);
  default:
    snprintf(what, sizeof what, "wire type %u (field %llu), expected 0, 1, 2 or 5 (ONNX has no groups)",
             type, (unsigned long long)number);
    return wire_fail(w, at, f, what);
  }
}

static int scan(Wire *w, const ProtobufCMessageDescriptor *desc, size_t pos, size_t end) {
  while (pos < end)
    if (scan_field(w, desc, &pos, end)) return -1;
  return 0;
}

int onnx_wire_check(OnnxReader *r, const uint8_t *data, size_t len,
                    const ProtobufCMessageDescriptor *desc) {
  Wire w = {.r = r, .data = data, .depth = 0};
  w.path[0] = desc->short_name;
  return scan(&w, desc, 0, len);
}
