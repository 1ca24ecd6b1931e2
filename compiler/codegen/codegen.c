/* codegen.c — loop-nest IR → LLVM IR (through the LLVM C API only): the core.
 *
 * Every kernel becomes an internal function (args, syms, weights, workspace); an entry's
 * body calls its kernels in order.  Expressions are emitted where they are used and
 * memoized per loop scope; LLVM's O3 pipeline hoists invariants and vectorizes the inner
 * loops.  Matmuls call OpenBLAS's cblas_sgemm (through nnc_rt_sgemm: pool.h), a scan calls
 * its body's function per step.  The rest is in the files cg.h lists: the ops' math
 * (math.c), loops (loops.c), vector rows (vector_row.c), the convolution kernel
 * (conv_tile.c), and after the entries the introspection table (nnc_model.h) and the typed
 * wrappers `<model>_<entry>` (model_table.c). */
#include <stdlib.h>
#include <string.h>
#include <llvm-c/DebugInfo.h>
#include "cg.h"
#include "target.h"

/* ---- helpers ---- */

/* Mark a load or store of buffer `buf` with the kernel's alias scopes (alias_scopes). */
LLVMValueRef buffer_access(Cg *g, LLVMValueRef inst, int buf) {
  if (buf >= 0 && g->buf_scope && g->buf_scope[buf]) {
    LLVMSetMetadata(inst, LLVMGetMDKindIDInContext(g->ctx, "alias.scope", 11), g->buf_scope[buf]);
    LLVMSetMetadata(inst, LLVMGetMDKindIDInContext(g->ctx, "noalias", 7), g->buf_noalias[buf]);
  }
  return inst;
}

LLVMValueRef ci64(Cg *g, int64_t v) { return LLVMConstInt(g->i64, (unsigned long long)v, 1); }

/* Scalar constant c, or a vector of `vec_lanes` copies of it while an op of a vector row is
 * emitted (emit_scalar_op on vectors, vector_row); lanes_of is the matching type. */
LLVMValueRef const_lanes(Cg *g, LLVMValueRef c) {
  if (!g->vec_lanes) return c;
  LLVMValueRef e[16];
  for (int l = 0; l < g->vec_lanes; l++) e[l] = c;
  return LLVMConstVector(e, (unsigned)g->vec_lanes);
}

LLVMTypeRef lanes_of(Cg *g, LLVMTypeRef t) { return g->vec_lanes ? LLVMVectorType(t, (unsigned)g->vec_lanes) : t; }

/* A float constant, as const_lanes. */
LLVMValueRef cf32(Cg *g, double v) { return const_lanes(g, LLVMConstReal(g->f32, v)); }

/* A call of intrinsic `name` overloaded on the types ty[0..nty). */
static LLVMValueRef intrinsic_of(Cg *g, const char *name, LLVMTypeRef *ty, int nty, LLVMValueRef *args, int n) {
  unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
  LLVMValueRef f = LLVMGetIntrinsicDeclaration(g->mod, id, ty, (size_t)nty);
  return LLVMBuildCall2(g->b, LLVMIntrinsicGetType(g->ctx, id, ty, (size_t)nty), f, args, (unsigned)n, "");
}

/* An overloaded float intrinsic, for the type of its first argument (f32 or a vector). */
LLVMValueRef intrinsic(Cg *g, const char *name, LLVMValueRef *args, int n) {
  return intrinsic_of(g, name, (LLVMTypeRef[]){LLVMTypeOf(args[0])}, 1, args, n);
}

LLVMValueRef gep_f32(Cg *g, LLVMValueRef base, LLVMValueRef idx) {
  return LLVMBuildGEP2(g->b, g->f32, base, &idx, 1, "");
}

LLVMValueRef splat(Cg *g, LLVMTypeRef vt, LLVMValueRef v) {
  unsigned n = LLVMGetVectorSize(vt);
  LLVMValueRef ins = LLVMBuildInsertElement(g->b, LLVMGetUndef(vt), v, LLVMConstInt(g->i32, 0, 0), "");
  return LLVMBuildShuffleVector(g->b, ins, LLVMGetUndef(vt), LLVMConstNull(LLVMVectorType(g->i32, n)), "");
}

LLVMValueRef call_extern(Cg *g, const char *name, LLVMTypeRef ret, LLVMTypeRef *pt, int np,
                         LLVMValueRef *args) {
  LLVMTypeRef ft = LLVMFunctionType(ret, pt, np, 0);
  LLVMValueRef f = LLVMGetNamedFunction(g->mod, name);
  if (!f) f = LLVMAddFunction(g->mod, name, ft);
  return LLVMBuildCall2(g->b, ft, f, args, np, "");
}

/* nnc_rt_parallel_for(fn, bufs, syms, n, work): fn, an nnc_kernel_fn, over [0, n) split
 * among the pool's threads (runtime/support/pool.h). */
