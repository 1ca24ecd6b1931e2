"""safetensors files without the `safetensors` package: save a PyTorch state_dict (or a dict
of NumPy arrays) as nnc reads it, and read one back.

Format: an 8-byte little-endian header length H, H bytes of JSON
    {"name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...,
     "__metadata__": {"key": "value"}}
padded with spaces to a multiple of 8, then the tensors' raw little-endian bytes, C order,
back to back in the order of the mapping.
"""
import json
import os
import struct

import numpy as np

# What nnc reads (runtime/support/safetensors.c): floats as F32, integers as I64.
_F32, _I64 = np.dtype("<f4"), np.dtype("<i8")
_READ_DTYPES = {"F32": _F32, "I64": _I64, "F64": np.dtype("<f8"), "F16": np.dtype("<f2"),
                "I32": np.dtype("<i4"), "I16": np.dtype("<i2"), "I8": np.dtype("i1"),
                "U8": np.dtype("u1"), "BOOL": np.dtype("?")}


def _as_numpy(name, t):
    """A tensor (torch or NumPy or anything array-like) as a C-order <f4 or <i8 array."""
    if hasattr(t, "detach") and hasattr(t, "cpu"):  # a torch.Tensor, without importing torch
        t = t.detach().cpu()
        if str(t.dtype) in ("torch.bfloat16", "torch.float16"):
            t = t.float()
        t = t.contiguous().numpy()
    a = np.asarray(t)
    if a.dtype.kind == "f":
        a = a.astype(_F32, copy=False)
    elif a.dtype.kind in "iub":
        a = a.astype(_I64, copy=False)
    else:
        raise TypeError(f"save_safetensors: tensor {name!r} has dtype {a.dtype}; "
                        f"nnc stores floating-point tensors as F32 and integer ones as I64")
    return a if a.flags.c_contiguous else a.copy(order="C")  # (ascontiguousarray makes 0-d 1-d)


def save_safetensors(tensors, path, metadata=None):
    """Write `tensors` to the safetensors file `path` in the form nnc loads.

    tensors   a mapping name -> tensor: `model.state_dict()`, or a dict of NumPy arrays
              (a torch.nn.Module is taken as its state_dict()).  The names are kept as they
              are, so PyTorch state_dict names are what the .nn model's parameters expect.
    metadata  optional dict of str -> str, stored under "__metadata__".

    Floating-point tensors (float16/32/64, bfloat16) are stored as F32 and integer or bool
    tensors as I64, the two dtypes nnc reads.  Returns `path`."""
    if hasattr(tensors, "state_dict") and callable(tensors.state_dict):
        tensors = tensors.state_dict()
    if not hasattr(tensors, "items"):
        raise TypeError(f"save_safetensors: expected a mapping name -> tensor (e.g. "
                        f"model.state_dict()), got {type(tensors).__name__}")
    header, blobs, offset = {}, [], 0
    for name, t in tensors.items():
        if not isinstance(name, str) or not name:
            raise TypeError(f"save_safetensors: tensor names must be non-empty strings, got {name!r}")
        if name == "__metadata__":
            raise ValueError("save_safetensors: '__metadata__' is reserved; pass metadata=...")
        a = _as_numpy(name, t)
        b = a.tobytes(order="C")
        header[name] = {"dtype": "F32" if a.dtype == _F32 else "I64", "shape": list(a.shape),
                        "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    if metadata:
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
            raise TypeError("save_safetensors: metadata must map str to str")
        header = {"__metadata__": dict(metadata), **header}
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * (-len(h) % 8)
    path = os.fspath(path)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    return path


def load_safetensors(path):
    """Read a safetensors file into a dict name -> NumPy array (in the file's data order)."""
    path = os.fspath(path)
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        raise ValueError(f"{path}: not a safetensors file (shorter than 8 bytes)")
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8:
        raise ValueError(f"{path}: not a safetensors file (header length {n} > file size)")
    header = json.loads(data[8:8 + n].decode("utf-8"))
    base = 8 + n
    items = sorted(((k, v) for k, v in header.items() if k != "__metadata__"),
                   key=lambda kv: kv[1]["data_offsets"][0])
    out = {}
    for name, info in items:
        if info["dtype"] not in _READ_DTYPES:
            raise ValueError(f"{path}: tensor {name!r} has unsupported dtype {info['dtype']}")
        b, e = info["data_offsets"]
        out[name] = np.frombuffer(data[base + b:base + e], dtype=_READ_DTYPES[info["dtype"]]) \
            .reshape(info["shape"]).copy()
    return out
