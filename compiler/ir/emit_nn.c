/* emit_nn.c — an entry of the graph IR as .nn source (emit_nn.h).
 *
 * Every live node becomes one statement `name = <spelling>` in topological order, so that
 * the front end, reading the text, calls the same IR builders with the same operands and
 * builds the same graph: the same fusion, the same results.  Spellings come from the op
 * table: an elementwise op is its FUNCTION (with the attributes that differ from their
 * defaults) or its SPELL template (ops.def); every other op has an emitter below, indexed by
 * op, and an op without one (an attention, a gather...) is an error naming it.  A scan is a
 * `scan t in 0..T { ... }` statement whose body is its body entry, written the same way.
 * Names: parameters and inputs keep theirs, other nodes the graph value they hold when
 * given one, else t<id>; every name is made an identifier that shadows nothing. */
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "emit_nn.h"
#include "emit_nn_idiom.h"

#define LITERAL_MAX 16 /* CONST data up to this many elements is written as a list literal */

typedef struct Emit {
  FILE *out;
  Arena *a;
  const Model *m;
  const Entry *e;
  const char *indent;       /* of a statement: deeper in a scan's body */
  const char **param_name;  /* by model parameter: its declared name (shared with scan bodies) */
  const char **step_name;   /* by model symbol: the variable of a scan's step (shared) */
  const char **name;        /* by node id: its variable (or literal text) */
  const char **out_name;    /* by output: the export's name for it */
  const char *const *value_names; /* NnEmitOptions */
  bool *live;               /* by node id: needed by an output */
  int *users;               /* by node id: live users (an output counts as one) */
  bool *inner;              /* by node id: inside an idiom, written as part of its call */
  NnIdiom **idiom;          /* by node id: the call that computes it, or NULL */
  const char **taken;       /* open addressing: every name given */
  const char *calls[64];    /* the functions the text calls: no variable may shadow them */
  int ncalls;
  size_t cap;
  NnWeight *w;
  int nw;
  char *err;
  size_t errlen;
} Emit;

static bool fail(Emit *E, const INode *n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static bool fail(Emit *E, const INode *n, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (n)
    snprintf(E->err, E->errlen, "cannot write %%%d (%s) as .nn: %s", n->id, op_info[n->op].name, msg);
  else
    snprintf(E->err, E->errlen, "cannot write the model as .nn: %s", msg);
  return false;
}

/* ---- names ---- */

static const char *const reserved[] = {
  "const", "module", "fn", "export", "for", "in", "if", "else", "return", "true", "false", "scan",
  "include", "with", "none", "inf", "nan", "PI", "self", "Parameter", NULL,
};

static size_t hash(const char *s) {
  size_t h = 1469598103934665603u;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211u;
  return h;
}

static const char **taken_slot(Emit *E, const char *s) {
  for (size_t i = hash(s) & (E->cap - 1);; i = (i + 1) & (E->cap - 1))
    if (!E->taken[i] || !strcmp(E->taken[i], s)) return &E->taken[i];
}

static bool name_free(Emit *E, const char *s) {
  for (int i = 0; reserved[i]; i++)
    if (!strcmp(reserved[i], s)) return false;
  for (int i = 0; i < E->ncalls; i++)
    if (!strcmp(E->calls[i], s)) return false;
  return !*taken_slot(E, s);
}

/* `want` as a new identifier: other bytes become '_' (leading ones dropped), a leading digit
 * gets a '_' before it (`0.weight` is `_0_weight`); a clash gets _2, _3... */
static const char *unique_name(Emit *E, const char *want) {
  size_t n = strlen(want);
  char *s = arena_alloc(E->a, n + 25);
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    char c = want[i];
    bool digit = c >= '0' && c <= '9', ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || digit;
    if (!o && digit) s[o++] = '_';
    if (ok || o) s[o++] = ok ? c : '_';
  }
  while (o && s[o - 1] == '_') o--;
  if (!o) s[o++] = 't';
  s[o] = 0;
  for (int k = 2; !name_free(E, s); k++) snprintf(s + o, 24, "_%d", k);
  *taken_slot(E, s) = s;
  return s;
}

/* A variable may shadow a built-in function (`sum` as an input's name), so graph names are
 * kept unless the text calls a function of that name: those are noted first. */
static void note_call(Emit *E, const char *fn, size_t n) {
  for (int i = 0; i < E->ncalls; i++)
    if (strlen(E->calls[i]) == n && !strncmp(E->calls[i], fn, n)) return;
  if (E->ncalls < (int)(sizeof E->calls / sizeof *E->calls)) E->calls[E->ncalls++] = arena_strndup(E->a, fn, n);
}

/* ---- numbers and shapes ---- */

