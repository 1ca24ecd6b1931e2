/* test_loaders.c — unit tests for the safetensors and .npy readers/writers.
 *
 * Round trips through files in a mkdtemp directory, hand-built valid files that exercise the
 * parsers (escapes, padding, unaligned offsets, other key orders and format versions), and one
 * test per malformed input asserting rc == -1 and a message naming what was wrong.  All bad
 * inputs are generated in memory here; no fixture files are needed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <dirent.h>
#include <unistd.h>

#include "npy.h"
#include "safetensors.h"

#ifndef NNC_BINARY_DIR
#define NNC_BINARY_DIR "."
#endif
#ifndef NNC_SOURCE_DIR
#define NNC_SOURCE_DIR "."
#endif

static char tmpdir[64];

static int setup_dir(void **state) {
  (void)state;
  strcpy(tmpdir, "/tmp/nnc_loaders_XXXXXX");
  return mkdtemp(tmpdir) ? 0 : -1;
}

static int remove_dir(void **state) {
  (void)state;
  DIR *dir = opendir(tmpdir);
  if (!dir) return 0;
  struct dirent *e;
  char path[512];
  while ((e = readdir(dir)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    snprintf(path, sizeof path, "%s/%s", tmpdir, e->d_name);
    unlink(path);
  }
  closedir(dir);
  rmdir(tmpdir);
  return 0;
}

static const char *tmp_path(const char *name) {
  static char buf[256];
  snprintf(buf, sizeof buf, "%s/%s", tmpdir, name);
  return buf;
}

static unsigned char *read_all(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  assert_non_null(f);
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  rewind(f);
  unsigned char *b = malloc((size_t)n + 1);
  assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
  fclose(f);
  *len = (size_t)n;
  return b;
}

static void assert_contains(const char *msg, const char *want) {
  if (!strstr(msg, want)) fail_msg("message \"%s\"\n  does not contain \"%s\"", msg, want);
}

/* ---------------- safetensors helpers ---------------- */

/* 8-byte length `hlen_field`, then the header text, then `datalen` pattern bytes. */
static unsigned char *st_raw(uint64_t hlen_field, const char *hdr, size_t hdrlen,
                             size_t datalen, size_t *len) {
  *len = 8 + hdrlen + datalen;
  unsigned char *b = malloc(*len + 1);
  for (int i = 0; i < 8; i++) b[i] = (unsigned char)(hlen_field >> (8 * i));
  memcpy(b + 8, hdr, hdrlen);
  for (size_t i = 0; i < datalen; i++) b[8 + hdrlen + i] = (unsigned char)(i * 7 + 1);
  return b;
}

static unsigned char *st_bytes(const char *json, size_t datalen, size_t *len) {
  return st_raw(strlen(json), json, strlen(json), datalen, len);
}

static void st_expect_error_buf(const unsigned char *b, size_t len, const char *want) {
  StFile f;
  char err[512] = "";
  int rc = st_read_memory(b, len, "t.safetensors", &f, err, sizeof err);
  if (rc != -1) fail_msg("expected failure containing \"%s\", got rc=%d", want, rc);
  assert_contains(err, "t.safetensors: error: ");
  assert_contains(err, want);
  assert_null(f.tensors);
  assert_null(f.bytes);
  assert_int_equal(f.count, 0);
}

static void st_expect_error(const char *json, size_t datalen, const char *want) {
  size_t len;
  unsigned char *b = st_bytes(json, datalen, &len);
  st_expect_error_buf(b, len, want);
  free(b);
}

static void st_expect_ok(const char *json, size_t datalen, StFile *f) {
  size_t len;
  char err[512] = "";
  unsigned char *b = st_bytes(json, datalen, &len);
  int rc = st_read_memory(b, len, "t.safetensors", f, err, sizeof err);
  free(b);
  if (rc != 0) fail_msg("unexpected error: %s", err);
}

static void assert_aligned(const void *p) { assert_int_equal((uintptr_t)p % 64, 0); }

/* ---------------- safetensors: valid files ---------------- */

