"""Shared test helpers: compile with sparsec, run with sparsec and onnxruntime, compare."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import sparsec


def max_rel_error(actual: np.ndarray, expected: np.ndarray) -> float:
    """max|actual - expected| / max|expected| (the issue's relative error)."""
    scale = max(float(np.max(np.abs(expected))), 1e-12) if expected.size else 1.0
    return float(np.max(np.abs(actual.astype(np.float64) - expected))) / scale if expected.size else 0.0


def run_onnxruntime(model, feed: dict) -> list[np.ndarray]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    data = model.SerializeToString() if isinstance(model, onnx.ModelProto) else open(model, "rb").read()
    session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    return session.run(None, feed)


def write_raw_inputs(feed: dict, directory) -> list:
    """Each input as <name>.bin (raw little-endian bytes, the format sparsec-run and sparsec.js read)."""
    paths = []
    for name, value in feed.items():
        paths.append(Path(directory) / f"{name}.bin")
        value.tofile(paths[-1])
    return paths


def raw_outputs_error(paths, reference: list[np.ndarray]) -> float:
    """Worst relative error of raw output files against onnxruntime's outputs (same order)."""
    ours = [np.fromfile(path, r.dtype).reshape(r.shape) for path, r in zip(paths, reference)]
    return max(max_rel_error(a, r) for a, r in zip(ours, reference))


def target_outputs_error(model, feed: dict, reference: list[np.ndarray], target: str,
                         tmp_path) -> tuple[float, dict]:
    """Compiles model for arm64 (sparsec-run under qemu) or wasm32 (Node), runs it on feed; returns the worst
    relative error of its outputs against reference (0.0: bit-identical) and the compile report."""
    result = sparsec.compile(model, target=target, output=tmp_path)
    inputs = write_raw_inputs(feed, tmp_path)
    if target == "arm64":
        from test_target_arm64 import run_on_arm64

        outputs = [tmp_path / f"output{i}.bin" for i in range(len(reference))]
        run = run_on_arm64(tmp_path / "sparsec-run", result.path, *[a for p in inputs for a in ("--input", p)],
                           *[a for p in outputs for a in ("--output", p)])
    else:
        from test_target_wasm32 import run_in_node

        outputs = [tmp_path / f"{i}.bin" for i in range(len(reference))]
        run = run_in_node(tmp_path, result.path, tmp_path, inputs)
    assert run.returncode == 0, run.stderr
    return raw_outputs_error(outputs, reference), result.report


def compile_and_compare(model, feed: dict, tmp_path, **options) -> float:
    """Compiles model, runs both engines, returns the worst relative error over outputs."""
    result = sparsec.compile(model, output=tmp_path / "model.spx", **options)
    ours = sparsec.load(result.path).run(None, feed)
    ref = run_onnxruntime(model, feed)
    assert len(ours) == len(ref)
    for a, r in zip(ours, ref):
        assert a.shape == r.shape and a.dtype == r.dtype
    return max(max_rel_error(a, r) for a, r in zip(ours, ref))


def single_op_model(op_type: str, inputs: list[tuple[str, list[int]]], output_shape=None, initializers=(),
                    attrs=None, opset: int = 17, dtypes=None, outputs=None) -> onnx.ModelProto:
    """A one-node model: float inputs by name/shape, constant initializers, one (or more) outputs."""
    dtypes = dtypes or {}
    graph_inputs = [helper.make_tensor_value_info(n, dtypes.get(n, TensorProto.FLOAT), s) for n, s in inputs]
    inits = [onnx.numpy_helper.from_array(a, n) for n, a in initializers]
    input_names = [n for n, _ in inputs] + [n for n, _ in initializers]
    out_names = outputs or ["y"]
    node = helper.make_node(op_type, input_names, out_names, name=f"{op_type}_0", **(attrs or {}))
    graph_outputs = [helper.make_tensor_value_info(n, dtypes.get(n, TensorProto.FLOAT), output_shape) for n in out_names]
    graph = helper.make_graph([node], "g", graph_inputs, graph_outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    if output_shape is None:  # let ONNX fill in the outputs' types
        model = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    return model


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def prune_and_check(model, feed: dict, tmp_path, ratio: float = 0.5, **options):
    """Prunes model and checks the three things pruning promises; returns the report and both errors:
    (1) mask: the original with the removed units' weights zeroed (but for folded constant units), vs the
    shrunk model (onnxruntime);
    (2) sparsec runs the shrunk model like onnxruntime does; (3) params/MACs are what the report says."""
    import onnx_ir as ir

    from sparsec.inspect import mac_count, parameter_count
    from sparsec.passes.pruning.shrink import mask
    from sparsec.pruner import prepare

    pruned, report = sparsec.prune(model, ratio, **options)
    # Units whose constant value was folded into their readers are exactly the original's: not zeroed.
    zeroed = {k: np.setdiff1d(v, report.folded.get(k, [])) for k, v in report.removed.items()}
    masked = ir.serde.serialize_model(mask(prepare(model), zeroed))
    mask_error = max(max_rel_error(a, r) for a, r in zip(run_onnxruntime(pruned, feed), run_onnxruntime(masked, feed)))
    sparsec_error = compile_and_compare(pruned, feed, tmp_path)
    shrunk = prepare(pruned)
    assert (parameter_count(shrunk), mac_count(shrunk)) == (report.params_after, report.macs_after)
    assert report.params_after <= report.params_before and report.macs_after <= report.macs_before
    return report, mask_error, sparsec_error
