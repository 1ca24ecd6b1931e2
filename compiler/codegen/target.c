/* target.c — native code from LLVM modules: host TargetMachine, verify + O3, asm text,
 * object file + `cc -shared` (AOT), and an ORC LLJIT (JIT).  Only the LLVM C API is used.
 * See target.h for ownership rules. */
#include "target.h"
#include "fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <llvm-c/Analysis.h>
#include <llvm-c/Error.h>
#include <llvm-c/LLJIT.h>
#include <llvm-c/Orc.h>
#include <llvm-c/Target.h>
#include <llvm-c/TargetMachine.h>
#include <llvm-c/Transforms/PassBuilder.h>

extern char **environ;

struct Target {
  LLVMTargetMachineRef tm;
  LLVMTargetMachineRef tm_once;  /* PIPELINE_ONCE's code generator, made on first use */
  LLVMTargetDataRef layout;
  char *triple, *cpu, *features; /* LLVMDisposeMessage */
  char *identity;                /* target_identity's text, malloc'd */
};

struct Jit {
  LLVMOrcLLJITRef lljit;
  LLVMOrcThreadSafeContextRef tsc;
  Target *target; /* optimises modules before they are added */
};

static void set_err(char *err, size_t errlen, const char *fmt, ...) {
  if (!err || !errlen)
    return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

/* Consumes e (non-NULL) into err, prefixed with what. */
static void error_to_msg(LLVMErrorRef e, const char *what, char *err, size_t errlen) {
  char *msg = LLVMGetErrorMessage(e);
  set_err(err, errlen, "%s: %s", what, msg);
  LLVMDisposeErrorMessage(msg);
}

/* ---- host target machine ---- */

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static int init_failed;

static void init_native(void) {
  init_failed = LLVMInitializeNativeTarget() || LLVMInitializeNativeAsmPrinter();
}

/* The host's triple, CPU name and feature string (LLVMDisposeMessage each). */
typedef struct HostDesc {
  char *triple, *cpu, *features;
} HostDesc;

static void host_desc_free(HostDesc *h) {
  LLVMDisposeMessage(h->triple);
  LLVMDisposeMessage(h->cpu);
  LLVMDisposeMessage(h->features);
  *h = (HostDesc){0};
}

/* A fresh host TargetMachine at code-generator level `level` (owned by the caller);
 * *host_out gets the triple, CPU and features it was made for if non-NULL (else they are
 * freed). */
static LLVMTargetMachineRef host_tm_at(LLVMCodeGenOptLevel level, HostDesc *host_out, char *err,
                                       size_t errlen) {
  pthread_once(&init_once, init_native);
  if (init_failed) {
    set_err(err, errlen, "cannot initialise the native LLVM target");
    return NULL;
  }
  HostDesc h = {LLVMGetDefaultTargetTriple(), NULL, NULL};
  LLVMTargetRef target;
  char *msg = NULL;
  if (LLVMGetTargetFromTriple(h.triple, &target, &msg)) {
    set_err(err, errlen, "target %s: %s", h.triple, msg);
    LLVMDisposeMessage(msg);
    host_desc_free(&h);
    return NULL;
  }
  h.cpu = LLVMGetHostCPUName();
  h.features = LLVMGetHostCPUFeatures();
  LLVMTargetMachineRef tm =
      LLVMCreateTargetMachine(target, h.triple, h.cpu, h.features, level,
                              LLVMRelocPIC, LLVMCodeModelDefault);
  if (!tm)
    set_err(err, errlen, "cannot create a target machine for %s", h.triple);
  if (tm && host_out)
    *host_out = h;
  else
    host_desc_free(&h);
  return tm;
}

static LLVMTargetMachineRef host_tm(HostDesc *host_out, char *err, size_t errlen) {
  return host_tm_at(LLVMCodeGenLevelAggressive, host_out, err, errlen);
}

/* Does LLVM's feature string ("+sse2,-avx512f,...") enable `name`? */
static bool has_feature(const char *features, const char *name) {
  size_t n = strlen(name);
  for (const char *p = features; (p = strstr(p, name)); p += n)
    if (p > features && p[-1] == '+' && (p[n] == ',' || p[n] == '\0')) return true;
  return false;
}

/* $NNC_PLAN_SIMD (4, 8 or 16) plans for another vector width than the host's: the golden
 * fused dumps (tests/compile/fused) are written for 16 lanes, so that they read the same on
 * every machine.  The code stays correct on any host (LLVM splits wider vectors). */
static int planned_simd_floats(void) {
  const char *env = getenv("NNC_PLAN_SIMD");
  if (!env) return 0;
  if (!strcmp(env, "4")) return 4;
  if (!strcmp(env, "8")) return 8;
  if (!strcmp(env, "16")) return 16;
  return 0;
}

/* The host's vector width, read once per process (LLVM parses the CPU's feature list, a cost
 * that showed at every weight of a model of thousands of layers); written only inside
 * pthread_once, like the native target's initialization above. */
static pthread_once_t host_simd_once = PTHREAD_ONCE_INIT;
static int host_floats;
static bool host_wide_fma;

/* LLVM's names of the cores with two full-width 512-bit FMA units.  Zen 4 splits a 512-bit
 * FMA into two 256-bit halves; Intel's client cores (icelake-client, tigerlake, rocketlake)
 * fuse their two 256-bit units into one 512-bit one: a 16-float FMA gives no more FLOPs
 * there than an 8-float one.  (Intel's 1-unit Xeon Silver and Bronze share the server
 * names; the wide plan is still correct there, with some lanes of half-used rows idle.) */
static bool wide_fma_cpu(const char *cpu) {
  static const char *const wide[] = {"znver5",         "skylake-avx512", "cascadelake",     "cooperlake",
                                     "icelake-server", "sapphirerapids", "emeraldrapids",   "graniterapids",
                                     "graniterapids-d", "diamondrapids"};
  for (size_t i = 0; i < sizeof wide / sizeof *wide; i++)
    if (!strcmp(cpu, wide[i])) return true;
  return false;
}

static void read_host_simd(void) {
  char *features = LLVMGetHostCPUFeatures(), *cpu = LLVMGetHostCPUName();
  bool avx512 = has_feature(features, "avx512f"), avx = has_feature(features, "avx");
  host_floats = avx512 ? 16 : avx ? 8 : 4;
  host_wide_fma = avx512 && wide_fma_cpu(cpu);
  LLVMDisposeMessage(features);
  LLVMDisposeMessage(cpu);
}

void target_host_simd(int *floats, int *regs) {
  int planned = planned_simd_floats();
  if (!planned) {
    pthread_once(&host_simd_once, read_host_simd);
    planned = host_floats;
  }
  *floats = planned;
  *regs = planned == 16 ? 32 : 16;
}

bool target_host_wide_fma(void) {
  const char *env = getenv("NNC_PLAN_WIDE_FMA");
  if (env && (!strcmp(env, "0") || !strcmp(env, "1"))) return env[0] == '1';
  if (planned_simd_floats()) return false;
  pthread_once(&host_simd_once, read_host_simd);
  return host_wide_fma;
}

Target *target_new_host(char *err, size_t errlen) {
  Target *t = calloc(1, sizeof *t);
  if (!t) {
    set_err(err, errlen, "out of memory");
    return NULL;
  }
  HostDesc h;
  t->tm = host_tm(&h, err, errlen);
  if (!t->tm) {
    free(t);
    return NULL;
  }
  t->triple = h.triple;
  t->cpu = h.cpu;
  t->features = h.features;
  t->layout = LLVMCreateTargetDataLayout(t->tm);
  unsigned major, minor, patch;
  LLVMGetVersion(&major, &minor, &patch);
  TargetCaches caches = target_host_caches();
  if (asprintf(&t->identity, "LLVM %u.%u.%u; %s; %s; %s; PIC, default code model; L1d %lld, L2 %lld",
               major, minor, patch, t->triple, t->cpu, t->features, (long long)caches.l1d,
               (long long)caches.l2) < 0) {
    t->identity = NULL;
    target_free(t);
    set_err(err, errlen, "out of memory");
    return NULL;
  }
  return t;
}

void target_free(Target *t) {
  if (!t)
    return;
  LLVMDisposeTargetData(t->layout);
  LLVMDisposeTargetMachine(t->tm);
  if (t->tm_once) LLVMDisposeTargetMachine(t->tm_once);
  LLVMDisposeMessage(t->triple);
  LLVMDisposeMessage(t->cpu);
  LLVMDisposeMessage(t->features);
  free(t->identity);
  free(t);
}

const char *target_identity(const Target *t) { return t->identity; }

void target_configure_module(Target *t, LLVMModuleRef m) {
  LLVMSetTarget(m, t->triple);
  LLVMSetModuleDataLayout(m, t->layout);
}

/* ---- verify + optimise ---- */

/* Code that runs once gets no IR optimisation: its compile time would never be paid back
 * (the init entries of the examples: 35-250 ms with default<O3>, half of it without; they
 * run in under a millisecond either way).  Its code generator is the model's, and LLVM's
 * optimisations never change floating-point results without fast-math flags, so derived
 * parameters come out with the same bits as when a library's own init entry computes them. */
const char *target_pipeline_text(TargetPipeline p) {
  return p == PIPELINE_ONCE ? "default<O0>" : "default<O3>";
}

/* The same holds for its code generator: LLVM's fast instruction selection (the init entries
 * of fcn and groupnorm: 40-60 % of their code generation time, which was 10-20 % of a cold
 * compile) emits the same IEEE operations, so the same bits. */
const char *target_codegen_text(TargetPipeline p) {
  return p == PIPELINE_ONCE ? "codegen O0 (fast instruction selection)" : "codegen O3";
}

/* The TargetMachine that generates pipeline p's code; NULL (err set) when it cannot be made. */
static LLVMTargetMachineRef pipeline_tm(Target *t, TargetPipeline p, char *err, size_t errlen) {
  if (p != PIPELINE_ONCE) return t->tm;
  if (!t->tm_once) t->tm_once = host_tm_at(LLVMCodeGenLevelNone, NULL, err, errlen);
  return t->tm_once;
}

int target_optimize_with(Target *t, LLVMModuleRef m, TargetPipeline p, char *err,
                         size_t errlen) {
  char *msg = NULL;
  int broken = LLVMVerifyModule(m, LLVMReturnStatusAction, &msg);
  if (broken)
    set_err(err, errlen, "invalid LLVM module: %s", msg ? msg : "(no message)");
  LLVMDisposeMessage(msg);
  if (broken)
    return -1;

  /* The C API's default tuning leaves the SLP vectoriser off (clang turns it on at O2+). */
  LLVMPassBuilderOptionsRef opts = LLVMCreatePassBuilderOptions();
  LLVMPassBuilderOptionsSetLoopVectorization(opts, 1);
  LLVMPassBuilderOptionsSetSLPVectorization(opts, 1);
  LLVMPassBuilderOptionsSetLoopInterleaving(opts, 1);
  LLVMPassBuilderOptionsSetLoopUnrolling(opts, 1);
  LLVMErrorRef e = LLVMRunPasses(m, target_pipeline_text(p), t->tm, opts);
  LLVMDisposePassBuilderOptions(opts);
  if (e) {
    error_to_msg(e, "optimisation failed", err, errlen);
    return -1;
  }
  return 0;
}

int target_optimize(Target *t, LLVMModuleRef m, char *err, size_t errlen) {
  return target_optimize_with(t, m, PIPELINE_MODEL, err, errlen);
}

/* ---- codegen ---- */

/* Code of m (of a clone unless in_place: the codegen pipeline rewrites IR); the buffer is
 * the caller's. */
static LLVMMemoryBufferRef codegen(Target *t, LLVMModuleRef m, TargetPipeline p, bool in_place,
                                   LLVMCodeGenFileType kind, char *err, size_t errlen) {
  LLVMTargetMachineRef tm = pipeline_tm(t, p, err, errlen);
  if (!tm) return NULL;
  LLVMModuleRef clone = in_place ? m : LLVMCloneModule(m);
  LLVMMemoryBufferRef buf = NULL;
  char *msg = NULL;
  if (LLVMTargetMachineEmitToMemoryBuffer(tm, clone, kind, &msg, &buf)) {
    set_err(err, errlen, "code generation failed: %s", msg ? msg : "(no message)");
    buf = NULL;
  }
  LLVMDisposeMessage(msg);
  if (!in_place)
    LLVMDisposeModule(clone);
  return buf;
}

/* A malloc'd copy of buf's bytes (disposing buf) into *data, *len; 0 or -1. */
static int take_buffer(LLVMMemoryBufferRef buf, void **data, size_t *len, char *err,
                       size_t errlen) {
  *len = LLVMGetBufferSize(buf);
  *data = malloc(*len ? *len : 1);
  if (*data)
    memcpy(*data, LLVMGetBufferStart(buf), *len);
  else
    set_err(err, errlen, "out of memory");
  LLVMDisposeMemoryBuffer(buf);
  return *data ? 0 : -1;
}

int target_emit_object(Target *t, LLVMModuleRef m, TargetPipeline p, void **obj, size_t *len,
                       char *err, size_t errlen) {
  LLVMMemoryBufferRef buf = codegen(t, m, p, true, LLVMObjectFile, err, errlen);
  return buf ? take_buffer(buf, obj, len, err, errlen) : -1;
}

char *target_emit_asm(Target *t, LLVMModuleRef m, char *err, size_t errlen) {
  LLVMMemoryBufferRef buf = codegen(t, m, PIPELINE_MODEL, false, LLVMAssemblyFile, err, errlen);
  if (!buf)
    return NULL;
  size_t n = LLVMGetBufferSize(buf);
  char *s = malloc(n + 1);
  if (s) {
    memcpy(s, LLVMGetBufferStart(buf), n);
    s[n] = '\0';
  } else {
    set_err(err, errlen, "out of memory");
  }
  LLVMDisposeMemoryBuffer(buf);
  return s;
}

/* Writes obj[len] to a new temp file "<TMPDIR>/nnc-XXXXXX.o"; path[] gets its name. */
static int write_temp_object(const void *obj, size_t len, char *path, size_t pathlen, char *err,
                             size_t errlen) {
  const char *dir = getenv("TMPDIR");
  snprintf(path, pathlen, "%s/nnc-XXXXXX.o", dir && *dir ? dir : "/tmp");
  int fd = mkostemps(path, 2, O_CLOEXEC);
  if (fd < 0) {
    set_err(err, errlen, "cannot create %s: %s", path, strerror(errno));
    path[0] = '\0';
    return -1;
  }
  int rc = nnc_write_fd(fd, obj, len);
  if (close(fd) != 0)
    rc = -1;
  if (rc) {
    set_err(err, errlen, "cannot write %s: %s", path, strerror(errno));
    unlink(path);
    path[0] = '\0';
  }
  return rc;
}

/* Runs argv[0] (PATH search, no shell) with stdout+stderr captured; 0 if it exits 0.
 * posix_spawn rather than fork: safe in a process with other threads (LLVM, other JITs). */
static int run_capture(char *const argv[], char *err, size_t errlen) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    set_err(err, errlen, "pipe: %s", strerror(errno));
    return -1;
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, fds[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&fa, fds[1], STDERR_FILENO);
  pid_t pid;
  int rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  close(fds[1]);
  if (rc != 0) {
    close(fds[0]);
    set_err(err, errlen, "cannot run %s: %s", argv[0], strerror(rc));
    return -1;
  }

  char out[4096];
  size_t len = 0;
  for (;;) { /* drain everything so the child never blocks; keep the first 4 KiB */
    char chunk[1024];
    ssize_t r = read(fds[0], chunk, sizeof chunk);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      break;
    size_t keep = (size_t)r < sizeof out - 1 - len ? (size_t)r : sizeof out - 1 - len;
    memcpy(out + len, chunk, keep);
    len += keep;
  }
  out[len] = '\0';
  close(fds[0]);

  int status;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) {
      set_err(err, errlen, "waitpid: %s", strerror(errno));
      return -1;
    }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
    return 0;
  if (WIFEXITED(status))
    set_err(err, errlen, "%s failed (exit %d):\n%s", argv[0], WEXITSTATUS(status), out);
  else
    set_err(err, errlen, "%s killed by signal %d:\n%s", argv[0], WTERMSIG(status), out);
  return -1;
}

