/* onnx_ops_rnn.c — ONNX's recurrent ops LSTM, GRU and RNN, on recurrent.c's sequences (the
 * .nn front end's LSTM/GRU: a scan over time whose input half of the gates is one GEMM).
 * ONNX stacks the gate blocks in its own order (LSTM i, o, f, c; GRU z, r, h) where torch
 * and recurrent.c use i, f, g, o and r, z, n: the weights are re-stacked here, once, before
 * the sequence.  Each direction is one sequence (reverse: from the last step to the first);
 * Y stacks them on the direction axis.  Refused by name: peepholes, clip, input_forget,
 * activations other than the defaults (RNN: Tanh or Relu), and sequence_lens shorter than
 * the sequence.  Every input's rank and dims are checked against X, W and R: the file is
 * untrusted. */
#include <stdio.h>
#include <string.h>

#include "layers.h"
#include "onnx_import_internal.h"

#define S_ (&I->S)

typedef struct RnnOp {
  const char *name;
  int gates;            /* gate blocks in W and R */
  int states;           /* h, or h and c */
  int order[4];         /* torch's block j is ONNX's block order[j] */
  int nacts;            /* activations per direction */
  const char *acts[3];  /* their defaults */
} RnnOp;

static const RnnOp RNN_OPS[] = {
  {"LSTM", 4, 2, {0, 2, 3, 1}, 3, {"Sigmoid", "Tanh", "Tanh"}},
  {"GRU", 3, 1, {1, 0, 2}, 2, {"Sigmoid", "Tanh"}},
  {"RNN", 1, 1, {0}, 1, {"Tanh"}},
};

/* The shape of one recurrence: X [T, B, I] (layout 1: [B, T, I]), H hidden, D directions. */
typedef struct RnnDims {
  const RnnOp *op;
  Dim t, b;
  int64_t in, hidden;
  int dirs;
  bool batch_first;
} RnnDims;

static INode *slice0(Imp *I, INode *x, int64_t start, int64_t stop) {
  return ir_slice(IM, IE, x, 0, start, stop, 1, I->loc, ID);
}

/* w's direction d ([D, ...] -> [...]) */
static INode *direction(Imp *I, INode *w, int d) {
  INode *y = slice0(I, w, d, d + 1);
  if (!y) return NULL;
  Shape s = {.rank = w->shape.rank - 1};
  for (int k = 1; k < w->shape.rank; k++) s.d[k - 1] = w->shape.d[k];
  return ir_reshape(IM, IE, y, &s, I->loc, ID);
}

/* w's gate blocks (of `hidden` rows each along axis 0) re-stacked in torch's order */
static INode *torch_order(Imp *I, const RnnDims *r, INode *w) {
  INode *y = NULL;
  for (int j = 0; j < r->op->gates && w; j++) {
    int64_t b = r->op->order[j] * r->hidden;
    INode *blk = slice0(I, w, b, b + r->hidden);
    y = j ? ir_concat(IM, IE, y, blk, 0, I->loc, ID) : blk;
  }
  return y;
}

/* Input i, f32 of exactly the static dims want[rank] (a dim < 0: any) */
static INode *rnn_input(Imp *I, int i, const char *what, int rank, const int64_t *want) {
  INode *x = input_f32(I, i);
  if (!x) return NULL;
  bool ok = x->shape.rank == rank;
  for (int k = 0; ok && k < rank; k++) ok = !x->shape.d[k].syms && (want[k] < 0 || x->shape.d[k].k == want[k]);
  if (ok) return x;
  char buf[160];
  int o = 0;
  for (int k = 0; k < rank; k++)
    o += snprintf(buf + o, sizeof buf - o, "%s%lld", k ? ", " : "", (long long)want[k]);
  return imp_fail(I, "input %d (%s) has rank %d or a wrong or symbolic dim, expected [%s] (-1: any static)", i, what,
                  x->shape.rank, buf), NULL;
}

