/* values.c — compile-time values (value.h): constructors, scopes, conversions of values to
 * integers, dims and tensors, and the argument helpers every built-in and layer uses. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "value.h"

/* ---- values and scopes ---- */

Value v_none(void) { return (Value){.k = V_NONE}; }
Value v_int(int64_t i) { return (Value){.k = V_INT, .i = i}; }
Value v_float(double f) { return (Value){.k = V_FLOAT, .f = f}; }
Value v_tensor(INode *t) { return (Value){.k = V_TENSOR, .t = t}; }
bool v_is_number(const Value *v) { return v->k == V_INT || v->k == V_FLOAT || v->k == V_BOOL; }
double v_num(const Value *v) { return v->k == V_FLOAT ? v->f : (double)v->i; }

const char *v_kind_name(VKind k) {
  static const char *names[] = {"nothing", "int", "float", "bool", "string", "dimension",
                                "list", "tuple", "range", "tensor", "module", "function",
                                "function"};
  return (unsigned)k < sizeof names / sizeof *names ? names[k] : "value";
}

const char *v_kind_phrase(VKind k) {
  static const char *names[] = {"nothing", "an int", "a float", "a bool", "a string", "a dimension",
                                "a list", "a tuple", "a range", "a tensor", "a module", "a function",
                                "a function"};
  return (unsigned)k < sizeof names / sizeof *names ? names[k] : "a value";
}

Scope *scope_new(Sema *S, Scope *parent) {
  Scope *s = arena_alloc(S->arena, sizeof *s);
  s->parent = parent;
  return s;
}

Value *scope_find_local(Scope *s, const char *name) {
  for (int i = s->n - 1; i >= 0; i--)
    if (!strcmp(s->names[i], name)) return &s->vals[i];
  return NULL;
}

Value *scope_lookup(Scope *s, const char *name) {
  for (; s; s = s->parent) {
    Value *v = scope_find_local(s, name);
    if (v) return v;
  }
  return NULL;
}

void scope_set(Sema *S, Scope *s, const char *name, Value v) {
  Value *old = scope_find_local(s, name);
  if (old) {
    *old = v;
    return;
  }
  if (s->n == s->cap) {
    int cap = s->cap ? 2 * s->cap : 8;
    const char **names = arena_alloc(S->arena, cap * sizeof *names);
    Value *vals = arena_alloc(S->arena, cap * sizeof *vals);
    if (s->n) {
      memcpy(names, s->names, s->n * sizeof *names);
      memcpy(vals, s->vals, s->n * sizeof *vals);
    }
    s->names = names;
    s->vals = vals;
    s->cap = cap;
  }
  s->names[s->n] = name;
  s->vals[s->n++] = v;
}

/* ---- conversions ---- */

bool to_int(Sema *S, const Value *v, SrcLoc loc, int64_t *out) {
  if (v->k == V_INT || v->k == V_BOOL) {
    *out = v->i;
    return true;
  }
  if (v->k == V_DIM && !v->dim.syms) {
    *out = v->dim.k;
    return true;
  }
  return diag_error(S->d, loc, "expected an integer, got a %s", v_kind_name(v->k));
}

bool to_dim(Sema *S, const Value *v, SrcLoc loc, Dim *out) {
  if (v->k == V_DIM) {
    *out = v->dim;
    return true;
  }
  if (v->k == V_INT) {
    if (v->i < 0) return diag_error(S->d, loc, "a dimension cannot be negative (%lld)", (long long)v->i);
    *out = dim_const(v->i);
    return true;
  }
  return diag_error(S->d, loc, "expected a dimension (an integer or a symbolic dim), got a %s",
                    v_kind_name(v->k));
}

/* Flatten a (nested) list of numbers into data, recording its shape. */
static bool list_to_data(Sema *S, const Value *v, SrcLoc loc, int depth, Shape *s, float **data,
                         int *n, int *cap) {
  if (v_is_number(v)) {
    if (depth != s->rank) return diag_error(S->d, loc, "ragged nested list");
    if (*n == *cap) {
      *cap = *cap ? 2 * *cap : 16;
      float *d = arena_alloc(S->arena, *cap * sizeof *d);
      if (*n) memcpy(d, *data, *n * sizeof *d);
      *data = d;
    }
    (*data)[(*n)++] = (float)v_num(v);
    return true;
  }
  if (v->k != V_LIST) return diag_error(S->d, loc, "a tensor literal holds only numbers, not a %s", v_kind_name(v->k));
  if (depth >= MAX_RANK) return diag_error(S->d, loc, "tensor literal nested too deeply");
  if (depth == s->rank) {
    s->d[s->rank++] = dim_const(v->len);
  } else if (!dim_is(s->d[depth], v->len)) {
    return diag_error(S->d, loc, "ragged nested list");
  }
  for (int i = 0; i < v->len; i++)
    if (!list_to_data(S, &v->items[i], loc, depth + 1, s, data, n, cap)) return false;
  return true;
}

INode *to_tensor(Sema *S, const Value *v, SrcLoc loc) {
  if (v->k == V_TENSOR) return v->t;
  if (!S->e) {
    diag_error(S->d, loc, "tensor expressions are only allowed inside fn and export bodies");
    return NULL;
  }
  if (v_is_number(v)) return ir_fill(S->m, S->e, v_num(v), &(Shape){0}, loc);
  if (v->k == V_DIM) return ir_dim_value(S->m, S->e, v->dim, loc); /* e.g. a scan's step t */
  if (v->k == V_LIST) {
    Shape s = {0};
    float *data = NULL;
    int n = 0, cap = 0;
    if (!list_to_data(S, v, loc, 0, &s, &data, &n, &cap)) return NULL;
    return ir_const_data(S->m, S->e, data, &s, loc);
  }
  diag_error(S->d, loc, "expected a tensor, got a %s", v_kind_name(v->k));
  return NULL;
}

/* ---- arguments ---- */

const Value *arg_get(const Args *a, int i, const char *name) {
  if (i >= 0 && i < a->npos) return &a->pos[i];
  for (int k = 0; k < a->nkw; k++)
    if (name && !strcmp(a->kwnames[k], name)) return &a->kw[k];
  return NULL;
}

bool args_check(Sema *S, const Args *a, const char *fn, const char *const *names, int n) {
  if (a->npos > n)
    return diag_error(S->d, a->loc, "%s takes at most %d arguments, got %d", fn, n, a->npos);
  for (int k = 0; k < a->nkw; k++) {
    int found = -1;
    for (int i = 0; i < n; i++)
      if (names[i] && !strcmp(names[i], a->kwnames[k])) found = i;
    if (found < 0) return diag_error(S->d, a->loc, "%s has no argument named '%s'", fn, a->kwnames[k]);
    if (found < a->npos)
      return diag_error(S->d, a->loc, "%s: argument '%s' given twice", fn, a->kwnames[k]);
  }
  return true;
}
