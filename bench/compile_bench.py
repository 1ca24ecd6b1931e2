#!/usr/bin/python3
"""Compile times of nnc (issue 20, "Compile in a blink"): cold (an empty compile cache) and
warm (every compile a cache hit), ahead of time and in process.

    models   every examples/<m>.nn with tests/golden/<m>/weights.safetensors (embedded, as
             scripts/run_examples.sh compiles them); torchvision resnet18
             (tests/models/resnet18.nn) and resnet50 (bench/resnet50.nn), both -D H=224 -D W=224,
             without weights (their libraries load a weights file when opened)
    AOT      `nnc M.nn -o M.so [--weights W]`, wall clock of the process
    JIT      nnc_model_compile(M.nn, W) in this process (libnnc.so, as nnc.compile calls it),
             wall clock
    cold     NNC_CACHE_DIR a new empty directory for each compile
    warm     the same compile again, its cache full
Each figure is the best of --reps runs.  --baseline NNC adds a column: the AOT compile of
another build of nnc (one without the cache: the code before it).  The load average before
and after is printed (other processes on the machine slow compiles down).

    /usr/bin/python3 bench/compile_bench.py [--models fcn,resnet18] [--reps 3]
                                            [--baseline OTHER/build/nnc] [--markdown docs/benchmarks.md]

--markdown replaces this script's section of the file (between its markers; appended when
absent) and leaves the rest as it is.
"""
import argparse
import ctypes
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time

import md_section

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BIG = {"resnet18": "tests/models/resnet18.nn", "resnet50": "bench/resnet50.nn"}


# Where the time goes (measured on fcn, the slowest example, when this was written; see
# docs/architecture.md): kept here so that the generated section explains its misses.
WHERE = [
    "Where the time goes.  A warm compile is a hit of the build cache (a key over the "
    "compile's inputs: [cli.md](cli.md#the-compile-cache-nnc-cache)): the `nnc` command hashes "
    "the model, the weights and the support library, checks the includes, reads the library's "
    "entry (its payload hash checked) and writes the library, without starting the compiler "
    "(`nnc-compiler`, which loads LLVM and OpenBLAS: 25-65 ms on these VMs); the larger rows "
    "are the ones with megabytes of embedded weights (fcn 2.5 MB).  JIT warm is the same key "
    "and the object code loaded into a new JIT.  A cold compile is ~85 % LLVM's optimiser and "
    "code generator, on both cores (`split.c`), then the link; reaching 300 ms would take a "
    "cheaper pipeline than `default<O3>`, whose effect on the kernels' speed could not be "
    "measured reliably on this shared VM."]


def parse_args(argv):
    p = argparse.ArgumentParser(description="nnc compile times, cold and warm")
    p.add_argument("--nnc", default=os.path.join(ROOT, "build", "nnc"))
    p.add_argument("--lib", default=os.environ.get("NNC_LIBRARY") or os.path.join(ROOT, "build", "libnnc.so"))
    p.add_argument("--baseline", help="another nnc build to time cold AOT compiles with")
    p.add_argument("--baseline-name", default="before the cache",
                   help="what the baseline is, for the table's heading")
    p.add_argument("--models", default="", help="comma-separated (default: all)")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--markdown")
    return p.parse_args(argv)


def models():
    out = {}
    for nn in sorted(glob.glob(os.path.join(ROOT, "examples", "*.nn"))):
        m = os.path.splitext(os.path.basename(nn))[0]
        w = os.path.join(ROOT, "tests", "golden", m, "weights.safetensors")
        if os.path.exists(w):
            out[m] = (nn, w, [])
    for m, rel in BIG.items():
        out[m] = (os.path.join(ROOT, rel), None, ["-D", "H=224", "-D", "W=224"])
    return out


