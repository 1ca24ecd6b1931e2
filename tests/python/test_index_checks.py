"""Indices are data (issue 16, item 2), tried as a PyTorch user would: torch.nn.Embedding with
its state_dict, torch.gather, torch.index_select, F.one_hot and torchvision's roi_align.  Valid
indices (the boundaries 0 and size - 1 included) give PyTorch's results; every index PyTorch
refuses (negative, too large; and NaN or a fraction, which an f32-carried index can hold) makes
the call raise nnc.Error naming the op, the argument and the value — from a JIT model and from a
compiled .so, at 1 and 3 threads.  Positions known only at run time (x[:, -1] on a symbolic
axis, x[t - 1] in a scan, slices of static length such as x[:, -2:]) are checked the same way,
and so is an index passed through check_index(index, size)."""
import os
import unittest

import numpy as np

import nnc
from support import TempDirCase, compile_so, needs_torch, torch_or_none, write_model

MODEL = """
emb = Embedding(7, 3)
export embed(t: i64[N, L]) -> y: f32[N, L, 3] { y = emb(t) }
export gather_rows(x: f32[4, M], i: f32[N, M]) -> y: f32[N, M] { y = gather(x, 0, i) }
export select(x: f32[B, 6], i: i64[K]) -> y: f32[B, K] { y = index_select(x, 1, i) }
export hot(t: f32[N]) -> y: f32[N, 5] { y = one_hot(t, 5) }
export checked(t: i64[K], x: f32[N]) -> y: f32[K] { y = check_index(t, N) * 1.0 }
export roi(f: f32[N, 3, 9, 9], b: f32[K, 5]) -> y: f32[K, 3, 3, 3] { y = roi_align(f, b, [3, 3], 0.5) }
export last(x: f32[N, T, 3]) -> (y: f32[N, 3], z: f32[N, 3]) {
  y = x[:, -3]
  z = x[:, T - 1]
}
export prev(x: f32[T, 3]) -> y: f32[T, 3] {
  h = zeros(3)
  scan t in 0..T {
    h = tanh(h + x[t - 1] * 0.5)
    y[t] = h
  }
}
export gather_sym(x: f32[N, T], i: i64[N, K]) -> y: f32[N, K] { y = gather(x, 1, i) }
export ends(x: f32[N, T, 3]) -> (a: f32[N, 2, 3], b: f32[N, 2, 3], c: f32[N, 2, 3], d: f32[N, 1, 3]) {
  a = x[:, -2:]
  b = x[:, :2]
  c = x[:, -4:-1:2]
  d = x[:, 1:2]
}
export diffs(x: f32[N, T, 3]) -> (a: f32[N, T - 1, 3], b: f32[N, (T + 1) / 2, 3], c: f32[N, T - 3, 3]) {
  a = x[:, 1:] - x[:, :-1]
  b = x[:, ::2]
  c = x[:, 2:-1]
}
"""