static void test_st_round_trip(void **state) {
  (void)state;
  float a[6] = {1, 2, 3, 4, 5, 6.5f}, s = -3.25f, r4[12];
  int64_t b[4] = {-1, 0, INT64_MAX, INT64_MIN}, z[1] = {0};
  for (int i = 0; i < 12; i++) r4[i] = (float)i * 0.5f;
  StTensor in[6] = {
      {.name = "fc.weight", .dtype = ST_F32, .rank = 2, .shape = {2, 3}, .data = a, .nbytes = 24},
      {.name = "ids", .dtype = ST_I64, .rank = 1, .shape = {4}, .data = b, .nbytes = 32},
      {.name = "scale", .dtype = ST_F32, .rank = 0, .data = &s, .nbytes = 4},
      {.name = "empty", .dtype = ST_F32, .rank = 2, .shape = {0, 3}, .data = NULL, .nbytes = 0},
      {.name = "r4", .dtype = ST_F32, .rank = 4, .shape = {2, 1, 3, 2}, .data = r4,
       .nbytes = 48},
      {.name = "q\"\\\n\xc3\xa9", .dtype = ST_I64, .rank = 2, .shape = {2, 0}, .data = z,
       .nbytes = 0},
  };
  char err[512] = "";
  const char *path = tmp_path("rt.safetensors");
  if (st_write_file(path, in, 6, err, sizeof err) != 0) fail_msg("%s", err);

  size_t len;
  unsigned char *raw = read_all(path, &len);
  uint64_t h = 0;
  for (int i = 7; i >= 0; i--) h = (h << 8) | raw[i];
  assert_int_equal(h % 8, 0);
  assert_int_equal(len, 8 + h + 24 + 32 + 4 + 48);
  free(raw);

  StFile f;
  if (st_read_file(path, &f, err, sizeof err) != 0) fail_msg("%s", err);
  assert_int_equal(f.count, 6);
  for (int i = 0; i < 6; i++) {
    const StTensor *t = st_find(&f, in[i].name);
    assert_non_null(t);
    assert_string_equal(t->name, in[i].name);
    assert_int_equal(t->dtype, in[i].dtype);
    assert_int_equal(t->rank, in[i].rank);
    for (int k = 0; k < t->rank; k++) assert_int_equal(t->shape[k], in[i].shape[k]);
    assert_int_equal(t->nbytes, in[i].nbytes);
    assert_non_null(t->data);
    assert_aligned(t->data);
    if (t->nbytes) assert_memory_equal(t->data, in[i].data, t->nbytes);
  }
  /* sorted by data offset: the zero-size tensors come right where they were written */
  assert_string_equal(f.tensors[0].name, "fc.weight");
  assert_string_equal(f.tensors[5].name, in[5].name);
  assert_null(st_find(&f, "nope"));
  const StTensor *ids = st_find(&f, "ids");
  assert_int_equal(((const int64_t *)ids->data)[2], INT64_MAX);
  st_free(&f);
  assert_null(f.tensors);
  st_free(&f); /* harmless twice */
}

static void test_st_empty_file_ok(void **state) {
  (void)state;
  StFile f;
  st_expect_ok("{}", 0, &f);
  assert_int_equal(f.count, 0);
  st_free(&f);
  char err[256];
  const char *path = tmp_path("empty.safetensors");
  assert_int_equal(st_write_file(path, NULL, 0, err, sizeof err), 0);
  assert_int_equal(st_read_file(path, &f, err, sizeof err), 0);
  assert_int_equal(f.count, 0);
  st_free(&f);
}

/* Offsets that are not multiples of the element size still give aligned data. */
static void test_st_unaligned_offsets(void **state) {
  (void)state;
  const char *json = "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                     "\"b\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[4,20]}}";
  size_t len;
  unsigned char *buf = st_bytes(json, 20, &len);
  StFile f;
  char err[512] = "";
  if (st_read_memory(buf, len, "t", &f, err, sizeof err)) fail_msg("%s", err);
  const StTensor *b = st_find(&f, "b");
  assert_non_null(b);
  assert_aligned(b->data);
  assert_memory_equal(b->data, buf + 8 + strlen(json) + 4, 16);
  st_free(&f);
  free(buf);
}

/* Whitespace, reversed key order, __metadata__, escapes, surrogate pairs, space padding. */
static void test_st_json_features(void **state) {
  (void)state;
  StFile f;
  st_expect_ok(" {\n\t\"__metadata__\" : {\"format\": \"pt\", \"x\": \"\\u00e9\\n\"},\r\n"
               "  \"caf\\u00e9\\ud83d\\ude00\\/\\\"\" : { \"data_offsets\" : [ 0 , 8 ] , "
               "\"shape\" : [ 2 ] , \"dtype\" : \"F32\" } }      ",
               8, &f);
  assert_int_equal(f.count, 1);
  assert_string_equal(f.tensors[0].name, "caf\xc3\xa9\xf0\x9f\x98\x80/\"");
  assert_int_equal(f.tensors[0].shape[0], 2);
  st_free(&f);
}

/* A zero-size tensor may sit at the very end, and sorting is by offset not by header order. */
static void test_st_out_of_order_and_zero_size(void **state) {
  (void)state;
  StFile f;
  st_expect_ok("{\"z\":{\"dtype\":\"I64\",\"shape\":[0],\"data_offsets\":[12,12]},"
               "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]},"
               "\"a\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]}}",
               12, &f);
  assert_int_equal(f.count, 3);
  assert_string_equal(f.tensors[0].name, "a");
  assert_string_equal(f.tensors[1].name, "b");
  assert_string_equal(f.tensors[2].name, "z");
  assert_int_equal(f.tensors[0].rank, 0);
  for (int i = 0; i < 3; i++) assert_aligned(f.tensors[i].data);
  st_free(&f);
}

