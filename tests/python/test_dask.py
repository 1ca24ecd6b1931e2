"""nnc.dask on a real distributed.LocalCluster: 2 worker processes of 1 thread each, on the
loopback interface only.  Scoring 120,000 rows (blocks of 16,000 and a last one of 8,000) with
the realnvp example gives outputs bit-identical to one in-process call; an entry with several
inputs (split differently, one i64, two not split) and several outputs; a DataFrame; a block
that does not fit the entry raises nnc's message on the client; each worker gets the library
written once and opens it once (nnc.dask.worker_stats through client.run).  Then the
example of docs/python.md ("Many machines"), and Dask's local threaded scheduler with no
cluster.  Skipped where Dask is not installed
(apt-get install python3-dask python3-distributed; scripts/setup.sh installs them)."""
import logging
import os
import subprocess
import sys
import unittest

import numpy as np

import nnc
from support import GOLDEN, ROOT, TempDirCase, compile_so, write_model

try:
    import dask
    import dask.array as da
    import distributed
    import nnc.dask
    DASK_MISSING = None
except ImportError as e:
    DASK_MISSING = (f"Dask is not installed ({e}): apt-get install python3-dask "
                    f"python3-distributed")
try:
    import dask.dataframe as dd
    import pandas as pd
    PANDAS_MISSING = None
except ImportError as e:
    PANDAS_MISSING = f"pandas is not installed ({e}): apt-get install python3-pandas"

ROWS, BLOCK = 120_000, 16_000
START_TIMEOUT = 240  # seconds for the cluster to start on a slow, loaded machine

MULTI = """
export score(x: f32[N, 3], w: f32[N, 3], b: f32[3], t: f32[], k: i64[N]) -> (y: f32[N, 3], s: f32[N]) {
  y = x * w + b
  s = sum(y, axis=1) * t + k
}
"""


def realnvp_so(tmp):
    return compile_so(os.path.join(ROOT, "examples", "realnvp.nn"), tmp,
                      os.path.join(GOLDEN, "realnvp", "weights.safetensors"))


def rows(n, width, seed=0):
    return np.random.default_rng(seed).standard_normal((n, width)).astype(np.float32)


def same_bits(tc, got, want, what):
    tc.assertEqual(got.shape, want.shape, f"{what}: shape")
    tc.assertEqual(got.dtype, want.dtype, f"{what}: dtype")
    tc.assertTrue(got.tobytes() == want.tobytes(), f"{what}: not bit-identical "
                  f"(max |diff| {np.max(np.abs(got.astype(np.float64) - want)):.3g})")