void call_parallel(Cg *g, const char *runtime_fn, LLVMValueRef fn, LLVMValueRef bufs, LLVMValueRef n, int64_t work) {
  LLVMTypeRef pt[] = {g->ptr, g->ptr, g->ptr, g->i64, g->i64};
  call_extern(g, runtime_fn, g->voidt, pt, 5, (LLVMValueRef[]){fn, bufs, g->syms, n, ci64(g, work)});
}

static void call_parallel_for(Cg *g, LLVMValueRef fn, LLVMValueRef bufs, LLVMValueRef n, int64_t work) {
  call_parallel(g, "nnc_rt_parallel_for", fn, bufs, n, work);
}

/* An alloca in the function's entry block (where mem2reg promotes it to registers). */
LLVMValueRef entry_alloca(Cg *g, LLVMTypeRef type, const char *name) {
  LLVMBuilderRef b = LLVMCreateBuilderInContext(g->ctx);
  LLVMBasicBlockRef entry = LLVMGetEntryBasicBlock(g->fn);
  LLVMValueRef first = LLVMGetFirstInstruction(entry);
  if (first) LLVMPositionBuilderBefore(b, first);
  else LLVMPositionBuilderAtEnd(b, entry);
  LLVMValueRef a = LLVMBuildAlloca(b, type, name);
  LLVMDisposeBuilder(b);
  return a;
}

/* ---- expressions ---- */

static LLVMValueRef emit_ibin(Cg *g, Lx *x) {
  LLVMValueRef a = emit(g, x->a[0]), b = emit(g, x->a[1]);
  switch (x->op) {
  case '+': return LLVMBuildNSWAdd(g->b, a, b, "");
  case '-': return LLVMBuildNSWSub(g->b, a, b, "");
  case '*': return LLVMBuildNSWMul(g->b, a, b, "");
  case '/': return LLVMBuildSDiv(g->b, a, b, "");
  case '%': return LLVMBuildSRem(g->b, a, b, "");
  case 'm': return LLVMBuildSelect(g->b, LLVMBuildICmp(g->b, LLVMIntSLT, a, b, ""), a, b, "");
  case 'M': return LLVMBuildSelect(g->b, LLVMBuildICmp(g->b, LLVMIntSGT, a, b, ""), a, b, "");
  case '<': return LLVMBuildICmp(g->b, LLVMIntSLT, a, b, "");
  case '=': return LLVMBuildICmp(g->b, LLVMIntEQ, a, b, "");
  case '&': return LLVMBuildAnd(g->b, a, b, "");
  case 'x': return LLVMBuildXor(g->b, a, b, "");
  case 'r': return LLVMBuildLShr(g->b, a, b, "");
  case 'u': return LLVMBuildMul(g->b, a, b, "");
  case 'w': return LLVMBuildAdd(g->b, a, b, "");
  }
  unreachable("integer op");
}

static LLVMValueRef emit_sym(Cg *g, int64_t k, uint32_t syms) {
  LLVMValueRef v = ci64(g, k);
  for (int i = 0; i < MAX_SYMS; i++)
    if (syms & (1u << i)) v = LLVMBuildNSWMul(g->b, v, g->sym_vals[i], "");
  return v;
}

/* The address of element idx of an array of t at base: one GEP per term of a sum.  With the
 * sum as one index, LLVM turns row * 512 + (128 + j) into an `or` (the bits do not overlap)
 * that its loop vectorizer does not see through: a contiguous row became gathers. */
static LLVMValueRef element_ptr(Cg *g, LLVMTypeRef t, LLVMValueRef base, Lx *idx) {
  if (idx->k == LX_IBIN && idx->op == '+') return element_ptr(g, t, element_ptr(g, t, base, idx->a[0]), idx->a[1]);
  LLVMValueRef i = emit(g, idx);
  return LLVMBuildGEP2(g->b, t, base, &i, 1, "");
}

static LLVMValueRef emit_load(Cg *g, Lx *x) {
  const LBuf *b = &g->le->bufs[x->buf];
  if (b->dtype == DT_I64) {
    LLVMValueRef p = element_ptr(g, g->i64, g->bufs[x->buf], x->a[0]);
    return LLVMBuildSIToFP(g->b, buffer_access(g, LLVMBuildLoad2(g->b, g->i64, p, ""), x->buf), g->f32, "");
  }
  LLVMValueRef p = element_ptr(g, g->f32, g->bufs[x->buf], x->a[0]);
  return buffer_access(g, LLVMBuildLoad2(g->b, g->f32, p, ""), x->buf);
}

/* A store; into an int64 buffer (an i64 output) the f32 value converts toward zero with
 * NaN as 0 and saturation (llvm.fptosi.sat: defined for every input), and an element copied
 * from another int64 buffer is copied exactly, not through f32. */
