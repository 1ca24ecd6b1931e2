/* cache.c — the compile cache's store (cache.h): keys, the entry format, atomic writes,
 * checked reads, the size limit.  Knows nothing of LLVM; native.c decides what goes in. */
#include "cache.h"
#include "fileio.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CACHE_MAGIC "NNCCACHE"
#define CACHE_FORMAT 1u
#define DEFAULT_MAX_MIB 1024u
#define STALE_TEMP_SECONDS 3600 /* a writer's temp file this old is a crashed writer's */

/* The first bytes of every entry; the payload follows. */
typedef struct EntryHeader {
  char magic[8];        /* CACHE_MAGIC, no terminator */
  uint32_t format;      /* CACHE_FORMAT */
  uint32_t header_size; /* sizeof(EntryHeader) */
  CacheKey key;         /* the key the entry is stored under (its file name, in hex) */
  uint64_t payload_len;
  CacheKey payload_hash; /* cache_hash(payload, payload_len, 0) */
  uint64_t header_hash;  /* first 8 bytes of cache_hash of the fields above */
} EntryHeader;
_Static_assert(sizeof(EntryHeader) == 64, "EntryHeader has no padding");

/* ---- hashing ---- */

static uint64_t rotl64(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

static uint64_t fmix64(uint64_t k) {
  k ^= k >> 33;
  k *= 0xff51afd7ed558ccdull;
  k ^= k >> 33;
  k *= 0xc4ceb9fe1a85ec53ull;
  return k ^ (k >> 33);
}

static const uint64_t C1 = 0x87c37b91114253d5ull, C2 = 0x4cf5ad432745937full;

static uint64_t mix_k1(uint64_t k) { return rotl64(k * C1, 31) * C2; }
static uint64_t mix_k2(uint64_t k) { return rotl64(k * C2, 33) * C1; }

CacheKey cache_hash(const void *data, size_t n, uint64_t seed) {
  const unsigned char *p = data;
  uint64_t h1 = seed, h2 = seed ^ 0x9e3779b97f4a7c15ull;
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    uint64_t k[2];
    memcpy(k, p + i, 16);
    h1 ^= mix_k1(k[0]);
    h1 = (rotl64(h1, 27) + h2) * 5 + 0x52dce729;
    h2 ^= mix_k2(k[1]);
    h2 = (rotl64(h2, 31) + h1) * 5 + 0x38495ab5;
  }
  uint64_t tail[2] = {0, 0};
  if (n > i) memcpy(tail, p + i, n - i);
  h1 ^= mix_k1(tail[0]);
  h2 ^= mix_k2(tail[1]);
  h1 ^= (uint64_t)n;
  h2 ^= (uint64_t)n;
  h1 += h2;
  h2 += h1;
  h1 = fmix64(h1);
  h2 = fmix64(h2);
  h1 += h2;
  h2 += h1;
  CacheKey k;
  memcpy(k.b, &h1, 8);
  memcpy(k.b + 8, &h2, 8);
  return k;
}

void key_add(KeyBuilder *kb, const void *data, size_t n) {
  struct {
    CacheKey state, part;
    uint64_t n;
  } link = {kb->state, cache_hash(data, n, 0), (uint64_t)n};
  kb->state = cache_hash(&link, sizeof link, 1);
}

void key_add_str(KeyBuilder *kb, const char *s) {
  s = s ? s : "(null)";
  key_add(kb, s, strlen(s));
}

void key_add_key(KeyBuilder *kb, const CacheKey *k) { key_add(kb, k->b, sizeof k->b); }

void key_init(KeyBuilder *kb, const char *kind) {
  memset(kb, 0, sizeof *kb);
  key_add_str(kb, kind);
}

CacheKey key_final(const KeyBuilder *kb) { return kb->state; }

/* ---- where ---- */

static bool env_off(const char *v) {
  return v && (!strcmp(v, "0") || !strcasecmp(v, "off") || !strcasecmp(v, "no") ||
               !strcasecmp(v, "false"));
}

static uint64_t env_max_bytes(void) {
  const char *v = getenv("NNC_CACHE_MAX");
  char *end;
  unsigned long long mib = v && *v ? strtoull(v, &end, 10) : DEFAULT_MAX_MIB;
  if (v && *v && *end) mib = DEFAULT_MAX_MIB;
  return mib > (UINT64_MAX >> 20) ? UINT64_MAX : (uint64_t)mib << 20; /* 0: no limit */
}

