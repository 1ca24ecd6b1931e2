"""Attention (issue 17): torch.nn.MultiheadAttention, nn.TransformerEncoderLayer (and
TransformerEncoder) and nn.TransformerDecoderLayer with their unchanged state_dicts, and F.scaled_dot_product_attention, against PyTorch: batch_first and
not, norm_first, relu and gelu, boolean (i64) and float masks, key padding, causal, need_weights
with averaged and per-head weights, bias=False."""
import os
import unittest

import numpy as np

import nnc
from support import TempDirCase, assert_close, needs_torch, torch_or_none, write_model

L, N, E, H = 6, 3, 16, 4


def model(l):
    """The models' text with sequence length l: a number, or a symbol (test_symbolic_length.py)."""
    return f"""

mha = MultiheadAttention({E}, {H})
mha_bf = MultiheadAttention({E}, {H}, batch_first=true, bias=false)
enc = TransformerEncoderLayer({E}, {H}, dim_feedforward=32)
enc_pre = TransformerEncoderLayer({E}, {H}, 24, 0.1, "gelu", 1e-6, batch_first=true, norm_first=true)
export self_attention(x: f32[{l}, B, {E}]) -> (y: f32[{l}, B, {E}], w: f32[B, {l}, {l}]) {{
  y, w = mha(x, x, x)
}}
export cross(q: f32[{l}, B, {E}], kv: f32[S, B, {E}], pad: i64[B, S]) -> (y: f32[{l}, B, {E}], w: f32[B, {H}, {l}, S]) {{
  y, w = mha(q, kv, kv, key_padding_mask=pad, average_attn_weights=false)
}}
export masked(x: f32[B, {l}, {E}], m: f32[{l}, {l}]) -> y: f32[B, {l}, {E}] {{
  y, w = mha_bf(x, x, x, attn_mask=m, need_weights=false)
}}
export causal(x: f32[B, {l}, {E}], m: i64[{l}, {l}]) -> y: f32[B, {l}, {E}] {{
  y, w = mha_bf(x, x, x, attn_mask=m, need_weights=false, is_causal=true)
}}
export encode(x: f32[{l}, B, {E}], pad: i64[B, {l}]) -> y: f32[{l}, B, {E}] {{
  y = enc(x, src_key_padding_mask=pad)
}}
export encode_pre(x: f32[B, {l}, {E}]) -> y: f32[B, {l}, {E}] {{
  y = enc_pre(x, is_causal=true, src_mask=zeros({l}, {l}))
}}
module Stack() {{
  layers = Sequential(TransformerEncoderLayer({E}, {H}, 32, activation="gelu", norm_first=true),
                      TransformerEncoderLayer({E}, {H}, 32, activation="gelu", norm_first=true))
  norm = LayerNorm({E})
  fn forward(x) {{ return self.norm(self.layers(x)) }}
}}
stack = Stack()
export encoder_stack(x: f32[{l}, B, {E}]) -> y: f32[{l}, B, {E}] {{ y = stack(x) }}
dec = TransformerDecoderLayer({E}, {H}, 24)
dec_pre = TransformerDecoderLayer({E}, {H}, 24, 0.1, "gelu", batch_first=true, norm_first=true)
export decode(t: f32[{l}, B, {E}], mem: f32[S, B, {E}], mpad: i64[B, S]) -> y: f32[{l}, B, {E}] {{
  y = dec(t, mem, tgt_is_causal=true, memory_key_padding_mask=mpad)
}}
export decode_pre(t: f32[B, {l}, {E}], mem: f32[B, S, {E}], tm: f32[{l}, {l}]) -> y: f32[B, {l}, {E}] {{
  y = dec_pre(t, mem, tgt_mask=tm)
}}
export sdpa(q: f32[B, 2, {l}, 8], k: f32[B, 2, 5, 8], v: f32[B, 2, 5, 3]) -> y: f32[B, 2, {l}, 3] {{
  y = scaled_dot_product_attention(q, k, v, scale=0.3)
}}
"""


