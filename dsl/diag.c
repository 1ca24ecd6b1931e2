/* diag.c — formats the first error of a stage as
 *
 *     path:LINE:COL: error: MESSAGE
 *     <the source line>
 *     <spaces>^
 *
 * The caret line copies tabs from the source line so the caret lines up, and skips UTF-8
 * continuation bytes so it lines up under multi-byte characters too (COL stays in bytes).
 * Lines too long for Diag.text are shown as a window around the column.
 */
#include "diag.h"

#include <string.h>

enum { LINE_BUDGET = 480 }; /* bytes of source line shown; fits Diag.text with the header */

void diag_init(Diag *d, const SrcFile *file) {
  memset(d, 0, sizeof *d);
  d->file = file;
}

static const char *diag_path(const Diag *d) {
  return d->file && d->file->path ? d->file->path : "<input>";
}

/* Finds line `line` (1-based) of the file: sets *start and *len (without the newline). */
static int find_line(const SrcFile *f, int line, size_t *start, size_t *len) {
  if (!f || !f->text || line < 1) return 0;
  size_t i = 0;
  for (int l = 1; l < line; l++) {
    const char *nl = memchr(f->text + i, '\n', f->len - i);
    if (!nl) return 0;
    i = (size_t)(nl - f->text) + 1;
  }
  const char *nl = memchr(f->text + i, '\n', f->len - i);
  *start = i;
  *len = nl ? (size_t)(nl - f->text) - i : f->len - i;
  if (*len > 0 && f->text[i + *len - 1] == '\r') (*len)--;
  return 1;
}

/* Appends the source line and the caret line for column `col`. */
static void append_excerpt(Diag *d, size_t at, int line, int col) {
  size_t start, len;
  if (!find_line(d->file, line, &start, &len)) len = 0, start = 0;
  size_t c = col > 0 ? (size_t)col - 1 : 0; /* byte index of the caret in the line */
  size_t from = 0;
  if (len > LINE_BUDGET) {
    from = c > LINE_BUDGET / 2 ? c - LINE_BUDGET / 2 : 0;
    if (from > len - LINE_BUDGET) from = len - LINE_BUDGET;
    len = from + LINE_BUDGET;
  }
  if (c > len) c = len;
  if (c < from) c = from;
  char *out = d->text + at, *end = d->text + sizeof d->text - 4;
  const char *src = d->file && d->file->text ? d->file->text + start : "";
  for (size_t i = from; i < len && out < end; i++) *out++ = src[i] == '\0' ? ' ' : src[i];
  *out++ = '\n';
  for (size_t i = from; i < c && out < end; i++) {
    unsigned char ch = (unsigned char)src[i];
    if ((ch & 0xc0) == 0x80) continue;
    *out++ = ch == '\t' ? '\t' : ' ';
  }
  *out++ = '^';
  *out++ = '\n';
  *out = '\0';
}

int diag_error(Diag *d, SrcLoc loc, const char *fmt, ...) {
  if (d->has_error) return 0;
  d->has_error = 1;
  int n = snprintf(d->text, sizeof d->text / 2, "%s:%d:%d: error: ", diag_path(d), loc.line,
                   loc.col);
  if (n < 0) n = 0;
  if ((size_t)n >= sizeof d->text / 2) n = sizeof d->text / 2 - 1;
  va_list ap;
  va_start(ap, fmt);
  int m = vsnprintf(d->text + n, sizeof d->text / 2 - n, fmt, ap);
  va_end(ap);
  if (m < 0) m = 0;
  n += m;
  if ((size_t)n >= sizeof d->text / 2 - 1) n = sizeof d->text / 2 - 2;
  d->text[n++] = '\n';
  append_excerpt(d, (size_t)n, loc.line, loc.col);
  return 0;
}

int diag_error_file(Diag *d, const char *path, const char *fmt, ...) {
  if (d->has_error) return 0;
  d->has_error = 1;
  int n = snprintf(d->text, sizeof d->text - 1, "%s: error: ", path ? path : diag_path(d));
  if (n < 0) n = 0;
  if ((size_t)n >= sizeof d->text - 1) n = sizeof d->text - 2;
  va_list ap;
  va_start(ap, fmt);
  int m = vsnprintf(d->text + n, sizeof d->text - 1 - n, fmt, ap);
  va_end(ap);
  if (m < 0) m = 0;
  n += m;
  if ((size_t)n >= sizeof d->text - 1) n = sizeof d->text - 2;
  d->text[n++] = '\n';
  d->text[n] = '\0';
  return 0;
}
