"""i64 entry outputs (issue 17): an output declared i64 comes back as int64, its value
converted as torch's .long() does (toward zero), JIT and AOT, 1, 2 and 3 threads.  Indices
(argmax, argmin, topk's) against torch's int64 results; a sampling entry's tokens as i64 equal
to the same entry's f32 tokens; i64 inputs copied to an i64 output exactly (beyond 2^24, where
f32 is not exact) through a slice and a transpose; NaN to 0 and saturation at the int64 range
(where torch's result is undefined); the casts long(x) and float(x) against torch's."""
import unittest

import numpy as np

import nnc
from support import TempDirCase, compile_so, needs_torch, torch_or_none, write_model

SRC = """
export indices(x: f32[N, 7]) -> (amax: i64[N], amin: i64[N, 1], top: i64[N, 3], vals: f32[N, 3]) {
  amax = argmax(x, 1)
  amin = argmin(x, 1, keepdim=true)
  vals, top = topk(x, 3)
}

export tokens(logits: f32[N, 11], seed: i64[]) -> (tok: i64[N], tok_f: f32[N]) {
  tok = sample_categorical(logits, seed=seed, temperature=0.7)
  tok_f = sample_categorical(logits, seed=seed, temperature=0.7)
}

export passthrough(ids: i64[N, 3]) -> (same: i64[N, 3], cols: i64[3, N], tail: i64[N, 2]) {
  same = ids
  cols = permute(ids, [1, 0])
  tail = ids[:, 1:3]
}

export convert(x: f32[N]) -> (y: i64[N]) {
  y = x * 2.0
}

export kernels(x: f32[N, 4, 6, 6], w: f32[6, 3], k: f32[2, 4, 3, 3], ids: i64[N, 2, 3])
    -> (mm: i64[N, 4, 6, 3], red: i64[N, 4], conv: i64[N, 2, 4, 4], flat: i64[N, 6]) {
  mm = x @ w * 3.0 + 0.5
  red = sum(x, [2, 3]) - 0.5
  conv = conv2d(x, k) * 2.0 + 0.5
  flat = reshape(ids, [N, 6])
}

export casts(x: f32[N], ids: i64[N]) -> (a: i64[N], b: f32[N], c: f32[N], d: i64[N]) {
  a = long(x * 3.0)
  b = float(ids) * 0.5
  c = long(x) + 0.25
  d = long(ids)
}
"""


