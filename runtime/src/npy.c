/* npy.c — NumPy .npy reader and writer ('<f4' and '<i8', C order; formats 1.0/2.0/3.0).
 *
 * The header is a Python dict literal, e.g.
 *   {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }
 * parsed here by a small strict parser: keys in any order, each exactly once, whitespace
 * anywhere between tokens, optional trailing commas, 1-tuples written "(3,)", scalars "()".
 * Data is copied into a 64-byte aligned buffer and must be exactly the size the shape needs.
 * npy_write writes format 1.0 with the header padded so the data starts at a multiple of 64.
 * Error messages: "PATH: error: <what was wrong> (<where>, <what was expected>)". */
#include "npy.h"
#include "fileio.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NPY_MAX_HEADER 10000
#define NPY_ALIGN 64

static const unsigned char npy_magic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};

static const char *dtype_descr(int dtype) { return dtype == NPY_I64 ? "<i8" : "<f4"; }
static size_t dtype_size(int dtype) { return dtype == NPY_I64 ? 8 : 4; }

/* Python tuple notation: "()", "(3,)", "(2, 3)". */
static void shape_str(const int64_t *shape, int rank, char *buf, size_t len) {
  size_t n = (size_t)snprintf(buf, len, "(");
  for (int i = 0; i < rank && n < len; i++)
    n += (size_t)snprintf(buf + n, len - n, "%s%lld", i ? ", " : "", (long long)shape[i]);
  if (n < len) snprintf(buf + n, len - n, rank == 1 ? ",)" : ")");
}

/* Byte size of the array, or -1 (with a message) if it overflows int64. */
static int array_bytes(NncDiag *d, int dtype, int rank, const int64_t *shape, size_t *out) {
  uint64_t bytes = dtype_size(dtype);
  int overflow = 0;
  for (int i = 0; i < rank; i++) {
    uint64_t s = (uint64_t)shape[i];
    if (s == 0) { bytes = 0; overflow = 0; break; }
    if (bytes > (uint64_t)INT64_MAX / s) overflow = 1;
    else bytes *= s;
  }
  if (overflow || bytes > SIZE_MAX) {
    char sh[256];
    shape_str(shape, rank, sh, sizeof sh);
    return nnc_fail(d, "shape %s of '%s' overflows: the array would need more than 2^63 bytes", sh,
                    dtype_descr(dtype));
  }
  *out = (size_t)bytes;
  return 0;
}

static void *alloc_aligned(size_t nbytes) {
  size_t size = (nbytes + NPY_ALIGN - 1) / NPY_ALIGN * NPY_ALIGN;
  return aligned_alloc(NPY_ALIGN, size ? size : NPY_ALIGN);
}

/* ---- header dict parser ---- */

typedef struct HParser {
  const char *s;
  size_t len, pos;
  NncDiag *d;
} HParser;

typedef struct Header {
  char descr[32];
  int have_descr, have_fortran, have_shape;
  int fortran;
  int rank;
  int64_t shape[NPY_MAX_RANK];
} Header;

static int herr(HParser *p, const char *expected) {
  if (p->pos >= p->len)
    return nnc_fail(p->d, "invalid header dict: unexpected end at header byte %zu, expected %s",
                    p->pos, expected);
  unsigned char c = (unsigned char)p->s[p->pos];
  if (c >= 0x20 && c < 0x7f)
    return nnc_fail(p->d, "invalid header dict at header byte %zu: found '%c', expected %s", p->pos,
                    c, expected);
  return nnc_fail(p->d, "invalid header dict at header byte %zu: found byte 0x%02x, expected %s",
                  p->pos, c, expected);
}

static void hskip_ws(HParser *p) {
  while (p->pos < p->len &&
         (p->s[p->pos] == ' ' || p->s[p->pos] == '\t' || p->s[p->pos] == '\n' ||
          p->s[p->pos] == '\r'))
    p->pos++;
}

static int hpeek(HParser *p, char c) { return p->pos < p->len && p->s[p->pos] == c; }

static int hexpect(HParser *p, char c, const char *expected) {
  hskip_ws(p);
  if (!hpeek(p, c)) return herr(p, expected);
  p->pos++;
  return 0;
}

