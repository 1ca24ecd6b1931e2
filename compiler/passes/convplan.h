/* convplan.h — when a convolution runs as a direct convolution, and its layout.
 *
 * A GEMM kernel whose B operand is the im2col columns of a plain window over an image
 * X [N, C, H, W] (nn_conv2d's weights [G, Cout/G, Cin/G*KH*KW] @ columns) is computed without
 * the KH*KW-fold columns: each (image, group)'s input channels are copied once, zero-padded and
 * split into stride phases, into the kernel's scratch slot (the place of its chunk of the
 * parallel loop: conv.c conv_copy_at), and the
 * convolution multiplies shifted rows of that copy by the weights (lower.c lower_conv, codegen
 * emit_conv).  Phase (ph, pw) of a channel holds X[hh*sh + ph - pad_t, ww*sw + pw - pad_l] at
 * (hh, ww), zero outside X; kernel tap (kh, kw) reads phase ((kh*dh) % sh, (kw*dw) % sw)
 * shifted by ((kh*dh) / sh, (kw*dw) / sw) rows and columns, so the inputs of a run of output
 * columns are a contiguous run of the copy.  The memory planner sizes the scratch slot from
 * the same plan.
 *
 * Symbolic spatial sizes (x: f32[N, 3, H, W]): the plan's output rows and columns are then the
 * Dims ohd, owd and `symbolic` is set; oh, ow, hq and wq hold only what is static (0
 * otherwise), and lowering computes the copy's layout from the run-time sizes (conv.c).  A
 * tap's offset is then (plane * hq + row) * wq + col, its parts from conv_plan_tap_parts.
 * The scratch slot is sized by an upper bound of the copy with derived symbols
 * (conv_plan_copy_bound), made before codegen: lowering never creates symbols. */
#ifndef NNC_CONVPLAN_H
#define NNC_CONVPLAN_H

#include "ir.h"

typedef struct ConvPlan {
  INode *x;                    /* the window's input [N, C, H, W] */
  int64_t groups, cin;         /* groups; input channels per group */
  int64_t kh, kw, oh, ow, stride[2], pad[2], dil[2];
  Dim ohd, owd;                /* output rows and columns (oh, ow when static) */
  bool symbolic;               /* ohd or owd is symbolic: hq, wq known at run time only */
  int64_t nphase[2], shift[2]; /* phases used per axis (0..n-1), largest tap shift */
  int64_t hq, wq;              /* rows and columns of a phase plane */
  int lanes;                   /* floats per vector (the host's, or fewer on a short row) */
  int64_t cout;                /* output channels per group */
  bool winograd;               /* F(2x2, 3x3): the GEMM carries the transformed weights U as
                                  its third input (pass_winograd.c) */
  bool flat;                   /* rows run together (below) */
} ConvPlan;

/* A flat convolution (static sizes, one group, not Winograd): its output rows are computed as
 * one run of conv_plan_flat_columns columns, row r's at r * wq, the wq - ow columns between
 * rows thrown away, so vectors run across rows instead of ending with each: a 7x7 map takes 4
 * vectors of 16 floats (61 columns, rows 9 apart) where its rows took 7 vectors with 7 of 16
 * lanes used.  Taps stay fixed offsets, since a row of the copy is wq floats: wq = ow + the
 * largest tap shift, not rounded up to whole vectors.  The run goes to a scratch slot
 * (Kernel.conv_slot[1]: cout planes of conv_plan_flat_columns) and the epilogue reads each
 * row from there; the copy has `lanes` floats of slack, read by the last vector's unused
 * lanes.  Chosen where it takes an eighth less vector time than rows (conv_vector_cost):
 * maps of up to about 12 columns. */
int64_t conv_plan_flat_columns(const ConvPlan *c);

/* Winograd F(2x2, 3x3) (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks",
 * 2016) for a 3x3 stride-1 convolution with an even output (any output on symbolic sizes:
 * the tiles at an odd edge are half outside it, winograd.c): per 2x2 output tile, the 4x4
 * input tile d becomes V = B^T d B, the 3x3 kernel g becomes U = G g G^T (once, from the
 * weights), each of the 16 elements xi of the tile is a matrix product over the channels,
 * M_xi = U_xi V_xi, and the outputs are A^T M A: 16 multiplies per tile and channel pair
 * instead of 36.  Too few channels leave the transforms dominant. */
#define WINOGRAD_MIN_CHANNELS 8
#define WINOGRAD_MANY_CHANNELS 32 /* from here the products outweigh the transforms anyway */
extern const double winograd_G[4][3];  /* the kernel transform G (convplan.c) */

/* The time of n floats in vectors of `lanes` floats, in 8-float FMAs (target_host_wide_fma). */
int64_t conv_vector_cost(int lanes, int64_t n);
/* Does kernel K run as a direct convolution?  Then *c is its plan. */
bool conv_plan(const Kernel *K, ConvPlan *c);
/* The same for a matmul node g and its columns operand (before fusion: pass_winograd.c). */
bool conv_plan_of(const INode *g, const INode *cols, ConvPlan *c);
/* Can the plan's convolution run as Winograd F(2x2, 3x3)? */
bool conv_plan_winograd_fits(const ConvPlan *c);
/* Its 2x2 tiles per image, and that count rounded up to whole vectors (static sizes). */
int64_t conv_plan_tiles(const ConvPlan *c);
int64_t conv_plan_tiles_padded(const ConvPlan *c);
/* The 16 matrices of V and of M lie one after another, each 16 floats (a cache line) past a
 * multiple of its size: matrices a multiple of 4 KiB apart would all map to the same L1
 * sets, and the input transform, which writes all 16 at once, ran 3x slower. */
