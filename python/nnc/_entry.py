"""Entries of a model and their arguments: the Python side of a call.

An entry call checks its arguments here first, so a mismatch is a TypeError or ValueError
naming the argument, the expected type and what was given; it binds the symbolic dims (N, T,
...) from the input shapes as the C runtime's nnc_call does, allocates the outputs, and hands
the arrays to the model's backend (_backend.py).
"""
import collections
import time
import functools
import operator

import numpy as np

from . import _abi
from ._errors import Error

_DTYPES = {_abi.NNC_F32: np.dtype("<f4"), _abi.NNC_I64: np.dtype("<i8")}
_DTYPE_NAMES = {_abi.NNC_F32: "f32", _abi.NNC_I64: "i64"}
_NUMPY_NAMES = {_abi.NNC_F32: "float32", _abi.NNC_I64: "int64"}
_MISSING = object()


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

    def __init__(self, model, index, name, inputs, outputs, sym_mask, slots=()):
        self._model = model
        self._slots = slots  # workspace regions: (bytes k, syms, at k, syms, overlay), nnc_slot
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
        self._check_workspace(syms)
        return BoundCall(self, inputs, syms, self._alloc_outputs(syms))

    # ---- arguments ----

    def _run(self, args, kwargs):
        inputs, syms = self._prepare(args, kwargs)
        self._check_workspace(syms)
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
            # a bool array into an int64 argument (an ONNX bool input): 0 / 1, lossless
            bool_as_int = arr.dtype.kind == "b" and want.kind == "i"
            if not (same_kind or from_python or bool_as_int):
                got = _given(v, arr)
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

        rules = self._model._sym_rules
        derived = {i for i, r in enumerate(rules) if r[0] >= 0}  # computed below, never bound

        def bind_pass(single_only):
            changed = False
            for a, arr in zip(self.inputs, arrays):
                for j, (k, mask) in enumerate(a._raw):
                    unknown = [i for i in _bits(mask) if val[i] is None]
                    if len(unknown) != 1 or unknown[0] in derived or (single_only and len(_bits(mask)) != 1):
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
        need = self._sym_mask  # and the dims the derived ones are computed from
        for i in reversed(range(len(rules))):
            if need >> i & 1 and i in derived:
                need |= 1 << rules[i][0]
        for i in _bits(need):
            if val[i] is None and i not in derived:
                raise ValueError(f"{self.name}(): cannot infer {symbols[i]} from the input shapes "
                                 f"({self.signature})")
        self._derive_syms(val, rules)
        for a, arr in zip(self.inputs, arrays):  # every dim, the derived ones included
            want = tuple(product(k, m) for k, m in a._raw)
            if tuple(arr.shape) != want:
                bound = [f"{symbols[i]} = {val[i]}" + (f" from argument '{src[i]}'" if src[i] else "")
                         for i in _bits(_mask_of(a._raw)) if src[i] != a.name]
                raise ValueError(f"{self.name}(): argument '{a.name}' has shape {tuple(arr.shape)}, "
                                 f"expected {want} ({a!r}" + "".join("; " + b for b in bound) + ")")
        return [v or 0 for v in val]

    def _derive_syms(self, val, rules):
        """The derived dims the entry uses (a layer's output size) from the bound ones, as the
        runtime's nnc_derive_syms computes them before the call."""
        used = self._sym_mask
        for i in reversed(range(len(rules))):
            if used >> i & 1 and rules[i][0] >= 0:
                used |= 1 << rules[i][0]
        for i, (src, mul, add, div, site, flags) in enumerate(rules):
            if src < 0 or not used >> i & 1:
                continue
            square, clamp = flags & _abi.NNC_SYM_SQUARE, flags & _abi.NNC_SYM_CLAMP
            x = val[src] or 0
            val[i] = x * x if square else (mul * x + add) // div
            if clamp:  # a slice's length: an empty slice below 0
                val[i] = max(val[i], 0)
            if (val[i] < 1 and not clamp and not square) or val[i] >= 1 << 63:
                raise ValueError(f"{self.name}(): {site} {self._model.symbols[i]} is {val[i]} for "
                                 f"{self._model.symbols[src]} = {val[src] or 0} (must be at least 1: "
                                 f"the input is too small)")

    def _check_workspace(self, syms):
        """Before the outputs are allocated: the workspace at these dims fits in 2^63 bytes
        (nnc_entry_workspace_size's layout, in exact integers; the library checks it again)."""
        def value(k, mask):
            for i in _bits(mask):
                k *= syms[i]
            return -(-k // 64) * 64
        end = start = 0
        for bk, bmask, ak, amask, overlay in self._slots:
            start = start + value(ak, amask) if overlay else end
            end = max(end, start + value(bk, bmask))
        if end >= 1 << 63:
            mask = functools.reduce(operator.or_, (b | a for _, b, _, a, _ in self._slots), 0)
            dims = ", ".join(f"{self._model.symbols[i]} = {syms[i]}" for i in _bits(mask))
            raise Error(f"entry '{self.name}': the workspace would need more than 2^63 bytes ({dims})",
                        _abi.NNC_ERR_USER)

    def _alloc_outputs(self, syms):
        """New arrays for the outputs.  A size past 2^63 bytes (zero dims left out, as the C
        runtime counts) is nnc.Error; one the machine cannot hold, MemoryError.  Both name the
        output and the dims' values."""
        outs = []
        for a in self.outputs:
            shape = []
            for k, m in a._raw:
                for i in _bits(m):
                    k *= syms[i]
                shape.append(k)
            nbytes = a.dtype.itemsize
            for d in shape:
                nbytes *= d or 1
            what = (f"output '{a.name}' of entry '{self.name}' ({a!r}"
                    + "".join(f", {self._model.symbols[i]} = {syms[i]}" for i in _bits(_mask_of(a._raw))) + ")")
            if nbytes >= 1 << 63:
                raise Error(f"{what} would need more than 2^63 bytes", _abi.NNC_ERR_USER)
            try:
                outs.append(np.empty(shape, dtype=a.dtype))
            except (MemoryError, ValueError) as e:  # ValueError: larger than NumPy's limit
                raise MemoryError(f"{what}: cannot allocate {nbytes} bytes ({e})") from None
        return outs


def _given(v, arr):
    """What was given instead of a numeric array, for a TypeError: 'float64', "a str ('ab')",
    'an array of strings (<U3)', 'a list of Python objects (dtype object, holding int, NoneType)'."""
    kind = arr.dtype.kind
    if kind not in "USO":
        return arr.dtype.name
    if isinstance(v, (str, bytes)):
        return f"{'a str' if isinstance(v, str) else 'bytes'} ({v[:20]!r}{'...' if len(v) > 20 else ''})"
    container = "an array" if isinstance(v, np.ndarray) else f"a {type(v).__name__}"
    if kind in "US":
        return f"{container} of strings ({arr.dtype.str})"
    types = sorted({type(x).__name__ for x in arr.flat[:1000]})
    return f"{container} of Python objects (dtype object, holding {', '.join(types) or 'nothing'})"


def _dtype_code(dt):
    return _abi.NNC_F32 if dt == _DTYPES[_abi.NNC_F32] else _abi.NNC_I64


SHORT_CALL_US = 50  # a bound call this fast keeps the GIL (BoundCall)
PROBE_CALLS = 3     # calls timed before deciding


class BoundCall:
    """An entry call with its arguments checked once (Entry.bind).  Calling it runs the entry
    on the input arrays (their current contents) into `outputs` and returns them as the entry
    would (an array, or a named tuple).

    Its first PROBE_CALLS calls release the GIL while the entry runs, as every entry call
    does, and are timed; when the fastest took under SHORT_CALL_US, the later ones keep the
    GIL (as NumPy does on small arrays): releasing it, and taking the model's lock that a
    GIL-free call needs, cost ~0.35 us, as much as a small entry itself (softmax over 84
    numbers: 0.2 us in C).  Other Python threads then wait out such a call."""

    def __init__(self, entry, inputs, syms, outputs):
        self.entry, self.inputs, self.syms = entry, inputs, syms
        self.outputs = outputs
        self._args = (entry.index, inputs + outputs, syms, len(inputs))
        self._invoke = entry._model._prepare_call(*self._args)
        self._result = outputs[0] if len(outputs) == 1 else entry._tuple(*outputs)
        self._run = entry._model._invoke
        self._fastest = float("inf")
        self._probes = 0

    def __call__(self):
        t0 = time.perf_counter()
        self._run(self._invoke)
        self._fastest = min(self._fastest, (time.perf_counter() - t0) * 1e6)
        self._probes += 1
        if self._probes >= PROBE_CALLS:  # decided: later calls are not timed
            if self._fastest < SHORT_CALL_US:
                self._invoke = self.entry._model._prepare_call(*self._args, hold_gil=True)
                self.__class__ = _HeldBoundCall
            else:
                self.__class__ = _ReleasedBoundCall
        return self._result

    @property
    def holds_gil(self):
        """Whether calls keep the GIL (decided after the first PROBE_CALLS calls)."""
        return isinstance(self, _HeldBoundCall)


class _ReleasedBoundCall(BoundCall):
    """A BoundCall whose entry proved long: it releases the GIL, untimed."""

    def __call__(self):
        self._run(self._invoke)
        return self._result


class _HeldBoundCall(BoundCall):
    """A BoundCall whose entry proved short: it runs with the GIL held."""

    def __call__(self):
        status = self._invoke()
        if status:
            self.entry._model._held_failed(status)
        return self._result
