#!/usr/bin/python3
"""PyTorch reference for the fast-weights RNN of Ba, Hinton, Mnih, Leibo & Ionescu, "Using Fast
Weights to Attend to the Recent Past" (NIPS 2016), written from the paper's description
(layer-normalized variant, ReLU, S inner iterations, classifier on the last hidden state).

Sizes: X = 12 (input features), H = 32 (hidden), CLASSES = 10, S = 1 inner iteration,
decay LAMBDA = 0.95, fast learning rate ETA = 0.5, layer-norm eps 1e-5.
Batch B = 3 and length T = 8 in the golden data (B, T symbolic in the model).

Module structure and state_dict names (all F32):

    W   = nn.Linear(H, H, bias=False)   W.weight [H, H]       (slow recurrent weights)
    C   = nn.Linear(X, H)               C.weight [H, X], C.bias [H]   (input weights + bias)
    ln  = nn.LayerNorm(H)               ln.weight [H], ln.bias [H]    (gain, bias; eps 1e-5)
    out = nn.Linear(H, CLASSES)         out.weight [CLASSES, H], out.bias [CLASSES]

State per sample: h [H] and the fast-weight matrix A [H, H]; both start at 0.
One step (x_t [B, X]; h [B, H]; A [B, H, H]):

    z      = W(h) + C(x_t)                                 # the "sustained" input, [B, H]
    hs     = relu(z)                                       # h_0(t+1), preliminary (no LN)
    repeat S times:
        hs = relu(ln(z + (A @ hs[:, :, None])[:, :, 0]))   # h_{s+1} = f(LN[Wh + Cx + A h_s])
    h_next = hs
    A_next = LAMBDA * A + ETA * h_next[:, :, None] * h_next[:, None, :]     # outer product
    logits = out(h_next)

Note the order: the inner loop uses A(t) (before the update), then A is updated with the new
hidden state, as in the paper's A(t+1) = lambda A(t) + eta h(t+1) h(t+1)^T (it uses h(t+1), so
A's update comes after the inner loop).  `A @ hs` is the batched matrix-vector product
sum_j A[b, i, j] hs[b, j].

Entries (golden files <entry>.in.<arg>.npy / <entry>.out.<name>.npy):

    classify(x: f32[B, T, X]) -> (logits: f32[B, CLASSES])
        run T steps from h = 0, A = 0 and classify the last hidden state
    step(x_t: f32[B, X], h: f32[B, H], A: f32[B, H, H])
      -> (logits: f32[B, CLASSES], h_next: f32[B, H], A_next: f32[B, H, H])
        logits = out(h_next), so after the last step they equal classify's logits

The step golden is step STEP_T = 5 of classify's sequence (inputs x[:, 5] and the state after
steps 0..4).  Calling `step` T times from (0, 0) reproduces `classify` exactly (checked here).

Weights: PyTorch's default initialisation (seed 0) except the LayerNorm gain 1 + N(0, 0.1^2)
and bias N(0, 0.1^2), so that they matter; x ~ N(0, 1).
"""
import os
import sys

import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import nnc_ref  # noqa: E402

X, H, CLASSES, S = 12, 32, 10, 1
LAMBDA, ETA = 0.95, 0.5
B, T, STEP_T = 3, 8, 5


class FastWeightsRNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.W = nn.Linear(H, H, bias=False)
        self.C = nn.Linear(X, H)
        self.ln = nn.LayerNorm(H)
        self.out = nn.Linear(H, CLASSES)

    def step(self, x_t, h, A):
        z = self.W(h) + self.C(x_t)
        hs = torch.relu(z)
        for _ in range(S):
            hs = torch.relu(self.ln(z + torch.bmm(A, hs[:, :, None])[:, :, 0]))
        A = LAMBDA * A + ETA * hs[:, :, None] * hs[:, None, :]
        return self.out(hs), hs, A

    def classify(self, x, keep_states=False):
        b = x.shape[0]
        h, A = torch.zeros(b, H), torch.zeros(b, H, H)
        states = [(h, A)]
        for t in range(x.shape[1]):
            logits, h, A = self.step(x[:, t], h, A)
            states.append((h, A))
        return (logits, states) if keep_states else logits


def main():
    torch.manual_seed(0)
    model = FastWeightsRNN()
    with torch.no_grad():
        model.ln.weight.copy_(1 + 0.1 * torch.randn(H))
        model.ln.bias.copy_(0.1 * torch.randn(H))
    model = model.float().eval()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(B, T, X, generator=g)
    with torch.no_grad():
        logits, states = model.classify(x, keep_states=True)
        h, A = states[STEP_T]
        step_in = {"x_t": x[:, STEP_T], "h": h, "A": A}
        out = model.step(*step_in.values())
        h, A = torch.zeros(B, H), torch.zeros(B, H, H)
        for t in range(T):
            lg, h, A = model.step(x[:, t], h, A)
        assert torch.equal(lg, logits)
    assert torch.equal(out[1], states[STEP_T + 1][0])
    nnc_ref.write_golden(HERE, model, [
        ("classify", {"x": x}, {"logits": logits}),
        ("step", step_in, dict(zip(["logits", "h_next", "A_next"], out))),
    ])
    print(f"fast_weights: wrote golden to {HERE} (|logits| max {logits.abs().max().item():.3g}, "
          f"|A| max {states[-1][1].abs().max().item():.3g})")


if __name__ == "__main__":
    main()
