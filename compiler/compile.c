/* compile.c — the compiler driver as a library (compile.h): read → parse → sema → passes
 * → lower → codegen → AOT shared library or ORC JIT.  Also `check` and `dump`. */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <cblas.h>
#include "fault.h"
#include "pool.h"
#include "codegen.h"
#include "compile.h"
#include "header.h"
#include "interp.h"
#include "memreport.h"
#include "passes.h"
#include "sema.h"
#include "target.h"

/* From the support library (runtime/support/ctx.c). */
nnc_ctx *nnc_ctx_open(const nnc_model_desc *, const char *, char *, size_t);
void nnc_ctx_close(nnc_ctx *);
int nnc_ctx_call(nnc_ctx *, int, void *const *, const int64_t *);
const char *nnc_ctx_error(const nnc_ctx *);
const char *nnc_ctx_weights(const nnc_ctx *);
int nnc_ctx_set_threads(nnc_ctx *, int);

const char *const nnc_dump_stages[] = {"ast", "ir", "opt", "fused", "loops", "llvm", "asm", "memory", NULL};
enum { STAGE_AST, STAGE_IR, STAGE_OPT, STAGE_FUSED, STAGE_LOOPS, STAGE_LLVM, STAGE_ASM, STAGE_MEMORY };

#define MAX_FILE_BYTES (64u << 20)

/* Everything one compilation owns; freed at once by unit_free. */
typedef struct Unit {
  Arena *arena;
  SrcFile file;
  Diag diag;
  Node *ast;
  Model *model;
  LEntry *lowered;
  unsigned char *weights; /* blob to embed, or NULL */
  nnc_ctx *weights_ctx;
} Unit;

static int fail(char **errmsg, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(char **errmsg, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *s = NULL;
  if (vasprintf(&s, fmt, ap) < 0) s = NULL;
  va_end(ap);
  if (errmsg) *errmsg = s;
  else free(s);
  return -1;
}

static int fail_diag(Unit *u, char **errmsg) { return fail(errmsg, "%s", u->diag.text); }

static void unit_free(Unit *u) {
  nnc_ctx_close(u->weights_ctx);
  arena_free(u->arena);
  memset(u, 0, sizeof *u);
}

static char *read_file(const char *path, size_t *len, char **errmsg) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    fail(errmsg, "%s: error: cannot open: %s\n", path, strerror(errno));
    return NULL;
  }
  char *buf = NULL;
  size_t n = 0, cap = 0;
  for (;;) {
    if (n == cap) {
      cap = cap ? 2 * cap : 65536;
      if (cap > MAX_FILE_BYTES + 1) {
        fclose(f);
        free(buf);
        fail(errmsg, "%s: error: file larger than %u MiB\n", path, MAX_FILE_BYTES >> 20);
        return NULL;
      }
      char *nb = realloc(buf, cap + 1);
      if (!nb) break;
      buf = nb;
    }
    size_t r = fread(buf + n, 1, cap - n, f);
    n += r;
    if (r == 0) break;
  }
  bool err = ferror(f);
  fclose(f);
  if (err || !buf) {
    free(buf);
    fail(errmsg, "%s: error: cannot read: %s\n", path, strerror(errno));
    return NULL;
  }
  buf[n] = 0;
  *len = n;
  return buf;
}

static const char *model_name_of(Arena *a, const char *path) {
  const char *base = strrchr(path, '/');
  base = base ? base + 1 : path;
  const char *dot = strrchr(base, '.');
  size_t n = dot && dot != base ? (size_t)(dot - base) : strlen(base);
  return arena_strndup(a, base, n);
}

static int front_end(Unit *u, const char *path, const char *text, size_t len, char **errmsg) {
  u->arena = arena_new();
  u->file = (SrcFile){.path = arena_strdup(u->arena, path), .text = arena_strndup(u->arena, text, len), .len = len};
  diag_init(&u->diag, &u->file);
  u->ast = parse_program(u->arena, &u->file, &u->diag);
  if (!u->ast) return fail_diag(u, errmsg);
  return 0;
}

