/* symdim.c — sizes computed from symbolic sizes: a convolution's or a pooling's output height
 * floor((H + 2p - d(k - 1) - 1) / s) + 1 of a symbolic H.  A Dim is k × a product of symbols,
 * so such a size becomes a symbol of its own, *derived* from H by a rule floor((mul × H + add)
 * / div) (SymRule, ir.h) that the runtime evaluates from H's value before a call
 * (nnc_derive_syms, runtime/support/table.c).
 *
 * Rules are kept canonical so that equal sizes are one symbol, which is what lets a residual
 * block add its shortcut to its output: the 3×3 stride-2 convolution and the 1×1 stride-2
 * downsample of a ResNet both give floor((H + 1) / 2).  Two steps compose into one rule when
 * floor division allows it exactly (nested floor divisions: ⌊⌊u / a⌋ / b⌋ = ⌊u / ab⌋ for
 * a, b >= 1), and the three numbers are divided by their gcd.
 *
 * A Dim holds each symbol once, so a product that would hold one twice (the element count of
 * attention scores [B, T, T]) holds the square's symbol instead, derived from T by a rule of
 * its own (SymRule.square, "T*T"): T³ is {T, T*T}, T⁴ the square of T*T.  Every product of a
 * shape's dims is sized so, and the runtime computes the squares as it does the other rules. */
#include <stdio.h>
#include <string.h>
#include "ir.h"
#include "table.h"

const char TYPE_SIZE[] = "a size in a declared type";

static int64_t gcd64(int64_t a, int64_t b) {
  if (a < 0) a = -a;
  if (b < 0) b = -b;
  while (b) {
    int64_t t = a % b;
    a = b;
    b = t;
  }
  return a;
}

static int64_t floor_div(int64_t a, int64_t b) { return a / b - (a % b != 0 && (a < 0) != (b < 0)); }

/* "(H+1)/2", "(2*H-3)/4+1": the rule's formula as the symbol's name. */
static const char *rule_name(Model *m, const SymRule *r) {
  int64_t q = floor_div(r->add, r->div), rem = r->add - q * r->div;
  char buf[256], mul[32] = "", add[32] = "", tail[32] = "";
  if (r->mul != 1) snprintf(mul, sizeof mul, "%lld*", (long long)r->mul);
  if (rem) snprintf(add, sizeof add, "+%lld", (long long)rem);
  if (q) snprintf(tail, sizeof tail, "%+lld", (long long)q);
  const char *src = m->sym_names[r->src];
  bool paren = *add || *mul || strpbrk(src, "+-*/");
  if (r->div == 1) snprintf(buf, sizeof buf, "%s%s%s%s%s%s", paren ? "(" : "", mul, src, add, paren ? ")" : "", tail);
  else snprintf(buf, sizeof buf, "%s%s%s%s%s/%lld%s", paren ? "(" : "", mul, src, add, paren ? ")" : "",
                (long long)r->div, tail);
  return arena_strdup(m->arena, buf);
}

/* The index of the symbol for rule r, adding it if new; -1 when the model has MAX_SYMS. */
static int rule_sym(Model *m, SymRule r, SrcLoc loc, const char *what) {
  for (int i = 0; i < m->nsyms; i++) {
    SymRule *o = &m->sym_rules[i];
    if (!o->derived || o->square || o->src != r.src || o->mul != r.mul || o->add != r.add || o->div != r.div) continue;
    /* a declared type's size (`f32[N, T - 1]`) is whatever the layer computing it makes it:
     * a slice's length (clamped at 0) or a layer's output size (at least 1) */
    if (o->clamp != r.clamp && !o->typed && what != TYPE_SIZE) continue;
    if (o->typed && what != TYPE_SIZE) { /* a declared type named it first: the layer is the better site */
      int site = model_check_site(m, loc, what);
      o->site = m->sites[site];
      o->clamp = r.clamp;
      o->typed = false;
    }
    return i;
  }
  if (m->nsyms == MAX_SYMS) return -1;
  int site = model_check_site(m, loc, what); /* may move m->sites */
  r.site = m->sites[site];
  r.typed = what == TYPE_SIZE;
  m->sym_names[m->nsyms] = rule_name(m, &r);
  m->sym_rules[m->nsyms] = r;
  return m->nsyms++;
}

