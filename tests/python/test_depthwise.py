"""Depthwise convolutions against PyTorch (issue 20, item 3): groups of one input channel run
in blocks of groups on small maps (convplan.h conv_plan_group_block) and their tiles that
start a row share input loads among output rows (conv_tile.c).  3x3, 5x5 and 7x7 kernels,
stride 1 and 2, channel counts that are not a multiple of the vector width (17, 40, 100), map
sizes 7, 13, 14, 16 and a large one, the epilogues a depthwise layer takes (bias;
BatchNorm + ReLU6; a residual add), a channel multiplier of 2, and a symbolic H, W; batch 1
and 3, JIT and AOT, at 1, 2 and 3 threads with the same bits."""
import os
import unittest

import numpy as np

import nnc
from support import (TempDirCase, assert_same_everywhere, compile_so, needs_torch, nnc_cli, perturb_batchnorm,
                     torch_modules, torch_or_none, write_model)

# name: (channels, kernel, stride, map size, epilogue, channel multiplier)
CASES = {
    "k3_c40_s14_bn": (40, 3, 1, 14, "bn", 1),
    "k3_c100_s7_bn": (100, 3, 1, 7, "bn", 1),
    "k3_c17_s13_bias": (17, 3, 1, 13, "bias", 1),
    "k3_c40_s16_res": (40, 3, 1, 16, "res", 1),
    "k5_c17_s14_bn": (17, 5, 1, 14, "bn", 1),
    "k5_c40_s7_res": (40, 5, 1, 7, "res", 1),
    "k7_c40_s16_bias": (40, 7, 1, 16, "bias", 1),
    "k7_c17_s13_bn": (17, 7, 1, 13, "bn", 1),
    "k3_c40_s14_stride2_bn": (40, 3, 2, 14, "bn", 1),
    "k5_c17_s13_stride2_bias": (17, 5, 2, 13, "bias", 1),
    "k3_c100_s16_stride2_bn": (100, 3, 2, 16, "bn", 1),
    "k3_c24_s40_bn": (24, 3, 1, 40, "bn", 1),
    "k3_c17_s14_mult2_bn": (17, 3, 1, 14, "bn", 2),
    "k3_c40_s7_mult2_bias": (40, 3, 1, 7, "bias", 2),
}


def out_size(size, k, stride):
    return (size + 2 * (k // 2) - k) // stride + 1


def nn_layer(c, k, stride, epilogue, mult):
    conv = f"Conv2d({c}, {c * mult}, {k}, stride={stride}, padding={k // 2}, groups={c}, bias={'true' if epilogue == 'bias' else 'false'})"
    return conv if epilogue == "bias" else f"Sequential({conv}, BatchNorm2d({c * mult}), ReLU6())"


def torch_layer(torch, c, k, stride, epilogue, mult):
    nn = torch.nn
    conv = nn.Conv2d(c, c * mult, k, stride, k // 2, groups=c, bias=epilogue == "bias")
    layer = conv if epilogue == "bias" else nn.Sequential(conv, nn.BatchNorm2d(c * mult), nn.ReLU6())
    if epilogue != "bias":
        perturb_batchnorm(torch, layer[1])
    return layer.eval()


def nn_model(cases, symbolic):
    src = ""
    for name, (c, k, stride, size, epilogue, mult) in cases.items():
        o = out_size(size, k, stride)
        src += f"{name} = {nn_layer(c, k, stride, epilogue, mult)}\n"
        body = f"x + {name}(x)" if epilogue == "res" else f"{name}(x)"
        if symbolic:
            dims_in, dims_out = "H, W", ("H, W" if stride == 1 else f"(H + {2 * (k // 2) - k + 2}) / 2, (W + {2 * (k // 2) - k + 2}) / 2")
        else:
            dims_in, dims_out = f"{size}, {size}", f"{o}, {o}"
        src += f"export t_{name}(x: f32[N, {c}, {dims_in}]) -> y: f32[N, {c * mult}, {dims_out}] {{ y = {body} }}\n"
    return src


@needs_torch
class DepthwiseTest(TempDirCase):
    def compile_both(self, cases, name, symbolic=False):
        mods, state = torch_modules(5, cases, lambda torch, p: torch_layer(torch, p[0], p[1], p[2], p[4], p[5]))
        weights = nnc.save_safetensors(state, os.path.join(self.tmp, name + ".safetensors"))
        nn = write_model(nn_model(cases, symbolic), self.tmp, name)
        return mods, {"jit": nnc.compile(nn, weights=weights), "so": nnc.load(compile_so(nn, self.tmp, weights))}

    def check(self, cases, mods, models, sizes=None):
        torch = torch_or_none()
        rng = np.random.default_rng(11)
        for case, (c, k, stride, size, epilogue, mult) in cases.items():
            for batch in (1, 3):
                for h, w in sizes or [(size, size)]:
                    x = rng.standard_normal((batch, c, h, w)).astype(np.float32)
                    with torch.no_grad():
                        y = mods[case](torch.from_numpy(x))
                        want = (torch.from_numpy(x) + y if epilogue == "res" else y).numpy()
                    with self.subTest(case=case, batch=batch, size=(h, w)):
                        assert_same_everywhere(self, models, lambda m: getattr(m, "t_" + case)(x), (want,),
                                               f"{case}, batch {batch}, {h}x{w}")

    def test_static_sizes(self):
        mods, models = self.compile_both(CASES, "depthwise")
        self.check(CASES, mods, models)

    def test_symbolic_sizes(self):
        """A model compiled with H and W unset runs its depthwise layers on the per-group path."""
        cases = {n: CASES[n] for n in ("k3_c40_s14_bn", "k5_c17_s14_bn", "k3_c40_s14_stride2_bn", "k3_c40_s16_res")}
        mods, models = self.compile_both(cases, "depthwise_any", symbolic=True)
        self.check(cases, mods, models, sizes=[(7, 7), (13, 16), (14, 14)])

    def test_blocks_in_the_loops_dump(self):
        """960 channels of 7x7 run as batches of 64 groups (one kernel call a block)."""
        src = ("dw = Conv2d(960, 960, 3, padding=1, groups=960, bias=false)\n"
               "export f(x: f32[1, 960, 7, 7]) -> y: f32[1, 960, 7, 7] { y = dw(x) }\n")
        out = nnc_cli("dump", "--stage=loops", write_model(src, self.tmp, "blocks")).stdout
        self.assertIn("step 64", out)
        self.assertIn("batch=64", out)


if __name__ == "__main__":
    unittest.main()