static int analyze(Unit *u, const NncCompileOptions *opt, char **errmsg) {
  u->model = sema_program(u->arena, &u->file, u->ast, model_name_of(u->arena, u->file.path),
                          opt ? opt->defines : NULL, opt ? opt->ndefines : 0, &u->diag);
  return u->model ? 0 : fail_diag(u, errmsg);
}

static int optimize(Unit *u, const char *until, char **errmsg) {
  return run_pipeline(u->model, until, &u->diag) ? 0 : fail_diag(u, errmsg);
}

static const JitSymbol runtime_symbols[] = {
  {"nnc_rt_sgemm", (void *)nnc_rt_sgemm},
  {"nnc_rt_parallel_for", (void *)nnc_rt_parallel_for},
  {"nnc_rt_parallel_parts", (void *)nnc_rt_parallel_parts},
  {"nnc_rt_index_error", (void *)nnc_rt_index_error},
  {"nnc_ctx_open", (void *)nnc_ctx_open},
  {"nnc_ctx_close", (void *)nnc_ctx_close},
  {"nnc_ctx_call", (void *)nnc_ctx_call},
  {"nnc_ctx_error", (void *)nnc_ctx_error},
  {"nnc_ctx_set_threads", (void *)nnc_ctx_set_threads},
};

/* With the weights known at compile time, compute the derived parameters (pass_hoist.c) now,
 * into the blob that gets embedded, by JIT-running the same init code a context would run. */
static int derive_params(Unit *u, char **errmsg) {
  const Model *m = u->model;
  if (!m->init) return 0;
  char err[4096];
  /* a lowering of its own: codegen memoizes LLVM values in the lowered IR (Lx.cg), so one
   * lowering serves one codegen, and the library's codegen emits the init entry again */
  LEntry *les = lower_model(u->model);
  if (!les) return fail(errmsg, "%s: error: out of memory\n", u->file.path);
  Jit *jit = jit_new(runtime_symbols, sizeof runtime_symbols / sizeof *runtime_symbols, err, sizeof err);
  if (!jit) return fail(errmsg, "nnc: error: cannot create the JIT: %s\n", err);
  LLVMModuleRef mod = jit_module_new(jit, "init");
  codegen_init_only(jit_context(jit), mod, m, les);
  nnc_entry_fn init = NULL;
  if (jit_add_module(jit, mod, err, sizeof err) || !(init = (nnc_entry_fn)jit_lookup(jit, "nnc_init", err, sizeof err))) {
    jit_free(jit);
    return fail(errmsg, "%s: internal error: compiling the init entry: %s\n", u->file.path, err);
  }
  int64_t bytes = plan_workspace_bytes(m->init, NULL);
  char *ws = bytes < 0 ? NULL : aligned_alloc(64, (size_t)bytes + 64);
  if (!ws) {
    jit_free(jit);
    return fail(errmsg, "%s: error: out of memory\n", u->file.path);
  }
  init(NULL, NULL, (const char *)u->weights, ws);
  free(ws);
  jit_free(jit);
  return 0;
}

/* Check a weights file against the model's parameters (the same code the generated library
 * runs at load time) and keep the blob for embedding. */
static int load_weights(Unit *u, const char *path, char **errmsg) {
  const Model *m = u->model;
  int nparams = model_loaded_params(m);
  nnc_param_desc *pd = arena_alloc(u->arena, (nparams + 1) * sizeof *pd);
  for (int i = 0; i < nparams; i++)
    pd[i] = (nnc_param_desc){m->params[i].name, m->params[i].dtype, m->params[i].rank,
                             m->params[i].shape, m->params[i].offset, m->params[i].nbytes,
                             m->params[i].optional ? NNC_PARAM_OPTIONAL : 0};
  nnc_model_desc *desc = arena_alloc(u->arena, sizeof *desc);
  *desc = (nnc_model_desc){.abi_version = NNC_MODEL_ABI, .name = m->name, .n_params = nparams,
                           .params = pd, .weights_size = m->weights_size};
  char err[2048];
  u->weights_ctx = nnc_ctx_open(desc, path, err, sizeof err);
  if (!u->weights_ctx) return fail(errmsg, "%s%s", err, err[0] && err[strlen(err) - 1] == '\n' ? "" : "\n");
  u->weights = (unsigned char *)nnc_ctx_weights(u->weights_ctx);
  return derive_params(u, errmsg);
}

