"""The 1-D layers of issue 17 against PyTorch: nn.Conv1d and nn.ConvTranspose1d with their
unchanged state_dicts (stride, padding: a number, a list of one, "same"; dilation, groups, no
bias, output_padding), MaxPool1d, AvgPool1d and AdaptiveAvgPool1d (padding, ceil_mode,
count_include_pad, dilation)."""
import os
import unittest

import numpy as np

import nnc
from support import TempDirCase, assert_close, needs_torch, torch_or_none, write_model

LAYERS = {  # name: (nnc constructor, torch constructor arguments)
    "plain": ("Conv1d(4, 6, 3)", ("Conv1d", (4, 6, 3), {})),
    "strided": ("Conv1d(4, 6, 5, stride=2, padding=[2], dilation=1, bias=false)",
                ("Conv1d", (4, 6, 5), {"stride": 2, "padding": 2, "bias": False})),
    "same": ("Conv1d(4, 8, 3, padding=\"same\", dilation=2, groups=2)",
             ("Conv1d", (4, 8, 3), {"padding": "same", "dilation": 2, "groups": 2})),
    "up": ("ConvTranspose1d(4, 6, 4, stride=2, padding=1)", ("ConvTranspose1d", (4, 6, 4), {"stride": 2, "padding": 1})),
    "up_odd": ("ConvTranspose1d(4, 2, 3, stride=3, padding=1, output_padding=2, groups=2, bias=false)",
               ("ConvTranspose1d", (4, 2, 3), {"stride": 3, "padding": 1, "output_padding": 2, "groups": 2, "bias": False})),
    "maxpool": ("MaxPool1d(3, stride=2, padding=1, dilation=2, ceil_mode=true)",
                ("MaxPool1d", (3,), {"stride": 2, "padding": 1, "dilation": 2, "ceil_mode": True})),
    "avgpool": ("AvgPool1d(4, 3, 2, count_include_pad=false)", ("AvgPool1d", (4, 3, 2), {"count_include_pad": False})),
    "avgpool_ceil": ("AvgPool1d(2, ceil_mode=true)", ("AvgPool1d", (2,), {"ceil_mode": True})),
    "adaptive": ("AdaptiveAvgPool1d(5)", ("AdaptiveAvgPool1d", (5,), {})),
}
L = 17


@needs_torch
class Conv1dTest(TempDirCase):
    def test_against_torch(self):
        torch = torch_or_none()
        torch.manual_seed(3)
        mods, state, src = {}, {}, ""
        x = np.random.default_rng(6).standard_normal((2, 4, L)).astype(np.float32)
        for name, (ctor, (cls, args, kw)) in LAYERS.items():
            mods[name] = getattr(torch.nn, cls)(*args, **kw).eval()
            state.update({f"{name}.{k}": v.detach().numpy() for k, v in mods[name].state_dict().items()})
            with torch.no_grad():
                out = mods[name](torch.from_numpy(x))
            src += f"{name} = {ctor}\n"
            src += f"export t_{name}(x: f32[B, 4, {L}]) -> y: f32[B, {out.shape[1]}, {out.shape[2]}] {{ y = {name}(x) }}\n"
        weights = nnc.save_safetensors(state, os.path.join(self.tmp, "w.safetensors"))
        m = nnc.compile(write_model(src, self.tmp, "conv1d"), weights=weights)
        for name in LAYERS:
            with self.subTest(name), torch.no_grad():
                assert_close(self, getattr(m, "t_" + name)(x), mods[name](torch.from_numpy(x)).numpy(), name)

    def test_wrong_rank(self):
        with self.assertRaises(nnc.CompileError) as cm:
            nnc.compile(write_model("c = Conv1d(4, 6, 3)\nexport f(x: f32[2, 4, 5, 5]) -> y: f32[2, 6, 3] { y = c(x) }\n",
                                    self.tmp, "bad"))
        self.assertIn("Conv1d expects an input [batch, channels, length], not f32[2, 4, 5, 5]", str(cm.exception))


if __name__ == "__main__":
    unittest.main()
