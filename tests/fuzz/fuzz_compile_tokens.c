/* fuzz_compile_tokens.c — the grammar-aware mutator of the fuzz_compile_tokens target, which
 * runs fuzz_compile.c's entry point (the whole compiler on a .nn program).  libFuzzer's own
 * byte-level mutations mostly break a token, so most mutants die in the lexer or the parser;
 * these work on the tokens of dsl/lexer.l (names, numbers, strings, operators, newlines) and
 * on lines, so that mutants still lex, often parse, and reach sema, the passes and codegen:
 *   - a token or a line deleted, duplicated, swapped with another, or a token inserted;
 *   - a number replaced by 0, -1, 2^31, 1e308, nan, ... or a neighbour of itself; a name by
 *     another name of the input, a keyword, a builtin or an argument name; an operator by
 *     another one;
 *   - an operand wrapped in deep nesting: ((x)), -(-x), relu(relu(x)), [[x]], x + x + ...;
 *     a line wrapped in nested `for` / `if` blocks;
 *   - a list, an argument list or a shape grown to thousands of elements;
 *   - lines or a whole declaration spliced in from another input (LLVMFuzzerCustomCrossOver).
 * One mutation in 16 is libFuzzer's byte-level one, for what the token view cannot reach.
 * nnc_mutate() is the mutator without libFuzzer (tests/fuzz/mutate_main.c). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

size_t LLVMFuzzerMutate(uint8_t *data, size_t size, size_t max_size) __attribute__((weak));

/* --- tokens ------------------------------------------------------------------------------ */

typedef enum { T_SPACE, T_NEWLINE, T_COMMENT, T_NAME, T_NUMBER, T_STRING, T_PUNCT, T_OTHER } TokKind;

typedef struct {
  uint32_t off, len;
  TokKind kind;
} Tok;

typedef struct {
  const uint8_t *src;
  size_t size;
  Tok *t;      /* [n] */
  size_t n;
  size_t *sig; /* [nsig]: indices of the tokens that are not space, comment or newline */
  size_t nsig;
} Toks;

static int is_digit(int c) { return c >= '0' && c <= '9'; }
static int is_word(int c) { return c == '_' || is_digit(c) || ((c | 32) >= 'a' && (c | 32) <= 'z'); }

/* The length of the number at s (dsl/lexer.l's DIGITS and FLOAT, with a trailing name glued
 * on as the lexer's "invalid number" does). */
static size_t lex_number(const uint8_t *s, size_t n) {
  size_t i = 0;
  while (i < n && is_digit(s[i])) i++;
  if (i + 1 < n && s[i] == '.' && is_digit(s[i + 1]))
    for (i++; i < n && is_digit(s[i]);) i++;
  if (i < n && (s[i] | 32) == 'e') {
    size_t j = i + 1;
    if (j < n && (s[j] == '+' || s[j] == '-')) j++;
    if (j < n && is_digit(s[j]))
      for (i = j; i < n && is_digit(s[i]);) i++;
  }
  while (i < n && is_word(s[i])) i++;
  return i;
}

static const char *const two_char_ops[] = {"**", "==", "!=", "<=", ">=", "&&", "||", "..", "->"};

static size_t lex_one(const uint8_t *s, size_t n, TokKind *kind) {
  size_t i = 1;
  if (s[0] == ' ' || s[0] == '\t' || s[0] == '\r') {
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r')) i++;
    return *kind = T_SPACE, i;
  }
  if (s[0] == '\n') return *kind = T_NEWLINE, 1;
  if (s[0] == '#') {
    while (i < n && s[i] != '\n') i++;
    return *kind = T_COMMENT, i;
  }
  if (is_digit(s[0]) || (s[0] == '.' && n > 1 && is_digit(s[1])))
    return *kind = T_NUMBER, lex_number(s, n) ? lex_number(s, n) : 1;
  if (is_word(s[0])) {
    while (i < n && is_word(s[i])) i++;
    return *kind = T_NAME, i;
  }
  if (s[0] == '"') {
    while (i < n && s[i] != '"' && s[i] != '\n') i += (s[i] == '\\' && i + 1 < n) ? 2 : 1;
    return *kind = T_STRING, i < n && s[i] == '"' ? i + 1 : i;
  }
  for (size_t k = 0; k < sizeof two_char_ops / sizeof *two_char_ops; k++)
    if (n >= 2 && s[0] == two_char_ops[k][0] && s[1] == two_char_ops[k][1])
      return *kind = T_PUNCT, 2;
  *kind = strchr("()[]{}-+*/%@<>!?:=,.;", s[0]) && s[0] ? T_PUNCT : T_OTHER;
  return 1;
}

