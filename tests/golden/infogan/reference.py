#!/usr/bin/python3
"""PyTorch reference for InfoGAN (Chen, Duan, Houthooft, Schulman, Sutskever & Abbeel,
"InfoGAN: Interpretable Representation Learning by Information Maximizing Generative
Adversarial Nets", NIPS 2016), the MNIST architecture of the paper's appendix (table 1):

(The widths below are the paper's; this reference divides them by 8: HID, C2, C1, QHID.)
Generator G, input (z [62], c_cat [10] one-hot, c_cont [2]) concatenated to 74:
    fc1 (74->1024) bn1 relu; fc2 (1024->128*7*7) bn2 relu; reshape [128, 7, 7];
    deconv1 = ConvTranspose(128->64, 4, stride 2, pad 1) bn3 relu      7 -> 14
    deconv2 = ConvTranspose(64->1, 4, stride 2, pad 1) sigmoid          14 -> 28
Discriminator trunk D, shared with Q:
    conv1 (1->64, 4, stride 2, pad 1) lrelu(0.1); conv2 (64->128, 4, s2, p1) bn2 lrelu(0.1);
    flatten; fc (6272->1024) bn3 lrelu(0.1)                         -> t [1024]
    D.d_out (1024->1) sigmoid: probability that x is real
    Q: fc (1024->128) bn lrelu(0.1); cat (128->10) categorical logits; mu (128->2) means
All BatchNorms in inference mode, with random running statistics (mean ~ N(0, 0.1^2),
var ~ U(0.5, 1.5)) and affine parameters (weight 1 + N(0, 0.1^2), bias N(0, 0.1^2)); linear and
conv layers have weights N(0, 1/fan_in) and biases N(0, 0.1^2), so that the outputs are O(1)
(PyTorch's default initialisation gives d = 0.513 for every sample).

The mutual-information lower bound L_I(G, Q) (paper eq. 5) for given codes c and an image x:
    L_I = E[log Q(c | x)] + H(c)
with Q(c_cat | x) = softmax(q_logits) and, for the continuous codes, a factored Gaussian with
mean q_mu and unit variance (the paper: "simply treating it as a factored Gaussian is
sufficient"; fixing the variance to 1 is the common choice).  c_cat is uniform over 10
categories, so H(c_cat) = log 10; the entropy of c_cont is a constant that is left out (it
does not depend on G or Q):
    lb = sum(c_cat * log_softmax(q_logits), 1) + log(10)
       + sum(-0.5 * (c_cont - q_mu)^2 - 0.5 * log(2 pi), 1)              [N]

Entries (parameters shared; state_dict names "G.fc1.weight", "D.conv1.weight", "Q.cat.weight",
"G.bn1.running_mean", "G.bn1.num_batches_tracked" (an I64 scalar), ...):
    generate(z [N,62], c_cat [N,10], c_cont [N,2]) -> (x [N,1,28,28])
    discriminate(x [N,1,28,28]) -> (d [N], q_logits [N,10], q_mu [N,2])
    mi_lower_bound(x, c_cat, c_cont) -> (lb [N])
N = 4; z ~ N(0, 1), c_cat one-hot (categories 3, 0, 7, 9), c_cont ~ U(-1, 1) from a fixed
seed; discriminate and mi_lower_bound take x = generate(z, c_cat, c_cont).

    /usr/bin/python3 tests/golden/infogan/reference.py
"""
import math
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import nnc_ref  # noqa: E402

NZ, NCAT, NCONT = 62, 10, 2
# Widths: the paper's are 1024 (fc), 128 and 64 (feature maps), 128 (Q); they are divided by 8
# here (HID 128, C2 16, C1 8, QHID 16) so the committed golden weights stay small (~1 MB):
# the structure, the ops and the BatchNorm folding are the same.
HID, C2, C1, QHID = 128, 16, 8, 16
N = 4
SLOPE = 0.1


class Generator(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(NZ + NCAT + NCONT, HID)
        self.bn1 = nn.BatchNorm1d(HID)
        self.fc2 = nn.Linear(HID, C2 * 7 * 7)
        self.bn2 = nn.BatchNorm1d(C2 * 7 * 7)
        self.deconv1 = nn.ConvTranspose2d(C2, C1, 4, stride=2, padding=1)
        self.bn3 = nn.BatchNorm2d(C1)
        self.deconv2 = nn.ConvTranspose2d(C1, 1, 4, stride=2, padding=1)

    def forward(self, z, c_cat, c_cont):
        h = torch.cat([z, c_cat, c_cont], 1)
        h = F.relu(self.bn1(self.fc1(h)))
        h = F.relu(self.bn2(self.fc2(h)))
        h = h.reshape(h.shape[0], C2, 7, 7)
        h = F.relu(self.bn3(self.deconv1(h)))
        return torch.sigmoid(self.deconv2(h))


class Discriminator(nn.Module):
    """The shared trunk plus the real/fake output d_out."""
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, C1, 4, stride=2, padding=1)
        self.conv2 = nn.Conv2d(C1, C2, 4, stride=2, padding=1)
        self.bn2 = nn.BatchNorm2d(C2)
        self.fc = nn.Linear(C2 * 7 * 7, HID)
        self.bn3 = nn.BatchNorm1d(HID)
        self.d_out = nn.Linear(HID, 1)

    def trunk(self, x):
        h = F.leaky_relu(self.conv1(x), SLOPE)
        h = F.leaky_relu(self.bn2(self.conv2(h)), SLOPE)
        h = torch.flatten(h, 1)
        return F.leaky_relu(self.bn3(self.fc(h)), SLOPE)


