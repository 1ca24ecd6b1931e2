"""The ONNX backend node tests as an oracle for nnc's ONNX import (issue 19): every case of
Debian's libonnx-testdata (/usr/share/libonnx-testdata/data/node/<case>/model.onnx with
test_data_set_*/input_*.pb and output_*.pb) whose ops all have a row in
compiler/onnx/onnx_ops.c is compiled with nnc.compile (JIT) and run on each data set; its
outputs must match the expected tensors (rtol 1e-4, atol 1e-5).

A case that passes axes, indices, shapes, pads or scales as graph inputs (nnc needs them at
compile time) runs with those inputs frozen: made initializers holding the data set's values.
A case of supported ops that nnc refuses (an attribute, a dtype or a form it does not take)
is listed with the reason in tests/onnx/node_skipped.txt; a listed case must still be refused,
and a case listed as "a graph input" must pass once frozen, so the list cannot go stale.  A
mismatch is never listed: it is a bug.  Skipped without python3-onnx or the test data."""
import glob
import os
import re
import unittest

import numpy as np

import nnc
from support import ROOT, TempDirCase, assert_close

DATA = os.environ.get("NNC_ONNX_NODE_DATA", "/usr/share/libonnx-testdata/data/node")
SKIPPED = os.path.join(ROOT, "tests", "onnx", "node_skipped.txt")
# cases whose expected outputs the test data holds to 4 decimals, from another implementation
# (onnx's roialign.py): up to 8.4e-5 from torchvision's roi_align, which nnc gives exactly
ROUNDED = {"test_roialign_aligned_false", "test_roialign_aligned_true"}

try:
    import onnx
    from onnx import numpy_helper
except ImportError:
    onnx = None


def supported_ops():
    """The op types of onnx_ops.c's table (its rows start `{"Name", op_`), and Constant."""
    with open(os.path.join(ROOT, "compiler", "onnx", "onnx_ops.c")) as f:
        return set(re.findall(r'^\s*\{"(\w+)", op_', f.read(), re.M)) | {"Constant"}


def skip_list():
    with open(SKIPPED) as f:
        rows = [line.rstrip("\n").split("\t", 1) for line in f if line.strip() and not line.startswith("#")]
    return {case: reason for case, reason in rows}


def cases(ops):
    """(name, folder) of the node tests whose nodes are all of `ops` in the default domain."""
    for folder in sorted(glob.glob(os.path.join(DATA, "test_*"))):
        path = os.path.join(folder, "model.onnx")
        if not os.path.exists(path):
            continue
        graph = onnx.load(path, load_external_data=False).graph
        if graph.node and all(n.op_type in ops and n.domain in ("", "ai.onnx") for n in graph.node):
            yield os.path.basename(folder), folder


def read_tensor(path):
    t = onnx.TensorProto()
    with open(path, "rb") as f:
        t.ParseFromString(f.read())
    return numpy_helper.to_array(t)


def data_sets(folder):
    for d in sorted(glob.glob(os.path.join(folder, "test_data_set_*"))):
        ins = [read_tensor(p) for p in sorted(glob.glob(os.path.join(d, "input_*.pb")),
                                              key=lambda p: int(re.findall(r"\d+", os.path.basename(p))[0]))]
        outs = [read_tensor(p) for p in sorted(glob.glob(os.path.join(d, "output_*.pb")),
                                               key=lambda p: int(re.findall(r"\d+", os.path.basename(p))[0]))]
        yield os.path.basename(d), ins, outs


def frozen(folder, ins, out_dir):
    """model.onnx with its graph inputs after the first made initializers holding the data
    set's values (for a case that passes axes, indices, shapes or scales as inputs)."""
    model = onnx.load(os.path.join(folder, "model.onnx"))
    graph = model.graph
    keep = [v for v in graph.input if v.name not in {i.name for i in graph.initializer}]
    for v, value in list(zip(keep, ins))[1:]:
        graph.input.remove(v)
        graph.initializer.append(numpy_helper.from_array(value, v.name))
    path = os.path.join(out_dir, os.path.basename(folder) + ".onnx")
    onnx.save(model, path)
    return path, ins[:1]


