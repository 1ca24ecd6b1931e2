/* value.h — compile-time values of semantic analysis: numbers, symbolic dims, lists, module
 * instances, functions and tensors (graph IR nodes), the state of the analysis, and the
 * helpers on values (values.c).  The base of the front end's headers, which form a chain
 * with no cycle: value.h <- eval.h, scan.h, nn.h, builtins.h, layers.h <- the .c files. */
#ifndef NNC_VALUE_H
#define NNC_VALUE_H

#include "ir.h"

typedef enum VKind {
  V_NONE, V_INT, V_FLOAT, V_BOOL, V_STR, V_DIM, V_LIST, V_TUPLE, V_RANGE, V_TENSOR, V_MOD,
  V_FN, V_BUILTIN,
} VKind;

typedef struct ModInst ModInst;
typedef struct Scope Scope;

typedef struct Value {
  VKind k;
  int64_t i;          /* V_INT, V_BOOL, V_RANGE start */
  int64_t i2;         /* V_RANGE stop */
  double f;           /* V_FLOAT */
  const char *s;      /* V_STR; V_BUILTIN name */
  Dim dim;            /* V_DIM */
  struct Value *items;/* V_LIST, V_TUPLE */
  int len;
  INode *t;           /* V_TENSOR */
  ModInst *mod;       /* V_MOD; V_FN: the bound module (method) or NULL */
  const Node *fn;     /* V_FN: N_FN or N_EXPORT */
  const struct Builtin *builtin; /* V_BUILTIN: its row (builtins.h) */
} Value;

/* Kinds of module: user-defined (`module`) or one of the torch.nn-style layers. */
typedef enum ModKind { MK_USER, MK_SEQUENTIAL, MK_LINEAR, MK_ACTIVATION, MK_LAYER } ModKind;

/* Calls: positional values and keyword (name, value) pairs. */
typedef struct Args {
  Value *pos;
  int npos;
  const char **kwnames;
  Value *kw;
  int nkw;
  SrcLoc *pos_loc;
  SrcLoc loc;             /* the call */
} Args;

struct LayerType;
#define MAX_LAYER_PARAMS 64 /* parameters of one built-in layer (an LSTM of 16 layers) */

struct ModInst {
  ModKind kind;
  const char *type_name;  /* "Linear", "Coupling", ... */
  SrcLoc loc;
  const char *prefix;     /* state_dict prefix once bound to a name, else NULL */
  /* MK_USER: members by name (evaluated at instantiation), scope for method bodies */
  const Node *decl;
  Scope *scope;
  /* MK_SEQUENTIAL: children */
  ModInst **children;
  int nchildren;
  /* MK_LINEAR */
  int64_t in_features, out_features;
  bool bias;
  int p_weight, p_bias;
  /* MK_ACTIVATION: an elementwise op with attributes */
  Op act;
  double a0, a1;
  /* MK_LAYER: a torch.nn layer of layers_nn.c, its constructor arguments, its parameters */
  const struct LayerType *type;
  Args cfg;
  int params[MAX_LAYER_PARAMS];
  int nparams;
};

/* A lexical scope: names to values, with a parent. */
struct Scope {
  Scope *parent;
  const char **names;
  Value *vals;
  int n, cap;
  ModInst *self;          /* inside a module: the instance whose members are in this scope */
};

/* The scan being built: its body entry, and the outer tensors it captured so far. */
typedef struct ScanCtx {
  struct ScanCtx *parent;
  Entry *body, *outer;
  int tsym;                 /* the step's model symbol */
  Dim bound;
  bool reverse;             /* steps run from bound-1 down to 0 */
  INode **outer_nodes, **inputs; /* captured: outer node -> body input */
  int ncap, capcap;
  int ninputs;              /* body inputs so far (carried first) */
  const char **step_names;  /* per-step outputs: name, axis in the stacked result, value */
  int *step_axes;
  INode **step_values;
  int nsteps, capsteps;
} ScanCtx;

/* The state of semantic analysis. */
typedef struct Sema {
  Arena *arena;
  Model *m;
  Entry *e;               /* the entry being built, or NULL at top level */
  uint32_t entry_syms;    /* the symbolic dims the export being built names in its inputs */
  bool in_type;           /* evaluating a declared type's dims: `H - 3` is a size (symdim.c),
                             not the value H - 3 (an index may be 0 where a size may not) */
  Diag *d;
  Scope *globals;
  int depth;              /* inlining depth, to catch recursion */
  int nesting;            /* expressions being evaluated, across calls (MAX_EVAL_NESTING) */
  int64_t steps;          /* statements executed so far (bounded: MAX_EVAL_STEPS) */
  ScanCtx *scan;          /* innermost scan body being built, or NULL */
  int nscans;
  const char *const *defines; /* -D NAME=VALUE overrides of top-level constants */
  int ndefines;
  bool *define_used;
} Sema;

Scope *scope_new(Sema *S, Scope *parent);
Value *scope_lookup(Scope *s, const char *name);       /* here or in a parent */
Value *scope_find_local(Scope *s, const char *name);   /* in this scope only */
void scope_set(Sema *S, Scope *s, const char *name, Value v);

Value v_none(void);
Value v_int(int64_t i);
Value v_float(double f);
Value v_tensor(INode *t);
bool v_is_number(const Value *v);
double v_num(const Value *v);
const char *v_kind_name(VKind k);
const char *v_kind_phrase(VKind k); /* with its article: "an int", "a tensor", "nothing" */

/* Convert a value (number, list of numbers, tensor) to a tensor; NULL + diagnostic if not. */
INode *to_tensor(Sema *S, const Value *v, SrcLoc loc);
/* An integer or symbolic dim from a value; false + diagnostic if not. */
bool to_dim(Sema *S, const Value *v, SrcLoc loc, Dim *out);
bool to_int(Sema *S, const Value *v, SrcLoc loc, int64_t *out);

/* Argument `i`/`name` (positional first, then keyword), or NULL when absent.  args_check
 * reports unknown keywords, excess positionals and arguments given twice. */
const Value *arg_get(const Args *a, int i, const char *name);
bool args_check(Sema *S, const Args *a, const char *fn, const char *const *names, int n);

#endif
