/* onnx_reader.c — an ONNX model file into an OnnxModel (onnx_reader.h).
 *
 * The bytes are checked by a walk over the wire format (onnx_wire.c), unpacked by protobuf-c
 * with an allocator that caps its memory at ONNX_UNPACK_BASE + ONNX_UNPACK_FACTOR × the file
 * size, then converted into the arena: the model (ir_version, producer, opset imports), its
 * graph's nodes and their attributes, initializers (onnx_tensor.c), inputs, outputs and
 * value_info.  The unpacked message is freed before returning; the model owns only its arena. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fileio.h"
#include "onnx_internal.h"

#define ONNX_UNPACK_BASE ((size_t)256 << 20)
#define ONNX_UNPACK_FACTOR 16

/* ---- protobuf-c's allocations, counted and capped ---- */

typedef struct Budget {
  size_t used, limit;
  bool exceeded;
} Budget;

static void *budget_alloc(void *data, size_t size) {
  Budget *b = data;
  if (size > b->limit - b->used || size > SIZE_MAX - 16) {
    b->exceeded = true;
    return NULL;
  }
  size_t *p = malloc(size + 16); /* the size before the block, 16 bytes to keep alignment */
  if (!p) return NULL;
  b->used += size;
  p[0] = size;
  return (char *)p + 16;
}

static void budget_free(void *data, void *ptr) {
  if (!ptr) return;
  Budget *b = data;
  size_t *p = (size_t *)((char *)ptr - 16);
  b->used -= p[0];
  free(p);
}

/* ---- names and places ---- */

/* "node 3 'conv1' (Conv)" or "node 3 (Conv)" into buf */
static const char *node_place(char *buf, size_t size, int index, const char *name, const char *op) {
  char c1[ONNX_CLIP_SIZE], c2[ONNX_CLIP_SIZE];
  if (name && *name)
    snprintf(buf, size, "node %d '%s' (%s)", index, onnx_clip(c1, name), onnx_clip(c2, op ? op : ""));
  else
    snprintf(buf, size, "node %d (%s)", index, onnx_clip(c2, op ? op : ""));
  return buf;
}

static bool is_default_domain(const char *d) { return !*d || strcmp(d, "ai.onnx") == 0; }

int64_t onnx_model_opset(const OnnxModel *m, const char *domain) {
  for (int i = 0; i < m->n_opsets; i++)
    if (strcmp(m->opsets[i].domain, domain) == 0 ||
        (is_default_domain(domain) && is_default_domain(m->opsets[i].domain)))
      return m->opsets[i].version;
  return -1;
}

const OnnxAttr *onnx_node_attr(const OnnxNode *n, const char *name) {
  for (int i = 0; i < n->n_attrs; i++)
    if (strcmp(n->attrs[i].name, name) == 0) return &n->attrs[i];
  return NULL;
}

const OnnxTensor *onnx_model_initializer(const OnnxModel *m, const char *name) {
  for (int i = 0; i < m->n_initializers; i++)
    if (strcmp(m->initializers[i].name, name) == 0) return &m->initializers[i];
  return NULL;
}

/* A count of the file within `max`; `what` names it ("nodes"). */
static int check_count(OnnxReader *r, size_t n, size_t max, const char *where, const char *what) {
  if (n <= max) return 0;
  return onnx_fail(r, "%s: %zu %s, expected at most %zu", where, n, what, max);
}

/* n protobuf strings into an array of names of the arena (`what`: "input"). */
static const char **read_names(OnnxReader *r, char **s, size_t n, const char *where, const char *what) {
  const char **out = onnx_arena_array(r->arena, n, sizeof *out);
  if (!out) return onnx_out_of_memory(r, where), NULL;
  for (size_t i = 0; i < n; i++) {
    char item[64];
    snprintf(item, sizeof item, "%s %zu", what, i);
    if (!(out[i] = onnx_name(r, s[i], where, item))) return NULL;
  }
  return out;
}

/* ---- attributes ---- */

static const char *attr_type_name(int t) {
  static const char *const names[] = {"UNDEFINED", "FLOAT", "INT", "STRING", "TENSOR", "GRAPH",
                                      "FLOATS", "INTS", "STRINGS", "TENSORS", "GRAPHS",
                                      "SPARSE_TENSOR", "SPARSE_TENSORS", "TYPE_PROTO", "TYPE_PROTOS"};
  return t >= 0 && t < (int)(sizeof names / sizeof names[0]) ? names[t] : "unknown";
}

