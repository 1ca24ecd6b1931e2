/* codegen.c — loop-nest IR → LLVM IR (through the LLVM C API only).
 *
 * Every kernel becomes an internal function (args, syms, weights, workspace); an entry's
 * body calls its kernels in order.  Expressions are emitted where they are used and
 * memoized per loop scope; LLVM's O3 pipeline hoists invariants and vectorizes the inner
 * loops.  exp (and tanh, sigmoid, elu built on it) is a Cephes-style polynomial in IR so it
 * vectorizes; matmuls call OpenBLAS's cblas_sgemm (through nnc_rt_sgemm: pool.h).  Then the introspection table
 * (nnc_model.h) and the typed wrappers `<model>_<entry>` are emitted. */
#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "codegen.h"
#include <llvm-c/DebugInfo.h>
#include "nnc_model.h"
#include "passes.h"
#include "target.h"

#define REDUCE_LANES 16 /* partial results of a reduction loop: one AVX-512 vector of floats */

typedef struct Cg {
  LLVMContextRef ctx;
  LLVMModuleRef mod;
  LLVMBuilderRef b;
  const Model *m;
  const LEntry *le;
  LLVMTypeRef f32, i64, i32, i8, ptr, voidt;
  LLVMTypeRef entry_fn;         /* void (ptr args, ptr syms, ptr weights, ptr workspace) */
  LLVMTypeRef kernel_fn;        /* void (ptr bufs, ptr syms, i64 lo, i64 hi): iterations [lo, hi)
                                   of its parallel loop (LKernel.par), if it has one */
  const Ls *par, *par_inner;    /* the current kernel's parallel loop (and the loop collapsed
                                   with it, LKernel.par_inner) */
  LLVMValueRef par_lo, par_hi, par_trip_inner;
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
  LLVMValueRef lane_vector;     /* and their accumulator (an alloca) */
  struct ConvCg *conv;          /* the direct convolution being emitted */
  int floats;                   /* the host's floats per vector (target_host_simd) */
  unsigned walk_gen;            /* of the walks of lx_has_chain_op (Lx.cg_walk) */
  int vec_lanes;                /* > 0 while an op of a vector row is emitted: cf32 splats */
  LLVMValueRef *buf_scope, *buf_noalias; /* per LBuf in a kernel function: its alias scope
                                            list and the list of the kernel's other buffers */
  bool *scope_open;             /* loop scopes, numbered across the whole module */
  int scope, nscopes, capscopes;
} Cg;

/* ---- helpers ---- */

/* Mark a load or store of buffer `buf` with the kernel's alias scopes (alias_scopes). */
static LLVMValueRef buffer_access(Cg *g, LLVMValueRef inst, int buf) {
  if (buf >= 0 && g->buf_scope && g->buf_scope[buf]) {
    LLVMSetMetadata(inst, LLVMGetMDKindIDInContext(g->ctx, "alias.scope", 11), g->buf_scope[buf]);
    LLVMSetMetadata(inst, LLVMGetMDKindIDInContext(g->ctx, "noalias", 7), g->buf_noalias[buf]);
  }
  return inst;
}

static LLVMValueRef ci64(Cg *g, int64_t v) { return LLVMConstInt(g->i64, (unsigned long long)v, 1); }

/* A float constant: a scalar, or a vector of `vec_lanes` equal ones while an op of a vector
 * row is emitted (emit_scalar_op on vectors, vector_row). */
static LLVMValueRef cf32(Cg *g, double v) {
  LLVMValueRef c = LLVMConstReal(g->f32, v);
  if (!g->vec_lanes) return c;
  LLVMValueRef e[16];
  for (int l = 0; l < g->vec_lanes; l++) e[l] = c;
  return LLVMConstVector(e, (unsigned)g->vec_lanes);
}

/* An overloaded float intrinsic, for the type of its first argument (f32 or a vector). */
static LLVMValueRef intrinsic(Cg *g, const char *name, LLVMValueRef *args, int n) {
  unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
  LLVMTypeRef ty[1] = {LLVMTypeOf(args[0])};
  LLVMValueRef f = LLVMGetIntrinsicDeclaration(g->mod, id, ty, 1);
  return LLVMBuildCall2(g->b, LLVMIntrinsicGetType(g->ctx, id, ty, 1), f, args, n, "");
}

static LLVMValueRef gep_f32(Cg *g, LLVMValueRef base, LLVMValueRef idx) {
  return LLVMBuildGEP2(g->b, g->f32, base, &idx, 1, "");
}

static LLVMValueRef splat(Cg *g, LLVMTypeRef vt, LLVMValueRef v) {
  unsigned n = LLVMGetVectorSize(vt);
  LLVMValueRef ins = LLVMBuildInsertElement(g->b, LLVMGetUndef(vt), v, LLVMConstInt(g->i32, 0, 0), "");
  return LLVMBuildShuffleVector(g->b, ins, LLVMGetUndef(vt), LLVMConstNull(LLVMVectorType(g->i32, n)), "");
}

static LLVMValueRef call_extern(Cg *g, const char *name, LLVMTypeRef ret, LLVMTypeRef *pt, int np,
                                LLVMValueRef *args) {
  LLVMTypeRef ft = LLVMFunctionType(ret, pt, np, 0);
  LLVMValueRef f = LLVMGetNamedFunction(g->mod, name);
  if (!f) f = LLVMAddFunction(g->mod, name, ft);
  return LLVMBuildCall2(g->b, ft, f, args, np, "");
}

/* nnc_rt_parallel_for(fn, bufs, syms, n, work): fn, an nnc_kernel_fn, over [0, n) split
 * among the pool's threads (runtime/support/pool.h). */
static void call_parallel(Cg *g, const char *runtime_fn, LLVMValueRef fn, LLVMValueRef bufs, LLVMValueRef n, int64_t work) {
  LLVMTypeRef pt[] = {g->ptr, g->ptr, g->ptr, g->i64, g->i64};
  call_extern(g, runtime_fn, g->voidt, pt, 5, (LLVMValueRef[]){fn, bufs, g->syms, n, ci64(g, work)});
}

static void call_parallel_for(Cg *g, LLVMValueRef fn, LLVMValueRef bufs, LLVMValueRef n, int64_t work) {
  call_parallel(g, "nnc_rt_parallel_for", fn, bufs, n, work);
}

static LLVMValueRef fsel(Cg *g, LLVMRealPredicate p, LLVMValueRef a, LLVMValueRef b, LLVMValueRef t, LLVMValueRef f) {
  return LLVMBuildSelect(g->b, LLVMBuildFCmp(g->b, p, a, b, ""), t, f, "");
}

static LLVMValueRef b_mul(Cg *g, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildFMul(g->b, a, b, ""); }
static LLVMValueRef b_add(Cg *g, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildFAdd(g->b, a, b, ""); }
static LLVMValueRef b_sub(Cg *g, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildFSub(g->b, a, b, ""); }
static LLVMValueRef b_div(Cg *g, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildFDiv(g->b, a, b, ""); }

/* a b + c, one FMA where the target has it (the polynomials below: half the instructions) */
static LLVMValueRef b_fma(Cg *g, LLVMValueRef a, LLVMValueRef b, LLVMValueRef c) {
  return intrinsic(g, "llvm.fmuladd", (LLVMValueRef[]){a, b, c}, 3);
}

/* Cephes expf's reduction of a clamped x: x = n ln2 + r, e^r by a degree-6 polynomial; the
 * result is e^r, and *ni the whole n. */
static LLVMValueRef exp_reduced(Cg *g, LLVMValueRef xc, LLVMValueRef *ni) {
  LLVMValueRef n = intrinsic(g, "llvm.rint", (LLVMValueRef[]){b_mul(g, xc, cf32(g, 1.44269504088896341))}, 1);
  LLVMValueRef r = b_fma(g, n, cf32(g, -0.693359375), xc);
  r = b_fma(g, n, cf32(g, 2.12194440e-4), r);
  static const double c[] = {1.9875691500E-4, 1.3981999507E-3, 8.3334519073E-3, 4.1665795894E-2,
                             1.6666665459E-1, 5.0000001201E-1};
  LLVMValueRef p = cf32(g, c[0]);
  for (int i = 1; i < 6; i++) p = b_fma(g, p, r, cf32(g, c[i]));
  *ni = LLVMBuildFPToSI(g->b, n, g->i32, "");
  return b_add(g, b_fma(g, b_mul(g, p, r), r, r), cf32(g, 1.0));
}

/* 2^k for a whole k of the normal range (-126 .. 127): its exponent bits. */
static LLVMValueRef pow2_normal(Cg *g, LLVMValueRef k) {
  LLVMValueRef biased = LLVMBuildAdd(g->b, k, LLVMConstInt(g->i32, 127, 0), "");
  return LLVMBuildBitCast(g->b, LLVMBuildShl(g->b, biased, LLVMConstInt(g->i32, 23, 0), ""), g->f32, "");
}

static LLVMValueRef clamp(Cg *g, LLVMValueRef x, double lo, double hi) {
  return intrinsic(g, "llvm.minnum", (LLVMValueRef[]){intrinsic(g, "llvm.maxnum", (LLVMValueRef[]){x, cf32(g, lo)}, 2), cf32(g, hi)}, 2);
}

/* exp(x): 2^n applied in two halves so that results down to the subnormal range and
 * overflow to inf come out right; NaN propagates.  Max error about 1 ulp. */
static LLVMValueRef emit_exp(Cg *g, LLVMValueRef x) {
  LLVMValueRef ni, y = exp_reduced(g, clamp(g, x, -104.0, 89.0), &ni);
  LLVMValueRef h1 = LLVMBuildAShr(g->b, ni, LLVMConstInt(g->i32, 1, 0), "");
  y = b_mul(g, b_mul(g, y, pow2_normal(g, h1)), pow2_normal(g, LLVMBuildSub(g->b, ni, h1, "")));
  return fsel(g, LLVMRealUNO, x, x, x, y);
}

/* e^x where only 1 + e^x and 1 - e^x are used (sigmoid, tanh): exp's result for x >= -86,
 * e^-86 below, where both round to 1 all the same.  There n >= -124, so 2^n is applied as
 * 2^(n-1) 2 (normal, then exact or overflowing to inf as in exp): the same products with
 * four integer instructions fewer than exp's two halves (the LSTM gates of lm_temperature
 * are five of these per hidden unit). */
static LLVMValueRef emit_exp_beside_one(Cg *g, LLVMValueRef x) {
  LLVMValueRef ni, y = exp_reduced(g, clamp(g, x, -86.0, 89.0), &ni);
  y = b_mul(g, b_mul(g, y, pow2_normal(g, LLVMBuildSub(g->b, ni, LLVMConstInt(g->i32, 1, 0), ""))), cf32(g, 2.0));
  return fsel(g, LLVMRealUNO, x, x, x, y);
}

/* expm1 with a Taylor polynomial near 0, where exp(x) - 1 would cancel. */
static LLVMValueRef emit_expm1(Cg *g, LLVMValueRef x) {
  LLVMValueRef p = cf32(g, 1.0 / 120);
  static const double c[] = {1.0 / 24, 1.0 / 6, 0.5, 1.0};
  for (int i = 0; i < 4; i++) p = b_fma(g, p, x, cf32(g, c[i]));
  LLVMValueRef small = b_mul(g, p, x);
  LLVMValueRef big = b_sub(g, emit_exp(g, x), cf32(g, 1.0));
  LLVMValueRef ax = intrinsic(g, "llvm.fabs", &x, 1);
  return fsel(g, LLVMRealOLT, ax, cf32(g, 0.0625), small, big);
}

/* tanh(x) = sign(x) (1 - e^{-2|x|}) / (1 + e^{-2|x|}); odd polynomial for |x| < 0.0625. */
static LLVMValueRef emit_tanh(Cg *g, LLVMValueRef x) {
  LLVMValueRef ax = intrinsic(g, "llvm.fabs", &x, 1);
  LLVMValueRef t = emit_exp_beside_one(g, b_mul(g, ax, cf32(g, -2.0)));
  LLVMValueRef big = b_div(g, b_sub(g, cf32(g, 1.0), t), b_add(g, cf32(g, 1.0), t));
  big = intrinsic(g, "llvm.copysign", (LLVMValueRef[]){big, x}, 2);
  LLVMValueRef x2 = b_mul(g, x, x);
  LLVMValueRef p = cf32(g, -17.0 / 315);
  p = b_fma(g, p, x2, cf32(g, 2.0 / 15));
  p = b_fma(g, p, x2, cf32(g, -1.0 / 3));
  LLVMValueRef small = b_fma(g, x, b_mul(g, p, x2), x);
  return fsel(g, LLVMRealOLT, ax, cf32(g, 0.0625), small, big);
}

static LLVMValueRef emit_log(Cg *g, LLVMValueRef x) { return intrinsic(g, "llvm.log", &x, 1); }

static LLVMValueRef bool_to_f(Cg *g, LLVMValueRef c) { return LLVMBuildUIToFP(g->b, c, g->f32, ""); }
static LLVMValueRef nonzero(Cg *g, LLVMValueRef x) { return LLVMBuildFCmp(g->b, LLVMRealUNE, x, cf32(g, 0), ""); }

/* One elementwise op of ops.def on scalars (torch's semantics, NaN included). */
static LLVMValueRef emit_scalar_op(Cg *g, Op op, const double *attr, LLVMValueRef *a) {
  LLVMValueRef x = a[0], y = a[1], zero = cf32(g, 0), one = cf32(g, 1);
  switch (op) {
  case OP_NEG: return LLVMBuildFNeg(g->b, x, "");
  case OP_EXP: return emit_exp(g, x);
  case OP_LOG: return emit_log(g, x);
  case OP_SQRT: return intrinsic(g, "llvm.sqrt", &x, 1);
  case OP_SIN: return intrinsic(g, "llvm.sin", &x, 1);
  case OP_COS: return intrinsic(g, "llvm.cos", &x, 1);
  case OP_ABS: return intrinsic(g, "llvm.fabs", &x, 1);
  case OP_TANH: return emit_tanh(g, x);
  case OP_SIGMOID: return b_div(g, one, b_add(g, one, emit_exp_beside_one(g, LLVMBuildFNeg(g->b, x, ""))));
  case OP_RELU: return fsel(g, LLVMRealOGT, x, zero, x, fsel(g, LLVMRealUNO, x, x, x, zero));
  case OP_ELU: return fsel(g, LLVMRealOGT, x, zero, x, fsel(g, LLVMRealUNO, x, x, x, b_mul(g, cf32(g, attr[0]), emit_expm1(g, x))));
  case OP_LEAKY_RELU: return fsel(g, LLVMRealOGT, x, zero, x, b_mul(g, cf32(g, attr[0]), x));
  case OP_SOFTPLUS: {
    LLVMValueRef bx = b_mul(g, x, cf32(g, attr[0]));
    LLVMValueRef t = emit_exp(g, bx);
    LLVMValueRef l = fsel(g, LLVMRealOLT, t, cf32(g, 1e-4), b_mul(g, t, b_sub(g, one, b_mul(g, t, cf32(g, 0.5)))),
                          emit_log(g, b_add(g, one, t)));
    return fsel(g, LLVMRealOGT, bx, cf32(g, attr[1]), x, b_div(g, l, cf32(g, attr[0])));
  }
  case OP_NOT: return bool_to_f(g, LLVMBuildFCmp(g->b, LLVMRealOEQ, x, zero, ""));
  case OP_ADD: return b_add(g, x, y);
  case OP_SUB: return b_sub(g, x, y);
  case OP_MUL: return b_mul(g, x, y);
  case OP_DIV: return b_div(g, x, y);
  case OP_POWER: return intrinsic(g, "llvm.pow", a, 2);
  case OP_MAX: return intrinsic(g, "llvm.maximum", a, 2);
  case OP_MIN: return intrinsic(g, "llvm.minimum", a, 2);
  case OP_CMP_EQ: return bool_to_f(g, LLVMBuildFCmp(g->b, LLVMRealOEQ, x, y, ""));
  case OP_CMP_NE: return bool_to_f(g, LLVMBuildFCmp(g->b, LLVMRealUNE, x, y, ""));
  case OP_CMP_LT: return bool_to_f(g, LLVMBuildFCmp(g->b, LLVMRealOLT, x, y, ""));
  case OP_CMP_LE: return bool_to_f(g, LLVMBuildFCmp(g->b, LLVMRealOLE, x, y, ""));
  case OP_CMP_GT: return bool_to_f(g, LLVMBuildFCmp(g->b, LLVMRealOGT, x, y, ""));
  case OP_CMP_GE: return bool_to_f(g, LLVMBuildFCmp(g->b, LLVMRealOGE, x, y, ""));
  case OP_LOGIC_AND: return bool_to_f(g, LLVMBuildAnd(g->b, nonzero(g, x), nonzero(g, y), ""));
  case OP_LOGIC_OR: return bool_to_f(g, LLVMBuildOr(g->b, nonzero(g, x), nonzero(g, y), ""));
  case OP_WHERE: return LLVMBuildSelect(g->b, nonzero(g, x), y, a[2], "");
  default: unreachable("not an elementwise op");
  }
}

