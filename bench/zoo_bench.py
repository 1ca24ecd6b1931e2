#!/usr/bin/python3
"""nnc vs ONNX Runtime vs PyTorch eager vs TorchScript on the models people deploy (issue 17,
"Speed"): median latency per call, in one run, same weights, inputs and thread count.

    images, batches 1 and 8    torchvision resnet18, mobilenet_v2, mobilenet_v3_small,
                               efficientnet_b0 (tests/models/<m>.nn -D H=224 -D W=224, at 224x224),
                               the small ConvNeXt of tests/python/test_zoo.py (64x64),
                               the small ViT of tests/python/test_vit.py (64x64)
    sequences, batches 1, 16   a 2-layer nn.GRU(64, 128, batch_first) over T = 32 (bench/gru.nn),
                               a 2-layer bidirectional nn.LSTM(64, 128) (bench/lstm_bi.nn),
                               nn.TransformerEncoder of 2 pre-norm GELU layers (d 128, 4 heads,
                               ff 256; bench/transformer_encoder.nn) and an
                               nn.TransformerDecoderLayer under a causal mask
                               (bench/transformer_decoder.nn), all over T = 32

Each model is built as its test builds it (torchvision's module, randomised with a fixed seed:
test_zoo.randomize, or as test_vit.py does), its state_dict saved with nnc.save_safetensors and
compiled with build/nnc into a .so with the weights embedded (compile time: the best of
--compile-reps wall-clock runs).  The sides:
  - nnc: the .so through the Python package (python/nnc), arguments bound once (bench.bind);
  - PyTorch eager: the module under torch.no_grad();
  - TorchScript: optimize_for_inference(freeze(script(module))) (trace when scripting fails);
  - ONNX Runtime: the module exported by torch.onnx.export (opset 17, dynamic batch axis),
    run by /work/shared/ort-bench/ort_bench.c (C API, ORT_ENABLE_ALL, sequential, CPU provider,
    intra = inter op threads = the row's threads) in a child process, with the onnxruntime-node
    npm package's CPU library installed into $TMPDIR/ort (npm install --ignore-scripts), as
    /work/shared/ort-bench/README.md says; when it cannot be installed its columns are n/a.
Before timing, every side's outputs are compared with eager's (max |Δ|; a warning above
1e-4 + 1e-3·max|eager|).  Every row is measured with 1 and 2 threads (--threads), in --rounds
turns of the four sides, each side's fastest round kept (bench.py's scheme; nnc's and ORT's
turns start after a pause so that torch's idle OpenBLAS/OpenMP workers have stopped spinning).
Rows where nnc is slower than ONNX Runtime are profiled with perf record (bench.perf_profile)
and the fused IR of the hottest nnc kernels is shown.

    /usr/bin/python3 bench/zoo_bench.py [--models resnet18,gru] [--threads 1,2]
                                        [--markdown docs/benchmarks.md] [--no-ort] [--no-profile]

--markdown replaces this script's section of the file (between its markers; appended when
absent) and leaves the rest as it is.
"""
import argparse
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import ort_side  # noqa: E402

IMG = 224           # the torchvision models' image size
GRU_T = 32          # the GRU's sequence length


def int_list(text):
    return [int(x) for x in text.split(",") if x]


def parse_args(argv):
    p = argparse.ArgumentParser(description="nnc vs ONNX Runtime, PyTorch eager and TorchScript on "
                                            "the model zoo.")
    p.add_argument("--models", default=",".join(MODEL_NAMES), help="comma-separated (default: all)")
    p.add_argument("--threads", type=int_list, default=[1, 2], help="thread counts (default 1,2)")
    p.add_argument("--image-batches", type=int_list, default=[1, 8])
    p.add_argument("--seq-batches", type=int_list, default=[1, 16])
    p.add_argument("--rounds", type=int, default=3, help="turns of the four sides; best kept (default 3)")
    p.add_argument("--min-time", type=float, default=1.0,
                   help="seconds of timed calls per side and row, split over the rounds (default 1)")
    p.add_argument("--min-reps", type=int, default=60,
                   help="calls per side and row, split over the rounds (at least 10 a round) (default 60)")
    p.add_argument("--max-time", type=float, default=4.0,
                   help="stop a slow side after this many seconds per row once it has 10 calls a round")
    p.add_argument("--compile-reps", type=int, default=2, help="compile time: best of this many")
    p.add_argument("--nnc", default=os.path.join(ROOT, "build", "nnc"))
    ort_side.add_options(p)
    p.add_argument("--no-profile", action="store_true", help="no perf profile of rows ORT wins")
    p.add_argument("--profile-seconds", type=float, default=3.0)
    p.add_argument("--markdown", metavar="FILE", help="write the report into FILE's zoo section")
    return p.parse_args(argv)


