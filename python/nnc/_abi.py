"""ctypes mirror of the C structs the package reads.

runtime/include/nnc_model.h — the introspection table every generated library exports
(nnc_model_info): model name, symbolic dims, entries with their arguments, parameters.
runtime/include/nnc.h — nnc_tensor, the tensor of the runtime API (libnnc.so).

Field order and types are exactly the headers'.  check_layout() compiles a small C program
printing sizeof/offsetof of every struct and field and compares them with ctypes; the tests
(tests/python/test_abi.py) and bench/bench.py run it.
"""
import ctypes
import os
import subprocess
import tempfile

NNC_MODEL_ABI = 5
NNC_SYM_CLAMP, NNC_SYM_SQUARE = 1, 2  # nnc_sym_rule.flags
NNC_F32, NNC_I64 = 0, 1
NNC_OK, NNC_ERR_USER, NNC_ERR_USAGE, NNC_ERR_NOMEM = 0, 1, 2, 3
NNC_MAX_RANK = 8


class NncDim(ctypes.Structure):
    """k times the product of the symbolic dims whose bits are set in syms."""
    _fields_ = [("k", ctypes.c_int64), ("syms", ctypes.c_uint32)]


class NncArgDesc(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("dtype", ctypes.c_int32), ("rank", ctypes.c_int32),
                ("dims", ctypes.POINTER(NncDim))]


NncEntryFn = ctypes.CFUNCTYPE(None, ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_int64),
                              ctypes.c_char_p, ctypes.c_char_p)


class NncSlot(ctypes.Structure):  # a workspace region (nnc_model.h)
    _fields_ = [("bytes", NncDim), ("at", NncDim), ("overlay", ctypes.c_int32)]


class NncEntryDesc(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("n_in", ctypes.c_int32), ("n_out", ctypes.c_int32),
                ("args", ctypes.POINTER(NncArgDesc)), ("n_slots", ctypes.c_int32),
                ("slots", ctypes.POINTER(NncSlot)), ("body", ctypes.c_void_p),  # nnc_entry_fn
                ("syms", ctypes.c_uint32)]  # every symbolic dim it uses


class NncParamDesc(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("dtype", ctypes.c_int32), ("rank", ctypes.c_int32),
                ("shape", ctypes.POINTER(ctypes.c_int64)), ("offset", ctypes.c_uint64),
                ("nbytes", ctypes.c_uint64), ("flags", ctypes.c_uint32)]  # NNC_PARAM_*


class NncSymRule(ctypes.Structure):
    """How a symbolic dim gets its value: bound by the caller (src < 0), or
    floor((mul * syms[src] + add) / div), a layer's output size, or with NNC_SYM_SQUARE
    syms[src] squared (the element count of a [T, T] tensor)."""
    _fields_ = [("src", ctypes.c_int32), ("flags", ctypes.c_int32), ("mul", ctypes.c_int64), ("add", ctypes.c_int64),
                ("div", ctypes.c_int64), ("site", ctypes.c_char_p)]


class NncModelDesc(ctypes.Structure):
    _fields_ = [("abi_version", ctypes.c_uint32), ("name", ctypes.c_char_p),
                ("n_syms", ctypes.c_int32), ("sym_names", ctypes.POINTER(ctypes.c_char_p)),
                ("n_entries", ctypes.c_int32), ("entries", ctypes.POINTER(NncEntryDesc)),
                ("n_params", ctypes.c_int32), ("params", ctypes.POINTER(NncParamDesc)),
                ("weights_size", ctypes.c_uint64),
                ("embedded_weights", ctypes.c_void_p),  # const char *, may hold NULs
                ("init", ctypes.POINTER(NncEntryDesc)),  # derived parameters, or NULL
                ("weights_checksum", ctypes.c_uint64),  # of the embedded weights
                ("sym_rules", ctypes.POINTER(NncSymRule))]  # [n_syms], or NULL


class NncTensor(ctypes.Structure):
    """nnc_tensor of nnc.h: a dense C-order tensor."""
    _fields_ = [("data", ctypes.c_void_p), ("dtype", ctypes.c_int32), ("rank", ctypes.c_int32),
                ("shape", ctypes.c_int64 * NNC_MAX_RANK)]


STRUCTS = [("nnc_dim", NncDim, "nnc_model.h"), ("nnc_slot", NncSlot, "nnc_model.h"),
           ("nnc_arg_desc", NncArgDesc, "nnc_model.h"), ("nnc_sym_rule", NncSymRule, "nnc_model.h"),
           ("nnc_entry_desc", NncEntryDesc, "nnc_model.h"),
           ("nnc_param_desc", NncParamDesc, "nnc_model.h"),
           ("nnc_model_desc", NncModelDesc, "nnc_model.h"), ("nnc_tensor", NncTensor, "nnc.h")]


def check_layout(include_dir, cc="cc"):
    """Compare the ctypes structs with the C compiler's layout of the headers in include_dir.

    Returns a list of mismatches as strings (empty when everything agrees).  Raises OSError
    or subprocess.CalledProcessError when the check program cannot be built or run."""
    lines = ["#include <stdio.h>", "#include <stddef.h>", '#include "nnc.h"', "int main(void) {"]
    for cname, cls, _ in STRUCTS:
        lines.append(f'  printf("{cname} sizeof %zu\\n", sizeof({cname}));')
        for fname, _ in cls._fields_:
            lines.append(f'  printf("{cname} {fname} %zu\\n", offsetof({cname}, {fname}));')
    lines.append('  printf("fnptr sizeof %zu\\n", sizeof(nnc_entry_fn));')
    lines += ["  return 0;", "}"]
    with tempfile.TemporaryDirectory(prefix="nnc-abi-") as d:
        src, exe = os.path.join(d, "abi.c"), os.path.join(d, "abi")
        with open(src, "w") as f:
            f.write("\n".join(lines) + "\n")
        subprocess.run([cc, "-std=c11", "-I", include_dir, src, "-o", exe], check=True,
                       capture_output=True, text=True)
        out = subprocess.run([exe], capture_output=True, text=True, check=True).stdout
    c = {}
    for line in out.splitlines():
        a, b, v = line.split()
        c[(a, b)] = int(v)
    py = {("fnptr", "sizeof"): ctypes.sizeof(NncEntryFn)}
    for cname, cls, _ in STRUCTS:
        py[(cname, "sizeof")] = ctypes.sizeof(cls)
        for fname, _ in cls._fields_:
            py[(cname, fname)] = getattr(cls, fname).offset
    return [f"{s}.{f}: C {c.get((s, f))}, ctypes {v}" for (s, f), v in sorted(py.items())
            if c.get((s, f)) != v]


if __name__ == "__main__":  # python3 -m nnc._abi [INCLUDE_DIR]
    import sys
    here = os.path.dirname(os.path.abspath(__file__))
    inc = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "..", "..", "runtime", "include")
    bad = check_layout(inc)
    print("\n".join(bad) if bad else "ctypes mirror matches nnc_model.h and nnc.h")
    sys.exit(1 if bad else 0)
