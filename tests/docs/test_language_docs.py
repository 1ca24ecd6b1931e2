#!/usr/bin/python3
"""docs/language.md documents every layer and built-in function the compiler knows (their
names come from the registry, tests/tools/nnc_registry.py): each must appear in the docs as
`name(...)`, and each layer's row must name all of its constructor's arguments.

    usage: test_language_docs.py ROOT
"""
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import nnc_registry  # noqa: E402


def main():
    root = sys.argv[1]
    doc = open(f"{root}/docs/language.md", encoding="utf-8").read()
    names, layer_args, failures = nnc_registry.names(root)
    for n, f in sorted(names.items()):
        if not re.search(rf"`{n}\(", doc):
            failures.append(f"{n} ({f}) is not documented as `{n}(...)`")
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
