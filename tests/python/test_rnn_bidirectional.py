"""nn.LSTM and nn.GRU with bidirectional=True (issue 17) against PyTorch, with their unchanged
state_dicts (weight_ih_l0_reverse, ...): one and two layers, batch_first or not, with and
without initial states and biases, sequences of several lengths (a symbolic T) and a static
one; outputs [.., 2H] and every layer's and direction's final state, in PyTorch's order.  Each
entry runs through the JIT and the AOT .so, on 1, 2 and 3 threads (the same bits)."""
import os
import unittest

import numpy as np

import nnc
from support import TempDirCase, assert_close, compile_so, needs_torch, torch_or_none, write_model

MODEL = """
gru2 = GRU(5, 7, num_layers=2, bidirectional=true)
gru2_bf = GRU(5, 7, 2, false, true, 0, true)
lstm2 = LSTM(5, 6, num_layers=2, batch_first=true, bidirectional=true)
lstm2_nb = LSTM(5, 6, 2, bias=false, bidirectional=true)
gru1 = GRU(5, 7, batch_first=true, bidirectional=true)
lstm1 = LSTM(5, 6, bidirectional=true)
export gru_h0(x: f32[T, B, 5], h0: f32[4, B, 7]) -> (y: f32[T, B, 14], h: f32[4, B, 7]) { y, h = gru2(x, h0) }
export gru_bf(x: f32[B, T, 5]) -> (y: f32[B, T, 14], h: f32[4, B, 7]) { y, h = gru2_bf(x) }
export lstm_state(x: f32[B, T, 5], h0: f32[4, B, 6], c0: f32[4, B, 6]) -> (y: f32[B, T, 12], h: f32[4, B, 6], c: f32[4, B, 6]) {
  y, s = lstm2(x, [h0, c0])
  h, c = s[0], s[1]
}
export lstm_nb(x: f32[T, B, 5]) -> (y: f32[T, B, 12], h: f32[4, B, 6], c: f32[4, B, 6]) {
  y, s = lstm2_nb(x)
  h, c = s[0], s[1]
}
export gru_one(x: f32[B, T, 5], h0: f32[2, B, 7]) -> (y: f32[B, T, 14], h: f32[2, B, 7]) { y, h = gru1(x, h0) }
export lstm_one(x: f32[T, B, 5]) -> (y: f32[T, B, 12], h: f32[2, B, 6], c: f32[2, B, 6]) {
  y, s = lstm1(x)
  h, c = s[0], s[1]
}
export lstm_static(x: f32[6, 3, 5], h0: f32[2, 3, 6], c0: f32[2, 3, 6]) -> (y: f32[6, 3, 12], h: f32[2, 3, 6], c: f32[2, 3, 6]) {
  y, s = lstm1(x, [h0, c0])
  h, c = s[0], s[1]
}
"""

# entry -> (module, batch_first, initial states given)
ENTRIES = {"gru_h0": ("gru2", False, 1), "gru_bf": ("gru2_bf", True, 0), "lstm_state": ("lstm2", True, 2),
           "lstm_nb": ("lstm2_nb", False, 0), "gru_one": ("gru1", True, 1), "lstm_one": ("lstm1", False, 0)}


