/* ir_dump.c — the stable text forms of the IR (nnc dump --stage=ir|opt|fused), which the
 * pass tests compare with expected files, and the IR invariant check. */
#include <stdarg.h>
#include <string.h>
#include "ir.h"

/* ---- attributes: attrs_<PRINT> of each ops.def row, appending " word" pieces to buf ---- */

static void put(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void put(char *buf, size_t len, const char *fmt, ...) {
  size_t k = strlen(buf);
  if (k + 1 >= len) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf + k, len - k, fmt, ap);
  va_end(ap);
}

static void put_dim(const Model *m, Dim d, char *buf, size_t len) {
  char b[64];
  dim_str(m, d, b, sizeof b);
  put(buf, len, "%s", b);
}

void attrs_none(const Model *m, const INode *n, char *buf, size_t len) {}

/* an elementwise op's float attributes, in ops.def's order */
void attrs_elem(const Model *m, const INode *n, char *buf, size_t len) {
  for (int i = 0; i < op_info[n->op].attrs.n; i++) put(buf, len, " %g", n->f[i]);
}

void attrs_input(const Model *m, const INode *n, char *buf, size_t len) { put(buf, len, " #%d", n->index); }

void attrs_param(const Model *m, const INode *n, char *buf, size_t len) {
  put(buf, len, " \"%s\"", m->params[n->index].name);
}

void attrs_const(const Model *m, const INode *n, char *buf, size_t len) {
  if (!n->data) {
    put(buf, len, " %g", n->f[0]);
    return;
  }
  Dim c = dim_const(shape_static_numel(&n->shape));
  put(buf, len, " [");
  for (int64_t i = 0; i < c.k && i < 8; i++) put(buf, len, "%s%g", i ? ", " : "", n->data[i]);
  put(buf, len, c.k > 8 ? ", ...]" : "]");
}

void attrs_dimval(const Model *m, const INode *n, char *buf, size_t len) {
  put(buf, len, " ");
  put_dim(m, (Dim){n->i[0], n->axes}, buf, len);
}

void attrs_axis(const Model *m, const INode *n, char *buf, size_t len) {
  put(buf, len, " axis=%lld", (long long)n->i[0]);
}

void attrs_reduce(const Model *m, const INode *n, char *buf, size_t len) {
  put(buf, len, " axes=[");
  for (int i = 0, first = 1; i < MAX_RANK; i++)
    if (n->axes & (1u << i)) put(buf, len, "%s%d", first ? "" : ",", i), first = 0;
  put(buf, len, "]%s", n->flag ? " keepdim" : "");
}

void attrs_permute(const Model *m, const INode *n, char *buf, size_t len) {
  put(buf, len, " [");
  for (int i = 0; i < n->shape.rank; i++) put(buf, len, "%s%lld", i ? "," : "", (long long)n->i[i]);
  put(buf, len, "]");
}

void attrs_slice(const Model *m, const INode *n, char *buf, size_t len) {
  put(buf, len, " axis=%lld start=%lld step=%lld", (long long)n->i[0], (long long)n->i[1], (long long)n->i[2]);
  if (n->i[3]) {
    put(buf, len, "+");
    put_dim(m, (Dim){1, (uint32_t)n->i[3]}, buf, len);
  }
}

/* stride, padding and dilation pairs in i[0..5] */
static void put_conv_geometry(const INode *n, char *buf, size_t len) {
  put(buf, len, " stride=%lld,%lld pad=%lld,%lld dilation=%lld,%lld", (long long)n->i[0], (long long)n->i[1],
      (long long)n->i[2], (long long)n->i[3], (long long)n->i[4], (long long)n->i[5]);
}

void attrs_window(const Model *m, const INode *n, char *buf, size_t len) {
  put_conv_geometry(n, buf, len);
  if (n->i[6] != 1 || n->i[7] != 1) put(buf, len, " input-dilation=%lld,%lld", (long long)n->i[6], (long long)n->i[7]);
  if (n->f[0] != 0) put(buf, len, " fill=%g", n->f[0]);
  if (n->flag) put(buf, len, " flip");
}

void attrs_col2im(const Model *m, const INode *n, char *buf, size_t len) { put_conv_geometry(n, buf, len); }

void attrs_resize(const Model *m, const INode *n, char *buf, size_t len) {
  put(buf, len, " %s%s scale=%g,%g", n->i[0] ? "bilinear" : "nearest", n->flag ? " align_corners" : "", n->f[0], n->f[1]);
}

void attrs_attention(const Model *m, const INode *n, char *buf, size_t len) {
  put(buf, len, " key=%lld scale=%g%s", (long long)n->i[0], n->f[0], n->flag ? " causal" : "");
}

void attrs_roi_align(const Model *m, const INode *n, char *buf, size_t len) {
  put(buf, len, " spatial_scale=%g sampling_ratio=%lld%s%s", n->f[0], (long long)n->i[0], n->flag ? " aligned" : "",
      n->i[1] ? " channels-last" : "");
}

void attrs_matmul(const Model *m, const INode *n, char *buf, size_t len) {
  if (n->i[0]) put(buf, len, " transA");
  if (n->i[1]) put(buf, len, " transB");
}

void attrs_scan(const Model *m, const INode *n, char *buf, size_t len) {
  put(buf, len, " %s steps=", n->scan->body->name);
  put_dim(m, n->scan->bound, buf, len);
  if (n->scan->reverse) put(buf, len, " reverse");
}

void attrs_scan_out(const Model *m, const INode *n, char *buf, size_t len) {
  put(buf, len, " #%lld", (long long)n->i[0]);
}

void ir_node_attrs(const Model *m, const INode *n, char *buf, size_t len) {
  buf[0] = '\0';
  op_info[n->op].print(m, n, buf, len);
}