/* argv = split($NNC_CC or "cc") -shared -o out objs... link_args... NULL; *words owns the
 * strings. */
static char **link_argv(const char *out, char (*objs)[4096], int n_objs,
                        const char *const *link_args, int n_link_args, char **words) {
  const char *cc = getenv("NNC_CC");
  *words = strdup(cc && *cc ? cc : "cc");
  size_t max = (*words ? strlen(*words) : 0) / 2 + 1 + 3 + (size_t)n_objs + (size_t)n_link_args + 1;
  char **argv = calloc(max, sizeof *argv);
  if (!*words || !argv) {
    free(argv);
    return NULL;
  }
  size_t n = 0;
  char *save = NULL;
  for (char *w = strtok_r(*words, " \t", &save); w; w = strtok_r(NULL, " \t", &save))
    argv[n++] = w;
  if (n == 0)
    argv[n++] = "cc";
  argv[n++] = "-shared";
  argv[n++] = "-o";
  argv[n++] = (char *)out;
  for (int i = 0; i < n_objs; i++)
    argv[n++] = objs[i];
  for (int i = 0; i < n_link_args; i++)
    argv[n++] = (char *)link_args[i];
  argv[n] = NULL;
  return argv;
}

int target_link_shared_lib(const void *const *objs, const size_t *lens, int n_objs,
                           const char *out_path, const char *const *link_args, int n_link_args,
                           char *err, size_t errlen) {
  char (*paths)[4096] = calloc((size_t)n_objs + 1, sizeof *paths);
  int rc = paths ? 0 : -1;
  if (!paths)
    set_err(err, errlen, "out of memory");
  for (int i = 0; i < n_objs && !rc; i++)
    rc = write_temp_object(objs[i], lens[i], paths[i], sizeof paths[i], err, errlen);
  char *words = NULL;
  char **argv = rc ? NULL : link_argv(out_path, paths, n_objs, link_args, n_link_args, &words);
  if (argv)
    rc = run_capture(argv, err, errlen);
  else if (!rc) {
    set_err(err, errlen, "out of memory");
    rc = -1;
  }
  free(argv);
  free(words);
  for (int i = 0; paths && i < n_objs; i++)
    if (paths[i][0])
      unlink(paths[i]);
  free(paths);
  return rc;
}

