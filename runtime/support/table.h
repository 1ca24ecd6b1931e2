/* table.h — checking a model table (nnc_model.h) before it is used, and the checksum of the
 * embedded weights.  Part of the support library: libc only, symbols hidden.
 *
 * A table read from a library file may be damaged (a truncated or modified .so): its counts
 * and pointers are checked against the memory of the object that holds it (the library's
 * loaded segments, from dl_iterate_phdr), so a bad count or pointer is an error, not a crash.
 * Other tables (JIT-compiled, or written by hand, whose arrays may be anywhere) get the
 * structural checks only: counts, ranks, dtypes, NULL pointers, offsets in the blob. */
#ifndef NNC_TABLE_H
#define NNC_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nnc_model.h"

/* 0, or -1 with "WHAT: error: the model table is damaged: <what, where>" in err.  `what`
 * names the library (NULL: the table's own name when readable).  from_file: the table was
 * just loaded from a library file (nnc_model_load); otherwise the memory checks apply when
 * the table lies in the same object as this code, i.e. a generated library's own table. */
int nnc_table_check(const nnc_model_desc *desc, const char *what, bool from_file, char *err,
                    size_t errlen);

/* syms[i] of every derived symbolic dim (rules[i].src >= 0) in `used` (a bitmask: an entry's
 * dims; those they derive from are computed too), in index order, from the dims before it: 0, or -1 with "<site> is V for <src> = v (must be at least 1)" in err when one
 * comes out below 1 or overflows.  Exported from every generated library: a caller that binds
 * the dims itself (the Python package) fills the rest with it. */
__attribute__((visibility("default"))) int nnc_derive_syms(const nnc_sym_rule *rules, int n,
                                                           const char *const *names, uint32_t used,
                                                           int64_t *syms, char *err, size_t errlen);

/* The checksum stored in nnc_model_desc.weights_checksum: 64 bits over bytes[n], four lanes
 * of 8-byte words (a multiply and rotate each), so any single flipped bit changes it.  Runs at
 * memory speed: once per context opened on embedded weights. */
uint64_t nnc_weights_checksum(const void *bytes, size_t n);

#endif
