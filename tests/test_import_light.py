"""`import sparsec` and running an artifact must work on a device without onnx, onnx_ir, onnxscript or torch."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np

import sparsec
from conftest import single_op_model

BLOCKED = ("onnx", "onnx_ir", "onnxscript", "onnxruntime", "torch", "torchvision")

SCRIPT = textwrap.dedent(f"""
    import importlib.abc, sys
    BLOCKED = {BLOCKED!r}

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"{{name}} is blocked (not installed on the device)")

    sys.meta_path.insert(0, Block())
    import numpy as np
    import sparsec
    session = sparsec.load(sys.argv[1])
    y = session.run(None, {{"x": np.full((2, 3), -1.5, np.float32)}})[0]
    assert not any(m.split(".")[0] in BLOCKED for m in sys.modules), sorted(sys.modules)
    print(y.tolist())
""")


def test_load_and_run_without_compiler_dependencies(tmp_path):
    art = sparsec.compile(single_op_model("Abs", [("x", [2, 3])]), output=tmp_path / "abs.spx").path
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(art)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert np.array_equal(np.array(eval(proc.stdout)), np.full((2, 3), 1.5))
