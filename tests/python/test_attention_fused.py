"""Fused attention (issue 17, item 3): attention without the weights over symbolic lengths
(or large static ones) is one ATTENTION op, FlashAttention's blocks, that never writes the
[L, S] scores to memory, so the sequence lengths may be symbolic, even one symbol for both
(self-attention over T).  Against PyTorch with unchanged state_dicts: MultiheadAttention
(batch_first both ways, causal, key padding, float and boolean attn_mask), a two-layer
TransformerEncoder (norm_first both ways, gelu), a TransformerEncoderLayer with key padding,
scaled_dot_product_attention with L != S, causal, broadcast float and boolean masks, head dims
1 and 256, NaN propagation and rows every key of which is masked; lengths 1 to 300 (across the
kernel's 64-query and 256-key blocks) from one compiled model, JIT and AOT, 1, 2 and 3 threads,
bit-identical across thread counts and between JIT and AOT."""
import os
import subprocess
import unittest

import numpy as np

import nnc
from support import ROOT, TempDirCase, assert_close, assert_same_everywhere, compile_so, needs_torch, torch_or_none, write_model

E, H = 16, 4
MODEL = f"""
mha = MultiheadAttention({E}, {H})
mha_bf = MultiheadAttention({E}, {H}, batch_first=true)
module Stack(first) {{
  layers = Sequential(TransformerEncoderLayer({E}, {H}, 32, activation="gelu", norm_first=first, batch_first=true),
                      TransformerEncoderLayer({E}, {H}, 32, activation="gelu", norm_first=first, batch_first=true))
  fn forward(x) {{ return self.layers(x) }}
}}
post = Stack(false)
pre = Stack(true)
export self_attention(x: f32[T, B, {E}]) -> y: f32[T, B, {E}] {{
  y, w = mha(x, x, x, need_weights=false)
}}
export causal(x: f32[B, T, {E}]) -> y: f32[B, T, {E}] {{
  y, w = mha_bf(x, x, x, need_weights=false, is_causal=true)
}}
export encode(x: f32[B, T, {E}]) -> (a: f32[B, T, {E}], b: f32[B, T, {E}]) {{
  a = post(x)
  b = pre(x)
}}
export sdpa(q: f32[B, 2, L, 8], k: f32[B, 2, S, 8], v: f32[B, 2, S, 5]) -> (y: f32[B, 2, L, 5], c: f32[B, 2, L, 5]) {{
  y = scaled_dot_product_attention(q, k, v)
  c = scaled_dot_product_attention(q, k, v, is_causal=true, scale=0.3)
}}
enc = TransformerEncoderLayer({E}, {H}, 32, batch_first=true)
export padded(x: f32[B, T, {E}], pad: i64[B, T]) -> (y: f32[B, T, {E}], e: f32[B, T, {E}]) {{
  y, w = mha_bf(x, x, x, key_padding_mask=pad, need_weights=false)
  e = enc(x, src_key_padding_mask=pad)
}}
export masked(x: f32[B, T, {E}], m: f32[T, T], b: i64[T, T]) -> (y: f32[B, T, {E}], c: f32[B, T, {E}]) {{
  y, w = mha_bf(x, x, x, attn_mask=m, need_weights=false)
  c, w2 = mha_bf(x, x, x, attn_mask=b, need_weights=false, is_causal=true)
}}
export sdpa_mask(q: f32[B, 2, L, 8], k: f32[B, 2, S, 8], v: f32[B, 2, S, 5], m: f32[B, 1, L, S], n: i64[S])
    -> (y: f32[B, 2, L, 5], c: f32[B, 2, L, 5]) {{
  y = scaled_dot_product_attention(q, k, v, attn_mask=m)
  c = scaled_dot_product_attention(q, k, v, attn_mask=n, is_causal=true)
}}
export heads(q1: f32[B, 3, T, 1], k1: f32[B, 3, T, 1], v1: f32[B, 3, T, 1], q2: f32[B, 1, T, 256],
             k2: f32[B, 1, T, 256], v2: f32[B, 1, T, 256]) -> (y1: f32[B, 3, T, 1], y2: f32[B, 1, T, 256]) {{
  y1 = scaled_dot_product_attention(q1, k1, v1)
  y2 = scaled_dot_product_attention(q2, k2, v2, is_causal=true)
}}
export static_causal(q: f32[2, 2, 300, 16], k: f32[2, 2, 300, 16], v: f32[2, 2, 300, 16]) -> y: f32[2, 2, 300, 16] {{
  y = scaled_dot_product_attention(q, k, v, is_causal=true)
}}
"""


def reference(torch, q, k, v, scale=None, mask=None, causal=False):
    """softmax(q kᵀ · scale + mask) v as torch computes it (its math path; 1.x has no F.sdpa);
    causal: -inf above the diagonal"""
    tq, tk, tv = (torch.from_numpy(a) for a in (q, k, v))
    s = tq @ tk.transpose(-1, -2) * (scale if scale is not None else 1 / np.sqrt(q.shape[-1]))
    if causal:
        s = s + torch.ones(q.shape[-2], k.shape[-2]).tril().log()
    if mask is not None:
        s = s + torch.from_numpy(mask)
    return (torch.softmax(s, -1) @ tv).numpy()