static int toks_init(Toks *tk, const uint8_t *src, size_t size) {
  *tk = (Toks){.src = src, .size = size};
  tk->t = malloc((size + 1) * sizeof *tk->t);
  tk->sig = malloc((size + 1) * sizeof *tk->sig);
  if (!tk->t || !tk->sig) return 0;
  for (size_t off = 0; off < size;) {
    TokKind kind;
    size_t len = lex_one(src + off, size - off, &kind);
    if (kind != T_SPACE && kind != T_NEWLINE && kind != T_COMMENT) tk->sig[tk->nsig++] = tk->n;
    tk->t[tk->n++] = (Tok){(uint32_t)off, (uint32_t)len, kind};
    off += len;
  }
  return 1;
}

static void toks_free(Toks *tk) {
  free(tk->t);
  free(tk->sig);
}

static int tok_is(const Toks *tk, size_t i, const char *text) {
  const Tok *t = &tk->t[i];
  return t->len == strlen(text) && memcmp(tk->src + t->off, text, t->len) == 0;
}

static int tok_opens(const Toks *tk, size_t i) {
  return tk->t[i].kind == T_PUNCT && tk->t[i].len == 1 && strchr("([{", tk->src[tk->t[i].off]);
}

static int tok_closes(const Toks *tk, size_t i) {
  return tk->t[i].kind == T_PUNCT && tk->t[i].len == 1 && strchr(")]}", tk->src[tk->t[i].off]);
}

/* The index of the token closing the bracket opened at token i (the last token if none). */
static size_t tok_match(const Toks *tk, size_t i) {
  int depth = 0;
  for (size_t j = i; j < tk->n; j++) {
    depth += tok_opens(tk, j) - tok_closes(tk, j);
    if (depth <= 0) return j;
  }
  return tk->n - 1;
}

static size_t tok_end(const Toks *tk, size_t i) { return tk->t[i].off + tk->t[i].len; }

/* The next significant token after token i, or tk->n. */
static size_t tok_next(const Toks *tk, size_t i) {
  while (++i < tk->n && (tk->t[i].kind == T_SPACE || tk->t[i].kind == T_COMMENT)) {}
  return i;
}

/* --- random numbers and the output buffer ------------------------------------------------- */

typedef struct {
  uint64_t s;
} Rng;

static uint64_t rng_next(Rng *r) { /* xorshift64* */
  r->s ^= r->s >> 12;
  r->s ^= r->s << 25;
  r->s ^= r->s >> 27;
  return r->s * 2685821657736338717ull;
}

static size_t rng_below(Rng *r, size_t n) { return n ? (size_t)(rng_next(r) % n) : 0; }

#define PICK(r, array) ((array)[rng_below((r), sizeof(array) / sizeof *(array))])

typedef struct {
  uint8_t *p;
  size_t n, cap;
  int full; /* something did not fit: the mutation is dropped */
} Buf;

static void put(Buf *b, const void *s, size_t n) {
  if (b->full || n > b->cap - b->n) {
    b->full = 1;
    return;
  }
  memcpy(b->p + b->n, s, n);
  b->n += n;
}

static void puts_(Buf *b, const char *s) { put(b, s, strlen(s)); }

static void put_src(Buf *b, const Toks *tk, size_t from, size_t to) {
  if (to > from) put(b, tk->src + from, to - from);
}

/* Puts a space if the last byte put and the next one would otherwise glue into one token. */
static void put_gap(Buf *b, int next) {
  if (b->n && is_word(b->p[b->n - 1]) && is_word(next)) puts_(b, " ");
}

static void put_tok(Buf *b, const Toks *tk, size_t i) {
  put_gap(b, tk->src[tk->t[i].off]);
  put_src(b, tk, tk->t[i].off, tok_end(tk, i));
}

