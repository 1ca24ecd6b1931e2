"""Any resolution from one compiled model: torchvision's resnet18 and mobilenet_v2
(tests/models/, symbolic H and W) compiled once, JIT and AOT, run at several image sizes —
square and not, odd, and small enough that a layer's output is 1x1 — each against PyTorch,
at 1, 2 and 3 threads with the same bits; a too-small input fails the call naming the layer;
-D H=... -D W=... pins the size; pooling with ceil_mode on a symbolic size."""
import copy
import os
import subprocess
import unittest
from unittest import mock

import numpy as np

import nnc
from support import (NNC, ROOT, TempDirCase, TorchvisionCase, assert_close, assert_same_everywhere, compile_so,
                     needs_torch, torch_or_none, write_model)
from test_zoo import randomize

SIZES = [(64, 64), (97, 131), (40, 33), (17, 23)]


@needs_torch
class SymbolicSpatialTest(TorchvisionCase):
    def check_model(self, name, model):
        """Against the model in float64: PyTorch's float32 answer is itself as far from it as
        nnc's, in another order of sums (mobilenet_v2's float32 logits reach the tolerance
        from either side at some inputs), so the exact answer is the reference."""
        torch = self.torch
        exact = copy.deepcopy(model).double()
        weights = nnc.save_safetensors({k: v.numpy() for k, v in model.state_dict().items()},
                                       os.path.join(self.tmp, name + ".safetensors"))
        nn = os.path.join(ROOT, "tests", "models", name + ".nn")
        models = {"jit": nnc.compile(nn, weights=weights), "so": nnc.load(compile_so(nn, self.tmp, weights))}
        for m in models.values():
            self.assertEqual(m.classify.inputs[0].dims, ("N", 3, "H", "W"))
        for h, w in SIZES:
            x = torch.randn(2, 3, h, w)
            with torch.no_grad():
                want = exact(x.double()).float().numpy()
            assert_same_everywhere(self, models, lambda m: m.classify(x.numpy()), (want,), f"{name} at {h}x{w}")

    def test_resnet18(self):
        from torchvision.models import resnet18
        self.check_model("resnet18", randomize(self.torch, resnet18(), 64))

    def test_mobilenet_v2(self):
        from torchvision.models import mobilenet_v2
        self.check_model("mobilenet_v2", randomize(self.torch, mobilenet_v2(), 64))

    def test_onnx_with_dynamic_height_and_width(self):
        """torch.onnx.export with dynamic axes N, H, W: one compiled model, any image size."""
        from torchvision.models import resnet18
        torch = self.torch
        model = randomize(torch, resnet18(), 64)
        path = os.path.join(self.tmp, "r18.onnx")
        torch.onnx.export(model, torch.randn(1, 3, 64, 64), path, input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "N", 2: "H", 3: "W"}, "y": {0: "N"}}, opset_version=13)
        m = nnc.compile(path)
        self.assertEqual(m.forward.inputs[0].dims, ("N", 3, "H", "W"))
        for h, w in SIZES[:3]:
            x = torch.randn(2, 3, h, w)
            with torch.no_grad():
                want = model(x).numpy()
            assert_close(self, m.forward(x.numpy()), want, f"onnx resnet18 at {h}x{w}")
        pinned = nnc.compile(path, defines={"H": 40, "W": 33})  # -D on a dim_param: specialised
        self.assertEqual(pinned.forward.inputs[0].dims, ("N", 3, 40, 33))
        x = torch.randn(1, 3, 40, 33)
        with torch.no_grad():
            assert_close(self, pinned.forward(x.numpy()), model(x).numpy(), "onnx resnet18 pinned to 40x33")
        with self.assertRaises(nnc.CompileError) as e:
            nnc.compile(path, defines={"Q": 3})
        self.assertIn("-D Q=3: no graph input has a dim named 'Q' (dim_param)", str(e.exception))

    def test_pinned_size_is_static(self):
        from torchvision.models import resnet18
        nn = os.path.join(ROOT, "tests", "models", "resnet18.nn")
        weights = nnc.save_safetensors({k: v.numpy() for k, v in resnet18().state_dict().items()},
                                       os.path.join(self.tmp, "r18.safetensors"))
        m = nnc.compile(nn, weights=weights, defines={"H": 32, "W": 48})
        self.assertEqual(m.classify.inputs[0].dims, ("N", 3, 32, 48))
        out = subprocess.run([NNC, "check", "-D", "Q=1", nn], capture_output=True, text=True)
        self.assertEqual(out.returncode, 1)
        self.assertIn("-D Q=1: the model has no top-level constant or symbolic dimension of that name", out.stderr)


