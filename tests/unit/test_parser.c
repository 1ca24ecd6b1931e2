/* test_parser.c — the front end (dsl/): the examples parse, precedence and shapes through
 * ast_dump, exact diagnostics for bad programs, and random bytes never crash the parser. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ast.h"
#include "diag.h"

#ifndef NNC_SOURCE_DIR
#define NNC_SOURCE_DIR "."
#endif

/* Parses `len` bytes; returns the dump (or the diagnostic) as a malloc'd string, and
 * whether it parsed in *ok. */
static char *parse_n(const char *text, size_t len, int *ok) {
  SrcFile f = {"t.nn", text, len};
  Diag d;
  diag_init(&d, &f);
  Arena *a = arena_new();
  Node *prog = parse_program(a, &f, &d);
  char *buf = NULL;
  size_t size = 0;
  FILE *out = open_memstream(&buf, &size);
  if (prog) ast_dump(out, prog);
  else fputs(d.text, out);
  fclose(out);
  arena_free(a);
  *ok = prog != NULL;
  return buf;
}

static char *parse_str(const char *text, int *ok) { return parse_n(text, strlen(text), ok); }

/* The dump of the right-hand side of `x = EXPR`, without the (program (assign x wrapper. */
static char *dump_expr(const char *expr) {
  char src[512];
  snprintf(src, sizeof src, "x = %s\n", expr);
  int ok;
  char *out = parse_str(src, &ok);
  if (!ok) fail_msg("did not parse: %s\n%s", expr, out);
  const char *prefix = "(program\n  (assign x\n";
  assert_int_equal(strncmp(out, prefix, strlen(prefix)), 0);
  /* unindent by 4 and drop the two closing parens of the wrapper */
  char *res = malloc(strlen(out) + 1), *w = res;
  for (const char *line = out + strlen(prefix); *line;) {
    const char *nl = strchr(line, '\n');
    size_t n = (size_t)(nl - line);
    memcpy(w, line + 4, n - 4);
    w += n - 4;
    *w++ = '\n';
    line = nl + 1;
  }
  w -= 3; /* "))\n" */
  strcpy(w, "\n");
  free(out);
  return res;
}

static void check_expr(const char *expr, const char *want) {
  char *got = dump_expr(expr);
  if (strcmp(got, want) != 0) fail_msg("%s\n--- got ---\n%s--- want ---\n%s", expr, got, want);
  free(got);
}

static void check_error(const char *src, const char *want) {
  int ok;
  char *got = parse_str(src, &ok);
  if (ok || strcmp(got, want) != 0)
    fail_msg("source:\n%s\n--- got ---\n%s--- want ---\n%s", src, got, want);
  free(got);
}

static char *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) fail_msg("cannot open %s", path);
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *buf = malloc((size_t)n + 1);
  assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
  buf[n] = '\0';
  fclose(f);
  *len = (size_t)n;
  return buf;
}

/* ---- examples ---- */

static void parse_example(const char *name, int n_decls) {
  char path[1024];
  snprintf(path, sizeof path, "%s/examples/%s", NNC_SOURCE_DIR, name);
  size_t len;
  char *text = read_file(path, &len);
  SrcFile f = {path, text, len};
  Diag d;
  diag_init(&d, &f);
  Arena *a = arena_new();
  Node *prog = parse_program(a, &f, &d);
  if (!prog) fail_msg("%s", d.text);
  assert_int_equal(prog->kind, N_PROGRAM);
  assert_int_equal(prog->body.len, n_decls);
  assert_false(d.has_error);
  arena_free(a);
  free(text);
}

static void test_realnvp(void **state) {
  (void)state;
  parse_example("realnvp.nn", 8); /* 3 const, module, layers, 3 exports */
}

static void test_cfr(void **state) {
  (void)state;
  parse_example("cfr.nn", 8); /* 3 const, 3 components, 2 exports */
}