/* The shortest text that reads back as exactly v (a float literal: with '.', 'e' or inf). */
static const char *number(Emit *E, double v) {
  char *s = arena_alloc(E->a, 40);
  if (isnan(v)) return "nan";
  if (isinf(v)) return v > 0 ? "inf" : "(-inf)";
  for (int p = 1; p <= 17; p++) {
    snprintf(s, 40, "%.*g", p, v);
    if (strtod(s, NULL) == v) break;
  }
  if (!strpbrk(s, ".en")) strcat(s, ".0");
  if (v < 0 || (v == 0 && signbit(v))) {
    memmove(s + 1, s, strlen(s) + 1);
    s[0] = '(';
    strcat(s, ")");
  }
  return s;
}

/* A dim as text: a scan's step by its variable, others by their names (dim_str). */
static void dim_text(const Emit *E, Dim d, char *buf, size_t len) {
  if (d.k == 1 && d.syms && !(d.syms & (d.syms - 1)) && E->step_name[__builtin_ctz(d.syms)])
    snprintf(buf, len, "%s", E->step_name[__builtin_ctz(d.syms)]);
  else dim_str(E->m, d, buf, len);
}

static void put_dims(Emit *E, const Shape *s) {
  fputc('[', E->out);
  for (int i = 0; i < s->rank; i++) {
    char d[128];
    dim_text(E, s->d[i], d, sizeof d);
    fprintf(E->out, "%s%s", i ? ", " : "", d);
  }
  fputc(']', E->out);
}

static void put_ints(Emit *E, const int64_t *v, int n) {
  fputc('[', E->out);
  for (int i = 0; i < n; i++) fprintf(E->out, "%s%lld", i ? ", " : "", (long long)v[i]);
  fputc(']', E->out);
}

static const char *ref(const Emit *E, const INode *n) { return E->name[n->id]; }

/* "name = " of node n (then its spelling and the shape comment, by put_end) */
static void put_start(Emit *E, const INode *n) { fprintf(E->out, "%s%s = ", E->indent, ref(E, n)); }

static void put_end(Emit *E, const INode *n) {
  char buf[256];
  fprintf(E->out, "  # %s\n", shape_str(E->m, n->dtype, &n->shape, buf, sizeof buf));
}

static bool is_large_constant(const INode *n) {
  return n->op == OP_CONST && n->data && shape_static_numel(&n->shape) > LITERAL_MAX;
}

/* ---- elementwise ops ---- */

static const char *const spell[OP_COUNT] = {
#define OP(id, nm, ar, kind, print)
#define SPELL(id, text) [OP_##id] = text,
#include "ops.def"
};

/* A SPELL template with %0 %1 replaced by the operands. */
static void put_template(Emit *E, const INode *n, const char *t) {
  for (; *t; t++) {
    if (t[0] == '%' && (t[1] == '0' || t[1] == '1')) fputs(ref(E, n->in[*++t - '0']), E->out);
    else fputc(*t, E->out);
  }
}

static bool emit_elementwise(Emit *E, const INode *n) {
  const OpInfo *oi = &op_info[n->op];
  bool convert = n->op == OP_TRUNC && n->dtype != n->in[0]->dtype; /* ir_convert */
  if (!oi->fn && !spell[n->op]) return fail(E, n, "the language has no spelling for it (it inserts it itself)");
  put_start(E, n);
  if (convert) fprintf(E->out, "%s(%s)", n->dtype == DT_I64 ? "long" : "float", ref(E, n->in[0]));
  else if (!oi->fn) put_template(E, n, spell[n->op]);
  else {
    fprintf(E->out, "%s(", oi->fn);
    for (int k = 0; k < oi->arity; k++) fprintf(E->out, "%s%s", k ? ", " : "", ref(E, n->in[k]));
    for (int k = 0; k < oi->attrs.n; k++)
      if (n->f[k] != oi->attrs.def[k]) fprintf(E->out, ", %s=%s", oi->attrs.name[k], number(E, n->f[k]));
    fputc(')', E->out);
  }
  put_end(E, n);
  return true;
}

/* ---- leaves ---- */

static bool emit_input(Emit *E, const INode *n) { return true; }
static bool emit_param(Emit *E, const INode *n) { return true; }

static void add_weight(Emit *E, const char *name, int param, const INode *constant) {
  E->w[E->nw++] = (NnWeight){name, param, constant};
}

static void put_list(Emit *E, const float *v, int64_t n) {
  fputc('[', E->out);
  for (int64_t i = 0; i < n; i++) fprintf(E->out, "%s%s", i ? ", " : "", number(E, v[i]));
  fputc(']', E->out);
}

/* A fill: a number where a scalar is; full() otherwise.  Data: a list literal when small and
 * at most 1-D, else a parameter of the weights file. */
