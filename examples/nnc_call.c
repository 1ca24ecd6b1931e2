/* nnc_call.c — call any nnc model from C through the runtime API (runtime/include/nnc.h).
 *
 *   nnc_call MODEL.so [WEIGHTS.safetensors]      a library made by `nnc MODEL.nn -o MODEL.so`
 *   nnc_call MODEL.nn WEIGHTS.safetensors        JIT-compiled in process
 *
 * Prints every entry's signature from the model's introspection table, then runs each entry
 * on inputs of ones with every symbolic dim set to 3, and prints each output's shape and sum.
 * Build it against the runtime (docs/c-api.md):
 *
 *   cc nnc_call.c $(pkg-config --cflags --libs nnc) -o nnc_call        # installed nnc
 *   cc nnc_call.c -Iruntime/include -Lbuild -lnnc -Wl,-rpath,$PWD/build -o nnc_call   # build tree
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nnc.h"

enum { SYM_VALUE = 3, MAX_ARGS = 64 };

static int ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), k = strlen(suffix);
  return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* "forward(x: f32[N, 2]) -> (z: f32[N, 2], logdet: f32[N])" */
static void print_signature(const nnc_model_desc *d, const nnc_entry_desc *e) {
  char type[256];
  printf("%s(", e->name);
  for (int i = 0; i < e->n_in + e->n_out; i++) {
    nnc_arg_type_str(d, &e->args[i], type, sizeof type);
    if (i == e->n_in) printf(") -> (");
    printf("%s%s: %s", i == 0 || i == e->n_in ? "" : ", ", e->args[i].name, type);
  }
  printf("%s)\n", e->n_out ? "" : ") -> (");
}

/* An input of ones: each dim is k times SYM_VALUE per symbol it uses. */
static int make_input(const nnc_arg_desc *a, nnc_tensor *t) {
  t->dtype = a->dtype;
  t->rank = a->rank;
  for (int j = 0; j < a->rank; j++) {
    t->shape[j] = a->dims[j].k;
    for (uint32_t s = a->dims[j].syms; s; s &= s - 1) t->shape[j] *= SYM_VALUE;
  }
  int64_t n = nnc_tensor_numel(t);
  t->data = malloc((size_t)(n > 0 ? n : 1) * (size_t)nnc_dtype_size(a->dtype));
  if (!t->data) return -1;
  for (int64_t i = 0; i < n; i++) {
    if (a->dtype == NNC_I64) ((int64_t *)t->data)[i] = 1;
    else ((float *)t->data)[i] = 1.0f;
  }
  return 0;
}

static void print_output(const nnc_arg_desc *a, const nnc_tensor *t) {
  double sum = 0;
  int64_t n = nnc_tensor_numel(t);
  for (int64_t i = 0; i < n; i++)
    sum += t->dtype == NNC_I64 ? (double)((int64_t *)t->data)[i] : ((float *)t->data)[i];
  printf("  %s: [", a->name);
  for (int j = 0; j < t->rank; j++) printf("%s%lld", j ? ", " : "", (long long)t->shape[j]);
  printf("]  sum %.6g\n", sum);
}

/* Run entry e on ones; outputs are allocated by nnc_call (data NULL) and freed here. */
static int run_entry(nnc_context *ctx, const nnc_model_desc *d, int e) {
  const nnc_entry_desc *en = &d->entries[e];
  nnc_tensor in[MAX_ARGS] = {{0}}, out[MAX_ARGS] = {{0}};
  int rc = 0;
  if (en->n_in > MAX_ARGS || en->n_out > MAX_ARGS) return fprintf(stderr, "too many arguments\n"), 1;
  for (int i = 0; i < en->n_in && rc == 0; i++) rc = make_input(&en->args[i], &in[i]);
  if (rc == 0 && nnc_call(ctx, e, in, en->n_in, out, en->n_out) != NNC_OK) {
    fprintf(stderr, "%s: %s\n", en->name, nnc_context_error(ctx));
    rc = 1;
  }
  printf("%s on ones, symbolic dims = %d:\n", en->name, SYM_VALUE);
  for (int o = 0; o < en->n_out && rc == 0; o++) print_output(&en->args[en->n_in + o], &out[o]);
  for (int i = 0; i < en->n_in; i++) free(in[i].data);
  for (int o = 0; o < en->n_out; o++) nnc_free(out[o].data);
  return rc;
}

int main(int argc, char **argv) {
  if (argc < 2 || argc > 3) {
    fprintf(stderr, "usage: nnc_call MODEL.so [WEIGHTS] | nnc_call MODEL.nn WEIGHTS\n");
    return 2;
  }
  const char *weights = argc > 2 ? argv[2] : NULL;
  nnc_model *model = NULL;
  nnc_context *ctx = NULL;
  char *msg = NULL;
  int rc = ends_with(argv[1], ".nn") ? nnc_model_compile(argv[1], weights, &model, &msg)
                                     : nnc_model_load(argv[1], &model, &msg);
  /* a JIT model embeds the weights it was compiled with; a .so may take a file instead */
  if (rc == NNC_OK)
    rc = nnc_context_open(model, ends_with(argv[1], ".nn") ? NULL : weights, &ctx, &msg);
  if (rc != NNC_OK) {
    fprintf(stderr, "%s\n", msg ? msg : "nnc: failed");
    nnc_free(msg);
    nnc_model_free(model);
    return 1;
  }
  const nnc_model_desc *d = nnc_model_desc_of(model);
  printf("model %s: %d entries, %d parameters\n", d->name, d->n_entries, d->n_params);
  for (int e = 0; e < d->n_entries; e++) print_signature(d, &d->entries[e]);
  for (int e = 0; e < d->n_entries && rc == 0; e++) rc = run_entry(ctx, d, e);
  nnc_context_free(ctx);
  nnc_model_free(model);
  return rc;
}