/* The example's structure, checked on one declaration through the dump. */
static void test_export_shape(void **state) {
  (void)state;
  int ok;
  char *got = parse_str("export f(x: f32[N, 2], k = 3) -> y: f32[] {\n"
                        "  for l in ls { y, z = l(x) }\n"
                        "  if a { return } else if b { g() } else { return 1, 2 }\n"
                        "}\n",
                        &ok);
  const char *want = "(program\n"
                     "  (export f\n"
                     "    (params\n"
                     "      (param x\n"
                     "        (type f32\n"
                     "          (name N)\n"
                     "          (int 2)))\n"
                     "      (param k\n"
                     "        (int 3)))\n"
                     "    (outs\n"
                     "      (param y\n"
                     "        (type f32)))\n"
                     "    (body\n"
                     "      (for l\n"
                     "        (name ls)\n"
                     "        (body\n"
                     "          (assign y z\n"
                     "            (call\n"
                     "              (name l)\n"
                     "              (name x)))))\n"
                     "      (if\n"
                     "        (name a)\n"
                     "        (body\n"
                     "          (return))\n"
                     "        (else\n"
                     "          (if\n"
                     "            (name b)\n"
                     "            (body\n"
                     "              (expr\n"
                     "                (call\n"
                     "                  (name g))))\n"
                     "            (else\n"
                     "              (return\n"
                     "                (int 1)\n"
                     "                (int 2)))))))))\n";
  assert_true(ok);
  assert_string_equal(got, want);
  free(got);
}

static void test_module_and_separators(void **state) {
  (void)state;
  int ok;
  char *got = parse_str("\n# c\nconst A = 1; const B = 2.5e1  # x\n\n"
                        "module M(a, b: i64[] = 2) {\n\n  w = L(a,\n    b,)\n"
                        "  const C = \"s\\\"\\n\"\n  fn f() { }\n}\n",
                        &ok);
  const char *want = "(program\n"
                     "  (const A\n"
                     "    (int 1))\n"
                     "  (const B\n"
                     "    (float 25.0))\n"
                     "  (module M\n"
                     "    (params\n"
                     "      (param a)\n"
                     "      (param b\n"
                     "        (type i64)\n"
                     "        (int 2)))\n"
                     "    (body\n"
                     "      (assign w\n"
                     "        (call\n"
                     "          (name L)\n"
                     "          (name a)\n"
                     "          (name b)))\n"
                     "      (const C\n"
                     "        (string \"s\\\"\\n\"))\n"
                     "      (fn f\n"
                     "        (params)\n"
                     "        (body)))))\n";
  assert_true(ok);
  assert_string_equal(got, want);
  free(got);
}

/* ---- precedence ---- */

static void test_unary_and_power(void **state) {
  (void)state;
  check_expr("-x**2", "(unary -\n  (binary **\n    (name x)\n    (int 2)))\n");
  check_expr("2**-1", "(binary **\n  (int 2)\n  (unary -\n    (int 1)))\n");
  check_expr("a**b**c", "(binary **\n  (name a)\n  (binary **\n    (name b)\n    (name c)))\n");
  check_expr("!a && b", "(binary &&\n  (unary !\n    (name a))\n  (name b))\n");
  check_expr("-a.b(c)[0]",
             "(unary -\n  (index\n    (call\n      (member b\n        (name a))\n"
             "      (name c))\n    (int 0)))\n");
}

static void test_binary_levels(void **state) {
  (void)state;
  check_expr("a + b * c @ d",
             "(binary +\n  (name a)\n  (binary @\n    (binary *\n      (name b)\n"
             "      (name c))\n    (name d)))\n");
  check_expr("a - b - c", "(binary -\n  (binary -\n    (name a)\n    (name b))\n  (name c))\n");
  check_expr("a || b && c == d < e + 1",
             "(binary ||\n  (name a)\n  (binary &&\n    (name b)\n    (binary ==\n"
             "      (name c)\n      (binary <\n        (name d)\n        (binary +\n"
             "          (name e)\n          (int 1))))))\n");
  check_expr("a % 2 != 0", "(binary !=\n  (binary %\n    (name a)\n    (int 2))\n  (int 0))\n");
  check_expr("(a + b) / c", "(binary /\n  (binary +\n    (name a)\n    (name b))\n  (name c))\n");
}

