"""The ONNX export of every example model (issue 19): each exported entry of examples/*.nn, as
its PyTorch reference (tests/golden/<model>/reference.py) defines it, exported by
torch.onnx.export and compiled by nnc.

Each reference module is built with the reference's own code and loaded with the committed
golden weights; an entry is exported through a shallow copy of the module whose forward is that
entry's method, so the initializers keep the state_dict names.  Entries with a batch dimension
export it as a dim_param.  The .onnx is compiled once JIT (nnc.compile) and once AOT (`nnc
model.onnx -o model.so`), run on the golden inputs and on a second batch size (the golden rows
re-ordered and one repeated), and compared with PyTorch (rtol 1e-4, atol 1e-5 x max(1, max|y|);
integer outputs exactly).  Then `nnc import model.onnx -o model.nn`: the written .nn, compiled
with the written weights, must give the .onnx build's results bit for bit.

Python loops over a static length (mann's and fast_weights' time steps, lm_temperature's
sampling steps, cactus' Lloyd iterations) are unrolled by the exporter's tracing, so those
entries are exported at the golden length with only the batch dynamic.  lm_temperature's
softmax_t, which its reference computes inline, is that line as a function; cactus' kmeans is
the reference's function; cactus' entries have no batch (their sizes are static).

Not as the reference writes it, or not all the way:
- cfr imbalance: skipped.  r[t == 1] exports as NonZero and GatherND, whose result's size
  depends on the data; nnc's shapes are static or symbolic, so the front end refuses NonZero
  (examples/cfr.nn writes the means as masked sums).
- mann episode and step: exported with torch.sort's stable=True dropped (without_stable_sort):
  torch.onnx 1.13 refuses it ("Unsupported: ONNX export of operator Sort, Out parameter is not
  supported"); ONNX's TopK orders equal elements by index, as the stable sort does, and the
  result is compared with the reference's own stable sort.
Every entry that exports takes the import round trip: nnc import writes the run-time index
checks of an embedding or a scatter (lm_temperature logits and sample, mann episode and step)
as check_index(index, size) and mask_rcnn's RoiAlign as roi_align.

FrontEndOps tests the ONNX ops these exports brought into the front end on their own."""
import contextlib
import copy
import importlib.util
import os
import subprocess
import sys
import unittest
from unittest import mock

import numpy as np

import nnc
from support import GOLDEN, NNC, TempDirCase, compile_so, needs_torch, torch_or_none

torch = torch_or_none()
RTOL, ATOL = 1e-4, 1e-5
OPSET = 17


def reference_module(name):
    """tests/golden/<name>/reference.py, loaded under its own module name (every golden script
    is called reference.py); it imports nnc_ref from tests/golden."""
    if GOLDEN not in sys.path:
        sys.path.insert(0, GOLDEN)
    key = f"reference_{name}"
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, os.path.join(GOLDEN, name, "reference.py"))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules[key] = module
    return sys.modules[key]


def with_golden_weights(model, golden_dir):
    """The module with the committed weights of its golden directory, in inference mode."""
    import nnc_ref
    nnc_ref.load_state_dict(model, os.path.join(GOLDEN, golden_dir, "weights.safetensors"))
    return model.float().eval()


def groupnorm(norm):
    return lambda: reference_module("groupnorm").make_model(norm)


def by_make_model(name):
    return lambda: reference_module(name).make_model()


class Function(torch.nn.Module if torch else object):
    """A module whose forward is a parameterless function of the reference (cactus' kmeans)."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, *args):
        return self.fn(*args)


def entry_module(model, method):
    """A shallow copy of model whose forward is model.<method>: the exporter traces that entry,
    the parameters keep their names, and model's own forward (which an entry may call, as
    realnvp's log_prob does) stays as it is."""
    entry = copy.copy(model)
    entry.forward = getattr(model, method)
    return entry


