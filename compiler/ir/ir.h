/* ir.h — the graph IR: a model is a set of parameters shared by its exported entries; each
 * entry is a DAG of tensor ops (ops.def) in topological order.  Shapes are static except
 * for named symbolic dims (N, T, ...) bound at call time; a dim is k × a product of symbols.
 * After the passes, an entry also carries its kernels (fusion groups) and memory plan.
 * All IR lives in the model's arena. */
#ifndef NNC_IR_H
#define NNC_IR_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include "ast.h"
#include "diag.h"

#define MAX_RANK 8
#define MAX_SYMS 32

typedef enum Op {
#define OP(id, name, arity, kind, print) OP_##id,
#include "ops.def"
  OP_COUNT
} Op;

typedef enum FusionKind { FK_LEAF, FK_ELEM, FK_MOVE, FK_REDUCE, FK_GEMM, FK_OPAQUE, FK_SCAN } FusionKind;
typedef enum DType { DT_F32 = 0, DT_I64 = 1 } DType;

/* Traits of elementwise ops for code generation (ops.def). */
enum { OPT_VECTOR = 1, OPT_CHAIN = 2, OPT_CHEAP = 4 };

/* An elementwise op's float attributes f[0], f[1]: PyTorch's keyword names and defaults. */
typedef struct OpAttrs {
  const char *name[2]; /* NULL past the last */
  double def[2];
  int n;
} OpAttrs;
#define NO_ATTRS {{NULL, NULL}, {0, 0}, 0}
#define ATTRS1(n0, d0) {{n0, NULL}, {d0, 0}, 1}
#define ATTRS2(n0, d0, n1, d1) {{n0, n1}, {d0, d1}, 2}

typedef struct INode INode;
typedef struct Model Model;

/* One row of ops.def. */
typedef struct OpInfo {
  const char *name;
  int arity;
  FusionKind kind;
  unsigned traits;     /* OPT_* (elementwise ops) */
  const char *fn;      /* the language's function, or NULL */
  const char *layer;   /* the torch.nn layer, or NULL */
  OpAttrs attrs;
  double (*eval)(const double *x, const double *a); /* ELEM only: scalar semantics in double */
  /* appends the op's attributes, each after a space, as the text dumps print them */
  void (*print)(const Model *m, const INode *n, char *buf, size_t len);
} OpInfo;
extern const OpInfo op_info[OP_COUNT];

/* k × product of the symbols in `syms` (bit i = model symbol i), each at most once: a square
 * T·T is a symbol of its own derived from T (SymRule.square), so [B, T, T] has B·(T·T)
 * elements (dim_mul). */
typedef struct Dim {
  int64_t k;
  uint32_t syms;
} Dim;

typedef struct Shape {
  int rank;
  Dim d[MAX_RANK];
} Shape;

static inline Dim dim_const(int64_t k) { return (Dim){k, 0}; }
static inline bool dim_eq(Dim a, Dim b) { return a.k == b.k && a.syms == b.syms; }
static inline bool dim_is(Dim a, int64_t k) { return a.syms == 0 && a.k == k; }
struct Model;
/* a × b.  A symbol in both becomes its square's symbol (symdim.c), made on first use; when
 * the model has no room for it, m->syms_full is set and ir_shape_supported reports it. */
Dim dim_mul(struct Model *m, Dim a, Dim b);
/* a / b when b divides a exactly (its symbols, squares included, and its k); false if not. */
bool dim_div(const struct Model *m, Dim a, Dim b, Dim *q);
bool shape_eq(const Shape *a, const Shape *b);
Dim shape_numel(struct Model *m, const Shape *s);
/* The element count of a shape of static dims (a constant's data), the symbols' factors left out. */
int64_t shape_static_numel(const Shape *s);
/* Is every dim static? */
bool shape_is_static(const Shape *s);
/* "f32[N, 2]"-style text; returns buf. */
void dim_str(const struct Model *m, Dim d, char *buf, size_t len); /* "2*N" */
const char *shape_str(const struct Model *m, DType dt, const Shape *s, char *buf, size_t len);

