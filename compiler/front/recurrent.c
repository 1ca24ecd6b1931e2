/* recurrent.c — LSTM and GRU steps and sequences as PyTorch defines them (gate orders i, f,
 * g, o and r, z, n), in the primitive ops of ops.def.  A sequence is a scan (scan.h) over the
 * time axis whose input half of the gates, x W_ih^T + b, is one GEMM over the whole sequence
 * before the loop (T·B rows) instead of a small one per step.  The reverse direction of a
 * bidirectional layer is the same scan run from the last step to the first.  Used by the
 * layers (LSTM, LSTMCell, GRU, GRUCell: layers_nn.c) and the functions lstm / lstm_cell
 * (builtins_nn.c); the ONNX front end (onnx_ops_rnn.c) adds two cells of its own: the GRU
 * with linear_before_reset = 0 and the Elman RNN (tanh or relu). */
#include "layers.h"
#include "scan.h"

#define D (S->d)

static INode *add(Sema *S, INode *a, INode *b, SrcLoc loc) { return ir_binary(S->m, S->e, OP_ADD, a, b, loc, D); }
static INode *mul(Sema *S, INode *a, INode *b, SrcLoc loc) { return ir_binary(S->m, S->e, OP_MUL, a, b, loc, D); }
static INode *unary(Sema *S, Op op, INode *a, SrcLoc loc) { return ir_unary(S->m, S->e, op, a, loc, D); }
static INode *gate(Sema *S, INode *g, int i, int64_t hs, SrcLoc loc) {
  return ir_slice(S->m, S->e, g, 1, i * hs, (i + 1) * hs, 1, loc, D);
}

/* x W^T + bias (bias may be NULL) */
static INode *input_gates(Sema *S, INode *x, INode *w, INode *bias, SrcLoc loc) {
  INode *g = ir_matmul(S->m, S->e, x, w, 0, 1, loc, D);
  return bias && g ? add(S, g, bias, loc) : g;
}

/* The LSTM's input bias: both biases, b_ih + b_hh (either may be NULL), so that a step adds
 * h W_hh^T alone.  PyTorch adds (x W_ih^T + b_ih) and (h W_hh^T + b_hh); the sum differs by
 * rounding, and a step no longer adds 4H biases. */
static INode *lstm_bias(Sema *S, INode *bih, INode *bhh, SrcLoc loc) { return bih && bhh ? add(S, bih, bhh, loc) : bih ? bih : bhh; }

/* One LSTM step from the input's share of the gates gx: state (h, c) -> next (h', c');
 * returns h'.  (bhh is in gx already.) */
static INode *lstm_step_from(Sema *S, INode *gx, INode *const *state, INode *whh, INode *bhh, int64_t hs, INode **next,
                             SrcLoc loc) {
  (void)bhh;
  INode *g = add(S, gx, ir_matmul(S->m, S->e, state[0], whh, 0, 1, loc, D), loc);
  if (!g) return NULL;
  INode *i = unary(S, OP_SIGMOID, gate(S, g, 0, hs, loc), loc), *f = unary(S, OP_SIGMOID, gate(S, g, 1, hs, loc), loc);
  INode *c2 = add(S, mul(S, f, state[1], loc), mul(S, i, unary(S, OP_TANH, gate(S, g, 2, hs, loc), loc), loc), loc);
  next[1] = c2;
  return next[0] = mul(S, unary(S, OP_SIGMOID, gate(S, g, 3, hs, loc), loc), unary(S, OP_TANH, c2, loc), loc);
}

/* One GRU step as ATen's gru_cell: with gi = x W_ih^T + b_ih and gh = h W_hh^T + b_hh,
 * r = s(gi_r + gh_r), z = s(gi_z + gh_z), n = tanh(gi_n + r gh_n), h' = (h - n) z + n. */
static INode *gru_step_from(Sema *S, INode *gx, INode *const *state, INode *whh, INode *bhh, int64_t hs, INode **next,
                            SrcLoc loc) {
  INode *h = state[0], *gh = input_gates(S, h, whh, bhh, loc);
  if (!gx || !gh) return NULL;
  INode *r = unary(S, OP_SIGMOID, add(S, gate(S, gx, 0, hs, loc), gate(S, gh, 0, hs, loc), loc), loc);
  INode *z = unary(S, OP_SIGMOID, add(S, gate(S, gx, 1, hs, loc), gate(S, gh, 1, hs, loc), loc), loc);
  INode *n = unary(S, OP_TANH, add(S, gate(S, gx, 2, hs, loc), mul(S, r, gate(S, gh, 2, hs, loc), loc), loc), loc);
  return next[0] = add(S, mul(S, ir_binary(S->m, S->e, OP_SUB, h, n, loc, D), z, loc), n, loc);
}

