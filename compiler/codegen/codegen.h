/* codegen.h — loop-nest IR → LLVM IR: one internal function per kernel, one body function
 * per entry, the introspection table of nnc_model.h, and the typed C wrappers. */
#ifndef NNC_CODEGEN_H
#define NNC_CODEGEN_H

#include <llvm-c/Core.h>
#include "loopir.h"

#define MODEL_C_NAME_MAX 128 /* bytes of a model_c_name buffer, its 0 included */

/* C identifier for the model (the .nn file's base name, sanitized, cut to size - 1 bytes),
 * written to buf; returns buf. */
const char *model_c_name(const Model *m, char *buf, size_t size);
/* Bitmask of the symbolic dims appearing in an entry's arguments: the int64_t parameters
 * of its typed wrapper, in increasing symbol order. */
uint32_t entry_sym_mask(const Model *m, const Entry *e); /* the syms a caller passes */

/* Fill module `mod` (in context `ctx`, already configured for the target).  `weights` (may
 * be NULL) is the blob to embed, of m->weights_size bytes. */
void codegen_model(LLVMContextRef ctx, LLVMModuleRef mod, const Model *m, const LEntry *les,
                   const unsigned char *weights);

/* Only the init entry, as the external function `nnc_init` (an nnc_entry_fn): the compiler
 * JIT-runs it to compute derived parameters into weights it embeds. */
void codegen_init_only(LLVMContextRef ctx, LLVMModuleRef mod, const Model *m, const LEntry *les);

#endif
