/* convplan.c — the direct-convolution plan of a GEMM kernel (convplan.h). */
#include "convplan.h"
#include "target.h"

#define MAX_STRIDE 64
/* A symbolic row's vector width is picked for a row this long (a mid-network map) */
#define SYMBOLIC_ROW_GUESS 64
/* The scratch bound of a symbolic plan: hq <= oh + ROWS_SLACK and wq <= ow + COLS_SLACK
 * (or the exact excess when larger), one pair of derived symbols per output size that
 * every convolution on it shares (a model has at most MAX_SYMS symbols) */
#define ROWS_SLACK 8
#define COLS_SLACK 16

const double winograd_G[4][3] = {{1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}};

/* Phases 0..n-1 of one axis and the largest shift of a tap; false when the used phases are
 * not the first n (stride 3 with dilation 2 uses phases 0 and 2: left to im2col). */
static bool plan_axis(int64_t taps, int64_t stride, int64_t dil, int64_t *nphase, int64_t *shift) {
  bool used[MAX_STRIDE] = {false};
  if (stride < 1 || stride > MAX_STRIDE || dil < 1) return false;
  *nphase = *shift = 0;
  for (int64_t t = 0; t < taps; t++) {
    used[t * dil % stride] = true;
    if (t * dil / stride > *shift) *shift = t * dil / stride;
  }
  while (*nphase < stride && used[*nphase]) (*nphase)++;
  for (int64_t p = *nphase; p < stride; p++)
    if (used[p]) return false;
  return true;
}

/* The cost of n floats in vectors of `lanes`, in 8-float FMAs: one a vector, or where the
 * host splits a wider vector (target_host_wide_fma false: Zen 4) one per 8-float half. */
int64_t conv_vector_cost(int lanes, int64_t n) {
  int64_t vectors = (n + lanes - 1) / lanes;
  return lanes > 8 && !target_host_wide_fma() ? vectors * (lanes / 8) : vectors;
}

/* The vector width that takes the least time over a row of ow outputs (conv_vector_cost).
 * So a 28-column row takes 8-float vectors on AVX2 (4 of them, not 7 of 4 floats) and on Zen 4
 * (16 floats: as many halves), 16 on Zen 5 (2 FMAs, not 4); an 8-wide map takes 8, not 16 (half
 * of every vector idle).  Ties go to the narrower vector: a shorter padded copy. */
static int pick_lanes(int host, int64_t ow) {
  int best = host;
  int64_t best_cost = INT64_MAX;
  for (int lanes = 4; lanes <= host; lanes *= 2) {
    int64_t cost = conv_vector_cost(lanes, ow);
    if (cost < best_cost) best = lanes, best_cost = cost;
  }
  return best;
}

/* The host's vector width, narrower only when a row of n floats fits in half of one: a long
 * row's masked last vector wastes less than half-width FMAs would (84 columns: 6 vectors of
 * 16).  Row tiles and depthwise convolutions take it. */
static int host_lanes_for_row(int host, int64_t n) {
  int lanes = host;
  while (lanes > 4 && n <= lanes / 2) lanes /= 2;
  return lanes;
}


/* Rows run together (convplan.h) where that takes an eighth less vector time. */
static void plan_flat(ConvPlan *c, int host) {
  if (c->symbolic || c->winograd || c->groups != 1) return;
  ConvPlan flat = *c;
  flat.lanes = host;
  flat.wq = c->ow + c->shift[1];
  if (8 * conv_vector_cost(host, conv_plan_flat_columns(&flat)) >= 7 * c->oh * conv_vector_cost(c->lanes, c->ow)) return;
  flat.flat = true;
  *c = flat;
}

bool conv_plan(const Kernel *K, ConvPlan *c) {
  return K->kind == KK_GEMM && K->prologue && conv_plan_of(K->gemm, K->prologue, c);
}

