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

MODEL = f"""
mha = MultiheadAttention({E}, {H})
mha_bf = MultiheadAttention({E}, {H}, batch_first=true, bias=false)
enc = TransformerEncoderLayer({E}, {H}, dim_feedforward=32)
enc_pre = TransformerEncoderLayer({E}, {H}, 24, 0.1, "gelu", 1e-6, batch_first=true, norm_first=true)
export self_attention(x: f32[{L}, B, {E}]) -> (y: f32[{L}, B, {E}], w: f32[B, {L}, {L}]) {{
  y, w = mha(x, x, x)
}}
export cross(q: f32[{L}, B, {E}], kv: f32[S, B, {E}], pad: i64[B, S]) -> (y: f32[{L}, B, {E}], w: f32[B, {H}, {L}, S]) {{
  y, w = mha(q, kv, kv, key_padding_mask=pad, average_attn_weights=false)
}}
export masked(x: f32[B, {L}, {E}], m: f32[{L}, {L}]) -> y: f32[B, {L}, {E}] {{
  y, w = mha_bf(x, x, x, attn_mask=m, need_weights=false)
}}
export causal(x: f32[B, {L}, {E}], m: i64[{L}, {L}]) -> y: f32[B, {L}, {E}] {{
  y, w = mha_bf(x, x, x, attn_mask=m, need_weights=false, is_causal=true)
}}
export encode(x: f32[{L}, B, {E}], pad: i64[B, {L}]) -> y: f32[{L}, B, {E}] {{
  y = enc(x, src_key_padding_mask=pad)
}}
export encode_pre(x: f32[B, {L}, {E}]) -> y: f32[B, {L}, {E}] {{
  y = enc_pre(x, is_causal=true, src_mask=zeros({L}, {L}))
}}
module Stack() {{
  layers = Sequential(TransformerEncoderLayer({E}, {H}, 32, activation="gelu", norm_first=true),
                      TransformerEncoderLayer({E}, {H}, 32, activation="gelu", norm_first=true))
  norm = LayerNorm({E})
  fn forward(x) {{ return self.norm(self.layers(x)) }}
}}
stack = Stack()
export encoder_stack(x: f32[{L}, B, {E}]) -> y: f32[{L}, B, {E}] {{ y = stack(x) }}
dec = TransformerDecoderLayer({E}, {H}, 24)
dec_pre = TransformerDecoderLayer({E}, {H}, 24, 0.1, "gelu", batch_first=true, norm_first=true)
export decode(t: f32[{L}, B, {E}], mem: f32[S, B, {E}], mpad: i64[B, S]) -> y: f32[{L}, B, {E}] {{
  y = dec(t, mem, tgt_is_causal=true, memory_key_padding_mask=mpad)
}}
export decode_pre(t: f32[B, {L}, {E}], mem: f32[B, S, {E}], tm: f32[{L}, {L}]) -> y: f32[B, {L}, {E}] {{
  y = dec_pre(t, mem, tgt_mask=tm)
}}
export sdpa(q: f32[B, 2, {L}, 8], k: f32[B, 2, 5, 8], v: f32[B, 2, 5, 3]) -> y: f32[B, 2, {L}, 3] {{
  y = scaled_dot_product_attention(q, k, v, scale=0.3)
}}
"""