/* --- vocabulary ---------------------------------------------------------------------------- */

static const char *const numbers[] = {"0", "-1", "1", "2", "3", "2147483648", "4294967296",
                                      "9223372036854775807", "9223372036854775808", "1e308",
                                      "-1e308", "nan", "inf", "-inf", "1e-45", "1e-320", "100000",
                                      "65536", "0.0", "-0.0", "0.5", "-2", "7", "1000000000"};

static const char *const keywords[] = {"const", "module", "fn", "export", "for", "in", "if",
                                       "else", "return", "true", "false", "scan"};

/* Builtins and layers (tests/tools/nnc_registry.py lists them), keyword arguments, types and
 * attributes. */
static const char *const names[] = {
  "true", "false", "f32", "i64", "bool", "T", "shape", "AdaptiveAvgPool2d", "AvgPool2d", "BatchNorm1d",
  "BatchNorm2d", "Conv2d", "ConvTranspose2d", "Dropout", "Dropout2d", "ELU", "Embedding",
  "Flatten", "GroupNorm", "Identity", "InstanceNorm2d", "LSTM", "LSTMCell", "LayerNorm",
  "LeakyReLU", "Linear", "MaxPool2d", "PixelShuffle", "PixelUnshuffle", "ReLU", "Sequential",
  "Sigmoid", "Softplus", "Tanh", "Upsample", "abs", "adaptive_avg_pool2d", "amax", "amin",
  "argmax", "argmin", "assert", "avg_pool2d", "batch_norm", "cat", "concat", "conv2d",
  "conv_transpose2d", "cos", "cosine_similarity", "elu", "exp", "flatten", "float", "full",
  "gather", "group_norm", "gumbel_argmax", "index_select", "instance_norm", "int",
  "interpolate", "layer_norm", "leaky_relu", "len", "log", "log_softmax", "logical_not",
  "logsumexp", "lstm", "lstm_cell", "matmul", "max", "max_pool2d", "maximum", "mean", "min",
  "minimum", "neg", "one_hot", "ones", "ones_like", "pad", "permute", "pixel_shuffle",
  "pixel_unshuffle", "pow", "rand", "randn", "range", "relu", "reshape", "reversed",
  "roi_align", "sample_categorical", "sigmoid", "sin", "softmax", "softplus", "split", "sqrt",
  "squeeze", "sum", "tanh", "topk", "transpose", "unsqueeze", "view", "where", "zeros",
  "zeros_like", "axis", "dim", "keepdim", "affine", "align_corners", "alpha", "batch_first",
  "beta", "bias", "bidirectional", "ceil_mode", "count_include_pad", "dilation", "dropout",
  "eps", "groups", "hidden_size", "kernel_size", "mode", "momentum", "negative_slope",
  "num_layers", "output_padding", "output_size", "p", "padding", "padding_idx", "padding_mode",
  "proj_size", "scale_factor", "size", "start_dim", "end_dim", "stride", "weight"};

static const char *const binary_ops[] = {"+", "-", "*", "/", "%", "@", "**", "&&", "||", "==",
                                         "!=", "<", "<=", ">", ">="};
enum { N_CHAINABLE = 9 }; /* the first ones: a < b < c is a syntax error */

static const char *const operators[] = {"+", "-", "*", "/", "%", "@", "**", "==", "!=", "<",
                                        "<=", ">", ">=", "&&", "||", "..", "!", "?", ":", "=",
                                        ",", ".", "->", "(", ")", "[", "]", "{", "}", ";"};

static const char *const unary_fns[] = {"relu", "neg", "abs", "exp", "sigmoid", "tanh",
                                        "sqrt", "log", "sum", "flatten", "transpose", "len"};

/* nesting depths: mostly within the parser's limits (200 brackets, 1000 tree levels) */
static const size_t depths[] = {2, 3, 4, 5, 8, 16, 32, 64, 100, 150, 190, 198, 199, 200, 201, 999,
                                1000, 5000};

static const size_t counts[] = {0, 1, 2, 9, 17, 100, 257, 1000, 4096, 65536, 1000000};