/* ---------------- safetensors: malformed files ---------------- */

#define T1 "{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}"

static void test_st_truncated_length(void **state) {
  (void)state;
  unsigned char b[5] = {8, 0, 0, 0, 0};
  st_expect_error_buf(b, sizeof b, "too short for the 8-byte header length");
  st_expect_error_buf(b, 0, "file is 0 bytes");
}

static void test_st_header_longer_than_file(void **state) {
  (void)state;
  size_t len;
  unsigned char *b = st_raw(200, T1, strlen(T1), 8, &len);
  st_expect_error_buf(b, len, "header length 200 (bytes 0-7) is larger than the");
  free(b);
}

static void test_st_header_length_huge(void **state) {
  (void)state;
  size_t len;
  unsigned char *b = st_raw(UINT64_MAX, T1, strlen(T1), 8, &len);
  st_expect_error_buf(b, len, "exceeds the 100 MB limit");
  free(b);
  b = st_raw(UINT64_MAX - 7, T1, strlen(T1), 8, &len); /* + 8 would wrap to 0 */
  st_expect_error_buf(b, len, "exceeds the 100 MB limit");
  free(b);
}

static void test_st_missing_file(void **state) {
  (void)state;
  StFile f;
  char err[512];
  assert_int_equal(st_read_file(tmp_path("nope.safetensors"), &f, err, sizeof err), -1);
  assert_contains(err, "nope.safetensors: error: cannot open");
}

static void test_st_invalid_json(void **state) {
  (void)state;
  st_expect_error("{\"t\":{\"dtype\":\"F32\",}}", 0, "invalid JSON header at header byte 20");
  st_expect_error("{\"t\":{\"dtype\":\"F32\"}", 0, "unexpected end");
  st_expect_error("{'t':1}", 0, "found ''', expected a '\"' starting a key");
  st_expect_error("[]", 0, "expected '{' starting the header object");
  st_expect_error("", 0, "expected '{' starting the header object");
  st_expect_error("{\"t\" 1}", 0, "expected ':' after key");
  st_expect_error("{\"a\":{\"b\":\"\\x\"}}", 0, "expected one of");
  st_expect_error("{\"a\":{\"b\":\"\\u12G4\"}}", 0, "4 hex digits");
  st_expect_error("{\"a\":{\"b\":\"tab\there\"}}", 0, "unescaped control character 0x09");
  st_expect_error("{\"__metadata__\":{\"a\":tru}}", 0, "expected a JSON value");
  st_expect_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[01],\"data_offsets\":[0,4]}}", 4,
                  "no leading zeros");
}

static void test_st_trailing_garbage(void **state) {
  (void)state;
  st_expect_error("{}x", 0, "found 'x', expected only space padding");
  st_expect_error("{}  \n", 0, "expected only space padding");
  st_expect_error("{}{}", 0, "expected only space padding");
  size_t len;
  unsigned char *b = st_raw(8, "{}\0     ", 8, 0, &len);
  st_expect_error_buf(b, len, "found byte 0x00, expected only space padding");
  free(b);
}

static void test_st_deep_nesting(void **state) {
  (void)state;
  char json[600];
  int n = snprintf(json, sizeof json, "{\"__metadata__\":");
  for (int i = 0; i < 100; i++) json[n++] = '[';
  for (int i = 0; i < 100; i++) json[n++] = ']';
  strcpy(json + n, "}");
  st_expect_error(json, 0, "nesting deeper than 64");
}

static void test_st_invalid_utf8(void **state) {
  (void)state;
  st_expect_error("{\"a\xff\":{}}", 0, "invalid UTF-8 byte 0xff in string");
  st_expect_error("{\"\xc0\xaf\":{}}", 0, "invalid UTF-8 byte 0xc0");  /* overlong '/' */
  st_expect_error("{\"\xed\xa0\x80\":{}}", 0, "invalid UTF-8 byte 0xed"); /* surrogate */
  st_expect_error("{\"\xf4\x90\x80\x80\":{}}", 0, "invalid UTF-8 byte 0xf4"); /* > U+10FFFF */
  st_expect_error("{\"ab\xe2\x82\":{}}", 0, "invalid UTF-8 byte 0xe2 in string"); /* cut */
  st_expect_error("{\"\\udc00\":{}}", 0, "lone low surrogate");
  st_expect_error("{\"\\ud800x\":{}}", 0, "not followed by a \\u low surrogate");
  st_expect_error("{\"a\\u0000b\":{}}", 0, "\\u0000 is not allowed");
}

