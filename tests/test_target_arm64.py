"""The arm64 target: cross-built runtime files, sparsec-run under qemu-aarch64 vs onnxruntime, hostile artifacts."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import sparsec
import zoo
from conftest import raw_outputs_error, run_onnxruntime, single_op_model, write_raw_inputs
from kernel_build import build_kernel_test
from sparsec.cli import main
from sparsec.targets import find_toolchain

TOLERANCE = 1e-4  # max|sparsec - onnxruntime| / max|onnxruntime|
SHIPPED = {"model.spx", "model.report.json", "libsparsec_rt.a", "sparsec-run", "sparsec_rt.h"}
RUNNER_SIZE_GOAL = 300 * 1024  # static, stripped sparsec-run built by zig (musl, libc++)


def qemu() -> str:
    """qemu-aarch64 is required (CI installs qemu-user): a missing emulator fails the tests."""
    path = shutil.which("qemu-aarch64")
    assert path, "qemu-aarch64 not found: apt-get install qemu-user"
    return path


def run_on_arm64(runner: Path, *args) -> subprocess.CompletedProcess:
    return subprocess.run([qemu(), str(runner), *map(str, args)], capture_output=True, text=True, timeout=600)


def assert_clean_failure(result: subprocess.CompletedProcess, message: str) -> None:
    """Exit code 1 with the runtime's message: never a signal (negative code) or a crash."""
    assert result.returncode == 1, (result.returncode, result.stderr)
    assert "sparsec-run: error:" in result.stderr and message in result.stderr, result.stderr


@pytest.fixture(scope="module")
def relu_build(tmp_path_factory) -> Path:
    """A tiny arm64 build through the CLI, as a user runs it."""
    model = single_op_model("Relu", [("x", [2, 3])])
    directory = tmp_path_factory.mktemp("arm64")
    (directory / "model.onnx").write_bytes(model.SerializeToString())
    assert main(["compile", str(directory / "model.onnx"), "--target", "arm64", "-o", str(directory / "out"), "-q"]) == 0
    return directory / "out"


def test_compile_ships_runtime_files(relu_build):
    assert {p.name for p in relu_build.iterdir()} == SHIPPED
    report = json.loads((relu_build / "model.report.json").read_text())
    assert report["target"] == "arm64"
    assert report["runtime_files_bytes"] == {
        name: (relu_build / name).stat().st_size for name in ("libsparsec_rt.a", "sparsec-run", "sparsec_rt.h")}
    assert (relu_build / "sparsec-run").read_bytes()[:4] == b"\x7fELF"
    assert os.access(relu_build / "sparsec-run", os.X_OK)  # copied with its executable bit


def test_runner_size_goal(relu_build):
    if not find_toolchain("arm64").name.startswith("zig"):
        pytest.skip("the size goal is for the zig (musl) build; Debian's cross g++ links glibc")
    size = (relu_build / "sparsec-run").stat().st_size
    print(f"sparsec-run: {size:,} bytes")
    assert size <= RUNNER_SIZE_GOAL


def test_runner_info_and_run(relu_build, tmp_path):
    info = run_on_arm64(relu_build / "sparsec-run", relu_build / "model.spx", "--info")
    assert info.returncode == 0, info.stderr
    assert "target arm64" in info.stdout and "input  x: float32 [2, 3] 24 bytes" in info.stdout
    x = np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3)
    x.tofile(tmp_path / "x.bin")
    result = run_on_arm64(relu_build / "sparsec-run", relu_build / "model.spx", "--input", tmp_path / "x.bin",
                          "--output", tmp_path / "y.bin", "--repeat", "3")
    assert result.returncode == 0, result.stderr
    np.testing.assert_array_equal(np.fromfile(tmp_path / "y.bin", np.float32).reshape(2, 3), np.maximum(x, 0))


def test_runner_rejects_bad_arguments(relu_build, tmp_path):
    runner, artifact = relu_build / "sparsec-run", relu_build / "model.spx"
    assert_clean_failure(run_on_arm64(runner, artifact), "takes 1 input(s), got 0")
    (tmp_path / "short.bin").write_bytes(b"\0" * 5)
    assert_clean_failure(run_on_arm64(runner, artifact, "--input", tmp_path / "short.bin"), "takes 24 bytes, got 5")
    assert_clean_failure(run_on_arm64(runner, tmp_path / "absent.spx", "--info"), "cannot open")
    assert_clean_failure(run_on_arm64(runner, artifact, "--repeat", "0"), "--repeat")


@pytest.mark.parametrize("damage", ["truncated", "bit_flipped", "empty"])
def test_corrupted_artifact_is_an_error(relu_build, tmp_path, damage):
    data = bytearray((relu_build / "model.spx").read_bytes())
    if damage == "truncated":
        data = data[: len(data) // 2]
    elif damage == "bit_flipped":
        data[len(data) // 2] ^= 0x10
    else:
        data = bytearray()
    (tmp_path / "bad.spx").write_bytes(bytes(data))
    assert_clean_failure(run_on_arm64(relu_build / "sparsec-run", tmp_path / "bad.spx", "--info"), "bad.spx: ")


def test_x86_64_artifact_is_refused(relu_build, tmp_path):
    artifact = sparsec.compile(single_op_model("Relu", [("x", [2, 3])]), target="x86_64", output=tmp_path / "x.spx").path
    assert_clean_failure(run_on_arm64(relu_build / "sparsec-run", artifact, "--info"),
                         "artifact was built for target x86_64, this runtime is arm64")


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2", "bert_encoder"])
def test_zoo_model_on_arm64_matches_onnxruntime(name, tmp_path):
    pytest.importorskip("torchvision")
    path = zoo.cached(name)
    result = sparsec.compile(path, target="arm64", output=tmp_path)
    feed = zoo.example_inputs(name)
    ref = run_onnxruntime(path, feed)
    outputs = [tmp_path / f"output{i}.bin" for i in range(len(ref))]
    args = [a for p in write_raw_inputs(feed, tmp_path) for a in ("--input", p)]
    args += [a for p in outputs for a in ("--output", p)]
    run = run_on_arm64(tmp_path / "sparsec-run", result.path, *args)
    assert run.returncode == 0, run.stderr
    error = raw_outputs_error(outputs, ref)
    print(f"{name} on arm64 (qemu): max relative error {error:.2e}")
    assert error < TOLERANCE


def test_kernels_match_reference_on_arm64(tmp_path):
    result = run_on_arm64(build_kernel_test("arm64", tmp_path / "build"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert " 0 failed" in result.stdout
    assert "kernel isa: neon" in result.stdout  # the dispatch picked this target's variants


def test_missing_toolchain_says_how_to_install(tmp_path, monkeypatch):
    import sparsec.targets

    monkeypatch.setattr(sparsec.targets, "_zig_binary", lambda: None)
    monkeypatch.setattr(sparsec.targets.shutil, "which", lambda name: None)
    with pytest.raises(sparsec.ToolchainError, match="pip install ziglang"):
        sparsec.compile(single_op_model("Relu", [("x", [2, 3])]), target="arm64", output=tmp_path / "out")
    assert not (tmp_path / "out").exists()  # a failed compile writes nothing


def test_runtime_is_built_once(relu_build):
    from sparsec.targets import runtime_dir

    first = runtime_dir("arm64")
    stamp = (first / "sparsec-run").stat().st_mtime_ns
    assert runtime_dir("arm64") == first and (first / "sparsec-run").stat().st_mtime_ns == stamp
