/* dot.c — the graph IR as a Graphviz picture (nnc dump --stage=ir|opt|fused --format=dot).
 *
 * One cluster per exported entry, and one for the entry computing derived parameters and
 * for each scan body (a dotted edge links a scan op to its body).  Inputs are ellipses,
 * parameters notes with their state_dict names, constants plain text, outputs double
 * octagons; every op is a box with its IR id (%7, as in the text dumps), op name, attributes
 * and result type.  With `fused`, each kernel is a nested cluster (gemm blue, reduce orange,
 * elementwise green, opaque purple: a whole-op kernel such as roi_align, scan yellow)
 * holding the ops it computes; the results it writes to memory have a bold border and name
 * their destination (a workspace slot or an entry output).  An inlined op that several
 * kernels recompute is drawn in the first of them and says where else it runs; a view that
 * needs no kernel (a reshape aliasing its input) is dashed, outside the kernels.
 *
 *   nnc dump --stage=fused --format=dot examples/realnvp.nn | dot -Tpng -o realnvp.png */
#include <stdbool.h>
#include <string.h>
#include "ir.h"

/* Write `s` escaped for a double-quoted DOT string. */
static void put_escaped(FILE *out, const char *s) {
  for (; *s; s++) {
    if (*s == '"' || *s == '\\') fputc('\\', out);
    if (*s == '\n') fputs("\\n", out);
    else fputc(*s, out);
  }
}

static const char *type_str(const Model *m, const INode *n, char *buf, size_t len) {
  return shape_str(m, n->dtype, &n->shape, buf, len);
}

/* The op's attributes as the text dump prints them (ir_dump.c), e.g. "axes=[1] keepdim". */
static void node_attrs(const Model *m, const INode *n, char *buf, size_t len) {
  ir_node_attrs(m, n, buf, len);
  if (buf[0] == ' ') memmove(buf, buf + 1, strlen(buf));
}

/* "1.5" for a fill, "[1, 0]" (at most four values) for data. */
static void const_str(const INode *n, char *buf, size_t len) {
  if (!n->data) {
    snprintf(buf, len, "%g", n->f[0]);
    return;
  }
  Dim c = dim_const(shape_static_numel(&n->shape));
  size_t k = (size_t)snprintf(buf, len, "[");
  for (int64_t i = 0; i < c.k && i < 4 && k < len; i++)
    k += snprintf(buf + k, len - k, "%s%g", i ? ", " : "", n->data[i]);
  if (k < len) snprintf(buf + k, len - k, c.k > 4 ? ", ...]" : "]");
}

/* ---- leaves and ops ---- */

static void leaf_node(FILE *out, const Model *m, const Entry *e, int ei, const INode *n) {
  char t[160], v[160];
  fprintf(out, "    e%d_n%d [", ei, n->id);
  switch (n->op) {
  case OP_INPUT:
    fputs("shape=ellipse, style=filled, fillcolor=\"#fff3b0\", label=\"", out);
    put_escaped(out, e->in_names[n->index]);
    break;
  case OP_PARAM:
    fputs("shape=note, style=filled, fillcolor=\"#eeeeee\", label=\"", out);
    put_escaped(out, m->params[n->index].name);
    break;
  default: /* const, dimval */
    if (n->op == OP_DIMVAL) node_attrs(m, n, v, sizeof v);
    else const_str(n, v, sizeof v);
    fprintf(out, "shape=plaintext, label=\"%s ", op_info[n->op].name);
    put_escaped(out, v);
    break;
  }
  fprintf(out, "\\n%s\"];\n", type_str(m, n, t, sizeof t));
}

/* Kernels (other than `home`) that also compute `n`, as ", 3, 7"; false when none. */
static bool recomputed_in(const Entry *e, const INode *n, int home, char *buf, size_t len) {
  size_t k = 0;
  buf[0] = '\0';
  for (int j = 0; j < e->nkernels; j++)
    for (int c = 0; j != home && c < e->kernels[j].ncovers; c++)
      if (e->kernels[j].covers[c] == n) {
        k += snprintf(buf + k, k < len ? len - k : 0, "%s%d", k ? ", " : "", j);
        break;
      }
  return k > 0;
}

