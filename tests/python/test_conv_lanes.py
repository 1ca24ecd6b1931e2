"""Convolutions planned for both kinds of AVX-512 core (issue 20): where a 16-float FMA runs at
the rate of an 8-float one ($NNC_PLAN_WIDE_FMA=1: Zen 5, Intel's server cores) a row takes
vectors of 16 floats, where the core splits it into halves (0: Zen 4) the narrower vector
that costs no more (convplan.c conv_vector_cost); and on small maps the wide plan runs the
output rows together as one run of columns (a flat convolution, convplan.h).  torch.nn Conv2d
layers with their state_dict(): direct (3x3 and 5x5, stride 1 and 2, dilation 2, rows of 6 to
30 columns), flat (7x7 and 6x6 outputs, with a bias, BatchNorm + ReLU, a residual add, or an
epilogue that is not an image: flattened) and Winograd (14x14 to 56x56 maps), planned both ways
($NNC_PLAN_SIMD=16, so on any host), each against PyTorch and with the same bits both ways
(every output is one sum in a fixed order, whatever the vector width), batch 1 and 3, JIT and
AOT, at 1, 2 and 3 threads."""
import os
import unittest
from unittest import mock

import numpy as np

import nnc
from support import (TempDirCase, assert_same_everywhere, compile_so, needs_torch, nnc_cli, perturb_batchnorm,
                     torch_modules, torch_or_none, write_model)

# name: (input channels, output channels, map size, kernel, stride, epilogue, dilation)
CASES = {
    "winograd_c16_s14_bn": (16, 16, 14, 3, 1, "bn", 1),
    "winograd_c16_s28_bn": (16, 24, 28, 3, 1, "bn", 1),
    "winograd_c16_s56_bias": (16, 16, 56, 3, 1, "bias", 1),
    "k3_c8_s28_stride2_bn": (8, 16, 28, 3, 2, "bn", 1),
    "k5_c6_s30_bias": (6, 10, 30, 5, 1, "bias", 1),
    "k3_c3_s57_stride2_bn": (3, 16, 57, 3, 2, "bn", 1),
    "flat_k3_c32_s7_bias": (32, 32, 7, 3, 1, "bias", 1),
    "flat_k3_c16_s14_stride2_bn": (16, 24, 14, 3, 2, "bn", 1),
    "flat_k3_c16_s7_res": (16, 16, 7, 3, 1, "res", 1),
    "flat_k3_c8_s6_dil2_bias": (8, 12, 6, 3, 1, "bias", 2),
    "flat_k5_c8_s7_flatten": (8, 12, 7, 5, 1, "flatten", 1),
}
# the kernel whose rows' vector width the dump test reads, and a kernel that runs flat
ROWS_KERNEL, FLAT_KERNEL = "t_k5_c6_s30_bias", "t_flat_k3_c32_s7_bias"
PLANS = {"wide": "1", "split": "0"}


