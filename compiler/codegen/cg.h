/* cg.h — internal to codegen/: the per-compilation emission context `Cg` and the functions
 * the codegen files share.
 *
 *   codegen.c      the core: IR-building helpers, expressions, statements, kernel and entry
 *                  functions, codegen_model
 *   math.c         the elementwise ops of ops.def as IR (exp, tanh, ... polynomials) and the
 *                  lists of ops a vector row can emit / that make long dependency chains
 *   loops.c        counted loops, parallel and collapsed loops, lane reductions
 *   outline.c      part of a kernel as a function of its own (what it takes from around it)
 *   split_inner.c  a loop inside the split loop, split too (its own kernel function)
 *   vector_row.c   a short row (or a lane reduction's blocks) emitted as explicit vectors
 *   conv_tile.c    the register-tiled direct convolution / row-tile kernel (LS_CONV)
 *   call.c         a call of a support library function (LS_CALL: fused attention)
 *   model_table.c  the introspection table of nnc_model.h and the typed entry wrappers
 *
 * Everything a compilation changes lives in its Cg (or in the IR it emits): no file-scope
 * or thread-local state, so compilations may run concurrently. */
#ifndef NNC_CG_H
#define NNC_CG_H

#include <llvm-c/Core.h>
#include "codegen.h"
#include "loopir.h"

#define REDUCE_LANES 16 /* partial results of a reduction loop: one AVX-512 vector of floats */

typedef struct Cg {
  LLVMContextRef ctx;
  LLVMModuleRef mod;
  LLVMBuilderRef b;
  const Model *m;
  char model_name[MODEL_C_NAME_MAX]; /* model_c_name(m) */
  const LEntry *le;
  LLVMTypeRef f32, i64, i32, i8, ptr, voidt;
  LLVMTypeRef entry_fn;         /* void (ptr args, ptr syms, ptr weights, ptr workspace) */
  LLVMTypeRef kernel_fn;        /* void (ptr bufs, ptr syms, i64 lo, i64 hi): iterations [lo, hi)
                                   of its parallel loop (LKernel.par), if it has one */
  const Ls *par, *par_inner;    /* the current kernel's parallel loop (and the loop collapsed
                                   with it, LKernel.par_inner) */
  LLVMValueRef par_lo, par_hi, par_trip_inner;
  LLVMValueRef chunk;           /* LX_CHUNK: the split loop's chunk (par_lo of the kernel) */
  const LKernel *le_kernel;     /* the kernel being emitted */
  struct KernelFn { char *key; LLVMValueRef fn; } *kernel_cache; /* emitted kernels by structure */
  LLVMValueRef *body_fns;       /* per Model.bodies: the scan body's function */
  int nkernel_cache, capkernel_cache;
  LLVMValueRef fn;              /* current function */
  LLVMValueRef args, syms, weights, ws;
  LLVMValueRef sym_vals[MAX_SYMS];
  LLVMValueRef *bufs;           /* base pointer per LBuf */
  LLVMValueRef *vars, *accs;
  LLVMValueRef lanes[REDUCE_LANES + 1]; /* the partial results of a lane reduction (allocas) */
  const Ls *lane_update;        /* its accumulator update */
  struct VecRow *lane_row;      /* its vector blocks (lane_blocks_as_vectors): the row */
  struct VecRow *vec_row;       /* the run-time row being emitted as vectors (vector_row.c) */
  LLVMValueRef lane_vector;     /* and their accumulator (an alloca) */
  struct ConvCg *conv;          /* the direct convolution being emitted */
  int floats;                   /* the host's floats per vector (target_host_simd) */
  unsigned walk_gen;            /* of the walks of lx_has_chain_op (Lx.cg_walk) */
  int vec_lanes;                /* > 0 while an op of a vector row is emitted: cf32 splats */
  LLVMValueRef *buf_scope, *buf_noalias; /* per LBuf in a kernel function: its alias scope
                                            list and the list of the kernel's other buffers */
  LLVMValueRef prof_on;         /* in a timed entry body: whether $NNC_PROFILE is on (profile.c) */
  bool *scope_open;             /* loop scopes, numbered across the whole module */
  int scope, nscopes, capscopes;
} Cg;

/* ---- codegen.c: IR-building helpers ---- */
LLVMValueRef buffer_access(Cg *g, LLVMValueRef inst, int buf);
LLVMValueRef ci64(Cg *g, int64_t v);
LLVMValueRef const_lanes(Cg *g, LLVMValueRef c);
LLVMTypeRef lanes_of(Cg *g, LLVMTypeRef t);
LLVMValueRef cf32(Cg *g, double v);
LLVMValueRef intrinsic(Cg *g, const char *name, LLVMValueRef *args, int n);
LLVMValueRef gep_f32(Cg *g, LLVMValueRef base, LLVMValueRef idx);
LLVMValueRef splat(Cg *g, LLVMTypeRef vt, LLVMValueRef v);
LLVMValueRef call_extern(Cg *g, const char *name, LLVMTypeRef ret, LLVMTypeRef *pt, int np, LLVMValueRef *args);
void call_parallel(Cg *g, const char *runtime_fn, LLVMValueRef fn, LLVMValueRef bufs, LLVMValueRef n, int64_t work);
LLVMValueRef entry_alloca(Cg *g, LLVMTypeRef type, const char *name);