@needs_torch
class I64OutputsTest(TempDirCase):
    def models(self):
        nn = write_model(SRC, self.tmp, "i64_outputs")
        return {"jit": nnc.compile(nn), "so": nnc.load(compile_so(nn, self.tmp))}

    def each(self, models):
        for kind, m in models.items():
            for threads in (1, 2, 3):
                m.threads = threads
                yield f"{kind}, {threads} threads", m

    def assert_int64_equal(self, got, want, what):
        self.assertEqual(got.dtype, np.int64, what)
        np.testing.assert_array_equal(got, want, err_msg=what)

    def test_indices_against_torch(self):
        torch = torch_or_none()
        x = torch.from_numpy(np.random.default_rng(1).standard_normal((5, 7)).astype(np.float32))
        for what, m in self.each(self.models()):
            amax, amin, top, vals = m.indices(x.numpy())
            self.assert_int64_equal(amax, torch.argmax(x, 1).numpy(), f"argmax, {what}")
            self.assert_int64_equal(amin, torch.argmin(x, 1, keepdim=True).numpy(), f"argmin, {what}")
            self.assert_int64_equal(top, torch.topk(x, 3).indices.numpy(), f"topk, {what}")
            np.testing.assert_allclose(vals, torch.topk(x, 3).values.numpy(), rtol=0, atol=0)

    def test_tokens_as_i64(self):
        logits = np.random.default_rng(2).standard_normal((64, 11)).astype(np.float32)
        for what, m in self.each(self.models()):
            tok, tok_f = m.tokens(logits, np.int64(12345))
            self.assertEqual(tok.dtype, np.int64, what)
            self.assertEqual(tok_f.dtype, np.float32, what)
            np.testing.assert_array_equal(tok, tok_f.astype(np.int64), err_msg=what)
            self.assertTrue(((tok >= 0) & (tok < 11)).all(), what)
            self.assertGreater(len(set(tok.tolist())), 3, what)  # a sample, not one token

    def test_i64_copied_exactly(self):
        big = np.array([[2**40 + 1, -(2**53) - 3, 7], [2**62 + 5, -1, 2**24 + 1]], np.int64)
        for what, m in self.each(self.models()):
            same, cols, tail = m.passthrough(big)
            self.assert_int64_equal(same, big, f"copy, {what}")
            self.assert_int64_equal(cols, big.T, f"permute, {what}")
            self.assert_int64_equal(tail, big[:, 1:3], f"slice, {what}")

    def test_conversion_toward_zero(self):
        torch = torch_or_none()
        x = np.array([-2.7, -1.2, -0.3, 0.0, 0.4, 1.5, 2.5, 3.99, 1e6 + 0.5], np.float32)
        special = np.array([np.nan, np.inf, -np.inf, 1e30, -1e30], np.float32)
        for what, m in self.each(self.models()):
            self.assert_int64_equal(m.convert(x), (torch.from_numpy(x) * 2.0).long().numpy(), f"finite, {what}")
            # NaN and out-of-range values: torch's .long() is undefined there; nnc saturates.
            lo, hi = np.iinfo(np.int64).min, np.iinfo(np.int64).max
            self.assert_int64_equal(m.convert(special), np.array([0, hi, lo, hi, lo], np.int64), f"special, {what}")

    def test_gemm_reduction_conv_outputs(self):
        """Outputs of a GEMM, a reduction and a convolution (kernels whose epilogues are
        fused when the output is f32), and a reshaped i64 input.  Small integer operands, so
        every f32 result is exact and a half away from the integers it truncates between."""
        torch = torch_or_none()
        rng = np.random.default_rng(3)
        x, w, k = (rng.integers(-3, 4, s).astype(np.float32) for s in ((2, 4, 6, 6), (6, 3), (2, 4, 3, 3)))
        ids = rng.integers(-2**40, 2**40, (2, 2, 3))
        tx, tw, tk = (torch.from_numpy(a) for a in (x, w, k))
        want = {"mm": (tx @ tw * 3.0 + 0.5).long(), "red": (tx.sum((2, 3)) - 0.5).long(),
                "conv": (torch.nn.functional.conv2d(tx, tk) * 2.0 + 0.5).long()}
        for what, m in self.each(self.models()):
            mm, red, conv, flat = m.kernels(x, w, k, ids)
            for name, got in (("mm", mm), ("red", red), ("conv", conv)):
                self.assert_int64_equal(got, want[name].numpy(), f"{name}, {what}")
            self.assert_int64_equal(flat, ids.reshape(2, 6), f"reshape, {what}")

    def test_casts_against_torch(self):
        torch = torch_or_none()
        x = np.array([-1.7, 2.2, 0.5, -0.2, 7.9], np.float32)
        ids = np.array([3, -4, 2**40 + 1, 0, 2**20], np.int64)
        tx, ti = torch.from_numpy(x), torch.from_numpy(ids)
        for what, m in self.each(self.models()):
            a, b, c, d = m.casts(x, ids)
            self.assert_int64_equal(a, (tx * 3.0).long().numpy(), f"long, {what}")
            np.testing.assert_array_equal(b, (ti.float() * 0.5).numpy(), err_msg=f"float, {what}")
            np.testing.assert_array_equal(c, (tx.long() + 0.25).numpy(), err_msg=f"long then f32, {what}")
            self.assert_int64_equal(d, ids, f"long of i64, {what}")

    def test_interfaces_report_i64(self):
        m = nnc.compile(write_model(SRC, self.tmp, "i64_outputs"))
        outs = m.entries["indices"].outputs
        self.assertEqual([o.dtype for o in outs], [np.dtype(np.int64)] * 3 + [np.dtype(np.float32)])
        self.assertEqual(outs[0].type, "i64[N]")


if __name__ == "__main__":
    unittest.main()
