"""The elementwise functions and activations of issue 17 (GELU exact and tanh, erf, SiLU, Mish,
Hardtanh, ReLU6, Hardsigmoid, Hardswish, SELU, CELU, LogSigmoid, Softsign, Tanhshrink, clamp,
floor, ceil, trunc, round, sign, rsqrt, reciprocal, square, log1p, expm1; exp, sigmoid, tanh, ELU,
comparisons and logic) against PyTorch: as functions and as torch.nn layers, on a dense grid
over [-12, 12] and the special values (±0, ±inf, NaN, tiny, the kinks at ±3 and 0, 6), through
a vector-width loop and a scalar tail, and on short rows emitted as explicit vectors (a masked
last one); and of numbers at compile time."""
import re
import unittest

import numpy as np

import nnc
from support import TempDirCase, assert_close, needs_torch, nnc_cli, torch_or_none, write_model

SPECIAL = [0.0, -0.0, np.inf, -np.inf, np.nan, 1e-30, -1e-30, 1e-8, -1e-8, 3.0, -3.0, 6.0, -6.0, 0.921875,
           -0.921875, 3.92, 4.0, -4.0, 1.0, -1.0, 20.0, 88.0, -88.0, 100.0, -100.0]
X = np.concatenate([np.linspace(-12, 12, 24001), SPECIAL]).astype(np.float32)

# (nnc expression of x, torch function of x)
CASES = {
    "gelu": ("gelu(x)", lambda t, x: t.nn.functional.gelu(x)),
    "gelu_none": ("gelu(x, approximate=\"none\")", lambda t, x: t.nn.functional.gelu(x, approximate="none")),
    "gelu_tanh": ("gelu(x, approximate=\"tanh\")", lambda t, x: t.nn.functional.gelu(x, approximate="tanh")),
    "erf": ("erf(x)", lambda t, x: t.erf(x)),
    "silu": ("silu(x)", lambda t, x: t.nn.functional.silu(x)),
    "mish": ("mish(x)", lambda t, x: t.nn.functional.mish(x)),
    "hardtanh": ("hardtanh(x)", lambda t, x: t.nn.functional.hardtanh(x)),
    "hardtanh_range": ("hardtanh(x, -2.5, 0.5)", lambda t, x: t.nn.functional.hardtanh(x, -2.5, 0.5)),
    "relu6": ("relu6(x)", lambda t, x: t.nn.functional.relu6(x)),
    "hardsigmoid": ("hardsigmoid(x)", lambda t, x: t.nn.functional.hardsigmoid(x)),
    "hardswish": ("hardswish(x)", lambda t, x: t.nn.functional.hardswish(x)),
    "selu": ("selu(x)", lambda t, x: t.nn.functional.selu(x)),
    "celu": ("celu(x, 0.7)", lambda t, x: t.nn.functional.celu(x, 0.7)),
    "logsigmoid": ("logsigmoid(x)", lambda t, x: t.nn.functional.logsigmoid(x)),
    "softsign": ("softsign(x)", lambda t, x: t.nn.functional.softsign(x)),
    "tanhshrink": ("tanhshrink(x)", lambda t, x: t.nn.functional.tanhshrink(x)),
    "clamp": ("clamp(x, -0.5, 2.0)", lambda t, x: t.clamp(x, -0.5, 2.0)),
    "clamp_min": ("clamp(x, min=0.25)", lambda t, x: t.clamp(x, min=0.25)),
    "clip_max": ("clip(x, max=-1)", lambda t, x: t.clip(x, max=-1)),
    "floor": ("floor(x * 3.3)", lambda t, x: t.floor(x * 3.3)),
    "ceil": ("ceil(x * 3.3)", lambda t, x: t.ceil(x * 3.3)),
    "trunc": ("trunc(x * 3.3)", lambda t, x: t.trunc(x * 3.3)),
    "round": ("round(x * 2)", lambda t, x: t.round(x * 2)),
    "sign": ("sign(x)", lambda t, x: t.sign(x)),
    "rsqrt": ("rsqrt(x)", lambda t, x: t.rsqrt(x)),
    "reciprocal": ("reciprocal(x)", lambda t, x: t.reciprocal(x)),
    "square": ("square(x)", lambda t, x: t.square(x)),
    "log1p": ("log1p(x)", lambda t, x: t.log1p(x)),
    "log1p_small": ("log1p(x * 1e-6)", lambda t, x: t.log1p(x * 1e-6)),
    "expm1": ("expm1(x)", lambda t, x: t.expm1(x)),
    "compare": ("(x > 0.5) + (x <= -1) * 2 + (x == 3) * 4 + (x != 6) * 8 + (x < 0) * 16 + (x >= 20) * 32",
                lambda t, x: ((x > 0.5) + (x <= -1) * 2 + (x == 3) * 4 + (x != 6) * 8 + (x < 0) * 16 + (x >= 20) * 32).float()),
    "logic": ("((x > 1) && (x < 4)) + (!(x > 0)) * 2 + ((x < -3) || (x > 3)) * 4",
              lambda t, x: (((x > 1) & (x < 4)).float() + (~(x > 0)).float() * 2 + ((x < -3) | (x > 3)).float() * 4)),
    "exp": ("exp(x)", lambda t, x: t.exp(x)),
    "sigmoid_tanh": ("sigmoid(x) + tanh(x)", lambda t, x: t.sigmoid(x) + t.tanh(x)),
    "elu": ("elu(x, 0.5)", lambda t, x: t.nn.functional.elu(x, 0.5)),
    # torch.nn layers with their keyword arguments
    "GELU_tanh": ("self_gelu_tanh(x)", lambda t, x: t.nn.GELU(approximate="tanh")(x)),
    "Hardtanh_kw": ("self_hardtanh(x)", lambda t, x: t.nn.Hardtanh(min_val=-0.5, max_val=2.0)(x)),
    "layers": ("self_seq(x)", lambda t, x: t.nn.Sequential(t.nn.SiLU(), t.nn.Hardswish(), t.nn.Mish(), t.nn.ReLU6(),
                                                        t.nn.Hardsigmoid(), t.nn.GELU())(x)),
    "layers2": ("self_seq2(x)", lambda t, x: t.nn.Sequential(t.nn.SELU(), t.nn.CELU(alpha=2.0), t.nn.Tanhshrink(),
                                                         t.nn.Softsign(), t.nn.LogSigmoid())(x)),
}