/* Where a materialized result goes, or NULL when the op is inlined. */
static const char *destination(const Entry *e, const INode *n, bool fused, char *buf, size_t len) {
  if (!fused || n->kernel < 0) return NULL;
  if (n->out_index >= 0) snprintf(buf, len, "out %s", e->out_names[n->out_index]);
  else if (n->slot >= 0) snprintf(buf, len, "slot %d", n->slot);
  else snprintf(buf, len, "memory");
  return buf;
}

static void op_node(FILE *out, const Model *m, const Entry *e, int ei, const INode *n,
                    bool fused, int home) {
  char t[160], a[256], d[128], r[256];
  node_attrs(m, n, a, sizeof a);
  const char *dest = destination(e, n, fused, d, sizeof d);
  fprintf(out, "      e%d_n%d [label=\"%%%d %s", ei, n->id, n->id, op_info[n->op].name);
  if (a[0]) fprintf(out, " %s", a);
  fprintf(out, "\\n%s", type_str(m, n, t, sizeof t));
  if (dest) fputs("\\n→ ", out), put_escaped(out, dest);
  if (fused && recomputed_in(e, n, home, r, sizeof r)) fprintf(out, "\\n(also in kernel %s)", r);
  if (fused && home < 0) fputs("\\n(a view: no kernel)", out); /* e.g. a reshape aliasing its input */
  fprintf(out, "\"%s];\n", dest ? ", penwidth=2.5" : fused && home < 0 ? ", style=\"rounded,dashed\"" : "");
}

/* ---- kernels ---- */

/* Name and colour of a kernel kind; kinds added later get a generic grey cluster. */
static const char *kind_name(KernelKind k) {
  switch (k) {
  case KK_ELEM: return "elementwise";
  case KK_REDUCE: return "reduce";
  case KK_GEMM: return "gemm";
  case KK_OPAQUE: return "opaque";
  case KK_SCAN: return "scan";
  default: return "kernel";
  }
}

static const char *kind_color(KernelKind k) {
  switch (k) {
  case KK_ELEM: return "#e3f5e1";
  case KK_REDUCE: return "#fde8d0";
  case KK_GEMM: return "#dde8fb";
  case KK_OPAQUE: return "#f3e3f7";
  case KK_SCAN: return "#fff8d6";
  default: return "#eeeeee";
  }
}

/* The kernel an op is drawn in: the one producing it, else the first that inlines it. */
static int home_kernel(const Entry *e, const INode *n) {
  if (n->kernel >= 0) return n->kernel;
  for (int j = 0; j < e->nkernels; j++)
    for (int c = 0; c < e->kernels[j].ncovers; c++)
      if (e->kernels[j].covers[c] == n) return j;
  return -1;
}

static void kernel_cluster(FILE *out, const Model *m, const Entry *e, int ei, int k,
                           const int *home) {
  const Kernel *K = &e->kernels[k];
  char s[160];
  fprintf(out, "    subgraph cluster_e%d_k%d {\n", ei, k);
  fprintf(out, "      label=\"kernel %d: %s %s\"; style=\"filled,rounded\"; fillcolor=\"%s\";\n", k,
          kind_name(K->kind), shape_str(m, DT_F32, &K->domain, s, sizeof s), kind_color(K->kind));
  for (int i = 0; i < e->nnodes; i++)
    if (home[i] == k) op_node(out, m, e, ei, e->nodes[i], true, k);
  fputs("    }\n", out);
}

/* ---- entries ---- */

static void entry_label(FILE *out, const Model *m, const Entry *e, const char *what) {
  char s[160];
  fprintf(out, "%s ", what);
  put_escaped(out, e->name);
  fputs("(", out);
  for (int i = 0; i < e->nin; i++) {
    fputs(i ? ", " : "", out);
    put_escaped(out, e->in_names[i]);
    fprintf(out, ": %s", shape_str(m, e->inputs[i]->dtype, &e->inputs[i]->shape, s, sizeof s));
  }
  fputs(") → (", out);
  for (int i = 0; i < e->nout; i++) {
    fputs(i ? ", " : "", out);
    put_escaped(out, e->out_names[i]);
    fprintf(out, ": %s", shape_str(m, e->out_dtypes[i], &e->out_shapes[i], s, sizeof s));
  }
  fputs(")", out);
}

