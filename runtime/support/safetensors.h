/* safetensors.h — a strict reader of the safetensors format (F32 and I64 tensors).
 *
 * Format: 8-byte little-endian header length H, then H bytes of UTF-8 JSON
 *   {"name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...,
 *    "__metadata__": {"k": "v"}}
 * then the data section; offsets are relative to the data section's start.
 * Checked: H bounded (<= 100 MB) and <= file size - 8 with overflow-safe arithmetic; valid
 * UTF-8 JSON with nothing after it; no duplicate keys; dtype F32 or I64 (others are refused by
 * name); shape entries non-negative and their product times the dtype size equal to
 * end - begin without overflow; offsets sorted, contiguous from 0, without gaps or overlaps,
 * and covering the data section exactly.
 * Part of the support library linked into every generated .so, so it uses only libc. */
#ifndef NNC_SAFETENSORS_H
#define NNC_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

enum { ST_F32 = 0, ST_I64 = 1 };
#define ST_MAX_RANK 8

typedef struct StTensor {
  char *name;
  int dtype;                /* ST_F32 or ST_I64 */
  int rank;
  int64_t shape[ST_MAX_RANK];
  const void *data;         /* points into StFile.bytes; 8-byte aligned copy guaranteed */
  size_t nbytes;
} StTensor;

typedef struct StFile {
  unsigned char *bytes;     /* owned: the data section (copied to be aligned) */
  StTensor *tensors;        /* owned, sorted by data offset */
  int count;
} StFile;

/* Read and validate `path` (a regular file, mapped rather than read: nnc_map_file).  On
 * failure returns -1 and writes
 * "PATH: error: what was wrong (where, what was expected)" into err. */
int st_read_file(const char *path, StFile *out, char *err, size_t errlen);
/* Same, from memory (`what` names the source in messages). */
int st_read_memory(const void *buf, size_t len, const char *what, StFile *out, char *err,
                   size_t errlen);
const StTensor *st_find(const StFile *f, const char *name);
void st_free(StFile *f); /* zeroes *f; harmless on a zeroed StFile */

/* Write tensors to a safetensors file (used by tests and tools). */
int st_write_file(const char *path, const StTensor *tensors, int count, char *err,
                  size_t errlen);

#endif
