/* profile.h — per-kernel wall-clock times, on when $NNC_PROFILE is set (support library,
 * hidden).
 *
 * Generated code gives every entry body and every kernel call in it a site (a static
 * nnc_prof_site of the library).  When nnc_rt_profiling is non-zero (set once, when the
 * library is loaded, from $NNC_PROFILE), it times each call of a site with
 * nnc_rt_prof_begin/nnc_rt_prof_end; otherwise a call costs one load and a branch.  At exit
 * (or when the library is unloaded, or its JIT code freed) the sites that ran are printed,
 * each entry with its kernels by total time: to stderr for NNC_PROFILE=1, else appended to
 * the file it names.
 * A kernel's time is the wall clock of its whole call on the calling thread: its share of
 * a split loop and the wait for the other threads' shares (docs/c-api.md, Profiling). */
#ifndef NNC_PROFILE_H
#define NNC_PROFILE_H

#include <stdint.h>

/* One timed place: an entry body (entry == NULL) or a kernel call in one.  The layout is the
 * generated code's (compiler/codegen/profile.c prof_site): name, entry, then zeros. */
typedef struct nnc_prof_site {
  const char *name;                /* "<model>.<entry>" or "<entry>.k<i>.<kind>" */
  struct nnc_prof_site *entry;     /* the entry body a kernel call belongs to */
  uint64_t calls, ns;              /* updated atomically: contexts may call on many threads */
  uint64_t first_ns;               /* the first call's (page faults, threads starting), which the
                                      per-call times leave out */
  struct nnc_prof_site *next;      /* the list of sites that ran, in the order they first ran */
  int64_t listed;                  /* 1 once in that list */
} nnc_prof_site;

extern int nnc_rt_profiling;

/* The monotonic clock in ns (never 0), for nnc_rt_prof_end. */
uint64_t nnc_rt_prof_begin(void);
/* Add one call of `site` that began at t0. */
void nnc_rt_prof_end(nnc_prof_site *site, uint64_t t0);
/* Print the sites that ran since the last report, and forget them: at exit, and before JIT
 * code (whose sites these are) is freed (nnc_jit_free). */
void nnc_rt_prof_report(void);

#endif
