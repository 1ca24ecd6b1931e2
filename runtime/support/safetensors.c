/* safetensors.c — strict safetensors reader/writer (F32 and I64), libc only.
 *
 * Reading: the 8-byte header length is bounds-checked, the JSON header is parsed by a small
 * strict parser (objects, arrays, strings with escapes and UTF-8 validation, numbers; no
 * duplicate keys; only spaces after the top-level object), each tensor entry is validated,
 * and the data section must be covered exactly by the tensors' data_offsets.  Each tensor's
 * bytes are copied into one 64-byte aligned buffer, every tensor starting on a 64-byte
 * boundary, so `data` can be used directly as float * or int64_t *.
 * Error messages: "WHAT: error: <what was wrong> (<where>, <what was expected>)". */
#include "safetensors.h"
#include "fileio.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ST_MAX_HEADER ((uint64_t)100 * 1024 * 1024)
#define ST_MAX_DEPTH 64
#define ST_ALIGN 64

/* ---- JSON values ---- */

typedef enum { J_OBJ, J_ARR, J_STR, J_UINT, J_NUM, J_LIT } JKind;

typedef struct JVal {
  JKind kind;
  size_t pos, end;     /* byte span in the header */
  char *str;           /* J_STR: decoded, NUL-terminated */
  uint64_t u;          /* J_UINT */
  struct JVal *items;  /* J_OBJ / J_ARR */
  char **keys;         /* J_OBJ */
  size_t *keypos;      /* J_OBJ: header position of each key */
  int n, cap;
} JVal;

static void jfree(JVal *v) {
  for (int i = 0; i < v->n; i++) {
    jfree(&v->items[i]);
    if (v->keys) free(v->keys[i]);
  }
  free(v->items);
  free(v->keys);
  free(v->keypos);
  free(v->str);
  memset(v, 0, sizeof *v);
}

static const char *jkind_name(const JVal *v) {
  switch (v->kind) {
  case J_OBJ: return "an object";
  case J_ARR: return "an array";
  case J_STR: return "a string";
  case J_UINT: return "an integer";
  case J_NUM: return "a number";
  default: return "a literal";
  }
}

typedef struct JParser {
  const unsigned char *s;
  size_t len, pos;
  int depth;
  NncDiag *d;
} JParser;

static int jerr(JParser *p, const char *expected) {
  if (p->pos >= p->len)
    return nnc_fail(p->d, "invalid JSON header: unexpected end at header byte %zu, expected %s",
                    p->pos, expected);
  unsigned char c = p->s[p->pos];
  if (c >= 0x20 && c < 0x7f)
    return nnc_fail(p->d, "invalid JSON header at header byte %zu: found '%c', expected %s", p->pos,
                    c, expected);
  return nnc_fail(p->d, "invalid JSON header at header byte %zu: found byte 0x%02x, expected %s",
                  p->pos, c, expected);
}

static void jskip_ws(JParser *p) {
  while (p->pos < p->len) {
    unsigned char c = p->s[p->pos];
    if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
    p->pos++;
  }
}

static int jparse_value(JParser *p, JVal *out);

/* Length of the valid UTF-8 sequence at s[0..n), or 0 if invalid. */
static size_t utf8_seq_len(const unsigned char *s, size_t n) {
  unsigned char c = s[0];
  size_t len;
  unsigned char lo = 0x80, hi = 0xBF;
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) len = 2;
  else if (c >= 0xE0 && c <= 0xEF) len = 3;
  else if (c >= 0xF0 && c <= 0xF4) len = 4;
  else return 0;
  if (c == 0xE0) lo = 0xA0;
  if (c == 0xED) hi = 0x9F;
  if (c == 0xF0) lo = 0x90;
  if (c == 0xF4) hi = 0x8F;
  if (n < len || s[1] < lo || s[1] > hi) return 0;
  for (size_t i = 2; i < len; i++)
    if ((s[i] & 0xC0) != 0x80) return 0;
  return len;
}