static bool emit_const(Emit *E, const INode *n) {
  int64_t numel = shape_static_numel(&n->shape);
  if (!n->data && n->shape.rank == 0) return E->name[n->id] = number(E, n->f[0]), true;
  if (is_large_constant(n)) return true; /* a parameter (declare_weights) */
  put_start(E, n);
  if (!n->data) {
    fputs("full(", E->out);
    put_dims(E, &n->shape);
    fprintf(E->out, ", %s)", number(E, n->f[0]));
  } else if (n->shape.rank == 0) { /* data, not a number: folding treats pow(x, 2.0) otherwise */
    fprintf(E->out, "reshape([%s], [])", number(E, n->data[0]));
  } else if (n->shape.rank == 1) {
    put_list(E, n->data, numel);
  } else { /* the reshape folds away: the same constant */
    fputs("reshape(", E->out);
    put_list(E, n->data, numel);
    fputs(", ", E->out);
    put_dims(E, &n->shape);
    fputc(')', E->out);
  }
  put_end(E, n);
  return true;
}

static bool emit_dimval(Emit *E, const INode *n) {
  char d[128];
  dim_text(E, (Dim){n->i[0], n->axes}, d, sizeof d);
  put_start(E, n);
  fprintf(E->out, "%s", d);
  put_end(E, n);
  return true;
}

/* each element's index along an axis: arange along it, broadcast to the shape */
static bool emit_iota(Emit *E, const INode *n) {
  const Shape *s = &n->shape;
  int axis = (int)n->i[0];
  char d[128];
  dim_text(E, s->d[axis], d, sizeof d);
  put_start(E, n);
  if (s->rank == 1) {
    fprintf(E->out, "arange(%s)", d);
  } else {
    Shape line = {.rank = s->rank};
    for (int k = 0; k < s->rank; k++) line.d[k] = k == axis ? s->d[k] : dim_const(1);
    fprintf(E->out, "broadcast_to(reshape(arange(%s), ", d);
    put_dims(E, &line);
    fputs("), ", E->out);
    put_dims(E, s);
    fputc(')', E->out);
  }
  put_end(E, n);
  return true;
}

/* ---- moves ---- */

static bool emit_reshape(Emit *E, const INode *n) {
  put_start(E, n);
  fprintf(E->out, "reshape(%s, ", ref(E, n->in[0]));
  put_dims(E, &n->shape);
  fputc(')', E->out);
  put_end(E, n);
  return true;
}

static bool emit_permute(Emit *E, const INode *n) {
  put_start(E, n);
  fprintf(E->out, "permute(%s, ", ref(E, n->in[0]));
  put_ints(E, n->i, n->shape.rank);
  fputc(')', E->out);
  put_end(E, n);
  return true;
}

/* x[:, t] of a scan's step t (ir_index_dynamic), the axis kept as the node keeps it */
static bool emit_step_index(Emit *E, const INode *n) {
  int axis = (int)n->i[0];
  char t[128];
  dim_text(E, (Dim){1, (uint32_t)n->i[3]}, t, sizeof t);
  if (n->i[1] || n->i[2] != 1 || !E->step_name[__builtin_ctz((uint32_t)n->i[3])])
    return fail(E, n, "an index computed at run time other than a scan's step");
  put_start(E, n);
  fprintf(E->out, "reshape(%s[", ref(E, n->in[0]));
  for (int k = 0; k < axis; k++) fputs(":, ", E->out);
  fprintf(E->out, "%s], ", t);
  put_dims(E, &n->shape);
  fputc(')', E->out);
  put_end(E, n);
  return true;
}

/* x[:, :, start:stop:step] along a static axis */
static bool emit_slice(Emit *E, const INode *n) {
  int axis = (int)n->i[0];
  int64_t start = n->i[1], step = n->i[2], len = n->shape.d[axis].k;
  if (n->i[3]) return emit_step_index(E, n);
  if (n->in[0]->shape.d[axis].syms || n->shape.d[axis].syms)
    return fail(E, n, "a slice along a symbolic axis");
  if (step <= 0) return fail(E, n, "a slice with step %lld", (long long)step);
  put_start(E, n);
  fprintf(E->out, "%s[", ref(E, n->in[0]));
  for (int k = 0; k < axis; k++) fputs(":, ", E->out);
  fprintf(E->out, "%lld:%lld", (long long)start, (long long)(len ? start + (len - 1) * step + 1 : start));
  if (step != 1) fprintf(E->out, ":%lld", (long long)step);
  fputc(']', E->out);
  put_end(E, n);
  return true;
}

static bool emit_concat(Emit *E, const INode *n) {
  put_start(E, n);
  fprintf(E->out, "cat([%s, %s], axis=%lld)", ref(E, n->in[0]), ref(E, n->in[1]), (long long)n->i[0]);
  put_end(E, n);
  return true;
}

/* The bottom/right padding of a window: what its output size needs past the input (the
 * IR keeps top/left only); the top/left value when that gives the same size. */
static int64_t window_end_pad(const INode *n, int a) {
  const Shape *s = &n->shape, *in = &n->in[0]->shape;
  int64_t size = in->d[in->rank - 2 + a].k, out = s->d[s->rank - 4 + a].k, k = s->d[s->rank - 2 + a].k;
  int64_t stride = n->i[a], pad = n->i[2 + a], reach = n->i[4 + a] * (k - 1) + 1;
  int64_t need = (out - 1) * stride + reach - size - pad;
  bool same = size + 2 * pad >= reach && (size + 2 * pad - reach) / stride + 1 == out;
  return same ? pad : need;
}

