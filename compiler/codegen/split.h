/* split.h — a module's object code made on several threads.  The functions of the module
 * are shared out between up to SPLIT_MAX_PARTS parts by size (functions that call one another
 * directly stay together, so inlining and interprocedural constant propagation see what they
 * saw); each part is optimised and compiled in an LLVM context and with a TargetMachine of
 * its own, by the calling thread or one started here (as many as the CPUs, less one); the
 * objects link into one library or load into one JIT.  Globals one part uses from another
 * become hidden external symbols (renamed "__nnc_split.NAME"), reached from the other parts
 * through the GOT; nothing else about the code changes, so it computes the same bits.  A small module stays whole.  The split depends on
 * the module alone, never on the machine, so the same module always gives the same
 * objects. */
#ifndef NNC_SPLIT_H
#define NNC_SPLIT_H

#include <stddef.h>
#include "target.h"

enum { SPLIT_MAX_PARTS = 4 };

typedef struct ObjCode {
  int n;                        /* objects, 1 to SPLIT_MAX_PARTS */
  void *obj[SPLIT_MAX_PARTS];   /* malloc'd */
  size_t len[SPLIT_MAX_PARTS];
} ObjCode;

void objcode_free(ObjCode *c); /* frees the objects; harmless on a zeroed ObjCode */

/* Verify m, optimise it with pipeline p and emit its object code into *out (one object, or
 * several made in parallel when m is large enough).  t's TargetMachine compiles the part that
 * stays on this thread.  m is rewritten; dispose it afterwards.  0, or -1 with a message. */
int split_compile(Target *t, LLVMModuleRef m, TargetPipeline p, ObjCode *out, char *err,
                  size_t errlen);

#endif