static void emit_store(Cg *g, Ls *s) {
  if (g->le->bufs[s->buf].dtype != DT_I64) {
    LLVMValueRef v = emit(g, s->val);
    buffer_access(g, LLVMBuildStore(g->b, v, element_ptr(g, g->f32, g->bufs[s->buf], s->idx)), s->buf);
    return;
  }
  Lx *x = s->val;
  while (x->k == LX_OP && x->op == OP_TRUNC) x = x->a[0]; /* an integer already */
  LLVMValueRef v;
  if (x->k == LX_LOAD && g->le->bufs[x->buf].dtype == DT_I64) {
    v = buffer_access(g, LLVMBuildLoad2(g->b, g->i64, element_ptr(g, g->i64, g->bufs[x->buf], x->a[0]), ""), x->buf);
  } else {
    LLVMValueRef a = emit(g, s->val);
    v = intrinsic_of(g, "llvm.fptosi.sat", (LLVMTypeRef[]){g->i64, g->f32}, 2, &a, 1);
  }
  buffer_access(g, LLVMBuildStore(g->b, v, element_ptr(g, g->i64, g->bufs[s->buf], s->idx)), s->buf);
}

static LLVMValueRef emit_uncached(Cg *g, Lx *x) {
  switch (x->k) {
  case LX_F: return cf32(g, x->f[0]);
  case LX_I: return ci64(g, x->c);
  case LX_VAR: return g->vars[x->var];
  case LX_CHUNK: return g->chunk; /* a kernel without a parallel loop is called with 0 */
  case LX_SYM: return emit_sym(g, x->c, x->syms);
  case LX_IBIN: return emit_ibin(g, x);
  case LX_LOAD: return emit_load(g, x);
  case LX_OP: {
    LLVMValueRef a[3] = {0};
    for (int k = 0; k < op_info[x->op].arity; k++) a[k] = emit(g, x->a[k]);
    return emit_scalar_op(g, (Op)x->op, x->f, a);
  }
  case LX_SELECT: {
    LLVMValueRef c = emit(g, x->a[0]), t = emit(g, x->a[1]), f = emit(g, x->a[2]);
    if (LLVMTypeOf(c) == g->f32) c = nonzero(g, c);
    return LLVMBuildSelect(g->b, c, t, f, "");
  }
  case LX_FTOI: return LLVMBuildFPToSI(g->b, emit(g, x->a[0]), g->i64, "");
  case LX_LOADI:
    return buffer_access(g, LLVMBuildLoad2(g->b, g->i64, element_ptr(g, g->i64, g->bufs[x->buf], x->a[0]), ""), x->buf);
  case LX_ACC: return LLVMBuildLoad2(g->b, g->f32, g->accs[x->acc], "");
  case LX_ITOF: return LLVMBuildSIToFP(g->b, emit(g, x->a[0]), g->f32, "");
  }
  unreachable("expression kind");
}

LLVMValueRef emit(Cg *g, Lx *x) {
  if (x->k == LX_ACC) return emit_uncached(g, x); /* changes within the scope */
  if (x->cg && g->scope_open[x->cg_scope]) return x->cg;
  LLVMValueRef v = emit_uncached(g, x);
  x->cg = v;
  x->cg_scope = g->scope;
  return v;
}

/* ---- statements ---- */

/* Open a scope (a loop body, a function): the values emit memoizes in it are reused only
 * while it is open (scope_pop).  Returns the enclosing scope. */
int scope_push(Cg *g) {
  int parent = g->scope;
  if (g->nscopes == g->capscopes) {
    g->capscopes = g->capscopes ? 2 * g->capscopes : 256;
    g->scope_open = nnc_xrealloc(g->scope_open, g->capscopes * sizeof *g->scope_open);
  }
  g->scope = g->nscopes++;
  g->scope_open[g->scope] = true;
  return parent;
}

void scope_pop(Cg *g, int parent) {
  g->scope_open[g->scope] = false;
  g->scope = parent;
}

