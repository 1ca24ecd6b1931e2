/* fuzz_onnx.c — libFuzzer target: arbitrary bytes as an .onnx model through the ONNX reader
 * (onnx_read_memory).  A refused input must come with a message of the reader's form; an
 * accepted model is walked — every name, attribute and tensor byte read, the reader's
 * promises checked (sizes, ranks, dims, alignment) — and freed, then compiled through the
 * translation and the passes up to the fused kernels (nnc_dump_source, stage "fused"), which
 * must end in a result or a message too.
 *
 * External data is looked up in a folder made once per process (removed at exit):
 * `external.bin` (256 bytes, enough for the seed external.onnx's two tensors), the same in
 * `sub/`, and `out.bin`, a symbolic link to a file outside the folder, so that the location,
 * offset and length checks are fuzzed too. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "compile.h"
#include "onnx_reader.h"

static char top[64], dir[96]; /* the harness's own state: the folder, made once */

static void remove_folder(void) {
  char p[160];
  const char *files[] = {"model/external.bin", "model/sub/external.bin", "model/out.bin", "outside.bin"};
  for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
    snprintf(p, sizeof p, "%s/%s", top, files[i]);
    unlink(p);
  }
  snprintf(p, sizeof p, "%s/model/sub", top);
  rmdir(p);
  rmdir(dir);
  rmdir(top);
}

static void write_bytes(const char *path) {
  unsigned char b[256];
  for (int i = 0; i < 256; i++) b[i] = (unsigned char)i;
  FILE *f = fopen(path, "wb");
  if (!f || fwrite(b, 1, sizeof b, f) != sizeof b) __builtin_trap();
  fclose(f);
}

static const char *external_folder(void) {
  if (dir[0]) return dir;
  char p[160];
  strcpy(top, "/tmp/nnc_fuzz_onnx_XXXXXX");
  if (!mkdtemp(top)) __builtin_trap();
  snprintf(dir, sizeof dir, "%s/model", top);
  snprintf(p, sizeof p, "%s/sub", dir);
  if (mkdir(dir, 0700) || mkdir(p, 0700)) __builtin_trap();
  snprintf(p, sizeof p, "%s/external.bin", dir);
  write_bytes(p);
  snprintf(p, sizeof p, "%s/sub/external.bin", dir);
  write_bytes(p);
  snprintf(p, sizeof p, "%s/outside.bin", top);
  write_bytes(p);
  char link[160];
  snprintf(link, sizeof link, "%s/out.bin", dir);
  if (symlink(p, link)) __builtin_trap();
  atexit(remove_folder);
  return dir;
}

static volatile unsigned sink;

static void walk_bytes(const void *p, size_t n) {
  for (size_t i = 0; i < n; i++) sink ^= ((const unsigned char *)p)[i];
}

static void walk_string(const char *s) {
  if (!s) __builtin_trap();
  size_t n = strlen(s);
  if (n > ONNX_MAX_NAME) __builtin_trap();
  walk_bytes(s, n);
}

static void walk_tensor(const OnnxTensor *t) {
  walk_string(t->name);
  if (t->rank < 0 || t->rank > ONNX_MAX_RANK || !t->data || (uintptr_t)t->data % 64) __builtin_trap();
  int64_t numel = 1;
  for (int i = 0; i < t->rank; i++) {
    if (t->dims[i] < 0) __builtin_trap();
    numel *= t->dims[i];
  }
  if (numel != t->numel || t->nbytes != (size_t)numel * onnx_dtype_size(t->dtype)) __builtin_trap();
  walk_bytes(t->data, t->nbytes);
}

static void walk_attr(const OnnxAttr *a) {
  walk_string(a->name);
  switch (a->kind) {
  case ONNX_ATTR_FLOAT: walk_bytes(&a->f, sizeof a->f); break;
  case ONNX_ATTR_INT: walk_bytes(&a->i, sizeof a->i); break;
  case ONNX_ATTR_STRING:
    if (a->s.data[a->s.len] != '\0') __builtin_trap();
    break;
  case ONNX_ATTR_TENSOR: walk_tensor(a->t); break;
  case ONNX_ATTR_FLOATS: walk_bytes(a->floats, (size_t)a->n * sizeof *a->floats); break;
  case ONNX_ATTR_INTS: walk_bytes(a->ints, (size_t)a->n * sizeof *a->ints); break;
  case ONNX_ATTR_STRINGS:
    for (int i = 0; i < a->n; i++)
      if (a->strings[i].data[a->strings[i].len] != '\0') __builtin_trap();
    break;
  default: __builtin_trap();
  }
}

static void walk_values(const OnnxValueInfo *v, int n) {
  for (int i = 0; i < n; i++) {
    walk_string(v[i].name);
    if (v[i].rank < -1 || v[i].rank > ONNX_MAX_RANK) __builtin_trap();
    for (int d = 0; d < v[i].rank; d++) {
      if (v[i].dims[d].kind == ONNX_DIM_VALUE && v[i].dims[d].value < 0) __builtin_trap();
      if (v[i].dims[d].kind == ONNX_DIM_PARAM) walk_string(v[i].dims[d].param);
    }
  }
}

static void walk(const OnnxModel *m) {
  for (int i = 0; i < m->n_opsets; i++) walk_string(m->opsets[i].domain);
  for (int i = 0; i < m->n_nodes; i++) {
    const OnnxNode *n = &m->nodes[i];
    walk_string(n->name), walk_string(n->op_type), walk_string(n->domain);
    if (onnx_model_opset(m, n->domain) < 0) __builtin_trap();
    for (int k = 0; k < n->n_inputs; k++) walk_string(n->inputs[k]);
    for (int k = 0; k < n->n_outputs; k++) walk_string(n->outputs[k]);
    for (int k = 0; k < n->n_attrs; k++) walk_attr(&n->attrs[k]);
  }
  for (int i = 0; i < m->n_initializers; i++) walk_tensor(&m->initializers[i]);
  walk_values(m->inputs, m->n_inputs);
  walk_values(m->outputs, m->n_outputs);
  walk_values(m->value_info, m->n_value_info);
}

/* The model through the translation and the passes (the path puts it in the folder). */
static void compile_model(const uint8_t *data, size_t size) {
  static FILE *null_out; /* the harness's own, opened once */
  if (!null_out && !(null_out = fopen("/dev/null", "w"))) __builtin_trap();
  char path[160], *msg = NULL;
  snprintf(path, sizeof path, "%s/fuzz.onnx", external_folder());
  if (nnc_dump_source(path, (const char *)data, size, "fused", null_out, &msg) != 0 && !msg) __builtin_trap();
  free(msg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  OnnxModel *m = NULL;
  char *err = NULL;
  if (onnx_read_memory(data, size, "fuzz.onnx", external_folder(), &m, &err) == 0) {
    walk(m);
    onnx_model_free(m);
    compile_model(data, size);
  } else {
    /* one line: "fuzz.onnx: error: ...\n" */
    if (m || !err || strncmp(err, "fuzz.onnx: error: ", 18) != 0 || !strchr(err, '\n') ||
        strchr(err, '\n')[1] != '\0')
      __builtin_trap();
    free(err);
  }
  return 0;
}