/* attributes: direction, layout, hidden_size (checked against R), and the refused ones */
static bool rnn_attrs(Imp *I, RnnDims *r) {
  const char *dir = attr_string(I, "direction", "forward");
  int64_t layout, hidden, forget = 0;
  if (!dir || !attr_int(I, "layout", 0, &layout) || !attr_int(I, "hidden_size", -1, &hidden) ||
      !attr_int(I, "input_forget", 0, &forget))
    return false;
  if (onnx_node_attr(I->node, "clip")) return imp_fail(I, "attribute 'clip' is not supported (no cell clipping)");
  if (forget) return imp_fail(I, "attribute 'input_forget' is %lld: only 0 is supported", (long long)forget);
  if (onnx_node_attr(I->node, "activation_alpha") || onnx_node_attr(I->node, "activation_beta"))
    return imp_fail(I, "attributes 'activation_alpha' and 'activation_beta' are not supported");
  if (layout != 0 && layout != 1) return imp_fail(I, "attribute 'layout' is %lld, expected 0 or 1", (long long)layout);
  r->batch_first = layout == 1;
  if (!strcmp(dir, "forward") || !strcmp(dir, "reverse")) r->dirs = 1;
  else if (!strcmp(dir, "bidirectional")) r->dirs = 2;
  else return imp_fail(I, "attribute 'direction' is '%s', expected forward, reverse or bidirectional", dir);
  r->hidden = hidden;
  return true;
}

/* The activations, each direction's the default list (RNN: Tanh or Relu, both directions
 * alike); *relu for an RNN of Relu. */
static bool rnn_activations(Imp *I, const RnnDims *r, bool *relu) {
  const OnnxAttr *a = onnx_node_attr(I->node, "activations");
  *relu = false;
  if (!a) return true;
  if (a->kind != ONNX_ATTR_STRINGS) return imp_fail(I, "attribute 'activations' is not a list of strings");
  int per = r->op->nacts;
  if (a->n != per * r->dirs) return imp_fail(I, "attribute 'activations' has %d values, expected %d", a->n, per * r->dirs);
  *relu = r->op->gates == 1 && !strcmp(a->strings[0].data, "Relu");
  for (int k = 0; k < a->n; k++) {
    const char *want = *relu ? "Relu" : r->op->acts[k % per];
    if (strcmp(a->strings[k].data, want))
      return imp_fail(I, "attribute 'activations' has '%s' at %d, expected '%s': nnc supports the defaults%s only",
                      a->strings[k].data, k, want, r->op->gates == 1 ? " (or Relu in every direction)" : "");
  }
  return true;
}

/* sequence_lens: absent, or constant and all equal to the (static) sequence length */
static bool full_lengths(Imp *I, const RnnDims *r) {
  if (!imp_has_input(I, 4)) return true;
  const OnnxTensor *t = imp_const_input(I, 4);
  if (!t) return false;
  if ((t->dtype != ONNX_I32 && t->dtype != ONNX_I64) || t->rank != 1 || r->b.syms || t->numel != r->b.k)
    return imp_fail(I, "input 4 (sequence_lens) is %s of %lld values, expected int32 of the batch size",
                    onnx_dtype_name(t->dtype), (long long)t->numel);
  for (int64_t k = 0; k < t->numel; k++) {
    int64_t v = t->dtype == ONNX_I64 ? ((const int64_t *)t->data)[k] : ((const int32_t *)t->data)[k];
    if (r->t.syms || v != r->t.k)
      return imp_fail(I, "input 4 (sequence_lens) has %lld at %lld: nnc supports full-length sequences only "
                      "(every length the sequence's)", (long long)v, (long long)k);
  }
  return true;
}