/* --- mutations: each writes a mutant of tk into out, or returns 0 if it does not apply ------ */

typedef struct {
  const Toks *tk;
  Buf *out;
  Rng *rng;
  const uint8_t *other; /* another input (crossover), or NULL */
  size_t other_size;
} Mut;

static size_t pick_sig(Mut *m) { return m->tk->sig[rng_below(m->rng, m->tk->nsig)]; }

/* A significant token of the given kind, or tk->n if there is none. */
static size_t pick_kind(Mut *m, TokKind kind) {
  size_t n = 0, i = m->tk->n;
  for (size_t k = 0; k < m->tk->nsig; k++) /* reservoir sampling */
    if (m->tk->t[m->tk->sig[k]].kind == kind && rng_below(m->rng, ++n) == 0) i = m->tk->sig[k];
  return i;
}

/* The source with tokens [i, j] replaced by `text`. */
static int replace_toks(Mut *m, size_t i, size_t j, const char *text) {
  const Toks *tk = m->tk;
  put_src(m->out, tk, 0, tk->t[i].off);
  put_gap(m->out, text[0]);
  puts_(m->out, text);
  if (j + 1 < tk->n) put_gap(m->out, tk->src[tk->t[j + 1].off]);
  put_src(m->out, tk, tok_end(tk, j), tk->size);
  return 1;
}

static int mut_delete(Mut *m) {
  size_t i = pick_sig(m);
  return replace_toks(m, i, i, "");
}

static int mut_duplicate(Mut *m) {
  const Toks *tk = m->tk;
  size_t i = pick_sig(m);
  put_src(m->out, tk, 0, tok_end(tk, i));
  put_tok(m->out, tk, i);
  put_src(m->out, tk, tok_end(tk, i), tk->size);
  return 1;
}

static int mut_swap(Mut *m) {
  const Toks *tk = m->tk;
  size_t i = pick_sig(m), j = pick_sig(m);
  if (i == j) return 0;
  if (i > j) {
    size_t t = i;
    i = j, j = t;
  }
  put_src(m->out, tk, 0, tk->t[i].off);
  put_tok(m->out, tk, j);
  put_src(m->out, tk, tok_end(tk, i), tk->t[j].off);
  put_tok(m->out, tk, i);
  put_src(m->out, tk, tok_end(tk, j), tk->size);
  return 1;
}

static int mut_insert(Mut *m) {
  const Toks *tk = m->tk;
  size_t i = pick_sig(m);
  const char *text;
  switch (rng_below(m->rng, 4)) {
  case 0: text = PICK(m->rng, names); break;
  case 1: text = PICK(m->rng, operators); break;
  case 2: text = PICK(m->rng, keywords); break;
  default: text = PICK(m->rng, numbers); break;
  }
  put_src(m->out, tk, 0, tk->t[i].off);
  put_gap(m->out, text[0]);
  puts_(m->out, text);
  puts_(m->out, " ");
  put_src(m->out, tk, tk->t[i].off, tk->size);
  return 1;
}

static int mut_number(Mut *m) {
  const Toks *tk = m->tk;
  size_t i = pick_kind(m, T_NUMBER);
  if (i == tk->n) return 0;
  char text[32];
  if (rng_below(m->rng, 3) == 0) { /* a neighbour: off by one, doubled, halved */
    long long v = strtoll((const char *)tk->src + tk->t[i].off, NULL, 10);
    switch (rng_below(m->rng, 4)) {
    case 0: v = v - 1; break;
    case 1: v = v < INT64_MAX ? v + 1 : v; break;
    case 2: v = v > INT64_MAX / 2 ? v : v * 2; break;
    default: v = v / 2;
    }
    snprintf(text, sizeof text, "%lld", v);
    return replace_toks(m, i, i, text);
  }
  return replace_toks(m, i, i, PICK(m->rng, numbers));
}

static int mut_name(Mut *m) {
  const Toks *tk = m->tk;
  size_t i = pick_kind(m, T_NAME);
  if (i == tk->n) return 0;
  size_t how = rng_below(m->rng, 8);
  if (how == 0) return replace_toks(m, i, i, PICK(m->rng, keywords));
  if (how < 4) return replace_toks(m, i, i, PICK(m->rng, names));
  size_t j = pick_kind(m, T_NAME);
  put_src(m->out, tk, 0, tk->t[i].off);
  put_src(m->out, tk, tk->t[j].off, tok_end(tk, j));
  put_src(m->out, tk, tok_end(tk, i), tk->size);
  return 1;
}

