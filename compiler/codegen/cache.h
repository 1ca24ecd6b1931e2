/* cache.h — the compile cache: compiled code on disk, addressed by a 128-bit key that a
 * caller builds from everything the code depends on (native.c: an LLVM module's bitcode, its
 * weights, the target, the pipeline, nnc's version).  A recompile of an unchanged model
 * finds its object code or library here instead of running LLVM's optimiser and code
 * generator (docs/architecture.md, "The compile cache").
 *
 * Where: $NNC_CACHE_DIR, else $XDG_CACHE_HOME/nnc, else $HOME/.cache/nnc (made 0700 when
 * missing); NNC_CACHE=off (or 0) turns the cache off.  An entry is one file
 * `<32 hex digits of the key>.<ext>`: a header (magic, format, key, payload length and hash,
 * the header's own hash) and the payload.  Writers write a temp file in the same directory,
 * fsync it and rename it into place, so a reader sees a whole entry or none, whatever runs
 * concurrently; a reader checks every field and the payload's hash, so a truncated, damaged
 * or foreign file is a miss, and the store after the recompile replaces it.  Failing to
 * write (read-only directory, full disk) is not an error: the entry is just not stored.
 * The directory holds at most $NNC_CACHE_MAX MiB (default 1024): a store over the limit
 * removes the least recently used entries (a hit refreshes an entry's time).
 *
 * Nothing here keeps state between calls; every function may run on many threads. */
#ifndef NNC_CACHE_H
#define NNC_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct CacheKey {
  unsigned char b[16];
} CacheKey;

/* A 128-bit hash of data[n] (MurmurHash3's x64 128-bit mixing; not cryptographic). */
CacheKey cache_hash(const void *data, size_t n, uint64_t seed);

/* A key built from parts, each hashed on its own and chained with its length, so that
 * ("ab", "c") and ("a", "bc") differ. */
typedef struct KeyBuilder {
  CacheKey state;
} KeyBuilder;
void key_init(KeyBuilder *kb, const char *kind);
void key_add(KeyBuilder *kb, const void *data, size_t n);
void key_add_str(KeyBuilder *kb, const char *s); /* NULL adds the empty part "(null)" */
void key_add_key(KeyBuilder *kb, const CacheKey *k);
CacheKey key_final(const KeyBuilder *kb);

typedef struct Cache {
  bool on;
  char dir[4096];
  uint64_t max_bytes;
} Cache;

/* The cache as the environment sets it: c->dir its directory ("" when none can be named:
 * $HOME unset), c->on false when NNC_CACHE is off or there is no directory.  Reads the
 * environment only. */
void cache_open(Cache *c);

/* The payload stored under (k, ext): malloc'd into *data (free with free()), its length in
 * *len, and 0; -1 on a miss (absent, damaged, or the cache off). */
int cache_load(const Cache *c, const CacheKey *k, const char *ext, void **data, size_t *len);

/* Store data[len] under (k, ext), replacing any entry; 0 when stored, -1 when not (the
 * cache off, or the file system refused: never an error for the caller). */
int cache_store(const Cache *c, const CacheKey *k, const char *ext, const void *data, size_t len);

/* Remove every entry (and writers' leftover temp files), the cache on or off; *removed
 * gets their count.  0, or -1 with errno set when the directory cannot be read (a missing
 * one is empty). */
int cache_clear(const Cache *c, int *removed);

/* Entries and their bytes (0 and 0 for a missing directory). */
void cache_usage(const Cache *c, int *entries, uint64_t *bytes);

#endif
