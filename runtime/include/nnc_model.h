/* nnc_model.h — the ABI of every library nnc generates (AOT .so or JIT-compiled module).
 *
 * A generated library exports
 *   const nnc_model_desc *nnc_model_info(void);          the introspection table below
 *   nnc_ctx *nnc_ctx_open(const nnc_model_desc *, const char *weights_path, char *err, size_t n);
 *   void nnc_ctx_close(nnc_ctx *);                       NULL is harmless
 *   int nnc_ctx_call(nnc_ctx *, int entry, void *const *args, const int64_t *syms);
 *   const char *nnc_ctx_error(const nnc_ctx *);          message of the last failed call
 *   int64_t nnc_entry_workspace_size(const nnc_entry_desc *, const int64_t *syms);
 *   int nnc_ctx_set_threads(nnc_ctx *, int n);           threads of the context's calls, 0: default
 *   int nnc_ctx_threads(const nnc_ctx *);                the current count
 *   int nnc_derive_syms(const nnc_sym_rule *, int n, const char *const *names, uint32_t used,
 *                       int64_t *syms, char *err, size_t n); fills the derived symbolic dims
 * plus typed wrappers per entry, declared by the header `nnc --header` writes:
 *   <model>_ctx *<model>_open(const char *weights_path, char *err, size_t n);
 *   int <model>_<entry>(<model>_ctx *, <one int64_t per symbolic dim>, <inputs>, <outputs>);
 *
 * A context owns the weights (embedded ones are used in place) and a workspace that grows to
 * the largest call seen, so calls after the first allocate nothing.  Contexts are independent:
 * separate threads may use separate contexts at once.  This file is also pasted verbatim into
 * every generated header, so it must stay self-contained C.
 */
#ifndef NNC_MODEL_ABI
#define NNC_MODEL_ABI 5 /* 3: nnc_param_desc.flags, nnc_model_desc.weights_checksum; 4: sym_rules;
                           5: NNC_SYM_SQUARE */

#include <stddef.h>
#include <stdint.h>

enum nnc_dtype {
  NNC_F32 = 0, /* float, little-endian IEEE 754 */
  NNC_I64 = 1, /* int64_t */
};

enum nnc_status {
  NNC_OK = 0,          /* success */
  NNC_ERR_USER = 1,    /* bad model, weights or inputs; see the error message */
  NNC_ERR_USAGE = 2,   /* bad arguments to an API call (wrong entry index, NULL pointer) */
  NNC_ERR_NOMEM = 3,   /* out of memory */
};

/* A dimension: k times the product of the symbolic dims whose bits are set in `syms`
 * (bit i = nnc_model_desc.sym_names[i]).  A static dim has syms == 0. */
typedef struct nnc_dim {
  int64_t k;
  uint32_t syms;
} nnc_dim;

/* A region of an entry's workspace, `bytes` long (rounded up to 64).  It starts where the
 * regions before it end (the largest end so far), or, when `overlay` is set, `at` bytes after
 * the start of the region just before it (rounded up to 64): the compiler puts a region over
 * the tail of the one before when their tensors are never live at once there.  The workspace
 * is the largest end of a region (nnc_entry_workspace_size). */
typedef struct nnc_slot {
  nnc_dim bytes;
  nnc_dim at;
  int32_t overlay;
} nnc_slot;

typedef struct nnc_arg_desc {
  const char *name;
  int32_t dtype;       /* enum nnc_dtype */
  int32_t rank;
  const nnc_dim *dims; /* [rank] */
} nnc_arg_desc;

/* Body of an entry: args = inputs then outputs (caller-owned, C order), syms = values of all
 * symbolic dims of the model (by index), weights = the weight blob, workspace = at least
 * nnc_entry_workspace_size() bytes, 64-byte aligned. */
typedef void (*nnc_entry_fn)(void *const *args, const int64_t *syms, const char *weights,
                             char *workspace);

typedef struct nnc_entry_desc {
  const char *name;
  int32_t n_in, n_out;
  const nnc_arg_desc *args; /* [n_in + n_out] */
  int32_t n_slots;          /* workspace regions */
  const nnc_slot *slots;    /* [n_slots] */
  nnc_entry_fn body;
  uint32_t syms;            /* every symbolic dim the entry uses (bit i: sym i), its derived
                               ones included: those nnc_derive_syms computes for a call */
} nnc_entry_desc;

typedef struct nnc_param_desc {
  const char *name;      /* PyTorch state_dict name, e.g. "layers.0.s.0.weight" */
  int32_t dtype;
  int32_t rank;
  const int64_t *shape;  /* [rank] */
  uint64_t offset;       /* byte offset in the weight blob (64-byte aligned) */
  uint64_t nbytes;
  uint32_t flags;        /* NNC_PARAM_* bits */
} nnc_param_desc;

enum nnc_param_flags {
  /* A weights file may leave the parameter out (then it is zero): the model never reads it,
   * as BatchNorm's num_batches_tracked, which PyTorch's load_state_dict does not require. */
  NNC_PARAM_OPTIONAL = 1,
};

/* How symbolic dim i gets its value.  src < 0: the caller binds it (from the inputs' shapes).
 * Otherwise it is derived from dim src (src < i): floor((mul * syms[src] + add) / div), a
 * layer's output size such as a convolution's (H + 2p - k) / s + 1 on a symbolic H, and must
 * come out >= 1 (else the call fails naming `site`, the layer) — or, with NNC_SYM_CLAMP in
 * flags, a slice's length, 0 when below 0.  With NNC_SYM_SQUARE it is syms[src] squared
 * instead (mul, add, div unused): a dim holds each symbol once, so the element count of a
 * [B, T, T] tensor is B * "T*T", a symbol of its own.  mul, div >= 1.  The runtime fills derived dims
 * before a call (nnc_derive_syms); callers pass the bound ones. */
enum { NNC_SYM_CLAMP = 1, NNC_SYM_SQUARE = 2 };
typedef struct nnc_sym_rule {
  int32_t src;
  int32_t flags;     /* NNC_SYM_CLAMP, NNC_SYM_SQUARE */
  int64_t mul, add, div;
  const char *site;  /* "model.nn:12:9: conv2d: the output height" */
} nnc_sym_rule;

typedef struct nnc_model_desc {
  uint32_t abi_version;  /* NNC_MODEL_ABI */
  const char *name;      /* model name (the .nn file's base name) */
  int32_t n_syms;
  const char *const *sym_names;
  int32_t n_entries;
  const nnc_entry_desc *entries;
  int32_t n_params;
  const nnc_param_desc *params;
  uint64_t weights_size;          /* bytes: the parameters, then the derived parameters */
  const char *embedded_weights;   /* NULL when weights are loaded at run time */
  /* Computes the derived parameters (folded BatchNorms, reordered weights) in the weight
   * blob, after the parameters; run once when a context loads weights from a file.  NULL
   * when there are none.  Embedded weights hold them already (computed at compile time), so
   * it does not run on them; it is there for a weights file that replaces them.  No args, no
   * syms; its workspace is nnc_entry_workspace_size(init, NULL). */
  const nnc_entry_desc *init;
  /* nnc_weights_checksum of embedded_weights[weights_size] (runtime/support/table.c),
   * verified when a context opens on them: a damaged library is an error, not wrong results.
   * Never 0 when recorded; 0: none (no embedded weights, or a table written by hand). */
  uint64_t weights_checksum;
  /* [n_syms]: how each symbolic dim gets its value; NULL when the caller binds all of them */
  const nnc_sym_rule *sym_rules;
} nnc_model_desc;

typedef struct nnc_ctx nnc_ctx;

#endif
