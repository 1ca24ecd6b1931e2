"""Any length (issue 18): test_attention.py's models — MultiheadAttention with float, boolean
and causal masks and its weights, Transformer encoder layers and stacks, a causal decoder with
a padded memory, scaled_dot_product_attention — compiled once with the sequence length a symbol
T, and run at T = 1, 7, 64 and 300 against PyTorch: JIT and AOT, 1, 2 and 3 threads, the same
bits at every thread count.  The [T, T] masks and [B, H, T, T] scores and weights are sized
with the square of T, a symbol of its own (compiler/ir/symdim.c)."""
import unittest

import numpy as np

import nnc
import test_attention  # its AttentionTest, run here with a symbolic length
from support import TempDirCase, assert_close, assert_same_everywhere, compile_so, needs_torch, torch_or_none, write_model


class SymbolicLengthTest(test_attention.AttentionTest):
    LENGTH = "T"
    LENGTHS = (1, 7, 64, 300)

    @classmethod
    def build(cls, nn, weights):
        return {"jit": nnc.compile(nn, weights=weights), "so": nnc.load(compile_so(nn, cls.tmp, weights))}

    def check(self, call, want, what):
        """close to PyTorch and the same bits at every thread count, JIT and AOT"""
        want = tuple(w.detach().numpy() for w in (want if isinstance(want, tuple) else (want,)))
        assert_same_everywhere(self, self.models, call, want, what)


SQUARES = """
export gram(x: f32[N, 4]) -> (p: f32[N, N], g: f32[N]) {
  p = x @ transpose(x, 0, 1)
  g = sum(p, axis=1)
}
export flat(q: f32[B, T, 8], k: f32[B, T, 8]) -> (y: f32[B, T * T], z: f32[B, T, T], tail: f32[B, T * T - 1]) {
  y = reshape(q @ transpose(k, 1, 2), [B, -1])
  z = reshape(y, [B, T, -1])
  tail = y[:, 1:]
}
export causal(x: f32[T, 3]) -> (m: f32[T, T], a: f32[T], odd: f32[T / 2]) {
  m = where(reshape(arange(T), [T, 1]) < reshape(arange(T), [1, T]), -inf, 0.0)
  a = arange(T) * x[:, 0]
  odd = arange(1, T, 2)
}
export pairs(a: f32[T], x: f32[T * T]) -> (y: f32[T, T]) {
  y = reshape(x, [T, T]) + a
}
export alone(x: f32[T * T]) -> (y: f32[T * T]) {
  y = x + 1.0
}
export cube(x: f32[T, 3]) -> (c: f32[T, T, T], s: f32[T]) {
  c = reshape(x[:, 0], [T, 1, 1]) * reshape(x[:, 1], [1, T, 1]) + reshape(x[:, 2], [1, 1, T])
  s = sum(c, axis=[1, 2])
}
"""


@needs_torch
class SquareSizesTest(TempDirCase):
    """A symbol on two or three axes: the element count holds T*T (and T*T*T = T × T*T)."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        nn = write_model(SQUARES, cls.tmp, "squares")
        cls.models = {"jit": nnc.compile(nn), "so": nnc.load(compile_so(nn, cls.tmp))}

    def test_against_torch(self):
        torch = torch_or_none()
        rng = np.random.default_rng(7)
        for n in (1, 2, 9, 40):
            x, q, k = (rng.standard_normal(s).astype(np.float32) for s in ((n, 4), (2, n, 8), (2, n, 8)))
            c3 = rng.standard_normal((n, 3)).astype(np.float32)
            tx, tq, tk, tc = map(torch.from_numpy, (x, q, k, c3))
            p = tx @ tx.T
            s = (tq @ tk.transpose(1, 2)).reshape(2, -1)
            c = tc[:, 0].reshape(n, 1, 1) * tc[:, 1].reshape(1, n, 1) + tc[:, 2].reshape(1, 1, n)
            for kind, m in self.models.items():
                for threads in (1, 2, 3):
                    m.threads = threads
                    what = f"n={n}, {kind}, {threads} threads"
                    got = m.gram(x)
                    assert_close(self, got[0], p.numpy(), f"gram {what}")
                    assert_close(self, got[1], p.sum(1).numpy(), f"gram sum {what}")
                    y, z, tail = m.flat(q, k)
                    assert_close(self, y, s.numpy(), f"flat {what}")
                    assert_close(self, z, s.reshape(2, n, n).numpy(), f"unflat {what}")
                    assert_close(self, tail, s[:, 1:].numpy(), f"tail {what}")
                    mask, a, odd = m.causal(c3)
                    assert_close(self, mask, torch.triu(torch.full((n, n), float("-inf")), 1).numpy(), f"causal {what}")
                    assert_close(self, a, (torch.arange(n) * tc[:, 0]).numpy(), f"arange {what}")
                    assert_close(self, odd, torch.arange(1, n, 2).float().numpy(), f"odd {what}")
                    cc, ss = m.cube(c3)
                    assert_close(self, cc, c.numpy(), f"cube {what}")
                    assert_close(self, ss, c.sum((1, 2)).numpy(), f"cube sum {what}")

    def test_inputs_of_derived_sizes(self):
        """An input sized T*T is checked against T's square (never taken to define it)."""
        a, x = np.arange(3, dtype=np.float32), np.arange(9, dtype=np.float32)
        for kind, m in self.models.items():
            np.testing.assert_array_equal(m.pairs(a, x), x.reshape(3, 3) + a, kind)
            with self.assertRaisesRegex(ValueError, r"argument 'x' has shape \(8,\), expected \(9,\)"):
                m.pairs(a, x[:8])
            with self.assertRaisesRegex(ValueError, "cannot infer T from the input shapes"):
                m.alone(x)


if __name__ == "__main__":
    unittest.main()