/* ---- expressions ---- */

static LLVMValueRef emit(Cg *g, Lx *x);

static LLVMValueRef emit_ibin(Cg *g, Lx *x) {
  LLVMValueRef a = emit(g, x->a[0]), b = emit(g, x->a[1]);
  switch (x->op) {
  case '+': return LLVMBuildNSWAdd(g->b, a, b, "");
  case '-': return LLVMBuildNSWSub(g->b, a, b, "");
  case '*': return LLVMBuildNSWMul(g->b, a, b, "");
  case '/': return LLVMBuildSDiv(g->b, a, b, "");
  case '%': return LLVMBuildSRem(g->b, a, b, "");
  case 'm': return LLVMBuildSelect(g->b, LLVMBuildICmp(g->b, LLVMIntSLT, a, b, ""), a, b, "");
  case 'M': return LLVMBuildSelect(g->b, LLVMBuildICmp(g->b, LLVMIntSGT, a, b, ""), a, b, "");
  case '<': return LLVMBuildICmp(g->b, LLVMIntSLT, a, b, "");
  case '=': return LLVMBuildICmp(g->b, LLVMIntEQ, a, b, "");
  case '&': return LLVMBuildAnd(g->b, a, b, "");
  case 'x': return LLVMBuildXor(g->b, a, b, "");
  case 'r': return LLVMBuildLShr(g->b, a, b, "");
  case 'u': return LLVMBuildMul(g->b, a, b, "");
  case 'w': return LLVMBuildAdd(g->b, a, b, "");
  }
  unreachable("integer op");
}

static LLVMValueRef emit_sym(Cg *g, int64_t k, uint32_t syms) {
  LLVMValueRef v = ci64(g, k);
  for (int i = 0; i < MAX_SYMS; i++)
    if (syms & (1u << i)) v = LLVMBuildNSWMul(g->b, v, g->sym_vals[i], "");
  return v;
}

/* The address of element idx of an array of t at base: one GEP per term of a sum.  With the
 * sum as one index, LLVM turns row * 512 + (128 + j) into an `or` (the bits do not overlap)
 * that its loop vectorizer does not see through: a contiguous row became gathers. */
static LLVMValueRef element_ptr(Cg *g, LLVMTypeRef t, LLVMValueRef base, Lx *idx) {
  if (idx->k == LX_IBIN && idx->op == '+') return element_ptr(g, t, element_ptr(g, t, base, idx->a[0]), idx->a[1]);
  LLVMValueRef i = emit(g, idx);
  return LLVMBuildGEP2(g->b, t, base, &i, 1, "");
}

static LLVMValueRef emit_load(Cg *g, Lx *x) {
  const LBuf *b = &g->le->bufs[x->buf];
  if (b->dtype == DT_I64) {
    LLVMValueRef p = element_ptr(g, g->i64, g->bufs[x->buf], x->a[0]);
    return LLVMBuildSIToFP(g->b, buffer_access(g, LLVMBuildLoad2(g->b, g->i64, p, ""), x->buf), g->f32, "");
  }
  LLVMValueRef p = element_ptr(g, g->f32, g->bufs[x->buf], x->a[0]);
  return buffer_access(g, LLVMBuildLoad2(g->b, g->f32, p, ""), x->buf);
}

static LLVMValueRef emit_uncached(Cg *g, Lx *x) {
  switch (x->k) {
  case LX_F: return cf32(g, x->f[0]);
  case LX_I: return ci64(g, x->c);
  case LX_VAR: return g->vars[x->var];
  case LX_SYM: return emit_sym(g, x->c, x->syms);
  case LX_IBIN: return emit_ibin(g, x);
  case LX_LOAD: return emit_load(g, x);
  case LX_OP: {
    LLVMValueRef a[3] = {0};
    for (int k = 0; k < op_info[x->op].arity; k++) a[k] = emit(g, x->a[k]);
    return emit_scalar_op(g, (Op)x->op, x->f, a);
  }
  case LX_SELECT: {
    LLVMValueRef c = emit(g, x->a[0]), t = emit(g, x->a[1]), f = emit(g, x->a[2]);
    if (LLVMTypeOf(c) == g->f32) c = nonzero(g, c);
    return LLVMBuildSelect(g->b, c, t, f, "");
  }
  case LX_FTOI: return LLVMBuildFPToSI(g->b, emit(g, x->a[0]), g->i64, "");
  case LX_LOADI:
    return buffer_access(g, LLVMBuildLoad2(g->b, g->i64, element_ptr(g, g->i64, g->bufs[x->buf], x->a[0]), ""), x->buf);
  case LX_ACC: return LLVMBuildLoad2(g->b, g->f32, g->accs[x->acc], "");
  case LX_ITOF: return LLVMBuildSIToFP(g->b, emit(g, x->a[0]), g->f32, "");
  }
  unreachable("expression kind");
}

static LLVMValueRef emit(Cg *g, Lx *x) {
  if (x->k == LX_ACC) return emit_uncached(g, x); /* changes within the scope */
  if (x->cg && g->scope_open[x->cg_scope]) return x->cg;
  LLVMValueRef v = emit_uncached(g, x);
  x->cg = v;
  x->cg_scope = g->scope;
  return v;
}

/* ---- statements ---- */

static void emit_stmt(Cg *g, Ls *s);

static int scope_push(Cg *g) {
  int parent = g->scope;
  if (g->nscopes == g->capscopes) {
    g->capscopes = g->capscopes ? 2 * g->capscopes : 256;
    g->scope_open = realloc(g->scope_open, g->capscopes * sizeof *g->scope_open);
    if (!g->scope_open) unreachable("out of memory");
  }
  g->scope = g->nscopes++;
  g->scope_open[g->scope] = true;
  return parent;
}

static void scope_pop(Cg *g, int parent) {
  g->scope_open[g->scope] = false;
  g->scope = parent;
}

/* The trip count of loop s: ceil((hi - lo) / step), hi >= lo. */
static LLVMValueRef trip_of(Cg *g, const Ls *s) {
  LLVMValueRef lo = emit(g, s->lo), hi = emit(g, s->hi), step = emit(g, s->step);
  LLVMValueRef span = LLVMBuildNSWAdd(g->b, LLVMBuildNSWSub(g->b, hi, lo, ""), LLVMBuildNSWSub(g->b, step, ci64(g, 1), ""), "");
  return LLVMBuildSDiv(g->b, span, step, "trip");
}

/* Does expression x evaluate an op whose code is a long chain of dependent instructions (the
 * exp polynomial and a division: exp, tanh, sigmoid, elu, softplus)? */
static bool lx_has_chain_op(Cg *g, Lx *x) {
  if (!x || x->cg_walk == g->walk_gen) return false;
  x->cg_walk = g->walk_gen;
  if (x->k == LX_OP && (x->op == OP_EXP || x->op == OP_TANH || x->op == OP_SIGMOID || x->op == OP_ELU || x->op == OP_SOFTPLUS))
    return true;
  for (int i = 0; i < 3; i++)
    if (lx_has_chain_op(g, x->a[i])) return true;
  return false;
}

static bool ls_has_chain_op(Cg *g, const Ls *s) {
  if ((s->k == LS_STORE || s->k == LS_EVAL || s->k == LS_ACC_UPDATE) && lx_has_chain_op(g, s->val)) return true;
  for (int i = 0; (s->k == LS_BLOCK || s->k == LS_LOOP) && i < s->nbody; i++)
    if (ls_has_chain_op(g, s->body[i])) return true;
  return false;
}

/* The interleave count for vectorizable loop s: 4 or 2, the largest that splits its static
 * trip count into two or more whole rounds of that many vectors, when its statements
 * evaluate a chain op (lx_has_chain_op), so that independent vectors hide the chains'
 * latency (LLVM's cost model leaves such a large body at 1): an LSTM step's gates over 128
 * hidden units, lm logits 1 thread 135.4 -> 133.9 us.  0 (LLVM's choice) otherwise: with a
 * remainder, or forced on every loop, it made mann's and cfr's short rows 3-4 % slower. */
static int chain_interleave(Cg *g, const Ls *s) {
  if (s->scalar || s->lo->k != LX_I || s->hi->k != LX_I || s->step->k != LX_I || s->step->c != 1) return 0;
  int64_t trip = s->hi->c - s->lo->c;
  int ic = trip % (4 * g->floats) == 0 && trip >= 8 * g->floats   ? 4
           : trip % (2 * g->floats) == 0 && trip >= 4 * g->floats ? 2
                                                                  : 0;
  g->walk_gen++;
  return ic && ls_has_chain_op(g, s) ? ic : 0;
}

/* Loop hints on the loop whose back edge is `br`: llvm.loop.vectorize.enable false when not
 * `vectorize`, llvm.loop.unroll.disable when not `unroll`, llvm.loop.interleave.count when
 * `interleave` (a self-referencing llvm.loop ID, built through a temporary node). */
static void loop_hints(Cg *g, LLVMValueRef br, bool vectorize, bool unroll, int interleave) {
  if (vectorize && unroll && !interleave) return;
  LLVMMetadataRef tmp = LLVMTemporaryMDNode(g->ctx, NULL, 0), ops[4] = {tmp};
  size_t n = 1;
  if (interleave) {
    LLVMMetadataRef v[2] = {LLVMMDStringInContext2(g->ctx, "llvm.loop.interleave.count", 26),
                            LLVMValueAsMetadata(LLVMConstInt(g->i32, (unsigned long long)interleave, 0))};
    ops[n++] = LLVMMDNodeInContext2(g->ctx, v, 2);
  }
  if (!vectorize) {
    LLVMMetadataRef v[2] = {LLVMMDStringInContext2(g->ctx, "llvm.loop.vectorize.enable", 26),
                            LLVMValueAsMetadata(LLVMConstInt(LLVMInt1TypeInContext(g->ctx), 0, 0))};
    ops[n++] = LLVMMDNodeInContext2(g->ctx, v, 2);
  }
  if (!unroll) {
    LLVMMetadataRef u = LLVMMDStringInContext2(g->ctx, "llvm.loop.unroll.disable", 24);
    ops[n++] = LLVMMDNodeInContext2(g->ctx, &u, 1);
  }
  LLVMMetadataRef id = LLVMMDNodeInContext2(g->ctx, ops, n);
  LLVMMetadataReplaceAllUsesWith(tmp, id);
  LLVMSetMetadata(br, LLVMGetMDKindIDInContext(g->ctx, "llvm.loop", 9), LLVMMetadataAsValue(g->ctx, id));
}

/* for (i = lo; i < hi; i += step) body(g, s, i) */
static void counted_loop(Cg *g, LLVMValueRef lo, LLVMValueRef hi, LLVMValueRef step,
                         void (*body)(Cg *, const Ls *, LLVMValueRef), const Ls *s) {
  LLVMBasicBlockRef pre = LLVMGetInsertBlock(g->b);
  LLVMBasicBlockRef head = LLVMAppendBasicBlockInContext(g->ctx, g->fn, "loop");
  LLVMBasicBlockRef blk = LLVMAppendBasicBlockInContext(g->ctx, g->fn, "body");
  LLVMBasicBlockRef exit = LLVMAppendBasicBlockInContext(g->ctx, g->fn, "exit");
  LLVMBuildBr(g->b, head);
  LLVMPositionBuilderAtEnd(g->b, head);
  LLVMValueRef i = LLVMBuildPhi(g->b, g->i64, "i");
  LLVMBuildCondBr(g->b, LLVMBuildICmp(g->b, LLVMIntSLT, i, hi, ""), blk, exit);
  LLVMPositionBuilderAtEnd(g->b, blk);
  body(g, s, i);
  LLVMValueRef next = LLVMBuildNSWAdd(g->b, i, step, "");
  LLVMBasicBlockRef latch = LLVMGetInsertBlock(g->b);
  LLVMValueRef back = LLVMBuildBr(g->b, head);
  if (s->k == LS_LOOP) loop_hints(g, back, !s->scalar, !s->rolled, chain_interleave(g, s));
  LLVMAddIncoming(i, (LLVMValueRef[]){lo, next}, (LLVMBasicBlockRef[]){pre, latch}, 2);
  LLVMPositionBuilderAtEnd(g->b, exit);
}

static void emit_body(Cg *g, const Ls *s) {
  int parent = scope_push(g);
  for (int k = 0; k < s->nbody; k++) emit_stmt(g, s->body[k]);
  scope_pop(g, parent);
}

static void loop_body(Cg *g, const Ls *s, LLVMValueRef i) {
  g->vars[s->var] = i;
  emit_body(g, s);
}

/* One iteration `it` of the collapsed pair (s, its only statement g->par_inner): the outer
 * variable steps every trip(inner) iterations, the inner one cycles. */
static void collapsed_body(Cg *g, const Ls *s, LLVMValueRef it) {
  const Ls *in = g->par_inner;
  LLVMValueRef q = LLVMBuildSDiv(g->b, it, g->par_trip_inner, ""), r = LLVMBuildSRem(g->b, it, g->par_trip_inner, "");
  g->vars[s->var] = LLVMBuildNSWAdd(g->b, emit(g, s->lo), LLVMBuildNSWMul(g->b, q, emit(g, s->step), ""), "");
  g->vars[in->var] = LLVMBuildNSWAdd(g->b, emit(g, in->lo), LLVMBuildNSWMul(g->b, r, emit(g, in->step), ""), "");
  emit_body(g, in);
}

