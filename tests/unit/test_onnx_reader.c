/* test_onnx_reader.c — the ONNX reader (compiler/onnx/onnx_reader.h) on the small models of
 * tests/unit/onnx_models/ (written by make_models.py with python3-onnx and torch, committed):
 * every field of good models (initializers from raw_data and from each typed field, a
 * symbolic dim, Constant tensors, every attribute kind, external data, a torch.onnx.export),
 * then one malformed model per rule, each with its exact message.  Truncated files, deep
 * nesting and symbolic links are made here, in memory or in a mkdtemp folder. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sys/stat.h>
#include <unistd.h>

#include "onnx_reader.h"
#include "support.h"

#define MODELS NNC_SOURCE_DIR "/tests/unit/onnx_models/"

static OnnxModel *read_ok(const char *name) {
  OnnxModel *m = NULL;
  char *err = NULL, path[512];
  snprintf(path, sizeof path, MODELS "%s", name);
  if (onnx_read_file(path, &m, &err)) fail_msg("%s", err);
  assert_non_null(m);
  return m;
}

/* Reading `path` fails with exactly "PATH: error: MESSAGE\n". */
static void expect_error_at(const char *path, const char *message) {
  OnnxModel *m = (OnnxModel *)1;
  char *err = NULL, want[2048];
  assert_int_equal(onnx_read_file(path, &m, &err), -1);
  assert_null(m);
  snprintf(want, sizeof want, "%s: error: %s\n", path, message);
  assert_non_null(err);
  assert_string_equal(err, want);
  free(err);
}

static void expect_error(const char *name, const char *message) {
  char path[512];
  snprintf(path, sizeof path, MODELS "%s", name);
  expect_error_at(path, message);
}

static const OnnxValueInfo *find_value(const OnnxValueInfo *v, int n, const char *name) {
  for (int i = 0; i < n; i++)
    if (strcmp(v[i].name, name) == 0) return &v[i];
  fail_msg("no value info '%s'", name);
  return NULL;
}

static void expect_dims(const OnnxValueInfo *v, const char *dims) {
  char got[256] = "";
  for (int i = 0; i < v->rank; i++) {
    size_t o = strlen(got);
    const OnnxDim *d = &v->dims[i];
    if (d->kind == ONNX_DIM_VALUE) snprintf(got + o, sizeof got - o, "%s%lld", i ? "," : "", (long long)d->value);
    else if (d->kind == ONNX_DIM_PARAM) snprintf(got + o, sizeof got - o, "%s%s", i ? "," : "", d->param);
    else snprintf(got + o, sizeof got - o, "%s?", i ? "," : "");
  }
  assert_string_equal(got, dims);
}

/* element i of a ramp (make_models.py): i * scale + offset */
static void expect_ramp(const OnnxTensor *t, float scale, float offset) {
  assert_int_equal(t->dtype, ONNX_F32);
  assert_int_equal(t->nbytes, (size_t)t->numel * 4);
  assert_int_equal((uintptr_t)t->data % 64, 0);
  const float *f = t->data;
  for (int64_t i = 0; i < t->numel; i++) assert_true(f[i] == (float)i * scale + offset);
}

