/* fileio.c — nnc_read_file, nnc_read_fd, nnc_write_fd, nnc_map_file and nnc_fail (fileio.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include "fileio.h"

static int fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...) {
  if (err && errlen) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
  }
  return -1;
}

static const char *kind_of(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISFIFO(mode)) return "a pipe";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a regular file";
}

/* Open `path` for reading after checking that it is a regular file of at most `max` bytes
 * (0: any size that fits in memory); its size in *size.  Returns the descriptor, or -1. */
static int open_regular(const char *path, size_t max, size_t *size, char *err, size_t errlen) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fail(err, errlen, "cannot open: %s", strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int e = errno;
    close(fd);
    return fail(err, errlen, "cannot stat: %s", strerror(e));
  }
  if (!S_ISREG(st.st_mode)) {
    close(fd);
    return fail(err, errlen, "not a regular file (%s)", kind_of(st.st_mode));
  }
  if ((max && (uint64_t)st.st_size > max) || (uint64_t)st.st_size > SIZE_MAX / 2) {
    close(fd);
    return fail(err, errlen, "file larger than %zu bytes (it has %lld)", max ? max : SIZE_MAX / 2,
                (long long)st.st_size);
  }
  *size = (size_t)st.st_size;
  return fd;
}

long long nnc_read_fd(int fd, void *buf, size_t n) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = read(fd, (char *)buf + got, n - got);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return -1;
    if (r == 0) break;
    got += (size_t)r;
  }
  return (long long)got;
}

int nnc_write_fd(int fd, const void *buf, size_t n) {
  const char *p = buf;
  while (n) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return -1;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

int nnc_read_file(const char *path, size_t max, unsigned char **buf, size_t *len, char *err,
                  size_t errlen) {
  *buf = NULL;
  *len = 0;
  size_t size = 0;
  int fd = open_regular(path, max, &size, err, errlen);
  if (fd < 0) return -1;
  unsigned char *b = malloc(size + 1);
  if (!b) {
    close(fd);
    return fail(err, errlen, "out of memory reading the file (%zu bytes)", size);
  }
  /* a file that shrinks meanwhile ends early; one that grows is cut */
  long long n = nnc_read_fd(fd, b, size);
  int e = errno;
  close(fd);
  if (n < 0) {
    free(b);
    return fail(err, errlen, "read error: %s", strerror(e));
  }
  b[n] = 0;
  *buf = b;
  *len = (size_t)n;
  return 0;
}

int nnc_map_file(const char *path, size_t max, const unsigned char **data, size_t *len,
                 char *err, size_t errlen) {
  *data = NULL;
  *len = 0;
  size_t size = 0;
  int fd = open_regular(path, max, &size, err, errlen);
  if (fd < 0) return -1;
  if (size == 0) {
    close(fd);
    *data = (const unsigned char *)"";
    return 0;
  }
  void *p = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
  int e = errno;
  close(fd);
  if (p == MAP_FAILED) return fail(err, errlen, "cannot map the file: %s", strerror(e));
  *data = p;
  *len = size;
  return 0;
}

void nnc_unmap_file(const unsigned char *data, size_t len) {
  if (data && len) munmap((void *)data, len);
}

int nnc_fail(NncDiag *d, const char *fmt, ...) {
  if (!d->err || d->errlen == 0) return -1;
  int n = snprintf(d->err, d->errlen, "%s: error: ", d->what ? d->what : "<memory>");
  if (n < 0) n = 0;
  if ((size_t)n < d->errlen) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->err + n, d->errlen - (size_t)n, fmt, ap);
    va_end(ap);
  }
  return -1;
}
