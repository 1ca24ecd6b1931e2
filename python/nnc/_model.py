"""Models: a generated .so loaded directly (nnc.load) or a .nn compiled in process through
libnnc.so (nnc.compile), whose exported entries (_entry.py) are called with NumPy arrays.
Both read the library's introspection table (nnc_model.h) for the entries, argument names,
dtypes and shapes."""
import numbers
import os
import threading

from . import _abi, _lib
from ._backend import _JitBackend, _SoBackend
from ._entry import Entry, Arg, Param, _mask_of
from ._errors import ClosedError, Error

MAX_THREADS = 1024  # as `nnc run --threads`
MAX_SYMS = 32       # bits of nnc_dim.syms


def _damaged(path, what):
    return Error(f"{path}: error: the model table is damaged: {what} (rebuild the library with nnc)")


def _check_table(d, path):
    """The scalar fields of a model table (nnc_model.h), before anything reads through its
    pointers: ABI version, counts.  Raises Error."""
    if d.abi_version != _abi.NNC_MODEL_ABI:
        raise Error(f"{path}: error: model ABI version {d.abi_version}, this package reads version "
                    f"{_abi.NNC_MODEL_ABI}: rebuild the library with this nnc")
    if not d.name:
        raise _damaged(path, "no model name")
    if not 0 <= d.n_syms <= MAX_SYMS or (d.n_syms and not d.sym_names):
        raise _damaged(path, f"{d.n_syms} symbolic dims (0 to {MAX_SYMS})")
    if d.n_entries < 1 or not d.entries:
        raise _damaged(path, f"{d.n_entries} entries (at least 1)")
    if d.n_params < 0 or (d.n_params and not d.params):
        raise _damaged(path, f"{d.n_params} parameters")


def _check_args(path, where, n, items, n_syms, params=False):
    """The n arguments (nnc_arg_desc) or parameters (nnc_param_desc) at items: names, dtypes,
    ranks, and the symbols of the arguments' dims."""
    what = "parameter" if params else "argument"
    if n < 0 or (n and not items):
        raise _damaged(path, f"{where}: {n} {what}s")
    for i in range(n):
        a = items[i]
        if not a.name or a.dtype not in (_abi.NNC_F32, _abi.NNC_I64) or not 0 <= a.rank <= _abi.NNC_MAX_RANK:
            raise _damaged(path, f"{where}: {what} {i} has dtype {a.dtype}, rank {a.rank}"
                           + ("" if a.name else " and no name"))
        dims = a.shape if params else a.dims
        if a.rank and not dims:
            raise _damaged(path, f"{where}: {what} {i} has no dims")
        for r in range(0 if params else a.rank):
            if dims[r].syms >> n_syms:
                raise _damaged(path, f"{where}: {what} {i} uses symbolic dims {dims[r].syms:#x}, "
                               f"the model has {n_syms}")


