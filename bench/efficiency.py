#!/usr/bin/python3
"""How close nnc's kernels come to the machine (issue 5's efficiency figures), in one run:

    GEMM-shaped   Linear + bias + ReLU (the GEMM with its epilogue) at model shapes, against
                  OpenBLAS cblas_sgemm alone on the same M, N, K      target >= 85 %
    elementwise   y = relu(x * 0.5 + a) over 16 Mi floats: bytes of an ideal kernel (two
                  reads, one write) per second, against a STREAM-like copy  target >= 70 %
    normalization GroupNorm(32, 64) + ReLU on [32, 64, 32, 32]: an ideal kernel reads x twice
                  (statistics, then normalize) and writes y once       target >= 70 %
  (convolutions against sgemm: bench/bench.py's "largest convolution" section, target 70 %)

Each one-op model is compiled by nnc to a .so (random weights embedded) and called through
the Python package with 1 and 2 threads; sgemm and the copy run in bench/sgemm_gflops.c
(compiled on the fly, OpenBLAS with the same threads; the copy is memcpy on one thread).

    /usr/bin/python3 bench/efficiency.py [--nnc build/nnc] [--threads 1,2] [--markdown FILE]
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "python"))

import numpy as np  # noqa: E402

import nnc  # noqa: E402

GEMM_SHAPES = [(4096, 64, 64), (4096, 256, 256), (1024, 1024, 1024), (16, 512, 160)]  # M, N, K
ELEMENTWISE_N = 16 << 20
GN_SHAPE = (32, 64, 32, 32)
TARGETS = {"gemm": 0.85, "elementwise": 0.70, "normalization": 0.70}


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--nnc", default=os.path.join(ROOT, "build", "nnc"), help="the nnc compiler")
    p.add_argument("--threads", default="1,2", help="thread counts (default %(default)s)")
    p.add_argument("--seconds", type=float, default=0.5, help="seconds per measurement")
    p.add_argument("--markdown", metavar="FILE", help="also write the table as markdown")
    return p.parse_args(argv)


def median_time(fn, seconds):
    """Median seconds of fn() over about `seconds` of calls (at least 5, after 2 warm-ups)."""
    fn()
    fn()
    times, start = [], time.perf_counter()
    while len(times) < 5 or time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def compile_model(args, tmp, name, source, weights):
    nn, so = os.path.join(tmp, name + ".nn"), os.path.join(tmp, name + ".so")
    with open(nn, "w") as f:
        f.write(source)
    cmd = [args.nnc, nn, "-o", so]
    if weights:
        w = os.path.join(tmp, name + ".safetensors")
        nnc.save_safetensors(weights, w)
        cmd += ["--weights", w]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return so


def helper(tmp):
    exe = os.path.join(tmp, "sgemm_gflops")
    subprocess.run(["cc", "-O2", os.path.join(ROOT, "bench", "sgemm_gflops.c"), "-o", exe, "-lopenblas"],
                   check=True)
    return exe


def run_helper(exe, threads, *argv):
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads))
    out = subprocess.run([exe, *map(str, argv)], check=True, capture_output=True, text=True, env=env)
    return [float(x) for x in out.stdout.split()]


def timed(model, threads, seconds, **inputs):
    """Median seconds of one call of the model's entry f on `inputs` with `threads` threads."""
    model.threads = threads
    return median_time(model.f.bind(**inputs), seconds)


def gemm_rows(args, tmp, exe, threads, rng):
    rows = []
    for m, n, k in GEMM_SHAPES:
        src = (f"l = Linear({k}, {n})\n"
               f"export f(x: f32[M, {k}]) -> (y: f32[M, {n}]) {{\n  y = relu(l(x))\n}}\n")
        w = {"weight": rng.standard_normal((n, k), dtype=np.float32),
             "bias": rng.standard_normal(n, dtype=np.float32)}
        so = compile_model(args, tmp, f"gemm_{m}_{n}_{k}", src, {"l." + a: v for a, v in w.items()})
        with nnc.load(so) as model:
            x = rng.standard_normal((m, k), dtype=np.float32)
            for t in threads:
                ours = 2.0 * m * n * k / timed(model, t, args.seconds, x=x) * 1e-9
                ref = run_helper(exe, t, "sgemm", m, n, k, args.seconds)[4]
                rows.append(("gemm", f"Linear+ReLU M={m} N={n} K={k}", t, ours, ref, "GFLOP/s"))
    return rows


