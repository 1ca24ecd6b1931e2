#!/usr/bin/python3
"""nnc vs PyTorch eager vs TorchScript vs ONNX Runtime: latency of every entry of every example
model with a golden reference, at batch 1 and a large batch, with 1 and 2 threads; compile
time, .so size and planned workspace per model; a plot of the speed-ups; plus reference points
for the largest convolution of each conv model.

Models (examples/<src>.nn compiled with the weights of tests/golden/<m>/ embedded, best of 3
wall-clock compile times, `-D` definitions from tests/golden/<m>/defines):

    realnvp, cfr                                      batches 1 and 4096  (issue 2)
    groupnorm, groupnorm_bn, groupnorm_ln,            batches 1 and 8     (issue 3)
      groupnorm_in (examples/groupnorm.nn -D NORM=..)
    fcn                                               batches 1 and 8 images
    mask_rcnn                                         K = 6 and 48 boxes on one image
    infogan                                           batches 1 and 8
    mann (episode, step), fast_weights (classify,     batches 1 and 16    (issue 4)
      step), lm_temperature (logits, softmax_t,
      sample)
    cactus (kmeans, episode)                          static shapes: batch 1 only

Every (model, entry, batch) is run by four implementations on the same inputs, the first three in
this process, each timed with the same function (median of an adaptive number of calls):
  - nnc: the .so loaded with the Python package (python/nnc, which calls every entry generically
    through the ABI of runtime/include/nnc_model.h);
  - PyTorch eager: the module of tests/golden/<m>/reference.py with the same weights.safetensors;
  - TorchScript: torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.script(module))) of
    the same module method (TORCH_ENTRIES); when scripting fails, torch.jit.trace on that batch's
    inputs, then freeze and optimize_for_inference; when both fail, "n/a" and the reason;
  - ONNX Runtime: the same reference method exported once per entry by torch.onnx.export as
    tests/python/onnx_examples.py exports it for the ONNX tests (opset 17, the batch dynamic),
    timed by ort_bench in a child process (bench/ort_side.py: ORT_ENABLE_ALL, CPU provider,
    intra = inter op threads = the row's threads); n/a with the reason when the export or ORT
    fails, or --no-ort.
Each is measured with every thread count of --threads (default 1 and 2): torch.set_num_threads(t)
and the nnc model's `threads = t` (nnc also sets OpenBLAS's thread count for each sgemm).  The
outputs of nnc, TorchScript and ORT are compared with eager's (max |Δ|) before any timing; ORT
disagreeing is not timed (marked in its column and the notes).

Per model: the compile time and the .so size; per entry and batch, the workspace the memory plan
asks for (nnc_entry_workspace_size() of the library at the bound symbolic dims) next to the
lifetime lower bound and the no-reuse sum that `nnc dump --stage=memory --dims ...` prints for
the same dims (planned / bound: how close the plan is to the best possible).

Targets: the per-issue targets (TARGETS, issues 2-4, vs eager) and issue 5's rule: at batch 1,
at least 3x faster than eager and faster than TorchScript; at the large batch (the largest of the
model's batches), no slower than either; issue 20's: every row at least as fast as ONNX Runtime.
The worst miss of each model, and its worst row against ORT, are profiled with perf.

For the largest Conv2d of each conv model (found with forward hooks on the torch module) it
also times, in the same run: that convolution alone in nnc (a one-op .nn generated and compiled
on the fly, same weights), alone in torch (F.conv2d), and OpenBLAS cblas_sgemm on the GEMM of
the same shape (M = Cout/groups, N = OH*OW, K = Cin/groups*KH*KW; bench/sgemm_gflops.c compiled
on the fly with cc -lopenblas), and a STREAM-like copy bandwidth.

    /usr/bin/python3 bench/bench.py [--threads 1,2] [--markdown FILE] [--plot FILE.png]
                                    [--models realnvp,fcn,...] [--batches 1,4096]
                                    [--conv-batches 1,8] [--rnn-batches 1,16] [--torch-only]
                                    [--no-torchscript] [--no-conv] [--no-profile] [--check-abi]
                                    [--no-ort] [--ort-dir DIR]

--markdown docs/benchmarks.md also writes the plot next to it (docs/benchmarks.png) unless --plot
says where; the plot needs matplotlib (apt-get install python3-matplotlib) and is skipped with a
message without it.

Issue 4 models: mann/fast_weights `step` entries (one streaming step, state in and out, at the
state after steps 0..5 of a sequence) are reported per step next to torch's `step` and next to
the whole sequence / T, with no target; lm_temperature `sample` gets the same Gumbel noise and
temperature on all sides and its sampled tokens must agree exactly.

The nnc time includes the ctypes call overhead (printed separately, well under a microsecond).
"""
import argparse
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from collections import namedtuple
from dataclasses import dataclass, field

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
GOLDEN = os.path.join(ROOT, "tests", "golden")
TESTS_PY = os.path.join(ROOT, "tests", "python")  # onnx_examples.py: the ONNX export of every entry
sys.path.insert(0, HERE)
import md_section  # noqa: E402  (its section of docs/benchmarks.md)
import ort_side  # noqa: E402  (ONNX Runtime: install, ort_bench runs)

# model -> (source in examples/, golden directory, kind).  kind "dense": issue 2 (targets 5x at
# batch 1, 1x at the large batch); "conv": issue 3 (2x at batch 1, 1x at batch 8).
MODELS = {
    "realnvp": ("realnvp", "realnvp", "dense"),
    "cfr": ("cfr", "cfr", "dense"),
    "groupnorm": ("groupnorm", "groupnorm", "conv"),
    "groupnorm_bn": ("groupnorm", "groupnorm_bn", "conv"),
    "groupnorm_ln": ("groupnorm", "groupnorm_ln", "conv"),
    "groupnorm_in": ("groupnorm", "groupnorm_in", "conv"),
    "fcn": ("fcn", "fcn", "conv"),
    "mask_rcnn": ("mask_rcnn", "mask_rcnn", "conv"),
    "infogan": ("infogan", "infogan", "conv"),
    "mann": ("mann", "mann", "rnn"),
    "fast_weights": ("fast_weights", "fast_weights", "rnn"),
    "lm_temperature": ("lm_temperature", "lm_temperature", "rnn"),
    "cactus": ("cactus", "cactus", "rnn"),
}
DEFAULT_MODELS = list(MODELS)
MASK_RCNN_BOXES = 6  # boxes per "batch" unit: batch 1 -> K = 6 (the golden boxes), 8 -> K = 48
# kind "rnn": issue 4 (5x at batch 1: a whole episode / sequence; step entries are reported, no
# target).  cactus has static shapes (one k-means problem, one 5-way 2-shot episode): batch 1 only.
TARGETS = {"dense": ((1, 5.0), (4096, 1.0)), "conv": ((1, 2.0), (8, 1.0)),
           "rnn": ((1, 5.0),)}  # (batch, min speed-up over eager)
STEP_ENTRIES = {"mann": ("step", "episode", "T"), "fast_weights": ("step", "classify", "T")}
SEQ_LEN = {"mann": 10, "fast_weights": 8}  # the golden lengths (T); lm_temperature: T = 48, L = 40
LM_T, LM_P, LM_L, LM_TEMP = 48, 6, 40, 0.8
SAMPLED_ENTRIES = {("lm_temperature", "sample")}  # outputs sampled tokens: must agree exactly
ISSUE5_BATCH1_MIN = 3.0  # issue 5: at batch 1, >= 3x eager and faster than TorchScript


