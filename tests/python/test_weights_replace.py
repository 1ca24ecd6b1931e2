"""nnc.load with weights that replace embedded ones, weights without num_batches_tracked, and
damaged libraries (issue 16, items 1, 5, 11):
  - nnc.load(X.so, weights=W) on a library with other weights embedded computes bit for bit
    what a library with W embedded computes, derived parameters included (BatchNorm folded,
    Winograd weights, LSTM, Linear);
  - a BatchNorm's num_batches_tracked may be absent from the weights file;
  - a truncated library, a model table with a bad count and a flipped bit in the embedded
    weights raise nnc.Error naming the file, instead of killing the process."""
import ctypes
import os
import shutil
import struct
import unittest

import numpy as np

import nnc
from support import GOLDEN, ROOT, TempDirCase, compile_so, write_model

MODEL = """\
conv = Conv2d(8, 16, 3, padding=1)
bn = BatchNorm2d(16)
mlp = Sequential(Linear(2, 64), ReLU(), Linear(64, 2))
lstm = LSTM(4, 8, batch_first=true)
wg = Conv2d(16, 16, 3, padding=1)
export forward(x: f32[N, 8, 12, 12], v: f32[N, 2], s: f32[N, 5, 4], u: f32[N, 16, 16, 16]) -> (y: f32[N, 16, 12, 12], m: f32[N, 2], h: f32[N, 5, 8], g: f32[N, 16, 16, 16]) {
  y = relu(bn(conv(x)))
  m = mlp(v)
  h, state = lstm(s)
  g = wg(u)
}
"""

SHAPES = {"conv.weight": (16, 8, 3, 3), "conv.bias": (16,), "bn.weight": (16,), "bn.bias": (16,),
          "bn.running_mean": (16,), "bn.running_var": (16,), "mlp.0.weight": (64, 2),
          "mlp.0.bias": (64,), "mlp.2.weight": (2, 64), "mlp.2.bias": (2,),
          "lstm.weight_ih_l0": (32, 4), "lstm.weight_hh_l0": (32, 8), "lstm.bias_ih_l0": (32,),
          "lstm.bias_hh_l0": (32,), "wg.weight": (16, 16, 3, 3), "wg.bias": (16,)}


def weights(seed, nbt=True):
    rng = np.random.default_rng(seed)
    w = {k: rng.standard_normal(s).astype(np.float32) for k, s in SHAPES.items()}
    w["bn.running_var"] = np.abs(w["bn.running_var"]) + 0.5
    if nbt:
        w["bn.num_batches_tracked"] = np.int64(7)
    return w


def outputs(m, *args):
    r = m.forward(*args)
    return tuple(np.array(a) for a in (r if isinstance(r, tuple) else (r,)))


def file_offset(so, addr):
    """The offset in the file `so` (loaded in this process) of address `addr`."""
    real = os.path.realpath(so)
    with open("/proc/self/maps") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 6 and os.path.realpath(parts[5]) == real:
                lo, hi = (int(x, 16) for x in parts[0].split("-"))
                if lo <= addr < hi:
                    return addr - lo + int(parts[2], 16)
    raise AssertionError(f"{addr:#x} is not in a mapping of {so}")


