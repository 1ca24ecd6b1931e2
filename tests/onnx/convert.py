#!/usr/bin/python3
"""Convert ONNX backend node tests into nnc op tests.

Reads the ONNX test data installed by Debian's `libonnx-testdata` (ONNX 1.12: model.onnx +
test_data_set_0/{input,output}_*.pb) for the ops of issue 3 (convolution, transposed
convolution, pooling, normalization, resize, RoIAlign, depth/space rearrangement, constant
pad) and writes, for every case that nnc can express,

    tests/onnx/<test_name>/model.nn          one `export run(...)`: the node's tensor inputs as
                                             f32 arguments with their static shapes, the node's
                                             outputs as results
    tests/onnx/<test_name>/run.in.<arg>.npy  the ONNX test inputs  (<f4, C order)
    tests/onnx/<test_name>/run.out.<y>.npy   the ONNX expected outputs -- the oracle

and lists every selected case it cannot express, with the reason, in tests/onnx/skipped.txt
(and in the README's skipped list).  Inputs that ONNX passes as tensors but that are
attributes in torch (Pad's pads/value, Resize's scales/sizes/roi) are read from the test data
and written into the program as constants.  RoiAlign's int64 batch_indices become an f32
argument (exact for these small integers) that is concatenated with the rois into torch's
[K, 5] boxes.

The mapping from ONNX semantics to nnc's (torch.nn.functional's) built-ins is checked, for
every converted case, by evaluating the generated .nn body with PyTorch / torchvision (the
body is Python-compatible: each nnc built-in is bound to its torch function) in float64
and in float32, and asserting that the result matches the ONNX expected output.  A case whose
ONNX semantics differ from torch's is skipped with the reason, never adjusted.

    /usr/bin/python3 tests/onnx/convert.py          # regenerate tests/onnx (deterministic)
    /usr/bin/python3 tests/onnx/convert.py --check  # only run the torch cross-check

Needs python3-onnx, libonnx-testdata, python3-torch, python3-torchvision (Debian 12).
"""
import math
import os
import re
import shutil
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.environ.get("ONNX_TESTDATA", "/usr/share/libonnx-testdata/data")

# ONNX test directories considered: (sub-directory of DATA, name regex).  Everything matching
# is either converted or listed in skipped.txt.
SELECT = [
    ("node", r"test_(basic_)?conv(_.*)?$"),
    ("node", r"test_convinteger.*"),
    ("node", r"test_convtranspose.*"),
    ("node", r"test_maxpool.*"),
    ("node", r"test_averagepool.*"),
    ("node", r"test_globalaveragepool.*"),
    ("node", r"test_batchnorm.*"),
    ("node", r"test_instancenorm.*"),
    ("node", r"test_layer_normalization.*"),
    ("node", r"test_group_normalization.*"),
    ("node", r"test_resize.*"),
    ("node", r"test_upsample.*"),
    ("node", r"test_roialign.*"),
    ("node", r"test_depthtospace.*"),
    ("node", r"test_spacetodepth.*"),
    ("node", r"test_(constant|edge|reflect)_pad"),
    # The PyTorch-exported ONNX tests: they add conv groups / depthwise / dilation and
    # ConvTranspose2d cases the node tests lack (2-D ones only).
    ("pytorch-converted", r"test_(Conv2d|ConvTranspose2d|MaxPool2d|AvgPool2d|BatchNorm[12]d)"
                          r".*|test_(ConstantPad2d|ZeroPad2d|ReflectionPad2d|ReplicationPad2d"
                          r"|PixelShuffle)"),
    ("pytorch-operator", r"test_operator_(conv|convtranspose|maxpool|pad)"),
]

# Cases whose expected outputs are less precise than float32: (absolute precision, reason).
# The torch cross-check allows that much, and the case gets a `tolerance` file for the runner.
ORACLE_PRECISION = {
    "test_roialign_aligned_false": (1e-4, "the expected outputs are written with 4 decimals "
                                    "in onnx/backend/test/case/node/roialign.py"),
    "test_roialign_aligned_true": (1e-4, "the expected outputs are written with 4 decimals "
                                   "in onnx/backend/test/case/node/roialign.py"),
}
ATOL, RTOL = 1e-5, 1e-4  # the golden runner's tolerance: |got - want| <= ATOL + RTOL |want|

MAX_BYTES = 1 << 20  # a case whose inputs + outputs exceed this is not committed (skipped)
FLT_MAX = float(np.finfo(np.float32).max)

# Names an argument may not take: nnc's keywords, built-in functions and layers (from the
# compiler's registry), the names that are not keywords but mean something in a body, and
# the keyword-argument names of the built-ins the generated bodies call.
sys.path.insert(0, os.path.join(HERE, "..", "tools"))
import nnc_registry  # noqa: E402

_ROOT = os.path.join(HERE, "..", "..")
RESERVED = (set(nnc_registry.keywords(_ROOT)) | set(nnc_registry.names(_ROOT)[0]) | set("""
none self PI
alpha axis beta condition dim end_dim input keepdim negative_slope other start_dim temperature
tensors threshold x_ y_
""".split()))


class Skip(Exception):
    pass


# ---------------------------------------------------------------------------------------------
# reading a test

def load_tensor(path):
    import onnx
    from onnx import numpy_helper
    t = onnx.TensorProto()
    with open(path, "rb") as f:
        t.ParseFromString(f.read())
    return t.name, numpy_helper.to_array(t)


