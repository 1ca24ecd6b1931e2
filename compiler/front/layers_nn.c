/* layers_nn.c — the table of torch.nn layers and the layers for images, normalization and
 * sequences (Conv1d/2d, ConvTranspose1d/2d, BatchNorm1d/2d, GroupNorm, LayerNorm,
 * InstanceNorm2d, pooling, Upsample, Flatten, PixelShuffle, Dropout, Parameter, Embedding,
 * LSTM/GRU and their cells; the attention layers are in layers_attention.c).  One table row
 * per layer: its constructor's argument names (torch's order), the parameters it registers
 * (state_dict names and shapes, from its arguments) and its call, which goes through the
 * functional code of nn.c. */
#include <stdio.h>
#include <string.h>
#include "builtins.h"
#include "layers.h"
#include "nn.h"
#include "scan.h"
#include "layers_nn_internal.h"

/* variants of the layers that share their functions (LayerType.ctor.variant) */
enum { BATCH_NORM_1D = 1, BATCH_NORM_2D, INSTANCE_NORM_2D };
enum { MAX_POOL = 1, AVG_POOL };
enum { SHUFFLE = 1, UNSHUFFLE };
enum { GRU_GATES = 3, LSTM_GATES = 4 };
enum { DIM_1D = 16 }; /* or'ed into a variant: the 1-D layer (Conv1d, MaxPool1d, ...), run as
                          the 2-D one on [N, C, 1, L] */ /* recurrent layers: the gate blocks of their weights */

#define D (S->d)

/* ---- constructor arguments ---- */

static int nargs(const LayerType *t) {
  int n = 0;
  while (n < 10 && t->args[n]) n++;
  return n;
}

/* The value of constructor argument `name`, or NULL when it was not given (or None). */
const Value *layer_cfg(const ModInst *mi, const char *name) {
  for (int i = 0; i < nargs(mi->type); i++)
    if (!strcmp(mi->type->args[i], name)) {
      const Value *v = arg_get(&mi->cfg, i, name);
      return v && v->k != V_NONE ? v : NULL;
    }
  unreachable("layer argument not in its table");
}

bool layer_cfg_int(Sema *S, const ModInst *mi, const char *name, int64_t def, int64_t *out) {
  const Value *v = layer_cfg(mi, name);
  *out = def;
  return !v || to_int(S, v, mi->loc, out);
}

static bool cfg_pair(Sema *S, const ModInst *mi, const char *name, int64_t def, int64_t out[2]) {
  const Value *v = layer_cfg(mi, name);
  out[0] = out[1] = def;
  return !v || pair_arg(S, v, mi->loc, name, out);
}

double layer_cfg_num(const ModInst *mi, const char *name, double def) {
  const Value *v = layer_cfg(mi, name);
  return v && v_is_number(v) ? v_num(v) : def;
}

bool layer_cfg_bool(const ModInst *mi, const char *name, bool def) { return layer_cfg_num(mi, name, def) != 0; }

INode *layer_param(Sema *S, const ModInst *mi, int i, SrcLoc loc) {
  return i < mi->nparams && mi->params[i] >= 0 ? ir_param(S->m, S->e, mi->params[i], loc) : NULL;
}

ParamSpec param_spec(const char *name, int rank, int64_t d0, int64_t d1, int64_t d2, int64_t d3) {
  return (ParamSpec){name, DT_F32, rank, {d0, d1, d2, d3}};
}

bool layer_positive(Sema *S, const ModInst *mi, int64_t v, const char *what) {
  return v > 0 ? true : diag_error(D, mi->loc, "%s: %s must be positive", mi->type_name, what);
}

static bool positive_or_zero(Sema *S, const ModInst *mi, int64_t v) {
  return v >= 0 ? true : diag_error(D, mi->loc, "%s: sizes must not be negative, got %lld", mi->type_name, (long long)v);
}

/* ---- convolutions ---- */

/* A 1-D layer's size argument (an int, or a list of one) as the pair (h, value) of the 2-D
 * layer it runs as, on [N, C, 1, L]; a 2-D layer's, as cfg_pair. */
static bool cfg_size(Sema *S, const ModInst *mi, const char *name, int64_t def, int64_t h, int64_t out[2]) {
  if (!(mi->type->ctor.variant & DIM_1D)) return cfg_pair(S, mi, name, def, out);
  const Value *v = layer_cfg(mi, name);
  out[0] = h;
  out[1] = def;
  if (v && (v->k == V_LIST || v->k == V_TUPLE) && v->len == 1) v = &v->items[0];
  return !v || to_int(S, v, mi->loc, &out[1]);
}

static bool conv_config(Sema *S, const ModInst *mi, bool transposed, int64_t *cin, int64_t *cout, int64_t k[2],
                        ConvSpec *c) {
  memset(c, 0, sizeof *c);
  if (!layer_cfg_int(S, mi, "in_channels", 0, cin) || !layer_cfg_int(S, mi, "out_channels", 0, cout) ||
      !cfg_size(S, mi, "kernel_size", 0, 1, k) || !cfg_size(S, mi, "stride", 1, 1, c->stride) ||
      !cfg_size(S, mi, "dilation", 1, 1, c->dilation) || !layer_cfg_int(S, mi, "groups", 1, &c->groups))
    return false;
  if (!layer_positive(S, mi, *cin, "in_channels") || !layer_positive(S, mi, *cout, "out_channels") ||
      !layer_positive(S, mi, k[0], "kernel_size") || !layer_positive(S, mi, k[1], "kernel_size") ||
      !layer_positive(S, mi, c->groups, "groups"))
    return false;
  if (*cin % c->groups || *cout % c->groups)
    return diag_error(D, mi->loc, "%s: groups must divide in_channels and out_channels", mi->type_name);
  if (transposed) {
    int64_t p[2];
    if (!cfg_size(S, mi, "padding", 0, 0, p) || !cfg_size(S, mi, "output_padding", 0, 0, c->output_padding)) return false;
    c->pad[0] = c->pad[2] = p[0];
    c->pad[1] = c->pad[3] = p[1];
    return true;
  }
  const Value *pm = layer_cfg(mi, "padding_mode"), *pad = layer_cfg(mi, "padding");
  if (pm && (pm->k != V_STR || strcmp(pm->s, "zeros")))
    return diag_error(D, mi->loc, "%s: only padding_mode=\"zeros\" is available", mi->type_name);
  if ((mi->type->ctor.variant & DIM_1D) && pad && pad->k != V_STR) { /* (0, p): the length axis only */
    int64_t p[2];
    if (!cfg_size(S, mi, "padding", 0, 0, p)) return false;
    if (p[1] < 0) return diag_error(D, mi->loc, "padding must be non-negative");
    c->pad[1] = c->pad[3] = p[1];
    return true;
  }
  return conv_padding_arg(S, pad, mi->loc, k, c, c->pad);
}

