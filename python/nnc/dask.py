"""nnc.dask — score Dask arrays and DataFrames with a compiled model, block by block, on a
Dask cluster (or Dask's local schedulers).

    import dask.array as da, nnc.dask
    from distributed import Client
    client = Client("tcp://scheduler:8786")            # or Client(LocalCluster(...))
    forward = nnc.dask.entry("realnvp.so", "forward")  # ships the library to the workers now
    x = da.random.standard_normal((10_000_000, 2), chunks=250_000).astype("float32")
    z, logdet = forward(x)                             # lazy Dask arrays, chunked like x
    scores = forward.dataframe(ddf, columns=["a", "b"])  # a Dask DataFrame: z_0, z_1, logdet

The entry runs once per block along the batch dimension (the symbol in the first dim of its
first input, N in f32[N, 2]); the other dims of every block must fit the entry, and blocks
of any batch size do.  The library's bytes (and the weights file given with `weights=`) go
to each worker once, as a worker plugin (so workers that join later get them too): a worker
writes them to its local directory, opens the model on the first block it runs and keeps it
for every later block (one context per worker process; that worker's tasks take turns on it,
each call with `threads` threads, by default the worker's thread count).  Errors raised by a
block (a shape that does not fit the entry, a failing call) are raised on the client by
compute(), with nnc's message.

Needs dask (Debian python3-dask) and, for a cluster, distributed (python3-distributed); the
workers need this package and NumPy importable, as for any function Dask runs.
"""
import hashlib
import operator
import os
import threading
import weakref

import numpy as np

try:
    import dask
    import dask.array as da
    from dask.highlevelgraph import HighLevelGraph
except ImportError as e:  # pragma: no cover - depends on the machine
    raise ImportError("nnc.dask needs Dask: install it with `apt-get install python3-dask "
                      "python3-distributed` (or `pip install 'dask[array,dataframe]' distributed`)"
                      ) from e

from ._entry import _bits
from ._model import Model, load

try:
    from distributed.diagnostics.plugin import WorkerPlugin as _WorkerPlugin
except ImportError:  # Dask without distributed: local schedulers only
    _WorkerPlugin = object

__all__ = ["entry", "DaskEntry", "worker_stats"]


# ---- the library, as shipped to the workers ----

class _Library:
    """What a task needs to find the model in a worker process: the digest of the library
    (and weights) bytes, their file names, and the client's paths (used where no worker
    plugin delivered the files: Dask's local schedulers, or a cluster on this machine)."""

    def __init__(self, so_path, weights_path):
        self.so_path = os.path.abspath(so_path)
        self.weights_path = os.path.abspath(weights_path) if weights_path else None
        h = hashlib.sha256()
        for p in filter(None, (self.so_path, self.weights_path)):
            with open(p, "rb") as f:
                h.update(f.read())
        self.digest = h.hexdigest()[:16]
        self.name = os.path.splitext(os.path.basename(so_path))[0]
        self.plugin_name = f"nnc-{self.name}-{self.digest}"

    def files(self):
        """{file name: bytes} of the library (and weights), for the worker plugin."""
        out = {}
        for p, suffix in ((self.so_path, ".so"), (self.weights_path, ".safetensors")):
            if p:
                with open(p, "rb") as f:
                    out[self.name + suffix] = f.read()
        return out


_LOCK = threading.Lock()
_DELIVERED = {}  # digest -> (so path, weights path) written by the plugin in this process
_MODELS = {}     # (digest, threads) -> Model opened in this process
_STATS = {}      # digest -> counters, see worker_stats()


def _stats(lib):
    return _STATS.setdefault(lib.digest, {"library": lib.name, "written": 0, "opens": 0,
                                          "blocks": 0, "rows": 0, "threads": None, "path": None})


class _LibraryPlugin(_WorkerPlugin):
    """Writes the library (and weights) into the worker's local directory, once per process."""

    def __init__(self, lib):
        self.lib = lib
        self.name = lib.plugin_name
        self.files = lib.files()

    def setup(self, worker):
        with _LOCK:
            if self.lib.digest in _DELIVERED:  # registered again (another client): keep it
                return
            folder = os.path.join(worker.local_directory, self.name)
            os.makedirs(folder, exist_ok=True)
            paths = {}
            for fname, data in self.files.items():
                path = paths[os.path.splitext(fname)[1]] = os.path.join(folder, fname)
                with open(path + ".part", "wb") as f:
                    f.write(data)
                os.replace(path + ".part", path)
            _DELIVERED[self.lib.digest] = (paths[".so"], paths.get(".safetensors"))
            _stats(self.lib)["written"] += 1


