"""Models and entries: a generated .so loaded directly (nnc.load) or a .nn compiled in process
through libnnc.so (nnc.compile), whose exported entries are called with NumPy arrays.

Both read the library's introspection table (nnc_model.h) for the entries, argument names,
dtypes and shapes.  An entry call checks its arguments here first (so a mismatch is a
TypeError or ValueError naming the argument, the expected type and what was given), binds the
symbolic dims (N, T, ...) from the input shapes as the C runtime does, allocates the outputs
and runs the entry on one context of the model.
"""
import collections
import ctypes
import functools
import operator
import os
import threading

import numpy as np

from . import _abi, _lib

_DTYPES = {_abi.NNC_F32: np.dtype("<f4"), _abi.NNC_I64: np.dtype("<i8")}
_DTYPE_NAMES = {_abi.NNC_F32: "f32", _abi.NNC_I64: "i64"}
_NUMPY_NAMES = {_abi.NNC_F32: "float32", _abi.NNC_I64: "int64"}
_MISSING = object()


class Error(RuntimeError):
    """A failure reported by nnc: a bad model, bad weights, or a failed call.

    `status` is the C status code (1 user error, 2 usage error, 3 out of memory)."""

    def __init__(self, message, status=_abi.NNC_ERR_USER):
        super().__init__(message)
        self.status = status


class CompileError(Error):
    """The .nn model does not compile; the message is `file:line:col: error: ...`."""


class WeightsError(Error):
    """The weights file does not fit the model (missing tensor, wrong shape or dtype)."""


def _bits(mask):
    return [i for i in range(32) if mask >> i & 1]


def _mask_of(raw):
    """The symbolic dims used by dims ((k, mask), ...), as one bitmask."""
    return functools.reduce(operator.or_, (m for _, m in raw), 0)


def _dim_str(k, mask, symbols):
    """'2*N', 'N' or '4', as the C runtime writes dims."""
    parts = [str(k)] if k != 1 or not mask else []
    return "*".join(parts + [symbols[i] for i in _bits(mask)])


class Arg:
    """An input or output of an entry: name, dtype (a NumPy dtype), dims (ints, or strings
    such as 'N' or '2*N' for symbolic dims) and type, e.g. 'f32[N, 2]'."""

    __slots__ = ("name", "dtype", "dims", "type", "_raw")

    def __init__(self, name, dtype, raw, symbols):
        self.name = name
        self.dtype = _DTYPES[dtype]
        self._raw = raw  # ((k, sym bitmask), ...)
        self.dims = tuple(k if not m else _dim_str(k, m, symbols) for k, m in raw)
        self.type = f"{_DTYPE_NAMES[dtype]}[{', '.join(_dim_str(k, m, symbols) for k, m in raw)}]"

    def __repr__(self):
        return f"{self.name}: {self.type}"


class Param:
    """A parameter of the model: its state_dict name, dtype and shape."""

    __slots__ = ("name", "dtype", "shape")

    def __init__(self, name, dtype, shape):
        self.name, self.dtype, self.shape = name, _DTYPES[dtype], shape

    def __repr__(self):
        return f"Param({self.name!r}, {self.dtype}, {self.shape})"


