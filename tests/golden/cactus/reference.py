#!/usr/bin/python3
"""PyTorch reference for CACTUs (Hsu, Levine & Finn, "Unsupervised Learning via Meta-Learning",
ICLR 2019): task construction by k-means clustering of (scaled) embeddings into pseudo-labels,
and a prototypical-network episode (Snell et al. 2017) with the Conv-4 embedding.

Sizes (all static): kmeans on M = 64 embeddings of D = 8 into K = 5 clusters, ITERS = 5 Lloyd
iterations; episodes of K = 5 ways, 2 shots (S = 10 support images) and Q = 15 queries of
1 x 28 x 28; Conv-4 with CH = 16 channels (28 -> 14 -> 7 -> 3 -> 1), embedding size 16.

Module structure and state_dict names (F32, and I64 for num_batches_tracked):

    encoder = nn.Sequential(block(1, CH), block(CH, CH), block(CH, CH), block(CH, CH))
    block(i, o) = nn.Sequential(nn.Conv2d(i, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU(),
                                nn.MaxPool2d(2))
    encoder.{0..3}.0.weight [16, i, 3, 3], encoder.{0..3}.0.bias [16]
    encoder.{0..3}.1.weight / .bias / .running_mean / .running_var [16],
    encoder.{0..3}.1.num_batches_tracked (I64 scalar, as PyTorch saves it)
    (BatchNorm in inference mode with random running statistics, eps 1e-5; MaxPool2d(2) floors:
    7 -> 3 drops the last row/column.)

kmeans has no parameters.

Entries (golden files <entry>.in.<arg>.npy / <entry>.out.<name>.npy):

    kmeans(emb: f32[64, 8], scale: f32[8], init: f32[5, 8])
      -> (centroids: f32[5, 8], labels: i64[64])
        z = emb * scale                                   (per-dimension scaling)
        c = init
        repeat ITERS = 5 times:                           (Lloyd iteration)
            d[m, k]   = sum_j (z[m, j] - c[k, j])^2       pairwise squared distances [64, 5]
            a[m]      = argmin_k d[m, k]                  ties: lowest k
            n[k]      = #{m : a[m] = k}
            c[k]      = sum_{a[m] = k} z[m] / n[k]   if n[k] > 0,  else c[k] (empty cluster keeps
                                                     its previous centroid)
        centroids = c                                     (in the scaled space)
        labels[m] = argmin_k sum_j (z[m, j] - c[k, j])^2  against the final centroids (int64)
                                                          (integral values 0..4)
        In one-hot form: P = one_hot(a, K) [64, 5]; c = where(n > 0, (P^T @ z) / max(n, 1), c).
        The data: 4 Gaussian blobs in 8-D with per-dimension scales; init = 4 points of the data
        plus one far-away point, so cluster 4 stays empty in every iteration and must keep its
        initial centroid.  The smallest gap between the nearest and second-nearest centroid of any
        point, over all iterations, is printed and asserted > 1e-2 (robust to rounding).

    episode(support: f32[10, 1, 28, 28], support_labels: f32[10, 5], query: f32[15, 1, 28, 28])
      -> (logits: f32[15, 5])
        es = encoder(support).reshape(10, 16); eq = encoder(query).reshape(15, 16)
        proto = (support_labels^T @ es) / support_labels.sum(0)[:, None]       class means [5, 16]
        logits[q, k] = -sum_j (eq[q, j] - proto[k, j])^2                      -squared distance
        support_labels is one-hot (2 shots of every class, in shuffled order).

Weights: conv weights N(0, 2/fan_in), biases N(0, 0.1^2) (PyTorch's default initialisation
shrinks the activations through 4 blocks, leaving logits ~1e-4); BatchNorm weight
1 + N(0, 0.1^2), bias N(0, 0.1^2), running_mean N(0, 0.1^2), running_var 0.5 + U(0, 1).
Images: U(0, 1) noise times a per-image contrast 0.5 + U(0, 1).
"""
import math
import os
import sys

import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import nnc_ref  # noqa: E402

M, D, K, ITERS = 64, 8, 5, 5
SHOTS, Q, CH = 2, 15, 16
S = K * SHOTS


