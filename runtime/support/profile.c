/* profile.c — $NNC_PROFILE: per-kernel wall-clock times of a generated library (profile.h). */
#include "profile.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* the layout generated code gives its sites (compiler/codegen/profile.c site_type) */
_Static_assert(sizeof(nnc_prof_site) == 7 * 8, "nnc_prof_site: 7 words");

int nnc_rt_profiling;
static nnc_prof_site *sites; /* every site that ran, the latest first */

/* When the library is loaded: $NNC_PROFILE unset, empty or "0" leaves profiling off. */
__attribute__((constructor)) static void profile_init(void) {
  const char *v = getenv("NNC_PROFILE");
  nnc_rt_profiling = v && *v && strcmp(v, "0") != 0;
}

uint64_t nnc_rt_prof_begin(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec + 1;
}

void nnc_rt_prof_end(nnc_prof_site *site, uint64_t t0) {
  uint64_t t = nnc_rt_prof_begin();
  if (__atomic_fetch_add(&site->calls, 1, __ATOMIC_RELAXED) == 0) __atomic_store_n(&site->first_ns, t - t0, __ATOMIC_RELAXED);
  __atomic_fetch_add(&site->ns, t - t0, __ATOMIC_RELAXED);
  int64_t no = 0;
  if (__atomic_load_n(&site->listed, __ATOMIC_ACQUIRE) ||
      !__atomic_compare_exchange_n(&site->listed, &no, 1, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
    return;
  nnc_prof_site *head = __atomic_load_n(&sites, __ATOMIC_ACQUIRE);
  do site->next = head;
  while (!__atomic_compare_exchange_n(&sites, &head, site, true, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE));
}

/* A site's time and calls, the first call left out when there are others. */
static uint64_t steady_ns(const nnc_prof_site *k) { return k->calls > 1 ? k->ns - k->first_ns : k->ns; }
static uint64_t steady_calls(const nnc_prof_site *k) { return k->calls > 1 ? k->calls - 1 : 1; }

static double per_call_us(const nnc_prof_site *k) { return (double)steady_ns(k) / 1e3 / (double)steady_calls(k); }

static int by_time(const void *a, const void *b) {
  uint64_t x = steady_ns(*(nnc_prof_site *const *)a), y = steady_ns(*(nnc_prof_site *const *)b);
  return x < y ? 1 : x > y ? -1 : 0;
}

/* One entry's table: its kernels by total time, and the time outside them. */
static void print_entry(FILE *f, const nnc_prof_site *e, nnc_prof_site **kernels, size_t n) {
  double total = (double)steady_ns(e);
  if (e->calls < 2)
    fprintf(f, "nnc profile (pid %ld): %s, 1 call, %.1f us\n", (long)getpid(), e->name, per_call_us(e));
  else
    fprintf(f, "nnc profile (pid %ld): %s, %llu calls, %.1f us a call after the first (%.1f us)\n", (long)getpid(),
            e->name, (unsigned long long)e->calls, per_call_us(e), (double)e->first_ns / 1e3);
  fprintf(f, "  %7s %12s %10s  %s\n", "share", "us a call", "calls", "kernel");
  qsort(kernels, n, sizeof *kernels, by_time);
  double inside = 0;
  for (size_t i = 0; i < n; i++) {
    const nnc_prof_site *k = kernels[i];
    double ns = (double)steady_ns(k);
    inside += ns;
    fprintf(f, "  %6.1f%% %12.2f %10llu  %s\n", total > 0 ? 100 * ns / total : 0, per_call_us(k),
            (unsigned long long)k->calls, k->name);
  }
  /* the entry's own work: buffer addresses, and the calls' set-up */
  double outside = total > inside ? total - inside : 0;
  fprintf(f, "  %6.1f%% %12.2f %10s  (outside the kernels)\n", total > 0 ? 100 * outside / total : 0,
          outside / 1e3 / (double)steady_calls(e), "");
}

static void print_profile(FILE *f, nnc_prof_site **all, size_t n) {
  nnc_prof_site **kernels = malloc(n * sizeof *kernels);
  if (!kernels) return;
  for (size_t i = n; i-- > 0;) { /* entries in the order they first ran */
    if (all[i]->entry) continue;
    size_t nk = 0;
    for (size_t j = 0; j < n; j++)
      if (all[j]->entry == all[i]) kernels[nk++] = all[j];
    print_entry(f, all[i], kernels, nk);
  }
  free(kernels);
}

void nnc_rt_prof_report(void) {
  nnc_prof_site *head = __atomic_exchange_n(&sites, NULL, __ATOMIC_ACQ_REL);
  size_t n = 0;
  for (nnc_prof_site *s = head; s; s = s->next) n++;
  nnc_prof_site **all = n ? malloc(n * sizeof *all) : NULL;
  if (!all) return;
  n = 0;
  for (nnc_prof_site *s = head; s; s = s->next) all[n++] = s;
  const char *v = getenv("NNC_PROFILE");
  FILE *f = v && strcmp(v, "1") != 0 ? fopen(v, "a") : stderr;
  if (!f) fprintf(stderr, "nnc: cannot write the profile to '%s' ($NNC_PROFILE): %s\n", v, strerror(errno));
  else {
    print_profile(f, all, n);
    if (f != stderr) fclose(f);
  }
  for (size_t i = 0; i < n; i++) { /* counted afresh from their next call */
    all[i]->calls = all[i]->ns = all[i]->first_ns = 0;
    all[i]->next = NULL;
    __atomic_store_n(&all[i]->listed, 0, __ATOMIC_RELEASE);
  }
  free(all);
}

/* At exit, or when the library is unloaded. */
__attribute__((destructor)) static void profile_at_exit(void) { nnc_rt_prof_report(); }