class Case:
    """One entry of one example: golden directory, how to build the module, the entry's input
    and output names in order, the batch axis of each batched input (named `dim`; outputs have
    it first, but for those in unbatched_out), why the test is skipped (None: it runs), and the
    context the export runs in (the closest exportable form of the entry's code)."""

    def __init__(self, golden, build, entry, inputs, outputs, batch_axes=None, dim="N", unbatched_out=(),
                 skip=None, exporting=contextlib.nullcontext):
        self.golden, self.build, self.entry = golden, build, entry
        self.inputs, self.outputs = inputs, outputs
        self.batch_axes = batch_axes or {}
        self.dim, self.unbatched_out = dim, unbatched_out
        self.skip = skip
        self.exporting = exporting  # a context to export in

    def golden_inputs(self):
        return {a: np.load(os.path.join(GOLDEN, self.golden, f"{self.entry}.in.{a}.npy")) for a in self.inputs}

    def dynamic_axes(self):
        """The batch axis of every input with one, and axis 0 of every output."""
        axes = {a: {k: self.dim} for a, k in self.batch_axes.items()}
        if self.batch_axes:
            axes.update({o: {0: self.dim} for o in self.outputs if o not in self.unbatched_out})
        return axes

    def other_batch(self, inputs):
        """The inputs at batch n + 1: rows 0, 7, 14, ... (mod n) of every batched input."""
        out = dict(inputs)
        for a, k in self.batch_axes.items():
            n = inputs[a].shape[k]
            out[a] = np.ascontiguousarray(np.take(inputs[a], (np.arange(n + 1) * 7) % n, axis=k))
        return out


def assert_torch_close(tc, got, want, what):
    """|got - want| <= ATOL max(1, max|want|) + RTOL |want|, integer results exactly."""
    tc.assertEqual(got.shape, want.shape, f"{what}: shape")
    if not np.issubdtype(want.dtype, np.floating):
        np.testing.assert_array_equal(got, want, what)
        return
    scale = max(1.0, float(np.abs(want).max()))
    err = np.abs(got.astype(np.float64) - want.astype(np.float64))
    bad = err > ATOL * scale + RTOL * np.abs(want)
    tc.assertFalse(bad.any(), f"{what}: {int(bad.sum())} of {bad.size} elements differ from PyTorch "
                   f"(largest error {err.max():.3g}, max|y| {scale:.3g})")


def only_entry(model):
    (entry,) = model.entries.values()
    return entry


@needs_torch
class ExampleExports(TempDirCase):
    def export(self, case):
        """The entry's module (with the golden weights) and the path of its .onnx."""
        model = case.build()
        if not isinstance(model, Function):
            model = entry_module(with_golden_weights(model, case.golden), case.entry)
        path = os.path.join(self.tmp, f"{case.golden}_{case.entry}.onnx")
        args = tuple(torch.from_numpy(a) for a in case.golden_inputs().values())
        with case.exporting():
            torch.onnx.export(model, args, path, opset_version=OPSET, input_names=case.inputs,
                              output_names=case.outputs, dynamic_axes=case.dynamic_axes())
        return model, path

    def check(self, case):
        if case.skip:
            self.skipTest(case.skip)
        model, path = self.export(case)
        builds = {"jit": nnc.compile(path), "aot": nnc.load(compile_so(path, self.tmp))}
        inputs = case.golden_inputs()
        runs = [inputs, case.other_batch(inputs)] if case.batch_axes else [inputs]
        for ins in runs:
            with torch.no_grad():
                want = model(*(torch.from_numpy(a) for a in ins.values()))
            want = [w.numpy() for w in (want if isinstance(want, tuple) else (want,))]
            for kind, m in builds.items():
                got = only_entry(m).call(**ins)
                for name, w in zip(case.outputs, want):
                    assert_torch_close(self, got[name], w, f"{case.golden}.{case.entry} {kind} {name} "
                                       f"at {self.batch_of(case, ins)}")
        self.round_trip(case, path, builds["jit"], runs)

    @staticmethod
    def batch_of(case, ins):
        return {a: ins[a].shape[k] for a, k in list(case.batch_axes.items())[:1]} or "the golden shapes"

    def round_trip(self, case, path, direct, runs):
        """`nnc import`'s .nn with its weights gives the .onnx build's results bit for bit."""
        nn_path = path[:-len(".onnx")] + ".nn"
        r = subprocess.run([NNC, "import", path, "-o", nn_path], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, f"nnc import {path}: {r.stderr}")
        imported = nnc.compile(nn_path, weights=nn_path[:-len(".nn")] + ".safetensors")
        for ins in runs:
            got, want = only_entry(imported).call(**ins), only_entry(direct).call(**ins)
            for name in case.outputs:
                np.testing.assert_array_equal(got[name], want[name], f"{case.golden}.{case.entry} {name}: "
                                              "the imported .nn and the .onnx differ")


