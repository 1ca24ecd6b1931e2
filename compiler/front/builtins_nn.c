/* builtins_nn.c — the torch.nn.functional-style built-in functions for convolution, pooling,
 * normalization and resampling: argument parsing (torch's names, order and defaults) on top
 * of nn.c.  Registered in the table of builtins.c. */
#include <string.h>
#include "builtins.h"
#include "layers.h"
#include "nn.h"

/* variants of the handlers that serve two names */
enum { POOL_MAX, POOL_AVG };
enum { NORM_GROUP, NORM_INSTANCE };
enum { SHUFFLE, UNSHUFFLE };

#define D (S->d)

static INode *tensor_opt(Sema *S, const Args *a, int i, const char *name, bool required) {
  const Value *v = arg_get(a, i, name);
  if (!v || v->k == V_NONE) {
    if (required) diag_error(D, a->loc, "missing argument '%s'", name);
    return NULL;
  }
  return to_tensor(S, v, a->loc);
}

static bool int_opt(Sema *S, const Args *a, int i, const char *name, int64_t def, int64_t *out) {
  const Value *v = arg_get(a, i, name);
  *out = def;
  return !v || v->k == V_NONE || to_int(S, v, a->loc, out);
}

static bool num_opt(Sema *S, const Args *a, int i, const char *name, double def, double *out) {
  const Value *v = arg_get(a, i, name);
  *out = def;
  if (!v || v->k == V_NONE) return true;
  if (!v_is_number(v)) return diag_error(D, a->loc, "argument '%s' must be a number", name);
  *out = v_num(v);
  return true;
}

static bool bool_opt(const Args *a, int i, const char *name, bool def) {
  const Value *v = arg_get(a, i, name);
  return v && v_is_number(v) ? v_num(v) != 0 : def;
}

static bool pair_opt(Sema *S, const Args *a, int i, const char *name, int64_t def, int64_t out[2]) {
  const Value *v = arg_get(a, i, name);
  out[0] = out[1] = def;
  return !v || v->k == V_NONE || pair_arg(S, v, a->loc, name, out);
}

static bool entry_only(Sema *S, const Args *a, const char *name) {
  return S->e ? true : diag_error(D, a->loc, "%s() can only be used inside fn and export bodies", name);
}

/* padding: an int, [ph, pw], or "same" / "valid" (stride 1 only, as torch) */
bool conv_padding_arg(Sema *S, const Value *v, SrcLoc loc, const int64_t kernel[2], const ConvSpec *c, int64_t pad[4]) {
  memset(pad, 0, 4 * sizeof *pad);
  if (!v || v->k == V_NONE) return true;
  if (v->k == V_STR) {
    if (!strcmp(v->s, "valid")) return true;
    if (strcmp(v->s, "same")) return diag_error(D, loc, "padding must be a number, a pair, \"same\" or \"valid\"");
    if (c->stride[0] != 1 || c->stride[1] != 1) return diag_error(D, loc, "padding=\"same\" needs stride 1");
    for (int a = 0; a < 2; a++) {
      int64_t total = c->dilation[a] * (kernel[a] - 1);
      pad[a] = total / 2;
      pad[a + 2] = total - pad[a];
    }
    return true;
  }
  int64_t p[2];
  if (!pair_arg(S, v, loc, "padding", p)) return false;
  if (p[0] < 0 || p[1] < 0) return diag_error(D, loc, "padding must be non-negative");
  pad[0] = pad[2] = p[0];
  pad[1] = pad[3] = p[1];
  return true;
}

/* conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1) */
static bool b_conv2d(Sema *S, const Builtin *self, const Args *a, Value *out) {
  const char *name = self->name;
  static const char *names[] = {"input", "weight", "bias", "stride", "padding", "dilation", "groups"};
  if (!entry_only(S, a, name) || !args_check(S, a, name, names, 7)) return false;
  INode *x = tensor_opt(S, a, 0, "input", true), *w = x ? tensor_opt(S, a, 1, "weight", true) : NULL;
  if (!w || D->has_error) return false;
  INode *b = tensor_opt(S, a, 2, "bias", false);
  ConvSpec c = {0};
  if (!pair_opt(S, a, 3, "stride", 1, c.stride) || !pair_opt(S, a, 5, "dilation", 1, c.dilation) ||
      !int_opt(S, a, 6, "groups", 1, &c.groups) || D->has_error)
    return false;
  int64_t k[2] = {w->shape.rank == 4 ? w->shape.d[2].k : 1, w->shape.rank == 4 ? w->shape.d[3].k : 1};
  if (!conv_padding_arg(S, arg_get(a, 4, "padding"), a->loc, k, &c, c.pad)) return false;
  *out = v_tensor(nn_conv2d(S, x, w, b, &c, a->loc));
  return out->t != NULL;
}

/* conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
 * dilation=1) */
static bool b_conv_transpose2d(Sema *S, const Builtin *self, const Args *a, Value *out) {
  const char *name = self->name;
  static const char *names[] = {"input", "weight", "bias", "stride", "padding", "output_padding", "groups", "dilation"};
  if (!entry_only(S, a, name) || !args_check(S, a, name, names, 8)) return false;
  INode *x = tensor_opt(S, a, 0, "input", true), *w = x ? tensor_opt(S, a, 1, "weight", true) : NULL;
  if (!w || D->has_error) return false;
  INode *b = tensor_opt(S, a, 2, "bias", false);
  ConvSpec c = {0};
  int64_t p[2];
  if (!pair_opt(S, a, 3, "stride", 1, c.stride) || !pair_opt(S, a, 4, "padding", 0, p) ||
      !pair_opt(S, a, 5, "output_padding", 0, c.output_padding) || !int_opt(S, a, 6, "groups", 1, &c.groups) ||
      !pair_opt(S, a, 7, "dilation", 1, c.dilation) || D->has_error)
    return false;
  c.pad[0] = c.pad[2] = p[0];
  c.pad[1] = c.pad[3] = p[1];
  *out = v_tensor(nn_conv_transpose2d(S, x, w, b, &c, a->loc));
  return out->t != NULL;
}

/* max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False);
 * avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
 *            count_include_pad=True, divisor_override=None) */
bool pool_spec_args(Sema *S, const Args *a, int first, bool is_max, PoolSpec *p) {
  const Value *k = arg_get(a, first, "kernel_size");
  if (!k) return diag_error(D, a->loc, "missing argument 'kernel_size'");
  if (!pair_arg(S, k, a->loc, "kernel_size", p->kernel)) return false;
  const Value *st = arg_get(a, first + 1, "stride");
  if (st && st->k != V_NONE && !(st->k == V_LIST && st->len == 0)) {
    if (!pair_arg(S, st, a->loc, "stride", p->stride)) return false;
  } else {
    p->stride[0] = p->kernel[0];
    p->stride[1] = p->kernel[1];
  }
  if (!pair_opt(S, a, first + 2, "padding", 0, p->pad)) return false;
  if (is_max) {
    if (!pair_opt(S, a, first + 3, "dilation", 1, p->dilation)) return false;
    p->ceil_mode = bool_opt(a, first + 4, "ceil_mode", false);
  } else {
    p->dilation[0] = p->dilation[1] = 1;
    p->ceil_mode = bool_opt(a, first + 3, "ceil_mode", false);
    p->count_include_pad = bool_opt(a, first + 4, "count_include_pad", true);
    if (!int_opt(S, a, first + 5, "divisor_override", 0, &p->divisor_override)) return false;
  }
  return true;
}

static bool b_pool(Sema *S, const Builtin *self, const Args *a, Value *out) {
  const char *name = self->name;
  bool is_max = self->variant == POOL_MAX;
  static const char *max_names[] = {"input", "kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices"};
  static const char *avg_names[] = {"input", "kernel_size", "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override"};
  if (!entry_only(S, a, name) || !args_check(S, a, name, is_max ? max_names : avg_names, 7)) return false;
  if (is_max && bool_opt(a, 6, "return_indices", false))
    return diag_error(D, a->loc, "max_pool2d: return_indices is not available; use argmax on the windows");
  INode *x = tensor_opt(S, a, 0, "input", true);
  PoolSpec p = {0};
  if (!x || !pool_spec_args(S, a, 1, is_max, &p)) return false;
  *out = v_tensor(is_max ? nn_max_pool2d(S, x, &p, a->loc) : nn_avg_pool2d(S, x, &p, a->loc));
  return out->t != NULL;
}