static bool emit_window(Emit *E, const INode *n) {
  if (n->i[6] != 1 || n->i[7] != 1 || n->flag)
    return fail(E, n, "a window with input dilation or reversed kernel positions (a transposed convolution)");
  const Shape *s = &n->shape;
  int64_t kernel[2] = {s->d[s->rank - 2].k, s->d[s->rank - 1].k};
  int64_t pad[4] = {n->i[2], n->i[3], window_end_pad(n, 0), window_end_pad(n, 1)};
  put_start(E, n);
  fprintf(E->out, "sliding_windows(%s, ", ref(E, n->in[0]));
  put_ints(E, kernel, 2);
  if (n->i[0] != 1 || n->i[1] != 1) fputs(", stride=", E->out), put_ints(E, n->i, 2);
  if (pad[0] != pad[2] || pad[1] != pad[3]) fputs(", padding=", E->out), put_ints(E, pad, 4);
  else if (pad[0] || pad[1]) fputs(", padding=", E->out), put_ints(E, pad, 2);
  if (n->i[4] != 1 || n->i[5] != 1) fputs(", dilation=", E->out), put_ints(E, n->i + 4, 2);
  if (n->f[0] != 0) fprintf(E->out, ", value=%s", number(E, n->f[0]));
  fputc(')', E->out);
  put_end(E, n);
  return true;
}

/* index_select(x, axis, index): the gather whose index is a column [k, 1, ..., 1] over the
 * axes from `axis` on */
static bool is_index_column(const INode *n) {
  const INode *x = n->in[0], *ix = n->in[1];
  int axis = (int)n->i[0];
  if (ix->shape.rank != x->shape.rank - axis) return false;
  for (int k = 1; k < ix->shape.rank; k++)
    if (!dim_is(ix->shape.d[k], 1)) return false;
  Shape want = x->shape;
  want.d[axis] = ix->shape.d[0];
  return shape_eq(&want, &n->shape);
}

/* ... of constant indices, which the front end checks now: written as a list */
static bool is_index_select(const INode *n) {
  return n->in[1]->op == OP_CONST && n->in[1]->data && is_index_column(n);
}

/* index_select(x, axis, [i0, i1, ...]), or of computed indices (checked before: check_index)
 * index_select(x, axis, reshape(column, [k])), which checks them again and makes the column */
static bool emit_gather(Emit *E, const INode *n) {
  if (!is_index_column(n)) return fail(E, n, "a gather other than index_select");
  put_start(E, n);
  fprintf(E->out, "index_select(%s, %lld, ", ref(E, n->in[0]), (long long)n->i[0]);
  if (is_index_select(n)) {
    fputc('[', E->out);
    for (int64_t i = 0; i < n->in[1]->shape.d[0].k; i++) fprintf(E->out, "%s%.0f", i ? ", " : "", n->in[1]->data[i]);
    fputc(']', E->out);
  } else {
    char k[128];
    dim_text(E, n->in[1]->shape.d[0], k, sizeof k);
    fprintf(E->out, "reshape(%s, [%s])", ref(E, n->in[1]), k);
  }
  fputs(")", E->out);
  put_end(E, n);
  return true;
}

/* ---- reductions and products ---- */

static bool emit_reduce(Emit *E, const INode *n) {
  put_start(E, n);
  fprintf(E->out, "%s(%s, axis=[", n->op == OP_SUM ? "sum" : "amax", ref(E, n->in[0]));
  for (int k = 0, first = 1; k < n->in[0]->shape.rank; k++)
    if (n->axes & (1u << k)) fprintf(E->out, "%s%d", first ? "" : ", ", k), first = 0;
  fprintf(E->out, "]%s)", n->flag ? ", keepdim=true" : "");
  put_end(E, n);
  return true;
}

/* a @ b, its transposes as x.T (rank 2) or transpose(x, -2, -1), which folding turns back
 * into the flags */
static void put_operand(Emit *E, const INode *x, bool transposed) {
  if (!transposed) fputs(ref(E, x), E->out);
  else if (x->shape.rank == 2) fprintf(E->out, "%s.T", ref(E, x));
  else fprintf(E->out, "transpose(%s, -2, -1)", ref(E, x));
}

static bool emit_matmul(Emit *E, const INode *n) {
  put_start(E, n);
  put_operand(E, n->in[0], n->i[0]);
  fputs(" @ ", E->out);
  put_operand(E, n->in[1], n->i[1]);
  put_end(E, n);
  return true;
}

/* The functions each structural emitter calls (matmul may add transpose, a constant full or
 * reshape), for note_calls. */
