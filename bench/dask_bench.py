#!/usr/bin/python3
"""Rows per second scoring a few million rows with realnvp `forward` (examples/realnvp.nn,
golden weights embedded) through nnc.dask on a distributed.LocalCluster, against a plain loop
over NumPy chunks in one process, at several block sizes: what Dask adds per block, and the
block size at which that vanishes.

    /usr/bin/python3 bench/dask_bench.py [--rows 2000000] [--blocks 2000,10000,...] [--repeat 3]
                                         [--configs loop1,loop2,w1t1,w1t2,w2t1]

Configurations (the machine's cores split the same way on both sides):
  loop1, loop2   one process: `for each chunk: m.forward(x[i:i+B])`, 1 or 2 threads per call
  w1t1, w1t2     a LocalCluster of 1 worker process with 1 or 2 threads
  w2t1           a LocalCluster of 2 worker processes with 1 thread each
On the cluster the input is persisted on the workers first (shipped from here, untimed); the
timed part builds the graph, runs it and waits for the outputs to be held on the workers
(dask.persist + distributed.wait), without bringing them back.  Each figure is the best of
--repeat runs, the configurations taking turns (all clusters are up at once) so that a
changing load on a shared machine hits them alike.  Overhead per block: wall = (Dask's time -
the loop's time with as many cores) / blocks; CPU = (the CPU time of every process of the
cluster, client and scheduler included - the one-thread loop's) / blocks, which the load of a
shared machine disturbs much less.  The load average at the start and end is printed.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time
import warnings

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


class Loop:
    """One process: a loop over NumPy chunks, `threads` threads per call."""

    def __init__(self, so, threads):
        self.model = nnc.load(so, threads=threads)

    def prepare(self, x, block):
        self.x, self.block = x, block
        self.model.forward(x[:block])  # warm: the context's workspace, OpenBLAS's threads

    def run(self):
        """(wall seconds, CPU seconds of this process)."""
        t0, c0 = time.perf_counter(), time.process_time()
        for i in range(0, len(self.x), self.block):
            self.model.forward(self.x[i:i + self.block])
        return time.perf_counter() - t0, time.process_time() - c0

    def close(self):
        self.model.close()


def held(names, dask_scheduler):
    """Whether the scheduler still holds a task of the collections `names`."""
    return any(isinstance(k, tuple) and k[0] in names for k in dask_scheduler.tasks)


class Cluster:
    """A LocalCluster of `workers` processes of `threads` threads, scoring through nnc.dask."""

    def __init__(self, so, workers, threads, tmp):
        import logging
        import distributed
        import nnc.dask
        import psutil
        self.cluster = distributed.LocalCluster(
            n_workers=workers, threads_per_worker=threads, processes=True, host="127.0.0.1",
            dashboard_address=None, local_directory=tmp, silence_logs=logging.ERROR)
        self.client = distributed.Client(self.cluster)
        self.forward = nnc.dask.entry(so, "forward", client=self.client)
        # CPU time: the worker processes, their nannies, and this one (client and scheduler)
        pids = list(self.client.run(os.getpid).values())
        self.procs = [psutil.Process(p) for p in pids]
        self.procs += [p.parent() for p in self.procs] + [psutil.Process()]

    def prepare(self, x, block):
        import dask.array as da
        import distributed
        self.xd = self.client.persist(da.from_array(x, chunks=(block, 2)))  # untimed
        distributed.wait(self.xd)
        self.run()  # untimed: every worker opens the model

    def cpu(self):
        return sum(sum(p.cpu_times()[:2]) for p in self.procs)

    def run(self):
        """(wall seconds, CPU seconds of every process of the cluster): the graph built, run,
        and its outputs held on the workers."""
        import distributed
        t0, c0 = time.perf_counter(), self.cpu()
        outs = self.client.persist(list(self.forward(self.xd)))
        distributed.wait(outs)
        dt, dc = time.perf_counter() - t0, self.cpu() - c0
        names = {o.name for o in outs}
        del outs
        while self.client.run_on_scheduler(held, names):  # else the next run finds them
            time.sleep(0.05)
        return dt, dc

    def close(self):
        self.client.close()
        self.cluster.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--blocks", default="2000,10000,50000,250000")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--configs", default="loop1,loop2,w1t1,w1t2,w2t1")
    args = ap.parse_args()
    warnings.filterwarnings("ignore", message="Port 8787 is already in use")  # other clusters
    blocks = [int(b) for b in args.blocks.split(",")]
    configs = args.configs.split(",")
    load0 = os.getloadavg()
    x = np.random.default_rng(0).standard_normal((args.rows, 2)).astype(np.float32)
    wall = {(c, b): float("inf") for c in configs for b in blocks}
    cpu = dict(wall)
    with tempfile.TemporaryDirectory(prefix="nnc-dask-bench-") as tmp:
        so = compile_realnvp(tmp)
        runners = {c: Loop(so, int(c[4:])) if c.startswith("loop") else
                   Cluster(so, int(c[1]), int(c[3]), tmp) for c in configs}
        try:
            for b in blocks:
                for r in runners.values():
                    r.prepare(x, b)
                for _ in range(args.repeat):  # in turns, so that the load drifts alike
                    for c, r in runners.items():
                        dt, dc = r.run()
                        wall[c, b], cpu[c, b] = min(wall[c, b], dt), min(cpu[c, b], dc)
                print(f"block {b}: done", file=sys.stderr)
        finally:
            for r in runners.values():
                r.close()
    load1 = os.getloadavg()
    cores = {"loop1": 1, "loop2": 2, "w1t1": 1, "w1t2": 2, "w2t1": 2}
    dasks = [c for c in configs if not c.startswith("loop")]
    print(f"realnvp forward, {args.rows:,} rows of f32[N, 2]; best of {args.repeat} in turns; "
          f"{os.cpu_count()} CPUs; load average {load0[0]:.1f} at the start, {load1[0]:.1f} at "
          f"the end\n")
    print("| block (rows) | blocks | " + " | ".join(f"{c} rows/s" for c in configs) + " | "
          + " | ".join(f"{c} wall overhead / block" for c in dasks) + " | "
          + " | ".join(f"{c} CPU overhead / block" for c in dasks) + " |")
    print("|---" * (2 + len(configs) + 2 * len(dasks)) + "|")
    for b in blocks:
        n = -(-args.rows // b)
        rates = [f"{args.rows / wall[c, b] / 1e3:,.0f}k" for c in configs]
        over = []
        for what in (wall, cpu):
            for c in dasks:
                ref = f"loop{cores[c]}" if what is wall else "loop1"
                over.append(f"{(what[c, b] - what[ref, b]) / n * 1e3:+.2f} ms"
                            if ref in configs else "n/a")
        print(f"| {b:,} | {n:,} | " + " | ".join(rates) + " | " + " | ".join(over) + " |")


if __name__ == "__main__":
    main()
