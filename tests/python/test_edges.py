"""The Python package at its edges (issue 16, item 12): a damaged or foreign model table, an
ABI mismatch, thread counts C cannot hold, and arguments that are not numbers — each the
documented exception (docs/python.md, Errors) with a message saying what is wrong, never a
raw AttributeError / IndexError, a silently wrapped value or a crash."""
import ctypes
import os
import unittest

import numpy as np

import nnc
from nnc import _abi
from nnc._backend import _SoBackend
from nnc._model import _open
from support import TempDirCase, compile_so, write_model

MODEL = """
export step(x: f32[N, 2], h: f32[N, 2]) -> (y: f32[N, 2], h: f32[N, 2]) {
  h = tanh(x + h)
  y = h * 2.0
}
"""


class EdgesTest(TempDirCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.so = compile_so(write_model(MODEL, cls.tmp, "edges"), cls.tmp)

    def assertRaisesMsg(self, exc, parts, fn, *args, **kwargs):
        with self.assertRaises(exc) as cm:
            fn(*args, **kwargs)
        self.assertIs(type(cm.exception), exc, f"{type(cm.exception).__name__}: {cm.exception}")
        for p in parts:
            self.assertIn(p, str(cm.exception))
        return cm.exception

    # ---- model tables ----

    def open_with(self, **fields):
        """Open the model through the real library, its table replaced by a copy with `fields`
        changed (entry_*: fields of entry 0's first argument)."""
        b = _SoBackend(self.so)
        d = _abi.NncModelDesc.from_buffer_copy(b.desc_p.contents)
        e = (_abi.NncEntryDesc * d.n_entries)(*[d.entries[i] for i in range(d.n_entries)])
        args = (_abi.NncArgDesc * (e[0].n_in + e[0].n_out))(
            *[e[0].args[j] for j in range(e[0].n_in + e[0].n_out)])
        e[0].args = ctypes.cast(args, ctypes.POINTER(_abi.NncArgDesc))
        d.entries = ctypes.cast(e, ctypes.POINTER(_abi.NncEntryDesc))
        for k, v in fields.items():
            if k.startswith("arg_"):
                setattr(args[0], k[4:], v)
            else:
                setattr(d, k, v)
        b.desc_p = ctypes.pointer(d)
        b.keep = (d, e, args)
        return _open(b, None, self.so, "no weights", None)

    def test_table_as_compiled_opens(self):
        with self.open_with() as m:
            y, h = m.step(np.ones((3, 2), np.float32), np.zeros((3, 2), np.float32))
            np.testing.assert_allclose(y, 2 * np.tanh(1), rtol=1e-6)

    def test_abi_mismatch_is_an_error_not_a_weights_error(self):
        e = self.assertRaisesMsg(nnc.Error, ["model ABI version 1", f"version {_abi.NNC_MODEL_ABI}"],
                                 self.open_with, abi_version=1)
        self.assertNotIsInstance(e, nnc.WeightsError)

    def test_symbolic_dim_counts(self):
        for n in (33, -1, 1000):
            self.assertRaisesMsg(nnc.Error, ["the model table is damaged", f"{n} symbolic dims"],
                                 self.open_with, n_syms=n)
        # the arguments use dim N (bit 0): a table that claims no symbolic dims is damaged
        # (the library's own check of its table, which runs first, names the dim)
        self.assertRaisesMsg(nnc.Error, ["the model table is damaged", "argument 'x' has a bad dim 0"],
                             self.open_with, n_syms=0)

    def test_damaged_counts_and_arguments(self):
        for fields, part in [({"n_entries": 0}, "0 entries"), ({"n_entries": -3}, "-3 entries"),
                             ({"n_params": -1}, "-1 parameters"),
                             ({"arg_rank": 9}, "rank 9"), ({"arg_rank": -1}, "rank -1"),
                             ({"arg_dtype": 7}, "dtype 7"), ({"arg_name": None}, "no readable name")]:
            with self.subTest(fields=fields):
                self.assertRaisesMsg(nnc.Error, ["the model table is damaged", part], self.open_with, **fields)

    # ---- threads ----

    def test_thread_counts(self):
        with nnc.load(self.so, threads=2) as m:
            for bad in (2**32, 2**32 + 1, 2**31, 1025, -1, 1.5, "2", True, None):
                with self.subTest(threads=bad):
                    self.assertRaisesMsg(ValueError, ["from 0 to 1024", repr(bad)], setattr, m, "threads", bad)
                    self.assertEqual(m.threads, 2)  # unchanged
            m.threads = np.int64(3)  # NumPy integers are integers
            self.assertEqual(m.threads, 3)
            m.threads = 1024
            self.assertEqual(m.threads, 1024)
        self.assertRaisesMsg(ValueError, ["from 0 to 1024"], nnc.load, self.so, threads=2**32)

    # ---- arguments ----

    def test_arguments_that_are_not_numbers(self):
        h = np.zeros((2, 2), np.float32)
        with nnc.load(self.so) as m:
            for bad, part in [(np.array([["a", "b"]] * 2), "got an array of strings (<U1)"),
                              ([["ab", "c"]] * 2, "got a list of strings"),
                              ("ab", "got a str ('ab')"), (b"ab", "got bytes (b'ab')"),
                              (np.array([[1.0, None]] * 2, dtype=object),
                               "got an array of Python objects (dtype object, holding NoneType, float)"),
                              ([[1, None]] * 2, "got a list of Python objects"),
                              (np.ones((2, 2), np.complex64), "got complex64")]:
                with self.subTest(given=repr(bad)[:40]):
                    e = self.assertRaisesMsg(TypeError, ["step(): argument 'x' must be float32", part],
                                             m.step, bad, h)
                    self.assertNotIn("str96", str(e))
                    self.assertNotIn("got ndarray", str(e))

    def test_errors_pickle_with_their_status(self):
        # a Dask worker's exception reaches the client pickled
        import pickle
        for cls in (nnc.Error, nnc.CompileError, nnc.WeightsError):
            e = pickle.loads(pickle.dumps(cls("what went wrong", _abi.NNC_ERR_NOMEM)))
            self.assertIs(type(e), cls)
            self.assertEqual((str(e), e.status), ("what went wrong", _abi.NNC_ERR_NOMEM))


if __name__ == "__main__":
    unittest.main()
