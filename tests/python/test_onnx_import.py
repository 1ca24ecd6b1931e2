"""`nnc import model.onnx -o model.nn` (issue 19, item 4): PyTorch models exported with
torch.onnx.export, written as .nn by nnc import, compiled with the weights it writes, and run.

Each round trip is checked against PyTorch (the oracle: rtol 1e-4, atol 1e-5 x max(1, max|y|))
and against the same .onnx compiled directly (`nnc.compile("model.onnx")`, `nnc run
model.onnx`), which it must match bit for bit: the .nn spells each IR node with the language
function that builds that node, so both compile to the same graph, kernels and code.
Models: torchvision's resnet18 and mobilenet_v2 (random weights, batch-norm statistics
perturbed, 64x64 images), a small MLP, a self-attention block, nn.TransformerEncoderLayer (skipped
if the ONNX front end refuses its export), transposed convolutions, a model of
further ops, and nn.RNN / GRU / LSTM, layered and bidirectional (written as `scan` statements).  The batch is a dim_param, so each model runs at two batch sizes from one
compilation.  Then the command's errors; tests/unit/test_emit_nn.c checks every elementwise op
and the refusal of an op the language cannot express."""
import os
import re
import subprocess
import unittest

import numpy as np

import nnc
from support import NNC, TempDirCase, needs_torch, nnc_cli, torch_or_none

torch = torch_or_none()
RTOL, ATOL = 1e-4, 1e-5


def assert_torch_close(tc, got, want, what):
    """|got - want| <= ATOL max(1, max|want|) + RTOL |want|; returns the largest error."""
    tc.assertEqual(got.shape, want.shape, f"{what}: shape")
    scale = max(1.0, float(np.abs(want).max()))
    err = np.abs(got.astype(np.float64) - want.astype(np.float64))
    bad = err > ATOL * scale + RTOL * np.abs(want)
    tc.assertFalse(bad.any(), f"{what}: {int(bad.sum())} of {bad.size} elements differ from PyTorch "
                   f"(largest error {err.max():.3g}, max|y| {scale:.3g})")
    return float(err.max())


def export(model, x, path, opset=13):
    torch.onnx.export(model, x, path, input_names=["x"], output_names=["y"], opset_version=opset,
                      dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}})


def perturb_batch_norms(model):
    """Random running statistics and affine parameters, so that folding them matters."""
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.rand(n, generator=g) * 0.4 - 0.2)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.rand(n, generator=g) * 0.4 - 0.2)