static void test_st_duplicate_key(void **state) {
  (void)state;
  st_expect_error("{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                  "\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
                  8, "duplicate key 't' at header byte 54");
  st_expect_error("{\"t\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[1],"
                  "\"data_offsets\":[0,4]}}", 4, "duplicate key 'dtype'");
  /* the same key spelled with an escape is still a duplicate */
  st_expect_error("{\"__metadata__\":{\"k\":\"1\",\"\\u006b\":\"2\"}}", 0, "duplicate key 'k'");
}

static void test_st_missing_fields(void **state) {
  (void)state;
  st_expect_error("{\"t\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
                  "tensor 't': missing \"dtype\"");
  st_expect_error("{\"t\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4,
                  "tensor 't': missing \"shape\"");
  st_expect_error("{\"t\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4,
                  "tensor 't': missing \"data_offsets\"");
  st_expect_error("{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":1}}", 4,
                  "tensor 't': unexpected key 'x'");
  st_expect_error("{\"t\":[1]}", 0, "tensor 't': entry at header byte 5 is an array");
}

static void test_st_unsupported_dtype(void **state) {
  (void)state;
  st_expect_error("{\"t\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4,
                  "tensor 't': dtype F16 is not supported (nnc reads F32 and I64)");
  st_expect_error("{\"t\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4,
                  "dtype BF16 is not supported");
  st_expect_error("{\"t\":{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[0,16]}}", 16,
                  "dtype F64 is not supported");
  st_expect_error("{\"t\":{\"dtype\":\"I32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8,
                  "dtype I32 is not supported");
  st_expect_error("{\"t\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]}}", 2,
                  "dtype U8 is not supported");
  st_expect_error("{\"t\":{\"dtype\":\"BOOL\",\"shape\":[2],\"data_offsets\":[0,2]}}", 2,
                  "dtype BOOL is not supported");
  st_expect_error("{\"t\":{\"dtype\":\"float\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8,
                  "unknown dtype \"float\"");
  st_expect_error("{\"t\":{\"dtype\":32,\"shape\":[2],\"data_offsets\":[0,8]}}", 8,
                  "\"dtype\" is an integer");
}

static void test_st_bad_shape(void **state) {
  (void)state;
  st_expect_error("{\"t\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8,
                  "tensor 't': shape[0] is -2 at header byte 29, expected a non-negative "
                  "integer");
  st_expect_error("{\"t\":{\"dtype\":\"F32\",\"shape\":[1,2.0],\"data_offsets\":[0,8]}}", 8,
                  "shape[1] is 2.0");
  st_expect_error("{\"t\":{\"dtype\":\"F32\",\"shape\":[2e0],\"data_offsets\":[0,8]}}", 8,
                  "shape[0] is 2e0");
  st_expect_error("{\"t\":{\"dtype\":\"F32\",\"shape\":[\"2\"],\"data_offsets\":[0,8]}}", 8,
                  "shape[0] is a string");
  st_expect_error("{\"t\":{\"dtype\":\"F32\",\"shape\":[null],\"data_offsets\":[0,8]}}", 8,
                  "shape[0] is a literal");
  st_expect_error("{\"t\":{\"dtype\":\"F32\",\"shape\":2,\"data_offsets\":[0,8]}}", 8,
                  "\"shape\" is an integer");
  st_expect_error("{\"t\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],"
                  "\"data_offsets\":[0,4]}}", 4, "rank 9, nnc supports at most 8");
  st_expect_error("{\"t\":{\"dtype\":\"F32\",\"shape\":[99999999999999999999],"
                  "\"data_offsets\":[0,4]}}", 4, "shape[0] is 99999999999999999999");
  st_expect_error("{\"t\":{\"dtype\":\"F32\",\"shape\":[9223372036854775808],"
                  "\"data_offsets\":[0,4]}}", 4, "too large");
  st_expect_error("{\"t\":{\"dtype\":\"I64\",\"shape\":[4294967296,4294967296],"
                  "\"data_offsets\":[0,8]}}", 8, "tensor 't': I64[4294967296, 4294967296] "
                  "overflows");
}

static void test_st_bad_offsets(void **state) {
  (void)state;
  st_expect_error("{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,-8]}}", 8,
                  "data_offsets[1] is -8");
  st_expect_error("{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}", 8,
                  "\"data_offsets\" at header byte 47 is an array of the wrong length");
  st_expect_error("{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8,
                  "data_offsets [8, 0] at header byte 47 end before they begin");
  st_expect_error("{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,1.5e1]}}", 8,
                  "data_offsets[1] is 1.5e1");
}

