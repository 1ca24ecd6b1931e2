"""ONNX LSTM, GRU and RNN through nnc (issue 19: compiler/onnx/onnx_ops_rnn.c) against
PyTorch: torch.nn.LSTM / GRU / RNN (two layers, bidirectional, batch_first or not, with and
without initial states) exported by torch.onnx.export, compiled once with a symbolic batch
and run at several batch sizes; every output (y, h_n, c_n) is compared with the module's
(rtol 1e-4, atol 1e-5).  The exporter writes ONNX's gate orders (LSTM i, o, f, c; GRU
z, r, h) and linear_before_reset = 1, so this checks the re-stacking against torch itself;
the ONNX node tests (test_onnx_node.py) check linear_before_reset = 0 and the layouts."""
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


if __name__ == "__main__":
    unittest.main()