/* acc op v for a reduction accumulator: a sum, or a maximum that propagates NaN the way
 * torch's max kernels do (`v > acc || isnan(v) ? v : acc`; an accumulated NaN stays).  Two
 * compares and selects vectorize to vmaxps-like code; llvm.maximum, which also orders -0
 * below +0, becomes a dozen scalar instructions per element on x86. */
static LLVMValueRef reduce_op(Cg *g, Op rop, LLVMValueRef acc, LLVMValueRef v) {
  if (rop == OP_SUM) return b_add(g, acc, v);
  LLVMValueRef larger = fsel(g, LLVMRealOGT, v, acc, v, acc);
  return fsel(g, LLVMRealUNO, v, v, v, larger);
}

static LLVMValueRef reduce_identity(Cg *g, Op rop) { return cf32(g, rop == OP_SUM ? 0.0 : -INFINITY); }

/* An alloca in the function's entry block (where mem2reg promotes it to registers). */
static LLVMValueRef entry_alloca(Cg *g, LLVMTypeRef type, const char *name) {
  LLVMBuilderRef b = LLVMCreateBuilderInContext(g->ctx);
  LLVMBasicBlockRef entry = LLVMGetEntryBasicBlock(g->fn);
  LLVMValueRef first = LLVMGetFirstInstruction(entry);
  if (first) LLVMPositionBuilderBefore(b, first);
  else LLVMPositionBuilderAtEnd(b, entry);
  LLVMValueRef a = LLVMBuildAlloca(b, type, name);
  LLVMDisposeBuilder(b);
  return a;
}

static void lane_body(Cg *g, const Ls *s, LLVMValueRef i) {
  const Ls *u = g->lane_update;
  for (int j = 0; j < REDUCE_LANES; j++) {
    g->vars[s->var] = LLVMBuildNSWAdd(g->b, i, ci64(g, j), "");
    int parent = scope_push(g);
    LLVMValueRef cur = LLVMBuildLoad2(g->b, g->f32, g->lanes[j], "");
    LLVMBuildStore(g->b, reduce_op(g, u->rop, cur, emit(g, u->val)), g->lanes[j]);
    scope_pop(g, parent);
  }
}

static void tail_body(Cg *g, const Ls *s, LLVMValueRef i) {
  const Ls *u = g->lane_update;
  g->vars[s->var] = i;
  int parent = scope_push(g);
  LLVMValueRef cur = LLVMBuildLoad2(g->b, g->f32, g->lanes[REDUCE_LANES], "");
  LLVMBuildStore(g->b, reduce_op(g, u->rop, cur, emit(g, u->val)), g->lanes[REDUCE_LANES]);
  scope_pop(g, parent);
}

static LLVMValueRef lane_blocks_as_vectors(Cg *g, const Ls *s, LLVMValueRef lo, LLVMValueRef end);

/* A reduction loop `for i in [lo, hi) { acc op= v(i) }` in a fixed order that vectorizes
 * without reassociating anything behind our back: lane j accumulates the iterations
 * lo + j, lo + j + LANES, ... of the whole blocks of LANES (independent chains, which the
 * SLP vectorizer turns into vector operations), the lanes combine pairwise, the remaining
 * iterations accumulate in order, and acc op= (lanes op rest).  The order depends only on
 * the trip count: the same for every thread count, for JIT and AOT. */
static void emit_lane_reduction(Cg *g, Ls *s) {
  const Ls *u = s->body[0];
  LLVMValueRef lo = emit(g, s->lo), hi = emit(g, s->hi);
  LLVMValueRef n = LLVMBuildNSWSub(g->b, hi, lo, "");
  n = LLVMBuildSelect(g->b, LLVMBuildICmp(g->b, LLVMIntSLT, n, ci64(g, 0), ""), ci64(g, 0), n, "");
  LLVMValueRef blocks_end = LLVMBuildNSWAdd(g->b, lo, LLVMBuildAnd(g->b, n, ci64(g, ~(int64_t)(REDUCE_LANES - 1)), ""), "");
  LLVMValueRef end = LLVMBuildNSWAdd(g->b, lo, n, "");
  for (int j = 0; j <= REDUCE_LANES; j++) {
    if (!g->lanes[j]) g->lanes[j] = entry_alloca(g, g->f32, "lane");
    LLVMBuildStore(g->b, reduce_identity(g, u->rop), g->lanes[j]);
  }
  g->lane_update = u;
  LLVMValueRef lanes = lane_blocks_as_vectors(g, s, lo, blocks_end);
  if (!lanes) {
    counted_loop(g, lo, blocks_end, ci64(g, REDUCE_LANES), lane_body, s);
    LLVMValueRef v[REDUCE_LANES];
    for (int j = 0; j < REDUCE_LANES; j++) v[j] = LLVMBuildLoad2(g->b, g->f32, g->lanes[j], "");
    for (int w = REDUCE_LANES / 2; w >= 1; w /= 2)
      for (int j = 0; j < w; j++) v[j] = reduce_op(g, u->rop, v[j], v[j + w]);
    lanes = v[0];
  }
  counted_loop(g, blocks_end, end, ci64(g, 1), tail_body, s);
  LLVMValueRef rest = LLVMBuildLoad2(g->b, g->f32, g->lanes[REDUCE_LANES], "");
  LLVMValueRef cur = LLVMBuildLoad2(g->b, g->f32, g->accs[u->acc], "");
  LLVMBuildStore(g->b, reduce_op(g, u->rop, cur, reduce_op(g, u->rop, lanes, rest)), g->accs[u->acc]);
}

/* ---- a short row as vectors ----
 * A loop marked vector_row (lower.c: a short static innermost loop, such as the output
 * columns of a pooling window or a row of Winograd tiles) whose body only stores is emitted as a few vectors, the last one masked, instead of a loop: LLVM unrolls
 * such a short row and then gathers its stride-2 loads one element at a time.  Every
 * expression in the row is either uniform (it does not depend on the row's variable:
 * computed once, as a scalar) or varying; a varying integer must be affine in the variable
 * (value at the vector's first column + stride * lane), a varying load must read
 * contiguous (stride 1) or every other (stride 2) element, or interleave two contiguous halves;
 * a varying store writes contiguous elements, an even/odd pair of columns (interleaved), or
 * elements a fixed stride apart (lane by lane).
 * A row that does not qualify is emitted as a plain loop. */

#define VEC_DEPTH 48   /* deeper expressions are not looked into (not vectorized) */
#define VEC_MEMO 128

typedef struct VecRow VecRow;
struct VecRow {
  int var, lanes;
  LLVMTypeRef vt, it;            /* <lanes x float>, <lanes x i64> */
  int64_t valid;                 /* columns in the current vector */
  LLVMValueRef mask;             /* lane < valid, or NULL when every lane is valid */
  struct { const Lx *x; LLVMValueRef v; } memo[VEC_MEMO];
  int nmemo;
};

static bool varies(const Lx *x, int var, int depth) {
  if (!x) return false;
  if (depth > VEC_DEPTH) return true;
  if (x->k == LX_VAR) return x->var == var;
  return varies(x->a[0], var, depth + 1) || varies(x->a[1], var, depth + 1) || varies(x->a[2], var, depth + 1);
}

/* x = x(var = 0) + *a * (var / 2) + *b * (var % 2) for integer x (the column of a pixel
 * shuffle's or a 2x upsampling's input), or false. */
static bool halves_of(const Lx *x, int var, int64_t *a, int64_t *b, int depth) {
  int64_t a0, b0, a1, b1;
  if (!varies(x, var, depth)) {
    *a = *b = 0;
    return true;
  }
  if (x->k == LX_VAR) { /* var = 2 (var / 2) + var % 2 */
    *a = 2;
    *b = 1;
    return true;
  }
  if (x->k != LX_IBIN || depth > VEC_DEPTH) return false;
  if ((x->op == '/' || x->op == '%') && x->a[0]->k == LX_VAR && x->a[0]->var == var && x->a[1]->k == LX_I && x->a[1]->c == 2) {
    *a = x->op == '/';
    *b = x->op == '%';
    return true;
  }
  if (x->op == '+' || x->op == '-') {
    if (!halves_of(x->a[0], var, &a0, &b0, depth + 1) || !halves_of(x->a[1], var, &a1, &b1, depth + 1)) return false;
    *a = x->op == '+' ? a0 + a1 : a0 - a1;
    *b = x->op == '+' ? b0 + b1 : b0 - b1;
    return true;
  }
  if (x->op == '*' && (x->a[0]->k == LX_I || x->a[1]->k == LX_I)) {
    const Lx *c = x->a[0]->k == LX_I ? x->a[0] : x->a[1], *o = c == x->a[0] ? x->a[1] : x->a[0];
    if (!halves_of(o, var, &a0, &b0, depth + 1)) return false;
    *a = c->c * a0;
    *b = c->c * b0;
    return true;
  }
  return false;
}

/* x = x(var = 0) + *stride * var for integer x, or false: halves (2 stride, stride). */
static bool stride_of(const Lx *x, int var, int64_t *stride, int depth) {
  int64_t a, b;
  if (!halves_of(x, var, &a, &b, depth) || a != 2 * b) return false;
  *stride = b;
  return true;
}

/* A load the row can make as vectors: contiguous or every other element (stride 1 or 2), or
 * interleaved halves (index + var / 2 for even columns, + offset for odd ones). */
static bool vec_load_ok(const Lx *idx, int var) {
  int64_t st, a, b;
  if (stride_of(idx, var, &st, 0)) return st == 1 || st == 2;
  return halves_of(idx, var, &a, &b, 0) && a == 1;
}

static bool is_condition(const Lx *c) {
  return c->k == LX_IBIN && (c->op == '<' || c->op == '=' || c->op == '&');
}

static bool vec_op(Op op) {
  switch (op) {
  case OP_NEG: case OP_ABS: case OP_SQRT: case OP_RELU: case OP_LEAKY_RELU:
  case OP_ADD: case OP_SUB: case OP_MUL: case OP_DIV: case OP_MAX: case OP_MIN: case OP_WHERE:
    return true;
  default: return false;
  }
}

static bool vec_value_ok(const Cg *g, const Lx *x, int var, int depth);

static bool vec_cond_ok(const Cg *g, const Lx *c, int var, int depth) {
  int64_t st;
  if (!varies(c, var, depth)) return true;
  if (!is_condition(c)) return vec_value_ok(g, c, var, depth);
  if (c->op == '&') return vec_cond_ok(g, c->a[0], var, depth + 1) && vec_cond_ok(g, c->a[1], var, depth + 1);
  return stride_of(c->a[0], var, &st, depth + 1) && stride_of(c->a[1], var, &st, depth + 1);
}

static bool vec_value_ok(const Cg *g, const Lx *x, int var, int depth) {
  int64_t st;
  if (!varies(x, var, depth)) return true;
  if (depth > VEC_DEPTH) return false;
  switch (x->k) {
  case LX_LOAD: return g->le->bufs[x->buf].dtype == DT_F32 && vec_load_ok(x->a[0], var);
  case LX_ITOF: return stride_of(x->a[0], var, &st, depth + 1);
  case LX_SELECT:
    return vec_cond_ok(g, x->a[0], var, depth + 1) && vec_value_ok(g, x->a[1], var, depth + 1) &&
           vec_value_ok(g, x->a[2], var, depth + 1);
  case LX_OP:
    for (int k = 0; k < 3; k++)
      if (x->a[k] && !vec_value_ok(g, x->a[k], var, depth + 1)) return false;
    return vec_op((Op)x->op);
  default: return false;
  }
}

/* Does store b write the element after store a's (a pair of columns of a stride-2 row)? */
static bool pairs_with(const Ls *a, const Ls *b) {
  const Lx *x = b->idx;
  return b->k == LS_STORE && b->buf == a->buf && x->k == LX_IBIN && x->op == '+' && x->a[0] == a->idx &&
         x->a[1]->k == LX_I && x->a[1]->c == 1;
}

/* Is store i of row s the even column of an interleaved pair (stride 2, the next store
 * writing the element after it)? */
static bool pair_at(const Ls *s, int i, int64_t stride) {
  return stride == 2 && i + 1 < s->nbody && pairs_with(s->body[i], s->body[i + 1]);
}

/* Does x load buffer `buf` at an index other than `idx`?  (Vectors would reorder such a read
 * and the row's store: the one lane reads before another lane's store.) */
static bool reads_other(const Lx *x, int buf, const Lx *idx, int depth) {
  if (!x) return false;
  if (depth > VEC_DEPTH) return true;
  if ((x->k == LX_LOAD || x->k == LX_LOADI) && x->buf == buf && x->a[0] != idx) return true;
  return reads_other(x->a[0], buf, idx, depth + 1) || reads_other(x->a[1], buf, idx, depth + 1) ||
         reads_other(x->a[2], buf, idx, depth + 1);
}

/* Can loop s run as vectors, and with how many lanes (a power of two >= 4 no wider than the
 * host's, the narrowest that holds the row when it fits in one)? */
static int vector_row_lanes(const Cg *g, const Ls *s) {
  if (!s->vector_row || s == g->par || s->lo->k != LX_I || s->lo->c != 0 || s->hi->k != LX_I || s->step->k != LX_I ||
      s->step->c != 1)
    return 0; /* (every vector then starts at an even column: halves_of loads) */
  int host, regs;
  target_host_simd(&host, &regs);
  int64_t n = s->hi->c - s->lo->c;
  if (host < 4 || n < 2 || n > 4 * (int64_t)host) return 0;
  for (int i = 0; i < s->nbody; i++) {
    const Ls *b = s->body[i];
    int64_t st;
    if (b->k != LS_STORE || !stride_of(b->idx, s->var, &st, 0) || !vec_value_ok(g, b->val, s->var, 0)) return 0;
    if (pair_at(s, i, st)) { /* an even and an odd column: stored interleaved */
      if (!vec_value_ok(g, s->body[++i]->val, s->var, 0)) return 0;
    } else if (st == 0) {
      return 0; /* every column to one element: the last one stays */
    }
  }
  for (int i = 0; i < s->nbody; i++) /* a column read from a buffer the row writes must be the one written */
    for (int j = 0; j < s->nbody; j++)
      if (reads_other(s->body[j]->val, s->body[i]->buf, s->body[i]->idx, 0)) return 0;
  int lanes = host;
  while (lanes > 4 && lanes / 2 >= n) lanes /= 2;
  return lanes;
}

static LLVMValueRef lane_constants(Cg *g, LLVMTypeRef elem, int lanes, int64_t mul, int64_t add) {
  LLVMValueRef e[32];
  for (int l = 0; l < lanes; l++) e[l] = LLVMConstInt(elem, (unsigned long long)(mul * l + add), 1);
  return LLVMConstVector(e, (unsigned)lanes);
}

/* The shuffle mask that interleaves lanes [from, from + lanes / 2) of two vectors a, b:
 * a[from], b[from], a[from + 1], b[from + 1], ... */
static LLVMValueRef interleave_lanes(Cg *g, int lanes, int from) {
  LLVMValueRef e[32];
  for (int l = 0; l < lanes; l++) e[l] = LLVMConstInt(g->i32, (unsigned long long)(from + l / 2 + (l % 2) * lanes), 0);
  return LLVMConstVector(e, (unsigned)lanes);
}