static void test_st_offsets_out_of_range(void **state) {
  (void)state;
  st_expect_error("{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 8,
                  "tensor 't': data_offsets [4, 12] extend beyond the data section (8 bytes)");
  st_expect_error("{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":"
                  "[18446744073709551608,18446744073709551615]}}", 8,
                  "extend beyond the data section");
}

static void test_st_gap(void **state) {
  (void)state;
  st_expect_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                  "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}", 12,
                  "gap in the data section: bytes [4, 8) belong to no tensor (before tensor "
                  "'b'");
  st_expect_error("{\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8,
                  "bytes [0, 4) belong to no tensor");
}

static void test_st_overlap(void **state) {
  (void)state;
  st_expect_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                  "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12,
                  "tensor 'b': data_offsets [4, 12] overlap tensor 'a'");
  st_expect_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                  "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8,
                  "overlap tensor");
  st_expect_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                  "\"z\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,4]}}", 8,
                  "tensor 'z': data_offsets [4, 4] overlap tensor 'a'");
}

static void test_st_byte_count_mismatch(void **state) {
  (void)state;
  st_expect_error("{\"fc.weight\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,20]}}",
                  20, "tensor 'fc.weight': data_offsets [0, 20] hold 20 bytes but F32[2, 3] "
                  "needs 24");
  st_expect_error("{\"s\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[0,4]}}", 4,
                  "hold 4 bytes but I64[] needs 8");
  st_expect_error("{\"z\":{\"dtype\":\"F32\",\"shape\":[3,0],\"data_offsets\":[0,4]}}", 4,
                  "hold 4 bytes but F32[3, 0] needs 0");
}

static void test_st_trailing_data(void **state) {
  (void)state;
  st_expect_error(T1, 9, "data section has 9 bytes but the tensors cover only 8 (trailing "
                  "unused bytes)");
  st_expect_error("{}", 3, "data section has 3 bytes but the tensors cover only 0");
}

static void test_st_bad_metadata(void **state) {
  (void)state;
  st_expect_error("{\"__metadata__\":{\"n\":1}}", 0,
                  "\"__metadata__\" key 'n' at header byte 17 has an integer value, expected a "
                  "string");
  st_expect_error("{\"__metadata__\":[\"x\"]}", 0,
                  "\"__metadata__\" at header byte 16 is an array, expected an object");
}

static void test_st_file_truncated_on_disk(void **state) {
  (void)state;
  size_t len;
  unsigned char *b = st_bytes(T1, 8, &len);
  const char *path = tmp_path("cut.safetensors");
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  fwrite(b, 1, len - 3, f);
  fclose(f);
  free(b);
  StFile st;
  char err[512];
  assert_int_equal(st_read_file(path, &st, err, sizeof err), -1);
  assert_contains(err, "cut.safetensors: error: tensor 't': data_offsets [0, 8] extend beyond "
                  "the data section (5 bytes)");
}

static void test_st_write_errors(void **state) {
  (void)state;
  float a[2] = {0};
  char err[512];
  StTensor t = {.name = "a", .dtype = ST_F32, .rank = 1, .shape = {3}, .data = a, .nbytes = 8};
  assert_int_equal(st_write_file(tmp_path("w.safetensors"), &t, 1, err, sizeof err), -1);
  assert_contains(err, "hold 8 bytes but F32[3] needs 12");
  t.shape[0] = -2;
  assert_int_equal(st_write_file(tmp_path("w.safetensors"), &t, 1, err, sizeof err), -1);
  assert_contains(err, "shape[0] = -2 is negative");
  StTensor two[2] = {{.name = "a", .dtype = ST_F32, .rank = 0, .data = a, .nbytes = 4},
                     {.name = "a", .dtype = ST_F32, .rank = 0, .data = a, .nbytes = 4}};
  assert_int_equal(st_write_file(tmp_path("w.safetensors"), two, 2, err, sizeof err), -1);
  assert_contains(err, "duplicate name");
}

/* ---------------- npy helpers ---------------- */

/* Magic, version major.minor, header length field, header text, datalen pattern bytes. */
static unsigned char *npy_raw(int major, int minor, const char *hdr, size_t datalen,
                              size_t *len) {
  size_t hl = strlen(hdr), pre = major == 1 ? 10 : 12;
  *len = pre + hl + datalen;
  unsigned char *b = malloc(*len + 1);
  memcpy(b, "\x93NUMPY", 6);
  b[6] = (unsigned char)major;
  b[7] = (unsigned char)minor;
  for (size_t i = 0; i < pre - 8; i++) b[8 + i] = (unsigned char)(hl >> (8 * i));
  memcpy(b + pre, hdr, hl);
  for (size_t i = 0; i < datalen; i++) b[pre + hl + i] = (unsigned char)(i * 3 + 5);
  return b;
}

