"""Where a model's context lives and how an entry is called: a library made by `nnc -o`
(its own nnc_ctx_* functions, nnc_model.h) or a .nn compiled in process by libnnc.so (nnc.h).
Each backend has desc_p (the introspection table), open(weights), prepare_call(...,
hold_gil) -> a function returning the C status, error(), set_threads(n), threads() and
close().

A prepared call releases the GIL while the entry runs (the model's lock serializes calls), or
with hold_gil keeps it (ctypes.PyDLL): no other Python thread runs meanwhile, so the call
needs no lock.  Either way it reads the context pointer from a holder that close() clears
under the GIL, and the C call returns NNC_ERR_USAGE for a NULL context: a prepared call on a
closed model fails cleanly."""
import ctypes
import functools
import os
import shutil
import tempfile

from . import _abi, _elfcheck, _lib
from ._entry import _dtype_code
from ._errors import CompileError, Error, WeightsError


# realpath of each library loaded -> the identity (device, inode, size, mtime) of the file it
# was first loaded from in this process
_LOADED = {}


def _identity(path):
    st = os.stat(path)
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def _fresh_path(path):
    """The path to dlopen for the library now at `path`, and a private copy to remove once it is
    loaded (or None).  dlopen hands back a library it already loaded from the same path, so a
    library rebuilt at a path this process loaded before (nnc model.nn -o m.so, nnc.load, again)
    would be the old one: such a file is loaded from a copy of its own."""
    real = os.path.realpath(path)
    identity = _identity(real)
    if _LOADED.setdefault(real, identity) == identity:
        return path, None
    fd, copy = tempfile.mkstemp(prefix="nnc-reload-", suffix=".so")
    with os.fdopen(fd, "wb") as out, open(real, "rb") as src:
        shutil.copyfileobj(src, out)
    return copy, copy


class _SoBackend:
    """A library made by `nnc -o`: its own nnc_ctx_* functions (nnc_model.h)."""

    def __init__(self, path):
        damage = _elfcheck.truncation(path)
        if damage:
            raise Error(f"{path}: error: {damage}")
        load_path, copy = _fresh_path(path)
        try:
            self.lib = lib = ctypes.CDLL(load_path, mode=ctypes.RTLD_LOCAL)
            held = ctypes.PyDLL(load_path, mode=ctypes.RTLD_LOCAL)
        except OSError as e:
            raise Error(f"{path}: error: cannot load the library: {e}") from None
        finally:
            if copy:
                os.unlink(copy)  # the mapping stays
        P, c_void_p = ctypes.POINTER, ctypes.c_void_p
        decl = {"nnc_model_info": (P(_abi.NncModelDesc), []),
                "nnc_ctx_open": (c_void_p, [P(_abi.NncModelDesc), ctypes.c_char_p, ctypes.c_char_p,
                                            ctypes.c_size_t]),
                "nnc_ctx_close": (None, [c_void_p]),
                "nnc_ctx_call": (ctypes.c_int, [c_void_p, ctypes.c_int, P(c_void_p), P(ctypes.c_int64)]),
                "nnc_ctx_error": (ctypes.c_char_p, [c_void_p]),
                "nnc_ctx_set_threads": (ctypes.c_int, [c_void_p, ctypes.c_int]),
                "nnc_ctx_threads": (ctypes.c_int, [c_void_p])}
        for name, (res, args) in decl.items():
            try:
                f = getattr(lib, name)
            except AttributeError:
                raise Error(f"{path}: error: not a model library made by nnc (no symbol '{name}')") from None
            f.restype, f.argtypes = res, args
        self.desc_p = lib.nnc_model_info()
        if not self.desc_p:
            raise Error(f"{path}: error: nnc_model_info() returned NULL")
        self.ctx = None
        self._ctx_ref = ctypes.c_void_p()  # the context, for prepared calls
        # nnc_ctx_call again, without argtypes: a prepared call passes ctypes objects made
        # once, and converting four arguments on every call would cost ~0.2 us
        self._call_unchecked = lib["nnc_ctx_call"]
        self._call_held = held["nnc_ctx_call"]
        for f in (self._call_unchecked, self._call_held):
            f.restype = ctypes.c_int

    def open(self, weights):
        err = ctypes.create_string_buffer(4096)
        self.ctx = self.lib.nnc_ctx_open(self.desc_p, weights.encode() if weights else None, err, len(err))
        if not self.ctx:
            text = err.value.decode("utf-8", errors="replace").rstrip("\n")
            # the library checks its own model table first (it knows its memory): damage
            # there is nnc.Error, as the package's own table checks raise it
            raise (Error if "the model table is damaged" in text else WeightsError)(text)
        self._ctx_ref.value = self.ctx

    def prepare_call(self, index, arrays, syms, n_in, hold_gil=False):
        argv = (ctypes.c_void_p * max(len(arrays), 1))(*[a.ctypes.data for a in arrays])
        symv = (ctypes.c_int64 * max(len(syms), 1))(*syms)
        fn = self._call_held if hold_gil else self._call_unchecked
        invoke = functools.partial(fn, self._ctx_ref, ctypes.c_int(index), argv, symv)
        invoke.keep_alive = arrays  # argv points into these
        return invoke

    def error(self):
        return (self.lib.nnc_ctx_error(self.ctx) or b"call failed").decode("utf-8", errors="replace")

    def set_threads(self, n):
        return self.lib.nnc_ctx_set_threads(self.ctx, n)

    def threads(self):
        return self.lib.nnc_ctx_threads(self.ctx)

    def close(self):
        if self.ctx:
            self._ctx_ref.value = None
            self.lib.nnc_ctx_close(self.ctx)
            self.ctx = None