int target_emit_shared_lib(Target *t, LLVMModuleRef m, const char *out_path,
                           const char *const *link_args, int n_link_args, char *err,
                           size_t errlen) {
  LLVMMemoryBufferRef buf = codegen(t, m, PIPELINE_MODEL, false, LLVMObjectFile, err, errlen);
  void *obj;
  size_t len;
  if (!buf || take_buffer(buf, &obj, &len, err, errlen))
    return -1;
  const void *objs[] = {obj};
  int rc = target_link_shared_lib(objs, &len, 1, out_path, link_args, n_link_args, err, errlen);
  free(obj);
  return rc;
}

/* ---- JIT ---- */

static int define_symbols(Jit *j, const JitSymbol *syms, int n, char *err, size_t errlen) {
  if (n <= 0)
    return 0;
  LLVMOrcCSymbolMapPairs pairs = calloc((size_t)n, sizeof *pairs);
  if (!pairs) {
    set_err(err, errlen, "out of memory");
    return -1;
  }
  for (int i = 0; i < n; i++) {
    pairs[i].Name = LLVMOrcLLJITMangleAndIntern(j->lljit, syms[i].name);
    pairs[i].Sym.Address = (LLVMOrcExecutorAddress)(uintptr_t)syms[i].addr;
    pairs[i].Sym.Flags.GenericFlags =
        LLVMJITSymbolGenericFlagsExported | LLVMJITSymbolGenericFlagsCallable;
    pairs[i].Sym.Flags.TargetFlags = 0;
  }
  /* The unit takes over the interned names; we still free the array. */
  LLVMOrcMaterializationUnitRef mu = LLVMOrcAbsoluteSymbols(pairs, (size_t)n);
  free(pairs);
  LLVMErrorRef e = LLVMOrcJITDylibDefine(LLVMOrcLLJITGetMainJITDylib(j->lljit), mu);
  if (e) {
    LLVMOrcDisposeMaterializationUnit(mu);
    error_to_msg(e, "cannot define JIT symbols", err, errlen);
    return -1;
  }
  return 0;
}