/* adaptive_avg_pool2d(input, output_size), adaptive_max_pool2d(input, output_size, return_indices=false) */
static bool b_adaptive_pool2d(Sema *S, const Builtin *self, const Args *a, Value *out) {
  const char *name = self->name;
  bool is_max = self->variant == POOL_MAX;
  static const char *names[] = {"input", "output_size", "return_indices"};
  if (!entry_only(S, a, name) || !args_check(S, a, name, names, is_max ? 3 : 2)) return false;
  if (is_max && bool_opt(a, 2, "return_indices", false))
    return diag_error(D, a->loc, "adaptive_max_pool2d: return_indices is not available");
  INode *x = tensor_opt(S, a, 0, "input", true);
  int64_t o[2];
  const Value *v = arg_get(a, 1, "output_size");
  if (!x) return false;
  if (!v) return diag_error(D, a->loc, "missing argument 'output_size'");
  if (!pair_arg(S, v, a->loc, "output_size", o)) return false;
  *out = v_tensor(is_max ? nn_adaptive_max_pool2d(S, x, o[0], o[1], a->loc) : nn_adaptive_avg_pool2d(S, x, o[0], o[1], a->loc));
  return out->t != NULL;
}

/* batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False,
 * momentum=0.1, eps=1e-5) */
static bool b_batch_norm(Sema *S, const Builtin *self, const Args *a, Value *out) {
  const char *name = self->name;
  static const char *names[] = {"input", "running_mean", "running_var", "weight", "bias", "training", "momentum", "eps"};
  if (!entry_only(S, a, name) || !args_check(S, a, name, names, 8)) return false;
  if (bool_opt(a, 5, "training", false)) return diag_error(D, a->loc, "batch_norm: nnc compiles inference (training=false)");
  INode *x = tensor_opt(S, a, 0, "input", true), *m = x ? tensor_opt(S, a, 1, "running_mean", true) : NULL,
        *v = m ? tensor_opt(S, a, 2, "running_var", true) : NULL;
  if (!v || D->has_error) return false;
  INode *w = tensor_opt(S, a, 3, "weight", false), *b = tensor_opt(S, a, 4, "bias", false);
  double eps;
  if (D->has_error || !num_opt(S, a, 7, "eps", 1e-5, &eps)) return false;
  *out = v_tensor(nn_batch_norm(S, x, m, v, w, b, eps, a->loc));
  return out->t != NULL;
}

/* group_norm(input, num_groups, weight=None, bias=None, eps=1e-5);
 * instance_norm(input, running_mean=None, running_var=None, weight=None, bias=None,
 *               use_input_stats=True, momentum=0.1, eps=1e-5) */
static bool b_group_norm(Sema *S, const Builtin *self, const Args *a, Value *out) {
  const char *name = self->name;
  bool inst = self->variant == NORM_INSTANCE;
  static const char *gn[] = {"input", "num_groups", "weight", "bias", "eps"};
  static const char *in[] = {"input", "running_mean", "running_var", "weight", "bias", "use_input_stats", "momentum", "eps"};
  if (!entry_only(S, a, name) || !args_check(S, a, name, inst ? in : gn, inst ? 8 : 5)) return false;
  INode *x = tensor_opt(S, a, 0, "input", true);
  if (!x) return false;
  int64_t g;
  double eps;
  if (inst) {
    INode *m = tensor_opt(S, a, 1, "running_mean", false), *v = tensor_opt(S, a, 2, "running_var", false);
    INode *w = tensor_opt(S, a, 3, "weight", false), *b = tensor_opt(S, a, 4, "bias", false);
    if (D->has_error || !num_opt(S, a, 7, "eps", 1e-5, &eps)) return false;
    if (!bool_opt(a, 5, "use_input_stats", true)) {
      if (!m || !v) return diag_error(D, a->loc, "instance_norm: use_input_stats=false needs running statistics");
      *out = v_tensor(nn_batch_norm(S, x, m, v, w, b, eps, a->loc));
    } else {
      *out = v_tensor(nn_group_norm(S, x, x->shape.rank > 1 ? x->shape.d[1].k : 0, w, b, eps, a->loc));
    }
    return out->t != NULL;
  }
  if (!int_opt(S, a, 1, "num_groups", 0, &g)) return false;
  INode *w = tensor_opt(S, a, 2, "weight", false), *b = tensor_opt(S, a, 3, "bias", false);
  if (D->has_error || !num_opt(S, a, 4, "eps", 1e-5, &eps)) return false;
  *out = v_tensor(nn_group_norm(S, x, g, w, b, eps, a->loc));
  return out->t != NULL;
}

/* layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5) */
static bool b_layer_norm(Sema *S, const Builtin *self, const Args *a, Value *out) {
  const char *name = self->name;
  static const char *names[] = {"input", "normalized_shape", "weight", "bias", "eps"};
  if (!entry_only(S, a, name) || !args_check(S, a, name, names, 5)) return false;
  INode *x = tensor_opt(S, a, 0, "input", true);
  const Value *ns = arg_get(a, 1, "normalized_shape");
  if (!x) return false;
  if (!ns) return diag_error(D, a->loc, "missing argument 'normalized_shape'");
  int n = ns->k == V_LIST || ns->k == V_TUPLE ? ns->len : 1;
  for (int i = 0; i < n; i++) {
    int64_t d;
    const Value *v = ns->k == V_LIST || ns->k == V_TUPLE ? &ns->items[i] : ns;
    if (!to_int(S, v, a->loc, &d)) return false;
    int ax = x->shape.rank - n + i;
    if (ax < 0 || !dim_is(x->shape.d[ax], d))
      return diag_error(D, a->loc, "layer_norm: normalized_shape does not match the input's trailing dims");
  }
  INode *w = tensor_opt(S, a, 2, "weight", false), *b = tensor_opt(S, a, 3, "bias", false);
  double eps;
  if (D->has_error || !num_opt(S, a, 4, "eps", 1e-5, &eps)) return false;
  *out = v_tensor(nn_layer_norm(S, x, n, w, b, eps, a->loc));
  return out->t != NULL;
}

/* interpolate(input, size=None, scale_factor=None, mode="nearest", align_corners=None) */
/* size: one size or two, each an integer or a symbolic size (`y.shape[2]`: a decoder's
 * upsampling to its skip connection's size) */
static bool size_pair(Sema *S, const Value *v, SrcLoc loc, Dim out[2]) {
  bool list = v->k == V_LIST || v->k == V_TUPLE;
  if (list && v->len != 2) return diag_error(D, loc, "size takes one size or a list of two");
  for (int i = 0; i < 2; i++)
    if (!to_dim(S, list ? &v->items[i] : v, loc, &out[i])) return false;
  return true;
}

bool interpolate_args(Sema *S, const Args *a, int first, Dim size[2], double scale[2], const char **mode,
                      bool *align) {
  const Value *sz = arg_get(a, first, "size"), *sf = arg_get(a, first + 1, "scale_factor");
  const Value *md = arg_get(a, first + 2, "mode");
  size[0] = size[1] = dim_const(0);
  scale[0] = scale[1] = 0;
  if ((!sz || sz->k == V_NONE) == (!sf || sf->k == V_NONE))
    return diag_error(D, a->loc, "interpolate needs exactly one of size and scale_factor");
  if (sz && sz->k != V_NONE && !size_pair(S, sz, a->loc, size)) return false;
  if (sf && sf->k != V_NONE) {
    const Value *items = sf->k == V_LIST ? sf->items : sf;
    int n = sf->k == V_LIST ? sf->len : 1;
    if (n != 1 && n != 2) return diag_error(D, a->loc, "scale_factor takes one number or two");
    for (int i = 0; i < 2; i++) {
      const Value *v = &items[n == 2 ? i : 0];
      if (!v_is_number(v) || v_num(v) <= 0) return diag_error(D, a->loc, "scale_factor must be positive numbers");
      scale[i] = v_num(v);
    }
  }
  if (md && md->k != V_STR) return diag_error(D, a->loc, "mode must be a string");
  *mode = md ? md->s : "nearest";
  *align = bool_opt(a, first + 3, "align_corners", false);
  return true;
}

