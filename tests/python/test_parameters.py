"""nn.Parameter members (issue 17, item 1): `NAME = Parameter([shape])` declares a tensor of the
state_dict under the member's own name, usable in expressions, at top level and in modules,
f32 and i64 — loaded from a PyTorch state_dict unchanged and matching PyTorch."""
import os
import unittest

import numpy as np

import nnc
from support import TempDirCase, assert_close, needs_torch, torch_or_none, write_model

MODEL = """
module Block(T, D) {
  pos_embedding = Parameter([1, T, D])
  norm = LayerNorm(D)
  layer_scale = Parameter([D])
  fn forward(x) { return x + self.layer_scale * self.norm(x + self.pos_embedding) }
}
class_token = Parameter([1, 1, 8])
logit_scale = Parameter([])
offsets = Parameter([3], dtype="i64")
encoder = Block(5, 8)
head = Linear(8, 3)
export classify(x: f32[N, 4, 8]) -> y: f32[N, 3] {
  z = encoder(cat([class_token + 0 * x[:, 0:1], x], axis=1))
  y = head(z[:, 0]) * exp(logit_scale) + offsets
}
"""


@needs_torch
class ParametersTest(TempDirCase):
    def torch_model(self):
        torch = torch_or_none()
        nn = torch.nn

        class Block(nn.Module):
            def __init__(self, T, D):
                super().__init__()
                self.pos_embedding = nn.Parameter(torch.randn(1, T, D))
                self.norm = nn.LayerNorm(D)
                self.layer_scale = nn.Parameter(torch.rand(D))

            def forward(self, x):
                return x + self.layer_scale * self.norm(x + self.pos_embedding)

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.class_token = nn.Parameter(torch.randn(1, 1, 8))
                self.logit_scale = nn.Parameter(torch.tensor(0.3))
                self.register_buffer("offsets", torch.tensor([1, -2, 7]))
                self.encoder = Block(5, 8)
                self.head = nn.Linear(8, 3)

            def forward(self, x):
                z = self.encoder(torch.cat([self.class_token.expand(x.shape[0], -1, -1), x], dim=1))
                return self.head(z[:, 0]) * self.logit_scale.exp() + self.offsets

        torch.manual_seed(0)
        net = Net().eval()
        with torch.no_grad():
            net.encoder.norm.weight.uniform_(0.5, 1.5)
        return net

    def test_state_dict_unchanged(self):
        torch = torch_or_none()
        net = self.torch_model()
        state = {k: v.detach().numpy() for k, v in net.state_dict().items()}
        weights = nnc.save_safetensors(state, os.path.join(self.tmp, "w.safetensors"))
        m = nnc.compile(write_model(MODEL, self.tmp, "params"), weights=weights)
        x = np.random.default_rng(3).standard_normal((2, 4, 8)).astype(np.float32)
        with torch.no_grad():
            want = net(torch.from_numpy(x)).numpy()
        assert_close(self, m.classify(x), want, "classify")

    def test_sequential_of_a_list(self):
        """nn.Sequential(*[...]) as Sequential([...]): the children are 0, 1, ... as in torch."""
        torch = torch_or_none()
        torch.manual_seed(1)
        widths = [3, 5, 4, 2]
        net = torch.nn.Sequential(*[torch.nn.Sequential(torch.nn.Linear(a, b), torch.nn.Tanh())
                                    for a, b in zip(widths, widths[1:])]).eval()
        src = ("const W = [3, 5, 4, 2]\n"
               "body = Sequential([Sequential(Linear(W[i], W[i + 1]), Tanh()) for i in range(3)])\n"
               "export f(x: f32[N, 3]) -> y: f32[N, 2] { y = body(x) }\n")
        state = {"body." + k: v.detach().numpy() for k, v in net.state_dict().items()}
        m = nnc.compile(write_model(src, self.tmp, "seqlist"),
                        weights=nnc.save_safetensors(state, os.path.join(self.tmp, "seq.safetensors")))
        x = np.random.default_rng(4).standard_normal((5, 3)).astype(np.float32)
        with torch.no_grad():
            assert_close(self, m.f(x), net(torch.from_numpy(x)).numpy(), "Sequential of a list")
        with self.assertRaises(nnc.CompileError) as cm:
            nnc.compile(write_model("s = Sequential([Linear(2, 2), 3])\n", self.tmp, "badseq"))
        self.assertIn("Sequential takes modules (or one list of them), not a list holding an int", str(cm.exception))

    def test_errors(self):
        cases = [
            ("p = Parameter([2, -1])\nexport f(x: f32[2]) -> y: f32[2] { y = x }\n", "Parameter: sizes must not be negative, got -1"),
            ("p = Parameter(3)\nexport f(x: f32[2]) -> y: f32[2] { y = x }\n", "Parameter needs its shape as a list: Parameter([1, 1, D])"),
            ("p = Parameter([2], dtype=\"f16\")\nexport f(x: f32[2]) -> y: f32[2] { y = x }\n", "Parameter: dtype must be \"f32\" or \"i64\""),
            ("p = Parameter([2])\nexport f(x: f32[2]) -> y: f32[2] { y = p(x) }\n", "a tensor cannot be called"),
            ("export f(x: f32[2]) -> y: f32[2] { y = x + Parameter([2]) }\n", "expected a tensor"),
        ]
        for src, words in cases:
            with self.subTest(words):
                with self.assertRaises(nnc.CompileError) as cm:
                    nnc.compile(write_model(src, self.tmp, "bad"))
                self.assertIn(words, str(cm.exception))


if __name__ == "__main__":
    unittest.main()
