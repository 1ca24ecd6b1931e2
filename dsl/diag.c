/* diag.c — formats the first error of a stage as
 *
 *     path:LINE:COL: error: MESSAGE
 *     <the source line>
 *     <spaces>^
 *
 * The caret line copies tabs from the source line so the caret lines up, and skips UTF-8
 * continuation bytes so it lines up under multi-byte characters too (COL stays in bytes).
 * Lines too long for Diag.text are shown as a window around the column.  Bytes that would
 * not print as themselves (control bytes but tab, invalid UTF-8) are shown as \xNN, in the
 * source line as in the message and path, so a diagnostic never writes raw binary to a
 * terminal.  A location names its file (SrcLoc.file): the main file or one it includes.
 * A note (`path:LINE:COL: note: ...`, one line) may follow the error to say where it arose.
 */
#include "diag.h"

#include <string.h>

enum { LINE_BUDGET = 480 }; /* bytes of source line shown; fits Diag.text with the header */

void diag_init(Diag *d, const SrcFile *file) {
  memset(d, 0, sizeof *d);
  d->file = file;
}

const SrcFile *srcfile_of(const SrcFile *main, SrcLoc loc) {
  return main && loc.file > 0 && loc.file < main->nfiles ? main->files[loc.file] : main;
}

static const char *path_of(const SrcFile *f) { return f && f->path ? f->path : "<input>"; }
static const char *diag_path(const Diag *d) { return path_of(d->file); }

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

size_t utf8_char_len(const unsigned char *s, size_t n) {
  if (n == 0) return 0;
  unsigned c = s[0];
  if (c < 0x80) return 1;
  size_t len = c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
  if (len == 0 || len > n) return 0;
  for (size_t i = 1; i < len; i++)
    if ((s[i] & 0xc0) != 0x80) return 0;
  if (c == 0xe0 && s[1] < 0xa0) return 0; /* overlong */
  if (c == 0xed && s[1] > 0x9f) return 0; /* surrogate */
  if (c == 0xf0 && s[1] < 0x90) return 0; /* overlong */
  if (c == 0xf4 && s[1] > 0x8f) return 0; /* above U+10FFFF */
  return len;
}

/* How the character at s[0] is shown: the number of bytes it takes in the source (*len) and
 * whether it is escaped as \xNN (1) or copied as is (0). */
static int shown_escaped(const unsigned char *s, size_t n, size_t *len) {
  if (s[0] < 0x80) {
    *len = 1;
    return (s[0] < 0x20 && s[0] != '\t') || s[0] == 0x7f;
  }
  *len = utf8_char_len(s, n);
  if (*len) return 0;
  *len = 1;
  return 1;
}

/* Copies s[0..n) to out (at most cap bytes, never cutting a character or an escape), with
 * bytes that do not print as themselves written \xNN.  Returns the bytes written. */
static size_t put_escaped(char *out, size_t cap, const char *s, size_t n) {
  const unsigned char *u = (const unsigned char *)s;
  size_t o = 0;
  for (size_t i = 0, len; i < n; i += len) {
    if (shown_escaped(u + i, n - i, &len)) {
      if (o + 4 > cap) break;
      snprintf(out + o, 5, "\\x%02x", u[i]);
      o += 4;
    } else {
      if (o + len > cap) break;
      memcpy(out + o, s + i, len);
      o += len;
    }
  }
  return o;
}

/* Appends the source line and the caret line for column `col`. */
static void append_excerpt(Diag *d, size_t at, const SrcFile *file, int line, int col) {
  size_t start, len;
  if (!find_line(file, line, &start, &len)) len = 0, start = 0;
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
  const char *src = file && file->text ? file->text + start : "";
  const unsigned char *u = (const unsigned char *)src;
  out += put_escaped(out, (size_t)(end - out) / 2, src + from, len - from);
  *out++ = '\n';
  for (size_t i = from, n; i < c && out + 4 <= end; i += n) {
    int esc = shown_escaped(u + i, len - i, &n);
    for (int k = 0; k < (esc ? 4 : 1); k++) *out++ = !esc && u[i] == '\t' ? '\t' : ' ';
  }
  *out++ = '^';
  *out++ = '\n';
  *out = '\0';
}

/* Writes `path:LINE:COL: error: MESSAGE` (`path: error: MESSAGE` without loc), escaped, and a
 * newline into d->text, at most cap bytes; returns the bytes written. */
static size_t put_head(Diag *d, size_t cap, const char *path, const SrcLoc *loc, const char *kind,
                       const char *fmt, va_list ap) {
  char head[sizeof d->text];
  int n = loc ? snprintf(head, sizeof head, "%s:%d:%d: %s: ", path, loc->line, loc->col, kind)
                   : snprintf(head, sizeof head, "%s: %s: ", path, kind);
  if (n < 0) n = 0;
  if ((size_t)n >= sizeof head) n = sizeof head - 1;
  int m = vsnprintf(head + n, sizeof head - n, fmt, ap);
  if (m < 0) m = 0;
  n += m;
  if ((size_t)n >= sizeof head) n = sizeof head - 1;
  size_t o = put_escaped(d->text, cap - 2, head, (size_t)n);
  d->text[o++] = '\n';
  d->text[o] = '\0';
  return o;
}

int diag_error(Diag *d, SrcLoc loc, const char *fmt, ...) {
  if (d->has_error) return 0;
  d->has_error = 1;
  va_list ap;
  va_start(ap, fmt);
  const SrcFile *file = srcfile_of(d->file, loc);
  size_t n = put_head(d, sizeof d->text / 2, path_of(file), &loc, "error", fmt, ap);
  va_end(ap);
  append_excerpt(d, n, file, loc.line, loc.col);
  for (SrcLoc at = loc; at.file > 0 && at.file < d->file->nfiles;) { /* includer indices are smaller */
    const SrcFile *f = d->file->files[at.file];
    at = f->included_at;
    diag_note(d, at, "%s is included here", f->path);
  }
  return 0;
}

void diag_note(Diag *d, SrcLoc loc, const char *fmt, ...) {
  if (!d->has_error) return;
  size_t at = strlen(d->text), room = sizeof d->text - at;
  if (room < 64) return;
  Diag note = {.file = d->file};
  va_list ap;
  va_start(ap, fmt);
  size_t n = put_head(&note, room, path_of(srcfile_of(d->file, loc)), &loc, "note", fmt, ap);
  va_end(ap);
  memcpy(d->text + at, note.text, n + 1);
}

int diag_error_file(Diag *d, const char *path, const char *fmt, ...) {
  if (d->has_error) return 0;
  d->has_error = 1;
  va_list ap;
  va_start(ap, fmt);
  put_head(d, sizeof d->text, path ? path : diag_path(d), NULL, "error", fmt, ap);
  va_end(ap);
  return 0;
}
