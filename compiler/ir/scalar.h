/* scalar.h — helpers of the scalar semantics written in ops.def's EVAL column (in double,
 * PyTorch's behaviour with NaN and signed zeros), shared by constant folding (ops.c) and the
 * reference interpreter (interp.c). */
#ifndef NNC_SCALAR_H
#define NNC_SCALAR_H

#include <math.h>
#include <stdbool.h>

/* torch.relu keeps NaN */
static inline double scalar_relu(double x) { return isnan(x) ? x : x > 0 ? x : 0; }

/* torch.maximum / minimum: NaN from either side; +0 is above -0 (as llvm.maximum) */
static inline double scalar_maximum(double a, double b) {
  if (isnan(a) || isnan(b)) return NAN;
  if (a == b) return signbit(a) ? b : a;
  return a > b ? a : b;
}
static inline double scalar_minimum(double a, double b) {
  if (isnan(a) || isnan(b)) return NAN;
  if (a == b) return signbit(a) ? a : b;
  return a < b ? a : b;
}

/* F.softplus(x, beta, threshold): linear where beta * x > threshold */
static inline double scalar_softplus(double x, double beta, double threshold) {
  return beta * x > threshold ? x : log1p(exp(beta * x)) / beta;
}

/* torch.clamp / F.hardtanh: NaN stays NaN */
static inline double scalar_clamp(double x, double lo, double hi) { return x < lo ? lo : x > hi ? hi : x; }

/* F.selu and F.celu (torch's constants; NaN stays NaN) */
#define SELU_ALPHA 1.6732632423543772848170429916717
#define SELU_SCALE 1.0507009873554804934193349852946
static inline double scalar_selu(double x) { return x > 0 ? SELU_SCALE * x : SELU_SCALE * SELU_ALPHA * expm1(x); }
static inline double scalar_celu(double x, double alpha) {
  return isnan(x) ? x : fmax(0.0, x) + fmin(0.0, alpha * expm1(x / alpha));
}

/* F.gelu(x, approximate="tanh") */
static inline double scalar_gelu_tanh(double x) {
  return 0.5 * x * (1 + tanh(M_SQRT2 * M_2_SQRTPI * 0.5 * (x + 0.044715 * x * x * x)));
}

/* An index of a dimension of `size` elements: whole, in [0, size) (NaN is not) */
static inline bool scalar_index_ok(double i, double size) { return i >= 0 && i < size && i == trunc(i); }

#endif
