"""The Python package against every PyTorch golden case (tests/golden/<m>/): each model
(examples/<m>.nn or tests/golden/<m>/model.nn) runs its entries on the stored inputs three
ways, and every output must match the stored PyTorch output (1e-5 + 1e-4 |expected|):
  so        nnc.load of a .so compiled by `nnc -o` with the weights embedded
  so+w      nnc.load of a .so compiled without weights, weights given to nnc.load
  jit       nnc.compile of the .nn through libnnc.so"""
import glob
import os
import unittest

import numpy as np

import nnc
from support import GOLDEN, ROOT, TempDirCase, assert_close, compile_so


def golden_models():
    """(name, .nn path, weights path or None) of every golden case."""
    out = []
    for d in sorted(glob.glob(os.path.join(GOLDEN, "*", ""))):
        name = os.path.basename(os.path.dirname(d))
        nn = os.path.join(ROOT, "examples", name + ".nn")
        if not os.path.isfile(nn):
            nn = os.path.join(d, "model.nn")
        if os.path.isfile(nn) and glob.glob(os.path.join(d, "*.in.*.npy")):
            w = os.path.join(d, "weights.safetensors")
            out.append((name, nn, w if os.path.isfile(w) else None))
    return out


def golden_calls(model_dir, entry):
    """(inputs by name, expected outputs by name) of an entry, or None without golden data."""
    inputs = {}
    for a in entry.inputs:
        p = os.path.join(model_dir, f"{entry.name}.in.{a.name}.npy")
        if not os.path.isfile(p):
            return None
        inputs[a.name] = np.load(p)
    want = {}
    for a in entry.outputs:
        p = os.path.join(model_dir, f"{entry.name}.out.{a.name}.npy")
        if os.path.isfile(p):
            want[a.name] = np.load(p)
    return inputs, want


class GoldenTest(TempDirCase):
    def check_model(self, name, model):
        checked = 0
        for entry in model.entries.values():
            data = golden_calls(os.path.join(GOLDEN, name), entry)
            if data is None:
                continue
            inputs, want = data
            with self.subTest(entry=entry.name):
                got = entry.call(**inputs)
                self.assertEqual(list(got), [a.name for a in entry.outputs])
                for k, v in want.items():
                    assert_close(self, got[k], v, f"{name}.{entry.name} output {k}")
                    checked += 1
        return checked

    def test_golden(self):
        models = golden_models()
        self.assertGreaterEqual(len(models), 2, "no golden models found")
        total = 0
        for name, nn, weights in models:
            ways = {"so": lambda: nnc.load(compile_so(nn, self.tmp, weights, name + "_emb")),
                    "jit": lambda: nnc.compile(nn, weights=weights)}
            if weights:
                ways["so+w"] = lambda: nnc.load(compile_so(nn, self.tmp, None, name + "_noemb"),
                                                weights=weights)
            for way, make in ways.items():
                with self.subTest(model=name, way=way):
                    with make() as m:
                        n = self.check_model(name, m)
                        self.assertGreater(n, 0, f"{name}: no golden output checked")
                        total += n
        print(f"\n{len(models)} golden models, {total} outputs checked")


if __name__ == "__main__":
    unittest.main()
