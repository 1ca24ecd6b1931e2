"""torchvision.models.VisionTransformer (image 64, patch 16, 4 layers, 4 heads, hidden 128,
MLP 256, 10 classes), written in tests/models/vit_small.nn, with its state_dict unchanged
(random init with a fixed seed; the zero-initialised head, class token and positional
embedding randomised so that they matter) against PyTorch, JIT and AOT, 1 and 2 threads.
Exercises Parameter, MultiheadAttention (batch_first, need_weights=false), GELU, LayerNorm
eps, the patch convolution."""
import os
import unittest

import numpy as np

import nnc
from support import ROOT, TempDirCase, assert_close, compile_so, needs_torch, torch_or_none


def vit_small(torch):
    """The model of tests/models/vit_small.nn, seeded; the zero-initialised head, class token
    and positional embedding randomised so that they matter (also bench/zoo_bench.py's)."""
    from torchvision.models import VisionTransformer
    torch.manual_seed(0)
    vit = VisionTransformer(image_size=64, patch_size=16, num_layers=4, num_heads=4, hidden_dim=128, mlp_dim=256,
                            num_classes=10).eval()
    with torch.no_grad():
        vit.heads.head.weight.normal_()
        vit.heads.head.bias.normal_()
        vit.class_token.normal_()
        vit.encoder.pos_embedding.normal_(std=0.5)
    return vit


@needs_torch
class VitTest(TempDirCase):
    def test_against_torchvision(self):
        torch = torch_or_none()
        try:
            import torchvision  # noqa: F401
        except ImportError:
            self.skipTest("torchvision is not installed")
        vit = vit_small(torch)
        weights = nnc.save_safetensors({k: v.numpy() for k, v in vit.state_dict().items()},
                                       os.path.join(self.tmp, "vit.safetensors"))
        nn = os.path.join(ROOT, "tests", "models", "vit_small.nn")
        x = torch.randn(3, 3, 64, 64)
        with torch.no_grad():
            want = vit(x).numpy()
        models = {"jit": nnc.compile(nn, weights=weights), "so": nnc.load(compile_so(nn, self.tmp, weights))}
        for kind, m in models.items():
            for threads in (1, 2):
                m.threads = threads
                assert_close(self, m.classify(x.numpy()), want, f"{kind}, {threads} threads")


if __name__ == "__main__":
    unittest.main()