static bool b_interpolate(Sema *S, const Builtin *self, const Args *a, Value *out) {
  const char *name = self->name;
  static const char *names[] = {"input", "size", "scale_factor", "mode", "align_corners"};
  if (!entry_only(S, a, name) || !args_check(S, a, name, names, 5)) return false;
  INode *x = tensor_opt(S, a, 0, "input", true);
  Dim size[2];
  double scale[2];
  const char *mode;
  bool align;
  if (!x || !interpolate_args(S, a, 1, size, scale, &mode, &align)) return false;
  *out = v_tensor(nn_interpolate(S, x, size[0], size[1], scale[0], scale[1], mode, align, a->loc));
  return out->t != NULL;
}

/* pad(input, pad, mode="constant", value=0) */
static bool b_pad(Sema *S, const Builtin *self, const Args *a, Value *out) {
  const char *name = self->name;
  static const char *names[] = {"input", "pad", "mode", "value"};
  if (!entry_only(S, a, name) || !args_check(S, a, name, names, 4)) return false;
  INode *x = tensor_opt(S, a, 0, "input", true);
  const Value *p = arg_get(a, 1, "pad"), *md = arg_get(a, 2, "mode");
  if (!x) return false;
  if (!p || p->k != V_LIST) return diag_error(D, a->loc, "pad needs a list of paddings");
  if (md && md->k != V_STR) return diag_error(D, a->loc, "pad: mode must be a string");
  int64_t pads[4];
  if (p->len != 2 && p->len != 4) return diag_error(D, a->loc, "pad takes [left, right] or [left, right, top, bottom]");
  for (int i = 0; i < p->len; i++)
    if (!to_int(S, &p->items[i], a->loc, &pads[i])) return false;
  double v;
  if (!num_opt(S, a, 3, "value", 0.0, &v)) return false;
  if (md && strcmp(md->s, "constant")) *out = v_tensor(nn_pad_mode(S, x, pads, p->len, md->s, a->loc));
  else *out = v_tensor(nn_pad(S, x, pads, p->len, v, a->loc));
  return out->t != NULL;
}

static bool b_pixel_shuffle(Sema *S, const Builtin *self, const Args *a, Value *out) {
  const char *name = self->name;
  bool inv = self->variant == UNSHUFFLE;
  static const char *up[] = {"input", "upscale_factor"}, *down[] = {"input", "downscale_factor"};
  if (!entry_only(S, a, name) || !args_check(S, a, name, inv ? down : up, 2)) return false;
  INode *x = tensor_opt(S, a, 0, "input", true);
  int64_t r;
  if (!x || !int_opt(S, a, 1, inv ? "downscale_factor" : "upscale_factor", 0, &r)) return false;
  *out = v_tensor(nn_pixel_shuffle(S, x, r, inv, a->loc));
  return out->t != NULL;
}

/* roi_align(input, boxes, output_size, spatial_scale=1.0, sampling_ratio=-1, aligned=False) */
static bool b_roi_align(Sema *S, const Builtin *self, const Args *a, Value *out) {
  const char *name = self->name;
  static const char *names[] = {"input", "boxes", "output_size", "spatial_scale", "sampling_ratio", "aligned"};
  if (!entry_only(S, a, name) || !args_check(S, a, name, names, 6)) return false;
  INode *x = tensor_opt(S, a, 0, "input", true), *b = x ? tensor_opt(S, a, 1, "boxes", true) : NULL;
  const Value *os = arg_get(a, 2, "output_size");
  int64_t o[2], sr;
  double sc;
  if (!b) return false;
  if (!os) return diag_error(D, a->loc, "missing argument 'output_size'");
  if (!pair_arg(S, os, a->loc, "output_size", o) || !num_opt(S, a, 3, "spatial_scale", 1.0, &sc) ||
      !int_opt(S, a, 4, "sampling_ratio", -1, &sr))
    return false;
  INode *n = ir_roi_align(S->m, S->e, x, b, o[0], o[1], sc, sr, bool_opt(a, 5, "aligned", false), a->loc, D);
  if (n) n->i[2] = model_check_site(S->m, a->loc, "roi_align: boxes[:, 0] (the batch index)");
  *out = v_tensor(n);
  return out->t != NULL;
}

/* scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False,
 * scale=None) as F.scaled_dot_product_attention at inference (attention.c: masks) */
