/* value.h — compile-time values of semantic analysis: numbers, symbolic dims, lists, module
 * instances, functions and tensors (graph IR nodes).  Shared by sema.c (statements,
 * expressions), layers.c (torch.nn-style layer constructors) and builtins.c (functions). */
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
  int builtin;        /* V_BUILTIN: index in the builtin table */
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
  int params[8];
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
  Diag *d;
  Scope *globals;
  int depth;              /* inlining depth, to catch recursion */
  ScanCtx *scan;          /* innermost scan body being built, or NULL */
  int nscans;
  const char *const *defines; /* -D NAME=VALUE overrides of top-level constants */
  int ndefines;
  bool *define_used;
} Sema;

Scope *scope_new(Sema *S, Scope *parent);
Value *scope_lookup(Scope *s, const char *name);
void scope_set(Sema *S, Scope *s, const char *name, Value v);

Value v_none(void);
Value v_int(int64_t i);
Value v_float(double f);
Value v_tensor(INode *t);
bool v_is_number(const Value *v);
double v_num(const Value *v);
const char *v_kind_name(VKind k);

/* Convert a value (number, list of numbers, tensor) to a tensor; NULL + diagnostic if not. */
INode *to_tensor(Sema *S, const Value *v, SrcLoc loc);
/* An integer or symbolic dim from a value; false + diagnostic if not. */
bool to_dim(Sema *S, const Value *v, SrcLoc loc, Dim *out);
bool to_int(Sema *S, const Value *v, SrcLoc loc, int64_t *out);

/* Fetch argument `i`/`name` (positional first, then keyword); `def` when absent.  Reports
 * unknown keywords and excess positionals through args_check. */
const Value *arg_get(const Args *a, int i, const char *name);
bool args_check(Sema *S, const Args *a, const char *fn, const char *const *names, int n);

/* scan.c */
bool exec_scan(Sema *S, Scope *sc, const Node *n);
/* A scan built from C: open (carried initial values -> body inputs; the body is now being
 * built), take step slices, close with the next values and per-step outputs (stacked on
 * axes[j]); results: final carried values, then the stacked outputs. */
ScanCtx *scan_open(Sema *S, Dim bound, INode **init, int nc, INode **carried_in, SrcLoc loc);
INode *scan_step_of(Sema *S, INode *x, int axis, SrcLoc loc);
INode *scan_capture(Sema *S, INode *x);
bool scan_close(Sema *S, ScanCtx *c, INode **init, INode **carried_in, INode **carried_out, int nc,
                INode **steps, const int *axes, int ns, SrcLoc loc, INode **results);
bool capture_value(Sema *S, Value *v);
bool assign_step_output(Sema *S, Scope *sc, const Node *target, const Value *v);
bool scan_index(Sema *S, INode *t, int axis, const Value *index, SrcLoc loc, INode **out);
int exec_block_api(Sema *S, Scope *sc, const NodeList *body, Value *ret);
bool eval_api(Sema *S, Scope *sc, const Node *n, Value *out);

/* layers.c */
bool layer_construct(Sema *S, const char *name, const Args *a, Value *out, bool *found);
bool layer_call(Sema *S, ModInst *mi, const Args *a, Value *out);
bool module_bind(Sema *S, ModInst *mi, const char *prefix, SrcLoc loc);
bool value_bind(Sema *S, Value *v, const char *prefix, SrcLoc loc);
INode *apply_act(Sema *S, Op op, double a0, double a1, INode *x, SrcLoc loc);

/* layers_nn.c */
bool nn_layer_construct(Sema *S, const char *name, const Args *a, Value *out, bool *found);
bool nn_layer_bind(Sema *S, ModInst *mi);
INode *nn_layer_call(Sema *S, ModInst *mi, INode *x, SrcLoc loc);
bool nn_layer_call_args(Sema *S, ModInst *mi, const Args *a, Value *out, bool *handled);
bool nn_layer_member(Sema *S, ModInst *mi, const char *name, SrcLoc loc, Value *out);
INode *lstm_step(Sema *S, INode *x, INode *h, INode *c, INode *wih, INode *whh, INode *bih, INode *bhh,
                 int64_t hs, INode **c_next, SrcLoc loc);
INode *lstm_sequence(Sema *S, INode *x, INode *h0, INode *c0, INode *wih, INode *whh, INode *bih, INode *bhh,
                     int64_t hs, bool batch_first, INode **h_n, INode **c_n, SrcLoc loc);

/* builtins.c */
INode *flatten_node(Sema *S, INode *x, int64_t start, int64_t end, SrcLoc loc);
int builtin_find(const char *name);
bool builtin_call(Sema *S, int index, const Args *a, Value *out);

/* sema.c */
bool call_value(Sema *S, const Value *callee, const Args *a, Value *out);

#endif
