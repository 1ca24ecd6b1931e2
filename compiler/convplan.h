/* convplan.h — when a convolution runs as a direct convolution, and its layout.
 *
 * A GEMM kernel whose B operand is the im2col columns of a plain window over an image
 * X [N, C, H, W] (nn_conv2d's weights [G, Cout/G, Cin/G*KH*KW] @ columns) is computed without
 * the KH*KW-fold columns: each (image, group)'s input channels are copied once, zero-padded and
 * split into stride phases, into its own part of the kernel's scratch slot, and the
 * convolution multiplies shifted rows of that copy by the weights (lower.c lower_conv, codegen
 * emit_conv).  Phase (ph, pw) of a channel holds X[hh*sh + ph - pad_t, ww*sw + pw - pad_l] at
 * (hh, ww), zero outside X; kernel tap (kh, kw) reads phase ((kh*dh) % sh, (kw*dw) % sw)
 * shifted by ((kh*dh) / sh, (kw*dw) / sw) rows and columns, so the inputs of a run of output
 * columns are a contiguous run of the copy.  The memory planner sizes the scratch slot from
 * the same plan. */
#ifndef NNC_CONVPLAN_H
#define NNC_CONVPLAN_H

#include "ir.h"

typedef struct ConvPlan {
  INode *x;                    /* the window's input [N, C, H, W] */
  int64_t groups, cin;         /* groups; input channels per group */
  int64_t kh, kw, oh, ow, stride[2], pad[2], dil[2];
  int64_t nphase[2], shift[2]; /* phases used per axis (0..n-1), largest tap shift */
  int64_t hq, wq;              /* rows and columns of a phase plane */
  int lanes, regs;             /* floats per vector and vector registers of the host */
} ConvPlan;

/* Does kernel K run as a direct convolution?  Then *c is its plan. */
bool conv_plan(const Kernel *K, ConvPlan *c);
/* Floats of one input channel's phase planes in the copy. */
int64_t conv_plan_channel_floats(const ConvPlan *c);
/* Floats of one (image, group)'s padded copy: cin channels. */
int64_t conv_plan_copy_floats(const ConvPlan *c);
/* Offset in a channel's phase planes of kernel tap (i, j)'s input for output (0, 0). */
int64_t conv_plan_tap(const ConvPlan *c, int64_t i, int64_t j);

#endif