static int add_process_symbols(Jit *j, char *err, size_t errlen) {
  LLVMOrcDefinitionGeneratorRef gen;
  LLVMErrorRef e = LLVMOrcCreateDynamicLibrarySearchGeneratorForProcess(
      &gen, LLVMOrcLLJITGetGlobalPrefix(j->lljit), NULL, NULL);
  if (e) {
    error_to_msg(e, "cannot search process symbols", err, errlen);
    return -1;
  }
  LLVMOrcJITDylibAddGenerator(LLVMOrcLLJITGetMainJITDylib(j->lljit), gen);
  return 0;
}

/* The LLJIT compiles with a copy of a host TargetMachine: same CPU, features, opt level. */
static int create_lljit(Jit *j, char *err, size_t errlen) {
  LLVMTargetMachineRef tm = host_tm(NULL, err, errlen);
  if (!tm)
    return -1;
  LLVMOrcJITTargetMachineBuilderRef jtmb =
      LLVMOrcJITTargetMachineBuilderCreateFromTargetMachine(tm); /* consumes tm */
  LLVMOrcLLJITBuilderRef builder = LLVMOrcCreateLLJITBuilder();
  LLVMOrcLLJITBuilderSetJITTargetMachineBuilder(builder, jtmb); /* consumes jtmb */
  LLVMErrorRef e = LLVMOrcCreateLLJIT(&j->lljit, builder);     /* consumes builder */
  if (e) {
    j->lljit = NULL;
    error_to_msg(e, "cannot create the JIT", err, errlen);
    return -1;
  }
  return 0;
}

