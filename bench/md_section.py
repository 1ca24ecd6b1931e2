"""md_section.py — a bench script's generated section of a Markdown file (docs/benchmarks.md):
the lines between the script's two markers, rewritten by `--markdown` while the rest of the
file stays as it is."""
import os


def markers(script):
    """The begin and end markers of `script`'s section ("zoo_bench.py")."""
    return (f"<!-- {script}: begin (generated; edit bench/{script}) -->", f"<!-- {script}: end -->")


def write(path, script, lines):
    """Replace `script`'s section of the file `path` with `lines` (appended when absent)."""
    begin, end = markers(script)
    old = open(path).read() if os.path.exists(path) else ""
    text = "\n".join([begin] + lines + [end]) + "\n"
    if begin in old and end in old:
        head, rest = old.split(begin, 1)
        new = head + text + rest.split(end, 1)[1].lstrip("\n")
    else:
        new = old.rstrip("\n") + "\n\n" + text if old else text
    with open(path, "w") as f:
        f.write(new)
    print(f"wrote {path}")