class Entry:
    """An exported entry of a model.  Call it with the inputs (positionally or by name) as
    NumPy arrays (or anything np.asarray accepts); it returns the output array, or a named
    tuple of them when there are several.  `call` returns a dict instead, and `bind` checks
    the arguments once for repeated calls."""

    def __init__(self, model, index, name, inputs, outputs, sym_mask):
        self._model = model
        self.index = index
        self.name = name
        self.inputs = tuple(inputs)
        self.outputs = tuple(outputs)
        self._sym_mask = sym_mask  # every symbolic dim the entry uses (args and workspace)
        self._tuple = collections.namedtuple(f"{name}_outputs", [a.name for a in outputs], rename=True)
        self.signature = (f"{name}({', '.join(map(repr, self.inputs))}) -> "
                          f"({', '.join(map(repr, self.outputs))})")
        self.__doc__ = f"{model.name}.{self.signature}"

    def __repr__(self):
        return f"<nnc entry {self._model.name}.{self.signature}>"

    def __call__(self, *args, **kwargs):
        outs = self._run(args, kwargs)
        return outs[0] if len(outs) == 1 else self._tuple(*outs)

    def call(self, *args, **kwargs):
        """Run the entry; returns a dict output name -> array."""
        return dict(zip((a.name for a in self.outputs), self._run(args, kwargs)))

    def bind(self, *args, **kwargs):
        """Check and convert the arguments once; returns a BoundCall that runs the entry on
        them (reading the input arrays each time) into the same output arrays."""
        inputs, syms = self._prepare(args, kwargs)
        return BoundCall(self, inputs, syms, self._alloc_outputs(syms))

    # ---- arguments ----

    def _run(self, args, kwargs):
        inputs, syms = self._prepare(args, kwargs)
        outs = self._alloc_outputs(syms)
        self._model._run(self.index, inputs + outs, syms, len(inputs))
        return outs

    def _prepare(self, args, kwargs):
        values = self._collect(args, kwargs)
        arrays = [self._convert(a, v) for a, v in zip(self.inputs, values)]
        return arrays, self._bind_syms(arrays)

    def _collect(self, args, kwargs):
        names = [a.name for a in self.inputs]
        if len(args) > len(names):
            raise TypeError(f"{self.name}() takes {len(names)} argument{'s' * (len(names) != 1)} "
                            f"({', '.join(names) or 'none'}), got {len(args)}")
        values = list(args) + [_MISSING] * (len(names) - len(args))
        for k, v in kwargs.items():
            if k not in names:
                raise TypeError(f"{self.name}() got an unexpected keyword argument '{k}' "
                                f"(its inputs: {', '.join(names) or 'none'})")
            i = names.index(k)
            if values[i] is not _MISSING:
                raise TypeError(f"{self.name}() got multiple values for argument '{k}'")
            values[i] = v
        missing = [f"'{n}'" for n, v in zip(names, values) if v is _MISSING]
        if missing:
            raise TypeError(f"{self.name}() missing required argument{'s' * (len(missing) > 1)}: "
                            f"{', '.join(missing)} ({self.signature})")
        return values

    def _convert(self, a, v):
        """v as a C-order array of a's dtype; a TypeError names the argument otherwise."""
        if hasattr(v, "detach") and hasattr(v, "cpu"):  # a torch.Tensor
            v = v.detach().cpu()
        native = not (isinstance(v, np.ndarray) or hasattr(v, "__array__")
                      or hasattr(v, "__array_interface__"))
        try:
            arr = np.asarray(v)
        except (TypeError, ValueError) as e:
            raise TypeError(f"{self.name}(): argument '{a.name}' must be an array ({a!r}), "
                            f"got {type(v).__name__}: {e}") from None
        want = a.dtype
        if arr.dtype != want:
            same_kind = arr.dtype.kind == want.kind and arr.dtype.itemsize == want.itemsize
            # Python numbers and lists take the entry's dtype (ints into f32 too); arrays must
            # already have it, up to byte order.
            from_python = native and (arr.dtype.kind in "iub" or (arr.dtype.kind == "f" and want.kind == "f"))
            if not (same_kind or from_python):
                got = arr.dtype.name if arr.dtype.kind != "O" else type(v).__name__
                raise TypeError(f"{self.name}(): argument '{a.name}' must be "
                                f"{_NUMPY_NAMES[_dtype_code(want)]} ({a!r}), got {got}"
                                + (f"; convert it with .astype(np.{want.name})" if arr.dtype.kind in "fiub" else ""))
            arr = arr.astype(want)
        return arr if arr.flags.c_contiguous else arr.copy(order="C")

    def _bind_syms(self, arrays):
        """Values of the model's symbolic dims from the input shapes (as nnc_call does)."""
        symbols = self._model.symbols
        val, src = [None] * len(symbols), [None] * len(symbols)
        for a, arr in zip(self.inputs, arrays):
            if arr.ndim != len(a.dims):
                raise ValueError(f"{self.name}(): argument '{a.name}' must have {len(a.dims)} "
                                 f"dim{'s' * (len(a.dims) != 1)} ({a!r}), got an array of shape "
                                 f"{tuple(arr.shape)}")

        def product(k, mask):
            for i in _bits(mask):
                if val[i] is not None:
                    k *= val[i]
            return k

        def bind_pass(single_only):
            changed = False
            for a, arr in zip(self.inputs, arrays):
                for j, (k, mask) in enumerate(a._raw):
                    unknown = [i for i in _bits(mask) if val[i] is None]
                    if len(unknown) != 1 or (single_only and len(_bits(mask)) != 1):
                        continue
                    p = product(k, mask)
                    if p <= 0:
                        continue
                    if arr.shape[j] % p:
                        raise ValueError(f"{self.name}(): argument '{a.name}' has shape "
                                         f"{tuple(arr.shape)}: dim {j} is {arr.shape[j]}, not a "
                                         f"multiple of {p} ({a!r})")
                    val[unknown[0]], src[unknown[0]] = arr.shape[j] // p, a.name
                    changed = True
            return changed

        bind_pass(True)
        while bind_pass(False):
            pass
        for i in _bits(self._sym_mask):
            if val[i] is None:
                raise ValueError(f"{self.name}(): cannot infer {symbols[i]} from the input shapes "
                                 f"({self.signature})")
        for a, arr in zip(self.inputs, arrays):
            want = tuple(product(k, m) for k, m in a._raw)
            if tuple(arr.shape) != want:
                bound = [f"{symbols[i]} = {val[i]} from argument '{src[i]}'"
                         for i in _bits(_mask_of(a._raw)) if src[i] != a.name]
                raise ValueError(f"{self.name}(): argument '{a.name}' has shape {tuple(arr.shape)}, "
                                 f"expected {want} ({a!r}" + "".join("; " + b for b in bound) + ")")
        return [v or 0 for v in val]

    def _alloc_outputs(self, syms):
        outs = []
        for a in self.outputs:
            shape = []
            for k, m in a._raw:
                for i in _bits(m):
                    k *= syms[i]
                shape.append(k)
            outs.append(np.empty(shape, dtype=a.dtype))
        return outs