/* sym's square's symbol if the model has it, else -1 */
static int known_square(const Model *m, int sym) {
  for (int i = sym + 1; i < m->nsyms; i++)
    if (m->sym_rules[i].square && m->sym_rules[i].src == sym) return i;
  return -1;
}

/* The symbol of sym's square, adding it if new; -1 when the model has MAX_SYMS. */
static int square_sym(Model *m, int sym) {
  int known = known_square(m, sym);
  if (known >= 0 || m->nsyms == MAX_SYMS) return known;
  const char *src = m->sym_names[sym];
  bool paren = strpbrk(src, "+-*/") != NULL;
  size_t len = 2 * strlen(src) + 6;
  char *name = arena_alloc(m->arena, len);
  snprintf(name, len, paren ? "(%s)*(%s)" : "%s*%s", src, src);
  m->sym_names[m->nsyms] = name;
  m->sym_rules[m->nsyms] = (SymRule){.derived = true, .square = true, .src = sym, .mul = 1, .div = 1,
                                      .site = "a tensor's element count"};
  return m->nsyms++;
}

Dim dim_mul(Model *m, Dim a, Dim b) {
  Dim p = {0, a.syms};
  if (__builtin_mul_overflow(a.k, b.k, &p.k)) /* saturated: the shape checks (ir_shape_supported) refuse it */
    p.k = (a.k < 0) != (b.k < 0) ? INT64_MIN : INT64_MAX;
  for (uint32_t rest = b.syms; rest; rest &= rest - 1) {
    int sym = __builtin_ctz(rest);
    while (p.syms & (1u << sym)) { /* sym twice: its square instead, which may be there already */
      p.syms &= ~(1u << sym);
      int sq = square_sym(m, sym);
      if (sq < 0) {
        m->syms_full = true;
        break;
      }
      sym = sq;
    }
    p.syms |= 1u << sym;
  }
  return p;
}

bool dim_div(const Model *m, Dim a, Dim b, Dim *q) {
  if (b.k == 0 || a.k % b.k) return false;
  Dim r = {a.k / b.k, a.syms};
  for (uint32_t rest = b.syms; rest; rest &= rest - 1) {
    int sym = __builtin_ctz(rest), sq = sym;
    /* T out of T^e: the lowest power of two in e's binary digits gives up one T */
    int chain[MAX_SYMS], n = 0;
    while (sq >= 0 && !(r.syms & (1u << sq))) chain[n++] = sq, sq = known_square(m, sq);
    if (sq < 0) return false;
    r.syms &= ~(1u << sq); /* T^(2^n) / T = T^(2^(n-1)) · ... · T^2 · T */
    for (int i = 0; i < n; i++) r.syms |= 1u << chain[i];
  }
  *q = r;
  return true;
}