MODEL_NAMES = ["resnet18", "resnet18_anysize", "mobilenet_v2", "mobilenet_v2_anysize", "mobilenet_v3_small",
               "efficientnet_b0", "convnext_toy", "vit_small", "gru", "lstm_bi", "transformer_encoder",
               "transformer_decoder"]
ARGS = parse_args(sys.argv[1:])

# bench.py reads its own command line when imported (and sets OPENBLAS/OMP_NUM_THREADS to the
# most threads asked for before numpy and torch load): give it ours.
_argv, sys.argv = sys.argv, [os.path.join(HERE, "bench.py"), "--threads", ",".join(map(str, ARGS.threads)),
                             "--nnc", ARGS.nnc]
import bench  # noqa: E402
import md_section  # noqa: E402
sys.argv = _argv

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(ROOT, "tests", "python"))
nnc_py = bench.nnc_py

# --------------------------------------------------------------------------------------------
# the models, built as their tests build them


@dataclass
class Zoo:
    name: str
    nn: str                 # the .nn file, relative to ROOT
    defines: list           # -D NAME=VALUE
    kind: str               # "image" or "seq"
    entry: str              # the nnc entry
    inputs: list            # input names (nnc's = the ONNX graph's)
    outputs: list           # output names, in the torch module's order
    batch_axis: dict        # output name -> its batch axis
    build: object           # () -> torch module (eval mode, fixed seed)
    shape: tuple            # one sample's input shape
    note: str = ""
    anysize: bool = False   # H, W left symbolic (no -D), and the ONNX export's H, W axes dynamic


def torchvision_model(name, img=IMG):
    def build():
        import torch
        import torchvision.models as tvm
        from test_zoo import randomize
        torch.manual_seed(0)
        return randomize(torch, getattr(tvm, name)(), img)
    return build


def convnext_toy():
    import torch
    from test_zoo import convnext_toy as build
    torch.manual_seed(0)
    return build(torch)


def vit_small():
    import torch
    from test_vit import vit_small as build
    return build(torch)


def gru_model():
    import torch

    class Gru(torch.nn.Module):  # bench/gru.nn
        def __init__(self):
            super().__init__()
            self.gru = torch.nn.GRU(64, 128, num_layers=2, batch_first=True)

        def forward(self, x):
            return self.gru(x)

    torch.manual_seed(0)
    return Gru().eval()


def lstm_bi_model():
    import torch

    class LstmBi(torch.nn.Module):  # bench/lstm_bi.nn
        def __init__(self):
            super().__init__()
            self.lstm = torch.nn.LSTM(64, 128, num_layers=2, batch_first=True, bidirectional=True)

        def forward(self, x):
            y, (h, c) = self.lstm(x)
            return y, h, c

    torch.manual_seed(0)
    return LstmBi().eval()


def transformer_encoder_model():
    import torch
    torch.manual_seed(0)
    layer = torch.nn.TransformerEncoderLayer(128, 4, 256, dropout=0.0, activation="gelu", batch_first=True,
                                             norm_first=True)
    return torch.nn.TransformerEncoder(layer, 2, enable_nested_tensor=False).eval()


def transformer_decoder_model():
    import torch

    class Decoder(torch.nn.Module):  # bench/transformer_decoder.nn
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.TransformerDecoderLayer(128, 4, 256, dropout=0.0, batch_first=True)

        def forward(self, x):
            causal = torch.triu(torch.full((GRU_T, GRU_T), float("-inf")), 1)
            return self.layer(x[:, :GRU_T], x[:, GRU_T:], tgt_mask=causal)

    torch.manual_seed(0)
    return Decoder().eval()


def seq_model(name, build, outputs, batch_axis, shape, note):
    return Zoo(name, f"bench/{name}.nn", [], "seq", "forward", ["x"], outputs, batch_axis, build, shape, note)


def image_model(name, build, img=IMG, defines=None, inp="x", note="", anysize=False):
    """A tests/models/ model at img x img: specialised to that size (-D H, W), or with
    anysize one library for every size (row NAME_anysize), ONNX Runtime's export likewise."""
    model = name[:-len("_anysize")] if anysize else name
    if defines is None:
        defines = [] if anysize else [f"H={img}", f"W={img}"]
    return Zoo(name, f"tests/models/{model}.nn", defines, "image", "classify", [inp], ["logits"], {"logits": 0}, build,
               (3, img, img), note, anysize)


