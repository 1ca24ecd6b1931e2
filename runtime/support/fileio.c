/* fileio.c — nnc_read_file and nnc_fail (fileio.h). */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "fileio.h"

static int fail(char *err, size_t errlen, const char *what, const char *detail) {
  if (err && errlen) snprintf(err, errlen, "%s%s%s", what, detail ? ": " : "", detail ? detail : "");
  return -1;
}

int nnc_read_file(const char *path, size_t max, unsigned char **buf, size_t *len, char *err,
                  size_t errlen) {
  *buf = NULL;
  *len = 0;
  FILE *f = fopen(path, "rb");
  if (!f) return fail(err, errlen, "cannot open", strerror(errno));
  size_t cap = 1 << 16, n = 0;
  unsigned char *b = malloc(cap + 1);
  int rc = 0, saved = 0;
  for (size_t r; b && (r = fread(b + n, 1, cap - n, f)) > 0;) {
    n += r;
    if (max && n > max) {
      char lim[64];
      snprintf(lim, sizeof lim, "file larger than %zu bytes", max);
      rc = fail(err, errlen, lim, NULL);
      break;
    }
    if (n < cap) continue;
    unsigned char *nb = cap > (SIZE_MAX - 1) / 2 ? NULL : realloc(b, cap * 2 + 1);
    if (!nb) {
      free(b);
      b = NULL;
      break;
    }
    b = nb;
    cap *= 2;
  }
  if (ferror(f)) saved = errno ? errno : EIO;
  fclose(f);
  if (!rc && !b) rc = fail(err, errlen, "out of memory reading the file", NULL);
  if (!rc && saved) rc = fail(err, errlen, "read error", strerror(saved));
  if (rc) {
    free(b);
    return -1;
  }
  b[n] = 0;
  *buf = b;
  *len = n;
  return 0;
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