/* A Python string literal in ' or " without escapes, at most outlen-1 characters. */
static int hparse_string(HParser *p, char *out, size_t outlen) {
  hskip_ws(p);
  if (!hpeek(p, '\'') && !hpeek(p, '"')) return herr(p, "a quoted string");
  char q = p->s[p->pos++];
  size_t n = 0;
  while (p->pos < p->len && p->s[p->pos] != q) {
    unsigned char c = (unsigned char)p->s[p->pos];
    if (c == '\\' || c < 0x20 || c >= 0x7f) return herr(p, "a plain ASCII string character");
    if (n + 1 >= outlen) return herr(p, "a shorter string");
    out[n++] = (char)c;
    p->pos++;
  }
  if (p->pos >= p->len) return herr(p, "a closing quote");
  p->pos++;
  out[n] = '\0';
  return 0;
}

static int hparse_bool(HParser *p, int *out) {
  hskip_ws(p);
  if (p->len - p->pos >= 4 && memcmp(p->s + p->pos, "True", 4) == 0) {
    p->pos += 4;
    *out = 1;
    return 0;
  }
  if (p->len - p->pos >= 5 && memcmp(p->s + p->pos, "False", 5) == 0) {
    p->pos += 5;
    *out = 0;
    return 0;
  }
  return herr(p, "True or False for 'fortran_order'");
}

/* A non-negative decimal integer (Python 2's 'L' suffix tolerated). */
static int hparse_int(HParser *p, int64_t *out) {
  hskip_ws(p);
  if (hpeek(p, '-'))
    return nnc_fail(p->d, "invalid header dict at header byte %zu: negative shape entry, expected "
                    "a non-negative integer", p->pos);
  size_t start = p->pos;
  uint64_t v = 0;
  while (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9') {
    unsigned dgt = (unsigned)(p->s[p->pos] - '0');
    if (v > ((uint64_t)INT64_MAX - dgt) / 10)
      return nnc_fail(p->d, "invalid header dict at header byte %zu: shape entry is too large",
                      start);
    v = v * 10 + dgt;
    p->pos++;
  }
  if (p->pos == start) return herr(p, "a non-negative integer in 'shape'");
  if (p->pos - start > 1 && p->s[start] == '0') {
    p->pos = start;
    return herr(p, "an integer without leading zeros");
  }
  if (hpeek(p, 'L')) p->pos++;
  *out = (int64_t)v;
  return 0;
}

static int hparse_shape(HParser *p, Header *h) {
  if (hexpect(p, '(', "'(' starting the 'shape' tuple")) return -1;
  int comma = 0;
  h->rank = 0;
  for (;;) {
    hskip_ws(p);
    if (hpeek(p, ')')) break;
    if (h->rank == NPY_MAX_RANK)
      return nnc_fail(p->d, "invalid header dict at header byte %zu: shape has more than %d "
                      "dimensions (nnc supports at most %d)", p->pos, NPY_MAX_RANK, NPY_MAX_RANK);
    if (hparse_int(p, &h->shape[h->rank++])) return -1;
    hskip_ws(p);
    comma = hpeek(p, ',');
    if (comma) p->pos++;
    else if (!hpeek(p, ')')) return herr(p, "',' or ')' in the 'shape' tuple");
  }
  if (h->rank == 1 && !comma)
    return herr(p, "',' before ')': a 1-element shape is written (n,)");
  p->pos++;
  return 0;
}

static int hparse_value(HParser *p, const char *key, size_t keypos, Header *h) {
  int *seen = strcmp(key, "descr") == 0           ? &h->have_descr
              : strcmp(key, "fortran_order") == 0 ? &h->have_fortran
              : strcmp(key, "shape") == 0         ? &h->have_shape
                                                  : NULL;
  if (!seen)
    return nnc_fail(p->d, "invalid header dict at header byte %zu: unexpected key '%s' (expected "
                    "'descr', 'fortran_order', 'shape')", keypos, key);
  if (*seen)
    return nnc_fail(p->d, "invalid header dict at header byte %zu: duplicate key '%s'", keypos,
                    key);
  *seen = 1;
  if (seen == &h->have_fortran) return hparse_bool(p, &h->fortran);
  if (seen == &h->have_shape) return hparse_shape(p, h);
  hskip_ws(p);
  if (hpeek(p, '['))
    return nnc_fail(p->d, "structured dtype (a list 'descr' at header byte %zu) is not supported "
                    "(nnc reads '<f4' float32 and '<i8' int64)", p->pos);
  return hparse_string(p, h->descr, sizeof h->descr);
}

