#!/usr/bin/python3
"""make_models.py — writes the small .onnx files that tests/unit/test_onnx_reader.c reads.

Run with Debian's Python (python3-onnx, python3-torch): `/usr/bin/python3 make_models.py`
in this folder.  The outputs are committed, so the test suite needs neither onnx nor torch
(the README's test command does not install them).  Every file is a few kilobytes.

Good models: conv_relu_gemm.onnx (initializers in raw_data and in the typed fields, a
symbolic batch dim, a Constant node), dtypes.onnx (one initializer per supported dtype, from
raw_data and from typed fields), attrs.onnx (every attribute kind), external.onnx +
external.bin (weights outside the model), torch_cnn.onnx (torch.onnx.export of a small CNN,
with an input and PyTorch's output: torch_cnn.x.npy, torch_cnn.y.npy), ops_seed.onnx (a fuzz
seed through the ops of issue 19's second set).
Malformed models (bad_*.onnx, ext_*.onnx): each breaks one rule of the reader; the test
asserts its message.  import_*.onnx: read, then refused by the translation (test_onnx.py).  Truncated files, deep nesting and symbolic links are made by the test.
"""
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))


def save(model, name):
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(model.SerializeToString())


def model_of(nodes, inputs, outputs, inits=(), value_info=(), opsets=(("", 13),)):
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(inits), value_info=list(value_info))
    return helper.make_model(graph, producer_name="make_models.py",
                             opset_imports=[helper.make_opsetid(d, v) for d, v in opsets])


def typed(name, dtype, dims, field, values):
    """A TensorProto with its values in a typed field (not raw_data)."""
    t = TensorProto(name=name, data_type=dtype, dims=dims)
    getattr(t, field).extend(values)
    return t


def raw(name, dtype, dims, data):
    return TensorProto(name=name, data_type=dtype, dims=dims, raw_data=data)


def ramp(*shape, scale=0.25, offset=-1.0):
    """Values the test can recompute: element i is i * scale + offset (exact in float32)."""
    return (np.arange(np.prod(shape)) * scale + offset).astype(np.float32).reshape(shape)


def conv_relu_gemm():
    w = numpy_helper.from_array(ramp(4, 3, 3, 3), "conv.weight")        # raw_data
    b = typed("conv.bias", TensorProto.FLOAT, [4], "float_data", ramp(4).tolist())
    fw = typed("fc.weight", TensorProto.FLOAT, [10, 256], "float_data", ramp(10, 256).ravel().tolist())
    fb = numpy_helper.from_array(ramp(10), "fc.bias")
    shape = helper.make_tensor("shape", TensorProto.INT64, [2], [-1, 256])  # int64_data
    nodes = [
        helper.make_node("Conv", ["x", "conv.weight", "conv.bias"], ["c"], name="conv1",
                         kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[1, 1]),
        helper.make_node("Relu", ["c"], ["r"], name="relu1"),
        helper.make_node("Constant", [], ["s"], name="shape_const", value=shape),
        helper.make_node("Reshape", ["r", "s"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "fc.weight", "fc.bias"], ["y"], name="fc",
                         alpha=1.0, beta=1.0, transB=1),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 10])
    c = helper.make_tensor_value_info("c", TensorProto.FLOAT, ["N", 4, None, 8])  # an unknown dim
    save(model_of(nodes, [x], [y], [w, b, fw, fb], [c]), "conv_relu_gemm.onnx")


def dtypes():
    T = TensorProto
    inits = [
        typed("f64", T.DOUBLE, [2], "double_data", [1.5, -2.25]),
        typed("i8", T.INT8, [3], "int32_data", [-128, 0, 127]),
        typed("u8", T.UINT8, [2], "int32_data", [0, 255]),
        typed("i16", T.INT16, [2], "int32_data", [-32768, 32767]),
        typed("u16", T.UINT16, [1], "int32_data", [65535]),
        typed("i32", T.INT32, [2], "int32_data", [-7, 7]),
        typed("i64", T.INT64, [2], "int64_data", [-(2 ** 40), 2 ** 40]),
        typed("u32", T.UINT32, [1], "uint64_data", [4000000000]),
        typed("u64", T.UINT64, [1], "uint64_data", [2 ** 63]),
        typed("bool", T.BOOL, [3], "int32_data", [1, 0, 1]),
        typed("f16", T.FLOAT16, [1], "int32_data", [0x3c00]),       # 1.0 as float16 bits
        typed("bf16", T.BFLOAT16, [1], "int32_data", [0x3f80]),     # 1.0 as bfloat16 bits
        raw("raw_i64", T.INT64, [2], np.array([3, -4], "<i8").tobytes()),
        raw("raw_bool", T.BOOL, [2], bytes([0, 1])),
        raw("scalar", T.FLOAT, [], np.array(2.5, "<f4").tobytes()),
        raw("empty", T.FLOAT, [0, 3], b""),
    ]
    nodes = [helper.make_node("Identity", ["f64"], ["y"])]
    y = helper.make_tensor_value_info("y", TensorProto.DOUBLE, [2])
    save(model_of(nodes, [], [y], inits), "dtypes.onnx")