static int compile_to_ir(Unit *u, const char *path, const char *text, size_t len,
                         const NncCompileOptions *opt, char **errmsg) {
  if (front_end(u, path, text, len, errmsg) || analyze(u, opt, errmsg) || optimize(u, NULL, errmsg)) return -1;
  if (opt && opt->weights_path && load_weights(u, opt->weights_path, errmsg)) return -1;
  if (!u->lowered) u->lowered = lower_model(u->model);
  return u->lowered ? 0 : fail(errmsg, "%s: error: out of memory\n", path);
}

static int compile_file(Unit *u, const char *path, const NncCompileOptions *opt, char **errmsg) {
  size_t len;
  char *text = read_file(path, &len, errmsg);
  if (!text) return -1;
  int rc = compile_to_ir(u, path, text, len, opt, errmsg);
  free(text);
  return rc;
}

/* ---- AOT ---- */

static const char *support_lib(void) {
  const char *env = getenv("NNC_SUPPORT_LIB");
  if (env) return env;
  FILE *f = fopen(NNC_SUPPORT_LIB_BUILD, "rb");
  if (f) {
    fclose(f);
    return NNC_SUPPORT_LIB_BUILD;
  }
  return NNC_SUPPORT_LIB_INSTALL;
}

int nnc_compile_so(const char *nn_path, const char *so_path, const NncCompileOptions *opt, char **errmsg) {
  Unit u = {0};
  char err[4096];
  Target *t = NULL;
  LLVMContextRef ctx = NULL;
  LLVMModuleRef mod = NULL;
  int rc = -1;
  if (compile_file(&u, nn_path, opt, errmsg)) goto cleanup;
  if (opt && opt->header_path && write_header(opt->header_path, u.model, err, sizeof err)) {
    fail(errmsg, "%s", err);
    goto cleanup;
  }
  if (!(t = target_new_host(err, sizeof err))) {
    fail(errmsg, "nnc: error: %s\n", err);
    goto cleanup;
  }
  ctx = LLVMContextCreate();
  mod = LLVMModuleCreateWithNameInContext(u.model->name, ctx);
  target_configure_module(t, mod);
  codegen_model(ctx, mod, u.model, u.lowered, u.weights);
  if (target_optimize(t, mod, err, sizeof err)) {
    fail(errmsg, "%s: internal error: generated code does not verify: %s\n", nn_path, err);
    goto cleanup;
  }
  /* -Bsymbolic: the typed wrappers call this library's own support code even when the
   * host process exports functions of the same name */
  const char *link[] = {support_lib(), NNC_OPENBLAS_LIB, "-lm", "-Wl,-Bsymbolic"};
  if (target_emit_shared_lib(t, mod, so_path, link, 4, err, sizeof err)) {
    fail(errmsg, "%s: error: linking failed: %s\n", so_path, err);
    goto cleanup;
  }
  rc = 0;
cleanup:
  if (mod) LLVMDisposeModule(mod);
  if (ctx) LLVMContextDispose(ctx);
  target_free(t);
  unit_free(&u);
  return rc;
}

/* ---- JIT ---- */

struct NncJit {
  Jit *jit;
  const nnc_model_desc *desc;
};