def run_aot(nnc, nn, weights, defines, cache_dir, out_dir):
    env = dict(os.environ, NNC_CACHE_DIR=cache_dir)
    env.pop("NNC_CACHE", None)
    cmd = [nnc, nn, "-o", os.path.join(out_dir, "m.so"), *defines] + (["--weights", weights] if weights else [])
    t = time.perf_counter()
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    dt = time.perf_counter() - t
    if r.returncode:
        sys.exit(f"compile_bench.py: {' '.join(cmd)} failed:\n{r.stderr}")
    return dt


def run_jit(h, nn, weights, defines, cache_dir):
    """nnc_model_compile_defines through the Python package's ctypes handle (a model with
    parameters compiles without weights too: nothing is opened)."""
    from nnc import _lib
    os.environ["NNC_CACHE_DIR"] = cache_dir
    os.environ.pop("NNC_CACHE", None)
    defs = [d for d in defines[1::2]]
    arr = (ctypes.c_char_p * max(len(defs), 1))(*[d.encode() for d in defs])
    model, msg = ctypes.c_void_p(), ctypes.c_void_p()
    t = time.perf_counter()
    rc = h.nnc_model_compile_defines(nn.encode(), weights.encode() if weights else None, arr,
                                     len(defs), ctypes.byref(model), ctypes.byref(msg))
    dt = time.perf_counter() - t
    if rc:
        sys.exit(f"compile_bench.py: {nn}: {_lib.take_message(h, msg)}")
    h.nnc_model_free(model)
    return dt


def time_model(args, nnc_mod, nn, w, defines, tmp):
    """Best-of-reps seconds: AOT cold, AOT warm, JIT cold, JIT warm, baseline AOT."""
    res = {}
    for rep in range(args.reps):
        for kind in ("aot", "jit"):
            cache = tempfile.mkdtemp(prefix=f"cache-{kind}-", dir=tmp)
            if kind == "aot":
                cold = run_aot(args.nnc, nn, w, defines, cache, tmp)
                warm = min(run_aot(args.nnc, nn, w, defines, cache, tmp) for _ in range(2))
            else:
                cold = run_jit(nnc_mod, nn, w, defines, cache)
                warm = min(run_jit(nnc_mod, nn, w, defines, cache) for _ in range(2))
            shutil.rmtree(cache)
            res[kind + "_cold"] = min(cold, res.get(kind + "_cold", 1e9))
            res[kind + "_warm"] = min(warm, res.get(kind + "_warm", 1e9))
        if args.baseline:
            cache = tempfile.mkdtemp(prefix="cache-base-", dir=tmp)
            res["base"] = min(run_aot(args.baseline, nn, w, defines, cache, tmp), res.get("base", 1e9))
            shutil.rmtree(cache)
    return res


def ms(s):
    return f"{s * 1e3:.0f}" if s < 10 else f"{s:.1f} s"


def commit():
    r = subprocess.run(["git", "-C", ROOT, "log", "-1", "--format=%h %s"], capture_output=True, text=True)
    return r.stdout.strip()[:72]


def targets(rows):
    """Issue 20's targets against the rows: warm <= 30 ms and cold <= 300 ms per example,
    cold <= 2 s for resnet50."""
    ex = [m for m in rows if m not in BIG]
    out = []
    for kind, name in (("aot", "AOT"), ("jit", "JIT")):
        for t, lim in (("warm", 0.030), ("cold", 0.300)):
            miss = [m for m in ex if rows[m][f"{kind}_{t}"] > lim]
            out.append(f"{name} {t} <= {lim * 1e3:.0f} ms: {len(ex) - len(miss)} of {len(ex)} examples"
                       + (f" (not {', '.join(miss)})" if miss else ""))
    if "resnet50" in rows:
        out.append(f"resnet50 cold <= 2 s: AOT {ms(rows['resnet50']['aot_cold'])} ms, "
                   f"JIT {ms(rows['resnet50']['jit_cold'])} ms (without weights)")
    return out