/* ---- profile.c: the timed sites of an entry body ---- */
LLVMValueRef prof_site(Cg *g, const char *name, LLVMValueRef entry);
void prof_load_flag(Cg *g);
LLVMValueRef prof_begin(Cg *g);
void prof_end(Cg *g, LLVMValueRef site, LLVMValueRef t0);

/* ---- codegen.c: expressions and statements ---- */
LLVMValueRef emit(Cg *g, Lx *x);
void emit_stmt(Cg *g, Ls *s);
void load_syms(Cg *g);
int scope_push(Cg *g);
void scope_pop(Cg *g, int parent);

/* ---- math.c ---- */
LLVMValueRef fsel(Cg *g, LLVMRealPredicate p, LLVMValueRef a, LLVMValueRef b, LLVMValueRef t, LLVMValueRef f);
LLVMValueRef nonzero(Cg *g, LLVMValueRef x);
LLVMValueRef emit_scalar_op(Cg *g, Op op, const double *attr, LLVMValueRef *a);
LLVMValueRef reduce_op(Cg *g, Op rop, LLVMValueRef acc, LLVMValueRef v);
LLVMValueRef reduce_identity(Cg *g, Op rop);

/* ---- loops.c ---- */
/* A counted loop being emitted (loop_open .. loop_close): for (i = lo; i < hi; i += step). */
typedef struct CountedLoop {
  LLVMBasicBlockRef pre, head, exit;
  LLVMValueRef lo, i;           /* the first value, and the induction variable (a phi) */
} CountedLoop;
typedef struct LoopNames { const char *head, *body, *exit, *var; } LoopNames; /* of its IR values */

CountedLoop loop_open(Cg *g, LLVMValueRef lo, LLVMValueRef hi, const LoopNames *names);
LLVMValueRef loop_close(Cg *g, const CountedLoop *l, LLVMValueRef step);
void counted_loop(Cg *g, LLVMValueRef lo, LLVMValueRef hi, LLVMValueRef step,
                  void (*body)(Cg *, const Ls *, LLVMValueRef), const Ls *s);
void loop_hints(Cg *g, LLVMValueRef br, bool vectorize, bool unroll, int interleave);
LLVMValueRef trip_of(Cg *g, const Ls *s);
/* Does a statement of s evaluate an op whose code is a long dependent chain (OPT_CHAIN)? */
bool has_chain_op(Cg *g, const Ls *s);
void emit_loop(Cg *g, Ls *s);

/* ---- outline.c ---- */
/* What an outlined part uses from around it: buffers, variables read, variables of loops
 * inside it (bound there, not passed). */
typedef struct Uses {
  bool *bufs, *vars, *inner;
  int nvars;
} Uses;
/* The caller's function-local state while an outlined function is emitted. */
typedef struct Caller {
  LLVMValueRef fn, syms, par_lo, par_hi, chunk;
  LLVMValueRef sym_vals[MAX_SYMS], lanes[REDUCE_LANES + 1];
  LLVMValueRef *bufs, *vars, *accs;
  const Ls *par, *par_inner;
  LLVMBasicBlockRef resume;
  int scope, *open, nopen;
} Caller;
Uses uses_new(Cg *g);
void uses_free(Uses *u);
void uses_of_expr(Cg *g, Uses *u, Lx *x);
/* The caller's side: the args array of what u uses (its buffers and the variables' values). */
LLVMValueRef uses_pass(Cg *g, const Uses *u);
void put_aside(Cg *g, Caller *c);
void restore(Cg *g, Caller *c);
/* The outlined function's side (g->fn, its builder in the entry block): the symbolic dims
 * from its parameter 1, buffers, variables and the chunk from args; uses_drop after. */
void uses_take(Cg *g, const Uses *u, LLVMValueRef args);
void uses_drop(Cg *g);

/* ---- split_inner.c ---- */
void emit_split_inner(Cg *g, Ls *s);

/* ---- vector_row.c ---- */
int vector_row_lanes(Cg *g, const Ls *s);
void emit_vector_row(Cg *g, const Ls *s, int lanes);
LLVMValueRef lane_blocks_as_vectors(Cg *g, const Ls *s, LLVMValueRef lo, LLVMValueRef end);
LLVMValueRef lane_constants(Cg *g, LLVMTypeRef elem, int lanes, int64_t mul, int64_t add);
LLVMValueRef lane_mask(Cg *g, int lanes, int64_t mul, int64_t add, int64_t limit);
LLVMValueRef load_vector(Cg *g, LLVMTypeRef vt, LLVMValueRef p, LLVMValueRef mask, int buf);
void store_vector(Cg *g, LLVMTypeRef vt, LLVMValueRef v, LLVMValueRef p, LLVMValueRef mask, int buf);
/* x as a vector of vt along loop variable var, from the column g->vars[var] (varying loads
 * contiguous, masked by mask; the rest computed once), where the expression `known` is v. */
LLVMValueRef vector_value(Cg *g, Lx *x, int var, LLVMTypeRef vt, LLVMValueRef mask, const Lx *known, LLVMValueRef v);

/* ---- conv_tile.c ---- */
void emit_conv(Cg *g, Ls *s);

/* ---- call.c ---- */
void emit_call(Cg *g, const Ls *s);

/* ---- model_table.c ---- */
LLVMValueRef emit_desc(Cg *g, const LEntry *les, LLVMValueRef *bodies, const unsigned char *weights);
void emit_wrappers(Cg *g, LLVMValueRef desc);

#endif