typedef struct INode INode;
struct Entry;

/* A run-time loop: for t in 0..bound (bound-1 down to 0 when reverse), the body entry maps
 * (carried, captured) to (next carried, per-step outputs); per-step output t is at t. */
typedef struct ScanInfo {
  struct Entry *body;
  Dim bound;
  int tsym;           /* model symbol holding t inside the body */
  bool reverse;       /* t runs backwards (a reverse-direction RNN) */
  int ncarried, ncaptured, nsteps;
  int *scratch;       /* memplan: a second buffer slot per carried value */
  int body_slots;     /* memplan: the outer slot where the body's slots start */
} ScanInfo;

struct INode {
  int id;             /* unique within the entry; also the order of creation */
  Op op;
  DType dtype;
  Shape shape;
  SrcLoc loc;
  INode *in[3];
  double f[2];        /* float attributes */
  int64_t i[MAX_RANK];/* int attributes */
  uint32_t axes;      /* reduction axes (bitmask over the input's axes) */
  int flag;           /* keepdim */
  int index;          /* INPUT: argument index; PARAM: model parameter index */
  const float *data;  /* CONST: numel values, or NULL for a fill of f[0] */
  /* filled by passes */
  int nusers;
  INode *replaced;    /* CSE: the equivalent node that replaces this one */
  int kernel;         /* fusion: index of the kernel that produces it, or -1 if inlined */
  int slot;           /* memory plan: workspace slot, -1 if none */
  int out_index;      /* entry output index it is written to directly, or -1 */
  bool live;          /* DCE */
  int8_t cst;         /* fold/hoist: 1 a function of parameters and constants only, 2 not, 0 unknown */
  struct Entry *owner;/* the entry (or scan body) the node belongs to */
  ScanInfo *scan;     /* OP_SCAN */
};

typedef struct Param {
  const char *name;   /* state_dict name */
  DType dtype;
  int rank;
  int64_t shape[MAX_RANK];
  uint64_t offset, nbytes;
  SrcLoc loc;
  bool derived;       /* computed from other parameters by the model's init entry (pass_hoist.c) */
  bool optional;      /* a weights file may leave it out (never read: num_batches_tracked) */
} Param;

/* A fused kernel: what lower.c turns into one loop nest (or an sgemm plus epilogue). */
typedef enum KernelKind { KK_ELEM, KK_REDUCE, KK_GEMM, KK_OPAQUE, KK_SCAN } KernelKind;
typedef struct Kernel {
  KernelKind kind;
  Shape domain;       /* ELEM: output shape; REDUCE: the reduction input's shape; GEMM: C */
  uint32_t raxes;     /* REDUCE: reduced axes of domain */
  INode *gemm;        /* GEMM: the matmul node */
  INode *prologue;    /* GEMM: its B operand, computed per batch item into a scratch slot */
  int conv_slot[2];   /* GEMM as a direct convolution (convplan.h, memplan): [0] Winograd's
                         transformed input V; [1] the products before the epilogue, Winograd's
                         M or a flat convolution's rows */
  INode **outs;       /* materialized results, in order */
  int nouts;
  INode **covers;     /* every IR node computed inside, for dumps */
  int ncovers;
} Kernel;

/* A workspace slot: a region of `bytes` (rounded up to 64 bytes), or a view at byte offset
 * `off` inside region `region` (then `bytes` is 0).  A region starts where the regions
 * before it end, or, when `overlay`, `at` bytes (rounded up to 64) after the start of the
 * region before it: the layout of nnc_slot (nnc_model.h), whose list holds the regions. */
typedef struct Slot {
  Dim bytes;
  int region;   /* -1: a region */
  Dim off;
  bool overlay;
  Dim at;
} Slot;
#define MEM_GRANULE 16 /* tensors are placed at multiples of this many bytes (times their symbols) */

