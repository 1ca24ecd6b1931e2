/* emit_nn_idiom.c — subgraphs that one call of the language builds, for emit_nn.c to write as
 * that call (`conv2d(x, w, b, stride=[2, 2], padding=[3, 3])` rather than the nine nodes of
 * its windows, reshapes and matmul).
 *
 * Each idiom guesses its arguments from the shape of the subgraph under a node, then builds
 * the call with the front end's own builder (front/nn.c) on stand-in inputs and compares the
 * result with the subgraph node by node: ops, dtypes, shapes and attributes.  Only an exact
 * match is taken, so the .nn still builds the same graph; anything else is written node by
 * node.  The subgraph's inner nodes must have no other users. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "emit_nn_idiom.h"
#include "nn.h"

#define MAX_COVER 64 /* inner nodes of one idiom at most */

typedef struct Match {
  const int *users;         /* live users per node id */
  const INode *leaf[3];     /* the arguments in the graph */
  INode *stand_in[3];       /* their stand-ins in the scratch build */
  int nleaf;
  const INode *cover[MAX_COVER];
  int ncover;
} Match;

/* ---- exact comparison ---- */

static bool same_attrs(const INode *a, const INode *b) {
  if (a->op != b->op || a->dtype != b->dtype || !shape_eq(&a->shape, &b->shape) || a->axes != b->axes ||
      a->flag != b->flag || memcmp(a->i, b->i, sizeof a->i) || memcmp(a->f, b->f, sizeof a->f))
    return false;
  if (a->op == OP_PARAM || a->op == OP_INPUT) return false; /* leaves are arguments, matched by identity */
  if (a->op != OP_CONST) return true;
  if (!a->data || !b->data) return !a->data && !b->data;
  return !memcmp(a->data, b->data, (size_t)shape_static_numel(&a->shape) * sizeof *a->data);
}

/* Whether graph node g is what the builder made as b (stand-ins standing for the leaves). */
static bool same(Match *M, const INode *g, const INode *b, bool root) {
  for (int k = 0; k < M->nleaf; k++)
    if (b == M->stand_in[k]) return g == M->leaf[k];
  if (!same_attrs(g, b) || (!root && M->users[g->id] != 1) || M->ncover == MAX_COVER) return false;
  M->cover[M->ncover++] = g;
  for (int k = 0; k < 3; k++) {
    if (!g->in[k] != !b->in[k]) return false;
    if (g->in[k] && !same(M, g->in[k], b->in[k], false)) return false;
  }
  return true;
}

/* ---- scratch builds ---- */

typedef struct Scratch {
  Entry e;
  Diag d;
  SrcFile f;
  Sema S;
} Scratch;

static void scratch_open(Scratch *s, const Model *m, Match *M) {
  memset(s, 0, sizeof *s);
  s->f = (SrcFile){.path = "", .text = "", .len = 0};
  diag_init(&s->d, &s->f);
  s->S = (Sema){.arena = m->arena, .m = (Model *)m, .e = &s->e, .d = &s->d};
  for (int k = 0; k < M->nleaf; k++)
    M->stand_in[k] = M->leaf[k] ? ir_input(s->S.m, &s->e, k, M->leaf[k]->dtype, &M->leaf[k]->shape, (SrcLoc){0}) : NULL;
}

static bool verify(Match *M, const INode *root, const INode *built) {
  M->ncover = 0;
  return built && same(M, root, built, true);
}

static int put_number(char *buf, size_t len, double v) {
  for (int p = 1; p <= 17; p++) {
    int n = snprintf(buf, len, "%.*g", p, v);
    if (strtod(buf, NULL) == v) return n;
  }
  return (int)strlen(buf);
}

/* ---- conv2d ---- */