def attrs():
    t = helper.make_tensor("t", TensorProto.FLOAT, [2], [1.0, 2.0])
    node = helper.make_node("Everything", ["x", ""], ["y"], name="all", domain="nnc.test",
                            f=0.5, i=-3, s="SAME_UPPER", t=t, floats=[1.0, 2.5], ints=[1, 2, 3],
                            strings=["a", "bc"])
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)  # no shape: rank unknown
    save(model_of([node], [x], [y], opsets=(("", 13), ("nnc.test", 1))), "attrs.onnx")


def external_entries(t, **kv):
    t.data_location = TensorProto.EXTERNAL
    for k, v in kv.items():
        e = t.external_data.add()
        e.key, e.value = k, str(v)
    return t


def external():
    a = ramp(4, 3).astype("<f4").tobytes()
    b = np.arange(5, dtype="<i8").tobytes()
    with open(os.path.join(HERE, "external.bin"), "wb") as f:
        f.write(a + b)
    def model(name, ta, tb=None):
        nodes = [helper.make_node("Identity", ["a"], ["y"])]
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 3])
        save(model_of(nodes, [], [y], [ta] + ([tb] if tb is not None else [])), name)
    def ta(**kv):
        return external_entries(TensorProto(name="a", data_type=TensorProto.FLOAT, dims=[4, 3]), **kv)
    tb = external_entries(TensorProto(name="b", data_type=TensorProto.INT64, dims=[5]),
                          location="external.bin", offset=len(a), length=len(b))
    model("external.onnx", ta(location="external.bin", offset=0, length=len(a)), tb)
    model("ext_escape.onnx", ta(location="../external.bin", offset=0, length=len(a)))
    model("ext_absolute.onnx", ta(location="/etc/hostname"))
    model("ext_link.onnx", ta(location="link.bin", offset=0, length=len(a)))  # the test makes link.bin
    model("ext_truncated.onnx", ta(location="external.bin", offset=len(a) + len(b) - 40, length=len(a)))
    model("ext_length.onnx", ta(location="external.bin", offset=0, length=44))
    model("ext_missing.onnx", ta(location="missing.bin", offset=0, length=len(a)))


def malformed():
    T = TensorProto
    y = helper.make_tensor_value_info("y", T.FLOAT, [1])
    def one_init(name, t):
        save(model_of([helper.make_node("Identity", [t.name], ["y"])], [], [y], [t]), name)
    one_init("bad_raw_size.onnx", raw("fc.weight", T.FLOAT, [10, 10], bytes(396)))
    one_init("bad_negative_dim.onnx", raw("w", T.FLOAT, [-1, 4], b""))
    one_init("bad_huge_dims.onnx", raw("w", T.FLOAT, [2 ** 40, 2 ** 40], bytes(4)))
    one_init("bad_huge_bytes.onnx", raw("w", T.DOUBLE, [2 ** 31, 2 ** 31], bytes(8)))
    one_init("bad_rank.onnx", raw("w", T.FLOAT, [1] * 9, bytes(4)))
    one_init("bad_string.onnx", typed("names", T.STRING, [2], "string_data", [b"a", b"b"]))
    one_init("bad_complex.onnx", typed("z", T.COMPLEX64, [1], "float_data", [1.0, 2.0]))
    one_init("bad_count.onnx", typed("w", T.FLOAT, [2, 3], "float_data", [1.0] * 5))
    one_init("bad_field.onnx", typed("w", T.FLOAT, [2], "int64_data", [1, 2]))
    one_init("bad_range.onnx", typed("q", T.INT8, [2], "int32_data", [1, 300]))
    one_init("bad_nodata.onnx", TensorProto(name="w", data_type=T.FLOAT, dims=[3]))
    two = raw("w", T.FLOAT, [1], bytes(4))
    two.float_data.append(1.0)
    one_init("bad_two_sources.onnx", two)
    save(model_of([], [], [y], [raw("w", T.FLOAT, [1], bytes(4)), raw("w", T.FLOAT, [1], bytes(4))]),
         "bad_duplicate.onnx")
    x = helper.make_tensor_value_info("x", T.FLOAT, [2, -3])
    save(model_of([helper.make_node("Relu", ["x"], ["y"], name="r")], [x], [y]), "bad_input_dim.onnx")
    then = helper.make_graph([], "then", [], [y])
    cond = helper.make_node("If", ["c"], ["y"], name="branch", then_branch=then, else_branch=then)
    save(model_of([cond], [], [y]), "bad_subgraph.onnx")
    custom = helper.make_node("Gelu", ["x"], ["y"], name="g", domain="com.microsoft")
    save(model_of([custom], [], [y]), "bad_domain.onnx")
    bad_const = helper.make_node("Constant", [], ["y"], name="c0",
                                 value=raw("", T.FLOAT, [10, 10], bytes(396)))
    save(model_of([bad_const], [], [y]), "bad_constant.onnx")
    one_init("bad_escape.onnx", raw("w\x01\xff", T.FLOAT, [2], bytes(4)))


