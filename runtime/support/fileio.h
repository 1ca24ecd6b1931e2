/* fileio.h — reading a whole file into memory, shared by the safetensors and .npy readers
 * (and meant for the compiler's source reader too).  Part of the support library: libc only. */
#ifndef NNC_FILEIO_H
#define NNC_FILEIO_H

#include <stddef.h>

/* Read all of `path` into a malloc'd buffer: *buf (followed by one NUL byte, not counted, so
 * text can be used as a C string) and *len.  `max` > 0 refuses larger files.  Returns 0, or
 * -1 with the reason ("cannot open: No such file or directory", "read error: ...", "file
 * larger than N bytes", "out of memory reading the file") in err, without the path. */
int nnc_read_file(const char *path, size_t max, unsigned char **buf, size_t *len, char *err,
                  size_t errlen);

#endif