/* memplan: a tensor of the workspace, live from kernel `first` to kernel `last`; or, with
 * `body` set, the workspace of a scan body while its scan kernel `first` runs.  For the
 * memory report (memreport.c): the planned size against the lifetime lower bound. */
typedef struct Lifetime {
  Dim bytes;
  int first, last;
  const struct Entry *body;
} Lifetime;

typedef struct Entry {
  const char *name;
  SrcLoc loc;
  INode **inputs;  int nin;
  const char **in_names;
  INode **outputs; int nout;
  const char **out_names;
  Shape *out_shapes;  DType *out_dtypes;   /* declared */
  INode **nodes;   int nnodes, cap;        /* topological order */
  INode **param_nodes; int param_nodes_cap; /* param index -> its PARAM node here (ir_param) */
  Kernel *kernels; int nkernels;
  Slot *slots;     int nslots;
  Lifetime *lifetimes; int nlifetimes;
  int *out_params;                         /* init entry: the derived parameter of each output */
  int lower_index;                         /* its LEntry in lower_model's result */
  int64_t intermediate_bytes_static;       /* for reports; symbolic dims counted as 1 */
} Entry;

/* A symbolic dim computed from another one, sym `src` (base or derived, always of a lower
 * index): floor((mul × src + add) / div), a layer's output size such as a convolution's
 * (H + 2p - k) / s + 1.  It must come out >= 1 at run time; `site` names the layer for that
 * error ("file:line:col: conv2d: the output height").  Base syms (bound from the inputs'
 * shapes) have derived == false.  symdim.c. */
typedef struct SymRule {
  bool derived;
  bool clamp;       /* a slice's length: below 0 it is 0 (not an error) */
  bool square;      /* src × src instead (mul, add, div unused): [T, T]'s element count */
  int src;
  int64_t mul, add, div;
  const char *site;
  bool typed;       /* named by a declared type (`f32[N, (H + 3) / 8]`), not yet by a layer */
} SymRule;

typedef struct Model {
  Arena *arena;
  const char *name;
  const SrcFile *file;
  const char *sym_names[MAX_SYMS];
  SymRule sym_rules[MAX_SYMS];
  int nsyms;
  bool syms_full;   /* a square symbol could not be added (MAX_SYMS): reported by ir_shape_supported */
  Param *params;  int nparams, params_cap;
  int *param_slots; int param_slots_cap;   /* name hash -> param index + 1 (model_find_param) */
  uint64_t weights_size;
  Entry *entries; int nentries, entries_cap;
  int nparams_loaded;                      /* parameters read from weights (a prefix of params) */
  Entry *init;     /* computes the derived parameters once the weights are loaded, or NULL */
  Entry **bodies; int nbodies, bodies_cap; /* scan bodies, inner ones first */
  const char **sites; int nsites, sites_cap; /* run-time index checks: "file:line:col: op:
                                               argument", CHECK_INDEX's f[0] (ir_check_index) */
} Model;

int model_sym(Model *m, const char *name);          /* index, adding it if new; -1 if full */
/* floor((mul × x + add) / div) as a Dim (symdim.c): a constant for a static x, a multiple of
 * x's symbol when exact, else a derived symbol (SymRule), shared by every layer that computes
 * the same formula of the same symbol.  mul, div >= 1.  x may hold at most one symbol.  On
 * failure (too many symbols, x a product of symbols) a diagnostic at loc naming `what`, and
 * *ok = false. */
extern const char TYPE_SIZE[]; /* dim_derive's `what` for a size written in a type */
/* max(0, floor((x + add) / div)): the length of a slice x[start:] or x[start:-k:step] of a
 * symbolic size (Python's clamping: an empty slice, not an error). */
Dim dim_slice_length(Model *m, Dim x, int64_t add, int64_t div, SrcLoc loc, Diag *d, bool *ok);
Dim dim_derive(Model *m, Dim x, int64_t mul, int64_t add, int64_t div, const char *what, SrcLoc loc, Diag *d,
               bool *ok);