static bool b_sdpa(Sema *S, const Builtin *self, const Args *a, Value *out) {
  const char *name = self->name;
  static const char *names[] = {"query", "key", "value", "attn_mask", "dropout_p", "is_causal", "scale"};
  if (!entry_only(S, a, name) || !args_check(S, a, name, names, 7)) return false;
  INode *q = tensor_opt(S, a, 0, "query", true), *k = q ? tensor_opt(S, a, 1, "key", true) : NULL;
  INode *v = k ? tensor_opt(S, a, 2, "value", true) : NULL, *mask = NULL;
  const Value *mv = arg_get(a, 3, "attn_mask");
  double scale;
  if (!v || (mv && mv->k != V_NONE && !(mask = tensor_opt(S, a, 3, "attn_mask", true))) ||
      !num_opt(S, a, 6, "scale", 0.0, &scale))
    return false;
  *out = v_tensor(nn_attention(S, q, k, v, mask, bool_opt(a, 5, "is_causal", false), scale, NULL, a->loc));
  return out->t != NULL;
}

/* lstm(input, h0, c0, weight_ih, weight_hh, bias_ih=None, bias_hh=None, batch_first=False)
 * -> (output, h_n, c_n): one layer of torch.nn.LSTM with the given weights; h0, c0, h_n, c_n
 * are [1, B, H] as torch's. */
static bool b_lstm(Sema *S, const Builtin *self, const Args *a, Value *out) {
  const char *name = self->name;
  static const char *names[] = {"input", "h0", "c0", "weight_ih", "weight_hh", "bias_ih", "bias_hh", "batch_first"};
  if (!entry_only(S, a, name) || !args_check(S, a, name, names, 8)) return false;
  INode *x = tensor_opt(S, a, 0, "input", true), *h0 = tensor_opt(S, a, 1, "h0", false), *c0 = tensor_opt(S, a, 2, "c0", false);
  INode *wih = tensor_opt(S, a, 3, "weight_ih", true), *whh = wih ? tensor_opt(S, a, 4, "weight_hh", true) : NULL;
  if (!x || !wih || !whh || D->has_error) return false;
  INode *bih = tensor_opt(S, a, 5, "bias_ih", false), *bhh = tensor_opt(S, a, 6, "bias_hh", false);
  if (D->has_error) return false;
  if (whh->shape.rank != 2 || whh->shape.d[1].syms) return diag_error(D, a->loc, "lstm: weight_hh must be [4H, H]");
  int64_t hs = whh->shape.d[1].k;
  INode *st[2] = {h0, c0};
  for (int i = 0; i < 2; i++)
    if (st[i]) {
      if (st[i]->shape.rank != 3) return diag_error(D, a->loc, "lstm: h0 and c0 are [1, batch, hidden_size]");
      Shape s2 = {.rank = 2, .d = {st[i]->shape.d[1], st[i]->shape.d[2]}};
      st[i] = ir_reshape(S->m, S->e, st[i], &s2, a->loc, D);
    }
  INode *hn, *cn, *y = lstm_sequence(S, x, st[0], st[1], wih, whh, bih, bhh, hs, bool_opt(a, 7, "batch_first", false),
                                     &hn, &cn, a->loc);
  if (!y) return false;
  Shape s3 = {.rank = 3, .d = {dim_const(1), hn->shape.d[0], hn->shape.d[1]}};
  Value *items = arena_alloc(S->arena, 3 * sizeof *items);
  items[0] = v_tensor(y);
  items[1] = v_tensor(ir_reshape(S->m, S->e, hn, &s3, a->loc, D));
  items[2] = v_tensor(ir_reshape(S->m, S->e, cn, &s3, a->loc, D));
  *out = (Value){.k = V_TUPLE, .items = items, .len = 3};
  return items[1].t && items[2].t;
}