/* A 1-D layer's weight [a, b, k] as the 2-D one [a, b, 1, k] it runs with (2-D: as it is). */
static INode *conv_weight(Sema *S, const ModInst *mi, INode *w, SrcLoc loc) {
  if (!w || !(mi->type->ctor.variant & DIM_1D)) return w;
  Shape s = {.rank = 4, .d = {w->shape.d[0], w->shape.d[1], dim_const(1), w->shape.d[2]}};
  return ir_reshape(S->m, S->e, w, &s, loc, D);
}

/* A 1-D layer's input [N, C, L] as [N, C, 1, L], or its output [N, C, 1, L'] as [N, C, L']. */
static INode *shape_1d(Sema *S, const ModInst *mi, INode *x, bool to_2d, SrcLoc loc) {
  if (!x || !(mi->type->ctor.variant & DIM_1D)) return x;
  if (to_2d && x->shape.rank != 3) {
    char b[128];
    return diag_error(D, loc, "%s expects an input [batch, channels, length], not %s", mi->type_name,
                      shape_str(S->m, x->dtype, &x->shape, b, sizeof b)), NULL;
  }
  Shape s = x->shape;
  if (to_2d) {
    s = (Shape){.rank = 4, .d = {s.d[0], s.d[1], dim_const(1), s.d[2]}};
  } else {
    s.rank = 3;
    s.d[2] = x->shape.d[3];
  }
  return ir_reshape(S->m, S->e, x, &s, loc, D);
}

static int conv_params(Sema *S, ModInst *mi, ParamSpec *out) {
  int64_t cin, cout, k[2];
  ConvSpec c;
  if (!conv_config(S, mi, false, &cin, &cout, k, &c)) return -1;
  out[0] = (mi->type->ctor.variant & DIM_1D) ? param_spec("weight", 3, cout, cin / c.groups, k[1], 0)
                                             : param_spec("weight", 4, cout, cin / c.groups, k[0], k[1]);
  out[1] = param_spec("bias", 1, cout, 0, 0, 0);
  return layer_cfg_bool(mi, "bias", true) ? 2 : 1;
}

static INode *conv_call(Sema *S, ModInst *mi, INode *x, SrcLoc loc) {
  int64_t cin, cout, k[2];
  ConvSpec c;
  if (!conv_config(S, mi, false, &cin, &cout, k, &c)) return NULL;
  INode *b = layer_param(S, mi, 1, loc), *w = conv_weight(S, mi, layer_param(S, mi, 0, loc), loc);
  return shape_1d(S, mi, nn_conv2d(S, shape_1d(S, mi, x, true, loc), w, b, &c, loc), false, loc);
}

static int convt_params(Sema *S, ModInst *mi, ParamSpec *out) {
  int64_t cin, cout, k[2];
  ConvSpec c;
  if (!conv_config(S, mi, true, &cin, &cout, k, &c)) return -1;
  out[0] = (mi->type->ctor.variant & DIM_1D) ? param_spec("weight", 3, cin, cout / c.groups, k[1], 0)
                                             : param_spec("weight", 4, cin, cout / c.groups, k[0], k[1]);
  out[1] = param_spec("bias", 1, cout, 0, 0, 0);
  return layer_cfg_bool(mi, "bias", true) ? 2 : 1;
}

static INode *convt_call(Sema *S, ModInst *mi, INode *x, SrcLoc loc) {
  int64_t cin, cout, k[2];
  ConvSpec c;
  if (!conv_config(S, mi, true, &cin, &cout, k, &c)) return NULL;
  INode *b = layer_param(S, mi, 1, loc), *w = conv_weight(S, mi, layer_param(S, mi, 0, loc), loc);
  return shape_1d(S, mi, nn_conv_transpose2d(S, shape_1d(S, mi, x, true, loc), w, b, &c, loc), false, loc);
}

/* ---- normalization ---- */

/* BatchNorm: weight, bias (affine), running_mean, running_var, num_batches_tracked (stats; a
 * training counter nnc never reads, optional in a weights file as in load_state_dict) */
static int bn_params(Sema *S, ModInst *mi, ParamSpec *out) {
  int64_t c;
  if (!layer_cfg_int(S, mi, "num_features", 0, &c) || !layer_positive(S, mi, c, "num_features")) return -1;
  int n = 0;
  if (layer_cfg_bool(mi, "affine", mi->type->ctor.variant != INSTANCE_NORM_2D)) {
    out[n++] = param_spec("weight", 1, c, 0, 0, 0);
    out[n++] = param_spec("bias", 1, c, 0, 0, 0);
  }
  if (layer_cfg_bool(mi, "track_running_stats", mi->type->ctor.variant != INSTANCE_NORM_2D)) {
    out[n++] = param_spec("running_mean", 1, c, 0, 0, 0);
    out[n++] = param_spec("running_var", 1, c, 0, 0, 0);
    out[n++] = (ParamSpec){"num_batches_tracked", DT_I64, 0, {0}, .optional = true};
  }
  return n;
}

/* the parameter called `name`, or NULL */
static INode *named_param(Sema *S, ModInst *mi, const char *name, SrcLoc loc) {
  ParamSpec ps[MAX_LAYER_PARAMS];
  int n = mi->type->params(S, mi, ps);
  for (int i = 0; i < n; i++)
    if (!strcmp(ps[i].name, name)) return layer_param(S, mi, i, loc);
  return NULL;
}

