/* split.c — object code of a module in parts on several threads (split.h).
 *
 *   1. weigh each function (its instructions) and join functions that call one another
 *      directly into clusters; share the clusters out between SPLIT_MAX_PARTS parts,
 *      heaviest first, each to the lightest part (global variables stay in part 0);
 *   2. promote what one part uses from another: internal/private globals referenced
 *      across become hidden external ones, renamed "__nnc_split.NAME", which the other
 *      parts declare with default visibility (reached through the GOT, see declare_instead);
 *   3. write the module's bitcode (without global initializers, which only part 0 needs);
 *      part 0 is compiled from the module itself on the calling thread, the others each
 *      from a copy parsed from the bitcode into a context of its own, taken from a queue by
 *      whichever thread is free (the calling thread after part 0, and up to CPUs - 1 more);
 *      in each, what the other parts own becomes a declaration;
 *   4. each part is optimised and compiled with a TargetMachine of its own.
 * Which thread compiles a part changes nothing: the objects depend on the module alone.
 * Functions are matched between the module and its copies by their position in the
 * function list, which the bitcode keeps.  Instruction counts predict compile time poorly
 * (a small loop nest that LLVM unrolls fully can take longer than a 10x larger kernel), so
 * there are more parts than threads: a thread that finishes early takes another part. */
#include "split.h"

#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <llvm-c/BitReader.h>
#include <llvm-c/BitWriter.h>

/* A module smaller than this (instructions) compiles whole: a thread and a copy of the
 * module through bitcode cost more than they save; and a part has at least PART_WEIGHT. */
#define SPLIT_MIN_WEIGHT 4000
#define PART_WEIGHT 1500
#define SPLIT_PREFIX "__nnc_split."
#define MAX_USE_DEPTH 8 /* constant expressions nested in constants, as far as we follow */

typedef struct Split {
  int nf;              /* functions of the module, declarations included, in order */
  LLVMValueRef *fn;    /* [nf] */
  long *weight;        /* [nf] instructions; 0 for a declaration */
  int *root;           /* [nf] union-find over direct calls */
  signed char *owner;  /* [nf] part of a definition, -1 for a declaration */
  int nparts;
  LLVMValueRef *slots; /* open-addressing map function -> index: [cap] */
  int *slot_index;
  size_t cap;
} Split;

/* ---- the function map and the clusters ---- */

static size_t slot_of(const Split *s, LLVMValueRef f) {
  size_t h = ((uintptr_t)f >> 4) * 0x9e3779b97f4a7c15ull;
  for (size_t i = h & (s->cap - 1);; i = (i + 1) & (s->cap - 1))
    if (s->slots[i] == f || !s->slots[i]) return i;
}

static int index_of(const Split *s, LLVMValueRef f) {
  size_t i = slot_of(s, f);
  return s->slots[i] ? s->slot_index[i] : -1;
}

static int find(Split *s, int i) {
  while (s->root[i] != i) i = s->root[i] = s->root[s->root[i]];
  return i;
}

static void join(Split *s, int a, int b) {
  a = find(s, a), b = find(s, b);
  if (a != b) s->root[a > b ? a : b] = a < b ? a : b; /* the earlier function is the root */
}

static void split_free(Split *s) {
  free(s->fn);
  free(s->weight);
  free(s->root);
  free(s->owner);
  free(s->slots);
  free(s->slot_index);
}

static int split_init(Split *s, LLVMModuleRef m) {
  memset(s, 0, sizeof *s);
  for (LLVMValueRef f = LLVMGetFirstFunction(m); f; f = LLVMGetNextFunction(f)) s->nf++;
  for (s->cap = 16; s->cap < 2 * (size_t)s->nf; s->cap *= 2) {}
  s->fn = calloc((size_t)s->nf + 1, sizeof *s->fn);
  s->weight = calloc((size_t)s->nf + 1, sizeof *s->weight);
  s->root = calloc((size_t)s->nf + 1, sizeof *s->root);
  s->owner = calloc((size_t)s->nf + 1, sizeof *s->owner);
  s->slots = calloc(s->cap, sizeof *s->slots);
  s->slot_index = calloc(s->cap, sizeof *s->slot_index);
  if (!s->fn || !s->weight || !s->root || !s->owner || !s->slots || !s->slot_index) return -1;
  int i = 0;
  for (LLVMValueRef f = LLVMGetFirstFunction(m); f; f = LLVMGetNextFunction(f), i++) {
    size_t k = slot_of(s, f);
    s->slots[k] = s->fn[i] = f;
    s->slot_index[k] = s->root[i] = i;
  }
  return 0;
}

