#!/usr/bin/python3
"""One convolution layer at a time, nnc against ONNX Runtime (issue 20, item 3: "profile against
ONNX Runtime's kernels on the same shapes"): the layers of the torchvision models that
bench/zoo_bench.py times whole, so that a row the zoo loses can be traced to its layer shapes.

Each row is Conv2d (no bias) + BatchNorm2d (statistics perturbed) + ReLU6, as torchvision's
Conv2dNormActivation builds it, random-initialised with a fixed seed, batch 1:
  - nnc: a one-layer .nn compiled by build/nnc into a .so (weights embedded), timed in this
    process through the Python package, its arguments bound once (under 1 µs of Python a call);
  - ORT: the same module exported by torch.onnx.export (opset 17), timed by
    /work/shared/ort-bench/ort_bench.c in a child process (C API, ORT_ENABLE_ALL, the row's
    threads), installed from npm into $TMPDIR/ort when missing (bench/ort_side.py).
Both are checked against PyTorch before timing.  Times are the fastest call of each side
(--seconds of calls), as GFLOP/s of the layer's 2·Cout·Cin/g·K²·OH·OW multiply-adds, and the ratio
ORT/nnc (above 1: nnc is faster).

    /usr/bin/python3 bench/conv_layers.py [--threads 1,2] [--only dw] [--markdown docs/benchmarks.md]
"""
import argparse
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path[:0] = [os.path.join(ROOT, "python"), HERE]
import ort_side  # noqa: E402

MARK_BEGIN = "<!-- conv_layers.py: begin (generated; edit bench/conv_layers.py) -->"
MARK_END = "<!-- conv_layers.py: end -->"

# (kind, cin, cout, size, kernel, stride, groups): from mobilenet_v2 (mv2), mobilenet_v3_small
# (mv3), efficientnet_b0 (eff), resnet18 (r18) and the ConvNeXt toy (cnx) at 224x224 (64x64)
LAYERS = [
    ("dw", 32, 32, 112, 3, 1, 32, "mv2 features.1"),
    ("dw", 96, 96, 112, 3, 2, 96, "mv2 features.2"),
    ("dw", 144, 144, 56, 3, 1, 144, "mv2 features.3"),
    ("dw", 144, 144, 56, 3, 2, 144, "mv2 features.4"),
    ("dw", 576, 576, 14, 3, 1, 576, "mv2 features.14"),
    ("dw", 960, 960, 7, 3, 1, 960, "mv2 features.15"),
    ("dw", 240, 240, 14, 5, 1, 240, "mv3 features.4"),
    ("dw", 672, 672, 14, 5, 1, 672, "eff features.5"),
    ("dw", 32, 32, 16, 7, 1, 32, "cnx stage 1"),
    ("1x1", 16, 96, 112, 1, 1, 1, "mv2 features.2"),
    ("1x1", 32, 16, 112, 1, 1, 1, "mv2 features.1"),
    ("1x1", 24, 144, 56, 1, 1, 1, "mv2 features.3"),
    ("1x1", 96, 24, 56, 1, 1, 1, "mv2 features.2"),
    ("1x1", 64, 384, 14, 1, 1, 1, "mv2 features.8"),
    ("1x1", 384, 64, 14, 1, 1, 1, "mv2 features.8"),
    ("1x1", 96, 576, 14, 1, 1, 1, "mv2 features.12"),
    ("1x1", 320, 1280, 7, 1, 1, 1, "mv2 features.18"),
    ("3x3", 64, 64, 56, 3, 1, 1, "r18 layer1"),
    ("3x3", 128, 128, 28, 3, 1, 1, "r18 layer2"),
    ("3x3", 256, 256, 14, 3, 1, 1, "r18 layer3"),
    ("3x3", 3, 32, 224, 3, 2, 1, "mv2 features.0"),
]


def parse_args(argv):
    p = argparse.ArgumentParser(description="nnc vs ONNX Runtime, one convolution layer at a time")
    p.add_argument("--threads", default="1", help="comma-separated thread counts (default 1)")
    p.add_argument("--only", help="comma-separated kinds: dw, 1x1, 3x3")
    p.add_argument("--seconds", type=float, default=1.0, help="seconds of calls per side and row")
    p.add_argument("--nnc", default=os.path.join(ROOT, "build", "nnc"))
    p.add_argument("--ort-dir", default=ort_side.default_dir(),
                   help="where ONNX Runtime is (or is installed) from npm (default: %(default)s)")
    p.add_argument("--markdown", metavar="FILE", help="write the table into FILE's conv_layers section")
    return p.parse_args(argv)