static int hparse_dict(HParser *p, Header *h) {
  if (hexpect(p, '{', "'{' starting the header dict")) return -1;
  for (;;) {
    hskip_ws(p);
    if (hpeek(p, '}')) break;
    char key[32];
    size_t keypos = p->pos;
    if (hparse_string(p, key, sizeof key)) return -1;
    if (hexpect(p, ':', "':' after a key")) return -1;
    if (hparse_value(p, key, keypos, h)) return -1;
    hskip_ws(p);
    if (hpeek(p, ',')) p->pos++;
    else if (!hpeek(p, '}')) return herr(p, "',' or '}' in the header dict");
  }
  p->pos++;
  hskip_ws(p);
  if (p->pos < p->len) return herr(p, "only whitespace after the header dict");
  static const char *const names[] = {"descr", "fortran_order", "shape"};
  const int have[] = {h->have_descr, h->have_fortran, h->have_shape};
  for (int i = 0; i < 3; i++)
    if (!have[i]) return nnc_fail(p->d, "invalid header dict: missing key '%s'", names[i]);
  return 0;
}

/* ---- reader ---- */

static int check_descr(NncDiag *d, const Header *h, int *dtype) {
  if (strcmp(h->descr, "<f4") == 0) { *dtype = NPY_F32; return 0; }
  if (strcmp(h->descr, "<i8") == 0) { *dtype = NPY_I64; return 0; }
  if (strcmp(h->descr, ">f4") == 0 || strcmp(h->descr, ">i8") == 0)
    return nnc_fail(d, "big-endian dtype '%s' is not supported (nnc reads little-endian '<%s'; "
                    "convert with arr.astype('<%s'))", h->descr, h->descr + 1, h->descr + 1);
  return nnc_fail(d, "dtype '%s' is not supported (nnc reads '<f4' float32 and '<i8' int64)",
                  h->descr);
}

/* Magic and version; sets the header length and where the header starts. */
static int read_preamble(NncDiag *d, const unsigned char *b, size_t len, size_t *hstart,
                         size_t *hlen) {
  size_t m = len < 6 ? len : 6;
  if (m > 0 && memcmp(b, npy_magic, m) != 0)
    return nnc_fail(d, "not a .npy file: bad magic (expected \\x93NUMPY at byte 0)");
  if (len < 10)
    return nnc_fail(d, "truncated: %zu bytes, too short for the 10-byte .npy preamble", len);
  if ((b[6] != 1 && b[6] != 2 && b[6] != 3) || b[7] != 0)
    return nnc_fail(d, "unsupported .npy format version %u.%u at byte 6 (expected 1.0, 2.0 or "
                    "3.0)", b[6], b[7]);
  *hstart = b[6] == 1 ? 10 : 12;
  if (len < *hstart)
    return nnc_fail(d, "truncated: %zu bytes, too short for the %zu-byte .npy %u.0 preamble", len,
                    *hstart, b[6]);
  *hlen = b[6] == 1 ? (size_t)b[8] | (size_t)b[9] << 8
                    : (size_t)b[8] | (size_t)b[9] << 8 | (size_t)b[10] << 16 |
                          (size_t)b[11] << 24;
  if (*hlen > NPY_MAX_HEADER)
    return nnc_fail(d, "header length %zu (at byte 8) exceeds the %d-byte limit", *hlen,
                    NPY_MAX_HEADER);
  if (*hlen > len - *hstart)
    return nnc_fail(d, "truncated: header length %zu (at byte 8) but only %zu bytes follow", *hlen,
                    len - *hstart);
  return 0;
}

static int check_data_size(NncDiag *d, const Header *h, int dtype, size_t avail, size_t need,
                           size_t at) {
  if (avail == need) return 0;
  char sh[256];
  shape_str(h->shape, h->rank, sh, sizeof sh);
  if (avail < need)
    return nnc_fail(d, "data too short: %zu bytes from byte %zu but '%s' shape %s needs %zu "
                    "(file truncated?)", avail, at, dtype_descr(dtype), sh, need);
  return nnc_fail(d, "data too long: %zu trailing bytes after the %zu bytes '%s' shape %s needs "
                  "(data starts at byte %zu)", avail - need, need, dtype_descr(dtype), sh, at);
}

