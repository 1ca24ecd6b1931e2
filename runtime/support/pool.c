/* pool.c — the runtime thread pool (see pool.h).
 *
 * A job is a kernel's outer loop cut into chunks, dealt out in contiguous blocks, one per
 * thread (the caller is thread 0); each thread claims the chunks of its own block, then
 * those left in the others' (a late or descheduled thread's), until none is left.  So a
 * thread gets the same part of every job while nobody is late — the same images of a batch,
 * kernel after kernel, whose activations are then in its own core's cache (groupnorm with
 * BatchNorm at batch 8 on 2 threads: 1.6-1.9 -> 1.2-1.4 ms against one shared ticket, where
 * a thread read on its core what the other had written on its own).  A block's ticket holds
 * the job's generation, the block's end and its next chunk in one word, so a worker that
 * wakes late, after its job ended and the next began, cannot claim a chunk of a job it did
 * not copy.  An idle
 * worker polls for the next job for IDLE_SPIN_NS, then sleeps on a condition variable: the
 * kernels of a model follow each other within microseconds, and waking a sleeping thread
 * takes longer than many of them run; polling for longer steals the core an OpenBLAS thread
 * needs for an sgemm in between (measured: 2 threads took twice as long as 1 on groupnorm at
 * batch 8 with workers that never slept).  The caller, which has nothing else to do, polls
 * briefly for the last chunks to finish.
 *
 * OpenBLAS always runs on one thread: its sums depend on its own thread count (it hands its
 * threads different blocks, and its kernels' edge cases round differently), which would make
 * results depend on ours.  nnc_rt_sgemm cuts a large product into a grid of tiles of C that
 * depends on the product's shape alone, each tile one single-threaded sgemm call, and hands
 * the tiles to the pool: the same calls on any number of threads, so the same bits.  A small
 * product is one tile: handing it over costs more than it saves (fcn at batch 1 ran twice
 * as long on 2 threads as on 1, from its small sgemms). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cblas.h>

#include "fault.h"
#include "pool.h"

#define GRAIN 32768       /* scalar operations worth handing to another thread (~10 µs);
                             NNC_PARALLEL_GRAIN overrides it (tests split tiny loops with 1) */
#define CHUNKS_PER_THREAD 4 /* more chunks than threads: a descheduled thread delays less */
#define SPIN_POLLS 2000   /* polls of the caller waiting for the last chunks before it sleeps */
#define IDLE_SPIN_NS 50000 /* an idle worker polls this long for the next job, then sleeps */
#define DOUBTFUL_GRAINS 64 /* a job of fewer grains than this (~0.1-0.6 ms on one core) is a
                             small one: whether its split pays depends on the machine's state */
#define AB_TRIAL 16       /* calls of an entry alternating doubtful splits on and off ... */
#define AB_RUN 512        /* ... then this many the faster way, and again */
#define AB_ENTRIES 64     /* entries timed so (the others split) */
#define SGEMM_TILE_FLOPS 4e6 /* work of a tile of a large product (tens of µs on one core) ... */
#define SGEMM_MAX_TILES 8    /* ... up to about this many: each tile repacks its operands, and
                                OpenBLAS runs smaller products slower, so more tiles cost one
                                thread more time (figures in the commit that set this) */
#define SGEMM_FLOPS_PER_WORK 32 /* a product's work in vector FMAs (compiler/lower/parallel.c) */
#define SGEMM_TILE_ROWS 4    /* tiles of C start at multiples of these (OpenBLAS's register */
#define SGEMM_TILE_COLS 16   /* tile on Haswell/Zen is 16 of its columns x 4 rows: ours transposed) */

/* Whether an entry's doubtful splits pay, from timing its calls both ways
 * (nnc_pool_call_begin). */
typedef struct EntryChoice {
  uint32_t calls;
  uint64_t trial[2][AB_TRIAL / 2]; /* the trial calls' times, split [0] and whole [1] */
  bool whole;
} EntryChoice;

typedef struct Job {
  nnc_kernel_fn fn;
  void *const *bufs;
  const int64_t *syms;
  int64_t n;
  uint32_t nchunks;
} Job;