void cache_open(Cache *c) {
  memset(c, 0, sizeof *c);
  const char *dir = getenv("NNC_CACHE_DIR"), *xdg = getenv("XDG_CACHE_HOME");
  const char *home = getenv("HOME");
  int n;
  if (dir && *dir) n = snprintf(c->dir, sizeof c->dir, "%s", dir);
  else if (xdg && xdg[0] == '/') n = snprintf(c->dir, sizeof c->dir, "%s/nnc", xdg);
  else if (home && *home) n = snprintf(c->dir, sizeof c->dir, "%s/.cache/nnc", home);
  else return;
  if (n <= 0 || (size_t)n >= sizeof c->dir) {
    c->dir[0] = 0;
    return;
  }
  c->on = !env_off(getenv("NNC_CACHE"));
  c->max_bytes = env_max_bytes();
}

/* dir/<hex key>.<ext> into path; false when it does not fit. */
static bool entry_path(const Cache *c, const CacheKey *k, const char *ext, char *path, size_t n) {
  char hex[33];
  for (int i = 0; i < 16; i++) snprintf(hex + 2 * i, 3, "%02x", k->b[i]);
  int w = snprintf(path, n, "%s/%s.%s", c->dir, hex, ext);
  return w > 0 && (size_t)w < n;
}

/* An entry's file name: 32 hex digits, a dot, an extension. */
static bool is_entry_name(const char *name) {
  for (int i = 0; i < 32; i++)
    if (!name[i] || !strchr("0123456789abcdef", name[i])) return false;
  return name[32] == '.' && name[33];
}

static bool is_temp_name(const char *name) { return !strncmp(name, ".tmp-", 5); }

/* ---- reading ---- */

static uint64_t header_hash(const EntryHeader *h) {
  CacheKey k = cache_hash(h, offsetof(EntryHeader, header_hash), 2);
  uint64_t v;
  memcpy(&v, k.b, 8);
  return v;
}

static bool header_ok(const EntryHeader *h, const CacheKey *k, off_t file_size) {
  return !memcmp(h->magic, CACHE_MAGIC, 8) && h->format == CACHE_FORMAT &&
         h->header_size == sizeof *h && h->header_hash == header_hash(h) &&
         !memcmp(&h->key, k, sizeof *k) &&
         h->payload_len == (uint64_t)file_size - sizeof *h;
}

/* The checked payload of the open entry fd, or NULL. */
static void *read_entry(int fd, const CacheKey *k, size_t *len) {
  struct stat st;
  EntryHeader h;
  if (fstat(fd, &st) || !S_ISREG(st.st_mode) || st.st_size < (off_t)sizeof h ||
      nnc_read_fd(fd, &h, sizeof h) != (long long)sizeof h || !header_ok(&h, k, st.st_size))
    return NULL;
  void *data = malloc(h.payload_len ? h.payload_len : 1);
  if (!data) return NULL;
  CacheKey sum;
  if (nnc_read_fd(fd, data, h.payload_len) != (long long)h.payload_len ||
      (sum = cache_hash(data, h.payload_len, 0), memcmp(&sum, &h.payload_hash, sizeof sum))) {
    free(data);
    return NULL;
  }
  *len = h.payload_len;
  return data;
}

int cache_load(const Cache *c, const CacheKey *k, const char *ext, void **data, size_t *len) {
  char path[sizeof c->dir + 64];
  if (!c->on || !entry_path(c, k, ext, path, sizeof path)) return -1;
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return -1;
  *data = read_entry(fd, k, len);
  if (*data) futimens(fd, NULL); /* recently used: the last to go when the cache is full */
  close(fd);
  return *data ? 0 : -1;
}

/* ---- writing ---- */

/* mkdir -p, new directories private to the user (as XDG asks). */
static int make_dirs(const char *dir) {
  char path[4096];
  if (snprintf(path, sizeof path, "%s", dir) >= (int)sizeof path) return -1;
  for (char *p = path + 1;; p++) {
    if (*p != '/' && *p) continue;
    char was = *p;
    *p = 0;
    if (mkdir(path, 0700) && errno != EEXIST) return -1;
    *p = was;
    if (!was) return 0;
  }
}

static int write_entry(int fd, const CacheKey *k, const void *data, size_t len) {
  EntryHeader h = {.format = CACHE_FORMAT, .header_size = sizeof h, .key = *k,
                   .payload_len = len, .payload_hash = cache_hash(data, len, 0)};
  memcpy(h.magic, CACHE_MAGIC, 8);
  h.header_hash = header_hash(&h);
  return nnc_write_fd(fd, &h, sizeof h) || nnc_write_fd(fd, data, len) || fsync(fd) ? -1 : 0;
}