static void test_conv_relu_gemm(void **state) {
  OnnxModel *m = read_ok("conv_relu_gemm.onnx");
  assert_int_equal(m->ir_version, 8);
  assert_string_equal(m->producer_name, "make_models.py");
  assert_int_equal(onnx_model_opset(m, ""), 13);
  assert_int_equal(onnx_model_opset(m, "ai.onnx"), 13);
  assert_int_equal(onnx_model_opset(m, "com.microsoft"), -1);
  assert_int_equal(m->n_nodes, 5);
  const OnnxNode *conv = &m->nodes[0];
  assert_string_equal(conv->name, "conv1");
  assert_string_equal(conv->op_type, "Conv");
  assert_string_equal(conv->domain, "");
  assert_int_equal(conv->n_inputs, 3);
  assert_string_equal(conv->inputs[1], "conv.weight");
  assert_string_equal(conv->outputs[0], "c");
  const OnnxAttr *pads = onnx_node_attr(conv, "pads");
  assert_non_null(pads);
  assert_int_equal(pads->kind, ONNX_ATTR_INTS);
  assert_int_equal(pads->n, 4);
  assert_int_equal(pads->ints[3], 1);
  assert_null(onnx_node_attr(conv, "dilations"));
  /* the Constant node's value: int64_data */
  const OnnxAttr *value = onnx_node_attr(&m->nodes[2], "value");
  assert_int_equal(value->kind, ONNX_ATTR_TENSOR);
  assert_int_equal(value->t->dtype, ONNX_I64);
  assert_int_equal(value->t->rank, 1);
  assert_int_equal(value->t->dims[0], 2);
  assert_int_equal(((const int64_t *)value->t->data)[0], -1);
  assert_int_equal(((const int64_t *)value->t->data)[1], 256);
  const OnnxNode *gemm = &m->nodes[4];
  assert_true(onnx_node_attr(gemm, "alpha")->kind == ONNX_ATTR_FLOAT);
  assert_true(onnx_node_attr(gemm, "alpha")->f == 1.0f);
  assert_int_equal(onnx_node_attr(gemm, "transB")->i, 1);
  /* initializers: raw_data (conv.weight, fc.bias) and float_data (conv.bias, fc.weight) */
  assert_int_equal(m->n_initializers, 4);
  const OnnxTensor *w = onnx_model_initializer(m, "conv.weight");
  assert_int_equal(w->rank, 4);
  assert_int_equal(w->dims[1], 3);
  assert_int_equal(w->numel, 108);
  expect_ramp(w, 0.25f, -1.0f);
  expect_ramp(onnx_model_initializer(m, "conv.bias"), 0.25f, -1.0f);
  expect_ramp(onnx_model_initializer(m, "fc.weight"), 0.25f, -1.0f);
  expect_ramp(onnx_model_initializer(m, "fc.bias"), 0.25f, -1.0f);
  assert_int_equal(onnx_model_initializer(m, "fc.weight")->numel, 2560);
  /* inputs and outputs with a symbolic batch; value_info with an unknown dim */
  assert_int_equal(m->n_inputs, 1);
  assert_int_equal(m->inputs[0].dtype, ONNX_F32);
  expect_dims(&m->inputs[0], "N,3,8,8");
  expect_dims(find_value(m->outputs, m->n_outputs, "y"), "N,10");
  expect_dims(find_value(m->value_info, m->n_value_info, "c"), "N,4,?,8");
  onnx_model_free(m);
}

static void test_dtypes(void **state) {
  OnnxModel *m = read_ok("dtypes.onnx");
  const OnnxTensor *t;
#define BYTES(name, type, ...)                                                 \
  do {                                                                         \
    const type want[] = {__VA_ARGS__};                                         \
    t = onnx_model_initializer(m, name);                                       \
    assert_non_null(t);                                                        \
    assert_int_equal(t->nbytes, sizeof want);                                  \
    assert_memory_equal(t->data, want, sizeof want);                           \
  } while (0)
  BYTES("f64", double, 1.5, -2.25);
  BYTES("i8", int8_t, -128, 0, 127);
  BYTES("u8", uint8_t, 0, 255);
  BYTES("i16", int16_t, -32768, 32767);
  BYTES("u16", uint16_t, 65535);
  BYTES("i32", int32_t, -7, 7);
  BYTES("i64", int64_t, -(INT64_C(1) << 40), INT64_C(1) << 40);
  BYTES("u32", uint32_t, 4000000000u);
  BYTES("u64", uint64_t, UINT64_C(1) << 63);
  BYTES("bool", uint8_t, 1, 0, 1);
  BYTES("f16", uint16_t, 0x3c00);
  BYTES("bf16", uint16_t, 0x3f80);
  BYTES("raw_i64", int64_t, 3, -4);
  BYTES("raw_bool", uint8_t, 0, 1);
  BYTES("scalar", float, 2.5f);
#undef BYTES
  assert_int_equal(onnx_model_initializer(m, "scalar")->rank, 0);
  assert_int_equal(onnx_model_initializer(m, "scalar")->numel, 1);
  t = onnx_model_initializer(m, "empty");
  assert_int_equal(t->numel, 0);
  assert_int_equal(t->nbytes, 0);
  assert_non_null(t->data);
  assert_string_equal(onnx_dtype_name(onnx_model_initializer(m, "bf16")->dtype), "bf16");
  assert_int_equal(onnx_dtype_size(ONNX_F16), 2);
  onnx_model_free(m);
}