@needs_torch
class SmallLayersTest(TempDirCase):
    """torch.nn's own layers on symbolic sizes, against PyTorch, and the run-time size checks."""

    MODEL = """
conv = Conv2d(2, 4, 3, stride=2)
pool = MaxPool2d(3, stride=2, padding=1, ceil_mode=true)
avg = AvgPool2d(2)
export f(x: f32[N, 2, H, W]) -> y: f32[N, 4, (H + 3) / 8, (W + 3) / 8] {
  y = avg(pool(conv(x)))
}
"""

    def test_layers_and_too_small_input(self):
        torch = self.torch = torch_or_none()
        torch.manual_seed(1)
        ref = torch.nn.Sequential(torch.nn.Conv2d(2, 4, 3, stride=2),
                                  torch.nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True), torch.nn.AvgPool2d(2))
        weights = nnc.save_safetensors({"conv." + k.split(".", 1)[1]: v.numpy() for k, v in ref.state_dict().items()},
                                       os.path.join(self.tmp, "w.safetensors"))
        path = write_model(self.MODEL, self.tmp)
        for kind, m in (("jit", nnc.compile(path, weights=weights)),
                        ("so", nnc.load(compile_so(path, self.tmp, weights)))):
            for h, w in [(9, 9), (21, 13), (30, 47)]:
                x = torch.randn(3, 2, h, w)
                with torch.no_grad():
                    want = ref(x).numpy()
                assert_close(self, m.f(x.numpy()), want, f"{kind} at {h}x{w}")
            with self.assertRaises(ValueError) as e:  # conv2d's output height (H-3)/2+1 is 0
                m.f(np.zeros((1, 2, 2, 9), np.float32))
            self.assertRegex(str(e.exception), r"model.nn:\d+:\d+: (conv2d|max_pool2d|avg_pool2d): the output height")
            self.assertIn("is 0 for H = 2 (must be at least 1", str(e.exception))

    POOLS = """
mp2 = MaxPool2d(3, stride=2, padding=1)
mp1 = MaxPool2d(3, stride=1, padding=1)
ap2 = AvgPool2d(3, stride=2, padding=1)
export f(x: f32[N, 5, {H}, {W}]) -> (a: f32[N, 5, {H2}, {W2}], b: f32[N, 5, {H}, {W}], c: f32[N, 5, {H2}, {W2}]) {{
  a = mp2(x)
  b = mp1(x)
  c = ap2(x)
}}
"""

    def test_padded_pools_at_any_size(self):
        """A padded pooling's output row runs as vectors (a padded column read at its unclamped
        columns, the ones outside the input masked), on symbolic and static sizes: rows shorter
        than a vector, around its width and over it, stride 1 and 2, max and average."""
        torch = torch_or_none()
        torch.manual_seed(3)
        F = torch.nn.functional
        sizes = [(1, 1), (2, 3), (5, 7), (13, 31), (16, 16), (17, 33), (34, 35), (64, 70)]
        symbolic = nnc.compile(write_model(self.POOLS.format(H="H", W="W", H2="(H + 1) / 2", W2="(W + 1) / 2"),
                                           self.tmp, "pools"))
        for h, w in sizes:
            pinned = nnc.compile(write_model(self.POOLS.format(H=h, W=w, H2=(h + 1) // 2, W2=(w + 1) // 2),
                                             self.tmp, f"pools{h}"))
            for kind, m in (("symbolic", symbolic), ("pinned", pinned)):
                x = torch.randn(2, 5, h, w)
                want = (F.max_pool2d(x, 3, 2, 1), F.max_pool2d(x, 3, 1, 1), F.avg_pool2d(x, 3, 2, 1))
                got = m.f(x.numpy())
                for g, t, what in zip(got, want, ("max 2", "max 1", "avg 2")):
                    assert_close(self, g, t.numpy(), f"{kind} {what} at {h}x{w}")

    UNET = """
down = Conv2d(3, 8, 3, stride=2, padding=1)
mid = Conv2d(8, 8, 3, padding=1)
out = Conv2d(11, 2, 1)
export f(x: f32[N, 3, H, W]) -> y: f32[N, 2, H, W] {
  d = relu(mid(relu(down(x))))
  u = interpolate(d, size=x.shape[2:], mode="bilinear")
  y = out(cat([u, x], axis=1))
}
"""

    def test_decoder_upsamples_to_the_skip_size(self):
        """A U-Net step at odd sizes: a stride-2 encoder, interpolate(size=x.shape[2:]) back to
        the skip connection's (symbolic) size, concatenated with it."""
        torch = torch_or_none()
        F = torch.nn.functional
        torch.manual_seed(4)
        down, mid, out = torch.nn.Conv2d(3, 8, 3, stride=2, padding=1), torch.nn.Conv2d(8, 8, 3, padding=1), \
            torch.nn.Conv2d(11, 2, 1)
        sd = {f"{n}.{k}": v.numpy() for n, mod in (("down", down), ("mid", mid), ("out", out))
              for k, v in mod.state_dict().items()}
        weights = nnc.save_safetensors(sd, os.path.join(self.tmp, "u.safetensors"))
        path = write_model(self.UNET, self.tmp, "unet")
        for kind, m in (("jit", nnc.compile(path, weights=weights)),
                        ("so", nnc.load(compile_so(path, self.tmp, weights)))):
            for h, w in [(9, 13), (16, 16), (5, 30)]:
                x = torch.randn(2, 3, h, w)
                with torch.no_grad():
                    d = F.relu(mid(F.relu(down(x))))
                    want = out(torch.cat([F.interpolate(d, size=x.shape[2:], mode="bilinear"), x], 1)).numpy()
                assert_close(self, m.f(x.numpy()), want, f"{kind} at {h}x{w}")

    def test_onnx_resize_to_symbolic_sizes(self):
        """ONNX Resize with dynamic H, W: nearest by a scale factor, nearest to another input's
        (symbolic) size, bilinear with align_corners by a scale factor."""
        torch = torch_or_none()
        F = torch.nn.functional

        class Resize(torch.nn.Module):
            def forward(self, x, s):
                return (F.interpolate(x, scale_factor=2, mode="nearest"), F.interpolate(x, size=s.shape[2:]),
                        F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True))

        path = os.path.join(self.tmp, "resize.onnx")
        torch.onnx.export(Resize(), (torch.randn(1, 3, 5, 6), torch.randn(1, 3, 9, 7)), path, input_names=["x", "s"],
                          output_names=["a", "b", "c"], opset_version=13,
                          dynamic_axes={"x": {2: "H", 3: "W"}, "s": {2: "H2", 3: "W2"}})
        m = nnc.compile(path)
        for h, w, h2, w2 in [(5, 6, 9, 7), (3, 8, 4, 20), (11, 2, 1, 3)]:
            x, s = torch.randn(1, 3, h, w), torch.randn(1, 3, h2, w2)
            for name, g, want in zip("abc", m.forward(x.numpy(), s.numpy()), Resize()(x, s)):
                assert_close(self, g, want.numpy(), f"{name} at {h}x{w} to {h2}x{w2}")

    def test_conv1d_any_length(self):
        torch = torch_or_none()
        torch.manual_seed(2)
        conv = torch.nn.Conv1d(2, 4, 3, padding=1, stride=2)
        weights = nnc.save_safetensors({"conv." + k: v.numpy() for k, v in conv.state_dict().items()},
                                       os.path.join(self.tmp, "c.safetensors"))
        path = write_model("conv = Conv1d(2, 4, 3, padding=1, stride=2)\npool = MaxPool1d(2)\n"
                           "export f(x: f32[N, 2, L]) -> y: f32[N, 4, (L + 1) / 4] {\n  y = pool(conv(x))\n}\n",
                           self.tmp, "c1")
        m = nnc.compile(path, weights=weights)
        for length in (4, 9, 50):
            x = torch.randn(2, 2, length)
            with torch.no_grad():
                want = torch.nn.functional.max_pool1d(conv(x), 2).numpy()
            assert_close(self, m.f(x.numpy()), want, f"conv1d at L = {length}")

    RESAMPLE = """
up = ConvTranspose2d(12, 3, 3, stride=2, padding=1)
gn = GroupNorm(3, 12)
shuffle = PixelShuffle(2)
export f(x: f32[N, 12, H, W]) -> (a: f32[N, 12, 2 * H, 2 * W], b: f32[N, 12, 5, 7], c: f32[N, 3, 2 * H, 2 * W],
                                   d: f32[N, 3, 2 * H - 1, 2 * W - 1], e: f32[N, 12, H + 3, W + 1],
                                   g: f32[N, 12, 3 * H / 2, 3 * W / 2], k: f32[N, 12, H, W]) {
  a = interpolate(x, scale_factor=2, mode="nearest")
  b = interpolate(x, size=[5, 7], mode="bilinear")
  c = shuffle(x)
  d = up(x)
  e = pad(x, [0, 1, 2, 1], value=0.5)
  g = interpolate(x, scale_factor=1.5, mode="bilinear", align_corners=true)
  k = gn(x)
}
"""

    def test_resampling_and_normalization(self):
        """interpolate (nearest, bilinear, align_corners, to a static size), pixel_shuffle,
        a transposed convolution, pad and GroupNorm on a symbolic size."""
        torch = torch_or_none()
        F = torch.nn.functional
        torch.manual_seed(3)
        up, gn = torch.nn.ConvTranspose2d(12, 3, 3, stride=2, padding=1), torch.nn.GroupNorm(3, 12)
        with torch.no_grad():
            gn.weight.uniform_(0.5, 1.5)
            gn.bias.normal_()
        sd = {f"up.{k}": v.numpy() for k, v in up.state_dict().items()}
        sd.update({f"gn.{k}": v.numpy() for k, v in gn.state_dict().items()})
        weights = nnc.save_safetensors(sd, os.path.join(self.tmp, "r.safetensors"))
        path = write_model(self.RESAMPLE, self.tmp, "resample")
        for kind, m in (("jit", nnc.compile(path, weights=weights)),
                        ("so", nnc.load(compile_so(path, self.tmp, weights)))):
            for h, w in [(4, 6), (9, 5), (16, 16)]:
                x = torch.randn(2, 12, h, w)
                with torch.no_grad():
                    want = (F.interpolate(x, scale_factor=2, mode="nearest"),
                            F.interpolate(x, size=(5, 7), mode="bilinear", align_corners=False),
                            F.pixel_shuffle(x, 2), up(x), F.pad(x, [0, 1, 2, 1], value=0.5),
                            F.interpolate(x, scale_factor=1.5, mode="bilinear", align_corners=True), gn(x))
                got = m.f(x.numpy())
                for name, g, w_ in zip("abcdegk", got, want):
                    assert_close(self, g, w_.numpy(), f"{kind} at {h}x{w}: output {name}")

