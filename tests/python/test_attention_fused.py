"""Fused attention (issue 17, item 3): attention without a mask tensor and without the weights
is one ATTENTION op that never writes the [L, S] scores to memory, so the sequence lengths may
be symbolic, even one symbol for both (self-attention over T).  Against PyTorch with unchanged
state_dicts: MultiheadAttention (batch_first both ways, causal), a two-layer
TransformerEncoder (norm_first both ways, gelu), scaled_dot_product_attention with L != S and
causal; lengths 1, 5 and 17 from one compiled model, JIT and AOT, 1, 2 and 3 threads."""
import os
import subprocess
import unittest

import numpy as np

import nnc
from support import ROOT, TempDirCase, assert_close, compile_so, needs_torch, torch_or_none, write_model

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
"""


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
                    "post": mk(False), "pre": mk(True)}
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

    def test_one_op_without_scores(self):
        dump = subprocess.run([os.environ.get("NNC_EXE", os.path.join(ROOT, "build", "nnc")), "dump",
                               "--stage=fused", self.nn], capture_output=True, text=True, check=True).stdout
        self.assertIn("= attention ", dump)
        self.assertNotIn("T, T]", dump)  # no [.., T, T] scores anywhere

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


if __name__ == "__main__":
    unittest.main()