def int_list(text):
    """'1,2' -> [1, 2] (positive integers)."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def parse_args(argv):
    p = argparse.ArgumentParser(description="Benchmark nnc-compiled models against PyTorch eager, "
                                            "TorchScript and ONNX Runtime.")
    p.add_argument("--threads", type=int_list, default=[1, 2],
                   help="thread counts: every configuration is measured with each, for nnc "
                        "(Model.threads) and torch (torch.set_num_threads) (default 1,2)")
    p.add_argument("--models", default=",".join(DEFAULT_MODELS),
                   help="comma-separated models (default: all: %(default)s)")
    p.add_argument("--batches", type=int_list, default=[1, 4096],
                   help="batch sizes of realnvp and cfr (default: 1,4096)")
    p.add_argument("--conv-batches", type=int_list, default=[1, 8],
                   help="batch sizes of the conv models; for mask_rcnn, K = 6 x batch boxes on one "
                        "image (default: 1,8)")
    p.add_argument("--rnn-batches", type=int_list, default=[1, 16],
                   help="batch sizes of mann, fast_weights and lm_temperature (cactus: static, 1) "
                        "(default: 1,16)")
    p.add_argument("--nnc", default=os.path.join(ROOT, "build", "nnc"), help="path to the nnc compiler")
    p.add_argument("--markdown", metavar="FILE", help="also write the report as markdown")
    p.add_argument("--plot", metavar="FILE.png",
                   help="write the speed-up plot here (default: next to --markdown, as .png)")
    p.add_argument("--min-time", type=float, default=0.5,
                   help="seconds of timed calls per measurement (with >= --min-reps) (default 0.5)")
    p.add_argument("--min-reps", type=int, default=200, help="repetitions per measurement (default 200)")
    p.add_argument("--rounds", type=int, default=3,
                   help="latency rows: measure nnc, eager and TorchScript in turn this many times, each "
                        "round with 1/rounds of --min-time, --min-reps and --max-time, and keep each "
                        "side's fastest round, so a passing disturbance of the machine (this 2-core VM "
                        "has them) hits one round of one side, not the row (default 3)")
    p.add_argument("--max-time", type=float, default=5.0,
                   help="stop a slow measurement after this many seconds once it has 10 reps (default 5)")
    p.add_argument("--torch-only", action="store_true",
                   help="time only the PyTorch side (no compiler needed)")
    p.add_argument("--no-torchscript", action="store_true", help="skip the TorchScript column")
    ort_side.add_options(p)
    p.add_argument("--no-conv", action="store_true",
                   help="skip the largest-convolution GFLOP/s section (and the sgemm/copy figures)")
    p.add_argument("--no-profile", action="store_true",
                   help="do not perf-profile the worst missed target")
    p.add_argument("--profile-seconds", type=float, default=3.0,
                   help="seconds of calls under perf record (default 3)")
    p.add_argument("--check-abi", action="store_true",
                   help="only check the ctypes mirror of nnc_model.h against the C compiler's layout")
    p.add_argument("--loop", nargs=4, metavar=("SO", "ENTRY", "NPZ", "SECONDS"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.plot is None and args.markdown:
        args.plot = os.path.splitext(args.markdown)[0] + ".png"
    return args


ARGS = parse_args(sys.argv[1:])
MAX_THREADS = max(ARGS.threads)
# OpenBLAS and OpenMP size their thread pools from the environment when they are loaded (by
# numpy, torch or the generated .so), i.e. before the imports below: allow the most threads
# asked for; each measurement then picks its count (torch.set_num_threads, Model.threads).
os.environ["OPENBLAS_NUM_THREADS"] = str(MAX_THREADS)
os.environ["OMP_NUM_THREADS"] = str(MAX_THREADS)

import ctypes  # noqa: E402
import importlib.util  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(ROOT, "python"))
import nnc as nnc_py  # noqa: E402  (the Python package: python/nnc)
from nnc import _abi  # noqa: E402  (its ctypes mirror of nnc_model.h)

# --------------------------------------------------------------------------------------------
# the nnc side: nnc_py.load() calls the .so generically through nnc_model.h


def check_abi(verbose):
    """Check the package's ctypes mirror of nnc_model.h / nnc.h against the C compiler's layout.
    Returns True when they agree (or there is no C compiler to ask)."""
    cc = next((c for c in ("cc", "gcc", "clang") if _which(c)), None)
    if cc is None:
        print("note: no C compiler found; ABI layout check skipped")
        return True
    try:
        bad = _abi.check_layout(os.path.join(ROOT, "runtime", "include"), cc)
    except (OSError, subprocess.CalledProcessError) as e:
        print(f"error: could not build the ABI check program: {getattr(e, 'stderr', e)}", file=sys.stderr)
        return False
    for b in bad:
        print(f"error: ABI mismatch {b}", file=sys.stderr)
    if verbose and not bad:
        print("ABI check: the ctypes mirror (python/nnc/_abi.py) matches nnc_model.h and nnc.h")
    return not bad


def _which(prog):
    for d in os.environ.get("PATH", "").split(os.pathsep):
        f = os.path.join(d, prog)
        if os.path.isfile(f) and os.access(f, os.X_OK):
            return f
    return None


def bind(model, entry, inputs):
    """(call, outputs): call() runs the entry on `inputs` (name -> array) into `outputs`
    (name -> array), with the arguments checked once (nnc.Entry.bind)."""
    e = model[entry]
    b = e.bind(**inputs)
    return b, dict(zip((a.name for a in e.outputs), b.outputs))


def read_defines(golden):
    """-D definitions of tests/golden/<golden>/defines (one NAME=VALUE per line), if any."""
    path = os.path.join(GOLDEN, golden, "defines")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [ln.strip() for ln in f if ln.strip() and not ln.startswith("#")]


def compile_cmd(nnc, model, so):
    src, golden, _ = MODELS[model]
    cmd = [nnc, os.path.join("examples", f"{src}.nn")]
    for d in read_defines(golden):
        cmd += ["-D", d]
    return cmd + ["-o", so, "--weights", os.path.join("tests", "golden", golden, "weights.safetensors")]


def compile_model(nnc, model, outdir, reps=3):
    """Compile the model with embedded weights; returns (so_path, best ms)."""
    so = os.path.join(outdir, f"{model}.so")
    return so, run_nnc(compile_cmd(nnc, model, so), reps)


def run_nnc(cmd, reps):
    """The best wall-clock ms of `reps` runs of the compile `cmd`, each a cold compile: with the
    compile cache off (NNC_CACHE=off), every run after the first would otherwise be a cache hit
    (bench/compile_bench.py times warm compiles)."""
    best = None
    env = dict(os.environ, NNC_CACHE="off")
    for _ in range(reps):
        t0 = time.perf_counter()
        r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env)
        dt = (time.perf_counter() - t0) * 1e3
        if r.returncode != 0:
            raise RuntimeError(f"compile failed (exit {r.returncode}): {shlex.join(cmd)}\n{r.stderr.strip()}")
        best = dt if best is None else min(best, dt)
    return best


def planned_workspace(so, bound_call):
    """Bytes of workspace the entry's memory plan asks for at the bound symbolic dims:
    nnc_entry_workspace_size() of the library (the end of its regions' layout), read through the
    introspection table."""
    lib = ctypes.CDLL(so)
    info = lib.nnc_model_info
    info.restype, info.argtypes = ctypes.POINTER(_abi.NncModelDesc), []
    size = lib.nnc_entry_workspace_size
    size.restype = ctypes.c_int64
    size.argtypes = [ctypes.POINTER(_abi.NncEntryDesc), ctypes.POINTER(ctypes.c_int64)]
    syms = bound_call.syms
    values = (ctypes.c_int64 * max(1, len(syms)))(*syms)
    return size(ctypes.byref(info().contents.entries[bound_call.entry.index]), values)


_MEMORY_DUMPS = {}


def memory_dump(nnc, model, dims):
    """{entry: (planned, bound, sum)} in bytes from `nnc dump --stage=memory --dims ...` (the
    planned workspace, the lifetime lower bound: most bytes live at once, and the sum of all
    intermediates) at the symbolic dims `dims` ((name, value) pairs; others are 1), or a string
    saying why there is none."""
    key = (model, dims)
    if key not in _MEMORY_DUMPS:
        src, golden, _ = MODELS[model]
        cmd = [nnc, "dump", "--stage=memory"] + (["--dims", ",".join(f"{k}={v}" for k, v in dims)] if dims else [])
        for d in read_defines(golden):
            cmd += ["-D", d]
        r = subprocess.run(cmd + [os.path.join("examples", f"{src}.nn")], cwd=ROOT, capture_output=True, text=True)
        _MEMORY_DUMPS[key] = (parse_memory_dump(r.stdout) if r.returncode == 0 else
                              f"`{shlex.join(cmd[1:])}` failed: {(r.stderr.strip().splitlines() or ['?'])[0]}")
    return _MEMORY_DUMPS[key]


def parse_memory_dump(text):
    """The lines `memory ENTRY planned=P bound=B sum=S` as {entry: (P, B, S)}."""
    out = {}
    for line in text.splitlines():
        words = line.split()
        if len(words) == 5 and words[0] == "memory":
            fields = dict(w.split("=", 1) for w in words[2:])
            out[words[1]] = tuple(int(fields[k]) for k in ("planned", "bound", "sum"))
    return out


# --------------------------------------------------------------------------------------------
# the torch side: the reference modules, and each nnc entry as a method call on one of them

_REFS = {}


def load_reference(golden):
    """tests/golden/<golden>/reference.py as a module (the groupnorm variants share groupnorm's)."""
    if golden.startswith("groupnorm"):
        golden = "groupnorm"
    if golden not in _REFS:
        if GOLDEN not in sys.path:
            sys.path.insert(0, GOLDEN)
        path = os.path.join(GOLDEN, golden, "reference.py")
        spec = importlib.util.spec_from_file_location(f"nnc_reference_{golden}", path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        _REFS[golden] = mod
    return _REFS[golden]


def load_torch_model(model, ref):
    """The reference torch.nn module of the model, with tests/golden/<m>/weights.safetensors."""
    if GOLDEN not in sys.path:
        sys.path.insert(0, GOLDEN)
    import nnc_ref
    _, golden, _ = MODELS[model]
    if model.startswith("groupnorm"):
        norm = "gn"
        for d in read_defines(golden):
            if d.startswith("NORM="):
                norm = d.split("=", 1)[1]
        m = ref.ResNet(norm)
    elif model == "lm_temperature":
        import json
        with open(os.path.join(ROOT, "examples", "lm_data", "vocab.json")) as f:
            m = ref.CharLM(len(json.load(f)))
    else:
        m = getattr(ref, {"realnvp": "RealNVP", "cfr": "CFR", "fcn": "FCN8s",
                          "mask_rcnn": "MaskRCNNHeads", "infogan": "InfoGAN", "mann": "MANN",
                          "fast_weights": "FastWeightsRNN", "cactus": "Cactus"}[model])()
    nnc_ref.load_state_dict(m, os.path.join(GOLDEN, golden, "weights.safetensors"))
    return m.float().eval()


# An nnc entry on the torch side: `method` of the reference module called with the entry's
# inputs in this order, returning its outputs in this order.  `wrapper` names a module of
# function_modules() to call instead, for the entries torch computes with a plain function.
Call = namedtuple("Call", "method inputs outputs wrapper", defaults=(None,))
TORCH_ENTRIES = {  # source model -> entry -> Call
    "realnvp": {"forward": Call("forward", ("x",), ("z", "logdet")),
                "inverse": Call("inverse", ("z",), ("x",)),
                "log_prob": Call("log_prob", ("x",), ("lp",))},
    "cfr": {"predict": Call("predict", ("x",), ("y0", "y1", "ite")),
            "imbalance": Call("imbalance", ("x", "t"), ("imb",))},
    "groupnorm": {"forward": Call("forward", ("x",), ("logits",))},
    "fcn": {"forward": Call("forward", ("x",), ("scores",))},
    "mask_rcnn": {"detect": Call("detect", ("image", "boxes"), ("class_logits", "box_deltas")),
                  "masks": Call("masks", ("image", "boxes"), ("masks",))},
    "infogan": {"generate": Call("generate", ("z", "c_cat", "c_cont"), ("x",)),
                "discriminate": Call("discriminate", ("x",), ("d", "q_logits", "q_mu")),
                "mi_lower_bound": Call("mi_lower_bound", ("x", "c_cat", "c_cont"), ("lb",))},
    "mann": {"episode": Call("episode", ("x", "y"), ("logits",)),
             "step": Call("step", ("x_t", "y_prev", "h", "c", "memory", "usage", "w_read"),
                          ("logits", "h_next", "c_next", "memory_next", "usage_next", "w_read_next"))},
    "fast_weights": {"classify": Call("classify", ("x",), ("logits",)),
                     "step": Call("step", ("x_t", "h", "A"), ("logits", "h_next", "A_next"))},
    "lm_temperature": {"logits": Call("logits", ("tokens",), ("logits",)),
                       "softmax_t": Call("forward", ("logits", "temperature"), ("probs",),
                                         "temperature_softmax"),
                       "sample": Call("sample", ("prefix", "gumbel", "temperature"), ("tokens",))},
    "cactus": {"kmeans": Call("forward", ("emb", "scale", "init"), ("centroids", "labels"), "kmeans"),
               "episode": Call("episode", ("support", "support_labels", "query"), ("logits",))},
}


def function_modules(ref):
    """Modules whose forward is a function of the reference (no parameters), so that eager and
    TorchScript call the same thing for these entries too."""
    import torch

    class TemperatureSoftmax(torch.nn.Module):  # lm_temperature softmax_t
        def forward(self, logits, temperature):
            return torch.softmax(logits / temperature, dim=-1)

    class KMeans(torch.nn.Module):  # cactus kmeans (the reference's kmeans function)
        def forward(self, emb, scale, init):
            return ref.kmeans(emb, scale, init)

    return {"temperature_softmax": TemperatureSoftmax().eval(), "kmeans": KMeans().eval()}


class TorchEntry:
    """An nnc entry on the torch side: module.<method>(*inputs) -> outputs (see Call)."""

    def __init__(self, name, module, call):
        self.name, self.module, self.call = name, module, call
        self.eager = getattr(module, call.method)

    def args(self, arrays):
        """The entry's inputs (name -> numpy array) as the method's positional tensors."""
        import torch
        return tuple(torch.from_numpy(arrays[n]) for n in self.call.inputs)

    def named(self, result):
        """A method result (a tensor or a tuple of them) as {output name: numpy array}."""
        values = result if isinstance(result, tuple) else (result,)
        return {n: v.numpy() for n, v in zip(self.call.outputs, values)}


def torch_entries(model, m, ref):
    """entry -> TorchEntry, in the order of TORCH_ENTRIES (the first is the model's main entry)."""
    wrappers = function_modules(ref)
    calls = TORCH_ENTRIES[MODELS[model][0]]
    return {e: TorchEntry(e, wrappers[c.wrapper] if c.wrapper else m, c) for e, c in calls.items()}


# --------------------------------------------------------------------------------------------
# TorchScript of a TorchEntry: scripted once, else traced per batch; frozen and optimized

def short_error(e, limit=90):
    """The first sentence of an exception's message, for a one-line note."""
    lines = [ln.strip() for ln in str(e).strip().splitlines() if ln.strip()]
    text = (lines[0] if lines else type(e).__name__).split(". ")[0].rstrip(".:")
    return text if len(text) <= limit else text[:limit - 1] + "…"


def copy_function(fn, name=None):
    import types
    return types.FunctionType(fn.__code__, fn.__globals__, name or fn.__name__, fn.__defaults__,
                              fn.__closure__)


def exported_view(module, method):
    """A shallow copy of `module` whose class compiles `method` under TorchScript.

    torch.jit.script compiles forward and the methods marked @torch.jit.export, and freeze
    needs a forward: the copy's class (a subclass made here; the reference class is unchanged)
    exports a copy of `method`, and uses it as forward too when the class has none of its own."""
    import copy
    import torch
    if method == "forward":
        return module
    cls = type(module)
    attrs = {"__module__": cls.__module__, method: torch.jit.export(copy_function(getattr(cls, method)))}
    if cls.forward is torch.nn.Module.forward:
        attrs["forward"] = copy_function(getattr(cls, method), "forward")
    view = copy.copy(module)
    view.__class__ = type(cls.__name__, (cls,), attrs)
    return view


def optimized_for_inference(script_module, method):
    """torch.jit.optimize_for_inference(torch.jit.freeze(m)), keeping `method`; its callable."""
    import torch
    keep = [] if method == "forward" else [method]
    frozen = torch.jit.freeze(script_module.eval(), preserved_attrs=keep)
    return getattr(torch.jit.optimize_for_inference(frozen, other_methods=keep), method)


def method_caller(module, method):
    """A module whose forward(*args) calls module.<method>(*args), for torch.jit.trace (which
    traces forward; `module` is a submodule so its parameters are frozen as weights)."""
    import torch

    class MethodCall(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = module

        def forward(self, *args):
            return getattr(self.inner, method)(*args)

    return MethodCall().eval()


def forget_failed_scripting():
    """A failed torch.jit.script leaves the submodule types it compiled half-done in torch's
    type cache, so scripting another method of the same model then fails with "Can't redefine
    method" instead of its own error: start again from an empty cache (torch.jit._recursive's
    concrete_type_store, a private name: left alone if this torch has none)."""
    import torch.jit._recursive as recursive
    if hasattr(recursive, "ConcreteTypeStore") and hasattr(recursive, "concrete_type_store"):
        recursive.concrete_type_store = recursive.ConcreteTypeStore()


class TorchScriptEntry:
    """The TorchScript version of a TorchEntry.  for_args(args) returns its callable or None:
    scripted once (shape-generic) if torch.jit.script compiles the method, else traced on the
    given inputs (one trace per batch).  `how` is "script", "trace" or "n/a"; note() says why."""

    def __init__(self, entry):
        self.entry = entry
        self.script_error = self.trace_error = self.call_error = None
        self.traced = False
        self._scripted = self._script()

    @property
    def how(self):
        return "script" if self._scripted is not None else "trace" if self.traced else "n/a"

    def _script(self):
        import torch
        method = self.entry.call.method
        try:
            return optimized_for_inference(torch.jit.script(exported_view(self.entry.module, method)), method)
        except Exception as e:
            self.script_error = short_error(e)
            forget_failed_scripting()
            return None

    def for_args(self, args):
        return self._scripted if self._scripted is not None else self._trace(args)

    def _trace(self, args):
        import warnings
        import torch
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", torch.jit.TracerWarning)
                traced = torch.jit.trace(method_caller(self.entry.module, self.entry.call.method), args,
                                         check_trace=False)
                fn = optimized_for_inference(traced, "forward")
        except Exception as e:
            self.trace_error = short_error(e)
            return None
        self.traced = True
        return fn

    def call_failed(self, e):
        """Record that a built version failed when called (its rows are n/a)."""
        self.call_error = f"call failed: {short_error(e)}"

    def note(self):
        """None when scripted and every call worked; else (what was done, why) for the notes."""
        later = self.trace_error if self.how == "trace" else None
        later = "; ".join(x for x in (later, self.call_error) if x)
        if self.how == "script":
            return None if not later else ("scripted", f"n/a on some inputs: {later}")
        if self.how == "trace":
            return "traced", f"script: {self.script_error}" + (f"; n/a on some inputs: {later}" if later else "")
        why = "; ".join(x for x in (self.trace_error, self.call_error) if x)
        return "n/a", f"script: {self.script_error}; trace: {why}"


# --------------------------------------------------------------------------------------------
# ONNX Runtime: the entry exported as tests/python/onnx_examples.py exports it, run by ort_side

def export_entry(golden, entry, path):
    """Export the entry of tests/golden/<golden> to path as the ONNX tests do (the reference
    module with the golden weights, opset 17, the batch dynamic); returns the graph's inputs."""
    import contextlib
    import io
    import warnings
    if TESTS_PY not in sys.path:
        sys.path.insert(0, TESTS_PY)
    import onnx_examples
    case = onnx_examples.find_case(golden, entry)
    if case is None:
        raise LookupError("no export case in tests/python/onnx_examples.py")
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        onnx_examples.export(case, path)
    return ort_side.graph_inputs(path)


class OrtEntry:
    """An nnc entry under ONNX Runtime: exported once (export_entry), then checked and timed on
    each row's inputs by ort_bench in a child process.  `note` says why it is n/a (None: it runs)."""

    def __init__(self, ort, model, entry, tmp):
        self.ort, self.note = ort, None
        self.base = os.path.join(tmp, f"{model}.{entry}")
        self.onnx = self.base + ".onnx"
        try:
            self.inputs = export_entry(MODELS[model][1], entry, self.onnx)
        except Exception as e:
            self.note = f"torch.onnx.export failed: {short_error(e)}"

    def save_inputs(self, batch, inputs):
        """The row's inputs that the graph takes, as .npy files: {name: path}."""
        paths = {}
        for name in self.inputs:
            paths[name] = f"{self.base}.{batch}.{name}.npy"
            np.save(paths[name], inputs[name])
        return paths

    def outputs(self, paths, names):
        """One run's outputs {name: array} and its time (µs, a cold run)."""
        out_dir = f"{self.base}.out"
        us = ort_side.run(self.ort, self.onnx, paths, 1, 1, 0, out_dir, warmup=0)["median_us"]
        return ort_side.outputs(out_dir, names), us

    def timer(self, paths, cold_us, rounds):
        """t -> the median µs of one round on t threads (bench_case's rounds: 1/rounds of
        --min-reps and --min-time, and of --max-time as the cold run's time allows)."""
        max_runs = max(10, int(ARGS.max_time / rounds / (max(cold_us, 1.0) * 1e-6)))
        runs = min(max(ARGS.min_reps // rounds, 10), max_runs)
        return lambda t: ort_side.run(self.ort, self.onnx, paths, t, runs, ARGS.min_time / rounds,
                                      max_runs=max_runs)["median_us"]


def prepare_ort(res, oe, model, entry, batch, inputs, want):
    """(timer, max |Δ|) of the entry under ORT on `inputs`; the timer is None when ORT is n/a
    here or its outputs disagree with eager's (not timed; the notes say why)."""
    info, label = res.models[model], case_label(model, entry, batch)
    if oe.note:
        info.ort_notes.setdefault(entry, oe.note)
        return None, None
    try:
        paths = oe.save_inputs(batch, inputs)
        got, cold_us = oe.outputs(paths, list(want))
    except Exception as e:
        info.ort_notes.setdefault(entry, f"ONNX Runtime failed at batch {batch_label(model, batch)}: "
                                         f"{short_error(e, 160)}")
        return None, None
    diff, mismatch = disagreement("ORT", label, got, want, exact=(model, entry) in SAMPLED_ENTRIES)
    if mismatch:
        res.mismatches.append(mismatch)
        info.ort_notes.setdefault(entry, f"outputs differ from eager ({mismatch.split(': ', 1)[1]}): not timed")
        return None, diff
    return oe.timer(paths, cold_us, max(ARGS.rounds, 1)), diff


# --------------------------------------------------------------------------------------------
# the inputs

def golden_inputs(golden, entry):
    """The inputs of tests/golden/<golden>/<entry>.in.<arg>.npy."""
    d = os.path.join(GOLDEN, golden)
    pre = f"{entry}.in."
    return {f[len(pre):-4]: np.load(os.path.join(d, f)) for f in sorted(os.listdir(d))
            if f.startswith(pre) and f.endswith(".npy")}


def batch_label(model, batch):
    return f"K={MASK_RCNN_BOXES * batch}" if model == "mask_rcnn" else str(batch)


def make_inputs(model, ref, m, entry, batch):
    """Inputs (name -> numpy array) for an entry at a batch size, deterministic."""
    import torch
    g = torch.Generator().manual_seed(1000 + batch)
    if model == "realnvp":
        x = ref.make_inputs(n=batch, seed=1000 + batch)
        if entry == "inverse":
            with torch.no_grad():
                return {"z": m(x)[0].numpy().copy()}
        return {"x": x.numpy()}
    if model == "cfr":
        # 3/8 treated, as in the golden; at batch 1 the control (or treated) mean is empty
        # and the imbalance is NaN for both implementations.
        x, t = ref.make_inputs(n=batch, n_treated=max(1, round(batch * 12 / 32)) if batch > 1 else 1,
                               seed=1000 + batch)
        return {"x": x.numpy(), "t": t.numpy()} if entry == "imbalance" else {"x": x.numpy()}
    if model.startswith("groupnorm"):
        return {"x": torch.randn(batch, 3, 32, 32, generator=g).numpy()}
    if model == "fcn":
        return {"x": torch.randn(batch, 3, 64, 64, generator=g).numpy()}
    if model == "mask_rcnn":
        image, boxes = ref.make_inputs()  # the golden image and its 6 boxes (edge cases included)
        k = MASK_RCNN_BOXES * batch
        extra = k - boxes.shape[0]
        if extra > 0:  # more boxes, some partly outside the 64x64 image
            xy = torch.rand(extra, 2, generator=g) * 72 - 8
            wh = torch.rand(extra, 2, generator=g) * 40 + 1
            more = torch.cat([torch.zeros(extra, 1), xy, xy + wh], 1)
            boxes = torch.cat([boxes, more], 0)
        return {"image": image.numpy(), "boxes": boxes[:k].contiguous().numpy()}
    if model == "infogan":
        z = torch.randn(batch, ref.NZ, generator=g)
        cat = torch.randint(0, ref.NCAT, (batch,), generator=g)
        c_cat = torch.nn.functional.one_hot(cat, ref.NCAT).float()
        c_cont = torch.rand(batch, ref.NCONT, generator=g) * 2 - 1
        if entry == "generate":
            return {"z": z.numpy(), "c_cat": c_cat.numpy(), "c_cont": c_cont.numpy()}
        with torch.no_grad():  # images the generator makes, as in the golden
            x = m.generate(z, c_cat, c_cont).numpy().copy()
        if entry == "discriminate":
            return {"x": x}
        return {"x": x, "c_cat": c_cat.numpy(), "c_cont": c_cont.numpy()}
    if model == "mann":
        t_len = SEQ_LEN[model]
        x = torch.randn(batch, t_len, ref.X, generator=g)
        y = torch.nn.functional.one_hot(torch.randint(0, ref.C, (batch, t_len), generator=g), ref.C).float()
        if entry == "episode":
            return {"x": x.numpy(), "y": y.numpy()}
        with torch.no_grad():  # the state after steps 0..5 of the episode, as in the golden
            _, states = m.episode(x, y, keep_states=True)
        s, t = states[ref.STEP_T], ref.STEP_T
        return {k: v.numpy().copy() for k, v in zip(("x_t", "y_prev", "h", "c", "memory", "usage", "w_read"),
                                                    (x[:, t].contiguous(), y[:, t - 1].contiguous(), *s))}
    if model == "fast_weights":
        t_len = SEQ_LEN[model]
        x = torch.randn(batch, t_len, ref.X, generator=g)
        if entry == "classify":
            return {"x": x.numpy()}
        with torch.no_grad():
            _, states = m.classify(x, keep_states=True)
        h, a = states[ref.STEP_T]
        return {"x_t": x[:, ref.STEP_T].contiguous().numpy(), "h": h.numpy().copy(), "A": a.numpy().copy()}
    if model == "lm_temperature":
        import json
        with open(os.path.join(ROOT, "examples", "lm_data", "vocab.json")) as f:
            vocab = json.load(f)
        with open(os.path.join(ROOT, "examples", "lm_data", "heldout.txt")) as f:
            held = ref.encode(f.read(), vocab)
        v = len(vocab)
        starts = [(100 + 617 * i) % (len(held) - LM_T) for i in range(batch)]
        if entry == "logits":  # windows of the held-out text
            return {"tokens": torch.stack([held[s:s + LM_T] for s in starts]).numpy()}
        if entry == "softmax_t":  # real model logits scaled by 3 (sharp rows), temperature 0.7
            with torch.no_grad():
                lg = m.logits(torch.stack([held[s:s + LM_T] for s in starts]))[:, 10]
            return {"logits": (3 * lg).contiguous().numpy(), "temperature": np.array(0.7, dtype=np.float32)}
        u = torch.rand(batch, LM_L, v, generator=g).clamp(1e-12, 1 - 1e-7)
        return {"prefix": torch.stack([held[s:s + LM_P] for s in starts]).numpy(),
                "gumbel": (-torch.log(-torch.log(u))).numpy(),
                "temperature": np.array(LM_TEMP, dtype=np.float32)}
    if model == "cactus":  # static shapes: the golden k-means problem and episode
        return golden_inputs("cactus", entry)
    raise KeyError(model)


# --------------------------------------------------------------------------------------------
# measuring: one timing function (time_call) for nnc, eager and TorchScript

@dataclass
class Row:
    """One (model, entry, batch, threads) measurement; µs and max |Δ| (against eager), None
    when that side did not run."""
    model: str
    entry: str
    batch: int
    threads: int
    nnc_us: float = None
    eager_us: float = None
    ts_us: float = None
    ort_us: float = None
    nnc_diff: float = None
    ts_diff: float = None
    ort_diff: float = None
    vcpu_ns: list = field(default_factory=list)  # 2+ threads: the cores' round trip before each nnc round

    def speedup(self, baseline):
        """Speed-up of nnc over `baseline` ("eager", "ts" or "ort"): baseline time / nnc time."""
        base = getattr(self, f"{baseline}_us")
        return base / self.nnc_us if base and self.nnc_us else None


@dataclass
class ModelInfo:
    compile_ms: float = None
    so_path: str = None
    so_bytes: int = None
    ts_how: dict = field(default_factory=dict)     # entry -> "script" | "trace" | "n/a"
    ts_notes: dict = field(default_factory=dict)   # entry not scripted -> TorchScriptEntry.note()
    ort_notes: dict = field(default_factory=dict)  # entry -> why ORT is n/a or not timed (prepare_ort)
    workspace: dict = field(default_factory=dict)  # (entry, batch) -> planned bytes
    memory: dict = field(default_factory=dict)     # (entry, batch) -> nnc dump's (planned, bound, sum)


@dataclass
class Results:
    nnc: str = None                                   # the compiler
    rows: list = field(default_factory=list)
    models: dict = field(default_factory=dict)        # model -> ModelInfo
    failures: list = field(default_factory=list)
    mismatches: list = field(default_factory=list)
    saved_inputs: dict = field(default_factory=dict)  # (model, entry, batch) -> inputs
    convs: list = field(default_factory=list)         # (model, conv dict, {(n, t): ...}, {t: sgemm})
    copy_bw: float = None
    overhead_us: float = None
    profiles: list = field(default_factory=list)
    profile_note: str = None
    memory_notes: dict = field(default_factory=dict)  # model -> why nnc dump --stage=memory failed
    ort: tuple = None                                 # ort_side.setup's (ort_bench, library)
    ort_note: str = None                              # why there is no ORT column
    ort_onnx: dict = field(default_factory=dict)      # (model, entry) -> its .onnx
    ort_ops: dict = field(default_factory=dict)       # (model, entry) -> ORT's optimised graph's ops

    def fail(self, what, error):
        self.failures.append(f"{what}: {error}")
        print(f"error: {what}: {error}", file=sys.stderr)


def time_call(fn, min_reps, min_time, max_time):
    """Median latency in microseconds, over an adaptive number of repetitions (after 3 warm-up
    calls, which also let TorchScript's profiling executor optimize its graph)."""
    for _ in range(3):
        fn()
    samples = []
    clock = time.perf_counter_ns
    start = clock()
    while True:
        t0 = clock()
        fn()
        t1 = clock()
        samples.append(t1 - t0)
        el = (t1 - start) * 1e-9
        n = len(samples)
        if (n >= min_reps and el >= min_time) or (n >= 10 and el >= max_time) or n >= 1_000_000:
            break
    samples.sort()
    return samples[len(samples) // 2] / 1e3, len(samples)


def measure(fn):
    """time_call with the command line's repetitions (µs)."""
    return time_call(fn, ARGS.min_reps, ARGS.min_time, ARGS.max_time)[0]


def max_abs_diff(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return float("inf")
    both_nan = np.isnan(a) & np.isnan(b)
    d = np.atleast_1d(np.abs(a - b))  # 0-d outputs (cfr imbalance) index too
    d[np.atleast_1d(both_nan)] = 0.0
    return float(np.max(d)) if d.size else 0.0


def disagreement(who, label, got, want, exact):
    """(max |got - want| over the outputs, a message when that is beyond 1e-4 + 1e-3·max|want|
    (any difference when `exact`: sampled tokens), else None)."""
    diff = max(max_abs_diff(got[k], want[k]) for k in want)
    scale = max(float(np.nanmax(np.abs(v))) if v.size and not np.isnan(v).all() else 0.0
                for v in want.values())
    if exact and diff != 0:
        return diff, f"{who} {label}: sampled tokens differ from eager (max |Δ| = {diff:g})"
    if np.isnan(diff):
        return diff, f"{who} {label}: a NaN on one side only"
    if not diff <= 1e-4 + 1e-3 * scale:
        return diff, f"{who} {label}: max |{who} - eager| = {diff:.3g} (outputs up to {scale:.3g})"
    return diff, None


def compare_outputs(res, who, label, got, want, exact):
    """max |got - want| over the outputs; records a mismatch (disagreement)."""
    diff, mismatch = disagreement(who, label, got, want, exact)
    if mismatch:
        res.mismatches.append(mismatch)
    return diff


# OpenBLAS's idle workers poll (sched_yield) for 2^28 TSC cycles, ~0.1 s here, after each
# threaded call before they sleep (its THREAD_TIMEOUT).  PyTorch's Linear and matmul run on
# the process's one OpenBLAS, so right after the eager or TorchScript side a worker still
# polls on one of the two cores while nnc's 2-thread call needs both: mask_rcnn detect on 2
# threads measured 165 us that way, 75 us after the pause (and 75 us with
# OPENBLAS_NUM_THREADS=1).  A process running only nnc has no such neighbour.
OPENBLAS_IDLE_S = 0.15


def settle_openblas():
    """Wait until OpenBLAS's workers, busy from the torch side just measured, have gone to
    sleep."""
    time.sleep(OPENBLAS_IDLE_S)


# This VM's two vCPUs sit close (a cache line's round trip 50-80 ns) or far apart (310-350 ns),
# changing every few minutes; far apart, work split between threads costs much more (fcn at
# batch 1 on 2 threads: 391 us close, 765 us far; 443 us on 1 thread).  Rows with 2+ threads
# record the round trip measured before each of nnc's rounds (the helper's roundtrip).
HELPER = None  # bench/sgemm_gflops.c, compiled (build_helper)
FAR_NS = 150   # a round trip above this: the vCPUs sat far apart


def vcpu_round_trip_ns():
    """The lowest of 3 short measurements: a thread still spinning on one of the cores (torch's
    OpenMP workers after the torch side) would share it with the helper's."""
    if HELPER is None:
        return None
    best = None
    for _ in range(3):
        out = subprocess.run([HELPER, "roundtrip", "10000"], capture_output=True, text=True)
        if out.returncode == 0:
            v = float(out.stdout.split()[1])
            best = v if best is None else min(best, v)
    return best


def use_threads(t, lib):
    """t threads for torch and for the nnc model (nnc sets OpenBLAS's count on each call)."""
    import torch
    torch.set_num_threads(t)
    if lib is not None:
        lib.threads = t


def batches_of(model):
    if model == "cactus":  # static shapes
        return [1]
    return {"dense": ARGS.batches, "conv": ARGS.conv_batches, "rnn": ARGS.rnn_batches}[MODELS[model][2]]


def large_batch(model):
    """The model's large batch (the largest it runs), or None when it only runs batch 1."""
    b = max(batches_of(model))
    return b if b > 1 else None


def case_label(model, entry, batch):
    return f"{model}.{entry}[{batch_label(model, batch)}]"


def prepare_nnc(res, lib, te, model, batch, inputs, want):
    """(call, max |Δ|) of the nnc entry on `inputs`, or (None, None) after a failure; also
    records the entry's workspace figures at this batch (record_memory)."""
    label = case_label(model, te.name, batch)
    try:
        call, outs = bind(lib, te.name, inputs)
        call()
        diff = compare_outputs(res, "nnc", label, outs, want, exact=(model, te.name) in SAMPLED_ENTRIES)
        record_memory(res, lib, te.name, model, batch, call)
        return call, diff
    except Exception as e:
        res.fail(f"nnc {label}", e)
        return None, None


def record_memory(res, lib, entry, model, batch, call):
    """The entry's planned workspace at this batch (the library's nnc_entry_workspace_size) and,
    from `nnc dump --stage=memory` at the same dims, its lifetime bound and no-reuse sum."""
    info = res.models[model]
    info.workspace[(entry, batch)] = planned_workspace(info.so_path, call)
    dims = tuple((name, v) for name, v in zip(lib.symbols, call.syms) if v > 0)
    dump = memory_dump(res.nnc, model, dims)
    if isinstance(dump, str):
        res.memory_notes.setdefault(model, dump)
    elif entry in dump:
        info.memory[(entry, batch)] = dump[entry]


def prepare_torchscript(res, ts, te, model, batch, args, want):
    """(callable, max |Δ|) of the TorchScript entry on `args`, or (None, None) when n/a."""
    fn = ts.for_args(args) if ts is not None else None
    if fn is None:
        return None, None
    try:
        got = te.named(fn(*args))
    except Exception as e:  # built, but fails on these inputs
        ts.call_failed(e)
        return None, None
    return fn, compare_outputs(res, "TorchScript", case_label(model, te.name, batch), got, want,
                               exact=(model, te.name) in SAMPLED_ENTRIES)


def in_process_timer(fn, rounds):
    """t -> the median µs of one round of calls of fn (the threads are set by use_threads)."""
    if fn is None:
        return None
    return lambda t: time_call(fn, max(ARGS.min_reps // rounds, 10), ARGS.min_time / rounds,
                               ARGS.max_time / rounds)[0]


def bench_case(res, lib, te, ts, oe, model, batch, inputs):
    """Time the entry at one batch with nnc, eager, TorchScript and ONNX Runtime (oe: its
    OrtEntry, None without ORT), at every thread count."""
    res.saved_inputs[(model, te.name, batch)] = inputs
    args = te.args(inputs)
    want = te.named(te.eager(*args))
    nnc_call, nnc_diff = prepare_nnc(res, lib, te, model, batch, inputs, want) if lib else (None, None)
    ts_fn, ts_diff = prepare_torchscript(res, ts, te, model, batch, args, want)
    ort_timer, ort_diff = prepare_ort(res, oe, model, te.name, batch, inputs, want) if oe else (None, None)
    rounds = max(ARGS.rounds, 1)
    sides = {"nnc_us": in_process_timer(nnc_call, rounds),
             "eager_us": in_process_timer(lambda: te.eager(*args), rounds),
             "ts_us": in_process_timer(None if ts_fn is None else lambda: ts_fn(*args), rounds),
             "ort_us": ort_timer}
    for t in ARGS.threads:
        use_threads(t, lib)
        row = Row(model, te.name, batch, t, nnc_diff=nnc_diff, ts_diff=ts_diff, ort_diff=ort_diff)
        for _ in range(rounds):  # the sides in turn, each round's median; the best round counts
            for side, timer in sides.items():
                if timer is None:
                    continue
                if side in ("nnc_us", "ort_us"):
                    settle_openblas()
                if side == "nnc_us" and t > 1 and (rt := vcpu_round_trip_ns()) is not None:
                    row.vcpu_ns.append(rt)
                us = timer(t)
                if getattr(row, side) is None or us < getattr(row, side):
                    setattr(row, side, us)
        res.rows.append(row)
        print(f"  {model}.{te.name} batch {batch_label(model, batch)} threads {t}: nnc {fmt_us(row.nnc_us)} us, "
              f"eager {fmt_us(row.eager_us)} us, TorchScript {fmt_us(row.ts_us)} us, ORT {fmt_us(row.ort_us)} us",
              file=sys.stderr, flush=True)


def open_compiled(res, model, tmp):
    """Compile the model and load its .so (None after a failure); records compile time and size,
    and the ctypes call overhead once."""
    info = res.models[model]
    try:
        info.so_path, info.compile_ms = compile_model(res.nnc, model, tmp)
        info.so_bytes = os.path.getsize(info.so_path)
        lib = nnc_py.load(info.so_path, threads=ARGS.threads[0])
    except Exception as e:  # report, go on with the other models
        res.fail(model, e)
        return None
    if res.overhead_us is None:  # cost of a trivial ctypes call into the .so
        f = ctypes.CDLL(info.so_path).nnc_model_info
        f.restype, f.argtypes = ctypes.c_void_p, []
        res.overhead_us, _ = time_call(f, 1000, 0.1, 1.0)
    return lib


def bench_model(res, model, tmp, helper):
    """Every entry of the model at each of its batches; then its largest convolution."""
    _, golden, kind = MODELS[model]
    ref = load_reference(golden)
    tm = load_torch_model(model, ref)
    tentries = torch_entries(model, tm, ref)
    info = res.models[model] = ModelInfo()
    lib = None if ARGS.torch_only else open_compiled(res, model, tmp)
    try:
        for te in tentries.values():
            ts = None if ARGS.no_torchscript else TorchScriptEntry(te)
            oe = None if res.ort is None else OrtEntry(res.ort, model, te.name, tmp)
            if oe is not None:
                res.ort_onnx[(model, te.name)] = oe.onnx
            for batch in batches_of(model):
                bench_case(res, lib, te, ts, oe, model, batch, make_inputs(model, ref, tm, te.name, batch))
            if ts is not None:
                info.ts_how[te.name] = ts.how
                if ts.note():
                    info.ts_notes[te.name] = ts.note()
    finally:
        if lib is not None:
            lib.close()
    if kind == "conv" and not ARGS.no_conv and not ARGS.torch_only and not conv_family_done(res, model):
        bench_largest_conv(res, model, tm, tentries, lambda e: make_inputs(model, ref, tm, e, 1), tmp, helper)

# --------------------------------------------------------------------------------------------
# the largest convolution of a conv model, timed alone; OpenBLAS sgemm and copy bandwidth

def largest_conv(m, tentries, inputs_of):
    """Run every entry at batch 1 with forward hooks on each nn.Conv2d; returns the call with the
    most flops: dict(name, module, n (images seen), cin, cout, kh, kw, stride, padding, dilation,
    groups, h, w, oh, ow, flops)."""
    import torch
    best = {}

    def hook(name):
        def f(mod, inp, out):
            x = inp[0]
            n, cin, h, w = x.shape
            _, cout, oh, ow = out.shape
            kh, kw = mod.kernel_size
            fl = 2 * n * cout * oh * ow * (cin // mod.groups) * kh * kw
            if fl > best.get("flops", 0):
                best.update(name=name, module=mod, n=n, cin=cin, cout=cout, kh=kh, kw=kw,
                            stride=mod.stride, padding=mod.padding, dilation=mod.dilation,
                            groups=mod.groups, h=h, w=w, oh=oh, ow=ow, flops=fl,
                            bias=mod.bias is not None)
        return f

    hs = [mod.register_forward_hook(hook(name)) for name, mod in m.named_modules()
          if isinstance(mod, torch.nn.Conv2d)]
    try:
        with torch.no_grad():
            for entry, te in tentries.items():
                te.eager(*te.args(inputs_of(entry)))
    finally:
        for h in hs:
            h.remove()
    return best or None


def conv_layer_text(c):
    def pair(v):
        return str(v[0]) if v[0] == v[1] else f"({v[0]}, {v[1]})"
    args = [str(c["cin"]), str(c["cout"]), pair((c["kh"], c["kw"]))]
    for name, v, default in (("stride", c["stride"], (1, 1)), ("padding", c["padding"], (0, 0)),
                             ("dilation", c["dilation"], (1, 1))):
        if tuple(v) != default:
            args.append(f"{name}={pair(v)}")
    if c["groups"] != 1:
        args.append(f"groups={c['groups']}")
    if not c["bias"]:
        args.append("bias=false")
    return f"Conv2d({', '.join(args)})"


def conv_alone(nnc, c, tmp, tag, batches):
    """The convolution as a one-op model: compile it with nnc, time it (and F.conv2d) at each
    batch in `batches` (images) and thread count; returns {(batch, threads): (nnc µs, torch µs,
    max |Δ|)}, compile ms."""
    import torch
    import torch.nn.functional as F
    src = os.path.join(tmp, f"conv_{tag}.nn")
    wts = os.path.join(tmp, f"conv_{tag}.safetensors")
    so = os.path.join(tmp, f"conv_{tag}.so")
    with open(src, "w") as f:
        f.write(f"# the largest convolution of {tag}, alone (generated by bench/bench.py)\n"
                f"conv = {conv_layer_text(c)}\n"
                f"export run(x: f32[N, {c['cin']}, {c['h']}, {c['w']}]) -> "
                f"(y: f32[N, {c['cout']}, {c['oh']}, {c['ow']}]) {{\n  y = conv(x)\n}}\n")
    mod = c["module"]
    sd = {"conv.weight": mod.weight.detach()}
    if c["bias"]:
        sd["conv.bias"] = mod.bias.detach()
    import nnc_ref
    nnc_ref.save_safetensors(wts, sd)
    ms = run_nnc([nnc, src, "-o", so, "--weights", wts], 1)
    lib = nnc_py.load(so)
    res = {}
    try:
        for n in batches:
            g = torch.Generator().manual_seed(7 + n)
            x = torch.randn(n, c["cin"], c["h"], c["w"], generator=g)
            call, outs = bind(lib, "run", {"x": x.numpy()})
            call()

            def torch_conv():
                return F.conv2d(x, mod.weight, mod.bias, mod.stride, mod.padding, mod.dilation, mod.groups)
            diff = max_abs_diff(outs["y"], torch_conv().numpy())
            for t in ARGS.threads:
                use_threads(t, lib)
                res[(n, t)] = (measure(call), measure(torch_conv), diff)
    finally:
        lib.close()
    return res, ms


def conv_family_done(res, model):
    """The groupnorm variants share their layer shapes: their largest convolution runs once."""
    return model.startswith("groupnorm_") and any(c[0].startswith("groupnorm") for c in res.convs)


def bench_largest_conv(res, model, tm, tentries, inputs_of, tmp, helper):
    c = largest_conv(tm, tentries, inputs_of)
    if c is None:
        return
    try:
        times, _ = conv_alone(res.nnc, c, tmp, model, [c["n"] * b for b in ARGS.conv_batches])
    except Exception as e:
        res.fail(f"{model}: largest convolution alone", e)
        times = {}
    g = c["groups"]
    gemm = (c["cout"] // g, c["oh"] * c["ow"], c["cin"] // g * c["kh"] * c["kw"])
    sgemm = {t: sgemm_gflops(helper, *gemm, t) for t in ARGS.threads} if helper else {}
    res.convs.append((model, c, times, sgemm))
    print(f"  {model}: largest conv {c['name']} {conv_layer_text(c)} on {c['h']}x{c['w']}: "
          + ", ".join(f"n={n} t={t} nnc {fmt_us(v[0])} us torch {fmt_us(v[1])} us" for (n, t), v in times.items())
          + "".join(f"; sgemm t={t} {sg[1]:.1f} GFLOP/s" for t, sg in sgemm.items()), file=sys.stderr, flush=True)


def build_helper(tmp):
    """Compile bench/sgemm_gflops.c; returns the executable path or None (reason printed)."""
    cc = next((c for c in ("cc", "gcc", "clang") if _which(c)), None)
    if cc is None:
        print("note: no C compiler; sgemm and copy figures skipped", file=sys.stderr)
        return None
    exe = os.path.join(tmp, "sgemm_gflops")
    r = subprocess.run([cc, "-O2", os.path.join(ROOT, "bench", "sgemm_gflops.c"), "-o", exe, "-lopenblas"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        print(f"note: could not build bench/sgemm_gflops.c (sgemm and copy figures skipped):\n{r.stderr}",
              file=sys.stderr)
        return None
    return exe


def sgemm_gflops(exe, m, n, k, threads):
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads))
    out = subprocess.run([exe, "sgemm", str(m), str(n), str(k), str(ARGS.min_time)],
                         capture_output=True, text=True, check=True, env=env).stdout.split()
    return float(out[3]), float(out[4])  # µs, GFLOP/s


def copy_gbs(exe, mib=64):
    out = subprocess.run([exe, "copy", str(mib), str(ARGS.min_time)],
                         capture_output=True, text=True, check=True).stdout.split()
    return float(out[2])


# --------------------------------------------------------------------------------------------
# perf profile of a slow case: a child process loops over the nnc call under perf record

def loop_main(so, entry, npz, seconds):
    """(bench.py --threads T --loop SO ENTRY NPZ SECONDS) call the entry on the saved inputs for
    a while, with T threads."""
    lib = nnc_py.load(so, threads=MAX_THREADS)
    inputs = dict(np.load(npz))
    call, _ = bind(lib, entry, inputs)
    end = time.perf_counter() + float(seconds)
    while time.perf_counter() < end:
        for _ in range(10):
            call()
    lib.close()


def perf_profile(so, entry, inputs, threads, tmp, seconds):
    """perf record of the nnc call alone; returns the top lines of perf report, or a reason."""
    perf = _which("perf")
    if perf is None:
        return None, "perf is not installed"
    npz = os.path.join(tmp, "profile_inputs.npz")
    np.savez(npz, **inputs)
    data = os.path.join(tmp, "perf.data")
    rec = [perf, "record", "-q", "-F", "2000", "-o", data, "--", sys.executable, os.path.abspath(__file__),
           "--threads", str(threads), "--loop", so, entry, npz, str(seconds)]
    r = subprocess.run(rec, capture_output=True, text=True)
    if r.returncode != 0:
        return None, f"perf record failed: {r.stderr.strip()[-300:]}"
    rep = subprocess.run([perf, "report", "-i", data, "--stdio", "--no-children", "--sort", "dso,sym",
                          "--percent-limit", "1.5"], capture_output=True, text=True)
    if rep.returncode != 0:
        return None, f"perf report failed: {rep.stderr.strip()[-300:]}"
    lines = [ln.rstrip() for ln in rep.stdout.splitlines() if ln.strip() and not ln.startswith("#")]
    tmpdir = os.path.dirname(so)
    return [" ".join(ln.replace(tmpdir + "/", "").split()) for ln in lines[:20]], None


def fused_kernels(nnc, model):
    """{(entry, kernel index): dump lines} from `nnc dump --stage=fused` of the model."""
    src, golden, _ = MODELS[model]
    cmd = [nnc, "dump", "--stage=fused", os.path.join("examples", f"{src}.nn")]
    for d in read_defines(golden):
        cmd += ["-D", d]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if r.returncode != 0 and read_defines(golden):  # an nnc whose dump has no -D
        return {}
    return parse_fused(r.stdout)


def parse_fused(text):
    """{(entry, kernel index): dump lines} of a `nnc dump --stage=fused` output."""
    out, entry, key = {}, None, None
    for ln in text.splitlines():
        w = ln.split()
        if ln.startswith("entry "):
            entry, key = ln[6:].split("(", 1)[0], None
        elif len(w) >= 2 and w[0] == "kernel" and w[1].isdigit() and entry:
            key = (entry, int(w[1]))
            out[key] = [ln.strip()]
        elif key and ln.startswith("  "):
            out[key].append(ln.strip())
    return out


def hot_kernels(nnc, model, profile, limit=3, kernels_of=None):
    """Fused-IR dumps of the model's kernels among the top profile lines (symbols entry.kN.kind);
    kernels_of() gives the parsed fused dump (default: fused_kernels(nnc, model))."""
    import re
    kernels, shown, n = None, [], 0
    for ln in profile:
        m = re.search(r"\[\.\] (\w+)\.k(\d+)\.(\w+)", ln)
        if not m or n >= limit:
            continue
        if kernels is None:
            kernels = kernels_of() if kernels_of else fused_kernels(nnc, model)
        k = kernels.get((m.group(1), int(m.group(2))))
        if k:
            n += 1
            shown.append(f"{m.group(1)}.k{m.group(2)}.{m.group(3)} ({ln.split()[0]}):")
            shown += ["  " + x for x in k[:14]] + (["  ..."] if len(k) > 14 else [])
    return shown


def rows_to_profile(misses):
    """The worst missed row of each model family and, when it is another row, its worst row
    below ONNX Runtime (misses: worst first)."""
    worst = {}
    for _, row, req in misses:
        family = MODELS[row.model][0]
        worst.setdefault((family, "any"), row)
        if req.baseline == "ort":
            worst.setdefault((family, "ort"), row)
    return list({id(r): r for r in worst.values()}.values())


def profile_worst_misses(res, misses, tmp):
    """perf profile of the rows of rows_to_profile."""
    for row in rows_to_profile(misses):
        print(f"  profiling {row.model}.{row.entry} batch {batch_label(row.model, row.batch)}, "
              f"{row.threads} thread(s), with perf ...", file=sys.stderr, flush=True)
        prof, note = perf_profile(res.models[row.model].so_path, row.entry,
                                  res.saved_inputs[(row.model, row.entry, row.batch)], row.threads,
                                  tmp, ARGS.profile_seconds)
        if prof is None:
            res.profile_note = note
            return
        res.profiles.append((row, prof, hot_kernels(res.nnc, row.model, prof)))

# --------------------------------------------------------------------------------------------
# targets: the per-issue ones (issues 2-4, vs eager) and issue 5's (vs eager and TorchScript)

# A requirement on a row: speed-up over `baseline` ("eager" or "ts") at least `minimum`
# (above it when `strict`), asked by `source` (e.g. "issue 3").
Req = namedtuple("Req", "baseline minimum strict source")
BASELINE_NAMES = {"eager": "eager", "ts": "TorchScript", "ort": "ORT"}
PEER_NAMES = {"eager": "PyTorch eager", "ts": "TorchScript", "ort": "ONNX Runtime"}
ISSUE20_REQ = Req("ort", 1.0, False, "issue 20")  # every row: no slower than ONNX Runtime
ISSUE_OF_KIND = {"dense": 2, "conv": 3, "rnn": 4}


def is_step_entry(model, entry):
    return model in STEP_ENTRIES and entry == STEP_ENTRIES[model][0]


def target_of(model, batch, entry=None):
    """Minimum speed-up over eager the issues 2-4 ask for at this batch, or None (step entries:
    reported only)."""
    if is_step_entry(model, entry):
        return None
    for b, t in TARGETS[MODELS[model][2]]:
        if b == batch:
            return t
    return None


def issue_target(row):
    """The row's per-issue target (issues 2-4) as a Req, or None."""
    t = target_of(row.model, row.batch, row.entry)
    return None if t is None else Req("eager", t, False, f"issue {ISSUE_OF_KIND[MODELS[row.model][2]]}")


def issue5_reqs(row):
    """Issue 5: at batch 1, >= 3x eager and faster than TorchScript; at the large batch, no
    slower than either.  Step entries: reported only."""
    if is_step_entry(row.model, row.entry):
        return []
    if row.batch == 1:
        return [Req("eager", ISSUE5_BATCH1_MIN, False, "issue 5"), Req("ts", 1.0, True, "issue 5")]
    if row.batch == large_batch(row.model):
        return [Req("eager", 1.0, False, "issue 5"), Req("ts", 1.0, False, "issue 5")]
    return []


def meets(row, req):
    """True / False, or None when a time is missing (nnc failed, TorchScript n/a)."""
    sp = row.speedup(req.baseline)
    if sp is None:
        return None
    return sp > req.minimum if req.strict else sp >= req.minimum


def req_text(req):
    return f"{'>' if req.strict else '≥'}{req.minimum:g}x"


def target_cell(row):
    req = issue_target(row)
    if req is None:
        return ""
    ok = meets(row, req)
    return f"{req_text(req)} " + ("-" if ok is None else "ok" if ok else "MISSED")


def issue5_cell(row):
    reqs = issue5_reqs(row)
    if not reqs:
        return ""
    if row.nnc_us is None:
        return "-"
    verdicts = [(r, meets(row, r)) for r in reqs]
    missed = [BASELINE_NAMES[r.baseline] for r, ok in verdicts if ok is False]
    text = "ok" if not missed else f"MISSED ({', '.join(missed)})"
    return text + (" (no TS)" if any(ok is None for _, ok in verdicts) else "")


def find_misses(rows):
    """[(shortfall, row, req)] of every requirement a row misses, worst first; shortfall =
    required / reached speed-up."""
    out = []
    for row in rows:
        for req in [issue_target(row), ISSUE20_REQ] + issue5_reqs(row):
            if req is not None and meets(row, req) is False:
                out.append((req.minimum / row.speedup(req.baseline), row, req))
    out.sort(key=lambda m: -m[0])
    return out


def missed_lines(misses):
    """One line per missed row: its speed-ups and the requirements they miss."""
    by_row = {}
    for _, row, req in misses:
        by_row.setdefault(id(row), (row, {}))[1].setdefault(req.baseline, []).append(req)
    lines = []
    for row, reqs in sorted(by_row.values(), key=lambda x: (x[0].model, x[0].entry, x[0].batch, x[0].threads)):
        parts = [f"{row.speedup(b):.2f}x vs {BASELINE_NAMES[b]} ("
                 + ", ".join(f"{r.source}: {req_text(r)}" for r in sorted(rs, key=lambda r: r.source)) + ")"
                 for b, rs in sorted(reqs.items())]
        lines.append(f"{row.model}.{row.entry} batch {batch_label(row.model, row.batch)}, "
                     f"{threads_text(row.threads)}: " + "; ".join(parts))
    return lines


# --------------------------------------------------------------------------------------------
# the report: tables shared by the text and markdown output, and the plot

Table = namedtuple("Table", "header rows right")


def fmt_us(v):
    return "-" if v is None else (f"{v:.1f}" if v < 1000 else f"{v:,.0f}")


def fmt_x(v):
    return "-" if v is None else f"{v:.2f}x"


def fmt_diff(v):
    return "-" if v is None else f"{v:.2e}"


def threads_text(t):
    return f"{t} thread{'s' if t != 1 else ''}"


def latency_table(res):
    ts_missing = "-" if ARGS.no_torchscript else "n/a"
    rows = [[r.model, r.entry, batch_label(r.model, r.batch), str(r.threads), fmt_us(r.nnc_us),
             fmt_us(r.eager_us), ts_missing if r.ts_us is None else fmt_us(r.ts_us), ort_cell(res, r),
             fmt_x(r.speedup("eager")), fmt_x(r.speedup("ts")), fmt_x(r.speedup("ort")), target_cell(r),
             issue5_cell(r), fmt_diff(r.nnc_diff), fmt_diff(r.ts_diff), fmt_diff(r.ort_diff), vcpu_cell(r)]
            for r in res.rows]
    header = ["model", "entry", "batch", "threads", "nnc µs", "eager µs", "TorchScript µs", "ORT µs", "vs eager",
              "vs TorchScript", "ORT/nnc", "target (issues 2-4)", "issue 5", "max |Δ| nnc", "max |Δ| TorchScript",
              "max |Δ| ORT", "vCPU round trip ns"]
    return Table(header, rows, [False, False] + [True] * 9 + [False, False] + [True] * 4)


def ort_cell(res, r):
    """ORT's µs; n/a when it could not run the entry, ≠ when its outputs disagree (the notes say
    why), - without ORT."""
    if r.ort_us is not None:
        return fmt_us(r.ort_us)
    if r.ort_diff is not None:
        return "≠ eager"
    return "n/a" if r.entry in res.models[r.model].ort_notes else "-"


def ort_summary(res):
    """One line: the geometric mean of ORT/nnc over the rows with both, and the rows below 1x."""
    ratios = [(r.speedup("ort"), r) for r in res.rows if r.speedup("ort")]
    if not ratios:
        return f"ORT/nnc: no rows with both times ({res.ort_note or 'see the notes'})."
    geo = float(np.exp(np.mean([np.log(x) for x, _ in ratios])))
    below = sorted([(x, r) for x, r in ratios if x < 1.0], key=lambda p: p[0])
    text = f"ORT/nnc over {len(ratios)} rows: geometric mean {geo:.2f}x; {len(below)} row(s) below 1x"
    if below:
        x, r = below[0]
        text += (f" (the lowest: {r.model}.{r.entry} batch {batch_label(r.model, r.batch)}, "
                 f"{threads_text(r.threads)}: {x:.2f}x)")
    return text + "."


def issue20_line(res, misses):
    """Issue 20's target (nnc ≥ 1x ONNX Runtime on every row): on how many rows it is met."""
    timed = sum(1 for r in res.rows if r.speedup("ort"))
    below = sum(1 for _, _, req in misses if req.baseline == "ort")
    if not timed:
        return f"Issue 20 (nnc ≥ 1x ONNX Runtime on every row): not evaluated ({res.ort_note or 'no ORT times'})."
    return (f"Issue 20 (nnc ≥ 1x ONNX Runtime on every row): met on {timed - below} of the {timed} rows ORT ran"
            + (f"; {len(res.rows) - timed} row(s) without an ORT time (the notes say why)." if timed < len(res.rows)
               else "."))


def ort_note_lines(res, models):
    """One line per model whose entries ORT could not run or whose outputs disagreed."""
    lines = []
    for m in models:
        notes = res.models[m].ort_notes if m in res.models else {}
        lines += [f"{m}.{entry}: {note}" for entry, note in notes.items()]
    return lines


def vcpu_cell(r):
    """The cores' round trips before nnc's rounds (lowest-highest), with 2+ threads."""
    if not r.vcpu_ns:
        return ""
    lo, hi = min(r.vcpu_ns), max(r.vcpu_ns)
    return f"{lo:.0f}" if hi - lo < 20 else f"{lo:.0f}-{hi:.0f}"


def torchscript_summary(info):
    """How each entry's TorchScript was made, e.g. 'script: forward, log_prob; trace: inverse'."""
    by_how = {}
    for entry, how in info.ts_how.items():
        by_how.setdefault(how, []).append(entry)
    return "; ".join(f"{how}: {', '.join(es)}" for how, es in by_how.items()) or "-"


def model_table(res, models):
    rows = []
    for m in models:
        info = res.models.get(m, ModelInfo())
        rows.append([m, "-" if info.compile_ms is None else f"{info.compile_ms:.0f}",
                     "-" if info.so_bytes is None else f"{info.so_bytes:,}",
                     torchscript_summary(info)])
    return Table(["model", "compile ms (best of 3)", ".so bytes", "TorchScript"], rows, [False, True, True, False])


def memory_table(res, models):
    """Per entry and batch: the planned workspace, the lifetime lower bound and their ratio."""
    rows = []
    for m in models:
        info = res.models.get(m, ModelInfo())
        for (entry, batch), planned in info.workspace.items():
            dump = info.memory.get((entry, batch))
            bound, total = (dump[1], dump[2]) if dump else (None, None)
            ratio = "-" if not bound else f"{planned / bound:.2f}"
            rows.append([m, entry, batch_label(m, batch), fmt_bytes(planned), fmt_bytes(bound), ratio,
                         fmt_bytes(total)])
    header = ["model", "entry", "batch", "planned workspace bytes", "lifetime bound bytes", "planned / bound",
              "no-reuse sum bytes"]
    return Table(header, rows, [False, False, True, True, True, True, True])


def fmt_bytes(v):
    return "-" if v is None else f"{v:,}"


def step_table(res, models):
    """Streaming step entries: one step with the state in and out, next to the sequence / T."""
    by_key = {(r.model, r.entry, r.batch, r.threads): r for r in res.rows}
    rows = []
    for model in models:
        if model not in STEP_ENTRIES:
            continue
        step_e, seq_e, _ = STEP_ENTRIES[model]
        t_len = SEQ_LEN[model]
        for b in batches_of(model):
            for t in ARGS.threads:
                step, seq = by_key.get((model, step_e, b, t)), by_key.get((model, seq_e, b, t))
                if step is None:
                    continue
                rows.append([f"{model}.{step_e}", str(b), str(t), fmt_us(step.nnc_us), fmt_us(step.eager_us),
                             fmt_us(step.ts_us), fmt_x(step.speedup("eager")),
                             "-" if seq is None or seq.nnc_us is None else fmt_us(seq.nnc_us / t_len),
                             "-" if seq is None else fmt_us(seq.eager_us / t_len), str(t_len)])
    header = ["model", "batch", "threads", "nnc step µs", "eager step µs", "TorchScript step µs", "vs eager",
              "nnc seq/T µs", "eager seq/T µs", "T"]
    return Table(header, rows, [False] + [True] * 9)


def conv_table(res):
    rows = []
    for model, c, times, sgemm in res.convs:
        per_img = c["flops"] // c["n"]
        g = c["groups"]
        shape = f"{c['cout'] // g}×{c['oh'] * c['ow']}×{c['cin'] // g * c['kh'] * c['kw']}"
        desc = f"{c['name']}: {conv_layer_text(c)} on {c['cin']}×{c['h']}×{c['w']}"
        for (n, t), (n_us, t_us, diff) in times.items():
            fl = per_img * n
            rows.append([model, desc, shape, str(n), str(t), fmt_us(n_us), f"{fl / n_us * 1e-3:.1f}",
                         fmt_us(t_us), f"{fl / t_us * 1e-3:.1f}",
                         f"{sgemm[t][1]:.1f}" if t in sgemm else "-", f"{diff:.1e}"])
    header = ["model", "largest Conv2d (input)", "GEMM M×N×K", "images", "threads", "nnc µs", "nnc GFLOP/s",
              "torch µs", "torch GFLOP/s", "sgemm GFLOP/s", "max |Δ|"]
    return Table(header, rows, [False, False, False] + [True] * 8)


def text_table(table):
    h, rows, right = table
    widths = [max(len(x), *(len(r[i]) for r in rows)) if rows else len(x) for i, x in enumerate(h)]

    def line(cells):
        return "  ".join(c.rjust(w) if r else c.ljust(w) for c, w, r in zip(cells, widths, right))
    return [line(h), "  ".join("-" * w for w in widths)] + [line(r) for r in rows]


def md_table(table):
    h, rows, right = table
    return (["| " + " | ".join(x.replace("|", "\\|") for x in h) + " |",
             "|" + "|".join("---:" if r else "---" for r in right) + "|"]
            + ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows])


def main_entry_rows(res, models):
    """model -> (its first entry, {(batch, threads): Row}) for the plot."""
    out = {}
    for m in models:
        entry = next(iter(TORCH_ENTRIES[MODELS[m][0]]))
        rows = {(r.batch, r.threads): r for r in res.rows if r.model == m and r.entry == entry}
        if rows:
            out[m] = (entry, rows)
    return out


def write_plot(res, models, path):
    """Grouped bars of nnc's speed-up over eager (top), TorchScript and ONNX Runtime (bottom,
    when it ran) for each model's main entry, at batch 1 and the large batch, with each thread
    count; log scale, a line at 1x (and at 3x over eager: issue 5 at batch 1).  Returns True when
    written."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("note: matplotlib is not installed, so no plot was written "
              "(apt-get install python3-matplotlib)", file=sys.stderr)
        return False
    main = main_entry_rows(res, models)
    if not any(r.nnc_us for _, rows in main.values() for r in rows.values()):
        print("note: no nnc times, so no plot", file=sys.stderr)
        return False
    names = list(main)
    baselines = ["eager", "ts"] + (["ort"] if any(r.ort_us for r in res.rows) else [])
    fig, axes = plt.subplots(len(baselines), 1, figsize=(max(9, 1.2 * len(names)), 5 * len(baselines)),
                             sharex=True)
    for ax, baseline in zip(axes, baselines):
        plot_speedups(ax, main, baseline)
    axes[0].axhline(ISSUE5_BATCH1_MIN, color="black", linewidth=1, linestyle="--")
    handles, legend_labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, legend_labels, loc="upper center", ncol=len(handles), fontsize="small")
    labels = [f"{m}\n{main[m][0]}" + (f", large {batch_label(m, large_batch(m))}" if large_batch(m) else "")
              for m in names]
    axes[-1].set_xticks(range(len(names)), labels, rotation=35, ha="right", fontsize="small")
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def plot_speedups(ax, main, baseline):
    """One panel of write_plot: a group of bars per model, one bar per (batch, threads)."""
    configs = [(size, t) for size in ("batch 1", "large batch") for t in ARGS.threads]
    blues, oranges = ["#9ecae1", "#3182bd", "#08519c"], ["#fdae6b", "#e6550d", "#a63603"]
    width = 0.8 / len(configs)
    for j, (size, t) in enumerate(configs):
        xs, ys = [], []
        for i, (m, (_, rows)) in enumerate(main.items()):
            row = rows.get((1 if size == "batch 1" else large_batch(m), t))
            sp = row.speedup(baseline) if row else None
            if sp:
                xs.append(i + (j - (len(configs) - 1) / 2) * width)
                ys.append(sp)
        shades = blues if size == "batch 1" else oranges
        bars = ax.bar(xs, ys, width, color=shades[min(ARGS.threads.index(t), 2)],
                      label=f"{size}, {threads_text(t)}")
        ax.bar_label(bars, [f"{y:.3g}" for y in ys], fontsize=6, rotation=90, padding=2)
    ax.set_yscale("log")
    ax.margins(y=0.15)
    ax.axhline(1, color="black", linewidth=1)
    ax.grid(axis="y", which="both", alpha=0.3)
    name = BASELINE_NAMES[baseline]
    ax.set_ylabel(f"speed-up over {name} (x)")
    ax.set_title(f"nnc vs {PEER_NAMES[baseline]}: {name} time / nnc time (above 1: nnc is faster)")


def machine_info():
    cpu = platform.processor() or platform.machine()
    avx512 = None
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                cpu = line.split(":", 1)[1].strip()
            if line.startswith("Flags:"):
                flags = line.split(":", 1)[1].split()
                avx512 = sorted(f for f in flags if f.startswith("avx512"))
    except OSError:
        pass
    return cpu, os.cpu_count(), avx512


def cpu_snapshot():
    """(wall s, CPU s used by all processes (/proc/stat; None if unreadable), CPU s used by
    this process and its finished children, load averages)."""
    try:
        with open("/proc/stat") as f:
            ticks = [int(x) for x in f.readline().split()[1:9]]  # user nice system idle iowait irq softirq steal
        busy = (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError):
        busy = None
    t = os.times()
    return time.perf_counter(), busy, t.user + t.system + t.children_user + t.children_system, os.getloadavg()


def load_text(start, end):
    """(text, busy): the load during the run, and whether other jobs shared the CPUs: they
    used more than 10 % of the CPU time (all processes' CPU time minus this run's)."""
    cpus = os.cpu_count() or 1
    loads = " and ".join("/".join(f"{x:.1f}" for x in s[3]) for s in (start, end))
    text = f"load average (1/5/15 min) {loads} at the start and end, on {cpus} CPUs"
    if start[1] is None or end[1] is None:
        return text, start[3][0] > 0.5 * cpus
    others = max(0.0, (end[1] - start[1]) - (end[2] - start[2])) / ((end[0] - start[0]) * cpus)
    return text + f"; other processes used {100 * others:.0f} % of the CPU time during the run", others > 0.1


def ts_note_lines(res, models):
    """One line per model whose TorchScript was not scripted for every entry, the entries
    grouped by what happened and why."""
    lines = []
    for m in models:
        groups = {}
        for entry, note in (res.models[m].ts_notes if m in res.models else {}).items():
            groups.setdefault(note, []).append(f"`{entry}`")
        if groups:
            lines.append(f"{m}: " + "; ".join(f"{', '.join(es)} {how} ({why})" for (how, why), es in groups.items()))
    return lines


def print_report(res, models, load, misses, elapsed_s):
    print("\n".join(text_table(latency_table(res))))
    print(ort_summary(res))
    print(f"\n{load[0]}" + (" (the machine was shared with other jobs)" if load[1] else ""))
    print(f"run time {elapsed_s / 60:.1f} min\n")
    print("\n".join(text_table(model_table(res, models))))
    if res.overhead_us is not None:
        print(f"ctypes call overhead (included in nnc µs): {res.overhead_us:.2f} µs")
    notes = ts_note_lines(res, models)
    if notes:
        print("\nTorchScript notes:\n  " + "\n  ".join(notes))
    notes = ort_note_lines(res, models)
    if notes:
        print("\nONNX Runtime notes:\n  " + "\n  ".join(notes))
    memory = memory_table(res, models)
    if memory.rows:
        print("\nworkspace (planned: nnc_entry_workspace_size; bound and sum: nnc dump --stage=memory):")
        print("\n".join(text_table(memory)))
    for m, note in res.memory_notes.items():
        print(f"no lifetime bound for {m}: {note}")
    steps = step_table(res, models)
    if steps.rows:
        print("\nstep entries (per-step latency):")
        print("\n".join(text_table(steps)))
    if res.convs:
        print()
        print("\n".join(text_table(conv_table(res))))
    if res.copy_bw is not None:
        print(f"copy bandwidth (STREAM-like, 64 MiB memcpy, read+write): {res.copy_bw:.1f} GB/s")
    if misses:
        print("\nmissed targets:\n  " + "\n  ".join(missed_lines(misses)))
    for row, prof, hot in res.profiles:
        print(f"\nperf profile of {row.model}.{row.entry} batch {batch_label(row.model, row.batch)}, "
              f"{threads_text(row.threads)}:\n" + "\n".join(prof))
        if hot:
            print("hot kernels (nnc dump --stage=fused):\n" + "\n".join(hot))
    if res.profile_note:
        print(f"\nno profile: {res.profile_note}")


def command_line():
    me = os.path.abspath(__file__)
    if os.path.abspath(os.getcwd()) == ROOT:
        me = os.path.relpath(me, ROOT)
    return shlex.join([sys.executable, me] + sys.argv[1:])


def git_commit():
    try:
        return subprocess.run(["git", "-C", ROOT, "log", "-1", "--format=%h %s"], capture_output=True,
                              text=True).stdout.strip()
    except OSError:
        return ""


def md_header(res, load, elapsed_s):
    import torch
    cpu, ncpu, avx512 = machine_info()
    avx = ("yes (" + " ".join(avx512) + ")") if avx512 else ("no" if avx512 is not None else "unknown")
    commit = git_commit()
    reps = (f"each measurement: ≥{ARGS.min_reps} calls and ≥{ARGS.min_time:g} s (a slow one stops at "
            f"{ARGS.max_time:g} s with ≥10 calls); latency rows: {ARGS.rounds} rounds of nnc, eager, "
            f"TorchScript and ONNX Runtime in turn, each with a {ARGS.rounds}th of that, the fastest round's "
            f"median kept; nnc's and ONNX Runtime's after a {OPENBLAS_IDLE_S:g} s pause that lets "
            f"OpenBLAS's workers, left polling by the torch side, go to sleep")
    return ["# nnc vs PyTorch eager, TorchScript and ONNX Runtime", "",
            f"Command (from the repository root): `{command_line()}`", "",
            f"- Machine: {cpu} (lscpu model name), nproc {ncpu}, AVX-512: {avx}",
            f"- Load: {load[0]}" + (" — **the machine was shared with other jobs (builds, tests) during "
                                     "the run, so absolute times are noisy**" if load[1] else ""),
            f"- Threads: {' and '.join(map(str, ARGS.threads))}, every configuration with each: "
            "`torch.set_num_threads(t)` and the nnc model's `threads = t` before each measurement "
            f"(OPENBLAS_NUM_THREADS = OMP_NUM_THREADS = {MAX_THREADS} in the environment)",
            f"- Run time {elapsed_s / 60:.1f} min; {reps}",
            f"- torch {torch.__version__}, numpy {np.__version__}, Python {platform.python_version()}, "
            f"ONNX Runtime {ort_side.ORT_VERSION if res.ort else 'n/a (' + (res.ort_note or '?') + ')'}"
            + (f"; nnc at commit `{commit}` (plus uncommitted changes in the working tree, if any)" if commit else ""),
            ""]


def md_how_to_read(res):
    overhead = (f" (the nnc time includes the Python call through the package's bound call, "
                f"under 1 µs: lm_temperature softmax_t runs in 0.18 µs from C; a bare ctypes call "
                f"costs ≈{res.overhead_us:.2f} µs)" if res.overhead_us is not None else "")
    return [
        "## How to read this", "",
        "- Every entry of every example model with a golden reference is compiled by nnc (weights "
        "embedded, `-D` from `tests/golden/<m>/defines`) and called through the generated `.so`; "
        "PyTorch eager runs the reference module of `tests/golden/<m>/reference.py` with the same "
        "`weights.safetensors`; TorchScript runs "
        "`torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.script(module.eval())))` of the "
        "same module method (for entries other than `forward`, the method exported), or, when scripting "
        "fails, `torch.jit.trace` of that method on the row's inputs, then freeze and "
        "`optimize_for_inference` (see the TorchScript column of the per-model table and the notes). "
        f"ONNX Runtime (ORT, {ort_side.ORT_VERSION}, the CPU provider, `ORT_ENABLE_ALL`, sequential, "
        "intra = inter-op threads = the row's threads) runs the same reference method exported once per "
        "entry by `torch.onnx.export` as `tests/python/onnx_examples.py` exports it for the ONNX tests "
        "(golden weights, opset 17, the batch dynamic; mann without `sort`'s stable flag, which the "
        "exporter refuses), timed by `ort_bench` (`/work/shared/ort-bench/ort_bench.c`, its C API) in a "
        "child process, each timed run one `Run` call. All four get the same inputs; nnc, eager and "
        "TorchScript in the same process.",
        "- threads: every row is measured once per thread count: `torch.set_num_threads(t)` for eager and "
        "TorchScript, the nnc model's `threads = t` (its thread pool; nnc also lets OpenBLAS use t "
        "threads for a product of at least 8 MFLOP, 1 for a smaller one), ORT's session "
        "`intra_op_num_threads` = `inter_op_num_threads` = t.",
        f"- nnc µs / eager µs / TorchScript µs / ORT µs: median latency of one call{overhead}, the lowest of the {ARGS.rounds} rounds' medians (sides measured in turn); vs eager = eager / "
        "nnc, vs TorchScript = TorchScript / nnc, ORT/nnc = ORT / nnc (above 1 means nnc is faster). "
        "n/a: no TorchScript version could be built or run, or ORT could not export or run the entry "
        "(reason in the notes); ≠ eager: ORT's outputs disagree with eager's, so it was not timed.",
        "- batch: rows of the input (images for the conv models); for mask_rcnn it is the "
        f"number of boxes K = {MASK_RCNN_BOXES}·batch on the one 64×64 image (K = {MASK_RCNN_BOXES}: the "
        "golden boxes; more: random boxes, some partly outside the image).",
        "- target (issues 2-4), vs eager: issue 2 (realnvp, cfr): ≥5x at batch 1, ≥1x at batch 4096; "
        "issue 3 (conv models): ≥2x at batch 1, ≥1x at batch 8 (K = 48 for mask_rcnn); issue 4 (mann, "
        "fast_weights, lm_temperature, cactus): ≥5x at batch 1 for every entry but the streaming `step` "
        "entries (reported, no target).",
        "- issue 20: nnc at least as fast as ONNX Runtime (ORT/nnc ≥ 1x) on every row, step entries "
        "included; the line under the table gives the geometric mean of ORT/nnc and the rows below 1x.",
        f"- issue 5: at batch 1, ≥{ISSUE5_BATCH1_MIN:g}x eager and faster than TorchScript (>1x); at the "
        f"large batch (the largest the model runs: {max(ARGS.batches)} for realnvp and cfr, "
        f"{max(ARGS.conv_batches)} for the conv models (K = {MASK_RCNN_BOXES * max(ARGS.conv_batches)} for "
        f"mask_rcnn), {max(ARGS.rnn_batches)} for the issue 4 models but cactus), no slower than either "
        "(≥1x both); every entry but the `step` entries; at each thread count. MISSED names the baseline(s) "
        "missed; \"(no TS)\": judged against eager alone, TorchScript being n/a.",
        "- Issue 4 models: batch = sequences (mann `episode`: T = 10 steps; fast_weights "
        "`classify`: T = 8; lm_temperature `logits`: T = 48 characters of held-out text, "
        f"`sample`: prefix {LM_P}, L = {LM_L} tokens at temperature {LM_TEMP:g} with the same "
        "Gumbel noise on all sides, sampled tokens must agree exactly; `softmax_t`: B rows of "
        "84 logits). cactus has static shapes: `kmeans` = the golden 64×8 problem (5 clusters, "
        "5 Lloyd iterations), `episode` = one 5-way 2-shot episode with 15 queries (25 images "
        "of 28×28 through Conv-4), the golden inputs.",
        "- max |Δ| nnc / TorchScript / ORT: largest absolute difference from the eager outputs (a sanity "
        "check, made before any timing; flagged below when above 1e-4 + 1e-3·max|eager|, any difference "
        "in lm_temperature `sample`'s tokens). At batch 1, cfr `imbalance` "
        "has an empty arm, so nnc, eager and TorchScript return NaN (counted as agreeing); ORT's "
        "export (the arms' means through NonZero and GatherND) returns a number there, so those rows "
        "are ≠ eager.",
        "- vCPU round trip ns (rows with 2+ threads): two threads passing a cache line back and "
        "forth (`bench/sgemm_gflops.c roundtrip`), measured before each of nnc's rounds, lowest-"
        f"highest. This VM's two vCPUs sit close (50-80 ns) or far apart (310-350 ns), changing "
        "every few minutes; far apart, work split between threads costs much more, so a 2-thread "
        f"row measured above {FAR_NS} ns shows the machine's state as much as nnc's.",
        "- Per model: compile time (`nnc` to a `.so`, weights embedded, best of 3 wall-clock runs) "
        "and the `.so` size in bytes.",
        "- Workspace, per entry and batch: planned = the bytes of the per-call workspace the entry's "
        "memory plan asks for (`nnc_entry_workspace_size()` of the library: the end of its regions' "
        "layout, with the symbolic dims bound from the inputs; inputs, outputs and weights not "
        "included); lifetime bound = the most bytes of intermediates live at once, a lower bound for "
        "any plan, and no-reuse sum = all intermediates without reuse, both from `nnc dump "
        "--stage=memory --dims ...` at the same dims (dims not bound by the inputs: 1); planned / bound "
        "= 1 is a perfect plan.",
        "- Plot (`benchmarks.png`): speed-up of nnc over eager (top), TorchScript and ONNX Runtime "
        "(bottom) for the first entry of each model, at batch 1 and the large batch, per thread count; "
        "log scale, solid line 1x, dashed line 3x.",
        "- Largest convolution: the Conv2d with the most flops in each conv model (found with "
        "forward hooks on the torch module at batch 1), compiled alone by nnc as a one-op `.nn` "
        "(same weights) and run at the number of images the model feeds it at batch 1 and 8, per "
        "thread count; GFLOP/s = 2·N·Cout·OH·OW·Cin/groups·KH·KW / time. torch = `F.conv2d` on the "
        "same tensors. sgemm = OpenBLAS `cblas_sgemm` on one image's GEMM (M = Cout/groups, N = OH·OW, "
        "K = Cin/groups·KH·KW), `bench/sgemm_gflops.c`, same threads — what im2col + GEMM could "
        "reach. The copy bandwidth (STREAM-like memcpy, 64 MiB, read + write counted) is for "
        "context: small layers are bound by memory traffic and per-call overhead, not flops.", ""]


def md_sections(res, models, misses, plot_name):
    md = ["## Latency", ""]
    md += ["PyTorch side only (--torch-only).", ""] if ARGS.torch_only else []
    md += md_table(latency_table(res))
    md += ["", ort_summary(res)]
    notes = ts_note_lines(res, models)
    if notes:
        md += ["", "TorchScript notes (entries not scripted; the first error of each way, shortened):", ""]
        md += [f"- {n}" for n in notes]
    notes = ort_note_lines(res, models)
    if notes:
        md += ["", "ONNX Runtime notes (entries n/a or not timed):", ""] + [f"- {n}" for n in notes]
    md += ["", "## Per model", ""] + md_table(model_table(res, models))
    if plot_name:
        md += ["", "## Speed-up plot", "", f"![nnc speed-up over eager and TorchScript]({plot_name})"]
    memory = memory_table(res, models)
    if memory.rows:
        md += ["", "## Workspace", ""] + md_table(memory)
        md += [f"\nNo lifetime bound for {m}: {note}." for m, note in res.memory_notes.items()]
    steps = step_table(res, models)
    if steps.rows:
        md += ["", "## Step entries (streaming, per-step latency)", "",
               "One call of the `step` entry (state in, state out) at the state after steps 0..5 "
               "of a sequence, next to torch's `step` on the same state; seq/T = the whole-sequence "
               "entry (`episode` / `classify`) divided by its length T.", ""] + md_table(steps)
    if res.convs:
        md += ["", "## Largest convolution of each conv model", ""] + md_table(conv_table(res))
    if res.copy_bw is not None:
        md += ["", f"Copy bandwidth (STREAM-like, 64 MiB memcpy, read + write): {res.copy_bw:.1f} GB/s.",
               "", "GEMM-with-epilogue, elementwise and normalization kernels against sgemm and the "
               "copy bandwidth: [efficiency.md](efficiency.md) (`bench/efficiency.py`)."]
    md += ["", "## Targets", ""]
    if ARGS.torch_only:
        md += ["Not evaluated (--torch-only)."]
        misses = []
    else:
        md += [issue20_line(res, misses), ""]
    if misses:
        lines = missed_lines(misses)
        md += [f"**{len(lines)} row(s) miss a target:**", ""] + [f"- {t}" for t in lines]
        md += md_why(misses) + md_why_ort(res, misses)
    elif not ARGS.torch_only:
        md += ["All targets met."]
    md += md_profiles(res)
    if res.failures:
        md += ["", "## Failures", ""] + [f"- {f}" for f in res.failures]
    if res.mismatches:
        md += ["", "## Outputs that disagree beyond 1e-4 + 1e-3·max|eager|", ""] + [f"- {m}" for m in res.mismatches]
    return md


# Why the misses of the last measured runs miss, per model (kept next to the code that measures
# them; printed for the models that miss in this run).  The profiles below show the kernels.
WHY_MISSES = {
    "mask_rcnn": "`masks` on one thread: its four 3x3 convolutions (32 to 32 channels on 14x14 per box) "
                 "run as Winograd F(2x2, 3x3), 38.5 MFLOP of products at K=6 (about 320 us of a "
                 "720 us entry while they ran on 8-float vectors, half the FMA rate of this Zen 5; "
                 "16-float ones since December 2026), and their transforms take about 105 us more; the rest is the 2x2 transposed convolution (row "
                 "tiles, 9.6 MFLOP, at the FMA rate too), RoIAlign, the mask head and the backbone. 3x "
                 "eager would need the whole entry in about 560 us. F(4x4, 3x3) would cut the "
                 "products by a quarter on 14x14 maps but about double the transforms. (On 2 threads "
                 "the boxes split between the threads.)",
    "lm_temperature": "`logits` on one thread is 48 sequential LSTM steps; each step's h x W_hh^T (one "
                      "row) reads the whole 256 KB W_hh from the core's L2 cache, 2.2 us at this "
                      "machine's L2 bandwidth (32 bytes a cycle; OpenBLAS's small-matrix kernel and "
                      "nnc's row tiles alike, measured alone): 106.5 of the entry's 133.6 us (from C), "
                      "before the output projection (9.2 us at the FMA rate), the gates (9.7 us) and "
                      "the steps' other kernels; 5x eager needs the entry in 135-139 us, eager taking "
                      "675-695 us from run to run. On 2 threads each core reads half of W_hh (row "
                      "tiles in parts, docs/architecture.md): about 100 us when the VM's two vCPUs "
                      "sit close (a cache line's round trip 60-80 ns); when they do not (330 ns) the "
                      "pool stops splitting and the 1-thread time holds. `softmax_t` is 84 numbers: "
                      "the entry takes about 0.14 us in C (`scripts/so_timer.c`); the bound call from "
                      "Python adds about 0.3 us (it keeps the GIL for short entries, docs/python.md).",
    "cactus": "`episode`: the 3x3 convolutions of 16 channels run as Winograd F(2x2, 3x3) where the map "
              "is even (28x28, 14x14) and directly at the FMA rate otherwise; max pooling runs as "
              "vectors (two loads and a shuffle per row of outputs).",
    "groupnorm": "the 3x3 convolutions are most of the time: Winograd F(2x2, 3x3) for all of them (the "
                 "products at the FMA rate, the table above).",
    "fcn": "at batch 1 on 2 threads a Winograd convolution's 16 products and the row tiles of the "
           "small maps split among the threads, but its input and output transforms and padded "
           "copies run on one thread (one image). Against TorchScript at batch 8 the runs vary by "
           "up to 2x between repetitions on this 2-core machine.",
}


def speedups_text(row):
    """'vs eager 2.10x, vs TorchScript 1.30x, ORT/nnc 0.90x' (the sides that ran)."""
    return ", ".join(f"{'ORT/nnc' if b == 'ort' else 'vs ' + BASELINE_NAMES[b]} {row.speedup(b):.2f}x"
                     for b in BASELINE_NAMES if row.speedup(b))


def md_why(misses):
    models, far = [], []
    for _, row, _ in (m for m in misses if m[2].baseline != "ort"):
        base = row.model.split("_")[0] if row.model.startswith("groupnorm") else row.model
        if row.vcpu_ns and max(row.vcpu_ns) > FAR_NS:
            far.append(f"{row.model}.{row.entry} batch {batch_label(row.model, row.batch)}, "
                       f"{threads_text(row.threads)} ({vcpu_cell(row)} ns)")
        elif base in WHY_MISSES and base not in models:
            models.append(base)
    md = [f"- **{m}**: {WHY_MISSES[m]}" for m in models]
    if far:
        md.append("- **measured while the VM's vCPUs sat far apart** (a cache line's round trip above "
                  f"{FAR_NS} ns before one of nnc's rounds, against 50-80 ns at other times; work split "
                  "between threads then costs much more, and the pool splits jobs of a few grains and "
                  "an LSTM step's column parts only when timing shows it pays, larger jobs always): "
                  + "; ".join(far) + ".")
    return ["", "## Why they miss", ""] + md if md else []


# Why ONNX Runtime is faster on the rows below 1x, per model (the analysis of the last measured
# run's profiles below and of ORT's optimised graph; printed for the models with such rows).
# Keep it true when the code changes.
WHY_ORT_COMMON = (
    "ORT's optimiser (`ORT_ENABLE_ALL`) turns every Conv into its NCHWc form (`com.microsoft.nchwc` "
    "Conv: channels in blocks of 8 or 16, BatchNorm folded, the ReLU and a residual Add fused in; "
    "MaxPool too), run by MLAS's blocked direct convolution. nnc runs a convolution as a padded copy "
    "of the input planes per image, its register-tiled direct (or Winograd) kernel (`kN.gemm.conv` "
    "in the profiles), then the epilogue; the copy and the epilogue are passes of their own "
    "(`kN.gemm`). Where ORT wins it is on those convolutions: small maps and few channels, where "
    "the copy and the per-plane set-up weigh most. `bench/conv_layers.py` times such shapes one "
    "layer at a time.")
WHY_ORT = {
    "cactus": "`episode` on 2 threads (on 1 thread nnc is ahead since its convolutions take 16-float "
              "vectors on this Zen 5 and its 7x7 maps run flat, docs/architecture.md): eight 3x3 "
              "convolutions of 16 channels over 10 and 15 images, each with its max pooling, are jobs "
              "of 10-60 us; split between the two vCPUs, which sat far apart in this session (a cache "
              "line's round trip of 400-1500 ns), they gain nothing: about a fifth of nnc's 2-thread samples "
              "are its pool's threads waiting (`worker`, `run_split`), and nnc's 2-thread time equals its "
              "1-thread time (243 against 244 us in the table's run; above it in others), where ORT's falls "
              "from 282 to 159 us (NCHWc Conv + MaxPool); dealing each thread the same images in every "
              "kernel (the pool's blocks, December 2026) changed nothing measurable here. What would close "
              "it: the encoder's kernels over the same images as one parallel region (each image's "
              "blocks on one thread, no barrier per kernel).",
    "fcn": "on 2 threads (on 1 thread nnc is ahead since its 16-channel 3x3 convolutions on 64x64 maps "
           "run direct: Winograd's transforms there missed L2), with the vCPUs far apart: at batch 1 nnc's "
           "2-thread time equals its 1-thread one (320 against 318 us in the December 2026 run, vCPUs "
           "150-462 ns apart, where ORT's falls from 367 to 225; so_timer in turns, 451 ns apart: 337-344 "
           "against 332-350 us, the build before that session's fused epilogues the same); at batch 8 nnc's "
           "second thread gains 1.2-1.9x from run to run, ORT's 1.56-1.8x. Its 22 kernels each split the "
           "images (or at batch 1 a kernel's channels) between the threads with a barrier at the end; its "
           "three ConvTranspose layers stay in NCHW on both sides. What would close it: consecutive "
           "kernels over the same images as one parallel region.",
    "groupnorm": "with BatchNorm (`groupnorm_bn`) at batch 8 on 2 threads (on 1 thread nnc is ahead): "
                 "in the table's run nnc's second thread gained nothing (1.93 ms on 1 thread, 1.97 on 2) "
                 "where ORT's gains 1.9x (2.77 -> 1.43 ms), with the vCPUs far apart (a cache line's round "
                 "trip of 487 ns; 0.5-13 us later in the session). Timed in turns by so_timer (its vCPUs' state "
                 "not recorded), 2 threads take 1.17-1.37 ms since the pool deals each thread the same "
                 "images in every kernel (1.56-1.92 ms before: a thread read on its core what the other had "
                 "written; through the Python package 1.41-1.65 against 1.78-1.89). In nnc's 2-thread "
                 "profile a tenth of the samples are the pool's threads waiting at the end of a kernel "
                 "(`run_split`, `worker`), and the Winograd "
                 "transforms of the 16-channel 32x32 convolutions take as long as their products. ORT "
                 "folds every norm into its NCHWc convolution. With GroupNorm, LayerNorm or InstanceNorm the export writes each norm "
                 "as Reshape + InstanceNormalization + Mul + Add, which ORT runs outside NCHWc (a "
                 "ReorderOutput and a ReorderInput around each), and nnc is faster on every row.",
    "infogan": "`discriminate` and `mi_lower_bound` (which runs it) at batch 8: the 4x4 stride-2 "
               "convolution 8 -> 16 channels from 14x14 to 7x7 (`discriminate.k1`) takes half of "
               "nnc's samples, two thirds of that in its copy and epilogue pass (the stride-2 "
               "phase split of the padded input) and one third in the convolution itself; ORT runs "
               "it as an NCHWc Conv. A tie within 5 % on 1 thread.",
    "mask_rcnn": "`masks` at K = 48 on 2 threads only (1.44x on 1 thread): its four 3x3 "
                 "convolutions 32 -> 32 on 14x14 per box run as Winograd F(2x2, 3x3), the products "
                 "(`k4.gemm.conv`, 23 %) and the transforms (`k4.gemm`, 18 %); nnc's 2-thread time "
                 "was above its 1-thread time in this run (7.2 ms against 5.7), measured while the "
                 "vCPUs sat far apart.",
}


def far_text(row):
    """'; vCPUs far apart: 310-350 ns' for a row measured while they were, else ''."""
    return f"; vCPUs far apart: {vcpu_cell(row)} ns" if row.vcpu_ns and max(row.vcpu_ns) > FAR_NS else ""


def md_why_ort(res, misses):
    """The rows below ONNX Runtime, and per model why (WHY_ORT) and the ops ORT runs."""
    lost = [row for _, row, req in misses if req.baseline == "ort"]
    if not lost:
        return []
    md = ["", "## Why ONNX Runtime is faster", "",
          "Rows below 1x: " + ", ".join(f"{r.model}.{r.entry} batch {batch_label(r.model, r.batch)}, "
                                        f"{threads_text(r.threads)} ({fmt_x(r.speedup('ort'))}{far_text(r)})"
                                        for r in lost) + ".", "", WHY_ORT_COMMON, ""]
    for m in dict.fromkeys(r.model for r in lost):
        why = WHY_ORT.get(m) or WHY_ORT.get(MODELS[m][0]) or "not analysed yet: see its profile below."
        md.append(f"- **{m}**: {why}")
        for entry in dict.fromkeys(r.entry for r in lost if r.model == m):
            if res.ort_ops.get((m, entry)):
                md.append(f"  - `{entry}`: the graph ORT runs after its optimisations (`bench/ort_graph.c`): "
                          f"{res.ort_ops[(m, entry)]}")
    return md


def md_profiles(res):
    md = []
    if res.profiles:
        md += ["", "## Profiles of the worst miss of each model, and of its worst row against ONNX Runtime", "",
               f"`perf record -F 2000` of a process calling the nnc entry in a loop for "
               f"{ARGS.profile_seconds:g} s (nnc side only, the threads of the missed row); "
               "`perf report --no-children --sort dso,sym`, entries above 1.5 %. Kernel symbols "
               "are `<entry>.k<N>.<kind>`; the IR ops of the hottest ones follow, from "
               "`nnc dump --stage=fused` of the same model."]
        for row, prof, hot in res.profiles:
            md += ["", f"### {row.model}.{row.entry}, batch {batch_label(row.model, row.batch)}, "
                       f"{threads_text(row.threads)} ({speedups_text(row)})", "", "```"] + prof + ["```"]
            if hot:
                md += ["", "```"] + hot + ["```"]
    if res.profile_note:
        md += ["", f"No profile: {res.profile_note}."]
    return md


def write_markdown(path, res, models, load, misses, elapsed_s, plot_path):
    plot_name = None
    if plot_path:
        plot_name = os.path.relpath(plot_path, os.path.dirname(os.path.abspath(path)))
    md = md_header(res, load, elapsed_s) + md_how_to_read(res) + md_sections(res, models, misses, plot_name)
    # its own section of the file: the zoo's, the layers' and the compile table's stay
    md_section.write(path, "bench.py", md)


# --------------------------------------------------------------------------------------------

def selected_models():
    models = [m for m in ARGS.models.split(",") if m]
    for m in models:
        if m not in MODELS:
            sys.exit(f"bench.py: unknown model {m!r} (known: {', '.join(MODELS)})")
    return models


def compiler_path():
    """The nnc compiler to use (None with --torch-only); exits with a clear message when missing."""
    if ARGS.torch_only:
        return None
    nnc = os.path.abspath(ARGS.nnc)
    if not (os.path.isfile(nnc) and os.access(nnc, os.X_OK)):
        sys.exit(f"bench.py: the compiler {nnc} does not exist; build nnc first (see README.md), "
                 f"pass --nnc PATH, or use --torch-only to time PyTorch alone")
    if not check_abi(verbose=False):
        sys.exit("bench.py: the ctypes mirror of runtime/include/nnc_model.h is out of date")
    return nnc


def record_ort_graphs(res, misses):
    """The ops of the graph ORT runs (ort_side.graph_ops) for every entry with a row below it."""
    for _, row, req in misses:
        key = (row.model, row.entry)
        if req.baseline == "ort" and key not in res.ort_ops and key in res.ort_onnx:
            res.ort_ops[key] = ort_side.graph_ops(res.ort, res.ort_onnx[key])


def run_benchmarks(res, models):
    """Every model, the copy bandwidth, then the perf profiles; returns the misses."""
    import torch
    with tempfile.TemporaryDirectory(prefix="nnc-bench-") as tmp, torch.no_grad():
        global HELPER
        helper = HELPER = build_helper(tmp)
        res.ort, res.ort_note = (None, "--no-ort") if ARGS.no_ort else ort_side.setup(ARGS.ort_dir, tmp)
        for model in models:
            bench_model(res, model, tmp, helper)
        if helper and not ARGS.no_conv:
            res.copy_bw = copy_gbs(helper)
        misses = find_misses(res.rows)
        record_ort_graphs(res, misses)
        if misses and not ARGS.no_profile and not ARGS.torch_only:
            profile_worst_misses(res, misses, tmp)
    return misses


def main():
    if ARGS.loop:
        loop_main(*ARGS.loop)
        return
    models = selected_models()
    if ARGS.check_abi:
        sys.exit(0 if check_abi(verbose=True) else 1)
    nnc = compiler_path()

    import torch
    cpu, ncpu, avx512 = machine_info()
    print(f"# {cpu}, nproc {ncpu}, AVX-512 {'yes' if avx512 else 'no'}, threads "
          f"{','.join(map(str, ARGS.threads))}, torch {torch.__version__}")
    start = cpu_snapshot()
    res = Results(nnc=nnc)
    misses = run_benchmarks(res, models)
    end = cpu_snapshot()
    elapsed_s = end[0] - start[0]
    load = load_text(start, end)

    print_report(res, models, load, misses, elapsed_s)
    plot_path = ARGS.plot if ARGS.plot and write_plot(res, models, ARGS.plot) else None
    if plot_path:
        print(f"wrote {plot_path}")
    if ARGS.markdown:
        write_markdown(ARGS.markdown, res, models, load, misses, elapsed_s, plot_path)
    for m in res.mismatches:
        print(f"warning: outputs disagree: {m}", file=sys.stderr)
    if res.failures:
        print(f"{len(res.failures)} failure(s)", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
