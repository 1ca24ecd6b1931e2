"""The compile cache through the Python package: nnc.compile of an example with a cache
directory of its own stores entries, and a recompile finds them (cold, then warm); the
cached model computes the same bits as one compiled with the cache off (NNC_CACHE=off),
and the AOT library `nnc` builds from the same cache does too."""
import os
import time
import unittest
from unittest import mock

import numpy as np

import nnc
from support import GOLDEN, ROOT, TempDirCase, compile_so

MODEL = os.path.join(ROOT, "examples", "realnvp.nn")
WEIGHTS = os.path.join(GOLDEN, "realnvp", "weights.safetensors")
X = np.load(os.path.join(GOLDEN, "realnvp", "forward.in.x.npy"))


def forward(model):
    z, logdet = model.forward(X)
    return np.asarray(z).copy(), np.asarray(logdet).copy()


def compile_timed():
    t = time.perf_counter()
    model = nnc.compile(MODEL, weights=WEIGHTS)
    return model, time.perf_counter() - t


class CacheTest(TempDirCase):
    def entries(self, cache):
        return sorted(f for f in os.listdir(cache) if not f.startswith(".")) if os.path.isdir(cache) else []

    def test_cold_warm_same_bits(self):
        cache = os.path.join(self.tmp, "cache")
        with mock.patch.dict(os.environ, {"NNC_CACHE": "off", "NNC_CACHE_DIR": cache}):
            with nnc.compile(MODEL, weights=WEIGHTS) as m:
                want = forward(m)
        self.assertEqual(self.entries(cache), [])  # off: nothing stored
        with mock.patch.dict(os.environ, {"NNC_CACHE_DIR": cache}):
            os.environ.pop("NNC_CACHE", None)
            cold, t_cold = compile_timed()
            stored = self.entries(cache)
            self.assertTrue(any(f.endswith(".o") for f in stored), stored)
            warm, t_warm = compile_timed()
            self.assertEqual(self.entries(cache), stored)  # a hit stores nothing new
            for m in (cold, warm):
                with m:
                    for got, exp in zip(forward(m), want):
                        np.testing.assert_array_equal(got, exp)
            # the AOT library, linked from the JIT's object code in the cache
            so = compile_so(MODEL, self.tmp, weights=WEIGHTS)
            with nnc.load(so) as m:
                for got, exp in zip(forward(m), want):
                    np.testing.assert_array_equal(got, exp)
        print(f"\nrealnvp nnc.compile: cold {t_cold * 1e3:.0f} ms, warm {t_warm * 1e3:.0f} ms")


if __name__ == "__main__":
    unittest.main()
