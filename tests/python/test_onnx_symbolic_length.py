"""Any length through ONNX (issues 18 and 19): torch.nn's Transformer layers exported with a
dynamic sequence axis compile once and run at T = 1, 7, 64 and 300 against PyTorch — JIT,
AOT and their `nnc import` as .nn, 1, 2 and 3 threads, the same bits at every thread count.

- nn.TransformerEncoder (two post-norm gelu layers, batch_first): MatMul scores [B, H, T, T]
  and their Softmax, sized with T's square (compiler/ir/symdim.c).
- a causal nn.TransformerDecoderLayer whose mask is built from the length in forward
  (torch.triu → Trilu on a [T, T] of -inf), with a bool memory key padding mask (a bool graph
  input: int64 0 / 1 in the library's signature)."""
import os
import unittest

import numpy as np

import nnc
from support import TempDirCase, assert_same_everywhere, compile_so, needs_torch, nnc_cli, torch_or_none

E, H = 16, 4
LENGTHS = (1, 7, 64, 300)


def modules(torch):
    nn = torch.nn

    class CausalDecoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = nn.TransformerDecoderLayer(E, H, 24, 0.1, batch_first=True)

        def forward(self, t, mem, pad):
            n = t.shape[1]
            causal = torch.triu(torch.full((n, n), float("-inf")), 1)
            return self.layer(t, mem, tgt_mask=causal, memory_key_padding_mask=pad)

    torch.manual_seed(11)
    layer = nn.TransformerEncoderLayer(E, H, 32, 0.1, "gelu", batch_first=True)
    encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False) \
        if "enable_nested_tensor" in nn.TransformerEncoder.__init__.__code__.co_varnames else nn.TransformerEncoder(layer, 2)
    mods = {"encoder": encoder, "decoder": CausalDecoder()}
    for m in mods.values():
        m.eval()
        with torch.no_grad():
            for p in m.parameters():
                p.add_(torch.randn_like(p) * 0.1)  # biases and norms away from their init
    return mods


class ImportedForward:
    """An imported .nn's one export (named after the graph, torch_jit) as `forward`."""

    def __init__(self, model):
        self.model = model

    @property
    def threads(self):
        return self.model.threads

    @threads.setter
    def threads(self, n):
        self.model.threads = n

    def forward(self, *args):
        return self.model.torch_jit(*args)


@needs_torch
class OnnxSymbolicLengthTest(TempDirCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        torch = cls.torch = torch_or_none()
        cls.mods = modules(torch)
        x, t, mem = torch.randn(2, 5, E), torch.randn(2, 5, E), torch.randn(2, 3, E)
        pad = torch.zeros(2, 3, dtype=torch.bool)
        cls.models = {}
        exports = {"encoder": ((x,), ["x"], {"x": {0: "B", 1: "T"}}),
                   "decoder": ((t, mem, pad), ["t", "mem", "pad"],
                               {"t": {0: "B", 1: "T"}, "mem": {0: "B", 1: "S"}, "pad": {0: "B", 1: "S"}})}
        for name, (args, names, axes) in exports.items():
            path = os.path.join(cls.tmp, name + ".onnx")
            torch.onnx.export(cls.mods[name], args, path, input_names=names, output_names=["y"], opset_version=17,
                              dynamic_axes={**axes, "y": {0: "B", 1: "T"}})
            cls.models[name] = {"jit": nnc.compile(path), "so": nnc.load(compile_so(path, cls.tmp))}
            # and `nnc import` to .nn (Trilu's triangle written with arange), compiled again
            nn, weights = os.path.join(cls.tmp, name + ".nn"), os.path.join(cls.tmp, name + ".safetensors")
            nnc_cli("import", path, "-o", nn, "--weights-out", weights)
            cls.models[name]["imported"] = ImportedForward(nnc.compile(nn, weights=weights))

    def check(self, name, args, want, what):
        assert_same_everywhere(self, self.models[name], lambda m: m.forward(*args), (want,), what)

    def test_encoder(self):
        torch = self.torch
        rng = np.random.default_rng(2)
        for n in LENGTHS:
            x = rng.standard_normal((3, n, E)).astype(np.float32)
            with torch.no_grad():
                want = self.mods["encoder"](torch.from_numpy(x)).numpy()
            self.check("encoder", (x,), want, f"TransformerEncoder T={n}")

    def test_causal_decoder(self):
        torch = self.torch
        rng = np.random.default_rng(3)
        for n in LENGTHS:
            t, mem = rng.standard_normal((2, n, E)).astype(np.float32), rng.standard_normal((2, 6, E)).astype(np.float32)
            pad = np.zeros((2, 6), bool)
            pad[1, 4:] = True
            with torch.no_grad():
                want = self.mods["decoder"](torch.from_numpy(t), torch.from_numpy(mem), torch.from_numpy(pad)).numpy()
            self.check("decoder", (t, mem, pad.astype(np.int64)), want, f"causal decoder T={n}")


if __name__ == "__main__":
    unittest.main()
