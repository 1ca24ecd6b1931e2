#!/usr/bin/python3
"""Temperature sweep of the character LSTM language model (examples/lm_temperature.nn):
the quality / diversity trade-off of Caccia et al., "Language GANs falling short" (ICLR 2020).

For each temperature T, draw N samples of L characters from the model with Gumbel-max
sampling -- the `sample(prefix, gumbel, temperature)` entry of lm_temperature.nn: every sample
starts from the prefix "\\n" (a new line), and the SAME Gumbel noise (seeded) is used at every
temperature, so the curve is smooth -- and report

  quality    BLEU-4 of each sample against the held-out text (examples/lm_data/heldout.txt,
             the Apache-2.0 license, not seen in training), averaged over the samples;
  diversity  self-BLEU-4: BLEU-4 of each sample against the other N-1 samples, averaged
             (lower = more diverse); and distinct-4, the fraction of distinct character
             4-grams among all the samples' 4-grams (higher = more diverse).

BLEU here is on characters: modified n-gram precisions p_1..p_4 (a sample's n-gram counts
clipped by the largest count of that n-gram in any one reference), geometric mean, no brevity
penalty (every sample has the same length L); a zero numerator is replaced by 0.1 (NLTK's
smoothing method 1).  References for quality: the held-out text's paragraphs (split at blank
lines).  Low temperatures give high BLEU (license-like text) and high self-BLEU (the samples
repeat each other); high temperatures the opposite -- the paper's trade-off.

Samplers:
    (default)          the PyTorch reference (tests/golden/lm_temperature/reference.py's model
                       and recurrence) with examples/lm_data/weights.safetensors
    --nnc FILE.so      a library compiled by `nnc examples/lm_temperature.nn -o FILE.so
                       --weights examples/lm_data/weights.safetensors`, called through the
                       Python package (python/nnc): sample(prefix i64[B, P], gumbel f32[B, L, V],
                       temperature f32[]) -> tokens f32[B, L]
    --nnc FILE.nn      the same, JIT-compiled in process (nnc.compile)

    /usr/bin/python3 examples/lm_temperature_sweep.py [--nnc PATH] [--samples 64]
        [--length 100] [--temps 0.5,0.7,1.0,1.3,2.0] [--seed 0]
"""
import argparse
import json
import math
import os
import sys
from collections import Counter

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DATA = os.path.join(HERE, "lm_data")


# ---------------------------------------------------------------------------------------------
# samplers: callable(prefix int64 [B, P], gumbel float32 [B, L, V], temperature float)
#           -> tokens [B, L] (integral values)

def torch_sampler():
    import torch
    sys.path.insert(0, os.path.join(ROOT, "tests", "golden"))
    sys.path.insert(0, os.path.join(ROOT, "tests", "golden", "lm_temperature"))
    import nnc_ref
    from reference import CharLM
    with open(os.path.join(DATA, "vocab.json")) as f:
        V = len(json.load(f))
    model = nnc_ref.load_state_dict(CharLM(V), os.path.join(DATA, "weights.safetensors")).eval()

    def sample(prefix, gumbel, temperature):
        with torch.no_grad():
            return model.sample(torch.from_numpy(prefix), torch.from_numpy(gumbel),
                                torch.tensor(temperature, dtype=torch.float32)).numpy()
    return sample


def nnc_sampler(path):
    sys.path.insert(0, os.path.join(ROOT, "python"))
    import nnc
    weights = os.path.join(DATA, "weights.safetensors")
    m = nnc.compile(path, weights=weights) if path.endswith(".nn") else nnc.load(path)

    def sample(prefix, gumbel, temperature):
        return np.asarray(m.sample(prefix, gumbel, np.float32(temperature)))
    return sample


# ---------------------------------------------------------------------------------------------
# BLEU on characters

def ngrams(s, n):
    return Counter(s[i:i + n] for i in range(len(s) - n + 1))


def max_counts(refs, n):
    out = Counter()
    for r in refs:
        for g, c in ngrams(r, n).items():
            if c > out[g]:
                out[g] = c
    return out


def bleu(hyp, refmax, N=4):
    """refmax[n-1]: n-gram -> largest count in any one reference."""
    logs = []
    for n in range(1, N + 1):
        h = ngrams(hyp, n)
        total = sum(h.values())
        match = sum(min(c, refmax[n - 1].get(g, 0)) for g, c in h.items())
        logs.append(math.log((match if match > 0 else 0.1) / total))
    return math.exp(sum(logs) / N)


def self_bleu(samples, N=4):
    counts = [[ngrams(s, n) for n in range(1, N + 1)] for s in samples]
    scores = []
    for i, s in enumerate(samples):
        refmax = []
        for n in range(N):
            m = Counter()
            for j in range(len(samples)):
                if j != i:
                    for g, c in counts[j][n].items():
                        if c > m[g]:
                            m[g] = c
            refmax.append(m)
        scores.append(bleu(s, refmax, N))
    return float(np.mean(scores))


def distinct(samples, n=4):
    grams = [s[i:i + n] for s in samples for i in range(len(s) - n + 1)]
    return len(set(grams)) / max(1, len(grams))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--nnc", help="a compiled lm_temperature .so (or the .nn to JIT)")
    ap.add_argument("--samples", type=int, default=64)
    ap.add_argument("--length", type=int, default=100)
    ap.add_argument("--temps", default="0.5,0.7,1.0,1.3,2.0")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    with open(os.path.join(DATA, "vocab.json")) as f:
        vocab = {int(k): v for k, v in json.load(f).items()}
    stoi = {c: i for i, c in vocab.items()}
    V = len(vocab)
    with open(os.path.join(DATA, "heldout.txt")) as f:
        held = f.read()
    refs = [p.strip() for p in held.split("\n\n") if p.strip()]
    refmax = [max_counts(refs, n) for n in range(1, 5)]

    sampler = nnc_sampler(args.nnc) if args.nnc else torch_sampler()
    B, L = args.samples, args.length
    prefix = np.full((B, 1), stoi["\n"], dtype=np.int64)
    u = np.random.default_rng(args.seed).random((B, L, V))
    gumbel = (-np.log(-np.log(np.clip(u, 1e-12, 1 - 1e-7)))).astype(np.float32)

    which = "nnc " + args.nnc if args.nnc else "PyTorch reference"
    print(f"# {B} samples of {L} characters per temperature ({which}; noise seed {args.seed})")
    print()
    print("| temperature | BLEU-4 vs held-out (quality, ↑) | self-BLEU-4 (↓ = diverse) "
          "| distinct-4 (↑ = diverse) | sample |")
    print("|---|---|---|---|---|")
    for T in [float(t) for t in args.temps.split(",")]:
        tok = sampler(prefix, gumbel, T)
        samples = ["".join(vocab[int(i)] for i in row) for row in np.asarray(tok)]
        q = float(np.mean([bleu(s, refmax) for s in samples]))
        sb = self_bleu(samples)
        d = distinct(samples)
        ex = samples[0][:60].replace("\n", "⏎").replace("|", "\\|")
        print(f"| {T:g} | {q:.3f} | {sb:.3f} | {d:.3f} | `{ex}` |", flush=True)


if __name__ == "__main__":
    main()