static int jit_unit(Unit *u, NncJit **out, const nnc_model_desc **desc, char **errmsg) {
  char err[4096];
  NncJit *nj = calloc(1, sizeof *nj);
  if (!nj) return fail(errmsg, "nnc: error: out of memory\n");
  nj->jit = jit_new(runtime_symbols, sizeof runtime_symbols / sizeof *runtime_symbols, err, sizeof err);
  if (!nj->jit) {
    free(nj);
    return fail(errmsg, "nnc: error: cannot create the JIT: %s\n", err);
  }
  LLVMModuleRef mod = jit_module_new(nj->jit, u->model->name);
  codegen_model(jit_context(nj->jit), mod, u->model, u->lowered, u->weights);
  const nnc_model_desc *(*info)(void) = NULL;
  if (jit_add_module(nj->jit, mod, err, sizeof err) ||
      !(info = (const nnc_model_desc *(*)(void))jit_lookup(nj->jit, "nnc_model_info", err, sizeof err))) {
    nnc_jit_free(nj);
    return fail(errmsg, "%s: internal error: JIT compilation failed: %s\n", u->file.path, err);
  }
  nj->desc = info();
  *out = nj;
  *desc = nj->desc;
  return 0;
}

int nnc_compile_jit_source(const char *path, const char *text, size_t len, const NncCompileOptions *opt,
                           NncJit **jit, const nnc_model_desc **desc, char **errmsg) {
  Unit u = {0};
  *jit = NULL;
  *desc = NULL;
  int rc = compile_to_ir(&u, path, text, len, opt, errmsg);
  if (!rc) rc = jit_unit(&u, jit, desc, errmsg);
  unit_free(&u);
  return rc;
}

int nnc_compile_jit(const char *nn_path, const NncCompileOptions *opt, NncJit **jit,
                    const nnc_model_desc **desc, char **errmsg) {
  size_t len;
  *jit = NULL;
  *desc = NULL;
  char *text = read_file(nn_path, &len, errmsg);
  if (!text) return -1;
  int rc = nnc_compile_jit_source(nn_path, text, len, opt, jit, desc, errmsg);
  free(text);
  return rc;
}

void nnc_jit_free(NncJit *jit) {
  if (!jit) return;
  jit_free(jit->jit);
  free(jit);
}

/* ---- check and dump ---- */

int nnc_check(const char *nn_path, const NncCompileOptions *opt, char **errmsg) {
  Unit u = {0};
  size_t len;
  char *text = read_file(nn_path, &len, errmsg);
  if (!text) return -1;
  int rc = front_end(&u, nn_path, text, len, errmsg) || analyze(&u, opt, errmsg) ? -1 : 0;
  free(text);
  unit_free(&u);
  return rc;
}

static int dump_llvm(Unit *u, bool assembly, FILE *out, char **errmsg) {
  char err[4096];
  Target *t = target_new_host(err, sizeof err);
  if (!t) return fail(errmsg, "nnc: error: %s\n", err);
  LLVMContextRef ctx = LLVMContextCreate();
  LLVMModuleRef mod = LLVMModuleCreateWithNameInContext(u->model->name, ctx);
  target_configure_module(t, mod);
  codegen_model(ctx, mod, u->model, u->lowered, NULL);
  int rc = 0;
  if (assembly) {
    char *s = NULL;
    if (target_optimize(t, mod, err, sizeof err) || !(s = target_emit_asm(t, mod, err, sizeof err)))
      rc = fail(errmsg, "%s: internal error: %s\n", u->file.path, err);
    else
      fputs(s, out);
    free(s);
  } else {
    char *s = LLVMPrintModuleToString(mod);
    fputs(s, out);
    LLVMDisposeMessage(s);
  }
  LLVMDisposeModule(mod);
  LLVMContextDispose(ctx);
  target_free(t);
  return rc;
}

const char *const nnc_dump_formats[] = {"text", "dot", NULL};

/* dot.c: the graph IR, or with `fused` its kernels as clusters, as a Graphviz digraph. */
void dot_dump_model(FILE *out, const Model *m, bool fused);