LAYERS = """
self_gelu_tanh = GELU(approximate="tanh")
self_hardtanh = Hardtanh(min_val=-0.5, max_val=2.0)
self_seq = Sequential(SiLU(), Hardswish(), Mish(), ReLU6(), Hardsigmoid(), GELU())
self_seq2 = Sequential(SELU(), CELU(alpha=2.0), Tanhshrink(), Softsign(), LogSigmoid())
"""


# The same cases on short rows: x [N, 2, 47] times a ones [N, 1, 47] broadcast over the middle
# axis, so that the kernel's innermost loop is a 47-column row that codegen emits as explicit
# vectors (vector_row.c: 16 + 16 + 15 masked) rather than a plain loop.  The ops of a case
# are all OPT_VECTOR but those with a log (emitted as a call per element, so a plain loop).
ROW = 47
NOT_VECTOR = {"mish", "logsigmoid", "log1p", "log1p_small", "layers", "layers2"}
XR = np.resize(X, (-(-len(X) // (2 * ROW)), 2, ROW))
ONES = np.ones((XR.shape[0], 1, ROW), np.float32)


def on_rows(expr):
    return re.sub(r"\bx\b", "(x * o)", expr)


@needs_torch
class ActivationsTest(TempDirCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        src = LAYERS + "".join(f"export t_{name}(x: f32[N]) -> y: f32[N] {{ y = {expr} }}\n"
                               for name, (expr, _) in CASES.items())
        cls.model = nnc.compile(write_model(src, cls.tmp, "activations"))
        src = LAYERS + "".join(f"export v_{name}(x: f32[N, 2, {ROW}], o: f32[N, 1, {ROW}]) -> y: f32[N, 2, {ROW}] "
                               f"{{ y = {on_rows(expr)} }}\n" for name, (expr, _) in CASES.items())
        cls.rows_path = write_model(src, cls.tmp, "activation_rows")
        cls.rows = nnc.compile(cls.rows_path)

    def test_on_vector_rows(self):
        torch = torch_or_none()
        llvm = nnc_cli("dump", "--stage=llvm", self.rows_path).stdout
        functions = {fn.split("@", 1)[1].split("(", 1)[0]: fn for fn in llvm.split("\ndefine ")[1:]}
        for name, (expr, ref) in CASES.items():
            with self.subTest(name):
                want = ref(torch, torch.from_numpy(XR)).numpy()
                got = getattr(self.rows, "v_" + name)(XR, ONES)
                assert_close(self, got, want, f"{on_rows(expr)} on rows of {ROW}")
                np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=expr)
                if name not in NOT_VECTOR:  # the kernels its entry runs (equal kernels are shared)
                    called = re.findall(r"@([\w.]+\.k\d+\.\w+)", functions[f"activation_rows.v_{name}.body"])
                    self.assertTrue(called, f"{expr}: no kernel")
                    for k in called:
                        self.assertTrue("x float>" in functions[k], f"{expr}: {k}'s row is not emitted as vectors")

    def test_against_torch(self):
        torch = torch_or_none()
        for name, (expr, ref) in CASES.items():
            with self.subTest(name):
                want = ref(torch, torch.from_numpy(X)).numpy()
                assert_close(self, getattr(self.model, "t_" + name)(X), want, f"{expr}")
                # the kinks and infinities exactly; NaN stays NaN
                special = slice(len(X) - len(SPECIAL), None)
                got = getattr(self.model, "t_" + name)(X)[special]
                np.testing.assert_array_equal(np.isnan(got), np.isnan(want[special]), err_msg=expr)

    def test_numbers_at_compile_time(self):
        torch = torch_or_none()
        src = ("export f(x: f32[2]) -> y: f32[2] {\n"
               "  y = x * 0.0 + [erf(0.5), gelu(-1.5)] + [gelu(2.0, approximate=\"tanh\"), hardswish(1.0)]\n}\n")
        m = nnc.compile(write_model(src, self.tmp, "numbers"))
        t = torch.tensor
        want = np.array([torch.erf(t(0.5, dtype=torch.float64)) + torch.nn.functional.gelu(t(2.0, dtype=torch.float64), approximate="tanh"),
                         torch.nn.functional.gelu(t(-1.5, dtype=torch.float64)) + torch.nn.functional.hardswish(t(1.0, dtype=torch.float64))],
                        np.float32)
        assert_close(self, m.f(np.zeros(2, np.float32)), want, "compile-time numbers")

    def test_bad_approximate(self):
        with self.assertRaises(nnc.CompileError) as cm:
            nnc.compile(write_model("export f(x: f32[N]) -> y: f32[N] { y = gelu(x, approximate=\"fast\") }\n",
                                    self.tmp, "bad"))
        self.assertIn('GELU: approximate must be "none" or "tanh"', str(cm.exception))


if __name__ == "__main__":
    unittest.main()
