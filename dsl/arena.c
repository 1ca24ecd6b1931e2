/* arena.c — the arena (a list of blocks, freed at once) and the recovery points for running
 * out of memory while compiling (arena.h). */
#include "arena.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- out of memory: recovery points, one stack per thread ---- */

static _Thread_local ArenaOom *oom_top; /* this thread's innermost recovery point */

void arena_oom_push(ArenaOom *o) {
  o->prev = oom_top;
  o->what[0] = '\0';
  oom_top = o;
}

void arena_oom_pop(ArenaOom *o) { oom_top = o->prev; }

_Noreturn void arena_oom_raise(ArenaOom *o) {
  if (!o) {
    fputs("nnc: fatal error: out of memory\n", stderr);
    abort();
  }
  oom_top = o; /* a handler above may have popped it already */
  longjmp(o->jb, 1);
}

_Noreturn void nnc_out_of_memory(const char *fmt, ...) {
  ArenaOom *o = oom_top;
  if (o) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(o->what, sizeof o->what, fmt, ap);
    va_end(ap);
  }
  arena_oom_raise(o);
}

void *nnc_xmalloc(size_t size) {
  void *p = malloc(size ? size : 1);
  if (!p) nnc_out_of_memory("malloc of %zu bytes failed", size);
  return p;
}

void *nnc_xcalloc(size_t n, size_t size) {
  void *p = calloc(n ? n : 1, size ? size : 1);
  if (!p) nnc_out_of_memory("calloc of %zu x %zu bytes failed", n, size);
  return p;
}

void *nnc_xrealloc(void *p, size_t size) {
  void *q = realloc(p, size ? size : 1);
  if (!q) nnc_out_of_memory("realloc to %zu bytes failed", size);
  return q;
}

/* ---- arena: a list of blocks, freed at once ---- */

typedef struct Block {
  struct Block *next;
  size_t used, size;
  _Alignas(64) unsigned char data[]; /* the most an arena aligns to */
} Block;

struct Arena {
  Block *head;
  size_t align;        /* of every allocation: 16 or 64 */
  size_t total, limit; /* bytes handed out; the most allowed ($NNC_ARENA_LIMIT), 0: none */
};

enum { BLOCK_SIZE = 64 * 1024, BLOCK_ALIGN = 64 };

Arena *arena_new_aligned(size_t align) {
  Arena *a = calloc(1, sizeof *a);
  if (a) a->align = align;
  return a;
}

Arena *arena_new(void) {
  Arena *a = arena_new_aligned(16);
  if (!a) return NULL;
  const char *limit = getenv("NNC_ARENA_LIMIT");
  if (limit && *limit) a->limit = strtoull(limit, NULL, 10);
  return a;
}

void arena_free(Arena *a) {
  if (!a) return;
  for (Block *b = a->head, *next; b; b = next) {
    next = b->next;
    free(b);
  }
  free(a);
}

/* A block for size bytes, or NULL (*bytes: what was asked of malloc). */
static Block *block_new(size_t size, size_t *bytes) {
  *bytes = size;
  if (size > SIZE_MAX - sizeof(Block) - BLOCK_ALIGN) return NULL;
  *bytes = (sizeof(Block) + size + BLOCK_ALIGN - 1) & ~(size_t)(BLOCK_ALIGN - 1);
  Block *b = aligned_alloc(BLOCK_ALIGN, *bytes);
  if (!b) return NULL;
  b->next = NULL;
  b->used = 0;
  b->size = size;
  return b;
}

typedef enum { ALLOC_OK, ALLOC_TOO_BIG, ALLOC_LIMIT, ALLOC_NOMEM } AllocStatus;

/* The one allocator behind arena_alloc and arena_try_alloc: NULL with why it failed in *st
 * (and for ALLOC_NOMEM what malloc was asked for in *bytes). */
static void *alloc(Arena *a, size_t size, AllocStatus *st, size_t *bytes) {
  *st = ALLOC_TOO_BIG;
  if (size > SIZE_MAX - BLOCK_ALIGN) return NULL;
  size = (size + a->align - 1) & ~(a->align - 1);
  *st = ALLOC_LIMIT;
  if (a->limit && (size > a->limit || a->total > a->limit - size)) return NULL;
  *st = ALLOC_NOMEM;
  Block *b = a->head;
  if (!b || b->size - b->used < size) {
    if (size > BLOCK_SIZE / 4) { /* big: its own block, behind the current one */
      Block *big = block_new(size, bytes);
      if (!big) return NULL;
      big->used = size;
      if (b) {
        big->next = b->next;
        b->next = big;
      } else {
        a->head = big;
      }
      b = big;
    } else {
      if (!(b = block_new(BLOCK_SIZE, bytes))) return NULL;
      b->next = a->head;
      a->head = b;
      b->used = size;
    }
  } else {
    b->used += size;
  }
  *st = ALLOC_OK;
  a->total += size;
  void *p = b->data + b->used - size;
  memset(p, 0, size);
  return p;
}

void *arena_try_alloc(Arena *a, size_t size) {
  AllocStatus st;
  size_t bytes;
  return alloc(a, size, &st, &bytes);
}

void *arena_try_array(Arena *a, size_t n, size_t size) {
  if (size && n > SIZE_MAX / size) return NULL;
  return arena_try_alloc(a, n * size);
}

void *arena_alloc(Arena *a, size_t size) {
  AllocStatus st;
  size_t bytes;
  void *p = alloc(a, size, &st, &bytes);
  switch (st) {
  case ALLOC_OK: return p;
  case ALLOC_TOO_BIG: nnc_out_of_memory("an allocation of %zu bytes", size);
  case ALLOC_LIMIT:
    nnc_out_of_memory("the compiler's arena reached its limit of %zu bytes (NNC_ARENA_LIMIT)",
                      a->limit);
  case ALLOC_NOMEM:
    nnc_out_of_memory("malloc of %zu bytes for the compiler's arena failed", bytes);
  }
  return p;
}

char *arena_strndup(Arena *a, const char *s, size_t n) {
  char *p = arena_alloc(a, n + 1);
  memcpy(p, s, n);
  p[n] = '\0';
  return p;
}

char *arena_strdup(Arena *a, const char *s) { return arena_strndup(a, s, strlen(s)); }
