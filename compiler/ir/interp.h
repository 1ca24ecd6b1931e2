/* interp.h — the reference interpreter: evaluates one entry's graph IR node by node, in
 * topological order, into plain float arrays — no fusion, no loop nests, no LLVM.  It is the
 * oracle the differential tester (tests/difftest/) compares the JIT and AOT code with, so it
 * is written to be obviously correct rather than fast: every op is a loop over its output's
 * elements, in double precision — or rounding every result to float32, to estimate how
 * sensitive each output is to float32 round-off.
 *
 * It runs on the IR as sema builds it (stage "ir") or after fold/cse/dce (stage "opt"); after
 * fusion it still works (kernels are ignored) except for the copy nodes fusion adds. */
#ifndef NNC_INTERP_H
#define NNC_INTERP_H

#include "ir.h"

/* Bind the model's symbolic dims from the shapes of the entry's inputs: ranks[i] and
 * shapes[i][0..ranks[i]) for input i.  Checks every static dim and that each symbol gets one
 * value (0 too: empty tensors); syms[m->nsyms] receives the values (0 for symbols no input binds).
 * Returns 0, or -1 with a message naming the input in err. */
int interp_bind(const Model *m, const Entry *e, const int *ranks, const int64_t *const *shapes,
                int64_t *syms, char *err, size_t errlen);

/* The concrete value of a dim for the given symbol values. */
int64_t interp_dim(Dim d, const int64_t *syms);

/* Evaluate entry `e` of model `m`.
 *   weights  the weight blob laid out by m->params[].offset (NULL if the model has none)
 *   inputs   one C-order array per entry input, f32 or i64 as declared
 *   syms     the value of every symbolic dim of the model, by index
 *   rounding INTERP_DOUBLE: compute in double (the oracle); INTERP_F32: round every result
 *            and partial sum to float32; INTERP_F32_RANDOM: to one of the two nearest float32
 *            values at random (seeded by `seed`; reproducible) — runs with different seeds
 *            scatter like the possible float32 implementations of the entry do
 *   outputs  receives one malloc'd array per entry output (free with free()), f32 or i64 as
 *            declared (an i64 output's values toward zero, as compiled code stores them), of
 *            the output node's shape under syms
 * Returns 0, or -1 with a message in err (out of memory, a size that overflows, an unbound
 * symbol).  An op the interpreter does not know is an internal error (unreachable). */
typedef enum InterpRounding { INTERP_DOUBLE, INTERP_F32, INTERP_F32_RANDOM } InterpRounding;
int interp_run(const Model *m, const Entry *e, const void *weights, const void *const *inputs,
               const int64_t *syms, InterpRounding rounding, uint64_t seed, void **outputs, char *err,
               size_t errlen);

#endif