def out_size(size, k, s):
    return (size + 2 * ((k - 1) // 2) - k) // s + 1


def build_layer(torch, row, d, nnc_exe):
    """The torch module, the compiled .so and the exported .onnx of one row."""
    import nnc
    _, cin, cout, size, k, s, g, _ = row
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Conv2d(cin, cout, k, s, (k - 1) // 2, groups=g, bias=False),
                            torch.nn.BatchNorm2d(cout), torch.nn.ReLU6()).eval()
    with torch.no_grad():
        m[1].running_mean.uniform_(-1, 1)
        m[1].running_var.uniform_(0.5, 2)
    o = out_size(size, k, s)
    with open(os.path.join(d, "m.nn"), "w") as f:
        f.write(f"conv = Sequential(Conv2d({cin}, {cout}, {k}, stride={s}, padding={(k - 1) // 2}, groups={g}, "
                f"bias=false), BatchNorm2d({cout}), ReLU6())\n"
                f"export f(x: f32[N, {cin}, {size}, {size}]) -> (y: f32[N, {cout}, {o}, {o}]) {{ y = conv(x) }}\n")
    nnc.save_safetensors({"conv." + n: v for n, v in m.state_dict().items()}, os.path.join(d, "w.safetensors"))
    subprocess.run([nnc_exe, os.path.join(d, "m.nn"), "-o", os.path.join(d, "m.so"), "--weights",
                    os.path.join(d, "w.safetensors")], check=True)
    x = torch.randn(1, cin, size, size)
    with torch.enable_grad():
        torch.onnx.export(m, (x,), os.path.join(d, "m.onnx"), opset_version=17, input_names=["x"],
                          output_names=["y"])
    return m, x


def time_nnc(np, lib, x, threads, seconds):
    """nnc's fastest call (µs), its arguments bound once (Entry.bind): a call by keyword checks
    and converts them each time, 20-30 µs of Python that ORT's C timing does not pay."""
    import time
    lib.threads = threads
    call = lib.f.bind(x=x)
    call()
    best, end = float("inf"), time.time() + seconds
    while time.time() < end:
        t0 = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - t0)
    return best * 1e6


def time_ort(ort, d, threads, seconds):
    """ORT's fastest call (µs); its outputs are written to d (out_y.npy)."""
    j = ort_side.run(ort, os.path.join(d, "m.onnx"), {"x": os.path.join(d, "x.npy")}, threads, 20, seconds, out_dir=d)
    return j.get("min_us", j["median_us"])


def measure(args, row, threads, ort, tmp):
    import numpy as np
    import torch
    import nnc
    d = os.path.join(tmp, "_".join(str(v) for v in row[:7]))
    os.makedirs(d, exist_ok=True)
    m, x = build_layer(torch, row, d, args.nnc)
    with torch.no_grad():
        want = m(x).numpy()
    np.save(os.path.join(d, "x.npy"), x.numpy())
    lib = nnc.load(os.path.join(d, "m.so"))
    got = lib.f(x=x.numpy())
    tol = 1e-4 + 1e-3 * np.abs(want).max()
    if np.abs(got - want).max() > tol:
        raise RuntimeError(f"nnc differs from torch by {np.abs(got - want).max():.2e}")
    us = {t: (time_nnc(np, lib, x.numpy(), t, args.seconds), time_ort(ort, d, t, args.seconds)) for t in threads}
    ort_y = ort_side.outputs(d, ["y"])["y"]
    if np.abs(ort_y - want).max() > tol:
        raise RuntimeError(f"ORT differs from torch by {np.abs(ort_y - want).max():.2e}")
    return us


def table(rows, threads):
    head = ["layer", "from", "Cin→Cout", "map", "k", "s", "g"]
    for t in threads:
        head += [f"nnc µs ({t}t)", f"ORT µs ({t}t)", f"nnc GF/s ({t}t)", f"ORT/nnc ({t}t)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row, us in rows:
        kind, cin, cout, size, k, s, g, src = row
        o = out_size(size, k, s)
        flop = 2 * cout * (cin // g) * k * k * o * o
        cells = [kind, src, f"{cin}→{cout}", f"{size}×{size}", str(k), str(s), str(g)]
        for t in threads:
            n, r = us[t]
            cells += [f"{n:,.1f}", f"{r:,.1f}", f"{flop / n / 1e3:.1f}", f"{r / n:.2f}x"]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def load_note():
    la = os.getloadavg()
    return f"load average {la[0]:.1f}/{la[1]:.1f}/{la[2]:.1f} at the end, on {os.cpu_count()} CPUs"


def write_markdown(path, lines, threads):
    text = open(path).read() if os.path.exists(path) else ""
    cmd = "/usr/bin/python3 bench/conv_layers.py --threads " + ",".join(map(str, threads)) + f" --markdown {path}"
    section = "\n".join([MARK_BEGIN, "## One convolution layer at a time, against ONNX Runtime", "",
                         f"Command: `{cmd}` — {load_note()}. " + __doc__.split("\n\n")[1].replace("\n", " "),
                         ""] + lines + ["", MARK_END])
    if MARK_BEGIN in text and MARK_END in text:
        a, b = text.index(MARK_BEGIN), text.index(MARK_END) + len(MARK_END)
        text = text[:a] + section + text[b:]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    with open(path, "w") as f:
        f.write(text)


def main():
    args = parse_args(sys.argv[1:])
    threads = [int(t) for t in args.threads.split(",") if t]
    kinds = set(args.only.split(",")) if args.only else None
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        ort, why = ort_side.setup(args.ort_dir, tmp)
        if ort is None:
            sys.exit(f"conv_layers.py: {why}")
        for row in LAYERS:
            if kinds and row[0] not in kinds:
                continue
            rows.append((row, measure(args, row, threads, ort, tmp)))
            print(table(rows[-1:], threads)[-1], flush=True)
    lines = table(rows, threads)
    print("\n".join(lines))
    print(load_note())
    if args.markdown:
        write_markdown(args.markdown, lines, threads)


if __name__ == "__main__":
    main()
