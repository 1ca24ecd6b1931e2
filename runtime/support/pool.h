/* pool.h — the thread pool that splits a kernel's outer loop (support library, hidden).
 *
 * Generated code calls nnc_rt_parallel_for for a kernel whose outer loop may run split: every
 * iteration writes its own part of the outputs and reads nothing another iteration writes
 * (compiler/lower/parallel.c decides), so any split computes the same bits.  The pool used is the
 * one of the context whose call is running on this thread (nnc_ctx_call sets it); without
 * one (a context-less init at compile time) the kernel runs on the calling thread. */
#ifndef NNC_POOL_H
#define NNC_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A kernel: runs iterations [lo, hi) of its outer loop. */
typedef void (*nnc_kernel_fn)(void *const *bufs, const int64_t *syms, int64_t lo, int64_t hi);

typedef struct nnc_pool nnc_pool;

/* Threads the machine offers this process: NNC_NUM_THREADS if set to a positive number, else
 * the CPUs of the process's affinity mask. */
int nnc_pool_default_threads(void);
/* A pool of n threads in all (the caller's thread included); workers start on first use.
 * NULL when out of memory. */
nnc_pool *nnc_pool_new(int n);
void nnc_pool_free(nnc_pool *pool);
int nnc_pool_threads(const nnc_pool *pool);

/* The pool kernels on this thread use; returns the previous one (restore it afterwards). */
nnc_pool *nnc_pool_enter(nnc_pool *pool);

/* Run fn over [0, n) split into chunks among the current pool's threads; `work` estimates the
 * scalar operations of one iteration, so that small loops stay on the calling thread, and a
 * loop of a few grains' work splits only when the calls of its entry have shown that such
 * splits pay (nnc_pool_call_begin).  fn may
 * call it again (a direct convolution splits its output channels): when fn runs as one chunk
 * of a split loop, the nested loop runs whole on that chunk's thread; when the outer loop was
 * not split (one image), the nested one is. */
void nnc_rt_parallel_for(nnc_kernel_fn fn, void *const *bufs, const int64_t *syms, int64_t n,
                         int64_t work);

/* nnc_rt_parallel_for for iterations that each read their own part of an operand too large
 * for one core's cache but not for all of theirs (the columns of an LSTM step's recurrent
 * weights): split however little work, since then each core reads its parts from its own
 * cache instead of one core streaming the whole operand from L2, unless the entry's calls
 * have shown such splits not to pay (nnc_pool_call_begin). */
void nnc_rt_parallel_parts(nnc_kernel_fn fn, void *const *bufs, const int64_t *syms, int64_t n,
                           int64_t work);

/* After a call: whether one of its kernels reported a fault (fault.h), its message copied
 * into msg; clears it for the next call. */
bool nnc_pool_take_fault(nnc_pool *pool, char *msg, size_t len);

/* Around each call of entry `entry` of the context whose pool this is: the call's doubtful
 * jobs (small ones, and parts jobs: nnc_rt_parallel_for, nnc_rt_parallel_parts) run split or
 * whole as timing the entry's calls both ways has shown to pay.  begin returns the start time
 * end needs. */
uint64_t nnc_pool_call_begin(nnc_pool *pool, int entry);
void nnc_pool_call_end(nnc_pool *pool, int entry, uint64_t t0);

/* cblas_sgemm (its arguments, the enums as ints), OpenBLAS on one thread: a product of at
 * least SGEMM_THREADED_FLOPS is cut into tiles of C (a grid fixed by m, n and k) that the
 * current pool's threads share; the same tiles on any thread count, so the same bits.
 * Generated code calls it outside any job (inside one, the tiles run on its thread). */
#define SGEMM_THREADED_FLOPS 8e6
void nnc_rt_sgemm(int order, int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda,
                  const float *b, int ldb, float beta, float *c, int ldc);

#endif