static const char *const structural_calls[OP_COUNT] = {
  [OP_CONST] = "full reshape", [OP_IOTA] = "arange broadcast_to reshape", [OP_RESHAPE] = "reshape", [OP_PERMUTE] = "permute", [OP_CONCAT] = "cat",
  [OP_WINDOW] = "sliding_windows", [OP_GATHER] = "index_select", [OP_SUM] = "sum", [OP_RMAX] = "amax",
  [OP_MATMUL] = "transpose", [OP_CHECK_INDEX] = "check_index", [OP_ROI_ALIGN] = "roi_align",
};

static void note_words(Emit *E, const char *words) {
  for (const char *w = words; *w;) {
    size_t n = strcspn(w, " (");
    if (n && (isalpha((unsigned char)*w) || *w == '_')) note_call(E, w, n);
    w += n;
    w += *w == ' ';
    if (*w == '(') break;
  }
}

static void note_calls(Emit *E) {
  note_call(E, "Parameter", 9);
  for (int k = 0; k < E->e->nnodes; k++) {
    const INode *n = E->e->nodes[k];
    if (!E->live[k] || E->inner[k]) continue;
    if (E->idiom[k]) note_words(E, E->idiom[k]->fn);
    else if (n->op == OP_TRUNC && n->dtype != n->in[0]->dtype) note_words(E, "long float");
    else if (structural_calls[n->op]) note_words(E, structural_calls[n->op]);
    else if (op_info[n->op].kind == FK_ELEM) note_words(E, op_info[n->op].fn ? op_info[n->op].fn : spell[n->op] ? spell[n->op] : "");
  }
}

/* check_index(index, size): the check the language makes where it indexes, for an index the
 * graph computes otherwise (an ONNX Gather's, negatives wrapped first) */
static bool emit_check_index(Emit *E, const INode *n) {
  const INode *size = n->in[1]; /* ir_dim_value's: a dim's value, or a number for a static one */
  char d[128];
  if (size->op == OP_DIMVAL) dim_text(E, (Dim){size->i[0], size->axes}, d, sizeof d);
  else if (size->op == OP_CONST && !size->data && !size->shape.rank && size->f[0] == trunc(size->f[0]))
    snprintf(d, sizeof d, "%.0f", size->f[0]);
  else return fail(E, n, "internal error: a size that is not a dim");
  put_start(E, n);
  fprintf(E->out, "check_index(%s, %s)", ref(E, n->in[0]), d);
  put_end(E, n);
  return true;
}

/* roi_align(x, boxes, [PH, PW], ...): channels-last features are read through the permute the
 * call makes itself (ir_roi_align), so the call takes the permute's operand */
static bool emit_roi_align(Emit *E, const INode *n) {
  const INode *x = n->in[0];
  if (n->i[1] && (x->op != OP_PERMUTE || x->i[1] != 2 || x->i[3] != 1))
    return fail(E, n, "internal error: channels-last features without their permute");
  if (n->i[1]) x = x->in[0];
  put_start(E, n);
  fprintf(E->out, "roi_align(%s, %s, [%lld, %lld], spatial_scale=%s, sampling_ratio=%lld, aligned=%s)", ref(E, x),
          ref(E, n->in[1]), (long long)n->shape.d[2].k, (long long)n->shape.d[3].k, number(E, n->f[0]),
          (long long)n->i[0], n->flag ? "true" : "false");
  put_end(E, n);
  return true;
}

static bool emit_scan(Emit *E, const INode *n);
/* A scan's operands and results are written by its statement (emit_scan) */
static bool emit_scan_part(Emit *E, const INode *n) { return true; }

/* The emitter of each op that is not elementwise; NULL: the language cannot express it. */
typedef bool (*Emitter)(Emit *E, const INode *n);
static const Emitter emitters[OP_COUNT] = {
  [OP_INPUT] = emit_input, [OP_PARAM] = emit_param, [OP_CONST] = emit_const,
  [OP_SCAN] = emit_scan, [OP_PACK] = emit_scan_part, [OP_SCAN_OUT] = emit_scan_part,
  [OP_CHECK_INDEX] = emit_check_index, [OP_ROI_ALIGN] = emit_roi_align,
  [OP_DIMVAL] = emit_dimval, [OP_IOTA] = emit_iota, [OP_RESHAPE] = emit_reshape, [OP_PERMUTE] = emit_permute,
  [OP_SLICE] = emit_slice, [OP_CONCAT] = emit_concat, [OP_WINDOW] = emit_window,
  [OP_GATHER] = emit_gather, [OP_SUM] = emit_reduce, [OP_RMAX] = emit_reduce, [OP_MATMUL] = emit_matmul,
};

static bool emit_idiom(Emit *E, const INode *n, const NnIdiom *c) {
  put_start(E, n);
  fprintf(E->out, "%s(", c->fn);
  for (int k = 0; k < c->narg; k++) fprintf(E->out, "%s%s", k ? ", " : "", ref(E, c->arg[k]));
  fprintf(E->out, "%s)", c->kwargs);
  put_end(E, n);
  return true;
}

