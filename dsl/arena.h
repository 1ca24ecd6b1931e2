/* arena.h — the arena that owns a compilation (or an ONNX model), freed at once, and the
 * recovery points that make running out of memory while compiling a diagnostic.
 *
 * An arena has two ways to allocate: arena_alloc, for the compiler, never returns NULL (out
 * of memory jumps to a recovery point); arena_try_alloc, for readers of untrusted input that
 * also run outside a compilation (the ONNX reader, its fuzz target), returns NULL instead, so
 * that the reader reports it as a message. */
#ifndef NNC_ARENA_H
#define NNC_ARENA_H

#include <setjmp.h>
#include <stddef.h>

typedef struct Arena Arena;
/* Allocations 16-byte aligned; at most $NNC_ARENA_LIMIT bytes when it was made (a test
 * hook; unset: no limit).  NULL when out of memory. */
Arena *arena_new(void);
/* Allocations `align`-byte aligned (a power of two from 16 to 64), and no limit: the
 * ONNX reader's, whose tensor data wants 64.  NULL when out of memory. */
Arena *arena_new_aligned(size_t align);
void arena_free(Arena *a); /* NULL is harmless */
/* Zeroed.  Out of memory (malloc fails, or the arena passes its limit) it jumps to the
 * innermost recovery point of this thread (ArenaOom); with none, it aborts. */
void *arena_alloc(Arena *a, size_t size);
/* The same, but out of memory returns NULL (and never jumps). */
void *arena_try_alloc(Arena *a, size_t size);
/* n items of `size` bytes, the product checked for overflow; NULL when out of memory. */
void *arena_try_array(Arena *a, size_t n, size_t size);
char *arena_strdup(Arena *a, const char *s);
char *arena_strndup(Arena *a, const char *s, size_t n);

/* Out of memory while compiling is a diagnostic, not an abort.  A compilation pushes a
 * recovery point (its own, on its stack: compilations on several threads do not meet) and
 * calls setjmp on it; an allocation that fails in the arena or through nnc_xmalloc /
 * nnc_xcalloc / nnc_xrealloc / nnc_out_of_memory longjmps there with `what` set.  Points
 * nest, per thread: a handler that cleans up what its frame owns (a scanner) pops its point
 * and re-raises to the one around it (arena_oom_raise(o->prev)).
 *
 *   ArenaOom oom;
 *   arena_oom_push(&oom);
 *   if (setjmp(oom.jb)) { arena_oom_pop(&oom); free everything; report oom.what; }
 *   ... compile ...
 *   arena_oom_pop(&oom);
 */
typedef struct ArenaOom {
  jmp_buf jb;
  struct ArenaOom *prev; /* the enclosing point on this thread, or NULL */
  char what[192];        /* what failed, e.g. "malloc of 65552 bytes failed" */
} ArenaOom;
void arena_oom_push(ArenaOom *o);
void arena_oom_pop(ArenaOom *o); /* o must be this thread's innermost point */
_Noreturn void arena_oom_raise(ArenaOom *o); /* longjmp to o (NULL: abort) */
_Noreturn void nnc_out_of_memory(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* malloc, calloc and realloc that call nnc_out_of_memory instead of returning NULL. */
void *nnc_xmalloc(size_t size);
void *nnc_xcalloc(size_t n, size_t size);
void *nnc_xrealloc(void *p, size_t size);

#endif