@needs_torch
class BidirectionalRnnTest(TempDirCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        torch = torch_or_none()
        torch.manual_seed(3)
        nn = torch.nn
        cls.mods = {"gru2": nn.GRU(5, 7, num_layers=2, bidirectional=True),
                    "gru2_bf": nn.GRU(5, 7, 2, False, True, 0, True),
                    "lstm2": nn.LSTM(5, 6, num_layers=2, batch_first=True, bidirectional=True),
                    "lstm2_nb": nn.LSTM(5, 6, 2, bias=False, bidirectional=True),
                    "gru1": nn.GRU(5, 7, batch_first=True, bidirectional=True),
                    "lstm1": nn.LSTM(5, 6, bidirectional=True)}
        cls.state = {f"{n}.{k}": v.detach().numpy() for n, m in cls.mods.items() for k, v in m.state_dict().items()}
        weights = nnc.save_safetensors(cls.state, os.path.join(cls.tmp, "w.safetensors"))
        nn_path = write_model(MODEL, cls.tmp, "birnn")
        so = compile_so(nn_path, cls.tmp, weights)
        cls.models = {f"{how}, {n} threads": (nnc.compile(nn_path, weights=weights, threads=n) if how == "JIT"
                                              else nnc.load(so, threads=n))
                      for how in ("JIT", "AOT") for n in (1, 2, 3)}
        cls.rng = np.random.default_rng(4)

    @classmethod
    def tearDownClass(cls):
        for m in cls.models.values():
            m.close()
        super().tearDownClass()

    def data(self, *shape):
        return self.rng.standard_normal(shape).astype(np.float32)

    def check(self, entry, args, want, what):
        """entry(*args) on every model against PyTorch's `want`, and the same bits on all"""
        first = None
        for how, m in self.models.items():
            got = getattr(m, entry)(*args)
            self.assertEqual(len(got), len(want), f"{what}: outputs")
            for i, (g, w) in enumerate(zip(got, want)):
                assert_close(self, g, w.numpy(), f"{what}, output {i}, {how}")
            if first is None:
                first = got
            else:
                for g, f in zip(got, first):
                    self.assertTrue(np.array_equal(g, f), f"{what}: {how} differs from {next(iter(self.models))}")

    def test_state_dict_unchanged(self):
        m = next(iter(self.models.values()))
        names = {p.name: tuple(p.shape) for p in m.params}
        self.assertEqual(names, {k: v.shape for k, v in self.state.items()})
        self.assertIn("gru2.weight_ih_l1_reverse", names)
        self.assertEqual(names["lstm2.weight_ih_l1"], (24, 12))  # layer 1 reads [forward, reverse]

    def test_sequences(self):
        torch = torch_or_none()
        for T in (1, 5, 12):
            for entry, (mod, bf, nstates) in ENTRIES.items():
                with self.subTest(entry=entry, T=T):
                    layers = self.mods[mod].num_layers
                    hs = self.mods[mod].hidden_size
                    x = self.data(3, T, 5) if bf else self.data(T, 3, 5)
                    states = [self.data(2 * layers, 3, hs) for _ in range(nstates)]
                    tx = [torch.from_numpy(a) for a in states]
                    with torch.no_grad():
                        if nstates == 0:
                            y, s = self.mods[mod](torch.from_numpy(x))
                        else:
                            y, s = self.mods[mod](torch.from_numpy(x), tx[0] if nstates == 1 else tuple(tx))
                    want = [y] + (list(s) if isinstance(s, tuple) else [s])
                    self.check(entry, [x, *states], want, f"{entry}, T={T}")

    def test_static_length(self):
        torch = torch_or_none()
        x, h0, c0 = self.data(6, 3, 5), self.data(2, 3, 6), self.data(2, 3, 6)
        with torch.no_grad():
            y, (h, c) = self.mods["lstm1"](*map(torch.from_numpy, (x,)), (torch.from_numpy(h0), torch.from_numpy(c0)))
        self.check("lstm_static", [x, h0, c0], [y, h, c], "static T")

    def test_errors(self):
        cases = (
            ("g = GRU(5, 7, num_layers=2, bidirectional=true)\n"
             "export f(x: f32[T, B, 5], h0: f32[2, B, 7]) -> y: f32[T, B, 14] { y, h = g(x, h0) }\n",
             "GRU: the initial states are [num_layers * 2 = 4, batch, hidden_size = 7]"),
            ("l = LSTM(5, 6, bidirectional=true)\n"
             "export f(x: f32[T, B, 5], h0: f32[2, B, 6], c0: f32[1, B, 6]) -> y: f32[T, B, 12] { y, s = l(x, [h0, c0]) }\n",
             "LSTM: the initial states are [num_layers * 2 = 2, batch, hidden_size = 6]"),
            ("l = LSTM(5, 6, num_layers=9, bidirectional=true)\n"
             "export f(x: f32[T, B, 5]) -> y: f32[T, B, 12] { y, s = l(x) }\n",
             "LSTM: num_layers above 8 is not available when bidirectional"),
            ("g = GRU(5, 7, bidirectional=true)\n"
             "export f(x: f32[T, B, 5]) -> y: f32[T, B, 7] { y, h = g(x) }\n",
             "f32[T, B, 14]"),
        )
        for i, (src, words) in enumerate(cases):
            with self.subTest(words):
                with self.assertRaises(nnc.CompileError) as cm:
                    nnc.compile(write_model(src, self.tmp, f"bad{i}"))
                self.assertIn(words, str(cm.exception))


if __name__ == "__main__":
    unittest.main()


REVERSED = """
export run(x: f32[N, T, 3], h0: f32[N, 3]) -> (ys: f32[N, T, 3], h: f32[N, 3]) {
  h = h0
  scan t in reversed(0..T) {
    h = tanh(h * 0.5 + x[:, t] * (t + 1))
    ys[:, t] = h
  }
}
"""


class ReversedScanTest(TempDirCase):
    """`scan t in reversed(0..T)`, the loop a reverse direction is built on: steps T - 1 down
    to 0, step t's output at position t, against the same loop in NumPy (float64)."""

    def test_against_numpy(self):
        path = write_model(REVERSED, self.tmp, "reversed")
        for m in (nnc.compile(path), nnc.load(compile_so(path, self.tmp))):
            for T in (1, 5):
                rng = np.random.RandomState(T)
                x, h0 = rng.randn(2, T, 3).astype(np.float32), rng.randn(2, 3).astype(np.float32)
                h, ys = h0.astype(np.float64), np.zeros((2, T, 3))
                for t in reversed(range(T)):
                    h = np.tanh(h * 0.5 + x[:, t] * (t + 1))
                    ys[:, t] = h
                got_ys, got_h = m.run(x, h0)
                assert_close(self, got_ys, ys.astype(np.float32), f"ys at T={T}")
                assert_close(self, got_h, h.astype(np.float32), f"h at T={T}")
