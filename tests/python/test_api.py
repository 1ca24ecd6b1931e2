"""The Python package's API on small models: introspection, calling conventions (positional,
keyword, named-tuple and dict results, bound calls), argument conversion, the exceptions a
mismatch raises (naming the argument, expected and given dtype/shape), the JIT path, weights
given at load time, closing, and concurrent calls."""
import os
import threading
import unittest
from unittest import mock

import numpy as np

import nnc
from support import TempDirCase, compile_so, needs_torch, torch_or_none, write_model

MODEL = """
lin = Linear(3, 2)

export two(a: f32[N, 3], b: f32[N]) -> (y: f32[N, 2], s: f32[N]) {
  y = lin(a)
  s = sum(a, axis=1) + b
}
export multi(x: f32[B, T, 4], m: f32[T]) -> (y: f32[B, T]) {
  y = sum(x, axis=2) * m
}
export scalar(x: f32[]) -> (y: f32[]) {
  y = x * 2
}
export idx(i: i64[N]) -> (y: f32[N]) {
  y = i * 2.0
}
export dbl(x: f32[2*N]) -> (y: f32[N, 2]) {
  y = reshape(x, [N, 2])
}
"""

W = np.array([[1, 2, 3], [-1, 0, 0.5]], np.float32)
B = np.array([0.25, -2], np.float32)


def reference_two(a, b, w=W, bias=B):
    return a @ w.T + bias, a.sum(axis=1) + b


