"""nn.GRU and nn.GRUCell (issue 17) with their unchanged state_dicts against PyTorch: sequences
of any length (a symbolic T), batch_first or not, with and without an initial state and
biases, num_layers (GRU and LSTM, every layer's final state), and the cell step by step."""
import os
import unittest

import numpy as np

import nnc
from support import TempDirCase, assert_close, needs_torch, torch_or_none, write_model

MODEL = """
gru = GRU(5, 7)
gru_bf = GRU(5, 7, batch_first=true, bias=false)
cell = GRUCell(5, 7)
gru2 = GRU(5, 7, num_layers=3, batch_first=true, dropout=0.25)
lstm2 = LSTM(5, 6, 2, bias=false, dropout=0.5)
export deep(x: f32[B, T, 5], h0: f32[3, B, 7]) -> (y: f32[B, T, 7], h: f32[3, B, 7]) { y, h = gru2(x, h0) }
export deep_lstm(x: f32[T, B, 5]) -> (y: f32[T, B, 6], h: f32[2, B, 6], c: f32[2, B, 6]) {
  y, state = lstm2(x)
  h, c = state[0], state[1]
}
export seq(x: f32[T, B, 5]) -> (y: f32[T, B, 7], h: f32[1, B, 7]) { y, h = gru(x) }
export seq_h0(x: f32[B, T, 5], h0: f32[1, B, 7]) -> (y: f32[B, T, 7], h: f32[1, B, 7]) { y, h = gru_bf(x, h0) }
export step(x: f32[B, 5], h: f32[B, 7]) -> h2: f32[B, 7] { h2 = cell(x, h) }
export first(x: f32[B, 5]) -> h2: f32[B, 7] { h2 = cell(x) }
"""


@needs_torch
class GruTest(TempDirCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        torch = torch_or_none()
        torch.manual_seed(1)
        cls.mods = {"gru": torch.nn.GRU(5, 7), "gru_bf": torch.nn.GRU(5, 7, batch_first=True, bias=False),
                    "cell": torch.nn.GRUCell(5, 7), "gru2": torch.nn.GRU(5, 7, num_layers=3, batch_first=True, dropout=0.25),
                    "lstm2": torch.nn.LSTM(5, 6, 2, bias=False, dropout=0.5)}
        for mod in cls.mods.values():
            mod.eval()  # dropout between layers is the identity
        state = {f"{n}.{k}": v.detach().numpy() for n, m in cls.mods.items() for k, v in m.state_dict().items()}
        cls.m = nnc.compile(write_model(MODEL, cls.tmp, "gru"),
                            weights=nnc.save_safetensors(state, os.path.join(cls.tmp, "w.safetensors")))
        cls.rng = np.random.default_rng(2)

    def data(self, *shape):
        return self.rng.standard_normal(shape).astype(np.float32)

    def test_sequences(self):
        torch = torch_or_none()
        for T in (1, 4, 33):
            x = self.data(T, 3, 5)
            with torch.no_grad():
                y, h = self.mods["gru"](torch.from_numpy(x))
            got = self.m.seq(x)
            assert_close(self, got[0], y.numpy(), f"outputs, T={T}")
            assert_close(self, got[1], h.numpy(), f"h_n, T={T}")
            xb, h0 = self.data(2, T, 5), self.data(1, 2, 7)
            with torch.no_grad():
                y, h = self.mods["gru_bf"](torch.from_numpy(xb), torch.from_numpy(h0))
            got = self.m.seq_h0(xb, h0)
            assert_close(self, got[0], y.numpy(), f"batch_first outputs, T={T}")
            assert_close(self, got[1], h.numpy(), f"batch_first h_n, T={T}")

    def test_stacked_layers(self):  # num_layers: every layer's final state, in order
        torch = torch_or_none()
        x, h0 = self.data(2, 9, 5), self.data(3, 2, 7)
        with torch.no_grad():
            y, h = self.mods["gru2"](torch.from_numpy(x), torch.from_numpy(h0))
        got = self.m.deep(x, h0)
        assert_close(self, got[0], y.numpy(), "3-layer GRU outputs")
        assert_close(self, got[1], h.numpy(), "3-layer GRU h_n")
        x = self.data(6, 2, 5)
        with torch.no_grad():
            y, (h, c) = self.mods["lstm2"](torch.from_numpy(x))
        got = self.m.deep_lstm(x)
        for g, w, what in zip(got, (y, h, c), ("outputs", "h_n", "c_n")):
            assert_close(self, g, w.numpy(), "2-layer LSTM " + what)

    def test_cell(self):
        torch = torch_or_none()
        x, h = self.data(4, 5), self.data(4, 7)
        with torch.no_grad():
            assert_close(self, self.m.step(x, h), self.mods["cell"](torch.from_numpy(x), torch.from_numpy(h)).numpy(), "step")
            assert_close(self, self.m.first(x), self.mods["cell"](torch.from_numpy(x)).numpy(), "first step")


if __name__ == "__main__":
    unittest.main()