def torch_cnn():
    import torch
    torch.manual_seed(0)
    m = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
        torch.nn.MaxPool2d(2), torch.nn.Flatten(), torch.nn.Linear(4 * 4 * 4, 10)).eval()
    torch.onnx.export(m, torch.randn(1, 3, 8, 8), os.path.join(HERE, "torch_cnn.onnx"),
                      input_names=["x"], output_names=["y"], opset_version=13,
                      dynamic_axes={"x": {0: "N"}, "y": {0: "N"}})
    x = torch.randn(3, 3, 8, 8)  # a golden for the translation (tests/python/test_onnx.py)
    np.save(os.path.join(HERE, "torch_cnn.x.npy"), x.numpy())
    np.save(os.path.join(HERE, "torch_cnn.y.npy"), m(x).detach().numpy())


def import_errors():
    """Models the reader accepts and the translation refuses (tests/python/test_onnx.py)."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    def save_one(node, name):
        save(model_of([node], [x], [y]), name)
    save_one(helper.make_node("Resize", ["x"], ["y"], name="up0"), "import_op.onnx")
    save_one(helper.make_node("MaxPool", ["x"], ["y"], name="pool", kernel_shape=[2, 2],
                              storage_order=1), "import_attr_value.onnx")
    save_one(helper.make_node("Relu", ["x"], ["y"], name="r", alpha=1.0), "import_attr.onnx")


def ops_seed():
    """ops_seed.onnx: a fuzz seed through the ops of onnx_ops_logic.c, onnx_ops_index.c and
    onnx_ops_einsum.c on a symbolic batch (recurrent ops are left out: their seed would abort
    the debug builds' IR check, a known issue of scans)."""
    T = TensorProto
    x = helper.make_tensor_value_info("x", T.FLOAT, ["N", 4, 6])
    y = helper.make_tensor_value_info("y", T.FLOAT, None)
    i = helper.make_tensor_value_info("i", T.INT64, None)
    inits = [numpy_helper.from_array(ramp(6, 5), "w"), numpy_helper.from_array(np.array([2], np.int64), "k"),
             numpy_helper.from_array(np.array(2, np.int64), "axis"), numpy_helper.from_array(np.float32(0), "zero"),
             numpy_helper.from_array(np.array([1, 2, 1], np.int64), "reps")]
    nodes = [helper.make_node("Less", ["x", "zero"], ["neg"]),
             helper.make_node("Where", ["neg", "zero", "x"], ["relu"]),
             helper.make_node("Einsum", ["relu", "w"], ["e"], equation="bij,jk->bik"),
             helper.make_node("CumSum", ["e", "axis"], ["c"], exclusive=1),
             helper.make_node("TopK", ["c", "k"], ["v", "vi"], axis=1),
             helper.make_node("Shape", ["v"], ["s"]),
             helper.make_node("ConstantOfShape", ["s"], ["ones"], value=numpy_helper.from_array(np.ones(1, np.float32))),
             helper.make_node("Tile", ["v", "reps"], ["t"]),
             helper.make_node("Expand", ["ones", "s"], ["o"]),
             helper.make_node("Add", ["o", "v"], ["y"]),
             helper.make_node("ArgMax", ["t"], ["i"], axis=2, select_last_index=1)]
    save(model_of(nodes, [x], [y, i], inits), "ops_seed.onnx")


if __name__ == "__main__":
    conv_relu_gemm()
    dtypes()
    attrs()
    external()
    malformed()
    import_errors()
    ops_seed()
    torch_cnn()
