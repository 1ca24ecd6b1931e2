/* expr.c — the scalar expressions of the loop IR (loopir.h Lx), hash-consed per entry so that
 * equal index arithmetic and equal loads are one node, and the integer simplifications that
 * keep index arithmetic short (constant folding, reshapes read back through their own
 * linearization, division and remainder by blocks of a product).  The rest of the lowering
 * builds its expressions through these constructors (lower_internal.h). */
#include <string.h>
#include "lower_internal.h"

/* ---- hash-consed expressions ---- */

static uint64_t mix(uint64_t h, uint64_t v) { /* splitmix64's finalizer over h ^ v */
  h ^= v + 0x9E3779B97F4A7C15ull + (h << 6) + (h >> 2);
  h = (h ^ (h >> 30)) * 0xBF58476D1CE4E5B9ull;
  h = (h ^ (h >> 27)) * 0x94D049BB133111EBull;
  return h ^ (h >> 31);
}

static uint64_t lx_hash(const Lx *t) {
  uint64_t fb[2];
  memcpy(fb, t->f, sizeof fb);
  uint64_t h = mix(mix(mix(t->k, (uint64_t)t->op), (uint64_t)t->c), t->syms);
  h = mix(mix(mix(mix(h, (uint64_t)t->var), (uint64_t)t->buf), (uint64_t)t->acc), fb[0]);
  h = mix(h, fb[1]);
  for (int i = 0; i < 3; i++) h = mix(h, (uintptr_t)t->a[i]);
  return h;
}

/* Twice the buckets once there are more expressions than buckets: chains stay short however
 * large the entry (an unrolled loop of 100,000 steps). */
static void lx_grow(Lower *L) {
  size_t cap = L->hash_cap ? 2 * L->hash_cap : 4096;
  Lx **t = arena_alloc(L->m->arena, cap * sizeof *t); /* the old table stays: 2x at most */
  for (size_t b = 0; b < L->hash_cap; b++)
    for (Lx *x = L->hash[b], *next; x; x = next) {
      next = x->next_hash;
      size_t h = lx_hash(x) & (cap - 1);
      x->next_hash = t[h];
      t[h] = x;
    }
  L->hash = t;
  L->hash_cap = cap;
}

Lx *lx(Lower *L, Lx t) {
  if (L->hash_count >= L->hash_cap) lx_grow(L);
  size_t h = lx_hash(&t) & (L->hash_cap - 1);
  for (Lx *x = L->hash[h]; x; x = x->next_hash)
    if (x->k == t.k && x->op == t.op && !memcmp(x->f, t.f, sizeof t.f) && x->c == t.c &&
        x->syms == t.syms && x->var == t.var && x->buf == t.buf && x->acc == t.acc &&
        !memcmp(x->a, t.a, sizeof t.a))
      return x;
  Lx *x = arena_alloc(L->m->arena, sizeof *x);
  *x = t;
  x->next_hash = L->hash[h];
  L->hash[h] = x;
  L->hash_count++;
  return x;
}

Lx *lx_i(Lower *L, int64_t c) { return lx(L, (Lx){.k = LX_I, .c = c}); }
Lx *lx_f(Lower *L, double f) { return lx(L, (Lx){.k = LX_F, .f = {f}}); }
Lx *lx_var(Lower *L, int v) { return lx(L, (Lx){.k = LX_VAR, .var = v}); }
Lx *lx_chunk(Lower *L) { return lx(L, (Lx){.k = LX_CHUNK}); }
Lx *lx_dim(Lower *L, Dim d) { return d.syms ? lx(L, (Lx){.k = LX_SYM, .c = d.k, .syms = d.syms}) : lx_i(L, d.k); }

/* lo <= x <= hi for integer x, from the static bounds of the kernel's loops (hi INT64_MAX
 * when unbounded above), or false. */
static bool int_range(const Lower *L, const Lx *x, int64_t *lo, int64_t *hi, int depth) {
  int64_t l0, h0, l1, h1;
  if (depth > 32) return false;
  switch (x->k) {
  case LX_I: *lo = *hi = x->c; return true;
  case LX_SYM: /* a product of dims: unknown but not negative */
    if (x->c < 0) return false;
    *lo = x->syms ? 0 : x->c;
    *hi = x->syms ? INT64_MAX : x->c;
    return true;
  case LX_VAR:
    if (x->var >= L->nvars || !L->range[x->var].known) return false;
    *lo = L->range[x->var].lo;
    *hi = L->range[x->var].hi;
    return true;
  case LX_IBIN:
    if (!int_range(L, x->a[0], &l0, &h0, depth + 1)) return false;
    if (x->op == '+' || x->op == '*') {
      if (!int_range(L, x->a[1], &l1, &h1, depth + 1) || l0 < 0 || l1 < 0) return false;
      bool big = h0 > (INT64_MAX >> 2) || h1 > (INT64_MAX >> 2) || (x->op == '*' && h1 && h0 > (INT64_MAX >> 2) / h1);
      *lo = x->op == '+' ? l0 + l1 : l0 * l1;
      *hi = big ? INT64_MAX : x->op == '+' ? h0 + h1 : h0 * h1;
      return true;
    }
    if ((x->op == '/' || x->op == '%') && x->a[1]->k == LX_I && x->a[1]->c > 0 && l0 >= 0) {
      int64_t d = x->a[1]->c;
      *lo = x->op == '/' ? l0 / d : 0;
      *hi = x->op == '/' ? (h0 == INT64_MAX ? INT64_MAX : h0 / d) : (h0 < d - 1 ? h0 : d - 1);
      return true;
    }
    return false;
  default: return false;
  }
}