@needs_torch
class IndexChecksTest(TempDirCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        torch = torch_or_none()
        torch.manual_seed(0)
        cls.emb = torch.nn.Embedding(7, 3)
        weights = nnc.save_safetensors({"emb." + k: v.numpy() for k, v in cls.emb.state_dict().items()},
                                       os.path.join(cls.tmp, "w.safetensors"))
        nn = write_model(MODEL, cls.tmp, "indices")
        cls.models = {"jit": nnc.compile(nn, weights=weights),
                      "so": nnc.load(compile_so(nn, cls.tmp), weights=weights)}
        rng = np.random.default_rng(1)
        cls.x4 = rng.standard_normal((4, 300)).astype(np.float32)
        cls.x6 = rng.standard_normal((2, 6)).astype(np.float32)
        cls.feat = rng.standard_normal((2, 3, 9, 9)).astype(np.float32)

    def each(self):
        for kind, m in self.models.items():
            for threads in (1, 3):
                m.threads = threads
                yield f"{kind}, {threads} threads", m

    def expect(self, entry, args, want):
        for what, m in self.each():
            np.testing.assert_allclose(getattr(m, entry)(*args), want, rtol=1e-5, atol=1e-6, err_msg=what)

    def refuses(self, entry, args, torch_call, message):
        with self.assertRaises((IndexError, RuntimeError)):  # PyTorch refuses it too
            torch_call()
        for what, m in self.each():
            with self.assertRaises(nnc.Error, msg=what) as cm:
                getattr(m, entry)(*args)
            self.assertIn(message, str(cm.exception), what)

    def test_run_time_positions(self):
        """x[:, -3] and x[:, T - 1] on a symbolic axis, x[t - 1] inside a scan (t = 0 reads
        the last row, as x[-1] does in torch), gather along a symbolic axis."""
        torch = torch_or_none()
        rng = np.random.default_rng(5)
        for T in (3, 7):
            x = rng.standard_normal((2, T, 3)).astype(np.float32)
            tx = torch.from_numpy(x)
            h, want = torch.zeros(3), []
            for t in range(T):
                h = torch.tanh(h + tx[0, t - 1] * 0.5)
                want.append(h)
            i = rng.integers(0, T, (2, 4))
            for what, m in self.each():
                y, z = m.last(x)
                np.testing.assert_array_equal(y, tx[:, -3].numpy(), err_msg=what)
                np.testing.assert_array_equal(z, tx[:, T - 1].numpy(), err_msg=what)
                np.testing.assert_allclose(m.prev(x[0]), torch.stack(want).numpy(), rtol=1e-5, atol=1e-6, err_msg=what)
                np.testing.assert_array_equal(m.gather_sym(x[:, :, 0], i),
                                              torch.gather(tx[:, :, 0], 1, torch.from_numpy(i)).numpy(), err_msg=what)
        short = np.zeros((2, 2, 3), np.float32)
        self.refuses("last", (short,), lambda: torch.from_numpy(short)[:, -3], "holds -1, outside [0, 2)")

    def test_check_index(self):
        """check_index(index, size): the index itself, or the call fails naming the place."""
        t = np.array([0, 3, 4], np.int64)
        self.expect("checked", (t, np.zeros(5, np.float32)), t.astype(np.float32))
        for bad in (5, -1):
            t[1] = bad
            for what, m in self.each():
                with self.assertRaises(nnc.Error, msg=what) as cm:
                    m.checked(t, np.zeros(5, np.float32))
                self.assertIn(f"check_index: argument 'index' holds {bad}, outside [0, 5)", str(cm.exception), what)

    def test_embedding(self):
        torch = torch_or_none()
        t = np.array([[0, 6, 3], [6, 0, 1]], np.int64)
        self.expect("embed", (t,), self.emb(torch.from_numpy(t)).detach().numpy())
        for bad in (7, -1, 2**40):
            t[1, 2] = bad
            self.refuses("embed", (t,), lambda: self.emb(torch.from_numpy(t)),
                         f"Embedding: input holds {bad}, outside [0, 7)")

    def test_gather(self):
        torch = torch_or_none()
        i = np.random.default_rng(2).integers(0, 4, (5, 300)).astype(np.float32)
        i[0, 0], i[4, 299] = 0, 3
        want = torch.gather(torch.from_numpy(self.x4), 0, torch.from_numpy(i).long()).numpy()
        self.expect("gather_rows", (self.x4, i), want)
        for bad, words in ((4, "holds 4, outside [0, 4)"), (-1, "holds -1, outside [0, 4)")):
            i[3, 200] = bad
            self.refuses("gather_rows", (self.x4, i),
                         lambda: torch.gather(torch.from_numpy(self.x4), 0, torch.from_numpy(i).long()),
                         "gather: argument 'index' " + words)
        for bad, words in ((np.nan, "holds nan, which is not a number"), (1.5, "holds 1.5, which is not a whole number")):
            i[3, 200] = bad
            for what, m in self.each():  # torch has no float indices: nnc refuses what it cannot mean
                with self.assertRaises(nnc.Error, msg=what) as cm:
                    m.gather_rows(self.x4, i)
                self.assertIn(words, str(cm.exception))

    def test_index_select(self):
        torch = torch_or_none()
        i = np.array([5, 0, 5, 2], np.int64)
        self.expect("select", (self.x6, i), torch.index_select(torch.from_numpy(self.x6), 1, torch.from_numpy(i)).numpy())
        for bad in (6, -3):
            i[2] = bad
            self.refuses("select", (self.x6, i),
                         lambda: torch.index_select(torch.from_numpy(self.x6), 1, torch.from_numpy(i)),
                         f"index_select: argument 'index' holds {bad}, outside [0, 6)")

    def test_one_hot(self):
        torch = torch_or_none()
        t = np.array([4, 0, 2], np.float32)
        self.expect("hot", (t,), torch.nn.functional.one_hot(torch.from_numpy(t).long(), 5).float().numpy())
        for bad in (5, -1):
            t[1] = bad
            self.refuses("hot", (t,), lambda: torch.nn.functional.one_hot(torch.from_numpy(t).long(), 5),
                         f"one_hot: argument 'tensor' holds {bad}, outside [0, 5)")

    def test_roi_align(self):
        torch = torch_or_none()
        try:
            from torchvision.ops import roi_align
        except ImportError:
            self.skipTest("torchvision is not installed")
        b = np.array([[1, 2, 2, 14, 10], [0, 0, 0, 17, 17], [1, 5, 1, 9, 16]], np.float32)
        ref = lambda: roi_align(torch.from_numpy(self.feat), torch.from_numpy(b), [3, 3], 0.5).numpy()
        self.expect("roi", (self.feat, b), ref())
        for bad in (2, -1):
            b[2, 0] = bad
            for what, m in self.each():  # torchvision reads out of bounds here: nnc refuses
                with self.assertRaises(nnc.Error, msg=what) as cm:
                    m.roi(self.feat, b)
                self.assertIn(f"roi_align: boxes[:, 0] (the batch index) holds {bad}, outside [0, 2)", str(cm.exception))

    def test_slices_of_symbolic_length(self):
        """x[:, 1:], x[:, :-1], x[:, ::2], x[:, 2:-1] along a symbolic axis: of length T - 1,
        (T + 1) / 2, T - 3, empty (not an error) when T is too short, as Python's slicing."""
        rng = np.random.default_rng(7)
        for T in (1, 2, 3, 4, 9):
            x = rng.standard_normal((2, T, 3)).astype(np.float32)
            for what, m in self.each():
                a, b, c = m.diffs(x)
                np.testing.assert_array_equal(a, x[:, 1:] - x[:, :-1], err_msg=f"{what}, T = {T}")
                np.testing.assert_array_equal(b, x[:, ::2], err_msg=f"{what}, T = {T}")
                np.testing.assert_array_equal(c, x[:, 2:-1], err_msg=f"{what}, T = {T}")

    def test_run_time_slices(self):
        """Slices of static length along a symbolic axis, both ends from the start or both from
        the end: torch's rows for every T that holds them; a T too short for them is a run-time
        error (torch would return fewer rows, which a shape of static length cannot)."""
        rng = np.random.default_rng(6)
        for T in (4, 5, 9):
            x = rng.standard_normal((2, T, 3)).astype(np.float32)
            for what, m in self.each():
                a, b, c, d = m.ends(x)
                np.testing.assert_array_equal(a, x[:, -2:], err_msg=what)
                np.testing.assert_array_equal(b, x[:, :2], err_msg=what)
                np.testing.assert_array_equal(c, x[:, -4:-1:2], err_msg=what)
                np.testing.assert_array_equal(d, x[:, 1:2], err_msg=what)
        for what, m in self.each():
            with self.assertRaises(nnc.Error, msg=what) as cm:
                m.ends(np.zeros((2, 3, 3), np.float32))  # x[:, -4:-1:2] needs T >= 4
            self.assertIn("slice position holds -1, outside [0, 3)", str(cm.exception), what)


if __name__ == "__main__":
    unittest.main()
