#!/usr/bin/python3
"""nnc vs PyTorch eager: latency of every entry of every example model with a golden reference,
in one process, plus reference points for the largest convolution of each conv model.

Models (examples/<src>.nn compiled with the weights of tests/golden/<m>/ embedded, best of 3
wall-clock compile times, `-D` definitions from tests/golden/<m>/defines):

    realnvp, cfr                                      batches 1 and 4096  (issue 2)
    groupnorm, groupnorm_bn, groupnorm_ln,            batches 1 and 8     (issue 3)
      groupnorm_in (examples/groupnorm.nn -D NORM=..)
    fcn                                               batches 1 and 8 images
    mask_rcnn                                         K = 6 and 48 boxes on one image
    infogan                                           batches 1 and 8
    mann (episode, step), fast_weights (classify,     batches 1 and 16    (issue 4)
      step), lm_temperature (logits, softmax_t,
      sample)
    cactus (kmeans, episode)                          static shapes: batch 1 only

The .so is loaded with the Python package (python/nnc, which calls every entry generically
through the ABI of runtime/include/nnc_model.h) and timed against the PyTorch module of
tests/golden/<m>/reference.py loaded with the same weights.safetensors, on the same inputs,
with the same thread count.  Outputs of the two are compared (max |nnc - torch|).

For the largest Conv2d of each conv model (found with forward hooks on the torch module) it
also times, in the same run: that convolution alone in nnc (a one-op .nn generated and compiled
on the fly, same weights), alone in torch (F.conv2d), and OpenBLAS cblas_sgemm on the GEMM of
the same shape (M = Cout/groups, N = OH*OW, K = Cin/groups*KH*KW; bench/sgemm_gflops.c compiled
on the fly with cc -lopenblas), and a STREAM-like copy bandwidth.

    /usr/bin/python3 bench/bench.py [--threads T] [--markdown FILE] [--models realnvp,fcn,...]
                                    [--batches 1,4096] [--conv-batches 1,8] [--rnn-batches 1,16]
                                    [--torch-only]
                                    [--no-conv] [--no-profile] [--check-abi]

Issue 4 models: mann/fast_weights `step` entries (one streaming step, state in and out, at the
state after steps 0..5 of a sequence) are reported per step next to torch's `step` and next to
the whole sequence / T, with no target; lm_temperature `sample` gets the same Gumbel noise and
temperature on both sides and its sampled tokens must agree exactly.

The nnc time includes the ctypes call overhead (printed separately, well under a microsecond).
"""
import argparse
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOLDEN = os.path.join(ROOT, "tests", "golden")

# model -> (source in examples/, golden directory, kind).  kind "dense": issue 2 (targets 5x at
# batch 1, 1x at the large batch); "conv": issue 3 (2x at batch 1, 1x at batch 8).
MODELS = {
    "realnvp": ("realnvp", "realnvp", "dense"),
    "cfr": ("cfr", "cfr", "dense"),
    "groupnorm": ("groupnorm", "groupnorm", "conv"),
    "groupnorm_bn": ("groupnorm", "groupnorm_bn", "conv"),
    "groupnorm_ln": ("groupnorm", "groupnorm_ln", "conv"),
    "groupnorm_in": ("groupnorm", "groupnorm_in", "conv"),
    "fcn": ("fcn", "fcn", "conv"),
    "mask_rcnn": ("mask_rcnn", "mask_rcnn", "conv"),
    "infogan": ("infogan", "infogan", "conv"),
    "mann": ("mann", "mann", "rnn"),
    "fast_weights": ("fast_weights", "fast_weights", "rnn"),
    "lm_temperature": ("lm_temperature", "lm_temperature", "rnn"),
    "cactus": ("cactus", "cactus", "rnn"),
}
DEFAULT_MODELS = list(MODELS)
MASK_RCNN_BOXES = 6  # boxes per "batch" unit: batch 1 -> K = 6 (the golden boxes), 8 -> K = 48
# kind "rnn": issue 4 (5x at batch 1: a whole episode / sequence; step entries are reported, no
# target).  cactus has static shapes (one k-means problem, one 5-way 2-shot episode): batch 1 only.
TARGETS = {"dense": ((1, 5.0), (4096, 1.0)), "conv": ((1, 2.0), (8, 1.0)),
           "rnn": ((1, 5.0),)}  # (batch, min speed-up)
STEP_ENTRIES = {"mann": ("step", "episode", "T"), "fast_weights": ("step", "classify", "T")}
SEQ_LEN = {"mann": 10, "fast_weights": 8}  # the golden lengths (T); lm_temperature: T = 48, L = 40
LM_T, LM_P, LM_L, LM_TEMP = 48, 6, 40, 0.8


def parse_args(argv):
    p = argparse.ArgumentParser(description="Benchmark nnc-compiled models against PyTorch eager.")
    p.add_argument("--threads", type=int, default=1,
                   help="threads for both nnc (OPENBLAS_NUM_THREADS) and torch (default 1)")
    p.add_argument("--models", default=",".join(DEFAULT_MODELS),
                   help="comma-separated models (default: all: %(default)s)")
    p.add_argument("--batches", default="1,4096",
                   help="batch sizes of realnvp and cfr (default: %(default)s)")
    p.add_argument("--conv-batches", default="1,8",
                   help="batch sizes of the conv models; for mask_rcnn, K = 6 x batch boxes on one "
                        "image (default: %(default)s)")
    p.add_argument("--rnn-batches", default="1,16",
                   help="batch sizes of mann, fast_weights and lm_temperature (cactus: static, 1) "
                        "(default: %(default)s)")
    p.add_argument("--nnc", default=os.path.join(ROOT, "build", "nnc"), help="path to the nnc compiler")
    p.add_argument("--markdown", metavar="FILE", help="also write the report as markdown")
    p.add_argument("--min-time", type=float, default=0.5,
                   help="seconds of timed calls per measurement (with >= --min-reps) (default 0.5)")
    p.add_argument("--min-reps", type=int, default=200, help="repetitions per measurement (default 200)")
    p.add_argument("--max-time", type=float, default=5.0,
                   help="stop a slow measurement after this many seconds once it has 10 reps (default 5)")
    p.add_argument("--torch-only", action="store_true",
                   help="time only the PyTorch side (no compiler needed)")
    p.add_argument("--no-conv", action="store_true",
                   help="skip the largest-convolution GFLOP/s section (and the sgemm/copy figures)")
    p.add_argument("--no-profile", action="store_true",
                   help="do not perf-profile the worst missed target")
    p.add_argument("--profile-seconds", type=float, default=3.0,
                   help="seconds of calls under perf record (default 3)")
    p.add_argument("--check-abi", action="store_true",
                   help="only check the ctypes mirror of nnc_model.h against the C compiler's layout")
    p.add_argument("--loop", nargs=4, metavar=("SO", "ENTRY", "NPZ", "SECONDS"), help=argparse.SUPPRESS)
    return p.parse_args(argv)