def softmax_t(logits, temperature):
    """lm_temperature's softmax_t entry, which its reference computes inline."""
    return torch.softmax(logits / temperature, dim=-1)


def reference_attr(name, attr, *args):
    return lambda: getattr(reference_module(name), attr)(*args)


def function(name, attr):
    return lambda: Function(getattr(reference_module(name), attr))


def batched(*names):
    return {a: 0 for a in names}


def without_stable_sort():
    """torch.sort(x, dim, descending, stable=True) as torch.sort(x, dim, descending): torch.onnx
    (1.13) refuses the stable flag ("Unsupported: ONNX export of operator Sort, Out parameter is
    not supported"), and a user drops it, as ONNX's TopK orders equal elements by index anyway."""
    sort = torch.sort
    return mock.patch("torch.sort", lambda x, dim=-1, descending=False, stable=False: sort(x, dim, descending))


MANN_STATE = ["x_t", "y_prev", "h", "c", "memory", "usage", "w_read"]
CASES = [
    *(Case(d, groupnorm(norm), "forward", ["x"], ["logits"], batched("x"))
      for norm, d in (("gn", "groupnorm"), ("bn", "groupnorm_bn"), ("ln", "groupnorm_ln"), ("in", "groupnorm_in"))),
    Case("cfr", by_make_model("cfr"), "predict", ["x"], ["y0", "y1", "ite"], batched("x")),
    Case("cfr", by_make_model("cfr"), "imbalance", ["x", "t"], ["imb"], batched("x", "t"), unbatched_out=["imb"],
         skip="r[t == 1] exports as NonZero and GatherND, whose result's size depends on the data: "
              "nnc's shapes are static or symbolic, so its ONNX front end does not take NonZero"),
    Case("realnvp", by_make_model("realnvp"), "forward", ["x"], ["z", "logdet"], batched("x")),
    Case("realnvp", by_make_model("realnvp"), "inverse", ["z"], ["x"], batched("z")),
    Case("realnvp", by_make_model("realnvp"), "log_prob", ["x"], ["lp"], batched("x")),
    Case("fcn", by_make_model("fcn"), "forward", ["x"], ["scores"], batched("x")),
    Case("mask_rcnn", by_make_model("mask_rcnn"), "detect", ["image", "boxes"], ["class_logits", "box_deltas"],
         batched("boxes"), dim="K"),
    Case("mask_rcnn", by_make_model("mask_rcnn"), "masks", ["image", "boxes"], ["masks"], batched("boxes"), dim="K"),
    Case("infogan", by_make_model("infogan"), "generate", ["z", "c_cat", "c_cont"], ["x"], batched("z", "c_cat", "c_cont")),
    Case("infogan", by_make_model("infogan"), "discriminate", ["x"], ["d", "q_logits", "q_mu"], batched("x")),
    Case("infogan", by_make_model("infogan"), "mi_lower_bound", ["x", "c_cat", "c_cont"], ["lb"],
         batched("x", "c_cat", "c_cont")),
    Case("mann", reference_attr("mann", "MANN"), "episode", ["x", "y"], ["logits"], batched("x", "y"), dim="B",
         exporting=without_stable_sort),
    Case("mann", reference_attr("mann", "MANN"), "step", MANN_STATE,
         ["logits", "h_next", "c_next", "memory_next", "usage_next", "w_read_next"], batched(*MANN_STATE), dim="B",
         exporting=without_stable_sort),
    Case("fast_weights", reference_attr("fast_weights", "FastWeightsRNN"), "classify", ["x"], ["logits"], batched("x"),
         dim="B"),
    Case("fast_weights", reference_attr("fast_weights", "FastWeightsRNN"), "step", ["x_t", "h", "A"],
         ["logits", "h_next", "A_next"], batched("x_t", "h", "A"), dim="B"),
    Case("lm_temperature", reference_attr("lm_temperature", "CharLM", 84), "logits", ["tokens"], ["logits"],
         batched("tokens"), dim="B"),
    Case("lm_temperature", lambda: Function(softmax_t), "softmax_t", ["logits", "temperature"], ["probs"],
         batched("logits"), dim="B"),
    Case("lm_temperature", reference_attr("lm_temperature", "CharLM", 84), "sample", ["prefix", "gumbel", "temperature"],
         ["tokens"], batched("prefix", "gumbel"), dim="B"),
    Case("cactus", function("cactus", "kmeans"), "kmeans", ["emb", "scale", "init"], ["centroids", "labels"]),
    Case("cactus", reference_attr("cactus", "Cactus"), "episode", ["support", "support_labels", "query"], ["logits"]),
]