Jit *jit_new(const JitSymbol *syms, int n_syms, char *err, size_t errlen) {
  Jit *j = calloc(1, sizeof *j);
  if (!j) {
    set_err(err, errlen, "out of memory");
    return NULL;
  }
  j->target = target_new_host(err, errlen);
  if (!j->target || create_lljit(j, err, errlen) ||
      define_symbols(j, syms, n_syms, err, errlen) || add_process_symbols(j, err, errlen)) {
    jit_free(j);
    return NULL;
  }
  j->tsc = LLVMOrcCreateNewThreadSafeContext();
  return j;
}

void jit_free(Jit *j) {
  if (!j)
    return;
  if (j->lljit) {
    LLVMErrorRef e = LLVMOrcDisposeLLJIT(j->lljit);
    if (e) /* teardown failures have no one to go to */
      LLVMConsumeError(e);
  }
  if (j->tsc)
    LLVMOrcDisposeThreadSafeContext(j->tsc);
  target_free(j->target);
  free(j);
}

LLVMContextRef jit_context(Jit *j) { return LLVMOrcThreadSafeContextGetContext(j->tsc); }

LLVMModuleRef jit_module_new(Jit *j, const char *name) {
  LLVMModuleRef m = LLVMModuleCreateWithNameInContext(name, jit_context(j));
  target_configure_module(j->target, m);
  return m;
}