/* lstm_cell(input, h, c, weight_ih, weight_hh, bias_ih=None, bias_hh=None) -> (h', c') */
static bool b_lstm_cell(Sema *S, const Builtin *self, const Args *a, Value *out) {
  const char *name = self->name;
  static const char *names[] = {"input", "h", "c", "weight_ih", "weight_hh", "bias_ih", "bias_hh"};
  if (!entry_only(S, a, name) || !args_check(S, a, name, names, 7)) return false;
  INode *x = tensor_opt(S, a, 0, "input", true), *h = x ? tensor_opt(S, a, 1, "h", true) : NULL;
  INode *c = h ? tensor_opt(S, a, 2, "c", true) : NULL, *wih = c ? tensor_opt(S, a, 3, "weight_ih", true) : NULL;
  INode *whh = wih ? tensor_opt(S, a, 4, "weight_hh", true) : NULL;
  if (!whh || D->has_error) return false;
  INode *bih = tensor_opt(S, a, 5, "bias_ih", false), *bhh = tensor_opt(S, a, 6, "bias_hh", false);
  if (D->has_error || whh->shape.rank != 2) return diag_error(D, a->loc, "lstm_cell: weight_hh must be [4H, H]");
  INode *c2, *h2 = lstm_step(S, x, h, c, wih, whh, bih, bhh, whh->shape.d[1].k, &c2, a->loc);
  if (!h2) return false;
  Value *items = arena_alloc(S->arena, 2 * sizeof *items);
  items[0] = v_tensor(h2);
  items[1] = v_tensor(c2);
  *out = (Value){.k = V_TUPLE, .items = items, .len = 2};
  return true;
}

/* sliding_windows(input, kernel_size, stride=1, padding=0, dilation=1, value=0.0): the
 * WINDOW op itself, [..., H, W] -> [..., OH, OW, KH, KW], what convolutions and pooling are
 * built from; `nnc import` writes it.  padding: an int, [ph, pw] or [top, left, bottom, right]
 * (negative: cropped); value fills the positions outside the input. */
static bool b_sliding_windows(Sema *S, const Builtin *self, const Args *a, Value *out) {
  const char *name = self->name;
  static const char *names[] = {"input", "kernel_size", "stride", "padding", "dilation", "value"};
  if (!entry_only(S, a, name) || !args_check(S, a, name, names, 6)) return false;
  INode *x = tensor_opt(S, a, 0, "input", true);
  WindowSpec ws = {.input_dilation = {1, 1}, .what = name, .params = "kernel size, stride, padding or dilation"};
  const Value *p = arg_get(a, 3, "padding");
  if (!x || !arg_get(a, 1, "kernel_size")) return x ? diag_error(D, a->loc, "%s needs kernel_size", name) : false;
  if (!pair_opt(S, a, 1, "kernel_size", 1, ws.kernel) || !pair_opt(S, a, 2, "stride", 1, ws.stride) ||
      !pair_opt(S, a, 4, "dilation", 1, ws.dilation) || !num_opt(S, a, 5, "value", 0.0, &ws.pad_value))
    return false;
  if (p && p->k == V_LIST && p->len == 4) {
    for (int i = 0; i < 4; i++)
      if (!to_int(S, &p->items[i], a->loc, &ws.pad[i])) return false;
  } else {
    int64_t hw[2];
    if (!pair_opt(S, a, 3, "padding", 0, hw)) return false;
    ws.pad[0] = ws.pad[2] = hw[0], ws.pad[1] = ws.pad[3] = hw[1];
  }
  for (int i = 0; i < 2; i++)
    if (ws.kernel[i] <= 0 || ws.stride[i] <= 0 || ws.dilation[i] <= 0)
      return diag_error(D, a->loc, "%s: kernel_size, stride and dilation must be positive", name);
  *out = v_tensor(ir_window(S->m, S->e, x, &ws, a->loc, D));
  return out->t != NULL;
}

const Builtin nn_builtins[] = {
  {"lstm", b_lstm}, {"lstm_cell", b_lstm_cell},
  {"conv2d", b_conv2d}, {"conv_transpose2d", b_conv_transpose2d},
  {"max_pool2d", b_pool, POOL_MAX}, {"avg_pool2d", b_pool, POOL_AVG}, {"adaptive_avg_pool2d", b_adaptive_pool2d, POOL_AVG},
  {"adaptive_max_pool2d", b_adaptive_pool2d, POOL_MAX},
  {"batch_norm", b_batch_norm}, {"group_norm", b_group_norm, NORM_GROUP}, {"instance_norm", b_group_norm, NORM_INSTANCE},
  {"layer_norm", b_layer_norm}, {"interpolate", b_interpolate}, {"pad", b_pad},
  {"pixel_shuffle", b_pixel_shuffle, SHUFFLE}, {"pixel_unshuffle", b_pixel_shuffle, UNSHUFFLE}, {"roi_align", b_roi_align},
  {"scaled_dot_product_attention", b_sdpa}, {"sliding_windows", b_sliding_windows},
  {NULL, NULL},
};
