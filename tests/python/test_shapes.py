"""Shape functions of issue 17 against PyTorch: reshape/view with -1, x[:, none] (None
indexing), stack, flip, roll (with and without dims), chunk (uneven sizes), var and std
(unbiased, correction, keepdim, several axes), pad with modes reflect, replicate, circular;
norm (p 2, "fro", 1, 3, inf, -inf, 0; dims, keepdim) and adaptive_max_pool2d (bins of one
size, uneven bins, more bins than inputs); expand and broadcast_to."""
import unittest

import numpy as np

import nnc
from support import TempDirCase, assert_close, needs_torch, torch_or_none, write_model

# name: (nnc output type, nnc expression, torch function)
CASES = {
    "reshape": ("f32[3*N, 4]", "reshape(x, [-1, 4])", lambda t, x: x.reshape(-1, 4)),
    "view": ("f32[N, 12]", "view(x, [N, -1])", lambda t, x: x.view(x.shape[0], -1)),
    "none_mid": ("f32[N, 1, 3, 4]", "x[:, none]", lambda t, x: x[:, None]),
    "none_sliced": ("f32[1, N, 2, 1]", "x[none, :, 1:3, 2, none]", lambda t, x: x[None, :, 1:3, 2, None]),
    "stack": ("f32[N, 3, 2, 4]", "stack([x, x * 2], 2)", lambda t, x: t.stack([x, x * 2], 2)),
    "flip": ("f32[N, 3, 4]", "flip(x, [1, 2])", lambda t, x: t.flip(x, [1, 2])),
    "roll": ("f32[N, 3, 4]", "roll(x, [1, -5], [1, 2])", lambda t, x: t.roll(x, [1, -5], [1, 2])),
    "chunk": ("f32[N, 1, 4]", "chunk(x, 3, 1)[2]", lambda t, x: t.chunk(x, 3, 1)[2]),
    "chunk_fewer": ("f32[N, 3, 2]", "chunk(x, 3, 2)[1]", lambda t, x: t.chunk(x, 3, 2)[1]),
    "chunk_first": ("f32[N, 3, 2]", "chunk(x, 3, dim=2)[0]", lambda t, x: t.chunk(x, 3, dim=2)[0]),
    "var": ("f32[N]", "var(x, [1, 2])", lambda t, x: t.var(x, [1, 2])),
    "var_biased": ("f32[N, 1, 4]", "var(x, 1, unbiased=false, keepdim=true)", lambda t, x: t.var(x, 1, unbiased=False, keepdim=True)),
    "std": ("f32[N, 3]", "std(x, 2)", lambda t, x: t.std(x, 2)),
    "norm": ("f32[]", "norm(x)", lambda t, x: t.norm(x)),
    "norm_fro_dim": ("f32[N, 4]", "norm(x, \"fro\", 1)", lambda t, x: t.norm(x, "fro", 1)),
    "norm_1_keep": ("f32[N, 1, 1]", "norm(x, 1, [1, 2], keepdim=true)", lambda t, x: t.norm(x, 1, [1, 2], keepdim=True)),
    "norm_3": ("f32[N, 3]", "norm(x, p=3, dim=2)", lambda t, x: t.norm(x, p=3, dim=2)),
    "norm_inf": ("f32[N, 4]", "norm(x, inf, 1)", lambda t, x: t.norm(x, float("inf"), 1)),
    "norm_neg_inf": ("f32[N, 4]", "norm(x, -inf, 1)", lambda t, x: t.norm(x, float("-inf"), 1)),
    "norm_0": ("f32[N]", "norm(x - 0.5 * x, 0, [1, 2])", lambda t, x: t.norm(x - 0.5 * x, 0, [1, 2])),
    "adaptive_max_uneven": ("f32[N, 2, 3]", "adaptive_max_pool2d(x, [2, 3])", lambda t, x: t.nn.functional.adaptive_max_pool2d(x, (2, 3))),
    "adaptive_max_even": ("f32[N, 3, 2]", "adaptive_max_pool2d(x, [3, 2])", lambda t, x: t.nn.functional.adaptive_max_pool2d(x, (3, 2))),
    "adaptive_max_grow": ("f32[N, 5, 7]", "adaptive_max_pool2d(x, [5, 7])", lambda t, x: t.nn.functional.adaptive_max_pool2d(x, (5, 7))),
    "expand": ("f32[2, N, 3, 4]", "expand(x, 2, -1, 3, -1)[:, :, 0:3]", lambda t, x: x.expand(2, -1, 3, -1)[:, :, 0:3]),
    "expand_list": ("f32[N, 3, 4]", "expand(x[:, 0:1], [N, 3, 4])", lambda t, x: x[:, 0:1].expand(x.shape[0], 3, 4)),
    "broadcast_to": ("f32[5, N, 3, 4]", "broadcast_to(x[:, :, 1:2], [5, N, 3, 4])", lambda t, x: t.broadcast_to(x[:, :, 1:2], (5, x.shape[0], 3, 4))),
    "std_correction": ("f32[N, 4]", "std(x, dim=1, correction=2)", lambda t, x: t.sqrt(((x - x.mean(1, keepdim=True)) ** 2).sum(1) / (3 - 2))),
}


