"""ONNX Runtime, the peer nnc is measured against, installed and driven as
/work/shared/ort-bench/README.md says; shared by bench.py, zoo_bench.py and conv_layers.py.

The onnxruntime-node npm package (ORT_VERSION, `npm install --ignore-scripts` into --ort-dir,
$TMPDIR/ort by default) gives its CPU library; /work/shared/ort-bench/ort_bench.c (compiled on
the fly) times a model in a child process: ORT_ENABLE_ALL, sequential execution, the CPU
provider, intra = inter op threads = the given count, each timed run one Run call; its JSON
(median_us, min_us, ...) is returned as a dict.  bench/ort_graph.c writes the graph ORT runs
after its optimisations (graph_ops lists its op types).  When ORT cannot be installed, setup
says why and the callers show n/a."""
import json
import os
import shlex
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))
ORT_BENCH_DIR = "/work/shared/ort-bench"
ORT_VERSION = "1.30.0"


def default_dir():
    return os.path.join(os.environ.get("TMPDIR", "/tmp"), "ort")


def add_options(parser):
    """--ort-dir and --no-ort, the same in every benchmark script."""
    parser.add_argument("--ort-dir", default=default_dir(),
                        help="where ONNX Runtime is (or is installed) from npm (default: %(default)s)")
    parser.add_argument("--no-ort", action="store_true", help="skip ONNX Runtime")


def library_path(ort_dir):
    return os.path.join(ort_dir, "node_modules", "onnxruntime-node", "bin", "napi-v6", "linux", "x64",
                        "libonnxruntime.so.1")


def install(ort_dir):
    """npm install of onnxruntime-node (its install script fetches GPU binaries: skipped)."""
    os.makedirs(ort_dir, exist_ok=True)
    if not os.path.exists(os.path.join(ort_dir, "package.json")):
        subprocess.run(["npm", "init", "-y"], cwd=ort_dir, check=True, capture_output=True)
    subprocess.run(["npm", "install", "--ignore-scripts", f"onnxruntime-node@{ORT_VERSION}"], cwd=ort_dir,
                   check=True, capture_output=True, timeout=600)


def build_tools(tmp):
    """ort_bench and ort_graph compiled into tmp; returns ort_bench's path."""
    exe = os.path.join(tmp, "ort_bench")
    for src, out in ((os.path.join(ORT_BENCH_DIR, "ort_bench.c"), exe),
                     (os.path.join(HERE, "ort_graph.c"), os.path.join(tmp, "ort_graph"))):
        subprocess.run(["cc", "-O2", "-std=c11", "-Wall", "-I", os.path.join(ORT_BENCH_DIR, "include"),
                        src, "-o", out, "-ldl", "-lm"], check=True, capture_output=True)
    return exe


def error_text(e, limit=200):
    """A failed step's message: a command's stderr when it has one."""
    text = (getattr(e, "stderr", None) or b"")
    text = text.decode(errors="replace") if isinstance(text, bytes) else text
    text = " ".join((text.strip() or str(e)).split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def setup(ort_dir, tmp):
    """((ort_bench executable, libonnxruntime path), None), or (None, the reason ORT is n/a)."""
    lib = library_path(ort_dir)
    try:
        if not os.path.exists(lib):
            install(ort_dir)
        exe = build_tools(tmp)
    except (OSError, subprocess.SubprocessError) as e:
        return None, f"ONNX Runtime could not be installed or its driver built: {error_text(e)}"
    return ((exe, lib), None) if os.path.exists(lib) else (None, f"no {lib} after npm install")


def run(ort, onnx, inputs, threads, runs, min_time, out_dir=None, warmup=3, max_runs=100000):
    """ort_bench's JSON (µs) on `inputs` ({graph input name: .npy path}); with out_dir, the
    outputs are also written there (outputs())."""
    exe, lib = ort
    cmd = [exe, "--lib", lib, "--threads", str(threads), "--warmup", str(warmup), "--min-runs", str(runs),
           "--min-time", str(min_time), "--max-runs", str(max(runs, max_runs))]
    if out_dir:
        cmd += ["--out-dir", out_dir]
    r = subprocess.run(cmd + [onnx] + [f"{n}={p}" for n, p in inputs.items()], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{shlex.join(cmd)}: {r.stderr.strip()[-300:]}")
    return json.loads(r.stdout)


def outputs(out_dir, names):
    """The outputs a run with out_dir wrote, {name: array}, in the order of `names`."""
    import numpy as np
    return {n: np.load(os.path.join(out_dir, f"out_{n}.npy")) for n in names}


def graph_inputs(onnx):
    """The names of the graph's inputs (the exporter leaves out those the graph does not use)."""
    import onnx as onnx_py
    g = onnx_py.load(onnx, load_external_data=False).graph
    weights = {t.name for t in g.initializer}
    return [i.name for i in g.input if i.name not in weights]


def graph_ops(ort, onnx):
    """The op types of the graph ONNX Runtime runs (after its optimisations; bench/ort_graph.c),
    as "Op xN" text, most frequent first; None when unavailable."""
    from collections import Counter
    out = os.path.splitext(onnx)[0] + ".ort.onnx"
    r = subprocess.run([os.path.join(os.path.dirname(ort[0]), "ort_graph"), ort[1], onnx, out],
                       capture_output=True, text=True)
    if r.returncode != 0:
        return None
    try:
        import onnx as onnx_py
    except ImportError:
        return None
    g = onnx_py.load(out).graph
    n = Counter(f"{x.op_type}" + (f" ({x.domain})" if x.domain else "") for x in g.node)
    return ", ".join(f"{k} x{v}" for k, v in n.most_common())