class ReplaceTest(TempDirCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.nn = write_model(MODEL, cls.tmp, "rep")
        cls.w1 = nnc.save_safetensors(weights(1), os.path.join(cls.tmp, "w1.safetensors"))
        cls.w2 = nnc.save_safetensors(weights(2, nbt=False), os.path.join(cls.tmp, "w2.safetensors"))
        cls.emb1 = compile_so(cls.nn, cls.tmp, cls.w1, "emb1")
        cls.emb2 = compile_so(cls.nn, cls.tmp, cls.w2, "emb2")
        rng = np.random.default_rng(9)
        cls.args = (rng.standard_normal((3, 8, 12, 12)).astype(np.float32),
                    3 * rng.standard_normal((3, 2)).astype(np.float32),
                    rng.standard_normal((3, 5, 4)).astype(np.float32),
                    rng.standard_normal((3, 16, 16, 16)).astype(np.float32))

    def test_replaced_weights_equal_embedded(self):
        with nnc.load(self.emb2) as m:
            want = outputs(m, *self.args)
        self.assertFalse(np.array_equal(want[1][0], want[1][1]))  # not a constant row
        with nnc.load(self.emb1, weights=self.w2) as m:  # w2 has no num_batches_tracked
            got = outputs(m, *self.args)
        for a, b in zip(got, want):
            np.testing.assert_array_equal(a, b)
        with nnc.load(self.emb1) as m:
            self.assertFalse(np.array_equal(outputs(m, *self.args)[1], want[1]))

    def test_golden_models_replaced_by_their_own_weights(self):
        for name, entry in (("infogan", "discriminate"), ("lm_temperature", "logits")):
            g = os.path.join(GOLDEN, name)
            w = os.path.join(g, "weights.safetensors")
            if not os.path.isfile(w):
                continue
            so = compile_so(os.path.join(ROOT, "examples", name + ".nn"), self.tmp, w, name)
            ins = sorted(f for f in os.listdir(g) if f.startswith(entry + ".in."))
            args = [np.load(os.path.join(g, f)) for f in ins]
            with nnc.load(so) as m:
                want = getattr(m, entry)(*args)
            with nnc.load(so, weights=w) as m:
                got = getattr(m, entry)(*args)
            for a, b in zip(got if isinstance(got, tuple) else (got,),
                            want if isinstance(want, tuple) else (want,)):
                np.testing.assert_array_equal(a, b, err_msg=name)

    def damaged_copy(self, name):
        path = os.path.join(self.tmp, name)
        shutil.copyfile(self.emb1, path)
        return path

    def test_truncated_library(self):
        size = os.path.getsize(self.emb1)
        for name, n in (("cut.so", 4096), ("half.so", size // 2)):
            path = self.damaged_copy(name)
            with open(path, "r+b") as f:
                f.truncate(n)
            with self.assertRaises(nnc.Error) as e:
                nnc.load(path)
            self.assertIn(f"{path}: error: the library is truncated", str(e.exception))

    def table_offsets(self):
        lib = ctypes.CDLL(self.emb1, mode=ctypes.RTLD_LOCAL)
        lib.nnc_model_info.restype = ctypes.c_void_p
        addr = lib.nnc_model_info()
        d = ctypes.cast(addr, ctypes.POINTER(nnc._abi.NncModelDesc)).contents
        return (file_offset(self.emb1, addr), file_offset(self.emb1, d.embedded_weights),
                d.weights_size)

    def test_damaged_table(self):
        desc, _, _ = self.table_offsets()
        for field in ("n_entries", "n_params"):
            path = self.damaged_copy(field + ".so")
            with open(path, "r+b") as f:
                f.seek(desc + getattr(nnc._abi.NncModelDesc, field).offset)
                f.write(struct.pack("<i", 1000))
            with self.assertRaises(nnc.Error) as e:
                nnc.load(path)
            self.assertIn("the model table is damaged", str(e.exception))

    def test_flipped_weight_bit(self):
        _, blob, size = self.table_offsets()
        path = self.damaged_copy("flip.so")
        with open(path, "r+b") as f:
            f.seek(blob + size // 2)
            b = f.read(1)[0]
            f.seek(blob + size // 2)
            f.write(bytes([b ^ 1]))
        with self.assertRaises(nnc.Error) as e:
            nnc.load(path)
        self.assertIn("the embedded weights are damaged", str(e.exception))
        with nnc.load(path, weights=self.w1) as m:  # a weights file still replaces them
            with nnc.load(self.emb1) as ref:
                for a, b in zip(outputs(m, *self.args), outputs(ref, *self.args)):
                    np.testing.assert_array_equal(a, b)


if __name__ == "__main__":
    unittest.main()