/* Thread w's block of a job's chunks, one word: the job's generation, where the block ends and
 * the next chunk to claim (gen << 32 | end << 16 | next), so that a worker late from an earlier
 * job sees the three together or not at all.  One cache line each: the threads claim from
 * their own blocks without sharing a line. */
typedef struct Block {
  _Atomic uint64_t ticket;
  char pad[64 - sizeof(uint64_t)];
} Block;
#define MAX_CHUNKS 0xffff /* a job's chunks fit the ticket's 16 bits (at most 4 per thread) */

struct nnc_pool {
  int n;                  /* threads in all, the caller's included */
  int64_t grain;          /* least work per chunk */
  int started;            /* workers running (n - 1 once started) */
  pthread_t *workers;
  pthread_mutex_t mu;
  pthread_cond_t wake;    /* a new job or stop */
  pthread_cond_t done;    /* the last chunk of the job finished */
  Job job;                /* written under mu */
  _Atomic uint32_t gen;   /* generation of the current job */
  Block *blocks;          /* [n]: thread w's chunks first (the caller is thread 0) */
  _Atomic int joined;     /* workers that took an index */
  _Atomic uint32_t left;  /* chunks of the current job not finished */
  _Atomic bool stop;
  _Atomic bool faulted;   /* a kernel of this call reported a fault (fault.h), in `fault` */
  char fault[512];
  /* splits whose gain is in doubt (small jobs, parts jobs), timed by the calls of their
   * entry (touched by the calling thread alone: a context's calls take turns) */
  bool doubtful_whole;    /* this call runs its doubtful jobs whole */
  bool doubtful_seen;     /* this call had one */
  EntryChoice choice[AB_ENTRIES];
};

static _Thread_local nnc_pool *current_pool;
/* The pool of the call this thread works for, where its kernels' faults go: current_pool,
 * except inside a chunk of a split job, where current_pool is NULL (the pool is busy) */
static _Thread_local nnc_pool *fault_pool;

static void run_split(nnc_pool *p, nnc_kernel_fn fn, void *const *bufs, const int64_t *syms, int64_t n,
                      int64_t chunks);
static void run_doubtful(nnc_pool *p, nnc_kernel_fn fn, void *const *bufs, const int64_t *syms, int64_t n,
                         int64_t chunks);
static bool small_job(const nnc_pool *p, int64_t n, int64_t work);

static inline uint64_t ticks(void) {
#if defined(__x86_64__) || defined(__i386__)
  return __builtin_ia32_rdtsc();
#else
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
#endif
}

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

/* A positive integer from the environment, or `fallback`. */
static long env_positive(const char *name, long max, long fallback) {
  const char *env = getenv(name);
  if (env && *env) {
    char *end;
    long v = strtol(env, &end, 10);
    if (!*end && v > 0 && v <= max) return v;
  }
  return fallback;
}

int nnc_pool_default_threads(void) {
  long env = env_positive("NNC_NUM_THREADS", 1024, 0);
  if (env) return (int)env;
  cpu_set_t set;
  if (!sched_getaffinity(0, sizeof set, &set) && CPU_COUNT(&set) > 0) return CPU_COUNT(&set);
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 && n <= 1024 ? (int)n : 1;
}

nnc_pool *nnc_pool_new(int n) {
  nnc_pool *p = calloc(1, sizeof *p);
  if (!p) return NULL;
  p->n = n < 1 ? 1 : n;
  p->grain = env_positive("NNC_PARALLEL_GRAIN", 1L << 40, GRAIN);
  /* adaptive: a polling worker that sees a new job takes the mutex while the caller still
   * holds it for a few stores; sleeping on it meant a futex wake-up per job (an elementwise
   * kernel split on 2 threads and a serial one after it took 40 % less time this way) */
  pthread_mutexattr_t ma;
  pthread_mutexattr_init(&ma);
  pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_ADAPTIVE_NP);
  pthread_mutex_init(&p->mu, &ma);
  pthread_mutexattr_destroy(&ma);
  pthread_cond_init(&p->wake, NULL);
  pthread_cond_init(&p->done, NULL);
  return p;
}

int nnc_pool_threads(const nnc_pool *pool) { return pool ? pool->n : 1; }