@unittest.skipIf(DASK_MISSING, DASK_MISSING)
class ClusterTest(TempDirCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.so = realnvp_so(cls.tmp)
        cls.multi_so = compile_so(write_model(MULTI, cls.tmp, "multi"), cls.tmp)
        cls._config = dask.config.set({"distributed.comm.timeouts.connect": f"{START_TIMEOUT}s",
                                       "distributed.comm.timeouts.tcp": f"{START_TIMEOUT}s"})
        cls._config.__enter__()
        cls.cluster = cls.client = None
        try:
            cls.cluster = distributed.LocalCluster(
                n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                dashboard_address=None, local_directory=cls.tmp, silence_logs=logging.ERROR)
            cls.client = distributed.Client(cls.cluster, timeout=START_TIMEOUT)
            cls.client.wait_for_workers(2, timeout=START_TIMEOUT)
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            if cls.client is not None:
                cls.client.close(timeout=60)
        finally:
            try:
                if cls.cluster is not None:
                    cls.cluster.close(timeout=60)
            finally:
                cls._config.__exit__(None, None, None)
                super().tearDownClass()

    def test_realnvp_bit_identical_to_one_call(self):
        x = rows(ROWS, 2)
        forward = nnc.dask.entry(self.so, "forward")
        z, logdet = forward(da.from_array(x, chunks=(BLOCK, 2)))
        self.assertEqual(z.chunks, ((BLOCK,) * (ROWS // BLOCK) + (ROWS % BLOCK,), (2,)))
        self.assertEqual((z.dtype, logdet.dtype, logdet.shape), (np.float32, np.float32, (len(x),)))
        with nnc.load(self.so, threads=1) as m:
            want = m.forward(x)
            lp = nnc.dask.entry(m, "log_prob")(x)  # a loaded Model, a NumPy input
            got = dask.compute(z, logdet, lp)
            same_bits(self, got[0], want.z, "z")
            same_bits(self, got[1], want.logdet, "logdet")
            same_bits(self, got[2], m.log_prob(x), "log_prob")

    def test_library_written_and_opened_once_per_worker(self):
        forward = nnc.dask.entry(self.so, "forward")
        nblocks = 0
        for seed, block in ((1, BLOCK // 4), (2, BLOCK // 3)):  # two graphs: no key in common
            x = da.from_array(rows(ROWS, 2, seed=seed), chunks=(block, 2))
            forward(x).logdet.sum().compute()
            nblocks += x.numblocks[0]
        stats = self.client.run(nnc.dask.worker_stats)
        self.assertEqual(len(stats), 2)
        digest = forward._lib.digest
        blocks = 0
        for worker, s in stats.items():
            s = s[digest]
            self.assertEqual(s["written"], 1, f"{worker}: {s}")
            self.assertLessEqual(s["opens"], 1, f"{worker}: {s}")
            self.assertEqual(s["opens"], int(s["blocks"] > 0), f"{worker}: {s}")
            self.assertEqual(s["threads"], 1 if s["opens"] else None, f"{worker}: {s}")
            self.assertTrue(s["path"] is None or s["path"].startswith(self.tmp), s["path"])
            blocks += s["blocks"]
        self.assertGreaterEqual(blocks, nblocks)  # and the earlier tests' blocks

    def test_several_inputs_and_outputs(self):
        n = 50_001
        x, w = rows(n, 3, seed=2), rows(n, 3, seed=3)
        b, k = np.array([0.5, -1, 2], np.float32), np.arange(n) % 7
        score = nnc.dask.entry(self.multi_so, "score")
        out = score(da.from_array(x, chunks=(10_000, 3)), da.from_array(w, chunks=(7_000, 3)),
                    b, t=1.5, k=da.from_array(k, chunks=3_000))
        self.assertEqual(out.y.chunks[0], (10_000,) * 5 + (1,))
        self.assertEqual(out.s.chunks, ((10_000,) * 5 + (1,),))
        with nnc.load(self.multi_so) as m:
            want = m.score(x, w, b, 1.5, k)
        y, s = dask.compute(*out)
        same_bits(self, y, want.y, "y")
        same_bits(self, s, want.s, "s")

    @unittest.skipIf(PANDAS_MISSING, PANDAS_MISSING)
    def test_dataframe(self):
        x = rows(30_000, 2, seed=4)
        frame = pd.DataFrame({"a": x[:, 0].astype(np.float64), "b": x[:, 1], "id": np.arange(len(x))})
        df = dd.from_pandas(frame, npartitions=5)
        out = nnc.dask.entry(self.so, "forward").dataframe(df, columns=["a", "b"])
        self.assertEqual(list(out.columns), ["z_0", "z_1", "logdet"])
        self.assertEqual(list(out.dtypes), [np.float32] * 3)
        got = out.compute()
        with nnc.load(self.so) as m:
            want = m.forward(x)
        self.assertTrue((got.index == frame.index).all())
        same_bits(self, got[["z_0", "z_1"]].to_numpy(), want.z, "z")
        same_bits(self, got["logdet"].to_numpy(), want.logdet, "logdet")
        with self.assertRaisesRegex(ValueError, r"input x: f32\[N, 2\] takes 2 columns, got 3"):
            nnc.dask.entry(self.so, "forward").dataframe(df)

    def test_block_that_does_not_fit_raises_on_client(self):
        forward = nnc.dask.entry(self.so, "forward")
        want = r"forward\(\): argument 'x' has shape \(100, 3\), expected \(100, 2\) \(x: f32\[N, 2\]\)"
        # Dask believes the block has 2 columns: only the worker finds out
        lying = da.from_delayed(dask.delayed(np.zeros)((100, 3), np.float32), shape=(100, 2),
                                dtype=np.float32)
        with self.assertRaisesRegex(ValueError, want):
            forward(lying).z.compute()
        # a width known here fails when the arrays are made, with the same message
        with self.assertRaisesRegex(ValueError, want):
            forward(da.zeros((1000, 3), dtype=np.float32, chunks=100))
        with self.assertRaisesRegex(TypeError, "must be float32"):
            forward(da.zeros((1000, 2), chunks=100))


@unittest.skipIf(DASK_MISSING, DASK_MISSING)
class DocsExampleTest(TempDirCase):
    def test_many_machines_example(self):
        """docs/python.md's "Many machines" example, run verbatim next to a realnvp.so."""
        with open(os.path.join(ROOT, "docs", "python.md")) as f:
            text = f.read()
        section = text[text.index("## Many machines"):]
        code = section[section.index("```python\n") + 10:]
        code = code[:code.index("```")]
        realnvp_so(self.tmp)
        r = subprocess.run([sys.executable, "-c", code], cwd=self.tmp, capture_output=True,
                           text=True, timeout=3 * START_TIMEOUT)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("(100000, 100000) float32", r.stdout)
        self.assertRegex(r.stdout, r"'opens': 1, 'blocks': \d+, 'rows': \d+")


@unittest.skipIf(DASK_MISSING, DASK_MISSING)
class LocalSchedulerTest(TempDirCase):
    def test_threaded_scheduler_unknown_block_sizes(self):
        """No cluster: blocks open the library at its path; a filtered array (blocks of
        unknown size) still maps block by block."""
        so = realnvp_so(self.tmp)
        x = rows(20_000, 2, seed=5)
        xd = da.from_array(x, chunks=(3_000, 2))
        kept = xd[xd[:, 0] > 0]
        forward = nnc.dask.entry(so, "forward", client=None)
        self.assertIsNone(forward.client)
        z = forward(kept).z
        self.assertTrue(np.isnan(z.shape[0]))
        with nnc.load(so) as m:
            want = m.forward(x[x[:, 0] > 0]).z
        same_bits(self, z.compute(scheduler="threads"), want, "z")
        none = forward(xd[xd[:, 0] > 100]).logdet  # every block empty
        self.assertEqual(none.compute(scheduler="threads").shape, (0,))
        self.assertEqual(forward(xd[:0]).z.compute(scheduler="threads").shape, (0, 2))


    def test_errors_on_the_client(self):
        so = realnvp_so(self.tmp)
        with nnc.compile(os.path.join(ROOT, "examples", "realnvp.nn"),
                         weights=os.path.join(GOLDEN, "realnvp", "weights.safetensors")) as m:
            with self.assertRaisesRegex(ValueError, "has no file to ship"):
                nnc.dask.entry(m, "forward", client=None)
        fixed = compile_so(write_model("export f(x: f32[4]) -> (y: f32[4]) {\n  y = x * 2\n}\n",
                                       self.tmp, "fixed"), self.tmp)
        with self.assertRaisesRegex(ValueError, "no input has a symbolic first dim"):
            nnc.dask.entry(fixed, "f", client=None)
        with self.assertRaisesRegex(KeyError, "has no entry 'nope'"):
            nnc.dask.entry(so, "nope", client=None)
        with self.assertRaisesRegex(ValueError, "threads must be an integer"):
            nnc.dask.entry(so, "forward", threads=-1, client=None)
        if PANDAS_MISSING is None:
            df = dd.from_pandas(pd.DataFrame({"a": [1.0], "b": [2.0]}), npartitions=1)
            with self.assertRaisesRegex(KeyError, "no column 'c'"):
                nnc.dask.entry(so, "forward", client=None).dataframe(df, columns=["a", "c"])


if __name__ == "__main__":
    unittest.main()