def add_tests(cls):
    """One test method per case: test_<golden>_<entry>."""
    for case in CASES:
        setattr(cls, f"test_{case.golden}_{case.entry}", lambda self, c=case: self.check(c))
    return cls


def indices_module():
    """Run-time indices as these exports use them: an embedding (Gather of the tokens), F.one_hot
    (OneHot), scatter of values into zeros (ScatterElements), and an LSTMCell (Split of its
    gates) whose output's log_softmax (LogSoftmax) is the result."""

    class Indices(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Embedding(7, 4)
            self.cell = torch.nn.LSTMCell(4, 6)

        def forward(self, tokens, slots, x):  # [N, 3] i64 in [0, 7), [N, 3, 2] i64 in [0, 5), [N, 3, 5]
            e = self.embed(tokens)                                  # [N, 3, 4]
            hot = torch.nn.functional.one_hot(tokens, 7).float()   # [N, 3, 7]
            s = torch.zeros_like(x).scatter(2, slots, x[:, :, :2])   # [N, 3, 5]
            h, c = self.cell(e[:, 0], (e[:, 1].repeat(1, 2)[:, :6], e[:, 2].repeat(1, 2)[:, :6]))
            return torch.log_softmax(h, dim=1), hot, s, c

    return Indices()


def lstm_steps_module():
    """A batch-first LSTM over one step, from zeros and from given states (each the cell,
    no scan), and over three steps (a scan)."""

    class Steps(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = torch.nn.LSTM(5, 4, batch_first=True)

        def forward(self, x):  # [N, 3, 5]
            y1, state = self.lstm(x[:, :1])
            y2, (h, c) = self.lstm(x[:, 1:2], state)
            y3, _ = self.lstm(x)
            return y1 + y2, h, c, y3

    return Steps()


def roi_align_module(aligned, ratio):
    from torchvision.ops import roi_align

    class Roi(torch.nn.Module):
        def forward(self, x, boxes):  # [2, 3, 9, 11], [K, 5]
            return roi_align(x, boxes, output_size=(3, 2), spatial_scale=0.5, sampling_ratio=ratio, aligned=aligned)

    return Roi()


@needs_torch
class FrontEndOps(TempDirCase):
    """The ONNX ops the example exports brought into the front end, each against PyTorch at two
    batch sizes, and their ONNX-only cases (negative indices, an index out of range) against
    NumPy in graphs made with onnx.helper."""

    def check_torch(self, name, module, inputs, batch_inputs, opset=OPSET):
        torch.manual_seed(0)
        module = module.eval()
        path = os.path.join(self.tmp, name + ".onnx")
        names = list(inputs)
        torch.onnx.export(module, tuple(torch.from_numpy(inputs[a](2)) for a in names), path, opset_version=opset,
                          input_names=names, dynamic_axes={a: {0: "N"} for a in batch_inputs})
        m = only_entry(nnc.compile(path))
        for n in (2, 3):
            args = [inputs[a](n) for a in names]
            with torch.no_grad():
                want = module(*(torch.from_numpy(a) for a in args))
            got = m(*args)
            for k, (g, w) in enumerate(zip(got if isinstance(got, tuple) else (got,), want if isinstance(want, tuple) else (want,))):
                assert_torch_close(self, g, w.numpy(), f"{name} output {k} at batch {n}")

    def test_indices(self):
        rng = np.random.default_rng(5)
        self.check_torch("indices", indices_module(), {
            "tokens": lambda n: rng.integers(0, 7, (n, 3)),
            "slots": lambda n: np.argsort(rng.random((n, 3, 5)), axis=2)[:, :, :2],  # distinct in each line
            "x": lambda n: rng.standard_normal((n, 3, 5)).astype(np.float32)}, ["tokens", "slots", "x"])

    def test_lstm_steps(self):
        rng = np.random.default_rng(6)
        self.check_torch("lstm_steps", lstm_steps_module(), {"x": lambda n: rng.standard_normal((n, 3, 5)).astype(np.float32)},
                         ["x"])

    def test_roi_align(self):
        """half_pixel (aligned) and output_half_pixel, 2 samples per bin and adaptive ones, boxes
        on both images, one partly outside.  torchvision 0.14 writes no
        coordinate_transformation_mode, so its export means aligned=True from opset 16 on (the
        default half_pixel) and aligned=False before (output_half_pixel): each is tested where
        the export says what the module computes."""
        rng = np.random.default_rng(7)

        def boxes(k):
            b = np.array([[0, 1, 1, 9, 7], [1, 2.5, 0.5, 20, 17], [1, -3, 4, 6, 30], [0, 4, 4, 5, 4.5]], np.float32)
            return b[np.arange(k) % 4]

        image = lambda n: rng.standard_normal((2, 3, 9, 11)).astype(np.float32)  # noqa: E731
        for aligned, ratio, opset in ((True, 2, 17), (True, -1, 17), (False, 2, 13)):
            with self.subTest(aligned=aligned, sampling_ratio=ratio, opset=opset):
                self.check_torch(f"roi_{aligned}_{ratio}_{opset}", roi_align_module(aligned, ratio),
                                 {"x": image, "boxes": boxes}, ["boxes"], opset)

    def graph(self, name, nodes, inputs, outputs, inits=(), opset=OPSET):
        from onnx import helper
        path = os.path.join(self.tmp, name + ".onnx")
        g = helper.make_graph(nodes, name, inputs, outputs, list(inits))
        import onnx
        onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)]), path)
        return only_entry(nnc.compile(path))

    def test_negative_and_bad_indices(self):
        """Gather and OneHot count negative indices from the end; a Gather index out of range
        fails the call with a message, a OneHot one gives a row of `off`"""
        from onnx import TensorProto, helper, numpy_helper
        table = np.arange(15, dtype=np.float32).reshape(5, 3)
        i = helper.make_tensor_value_info("i", TensorProto.INT64, ["N", 2])
        m = self.graph("gather", [helper.make_node("Gather", ["t", "i"], ["y"], axis=0),
                                  helper.make_node("OneHot", ["i", "depth", "values"], ["h"], axis=0)],
                       [i], [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2, 3]),
                             helper.make_tensor_value_info("h", TensorProto.FLOAT, [5, "N", 2])],
                       [numpy_helper.from_array(table, "t"), numpy_helper.from_array(np.array(5, np.int64), "depth"),
                        numpy_helper.from_array(np.array([-1, 2], np.float32), "values")])
        idx = np.array([[0, -1], [4, -5], [2, 3]], np.int64)
        y, h = m(idx)
        np.testing.assert_array_equal(y, table[idx])
        want = np.full((5, 3, 2), -1, np.float32)
        for (r, c), v in np.ndenumerate(idx):
            want[v % 5, r, c] = 2
        np.testing.assert_array_equal(h, want)
        with self.assertRaisesRegex(nnc.Error, "Gather: input 1 \\(indices\\)"):
            m(np.array([[0, 5]], np.int64))

    def test_log_softmax_before_opset_13(self):
        """axis 1 of [N, 3, 4] before opset 13: over axes 1 and 2 together"""
        from onnx import TensorProto, helper
        m = self.graph("lsm", [helper.make_node("LogSoftmax", ["x"], ["y"], axis=1)],
                       [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 4])],
                       [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3, 4])], opset=11)
        x = np.random.default_rng(8).standard_normal((2, 3, 4)).astype(np.float32)
        flat = x.reshape(2, 12).astype(np.float64)
        want = flat - flat.max(1, keepdims=True) - np.log(np.exp(flat - flat.max(1, keepdims=True)).sum(1, keepdims=True))
        assert_torch_close(self, m(x), want.reshape(2, 3, 4).astype(np.float32), "LogSoftmax, opset 11")


add_tests(ExampleExports)

if __name__ == "__main__":
    unittest.main()