nnc_pool *nnc_pool_enter(nnc_pool *pool) {
  nnc_pool *prev = current_pool;
  current_pool = fault_pool = pool;
  return prev;
}

void nnc_rt_index_error(const char *site, double value, int64_t size) {
  char why[96];
  nnc_describe_bad_index(why, sizeof why, value, size);
  nnc_pool *p = fault_pool;
  if (!p) { /* a kernel run outside any context's call: nobody to fail */
    fprintf(stderr, "nnc: %s holds %s\n", site, why);
    return;
  }
  if (atomic_exchange(&p->faulted, true)) return; /* the call's first fault is its message */
  snprintf(p->fault, sizeof p->fault, "%s holds %s", site, why);
}

bool nnc_pool_take_fault(nnc_pool *pool, char *msg, size_t len) {
  if (!pool || !atomic_load(&pool->faulted)) return false;
  snprintf(msg, len, "%s", pool->fault);
  atomic_store(&pool->faulted, false);
  return true;
}

/* One cblas_sgemm call of a product (row-major), cut into a fixed grid of tiles of C. */
typedef struct SgemmTiles {
  int ta, tb, m, n, k;
  float alpha, beta;
  const float *a, *b;
  float *c;
  int lda, ldb, ldc;
  int pm, pn;             /* tiles down and across C */
} SgemmTiles;

/* Tile i's bounds: parts of `len` cut at multiples of `align` (the last takes the rest). */
static int tile_edge(int len, int parts, int i, int align) {
  if (i >= parts) return len;
  int64_t e = (int64_t)len * i / parts;
  return (int)(e - e % align);
}

/* Tiles [lo, hi) of the product, each one single-threaded sgemm (the pool's kernel type:
 * bufs is the SgemmTiles). */
static void sgemm_tiles(void *const *bufs, const int64_t *syms, int64_t lo, int64_t hi) {
  (void)syms;
  const SgemmTiles *t = (const SgemmTiles *)bufs;
  for (int64_t i = lo; i < hi; i++) {
    int ti = (int)(i / t->pn), tj = (int)(i % t->pn);
    int r0 = tile_edge(t->m, t->pm, ti, SGEMM_TILE_ROWS), r1 = tile_edge(t->m, t->pm, ti + 1, SGEMM_TILE_ROWS);
    int c0 = tile_edge(t->n, t->pn, tj, SGEMM_TILE_COLS), c1 = tile_edge(t->n, t->pn, tj + 1, SGEMM_TILE_COLS);
    if (r1 <= r0 || c1 <= c0) continue;
    const float *a = t->a + (t->ta ? r0 : (int64_t)r0 * t->lda);
    const float *b = t->b + (t->tb ? (int64_t)c0 * t->ldb : c0);
    cblas_sgemm(CblasRowMajor, t->ta ? CblasTrans : CblasNoTrans, t->tb ? CblasTrans : CblasNoTrans, r1 - r0,
                c1 - c0, t->k, t->alpha, a, t->lda, b, t->ldb, t->beta, t->c + (int64_t)r0 * t->ldc + c0, t->ldc);
  }
}

/* The tile grid of an m x n product of `flops`: about flops / SGEMM_TILE_FLOPS tiles (about
 * SGEMM_MAX_TILES at most), cutting the longer side of the tiles first.  A function of the shape
 * alone, never of the thread count. */
static void tile_grid(int m, int n, double flops, int *pm, int *pn) {
  double want = flops / SGEMM_TILE_FLOPS;
  int tiles = want >= SGEMM_MAX_TILES ? SGEMM_MAX_TILES : want >= 1 ? (int)want : 1;
  *pm = *pn = 1;
  while (*pm * *pn < tiles) {
    bool cols = n / (*pn + 1) >= SGEMM_TILE_COLS, rows = m / (*pm + 1) >= SGEMM_TILE_ROWS;
    if (cols && (!rows || n / *pn >= m / *pm)) (*pn)++;
    else if (rows) (*pm)++;
    else break;
  }
}