class Case:
    def __init__(self, src, name):
        import onnx
        from onnx import helper, numpy_helper
        self.src, self.name = src, name
        self.dir = os.path.join(DATA, src, name)
        self.model = onnx.load(os.path.join(self.dir, "model.onnx"))
        g = self.model.graph
        self.opset = max(o.version for o in self.model.opset_import
                         if o.domain in ("", "ai.onnx"))
        self.nodes = list(g.node)
        inits = {t.name: numpy_helper.to_array(t) for t in g.initializer}
        ds = os.path.join(self.dir, "test_data_set_0")
        ins = sorted((f for f in os.listdir(ds) if f.startswith("input_")),
                     key=lambda f: int(f[6:-3]))
        outs = sorted((f for f in os.listdir(ds) if f.startswith("output_")),
                      key=lambda f: int(f[7:-3]))
        graph_ins = [i.name for i in g.input if i.name not in inits]
        self.values = dict(inits)
        self.init_names = set(inits)
        for i, f in enumerate(ins):
            n, a = load_tensor(os.path.join(ds, f))
            self.values[n or graph_ins[i]] = a
        self.graph_inputs = [i.name for i in g.input]
        self.outputs = []
        for i, f in enumerate(outs):
            n, a = load_tensor(os.path.join(ds, f))
            self.outputs.append((n or g.output[i].name, a))
        # Constant nodes
        for nd in self.nodes:
            if nd.op_type == "Constant":
                for a in nd.attribute:
                    if a.name == "value":
                        self.values[nd.output[0]] = numpy_helper.to_array(a.t)
        self.attrs = [{a.name: helper.get_attribute_value(a) for a in nd.attribute}
                      for nd in self.nodes]


def s(v):
    return v.decode() if isinstance(v, bytes) else v


def fmt_float(v):
    """A float literal for nnc (and Python): the shortest repr of the (float32) value."""
    v = float(v)
    assert math.isfinite(v)
    r = repr(v)
    if "e" not in r and "." not in r:
        r += ".0"
    return r


def fmt_list(v):
    return "[" + ", ".join(str(int(a)) for a in v) + "]"


def pair(v):
    """An int for a pair of equal values, else a list (both nnc spellings are exercised)."""
    v = [int(a) for a in v]
    return str(v[0]) if len(v) == 2 and v[0] == v[1] else fmt_list(v)


def kwargs(**kw):
    return "".join(f", {k}={v}" for k, v in kw.items() if v is not None)


def shape_str(a):
    return "f32[" + ", ".join(str(d) for d in a.shape) + "]"


# ---------------------------------------------------------------------------------------------
# one converted program

class Program:
    def __init__(self, case):
        self.case = case
        self.args = []      # (nnc name, onnx name, array)
        self.names = {}     # onnx name -> nnc name
        self.body = []
        self.results = []   # (nnc name, expected array)

    def ident(self, onnx_name, fallback):
        ok = re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", onnx_name) and onnx_name not in RESERVED
        n = onnx_name if ok else fallback
        used = {a[0] for a in self.args} | {r[0] for r in self.results}
        base, k = n, 1
        while n in used or n in RESERVED:
            n = f"{base}{k}"
            k += 1
        return n

    def arg(self, onnx_name, fallback, dtype_ok=("float32",)):
        """A tensor input of the node, as an f32 argument of run(...)."""
        if onnx_name in self.names:
            return self.names[onnx_name]
        a = self.case.values[onnx_name]
        if str(a.dtype) not in dtype_ok:
            raise Skip(f"input {onnx_name!r} is {a.dtype}; nnc ops take float32")
        n = self.ident(onnx_name, fallback)
        self.args.append((n, onnx_name, a.astype(np.float32)))
        self.names[onnx_name] = n
        return n

    def const(self, onnx_name):
        """A tensor input used as a compile-time constant (read from the test data)."""
        return self.case.values[onnx_name]

    def out(self, index, fallback):
        onnx_name, a = self.case.outputs[index]
        if a.dtype != np.float32:
            raise Skip(f"output {onnx_name!r} is {a.dtype}")
        n = self.ident(onnx_name, fallback)
        self.results.append((n, a))
        return n

    def emit(self, line):
        self.body.append(line)

    def source(self):
        c = self.case
        nd = [n for n in c.nodes if n.op_type != "Constant"]
        sig_in = ", ".join(f"{n}: {shape_str(a)}" for n, _, a in self.args)
        sig_out = ", ".join(f"{n}: {shape_str(a)}" for n, a in self.results)
        lines = [
            f"# Generated by tests/onnx/convert.py from the ONNX backend test {c.src}/{c.name}",
            f"# (ONNX {', '.join(n.op_type for n in nd)}, opset {c.opset}).  Do not edit.",
            "",
            f"export run({sig_in}) -> ({sig_out}) {{",
        ]
        lines += ["  " + l for l in self.body]
        lines += ["}", ""]
        return "\n".join(lines)


def single_node(case, *ops):
    nd = [n for n in case.nodes if n.op_type != "Constant"]
    if len(nd) != 1 or nd[0].op_type not in ops:
        raise Skip("graph is not a single " + "/".join(ops) + " node")
    i = case.nodes.index(nd[0])
    return nd[0], case.attrs[i]


def spatial(case, x, what="2-D (NCHW)"):
    if x.ndim != 4:
        raise Skip(f"{x.ndim - 2}-D spatial input; nnc has the {what} op only")