static void test_ternary_and_range(void **state) {
  (void)state;
  check_expr("c ? a : b ? d : e",
             "(ternary\n  (name c)\n  (name a)\n  (ternary\n    (name b)\n    (name d)\n"
             "    (name e)))\n");
  check_expr("0..n + 1", "(range\n  (int 0)\n  (binary +\n    (name n)\n    (int 1)))\n");
  check_expr("c ? 0..1 : 1..2",
             "(ternary\n  (name c)\n  (range\n    (int 0)\n    (int 1))\n  (range\n"
             "    (int 1)\n    (int 2)))\n");
}

static void test_postfix_forms(void **state) {
  (void)state;
  check_expr("x[i, a:b, :, ::2]",
             "(index\n  (name x)\n  (name i)\n  (slice\n    (name a)\n    (name b)\n    _)\n"
             "  (slice\n    _\n    _\n    _)\n  (slice\n    _\n    _\n    (int 2)))\n");
  check_expr("f(a, b, axis=1, k = -2,)",
             "(call\n  (name f)\n  (name a)\n  (name b)\n  (kwarg axis\n    (int 1))\n"
             "  (kwarg k\n    (unary -\n      (int 2))))\n");
  check_expr("[f(i) for i in 0..3]",
             "(comprehension i\n  (call\n    (name f)\n    (name i))\n  (range\n    (int 0)\n"
             "    (int 3)))\n");
  check_expr("[1, .5, 1e-3, 2.5E+4, true, false,]",
             "(list\n  (int 1)\n  (float 0.5)\n  (float 0.001)\n  (float 25000.0)\n"
             "  (bool true)\n  (bool false))\n");
  check_expr("[]", "(list)\n");
  check_expr("[\n  1,\n  2\n]", "(list\n  (int 1)\n  (int 2))\n");
}

static void test_locations(void **state) {
  (void)state;
  SrcFile f = {"t.nn", "x = a +\tb\n", 10};
  Diag d;
  diag_init(&d, &f);
  Arena *a = arena_new();
  Node *prog = parse_program(a, &f, &d);
  assert_non_null(prog);
  Node *as = prog->body.items[0], *bin = as->rhs;
  assert_int_equal(as->loc.line, 1);
  assert_int_equal(as->loc.col, 1);
  assert_int_equal(bin->kind, N_BINARY);
  assert_int_equal(bin->op, '+');
  assert_int_equal(bin->loc.col, 7); /* the operator */
  assert_int_equal(bin->rhs->loc.col, 9);
  arena_free(a);
}

/* ---- diagnostics: the exact three lines ---- */

static void test_error_unexpected_token(void **state) {
  (void)state;
  check_error("x = )\n", "t.nn:1:5: error: unexpected ')', expected expression\nx = )\n    ^\n");
  check_error("const A = 1\nx = 1 2\n",
              "t.nn:2:7: error: unexpected integer '2', expected newline\nx = 1 2\n      ^\n");
  check_error("x = a == b == c\n",
              "t.nn:1:12: error: unexpected '==', expected newline\nx = a == b == c\n"
              "           ^\n");
  check_error("fn f() {\n\tx = (1 +\t)\n}\n",
              "t.nn:2:11: error: unexpected ')', expected expression\n\tx = (1 +\t)\n"
              "\t        \t^\n");
  check_error("export f(x) { }\n",
              "t.nn:1:13: error: unexpected '{', expected '->'\nexport f(x) { }\n"
              "            ^\n");
  check_error("module M() {\n  for i in x { }\n}\n",
              "t.nn:2:3: error: unexpected 'for', expected identifier, 'const', 'fn' or '}'\n"
              "  for i in x { }\n  ^\n");
  check_error("fn g() {\n  if a { }\n  else { }\n}\n",
              "t.nn:3:3: error: unexpected 'else' ('else' must be on the same line as '}')\n"
              "  else { }\n  ^\n");
}

static void test_error_missing_brace(void **state) {
  (void)state;
  check_error("fn f() {\n  x = 1\n",
              "t.nn:2:8: error: unexpected end of file, expected '}'\n  x = 1\n       ^\n");
}

static void test_error_missing_paren(void **state) {
  (void)state;
  check_error("x = f(a, b\ny = 2\n",
              "t.nn:2:1: error: unexpected identifier 'y', expected ')', '=' or ','\ny = 2\n^\n");
  check_error("x = (1 + 2", "t.nn:1:11: error: unexpected end of file, expected ')'\n"
                            "x = (1 + 2\n          ^\n");
}