class _JitBackend:
    """A .nn compiled in process by libnnc.so (nnc.h: nnc_model_compile, nnc_call)."""

    def __init__(self, h, nn_path, weights, defines):
        self.h, self.model, self.ctx = h, ctypes.c_void_p(), ctypes.c_void_p()
        msg = ctypes.c_void_p()
        defs = (ctypes.c_char_p * max(len(defines), 1))(*[d.encode() for d in defines])
        rc = h.nnc_model_compile_defines(nn_path.encode(), weights.encode() if weights else None,
                                         defs, len(defines), ctypes.byref(self.model),
                                         ctypes.byref(msg))
        if rc:
            text = _lib.take_message(h, msg) or f"{nn_path}: error: compilation failed"
            if rc == _abi.NNC_ERR_NOMEM:  # "out of memory while compiling ...": nothing leaked
                raise MemoryError(text.rstrip("\n"))
            if weights and text.startswith(weights + ":"):
                raise WeightsError(text, rc)
            raise CompileError(text, rc)
        self.desc_p = h.nnc_model_desc_of(self.model)

    def open(self, weights):
        msg = ctypes.c_void_p()
        rc = self.h.nnc_context_open(self.model, weights.encode() if weights else None,
                                     ctypes.byref(self.ctx), ctypes.byref(msg))
        if rc:
            raise WeightsError(_lib.take_message(self.h, msg), rc)

    @staticmethod
    def _tensors(arrays):
        tensors = (_abi.NncTensor * max(len(arrays), 1))()
        for t, a in zip(tensors, arrays):
            t.data, t.dtype, t.rank = a.ctypes.data, _dtype_code(a.dtype), a.ndim
            t.shape[:a.ndim] = a.shape
        return tensors

    def prepare_call(self, index, arrays, syms, n_in, hold_gil=False):
        tin, tout = self._tensors(arrays[:n_in]), self._tensors(arrays[n_in:])
        fn = self._call_held() if hold_gil else self.h.nnc_call
        invoke = functools.partial(fn, self.ctx, index, tin, n_in, tout, len(arrays) - n_in)
        invoke.keep_alive = (arrays, tin, tout)  # the tensors point into the arrays
        return invoke

    def _call_held(self):
        f = getattr(self, "_held", None)
        if f is None:
            f = self._held = ctypes.PyDLL(self.h._name, mode=ctypes.RTLD_LOCAL).nnc_call
            f.restype, f.argtypes = self.h.nnc_call.restype, self.h.nnc_call.argtypes
        return f

    def error(self):
        return (self.h.nnc_context_error(self.ctx) or b"call failed").decode("utf-8", errors="replace")

    def set_threads(self, n):
        return self.h.nnc_context_set_threads(self.ctx, n)

    def threads(self):
        return self.h.nnc_context_threads(self.ctx)

    def close(self):
        if self.ctx:
            ctx = ctypes.c_void_p(self.ctx.value)
            self.ctx.value = None  # prepared calls hold this object
            self.h.nnc_context_free(ctx)
        if self.model:
            self.h.nnc_model_free(self.model)
            self.model = ctypes.c_void_p()
