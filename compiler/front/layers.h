/* layers.h — torch.nn-style layers: Linear, Sequential, Identity and the activations of
 * ops.def (layers.c), the table-driven layers of layers_nn.c (convolutions, norms, pooling,
 * Embedding, LSTM), binding module trees to state_dict names, and calling layers. */
#ifndef NNC_LAYERS_H
#define NNC_LAYERS_H

#include "builtins.h"

/* The constructor of the layer called `name` (a built-in row), or NULL. */
const Builtin *layer_find(const char *name);
const Builtin *nn_layer_find(const char *name); /* layers_nn.c's table */

bool layer_call(Sema *S, ModInst *mi, const Args *a, Value *out);
bool module_bind(Sema *S, ModInst *mi, const char *prefix, SrcLoc loc);
bool value_bind(Sema *S, Value *v, const char *prefix, SrcLoc loc);

/* layers_nn.c */
bool nn_layer_bind(Sema *S, ModInst *mi);
INode *nn_layer_call(Sema *S, ModInst *mi, INode *x, SrcLoc loc);
bool nn_layer_call_args(Sema *S, ModInst *mi, const Args *a, Value *out, bool *handled);
bool nn_layer_member(Sema *S, ModInst *mi, const char *name, SrcLoc loc, Value *out);
/* A Parameter read inside an fn or export body is its tensor: *v becomes it (other values
 * stay as they are); false after a diagnostic. */
bool nn_parameter_read(Sema *S, Value *v, SrcLoc loc);

/* recurrent.c: one step (x [B, I], states [B, H]) and a sequence (x [T, B, I], [B, T, I] when
 * batch_first; initial states [B, H] or NULL for zeros) of PyTorch's LSTM (gates i, f, g, o)
 * and GRU (gates r, z, n); biases may be NULL.  A step returns h' (the LSTM's c' in *c_next),
 * a sequence the outputs [.., H] and the final states.  rnn_sequence is one direction of one
 * layer of either (lstm or not): init[] the initial states (h, c), w[] weight_ih, weight_hh,
 * bias_ih, bias_hh; reverse runs from the last step to the first (PyTorch's _reverse). */
INode *lstm_step(Sema *S, INode *x, INode *h, INode *c, INode *wih, INode *whh, INode *bih, INode *bhh,
                 int64_t hs, INode **c_next, SrcLoc loc);
INode *lstm_sequence(Sema *S, INode *x, INode *h0, INode *c0, INode *wih, INode *whh, INode *bih, INode *bhh,
                     int64_t hs, bool batch_first, INode **h_n, INode **c_n, SrcLoc loc);
INode *gru_step(Sema *S, INode *x, INode *h, INode *wih, INode *whh, INode *bih, INode *bhh, int64_t hs, SrcLoc loc);
INode *rnn_sequence(Sema *S, bool lstm, INode *x, INode *const *init, INode *const *w, int64_t hs, bool batch_first,
                    bool reverse, INode **final, SrcLoc loc);

/* rnn_sequence for any of these cells (the ONNX front end's GRU with linear_before_reset = 0,
 * gates still in torch's order r, z, n; and the Elman RNN, tanh or relu, one gate block) */
typedef enum RnnKind { RNN_LSTM, RNN_GRU, RNN_GRU_RESET_FIRST, RNN_TANH, RNN_RELU } RnnKind;
INode *rnn_sequence_of(Sema *S, RnnKind kind, INode *x, INode *const *init, INode *const *w, int64_t hs,
                       bool batch_first, bool reverse, INode **final, SrcLoc loc);

#endif