def block(i, o):
    return nn.Sequential(nn.Conv2d(i, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU(),
                         nn.MaxPool2d(2))


class Cactus(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(block(1, CH), block(CH, CH), block(CH, CH), block(CH, CH))

    def embed(self, x):
        return self.encoder(x).reshape(x.shape[0], -1)

    def episode(self, support, support_labels, query):
        es, eq = self.embed(support), self.embed(query)
        proto = (support_labels.t() @ es) / support_labels.sum(0)[:, None]
        return -((eq[:, None, :] - proto[None, :, :]) ** 2).sum(-1)


def sqdist(z, c):
    return ((z[:, None, :] - c[None, :, :]) ** 2).sum(-1)


def kmeans(emb, scale, init, gaps=None, sizes=None):
    z = emb * scale
    c = init.clone()
    for _ in range(ITERS):
        d = sqdist(z, c)
        if gaps is not None:
            s = torch.sort(d, dim=1).values
            gaps.append((s[:, 1] - s[:, 0]).min().item())
        a = torch.argmin(d, dim=1)          # ties: the first (lowest) index
        P = nn.functional.one_hot(a, K).to(z.dtype)
        n = P.sum(0)
        if sizes is not None:
            sizes.append(n.tolist())
        c = torch.where(n[:, None] > 0, (P.t() @ z) / torch.clamp(n, min=1)[:, None], c)
    d = sqdist(z, c)
    if gaps is not None:
        s = torch.sort(d, dim=1).values
        gaps.append((s[:, 1] - s[:, 0]).min().item())
    return c, torch.argmin(d, dim=1)


def main():
    torch.manual_seed(0)
    model = Cactus()
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=math.sqrt(2.0 / (m.in_channels * 9)))
                nn.init.normal_(m.bias, std=0.1)
            if isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(1 + 0.1 * torch.randn(CH, generator=g))
                m.bias.copy_(0.1 * torch.randn(CH, generator=g))
                m.running_mean.copy_(0.1 * torch.randn(CH, generator=g))
                m.running_var.copy_(0.5 + torch.rand(CH, generator=g))
    model = model.float().eval()

    # k-means data: 4 blobs in 8-D, per-dimension scale, init from the data + one far point
    centers = 3 * torch.randn(4, D, generator=g)
    emb = centers[torch.arange(M) % 4] + torch.randn(M, D, generator=g)
    emb = emb[torch.randperm(M, generator=g)]
    scale = 0.5 + torch.rand(D, generator=g)
    init = torch.cat([emb[[0, 1, 2, 3]] * scale, torch.full((1, D), 100.0)])
    gaps, sizes = [], []
    centroids, labels = kmeans(emb, scale, init, gaps, sizes)
    assert min(gaps) > 1e-2, f"k-means assignment too close to a tie: {min(gaps)}"
    assert all(s[4] == 0 for s in sizes), "cluster 4 should stay empty"
    assert torch.equal(centroids[4], init[4])

    # a 5-way 2-shot episode with 15 queries
    support = torch.rand(S, 1, 28, 28, generator=g) * (0.5 + torch.rand(S, 1, 1, 1, generator=g))
    support_labels = nn.functional.one_hot(
        (torch.arange(S) % K)[torch.randperm(S, generator=g)], K).float()
    query = torch.rand(Q, 1, 28, 28, generator=g) * (0.5 + torch.rand(Q, 1, 1, 1, generator=g))
    with torch.no_grad():
        logits = model.episode(support, support_labels, query)
    nnc_ref.write_golden(HERE, model, [
        ("kmeans", {"emb": emb, "scale": scale, "init": init},
         {"centroids": centroids, "labels": labels}),
        ("episode", {"support": support, "support_labels": support_labels, "query": query},
         {"logits": logits}),
    ])
    print(f"cactus: wrote golden to {HERE} (k-means cluster sizes per iteration {sizes}; "
          f"smallest assignment gap {min(gaps):.3g}; logits in [{logits.min().item():.3g}, "
          f"{logits.max().item():.3g}])")


if __name__ == "__main__":
    main()
