#!/usr/bin/python3
"""Compare nnc outputs with the PyTorch goldens and print the table of scripts/run_examples.sh.

    compare_golden.py RESULTS.tsv [--jit]

Each line of RESULTS.tsv (tab-separated, written by run_examples.sh):
    model entry compile_ms run_us status golden_dir cli_dir timer_dir log
status is "ok", or the step that failed: "compile", "run" (`nnc run`), "timer" (so_timer).
For every <entry>.out.<name>.npy in golden_dir, cli_dir/<name>.npy (and timer_dir/<name>.npy
when given) must match: same shape and max|got - expected| <= 1e-5 + 1e-4 * max|expected|
(NaN where expected is NaN counts as equal).  Exit status 1 if any entry fails.
"""
import glob
import os
import sys

import numpy as np

ABS_TOL = 1e-5
REL_TOL = 1e-4


def compare(expected_path, got_path):
    """Returns (max abs error, tolerance, problem or None)."""
    exp = np.load(expected_path)
    tol = ABS_TOL + REL_TOL * (float(np.nanmax(np.abs(exp))) if exp.size else 0.0)
    if not os.path.exists(got_path):
        return float("nan"), tol, "missing output " + os.path.basename(got_path)
    got = np.load(got_path)
    if got.shape != exp.shape:
        return float("nan"), tol, "shape %s, expected %s" % (got.shape, exp.shape)
    if got.size == 0:
        return 0.0, tol, None
    both_nan = np.isnan(exp) & np.isnan(got)
    diff = np.where(both_nan, 0.0, np.abs(got.astype(np.float64) - exp.astype(np.float64)))
    if np.isnan(diff).any():
        return float("nan"), tol, "NaN where a number was expected (or the reverse)"
    err = float(diff.max())
    return err, tol, None if err <= tol else "max error %.3g > tolerance %.3g" % (err, tol)


def check_entry(entry, golden, cli_dir, timer_dir):
    """Returns (max error over outputs, list of problems)."""
    worst, problems = 0.0, []
    for exp_path in sorted(glob.glob(os.path.join(golden, entry + ".out.*.npy"))):
        name = os.path.basename(exp_path)[len(entry) + 5:-4]
        for label, d in (("nnc run", cli_dir), ("so_timer", timer_dir)):
            if not d:
                continue
            err, tol, problem = compare(exp_path, os.path.join(d, name + ".npy"))
            worst = err if np.isnan(err) or np.isnan(worst) else max(worst, err)
            if problem:
                problems.append("%s: output '%s': %s" % (label, name, problem))
    return worst, problems


def tail(path, n=6):
    try:
        with open(path, errors="replace") as f:
            lines = f.read().rstrip("\n").splitlines()
    except OSError:
        return []
    return lines[-n:]


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    jit = "--jit" in sys.argv[2:]
    rows, failures = [], []
    with open(sys.argv[1]) as f:
        for line in f:
            fields = line.rstrip("\n").split("\t")
            fields += [""] * (9 - len(fields))
            model, entry, compile_ms, run_us, status, golden, cli_dir, timer_dir, log = fields[:9]
            problems = []
            if status == "compile":
                err, problems = float("nan"), ["compile failed"]
            else:
                err, problems = check_entry(entry, golden, cli_dir if status != "run" else "",
                                            timer_dir)
                if status == "run":
                    problems.insert(0, "nnc run failed")
                elif status == "timer":
                    problems.insert(0, "so_timer failed")
            ok = not problems
            rows.append((model, entry, compile_ms, run_us,
                         "-" if np.isnan(err) else "%.2e" % err, "ok" if ok else "FAIL"))
            if not ok:
                failures.append((model, entry, problems, log))

    head = ("model", "entry", "compile ms" if not jit else "compile", "run µs", "max abs err",
            "status")
    widths = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]
    right = (False, False, True, True, True, False)

    def fmt(r):
        return "  ".join(c.rjust(w) if ra else c.ljust(w) for c, w, ra in zip(r, widths, right))

    print()
    print("nnc examples (%s) vs PyTorch goldens; tolerance %g + %g*max|expected|"
          % ("JIT" if jit else "AOT .so, weights embedded", ABS_TOL, REL_TOL))
    print(fmt(head).rstrip())
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print(fmt(r).rstrip())
    print()
    seen_logs = set()
    for model, entry, problems, log in failures:
        print("FAIL %s %s: %s" % (model, entry, "; ".join(problems)))
        if log and log not in seen_logs:
            seen_logs.add(log)
            for l in tail(log):
                print("    | " + l)
    n_fail = len(failures)
    print("examples: %d passed, %d failed" % (len(rows) - n_fail, n_fail))
    return 1 if n_fail else 0


if __name__ == "__main__":
    sys.exit(main())