bool conv_plan_of(const INode *g, const INode *cols, ConvPlan *c) {
  if (g->op != OP_MATMUL || g->i[0] || g->i[1] || g->shape.rank != 4 || cols->op != OP_RESHAPE) return false;
  /* columns = reshape(permute(reshape(window(x)), [0,1,2,5,6,3,4])): nn.c columns() */
  static const int to_columns[7] = {0, 1, 2, 5, 6, 3, 4};
  INode *perm = cols->in[0];
  if (perm->op != OP_PERMUTE || perm->shape.rank != 7) return false;
  for (int k = 0; k < 7; k++)
    if (perm->i[k] != to_columns[k]) return false;
  INode *split = perm->in[0], *win = split->in[0];
  if (split->op != OP_RESHAPE || win->op != OP_WINDOW || win->shape.rank != 6 || win->flag || win->f[0] != 0.0 ||
      win->i[6] != 1 || win->i[7] != 1)
    return false;
  const Shape *ws = &win->shape, *gs = &g->shape;
  INode *x = win->in[0];
  if (x->shape.rank != 4 || gs->d[1].syms || gs->d[2].syms || ws->d[1].syms || ws->d[4].syms || ws->d[5].syms ||
      !dim_eq(ws->d[0], gs->d[0]))
    return false;
  *c = (ConvPlan){.x = x, .groups = gs->d[1].k, .ohd = ws->d[2], .owd = ws->d[3], .kh = ws->d[4].k, .kw = ws->d[5].k};
  c->symbolic = c->ohd.syms || c->owd.syms;
  c->oh = c->ohd.syms ? 0 : c->ohd.k;
  c->ow = c->owd.syms ? 0 : c->owd.k;
  c->cin = ws->d[1].k / c->groups;
  if (c->cin * c->groups != ws->d[1].k) return false;
  int64_t taps[2] = {c->kh, c->kw};
  for (int a = 0; a < 2; a++) {
    c->stride[a] = win->i[a];
    c->pad[a] = win->i[2 + a];
    c->dil[a] = win->i[4 + a];
    if (!plan_axis(taps[a], c->stride[a], c->dil[a], &c->nphase[a], &c->shift[a])) return false;
  }
  int host, regs;
  target_host_simd(&host, &regs);
  /* a depthwise convolution (static sizes) takes the host's vectors: its tiles are whole rows
   * that share their taps' loads (conv.c depthwise_tile_vec), and 16 floats ran 1.1-1.5x
   * faster than 8 with AVX-512 even where a 16-float FMA costs two 8-float ones (half the loads
   * and instructions: 576 channels at 14x14 49 -> 40 us, 32 at 112x112 167 -> 111 us); a
   * 7-column row stays at 8 (16: 0.75-0.93x) */
  bool depthwise = c->cin == 1 && c->groups > 1 && !c->owd.syms;
  c->lanes = depthwise ? host_lanes_for_row(host, c->ow) : pick_lanes(host, c->owd.syms ? SYMBOLIC_ROW_GUESS : c->ow);
  /* output rows of 4 or fewer columns: 4-float vectors use a quarter of an AVX-512 FMA, and
   * im2col + sgemm is faster (fcn's 4x4 and 2x2 maps); not with groups, whose sgemm calls
   * per group (a depthwise convolution's: one row of 9 taps each) cost far more */
  if (c->lanes < 8 && host >= 8 && c->groups == 1) return false;
  c->hq = c->ohd.syms ? 0 : c->oh + c->shift[0];
  c->wq = c->owd.syms ? 0 : (c->ow + c->lanes - 1) / c->lanes * c->lanes + c->shift[1];
  c->cout = gs->d[2].k;
  c->winograd = g->in[2] != NULL;
  plan_flat(c, host);
  return true;
}

/* Static sizes: even ones, rows of tiles short enough for vector rows (vector_row.c), and with
 * few channels V and M within L2: with 16 channels on 64x64 maps (2 MiB of V and M an image)
 * the transforms, bound by L2's misses, cost more than the products save (fcn at batch 8: the
 * direct convolution 11 % faster), where on 32x32 (0.5 MiB: groupnorm) and smaller maps
 * Winograd wins by 5-7 %.  Symbolic sizes: any (the last tile row and column may be half
 * outside the output: winograd.c). */