static void emit_gemm(Cg *g, Ls *s) {
  LLVMValueRef m = emit(g, s->g.m), n = emit(g, s->g.n), k = emit(g, s->g.k);
  LLVMValueRef a = LLVMBuildGEP2(g->b, g->f32, g->bufs[s->g.a], (LLVMValueRef[]){emit(g, s->g.a_off)}, 1, "");
  LLVMValueRef b = LLVMBuildGEP2(g->b, g->f32, g->bufs[s->g.b], (LLVMValueRef[]){emit(g, s->g.b_off)}, 1, "");
  LLVMValueRef c = LLVMBuildGEP2(g->b, g->f32, g->bufs[s->g.c], (LLVMValueRef[]){emit(g, s->g.c_off)}, 1, "");
  LLVMValueRef lda = emit(g, s->g.lda), ldb = emit(g, s->g.ldb), ldc = emit(g, s->g.ldc);
  LLVMTypeRef i32 = g->i32, p = g->ptr, f = g->f32;
  LLVMTypeRef pt[] = {i32, i32, i32, i32, i32, i32, f, p, i32, p, i32, f, p, i32};
#define I32(v) LLVMBuildTrunc(g->b, v, g->i32, "")
  LLVMValueRef args[] = {
    LLVMConstInt(i32, 101, 0) /* CblasRowMajor */, LLVMConstInt(i32, s->g.ta ? 112 : 111, 0),
    LLVMConstInt(i32, s->g.tb ? 112 : 111, 0), I32(m), I32(n), I32(k), cf32(g, 1.0), a, I32(lda),
    b, I32(ldb), cf32(g, 0.0), c, I32(ldc)};
#undef I32
  call_extern(g, "nnc_rt_sgemm", g->voidt, pt, 14, args);
}

/* A scan: copy the initial state in, then per step t (steps-1 down to 0 when reverse) set the
 * step symbol, call the body with (state, captured, next state, per-step output slices at t),
 * and swap the state buffers; at the end copy the state out to the results that are read. */
static void emit_scan(Cg *g, Ls *s) {
  const ScanInfo *sc = s->sc.info;
  int nc = sc->ncarried, ncap = sc->ncaptured, ns = sc->nsteps, nin = nc + ncap, nargs = nin + nc + ns;
  int *bufs = s->sc.bufs;
  LLVMValueRef four = ci64(g, 4);
  LLVMValueRef cur = LLVMBuildArrayAlloca(g->b, g->ptr, ci64(g, nc ? nc : 1), "cur");
  LLVMValueRef nxt = LLVMBuildArrayAlloca(g->b, g->ptr, ci64(g, nc ? nc : 1), "next");
  LLVMValueRef argv = LLVMBuildArrayAlloca(g->b, g->ptr, ci64(g, nargs ? nargs : 1), "args");
  int nsyms = g->m->nsyms ? g->m->nsyms : 1;
  LLVMValueRef symv = LLVMBuildArrayAlloca(g->b, g->i64, ci64(g, nsyms), "syms");
  LLVMBuildMemCpy(g->b, symv, 8, g->syms, 8, ci64(g, 8 * (int64_t)g->m->nsyms));
  LLVMValueRef *bytes = nnc_xcalloc(nc + 1, sizeof *bytes);
  for (int i = 0; i < nc; i++) {
    bytes[i] = LLVMBuildNSWMul(g->b, emit(g, s->sc.numel[i]), four, "");
    LLVMValueRef a = g->bufs[bufs[2 * nc + 2 * i]], z = g->bufs[bufs[2 * nc + 2 * i + 1]];
    LLVMBuildMemCpy(g->b, a, 4, g->bufs[bufs[i]], 4, bytes[i]);
    LLVMBuildStore(g->b, a, LLVMBuildGEP2(g->b, g->ptr, cur, (LLVMValueRef[]){ci64(g, i)}, 1, ""));
    LLVMBuildStore(g->b, z, LLVMBuildGEP2(g->b, g->ptr, nxt, (LLVMValueRef[]){ci64(g, i)}, 1, ""));
  }
  static const LoopNames names = {"scan", "step", "scan_end", "t"};
  LLVMValueRef steps = emit(g, s->sc.steps);
  CountedLoop loop = loop_open(g, ci64(g, 0), steps, &names);
  LLVMValueRef last = LLVMBuildNSWSub(g->b, steps, ci64(g, 1), "");
  LLVMValueRef t = sc->reverse ? LLVMBuildNSWSub(g->b, last, loop.i, "") : loop.i;
  LLVMBuildStore(g->b, t, LLVMBuildGEP2(g->b, g->i64, symv, (LLVMValueRef[]){ci64(g, sc->tsym)}, 1, ""));
  #define ARG(k, v) LLVMBuildStore(g->b, v, LLVMBuildGEP2(g->b, g->ptr, argv, (LLVMValueRef[]){ci64(g, k)}, 1, ""))
  #define LOADP(arr, i) LLVMBuildLoad2(g->b, g->ptr, LLVMBuildGEP2(g->b, g->ptr, arr, (LLVMValueRef[]){ci64(g, i)}, 1, ""), "")
  for (int i = 0; i < nc; i++) ARG(i, LOADP(cur, i));
  for (int j = 0; j < ncap; j++) ARG(nc + j, g->bufs[bufs[4 * nc + j]]);
  for (int i = 0; i < nc; i++) ARG(nin + i, LOADP(nxt, i));
  for (int j = 0; j < ns; j++) {
    LLVMValueRef off = LLVMBuildNSWMul(g->b, t, emit(g, s->sc.numel[nc + j]), "");
    ARG(nin + nc + j, LLVMBuildGEP2(g->b, g->f32, g->bufs[bufs[4 * nc + ncap + j]], &off, 1, ""));
  }
  int wb = bufs[4 * nc + ncap + ns], wsb = bufs[4 * nc + ncap + ns + 1];
  LLVMValueRef ws = wsb >= 0 ? g->bufs[wsb] : LLVMConstNull(g->ptr);
  LLVMBuildCall2(g->b, g->entry_fn, g->body_fns[s->sc.body], (LLVMValueRef[]){argv, symv, g->bufs[wb], ws}, 4, "");
  for (int i = 0; i < nc; i++) { /* the next state becomes the current one */
    LLVMValueRef a = LOADP(cur, i), z = LOADP(nxt, i);
    LLVMBuildStore(g->b, z, LLVMBuildGEP2(g->b, g->ptr, cur, (LLVMValueRef[]){ci64(g, i)}, 1, ""));
    LLVMBuildStore(g->b, a, LLVMBuildGEP2(g->b, g->ptr, nxt, (LLVMValueRef[]){ci64(g, i)}, 1, ""));
  }
  loop_close(g, &loop, ci64(g, 1));
  for (int i = 0; i < nc; i++)
    if (bufs[nc + i] >= 0) LLVMBuildMemCpy(g->b, g->bufs[bufs[nc + i]], 4, LOADP(cur, i), 4, bytes[i]);
  #undef ARG
  #undef LOADP
  free(bytes);
}