/* <lanes x i1>: lane * mul + add < limit */
static LLVMValueRef lane_mask(Cg *g, int lanes, int64_t mul, int64_t add, int64_t limit) {
  LLVMValueRef e[32];
  LLVMTypeRef i1 = LLVMInt1TypeInContext(g->ctx);
  for (int l = 0; l < lanes; l++) e[l] = LLVMConstInt(i1, mul * l + add < limit, 0);
  return LLVMConstVector(e, (unsigned)lanes);
}

static LLVMValueRef masked_mem(Cg *g, const char *name, LLVMTypeRef vt, LLVMValueRef *args, int n) {
  unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
  LLVMTypeRef ty[2] = {vt, g->ptr};
  return LLVMBuildCall2(g->b, LLVMIntrinsicGetType(g->ctx, id, ty, 2), LLVMGetIntrinsicDeclaration(g->mod, id, ty, 2), args, n, "");
}

/* A vector from p (only the lanes of mask, when given: a masked lane is not read). */
static LLVMValueRef load_vector(Cg *g, LLVMTypeRef vt, LLVMValueRef p, LLVMValueRef mask, int buf) {
  if (!mask) {
    LLVMValueRef v = LLVMBuildLoad2(g->b, vt, p, "");
    LLVMSetAlignment(v, 4);
    return buffer_access(g, v, buf);
  }
  LLVMValueRef args[] = {p, LLVMConstInt(g->i32, 4, 0), mask, LLVMConstNull(vt)};
  return buffer_access(g, masked_mem(g, "llvm.masked.load", vt, args, 4), buf);
}

/* Vector v of type vt to p (only the lanes of mask, when given); buf: its buffer, for the
 * alias scopes, or -1. */
static void store_vector(Cg *g, LLVMTypeRef vt, LLVMValueRef v, LLVMValueRef p, LLVMValueRef mask, int buf) {
  if (mask) {
    LLVMValueRef args[] = {v, p, LLVMConstInt(g->i32, 4, 0), mask};
    buffer_access(g, masked_mem(g, "llvm.masked.store", vt, args, 4), buf);
  } else {
    LLVMSetAlignment(buffer_access(g, LLVMBuildStore(g->b, v, p), buf), 4);
  }
}

static LLVMValueRef vec_splat(Cg *g, VecRow *r, LLVMValueRef v) {
  return splat(g, LLVMTypeOf(v) == g->f32 ? r->vt : r->it, v);
}

/* A varying integer: its value at the first column, plus stride * lane. */
static LLVMValueRef vec_int(Cg *g, VecRow *r, Lx *x) {
  int64_t st = 0;
  stride_of(x, r->var, &st, 0);
  LLVMValueRef base = vec_splat(g, r, emit(g, x));
  return st ? LLVMBuildAdd(g->b, base, lane_constants(g, g->i64, r->lanes, st, 0), "") : base;
}

static LLVMValueRef vec_value(Cg *g, VecRow *r, Lx *x);

static LLVMValueRef vec_cond(Cg *g, VecRow *r, Lx *c) {
  if (!is_condition(c)) return LLVMBuildFCmp(g->b, LLVMRealUNE, vec_value(g, r, c), LLVMConstNull(r->vt), "");
  if (c->op == '&') return LLVMBuildAnd(g->b, vec_cond(g, r, c->a[0]), vec_cond(g, r, c->a[1]), "");
  return LLVMBuildICmp(g->b, c->op == '<' ? LLVMIntSLT : LLVMIntEQ, vec_int(g, r, c->a[0]), vec_int(g, r, c->a[1]), "");
}

static LLVMValueRef vec_value_uncached(Cg *g, VecRow *r, Lx *x) {
  if (!varies(x, r->var, 0)) return vec_splat(g, r, emit(g, x));
  switch (x->k) {
  case LX_LOAD: {
    int64_t st = 0, a, b;
    LLVMValueRef p = gep_f32(g, g->bufs[x->buf], emit(g, x->a[0]));
    if (!stride_of(x->a[0], r->var, &st, 0)) { /* halves: even columns from p, odd ones from p + b */
      halves_of(x->a[0], r->var, &a, &b, 0);
      LLVMValueRef even = load_vector(g, r->vt, p, lane_mask(g, r->lanes, 1, 0, (r->valid + 1) / 2), x->buf);
      LLVMValueRef odd = load_vector(g, r->vt, gep_f32(g, p, ci64(g, b)), lane_mask(g, r->lanes, 1, 0, r->valid / 2), x->buf);
      return LLVMBuildShuffleVector(g->b, even, odd, interleave_lanes(g, r->lanes, 0), "");
    }
    if (st == 1) return load_vector(g, r->vt, p, r->mask, x->buf);
    /* every other element: two vectors, then the even lanes of both; a lane past the last
       element the row reads is masked, so nothing beyond it is touched */
    int64_t span = 2 * (r->valid - 1) + 1;
    LLVMValueRef lo = load_vector(g, r->vt, p, lane_mask(g, r->lanes, 1, 0, span), x->buf);
    LLVMValueRef hi = load_vector(g, r->vt, gep_f32(g, p, ci64(g, r->lanes)), lane_mask(g, r->lanes, 1, r->lanes, span), x->buf);
    return LLVMBuildShuffleVector(g->b, lo, hi, lane_constants(g, g->i32, r->lanes, 2, 0), "");
  }
  case LX_ITOF: return LLVMBuildSIToFP(g->b, vec_int(g, r, x->a[0]), r->vt, "");
  case LX_SELECT: return LLVMBuildSelect(g->b, vec_cond(g, r, x->a[0]), vec_value(g, r, x->a[1]), vec_value(g, r, x->a[2]), "");
  case LX_OP: {
    LLVMValueRef a[3] = {0};
    for (int k = 0; k < 3; k++)
      if (x->a[k]) a[k] = vec_value(g, r, x->a[k]);
    g->vec_lanes = r->lanes;
    LLVMValueRef v = emit_scalar_op(g, (Op)x->op, x->f, a);
    g->vec_lanes = 0;
    return v;
  }
  default: unreachable("not a vector row expression");
  }
}

static LLVMValueRef vec_value(Cg *g, VecRow *r, Lx *x) {
  for (int i = 0; i < r->nmemo; i++)
    if (r->memo[i].x == x) return r->memo[i].v;
  LLVMValueRef v = vec_value_uncached(g, r, x);
  if (r->nmemo < VEC_MEMO) r->memo[r->nmemo++] = (typeof(r->memo[0])){x, v};
  return v;
}

static void emit_vector_row(Cg *g, const Ls *s, int lanes) {
  VecRow r = {.var = s->var, .lanes = lanes, .vt = LLVMVectorType(g->f32, lanes), .it = LLVMVectorType(g->i64, lanes)};
  for (int64_t j0 = s->lo->c; j0 < s->hi->c; j0 += lanes) {
    int parent = scope_push(g);
    g->vars[s->var] = ci64(g, j0);
    r.valid = s->hi->c - j0 < lanes ? s->hi->c - j0 : lanes;
    r.mask = r.valid < lanes ? lane_mask(g, lanes, 1, 0, r.valid) : NULL;
    r.nmemo = 0;
    for (int i = 0; i < s->nbody; i++) {
      const Ls *b = s->body[i];
      LLVMValueRef v = vec_value(g, &r, b->val), p = gep_f32(g, g->bufs[b->buf], emit(g, b->idx));
      int64_t st = 1;
      stride_of(b->idx, s->var, &st, 0);
      if (st == 1) {
        store_vector(g, r.vt, v, p, r.mask, b->buf);
        continue;
      }
      if (!pair_at(s, i, st)) { /* lane by lane */
        for (int64_t l = 0; l < r.valid; l++)
          LLVMSetAlignment(buffer_access(g, LLVMBuildStore(g->b, LLVMBuildExtractElement(g->b, v, LLVMConstInt(g->i32, (unsigned long long)l, 0), ""),
                                                           gep_f32(g, p, ci64(g, l * st))), b->buf), 4);
        continue;
      }
      /* a pair: lanes (even[0], odd[0], even[1], odd[1], ...) in two vectors */
      LLVMValueRef odd = vec_value(g, &r, s->body[++i]->val);
      int64_t n = 2 * r.valid;
      store_vector(g, r.vt, LLVMBuildShuffleVector(g->b, v, odd, interleave_lanes(g, lanes, 0), ""), p,
                n < lanes ? lane_mask(g, lanes, 1, 0, n) : NULL, b->buf);
      if (n > lanes)
        store_vector(g, r.vt, LLVMBuildShuffleVector(g->b, v, odd, interleave_lanes(g, lanes, lanes / 2), ""),
                  gep_f32(g, p, ci64(g, lanes)), n < 2 * lanes ? lane_mask(g, lanes, 1, lanes, n) : NULL, b->buf);
    }
    scope_pop(g, parent);
  }
}

static void vector_lane_body(Cg *g, const Ls *s, LLVMValueRef i) {
  VecRow *r = g->lane_row;
  g->vars[s->var] = i;
  int parent = scope_push(g);
  r->nmemo = 0;
  LLVMValueRef v = vec_value(g, r, g->lane_update->val);
  LLVMValueRef acc = LLVMBuildLoad2(g->b, r->vt, g->lane_vector, "");
  LLVMBuildStore(g->b, reduce_op(g, g->lane_update->rop, acc, v), g->lane_vector);
  scope_pop(g, parent);
}

/* The whole blocks [lo, end) of a lane reduction (emit_lane_reduction) as vectors, when its
 * value vectorizes as a vector row's does: lane j of one vector accumulator is lane j there,
 * and shuffles combine the lanes pairwise in the same order, so the result is the same.  The
 * SLP vectorizer made two-lane pieces of a maximum's compares and selects (softmax's max over
 * 84 logits ran as 42 of them).  Returns the combined lanes, or NULL (not vectorizable). */
static LLVMValueRef lane_blocks_as_vectors(Cg *g, const Ls *s, LLVMValueRef lo, LLVMValueRef end) {
  const Ls *u = g->lane_update;
  if (!vec_value_ok(g, u->val, s->var, 0)) return NULL;
  VecRow r = {.var = s->var, .lanes = REDUCE_LANES, .vt = LLVMVectorType(g->f32, REDUCE_LANES),
              .it = LLVMVectorType(g->i64, REDUCE_LANES), .valid = REDUCE_LANES};
  g->lane_vector = entry_alloca(g, r.vt, "lanes");
  g->vec_lanes = REDUCE_LANES;
  LLVMBuildStore(g->b, reduce_identity(g, u->rop), g->lane_vector);
  g->vec_lanes = 0;
  g->lane_row = &r;
  counted_loop(g, lo, end, ci64(g, REDUCE_LANES), vector_lane_body, s);
  g->lane_row = NULL;
  LLVMValueRef v = LLVMBuildLoad2(g->b, r.vt, g->lane_vector, "");
  for (int w = REDUCE_LANES / 2; w >= 1; w /= 2) { /* lanes [0, w) op= lanes [w, 2w) */
    LLVMValueRef upper = LLVMBuildShuffleVector(g->b, v, LLVMGetUndef(r.vt), lane_constants(g, g->i32, REDUCE_LANES, 1, w), "");
    v = reduce_op(g, u->rop, v, upper);
  }
  return LLVMBuildExtractElement(g->b, v, LLVMConstInt(g->i32, 0, 0), "");
}

/* Is s an innermost loop that only accumulates, by unit steps (emit_lane_reduction)? */
static bool lane_reducible(const Cg *g, const Ls *s) {
  return s != g->par && s->nbody == 1 && s->body[0]->k == LS_ACC_UPDATE && s->step->k == LX_I && s->step->c == 1;
}

static void emit_loop(Cg *g, Ls *s) {
  int lanes = vector_row_lanes(g, s);
  if (lanes) {
    emit_vector_row(g, s, lanes);
    return;
  }
  if (lane_reducible(g, s)) {
    emit_lane_reduction(g, s);
    return;
  }
  LLVMValueRef lo = emit(g, s->lo), hi = emit(g, s->hi), step = emit(g, s->step);
  if (s != g->par) {
    counted_loop(g, lo, hi, step, loop_body, s);
  } else if (g->par_inner) { /* this thread's iterations [par_lo, par_hi) of the pair */
    g->par_trip_inner = trip_of(g, g->par_inner);
    counted_loop(g, g->par_lo, g->par_hi, ci64(g, 1), collapsed_body, s);
  } else { /* this thread's iterations [par_lo, par_hi) */
    LLVMValueRef end = LLVMBuildNSWAdd(g->b, lo, LLVMBuildNSWMul(g->b, g->par_hi, step, ""), "");
    hi = LLVMBuildSelect(g->b, LLVMBuildICmp(g->b, LLVMIntSLT, end, hi, ""), end, hi, "");
    lo = LLVMBuildNSWAdd(g->b, lo, LLVMBuildNSWMul(g->b, g->par_lo, step, ""), "");
    counted_loop(g, lo, hi, step, loop_body, s);
  }
}

static void emit_gemm(Cg *g, Ls *s) {
  LLVMValueRef m = emit(g, s->g.m), n = emit(g, s->g.n), k = emit(g, s->g.k);
  LLVMValueRef a = LLVMBuildGEP2(g->b, g->f32, g->bufs[s->g.a], (LLVMValueRef[]){emit(g, s->g.a_off)}, 1, "");
  LLVMValueRef b = LLVMBuildGEP2(g->b, g->f32, g->bufs[s->g.b], (LLVMValueRef[]){emit(g, s->g.b_off)}, 1, "");
  LLVMValueRef c = LLVMBuildGEP2(g->b, g->f32, g->bufs[s->g.c], (LLVMValueRef[]){emit(g, s->g.c_off)}, 1, "");
  LLVMValueRef lda = emit(g, s->g.lda), ldb = emit(g, s->g.ldb), ldc = emit(g, s->g.ldc);
  LLVMTypeRef i32 = g->i32, p = g->ptr, f = g->f32;
  LLVMTypeRef pt[] = {i32, i32, i32, i32, i32, i32, f, p, i32, p, i32, f, p, i32};
#define I32(v) LLVMBuildTrunc(g->b, v, g->i32, "")
  LLVMValueRef args[] = {
    LLVMConstInt(i32, 101, 0) /* CblasRowMajor */, LLVMConstInt(i32, s->g.ta ? 112 : 111, 0),
    LLVMConstInt(i32, s->g.tb ? 112 : 111, 0), I32(m), I32(n), I32(k), cf32(g, 1.0), a, I32(lda),
    b, I32(ldb), cf32(g, 0.0), c, I32(ldc)};
#undef I32
  call_extern(g, "nnc_rt_sgemm", g->voidt, pt, 14, args);
}

/* ---- direct convolution (LS_CONV) ----
 * Output rows are cut into vectors of `lanes` columns (the last one of a row masked); the
 * vectors of all rows are numbered v = oh * chunks + chunk.  A tile of tile_co output channels
 * x tile_vec vectors stays in registers while one loop over (input channel, tap) pairs, with
 * each pair's input offset from a constant table, multiply-adds a broadcast weight into each:
 * per pair, tile_vec loads of the padded image and tile_co weight broadcasts feed
 * tile_co * tile_vec vector FMAs.
 * Each output is a sum in one fixed order (channels, then taps), whatever the tiling.  The
 * tiles of output channels run through nnc_rt_parallel_for: split among threads when the
 * kernel's own loop over images is not (one image), on the image's thread when it is. */