/* root = [reshape] [add(·, reshape(bias))] [reshape] of a matmul */
static const INode *conv_matmul(const INode *n, const INode **bias) {
  *bias = NULL;
  for (int step = 0; step < 3 && n->op != OP_MATMUL; step++) {
    if (n->op == OP_RESHAPE) n = n->in[0];
    else if (n->op == OP_ADD && !*bias && n->in[1]->op == OP_RESHAPE && n->in[1]->in[0]->shape.rank == 1)
      *bias = n->in[1]->in[0], n = n->in[0];
    else return NULL;
  }
  return n->op == OP_MATMUL ? n : NULL;
}

/* The image under a matmul operand: reshape(x), or reshape(permute(reshape(window(x)))) */
static const INode *conv_image(const INode *n, const INode **window) {
  *window = NULL;
  if (n->op != OP_RESHAPE) return NULL;
  n = n->in[0];
  if (n->op == OP_PERMUTE && n->in[0]->op == OP_RESHAPE && n->in[0]->in[0]->op == OP_WINDOW) {
    *window = n->in[0]->in[0];
    return (*window)->in[0];
  }
  return n;
}

static void put_pair(char *buf, size_t len, const char *name, const int64_t *v, int64_t def) {
  size_t n = strlen(buf);
  if (v[0] == def && v[1] == def) return;
  if (v[0] == v[1]) snprintf(buf + n, len - n, ", %s=%lld", name, (long long)v[0]);
  else snprintf(buf + n, len - n, ", %s=[%lld, %lld]", name, (long long)v[0], (long long)v[1]);
}

static bool try_conv(const Model *m, const INode *root, Match *M, NnIdiom *out) {
  const INode *bias, *window, *mm = conv_matmul(root, &bias);
  if (!mm) return false;
  for (int wk = 0; wk < 2; wk++) {
    const INode *w = mm->in[wk]->op == OP_RESHAPE ? mm->in[wk]->in[0] : NULL;
    const INode *x = conv_image(mm->in[1 - wk], &window);
    if (!w || !x || w->shape.rank != 4 || x->shape.rank != 4 || x->shape.d[1].syms || !w->shape.d[1].k) continue;
    ConvSpec c = {.stride = {1, 1}, .dilation = {1, 1}, .groups = x->shape.d[1].k / w->shape.d[1].k};
    if (window) {
      memcpy(c.stride, window->i, sizeof c.stride);
      memcpy(c.dilation, window->i + 4, sizeof c.dilation);
      c.pad[0] = c.pad[2] = window->i[2];
      c.pad[1] = c.pad[3] = window->i[3];
    }
    *M = (Match){.users = M->users, .leaf = {x, w, bias}, .nleaf = 3};
    Scratch s;
    scratch_open(&s, m, M);
    if (!verify(M, root, nn_conv2d(&s.S, M->stand_in[0], M->stand_in[1], M->stand_in[2], &c, (SrcLoc){0}))) continue;
    *out = (NnIdiom){.fn = "conv2d", .arg = {x, w, bias}, .narg = bias ? 3 : 2};
    put_pair(out->kwargs, sizeof out->kwargs, "stride", c.stride, 1);
    put_pair(out->kwargs, sizeof out->kwargs, "padding", c.pad, 0);
    put_pair(out->kwargs, sizeof out->kwargs, "dilation", c.dilation, 1);
    if (c.groups != 1)
      snprintf(out->kwargs + strlen(out->kwargs), sizeof out->kwargs - strlen(out->kwargs), ", groups=%lld",
               (long long)c.groups);
    return true;
  }
  return false;
}

/* ---- conv_transpose2d ---- */

/* root = [add(·, reshape(bias))] of col2im, or of the pixel shuffle that replaces it, of
 * reshape(matmul(reshape(w)ᵀ, reshape(x))) */
static const INode *deconv_matmul(const INode *n, const INode **bias, const INode **col2im) {
  *bias = *col2im = NULL;
  if (n->op == OP_ADD && n->in[1]->op == OP_RESHAPE && n->in[1]->in[0]->shape.rank == 1)
    *bias = n->in[1]->in[0], n = n->in[0];
  for (int step = 0; step < 4 && n->op != OP_MATMUL; step++) {
    if (n->op == OP_COL2IM && !*col2im) *col2im = n;
    else if (n->op != OP_RESHAPE && n->op != OP_PERMUTE) return NULL;
    n = n->in[0];
  }
  return n->op == OP_MATMUL && n->i[0] && !n->i[1] ? n : NULL;
}