/* X, W, R and the dims they fix */
static bool rnn_dims(Imp *I, RnnDims *r, INode **x, INode **w, INode **rw) {
  if (!rnn_attrs(I, r) || !(*x = input_f32(I, 0))) return false;
  if ((*x)->shape.rank != 3) return imp_fail(I, "input 0 (X) has rank %d, expected 3", (*x)->shape.rank);
  Dim in = (*x)->shape.d[2];
  if (in.syms) return imp_fail(I, "input 0 (X) has a symbolic input size");
  r->t = (*x)->shape.d[r->batch_first], r->b = (*x)->shape.d[!r->batch_first], r->in = in.k;
  INode *rr = input_f32(I, 2);
  if (!rr) return false;
  if (rr->shape.rank != 3 || rr->shape.d[2].syms || rr->shape.d[2].k <= 0)
    return imp_fail(I, "input 2 (R) has rank %d, expected 3 with a static hidden size", rr->shape.rank);
  if (r->hidden >= 0 && r->hidden != rr->shape.d[2].k)
    return imp_fail(I, "attribute 'hidden_size' is %lld but R's hidden size is %lld", (long long)r->hidden,
                    (long long)rr->shape.d[2].k);
  r->hidden = rr->shape.d[2].k;
  int64_t gh = r->op->gates * r->hidden;
  *rw = rnn_input(I, 2, "R", 3, (int64_t[]){r->dirs, gh, r->hidden});
  *w = *rw ? rnn_input(I, 1, "W", 3, (int64_t[]){r->dirs, gh, r->in}) : NULL;
  return *w && full_lengths(I, r);
}

/* An initial state [D, B, H] (layout 1: [B, D, H]) of input i, direction d as [B, H]; NULL
 * (zeros) when absent; *ok false after a message */
static INode *initial_state(Imp *I, const RnnDims *r, int i, int d, bool *ok) {
  *ok = true;
  if (!imp_has_input(I, i)) return NULL;
  INode *h = input_f32(I, i);
  *ok = false;
  if (!h) return NULL;
  Shape want = {.rank = 3, .d = {dim_const(r->dirs), r->b, dim_const(r->hidden)}};
  if (r->batch_first) want.d[0] = r->b, want.d[1] = dim_const(r->dirs);
  if (!shape_eq(&h->shape, &want))
    return imp_fail(I, "input %d (initial_%c) is not [%s, hidden_size]", i, i == 5 ? 'h' : 'c',
                    r->batch_first ? "batch, directions" : "directions, batch"), NULL;
  INode *y = ir_slice(IM, IE, h, r->batch_first, d, d + 1, 1, I->loc, ID);
  Shape s = {.rank = 2, .d = {r->b, dim_const(r->hidden)}};
  y = y ? ir_reshape(IM, IE, y, &s, I->loc, ID) : NULL;
  *ok = y != NULL;
  return y;
}

/* x with a unit axis inserted at `axis` */
static INode *unit(Imp *I, INode *x, int axis) {
  if (!x) return NULL;
  Shape s = {.rank = x->shape.rank + 1};
  for (int k = 0, j = 0; k < s.rank; k++) s.d[k] = k == axis ? dim_const(1) : x->shape.d[j++];
  return ir_reshape(IM, IE, x, &s, I->loc, ID);
}

static INode *stack(Imp *I, INode *acc, INode *x, int axis) {
  x = unit(I, x, axis);
  return acc && x ? ir_concat(IM, IE, acc, x, axis, I->loc, ID) : x;
}

/* The weights of direction d in torch's order: w[] = W_ih, W_hh, b_ih, b_hh (NULL: none) */
static bool direction_weights(Imp *I, const RnnDims *r, INode *w, INode *rw, INode *b, int d, INode **wt) {
  int64_t gh = r->op->gates * r->hidden;
  wt[0] = torch_order(I, r, direction(I, w, d));
  wt[1] = torch_order(I, r, direction(I, rw, d));
  wt[2] = wt[3] = NULL;
  if (b) {
    INode *bd = direction(I, b, d);
    wt[2] = torch_order(I, r, bd ? slice0(I, bd, 0, gh) : NULL);
    wt[3] = torch_order(I, r, bd ? slice0(I, bd, gh, 2 * gh) : NULL);
    if (!wt[2] || !wt[3]) return false;
  }
  return wt[0] && wt[1];
}

