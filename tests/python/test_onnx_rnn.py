"""ONNX LSTM, GRU and RNN through nnc (issue 19: compiler/onnx/onnx_ops_rnn.c) against
PyTorch: torch.nn.LSTM / GRU / RNN (two layers, bidirectional, batch_first or not, with and
without initial states) exported by torch.onnx.export, compiled once with a symbolic batch
and run at several batch sizes; every output (y, h_n, c_n) is compared with the module's
(rtol 1e-4, atol 1e-5).  The exporter writes ONNX's gate orders (LSTM i, o, f, c; GRU
z, r, h) and linear_before_reset = 1, so this checks the re-stacking against torch itself;
the ONNX node tests (test_onnx_node.py) check linear_before_reset = 0 and the layouts, and
OnnxGru checks GRU nodes in every direction, linear_before_reset and layout against the
operator's formulas written out in NumPy (float64)."""
import os
import unittest

import numpy as np

import nnc
from support import TempDirCase, assert_close, needs_torch, torch_or_none

T, I, H = 5, 6, 7


def export(tc, torch, m, args, names, outs, batch_axis):
    path = os.path.join(tc.tmp, "rnn.onnx")
    dyn = {n: {batch_axis if n == "x" else 1: "N"} for n in names}
    dyn.update({n: {batch_axis if n == "y" else 1: "N"} for n in outs})
    torch.onnx.export(m, tuple(torch.from_numpy(a) for a in args), path, input_names=names, output_names=outs,
                      opset_version=14, dynamic_axes=dyn)
    return path


class TorchRecurrent(TempDirCase):
    def check(self, cls, batch_first=False, with_state=False, **kw):
        torch = torch_or_none()
        torch.manual_seed(4)
        m = cls(I, H, num_layers=2, bidirectional=True, batch_first=batch_first, **kw).eval()
        lstm = cls is torch.nn.LSTM
        rng = np.random.default_rng(19)

        def make(n):
            x = rng.standard_normal((n, T, I) if batch_first else (T, n, I)).astype(np.float32)
            states = [rng.standard_normal((4, n, H)).astype(np.float32) for _ in range(2 if lstm else 1)]
            return [x] + (states if with_state else [])

        names = ["x"] + (["h0", "c0"][:2 if lstm else 1] if with_state else [])
        outs = ["y", "h_n", "c_n"][:3 if lstm else 2]

        def reference(args):
            t = [torch.from_numpy(a) for a in args]
            state = None if not with_state else (tuple(t[1:]) if lstm else t[1])
            with torch.no_grad():
                y, s = m(t[0], state)
            return [y.numpy()] + ([s[0].numpy(), s[1].numpy()] if lstm else [s.numpy()])

        class Wrap(torch.nn.Module):  # the states as separate inputs, as the ONNX graph takes them
            def __init__(self):
                super().__init__()
                self.m = m

            def forward(self, x, *s):
                return self.m(x, (tuple(s) if lstm else s[0]) if s else None)

        path = export(self, torch, Wrap().eval(), make(2), names, outs, 0 if batch_first else 1)
        model = nnc.compile(path)
        for n in (2, 1, 3):
            args = make(n)
            got = model.forward.call(*args)
            self.assertEqual(list(got), outs)
            for name, g, w in zip(outs, got.values(), reference(args)):
                assert_close(self, g, w, f"{cls.__name__} {name} at batch {n}")

    @needs_torch
    def test_lstm(self):
        self.check(torch_or_none().nn.LSTM)

    @needs_torch
    def test_lstm_batch_first_with_state(self):
        self.check(torch_or_none().nn.LSTM, batch_first=True, with_state=True)

    @needs_torch
    def test_gru(self):
        self.check(torch_or_none().nn.GRU, with_state=True)

    @needs_torch
    def test_gru_batch_first(self):
        self.check(torch_or_none().nn.GRU, batch_first=True)

    @needs_torch
    def test_rnn_tanh(self):
        self.check(torch_or_none().nn.RNN, with_state=True)

    @needs_torch
    def test_rnn_relu(self):
        self.check(torch_or_none().nn.RNN, nonlinearity="relu")