/* conv_transpose2d(x, w, bias) with these operands, when it builds the subgraph under root */
static bool try_deconv_of(const Model *m, const INode *root, Match *M, NnIdiom *out, const INode *mm, const INode *bias,
                          const INode *col2im, const INode *x) {
  const INode *w = mm->in[0]->in[0];
  if (w->shape.rank != 4 || x->shape.rank != 4 || root->shape.rank != 4) return false;
  int64_t k[2] = {w->shape.d[2].k, w->shape.d[3].k};
  ConvSpec c = {.stride = {k[0], k[1]}, .dilation = {1, 1}, .groups = mm->in[0]->shape.d[0].k};
  if (col2im) {
    memcpy(c.stride, col2im->i, sizeof c.stride);
    c.pad[0] = c.pad[2] = col2im->i[2];
    c.pad[1] = c.pad[3] = col2im->i[3];
    memcpy(c.dilation, col2im->i + 4, sizeof c.dilation);
  }
  for (int a = 0; a < 2; a++) /* what the output size has beyond the formula's */
    c.output_padding[a] = root->shape.d[2 + a].k - ((x->shape.d[2 + a].k - 1) * c.stride[a] - 2 * c.pad[a] +
                                                    c.dilation[a] * (k[a] - 1) + 1);
  *M = (Match){.users = M->users, .leaf = {x, w, bias}, .nleaf = 3};
  Scratch s;
  scratch_open(&s, m, M);
  if (!verify(M, root, nn_conv_transpose2d(&s.S, M->stand_in[0], M->stand_in[1], M->stand_in[2], &c, (SrcLoc){0})))
    return false;
  *out = (NnIdiom){.fn = "conv_transpose2d", .arg = {x, w, bias}, .narg = bias ? 3 : 2};
  put_pair(out->kwargs, sizeof out->kwargs, "stride", c.stride, 1);
  put_pair(out->kwargs, sizeof out->kwargs, "padding", c.pad, 0);
  put_pair(out->kwargs, sizeof out->kwargs, "output_padding", c.output_padding, 0);
  if (c.groups != 1)
    snprintf(out->kwargs + strlen(out->kwargs), sizeof out->kwargs - strlen(out->kwargs), ", groups=%lld",
             (long long)c.groups);
  put_pair(out->kwargs, sizeof out->kwargs, "dilation", c.dilation, 1);
  return true;
}

static bool try_conv_transpose(const Model *m, const INode *root, Match *M, NnIdiom *out) {
  const INode *bias, *col2im, *mm = deconv_matmul(root, &bias, &col2im);
  if (!mm || mm->in[0]->op != OP_RESHAPE || mm->in[1]->op != OP_RESHAPE || mm->in[0]->shape.rank != 3) return false;
  /* the image is the reshape's operand, or the reshape itself when the builder's reshape of
   * it was to its own shape and so not made (one input channel per group: a 1-D
   * ConvTranspose's [N, 1, 1, L], whose reshape from [N, 1, L] stands in its place) */
  return try_deconv_of(m, root, M, out, mm, bias, col2im, mm->in[1]->in[0]) ||
         try_deconv_of(m, root, M, out, mm, bias, col2im, mm->in[1]);
}

/* ", [kh, kw], stride=[sh, sw]" and the padding when not 0: a pooling call's arguments */
static void put_pool_args(NnIdiom *out, const PoolSpec *p) {
  snprintf(out->kwargs, sizeof out->kwargs, ", [%lld, %lld], stride=[%lld, %lld]", (long long)p->kernel[0],
           (long long)p->kernel[1], (long long)p->stride[0], (long long)p->stride[1]);
  put_pair(out->kwargs, sizeof out->kwargs, "padding", p->pad, 0);
}