class Model:
    """A compiled model: `name`, `symbols` (the symbolic dims), `params` (state_dict names,
    dtypes, shapes), and `entries` (name -> Entry), each also an attribute: `m.forward(x)`
    (or `m["forward"](x)`).  One context (weights + workspace) serves all calls; calls from
    several threads take turns.  close() (or a `with` block) frees it early.  `threads` is the
    number of threads a call uses (settable; 0 restores the default: $NNC_NUM_THREADS, else
    the CPUs); results are bit-identical for any count."""

    def __init__(self, backend, path):
        self._backend = backend
        self._lock = threading.Lock()
        self.path = path
        d = backend.desc_p.contents
        _check_table(d, path)
        _check_args(path, "parameters", d.n_params, d.params, d.n_syms, params=True)
        for i in range(d.n_entries):
            e = d.entries[i]
            where = f"entry {i}"
            if not e.name or e.n_in < 0 or e.n_out < 0 or e.n_slots < 0 or (e.n_slots and not e.slots):
                raise _damaged(path, f"{where}: {e.n_in} inputs, {e.n_out} outputs, {e.n_slots} slots"
                               + ("" if e.name else ", no name"))
            _check_args(path, where, e.n_in + e.n_out, e.args, d.n_syms)
        for i in range(d.n_syms):
            if not d.sym_names[i]:
                raise _damaged(path, f"symbolic dim {i} has no name")
        self.name = d.name.decode()
        self.symbols = tuple(d.sym_names[i].decode() for i in range(d.n_syms))
        # (src, mul, add, div, site, flags) of each symbolic dim derived from another (src >= 0)
        self._sym_rules = tuple((r.src, r.mul, r.add, r.div, (r.site or b"").decode(), r.flags)
                                for r in (d.sym_rules[i] for i in range(d.n_syms))) if d.sym_rules else ()
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
            slots = tuple((e.slots[s].bytes.k, e.slots[s].bytes.syms, e.slots[s].at.k,
                           e.slots[s].at.syms, bool(e.slots[s].overlay)) for s in range(e.n_slots))
            for _, bmask, _, amask, _ in slots:
                mask |= bmask | amask
            mask |= e.syms  # its kernels' dims, derived ones included
            name = e.name.decode()
            self.entries[name] = Entry(self, i, name, args[:e.n_in], args[e.n_in:], mask, slots)

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

    def _closed(self):
        return ClosedError(f"model {self.name!r} is closed: its context was freed by close() or "
                           f"at the end of its with block; load or compile it again")

    def close(self):
        """Free the context (and a JIT-compiled model's code); later calls raise
        nnc.ClosedError (an nnc.Error and a ValueError).  Closing again is harmless."""
        b = self.__dict__.get("_backend")
        if b is not None:
            with self._lock:
                b.close()
                self._backend = None

    @property
    def threads(self):
        with self._lock:
            if self._backend is None:
                raise self._closed()
            return self._backend.threads()

    @threads.setter
    def threads(self, n):
        if isinstance(n, bool) or not isinstance(n, numbers.Integral) or not 0 <= n <= MAX_THREADS:
            raise ValueError(f"threads must be an integer from 0 to {MAX_THREADS} (0: the default, "
                             f"$NNC_NUM_THREADS, else the CPUs), not {n!r}")
        n = int(n)
        with self._lock:
            if self._backend is None:
                raise self._closed()
            status = self._backend.set_threads(n)
        if status == _abi.NNC_ERR_NOMEM:
            raise MemoryError("out of memory creating the thread pool")
        if status:
            raise Error(f"cannot set {n} threads (status {status})", status)

    # ---- calls ----

    def _prepare_call(self, index, arrays, syms, n_in, hold_gil=False):
        if self._backend is None:
            raise self._closed()
        return self._backend.prepare_call(index, arrays, syms, n_in, hold_gil)

    def _invoke(self, invoke):
        with self._lock:
            if self._backend is None:
                raise self._closed()
            status = invoke()
            if status:
                msg = self._backend.error()
        if status:
            self._raise(status, msg)

    def _held_failed(self, status):
        """Raise for the status of a call prepared with hold_gil (it runs without the lock:
        the GIL serializes it)."""
        with self._lock:
            if self._backend is None:
                raise self._closed()
            self._raise(status, self._backend.error())

    @staticmethod
    def _raise(status, msg):
        if status == _abi.NNC_ERR_NOMEM:
            raise MemoryError(msg)
        raise Error(msg, status)

    def _run(self, index, arrays, syms, n_in):
        self._invoke(self._prepare_call(index, arrays, syms, n_in))


# ---- backends: where the context lives and how an entry is called ----

def _existing(path, what):
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} {path!r} does not exist")
    return path


def _open(backend, weights, model_path, no_weights_hint, threads):
    """Open the backend's context and wrap it in a Model (closing the backend on failure)."""
    try:
        d = backend.desc_p.contents
        _check_table(d, model_path)  # before the C runtime reads it
        if weights is None and not d.embedded_weights and d.n_params > 0:
            raise ValueError(f"{model_path}: the model has {d.n_params} parameters but "
                             f"{no_weights_hint}: pass weights='W.safetensors'")
        backend.open(weights)
        model = Model(backend, model_path)
        if threads is not None:
            model.threads = threads
        return model
    except BaseException:
        backend.close()
        raise


def load(path, weights=None, threads=None):
    """Load a library made by `nnc FILE.nn -o FILE.so` and open a context on it.

    weights  a safetensors file with the model's parameters: required when the library was
             compiled without --weights; given otherwise, it replaces the embedded weights.
    threads  threads per call (default: $NNC_NUM_THREADS, else the CPUs); see Model.threads.
    Needs only the .so (and NumPy), not the nnc runtime library."""
    path = _existing(path, "model library")
    if path.endswith(".nn"):
        raise ValueError(f"{path} is .nn source: compile it with nnc.compile({path!r}, weights=...) "
                         f"or `nnc {path} -o MODEL.so`")
    weights = _existing(weights, "weights file") if weights is not None else None
    lib_path = path if "/" in path else os.path.join(".", path)  # a file here, not a search
    return _open(_SoBackend(lib_path), weights, path, "the library has no embedded weights "
                 "(compiled without --weights)", threads)


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


def compile(path, weights=None, defines=None, lib=None, threads=None):  # noqa: A001 (a builtin here only)
    """JIT-compile the .nn model at `path` in this process (through libnnc.so, see `lib`).

    weights  a safetensors file with the model's parameters (state_dict names), checked now;
             required when the model has parameters.
    defines  override top-level `const NAME`s, as `nnc -D NAME=VALUE`: a dict
             ({"NORM": "bn", "L": 4}) or a list of "NAME=VALUE" strings.
    lib      the path of libnnc.so (default: $NNC_LIBRARY, the install or build tree, then the
             system's library path).
    threads  threads per call (default: $NNC_NUM_THREADS, else the CPUs); see Model.threads."""
    path = _existing(path, "model source")
    weights = _existing(weights, "weights file") if weights is not None else None
    backend = _JitBackend(_lib.load(lib), path, weights, _define_strings(defines))  # weights embedded
    return _open(backend, None, path, "no weights were given", threads)