void nnc_rt_sgemm(int order, int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda,
                  const float *b, int ldb, float beta, float *c, int ldc) {
  /* OpenBLAS alone on one thread: how it sums depends on its own thread count (0.3.21:
   * some outputs of a 12 x 1568 by 1568 x 256 product differ between 1 and 2 threads) */
  if (openblas_get_num_threads() != 1) openblas_set_num_threads(1);
  if (m <= 0 || n <= 0) return;
  SgemmTiles t = {ta == CblasTrans, tb == CblasTrans, m, n, k, alpha, beta, a, b, c, lda, ldb, ldc, 1, 1};
  if (order == CblasColMajor) { /* C^T = B^T A^T, row-major */
    t = (SgemmTiles){tb == CblasTrans, ta == CblasTrans, n, m, k, alpha, beta, b, a, c, ldb, lda, ldc, 1, 1};
  }
  tile_grid(t.m, t.n, 2.0 * m * n * k, &t.pm, &t.pn);
  int64_t tiles = (int64_t)t.pm * t.pn;
  nnc_pool *p = current_pool;
  void *const *job = (void *const *)&t;
  if (tiles < 2 || !p || p->n < 2) sgemm_tiles(job, NULL, 0, tiles);
  else if (small_job(p, 1, (int64_t)(2.0 * m * n * k / SGEMM_FLOPS_PER_WORK))) run_doubtful(p, sgemm_tiles, job, NULL, tiles, tiles);
  else run_split(p, sgemm_tiles, job, NULL, tiles, tiles);
}

/* Claim a chunk of job `gen` from block b: true with its index in *c, false when the block
 * has none left (or belongs to another job). */
static bool claim(Block *b, uint32_t gen, uint32_t *c) {
  for (;;) {
    uint64_t t = atomic_load(&b->ticket);
    uint32_t next = (uint32_t)t & 0xffff, end = (uint32_t)(t >> 16) & 0xffff;
    if ((uint32_t)(t >> 32) != gen || next >= end) return false;
    if (atomic_compare_exchange_weak(&b->ticket, &t, t + 1)) {
      *c = next;
      return true;
    }
  }
}

/* Claim and run chunks of job `gen` (a copy in *j) until none is left: thread w's own block
 * first, then the others' in turn.  A thread thus gets the same part of every job (the same
 * images of a batch, kernel after kernel) while its data is still in its core's cache, and a
 * thread that is late finds its chunks taken by the others, not waited for. */
static void run_chunks(nnc_pool *p, const Job *j, uint32_t gen, int w) {
  for (int k = 0; k < p->n;) {
    uint32_t c;
    if (!claim(&p->blocks[(w + k) % p->n], gen, &c)) {
      k++;
      continue;
    }
    /* a nested nnc_rt_parallel_for inside a chunk runs on its thread: the pool is busy */
    nnc_pool *outer = current_pool, *outer_fault = fault_pool;
    current_pool = NULL;
    fault_pool = p;
    j->fn(j->bufs, j->syms, j->n * c / j->nchunks, j->n * (c + 1) / j->nchunks);
    current_pool = outer;
    fault_pool = outer_fault;
    if (atomic_fetch_sub(&p->left, 1) == 1) {
      pthread_mutex_lock(&p->mu);
      pthread_cond_signal(&p->done);
      pthread_mutex_unlock(&p->mu);
    }
  }
}

/* Poll for a job after `seen` for up to IDLE_SPIN_NS: kernels often follow each other within
 * microseconds, and waking a sleeping thread takes longer than many of them run. */
static void spin_for_job(nnc_pool *p, uint32_t seen) {
  struct timespec t0, t;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (int i = 1;; i++) {
    if (atomic_load_explicit(&p->gen, memory_order_relaxed) != seen || atomic_load(&p->stop)) return;
    cpu_relax();
    if (i % 64 == 0) {
      clock_gettime(CLOCK_MONOTONIC, &t);
      if ((t.tv_sec - t0.tv_sec) * 1000000000L + (t.tv_nsec - t0.tv_nsec) > IDLE_SPIN_NS) return;
    }
  }
}