#define WINOGRAD_SKEW 16
/* Floats from one of the 16 matrices of V [16][cin][tiles padded] (of M [16][cout][tiles])
 * to the next, per (image, group) (static sizes). */
int64_t conv_plan_winograd_v_stride(const ConvPlan *c);
int64_t conv_plan_winograd_m_stride(const ConvPlan *c);
/* Floats of V and of M per (image, group), or upper bounds of them for a symbolic plan, with
 * the derived symbols of conv_plan_copy_bound (which it may add to m); false when they need
 * more symbols than m can take. */
bool conv_plan_winograd_bound(Model *m, const ConvPlan *c, SrcLoc loc, Dim *v, Dim *mm);
/* Rows of a symbolic plan's copy past its output rows (hq = oh + this). */
int64_t conv_plan_rows_excess(const ConvPlan *c);
/* The static-size functions below (channel_floats .. tap) are for a plan that is not
 * symbolic. */
/* Floats of one input channel's phase planes in the copy. */
int64_t conv_plan_channel_floats(const ConvPlan *c);
/* Floats of one (image, group)'s padded copy: cin channels. */
int64_t conv_plan_copy_floats(const ConvPlan *c);
/* Offset in a channel's phase planes of kernel tap (i, j)'s input for output (0, 0). */
int64_t conv_plan_tap(const ConvPlan *c, int64_t i, int64_t j);
/* Tap (i, j)'s phase plane, row and column shift: its offset is (plane * hq + row) * wq + col. */
void conv_plan_tap_parts(const ConvPlan *c, int64_t i, int64_t j, int64_t part[3]);
/* Floats of one (image, group)'s padded copy, or an upper bound of it for a symbolic plan,
 * with derived symbols (hq <= oh + a, wq <= ow + b) that this may add to m (so only in
 * passes before lowering); false when the bound needs more symbols than m can take. */
bool conv_plan_copy_bound(Model *m, const ConvPlan *c, SrcLoc loc, Dim *floats);

/* Groups of one input channel (a depthwise convolution) on small maps run in blocks of
 * conv_plan_group_block groups (conv.c): the block's padded copies, then one direct
 * convolution over the block's groups (a batch of them: one kernel call, not one a channel),
 * then its epilogue.  A block's copies and outputs stay within GROUP_BLOCK_BYTES (in L2);
 * the block divides the groups, into GROUP_BLOCKS_MIN blocks or more (the threads split
 * (image, block) pairs).  1 (a group at a time) on large maps.  On symbolic maps the block
 * is the largest such divisor, and it runs batched while its copies and outputs take at most
 * 1/GROUP_BLOCK_L2_SHARE of L2 at run time (mobilenet_v2 at 224x224 with a 1 MiB L2: its
 * 28x28 maps and smaller), else a group at a time within the block. */
#define GROUP_BLOCK_MAX 64
#define GROUP_BLOCK_BYTES (64 * 1024)
#define GROUP_BLOCK_L2_SHARE 4
#define GROUP_BLOCKS_MIN 8
int64_t conv_plan_group_block(const ConvPlan *c);

/* Row tiles: a plain product C [M, N] = A [M, K] B [K, N] (row-major, K and N static, any M)
 * runs on the direct convolution's register-tiled kernel too, C's rows as its output
 * channels, A as its weights and B as a one-tap image of K one-row channels (lower.c
 * lower_sgemm): rows of C by four vectors of columns stay in registers while k runs (4 rows,
 * 6 with 32 vector registers: gemm.c row_tile_shape).  It reads B once per tile of rows, from
 * the core's cache when B fits in row_tiles_max_floats (the target's L2, target_host_caches);
 * a larger B's columns go in parts of about row_tiles_part_floats, each swept by every row
 * tile while it is in L2.  It beats OpenBLAS's sgemm on such products (figures in
 * docs/architecture.md): OpenBLAS packs B on every call, its small-matrix kernels for few rows
 * run at half the FMA rate, and its kernels for this machine's Zen 5 (pinned to Haswell's, as
 * on this VM, or chosen by an OpenBLAS that predates Zen 5) use 8-float vectors.  A product by
 * a constant transposed matrix (a Linear layer's x W^T) reads a transposed copy made once
 * (pass_weight_layout.c).  On this Zen 5 core (1 MiB L2) against OpenBLAS: [512, 256] x
 * [256, 1024] 213 against 95 GFLOP/s; B larger than L2: a 1x1 convolution 96 -> 24 at 56x56
 * 157 -> 68 us, [1024, 1024] x [1024, 1024] 21.0 -> 13.0 ms, [256, 4096] x [4096, 1024] 22.2
 * -> 15.3 ms, one row by [4096, 4096] 6.4 -> 4.2 ms.  (A limit of 64 rows on a B larger than
 * L2, from 4 x 4 tiles of 8-float vectors that ran [1024, 1024] x [1024, 1024] at 42 % of the
 * FMA rate, sent such products to OpenBLAS until December 2026.) */
#define ROW_TILES_PART_SHARE 4    /* a part of B in 1/this of L2 */
int64_t row_tiles_max_floats(void);
int64_t row_tiles_part_floats(void);
/* The vector width of the row-tile kernel for a [K, N] B operand, or 0 when OpenBLAS does
 * better (N < 4 on a host with 8 or more floats a vector). */
int row_tile_lanes(int64_t k, int64_t n);
/* The same for a B of a symbolic column count (a 1x1 convolution on symbolic H, W). */
int row_tile_lanes_symbolic(void);

#endif
