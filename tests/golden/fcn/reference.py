#!/usr/bin/python3
"""PyTorch reference for FCN-8s (Long, Shelhamer & Darrell, "Fully Convolutional Networks for
Semantic Segmentation", CVPR 2015), a small VGG-like version written from the paper:

    block1: conv3x3(3->16) relu conv3x3(16->16) relu maxpool2     64 -> 32
    block2: conv3x3(16->32) relu maxpool2                         32 -> 16
    block3: conv3x3(32->64) relu maxpool2      (pool3)            16 -> 8
    block4: conv3x3(64->128) relu maxpool2     (pool4)             8 -> 4
    block5: conv3x3(128->128) relu maxpool2    (pool5)             4 -> 2
    fc6: conv3x3(128->256) relu; fc7: conv1x1(256->256) relu      (dropout: identity at inference)
    score_fr = conv1x1(256->5); score_pool4 = conv1x1(128->5); score_pool3 = conv1x1(64->5)
    s = upscore2(score_fr)  + score_pool4(pool4)      ConvTranspose(4, stride 2, pad 1)   2 -> 4
    s = upscore_pool4(s)    + score_pool3(pool3)      ConvTranspose(4, stride 2, pad 1)   4 -> 8
    out = upscore8(s)                                 ConvTranspose(16, stride 8, pad 4)  8 -> 64

(The paper crops its padded upsampled maps; here the paddings are chosen so the shapes line up
exactly, which is what the crop achieves.)  The learned upsampling layers are initialised, as
in the paper, to bilinear interpolation (one bilinear kernel per class on the diagonal), plus
N(0, 0.01^2) noise so that the off-diagonal taps are exercised too; the convolutions have
weights N(0, 1/fan_in) and N(0, 0.1^2) biases, so the scores are O(1) (PyTorch's
default initialisation shrinks the signal layer by layer).  5 classes; input x f32[1, 3, 64, 64] ~ N(0, 1).

Entry forward(x) -> (scores [N, 5, 64, 64]).  Regenerate (deterministic):

    /usr/bin/python3 tests/golden/fcn/reference.py
"""
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import nnc_ref  # noqa: E402

C = 5  # classes
N = 1


class FCN8s(nn.Module):
    def __init__(self):
        super().__init__()
        self.block1 = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(),
                                    nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2, 2))
        self.block2 = nn.Sequential(nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2, 2))
        self.block3 = nn.Sequential(nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2, 2))
        self.block4 = nn.Sequential(nn.Conv2d(64, 128, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2, 2))
        self.block5 = nn.Sequential(nn.Conv2d(128, 128, 3, padding=1), nn.ReLU(),
                                    nn.MaxPool2d(2, 2))
        self.fc6 = nn.Conv2d(128, 256, 3, padding=1)
        self.fc7 = nn.Conv2d(256, 256, 1)
        self.score_fr = nn.Conv2d(256, C, 1)
        self.score_pool4 = nn.Conv2d(128, C, 1)
        self.score_pool3 = nn.Conv2d(64, C, 1)
        self.upscore2 = nn.ConvTranspose2d(C, C, 4, stride=2, padding=1, bias=False)
        self.upscore_pool4 = nn.ConvTranspose2d(C, C, 4, stride=2, padding=1, bias=False)
        self.upscore8 = nn.ConvTranspose2d(C, C, 16, stride=8, padding=4, bias=False)

    def forward(self, x):
        p3 = self.block3(self.block2(self.block1(x)))
        p4 = self.block4(p3)
        p5 = self.block5(p4)
        s = self.score_fr(F.relu(self.fc7(F.relu(self.fc6(p5)))))
        s = self.upscore2(s) + self.score_pool4(p4)
        s = self.upscore_pool4(s) + self.score_pool3(p3)
        return self.upscore8(s)


def bilinear_kernel(channels, k):
    """The FCN upsampling initialisation: weight[i, i] is the 2-D bilinear kernel of size k."""
    factor = (k + 1) // 2
    center = factor - 1 if k % 2 == 1 else factor - 0.5
    og = np.ogrid[:k, :k]
    filt = (1 - abs(og[0] - center) / factor) * (1 - abs(og[1] - center) / factor)
    w = np.zeros((channels, channels, k, k), dtype=np.float64)
    for i in range(channels):
        w[i, i] = filt
    return torch.from_numpy(w).float()


def make_model(seed=0):
    torch.manual_seed(seed)
    model = FCN8s()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=(1.0 / m.weight[0].numel()) ** 0.5)
                nn.init.normal_(m.bias, std=0.1)
        for up in (model.upscore2, model.upscore_pool4, model.upscore8):
            k = up.kernel_size[0]
            up.weight.copy_(bilinear_kernel(C, k) + 0.01 * torch.randn(up.weight.shape))
    return model.float().eval()


def make_input(seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(N, 3, 64, 64, generator=g).float().contiguous()


def main():
    model = make_model()
    x = make_input()
    with torch.no_grad():
        scores = model(x)
        ref = model.double()(x.double())
        model.float()
    assert scores.shape == (N, C, 64, 64)
    err = (scores.double() - ref).abs().max().item()
    nnc_ref.write_golden(HERE, model, [("forward", {"x": x}, {"scores": scores})])
    print(f"fcn: wrote golden to {HERE} (|scores| <= {scores.abs().max():.3g}, "
          f"mean |scores| {scores.abs().mean():.3g}, float32 vs float64 {err:.2g})")


if __name__ == "__main__":
    main()
