/* attention.h — fused attention, softmax(q kᵀ · scale + mask) v, for the ATTENTION op
 * (support library, hidden; generated code calls it: compiler/lower/attention.c).
 *
 * FlashAttention's schedule on a CPU: the [L, S] scores never exist, only one block of them
 * per thread.  Work items are (leading item, block of ATTN_BLOCK_L query rows), run through
 * nnc_rt_parallel_for; each item's arithmetic is fixed by the shapes alone (the same sgemm
 * calls and sums in the same order), so any thread count gives the same bits. */
#ifndef NNC_ATTENTION_H
#define NNC_ATTENTION_H

#include <stdint.h>

#define ATTN_BLOCK_L 64 /* query rows of a work item */
#define ATTN_BLOCK_S 256 /* keys per step of its loop: a 64 x 256 block of scores (64 KB) on the stack */

/* The i64 array `shape` of nnc_rt_attention: fixed fields, then ATTN_LEAD's two arrays. */
enum {
  ATTN_CAUSAL,   /* nonzero: query l attends to keys s <= l (torch's is_causal) */
  ATTN_NLEAD,    /* leading dims (q [lead..., L, E]) */
  ATTN_L,        /* query rows */
  ATTN_S,        /* keys */
  ATTN_E,        /* q and k columns */
  ATTN_EV,       /* v and out columns */
  ATTN_LDK,      /* floats between rows of k (k [lead..., S, ldk], its row's first E used) */
  ATTN_LDV,      /* floats between rows of v (v [lead..., S, ldv]) */
  ATTN_MASK_ROW, /* the mask's stride along L (0: broadcast) */
  ATTN_MASK_COL, /* the mask's stride along S */
  ATTN_LEAD      /* lead sizes [nlead], then the mask's strides along them [nlead] */
};

/* out [lead..., L, Ev] = softmax(q kᵀ · scale + mask) v, q [lead..., L, E]; mask, when not
 * NULL, is added to the scores at the strides `shape` gives (any broadcast of [lead..., L, S]).
 * As torch's softmax: a NaN score makes its row NaN, a row whose every score is -inf is NaN. */
void nnc_rt_attention(const float *q, const float *k, const float *v, const float *mask, float *out,
                      const int64_t *shape, float scale);

#endif