int npy_read_memory(const void *buf, size_t len, const char *what, NpyArray *out, char *err,
                    size_t errlen) {
  NncDiag d = {what, err, errlen};
  const unsigned char *b = buf;
  size_t hstart = 0, hlen = 0, need = 0;
  Header h;
  int dtype = NPY_F32;
  memset(out, 0, sizeof *out);
  memset(&h, 0, sizeof h);
  if (err && errlen) err[0] = '\0';
  if (read_preamble(&d, b, len, &hstart, &hlen)) return -1;
  HParser p = {(const char *)b + hstart, hlen, 0, &d};
  if (hparse_dict(&p, &h) || check_descr(&d, &h, &dtype)) return -1;
  if (h.fortran)
    return nnc_fail(&d, "fortran_order True is not supported (nnc reads C-order arrays; save "
                    "np.ascontiguousarray(arr))");
  if (array_bytes(&d, dtype, h.rank, h.shape, &need)) return -1;
  size_t at = hstart + hlen;
  if (check_data_size(&d, &h, dtype, len - at, need, at)) return -1;
  void *data = alloc_aligned(need);
  if (!data) return nnc_fail(&d, "out of memory (%zu bytes)", need);
  if (need) memcpy(data, b + at, need);
  out->dtype = dtype;
  out->rank = h.rank;
  memcpy(out->shape, h.shape, sizeof out->shape);
  out->data = data;
  out->nbytes = need;
  return 0;
}


int npy_read(const char *path, NpyArray *out, char *err, size_t errlen) {
  NncDiag d = {path, err, errlen};
  unsigned char *buf = NULL;
  size_t len = 0;
  memset(out, 0, sizeof *out);
  char why[256];
  if (nnc_read_file(path, 0, &buf, &len, why, sizeof why)) return nnc_fail(&d, "%s", why);
  int rc = npy_read_memory(buf, len, path, out, err, errlen);
  free(buf);
  return rc;
}

void npy_free(NpyArray *a) {
  if (!a) return;
  free(a->data);
  memset(a, 0, sizeof *a);
}

/* ---- writer ---- */

/* Builds the 1.0 preamble + header, padded with spaces and '\n' to a multiple of 64. */
static size_t build_header(int dtype, int rank, const int64_t *shape, char *out, size_t cap) {
  char sh[256];
  shape_str(shape, rank, sh, sizeof sh);
  memcpy(out, npy_magic, 6);
  out[6] = 1;
  out[7] = 0;
  int n = snprintf(out + 10, cap - 10, "{'descr': '%s', 'fortran_order': False, 'shape': %s, }",
                   dtype_descr(dtype), sh);
  size_t total = 10 + (size_t)n + 1;
  size_t padded = (total + NPY_ALIGN - 1) / NPY_ALIGN * NPY_ALIGN;
  memset(out + 10 + n, ' ', padded - total);
  out[padded - 1] = '\n';
  size_t hlen = padded - 10;
  out[8] = (char)(hlen & 0xff);
  out[9] = (char)(hlen >> 8);
  return padded;
}

int npy_write(const char *path, int dtype, int rank, const int64_t *shape, const void *data,
              char *err, size_t errlen) {
  NncDiag d = {path, err, errlen};
  size_t nbytes = 0;
  if (err && errlen) err[0] = '\0';
  if (dtype != NPY_F32 && dtype != NPY_I64)
    return nnc_fail(&d, "dtype %d is not NPY_F32 or NPY_I64", dtype);
  if (rank < 0 || rank > NPY_MAX_RANK || (rank > 0 && !shape))
    return nnc_fail(&d, "rank %d is outside 0..%d", rank, NPY_MAX_RANK);
  for (int i = 0; i < rank; i++)
    if (shape[i] < 0)
      return nnc_fail(&d, "shape[%d] = %lld is negative", i, (long long)shape[i]);
  if (array_bytes(&d, dtype, rank, shape, &nbytes)) return -1;
  if (nbytes && !data) return nnc_fail(&d, "data is NULL");
  char hdr[512];
  size_t hsize = build_header(dtype, rank, shape, hdr, sizeof hdr);
  FILE *f = fopen(path, "wb");
  if (!f) return nnc_fail(&d, "cannot create: %s", strerror(errno));
  int ok = fwrite(hdr, 1, hsize, f) == hsize;
  if (ok && nbytes) ok = fwrite(data, 1, nbytes, f) == nbytes;
  if (fclose(f) != 0) ok = 0;
  if (!ok) return nnc_fail(&d, "write error: %s", strerror(errno));
  return 0;
}