@needs_torch
class AttentionTest(TempDirCase):
    LENGTH = L      # the models' sequence length: here a number
    LENGTHS = (L,)  # the lengths the tests run

    @classmethod
    def build(cls, nn, weights):
        return {"jit": nnc.compile(nn, weights=weights)}

    def each(self):
        """(what, model) for every build and thread count under test"""
        for kind, m in self.models.items():
            yield kind, m

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        torch = torch_or_none()
        nn = torch.nn
        torch.manual_seed(0)
        cls.mods = {
            "mha": nn.MultiheadAttention(E, H),
            "mha_bf": nn.MultiheadAttention(E, H, batch_first=True, bias=False),
            "enc": nn.TransformerEncoderLayer(E, H, dim_feedforward=32),
            "enc_pre": nn.TransformerEncoderLayer(E, H, 24, 0.1, "gelu", 1e-6, batch_first=True, norm_first=True),
        }
        layer = nn.TransformerEncoderLayer(E, H, 32, activation="gelu", norm_first=True)
        cls.mods["stack"] = nn.TransformerEncoder(layer, 2, norm=nn.LayerNorm(E), enable_nested_tensor=False) \
            if "enable_nested_tensor" in nn.TransformerEncoder.__init__.__code__.co_varnames else nn.TransformerEncoder(layer, 2, norm=nn.LayerNorm(E))
        cls.mods["dec"] = nn.TransformerDecoderLayer(E, H, 24)
        cls.mods["dec_pre"] = nn.TransformerDecoderLayer(E, H, 24, 0.1, "gelu", batch_first=True, norm_first=True)
        state = {}
        for name, mod in cls.mods.items():
            mod.eval()
            state.update({f"{name}.{k}": v.detach().numpy() for k, v in mod.state_dict().items()})
        weights = nnc.save_safetensors(state, os.path.join(cls.tmp, "w.safetensors"))
        cls.models = cls.build(write_model(model(cls.LENGTH), cls.tmp, "attention"), weights)
        cls.rng = np.random.default_rng(5)

    def data(self, *shape):
        return self.rng.standard_normal(shape).astype(np.float32)

    def check(self, call, want, what):
        """call(model) against PyTorch's want, for every build and thread count"""
        for how, m in self.each():
            got = call(m)
            w = want if isinstance(want, tuple) else (want,)
            for i, (g, x) in enumerate(zip(got if isinstance(got, tuple) else (got,), w)):
                assert_close(self, g, x.detach().numpy(), f"{what}[{i}], {how}")

    def test_self_attention(self):
        torch = torch_or_none()
        for l in self.LENGTHS:
            x = self.data(l, N, E)
            t = torch.from_numpy(x)
            with torch.no_grad():
                want = self.mods["mha"](t, t, t)
            self.check(lambda m: m.self_attention(x), want, f"self attention L={l}")

    def test_cross_attention_padding(self):
        torch = torch_or_none()
        for l in self.LENGTHS:
            q, kv = self.data(l, N, E), self.data(5, N, E)
            pad = np.zeros((N, 5), np.int64)
            pad[0, 3:] = 1
            pad[2, 0] = 1
            with torch.no_grad():
                want = self.mods["mha"](torch.from_numpy(q), torch.from_numpy(kv), torch.from_numpy(kv),
                                        key_padding_mask=torch.from_numpy(pad).bool(), average_attn_weights=False)
            self.check(lambda m: m.cross(q, kv, pad), want, f"cross attention L={l}")

    def test_masks(self):
        torch = torch_or_none()
        for l in self.LENGTHS:
            x = self.data(N, l, E)
            mask = self.data(l, l)
            tx = torch.from_numpy(x)
            with torch.no_grad():
                want = self.mods["mha_bf"](tx, tx, tx, attn_mask=torch.from_numpy(mask), need_weights=False)[0]
                self.check(lambda m: m.masked(x, mask), want, f"float mask L={l}")
                causal = np.triu(np.ones((l, l), np.int64), 1)
                # torch's is_causal is a hint that attn_mask is the causal mask (2.x; absent in 1.x)
                want = self.mods["mha_bf"](tx, tx, tx, attn_mask=torch.from_numpy(causal).bool(), need_weights=False)[0]
                self.check(lambda m: m.causal(x, causal), want, f"causal L={l}")

    def test_encoder_layers(self):
        torch = torch_or_none()
        for l in self.LENGTHS:
            x = self.data(l, N, E)
            pad = np.zeros((N, l), np.int64)
            pad[1, l // 2 + 1:] = 1
            with torch.no_grad():
                want = self.mods["enc"](torch.from_numpy(x), src_key_padding_mask=torch.from_numpy(pad).bool())
                self.check(lambda m: m.encode(x, pad), want, f"post-norm encoder L={l}")
                xb = self.data(N, l, E)
                mask = torch.nn.Transformer.generate_square_subsequent_mask(l)
                want = self.mods["enc_pre"](torch.from_numpy(xb), src_mask=mask)
                self.check(lambda m: m.encode_pre(xb), want, f"pre-norm causal gelu encoder L={l}")

    def test_encoder_stack(self):  # nn.TransformerEncoder: layers.0, layers.1, norm
        torch = torch_or_none()
        for l in self.LENGTHS:
            x = self.data(l, N, E)
            with torch.no_grad():
                want = self.mods["stack"](torch.from_numpy(x))
            self.check(lambda m: m.encoder_stack(x), want, f"TransformerEncoder L={l}")

    def test_decoder_layers(self):  # causal self-attention, padded memory
        torch = torch_or_none()
        for l in self.LENGTHS:
            t, mem = self.data(l, N, E), self.data(5, N, E)
            pad = np.zeros((N, 5), np.int64)
            pad[1, 2:] = 1
            causal = torch.triu(torch.full((l, l), float("-inf")), 1)
            with torch.no_grad():
                want = self.mods["dec"](torch.from_numpy(t), torch.from_numpy(mem), tgt_mask=causal,
                                        memory_key_padding_mask=torch.from_numpy(pad).bool())
                self.check(lambda m: m.decode(t, mem, pad), want, f"post-norm decoder L={l}")
                tb, mb, tm = self.data(N, l, E), self.data(N, 4, E), self.data(l, l)
                want = self.mods["dec_pre"](torch.from_numpy(tb), torch.from_numpy(mb), tgt_mask=torch.from_numpy(tm))
                self.check(lambda m: m.decode_pre(tb, mb, tm), want, f"pre-norm gelu decoder L={l}")

    def test_sdpa(self):
        torch = torch_or_none()
        for l in self.LENGTHS:
            q, k, v = self.data(N, 2, l, 8), self.data(N, 2, 5, 8), self.data(N, 2, 5, 3)
            q, k, v = torch.from_numpy(q), torch.from_numpy(k), torch.from_numpy(v)
            if hasattr(torch.nn.functional, "scaled_dot_product_attention"):  # torch >= 2.1 (scale=)
                want = torch.nn.functional.scaled_dot_product_attention(q, k, v, scale=0.3)
            else:
                want = torch.softmax(q @ k.transpose(-2, -1) * 0.3, dim=-1) @ v
            q, k, v = q.numpy(), k.numpy(), v.numpy()
            self.check(lambda m: m.sdpa(q, k, v), want, f"scaled_dot_product_attention L={l}")

if __name__ == "__main__":
    unittest.main()
