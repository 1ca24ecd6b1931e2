/* onnx_ops_einsum.c — Einsum of one or two f32 operands as permutes, sums and one batched
 * matmul: with A's and B's letters sorted into batch (in both and the output), contracted (in
 * both, not the output), left (A's alone) and right (B's alone),
 *   A [batch, left, contracted] -> [batch, M, K],  B [batch, contracted, right] -> [batch, K, N],
 *   A B [batch, M, N] -> [batch, left, right] -> the output's order.
 * So 'bhid,bhjd->bhij', 'bhij,bhjd->bhid', 'bid,bjd->bij', 'ij,jk->ik' and the like are one
 * GEMM each.  A letter of one operand that is in neither the other nor the output is summed
 * first.  Refused, naming the equation: an ellipsis, a letter twice in one term (a
 * diagonal), more than two operands, dims of a letter that differ. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "onnx_import_internal.h"

#define S_ (&I->S)

typedef struct Term {
  char s[MAX_RANK + 1]; /* its letters, one per axis */
  int n;
} Term;

typedef struct Einsum {
  const char *eq;       /* for messages */
  Term in[2], out;
  int nin;
  Dim dim[128];         /* each letter's size */
} Einsum;

/* "ij,jk->ik" into terms (spaces ignored); the implicit output: the letters seen once, sorted */
static bool parse_equation(Imp *I, Einsum *e) {
  int t = 0, seen[128] = {0};
  bool arrow = false;
  Term *cur = &e->in[0];
  for (const char *p = e->eq; *p; p++) {
    unsigned char c = (unsigned char)*p;
    if (c == ' ') continue;
    if (c == ',' && !arrow && t < 1) cur = &e->in[++t];
    else if (c == '-' && p[1] == '>' && !arrow) arrow = true, p++, cur = &e->out;
    else if (c < 128 && isalpha(c) && cur->n < MAX_RANK) cur->s[cur->n++] = (char)c, seen[c] += !arrow;
    else return imp_fail(I, "equation '%s': nnc takes one or two terms of at most %d letters each, no ellipsis", e->eq, MAX_RANK);
  }
  e->nin = t + 1;
  for (int c = 0; c < 128 && !arrow; c++)
    if (seen[c] == 1 && e->out.n == MAX_RANK) return imp_fail(I, "equation '%s': the output has rank above %d", e->eq, MAX_RANK);
    else if (seen[c] == 1) e->out.s[e->out.n++] = (char)c;
  const Term *all[3] = {&e->in[0], &e->in[1], &e->out};
  for (int k = 0; k < 3; k++)
    for (int i = 0; i < all[k]->n; i++)
      if (strchr(all[k]->s + i + 1, all[k]->s[i]))
        return imp_fail(I, "equation '%s': letter '%c' twice in one term (a diagonal) is not supported", e->eq, all[k]->s[i]);
  for (int i = 0; i < e->out.n; i++)
    if (!seen[(unsigned char)e->out.s[i]]) return imp_fail(I, "equation '%s': output letter '%c' is in no input", e->eq, e->out.s[i]);
  return true;
}

/* each letter's size, from the operands; a letter's sizes must agree */
static bool letter_sizes(Imp *I, Einsum *e, INode *const *x) {
  bool known[128] = {false};
  for (int k = 0; k < e->nin; k++) {
    if (x[k]->shape.rank != e->in[k].n)
      return imp_fail(I, "equation '%s': input %d has rank %d but its term '%s' %d letters", e->eq, k, x[k]->shape.rank,
                      e->in[k].s, e->in[k].n);
    for (int i = 0; i < e->in[k].n; i++) {
      int c = e->in[k].s[i];
      if (known[c] && !dim_eq(e->dim[c], x[k]->shape.d[i]))
        return imp_fail(I, "equation '%s': the sizes of '%c' differ between the inputs", e->eq, c);
      e->dim[c] = x[k]->shape.d[i], known[c] = true;
    }
  }
  return true;
}

static bool has(const Term *t, char c) { return memchr(t->s, c, t->n) != NULL; }

/* x (of term *t) summed over the letters in neither `other` nor the output; *t keeps the rest */
static INode *sum_private(Imp *I, const Einsum *e, INode *x, Term *t, const Term *other) {
  uint32_t axes = 0;
  Term kept = {0};
  for (int i = 0; i < t->n; i++) {
    if (!has(&e->out, t->s[i]) && !(other && has(other, t->s[i]))) axes |= 1u << i;
    else kept.s[kept.n++] = t->s[i];
  }
  *t = kept;
  return axes ? ir_reduce(IM, IE, OP_SUM, x, axes, 0, I->loc, ID) : x;
}