static void *worker(void *arg) {
  nnc_pool *p = arg;
  int w = atomic_fetch_add(&p->joined, 1) + 1; /* the caller is thread 0 */
  uint32_t seen = atomic_load(&p->gen);
  for (;;) {
    spin_for_job(p, seen);
    pthread_mutex_lock(&p->mu);
    while (atomic_load(&p->gen) == seen && !atomic_load(&p->stop)) pthread_cond_wait(&p->wake, &p->mu);
    if (atomic_load(&p->stop)) {
      pthread_mutex_unlock(&p->mu);
      return NULL;
    }
    seen = atomic_load(&p->gen);
    Job j = p->job;
    pthread_mutex_unlock(&p->mu);
    run_chunks(p, &j, seen, w);
  }
}

static bool start_workers(nnc_pool *p) {
  if (!p->workers && !(p->workers = calloc((size_t)p->n, sizeof *p->workers))) return false;
  if (!p->blocks && !(p->blocks = aligned_alloc(64, (size_t)p->n * sizeof *p->blocks))) return false;
  if (!p->started) memset(p->blocks, 0, (size_t)p->n * sizeof *p->blocks);
  while (p->started < p->n - 1 && !pthread_create(&p->workers[p->started], NULL, worker, p)) p->started++;
  return p->started > 0;
}

void nnc_pool_free(nnc_pool *p) {
  if (!p) return;
  pthread_mutex_lock(&p->mu);
  atomic_store(&p->stop, true);
  pthread_cond_broadcast(&p->wake);
  pthread_mutex_unlock(&p->mu);
  for (int i = 0; i < p->started; i++) pthread_join(p->workers[i], NULL);
  free(p->workers);
  free(p->blocks);
  pthread_cond_destroy(&p->wake);
  pthread_cond_destroy(&p->done);
  pthread_mutex_destroy(&p->mu);
  free(p);
}

/* fn over [0, n) in `chunks` chunks claimed by the pool's threads (the caller's included). */
static void run_split(nnc_pool *p, nnc_kernel_fn fn, void *const *bufs, const int64_t *syms, int64_t n,
                      int64_t chunks) {
  if (chunks > MAX_CHUNKS) chunks = MAX_CHUNKS;
  if (chunks < 2 || (!p->started && !start_workers(p))) {
    fn(bufs, syms, 0, n);
    return;
  }
  pthread_mutex_lock(&p->mu);
  uint32_t gen = atomic_load(&p->gen) + 1;
  p->job = (Job){fn, bufs, syms, n, (uint32_t)chunks};
  atomic_store(&p->left, (uint32_t)chunks);
  for (int w = 0; w < p->n; w++) { /* thread w's block: chunks [w c / n, (w + 1) c / n) */
    uint64_t first = (uint64_t)(chunks * w / p->n), end = (uint64_t)(chunks * (w + 1) / p->n);
    atomic_store(&p->blocks[w].ticket, (uint64_t)gen << 32 | end << 16 | first);
  }
  atomic_store(&p->gen, gen);
  pthread_cond_broadcast(&p->wake);
  pthread_mutex_unlock(&p->mu);
  Job j = p->job;
  run_chunks(p, &j, gen, 0);
  for (int i = 0; i < SPIN_POLLS && atomic_load(&p->left); i++) cpu_relax();
  pthread_mutex_lock(&p->mu);
  while (atomic_load(&p->left)) pthread_cond_wait(&p->done, &p->mu);
  pthread_mutex_unlock(&p->mu);
}

/* The work of n iterations of `work` each (saturating). */
static int64_t total_work(int64_t n, int64_t work) {
  return work > 0 && n > INT64_MAX / work ? INT64_MAX : n * (work > 0 ? work : 1);
}

/* Chunks for n iterations of `work` each: up to CHUNKS_PER_THREAD a thread, each of at
 * least the grain. */
static int64_t grain_chunks(const nnc_pool *p, int64_t n, int64_t work) {
  int64_t total = total_work(n, work);
  int64_t chunks = (int64_t)p->n * CHUNKS_PER_THREAD;
  if (chunks > n) chunks = n;
  return chunks < total / p->grain ? chunks : total / p->grain;
}

/* A split whose gain is in doubt: a small job, whose hand-over to another core may cost
 * more than its share of the work (this VM's two vCPUs: a cache line's round trip of 60-80 ns
 * at times, 330-340 ns at others; a worker asleep or descheduled on a loaded machine takes
 * microseconds to wake), or a parts job.  Split or whole as this call's entry has shown to pay
 * (nnc_pool_call_begin). */