def out_size(size, k, stride, dil=1):
    return (size + 2 * dil * (k // 2) - dil * (k - 1) - 1) // stride + 1


def nn_model():
    src = ""
    for name, (cin, cout, size, k, stride, epilogue, dil) in CASES.items():
        conv = (f"Conv2d({cin}, {cout}, {k}, stride={stride}, padding={dil * (k // 2)}, dilation={dil}, "
                f"bias={'true' if epilogue == 'bias' else 'false'})")
        src += f"{name} = {conv if epilogue == 'bias' else f'Sequential({conv}, BatchNorm2d({cout}), ReLU())'}\n"
        o = out_size(size, k, stride, dil)
        out, body = f"{cout}, {o}, {o}", f"{name}(x)"
        if epilogue == "res":
            body = f"x + {name}(x)"
        elif epilogue == "flatten":
            out, body = f"{cout * o * o}", f"flatten({name}(x), 1)"
        src += f"export t_{name}(x: f32[N, {cin}, {size}, {size}]) -> y: f32[N, {out}] {{ y = {body} }}\n"
    return src


def torch_layer(torch, cin, cout, k, stride, epilogue, dil):
    nn = torch.nn
    conv = nn.Conv2d(cin, cout, k, stride, dil * (k // 2), dilation=dil, bias=epilogue == "bias")
    if epilogue == "bias":
        return conv.eval()
    layer = nn.Sequential(conv, nn.BatchNorm2d(cout), nn.ReLU())
    perturb_batchnorm(torch, layer[1])
    return layer.eval()


def torch_forward(torch, layer, x, epilogue):
    y = layer(x)
    return x + y if epilogue == "res" else torch.flatten(y, 1) if epilogue == "flatten" else y


def plan_env(wide):
    return {"NNC_PLAN_SIMD": "16", "NNC_PLAN_WIDE_FMA": wide}


@needs_torch
class ConvLanesTest(TempDirCase):
    def setUp(self):
        super().setUp()
        self.mods, state = torch_modules(3, CASES, lambda torch, p: torch_layer(torch, p[0], p[1], p[3], p[4], p[5], p[6]))
        self.weights = nnc.save_safetensors(state, os.path.join(self.tmp, "lanes.safetensors"))
        self.nn = write_model(nn_model(), self.tmp, "lanes")

    def loops(self, wide):
        with mock.patch.dict(os.environ, plan_env(wide)):
            return nnc_cli("dump", "--stage=loops", self.nn).stdout

    @staticmethod
    def conv_statement(loops, kernel):
        body = loops[loops.index(f"kernel {kernel}.k"):]
        return body[body.index("conv b"):].split("\n")[0]

    def test_rows_take_the_wider_vector_only_where_it_is_faster(self):
        """A 30-column row of a 5x5 convolution: 2 vectors of 16 on a wide core, 4 of 8 where
        16 floats cost two 8-float FMAs (a tie: the narrower vector, a shorter padded copy)."""
        lanes = {plan: self.conv_statement(self.loops(wide), ROWS_KERNEL).split(" lanes=")[1].split()[0]
                 for plan, wide in PLANS.items()}
        self.assertEqual(lanes, {"wide": "16", "split": "8"})

    def test_a_small_map_runs_flat_on_a_wide_core(self):
        """32 channels of 7x7: one run of 6 * 9 + 7 = 61 columns (rows 9 apart) in vectors of
        16 on a wide core; rows of 7 in vectors of 8 where 16 floats cost two FMAs."""
        wide = self.conv_statement(self.loops("1"), FLAT_KERNEL)
        self.assertIn(" oh=1 ow=61 ", wide)
        self.assertIn(" xrow=9 lanes=16 ", wide)
        split = self.conv_statement(self.loops("0"), FLAT_KERNEL)
        self.assertIn(" oh=7 ow=7 ", split)
        self.assertIn(" lanes=8 ", split)

    def test_both_plans_against_pytorch(self):
        torch = torch_or_none()
        results = {}
        for plan, wide in PLANS.items():
            with mock.patch.dict(os.environ, plan_env(wide)):
                models = {"jit": nnc.compile(self.nn, weights=self.weights),
                          "so": nnc.load(compile_so(self.nn, self.tmp, self.weights, name="lanes_" + plan))}
            for case, (cin, cout, size, k, stride, epilogue, dil) in CASES.items():
                for batch in (1, 3):
                    x = np.random.default_rng(batch * 100 + len(case)).standard_normal(
                        (batch, cin, size, size)).astype(np.float32)
                    with torch.no_grad():
                        want = torch_forward(torch, self.mods[case], torch.from_numpy(x), epilogue).numpy()
                    with self.subTest(plan=plan, case=case, batch=batch):
                        assert_same_everywhere(self, models, lambda m: getattr(m, "t_" + case)(x), (want,),
                                               f"{case}, {plan} plan, batch {batch}")
                        m = models["so"]
                        m.threads = 1
                        results.setdefault((case, batch), []).append(getattr(m, "t_" + case)(x))
        for (case, batch), (wide, split) in results.items():
            with self.subTest(case=case, batch=batch):
                np.testing.assert_array_equal(wide, split, f"{case}, batch {batch}: the two plans' bits differ")


if __name__ == "__main__":
    unittest.main()