def llvm_linkage(nnc):
    """How the compiler the nnc command runs (nnc-compiler, beside it) links LLVM: "libLLVM.so",
    or "statically" (-DNNC_STATIC_LLVM=ON)."""
    compiler = os.path.join(os.path.dirname(nnc), "nnc-compiler")
    r = subprocess.run(["ldd", compiler if os.path.exists(compiler) else nnc], capture_output=True, text=True)
    return "libLLVM.so" if "libLLVM" in r.stdout else "statically (-DNNC_STATIC_LLVM=ON)"


def markdown(rows, args, load0, load1):
    base = bool(args.baseline)
    md = ["## Compile time", "",
          "Generated by `bench/compile_bench.py` (see its docstring): milliseconds, the best of "
          f"{args.reps} runs each; AOT is the `nnc FILE.nn -o FILE.so` process, JIT is "
          "`nnc_model_compile` (what `nnc.compile` runs) in a Python process; *cold* starts "
          "from an empty compile cache, *warm* finds everything in it "
          "([cli.md](cli.md#the-compile-cache-nnc-cache), "
          "[architecture.md](architecture.md#from-module-to-native-code-the-compile-cache-threads-the-pipelines)). "
          "The examples embed their golden weights; resnet18 and resnet50 (224×224) are "
          "compiled without weights.", "",
          f"    nproc {os.cpu_count()}, load average {load0[0]:.1f}/{load0[1]:.1f} at the start, "
          f"{load1[0]:.1f}/{load1[1]:.1f} at the end; commit {commit()}",
          f"    nnc-compiler linked with LLVM {llvm_linkage(args.nnc)}", ""]
    head = "| model |" + (f" AOT, {args.baseline_name} |" if base else "") + " AOT cold | AOT warm | JIT cold | JIT warm |"
    md += [head, "|---|" + ("---:|" if base else "") + "---:|---:|---:|---:|"]
    for m, r in rows.items():
        cells = ([ms(r["base"])] if base else []) + [ms(r[k]) for k in ("aot_cold", "aot_warm", "jit_cold", "jit_warm")]
        md.append(f"| {m} | " + " | ".join(cells) + " |")
    md += ["", "Issue 20's targets:", ""] + [f"- {t}" for t in targets(rows)] + [""] + WHERE
    return md + [""]


def main(argv):
    args = parse_args(argv)
    sys.path.insert(0, os.path.join(ROOT, "python"))
    os.environ["NNC_LIBRARY"] = args.lib
    from nnc import _lib
    nnc_mod = _lib.load(args.lib)
    selected = models()
    if args.models:
        unknown = [m for m in args.models.split(",") if m not in selected]
        if unknown:
            sys.exit(f"compile_bench.py: unknown model(s) {unknown} (known: {', '.join(selected)})")
        selected = {m: selected[m] for m in args.models.split(",")}
    load0 = os.getloadavg()
    rows = {}
    with tempfile.TemporaryDirectory(prefix="nnc-compile-bench-") as tmp:
        nn, w, defines = selected[next(iter(selected))]
        run_jit(nnc_mod, nn, w, defines, tmp)  # libnnc.so loaded before timing
        for m, (nn, w, defines) in selected.items():
            rows[m] = time_model(args, nnc_mod, nn, w, defines, tmp)
            r = rows[m]
            print(f"{m:16s}" + (f" before {ms(r['base']):>6}" if "base" in r else "") +
                  f"  AOT cold {ms(r['aot_cold']):>6} warm {ms(r['aot_warm']):>5}"
                  f"  JIT cold {ms(r['jit_cold']):>6} warm {ms(r['jit_warm']):>5}", flush=True)
    load1 = os.getloadavg()
    print(f"load average {load0[0]:.1f} -> {load1[0]:.1f}")
    if args.markdown:
        md_section.write(args.markdown, "compile_bench.py", markdown(rows, args, load0, load1))


if __name__ == "__main__":
    main(sys.argv[1:])
