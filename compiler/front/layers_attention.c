/* layers_attention.c — the attention layers of the layer table (layers_nn.c):
 * MultiheadAttention, TransformerEncoderLayer and TransformerDecoderLayer with PyTorch's
 * parameter names and defaults; the computation is attention.c's. */
#include <string.h>
#include "builtins.h"
#include "layers.h"
#include "nn.h"
#include "layers_nn_internal.h"

#define D (S->d)

/* The projections' parameters of a MultiheadAttention(e, h, bias) named `prefix`, appended
 * to out at *n (torch's order: in_proj_weight, in_proj_bias, out_proj.weight, .bias). */
static void mha_specs(const char *const names[4], int64_t e, bool bias, ParamSpec *out, int *n) {
  out[(*n)++] = param_spec(names[0], 2, 3 * e, e, 0, 0);
  if (bias) out[(*n)++] = param_spec(names[1], 1, 3 * e, 0, 0, 0);
  out[(*n)++] = param_spec(names[2], 2, e, e, 0, 0);
  if (bias) out[(*n)++] = param_spec(names[3], 1, e, 0, 0, 0);
}

/* MhaWeights from the layer's parameters starting at `first` */
static MhaWeights mha_weights(Sema *S, ModInst *mi, int first, int64_t e, int64_t h, bool bias, SrcLoc loc) {
  MhaWeights w = {e, h, layer_param(S, mi, first, loc)};
  w.in_b = bias ? layer_param(S, mi, first + 1, loc) : NULL;
  w.out_w = layer_param(S, mi, first + (bias ? 2 : 1), loc);
  w.out_b = bias ? layer_param(S, mi, first + 3, loc) : NULL;
  return w;
}

static bool heads_config(Sema *S, ModInst *mi, const char *dim_arg, const char *heads_arg, int64_t *e, int64_t *h) {
  if (!layer_cfg_int(S, mi, dim_arg, 0, e) || !layer_cfg_int(S, mi, heads_arg, 0, h) || !layer_positive(S, mi, *e, dim_arg) ||
      !layer_positive(S, mi, *h, heads_arg))
    return false;
  if (*e % *h) return diag_error(D, mi->loc, "%s: %s %lld is not divisible by %s %lld", mi->type_name, dim_arg, (long long)*e, heads_arg, (long long)*h);
  return true;
}

int mha_params(Sema *S, ModInst *mi, ParamSpec *out) {
  int64_t e, h, kd, vd;
  if (!heads_config(S, mi, "embed_dim", "num_heads", &e, &h) || !layer_cfg_int(S, mi, "kdim", e, &kd) || !layer_cfg_int(S, mi, "vdim", e, &vd))
    return -1;
  if (kd != e || vd != e) return diag_error(D, mi->loc, "MultiheadAttention: kdim and vdim other than embed_dim are not available"), -1;
  if (layer_cfg_bool(mi, "add_bias_kv", false) || layer_cfg_bool(mi, "add_zero_attn", false))
    return diag_error(D, mi->loc, "MultiheadAttention: add_bias_kv and add_zero_attn are not available"), -1;
  static const char *const names[4] = {"in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias"};
  int n = 0;
  mha_specs(names, e, layer_cfg_bool(mi, "bias", true), out, &n);
  return n;
}

/* An optional tensor argument (absent or None: NULL); false after a diagnostic. */
static bool opt_tensor(Sema *S, const Args *a, int i, const char *name, INode **out) {
  const Value *v = arg_get(a, i, name);
  *out = NULL;
  return !v || v->k == V_NONE || (*out = to_tensor(S, v, a->loc)) != NULL;
}

/* attn(query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
 *      average_attn_weights=True, is_causal=False) -> (output, weights or None) */
