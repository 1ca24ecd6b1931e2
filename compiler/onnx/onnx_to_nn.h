/* onnx_to_nn.h — `nnc import` (compile.h's nnc_import_onnx): an ONNX model as .nn source
 * and a safetensors file of the tensors it reads. */
#ifndef NNC_ONNX_TO_NN_H
#define NNC_ONNX_TO_NN_H

#include "ir.h"
#include "onnx_reader.h"

/* Pin symbolic dims of the graph inputs: each of dims[n] is "NAME=VALUE", NAME a dim_param.
 * False with "PATH: error: ..." in err when one is malformed or names no dim. */
bool onnx_pin_dims(OnnxModel *om, const char *const *dims, int n, char *err, size_t errlen);

/* Write m (onnx_import_named's model of om, with its names) as .nn to nn_path and its
 * tensors to weights_path.  False with a message ("PATH: error: ...\n") in err. */
bool onnx_write_nn(Arena *a, const OnnxModel *om, const Model *m, const char **names, const char *nn_path,
                   const char *weights_path, char *err, size_t errlen);

#endif