static size_t utf8_put(char *o, uint32_t cp) {
  if (cp < 0x80) { o[0] = (char)cp; return 1; }
  if (cp < 0x800) {
    o[0] = (char)(0xC0 | (cp >> 6));
    o[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    o[0] = (char)(0xE0 | (cp >> 12));
    o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
  }
  o[0] = (char)(0xF0 | (cp >> 18));
  o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
  o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
  o[3] = (char)(0x80 | (cp & 0x3F));
  return 4;
}

static int hex4(JParser *p, uint32_t *out) {
  uint32_t v = 0;
  for (int i = 0; i < 4; i++) {
    if (p->pos >= p->len) return jerr(p, "4 hex digits after \\u");
    unsigned char c = p->s[p->pos];
    int h = (c >= '0' && c <= '9') ? c - '0'
            : (c >= 'a' && c <= 'f') ? c - 'a' + 10
            : (c >= 'A' && c <= 'F') ? c - 'A' + 10 : -1;
    if (h < 0) return jerr(p, "4 hex digits after \\u");
    v = v * 16 + (uint32_t)h;
    p->pos++;
  }
  *out = v;
  return 0;
}

/* \uXXXX (p->pos just after the 'u'), with surrogate pairs; writes UTF-8 into o. */
static int junicode_escape(JParser *p, char *o, size_t *olen) {
  size_t at = p->pos - 2;
  uint32_t cp = 0; /* set by hex4 (GCC cannot always see it) */
  if (hex4(p, &cp)) return -1;
  if (cp >= 0xDC00 && cp <= 0xDFFF)
    return nnc_fail(p->d, "invalid JSON header at header byte %zu: lone low surrogate \\u%04X in "
                    "string", at, (unsigned)cp);
  if (cp >= 0xD800 && cp <= 0xDBFF) {
    uint32_t lo = 0;
    if (p->pos + 1 >= p->len || p->s[p->pos] != '\\' || p->s[p->pos + 1] != 'u')
      return nnc_fail(p->d, "invalid JSON header at header byte %zu: high surrogate \\u%04X not "
                      "followed by a \\u low surrogate", at, (unsigned)cp);
    p->pos += 2;
    if (hex4(p, &lo)) return -1;
    if (lo < 0xDC00 || lo > 0xDFFF)
      return nnc_fail(p->d, "invalid JSON header at header byte %zu: high surrogate \\u%04X "
                      "followed by \\u%04X, expected a low surrogate", at, (unsigned)cp,
                      (unsigned)lo);
    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
  }
  if (cp == 0)
    return nnc_fail(p->d, "invalid JSON header at header byte %zu: \\u0000 is not allowed in "
                    "strings", at);
  *olen += utf8_put(o + *olen, cp);
  return 0;
}

static int jescape(JParser *p, char *o, size_t *olen) {
  if (p->pos >= p->len) return jerr(p, "an escape character");
  unsigned char c = p->s[p->pos++];
  const char *from = "\"\\/bfnrt", *to = "\"\\/\b\f\n\r\t";
  if (c == 'u') return junicode_escape(p, o, olen);
  const char *hit = c ? strchr(from, c) : NULL;
  if (!hit) {
    p->pos--;
    return jerr(p, "one of \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u");
  }
  o[(*olen)++] = to[hit - from];
  return 0;
}

/* Finds the closing quote of the string starting at p->pos (just after the opening quote). */
static int jstring_extent(JParser *p, size_t *endq) {
  size_t i = p->pos;
  while (i < p->len && p->s[i] != '"') i += (p->s[i] == '\\') ? 2 : 1;
  if (i >= p->len) {
    p->pos = p->len;
    return jerr(p, "a closing '\"'");
  }
  *endq = i;
  return 0;
}

static int jparse_string(JParser *p, char **out) {
  size_t endq = 0;
  p->pos++; /* opening quote */
  if (jstring_extent(p, &endq)) return -1;
  char *o = malloc(endq - p->pos + 1);
  size_t olen = 0;
  if (!o) return nnc_fail(p->d, "out of memory");
  while (p->pos < endq) {
    unsigned char c = p->s[p->pos];
    if (c == '\\') {
      p->pos++;
      if (jescape(p, o, &olen)) goto bad;
    } else if (c < 0x20) {
      nnc_fail(p->d, "invalid JSON header at header byte %zu: unescaped control character 0x%02x "
               "in string", p->pos, c);
      goto bad;
    } else {
      size_t n = utf8_seq_len(p->s + p->pos, endq - p->pos);
      if (n == 0) {
        nnc_fail(p->d, "invalid JSON header at header byte %zu: invalid UTF-8 byte 0x%02x in "
                 "string", p->pos, c);
        goto bad;
      }
      memcpy(o + olen, p->s + p->pos, n);
      olen += n;
      p->pos += n;
    }
  }
  o[olen] = '\0';
  p->pos = endq + 1;
  *out = o;
  return 0;
bad:
  free(o);
  return -1;
}

static size_t jdigits(JParser *p) {
  size_t start = p->pos;
  while (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9') p->pos++;
  return p->pos - start;
}

/* JSON number grammar; non-negative integers that fit in uint64 become J_UINT. */
static int jparse_number(JParser *p, JVal *v) {
  int plain = 1;
  if (p->s[p->pos] == '-') { p->pos++; plain = 0; }
  size_t istart = p->pos, nd = jdigits(p);
  if (nd == 0) return jerr(p, "a digit");
  if (nd > 1 && p->s[istart] == '0') {
    p->pos = istart + 1;
    return jerr(p, "no leading zeros in a number");
  }
  if (p->pos < p->len && p->s[p->pos] == '.') {
    p->pos++;
    plain = 0;
    if (jdigits(p) == 0) return jerr(p, "a digit after '.'");
  }
  if (p->pos < p->len && (p->s[p->pos] == 'e' || p->s[p->pos] == 'E')) {
    p->pos++;
    plain = 0;
    if (p->pos < p->len && (p->s[p->pos] == '+' || p->s[p->pos] == '-')) p->pos++;
    if (jdigits(p) == 0) return jerr(p, "a digit in the exponent");
  }
  v->kind = J_NUM;
  if (!plain) return 0;
  uint64_t u = 0;
  for (size_t i = istart; i < istart + nd; i++) {
    unsigned dgt = (unsigned)(p->s[i] - '0');
    if (u > (UINT64_MAX - dgt) / 10) return 0; /* too large: stays J_NUM */
    u = u * 10 + dgt;
  }
  v->kind = J_UINT;
  v->u = u;
  return 0;
}

static int jgrow(JParser *p, JVal *v, int with_keys) {
  if (v->n < v->cap) return 0;
  int cap = v->cap ? v->cap * 2 : 8;
  JVal *items = realloc(v->items, (size_t)cap * sizeof *items);
  if (!items) return nnc_fail(p->d, "out of memory");
  v->items = items;
  if (with_keys) {
    char **keys = realloc(v->keys, (size_t)cap * sizeof *keys);
    if (!keys) return nnc_fail(p->d, "out of memory");
    v->keys = keys;
    size_t *kp = realloc(v->keypos, (size_t)cap * sizeof *kp);
    if (!kp) return nnc_fail(p->d, "out of memory");
    v->keypos = kp;
  }
  v->cap = cap;
  return 0;
}

static int jparse_array(JParser *p, JVal *v) {
  v->kind = J_ARR;
  p->pos++;
  jskip_ws(p);
  if (p->pos < p->len && p->s[p->pos] == ']') { p->pos++; return 0; }
  for (;;) {
    if (jgrow(p, v, 0)) return -1;
    memset(&v->items[v->n], 0, sizeof v->items[0]);
    v->n++;
    if (jparse_value(p, &v->items[v->n - 1])) return -1;
    jskip_ws(p);
    if (p->pos < p->len && p->s[p->pos] == ',') { p->pos++; continue; }
    if (p->pos < p->len && p->s[p->pos] == ']') { p->pos++; return 0; }
    return jerr(p, "',' or ']' in array");
  }
}

typedef struct KeyRef {
  const char *key;
  size_t pos;
} KeyRef;

static int keyref_cmp(const void *a, const void *b) {
  const KeyRef *x = a, *y = b;
  int c = strcmp(x->key, y->key);
  if (c) return c;
  return (x->pos > y->pos) - (x->pos < y->pos);
}

static int jcheck_duplicates(JParser *p, const JVal *v) {
  if (v->n < 2) return 0;
  KeyRef *refs = malloc((size_t)v->n * sizeof *refs);
  if (!refs) return nnc_fail(p->d, "out of memory");
  for (int i = 0; i < v->n; i++) refs[i] = (KeyRef){v->keys[i], v->keypos[i]};
  qsort(refs, (size_t)v->n, sizeof *refs, keyref_cmp);
  int rc = 0;
  for (int i = 1; i < v->n && rc == 0; i++)
    if (strcmp(refs[i - 1].key, refs[i].key) == 0)
      rc = nnc_fail(p->d, "duplicate key '%s' at header byte %zu (first at header byte %zu; keys "
                    "must be unique)", refs[i].key, refs[i].pos, refs[i - 1].pos);
  free(refs);
  return rc;
}

static int jparse_member(JParser *p, JVal *v) {
  jskip_ws(p);
  if (p->pos >= p->len || p->s[p->pos] != '"') return jerr(p, "a '\"' starting a key");
  if (jgrow(p, v, 1)) return -1;
  int i = v->n;
  memset(&v->items[i], 0, sizeof v->items[i]);
  v->keys[i] = NULL;
  v->keypos[i] = p->pos;
  v->n++;
  if (jparse_string(p, &v->keys[i])) return -1;
  jskip_ws(p);
  if (p->pos >= p->len || p->s[p->pos] != ':') return jerr(p, "':' after key");
  p->pos++;
  return jparse_value(p, &v->items[i]);
}

static int jparse_object(JParser *p, JVal *v) {
  v->kind = J_OBJ;
  p->pos++;
  jskip_ws(p);
  if (p->pos < p->len && p->s[p->pos] == '}') { p->pos++; return 0; }
  for (;;) {
    if (jparse_member(p, v)) return -1;
    jskip_ws(p);
    if (p->pos < p->len && p->s[p->pos] == ',') { p->pos++; continue; }
    if (p->pos < p->len && p->s[p->pos] == '}') { p->pos++; break; }
    return jerr(p, "',' or '}' in object");
  }
  return jcheck_duplicates(p, v);
}

static int jparse_literal(JParser *p, JVal *v) {
  static const char *lits[] = {"true", "false", "null"};
  for (int i = 0; i < 3; i++) {
    size_t n = strlen(lits[i]);
    if (p->len - p->pos >= n && memcmp(p->s + p->pos, lits[i], n) == 0) {
      v->kind = J_LIT;
      p->pos += n;
      return 0;
    }
  }
  return jerr(p, "a JSON value");
}

static int jparse_value(JParser *p, JVal *v) {
  jskip_ws(p);
  v->pos = p->pos;
  if (p->pos >= p->len) return jerr(p, "a JSON value");
  if (++p->depth > ST_MAX_DEPTH)
    return nnc_fail(p->d, "invalid JSON header at header byte %zu: nesting deeper than %d",
                    p->pos, ST_MAX_DEPTH);
  unsigned char c = p->s[p->pos];
  int rc;
  if (c == '{') rc = jparse_object(p, v);
  else if (c == '[') rc = jparse_array(p, v);
  else if (c == '"') { v->kind = J_STR; rc = jparse_string(p, &v->str); }
  else if (c == '-' || (c >= '0' && c <= '9')) rc = jparse_number(p, v);
  else rc = jparse_literal(p, v);
  p->depth--;
  v->end = p->pos;
  return rc;
}

/* The whole header: one object, then only spaces (safetensors pads with spaces). */
static int jparse_header(const unsigned char *s, size_t len, NncDiag *d, JVal *root) {
  JParser p = {s, len, 0, 0, d};
  jskip_ws(&p);
  if (p.pos >= len || s[p.pos] != '{') return jerr(&p, "'{' starting the header object");
  if (jparse_value(&p, root)) return -1;
  while (p.pos < len && s[p.pos] == ' ') p.pos++;
  if (p.pos < len) return jerr(&p, "only space padding after the header object");
  return 0;
}

/* ---- tensor entries ---- */

typedef struct Entry {
  const char *name;
  int dtype, rank, order;
  int64_t shape[ST_MAX_RANK];
  uint64_t begin, end;
} Entry;

static const char *const known_dtypes[] = {
    "BOOL", "U8", "I8", "U16", "I16", "F16", "BF16", "U32", "I32", "F32", "U64", "I64",
    "F64", "F8_E4M3", "F8_E5M2", "F8_E8M0", "F6_E2M3", "F6_E3M2", "F4", "C64", "U4", "I4",
    NULL};

static const char *dtype_name(int dtype) { return dtype == ST_I64 ? "I64" : "F32"; }

static int parse_dtype(NncDiag *d, const char *name, const JVal *v, int *dtype) {
  if (v->kind != J_STR)
    return nnc_fail(d, "tensor '%s': \"dtype\" is %s at header byte %zu, expected a string like "
                    "\"F32\"", name, jkind_name(v), v->pos);
  if (strcmp(v->str, "F32") == 0) { *dtype = ST_F32; return 0; }
  if (strcmp(v->str, "I64") == 0) { *dtype = ST_I64; return 0; }
  for (int i = 0; known_dtypes[i]; i++)
    if (strcmp(v->str, known_dtypes[i]) == 0)
      return nnc_fail(d, "tensor '%s': dtype %s is not supported (nnc reads F32 and I64)", name,
                      v->str);
  return nnc_fail(d, "tensor '%s': unknown dtype \"%s\" at header byte %zu (nnc reads F32 and "
                  "I64)", name, v->str, v->pos);
}

/* Describes a non-integer value for messages, quoting numbers as written. */
static int fail_not_uint(NncDiag *d, const unsigned char *hdr, const char *name,
                         const char *field, int idx, const JVal *v) {
  if (v->kind == J_NUM)
    return nnc_fail(d, "tensor '%s': %s[%d] is %.*s at header byte %zu, expected a non-negative "
                    "integer", name, field, idx, (int)(v->end - v->pos), (const char *)hdr + v->pos,
                    v->pos);
  return nnc_fail(d, "tensor '%s': %s[%d] is %s at header byte %zu, expected a non-negative "
                  "integer", name, field, idx, jkind_name(v), v->pos);
}

static int parse_shape(NncDiag *d, const unsigned char *hdr, const char *name, const JVal *v,
                       Entry *e) {
  if (v->kind != J_ARR)
    return nnc_fail(d, "tensor '%s': \"shape\" is %s at header byte %zu, expected an array of "
                    "integers", name, jkind_name(v), v->pos);
  if (v->n > ST_MAX_RANK)
    return nnc_fail(d, "tensor '%s': shape has rank %d, nnc supports at most %d", name, v->n,
                    ST_MAX_RANK);
  for (int i = 0; i < v->n; i++) {
    const JVal *x = &v->items[i];
    if (x->kind != J_UINT) return fail_not_uint(d, hdr, name, "shape", i, x);
    if (x->u > (uint64_t)INT64_MAX)
      return nnc_fail(d, "tensor '%s': shape[%d] = %llu at header byte %zu is too large", name, i,
                      (unsigned long long)x->u, x->pos);
    e->shape[i] = (int64_t)x->u;
  }
  e->rank = v->n;
  return 0;
}

static int parse_offsets(NncDiag *d, const unsigned char *hdr, const char *name, const JVal *v,
                         Entry *e) {
  if (v->kind != J_ARR || v->n != 2)
    return nnc_fail(d, "tensor '%s': \"data_offsets\" at header byte %zu is %s%s, expected an "
                    "array [begin, end]", name, v->pos, jkind_name(v),
                    v->kind == J_ARR ? " of the wrong length" : "");
  for (int i = 0; i < 2; i++)
    if (v->items[i].kind != J_UINT)
      return fail_not_uint(d, hdr, name, "data_offsets", i, &v->items[i]);
  e->begin = v->items[0].u;
  e->end = v->items[1].u;
  if (e->begin > e->end)
    return nnc_fail(d, "tensor '%s': data_offsets [%llu, %llu] at header byte %zu end before they "
                    "begin", name, (unsigned long long)e->begin, (unsigned long long)e->end,
                    v->pos);
  return 0;
}

static const JVal *entry_field(const JVal *obj, const char *key) {
  for (int i = 0; i < obj->n; i++)
    if (strcmp(obj->keys[i], key) == 0) return &obj->items[i];
  return NULL;
}

static int check_entry_keys(NncDiag *d, const char *name, const JVal *obj) {
  for (int i = 0; i < obj->n; i++) {
    const char *k = obj->keys[i];
    if (strcmp(k, "dtype") && strcmp(k, "shape") && strcmp(k, "data_offsets"))
      return nnc_fail(d, "tensor '%s': unexpected key '%s' at header byte %zu (expected dtype, "
                      "shape, data_offsets)", name, k, obj->keypos[i]);
  }
  static const char *const need[] = {"dtype", "shape", "data_offsets"};
  for (int i = 0; i < 3; i++)
    if (!entry_field(obj, need[i]))
      return nnc_fail(d, "tensor '%s': missing \"%s\" (entry at header byte %zu)", name, need[i],
                      obj->pos);
  return 0;
}

static void shape_str(const int64_t *shape, int rank, char *buf, size_t len) {
  size_t n = (size_t)snprintf(buf, len, "[");
  for (int i = 0; i < rank && n < len; i++)
    n += (size_t)snprintf(buf + n, len - n, "%s%lld", i ? ", " : "", (long long)shape[i]);
  if (n < len) snprintf(buf + n, len - n, "]");
}

/* Checks end - begin == product(shape) * element size, without overflow. */
static int check_byte_count(NncDiag *d, const Entry *e) {
  uint64_t bytes = e->dtype == ST_I64 ? 8 : 4;
  char sh[256];
  shape_str(e->shape, e->rank, sh, sizeof sh);
  int overflow = 0;
  for (int i = 0; i < e->rank; i++) {
    uint64_t s = (uint64_t)e->shape[i];
    if (s == 0) { bytes = 0; overflow = 0; break; }
    if (bytes > UINT64_MAX / s) overflow = 1;
    else bytes *= s;
  }
  if (overflow)
    return nnc_fail(d, "tensor '%s': %s%s overflows the size of memory", e->name,
                    dtype_name(e->dtype), sh);
  if (e->end - e->begin != bytes)
    return nnc_fail(d, "tensor '%s': data_offsets [%llu, %llu] hold %llu bytes but %s%s needs "
                    "%llu", e->name, (unsigned long long)e->begin, (unsigned long long)e->end,
                    (unsigned long long)(e->end - e->begin), dtype_name(e->dtype), sh,
                    (unsigned long long)bytes);
  return 0;
}

static int parse_entry(NncDiag *d, const unsigned char *hdr, const char *name, const JVal *v,
                       uint64_t datalen, Entry *e) {
  if (v->kind != J_OBJ)
    return nnc_fail(d, "tensor '%s': entry at header byte %zu is %s, expected an object with "
                    "dtype, shape, data_offsets", name, v->pos, jkind_name(v));
  if (check_entry_keys(d, name, v)) return -1;
  e->name = name;
  if (parse_dtype(d, name, entry_field(v, "dtype"), &e->dtype)) return -1;
  if (parse_shape(d, hdr, name, entry_field(v, "shape"), e)) return -1;
  if (parse_offsets(d, hdr, name, entry_field(v, "data_offsets"), e)) return -1;
  if (e->end > datalen)
    return nnc_fail(d, "tensor '%s': data_offsets [%llu, %llu] extend beyond the data section "
                    "(%llu bytes)", name, (unsigned long long)e->begin,
                    (unsigned long long)e->end, (unsigned long long)datalen);
  return check_byte_count(d, e);
}

static int check_metadata(NncDiag *d, const JVal *v) {
  if (v->kind != J_OBJ)
    return nnc_fail(d, "\"__metadata__\" at header byte %zu is %s, expected an object of strings",
                    v->pos, jkind_name(v));
  for (int i = 0; i < v->n; i++)
    if (v->items[i].kind != J_STR)
      return nnc_fail(d, "\"__metadata__\" key '%s' at header byte %zu has %s value, expected a "
                      "string", v->keys[i], v->keypos[i], jkind_name(&v->items[i]));
  return 0;
}

static int entry_cmp(const void *a, const void *b) {
  const Entry *x = a, *y = b;
  if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
  if (x->end != y->end) return x->end < y->end ? -1 : 1;
  return x->order - y->order;
}

/* Sorted entries must tile [0, datalen) exactly. */
static int check_coverage(NncDiag *d, const Entry *e, int n, uint64_t datalen) {
  uint64_t at = 0;
  for (int i = 0; i < n; i++) {
    if (e[i].begin < at)
      return nnc_fail(d, "tensor '%s': data_offsets [%llu, %llu] overlap tensor '%s' (which ends "
                      "at %llu)", e[i].name, (unsigned long long)e[i].begin,
                      (unsigned long long)e[i].end, e[i - 1].name, (unsigned long long)at);
    if (e[i].begin > at)
      return nnc_fail(d, "gap in the data section: bytes [%llu, %llu) belong to no tensor (before "
                      "tensor '%s'; tensors must be contiguous)", (unsigned long long)at,
                      (unsigned long long)e[i].begin, e[i].name);
    at = e[i].end;
  }
  if (at != datalen)
    return nnc_fail(d, "data section has %llu bytes but the tensors cover only %llu (trailing "
                    "unused bytes)", (unsigned long long)datalen, (unsigned long long)at);
  return 0;
}

static size_t round_up(size_t x) { return (x + ST_ALIGN - 1) / ST_ALIGN * ST_ALIGN; }

/* Copies each tensor to its own 64-byte aligned slot of one buffer. */
static int build_file(NncDiag *d, const Entry *e, int n, const unsigned char *data, StFile *out) {
  size_t total = 0;
  for (int i = 0; i < n; i++) total += round_up((size_t)(e[i].end - e[i].begin));
  unsigned char *bytes = aligned_alloc(ST_ALIGN, total ? total : ST_ALIGN);
  StTensor *ts = calloc(n ? (size_t)n : 1, sizeof *ts);
  if (!bytes || !ts) {
    free(bytes);
    free(ts);
    return nnc_fail(d, "out of memory");
  }
  out->bytes = bytes;
  out->tensors = ts;
  size_t at = 0;
  for (int i = 0; i < n; i++, out->count++) {
    size_t nb = (size_t)(e[i].end - e[i].begin);
    ts[i].name = malloc(strlen(e[i].name) + 1);
    if (!ts[i].name) return nnc_fail(d, "out of memory");
    strcpy(ts[i].name, e[i].name);
    ts[i].dtype = e[i].dtype;
    ts[i].rank = e[i].rank;
    memcpy(ts[i].shape, e[i].shape, sizeof ts[i].shape);
    if (nb) memcpy(bytes + at, data + e[i].begin, nb);
    ts[i].data = bytes + at;
    ts[i].nbytes = nb;
    at += round_up(nb);
  }
  return 0;
}

static int collect_entries(NncDiag *d, const unsigned char *hdr, const JVal *root,
                           uint64_t datalen, Entry *ents, int *count) {
  int n = 0;
  for (int i = 0; i < root->n; i++) {
    if (strcmp(root->keys[i], "__metadata__") == 0) {
      if (check_metadata(d, &root->items[i])) return -1;
      continue;
    }
    memset(&ents[n], 0, sizeof ents[n]);
    ents[n].order = n;
    if (parse_entry(d, hdr, root->keys[i], &root->items[i], datalen, &ents[n])) return -1;
    n++;
  }
  *count = n;
  return 0;
}

static int read_tensors(NncDiag *d, const unsigned char *hdr, const JVal *root,
                        const unsigned char *data, uint64_t datalen, StFile *out) {
  Entry *ents = malloc((root->n ? (size_t)root->n : 1) * sizeof *ents);
  int n = 0, rc;
  if (!ents) return nnc_fail(d, "out of memory");
  rc = collect_entries(d, hdr, root, datalen, ents, &n);
  if (rc == 0) {
    qsort(ents, (size_t)n, sizeof *ents, entry_cmp);
    rc = check_coverage(d, ents, n, datalen);
  }
  if (rc == 0) rc = build_file(d, ents, n, data, out);
  free(ents);
  return rc;
}

int st_read_memory(const void *buf, size_t len, const char *what, StFile *out, char *err,
                   size_t errlen) {
  NncDiag d = {what, err, errlen};
  const unsigned char *b = buf;
  memset(out, 0, sizeof *out);
  if (err && errlen) err[0] = '\0';
  if (len < 8)
    return nnc_fail(&d, "file is %zu bytes, too short for the 8-byte header length", len);
  uint64_t h = 0;
  for (int i = 7; i >= 0; i--) h = (h << 8) | b[i];
  if (h > ST_MAX_HEADER)
    return nnc_fail(&d, "header length %llu (bytes 0-7) exceeds the 100 MB limit",
                    (unsigned long long)h);
  if (h > (uint64_t)(len - 8))
    return nnc_fail(&d, "header length %llu (bytes 0-7) is larger than the %zu bytes that follow "
                    "(file truncated?)", (unsigned long long)h, len - 8);
  JVal root;
  memset(&root, 0, sizeof root);
  int rc = jparse_header(b + 8, (size_t)h, &d, &root);
  if (rc == 0) rc = read_tensors(&d, b + 8, &root, b + 8 + h, (uint64_t)(len - 8 - h), out);
  jfree(&root);
  if (rc) st_free(out);
  return rc;
}


int st_read_file(const char *path, StFile *out, char *err, size_t errlen) {
  NncDiag d = {path, err, errlen};
  const unsigned char *buf = NULL;
  size_t len = 0;
  memset(out, 0, sizeof *out);
  char why[256];
  if (nnc_map_file(path, 0, &buf, &len, why, sizeof why)) return nnc_fail(&d, "%s", why);
  int rc = st_read_memory(buf, len, path, out, err, errlen);
  nnc_unmap_file(buf, len);
  return rc;
}

const StTensor *st_find(const StFile *f, const char *name) {
  for (int i = 0; f && i < f->count; i++)
    if (strcmp(f->tensors[i].name, name) == 0) return &f->tensors[i];
  return NULL;
}

void st_free(StFile *f) {
  if (!f) return;
  for (int i = 0; i < f->count; i++) free(f->tensors[i].name);
  free(f->tensors);
  free(f->bytes);
  memset(f, 0, sizeof *f);
}

/* ---- writer ---- */

typedef struct Buf {
  char *p;
  size_t n, cap;
  int oom;
} Buf;

static void buf_put(Buf *b, const char *s, size_t n) {
  if (b->oom) return;
  if (b->n + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->n + n + 1) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) { b->oom = 1; return; }
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->n, s, n);
  b->n += n;
  b->p[b->n] = '\0';
}