static void test_error_unterminated_string(void **state) {
  (void)state;
  check_error("x = 1\ny = \"abc\nz = 2\n",
              "t.nn:2:5: error: unterminated string\ny = \"abc\n    ^\n");
  check_error("y = \"a\\q\"\n", "t.nn:1:7: error: unknown escape sequence in string\n"
                                "y = \"a\\q\"\n      ^\n");
}

static void test_error_bad_character(void **state) {
  (void)state;
  check_error("x = 1 $ 2\n", "t.nn:1:7: error: unexpected character '$'\nx = 1 $ 2\n      ^\n");
  /* the caret skips UTF-8 continuation bytes: one column per character */
  check_error("s = \"\xc3\xa9\" + \xe2\x82\xac\n",
              "t.nn:1:12: error: unexpected character '\\xe2'\n"
              "s = \"\xc3\xa9\" + \xe2\x82\xac\n          ^\n");
}

/* Bytes that would not print as themselves are shown as \xNN, in the source line as in the
 * message, and the caret counts four columns for each */
static void test_error_escaped_bytes(void **state) {
  (void)state;
  check_error("x = 1 \xff 2\n", "t.nn:1:7: error: unexpected character '\\xff'\nx = 1 \\xff 2\n      ^\n");
  check_error("x = \"\xff\xfe\" $\n",
              "t.nn:1:10: error: unexpected character '$'\nx = \"\\xff\\xfe\" $\n               ^\n");
  check_error("x = \"\xe2\x82\" + \xc3\xa9\n", /* a cut UTF-8 sequence, then a valid one */
              "t.nn:1:12: error: unexpected character '\\xc3'\nx = \"\\xe2\\x82\" + \xc3\xa9\n"
              "                 ^\n");
  /* beyond the first 4 KiB a control byte is a character the lexer rejects */
  char big[4200];
  memset(big, '#', 4100);
  big[4100] = '\n';
  strcpy(big + 4101, "x = \x02\n");
  int ok;
  char *got = parse_str(big, &ok);
  assert_false(ok);
  assert_string_equal(got, "t.nn:2:5: error: unexpected character '\\x02'\nx = \\x02\n    ^\n");
  free(got);
}

/* A binary file (a .so, .onnx, .safetensors given for a .nn) is said to be one */
static void check_binary(const char *bytes, size_t len, const char *want) {
  int ok;
  char *got = parse_n(bytes, len, &ok);
  assert_false(ok);
  assert_string_equal(got, want);
  free(got);
}

static void test_error_binary_file(void **state) {
  (void)state;
  check_binary("\x7f" "ELF\x02\x01\x01\0\0\0", 10,
               "t.nn: error: not a .nn source file: byte 0 is 0x7f, a control byte (binary data?); "
               "a .nn model is UTF-8 text\n");
  check_binary("\x08\x07\x12\x07pytorch\x1a\x03", 13, /* an ONNX protobuf */
               "t.nn: error: not a .nn source file: byte 0 is 0x08, a control byte (binary data?); "
               "a .nn model is UTF-8 text\n");
  check_binary("\x89PNG\r\n", 6,
               "t.nn: error: not a .nn source file: byte 0 (0x89) is not UTF-8 (binary data?); a .nn "
               "model is UTF-8 text\n");
  check_binary("x = 1\0\n", 7,
               "t.nn: error: not a .nn source file: byte 5 is 0x00, a control byte (binary data?); "
               "a .nn model is UTF-8 text\n");
}

/* assert(...) stands alone at top level and in modules (a compile-time check); other
 * statements there are syntax errors */
static void test_top_level_assert(void **state) {
  (void)state;
  int ok;
  char *got = parse_str("const D = 4\nassert(D > 2, \"m\")\nmodule M(d) {\n  assert(d > 0)\n}\n", &ok);
  assert_true(ok);
  assert_string_equal(got, "(program\n  (const D\n    (int 4))\n  (expr\n    (call\n      (name assert)\n"
                           "      (binary >\n        (name D)\n        (int 2))\n      (string \"m\")))\n"
                           "  (module M\n    (params\n      (param d))\n    (body\n      (expr\n"
                           "        (call\n          (name assert)\n          (binary >\n"
                           "            (name d)\n            (int 0)))))))\n");
  free(got);
  check_error("const D = 4\nD + 1\n", "t.nn:2:3: error: unexpected '+', expected '(' or '='\nD + 1\n  ^\n");
}

