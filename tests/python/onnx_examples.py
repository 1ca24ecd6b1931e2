"""Every exported entry of examples/*.nn as its PyTorch reference (tests/golden/<model>/reference.py)
defines it, exported to ONNX by torch.onnx.export (opset 17): the cases, and the export.  Used by
test_onnx_examples.py (nnc compiles each export) and bench/bench.py (ONNX Runtime runs it).

Each reference module is built with the reference's own code and loaded with the committed
golden weights; an entry is exported through a shallow copy of the module whose forward is that
entry's method, so the initializers keep the state_dict names.  Entries with a batch dimension
export it as a dim_param; the export traces the golden inputs.  Python loops over a static
length (mann's and fast_weights' time steps, lm_temperature's sampling steps, cactus' Lloyd
iterations) are unrolled by the tracing, so those entries take only their golden length.
lm_temperature's softmax_t, which its reference computes inline, is that line as a function;
cactus' kmeans is the reference's function; cactus' entries have no batch (static sizes).
mann's entries are exported with torch.sort's stable=True dropped (without_stable_sort)."""
import contextlib
import copy
import importlib.util
import os
import sys
from unittest import mock

import numpy as np

from support import GOLDEN, torch_or_none

torch = torch_or_none()
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


def export(case, path):
    """Export the case's entry (golden weights, golden inputs traced, its batch axes dynamic)
    to path; returns the module exported, whose forward is the entry."""
    model = case.build()
    if not isinstance(model, Function):
        model = entry_module(with_golden_weights(model, case.golden), case.entry)
    args = tuple(torch.from_numpy(a) for a in case.golden_inputs().values())
    with case.exporting(), torch.enable_grad():
        torch.onnx.export(model, args, path, opset_version=OPSET, input_names=case.inputs,
                          output_names=case.outputs, dynamic_axes=case.dynamic_axes())
    return model


def find_case(golden, entry):
    """The case of tests/golden/<golden>'s entry, or None."""
    return next((c for c in CASES if c.golden == golden and c.entry == entry), None)


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
