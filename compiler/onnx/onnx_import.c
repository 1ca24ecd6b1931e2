/* onnx_import.c — an OnnxModel into the graph IR (onnx_import.h): the entry `forward` with
 * the graph's inputs and outputs, the graph's values by name, initializers as parameters
 * (made when an op first uses them as tensors) or as compile-time data, Constant outputs,
 * and the messages that name the node.  The ops themselves are in onnx_ops.c. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "onnx_import_internal.h"

bool onnx_is_model_path(const char *path) {
  size_t n = path ? strlen(path) : 0;
  return n > 5 && strcmp(path + n - 5, ".onnx") == 0;
}

/* ---- messages ---- */

static const char *clip(char *buf, size_t size, const char *s) {
  if (strlen(s) < size) return s;
  snprintf(buf, size, "%.*s...", (int)size - 4, s);
  return buf;
}

/* "node 3 'conv1' (Conv, opset 13)" */
static void node_place(const Imp *I, char *buf, size_t size) {
  const OnnxNode *n = I->node;
  char c1[96], c2[96];
  if (*n->name)
    snprintf(buf, size, "node %d '%s' (%s, opset %lld)", n->index, clip(c1, sizeof c1, n->name),
             clip(c2, sizeof c2, n->op_type), (long long)I->opset);
  else
    snprintf(buf, size, "node %d (%s, opset %lld)", n->index, clip(c2, sizeof c2, n->op_type),
             (long long)I->opset);
}

