/* onnx_external.c — a tensor's external data: its `external_data` entries (location, offset,
 * length; checksum and unknown keys ignored), the location checked to stay inside the model's
 * folder — relative, no `..` component, and its real path (symbolic links resolved) under the
 * folder's real path — then the file (regular, mapped: fileio.h) holding offset + length
 * bytes, exactly the tensor's size. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fileio.h"
#include "onnx_internal.h"

typedef struct ExtRef {
  const char *location;
  uint64_t offset, length;
  bool has_offset, has_length;
} ExtRef;

/* A decimal number without sign or spaces, as ONNX writes offset and length. */
static bool parse_u64(const char *s, uint64_t *v) {
  *v = 0;
  if (!*s) return false;
  for (; *s; s++) {
    if (*s < '0' || *s > '9' || *v > (UINT64_MAX - 9) / 10) return false;
    *v = *v * 10 + (uint64_t)(*s - '0');
  }
  return true;
}

static int number_entry(OnnxReader *r, const char *where, const char *key, const char *value,
                        bool *has, uint64_t *v) {
  char clip[ONNX_CLIP_SIZE];
  if (*has) return onnx_fail(r, "%s: external_data has '%s' twice", where, key);
  if (!parse_u64(value, v))
    return onnx_fail(r, "%s: external_data '%s' is '%s', expected a decimal number of bytes",
                     where, key, onnx_clip(clip, value));
  *has = true;
  return 0;
}

static int read_entries(OnnxReader *r, const Onnx__TensorProto *tp, const char *where, ExtRef *e) {
  memset(e, 0, sizeof *e);
  for (size_t i = 0; i < tp->n_external_data; i++) {
    const char *key = tp->external_data[i]->key ? tp->external_data[i]->key : "";
    const char *value = tp->external_data[i]->value ? tp->external_data[i]->value : "";
    if (strcmp(key, "location") == 0) {
      if (e->location) return onnx_fail(r, "%s: external_data has 'location' twice", where);
      e->location = value;
    } else if (strcmp(key, "offset") == 0) {
      if (number_entry(r, where, key, value, &e->has_offset, &e->offset)) return -1;
    } else if (strcmp(key, "length") == 0) {
      if (number_entry(r, where, key, value, &e->has_length, &e->length)) return -1;
    }
  }
  if (!e->location) return onnx_fail(r, "%s: external data without a 'location'", where);
  return 0;
}

/* The location is relative and has no `..` component. */
static int check_location(OnnxReader *r, const char *where, const char *loc) {
  char clip[ONNX_CLIP_SIZE];
  if (!*loc) return onnx_fail(r, "%s: external data location is empty", where);
  if (strnlen(loc, ONNX_MAX_NAME + 1) > ONNX_MAX_NAME)
    return onnx_fail(r, "%s: external data location is longer than %d bytes", where, ONNX_MAX_NAME);
  if (loc[0] == '/')
    return onnx_fail(r, "%s: external data location '%s' is an absolute path, expected a path "
                     "relative to the model's folder", where, onnx_clip(clip, loc));
  for (const char *p = loc; *p;) {
    size_t n = strcspn(p, "/");
    if (n == 2 && p[0] == '.' && p[1] == '.')
      return onnx_fail(r, "%s: external data location '%s' has a '..' component, expected a path "
                       "inside the model's folder", where, onnx_clip(clip, loc));
    p += n;
    p += *p == '/';
  }
  return 0;
}

/* The real path of dir/loc into a malloc'd *out, checked to be under the real path of dir. */
static int resolve(OnnxReader *r, const char *where, const char *loc, char **out) {
  char clip[ONNX_CLIP_SIZE], clip2[ONNX_CLIP_SIZE];
  *out = NULL;
  char *rdir = realpath(r->dir, NULL);
  if (!rdir)
    return onnx_fail(r, "%s: cannot resolve the model's folder '%s': %s", where,
                     onnx_clip(clip, r->dir), strerror(errno));
  size_t ndir = strlen(rdir);
  char *joined = malloc(strlen(r->dir) + strlen(loc) + 2);
  if (!joined) {
    free(rdir);
    return onnx_out_of_memory(r, where);
  }
  sprintf(joined, "%s/%s", r->dir, loc);
  char *real = realpath(joined, NULL);
  int e = errno;
  free(joined);
  int rc = 0;
  if (!real)
    rc = onnx_fail(r, "%s: external data '%s': cannot open: %s", where, onnx_clip(clip, loc), strerror(e));
  else if (!(ndir == 1 || (strncmp(real, rdir, ndir) == 0 && real[ndir] == '/')))
    rc = onnx_fail(r, "%s: external data '%s' resolves to '%s', outside the model's folder "
                   "(a symbolic link?)", where, onnx_clip(clip, loc), onnx_clip(clip2, real));
  free(rdir);
  if (rc) free(real);
  else *out = real;
  return rc;
}

/* The range [offset, offset + nbytes) of a file of `size` bytes, checked. */
static int check_range(OnnxReader *r, const char *where, const char *shape, const ExtRef *e,
                       size_t size, size_t nbytes) {
  char clip[ONNX_CLIP_SIZE];
  const char *loc = onnx_clip(clip, e->location);
  if (e->offset > size)
    return onnx_fail(r, "%s: external data '%s': offset %" PRIu64 " is past the end of the file "
                     "(%zu bytes)", where, loc, e->offset, size);
  if (e->has_length && e->length != nbytes)
    return onnx_fail(r, "%s: external data '%s': length is %" PRIu64 " bytes, expected %zu for %s",
                     where, loc, e->length, nbytes, shape);
  if (e->has_length && nbytes > size - e->offset)
    return onnx_fail(r, "%s: external data '%s': offset %" PRIu64 " + length %zu runs past the end "
                     "of the file (%zu bytes)", where, loc, e->offset, nbytes, size);
  if (!e->has_length && size - e->offset != nbytes)
    return onnx_fail(r, "%s: external data '%s' holds %zu bytes from offset %" PRIu64 " to its end, "
                     "expected %zu for %s", where, loc, size - e->offset, e->offset, nbytes, shape);
  return 0;
}

int onnx_read_external(OnnxReader *r, const Onnx__TensorProto *tp, const char *where,
                       const char *shape, OnnxTensor *t) {
  ExtRef e;
  char clip[ONNX_CLIP_SIZE], err[512];
  if (read_entries(r, tp, where, &e) || check_location(r, where, e.location)) return -1;
  if (!r->dir)
    return onnx_fail(r, "%s: external data '%s' cannot be read: the model was not read from a file",
                     where, onnx_clip(clip, e.location));
  char *real;
  if (resolve(r, where, e.location, &real)) return -1;
  const unsigned char *data;
  size_t size;
  int rc = nnc_map_file(real, 0, &data, &size, err, sizeof err);
  free(real);
  if (rc) return onnx_fail(r, "%s: external data '%s': %s", where, onnx_clip(clip, e.location), err);
  if (!(rc = check_range(r, where, shape, &e, size, t->nbytes))) {
    unsigned char *dst = onnx_arena_alloc(r->arena, t->nbytes);
    if (dst) memcpy(dst, data + e.offset, t->nbytes);
    else rc = onnx_out_of_memory(r, where);
    t->data = dst;
  }
  nnc_unmap_file(data, size);
  r->n_external++;
  return rc;
}