/* Instructions of each function; functions calling one another directly, joined. */
static void weigh(Split *s) {
  for (int i = 0; i < s->nf; i++)
    for (LLVMBasicBlockRef b = LLVMGetFirstBasicBlock(s->fn[i]); b; b = LLVMGetNextBasicBlock(b))
      for (LLVMValueRef in = LLVMGetFirstInstruction(b); in; in = LLVMGetNextInstruction(in)) {
        s->weight[i]++;
        LLVMValueRef callee = LLVMIsACallInst(in) ? LLVMGetCalledValue(in) : NULL;
        int j = callee && LLVMIsAFunction(callee) ? index_of(s, callee) : -1;
        if (j >= 0 && !LLVMIsDeclaration(callee)) join(s, i, j);
      }
}

/* Clusters to s->nparts parts, heaviest first, each to the lightest part (ties: the lower
 * part, the earlier cluster).  One part when the module is small. */
static void assign_parts(Split *s) {
  long *cluster = calloc((size_t)s->nf + 1, sizeof *cluster), total = 0;
  long load[SPLIT_MAX_PARTS] = {0};
  signed char *part_of_root = calloc((size_t)s->nf + 1, 1);
  int nclusters = 0;
  for (int i = 0; cluster && i < s->nf; i++) {
    nclusters += find(s, i) == i && !LLVMIsDeclaration(s->fn[i]);
    cluster[find(s, i)] += s->weight[i], total += s->weight[i];
  }
  s->nparts = total < SPLIT_MIN_WEIGHT ? 1 : (int)(total / PART_WEIGHT);
  if (s->nparts > SPLIT_MAX_PARTS) s->nparts = SPLIT_MAX_PARTS;
  if (s->nparts > nclusters) s->nparts = nclusters;
  if (s->nparts < 1 || !cluster || !part_of_root) s->nparts = 1;
  for (;;) { /* the heaviest unassigned cluster, O(clusters^2): a few hundred at most */
    int best = -1, p = 0;
    for (int i = 0; cluster && i < s->nf; i++)
      if (cluster[i] > 0 && (best < 0 || cluster[i] > cluster[best])) best = i;
    if (best < 0 || !part_of_root) break;
    for (int k = 1; k < s->nparts; k++)
      if (load[k] < load[p]) p = k;
    part_of_root[best] = (signed char)p;
    load[p] += cluster[best];
    cluster[best] = 0;
  }
  for (int i = 0; i < s->nf; i++)
    s->owner[i] = LLVMIsDeclaration(s->fn[i]) ? -1 : part_of_root ? part_of_root[find(s, i)] : 0;
  free(part_of_root);
  free(cluster);
}

/* ---- promoting what the parts share ---- */

static int owner_of_global(const Split *s, LLVMValueRef g) {
  int i = LLVMIsAFunction(g) ? index_of(s, g) : -1;
  return i >= 0 ? s->owner[i] : 0; /* global variables stay in part 0 */
}

/* The parts whose code or data use value v, as a bit mask. */
static unsigned used_by(const Split *s, LLVMValueRef v, int depth) {
  unsigned mask = 0;
  for (LLVMUseRef u = LLVMGetFirstUse(v); u; u = LLVMGetNextUse(u)) {
    LLVMValueRef user = LLVMGetUser(u);
    if (LLVMIsAInstruction(user))
      mask |= 1u << owner_of_global(s, LLVMGetBasicBlockParent(LLVMGetInstructionParent(user)));
    else if (LLVMIsAGlobalValue(user))
      mask |= 1u << owner_of_global(s, user);
    else if (depth < MAX_USE_DEPTH)
      mask |= used_by(s, user, depth + 1);
    else
      mask |= ~0u; /* too deep to follow: shared, to be safe */
  }
  return mask;
}