class ApiTest(TempDirCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.nn = write_model(MODEL, cls.tmp, "tiny")
        cls.weights = nnc.save_safetensors({"lin.weight": W, "lin.bias": B},
                                           os.path.join(cls.tmp, "tiny.safetensors"))
        cls.so = compile_so(cls.nn, cls.tmp, cls.weights)
        cls.so_noweights = compile_so(cls.nn, cls.tmp, None, "tiny_noweights")
        cls.m = nnc.load(cls.so)

    @classmethod
    def tearDownClass(cls):
        cls.m.close()
        super().tearDownClass()

    def setUp(self):
        rng = np.random.default_rng(0)
        self.a = rng.standard_normal((4, 3)).astype(np.float32)
        self.b = rng.standard_normal(4).astype(np.float32)

    # ---- introspection ----

    def test_introspection(self):
        m = self.m
        self.assertEqual(m.name, "tiny")
        self.assertEqual(list(m.entries), ["two", "multi", "scalar", "idx", "dbl"])
        self.assertEqual([(p.name, p.shape, str(p.dtype)) for p in m.params],
                         [("lin.weight", (2, 3), "float32"), ("lin.bias", (2,), "float32")])
        self.assertTrue(m.embedded_weights)
        self.assertEqual(set(m.symbols), {"N", "B", "T"})
        e = m.entries["two"]
        self.assertEqual([a.name for a in e.inputs], ["a", "b"])
        self.assertEqual(e.inputs[0].dims, ("N", 3))
        self.assertEqual(e.inputs[0].type, "f32[N, 3]")
        self.assertEqual(e.inputs[0].dtype, np.float32)
        self.assertEqual(m.entries["idx"].inputs[0].type, "i64[N]")
        self.assertEqual(m.entries["dbl"].inputs[0].dims, ("2*N",))
        self.assertEqual(e.signature, "two(a: f32[N, 3], b: f32[N]) -> (y: f32[N, 2], s: f32[N])")
        self.assertIn("two(a: f32[N, 3]", repr(m))
        self.assertIs(m.two, m["two"])
        self.assertIn("two", dir(m))
        self.assertIn("tiny.two(", m.two.__doc__)

    # ---- calling ----

    def test_positional_keyword_and_results(self):
        y, s = self.m.two(self.a, self.b)
        wy, ws = reference_two(self.a, self.b)
        np.testing.assert_allclose(y, wy, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(s, ws, rtol=1e-5, atol=1e-5)
        r = self.m.two(b=self.b, a=self.a)
        np.testing.assert_array_equal(r.y, y)
        np.testing.assert_array_equal(r.s, s)
        self.assertEqual(r._fields, ("y", "s"))
        d = self.m.two.call(self.a, b=self.b)
        self.assertEqual(list(d), ["y", "s"])
        np.testing.assert_array_equal(d["y"], y)
        self.assertEqual(y.dtype, np.float32)
        self.assertEqual(y.shape, (4, 2))

    def test_single_output_is_the_array(self):
        y = self.m.dbl(np.arange(6, dtype=np.float32))
        self.assertIsInstance(y, np.ndarray)
        np.testing.assert_array_equal(y, np.arange(6, dtype=np.float32).reshape(3, 2))

    def test_several_symbolic_dims(self):
        x = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
        m = np.array([1, 0, -1], np.float32)
        np.testing.assert_allclose(self.m.multi(x, m), x.sum(axis=2) * m)

    def test_scalars_lists_and_int64(self):
        y = self.m.scalar(np.float32(1.5))
        self.assertEqual(y.shape, ())
        self.assertEqual(float(y), 3.0)
        self.assertEqual(float(self.m.scalar(2)), 4.0)          # a Python number
        np.testing.assert_array_equal(self.m.idx([1, 2, 3]), [2, 4, 6])   # a list -> i64
        np.testing.assert_array_equal(self.m.idx(np.array([5], np.int64)), [10])
        y, s = self.m.two(self.a.tolist(), self.b.tolist())     # float lists -> f32
        np.testing.assert_allclose(y, reference_two(self.a, self.b)[0], rtol=1e-5, atol=1e-5)

    def test_non_contiguous_and_byteswapped_inputs(self):
        a = np.asfortranarray(self.a)
        np.testing.assert_array_equal(self.m.two(a, self.b).y, self.m.two(self.a, self.b).y)
        big = self.a.astype(">f4")
        np.testing.assert_array_equal(self.m.two(big, self.b).y, self.m.two(self.a, self.b).y)
        strided = np.repeat(self.b, 2)[::2]
        np.testing.assert_array_equal(self.m.two(self.a, strided).s, self.m.two(self.a, self.b).s)

    def test_bind_reuses_inputs_and_outputs(self):
        a = self.a.copy()
        call = self.m.two.bind(a, self.b)
        y1 = call().y.copy()
        a *= 2
        r = call()
        self.assertIs(r.y, call.outputs[0])
        np.testing.assert_allclose(r.y, reference_two(a, self.b)[0], rtol=1e-5, atol=1e-5)
        self.assertFalse(np.allclose(y1, r.y))

    def test_bound_call_of_a_short_entry_keeps_the_gil(self):
        # The decision follows the probes' time; SHORT_CALL_US is patched so that it does not
        # depend on this machine's load (a few-microsecond call preempted in every probe).
        with mock.patch.object(nnc._entry, "SHORT_CALL_US", 0):
            call = self.m.two.bind(self.a.copy(), self.b)
            for _ in range(nnc._entry.PROBE_CALLS):
                call()
            self.assertFalse(call.holds_gil)
        for m in (self.m, nnc.compile(self.nn, weights=self.weights)):
            a = self.a.copy()
            call = m.two.bind(a, self.b)
            with mock.patch.object(nnc._entry, "SHORT_CALL_US", float("inf")):
                for _ in range(nnc._entry.PROBE_CALLS):
                    self.assertFalse(call.holds_gil)
                    call()
            self.assertTrue(call.holds_gil)
            a *= -3
            np.testing.assert_array_equal(call().y, m.two(a, self.b).y)
            if m is not self.m:
                m.close()
                self.assertRaisesMsg(ValueError, ["closed"], call)

    def test_bound_calls_from_threads_then_close(self):
        m = nnc.load(self.so)
        calls = []
        for n in (1, 5, 300):
            a = np.full((n, 3), n, np.float32)
            calls.append((m.two.bind(a, np.zeros(n, np.float32)), reference_two(a, np.zeros(n, np.float32))[0]))
        errors, closed = [], []

        def worker(k):
            call, want = calls[k % len(calls)]
            try:
                for _ in range(200):
                    y = call().y.copy()  # another thread may run the same call: compare a copy
                    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-5)
            except ValueError as e:  # after the close below
                closed.append(e)
            except Exception as e:
                errors.append(e)
        threads = [threading.Thread(target=worker, args=(k,)) for k in range(6)]
        for t in threads:
            t.start()
        m.close()
        for t in threads:
            t.join()
        self.assertEqual(errors, [])
        for call, _ in calls:
            self.assertRaisesMsg(ValueError, ["closed"], call)

    def test_empty_batch(self):
        y, s = self.m.two(np.zeros((0, 3), np.float32), np.zeros(0, np.float32))
        self.assertEqual((y.shape, s.shape), ((0, 2), (0,)))

    @needs_torch
    def test_torch_tensors_as_inputs(self):
        torch = torch_or_none()
        a = torch.from_numpy(self.a).requires_grad_()
        y, _ = self.m.two(a, torch.from_numpy(self.b))
        np.testing.assert_array_equal(y, self.m.two(self.a, self.b).y)

    # ---- mismatches ----

    def assertRaisesMsg(self, exc, parts, f, *args, **kwargs):
        with self.assertRaises(exc) as cm:
            f(*args, **kwargs)
        for p in parts:
            self.assertIn(p, str(cm.exception))
        return cm.exception

    def test_wrong_dtype_is_a_type_error(self):
        self.assertRaisesMsg(TypeError, ["argument 'a'", "float32", "f32[N, 3]", "got float64"],
                             self.m.two, self.a.astype(np.float64), self.b)
        self.assertRaisesMsg(TypeError, ["argument 'b'", "got int64"], self.m.two, self.a,
                             np.arange(4))
        self.assertRaisesMsg(TypeError, ["argument 'i'", "int64", "got float32"], self.m.idx,
                             np.ones(3, np.float32))
        self.assertRaisesMsg(TypeError, ["argument 'i'", "int64", "got float64"], self.m.idx, [1.5])
        self.assertRaisesMsg(TypeError, ["argument 'a'"], self.m.two, "hello", self.b)

    def test_wrong_shape_is_a_value_error(self):
        self.assertRaisesMsg(ValueError, ["argument 'a'", "must have 2 dims", "f32[N, 3]", "(12,)"],
                             self.m.two, self.a.reshape(-1), self.b)
        self.assertRaisesMsg(ValueError, ["argument 'a'", "(4, 2)", "expected (4, 3)"],
                             self.m.two, self.a[:, :2], self.b)
        self.assertRaisesMsg(ValueError, ["argument 'b'", "(5,)", "expected (4,)",
                                          "N = 4 from argument 'a'"],
                             self.m.two, self.a, np.zeros(5, np.float32))
        self.assertRaisesMsg(ValueError, ["argument 'x'", "not a multiple of 2", "f32[2*N]"],
                             self.m.dbl, np.zeros(5, np.float32))

    def test_wrong_arguments_are_type_errors(self):
        self.assertRaisesMsg(TypeError, ["missing required argument: 'b'"], self.m.two, self.a)
        self.assertRaisesMsg(TypeError, ["takes 2 arguments", "got 3"], self.m.two, self.a, self.b, 1)
        self.assertRaisesMsg(TypeError, ["unexpected keyword argument 'c'", "a, b"], self.m.two,
                             self.a, self.b, c=1)
        self.assertRaisesMsg(TypeError, ["multiple values for argument 'a'"], self.m.two, self.a,
                             a=self.a, b=self.b)

    def test_unknown_entry(self):
        self.assertRaisesMsg(AttributeError, ["no entry or attribute 'nope'", "two, multi"],
                             getattr, self.m, "nope")
        self.assertRaisesMsg(KeyError, ["no entry 'nope'"], lambda: self.m["nope"])

    # ---- loading ----

    def test_load_errors(self):
        self.assertRaises(FileNotFoundError, nnc.load, os.path.join(self.tmp, "missing.so"))
        self.assertRaisesMsg(ValueError, ["nnc.compile"], nnc.load, self.nn)
        self.assertRaisesMsg(ValueError, ["no embedded weights", "weights="], nnc.load, self.so_noweights)
        bad = nnc.save_safetensors({"lin.weight": W}, os.path.join(self.tmp, "bad.safetensors"))
        e = self.assertRaisesMsg(nnc.WeightsError, ["missing tensor 'lin.bias'"], nnc.load,
                                 self.so_noweights, weights=bad)
        self.assertIsInstance(e, nnc.Error)
        other = os.path.join(self.tmp, "not_nnc.so")
        with open(other, "wb") as f:
            f.write(b"not a library")
        self.assertRaisesMsg(nnc.Error, ["cannot load the library"], nnc.load, other)

    def test_load_after_a_rebuild_at_the_same_path(self):
        """dlopen returns a library already loaded from a path: nnc.load of a library rebuilt
        there (another -D) must still give the new one."""
        nn = write_model("export f(x: f32[N, K]) -> (y: f32[N]) { y = sum(x, axis=1) * SCALE }\n"
                         "const K = 3\nconst SCALE = 1.0\n", self.tmp, "rebuilt")
        x = np.ones((2, 3), np.float32)
        first = nnc.load(compile_so(nn, self.tmp))
        np.testing.assert_array_equal(first.f(x), [3, 3])
        second = nnc.load(compile_so(nn, self.tmp, defines=("SCALE=2.0",)))
        np.testing.assert_array_equal(second.f(x), [6, 6])
        third = nnc.load(compile_so(nn, self.tmp, defines=("K=4",)))
        self.assertEqual(third.f.inputs[0].dims, ("N", 4))
        np.testing.assert_array_equal(first.f(x), [3, 3])  # the first library is still its own
        for m in (first, second, third):
            m.close()

    def test_not_an_nnc_library(self):
        import ctypes.util
        libm = ctypes.util.find_library("m")
        path = next((p for p in ("/lib/x86_64-linux-gnu/libm.so.6", "/usr/lib/x86_64-linux-gnu/libm.so.6",
                                 "/lib64/libm.so.6") if os.path.isfile(p)), None)
        if path is None:
            self.skipTest(f"no libm file found ({libm})")
        self.assertRaisesMsg(nnc.Error, ["not a model library made by nnc"], nnc.load, path)

    def test_weights_at_load_time_replace_embedded_ones(self):
        w2 = nnc.save_safetensors({"lin.weight": 2 * W, "lin.bias": 2 * B},
                                  os.path.join(self.tmp, "double.safetensors"))
        for path in (self.so, self.so_noweights):
            with nnc.load(path, weights=w2) as m:
                y, _ = m.two(self.a, self.b)
                np.testing.assert_allclose(y, reference_two(self.a, self.b, 2 * W, 2 * B)[0],
                                           rtol=1e-5, atol=1e-5)

    def test_close(self):
        m = nnc.load(self.so)
        e = m.two
        m.close()
        m.close()  # harmless
        self.assertRaisesMsg(ValueError, ["closed"], e, self.a, self.b)
        with nnc.load(self.so) as m2:
            self.assertEqual(m2.two(self.a, self.b).y.shape, (4, 2))
        self.assertRaises(ValueError, m2.two, self.a, self.b)

    # ---- JIT ----

    def test_jit_matches_so(self):
        with nnc.compile(self.nn, weights=self.weights) as j:
            self.assertEqual(list(j.entries), list(self.m.entries))
            self.assertTrue(j.embedded_weights)
            for name, args in [("two", (self.a, self.b)), ("idx", ([1, 2],)),
                               ("dbl", (np.arange(4, dtype=np.float32),))]:
                got, want = j[name].call(*args), self.m[name].call(*args)
                for k in want:
                    np.testing.assert_array_equal(got[k], want[k])
            self.assertRaisesMsg(TypeError, ["argument 'a'", "got float64"], j.two,
                                 self.a.astype(np.float64), self.b)

    def test_jit_defines(self):
        nn = write_model('const K = 2\nconst MODE = "add"\n'
                         'export f(x: f32[N]) -> (y: f32[N]) {\n'
                         '  if MODE == "add" { y = x + K } else { y = x * K }\n}\n', self.tmp, "defs")
        x = np.arange(3, dtype=np.float32)
        with nnc.compile(nn) as m:
            np.testing.assert_array_equal(m.f(x), x + 2)
        with nnc.compile(nn, defines={"K": 3, "MODE": "mul"}) as m:
            np.testing.assert_array_equal(m.f(x), x * 3)
        with nnc.compile(nn, defines=["K=5"]) as m:
            np.testing.assert_array_equal(m.f(x), x + 5)
        self.assertRaises(TypeError, nnc.compile, nn, defines=["K"])
        self.assertRaisesMsg(nnc.CompileError, ["NOPE"], nnc.compile, nn, defines={"NOPE": 1})

    def test_jit_errors(self):
        bad = write_model("export f(x: f32[N]) -> (y: f32[N]) {\n  y = nope(x)\n}\n", self.tmp, "bad")
        e = self.assertRaisesMsg(nnc.CompileError, [f"{bad}:2:7: error:", "nope"], nnc.compile, bad)
        self.assertEqual(e.status, 1)
        self.assertRaisesMsg(ValueError, ["2 parameters", "weights="], nnc.compile, self.nn)
        wrong = nnc.save_safetensors({"lin.weight": W.T.copy(), "lin.bias": B},
                                     os.path.join(self.tmp, "wrong.safetensors"))
        self.assertRaisesMsg(nnc.WeightsError, ["lin.weight", "[3, 2]", "[2, 3]"], nnc.compile,
                             self.nn, weights=wrong)
        self.assertRaises(FileNotFoundError, nnc.compile, self.nn, weights=self.nn + ".missing")
        self.assertRaisesMsg(FileNotFoundError, ["libnnc"], nnc.compile, self.nn,
                             weights=self.weights, lib=os.path.join(self.tmp, "libnnc.so"))

    # ---- threads ----

    def test_concurrent_calls(self):
        rng = np.random.default_rng(1)
        cases = [(rng.standard_normal((n, 3)).astype(np.float32), rng.standard_normal(n).astype(np.float32))
                 for n in (1, 7, 64, 300)]
        errors = []

        def worker(k):
            try:
                for _ in range(50):
                    a, b = cases[k % len(cases)]
                    y, s = self.m.two(a, b)
                    wy, ws = reference_two(a, b)
                    np.testing.assert_allclose(y, wy, rtol=1e-4, atol=1e-4)
                    np.testing.assert_allclose(s, ws, rtol=1e-4, atol=1e-4)
            except Exception as e:  # reported by the main thread
                errors.append(e)
        threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(errors, [])


if __name__ == "__main__":
    unittest.main()
