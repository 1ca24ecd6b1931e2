#!/usr/bin/python3
"""PyTorch reference for the memory-augmented neural network (MANN) of Santoro, Bartunov,
Botvinick, Wierstra & Lillicrap, "One-shot learning with memory-augmented neural networks"
(ICML 2016), written from the paper's description: an LSTM controller, an external memory
read by cosine-similarity content addressing, and least-recently-used access (LRUA) writes.

Sizes: X = 20 (input features), C = 5 (classes), H = 32 (controller), N = 16 memory slots of
M = 8, R = 2 read heads, usage decay GAMMA = 0.95, cosine eps EPS = 1e-8.
Batch B = 2 and episode length T = 10 in the golden data (B, T symbolic in the model).

Module structure and state_dict names (all F32):

    controller = nn.LSTMCell(X + C, H)   controller.weight_ih [4H, X+C]   controller.weight_hh [4H, H]
                                         controller.bias_ih [4H]          controller.bias_hh [4H]
    key        = nn.Linear(H, R*M)       key.weight [R*M, H]    key.bias [R*M]
    alpha      = nn.Linear(H, R)         alpha.weight [R, H]    alpha.bias [R]
    out        = nn.Linear(H + R*M, C)   out.weight [C, H+R*M]  out.bias [C]

State (per sample): h, c [H] (controller), memory [N, M], usage [N], w_read [R, N]
(the previous step's read weights).  Initial state of `episode`: h = c = 0,
memory = 1e-6 everywhere (MEM_INIT), usage = 0, w_read = 0, and y_prev = 0 (no label before
the first step).

One step t (x_t [B, X], y_prev [B, C] = the one-hot label of step t-1):

    h, c   = controller(cat([x_t, y_prev], -1), (h, c))          # torch LSTMCell, gates i,f,g,o
    k      = key(h).reshape(B, R, M)                             # one key per head (no activation)
    a      = sigmoid(alpha(h))                                   # [B, R]
    # LRUA, from the previous state (usage, w_read):
    idx    = the indices of the R smallest entries of usage, ascending by usage, ties: lowest
             index first (torch.topk(usage, R, largest=False) with stable ties)    # [B, R]
    w_lu   = one_hot(idx, N)          # [B, R, N]: head j writes to the j-th least-used slot
    lu     = w_lu[:, 0] = one_hot(argmin(usage, -1), N)          # the single least-used slot
    memory = memory * (1 - lu)[:, :, None]                       # zeroed before writing
    w_w    = a[:, :, None] * w_read + (1 - a[:, :, None]) * w_lu                 # [B, R, N]
    memory = memory + w_w^T @ k            i.e. memory[b,n,:] += sum_r w_w[b,r,n] * k[b,r,:]
    # read from the written memory, content addressing:
    K[b,r,n] = (k[b,r]·memory[b,n]) / (max(|k[b,r]|, EPS) * max(|memory[b,n]|, EPS))
    w_r    = softmax(K, dim=-1)                                  # over the N slots [B, R, N]
    r      = w_r @ memory                                        # [B, R, M]
    usage  = GAMMA * usage + sum_r w_r + sum_r w_w               # [B, N]
    w_read = w_r
    logits = out(cat([h, r.reshape(B, R*M)], -1))               # [B, C]

(|v| is the Euclidean norm over M.  argmin / "R smallest" use the usage *before* this step's
update, i.e. u(t-1), as the paper's w_lu(t-1).  The R-smallest selection is torch.topk(-usage,
R) with stable ties -- implemented below by a stable sort, so ties go to the lowest index;
the very first step has usage = 0, so head j writes to slot j and slot 0 is zeroed.  The
paper's w_lu marks the n smallest usages; with n = R we give each head its own one of them,
so that two heads do not write the same content into the same slots.)

Entries (golden files <entry>.in.<arg>.npy / <entry>.out.<name>.npy):

    episode(x: f32[B, T, X], y: f32[B, T, C]) -> (logits: f32[B, T, C])
        y is the one-hot label of every step; step t is fed y_prev = y[:, t-1] (0 for t = 0)
    step(x_t: f32[B, X], y_prev: f32[B, C], h: f32[B, H], c: f32[B, H], memory: f32[B, N, M],
         usage: f32[B, N], w_read: f32[B, R, N])
      -> (logits: f32[B, C], h_next: f32[B, H], c_next: f32[B, H], memory_next: f32[B, N, M],
          usage_next: f32[B, N], w_read_next: f32[B, R, N])

The step golden is step STEP_T = 6 of the episode: its inputs are x[:, 6], y[:, 5] and the
state after steps 0..5 of `episode`, and its logits equal episode's logits[:, 6] exactly.
Calling `step` T times from the initial state above reproduces `episode` (checked here, bit
for bit, since both run the same torch code).  The LRU selections are checked to be robust:
the smallest gap between consecutive ones of the R+1 smallest usages, over the steps after
the first, is printed and asserted > 1e-3 unless it is
exactly 0, so float rounding cannot change which slots are chosen.  Exact ties do occur: slots
never written keep the identical initial content MEM_INIT, so they get bit-identical read
weights and usage -- they must be computed identically per slot and broken by the lowest index.

Weights: PyTorch's default initialisation (seed 0); x ~ N(0, 1); labels: random classes.
"""
import os
import sys

