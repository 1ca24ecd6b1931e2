/* diag.h — user-facing diagnostics: `file:line:col: error: message`, the source line and a
 * caret under the column.  A Diag collects the first error of a stage; stages stop at it
 * and return failure, so nothing ever exits from inside the library. */
#ifndef NNC_DIAG_H
#define NNC_DIAG_H

#include <stdarg.h>
#include <stdio.h>
#include "ast.h"

typedef struct Diag {
  const SrcFile *file;
  int has_error;
  char text[2048]; /* the formatted diagnostic: three lines, ending in '\n' */
} Diag;

void diag_init(Diag *d, const SrcFile *file);
/* Record an error at `loc` (only the first one is kept).  Always returns 0 so callers can
 * write `return diag_error(...)`. */
int diag_error(Diag *d, SrcLoc loc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* After an error: append the line `path:LINE:COL: note: MESSAGE` (what was being done). */
void diag_note(Diag *d, SrcLoc loc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* An error without a source position (e.g. about a weights file): `path: error: message`. */
int diag_error_file(Diag *d, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The length of the valid UTF-8 character at s[0..n), or 0 when it is not one. */
size_t utf8_char_len(const unsigned char *s, size_t n);

#endif