/* ONNX's GRU with linear_before_reset = 0 (its default; gates here in torch's order r, z, n):
 * the reset gate scales h before its matmul, n = tanh(gi_n + (r h) W_hn^T + b_hn). */
static INode *gru_reset_first_step(Sema *S, INode *gx, INode *const *state, INode *whh, INode *bhh, int64_t hs,
                                   INode **next, SrcLoc loc) {
  INode *h = state[0];
  INode *w_rz = ir_slice(S->m, S->e, whh, 0, 0, 2 * hs, 1, loc, D), *w_n = ir_slice(S->m, S->e, whh, 0, 2 * hs, 3 * hs, 1, loc, D);
  INode *b_rz = bhh ? ir_slice(S->m, S->e, bhh, 0, 0, 2 * hs, 1, loc, D) : NULL;
  INode *b_n = bhh ? ir_slice(S->m, S->e, bhh, 0, 2 * hs, 3 * hs, 1, loc, D) : NULL;
  INode *gh = input_gates(S, h, w_rz, b_rz, loc);
  if (!gx || !gh) return NULL;
  INode *r = unary(S, OP_SIGMOID, add(S, gate(S, gx, 0, hs, loc), gate(S, gh, 0, hs, loc), loc), loc);
  INode *z = unary(S, OP_SIGMOID, add(S, gate(S, gx, 1, hs, loc), gate(S, gh, 1, hs, loc), loc), loc);
  INode *n = unary(S, OP_TANH, add(S, gate(S, gx, 2, hs, loc), input_gates(S, mul(S, r, h, loc), w_n, b_n, loc), loc), loc);
  return next[0] = add(S, mul(S, ir_binary(S->m, S->e, OP_SUB, h, n, loc, D), z, loc), n, loc);
}

/* The Elman RNN: h' = act(x W_ih^T + b_ih + b_hh + h W_hh^T) (both biases are in gx) */
static INode *elman_step(Sema *S, Op act, INode *gx, INode *const *state, INode *whh, SrcLoc loc) {
  INode *g = add(S, gx, ir_matmul(S->m, S->e, state[0], whh, 0, 1, loc, D), loc);
  return g ? unary(S, act, g, loc) : NULL;
}
static INode *tanh_step(Sema *S, INode *gx, INode *const *state, INode *whh, INode *bhh, int64_t hs, INode **next,
                        SrcLoc loc) {
  return next[0] = elman_step(S, OP_TANH, gx, state, whh, loc);
}
static INode *relu_step(Sema *S, INode *gx, INode *const *state, INode *whh, INode *bhh, int64_t hs, INode **next,
                        SrcLoc loc) {
  return next[0] = elman_step(S, OP_RELU, gx, state, whh, loc);
}

typedef INode *(*StepFn)(Sema *S, INode *gx, INode *const *state, INode *whh, INode *bhh, int64_t hs, INode **next,
                         SrcLoc loc);

typedef struct Cell {
  const char *name; /* for messages */
  int nstates;      /* (h, c) or (h) */
  int gates;        /* gate blocks of the weights: 4 or 3 */
  StepFn step;
} Cell;

/* by RnnKind (layers.h) */
static const Cell CELLS[] = {
  [RNN_LSTM] = {"LSTM", 2, 4, lstm_step_from},
  [RNN_GRU] = {"GRU", 1, 3, gru_step_from},
  [RNN_GRU_RESET_FIRST] = {"GRU", 1, 3, gru_reset_first_step},
  [RNN_TANH] = {"RNN", 1, 1, tanh_step},
  [RNN_RELU] = {"RNN", 1, 1, relu_step},
};

/* A recurrence over a sequence x [T, B, I] ([B, T, I] when batch_first), from the last step to
 * the first when reverse: init[] the initial states [B, H] (NULL: zeros), final[] gets the
 * last ones; returns the outputs [.., H], each at its step. */