/* A binary operator becomes another one, mostly; any punctuation anything, sometimes. */
static int mut_operator(Mut *m) {
  const Toks *tk = m->tk;
  size_t n = 0, i = pick_kind(m, T_PUNCT);
  if (i == tk->n) return 0;
  if (rng_below(m->rng, 4) == 0) return replace_toks(m, i, i, PICK(m->rng, operators));
  for (size_t k = 0; k < tk->nsig; k++)
    for (size_t o = 0; o < sizeof binary_ops / sizeof *binary_ops; o++)
      if (tok_is(tk, tk->sig[k], binary_ops[o]) && rng_below(m->rng, ++n) == 0) i = tk->sig[k];
  return replace_toks(m, i, i, n ? PICK(m->rng, binary_ops) : PICK(m->rng, operators));
}

/* The last token of the operand starting at token i: a bracketed group, a name or number with
 * its calls and subscripts, or the token itself. */
static size_t operand_end(const Toks *tk, size_t i) {
  if (tok_opens(tk, i)) i = tok_match(tk, i);
  else if (tk->t[i].kind != T_NAME && tk->t[i].kind != T_NUMBER && tk->t[i].kind != T_STRING)
    return i;
  for (size_t j; (j = tok_next(tk, i)) < tk->n && (tok_is(tk, j, "(") || tok_is(tk, j, "["));)
    i = tok_match(tk, j);
  return i;
}

/* The significant token before token i, or tk->n. */
static size_t tok_prev(const Toks *tk, size_t i) {
  while (i-- > 0)
    if (tk->t[i].kind != T_SPACE && tk->t[i].kind != T_COMMENT && tk->t[i].kind != T_NEWLINE)
      return i;
  return tk->n;
}

/* Whether token i starts an operand in an expression, roughly: a name, number or string that
 * is not declared, assigned or a type there (x = , x: , fn x, : f32), or a bracket that is
 * not a call's or a subscript's. */
static int starts_operand(const Toks *tk, size_t i) {
  size_t prev = tok_prev(tk, i), next = tok_next(tk, i);
  if (prev < tk->n && tk->t[prev].kind == T_NAME)
    for (size_t k = 0; k < sizeof keywords / sizeof *keywords; k++)
      if (tok_is(tk, prev, keywords[k]) && strcmp(keywords[k], "return") &&
          strcmp(keywords[k], "if") && strcmp(keywords[k], "in"))
        return 0;
  if (tok_is(tk, i, "(") || tok_is(tk, i, "["))
    return prev == tk->n || !(tk->t[prev].kind == T_NAME || tok_is(tk, prev, ")") ||
                              tok_is(tk, prev, "]"));
  if (tk->t[i].kind != T_NAME && tk->t[i].kind != T_NUMBER && tk->t[i].kind != T_STRING)
    return 0;
  if (prev < tk->n && tok_is(tk, prev, ":")) return 0; /* a type */
  return next == tk->n || !(tok_is(tk, next, "=") || tok_is(tk, next, ":"));
}

/* A token that starts an operand, or any significant one if there is none. */
static size_t pick_operand(Mut *m) {
  size_t n = 0, i = pick_sig(m);
  for (size_t k = 0; k < m->tk->nsig; k++)
    if (starts_operand(m->tk, m->tk->sig[k]) && rng_below(m->rng, ++n) == 0) i = m->tk->sig[k];
  return i;
}

static size_t fit_count(Mut *m, size_t want, size_t each) {
  size_t room = m->out->cap > m->tk->size ? m->out->cap - m->tk->size : 0;
  size_t most = each ? room / each : want;
  return want < most ? want : most;
}