void emit_stmt(Cg *g, Ls *s) {
  switch (s->k) {
  case LS_SCAN: emit_scan(g, s); break;
  case LS_BLOCK:
    for (int k = 0; k < s->nbody; k++) emit_stmt(g, s->body[k]);
    break;
  case LS_LOOP: emit_loop(g, s); break;
  case LS_STORE: emit_store(g, s); break;
  case LS_EVAL: emit(g, s->val); break;
  case LS_ACC_INIT:
    LLVMBuildStore(g->b, reduce_identity(g, s->rop), g->accs[s->acc]);
    break;
  case LS_ACC_UPDATE: {
    LLVMValueRef v = emit(g, s->val), cur = LLVMBuildLoad2(g->b, g->f32, g->accs[s->acc], "");
    LLVMBuildStore(g->b, reduce_op(g, s->rop, cur, v), g->accs[s->acc]);
    break;
  }
  case LS_GEMM: emit_gemm(g, s); break;
  case LS_CONV: emit_conv(g, s); break;
  case LS_CALL: emit_call(g, s); break;
  }
}

/* ---- functions ---- */

static LLVMValueRef round_up64(Cg *g, LLVMValueRef v) {
  return LLVMBuildAnd(g->b, LLVMBuildAdd(g->b, v, ci64(g, 63), ""), ci64(g, ~(int64_t)63), "");
}

/* Byte offsets of the workspace slots: a region starts where the regions before it end, or
 * over the region before it (the layout nnc_entry_workspace_size computes; nnc_slot in
 * nnc_model.h); a view adds its offset to its region's.  offs[nslots]. */
static void slot_offsets(Cg *g, const Entry *e, LLVMValueRef *offs) {
  LLVMValueRef end = ci64(g, 0), start = end;
  for (int i = 0; i < e->nslots; i++) {
    const Slot *s = &e->slots[i];
    if (s->region >= 0) {
      offs[i] = LLVMBuildAdd(g->b, offs[s->region], emit_sym(g, s->off.k, s->off.syms), "");
      continue;
    }
    start = s->overlay ? LLVMBuildAdd(g->b, start, round_up64(g, emit_sym(g, s->at.k, s->at.syms)), "") : end;
    offs[i] = start;
    LLVMValueRef stop = LLVMBuildAdd(g->b, start, round_up64(g, emit_sym(g, s->bytes.k, s->bytes.syms)), "");
    end = LLVMBuildSelect(g->b, LLVMBuildICmp(g->b, LLVMIntUGT, stop, end, ""), stop, end, "");
  }
}

static LLVMValueRef const_global(Cg *g, const LBuf *b) {
  LLVMTypeRef at = LLVMArrayType2(g->f32, (uint64_t)b->n);
  LLVMValueRef *vals = nnc_xmalloc((b->n ? b->n : 1) * sizeof *vals);
  for (int64_t i = 0; i < b->n; i++) vals[i] = cf32(g, b->data[i]);
  LLVMValueRef init = LLVMConstArray2(g->f32, vals, (uint64_t)b->n);
  free(vals);
  LLVMValueRef gv = LLVMAddGlobal(g->mod, at, "nnc.const");
  LLVMSetInitializer(gv, init);
  LLVMSetGlobalConstant(gv, 1);
  LLVMSetLinkage(gv, LLVMPrivateLinkage);
  LLVMSetAlignment(gv, 64);
  return gv;
}