/* Every sym the entry's nodes use, those of its scans' bodies included, and their squares. */
uint32_t entry_syms_used(const Model *m, const Entry *e);
/* The NNC_SYM_* flags of rule r (nnc_model.h) */
int32_t sym_rule_flags(const SymRule *r);
/* The base syms (bound from input shapes) that the syms in `mask` are computed from. */
uint32_t model_sym_roots(const Model *m, uint32_t mask);
/* syms[i] of every derived sym in `used` from the base syms' values: false (with a message in
 * err) when one comes out below 1 or overflows. */
bool model_derive_syms(const Model *m, uint32_t used, int64_t *syms, char *err, size_t errlen);
/* The largest static element count of a tensor or parameter (k of its size k × symbols). */
#define IR_MAX_STATIC_ELEMENTS ((int64_t)1 << 40)
/* model_add_param: the new parameter's index, or PARAM_DUPLICATE (the name exists) or
 * PARAM_TOO_LARGE (more than IR_MAX_STATIC_ELEMENTS elements); model_param_error words it. */
enum { PARAM_DUPLICATE = -1, PARAM_TOO_LARGE = -2 };
const char *model_param_error(int code);
int model_add_param(Model *m, const char *name, DType dt, int rank, const int64_t *shape,
                    SrcLoc loc);
int model_find_param(const Model *m, const char *name);
int model_loaded_params(const Model *m);           /* count of non-derived parameters */

bool ir_shape_supported(Model *m, const Shape *s, SrcLoc loc, Diag *d);

/* Node construction with shape rules (ir_shape.c).  Each returns NULL after recording a
 * diagnostic at `loc` when the operands do not fit. */
INode *ir_new(Model *m, Entry *e, Op op, DType dt, const Shape *shape, SrcLoc loc);
INode *ir_input(Model *m, Entry *e, int index, DType dt, const Shape *s, SrcLoc loc);
INode *ir_param(Model *m, Entry *e, int index, SrcLoc loc);
/* n, made a PARAM node by a pass (not by ir_param), is the entry's node of its parameter. */
void ir_remember_param(Model *m, Entry *e, INode *n);
INode *ir_fill(Model *m, Entry *e, double v, const Shape *s, SrcLoc loc);
INode *ir_const_data(Model *m, Entry *e, const float *data, const Shape *s, SrcLoc loc);
INode *ir_unary(Model *m, Entry *e, Op op, INode *a, SrcLoc loc, Diag *d);
INode *ir_convert(Model *m, Entry *e, INode *a, DType dt, SrcLoc loc, Diag *d);
INode *ir_binary(Model *m, Entry *e, Op op, INode *a, INode *b, SrcLoc loc, Diag *d);
INode *ir_where(Model *m, Entry *e, INode *c, INode *a, INode *b, SrcLoc loc, Diag *d);
INode *ir_reduce(Model *m, Entry *e, Op op, INode *a, uint32_t axes, int keepdim, SrcLoc loc,
                 Diag *d);
INode *ir_matmul(Model *m, Entry *e, INode *a, INode *b, int ta, int tb, SrcLoc loc, Diag *d);
INode *ir_reshape(Model *m, Entry *e, INode *a, const Shape *s, SrcLoc loc, Diag *d);
INode *ir_permute(Model *m, Entry *e, INode *a, const int *perm, SrcLoc loc, Diag *d);
INode *ir_slice(Model *m, Entry *e, INode *a, int axis, int64_t start, int64_t stop,
                int64_t step, SrcLoc loc, Diag *d);
INode *ir_concat(Model *m, Entry *e, INode *a, INode *b, int axis, SrcLoc loc, Diag *d);