def _dtype_code(dt):
    return _abi.NNC_F32 if dt == _DTYPES[_abi.NNC_F32] else _abi.NNC_I64


class BoundCall:
    """An entry call with its arguments checked once (Entry.bind).  Calling it runs the entry
    on the input arrays (their current contents) into `outputs` and returns them as the entry
    would (an array, or a named tuple)."""

    def __init__(self, entry, inputs, syms, outputs):
        self.entry, self.inputs, self.syms = entry, inputs, syms
        self.outputs = outputs
        self._invoke = entry._model._prepare_call(entry.index, inputs + outputs, syms, len(inputs))

    def __call__(self):
        self.entry._model._invoke(self._invoke)
        outs = self.outputs
        return outs[0] if len(outs) == 1 else self.entry._tuple(*outs)


class Model:
    """A compiled model: `name`, `symbols` (the symbolic dims), `params` (state_dict names,
    dtypes, shapes), and `entries` (name -> Entry), each also an attribute: `m.forward(x)`
    (or `m["forward"](x)`).  One context (weights + workspace) serves all calls; calls from
    several threads take turns.  close() (or a `with` block) frees it early."""

    def __init__(self, backend, path):
        self._backend = backend
        self._lock = threading.Lock()
        self.path = path
        d = backend.desc_p.contents
        if d.abi_version != _abi.NNC_MODEL_ABI:
            raise Error(f"{path}: model ABI version {d.abi_version}, this package reads "
                        f"version {_abi.NNC_MODEL_ABI}")
        self.name = d.name.decode()
        self.symbols = tuple(d.sym_names[i].decode() for i in range(d.n_syms))
        self.params = tuple(Param(p.name.decode(), p.dtype, tuple(p.shape[r] for r in range(p.rank)))
                            for p in (d.params[i] for i in range(d.n_params)))
        self.weights_size = d.weights_size
        self.embedded_weights = bool(d.embedded_weights)
        self.entries = {}
        for i in range(d.n_entries):
            e = d.entries[i]
            args = []
            mask = 0
            for j in range(e.n_in + e.n_out):
                a = e.args[j]
                raw = tuple((a.dims[r].k, a.dims[r].syms) for r in range(a.rank))
                mask |= _mask_of(raw)
                args.append(Arg(a.name.decode(), a.dtype, raw, self.symbols))
            for s in range(e.n_slots):
                mask |= e.slots[s].syms
            name = e.name.decode()
            self.entries[name] = Entry(self, i, name, args[:e.n_in], args[e.n_in:], mask)

    def __getattr__(self, name):
        entries = self.__dict__.get("entries") or {}
        if name in entries:
            return entries[name]
        raise AttributeError(f"model {self.__dict__.get('name', '?')!r} has no entry or attribute "
                             f"{name!r} (its entries: {', '.join(entries) or 'none'})")

    def __getitem__(self, name):
        try:
            return self.entries[name]
        except KeyError:
            raise KeyError(f"model {self.name!r} has no entry {name!r} "
                           f"(its entries: {', '.join(self.entries) or 'none'})") from None

    def __dir__(self):
        return sorted(set(super().__dir__()) | set(self.entries))

    def __repr__(self):
        return f"<nnc.Model {self.name}: " + "; ".join(e.signature for e in self.entries.values()) + ">"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown
            pass

    def close(self):
        """Free the context (and a JIT-compiled model's code); later calls raise ValueError."""
        b = self.__dict__.get("_backend")
        if b is not None:
            with self._lock:
                b.close()
                self._backend = None

    # ---- calls ----

    def _prepare_call(self, index, arrays, syms, n_in):
        if self._backend is None:
            raise ValueError(f"model {self.name!r} is closed")
        return self._backend.prepare_call(index, arrays, syms, n_in)

    def _invoke(self, invoke):
        with self._lock:
            if self._backend is None:
                raise ValueError(f"model {self.name!r} is closed")
            status = invoke()
            if status:
                msg = self._backend.error()
        if status == _abi.NNC_ERR_NOMEM:
            raise MemoryError(msg)
        if status:
            raise Error(msg, status)

    def _run(self, index, arrays, syms, n_in):
        self._invoke(self._prepare_call(index, arrays, syms, n_in))