/* dim_derive, and dim_slice_length with clamp */
static Dim derive(Model *m, Dim x, int64_t mul, int64_t add, int64_t div, bool clamp, const char *what, SrcLoc loc,
                  Diag *d, bool *ok) {
  *ok = true;
  if (!x.syms) {
    int64_t v = floor_div(mul * x.k + add, div);
    return dim_const(clamp && v < 0 ? 0 : v);
  }
  if (x.syms & (x.syms - 1)) {
    char b[64];
    dim_str(m, x, b, sizeof b);
    *ok = diag_error(d, loc, "%s: the size %s is a product of symbolic dims; pin one with -D", what, b);
    return x;
  }
  if (!clamp && !add && mul % div == 0) /* a multiple of x stays one, of a derived x too: 2 * (H-1) */
    return (Dim){mul / div * x.k, x.syms};
  SymRule r = {.derived = true, .clamp = clamp, .src = __builtin_ctz(x.syms), .mul = mul * x.k, .add = add, .div = div};
  const SymRule *s = &m->sym_rules[r.src];
  if (s->clamp || s->square) { /* max(0, ·) and a square do not compose: a rule of their own over them */
  } else if (s->derived && r.mul == 1) { /* ⌊(⌊(mS + a) / c⌋ + a2) / c2⌋ = ⌊(mS + a + c·a2) / (c·c2)⌋ */
    r = (SymRule){.derived = true, .clamp = clamp, .src = s->src, .mul = s->mul, .add = s->add + s->div * r.add,
                  .div = s->div * r.div};
  } else if (s->derived && s->div == 1) { /* the source is exactly mS + a */
    r = (SymRule){.derived = true, .clamp = clamp, .src = s->src, .mul = r.mul * s->mul, .add = r.mul * s->add + r.add,
                  .div = r.div};
  }
  int64_t g = gcd64(gcd64(r.mul, r.add), r.div);
  r.mul /= g, r.add /= g, r.div /= g;
  if (r.add == 0 && r.div == 1) return (Dim){r.mul, 1u << r.src}; /* a multiple of the symbol */
  int sym = rule_sym(m, r, loc, what);
  if (sym < 0) *ok = diag_error(d, loc, "%s: more than %d symbolic sizes in the model; pin some with -D", what, MAX_SYMS);
  return sym < 0 ? x : (Dim){1, 1u << sym};
}

Dim dim_derive(Model *m, Dim x, int64_t mul, int64_t add, int64_t div, const char *what, SrcLoc loc, Diag *d,
               bool *ok) {
  return derive(m, x, mul, add, div, false, what, loc, d, ok);
}

Dim dim_slice_length(Model *m, Dim x, int64_t add, int64_t div, SrcLoc loc, Diag *d, bool *ok) {
  return derive(m, x, 1, add, div, true, "slice: the length", loc, d, ok);
}

static uint32_t nodes_syms(const Entry *e) {
  uint32_t mask = 0;
  for (int i = 0; i < e->nnodes; i++) {
    const INode *n = e->nodes[i];
    for (int k = 0; k < n->shape.rank; k++) mask |= n->shape.d[k].syms;
    if (n->op == OP_SCAN) mask |= nodes_syms(n->scan->body) | n->scan->bound.syms;
  }
  return mask;
}

uint32_t entry_syms_used(const Model *m, const Entry *e) {
  uint32_t mask = nodes_syms(e);
  /* and the squares of those: element counts and byte sizes use them, not the shapes' axes */
  for (int i = 0; i < m->nsyms; i++)
    if (m->sym_rules[i].square && (mask >> m->sym_rules[i].src & 1)) mask |= 1u << i;
  return mask;
}

uint32_t model_sym_roots(const Model *m, uint32_t mask) {
  for (int i = m->nsyms - 1; i >= 0; i--) /* a rule's source has a lower index */
    if ((mask & (1u << i)) && m->sym_rules[i].derived) mask = (mask & ~(1u << i)) | (1u << m->sym_rules[i].src);
  return mask;
}

int32_t sym_rule_flags(const SymRule *r) { return (r->clamp ? NNC_SYM_CLAMP : 0) | (r->square ? NNC_SYM_SQUARE : 0); }

bool model_derive_syms(const Model *m, uint32_t used, int64_t *syms, char *err, size_t errlen) {
  nnc_sym_rule rules[MAX_SYMS];
  for (int i = 0; i < m->nsyms; i++) {
    const SymRule *r = &m->sym_rules[i];
    rules[i] = (nnc_sym_rule){r->derived ? r->src : -1, sym_rule_flags(r), r->mul, r->add, r->div, r->site};
  }
  return nnc_derive_syms(rules, m->nsyms, m->sym_names, used, syms, err, errlen) == 0;
}
