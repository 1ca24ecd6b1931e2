"""The convolutional examples with their image size made symbolic, compiled once (JIT and
AOT) and run at several sizes against their PyTorch references (tests/golden/<model>/
reference.py, with the golden weights): groupnorm (GN, BN, LN, IN), fcn (any multiple of 32),
mask_rcnn's heads (RoIAlign on a feature map of any size) and cactus's episode.  Only each
export's signature changes (`f32[N, 3, 32, 32]` becomes `f32[N, 3, H, W]`); the model code is
the example's.  Outputs are the same bits at 1, 2 and 3 threads."""
import importlib.util
import os
import unittest

import numpy as np

import nnc
from support import ROOT, TempDirCase, assert_same_everywhere, compile_so, needs_torch, torch_or_none, write_model

GOLDEN = os.path.join(ROOT, "tests", "golden")


def reference(name):
    """tests/golden/NAME/reference.py as a module."""
    spec = importlib.util.spec_from_file_location(f"ref_{name}", os.path.join(GOLDEN, name, "reference.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def symbolic_example(name, subs, out_dir):
    """examples/NAME.nn with each (old, new) of subs applied to its signatures (each must
    match), written to out_dir."""
    with open(os.path.join(ROOT, "examples", name + ".nn")) as f:
        text = f.read()
    for old, new in subs:
        assert old in text, f"{name}.nn no longer has {old!r}"
        text = text.replace(old, new)
    return write_model(text, out_dir, name + "_symbolic")


@needs_torch
class SymbolicExamplesTest(TempDirCase):
    def setUp(self):
        self.torch = torch_or_none()

    def both(self, path, weights, defines=None):
        """JIT and AOT builds of path (each set of defines its own .so: dlopen keeps one per name)."""
        tag = "_".join(f"{k}{v}" for k, v in (defines or {}).items())
        name = os.path.splitext(os.path.basename(path))[0] + (f"_{tag}" if tag else "")
        so = compile_so(path, self.tmp, weights, name=name, defines=[f"{k}={v}" for k, v in (defines or {}).items()])
        return {"jit": nnc.compile(path, weights=weights, defines=defines), "so": nnc.load(so)}

    def compare(self, models, entry, args, want, what):
        assert_same_everywhere(self, models, lambda m: getattr(m, entry)(*args), want, what)

    def test_groupnorm_all_norms(self):
        torch = self.torch
        ref = reference("groupnorm")
        path = symbolic_example("groupnorm", [("x: f32[N, 3, 32, 32]", "x: f32[N, 3, H, W]")], self.tmp)
        for norm, golden in (("gn", "groupnorm"), ("bn", "groupnorm_bn"), ("ln", "groupnorm_ln"), ("in", "groupnorm_in")):
            model = ref.make_model(norm)
            models = self.both(path, os.path.join(GOLDEN, golden, "weights.safetensors"), {"NORM": norm})
            for h, w in ((32, 32), (17, 29), (40, 24)):
                x = torch.randn(2, 3, h, w, generator=torch.Generator().manual_seed(h * w))
                with torch.no_grad():
                    want = model(x).numpy()
                self.compare(models, "forward", (x.numpy(),), (want,), f"groupnorm {norm} at {h}x{w}")

    def test_fcn_any_multiple_of_32(self):
        torch = self.torch
        ref = reference("fcn")
        model = ref.make_model()
        path = symbolic_example("fcn", [("x: f32[N, 3, 64, 64]) -> (scores: f32[N, CLASSES, 64, 64])",
                                         "x: f32[N, 3, 32 * HB, 32 * WB]) -> (scores: f32[N, CLASSES, 32 * HB, 32 * WB])")],
                                self.tmp)
        models = self.both(path, os.path.join(GOLDEN, "fcn", "weights.safetensors"))
        for h, w in ((64, 64), (32, 96), (96, 64)):
            x = torch.randn(1, 3, h, w, generator=torch.Generator().manual_seed(h + w))
            with torch.no_grad():
                want = model(x).numpy()
            self.compare(models, "forward", (x.numpy(),), (want,), f"fcn at {h}x{w}")
        with self.assertRaises(ValueError) as e:  # not a multiple of 32
            models["jit"].forward(np.zeros((1, 3, 48, 64), np.float32))
        self.assertIn("not a multiple of 32", str(e.exception))

    def test_mask_rcnn_heads_any_image(self):
        torch = self.torch
        ref = reference("mask_rcnn")
        model = ref.make_model()
        _, boxes = ref.make_inputs()
        path = symbolic_example("mask_rcnn", [("image: f32[1, 3, 64, 64]", "image: f32[1, 3, H, W]")], self.tmp)
        models = self.both(path, os.path.join(GOLDEN, "mask_rcnn", "weights.safetensors"))
        for h, w in ((64, 64), (48, 80), (93, 61)):
            image = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(h * 7 + w))
            with torch.no_grad():
                det = tuple(t.numpy() for t in model.detect(image, boxes))
                masks = model.masks(image, boxes).numpy()
            self.compare(models, "detect", (image.numpy(), boxes.numpy()), det, f"mask_rcnn detect at {h}x{w}")
            self.compare(models, "masks", (image.numpy(), boxes.numpy()), (masks,), f"mask_rcnn masks at {h}x{w}")

    def test_cactus_episode_any_image(self):
        torch = self.torch
        ref = reference("cactus")
        weights = os.path.join(GOLDEN, "cactus", "weights.safetensors")
        model = ref.Cactus()
        sd = {k: torch.from_numpy(v) for k, v in nnc.load_safetensors(weights).items()}
        model.load_state_dict(sd)
        model = model.float().eval()
        path = symbolic_example("cactus", [("support: f32[S, 1, 28, 28]", "support: f32[S, 1, H, W]"),
                                           ("query: f32[Q, 1, 28, 28]", "query: f32[Q, 1, H, W]")], self.tmp)
        models = self.both(path, weights)
        labels = torch.nn.functional.one_hot(torch.arange(ref.S) % ref.K, ref.K).float()
        for h, w in ((28, 28), (16, 40), (35, 21)):
            g = torch.Generator().manual_seed(h * w)
            support, query = torch.randn(ref.S, 1, h, w, generator=g), torch.randn(ref.Q, 1, h, w, generator=g)
            with torch.no_grad():
                want = model.episode(support, labels, query).numpy()
            self.compare(models, "episode", (support.numpy(), labels.numpy(), query.numpy()), (want,),
                         f"cactus episode at {h}x{w}")


if __name__ == "__main__":
    unittest.main()