def bandwidth_rows(args, tmp, exe, threads, rng):
    copy = run_helper(exe, 1, "copy", 64, args.seconds)[2]
    rows = []
    n = ELEMENTWISE_N
    src = f"export f(x: f32[{n}], a: f32[{n}]) -> (y: f32[{n}]) {{\n  y = relu(x * 0.5 + a)\n}}\n"
    with nnc.load(compile_model(args, tmp, "elementwise", src, None)) as model:
        x, a = rng.standard_normal(n, dtype=np.float32), rng.standard_normal(n, dtype=np.float32)
        for t in threads:
            gbs = 3 * 4 * n / timed(model, t, args.seconds, x=x, a=a) * 1e-9
            rows.append(("elementwise", f"relu(x * 0.5 + a), {n >> 20} Mi floats", t, gbs, copy, "GB/s"))
    b, c, h, w = GN_SHAPE
    src = (f"g = GroupNorm(32, {c})\n"
           f"export f(x: f32[{b}, {c}, {h}, {w}]) -> (y: f32[{b}, {c}, {h}, {w}]) {{\n  y = relu(g(x))\n}}\n")
    weights = {"g.weight": rng.standard_normal(c, dtype=np.float32), "g.bias": rng.standard_normal(c, dtype=np.float32)}
    with nnc.load(compile_model(args, tmp, "groupnorm", src, weights)) as model:
        x = rng.standard_normal(GN_SHAPE, dtype=np.float32)
        for t in threads:
            gbs = 3 * 4 * x.size / timed(model, t, args.seconds, x=x) * 1e-9
            rows.append(("normalization", f"GroupNorm(32, {c}) + ReLU on {list(GN_SHAPE)}", t, gbs, copy, "GB/s"))
    return rows


NOTE = ("A Linear layer whose weight matrix is at most 1 MiB (the first, second and fourth rows) runs on "
        "nnc's own register-tiled kernel (row tiles, docs/architecture.md), not on OpenBLAS: its "
        "transposed weights are made once, and its row tiles split among the pool's threads. The "
        "1024x1024 product calls OpenBLAS's sgemm, which gets the pool's threads for a product of at "
        "least 8 MFLOP (`nnc_rt_sgemm`, runtime/support/pool.h): OpenBLAS's threads woken for smaller "
        "ones cost the models more than they saved (fcn at batch 1 on 2 threads: 0.54 ms with the "
        "threshold, 0.59-1.0 ms without, before row tiles).")


def table(rows):
    lines = ["| kind | kernel | threads | nnc | reference | unit | efficiency | target |",
             "|---|---|---:|---:|---:|---|---:|---|"]
    for kind, what, t, ours, ref, unit in rows:
        eff, target = ours / ref, TARGETS[kind]
        verdict = "ok" if eff >= target else "MISSED"
        lines.append(f"| {kind} | {what} | {t} | {ours:.1f} | {ref:.1f} | {unit} | {eff:.0%} | "
                     f"≥{target:.0%} {verdict} |")
    return "\n".join(lines)


def main():
    args = parse_args(sys.argv[1:])
    threads = [int(t) for t in args.threads.split(",")]
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        exe = helper(tmp)
        rows = gemm_rows(args, tmp, exe, threads, rng) + bandwidth_rows(args, tmp, exe, threads, rng)
    text = table(rows)
    print(text)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write("# Kernel efficiency\n\nCommand: `/usr/bin/python3 bench/efficiency.py "
                    + " ".join(sys.argv[1:]) + "`\n\n"
                    + "GEMM: GFLOP/s of nnc's Linear + bias + ReLU against OpenBLAS sgemm alone on the "
                    "same shape, same threads. Elementwise and normalization: bytes an ideal kernel "
                    "moves (elementwise: 2 reads + 1 write; GroupNorm: 2 reads + 1 write) per second, "
                    "against a STREAM-like one-thread memcpy of 64 MiB (read + write counted).\n\n"
                    + text + "\n\n" + NOTE + "\n")


if __name__ == "__main__":
    main()