static bool emit_node(Emit *E, const INode *n) {
  if (E->inner[n->id]) return true;
  if (E->idiom[n->id]) return emit_idiom(E, n, E->idiom[n->id]);
  if (emitters[n->op]) return emitters[n->op](E, n); /* before the elementwise ops: check_index is one */
  if (op_info[n->op].kind == FK_ELEM) return emit_elementwise(E, n);
  return fail(E, n, "the .nn language has no function for this op yet");
}

/* ---- the model ---- */

/* What the outputs need: one pass back over the topological order (no recursion: a graph
 * may be a chain of a million nodes). */
static void mark_live(Emit *E) {
  const Entry *e = E->e;
  for (int i = 0; i < e->nout; i++) E->live[e->outputs[i]->id] = true;
  for (int k = e->nnodes - 1; k >= 0; k--)
    for (int j = 0; j < 3 && E->live[k]; j++)
      if (e->nodes[k]->in[j]) E->live[e->nodes[k]->in[j]->id] = true;
}

/* Calls of the language that build whole subgraphs (emit_nn_idiom.c), found from the last
 * node back so that the largest claims its inner nodes first. */
static void find_idioms(Emit *E) {
  const Entry *e = E->e;
  for (int k = 0; k < e->nnodes; k++)
    for (int j = 0; j < 3 && E->live[k]; j++)
      if (e->nodes[k]->in[j]) E->users[e->nodes[k]->in[j]->id]++;
  for (int i = 0; i < e->nout; i++) E->users[e->outputs[i]->id]++;
  for (int k = 0; k < e->nnodes; k++) /* index_select's indices are written in its call */
    if (E->live[k] && e->nodes[k]->op == OP_GATHER && is_index_select(e->nodes[k]) && E->users[e->nodes[k]->in[1]->id] == 1)
      E->inner[e->nodes[k]->in[1]->id] = true;
  for (int k = e->nnodes - 1; k >= 0; k--) {
    const INode *n = e->nodes[k];
    NnIdiom c;
    if (!E->live[k] || E->inner[k] || op_info[n->op].kind == FK_LEAF) continue;
    if (!nn_idiom_find(E->m, n, E->users, &c, E->inner)) continue;
    E->idiom[k] = arena_alloc(E->a, sizeof c);
    *E->idiom[k] = c;
  }
}

/* `name = Parameter([dims])` for node n (of the export, or of a scan body when param >= 0) */
static const char *declare(Emit *E, const INode *n, const char *want, int param) {
  const char *name = unique_name(E, want);
  if (param >= 0) E->param_name[param] = name;
  add_weight(E, name, param, param < 0 ? n : NULL);
  fprintf(E->out, "%s = Parameter(", name);
  put_dims(E, &n->shape);
  if (n->dtype == DT_I64) fputs(", dtype=\"i64\"", E->out);
  fputc(')', E->out);
  if (param >= 0 && strcmp(name, want)) fprintf(E->out, "  # %s", want);
  fputc('\n', E->out);
  return name;
}

/* Parameter i's node in a scan body, or NULL: a body reads parameters too (an RNN's weights) */
static const INode *param_in_bodies(const Model *m, int i) {
  for (int b = 0; b < m->nbodies; b++)
    if (i < m->bodies[b]->param_nodes_cap && m->bodies[b]->param_nodes[i]) return m->bodies[b]->param_nodes[i];
  return NULL;
}

/* Parameters first, in the model's order (of first use), then large constants, by the names
 * they will have in the weights file. */
static bool declare_weights(Emit *E) {
  const Model *m = E->m;
  const Entry *e = E->e;
  for (int i = 0; i < m->nparams; i++) {
    const INode *n = i < e->param_nodes_cap ? e->param_nodes[i] : NULL;
    if (m->params[i].derived) return fail(E, NULL, "parameter '%s' is derived (the passes ran)", m->params[i].name);
    const INode *used = n && E->live[n->id] ? n : param_in_bodies(m, i);
    const char *name = used ? declare(E, used, m->params[i].name, i) : NULL;
    if (used == n && name) E->name[n->id] = name;
  }
  for (int k = 0; k < e->nnodes; k++) {
    const INode *n = e->nodes[k];
    const char *given = E->value_names ? E->value_names[n->id] : NULL;
    if (E->live[n->id] && !E->inner[n->id] && is_large_constant(n)) E->name[n->id] = declare(E, n, given ? given : "constant", -1);
  }
  return true;
}

/* Every live node without a name that a statement computes: the graph value it holds, else
 * t<id> (parameters, large constants and scalar fills are named elsewhere). */
static void name_statements(Emit *E) {
  const Entry *e = E->e;
  for (int k = 0; k < e->nnodes; k++) {
    const INode *n = e->nodes[k];
    bool scalar_fill = n->op == OP_CONST && !n->data && n->shape.rank == 0;
    if (!E->live[k] || E->inner[k] || E->name[k] || n->op == OP_PARAM || scalar_fill || is_large_constant(n)) continue;
    const char *want = E->value_names && E->value_names[k] ? E->value_names[k] : NULL;
    char t[32];
    snprintf(t, sizeof t, "t%d", n->id);
    E->name[k] = unique_name(E, want ? want : t);
  }
}