bool conv_plan_winograd_fits(const ConvPlan *c) {
  int host, regs;
  target_host_simd(&host, &regs);
  bool shape = c->kh == 3 && c->kw == 3 && c->stride[0] == 1 && c->stride[1] == 1 && c->dil[0] == 1 && c->dil[1] == 1 &&
               c->cin >= WINOGRAD_MIN_CHANNELS && c->cout >= WINOGRAD_MIN_CHANNELS;
  if (!shape) return false;
  if (c->symbolic) return true;
  int64_t vm_bytes = 4 * 16 * (c->cin + c->cout) * conv_plan_tiles(c);
  bool transforms_cached = c->cin >= WINOGRAD_MANY_CHANNELS || c->cout >= WINOGRAD_MANY_CHANNELS ||
                           vm_bytes <= target_host_caches().l2;
  return c->oh % 2 == 0 && c->ow % 2 == 0 && c->ow / 2 <= 4 * host && transforms_cached;
}

int64_t conv_plan_tiles(const ConvPlan *c) { return (c->oh / 2) * (c->ow / 2); }

int64_t conv_plan_winograd_v_stride(const ConvPlan *c) { return c->cin * conv_plan_tiles_padded(c) + WINOGRAD_SKEW; }
int64_t conv_plan_winograd_m_stride(const ConvPlan *c) { return c->cout * conv_plan_tiles(c) + WINOGRAD_SKEW; }

int64_t conv_plan_tiles_padded(const ConvPlan *c) {
  int64_t t = conv_plan_tiles(c);
  return (t + c->lanes - 1) / c->lanes * c->lanes;
}

int64_t conv_plan_channel_floats(const ConvPlan *c) { return c->nphase[0] * c->nphase[1] * c->hq * c->wq; }

int64_t conv_plan_copy_floats(const ConvPlan *c) {
  return c->cin * conv_plan_channel_floats(c) + (c->flat ? c->lanes : 0);
}

int64_t conv_plan_flat_columns(const ConvPlan *c) { return (c->oh - 1) * c->wq + c->ow; }

int64_t conv_plan_tap(const ConvPlan *c, int64_t i, int64_t j) {
  int64_t dy = i * c->dil[0], dx = j * c->dil[1];
  int64_t phase = (dy % c->stride[0]) * c->nphase[1] + dx % c->stride[1];
  return (phase * c->hq + dy / c->stride[0]) * c->wq + dx / c->stride[1];
}

void conv_plan_tap_parts(const ConvPlan *c, int64_t i, int64_t j, int64_t part[3]) {
  int64_t dy = i * c->dil[0], dx = j * c->dil[1];
  part[0] = (dy % c->stride[0]) * c->nphase[1] + dx % c->stride[1];
  part[1] = dy / c->stride[0];
  part[2] = dx / c->stride[1];
}

/* size + excess, or a bound size + max(excess, slack) as a derived symbol that shares none of
 * `avoid`'s symbols (a Dim holds each symbol once) */
static bool bound_axis(Model *m, Dim size, int64_t excess, int64_t slack, uint32_t avoid, SrcLoc loc, Dim *out) {
  if (!size.syms) {
    *out = dim_const(size.k + excess);
    return true;
  }
  if (size.syms & (size.syms - 1)) return false; /* a product of symbols: no rule derives from it */
  Diag quiet = {.has_error = 1};                  /* failure is an answer here, not an error */
  bool ok = true;
  for (int64_t add = excess > slack ? excess : slack; ok; add++) {
    *out = dim_derive(m, size, 1, add, 1, "conv2d: the rows of the padded input copy", loc, &quiet, &ok);
    if (ok && !(out->syms & avoid)) return true;
  }
  return false;
}

/* Rows of a symbolic plan's copy past its output rows: the largest tap shift, and with
 * Winograd one more (an odd oh's last tile row reads rows oh - 1 .. oh + 2). */
int64_t conv_plan_rows_excess(const ConvPlan *c) { return c->shift[0] + (c->winograd && c->symbolic); }

