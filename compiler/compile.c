/* compile.c — the compiler driver as a library (compile.h): read → parse → sema → passes
 * → lower → codegen → AOT shared library or ORC JIT.  Also `check` and `dump`.  A path
 * ending in .onnx is read by the ONNX reader and translated (compiler/onnx/) instead of
 * parsed and analyzed; its weights are its initializers, embedded.
 *
 * Each compilation is a Unit that owns everything made for it (arena, LLVM objects, JIT,
 * buffers) and runs under its own recovery point (ArenaOom, ast.h): running out of memory
 * anywhere in it jumps back to run_unit, which frees the Unit and reports
 * "out of memory while compiling FILE: ..." (NNC_COMPILE_NOMEM), not an abort. */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <cblas.h>
#include "fault.h"
#include "fileio.h"
#include "attention.h"
#include "pool.h"
#include "profile.h"
#include "codegen.h"
#include "compile.h"
#include "header.h"
#include "interp.h"
#include "memreport.h"
#include "build_cache.h"
#include "native.h"
#include "onnx_import.h"
#include "onnx_to_nn.h"
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

/* Everything one compilation owns; freed at once by unit_free (also after running out of
 * memory midway, so each resource is recorded here as soon as it exists). */
typedef struct Unit {
  const char *path;
  char *text;             /* the source read from path, or NULL (given in memory) */
  Arena *arena;
  SrcFile file;
  Diag diag;
  Node *ast;
  Model *model;
  LEntry *lowered;
  unsigned char *weights; /* blob to embed, or NULL */
  nnc_ctx *weights_ctx;
  Target *target;         /* AOT and dumps: the host target, context, module */
  LLVMContextRef llctx;
  LLVMModuleRef mod;      /* until it is handed to a JIT */
  Jit *init_jit;          /* derive_params's */
  char *init_ws;
  NncJit *nj;             /* the JIT being built, until it is returned */
  char *asm_text;
  char *msg;              /* the work's error message, until run_unit hands it over */
  OnnxModel *onnx;        /* an .onnx model: what the reader read */
  unsigned char *onnx_weights; /* its initializers (and derived parameters), to embed */
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
  if (u->mod) LLVMDisposeModule(u->mod);
  jit_free(u->init_jit);
  free(u->init_ws);
  nnc_jit_free(u->nj);
  if (u->llctx) LLVMContextDispose(u->llctx);
  target_free(u->target);
  free(u->asm_text);
  nnc_ctx_close(u->weights_ctx);
  onnx_model_free(u->onnx);
  free(u->onnx_weights);
  arena_free(u->arena);
  free(u->text);
  memset(u, 0, sizeof *u);
}

typedef int (*UnitWork)(Unit *u, void *arg, char **errmsg);

/* Run `work` on u under a recovery point: out of memory anywhere in it frees the Unit and
 * returns NNC_COMPILE_NOMEM with the message.  The Unit lives in the caller's frame, so its
 * fields are what the work last stored (no local of this frame changes after setjmp). */
static int run_unit(Unit *u, UnitWork work, void *arg, char **errmsg) {
  ArenaOom oom;
  arena_oom_push(&oom);
  if (setjmp(oom.jb)) {
    arena_oom_pop(&oom);
    free(u->msg);
    fail(errmsg, "nnc: error: out of memory while compiling %s: %s\n",
         u->path ? u->path : "<memory>", oom.what[0] ? oom.what : "an allocation failed");
    unit_free(u);
    return NNC_COMPILE_NOMEM;
  }
  int rc = work(u, arg, &u->msg);
  arena_oom_pop(&oom);
  if (errmsg && u->msg) *errmsg = u->msg;
  else free(u->msg);
  u->msg = NULL;
  return rc;
}

static char *read_file(const char *path, size_t *len, char **errmsg) {
  size_t max = onnx_is_model_path(path) ? ONNX_MAX_FILE_BYTES : MAX_FILE_BYTES;
  unsigned char *buf;
  char err[512];
  if (nnc_read_file(path, max, &buf, len, err, sizeof err)) {
    fail(errmsg, "%s: error: %s\n", path, err);
    return NULL;
  }
  return (char *)buf;
}

static const char *model_name_of(Arena *a, const char *path) {
  const char *base = strrchr(path, '/');
  base = base ? base + 1 : path;
  const char *dot = strrchr(base, '.');
  size_t n = dot && dot != base ? (size_t)(dot - base) : strlen(base);
  return arena_strndup(a, base, n);
}