/* x / d or x % d (d > 0) of a non-negative x = p * c + q with c a multiple of d, or d a
 * multiple of c and q < c: what a reshape's unflattening gives when a tensor is read back in
 * blocks (a group norm's statistics per group of channels: (c * H*W + f) / (G*H*W) with
 * f < H*W is c / G).  NULL when no rule applies. */
static Lx *div_mod_simplified(Lower *L, int op, Lx *a, int64_t d) {
  int64_t lo, hi, ql, qh, xl, xh;
  if (!int_range(L, a, &lo, &hi, 0) || lo < 0) return NULL;
  if (hi < d) return op == '/' ? lx_i(L, 0) : a;
  if (a->k != LX_IBIN || (a->op != '+' && a->op != '*')) return NULL;
  for (int side = 0; side < 2; side++) {
    Lx *p = a->op == '*' ? a : a->a[side], *q = a->op == '*' ? NULL : a->a[1 - side], *x = p;
    int64_t c = 1;
    while (x->k == LX_IBIN && x->op == '*' && x->a[1]->k == LX_I && x->a[1]->c > 0 && c <= (INT64_MAX >> 2) / x->a[1]->c) {
      c *= x->a[1]->c; /* (x c1) c2 = x (c1 c2) */
      x = x->a[0];
    }
    if (c == 1) continue;
    if (!int_range(L, x, &xl, &xh, 0) || xl < 0) continue;
    if (q && (!int_range(L, q, &ql, &qh, 0) || ql < 0)) continue;
    if (c % d == 0) /* (x c + q) / d = x (c / d) + q / d;  (x c + q) % d = q % d */
      return op == '/' ? ibin(L, '+', ibin(L, '*', x, lx_i(L, c / d)), q ? ibin(L, '/', q, lx_i(L, d)) : lx_i(L, 0))
                       : q ? ibin(L, '%', q, lx_i(L, d)) : lx_i(L, 0);
    if (d % c == 0 && (!q || qh < c)) /* q never carries into a multiple of d */
      return op == '/' ? ibin(L, '/', x, lx_i(L, d / c))
                       : ibin(L, '+', ibin(L, '*', ibin(L, '%', x, lx_i(L, d / c)), lx_i(L, c)), q ? q : lx_i(L, 0));
    if (a->op == '*') break;
  }
  return NULL;
}

/* Is x a loop variable that stays in [0, size) (a loop to a run-time size)? */
static bool below_size(const Lower *L, const Lx *x, const Lx *size) {
  return x->k == LX_VAR && x->var < L->nvars && L->range[x->var].known && L->range[x->var].lo >= 0 &&
         L->range[x->var].below == size;
}

/* x / d or x % d for a run-time size d (symbolic H*W): x = q or x = A * d + q with q a loop
 * variable below d and A not negative, what a reshape of a symbolic map read back gives.
 * NULL when no rule applies. */
static Lx *div_mod_by_size(Lower *L, int op, Lx *a, Lx *d) {
  int64_t lo, hi;
  if (below_size(L, a, d)) return op == '/' ? lx_i(L, 0) : a;
  if (a->k != LX_IBIN || a->op != '+') return NULL;
  for (int side = 0; side < 2; side++) {
    Lx *p = a->a[side], *q = a->a[1 - side];
    if (p->k != LX_IBIN || p->op != '*' || !below_size(L, q, d)) continue;
    Lx *x = p->a[1] == d ? p->a[0] : p->a[0] == d ? p->a[1] : NULL;
    if (x && int_range(L, x, &lo, &hi, 0) && lo >= 0) return op == '/' ? x : q;
  }
  return NULL;
}

