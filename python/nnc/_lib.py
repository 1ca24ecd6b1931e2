"""Finding and declaring libnnc.so, the runtime library with the compiler inside (nnc.h).

Only nnc.compile needs it (nnc.load calls the generated .so directly).  It is looked up, in
order: the `lib` argument, $NNC_LIBRARY, the install tree this package sits in
(PREFIX/lib/python3/dist-packages/nnc -> PREFIX/lib[/<multiarch>]/libnnc.so.0), the source
tree's build/ (python/nnc -> build/libnnc.so), then the system's library search path.
"""
import ctypes
import ctypes.util
import glob
import os
import threading

from . import _abi

_HERE = os.path.dirname(os.path.abspath(__file__))
_lock = threading.Lock()
_loaded = {}  # path -> CDLL


def candidates():
    """Paths where libnnc.so may be, most specific first (env var, install tree, build tree)."""
    out = []
    env = os.environ.get("NNC_LIBRARY")
    if env:
        out.append(env)
    prefix = os.path.normpath(os.path.join(_HERE, "..", "..", "..", ".."))
    for d in [os.path.join(prefix, "lib")] + sorted(glob.glob(os.path.join(prefix, "lib", "*-linux-gnu*"))):
        out += [os.path.join(d, "libnnc.so.0"), os.path.join(d, "libnnc.so")]
    out.append(os.path.normpath(os.path.join(_HERE, "..", "..", "build", "libnnc.so")))
    return out


def find(lib=None):
    """The path of libnnc.so to use, or raise FileNotFoundError saying where it looked."""
    if lib is not None:
        lib = os.fspath(lib)
        if not os.path.isfile(lib):
            raise FileNotFoundError(f"nnc runtime library {lib!r} does not exist")
        return lib
    tried = candidates()
    for p in tried:
        if os.path.isfile(p):
            return p
    system = ctypes.util.find_library("nnc")
    if system:
        return system
    raise FileNotFoundError(
        "cannot find libnnc.so, the nnc runtime library that nnc.compile needs (nnc.load "
        "needs only the model's .so).  Build nnc (scripts/setup.sh) or install it "
        "(cmake --install build), or set NNC_LIBRARY=/path/to/libnnc.so.  Looked in: "
        + ", ".join(tried))


def load(lib=None):
    """The ctypes handle of libnnc.so, with the prototypes of nnc.h declared."""
    path = find(lib)
    with _lock:
        if path in _loaded:
            return _loaded[path]
        h = ctypes.CDLL(path, mode=ctypes.RTLD_LOCAL)
        P, c_int, c_char_p, c_void_p = ctypes.POINTER, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p
        errp = P(c_void_p)  # char ** (the message is freed with nnc_free)
        decl = {
            "nnc_model_compile_defines": (c_int, [c_char_p, c_char_p, P(c_char_p), c_int, P(c_void_p), errp]),
            "nnc_model_load": (c_int, [c_char_p, P(c_void_p), errp]),
            "nnc_model_free": (None, [c_void_p]),
            "nnc_model_desc_of": (P(_abi.NncModelDesc), [c_void_p]),
            "nnc_model_find_entry": (c_int, [c_void_p, c_char_p]),
            "nnc_context_open": (c_int, [c_void_p, c_char_p, P(c_void_p), errp]),
            "nnc_context_free": (None, [c_void_p]),
            "nnc_call": (c_int, [c_void_p, c_int, P(_abi.NncTensor), c_int, P(_abi.NncTensor), c_int]),
            "nnc_context_error": (c_char_p, [c_void_p]),
            "nnc_context_set_threads": (c_int, [c_void_p, c_int]),
            "nnc_context_threads": (c_int, [c_void_p]),
            "nnc_free": (None, [c_void_p]),
        }
        for name, (res, args) in decl.items():
            f = getattr(h, name)
            f.restype, f.argtypes = res, args
        h.path = path
        _loaded[path] = h
        return h


def take_message(h, p):
    """The char * message at p (a c_void_p), freed with nnc_free; '' for NULL."""
    if not p.value:
        return ""
    msg = ctypes.string_at(p.value).decode("utf-8", errors="replace")
    h.nnc_free(p)
    return msg.rstrip("\n")