static void npy_expect_error_buf(const unsigned char *b, size_t len, const char *want) {
  NpyArray a;
  char err[512] = "";
  int rc = npy_read_memory(b, len, "t.npy", &a, err, sizeof err);
  if (rc != -1) fail_msg("expected failure containing \"%s\", got rc=%d", want, rc);
  assert_contains(err, "t.npy: error: ");
  assert_contains(err, want);
  assert_null(a.data);
}

static void npy_expect_error(const char *hdr, size_t datalen, const char *want) {
  size_t len;
  unsigned char *b = npy_raw(1, 0, hdr, datalen, &len);
  npy_expect_error_buf(b, len, want);
  free(b);
}

static void npy_expect_ok(int major, const char *hdr, size_t datalen, NpyArray *a) {
  size_t len;
  char err[512] = "";
  unsigned char *b = npy_raw(major, 0, hdr, datalen, &len);
  int rc = npy_read_memory(b, len, "t.npy", a, err, sizeof err);
  if (rc != 0) fail_msg("unexpected error: %s", err);
  assert_aligned(a->data);
  if (a->nbytes) assert_memory_equal(a->data, b + len - datalen, a->nbytes);
  free(b);
}

/* ---------------- npy: valid files ---------------- */

static void npy_round_trip_one(const char *name, int dtype, int rank, const int64_t *shape,
                               const void *data, size_t nbytes) {
  char err[512] = "";
  const char *path = tmp_path(name);
  if (npy_write(path, dtype, rank, shape, data, err, sizeof err)) fail_msg("%s", err);
  size_t len;
  unsigned char *raw = read_all(path, &len);
  size_t hl = raw[8] | (size_t)raw[9] << 8;
  assert_int_equal(raw[6], 1);
  assert_int_equal(raw[7], 0);
  assert_int_equal((10 + hl) % 64, 0);
  assert_int_equal(raw[10 + hl - 1], '\n');
  assert_int_equal(len, 10 + hl + nbytes);
  free(raw);
  NpyArray a;
  if (npy_read(path, &a, err, sizeof err)) fail_msg("%s", err);
  assert_int_equal(a.dtype, dtype);
  assert_int_equal(a.rank, rank);
  for (int i = 0; i < rank; i++) assert_int_equal(a.shape[i], shape[i]);
  assert_int_equal(a.nbytes, nbytes);
  assert_non_null(a.data);
  assert_aligned(a.data);
  if (nbytes) assert_memory_equal(a.data, data, nbytes);
  npy_free(&a);
  assert_null(a.data);
  npy_free(&a);
}

static void test_npy_round_trip(void **state) {
  (void)state;
  float f[6] = {1, -2, 3.5f, 4, 5, 6};
  int64_t i[5] = {INT64_MIN, -1, 0, 1, INT64_MAX};
  float s = 42.0f;
  int64_t r4[24];
  for (int k = 0; k < 24; k++) r4[k] = k * 1000003LL;
  npy_round_trip_one("f32.npy", NPY_F32, 2, (int64_t[]){2, 3}, f, 24);
  npy_round_trip_one("i64.npy", NPY_I64, 1, (int64_t[]){5}, i, 40);
  npy_round_trip_one("scalar.npy", NPY_F32, 0, NULL, &s, 4);
  npy_round_trip_one("r4.npy", NPY_I64, 4, (int64_t[]){2, 3, 2, 2}, r4, 192);
  npy_round_trip_one("zero.npy", NPY_F32, 2, (int64_t[]){0, 4}, NULL, 0);
  int64_t big[8] = {1, 2, 1, 2, 1, 2, 1, 2};
  npy_round_trip_one("r8.npy", NPY_I64, 8, big, r4, 8 * 16);
}

static void test_npy_header_variants(void **state) {
  (void)state;
  NpyArray a;
  npy_expect_ok(1, "{'shape': (3,), 'fortran_order': False, 'descr': '<i8'}\n", 24, &a);
  assert_int_equal(a.dtype, NPY_I64);
  assert_int_equal(a.rank, 1);
  assert_int_equal(a.shape[0], 3);
  npy_free(&a);
  npy_expect_ok(2, "{\"descr\":\"<f4\",\"fortran_order\":False,\"shape\":( 2 , 3 , ),}   \n",
                24, &a);
  assert_int_equal(a.rank, 2);
  npy_free(&a);
  npy_expect_ok(3, "{ 'descr' : '<f4' , 'fortran_order' : False , 'shape' : () }", 4, &a);
  assert_int_equal(a.rank, 0);
  npy_free(&a);
  npy_expect_ok(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2L, 0L), }\n", 0, &a);
  assert_int_equal(a.shape[1], 0);
  npy_free(&a);
}