static int copy_bytes(OnnxReader *r, const ProtobufCBinaryData *b, const char *where, OnnxBytes *out) {
  char *p = onnx_arena_alloc(r->arena, b->len + 1);
  if (!p) return onnx_out_of_memory(r, where);
  if (b->len) memcpy(p, b->data, b->len);
  out->data = p;
  out->len = b->len;
  return 0;
}

static int read_attr_lists(OnnxReader *r, const Onnx__AttributeProto *ap, const char *where, OnnxAttr *a) {
  size_t n = a->kind == ONNX_ATTR_FLOATS ? ap->n_floats : a->kind == ONNX_ATTR_INTS ? ap->n_ints : ap->n_strings;
  if (check_count(r, n, INT32_MAX, where, "values")) return -1;
  a->n = (int)n;
  if (a->kind == ONNX_ATTR_FLOATS) {
    float *f = onnx_arena_array(r->arena, n, sizeof *f);
    if (!f) return onnx_out_of_memory(r, where);
    if (n) memcpy(f, ap->floats, n * sizeof *f);
    a->floats = f;
  } else if (a->kind == ONNX_ATTR_INTS) {
    int64_t *v = onnx_arena_array(r->arena, n, sizeof *v);
    if (!v) return onnx_out_of_memory(r, where);
    if (n) memcpy(v, ap->ints, n * sizeof *v);
    a->ints = v;
  } else {
    OnnxBytes *s = onnx_arena_array(r->arena, n, sizeof *s);
    if (!s) return onnx_out_of_memory(r, where);
    for (size_t i = 0; i < n; i++)
      if (copy_bytes(r, &ap->strings[i], where, &s[i])) return -1;
    a->strings = s;
  }
  return 0;
}

static int read_attr_value(OnnxReader *r, const Onnx__AttributeProto *ap, const char *where, OnnxAttr *a) {
  switch (a->kind) {
  case ONNX_ATTR_FLOAT:
    if (!ap->has_f) return onnx_fail(r, "%s: a FLOAT attribute without a value (f)", where);
    a->f = ap->f;
    return 0;
  case ONNX_ATTR_INT:
    if (!ap->has_i) return onnx_fail(r, "%s: an INT attribute without a value (i)", where);
    a->i = ap->i;
    return 0;
  case ONNX_ATTR_STRING:
    if (!ap->has_s) return onnx_fail(r, "%s: a STRING attribute without a value (s)", where);
    return copy_bytes(r, &ap->s, where, &a->s);
  case ONNX_ATTR_TENSOR: {
    if (!ap->t) return onnx_fail(r, "%s: a TENSOR attribute without a value (t)", where);
    OnnxTensor *t = onnx_arena_alloc(r->arena, sizeof *t);
    if (!t) return onnx_out_of_memory(r, where);
    a->t = t;
    return onnx_read_tensor(r, ap->t, where, t);
  }
  default: return read_attr_lists(r, ap, where, a);
  }
}

static int read_attr(OnnxReader *r, const Onnx__AttributeProto *ap, const char *node, OnnxAttr *a) {
  char where[768], clip[ONNX_CLIP_SIZE];
  if (!(a->name = onnx_name(r, ap->name, node, "an attribute name"))) return -1;
  if (!*a->name) return onnx_fail(r, "%s: an attribute without a name", node);
  snprintf(where, sizeof where, "%s: attribute '%s'", node, onnx_clip(clip, a->name));
  if (ap->ref_attr_name && *ap->ref_attr_name)
    return onnx_fail(r, "%s: refers to a function's attribute (ref_attr_name), which only nodes "
                     "inside functions may", where);
  int type = ap->has_type ? (int)ap->type : 0;
  switch (type) {
  case ONNX_ATTR_FLOAT: case ONNX_ATTR_INT: case ONNX_ATTR_STRING: case ONNX_ATTR_TENSOR:
  case ONNX_ATTR_FLOATS: case ONNX_ATTR_INTS: case ONNX_ATTR_STRINGS:
    a->kind = (OnnxAttrKind)type;
    return read_attr_value(r, ap, where, a);
  case 5: case 10:
    return onnx_fail(r, "%s: a %s attribute (a subgraph, as If, Loop and Scan have) is not "
                     "supported", where, attr_type_name(type));
  case 0: return onnx_fail(r, "%s: has no type", where);
  default:
    return onnx_fail(r, "%s: a %s attribute (type %d) is not supported (supported: FLOAT, INT, "
                     "STRING, TENSOR, FLOATS, INTS, STRINGS)", where, attr_type_name(type), type);
  }
}

/* ---- nodes ---- */

