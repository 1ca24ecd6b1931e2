#!/usr/bin/python3
"""PyTorch reference for Group Normalization (Wu & He, "Group Normalization", ECCV 2018):
a CIFAR-style ResNet (He et al. 2016, 3 stages of 2 basic blocks, widths 16/32/64) whose
normalization layer is chosen by a constant, as in the paper's comparison:

    gn: nn.GroupNorm(4, C)         (G = 4 groups)
    bn: nn.BatchNorm2d(C)          (inference: running statistics)
    ln: nn.GroupNorm(1, C)         (Layer Norm = GN with one group)
    in: nn.GroupNorm(C, C)         (Instance Norm = GN with one channel per group)

Basic block: conv3x3-norm-relu-conv3x3-norm, plus the identity (or a 1x1 conv + norm
"downsample" when the stride or width changes), then relu.  Stem conv3x3(3->16)-norm-relu;
global average pool; Linear(64, 10).

Input x: f32[N, 3, 32, 32] with N = 2 (the same x for every norm).  Entry:
forward(x) -> (logits [N, 10]).

    /usr/bin/python3 tests/golden/groupnorm/reference.py        # all four directories
    /usr/bin/python3 tests/golden/groupnorm/reference.py bn     # one of them

Writes tests/golden/groupnorm (gn), groupnorm_bn, groupnorm_ln, groupnorm_in: each has its
own weights.safetensors (its own seed), forward.in.x.npy, forward.out.logits.npy and a one-line
file `defines` with the compile-time definition for examples/groupnorm.nn (`NORM=bn`, ...;
no file for gn, the default).  The scripts groupnorm_<norm>/reference.py call this one.

Parameters: convs and fc use PyTorch's default initialisation; the affine weight of every
norm layer is 1 + N(0, 0.1^2) and its bias N(0, 0.1^2), and the BatchNorm running statistics
are mean ~ N(0, 0.1^2), var ~ U(0.5, 1.5), so that none of them is the identity.  BatchNorm's
num_batches_tracked stays in the state_dict (an I64 scalar), as PyTorch saves it.
"""
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.dirname(HERE)
sys.path.insert(0, GOLDEN)
import nnc_ref  # noqa: E402

NORMS = ("gn", "bn", "ln", "in")
DIRS = {"gn": "groupnorm", "bn": "groupnorm_bn", "ln": "groupnorm_ln", "in": "groupnorm_in"}
SEEDS = {"gn": 10, "bn": 11, "ln": 12, "in": 13}
GROUPS = 4
N = 2


def make_norm(norm, c):
    if norm == "gn":
        return nn.GroupNorm(GROUPS, c)
    if norm == "bn":
        return nn.BatchNorm2d(c)
    if norm == "ln":
        return nn.GroupNorm(1, c)
    if norm == "in":
        return nn.GroupNorm(c, c)
    raise ValueError(norm)


class BasicBlock(nn.Module):
    def __init__(self, norm, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.norm1 = make_norm(norm, cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, stride=1, padding=1, bias=False)
        self.norm2 = make_norm(norm, cout)
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False),
                                            make_norm(norm, cout))
        else:
            self.downsample = None  # not a submodule: no parameters named downsample.*

    def forward(self, x):
        out = F.relu(self.norm1(self.conv1(x)))
        out = self.norm2(self.conv2(out))
        identity = self.downsample(x) if self.downsample is not None else x
        return F.relu(out + identity)


class ResNet(nn.Module):
    def __init__(self, norm):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1, bias=False)
        self.norm1 = make_norm(norm, 16)
        self.relu = nn.ReLU()
        self.layer1 = nn.Sequential(BasicBlock(norm, 16, 16, 1), BasicBlock(norm, 16, 16, 1))
        self.layer2 = nn.Sequential(BasicBlock(norm, 16, 32, 2), BasicBlock(norm, 32, 32, 1))
        self.layer3 = nn.Sequential(BasicBlock(norm, 32, 64, 2), BasicBlock(norm, 64, 64, 1))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        x = self.relu(self.norm1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        x = torch.flatten(self.avgpool(x), 1)
        return self.fc(x)


def randomize_norms(model, g):
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.GroupNorm, nn.BatchNorm2d)):
                c = m.weight.shape[0]
                m.weight.copy_(1 + 0.1 * torch.randn(c, generator=g))
                m.bias.copy_(0.1 * torch.randn(c, generator=g))
            if isinstance(m, nn.BatchNorm2d):
                c = m.running_mean.shape[0]
                m.running_mean.copy_(0.1 * torch.randn(c, generator=g))
                m.running_var.copy_(0.5 + torch.rand(c, generator=g))


def make_model(norm):
    torch.manual_seed(SEEDS[norm])
    model = ResNet(norm)
    randomize_norms(model, torch.Generator().manual_seed(SEEDS[norm] + 100))
    return model.float().eval()


def make_input():
    g = torch.Generator().manual_seed(1)
    return torch.randn(N, 3, 32, 32, generator=g).float().contiguous()


def generate(norm):
    outdir = os.path.join(GOLDEN, DIRS[norm])
    os.makedirs(outdir, exist_ok=True)
    model = make_model(norm)
    x = make_input()
    with torch.no_grad():
        logits = model(x)
        # float64 cross-check: the float32 result is close to the exact one
        ref = model.double()(x.double())
        model.float()
    err = (logits.double() - ref).abs().max().item()
    assert torch.isfinite(logits).all()
    nnc_ref.write_golden(outdir, model, [("forward", {"x": x}, {"logits": logits})])
    dpath = os.path.join(outdir, "defines")
    if norm == "gn":
        if os.path.exists(dpath):
            os.remove(dpath)
    else:
        with open(dpath, "w") as f:
            f.write(f"NORM={norm}\n")
    print(f"{DIRS[norm]}: wrote golden to {outdir} (|logits| <= {logits.abs().max():.3g}, "
          f"float32 vs float64 {err:.2g})")


def main(argv):
    norms = argv[1:] or list(NORMS)
    for norm in norms:
        if norm not in NORMS:
            sys.exit(f"usage: {argv[0]} [{'|'.join(NORMS)}]...")
        generate(norm)


if __name__ == "__main__":
    main(sys.argv)
