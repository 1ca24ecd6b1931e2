/* onnx_import.h — an ONNX model (onnx_reader.h) translated into the graph IR that the .nn
 * front end builds (ir.h), so that the passes, fusion, AOT and JIT apply unchanged.
 *
 * The graph becomes one entry, `forward`: the graph inputs that are not initializers are its
 * arguments (f32 or i64; each dim a value or a `dim_param` name, which becomes a symbolic
 * dim), its outputs the graph outputs.  Names are made C identifiers (`input.1` -> `input_1`)
 * as the generated header needs.  Initializers used as tensors become the model's parameters,
 * under their ONNX names; initializers and Constant outputs used as attributes (Reshape's
 * shape, Clip's bounds) are read at compile time.  An op, an attribute or an attribute value
 * the translation does not support is an error naming the node, its op type and opset and
 * the attribute: never an approximation. */
#ifndef NNC_ONNX_IMPORT_H
#define NNC_ONNX_IMPORT_H

#include "ir.h"
#include "onnx_reader.h"

/* Build the model of `om` in arena `a` (file: the .onnx, for messages).  Returns NULL after
 * recording a diagnostic in d ("PATH: error: node 3 'conv1' (Conv, opset 13): ..."). */
Model *onnx_import(Arena *a, const SrcFile *file, const OnnxModel *om, const char *model_name,
                   Diag *d);

/* The same, also naming the entry's nodes after the graph's values: (*names)[id] is the
 * first graph value (an input, else a node output in graph order) that node id holds, or
 * NULL (a node inside an op's translation).  For `nnc import` (emit_nn.h). */
Model *onnx_import_named(Arena *a, const SrcFile *file, const OnnxModel *om, const char *model_name,
                         Diag *d, const char ***names);

/* The loaded (not derived) parameters' data, copied from the initializers of the same names
 * into blob (m->weights_size bytes, at each parameter's offset). */
void onnx_fill_weights(const Model *m, const OnnxModel *om, unsigned char *blob);

/* Whether `path` names an ONNX model (ends in .onnx). */
bool onnx_is_model_path(const char *path);

#endif