@needs_torch
class DirectConvolutionTest(TempDirCase):
    """Convolutions on symbolic H, W run as the direct convolution (a padded copy per image and
    group, register tiles over run-time rows and columns; convplan.h), not im2col + sgemm:
    every layout it handles against PyTorch at sizes from 1x1 up, rows whose last vector is
    partial or whole, at 1, 2 and 3 threads with the same bits, JIT and AOT; and a 1x1
    convolution as row tiles over H*W columns (gemm.c)."""

    MODEL = """
c1 = Conv2d(8, 16, 3, padding=1)
c2 = Conv2d(8, 8, 3, stride=2, padding=1, groups=8)
c3 = Conv2d(8, 10, 3, padding=2, dilation=2, groups=2)
c4 = Conv2d(8, 5, 7, stride=2, padding=3)
c5 = Conv2d(8, 80, 3, padding=1)
c6 = Conv2d(80, 4, 1, stride=2)
c7 = Conv2d(8, 4, 5, stride=3, padding=2)
c8 = Conv2d(8, 7, 1)
c9 = Conv2d(80, 6, 1)
export f(x: f32[N, 8, H, W]) -> (a: f32[N, 16, H, W], b: f32[N, 8, (H + 1) / 2, (W + 1) / 2], c: f32[N, 10, H, W],
                                  d: f32[N, 5, (H + 1) / 2, (W + 1) / 2], e: f32[N, 4, (H + 1) / 2, (W + 1) / 2],
                                  g: f32[N, 4, (H + 2) / 3, (W + 2) / 3], h: f32[N, 7, H, W],
                                  k: f32[N, 6, H, W]) {
  a = c1(x)
  b = relu(c2(x))
  c = c3(x)
  d = c4(x)
  p = relu(c5(relu(x)))
  e = c6(p)
  k = c9(p)
  g = c7(x)
  h = c8(x)
}
"""
    LAYERS = {"c1": dict(in_channels=8, out_channels=16, kernel_size=3, padding=1),
              "c2": dict(in_channels=8, out_channels=8, kernel_size=3, stride=2, padding=1, groups=8),
              "c3": dict(in_channels=8, out_channels=10, kernel_size=3, padding=2, dilation=2, groups=2),
              "c4": dict(in_channels=8, out_channels=5, kernel_size=7, stride=2, padding=3),
              "c5": dict(in_channels=8, out_channels=80, kernel_size=3, padding=1),
              "c6": dict(in_channels=80, out_channels=4, kernel_size=1, stride=2),
              "c7": dict(in_channels=8, out_channels=4, kernel_size=5, stride=3, padding=2),
              "c8": dict(in_channels=8, out_channels=7, kernel_size=1),
              "c9": dict(in_channels=80, out_channels=6, kernel_size=1)}

    def test_layouts_at_any_size(self):
        torch = torch_or_none()
        torch.manual_seed(5)
        layers = {n: torch.nn.Conv2d(**kw) for n, kw in self.LAYERS.items()}
        weights = nnc.save_safetensors({f"{n}.{k}": v.numpy() for n, c in layers.items()
                                        for k, v in c.state_dict().items()}, os.path.join(self.tmp, "w.safetensors"))
        path = write_model(self.MODEL, self.tmp, "direct")
        loops = subprocess.run([NNC, "dump", "--stage=loops", path], capture_output=True, text=True, check=True).stdout
        direct = [line for line in loops.splitlines() if line.lstrip().startswith("conv ") and " planes=" in line]
        self.assertEqual(len(direct), 9, "every convolution a direct one on run-time sizes")
        self.assertEqual(sum(" batch=16" in line for line in direct), 2, "c1 and c5 as Winograd's products")
        self.assertEqual(sum(" tight" in line for line in direct), 2, "the 1x1 ones as row tiles (products)")
        # c9's B of 80 rows too, at any size (80 x 64 x 70 outgrows L2: swept in vector blocks)
        self.assertEqual(loops.count("sgemm"), 0)
        models = {"jit": nnc.compile(path, weights=weights), "so": nnc.load(compile_so(path, self.tmp, weights))}
        L = layers
        for h, w in [(1, 1), (2, 3), (3, 2), (1, 9), (4, 17), (9, 16), (13, 31), (33, 40), (64, 70)]:
            x = torch.randn(2, 8, h, w)
            with torch.no_grad():
                p = torch.relu(L["c5"](torch.relu(x)))
                want = (L["c1"](x), torch.relu(L["c2"](x)), L["c3"](x), L["c4"](x), L["c6"](p), L["c7"](x), L["c8"](x),
                        L["c9"](p))
            assert_same_everywhere(self, models, lambda m: m.f(x.numpy()), tuple(t.numpy() for t in want),
                                   f"direct convolutions at {h}x{w}")

    DEPTHWISE = """
d1 = Conv2d(64, 64, 3, padding=1, groups=64)
d2 = Conv2d(48, 48, 5, stride=2, padding=2, groups=48, bias=false)
export f(x: f32[N, 64, H, W]) -> (a: f32[N, 64, H, W], b: f32[N, 48, (H + 1) / 2, (W + 1) / 2]) {
  a = relu6(d1(x))
  b = d2(x[:, 0:48])
}
"""

    def test_depthwise_blocks_at_any_size(self):
        """Depthwise convolutions on symbolic maps run in blocks of groups (convplan.h
        conv_plan_group_block: 8 and 6 groups here): batched while the block's copies and
        outputs fit in a quarter of L2 at run time, else a group at a time, each with the
        block's epilogue; both ways against PyTorch at small and large maps, 1-3 threads."""
        torch = torch_or_none()
        torch.manual_seed(7)
        d1 = torch.nn.Conv2d(64, 64, 3, padding=1, groups=64)
        d2 = torch.nn.Conv2d(48, 48, 5, stride=2, padding=2, groups=48, bias=False)
        tensors = {f"d1.{k}": v for k, v in d1.state_dict().items()}
        tensors.update({f"d2.{k}": v for k, v in d2.state_dict().items()})
        weights = nnc.save_safetensors({k: v.numpy() for k, v in tensors.items()}, os.path.join(self.tmp, "w.safetensors"))
        path = write_model(self.DEPTHWISE, self.tmp, "depthwise")
        loops = subprocess.run([NNC, "dump", "--stage=loops", path], capture_output=True, text=True, check=True).stdout
        self.assertIn(" batch=8", loops, "d1's blocks of 8 groups as one batch")
        self.assertIn(" batch=6", loops, "d2's blocks of 6 groups as one batch")
        # a quarter of a 16 KiB L2: every map but the smallest runs a group at a time
        for l2 in (None, 16384):
            env = {} if l2 is None else {"NNC_PLAN_L2": str(l2)}
            with mock.patch.dict(os.environ, env):
                models = {"jit": nnc.compile(path, weights=weights),
                          "so": nnc.load(compile_so(path, self.tmp, weights, name=f"depthwise_{l2}"))}
            for h, w in [(1, 1), (3, 5), (7, 7), (14, 14), (13, 31), (40, 33)]:
                x = torch.randn(2, 64, h, w)
                with torch.no_grad():
                    want = (torch.nn.functional.relu6(d1(x)), d2(x[:, 0:48]))
                assert_same_everywhere(self, models, lambda m: m.f(x.numpy()), tuple(t.numpy() for t in want),
                                       f"depthwise blocks at {h}x{w}, L2 {l2 or 'the host'}")

    WINOGRAD = """
w1 = Conv2d(8, 16, 3, padding=1)
w2 = Conv2d(16, 16, 3, padding=1)
w3 = Conv2d(16, 16, 3, groups=2)
w4 = Conv2d(16, 8, 3, padding=1, bias=false)
export f(x: f32[N, 8, {H}, {W}]) -> (a: f32[N, 16, {H}, {W}], b: f32[N, 16, {H}, {W}],
                                      c: f32[N, 16, {H} - 2, {W} - 2], d: f32[N, 8, {H}, {W}]) {{
  a = relu(w1(x))
  b = relu(w2(a) + a)
  c = w3(b)
  d = w4(b)
}}
"""
    WINOGRAD_LAYERS = {"w1": dict(in_channels=8, out_channels=16, kernel_size=3, padding=1),
                       "w2": dict(in_channels=16, out_channels=16, kernel_size=3, padding=1),
                       "w3": dict(in_channels=16, out_channels=16, kernel_size=3, groups=2),
                       "w4": dict(in_channels=16, out_channels=8, kernel_size=3, padding=1, bias=False)}

    def test_winograd_at_any_size(self):
        """3x3 stride-1 convolutions run as Winograd F(2x2, 3x3) on run-time sizes, odd ones
        too (the last tile row and column half outside the output), tile rows longer than a
        static size would take, and one side static (odd): with a bias and ReLU, a residual,
        groups, no padding, no bias."""
        torch = torch_or_none()
        torch.manual_seed(6)
        layers = {n: torch.nn.Conv2d(**kw) for n, kw in self.WINOGRAD_LAYERS.items()}
        weights = nnc.save_safetensors({f"{n}.{k}": v.numpy() for n, c in layers.items()
                                        for k, v in c.state_dict().items()}, os.path.join(self.tmp, "w.safetensors"))
        L = layers
        sizes = [(3, 3), (3, 4), (4, 3), (5, 7), (8, 8), (9, 16), (13, 31), (34, 21), (40, 71)]
        for dims, name in ((("H", "W"), "winograd"), (("5", "W"), "rows5"), (("H", "7"), "cols7")):
            path = write_model(self.WINOGRAD.format(H=dims[0], W=dims[1]), self.tmp, name)
            loops = subprocess.run([NNC, "dump", "--stage=loops", path], capture_output=True, text=True,
                                   check=True).stdout
            self.assertEqual(loops.count(" batch=16 "), 4, f"{name}: every convolution as Winograd's 16 products")
            models = {"jit": nnc.compile(path, weights=weights), "so": nnc.load(compile_so(path, self.tmp, weights))}
            for h, w in sizes:
                h, w = int(dims[0]) if dims[0] != "H" else h, int(dims[1]) if dims[1] != "W" else w
                x = torch.randn(2, 8, h, w)
                with torch.no_grad():
                    a = torch.relu(L["w1"](x))
                    b = torch.relu(L["w2"](a) + a)
                    want = (a, b, L["w3"](b), L["w4"](b))
                assert_same_everywhere(self, models, lambda m: m.f(x.numpy()), tuple(t.numpy() for t in want),
                                       f"Winograd ({name}) at {h}x{w}")