static void run_doubtful(nnc_pool *p, nnc_kernel_fn fn, void *const *bufs, const int64_t *syms, int64_t n,
                         int64_t chunks) {
  p->doubtful_seen = true;
  if (p->doubtful_whole) fn(bufs, syms, 0, n);
  else run_split(p, fn, bufs, syms, n, chunks);
}

/* Is a job of n iterations of `work` each a small one (fewer than DOUBTFUL_GRAINS grains)? */
static bool small_job(const nnc_pool *p, int64_t n, int64_t work) {
  return total_work(n, work) / DOUBTFUL_GRAINS < p->grain;
}

void nnc_rt_parallel_for(nnc_kernel_fn fn, void *const *bufs, const int64_t *syms, int64_t n,
                         int64_t work) {
  nnc_pool *p = current_pool;
  if (n <= 0) return;
  if (!p) {
    fn(bufs, syms, 0, n);
    return;
  }
  int64_t chunks = grain_chunks(p, n, work);
  if (chunks > 1 && small_job(p, n, work)) run_doubtful(p, fn, bufs, syms, n, chunks);
  else run_split(p, fn, bufs, syms, n, chunks);
}

void nnc_rt_parallel_parts(nnc_kernel_fn fn, void *const *bufs, const int64_t *syms, int64_t n,
                           int64_t work) {
  nnc_pool *p = current_pool;
  if (n <= 0) return;
  if (!p || p->n < 2) {
    fn(bufs, syms, 0, n);
    return;
  }
  int64_t chunks = grain_chunks(p, n, work), most = (int64_t)p->n * CHUNKS_PER_THREAD;
  if (chunks > 1 && !small_job(p, n, work)) {
    run_split(p, fn, bufs, syms, n, chunks);
    return;
  }
  /* every part its own chunk, however short: a worker that starts late still finds some */
  run_doubtful(p, fn, bufs, syms, n, chunks > 1 ? chunks : n < most ? n : most);
}

/* Which way this call of `entry` runs its doubtful jobs: AB_TRIAL calls alternate, then
 * AB_RUN calls take the way whose median trial call was faster (split only when 5 % faster),
 * and so on.  Timed per call, not per job, since much of what a split costs shows after it:
 * the next kernel reads on one core what the other wrote, and a worker woken for one job
 * polls for the next one on a core the machine's other processes want.  The median, not the
 * fastest call: on a loaded machine the split calls' times spread widely (a worker
 * descheduled), and the fastest one measures the rare call when the other vCPU was free. */
uint64_t nnc_pool_call_begin(nnc_pool *p, int entry) {
  if (!p) return 0;
  p->doubtful_whole = false;
  p->doubtful_seen = false;
  if (p->n < 2 || entry < 0 || entry >= AB_ENTRIES) return 0;
  const EntryChoice *c = &p->choice[entry];
  uint32_t k = c->calls % (AB_TRIAL + AB_RUN);
  p->doubtful_whole = k < AB_TRIAL ? (k & 1) != 0 : c->whole;
  return ticks();
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return (x > y) - (x < y);
}

/* The median of n times (sorted in place). */
static uint64_t median(uint64_t *t, int n) {
  qsort(t, (size_t)n, sizeof *t, cmp_u64);
  return n % 2 ? t[n / 2] : t[n / 2 - 1] / 2 + t[n / 2] / 2;
}

void nnc_pool_call_end(nnc_pool *p, int entry, uint64_t t0) {
  if (!p || p->n < 2 || entry < 0 || entry >= AB_ENTRIES || !p->doubtful_seen) return;
  EntryChoice *c = &p->choice[entry];
  uint32_t k = c->calls++ % (AB_TRIAL + AB_RUN);
  if (k >= AB_TRIAL) return;
  c->trial[k & 1][k / 2] = ticks() - t0;
  if (k == AB_TRIAL - 1)
    c->whole = !(median(c->trial[0], AB_TRIAL / 2) * 20 < median(c->trial[1], AB_TRIAL / 2) * 19);
}
