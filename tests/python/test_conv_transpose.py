"""nn.ConvTranspose2d against PyTorch, with its unchanged state_dict, over the cases its col2im
takes apart (compiler/lower/col2im.c): rows of a static width in phases (the columns whose taps
are all inside the input, s of them side by side per input column, and the general columns
before and after), rows with no such column (a 1-pixel input, fcn's 16x16 kernel at stride 8 on
a 2x2 map), kernels shorter than the stride (output columns no tap reaches), stride 1, strides
and paddings that differ between the axes, groups, output_padding, long rows, and the general
path: rows of a symbolic width and dilation (PyTorch's scatter).  Each layer runs JIT and AOT
at 1-3 threads at two batch sizes: close to PyTorch, and the same bits everywhere."""
import os
import unittest

import numpy as np

import nnc
from support import TempDirCase, assert_same_everywhere, compile_so, needs_torch, torch_or_none, write_model

# name: (in channels, out channels, kernel, keyword arguments, input height, width)
LAYERS = {
    "dcgan": (8, 4, 4, {"stride": 2, "padding": 1}, 7, 7),
    "odd": (3, 5, 3, {"stride": 2, "padding": 1, "output_padding": 1}, 5, 6),
    "k2s2": (4, 4, 2, {"stride": 2}, 6, 9),
    "s3_groups": (4, 6, 5, {"stride": 3, "padding": 2, "output_padding": 1, "groups": 2}, 4, 5),
    "fcn_upsample": (3, 3, 16, {"stride": 8, "padding": 4, "bias": False}, 2, 2),
    "stride1": (4, 3, 3, {"padding": 1}, 9, 9),
    "one_pixel": (4, 2, 4, {"stride": 2, "padding": 1}, 1, 1),
    "long_row": (2, 3, 4, {"stride": 2, "padding": 1}, 3, 37),
    "kernel_below_stride": (3, 2, 2, {"stride": 3}, 4, 5),
    "rectangular": (4, 2, (3, 5), {"stride": (2, 3), "padding": (1, 3), "output_padding": (1, 2)}, 5, 4),
    "dilated": (3, 2, 3, {"stride": 2, "padding": 1, "dilation": 2}, 4, 5),
}


def nn_args(cin, cout, k, kw):
    def spell(v):
        return f"[{v[0]}, {v[1]}]" if isinstance(v, tuple) else str(v).lower()
    return ", ".join([str(cin), str(cout), spell(k)] + [f"{key}={spell(v)}" for key, v in kw.items()])


def out_size(dim, k, kw, axis):
    """PyTorch's output size along `axis` as a formula in dim: s dim + d (k - 1) + op + 1 - 2 p - s."""
    def at(v, default):
        v = kw.get(v, default) if isinstance(v, str) else v
        return v[axis] if isinstance(v, tuple) else v
    s, p, op, d = at("stride", 1), at("padding", 0), at("output_padding", 0), at("dilation", 1)
    c = d * (at(k, k) - 1) + op + 1 - 2 * p - s
    return f"{s} * {dim}" + (f" + {c}" if c > 0 else f" - {-c}" if c < 0 else "")


@needs_torch
class ConvTranspose2dTest(TempDirCase):
    def build(self, symbolic):
        torch = torch_or_none()
        torch.manual_seed(5)
        mods, state, src = {}, {}, ""
        for name, (cin, cout, k, kw, h, w) in LAYERS.items():
            mods[name] = torch.nn.ConvTranspose2d(cin, cout, k, **kw).eval()
            state.update({f"{name}.{key}": v.detach().numpy() for key, v in mods[name].state_dict().items()})
            with torch.no_grad():
                out = mods[name](torch.zeros(1, cin, h, w))
            src += f"{name} = ConvTranspose2d({nn_args(cin, cout, k, kw)})\n"
            if symbolic:  # H, W from the input; the output's size derived from them
                src += (f"export t_{name}(x: f32[B, {cin}, H, W]) -> y: f32[B, {cout}, {out_size('H', k, kw, 0)}, "
                        f"{out_size('W', k, kw, 1)}] {{ y = {name}(x) }}\n")
            else:
                src += (f"export t_{name}(x: f32[B, {cin}, {h}, {w}]) -> y: f32[B, {cout}, {out.shape[2]}, "
                        f"{out.shape[3]}] {{ y = {name}(x) }}\n")
        tag = "symbolic" if symbolic else "static"
        weights = nnc.save_safetensors(state, os.path.join(self.tmp, f"w_{tag}.safetensors"))
        nn = write_model(src, self.tmp, f"conv_transpose_{tag}")
        models = {"JIT": nnc.compile(nn, weights=weights),
                  "AOT": nnc.load(compile_so(nn, self.tmp, weights=weights))}
        return mods, models

    def check(self, symbolic):
        torch = torch_or_none()
        mods, models = self.build(symbolic)
        rng = np.random.default_rng(8)
        for name, (cin, _, _, _, h, w) in LAYERS.items():
            for batch in (1, 3):
                x = rng.standard_normal((batch, cin, h, w)).astype(np.float32)
                with torch.no_grad():
                    want = mods[name](torch.from_numpy(x)).numpy()
                with self.subTest(name, batch=batch):
                    assert_same_everywhere(self, models, lambda m: getattr(m, "t_" + name)(x), (want,),
                                           f"{name}, batch {batch}")

    def test_static_sizes(self):
        self.check(symbolic=False)

    def test_symbolic_sizes(self):
        self.check(symbolic=True)


if __name__ == "__main__":
    unittest.main()