static void dump_node(FILE *out, const Model *m, const INode *n) {
  char s[160], a[1024];
  fprintf(out, "  %%%d = %s", n->id, op_info[n->op].name);
  for (int k = 0; k < 3; k++)
    if (n->in[k]) fprintf(out, "%s%%%d", k ? ", " : " ", n->in[k]->id);
  ir_node_attrs(m, n, a, sizeof a);
  fputs(a, out);
  fprintf(out, " : %s\n", shape_str(m, n->dtype, &n->shape, s, sizeof s));
}

static void dump_signature(FILE *out, const Model *m, const Entry *e) {
  char s[160];
  fprintf(out, "entry %s(", e->name);
  for (int i = 0; i < e->nin; i++)
    fprintf(out, "%s%s: %s", i ? ", " : "", e->in_names[i],
            shape_str(m, e->inputs[i]->dtype, &e->inputs[i]->shape, s, sizeof s));
  fprintf(out, ") -> (");
  for (int i = 0; i < e->nout; i++)
    fprintf(out, "%s%s: %s", i ? ", " : "", e->out_names[i],
            shape_str(m, e->out_dtypes[i], &e->out_shapes[i], s, sizeof s));
  fprintf(out, ")\n");
}

void ir_dump_entry(FILE *out, const Model *m, const Entry *e) {
  dump_signature(out, m, e);
  for (int i = 0; i < e->nnodes; i++) dump_node(out, m, e->nodes[i]);
  fprintf(out, "  return");
  for (int i = 0; i < e->nout; i++) fprintf(out, "%s%%%d", i ? ", " : " ", e->outputs[i]->id);
  fprintf(out, "\n");
}

void ir_dump_model(FILE *out, const Model *m) {
  fprintf(out, "model %s\n", m->name);
  for (int i = 0; i < m->nparams; i++) {
    const Param *p = &m->params[i];
    Shape s = {.rank = p->rank};
    char b[160];
    for (int k = 0; k < p->rank; k++) s.d[k] = dim_const(p->shape[k]);
    fprintf(out, "param \"%s\" : %s\n", p->name, shape_str(m, p->dtype, &s, b, sizeof b));
  }
  for (int i = 0; i < m->nentries; i++) ir_dump_entry(out, m, &m->entries[i]);
}

static const char *kernel_kind[] = {"elementwise", "reduce", "gemm", "opaque", "scan"};

void ir_dump_fused(FILE *out, const Model *m) {
  fprintf(out, "model %s\n", m->name);
  /* the entries, the init entry, then the scan bodies (entries of their own, called per step) */
  int ninit = m->init != NULL;
  for (int i = 0; i < m->nentries + ninit + m->nbodies; i++) {
    const Entry *e = i < m->nentries ? &m->entries[i] : i < m->nentries + ninit ? m->init : m->bodies[i - m->nentries - ninit];
    char s[160];
    dump_signature(out, m, e);
    for (int k = 0; k < e->nkernels; k++) {
      const Kernel *K = &e->kernels[k];
      fprintf(out, "  kernel %d %s %s", k, kernel_kind[K->kind], shape_str(m, DT_F32, &K->domain, s, sizeof s));
      if (K->kind == KK_REDUCE) {
        fprintf(out, " reduce-axes=[");
        for (int a = 0, first = 1; a < K->domain.rank; a++)
          if (K->raxes & (1u << a)) fprintf(out, "%s%d", first ? "" : ",", a), first = 0;
        fprintf(out, "]");
      }
      fprintf(out, " ->");
      for (int o = 0; o < K->nouts; o++) {
        const INode *t = K->outs[o];
        if (t->out_index >= 0) fprintf(out, " %%%d(out %s)", t->id, e->out_names[t->out_index]);
        else fprintf(out, " %%%d(slot %d)", t->id, t->slot);
      }
      fprintf(out, "\n");
      /* covered ops in topological order */
      for (int n = 0; n < e->nnodes; n++)
        for (int c = 0; c < K->ncovers; c++)
          if (K->covers[c] == e->nodes[n]) dump_node(out, m, e->nodes[n]);
    }
    for (int s2 = 0, prev = -1; s2 < e->nslots; s2++) {
      const Slot *sl = &e->slots[s2];
      dim_str(m, sl->region >= 0 ? sl->off : sl->bytes, s, sizeof s);
      if (sl->region >= 0) {
        fprintf(out, "  slot %d: in slot %d at %s\n", s2, sl->region, s);
        continue;
      }
      fprintf(out, "  slot %d: %s bytes", s2, s);
      if (sl->overlay) {
        dim_str(m, sl->at, s, sizeof s);
        fprintf(out, ", over slot %d from %s", prev, s);
      }
      fprintf(out, "\n");
      prev = s2;
    }
  }
}

void ir_check(const Model *m) {
  for (int i = 0; i < m->nentries; i++) {
    const Entry *e = &m->entries[i];
    for (int n = 0; n < e->nnodes; n++) {
      const INode *x = e->nodes[n];
      for (int k = 0; k < op_info[x->op].arity; k++) {
        if (x->op == OP_CONST || x->op == OP_DIMVAL) break;
        if (x->op == OP_PACK && k == 1) break; /* the last link of a scan's operand chain has no rest */
        if (x->op == OP_ATTENTION && k == 2) break; /* its mask is optional */
        if (!x->in[k]) unreachable("node lacks an input");
        if (x->in[k]->replaced) unreachable("node uses a replaced node");
      }
    }
    for (int o = 0; o < e->nout; o++)
      if (!e->outputs[o] || e->outputs[o]->replaced) unreachable("bad entry output");
  }
}