bool mha_call(Sema *S, ModInst *mi, const Args *a, Value *out) {
  static const char *names[] = {"query", "key", "value", "key_padding_mask", "need_weights", "attn_mask",
                                "average_attn_weights", "is_causal"};
  if (!mi->prefix) return diag_error(D, a->loc, "this MultiheadAttention has no parameter name: assign it to a module member or a top-level name");
  if (!args_check(S, a, mi->type_name, names, 8)) return false;
  INode *x[3];
  MhaOptions o = {.batch_first = layer_cfg_bool(mi, "batch_first", false)};
  for (int i = 0; i < 3; i++)
    if (!opt_tensor(S, a, i, names[i], &x[i]) || !x[i]) return x[i] || diag_error(D, a->loc, "MultiheadAttention needs query, key and value");
  if (!opt_tensor(S, a, 3, names[3], &o.key_padding_mask) || !opt_tensor(S, a, 5, names[5], &o.attn_mask)) return false;
  const Value *nw = arg_get(a, 4, names[4]), *avg = arg_get(a, 6, names[6]), *causal = arg_get(a, 7, names[7]);
  bool need = !nw || (v_is_number(nw) && v_num(nw) != 0), average = !avg || (v_is_number(avg) && v_num(avg) != 0);
  o.is_causal = causal && v_is_number(causal) && v_num(causal) != 0;
  int64_t e, h;
  layer_cfg_int(S, mi, "embed_dim", 0, &e);
  layer_cfg_int(S, mi, "num_heads", 0, &h);
  MhaWeights w = mha_weights(S, mi, 0, e, h, layer_cfg_bool(mi, "bias", true), a->loc);
  INode *weights = NULL, *y = nn_multihead_attention(S, &w, x[0], x[1], x[2], &o, need ? &weights : NULL, a->loc);
  if (!y) return false;
  if (weights && average) /* the heads' mean, [N, L, S] */
    weights = ir_binary(S->m, S->e, OP_DIV, ir_reduce(S->m, S->e, OP_SUM, weights, 1u << 1, 0, a->loc, D),
                        ir_fill(S->m, S->e, (double)h, &(Shape){0}, a->loc), a->loc, D);
  Value *items = arena_alloc(S->arena, 2 * sizeof *items);
  items[0] = v_tensor(y);
  items[1] = weights ? v_tensor(weights) : (Value){.k = V_NONE};
  *out = (Value){.k = V_TUPLE, .items = items, .len = 2};
  return !need || weights;
}

/* TransformerEncoderLayer / TransformerDecoderLayer (variant DECODER): self_attn, then
 * multihead_attn (decoder), linear1, linear2 (4 or 2 parameters each with or without bias),
 * norm1, norm2, norm3 (decoder) (2 or 1 each) — torch's state_dict order */

int transformer_params(Sema *S, ModInst *mi, ParamSpec *out) {
  int64_t d, h, ff;
  if (!heads_config(S, mi, "d_model", "nhead", &d, &h) || !layer_cfg_int(S, mi, "dim_feedforward", 2048, &ff) ||
      !layer_positive(S, mi, ff, "dim_feedforward"))
    return -1;
  const Value *act = layer_cfg(mi, "activation");
  if (act && (act->k != V_STR || (strcmp(act->s, "relu") && strcmp(act->s, "gelu"))))
    return diag_error(D, mi->loc, "%s: activation must be \"relu\" or \"gelu\"", mi->type_name), -1;
  static const char *const self_names[4] = {"self_attn.in_proj_weight", "self_attn.in_proj_bias",
                                            "self_attn.out_proj.weight", "self_attn.out_proj.bias"};
  static const char *const cross_names[4] = {"multihead_attn.in_proj_weight", "multihead_attn.in_proj_bias",
                                             "multihead_attn.out_proj.weight", "multihead_attn.out_proj.bias"};
  static const char *const norm_names[3][2] = {{"norm1.weight", "norm1.bias"}, {"norm2.weight", "norm2.bias"},
                                               {"norm3.weight", "norm3.bias"}};
  bool bias = layer_cfg_bool(mi, "bias", true), decoder = mi->type->ctor.variant == DECODER;
  int n = 0;
  mha_specs(self_names, d, bias, out, &n);
  if (decoder) mha_specs(cross_names, d, bias, out, &n);
  out[n++] = param_spec("linear1.weight", 2, ff, d, 0, 0);
  if (bias) out[n++] = param_spec("linear1.bias", 1, ff, 0, 0, 0);
  out[n++] = param_spec("linear2.weight", 2, d, ff, 0, 0);
  if (bias) out[n++] = param_spec("linear2.bias", 1, d, 0, 0, 0);
  for (int k = 0; k < (decoder ? 3 : 2); k++) {
    out[n++] = param_spec(norm_names[k][0], 1, d, 0, 0, 0);
    if (bias) out[n++] = param_spec(norm_names[k][1], 1, d, 0, 0, 0);
  }
  return n;
}

/* x W^T + b over the last axis (a Linear's parameters i, i + 1 with bias) */
static INode *encoder_linear(Sema *S, ModInst *mi, INode *x, int i, bool bias, SrcLoc loc) {
  const Shape *s = &x->shape;
  INode *w = layer_param(S, mi, i, loc);
  Dim rows = shape_numel(S->m, s);
  rows.k /= s->d[s->rank - 1].k;
  Shape r2 = {.rank = 2, .d = {rows, s->d[s->rank - 1]}}, back = *s;
  back.d[back.rank - 1] = w->shape.d[0];
  INode *y = ir_matmul(S->m, S->e, ir_reshape(S->m, S->e, x, &r2, loc, D), w, 0, 1, loc, D);
  if (y && bias) y = ir_binary(S->m, S->e, OP_ADD, y, layer_param(S, mi, i + 1, loc), loc, D);
  return ir_reshape(S->m, S->e, y, &back, loc, D);
}

