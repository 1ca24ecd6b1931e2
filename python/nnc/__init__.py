"""nnc — call models compiled by nnc from Python, with NumPy arrays.

    import numpy as np, nnc
    m = nnc.load("realnvp.so")                       # a library made by `nnc M.nn -o M.so`
    m = nnc.compile("realnvp.nn", weights="w.safetensors")   # or JIT-compile the source
    z, logdet = m.forward(np.zeros((4, 2), np.float32))      # one output: the array itself
    m.entries["forward"].inputs                       # (x: f32[N, 2],): names, dtypes, dims
    nnc.save_safetensors(torch_model.state_dict(), "w.safetensors")

Pure Python (ctypes + NumPy).  nnc.load needs only the generated .so; nnc.compile uses the
runtime library libnnc.so (built with nnc; see nnc._lib for where it is looked up).
Argument mismatches raise TypeError (wrong dtype, argument count or names) or ValueError
(wrong rank or shape), naming the argument and its expected type; failures reported by the
library raise nnc.Error (nnc.CompileError, nnc.WeightsError; nnc.ClosedError for a model used
after close()).
"""
from ._entry import Arg, BoundCall, Entry, Param
from ._errors import ClosedError, CompileError, Error, WeightsError
from ._model import Model, compile, load
from ._safetensors import load_safetensors, save_safetensors

__version__ = "0.1.0"
__all__ = ["load", "compile", "save_safetensors", "load_safetensors", "Model", "Entry", "Arg",
           "Param", "BoundCall", "Error", "CompileError", "WeightsError", "ClosedError"]