static void name_nodes(Emit *E) {
  const Entry *e = E->e;
  for (int i = 0; i < E->m->nsyms; i++) *taken_slot(E, E->m->sym_names[i]) = E->m->sym_names[i];
  for (int i = 0; i < e->nin; i++) E->name[e->inputs[i]->id] = unique_name(E, e->in_names[i]);
  for (int i = 0; i < e->nout; i++) { /* an output computed here is its node's variable */
    const INode *n = e->outputs[i];
    E->out_name[i] = unique_name(E, e->out_names[i]);
    if (!E->name[n->id] && n->op != OP_PARAM && n->op != OP_CONST) E->name[n->id] = E->out_name[i];
  }
  name_statements(E);
}

static void put_signature(Emit *E, const char *export_name) {
  const Entry *e = E->e;
  char buf[512];
  fprintf(E->out, "\nexport %s(", export_name);
  for (int i = 0; i < e->nin; i++)
    fprintf(E->out, "%s%s: %s", i ? ", " : "", E->name[e->inputs[i]->id],
            shape_str(E->m, e->inputs[i]->dtype, &e->inputs[i]->shape, buf, sizeof buf));
  fputs(") -> (", E->out);
  for (int i = 0; i < e->nout; i++)
    fprintf(E->out, "%s%s: %s", i ? ", " : "", E->out_name[i],
            shape_str(E->m, e->out_dtypes[i], &e->out_shapes[i], buf, sizeof buf));
  fputs(") {\n", E->out);
}

/* Outputs whose node has another name (an input, a parameter, an earlier output) */
static void assign_outputs(Emit *E) {
  const Entry *e = E->e;
  for (int i = 0; i < e->nout; i++)
    if (E->name[e->outputs[i]->id] != E->out_name[i])
      fprintf(E->out, "%s%s = %s\n", E->indent, E->out_name[i], E->name[e->outputs[i]->id]);
}

/* ---- scans ---- */

/* E's tables by node id, for entry e (the export, or a scan's body); false when ids are not
 * positions (every builder makes them so) */
static bool emit_tables(Emit *E, const Entry *e) {
  E->e = e;
  E->name = arena_alloc(E->a, (e->nnodes + 1) * sizeof *E->name);
  E->live = arena_alloc(E->a, (e->nnodes + 1) * sizeof *E->live);
  E->users = arena_alloc(E->a, (e->nnodes + 1) * sizeof *E->users);
  E->inner = arena_alloc(E->a, (e->nnodes + 1) * sizeof *E->inner);
  E->idiom = arena_alloc(E->a, (e->nnodes + 1) * sizeof *E->idiom);
  for (int k = 0; k < e->nnodes; k++)
    if (e->nodes[k]->id != k) return fail(E, e->nodes[k], "internal error: node ids are not positions");
  return true;
}

/* The functions the scan bodies call, noted before any name is given (they share names). */
static bool note_body_calls(Emit *E) {
  for (int b = 0; b < E->m->nbodies; b++) {
    Emit B = *E;
    if (!emit_tables(&B, E->m->bodies[b])) return false;
    mark_live(&B);
    find_idioms(&B);
    note_calls(&B); /* B started from E's calls: it holds them all */
    memcpy(E->calls, B.calls, sizeof E->calls);
    E->ncalls = B.ncalls;
  }
  return true;
}

/* The variables of scan n's results: the SCAN_OUT nodes' names (given one when unused). */
static void scan_result_names(Emit *E, const INode *n, const char **res, int nres) {
  for (int i = 0; i < nres; i++) res[i] = NULL;
  for (int k = n->id + 1; k < E->e->nnodes; k++) {
    const INode *o = E->e->nodes[k];
    if (o->op == OP_SCAN_OUT && o->in[0] == n && o->i[0] < nres) {
      if (!E->name[k]) E->name[k] = unique_name(E, "state");
      res[o->i[0]] = E->name[k];
    }
  }
  for (int i = 0; i < nres; i++)
    if (!res[i]) res[i] = unique_name(E, "state");
}

/* The body's statements; its inputs are the carried variables res[0..nc) and the outer
 * tensors it reads (outer[]); its outputs assign the carried variables and, per step,
 * res[nc + j][t]. */
