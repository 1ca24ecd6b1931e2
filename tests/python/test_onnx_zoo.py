"""torchvision's model zoo through ONNX (issue 19): resnet18, mobilenet_v2,
mobilenet_v3_small and efficientnet_b0, randomized as test_zoo.py does (seed 0), exported by
torch.onnx.export (opset 17, the batch a symbolic dim "N" of input and output), compiled once
with nnc.compile and compared with PyTorch at batch 1 and 2; resnet18 also through
`nnc model.onnx -o model.so`.  64x64 images keep the test quick.

The reference is the PyTorch model run in float64: the exporter folds each BatchNorm into its
convolution, so nnc computes in float32 from other weights than PyTorch's float32 run, and the
two float32 results differ by float32 noise of the output's scale (up to 3e-5 on outputs of
magnitude 2 to 11 for mobilenet_v2 and efficientnet_b0), more than atol 1e-5 on the outputs
near zero.  So each element must be within rtol 1e-4 and atol 1e-5 x max(1, max |y|) of the
float64 result, and nnc's largest error at most twice PyTorch float32's own (or 1e-6 x max |y|)."""
import os
import unittest

import numpy as np

import nnc
from support import TempDirCase, assert_close, compile_so, needs_torch, torch_or_none
from test_zoo import randomize

IMG = 64


def export(torch, model, path):
    x = torch.randn(1, 3, IMG, IMG)
    torch.onnx.export(model, x, path, opset_version=17, input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "N"}, "y": {0: "N"}})


@needs_torch
class OnnxZooTest(TempDirCase):
    def setUp(self):
        try:
            import torchvision  # noqa: F401
        except ImportError:
            self.skipTest("torchvision is not installed")

    def check(self, name, aot=False):
        torch = torch_or_none()
        import torchvision
        torch.manual_seed(0)
        model = randomize(torch, getattr(torchvision.models, name)(), IMG)
        path = os.path.join(self.tmp, name + ".onnx")
        export(torch, model, path)
        compiled = {"jit": nnc.compile(path)}
        if aot:
            compiled["so"] = nnc.load(compile_so(path, self.tmp))
        for batch in (1, 2):
            x = torch.randn(batch, 3, IMG, IMG)
            with torch.no_grad():
                want32 = model(x).numpy()
                want = model.double()(x.double()).numpy()
                model.float()
            scale = max(1.0, float(np.abs(want).max()))
            torch_err = float(np.abs(want32 - want).max())
            for kind, m in compiled.items():
                got = m.forward(x.numpy())
                what = f"{name}, {kind}, batch {batch}"
                close = np.abs(got - want) <= 1e-5 * scale + 1e-4 * np.abs(want)
                self.assertTrue(close.all(), f"{what}: {int((~close).sum())} elements differ from float64")
                err = float(np.abs(got - want).max())
                self.assertLessEqual(err, max(2 * torch_err, 1e-6 * scale),
                                     f"{what}: error {err:.3g}, PyTorch float32's {torch_err:.3g}")

    def test_resnet18(self):
        self.check("resnet18", aot=True)

    def test_mobilenet_v2(self):
        self.check("mobilenet_v2")

    def test_mobilenet_v3_small(self):
        self.check("mobilenet_v3_small")

    def test_efficientnet_b0(self):
        self.check("efficientnet_b0")


def shapes_model(torch):
    """Reshapes against the dynamic batch, which the exporter writes as Shape -> Gather ->
    Unsqueeze -> Concat -> Reshape, with Slice, ReduceMean, Squeeze, LayerNormalization,
    InstanceNormalization, Pow, ConvTranspose and DepthToSpace around them."""
    nn = torch.nn

    class Shapes(nn.Module):
        def __init__(self):
            super().__init__()
            self.up = nn.ConvTranspose2d(4, 8, 3, stride=2, padding=1, output_padding=1)
            self.inorm = nn.InstanceNorm2d(2, affine=True)
            self.norm = nn.LayerNorm(4)
            self.fc = nn.Linear(4 * 36, 5)

        def forward(self, x):  # [N, 4, 6, 6]
            n = x.shape[0]
            y = x.reshape(n, 4, -1).mean(dim=2, keepdim=True).squeeze(2)        # [N, 4]
            z = self.norm(x.flatten(2).transpose(1, 2)[:, 1:5, :]).pow(2).sum(1)  # [N, 4]
            u = self.inorm(torch.nn.functional.pixel_shuffle(self.up(x), 2))     # [N, 2, 24, 24]
            v = u.reshape(n, 2, 4, -1).amax(dim=3).reshape(n, -1)[:, :4]         # [N, 4]
            return self.fc(x.view(x.size(0), -1)) + (y + z + v).sum(1, keepdim=True)

    torch.manual_seed(0)
    model = Shapes().eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return model


@needs_torch
class ExporterShapesTest(TempDirCase):
    def test_shape_subgraphs_fold_against_the_symbolic_batch(self):
        torch = torch_or_none()
        import onnx
        model = shapes_model(torch)
        path = os.path.join(self.tmp, "shapes.onnx")
        torch.onnx.export(model, torch.randn(1, 4, 6, 6), path, opset_version=17, input_names=["x"],
                          output_names=["y"], dynamic_axes={"x": {0: "N"}, "y": {0: "N"}})
        ops = {n.op_type for n in onnx.load(path).graph.node}
        self.assertTrue({"Shape", "Gather", "Unsqueeze", "Concat", "Reshape"} <= ops, ops)
        m = nnc.compile(path)
        for batch in (1, 3):
            x = torch.randn(batch, 4, 6, 6)
            with torch.no_grad():
                want = model(x).numpy()
            assert_close(self, m.forward(x.numpy()), want, f"batch {batch}")

    def test_resize(self):
        """F.interpolate as torch exports it: nearest (asymmetric, floor) by a scale, bilinear
        (half_pixel) to a size whose batch is the symbolic N, bilinear with align_corners."""
        torch = torch_or_none()
        F = torch.nn.functional

        class Up(torch.nn.Module):
            def forward(self, x):  # [N, 3, 5, 7]
                a = F.interpolate(x, scale_factor=2, mode="nearest")
                b = F.interpolate(x, size=(10, 14), mode="bilinear", align_corners=False)
                c = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)
                d = F.interpolate(x, size=(3, 4), mode="bilinear", align_corners=False)
                return a + b + c + F.interpolate(d, size=(10, 14), mode="nearest")

        path = os.path.join(self.tmp, "up.onnx")
        torch.onnx.export(Up(), torch.randn(1, 3, 5, 7), path, opset_version=17, input_names=["x"],
                          output_names=["y"], dynamic_axes={"x": {0: "N"}, "y": {0: "N"}})
        m = nnc.compile(path)
        for batch in (1, 2):
            x = torch.randn(batch, 3, 5, 7)
            assert_close(self, m.forward(x.numpy()), Up()(x).numpy(), f"batch {batch}")


if __name__ == "__main__":
    unittest.main()