static void entry_edges(FILE *out, const Entry *e, int ei) {
  for (int i = 0; i < e->nnodes; i++) {
    const INode *n = e->nodes[i];
    for (int k = 0; k < 3; k++)
      if (n->in[k]) fprintf(out, "    e%d_n%d -> e%d_n%d;\n", ei, n->in[k]->id, ei, n->id);
  }
  for (int o = 0; o < e->nout; o++) {
    fprintf(out, "    e%d_out%d [shape=doubleoctagon, style=filled, fillcolor=\"#fff3b0\", label=\"", ei, o);
    put_escaped(out, e->out_names[o]);
    fprintf(out, "\"];\n    e%d_n%d -> e%d_out%d;\n", ei, e->outputs[o]->id, ei, o);
  }
}

/* The cluster number of a scan body (after the entries and the init entry), or -1. */
static int body_cluster(const Model *m, const Entry *body) {
  for (int i = 0; i < m->nbodies; i++)
    if (m->bodies[i] == body) return m->nentries + (m->init != NULL) + i;
  return -1;
}

/* A dotted edge from each scan op to the cluster of the body it runs. */
static void scan_edges(FILE *out, const Model *m, const Entry *e, int ei) {
  for (int i = 0; i < e->nnodes; i++) {
    const INode *n = e->nodes[i];
    int bi = n->op == OP_SCAN ? body_cluster(m, n->scan->body) : -1;
    if (bi >= 0 && n->scan->body->nnodes > 0)
      fprintf(out, "  e%d_n%d -> e%d_n%d [lhead=cluster_e%d, style=dotted, label=\"runs\"];\n", ei, n->id, bi,
              n->scan->body->nodes[0]->id, bi);
  }
}

static void entry_graph(FILE *out, const Model *m, const Entry *e, int ei, bool fused, const char *what) {
  fprintf(out, "  subgraph cluster_e%d {\n    label=\"", ei);
  entry_label(out, m, e, what);
  fputs("\"; style=rounded; color=\"#777777\";\n", out);
  int *home = arena_alloc(m->arena, (size_t)(e->nnodes + 1) * sizeof *home);
  for (int i = 0; i < e->nnodes; i++) {
    const INode *n = e->nodes[i];
    home[i] = fused && op_info[n->op].kind != FK_LEAF ? home_kernel(e, n) : -1;
    if (op_info[n->op].kind == FK_LEAF) leaf_node(out, m, e, ei, n);
    else if (home[i] < 0) op_node(out, m, e, ei, n, fused, -1);
  }
  for (int k = 0; fused && k < e->nkernels; k++) kernel_cluster(out, m, e, ei, k, home);
  entry_edges(out, e, ei);
  fputs("  }\n", out);
}

/* Write the model as one DOT digraph: the graph IR, or with `fused` its kernels as clusters. */
void dot_dump_model(FILE *out, const Model *m, bool fused) {
  fputs("digraph \"", out);
  put_escaped(out, m->name);
  fprintf(out, "\" {\n  label=\"");
  put_escaped(out, m->name);
  fprintf(out, " (%s)\"; labelloc=t; fontname=\"Helvetica\"; compound=true; newrank=true;\n",
          fused ? "fused kernels" : "graph IR");
  fputs("  node [shape=box, style=\"rounded,filled\", fillcolor=white, fontname=\"Helvetica\", "
        "fontsize=10];\n  edge [color=\"#555555\", arrowsize=0.6];\n", out);
  int ei = 0;
  for (int i = 0; i < m->nentries; i++) entry_graph(out, m, &m->entries[i], ei++, fused, "entry");
  if (m->init) entry_graph(out, m, m->init, ei++, fused, "derived parameters:");
  for (int i = 0; i < m->nbodies; i++) entry_graph(out, m, m->bodies[i], ei++, fused, "scan body");
  for (int i = 0; i < m->nentries; i++) scan_edges(out, m, &m->entries[i], i);
  for (int i = 0; i < m->nbodies; i++) scan_edges(out, m, m->bodies[i], body_cluster(m, m->bodies[i]));
  fputs("}\n", out);
}
