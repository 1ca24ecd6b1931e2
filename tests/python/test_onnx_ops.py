"""ONNX ops of issue 19's second set through nnc, against PyTorch (rtol 1e-4, atol 1e-5;
integer outputs exactly): torch.onnx.export'ed modules whose graphs hold comparisons,
And/Or/Xor/Not, Where and Cast (onnx_ops_logic.c: bool as f32 1.0 / 0.0 inside the graph),
ArgMax, TopK, CumSum, Range, Expand, Tile, ConstantOfShape (onnx_ops_index.c) and Einsum
(onnx_ops_einsum.c), 1-D Conv, ConvTranspose and pooling (2-D on [N, C, 1, L]) and cubic Resize
(onnx_ops_nn.c), compiled once with a symbolic batch and run at several batch sizes.
Refusals name the node and what is not supported (exit status 1)."""
import os
import subprocess
import unittest

import numpy as np

import nnc
from support import NNC, TempDirCase, assert_close, needs_torch, torch_or_none

try:
    import onnx
    from onnx import helper, TensorProto
except ImportError:
    onnx = None


def logic_module(torch):
    class Logic(torch.nn.Module):
        def forward(self, x, y):
            m = (x > y) | (x <= -0.5)
            n = (x == y.round()) ^ (y < 0.2)
            z = torch.where(m & ~n, x, y * 2)
            return z, m.float(), (x >= y).float(), n.long(), torch.where(x < 0, torch.zeros_like(x), x)
    return Logic()


def index_module(torch):
    class Index(torch.nn.Module):
        def forward(self, x):  # [N, 6, 8]
            v, i = torch.topk(x, 3, dim=1)
            s, j = torch.topk(x, 2, dim=-1, largest=False)
            r = torch.arange(x.shape[2], dtype=torch.float32) * x
            e = x[:, :1, :].expand(-1, 6, -1)
            f = torch.full_like(x[:, 0, :], 0.5) + torch.zeros(x.shape[0], 8)
            return (torch.argmax(x, dim=2), torch.argmin(x, dim=1, keepdim=True), v, i, s, j,
                    torch.cumsum(x, dim=2), torch.cumsum(x, dim=1), r + e, x.repeat(1, 2, 3), f)
    return Index()


def einsum_module(torch):
    class Attn(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.randn(4, 3))

        def forward(self, q, k):  # [N, 2, 5, 4]
            s = torch.softmax(torch.einsum("bhid,bhjd->bhij", q, k), -1)
            o = torch.einsum("bhij,bhjd->bhid", s, k)
            w = torch.einsum("bid,bjd->bij", q[:, 0], k[:, 1])
            m = torch.einsum("ij,jk->ik", q[:, 0, 0], self.w)
            t = torch.einsum("bhid->bdih", q)
            return o, w, m, t, torch.einsum("bhid,bhid->bh", q, k)
    return Attn()


def conv1d_module(torch):
    nn = torch.nn
    return nn.Sequential(nn.Conv1d(3, 8, 5, padding=2, stride=2), nn.ReLU(), nn.MaxPool1d(3, stride=2, padding=1),
                         nn.Conv1d(8, 8, 3, dilation=2, groups=2), nn.AvgPool1d(2),
                         nn.ConvTranspose1d(8, 4, 4, stride=2, padding=1, output_padding=1), nn.AdaptiveAvgPool1d(1))


def bicubic_module(torch):
    F = torch.nn.functional

    class Bicubic(torch.nn.Module):
        def forward(self, x):  # [N, 3, 6, 9]
            return (F.interpolate(x, size=(11, 5), mode="bicubic", align_corners=False),
                    F.interpolate(x, scale_factor=2.0, mode="bicubic", align_corners=True))
    return Bicubic()


def transformer_module(torch):
    """two nn.TransformerEncoderLayers, post-norm with ReLU and pre-norm with GELU: their export
    computes the q/k/v split sizes from the input's shape (Shape, Gather, Add, Div, Mul, Slice)"""
    layer = torch.nn.TransformerEncoderLayer
    return torch.nn.Sequential(layer(32, 4, 64, dropout=0.0, batch_first=True),
                               layer(32, 4, 48, dropout=0.0, activation="gelu", batch_first=True, norm_first=True))


