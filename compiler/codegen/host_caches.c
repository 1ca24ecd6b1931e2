/* host_caches.c — the host core's data cache sizes, for kernels that block their work to stay
 * in a cache (row tiles keep B in L2: convplan.h).  Read once per process: glibc's sysconf
 * (CPUID on x86), else Linux's /sys/devices/system/cpu/cpu0/cache/index*, else
 * HOST_CACHES_DEFAULT_*.  $NNC_PLAN_L1D and $NNC_PLAN_L2 (bytes) plan for other sizes, as
 * $NNC_PLAN_SIMD does for the vector width: tests reach the code paths of a small cache on any
 * machine.  The sizes decide the lowering, so they reach the compile cache's key through the
 * module's code; target_identity names them too. */
#include "host_caches.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define HOST_CACHES_DEFAULT_L1D (32 * 1024)  /* every x86-64 core since 2006 has at least this */
#define HOST_CACHES_DEFAULT_L2 (512 * 1024)  /* Zen 1-3; Intel clients have 256 KiB-2 MiB */
#define HOST_CACHES_MAX (1L << 30)           /* a larger figure is not a per-core cache */

static pthread_once_t host_caches_once = PTHREAD_ONCE_INIT;
static TargetCaches host_caches;

/* A size in bytes if plausible, else 0. */
static int64_t plausible(long bytes) { return bytes >= 4096 && bytes <= HOST_CACHES_MAX ? bytes : 0; }

/* The first line of a sysfs file, or "" (buf of len bytes). */
static const char *read_line(const char *path, char *buf, size_t len) {
  FILE *f = fopen(path, "r");
  buf[0] = '\0';
  if (f) {
    if (!fgets(buf, (int)len, f)) buf[0] = '\0';
    fclose(f);
  }
  buf[strcspn(buf, "\n")] = '\0';
  return buf;
}

/* Linux's description of cpu0's cache of `level` holding data ("Data" or "Unified"): its size
 * ("512K"), or 0 when there is none. */
static int64_t sysfs_cache(int level) {
  char path[96], buf[64];
  for (int i = 0; i < 8; i++) {
    snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/level", i);
    if (atoi(read_line(path, buf, sizeof buf)) != level) continue;
    snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/type", i);
    if (strcmp(read_line(path, buf, sizeof buf), "Data") && strcmp(buf, "Unified")) continue;
    snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/size", i);
    char *end;
    long n = strtol(read_line(path, buf, sizeof buf), &end, 10);
    long unit = *end == 'K' ? 1024 : *end == 'M' ? 1024 * 1024 : 1;
    return plausible(n * unit);
  }
  return 0;
}

/* glibc's figure for a cache (0 when it has none: another C library, another OS). */
#if defined(_SC_LEVEL1_DCACHE_SIZE) && defined(_SC_LEVEL2_CACHE_SIZE)
static int64_t sysconf_cache(int level) {
  return plausible(sysconf(level == 1 ? _SC_LEVEL1_DCACHE_SIZE : _SC_LEVEL2_CACHE_SIZE));
}
#else
static int64_t sysconf_cache(int level) { return (void)level, 0; }
#endif

static int64_t host_cache(int level, int64_t fallback) {
  int64_t n = sysconf_cache(level);
  if (!n) n = sysfs_cache(level);
  return n ? n : fallback;
}

static void read_host_caches(void) {
  host_caches.l1d = host_cache(1, HOST_CACHES_DEFAULT_L1D);
  host_caches.l2 = host_cache(2, HOST_CACHES_DEFAULT_L2);
}

/* $name as a plausible cache size in bytes, or `host`. */
static int64_t planned(const char *name, int64_t host) {
  const char *env = getenv(name);
  if (!env || !*env) return host;
  char *end;
  long n = strtol(env, &end, 10);
  return !*end && plausible(n) ? n : host;
}

TargetCaches target_host_caches(void) {
  pthread_once(&host_caches_once, read_host_caches);
  return (TargetCaches){planned("NNC_PLAN_L1D", host_caches.l1d), planned("NNC_PLAN_L2", host_caches.l2)};
}