/* Sliding windows (the WINDOW op of ops.def) over the last two axes of x. */
typedef struct WindowSpec {
  int64_t kernel[2], stride[2], dilation[2], input_dilation[2];
  int64_t pad[4];   /* top, left, bottom, right (may be negative: cropping) */
  double pad_value;
  bool flip;        /* kernel positions reversed (transposed convolution) */
  const char *what, *params; /* for errors: the op ("conv2d") and its parameters' names */
} WindowSpec;
INode *ir_window(Model *m, Entry *e, INode *x, const WindowSpec *w, SrcLoc loc, Diag *d);
/* Resample the last two axes to out_h x out_w (RESIZE of ops.def); a scale of 0 is computed
 * from the sizes at run time (ATen's area_pixel_compute_scale). */
INode *ir_resize(Model *m, Entry *e, INode *x, Dim out_h, Dim out_w, int mode,
                 bool align_corners, double scale_h, double scale_w, SrcLoc loc, Diag *d);
/* x[..., t, ...]: the element at the run-time index `sym` (a scan's step) along axis; shape
 * keeps the axis with size 1 */
INode *ir_index_dynamic(Model *m, Entry *e, INode *x, int axis, uint32_t sym, SrcLoc loc, Diag *d);
INode *ir_iota(Model *m, Entry *e, const Shape *s, int axis, SrcLoc loc);
INode *ir_gather(Model *m, Entry *e, INode *x, INode *index, int axis, const Shape *out, SrcLoc loc, Diag *d);
/* `index` (f32 holding whole numbers) checked against [0, size) where it is used: a constant
 * index out of range is a diagnostic now; otherwise a CHECK_INDEX node whose failure at run
 * time fails the call with a message naming `what` ("gather: argument 'index'") and its
 * place.  Every op that takes indices at run time reads them through one. */
INode *ir_check_index(Model *m, Entry *e, INode *index, Dim size, const char *what, SrcLoc loc, Diag *d);
/* The place and argument of a run-time check, for its message: its index in m->sites. */
int model_check_site(Model *m, SrcLoc loc, const char *what);
/* The value of dimension `dim` (k × symbols) as a scalar: a constant, or DIMVAL. */
INode *ir_dim_value(Model *m, Entry *e, Dim dim, SrcLoc loc);
INode *ir_col2im(Model *m, Entry *e, INode *cols, Dim oh, Dim ow, const int64_t stride[2],
                 const int64_t pad[2], const int64_t dilation[2], SrcLoc loc, Diag *d);
#define ROI_MAX_SAMPLING_RATIO 65536
/* softmax(q kᵀ · scale + mask) v (the ATTENTION op of ops.def): kv [..., S, E + Ev] holds each
 * key's E columns and then its value's; mask (or NULL) an f32 broadcast of [..., L, S];
 * causal: position l sees s <= l */
INode *ir_attention(Model *m, Entry *e, INode *q, INode *kv, INode *mask, double scale, bool causal, SrcLoc loc,
                    Diag *d);
INode *ir_roi_align(Model *m, Entry *e, INode *x, INode *boxes, int64_t ph, int64_t pw,
                    double spatial_scale, int64_t sampling_ratio, bool aligned, SrcLoc loc,
                    Diag *d);

/* Stable text form (nnc dump --stage=ir), also the form tests compare. */
void ir_dump_entry(FILE *out, const Model *m, const Entry *e);
/* The attributes of n as the text dumps print them (each after a space; "" when none). */
void ir_node_attrs(const Model *m, const INode *n, char *buf, size_t len);
void ir_dump_model(FILE *out, const Model *m);
void ir_dump_fused(FILE *out, const Model *m);
/* The node as it is referred to in dumps: %id */
void ir_check(const Model *m); /* invariants; aborts through unreachable() when broken */
void ir_toposort(Model *m, Entry *e); /* restore topological order after rewrites append nodes */
bool ir_is_constant(INode *n);        /* a function of parameters and constants (memoized in cst) */

_Noreturn void nnc_unreachable(const char *file, int line, const char *what);
#define unreachable(what) nnc_unreachable(__FILE__, __LINE__, what)

#endif
