"""The elementwise functions and activations of issue 17 (GELU exact and tanh, erf, SiLU, Mish,
Hardtanh, ReLU6, Hardsigmoid, Hardswish, SELU, CELU, LogSigmoid, Softsign, Tanhshrink, clamp,
floor, ceil, trunc, round, sign, rsqrt, reciprocal, square, log1p, expm1) against PyTorch: as functions and as torch.nn layers, on a dense grid
over [-12, 12] and the special values (±0, ±inf, NaN, tiny, the kinks at ±3 and 0, 6), through
a vector-width loop and a scalar tail; and of numbers at compile time."""
import unittest

import numpy as np

import nnc
from support import TempDirCase, assert_close, needs_torch, torch_or_none, write_model

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


@needs_torch
class ActivationsTest(TempDirCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        src = LAYERS + "".join(f"export t_{name}(x: f32[N]) -> y: f32[N] {{ y = {expr} }}\n"
                               for name, (expr, _) in CASES.items())
        cls.model = nnc.compile(write_model(src, cls.tmp, "activations"))

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
