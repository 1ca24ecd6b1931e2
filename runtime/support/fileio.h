/* fileio.h — what the safetensors and .npy loaders share with the compiler (its source
 * reader, the compile cache): reading or mapping a whole file, whole reads and writes of a
 * descriptor, and the loaders' error messages.  Part of the support
 * library: libc only, symbols hidden.  Only regular files are read, and their size is checked
 * before anything is read: /dev/zero, a pipe or a directory is an error, not an endless read. */
#ifndef NNC_FILEIO_H
#define NNC_FILEIO_H

#include <stddef.h>

/* Read all of `path` into a malloc'd buffer: *buf (followed by one NUL byte, not counted, so
 * text can be used as a C string) and *len.  `max` > 0 refuses larger files.  Returns 0, or
 * -1 with the reason ("cannot open: No such file or directory", "not a regular file (a
 * character device)", "read error: ...", "file larger than N bytes (it has M)", "out of
 * memory reading the file") in err, without the path. */
int nnc_read_file(const char *path, size_t max, unsigned char **buf, size_t *len, char *err,
                  size_t errlen);
/* Reads up to n bytes from fd into buf, retrying short reads and EINTR: fewer only at the
 * end of the file.  Returns how many, or -1 on a read error (errno set). */
long long nnc_read_fd(int fd, void *buf, size_t n);
/* Writes all n bytes of buf to fd, retrying short writes and EINTR.  0, or -1 (errno set). */
int nnc_write_fd(int fd, const void *buf, size_t n);

/* Map all of `path` read-only (large weights files are not read into memory): *data[*len],
 * released with nnc_unmap_file.  The same checks and messages as nnc_read_file. */
int nnc_map_file(const char *path, size_t max, const unsigned char **data, size_t *len,
                 char *err, size_t errlen);
void nnc_unmap_file(const unsigned char *data, size_t len);

/* Where a loader's error goes: "WHAT: error: ..." into err[errlen] (err NULL: nowhere). */
typedef struct NncDiag {
  const char *what; /* the file's path, or NULL for "<memory>" */
  char *err;
  size_t errlen;
} NncDiag;

/* Write "WHAT: error: " and the printf-style message into d->err, cut to fit; returns -1. */
int nnc_fail(NncDiag *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