class MobileNetBlockTest(TempDirCase):
    """mobilenet_v2's layers on symbolic H, W at sizes around a vector's width (8 floats):
    a 1x1 expansion with its norm and ReLU6 (row tiles, the epilogue one loop over the
    run-time plane), depthwise 3x3 convolutions at stride 1 and 2 (the padded copy's rows as
    vectors of run-time length: whole vectors, the rest as an overlapping one, rows shorter
    than a vector as one masked vector; the tiles' stores unmasked except near a plane's end, a partial
    row end spilling into rows written later) and a residual projection, against PyTorch at
    1, 2 and 3 threads with the same bits, JIT and AOT."""

    MODEL = """
expand = Sequential(Conv2d(8, 24, 1, bias=false), BatchNorm2d(24))
dw1 = Conv2d(24, 24, 3, padding=1, groups=24, bias=false)
dw2 = Conv2d(24, 24, 3, stride=2, padding=1, groups=24)
project = Conv2d(24, 8, 1)
export f(x: f32[N, 8, H, W]) -> (a: f32[N, 8, H, W], b: f32[N, 24, (H + 1) / 2, (W + 1) / 2]) {
  h = clamp(expand(x), 0, 6)
  a = x + project(clamp(dw1(h), 0, 6))
  b = clamp(dw2(h), 0, 6)
}
"""

    def test_mbv2_blocks_at_any_size(self):
        torch = torch_or_none()
        torch.manual_seed(7)
        nn = torch.nn
        expand = nn.Sequential(nn.Conv2d(8, 24, 1, bias=False), nn.BatchNorm2d(24))
        dw1 = nn.Conv2d(24, 24, 3, padding=1, groups=24, bias=False)
        dw2 = nn.Conv2d(24, 24, 3, stride=2, padding=1, groups=24)
        project = nn.Conv2d(24, 8, 1)
        with torch.no_grad():
            bn = expand[1]
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2.0)
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.5, 0.5)
        layers = {"expand": expand.eval(), "dw1": dw1, "dw2": dw2, "project": project}
        weights = nnc.save_safetensors({f"{n}.{k}": v.numpy() for n, l in layers.items()
                                        for k, v in l.state_dict().items()}, os.path.join(self.tmp, "w.safetensors"))
        path = write_model(self.MODEL, self.tmp, "mbv2_blocks")
        models = {"jit": nnc.compile(path, weights=weights), "so": nnc.load(compile_so(path, self.tmp, weights))}
        for h, w in [(1, 1), (3, 2), (2, 7), (7, 7), (5, 8), (8, 9), (3, 16), (9, 17), (14, 14), (11, 29), (28, 28)]:
            x = torch.randn(2, 8, h, w)
            with torch.no_grad():
                e = torch.clamp(expand(x), 0, 6)
                want = (x + project(torch.clamp(dw1(e), 0, 6)), torch.clamp(dw2(e), 0, 6))
            assert_same_everywhere(self, models, lambda m: m.f(x.numpy()), tuple(t.numpy() for t in want),
                                   f"mobilenet_v2 blocks at {h}x{w}")


if __name__ == "__main__":
    unittest.main()