static bool local_linkage(LLVMValueRef g) {
  LLVMLinkage l = LLVMGetLinkage(g);
  return l == LLVMInternalLinkage || l == LLVMPrivateLinkage;
}

/* g becomes the hidden external "__nnc_split.NAME" ("__nnc_split.anon.K" when unnamed: K
 * counts them in module order, so that the names depend on the module alone). */
static int promote(LLVMValueRef g, int *anon) {
  size_t n;
  const char *name = LLVMGetValueName2(g, &n);
  char *promoted = malloc(n + sizeof SPLIT_PREFIX + 24);
  if (!promoted) return -1;
  int len = sprintf(promoted, "%s%.*s", SPLIT_PREFIX, (int)n, name);
  if (!n) len += sprintf(promoted + len, "anon.%d", (*anon)++);
  LLVMSetValueName2(g, promoted, (size_t)len);
  LLVMSetLinkage(g, LLVMExternalLinkage);
  LLVMSetVisibility(g, LLVMHiddenVisibility);
  free(promoted);
  return 0;
}

/* Internal globals used by the part that does not own them become hidden external ones. */
static int promote_shared(const Split *s, LLVMModuleRef m) {
  int anon = 0;
  for (LLVMValueRef g = LLVMGetFirstGlobal(m); g; g = LLVMGetNextGlobal(g))
    if (local_linkage(g) && (used_by(s, g, 0) & ~1u) && promote(g, &anon)) return -1;
  for (int i = 0; i < s->nf; i++)
    if (local_linkage(s->fn[i]) && (used_by(s, s->fn[i], 0) & ~(1u << s->owner[i])) &&
        promote(s->fn[i], &anon))
      return -1;
  return 0;
}

/* ---- keeping one part ---- */

static void copy_attributes(LLVMValueRef from, LLVMValueRef to) {
  int n = (int)LLVMCountParams(from);
  for (int idx = -1; idx <= n; idx++) { /* function, return, parameters 1..n */
    unsigned k = LLVMGetAttributeCountAtIndex(from, (LLVMAttributeIndex)idx);
    LLVMAttributeRef attrs[k ? k : 1];
    LLVMGetAttributesAtIndex(from, (LLVMAttributeIndex)idx, attrs);
    for (unsigned a = 0; a < k; a++) LLVMAddAttributeAtIndex(to, (LLVMAttributeIndex)idx, attrs[a]);
  }
}

/* g (a definition the other part owns) becomes a declaration, or goes when unused. */
static void declare_instead(LLVMModuleRef m, LLVMValueRef g) {
  bool fn = LLVMIsAFunction(g) != NULL;
  if (!LLVMGetFirstUse(g)) {
    fn ? LLVMDeleteFunction(g) : LLVMDeleteGlobal(g);
    return;
  }
  LLVMTypeRef type = LLVMGlobalGetValueType(g);
  LLVMValueRef d;
  if (fn) {
    d = LLVMAddFunction(m, "", type);
    LLVMSetFunctionCallConv(d, LLVMGetFunctionCallConv(g));
    copy_attributes(g, d);
  } else {
    d = LLVMAddGlobalInAddressSpace(m, type, "", LLVMGetPointerAddressSpace(LLVMTypeOf(g)));
    LLVMSetGlobalConstant(d, LLVMIsGlobalConstant(g));
  }
  LLVMSetAlignment(d, LLVMGetAlignment(g));
  /* Default visibility (the definition stays hidden): code reaches a symbol of another part
   * through the GOT (and calls through a stub), never by a 32-bit PC-relative offset, which
   * fails when the JIT maps two parts more than 2 GiB apart (it did under ASan).  The
   * linker turns the GOT loads back into direct ones in a .so; the JIT keeps them where the
   * parts lie far apart. */
  LLVMSetLinkage(d, LLVMExternalLinkage);
  LLVMSetVisibility(d, LLVMDefaultVisibility);
  size_t n;
  const char *name = LLVMGetValueName2(g, &n);
  char *keep = strndup(name, n);
  LLVMReplaceAllUsesWith(g, d);
  fn ? LLVMDeleteFunction(g) : LLVMDeleteGlobal(g);
  if (keep) LLVMSetValueName2(d, keep, n);
  free(keep);
}