ZOO = {z.name: z for z in [
    image_model("resnet18", torchvision_model("resnet18")),
    image_model("resnet18_anysize", torchvision_model("resnet18"), note="H, W symbolic", anysize=True),
    image_model("mobilenet_v2", torchvision_model("mobilenet_v2")),
    image_model("mobilenet_v2_anysize", torchvision_model("mobilenet_v2"), note="H, W symbolic", anysize=True),
    image_model("mobilenet_v3_small", torchvision_model("mobilenet_v3_small")),
    image_model("efficientnet_b0", torchvision_model("efficientnet_b0")),
    image_model("convnext_toy", convnext_toy, 64, note="stages 32/64/128, depths 2/1/1, 10 classes"),
    image_model("vit_small", vit_small, 64, [], "img", note="patch 16, 4 layers, 4 heads, hidden 128, MLP 256"),
    Zoo("gru", "bench/gru.nn", [], "seq", "forward", ["x"], ["y", "h"], {"y": 0, "h": 1}, gru_model,
        (GRU_T, 64), note=f"2 layers, input 64, hidden 128, T = {GRU_T}"),
    seq_model("lstm_bi", lstm_bi_model, ["y", "h", "c"], {"y": 0, "h": 1, "c": 1}, (GRU_T, 64),
              f"2 layers, bidirectional, input 64, hidden 128, T = {GRU_T}"),
    seq_model("transformer_encoder", transformer_encoder_model, ["y"], {"y": 0}, (GRU_T, 128),
              f"2 pre-norm layers, d 128, 4 heads, ff 256, GELU, T = {GRU_T}"),
    seq_model("transformer_decoder", transformer_decoder_model, ["y"], {"y": 0}, (2 * GRU_T, 128),
              f"one layer, d 128, 4 heads, ff 256, causal self-attention, memory {GRU_T}, T = {GRU_T}"),
]}


def batches(z):
    return ARGS.image_batches if z.kind == "image" else ARGS.seq_batches


def as_tuple(out):
    return tuple(o.detach().numpy() for o in (out if isinstance(out, tuple) else (out,)))

# --------------------------------------------------------------------------------------------
# ONNX Runtime's model: the module exported (bench/ort_side.py installs and runs ORT)


def export_onnx(z, model, x, path):
    import torch
    axes = {n: {0: "N", 2: "H", 3: "W"} if z.anysize else {0: "N"} for n in z.inputs}
    axes.update({n: {a: "N"} for n, a in z.batch_axis.items()})
    # with gradients enabled: under no_grad, nn.MultiheadAttention takes its fast path
    # (aten::_native_multi_head_attention), which has no ONNX export
    with torch.enable_grad():
        torch.onnx.export(model, (torch.from_numpy(x),), path, opset_version=17, input_names=z.inputs,
                          output_names=z.outputs, dynamic_axes=axes)


# --------------------------------------------------------------------------------------------
# measuring


@dataclass
class Row:
    model: str
    batch: int
    threads: int
    us: dict = field(default_factory=dict)    # side -> best round's median (µs)
    diff: dict = field(default_factory=dict)  # side -> max |side - eager|


@dataclass
class Info:
    compile_ms: float = None
    so_bytes: int = None
    ts_how: str = "n/a"
    ts_note: str = ""
    ort_note: str = ""
    ort_ops: str = None     # the op types ORT runs (ort_side.graph_ops)
    nnc_kernels: str = None  # nnc's kernels by kind (nnc dump --stage=fused)
    so: str = None
    inputs: dict = field(default_factory=dict)  # batch -> nnc inputs


SIDES = ("nnc", "ort", "eager", "ts")
SIDE_NAMES = {"nnc": "nnc", "ort": "ORT", "eager": "eager", "ts": "TorchScript"}


class Run:
    def __init__(self):
        self.rows, self.info, self.failures, self.mismatches = [], {}, [], []
        self.profiles, self.ort_note = [], None

    def fail(self, what, e):
        self.failures.append(f"{what}: {e}")
        print(f"error: {what}: {e}", file=sys.stderr)

    def check(self, who, label, got, want):
        d = max(bench.max_abs_diff(g, w) for g, w in zip(got, want))
        scale = max(float(np.max(np.abs(w))) for w in want)
        if not d <= 1e-4 + 1e-3 * scale:
            self.mismatches.append(f"{who} {label}: max |{who} - eager| = {d:.3g} (outputs up to {scale:.3g})")
        return d


def compile_nnc(z, weights, tmp):
    so = os.path.join(tmp, z.name + ".so")
    cmd = [ARGS.nnc, z.nn] + [a for d in z.defines for a in ("-D", d)] + ["-o", so, "--weights", weights]
    return so, bench.run_nnc(cmd, ARGS.compile_reps)


def torchscript(model, x):
    """(callable, how, note)."""
    import torch
    try:
        return bench.optimized_for_inference(torch.jit.script(model), "forward"), "script", ""
    except Exception as e:
        why = f"script: {bench.short_error(e)}"
        bench.forget_failed_scripting()
    try:
        return bench.optimized_for_inference(torch.jit.trace(model, (x,), check_trace=False), "forward"), "trace", why
    except Exception as e:
        return None, "n/a", f"{why}; trace: {bench.short_error(e)}"


