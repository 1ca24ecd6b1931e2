"""Export aliases (`export b = a with C = expr`) and `include "file.nn"` through the JIT
(nnc.compile), the AOT .so and `nnc check`: an alias's outputs are those of its export with the
constants rebound, computed here with NumPy (not by nnc); includes across files in a temporary
directory, nested, shared and cyclic, with their diagnostics naming the included file."""
import os
import subprocess
import unittest

import numpy as np

import nnc
from support import NNC, TempDirCase, assert_close, compile_so, write_model

ALIASES = """
const T = 1.0
const INV_T = 1 / T              # follows T in an alias
lin = Linear(3, 2)
module Temper() {
  fn forward(x) { return x / T }  # a module's method reads T when called
}
temper = Temper()
fn spread(x) { return x * INV_T }

export sample(x: f32[N, 3]) -> (y: f32[N, 2], z: f32[N, 3]) {
  y = temper(lin(x))
  z = spread(x)
}
export sample_t2 = sample with T = 2.0
export sample_t8 = sample with T = 8 * T
export plain(x: f32[N, 3]) -> (y: f32[N, 2]) { y = lin(x) / T }   # after the aliases: T is 1 again
"""

W = np.array([[1, 2, 3], [-1, 0, 0.5]], np.float32)
B = np.array([0.25, -2], np.float32)


def expected_sample(x, t):
    return (x @ W.T + B) / t, x * (1 / t)


class AliasTest(TempDirCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.nn = write_model(ALIASES, cls.tmp, "aliases")
        cls.weights = nnc.save_safetensors({"lin.weight": W, "lin.bias": B},
                                           os.path.join(cls.tmp, "aliases.safetensors"))
        cls.x = np.random.default_rng(1).standard_normal((5, 3)).astype(np.float32)

    def check(self, m):
        self.assertEqual(list(m.entries), ["sample", "sample_t2", "sample_t8", "plain"])
        for entry, t in [("sample", 1.0), ("sample_t2", 2.0), ("sample_t8", 8.0)]:
            got = m[entry].call(self.x)
            y, z = expected_sample(self.x.astype(np.float64), t)
            assert_close(self, got["y"], y.astype(np.float32), f"{entry} y")
            assert_close(self, got["z"], z.astype(np.float32), f"{entry} z")
        assert_close(self, m.plain(self.x), (self.x @ W.T + B).astype(np.float32), "plain")

    def test_jit(self):
        with nnc.compile(self.nn, weights=self.weights) as m:
            self.check(m)

    def test_so(self):
        with nnc.load(compile_so(self.nn, self.tmp, self.weights)) as m:
            self.check(m)

    def test_doubled_constant_doubles_the_output(self):
        nn = write_model("const K = 3.0\nexport f(x: f32[N]) -> (y: f32[N]) { y = x * K }\n"
                         "export f2 = f with K = 2 * K\n", self.tmp, "double")
        x = np.array([1.0, -2.5, 4.0], np.float32)
        with nnc.compile(nn) as m:
            np.testing.assert_array_equal(m.f(x), x * np.float32(3))
            np.testing.assert_array_equal(m.f2(x), x * np.float32(6))

    def test_alias_wins_over_define(self):
        nn = write_model("const K = 3.0\nexport f(x: f32[N]) -> (y: f32[N]) { y = x * K }\n"
                         "export f2 = f with K = 2.0\n", self.tmp, "define")
        x = np.array([1.0, 2.0], np.float32)
        with nnc.compile(nn, defines={"K": 5}) as m:
            np.testing.assert_array_equal(m.f(x), x * 5)
            np.testing.assert_array_equal(m.f2(x), x * 2)


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    return path


class IncludeTest(TempDirCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        d = cls.tmp
        write(os.path.join(d, "lib", "common.nn"), "const H = 2\nfn twice(x) { return 2 * x }\n")
        write(os.path.join(d, "lib", "blocks.nn"),
              'include "common.nn"\n'                       # relative to lib/
              "module Block(d) {\n  fc = Linear(d, H)\n"
              "  fn forward(x) { return twice(relu(fc(x))) }\n}\n")
        cls.main = write(os.path.join(d, "main.nn"),
                         'include "lib/common.nn"\ninclude "lib/blocks.nn"\n'  # common.nn read once
                         "b = Block(3)\n"
                         "export f(x: f32[N, 3]) -> (y: f32[N, H]) { y = b(x) }\n")
        cls.weights = nnc.save_safetensors({"b.fc.weight": W, "b.fc.bias": B},
                                           os.path.join(d, "main.safetensors"))
        cls.x = np.random.default_rng(2).standard_normal((4, 3)).astype(np.float32)
        cls.want = (2 * np.maximum(cls.x.astype(np.float64) @ W.T + B, 0)).astype(np.float32)

    def test_jit(self):
        with nnc.compile(self.main, weights=self.weights) as m:
            assert_close(self, m.f(self.x), self.want, "f")

    def test_so_and_check(self):
        with nnc.load(compile_so(self.main, self.tmp, self.weights)) as m:
            assert_close(self, m.f(self.x), self.want, "f")
        r = subprocess.run([NNC, "check", self.main], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_included_exports_are_entries(self):
        lib = write(os.path.join(self.tmp, "exp", "lib.nn"),
                    "const K = 3.0\nexport f(x: f32[N]) -> (y: f32[N]) { y = x * K }\n")
        main = write(os.path.join(self.tmp, "exp", "main.nn"),
                     'include "lib.nn"\nexport f6 = f with K = 6.0\n')
        self.assertTrue(os.path.exists(lib))
        x = np.array([1.0, 2.0], np.float32)
        with nnc.compile(main) as m:
            self.assertEqual(list(m.entries), ["f", "f6"])
            np.testing.assert_array_equal(m.f6(x), x * 6)

    def check_error(self, main, words, status=1):
        r = subprocess.run([NNC, "check", main], capture_output=True, text=True)
        self.assertEqual(r.returncode, status, r.stderr)
        for w in words:
            self.assertIn(w, r.stderr)
        with self.assertRaises(nnc.CompileError) as e:
            nnc.compile(main)
        for w in words:
            self.assertIn(w, str(e.exception))

    def test_cycle(self):
        d = os.path.join(self.tmp, "cycle")
        a = write(os.path.join(d, "a.nn"), 'include "sub/b.nn"\nexport f(x: f32[N]) -> (y: f32[N]) { y = x }\n')
        b = write(os.path.join(d, "sub", "b.nn"), 'const B = 1\ninclude "../a.nn"\n')
        self.check_error(a, [f"{b}:2:1: error: include cycle: {a} includes {b}, which includes",
                             f"{a}:1:1: note: {b} is included here"])

    def test_missing(self):
        a = write(os.path.join(self.tmp, "missing", "a.nn"), '\ninclude "nope.nn"\n')
        self.check_error(a, [f"{a}:2:1: error: cannot include 'nope.nn'", "No such file"])

    def test_error_in_included_file(self):
        d = os.path.join(self.tmp, "inner")
        lib = write(os.path.join(d, "lib.nn"), "fn f2(x) {\n  return x + nope\n}\n")
        a = write(os.path.join(d, "a.nn"), 'include "lib.nn"\nexport f(x: f32[N]) -> (y: f32[N]) { y = f2(x) }\n')
        self.check_error(a, [f"{lib}:2:14: error: unknown name 'nope'", f"{a}:1:1: note: {lib} is included here"])


if __name__ == "__main__":
    unittest.main()