/* An .onnx model: read (onnx_reader.h), external data looked up next to it. */
static int onnx_front_end(Unit *u, const char *path, const char *text, size_t len, char **errmsg) {
  u->file = (SrcFile){.path = arena_strdup(u->arena, path), .text = "", .len = 0};
  diag_init(&u->diag, &u->file);
  const char *slash = strrchr(path, '/');
  const char *dir = slash ? arena_strndup(u->arena, path, slash == path ? 1 : (size_t)(slash - path)) : ".";
  char *msg = NULL;
  if (!onnx_read_memory(text, len, path, dir, &u->onnx, &msg)) return 0;
  fail(errmsg, "%s", msg ? msg : "nnc: error: out of memory reading the ONNX model\n");
  free(msg);
  return -1;
}

static int front_end(Unit *u, const char *path, const char *text, size_t len, char **errmsg) {
  if (!(u->arena = arena_new())) nnc_out_of_memory("the compiler's arena");
  if (onnx_is_model_path(path)) return onnx_front_end(u, path, text, len, errmsg);
  u->file = (SrcFile){.path = arena_strdup(u->arena, path), .text = arena_strndup(u->arena, text, len), .len = len};
  diag_init(&u->diag, &u->file);
  u->ast = parse_program(u->arena, &u->file, &u->diag);
  /* u->text is set when the source was read from `path`: an include has a directory to look in */
  if (!u->ast || !include_expand(u->arena, &u->file, u->ast, u->text != NULL, &u->diag)) return fail_diag(u, errmsg);
  return 0;
}

static int analyze(Unit *u, const NncCompileOptions *opt, char **errmsg) {
  if (u->onnx) { /* -D batch=1 pins a symbolic dim (dim_param) of the graph's inputs */
    char err[1024];
    if (opt && opt->ndefines && !onnx_pin_dims(u->onnx, opt->defines, opt->ndefines, err, sizeof err))
      return fail(errmsg, "%s\n", err);
    u->model = onnx_import(u->arena, &u->file, u->onnx, model_name_of(u->arena, u->file.path), &u->diag);
    return u->model ? 0 : fail_diag(u, errmsg);
  }
  u->model = sema_program(u->arena, &u->file, u->ast, model_name_of(u->arena, u->file.path),
                          opt ? opt->defines : NULL, opt ? opt->ndefines : 0, &u->diag);
  return u->model ? 0 : fail_diag(u, errmsg);
}

static int optimize(Unit *u, const char *until, char **errmsg) {
  return run_pipeline(u->model, until, &u->diag) ? 0 : fail_diag(u, errmsg);
}

static const JitSymbol runtime_symbols[] = {
  {"nnc_rt_sgemm", (void *)nnc_rt_sgemm},
  {"nnc_rt_attention", (void *)nnc_rt_attention},
  {"nnc_rt_parallel_for", (void *)nnc_rt_parallel_for},
  {"nnc_rt_parallel_parts", (void *)nnc_rt_parallel_parts},
  {"nnc_rt_index_error", (void *)nnc_rt_index_error},
  {"nnc_rt_profiling", (void *)&nnc_rt_profiling},
  {"nnc_rt_prof_begin", (void *)nnc_rt_prof_begin},
  {"nnc_rt_prof_end", (void *)nnc_rt_prof_end},
  {"nnc_ctx_open", (void *)nnc_ctx_open},
  {"nnc_ctx_close", (void *)nnc_ctx_close},
  {"nnc_ctx_call", (void *)nnc_ctx_call},
  {"nnc_ctx_error", (void *)nnc_ctx_error},
  {"nnc_ctx_set_threads", (void *)nnc_ctx_set_threads},
};

static int jit_add_objects(Jit *jit, const ObjCode *code, char *err, size_t errlen) {
  int rc = 0;
  for (int i = 0; i < code->n && !rc; i++) rc = jit_add_object(jit, code->obj[i], code->len[i], err, errlen);
  return rc;
}

/* Hand u->mod (built in jit's context; disposed here) to the JIT as object code, through
 * the compile cache (its key into *stored_as, when not NULL). */