static void test_attrs(void **state) {
  OnnxModel *m = read_ok("attrs.onnx");
  assert_int_equal(onnx_model_opset(m, "nnc.test"), 1);
  const OnnxNode *n = &m->nodes[0];
  assert_string_equal(n->domain, "nnc.test");
  assert_int_equal(n->n_inputs, 2);
  assert_string_equal(n->inputs[1], ""); /* an omitted optional input */
  assert_true(onnx_node_attr(n, "f")->f == 0.5f);
  assert_int_equal(onnx_node_attr(n, "i")->i, -3);
  const OnnxAttr *s = onnx_node_attr(n, "s");
  assert_int_equal(s->kind, ONNX_ATTR_STRING);
  assert_string_equal(s->s.data, "SAME_UPPER");
  assert_int_equal(s->s.len, 10);
  const OnnxAttr *t = onnx_node_attr(n, "t");
  assert_int_equal(t->t->numel, 2);
  assert_true(((const float *)t->t->data)[1] == 2.0f);
  const OnnxAttr *fl = onnx_node_attr(n, "floats");
  assert_int_equal(fl->n, 2);
  assert_true(fl->floats[1] == 2.5f);
  assert_int_equal(onnx_node_attr(n, "ints")->ints[2], 3);
  const OnnxAttr *strs = onnx_node_attr(n, "strings");
  assert_int_equal(strs->kind, ONNX_ATTR_STRINGS);
  assert_int_equal(strs->n, 2);
  assert_string_equal(strs->strings[1].data, "bc");
  assert_int_equal(m->outputs[0].rank, -1); /* no shape given */
  onnx_model_free(m);
}

static void test_external(void **state) {
  OnnxModel *m = read_ok("external.onnx");
  expect_ramp(onnx_model_initializer(m, "a"), 0.25f, -1.0f);
  const OnnxTensor *b = onnx_model_initializer(m, "b");
  assert_int_equal(b->dtype, ONNX_I64);
  for (int i = 0; i < 5; i++) assert_int_equal(((const int64_t *)b->data)[i], i);
  onnx_model_free(m);
}

static void test_external_errors(void **state) {
  expect_error("ext_escape.onnx", "initializer 'a': external data location '../external.bin' has a "
               "'..' component, expected a path inside the model's folder");
  expect_error("ext_absolute.onnx", "initializer 'a': external data location '/etc/hostname' is an "
               "absolute path, expected a path relative to the model's folder");
  expect_error("ext_truncated.onnx", "initializer 'a': external data 'external.bin': offset 48 + "
               "length 48 runs past the end of the file (88 bytes)");
  expect_error("ext_length.onnx", "initializer 'a': external data 'external.bin': length is 44 "
               "bytes, expected 48 for f32[4, 3]");
  expect_error("ext_missing.onnx", "initializer 'a': external data 'missing.bin': cannot open: No "
               "such file or directory");
}

/* Bytes of a file of the models' folder. */
static unsigned char *slurp(const char *name, size_t *len) {
  char path[512];
  snprintf(path, sizeof path, MODELS "%s", name);
  unsigned char *b = file_slurp(path, len);
  assert_non_null(b);
  return b;
}

/* ext_link.onnx reads link.bin: a symbolic link to a file outside the model's folder is
 * refused; one to a file inside it is read. */
static void test_external_symlink(void **state) {
  char top[] = "/tmp/nnc_onnx_XXXXXX", dir[128], model[160], link[160], outside[160], inside[160];
  assert_non_null(mkdtemp(top));
  snprintf(dir, sizeof dir, "%s/model", top);
  snprintf(model, sizeof model, "%s/m.onnx", dir);
  snprintf(link, sizeof link, "%s/link.bin", dir);
  snprintf(outside, sizeof outside, "%s/outside.bin", top);
  snprintf(inside, sizeof inside, "%s/inside.bin", dir);
  assert_int_equal(mkdir(dir, 0700), 0);
  size_t n, nbin;
  unsigned char *bytes = slurp("ext_link.onnx", &n), *bin = slurp("external.bin", &nbin);
  file_spit(model, bytes, n);
  file_spit(outside, bin, nbin);
  file_spit(inside, bin, nbin);
  assert_int_equal(symlink(outside, link), 0);
  char msg[512];
  snprintf(msg, sizeof msg, "initializer 'a': external data 'link.bin' resolves to '%s', outside "
           "the model's folder (a symbolic link?)", outside);
  expect_error_at(model, msg);
  unlink(link);
  assert_int_equal(symlink("inside.bin", link), 0);
  OnnxModel *m = NULL;
  char *err = NULL;
  if (onnx_read_file(model, &m, &err)) fail_msg("%s", err);
  expect_ramp(onnx_model_initializer(m, "a"), 0.25f, -1.0f);
  onnx_model_free(m);
  /* read from memory, external data has no folder */
  assert_int_equal(onnx_read_memory(bytes, n, "mem.onnx", NULL, &m, &err), -1);
  assert_string_equal(err, "mem.onnx: error: initializer 'a': external data 'link.bin' cannot be "
                           "read: the model was not read from a file\n");
  free(err);
  unlink(link), unlink(model), unlink(outside), unlink(inside), rmdir(dir), rmdir(top);
  free(bytes);
  free(bin);
}