typedef struct ConvCg {
  const Ls *s;
  LLVMTypeRef vt;               /* <lanes x float> */
  LLVMValueRef x, w, y;         /* base pointers with their offsets applied (of the current
                                   item of a batch) */
  LLVMValueRef x0, w0, y0;      /* a batch's first item's */
  LLVMValueRef count;           /* output channels (cout, or the run-time rows) */
  LLVMValueRef xtab;            /* i64[cin * ntaps]: input offset of (channel, tap) */
  int64_t chunks;               /* vectors per output row */
  LLVMValueRef co0;             /* the current tile's first output channel */
  int nco;                      /* and its number of output channels */
  LLVMValueRef v_lo, v_hi, tail; /* with cv.parts: the current part's whole vector tiles
                                    [v_lo, v_hi), and whether it has the partial one */
  LLVMValueRef add, add_ld;     /* with cv.add: D's first row, and its row stride */
} ConvCg;

/* The vector type of vector v0 + j of a tile.  A one-row image's last vector, when the tile's
 * origin is static (the partial tile after the whole ones) and at most half its lanes are
 * used, takes the fewest lanes (4 or more) that hold them: a 512-bit FMA costs two 256-bit
 * ones on Zen 4, so lm logits' output projection, 84 = 5 x 16 + 4 columns, multiplies 5.25
 * vectors a row instead of 6 (-0.8 us at its FMA rate).  *mask becomes that vector's mask, or
 * NULL when its lanes are all used. */
static LLVMTypeRef narrow_tail(Cg *g, const ConvCg *c, LLVMValueRef v0, int j, LLVMValueRef *mask) {
  const Ls *s = c->s;
  int lanes = s->cv.lanes;
  if (s->cv.oh != 1 || !LLVMIsAConstantInt(v0)) return c->vt;
  int64_t used = s->cv.ow - (LLVMConstIntGetSExtValue(v0) + j) * lanes;
  int n = lanes;
  while (n / 2 >= 4 && n / 2 >= used) n /= 2;
  if (n == lanes) return c->vt;
  *mask = used == n ? NULL : lane_mask(g, n, 1, 0, used);
  return LLVMVectorType(g->f32, (unsigned)n);
}

/* y[co0 + r, vector v0 + j] for r < nco, j < nvec (static tile sizes, dynamic origin). */
static void conv_tile(Cg *g, const ConvCg *c, LLVMValueRef co0, LLVMValueRef v0, int nco, int nvec) {
  const Ls *s = c->s;
  int lanes = s->cv.lanes, nacc = nco * nvec;
  LLVMValueRef xo[16], yo[16], rem[16], acc[64];
  for (int j = 0; j < nvec; j++) {
    LLVMValueRef v = LLVMBuildNSWAdd(g->b, v0, ci64(g, j), "");
    LLVMValueRef row = c->chunks == 1 ? v : LLVMBuildSDiv(g->b, v, ci64(g, c->chunks), "");
    LLVMValueRef col = c->chunks == 1 ? ci64(g, 0) : LLVMBuildNSWMul(g->b, LLVMBuildSRem(g->b, v, ci64(g, c->chunks), ""), ci64(g, lanes), "");
    xo[j] = LLVMBuildNSWAdd(g->b, LLVMBuildNSWMul(g->b, row, ci64(g, s->cv.xrow), ""), col, "");
    yo[j] = LLVMBuildNSWAdd(g->b, LLVMBuildNSWMul(g->b, row, ci64(g, s->cv.ow), ""), col, "");
    rem[j] = LLVMBuildNSWSub(g->b, ci64(g, s->cv.ow), col, "");
  }
  /* a row's last vector: only its first rem lanes are stored (and loaded, when x's rows are
   * not padded to whole vectors) */
  bool whole = s->cv.ow % lanes == 0;
  LLVMValueRef lane_ix = lane_constants(g, g->i64, lanes, 1, 0), mask[16];
  for (int j = 0; j < nvec; j++)
    mask[j] = whole ? NULL : LLVMBuildICmp(g->b, LLVMIntSLT, lane_ix, splat(g, LLVMVectorType(g->i64, lanes), rem[j]), "");
  LLVMTypeRef vty[16];
  for (int j = 0; j < nvec; j++) vty[j] = narrow_tail(g, c, v0, j, &mask[j]);
  /* for (k = 0; k < cin * ntaps; k++), k = ci * ntaps + tap: the accumulators are phis of
   * the loop; the tap's input offset ci * xplane + tap[t] comes from the table xtab (with one
   * tap, it is computed) */
  LLVMValueRef init[64];       /* zeros, or D's values (C = D + A B, row tiles) */
  for (int r = 0; r < nco; r++) {
    LLVMValueRef d_row = c->add ? gep_f32(g, c->add, LLVMBuildNSWMul(g->b, LLVMBuildNSWAdd(g->b, co0, ci64(g, r), ""), c->add_ld, "")) : NULL;
    for (int j = 0; j < nvec; j++)
      init[r * nvec + j] = d_row ? load_vector(g, vty[j], gep_f32(g, d_row, yo[j]), mask[j], -1) : LLVMConstNull(vty[j]);
  }
  LLVMBasicBlockRef pre = LLVMGetInsertBlock(g->b);
  LLVMBasicBlockRef head = LLVMAppendBasicBlockInContext(g->ctx, g->fn, "conv_k");
  LLVMBasicBlockRef body = LLVMAppendBasicBlockInContext(g->ctx, g->fn, "conv_fma");
  LLVMBasicBlockRef exit = LLVMAppendBasicBlockInContext(g->ctx, g->fn, "conv_store");
  LLVMBuildBr(g->b, head);
  LLVMPositionBuilderAtEnd(g->b, head);
  LLVMValueRef ci = LLVMBuildPhi(g->b, g->i64, "k");
  for (int a = 0; a < nacc; a++) acc[a] = LLVMBuildPhi(g->b, vty[a % nvec], "acc");
  LLVMBuildCondBr(g->b, LLVMBuildICmp(g->b, LLVMIntSLT, ci, ci64(g, s->cv.cin * s->cv.ntaps), ""), body, exit);
  LLVMPositionBuilderAtEnd(g->b, body);
  LLVMValueRef xoff = c->xtab ? LLVMBuildLoad2(g->b, g->i64, LLVMBuildGEP2(g->b, g->i64, c->xtab, &ci, 1, ""), "")
                              : LLVMBuildNSWAdd(g->b, LLVMBuildNSWMul(g->b, ci, ci64(g, s->cv.xplane), ""), ci64(g, s->cv.tap[0]), "");
  LLVMValueRef xk = gep_f32(g, c->x, xoff);
  int64_t ldw = s->cv.cin * s->cv.ntaps; /* a weight row */
  LLVMValueRef wk = gep_f32(g, c->w, LLVMBuildNSWAdd(g->b, LLVMBuildNSWMul(g->b, co0, ci64(g, ldw), ""), ci, ""));
  LLVMValueRef next[64];
  memcpy(next, acc, nacc * sizeof *acc);
  unsigned fma = LLVMLookupIntrinsicID("llvm.fmuladd", 12);
  LLVMValueRef w[16], wv[16], w_narrow[16] = {0};
  for (int r = 0; r < nco; r++) {
    w[r] = LLVMBuildLoad2(g->b, g->f32, gep_f32(g, wk, ci64(g, r * ldw)), "");
    wv[r] = splat(g, c->vt, w[r]);
  }
  for (int j = 0; j < nvec; j++) {
    LLVMTypeRef vt = vty[j];
    LLVMValueRef fma_fn = LLVMGetIntrinsicDeclaration(g->mod, fma, &vt, 1);
    LLVMTypeRef fma_t = LLVMIntrinsicGetType(g->ctx, fma, &vt, 1);
    LLVMValueRef xv = load_vector(g, vt, gep_f32(g, xk, xo[j]), s->cv.tight ? mask[j] : NULL, -1);
    for (int r = 0; r < nco; r++) {
      LLVMValueRef wr = wv[r];
      if (vt != c->vt) wr = w_narrow[r] ? w_narrow[r] : (w_narrow[r] = splat(g, vt, w[r]));
      next[r * nvec + j] = LLVMBuildCall2(g->b, fma_t, fma_fn, (LLVMValueRef[]){wr, xv, next[r * nvec + j]}, 3, "");
    }
  }
  LLVMValueRef ci1 = LLVMBuildNSWAdd(g->b, ci, ci64(g, 1), "");
  LLVMBasicBlockRef latch = LLVMGetInsertBlock(g->b);
  /* the tile's loop is 16 FMAs an iteration already: LLVM's runtime unrolling of it only
   * doubled the compile time */
  loop_hints(g, LLVMBuildBr(g->b, head), true, false, 0);
  LLVMAddIncoming(ci, (LLVMValueRef[]){ci64(g, 0), ci1}, (LLVMBasicBlockRef[]){pre, latch}, 2);
  for (int a = 0; a < nacc; a++)
    LLVMAddIncoming(acc[a], (LLVMValueRef[]){init[a], next[a]}, (LLVMBasicBlockRef[]){pre, latch}, 2);
  LLVMPositionBuilderAtEnd(g->b, exit);
  for (int j = 0; j < nvec; j++)
    for (int r = 0; r < nco; r++) {
      LLVMValueRef plane = LLVMBuildNSWMul(g->b, LLVMBuildNSWAdd(g->b, co0, ci64(g, r), ""), ci64(g, s->cv.oh * s->cv.ow), "");
      store_vector(g, vty[j], acc[r * nvec + j], gep_f32(g, c->y, LLVMBuildNSWAdd(g->b, plane, yo[j], "")), mask[j], -1);
    }
}

static void conv_vector_tile(Cg *g, const Ls *s, LLVMValueRef v0) {
  conv_tile(g, g->conv, g->conv->co0, v0, g->conv->nco, s->cv.tile_vec);
}

static void conv_wide_tile(Cg *g, const Ls *s, LLVMValueRef v0) {
  conv_tile(g, g->conv, g->conv->co0, v0, g->conv->nco, 2 * s->cv.tile_vec);
}

/* output channels [co0, co0 + nco): the whole tiles of vectors in a loop, then the rest
 * (of the current part's vectors, with cv.parts).  A tile of half the channels or fewer
 * takes twice the vectors: as many accumulators, as many independent FMA chains (a one-row
 * product, an LSTM step's at batch 1, ran at its chains' latency: 141 -> 138 us for lm
 * logits) */
static void conv_channels(Cg *g, LLVMValueRef co0, int nco) {
  ConvCg *c = g->conv;
  const Ls *s = c->s;
  int64_t nv = s->cv.oh * c->chunks, tv = s->cv.tile_vec, whole = nv / tv * tv;
  c->co0 = co0;
  c->nco = nco;
  LLVMValueRef lo = c->v_lo ? c->v_lo : ci64(g, 0), hi = c->v_hi ? c->v_hi : ci64(g, whole);
  if (2 * nco <= s->cv.tile_co) { /* the wide tiles that fit, then one of tv vectors */
    LLVMValueRef span = LLVMBuildNSWSub(g->b, hi, lo, "");
    LLVMValueRef wide = LLVMBuildNSWAdd(g->b, lo, LLVMBuildNSWMul(g->b, LLVMBuildSDiv(g->b, span, ci64(g, 2 * tv), ""), ci64(g, 2 * tv), ""), "");
    counted_loop(g, lo, wide, ci64(g, 2 * tv), conv_wide_tile, s);
    lo = wide;
  }
  counted_loop(g, lo, hi, ci64(g, tv), conv_vector_tile, s);
  if (whole == nv) return;
  LLVMBasicBlockRef rest = NULL, done = NULL;
  if (c->tail) {
    rest = LLVMAppendBasicBlockInContext(g->ctx, g->fn, "conv_rest");
    done = LLVMAppendBasicBlockInContext(g->ctx, g->fn, "conv_rest_done");
    LLVMBuildCondBr(g->b, c->tail, rest, done);
    LLVMPositionBuilderAtEnd(g->b, rest);
  }
  conv_tile(g, c, co0, ci64(g, whole), nco, (int)(nv - whole));
  if (c->tail) {
    LLVMBuildBr(g->b, done);
    LLVMPositionBuilderAtEnd(g->b, done);
  }
}

static void conv_channel_tile(Cg *g, const Ls *s, LLVMValueRef t) {
  conv_channels(g, LLVMBuildNSWMul(g->b, t, ci64(g, s->cv.tile_co), ""), s->cv.tile_co);
}

/* Channel tiles [lo, hi) of the current item: the whole tiles in a loop, then the partial
 * last one (1 .. tile_co - 1 channels, by the chunk that holds it). */
static void conv_tile_range(Cg *g, LLVMValueRef lo, LLVMValueRef hi) {
  ConvCg *c = g->conv;
  const Ls *s = c->s;
  int64_t tc = s->cv.tile_co;
  LLVMValueRef whole = LLVMBuildSDiv(g->b, c->count, ci64(g, tc), "");
  LLVMValueRef whole_hi = LLVMBuildSelect(g->b, LLVMBuildICmp(g->b, LLVMIntSLT, hi, whole, ""), hi, whole, "");
  counted_loop(g, lo, whole_hi, ci64(g, 1), conv_channel_tile, s);
  if (!s->cv.rows && s->cv.cout % tc == 0) return;
  LLVMBasicBlockRef last = LLVMAppendBasicBlockInContext(g->ctx, g->fn, "conv_last_tile");
  LLVMBasicBlockRef done = LLVMAppendBasicBlockInContext(g->ctx, g->fn, "conv_done");
  LLVMBuildCondBr(g->b, LLVMBuildICmp(g->b, LLVMIntSGT, hi, whole, ""), last, done);
  LLVMPositionBuilderAtEnd(g->b, last);
  LLVMValueRef first = LLVMBuildNSWMul(g->b, whole, ci64(g, tc), "");
  /* its size: one register tile per possible size */
  int lo_rem = s->cv.rows ? 1 : (int)(s->cv.cout % tc), hi_rem = s->cv.rows ? (int)tc - 1 : lo_rem;
  LLVMValueRef sw = LLVMBuildSwitch(g->b, LLVMBuildNSWSub(g->b, c->count, first, ""), done, (unsigned)(hi_rem - lo_rem + 1));
  for (int r = lo_rem; r <= hi_rem; r++) {
    LLVMBasicBlockRef bb = LLVMAppendBasicBlockInContext(g->ctx, g->fn, "conv_rows");
    LLVMAddCase(sw, ci64(g, r), bb);
    LLVMPositionBuilderAtEnd(g->b, bb);
    conv_channels(g, first, r);
    LLVMBuildBr(g->b, done);
  }
  LLVMPositionBuilderAtEnd(g->b, done);
}

/* The channel tiles of `count` output channels (the last one partial). */
static LLVMValueRef conv_tiles(Cg *g, const Ls *s, LLVMValueRef count) {
  return LLVMBuildSDiv(g->b, LLVMBuildNSWAdd(g->b, count, ci64(g, s->cv.tile_co - 1), ""), ci64(g, s->cv.tile_co), "");
}

