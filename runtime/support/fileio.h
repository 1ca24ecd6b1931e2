/* fileio.h — what the safetensors and .npy loaders share: reading a whole file into memory
 * (meant for the compiler's source reader too) and their error messages.  Part of the support
 * library: libc only, symbols hidden. */
#ifndef NNC_FILEIO_H
#define NNC_FILEIO_H

#include <stddef.h>

/* Read all of `path` into a malloc'd buffer: *buf (followed by one NUL byte, not counted, so
 * text can be used as a C string) and *len.  `max` > 0 refuses larger files.  Returns 0, or
 * -1 with the reason ("cannot open: No such file or directory", "read error: ...", "file
 * larger than N bytes", "out of memory reading the file") in err, without the path. */
int nnc_read_file(const char *path, size_t max, unsigned char **buf, size_t *len, char *err,
                  size_t errlen);

/* Where a loader's error goes: "WHAT: error: ..." into err[errlen] (err NULL: nowhere). */
typedef struct NncDiag {
  const char *what; /* the file's path, or NULL for "<memory>" */
  char *err;
  size_t errlen;
} NncDiag;

/* Write "WHAT: error: " and the printf-style message into d->err, cut to fit; returns -1. */
int nnc_fail(NncDiag *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
