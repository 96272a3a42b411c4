"""The wasm32 target: sparsec_rt.wasm + sparsec.js run in Node and match onnxruntime; errors are exceptions."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from onnx import TensorProto

import sparsec
import zoo
from conftest import raw_outputs_error, run_onnxruntime, single_op_model, write_raw_inputs
from kernel_build import build_kernel_test

TOLERANCE = 1e-4  # max|sparsec - onnxruntime| / max|onnxruntime|
WASM_SIZE_GOAL = 150 * 1024
DRIVER = Path(__file__).parent / "wasm" / "run_model.mjs"
WASI_RUNNER = Path(__file__).parent / "wasm" / "run_wasi.mjs"


def node() -> str:
    path = shutil.which("node")
    assert path, "node not found: apt-get install nodejs (Node >= 20)"
    return path


def run_in_node(build: Path, artifact: Path, out_dir: Path, input_files) -> subprocess.CompletedProcess:
    command = [node(), str(DRIVER), str(build / "sparsec.js"), str(artifact), str(out_dir), *map(str, input_files)]
    return subprocess.run(command, capture_output=True, text=True, timeout=600)


def test_kernels_match_reference_on_wasm32(tmp_path):
    """The kernel test program built for wasm32 + SIMD128, run in Node's WASI."""
    program = build_kernel_test("wasm32", tmp_path / "build")
    result = subprocess.run([node(), "--no-warnings", str(WASI_RUNNER), str(program)], capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert " 0 failed" in result.stdout
    assert "kernel isa: wasmsimd" in result.stdout  # the dispatch picked this target's variants


def test_compile_ships_wasm_and_js(tmp_path):
    result = sparsec.compile(single_op_model("Relu", [("x", [2, 3])]), target="wasm32", output=tmp_path / "model.spx")
    assert {p.name for p in tmp_path.iterdir()} == {"model.spx", "model.report.json", "sparsec_rt.wasm", "sparsec.js"}
    sizes = result.report["runtime_files_bytes"]
    print(f"sparsec_rt.wasm: {sizes['sparsec_rt.wasm']:,} bytes")
    assert sizes["sparsec_rt.wasm"] == (tmp_path / "sparsec_rt.wasm").stat().st_size
    assert (tmp_path / "sparsec_rt.wasm").read_bytes()[:4] == b"\0asm"


def test_wasm_size_goal(tmp_path):
    """The goal holds for a model of the core ops (CNNs, MLPs); each optional op family a model uses adds its code."""
    result = sparsec.compile(single_op_model("Relu", [("x", [2, 3])]), target="wasm32", output=tmp_path / "model.spx")
    assert result.report["runtime_op_families"] == ["core"]
    assert result.report["runtime_files_bytes"]["sparsec_rt.wasm"] <= WASM_SIZE_GOAL


def test_runtime_built_without_a_family_refuses_its_ops(tmp_path):
    core = sparsec.compile(single_op_model("Relu", [("x", [2, 3])]), target="wasm32", output=tmp_path / "core")
    model = single_op_model("Less", [("a", [2, 3]), ("b", [2, 3])], output_shape=[2, 3], dtypes={"y": TensorProto.BOOL})
    index = sparsec.compile(model, target="wasm32", output=tmp_path / "index")
    assert index.report["runtime_op_families"] == ["core", "index"]
    assert (index.report["runtime_files_bytes"]["sparsec_rt.wasm"]
            > core.report["runtime_files_bytes"]["sparsec_rt.wasm"])
    refused = run_in_node(tmp_path / "core", index.path, tmp_path, [])
    assert refused.returncode == 1 and "op Compare is not in this runtime build" in refused.stderr, refused.stderr


def test_errors_are_messages(tmp_path):
    sparsec.compile(single_op_model("Relu", [("x", [2, 3])]), target="wasm32", output=tmp_path / "model.spx")
    data = bytearray((tmp_path / "model.spx").read_bytes())
    data[len(data) // 2] ^= 0x10
    (tmp_path / "bad.spx").write_bytes(bytes(data))
    bad = run_in_node(tmp_path, tmp_path / "bad.spx", tmp_path, [])
    assert bad.returncode == 1 and bad.stderr.startswith("sparsec: "), bad.stderr
    host = sparsec.compile(single_op_model("Relu", [("x", [2, 3])]), target="x86_64", output=tmp_path / "host.spx")
    refused = run_in_node(tmp_path, host.path, tmp_path, [])
    assert refused.returncode == 1 and "built for target x86_64, this runtime is wasm32" in refused.stderr
    (tmp_path / "short.bin").write_bytes(b"\0" * 8)
    short = run_in_node(tmp_path, tmp_path / "model.spx", tmp_path, [tmp_path / "short.bin"])
    assert short.returncode == 1 and "takes 24 bytes, got 8" in short.stderr


@pytest.mark.parametrize("name", ["mobilenet_v2", "resnet18", "bert_encoder"])
def test_zoo_model_in_node_matches_onnxruntime(name, tmp_path):
    pytest.importorskip("torchvision")
    path = zoo.cached(name)
    result = sparsec.compile(path, target="wasm32", output=tmp_path)
    feed = zoo.example_inputs(name)
    run = run_in_node(tmp_path, result.path, tmp_path, write_raw_inputs(feed, tmp_path))
    assert run.returncode == 0, run.stderr
    described = json.loads(run.stdout)
    assert [i["name"] for i in described["inputs"]] == list(feed)
    ref = run_onnxruntime(path, feed)
    error = raw_outputs_error([tmp_path / f"{i}.bin" for i in range(len(ref))], ref)
    print(f"{name} in Node (wasm32): max relative error {error:.2e}")
    assert error < TOLERANCE


FEED_CHECKS = """
import { readFile } from "node:fs/promises";
import { pathToFileURL } from "node:url";
const [sparsecJs, model] = process.argv.slice(1);
const { load } = await import(pathToFileURL(sparsecJs).href);
const session = await load(await readFile(model));
const x = new Float32Array(6);
const feeds = [{ a: x }, { a: x, b: x, extra: x }, { a: x, c: x }, { a: x, b: new Int32Array(6) }, [x, x], null];
console.log(JSON.stringify(feeds.map((feed) => {
  try { session.run(feed); return "no error"; } catch (error) { return error.message; }
})));
"""


def test_feed_names_are_checked_like_python(tmp_path):
    model = single_op_model("Add", [("a", [2, 3]), ("b", [2, 3])])
    sparsec.compile(model, target="wasm32", output=tmp_path / "model.spx")
    result = subprocess.run([node(), "--input-type=module", "-e", FEED_CHECKS, str(tmp_path / "sparsec.js"),
                             str(tmp_path / "model.spx")], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    missing, extra, wrong, dtype, array, null = json.loads(result.stdout)
    assert missing == "sparsec: inputs do not match the artifact: unknown [], missing [\"b\"]; expected [\"a\",\"b\"]"
    assert "unknown [\"extra\"], missing []" in extra
    assert "unknown [\"c\"], missing [\"b\"]" in wrong
    assert dtype == "sparsec: input 'b' needs a Float32Array (float32 [2,3]), got Int32Array"
    assert "must be an object {input name: TypedArray}, got an array" in array
    assert "got null" in null
