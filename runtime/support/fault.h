/* fault.h — run-time faults that generated code reports (support library, hidden).
 *
 * An op that takes indices at run time (gather, index_select, Embedding, one_hot, roi_align's
 * batch index) checks each one (ops.def CHECK_INDEX): a bad index makes its kernel report it
 * here and return at once, and the call fails with NNC_ERR_USER and the message, as PyTorch
 * raises.  The first fault of a call wins; the pool keeps it (pool.h: nnc_pool_take_fault). */
#ifndef NNC_FAULT_H
#define NNC_FAULT_H

#include <stddef.h>
#include <stdint.h>

/* Why `value` is not an index of a dimension of `size` elements, as the words after
 * "<argument> holds": "7, outside [0, 5)", "nan, which is not a number", "1.5, which is not a
 * whole number".  The compiler words a constant index's diagnostic with it too. */
void nnc_describe_bad_index(char *buf, size_t len, double value, int64_t size);

/* Generated code: index `value` at check site `site` ("model.nn:4:9: gather: argument
 * 'index'") is not an index of a dimension of `size` elements. */
void nnc_rt_index_error(const char *site, double value, int64_t size);

#endif
