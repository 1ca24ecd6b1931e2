/* scan.h — run-time loops (scan.c): the language's `scan` statement, and scans built from C
 * by layers (LSTM). */
#ifndef NNC_SCAN_H
#define NNC_SCAN_H

#include "value.h"

bool exec_scan(Sema *S, Scope *sc, const Node *n);
/* A scan built from C: open (carried initial values -> body inputs; the body is now being
 * built), take step slices, close with the next values and per-step outputs (stacked on
 * axes[j]); results: final carried values, then the stacked outputs.  A reverse scan runs its
 * steps from the last to the first; step slices and stacked outputs stay at their step. */
ScanCtx *scan_open(Sema *S, Dim bound, bool reverse, INode **init, int nc, INode **carried_in, SrcLoc loc);
INode *scan_step_of(Sema *S, INode *x, int axis, SrcLoc loc);
INode *scan_capture(Sema *S, INode *x);
bool scan_close(Sema *S, ScanCtx *c, INode **init, INode **carried_in, INode **carried_out, int nc,
                INode **steps, const int *axes, int ns, SrcLoc loc, INode **results);
/* Inside a scan body: an outer tensor read by the body becomes one of its inputs. */
bool capture_value(Sema *S, Value *v);
bool assign_step_output(Sema *S, Scope *sc, const Node *target, const Value *v);
bool scan_index(Sema *S, INode *t, int axis, const Value *index, SrcLoc loc, INode **out);
/* Whether v is the step of a scan around the code being evaluated. */
bool is_scan_step(Sema *S, const Value *v);

#endif
