#!/usr/bin/python3
"""How nnc's thread pool would split a model's kernels on 2 to 64 cores (issue 20, item 2: "the
partition chosen for 16 threads and its load balance"), from the loop nests nnc prints
(`nnc dump --stage=loops`), without the cores:

  /usr/bin/python3 bench/partition.py tests/models/resnet18.nn -D H=224 -D W=224 --batch 1,8

For every kernel, the parallel items the pool can hand out (runtime/support/pool.c): the
iterations of its parallel loop (with the loop collapsed into it: images x groups, rows of
pixels); when that loop has one iteration (one image), the output-channel tiles of its
convolution or row-tile product, x its batch (Winograd's 16 products) x its parts; for an
OpenBLAS product (sgemm) of at least SGEMM_THREADED_FLOPS, the tiles of C (at most
SGEMM_MAX_TILES).  The pool cuts n items into min(CHUNKS_PER_THREAD x threads, n) chunks of
n/chunks items (the grain, which keeps small kernels whole, is left out: it only lowers the
count), which the threads claim one at a time; with chunks of about equal work the busiest
thread runs ceil(chunks / threads) of the largest, so a kernel's balance is

    (n / threads) / (ceil(chunks / threads) x ceil(n / chunks))

(1: every thread busy until the end).  A kernel's weight is its multiply-adds (convolutions,
row tiles and products; the other kernels count as memory passes of their output, weighted
as one multiply-add per element, and as splittable as their loop).  The model's speed-up on
T threads is then 1 / sum(weight_k / (T x balance_k)) over weights summing to 1: what the
partition allows, before memory bandwidth, shared caches and the wake-up of threads (which
docs/architecture.md discusses) take their share.  Symbolic dims other than the batch must be
pinned with -D; every symbol in the loops is taken to be the batch."""
import argparse
import math
import re
import subprocess
import sys

CHUNKS_PER_THREAD = 4      # runtime/support/pool.c
SGEMM_THREADED_FLOPS = 8e6  # runtime/support/pool.h
SGEMM_TILE_FLOPS = 4e6      # runtime/support/pool.c
SGEMM_MAX_TILES = 8

LOOP = re.compile(r"^(\s*)(parallel )?(?:vector )?for i\d+ in (.+?)\.\.(.+?)(?: step .+)? \{$")
CONV = re.compile(r"\bconv .* cout=(\d+) cin=(\d+) oh=(\d+) ow=(\d+) .*?lanes=\d+ tile=(\d+)x\d+ taps=([^ ]*)(.*)$")
SGEMM = re.compile(r"\bsgemm.* m=(\S+) n=(\S+) k=(\S+)")


def evaluate(expr, batch):
    """A printed size (integers, sym<i>, + - * /) with every symbol the batch; None if not."""
    text = re.sub(r"%\d+=", "", expr)
    text = re.sub(r"sym\d+", str(batch), text)
    if not re.fullmatch(r"[\d\s+\-*/()]+", text):
        return None
    return int(eval(text.replace("/", "//")))  # noqa: S307 (digits and operators only)


