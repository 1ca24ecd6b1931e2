/* host_caches.h — the host core's data caches in bytes (host_caches.c), for kernels that
 * block work to stay in one (row tiles: convplan.h): from sysconf or sysfs, 32 KiB and
 * 512 KiB when unknown; $NNC_PLAN_L1D and $NNC_PLAN_L2 plan for other sizes.  No LLVM: the
 * build key (build_cache.c) covers them too. */
#ifndef NNC_HOST_CACHES_H
#define NNC_HOST_CACHES_H

#include <stdint.h>

typedef struct TargetCaches {
  int64_t l1d, l2;
} TargetCaches;
TargetCaches target_host_caches(void);

#endif