@needs_torch
class ShapesTest(TempDirCase):
    def test_against_torch(self):
        torch = torch_or_none()
        src = "".join(f"export t_{name}(x: f32[N, 3, 4]) -> y: {ty} {{ y = {expr} }}\n"
                      for name, (ty, expr, _) in CASES.items())
        m = nnc.compile(write_model(src, self.tmp, "shapes"))
        x = np.random.default_rng(4).standard_normal((2, 3, 4)).astype(np.float32)
        roll_all = nnc.compile(write_model("export f(x: f32[2, 3, 4]) -> y: f32[2, 3, 4] { y = roll(x, 7) }\n",
                                           self.tmp, "roll_all"))
        assert_close(self, roll_all.f(x), torch.roll(torch.from_numpy(x), 7).numpy(), "roll without dims")
        for name, (_, expr, ref) in CASES.items():
            with self.subTest(name):
                assert_close(self, getattr(m, "t_" + name)(x), ref(torch, torch.from_numpy(x)).numpy(), expr)

    def test_pad_modes(self):
        torch = torch_or_none()
        F = torch.nn.functional
        cases = {  # name: (nnc output type, pads, mode)
            "reflect1": ("f32[N, 3, 7]", [2, 1], "reflect"),
            "replicate1": ("f32[N, 3, 9]", [0, 5], "replicate"),
            "circular1": ("f32[N, 3, 10]", [4, 2], "circular"),
            "reflect2": ("f32[N, 2, 7, 7]", [1, 2, 3, 0], "reflect"),
            "replicate2": ("f32[N, 2, 9, 9]", [2, 3, 4, 1], "replicate"),
        }
        src = ""
        for name, (ty, pads, mode) in cases.items():
            shape = "f32[N, 3, 4]" if name.endswith("1") else "f32[N, 2, 4, 4]"
            src += f"export t_{name}(x: {shape}) -> y: {ty} {{ y = pad(x, {pads}, mode=\"{mode}\") }}\n"
        m = nnc.compile(write_model(src, self.tmp, "pads"))
        rng = np.random.default_rng(8)
        for name, (_, pads, mode) in cases.items():
            with self.subTest(name):
                x = rng.standard_normal((2, 3, 4) if name.endswith("1") else (2, 2, 4, 4)).astype(np.float32)
                assert_close(self, getattr(m, "t_" + name)(x), F.pad(torch.from_numpy(x), pads, mode=mode).numpy(), name)

    def test_adaptive_max_pool_layers(self):
        torch = torch_or_none()
        src = ("pool2 = AdaptiveMaxPool2d([3, 5])\npool1 = AdaptiveMaxPool1d(4)\nsquare = AdaptiveMaxPool2d(2)\n"
               "export f(x: f32[N, 2, 7, 10], s: f32[N, 3, 9]) -> (a: f32[N, 2, 3, 5], b: f32[N, 3, 4], c: f32[N, 2, 2, 2]) {\n"
               "  a = pool2(x)\n  b = pool1(s)\n  c = square(x)\n}\n")
        m = nnc.compile(write_model(src, self.tmp, "adaptive_max"))
        rng = np.random.default_rng(9)
        x, s = rng.standard_normal((2, 2, 7, 10)).astype(np.float32), rng.standard_normal((2, 3, 9)).astype(np.float32)
        x[0, 1, 3, 4] = np.nan  # propagates, as in torch
        a, b, c = m.f(x, s)
        tx, ts = torch.from_numpy(x), torch.from_numpy(s)
        assert_close(self, a, torch.nn.AdaptiveMaxPool2d((3, 5))(tx).numpy(), "AdaptiveMaxPool2d")
        assert_close(self, b, torch.nn.AdaptiveMaxPool1d(4)(ts).numpy(), "AdaptiveMaxPool1d")
        assert_close(self, c, torch.nn.AdaptiveMaxPool2d(2)(tx).numpy(), "AdaptiveMaxPool2d(2)")

    def test_errors(self):
        for expr, words in (("reshape(x, [-1, 5])", "cannot infer the -1 of this shape"),
                            ("reshape(x, [-1, -1])", "a dimension cannot be negative (-1)"),
                            ("flip(x, 0)", "flip: the axis must be static"),
                            ("chunk(x, 0, 1)[0]", "chunk: chunks must be 1 to 1024, got 0"),
                            ("x[:, 0, 0, 0]", "too many indices for a tensor of rank 3"),
                            ("pad(x, [4, 0], mode=\"reflect\")", "pad: padding (4, 0) is too large for mode \"reflect\" on a dimension of size 4"),
                            ("pad(x, [1, 1], mode=\"wrap\")", "pad: mode \"wrap\" is not one of")):
            with self.subTest(expr):
                with self.assertRaises(nnc.CompileError) as cm:
                    nnc.compile(write_model(f"export f(x: f32[N, 3, 4]) -> y: f32[N] {{ y = {expr} }}\n", self.tmp, "bad"))
                self.assertIn(words, str(cm.exception))


if __name__ == "__main__":
    unittest.main()