/* The graph after stage `which` (1 ir, 2 opt, 3 fused), as text or DOT. */
static void dump_graph(FILE *out, const Model *m, int which, bool dot) {
  if (dot) dot_dump_model(out, m, which == 3);
  else if (which == 3) ir_dump_fused(out, m);
  else ir_dump_model(out, m);
}

static int dump_unit(const char *path, const char *text, size_t len, const char *stage,
                     const char *format, const NncCompileOptions *opt, FILE *out, char **errmsg) {
  int which = -1;
  for (int i = 0; nnc_dump_stages[i]; i++)
    if (!strcmp(stage, nnc_dump_stages[i])) which = i;
  if (which < 0) return fail(errmsg, "nnc: error: unknown stage '%s' (ast, ir, opt, fused, loops, llvm, asm, memory)\n", stage);
  bool dot = format && !strcmp(format, "dot");
  if (format && !dot && strcmp(format, "text"))
    return fail(errmsg, "nnc: error: unknown format '%s' (text, dot)\n", format);
  if (dot && (which < STAGE_IR || which > STAGE_FUSED))
    return fail(errmsg, "nnc: error: --format=dot is for the stages ir, opt and fused, not '%s'\n", stage);
  Unit u = {0};
  int rc = front_end(&u, path, text, len, errmsg);
  if (!rc && which == STAGE_AST) ast_dump(out, u.ast);
  if (!rc && which >= STAGE_IR) rc = analyze(&u, opt, errmsg);
  if (!rc && which >= STAGE_OPT) rc = optimize(&u, which == STAGE_OPT ? "dce" : NULL, errmsg);
  if (!rc && which >= STAGE_IR && which <= STAGE_FUSED) dump_graph(out, u.model, which, dot);
  if (!rc && which == STAGE_MEMORY) {
    char err[256];
    if (memory_report(out, u.model, opt ? opt->dims : NULL, err, sizeof err))
      rc = fail(errmsg, "nnc: error: %s\n", err);
  }
  bool lowered = which >= STAGE_LOOPS && which <= STAGE_ASM;
  if (!rc && lowered && !(u.lowered = lower_model(u.model))) rc = fail(errmsg, "nnc: error: out of memory\n");
  if (!rc && which == STAGE_LOOPS)
    for (int i = 0; i < u.model->nentries + (u.model->init != NULL) + u.model->nbodies; i++)
      loopir_dump(out, u.model, &u.lowered[i]); /* entries, init entry, scan bodies */
  if (!rc && (which == STAGE_LLVM || which == STAGE_ASM)) rc = dump_llvm(&u, which == STAGE_ASM, out, errmsg);
  unit_free(&u);
  return rc;
}

int nnc_dump_source(const char *path, const char *text, size_t len, const char *stage, FILE *out,
                    char **errmsg) {
  return dump_unit(path, text, len, stage, "text", NULL, out, errmsg);
}

int nnc_dump_format(const char *nn_path, const char *stage, const char *format,
                    const NncCompileOptions *opt, FILE *out, char **errmsg) {
  size_t len;
  char *text = read_file(nn_path, &len, errmsg);
  if (!text) return -1;
  int rc = dump_unit(nn_path, text, len, stage, format, opt, out, errmsg);
  free(text);
  return rc;
}

int nnc_dump(const char *nn_path, const char *stage, FILE *out, char **errmsg) {
  return nnc_dump_format(nn_path, stage, "text", NULL, out, errmsg);
}

/* ---- reference interpreter ---- */