@needs_torch
class AttentionTest(TempDirCase):
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
        cls.m = nnc.compile(write_model(MODEL, cls.tmp, "attention"), weights=weights)
        cls.rng = np.random.default_rng(5)

    def data(self, *shape):
        return self.rng.standard_normal(shape).astype(np.float32)

    def check(self, got, want, what):
        if not isinstance(got, tuple):
            got, want = (got,), (want,)
        for i, (g, w) in enumerate(zip(got, want)):
            assert_close(self, g, w.detach().numpy(), f"{what}[{i}]")

    def test_self_attention(self):
        torch = torch_or_none()
        x = self.data(L, N, E)
        t = torch.from_numpy(x)
        with torch.no_grad():
            want = self.mods["mha"](t, t, t)
        self.check(self.m.self_attention(x), want, "self attention")

    def test_cross_attention_padding(self):
        torch = torch_or_none()
        q, kv = self.data(L, N, E), self.data(5, N, E)
        pad = np.zeros((N, 5), np.int64)
        pad[0, 3:] = 1
        pad[2, 0] = 1
        with torch.no_grad():
            want = self.mods["mha"](torch.from_numpy(q), torch.from_numpy(kv), torch.from_numpy(kv),
                                    key_padding_mask=torch.from_numpy(pad).bool(), average_attn_weights=False)
        self.check(self.m.cross(q, kv, pad), want, "cross attention")

    def test_masks(self):
        torch = torch_or_none()
        x = self.data(N, L, E)
        m = self.data(L, L)
        with torch.no_grad():
            want = self.mods["mha_bf"](torch.from_numpy(x), torch.from_numpy(x), torch.from_numpy(x),
                                       attn_mask=torch.from_numpy(m), need_weights=False)[0]
            self.check(self.m.masked(x, m), want, "float mask")
            causal = np.triu(np.ones((L, L), np.int64), 1)
            # torch's is_causal is a hint that attn_mask is the causal mask (2.x; absent in 1.x)
            want = self.mods["mha_bf"](torch.from_numpy(x), torch.from_numpy(x), torch.from_numpy(x),
                                       attn_mask=torch.from_numpy(causal).bool(), need_weights=False)[0]
            self.check(self.m.causal(x, causal), want, "causal")

    def test_encoder_layers(self):
        torch = torch_or_none()
        x = self.data(L, N, E)
        pad = np.zeros((N, L), np.int64)
        pad[1, 4:] = 1
        with torch.no_grad():
            want = self.mods["enc"](torch.from_numpy(x), src_key_padding_mask=torch.from_numpy(pad).bool())
            self.check(self.m.encode(x, pad), want, "post-norm encoder")
            xb = self.data(N, L, E)
            mask = torch.nn.Transformer.generate_square_subsequent_mask(L)
            want = self.mods["enc_pre"](torch.from_numpy(xb), src_mask=mask)
            self.check(self.m.encode_pre(xb), want, "pre-norm causal gelu encoder")

    def test_encoder_stack(self):  # nn.TransformerEncoder: layers.0, layers.1, norm
        torch = torch_or_none()
        x = self.data(L, N, E)
        with torch.no_grad():
            want = self.mods["stack"](torch.from_numpy(x))
        self.check(self.m.encoder_stack(x), want, "TransformerEncoder")

    def test_decoder_layers(self):  # causal self-attention, padded memory
        torch = torch_or_none()
        t, mem = self.data(L, N, E), self.data(5, N, E)
        pad = np.zeros((N, 5), np.int64)
        pad[1, 2:] = 1
        causal = torch.triu(torch.full((L, L), float("-inf")), 1)
        with torch.no_grad():
            want = self.mods["dec"](torch.from_numpy(t), torch.from_numpy(mem), tgt_mask=causal,
                                    memory_key_padding_mask=torch.from_numpy(pad).bool())
            self.check(self.m.decode(t, mem, pad), want, "post-norm decoder")
            tb, mb, tm = self.data(N, L, E), self.data(N, 4, E), self.data(L, L)
            want = self.mods["dec_pre"](torch.from_numpy(tb), torch.from_numpy(mb), tgt_mask=torch.from_numpy(tm))
            self.check(self.m.decode_pre(tb, mb, tm), want, "pre-norm gelu decoder")

    def test_sdpa(self):
        torch = torch_or_none()
        q, k, v = self.data(N, 2, L, 8), self.data(N, 2, 5, 8), self.data(N, 2, 5, 3)
        q, k, v = torch.from_numpy(q), torch.from_numpy(k), torch.from_numpy(v)
        if hasattr(torch.nn.functional, "scaled_dot_product_attention"):  # torch >= 2.1 (scale=)
            want = torch.nn.functional.scaled_dot_product_attention(q, k, v, scale=0.3)
        else:
            want = torch.softmax(q @ k.transpose(-2, -1) * 0.3, dim=-1) @ v
        q, k, v = q.numpy(), k.numpy(), v.numpy()
        self.check(self.m.sdpa(q, k, v), want, "scaled_dot_product_attention")


if __name__ == "__main__":
    unittest.main()