static INode *sequence(Sema *S, const Cell *cell, INode *x, INode *const *init0, INode *wih, INode *in_bias, INode *whh,
                       INode *bhh, int64_t hs, bool batch_first, bool reverse, INode **final, SrcLoc loc) {
  if (!x || x->shape.rank != 3) return diag_error(D, loc, "%s expects a 3-D input sequence", cell->name), NULL;
  int ta = batch_first ? 1 : 0, ba = 1 - ta;
  Shape st = {.rank = 2, .d = {x->shape.d[ba], dim_const(hs)}};
  INode *init[2];
  for (int i = 0; i < cell->nstates; i++) {
    init[i] = init0[i] ? init0[i] : ir_fill(S->m, S->e, 0.0, &st, loc);
    if (!shape_eq(&init[i]->shape, &st))
      return diag_error(D, loc, "%s: the initial state must be [batch, hidden_size]", cell->name), NULL;
  }
  Shape flat = {.rank = 2, .d = {dim_mul(S->m, x->shape.d[0], x->shape.d[1]), x->shape.d[2]}};
  Shape seq = {.rank = 3, .d = {x->shape.d[0], x->shape.d[1], dim_const(cell->gates * hs)}};
  INode *gx = input_gates(S, ir_reshape(S->m, S->e, x, &flat, loc, D), wih, in_bias, loc);
  if (!gx || !(gx = ir_reshape(S->m, S->e, gx, &seq, loc, D))) return NULL;
  INode *in[2], *out[2], *res[3];
  ScanCtx *c = scan_open(S, x->shape.d[ta], reverse, init, cell->nstates, in, loc);
  if (!c) return NULL;
  INode *gxt = scan_step_of(S, gx, ta, loc);
  whh = scan_capture(S, whh); /* the weights are read by every step */
  if (bhh) bhh = scan_capture(S, bhh);
  INode *y = gxt ? cell->step(S, gxt, in, whh, bhh, hs, out, loc) : NULL;
  int axis = ta;
  if (!y || !scan_close(S, c, init, in, out, cell->nstates, &y, &axis, 1, loc, res)) return NULL;
  for (int i = 0; i < cell->nstates; i++) final[i] = res[i];
  return res[cell->nstates];
}

INode *lstm_step(Sema *S, INode *x, INode *h, INode *c, INode *wih, INode *whh, INode *bih, INode *bhh,
                 int64_t hs, INode **c_next, SrcLoc loc) {
  INode *gx = input_gates(S, x, wih, lstm_bias(S, bih, bhh, loc), loc), *next[2];
  if (!gx || !lstm_step_from(S, gx, (INode *[]){h, c}, whh, NULL, hs, next, loc)) return NULL;
  *c_next = next[1];
  return next[0];
}

INode *lstm_sequence(Sema *S, INode *x, INode *h0, INode *c0, INode *wih, INode *whh, INode *bih, INode *bhh,
                     int64_t hs, bool batch_first, INode **h_n, INode **c_n, SrcLoc loc) {
  INode *final[2];
  INode *w[4] = {wih, whh, bih, bhh};
  INode *y = rnn_sequence(S, true, x, (INode *[]){h0, c0}, w, hs, batch_first, false, final, loc);
  if (!y) return NULL;
  *h_n = final[0];
  *c_n = final[1];
  return y;
}

INode *gru_step(Sema *S, INode *x, INode *h, INode *wih, INode *whh, INode *bih, INode *bhh, int64_t hs, SrcLoc loc) {
  INode *next[1];
  return gru_step_from(S, input_gates(S, x, wih, bih, loc), (INode *[]){h}, whh, bhh, hs, next, loc);
}

INode *rnn_sequence(Sema *S, bool lstm, INode *x, INode *const *init, INode *const *w, int64_t hs, bool batch_first,
                    bool reverse, INode **final, SrcLoc loc) {
  return rnn_sequence_of(S, lstm ? RNN_LSTM : RNN_GRU, x, init, w, hs, batch_first, reverse, final, loc);
}

INode *rnn_sequence_of(Sema *S, RnnKind kind, INode *x, INode *const *init, INode *const *w, int64_t hs,
                       bool batch_first, bool reverse, INode **final, SrcLoc loc) {
  const Cell *cell = &CELLS[kind];
  if (cell->gates == 3) return sequence(S, cell, x, init, w[0], w[2], w[1], w[3], hs, batch_first, reverse, final, loc);
  /* LSTM, RNN: both biases go into the input's share of the gates */
  INode *in_bias = lstm_bias(S, w[2], w[3], loc);
  return sequence(S, cell, x, init, w[0], in_bias, w[1], NULL, hs, batch_first, reverse, final, loc);
}