Lx *ibin(Lower *L, int op, Lx *a, Lx *b) {
  if ((op == '/' || op == '%') && b->k == LX_I && b->c > 1 && a->k != LX_I) {
    Lx *r = div_mod_simplified(L, op, a, b->c);
    if (r) return r;
  }
  if ((op == '/' || op == '%') && b->k != LX_I) {
    Lx *r = div_mod_by_size(L, op, a, b);
    if (r) return r;
  }
  if (a->k == LX_I && b->k == LX_I && op != '<' && op != '=' && op != '&') {
    int64_t x = a->c, y = b->c;
    switch (op) {
    case '+': return lx_i(L, x + y);
    case '-': return lx_i(L, x - y);
    case '*': return lx_i(L, x * y);
    case '/': if (y) return lx_i(L, x / y); break;
    case '%': if (y) return lx_i(L, x % y); break;
    case 'm': return lx_i(L, x < y ? x : y);
    case 'M': return lx_i(L, x > y ? x : y);
    }
  }
  if (op == '+' && a->k == LX_I && a->c == 0) return b;
  if ((op == '+' || op == '-') && b->k == LX_I && b->c == 0) return a;
  if (op == '*' && ((a->k == LX_I && a->c == 0) || (b->k == LX_I && b->c == 0))) return lx_i(L, 0);
  if (op == '*' && a->k == LX_I && a->c == 1) return b;
  if ((op == '*' || op == '/') && b->k == LX_I && b->c == 1) return a;
  if (op == '%' && b->k == LX_I && b->c == 1) return lx_i(L, 0);
  if (op == '+' && b->k == LX_IBIN && b->op == '%') {
    /* (x / c) * c + x % c == x, and (A + x / c) * c + x % c == A * c + x (truncating
     * division, any c != 0: a constant or a run-time size): a reshape read back through its
     * own linearization is contiguous again */
    Lx *x = b->a[0], *c = b->a[1];
    if (a->k == LX_IBIN && a->op == '*' && a->a[1] == c) {
      Lx *e = a->a[0];
      bool quotient = e->k == LX_IBIN && e->op == '/' && e->a[0] == x && e->a[1] == c;
      if (quotient) return x;
      Lx *q = e->k == LX_IBIN && e->op == '+' ? e->a[1] : NULL;
      if (q && q->k == LX_IBIN && q->op == '/' && q->a[0] == x && q->a[1] == c)
        return ibin(L, '+', ibin(L, '*', e->a[0], c), x);
    }
  }
  return lx(L, (Lx){.k = LX_IBIN, .op = op, .a = {a, b}});
}

/* Float arithmetic on scalars, as elementwise ops of ops.def. */
Lx *fop(Lower *L, Op op, Lx *a, Lx *b) { return lx(L, (Lx){.k = LX_OP, .op = op, .a = {a, b}}); }
Lx *itof(Lower *L, Lx *a) { return a->k == LX_I ? lx_f(L, (double)a->c) : lx(L, (Lx){.k = LX_ITOF, .a = {a}}); }
Lx *ftoi(Lower *L, Lx *a) { return lx(L, (Lx){.k = LX_FTOI, .a = {a}}); }
Lx *select3(Lower *L, Lx *c, Lx *t, Lx *f) { return lx(L, (Lx){.k = LX_SELECT, .a = {c, t, f}}); }
Lx *clamp(Lower *L, Lx *v, int64_t lo, int64_t hi) {
  return ibin(L, 'm', ibin(L, 'M', v, lx_i(L, lo)), lx_i(L, hi));
}

Lx *clamp_dim(Lower *L, Lx *v, Dim size) {
  if (!size.syms) return clamp(L, v, 0, size.k - 1);
  return ibin(L, 'M', ibin(L, 'm', v, ibin(L, '-', lx_dim(L, size), lx_i(L, 1))), lx_i(L, 0));
}

Lx *inside_dim(Lower *L, Lx *v, Dim size) {
  return ibin(L, '&', ibin(L, '<', lx_i(L, -1), v), ibin(L, '<', v, lx_dim(L, size)));
}

/* Row-major linear offset of idx in shape s. */
Lx *linear(Lower *L, const Shape *s, Lx *const *idx) {
  Lx *off = lx_i(L, 0);
  for (int i = 0; i < s->rank; i++) off = ibin(L, '+', ibin(L, '*', off, lx_dim(L, s->d[i])), idx[i]);
  return off;
}

/* Map an index between shapes that differ only in axes of size 1. */
bool unit_map(const Shape *from, Lx *const *fi, const Shape *to, Lx **ti, Lx *zero) {
  int j = 0;
  for (int i = 0; i < to->rank; i++) {
    if (dim_is(to->d[i], 1)) {
      ti[i] = zero;
      continue;
    }
    while (j < from->rank && dim_is(from->d[j], 1)) j++;
    if (j == from->rank || !dim_eq(from->d[j], to->d[i])) return false;
    ti[i] = fi[j++];
  }
  for (; j < from->rank; j++)
    if (!dim_is(from->d[j], 1)) return false;
  return true;
}
