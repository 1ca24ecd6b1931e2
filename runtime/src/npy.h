/* npy.h — NumPy .npy reader and writer (formats 1.0, 2.0, 3.0).
 *
 * Supported dtypes: '<f4' (float32) and '<i8' (int64), C order.  Anything else (another
 * dtype, big-endian, Fortran order) is refused with a message naming the file and what was
 * found.  Checked: magic, version, header length <= 10000 bytes, header dict syntax, shape
 * product overflow, data size equal to the shape product times the item size. */
#ifndef NNC_NPY_H
#define NNC_NPY_H

#include <stddef.h>
#include <stdint.h>

enum { NPY_F32 = 0, NPY_I64 = 1 };
#define NPY_MAX_RANK 8

typedef struct NpyArray {
  int dtype;                 /* NPY_F32 or NPY_I64 */
  int rank;
  int64_t shape[NPY_MAX_RANK];
  void *data;                /* owned, malloc'd, 64-byte aligned */
  size_t nbytes;
} NpyArray;

int npy_read(const char *path, NpyArray *out, char *err, size_t errlen);
int npy_read_memory(const void *buf, size_t len, const char *what, NpyArray *out, char *err,
                    size_t errlen);
int npy_write(const char *path, int dtype, int rank, const int64_t *shape, const void *data,
              char *err, size_t errlen);
void npy_free(NpyArray *a); /* harmless on a zeroed NpyArray */

#endif
