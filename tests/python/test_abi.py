"""The ctypes mirror (python/nnc/_abi.py) has the C compiler's layout of nnc_model.h and
nnc.h: every struct's size and every field's offset."""
import os
import shutil
import unittest

from nnc import _abi
from support import ROOT


class AbiTest(unittest.TestCase):
    def test_layout_matches_the_headers(self):
        cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
        if not cc:
            self.skipTest("no C compiler")
        self.assertEqual(_abi.check_layout(os.path.join(ROOT, "runtime", "include"), cc), [])

    def test_constants_match_the_headers(self):
        with open(os.path.join(ROOT, "runtime", "include", "nnc_model.h")) as f:
            h = f.read()
        for name in ("NNC_F32", "NNC_I64", "NNC_OK", "NNC_ERR_USER", "NNC_ERR_USAGE", "NNC_ERR_NOMEM"):
            self.assertRegex(h, rf"{name} = {getattr(_abi, name)}\b")
        self.assertIn(f"#define NNC_MODEL_ABI {_abi.NNC_MODEL_ABI}", h)
        with open(os.path.join(ROOT, "runtime", "include", "nnc.h")) as f:
            self.assertIn(f"#define NNC_MAX_RANK {_abi.NNC_MAX_RANK}", f.read())


if __name__ == "__main__":
    unittest.main()