int jit_add_module(Jit *j, LLVMModuleRef m, char *err, size_t errlen) {
  if (target_optimize(j->target, m, err, errlen)) {
    LLVMDisposeModule(m);
    return -1;
  }
  LLVMOrcThreadSafeModuleRef tsm = LLVMOrcCreateNewThreadSafeModule(m, j->tsc);
  LLVMErrorRef e =
      LLVMOrcLLJITAddLLVMIRModule(j->lljit, LLVMOrcLLJITGetMainJITDylib(j->lljit), tsm);
  if (e) { /* the TSM is consumed even on failure */
    error_to_msg(e, "cannot add module to the JIT", err, errlen);
    return -1;
  }
  return 0;
}

int jit_add_object(Jit *j, const void *obj, size_t len, char *err, size_t errlen) {
  LLVMMemoryBufferRef buf =
      LLVMCreateMemoryBufferWithMemoryRangeCopy(obj, len, "nnc object");
  LLVMErrorRef e =
      LLVMOrcLLJITAddObjectFile(j->lljit, LLVMOrcLLJITGetMainJITDylib(j->lljit), buf);
  if (e) { /* the buffer is consumed even on failure */
    error_to_msg(e, "cannot add object code to the JIT", err, errlen);
    return -1;
  }
  return 0;
}

Target *jit_target(Jit *j) { return j->target; }

void *jit_lookup(Jit *j, const char *name, char *err, size_t errlen) {
  LLVMOrcExecutorAddress addr = 0;
  LLVMErrorRef e = LLVMOrcLLJITLookup(j->lljit, &addr, name);
  if (e) {
    error_to_msg(e, "JIT lookup failed", err, errlen);
    return NULL;
  }
  return (void *)(uintptr_t)addr;
}
