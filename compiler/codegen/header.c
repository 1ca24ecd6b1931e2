/* header.c — the C header of a generated library (`nnc --header`): the ABI of nnc_model.h,
 * pasted verbatim, then one typed prototype per entry with its shapes documented. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "codegen.h"
#include "header.h"

extern const char nnc_model_abi_text[];

static void dims_comment(FILE *f, const Model *m, DType dt, const Shape *s) {
  char b[256];
  fprintf(f, "%s", shape_str(m, dt, s, b, sizeof b));
}

/* Words a parameter may not be called in the header: C11 and C++ keywords (the header is
 * also C++), the typedefs and macros of <stddef.h> and <stdint.h>, and `ctx`. */
static const char *const reserved_words[] = {
    "_Alignas", "_Alignof", "_Atomic", "_Bool", "_Complex", "_Generic", "_Imaginary",
    "_Noreturn", "_Static_assert", "_Thread_local", "alignas", "alignof", "and", "and_eq", "asm",
    "auto", "bitand", "bitor", "bool", "break", "case", "catch", "char", "char16_t", "char32_t",
    "char8_t", "class", "compl", "concept", "const", "const_cast", "consteval", "constexpr",
    "constinit", "continue", "co_await", "co_return", "co_yield", "ctx", "decltype", "default",
    "delete", "do", "double", "dynamic_cast", "else", "enum", "explicit", "export", "extern",
    "false", "float", "for", "friend", "goto", "if", "inline", "int", "long", "mutable",
    "namespace", "new", "noexcept", "not", "not_eq", "nullptr", "offsetof", "operator", "or",
    "or_eq", "private", "protected", "public", "register", "reinterpret_cast", "requires",
    "restrict", "return", "short", "signed", "sizeof", "static", "static_assert", "static_cast",
    "struct", "switch", "template", "this", "thread_local", "throw", "true", "try", "typedef",
    "typeid", "typename", "union", "unsigned", "using", "virtual", "void", "volatile", "wchar_t",
    "while", "xor", "xor_eq", "NULL", "size_t", "ptrdiff_t", "max_align_t",
};

static int starts(const char *s, const char *prefix) { return !strncmp(s, prefix, strlen(prefix)); }
static int ends(const char *s, const char *suffix) {
  size_t n = strlen(s), k = strlen(suffix);
  return n >= k && !strcmp(s + n - k, suffix);
}

/* Whether `name` could mean something else in the header: a reserved word, a name of the
 * ABI (nnc_*, NNC_*) or of this model's functions (<mn>_*), a name reserved to the C
 * implementation (__*, _X*), or a <stdint.h> type or macro (int*_t, uint*_t, INT*_MAX,
 * SIZE_MAX, ...). */
static int is_reserved(const char *name, const char *mn) {
  for (size_t i = 0; i < sizeof reserved_words / sizeof *reserved_words; i++)
    if (!strcmp(name, reserved_words[i])) return 1;
  size_t k = strlen(mn);
  if (starts(name, "nnc_") || starts(name, "NNC_")) return 1;
  if (!strncmp(name, mn, k) && name[k] == '_') return 1;
  if (name[0] == '_' && (name[1] == '_' || (name[1] >= 'A' && name[1] <= 'Z'))) return 1;
  if ((starts(name, "int") || starts(name, "uint")) && ends(name, "_t")) return 1;
  static const char *const macro_prefixes[] = {"INT", "UINT", "PTRDIFF_", "SIZE_", "SIG_ATOMIC_",
                                               "WCHAR_", "WINT_"};
  for (size_t i = 0; i < sizeof macro_prefixes / sizeof *macro_prefixes; i++)
    if (starts(name, macro_prefixes[i]) && (ends(name, "_MAX") || ends(name, "_MIN") || ends(name, "_C")))
      return 1;
  return 0;
}

/* The parameter names of one prototype: unique, none of them reserved. */
enum { PARAM_NAME_MAX = 128 };
typedef struct Params {
  int n;
  char (*name)[PARAM_NAME_MAX]; /* room for ctx, the dims, the inputs and the outputs */
} Params;

/* Whether a parameter before the last one is called `name`. */
static int params_has(const Params *p, const char *name) {
  for (int i = 0; i < p->n - 1; i++)
    if (!strcmp(p->name[i], name)) return 1;
  return 0;
}

/* Adds `base` to p, or when base is reserved or taken: base + suffix, or when that is reserved
 * too, base with a leading 'p' (more while reserved); then a trailing '_' while taken.  Returns
 * the name added. */
static const char *params_add(Params *p, const char *mn, const char *base, const char *suffix) {
  char *out = p->name[p->n++];
  snprintf(out, PARAM_NAME_MAX, "%s", base);
  if (!params_has(p, out) && !is_reserved(out, mn)) return out;
  snprintf(out, PARAM_NAME_MAX, "%s%s", base, suffix);
  if (is_reserved(out, mn)) snprintf(out, PARAM_NAME_MAX, "%s", base);
  while (is_reserved(out, mn) && strlen(out) + 1 < PARAM_NAME_MAX) {
    memmove(out + 1, out, strlen(out) + 1);
    out[0] = 'p';
  }
  while (params_has(p, out) && strlen(out) + 1 < PARAM_NAME_MAX) strcat(out, "_");
  return out;
}

