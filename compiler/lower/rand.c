/* rand.c — OP_RAND as integer expressions: Philox4x32-10 (philox.h) keyed by the seed and
 * counting by the element's linear index, then uniform floats or Box-Muller normals.  The
 * reference interpreter computes the same bits (philox.h); value.c calls rand_value. */
#include "philox.h"
#include "lower_internal.h"

static Lx *seed_value(Lower *L, INode *s) {
  if (s->op == OP_CONST && !s->data) return lx_i(L, (int64_t)s->f[0]);
  int b = s->dtype == DT_I64 ? buffer_of(L, s) : -1;
  if (b >= 0 && L->le->bufs[b].dtype == DT_I64) /* an int64 input or parameter (a computed
                                                  * i64 value is kept in an f32 slot) */
    return lx(L, (Lx){.k = LX_LOADI, .buf = b, .a = {lx_i(L, 0)}}); /* all 64 bits */
  Lx *zero[MAX_RANK];
  for (int i = 0; i < MAX_RANK; i++) zero[i] = lx_i(L, 0);
  return ftoi(L, value(L, s, zero));
}

Lx *rand_value(Lower *L, INode *n, Lx *const *idx) {
  Lx *m32 = lx_i(L, 0xffffffffLL), *s32 = lx_i(L, 32), *seed = seed_value(L, n->in[0]);
  Lx *lin = linear(L, &n->shape, idx);
  uint64_t stream = (uint64_t)n->i[1];
  Lx *c0 = ibin(L, '&', lin, m32), *c1 = ibin(L, 'r', lin, s32);
  Lx *c2 = lx_i(L, (int64_t)(stream & 0xffffffffu)), *c3 = lx_i(L, (int64_t)(stream >> 32));
  Lx *k0 = ibin(L, '&', seed, m32), *k1 = ibin(L, 'r', seed, s32);
  for (int r = 0; r < PHILOX_ROUNDS; r++) {
    Lx *p0 = ibin(L, 'u', lx_i(L, PHILOX_M0), c0), *p1 = ibin(L, 'u', lx_i(L, PHILOX_M1), c2);
    Lx *n0 = ibin(L, 'x', ibin(L, 'x', ibin(L, 'r', p1, s32), c1), k0);
    Lx *n2 = ibin(L, 'x', ibin(L, 'x', ibin(L, 'r', p0, s32), c3), k1);
    c0 = n0;
    c1 = ibin(L, '&', p1, m32);
    c2 = n2;
    c3 = ibin(L, '&', p0, m32);
    k0 = ibin(L, '&', ibin(L, 'w', k0, lx_i(L, PHILOX_W0)), m32);
    k1 = ibin(L, '&', ibin(L, 'w', k1, lx_i(L, PHILOX_W1)), m32);
  }
  Lx *scale = lx_f(L, 1.0 / 16777216.0);
  Lx *b0 = itof(L, ibin(L, 'r', c0, lx_i(L, 8)));
  if (!n->i[0]) return fop(L, OP_MUL, b0, scale);
  Lx *u1 = fop(L, OP_MUL, fop(L, OP_ADD, b0, lx_f(L, 0.5)), scale);
  Lx *u2 = fop(L, OP_MUL, itof(L, ibin(L, 'r', c1, lx_i(L, 8))), scale);
  Lx *rad = lx(L, (Lx){.k = LX_OP, .op = OP_SQRT, .a = {fop(L, OP_MUL, lx_f(L, -2.0), lx(L, (Lx){.k = LX_OP, .op = OP_LOG, .a = {u1}}))}});
  Lx *ang = lx(L, (Lx){.k = LX_OP, .op = OP_COS, .a = {fop(L, OP_MUL, lx_f(L, 6.2831853071795864769), u2)}});
  return fop(L, OP_MUL, rad, ang);
}
