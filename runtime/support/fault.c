/* fault.c — the words of run-time faults (fault.h); the pool records them (pool.c). */
#include <math.h>
#include <stdio.h>
#include "fault.h"

void nnc_describe_bad_index(char *buf, size_t len, double value, int64_t size) {
  if (isnan(value)) snprintf(buf, len, "nan, which is not a number");
  else if (value >= 0 && value < (double)size && value != trunc(value))
    snprintf(buf, len, "%.9g, which is not a whole number", value);
  else if (value == trunc(value) && fabs(value) < 1e18) /* whole: every digit, 1099511627776 */
    snprintf(buf, len, "%.0f, outside [0, %lld)", value, (long long)size);
  else snprintf(buf, len, "%.9g, outside [0, %lld)", value, (long long)size);
}