def same_pads(auto_pad, ins, ks, strides, dils):
    """ONNX SAME_UPPER / SAME_LOWER padding of Conv and pooling: output = ceil(in / stride)."""
    begins, ends = [], []
    for i, k, st, d in zip(ins, ks, strides, dils):
        out = -(-i // st)
        total = max(0, (out - 1) * st + (k - 1) * d + 1 - i)
        small, big = total // 2, total - total // 2
        if auto_pad == "SAME_UPPER":
            begins.append(small); ends.append(big)
        else:
            begins.append(big); ends.append(small)
    return begins, ends


def onnx_pads(attrs, x, ks, strides, dils):
    ap = s(attrs.get("auto_pad", "NOTSET"))
    n = len(ks)
    if ap in ("SAME_UPPER", "SAME_LOWER"):
        return same_pads(ap, x.shape[2:], ks, strides, dils)
    if ap == "VALID":
        return [0] * n, [0] * n
    p = list(attrs.get("pads", [0] * (2 * n)))
    return p[:n], p[n:]


def torch_pad_list(begins, ends):
    """ONNX per-axis (begin, end) of the last two axes -> torch's [left, right, top, bottom]."""
    return fmt_list([begins[1], ends[1], begins[0], ends[0]])


# ---------------------------------------------------------------------------------------------
# op converters: each fills a Program or raises Skip

def conv(case, p):
    node, a = single_node(case, "Conv")
    x = case.values[node.input[0]]
    spatial(case, x)
    X = p.arg(node.input[0], "x")
    W = p.arg(node.input[1], "w")
    B = p.arg(node.input[2], "b") if len(node.input) > 2 and node.input[2] else None
    w = case.values[node.input[1]]
    ks = list(a.get("kernel_shape", w.shape[2:]))
    strides = list(a.get("strides", [1, 1]))
    dils = list(a.get("dilations", [1, 1]))
    group = int(a.get("group", 1))
    b, e = onnx_pads(a, x, ks, strides, dils)
    if b == e:
        padding = pair(b) if any(b) else None
    else:
        p.emit(f"xp = pad({X}, {torch_pad_list(b, e)})")
        X, padding = "xp", None
    Y = p.out(0, "y")
    args = f"{X}, {W}" + (f", {B}" if B else "")
    p.emit(f"{Y} = conv2d({args}" + kwargs(
        stride=pair(strides) if strides != [1, 1] else None, padding=padding,
        dilation=pair(dils) if dils != [1, 1] else None,
        groups=group if group != 1 else None) + ")")


def conv_transpose(case, p):
    node, a = single_node(case, "ConvTranspose")
    x = case.values[node.input[0]]
    spatial(case, x)
    w = case.values[node.input[1]]
    X = p.arg(node.input[0], "x")
    W = p.arg(node.input[1], "w")
    B = p.arg(node.input[2], "b") if len(node.input) > 2 and node.input[2] else None
    ks = list(a.get("kernel_shape", w.shape[2:]))
    strides = list(a.get("strides", [1, 1]))
    dils = list(a.get("dilations", [1, 1]))
    group = int(a.get("group", 1))
    opad = list(a.get("output_padding", [0, 0]))
    ap = s(a.get("auto_pad", "NOTSET"))
    ins = list(x.shape[2:])
    # the un-padded ("full") output length along each axis
    full = [st * (i - 1) + op + (k - 1) * d + 1
            for i, k, st, d, op in zip(ins, ks, strides, dils, opad)]
    if "output_shape" in a or ap in ("SAME_UPPER", "SAME_LOWER"):
        # ONNX: pads are computed from the requested output shape (SAME: in * stride).
        outs = (list(a["output_shape"])[-2:] if "output_shape" in a
                else [i * st for i, st in zip(ins, strides)])
        b, e = [], []
        for f, o in zip(full, outs):
            total = f - o
            if ap == "SAME_UPPER":
                b.append(total // 2); e.append(total - total // 2)
            else:
                b.append(total - total // 2); e.append(total // 2)
    else:
        b = list(a.get("pads", [0, 0, 0, 0]))[:2]
        e = list(a.get("pads", [0, 0, 0, 0]))[2:]
    # A negative end pad lengthens the output at the end: torch's output_padding.
    tp_out = list(opad)
    for i in range(2):
        if e[i] < 0:
            tp_out[i] += -e[i]
            e[i] = 0
        if b[i] < 0:
            raise Skip("negative begin padding (output grows at the start): no torch equivalent")
        if tp_out[i] and tp_out[i] >= max(strides[i], dils[i]):
            raise Skip(f"output_padding {tp_out[i]} >= max(stride, dilation): torch refuses it")
    pt = [min(b[i], e[i]) for i in range(2)]
    Y = p.out(0, "y")
    args = f"{X}, {W}" + (f", {B}" if B else "")
    call = f"conv_transpose2d({args}" + kwargs(
        stride=pair(strides) if strides != [1, 1] else None,
        padding=pair(pt) if any(pt) else None,
        output_padding=pair(tp_out) if any(tp_out) else None,
        groups=group if group != 1 else None,
        dilation=pair(dils) if dils != [1, 1] else None) + ")"
    if b == e:
        p.emit(f"{Y} = {call}")
    else:
        # asymmetric pads: torch pads both ends by the smaller one; crop the rest
        full_t = [f + (t - op) - 2 * q for f, t, op, q in zip(full, tp_out, opad, pt)]
        sl = [f"{b[i] - pt[i]}:{full_t[i] - (e[i] - pt[i])}" for i in range(2)]
        p.emit(f"yf = {call}")
        p.emit(f"{Y} = yf[:, :, {sl[0]}, {sl[1]}]")


def pool_window_plan(ins, ks, strides, dils, b, e, outs, ceil_mode):
    """How to express ONNX pooling with per-axis pads (b, e) in torch, whose pooling pads both
    ends equally by at most kernel/2.  Returns ('direct', p), ('crop', p, slices) or None."""
    if b == e and all(q <= k // 2 for q, k in zip(b, ks)):
        return ("direct", b)
    if ceil_mode:
        return None
    pt = [max(q, r) for q, r in zip(b, e)]
    if not all(q <= k // 2 for q, k in zip(pt, ks)):
        return None
    sl = []
    for i in range(2):
        if (pt[i] - b[i]) % strides[i]:
            return None
        off = (pt[i] - b[i]) // strides[i]
        n_t = (ins[i] + 2 * pt[i] - ((ks[i] - 1) * dils[i] + 1)) // strides[i] + 1
        if off + outs[i] > n_t:
            return None
        sl.append(f"{off}:{off + outs[i]}")
    return ("crop", pt, sl)


def max_pool(case, p):
    node, a = single_node(case, "MaxPool")
    if len(case.outputs) > 1 or len(node.output) > 1:
        raise Skip("MaxPool with the Indices output: nnc's max_pool2d returns values only")
    x = case.values[node.input[0]]
    spatial(case, x)
    if x.dtype != np.float32:
        raise Skip(f"input is {x.dtype}; nnc ops take float32")
    ks = list(a["kernel_shape"])
    strides = list(a.get("strides", [1, 1]))
    dils = list(a.get("dilations", [1, 1]))
    ceil_mode = int(a.get("ceil_mode", 0))
    if int(a.get("storage_order", 0)):
        raise Skip("storage_order only affects Indices")
    b, e = onnx_pads(a, x, ks, strides, dils)
    X = p.arg(node.input[0], "x")
    Y = p.out(0, "y")
    outs = list(case.outputs[0][1].shape[2:])
    plan = pool_window_plan(list(x.shape[2:]), ks, strides, dils, b, e, outs, ceil_mode)
    kw = dict(stride=pair(strides) if strides != ks else None,  # torch's default: kernel
              dilation=pair(dils) if dils != [1, 1] else None,
              ceil_mode="true" if ceil_mode else None)
    if plan and plan[0] == "direct":
        p.emit(f"{Y} = max_pool2d({X}, {pair(ks)}" +
               kwargs(stride=kw["stride"], padding=pair(b) if any(b) else None,
                      dilation=kw["dilation"], ceil_mode=kw["ceil_mode"]) + ")")
    elif plan:
        _, pt, sl = plan
        p.emit(f"yf = max_pool2d({X}, {pair(ks)}" +
               kwargs(stride=kw["stride"], padding=pair(pt), dilation=kw["dilation"]) + ")")
        p.emit(f"{Y} = yf[:, :, {sl[0]}, {sl[1]}]")
    else:
        # ONNX max pooling ignores the padded cells: pad with -FLT_MAX (every window holds
        # at least one real element, since pads < effective kernel), then pool unpadded.
        if any(q >= (k - 1) * d + 1 for q, k, d in zip(b + e, ks + ks, dils + dils)):
            raise Skip("a window could lie entirely in the padding")
        p.emit(f"xp = pad({X}, {torch_pad_list(b, e)}, value={fmt_float(-FLT_MAX)})")
        p.emit(f"{Y} = max_pool2d(xp, {pair(ks)}" +
               kwargs(stride=kw["stride"], dilation=kw["dilation"],
                      ceil_mode=kw["ceil_mode"]) + ")")


def avg_pool(case, p):
    node, a = single_node(case, "AveragePool")
    x = case.values[node.input[0]]
    spatial(case, x)
    ks = list(a["kernel_shape"])
    strides = list(a.get("strides", [1, 1]))
    if list(a.get("dilations", [1, 1])) != [1, 1]:
        raise Skip("dilated average pooling: torch's avg_pool2d has no dilation")
    ceil_mode = int(a.get("ceil_mode", 0))
    cip = int(a.get("count_include_pad", 0))
    b, e = onnx_pads(a, x, ks, strides, [1, 1])
    X = p.arg(node.input[0], "x")
    Y = p.out(0, "y")
    outs = list(case.outputs[0][1].shape[2:])
    plan = pool_window_plan(list(x.shape[2:]), ks, strides, [1, 1], b, e, outs, ceil_mode)
    st = pair(strides) if strides != ks else None  # torch's default stride is the kernel
    if plan and plan[0] == "direct":
        p.emit(f"{Y} = avg_pool2d({X}, {pair(ks)}" + kwargs(
            stride=st, padding=pair(b) if any(b) else None,
            ceil_mode="true" if ceil_mode else None,
            count_include_pad=None if cip else "false") + ")")
    elif plan:
        _, pt, sl = plan
        p.emit(f"yf = avg_pool2d({X}, {pair(ks)}" + kwargs(
            stride=st, padding=pair(pt), count_include_pad=None if cip else "false") + ")")
        p.emit(f"{Y} = yf[:, :, {sl[0]}, {sl[1]}]")
    else:
        if ceil_mode:
            raise Skip("ceil_mode with padding beyond torch's limit")
        pl = torch_pad_list(b, e)
        p.emit(f"xp = pad({X}, {pl})")
        if cip:
            # the padded zeros count: average over the zero-padded input
            p.emit(f"{Y} = avg_pool2d(xp, {pair(ks)}" + kwargs(stride=st) + ")")
        else:
            # the padded cells do not count: window sum / number of real cells
            p.emit(f"cnt = avg_pool2d(pad(ones_like({X}), {pl}), {pair(ks)}" +
                   kwargs(stride=st) + ")")
            p.emit(f"{Y} = avg_pool2d(xp, {pair(ks)}" + kwargs(stride=st) + ") / cnt")


def global_avg_pool(case, p):
    node, a = single_node(case, "GlobalAveragePool")
    x = case.values[node.input[0]]
    spatial(case, x)
    X = p.arg(node.input[0], "x")
    Y = p.out(0, "y")
    p.emit(f"{Y} = adaptive_avg_pool2d({X}, 1)")


def batch_norm(case, p):
    node, a = single_node(case, "BatchNormalization")
    if int(a.get("training_mode", 0)) or len(case.outputs) > 1:
        raise Skip("training mode (batch statistics, running-stat outputs): nnc's batch_norm "
                   "is inference only")
    if case.opset < 7 and not int(a.get("is_test", 0)):
        raise Skip("is_test=0")
    if not int(a.get("spatial", 1)):
        raise Skip("spatial=0")
    x = case.values[node.input[0]]
    if x.ndim not in (2, 3, 4):
        raise Skip(f"rank-{x.ndim} input (BatchNorm3d); nnc has BatchNorm1d/2d")
    X = p.arg(node.input[0], "x")
    S = p.arg(node.input[1], "scale")
    Bn = p.arg(node.input[2], "bias")
    M = p.arg(node.input[3], "input_mean")
    V = p.arg(node.input[4], "input_var")
    eps = float(np.float32(a.get("epsilon", 1e-5)))
    Y = p.out(0, "y")
    p.emit(f"{Y} = batch_norm({X}, {M}, {V}, {S}, {Bn}" +
           kwargs(eps=fmt_float(eps) if eps != float(np.float32(1e-5)) else None) + ")")


def instance_norm(case, p):
    node, a = single_node(case, "InstanceNormalization")
    x = case.values[node.input[0]]
    spatial(case, x)
    X = p.arg(node.input[0], "x")
    S = p.arg(node.input[1], "scale")
    Bn = p.arg(node.input[2], "bias")
    eps = float(np.float32(a.get("epsilon", 1e-5)))
    Y = p.out(0, "y")
    p.emit(f"{Y} = instance_norm({X}, weight={S}, bias={Bn}" +
           kwargs(eps=fmt_float(eps) if eps != float(np.float32(1e-5)) else None) + ")")


def layer_norm(case, p):
    node, a = single_node(case, "LayerNormalization")
    x = case.values[node.input[0]]
    if int(a.get("stash_type", 1)) != 1:
        raise Skip("stash_type != float32")
    r = x.ndim
    axis = int(a.get("axis", -1))
    axis = axis + r if axis < 0 else axis
    X = p.arg(node.input[0], "x")
    Wn = p.arg(node.input[1], "weight") if len(node.input) > 1 and node.input[1] else None
    Bn = p.arg(node.input[2], "bias") if len(node.input) > 2 and node.input[2] else None
    eps = float(np.float32(a.get("epsilon", 1e-5)))
    shape = fmt_list(x.shape[axis:])
    axes = fmt_list(range(axis, r))
    Y = p.out(0, "y")
    p.emit(f"{Y} = layer_norm({X}, {shape}" + kwargs(
        weight=Wn, bias=Bn,
        eps=fmt_float(eps) if eps != float(np.float32(1e-5)) else None) + ")")
    # the optional outputs: mean and 1/sqrt(var + eps) over the normalized axes (keepdim)
    if len(case.outputs) > 1:
        M = p.out(1, "mean_")
        p.emit(f"{M} = mean({X}, axis={axes}, keepdim=true)")
    if len(case.outputs) > 2:
        I = p.out(2, "inv_std_dev")
        p.emit(f"{I} = 1.0 / sqrt(mean(({X} - {M}) ** 2, axis={axes}, keepdim=true) + "
               f"{fmt_float(eps)})")


def _space_rearrange(case, p, op):
    node, a = single_node(case, op)
    x = case.values[node.input[0]]
    spatial(case, x)
    bs = int(a["blocksize"])
    X = p.arg(node.input[0], "x")
    Y = p.out(0, "y")
    n, c, h, w = x.shape
    if op == "DepthToSpace":
        if s(a.get("mode", "DCR")) == "CRD":
            p.emit(f"{Y} = pixel_shuffle({X}, {bs})")          # CRD is pixel_shuffle
        else:
            # DCR: input channel (i*bs + j)*C' + c  ->  pixel_shuffle's c*bs*bs + i*bs + j
            cc = c // (bs * bs)
            p.emit(f"xc = reshape(permute(reshape({X}, [{n}, {bs * bs}, {cc}, {h}, {w}]), "
                   f"[0, 2, 1, 3, 4]), [{n}, {c}, {h}, {w}])")
            p.emit(f"{Y} = pixel_shuffle(xc, {bs})")
    else:
        # SpaceToDepth's output channel (i*bs + j)*C + c; pixel_unshuffle's c*bs*bs + i*bs + j
        ho, wo = h // bs, w // bs
        p.emit(f"u = pixel_unshuffle({X}, {bs})")
        p.emit(f"{Y} = reshape(permute(reshape(u, [{n}, {c}, {bs * bs}, {ho}, {wo}]), "
               f"[0, 2, 1, 3, 4]), [{n}, {c * bs * bs}, {ho}, {wo}])")


def depth_to_space(case, p):
    _space_rearrange(case, p, "DepthToSpace")


def space_to_depth(case, p):
    _space_rearrange(case, p, "SpaceToDepth")


def pixel_shuffle_graph(case, p):
    """PyTorch's exported PixelShuffle: Reshape [N, C, r, r, H, W], Transpose
    [0, 1, 4, 2, 5, 3], Reshape [N, C, H*r, W*r] -- exactly pixel_shuffle(x, r)."""
    nd = [n for n in case.nodes if n.op_type != "Constant"]
    if [n.op_type for n in nd] != ["Reshape", "Transpose", "Reshape"]:
        raise Skip("not the Reshape-Transpose-Reshape pixel shuffle pattern")
    x = case.values[nd[0].input[0]]
    s1 = list(case.values[nd[0].input[1]])
    perm = list(case.attrs[case.nodes.index(nd[1])]["perm"])
    s2 = list(case.values[nd[2].input[1]])
    n, c, h, w = x.shape
    if len(s1) != 6 or s1[2] != s1[3] or perm != [0, 1, 4, 2, 5, 3]:
        raise Skip("not the pixel shuffle pattern")
    r = s1[2]
    if s1 != [n, c // (r * r), r, r, h, w] or s2 != [n, c // (r * r), h * r, w * r]:
        raise Skip("not the pixel shuffle pattern")
    X = p.arg(nd[0].input[0], "x")
    Y = p.out(0, "y")
    p.emit(f"{Y} = pixel_shuffle({X}, {r})")


def pad_op(case, p):
    node, a = single_node(case, "Pad")
    mode = s(a.get("mode", "constant"))
    if mode != "constant":
        raise Skip(f"mode '{mode}': nnc's pad is constant mode only")
    x = case.values[node.input[0]]
    if case.opset >= 11:
        pads = [int(v) for v in p.const(node.input[1])]
        value = (float(p.const(node.input[2])) if len(node.input) > 2 and node.input[2]
                 else 0.0)
    else:
        pads = [int(v) for v in a["pads"]]
        value = float(np.float32(a.get("value", 0.0)))
    r = x.ndim
    if any(v < 0 for v in pads):
        raise Skip("negative pads (cropping)")
    # torch order: last axis first, (begin, end) per axis; leading unpadded axes dropped
    tl = []
    for ax in reversed(range(r)):
        tl += [pads[ax], pads[ax + r]]
    while len(tl) > 4 and tl[-1] == 0 and tl[-2] == 0:
        tl = tl[:-2]
    X = p.arg(node.input[0], "x")
    Y = p.out(0, "y")
    p.emit(f"{Y} = pad({X}, {fmt_list(tl)}" +
           kwargs(value=fmt_float(value) if value != 0.0 else None) + ")")


def _onnx_coord(mode, dst, in_len, out_w, scale):
    """ONNX Resize coordinate transform of output index dst, as the ONNX reference
    (onnx/backend/test/case/node/resize.py) computes it: out_w = scale * in_len is the
    *unrounded* output length."""
    if mode == "half_pixel":
        return (dst + 0.5) / scale - 0.5
    if mode == "pytorch_half_pixel":
        return (dst + 0.5) / scale - 0.5 if out_w != 1 else -0.5
    if mode == "align_corners":
        return 0.0 if out_w == 1 else dst * (in_len - 1) / (out_w - 1)
    if mode == "asymmetric":
        return dst / scale
    raise Skip(f"coordinate_transformation_mode '{mode}'")


def _onnx_nearest(nearest_mode, xf):
    if nearest_mode == "round_prefer_floor":
        return math.ceil(xf - 0.5)
    if nearest_mode == "round_prefer_ceil":
        return math.floor(xf + 0.5)
    if nearest_mode == "floor":
        return math.floor(xf)
    if nearest_mode == "ceil":
        return math.ceil(xf)
    raise Skip(f"nearest_mode '{nearest_mode}'")


def resize(case, p):
    nd = [n for n in case.nodes if n.op_type != "Constant"]
    if len(nd) != 1 or nd[0].op_type not in ("Resize", "Upsample"):
        raise Skip("graph is not a single Resize node")
    node = nd[0]
    a = case.attrs[case.nodes.index(node)]
    x = case.values[node.input[0]]
    spatial(case, x)
    y = case.outputs[0][1]
    mode = s(a.get("mode", "nearest"))
    if node.op_type == "Upsample":
        coord, nearest_mode = "asymmetric", "floor"   # Upsample-9: dst / scale, floor
        scales = [float(v) for v in p.const(node.input[1])]
        sizes = None
    else:
        coord = s(a.get("coordinate_transformation_mode", "half_pixel"))
        nearest_mode = s(a.get("nearest_mode", "round_prefer_floor"))
        scales = sizes = None
        if len(node.input) > 2 and node.input[2] and p.const(node.input[2]).size:
            scales = [float(v) for v in p.const(node.input[2])]
        if len(node.input) > 3 and node.input[3]:
            sizes = [int(v) for v in p.const(node.input[3])]
    if mode not in ("nearest", "linear"):
        raise Skip(f"mode '{mode}': nnc's interpolate has nearest and bilinear only")
    if coord in ("tf_crop_and_resize", "tf_half_pixel_for_nn"):
        raise Skip(f"coordinate_transformation_mode '{coord}' has no torch equivalent")
    ins = list(x.shape[2:])
    outs = list(y.shape[2:])
    if list(y.shape[:2]) != list(x.shape[:2]) or (scales and scales[:2] != [1.0, 1.0]):
        raise Skip("resizes the batch or channel axis")
    # the scale ONNX uses in its coordinate transform, and torch's
    if scales:
        sc = [float(np.float32(v)) for v in scales[2:]]
        torch_arg = "scale_factor=[" + ", ".join(fmt_float(v) for v in sc) + "]"
        torch_step = [1.0 / v for v in sc]          # torch: 1 / scale_factor when given
    else:
        sc = [o / i for o, i in zip(outs, ins)]
        torch_arg = "size=" + fmt_list(outs)
        torch_step = [i / o for o, i in zip(outs, ins)]
    out_w = [v * i for v, i in zip(sc, ins)]  # ONNX's unrounded output lengths
    if mode == "nearest":
        # torch nearest: src = floor(dst * step) (float32), clamped to in - 1.  Map only if
        # ONNX's index map (its coordinate transform and rounding) is exactly that.
        for ax in range(2):
            for dst in range(outs[ax]):
                xf = _onnx_coord(coord, dst, ins[ax], out_w[ax], sc[ax])
                oi = min(max(_onnx_nearest(nearest_mode, xf), 0), ins[ax] - 1)
                ti = min(int(math.floor(np.float32(dst) * np.float32(torch_step[ax]))),
                         ins[ax] - 1)
                if oi != ti:
                    raise Skip(f"nearest with '{coord}'/'{nearest_mode}': output index {dst} "
                               f"reads input {oi} on axis {ax + 2}, torch's nearest (floor of "
                               f"dst*in/out) reads {ti}")
        X = p.arg(node.input[0], "x")
        Y = p.out(0, "y")
        p.emit(f"{Y} = interpolate({X}, {torch_arg})")
        return
    # linear: torch bilinear, align_corners=false (half_pixel, clamped at 0) or true
    if coord == "half_pixel":
        ac = False
    elif coord == "pytorch_half_pixel":
        if min(out_w) == 1:
            raise Skip("pytorch_half_pixel with an output length of 1: ONNX samples "
                       "coordinate -0.5 (the first element), torch's bilinear (in - 1) / 2")
        ac = False
    elif coord == "align_corners":
        if out_w != [float(o) for o in outs]:
            raise Skip("align_corners with scales whose output length in * scale = " +
                       ", ".join(f"{v:g}" for v in out_w) + " is not an integer: ONNX "
                       "divides by (in * scale - 1), torch by (output length - 1)")
        ac = True
    else:
        raise Skip(f"linear with '{coord}' has no torch equivalent")
    if a.get("exclude_outside") or float(a.get("extrapolation_value", 0.0)) != 0.0:
        pass  # only used by cubic / tf_crop_and_resize
    X = p.arg(node.input[0], "x")
    Y = p.out(0, "y")
    p.emit(f"{Y} = interpolate({X}, {torch_arg}, mode=\"bilinear\"" +
           (", align_corners=true" if ac else "") + ")")


def roi_align_op(case, p):
    node, a = single_node(case, "RoiAlign")
    if s(a.get("mode", "avg")) != "avg":
        raise Skip("mode 'max': torchvision's roi_align averages")
    coord = s(a.get("coordinate_transformation_mode", "half_pixel"))
    if case.opset < 16:
        coord = "output_half_pixel"
    aligned = {"half_pixel": True, "output_half_pixel": False}[coord]
    X = p.arg(node.input[0], "x")
    R = p.arg(node.input[1], "rois")
    bi = case.values[node.input[2]]
    if bi.dtype != np.int64 or (bi.astype(np.float32).astype(np.int64) != bi).any():
        raise Skip("batch_indices not exactly representable")
    BI = p.arg(node.input[2], "batch_indices", dtype_ok=("int64",))
    oh, ow = int(a.get("output_height", 1)), int(a.get("output_width", 1))
    sr = int(a.get("sampling_ratio", 0))
    ss = float(np.float32(a.get("spatial_scale", 1.0)))
    Y = p.out(0, "y")
    p.emit(f"boxes = cat([unsqueeze({BI}, 1), {R}], axis=1)")
    p.emit(f"{Y} = roi_align({X}, boxes, {pair([oh, ow])}" + kwargs(
        spatial_scale=fmt_float(ss) if ss != 1.0 else None,
        sampling_ratio=sr if sr > 0 else None,
        aligned="true" if aligned else None) + ")")


CONVERTERS = {
    "Conv": conv, "ConvTranspose": conv_transpose, "MaxPool": max_pool,
    "AveragePool": avg_pool, "GlobalAveragePool": global_avg_pool,
    "BatchNormalization": batch_norm, "InstanceNormalization": instance_norm,
    "LayerNormalization": layer_norm, "DepthToSpace": depth_to_space,
    "SpaceToDepth": space_to_depth, "Pad": pad_op, "Resize": resize, "Upsample": resize,
    "RoiAlign": roi_align_op,
}


def convert(case):
    ops = [n.op_type for n in case.nodes if n.op_type != "Constant"]
    if case.name.endswith("_expanded"):
        raise Skip("function-expanded duplicate of " + case.name[:-len("_expanded")] +
                   " (same data)")
    if ops == ["Reshape", "Transpose", "Reshape"]:
        fn = pixel_shuffle_graph
    elif len(ops) == 1 and ops[0] in CONVERTERS:
        fn = CONVERTERS[ops[0]]
    else:
        raise Skip("op " + "/".join(ops) + " is not an nnc op (integer/quantized or other)")
    p = Program(case)
    fn(case, p)
    if len(p.results) != len(case.outputs):
        raise Skip("not every output is expressed")
    size = sum(a.nbytes for _, _, a in p.args) + sum(a.nbytes for _, a in p.results)
    if size > MAX_BYTES:
        raise Skip(f"too large to commit ({size / 2**20:.1f} MB of inputs and outputs)")
    return p


# ---------------------------------------------------------------------------------------------
# the torch cross-check: evaluate the generated body with torch

def torch_namespace(dtype):
    import torch
    import torch.nn.functional as F
    import torchvision

    def axis_kw(kw):
        if "axis" in kw:
            kw["dim"] = kw.pop("axis")
        return kw

    def tup(v):
        return tuple(v) if isinstance(v, list) else v

    def interpolate(x, size=None, scale_factor=None, mode="nearest", align_corners=None):
        return F.interpolate(x, size=tup(size), scale_factor=tup(scale_factor), mode=mode,
                             align_corners=align_corners)

    return {
        "true": True, "false": False,
        "conv2d": lambda x, w, b=None, **kw: F.conv2d(x, w, b, **{k: tup(v) for k, v in kw.items()}),
        "conv_transpose2d": lambda x, w, b=None, **kw: F.conv_transpose2d(
            x, w, b, **{k: tup(v) for k, v in kw.items()}),
        "pad": lambda x, pads, value=0.0: F.pad(x, tuple(pads), mode="constant", value=value),
        "max_pool2d": lambda x, k, **kw: F.max_pool2d(x, tup(k), **{k_: tup(v) for k_, v in kw.items()}),
        "avg_pool2d": lambda x, k, **kw: F.avg_pool2d(x, tup(k), **{k_: tup(v) for k_, v in kw.items()}),
        "adaptive_avg_pool2d": lambda x, o: F.adaptive_avg_pool2d(x, tup(o)),
        "batch_norm": lambda x, m, v, w=None, b=None, eps=1e-5: F.batch_norm(
            x, m, v, w, b, training=False, eps=eps),
        "instance_norm": lambda x, weight=None, bias=None, eps=1e-5: F.instance_norm(
            x, weight=weight, bias=bias, eps=eps),
        "layer_norm": lambda x, shape, weight=None, bias=None, eps=1e-5: F.layer_norm(
            x, tuple(shape), weight, bias, eps),
        "group_norm": lambda x, g, weight=None, bias=None, eps=1e-5: F.group_norm(
            x, g, weight, bias, eps),
        "interpolate": interpolate,
        "pixel_shuffle": F.pixel_shuffle, "pixel_unshuffle": F.pixel_unshuffle,
        "roi_align": lambda x, boxes, out, spatial_scale=1.0, sampling_ratio=-1, aligned=False:
            torchvision.ops.roi_align(x, boxes, tup(out), spatial_scale, sampling_ratio, aligned),
        "reshape": lambda x, s_: torch.reshape(x, tuple(s_)),
        "permute": lambda x, s_: x.permute(*s_),
        "cat": lambda xs, **kw: torch.cat(xs, **axis_kw(kw)),
        "unsqueeze": torch.unsqueeze,
        "ones_like": torch.ones_like,
        "mean": lambda x, **kw: torch.mean(x, **axis_kw(kw)),
        "sqrt": torch.sqrt,
    }


def torch_eval(p, dtype):
    import torch
    env = torch_namespace(dtype)
    for n, _, a in p.args:
        env[n] = torch.from_numpy(a.astype(dtype))
    with torch.no_grad():
        for line in p.body:
            exec(line, {"__builtins__": {}}, env)
    return {n: env[n].numpy() for n, _ in p.results}


def cross_check(p):
    """Max error of the torch evaluation against the ONNX expected outputs, in float64 and
    float32; raises if float64 is off (the mapping is wrong) or float32 is not within the
    golden runner's tolerance |d| <= 1e-5 + 1e-4 |want|."""
    worst = {}
    prec = ORACLE_PRECISION.get(p.case.name, (0.0, ""))[0]
    for dtype in (np.float64, np.float32):
        got = torch_eval(p, dtype)
        err = 0.0
        for n, want in p.results:
            g = got[n]
            if g.shape != want.shape:
                raise AssertionError(f"{p.case.name}: torch gives {n} shape {g.shape}, ONNX "
                                     f"{want.shape}")
            d = np.abs(g.astype(np.float64) - want.astype(np.float64))
            err = max(err, float(d.max()) if d.size else 0.0)
            tol = ATOL + prec + RTOL * np.abs(want.astype(np.float64))
            if dtype == np.float32 and (d > tol).any():
                raise AssertionError(f"{p.case.name}: torch float32 {n} differs from ONNX by "
                                     f"{d.max():.3g} (beyond the runner's tolerance)")
            if dtype == np.float64 and (d > 1e-5 + prec + 1e-5 * np.abs(want)).any():
                raise AssertionError(f"{p.case.name}: torch float64 {n} differs from ONNX by "
                                     f"{d.max():.3g}: the mapping is wrong")
        worst[np.dtype(dtype).name] = err
    return worst


# ---------------------------------------------------------------------------------------------

def selected_cases():
    out = []
    for src, pat in SELECT:
        d = os.path.join(DATA, src)
        for name in sorted(os.listdir(d)):
            if re.fullmatch(pat, name) and (src, name) not in out:
                out.append((src, name))
    return out


def write_case(p):
    d = os.path.join(HERE, p.case.name)
    os.makedirs(d)
    with open(os.path.join(d, "model.nn"), "w") as f:
        f.write(p.source())
    for n, _, a in p.args:
        np.save(os.path.join(d, f"run.in.{n}.npy"), np.ascontiguousarray(a, dtype="<f4"),
                allow_pickle=False)
    for n, a in p.results:
        np.save(os.path.join(d, f"run.out.{n}.npy"), np.ascontiguousarray(a, dtype="<f4"),
                allow_pickle=False)
    if p.case.name in ORACLE_PRECISION:
        prec, why = ORACLE_PRECISION[p.case.name]
        with open(os.path.join(d, "tolerance"), "w") as f:
            f.write(f"atol={ATOL + prec:g} rtol={RTOL:g}\n# {why}\n")


README_BEGIN = "<!-- skipped:begin (written by convert.py) -->"
README_END = "<!-- skipped:end -->"


def main(argv):
    check_only = "--check" in argv
    if not os.path.isdir(DATA):
        sys.exit(f"convert.py: no ONNX test data at {DATA} (apt-get install libonnx-testdata)")
    converted, skipped, failures = [], [], []
    for src, name in selected_cases():
        case = Case(src, name)
        try:
            p = convert(case)
        except Skip as e:
            skipped.append((src, name, str(e)))
            continue
        try:
            err = cross_check(p)
        except AssertionError as e:
            failures.append(str(e))
            continue
        converted.append((p, err))
    if failures:
        sys.exit("convert.py: the torch cross-check failed (nothing written):\n  " +
                 "\n  ".join(failures))
    if not check_only:
        for fn in os.listdir(HERE):
            if fn.startswith("test_") and os.path.isdir(os.path.join(HERE, fn)):
                shutil.rmtree(os.path.join(HERE, fn))
        for p, _ in converted:
            write_case(p)
        with open(os.path.join(HERE, "skipped.txt"), "w") as f:
            f.write("# ONNX tests selected by tests/onnx/convert.py but not converted "
                    "(generated; case<TAB>reason)\n")
            for src, name, why in skipped:
                f.write(f"{src}/{name}\t{why}\n")
        rd = os.path.join(HERE, "README.md")
        if os.path.exists(rd):
            text = open(rd).read()
            if README_BEGIN in text and README_END in text:
                rows = "\n".join(f"| `{src}/{name}` | {why} |" for src, name, why in skipped)
                table = ("| case | reason |\n|---|---|\n" + rows + "\n")
                pre, rest = text.split(README_BEGIN, 1)
                _, post = rest.split(README_END, 1)
                with open(rd, "w") as f:
                    f.write(pre + README_BEGIN + "\n" + table + README_END + post)
    for p, err in converted:
        print(f"  {p.case.src}/{p.case.name}: torch vs ONNX max |d| float64 "
              f"{err['float64']:.2g}, float32 {err['float32']:.2g}")
    print(f"convert.py: {len(converted)} converted, {len(skipped)} skipped"
          + ("" if check_only else f" -> {HERE}"))


if __name__ == "__main__":
    main(sys.argv)