/* `scan` is a keyword (run-time loops): it cannot name a variable */
static void test_error_reserved_scan(void **state) {
  (void)state;
  check_error("fn f() {\n  scan = 1\n}\n",
              "t.nn:2:8: error: unexpected '=', expected identifier\n  scan = 1\n       ^\n");
}

static void test_error_bad_number(void **state) {
  (void)state;
  check_error("const A = 99999999999999999999\n",
              "t.nn:1:11: error: integer literal out of range\n"
              "const A = 99999999999999999999\n          ^\n");
  check_error("const A = 1e999\n",
              "t.nn:1:11: error: float literal out of range\nconst A = 1e999\n          ^\n");
  check_error("const A = 12abc\n",
              "t.nn:1:11: error: invalid number '12abc'\nconst A = 12abc\n          ^\n");
}

static void test_error_semantic_checks(void **state) {
  (void)state;
  check_error("export f(x: f64[N]) -> y: f32[] { }\n",
              "t.nn:1:13: error: unknown type 'f64', expected 'f32' or 'i64'\n"
              "export f(x: f64[N]) -> y: f32[] { }\n            ^\n");
  check_error("x = f(a=1, 2)\n", "t.nn:1:12: error: positional argument after keyword argument\n"
                                 "x = f(a=1, 2)\n           ^\n");
}

static char *repeat(const char *pre, const char *unit, int n, const char *post) {
  size_t lu = strlen(unit), lp = strlen(pre);
  char *s = malloc(lp + lu * (size_t)n + strlen(post) + 1), *w = s;
  memcpy(w, pre, lp);
  w += lp;
  for (int i = 0; i < n; i++, w += lu) memcpy(w, unit, lu);
  strcpy(w, post);
  return s;
}

static void test_error_depth_limit(void **state) {
  (void)state;
  char *src = repeat("x = ", "(", 201, "1");
  int ok;
  char *got = parse_str(src, &ok);
  assert_false(ok);
  const char *want = "t.nn:1:205: error: too many nested brackets (limit is 200)\n";
  assert_int_equal(strncmp(got, want, strlen(want)), 0);
  free(got);
  free(src);

  src = repeat("x = ", "[", 200, "");
  char *closed = repeat(src, "]", 200, "\n");
  got = parse_str(closed, &ok); /* 200 levels are fine */
  assert_true(ok);
  free(got);
  free(closed);
  free(src);

  /* operator chains are limited too: later stages recurse over the tree */
  const char *units[] = {"+1", "**2", "- ", "? 1 : c"};
  const char *pres[] = {"x = 1", "x = 2", "x = ", "x = c"};
  const char *posts[] = {"\n", "\n", "1\n", "? 1 : 2\n"};
  for (int i = 0; i < 4; i++) {
    src = repeat(pres[i], units[i], 100000, posts[i]);
    got = parse_str(src, &ok);
    assert_false(ok);
    assert_non_null(strstr(got, "error: expression too deeply nested\n"));
    free(got);
    free(src);
  }
  src = repeat("x = 1", "+1", 900, "\n");
  got = parse_str(src, &ok);
  assert_true(ok);
  free(got);
  free(src);
}

/* A list literal holds at most a million items (memory a source file may cost). */
static void test_error_list_limit(void **state) {
  (void)state;
  int ok;
  char *src = repeat("L = [", "1, ", 1000000, "1]\n");
  char *got = parse_str(src, &ok);
  assert_false(ok);
  assert_non_null(strstr(got, "error: a list of more than 1000000 items (limit)"));
  free(got);
  free(src);
  src = repeat("L = [1", ", 1", 999999, "]\n"); /* a million items are fine */
  got = parse_str(src, &ok);
  assert_true(ok);
  free(got);
  free(src);
}

/* ---- robustness: random and mutated inputs never crash, and always answer ---- */

static uint64_t rng_state = 0x9e3779b97f4a7c15u;
static uint32_t rng(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return (uint32_t)(rng_state >> 16);
}