def as_signature(x):
    """x as the library's signature takes or gives it: bool and int32 tensors are int64 (0 / 1)."""
    return x.astype(np.int64) if x.dtype in (np.bool_, np.int32) else x


def compile_or_error(path):
    try:
        return nnc.compile(path), None
    except nnc.Error as e:
        return None, str(e)


@unittest.skipIf(onnx is None or not os.path.isdir(DATA), "python3-onnx or libonnx-testdata is not installed")
class NodeTests(TempDirCase):
    def run_sets(self, name, model, sets):
        for set_name, ins, outs in sets:
            got = model.forward.call(*(as_signature(x) for x in ins))
            self.assertEqual(len(got), len(outs), f"{name}/{set_name}: outputs")
            for g, w in zip(got.values(), outs):
                if name in ROUNDED:  # within a unit of the 4th decimal
                    np.testing.assert_allclose(g, w, rtol=0, atol=1e-4, err_msg=f"{name}/{set_name}")
                else:
                    assert_close(self, g, as_signature(w), f"{name}/{set_name}")

    def run_frozen(self, name, folder, reason):
        """Each data set with its non-data inputs frozen: True when it ran, False when refused."""
        for set_name, ins, outs in data_sets(folder):
            path, data = frozen(folder, ins, self.tmp)
            model, error = compile_or_error(path)
            if model is None:
                self.assertTrue(reason and "graph input" not in reason,
                                f"{name} frozen: nnc refuses it and node_skipped.txt does not say why: {error}")
                return False
            self.assertTrue(reason and "graph input" in reason, f"{name} runs once frozen: list it as a graph input")
            self.run_sets(name, model, [(set_name, data, outs)])
        return True

    def test_node_cases(self):
        skipped, ran, refused, froze = skip_list(), [], [], []
        for name, folder in cases(supported_ops()):
            with self.subTest(case=name):
                reason = skipped.get(name)
                model, error = compile_or_error(os.path.join(folder, "model.onnx"))
                if model is None and "must be a constant" in error:
                    (froze if self.run_frozen(name, folder, reason) else refused).append(name)
                    continue
                if model is None:
                    self.assertIsNotNone(reason, f"{name}: nnc refuses it and node_skipped.txt does not list it: {error}")
                    refused.append(name)
                    continue
                self.assertIsNone(reason, f"{name} compiles now: remove it from node_skipped.txt")
                self.run_sets(name, model, data_sets(folder))
                ran.append(name)
        print(f"\nONNX node tests: {len(ran)} passed, {len(froze)} passed with their non-data inputs frozen, "
              f"{len(refused)} refused as listed")

    def test_refusals_name_the_node(self):
        """A refused case is a user error (exit 1) naming the node, op type, opset and what."""
        import subprocess
        from support import NNC
        want = {
            "test_softplus_example": "node 0 (Softplus, opset 1): op 'Softplus' is not supported",
            "test_reshape_extended_dims": "node 0 (Reshape, opset 14): input 1 'shape' must be a constant (an "
                                          "initializer or a Constant's output): nnc does not compute it at run time",
            "test_convtranspose_output_shape": "node 0 (ConvTranspose, opset 11): attribute 'output_shape' is not supported",
            "test_maxpool_2d_same_upper": "node 0 (MaxPool, opset 12): pads [0, 0, 1, 1] are not symmetric: nnc pools "
                                          "with equal padding on both sides only",
        }
        for case, message in want.items():
            path = os.path.join(DATA, case, "model.onnx")
            r = subprocess.run([NNC, "check", path], capture_output=True, text=True)
            self.assertEqual(r.returncode, 1, r.stderr)
            self.assertEqual(r.stderr, f"{path}: error: {message}\n")


if __name__ == "__main__":
    unittest.main()