static RnnKind rnn_kind(Imp *I, const RnnDims *r, bool relu, bool *ok) {
  int64_t lbr = 0;
  *ok = true;
  if (r->op->gates == 4) return RNN_LSTM;
  if (r->op->gates == 1) return relu ? RNN_RELU : RNN_TANH;
  *ok = attr_int(I, "linear_before_reset", 0, &lbr);
  if (*ok && lbr != 0 && lbr != 1)
    *ok = imp_fail(I, "attribute 'linear_before_reset' is %lld, expected 0 or 1", (long long)lbr);
  return lbr ? RNN_GRU : RNN_GRU_RESET_FIRST; /* torch's GRU is linear_before_reset = 1 */
}

/* An LSTM of one step (a static length of 1: torch exports so each step of a loop that feeds
 * the LSTM its own output, as autoregressive sampling does) as the cell itself, without a
 * scan, so that such loops do not run out of scans.  Returns Y of the direction [1, B, H]
 * (batch_first: [B, 1, H]); final[] = h', c'. */
static INode *lstm_single_step(Imp *I, const RnnDims *r, INode *x, INode *const *init, INode *const *wt,
                               INode **final) {
  Shape xs = {.rank = 2, .d = {r->b, dim_const(r->in)}}, hs = {.rank = 2, .d = {r->b, dim_const(r->hidden)}};
  INode *state[2];
  for (int s = 0; s < 2; s++) state[s] = init[s] ? init[s] : ir_fill(IM, IE, 0.0, &hs, I->loc);
  INode *step = ir_reshape(IM, IE, x, &xs, I->loc, ID);
  final[0] = step ? lstm_step(S_, step, state[0], state[1], wt[0], wt[1], wt[2], wt[3], r->hidden, &final[1], I->loc)
                  : NULL;
  return unit(I, final[0], r->batch_first ? 1 : 0);
}

/* LSTM, GRU, RNN: out[] = Y [T, D, B, H] (layout 1: [B, T, D, H]), Y_h and Y_c [D, B, H]
 * (layout 1: [B, D, H]) */
bool op_rnn(Imp *I, const OpRow *row, INode **out) {
  RnnDims r = {0};
  for (size_t k = 0; k < sizeof RNN_OPS / sizeof RNN_OPS[0]; k++)
    if (!strcmp(RNN_OPS[k].name, row->name)) r.op = &RNN_OPS[k];
  INode *x = NULL, *w = NULL, *rw = NULL, *b = NULL;
  bool relu, ok;
  if (!r.op || !rnn_dims(I, &r, &x, &w, &rw) || !rnn_activations(I, &r, &relu)) return false;
  RnnKind kind = rnn_kind(I, &r, relu, &ok);
  if (!ok) return false;
  if (imp_has_input(I, 7)) return imp_fail(I, "input 7 (P, peepholes) is not supported");
  if (imp_has_input(I, 3) && !(b = rnn_input(I, 3, "B", 2, (int64_t[]){r.dirs, 2 * r.op->gates * r.hidden})))
    return false;
  int yaxis = r.batch_first ? 2 : 1, haxis = r.batch_first ? 1 : 0;
  for (int d = 0; d < r.dirs; d++) {
    INode *wt[4], *init[2], *final[2];
    if (!direction_weights(I, &r, w, rw, b, d, wt)) return false;
    for (int s = 0; s < r.op->states; s++)
      if (init[s] = initial_state(I, &r, 5 + s, d, &ok), !ok) return false;
    bool reverse = d == 1 || !strcmp(attr_string(I, "direction", "forward"), "reverse");
    bool one_step = kind == RNN_LSTM && dim_is(r.t, 1);
    INode *y = one_step ? lstm_single_step(I, &r, x, init, wt, final)
                        : rnn_sequence_of(S_, kind, x, init, wt, r.hidden, r.batch_first, reverse, final, I->loc);
    if (!y) return false;
    out[0] = stack(I, out[0], y, yaxis);
    for (int s = 0; s < r.op->states; s++) out[1 + s] = stack(I, out[1 + s], final[s], haxis);
    if (!out[0] || !out[1] || (r.op->states == 2 && !out[2])) return false;
  }
  return true;
}
