"""The names the nnc compiler knows, read from its registry: the FUNCTION and LAYER columns of
compiler/ir/ops.def, the rows of the `Builtin x[]` tables of compiler/front/ and the
layer_types[] of layers_nn.c, and the keywords of dsl/lexer.l.  Used by the docs test (every
name documented) and by tests/onnx/convert.py (names a generated argument may not take), so
that no test keeps its own list.
"""
import glob
import os
import re


def table(src, decl):
    """The text of the C array initializer that starts at `decl`."""
    start = src.find(decl)
    if start < 0:
        return None
    end = src.find("\n};", start)
    return src[start:end]


def registry(root):
    """(function names, {layer: attribute names}) from the ELEM rows of ops.def."""
    src = open(f"{root}/compiler/ir/ops.def", encoding="utf-8").read()
    functions, layers = [], {}
    for row in re.findall(r"^ELEM\((.*)\)\s*(?:/\*.*)?$", src, re.M):
        cols = [c.strip() for c in re.split(r",(?![^(]*\))", row)]
        fn, layer, attrs = cols[4], cols[5], cols[6]
        if fn != "NULL":
            functions.append(fn.strip('"'))
        if layer != "NULL":
            layers[layer.strip('"')] = re.findall(r'"(\w+)"', attrs)
    return functions, layers


def names(root):
    """({name: where it is defined}, {layer: constructor arguments}, [problems])."""
    read = lambda f: open(f"{root}/compiler/front/{f}", encoding="utf-8").read()  # noqa: E731
    found, problems = {}, []
    functions, layer_args = registry(root)
    if not functions or not layer_args:
        problems.append("compiler/ir/ops.def: no ELEM rows with functions and layers (update tests/tools/nnc_registry.py)")
    for n in functions + list(layer_args):
        found.setdefault(n, "compiler/ir/ops.def")
    tables = [("layers_nn.c", "layer_types[] = {")]
    for f in sorted(glob.glob(f"{root}/compiler/front/*.c")):  # every `Builtin x[] = {` table
        for m in re.finditer(r"Builtin (\w+\[[A-Z_]*\] = \{)", open(f, encoding="utf-8").read()):
            tables.append((os.path.basename(f), m.group(1)))
    for f, decl in tables:
        try:
            t = table(read(f), decl)
        except FileNotFoundError:
            t = None
        if t is None:
            problems.append(f"compiler/front/{f}: no table '{decl}' (update tests/tools/nnc_registry.py)")
            continue
        # rows: {"name", handler[, variant]} or, in layer_types, {{"Name", b_layer[, variant]}, {"arg", ...}, ...}
        for n in re.findall(r'\{\{?"(\w+)", \w+', t):
            found.setdefault(n, f"compiler/front/{f}")
    lt = table(read("layers_nn.c"), "layer_types[] = {") or ""
    for m in re.finditer(r'\{\{"(\w+)", b_layer[^}]*\}, \{([^}]*)\}', lt):
        layer_args[m.group(1)] = re.findall(r'"(\w+)"', m.group(2))
    return found, layer_args, problems


def keywords(root):
    """The language's keywords: the quoted words that dsl/lexer.l returns as tokens."""
    src = open(f"{root}/dsl/lexer.l", encoding="utf-8").read()
    return re.findall(r'^"([a-z_]+)"\s+\{ return [A-Z_]+; \}', src, re.M)