static INode *bn_call(Sema *S, ModInst *mi, INode *x, SrcLoc loc) {
  bool is1d = mi->type->ctor.variant == BATCH_NORM_1D, inst = mi->type->ctor.variant == INSTANCE_NORM_2D;
  int want = is1d ? 2 : 4;
  if (x->shape.rank != want && !(is1d && x->shape.rank == 3))
    return diag_error(D, loc, "%s expects a tensor of rank %s", mi->type_name, is1d ? "2 or 3" : "4"), NULL;
  double eps = layer_cfg_num(mi, "eps", 1e-5);
  INode *w = named_param(S, mi, "weight", loc), *b = named_param(S, mi, "bias", loc);
  INode *m = named_param(S, mi, "running_mean", loc), *v = named_param(S, mi, "running_var", loc);
  if (inst && !m) return nn_group_norm(S, x, x->shape.d[1].k, w, b, eps, loc);
  if (!m) return diag_error(D, loc, "%s without running statistics normalizes by batch statistics (training): not available at inference", mi->type_name), NULL;
  return nn_batch_norm(S, x, m, v, w, b, eps, loc);
}

static int gn_params(Sema *S, ModInst *mi, ParamSpec *out) {
  int64_t g, c;
  if (!layer_cfg_int(S, mi, "num_groups", 0, &g) || !layer_cfg_int(S, mi, "num_channels", 0, &c) ||
      !layer_positive(S, mi, g, "num_groups") || !layer_positive(S, mi, c, "num_channels"))
    return -1;
  if (c % g) return diag_error(D, mi->loc, "GroupNorm: %lld groups do not divide %lld channels", (long long)g, (long long)c), -1;
  if (!layer_cfg_bool(mi, "affine", true)) return 0;
  out[0] = param_spec("weight", 1, c, 0, 0, 0);
  out[1] = param_spec("bias", 1, c, 0, 0, 0);
  return 2;
}

static INode *gn_call(Sema *S, ModInst *mi, INode *x, SrcLoc loc) {
  int64_t g;
  layer_cfg_int(S, mi, "num_groups", 0, &g);
  return nn_group_norm(S, x, g, layer_param(S, mi, 0, loc), layer_param(S, mi, 1, loc), layer_cfg_num(mi, "eps", 1e-5), loc);
}

static bool ln_shape(Sema *S, const ModInst *mi, int64_t *shape, int *rank) {
  const Value *v = layer_cfg(mi, "normalized_shape");
  if (!v) return diag_error(D, mi->loc, "LayerNorm needs normalized_shape");
  *rank = v->k == V_LIST || v->k == V_TUPLE ? v->len : 1;
  if (*rank < 1 || *rank > MAX_RANK) return diag_error(D, mi->loc, "LayerNorm: bad normalized_shape");
  for (int i = 0; i < *rank; i++)
    if (!to_int(S, v->k == V_LIST || v->k == V_TUPLE ? &v->items[i] : v, mi->loc, &shape[i]) ||
        !layer_positive(S, mi, shape[i], "normalized_shape"))
      return false;
  return true;
}

static int ln_params(Sema *S, ModInst *mi, ParamSpec *out) {
  int64_t shape[MAX_RANK];
  int rank;
  if (!ln_shape(S, mi, shape, &rank)) return -1;
  if (!layer_cfg_bool(mi, "elementwise_affine", true)) return 0;
  out[0] = (ParamSpec){"weight", DT_F32, rank, {0}};
  out[1] = (ParamSpec){"bias", DT_F32, rank, {0}};
  memcpy(out[0].shape, shape, rank * sizeof *shape);
  memcpy(out[1].shape, shape, rank * sizeof *shape);
  return 2;
}

static INode *ln_call(Sema *S, ModInst *mi, INode *x, SrcLoc loc) {
  int64_t shape[MAX_RANK];
  int rank;
  if (!ln_shape(S, mi, shape, &rank)) return NULL;
  for (int i = 0; i < rank; i++) {
    int ax = x->shape.rank - rank + i;
    if (ax < 0 || !dim_is(x->shape.d[ax], shape[i]))
      return diag_error(D, loc, "LayerNorm: normalized_shape does not match the input's trailing dims"), NULL;
  }
  return nn_layer_norm(S, x, rank, layer_param(S, mi, 0, loc), layer_param(S, mi, 1, loc), layer_cfg_num(mi, "eps", 1e-5), loc);
}

/* ---- parameterless layers ---- */

static int no_params(Sema *S, ModInst *mi, ParamSpec *out) { return 0; }

/* ---- nn.Parameter: a tensor of the state_dict under its member's own name ---- */

/* Parameter(shape, dtype="f32", requires_grad=true): shape a list of static sizes ([] for a
 * scalar); dtype "f32" or "i64"; requires_grad (training) changes nothing */
static int parameter_params(Sema *S, ModInst *mi, ParamSpec *out) {
  const Value *v = layer_cfg(mi, "shape"), *dt = layer_cfg(mi, "dtype");
  ParamSpec p = {"", DT_F32};
  if (!v || (v->k != V_LIST && v->k != V_TUPLE))
    return diag_error(D, mi->loc, "Parameter needs its shape as a list: Parameter([1, 1, D])"), -1;
  if (v->len > MAX_RANK) return diag_error(D, mi->loc, "Parameter: rank %d exceeds the maximum of %d", v->len, MAX_RANK), -1;
  p.rank = v->len;
  for (int i = 0; i < p.rank; i++)
    if (!to_int(S, &v->items[i], mi->loc, &p.shape[i]) || !positive_or_zero(S, mi, p.shape[i])) return -1;
  if (dt && (dt->k != V_STR || (strcmp(dt->s, "f32") && strcmp(dt->s, "i64"))))
    return diag_error(D, mi->loc, "Parameter: dtype must be \"f32\" or \"i64\""), -1;
  if (dt && !strcmp(dt->s, "i64")) p.dtype = DT_I64;
  out[0] = p;
  return 1;
}