void load_syms(Cg *g) {
  for (int i = 0; i < g->m->nsyms; i++) {
    LLVMValueRef p = LLVMBuildGEP2(g->b, g->i64, g->syms, (LLVMValueRef[]){ci64(g, i)}, 1, "");
    g->sym_vals[i] = LLVMBuildLoad2(g->b, g->i64, p, g->m->sym_names[i]);
  }
}

/* Addresses of the entry's buffers (arguments, weights, workspace slots, constants). */
static void compute_buffers(Cg *g, const Entry *e, const bool *used) {
  LLVMValueRef *offs = nnc_xcalloc(e->nslots + 1, sizeof *offs);
  slot_offsets(g, e, offs);
  for (int i = 0; i < g->le->nbufs; i++) {
    const LBuf *b = &g->le->bufs[i];
    if (!used[i]) continue;
    switch (b->k) {
    case LB_ARG: {
      LLVMValueRef p = LLVMBuildGEP2(g->b, g->ptr, g->args, (LLVMValueRef[]){ci64(g, b->index)}, 1, "");
      g->bufs[i] = LLVMBuildLoad2(g->b, g->ptr, p, "");
      break;
    }
    case LB_WEIGHT:
      g->bufs[i] = LLVMBuildGEP2(g->b, g->i8, g->weights, (LLVMValueRef[]){ci64(g, (int64_t)b->offset)}, 1, "");
      break;
    case LB_SLOT:
      g->bufs[i] = LLVMBuildGEP2(g->b, g->i8, g->ws, (LLVMValueRef[]){offs[b->index]}, 1, "");
      break;
    case LB_CONST:
      g->bufs[i] = const_global(g, b);
      break;
    }
  }
  free(offs);
}

static LLVMValueRef begin_function(Cg *g, const char *name, LLVMTypeRef type, LLVMLinkage linkage) {
  LLVMValueRef fn = LLVMAddFunction(g->mod, name, type);
  LLVMSetLinkage(fn, linkage);
  unsigned nounwind = LLVMGetEnumAttributeKindForName("nounwind", 8);
  LLVMAddAttributeAtIndex(fn, LLVMAttributeFunctionIndex, LLVMCreateEnumAttribute(g->ctx, nounwind, 0));
  LLVMPositionBuilderAtEnd(g->b, LLVMAppendBasicBlockInContext(g->ctx, fn, "entry"));
  g->fn = fn;
  return fn;
}

/* A distinct, self-referencing metadata node {self, ops...} (built through a temporary). */
static LLVMMetadataRef self_node(Cg *g, LLVMMetadataRef op) {
  LLVMMetadataRef tmp = LLVMTemporaryMDNode(g->ctx, NULL, 0), ops[2] = {tmp, op};
  LLVMMetadataRef node = LLVMMDNodeInContext2(g->ctx, ops, op ? 2 : 1);
  LLVMMetadataReplaceAllUsesWith(tmp, node);
  return node;
}

/* The buffers of one kernel never overlap: the memory planner gives every intermediate that
 * is alive during a kernel its own bytes (no tenancy shares memory with one alive at the same
 * time; pass_memplan.c), weights and constants are apart from the workspace, a scan's
 * steps alternate between two state buffers, and the caller's outputs must not overlap its
 * inputs (docs/c-api.md).  Telling LLVM so (one alias scope per buffer, each access noalias
 * with the others) lets it vectorize the loops that read three or more buffers, for which it
 * cannot build runtime overlap checks ("cannot identify array bounds"). */
static void alias_scopes(Cg *g, const int *rename) {
  int n = g->le->nbufs;
  LLVMMetadataRef domain = self_node(g, NULL), *scope = nnc_xcalloc(n + 1, sizeof *scope), *others = nnc_xcalloc(n + 1, sizeof *others);
  g->buf_scope = nnc_xcalloc(n + 1, sizeof *g->buf_scope);
  g->buf_noalias = nnc_xcalloc(n + 1, sizeof *g->buf_noalias);
  for (int i = 0; i < n; i++)
    if (rename[i] >= 0) scope[i] = self_node(g, domain);
  for (int i = 0; i < n; i++) {
    if (!scope[i]) continue;
    int k = 0;
    for (int j = 0; j < n; j++)
      if (j != i && scope[j]) others[k++] = scope[j];
    g->buf_scope[i] = LLVMMetadataAsValue(g->ctx, LLVMMDNodeInContext2(g->ctx, &scope[i], 1));
    g->buf_noalias[i] = LLVMMetadataAsValue(g->ctx, LLVMMDNodeInContext2(g->ctx, others, k));
  }
  free(scope);
  free(others);
}