static void trim(const Cache *c, const char *keep);

int cache_store(const Cache *c, const CacheKey *k, const char *ext, const void *data, size_t len) {
  char path[sizeof c->dir + 64], tmp[sizeof c->dir + 64];
  if (!c->on || !entry_path(c, k, ext, path, sizeof path) || make_dirs(c->dir)) return -1;
  snprintf(tmp, sizeof tmp, "%s/.tmp-XXXXXX", c->dir);
  int fd = mkostemp(tmp, O_CLOEXEC);
  if (fd < 0) return -1;
  int rc = write_entry(fd, k, data, len);
  if (close(fd)) rc = -1;
  if (!rc) rc = rename(tmp, path);
  if (rc) {
    unlink(tmp);
    return -1;
  }
  trim(c, path + strlen(c->dir) + 1);
  return 0;
}

/* ---- the directory as a whole ---- */

typedef struct Item {
  struct timespec mtime;
  uint64_t bytes;
  char name[64];
} Item;

/* Entries of the cache into *items (malloc'd, may be NULL when n is 0); stale temp files are
 * removed on the way.  -1 when the directory cannot be read. */
static int list_entries(const Cache *c, Item **items, int *n) {
  *items = NULL;
  *n = 0;
  DIR *d = opendir(c->dir);
  if (!d) return -1;
  int cap = 0, dfd = dirfd(d);
  time_t now = time(NULL);
  for (struct dirent *e; (e = readdir(d));) {
    struct stat st;
    bool temp = is_temp_name(e->d_name);
    if ((!temp && !is_entry_name(e->d_name)) || strlen(e->d_name) >= sizeof(*items)->name ||
        fstatat(dfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) || !S_ISREG(st.st_mode))
      continue;
    if (temp) {
      if (now - st.st_mtime > STALE_TEMP_SECONDS) unlinkat(dfd, e->d_name, 0);
      continue;
    }
    if (*n == cap) {
      Item *grown = realloc(*items, (size_t)(cap = cap ? 2 * cap : 64) * sizeof **items);
      if (!grown) break;
      *items = grown;
    }
    Item *it = &(*items)[(*n)++];
    *it = (Item){st.st_mtim, (uint64_t)st.st_size, ""};
    snprintf(it->name, sizeof it->name, "%s", e->d_name);
  }
  closedir(d);
  return 0;
}

static int older_first(const void *a, const void *b) {
  const struct timespec *x = &((const Item *)a)->mtime, *y = &((const Item *)b)->mtime;
  if (x->tv_sec != y->tv_sec) return x->tv_sec < y->tv_sec ? -1 : 1;
  return (x->tv_nsec > y->tv_nsec) - (x->tv_nsec < y->tv_nsec);
}

/* Over the limit, remove the least recently used entries (never `keep`, the one just
 * stored) until the cache is at three quarters of it. */
static void trim(const Cache *c, const char *keep) {
  Item *items;
  int n;
  if (!c->max_bytes || list_entries(c, &items, &n)) return;
  uint64_t total = 0;
  for (int i = 0; i < n; i++) total += items[i].bytes;
  if (total > c->max_bytes) {
    qsort(items, (size_t)n, sizeof *items, older_first);
    char path[sizeof c->dir + 64];
    for (int i = 0; i < n && total > c->max_bytes / 4 * 3; i++) {
      if (!strcmp(items[i].name, keep)) continue;
      snprintf(path, sizeof path, "%s/%s", c->dir, items[i].name);
      if (!unlink(path) || errno == ENOENT) total -= items[i].bytes;
    }
  }
  free(items);
}

void cache_usage(const Cache *c, int *entries, uint64_t *bytes) {
  Item *items;
  *entries = 0;
  *bytes = 0;
  if (list_entries(c, &items, entries)) return;
  for (int i = 0; i < *entries; i++) *bytes += items[i].bytes;
  free(items);
}

int cache_clear(const Cache *c, int *removed) {
  *removed = 0;
  DIR *d = opendir(c->dir);
  if (!d) return errno == ENOENT ? 0 : -1;
  for (struct dirent *e; (e = readdir(d));)
    if ((is_entry_name(e->d_name) || is_temp_name(e->d_name)) && !unlinkat(dirfd(d), e->d_name, 0))
      (*removed)++;
  closedir(d);
  return 0;
}