static INode *parameter_call(Sema *S, ModInst *mi, INode *x, SrcLoc loc) {
  return diag_error(D, loc, "a Parameter is a tensor, not a layer: use it without calling it"), NULL;
}

bool nn_parameter_read(Sema *S, Value *v, SrcLoc loc) {
  if (v->k != V_MOD || v->mod->kind != MK_LAYER || v->mod->type->params != parameter_params || !S->e) return true;
  if (!v->mod->prefix) return diag_error(D, loc, "this Parameter has no name: assign it to a module member or a top-level name");
  *v = v_tensor(layer_param(S, v->mod, 0, loc));
  return v->t != NULL;
}

static INode *pool_call(Sema *S, ModInst *mi, INode *x, SrcLoc loc) {
  bool is_max = (mi->type->ctor.variant & ~DIM_1D) == MAX_POOL;
  if (is_max && layer_cfg_bool(mi, "return_indices", false))
    return diag_error(D, loc, "%s: return_indices is not available", mi->type_name), NULL;
  PoolSpec p = {.count_include_pad = true};
  if (!layer_cfg(mi, "kernel_size")) return diag_error(D, loc, "%s needs kernel_size", mi->type_name), NULL;
  if (!cfg_size(S, mi, "kernel_size", 0, 1, p.kernel) || !cfg_size(S, mi, "padding", 0, 0, p.pad)) return NULL;
  p.stride[0] = p.kernel[0];
  p.stride[1] = p.kernel[1];
  if (layer_cfg(mi, "stride") && !cfg_size(S, mi, "stride", 0, 1, p.stride)) return NULL;
  p.dilation[0] = p.dilation[1] = 1;
  if (is_max && !cfg_size(S, mi, "dilation", 1, 1, p.dilation)) return NULL;
  p.ceil_mode = layer_cfg_bool(mi, "ceil_mode", false);
  if (!is_max) {
    p.count_include_pad = layer_cfg_bool(mi, "count_include_pad", true);
    if (!(mi->type->ctor.variant & DIM_1D) && !layer_cfg_int(S, mi, "divisor_override", 0, &p.divisor_override)) return NULL;
  }
  x = shape_1d(S, mi, x, true, loc);
  return shape_1d(S, mi, is_max ? nn_max_pool2d(S, x, &p, loc) : nn_avg_pool2d(S, x, &p, loc), false, loc);
}

static INode *adaptive_call(Sema *S, ModInst *mi, INode *x, SrcLoc loc) {
  int64_t o[2];
  bool is_max = (mi->type->ctor.variant & ~DIM_1D) == MAX_POOL;
  if (is_max && layer_cfg_bool(mi, "return_indices", false))
    return diag_error(D, loc, "%s: return_indices is not available", mi->type_name), NULL;
  if (!layer_cfg(mi, "output_size")) return diag_error(D, loc, "%s needs output_size", mi->type_name), NULL;
  if (!cfg_size(S, mi, "output_size", 0, 1, o)) return NULL;
  x = shape_1d(S, mi, x, true, loc);
  x = is_max ? nn_adaptive_max_pool2d(S, x, o[0], o[1], loc) : nn_adaptive_avg_pool2d(S, x, o[0], o[1], loc);
  return shape_1d(S, mi, x, false, loc);
}

static INode *upsample_call(Sema *S, ModInst *mi, INode *x, SrcLoc loc) {
  Dim size[2];
  double scale[2];
  const char *mode;
  bool align;
  if (!interpolate_args(S, &mi->cfg, 0, size, scale, &mode, &align)) return NULL;
  return nn_interpolate(S, x, size[0], size[1], scale[0], scale[1], mode, align, loc);
}

static INode *flatten_call(Sema *S, ModInst *mi, INode *x, SrcLoc loc) {
  int64_t s, e;
  if (!layer_cfg_int(S, mi, "start_dim", 1, &s) || !layer_cfg_int(S, mi, "end_dim", -1, &e)) return NULL;
  return flatten_node(S, x, s, e, loc);
}

static INode *shuffle_call(Sema *S, ModInst *mi, INode *x, SrcLoc loc) {
  bool inv = mi->type->ctor.variant == UNSHUFFLE;
  int64_t r;
  if (!layer_cfg_int(S, mi, inv ? "downscale_factor" : "upscale_factor", 0, &r)) return NULL;
  return nn_pixel_shuffle(S, x, r, inv, loc);
}

static INode *identity_call(Sema *S, ModInst *mi, INode *x, SrcLoc loc) { return x; } /* inference */

/* ---- embeddings and recurrent cells ---- */

static int embedding_params(Sema *S, ModInst *mi, ParamSpec *out) {
  int64_t v, e;
  if (!layer_cfg_int(S, mi, "num_embeddings", 0, &v) || !layer_cfg_int(S, mi, "embedding_dim", 0, &e) ||
      !layer_positive(S, mi, v, "num_embeddings") || !layer_positive(S, mi, e, "embedding_dim"))
    return -1;
  out[0] = param_spec("weight", 2, v, e, 0, 0);
  return 1;
}

/* rows of the weight picked by integer tokens of any shape -> [..., embedding_dim] */
static INode *embedding_call(Sema *S, ModInst *mi, INode *x, SrcLoc loc) {
  INode *w = layer_param(S, mi, 0, loc);
  Dim n = shape_numel(S->m, &x->shape);
  if (x->shape.rank >= MAX_RANK) return diag_error(D, loc, "Embedding: input rank too large"), NULL;
  x = ir_check_index(S->m, S->e, x, w->shape.d[0], "Embedding: input", loc, D);
  if (!x) return NULL;
  Shape col = {.rank = 2, .d = {n, dim_const(1)}}, rows = {.rank = 2, .d = {n, w->shape.d[1]}}, out = x->shape;
  out.d[out.rank++] = w->shape.d[1];
  INode *g = ir_gather(S->m, S->e, w, ir_reshape(S->m, S->e, x, &col, loc, D), 0, &rows, loc, D);
  return ir_reshape(S->m, S->e, g, &out, loc, D);
}