/* Keep part p of m (a copy of the split module or the module itself): the other part's
 * global variables (part 0 owns them all) and functions become declarations. */
static int keep_part(LLVMModuleRef m, const signed char *owner, int nf, int p) {
  LLVMValueRef *gone = malloc(((size_t)nf + 1) * sizeof *gone);
  int n = 0, i = 0;
  if (!gone) return -1;
  if (p != 0) {
    for (LLVMValueRef g = LLVMGetFirstGlobal(m), next; g; g = next) {
      next = LLVMGetNextGlobal(g);
      if (!LLVMIsDeclaration(g)) declare_instead(m, g);
    }
  }
  for (LLVMValueRef f = LLVMGetFirstFunction(m); f && i < nf; f = LLVMGetNextFunction(f), i++)
    if (owner[i] >= 0 && owner[i] != p) gone[n++] = f;
  for (int k = 0; k < n; k++) declare_instead(m, gone[k]);
  free(gone);
  return 0;
}

/* ---- compiling the parts ---- */

static int compile_part(Target *t, LLVMModuleRef m, TargetPipeline p, void **obj, size_t *len,
                        char *err, size_t errlen) {
  return target_optimize_with(t, m, p, err, errlen) ||
                 target_emit_object(t, m, p, obj, len, err, errlen)
             ? -1
             : 0;
}

void objcode_free(ObjCode *c) {
  for (int i = 0; i < SPLIT_MAX_PARTS; i++) free(c->obj[i]);
  memset(c, 0, sizeof *c);
}

/* The parts other than 0, for the threads to take one at a time. */
typedef struct Queue {
  pthread_mutex_t lock;
  int next, nparts;           /* the next part to take; parts 1..nparts-1 */
  const char *bitcode;        /* the split module without its global initializers */
  size_t bitcode_len;
  const signed char *owner;   /* [nf] */
  int nf;
  TargetPipeline pipeline;
  ObjCode *out;               /* part k's object goes to out->obj[k] */
  char err[1024];             /* the first failure */
  int rc;
} Queue;

static int take(Queue *q) {
  pthread_mutex_lock(&q->lock);
  int k = q->rc == 0 && q->next < q->nparts ? q->next++ : -1;
  pthread_mutex_unlock(&q->lock);
  return k;
}

static void record(Queue *q, int k, int rc, void *obj, size_t len, const char *err) {
  pthread_mutex_lock(&q->lock);
  q->out->obj[k] = obj;
  q->out->len[k] = len;
  if (rc && !q->rc) {
    q->rc = rc;
    snprintf(q->err, sizeof q->err, "%s", err);
  }
  pthread_mutex_unlock(&q->lock);
}

/* Part k from a copy of the module: everything it touches is this thread's own. */
static void compile_copy(Queue *q, int k) {
  char err[1024] = "";
  void *obj = NULL;
  size_t len = 0;
  int rc = -1;
  LLVMContextRef ctx = LLVMContextCreate();
  LLVMMemoryBufferRef buf =
      LLVMCreateMemoryBufferWithMemoryRange(q->bitcode, q->bitcode_len, "part", 0);
  LLVMModuleRef m = NULL;
  Target *t = NULL;
  if (LLVMParseBitcodeInContext2(ctx, buf, &m))
    snprintf(err, sizeof err, "cannot read back the split module");
  else if (!(t = target_new_host(err, sizeof err)) || keep_part(m, q->owner, q->nf, k))
    snprintf(err + strlen(err), sizeof err - strlen(err), " (splitting the module)");
  else
    rc = compile_part(t, m, q->pipeline, &obj, &len, err, sizeof err);
  LLVMDisposeMemoryBuffer(buf);
  if (m) LLVMDisposeModule(m);
  target_free(t);
  LLVMContextDispose(ctx);
  record(q, k, rc, obj, len, err);
}

static void *worker(void *arg) {
  Queue *q = arg;
  for (int k; (k = take(q)) >= 0;) compile_copy(q, k);
  return NULL;
}

