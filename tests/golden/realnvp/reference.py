#!/usr/bin/python3
"""PyTorch reference for Real NVP (Dinh, Sohl-Dickstein & Bengio, "Density estimation using
Real NVP", ICLR 2017) on 2-D data, written from the paper's description.

Affine coupling layer with binary mask m:
    y = x*m + (1-m) * (x * exp(s(x*m)) + t(x*m)),    log|det dy/dx| = sum((1-m) * s(x*m))
inverse:
    x = y*m + (1-m) * ((y - t(y*m)) * exp(-s(y*m)))
Masks alternate [1,0], [0,1]; the base distribution is a standard normal.

Running this script regenerates, deterministically, the golden files in its own directory:
weights.safetensors, <entry>.in.<arg>.npy, <entry>.out.<name>.npy for the entries
forward(x) -> (z, logdet), inverse(z) -> (x), log_prob(x) -> (lp).
"""
import math
import os
import sys

import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import nnc_ref  # noqa: E402

D = 2
H = 64
L = 6


class Coupling(nn.Module):
    def __init__(self, mask):
        super().__init__()
        self.s = nn.Sequential(nn.Linear(D, H), nn.ReLU(), nn.Linear(H, H), nn.ReLU(),
                               nn.Linear(H, D), nn.Tanh())
        self.t = nn.Sequential(nn.Linear(D, H), nn.ReLU(), nn.Linear(H, H), nn.ReLU(),
                               nn.Linear(H, D))
        # not a parameter and not in the state_dict: the .nn model has it as a constant
        self.register_buffer("mask", torch.tensor(mask, dtype=torch.float32), persistent=False)

    def forward(self, x):
        m = self.mask
        xm = x * m
        s = self.s(xm)
        t = self.t(xm)
        y = xm + (1 - m) * (x * torch.exp(s) + t)
        return y, torch.sum((1 - m) * s, dim=1)

    def inverse(self, y):
        m = self.mask
        ym = y * m
        return ym + (1 - m) * ((y - self.t(ym)) * torch.exp(-self.s(ym)))


class RealNVP(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList(
            [Coupling([1.0, 0.0] if i % 2 == 0 else [0.0, 1.0]) for i in range(L)])

    def forward(self, x):
        z = x
        logdet = torch.zeros(x.shape[0], dtype=x.dtype)
        for layer in self.layers:
            z, ld = layer(z)
            logdet = logdet + ld
        return z, logdet

    def inverse(self, z):
        x = z
        for layer in reversed(self.layers):
            x = layer.inverse(x)
        return x

    def log_prob(self, x):
        z, logdet = self.forward(x)
        return torch.sum(-0.5 * z ** 2 - 0.5 * math.log(2 * math.pi), dim=1) + logdet


def make_model(seed=0):
    """Deterministic weights.  Weights are drawn wider than PyTorch's default so that s is
    far from 0 (exp(s) is meaningfully exercised) and t moves the data."""
    torch.manual_seed(seed)
    model = RealNVP()
    with torch.no_grad():
        for layer in model.layers:
            for net in (layer.s, layer.t):
                for mod in net:
                    if isinstance(mod, nn.Linear):
                        nn.init.normal_(mod.weight, std=1.0 / math.sqrt(mod.in_features))
                        nn.init.normal_(mod.bias, std=0.2)
    return model.float().eval()


def make_inputs(n=64, seed=1):
    """A two-moons-like 2-D sample (fixed seed)."""
    g = torch.Generator().manual_seed(seed)
    half = n // 2
    a = torch.rand(half, generator=g) * math.pi
    b = torch.rand(n - half, generator=g) * math.pi
    upper = torch.stack([torch.cos(a), torch.sin(a)], dim=1)
    lower = torch.stack([1 - torch.cos(b), 0.5 - torch.sin(b)], dim=1)
    x = torch.cat([upper, lower], dim=0)
    x = x + 0.1 * torch.randn(n, 2, generator=g)
    x = x[torch.randperm(n, generator=g)]
    return x.float().contiguous()


def main():
    model = make_model()
    x = make_inputs()
    with torch.no_grad():
        z, logdet = model(x)
        xr = model.inverse(z)
        lp = model.log_prob(x)
    err = (xr - x).abs().max().item()
    assert err < 1e-4, f"inverse(forward(x)) differs from x by {err}"
    nnc_ref.write_golden(HERE, model, [
        ("forward", {"x": x}, {"z": z, "logdet": logdet}),
        ("inverse", {"z": z}, {"x": xr}),
        ("log_prob", {"x": x}, {"lp": lp}),
    ])
    print(f"realnvp: wrote golden to {HERE} (max |inverse(forward(x)) - x| = {err:.3g})")


if __name__ == "__main__":
    main()
