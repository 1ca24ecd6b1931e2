#!/usr/bin/python3
"""Train the small character-level LSTM language model of examples/lm_temperature.nn
(Caccia et al., "Language GANs falling short", ICLR 2020: a maximum-likelihood LM whose
softmax temperature trades sample quality against diversity).

Data: the license texts Debian ships in /usr/share/common-licenses (each distinct file once,
symlinks resolved), normalized (tab -> space, form feed -> newline, runs of spaces -> one
space, leading spaces of a line removed).  Apache-2.0 is held out (test text, heldout.txt);
all the others are the training text.

Model (module and state_dict names are what lm_temperature.nn must use):

    embed = nn.Embedding(V, E)                     embed.weight            [V, E]
    lstm  = nn.LSTM(E, H, batch_first=True)        lstm.weight_ih_l0       [4H, E]
                                                   lstm.weight_hh_l0       [4H, H]
                                                   lstm.bias_ih_l0         [4H]
                                                   lstm.bias_hh_l0         [4H]
    proj  = nn.Linear(H, V)                        proj.weight [V, H], proj.bias [V]

    logits[b, t] = proj(h_t),  h_t = LSTM(embed(tokens[b, :t+1]))  (zero initial state)

V = 84 (vocab.json: {"<id>": "<char>"}; ids are the characters sorted by code point),
E = 32, H = 128.  Training: next-character cross-entropy on random windows of 129 characters
(batch 32), Adam (lr 3e-3, cosine decay to 3e-4 over the run), gradient-norm clip 1.0,
STEPS steps, torch seed 0, one thread (deterministic: rerunning gives the same weights bit for
bit on the same machine / torch build).

Writes examples/lm_data/{weights.safetensors, vocab.json, heldout.txt} (or into $LM_OUT) and
prints the losses; $LM_STEPS overrides STEPS.  Run time and final losses are recorded in
examples/lm_data/README.md.

    /usr/bin/python3 examples/lm_data/train_lm.py
"""
import json
import math
import os
import re
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "golden"))
import nnc_ref  # noqa: E402

LICENSES = "/usr/share/common-licenses"
HELDOUT = "Apache-2.0"
E, H = 32, 128
SEQ, BATCH = 128, 32
STEPS = int(os.environ.get("LM_STEPS", "1200"))
OUT = os.environ.get("LM_OUT", HERE)   # where to write (tests of determinism use another dir)
SEED = 0


class CharLM(nn.Module):
    def __init__(self, V):
        super().__init__()
        self.embed = nn.Embedding(V, E)
        self.lstm = nn.LSTM(E, H, batch_first=True)
        self.proj = nn.Linear(H, V)

    def forward(self, tokens, state=None):
        y, state = self.lstm(self.embed(tokens), state)
        return self.proj(y), state


def normalize(text):
    text = text.replace("\t", " ").replace("\x0c", "\n")
    text = re.sub(r" +", " ", text)
    text = re.sub(r"\n ", "\n", text)
    return text


def load_texts():
    files = sorted({os.path.realpath(os.path.join(LICENSES, f)) for f in os.listdir(LICENSES)})
    train, held = [], None
    for p in files:
        with open(p, encoding="utf-8") as f:
            t = normalize(f.read())
        if os.path.basename(p) == HELDOUT:
            held = t
        else:
            train.append(t)
    return "\n".join(train), held


def main():
    torch.set_num_threads(1)
    torch.manual_seed(SEED)
    train_text, held_text = load_texts()
    chars = sorted(set(train_text) | set(held_text))
    stoi = {c: i for i, c in enumerate(chars)}
    V = len(chars)
    train = torch.tensor([stoi[c] for c in train_text], dtype=torch.long)
    held = torch.tensor([stoi[c] for c in held_text], dtype=torch.long)
    model = CharLM(V)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(SEED)

    def held_loss():
        model.eval()
        with torch.no_grad():
            logits, _ = model(held[None, :-1])
            loss = F.cross_entropy(logits[0], held[1:]).item()
        model.train()
        return loss

    t0 = time.time()
    run = None
    for step in range(STEPS):
        lr = 3e-4 + 0.5 * (3e-3 - 3e-4) * (1 + math.cos(math.pi * step / STEPS))
        for pg in opt.param_groups:
            pg["lr"] = lr
        starts = torch.randint(0, len(train) - SEQ - 1, (BATCH,), generator=g)
        batch = torch.stack([train[s:s + SEQ + 1] for s in starts.tolist()])
        logits, _ = model(batch[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, V), batch[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        run = loss.item() if run is None else 0.98 * run + 0.02 * loss.item()
        if step % 250 == 0 or step == STEPS - 1:
            print(f"step {step:5d}  train {run:.3f}  held-out {held_loss():.3f}  "
                  f"({time.time() - t0:.0f} s)", flush=True)
    model.eval()
    with torch.no_grad():
        # the full training text's loss, in chunks (teacher-forced, fresh state per chunk)
        n = (len(train) - 1) // 1024 * 1024
        x = train[:n].reshape(-1, 1024)
        y = train[1:n + 1].reshape(-1, 1024)
        logits, _ = model(x)
        train_loss = F.cross_entropy(logits.reshape(-1, V), y.reshape(-1)).item()
    hl = held_loss()
    print(f"final: train loss {train_loss:.4f} nats/char, held-out loss {hl:.4f} nats/char "
          f"({hl / math.log(2):.3f} bits/char); V={V}; {time.time() - t0:.0f} s")
    nnc_ref.save_safetensors(os.path.join(OUT, "weights.safetensors"), model.state_dict())
    with open(os.path.join(OUT, "vocab.json"), "w") as f:
        json.dump({str(i): c for i, c in enumerate(chars)}, f, indent=0, ensure_ascii=True)
        f.write("\n")
    with open(os.path.join(OUT, "heldout.txt"), "w") as f:
        f.write(held_text)


if __name__ == "__main__":
    main()