bool imp_fail(Imp *I, const char *fmt, ...) {
  char msg[1024], place[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  I->worded = true;
  if (!I->node) return diag_error_file(ID, I->path, "%s", msg);
  node_place(I, place, sizeof place);
  return diag_error_file(ID, I->path, "%s: %s", place, msg);
}

/* An IR builder's diagnostic ("PATH:LINE:COL: error: MSG") said again about the node. */
static bool reword_builder_error(Imp *I) {
  if (!ID->has_error) return imp_fail(I, "internal error: the translation failed without a message");
  const char *at = strstr(ID->text, ": error: ");
  char msg[sizeof ID->text];
  snprintf(msg, sizeof msg, "%s", at ? at + 9 : ID->text);
  msg[strcspn(msg, "\n")] = '\0';
  ID->has_error = 0;
  return imp_fail(I, "%s", msg);
}

/* ---- values by name ---- */

static size_t hash(const char *s) {
  size_t h = 1469598103934665603u;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211u;
  return h;
}

static ImpValue *slot_of(Imp *I, const char *name) {
  for (size_t i = hash(name) & (I->cap - 1);; i = (i + 1) & (I->cap - 1))
    if (!I->values[i].name || strcmp(I->values[i].name, name) == 0) return &I->values[i];
}

ImpValue *imp_find(Imp *I, const char *name) {
  ImpValue *v = slot_of(I, name);
  return v->name ? v : NULL;
}

bool imp_define(Imp *I, const char *name, INode *t, const OnnxTensor *data) {
  ImpValue *v = slot_of(I, name);
  if (v->name) return imp_fail(I, "value '%s' is defined twice (ONNX graphs assign each value once)", name);
  *v = (ImpValue){name, t, data};
  I->count++;
  return true;
}

bool imp_define_vector(Imp *I, const char *name, const ShapeVal *sv) {
  if (!imp_define(I, name, NULL, NULL)) return false;
  imp_find(I, name)->sv = sv;
  return true;
}

bool imp_has_input(const Imp *I, int i) {
  return i < I->node->n_inputs && *I->node->inputs[i];
}

/* ---- parameters and constants ---- */

/* Bool data (as f32 1.0 / 0.0: onnx_ops_logic.c) or the integers of a Constant (as i64,
 * exact up to 2^24, as nnc's index values) in a CONST node. */
static INode *const_as_f32(Imp *I, const ImpValue *v, const Shape *s) {
  const OnnxTensor *t = v->data;
  float *f = arena_alloc(I->S.arena, (size_t)(t->numel ? t->numel : 1) * sizeof *f);
  for (int64_t k = 0; k < t->numel; k++) {
    double x = t->dtype == ONNX_BOOL  ? ((const uint8_t *)t->data)[k] != 0
               : t->dtype == ONNX_I32 ? ((const int32_t *)t->data)[k]
                                      : (double)((const int64_t *)t->data)[k];
    if (x > 16777216.0 || x < -16777216.0)
      return imp_fail(I, "'%s' holds %.0f: nnc's integer constants are exact up to 2^24", v->name, x), NULL;
    f[k] = (float)x;
  }
  if (!ir_shape_supported(IM, s, I->loc, ID)) return reword_builder_error(I), NULL;
  INode *y = ir_const_data(IM, IE, f, s, I->loc);
  return t->dtype == ONNX_BOOL ? y : ir_convert(IM, IE, y, DT_I64, I->loc, ID);
}

/* The tensor of constant data: a parameter for an initializer, a CONST node for a Constant. */
static INode *materialize(Imp *I, ImpValue *v, bool initializer) {
  const OnnxTensor *t = v->data;
  Shape s = {.rank = t->rank};
  for (int k = 0; k < t->rank; k++) s.d[k] = dim_const(t->dims[k]);
  if (t->dtype == ONNX_BOOL || (!initializer && (t->dtype == ONNX_I64 || t->dtype == ONNX_I32)))
    return const_as_f32(I, v, &s);
  if (t->dtype != ONNX_F32 && !(initializer && t->dtype == ONNX_I64))
    return imp_fail(I, "'%s' is %s data: nnc takes f32 tensors here (and i64 initializers)", v->name,
                    onnx_dtype_name(t->dtype)), NULL;
  if (!ir_shape_supported(IM, &s, I->loc, ID)) return reword_builder_error(I), NULL;
  if (!initializer) return ir_const_data(IM, IE, t->data, &s, I->loc);
  int p = model_add_param(IM, v->name, t->dtype == ONNX_I64 ? DT_I64 : DT_F32, t->rank, t->dims, I->loc);
  if (p < 0) return imp_fail(I, "initializer '%s' %s", v->name, model_param_error(p)), NULL;
  return ir_param(IM, IE, p, I->loc);
}

/* A folded integer vector as an i64 tensor: its dims' values (DIMVAL of a symbolic one) */
static INode *materialize_vector(Imp *I, const ShapeVal *sv) {
  INode *y = NULL;
  Shape one = {.rank = 1, .d = {dim_const(1)}};
  if (sv->n == 0) return imp_fail(I, "an empty shape (of a scalar) used as a tensor is not supported"), NULL;
  for (int k = 0; k < sv->n; k++) {
    INode *d = ir_dim_value(IM, IE, sv->d[k], I->loc);
    if (sv->rank == 1) d = ir_reshape(IM, IE, d, &one, I->loc, ID);
    y = k ? ir_concat(IM, IE, y, d, 0, I->loc, ID) : d;
  }
  return y ? ir_convert(IM, IE, y, DT_I64, I->loc, ID) : NULL;
}

static bool is_initializer(const Imp *I, const OnnxTensor *t) {
  return t >= I->om->initializers && t < I->om->initializers + I->om->n_initializers;
}

INode *imp_input(Imp *I, int i) {
  if (!imp_has_input(I, i)) return imp_fail(I, "input %d is missing", i), NULL;
  if (i < 2 && I->lifted[i]) return I->lifted[i];
  ImpValue *v = imp_find(I, I->node->inputs[i]);
  if (!v) return imp_fail(I, "input %d '%s' is not defined by an earlier node", i, I->node->inputs[i]), NULL;
  if (!v->t && v->data) v->t = materialize(I, v, is_initializer(I, v->data));
  if (!v->t && v->sv) v->t = materialize_vector(I, v->sv);
  return v->t;
}

const OnnxTensor *imp_const_input(Imp *I, int i) {
  if (!imp_has_input(I, i)) return imp_fail(I, "input %d is missing", i), NULL;
  ImpValue *v = imp_find(I, I->node->inputs[i]);
  if (!v) return imp_fail(I, "input %d '%s' is not defined by an earlier node", i, I->node->inputs[i]), NULL;
  if (!v->data && v->sv)
    return imp_fail(I, "input %d '%s' is a shape folded at compile time: nnc does not take it here", i, v->name), NULL;
  if (!v->data)
    return imp_fail(I, "input %d '%s' must be a constant (an initializer or a Constant's output): nnc "
                    "does not compute it at run time", i, v->name), NULL;
  return v->data;
}

bool imp_const_ints(Imp *I, const OnnxTensor *t, int64_t *v, int *n, int max, const char *what) {
  if (t->dtype != ONNX_I64 && t->dtype != ONNX_I32)
    return imp_fail(I, "%s is %s, expected int64 or int32", what, onnx_dtype_name(t->dtype));
  if (t->rank > 1 || t->numel > max)
    return imp_fail(I, "%s has %lld values in %d dims, expected at most %d in one", what,
                    (long long)t->numel, t->rank, max);
  *n = (int)t->numel;
  for (int k = 0; k < *n; k++)
    v[k] = t->dtype == ONNX_I64 ? ((const int64_t *)t->data)[k] : ((const int32_t *)t->data)[k];
  return true;
}

/* ---- the entry ---- */

/* `name` as a C identifier (the generated header names arguments after it), unique in used[]. */
static const char *c_name(Imp *I, const char *name, const char **used, int nused) {
  size_t n = strlen(name);
  char *s = arena_alloc(I->S.arena, n + 2 + nused);
  size_t o = 0;
  if (n == 0 || (name[0] >= '0' && name[0] <= '9')) s[o++] = 'v';
  for (size_t i = 0; i < n; i++) {
    char c = name[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
    s[o++] = ok ? c : '_';
  }
  for (bool again = true; again;) {
    again = false;
    for (int k = 0; k < nused; k++)
      if (strcmp(used[k], s) == 0) s[o++] = '_', again = true;
  }
  return s;
}

/* An input's shape: each dim a value, or a dim_param name as a symbolic dim.  Integer and
 * bool inputs are i64 in the library's signature (int32 is i64 inside the graph too). */
static bool input_shape(Imp *I, const OnnxValueInfo *v, Shape *s, DType *dt) {
  if (v->dtype != ONNX_F32 && v->dtype != ONNX_I64 && v->dtype != ONNX_I32 && v->dtype != ONNX_BOOL)
    return imp_fail(I, "graph input '%s' is %s, expected float, int64, int32 or bool", v->name,
                    v->dtype ? onnx_dtype_name(v->dtype) : "of no element type");
  *dt = v->dtype == ONNX_F32 ? DT_F32 : DT_I64;
  if (v->rank < 0) return imp_fail(I, "graph input '%s' has no shape; nnc needs its rank and dims", v->name);
  s->rank = v->rank;
  for (int k = 0; k < v->rank; k++) {
    const OnnxDim *d = &v->dims[k];
    if (d->kind == ONNX_DIM_UNKNOWN)
      return imp_fail(I, "graph input '%s': dim %d has neither a value nor a name (dim_param); name it "
                      "(torch.onnx.export's dynamic_axes) or fix it", v->name, k);
    if (d->kind == ONNX_DIM_VALUE) {
      s->d[k] = dim_const(d->value);
      continue;
    }
    int sym = -1;
    for (int i = 0; i < IM->nsyms; i++)
      if (strcmp(IM->sym_names[i], d->param) == 0) sym = i;
    if (sym < 0 && IM->nsyms == MAX_SYMS)
      return imp_fail(I, "graph input '%s': more than %d symbolic dims", v->name, MAX_SYMS);
    if (sym < 0) sym = model_sym(IM, d->param); /* the ONNX name, made an identifier below */
    s->d[k] = (Dim){1, 1u << sym};
  }
  return ir_shape_supported(IM, s, I->loc, ID) || reword_builder_error(I);
}

static bool add_inputs(Imp *I, Entry *e) {
  const OnnxModel *om = I->om;
  e->inputs = arena_alloc(I->S.arena, (om->n_inputs + 1) * sizeof *e->inputs);
  e->in_names = arena_alloc(I->S.arena, (om->n_inputs + 1) * sizeof *e->in_names);
  for (int i = 0; i < om->n_inputs; i++) {
    const OnnxValueInfo *v = &om->inputs[i];
    if (imp_find(I, v->name)) continue; /* an initializer listed as an input (IR < 4) */
    Shape s;
    DType dt = DT_F32;
    if (!input_shape(I, v, &s, &dt)) return false;
    e->in_names[e->nin] = c_name(I, v->name, e->in_names, e->nin);
    INode *x = e->inputs[e->nin] = ir_input(IM, e, e->nin, dt, &s, I->loc);
    e->nin++;
    if (v->dtype == ONNX_BOOL) /* i64 in the signature, f32 1.0 / 0.0 inside the graph (nonzero: true) */
      x = ir_binary(IM, IE, OP_NE, ir_convert(IM, IE, x, DT_F32, I->loc, ID), imp_scalar(I, 0), I->loc, ID);
    if (!x || !imp_define(I, v->name, x, NULL)) return false;
  }
  return true;
}

static bool add_outputs(Imp *I, Entry *e) {
  const OnnxModel *om = I->om;
  e->nout = om->n_outputs;
  if (!e->nout) return imp_fail(I, "the graph has no outputs");
  e->outputs = arena_alloc(I->S.arena, (e->nout + 1) * sizeof *e->outputs);
  e->out_names = arena_alloc(I->S.arena, (e->nout + 1) * sizeof *e->out_names);
  e->out_shapes = arena_alloc(I->S.arena, (e->nout + 1) * sizeof *e->out_shapes);
  e->out_dtypes = arena_alloc(I->S.arena, (e->nout + 1) * sizeof *e->out_dtypes);
  const char **used = arena_alloc(I->S.arena, (e->nin + e->nout + 1) * sizeof *used);
  memcpy(used, e->in_names, e->nin * sizeof *used);
  for (int i = 0; i < e->nout; i++) {
    OnnxDtype dt = om->outputs[i].dtype;
    if (dt != ONNX_UNDEFINED && dt != ONNX_F32 && dt != ONNX_I64 && dt != ONNX_I32 && dt != ONNX_BOOL)
      return imp_fail(I, "graph output '%s' is %s: nnc's outputs are float, or int64 (int32 and bool ones "
                      "too: bool as 0 / 1)", om->outputs[i].name, onnx_dtype_name(dt));
    ImpValue *v = imp_find(I, om->outputs[i].name);
    if (!v) return imp_fail(I, "graph output '%s' is not computed by any node", om->outputs[i].name);
    if (!v->t && v->data) v->t = materialize(I, v, is_initializer(I, v->data));
    if (!v->t && v->sv) v->t = materialize_vector(I, v->sv);
    if (!v->t) return false;
    INode *y = v->t;
    if ((dt == ONNX_BOOL || dt == ONNX_I32) && y->dtype == DT_F32) /* a bool is f32 1.0 / 0.0 inside the graph */
      y = ir_convert(IM, IE, y, DT_I64, I->loc, ID);
    if (!y) return false;
    e->outputs[i] = y;
    e->out_shapes[i] = y->shape;
    e->out_dtypes[i] = y->dtype;
    e->out_names[i] = used[e->nin + i] = c_name(I, om->outputs[i].name, used, e->nin + i);
  }
  return true;
}

/* Symbolic dims named as identifiers (the header declares them as C parameters). */
static void name_symbols(Imp *I) {
  const char *used[MAX_SYMS];
  for (int i = 0; i < IM->nsyms; i++) used[i] = IM->sym_names[i] = c_name(I, IM->sym_names[i], used, i);
}

static bool define_initializers(Imp *I) {
  for (int i = 0; i < I->om->n_initializers; i++)
    if (!imp_define(I, I->om->initializers[i].name, NULL, &I->om->initializers[i])) return false;
  return true;
}

static bool translate(Imp *I) {
  Model *m = IM;
  m->entries = arena_alloc(I->S.arena, sizeof *m->entries);
  m->entries_cap = m->nentries = 1;
  Entry *e = I->S.e = &m->entries[0];
  e->name = "forward";
  if (!define_initializers(I) || !add_inputs(I, e)) return false;
  for (int i = 0; i < I->om->n_nodes; i++) {
    I->node = &I->om->nodes[i];
    I->loc = (SrcLoc){.line = i + 1, .col = 1};
    if (!imp_node(I, I->node)) return I->worded ? false : reword_builder_error(I);
  }
  I->node = NULL;
  if (!add_outputs(I, e)) return false;
  name_symbols(I);
  for (int k = 0; k < e->nnodes; k++) e->nodes[k]->owner = e;
  return true;
}

/* names[id]: the first graph value (inputs, then node outputs in order) that node id holds */
static const char **value_names(Imp *I) {
  const Entry *e = &IM->entries[0];
  const char **names = arena_alloc(I->S.arena, (e->nnodes + 1) * sizeof *names);
  const OnnxModel *om = I->om;
  for (int i = 0; i < om->n_inputs; i++) {
    ImpValue *v = imp_find(I, om->inputs[i].name);
    if (v && v->t && !names[v->t->id]) names[v->t->id] = v->name;
  }
  for (int i = 0; i < om->n_nodes; i++)
    for (int k = 0; k < om->nodes[i].n_outputs; k++) {
      ImpValue *v = *om->nodes[i].outputs[k] ? imp_find(I, om->nodes[i].outputs[k]) : NULL;
      if (v && v->t && v->t->id < e->nnodes && !names[v->t->id]) names[v->t->id] = v->name;
    }
  return names;
}

Model *onnx_import(Arena *a, const SrcFile *file, const OnnxModel *om, const char *model_name,
                   Diag *d) {
  return onnx_import_named(a, file, om, model_name, d, NULL);
}

Model *onnx_import_named(Arena *a, const SrcFile *file, const OnnxModel *om, const char *model_name,
                         Diag *d, const char ***names) {
  Model *m = arena_alloc(a, sizeof *m);
  m->arena = a;
  m->file = file;
  m->name = arena_strdup(a, model_name);
  Imp I = {.S = {.arena = a, .m = m, .d = d}, .om = om, .path = file->path};
  I.opset = onnx_model_opset(om, "");
  size_t n = (size_t)om->n_initializers + om->n_inputs + 1;
  for (int i = 0; i < om->n_nodes; i++) n += om->nodes[i].n_outputs;
  for (I.cap = 16; I.cap < 2 * n; I.cap *= 2) {}
  I.values = arena_alloc(a, I.cap * sizeof *I.values);
  if (!translate(&I)) return NULL;
  if (names) *names = value_names(&I);
  return m;
}

void onnx_fill_weights(const Model *m, const OnnxModel *om, unsigned char *blob) {
  for (int i = 0; i < m->nparams; i++) {
    if (m->params[i].derived) continue;
    const OnnxTensor *t = onnx_model_initializer(om, m->params[i].name);
    if (t && t->nbytes == m->params[i].nbytes) memcpy(blob + m->params[i].offset, t->data, t->nbytes);
  }
}
