#!/usr/bin/python3
"""PyTorch reference for counterfactual regression (Johansson, Shalit & Sontag, "Learning
representations for counterfactual inference", ICML 2016; CFRNet of Shalit, Johansson &
Sontag, ICML 2017), written from the papers' description.

A representation network phi (3 x Linear+ELU, width 200) is shared by two outcome heads h0, h1
(one per treatment arm; 2 x Linear+ELU of width 100, then Linear to 1).  The imbalance penalty
is the linear MMD: the squared Euclidean distance between the mean representation of treated
(t = 1) and control (t = 0) units.

Running this script regenerates, deterministically, the golden files in its own directory:
weights.safetensors, <entry>.in.<arg>.npy, <entry>.out.<name>.npy for the entries
predict(x) -> (y0, y1, ite) and imbalance(x, t) -> (imb)  (imb is 0-d).
"""
import os
import sys

import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import nnc_ref  # noqa: E402

X = 25   # covariates (IHDP)
R = 200  # representation width
H = 100  # outcome-head width


def _head():
    return nn.Sequential(nn.Linear(R, H), nn.ELU(), nn.Linear(H, H), nn.ELU(), nn.Linear(H, 1))


class CFR(nn.Module):
    def __init__(self):
        super().__init__()
        self.phi = nn.Sequential(nn.Linear(X, R), nn.ELU(), nn.Linear(R, R), nn.ELU(),
                                 nn.Linear(R, R), nn.ELU())
        self.h0 = _head()
        self.h1 = _head()

    def predict(self, x):
        r = self.phi(x)
        y0 = self.h0(r).squeeze(1)
        y1 = self.h1(r).squeeze(1)
        return y0, y1, y1 - y0

    forward = predict

    def imbalance(self, x, t):
        """t: float tensor [N] of 0/1 treatment indicators; returns a 0-d tensor."""
        r = self.phi(x)
        mean1 = r[t == 1].mean(0)
        mean0 = r[t == 0].mean(0)
        return torch.sum((mean1 - mean0) ** 2)


def make_model(seed=0):
    torch.manual_seed(seed)
    return CFR().float().eval()  # PyTorch's default initialisation


def make_inputs(n=32, n_treated=12, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, X, generator=g)
    t = torch.zeros(n)
    t[:n_treated] = 1.0
    t = t[torch.randperm(n, generator=g)]
    return x.float().contiguous(), t.float().contiguous()


def main():
    model = make_model()
    x, t = make_inputs()
    assert int(t.sum().item()) == 12
    with torch.no_grad():
        y0, y1, ite = model.predict(x)
        imb = model.imbalance(x, t)
    assert imb.dim() == 0
    nnc_ref.write_golden(HERE, model, [
        ("predict", {"x": x}, {"y0": y0, "y1": y1, "ite": ite}),
        ("imbalance", {"x": x, "t": t}, {"imb": imb}),
    ])
    print(f"cfr: wrote golden to {HERE} (imb = {imb.item():.6g})")


if __name__ == "__main__":
    main()
