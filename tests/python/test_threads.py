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
from support import GOLDEN, NNC, TempDirCase, assert_close, compile_so  # noqa: E402
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


if __name__ == "__main__":
    unittest.main()
