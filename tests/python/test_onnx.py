"""ONNX models through nnc (issue 19, item 2's first op set: compiler/onnx/onnx_ops.c):
`nnc run model.onnx` (JIT), `nnc model.onnx -o model.so` then `nnc run model.so` (AOT), and
nnc.compile("model.onnx"), each against PyTorch's outputs (rtol 1e-4, atol 1e-5) at several
batch sizes from one compilation (the exporter's dynamic batch is a symbolic dim).

Without PyTorch: the committed export tests/unit/onnx_models/torch_cnn.onnx and its golden.
With PyTorch: two models exported here — a CNN (BatchNormalization, Conv (with batch norms
the exporter folds into it), Relu, Sigmoid, MaxPool, AveragePool, GlobalAveragePool, Add, Flatten, Gemm, Clip,
Softmax) and a model of MatMul, Reshape, Transpose, Concat, Neg, Div, Sub, LeakyRelu, Clip as
relu6, Softmax over an inner axis and a Linear without bias.  Unsupported ops and attributes
are errors naming the node (exit status 1)."""
import os
import subprocess
import unittest

import numpy as np

import nnc
from support import NNC, ROOT, TempDirCase, assert_close, needs_torch, nnc_cli, torch_or_none

MODELS = os.path.join(ROOT, "tests", "unit", "onnx_models")


def run_cli(tc, model, x, name="y"):
    """nnc run MODEL --in x=... --out y=...; the output array."""
    xin, yout = os.path.join(tc.tmp, "in.npy"), os.path.join(tc.tmp, "out.npy")
    np.save(xin, x)
    nnc_cli("run", model, "--in", f"x={xin}", "--out", f"{name}={yout}")
    return np.load(yout)


def check_all_ways(tc, onnx_path, inputs, reference):
    """JIT, AOT and nnc.compile agree with reference(x) for every x of inputs."""
    so = os.path.join(tc.tmp, os.path.basename(onnx_path)[:-5] + ".so")
    nnc_cli(onnx_path, "-o", so)
    model = nnc.compile(onnx_path)
    for x in inputs:
        want = reference(x)
        assert_close(tc, run_cli(tc, onnx_path, x), want, f"JIT of {onnx_path} at {x.shape}")
        assert_close(tc, run_cli(tc, so, x), want, f"AOT of {onnx_path} at {x.shape}")
        assert_close(tc, model.forward(x), want, f"nnc.compile of {onnx_path} at {x.shape}")


class CommittedExport(TempDirCase):
    def test_torch_cnn(self):
        path = os.path.join(MODELS, "torch_cnn.onnx")
        x, y = np.load(os.path.join(MODELS, "torch_cnn.x.npy")), np.load(os.path.join(MODELS, "torch_cnn.y.npy"))
        assert_close(self, run_cli(self, path, x), y, "JIT")
        so = os.path.join(self.tmp, "torch_cnn.so")
        nnc_cli(path, "-o", so)
        assert_close(self, run_cli(self, so, x), y, "AOT")

    def test_check_and_dump(self):
        path = os.path.join(MODELS, "torch_cnn.onnx")
        self.assertIn("ok", nnc_cli("check", path).stdout)
        ir = nnc_cli("dump", "--stage=ir", path).stdout
        self.assertIn("entry forward(x: f32[N, 3, 8, 8]) -> (y: f32[N, 10])", ir)
        self.assertIn('param "5.weight" : f32[10, 64]', ir)

    def expect_error(self, args, message):
        r = subprocess.run([NNC, *args], capture_output=True, text=True)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertEqual(r.stderr, message)

    def test_unsupported(self):
        p = os.path.join(MODELS, "import_op.onnx")
        self.expect_error(["check", p], f"{p}: error: node 0 'up0' (Resize, opset 13): expected exactly one of "
                          "scales (input 2) and sizes (input 3)\n")
        p = os.path.join(MODELS, "import_attr.onnx")
        self.expect_error(["check", p], f"{p}: error: node 0 'r' (Relu, opset 13): attribute 'alpha' is not supported\n")
        p = os.path.join(MODELS, "import_attr_value.onnx")
        self.expect_error(["check", p], f"{p}: error: node 0 'pool' (MaxPool, opset 13): attribute 'storage_order' "
                          "is 1: only 0 (row major) is supported\n")
        p = os.path.join(MODELS, "bad_raw_size.onnx")
        self.expect_error(["run", p], f"{p}: error: initializer 'fc.weight': raw_data holds 396 bytes, expected 400 "
                          "for f32[10, 10]\n")
        p = os.path.join(MODELS, "torch_cnn.onnx")
        w = os.path.join(MODELS, "external.bin")
        self.expect_error([p, "-o", os.path.join(self.tmp, "x.so"), "--weights", w],
                          f"{p}: error: --weights {w}: an ONNX model's weights are its initializers\n")