/* LSTMCell / GRUCell(input_size, hidden_size, bias=True): weight_ih [G H, I], weight_hh
 * [G H, H], bias_ih, bias_hh [G H], G the variant's gate count (4, 3) */
static int cell_params(Sema *S, ModInst *mi, ParamSpec *out) {
  int64_t in, h, g = mi->type->ctor.variant;
  if (!layer_cfg_int(S, mi, "input_size", 0, &in) || !layer_cfg_int(S, mi, "hidden_size", 0, &h) ||
      !layer_positive(S, mi, in, "input_size") || !layer_positive(S, mi, h, "hidden_size"))
    return -1;
  out[0] = param_spec("weight_ih", 2, g * h, in, 0, 0);
  out[1] = param_spec("weight_hh", 2, g * h, h, 0, 0);
  out[2] = param_spec("bias_ih", 1, g * h, 0, 0, 0);
  out[3] = param_spec("bias_hh", 1, g * h, 0, 0, 0);
  return layer_cfg_bool(mi, "bias", true) ? 4 : 2;
}

/* LSTMCell(x, h, c) -> (h', c') with PyTorch's gate order i, f, g, o:
 *   gates = x W_ih^T + b_ih + h W_hh^T + b_hh,  c' = s(f) c + s(i) tanh(g),  h' = s(o) tanh(c') */
static bool lstm_cell_call(Sema *S, ModInst *mi, const Args *a, Value *out) {
  if (!mi->prefix)
    return diag_error(D, a->loc, "this LSTMCell has no parameter name: assign it to a module member or a top-level name");
  const Value *state = a->npos == 2 ? &a->pos[1] : NULL;
  if (a->nkw || a->npos < 1 || a->npos > 3 || (state && state->k != V_LIST && state->k != V_TUPLE))
    return diag_error(D, a->loc, "LSTMCell takes (input), (input, [h, c]) or (input, h, c)");
  INode *x = to_tensor(S, &a->pos[0], a->loc), *h = NULL, *c = NULL;
  if (!x) return false;
  if (state && state->len != 2) return diag_error(D, a->loc, "LSTMCell: the state is [h, c]");
  if (state) {
    h = to_tensor(S, &state->items[0], a->loc);
    c = to_tensor(S, &state->items[1], a->loc);
  } else if (a->npos == 3) {
    h = to_tensor(S, &a->pos[1], a->loc);
    c = to_tensor(S, &a->pos[2], a->loc);
  }
  int64_t is, hs;
  layer_cfg_int(S, mi, "input_size", 0, &is);
  layer_cfg_int(S, mi, "hidden_size", 0, &hs);
  if (x->shape.rank != 2 || !dim_is(x->shape.d[1], is)) {
    char buf[128];
    return diag_error(D, a->loc, "LSTMCell(%lld, %lld) expects an input [batch, %lld], not %s", (long long)is,
                      (long long)hs, (long long)is, shape_str(S->m, x->dtype, &x->shape, buf, sizeof buf));
  }
  Shape st = {.rank = 2, .d = {x->shape.d[0], dim_const(hs)}};
  if (!h) h = ir_fill(S->m, S->e, 0.0, &st, a->loc);
  if (!c) c = ir_fill(S->m, S->e, 0.0, &st, a->loc);
  if (!h || !c) return false;
  INode *c2, *h2 = lstm_step(S, x, h, c, layer_param(S, mi, 0, a->loc), layer_param(S, mi, 1, a->loc),
                             mi->nparams == 4 ? layer_param(S, mi, 2, a->loc) : NULL,
                             mi->nparams == 4 ? layer_param(S, mi, 3, a->loc) : NULL, hs, &c2, a->loc);
  if (!h2) return false;
  Value *items = arena_alloc(S->arena, 2 * sizeof *items);
  items[0] = v_tensor(h2);
  items[1] = v_tensor(c2);
  *out = (Value){.k = V_TUPLE, .items = items, .len = 2};
  return true;
}

/* nn.LSTM / nn.GRU(input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
 * dropout=0, bidirectional=False): per layer l and direction (the reverse one's names end in
 * _reverse), weight_ih_l{l} [G H, I] (I: input_size, then H per direction), weight_hh_l{l}
 * [G H, H], bias_ih_l{l}, bias_hh_l{l} [G H] */
static int rnn_params(Sema *S, ModInst *mi, ParamSpec *out) {
  int64_t in, h, layers, g = mi->type->ctor.variant;
  const char *name = mi->type_name;
  if (!layer_cfg_int(S, mi, "input_size", 0, &in) || !layer_cfg_int(S, mi, "hidden_size", 0, &h) ||
      !layer_cfg_int(S, mi, "num_layers", 1, &layers) || !layer_positive(S, mi, in, "input_size") || !layer_positive(S, mi, h, "hidden_size") ||
      !layer_positive(S, mi, layers, "num_layers"))
    return -1;
  int dirs = layer_cfg_bool(mi, "bidirectional", false) ? 2 : 1, max = MAX_LAYER_PARAMS / (4 * dirs);
  if (layers > max) {
    const char *when = dirs == 2 ? " when bidirectional" : "";
    return diag_error(D, mi->loc, "%s: num_layers above %d is not available%s", name, max, when), -1;
  }
  /* dropout (between layers, in training only) is the identity, as in eval mode */
  if (g == LSTM_GATES && layer_cfg_num(mi, "proj_size", 0) != 0)
    return diag_error(D, mi->loc, "%s: proj_size is not available", name), -1;
  bool bias = layer_cfg_bool(mi, "bias", true);
  int n = 0;
  for (int64_t l = 0; l < layers; l++)
    for (int dir = 0; dir < dirs; dir++) {
      static const char *const kind[4] = {"weight_ih", "weight_hh", "bias_ih", "bias_hh"};
      for (int k = 0; k < (bias ? 4 : 2); k++) {
        char *pn = arena_alloc(S->arena, 40);
        snprintf(pn, 40, "%s_l%lld%s", kind[k], (long long)l, dir ? "_reverse" : "");
        out[n++] = k < 2 ? param_spec(pn, 2, g * h, k == 1 ? h : l == 0 ? in : dirs * h, 0, 0) : param_spec(pn, 1, g * h, 0, 0, 0);
      }
    }
  return n;
}

