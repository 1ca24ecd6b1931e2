#!/usr/bin/python3
"""Run every entry of every tests/golden/ops_*/model.nn with nnc and compare with the
PyTorch goldens written by ops_reference.py.

    check_ops.py [--nnc PATH] [--jobs N] [DIR_OR_GROUP ...]

For each entry (found from <entry>.in.<arg>.npy / <entry>.out.<name>.npy), runs
    nnc run model.nn [--weights weights.safetensors] --entry E --in a=... --out o=...
and requires, for every output, the exact shape and |got - expected| <= 1e-5 + 1e-4*|expected|
elementwise (NaN never matches). Prints a table (max abs error and max error/tolerance per
output) and exits 1 on any mismatch or nnc failure. Needs only numpy.
"""
import argparse
import concurrent.futures
import glob
import os
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ATOL = 1e-5
RTOL = 1e-4


def entries_of(d):
    ents = {}
    for p in sorted(glob.glob(os.path.join(d, "*.npy"))):
        parts = os.path.basename(p)[:-4].split(".")
        if len(parts) != 3 or parts[1] not in ("in", "out"):
            continue
        e = ents.setdefault(parts[0], {"in": {}, "out": {}})
        e[parts[1]][parts[2]] = p
    return ents


def run_entry(nnc, d, entry, files, tmp):
    outdir = os.path.join(tmp, os.path.basename(d), entry)
    os.makedirs(outdir, exist_ok=True)
    cmd = [nnc, "run", os.path.join(d, "model.nn")]
    w = os.path.join(d, "weights.safetensors")
    if os.path.exists(w):
        cmd += ["--weights", w]
    cmd += ["--entry", entry]
    for k, p in sorted(files["in"].items()):
        cmd += ["--in", "%s=%s" % (k, p)]
    for k in sorted(files["out"]):
        cmd += ["--out", "%s=%s" % (k, os.path.join(outdir, k + ".npy"))]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        return [(k, None, None, None, "TIMEOUT") for k in sorted(files["out"])], "timeout"
    rows = []
    log = ""
    if r.returncode != 0:
        log = (r.stderr or r.stdout).strip()
        status = "CRASH(%d)" % r.returncode if r.returncode < 0 or r.returncode > 2 else \
            "ERROR(%d)" % r.returncode
        return [(k, None, None, None, status) for k in sorted(files["out"])], log
    for k, exp_path in sorted(files["out"].items()):
        exp = np.load(exp_path)
        got_path = os.path.join(outdir, k + ".npy")
        if not os.path.exists(got_path):
            rows.append((k, exp.shape, None, None, "NO OUTPUT"))
            continue
        got = np.load(got_path)
        if got.shape != exp.shape:
            rows.append((k, exp.shape, None, None, "SHAPE %s" % (got.shape,)))
            continue
        g64 = got.astype(np.float64)
        e64 = exp.astype(np.float64)
        err = np.abs(g64 - e64)
        err = np.where(np.isnan(err), np.inf, err)
        tol = ATOL + RTOL * np.abs(e64)
        maxerr = float(err.max()) if err.size else 0.0
        ratio = float((err / tol).max()) if err.size else 0.0
        ok = bool(np.all(err <= tol)) and got.dtype == np.float32
        status = "ok" if ok else ("FAIL" if got.dtype == np.float32 else "DTYPE %s" % got.dtype)
        if not ok and err.size:
            i = np.unravel_index(int(np.argmax(err / tol)), err.shape)
            status += " at %s: got %r expected %r" % (tuple(int(t) for t in i),
                                                       float(got[i]), float(exp[i]))
        rows.append((k, exp.shape, maxerr, ratio, status))
    return rows, log


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nnc", default=os.environ.get("NNC", "/tmp/b/nnc"))
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--verbose", "-v", action="store_true", help="print nnc's error output")
    ap.add_argument("dirs", nargs="*")
    args = ap.parse_args()

    dirs = []
    for a in args.dirs or sorted(glob.glob(os.path.join(HERE, "ops_*"))):
        d = a if os.path.isdir(a) else os.path.join(HERE, a)
        if os.path.isdir(d):
            dirs.append(os.path.abspath(d))
    if not dirs:
        print("no ops_* directories found", file=sys.stderr)
        return 2

    jobs = []
    for d in dirs:
        for entry, files in entries_of(d).items():
            jobs.append((d, entry, files))

    bad = 0
    with tempfile.TemporaryDirectory(prefix="check_ops.") as tmp:
        with concurrent.futures.ThreadPoolExecutor(max(1, args.jobs)) as ex:
            results = list(ex.map(lambda j: run_entry(args.nnc, j[0], j[1], j[2], tmp), jobs))
    print("%-16s %-16s %-10s %-14s %10s %8s  %s" % ("group", "entry", "output", "shape",
                                                    "max|err|", "err/tol", "status"))
    for (d, entry, _), (rows, log) in zip(jobs, results):
        for k, shape, maxerr, ratio, status in rows:
            if status != "ok":
                bad += 1
            print("%-16s %-16s %-10s %-14s %10s %8s  %s" % (
                os.path.basename(d), entry, k, "x".join(map(str, shape)) if shape else
                ("[]" if shape == () else "-"),
                "%.3g" % maxerr if maxerr is not None else "-",
                "%.3g" % ratio if ratio is not None else "-", status))
        if log and (args.verbose or rows and rows[0][4] != "ok"):
            for line in log.splitlines()[:8]:
                print("    | " + line)
    total = sum(len(r[0]) for r in results)
    print("%d outputs in %d entries: %d ok, %d failed (tolerance %g + %g*|expected|)"
          % (total, len(jobs), total - bad, bad, ATOL, RTOL))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