def timed(fn, pause):
    per = max(ARGS.rounds, 1)
    if pause:
        bench.settle_openblas()
    return bench.time_call(fn, max(ARGS.min_reps // per, 10), ARGS.min_time / per, ARGS.max_time / per)[0]


def bench_model(run, z, tmp, ort):
    import torch
    model = z.build()
    info = run.info[z.name] = Info()
    weights = nnc_py.save_safetensors({k: v.numpy() for k, v in model.state_dict().items()},
                                      os.path.join(tmp, z.name + ".safetensors"))
    try:
        info.so, info.compile_ms = compile_nnc(z, weights, tmp)
        info.so_bytes = os.path.getsize(info.so)
        lib = nnc_py.load(info.so, threads=ARGS.threads[0])
    except Exception as e:
        run.fail(f"nnc {z.name}", e)
        lib = None
    rng = np.random.default_rng(0)
    onnx = os.path.join(tmp, z.name + ".onnx")
    xs = {b: rng.standard_normal((b,) + z.shape).astype(np.float32) for b in batches(z)}
    if ort:
        try:
            export_onnx(z, model, xs[batches(z)[0]], onnx)
            info.ort_ops = ort_side.graph_ops(ort, onnx)
        except Exception as e:
            info.ort_note = f"export failed: {bench.short_error(e)}"
            run.fail(f"onnx export {z.name}", e)
    ts_fn, info.ts_how, info.ts_note = torchscript(model, torch.from_numpy(xs[batches(z)[0]]))
    for b, x in xs.items():
        bench_batch(run, z, lib, model, ts_fn, ort if ort and not info.ort_note else None, onnx, b, x, tmp)
    if lib is not None:
        lib.close()


def bench_batch(run, z, lib, model, ts_fn, ort, onnx, b, x, tmp):
    import torch
    info, label = run.info[z.name], f"{z.name}[{b}]"
    xt = torch.from_numpy(x)
    want = as_tuple(model(xt))
    inputs = {z.inputs[0]: x}
    info.inputs[b] = inputs
    calls, diffs = {"eager": lambda: model(xt)}, {}
    if lib is not None:
        try:
            call, outs = bench.bind(lib, z.entry, inputs)
            call()
            diffs["nnc"] = run.check("nnc", label, [outs[n] for n in z.outputs], want)
            calls["nnc"] = call
        except Exception as e:
            run.fail(f"nnc {label}", e)
    if ts_fn is not None:
        diffs["ts"] = run.check("TorchScript", label, as_tuple(ts_fn(xt)), want)
        calls["ts"] = lambda: ts_fn(xt)
    npy = os.path.join(tmp, f"{z.name}_{b}.npy")
    if ort:
        np.save(npy, x)
        out_dir = os.path.join(tmp, f"{z.name}_{b}_ort")
        try:  # one call, its outputs checked against eager before any timing
            ort_side.run(ort, onnx, {z.inputs[0]: npy}, 1, 1, 0, out_dir, warmup=0)
            got = list(ort_side.outputs(out_dir, z.outputs).values())
            diffs["ort"] = run.check("ORT", label, got, want)
            calls["ort"] = None  # a child process: see below
        except Exception as e:
            run.fail(f"ORT {label}", e)
    for t in ARGS.threads:
        bench.use_threads(t, lib)
        row = Row(z.name, b, t, diff=dict(diffs))
        per = max(ARGS.rounds, 1)
        for _ in range(per):
            for side in SIDES:
                if side not in calls:
                    continue
                if side == "ort":
                    bench.settle_openblas()
                    us = ort_side.run(ort, onnx, {z.inputs[0]: npy}, t, max(ARGS.min_reps // per, 10),
                                      ARGS.min_time / per)["median_us"]
                else:
                    us = timed(calls[side], pause=side == "nnc")
                row.us[side] = min(us, row.us.get(side, us))
        run.rows.append(row)
        print(f"  {z.name} batch {b} threads {t}: " +
              ", ".join(f"{SIDE_NAMES[s]} {bench.fmt_us(row.us.get(s))} us" for s in SIDES), file=sys.stderr,
              flush=True)

# --------------------------------------------------------------------------------------------
# profiles of the rows ONNX Runtime wins


def slower_than_ort(rows):
    return [r for r in rows if "nnc" in r.us and "ort" in r.us and r.us["nnc"] > r.us["ort"]]


def fused_dump(z):
    cmd = [ARGS.nnc, "dump", "--stage=fused", z.nn] + [a for d in z.defines for a in ("-D", d)]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    return bench.parse_fused(r.stdout) if r.returncode == 0 else {}


def kernel_kinds(z):
    """nnc's kernels of the entry by kind ("conv x20, ..."), from the fused dump."""
    from collections import Counter
    n = Counter(k[0].split()[2] if len(k[0].split()) > 2 else "?"
                for (e, _), k in fused_dump(z).items() if e == z.entry)
    return ", ".join(f"{k} x{v}" for k, v in n.most_common())


def profile_losses(run, tmp):
    """perf profile of nnc on every row slower than ORT (worst ratio first)."""
    for m in dict.fromkeys(r.model for r in slower_than_ort(run.rows)):
        run.info[m].nnc_kernels = kernel_kinds(ZOO[m])
    for row in sorted(slower_than_ort(run.rows), key=lambda r: r.us["ort"] / r.us["nnc"]):
        z, info = ZOO[row.model], run.info[row.model]
        print(f"  profiling {row.model} batch {row.batch}, {row.threads} thread(s) ...", file=sys.stderr, flush=True)
        prof, note = bench.perf_profile(info.so, z.entry, info.inputs[row.batch], row.threads, tmp,
                                        ARGS.profile_seconds)
        if prof is None:
            run.profiles.append((row, [f"(no profile: {note})"], []))
            continue
        run.profiles.append((row, prof, bench.hot_kernels(ARGS.nnc, row.model, prof, 3, lambda: fused_dump(z))))

# --------------------------------------------------------------------------------------------
# the report


def ratio(row, side):
    a, n = row.us.get(side), row.us.get("nnc")
    return a / n if a and n else None


def latency_table(run):
    head = ["model", "batch", "threads", "nnc µs", "ORT µs", "eager µs", "TorchScript µs", "ORT/nnc",
            "eager/nnc", "TorchScript/nnc", "max |Δ| nnc", "max |Δ| ORT"]
    body = [[r.model, str(r.batch), str(r.threads)] + [bench.fmt_us(r.us.get(s)) for s in SIDES] +
            [bench.fmt_x(ratio(r, s)) for s in ("ort", "eager", "ts")] +
            [bench.fmt_diff(r.diff.get(s)) for s in ("nnc", "ort")] for r in run.rows]
    return head, body, [False] + [True] * (len(head) - 1)


def model_table(run, models):
    head = ["model", "source", "size", "nnc compile (ms)", ".so (MB)", "TorchScript"]
    body = []
    for m in models:
        z, i = ZOO[m], run.info.get(m)
        if i is None:
            continue
        size = f"{z.shape[1]}x{z.shape[2]}" if z.kind == "image" else f"T = {GRU_T}"
        src = z.nn + (" " + " ".join(f"-D {d}" for d in z.defines) if z.defines else "")
        body.append([m, src, size, f"{i.compile_ms:,.0f}" if i.compile_ms else "n/a",
                     f"{i.so_bytes / 1e6:.1f}" if i.so_bytes else "n/a", i.ts_how])
    return head, body, [False, False, False, True, True, False]


def note_lines(run, models):
    lines = []
    for m in models:
        i = run.info.get(m)
        if i and i.ts_note:
            lines.append(f"- {m}: TorchScript {i.ts_how} ({i.ts_note})")
        if i and i.ort_note:
            lines.append(f"- {m}: ONNX Runtime n/a ({i.ort_note})")
    if run.ort_note:
        lines.append(f"- ONNX Runtime columns skipped: {run.ort_note}")
    lines += [f"- warning: outputs disagree: {m}" for m in run.mismatches]
    lines += [f"- failure: {f}" for f in run.failures]
    return lines


def md_report(run, models, load, elapsed_s, header):
    md = ["## Model zoo: nnc vs ONNX Runtime, PyTorch eager and TorchScript", "",
          "Generated by `bench/zoo_bench.py` (see [bench/README.md](../bench/README.md#model-zoo-zoo_benchpy)):",
          "", "    " + header, f"    {load[0]}; {elapsed_s:.0f} s", ""]
    if load[1]:
        md += ["**Measured on a shared machine**: other engineers' builds and tests ran during the run "
               "(see the load above), so figures carry that noise; each side's best of "
               f"{ARGS.rounds} rounds in turn is kept to damp it.", ""]
    md += WHAT_LINES + [""] + bench.md_table(model_table(run, models)) + [""]
    md += bench.md_table(latency_table(run)) + [""]
    notes = note_lines(run, models)
    if notes:
        md += ["Notes:", ""] + notes + [""]
    md += why_lines(run)
    return md


WHAT_LINES = [
    "Median latency per call (µs) of each side; the ratios are the other side's time over nnc's "
    "(above 1: nnc is faster). nnc: the `.so` (weights embedded) through the Python package; ORT: "
    f"ONNX Runtime {ort_side.ORT_VERSION} (CPU provider, `ORT_ENABLE_ALL`, sequential, intra = inter-op "
    "threads = the row's threads) on `torch.onnx.export` (opset 17, dynamic batch) of the same "
    "module, timed in a child process by `ort_bench` (each timed run one `Run` call, ORT "
    "allocating the outputs); eager: the torchvision / `torch.nn` module under `no_grad`; "
    "TorchScript: `optimize_for_inference(freeze(script(module)))`. Same weights, inputs and "
    "thread count on every side. max |Δ|: largest difference from eager's outputs. "
    "nnc compile: wall-clock of `nnc model.nn -o model.so --weights w.safetensors` (LLVM O3, "
    "weights embedded, the compile cache off: cold), best of the runs made.",
]

# Why nnc loses to ONNX Runtime: the analysis of the last measured run's profiles (perf of
# nnc, `nnc dump --stage=fused|loops`, ORT's optimised graph), per model.  Keep it true when the
# code changes.
WHY_ORT_COMMON = (
    "ORT's graph optimiser (`ORT_ENABLE_ALL`) turns every convolution into its NCHWc form "
    "(`com.microsoft.nchwc` Conv: channels in blocks of 16 for AVX-512, BatchNorm folded, the "
    "activation and a residual Add fused in), run by MLAS's blocked direct-convolution kernels, "
    "with a kernel of its own for depthwise convolutions; consecutive NCHWc layers pass their "
    "blocked tensors on without reordering, so a whole model runs faster than the sum of its "
    "layers timed alone (`bench/conv_layers.py`, whose single layers include ORT's reorders). nnc "
    "runs every convolution in NCHW on its register-tiled direct (or Winograd) kernel, 1x1 ones on "
    "row tiles (`gemm.conv`: per (image, group) a padded copy of the input planes, then register "
    "tiles over the (channel, tap) pairs), the copy and the epilogue as passes of their own "
    "(`kN.gemm` in the profile). Since December 2026 its vector widths follow this Zen 5's FMA "
    "(16 floats at the rate of 8: every convolution had run at half the FMA rate), maps of up to "
    "about 12 columns run flat (rows together), and every static product runs on row tiles "
    "(OpenBLAS's Haswell kernels, pinned on this VM, use 8-float vectors).")
WHY_ORT = {
    "mobilenet_v3_small": (
        "depthwise 3x3 and 5x5 convolutions on 28x28 to 7x7 maps and the 1x1 convolutions on 7x7 "
        "maps, whose 49 columns fill 4 vectors of 16 to 77 %, where NCHWc vectors run over "
        "channels."),
    "efficientnet_b0": (
        "the rows it loses are batch 8 (and batch 1 on 2 threads with the vCPUs far apart). At batch 1 on "
        "1 thread nnc is ahead (December 2026, both timed in turns: 8.16 against ORT's 9.39 ms, its "
        "per-node profile summing to 9.32). At batch 8 each kernel runs its 8 images before the next "
        "kernel starts, and its intermediates (38 MB for the 112x112 expansion) leave L3: kernel by "
        "kernel, an image costs 18 % more than at batch 1, most in the depthwise convolutions and the 1x1 "
        "convolutions around them (the 56x56 depthwise `k13` 1.74x, the stride-2 `k7` 1.41x). Measured in "
        "one process: 8 calls of one image take 63 ms against 67.6 for one call of 8 on 1 thread, and two "
        "threads each running 4 images one at a time take 37-42 ms against 47-48 for the batch-8 call on "
        "2 threads (ORT 38.6 in the table). What would close it: an entry whose images are independent "
        "run image by image, each thread its own images from the first kernel to the last (no barrier a "
        "kernel, the intermediates in the core's caches). SiLU stays a pass after each convolution: on "
        "the register tiles it made efficientnet's 1x1 kernels 7-9 % slower (the 24 exp-and-divide chains "
        "beside the accumulators)."),
    "mobilenet_v2": (
        "on 1 thread at batch 1, kernel by kernel against ONNX Runtime's own per-node profile "
        "(ort_bench.c with EnableProfiling, December 2026), nnc is within about 15 % of ORT on every "
        "layer from 56x56 down and loses on the 112x112 ones: the expansion 16 -> 96 (`k3`, 424 "
        "against 308 us), the stride-2 depthwise after it (`k4`, 330-365 against 181: its phase-split "
        "padded copy reads the 4.8 MB expansion output from L3, where ORT's NCHWc depthwise kernel "
        "reads it in place) and the projection 32 -> 16 (`k2`, 130 against 85). Since December 2026 "
        "the 1x1 and direct convolutions apply BatchNorm, ReLU6 and the residual add on their "
        "register tiles (no epilogue pass: 5.69 -> 5.40 ms in turns) and the depthwise layers at "
        "112x112 split (image, channel) pairs among the threads (they had split each channel's rows, "
        "a fork and join a channel: 2.3x their 1-thread time on 2). What would close the rest: the "
        "expansion, its depthwise convolution and the projection run per block of channels while the "
        "block is in L2 (the 4.8 MB intermediate would never leave the core), or a stride-2 depthwise "
        "kernel that reads its input in place. On 2 threads the ratio follows the VM's vCPUs: 2.84 ms "
        "in turns with them close, against ORT's 3.6-3.9 in the table's runs."),
    "convnext_toy": (
        "its 7x7 depthwise convolutions on 16x16 to 4x4 maps and the blocks' Linear layers "
        "(`k10.gemm`, 32 -> 128 per pixel). ORT: NCHWc depthwise Conv, its fused "
        "`LayerNormalization` and `BiasGelu`, MatMul on pre-packed weights."),
    "resnet18": (
        "no depthwise layers. On 1 thread nnc is ahead since December 2026 (26.6 -> 16.0 ms: its "
        "Winograd and direct convolutions take 16-float vectors on this Zen 5, layer4's 7x7 maps "
        "run flat); on 2 threads at batch 1 too since the loops over channels around each "
        "convolution's products (the padded copy, Winograd's transforms, the epilogue) split "
        "among the threads when the image loop has one image (12.3 -> 10.4 ms in turns). At "
        "batch 8 on 2 threads each thread runs whole images, and the gain depends on the VM's "
        "vCPUs (close or far apart)."),
    "vit_small": (
        "most of nnc's time is in the GEMMs (the QKV projection, the MLP, the patch convolution) on "
        "row tiles at this core's FMA rate, and the fused attention; ORT fuses the attention's "
        "scaling and transposes into `FusedMatMul`, bias + GELU into `BiasGelu` and LayerNorm into "
        "one op; nnc puts bias, GELU and the residual add into its GEMM epilogues."),
    "resnet18_anysize": (
        "one library for every image size (H, W symbolic). Its convolutions run on the same "
        "kernels as the pinned build's, with run-time sizes: 3x3 stride-1 ones as Winograd "
        "F(2x2, 3x3) (run-time tile counts, a half tile at an odd edge, so layer4's 7x7 maps too), "
        "the others on the direct register-tiled kernel (not flat: that needs static sizes), 1x1 "
        "ones on row tiles; Winograd's tile rows as vectors of run-time length (a row shorter "
        "than a vector as one masked vector) and the max pool's padded columns as masked vectors "
        "since December 2026 (1.47x -> 1.17x the pinned build's time, kernel by kernel, 1 "
        "thread). What is left: layer4's stride-2 3x3 convolution to 7x7 (1.7x: the pinned "
        "build runs 7x7 maps flat, rows together; a run-time 7-column row takes a 16-float "
        "vector) and Winograd on 14x14 (1.3-1.4x: 7 tiles a row in one 16-float vector, where "
        "the pinned build takes 8-float ones)."),
    "mobilenet_v2_anysize": (
        "as resnet18_anysize: its depthwise and 1x1 convolutions run on the same direct and "
        "row-tile kernels as the pinned build, with run-time sizes (row tiles at any size of B, "
        "depthwise convolutions in blocks of groups on small maps since December 2026); what the "
        "pinned build has beyond them: flat convolutions on 7x7 maps (static sizes only), each "
        "group's copy in static rows, and 16-float vectors sized to the row (a symbolic 7-column "
        "row takes a whole 16-float vector)."),
    "lstm_bi": (
        "the second layer's input projection for both directions ([512, 256] x [256, 1024]) and "
        "the recurrent products ([16, 128] x [128, 512] per step) run on row tiles; the limits that "
        "made it lose at batch 16 (B over L2 to OpenBLAS, 8-float vectors) are gone; on 2 threads "
        "each step's product is split only when timing shows it pays."),
    "transformer_encoder": (
        "at batch 16: the attention kernel's online softmax (10 % of nnc's samples; an AVX2 clone "
        "on 8-float vectors: a 16-float AVX-512 clone ran slower on these 32-key rows, whose "
        "horizontal max and sum then cost twice) and its per-head Q K^T and P V products in "
        "OpenBLAS's Haswell kernel (6 %); the projections and the MLP run on row tiles near the "
        "FMA rate. ORT runs the products in MLAS's packed SGEMM (`FusedMatMul`, `Gemm`, "
        "`BiasGelu`). At batch 1 nnc wins."),
    "transformer_decoder": (
        "at batch 16, the same products and attention as transformer_encoder's (noisy from run to "
        "run); at batch 1 nnc wins clearly: the causal self-attention and the cross-attention run "
        "as the fused kernel."),
    "gru": (
        "at batch 1 on 2 threads: each step's [1, 128] x [128, 384] product is split over both "
        "threads only when timing shows it pays (64 steps a call); ORT does not split a batch-1 "
        "GRU step. The rest is the same work on both sides: the recurrent product of each step "
        "(`forward.scan1.k0`, nnc's row-tile kernel) and the input projections hoisted out of the "
        "loop."),
}

# profile lines by where the time goes: nnc kernel kinds, OpenBLAS, nnc's thread pool
PROFILE_GROUPS = (("reduce", r"\.so \[\.\] \w+(\.\w+)*\.k\d+\.reduce"),
                  ("gemm/conv", r"\.so \[\.\] \w+(\.\w+)*\.k\d+\.gemm"),
                  ("elementwise", r"\.so \[\.\] \w+(\.\w+)*\.k\d+\.elementwise"),
                  ("OpenBLAS", r"libopenblas"), ("pool worker", r"\] worker$"))


def profile_split(prof):
    """{group: percent} of the listed profile lines (those above perf report's 1.5 % cut)."""
    import re
    out = {g: 0.0 for g, _ in PROFILE_GROUPS}
    out["other"] = 0.0
    for ln in prof:
        w = ln.split()
        if not w or not w[0].endswith("%"):
            continue
        g = next((g for g, rx in PROFILE_GROUPS if re.search(rx, ln)), "other")
        out[g] += float(w[0][:-1])
    return out


def profile_table(run):
    head = ["model", "batch", "threads", "nnc µs", "ORT µs"] + [g for g, _ in PROFILE_GROUPS] + ["other"]
    body = []
    for row, prof, _ in run.profiles:
        split = profile_split(prof)
        body.append([row.model, str(row.batch), str(row.threads), bench.fmt_us(row.us["nnc"]),
                     bench.fmt_us(row.us["ort"])] + [f"{split[g]:.0f} %" for g in head[5:]])
    return head, body, [False] + [True] * (len(head) - 1)


def why_lines(run):
    lost = slower_than_ort(run.rows)
    if not lost:
        return ["nnc is faster than ONNX Runtime on every row.", ""]
    md = ["### Where ONNX Runtime is faster, and why", "",
          "Rows: " + ", ".join(f"{r.model} batch {r.batch} {r.threads}t "
                                f"(ORT/nnc {bench.fmt_x(ratio(r, 'ort'))})" for r in lost) + ".", "",
          WHY_ORT_COMMON, ""]
    for m in dict.fromkeys(r.model for r in lost):
        i = run.info[m]
        md += [f"- **{m}**: {WHY_ORT.get(m, '(not analysed yet)')}"]
        if i.nnc_kernels:
            md += [f"  - nnc's kernels (`nnc dump --stage=fused`): {i.nnc_kernels}"]
        if i.ort_ops:
            md += [f"  - ORT's graph after its optimisations (`bench/ort_graph.c`): {i.ort_ops}"]
    md += [""]
    if run.profiles:
        md += ["Where nnc's time goes on each of these rows (`perf record` of the nnc call alone, "
               "percent of samples in the profile lines above 1.5 %, grouped: `reduce`, `gemm/conv`, "
               "`elementwise` are nnc's generated kernels by kind, `pool worker` its thread pool's "
               "wait):", ""] + bench.md_table(profile_table(run)) + [""]
        seen = set()
        for row, prof, hot in run.profiles:  # worst row of each model first
            if row.model in seen:
                continue
            seen.add(row.model)
            md += [f"#### perf: {row.model}, batch {row.batch}, {row.threads} thread(s) (nnc "
                   f"{bench.fmt_us(row.us['nnc'])} µs, ORT {bench.fmt_us(row.us['ort'])} µs)", "", "```"]
            md += prof + (["", "hottest nnc kernels (nnc dump --stage=fused):"] + hot if hot else []) + ["```", ""]
    return md


def main():
    import torch
    models = [m for m in ARGS.models.split(",") if m]
    for m in models:
        if m not in ZOO:
            sys.exit(f"zoo_bench.py: unknown model {m!r} (known: {', '.join(ZOO)})")
    if not os.access(ARGS.nnc, os.X_OK):
        sys.exit(f"zoo_bench.py: no compiler at {ARGS.nnc}; build nnc first or pass --nnc")
    cpu, ncpu, avx512 = bench.machine_info()
    header = (f"{cpu}, nproc {ncpu}, AVX-512 {'yes' if avx512 else 'no'}, torch {torch.__version__}, "
              f"commit {bench.git_commit().split(' ')[0]}, rounds {ARGS.rounds}")
    print("# " + header, flush=True)
    run = Run()
    start = bench.cpu_snapshot()
    with tempfile.TemporaryDirectory(prefix="nnc-zoo-") as tmp, torch.no_grad():
        ort = None
        if not ARGS.no_ort:
            ort, why = ort_side.setup(ARGS.ort_dir, tmp)
            run.ort_note = why if ort is None else None
        else:
            run.ort_note = "--no-ort"
        for m in models:
            print(f"{m} ...", file=sys.stderr, flush=True)
            bench_model(run, ZOO[m], tmp, ort)
        end = bench.cpu_snapshot()
        if not ARGS.no_profile:
            profile_losses(run, tmp)
    load = bench.load_text(start, end)
    print("\n".join(bench.text_table(model_table(run, models))))
    print("\n".join(bench.text_table(latency_table(run))))
    print(f"{load[0]}; {end[0] - start[0]:.0f} s")
    for ln in note_lines(run, models):
        print(ln)
    for row, prof, hot in run.profiles:
        print(f"\nperf: {row.model} batch {row.batch}, {row.threads} thread(s):")
        print("\n".join(prof + hot))
    if ARGS.markdown:
        md_section.write(ARGS.markdown, "zoo_bench.py", md_report(run, models, load, end[0] - start[0], header))
    sys.exit(1 if run.failures else 0)


if __name__ == "__main__":
    main()