/* A recurrent layer's initial state [num_layers * directions, B, H] (NULL: zeros) as the [B, H]
 * of layer and direction l (PyTorch's order: layer 0, layer 0 reverse, layer 1, ...). */
static INode *layer_state(Sema *S, INode *s, int64_t l, SrcLoc loc) {
  if (!s) return NULL;
  Shape s2 = {.rank = 2, .d = {s->shape.d[1], s->shape.d[2]}};
  return ir_reshape(S->m, S->e, ir_slice(S->m, S->e, s, 0, l, l + 1, 1, loc, D), &s2, loc, D);
}

/* s [B, H] appended to the stacked states *acc [n, B, H] (NULL: none yet) */
static INode *stack_state(Sema *S, INode *acc, INode *s, SrcLoc loc) {
  Shape s3 = {.rank = 3, .d = {dim_const(1), s->shape.d[0], s->shape.d[1]}};
  s = ir_reshape(S->m, S->e, s, &s3, loc, D);
  return acc ? ir_concat(S->m, S->e, acc, s, 0, loc, D) : s;
}

/* LSTM / GRU over num_layers stacked layers, each one direction or two (bidirectional: the
 * second reads the sequence from its end; the layer's output is [forward, reverse] along the
 * feature axis): x [T, B, I] ([B, T, I] when batch_first); h0, c0 [num_layers * directions,
 * B, H] or NULL; returns the last layer's outputs [.., directions * H], the final states of
 * every layer and direction, stacked in the order of h0, in *h_n (and *c_n: LSTM). */
static INode *rnn_layers(Sema *S, ModInst *mi, INode *x, INode *h0, INode *c0, INode **h_n, INode **c_n, SrcLoc loc) {
  int64_t hs, layers;
  layer_cfg_int(S, mi, "hidden_size", 0, &hs);
  layer_cfg_int(S, mi, "num_layers", 1, &layers);
  bool lstm = mi->type->ctor.variant == LSTM_GATES, bf = layer_cfg_bool(mi, "batch_first", false);
  int dirs = layer_cfg_bool(mi, "bidirectional", false) ? 2 : 1, per = mi->nparams / ((int)layers * dirs);
  for (int i = 0; i < 2; i++) {
    INode *s = i ? c0 : h0;
    if (s && (s->shape.rank != 3 || !dim_is(s->shape.d[0], layers * dirs) || !dim_is(s->shape.d[2], hs)))
      return diag_error(D, loc, "%s: the initial states are [num_layers%s = %lld, batch, hidden_size = %lld]",
                        mi->type_name, dirs == 2 ? " * 2" : "", (long long)(layers * dirs), (long long)hs), NULL;
  }
  *h_n = *c_n = NULL;
  for (int64_t l = 0; l < layers && x; l++) {
    INode *y[2] = {NULL};
    for (int dir = 0; dir < dirs; dir++) {
      int64_t ld = l * dirs + dir;
      INode *w[4] = {NULL}, *final[2] = {NULL};
      for (int k = 0; k < per; k++) w[k] = layer_param(S, mi, (int)ld * per + k, loc);
      INode *init[2] = {layer_state(S, h0, ld, loc), layer_state(S, c0, ld, loc)};
      if (!(y[dir] = rnn_sequence(S, lstm, x, init, w, hs, bf, dir == 1, final, loc))) return NULL;
      *h_n = stack_state(S, *h_n, final[0], loc);
      if (lstm) *c_n = stack_state(S, *c_n, final[1], loc);
    }
    x = dirs == 2 ? ir_concat(S->m, S->e, y[0], y[1], 2, loc, D) : y[0];
  }
  return x;
}

/* GRU(x) or GRU(x, h0) with h0 [num_layers, B, H] -> (output, h_n [num_layers, B, H]) as torch */
static bool gru_call(Sema *S, ModInst *mi, const Args *a, Value *out) {
  if (!mi->prefix) return diag_error(D, a->loc, "this GRU has no parameter name: assign it to a module member or a top-level name");
  if (a->nkw || a->npos < 1 || a->npos > 2) return diag_error(D, a->loc, "GRU takes (input) or (input, h0)");
  INode *x = to_tensor(S, &a->pos[0], a->loc), *h0 = a->npos == 2 ? to_tensor(S, &a->pos[1], a->loc) : NULL, *hn, *cn;
  if (!x || (a->npos == 2 && !h0)) return false;
  INode *y = rnn_layers(S, mi, x, h0, NULL, &hn, &cn, a->loc);
  if (!y || !hn) return false;
  Value *items = arena_alloc(S->arena, 2 * sizeof *items);
  items[0] = v_tensor(y);
  items[1] = v_tensor(hn);
  *out = (Value){.k = V_TUPLE, .items = items, .len = 2};
  return true;
}

/* GRUCell(x) or GRUCell(x, h) -> h' (x [B, I], h [B, H]) */
static bool gru_cell_call(Sema *S, ModInst *mi, const Args *a, Value *out) {
  if (!mi->prefix) return diag_error(D, a->loc, "this GRUCell has no parameter name: assign it to a module member or a top-level name");
  if (a->nkw || a->npos < 1 || a->npos > 2) return diag_error(D, a->loc, "GRUCell takes (input) or (input, h)");
  INode *x = to_tensor(S, &a->pos[0], a->loc), *h = a->npos == 2 ? to_tensor(S, &a->pos[1], a->loc) : NULL;
  int64_t is, hs;
  layer_cfg_int(S, mi, "input_size", 0, &is);
  layer_cfg_int(S, mi, "hidden_size", 0, &hs);
  if (!x || (a->npos == 2 && !h)) return false;
  Shape st = {.rank = 2, .d = {x->shape.d[0], dim_const(hs)}};
  if (x->shape.rank != 2 || !dim_is(x->shape.d[1], is) || (h && !shape_eq(&h->shape, &st)))
    return diag_error(D, a->loc, "GRUCell(%lld, %lld) expects an input [batch, %lld] and a state [batch, %lld]",
                      (long long)is, (long long)hs, (long long)is, (long long)hs);
  if (!h) h = ir_fill(S->m, S->e, 0.0, &st, a->loc);
  *out = v_tensor(gru_step(S, x, h, layer_param(S, mi, 0, a->loc), layer_param(S, mi, 1, a->loc), layer_param(S, mi, 2, a->loc),
                           layer_param(S, mi, 3, a->loc), hs, a->loc));
  return out->t != NULL;
}