@needs_torch
class FusedAttentionTest(TempDirCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        torch = torch_or_none()
        torch.manual_seed(3)
        mk = lambda first: torch.nn.TransformerEncoder(torch.nn.TransformerEncoderLayer(
            E, H, 32, 0.1, "gelu", batch_first=True, norm_first=first), 2, enable_nested_tensor=False)
        cls.mods = {"mha": torch.nn.MultiheadAttention(E, H), "mha_bf": torch.nn.MultiheadAttention(E, H, batch_first=True),
                    "post": mk(False), "pre": mk(True),
                    "enc": torch.nn.TransformerEncoderLayer(E, H, 32, batch_first=True)}
        state = {}
        for name, mod in cls.mods.items():
            mod.eval()
            with torch.no_grad():
                for p in mod.parameters():
                    p.add_(torch.randn_like(p) * 0.1)  # biases and norms away from their init
            state.update({f"{name}.{k}": v.numpy() for k, v in mod.state_dict().items()})
        weights = nnc.save_safetensors(state, os.path.join(cls.tmp, "w.safetensors"))
        cls.nn = write_model(MODEL, cls.tmp, "fused")
        cls.models = {"jit": nnc.compile(cls.nn, weights=weights),
                      "so": nnc.load(compile_so(cls.nn, cls.tmp, weights))}

    def each(self):
        for kind, m in self.models.items():
            for threads in (1, 2, 3):
                m.threads = threads
                yield f"{kind}, {threads} threads", m

    def check(self, call, want, what):
        """call(m) against want (a tuple of outputs) on every model and thread count, and
        bit-identical to the first (the JIT on one thread)"""
        assert_same_everywhere(self, self.models, call, want, what)

    def test_one_op_without_scores(self):
        dump = subprocess.run([os.environ.get("NNC_EXE", os.path.join(ROOT, "build", "nnc")), "dump",
                               "--stage=fused", self.nn], capture_output=True, text=True, check=True).stdout
        self.assertIn("= attention ", dump)
        # no scores anywhere: [B, H, T, T], [B, 2, L, S], [2, 2, 300, 300] (masks [T, T] are inputs)
        for scores in (f"[B, {H}, T, T]", f"[B, {H}*T, T]", "[B, 2, L, S]", "[2, 2, 300, 300]"):
            self.assertNotIn(scores, dump)

    def test_against_torch_at_three_lengths(self):
        torch = torch_or_none()
        rng = np.random.default_rng(4)
        for T in (1, 5, 17):
            x = rng.standard_normal((T, 3, E)).astype(np.float32)
            xb = np.ascontiguousarray(x.transpose(1, 0, 2))
            tx, txb = torch.from_numpy(x), torch.from_numpy(xb)
            causal = torch.triu(torch.ones(T, T, dtype=torch.bool), 1)
            with torch.no_grad():
                want = {"self": self.mods["mha"](tx, tx, tx, need_weights=False)[0].numpy(),
                        "causal": self.mods["mha_bf"](txb, txb, txb, need_weights=False, attn_mask=causal)[0].numpy(),
                        "post": self.mods["post"](txb).numpy(), "pre": self.mods["pre"](txb).numpy()}
            for what, m in self.each():
                assert_close(self, m.self_attention(x), want["self"], f"self-attention T={T}, {what}")
                assert_close(self, m.causal(xb), want["causal"], f"causal T={T}, {what}")
                a, b = m.encode(xb)
                assert_close(self, a, want["post"], f"encoder post-norm T={T}, {what}")
                assert_close(self, b, want["pre"], f"encoder pre-norm T={T}, {what}")

    def test_sdpa_other_lengths(self):
        torch = torch_or_none()
        rng = np.random.default_rng(5)
        for Lq, S in ((3, 7), (9, 4), (1, 1)):
            q, k, v = (rng.standard_normal(s).astype(np.float32) for s in ((2, 2, Lq, 8), (2, 2, S, 8), (2, 2, S, 5)))
            tq, tk, tv = (torch.from_numpy(a) for a in (q, k, v))
            want = torch.softmax(tq @ tk.transpose(-1, -2) / np.sqrt(8), -1) @ tv
            mask = torch.ones(Lq, S).tril().log()  # 0 where s <= l, -inf above: torch's causal
            wc = torch.softmax(tq @ tk.transpose(-1, -2) * 0.3 + mask, -1) @ tv
            for what, m in self.each():
                y, c = m.sdpa(q, k, v)
                assert_close(self, y, want.numpy(), f"sdpa L={Lq} S={S}, {what}")
                assert_close(self, c, wc.numpy(), f"causal sdpa L={Lq} S={S}, {what}")

    def test_key_padding(self):
        torch = torch_or_none()
        rng = np.random.default_rng(6)
        for T in (1, 5, 65, 300):
            x = rng.standard_normal((2, T, E)).astype(np.float32)
            pad = np.zeros((2, T), np.int64)
            pad[0, T // 2 + 1:] = 1  # the first item's later half padded; its first key never
            tx, tpad = torch.from_numpy(x), torch.from_numpy(pad).bool()
            # with autograd on: torch 1.13's inference fast paths are off, its math path runs
            want = (self.mods["mha_bf"](tx, tx, tx, key_padding_mask=tpad, need_weights=False)[0].detach().numpy(),
                    self.mods["enc"](tx, src_key_padding_mask=tpad).detach().numpy())
            self.check(lambda m: m.padded(x, pad), want, f"key padding T={T}")

    def test_attn_masks(self):
        torch = torch_or_none()
        rng = np.random.default_rng(7)
        for T in (1, 17, 64, 300):
            x = rng.standard_normal((2, T, E)).astype(np.float32)
            m = rng.standard_normal((T, T)).astype(np.float32)
            b = (rng.random((T, T)) < 0.3).astype(np.int64)
            np.fill_diagonal(b, 0)  # every row keeps a key
            tx = torch.from_numpy(x)
            causal = torch.from_numpy(b).bool() | torch.triu(torch.ones(T, T, dtype=torch.bool), 1)
            want = (self.mods["mha_bf"](tx, tx, tx, attn_mask=torch.from_numpy(m), need_weights=False)[0].detach().numpy(),
                    self.mods["mha_bf"](tx, tx, tx, attn_mask=causal, need_weights=False)[0].detach().numpy())
            self.check(lambda mod: mod.masked(x, m, b), want, f"attn_mask T={T}")

    def test_sdpa_masks_and_lengths(self):
        torch = torch_or_none()
        rng = np.random.default_rng(8)
        for Lq, S in ((1, 1), (3, 300), (300, 7), (65, 257), (300, 300)):
            q, k, v = (rng.standard_normal(s).astype(np.float32) for s in ((2, 2, Lq, 8), (2, 2, S, 8), (2, 2, S, 5)))
            m = rng.standard_normal((2, 1, Lq, S)).astype(np.float32)
            n = np.zeros(S, np.int64)
            n[S // 2 + 1:] = 1
            want = (reference(torch, q, k, v, mask=m),
                    reference(torch, q, k, v, mask=np.where(n != 0, -np.inf, 0).astype(np.float32), causal=True))
            self.check(lambda mod: mod.sdpa_mask(q, k, v, m, n), want, f"sdpa masks L={Lq} S={S}")

    def test_head_dims_1_and_256(self):
        torch = torch_or_none()
        rng = np.random.default_rng(9)
        for T in (1, 70, 300):
            a = [rng.standard_normal((2, 3, T, 1)).astype(np.float32) for _ in range(3)]
            b = [rng.standard_normal((2, 1, T, 256)).astype(np.float32) * 0.1 for _ in range(3)]
            want = (reference(torch, *a), reference(torch, *b, causal=True))
            self.check(lambda m: m.heads(*a, *b), want, f"head dims 1 and 256, T={T}")

    def test_static_causal(self):
        """static scores of 300 x 300, causal: fused (test_one_op_without_scores)"""
        torch = torch_or_none()
        rng = np.random.default_rng(10)
        q, k, v = (rng.standard_normal((2, 2, 300, 16)).astype(np.float32) for _ in range(3))
        self.check(lambda m: m.static_causal(q, k, v), (reference(torch, q, k, v, causal=True),), "static causal 300")

    def test_nan_and_fully_masked_rows(self):
        """as torch's softmax: a NaN score makes its row NaN; a row whose every key is masked
        (-inf) is NaN"""
        torch = torch_or_none()
        rng = np.random.default_rng(11)
        for Lq, S in ((5, 9), (70, 300)):
            q, k, v = (rng.standard_normal(s).astype(np.float32) for s in ((2, 2, Lq, 8), (2, 2, S, 8), (2, 2, S, 5)))
            q[0, 1, 2, 3] = np.nan
            k[1, 0, 0, 0] = np.nan  # every row of that head NaN (a key every causal row sees: one
            # is_causal hides is never read, as in a flash kernel, where torch's math path adds -inf)
            m = np.zeros((2, 1, Lq, S), np.float32)
            m[1, 0, Lq - 1, :] = -np.inf
            n = np.zeros(S, np.int64)
            want = (reference(torch, q, k, v, mask=m), reference(torch, q, k, v, causal=True))
            self.assertTrue(np.isnan(want[0]).any() and not np.isnan(want[0]).all())
            self.check(lambda mod: mod.sdpa_mask(q, k, v, m, n), want, f"NaN L={Lq} S={S}")


if __name__ == "__main__":
    unittest.main()