/* ---------------- npy: malformed files ---------------- */

#define NH(descr, fo, shape) "{'descr': '" descr "', 'fortran_order': " fo ", 'shape': " shape \
                             ", }\n"

static void test_npy_bad_magic(void **state) {
  (void)state;
  size_t len;
  unsigned char *b = npy_raw(1, 0, NH("<f4", "False", "(1,)"), 4, &len);
  b[1] = 'n';
  npy_expect_error_buf(b, len, "not a .npy file: bad magic");
  npy_expect_error_buf((const unsigned char *)"PK\3\4", 4, "bad magic");
  free(b);
}

static void test_npy_truncated(void **state) {
  (void)state;
  npy_expect_error_buf((const unsigned char *)"\x93NUM", 4, "truncated: 4 bytes");
  npy_expect_error_buf((const unsigned char *)"", 0, "truncated: 0 bytes");
  npy_expect_error_buf((const unsigned char *)"\x93NUMPY\1\0\x10", 9, "truncated: 9 bytes");
  npy_expect_error_buf((const unsigned char *)"\x93NUMPY\2\0\x10\0\0", 11,
                       "too short for the 12-byte .npy 2.0 preamble");
  size_t len;
  unsigned char *b = npy_raw(1, 0, NH("<f4", "False", "(1,)"), 4, &len);
  npy_expect_error_buf(b, 30, "truncated: header length");
  free(b);
  NpyArray a;
  char err[512];
  assert_int_equal(npy_read(tmp_path("missing.npy"), &a, err, sizeof err), -1);
  assert_contains(err, "missing.npy: error: cannot open");
}

static void test_npy_unsupported_version(void **state) {
  (void)state;
  size_t len;
  unsigned char *b = npy_raw(4, 0, NH("<f4", "False", "(1,)"), 4, &len);
  npy_expect_error_buf(b, len, "unsupported .npy format version 4.0 at byte 6 (expected 1.0, "
                       "2.0 or 3.0)");
  free(b);
  b = npy_raw(1, 1, NH("<f4", "False", "(1,)"), 4, &len);
  npy_expect_error_buf(b, len, "unsupported .npy format version 1.1");
  free(b);
}

static void test_npy_header_too_long(void **state) {
  (void)state;
  char *hdr = malloc(10100);
  strcpy(hdr, NH("<f4", "False", "(1,)"));
  size_t n = strlen(hdr);
  memset(hdr + n - 1, ' ', 10001 - n);
  strcpy(hdr + 10000, "\n");
  size_t len;
  unsigned char *b = npy_raw(2, 0, hdr, 4, &len);
  npy_expect_error_buf(b, len, "header length 10001 (at byte 8) exceeds the 10000-byte limit");
  free(b);
  free(hdr);
}

static void test_npy_bad_dict(void **state) {
  (void)state;
  npy_expect_error("{'descr': '<f4', 'shape': (1,), }\n", 4,
                   "invalid header dict: missing key 'fortran_order'");
  npy_expect_error("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': 1}\n", 4,
                   "unexpected key 'x'");
  npy_expect_error("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (1,)}",
                   4, "duplicate key 'descr'");
  npy_expect_error(NH("<f4", "False", "(3)"), 12, "a 1-element shape is written (n,)");
  npy_expect_error(NH("<f4", "false", "(3,)"), 12, "True or False");
  npy_expect_error(NH("<f4", "False", "[3]"), 12, "'(' starting the 'shape' tuple");
  npy_expect_error(NH("<f4", "False", "(-3,)"), 12, "negative shape entry");
  npy_expect_error(NH("<f4", "False", "(3.0,)"), 12, "found '.', expected ',' or ')'");
  npy_expect_error(NH("<f4", "False", "(1,1,1,1,1,1,1,1,1)"), 4, "more than 8 dimensions");
  npy_expect_error("{'descr': '<f4', 'fortran_order': False, 'shape': (1,)} x\n", 4,
                   "found 'x', expected only whitespace after the header dict");
  npy_expect_error("{descr: '<f4'}", 4, "expected a quoted string");
  npy_expect_error("{'descr': '<f4', 'fortran_order': False, 'shape': (1,)", 4,
                   "unexpected end");
  npy_expect_error("{'descr': '<f4' 'fortran_order': False}", 4, "expected ',' or '}'");
  npy_expect_error("", 4, "expected '{' starting the header dict");
}

