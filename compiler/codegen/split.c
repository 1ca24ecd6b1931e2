/* split.c — object code of a module in two parts on two threads (split.h).
 *
 *   1. weigh each function (its instructions) and join functions that call one another
 *      directly into clusters; share the clusters out between two parts, heaviest first,
 *      each to the lighter part (global variables stay in part 0);
 *   2. promote what one part uses from the other: internal/private globals referenced
 *      across become hidden external ones, renamed "__nnc_split.NAME";
 *   3. write the module's bitcode; a thread parses it into a context of its own and keeps
 *      part 1, while this thread keeps part 0 of the module itself: what the other part owns
 *      becomes a declaration;
 *   4. each part is optimised and compiled with a TargetMachine of its own.
 * Functions are matched between the module and its copy by their position in the function
 * list, which the bitcode keeps. */
#include "split.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <llvm-c/BitReader.h>
#include <llvm-c/BitWriter.h>

/* A module smaller than this (instructions) compiles whole: a thread and a copy of the
 * module through bitcode cost more than they save. */
#define SPLIT_MIN_WEIGHT 4000
#define SPLIT_PREFIX "__nnc_split."
#define MAX_USE_DEPTH 8 /* constant expressions nested in constants, as far as we follow */

typedef struct Split {
  int nf;              /* functions of the module, declarations included, in order */
  LLVMValueRef *fn;    /* [nf] */
  long *weight;        /* [nf] instructions; 0 for a declaration */
  int *root;           /* [nf] union-find over direct calls */
  signed char *owner;  /* [nf] part of a definition, -1 for a declaration */
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

/* Clusters to parts, heaviest first, each to the lighter part (ties: part 0, then the
 * earlier cluster); false when the lighter part would be too small to be worth a thread. */
static bool assign_parts(Split *s) {
  long *cluster = calloc((size_t)s->nf + 1, sizeof *cluster), total = 0, load[2] = {0, 0};
  if (!cluster) return false;
  for (int i = 0; i < s->nf; i++) cluster[find(s, i)] += s->weight[i], total += s->weight[i];
  signed char *part_of_root = calloc((size_t)s->nf + 1, 1);
  for (;;) { /* the heaviest unassigned cluster, O(clusters^2): a few hundred at most */
    int best = -1;
    for (int i = 0; i < s->nf; i++)
      if (cluster[i] > 0 && (best < 0 || cluster[i] > cluster[best])) best = i;
    if (best < 0 || !part_of_root) break;
    int p = load[1] < load[0];
    part_of_root[best] = (signed char)p;
    load[p] += cluster[best];
    cluster[best] = 0;
  }
  for (int i = 0; i < s->nf && part_of_root; i++)
    s->owner[i] = LLVMIsDeclaration(s->fn[i]) ? -1 : part_of_root[find(s, i)];
  free(part_of_root);
  free(cluster);
  long lighter = load[0] < load[1] ? load[0] : load[1];
  return total >= SPLIT_MIN_WEIGHT && lighter >= total / 8;
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
      mask |= 3u; /* too deep to follow: shared, to be safe */
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
  LLVMSetLinkage(d, LLVMExternalLinkage);
  LLVMSetVisibility(d, LLVMHiddenVisibility);
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
                 target_emit_object(t, m, obj, len, err, errlen)
             ? -1
             : 0;
}

/* Part 1, on a thread of its own: everything it touches is its own. */
typedef struct PartJob {
  const char *bitcode; /* the split module */
  size_t bitcode_len;
  const signed char *owner;
  int nf;
  TargetPipeline pipeline;
  void *obj;
  size_t len;
  char err[1024];
  int rc;
} PartJob;

static void *part_thread(void *arg) {
  PartJob *j = arg;
  j->rc = -1;
  LLVMContextRef ctx = LLVMContextCreate();
  LLVMMemoryBufferRef buf =
      LLVMCreateMemoryBufferWithMemoryRange(j->bitcode, j->bitcode_len, "part 1", 0);
  LLVMModuleRef m = NULL;
  Target *t = NULL;
  if (LLVMParseBitcodeInContext2(ctx, buf, &m))
    snprintf(j->err, sizeof j->err, "cannot read back the split module");
  else if (!(t = target_new_host(j->err, sizeof j->err)) || keep_part(m, j->owner, j->nf, 1))
    snprintf(j->err + strlen(j->err), sizeof j->err - strlen(j->err), " (splitting the module)");
  else
    j->rc = compile_part(t, m, j->pipeline, &j->obj, &j->len, j->err, sizeof j->err);
  LLVMDisposeMemoryBuffer(buf);
  if (m) LLVMDisposeModule(m);
  target_free(t);
  LLVMContextDispose(ctx);
  return NULL;
}

void objcode_free(ObjCode *c) {
  for (int i = 0; i < c->n; i++) free(c->obj[i]);
  memset(c, 0, sizeof *c);
}

/* m's bitcode for part 1, which owns no global variable: their initializers (the
 * embedded weights: the bitcode writer takes a second per 10 MB of them) are left out. */
static LLVMMemoryBufferRef bitcode_for_part1(LLVMModuleRef m) {
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

/* Both parts: part 1 on a new thread from the module's bitcode, part 0 here in m. */
static int compile_split(Target *t, LLVMModuleRef m, TargetPipeline p, const Split *s,
                         ObjCode *out, char *err, size_t errlen) {
  LLVMMemoryBufferRef bc = bitcode_for_part1(m);
  if (!bc) {
    snprintf(err, errlen, "out of memory (splitting the module)");
    return -1;
  }
  PartJob job = {LLVMGetBufferStart(bc), LLVMGetBufferSize(bc), s->owner, s->nf, p};
  pthread_t thread;
  if (pthread_create(&thread, NULL, part_thread, &job)) {
    LLVMDisposeMemoryBuffer(bc);
    snprintf(err, errlen, "cannot start a compile thread");
    return -1;
  }
  int rc = keep_part(m, s->owner, s->nf, 0);
  if (rc) snprintf(err, errlen, "out of memory (splitting the module)");
  else rc = compile_part(t, m, p, &out->obj[0], &out->len[0], err, errlen);
  pthread_join(thread, NULL);
  LLVMDisposeMemoryBuffer(bc);
  out->n = 1 + (job.rc == 0);
  out->obj[1] = job.obj;
  out->len[1] = job.len;
  if (!rc && job.rc) snprintf(err, errlen, "%s", job.err);
  if (rc || job.rc) objcode_free(out);
  return rc || job.rc ? -1 : 0;
}

int split_compile(Target *t, LLVMModuleRef m, TargetPipeline p, ObjCode *out, char *err,
                  size_t errlen) {
  memset(out, 0, sizeof *out);
  Split s;
  int rc;
  if (split_init(&s, m)) {
    snprintf(err, errlen, "out of memory");
    rc = -1;
  } else if (weigh(&s), assign_parts(&s)) {
    rc = promote_shared(&s, m) ? (snprintf(err, errlen, "out of memory"), -1)
                               : compile_split(t, m, p, &s, out, err, errlen);
  } else {
    rc = compile_part(t, m, p, &out->obj[0], &out->len[0], err, errlen);
    out->n = rc ? 0 : 1;
  }
  split_free(&s);
  return rc;
}
