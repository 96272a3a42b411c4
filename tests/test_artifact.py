"""The artifact format and loader: opcode agreement, memory plan, and corrupted files that never crash."""

from __future__ import annotations

import struct
import subprocess
import sys
import textwrap
import zlib

import numpy as np
import pytest

import sparsec
from conftest import single_op_model


def test_memory_plan_reuses_buffers(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    nodes = [helper.make_node("Relu" if i % 2 else "Sigmoid", [f"t{i}"], [f"t{i + 1}"]) for i in range(8)]
    graph = helper.make_graph(nodes, "chain", [helper.make_tensor_value_info("t0", TensorProto.FLOAT, [64, 64])],
                              [helper.make_tensor_value_info("t8", TensorProto.FLOAT, [64, 64])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    result = sparsec.compile(model, output=tmp_path / "chain.spx")
    report = result.report
    assert report["naive_activation_bytes"] == 9 * 64 * 64 * 4
    # the input, and one buffer the chain of in-place activations writes over (was: ping-pong between two)
    assert report["peak_activation_bytes"] == 2 * 64 * 64 * 4
    x = np.random.default_rng(0).standard_normal((64, 64)).astype(np.float32)
    y = x
    for i in range(8):
        y = np.maximum(y, 0) if i % 2 else 1 / (1 + np.exp(-y))
    np.testing.assert_allclose(sparsec.load(result.path).run(None, {"t0": x})[0], y, rtol=1e-6)


def _fix_checksum(data: bytearray) -> None:
    data[24:28] = struct.pack("<I", zlib.crc32(bytes(data[32:])))


def test_version_and_checksum_errors(tmp_path):
    art = sparsec.compile(single_op_model("Relu", [("x", [2, 2])]), output=tmp_path / "r.spx").path
    data = bytearray(art.read_bytes())
    flipped = bytearray(data)
    flipped[len(data) - 1] ^= 0x40
    with pytest.raises(sparsec.ArtifactError, match="checksum"):
        sparsec.load(bytes(flipped))
    newer = bytearray(data)
    newer[8:12] = struct.pack("<I", 99)
    _fix_checksum(newer)
    with pytest.raises(sparsec.ArtifactError, match="format version 99 is newer"):
        sparsec.load(bytes(newer))
    with pytest.raises(sparsec.ArtifactError, match="truncated"):
        sparsec.load(bytes(data[:-10]))
    with pytest.raises(sparsec.ArtifactError, match="not a sparsec artifact"):
        sparsec.load(b"ONNX" + bytes(data[4:]))


CORRUPTION_SCRIPT = textwrap.dedent("""
    import struct, sys, zlib
    import numpy as np
    import sparsec

    data = open(sys.argv[1], "rb").read()
    feed = {"x": np.ones((1, 3, 8, 8), np.float32)}
    rng = np.random.default_rng(int(sys.argv[2]))
    outcomes = {"rejected": 0, "ran": 0}
    for trial in range(int(sys.argv[3])):
        bad = bytearray(data)
        kind = trial % 3
        if kind == 0:  # truncation
            bad = bad[: rng.integers(0, len(bad))]
        else:  # bit flips; kind 2 re-seals the checksum so the validator itself is exercised
            meta_end = struct.unpack_from("<Q", bad, 32)[0] if kind == 2 else len(bad)
            for _ in range(rng.integers(1, 4)):
                pos = int(rng.integers(8, meta_end))
                bad[pos] ^= 1 << int(rng.integers(0, 8))
            if kind == 2:
                bad[24:28] = struct.pack("<I", zlib.crc32(bytes(bad[32:])))
        try:
            session = sparsec.load(bytes(bad))
        except sparsec.SparsecError:
            outcomes["rejected"] += 1
            continue
        try:
            session.run(None, {i.name: np.ones(i.shape, i.dtype) for i in session.get_inputs()})
        except sparsec.SparsecError:
            pass
        outcomes["ran"] += 1
    print(outcomes)
""")


def test_corrupted_artifacts_never_crash(tmp_path):
    """Hundreds of truncations and bit flips (with and without a valid checksum): errors, never a crash."""
    rng = np.random.default_rng(0)
    model = single_op_model("Conv", [("x", [1, 3, 8, 8])], None,
                            [("w", rng.standard_normal((4, 3, 3, 3)).astype(np.float32)),
                             ("b", rng.standard_normal(4).astype(np.float32))], {"pads": [1, 1, 1, 1], "strides": [2, 2]})
    art = sparsec.compile(model, output=tmp_path / "c.spx").path
    script = tmp_path / "corrupt.py"
    script.write_text(CORRUPTION_SCRIPT)
    proc = subprocess.run([sys.executable, str(script), str(art), "1", "1500"], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, f"runtime crashed (exit {proc.returncode}): {proc.stderr[-2000:]}"
    outcomes = eval(proc.stdout.strip().splitlines()[-1])
    assert outcomes["rejected"] >= 1000  # truncations and unsealed flips are always caught
