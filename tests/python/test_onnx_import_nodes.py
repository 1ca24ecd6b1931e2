"""`nnc import` over the ONNX backend node tests (Debian's libonnx-testdata, the cases
test_onnx_node.py runs): each imports, and its .nn builds the same graph as the .onnx, or,
where the graph differs in form only, computes the same bits.  Beside test_onnx_import.py,
which runs whole models against PyTorch, so that ctest runs the two side by side."""
import os
import re
import subprocess
import unittest

import numpy as np

import nnc
from support import NNC, TempDirCase


# IR ops `nnc import` cannot write as .nn yet (docs/onnx.md, "nnc import"): none that a
# node test needs.  A case that needs one must be refused with the message naming it; any
# other refusal fails.
UNWRITABLE = ()


class NodeTests(TempDirCase):
    """Every ONNX backend node test that nnc compiles (test_onnx_node.py's cases, frozen where
    that test freezes them) imports, and its .nn builds the same optimized graph as the .onnx:
    `nnc dump --stage=opt` of both agree but for the names of the model, the entry and the
    parameters.  Equal graphs compile to equal code, so this stands for running each case
    twice.  Where the graphs differ in form (a number the .nn writes as a literal is made
    where it is used, so the nodes come in another order; a constant of more than 16 values
    is a parameter), both are compiled and run on the case's data sets instead, and must
    give the same bits."""

    @staticmethod
    def opt_dump(path):
        r = subprocess.run([NNC, "dump", "--stage=opt", path], capture_output=True, text=True)
        if r.returncode:
            return None, r.stderr
        lines = r.stdout.splitlines()[1:]  # "model NAME"
        lines[0] = re.sub(r"^entry \w+\(", "entry E(", lines[0])
        return [re.sub(r'param "[^"]*"', 'param P', line) for line in lines], None

    def test_node_cases_import(self):
        try:
            import test_onnx_node as nodes
        except ImportError as e:
            self.skipTest(str(e))
        if nodes.onnx is None or not os.path.isdir(nodes.DATA):
            self.skipTest("python3-onnx or libonnx-testdata is not installed")
        imported = ran = refused = 0
        for name, folder in nodes.cases(nodes.supported_ops()):
            path = os.path.join(folder, "model.onnx")
            want, error = self.opt_dump(path)
            if want is None and "must be a constant" in error:
                try:
                    path, _ = nodes.frozen(folder, next(nodes.data_sets(folder))[1], self.tmp)
                except (ValueError, StopIteration):
                    continue
                want, error = self.opt_dump(path)
            if want is None:
                continue  # refused by the ONNX front end: test_onnx_node.py's business
            with self.subTest(case=name):
                nn_path = os.path.join(self.tmp, name + ".nn")
                r = subprocess.run([NNC, "import", path, "-o", nn_path], capture_output=True, text=True)
                unwritable = re.search(r"cannot write %\d+ \((\w+)\) as \.nn: the (\.nn )?language has no (function|spelling)",
                                       r.stderr)
                if r.returncode == 1 and unwritable and unwritable.group(1) in UNWRITABLE:
                    refused += 1
                    continue
                self.assertEqual(r.returncode, 0, f"{name}: {r.stderr}")
                got, error = self.opt_dump(nn_path)
                self.assertIsNotNone(got, f"{name}: the .nn does not compile: {error}")
                imported += 1
                if got != want:
                    self.run_both(nodes, name, folder, path, nn_path)
                    ran += 1
        print(f"\nONNX node tests: {imported} imported, each .nn the same graph as its .onnx "
              f"({ran} of them in another form, run: the same bits); {refused} refused", end=" ")

    def run_both(self, nodes, name, folder, onnx_path, nn_path):
        direct = nnc.compile(onnx_path)
        imported = nnc.compile(nn_path, weights=nn_path[:-3] + ".safetensors")
        entry = getattr(imported, next(iter(imported.entries)))
        frozen = onnx_path != os.path.join(folder, "model.onnx")
        for set_name, ins, _ in nodes.data_sets(folder):
            ins = ins[:1] if frozen else ins
            for a, b in zip(direct.forward.call(*ins).values(), entry.call(*ins).values()):
                np.testing.assert_array_equal(a, b, f"{name}/{set_name}: the .nn computes other bits")
            if frozen:
                break


if __name__ == "__main__":
    unittest.main()
