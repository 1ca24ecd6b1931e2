"""A convolution's epilogue on its register tiles (issue 20; gemm.c fuse_tile_epilogue,
conv_tile.c conv_epilogue) against PyTorch: the tail after the product (BatchNorm, ReLU6, a
bias and ReLU, a residual add) is applied to each tile before it is stored, instead of a pass
of its own over the output.  1x1 convolutions (row tiles) and direct ones (a 3x3 of stride 2,
a strided 1x1, a 5x5), on maps whose rows are a multiple of the vector width and ones that
are not (masked last vectors: 7x7, 9x5, 14x14, 13x11), on H and W symbolic (sizes known at
run time only) as well, an output larger than the planned L2
(B in parts, swept part-major), two 1x1 convolutions in a row (the first one's result is the
[N, C, H*W] view the second reads), batch 1 and 3, JIT and AOT, at 1, 2 and 3 threads with
the same bits; the loops dump shows the fused epilogue."""
import os
import unittest
from unittest import mock

import numpy as np

import nnc
from support import (TempDirCase, assert_same_everywhere, compile_so, needs_torch, nnc_cli, perturb_batchnorm,
                     torch_modules, torch_or_none, write_model)

SMALL_L2 = 64 * 1024  # planned L2: the 80x80 case's B (16 x 6400 floats) goes in parts

# name: (input channels, output channels, kernel, stride, H, W, epilogue)
CASES = {
    "c16_96_s28_bn_relu6": (16, 96, 1, 1, 28, 28, "bn_relu6"),
    "c24_40_s7_bn": (24, 40, 1, 1, 7, 7, "bn"),
    "c40_40_h9w5_res": (40, 40, 1, 1, 9, 5, "res"),
    "c17_33_s14_bias_relu": (17, 33, 1, 1, 14, 14, "bias_relu"),
    "c16_32_s80_bn_relu6": (16, 32, 1, 1, 80, 80, "bn_relu6"),
    "c32_16_48_s14_chain": (32, 16, 1, 1, 14, 14, "chain"),
    "k3s2_c16_32_s28_bn_relu6": (16, 32, 3, 2, 28, 28, "bn_relu6"),
    "k1s2_c24_48_h58w60_bn": (24, 48, 1, 2, 58, 60, "bn"),
    "k5_c8_8_h13w11_res": (8, 8, 5, 1, 13, 11, "res"),
    "k3s2_c3_24_s64_bias_relu": (3, 24, 3, 2, 64, 64, "bias_relu"),
}