class Attention(torch.nn.Module if torch else object):
    """Self-attention and a GELU MLP with layer norms (MatMul, Slice, Reshape, Transpose,
    Softmax, LayerNormalization, Erf) over a fixed length, the batch dynamic."""
    T, D, H = 6, 32, 4

    def __init__(self):
        super().__init__()
        D = self.D
        self.qkv, self.o = torch.nn.Linear(D, 3 * D), torch.nn.Linear(D, D)
        self.n1, self.n2 = torch.nn.LayerNorm(D), torch.nn.LayerNorm(D)
        self.ff = torch.nn.Sequential(torch.nn.Linear(D, 64), torch.nn.GELU(), torch.nn.Linear(64, D))

    def forward(self, x):
        T, D, H = self.T, self.D, self.H
        y = self.qkv(x)
        q, k, v = (y[..., i * D:(i + 1) * D].reshape(-1, T, H, D // H).transpose(1, 2) for i in range(3))
        a = torch.softmax(q @ k.transpose(-2, -1) / (D // H) ** 0.5, dim=-1) @ v
        x = self.n1(x + self.o(a.transpose(1, 2).reshape(-1, T, D)))
        return self.n2(x + self.ff(x))


class Misc(torch.nn.Module if torch else object):
    """Ops beyond the zoo's: Slice, constant-index Gather, a grouped convolution without bias,
    bilinear Resize, Concat, Clip, Pow, Pad and AveragePool (as torch exports avg_pool2d),
    ReduceMax with keepdims, Transpose, and a squeeze-excitation block (GlobalAveragePool, 1x1
    convolutions on 1x1 maps, SiLU as x * sigmoid(x))."""

    def __init__(self):
        super().__init__()
        self.c = torch.nn.Conv2d(4, 4, 3, stride=2, padding=1, groups=2, bias=False)
        self.se = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Conv2d(4, 2, 1), torch.nn.SiLU(),
                                      torch.nn.Conv2d(2, 4, 1), torch.nn.Sigmoid())

    def forward(self, x):
        F = torch.nn.functional
        a = x[:, 1:3] * 2 + x[:, [0, 3]].abs()
        b = F.interpolate(self.c(x), scale_factor=2, mode="bilinear")
        c = torch.cat([a, b[:, :2, :4, :4]], 1).clamp(-1.5, 2.0) ** 2
        d = F.avg_pool2d(c, 2).amax(dim=(2, 3), keepdim=True)
        y = torch.sigmoid(c - d)
        return (y * self.se(y)).transpose(1, 3)


class Recurrent(torch.nn.Module if torch else object):
    """An nn.RNN, GRU or LSTM (batch_first), its outputs and final states as one tensor: the
    ONNX op becomes a scan per direction and layer, written as `scan` statements."""

    def __init__(self, kind, **kw):
        super().__init__()
        self.r = getattr(torch.nn, kind)(5, 6, batch_first=True, **kw)

    def forward(self, x):
        y, state = self.r(x)
        states = state if isinstance(state, tuple) else (state,)
        return torch.cat([y.flatten(1)] + [s.transpose(0, 1).flatten(1) for s in states], 1)


class CausalDecoder(torch.nn.Module if torch else object):
    """nn.TransformerDecoderLayer with a causal mask and a key padding mask (the last target
    position padded); its input [B, 11, 32] is the target (6 steps) and the memory (5)."""

    def __init__(self):
        super().__init__()
        self.d = torch.nn.TransformerDecoderLayer(32, 4, 64, dropout=0.0, batch_first=True)

    def forward(self, x):
        tgt, mem = x[:, :6], x[:, 6:]
        causal = torch.triu(torch.full((6, 6), float("-inf")), 1)
        pad = torch.arange(6) == 5
        return self.d(tgt, mem, tgt_mask=causal, tgt_key_padding_mask=pad.expand(x.shape[0], 6))


@needs_torch
class RoundTrip(TempDirCase):
    def roundtrip(self, name, model, shape, opset=13):
        """Export, import, compile both; every batch size agrees with PyTorch and bit for bit
        with the .onnx compiled directly.  Returns the .nn text."""
        torch.manual_seed(0)
        model.eval()
        onnx_path, nn_path = (os.path.join(self.tmp, name + ext) for ext in (".onnx", ".nn"))
        export(model, torch.randn(2, *shape), onnx_path, opset)
        nnc_cli("import", onnx_path, "-o", nn_path)
        weights = os.path.join(self.tmp, name + ".safetensors")
        direct = nnc.compile(onnx_path)
        imported = nnc.compile(nn_path, weights=weights)
        worst = 0.0
        for batch in (1, 3):
            x = torch.randn(batch, *shape)
            with torch.no_grad():
                want = model(x).numpy()
            got = imported.torch_jit(x.numpy())
            np.testing.assert_array_equal(got, direct.forward(x.numpy()),
                                          f"{name}: the imported .nn and the .onnx differ at batch {batch}")
            worst = max(worst, assert_torch_close(self, got, want, f"{name} at batch {batch}"))
        print(f"\n{name}: largest error against PyTorch {worst:.3g}; bit-identical to the .onnx", end=" ")
        with open(nn_path) as f:
            return f.read()

    def test_resnet18(self):
        import torchvision
        model = torchvision.models.resnet18()
        perturb_batch_norms(model)
        text = self.roundtrip("resnet18", model, (3, 64, 64))
        self.assertIn("export torch_jit(x: f32[batch, 3, 64, 64]) -> (y: f32[batch, 1000]) {", text)
        self.assertIn("fc_weight = Parameter([1000, 512])  # fc.weight\n", text)
        # convolutions and pooling as the calls that build them (emit_nn_idiom.c)
        self.assertRegex(text, r"conv1_Conv_output_0 = conv2d\(x, onnx__Conv_\d+, onnx__Conv_\d+, stride=2, padding=3\)")
        self.assertIn("= max_pool2d(relu_Relu_output_0, [3, 3], stride=[2, 2], padding=1)", text)
        self.assertIn("= adaptive_avg_pool2d(", text)
        self.assertNotIn("sliding_windows(", text)

    def test_mobilenet_v2(self):
        import torchvision
        model = torchvision.models.mobilenet_v2()
        perturb_batch_norms(model)
        text = self.roundtrip("mobilenet_v2", model, (3, 64, 64))
        self.assertIn("hardtanh(", text)  # Clip(0, 6): relu6 as the ONNX front end builds it
        self.assertRegex(text, r"conv2d\(\w+, onnx__Conv_\d+, onnx__Conv_\d+, padding=1, groups=\d+\)")  # depthwise

    def test_misc_ops(self):
        text = self.roundtrip("misc", Misc(), (4, 4, 4))
        for call in ("= x[:, 1:3]", "= index_select(x, 1, [0, 3])", "= conv2d(x, c_weight, stride=2, padding=1, groups=2)",
                     "= interpolate(c_Conv_output_0, size=[4, 4], mode=\"bilinear\")", "= cat([",
                     "avg_pool2d(", "count_include_pad=false", "keepdim=true", "= permute(",
                     "= adaptive_avg_pool2d(", "= conv2d(se_se_0_GlobalAveragePool_output_0, se_1_weight, se_1_bias)"):
            self.assertIn(call, text)

    def test_conv_transpose(self):
        """Transposed convolutions: the scatter (col2im) and the pixel-shuffle form (kernel =
        stride), both written as conv_transpose2d."""
        model = torch.nn.Sequential(torch.nn.ConvTranspose2d(3, 4, 3, stride=2, padding=1, output_padding=1),
                                    torch.nn.ReLU(), torch.nn.ConvTranspose2d(4, 2, 2, stride=2, groups=2))
        text = self.roundtrip("deconv", model, (3, 5, 5))
        self.assertIn("conv_transpose2d(x, ", text)
        self.assertIn("stride=2, padding=1, output_padding=1)", text)
        self.assertIn("stride=2, groups=2)", text)

    def test_mlp_and_cli(self):
        """Also through `nnc run` and an AOT library of the .nn."""
        model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.GELU(), torch.nn.Linear(32, 32),
                                    torch.nn.Tanh(), torch.nn.Linear(32, 4), torch.nn.Softmax(dim=-1))
        text = self.roundtrip("mlp", model, (16,))
        self.assertIn("y = ", text)
        x = np.random.RandomState(2).randn(5, 16).astype(np.float32)
        xin, y1, y2, y3 = (os.path.join(self.tmp, f) for f in ("x.npy", "y1.npy", "y2.npy", "y3.npy"))
        np.save(xin, x)
        nn_path, weights = os.path.join(self.tmp, "mlp.nn"), os.path.join(self.tmp, "mlp.safetensors")
        so = os.path.join(self.tmp, "mlp_nn.so")
        nnc_cli("run", os.path.join(self.tmp, "mlp.onnx"), "--in", f"x={xin}", "--out", f"y={y1}")
        nnc_cli("run", nn_path, "--weights", weights, "--in", f"x={xin}", "--out", f"y={y2}")
        nnc_cli(nn_path, "-o", so, "--weights", weights)
        nnc_cli("run", so, "--in", f"x={xin}", "--out", f"y={y3}")
        with torch.no_grad():
            want = model(torch.from_numpy(x)).numpy()
        assert_torch_close(self, np.load(y2), want, "nnc run mlp.nn")
        np.testing.assert_array_equal(np.load(y2), np.load(y1))
        np.testing.assert_array_equal(np.load(y3), np.load(y1))

    def test_attention(self):
        text = self.roundtrip("attention", Attention(), (Attention.T, Attention.D), opset=17)
        self.assertIn("n1_weight = Parameter([32])  # n1.weight\n", text)

    def test_transformer_encoder_layer(self):
        layer = torch.nn.TransformerEncoderLayer(32, 4, 64, dropout=0.0, batch_first=True)
        path = os.path.join(self.tmp, "probe.onnx")
        export(layer.eval(), torch.randn(2, 6, 32), path)
        r = subprocess.run([NNC, "check", path], capture_output=True, text=True)
        if r.returncode:
            self.skipTest(f"the ONNX front end does not translate its export yet: {r.stderr.strip()}")
        self.roundtrip("transformer_encoder_layer", layer, (6, 32))

    def test_recurrent_layers(self):
        """RNN, GRU and LSTM, layered and bidirectional: `scan t in 0..T` per forward
        direction, `scan t in reversed(0..T)` per reverse one."""
        for name, kind, kw in (("gru", "GRU", {}), ("lstm2", "LSTM", {"num_layers": 2}),
                               ("rnn_bi", "RNN", {"bidirectional": True}),
                               ("lstm_bi2", "LSTM", {"num_layers": 2, "bidirectional": True})):
            with self.subTest(name):
                text = self.roundtrip(name, Recurrent(kind, **kw), (4, 5), opset=14)
                self.assertIn("scan t in 0..4 {", text)  # later scans' steps are t_2, t_3, ...
                self.assertEqual(bool(re.search(r"scan t(_\d+)? in reversed\(0\.\.4\) \{", text)), "bidirectional" in kw)

    def test_deployed_models(self):
        """The models of issue 17 ("the layers people deploy") beyond the ones above:
        torchvision's mobilenet_v3_small, efficientnet_b0, a small ConvNeXt and a small
        VisionTransformer, nn.TransformerEncoder (2 layers, gelu, norm_first both ways) and a
        decoder layer with causal and key padding masks."""
        import torchvision
        from test_zoo import randomize
        cn = torchvision.models.convnext.CNBlockConfig

        def encoder(norm_first):
            layer = torch.nn.TransformerEncoderLayer(32, 4, 64, dropout=0.0, activation="gelu", batch_first=True,
                                                     norm_first=norm_first)
            return torch.nn.TransformerEncoder(layer, 2)
        cases = (("mobilenet_v3_small", lambda: randomize(torch, torchvision.models.mobilenet_v3_small(), 64), (3, 32, 32)),
                 ("efficientnet_b0", lambda: randomize(torch, torchvision.models.efficientnet_b0(), 64), (3, 32, 32)),
                 ("convnext", lambda: randomize(torch, torchvision.models.ConvNeXt([cn(32, 64, 1), cn(64, None, 1)]), 64),
                  (3, 32, 32)),
                 ("vit", lambda: torchvision.models.VisionTransformer(64, 16, 4, 4, 128, 256), (3, 64, 64)),
                 ("encoder_norm_first", lambda: encoder(True), (6, 32)),
                 ("encoder", lambda: encoder(False), (6, 32)),
                 ("causal_decoder", CausalDecoder, (11, 32)))
        for name, make, shape in cases:
            with self.subTest(name):
                torch.manual_seed(0)
                self.roundtrip(name, make(), shape, opset=14)

    def test_pinned_dim_and_default_weights(self):
        """-D batch=2 writes the size; the weights go beside the .nn by default."""
        model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU()).eval()
        onnx_path = os.path.join(self.tmp, "pin.onnx")
        export(model, torch.randn(2, 4), onnx_path)
        sub = os.path.join(self.tmp, "out")
        os.makedirs(sub, exist_ok=True)
        nn_path = os.path.join(sub, "pinned.nn")
        nnc_cli("import", onnx_path, "-o", nn_path, "-D", "batch=2")
        with open(nn_path) as f:
            self.assertIn("export torch_jit(x: f32[2, 4]) -> (y: f32[2, 3]) {", f.read())
        x = torch.randn(2, 4)
        got = nnc.compile(nn_path, weights=os.path.join(sub, "pinned.safetensors")).torch_jit(x.numpy())
        with torch.no_grad():
            assert_torch_close(self, got, model(x).numpy(), "pinned")


class SlidingWindows(TempDirCase):
    """sliding_windows(), the language function nnc import writes for a window that is not part
    of a convolution or pooling it recognises, against windows cut out in NumPy."""

    def test_against_numpy(self):
        src = os.path.join(self.tmp, "win.nn")
        with open(src, "w") as f:
            f.write("export f(x: f32[N, 2, 7, 6]) -> (y: f32[N, 2, 3, 5, 3, 2]) {\n"
                    "  y = sliding_windows(x, [3, 2], stride=[2, 1], padding=[1, 0, 0, 1], dilation=[1, 2], value=-5.0)\n"
                    "}\n")
        x = np.random.RandomState(3).randn(2, 2, 7, 6).astype(np.float32)
        padded = np.pad(x, ((0, 0), (0, 0), (1, 0), (0, 1)), constant_values=-5.0)
        want = np.empty((2, 2, 3, 5, 3, 2), np.float32)
        for oh in range(3):
            for ow in range(5):
                want[:, :, oh, ow] = padded[:, :, oh * 2:oh * 2 + 3, ow:ow + 3:2]
        np.testing.assert_array_equal(nnc.compile(src).f(x), want)


class Errors(TempDirCase):
    def run_import(self, *args):
        return subprocess.run([NNC, "import", *args], capture_output=True, text=True)

    def expect(self, args, status, *fragments):
        r = self.run_import(*args)
        self.assertEqual(r.returncode, status, r.stderr)
        for f in fragments:
            self.assertIn(f, r.stderr)
        self.assertNotIn("Traceback", r.stderr)
        return r

    def test_missing_file(self):
        p = os.path.join(self.tmp, "absent.onnx")
        self.expect([p, "-o", os.path.join(self.tmp, "a.nn")], 1, f"{p}: error: cannot open: No such file")

    def test_not_onnx(self):
        p = os.path.join(self.tmp, "model.nn")
        with open(p, "w") as f:
            f.write("export f(x: f32[2]) -> (y: f32[2]) { y = x }\n")
        self.expect([p, "-o", os.path.join(self.tmp, "b.nn")], 1, f"{p}: error: not an ONNX model")
        bad = os.path.join(self.tmp, "garbage.onnx")
        with open(bad, "wb") as f:
            f.write(b"\x08\x07not a protobuf at all")
        self.expect([bad, "-o", os.path.join(self.tmp, "c.nn")], 1, f"{bad}: error:")
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "c.nn")))

    def usable_onnx(self):
        from test_onnx import MODELS
        return os.path.join(MODELS, "torch_cnn.onnx")

    def test_unwritable_output(self):
        out = os.path.join(self.tmp, "no", "such", "dir", "m.nn")
        self.expect([self.usable_onnx(), "-o", out], 1, f"{out}: error: cannot write")
        w = os.path.join(self.tmp, "no", "w.safetensors")
        self.expect([self.usable_onnx(), "-o", os.path.join(self.tmp, "d.nn"), "--weights-out", w], 1, f"{w}: error:")
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "d.nn")), "a .nn left without its weights")

    def test_output_over_the_model(self):
        import shutil
        p = os.path.join(self.tmp, "copy.onnx")
        shutil.copy(self.usable_onnx(), p)
        self.expect([p, "-o", p], 1, "must be two files other than the model")
        with open(p, "rb") as f, open(self.usable_onnx(), "rb") as g:
            self.assertEqual(f.read(), g.read(), "the model was overwritten")

    def test_usage(self):
        self.expect([self.usable_onnx()], 2, "missing -o FILE.nn")
        self.expect([], 2, "no model file given")
        self.expect([self.usable_onnx(), "-o", os.path.join(self.tmp, "e.nn"), "-D", "nosuch=3"], 1,
                    "no graph input has a dim named 'nosuch'")
        r = self.run_import("--help")
        self.assertEqual(r.returncode, 0)
        self.assertIn("usage: nnc import FILE.onnx -o FILE.nn", r.stdout)


if __name__ == "__main__":
    unittest.main()
