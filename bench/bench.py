#!/usr/bin/python3
"""nnc vs PyTorch eager: latency of every entry of the paper models, in one process.

For each model it compiles examples/<m>.nn with the weights embedded

    build/nnc examples/<m>.nn -o <tmp>/<m>.so --weights tests/golden/<m>/weights.safetensors

(best of 3 wall-clock compile times), loads the .so with the Python package (python/nnc, which
calls every entry generically through the ABI of runtime/include/nnc_model.h), and times it
against the PyTorch reference
module (tests/golden/<m>/reference.py) loaded with the same weights, on the same inputs, with
the same thread count.  Outputs of the two are compared (max |nnc - torch|) as a sanity check.

    /usr/bin/python3 bench/bench.py [--threads T] [--markdown FILE] [--models realnvp,cfr]
                                    [--batches 1,4096] [--torch-only] [--check-abi]

The nnc time includes the ctypes call overhead (printed separately, about a microsecond).
"""
import argparse
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOLDEN = os.path.join(ROOT, "tests", "golden")
DEFAULT_MODELS = ["realnvp", "cfr"]


def parse_args(argv):
    p = argparse.ArgumentParser(description="Benchmark nnc-compiled models against PyTorch eager.")
    p.add_argument("--threads", type=int, default=1,
                   help="threads for both nnc (OPENBLAS_NUM_THREADS) and torch (default 1)")
    p.add_argument("--models", default=",".join(DEFAULT_MODELS),
                   help="comma-separated models (default: %(default)s)")
    p.add_argument("--batches", default="1,4096", help="comma-separated batch sizes (default: %(default)s)")
    p.add_argument("--nnc", default=os.path.join(ROOT, "build", "nnc"), help="path to the nnc compiler")
    p.add_argument("--markdown", metavar="FILE", help="also write the results as a markdown table")
    p.add_argument("--min-time", type=float, default=0.5,
                   help="seconds of timed calls per measurement (with >= --min-reps) (default 0.5)")
    p.add_argument("--min-reps", type=int, default=200, help="repetitions per measurement (default 200)")
    p.add_argument("--max-time", type=float, default=5.0,
                   help="stop a slow measurement after this many seconds once it has 10 reps (default 5)")
    p.add_argument("--torch-only", action="store_true",
                   help="time only the PyTorch side (no compiler needed)")
    p.add_argument("--check-abi", action="store_true",
                   help="only check the ctypes mirror of nnc_model.h against the C compiler's layout")
    return p.parse_args(argv)


ARGS = parse_args(sys.argv[1:])
# Thread counts must be in the environment before OpenBLAS (pulled in by numpy, torch, or the
# generated .so) is loaded, i.e. before the imports below.
os.environ["OPENBLAS_NUM_THREADS"] = str(ARGS.threads)
os.environ["OMP_NUM_THREADS"] = str(ARGS.threads)

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


def compile_model(nnc, model, outdir, reps=3):
    """Compile examples/<model>.nn with embedded weights; returns (so_path, best ms)."""
    so = os.path.join(outdir, f"{model}.so")
    cmd = [nnc, os.path.join("examples", f"{model}.nn"), "-o", so,
           "--weights", os.path.join("tests", "golden", model, "weights.safetensors")]
    best = None
    for _ in range(reps):
        t0 = time.perf_counter()
        r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        dt = (time.perf_counter() - t0) * 1e3
        if r.returncode != 0:
            raise RuntimeError(f"compile failed (exit {r.returncode}): {shlex.join(cmd)}\n{r.stderr.strip()}")
        best = dt if best is None else min(best, dt)
    return so, best


# --------------------------------------------------------------------------------------------
# the torch side and the inputs

