/* loopir.h — the loop-nest IR: what lower/ makes of each fused kernel and codegen.c turns
 * into LLVM IR.  A kernel is a tree of statements (loops, stores, accumulator updates,
 * sgemm calls) over scalar expressions.  Expressions are hash-consed per entry, so equal
 * index arithmetic and equal loads are one node, which codegen evaluates once per scope. */
#ifndef NNC_LOOPIR_H
#define NNC_LOOPIR_H

#include "ir.h"

typedef enum LxKind {
  LX_F,      /* float constant f[0] */
  LX_I,      /* integer constant c */
  LX_VAR,    /* loop variable `var` */
  LX_SYM,    /* c × the product of the symbolic dims in `syms` */
  LX_IBIN,   /* integer op `op` ('+', '-', '*', '/', '%', 'm' min, 'M' max; conditions:
                '<', '=' and '&' of two conditions; wrapping bit ops for Philox: 'x' xor,
                '&' and, 'r' logical shift right, 'u' multiply, 'w' add) */
  LX_LOAD,   /* f32 (or i64 converted) element a[0] of buffer `buf` */
  LX_OP,     /* elementwise op `op` of ops.def with attributes f[] on a[] */
  LX_SELECT, /* a[0] ? a[1] : a[2]; a[0] a condition, or a float (true when nonzero) */
  LX_ACC,    /* the running value of accumulator `acc` */
  LX_ITOF,   /* (float) of integer a[0] */
  LX_FTOI,   /* integer of float a[0], truncated toward zero */
  LX_LOADI,  /* the raw int64 element a[0] of buffer `buf` (an i64 seed) */
  LX_CHUNK,  /* the first iteration of the parallel loop's chunk this call runs (0 when the
                kernel has no parallel loop): scratch indexed by it, not by the iteration,
                is reused by the chunk's iterations one after another, while chunks that run
                at once use distinct places (conv.c: the padded copies, Winograd's V and M) */
} LxKind;

typedef struct Lx Lx;
struct Lx {
  LxKind k;
  int op;
  double f[2];
  int64_t c;
  uint32_t syms;
  int var, buf, acc;
  Lx *a[3];
  Lx *next_hash;     /* hash-consing chain */
  void *cg;          /* codegen: the LLVM value, valid while scope cg_scope is open */
  int cg_scope;
  int print_id, print_gen; /* text form (print.c): printed once per kernel, then referred to by
                              id; print_gen is set only while a print is under way */
  unsigned walk_gen;       /* lower/: visited by the walk of this generation (Lower.walk_gen) */
  unsigned cg_walk;        /* codegen.c: the same, for its walks */
};

/* LS_EVAL computes `val` where it stands, so that the loops inside reuse it instead of
 * computing it per iteration (LLVM cannot hoist what depends on a load past a store that
 * might alias it). */
typedef enum LsKind { LS_BLOCK, LS_LOOP, LS_STORE, LS_EVAL, LS_ACC_INIT, LS_ACC_UPDATE, LS_GEMM, LS_CONV, LS_SCAN, LS_CALL } LsKind;

