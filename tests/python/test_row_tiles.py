"""Row tiles (issue 20) against NumPy: products x W^T + b whose B (the transposed weight) fits
the target's L2 or not, planned for a small L2 ($NNC_PLAN_L2) so that every path shows on any
machine: row tiles (6 x 4 register tiles with 32 vector registers: 1-5 rows left over), B in
parts swept part-major (a product wider than a part of L2, N not a multiple of the vector; a B
larger than L2); a GELU(x W + b) epilogue over a reshaped result
(its bias row read by column).  JIT and AOT, 1-3 threads, the same bits everywhere.  The
compile cache keys on the planned cache size: a kernel planned for another L2 is never reused."""
import math
import os
import subprocess
import unittest
from unittest import mock

import numpy as np

import nnc
from support import NNC, TempDirCase, assert_close, assert_same_everywhere, compile_so, write_model

SMALL_L2 = 64 * 1024  # 16 Ki floats of B; parts of 4 Ki floats

# fits: 96 x 128 = 12 Ki floats; too big: 192 x 128 = 24 Ki floats; wide: K 32, N 1000 (31.25 Ki
# floats, in parts); gelu: a Transformer's MLP, [B, T, 48] -> 80 -> 24 with GELU between (the
# first product's epilogue runs on row blocks of the [B T, 80] result)
MODEL = """
fits = Linear(96, 128)
big = Linear(192, 128)
wide = Linear(32, 1000)
ff = Linear(48, 80)
ff2 = Linear(80, 24)
export fits_f(x: f32[M, 96]) -> y: f32[M, 128] { y = fits(x) }
export big_f(x: f32[M, 192]) -> y: f32[M, 128] { y = big(x) }
export wide_f(x: f32[M, 32]) -> y: f32[M, 1000] { y = wide(x) }
export gelu_f(x: f32[B, T, 48]) -> y: f32[B, T, 24] { y = ff2(gelu(ff(x))) }
"""
LAYERS = {"fits": (96, 128), "big": (192, 128), "wide": (32, 1000), "ff": (48, 80), "ff2": (80, 24)}
ROWS = (1, 5, 6, 7, 13, 40)  # 6-row tiles and every remainder of 1-5 rows


def erf(x):
    return np.vectorize(math.erf)(x.astype(np.float64))


class RowTilesTest(TempDirCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        rng = np.random.default_rng(20)
        cls.w = {}
        for name, (k, n) in LAYERS.items():
            cls.w[f"{name}.weight"] = (rng.standard_normal((n, k)) / math.sqrt(k)).astype(np.float32)
            cls.w[f"{name}.bias"] = rng.standard_normal(n).astype(np.float32)
        cls.weights = nnc.save_safetensors(cls.w, os.path.join(cls.tmp, "w.safetensors"))
        cls.nn = write_model(MODEL, cls.tmp, "rowtiles")
        with mock.patch.dict(os.environ, {"NNC_PLAN_L2": str(SMALL_L2)}):
            cls.models = {"jit": nnc.compile(cls.nn, weights=cls.weights),
                          "so": nnc.load(compile_so(cls.nn, cls.tmp, cls.weights))}
        cls.rng = np.random.default_rng(21)

    def linear(self, name, x):
        return (x.astype(np.float64) @ self.w[f"{name}.weight"].T.astype(np.float64) + self.w[f"{name}.bias"]).astype(np.float32)

    def loops(self, l2):
        env = dict(os.environ, NNC_PLAN_L2=str(l2))
        return subprocess.run([NNC, "dump", "--stage=loops", self.nn], capture_output=True, text=True, check=True,
                              env=env).stdout

    def kernel(self, dump, entry):
        """The loops of entry `entry`'s kernels (up to the next entry)."""
        start = dump.index(f"entry {entry}\n")
        end = dump.find("\nentry ", start + 1)
        return dump[start:end if end >= 0 else len(dump)]

    def test_plans_follow_the_l2_size(self):
        small = self.loops(SMALL_L2)
        self.assertIn("gelu(", self.kernel(small, "gelu_f"))
        self.assertNotIn("% 80)", self.kernel(small, "gelu_f"))       # the bias by column, not row % 80
        self.assertIn("conv ", self.kernel(small, "fits_f"))        # B within L2: row tiles
        self.assertIn("tile=", self.kernel(small, "fits_f"))
        self.assertIn("part-major", self.kernel(small, "big_f"))    # B over L2: in parts
        self.assertNotIn("sgemm", self.kernel(small, "big_f"))
        self.assertIn("part-major", self.kernel(small, "wide_f"))   # wider than a part of L2
        large = self.loops(16 * 1024 * 1024)
        self.assertNotIn("part-major", self.kernel(large, "big_f"))  # the same B within a large L2
        self.assertNotIn("part-major", self.kernel(large, "wide_f"))

    def test_products_against_numpy(self):
        for name, entry, k in (("fits", "fits_f", 96), ("big", "big_f", 192), ("wide", "wide_f", 32)):
            for m in ROWS:
                x = self.rng.standard_normal((m, k)).astype(np.float32)
                assert_same_everywhere(self, self.models, lambda mod: getattr(mod, entry)(x),
                                       (self.linear(name, x),), f"{entry}, {m} rows")

    def test_gelu_epilogue_against_numpy(self):
        for b, t in ((1, 3), (2, 7), (5, 1)):
            x = self.rng.standard_normal((b, t, 48)).astype(np.float32)
            h = self.linear("ff", x.reshape(-1, 48)).astype(np.float64)
            g = (0.5 * h * (1 + erf(h / math.sqrt(2)))).astype(np.float32)
            want = self.linear("ff2", g).reshape(b, t, 24)
            assert_same_everywhere(self, self.models, lambda mod: mod.gelu_f(x), (want,), f"gelu, B={b}, T={t}")

    def test_cache_keys_on_the_l2_size(self):
        cache = os.path.join(self.tmp, "cache")

        def entries():
            return {f for f in os.listdir(cache) if not f.startswith(".")} if os.path.isdir(cache) else set()

        x = self.rng.standard_normal((7, 192)).astype(np.float32)
        with mock.patch.dict(os.environ, {"NNC_CACHE_DIR": cache, "NNC_PLAN_L2": str(SMALL_L2)}):
            with nnc.compile(self.nn, weights=self.weights) as m:
                small = np.asarray(m.big_f(x)).copy()
        first = entries()
        self.assertTrue(first)
        with mock.patch.dict(os.environ, {"NNC_CACHE_DIR": cache, "NNC_PLAN_L2": str(SMALL_L2)}):
            with nnc.compile(self.nn, weights=self.weights):
                pass
        self.assertEqual(entries(), first)  # the same L2: every entry found
        # another L2, 4 KiB more: the same plans (the loops dump), yet new entries, none reused
        other = SMALL_L2 + 4096
        self.assertEqual(self.loops(other), self.loops(SMALL_L2))
        with mock.patch.dict(os.environ, {"NNC_CACHE_DIR": cache, "NNC_PLAN_L2": str(other)}):
            with nnc.compile(self.nn, weights=self.weights) as m:
                again = np.asarray(m.big_f(x)).copy()
        self.assertFalse(entries() <= first)
        want = self.linear("big", x)
        assert_close(self, small, want, "B over L2, cached")
        assert_close(self, again, want, "B over L2, another L2")


if __name__ == "__main__":
    unittest.main()