def _worker_threads():
    """The thread count of the Dask worker running this task, or None outside a worker."""
    try:
        from distributed import get_worker
        worker = get_worker()
    except (ImportError, ValueError):
        return None
    state = getattr(worker, "state", None)  # distributed >= 2022.11 keeps nthreads there
    return state.nthreads if state is not None and hasattr(state, "nthreads") else worker.nthreads


def _model_here(lib, threads):
    """The model in this process, opened on first use."""
    threads = threads or _worker_threads()
    key = (lib.digest, threads)
    with _LOCK:
        model = _MODELS.get(key)
        if model is None:
            so, weights = _DELIVERED.get(lib.digest, (lib.so_path, lib.weights_path))
            if not os.path.isfile(so):
                raise FileNotFoundError(
                    f"nnc.dask: library {lib.plugin_name} was not delivered to this worker and "
                    f"{so} is not on this machine: make the nnc.dask.entry with the client "
                    f"that computes (client=...)")
            model = _MODELS[key] = load(so, weights=weights, threads=threads)
            s = _stats(lib)
            s["opens"] += 1
            s["threads"], s["path"] = model.threads, so
    return model


class _Block:
    """The task of one block: the entry on this block's inputs; returns the outputs (a tuple)."""

    def __init__(self, lib, entry, threads):
        self.lib, self.entry, self.threads = lib, entry, threads

    def __call__(self, *inputs):
        model = _model_here(self.lib, self.threads)
        outs = tuple(model[self.entry].call(*inputs).values())
        with _LOCK:
            s = _stats(self.lib)
            s["blocks"] += 1
            s["rows"] += len(outs[0]) if outs and outs[0].ndim else 0
        return outs


class _Partition:
    """The task of one DataFrame partition: columns in, a pandas DataFrame out."""

    def __init__(self, block, inputs, outputs):
        self.block = block
        self.__name__ = f"{block.lib.name}-{block.entry}"  # the name Dask gives the partitions
        self.inputs = inputs    # ((columns or column, dtype), ...) per entry input
        self.outputs = outputs  # ((column names or name), ...) per entry output

    def __call__(self, part):
        import pandas as pd
        arrays = [part[cols].to_numpy(dtype=dtype) for cols, dtype in self.inputs]
        cols = {}
        for names, arr in zip(self.outputs, self.block(*arrays)):
            if isinstance(names, str):
                cols[names] = arr
            else:
                cols.update((n, arr[:, j]) for j, n in enumerate(names))
        return pd.DataFrame(cols, index=part.index)


def worker_stats():
    """Counters of this process, per library (its digest): {'library', 'written' (times the
    plugin wrote the files), 'opens' (models opened), 'blocks', 'rows' (blocks and rows
    scored), 'threads', 'path'}.  On a cluster: client.run(nnc.dask.worker_stats)."""
    with _LOCK:
        return {k: dict(v) for k, v in _STATS.items()}


# ---- the client side ----

_REGISTERED = weakref.WeakKeyDictionary()  # client -> plugin names registered through it


def _default_client():
    try:
        from distributed import default_client
        return default_client()
    except (ImportError, ValueError):
        return None


def _register(client, lib):
    names = _REGISTERED.setdefault(client, set())
    if lib.plugin_name in names:
        return
    plugin = _LibraryPlugin(lib)
    if hasattr(client, "register_plugin"):  # distributed >= 2023.9
        client.register_plugin(plugin, name=lib.plugin_name)
    else:
        client.register_worker_plugin(plugin, name=lib.plugin_name)
    names.add(lib.plugin_name)


