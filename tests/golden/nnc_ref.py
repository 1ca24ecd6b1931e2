"""Shared helpers for the golden reference scripts (tests/golden/<model>/reference.py).

No dependency beyond numpy (and torch for state_dict conversion): the safetensors format
is written by hand so the `safetensors` package is not needed.

safetensors layout: 8-byte little-endian u64 header length N, then N bytes of JSON
{"name": {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}, ...} padded with
spaces to a multiple of 8, then the raw little-endian tensor data, contiguous, in order.
"""
import json
import os
import struct

import numpy as np

_DTYPES = {np.dtype("<f4"): "F32", np.dtype("<i8"): "I64"}
_NP_DTYPES = {"F32": np.dtype("<f4"), "I64": np.dtype("<i8")}


def _to_numpy(t):
    if hasattr(t, "detach"):  # torch tensor
        t = t.detach().cpu().contiguous().numpy()
    a = np.asarray(t)
    if a.dtype.kind == "f":
        a = a.astype("<f4")
    elif a.dtype.kind in "iu":
        a = a.astype("<i8")
    return np.array(a, order="C", copy=True)  # (np.ascontiguousarray would turn 0-d into 1-d)


def save_safetensors(path, tensors):
    """Write an ordered mapping name -> tensor (torch or numpy) as F32/I64 safetensors."""
    header = {}
    blobs = []
    off = 0
    for name, t in tensors.items():
        a = _to_numpy(t)
        b = a.tobytes(order="C")
        header[name] = {"dtype": _DTYPES[a.dtype], "shape": list(a.shape),
                        "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * ((-len(h)) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def load_safetensors(path):
    """Read a safetensors file into an ordered dict name -> numpy array."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n].decode("utf-8"))
    base = 8 + n
    out = {}
    items = [(k, v) for k, v in header.items() if k != "__metadata__"]
    items.sort(key=lambda kv: kv[1]["data_offsets"][0])
    for name, info in items:
        b, e = info["data_offsets"]
        dt = _NP_DTYPES[info["dtype"]]
        out[name] = np.frombuffer(data[base + b:base + e], dtype=dt).reshape(info["shape"]).copy()
    return out


def load_state_dict(module, path):
    """Load a safetensors file into a torch module (strict)."""
    import torch
    sd = {k: torch.from_numpy(v) for k, v in load_safetensors(path).items()}
    module.load_state_dict(sd, strict=True)
    return module


def save_npy(path, t):
    np.save(path, _to_numpy(t), allow_pickle=False)


def write_golden(outdir, model, entries):
    """Write weights.safetensors and <entry>.in.<arg>.npy / <entry>.out.<name>.npy.

    entries: list of (entry_name, {argname: tensor}, {outname: tensor}) in order.
    Stale .npy files in outdir are removed first so the directory matches exactly."""
    for fn in os.listdir(outdir):
        if fn.endswith(".npy"):
            os.remove(os.path.join(outdir, fn))
    save_safetensors(os.path.join(outdir, "weights.safetensors"), model.state_dict())
    for entry, ins, outs in entries:
        for k, v in ins.items():
            save_npy(os.path.join(outdir, f"{entry}.in.{k}.npy"), v)
        for k, v in outs.items():
            save_npy(os.path.join(outdir, f"{entry}.out.{k}.npy"), v)
