/* onnx_util.c — the ONNX reader's messages and name sets (onnx_internal.h).
 *
 * Its arena is the compiler's (dsl/arena.h) used through arena_try_alloc: the reader runs
 * outside a compilation too (the fuzz target, tools), so running out of memory is a message
 * it returns, not a jump to a compilation's recovery point. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diag.h"
#include "onnx_internal.h"

/* ---- messages ---- */

/* Appends s[0..n) to out[o..cap) with bytes that would not print as themselves (control
 * bytes, invalid UTF-8) as \xNN; returns the new length. */
static size_t put_escaped(char *out, size_t o, size_t cap, const char *s, size_t n) {
  const unsigned char *u = (const unsigned char *)s;
  for (size_t i = 0, len; i < n; i += len) {
    len = u[i] < 0x80 ? 1 : utf8_char_len(u + i, n - i);
    bool escape = len == 0 || (u[i] < 0x20 && u[i] != '\t') || u[i] == 0x7f;
    if (escape) {
      len = 1;
      if (o + 4 >= cap) break;
      snprintf(out + o, 5, "\\x%02x", u[i]);
      o += 4;
    } else {
      if (o + len >= cap) break;
      memcpy(out + o, u + i, len);
      o += len;
    }
  }
  out[o] = '\0';
  return o;
}

int onnx_fail(OnnxReader *r, const char *fmt, ...) {
  char text[1536], msg[2048];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(text, sizeof text, fmt, ap);
  va_end(ap);
  if (n < 0) text[0] = '\0';
  size_t o = put_escaped(msg, 0, sizeof msg - 1, r->path, strlen(r->path));
  o = put_escaped(msg, o, sizeof msg - 1, ": error: ", 9);
  o = put_escaped(msg, o, sizeof msg - 1, text, strlen(text));
  msg[o++] = '\n';
  msg[o] = '\0';
  if (r->errmsg) {
    free(*r->errmsg);
    *r->errmsg = strdup(msg);
  }
  return -1;
}

int onnx_out_of_memory(OnnxReader *r, const char *what) {
  return onnx_fail(r, "out of memory while reading %s", what);
}

const char *onnx_clip(char *buf, const char *s) {
  size_t n = strlen(s), keep = ONNX_CLIP_SIZE - 4;
  if (n < ONNX_CLIP_SIZE) return s;
  while (keep > 0 && ((unsigned char)s[keep] & 0xc0) == 0x80) keep--; /* whole characters */
  memcpy(buf, s, keep);
  memcpy(buf + keep, "...", 4);
  return buf;
}

const char *onnx_name(OnnxReader *r, const char *s, const char *where, const char *what) {
  if (!s) s = "";
  size_t n = strnlen(s, ONNX_MAX_NAME + 1);
  if (n > ONNX_MAX_NAME)
    return onnx_fail(r, "%s: %s is longer than %d bytes", where, what, ONNX_MAX_NAME), NULL;
  char *p = onnx_arena_alloc(r->arena, n + 1);
  if (!p) return onnx_out_of_memory(r, what), NULL;
  memcpy(p, s, n);
  return p;
}

/* ---- name sets ---- */

static size_t hash(const char *s) {
  size_t h = 1469598103934665603u; /* FNV-1a */
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211u;
  return h;
}

int onnx_nameset_init(OnnxReader *r, OnnxNameSet *s, size_t n) {
  s->cap = 16;
  while (s->cap < 2 * n) s->cap *= 2;
  s->slots = onnx_arena_array(r->arena, s->cap, sizeof *s->slots);
  return s->slots ? 0 : onnx_out_of_memory(r, "the names");
}

bool onnx_nameset_add(OnnxNameSet *s, const char *name) {
  for (size_t i = hash(name) & (s->cap - 1);; i = (i + 1) & (s->cap - 1)) {
    if (!s->slots[i]) {
      s->slots[i] = name;
      return true;
    }
    if (strcmp(s->slots[i], name) == 0) return false;
  }
}