def kernels(path, defines):
    """The loop nests of every kernel: name -> list of lines."""
    cmd = [ARGS.nnc, "dump", "--stage=loops", path] + [a for d in defines for a in ("-D", d)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    ks, name = {}, None
    for line in out.splitlines():
        if line.startswith("kernel "):
            name = line.split()[1]
            if name.startswith("__init."):  # runs once, when weights are loaded
                name = None
            else:
                ks[name] = []
        elif name:
            ks[name].append(line)
    return ks


def conv_items_and_fmas(m, batch):
    cout, cin, oh, ow, tile_co, taps, rest = m.groups()
    nbatch = int(re.search(r"batch=(\d+)", rest).group(1)) if "batch=" in rest else 1
    parts = int(re.search(r"parts=(\d+)", rest).group(1)) if "parts=" in rest else 1
    ntaps = len(taps.split(",")) if taps else 1
    items = math.ceil(int(cout) / int(tile_co)) * nbatch * parts
    return items, int(cout) * int(cin) * ntaps * int(oh) * int(ow) * nbatch


def sgemm_tiles(m, n, k):
    flops = 2.0 * m * n * k
    if flops < SGEMM_THREADED_FLOPS:
        return 1
    want = flops / SGEMM_TILE_FLOPS
    return SGEMM_MAX_TILES if want >= SGEMM_MAX_TILES else max(1, int(want))


def kernel_shape(lines, batch):
    """(parallel items, multiply-adds) of one kernel."""
    par, open_loops, fmas, nested, stores = 1, [], 0, None, 0
    for line in lines:
        depth = len(line) - len(line.lstrip())
        while open_loops and open_loops[-1][0] >= depth:  # its closing brace, or a later line
            open_loops.pop()
        lm = LOOP.match(line)
        if lm:
            lo, hi = evaluate(lm.group(3), batch), evaluate(lm.group(4), batch)
            trip = (hi - lo) if lo is not None and hi is not None else 1
            if lm.group(2):
                par *= max(trip, 0)
            open_loops.append((depth, trip))
            continue
        reps = math.prod(max(t, 1) for _, t in open_loops)
        cm = CONV.search(line)
        if cm:
            items, f = conv_items_and_fmas(cm, batch)
            fmas += f * reps
            nested = items if nested is None else max(nested, items)
            continue
        sm = SGEMM.search(line)
        if sm:
            m, n, k = (evaluate(x, batch) or 1 for x in sm.groups())
            fmas += m * n * k * reps
            nested = sgemm_tiles(m, n, k)
            continue
        if "] = " in line:
            stores += reps
    if par <= 1 and nested:
        par = nested
    return max(par, 1), fmas + stores


def balance(n, threads):
    chunks = min(CHUNKS_PER_THREAD * threads, n)
    busiest = math.ceil(chunks / threads) * math.ceil(n / chunks)
    return (n / threads) / busiest


def main():
    global ARGS
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model")
    p.add_argument("-D", dest="defines", action="append", default=[], metavar="NAME=VALUE")
    p.add_argument("--batch", default="1", help="comma-separated batch sizes (every symbol)")
    p.add_argument("--threads", default="2,16,32,64")
    p.add_argument("--nnc", default="build/nnc")
    p.add_argument("--kernels", type=int, default=8, help="heaviest kernels listed per batch")
    ARGS = p.parse_args()
    ks = kernels(ARGS.model, ARGS.defines)
    threads = [int(t) for t in ARGS.threads.split(",")]
    for batch in (int(b) for b in ARGS.batch.split(",")):
        shapes = {name: kernel_shape(lines, batch) for name, lines in ks.items()}
        total = sum(w for _, w in shapes.values()) or 1
        print(f"\n{ARGS.model} {' '.join('-D ' + d for d in ARGS.defines)}, batch {batch}: "
              f"{len(shapes)} kernels, {total / 1e6:.1f} M multiply-adds")
        print(f"{'kernel':34} {'share':>6} {'items':>6} " + " ".join(f"{'bal@' + str(t):>7}" for t in threads))
        for name, (n, w) in sorted(shapes.items(), key=lambda kv: -kv[1][1])[:ARGS.kernels]:
            print(f"{name:34} {100 * w / total:5.1f}% {n:6d} " + " ".join(f"{balance(n, t):7.2f}" for t in threads))
        speedups = []
        for t in threads:
            time = sum(w / total / (t * balance(n, t)) for n, w in shapes.values())
            speedups.append(1 / time)
        low = {t: sum(w for n, w in shapes.values() if n < t) / total for t in threads}
        print("speed-up the partition allows: " + ", ".join(f"{t} threads {s:.1f}x" for t, s in zip(threads, speedups)))
        print("work in kernels with fewer items than threads: " + ", ".join(f"{t}: {100 * low[t]:.0f} %" for t in threads))


if __name__ == "__main__":
    sys.exit(main())