/* A kernel function: void k(ptr bufs[nlocal], const int64_t *syms, int64_t lo, int64_t hi). */
static LLVMValueRef emit_kernel(Cg *g, const LKernel *k, const int *rename) {
  LLVMValueRef fn = begin_function(g, k->name, g->kernel_fn, LLVMInternalLinkage);
  /* shared by every structurally equal kernel: inlining them would undo the sharing */
  unsigned noinline = LLVMGetEnumAttributeKindForName("noinline", 8);
  LLVMAddAttributeAtIndex(fn, LLVMAttributeFunctionIndex, LLVMCreateEnumAttribute(g->ctx, noinline, 0));
  LLVMValueRef bufs = LLVMGetParam(fn, 0);
  g->syms = LLVMGetParam(fn, 1);
  g->par = k->par;
  g->par_inner = k->par_inner;
  memset(g->lanes, 0, sizeof g->lanes);
  g->par_lo = g->chunk = LLVMGetParam(fn, 2);
  g->par_hi = LLVMGetParam(fn, 3);
  g->le_kernel = k;
  g->vars = nnc_xcalloc(k->nvars + 1, sizeof *g->vars);
  g->accs = nnc_xcalloc(k->naccs + 1, sizeof *g->accs);
  for (int i = 0; i < k->naccs; i++) g->accs[i] = LLVMBuildAlloca(g->b, g->f32, "acc");
  int parent = scope_push(g); /* values of another function are never reused */
  load_syms(g);
  for (int i = 0; i < g->le->nbufs; i++) {
    if (rename[i] < 0) continue;
    LLVMValueRef p = LLVMBuildGEP2(g->b, g->ptr, bufs, (LLVMValueRef[]){ci64(g, rename[i])}, 1, "");
    g->bufs[i] = LLVMBuildLoad2(g->b, g->ptr, p, "");
  }
  alias_scopes(g, rename);
  emit_stmt(g, k->body);
  LLVMBuildRetVoid(g->b);
  g->par = g->par_inner = NULL;
  scope_pop(g, parent);
  free(g->vars);
  free(g->accs);
  free(g->buf_scope);
  free(g->buf_noalias);
  g->buf_scope = g->buf_noalias = NULL;
  return fn;
}

/* The kernel function for k: an existing one with the same structure, or a new one. */
static LLVMValueRef kernel_function(Cg *g, const LKernel *k, int *rename, int *nlocal) {
  char *key = loopir_kernel_key(g->le, k, rename, nlocal);
  if (!key) unreachable("out of memory");
  for (int i = 0; i < g->nkernel_cache; i++)
    if (!strcmp(g->kernel_cache[i].key, key)) {
      free(key);
      return g->kernel_cache[i].fn;
    }
  if (g->nkernel_cache == g->capkernel_cache) {
    g->capkernel_cache = g->capkernel_cache ? 2 * g->capkernel_cache : 32;
    g->kernel_cache = nnc_xrealloc(g->kernel_cache, g->capkernel_cache * sizeof *g->kernel_cache);
  }
  LLVMValueRef fn = emit_kernel(g, k, rename);
  g->kernel_cache[g->nkernel_cache++] = (struct KernelFn){key, fn};
  return fn;
}

/* Call a kernel: a parallel one through the runtime's pool with its loop's trip count. */
static void call_kernel(Cg *g, const LKernel *k, LLVMValueRef fn, LLVMValueRef bufs) {
  if (!k->par) {
    LLVMBuildCall2(g->b, g->kernel_fn, fn, (LLVMValueRef[]){bufs, g->syms, ci64(g, 0), ci64(g, 0)}, 4, "");
    return;
  }
  LLVMValueRef trip = trip_of(g, k->par);
  if (k->par_inner) trip = LLVMBuildNSWMul(g->b, trip, trip_of(g, k->par_inner), "");
  call_parallel_for(g, fn, bufs, trip, k->par_work);
}

/* An entry's body: its kernels in order; with `timed`, each call and the whole body a site of
 * $NNC_PROFILE (profile.c). */
