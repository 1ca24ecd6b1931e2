"""torchvision's model zoo, each model written in tests/models/<name>.nn and run with the
model's state_dict unchanged, against PyTorch, JIT and AOT, 1, 2 and 3 threads:
resnet18 (also at 160x192, where layer4's 5x6 maps run flat), mobilenet_v2, mobilenet_v3_small,
efficientnet_b0 and a small ConvNeXt.

Each model is initialised with a fixed seed; every convolution and linear layer gets PyTorch's
default initialisation (nonzero biases), every BatchNorm a random affine transform and running
statistics measured on random images in training mode (so that activations stay of order 1)
and then perturbed, so that they matter; num_batches_tracked stays in the state_dict.
The images are smaller than 224 so that the tests stay quick."""
import os
import unittest
from unittest import mock


import nnc
from support import ROOT, TorchvisionCase, assert_same_everywhere, compile_so, needs_torch, torch_or_none


def randomize(torch, model, img):
    """Random conv/linear weights and biases, BatchNorm affine and running statistics, in place;
    returns the model in eval mode."""
    nn = torch.nn
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.reset_parameters()
            elif isinstance(m, (nn.BatchNorm2d, nn.LayerNorm)):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(std=0.2)
            if isinstance(m, nn.BatchNorm2d):
                m.momentum = None  # a cumulative average over the calibration batches
        model.train()
        for _ in range(2):
            model(torch.randn(4, 3, img, img))
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.add_(torch.randn_like(m.running_mean) * m.running_var.sqrt() * 0.2)
                m.running_var.mul_(torch.empty_like(m.running_var).uniform_(0.7, 1.4))
    return model.eval()


def convnext_toy(torch):
    """torchvision's ConvNeXt with stages 32/64/128 of depths 2/1/1 and 10 classes, its
    layer_scale random and the rest as randomize leaves it (also bench/zoo_bench.py's)."""
    from torchvision.models import ConvNeXt
    from torchvision.models.convnext import CNBlockConfig
    model = ConvNeXt([CNBlockConfig(32, 64, 2), CNBlockConfig(64, 128, 1), CNBlockConfig(128, None, 1)],
                     num_classes=10)
    with torch.no_grad():
        for block in model.modules():
            if hasattr(block, "layer_scale"):
                block.layer_scale.normal_(std=0.5)
    return randomize(torch, model, 64)


@needs_torch
class ZooTest(TorchvisionCase):
    def check(self, name, model, img, batch=2, width=None):
        """Compares tests/models/NAME.nn's `classify` with MODEL on a random batch of images of
        img x width (img x img)."""
        torch = torch_or_none()
        weights = nnc.save_safetensors({k: v.numpy() for k, v in model.state_dict().items()},
                                       os.path.join(self.tmp, name + ".safetensors"))
        nn = os.path.join(ROOT, "tests", "models", name + ".nn")
        width = width or img
        x = torch.randn(batch, 3, img, width)
        with torch.no_grad():
            want = model(x).numpy()
        pin = [f"H={img}", f"W={width}"]  # the models take any size: specialised here (test_symbolic_spatial.py)
        models = {"jit": nnc.compile(nn, weights=weights, defines=pin),
                  "so": nnc.load(compile_so(nn, self.tmp, weights, defines=pin))}
        assert_same_everywhere(self, models, lambda m: m.classify(x.numpy()), (want,), name)

    def test_resnet18(self):
        from torchvision.models import resnet18
        self.check("resnet18", randomize(self.torch, resnet18(), 96), 96)

    def test_resnet18_flat_maps(self):
        """At 160x192 layer4's maps are 5x6: its convolutions run flat (convplan.h), their rows
        together, on a core whose 16-float FMA is full rate (NNC_PLAN_WIDE_FMA=1)."""
        from torchvision.models import resnet18
        with mock.patch.dict(os.environ, {"NNC_PLAN_WIDE_FMA": "1"}):
            self.check("resnet18", randomize(self.torch, resnet18(), 96), 160, width=192)

    def test_mobilenet_v2(self):
        from torchvision.models import mobilenet_v2
        self.check("mobilenet_v2", randomize(self.torch, mobilenet_v2(), 96), 96)

    def test_mobilenet_v3_small(self):
        from torchvision.models import mobilenet_v3_small
        self.check("mobilenet_v3_small", randomize(self.torch, mobilenet_v3_small(), 96), 96)

    def test_efficientnet_b0(self):
        from torchvision.models import efficientnet_b0
        self.check("efficientnet_b0", randomize(self.torch, efficientnet_b0(), 96), 96)

    def test_convnext(self):
        self.check("convnext_toy", convnext_toy(self.torch), 64)


if __name__ == "__main__":
    unittest.main()
