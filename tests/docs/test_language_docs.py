#!/usr/bin/python3
"""docs/language.md documents every layer and built-in function the compiler knows: the names
in the tables of compiler/front/builtins.c (builtins[]), layers.c (activations[]), layers_nn.c
(layer_types[]) and every `NnBuiltin x[]` table (builtins_nn.c, builtins_index.c, ...) must
each appear in the docs as `name(...)`,
and each layer's row must name all of its constructor's arguments (layer_types[].args).

    usage: test_language_docs.py ROOT
"""
import glob
import os
import re
import sys


def table(src, decl):
    """The text of the C array initializer that starts at `decl`."""
    start = src.find(decl)
    if start < 0:
        return None
    end = src.find("\n};", start)
    return src[start:end]


def main():
    root = sys.argv[1]
    doc = open(f"{root}/docs/language.md", encoding="utf-8").read()
    read = lambda f: open(f"{root}/compiler/front/{f}", encoding="utf-8").read()  # noqa: E731
    tables = [("builtins.c", "builtins[] = {"), ("layers.c", "activations[] = {"),
              ("layers_nn.c", "layer_types[] = {")]
    for f in sorted(glob.glob(f"{root}/compiler/front/*.c")):  # every `const NnBuiltin x[] = {` table
        for m in re.finditer(r"NnBuiltin (\w+\[\] = \{)", open(f, encoding="utf-8").read()):
            tables.append((os.path.basename(f), m.group(1)))
    names, failures = {}, []
    for f, decl in tables:
        try:
            t = table(read(f), decl)
        except FileNotFoundError:
            t = None
        if t is None:
            failures.append(f"compiler/front/{f}: no table '{decl}' (update this test)")
            continue
        # rows start a line: {"name", fn} or, in layer_types, {"Name", {"arg", ...}, ...}
        for n in re.findall(r'(?:^|\}, )\s*\{"(\w+)",', t, re.M):
            names.setdefault(n, f)
    # constructor arguments of the table-driven layers
    lt = table(read("layers_nn.c"), "layer_types[] = {") or ""
    layer_args = {m.group(1): re.findall(r'"(\w+)"', m.group(2))
                  for m in re.finditer(r'\{"(\w+)", \{([^}]*)\}', lt)}
    for n, f in sorted(names.items()):
        if not re.search(rf"`{n}\(", doc):
            failures.append(f"{n} (compiler/front/{f}) is not documented as `{n}(...)`")
    for layer, args in layer_args.items():
        rows = [line for line in doc.splitlines() if f"`{layer}(" in line]
        for a in args:
            if not any(re.search(rf"\b{a}\b", r) for r in rows):
                failures.append(f"{layer}: argument '{a}' is not in its docs row")
    for f in failures:
        print("FAIL:", f)
    print(f"language docs: {len(names)} names checked, " + ("ok" if not failures else f"{len(failures)} missing"))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