class TorchOps(TempDirCase):
    def check(self, make, shapes, names, noutputs):
        torch = torch_or_none()
        torch.manual_seed(19)
        m = make(torch).eval()
        outs = [f"out{k}" for k in range(noutputs)]
        rng = np.random.default_rng(19)

        def args(n):
            return [rng.standard_normal((n, *s)).astype(np.float32) for s in shapes]

        path = os.path.join(self.tmp, "ops.onnx")
        dyn = {name: {0: "N"} for name in names}
        torch.onnx.export(m, tuple(torch.from_numpy(a) for a in args(2)), path, input_names=names, output_names=outs,
                          opset_version=14, dynamic_axes=dyn)
        model = nnc.compile(path)
        for n in (2, 1, 3):
            a = args(n)
            if make is logic_module:  # some exact ties for Equal
                a[0][..., 0] = a[1][..., 0].round()
            got = model.forward.call(*a)
            with torch.no_grad():
                want = m(*[torch.from_numpy(x) for x in a])
            want = want if isinstance(want, tuple) else (want,)
            self.assertEqual(len(got), len(want))
            for k, (g, w) in enumerate(zip(got.values(), want)):
                assert_close(self, g, w.numpy(), f"output {k} at batch {n}")
        return onnx.load(path) if onnx else None

    @needs_torch
    def test_logic(self):
        model = self.check(logic_module, [(3, 7), (3, 7)], ["x", "y"], 5)
        if model:
            ops = {n.op_type for n in model.graph.node}
            self.assertTrue({"Greater", "LessOrEqual", "Or", "Equal", "Xor", "Less", "And", "Not", "Where", "Cast"} <= ops, ops)

    @needs_torch
    def test_index(self):
        model = self.check(index_module, [(6, 8)], ["x"], 11)
        if model:
            ops = {n.op_type for n in model.graph.node}
            self.assertTrue({"ArgMax", "ArgMin", "TopK", "CumSum", "Expand", "Tile"} <= ops, ops)

    @needs_torch
    def test_conv1d(self):
        """Conv, MaxPool, AveragePool, ConvTranspose, GlobalAveragePool on [N, C, L]"""
        model = self.check(conv1d_module, [(3, 40)], ["x"], 1)
        if model:
            ops = {n.op_type for n in model.graph.node}
            self.assertTrue({"Conv", "MaxPool", "AveragePool", "ConvTranspose", "GlobalAveragePool"} <= ops, ops)

    @needs_torch
    def test_bicubic(self):
        """Resize mode cubic (half_pixel and align_corners, cubic_coeff_a -0.75) as torch's bicubic"""
        self.check(bicubic_module, [(3, 6, 9)], ["x"], 2)

    @needs_torch
    def test_transformer_encoder_layers(self):
        model = self.check(transformer_module, [(7, 32)], ["x"], 1)
        if model:
            ops = {n.op_type for n in model.graph.node}
            self.assertTrue({"Shape", "Div", "Slice", "Softmax", "ReduceMean", "Erf"} <= ops, ops)

    @needs_torch
    def test_einsum(self):
        self.check(einsum_module, [(2, 5, 4), (2, 5, 4)], ["q", "k"], 5)


@unittest.skipIf(onnx is None, "python3-onnx is not installed")
class Refusals(TempDirCase):
    def refuse(self, node, inputs, outputs, message):
        graph = helper.make_graph([node], "g", inputs, outputs)
        path = os.path.join(self.tmp, "m.onnx")
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)]), path)
        r = subprocess.run([NNC, "check", path], capture_output=True, text=True)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertEqual(r.stderr, f"{path}: error: {message}\n")

    def test_einsum_diagonal(self):
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 3])
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [3])
        self.refuse(helper.make_node("Einsum", ["x"], ["y"], name="e", equation="ii->i"), [x], [y],
                    "node 0 'e' (Einsum, opset 14): equation 'ii->i': letter 'i' twice in one term (a diagonal) is not supported")

    def test_double_output(self):
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [3])
        y = helper.make_tensor_value_info("y", TensorProto.DOUBLE, [3])
        self.refuse(helper.make_node("Relu", ["x"], ["y"]), [x], [y],
                    "graph output 'y' is f64: nnc's outputs are float, or int64 (int32 and bool ones too: bool as 0 / 1)")

    def test_bool_and_int32_io(self):
        """bool and int32 graph inputs and outputs are int64 in the signature (bool as 0 / 1)"""
        b = helper.make_tensor_value_info("b", TensorProto.BOOL, [2, 3])
        i = helper.make_tensor_value_info("i", TensorProto.INT32, [2, 3])
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])
        nb = helper.make_tensor_value_info("nb", TensorProto.BOOL, [2, 3])
        lt = helper.make_tensor_value_info("lt", TensorProto.BOOL, [2, 3])
        i2 = helper.make_tensor_value_info("i2", TensorProto.INT32, [2, 3])
        nodes = [helper.make_node("Not", ["b"], ["nb"]), helper.make_node("Less", ["x", "xi"], ["lt"]),
                 helper.make_node("Cast", ["i"], ["xi"], to=TensorProto.FLOAT), helper.make_node("Cast", ["x"], ["i2"], to=TensorProto.INT32)]
        graph = helper.make_graph([nodes[2], nodes[0], nodes[1], nodes[3]], "g", [b, i, x], [nb, lt, i2])
        path = os.path.join(self.tmp, "io.onnx")
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)]), path)
        m = nnc.compile(path)
        self.assertEqual([a.type for a in m.forward.inputs], ["i64[2, 3]", "i64[2, 3]", "f32[2, 3]"])
        self.assertEqual([a.type for a in m.forward.outputs], ["i64[2, 3]", "i64[2, 3]", "i64[2, 3]"])
        bv = np.array([[True, False, True], [False, False, True]])
        iv = np.array([[1, -2, 3], [4, 5, -6]], np.int32)
        xv = np.array([[0.5, -3, 3], [4.5, 5, -7]], np.float32)
        nbv, ltv, i2v = m.forward(bv, iv.astype(np.int64), xv)  # a bool array is taken as 0 / 1
        np.testing.assert_array_equal(nbv, (~bv).astype(np.int64))
        np.testing.assert_array_equal(ltv, (xv < iv).astype(np.int64))
        np.testing.assert_array_equal(i2v, np.trunc(xv).astype(np.int64))

    def test_lstm_peepholes(self):
        ins = [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in
               [("x", [2, 1, 3]), ("w", [1, 16, 3]), ("r", [1, 16, 4]), ("p", [1, 12])]]
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 1, 1, 4])
        self.refuse(helper.make_node("LSTM", ["x", "w", "r", "", "", "", "", "p"], ["y"], hidden_size=4), ins, [y],
                    "node 0 (LSTM, opset 14): input 7 (P, peepholes) is not supported")


if __name__ == "__main__":
    unittest.main()
