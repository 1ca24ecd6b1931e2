/* nn.h — convolution, pooling, normalization and resampling, as torch.nn.functional defines
 * them, written in terms of the primitive ops of ops.def (nn.c).  Used by the built-in
 * functions (conv2d(...)) and by the layers (Conv2d(...)) alike. */
#ifndef NNC_NN_H
#define NNC_NN_H

#include "value.h"

typedef struct ConvSpec {
  int64_t stride[2], dilation[2];
  int64_t pad[4];            /* top, left, bottom, right */
  int64_t output_padding[2]; /* transposed convolution only */
  int64_t groups;
} ConvSpec;

INode *nn_conv2d(Sema *S, INode *x, INode *w, INode *b, const ConvSpec *c, SrcLoc loc);
INode *nn_conv_transpose2d(Sema *S, INode *x, INode *w, INode *b, const ConvSpec *c, SrcLoc loc);

typedef struct PoolSpec {
  int64_t kernel[2], stride[2], pad[2], dilation[2];
  bool ceil_mode, count_include_pad;
  int64_t divisor_override; /* 0: none */
} PoolSpec;

INode *nn_max_pool2d(Sema *S, INode *x, const PoolSpec *p, SrcLoc loc);
INode *nn_avg_pool2d(Sema *S, INode *x, const PoolSpec *p, SrcLoc loc);
INode *nn_adaptive_avg_pool2d(Sema *S, INode *x, int64_t oh, int64_t ow, SrcLoc loc);
INode *nn_adaptive_max_pool2d(Sema *S, INode *x, int64_t oh, int64_t ow, SrcLoc loc);

/* weight/bias/stats may be NULL (absent) */
INode *nn_batch_norm(Sema *S, INode *x, INode *mean, INode *var, INode *w, INode *b, double eps, SrcLoc loc);
INode *nn_group_norm(Sema *S, INode *x, int64_t groups, INode *w, INode *b, double eps, SrcLoc loc);
INode *nn_layer_norm(Sema *S, INode *x, int nshape, INode *w, INode *b, double eps, SrcLoc loc);

/* size (oh, ow) > 0, or scale factors > 0 */
INode *nn_interpolate(Sema *S, INode *x, Dim oh, Dim ow, double sh, double sw,
                      const char *mode, bool align_corners, SrcLoc loc);
INode *nn_pad(Sema *S, INode *x, const int64_t *pads, int npads, double value, SrcLoc loc);
INode *nn_pixel_shuffle(Sema *S, INode *x, int64_t r, bool inverse, SrcLoc loc);
/* x's axis re-indexed by the constant indices src[n] (each in range): flips, mode padding */
INode *nn_take(Sema *S, INode *x, int axis, const int64_t *src, int64_t n, SrcLoc loc);
/* F.pad with mode "reflect", "replicate" or "circular" (pads as nn_pad's, static axes) */
INode *nn_pad_mode(Sema *S, INode *x, const int64_t *pads, int npads, const char *mode, SrcLoc loc);

/* attention.c.  softmax(q k^T scale + mask) v over the last two axes: q [..., L, E],
 * k [..., S, E], v [..., S, Ev]; mask broadcast to [..., L, S] (i64: boolean, nonzero not
 * attended; f32: added), or NULL; causal: s > l not attended; scale <= 0: 1/sqrt(E).
 * *weights, if not NULL, gets the softmax. */
INode *nn_attention(Sema *S, INode *q, INode *k, INode *v, INode *mask, bool causal, double scale, INode **weights,
                    SrcLoc loc);
/* nn.MultiheadAttention's parameters (in_proj_weight [3E, E], in_proj_bias [3E] or NULL,
 * out_proj.weight [E, E], out_proj.bias or NULL) and forward options */
typedef struct MhaWeights {
  int64_t embed_dim, num_heads;
  INode *in_w, *in_b, *out_w, *out_b;
} MhaWeights;
typedef struct MhaOptions {
  INode *key_padding_mask; /* [N, S], or NULL */
  INode *attn_mask;        /* [L, S] or [N * num_heads, L, S], or NULL */
  bool is_causal, batch_first;
} MhaOptions;
/* query [L, N, E] (batch_first: [N, L, E]), key and value [S, N, E] -> [L, N, E]; when
 * weights is not NULL it gets each head's attention weights [N, H, L, S] */
INode *nn_multihead_attention(Sema *S, const MhaWeights *p, INode *q, INode *k, INode *v, const MhaOptions *o,
                              INode **weights, SrcLoc loc);

/* Argument helpers shared with layers.c: an int or a list of two ints; conv padding (int,
 * pair, "same", "valid"); pooling arguments from position `first`; interpolate's. */
bool pair_arg(Sema *S, const Value *v, SrcLoc loc, const char *name, int64_t out[2]);
bool conv_padding_arg(Sema *S, const Value *v, SrcLoc loc, const int64_t kernel[2], const ConvSpec *c, int64_t pad[4]);
bool pool_spec_args(Sema *S, const Args *a, int first, bool is_max, PoolSpec *p);
bool interpolate_args(Sema *S, const Args *a, int first, Dim size[2], double scale[2], const char **mode,
                      bool *align);

#endif