/* ---- max_pool2d ---- */

static bool try_max_pool(const Model *m, const INode *root, Match *M, NnIdiom *out) {
  if (root->op != OP_RMAX || root->flag || root->in[0]->op != OP_WINDOW) return false;
  const INode *win = root->in[0], *x = win->in[0];
  const Shape *ws = &win->shape;
  PoolSpec p = {.kernel = {ws->d[ws->rank - 2].k, ws->d[ws->rank - 1].k}, .stride = {win->i[0], win->i[1]},
                .pad = {win->i[2], win->i[3]}, .dilation = {win->i[4], win->i[5]}};
  for (int ceil = 0; ceil < 2; ceil++) {
    p.ceil_mode = ceil;
    *M = (Match){.users = M->users, .leaf = {x}, .nleaf = 1};
    Scratch s;
    scratch_open(&s, m, M);
    if (!verify(M, root, nn_max_pool2d(&s.S, M->stand_in[0], &p, (SrcLoc){0}))) continue;
    *out = (NnIdiom){.fn = "max_pool2d", .arg = {x}, .narg = 1};
    put_pool_args(out, &p);
    put_pair(out->kwargs, sizeof out->kwargs, "dilation", p.dilation, 1);
    if (ceil) strcat(out->kwargs, ", ceil_mode=true");
    return true;
  }
  return false;
}

/* ---- avg_pool2d ---- */

static bool try_avg_pool(const Model *m, const INode *root, Match *M, NnIdiom *out) {
  if (root->op != OP_DIV || root->in[0]->op != OP_SUM || root->in[0]->in[0]->op != OP_WINDOW) return false;
  const INode *win = root->in[0]->in[0], *x = win->in[0];
  const Shape *ws = &win->shape;
  PoolSpec p = {.kernel = {ws->d[ws->rank - 2].k, ws->d[ws->rank - 1].k}, .stride = {win->i[0], win->i[1]},
                .pad = {win->i[2], win->i[3]}, .dilation = {1, 1}};
  for (int variant = 0; variant < 4; variant++) {
    p.ceil_mode = variant & 1;
    p.count_include_pad = variant & 2;
    *M = (Match){.users = M->users, .leaf = {x}, .nleaf = 1};
    Scratch s;
    scratch_open(&s, m, M);
    if (!verify(M, root, nn_avg_pool2d(&s.S, M->stand_in[0], &p, (SrcLoc){0}))) continue;
    *out = (NnIdiom){.fn = "avg_pool2d", .arg = {x}, .narg = 1};
    put_pool_args(out, &p);
    if (p.ceil_mode) strcat(out->kwargs, ", ceil_mode=true");
    if (!p.count_include_pad) strcat(out->kwargs, ", count_include_pad=false");
    return true;
  }
  return false;
}

/* ---- pad (constant) ---- */

static bool try_pad(const Model *m, const INode *root, Match *M, NnIdiom *out) {
  if (root->op != OP_RESHAPE || root->in[0]->op != OP_WINDOW) return false;
  const INode *win = root->in[0], *x = win->in[0];
  const Shape *ws = &win->shape, *xs = &x->shape;
  if (ws->d[ws->rank - 1].k != 1 || ws->d[ws->rank - 2].k != 1 || xs->rank < 2) return false;
  int64_t top = win->i[2], left = win->i[3];
  int64_t bottom = ws->d[ws->rank - 4].k - xs->d[xs->rank - 2].k - top, right = ws->d[ws->rank - 3].k - xs->d[xs->rank - 1].k - left;
  int64_t pads[4] = {left, right, top, bottom};
  *M = (Match){.users = M->users, .leaf = {x}, .nleaf = 1};
  Scratch s;
  scratch_open(&s, m, M);
  if (!verify(M, root, nn_pad(&s.S, M->stand_in[0], pads, 4, win->f[0], (SrcLoc){0}))) return false;
  *out = (NnIdiom){.fn = "pad", .arg = {x}, .narg = 1};
  snprintf(out->kwargs, sizeof out->kwargs, ", [%lld, %lld, %lld, %lld]", (long long)left, (long long)right,
           (long long)top, (long long)bottom);
  if (win->f[0] != 0) {
    char v[40];
    put_number(v, sizeof v, win->f[0]);
    size_t n = strlen(out->kwargs);
    snprintf(out->kwargs + n, sizeof out->kwargs - n, ", value=%s", v);
  }
  return true;
}