/* Iteration t of a batch of convolutions: tile t % tiles of item t / tiles. */
static void conv_item_tile(Cg *g, const Ls *s, LLVMValueRef t) {
  ConvCg *c = g->conv;
  LLVMValueRef tiles = conv_tiles(g, s, c->count);
  LLVMValueRef item = LLVMBuildSDiv(g->b, t, tiles, ""), tile = LLVMBuildSRem(g->b, t, tiles, "");
  c->x = gep_f32(g, c->x0, LLVMBuildNSWMul(g->b, item, ci64(g, s->cv.x_bstride), ""));
  c->w = gep_f32(g, c->w0, LLVMBuildNSWMul(g->b, item, ci64(g, s->cv.w_bstride), ""));
  c->y = gep_f32(g, c->y0, LLVMBuildNSWMul(g->b, item, ci64(g, s->cv.y_bstride), ""));
  conv_tile_range(g, tile, LLVMBuildNSWAdd(g->b, tile, ci64(g, 1), ""));
}

/* Iteration t of a convolution in parts: part t % parts of channel tile t / parts, whole
 * vector tiles in equal runs, the partial one in the last part. */
static void conv_tile_part(Cg *g, const Ls *s, LLVMValueRef t) {
  ConvCg *c = g->conv;
  int64_t nv = s->cv.oh * c->chunks, tv = s->cv.tile_vec, whole = nv / tv;
  int64_t per = (whole + s->cv.parts - 1) / s->cv.parts * tv;
  LLVMValueRef parts = ci64(g, s->cv.parts), part = LLVMBuildSRem(g->b, t, parts, "");
  LLVMValueRef tile = LLVMBuildSDiv(g->b, t, parts, "");
  c->v_lo = LLVMBuildNSWMul(g->b, part, ci64(g, per), "");
  LLVMValueRef hi = LLVMBuildNSWAdd(g->b, c->v_lo, ci64(g, per), "");
  c->v_hi = LLVMBuildSelect(g->b, LLVMBuildICmp(g->b, LLVMIntSLT, hi, ci64(g, whole * tv), ""), hi, ci64(g, whole * tv), "");
  c->tail = LLVMBuildICmp(g->b, LLVMIntEQ, part, ci64(g, s->cv.parts - 1), "");
  conv_tile_range(g, tile, LLVMBuildNSWAdd(g->b, tile, ci64(g, 1), ""));
  c->v_lo = c->v_hi = c->tail = NULL;
}

/* The constant table of input offsets ci * xplane + tap[t] at k = ci * ntaps + t. */
static LLVMValueRef conv_offsets(Cg *g, const Ls *s) {
  int64_t n = s->cv.cin * s->cv.ntaps;
  LLVMValueRef *v = malloc(n * sizeof *v);
  if (!v) unreachable("out of memory");
  for (int64_t k = 0; k < n; k++) v[k] = ci64(g, k / s->cv.ntaps * s->cv.xplane + s->cv.tap[k % s->cv.ntaps]);
  LLVMTypeRef at = LLVMArrayType2(g->i64, (uint64_t)n);
  LLVMValueRef tab = LLVMAddGlobal(g->mod, at, "nnc.conv_offsets");
  LLVMSetInitializer(tab, LLVMConstArray2(g->i64, v, (uint64_t)n));
  LLVMSetGlobalConstant(tab, 1);
  LLVMSetLinkage(tab, LLVMPrivateLinkage);
  LLVMSetUnnamedAddress(tab, LLVMGlobalUnnamedAddr);
  free(v);
  return tab;
}

/* The pointer array a convolution's kernel function takes (emit_conv fills it): its input
 * copy, weights and output with their offsets applied; the run-time count of output channels
 * when s has one; D's first row and D's row stride when s adds D (C = D + A B).  Counts and
 * strides are integers stored as pointers. */
enum { CONV_X, CONV_W, CONV_Y, CONV_ROWS, CONV_ADD, CONV_ADD_LD, CONV_NBUFS };

static LLVMValueRef conv_buf_at(Cg *g, LLVMValueRef bufs, int i) {
  return LLVMBuildGEP2(g->b, g->ptr, bufs, (LLVMValueRef[]){ci64(g, i)}, 1, "");
}

static LLVMValueRef conv_buf(Cg *g, LLVMValueRef bufs, int i) {
  return LLVMBuildLoad2(g->b, g->ptr, conv_buf_at(g, bufs, i), "");
}

static LLVMValueRef conv_buf_int(Cg *g, LLVMValueRef bufs, int i) {
  return LLVMBuildPtrToInt(g->b, conv_buf(g, bufs, i), g->i64, "");
}

static void set_conv_buf_int(Cg *g, LLVMValueRef bufs, int i, LLVMValueRef v) {
  LLVMBuildStore(g->b, LLVMBuildIntToPtr(g->b, v, g->ptr, ""), conv_buf_at(g, bufs, i));
}

/* An nnc_kernel_fn computing the channel tiles [lo, hi) of convolution s, from the pointers
 * CONV_X .. CONV_ADD_LD. */
static LLVMValueRef conv_function(Cg *g, const Ls *s) {
  LLVMValueRef caller = g->fn;
  LLVMBasicBlockRef resume = LLVMGetInsertBlock(g->b);
  size_t len;
  const char *kname = LLVMGetValueName2(caller, &len);
  char name[256];
  snprintf(name, sizeof name, "%.*s.conv", (int)(len < 200 ? len : 200), kname);
  LLVMValueRef fn = LLVMAddFunction(g->mod, name, g->kernel_fn);
  LLVMSetLinkage(fn, LLVMInternalLinkage);
  g->fn = fn;
  LLVMPositionBuilderAtEnd(g->b, LLVMAppendBasicBlockInContext(g->ctx, fn, "entry"));
  ConvCg c = {.s = s, .vt = LLVMVectorType(g->f32, (unsigned)s->cv.lanes)};
  LLVMValueRef bufs = LLVMGetParam(fn, 0);
  c.x = conv_buf(g, bufs, CONV_X);
  c.w = conv_buf(g, bufs, CONV_W);
  c.y = conv_buf(g, bufs, CONV_Y);
  c.chunks = (s->cv.ow + s->cv.lanes - 1) / s->cv.lanes;
  c.xtab = s->cv.ntaps > 1 ? conv_offsets(g, s) : NULL;
  g->conv = &c;
  LLVMValueRef lo = LLVMGetParam(fn, 2), hi = LLVMGetParam(fn, 3);
  /* the output channels: cout, or the run-time row count */
  c.count = s->cv.rows ? conv_buf_int(g, bufs, CONV_ROWS) : ci64(g, s->cv.cout);
  if (s->cv.add >= 0) {
    c.add = conv_buf(g, bufs, CONV_ADD);
    c.add_ld = conv_buf_int(g, bufs, CONV_ADD_LD);
  }
  if (s->cv.nbatch > 1) { /* iterations (item, tile), the items' operands strides apart */
    c.x0 = c.x, c.w0 = c.w, c.y0 = c.y;
    counted_loop(g, lo, hi, ci64(g, 1), conv_item_tile, s);
  } else if (s->cv.parts > 1) {
    counted_loop(g, lo, hi, ci64(g, 1), conv_tile_part, s);
  } else {
    conv_tile_range(g, lo, hi);
  }
  LLVMBuildRetVoid(g->b);
  g->conv = NULL;
  g->fn = caller;
  LLVMPositionBuilderAtEnd(g->b, resume);
  return fn;
}

static void emit_conv(Cg *g, Ls *s) {
  LLVMValueRef fn = conv_function(g, s);
  LLVMValueRef bufs = entry_alloca(g, LLVMArrayType(g->ptr, CONV_NBUFS), "conv_bufs");
  int bi[3] = {s->cv.x, s->cv.w, s->cv.y};
  Lx *off[3] = {s->cv.x_off, s->cv.w_off, s->cv.y_off};
  for (int i = CONV_X; i <= CONV_Y; i++)
    LLVMBuildStore(g->b, gep_f32(g, g->bufs[bi[i]], emit(g, off[i])), conv_buf_at(g, bufs, i));
  LLVMValueRef count = ci64(g, s->cv.cout);
  if (s->cv.rows) {
    count = emit(g, s->cv.rows);
    set_conv_buf_int(g, bufs, CONV_ROWS, count);
  }
  if (s->cv.add >= 0) {
    LLVMBuildStore(g->b, gep_f32(g, g->bufs[s->cv.add], emit(g, s->cv.add_off)), conv_buf_at(g, bufs, CONV_ADD));
    set_conv_buf_int(g, bufs, CONV_ADD_LD, emit(g, s->cv.add_ld));
  }
  LLVMValueRef tiles = LLVMBuildNSWMul(g->b, conv_tiles(g, s, count), ci64(g, s->cv.nbatch * s->cv.parts), "");
  call_parallel(g, s->cv.parts > 1 ? "nnc_rt_parallel_parts" : "nnc_rt_parallel_for", fn, bufs, tiles,
                loopir_conv_fmas(s, s->cv.tile_co) / s->cv.parts);
}

/* A scan: copy the initial state in, then per step t set the step symbol, call the body with
 * (state, captured, next state, per-step output slices at t), and swap the state buffers;
 * at the end copy the state out to the results that are read. */
static void emit_scan(Cg *g, Ls *s) {
  const ScanInfo *sc = s->sc.info;
  const Entry *b = sc->body;
  int nc = sc->ncarried, ncap = sc->ncaptured, ns = sc->nsteps, nin = nc + ncap, nargs = nin + nc + ns;
  int *bufs = s->sc.bufs;
  LLVMValueRef *init = g->bufs, four = ci64(g, 4);
  (void)init;
  LLVMValueRef cur = LLVMBuildArrayAlloca(g->b, g->ptr, ci64(g, nc ? nc : 1), "cur");
  LLVMValueRef nxt = LLVMBuildArrayAlloca(g->b, g->ptr, ci64(g, nc ? nc : 1), "next");
  LLVMValueRef argv = LLVMBuildArrayAlloca(g->b, g->ptr, ci64(g, nargs ? nargs : 1), "args");
  int nsyms = g->m->nsyms ? g->m->nsyms : 1;
  LLVMValueRef symv = LLVMBuildArrayAlloca(g->b, g->i64, ci64(g, nsyms), "syms");
  LLVMBuildMemCpy(g->b, symv, 8, g->syms, 8, ci64(g, 8 * (int64_t)g->m->nsyms));
  LLVMValueRef *bytes = calloc(nc + 1, sizeof *bytes);
  for (int i = 0; i < nc; i++) {
    bytes[i] = LLVMBuildNSWMul(g->b, emit(g, s->sc.numel[i]), four, "");
    LLVMValueRef a = g->bufs[bufs[2 * nc + 2 * i]], z = g->bufs[bufs[2 * nc + 2 * i + 1]];
    LLVMBuildMemCpy(g->b, a, 4, g->bufs[bufs[i]], 4, bytes[i]);
    LLVMBuildStore(g->b, a, LLVMBuildGEP2(g->b, g->ptr, cur, (LLVMValueRef[]){ci64(g, i)}, 1, ""));
    LLVMBuildStore(g->b, z, LLVMBuildGEP2(g->b, g->ptr, nxt, (LLVMValueRef[]){ci64(g, i)}, 1, ""));
  }
  LLVMValueRef steps = emit(g, s->sc.steps);
  LLVMBasicBlockRef pre = LLVMGetInsertBlock(g->b);
  LLVMBasicBlockRef head = LLVMAppendBasicBlockInContext(g->ctx, g->fn, "scan");
  LLVMBasicBlockRef body = LLVMAppendBasicBlockInContext(g->ctx, g->fn, "step");
  LLVMBasicBlockRef exit = LLVMAppendBasicBlockInContext(g->ctx, g->fn, "scan_end");
  LLVMBuildBr(g->b, head);
  LLVMPositionBuilderAtEnd(g->b, head);
  LLVMValueRef t = LLVMBuildPhi(g->b, g->i64, "t");
  LLVMBuildCondBr(g->b, LLVMBuildICmp(g->b, LLVMIntSLT, t, steps, ""), body, exit);
  LLVMPositionBuilderAtEnd(g->b, body);
  LLVMBuildStore(g->b, t, LLVMBuildGEP2(g->b, g->i64, symv, (LLVMValueRef[]){ci64(g, sc->tsym)}, 1, ""));
  #define ARG(k, v) LLVMBuildStore(g->b, v, LLVMBuildGEP2(g->b, g->ptr, argv, (LLVMValueRef[]){ci64(g, k)}, 1, ""))
  #define LOADP(arr, i) LLVMBuildLoad2(g->b, g->ptr, LLVMBuildGEP2(g->b, g->ptr, arr, (LLVMValueRef[]){ci64(g, i)}, 1, ""), "")
  for (int i = 0; i < nc; i++) ARG(i, LOADP(cur, i));
  for (int j = 0; j < ncap; j++) ARG(nc + j, g->bufs[bufs[4 * nc + j]]);
  for (int i = 0; i < nc; i++) ARG(nin + i, LOADP(nxt, i));
  for (int j = 0; j < ns; j++) {
    LLVMValueRef off = LLVMBuildNSWMul(g->b, t, emit(g, s->sc.numel[nc + j]), "");
    ARG(nin + nc + j, LLVMBuildGEP2(g->b, g->f32, g->bufs[bufs[4 * nc + ncap + j]], &off, 1, ""));
  }
  int wb = bufs[4 * nc + ncap + ns], wsb = bufs[4 * nc + ncap + ns + 1];
  LLVMValueRef ws = wsb >= 0 ? g->bufs[wsb] : LLVMConstNull(g->ptr);
  LLVMBuildCall2(g->b, g->entry_fn, g->body_fns[s->sc.body], (LLVMValueRef[]){argv, symv, g->bufs[wb], ws}, 4, "");
  for (int i = 0; i < nc; i++) { /* the next state becomes the current one */
    LLVMValueRef a = LOADP(cur, i), z = LOADP(nxt, i);
    LLVMBuildStore(g->b, z, LLVMBuildGEP2(g->b, g->ptr, cur, (LLVMValueRef[]){ci64(g, i)}, 1, ""));
    LLVMBuildStore(g->b, a, LLVMBuildGEP2(g->b, g->ptr, nxt, (LLVMValueRef[]){ci64(g, i)}, 1, ""));
  }
  LLVMValueRef t1 = LLVMBuildNSWAdd(g->b, t, ci64(g, 1), "");
  LLVMBasicBlockRef latch = LLVMGetInsertBlock(g->b);
  LLVMBuildBr(g->b, head);
  LLVMAddIncoming(t, (LLVMValueRef[]){ci64(g, 0), t1}, (LLVMBasicBlockRef[]){pre, latch}, 2);
  LLVMPositionBuilderAtEnd(g->b, exit);
  for (int i = 0; i < nc; i++)
    if (bufs[nc + i] >= 0) LLVMBuildMemCpy(g->b, g->bufs[bufs[nc + i]], 4, LOADP(cur, i), 4, bytes[i]);
  #undef ARG
  #undef LOADP
  free(bytes);
  (void)b;
}

