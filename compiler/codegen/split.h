/* split.h — a module's object code made on two threads.  The functions of the module are
 * shared out between two parts by size (functions that call one another directly stay
 * together, so inlining and interprocedural constant propagation see what they saw); each
 * part is optimised and compiled in an LLVM context and with a TargetMachine of its own, one
 * on the calling thread, one on a thread started here; the two objects link into one library
 * or load into one JIT.  Globals one part uses from the other become hidden external symbols
 * (renamed "__nnc_split.NAME"); nothing else about the code changes, so it computes the same
 * bits.  A small module stays whole.  The split depends on the module alone, never on the
 * machine, so the same module always gives the same objects. */
#ifndef NNC_SPLIT_H
#define NNC_SPLIT_H

#include <stddef.h>
#include "target.h"

enum { SPLIT_MAX_PARTS = 2 };

typedef struct ObjCode {
  int n;                        /* objects, 1 or 2 */
  void *obj[SPLIT_MAX_PARTS];   /* malloc'd */
  size_t len[SPLIT_MAX_PARTS];
} ObjCode;

void objcode_free(ObjCode *c); /* frees the objects; harmless on a zeroed ObjCode */

/* Verify m, optimise it with pipeline p and emit its object code into *out (one object, or
 * two made in parallel when m is large enough).  t's TargetMachine compiles the part that
 * stays on this thread.  m is rewritten; dispose it afterwards.  0, or -1 with a message. */
int split_compile(Target *t, LLVMModuleRef m, TargetPipeline p, ObjCode *out, char *err,
                  size_t errlen);

#endif