import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import nnc_ref  # noqa: E402

X, C, H, N, M, R = 20, 5, 32, 16, 8, 2
GAMMA, EPS, MEM_INIT = 0.95, 1e-8, 1e-6
B, T, STEP_T = 2, 10, 6


class MANN(nn.Module):
    def __init__(self):
        super().__init__()
        self.controller = nn.LSTMCell(X + C, H)
        self.key = nn.Linear(H, R * M)
        self.alpha = nn.Linear(H, R)
        self.out = nn.Linear(H + R * M, C)

    @staticmethod
    def initial_state(b):
        return (torch.zeros(b, H), torch.zeros(b, H), torch.full((b, N, M), MEM_INIT),
                torch.zeros(b, N), torch.zeros(b, R, N))

    def step(self, x_t, y_prev, h, c, memory, usage, w_read, gaps=None):
        b = x_t.shape[0]
        h, c = self.controller(torch.cat([x_t, y_prev], -1), (h, c))
        k = self.key(h).reshape(b, R, M)
        a = torch.sigmoid(self.alpha(h))[:, :, None]
        order = torch.sort(usage, dim=-1, stable=True).indices      # ties: lowest index first
        if gaps is not None:
            su = torch.sort(usage, dim=-1).values
            d = (su[:, 1:R + 1] - su[:, :R]).reshape(-1)
            gaps.append(d)     # 0 = an exact tie (slots never addressed apart), else must be wide
        w_lu = torch.zeros(b, R, N).scatter_(2, order[:, :R, None], 1.0)   # head j: j-th least used
        lu = w_lu[:, 0]                                                    # the least used slot
        memory = memory * (1 - lu)[:, :, None]
        w_w = a * w_read + (1 - a) * w_lu
        memory = memory + torch.bmm(w_w.transpose(1, 2), k)
        kn = torch.clamp(torch.linalg.vector_norm(k, dim=-1), min=EPS)           # [B, R]
        mn = torch.clamp(torch.linalg.vector_norm(memory, dim=-1), min=EPS)      # [B, N]
        K = torch.bmm(k, memory.transpose(1, 2)) / (kn[:, :, None] * mn[:, None, :])
        w_r = torch.softmax(K, dim=-1)
        r = torch.bmm(w_r, memory)
        usage = GAMMA * usage + w_r.sum(1) + w_w.sum(1)
        logits = self.out(torch.cat([h, r.reshape(b, R * M)], -1))
        return logits, h, c, memory, usage, w_r

    def episode(self, x, y, keep_states=False, gaps=None):
        b, t_len = x.shape[0], x.shape[1]
        state = self.initial_state(b)
        y_prev = torch.zeros(b, C)
        logits, states = [], [state]
        for t in range(t_len):
            lg, *state = self.step(x[:, t], y_prev, *state, gaps=gaps)
            state = tuple(state)
            states.append(state)
            logits.append(lg)
            y_prev = y[:, t]
        out = torch.stack(logits, 1)
        return (out, states) if keep_states else out


def main():
    torch.manual_seed(0)
    model = MANN().float().eval()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(B, T, X, generator=g)
    labels = torch.randint(0, C, (B, T), generator=g)
    y = torch.nn.functional.one_hot(labels, C).float()
    gaps = []
    with torch.no_grad():
        logits, states = model.episode(x, y, keep_states=True, gaps=gaps)
        # step by step from the initial state reproduces the episode exactly
        state = model.initial_state(B)
        for t in range(T):
            y_prev = y[:, t - 1] if t > 0 else torch.zeros(B, C)
            lg, *state = model.step(x[:, t], y_prev, *state)
            assert torch.equal(lg, logits[:, t])
        s = states[STEP_T]
        step_in = {"x_t": x[:, STEP_T], "y_prev": y[:, STEP_T - 1], "h": s[0], "c": s[1],
                   "memory": s[2], "usage": s[3], "w_read": s[4]}
        out = model.step(*step_in.values())
    assert torch.equal(out[0], logits[:, STEP_T])
    d = torch.cat(gaps[1:])
    ties = int((d == 0).sum())
    gap = d[d > 0].min().item()
    assert gap > 1e-3, f"LRU selection too close to a tie: {gap}"
    nnc_ref.write_golden(HERE, model, [
        ("episode", {"x": x, "y": y}, {"logits": logits}),
        ("step", step_in, dict(zip(["logits", "h_next", "c_next", "memory_next", "usage_next",
                                    "w_read_next"], out))),
    ])
    print(f"mann: wrote golden to {HERE} (smallest LRU usage gap {gap:.3g}; {ties} exact ties, "
          f"|logits| max {logits.abs().max().item():.3g})")


if __name__ == "__main__":
    main()
