/* gen.h — the random program generator of the differential tester (in the spirit of NNSmith).
 *
 * A program is built as a list of values, each an entry input or a statement over earlier
 * values whose shape (static dims and the symbolic N) is known, so every program is well
 * typed by construction (dims k x N, k x T, k x N x T; images of symbolic H x W, whose layers
 * give derived sizes such as (H + 1) / 2): broadcasting, reductions, softmax, matmul and Linear layers,
 * movement ops (reshape, permute, slice, cat, split, squeeze, flatten) and constants.  Each
 * value also carries an interval bounding its elements; ops whose domain or range would be
 * unsafe (log of a negative, exp of a large value, a division by something near zero) are
 * conditioned (abs(x) + 0.5, scaling), so outputs stay finite and comparable.
 *
 * The text form (gen_emit) is an ordinary .nn file whose first line records how to run it:
 *   # difftest: N=5 T=3 H=4 W=7 x0=-2:2 x3=0.5:3
 * (the value of each symbolic dim, and the range of uniform random values of each input;
 * inputs not listed get [-2, 2]).  The reducer shrinks a failing program by dropping outputs,
 * cutting statements into fresh inputs of the same shape and lowering N. */
#ifndef NNC_DIFFTEST_GEN_H
#define NNC_DIFFTEST_GEN_H

#include <stdbool.h>
#include <stdint.h>

#define G_MAX_RANK 4
#define G_MAX_VALS 96
#define G_MAX_DECLS 16
#define G_MAX_OUTS 4
#define G_MAX_DEPS 4
#define G_MAX_ENTRIES 2

#define SYM_N 1u
#define SYM_T 2u
#define SYM_H 4u  /* an image's height and width */
#define SYM_W 8u
#define G_BASE_SYMS 4      /* bits 0-3: N, T, H, W; the derived sizes take the bits after them */
#define G_MAX_DERIVED 6

typedef struct GDim {
  int k;        /* k times the symbols in sy */
  unsigned sy;  /* SYM_N | SYM_T | SYM_H | SYM_W | derived sizes (1u << (G_BASE_SYMS + i)) */
} GDim;

/* A layer's output size on a symbolic image size: floor((mul * src + add) / div), src the
 * bit of a symbol (H, W or another derived size).  In a type it is written as its formula;
 * in a body, which has no floor division of sizes, as `witness.shape[axis]` of the value
 * that introduced it. */
typedef struct GDerived {
  unsigned src;
  int mul, add, div;
  int witness, axis;
} GDerived;

typedef struct GShape {
  int rank;
  GDim d[G_MAX_RANK];
} GShape;

typedef struct GVal {
  GShape s;
  bool i64;            /* an i64 entry input */
  double lo, hi;       /* every element lies in [lo, hi] */
  bool input;          /* an entry input x<i>; else the statement v<i> = expr */
  char expr[1024];     /* the statement's right-hand side; @<j> refers to value j, $ to itself */
  int deps[G_MAX_DEPS], ndeps;
  int decl;            /* index of the module declaration it calls, or -1 */
  int entry;           /* the export it belongs to */
} GVal;

typedef struct GProg {
  GVal v[G_MAX_VALS];
  int nv;
  char decls[G_MAX_DECLS][160];  /* top-level `name = Layer(...)`, shared by the entries */
  int decl_in[G_MAX_DECLS], decl_out[G_MAX_DECLS]; /* Linear / Sequential: features; else 0 */
  int ndecls;
  int nentries, cur;             /* exports f0, f1, ...; the one being generated */
  int outs[G_MAX_ENTRIES][G_MAX_OUTS], nouts[G_MAX_ENTRIES]; /* an entry without outputs is left out */
  int N, T, H, W;                /* the values of the symbolic dims the program is run with */
  GDerived der[G_MAX_DERIVED];   /* derived sizes, by bit G_BASE_SYMS + i */
  int nder;
  uint64_t rng;
} GProg;

/* Generate program number `seed` (deterministic). */
void gen_program(GProg *g, uint64_t seed);
/* The .nn text (malloc'd) with its `# difftest:` header; only values the outputs need, and
 * only entries with outputs. */
char *gen_emit(const GProg *g);
/* Make value i an entry input of the same shape (the reducer's cut); false if it is one. */
bool gen_cut(GProg *g, int i);

#endif