static bool flag_arg(const Args *a, int i, const char *name) {
  const Value *v = arg_get(a, i, name);
  return v && v_is_number(v) && v_num(v) != 0;
}

/* encoder(src, src_mask=None, src_key_padding_mask=None, is_causal=False);
 * decoder(tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
 *         memory_key_padding_mask=None, tgt_is_causal=False, memory_is_causal=False):
 * blocks self-attention, (cross-attention on memory), feed-forward, each x + block(norm(x))
 * (norm_first) or norm(x + block(x)), as torch (eval) */
bool transformer_call(Sema *S, ModInst *mi, const Args *a, Value *out) {
  static const char *enc_names[] = {"src", "src_mask", "src_key_padding_mask", "is_causal"};
  static const char *dec_names[] = {"tgt", "memory", "tgt_mask", "memory_mask", "tgt_key_padding_mask",
                                    "memory_key_padding_mask", "tgt_is_causal", "memory_is_causal"};
  bool decoder = mi->type->ctor.variant == DECODER;
  const char **names = decoder ? dec_names : enc_names;
  if (!mi->prefix) return diag_error(D, a->loc, "this %s has no parameter name: assign it to a module member or a top-level name", mi->type_name);
  INode *x, *mem = NULL;
  bool bf = layer_cfg_bool(mi, "batch_first", false);
  MhaOptions self = {.batch_first = bf}, cross = {.batch_first = bf};
  int m = decoder ? 1 : 0; /* the memory's argument shifts the self-attention's masks */
  if (!args_check(S, a, mi->type_name, names, decoder ? 8 : 4) || !opt_tensor(S, a, 0, names[0], &x) ||
      (decoder && !opt_tensor(S, a, 1, names[1], &mem)) || !opt_tensor(S, a, 1 + m, names[1 + m], &self.attn_mask) ||
      !opt_tensor(S, a, decoder ? 4 : 2, names[decoder ? 4 : 2], &self.key_padding_mask))
    return false;
  if (decoder && (!opt_tensor(S, a, 3, names[3], &cross.attn_mask) || !opt_tensor(S, a, 5, names[5], &cross.key_padding_mask)))
    return false;
  if (!x || (decoder && !mem)) return diag_error(D, a->loc, "%s needs %s", mi->type_name, decoder ? "tgt and memory" : "src");
  self.is_causal = flag_arg(a, decoder ? 6 : 3, names[decoder ? 6 : 3]);
  cross.is_causal = decoder && flag_arg(a, 7, names[7]);
  int64_t d, h;
  layer_cfg_int(S, mi, "d_model", 0, &d);
  layer_cfg_int(S, mi, "nhead", 0, &h);
  bool bias = layer_cfg_bool(mi, "bias", true), norm_first = layer_cfg_bool(mi, "norm_first", false);
  const Value *act = layer_cfg(mi, "activation");
  Op activation = act && !strcmp(act->s, "gelu") ? OP_GELU : OP_RELU;
  double eps = layer_cfg_num(mi, "layer_norm_eps", 1e-5);
  int per = bias ? 2 : 1, per_mha = bias ? 4 : 2, l1 = (decoder ? 2 : 1) * per_mha, l2 = l1 + per, norms = l2 + per;
  MhaWeights ws = mha_weights(S, mi, 0, d, h, bias, a->loc), wc = mha_weights(S, mi, per_mha, d, h, bias, a->loc);
  int nblocks = decoder ? 3 : 2;
  for (int b = 0; b < nblocks && x; b++) {
    int ni = norms + b * per;
    INode *nw = layer_param(S, mi, ni, a->loc), *nb = bias ? layer_param(S, mi, ni + 1, a->loc) : NULL;
    INode *v = norm_first ? nn_layer_norm(S, x, 1, nw, nb, eps, a->loc) : x, *y;
    if (b == 0) y = nn_multihead_attention(S, &ws, v, v, v, &self, NULL, a->loc);
    else if (b == 1 && decoder) y = nn_multihead_attention(S, &wc, v, mem, mem, &cross, NULL, a->loc);
    else
      y = encoder_linear(S, mi, elementwise_node(S, activation, (INode *[]){encoder_linear(S, mi, v, l1, bias, a->loc)}, NULL, a->loc),
                         l2, bias, a->loc);
    x = ir_binary(S->m, S->e, OP_ADD, x, y, a->loc, D);
    if (!norm_first) x = nn_layer_norm(S, x, 1, nw, nb, eps, a->loc);
  }
  *out = v_tensor(x);
  return x != NULL;
}