def cnn_module(torch):
    nn, F = torch.nn, torch.nn.functional

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.b0 = nn.BatchNorm2d(3)  # not after a convolution: exported as BatchNormalization
            self.c1, self.b1 = nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8)
            self.c2, self.b2 = nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=2), nn.BatchNorm2d(8)
            self.fc = nn.Linear(8 * 4 * 4, 10)

        def forward(self, x):
            y = torch.relu(self.b1(self.c1(self.b0(x))))
            y = torch.sigmoid(self.b2(self.c2(y)))
            y = F.max_pool2d(y, 2) + F.avg_pool2d(y, 3, stride=2, padding=1)
            y = y + F.adaptive_avg_pool2d(y, 1)
            y = torch.clamp(self.fc(torch.flatten(y, 1)), -1.0, 1.0)
            return torch.softmax(y, dim=1)

    torch.manual_seed(0)
    m = Net().eval()
    for bn in (m.b0, m.b1, m.b2):  # statistics that are not the identity
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.data.uniform_(0.5, 1.5)
        bn.bias.data.uniform_(-0.5, 0.5)
    return m


def mix_module(torch):
    nn, F = torch.nn, torch.nn.functional

    class Mix(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.randn(16, 12) / 4)
            self.lin = nn.Linear(6, 5, bias=False)

        def forward(self, x):                       # x [N, 4, 16]
            y = (x @ self.w).reshape(-1, 4, 3, 4)    # MatMul, Reshape
            y = y.transpose(1, 2)                    # [N, 3, 4, 4]
            y = torch.cat([y, -y], dim=1)            # [N, 6, 4, 4]
            y = F.leaky_relu(y, 0.1) / 2.0 - 0.25
            y = F.relu6(y * 8.0).reshape(-1, 6, 16)
            y = torch.softmax(y, dim=1)              # an inner axis
            return self.lin(y.transpose(1, 2))       # [N, 16, 5]

    torch.manual_seed(1)
    return Mix().eval()


class TorchExports(TempDirCase):
    def export(self, torch, m, x, name):
        path = os.path.join(self.tmp, name + ".onnx")
        torch.onnx.export(m, torch.from_numpy(x), path, input_names=["x"], output_names=["y"], opset_version=13,
                          dynamic_axes={"x": {0: "N"}, "y": {0: "N"}})
        return path

    def check(self, make, shape, name):
        torch = torch_or_none()
        m = make(torch)
        rng = np.random.default_rng(19)
        inputs = [rng.standard_normal((n, *shape)).astype(np.float32) for n in (2, 1, 5)]
        path = self.export(torch, m, inputs[0], name)
        with torch.no_grad():
            check_all_ways(self, path, inputs, lambda x: m(torch.from_numpy(x)).numpy())

    @needs_torch
    def test_cnn(self):
        self.check(cnn_module, (3, 16, 16), "cnn")

    @needs_torch
    def test_mix(self):
        self.check(mix_module, (4, 16), "mix")


if __name__ == "__main__":
    unittest.main()