static int read_node_attrs(OnnxReader *r, const Onnx__NodeProto *np, const char *where, OnnxNode *n) {
  OnnxAttr *attrs = onnx_arena_array(r->arena, np->n_attribute, sizeof *attrs);
  OnnxNameSet names;
  if (!attrs) return onnx_out_of_memory(r, where);
  if (onnx_nameset_init(r, &names, np->n_attribute)) return -1;
  for (size_t i = 0; i < np->n_attribute; i++) {
    char clip[ONNX_CLIP_SIZE];
    if (read_attr(r, np->attribute[i], where, &attrs[i])) return -1;
    if (!onnx_nameset_add(&names, attrs[i].name))
      return onnx_fail(r, "%s: attribute '%s' is given twice", where, onnx_clip(clip, attrs[i].name));
  }
  n->attrs = attrs;
  n->n_attrs = (int)np->n_attribute;
  return 0;
}

static int read_node(OnnxReader *r, const OnnxModel *m, const Onnx__NodeProto *np, int index,
                     OnnxNode *n) {
  char where[512], clip[ONNX_CLIP_SIZE];
  node_place(where, sizeof where, index, np->name, np->op_type);
  n->index = index;
  if (!(n->name = onnx_name(r, np->name, where, "the name")) ||
      !(n->op_type = onnx_name(r, np->op_type, where, "the op type")) ||
      !(n->domain = onnx_name(r, np->domain, where, "the domain")))
    return -1;
  if (!*n->op_type) return onnx_fail(r, "%s: has no op type", where);
  if (onnx_model_opset(m, n->domain) < 0)
    return onnx_fail(r, "%s: domain '%s' is not imported by the model (opset_import)", where,
                     onnx_clip(clip, n->domain));
  if (check_count(r, np->n_input, ONNX_MAX_NODE_ITEMS, where, "inputs") ||
      check_count(r, np->n_output, ONNX_MAX_NODE_ITEMS, where, "outputs") ||
      check_count(r, np->n_attribute, ONNX_MAX_NODE_ITEMS, where, "attributes"))
    return -1;
  n->n_inputs = (int)np->n_input;
  n->n_outputs = (int)np->n_output;
  if (!(n->inputs = read_names(r, np->input, np->n_input, where, "input")) ||
      !(n->outputs = read_names(r, np->output, np->n_output, where, "output")))
    return -1;
  return read_node_attrs(r, np, where, n);
}

/* ---- value infos: graph inputs, outputs, value_info ---- */

static const char *type_kind(const Onnx__TypeProto *t) {
  switch (t->value_case) {
  case ONNX__TYPE_PROTO__VALUE_SEQUENCE_TYPE: return "a sequence";
  case ONNX__TYPE_PROTO__VALUE_MAP_TYPE: return "a map";
  case ONNX__TYPE_PROTO__VALUE_OPTIONAL_TYPE: return "an optional";
  case ONNX__TYPE_PROTO__VALUE_SPARSE_TENSOR_TYPE: return "a sparse tensor";
  default: return "not given";
  }
}

static int read_dim(OnnxReader *r, const Onnx__TensorShapeProto__Dimension *d, const char *where,
                    int i, OnnxDim *out) {
  char what[64];
  snprintf(what, sizeof what, "dim %d", i);
  if (d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE) {
    if (d->dim_value < 0)
      return onnx_fail(r, "%s: dim %d is %" PRId64 ", expected >= 0", where, i, d->dim_value);
    *out = (OnnxDim){.kind = ONNX_DIM_VALUE, .value = d->dim_value};
  } else if (d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM &&
             d->dim_param && *d->dim_param) {
    out->kind = ONNX_DIM_PARAM;
    if (!(out->param = onnx_name(r, d->dim_param, where, what))) return -1;
  } else {
    out->kind = ONNX_DIM_UNKNOWN;
  }
  return 0;
}

static int read_value_info(OnnxReader *r, const Onnx__ValueInfoProto *vp, const char *kind,
                           size_t index, OnnxValueInfo *v) {
  char where[512], clip[ONNX_CLIP_SIZE];
  snprintf(where, sizeof where, "%s %zu", kind, index);
  if (!(v->name = onnx_name(r, vp->name, where, "the name"))) return -1;
  if (!*v->name) return onnx_fail(r, "%s: has no name", where);
  snprintf(where, sizeof where, "%s '%s'", kind, onnx_clip(clip, v->name));
  v->rank = -1;
  const Onnx__TypeProto *t = vp->type;
  if (!t || t->value_case == ONNX__TYPE_PROTO__VALUE__NOT_SET) return 0;
  if (t->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE)
    return onnx_fail(r, "%s: its type is %s, only tensors are supported", where, type_kind(t));
  const Onnx__TypeProto__Tensor *tt = t->tensor_type;
  if (tt->has_elem_type && tt->elem_type && onnx_check_dtype(r, tt->elem_type, where, &v->dtype))
    return -1;
  if (!tt->shape) return 0;
  if (tt->shape->n_dim > ONNX_MAX_RANK)
    return onnx_fail(r, "%s: rank %zu, expected at most %d", where, tt->shape->n_dim, ONNX_MAX_RANK);
  v->rank = (int)tt->shape->n_dim;
  for (int i = 0; i < v->rank; i++)
    if (read_dim(r, tt->shape->dim[i], where, i, &v->dims[i])) return -1;
  return 0;
}