static int jit_add_native(Jit *jit, Unit *u, TargetPipeline p, CacheKey *stored_as, char *err,
                          size_t errlen) {
  Cache cache;
  cache_open(&cache);
  ObjCode code;
  int rc = native_object(jit_target(jit), &cache, u->mod, p, stored_as, err, errlen, &code);
  LLVMDisposeModule(u->mod);
  u->mod = NULL;
  if (!rc) rc = jit_add_objects(jit, &code, err, errlen);
  objcode_free(&code);
  return rc;
}

/* With the weights known at compile time, compute the derived parameters (pass_hoist.c) now,
 * into the blob that gets embedded, by JIT-running the same init code a context would run. */
static int derive_params(Unit *u, char **errmsg) {
  const Model *m = u->model;
  if (!m->init) return 0;
  char err[4096];
  /* a lowering of its own: codegen memoizes LLVM values in the lowered IR (Lx.cg), so one
   * lowering serves one codegen, and the library's codegen emits the init entry again */
  LEntry *les = lower_model(u->model);
  if (!les) nnc_out_of_memory("lowering the init entry");
  Jit *jit = u->init_jit = jit_new(runtime_symbols, sizeof runtime_symbols / sizeof *runtime_symbols, err, sizeof err);
  if (!jit) return fail(errmsg, "nnc: error: cannot create the JIT: %s\n", err);
  u->mod = jit_module_new(jit, "init");
  codegen_init_only(jit_context(jit), u->mod, m, les);
  nnc_entry_fn init = NULL;
  if (jit_add_native(jit, u, PIPELINE_ONCE, NULL, err, sizeof err) || !(init = (nnc_entry_fn)jit_lookup(jit, "nnc_init", err, sizeof err)))
    return fail(errmsg, "%s: internal error: compiling the init entry: %s\n", u->file.path, err);
  int64_t bytes = plan_workspace_bytes(m->init, NULL);
  if (bytes < 0 || !(u->init_ws = aligned_alloc(64, (size_t)bytes + 64)))
    nnc_out_of_memory("a workspace of %lld bytes for the init entry", (long long)bytes);
  init(NULL, NULL, (const char *)u->weights, u->init_ws);
  free(u->init_ws);
  u->init_ws = NULL;
  jit_free(jit);
  u->init_jit = NULL;
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

/* An ONNX model's weights: its initializers, then the derived parameters computed from them. */
static int onnx_weights(Unit *u, const NncCompileOptions *opt, char **errmsg) {
  const Model *m = u->model;
  if (opt && opt->weights_path)
    return fail(errmsg, "%s: error: --weights %s: an ONNX model's weights are its initializers\n", u->file.path,
                opt->weights_path);
  size_t size = ((size_t)m->weights_size + 63) & ~(size_t)63;
  if (!(u->onnx_weights = aligned_alloc(64, size ? size : 64)))
    nnc_out_of_memory("the weights of the ONNX model (%zu bytes)", size);
  memset(u->onnx_weights, 0, size);
  onnx_fill_weights(m, u->onnx, u->onnx_weights);
  u->weights = u->onnx_weights;
  return derive_params(u, errmsg);
}

static int compile_to_ir(Unit *u, const char *path, const char *text, size_t len,
                         const NncCompileOptions *opt, char **errmsg) {
  if (front_end(u, path, text, len, errmsg) || analyze(u, opt, errmsg) || optimize(u, NULL, errmsg)) return -1;
  if (u->onnx && onnx_weights(u, opt, errmsg)) return -1;
  if (!u->onnx && opt && opt->weights_path && load_weights(u, opt->weights_path, errmsg)) return -1;
  if (!u->lowered && !(u->lowered = lower_model(u->model))) nnc_out_of_memory("lowering");
  return 0;
}

static int compile_file(Unit *u, const char *path, const NncCompileOptions *opt, char **errmsg) {
  size_t len;
  if (!(u->text = read_file(path, &len, errmsg))) return -1;
  return compile_to_ir(u, path, u->text, len, opt, errmsg);
}

/* ---- the build cache (build_cache.h) ---- */

/* The build key of making `kind` from u->path with opt: false when there is none (the cache
 * off). */
static bool unit_build_key(const Unit *u, const Cache *c, BuildKind kind, const NncCompileOptions *opt,
                           CacheKey *key) {
  BuildInputs in = {kind, u->path, opt ? opt->weights_path : NULL, opt ? opt->defines : NULL,
                    opt ? opt->ndefines : 0};
  return c->on && build_key(&in, key);
}

/* After a build of `kind` under `key`: the entry naming what it made, with the files it read
 * besides the model and the weights (its includes, hashed as compiled).  None when the key
 * has changed since the build began (the model or the weights edited meanwhile: the build
 * may have read either version), nor for an ONNX model with external data, whose files the
 * entry cannot list. */
static void store_build(const Unit *u, const Cache *c, BuildKind kind, const NncCompileOptions *opt,
                        const CacheKey *key, const CacheKey *named) {
  CacheKey now;
  if ((u->onnx && u->onnx->n_external) || !unit_build_key(u, c, kind, opt, &now) || memcmp(&now, key, sizeof now))
    return;
  const char *header_path = kind == BUILD_LIBRARY_HEADER ? opt->header_path : NULL;
  unsigned char *header = NULL;
  size_t header_len = 0;
  if (header_path && nnc_read_file(header_path, 0, &header, &header_len, NULL, 0)) return;
  BuildDep *deps = malloc((size_t)(u->file.nfiles + 1) * sizeof *deps);
  int n = 0;
  for (int i = 1; deps && i < u->file.nfiles; i++)
    deps[n++] = (BuildDep){u->file.files[i]->path, u->file.files[i]->text, u->file.files[i]->len};
  if (deps) build_cache_store(c, key, deps, n, named, header, header_len);
  free(deps);
  free(header);
}

/* ---- AOT ---- */

typedef struct AotJob {
  const char *so_path;
  const NncCompileOptions *opt;
} AotJob;

/* The library (and the header) from the build cache, or compiled and stored there. */
static int compile_so_unit(Unit *u, void *arg, char **errmsg) {
  const AotJob *job = arg;
  const NncCompileOptions *opt = job->opt;
  char err[4096];
  Cache cache;
  cache_open(&cache);
  CacheKey build = {{0}}, library = {{0}};
  const char *header_path = opt ? opt->header_path : NULL;
  BuildKind kind = header_path ? BUILD_LIBRARY_HEADER : BUILD_LIBRARY;
  bool keyed = unit_build_key(u, &cache, kind, opt, &build);
  int hit = keyed ? build_cache_fetch(&cache, &build, job->so_path, header_path, err, sizeof err) : 1;
  if (hit < 0) return fail(errmsg, "nnc: error: %s\n", err);
  if (hit == 0) return 0;
  if (compile_file(u, u->path, opt, errmsg)) return -1;
  if (header_path && write_header(header_path, u->model, err, sizeof err))
    return fail(errmsg, "%s", err);
  if (!(u->target = target_new_host(err, sizeof err))) return fail(errmsg, "nnc: error: %s\n", err);
  u->llctx = LLVMContextCreate();
  u->mod = LLVMModuleCreateWithNameInContext(u->model->name, u->llctx);
  target_configure_module(u->target, u->mod);
  codegen_model(u->llctx, u->mod, u->model, u->lowered, u->weights);
  const char *link[AOT_LINK_ARGS];
  aot_link_args(link);
  int rc = native_shared_lib(u->target, &cache, u->mod, job->so_path, link, AOT_LINK_ARGS, &library, err, sizeof err);
  if (rc == NATIVE_ECODE) return fail(errmsg, "%s: internal error: %s\n", u->path, err);
  if (rc) return fail(errmsg, "%s: error: linking failed: %s\n", job->so_path, err);
  if (keyed) store_build(u, &cache, kind, opt, &build, &library);
  return 0;
}

int nnc_compile_so(const char *nn_path, const char *so_path, const NncCompileOptions *opt, char **errmsg) {
  Unit u = {.path = nn_path};
  AotJob job = {so_path, opt};
  int rc = run_unit(&u, compile_so_unit, &job, errmsg);
  unit_free(&u);
  return rc;
}

/* ---- JIT ---- */

struct NncJit {
  Jit *jit;
  const nnc_model_desc *desc;
};


/* A JIT for the model's code, in u->nj until it is handed over; NULL with a message. */
static NncJit *jit_handle(Unit *u, char *err, size_t errlen) {
  NncJit *nj = u->nj = calloc(1, sizeof *nj);
  if (!nj) nnc_out_of_memory("the JIT's handle");
  nj->jit = jit_new(runtime_symbols, sizeof runtime_symbols / sizeof *runtime_symbols, err, errlen);
  return nj->jit ? nj : NULL;
}

/* The model's table, from the code in u->nj's JIT; hands u->nj over. */
static int jit_describe(Unit *u, NncJit **out, const nnc_model_desc **desc, char *err, size_t errlen) {
  NncJit *nj = u->nj;
  const nnc_model_desc *(*info)(void) =
      (const nnc_model_desc *(*)(void))jit_lookup(nj->jit, "nnc_model_info", err, errlen);
  if (!info) return -1;
  *desc = nj->desc = info();
  *out = nj;
  u->nj = NULL;
  return 0;
}

/* The model compiled into a JIT (its object code's key into *objects). */
static int jit_unit(Unit *u, NncJit **out, const nnc_model_desc **desc, CacheKey *objects, char **errmsg) {
  char err[4096];
  NncJit *nj = jit_handle(u, err, sizeof err);
  if (!nj) return fail(errmsg, "nnc: error: cannot create the JIT: %s\n", err);
  u->mod = jit_module_new(nj->jit, u->model->name);
  codegen_model(jit_context(nj->jit), u->mod, u->model, u->lowered, u->weights);
  if (jit_add_native(nj->jit, u, PIPELINE_MODEL, objects, err, sizeof err) || jit_describe(u, out, desc, err, sizeof err))
    return fail(errmsg, "%s: internal error: JIT compilation failed: %s\n", u->file.path, err);
  return 0;
}

/* The model from the object code a build entry names, with none of the compiler's work:
 * 0, or 1 on a miss (the cache's or the JIT's: then nothing is left behind). */
static int jit_from_build_cache(Unit *u, const Cache *c, const CacheKey *key, NncJit **out,
                                const nnc_model_desc **desc) {
  char err[1024];
  CacheKey named;
  ObjCode code;
  if (build_cache_lookup(c, key, &named) || native_cached_object(c, &named, &code)) return 1;
  bool ok = jit_handle(u, err, sizeof err) && !jit_add_objects(u->nj->jit, &code, err, sizeof err) &&
            !jit_describe(u, out, desc, err, sizeof err);
  objcode_free(&code);
  if (ok) return 0;
  nnc_jit_free(u->nj);
  u->nj = NULL;
  return 1;
}

typedef struct JitJob {
  bool read; /* text is read from the Unit's path */
  const char *text;
  size_t len;
  const NncCompileOptions *opt;
  NncJit **jit;
  const nnc_model_desc **desc;
} JitJob;

/* A model read from a file goes through the build cache, as an AOT build does (its JIT key). */
static int jit_source_unit(Unit *u, void *arg, char **errmsg) {
  JitJob *job = arg;
  Cache cache;
  cache_open(&cache);
  CacheKey key = {{0}}, objects = {{0}};
  bool keyed = job->read && unit_build_key(u, &cache, BUILD_JIT, job->opt, &key);
  if (keyed && !jit_from_build_cache(u, &cache, &key, job->jit, job->desc)) return 0;
  if (job->read && !(job->text = u->text = read_file(u->path, &job->len, errmsg))) return -1;
  if (compile_to_ir(u, u->path, job->text, job->len, job->opt, errmsg) ||
      jit_unit(u, job->jit, job->desc, &objects, errmsg))
    return -1;
  if (keyed) store_build(u, &cache, BUILD_JIT, job->opt, &key, &objects);
  return 0;
}

int nnc_compile_jit_source(const char *path, const char *text, size_t len, const NncCompileOptions *opt,
                           NncJit **jit, const nnc_model_desc **desc, char **errmsg) {
  Unit u = {.path = path};
  *jit = NULL;
  *desc = NULL;
  JitJob job = {false, text, len, opt, jit, desc};
  int rc = run_unit(&u, jit_source_unit, &job, errmsg);
  unit_free(&u);
  return rc;
}

int nnc_compile_jit(const char *nn_path, const NncCompileOptions *opt, NncJit **jit,
                    const nnc_model_desc **desc, char **errmsg) {
  Unit u = {.path = nn_path};
  *jit = NULL;
  *desc = NULL;
  JitJob job = {true, NULL, 0, opt, jit, desc};
  int rc = run_unit(&u, jit_source_unit, &job, errmsg);
  unit_free(&u);
  return rc;
}

void nnc_jit_free(NncJit *jit) {
  if (!jit) return;
  nnc_rt_prof_report(); /* the JIT code's sites are about to go */
  jit_free(jit->jit);
  free(jit);
}

/* ---- import ---- */

typedef struct ImportJob {
  const char *nn_path, *weights_path;
  const char *const *dims;
  int ndims;
} ImportJob;

static int import_unit(Unit *u, void *arg, char **errmsg) {
  const ImportJob *job = arg;
  char err[2048];
  size_t len;
  const char **names = NULL;
  if (!onnx_is_model_path(u->path))
    return fail(errmsg, "%s: error: not an ONNX model: nnc import reads a .onnx file\n", u->path);
  if (!(u->text = read_file(u->path, &len, errmsg)) || front_end(u, u->path, u->text, len, errmsg)) return -1;
  if (!onnx_pin_dims(u->onnx, job->dims, job->ndims, err, sizeof err)) return fail(errmsg, "%s\n", err);
  u->model = onnx_import_named(u->arena, &u->file, u->onnx, model_name_of(u->arena, u->path), &u->diag, &names);
  if (!u->model) return fail_diag(u, errmsg);
  if (!onnx_write_nn(u->arena, u->onnx, u->model, names, job->nn_path, job->weights_path, err, sizeof err))
    return fail(errmsg, "%s", err);
  return 0;
}

int nnc_import_onnx(const char *onnx_path, const char *nn_path, const char *weights_path,
                    const char *const *dims, int ndims, char **errmsg) {
  ImportJob job = {nn_path, weights_path, dims, ndims};
  Unit u = {.path = onnx_path};
  int rc = run_unit(&u, import_unit, &job, errmsg);
  unit_free(&u);
  return rc;
}

/* ---- check and dump ---- */

static int check_unit(Unit *u, void *opt, char **errmsg) {
  size_t len;
  if (!(u->text = read_file(u->path, &len, errmsg))) return -1;
  return front_end(u, u->path, u->text, len, errmsg) || analyze(u, opt, errmsg) ? -1 : 0;
}

int nnc_check(const char *nn_path, const NncCompileOptions *opt, char **errmsg) {
  Unit u = {.path = nn_path};
  int rc = run_unit(&u, check_unit, (void *)opt, errmsg);
  unit_free(&u);
  return rc;
}

static int dump_llvm(Unit *u, bool assembly, FILE *out, char **errmsg) {
  char err[4096];
  if (!(u->target = target_new_host(err, sizeof err))) return fail(errmsg, "nnc: error: %s\n", err);
  u->llctx = LLVMContextCreate();
  u->mod = LLVMModuleCreateWithNameInContext(u->model->name, u->llctx);
  target_configure_module(u->target, u->mod);
  codegen_model(u->llctx, u->mod, u->model, u->lowered, NULL);
  if (assembly) {
    if (target_optimize(u->target, u->mod, err, sizeof err) ||
        !(u->asm_text = target_emit_asm(u->target, u->mod, err, sizeof err)))
      return fail(errmsg, "%s: internal error: %s\n", u->file.path, err);
    fputs(u->asm_text, out);
  } else {
    char *s = LLVMPrintModuleToString(u->mod);
    fputs(s, out);
    LLVMDisposeMessage(s);
  }
  return 0;
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

typedef struct DumpJob {
  bool read; /* the text is read from the Unit's path */
  const char *text;
  size_t len;
  int which;
  bool dot;
  const NncCompileOptions *opt;
  FILE *out;
} DumpJob;

static int dump_stage(Unit *u, void *arg, char **errmsg) {
  DumpJob *j = arg;
  int which = j->which;
  if (j->read && !(j->text = u->text = read_file(u->path, &j->len, errmsg))) return -1;
  int rc = front_end(u, u->path, j->text, j->len, errmsg);
  if (!rc && which == STAGE_AST && u->onnx)
    rc = fail(errmsg, "%s: error: an ONNX model has no AST (stages: ir, opt, fused, loops, llvm, asm, memory)\n", u->path);
  if (!rc && which == STAGE_AST) ast_dump(j->out, u->ast);
  if (!rc && which >= STAGE_IR) rc = analyze(u, j->opt, errmsg);
  if (!rc && which >= STAGE_OPT) rc = optimize(u, which == STAGE_OPT ? "dce" : NULL, errmsg);
  if (!rc && which >= STAGE_IR && which <= STAGE_FUSED) dump_graph(j->out, u->model, which, j->dot);
  if (!rc && which == STAGE_MEMORY) {
    char err[256];
    if (memory_report(j->out, u->model, j->opt ? j->opt->dims : NULL, err, sizeof err))
      rc = fail(errmsg, "nnc: error: %s\n", err);
  }
  bool lowered = which >= STAGE_LOOPS && which <= STAGE_ASM;
  if (!rc && lowered && !(u->lowered = lower_model(u->model))) nnc_out_of_memory("lowering");
  if (!rc && which == STAGE_LOOPS)
    for (int i = 0; i < u->model->nentries + (u->model->init != NULL) + u->model->nbodies; i++)
      loopir_dump(j->out, u->model, &u->lowered[i]); /* entries, init entry, scan bodies */
  if (!rc && (which == STAGE_LLVM || which == STAGE_ASM)) rc = dump_llvm(u, which == STAGE_ASM, j->out, errmsg);
  return rc;
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
  Unit u = {.path = path};
  DumpJob job = {text == NULL, text, len, which, dot, opt, out};
  int rc = run_unit(&u, dump_stage, &job, errmsg);
  unit_free(&u);
  return rc;
}

int nnc_dump_source(const char *path, const char *text, size_t len, const char *stage, FILE *out,
                    char **errmsg) {
  return dump_unit(path, text ? text : "", len, stage, "text", NULL, out, errmsg);
}

int nnc_dump_format(const char *nn_path, const char *stage, const char *format,
                    const NncCompileOptions *opt, FILE *out, char **errmsg) {
  return dump_unit(nn_path, NULL, 0, stage, format, opt, out, errmsg);
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
  if (u->onnx && onnx_weights(u, NULL, errmsg)) return -1;
  if (!u->onnx && opt && opt->weights_path && load_weights(u, opt->weights_path, errmsg)) return -1;
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
  void *outs[e->nout + 1];
  char err[512];
  if (interp_inputs(u, e, inputs, syms, data, errmsg)) return -1;
  InterpRounding r = !opt || !opt->f32 ? INTERP_DOUBLE : opt->random_rounding ? INTERP_F32_RANDOM : INTERP_F32;
  if (interp_run(m, e, u->weights, data, syms, r, opt ? opt->random_rounding : 0, outs, err, sizeof err))
    return fail(errmsg, "%s: error: %s\n", u->file.path, err);
  for (int o = 0; o < n_out; o++) {
    const Shape *s = &e->outputs[o]->shape;
    outputs[o] = (nnc_tensor){.data = outs[o], .dtype = e->out_dtypes[o] == DT_I64 ? NNC_I64 : NNC_F32, .rank = s->rank};
    for (int k = 0; k < s->rank; k++) outputs[o].shape[k] = interp_dim(s->d[k], syms);
  }
  return 0;
}

typedef struct InterpJob {
  bool read;
  const char *text;
  size_t len;
  const NncInterpOptions *opt;
  const char *entry;
  const nnc_tensor *inputs;
  int n_in;
  nnc_tensor *outputs;
  int n_out;
} InterpJob;

static int interp_job(Unit *u, void *arg, char **errmsg) {
  InterpJob *j = arg;
  if (j->read && !(j->text = u->text = read_file(u->path, &j->len, errmsg))) return -1;
  int rc = front_end(u, u->path, j->text, j->len, errmsg);
  if (!rc) rc = interpret_unit(u, j->opt, j->entry, j->inputs, j->n_in, j->outputs, j->n_out, errmsg);
  return rc;
}

int nnc_interpret_source(const char *path, const char *text, size_t len,
                         const NncInterpOptions *opt, const char *entry,
                         const nnc_tensor *inputs, int n_in, nnc_tensor *outputs, int n_out,
                         char **errmsg) {
  Unit u = {.path = path};
  InterpJob job = {false, text, len, opt, entry, inputs, n_in, outputs, n_out};
  int rc = run_unit(&u, interp_job, &job, errmsg);
  unit_free(&u);
  return rc;
}

int nnc_interpret(const char *nn_path, const NncInterpOptions *opt, const char *entry,
                  const nnc_tensor *inputs, int n_in, nnc_tensor *outputs, int n_out,
                  char **errmsg) {
  Unit u = {.path = nn_path};
  InterpJob job = {true, NULL, 0, opt, entry, inputs, n_in, outputs, n_out};
  int rc = run_unit(&u, interp_job, &job, errmsg);
  unit_free(&u);
  return rc;
}