static LLVMValueRef emit_entry_body(Cg *g, const LEntry *le, bool timed) {
  const Entry *e = le->e;
  int nb = le->nbufs + 1;
  g->le = le;
  g->bufs = nnc_xcalloc(nb, sizeof *g->bufs);
  int *renames = nnc_xmalloc((size_t)nb * (le->nkernels + 1) * sizeof *renames);
  int *nlocal = nnc_xcalloc(le->nkernels + 1, sizeof *nlocal);
  bool *used = nnc_xcalloc(nb, sizeof *used);
  LLVMValueRef *kfns = nnc_xcalloc(le->nkernels + 1, sizeof *kfns);
  for (int k = 0; k < le->nkernels; k++) {
    kfns[k] = kernel_function(g, &le->kernels[k], renames + (size_t)k * nb, &nlocal[k]);
    for (int i = 0; i < le->nbufs; i++) used[i] |= renames[(size_t)k * nb + i] >= 0;
  }
  char name[256];
  snprintf(name, sizeof name, "%s.%s.body", g->model_name, e->name);
  LLVMValueRef fn = begin_function(g, name, g->entry_fn, LLVMInternalLinkage);
  g->args = LLVMGetParam(fn, 0);
  g->syms = LLVMGetParam(fn, 1);
  g->weights = LLVMGetParam(fn, 2);
  g->ws = LLVMGetParam(fn, 3);
  int parent = scope_push(g);
  LLVMValueRef site = NULL, t0 = NULL;
  if (timed) {
    snprintf(name, sizeof name, "%s.%s", g->model_name, e->name);
    site = prof_site(g, name, NULL);
    prof_load_flag(g);
    t0 = prof_begin(g);
  }
  load_syms(g);
  compute_buffers(g, e, used);
  for (int k = 0; k < le->nkernels; k++) {
    LLVMValueRef arr = LLVMBuildArrayAlloca(g->b, g->ptr, ci64(g, nlocal[k] ? nlocal[k] : 1), "bufs");
    for (int i = 0; i < le->nbufs; i++) {
      int local = renames[(size_t)k * nb + i];
      if (local >= 0)
        LLVMBuildStore(g->b, g->bufs[i], LLVMBuildGEP2(g->b, g->ptr, arr, (LLVMValueRef[]){ci64(g, local)}, 1, ""));
    }
    LLVMValueRef kt0 = timed ? prof_begin(g) : NULL;
    call_kernel(g, &le->kernels[k], kfns[k], arr);
    if (timed) prof_end(g, prof_site(g, le->kernels[k].name, site), kt0);
  }
  if (timed) prof_end(g, site, t0);
  LLVMBuildRetVoid(g->b);
  scope_pop(g, parent);
  free(kfns);
  free(used);
  free(nlocal);
  free(renames);
  free(g->bufs);
  return fn;
}

static void cg_init(Cg *g, LLVMContextRef ctx, LLVMModuleRef mod, const Model *m) {
  *g = (Cg){.ctx = ctx, .mod = mod, .m = m};
  model_c_name(m, g->model_name, sizeof g->model_name);
  g->b = LLVMCreateBuilderInContext(ctx);
  g->f32 = LLVMFloatTypeInContext(ctx);
  g->i64 = LLVMInt64TypeInContext(ctx);
  g->i32 = LLVMInt32TypeInContext(ctx);
  g->i8 = LLVMInt8TypeInContext(ctx);
  g->ptr = LLVMPointerTypeInContext(ctx, 0);
  g->voidt = LLVMVoidTypeInContext(ctx);
  g->entry_fn = LLVMFunctionType(g->voidt, (LLVMTypeRef[]){g->ptr, g->ptr, g->ptr, g->ptr}, 4, 0);
  g->kernel_fn = LLVMFunctionType(g->voidt, (LLVMTypeRef[]){g->ptr, g->ptr, g->i64, g->i64}, 4, 0);
  int regs;
  target_host_simd(&g->floats, &regs);
}

static void cg_done(Cg *g) {
  free(g->scope_open);
  for (int i = 0; i < g->nkernel_cache; i++) free(g->kernel_cache[i].key);
  free(g->kernel_cache);
  LLVMDisposeBuilder(g->b);
}

void codegen_init_only(LLVMContextRef ctx, LLVMModuleRef mod, const Model *m, const LEntry *les) {
  Cg g;
  cg_init(&g, ctx, mod, m);
  LLVMValueRef body = emit_entry_body(&g, &les[m->nentries], false);
  LLVMSetLinkage(body, LLVMExternalLinkage);
  LLVMSetValueName2(body, "nnc_init", 8);
  cg_done(&g);
}

void codegen_model(LLVMContextRef ctx, LLVMModuleRef mod, const Model *m, const LEntry *les,
                   const unsigned char *weights) {
  Cg g;
  cg_init(&g, ctx, mod, m);
  g.body_fns = nnc_xcalloc(m->nbodies + 1, sizeof *g.body_fns); /* inner bodies come first */
  for (int i = 0; i < m->nbodies; i++) g.body_fns[i] = emit_entry_body(&g, &les[m->bodies[i]->lower_index], true);
  LLVMValueRef *bodies = nnc_xcalloc(m->nentries + 1, sizeof *bodies);
  for (int i = 0; i < m->nentries; i++) bodies[i] = emit_entry_body(&g, &les[i], true);
  /* in every library: embedded weights hold the derived parameters already, but a weights
   * file given when a context opens replaces them and needs the init entry */
  if (m->init) bodies[m->nentries] = emit_entry_body(&g, &les[m->nentries], false);
  LLVMValueRef desc = emit_desc(&g, les, bodies, weights);
  emit_wrappers(&g, desc);
  free(bodies);
  free(g.body_fns);
  cg_done(&g);
}

