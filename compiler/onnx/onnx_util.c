/* onnx_util.c — the ONNX reader's arena, messages and name sets (onnx_internal.h).
 *
 * The reader has an arena of its own rather than the compiler's (dsl/ast.h): it runs outside
 * a compilation too (the fuzz target, tools), so running out of memory is a message it
 * returns, not a jump to a compilation's recovery point; and tensor data wants 64-byte
 * alignment. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diag.h"
#include "onnx_internal.h"

/* ---- arena: a list of 64-byte aligned blocks, freed at once ---- */

typedef struct OnnxBlock {
  struct OnnxBlock *next;
  size_t used, size;
  _Alignas(64) unsigned char data[];
} OnnxBlock;

struct OnnxArena {
  OnnxBlock *head;
};

enum { BLOCK_SIZE = 64 * 1024, ALIGN = 64 };

OnnxArena *onnx_arena_new(void) { return calloc(1, sizeof(OnnxArena)); }

void onnx_arena_free(OnnxArena *a) {
  if (!a) return;
  for (OnnxBlock *b = a->head, *next; b; b = next) {
    next = b->next;
    free(b);
  }
  free(a);
}

static OnnxBlock *block_new(size_t size) {
  if (size > SIZE_MAX - sizeof(OnnxBlock) - ALIGN) return NULL;
  OnnxBlock *b = aligned_alloc(ALIGN, (sizeof(OnnxBlock) + size + ALIGN - 1) & ~(size_t)(ALIGN - 1));
  if (!b) return NULL;
  b->next = NULL;
  b->used = 0;
  b->size = size;
  return b;
}

void *onnx_arena_alloc(OnnxArena *a, size_t size) {
  if (size > SIZE_MAX - ALIGN) return NULL;
  size = size ? (size + ALIGN - 1) & ~(size_t)(ALIGN - 1) : ALIGN;
  OnnxBlock *b = a->head;
  if (!b || b->size - b->used < size) {
    if (size > BLOCK_SIZE / 4) { /* big: its own block, behind the current one */
      OnnxBlock *big = block_new(size);
      if (!big) return NULL;
      big->used = size;
      if (b) {
        big->next = b->next;
        b->next = big;
      } else {
        a->head = big;
      }
      memset(big->data, 0, size);
      return big->data;
    }
    if (!(b = block_new(BLOCK_SIZE))) return NULL;
    b->next = a->head;
    a->head = b;
  }
  void *p = b->data + b->used;
  b->used += size;
  memset(p, 0, size);
  return p;
}

void *onnx_arena_array(OnnxArena *a, size_t n, size_t size) {
  if (size && n > SIZE_MAX / size) return NULL;
  return onnx_arena_alloc(a, n * size);
}

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
