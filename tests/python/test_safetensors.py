"""nnc.save_safetensors / nnc.load_safetensors: the file layout (checked with the golden
scripts' independent reader, tests/golden/nnc_ref.py), dtype conversion to what nnc reads
(F32, I64), PyTorch state_dicts and modules, and the C loader accepting what it writes."""
import json
import os
import struct
import sys
import unittest

import numpy as np

import nnc
from support import GOLDEN, ROOT, TempDirCase, assert_close, needs_torch, torch_or_none

sys.path.insert(0, GOLDEN)
import nnc_ref  # noqa: E402  (the golden scripts' own reader and writer)


def header_of(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        return n, json.loads(f.read(n))


class SafetensorsTest(TempDirCase):
    def path(self, name):
        return os.path.join(self.tmp, name)

    def test_numpy_round_trip_and_layout(self):
        rng = np.random.default_rng(0)
        t = {"layers.0.weight": rng.standard_normal((3, 4)).astype(np.float32),
             "layers.0.bias": np.float64([1.5, -2]),            # stored as F32
             "steps": np.int32(7),                               # 0-d, stored as I64
             "mask": np.array([True, False]),                    # stored as I64
             "empty": np.zeros((0, 5), np.float32),
             "t": rng.standard_normal((4, 3)).astype(np.float32).T}  # not C-contiguous
        p = nnc.save_safetensors(t, self.path("a.safetensors"), metadata={"format": "pt"})
        self.assertEqual(p, self.path("a.safetensors"))
        n, h = header_of(p)
        self.assertEqual(n % 8, 0)
        self.assertEqual(h["__metadata__"], {"format": "pt"})
        self.assertEqual([k for k in h if k != "__metadata__"], list(t))
        self.assertEqual(h["layers.0.bias"]["dtype"], "F32")
        self.assertEqual(h["steps"], {"dtype": "I64", "shape": [], "data_offsets": [56, 64]})  # after 12 + 2 floats
        self.assertEqual(h["mask"]["dtype"], "I64")
        for reader in (nnc.load_safetensors, nnc_ref.load_safetensors):
            back = reader(p)
            self.assertEqual(list(back), list(t))
            for k, v in t.items():
                want = np.asarray(v).astype(np.float32 if np.asarray(v).dtype.kind == "f" else np.int64)
                self.assertEqual(back[k].dtype, want.dtype, k)
                np.testing.assert_array_equal(back[k], want, err_msg=k)

    def test_same_bytes_as_the_golden_writer(self):
        w = nnc_ref.load_safetensors(os.path.join(GOLDEN, "realnvp", "weights.safetensors"))
        nnc.save_safetensors(w, self.path("ours.safetensors"))
        nnc_ref.save_safetensors(self.path("ref.safetensors"), w)
        with open(self.path("ours.safetensors"), "rb") as a, open(self.path("ref.safetensors"), "rb") as b:
            self.assertEqual(a.read(), b.read())

    def test_the_c_loader_reads_it(self):
        w = nnc.load_safetensors(os.path.join(GOLDEN, "realnvp", "weights.safetensors"))
        w = {k: v.astype(np.float64) for k, v in reversed(list(w.items()))}  # other order, dtype
        p = nnc.save_safetensors(w, self.path("realnvp.safetensors"))
        with nnc.compile(os.path.join(ROOT, "examples", "realnvp.nn"), weights=p) as m:
            z, logdet = m.forward(np.load(os.path.join(GOLDEN, "realnvp", "forward.in.x.npy")))
        assert_close(self, z, np.load(os.path.join(GOLDEN, "realnvp", "forward.out.z.npy")), "z")
        assert_close(self, logdet, np.load(os.path.join(GOLDEN, "realnvp", "forward.out.logdet.npy")),
                     "logdet")

    def test_errors(self):
        with self.assertRaisesRegex(TypeError, "mapping"):
            nnc.save_safetensors([np.zeros(2)], self.path("x.safetensors"))
        with self.assertRaisesRegex(TypeError, "'c'.*complex"):
            nnc.save_safetensors({"c": np.zeros(2, np.complex64)}, self.path("x.safetensors"))
        with self.assertRaisesRegex(TypeError, "names"):
            nnc.save_safetensors({3: np.zeros(2)}, self.path("x.safetensors"))
        with self.assertRaisesRegex(ValueError, "reserved"):
            nnc.save_safetensors({"__metadata__": np.zeros(2)}, self.path("x.safetensors"))
        with open(self.path("short.safetensors"), "wb") as f:
            f.write(b"abc")
        with self.assertRaisesRegex(ValueError, "not a safetensors file"):
            nnc.load_safetensors(self.path("short.safetensors"))

    @needs_torch
    def test_torch_state_dict_and_module(self):
        torch = torch_or_none()
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8), torch.nn.ReLU(),
                                  torch.nn.Linear(8, 2).double())
        sd = net.state_dict()
        for src in (sd, net):
            p = nnc.save_safetensors(src, self.path("net.safetensors"))
            back = nnc.load_safetensors(p)
            self.assertEqual(list(back), list(sd))
            self.assertEqual(back["1.num_batches_tracked"].dtype, np.int64)
            self.assertEqual(back["3.weight"].dtype, np.float32)  # float64 parameters -> F32
            for k, v in sd.items():
                np.testing.assert_allclose(back[k], v.float().numpy() if v.is_floating_point()
                                           else v.numpy(), err_msg=k)
            net2 = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8),
                                       torch.nn.ReLU(), torch.nn.Linear(8, 2))
            net2.load_state_dict({k: torch.from_numpy(v) for k, v in back.items()})  # strict
        half = {"h": torch.ones(3, dtype=torch.bfloat16), "g": torch.ones(2, 2).t()}
        back = nnc.load_safetensors(nnc.save_safetensors(half, self.path("h.safetensors")))
        np.testing.assert_array_equal(back["h"], np.ones(3, np.float32))
        self.assertEqual(back["g"].shape, (2, 2))


if __name__ == "__main__":
    unittest.main()