static void feed(const char *buf, size_t len) {
  SrcFile f = {"fuzz.nn", buf, len};
  Diag d;
  diag_init(&d, &f);
  Arena *a = arena_new();
  Node *prog = parse_program(a, &f, &d);
  if (prog) {
    FILE *null = fopen("/dev/null", "w");
    ast_dump(null, prog);
    fclose(null);
    assert_false(d.has_error);
  } else {
    assert_true(d.has_error);
    size_t n = strlen(d.text);
    assert_true(n > 0 && d.text[n - 1] == '\n');
    /* whatever the input, the diagnostic is printable UTF-8 text */
    const unsigned char *u = (const unsigned char *)d.text;
    for (size_t i = 0, k; i < n; i += k) {
      k = utf8_char_len(u + i, n - i);
      if (!k || (u[i] < 0x20 && u[i] != '\n' && u[i] != '\t') || u[i] == 0x7f)
        fail_msg("unprintable byte 0x%02x at %zu of the diagnostic:\n%s", u[i], i, d.text);
    }
  }
  arena_free(a);
}

static void test_fuzz(void **state) {
  (void)state;
  size_t len;
  char path[1024];
  snprintf(path, sizeof path, "%s/examples/realnvp.nn", NNC_SOURCE_DIR);
  char *seed = read_file(path, &len);
  static const char *frags[] = {"(", ")", "[", "]", "{", "}", "\n", ",", ":", "=", "..",
                                "**", "-", "?", "\"", "#", "fn ", "for ", "scan", "1e",
                                ".5", "\t", "\\", "->", "f32[", "export "};
  char *buf = malloc(len + 4096);
  for (int iter = 0; iter < 2000; iter++) {
    size_t n;
    if (iter % 4 == 0) { /* random bytes, including NUL and invalid UTF-8 */
      n = rng() % 512;
      for (size_t i = 0; i < n; i++) buf[i] = (char)rng();
    } else { /* the example with a few bytes or fragments changed */
      memcpy(buf, seed, len);
      n = len;
      int edits = 1 + (int)(rng() % 6);
      for (int e = 0; e < edits; e++) {
        size_t at = rng() % (n + 1);
        switch (rng() % 3) {
        case 0: /* overwrite a byte */
          if (at < n) buf[at] = (char)rng();
          break;
        case 1: /* delete a span */
          if (at < n) {
            size_t k = rng() % 16;
            if (k > n - at) k = n - at;
            memmove(buf + at, buf + at + k, n - at - k);
            n -= k;
          }
          break;
        default: { /* insert a fragment */
          const char *fr = frags[rng() % (sizeof frags / sizeof *frags)];
          size_t k = strlen(fr);
          if (n + k > len + 4000) break;
          memmove(buf + at + k, buf + at, n - at);
          memcpy(buf + at, fr, k);
          n += k;
        }
        }
      }
    }
    feed(buf, n);
  }
  feed("", 0);
  feed("\0\0\0", 3);
  feed("x = \"\0\"\n", 8);
  free(buf);
  free(seed);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_realnvp),
      cmocka_unit_test(test_cfr),
      cmocka_unit_test(test_export_shape),
      cmocka_unit_test(test_module_and_separators),
      cmocka_unit_test(test_unary_and_power),
      cmocka_unit_test(test_binary_levels),
      cmocka_unit_test(test_ternary_and_range),
      cmocka_unit_test(test_postfix_forms),
      cmocka_unit_test(test_locations),
      cmocka_unit_test(test_error_unexpected_token),
      cmocka_unit_test(test_error_missing_brace),
      cmocka_unit_test(test_error_missing_paren),
      cmocka_unit_test(test_error_unterminated_string),
      cmocka_unit_test(test_error_bad_character),
      cmocka_unit_test(test_error_escaped_bytes),
      cmocka_unit_test(test_error_binary_file),
      cmocka_unit_test(test_top_level_assert),
      cmocka_unit_test(test_error_reserved_scan),
      cmocka_unit_test(test_error_bad_number),
      cmocka_unit_test(test_error_semantic_checks),
      cmocka_unit_test(test_error_depth_limit),
      cmocka_unit_test(test_error_list_limit),
      cmocka_unit_test(test_fuzz),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