/* LSTM(x) or LSTM(x, [h0, c0]) with h0, c0 [num_layers, B, H] -> (output, [h_n, c_n]) as torch */
static bool lstm_call(Sema *S, ModInst *mi, const Args *a, Value *out) {
  if (!mi->prefix)
    return diag_error(D, a->loc, "this LSTM has no parameter name: assign it to a module member or a top-level name");
  const Value *state = a->npos == 2 ? &a->pos[1] : NULL;
  if (a->nkw || a->npos < 1 || a->npos > 2 || (state && ((state->k != V_LIST && state->k != V_TUPLE) || state->len != 2)))
    return diag_error(D, a->loc, "LSTM takes (input) or (input, [h0, c0])");
  INode *x = to_tensor(S, &a->pos[0], a->loc), *h0 = NULL, *c0 = NULL, *hn, *cn;
  if (!x) return false;
  if (state && (!(h0 = to_tensor(S, &state->items[0], a->loc)) || !(c0 = to_tensor(S, &state->items[1], a->loc)))) return false;
  INode *y = rnn_layers(S, mi, x, h0, c0, &hn, &cn, a->loc);
  if (!y || !hn || !cn) return false;
  Value *st = arena_alloc(S->arena, 2 * sizeof *st), *items = arena_alloc(S->arena, 2 * sizeof *items);
  st[0] = v_tensor(hn);
  st[1] = v_tensor(cn);
  items[0] = v_tensor(y);
  items[1] = (Value){.k = V_LIST, .items = st, .len = 2};
  *out = (Value){.k = V_TUPLE, .items = items, .len = 2};
  return true;
}

/* a layer's parameter by name: lstm.weight_hh_l0, conv.weight */
bool nn_layer_member(Sema *S, ModInst *mi, const char *name, SrcLoc loc, Value *out) {
  ParamSpec ps[MAX_LAYER_PARAMS];
  int n = mi->type->params(S, mi, ps);
  for (int i = 0; i < n; i++)
    if (!strcmp(ps[i].name, name)) {
      if (!mi->prefix || !S->e) return diag_error(D, loc, "%s.%s: the parameter is only available inside fn and export bodies of a named layer", mi->type_name, name);
      *out = v_tensor(layer_param(S, mi, i, loc));
      return true;
    }
  return diag_error(D, loc, "%s has no parameter '%s'", mi->type_name, name);
}

static bool b_layer(Sema *S, const Builtin *self, const Args *a, Value *out);

static const LayerType layer_types[] = {
  {{"LSTM", b_layer, LSTM_GATES}, {"input_size", "hidden_size", "num_layers", "bias", "batch_first", "dropout", "bidirectional", "proj_size"},
   rnn_params, NULL, lstm_call},
  {{"GRU", b_layer, GRU_GATES}, {"input_size", "hidden_size", "num_layers", "bias", "batch_first", "dropout", "bidirectional"},
   rnn_params, NULL, gru_call},
  {{"GRUCell", b_layer, GRU_GATES}, {"input_size", "hidden_size", "bias"}, cell_params, NULL, gru_cell_call},
  {{"Embedding", b_layer}, {"num_embeddings", "embedding_dim", "padding_idx", "max_norm"}, embedding_params, embedding_call},
  {{"LSTMCell", b_layer, LSTM_GATES}, {"input_size", "hidden_size", "bias"}, cell_params, NULL, lstm_cell_call},
  {{"Conv2d", b_layer}, {"in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups", "bias", "padding_mode"},
   conv_params, conv_call},
  {{"ConvTranspose2d", b_layer}, {"in_channels", "out_channels", "kernel_size", "stride", "padding", "output_padding", "groups", "bias", "dilation"},
   convt_params, convt_call},
  {{"Conv1d", b_layer, DIM_1D}, {"in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups", "bias", "padding_mode"},
   conv_params, conv_call},
  {{"ConvTranspose1d", b_layer, DIM_1D}, {"in_channels", "out_channels", "kernel_size", "stride", "padding", "output_padding", "groups", "bias", "dilation"},
   convt_params, convt_call},
  {{"BatchNorm1d", b_layer, BATCH_NORM_1D}, {"num_features", "eps", "momentum", "affine", "track_running_stats"}, bn_params, bn_call},
  {{"BatchNorm2d", b_layer, BATCH_NORM_2D}, {"num_features", "eps", "momentum", "affine", "track_running_stats"}, bn_params, bn_call},
  {{"InstanceNorm2d", b_layer, INSTANCE_NORM_2D}, {"num_features", "eps", "momentum", "affine", "track_running_stats"}, bn_params, bn_call},
  {{"GroupNorm", b_layer}, {"num_groups", "num_channels", "eps", "affine"}, gn_params, gn_call},
  {{"LayerNorm", b_layer}, {"normalized_shape", "eps", "elementwise_affine"}, ln_params, ln_call},
  {{"MaxPool2d", b_layer, MAX_POOL}, {"kernel_size", "stride", "padding", "dilation", "return_indices", "ceil_mode"}, no_params, pool_call},
  {{"AvgPool2d", b_layer, AVG_POOL}, {"kernel_size", "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override"}, no_params, pool_call},
  {{"AdaptiveAvgPool2d", b_layer, AVG_POOL}, {"output_size"}, no_params, adaptive_call},
  {{"AdaptiveMaxPool2d", b_layer, MAX_POOL}, {"output_size", "return_indices"}, no_params, adaptive_call},
  {{"MaxPool1d", b_layer, MAX_POOL | DIM_1D}, {"kernel_size", "stride", "padding", "dilation", "return_indices", "ceil_mode"}, no_params, pool_call},
  {{"AvgPool1d", b_layer, AVG_POOL | DIM_1D}, {"kernel_size", "stride", "padding", "ceil_mode", "count_include_pad"}, no_params, pool_call},
  {{"AdaptiveAvgPool1d", b_layer, AVG_POOL | DIM_1D}, {"output_size"}, no_params, adaptive_call},
  {{"AdaptiveMaxPool1d", b_layer, MAX_POOL | DIM_1D}, {"output_size", "return_indices"}, no_params, adaptive_call},
  {{"Upsample", b_layer}, {"size", "scale_factor", "mode", "align_corners"}, no_params, upsample_call},
  {{"Flatten", b_layer}, {"start_dim", "end_dim"}, no_params, flatten_call},
  {{"PixelShuffle", b_layer, SHUFFLE}, {"upscale_factor"}, no_params, shuffle_call},
  {{"PixelUnshuffle", b_layer, UNSHUFFLE}, {"downscale_factor"}, no_params, shuffle_call},
  {{"Dropout", b_layer}, {"p", "inplace"}, no_params, identity_call},
  {{"Dropout2d", b_layer}, {"p", "inplace"}, no_params, identity_call},
  {{"Parameter", b_layer}, {"shape", "dtype", "requires_grad"}, parameter_params, parameter_call},
  {{"MultiheadAttention", b_layer}, {"embed_dim", "num_heads", "dropout", "bias", "add_bias_kv", "add_zero_attn", "kdim", "vdim", "batch_first"},
   mha_params, NULL, mha_call},
  {{"TransformerEncoderLayer", b_layer, ENCODER}, {"d_model", "nhead", "dim_feedforward", "dropout", "activation", "layer_norm_eps", "batch_first", "norm_first", "bias"},
   transformer_params, NULL, transformer_call},
  {{"TransformerDecoderLayer", b_layer, DECODER}, {"d_model", "nhead", "dim_feedforward", "dropout", "activation", "layer_norm_eps", "batch_first", "norm_first", "bias"},
   transformer_params, NULL, transformer_call},
};