class QHead(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(HID, QHID)
        self.bn = nn.BatchNorm1d(QHID)
        self.cat = nn.Linear(QHID, NCAT)
        self.mu = nn.Linear(QHID, NCONT)

    def forward(self, t):
        q = F.leaky_relu(self.bn(self.fc(t)), SLOPE)
        return self.cat(q), self.mu(q)


class InfoGAN(nn.Module):
    def __init__(self):
        super().__init__()
        self.G = Generator()
        self.D = Discriminator()
        self.Q = QHead()

    def generate(self, z, c_cat, c_cont):
        return self.G(z, c_cat, c_cont)

    def discriminate(self, x):
        t = self.D.trunk(x)
        d = torch.sigmoid(self.D.d_out(t)).squeeze(1)
        q_logits, q_mu = self.Q(t)
        return d, q_logits, q_mu

    def mi_lower_bound(self, x, c_cat, c_cont):
        _, q_logits, q_mu = self.discriminate(x)
        log_q_cat = torch.sum(c_cat * F.log_softmax(q_logits, dim=1), 1)
        log_q_cont = torch.sum(-0.5 * (c_cont - q_mu) ** 2 - 0.5 * math.log(2 * math.pi), 1)
        return log_q_cat + math.log(NCAT) + log_q_cont


def make_model(seed=0):
    torch.manual_seed(seed)
    model = InfoGAN()
    g = torch.Generator().manual_seed(seed + 100)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
                if isinstance(m, nn.ConvTranspose2d):  # inputs reaching one output pixel
                    fan_in = m.in_channels * (m.kernel_size[0] // m.stride[0]) \
                        * (m.kernel_size[1] // m.stride[1])
                else:
                    fan_in = m.weight[0].numel()
                nn.init.normal_(m.weight, std=(1.0 / fan_in) ** 0.5)
                nn.init.normal_(m.bias, std=0.1)
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                c = m.num_features
                m.weight.copy_(1 + 0.1 * torch.randn(c, generator=g))
                m.bias.copy_(0.1 * torch.randn(c, generator=g))
                m.running_mean.copy_(0.1 * torch.randn(c, generator=g))
                m.running_var.copy_(0.5 + torch.rand(c, generator=g))
    return model.float().eval()


def make_inputs(seed=1):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(N, NZ, generator=g)
    c_cat = F.one_hot(torch.tensor([3, 0, 7, 9]), NCAT).float()
    c_cont = torch.rand(N, NCONT, generator=g) * 2 - 1
    return z.float().contiguous(), c_cat.contiguous(), c_cont.float().contiguous()


def run(model, z, c_cat, c_cont):
    x = model.generate(z, c_cat, c_cont)
    d, q_logits, q_mu = model.discriminate(x)
    lb = model.mi_lower_bound(x, c_cat, c_cont)
    return x, d, q_logits, q_mu, lb


def main():
    model = make_model()
    z, c_cat, c_cont = make_inputs()
    with torch.no_grad():
        x, d, q_logits, q_mu, lb = run(model, z, c_cat, c_cont)
        ref = run(model.double(), z.double(), c_cat.double(), c_cont.double())
        model.float()
    err = max((a.double() - b).abs().max().item()
              for a, b in zip((x, d, q_logits, q_mu, lb), ref))
    assert x.shape == (N, 1, 28, 28) and d.shape == (N,) and lb.shape == (N,)
    nnc_ref.write_golden(HERE, model, [
        ("generate", {"z": z, "c_cat": c_cat, "c_cont": c_cont}, {"x": x}),
        ("discriminate", {"x": x}, {"d": d, "q_logits": q_logits, "q_mu": q_mu}),
        ("mi_lower_bound", {"x": x, "c_cat": c_cat, "c_cont": c_cont}, {"lb": lb}),
    ])
    print(f"infogan: wrote golden to {HERE} (x in [{x.min():.3g}, {x.max():.3g}], "
          f"d = {[round(v, 3) for v in d.tolist()]}, lb = {[round(v, 3) for v in lb.tolist()]}, "
          f"float32 vs float64 {err:.2g})")


if __name__ == "__main__":
    main()