static int interp_inputs(Unit *u, const Entry *e, const nnc_tensor *inputs, int64_t *syms,
                         const void **data, char **errmsg) {
  int ranks[e->nin + 1];
  const int64_t *shapes[e->nin + 1];
  for (int i = 0; i < e->nin; i++) {
    int32_t want = e->inputs[i]->dtype == DT_I64 ? NNC_I64 : NNC_F32;
    if (inputs[i].dtype != want || !inputs[i].data)
      return fail(errmsg, "%s: error: %s: input '%s' must be %s data\n", u->file.path, e->name,
                  e->in_names[i], want == NNC_I64 ? "i64" : "f32");
    ranks[i] = inputs[i].rank;
    shapes[i] = inputs[i].shape;
    data[i] = inputs[i].data;
  }
  char err[512];
  if (interp_bind(u->model, e, ranks, shapes, syms, err, sizeof err))
    return fail(errmsg, "%s: error: %s\n", u->file.path, err);
  return 0;
}

static int interpret_unit(Unit *u, const NncInterpOptions *opt, const char *entry,
                          const nnc_tensor *inputs, int n_in, nnc_tensor *outputs, int n_out,
                          char **errmsg) {
  const char *stage = opt && opt->stage ? opt->stage : "ir";
  if (strcmp(stage, "ir") && strcmp(stage, "opt"))
    return fail(errmsg, "nnc: error: the interpreter runs stage 'ir' or 'opt', not '%s'\n", stage);
  if (analyze(u, NULL, errmsg) || (!strcmp(stage, "opt") && optimize(u, "dce", errmsg))) return -1;
  if (opt && opt->weights_path && load_weights(u, opt->weights_path, errmsg)) return -1;
  const Model *m = u->model;
  if (m->nparams && !u->weights)
    return fail(errmsg, "%s: error: the model has parameters: give a weights file\n", u->file.path);
  const Entry *e = NULL;
  for (int i = 0; i < m->nentries; i++)
    if (!strcmp(m->entries[i].name, entry)) e = &m->entries[i];
  if (!e) return fail(errmsg, "%s: error: no entry '%s'\n", u->file.path, entry);
  if (n_in != e->nin || n_out != e->nout)
    return fail(errmsg, "%s: error: entry '%s' takes %d inputs and %d outputs, not %d and %d\n",
                u->file.path, entry, e->nin, e->nout, n_in, n_out);
  int64_t syms[MAX_SYMS];
  const void *data[e->nin + 1];
  float *outs[e->nout + 1];
  char err[512];
  if (interp_inputs(u, e, inputs, syms, data, errmsg)) return -1;
  InterpRounding r = !opt || !opt->f32 ? INTERP_DOUBLE : opt->random_rounding ? INTERP_F32_RANDOM : INTERP_F32;
  if (interp_run(m, e, u->weights, data, syms, r, opt ? opt->random_rounding : 0, outs, err, sizeof err))
    return fail(errmsg, "%s: error: %s\n", u->file.path, err);
  for (int o = 0; o < n_out; o++) {
    const Shape *s = &e->outputs[o]->shape;
    outputs[o] = (nnc_tensor){.data = outs[o], .dtype = NNC_F32, .rank = s->rank};
    for (int k = 0; k < s->rank; k++) outputs[o].shape[k] = interp_dim(s->d[k], syms);
  }
  return 0;
}

int nnc_interpret_source(const char *path, const char *text, size_t len,
                         const NncInterpOptions *opt, const char *entry,
                         const nnc_tensor *inputs, int n_in, nnc_tensor *outputs, int n_out,
                         char **errmsg) {
  Unit u = {0};
  int rc = front_end(&u, path, text, len, errmsg);
  if (!rc) rc = interpret_unit(&u, opt, entry, inputs, n_in, outputs, n_out, errmsg);
  unit_free(&u);
  return rc;
}

int nnc_interpret(const char *nn_path, const NncInterpOptions *opt, const char *entry,
                  const nnc_tensor *inputs, int n_in, nnc_tensor *outputs, int n_out,
                  char **errmsg) {
  size_t len;
  char *text = read_file(nn_path, &len, errmsg);
  if (!text) return -1;
  int rc = nnc_interpret_source(nn_path, text, len, opt, entry, inputs, n_in, outputs, n_out, errmsg);
  free(text);
  return rc;
}