def out_size(size, k, stride):
    return (size + 2 * (k // 2) - k) // stride + 1


def nn_layer(cin, cout, k, stride, epilogue):
    conv = (f"Conv2d({cin}, {cout}, {k}, stride={stride}, padding={k // 2}, "
            f"bias={'true' if epilogue == 'bias_relu' else 'false'})")
    if epilogue == "bias_relu":
        return f"Sequential({conv}, ReLU())"
    if epilogue in ("bn", "res"):
        return f"Sequential({conv}, BatchNorm2d({cout}))"
    if epilogue == "chain":
        return (f"Sequential({conv}, BatchNorm2d({cout}), Conv2d({cout}, {3 * cout}, 1, bias=false), "
                f"BatchNorm2d({3 * cout}), ReLU6())")
    return f"Sequential({conv}, BatchNorm2d({cout}), ReLU6())"


def torch_layer(torch, cin, cout, k, stride, epilogue):
    nn = torch.nn
    conv = nn.Conv2d(cin, cout, k, stride, k // 2, bias=epilogue == "bias_relu")
    if epilogue == "bias_relu":
        return nn.Sequential(conv, nn.ReLU()).eval()
    if epilogue in ("bn", "res"):
        layer = nn.Sequential(conv, nn.BatchNorm2d(cout))
    elif epilogue == "chain":
        layer = nn.Sequential(conv, nn.BatchNorm2d(cout), nn.Conv2d(cout, 3 * cout, 1, bias=False),
                              nn.BatchNorm2d(3 * cout), nn.ReLU6())
    else:
        layer = nn.Sequential(conv, nn.BatchNorm2d(cout), nn.ReLU6())
    for m in layer:
        if isinstance(m, nn.BatchNorm2d):
            perturb_batchnorm(torch, m)
    return layer.eval()


def out_channels(cout, epilogue):
    return 3 * cout if epilogue == "chain" else cout


def nn_model(cases, symbolic=False):
    src = ""
    for name, (cin, cout, k, stride, h, w, epilogue) in cases.items():
        src += f"{name} = {nn_layer(cin, cout, k, stride, epilogue)}\n"
        body = f"x + {name}(x)" if epilogue == "res" else f"{name}(x)"
        if symbolic:
            dims_in = "H, W"
            dims_out = "H, W" if stride == 1 else f"(H + {2 * (k // 2) - k + 2}) / 2, (W + {2 * (k // 2) - k + 2}) / 2"
        else:
            dims_in, dims_out = f"{h}, {w}", f"{out_size(h, k, stride)}, {out_size(w, k, stride)}"
        src += (f"export t_{name}(x: f32[N, {cin}, {dims_in}]) -> y: f32[N, {out_channels(cout, epilogue)}, {dims_out}] "
                f"{{ y = {body} }}\n")
    return src


# H and W symbolic: one library for every size (the epilogue at run-time positions)
SYMBOLIC = ("c16_96_s28_bn_relu6", "c40_40_h9w5_res", "c32_16_48_s14_chain", "k3s2_c16_32_s28_bn_relu6",
            "k5_c8_8_h13w11_res")
SIZES = ((7, 7), (13, 16), (28, 30))


@needs_torch
class ConvEpilogueTest(TempDirCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.mods, state = torch_modules(7, CASES, lambda torch, p: torch_layer(torch, *p[:4], p[6]))
        weights = nnc.save_safetensors(state, os.path.join(cls.tmp, "epilogue.safetensors"))
        cls.nn = write_model(nn_model(CASES), cls.tmp, "epilogue")
        cls.nn_any = write_model(nn_model({c: CASES[c] for c in SYMBOLIC}, symbolic=True), cls.tmp, "epilogue_any")
        with mock.patch.dict(os.environ, {"NNC_PLAN_L2": str(SMALL_L2)}):
            cls.models = {"jit": nnc.compile(cls.nn, weights=weights), "so": nnc.load(compile_so(cls.nn, cls.tmp, weights))}
        any_state = {k: v for k, v in state.items() if k.split(".", 1)[0] in SYMBOLIC}
        weights_any = nnc.save_safetensors(any_state, os.path.join(cls.tmp, "epilogue_any.safetensors"))
        cls.models_any = {"jit": nnc.compile(cls.nn_any, weights=weights_any),
                          "so": nnc.load(compile_so(cls.nn_any, cls.tmp, weights_any))}

    def check(self, models, case, sizes):
        torch = torch_or_none()
        rng = np.random.default_rng(12)
        cin, epilogue = CASES[case][0], CASES[case][6]
        for batch in (1, 3):
            for h, w in sizes:
                x = rng.standard_normal((batch, cin, h, w)).astype(np.float32)
                with torch.no_grad():
                    y = self.mods[case](torch.from_numpy(x))
                    want = (torch.from_numpy(x) + y if epilogue == "res" else y).numpy()
                with self.subTest(case=case, batch=batch, size=(h, w)):
                    assert_same_everywhere(self, models, lambda m: getattr(m, "t_" + case)(x), (want,),
                                           f"{case}, batch {batch}, {h}x{w}")

    def test_against_torch(self):
        for case, (cin, cout, k, stride, h, w, epilogue) in CASES.items():
            self.check(self.models, case, [(h, w)])

    def test_symbolic_sizes_against_torch(self):
        for case in SYMBOLIC:
            self.check(self.models_any, case, SIZES)

    def test_epilogues_in_the_loops_dump(self):
        """Every product's tail is on its tiles: no pass over the output after it."""
        with mock.patch.dict(os.environ, {"NNC_PLAN_L2": str(SMALL_L2)}):
            out = nnc_cli("dump", "--stage=loops", self.nn).stdout
        entries = out.split("\nentry ")[1:]
        self.assertEqual(len(entries), len(CASES))
        for text in entries:
            name = text.split("\n", 1)[0]
            with self.subTest(entry=name):
                convs = text.count("conv b")
                self.assertEqual(text.count(" epilogue("), convs, text)
                self.assertNotIn("split for", text)
        self.assertIn("part-major", out)  # the 80x80 case: B in parts
        self.assertIn("tight", out)       # a masked last vector (7x7, 9x5)
        out = nnc_cli("dump", "--stage=loops", self.nn_any).stdout
        self.assertEqual(out.count(" epilogue("), out.count("conv b"))
        self.assertNotIn("split for", out)


if __name__ == "__main__":
    unittest.main()
