"""Threads: every golden model (AOT .so and JIT) gives bit-identical outputs with 1, 2, 3 and 5
threads per call, and they match PyTorch.  NNC_PARALLEL_GRAIN=1 makes the runtime split every parallel
loop however small (the golden inputs are tiny), so the split code paths really run; 3 and 5
threads on a 2-core machine also split loops into uneven chunks."""
import os
import subprocess
import unittest

import numpy as np

os.environ["NNC_PARALLEL_GRAIN"] = "1"  # read when a context's pool is made

import nnc  # noqa: E402
from support import (GOLDEN, NNC, TempDirCase, assert_close, assert_same_everywhere, compile_so,  # noqa: E402
                     needs_torch, torch_or_none, write_model)
from test_golden import golden_calls, golden_models  # noqa: E402

THREADS = (1, 2, 3, 5)


def run_all(model, name):
    """{entry: {output: array}} over the entries with golden inputs."""
    out = {}
    for entry in model.entries.values():
        data = golden_calls(os.path.join(GOLDEN, name), entry)
        if data is not None:
            out[entry.name] = (entry.call(**data[0]), data[1])
    return out


class ThreadsTest(TempDirCase):
    def test_models_have_parallel_loops(self):
        """The lowering marks split loops (nnc dump --stage=loops shows them)."""
        for name, nn, _ in golden_models():
            if name in ("groupnorm", "fcn", "realnvp"):
                r = subprocess.run([NNC, "dump", "--stage=loops", nn], capture_output=True, text=True)
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertIn("parallel for", r.stdout, f"{name}: no loop runs split")

    def test_thread_counts_bit_identical(self):
        checked = 0
        for (name, nn, weights), way in [(g, w) for g in golden_models() for w in ("so", "jit")]:
            make = (lambda: nnc.load(compile_so(nn, self.tmp, weights, name))) if way == "so" else \
                (lambda: nnc.compile(nn, weights=weights))
            with self.subTest(model=name, way=way), make() as m:
                m.threads = 1
                self.assertEqual(m.threads, 1)
                ref = run_all(m, name)
                for k, (got, want) in ref.items():
                    for o, v in want.items():
                        assert_close(self, got[o], v, f"{name}.{k} output {o}")
                for t in THREADS[1:]:
                    m.threads = t
                    self.assertEqual(m.threads, t)
                    again = run_all(m, name)
                    for k, (got, _) in ref.items():
                        for o, v in got.items():
                            same = v.tobytes() == again[k][0][o].tobytes()
                            self.assertTrue(same, f"{name}.{k} output {o}: {t} threads differ from 1")
                            checked += 1
        self.assertGreater(checked, 0)
        print(f"\n{checked} outputs bit-identical across {THREADS} threads")

    def test_threads_argument_and_errors(self):
        name, nn, weights = golden_models()[0]
        so = compile_so(nn, self.tmp, weights, name)
        with nnc.load(so, threads=3) as m:
            self.assertEqual(m.threads, 3)
            m.threads = 0  # the default: $NNC_NUM_THREADS, else the CPUs
            self.assertEqual(m.threads, len(os.sched_getaffinity(0)))
            for bad in (-1, 1.5, "2", True):
                with self.assertRaises(ValueError):
                    m.threads = bad
        os.environ["NNC_NUM_THREADS"] = "3"
        try:
            with nnc.load(so) as m:
                self.assertEqual(m.threads, 3)
        finally:
            del os.environ["NNC_NUM_THREADS"]

    # a Winograd convolution with its bias, ReLU and a residual; a direct stride-2 one; a
    # depthwise one; a padded max pool: each a kernel whose split loop (images) holds loops
    # over the channels (the padded copy, Winograd's transforms, the epilogue)
    BLOCK = """
w = Conv2d(16, 16, 3, padding=1)
s2 = Conv2d(16, 32, 3, stride=2, padding=1, bias=false)
dw = Conv2d(32, 32, 3, padding=1, groups=32)
pool = MaxPool2d(3, stride=2, padding=1)
export f(x: f32[N, 16, H, W]) -> (a: f32[N, 16, H, W], b: f32[N, 32, (H + 1) / 2, (W + 1) / 2],
                                  c: f32[N, 32, (H + 3) / 4, (W + 3) / 4]) {
  a = relu(w(x)) + x
  b = relu(dw(s2(a)))
  c = pool(b)
}
"""

    @needs_torch
    def test_loops_inside_a_split_loop(self):
        """At batch 1 the split loop (over images) has one item; the loops over channels inside
        it run split themselves (`split for` in the dump).  Against PyTorch, same bits at 1, 2
        and 3 threads, at batch 1 and 3 (where they run whole inside each image's chunk), on
        symbolic and odd sizes."""
        torch = torch_or_none()
        torch.manual_seed(5)
        layers = {"w": torch.nn.Conv2d(16, 16, 3, padding=1), "s2": torch.nn.Conv2d(16, 32, 3, 2, 1, bias=False),
                  "dw": torch.nn.Conv2d(32, 32, 3, padding=1, groups=32)}
        weights = nnc.save_safetensors({f"{n}.{k}": v.detach().numpy() for n, c in layers.items()
                                        for k, v in c.state_dict().items()}, os.path.join(self.tmp, "w.safetensors"))
        path = write_model(self.BLOCK, self.tmp, "block")
        loops = subprocess.run([NNC, "dump", "--stage=loops", path], capture_output=True, text=True, check=True).stdout
        self.assertGreaterEqual(loops.count("split for"), 4, loops)
        models = {"jit": nnc.compile(path, weights=weights), "so": nnc.load(compile_so(path, self.tmp, weights))}
        for n, h, w in ((1, 28, 28), (1, 13, 31), (3, 9, 16), (1, 1, 1)):
            x = torch.randn(n, 16, h, w)
            with torch.no_grad():
                a = torch.relu(layers["w"](x)) + x
                b = torch.relu(layers["dw"](layers["s2"](a)))
                want = (a, b, torch.nn.functional.max_pool2d(b, 3, 2, 1))
            assert_same_everywhere(self, models, lambda m: m.f(x.numpy()), tuple(t.numpy() for t in want),
                                   f"batch {n} at {h}x{w}")


if __name__ == "__main__":
    unittest.main()