typedef struct Ls Ls;
struct Ls {
  LsKind k;
  struct Ls **body; int nbody, cap;     /* LS_BLOCK, LS_LOOP */
  int var; Lx *lo, *hi, *step;          /* LS_LOOP: for var in [lo, hi) by step */
  bool scalar;                          /* LS_LOOP: not to be vectorized (its loads would be
                                           gathers, slower than scalar loads; a row's padding) */
  bool rolled;                          /* LS_LOOP: not to be unrolled (the rows of a padded
                                           copy: unrolled fully, they only add code) */
  bool vector_row;                      /* LS_LOOP: a short static row of stores that codegen
                                           emits as whole vectors if it can (a pooling row) */
  bool split_inner;                     /* LS_LOOP: inside the kernel's split loop, with
                                           independent iterations (parallel.c): run through
                                           the pool too, which splits it when the split loop
                                           has one item (one image) */
  int64_t split_work;                   /* LS_LOOP split_inner: scalar statements an iteration */
  int buf; Lx *idx, *val;               /* LS_STORE: buf[idx] = val; LS_EVAL: val */
  int acc; Op rop;                      /* LS_ACC_*: OP_SUM or OP_RMAX */
  struct {                              /* LS_GEMM: C = op(A) op(B), row-major */
    int a, b, c;
    Lx *a_off, *b_off, *c_off, *m, *n, *k, *lda, *ldb, *ldc;
    int ta, tb;
  } g;
  struct {                              /* LS_CONV: y[co, oh, ow] = sum over ci, taps t of
                                           w[co, ci*ntaps + t] * x[ci*xplane + tap[t] + oh*xrow + ow]
                                           for co < cout, oh < oh, ow < ow (see lower_conv) */
    int x, w, y;
    Lx *x_off, *w_off, *y_off;
    int64_t cout, cin, ntaps, xplane, xrow, oh, ow; /* weight rows are cin * ntaps long */
    int64_t *tap;                       /* [ntaps] offset of each kernel tap in a channel's planes;
                                           with size[]: [3 * ntaps] its plane, row and column, at
                                           (plane * hq + row) * wq + col */
    Lx *size[4];                        /* symbolic spatial sizes (convplan.h): the run-time oh,
                                           ow, hq (a phase plane's rows) and wq (= xrow); oh, ow,
                                           xplane and xrow are then 0.  NULL: all static */
    int64_t nplanes;                    /* with size[]: phase planes a channel (xplane =
                                           nplanes * hq * wq) */
    int lanes, tile_co, tile_vec;       /* vector width; register tile: output channels x vectors */
    Lx *rows;                           /* a run-time count of output channels (the rows of a
                                           row-tile product), cout then only bounds it; or NULL */
    bool tight;                         /* x's rows are not padded to whole vectors: the last
                                           vector of a row is loaded masked (a product's B) */
    int64_t nbatch;                     /* that many such convolutions (1, or Winograd's 16
                                           products): item b's x, w and y at b * x_bstride,
                                           w_bstride, y_bstride floats further, their channel
                                           tiles one parallel loop */
    int64_t x_bstride, w_bstride, y_bstride;
    Lx *bstride[2];                     /* symbolic sizes: the run-time x_bstride and y_bstride
                                           (Winograd's V and M), which are then 0; or NULL */
    int add;                            /* row tiles onto a tensor D, C = D + A B: D's
                                           buffer (row r's columns contiguous from add_off +
                                           r * add_ld), or -1 */
    Lx *add_off, *add_ld;
    int parts;                          /* each channel tile's vectors in that many parts,
                                           parallel iterations of their own (1, or up to 4 for
                                           a product of few rows: B's columns split among
                                           threads) */
    bool part_major;                    /* iterations numbered part by part (a B larger than L2:
                                           each part swept by every channel tile while cached),
                                           else channel tile by channel tile (A's rows cached) */
    Lx *epi;                            /* the kernel's epilogue, applied to each register tile
                                           before it is stored (gemm.c fuse_tile_epilogue), or
                                           NULL: the value stored at output channel epi_ch,
                                           position epi_pos in its plane (loop variables
                                           bound by codegen), where the load epi_y is the
                                           tile's product */
    const Lx *epi_y;
    int epi_ch, epi_pos;
  } cv;
  struct {                              /* LS_SCAN: run a scan body `steps` times */
    const ScanInfo *info;
    int body;                           /* index in Model.bodies */
    int *bufs;                          /* init[nc], final[nc] (-1: none), state[2nc], captured[ncap],
                                           stacked[ns], weights, workspace (-1: none) */
    Lx **numel;                         /* elements per step of each body output */
    Lx *steps;
  } sc;
  struct {                              /* LS_CALL: fn(&bufs[0][offs[0]], .., ints, f), a
                                           support library function: f32 pointers into the
                                           buffers (NULL for buffer -1, offset 0 for a NULL
                                           offs), a pointer to the values of ints[0..nints)
                                           as i64, and f as f32 */
    const char *fn;
    int bufs[6], nbufs;
    Lx *offs[6];
    Lx **ints; int nints;
    double f;
  } call;
};

typedef enum LBufKind { LB_ARG, LB_WEIGHT, LB_SLOT, LB_CONST } LBufKind;
typedef struct LBuf {
  LBufKind k;
  DType dtype;
  int index;            /* LB_ARG: argument index; LB_SLOT: slot */
  uint64_t offset;      /* LB_WEIGHT: byte offset in the weight blob */
  const float *data;    /* LB_CONST */
  int64_t n;            /* LB_CONST: element count */
} LBuf;

typedef struct LKernel {
  const char *name;     /* "<entry>.k<i>.<kind>" */
  Ls *body;
  int nvars, naccs;
  Ls *par;              /* the outer loop whose iterations may run split among threads, or NULL */
  Ls *par_inner;        /* the loop collapsed with it (its only statement), or NULL */
  int64_t par_work;     /* estimated scalar statements of one of its iterations */
} LKernel;

typedef struct LEntry {
  const Entry *e;
  LBuf *bufs; int nbufs, cap;
  LKernel *kernels; int nkernels;
} LEntry;

/* A static upper bound of size x: a constant, or min(constant, ...) (a block of rows), else -1. */
static inline int64_t loopir_size_bound(const Lx *x) {
  if (x->k == LX_I) return x->c;
  if (x->k == LX_IBIN && x->op == 'm' && (x->a[0]->k == LX_I || x->a[1]->k == LX_I))
    return x->a[0]->k == LX_I ? x->a[0]->c : x->a[1]->c;
  return -1;
}

/* Vector multiply-adds of a direct convolution's `channels` output channels: its work, for
 * the thread pool's grain (parallel.c, and codegen for its channel tiles). */
#define LOOPIR_SYMBOLIC_MAP 32 /* the rows and columns a symbolic map is guessed to have */
static inline int64_t loopir_conv_fmas(const Ls *s, int64_t channels) {
  double pixels = s->cv.size[0] ? LOOPIR_SYMBOLIC_MAP * LOOPIR_SYMBOLIC_MAP : (double)s->cv.oh * s->cv.ow;
  double fmas = channels * pixels * s->cv.cin * s->cv.ntaps / s->cv.lanes;
  return fmas < (double)INT64_MAX ? (int64_t)fmas : INT64_MAX;
}

/* Lower every kernel of every entry of the (fused, planned) model. */
LEntry *lower_model(Model *m);
/* Set k->par and k->par_work (parallel.c). */
void loopir_mark_parallel(const LEntry *le, LKernel *k);
void loopir_dump(FILE *out, const Model *m, const LEntry *le);
/* The kernel's structure as text with its buffers renumbered by first use (rename[entry
 * buffer] = local number, -1 if unused; *nlocal = count): kernels with equal keys compute
 * the same function of their buffers.  malloc'd. */
char *loopir_kernel_key(const LEntry *le, const LKernel *k, int *rename, int *nlocal);

#endif
