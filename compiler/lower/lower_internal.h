/* lower_internal.h — what the files of lower/ share: the state of one lowering (Lower) and
 * the builders every kernel family uses.  Not for codegen, which sees only loopir.h.
 *
 *   lower.c      driver, buffers, statements, elementwise and scan kernels
 *   expr.c       hash-consed expressions, index simplification
 *   value.c      a tensor's value at an index (elementwise and movement ops)
 *   rand.c       Philox random numbers
 *   reduce.c     reduction kernels
 *   gemm.c       sgemm calls and row tiles
 *   conv.c       direct convolution: padded copy, LS_CONV
 *   winograd.c   Winograd F(2x2, 3x3)
 *   roi_align.c, col2im.c   the opaque ops
 *   print.c      the text form and kernel keys
 *   parallel.c   which loop of a kernel may run split among threads
 * (print.c and parallel.c read finished loop IR: they need no Lower.) */
#ifndef NNC_LOWER_INTERNAL_H
#define NNC_LOWER_INTERNAL_H

#include "loopir.h"
#include "convplan.h"

#define SHORT_ROW 64 /* a static innermost loop this short is a vector row candidate */

/* One lowering (lower_model): everything it changes as it goes is here, none of it in
 * globals, so that compilations on different threads share nothing. */
typedef struct Lower {
  Model *m;
  const Entry *e;
  LEntry *le;
  Lx **hash;           /* hash-consing table of the entry's expressions (chains) */
  size_t hash_cap, hash_count; /* its buckets (a power of two), its expressions */
  int nvars, naccs;
  struct VarRange { int64_t lo, hi; bool known; Lx *below; } *range; /* per loop variable of
                                            the kernel: its static bounds (hi INT64_MAX:
                                            unbounded), and a run-time size it stays below
                                            (a loop to a symbolic hi), or NULL */
  int caprange;
  unsigned walk_gen;   /* the generation of the last walk over expressions (Lx.walk_gen) */
  /* the kernel being lowered */
  const Kernel *K;
  INode *red;          /* its reduction, if any */
  int red_acc;
  int red_buf;         /* >= 0: the reduction accumulates in this buffer instead */
  Lx *red_value;       /* or: the reduction is this expression (a small window, unrolled) */
  Lx *gemm_value;      /* the GEMM's result at the element being stored (Winograd's A^T M A),
                          when the epilogue is evaluated right there */
  INode *gemm;         /* its matmul, if any */
  INode *computing;    /* a node the kernel computes although it has a buffer (a GEMM prologue) */
  int gemm_cbuf;
  /* memo of value(node, idx) */
  struct Memo { const INode *n; Lx *idx[MAX_RANK]; Lx *v; } *memo;
  int nmemo, capmemo;
} Lower;

/* ---- expr.c: hash-consed expressions ---- */
Lx *lx(Lower *L, Lx t);
Lx *lx_i(Lower *L, int64_t c);
Lx *lx_f(Lower *L, double f);
Lx *lx_var(Lower *L, int v);
Lx *lx_chunk(Lower *L);
Lx *lx_dim(Lower *L, Dim d);
Lx *ibin(Lower *L, int op, Lx *a, Lx *b);       /* integer op, simplified */
Lx *fop(Lower *L, Op op, Lx *a, Lx *b);         /* float op of ops.def */
Lx *itof(Lower *L, Lx *a);
Lx *ftoi(Lower *L, Lx *a);
Lx *select3(Lower *L, Lx *c, Lx *t, Lx *f);
Lx *clamp(Lower *L, Lx *v, int64_t lo, int64_t hi);
/* v clamped to [0, size) and the test 0 <= v < size, for a size known at run time too */
Lx *clamp_dim(Lower *L, Lx *v, Dim size);
Lx *inside_dim(Lower *L, Lx *v, Dim size);
Lx *linear(Lower *L, const Shape *s, Lx *const *idx);
bool unit_map(const Shape *from, Lx *const *fi, const Shape *to, Lx **ti, Lx *zero);

/* ---- lower.c: buffers, statements, elementwise stores ---- */
int add_buf(Lower *L, LBuf b);
int buffer_of(Lower *L, INode *n);
Ls *ls_new(Lower *L, LsKind k);
void ls_add(Lower *L, Ls *parent, Ls *child);
int new_var(Lower *L, int64_t lo, int64_t hi, bool known);
Ls *loop(Lower *L, Ls *parent, Lx *lo, Lx *hi, Lx *step, Lx **var);
void store(Lower *L, Ls *parent, int buf, Lx *idx, Lx *val);
void eval(Lower *L, Ls *parent, Lx *v);
Ls *loop_nest(Lower *L, Ls *parent, const Shape *s, const int *order, int n, Lx **vars);
void store_out(Lower *L, Ls *blk, INode *out, Lx *const *idx);
void store_planes(Lower *L, Ls *parent, const Shape *s, int from, Lx **vars, INode *const *outs, int nouts);

/* ---- value.c, rand.c: values ---- */
Lx *value(Lower *L, INode *n, Lx *const *idx);
void broadcast_idx(Lower *L, const Shape *out, Lx *const *idx, const Shape *in, Lx **r);
Lx *rand_value(Lower *L, INode *n, Lx *const *idx);

/* ---- kernel families ---- */
void lower_reduce(Lower *L, Ls *body);
void lower_gemm(Lower *L, Ls *body);
Lx *batch_offset(Lower *L, const Shape *out, int nb, Lx *const *bidx, const Shape *x);
Ls *conv_stmt(Lower *L, int64_t cin, int lanes, int x, Lx *x_off, int w, Lx *w_off, int y, Lx *y_off, int64_t cout);
bool lower_conv(Lower *L, Ls *parent, const ConvPlan *c, Lx *const *bidx);
/* Can a grouped convolution's epilogue run per group (or block of groups), right after its
 * product: is the kernel's one output of static channels, groups * cout of them, images its
 * leading dim, the map's rows and columns the rest (or one dim: the [N, C, H*W] view a 1x1
 * convolution after it reads)? */
bool conv_epilogue_per_group_fits(const Lower *L, const ConvPlan *c);
/* Can the kernel's epilogue be applied where the convolution's outputs are computed
 * (Winograd's output transform, a flat convolution's rows): is its one output the image
 * [N, G*cout, OH, OW]? */
bool conv_epilogue_inline(const Lower *L, const ConvPlan *c);
/* Then the kernel's output at image bidx[0], channel co of group bidx[1], row oy, column ox,
 * the convolution's value there being y. */
Lx *conv_epilogue_value(Lower *L, const ConvPlan *c, Lx *const *bidx, Lx *co, Lx *oy, Lx *ox, Lx *y);
/* A convolution's padded copy (conv.c) as expressions: constants for static sizes. */
typedef struct ConvSizes {
  Lx *H, *W;      /* the input's rows and columns */
  Lx *oh, *ow;    /* the output's */
  Lx *hq, *wq;    /* a phase plane's rows and columns */
  Lx *chan, *copy; /* floats of one input channel's planes, of one (image, group)'s copy */
} ConvSizes;
bool lower_winograd(Lower *L, Ls *parent, const ConvPlan *c, const ConvSizes *z, Lx *const *bidx, int xbuf, Lx *base,
                    Lx *item, Lx *scratch);
void lower_roi_align(Lower *L, Ls *body);
void lower_col2im(Lower *L, Ls *body);
void lower_attention(Lower *L, Ls *body);

#endif
