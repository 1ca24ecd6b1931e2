"""Every run-time input is untrusted, from Python (docs/python.md, Arguments and errors):
zero-size batches work; zero-size arrays that bind huge symbolic dims (2^31, 2^40) whose
outputs or workspace would pass 2^63 bytes raise nnc.Error naming the output or entry and the
dims' values; a model used after close() or after its `with` block raises nnc.ClosedError (an
nnc.Error and a ValueError), never a crash; running out of memory while compiling is a
MemoryError with the compiler's message.  Through nnc.load (the library's own nnc_ctx_call)
and nnc.compile (libnnc's nnc_call)."""
import os
import pickle
import unittest

import numpy as np

import nnc
from nnc import _abi
from support import TempDirCase, compile_so, write_model

MODEL = """
export twice(x: f32[N, 2]) -> (y: f32[N, 2]) { y = x * 2.0 }
export outer(a: f32[N, K], b: f32[K, M]) -> (y: f32[N, M]) { y = relu(a @ b) }
export rows(a: f32[N, K], b: f32[K, M]) -> (y: f32[N]) {
  t = softmax(a @ b, axis=1)
  y = sum(t * t, axis=1)
}
"""
P40 = 2 ** 40


class UntrustedTest(TempDirCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.nn = write_model(MODEL, cls.tmp, "dims")
        cls.so = compile_so(cls.nn, cls.tmp)

    def models(self):
        return (("load", lambda: nnc.load(self.so)), ("compile", lambda: nnc.compile(self.nn)))

    def assertRaisesMsg(self, exc, parts, fn, *args, **kwargs):
        with self.assertRaises(exc) as cm:
            fn(*args, **kwargs)
        for p in parts:
            self.assertIn(p, str(cm.exception))
        return cm.exception

    def test_zero_size_batch(self):
        for how, open_model in self.models():
            with self.subTest(how=how), open_model() as m:
                y = m.twice(np.zeros((0, 2), np.float32))
                self.assertEqual((y.shape, y.dtype), ((0, 2), np.float32))
                y = m.rows(np.zeros((0, 3), np.float32), np.zeros((3, 4), np.float32))
                self.assertEqual(y.shape, (0,))
                y = m.outer(np.zeros((2, 0), np.float32), np.zeros((0, 5), np.float32))
                np.testing.assert_array_equal(y, np.zeros((2, 5), np.float32))  # an empty sum
                np.testing.assert_array_equal(m.twice(np.ones((1, 2), np.float32)), [[2, 2]])

    def test_huge_dims_from_zero_size_arrays(self):
        a, b = np.zeros((P40, 0), np.float32), np.zeros((0, P40), np.float32)
        for how, open_model in self.models():
            with self.subTest(how=how), open_model() as m:
                e = self.assertRaisesMsg(nnc.Error, ["output 'y' of entry 'outer'", "f32[N, M]",
                                                     f"N = {P40}", f"M = {P40}",
                                                     "would need more than 2^63 bytes"], m.outer, a, b)
                self.assertEqual(e.status, _abi.NNC_ERR_USER)
                e = self.assertRaisesMsg(nnc.Error, ["entry 'rows': the workspace would need more than "
                                                     f"2^63 bytes (N = {P40}, M = {P40})"], m.rows, a, b)
                self.assertEqual(e.status, _abi.NNC_ERR_USER)
                n = 2 ** 31  # 4*N*M = 2^64: one past the edge
                self.assertRaisesMsg(nnc.Error, [f"the workspace would need more than 2^63 bytes (N = {n}, M = {n})"],
                                     m.rows, np.zeros((n, 0), np.float32), np.zeros((0, n), np.float32))
                # empty everywhere at N = 2^40: nothing to hold, nothing to compute
                self.assertEqual(m.outer(a, np.zeros((0, 0), np.float32)).shape, (P40, 0))
                np.testing.assert_array_equal(m.twice(np.ones((1, 2), np.float32)), [[2, 2]])

    def test_calls_after_close(self):
        x = np.ones((3, 2), np.float32)
        for how, open_model in self.models():
            with self.subTest(how=how):
                m = open_model()
                entry, bound = m.twice, m.twice.bind(x)
                np.testing.assert_array_equal(bound(), 2 * x)
                m.close()
                m.close()  # harmless
                for what, fn in [("call", lambda: entry(x)), ("m.twice", lambda: m.twice(x)),
                                 ("call()", lambda: entry.call(x)), ("bind", lambda: entry.bind(x)),
                                 ("bound call", bound), ("threads", lambda: m.threads),
                                 ("set threads", lambda: setattr(m, "threads", 2))]:
                    e = self.assertRaisesMsg(nnc.ClosedError, ["model 'dims' is closed", "close()"], fn)
                    self.assertIsInstance(e, nnc.Error)
                    self.assertIsInstance(e, ValueError)  # as the package raised before
                    self.assertEqual(e.status, _abi.NNC_ERR_USAGE, what)
                self.assertIn("twice", repr(m))  # the table stays readable
                with open_model() as m2:
                    b2 = m2.twice.bind(x)
                    np.testing.assert_array_equal(m2.twice(x), 2 * x)
                self.assertRaisesMsg(nnc.ClosedError, ["is closed"], m2.twice, x)
                self.assertRaisesMsg(nnc.ClosedError, ["is closed"], b2)

    def test_compile_out_of_memory(self):
        # NNC_ARENA_LIMIT caps the compiler's arena (a test hook, docs/language.md "Limits"):
        # running out while compiling is MemoryError with the compiler's message, and the
        # process goes on (nothing leaked, the next compilation works)
        os.environ["NNC_ARENA_LIMIT"] = "100000"
        try:
            self.assertRaisesMsg(MemoryError, [f"nnc: error: out of memory while compiling {self.nn}: "
                                               "the compiler's arena reached its limit of 100000 bytes"],
                                 nnc.compile, self.nn)
        finally:
            del os.environ["NNC_ARENA_LIMIT"]
        with nnc.compile(self.nn) as m:
            np.testing.assert_array_equal(m.twice(np.ones((1, 2), np.float32)), [[2, 2]])

    def test_closed_error_pickles(self):
        e = pickle.loads(pickle.dumps(nnc.ClosedError("model 'm' is closed")))
        self.assertIs(type(e), nnc.ClosedError)
        self.assertEqual(e.status, _abi.NNC_ERR_USAGE)


if __name__ == "__main__":
    unittest.main()