static int mut_nest(Mut *m) {
  const Toks *tk = m->tk;
  size_t i = pick_operand(m), j = operand_end(tk, i);
  const char *open, *close = ")";
  char call[32];
  switch (rng_below(m->rng, 5)) {
  case 0: open = "("; break;
  case 1: open = "-("; break;
  case 2: open = "[", close = "]"; break;
  case 3: open = "!("; break;
  default:
    strcpy(call, PICK(m->rng, unary_fns));
    strcat(call, "(");
    open = call;
  }
  size_t d = fit_count(m, PICK(m->rng, depths), strlen(open) + strlen(close));
  if (d == 0) return 0;
  put_src(m->out, tk, 0, tk->t[i].off);
  put_gap(m->out, open[0]);
  for (size_t k = 0; k < d; k++) puts_(m->out, open);
  put_src(m->out, tk, tk->t[i].off, tok_end(tk, j));
  for (size_t k = 0; k < d; k++) puts_(m->out, close);
  put_src(m->out, tk, tok_end(tk, j), tk->size);
  return 1;
}

/* x -> x + x + ... + x (a long operator chain, deep in the tree) */
static int mut_chain(Mut *m) {
  const Toks *tk = m->tk;
  size_t i = pick_operand(m), j = operand_end(tk, i);
  const char *op = binary_ops[rng_below(m->rng, N_CHAINABLE)];
  size_t len = tok_end(tk, j) - tk->t[i].off;
  size_t d = fit_count(m, PICK(m->rng, depths), len + strlen(op) + 2);
  put_src(m->out, tk, 0, tok_end(tk, j));
  for (size_t k = 0; k < d; k++) {
    puts_(m->out, " ");
    puts_(m->out, op);
    puts_(m->out, " ");
    put_src(m->out, tk, tk->t[i].off, tok_end(tk, j));
  }
  put_src(m->out, tk, tok_end(tk, j), tk->size);
  return d > 0;
}

/* [a, b] -> [a, b, a, b, a, ...], or f(a, b) -> f(a, b, a, ...), or fewer elements */
static int mut_grow_list(Mut *m) {
  const Toks *tk = m->tk;
  size_t n = 0, i = tk->n;
  for (size_t k = 0; k < tk->nsig; k++)
    if ((tok_is(tk, tk->sig[k], "(") || tok_is(tk, tk->sig[k], "[")) && rng_below(m->rng, ++n) == 0)
      i = tk->sig[k];
  if (i == tk->n) return 0;
  size_t close = tok_match(tk, i);
  /* the top-level elements of the list: their start and end offsets */
  size_t cap = 64, ne = 0, (*el)[2] = malloc(cap * sizeof *el);
  if (!el) return 0;
  size_t start = tok_end(tk, i);
  for (size_t j = i + 1; j <= close && j < tk->n; j++) {
    int at_end = j == close || tok_is(tk, j, ",");
    if (at_end && tk->t[j].off > start) {
      if (ne == cap) {
        void *p = realloc(el, (cap *= 2) * sizeof *el);
        if (!p) break;
        el = p;
      }
      el[ne][0] = start, el[ne][1] = tk->t[j].off, ne++;
      start = tok_end(tk, j);
    }
    if (j < close && tok_opens(tk, j)) { /* skip a nested group, but not past the closer */
      size_t k = tok_match(tk, j);
      j = k < close ? k : close - 1;
    }
  }
  size_t avg = 2;
  for (size_t k = 0; k < ne; k++) avg += el[k][1] - el[k][0];
  avg = ne ? avg / ne + 2 : 3;
  size_t want = fit_count(m, PICK(m->rng, counts), avg);
  put_src(m->out, tk, 0, tok_end(tk, i));
  for (size_t k = 0; k < want; k++) {
    if (k) puts_(m->out, ", ");
    if (ne) put_src(m->out, tk, el[k % ne][0], el[k % ne][1]);
    else puts_(m->out, "0");
  }
  put_src(m->out, tk, close < tk->n ? tk->t[close].off : tk->size, tk->size);
  free(el);
  return 1;
}

/* --- line mutations ----------------------------------------------------------------------- */

typedef struct {
  size_t *start; /* [n + 1]: the offset of each line, then the size */
  size_t n;
} Lines;

static int lines_init(Lines *l, const uint8_t *s, size_t size) {
  l->n = 0;
  l->start = malloc((size + 2) * sizeof *l->start);
  if (!l->start) return 0;
  for (size_t i = 0; i < size; i++)
    if (i == 0 || s[i - 1] == '\n') l->start[l->n++] = i;
  l->start[l->n] = size;
  return 1;
}