# ---- backends: where the context lives and how an entry is called ----

class _SoBackend:
    """A library made by `nnc -o`: its own nnc_ctx_* functions (nnc_model.h)."""

    def __init__(self, path):
        try:
            self.lib = lib = ctypes.CDLL(path, mode=ctypes.RTLD_LOCAL)
        except OSError as e:
            raise Error(f"{path}: error: cannot load the library: {e}") from None
        P, c_void_p = ctypes.POINTER, ctypes.c_void_p
        decl = {"nnc_model_info": (P(_abi.NncModelDesc), []),
                "nnc_ctx_open": (c_void_p, [P(_abi.NncModelDesc), ctypes.c_char_p, ctypes.c_char_p,
                                            ctypes.c_size_t]),
                "nnc_ctx_close": (None, [c_void_p]),
                "nnc_ctx_call": (ctypes.c_int, [c_void_p, ctypes.c_int, P(c_void_p), P(ctypes.c_int64)]),
                "nnc_ctx_error": (ctypes.c_char_p, [c_void_p])}
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

    def open(self, weights):
        err = ctypes.create_string_buffer(4096)
        self.ctx = self.lib.nnc_ctx_open(self.desc_p, weights.encode() if weights else None, err, len(err))
        if not self.ctx:
            raise WeightsError(err.value.decode("utf-8", errors="replace").rstrip("\n"))

    def prepare_call(self, index, arrays, syms, n_in):
        argv = (ctypes.c_void_p * max(len(arrays), 1))(*[a.ctypes.data for a in arrays])
        symv = (ctypes.c_int64 * max(len(syms), 1))(*syms)
        fn, ctx = self.lib.nnc_ctx_call, self.ctx

        def invoke():
            return fn(ctx, index, argv, symv)
        invoke.keep_alive = arrays  # argv points into these
        return invoke

    def error(self):
        return (self.lib.nnc_ctx_error(self.ctx) or b"call failed").decode("utf-8", errors="replace")

    def close(self):
        if self.ctx:
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

    def prepare_call(self, index, arrays, syms, n_in):
        tin, tout = self._tensors(arrays[:n_in]), self._tensors(arrays[n_in:])
        fn, ctx, n_out = self.h.nnc_call, self.ctx, len(arrays) - n_in

        def invoke():
            return fn(ctx, index, tin, n_in, tout, n_out)
        invoke.keep_alive = (arrays, tin, tout)  # the tensors point into the arrays
        return invoke

    def error(self):
        return (self.h.nnc_context_error(self.ctx) or b"call failed").decode("utf-8", errors="replace")

    def close(self):
        if self.ctx:
            self.h.nnc_context_free(self.ctx)
            self.ctx = ctypes.c_void_p()
        if self.model:
            self.h.nnc_model_free(self.model)
            self.model = ctypes.c_void_p()