static void buf_printf(Buf *b, const char *fmt, ...) {
  char tmp[128];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  if (n > 0) buf_put(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

static void buf_json_string(Buf *b, const char *s) {
  buf_put(b, "\"", 1);
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') {
      char esc[2] = {'\\', (char)c};
      buf_put(b, esc, 2);
    } else if (c < 0x20) {
      buf_printf(b, "\\u%04x", c);
    } else {
      buf_put(b, (const char *)&c, 1);
    }
  }
  buf_put(b, "\"", 1);
}

static int utf8_valid(const char *s) {
  const unsigned char *u = (const unsigned char *)s;
  size_t n = strlen(s);
  for (size_t i = 0; i < n;) {
    size_t k = utf8_seq_len(u + i, n - i);
    if (!k) return 0;
    i += k;
  }
  return 1;
}

static int check_write_tensor(NncDiag *d, const StTensor *ts, int i) {
  const StTensor *t = &ts[i];
  if (!t->name || !utf8_valid(t->name) || strcmp(t->name, "__metadata__") == 0)
    return nnc_fail(d, "tensor %d: name must be valid UTF-8 and not \"__metadata__\"", i);
  for (int j = 0; j < i; j++)
    if (strcmp(ts[j].name, t->name) == 0)
      return nnc_fail(d, "tensor '%s': duplicate name (tensors %d and %d)", t->name, j, i);
  if (t->dtype != ST_F32 && t->dtype != ST_I64)
    return nnc_fail(d, "tensor '%s': dtype %d is not ST_F32 or ST_I64", t->name, t->dtype);
  if (t->rank < 0 || t->rank > ST_MAX_RANK)
    return nnc_fail(d, "tensor '%s': rank %d is outside 0..%d", t->name, t->rank, ST_MAX_RANK);
  Entry e = {.name = t->name, .dtype = t->dtype, .rank = t->rank, .begin = 0,
             .end = t->nbytes};
  for (int k = 0; k < t->rank; k++) {
    if (t->shape[k] < 0)
      return nnc_fail(d, "tensor '%s': shape[%d] = %lld is negative", t->name, k,
                      (long long)t->shape[k]);
    e.shape[k] = t->shape[k];
  }
  if (t->nbytes && !t->data) return nnc_fail(d, "tensor '%s': data is NULL", t->name);
  return check_byte_count(d, &e);
}