/* The lines [a, b) of s, with a newline at the end if the last one has none. */
static void put_lines(Buf *b, const uint8_t *s, const Lines *l, size_t a, size_t c) {
  if (a >= c) return;
  put(b, s + l->start[a], l->start[c] - l->start[a]);
  if (b->n && b->p[b->n - 1] != '\n') puts_(b, "\n");
}

/* The end of a block of lines starting at line a: to where its braces balance again (a whole
 * fn, module or export), or a few lines. */
static size_t block_end(Rng *r, const uint8_t *s, const Lines *l, size_t a) {
  if (rng_below(r, 2)) {
    size_t c = a + 1 + rng_below(r, 4);
    return c < l->n ? c : l->n;
  }
  int depth = 0;
  for (size_t c = a; c < l->n; c++) {
    for (size_t i = l->start[c]; i < l->start[c + 1]; i++) depth += (s[i] == '{') - (s[i] == '}');
    if (depth <= 0) return c + 1;
  }
  return l->n;
}

static int mut_lines(Mut *m) {
  const Toks *tk = m->tk;
  Lines l;
  if (!lines_init(&l, tk->src, tk->size)) return 0;
  int ok = l.n > 0;
  size_t a = rng_below(m->rng, l.n), c = block_end(m->rng, tk->src, &l, a);
  size_t p = rng_below(m->rng, l.n + 1);
  switch (ok ? rng_below(m->rng, 4) : 9) {
  case 0: /* delete */
    put_lines(m->out, tk->src, &l, 0, a);
    put_lines(m->out, tk->src, &l, c, l.n);
    break;
  case 1: /* duplicate, somewhere */
    put_lines(m->out, tk->src, &l, 0, p);
    put_lines(m->out, tk->src, &l, a, c);
    put_lines(m->out, tk->src, &l, p, l.n);
    break;
  case 2: /* move the block [a, c) to line p */
    if (p > a && p < c) p = a;
    if (p <= a) {
      put_lines(m->out, tk->src, &l, 0, p);
      put_lines(m->out, tk->src, &l, a, c);
      put_lines(m->out, tk->src, &l, p, a);
      put_lines(m->out, tk->src, &l, c, l.n);
    } else {
      put_lines(m->out, tk->src, &l, 0, a);
      put_lines(m->out, tk->src, &l, c, p);
      put_lines(m->out, tk->src, &l, a, c);
      put_lines(m->out, tk->src, &l, p, l.n);
    }
    break;
  case 3: { /* wrap in nested blocks: deeply only in blocks that run once or never (nested
             * loops of two iterations would just run into the bound on statements executed) */
    static const char *const once[] = {"for i in 0..1 {\n", "if true {\n", "if false {\n"};
    static const char *const loops[] = {"for q in 0..2 {\n", "for z in [1, 2] {\n"};
    int deep = rng_below(m->rng, 4) == 0;
    const char *head = deep || rng_below(m->rng, 2) ? PICK(m->rng, once) : PICK(m->rng, loops);
    size_t d = fit_count(m, deep ? PICK(m->rng, depths) : 1 + rng_below(m->rng, 3), strlen(head) + 2);
    put_lines(m->out, tk->src, &l, 0, a);
    for (size_t k = 0; k < d; k++) puts_(m->out, head);
    put_lines(m->out, tk->src, &l, a, c);
    for (size_t k = 0; k < d; k++) puts_(m->out, "}\n");
    put_lines(m->out, tk->src, &l, c, l.n);
    break;
  }
  default: ok = 0;
  }
  free(l.start);
  return ok;
}