static int read_value_infos(OnnxReader *r, Onnx__ValueInfoProto **vps, size_t n, const char *kind,
                            const OnnxValueInfo **out, int *count) {
  if (check_count(r, n, ONNX_MAX_ITEMS, "the graph", kind)) return -1;
  OnnxValueInfo *v = onnx_arena_array(r->arena, n, sizeof *v);
  if (!v) return onnx_out_of_memory(r, kind);
  for (size_t i = 0; i < n; i++)
    if (read_value_info(r, vps[i], kind, i, &v[i])) return -1;
  *out = v;
  *count = (int)n;
  return 0;
}

/* ---- graph and model ---- */

static int read_initializers(OnnxReader *r, const Onnx__GraphProto *g, OnnxModel *m) {
  OnnxTensor *t = onnx_arena_array(r->arena, g->n_initializer, sizeof *t);
  OnnxNameSet names;
  if (!t) return onnx_out_of_memory(r, "the initializers");
  if (onnx_nameset_init(r, &names, g->n_initializer)) return -1;
  for (size_t i = 0; i < g->n_initializer; i++) {
    char where[256], clip[ONNX_CLIP_SIZE];
    const char *name = g->initializer[i]->name ? g->initializer[i]->name : "";
    if (!*name) return onnx_fail(r, "initializer %zu: has no name", i);
    snprintf(where, sizeof where, "initializer '%s'", onnx_clip(clip, name));
    if (onnx_read_tensor(r, g->initializer[i], where, &t[i])) return -1;
    if (!onnx_nameset_add(&names, t[i].name)) return onnx_fail(r, "%s: the name is given to two initializers", where);
  }
  m->initializers = t;
  m->n_initializers = (int)g->n_initializer;
  return 0;
}

static int read_nodes(OnnxReader *r, const Onnx__GraphProto *g, OnnxModel *m) {
  OnnxNode *nodes = onnx_arena_array(r->arena, g->n_node, sizeof *nodes);
  if (!nodes) return onnx_out_of_memory(r, "the nodes");
  for (size_t i = 0; i < g->n_node; i++)
    if (read_node(r, m, g->node[i], (int)i, &nodes[i])) return -1;
  m->nodes = nodes;
  m->n_nodes = (int)g->n_node;
  return 0;
}

static int read_graph(OnnxReader *r, const Onnx__GraphProto *g, OnnxModel *m) {
  if (!g) return onnx_fail(r, "the model has no graph");
  if (!(m->graph_name = onnx_name(r, g->name, "the graph", "the name"))) return -1;
  if (g->n_sparse_initializer)
    return onnx_fail(r, "the graph: sparse initializers are not supported");
  if (check_count(r, g->n_node, ONNX_MAX_ITEMS, "the graph", "nodes") ||
      check_count(r, g->n_initializer, ONNX_MAX_ITEMS, "the graph", "initializers"))
    return -1;
  return read_nodes(r, g, m) || read_initializers(r, g, m) ||
         read_value_infos(r, g->input, g->n_input, "graph input", &m->inputs, &m->n_inputs) ||
         read_value_infos(r, g->output, g->n_output, "graph output", &m->outputs, &m->n_outputs) ||
         read_value_infos(r, g->value_info, g->n_value_info, "value_info", &m->value_info, &m->n_value_info)
             ? -1 : 0;
}

