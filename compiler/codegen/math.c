/* math.c — the elementwise ops of ops.def as LLVM IR, on scalars or (inside a vector row)
 * on vectors: exp is a Cephes-style polynomial in IR so that it vectorizes, and tanh,
 * sigmoid, elu and softplus are built on it; emit_scalar_op is the switch over the ops, and
 * reduce_op the accumulation of a reduction.  What the other files need to know of an op
 * (whether a vector row can emit it, whether its code is a long dependency chain) are the
 * traits of its ops.def row (op_info[op].traits: OPT_VECTOR, OPT_CHAIN). */
#include <math.h>
#include <stdio.h>
#include "cg.h"
#include "scalar.h"

/* p(a, b) ? t : f, for floats (scalars or vectors) */
LLVMValueRef fsel(Cg *g, LLVMRealPredicate p, LLVMValueRef a, LLVMValueRef b, LLVMValueRef t, LLVMValueRef f) {
  return LLVMBuildSelect(g->b, LLVMBuildFCmp(g->b, p, a, b, ""), t, f, "");
}

/* An i32 constant, splat as cf32's (exp's exponent bits). */
static LLVMValueRef ci32(Cg *g, int v) { return const_lanes(g, LLVMConstInt(g->i32, (unsigned long long)(long long)v, 1)); }

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
  *ni = LLVMBuildFPToSI(g->b, n, lanes_of(g, g->i32), "");
  return b_add(g, b_fma(g, b_mul(g, p, r), r, r), cf32(g, 1.0));
}

/* 2^k for a whole k of the normal range (-126 .. 127): its exponent bits. */
static LLVMValueRef pow2_normal(Cg *g, LLVMValueRef k) {
  LLVMValueRef biased = LLVMBuildAdd(g->b, k, ci32(g, 127), "");
  return LLVMBuildBitCast(g->b, LLVMBuildShl(g->b, biased, ci32(g, 23), ""), lanes_of(g, g->f32), "");
}

static LLVMValueRef clamp(Cg *g, LLVMValueRef x, double lo, double hi) {
  return intrinsic(g, "llvm.minnum", (LLVMValueRef[]){intrinsic(g, "llvm.maxnum", (LLVMValueRef[]){x, cf32(g, lo)}, 2), cf32(g, hi)}, 2);
}

/* exp(x): 2^n applied in two halves so that results down to the subnormal range and
 * overflow to inf come out right; NaN propagates.  Max error about 1 ulp. */
