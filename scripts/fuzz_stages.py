#!/usr/bin/env python3
"""fuzz_stages.py — how far .nn inputs (a fuzz corpus, or mutants written by
fuzz_compile_tokens_mutate -o DIR -x) get through the compiler, by running the nnc driver:

  lexer     `nnc dump --stage=ast` fails with a lexical error
  parser    `nnc dump --stage=ast` fails otherwise (a syntax error, a nesting or list limit)
  sema      the syntax tree is built, `nnc check` fails
  later     `nnc check` passes, `nnc dump --stage=llvm` fails (an error of the passes,
            lowering or codegen, or an export that cannot be compiled)
  llvm      the whole compilation to LLVM IR succeeds
  timeout / crash   a run took over --timeout seconds / died of a signal

    scripts/fuzz_stages.py [--nnc build/nnc] [--sample N] [--seed S] [--timeout T] PATH...

PATHs are files or directories (every file in them).  Prints the count and share of each.
"""
import argparse
import os
import random
import subprocess
import sys

STAGES = ["lexer", "parser", "sema", "later", "llvm", "timeout", "crash"]
LEXICAL = ("unexpected character", "invalid number", "unterminated string", "literal out of range",
           "unknown escape", "not a .nn source file", "too many nested brackets", "reserved")


def run(cmd, timeout):
    """(return code, stderr) of cmd; None for a timeout."""
    try:
        p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, ""
    return p.returncode, p.stderr.decode("utf-8", "replace")


def stage(nnc, path, timeout):
    for cmd in (["dump", "--stage=ast"], ["check"], ["dump", "--stage=llvm"]):
        rc, err = run([nnc] + cmd + [path], timeout)
        if rc is None:
            return "timeout"
        if rc < 0 or rc > 2 and "error" not in err:
            return "crash"
        if rc != 0:
            if cmd[0] == "check":
                return "sema"
            if cmd[-1] == "--stage=llvm":
                return "later"
            return "lexer" if any(s in err for s in LEXICAL) else "parser"
    return "llvm"


def files(paths):
    for p in paths:
        if os.path.isdir(p):
            for name in sorted(os.listdir(p)):
                if os.path.isfile(os.path.join(p, name)):
                    yield os.path.join(p, name)
        else:
            yield p


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("paths", nargs="+")
    ap.add_argument("--nnc", default="build/nnc")
    ap.add_argument("--sample", type=int, default=0, help="a random sample of N inputs")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=20)
    args = ap.parse_args()
    inputs = list(files(args.paths))
    if args.sample and args.sample < len(inputs):
        inputs = random.Random(args.seed).sample(inputs, args.sample)
    counts = {s: 0 for s in STAGES}
    for path in inputs:
        s = stage(args.nnc, path, args.timeout)
        counts[s] += 1
        if s in ("timeout", "crash"):
            print(f"{s}: {path}", file=sys.stderr)
    total = max(len(inputs), 1)
    for s in STAGES:
        print(f"{s:8} {counts[s]:6}  {100 * counts[s] / total:5.1f}%")
    past = sum(counts[s] for s in ("sema", "later", "llvm"))
    print(f"past the parser {past} of {len(inputs)} ({100 * past / total:.1f}%)")


if __name__ == "__main__":
    main()