static int read_opsets(OnnxReader *r, const Onnx__ModelProto *mp, OnnxModel *m) {
  if (check_count(r, mp->n_opset_import, ONNX_MAX_OPSETS, "the model", "opset imports")) return -1;
  OnnxOpset *ops = onnx_arena_array(r->arena, mp->n_opset_import, sizeof *ops);
  if (!ops) return onnx_out_of_memory(r, "the opset imports");
  for (size_t i = 0; i < mp->n_opset_import; i++) {
    const Onnx__OperatorSetIdProto *o = mp->opset_import[i];
    char where[64], clip[ONNX_CLIP_SIZE];
    snprintf(where, sizeof where, "opset_import %zu", i);
    if (!(ops[i].domain = onnx_name(r, o->domain, where, "the domain"))) return -1;
    if (!o->has_version || o->version < 1)
      return onnx_fail(r, "%s (domain '%s'): version %" PRId64 ", expected >= 1", where,
                       onnx_clip(clip, ops[i].domain), o->has_version ? o->version : 0);
    ops[i].version = o->version;
    m->opsets = ops;
    m->n_opsets = (int)i;
    if (onnx_model_opset(m, ops[i].domain) >= 0)
      return onnx_fail(r, "%s: domain '%s' is imported twice", where, onnx_clip(clip, ops[i].domain));
  }
  m->n_opsets = (int)mp->n_opset_import;
  return 0;
}

static int read_model(OnnxReader *r, const Onnx__ModelProto *mp, OnnxModel *m) {
  if (!mp->has_ir_version || mp->ir_version < 1)
    return onnx_fail(r, "the model has no ir_version (is it an ONNX model?)");
  m->ir_version = mp->ir_version;
  if (!(m->producer_name = onnx_name(r, mp->producer_name, "the model", "producer_name")) ||
      !(m->producer_version = onnx_name(r, mp->producer_version, "the model", "producer_version")) ||
      !(m->path = onnx_name(r, r->path, "the model", "the path")))
    return -1;
  return read_opsets(r, mp, m) || read_graph(r, mp->graph, m) ? -1 : 0;
}

/* ---- entry points ---- */

static int unpack_and_read(OnnxReader *r, const uint8_t *data, size_t len, OnnxModel *m) {
  if (len > ONNX_MAX_FILE_BYTES)
    return onnx_fail(r, "the file has %zu bytes, expected at most %zu", len, ONNX_MAX_FILE_BYTES);
  if (onnx_wire_check(r, data, len, &onnx__model_proto__descriptor)) return -1;
  Budget budget = {.limit = ONNX_UNPACK_BASE + ONNX_UNPACK_FACTOR * len};
  ProtobufCAllocator alloc = {budget_alloc, budget_free, &budget};
  Onnx__ModelProto *mp = onnx__model_proto__unpack(&alloc, len, data);
  if (!mp && budget.exceeded)
    return onnx_fail(r, "unpacking the protobuf needs more than %zu MiB (256 MiB + %d bytes per "
                     "byte of the file)", budget.limit >> 20, ONNX_UNPACK_FACTOR);
  if (!mp) return onnx_fail(r, "malformed protobuf: protobuf-c cannot unpack it as an ONNX ModelProto");
  int rc = read_model(r, mp, m);
  onnx__model_proto__free_unpacked(mp, &alloc);
  return rc;
}

int onnx_read_memory(const void *data, size_t len, const char *path, const char *dir,
                     OnnxModel **out, char **errmsg) {
  OnnxReader r = {.path = path ? path : "<memory>", .dir = dir, .errmsg = errmsg};
  *out = NULL;
  if (errmsg) *errmsg = NULL;
  OnnxArena *a = onnx_arena_new();
  OnnxModel *m = a ? onnx_arena_alloc(a, sizeof *m) : NULL;
  if (!m) {
    onnx_arena_free(a);
    return onnx_out_of_memory(&r, "the model");
  }
  m->arena = r.arena = a;
  if (unpack_and_read(&r, data, len, m)) {
    onnx_arena_free(a);
    return -1;
  }
  m->n_external = r.n_external;
  *out = m;
  return 0;
}

int onnx_read_file(const char *path, OnnxModel **out, char **errmsg) {
  OnnxReader r = {.path = path, .errmsg = errmsg};
  *out = NULL;
  if (errmsg) *errmsg = NULL;
  const unsigned char *data;
  size_t len;
  char err[512];
  if (nnc_map_file(path, ONNX_MAX_FILE_BYTES, &data, &len, err, sizeof err))
    return onnx_fail(&r, "%s", err);
  char *dir = malloc(strlen(path) + 2);
  if (!dir) {
    nnc_unmap_file(data, len);
    return onnx_out_of_memory(&r, "the path");
  }
  strcpy(dir, path);
  char *slash = strrchr(dir, '/');
  if (!slash) strcpy(dir, ".");
  else if (slash == dir) dir[1] = '\0';
  else *slash = '\0';
  int rc = onnx_read_memory(data, len, path, dir, out, errmsg);
  free(dir);
  nnc_unmap_file(data, len);
  return rc;
}

void onnx_model_free(OnnxModel *m) {
  if (m) onnx_arena_free(m->arena);
}
