/* call.c — LS_CALL: a call of a support library function that does a kernel's whole work
 * (nnc_rt_attention: runtime/support/attention.h), its shape arguments passed as an array
 * of i64 in the kernel's frame. */
#include "cg.h"

/* &buf[off] as a float pointer, or NULL for buffer -1 */
static LLVMValueRef buffer_arg(Cg *g, int buf, Lx *off) {
  if (buf < 0) return LLVMConstNull(g->ptr);
  if (!off) return g->bufs[buf];
  return gep_f32(g, g->bufs[buf], emit(g, off));
}

void emit_call(Cg *g, const Ls *s) {
  int nb = s->call.nbufs, n = s->call.nints;
  LLVMValueRef ints = entry_alloca(g, LLVMArrayType(g->i64, (unsigned)(n ? n : 1)), "ints");
  for (int i = 0; i < n; i++) {
    LLVMValueRef at = LLVMBuildGEP2(g->b, g->i64, ints, (LLVMValueRef[]){ci64(g, i)}, 1, "");
    LLVMBuildStore(g->b, emit(g, s->call.ints[i]), at);
  }
  LLVMTypeRef pt[8];
  LLVMValueRef args[8];
  for (int i = 0; i < nb; i++) {
    pt[i] = g->ptr;
    args[i] = buffer_arg(g, s->call.bufs[i], s->call.offs[i]);
  }
  pt[nb] = g->ptr;
  args[nb] = ints;
  pt[nb + 1] = g->f32;
  args[nb + 1] = cf32(g, s->call.f);
  call_extern(g, s->call.fn, g->voidt, pt, nb + 2, args);
}
