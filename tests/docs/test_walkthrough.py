#!/usr/bin/python3
"""Runs the README's "From PyTorch to nnc in five minutes" verbatim.

The steps are the fenced code blocks that follow an HTML comment in README.md:
    <!-- walkthrough: file=NAME [needs=torch] -->   the block is written to NAME
    <!-- walkthrough: run -->                       the block is run with bash -euo pipefail
in document order, in a fresh temporary directory, with this build's `nnc` first on the PATH
and the source tree's python/ on PYTHONPATH (what the README's unmarked setup block does).
When PyTorch is missing, a step marked needs=torch is replaced by the file of the same role
in tests/docs/ (walkthrough_numpy.py for train.py); everything else — compiling, calling
from C and from Python, comparing — still runs.

    usage: test_walkthrough.py README.md NNC_EXE
"""
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
FALLBACKS = {"train.py": os.path.join(HERE, "walkthrough_numpy.py")}
MARKER = re.compile(r"^<!--\s*walkthrough:\s*(.*?)\s*-->\s*$")
FENCE = re.compile(r"^(```+|~~~+)")


def steps(readme):
    """[(kind, attrs, code, line)] of the marked blocks: kind is "file" or "run"."""
    lines = open(readme, encoding="utf-8").read().split("\n")
    out, i = [], 0
    while i < len(lines):
        m = MARKER.match(lines[i])
        i += 1
        if not m:
            continue
        words = m.group(1).split()
        attrs = dict(w.split("=", 1) for w in words if "=" in w)
        kind = "run" if "run" in words else "file" if "file" in attrs else None
        if kind is None:
            sys.exit(f"{readme}:{i}: a walkthrough marker needs 'run' or 'file=NAME': {lines[i - 1]}")
        while i < len(lines) and not lines[i].strip():
            i += 1
        f = FENCE.match(lines[i]) if i < len(lines) else None
        if not f:
            sys.exit(f"{readme}:{i + 1}: a walkthrough marker must be followed by a code block")
        j = i + 1
        while j < len(lines) and not lines[j].startswith(f.group(1)):
            j += 1
        if j == len(lines):
            sys.exit(f"{readme}:{i + 1}: unterminated code block")
        out.append((kind, attrs, "\n".join(lines[i + 1:j]) + "\n", i + 1))
        i = j + 1
    return out


def have_torch():
    if os.environ.get("NNC_TEST_NO_TORCH") == "1":
        return False
    return subprocess.run(["/usr/bin/python3", "-c", "import torch"], capture_output=True).returncode == 0


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    readme, nnc_exe = sys.argv[1], os.path.abspath(sys.argv[2])
    walkthrough_steps = steps(readme)
    files = [a["file"] for k, a, _, _ in walkthrough_steps if k == "file"]
    for want in ("train.py", "tiny.nn", "app.c", "compare.py"):
        if want not in files:
            sys.exit(f"{readme}: the walkthrough has no '{want}' step (found: {', '.join(files)})")
    torch = have_torch()
    print(f"{len(walkthrough_steps)} steps from {readme}; PyTorch {'available' if torch else 'missing: NumPy fallback'}")
    with tempfile.TemporaryDirectory(prefix="nnc-walkthrough-") as tmp:
        bindir, work = os.path.join(tmp, "bin"), os.path.join(tmp, "tour")
        os.makedirs(bindir)
        os.makedirs(work)
        os.symlink(nnc_exe, os.path.join(bindir, "nnc"))
        env = dict(os.environ, PATH=bindir + os.pathsep + os.environ.get("PATH", ""),
                   PYTHONPATH=os.path.join(ROOT, "python"), PYTHONDONTWRITEBYTECODE="1")
        for kind, attrs, code, line in walkthrough_steps:
            if kind == "file":
                name = attrs["file"]
                if attrs.get("needs") == "torch" and not torch:
                    code = open(FALLBACKS[name]).read()
                    print(f"--- README.md:{line}: {name} (fallback {os.path.relpath(FALLBACKS[name], ROOT)})")
                else:
                    print(f"--- README.md:{line}: {name}")
                with open(os.path.join(work, name), "w") as f:
                    f.write(code)
                continue
            print(f"--- README.md:{line}: $ " + code.strip().replace("\n", "\n    $ "), flush=True)
            r = subprocess.run(["bash", "-euo", "pipefail", "-c", code], cwd=work, env=env)
            if r.returncode != 0:
                sys.exit(f"FAIL: the step at README.md:{line} exited with {r.returncode}")
        png = os.path.join(work, "tiny.png")
        if os.path.exists(png):
            with open(png, "rb") as f:
                if f.read(8) != b"\x89PNG\r\n\x1a\n":
                    sys.exit("FAIL: tiny.png is not a PNG")
    print("walkthrough: ok")


if __name__ == "__main__":
    main()
