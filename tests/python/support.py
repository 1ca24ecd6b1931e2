"""Shared helpers of the Python package tests (tests/python/test_*.py), run by ctest
(cmake/python.cmake) as `python3 -m unittest tests/python/test_X.py` with
    PYTHONPATH   the source tree's python/ (the package under test)
    NNC_EXE      the nnc compiler of the build under test
    NNC_LIBRARY  that build's libnnc.so
Set NNC_TEST_NO_TORCH=1 to run as on a machine without PyTorch."""
import os
import subprocess
import tempfile
import unittest

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GOLDEN = os.path.join(ROOT, "tests", "golden")
NNC = os.environ.get("NNC_EXE") or os.path.join(ROOT, "build", "nnc")
ABS_TOL, REL_TOL = 1e-5, 1e-4  # as tests/unit/test_golden.c


def torch_or_none():
    """The torch module, or None when it is missing (or NNC_TEST_NO_TORCH=1)."""
    if os.environ.get("NNC_TEST_NO_TORCH") == "1":
        return None
    try:
        import torch
        return torch
    except ImportError:
        return None


def torch_modules(seed, cases, build):
    """{case: build(torch, params)} for {case: params}, after torch.manual_seed(seed), and their
    state_dicts as one weights dict, each tensor under its case's name (CASE.KEY)."""
    torch = torch_or_none()
    torch.manual_seed(seed)
    mods, state = {}, {}
    for case, params in cases.items():
        mods[case] = build(torch, params)
        state.update({f"{case}.{key}": v.detach().numpy() for key, v in mods[case].state_dict().items()})
    return mods, state


def perturb_batchnorm(torch, bn):
    """Running statistics and affine parameters of a BatchNorm away from 0 and 1, so that
    folding it into the convolution before it is exercised."""
    with torch.no_grad():
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
        bn.weight.uniform_(0.5, 2)
        bn.bias.uniform_(-1, 1)


def needs_torch(test):
    return unittest.skipIf(torch_or_none() is None, "PyTorch is not installed")(test)


def nnc_cli(*args):
    """Run the nnc command; returns its CompletedProcess (raises with its stderr on failure)."""
    r = subprocess.run([NNC, *args], capture_output=True, text=True)
    if r.returncode != 0:
        raise AssertionError(f"nnc {' '.join(args)} failed (exit {r.returncode}):\n{r.stderr}")
    return r


def compile_so(nn, out_dir, weights=None, name=None, defines=()):
    """`nnc NN -o OUT_DIR/NAME.so [--weights W] [-D NAME=VALUE ...]`; returns the .so path."""
    so = os.path.join(out_dir, (name or os.path.splitext(os.path.basename(nn))[0]) + ".so")
    nnc_cli(nn, "-o", so, *(["--weights", weights] if weights else []), *[a for d in defines for a in ("-D", d)])
    return so


def write_model(text, out_dir, name="model"):
    path = os.path.join(out_dir, name + ".nn")
    with open(path, "w") as f:
        f.write(text)
    return path


def assert_same_everywhere(tc, models, call, want, what):
    """call(m) of every model in {kind: model} at 1, 2 and 3 threads is close to want (a tuple
    of arrays; assert_close) and the same bits as the first."""
    first = None
    for kind, m in models.items():
        for threads in (1, 2, 3):
            m.threads = threads
            got = call(m)
            got = got if isinstance(got, tuple) else (got,)
            for i, (g, w) in enumerate(zip(got, want)):
                assert_close(tc, g, w, f"{what}, {kind}, {threads} threads, output {i}")
            if first is None:
                first = got
            for i, (g, f) in enumerate(zip(got, first)):
                np.testing.assert_array_equal(g, f, f"{what}, {kind}, {threads} threads, output {i}: not the same bits")


def assert_close(tc, got, want, what):
    """|got - want| <= ABS_TOL + REL_TOL |want| elementwise (NaN matches NaN, an infinity itself),
    same shape."""
    got, want = np.asarray(got), np.asarray(want)
    tc.assertEqual(got.shape, want.shape, f"{what}: shape")
    tc.assertEqual(got.dtype, want.dtype, f"{what}: dtype")
    g, w = got.astype(np.float64), want.astype(np.float64)
    with np.errstate(invalid="ignore"):  # inf - inf: equal infinities match exactly
        bad = ~((g == w) | (np.abs(g - w) <= ABS_TOL + REL_TOL * np.abs(w)) | (np.isnan(g) & np.isnan(w)))
    if bad.any():
        i = np.unravel_index(np.argmax(bad), bad.shape) if bad.ndim else ()
        tc.fail(f"{what}: {int(bad.sum())} of {bad.size} elements differ; first at {i}: "
                f"got {g[i]!r}, expected {w[i]!r}")


class TempDirCase(unittest.TestCase):
    """A test case with a temporary directory self.tmp for its whole class."""

    @classmethod
    def setUpClass(cls):
        cls._tmp = tempfile.TemporaryDirectory(prefix="nnc-py-")
        cls.tmp = cls._tmp.name

    @classmethod
    def tearDownClass(cls):
        cls._tmp.cleanup()


class TorchvisionCase(TempDirCase):
    """A test of torchvision's models: skipped without torchvision; self.torch seeded with 0."""

    def setUp(self):
        try:
            import torchvision  # noqa: F401
        except ImportError:
            self.skipTest("torchvision is not installed")
        self.torch = torch_or_none()
        self.torch.manual_seed(0)