static void test_npy_wrong_dtype(void **state) {
  (void)state;
  npy_expect_error(NH("<f8", "False", "(1,)"), 8,
                   "dtype '<f8' is not supported (nnc reads '<f4' float32 and '<i8' int64)");
  npy_expect_error(NH(">f4", "False", "(1,)"), 4, "big-endian dtype '>f4' is not supported");
  npy_expect_error(NH(">i8", "False", "(1,)"), 8, "big-endian dtype '>i8'");
  npy_expect_error(NH("|u1", "False", "(1,)"), 1, "dtype '|u1' is not supported");
  npy_expect_error(NH("|f4", "False", "(1,)"), 4, "dtype '|f4' is not supported");
  npy_expect_error("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }\n", 4,
                   "structured dtype");
}

static void test_npy_fortran_order(void **state) {
  (void)state;
  npy_expect_error(NH("<f4", "True", "(2, 3)"), 24, "fortran_order True is not supported");
}

static void test_npy_data_size(void **state) {
  (void)state;
  npy_expect_error(NH("<f4", "False", "(2, 3)"), 20,
                   "data too short: 20 bytes from byte 70 but '<f4' shape (2, 3) needs 24");
  npy_expect_error(NH("<i8", "False", "(3,)"), 25,
                   "data too long: 1 trailing bytes after the 24 bytes '<i8' shape (3,) needs");
  npy_expect_error(NH("<f4", "False", "()"), 0, "data too short: 0 bytes");
}

static void test_npy_shape_overflow(void **state) {
  (void)state;
  npy_expect_error(NH("<f4", "False", "(4294967296, 4294967296)"), 0,
                   "shape (4294967296, 4294967296) of '<f4' overflows");
  npy_expect_error(NH("<i8", "False", "(2305843009213693952,)"), 0, "overflows");
  npy_expect_error(NH("<i8", "False", "(99999999999999999999,)"), 0, "too large");
}

static void test_npy_write_errors(void **state) {
  (void)state;
  char err[512];
  float x = 0;
  assert_int_equal(npy_write(tmp_path("w.npy"), 7, 0, NULL, &x, err, sizeof err), -1);
  assert_contains(err, "w.npy: error: dtype 7");
  assert_int_equal(npy_write(tmp_path("w.npy"), NPY_F32, 1, (int64_t[]){-1}, &x, err,
                             sizeof err), -1);
  assert_contains(err, "shape[0] = -1 is negative");
  assert_int_equal(npy_write(tmp_path("w.npy"), NPY_F32, 9, (int64_t[9]){0}, &x, err,
                             sizeof err), -1);
  assert_contains(err, "rank 9");
  assert_int_equal(npy_write("/nonexistent-dir/x.npy", NPY_F32, 0, NULL, &x, err, sizeof err),
                   -1);
  assert_contains(err, "cannot create");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_st_round_trip),
      cmocka_unit_test(test_st_empty_file_ok),
      cmocka_unit_test(test_st_unaligned_offsets),
      cmocka_unit_test(test_st_json_features),
      cmocka_unit_test(test_st_out_of_order_and_zero_size),
      cmocka_unit_test(test_st_truncated_length),
      cmocka_unit_test(test_st_header_longer_than_file),
      cmocka_unit_test(test_st_header_length_huge),
      cmocka_unit_test(test_st_missing_file),
      cmocka_unit_test(test_st_invalid_json),
      cmocka_unit_test(test_st_trailing_garbage),
      cmocka_unit_test(test_st_deep_nesting),
      cmocka_unit_test(test_st_invalid_utf8),
      cmocka_unit_test(test_st_duplicate_key),
      cmocka_unit_test(test_st_missing_fields),
      cmocka_unit_test(test_st_unsupported_dtype),
      cmocka_unit_test(test_st_bad_shape),
      cmocka_unit_test(test_st_bad_offsets),
      cmocka_unit_test(test_st_offsets_out_of_range),
      cmocka_unit_test(test_st_gap),
      cmocka_unit_test(test_st_overlap),
      cmocka_unit_test(test_st_byte_count_mismatch),
      cmocka_unit_test(test_st_trailing_data),
      cmocka_unit_test(test_st_bad_metadata),
      cmocka_unit_test(test_st_file_truncated_on_disk),
      cmocka_unit_test(test_st_write_errors),
      cmocka_unit_test(test_npy_round_trip),
      cmocka_unit_test(test_npy_header_variants),
      cmocka_unit_test(test_npy_bad_magic),
      cmocka_unit_test(test_npy_truncated),
      cmocka_unit_test(test_npy_unsupported_version),
      cmocka_unit_test(test_npy_header_too_long),
      cmocka_unit_test(test_npy_bad_dict),
      cmocka_unit_test(test_npy_wrong_dtype),
      cmocka_unit_test(test_npy_fortran_order),
      cmocka_unit_test(test_npy_data_size),
      cmocka_unit_test(test_npy_shape_overflow),
      cmocka_unit_test(test_npy_write_errors),
  };
  return cmocka_run_group_tests(tests, setup_dir, remove_dir);
}
