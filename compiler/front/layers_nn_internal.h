/* layers_nn_internal.h — what the files of the built-in layer table share (layers_nn.c
 * holds the table and the constructor-argument helpers; layers_attention.c the attention
 * layers). */
#ifndef NNC_LAYERS_NN_INTERNAL_H
#define NNC_LAYERS_NN_INTERNAL_H

#include "builtins.h"
#include "layers.h"

enum { ENCODER = 0, DECODER = 1 }; /* the Transformer layers' variants */

typedef struct ParamSpec {
  const char *name;
  DType dtype;
  int rank;
  int64_t shape[MAX_RANK];
  bool optional; /* may be absent from a weights file (Param.optional) */
} ParamSpec;

typedef struct LayerType {
  Builtin ctor;                                                /* first: its name, b_layer */
  const char *args[10];                                        /* NULL-terminated */
  int (*params)(Sema *S, ModInst *mi, ParamSpec *out);         /* count, or -1 after a diagnostic */
  INode *(*call)(Sema *S, ModInst *mi, INode *x, SrcLoc loc);
  /* layers called with several arguments or returning several values (LSTMCell) */
  bool (*call_args)(Sema *S, ModInst *mi, const Args *a, Value *out);
} LayerType;

/* constructor arguments (NULL / the default when absent or None) */
const Value *layer_cfg(const ModInst *mi, const char *name);
bool layer_cfg_int(Sema *S, const ModInst *mi, const char *name, int64_t def, int64_t *out);
double layer_cfg_num(const ModInst *mi, const char *name, double def);
bool layer_cfg_bool(const ModInst *mi, const char *name, bool def);
bool layer_positive(Sema *S, const ModInst *mi, int64_t v, const char *what);
/* the layer's i-th parameter as a node, or NULL when it is absent */
INode *layer_param(Sema *S, const ModInst *mi, int i, SrcLoc loc);
ParamSpec param_spec(const char *name, int rank, int64_t d0, int64_t d1, int64_t d2, int64_t d3);

int mha_params(Sema *S, ModInst *mi, ParamSpec *out);
bool mha_call(Sema *S, ModInst *mi, const Args *a, Value *out);
int transformer_params(Sema *S, ModInst *mi, ParamSpec *out);
bool transformer_call(Sema *S, ModInst *mi, const Args *a, Value *out);

#endif