static LLVMValueRef emit_exp(Cg *g, LLVMValueRef x) {
  LLVMValueRef ni, y = exp_reduced(g, clamp(g, x, -104.0, 89.0), &ni);
  LLVMValueRef h1 = LLVMBuildAShr(g->b, ni, ci32(g, 1), "");
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
  y = b_mul(g, b_mul(g, y, pow2_normal(g, LLVMBuildSub(g->b, ni, ci32(g, 1), ""))), cf32(g, 2.0));
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

/* c[0] x^(n-1) + ... + c[n-1], by Horner's rule */
static LLVMValueRef horner(Cg *g, const double *c, int n, LLVMValueRef x) {
  LLVMValueRef p = cf32(g, c[0]);
  for (int i = 1; i < n; i++) p = b_fma(g, p, x, cf32(g, c[i]));
  return p;
}

/* erf(x), odd: on |x| < 0.921875 x P(x^2), above it 1 - e^Q(|x|) with Q a fit of log erfc on
 * [0.921875, 4] (erf rounds to 1 beyond 3.92); NaN propagates.  Least-squares fits in double
 * (tests/tools/erf_fit.py); within 2.4 ulp of the true erf over [-6, 6] in float32. */
static LLVMValueRef emit_erf(Cg *g, LLVMValueRef x) {
  static const double p[] = {8.410999236e-05, -8.153776335e-04, 5.202175765e-03, -2.685995729e-02,
                             1.128370843e-01, -3.761263494e-01, 1.128379167e+00};
  static const double q[] = {1.613085736e-06, -4.557087454e-05, 5.925991845e-04, -4.739406182e-03, 2.636234856e-02,
                             -1.099739925e-01, -6.319416913e-01, -1.130163947e+00, 3.025342480e-04};
  LLVMValueRef ax = intrinsic(g, "llvm.fabs", &x, 1);
  LLVMValueRef small = b_mul(g, ax, horner(g, p, 7, b_mul(g, ax, ax)));
  LLVMValueRef cx = intrinsic(g, "llvm.minnum", (LLVMValueRef[]){ax, cf32(g, 4.0)}, 2);
  LLVMValueRef big = b_sub(g, cf32(g, 1.0), emit_exp(g, horner(g, q, 9, cx)));
  LLVMValueRef r = fsel(g, LLVMRealOLT, ax, cf32(g, 0.921875), small, big);
  r = intrinsic(g, "llvm.copysign", (LLVMValueRef[]){r, x}, 2);
  return fsel(g, LLVMRealUNO, x, x, x, r);
}

/* log(1 + x) without cancellation: log(u) x / (u - 1) with u = 1 + x rounded (the error of
 * the rounding cancels), x itself where u is 1, and +inf at +inf. */
static LLVMValueRef emit_log1p(Cg *g, LLVMValueRef x) {
  LLVMValueRef u = b_add(g, cf32(g, 1.0), x), um1 = b_sub(g, u, cf32(g, 1.0));
  LLVMValueRef r = b_div(g, b_mul(g, emit_log(g, u), x), um1);
  r = fsel(g, LLVMRealOEQ, um1, cf32(g, 0.0), x, r);
  return fsel(g, LLVMRealOEQ, x, cf32(g, INFINITY), x, r);
}

/* min(max(x, lo), hi) that keeps NaN (torch.clamp) */
static LLVMValueRef emit_clamp(Cg *g, LLVMValueRef x, double lo, double hi) {
  return fsel(g, LLVMRealOLT, x, cf32(g, lo), cf32(g, lo), fsel(g, LLVMRealOGT, x, cf32(g, hi), cf32(g, hi), x));
}

static LLVMValueRef bool_to_f(Cg *g, LLVMValueRef c) { return LLVMBuildUIToFP(g->b, c, lanes_of(g, g->f32), ""); }
LLVMValueRef nonzero(Cg *g, LLVMValueRef x) { return LLVMBuildFCmp(g->b, LLVMRealUNE, x, cf32(g, 0), ""); }

/* CHECK_INDEX: x (an f32 index) if it is an index of a dimension of `size` elements (whole,
 * in [0, size), not NaN: ordered compares), else the failure path: report it with its site's
 * message (runtime/support/fault.h) and return from the kernel at once.  A check on a value
 * invariant in a loop is hoisted out of it (LLVM unswitches a branch that leaves the loop),
 * so the loop still vectorizes. */
static LLVMValueRef emit_check_index(Cg *g, LLVMValueRef x, LLVMValueRef size, int site) {
  LLVMTypeRef f64 = LLVMDoubleTypeInContext(g->ctx);
  LLVMValueRef d = LLVMBuildFPExt(g->b, x, f64, ""), n = LLVMBuildFPExt(g->b, size, f64, "");
  LLVMValueRef whole = LLVMBuildFCmp(g->b, LLVMRealOEQ, d, intrinsic(g, "llvm.trunc", &d, 1), "");
  LLVMValueRef ok = LLVMBuildAnd(g->b, LLVMBuildFCmp(g->b, LLVMRealOGE, d, LLVMConstReal(f64, 0), ""),
                                 LLVMBuildFCmp(g->b, LLVMRealOLT, d, n, ""), "");
  ok = LLVMBuildAnd(g->b, ok, whole, "");
  LLVMBasicBlockRef bad = LLVMAppendBasicBlockInContext(g->ctx, g->fn, "bad_index");
  LLVMBasicBlockRef good = LLVMAppendBasicBlockInContext(g->ctx, g->fn, "index_ok");
  LLVMBuildCondBr(g->b, ok, good, bad);
  LLVMPositionBuilderAtEnd(g->b, bad);
  char name[32];
  snprintf(name, sizeof name, "nnc.site.%d", site);
  LLVMValueRef text = LLVMGetNamedGlobal(g->mod, name);
  if (!text) text = LLVMBuildGlobalStringPtr(g->b, g->m->sites[site], name);
  LLVMTypeRef pt[] = {g->ptr, f64, g->i64};
  LLVMValueRef call = call_extern(g, "nnc_rt_index_error", g->voidt, pt, 3,
                                  (LLVMValueRef[]){text, d, LLVMBuildFPToSI(g->b, n, g->i64, "")});
  unsigned cold = LLVMGetEnumAttributeKindForName("cold", 4);
  LLVMAddCallSiteAttribute(call, LLVMAttributeFunctionIndex, LLVMCreateEnumAttribute(g->ctx, cold, 0));
  LLVMBuildRetVoid(g->b); /* every kernel function returns void */
  LLVMPositionBuilderAtEnd(g->b, good);
  return x;
}

/* One elementwise op of ops.def on scalars (torch's semantics, NaN included).  The switch
 * has no default and the other ops are listed as unreachable: an elementwise op of ops.def
 * without a case here does not compile (-Wswitch as an error). */
#pragma GCC diagnostic push
#pragma GCC diagnostic error "-Wswitch"
LLVMValueRef emit_scalar_op(Cg *g, Op op, const double *attr, LLVMValueRef *a) {
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
  case OP_SILU: return b_div(g, x, b_add(g, one, emit_exp_beside_one(g, LLVMBuildFNeg(g->b, x, ""))));
  case OP_MISH: {
    double softplus[2] = {1.0, 20.0};
    return b_mul(g, x, emit_tanh(g, emit_scalar_op(g, OP_SOFTPLUS, softplus, a)));
  }
  case OP_ERF: return emit_erf(g, x);
  case OP_GELU: return b_mul(g, b_mul(g, x, cf32(g, 0.5)), b_add(g, one, emit_erf(g, b_mul(g, x, cf32(g, M_SQRT1_2)))));
  case OP_GELU_TANH: {
    LLVMValueRef inner = b_mul(g, cf32(g, M_SQRT2 * M_2_SQRTPI * 0.5), b_add(g, x, b_mul(g, cf32(g, 0.044715), b_mul(g, b_mul(g, x, x), x))));
    return b_mul(g, b_mul(g, cf32(g, 0.5), x), b_add(g, one, emit_tanh(g, inner)));
  }
  case OP_HARDTANH: return emit_clamp(g, x, attr[0], attr[1]);
  case OP_RELU6: return emit_clamp(g, x, 0, 6);
  case OP_HARDSIGMOID: return b_div(g, emit_clamp(g, b_add(g, x, cf32(g, 3)), 0, 6), cf32(g, 6));
  case OP_HARDSWISH: return b_div(g, b_mul(g, x, emit_clamp(g, b_add(g, x, cf32(g, 3)), 0, 6)), cf32(g, 6));
  case OP_SELU: {
    LLVMValueRef neg = b_mul(g, cf32(g, SELU_SCALE * SELU_ALPHA), emit_expm1(g, x));
    return fsel(g, LLVMRealOGT, x, zero, b_mul(g, cf32(g, SELU_SCALE), x), neg);
  }
  case OP_CELU: {
    LLVMValueRef neg = b_mul(g, cf32(g, attr[0]), emit_expm1(g, b_div(g, x, cf32(g, attr[0]))));
    return fsel(g, LLVMRealOGT, x, zero, x, fsel(g, LLVMRealUNO, x, x, x, neg));
  }
  case OP_LOGSIGMOID: {
    LLVMValueRef ax = intrinsic(g, "llvm.fabs", &x, 1);
    LLVMValueRef m = intrinsic(g, "llvm.minnum", (LLVMValueRef[]){x, zero}, 2);
    return fsel(g, LLVMRealUNO, x, x, x, b_sub(g, m, emit_log1p(g, emit_exp(g, LLVMBuildFNeg(g->b, ax, "")))));
  }
  case OP_SOFTSIGN: return b_div(g, x, b_add(g, one, intrinsic(g, "llvm.fabs", &x, 1)));
  case OP_TANHSHRINK: return b_sub(g, x, emit_tanh(g, x));
  case OP_FLOOR: return intrinsic(g, "llvm.floor", &x, 1);
  case OP_CEIL: return intrinsic(g, "llvm.ceil", &x, 1);
  case OP_TRUNC: return intrinsic(g, "llvm.trunc", &x, 1);
  case OP_ROUND: return intrinsic(g, "llvm.roundeven", &x, 1);
  case OP_SIGN:
    return b_sub(g, bool_to_f(g, LLVMBuildFCmp(g->b, LLVMRealOGT, x, zero, "")), bool_to_f(g, LLVMBuildFCmp(g->b, LLVMRealOLT, x, zero, "")));
  case OP_RSQRT: return b_div(g, one, intrinsic(g, "llvm.sqrt", &x, 1));
  case OP_RECIPROCAL: return b_div(g, one, x);
  case OP_SQUARE: return b_mul(g, x, x);
  case OP_LOG1P: return emit_log1p(g, x);
  case OP_EXPM1: return emit_expm1(g, x);
  case OP_NOT: return bool_to_f(g, LLVMBuildFCmp(g->b, LLVMRealOEQ, x, zero, ""));
  case OP_ADD: return b_add(g, x, y);
  case OP_SUB: return b_sub(g, x, y);
  case OP_MUL: return b_mul(g, x, y);
  case OP_DIV: return b_div(g, x, y);
  case OP_POW: return intrinsic(g, "llvm.pow", a, 2);
  case OP_MAX: return intrinsic(g, "llvm.maximum", a, 2);
  case OP_MIN: return intrinsic(g, "llvm.minimum", a, 2);
  case OP_EQ: return bool_to_f(g, LLVMBuildFCmp(g->b, LLVMRealOEQ, x, y, ""));
  case OP_NE: return bool_to_f(g, LLVMBuildFCmp(g->b, LLVMRealUNE, x, y, ""));
  case OP_LT: return bool_to_f(g, LLVMBuildFCmp(g->b, LLVMRealOLT, x, y, ""));
  case OP_LE: return bool_to_f(g, LLVMBuildFCmp(g->b, LLVMRealOLE, x, y, ""));
  case OP_GT: return bool_to_f(g, LLVMBuildFCmp(g->b, LLVMRealOGT, x, y, ""));
  case OP_GE: return bool_to_f(g, LLVMBuildFCmp(g->b, LLVMRealOGE, x, y, ""));
  case OP_AND: return bool_to_f(g, LLVMBuildAnd(g->b, nonzero(g, x), nonzero(g, y), ""));
  case OP_OR: return bool_to_f(g, LLVMBuildOr(g->b, nonzero(g, x), nonzero(g, y), ""));
  case OP_WHERE: return LLVMBuildSelect(g->b, nonzero(g, x), y, a[2], "");
  case OP_CHECK_INDEX: return emit_check_index(g, x, y, (int)attr[0]);
#define OP(id, nm, ar, kind, print) case OP_##id:
#define ELEM(id, nm, ar, traits, fn, layer, attrs, ev)
#include "ops.def"
  case OP_COUNT: break;
  }
  unreachable("not an elementwise op");
}
#pragma GCC diagnostic pop

/* acc op v for a reduction accumulator: a sum, or a maximum that propagates NaN the way
 * torch's max kernels do (`v > acc || isnan(v) ? v : acc`; an accumulated NaN stays).  Two
 * compares and selects vectorize to vmaxps-like code; llvm.maximum, which also orders -0
 * below +0, becomes a dozen scalar instructions per element on x86. */
LLVMValueRef reduce_op(Cg *g, Op rop, LLVMValueRef acc, LLVMValueRef v) {
  if (rop == OP_SUM) return b_add(g, acc, v);
  LLVMValueRef larger = fsel(g, LLVMRealOGT, v, acc, v, acc);
  return fsel(g, LLVMRealUNO, v, v, v, larger);
}

LLVMValueRef reduce_identity(Cg *g, Op rop) { return cf32(g, rop == OP_SUM ? 0.0 : -INFINITY); }

/* ---- what the other files need to know of each op ---- */