static void emit_stmt(Cg *g, Ls *s) {
  switch (s->k) {
  case LS_SCAN: emit_scan(g, s); break;
  case LS_BLOCK:
    for (int k = 0; k < s->nbody; k++) emit_stmt(g, s->body[k]);
    break;
  case LS_LOOP: emit_loop(g, s); break;
  case LS_STORE: {
    LLVMValueRef v = emit(g, s->val);
    buffer_access(g, LLVMBuildStore(g->b, v, element_ptr(g, g->f32, g->bufs[s->buf], s->idx)), s->buf);
    break;
  }
  case LS_EVAL: emit(g, s->val); break;
  case LS_ACC_INIT:
    LLVMBuildStore(g->b, cf32(g, s->rop == OP_SUM ? 0.0 : -INFINITY), g->accs[s->acc]);
    break;
  case LS_ACC_UPDATE: {
    LLVMValueRef v = emit(g, s->val), cur = LLVMBuildLoad2(g->b, g->f32, g->accs[s->acc], "");
    LLVMBuildStore(g->b, reduce_op(g, s->rop, cur, v), g->accs[s->acc]);
    break;
  }
  case LS_GEMM: emit_gemm(g, s); break;
  case LS_CONV: emit_conv(g, s); break;
  }
}

/* ---- functions ---- */

static LLVMValueRef round_up64(Cg *g, LLVMValueRef v) {
  return LLVMBuildAnd(g->b, LLVMBuildAdd(g->b, v, ci64(g, 63), ""), ci64(g, ~(int64_t)63), "");
}

/* Byte offsets of the workspace slots: a region starts where the regions before it end, or
 * over the region before it (the layout nnc_entry_workspace_size computes; nnc_slot in
 * nnc_model.h); a view adds its offset to its region's.  offs[nslots]. */
static void slot_offsets(Cg *g, const Entry *e, LLVMValueRef *offs) {
  LLVMValueRef end = ci64(g, 0), start = end;
  for (int i = 0; i < e->nslots; i++) {
    const Slot *s = &e->slots[i];
    if (s->region >= 0) {
      offs[i] = LLVMBuildAdd(g->b, offs[s->region], emit_sym(g, s->off.k, s->off.syms), "");
      continue;
    }
    start = s->overlay ? LLVMBuildAdd(g->b, start, round_up64(g, emit_sym(g, s->at.k, s->at.syms)), "") : end;
    offs[i] = start;
    LLVMValueRef stop = LLVMBuildAdd(g->b, start, round_up64(g, emit_sym(g, s->bytes.k, s->bytes.syms)), "");
    end = LLVMBuildSelect(g->b, LLVMBuildICmp(g->b, LLVMIntUGT, stop, end, ""), stop, end, "");
  }
}

static LLVMValueRef const_global(Cg *g, const LBuf *b) {
  LLVMTypeRef at = LLVMArrayType2(g->f32, (uint64_t)b->n);
  LLVMValueRef *vals = malloc((b->n ? b->n : 1) * sizeof *vals);
  for (int64_t i = 0; i < b->n; i++) vals[i] = cf32(g, b->data[i]);
  LLVMValueRef init = LLVMConstArray2(g->f32, vals, (uint64_t)b->n);
  free(vals);
  LLVMValueRef gv = LLVMAddGlobal(g->mod, at, "nnc.const");
  LLVMSetInitializer(gv, init);
  LLVMSetGlobalConstant(gv, 1);
  LLVMSetLinkage(gv, LLVMPrivateLinkage);
  LLVMSetAlignment(gv, 64);
  return gv;
}

static void load_syms(Cg *g) {
  for (int i = 0; i < g->m->nsyms; i++) {
    LLVMValueRef p = LLVMBuildGEP2(g->b, g->i64, g->syms, (LLVMValueRef[]){ci64(g, i)}, 1, "");
    g->sym_vals[i] = LLVMBuildLoad2(g->b, g->i64, p, g->m->sym_names[i]);
  }
}

/* Addresses of the entry's buffers (arguments, weights, workspace slots, constants). */
static void compute_buffers(Cg *g, const Entry *e, const bool *used) {
  LLVMValueRef *offs = calloc(e->nslots + 1, sizeof *offs);
  slot_offsets(g, e, offs);
  for (int i = 0; i < g->le->nbufs; i++) {
    const LBuf *b = &g->le->bufs[i];
    if (!used[i]) continue;
    switch (b->k) {
    case LB_ARG: {
      LLVMValueRef p = LLVMBuildGEP2(g->b, g->ptr, g->args, (LLVMValueRef[]){ci64(g, b->index)}, 1, "");
      g->bufs[i] = LLVMBuildLoad2(g->b, g->ptr, p, "");
      break;
    }
    case LB_WEIGHT:
      g->bufs[i] = LLVMBuildGEP2(g->b, g->i8, g->weights, (LLVMValueRef[]){ci64(g, (int64_t)b->offset)}, 1, "");
      break;
    case LB_SLOT:
      g->bufs[i] = LLVMBuildGEP2(g->b, g->i8, g->ws, (LLVMValueRef[]){offs[b->index]}, 1, "");
      break;
    case LB_CONST:
      g->bufs[i] = const_global(g, b);
      break;
    }
  }
  free(offs);
}

static LLVMValueRef begin_function(Cg *g, const char *name, LLVMTypeRef type, LLVMLinkage linkage) {
  LLVMValueRef fn = LLVMAddFunction(g->mod, name, type);
  LLVMSetLinkage(fn, linkage);
  unsigned nounwind = LLVMGetEnumAttributeKindForName("nounwind", 8);
  LLVMAddAttributeAtIndex(fn, LLVMAttributeFunctionIndex, LLVMCreateEnumAttribute(g->ctx, nounwind, 0));
  LLVMPositionBuilderAtEnd(g->b, LLVMAppendBasicBlockInContext(g->ctx, fn, "entry"));
  g->fn = fn;
  return fn;
}

/* A distinct, self-referencing metadata node {self, ops...} (built through a temporary). */
static LLVMMetadataRef self_node(Cg *g, LLVMMetadataRef op) {
  LLVMMetadataRef tmp = LLVMTemporaryMDNode(g->ctx, NULL, 0), ops[2] = {tmp, op};
  LLVMMetadataRef node = LLVMMDNodeInContext2(g->ctx, ops, op ? 2 : 1);
  LLVMMetadataReplaceAllUsesWith(tmp, node);
  return node;
}

/* The buffers of one kernel never overlap: the memory planner gives every intermediate that
 * is alive during a kernel its own bytes (no tenancy shares memory with one alive at the same
 * time; pass_memplan.c), weights and constants are apart from the workspace, a scan's
 * steps alternate between two state buffers, and the caller's outputs must not overlap its
 * inputs (docs/c-api.md).  Telling LLVM so (one alias scope per buffer, each access noalias
 * with the others) lets it vectorize the loops that read three or more buffers, for which it
 * cannot build runtime overlap checks ("cannot identify array bounds"). */
static void alias_scopes(Cg *g, const int *rename) {
  int n = g->le->nbufs;
  LLVMMetadataRef domain = self_node(g, NULL), *scope = calloc(n + 1, sizeof *scope), *others = calloc(n + 1, sizeof *others);
  g->buf_scope = calloc(n + 1, sizeof *g->buf_scope);
  g->buf_noalias = calloc(n + 1, sizeof *g->buf_noalias);
  for (int i = 0; i < n; i++)
    if (rename[i] >= 0) scope[i] = self_node(g, domain);
  for (int i = 0; i < n; i++) {
    if (!scope[i]) continue;
    int k = 0;
    for (int j = 0; j < n; j++)
      if (j != i && scope[j]) others[k++] = scope[j];
    g->buf_scope[i] = LLVMMetadataAsValue(g->ctx, LLVMMDNodeInContext2(g->ctx, &scope[i], 1));
    g->buf_noalias[i] = LLVMMetadataAsValue(g->ctx, LLVMMDNodeInContext2(g->ctx, others, k));
  }
  free(scope);
  free(others);
}

/* A kernel function: void k(ptr bufs[nlocal], const int64_t *syms, int64_t lo, int64_t hi). */
static LLVMValueRef emit_kernel(Cg *g, const LKernel *k, const int *rename) {
  LLVMValueRef fn = begin_function(g, k->name, g->kernel_fn, LLVMInternalLinkage);
  /* shared by every structurally equal kernel: inlining them would undo the sharing */
  unsigned noinline = LLVMGetEnumAttributeKindForName("noinline", 8);
  LLVMAddAttributeAtIndex(fn, LLVMAttributeFunctionIndex, LLVMCreateEnumAttribute(g->ctx, noinline, 0));
  LLVMValueRef bufs = LLVMGetParam(fn, 0);
  g->syms = LLVMGetParam(fn, 1);
  g->par = k->par;
  g->par_inner = k->par_inner;
  memset(g->lanes, 0, sizeof g->lanes);
  g->par_lo = LLVMGetParam(fn, 2);
  g->par_hi = LLVMGetParam(fn, 3);
  g->vars = calloc(k->nvars + 1, sizeof *g->vars);
  g->accs = calloc(k->naccs + 1, sizeof *g->accs);
  for (int i = 0; i < k->naccs; i++) g->accs[i] = LLVMBuildAlloca(g->b, g->f32, "acc");
  int parent = scope_push(g); /* values of another function are never reused */
  load_syms(g);
  for (int i = 0; i < g->le->nbufs; i++) {
    if (rename[i] < 0) continue;
    LLVMValueRef p = LLVMBuildGEP2(g->b, g->ptr, bufs, (LLVMValueRef[]){ci64(g, rename[i])}, 1, "");
    g->bufs[i] = LLVMBuildLoad2(g->b, g->ptr, p, "");
  }
  alias_scopes(g, rename);
  emit_stmt(g, k->body);
  LLVMBuildRetVoid(g->b);
  g->par = g->par_inner = NULL;
  scope_pop(g, parent);
  free(g->vars);
  free(g->accs);
  free(g->buf_scope);
  free(g->buf_noalias);
  g->buf_scope = g->buf_noalias = NULL;
  return fn;
}

/* The kernel function for k: an existing one with the same structure, or a new one. */
static LLVMValueRef kernel_function(Cg *g, const LKernel *k, int *rename, int *nlocal) {
  char *key = loopir_kernel_key(g->le, k, rename, nlocal);
  if (!key) unreachable("out of memory");
  for (int i = 0; i < g->nkernel_cache; i++)
    if (!strcmp(g->kernel_cache[i].key, key)) {
      free(key);
      return g->kernel_cache[i].fn;
    }
  if (g->nkernel_cache == g->capkernel_cache) {
    g->capkernel_cache = g->capkernel_cache ? 2 * g->capkernel_cache : 32;
    g->kernel_cache = realloc(g->kernel_cache, g->capkernel_cache * sizeof *g->kernel_cache);
    if (!g->kernel_cache) unreachable("out of memory");
  }
  LLVMValueRef fn = emit_kernel(g, k, rename);
  g->kernel_cache[g->nkernel_cache++] = (struct KernelFn){key, fn};
  return fn;
}

/* Call a kernel: a parallel one through the runtime's pool with its loop's trip count. */
static void call_kernel(Cg *g, const LKernel *k, LLVMValueRef fn, LLVMValueRef bufs) {
  if (!k->par) {
    LLVMBuildCall2(g->b, g->kernel_fn, fn, (LLVMValueRef[]){bufs, g->syms, ci64(g, 0), ci64(g, 0)}, 4, "");
    return;
  }
  LLVMValueRef trip = trip_of(g, k->par);
  if (k->par_inner) trip = LLVMBuildNSWMul(g->b, trip, trip_of(g, k->par_inner), "");
  call_parallel_for(g, fn, bufs, trip, k->par_work);
}

static LLVMValueRef emit_entry_body(Cg *g, const LEntry *le) {
  const Entry *e = le->e;
  int nb = le->nbufs + 1;
  g->le = le;
  g->bufs = calloc(nb, sizeof *g->bufs);
  int *renames = malloc((size_t)nb * (le->nkernels + 1) * sizeof *renames);
  int *nlocal = calloc(le->nkernels + 1, sizeof *nlocal);
  bool *used = calloc(nb, sizeof *used);
  LLVMValueRef *kfns = calloc(le->nkernels + 1, sizeof *kfns);
  for (int k = 0; k < le->nkernels; k++) {
    kfns[k] = kernel_function(g, &le->kernels[k], renames + (size_t)k * nb, &nlocal[k]);
    for (int i = 0; i < le->nbufs; i++) used[i] |= renames[(size_t)k * nb + i] >= 0;
  }
  char name[256];
  snprintf(name, sizeof name, "%s.%s.body", model_c_name(g->m), e->name);
  LLVMValueRef fn = begin_function(g, name, g->entry_fn, LLVMInternalLinkage);
  g->args = LLVMGetParam(fn, 0);
  g->syms = LLVMGetParam(fn, 1);
  g->weights = LLVMGetParam(fn, 2);
  g->ws = LLVMGetParam(fn, 3);
  int parent = scope_push(g);
  load_syms(g);
  compute_buffers(g, e, used);
  for (int k = 0; k < le->nkernels; k++) {
    LLVMValueRef arr = LLVMBuildArrayAlloca(g->b, g->ptr, ci64(g, nlocal[k] ? nlocal[k] : 1), "bufs");
    for (int i = 0; i < le->nbufs; i++) {
      int local = renames[(size_t)k * nb + i];
      if (local >= 0)
        LLVMBuildStore(g->b, g->bufs[i], LLVMBuildGEP2(g->b, g->ptr, arr, (LLVMValueRef[]){ci64(g, local)}, 1, ""));
    }
    call_kernel(g, &le->kernels[k], kfns[k], arr);
  }
  LLVMBuildRetVoid(g->b);
  scope_pop(g, parent);
  free(kfns);
  free(used);
  free(nlocal);
  free(renames);
  free(g->bufs);
  return fn;
}

/* ---- introspection table (layout of nnc_model.h) ---- */

static LLVMValueRef cstring(Cg *g, const char *s) {
  LLVMValueRef init = LLVMConstStringInContext2(g->ctx, s, strlen(s), 0);
  LLVMValueRef gv = LLVMAddGlobal(g->mod, LLVMTypeOf(init), "nnc.str");
  LLVMSetInitializer(gv, init);
  LLVMSetGlobalConstant(gv, 1);
  LLVMSetLinkage(gv, LLVMPrivateLinkage);
  LLVMSetUnnamedAddress(gv, LLVMGlobalUnnamedAddr);
  return gv;
}

static LLVMValueRef const_array_global(Cg *g, LLVMTypeRef elem, LLVMValueRef *vals, int n, const char *name) {
  if (n == 0) return LLVMConstNull(g->ptr);
  LLVMValueRef init = LLVMConstArray2(elem, vals, (uint64_t)n);
  LLVMValueRef gv = LLVMAddGlobal(g->mod, LLVMTypeOf(init), name);
  LLVMSetInitializer(gv, init);
  LLVMSetGlobalConstant(gv, 1);
  LLVMSetLinkage(gv, LLVMPrivateLinkage);
  return gv;
}

static LLVMValueRef i32c(Cg *g, int64_t v) { return LLVMConstInt(g->i32, (unsigned long long)v, 1); }

/* An nnc_dim {k, syms} constant. */
static LLVMValueRef const_dim(Cg *g, LLVMTypeRef dim_t, int64_t k, uint32_t syms) {
  return LLVMConstNamedStruct(dim_t, (LLVMValueRef[]){ci64(g, k), i32c(g, syms)}, 2);
}