/* m's bitcode for the parts other than 0, which own no global variable: their initializers
 * (the embedded weights: the bitcode writer takes a second per 10 MB of them) are left out. */
static LLVMMemoryBufferRef bitcode_without_initializers(LLVMModuleRef m) {
  int n = 0;
  for (LLVMValueRef g = LLVMGetFirstGlobal(m); g; g = LLVMGetNextGlobal(g)) n++;
  LLVMValueRef *init = malloc(((size_t)n + 1) * sizeof *init);
  if (!init) return NULL;
  int i = 0;
  for (LLVMValueRef g = LLVMGetFirstGlobal(m); g; g = LLVMGetNextGlobal(g), i++)
    if ((init[i] = LLVMIsDeclaration(g) ? NULL : LLVMGetInitializer(g)))
      LLVMSetInitializer(g, LLVMGetUndef(LLVMGlobalGetValueType(g)));
  LLVMMemoryBufferRef bc = LLVMWriteBitcodeToMemoryBuffer(m);
  i = 0;
  for (LLVMValueRef g = LLVMGetFirstGlobal(m); g; g = LLVMGetNextGlobal(g), i++)
    if (init[i]) LLVMSetInitializer(g, init[i]);
  free(init);
  return bc;
}

/* Threads besides the calling one: one per CPU this process may use, minus one. */
static int extra_threads(int nparts) {
  cpu_set_t set;
  int cpus = sched_getaffinity(0, sizeof set, &set) ? 1 : CPU_COUNT(&set);
  int n = cpus - 1 < nparts - 1 ? cpus - 1 : nparts - 1;
  return n > 0 ? n : 0;
}

/* All parts: 0 here in m, the others from the queue, here and on the extra threads. */
static int compile_split(Target *t, LLVMModuleRef m, TargetPipeline p, const Split *s,
                         ObjCode *out, char *err, size_t errlen) {
  LLVMMemoryBufferRef bc = bitcode_without_initializers(m);
  if (!bc) {
    snprintf(err, errlen, "out of memory (splitting the module)");
    return -1;
  }
  Queue q = {.next = 1, .nparts = s->nparts, .bitcode = LLVMGetBufferStart(bc),
             .bitcode_len = LLVMGetBufferSize(bc), .owner = s->owner, .nf = s->nf,
             .pipeline = p, .out = out};
  pthread_mutex_init(&q.lock, NULL);
  pthread_t threads[SPLIT_MAX_PARTS];
  int started = 0;
  for (int n = extra_threads(s->nparts); started < n; started++)
    if (pthread_create(&threads[started], NULL, worker, &q)) break; /* fewer threads: fine */
  void *obj = NULL;
  size_t len = 0;
  int rc = keep_part(m, s->owner, s->nf, 0);
  if (rc) snprintf(err, errlen, "out of memory (splitting the module)");
  else rc = compile_part(t, m, p, &obj, &len, err, errlen);
  record(&q, 0, rc, obj, len, err);
  worker(&q);
  for (int i = 0; i < started; i++) pthread_join(threads[i], NULL);
  pthread_mutex_destroy(&q.lock);
  LLVMDisposeMemoryBuffer(bc);
  out->n = s->nparts;
  if (q.rc) {
    snprintf(err, errlen, "%s", q.err);
    objcode_free(out);
  }
  return q.rc ? -1 : 0;
}

int split_compile(Target *t, LLVMModuleRef m, TargetPipeline p, ObjCode *out, char *err,
                  size_t errlen) {
  memset(out, 0, sizeof *out);
  Split s;
  int rc;
  if (split_init(&s, m)) {
    snprintf(err, errlen, "out of memory");
    rc = -1;
  } else if (weigh(&s), assign_parts(&s), s.nparts > 1) {
    rc = promote_shared(&s, m) ? (snprintf(err, errlen, "out of memory"), -1)
                               : compile_split(t, m, p, &s, out, err, errlen);
  } else {
    rc = compile_part(t, m, p, &out->obj[0], &out->len[0], err, errlen);
    out->n = rc ? 0 : 1;
  }
  split_free(&s);
  return rc;
}