/* Copy the evaluated arguments into the arena: the layer keeps them for its calls. */
static Args copy_args(Sema *S, const Args *a) {
  Args c = *a;
  int np = a->npos ? a->npos : 1, nk = a->nkw ? a->nkw : 1;
  c.pos = arena_alloc(S->arena, np * sizeof *c.pos);
  c.pos_loc = arena_alloc(S->arena, np * sizeof *c.pos_loc);
  c.kw = arena_alloc(S->arena, nk * sizeof *c.kw);
  c.kwnames = arena_alloc(S->arena, nk * sizeof *c.kwnames);
  if (a->npos) {
    memcpy(c.pos, a->pos, a->npos * sizeof *c.pos);
    memcpy(c.pos_loc, a->pos_loc, a->npos * sizeof *c.pos_loc);
  }
  if (a->nkw) {
    memcpy(c.kw, a->kw, a->nkw * sizeof *c.kw);
    memcpy(c.kwnames, a->kwnames, a->nkw * sizeof *c.kwnames);
  }
  return c;
}

const Builtin *nn_layer_find(const char *name) {
  for (size_t i = 0; i < sizeof layer_types / sizeof *layer_types; i++)
    if (!strcmp(layer_types[i].ctor.name, name)) return &layer_types[i].ctor;
  return NULL;
}

/* The constructor of every layer of the table: check the arguments, keep them. */
static bool b_layer(Sema *S, const Builtin *self, const Args *a, Value *out) {
  const LayerType *t = (const LayerType *)self; /* its first member */
  if (!args_check(S, a, self->name, t->args, nargs(t))) return false;
  ModInst *mi = arena_alloc(S->arena, sizeof *mi);
  mi->kind = MK_LAYER;
  mi->type = t;
  mi->type_name = self->name;
  mi->loc = a->loc;
  mi->cfg = copy_args(S, a);
  ParamSpec ps[MAX_LAYER_PARAMS];
  if (t->params(S, mi, ps) < 0) return false; /* check the arguments now, at the constructor */
  *out = (Value){.k = V_MOD, .mod = mi};
  return true;
}

bool nn_layer_bind(Sema *S, ModInst *mi) {
  ParamSpec ps[MAX_LAYER_PARAMS];
  int n = mi->type->params(S, mi, ps);
  if (n < 0) return false;
  for (int i = 0; i < n; i++) {
    size_t len = strlen(mi->prefix) + strlen(ps[i].name) + 2;
    char *full = arena_alloc(S->arena, len);
    snprintf(full, len, ps[i].name[0] ? "%s.%s" : "%s", mi->prefix, ps[i].name); /* a Parameter: the prefix */
    mi->params[i] = model_add_param(S->m, full, ps[i].dtype, ps[i].rank, ps[i].shape, mi->loc);
    if (mi->params[i] < 0) return diag_error(D, mi->loc, "parameter '%s' %s", full, model_param_error(mi->params[i]));
    S->m->params[mi->params[i]].optional = ps[i].optional;
  }
  mi->nparams = n;
  return true;
}

bool nn_layer_call_args(Sema *S, ModInst *mi, const Args *a, Value *out, bool *handled) {
  *handled = mi->type->call_args != NULL;
  return *handled ? mi->type->call_args(S, mi, a, out) : true;
}

INode *nn_layer_call(Sema *S, ModInst *mi, INode *x, SrcLoc loc) {
  ParamSpec ps[MAX_LAYER_PARAMS];
  if (!mi->prefix && mi->type->params(S, mi, ps) > 0)
    return diag_error(D, loc, "this %s has no parameter name: assign it to a module member or a top-level name",
                      mi->type_name), NULL;
  return mi->type->call(S, mi, x, loc);
}