/* The prototype of entry e's typed wrapper `<mn>_<entry>`, with its shapes documented.
 * Parameters are named after the entry's dims, inputs and outputs; an output named like an
 * input (state carried through a `step`) becomes `<name>_out`, and a name C would read as
 * something else gets a trailing `_`. */
static void write_entry(FILE *f, const Model *m, const char *mn, const Entry *e) {
  uint32_t mask = entry_sym_mask(m, e);
  fprintf(f, "/* %s(", e->name);
  for (int i = 0; i < e->nin; i++) {
    fprintf(f, "%s%s: ", i ? ", " : "", e->in_names[i]);
    dims_comment(f, m, e->inputs[i]->dtype, &e->inputs[i]->shape);
  }
  fprintf(f, ") -> (");
  for (int i = 0; i < e->nout; i++) {
    fprintf(f, "%s%s: ", i ? ", " : "", e->out_names[i]);
    dims_comment(f, m, e->out_dtypes[i], &e->out_shapes[i]);
  }
  fprintf(f, ")\n * Arrays are C-order; outputs are written by the call.  Returns NNC_OK (0) or an\n"
             " * nnc_status, with the message in %s_error(ctx). */\n", mn);
  Params params = {0, nnc_xcalloc(1 + MAX_SYMS + (size_t)e->nin + e->nout, PARAM_NAME_MAX)}, *p = &params;
  if (!p->name) return;
  snprintf(p->name[p->n++], PARAM_NAME_MAX, "ctx");
  fprintf(f, "int %s_%s(%s_ctx *ctx", mn, e->name, mn);
  for (int s = 0; s < m->nsyms; s++)
    if (mask & (1u << s)) fprintf(f, ", int64_t %s", params_add(p, mn, m->sym_names[s], "_"));
  for (int i = 0; i < e->nin; i++)
    fprintf(f, ", const %s *%s", e->inputs[i]->dtype == DT_I64 ? "int64_t" : "float",
            params_add(p, mn, e->in_names[i], "_"));
  for (int i = 0; i < e->nout; i++)
    fprintf(f, ", %s *%s", e->out_dtypes[i] == DT_I64 ? "int64_t" : "float",
            params_add(p, mn, e->out_names[i], "_out"));
  fprintf(f, ");\n\n");
  free(p->name);
}

int write_header(const char *path, const Model *m, char *err, size_t errlen) {
  FILE *f = fopen(path, "w");
  if (!f) {
    snprintf(err, errlen, "%s: error: cannot write: %s\n", path, strerror(errno));
    return -1;
  }
  char mn[MODEL_C_NAME_MAX];
  model_c_name(m, mn, sizeof mn);
  fprintf(f, "/* %s.h — generated by nnc from %s.nn; do not edit.\n *\n"
             " * Link with %s.so.  Typical use:\n"
             " *   char err[512];\n"
             " *   %s_ctx *ctx = %s_open(NULL, err, sizeof err);  // NULL: embedded weights\n"
             " *   if (!ctx) { fprintf(stderr, \"%%s\", err); ... }\n"
             " *   %s_%s(ctx, ...);\n"
             " *   %s_close(ctx);\n"
             " * A context holds the weights and a workspace; use one context per thread. */\n",
          mn, m->name, mn, mn, mn, mn, m->entries[0].name, mn);
  fprintf(f, "#ifndef NNC_GENERATED_%s_H\n#define NNC_GENERATED_%s_H\n\n", mn, mn);
  fputs(nnc_model_abi_text, f);
  fprintf(f, "\n#ifdef __cplusplus\nextern \"C\" {\n#endif\n\n");
  fprintf(f, "typedef nnc_ctx %s_ctx;\n\n", mn);
  fprintf(f, "/* Open a context.  weights_path: a safetensors file with the model's parameters (by\n"
             " * PyTorch state_dict name), or NULL when the weights were embedded at compile time.\n"
             " * Returns NULL and writes the reason to err on failure. */\n");
  fprintf(f, "%s_ctx *%s_open(const char *weights_path, char *err, size_t errlen);\n", mn, mn);
  fprintf(f, "void %s_close(%s_ctx *ctx); /* NULL is harmless */\n", mn, mn);
  fprintf(f, "const char *%s_error(%s_ctx *ctx); /* message of the last failed call */\n", mn, mn);
  fprintf(f, "/* Threads of ctx's calls, the caller's included (0: $NNC_NUM_THREADS, else the CPUs);\n"
             " * results are bit-identical for any count.  0 on success. */\n");
  fprintf(f, "int %s_set_threads(%s_ctx *ctx, int n);\n\n", mn, mn);
  for (int i = 0; i < m->nentries; i++) write_entry(f, m, mn, &m->entries[i]);
  fprintf(f, "#ifdef __cplusplus\n}\n#endif\n\n#endif\n");
  if (fclose(f) != 0) {
    snprintf(err, errlen, "%s: error: cannot write: %s\n", path, strerror(errno));
    return -1;
  }
  return 0;
}
