/* philox.h — the Philox4x32-10 counter-based generator (Salmon et al., "Parallel random
 * numbers: as easy as 1, 2, 3", SC 2011), in plain C: the reference for the random ops, which
 * codegen computes inline (lower.c) from the same constants.  A random element is a pure
 * function of (seed, stream, element index), so results do not depend on threads or order. */
#ifndef NNC_PHILOX_H
#define NNC_PHILOX_H

#include <math.h>
#include <stdint.h>

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u
#define PHILOX_ROUNDS 10

static inline void philox4x32(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]) {
  uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3], k0 = key[0], k1 = key[1];
  for (int r = 0; r < PHILOX_ROUNDS; r++) {
    uint64_t p0 = (uint64_t)PHILOX_M0 * c0, p1 = (uint64_t)PHILOX_M1 * c2;
    uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0, n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
    c0 = n0;
    c1 = (uint32_t)p1;
    c2 = n2;
    c3 = (uint32_t)p0;
    k0 += PHILOX_W0;
    k1 += PHILOX_W1;
  }
  out[0] = c0;
  out[1] = c1;
  out[2] = c2;
  out[3] = c3;
}

/* element `index` of stream `stream` under `seed`: uniform in [0, 1) from the top 24 bits of
 * the first word; normal by Box-Muller from the first two words */
static inline void philox_words(uint64_t seed, uint64_t stream, uint64_t index, uint32_t out[4]) {
  uint32_t ctr[4] = {(uint32_t)index, (uint32_t)(index >> 32), (uint32_t)stream, (uint32_t)(stream >> 32)};
  uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
  philox4x32(ctr, key, out);
}

static inline float philox_uniform(uint64_t seed, uint64_t stream, uint64_t index) {
  uint32_t w[4];
  philox_words(seed, stream, index, w);
  return (float)(w[0] >> 8) * (1.0f / 16777216.0f);
}

static inline float philox_normal(uint64_t seed, uint64_t stream, uint64_t index) {
  uint32_t w[4];
  philox_words(seed, stream, index, w);
  float u1 = ((float)(w[0] >> 8) + 0.5f) * (1.0f / 16777216.0f), u2 = (float)(w[1] >> 8) * (1.0f / 16777216.0f);
  return sqrtf(-2.0f * logf(u1)) * cosf(6.2831853071795864769f * u2);
}

#endif
