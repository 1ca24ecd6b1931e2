/* ops.c — the op table (expanded from ops.def) and the scalar semantics of elementwise ops,
 * in double precision, used by constant folding. */
#include <math.h>
#include <stdlib.h>
#include "ir.h"

static double eval_neg(const double *x, const double *a) { return -x[0]; }
static double eval_exp(const double *x, const double *a) { return exp(x[0]); }
static double eval_log(const double *x, const double *a) { return log(x[0]); }
static double eval_sqrt(const double *x, const double *a) { return sqrt(x[0]); }
static double eval_sin(const double *x, const double *a) { return sin(x[0]); }
static double eval_cos(const double *x, const double *a) { return cos(x[0]); }
static double eval_abs(const double *x, const double *a) { return fabs(x[0]); }
static double eval_tanh(const double *x, const double *a) { return tanh(x[0]); }
static double eval_sigmoid(const double *x, const double *a) { return 1 / (1 + exp(-x[0])); }
static double eval_relu(const double *x, const double *a) { return x[0] > 0 ? x[0] : (x[0] != x[0] ? x[0] : 0); }
static double eval_elu(const double *x, const double *a) { return x[0] > 0 ? x[0] : a[0] * expm1(x[0]); }
static double eval_leaky_relu(const double *x, const double *a) { return x[0] > 0 ? x[0] : a[0] * x[0]; }
/* torch.nn.functional.softplus: linear above threshold (in units of beta * x) */
static double eval_softplus(const double *x, const double *a) {
  return x[0] * a[0] > a[1] ? x[0] : log1p(exp(a[0] * x[0])) / a[0];
}
static double eval_not(const double *x, const double *a) { return x[0] == 0; }
static double eval_add(const double *x, const double *a) { return x[0] + x[1]; }
static double eval_sub(const double *x, const double *a) { return x[0] - x[1]; }
static double eval_mul(const double *x, const double *a) { return x[0] * x[1]; }
static double eval_div(const double *x, const double *a) { return x[0] / x[1]; }
static double eval_pow(const double *x, const double *a) { return pow(x[0], x[1]); }
/* torch.maximum / minimum propagate NaN from either side */
static double eval_max(const double *x, const double *a) { return isnan(x[0]) || isnan(x[1]) ? NAN : fmax(x[0], x[1]); }
static double eval_min(const double *x, const double *a) { return isnan(x[0]) || isnan(x[1]) ? NAN : fmin(x[0], x[1]); }
static double eval_eq(const double *x, const double *a) { return x[0] == x[1]; }
static double eval_ne(const double *x, const double *a) { return x[0] != x[1]; }
static double eval_lt(const double *x, const double *a) { return x[0] < x[1]; }
static double eval_le(const double *x, const double *a) { return x[0] <= x[1]; }
static double eval_gt(const double *x, const double *a) { return x[0] > x[1]; }
static double eval_ge(const double *x, const double *a) { return x[0] >= x[1]; }
static double eval_and(const double *x, const double *a) { return x[0] != 0 && x[1] != 0; }
static double eval_or(const double *x, const double *a) { return x[0] != 0 || x[1] != 0; }
static double eval_where(const double *x, const double *a) { return x[0] != 0 ? x[1] : x[2]; }

const OpInfo op_info[OP_COUNT] = {
#define OP(id, nm, ar, kd, ev) [OP_##id] = {nm, ar, FK_##kd, ev},
#include "ops.def"
#undef OP
};

_Noreturn void nnc_unreachable(const char *file, int line, const char *what) {
  fprintf(stderr, "nnc: internal error at %s:%d: %s\n", file, line, what);
  abort();
}