/* Lines (or a whole declaration) of the other input, inserted or in place of some of ours. */
static int mut_splice(Mut *m) {
  const Toks *tk = m->tk;
  Lines mine, theirs;
  if (!lines_init(&mine, tk->src, tk->size)) return 0;
  if (!lines_init(&theirs, m->other, m->other_size)) return free(mine.start), 0;
  int ok = theirs.n > 0;
  if (ok) {
    size_t a = rng_below(m->rng, theirs.n), c = block_end(m->rng, m->other, &theirs, a);
    size_t p = rng_below(m->rng, mine.n + 1), q = p;
    if (rng_below(m->rng, 2) && p < mine.n) q = block_end(m->rng, tk->src, &mine, p);
    put_lines(m->out, tk->src, &mine, 0, p);
    put_lines(m->out, m->other, &theirs, a, c);
    put_lines(m->out, tk->src, &mine, q, mine.n);
  }
  free(mine.start);
  free(theirs.start);
  return ok;
}

/* --- the mutator ---------------------------------------------------------------------------- */

typedef int (*Mutation)(Mut *);

/* weighted: the token deletions, duplications, swaps and insertions nearly always make a
 * syntax error, the others mostly not */
static const Mutation mutations[] = {
  mut_delete, mut_duplicate, mut_swap, mut_insert,
  mut_number, mut_number, mut_number, mut_number, mut_name, mut_name, mut_name, mut_name,
  mut_operator, mut_operator, mut_nest, mut_nest, mut_chain, mut_grow_list, mut_grow_list,
  mut_lines, mut_lines, mut_lines, mut_lines,
};

/* One grammar-aware mutation of data[0, size) into out[0, max_size); its size, or 0. */
static size_t mutate_once(const uint8_t *data, size_t size, uint8_t *out, size_t max_size,
                          Rng *rng, const uint8_t *other, size_t other_size) {
  Toks tk;
  size_t n = 0;
  if (toks_init(&tk, data, size)) {
    for (int attempt = 0; attempt < 8 && n == 0; attempt++) {
      Buf b = {out, 0, max_size, 0};
      Mut m = {&tk, &b, rng, other, other_size};
      int ok;
      if (other) ok = mut_splice(&m);
      else if (tk.nsig == 0) ok = mut_lines(&m); /* only spaces, newlines and comments */
      else ok = PICK(rng, mutations)(&m);
      if (ok && !b.full && b.n > 0) n = b.n;
    }
  }
  toks_free(&tk);
  return n;
}

/* Mutates data[0, size) in place (data holds max_size bytes): 1 to 4 stacked mutations; its
 * new size.  Usable without libFuzzer (then never its byte-level mutation). */
size_t nnc_mutate(uint8_t *data, size_t size, size_t max_size, unsigned seed) {
  Rng rng = {0x9e3779b97f4a7c15ull ^ ((uint64_t)seed << 1 | 1)};
  if (LLVMFuzzerMutate && rng_below(&rng, 16) == 0) return LLVMFuzzerMutate(data, size, max_size);
  if (size == 0) {
    static const char seed_text[] = "export f(x: f32[4]) -> (y: f32[4]) {\n  y = x\n}\n";
    size = sizeof seed_text - 1 < max_size ? sizeof seed_text - 1 : max_size;
    memcpy(data, seed_text, size);
  }
  uint8_t *tmp = malloc(max_size ? max_size : 1);
  if (!tmp) return size;
  for (size_t k = 0, rounds = 1 + rng_below(&rng, 4) * rng_below(&rng, 2); k < rounds; k++) {
    size_t n = mutate_once(data, size, tmp, max_size, &rng, NULL, 0);
    if (n) memcpy(data, tmp, size = n);
  }
  free(tmp);
  return size;
}

size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size, unsigned seed) {
  return nnc_mutate(data, size, max_size, seed);
}

/* libFuzzer calls this as often as the mutator: one time in three it splices data2 into
 * data1, otherwise it mutates data1. */
size_t LLVMFuzzerCustomCrossOver(const uint8_t *data1, size_t size1, const uint8_t *data2,
                                 size_t size2, uint8_t *out, size_t max_out_size, unsigned seed) {
  Rng rng = {0x2545f4914f6cdd1dull ^ ((uint64_t)seed << 1 | 1)};
  if (rng_below(&rng, 3) == 0) return mutate_once(data1, size1, out, max_out_size, &rng, data2, size2);
  size_t n = size1 < max_out_size ? size1 : max_out_size;
  memcpy(out, data1, n);
  return nnc_mutate(out, n, max_out_size, (unsigned)rng_next(&rng));
}
