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
#define LANES 8
/* the row helpers inline into each clone of online_softmax, compiled for its target */
#define ROW_FN static inline __attribute__((always_inline))
/* GCC 12 on x86-64: a clone for x86-64-v3 (AVX2, FMA) besides the baseline one.  Not under
 * the sanitizers: the clones' ifunc resolver runs while the dynamic loader relocates the
 * program, before ThreadSanitizer's runtime is up, and its instrumented code crashes there. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12 && \
    !defined(__SANITIZE_THREAD__) && !defined(__SANITIZE_ADDRESS__)
#define CLONED_FOR_AVX2 __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define CLONED_FOR_AVX2
#endif

/* Eight floats (GCC's vector extension: AVX registers where the clone for them runs, pairs of
 * SSE registers elsewhere), and the lanes' masks (-1 true, 0 false).  The helpers on them are
 * always inlined: no vector crosses a call, so the ABI GCC warns about never applies. */
#pragma GCC diagnostic ignored "-Wpsabi"
typedef float vf __attribute__((vector_size(4 * LANES), aligned(4)));
typedef int32_t vi __attribute__((vector_size(4 * LANES), aligned(4)));

ROW_FN vf vsplat(float x) { return (vf){x, x, x, x, x, x, x, x}; }
ROW_FN vf vselect(vi mask, vf a, vf b) { return (vf)((mask & (vi)a) | (~mask & (vi)b)); }

/* e^x for x <= 0 (a score minus its row's finite maximum: never NaN), lane by lane: Cephes
 * expf's reduction and polynomial; e^x below EXP_LOW (-inf too) is 0. */
ROW_FN vf vexp_nonpositive(vf x) {
  vi low = x < vsplat(EXP_LOW);
  vf xc = vselect(low, vsplat(0.0f), x);
  vi n = __builtin_convertvector(xc * vsplat(1.44269504088896341f) - vsplat(0.5f), vi); /* round(x / ln 2): xc <= 0 */
  vf fn = __builtin_convertvector(n, vf);
  vf r = xc - fn * vsplat(0.693359375f) - fn * vsplat(-2.12194440e-4f);
  vf p = vsplat(1.9875691500e-4f);
  p = p * r + vsplat(1.3981999507e-3f);
  p = p * r + vsplat(8.3334519073e-3f);
  p = p * r + vsplat(4.1665795894e-2f);
  p = p * r + vsplat(1.6666665459e-1f);
  p = p * r + vsplat(5.0000001201e-1f);
  vf y = p * r * r + r + vsplat(1.0f);
  vf e = y * (vf)((n + 127) << 23); /* 2^n: n in [-126, 0] */
  return vselect(low, vsplat(0.0f), e);
}

ROW_FN vf vload(const float *p) {
  vf v;
  memcpy(&v, p, sizeof v);
  return v;
}

/* NaN-propagating max, lane by lane (torch's max: a NaN wins) */
ROW_FN vf vmax_nan(vf m, vf x) { return vselect((x > m) | (x != x), x, m); }

ROW_FN float max_nan(float m, float x) { return x > m || x != x ? x : m; }

/* The largest of m and row[0..n), NaN if one is.  Lanes then one fixed order: the same bits
 * for every call with the same row. */
ROW_FN float row_max(const float *row, int n, float m) {
  int j = 0;
  if (n >= LANES) {
    vf v = vsplat(m);
    for (; j + LANES <= n; j += LANES) v = vmax_nan(v, vload(row + j));
    for (int l = 0; l < LANES; l++) m = max_nan(m, v[l]);
  }
  for (; j < n; j++) m = max_nan(m, row[j]);
  return m;
}

/* row[j] = e^(row[j] - m), m the largest of them (NaN if one is); their sum, lane by lane,
 * then the lanes in order.  As torch's softmax: m NaN or +inf makes every weight NaN (a NaN
 * score, or inf - inf); m -inf (every key hidden so far) makes them 0. */
ROW_FN float row_weights(float *row, int n, float m) {
  if (m == -INFINITY || !(m < INFINITY)) {
    for (int j = 0; j < n; j++) row[j] = m == -INFINITY ? 0.0f : NAN;
    return m == -INFINITY ? 0.0f : NAN;
  }
  int full = n / LANES * LANES;
  vf sum = vsplat(0.0f);
  for (int j = 0; j < full; j += LANES) {
    vf e = vexp_nonpositive(vload(row + j) - vsplat(m));
    memcpy(row + j, &e, sizeof e);
    sum += e;
  }
  if (full < n) { /* the tail, padded with lanes of -inf (weight 0) */
    vf t = vsplat(-INFINITY);
    for (int j = full; j < n; j++) t[j - full] = row[j] - m;
    vf e = vexp_nonpositive(t);
    for (int j = full; j < n; j++) row[j] = e[j - full];
    sum += e;
  }
  float total = 0.0f;
  for (int l = 0; l < LANES; l++) total += sum[l];
  return total;
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
  for (int i = 0; i < nl && sh[ATTN_CAUSAL]; i++) /* row l0 + i sees keys s0 + j <= l0 + i */
    for (int64_t j = l0 + i + 1 - s0 > 0 ? l0 + i + 1 - s0 : 0; j < ns; j++) p[i * ATTN_BLOCK_S + j] = -INFINITY;
}

/* One step of the online softmax over a block of scores: the rows' weights into p, the
 * output rows o rescaled to the new maxima.  Cloned for x86-64-v3 (AVX2, FMA), chosen at
 * load time where the CPU has it (every thread runs the same clone: the same bits). */
CLONED_FOR_AVX2
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
