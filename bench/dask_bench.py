#!/usr/bin/python3
"""Rows per second scoring a few million rows with realnvp `forward` (examples/realnvp.nn,
golden weights embedded) through nnc.dask on a distributed.LocalCluster, against a plain loop
over NumPy chunks in one process, at several block sizes: what Dask adds per block, and the
block size at which that vanishes.

    /usr/bin/python3 bench/dask_bench.py [--rows 2000000] [--blocks 2000,8000,...] [--repeat 2]
                                         [--configs loop1,loop2,w1t1,w1t2,w2t1]

Configurations (the machine's cores split the same way on both sides):
  loop1, loop2   one process: `for each chunk: m.forward(x[i:i+B])`, 1 or 2 threads per call
  w1t1, w1t2     a LocalCluster of 1 worker process with 1 or 2 threads
  w2t1           a LocalCluster of 2 worker processes with 1 thread each
On the cluster the input is persisted on the workers first (shipped from here, untimed); the
timed part builds the graph, runs it and waits for the outputs to be held on the workers
(dask.persist + distributed.wait), without bringing them back.  Each figure is the best of
--repeat runs.  Overhead per block = (Dask's time - the loop's time with as many cores) /
blocks.  The load average at the start and end is printed: on a shared machine, say so.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "python"))

import nnc  # noqa: E402


def compile_realnvp(tmp):
    nnc_exe = os.environ.get("NNC_EXE") or os.path.join(ROOT, "build", "nnc")
    so = os.path.join(tmp, "realnvp.so")
    subprocess.run([nnc_exe, os.path.join(ROOT, "examples", "realnvp.nn"), "-o", so, "--weights",
                    os.path.join(ROOT, "tests", "golden", "realnvp", "weights.safetensors")],
                   check=True)
    return so


def best(repeat, run):
    return min(run() for _ in range(repeat))


def time_loop(so, x, block, threads, repeat):
    with nnc.load(so, threads=threads) as m:
        m.forward(x[:block])  # warm: the context's workspace, OpenBLAS's threads

        def run():
            t0 = time.perf_counter()
            for i in range(0, len(x), block):
                m.forward(x[i:i + block])
            return time.perf_counter() - t0
        return best(repeat, run)


def held(names, dask_scheduler):
    """Whether the scheduler still holds a task of the collections `names`."""
    return any(isinstance(k, tuple) and k[0] in names for k in dask_scheduler.tasks)


def time_cluster(so, x, blocks, workers, threads, repeat, tmp):
    import dask
    import dask.array as da
    import distributed
    import logging
    import nnc.dask
    out = {}
    with distributed.LocalCluster(n_workers=workers, threads_per_worker=threads, processes=True,
                                  host="127.0.0.1", dashboard_address=None, local_directory=tmp,
                                  silence_logs=logging.ERROR) as cluster, \
            distributed.Client(cluster) as client:
        forward = nnc.dask.entry(so, "forward")
        for block in blocks:
            xd = da.from_array(x, chunks=(block, 2)).persist()
            distributed.wait(xd)

            def run():
                t0 = time.perf_counter()
                outs = dask.persist(*forward(xd))
                distributed.wait(outs)
                dt = time.perf_counter() - t0
                names = {o.name for o in outs}
                del outs
                while client.run_on_scheduler(held, names):  # else the next run finds them
                    time.sleep(0.05)
                return dt
            run()  # untimed: every worker opens the model
            out[block] = best(repeat, run)
            del xd
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--blocks", default="2000,8000,32000,128000,500000")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--configs", default="loop1,loop2,w1t1,w1t2,w2t1")
    args = ap.parse_args()
    blocks = [int(b) for b in args.blocks.split(",")]
    configs = args.configs.split(",")
    load0 = os.getloadavg()
    x = np.random.default_rng(0).standard_normal((args.rows, 2)).astype(np.float32)
    times = {}
    with tempfile.TemporaryDirectory(prefix="nnc-dask-bench-") as tmp:
        so = compile_realnvp(tmp)
        for c in configs:
            t0 = time.perf_counter()
            if c.startswith("loop"):
                times[c] = {b: time_loop(so, x, b, int(c[4:]), args.repeat) for b in blocks}
            else:
                w, t = int(c[1]), int(c[3])
                times[c] = time_cluster(so, x, blocks, w, t, args.repeat, tmp)
            print(f"{c}: {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    load1 = os.getloadavg()
    cores = {"loop1": 1, "loop2": 2, "w1t1": 1, "w1t2": 2, "w2t1": 2}
    print(f"realnvp forward, {args.rows:,} rows of f32[N, 2]; best of {args.repeat}; "
          f"{os.cpu_count()} CPUs; load average {load0[0]:.1f} at the start, {load1[0]:.1f} at "
          f"the end\n")
    print("| block (rows) | blocks | " + " | ".join(f"{c} rows/s" for c in configs) +
          " | " + " | ".join(f"{c} overhead/block" for c in configs if not c.startswith("loop")) + " |")
    print("|---" * (2 + len(configs) + sum(not c.startswith("loop") for c in configs)) + "|")
    for b in blocks:
        n = -(-args.rows // b)
        rates = [f"{args.rows / times[c][b] / 1e3:,.0f}k" for c in configs]
        over = []
        for c in configs:
            if c.startswith("loop"):
                continue
            ref = f"loop{cores[c]}"
            if ref in times:
                over.append(f"{(times[c][b] - times[ref][b]) / n * 1e3:+.2f} ms")
            else:
                over.append("n/a")
        print(f"| {b:,} | {n:,} | " + " | ".join(rates) + " | " + " | ".join(over) + " |")


if __name__ == "__main__":
    main()