def _existing(path, what):
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} {path!r} does not exist")
    return path


def _open(backend, weights, model_path, no_weights_hint):
    """Open the backend's context and wrap it in a Model (closing the backend on failure)."""
    try:
        d = backend.desc_p.contents
        if weights is None and not d.embedded_weights and d.n_params > 0:
            raise ValueError(f"{model_path}: the model has {d.n_params} parameters but "
                             f"{no_weights_hint}: pass weights='W.safetensors'")
        backend.open(weights)
        return Model(backend, model_path)
    except BaseException:
        backend.close()
        raise


def load(path, weights=None):
    """Load a library made by `nnc FILE.nn -o FILE.so` and open a context on it.

    weights  a safetensors file with the model's parameters: required when the library was
             compiled without --weights; given otherwise, it replaces the embedded weights.
    Needs only the .so (and NumPy), not the nnc runtime library."""
    path = _existing(path, "model library")
    if path.endswith(".nn"):
        raise ValueError(f"{path} is .nn source: compile it with nnc.compile({path!r}, weights=...) "
                         f"or `nnc {path} -o MODEL.so`")
    weights = _existing(weights, "weights file") if weights is not None else None
    lib_path = path if "/" in path else os.path.join(".", path)  # a file here, not a search
    return _open(_SoBackend(lib_path), weights, path, "the library has no embedded weights "
                 "(compiled without --weights)")


def _define_strings(defines):
    """{"NORM": "bn", "L": 4} (or ["NORM=bn", ...]) as "NAME=VALUE" strings for -D."""
    if defines is None:
        return []
    if hasattr(defines, "items"):
        out = []
        for k, v in defines.items():
            if isinstance(v, bool):
                v = "true" if v else "false"
            out.append(f"{k}={v}")
        return out
    out = list(defines)
    for d in out:
        if not isinstance(d, str) or "=" not in d:
            raise TypeError(f"compile(): defines must be a dict or 'NAME=VALUE' strings, got {d!r}")
    return out


def compile(path, weights=None, defines=None, lib=None):  # noqa: A001 (shadows a builtin here only)
    """JIT-compile the .nn model at `path` in this process (through libnnc.so, see `lib`).

    weights  a safetensors file with the model's parameters (state_dict names), checked now;
             required when the model has parameters.
    defines  override top-level `const NAME`s, as `nnc -D NAME=VALUE`: a dict
             ({"NORM": "bn", "L": 4}) or a list of "NAME=VALUE" strings.
    lib      the path of libnnc.so (default: $NNC_LIBRARY, the install or build tree, then the
             system's library path)."""
    path = _existing(path, "model source")
    weights = _existing(weights, "weights file") if weights is not None else None
    backend = _JitBackend(_lib.load(lib), path, weights, _define_strings(defines))  # weights embedded
    return _open(backend, None, path, "no weights were given")
