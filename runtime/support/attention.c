/* attention.c — fused attention (see attention.h): FlashAttention's schedule on a CPU.
 *
 * A work item is one leading item b and a block of up to ATTN_BLOCK_L query rows.  It walks
 * the keys in blocks of ATTN_BLOCK_S:
 *   P = (Q_blk K_blkᵀ) · scale  (+ mask, -inf where causal hides a key)   one sgemm
 *   per row: m' = max(m, max_j P_j); P_j = exp(P_j - m'); z = z·exp(m - m') + Σ_j P_j;
 *            O_row *= exp(m - m')  (the online softmax: earlier keys' weights rescaled)
 *   O_blk += P V_blk                                                      one sgemm
 * and ends with O /= z.  O is the output rows themselves; the scores live in one block on
 * the stack.  The blocks, sgemm calls and sums of an item depend on the shapes alone, never
 * on the thread that runs it, so every thread count computes the same bits.  OpenBLAS runs
 * on one thread here, as everywhere (pool.c says why). */
#include <math.h>
#include <stdbool.h>
#include <string.h>

#include <cblas.h>

#include "attention.h"
#include "pool.h"

typedef struct Attn {
  const float *q, *k, *v, *mask;
  float *out;
  const int64_t *shape;
  float scale;
  int64_t qblocks; /* blocks of query rows per leading item */
} Attn;

#define EXP_LOW -87.33654f /* below ln(FLT_MIN): exp is 0 here (a masked key weighs nothing) */

/* e^x for x <= 0 (a score minus its row's maximum), Cephes expf's reduction and polynomial
 * in a form the compiler vectorizes; NaN stays NaN, e^-inf is 0. */
static inline float exp_nonpositive(float x) {
  float xc = x >= EXP_LOW ? x : EXP_LOW; /* NaN too: converted below, so never NaN */
  int32_t n = (int32_t)(xc * 1.44269504088896341f - 0.5f); /* round(x / ln 2): xc <= 0 */
  float fn = (float)n;
  float r = xc - fn * 0.693359375f - fn * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  float y = p * r * r + r + 1.0f;
  int32_t bits = (n + 127) << 23; /* 2^n: n in [-126, 0] */
  float two_n;
  memcpy(&two_n, &bits, sizeof two_n);
  float e = y * two_n;
  return x != x ? x : x < EXP_LOW ? 0.0f : e;
}

/* The largest of row[0..n), NaN if one is (as torch's max) */
static float row_max(const float *row, int n, float m) {
  for (int j = 0; j < n; j++) m = row[j] > m || row[j] != row[j] ? row[j] : m;
  return m;
}

/* row[j] = e^(row[j] - m) (0 for every key when m is -inf: nothing attended yet); their sum */
static float row_weights(float *row, int n, float m) {
  if (m == -INFINITY) {
    memset(row, 0, (size_t)n * sizeof *row);
    return 0.0f;
  }
  float sum = 0.0f;
  for (int j = 0; j < n; j++) row[j] = exp_nonpositive(row[j] - m);
  for (int j = 0; j < n; j++) sum += row[j];
  return sum;
}

/* The mask's offset for leading item b (its index over the lead dims, at the mask's strides) */
static int64_t mask_offset(const int64_t *shape, int64_t b) {
  int64_t nlead = shape[ATTN_NLEAD], off = 0;
  for (int64_t d = nlead - 1; d >= 0; d--) {
    int64_t size = shape[ATTN_LEAD + d];
    off += (b % size) * shape[ATTN_LEAD + nlead + d];
    b /= size;
  }
  return off;
}

/* Scores p [nl, ns] (row stride ATTN_BLOCK_S) of query rows l0.. and keys s0..: the mask
 * added, keys after a causal row's position -inf */
static void mask_scores(const Attn *a, const float *mask, float *p, int64_t l0, int nl, int64_t s0, int ns) {
  const int64_t *sh = a->shape;
  for (int i = 0; i < nl && mask; i++) {
    const float *mrow = mask + (l0 + i) * sh[ATTN_MASK_ROW] + s0 * sh[ATTN_MASK_COL];
    for (int j = 0; j < ns; j++) p[i * ATTN_BLOCK_S + j] += mrow[j * sh[ATTN_MASK_COL]];
  }
  for (int i = 0; i < nl && sh[ATTN_CAUSAL]; i++)
    for (int64_t j = l0 + i + 1 - s0; j < ns; j++)
      if (j >= 0) p[i * ATTN_BLOCK_S + j] = -INFINITY;
}

