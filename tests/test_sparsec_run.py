"""sparsec-run built natively (the CMake target the arm64 target cross-builds): raw files in/out, clean errors."""

from __future__ import annotations

import subprocess

import numpy as np
import onnx
import pytest

import sparsec
from conftest import single_op_model
from sparsec.targets import cmake_build


@pytest.fixture(scope="module")
def runner(tmp_path_factory):
    build = cmake_build("host", tmp_path_factory.mktemp("host-build"), ["sparsec-run"])
    return build / "sparsec-run"


def test_matches_python_session(runner, tmp_path, rng):
    model = single_op_model("Add", [("a", [2, 3]), ("b", [2, 3])], outputs=["sum"])
    artifact = sparsec.compile(model, output=tmp_path / "add.spx").path
    a, b = rng.standard_normal((2, 2, 3), dtype=np.float32)
    a.tofile(tmp_path / "a.bin")
    b.tofile(tmp_path / "b.bin")
    result = subprocess.run([runner, artifact, "--input", tmp_path / "a.bin", "--input", tmp_path / "b.bin",
                             "--output", tmp_path / "sum.bin"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    expected = sparsec.load(artifact).run(None, {"a": a, "b": b})[0]
    np.testing.assert_array_equal(np.fromfile(tmp_path / "sum.bin", np.float32).reshape(2, 3), expected)
    info = subprocess.run([runner, artifact, "--info"], capture_output=True, text=True)
    assert "input  b: float32 [2, 3] 24 bytes" in info.stdout and "output sum: float32 [2, 3]" in info.stdout


def test_errors_exit_1_with_message(runner, tmp_path):
    artifact = sparsec.compile(single_op_model("Relu", [("x", [2, 3])]), output=tmp_path / "r.spx").path
    (tmp_path / "cut.spx").write_bytes(artifact.read_bytes()[:100])
    for args, message in [([tmp_path / "cut.spx", "--info"], "cut.spx: "), ([artifact, "--bogus"], "unexpected argument"),
                          ([artifact, "--input", tmp_path / "absent.bin"], "cannot read")]:
        result = subprocess.run([runner, *args], capture_output=True, text=True)
        assert result.returncode == 1 and "sparsec-run: error:" in result.stderr and message in result.stderr, result
    assert subprocess.run([runner, "--help"], capture_output=True, text=True).stdout.startswith("usage: sparsec-run")


def test_arguments_cannot_ask_for_unbounded_work(runner, tmp_path):
    artifact = sparsec.compile(single_op_model("Relu", [("x", [2, 3])]), output=tmp_path / "r.spx").path
    np.zeros(6, np.float32).tofile(tmp_path / "x.bin")
    (tmp_path / "long.bin").write_bytes(b"\0" * 25)
    for args, message in [(["--repeat", "99999999999999999999"], "out of range: at most 1000000000"),
                          (["--repeat", "1000000001"], "out of range"), (["--repeat", "0x10"], "positive integer"),
                          (["--input", tmp_path / "long.bin"], "long.bin is longer than the 24 bytes input 'x' takes"),
                          (["--input", "/dev/zero"], "/dev/zero is longer than the 24 bytes input 'x' takes")]:
        if args[0] == "--repeat":
            args = ["--input", tmp_path / "x.bin", *args]
        result = subprocess.run([runner, artifact, *args], capture_output=True, text=True, timeout=20)
        assert result.returncode == 1 and message in result.stderr, result
    ok = subprocess.run([runner, artifact, "--input", tmp_path / "x.bin", "--repeat", "3"], capture_output=True, text=True)
    assert ok.returncode == 0 and "3 runs" in ok.stdout, ok


def test_repeated_runs_read_the_given_inputs(runner, tmp_path, rng):
    """The memory plan reuses an input's bytes after its last reader: each repeat must be fed the inputs again."""
    nodes = [onnx.helper.make_node("Neg", ["x"], ["a"]), onnx.helper.make_node("Exp", ["a"], ["b"]),
             onnx.helper.make_node("Neg", ["b"], ["y"])]
    x_info = onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [4, 8])
    graph = onnx.helper.make_graph(nodes, "chain", [x_info],
                                   [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [4, 8])])
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)])
    artifact = sparsec.compile(model, output=tmp_path / "chain.spx").path
    x = rng.standard_normal((4, 8), dtype=np.float32)
    x.tofile(tmp_path / "x.bin")
    expected = sparsec.load(artifact).run(None, {"x": x})[0]
    for repeat in ("1", "3"):
        result = subprocess.run([runner, artifact, "--input", tmp_path / "x.bin", "--output", tmp_path / "y.bin",
                                 "--repeat", repeat], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        np.testing.assert_array_equal(np.fromfile(tmp_path / "y.bin", np.float32).reshape(4, 8), expected)
