# walkthrough_numpy.py — step 1 of the README walkthrough for machines without PyTorch
# (tests/docs/test_walkthrough.py runs it as train.py then): the same files as train.py —
# tiny.safetensors with the Tiny model's state_dict names and shapes, and expected.npy, the
# model's log-probabilities on the four test points — from random weights and NumPy.
import numpy as np
import nnc

rng = np.random.default_rng(0)
w = {"body.0.weight": rng.normal(0, 0.7, (16, 2)), "body.0.bias": rng.normal(0, 0.2, 16),
     "body.2.weight": rng.normal(0, 0.25, (3, 16)), "body.2.bias": rng.normal(0, 0.2, 3)}
w = {k: v.astype(np.float32) for k, v in w.items()}
nnc.save_safetensors(w, "tiny.safetensors")

x = np.array([[0.5, -1.0], [1.0, 1.0], [-2.0, 0.25], [-0.5, -0.5]])
h = np.tanh(x @ w["body.0.weight"].T.astype(np.float64) + w["body.0.bias"])
z = h @ w["body.2.weight"].T.astype(np.float64) + w["body.2.bias"]
logp = z - z.max(axis=1, keepdims=True)
logp -= np.log(np.exp(logp).sum(axis=1, keepdims=True))
np.save("expected.npy", logp.astype(np.float32))
print("no PyTorch here: random weights, NumPy reference")