static void build_header(Buf *b, const StTensor *ts, int count) {
  uint64_t off = 0;
  buf_put(b, "{", 1);
  for (int i = 0; i < count; i++) {
    const StTensor *t = &ts[i];
    if (i) buf_put(b, ",", 1);
    buf_json_string(b, t->name);
    buf_printf(b, ":{\"dtype\":\"%s\",\"shape\":[", dtype_name(t->dtype));
    for (int k = 0; k < t->rank; k++) buf_printf(b, "%s%lld", k ? "," : "", (long long)t->shape[k]);
    buf_printf(b, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off,
               (unsigned long long)(off + t->nbytes));
    off += t->nbytes;
  }
  buf_put(b, "}", 1);
  while (b->n % 8) buf_put(b, " ", 1);
}

static int write_all(NncDiag *d, const char *path, const Buf *hdr, const StTensor *ts,
                     int count) {
  FILE *f = fopen(path, "wb");
  if (!f) return nnc_fail(d, "cannot create: %s", strerror(errno));
  unsigned char len8[8];
  for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)hdr->n >> (8 * i));
  int ok = fwrite(len8, 1, 8, f) == 8 && fwrite(hdr->p, 1, hdr->n, f) == hdr->n;
  for (int i = 0; ok && i < count; i++)
    if (ts[i].nbytes) ok = fwrite(ts[i].data, 1, ts[i].nbytes, f) == ts[i].nbytes;
  if (fclose(f) != 0) ok = 0;
  if (!ok) return nnc_fail(d, "write error: %s", strerror(errno));
  return 0;
}

int st_write_file(const char *path, const StTensor *tensors, int count, char *err,
                  size_t errlen) {
  NncDiag d = {path, err, errlen};
  if (err && errlen) err[0] = '\0';
  if (count < 0 || (count > 0 && !tensors)) return nnc_fail(&d, "bad tensor list");
  for (int i = 0; i < count; i++)
    if (check_write_tensor(&d, tensors, i)) return -1;
  Buf hdr = {0};
  build_header(&hdr, tensors, count);
  int rc = hdr.oom ? nnc_fail(&d, "out of memory") : write_all(&d, path, &hdr, tensors, count);
  free(hdr.p);
  return rc;
}