static bool emit_body(Emit *B, const ScanInfo *sc, const char *const *outer, const char *const *res, const char *t) {
  const Entry *b = B->e;
  int nc = sc->ncarried;
  mark_live(B);
  find_idioms(B);
  for (int i = 0; i < b->nin; i++) B->name[b->inputs[i]->id] = i < nc ? res[i] : outer[i];
  for (int k = 0; k < b->nnodes; k++) { /* parameters are declared at the top (declare_weights) */
    const INode *n = b->nodes[k];
    if (!B->live[k] || B->inner[k] || B->name[k]) continue;
    if (is_large_constant(n)) return fail(B, n, "a constant of more than %d numbers inside a scan", LITERAL_MAX);
    if (n->op == OP_PARAM && !(B->name[k] = B->param_name[n->index])) return fail(B, n, "internal error: an undeclared parameter");
  }
  name_statements(B);
  for (int k = 0; k < b->nnodes; k++)
    if (B->live[k] && !emit_node(B, b->nodes[k])) return false;
  for (int i = 0; i < nc; i++) { /* the assignments run in order: one may not read another's new value */
    const INode *o = b->outputs[i];
    if (o->op == OP_INPUT && o->index < nc && o->index != i) return fail(B, o, "carried states that trade places");
    if (strcmp(ref(B, o), res[i])) fprintf(B->out, "%s%s = %s\n", B->indent, res[i], ref(B, o));
  }
  for (int j = 0; j < sc->nsteps; j++) fprintf(B->out, "%s%s[%s] = %s\n", B->indent, res[nc + j], t, ref(B, b->outputs[nc + j]));
  return true;
}

/* scan t in 0..T { body } (reversed(0..T): from the last step to the first): the carried variables hold their initial values before it, and
 * every result after it; per-step outputs are stacked along axis 0 (a permute after the
 * scan, its own node, moves T where the user had it). */
static bool emit_scan(Emit *E, const INode *n) {
  const ScanInfo *sc = n->scan;
  int nc = sc->ncarried, nops = nc + sc->ncaptured, nres = nc + sc->nsteps;
  if (sc->body->nin != nops) return fail(E, n, "internal error: the body's inputs are not the scan's operands");
  const char **outer = arena_alloc(E->a, (nops + 1) * sizeof *outer), **res = arena_alloc(E->a, (nres + 1) * sizeof *res);
  int k = 0;
  for (const INode *p = n->in[0]; p && k < nops; p = p->in[1]) outer[k++] = ref(E, p->in[0]);
  scan_result_names(E, n, res, nres);
  for (int i = 0; i < nc; i++)
    if (strcmp(res[i], outer[i])) fprintf(E->out, "%s%s = %s\n", E->indent, res[i], outer[i]);
  const char *t = E->step_name[sc->tsym] = unique_name(E, "t");
  char bound[128];
  dim_text(E, sc->bound, bound, sizeof bound);
  fprintf(E->out, sc->reverse ? "%sscan %s in reversed(0..%s) {\n" : "%sscan %s in 0..%s {\n", E->indent, t, bound);
  Emit B = *E;
  char *indent = arena_alloc(E->a, strlen(E->indent) + 3);
  sprintf(indent, "%s  ", E->indent);
  B.indent = indent;
  B.value_names = NULL; /* by the export's node ids */
  if (!emit_tables(&B, sc->body) || !emit_body(&B, sc, outer, res, t)) return false;
  fprintf(E->out, "%s}\n", E->indent);
  return true;
}

bool emit_nn(FILE *out, Arena *a, const Model *m, const Entry *e, const NnEmitOptions *opt,
             NnWeight **weights, int *nweights, char *err, size_t errlen) {
  Emit E = {.out = out, .a = a, .m = m, .indent = "  ", .value_names = opt->value_names, .err = err, .errlen = errlen};
  size_t names = (size_t)e->nnodes + m->nsyms + 8;
  for (int b = 0; b < m->nbodies; b++) names += m->bodies[b]->nnodes;
  for (E.cap = 64; E.cap < 4 * names; E.cap *= 2) {}
  E.taken = arena_alloc(a, E.cap * sizeof *E.taken);
  E.out_name = arena_alloc(a, (e->nout + 1) * sizeof *E.out_name);
  E.w = arena_alloc(a, ((size_t)e->nnodes + m->nparams + 1) * sizeof *E.w);
  E.param_name = arena_alloc(a, (m->nparams + 1) * sizeof *E.param_name);
  E.step_name = arena_alloc(a, MAX_SYMS * sizeof *E.step_name);
  if (!emit_tables(&E, e)) return false;
  mark_live(&E);
  find_idioms(&E);
  note_calls(&E);
  if (!note_body_calls(&E)) return false;
  if (opt->banner) {
    for (const char *l = opt->banner; *l;) {
      size_t n = strcspn(l, "\n");
      fprintf(out, "#%s%.*s\n", n ? " " : "", (int)n, l);
      l += n + (l[n] == '\n');
    }
    fputc('\n', out);
  }
  name_nodes(&E);
  if (!declare_weights(&E)) return false;
  put_signature(&E, unique_name(&E, opt->export_name && *opt->export_name ? opt->export_name : "forward"));
  for (int k = 0; k < e->nnodes; k++)
    if (E.live[k] && !emit_node(&E, e->nodes[k])) return false;
  assign_outputs(&E);
  fputs("}\n", out);
  *weights = E.w;
  *nweights = E.nw;
  return true;
}