/* ---- adaptive_avg_pool2d(x, 1) ---- */

static bool try_global_avg_pool(const Model *m, const INode *root, Match *M, NnIdiom *out) {
  if (root->op != OP_DIV || root->in[0]->op != OP_SUM || root->in[0]->in[0]->shape.rank < 3) return false;
  const INode *x = root->in[0]->in[0];
  *M = (Match){.users = M->users, .leaf = {x}, .nleaf = 1};
  Scratch s;
  scratch_open(&s, m, M);
  if (!verify(M, root, nn_adaptive_avg_pool2d(&s.S, M->stand_in[0], 1, 1, (SrcLoc){0}))) return false;
  *out = (NnIdiom){.fn = "adaptive_avg_pool2d", .arg = {x}, .narg = 1};
  snprintf(out->kwargs, sizeof out->kwargs, ", 1");
  return true;
}

/* ---- interpolate ---- */

/* interpolate(x, size=[oh, ow]) or (x, scale_factor=[sh, sw]): the factors 1 / the IR's scales */
static bool try_interpolate(const Model *m, const INode *root, Match *M, NnIdiom *out) {
  if (root->op != OP_RESIZE) return false;
  const INode *x = root->in[0];
  const Shape *s = &root->shape;
  const char *mode = root->i[0] ? "bilinear" : "nearest";
  for (int by_size = 1; by_size >= 0; by_size--) {
    int64_t oh = by_size ? s->d[s->rank - 2].k : 0, ow = by_size ? s->d[s->rank - 1].k : 0;
    double sh = by_size || !root->f[0] ? 0 : 1.0 / root->f[0], sw = by_size || !root->f[1] ? 0 : 1.0 / root->f[1];
    if (!by_size && (sh <= 0 || sw <= 0)) continue;
    *M = (Match){.users = M->users, .leaf = {x}, .nleaf = 1};
    Scratch sc;
    scratch_open(&sc, m, M);
    if (!verify(M, root, nn_interpolate(&sc.S, M->stand_in[0], dim_const(oh), dim_const(ow), sh, sw, mode, root->flag,
                                        (SrcLoc){0})))
      continue;
    *out = (NnIdiom){.fn = "interpolate", .arg = {x}, .narg = 1};
    char a[40], b[40];
    if (by_size) snprintf(out->kwargs, sizeof out->kwargs, ", size=[%lld, %lld]", (long long)oh, (long long)ow);
    else put_number(a, sizeof a, sh), put_number(b, sizeof b, sw),
         snprintf(out->kwargs, sizeof out->kwargs, ", scale_factor=[%s, %s]", a, b);
    size_t n = strlen(out->kwargs);
    snprintf(out->kwargs + n, sizeof out->kwargs - n, ", mode=\"%s\"%s", mode, root->flag ? ", align_corners=true" : "");
    return true;
  }
  return false;
}

bool nn_idiom_find(const Model *m, const INode *root, const int *users, NnIdiom *out, bool *inner) {
  static bool (*const idioms[])(const Model *, const INode *, Match *, NnIdiom *) = {
    try_conv, try_conv_transpose, try_max_pool, try_avg_pool, try_global_avg_pool, try_interpolate, try_pad,
  };
  Match M = {.users = users};
  for (size_t i = 0; i < sizeof idioms / sizeof *idioms; i++) {
    if (!idioms[i](m, root, &M, out)) continue;
    for (int k = 0; k < M.ncover; k++)
      if (M.cover[k] != root) inner[M.cover[k]->id] = true;
    return true;
  }
  return false;
}