/* x (of term `from`) permuted to the letters of `to` (the same set) */
static INode *to_order(Imp *I, INode *x, const Term *from, const char *to) {
  int perm[MAX_RANK];
  for (int i = 0; i < from->n; i++) {
    const char *at = memchr(from->s, to[i], from->n);
    if (!at) return imp_fail(I, "internal error: einsum letters '%s' and '%s' differ", from->s, to), NULL;
    perm[i] = (int)(at - from->s);
  }
  return ir_permute(IM, IE, x, perm, I->loc, ID);
}

/* x, whose axes are `letters` grouped as nb batch letters then two groups split at `mid`,
 * reshaped to [batch..., product of group 1, product of group 2] */
static INode *as_matrix(Imp *I, const Einsum *e, INode *x, const char *letters, int nb, int mid, int n) {
  Shape s = {.rank = nb + 2};
  for (int i = 0; i < nb; i++) s.d[i] = e->dim[(int)letters[i]];
  s.d[nb] = s.d[nb + 1] = dim_const(1);
  for (int i = nb; i < n; i++) s.d[nb + (i >= mid)] = dim_mul(IM, s.d[nb + (i >= mid)], e->dim[(int)letters[i]]);
  return ir_reshape(IM, IE, x, &s, I->loc, ID);
}

static INode *two_operands(Imp *I, Einsum *e, INode *a, INode *b) {
  char la[MAX_RANK + 1] = {0}, lb[MAX_RANK + 1] = {0}, lo[MAX_RANK + 1] = {0};
  int nb = 0, nl = 0, nr = 0, nk = 0;
  const Term *A = &e->in[0], *B = &e->in[1];
  char batch[MAX_RANK], left[MAX_RANK], right[MAX_RANK], con[MAX_RANK];
  for (int i = 0; i < A->n; i++) {
    char c = A->s[i];
    if (!has(B, c)) left[nl++] = c;
    else if (has(&e->out, c)) batch[nb++] = c;
    else con[nk++] = c;
  }
  for (int i = 0; i < B->n; i++)
    if (!has(A, B->s[i])) right[nr++] = B->s[i];
  /* A as [batch, left, con], B as [batch, con, right], the product as [batch, left, right] */
  if (nb + nl + nr > MAX_RANK) return imp_fail(I, "equation '%s': the product has rank above %d", e->eq, MAX_RANK), NULL;
  memcpy(la, batch, nb), memcpy(la + nb, left, nl), memcpy(la + nb + nl, con, nk);
  memcpy(lb, batch, nb), memcpy(lb + nb, con, nk), memcpy(lb + nb + nk, right, nr);
  memcpy(lo, batch, nb), memcpy(lo + nb, left, nl), memcpy(lo + nb + nl, right, nr);
  a = as_matrix(I, e, to_order(I, a, A, la), la, nb, nb + nl, A->n);
  b = as_matrix(I, e, to_order(I, b, B, lb), lb, nb, nb + nk, B->n);
  INode *y = ir_matmul(IM, IE, a, b, 0, 0, I->loc, ID);
  Shape s = {.rank = nb + nl + nr};
  for (int i = 0; i < s.rank; i++) s.d[i] = e->dim[(int)lo[i]];
  y = y ? ir_reshape(IM, IE, y, &s, I->loc, ID) : NULL;
  Term t = {.n = s.rank};
  memcpy(t.s, lo, s.rank);
  return y ? to_order(I, y, &t, e->out.s) : NULL;
}

bool op_einsum(Imp *I, const OpRow *row, INode **out) {
  Einsum e = {.eq = attr_string(I, "equation", NULL)};
  if (!e.eq) return I->worded ? false : imp_fail(I, "attribute 'equation' is missing");
  if (!parse_equation(I, &e)) return false;
  if (e.nin != I->node->n_inputs)
    return imp_fail(I, "equation '%s' has %d terms for %d inputs", e.eq, e.nin, I->node->n_inputs);
  INode *x[2] = {NULL, NULL};
  for (int k = 0; k < e.nin; k++)
    if (!(x[k] = input_f32(I, k))) return false;
  if (!letter_sizes(I, &e, x)) return false;
  for (int k = 0; k < e.nin; k++) x[k] = sum_private(I, &e, x[k], &e.in[k], e.nin == 2 ? &e.in[1 - k] : NULL);
  if (e.nin == 1) return (out[0] = e.in[0].n ? to_order(I, x[0], &e.in[0], e.out.s) : x[0]) != NULL;
  return (out[0] = two_operands(I, &e, x[0], x[1])) != NULL;
}