try:
    import onnx
    from onnx import helper, numpy_helper
except ImportError:
    onnx = None


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def onnx_gru_reference(x, w, r, b, h0, reverse_dirs, lbr):
    """ONNX's GRU (operators.md, gates z, r, h), one direction per W[d], written from the spec
    in float64: X [T, B, I] -> Y [T, D, B, H], Y_h [D, B, H]."""
    T, D, H = x.shape[0], w.shape[0], r.shape[2]
    y, yh = np.zeros((T, D, x.shape[1], H)), np.zeros((D, x.shape[1], H))
    for d in range(D):
        wz, wr, wh = np.split(w[d], 3)
        rz, rr, rh = np.split(r[d], 3)
        wbz, wbr, wbh, rbz, rbr, rbh = np.split(b[d], 6)
        h = h0[d]
        for t in (reversed(range(T)) if reverse_dirs[d] else range(T)):
            xt = x[t]
            z = sigmoid(xt @ wz.T + h @ rz.T + wbz + rbz)
            rt = sigmoid(xt @ wr.T + h @ rr.T + wbr + rbr)
            if lbr:
                ht = np.tanh(xt @ wh.T + rt * (h @ rh.T + rbh) + wbh)
            else:
                ht = np.tanh(xt @ wh.T + (rt * h) @ rh.T + rbh + wbh)
            h = (1 - z) * ht + z * h
            y[t, d] = h
        yh[d] = h
    return y, yh


@unittest.skipIf(onnx is None, "python3-onnx is not installed")
class OnnxGru(TempDirCase):
    """GRU nodes the exporter does not write: linear_before_reset 0 and 1, reverse and
    bidirectional, layout 1, an initial state and full sequence_lens, against the spec."""

    def check(self, direction, lbr, layout):
        rng = np.random.default_rng(5)
        T, B, I, H = 4, 3, 5, 6
        D = 2 if direction == "bidirectional" else 1
        x = rng.standard_normal((T, B, I))
        w, r = rng.standard_normal((D, 3 * H, I)) * 0.5, rng.standard_normal((D, 3 * H, H)) * 0.5
        b, h0 = rng.standard_normal((D, 6 * H)) * 0.5, rng.standard_normal((D, B, H))
        lens = np.full(B, T, np.int32)
        want_y, want_h = onnx_gru_reference(x, w, r, b, h0, [direction == "reverse" or d == 1 for d in range(D)], lbr)
        xin, hin = (x.transpose(1, 0, 2), h0.transpose(1, 0, 2)) if layout else (x, h0)
        if layout:
            want_y, want_h = want_y.transpose(2, 0, 1, 3), want_h.transpose(1, 0, 2)
        f32 = lambda a: a.astype(np.float32)
        inits = [numpy_helper.from_array(f32(a), n) for a, n in ((w, "W"), (r, "R"), (b, "B"))]
        inits.append(numpy_helper.from_array(lens, "lens"))
        node = helper.make_node("GRU", ["X", "W", "R", "B", "lens", "h0"], ["Y", "Y_h"], hidden_size=H,
                                direction=direction, linear_before_reset=lbr, layout=layout)
        info = lambda n, a: helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, list(a.shape))
        graph = helper.make_graph([node], "g", [info("X", xin), info("h0", hin)], [info("Y", want_y), info("Y_h", want_h)],
                                  initializer=inits)
        path = os.path.join(self.tmp, "gru.onnx")
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)]), path)
        got = nnc.compile(path).forward.call(f32(xin), f32(hin))
        assert_close(self, got["Y"], f32(want_y), f"GRU {direction} lbr={lbr} layout={layout} Y")
        assert_close(self, got["Y_h"], f32(want_h), f"GRU {direction} lbr={lbr} layout={layout} Y_h")

    def test_variants(self):
        for direction in ("forward", "reverse", "bidirectional"):
            for lbr in (0, 1):
                for layout in (0, 1):
                    with self.subTest(direction=direction, lbr=lbr, layout=layout):
                        self.check(direction, lbr, layout)


if __name__ == "__main__":
    unittest.main()