ARGS = parse_args(sys.argv[1:])
# Thread counts must be in the environment before OpenBLAS (pulled in by numpy, torch, or the
# generated .so) is loaded, i.e. before the imports below.
os.environ["OPENBLAS_NUM_THREADS"] = str(ARGS.threads)
os.environ["OMP_NUM_THREADS"] = str(ARGS.threads)

import ctypes  # noqa: E402
import importlib.util  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(ROOT, "python"))
import nnc as nnc_py  # noqa: E402  (the Python package: python/nnc)
from nnc import _abi  # noqa: E402  (its ctypes mirror of nnc_model.h)

# --------------------------------------------------------------------------------------------
# the nnc side: nnc_py.load() calls the .so generically through nnc_model.h


def check_abi(verbose):
    """Check the package's ctypes mirror of nnc_model.h / nnc.h against the C compiler's layout.
    Returns True when they agree (or there is no C compiler to ask)."""
    cc = next((c for c in ("cc", "gcc", "clang") if _which(c)), None)
    if cc is None:
        print("note: no C compiler found; ABI layout check skipped")
        return True
    try:
        bad = _abi.check_layout(os.path.join(ROOT, "runtime", "include"), cc)
    except (OSError, subprocess.CalledProcessError) as e:
        print(f"error: could not build the ABI check program: {getattr(e, 'stderr', e)}", file=sys.stderr)
        return False
    for b in bad:
        print(f"error: ABI mismatch {b}", file=sys.stderr)
    if verbose and not bad:
        print("ABI check: the ctypes mirror (python/nnc/_abi.py) matches nnc_model.h and nnc.h")
    return not bad


def _which(prog):
    for d in os.environ.get("PATH", "").split(os.pathsep):
        f = os.path.join(d, prog)
        if os.path.isfile(f) and os.access(f, os.X_OK):
            return f
    return None


def bind(model, entry, inputs):
    """(call, outputs): call() runs the entry on `inputs` (name -> array) into `outputs`
    (name -> array), with the arguments checked once (nnc.Entry.bind)."""
    e = model[entry]
    b = e.bind(**inputs)
    return b, dict(zip((a.name for a in e.outputs), b.outputs))


def read_defines(golden):
    """-D definitions of tests/golden/<golden>/defines (one NAME=VALUE per line), if any."""
    path = os.path.join(GOLDEN, golden, "defines")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [ln.strip() for ln in f if ln.strip() and not ln.startswith("#")]


def compile_cmd(nnc, model, so):
    src, golden, _ = MODELS[model]
    cmd = [nnc, os.path.join("examples", f"{src}.nn")]
    for d in read_defines(golden):
        cmd += ["-D", d]
    return cmd + ["-o", so, "--weights", os.path.join("tests", "golden", golden, "weights.safetensors")]


def compile_model(nnc, model, outdir, reps=3):
    """Compile the model with embedded weights; returns (so_path, best ms)."""
    so = os.path.join(outdir, f"{model}.so")
    return so, run_nnc(compile_cmd(nnc, model, so), reps)


def run_nnc(cmd, reps):
    best = None
    for _ in range(reps):
        t0 = time.perf_counter()
        r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        dt = (time.perf_counter() - t0) * 1e3
        if r.returncode != 0:
            raise RuntimeError(f"compile failed (exit {r.returncode}): {shlex.join(cmd)}\n{r.stderr.strip()}")
        best = dt if best is None else min(best, dt)
    return best


# --------------------------------------------------------------------------------------------
# the torch side and the inputs

_REFS = {}


