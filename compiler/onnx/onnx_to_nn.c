/* onnx_to_nn.c — `nnc import`: an ONNX model written as an editable .nn (emit_nn.h) over
 * the entry that onnx_import builds, and the tensors that .nn reads (the initializers it
 * uses, under its names, and large folded constants) written as safetensors.  Symbolic dims
 * (dim_param) may be pinned to values first (`-D batch=1`). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "emit_nn.h"
#include "onnx_import.h"
#include "onnx_to_nn.h"
#include "safetensors.h"

/* ---- pinned dims ---- */

static bool pin_dim(OnnxModel *om, const char *name, int64_t value) {
  bool found = false;
  for (int i = 0; i < om->n_inputs; i++) {
    OnnxValueInfo *v = (OnnxValueInfo *)&om->inputs[i];
    for (int k = 0; k < v->rank; k++)
      if (v->dims[k].kind == ONNX_DIM_PARAM && !strcmp(v->dims[k].param, name)) {
        v->dims[k] = (OnnxDim){.kind = ONNX_DIM_VALUE, .value = value};
        found = true;
      }
  }
  return found;
}

bool onnx_pin_dims(OnnxModel *om, const char *const *dims, int n, char *err, size_t errlen) {
  for (int i = 0; i < n; i++) {
    const char *eq = strchr(dims[i], '=');
    char *end = NULL, name[256];
    long long v = eq ? strtoll(eq + 1, &end, 10) : -1;
    if (!eq || eq == dims[i] || !*(eq + 1) || *end || v <= 0 || (size_t)(eq - dims[i]) >= sizeof name)
      return snprintf(err, errlen, "%s: error: -D %s: expected NAME=VALUE, a symbolic dim (dim_param) and a "
                      "positive size", om->path, dims[i]), false;
    snprintf(name, sizeof name, "%.*s", (int)(eq - dims[i]), dims[i]);
    if (!pin_dim(om, name, v))
      return snprintf(err, errlen, "%s: error: -D %s: no graph input has a dim named '%s' (dim_param)", om->path,
                      dims[i], name), false;
  }
  return true;
}

/* ---- the weights file ---- */

static bool tensor_of(const Model *m, const OnnxModel *om, const NnWeight *w, StTensor *t, char *err, size_t errlen) {
  if (w->param < 0) {
    const INode *c = w->constant;
    *t = (StTensor){.name = (char *)w->name, .dtype = ST_F32, .rank = c->shape.rank, .data = c->data,
                    .nbytes = (size_t)shape_static_numel(&c->shape) * sizeof(float)};
    for (int k = 0; k < c->shape.rank; k++) t->shape[k] = c->shape.d[k].k;
    return true;
  }
  const Param *p = &m->params[w->param];
  const OnnxTensor *init = onnx_model_initializer(om, p->name);
  if (!init || init->nbytes != p->nbytes)
    return snprintf(err, errlen, "%s: internal error: parameter '%s' has no initializer of its size", om->path,
                    p->name), false;
  *t = (StTensor){.name = (char *)w->name, .dtype = p->dtype == DT_I64 ? ST_I64 : ST_F32, .rank = p->rank,
                  .data = init->data, .nbytes = init->nbytes};
  memcpy(t->shape, p->shape, sizeof p->shape[0] * p->rank);
  return true;
}

static bool write_weights(const Model *m, const OnnxModel *om, const NnWeight *w, int n, const char *path,
                          char *err, size_t errlen) {
  StTensor *t = calloc((size_t)n + 1, sizeof *t);
  if (!t) return snprintf(err, errlen, "%s: error: out of memory", path), false;
  bool ok = true;
  for (int i = 0; i < n && ok; i++) ok = tensor_of(m, om, &w[i], &t[i], err, errlen);
  if (ok && st_write_file(path, t, n, err, errlen)) ok = false;
  free(t);
  return ok;
}

/* ---- the .nn ---- */

static const char *base_name(const char *path) {
  const char *s = strrchr(path, '/');
  return s ? s + 1 : path;
}

static void banner(char *buf, size_t len, const OnnxModel *om, const char *nn_path, const char *weights_path) {
  char producer[256];
  const char *name = om->producer_name && *om->producer_name ? om->producer_name : "an unnamed producer";
  const char *version = om->producer_version ? om->producer_version : "";
  snprintf(producer, sizeof producer, "%s%s%s", name, *version ? " " : "", version);
  snprintf(buf, len,
           "Written by `nnc import` from %s (graph '%s', opset %lld, made by %s).\n"
           "Its parameters are the graph's initializers, in %s under the names declared here:\n"
           "  nnc %s -o MODEL.so --weights %s",
           base_name(om->path), om->graph_name ? om->graph_name : "", (long long)onnx_model_opset(om, ""), producer,
           base_name(weights_path), base_name(nn_path), base_name(weights_path));
}

/* The text in memory first, so that a model that cannot be written leaves no file. */
static char *nn_text(Arena *a, const OnnxModel *om, const Model *m, const char **names, const char *nn_path,
                     const char *weights_path, NnWeight **w, int *nw, char *err, size_t errlen) {
  char *text = NULL, head[1024], msg[512];
  size_t len = 0;
  FILE *f = open_memstream(&text, &len);
  if (!f) return snprintf(err, errlen, "%s: error: out of memory", om->path), NULL;
  banner(head, sizeof head, om, nn_path, weights_path);
  NnEmitOptions opt = {.export_name = om->graph_name, .value_names = names, .banner = head};
  bool ok = emit_nn(f, a, m, &m->entries[0], &opt, w, nw, msg, sizeof msg);
  fclose(f);
  if (!ok) {
    free(text);
    snprintf(err, errlen, "%s: error: %s\n", om->path, msg);
    return NULL;
  }
  return text;
}

/* Whether the two paths name one existing file. */
static bool same_file(const char *a, const char *b) {
  struct stat sa, sb;
  return !strcmp(a, b) || (!stat(a, &sa) && !stat(b, &sb) && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino);
}

bool onnx_write_nn(Arena *a, const OnnxModel *om, const Model *m, const char **names, const char *nn_path,
                   const char *weights_path, char *err, size_t errlen) {
  NnWeight *w;
  int nw;
  if (same_file(nn_path, om->path) || same_file(weights_path, om->path) || same_file(nn_path, weights_path))
    return snprintf(err, errlen, "%s: error: -o %s and --weights-out %s must be two files other than the model\n",
                    om->path, nn_path, weights_path), false;
  char *text = nn_text(a, om, m, names, nn_path, weights_path, &w, &nw, err, errlen);
  if (!text) return false;
  FILE *f = fopen(nn_path, "w");
  bool ok = f && fputs(text, f) >= 0;
  if (f && fclose(f)) ok = false;
  free(text);
  if (!ok) return snprintf(err, errlen, "%s: error: cannot write: %s\n", nn_path, strerror(errno)), false;
  if (!write_weights(m, om, w, nw, weights_path, err, errlen)) {
    remove(nn_path); /* a .nn without its weights would only mislead */
    size_t n = strlen(err);
    if (n && err[n - 1] != '\n' && n + 1 < errlen) strcat(err, "\n");
    return false;
  }
  return true;
}