def load_reference(model):
    path = os.path.join(GOLDEN, model, "reference.py")
    spec = importlib.util.spec_from_file_location(f"nnc_reference_{model}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def load_torch_model(model, ref):
    sys.path.insert(0, GOLDEN)
    import nnc_ref
    m = getattr(ref, {"realnvp": "RealNVP", "cfr": "CFR"}[model])()
    nnc_ref.load_state_dict(m, os.path.join(GOLDEN, model, "weights.safetensors"))
    return m.float().eval()


def torch_entries(model, m):
    """entry -> function(inputs as torch tensors by name) -> {output name: tensor}."""
    if model == "realnvp":
        return {
            "forward": lambda a: dict(zip(("z", "logdet"), m(a["x"]))),
            "inverse": lambda a: {"x": m.inverse(a["z"])},
            "log_prob": lambda a: {"lp": m.log_prob(a["x"])},
        }
    if model == "cfr":
        return {
            "predict": lambda a: dict(zip(("y0", "y1", "ite"), m.predict(a["x"]))),
            "imbalance": lambda a: {"imb": m.imbalance(a["x"], a["t"])},
        }
    raise KeyError(model)


def make_inputs(model, ref, m, entry, batch):
    """Inputs (name -> float32 numpy array) for an entry at a batch size, deterministic."""
    import torch
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
    raise KeyError(model)


# --------------------------------------------------------------------------------------------
# timing

def time_call(fn, min_reps, min_time, max_time):
    """Median latency in microseconds, over an adaptive number of repetitions."""
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


def max_abs_diff(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return float("inf")
    both_nan = np.isnan(a) & np.isnan(b)
    d = np.atleast_1d(np.abs(a - b))  # 0-d outputs (cfr imbalance) index too
    d[np.atleast_1d(both_nan)] = 0.0
    return float(np.max(d)) if d.size else 0.0


def machine_info():
    cpu = platform.processor() or platform.machine()
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return cpu, os.cpu_count()


def fmt_us(v):
    return "-" if v is None else (f"{v:.1f}" if v < 1000 else f"{v:,.0f}")


def main():
    models = [m for m in ARGS.models.split(",") if m]
    batches = [int(b) for b in ARGS.batches.split(",") if b]
    for m in models:
        if m not in DEFAULT_MODELS:
            sys.exit(f"bench.py: unknown model {m!r} (known: {', '.join(DEFAULT_MODELS)})")

    if ARGS.check_abi:
        sys.exit(0 if check_abi(verbose=True) else 1)

    nnc = os.path.abspath(ARGS.nnc)
    if not ARGS.torch_only:
        if not (os.path.isfile(nnc) and os.access(nnc, os.X_OK)):
            sys.exit(f"bench.py: the compiler {nnc} does not exist; build nnc first (see README.md), "
                     f"pass --nnc PATH, or use --torch-only to time PyTorch alone")
        if not check_abi(verbose=False):
            sys.exit("bench.py: the ctypes mirror of runtime/include/nnc_model.h is out of date")

    import torch
    torch.set_num_threads(ARGS.threads)
    cpu, ncpu = machine_info()
    print(f"# {cpu}, nproc {ncpu}, threads {ARGS.threads}, torch {torch.__version__}")

    rows, compile_ms, failures, mismatches = [], {}, [], []
    overhead_us = None
    with tempfile.TemporaryDirectory(prefix="nnc-bench-") as tmp, torch.no_grad():
        for model in models:
            ref = load_reference(model)
            tm = load_torch_model(model, ref)
            tentries = torch_entries(model, tm)
            lib = None
            if not ARGS.torch_only:
                try:
                    so, compile_ms[model] = compile_model(nnc, model, tmp)
                    lib = nnc_py.load(so)
                    if overhead_us is None:  # cost of a trivial ctypes call into the .so
                        f = ctypes.CDLL(so).nnc_model_info
                        f.restype, f.argtypes = ctypes.c_void_p, []
                        overhead_us, _ = time_call(f, 1000, 0.1, 1.0)
                except Exception as e:  # report, go on with the other models
                    failures.append(f"{model}: {e}")
                    print(f"error: {model}: {e}", file=sys.stderr)
            for entry, tfn in tentries.items():
                for batch in batches:
                    inputs = make_inputs(model, ref, tm, entry, batch)
                    tin = {k: torch.from_numpy(v) for k, v in inputs.items()}
                    tout = {k: v.numpy() for k, v in tfn(tin).items()}
                    t_us, _ = time_call(lambda: tfn(tin), ARGS.min_reps, ARGS.min_time, ARGS.max_time)
                    n_us, diff = None, None
                    if lib is not None:
                        try:
                            call, nout = bind(lib, entry, inputs)
                            call()
                            diff = max(max_abs_diff(nout[k], tout[k]) for k in tout)
                            scale = max(float(np.nanmax(np.abs(v))) if v.size and not np.isnan(v).all() else 0.0
                                        for v in tout.values())
                            if not diff <= 1e-4 + 1e-3 * scale:
                                mismatches.append(f"{model}.{entry}[{batch}]: max |nnc - torch| = {diff:.3g} "
                                                  f"(outputs up to {scale:.3g})")
                            n_us, _ = time_call(call, ARGS.min_reps, ARGS.min_time, ARGS.max_time)
                        except Exception as e:
                            failures.append(f"{model}.{entry}[{batch}]: {e}")
                            print(f"error: {model}.{entry} batch {batch}: {e}", file=sys.stderr)
                    rows.append((model, entry, batch, n_us, t_us, diff))
                    print(f"  {model}.{entry} batch {batch}: nnc {fmt_us(n_us)} us, torch {fmt_us(t_us)} us",
                          file=sys.stderr, flush=True)
            if lib is not None:
                lib.close()

    header = ["model", "entry", "batch", "nnc µs", "torch µs", "speed-up", "max |Δ|"]
    table = []
    for model, entry, batch, n_us, t_us, diff in rows:
        sp = f"{t_us / n_us:.2f}x" if n_us else "-"
        table.append([model, entry, str(batch), fmt_us(n_us), fmt_us(t_us), sp,
                      "-" if diff is None else f"{diff:.2e}"])
    widths = [max(len(h), *(len(r[i]) for r in table)) if table else len(h) for i, h in enumerate(header)]
    right = [False, False, True, True, True, True, True]

    def line(cells):
        return "  ".join(c.rjust(w) if r else c.ljust(w) for c, w, r in zip(cells, widths, right))

    print(line(header))
    print("  ".join("-" * w for w in widths))
    for r in table:
        print(line(r))
    print()
    for model in models:
        print(f"compile {model}: " + (f"{compile_ms[model]:.0f} ms (best of 3)" if model in compile_ms else "-"))
    if overhead_us is not None:
        print(f"ctypes call overhead (included in nnc µs): {overhead_us:.2f} µs")

    if ARGS.markdown:
        me = os.path.abspath(__file__)
        if os.path.abspath(os.getcwd()) == ROOT:
            me = os.path.relpath(me, ROOT)
        cmd = shlex.join([sys.executable, me] + sys.argv[1:])
        md = ["# nnc vs PyTorch eager", "",
              f"Command: `{cmd}`", "",
              f"Machine: {cpu}, nproc {ncpu}; threads {ARGS.threads} (OPENBLAS_NUM_THREADS and "
              f"torch.set_num_threads); torch {torch.__version__}, numpy {np.__version__}, "
              f"Python {platform.python_version()}", "",
              "Median latency per call; the nnc time includes the ctypes call overhead"
              + (f" (≈{overhead_us:.2f} µs)" if overhead_us is not None else "") +
              "; max |Δ| = largest absolute difference between the nnc and torch outputs.", "",
              *(["PyTorch side only (--torch-only).", ""] if ARGS.torch_only else []),
              "| " + " | ".join(h.replace("|", "\\|") for h in header) + " |",
              "|" + "|".join("---" if not r else "---:" for r in right) + "|"]
        md += ["| " + " | ".join(r) + " |" for r in table]
        md += ["", "| model | compile ms (best of 3) |", "|---|---:|"]
        md += [f"| {m} | " + (f"{compile_ms[m]:.0f}" if m in compile_ms else "-") + " |" for m in models]
        if failures:
            md += ["", "Failures:", ""] + [f"- {f}" for f in failures]
        if mismatches:
            md += ["", "Outputs that disagree beyond 1e-4 + 1e-3·max|torch|:", ""] + [f"- {m}" for m in mismatches]
        with open(ARGS.markdown, "w") as f:
            f.write("\n".join(md) + "\n")
        print(f"wrote {ARGS.markdown}")

    for m in mismatches:
        print(f"warning: outputs disagree: {m}", file=sys.stderr)
    if failures:
        print(f"{len(failures)} failure(s)", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