bool conv_plan_copy_bound(Model *m, const ConvPlan *c, SrcLoc loc, Dim *floats) {
  Dim hq, wq;
  if (!c->symbolic) {
    *floats = dim_const(conv_plan_copy_floats(c));
    return true;
  }
  uint32_t images = c->x->shape.d[0].syms; /* the slot holds N x groups copies */
  if (!bound_axis(m, c->ohd, conv_plan_rows_excess(c), ROWS_SLACK, images, loc, &hq)) return false;
  /* a static width's rows are exact; a symbolic one's last vector is padded by up to lanes - 1 */
  int64_t wpad = c->owd.syms ? c->lanes - 1 : (c->ow + c->lanes - 1) / c->lanes * c->lanes - c->ow;
  if (!bound_axis(m, c->owd, wpad + c->shift[1], COLS_SLACK, images | hq.syms, loc, &wq)) return false;
  *floats = (Dim){c->cin * c->nphase[0] * c->nphase[1] * hq.k * wq.k, hq.syms | wq.syms};
  return true;
}

/* A symbolic plan's V holds 16 matrices of cin x tp floats plus a skew, tp <= t + lanes - 1
 * (t = th * tw tiles, th = ceil(oh / 2), tw = ceil(ow / 2)), and M 16 of cout x t plus a skew:
 * with cin, cout >= 8 both stay within 16 * channels * (t + lanes + 3) <= 16 * channels *
 * (th + a) * (tw + b) for a * b >= lanes + 3.  R rows with R / 2 >= th + a (R >= oh + 1 + 2a)
 * and C columns with C / 2 >= tw + b bound it as 4 * channels * R * C.  The a and b chosen keep
 * R and C within the copy's slack (oh + 8, ow + 16): the same derived symbols. */
bool conv_plan_winograd_bound(Model *m, const ConvPlan *c, SrcLoc loc, Dim *v, Dim *mm) {
  if (!c->symbolic) {
    *v = dim_const(16 * conv_plan_winograd_v_stride(c));
    *mm = dim_const(16 * conv_plan_winograd_m_stride(c));
    return true;
  }
  int64_t need = c->lanes + 3;
  int64_t a = !c->ohd.syms ? need : !c->owd.syms ? 1 : 3, b = (need + a - 1) / a;
  uint32_t images = c->x->shape.d[0].syms;
  Dim rows, cols;
  if (!bound_axis(m, c->ohd, 1 + 2 * a, ROWS_SLACK, images, loc, &rows) ||
      !bound_axis(m, c->owd, 1 + 2 * b, COLS_SLACK, images | rows.syms, loc, &cols))
    return false;
  uint32_t syms = rows.syms | cols.syms;
  *v = (Dim){4 * c->cin * rows.k * cols.k, syms};
  *mm = (Dim){4 * c->cout * rows.k * cols.k, syms};
  return true;
}

int64_t conv_plan_group_block(const ConvPlan *c) {
  if (c->winograd || c->groups < 2 || c->cin != 1) return 1;
  /* symbolic: the block that a map of LOOPIR_SYMBOLIC_MAP rows and columns would take at
   * most; whether its copies fit is decided at run time (conv.c) */
  int64_t bytes = c->symbolic ? 0 : 4 * (conv_plan_copy_floats(c) + c->cout * c->oh * c->ow), best = 1;
  for (int64_t b = 2; b <= GROUP_BLOCK_MAX && b * bytes <= GROUP_BLOCK_BYTES && c->groups / b >= GROUP_BLOCKS_MIN; b++)
    if (c->groups % b == 0) best = b;
  return best;
}

int row_tile_lanes(int64_t k, int64_t n) {
  int host, regs;
  target_host_simd(&host, &regs);
  int lanes = host_lanes_for_row(host, n);
  /* rows of 1-3 columns: mostly idle lanes, OpenBLAS does better (cfr's one-output heads);
   * 4 columns in 4-float vectors still beat OpenBLAS (fcn's 2x2 maps: im2col [1152, 4]) */
  if (k < 1 || n < 1 || (lanes < 8 && host >= 8 && n < 4)) return 0;
  return lanes;
}

int row_tile_lanes_symbolic(void) {
  int host, regs;
  target_host_simd(&host, &regs);
  return pick_lanes(host, SYMBOLIC_ROW_GUESS);
}

int64_t row_tiles_max_floats(void) {
  return target_host_caches().l2 / (int64_t)sizeof(float);
}

int64_t row_tiles_part_floats(void) {
  return target_host_caches().l2 / ROW_TILES_PART_SHARE / (int64_t)sizeof(float);
}