def entry(model, name, weights=None, threads=None, client=None):
    """A DaskEntry: the entry `name` of `model` mapped over Dask collections block by block.

    model    a library made by `nnc FILE.nn -o FILE.so` (its path), or an nnc.Model loaded
             from one with nnc.load (a JIT-compiled model has no library to ship)
    weights  a safetensors file, shipped with the library: needed when the library has no
             embedded weights (also when `model` was loaded with weights=: a Model does not
             remember the file)
    threads  threads per call on a worker (default: the worker's thread count, so that
             workers x threads = cores; outside a distributed worker, the model's default)
    client   the distributed Client whose workers get the library now, through a worker
             plugin (default: the current client, if any; with none, blocks open the library
             at its path here, as Dask's local schedulers need)"""
    return DaskEntry(model, name, weights, threads, client)


class DaskEntry:
    """An entry of a compiled model, mapped over Dask arrays (`de(x)`, `de.call(x)`) or the
    columns of a Dask DataFrame (`de.dataframe(df)`); see nnc.dask.entry.  `model` is the
    model opened here (for its signature; blocks run on the workers), `entry` its Entry."""

    def __init__(self, model, name, weights=None, threads=None, client=None):
        if isinstance(model, Model):
            if model.path.endswith(".nn"):
                raise ValueError(f"{model.path}: nnc.dask needs a compiled library: a model from "
                                 f"nnc.compile has no file to ship; make one with "
                                 f"`nnc {model.path} -o MODEL.so`")
            path = model.path
            if weights is not None or not model.embedded_weights:
                model = load(path, weights=weights, threads=1)
        else:
            path = os.fspath(model)
            model = load(path, weights=weights, threads=1)
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int)
                                    or threads < 0):
            raise ValueError(f"threads must be an integer >= 0 (0 or None: the worker's thread "
                             f"count), not {threads!r}")
        self.model = model
        self.entry = model[name]
        self.threads = threads or None
        self._lib = _Library(path, weights)
        self._block = _Block(self._lib, name, self.threads)
        self._batch = self._batch_symbol()
        self.client = client if client is not None else _default_client()
        if self.client is not None:
            _register(self.client, self._lib)

    def __repr__(self):
        return f"<nnc.dask entry {self.model.name}.{self.entry.signature}>"

    def _batch_symbol(self):
        """The bit of the batch symbol: the one symbol of the first input dim that has one."""
        for a in self.entry.inputs:
            if a._raw and len(_bits(a._raw[0][1])) == 1:
                bit = a._raw[0][1]
                break
        else:
            raise ValueError(f"{self.entry.signature}: no input has a symbolic first dim "
                             f"(f32[N, ...]) to split into blocks")
        for a in self.entry.outputs:
            if not a._raw or not a._raw[0][1] & bit or any(m & bit for _, m in a._raw[1:]):
                raise ValueError(f"{self.entry.signature}: output '{a.name}' is not split along "
                                 f"the batch dim {self.model.symbols[bit.bit_length() - 1]} "
                                 f"(it must be its first dim, and only that)")
        for a in self.entry.inputs:
            if any(m & bit for _, m in a._raw[1:]):
                raise ValueError(f"{self.entry.signature}: input '{a.name}' has the batch dim "
                                 f"{self.model.symbols[bit.bit_length() - 1]} after its first dim")
        return bit

    def _is_batched(self, a):
        return bool(a._raw and a._raw[0][1] & self._batch)

    # ---- Dask arrays ----

    def __call__(self, *args, **kwargs):
        """The entry over Dask arrays (or NumPy arrays) split along the batch dim: returns a
        lazy Dask array per output (one, or a named tuple as the Entry does), chunked as the
        inputs' blocks."""
        outs = self._arrays(args, kwargs)
        return outs[0] if len(outs) == 1 else self.entry._tuple(*outs)

    def call(self, *args, **kwargs):
        """As calling it, but returns a dict output name -> Dask array."""
        return dict(zip((a.name for a in self.entry.outputs), self._arrays(args, kwargs)))

    def _arrays(self, args, kwargs):
        values = self.entry._collect(args, kwargs)
        batched = [self._is_batched(a) for a in self.entry.inputs]
        # the blocks are those of the first batched input that is a Dask array
        ref = next((i for i, (v, b) in enumerate(zip(values, batched))
                    if b and isinstance(v, da.Array)), batched.index(True))
        arrays = self._align([self._as_dask(a, v, b) for a, v, b in
                              zip(self.entry.inputs, values, batched)], batched, ref)
        nblocks = arrays[ref].numblocks[0]
        rows = self._block_rows(arrays[ref], self.entry.inputs[ref])
        syms = self._check(arrays, batched, rows)
        token = dask.base.tokenize(self._lib.digest, self.entry.name, self.threads,
                                   *[x.name for x in arrays])
        name = f"nnc-{self.entry.name}-{token}"
        layer = {}
        for i in range(nblocks):
            keys = [(x.name, i if b else 0, *[0] * (x.ndim - 1)) if x.ndim else (x.name,)
                    for x, b in zip(arrays, batched)]
            layer[(name, i)] = (self._block, *keys)
        outs = []
        for o, a in enumerate(self.entry.outputs):
            oname = f"{self.model.name}-{self.entry.name}-{a.name}-{token}"
            dims = [self._dim(k, m, syms) for k, m in a._raw]
            out_layer = {(oname, i, *[0] * (len(dims) - 1)): (operator.getitem, (name, i), o)
                         for i in range(nblocks)}
            chunks = (tuple(r * dims[0] for r in rows),) + tuple((d,) for d in dims[1:])
            graph = HighLevelGraph.from_collections(oname, {**layer, **out_layer},
                                                    dependencies=arrays)
            outs.append(da.Array(graph, oname, chunks, meta=np.empty((0,) * len(dims), a.dtype)))
        return outs

    def _dim(self, k, mask, syms):
        """A dim's size with the batch symbol taken as 1 (so dim 0 is rows per batch unit)."""
        for i in _bits(mask & ~self._batch):
            k *= syms[i]
        return k

    def _as_dask(self, a, v, batched):
        """An input as a Dask array of a's dtype: split along dim 0 if batched, else one chunk."""
        if not isinstance(v, da.Array):
            v = np.asarray(self.entry._convert(a, v))
            v = da.from_array(v, chunks="auto" if batched and v.ndim else -1)
        else:
            self.entry._convert(a, np.empty((0,) * v.ndim, v.dtype))  # the entry's TypeError
        if v.ndim != len(a.dims):
            raise ValueError(f"{self.entry.name}(): argument '{a.name}' must have {len(a.dims)} "
                             f"dim{'s' * (len(a.dims) != 1)} ({a!r}), got an array of shape "
                             f"{v.shape}")
        whole = range(1 if batched else 0, v.ndim)
        if any(v.numblocks[i] > 1 for i in whole):
            v = v.rechunk({i: -1 for i in whole})
        return v

    def _align(self, arrays, batched, ref):
        """Rechunk the batched inputs along dim 0 to the blocks of arrays[ref]."""
        first, k0 = arrays[ref], self.entry.inputs[ref]._raw[0][0]
        for i, b in enumerate(batched):
            if not b or i == ref:
                continue
            x, k = arrays[i], self.entry.inputs[i]._raw[0][0]
            if x.chunks[0] == tuple(c * k / k0 for c in first.chunks[0]):
                continue
            if np.isnan(first.shape[0]) or np.isnan(x.shape[0]):
                if x.numblocks[0] != first.numblocks[0]:
                    raise ValueError(
                        f"{self.entry.name}(): inputs '{self.entry.inputs[ref].name}' and "
                        f"'{self.entry.inputs[i].name}' have blocks of unknown size, and "
                        f"{first.numblocks[0]} and {x.numblocks[0]} blocks: align them first")
                continue
            arrays[i] = x.rechunk({0: tuple(c * k // k0 for c in first.chunks[0])})
        return arrays

    def _block_rows(self, x, a):
        """The batch symbol's value in each block of x (input a; NaN where unknown)."""
        k = a._raw[0][0]
        bad = [c for c in x.chunks[0] if not np.isnan(c) and c % k]
        if bad:
            raise ValueError(f"{self.entry.name}(): argument '{a.name}' ({a!r}) has blocks of "
                             f"{bad[0]} rows along dim 0, not a multiple of {k}: rechunk it")
        return tuple(c / k if np.isnan(c) else c // k for c in x.chunks[0])

    def _check(self, arrays, batched, rows):
        """The entry's own checks (rank, static dims, dtype) on the first block's shape; the
        values of the model's symbols there (the batch symbol's is that block's)."""
        n = next((r for r in rows if r > 0), 1)  # NaN > 0 is False
        fake = []
        for a, x, b in zip(self.entry.inputs, arrays, batched):
            shape = [d if not np.isnan(d) else 0 for d in (x.chunks[j][0] for j in range(x.ndim))]
            if b and x.ndim:
                shape[0] = a._raw[0][0] * n
            fake.append(np.broadcast_to(np.zeros((), a.dtype), shape))
        return self.entry._bind_syms(fake)

    # ---- Dask DataFrames ----

    def dataframe(self, df, columns=None):
        """The entry over the columns of the Dask DataFrame `df`, one partition per call:
        returns a lazy Dask DataFrame with df's index and divisions, a column per output
        value: 'NAME' for an output [N], 'NAME_0', 'NAME_1', ... for [N, K].

        columns  the columns feeding the inputs, converted to their dtypes (float32, int64):
                 for an entry with one input, a list (default: every column of df), or one
                 name for a [N] input; else a dict input name -> columns (or column).  Every
                 input must be [N] or [N, K] with a static K; its first dim is the batch."""
        import pandas as pd
        ins = self.entry.inputs
        if not isinstance(columns, dict):
            if len(ins) != 1:
                raise TypeError(f"{self.entry.name}() has {len(ins)} inputs: give columns as a "
                                f"dict input name -> columns ({self.entry.signature})")
            columns = {ins[0].name: list(df.columns) if columns is None else columns}
        unknown = set(columns) - {a.name for a in ins}
        missing = [a.name for a in ins if a.name not in columns]
        if unknown or missing:
            raise TypeError(f"{self.entry.name}(): columns must name every input "
                            f"({', '.join(a.name for a in ins)}); "
                            + (f"unknown: {', '.join(sorted(unknown))}" if unknown
                               else f"missing: {', '.join(missing)}"))
        inputs, fake = [], []
        for a in ins:
            cols = columns[a.name]
            if len(a.dims) not in (1, 2) or a._raw[0] != (1, self._batch) or \
                    (len(a.dims) == 2 and a._raw[1][1]):
                raise ValueError(f"{self.entry.name}(): input {a!r} cannot be read from columns "
                                 f"(it must be [N] or [N, K] with a static K)")
            names = [cols] if isinstance(cols, str) else list(cols)
            absent = [c for c in names if c not in df.columns]
            if absent:
                raise KeyError(f"{self.entry.name}(): input '{a.name}': no column "
                               f"{', '.join(map(repr, absent))} in the DataFrame (its columns: "
                               f"{', '.join(map(str, df.columns))})")
            if len(a.dims) == 1 and not isinstance(cols, str):
                if len(names) != 1:
                    raise ValueError(f"{self.entry.name}(): input {a!r} takes one column, got "
                                     f"{len(names)}")
                cols = names[0]
            if len(a.dims) == 2 and len(names) != a.dims[1]:
                raise ValueError(f"{self.entry.name}(): input {a!r} takes {a.dims[1]} "
                                 f"column{'s' * (a.dims[1] != 1)}, got {len(names)}: "
                                 f"{', '.join(map(str, names))}")
            inputs.append((cols if isinstance(cols, str) else names, a.dtype))
            fake.append(np.broadcast_to(np.zeros((), a.dtype),
                                        (1,) if len(a.dims) == 1 else (1, len(names))))
        syms = self.entry._bind_syms(fake)
        outputs, meta = [], {}
        for a in self.entry.outputs:
            dims = [self._dim(k, m, syms) for k, m in a._raw]
            if len(dims) not in (1, 2) or dims[0] != 1:
                raise ValueError(f"{self.entry.name}(): output {a!r} cannot be a column "
                                 f"(it must be [N] or [N, K])")
            names = a.name if len(dims) == 1 else tuple(f"{a.name}_{j}" for j in range(dims[1]))
            outputs.append(names)
            for n in [names] if isinstance(names, str) else names:
                meta[n] = pd.Series(dtype=a.dtype)
        meta = pd.DataFrame(meta, index=df._meta.index[:0])
        part = _Partition(self._block, tuple(inputs), tuple(outputs))
        return df.map_partitions(part, meta=meta, enforce_metadata=False,
                                 transform_divisions=False, align_dataframes=False)
