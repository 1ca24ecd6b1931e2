#!/usr/bin/python3
"""PyTorch reference for the temperature-sampled LSTM language model (Caccia, Caccia, Fedus,
Larochelle, Pineau & Charlin, "Language GANs falling short", ICLR 2020: a maximum-likelihood
language model sampled with a softmax temperature T spans the quality/diversity trade-off).

The weights are the trained character-level model of examples/lm_data (train_lm.py; V = 84
characters, vocab.json), copied here as weights.safetensors.

Module structure and state_dict names (all F32):

    embed = nn.Embedding(V, E)                  embed.weight       [V, E]       V = 84, E = 32
    lstm  = nn.LSTM(E, H, batch_first=True)     lstm.weight_ih_l0  [4H, E]      H = 128
                                                lstm.weight_hh_l0  [4H, H]
                                                lstm.bias_ih_l0    [4H]
                                                lstm.bias_hh_l0    [4H]
    proj  = nn.Linear(H, V)                     proj.weight [V, H], proj.bias [V]

LSTM (PyTorch's gate order i, f, g, o), zero initial state:
    gates = x_t @ weight_ih^T + bias_ih + h @ weight_hh^T + bias_hh ; i, f, g, o = split(gates, 4)
    c = sigmoid(f) * c + sigmoid(i) * tanh(g) ;  h = sigmoid(o) * tanh(c)

Entries (golden files <entry>.in.<arg>.npy / <entry>.out.<name>.npy):

    logits(tokens: i64[B, T]) -> (logits: f32[B, T, V])                  B = 2, T = 48
        teacher-forced: logits[:, t] = proj(h_t), h_t after reading tokens[:, 0..t] from the
        zero state.  tokens are two windows of the held-out text.

    softmax_t(logits: f32[B, V], temperature: f32[]) -> (probs: f32[B, V])   B = 4
        probs = softmax(logits / temperature, dim=-1); the temperature is a run-time f32
        scalar input (golden: 0.7); logits are real model logits scaled by 3 (sharp rows).

    sample(prefix: i64[B, P], gumbel: f32[B, L, V], temperature: f32[]) -> (tokens: i64[B, L])
        B = 4, P = 6, L = 40, golden temperature 0.8.  Autoregressive Gumbel-max sampling:
            run the LSTM over prefix[:, 0..P-1] from the zero state; z = proj(h) of the LAST
            prefix position (the logits predicting the character after the prefix)
            for j in 0..L-1:
                s_j = argmax_v (z[:, v] / temperature + gumbel[:, j, v])   (ties: lowest v)
                tokens[:, j] = s_j
                (h, c) = LSTM step on embed(s_j) from (h, c);  z = proj(h)
        (The last step's update is not needed.)  The sampled tokens are returned as int64,
        as torch.argmax gives them.  gumbel =
        -log(-log(u)), u ~ U(0, 1) (seeded).  The smallest gap between the largest and second
        largest value of z / temperature + gumbel over all steps is printed and asserted
        > 1e-3, so float rounding cannot change a sampled token.  Dividing by the temperature
        (not multiplying by its reciprocal) is what the golden does; with the gap above either
        gives the same tokens.

Categorical sampling with Gumbel noise g: argmax(z / T + g) is distributed as softmax(z / T).
"""
import os
import sys

import numpy as np
import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
sys.path.insert(0, os.path.dirname(HERE))
import nnc_ref  # noqa: E402

LM_DATA = os.path.join(ROOT, "examples", "lm_data")
E, H = 32, 128


class CharLM(nn.Module):
    def __init__(self, V):
        super().__init__()
        self.embed = nn.Embedding(V, E)
        self.lstm = nn.LSTM(E, H, batch_first=True)
        self.proj = nn.Linear(H, V)

    def logits(self, tokens):
        y, _ = self.lstm(self.embed(tokens))
        return self.proj(y)

    def sample(self, prefix, gumbel, temperature, gaps=None):
        y, state = self.lstm(self.embed(prefix))
        z = self.proj(y[:, -1])
        out = []
        for j in range(gumbel.shape[1]):
            v = z / temperature + gumbel[:, j]
            if gaps is not None:
                top = torch.topk(v, 2, dim=-1).values
                gaps.append((top[:, 0] - top[:, 1]).min().item())
            s = torch.argmax(v, dim=-1)
            out.append(s)
            y, state = self.lstm(self.embed(s)[:, None], state)
            z = self.proj(y[:, 0])
        return torch.stack(out, 1)


def encode(text, vocab):
    stoi = {c: int(i) for i, c in vocab.items()}
    return torch.tensor([stoi[c] for c in text], dtype=torch.long)


def main():
    import json
    with open(os.path.join(LM_DATA, "vocab.json")) as f:
        vocab = json.load(f)
    V = len(vocab)
    model = nnc_ref.load_state_dict(CharLM(V), os.path.join(LM_DATA, "weights.safetensors"))
    model = model.float().eval()
    with open(os.path.join(LM_DATA, "heldout.txt")) as f:
        held = encode(f.read(), vocab)
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        tokens = torch.stack([held[100:148], held[2000:2048]])
        logits = model.logits(tokens)
        sm_logits = 3 * logits[:, [10, 47]].reshape(4, V)
        temp_sm = torch.tensor(0.7)
        probs = torch.softmax(sm_logits / temp_sm, dim=-1)
        B, P, L = 4, 6, 40
        starts = [0, 500, 3000, 6000]
        prefix = torch.stack([held[s:s + P] for s in starts])
        u = torch.rand(B, L, V, generator=g).clamp(1e-12, 1 - 1e-7)
        gumbel = -torch.log(-torch.log(u))
        temp = torch.tensor(0.8)
        gaps = []
        samples = model.sample(prefix, gumbel, temp, gaps)
    gap = min(gaps)
    assert gap > 1e-3, f"a sampled token is too close to a tie: {gap}"
    nnc_ref.write_golden(HERE, model, [
        ("logits", {"tokens": tokens}, {"logits": logits}),
        ("softmax_t", {"logits": sm_logits, "temperature": temp_sm}, {"probs": probs}),
        ("sample", {"prefix": prefix, "gumbel": gumbel, "temperature": temp},
         {"tokens": samples}),
    ])
    text = ["".join(vocab[str(int(i))] for i in row) for row in samples.tolist()]
    pre = ["".join(vocab[str(int(i))] for i in row) for row in prefix.tolist()]
    print(f"lm_temperature: wrote golden to {HERE} (smallest Gumbel-max gap {gap:.3g})")
    for p, t in zip(pre, text):
        print(f"  {p!r} -> {t!r}")


if __name__ == "__main__":
    main()