static LLVMValueRef dims_global(Cg *g, LLVMTypeRef dim_t, const Shape *s) {
  LLVMValueRef v[MAX_RANK];
  for (int i = 0; i < s->rank; i++)
    v[i] = const_dim(g, dim_t, s->d[i].k, s->d[i].syms);
  return const_array_global(g, dim_t, v, s->rank, "nnc.dims");
}

static LLVMValueRef emit_desc(Cg *g, const LEntry *les, LLVMValueRef *bodies, const unsigned char *weights) {
  const Model *m = g->m;
  LLVMContextRef C = g->ctx;
  LLVMTypeRef dim_t = LLVMStructCreateNamed(C, "nnc_dim");
  LLVMStructSetBody(dim_t, (LLVMTypeRef[]){g->i64, g->i32}, 2, 0);
  LLVMTypeRef slot_t = LLVMStructCreateNamed(C, "nnc_slot");
  LLVMStructSetBody(slot_t, (LLVMTypeRef[]){dim_t, dim_t, g->i32}, 3, 0);
  LLVMTypeRef arg_t = LLVMStructCreateNamed(C, "nnc_arg_desc");
  LLVMStructSetBody(arg_t, (LLVMTypeRef[]){g->ptr, g->i32, g->i32, g->ptr}, 4, 0);
  LLVMTypeRef entry_t = LLVMStructCreateNamed(C, "nnc_entry_desc");
  LLVMStructSetBody(entry_t, (LLVMTypeRef[]){g->ptr, g->i32, g->i32, g->ptr, g->i32, g->ptr, g->ptr}, 7, 0);
  LLVMTypeRef param_t = LLVMStructCreateNamed(C, "nnc_param_desc");
  LLVMStructSetBody(param_t, (LLVMTypeRef[]){g->ptr, g->i32, g->i32, g->ptr, g->i64, g->i64}, 6, 0);
  LLVMTypeRef model_t = LLVMStructCreateNamed(C, "nnc_model_desc");
  LLVMStructSetBody(model_t, (LLVMTypeRef[]){g->i32, g->ptr, g->i32, g->ptr, g->i32, g->ptr, g->i32, g->ptr, g->i64, g->ptr, g->ptr}, 11, 0);

  /* entries, then (index nentries) the init entry when it runs at load time */
  int nent = m->nentries + (bodies[m->nentries] != NULL);
  LLVMValueRef *entries = calloc(nent + 1, sizeof *entries);
  for (int i = 0; i < nent; i++) {
    const Entry *e = les[i].e;
    int na = e->nin + e->nout;
    LLVMValueRef *args = calloc(na + 1, sizeof *args);
    for (int a = 0; a < na; a++) {
      bool in = a < e->nin;
      const Shape *s = in ? &e->inputs[a]->shape : &e->out_shapes[a - e->nin];
      DType dt = in ? e->inputs[a]->dtype : e->out_dtypes[a - e->nin];
      args[a] = LLVMConstNamedStruct(arg_t, (LLVMValueRef[]){
        cstring(g, in ? e->in_names[a] : e->out_names[a - e->nin]), i32c(g, dt), i32c(g, s->rank),
        dims_global(g, dim_t, s)}, 4);
    }
    int nr = plan_regions(e, NULL);
    nnc_slot *regions = calloc(nr + 1, sizeof *regions);
    LLVMValueRef *slots = calloc(nr + 1, sizeof *slots);
    plan_regions(e, regions);
    for (int r = 0; r < nr; r++) {
      const nnc_slot *sl = &regions[r];
      slots[r] = LLVMConstNamedStruct(slot_t, (LLVMValueRef[]){const_dim(g, dim_t, sl->bytes.k, sl->bytes.syms),
        const_dim(g, dim_t, sl->at.k, sl->at.syms), i32c(g, sl->overlay)}, 3);
    }
    free(regions);
    entries[i] = LLVMConstNamedStruct(entry_t, (LLVMValueRef[]){
      cstring(g, e->name), i32c(g, e->nin), i32c(g, e->nout),
      const_array_global(g, arg_t, args, na, "nnc.args"), i32c(g, nr),
      const_array_global(g, slot_t, slots, nr, "nnc.slots"), bodies[i]}, 7);
    free(args);
    free(slots);
  }
  int nparams = m->nparams_loaded; /* derived parameters are not in the table */
  LLVMValueRef *params = calloc(nparams + 1, sizeof *params);
  for (int i = 0; i < nparams; i++) {
    const Param *p = &m->params[i];
    LLVMValueRef sh[MAX_RANK];
    for (int k = 0; k < p->rank; k++) sh[k] = ci64(g, p->shape[k]);
    params[i] = LLVMConstNamedStruct(param_t, (LLVMValueRef[]){
      cstring(g, p->name), i32c(g, p->dtype), i32c(g, p->rank),
      const_array_global(g, g->i64, sh, p->rank, "nnc.shape"), ci64(g, (int64_t)p->offset), ci64(g, (int64_t)p->nbytes)}, 6);
  }
  LLVMValueRef *syms = calloc(m->nsyms + 1, sizeof *syms);
  for (int i = 0; i < m->nsyms; i++) syms[i] = cstring(g, m->sym_names[i]);
  LLVMValueRef blob = LLVMConstNull(g->ptr);
  if (weights && m->weights_size) {
    LLVMValueRef init = LLVMConstStringInContext2(C, (const char *)weights, m->weights_size, 1);
    blob = LLVMAddGlobal(g->mod, LLVMTypeOf(init), "nnc.weights");
    LLVMSetInitializer(blob, init);
    LLVMSetGlobalConstant(blob, 1);
    LLVMSetLinkage(blob, LLVMPrivateLinkage);
    LLVMSetAlignment(blob, 64);
  }
  LLVMValueRef init = LLVMConstNull(g->ptr);
  if (nent > m->nentries) {
    init = LLVMAddGlobal(g->mod, entry_t, "nnc.init");
    LLVMSetInitializer(init, entries[m->nentries]);
    LLVMSetGlobalConstant(init, 1);
    LLVMSetLinkage(init, LLVMPrivateLinkage);
  }
  LLVMValueRef desc_init = LLVMConstNamedStruct(model_t, (LLVMValueRef[]){
    i32c(g, NNC_MODEL_ABI), cstring(g, m->name), i32c(g, m->nsyms),
    const_array_global(g, g->ptr, syms, m->nsyms, "nnc.syms"), i32c(g, m->nentries),
    const_array_global(g, entry_t, entries, m->nentries, "nnc.entries"), i32c(g, nparams),
    const_array_global(g, param_t, params, nparams, "nnc.params"), ci64(g, (int64_t)m->weights_size), blob,
    init}, 11);
  free(entries);
  free(params);
  free(syms);
  LLVMValueRef desc = LLVMAddGlobal(g->mod, model_t, "nnc.model");
  LLVMSetInitializer(desc, desc_init);
  LLVMSetGlobalConstant(desc, 1);
  LLVMSetLinkage(desc, LLVMInternalLinkage);
  return desc;
}

/* ---- exported functions ---- */

static LLVMValueRef add_exported(Cg *g, const char *name, LLVMTypeRef ft) {
  LLVMValueRef fn = LLVMAddFunction(g->mod, name, ft);
  LLVMPositionBuilderAtEnd(g->b, LLVMAppendBasicBlockInContext(g->ctx, fn, "entry"));
  return fn;
}

static void emit_wrappers(Cg *g, LLVMValueRef desc) {
  const Model *m = g->m;
  const char *mn = model_c_name(m);
  char name[256];
  LLVMTypeRef p = g->ptr, i32 = g->i32, i64 = g->i64;
  /* const nnc_model_desc *nnc_model_info(void) */
  add_exported(g, "nnc_model_info", LLVMFunctionType(p, NULL, 0, 0));
  LLVMBuildRet(g->b, desc);
  /* <m>_ctx *<m>_open(const char *weights_path, char *err, size_t n) */
  LLVMTypeRef open_pt[] = {p, p, p, i64};
  snprintf(name, sizeof name, "%s_open", mn);
  LLVMValueRef fn = add_exported(g, name, LLVMFunctionType(p, open_pt + 1, 3, 0));
  LLVMValueRef args[4] = {desc, LLVMGetParam(fn, 0), LLVMGetParam(fn, 1), LLVMGetParam(fn, 2)};
  LLVMBuildRet(g->b, call_extern(g, "nnc_ctx_open", p, open_pt, 4, args));
  snprintf(name, sizeof name, "%s_close", mn);
  fn = add_exported(g, name, LLVMFunctionType(g->voidt, &p, 1, 0));
  call_extern(g, "nnc_ctx_close", g->voidt, &p, 1, (LLVMValueRef[]){LLVMGetParam(fn, 0)});
  LLVMBuildRetVoid(g->b);
  snprintf(name, sizeof name, "%s_error", mn);
  fn = add_exported(g, name, LLVMFunctionType(p, &p, 1, 0));
  LLVMBuildRet(g->b, call_extern(g, "nnc_ctx_error", p, &p, 1, (LLVMValueRef[]){LLVMGetParam(fn, 0)}));
  /* int <m>_set_threads(ctx, int n) */
  snprintf(name, sizeof name, "%s_set_threads", mn);
  LLVMTypeRef st_pt[] = {p, i32};
  fn = add_exported(g, name, LLVMFunctionType(i32, st_pt, 2, 0));
  LLVMBuildRet(g->b, call_extern(g, "nnc_ctx_set_threads", i32, st_pt, 2,
                                 (LLVMValueRef[]){LLVMGetParam(fn, 0), LLVMGetParam(fn, 1)}));
  /* int <m>_<entry>(ctx, int64_t syms..., inputs..., outputs...) */
  for (int i = 0; i < m->nentries; i++) {
    const Entry *e = &m->entries[i];
    uint32_t mask = entry_sym_mask(e);
    int ns = __builtin_popcount(mask), na = e->nin + e->nout;
    LLVMTypeRef *pt = calloc(1 + ns + na, sizeof *pt);
    pt[0] = p;
    for (int k = 0; k < ns; k++) pt[1 + k] = i64;
    for (int k = 0; k < na; k++) pt[1 + ns + k] = p;
    snprintf(name, sizeof name, "%s_%s", mn, e->name);
    fn = add_exported(g, name, LLVMFunctionType(i32, pt, 1 + ns + na, 0));
    free(pt);
    LLVMValueRef argv = LLVMBuildArrayAlloca(g->b, p, ci64(g, na ? na : 1), "args");
    LLVMValueRef symv = LLVMBuildArrayAlloca(g->b, i64, ci64(g, m->nsyms ? m->nsyms : 1), "syms");
    for (int k = 0, s = 0; k < m->nsyms; k++) {
      LLVMValueRef v = mask & (1u << k) ? LLVMGetParam(fn, 1 + s++) : ci64(g, 0);
      LLVMBuildStore(g->b, v, LLVMBuildGEP2(g->b, i64, symv, (LLVMValueRef[]){ci64(g, k)}, 1, ""));
    }
    for (int k = 0; k < na; k++)
      LLVMBuildStore(g->b, LLVMGetParam(fn, 1 + ns + k), LLVMBuildGEP2(g->b, p, argv, (LLVMValueRef[]){ci64(g, k)}, 1, ""));
    LLVMTypeRef call_pt[] = {p, i32, p, p};
    LLVMValueRef cargs[] = {LLVMGetParam(fn, 0), i32c(g, i), argv, symv};
    LLVMBuildRet(g->b, call_extern(g, "nnc_ctx_call", i32, call_pt, 4, cargs));
  }
}

const char *model_c_name(const Model *m) {
  static _Thread_local char buf[128];
  size_t n = 0;
  if (!isalpha((unsigned char)m->name[0]) && m->name[0] != '_') buf[n++] = '_';
  for (const char *s = m->name; *s && n < sizeof buf - 1; s++) buf[n++] = isalnum((unsigned char)*s) ? *s : '_';
  buf[n] = 0;
  return buf;
}

uint32_t entry_sym_mask(const Entry *e) {
  uint32_t mask = 0;
  for (int i = 0; i < e->nin; i++)
    for (int k = 0; k < e->inputs[i]->shape.rank; k++) mask |= e->inputs[i]->shape.d[k].syms;
  for (int i = 0; i < e->nout; i++)
    for (int k = 0; k < e->out_shapes[i].rank; k++) mask |= e->out_shapes[i].d[k].syms;
  return mask;
}

static void cg_init(Cg *g, LLVMContextRef ctx, LLVMModuleRef mod, const Model *m) {
  *g = (Cg){.ctx = ctx, .mod = mod, .m = m};
  g->b = LLVMCreateBuilderInContext(ctx);
  g->f32 = LLVMFloatTypeInContext(ctx);
  g->i64 = LLVMInt64TypeInContext(ctx);
  g->i32 = LLVMInt32TypeInContext(ctx);
  g->i8 = LLVMInt8TypeInContext(ctx);
  g->ptr = LLVMPointerTypeInContext(ctx, 0);
  g->voidt = LLVMVoidTypeInContext(ctx);
  g->entry_fn = LLVMFunctionType(g->voidt, (LLVMTypeRef[]){g->ptr, g->ptr, g->ptr, g->ptr}, 4, 0);
  g->kernel_fn = LLVMFunctionType(g->voidt, (LLVMTypeRef[]){g->ptr, g->ptr, g->i64, g->i64}, 4, 0);
  int regs;
  target_host_simd(&g->floats, &regs);
}

static void cg_done(Cg *g) {
  free(g->scope_open);
  for (int i = 0; i < g->nkernel_cache; i++) free(g->kernel_cache[i].key);
  free(g->kernel_cache);
  LLVMDisposeBuilder(g->b);
}

void codegen_init_only(LLVMContextRef ctx, LLVMModuleRef mod, const Model *m, const LEntry *les) {
  Cg g;
  cg_init(&g, ctx, mod, m);
  LLVMValueRef body = emit_entry_body(&g, &les[m->nentries]);
  LLVMSetLinkage(body, LLVMExternalLinkage);
  LLVMSetValueName2(body, "nnc_init", 8);
  cg_done(&g);
}

void codegen_model(LLVMContextRef ctx, LLVMModuleRef mod, const Model *m, const LEntry *les,
                   const unsigned char *weights) {
  Cg g;
  cg_init(&g, ctx, mod, m);
  g.body_fns = calloc(m->nbodies + 1, sizeof *g.body_fns); /* inner bodies come first */
  for (int i = 0; i < m->nbodies; i++) g.body_fns[i] = emit_entry_body(&g, &les[m->bodies[i]->lower_index]);
  LLVMValueRef *bodies = calloc(m->nentries + 1, sizeof *bodies);
  for (int i = 0; i < m->nentries; i++) bodies[i] = emit_entry_body(&g, &les[i]);
  /* with embedded weights, the compiler has computed the derived parameters already */
  if (m->init && !weights) bodies[m->nentries] = emit_entry_body(&g, &les[m->nentries]);
  LLVMValueRef desc = emit_desc(&g, les, bodies, weights);
  emit_wrappers(&g, desc);
  free(bodies);
  free(g.body_fns);
  cg_done(&g);
}