static void test_malformed(void **state) {
  static const char *const cases[][2] = {
    {"bad_raw_size.onnx", "initializer 'fc.weight': raw_data holds 396 bytes, expected 400 for f32[10, 10]"},
    {"bad_negative_dim.onnx", "initializer 'w': dim 0 is -1, expected >= 0"},
    {"bad_huge_dims.onnx", "initializer 'w': the element count of f32[1099511627776, 1099511627776] overflows"},
    {"bad_huge_bytes.onnx", "initializer 'w': f64[2147483648, 2147483648] takes more than 2^62 bytes"},
    {"bad_rank.onnx", "initializer 'w': rank 9, expected at most 8"},
    {"bad_string.onnx", "initializer 'names': data type STRING (8) is not supported (supported: "
                        "float, double, float16, bfloat16, int8 to int64, uint8 to uint64, bool)"},
    {"bad_complex.onnx", "initializer 'z': data type COMPLEX64 (14) is not supported (supported: "
                         "float, double, float16, bfloat16, int8 to int64, uint8 to uint64, bool)"},
    {"bad_count.onnx", "initializer 'w': float_data holds 5 values, expected 6 for f32[2, 3]"},
    {"bad_field.onnx", "initializer 'w': holds int64_data, expected float_data or raw_data for f32[2]"},
    {"bad_range.onnx", "initializer 'q': int32_data[1] is 300, out of range for i8"},
    {"bad_nodata.onnx", "initializer 'w': holds no data, expected 12 bytes for f32[3]"},
    {"bad_two_sources.onnx", "initializer 'w': holds both raw_data and float_data, expected one of them"},
    {"bad_duplicate.onnx", "initializer 'w': the name is given to two initializers"},
    {"bad_input_dim.onnx", "graph input 'x': dim 1 is -3, expected >= 0"},
    {"bad_subgraph.onnx", "node 0 'branch' (If): attribute 'else_branch': a GRAPH attribute (a "
                          "subgraph, as If, Loop and Scan have) is not supported"},
    {"bad_domain.onnx", "node 0 'g' (Gelu): domain 'com.microsoft' is not imported by the model (opset_import)"},
    {"bad_constant.onnx", "node 0 'c0' (Constant): attribute 'value': raw_data holds 396 bytes, "
                          "expected 400 for f32[10, 10]"},
    {"bad_escape.onnx", "initializer 'w\\x01\xc3\xbf': raw_data holds 4 bytes, expected 8 for f32[2]"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) expect_error(cases[i][0], cases[i][1]);
}

/* Every proper prefix of a model fails with a message, none crashes or leaks. */
static void test_truncated(void **state) {
  size_t len;
  unsigned char *bytes = slurp("conv_relu_gemm.onnx", &len);
  for (size_t n = 0; n < len; n++) {
    unsigned char *copy = malloc(n ? n : 1); /* exact size: ASan sees a read past the end */
    memcpy(copy, bytes, n);
    OnnxModel *m = NULL;
    char *err = NULL;
    assert_int_equal(onnx_read_memory(copy, n, "t.onnx", NULL, &m, &err), -1);
    assert_non_null(err);
    if (n == 5000)
      assert_string_equal(err, "t.onnx: error: malformed protobuf at byte 19 (ModelProto.graph): a "
                               "length of 11208 bytes runs past the end of the file (4979 bytes left)\n");
    free(err);
    free(copy);
  }
  free(bytes);
}

/* Attributes holding graphs holding nodes holding attributes ... 200 levels deep: refused by
 * the wire check before protobuf-c recurses into them. */
static void test_deep_nesting(void **state) {
  enum { LEVELS = 200, CAP = 8192 };
  unsigned char *buf = malloc(CAP);
  size_t start = CAP; /* the message grows towards the front */
  /* innermost first: AttributeProto.g (6) in NodeProto.attribute (5) in GraphProto.node (1) */
  static const unsigned fields[] = {6, 5, 1};
  for (int level = 0; level < LEVELS * 3; level++) {
    size_t len = CAP - start;
    unsigned char head[12];
    int h = 0;
    head[h++] = (unsigned char)(fields[level % 3] << 3 | 2);
    for (size_t v = len; ; v >>= 7) {
      head[h++] = (unsigned char)((v & 0x7f) | (v >= 0x80 ? 0x80 : 0));
      if (v < 0x80) break;
    }
    start -= (size_t)h;
    memcpy(buf + start, head, (size_t)h);
  }
  /* ModelProto.graph (7) around it all */
  size_t len = CAP - start;
  assert_true(len >= 128 && len < 16384); /* a two-byte length */
  buf[--start] = (unsigned char)(len >> 7);
  buf[--start] = (unsigned char)((len & 0x7f) | 0x80);
  buf[--start] = 7 << 3 | 2;
  OnnxModel *m = NULL;
  char *err = NULL;
  assert_int_equal(onnx_read_memory(buf + start, CAP - start, "deep.onnx", NULL, &m, &err), -1);
  assert_non_null(strstr(err, ": messages nested more than 64 deep\n"));
  assert_non_null(strstr(err, "deep.onnx: error: malformed protobuf at byte "));
  free(err);
  free(buf);
}

static void test_torch_export(void **state) {
  OnnxModel *m = read_ok("torch_cnn.onnx");
  assert_string_equal(m->producer_name, "pytorch");
  assert_int_equal(onnx_model_opset(m, ""), 13);
  static const char *const ops[] = {"Conv", "Relu", "MaxPool", "Flatten", "Gemm"};
  assert_int_equal(m->n_nodes, 5);
  for (int i = 0; i < 5; i++) assert_string_equal(m->nodes[i].op_type, ops[i]);
  assert_int_equal(onnx_node_attr(&m->nodes[2], "kernel_shape")->ints[0], 2);
  expect_dims(&m->inputs[0], "N,3,8,8");
  expect_dims(&m->outputs[0], "N,10");
  const OnnxTensor *w = onnx_model_initializer(m, "5.weight");
  assert_non_null(w);
  assert_int_equal(w->dims[0], 10);
  assert_int_equal(w->dims[1], 64);
  /* the BatchNorm is folded into the convolution's weights by the exporter */
  const OnnxNode *conv = &m->nodes[0];
  assert_non_null(onnx_model_initializer(m, conv->inputs[1]));
  assert_int_equal(onnx_model_initializer(m, conv->inputs[1])->rank, 4);
  onnx_model_free(m);
}

static void test_not_onnx(void **state) {
  char dir[] = "/tmp/nnc_onnx_XXXXXX", path[128];
  assert_non_null(mkdtemp(dir));
  snprintf(path, sizeof path, "%s/text.onnx", dir);
  file_spit(path, "hello world", 11);
  expect_error_at(path, "malformed protobuf at byte 2 (ModelProto): wire type 4 (field 13), "
                        "expected 0, 1, 2 or 5 (ONNX has no groups)");
  file_spit(path, "", 0);
  expect_error_at(path, "the model has no ir_version (is it an ONNX model?)");
  unlink(path);
  expect_error_at(path, "cannot open: No such file or directory");
  expect_error_at(dir, "not a regular file (a directory)");
  rmdir(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_conv_relu_gemm),
      cmocka_unit_test(test_dtypes),
      cmocka_unit_test(test_attrs),
      cmocka_unit_test(test_external),
      cmocka_unit_test(test_external_errors),
      cmocka_unit_test(test_external_symlink),
      cmocka_unit_test(test_malformed),
      cmocka_unit_test(test_truncated),
      cmocka_unit_test(test_deep_nesting),
      cmocka_unit_test(test_torch_export),
      cmocka_unit_test(test_not_onnx),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