/* One step of the online softmax over a block of scores: the rows' weights into p, the
 * output rows o rescaled to the new maxima */
static void online_softmax(float *p, int nl, int ns, float *m, float *z, float *o, int64_t ev) {
  for (int i = 0; i < nl; i++) {
    float *row = p + i * ATTN_BLOCK_S;
    float m_new = row_max(row, ns, m[i]);
    float sum = row_weights(row, ns, m_new);
    if (m_new != m[i]) { /* (NaN: unequal, and makes the row NaN) */
      float alpha = m[i] == -INFINITY ? 0.0f : expf(m[i] - m_new);
      for (int64_t j = 0; j < ev; j++) o[i * ev + j] *= alpha;
      z[i] *= alpha;
      m[i] = m_new;
    }
    z[i] += sum;
  }
}

/* Work item `item`: leading item b, query rows [l0, l0 + nl) */
static void attend_item(const Attn *a, int64_t item) {
  const int64_t *sh = a->shape;
  int64_t L = sh[ATTN_L], S = sh[ATTN_S], E = sh[ATTN_E], Ev = sh[ATTN_EV], ldk = sh[ATTN_LDK], ldv = sh[ATTN_LDV];
  int64_t b = item / a->qblocks, l0 = item % a->qblocks * ATTN_BLOCK_L;
  int nl = (int)(L - l0 < ATTN_BLOCK_L ? L - l0 : ATTN_BLOCK_L);
  const float *q = a->q + (b * L + l0) * E, *k = a->k + b * S * ldk, *v = a->v + b * S * ldv;
  const float *mask = a->mask ? a->mask + mask_offset(sh, b) : NULL;
  float *o = a->out + (b * L + l0) * Ev;
  _Alignas(64) float p[ATTN_BLOCK_L * ATTN_BLOCK_S];
  float m[ATTN_BLOCK_L], z[ATTN_BLOCK_L];
  for (int i = 0; i < nl; i++) m[i] = -INFINITY, z[i] = 0.0f;
  memset(o, 0, (size_t)(nl * Ev) * sizeof *o);
  int64_t keys = sh[ATTN_CAUSAL] && l0 + nl < S ? l0 + nl : S; /* the last row's keys */
  for (int64_t s0 = 0; s0 < keys; s0 += ATTN_BLOCK_S) {
    int ns = (int)(keys - s0 < ATTN_BLOCK_S ? keys - s0 : ATTN_BLOCK_S);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nl, ns, (int)E, a->scale, q, (int)E, k + s0 * ldk, (int)ldk,
                0.0f, p, ATTN_BLOCK_S);
    mask_scores(a, mask, p, l0, nl, s0, ns);
    online_softmax(p, nl, ns, m, z, o, Ev);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nl, (int)Ev, ns, 1.0f, p, ATTN_BLOCK_S, v + s0 * ldv,
                (int)ldv, 1.0f, o, (int)Ev);
  }
  for (int i = 0; i < nl; i++) /* z = 0 (no key, or every key -inf): NaN, as torch's softmax */
    for (int64_t j = 0; j < Ev; j++) o[i * Ev + j] /= z[i];
}

static void attend_items(void *const *bufs, const int64_t *syms, int64_t lo, int64_t hi) {
  const Attn *a = (const Attn *)bufs;
  for (int64_t item = lo; item < hi; item++) attend_item(a, item);
}

void nnc_rt_attention(const float *q, const float *k, const float *v, const float *mask, float *out,
                      const int64_t *shape, float scale) {
  int64_t items = 1, L = shape[ATTN_L], S = shape[ATTN_S];
  for (int64_t d = 0; d < shape[ATTN_NLEAD]; d++) items *= shape[ATTN_LEAD + d];
  if (items <= 0 || L <= 0 || shape[ATTN_EV] <= 0) return;
  if (openblas_get_num_threads() != 1) openblas_set_num_threads(1);
  Attn a = {q, k, v, mask, out, shape, scale, (L + ATTN_BLOCK_L - 1) / ATTN_BLOCK_L};
  /* an item's work in vector multiply-adds and exponentials (pool.h's scalar operations) */
  int64_t work = ATTN_BLOCK_L * (S > 0 ? S : 1) * (shape[ATTN_E] + shape[ATTN_EV] + 16) / 8;
  nnc_rt_parallel_for(attend_items, (void *const *)&a, NULL, items * a.qblocks, work);
}