def load_reference(golden):
    """tests/golden/<golden>/reference.py as a module (the groupnorm variants share groupnorm's)."""
    if golden.startswith("groupnorm"):
        golden = "groupnorm"
    if golden not in _REFS:
        if GOLDEN not in sys.path:
            sys.path.insert(0, GOLDEN)
        path = os.path.join(GOLDEN, golden, "reference.py")
        spec = importlib.util.spec_from_file_location(f"nnc_reference_{golden}", path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        _REFS[golden] = mod
    return _REFS[golden]


def load_torch_model(model, ref):
    """The reference torch.nn module of the model, with tests/golden/<m>/weights.safetensors."""
    if GOLDEN not in sys.path:
        sys.path.insert(0, GOLDEN)
    import nnc_ref
    _, golden, _ = MODELS[model]
    if model.startswith("groupnorm"):
        norm = "gn"
        for d in read_defines(golden):
            if d.startswith("NORM="):
                norm = d.split("=", 1)[1]
        m = ref.ResNet(norm)
    elif model == "lm_temperature":
        import json
        with open(os.path.join(ROOT, "examples", "lm_data", "vocab.json")) as f:
            m = ref.CharLM(len(json.load(f)))
    else:
        m = getattr(ref, {"realnvp": "RealNVP", "cfr": "CFR", "fcn": "FCN8s",
                          "mask_rcnn": "MaskRCNNHeads", "infogan": "InfoGAN", "mann": "MANN",
                          "fast_weights": "FastWeightsRNN", "cactus": "Cactus"}[model])()
    nnc_ref.load_state_dict(m, os.path.join(GOLDEN, golden, "weights.safetensors"))
    return m.float().eval()


def torch_entries(model, m):
    """entry -> function(inputs as torch tensors by name) -> {output name: tensor}."""
    if model == "realnvp":
        return {
            "forward": lambda a: dict(zip(("z", "logdet"), m(a["x"]))),
            "inverse": lambda a: {"x": m.inverse(a["z"])},
            "log_prob": lambda a: {"lp": m.log_prob(a["x"])},
        }
    if model == "cfr":
        return {
            "predict": lambda a: dict(zip(("y0", "y1", "ite"), m.predict(a["x"]))),
            "imbalance": lambda a: {"imb": m.imbalance(a["x"], a["t"])},
        }
    if model.startswith("groupnorm"):
        return {"forward": lambda a: {"logits": m(a["x"])}}
    if model == "fcn":
        return {"forward": lambda a: {"scores": m(a["x"])}}
    if model == "mask_rcnn":
        return {
            "detect": lambda a: dict(zip(("class_logits", "box_deltas"), m.detect(a["image"], a["boxes"]))),
            "masks": lambda a: {"masks": m.masks(a["image"], a["boxes"])},
        }
    if model == "infogan":
        return {
            "generate": lambda a: {"x": m.generate(a["z"], a["c_cat"], a["c_cont"])},
            "discriminate": lambda a: dict(zip(("d", "q_logits", "q_mu"), m.discriminate(a["x"]))),
            "mi_lower_bound": lambda a: {"lb": m.mi_lower_bound(a["x"], a["c_cat"], a["c_cont"])},
        }
    if model == "mann":
        return {
            "episode": lambda a: {"logits": m.episode(a["x"], a["y"])},
            "step": lambda a: dict(zip(("logits", "h_next", "c_next", "memory_next", "usage_next", "w_read_next"),
                                       m.step(a["x_t"], a["y_prev"], a["h"], a["c"], a["memory"], a["usage"],
                                              a["w_read"]))),
        }
    if model == "fast_weights":
        return {
            "classify": lambda a: {"logits": m.classify(a["x"])},
            "step": lambda a: dict(zip(("logits", "h_next", "A_next"), m.step(a["x_t"], a["h"], a["A"]))),
        }
    if model == "lm_temperature":
        import torch
        return {
            "logits": lambda a: {"logits": m.logits(a["tokens"])},
            "softmax_t": lambda a: {"probs": torch.softmax(a["logits"] / a["temperature"], dim=-1)},
            "sample": lambda a: {"tokens": m.sample(a["prefix"], a["gumbel"], a["temperature"])},
        }
    if model == "cactus":
        ref = load_reference("cactus")
        return {
            "kmeans": lambda a: dict(zip(("centroids", "labels"), ref.kmeans(a["emb"], a["scale"], a["init"]))),
            "episode": lambda a: {"logits": m.episode(a["support"], a["support_labels"], a["query"])},
        }
    raise KeyError(model)


def golden_inputs(golden, entry):
    """The inputs of tests/golden/<golden>/<entry>.in.<arg>.npy."""
    d = os.path.join(GOLDEN, golden)
    pre = f"{entry}.in."
    return {f[len(pre):-4]: np.load(os.path.join(d, f)) for f in sorted(os.listdir(d))
            if f.startswith(pre) and f.endswith(".npy")}


def batch_label(model, batch):
    return f"K={MASK_RCNN_BOXES * batch}" if model == "mask_rcnn" else str(batch)


def make_inputs(model, ref, m, entry, batch):
    """Inputs (name -> numpy array) for an entry at a batch size, deterministic."""
    import torch
    g = torch.Generator().manual_seed(1000 + batch)
    if model == "realnvp":
        x = ref.make_inputs(n=batch, seed=1000 + batch)
        if entry == "inverse":
            with torch.no_grad():
                return {"z": m(x)[0].numpy().copy()}
        return {"x": x.numpy()}
    if model == "cfr":
        # 3/8 treated, as in the golden; at batch 1 the control (or treated) mean is empty
        # and the imbalance is NaN for both implementations.
        x, t = ref.make_inputs(n=batch, n_treated=max(1, round(batch * 12 / 32)) if batch > 1 else 1,
                               seed=1000 + batch)
        return {"x": x.numpy(), "t": t.numpy()} if entry == "imbalance" else {"x": x.numpy()}
    if model.startswith("groupnorm"):
        return {"x": torch.randn(batch, 3, 32, 32, generator=g).numpy()}
    if model == "fcn":
        return {"x": torch.randn(batch, 3, 64, 64, generator=g).numpy()}
    if model == "mask_rcnn":
        image, boxes = ref.make_inputs()  # the golden image and its 6 boxes (edge cases included)
        k = MASK_RCNN_BOXES * batch
        extra = k - boxes.shape[0]
        if extra > 0:  # more boxes, some partly outside the 64x64 image
            xy = torch.rand(extra, 2, generator=g) * 72 - 8
            wh = torch.rand(extra, 2, generator=g) * 40 + 1
            more = torch.cat([torch.zeros(extra, 1), xy, xy + wh], 1)
            boxes = torch.cat([boxes, more], 0)
        return {"image": image.numpy(), "boxes": boxes[:k].contiguous().numpy()}
    if model == "infogan":
        z = torch.randn(batch, ref.NZ, generator=g)
        cat = torch.randint(0, ref.NCAT, (batch,), generator=g)
        c_cat = torch.nn.functional.one_hot(cat, ref.NCAT).float()
        c_cont = torch.rand(batch, ref.NCONT, generator=g) * 2 - 1
        if entry == "generate":
            return {"z": z.numpy(), "c_cat": c_cat.numpy(), "c_cont": c_cont.numpy()}
        with torch.no_grad():  # images the generator makes, as in the golden
            x = m.generate(z, c_cat, c_cont).numpy().copy()
        if entry == "discriminate":
            return {"x": x}
        return {"x": x, "c_cat": c_cat.numpy(), "c_cont": c_cont.numpy()}
    if model == "mann":
        t_len = SEQ_LEN[model]
        x = torch.randn(batch, t_len, ref.X, generator=g)
        y = torch.nn.functional.one_hot(torch.randint(0, ref.C, (batch, t_len), generator=g), ref.C).float()
        if entry == "episode":
            return {"x": x.numpy(), "y": y.numpy()}
        with torch.no_grad():  # the state after steps 0..5 of the episode, as in the golden
            _, states = m.episode(x, y, keep_states=True)
        s, t = states[ref.STEP_T], ref.STEP_T
        return {k: v.numpy().copy() for k, v in zip(("x_t", "y_prev", "h", "c", "memory", "usage", "w_read"),
                                                    (x[:, t].contiguous(), y[:, t - 1].contiguous(), *s))}
    if model == "fast_weights":
        t_len = SEQ_LEN[model]
        x = torch.randn(batch, t_len, ref.X, generator=g)
        if entry == "classify":
            return {"x": x.numpy()}
        with torch.no_grad():
            _, states = m.classify(x, keep_states=True)
        h, a = states[ref.STEP_T]
        return {"x_t": x[:, ref.STEP_T].contiguous().numpy(), "h": h.numpy().copy(), "A": a.numpy().copy()}
    if model == "lm_temperature":
        import json
        with open(os.path.join(ROOT, "examples", "lm_data", "vocab.json")) as f:
            vocab = json.load(f)
        with open(os.path.join(ROOT, "examples", "lm_data", "heldout.txt")) as f:
            held = ref.encode(f.read(), vocab)
        v = len(vocab)
        starts = [(100 + 617 * i) % (len(held) - LM_T) for i in range(batch)]
        if entry == "logits":  # windows of the held-out text
            return {"tokens": torch.stack([held[s:s + LM_T] for s in starts]).numpy()}
        if entry == "softmax_t":  # real model logits scaled by 3 (sharp rows), temperature 0.7
            with torch.no_grad():
                lg = m.logits(torch.stack([held[s:s + LM_T] for s in starts]))[:, 10]
            return {"logits": (3 * lg).contiguous().numpy(), "temperature": np.array(0.7, dtype=np.float32)}
        u = torch.rand(batch, LM_L, v, generator=g).clamp(1e-12, 1 - 1e-7)
        return {"prefix": torch.stack([held[s:s + LM_P] for s in starts]).numpy(),
                "gumbel": (-torch.log(-torch.log(u))).numpy(),
                "temperature": np.array(LM_TEMP, dtype=np.float32)}
    if model == "cactus":  # static shapes: the golden k-means problem and episode
        return golden_inputs("cactus", entry)
    raise KeyError(model)


# --------------------------------------------------------------------------------------------
# the largest convolution of a conv model, timed alone; OpenBLAS sgemm and copy bandwidth

def largest_conv(m, tentries, inputs_of):
    """Run every entry at batch 1 with forward hooks on each nn.Conv2d; returns the call with the
    most flops: dict(name, module, n (images seen), cin, cout, kh, kw, stride, padding, dilation,
    groups, h, w, oh, ow, flops)."""
    import torch
    best = {}

    def hook(name):
        def f(mod, inp, out):
            x = inp[0]
            n, cin, h, w = x.shape
            _, cout, oh, ow = out.shape
            kh, kw = mod.kernel_size
            fl = 2 * n * cout * oh * ow * (cin // mod.groups) * kh * kw
            if fl > best.get("flops", 0):
                best.update(name=name, module=mod, n=n, cin=cin, cout=cout, kh=kh, kw=kw,
                            stride=mod.stride, padding=mod.padding, dilation=mod.dilation,
                            groups=mod.groups, h=h, w=w, oh=oh, ow=ow, flops=fl,
                            bias=mod.bias is not None)
        return f

    hs = [mod.register_forward_hook(hook(name)) for name, mod in m.named_modules()
          if isinstance(mod, torch.nn.Conv2d)]
    try:
        with torch.no_grad():
            for entry, fn in tentries.items():
                fn({k: torch.from_numpy(v) for k, v in inputs_of(entry).items()})
    finally:
        for h in hs:
            h.remove()
    return best or None


def conv_layer_text(c):
    def pair(v):
        return str(v[0]) if v[0] == v[1] else f"({v[0]}, {v[1]})"
    args = [str(c["cin"]), str(c["cout"]), pair((c["kh"], c["kw"]))]
    for name, v, default in (("stride", c["stride"], (1, 1)), ("padding", c["padding"], (0, 0)),
                             ("dilation", c["dilation"], (1, 1))):
        if tuple(v) != default:
            args.append(f"{name}={pair(v)}")
    if c["groups"] != 1:
        args.append(f"groups={c['groups']}")
    if not c["bias"]:
        args.append("bias=false")
    return f"Conv2d({', '.join(args)})"


def conv_alone(nnc, c, tmp, tag, batches):
    """The convolution as a one-op model: compile it with nnc, time it (and F.conv2d) at each
    batch in `batches` (images); returns {batch: (nnc µs, torch µs, max |Δ|)}, compile ms."""
    import torch
    import torch.nn.functional as F
    src = os.path.join(tmp, f"conv_{tag}.nn")
    wts = os.path.join(tmp, f"conv_{tag}.safetensors")
    so = os.path.join(tmp, f"conv_{tag}.so")
    with open(src, "w") as f:
        f.write(f"# the largest convolution of {tag}, alone (generated by bench/bench.py)\n"
                f"conv = {conv_layer_text(c)}\n"
                f"export run(x: f32[N, {c['cin']}, {c['h']}, {c['w']}]) -> "
                f"(y: f32[N, {c['cout']}, {c['oh']}, {c['ow']}]) {{\n  y = conv(x)\n}}\n")
    mod = c["module"]
    sd = {"conv.weight": mod.weight.detach()}
    if c["bias"]:
        sd["conv.bias"] = mod.bias.detach()
    import nnc_ref
    nnc_ref.save_safetensors(wts, sd)
    ms = run_nnc([nnc, src, "-o", so, "--weights", wts], 1)
    lib = nnc_py.load(so)
    res = {}
    try:
        for n in batches:
            g = torch.Generator().manual_seed(7 + n)
            x = torch.randn(n, c["cin"], c["h"], c["w"], generator=g)
            call, outs = bind(lib, "run", {"x": x.numpy()})
            call()
            with torch.no_grad():
                def tf():
                    return F.conv2d(x, mod.weight, mod.bias, mod.stride, mod.padding, mod.dilation, mod.groups)
                ty = tf().numpy()
                t_us, _ = time_call(tf, ARGS.min_reps, ARGS.min_time, ARGS.max_time)
            diff = max_abs_diff(outs["y"], ty)
            n_us, _ = time_call(call, ARGS.min_reps, ARGS.min_time, ARGS.max_time)
            res[n] = (n_us, t_us, diff)
    finally:
        lib.close()
    return res, ms


def build_helper(tmp):
    """Compile bench/sgemm_gflops.c; returns the executable path or None (reason printed)."""
    cc = next((c for c in ("cc", "gcc", "clang") if _which(c)), None)
    if cc is None:
        print("note: no C compiler; sgemm and copy figures skipped", file=sys.stderr)
        return None
    exe = os.path.join(tmp, "sgemm_gflops")
    r = subprocess.run([cc, "-O2", os.path.join(ROOT, "bench", "sgemm_gflops.c"), "-o", exe, "-lopenblas"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        print(f"note: could not build bench/sgemm_gflops.c (sgemm and copy figures skipped):\n{r.stderr}",
              file=sys.stderr)
        return None
    return exe


def sgemm_gflops(exe, m, n, k):
    out = subprocess.run([exe, "sgemm", str(m), str(n), str(k), str(ARGS.min_time)],
                         capture_output=True, text=True, check=True).stdout.split()
    return float(out[3]), float(out[4])  # µs, GFLOP/s


def copy_gbs(exe, mib=64):
    out = subprocess.run([exe, "copy", str(mib), str(ARGS.min_time)],
                         capture_output=True, text=True, check=True).stdout.split()
    return float(out[2])


# --------------------------------------------------------------------------------------------
# perf profile of a slow case: a child process loops over the nnc call under perf record

def loop_main(so, entry, npz, seconds):
    """(bench.py --loop SO ENTRY NPZ SECONDS) call the entry on the saved inputs for a while."""
    lib = nnc_py.load(so)
    inputs = dict(np.load(npz))
    call, _ = bind(lib, entry, inputs)
    end = time.perf_counter() + float(seconds)
    while time.perf_counter() < end:
        for _ in range(10):
            call()
    lib.close()


def perf_profile(so, entry, inputs, tmp, seconds):
    """perf record of the nnc call alone; returns the top lines of perf report, or a reason."""
    perf = _which("perf")
    if perf is None:
        return None, "perf is not installed"
    npz = os.path.join(tmp, "profile_inputs.npz")
    np.savez(npz, **inputs)
    data = os.path.join(tmp, "perf.data")
    rec = [perf, "record", "-q", "-F", "2000", "-o", data, "--", sys.executable, os.path.abspath(__file__),
           "--threads", str(ARGS.threads), "--loop", so, entry, npz, str(seconds)]
    r = subprocess.run(rec, capture_output=True, text=True)
    if r.returncode != 0:
        return None, f"perf record failed: {r.stderr.strip()[-300:]}"
    rep = subprocess.run([perf, "report", "-i", data, "--stdio", "--no-children", "--sort", "dso,sym",
                          "--percent-limit", "1.5"], capture_output=True, text=True)
    if rep.returncode != 0:
        return None, f"perf report failed: {rep.stderr.strip()[-300:]}"
    lines = [ln.rstrip() for ln in rep.stdout.splitlines() if ln.strip() and not ln.startswith("#")]
    tmpdir = os.path.dirname(so)
    return [" ".join(ln.replace(tmpdir + "/", "").split()) for ln in lines[:20]], None


def fused_kernels(nnc, model):
    """{(entry, kernel index): dump lines} from `nnc dump --stage=fused` of the model."""
    src, golden, _ = MODELS[model]
    cmd = [nnc, "dump", "--stage=fused", os.path.join("examples", f"{src}.nn")]
    for d in read_defines(golden):
        cmd += ["-D", d]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if r.returncode != 0 and read_defines(golden):  # an nnc whose dump has no -D
        return {}
    out, entry, key = {}, None, None
    for ln in r.stdout.splitlines():
        w = ln.split()
        if ln.startswith("entry "):
            entry, key = ln[6:].split("(", 1)[0], None
        elif len(w) >= 2 and w[0] == "kernel" and w[1].isdigit() and entry:
            key = (entry, int(w[1]))
            out[key] = [ln.strip()]
        elif key and ln.startswith("  "):
            out[key].append(ln.strip())
    return out


def hot_kernels(nnc, model, profile, limit=3):
    """Fused-IR dumps of the model's kernels among the top profile lines (symbols entry.kN.kind)."""
    import re
    kernels, shown, n = None, [], 0
    for ln in profile:
        m = re.search(r"\[\.\] (\w+)\.k(\d+)\.(\w+)", ln)
        if not m or n >= limit:
            continue
        if kernels is None:
            kernels = fused_kernels(nnc, model)
        k = kernels.get((m.group(1), int(m.group(2))))
        if k:
            n += 1
            shown.append(f"{m.group(1)}.k{m.group(2)}.{m.group(3)} ({ln.split()[0]}):")
            shown += ["  " + x for x in k[:14]] + (["  ..."] if len(k) > 14 else [])
    return shown


# --------------------------------------------------------------------------------------------
# timing

def time_call(fn, min_reps, min_time, max_time):
    """Median latency in microseconds, over an adaptive number of repetitions."""
    for _ in range(3):
        fn()
    samples = []
    clock = time.perf_counter_ns
    start = clock()
    while True:
        t0 = clock()
        fn()
        t1 = clock()
        samples.append(t1 - t0)
        el = (t1 - start) * 1e-9
        n = len(samples)
        if (n >= min_reps and el >= min_time) or (n >= 10 and el >= max_time) or n >= 1_000_000:
            break
    samples.sort()
    return samples[len(samples) // 2] / 1e3, len(samples)


def max_abs_diff(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return float("inf")
    both_nan = np.isnan(a) & np.isnan(b)
    d = np.atleast_1d(np.abs(a - b))  # 0-d outputs (cfr imbalance) index too
    d[np.atleast_1d(both_nan)] = 0.0
    return float(np.max(d)) if d.size else 0.0


def machine_info():
    cpu = platform.processor() or platform.machine()
    avx512 = None
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                cpu = line.split(":", 1)[1].strip()
            if line.startswith("Flags:"):
                flags = line.split(":", 1)[1].split()
                avx512 = sorted(f for f in flags if f.startswith("avx512"))
    except OSError:
        pass
    return cpu, os.cpu_count(), avx512


def fmt_us(v):
    return "-" if v is None else (f"{v:.1f}" if v < 1000 else f"{v:,.0f}")


def target_of(model, batch, entry=None):
    """Minimum speed-up the issues ask for at this batch, or None (step entries: reported only)."""
    if model in STEP_ENTRIES and entry == STEP_ENTRIES[model][0]:
        return None
    for b, t in TARGETS[MODELS[model][2]]:
        if b == batch:
            return t
    return None


def main():
    if ARGS.loop:
        loop_main(*ARGS.loop)
        return
    models = [m for m in ARGS.models.split(",") if m]
    batches = [int(b) for b in ARGS.batches.split(",") if b]
    conv_batches = [int(b) for b in ARGS.conv_batches.split(",") if b]
    rnn_batches = [int(b) for b in ARGS.rnn_batches.split(",") if b]
    for m in models:
        if m not in MODELS:
            sys.exit(f"bench.py: unknown model {m!r} (known: {', '.join(MODELS)})")

    if ARGS.check_abi:
        sys.exit(0 if check_abi(verbose=True) else 1)

    nnc = os.path.abspath(ARGS.nnc)
    if not ARGS.torch_only:
        if not (os.path.isfile(nnc) and os.access(nnc, os.X_OK)):
            sys.exit(f"bench.py: the compiler {nnc} does not exist; build nnc first (see README.md), "
                     f"pass --nnc PATH, or use --torch-only to time PyTorch alone")
        if not check_abi(verbose=False):
            sys.exit("bench.py: the ctypes mirror of runtime/include/nnc_model.h is out of date")

    import torch
    torch.set_num_threads(ARGS.threads)
    cpu, ncpu, avx512 = machine_info()
    print(f"# {cpu}, nproc {ncpu}, AVX-512 {'yes' if avx512 else 'no'}, threads {ARGS.threads}, "
          f"torch {torch.__version__}")

    load_start = os.getloadavg()
    rows, compile_ms, failures, mismatches = [], {}, [], []
    convs = []  # (model, conv dict, {batch: (nnc µs, torch µs, diff)}, sgemm (µs, GFLOP/s))
    overhead_us, copy_bw = None, None
    profiles, profile_note = [], None
    with tempfile.TemporaryDirectory(prefix="nnc-bench-") as tmp, torch.no_grad():
        helper = None if ARGS.no_conv else build_helper(tmp)
        sos, saved_inputs = {}, {}
        for model in models:
            _, golden, kind = MODELS[model]
            mb = {"dense": batches, "conv": conv_batches, "rnn": rnn_batches}[kind]
            if model == "cactus":
                mb = [1]
            ref = load_reference(golden)
            tm = load_torch_model(model, ref)
            tentries = torch_entries(model, tm)
            lib = None
            if not ARGS.torch_only:
                try:
                    so, compile_ms[model] = compile_model(nnc, model, tmp)
                    sos[model] = so
                    lib = nnc_py.load(so)
                    if overhead_us is None:  # cost of a trivial ctypes call into the .so
                        f = ctypes.CDLL(so).nnc_model_info
                        f.restype, f.argtypes = ctypes.c_void_p, []
                        overhead_us, _ = time_call(f, 1000, 0.1, 1.0)
                except Exception as e:  # report, go on with the other models
                    failures.append(f"{model}: {e}")
                    print(f"error: {model}: {e}", file=sys.stderr)
            for entry, tfn in tentries.items():
                for batch in mb:
                    inputs = make_inputs(model, ref, tm, entry, batch)
                    saved_inputs[(model, entry, batch)] = inputs
                    tin = {k: torch.from_numpy(v) for k, v in inputs.items()}
                    tout = {k: v.numpy() for k, v in tfn(tin).items()}
                    t_us, _ = time_call(lambda: tfn(tin), ARGS.min_reps, ARGS.min_time, ARGS.max_time)
                    n_us, diff = None, None
                    if lib is not None:
                        try:
                            call, nout = bind(lib, entry, inputs)
                            call()
                            diff = max(max_abs_diff(nout[k], tout[k]) for k in tout)
                            scale = max(float(np.nanmax(np.abs(v))) if v.size and not np.isnan(v).all() else 0.0
                                        for v in tout.values())
                            if model == "lm_temperature" and entry == "sample" and diff != 0:
                                mismatches.append(f"{model}.{entry}[{batch}]: sampled tokens differ "
                                                  f"(max |Δ| = {diff:g})")
                            elif not diff <= 1e-4 + 1e-3 * scale:
                                mismatches.append(f"{model}.{entry}[{batch_label(model, batch)}]: max |nnc - torch| "
                                                  f"= {diff:.3g} (outputs up to {scale:.3g})")
                            n_us, _ = time_call(call, ARGS.min_reps, ARGS.min_time, ARGS.max_time)
                        except Exception as e:
                            failures.append(f"{model}.{entry}[{batch}]: {e}")
                            print(f"error: {model}.{entry} batch {batch}: {e}", file=sys.stderr)
                    rows.append((model, entry, batch, n_us, t_us, diff))
                    print(f"  {model}.{entry} batch {batch_label(model, batch)}: nnc {fmt_us(n_us)} us, "
                          f"torch {fmt_us(t_us)} us", file=sys.stderr, flush=True)
            if lib is not None:
                lib.close()
            # the largest convolution (once for the groupnorm family: the same layer shapes)
            if (kind == "conv" and not ARGS.no_conv and not ARGS.torch_only
                    and not (model.startswith("groupnorm_") and any(c[0].startswith("groupnorm") for c in convs))):
                c = largest_conv(tm, tentries, lambda e: make_inputs(model, ref, tm, e, 1))
                if c is not None:
                    nb = [c["n"] * b for b in conv_batches]
                    try:
                        res, _ = conv_alone(nnc, c, tmp, model, nb)
                    except Exception as e:
                        failures.append(f"{model}: largest convolution alone: {e}")
                        print(f"error: {model}: largest convolution alone: {e}", file=sys.stderr)
                        res = {}
                    g = c["groups"]
                    sg = (sgemm_gflops(helper, c["cout"] // g, c["oh"] * c["ow"], c["cin"] // g * c["kh"] * c["kw"])
                          if helper else None)
                    convs.append((model, c, res, sg))
                    print(f"  {model}: largest conv {c['name']} {conv_layer_text(c)} on {c['h']}x{c['w']}: "
                          + ", ".join(f"n={n} nnc {fmt_us(v[0])} us torch {fmt_us(v[1])} us" for n, v in res.items())
                          + (f"; sgemm {sg[1]:.1f} GFLOP/s" if sg else ""), file=sys.stderr, flush=True)
        if helper:
            copy_bw = copy_gbs(helper)

        # missed targets; profile the worst one (nnc time / what the target allows)
        missed = []
        for model, entry, batch, n_us, t_us, diff in rows:
            t = target_of(model, batch, entry)
            if t is not None and n_us is not None and t_us / n_us < t:
                missed.append((n_us * t / t_us, model, entry, batch, t_us / n_us, t))
        missed.sort(reverse=True)
        if missed and not ARGS.no_profile and not ARGS.torch_only:
            seen = set()
            for _, model, entry, batch, _, _ in missed:  # the worst miss of each model (family)
                fam = MODELS[model][0]
                if fam in seen:
                    continue
                seen.add(fam)
                print(f"  profiling {model}.{entry} batch {batch_label(model, batch)} with perf ...",
                      file=sys.stderr, flush=True)
                prof, note = perf_profile(sos[model], entry, saved_inputs[(model, entry, batch)],
                                          tmp, ARGS.profile_seconds)
                if prof is None:
                    profile_note = note
                    break
                profiles.append(((model, entry, batch), prof, hot_kernels(nnc, model, prof)))

    # ---- the report
    load_end = os.getloadavg()
    load_txt = (f"load average (1/5/15 min) {'/'.join(f'{x:.1f}' for x in load_start)} at the start, "
                f"{'/'.join(f'{x:.1f}' for x in load_end)} at the end, on {os.cpu_count()} CPUs")
    busy = max(load_start[0], load_end[0]) > 0.5 * (os.cpu_count() or 1)
    header = ["model", "entry", "batch", "nnc µs", "torch µs", "speed-up", "target", "max |Δ|"]
    table = []
    for model, entry, batch, n_us, t_us, diff in rows:
        sp = t_us / n_us if n_us else None
        t = target_of(model, batch, entry)
        tgt = "" if t is None else (f"≥{t:g}x " + ("-" if sp is None else "ok" if sp >= t else "MISSED"))
        table.append([model, entry, batch_label(model, batch), fmt_us(n_us), fmt_us(t_us),
                      "-" if sp is None else f"{sp:.2f}x", tgt, "-" if diff is None else f"{diff:.2e}"])
    right = [False, False, True, True, True, True, False, True]

    ctable_h = ["model", "largest Conv2d (input)", "GEMM M×N×K", "images", "nnc µs", "nnc GFLOP/s",
                "torch µs", "torch GFLOP/s", "sgemm GFLOP/s", "max |Δ|"]
    ctable = []
    for model, c, res, sg in convs:
        per_img = c["flops"] // c["n"]
        g = c["groups"]
        shape = f"{c['cout'] // g}×{c['oh'] * c['ow']}×{c['cin'] // g * c['kh'] * c['kw']}"
        desc = f"{c['name']}: {conv_layer_text(c)} on {c['cin']}×{c['h']}×{c['w']}"
        for n, (n_us, t_us, diff) in res.items():
            fl = per_img * n
            ctable.append([model, desc, shape, str(n), fmt_us(n_us), f"{fl / n_us * 1e-3:.1f}",
                           fmt_us(t_us), f"{fl / t_us * 1e-3:.1f}",
                           f"{sg[1]:.1f}" if sg else "-", f"{diff:.1e}"])
    cright = [False, False, False, True, True, True, True, True, True, True]

    # streaming step entries: one step with the state in and out, next to the whole sequence / T
    stable_h = ["model", "batch", "nnc step µs", "torch step µs", "speed-up", "nnc seq/T µs",
                "torch seq/T µs", "T"]
    stable = []
    byk = {(m_, e_, b_): (n_, t_) for m_, e_, b_, n_, t_, _ in rows}
    for model in models:
        if model not in STEP_ENTRIES:
            continue
        step_e, seq_e, _ = STEP_ENTRIES[model]
        t_len = SEQ_LEN[model]
        for b in rnn_batches:
            if (model, step_e, b) not in byk:
                continue
            ns, ts = byk[(model, step_e, b)]
            nq, tq = byk.get((model, seq_e, b), (None, None))
            stable.append([f"{model}.{step_e}", str(b), fmt_us(ns), fmt_us(ts),
                           "-" if not ns else f"{ts / ns:.2f}x",
                           "-" if nq is None else fmt_us(nq / t_len), "-" if tq is None else fmt_us(tq / t_len),
                           str(t_len)])
    sright = [False, True, True, True, True, True, True, True]

    def text_table(h, rows_, right_):
        widths = [max(len(x), *(len(r[i]) for r in rows_)) if rows_ else len(x) for i, x in enumerate(h)]

        def line(cells):
            return "  ".join(c.rjust(w) if r else c.ljust(w) for c, w, r in zip(cells, widths, right_))
        return [line(h), "  ".join("-" * w for w in widths)] + [line(r) for r in rows_]

    print("\n".join(text_table(header, table, right)))
    print(f"\n{load_txt}" + (" (the machine was shared with other jobs)" if busy else ""))
    print()
    for model in models:
        print(f"compile {model}: " + (f"{compile_ms[model]:.0f} ms (best of 3)" if model in compile_ms else "-"))
    if overhead_us is not None:
        print(f"ctypes call overhead (included in nnc µs): {overhead_us:.2f} µs")
    if stable:
        print("\nstep entries (per-step latency):")
        print("\n".join(text_table(stable_h, stable, sright)))
    if ctable:
        print()
        print("\n".join(text_table(ctable_h, ctable, cright)))
    if copy_bw is not None:
        print(f"copy bandwidth (STREAM-like, 64 MiB memcpy, read+write): {copy_bw:.1f} GB/s")
    missed_txt = [f"{model}.{entry} batch {batch_label(model, batch)}: {sp:.2f}x, target ≥{t:g}x"
                  for _, model, entry, batch, sp, t in sorted(missed, key=lambda x: (x[1], x[2], x[3]))]
    if missed_txt:
        print("\nmissed targets:\n  " + "\n  ".join(missed_txt))
    for (model, entry, batch), prof, hot in profiles:
        print(f"\nperf profile of {model}.{entry} batch {batch_label(model, batch)}:\n" + "\n".join(prof))
        if hot:
            print("hot kernels (nnc dump --stage=fused):\n" + "\n".join(hot))
    if profile_note:
        print(f"\nno profile: {profile_note}")

    if ARGS.markdown:
        me = os.path.abspath(__file__)
        if os.path.abspath(os.getcwd()) == ROOT:
            me = os.path.relpath(me, ROOT)
        cmd = shlex.join([sys.executable, me] + sys.argv[1:])
        try:
            commit = subprocess.run(["git", "-C", ROOT, "log", "-1", "--format=%h %s"], capture_output=True,
                                    text=True).stdout.strip()
        except OSError:
            commit = ""
        avx = ("yes (" + " ".join(avx512) + ")") if avx512 else ("no" if avx512 is not None else "unknown")
        md = ["# nnc vs PyTorch eager", "",
              f"Command (from the repository root): `{cmd}`", "",
              f"- Machine: {cpu} (lscpu model name), nproc {ncpu}, AVX-512: {avx}",
              f"- Load: {load_txt}" + (" — **the machine was shared with other jobs (builds, tests) "
                                       "during the run, so absolute times are noisy**" if busy else ""),
              f"- Threads: {ARGS.threads} for both (OPENBLAS_NUM_THREADS and torch.set_num_threads)",
              f"- torch {torch.__version__}, numpy {np.__version__}, Python {platform.python_version()}"
              + (f"; nnc at commit `{commit}`" if commit else ""), "",
              "## How to read this", "",
              "- Every entry of every example model with a golden reference is compiled by nnc (weights "
              "embedded, `-D` from `tests/golden/<m>/defines`) and called through the generated `.so`; "
              "PyTorch runs the reference module of `tests/golden/<m>/reference.py` with the same "
              "`weights.safetensors`, same inputs, same threads, in the same process.",
              "- nnc µs / torch µs: median latency of one call"
              + (f" (the nnc time includes ≈{overhead_us:.2f} µs of ctypes overhead)" if overhead_us is not None else "")
              + "; speed-up = torch / nnc (above 1 means nnc is faster).",
              "- batch: rows of the input (images for the conv models); for mask_rcnn it is the "
              "number of boxes K on the one 64×64 image (K = 6: the golden boxes; K = 48: 42 more).",
              "- target: issue 2 (realnvp, cfr): ≥5x at batch 1, ≥1x at batch 4096; issue 3 (conv "
              "models): ≥2x at batch 1, ≥1x at batch 8 (K = 48 for mask_rcnn); issue 4 (mann, "
              "fast_weights, lm_temperature, cactus): ≥5x at batch 1 for every entry but the "
              "streaming `step` entries (reported, no target).",
              "- Issue 4 models: batch = sequences (mann `episode`: T = 10 steps; fast_weights "
              "`classify`: T = 8; lm_temperature `logits`: T = 48 characters of held-out text, "
              f"`sample`: prefix {LM_P}, L = {LM_L} tokens at temperature {LM_TEMP:g} with the same "
              "Gumbel noise on both sides, sampled tokens must agree exactly; `softmax_t`: B rows of "
              "84 logits). cactus has static shapes: `kmeans` = the golden 64×8 problem (5 clusters, "
              "5 Lloyd iterations), `episode` = one 5-way 2-shot episode with 15 queries (25 images "
              "of 28×28 through Conv-4), the golden inputs.",
              "- max |Δ|: largest absolute difference between the nnc and torch outputs (a sanity "
              "check; flagged below when above 1e-4 + 1e-3·max|torch|). At batch 1, cfr `imbalance` "
              "has an empty arm, so both sides return NaN (counted as agreeing).",
              "- Largest convolution: the Conv2d with the most flops in each conv model (found with "
              "forward hooks on the torch module at batch 1), compiled alone by nnc as a one-op `.nn` "
              "(same weights) and run at the number of images the model feeds it at batch 1 and 8; "
              "GFLOP/s = 2·N·Cout·OH·OW·Cin/groups·KH·KW / time. torch = `F.conv2d` on the same "
              "tensors. sgemm = OpenBLAS `cblas_sgemm` on one image's GEMM (M = Cout/groups, N = OH·OW, "
              "K = Cin/groups·KH·KW), `bench/sgemm_gflops.c`, same threads — what im2col + GEMM could "
              "reach. The copy bandwidth (STREAM-like memcpy, 64 MiB, read + write counted) is for "
              "context: small layers are bound by memory traffic and per-call overhead, not flops.", "",
              "## Latency", "",
              *(["PyTorch side only (--torch-only).", ""] if ARGS.torch_only else []),
              "| " + " | ".join(h.replace("|", "\\|") for h in header) + " |",
              "|" + "|".join("---" if not r else "---:" for r in right) + "|"]
        md += ["| " + " | ".join(r) + " |" for r in table]
        md += ["", "| model | compile ms (best of 3) |", "|---|---:|"]
        md += [f"| {m} | " + (f"{compile_ms[m]:.0f}" if m in compile_ms else "-") + " |" for m in models]
        if stable:
            md += ["", "## Step entries (streaming, per-step latency)", "",
                   "One call of the `step` entry (state in, state out) at the state after steps 0..5 "
                   "of a sequence, next to torch's `step` on the same state; seq/T = the whole-sequence "
                   "entry (`episode` / `classify`) divided by its length T.", "",
                   "| " + " | ".join(stable_h) + " |",
                   "|" + "|".join("---" if not r else "---:" for r in sright) + "|"]
            md += ["| " + " | ".join(r) + " |" for r in stable]
        if ctable:
            md += ["", "## Largest convolution of each conv model", "",
                   "| " + " | ".join(h.replace("|", "\\|") for h in ctable_h) + " |",
                   "|" + "|".join("---" if not r else "---:" for r in cright) + "|"]
            md += ["| " + " | ".join(r) + " |" for r in ctable]
        if copy_bw is not None:
            md += ["", f"Copy bandwidth (STREAM-like, 64 MiB memcpy, read + write): {copy_bw:.1f} GB/s."]
        md += ["", "## Targets", ""]
        if ARGS.torch_only:
            md += ["Not evaluated (--torch-only)."]
        elif missed_txt:
            md += [f"**{len(missed_txt)} target(s) missed:**", ""] + [f"- {t}" for t in missed_txt]
        else:
            md += ["All targets met."]
        if profiles:
            md += ["", "## Profiles of the worst miss of each model", "",
                   f"`perf record -F 2000` of a process calling the nnc entry in a loop for "
                   f"{ARGS.profile_seconds:g} s (nnc side only, threads {ARGS.threads}); "
                   "`perf report --no-children --sort dso,sym`, entries above 1.5 %. Kernel symbols "
                   "are `<entry>.k<N>.<kind>`; the IR ops of the hottest ones follow, from "
                   "`nnc dump --stage=fused` of the same model."]
            for (model, entry, batch), prof, hot in profiles:
                md += ["", f"### {model}.{entry}, batch {batch_label(model, batch)}", "", "```"] + prof + ["```"]
                if hot:
                    md += ["", "```"] + hot + ["```"]
        if profile_note:
            md += ["", f"No profile: {profile_note}."]
        if failures:
            md += ["", "## Failures", ""] + [f"- {f}" for f in failures]
        if mismatches:
            md += ["", "## Outputs that disagree beyond 1e-4 + 1e-3·max|torch|", ""] + [f"- {m}" for m in mismatches]
        with open(ARGS.markdown, "w") as f:
            f.write("\n".join(md) + "\n")
        print(f"wrote {ARGS.markdown}")

    for m in mismatches:
        print(f"warning: outputs disagree: {m}", file=sys.stderr)
    if failures:
        print(f"{len(failures)} failure(s)", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
