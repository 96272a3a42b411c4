"""Model summary for `sparsec inspect`: ops, shapes, parameters, MACs, and what sparsec can run."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import onnx_ir as ir

from sparsec.artifact.format import parse
from sparsec.contract.schema import KERNEL_BY_JOB, OP_BY_CODE, SparseFormat, Storage
from sparsec.lower.sparse_choice import LayerChoice, dense_because, expected_speedup, layer_choice
from sparsec.lower.sparse_pack import VALUE_PADDING
from sparsec.frontend import load_model
from sparsec.passes import fold_constants, op_counts
from sparsec.passes.util import const_array, static_shape


def node_macs(node: ir.Node) -> int:
    """Multiply-accumulates of Conv / Gemm / MatMul nodes (0 for others)."""
    out = static_shape(node.outputs[0]) if node.outputs else None
    if out is None:
        return 0
    if node.op_type in ("Conv", "FusedConv"):
        w = static_shape(node.inputs[1])
        return math.prod(out) * math.prod(w[1:]) if w else 0
    if node.op_type in ("Gemm", "FusedGemm", "MatMul", "FusedMatMul"):
        a = static_shape(node.inputs[0])
        gemm = node.op_type.endswith("Gemm")
        trans_a = node.attributes.get_int("transA" if gemm else "trans_a", 0)  # K is then A's first / 2nd-last axis
        return math.prod(out) * ((a[0] if gemm else a[-2]) if trans_a else a[-1]) if a else 0
    return 0


def parameter_count(model: ir.Model) -> int:
    """Elements of all initializers."""
    return sum(int(const_array(v).size) for v in model.graph.initializers.values())


def mac_count(model: ir.Model) -> int:
    """Multiply-accumulates of one inference at the model's static shapes."""
    return sum(node_macs(n) for n in model.graph)


def lowering_problems(model: ir.Model) -> list[tuple[str, str, str]]:
    """(node, op, reason) for every node compile would refuse: the compile passes and lowering themselves run."""
    from sparsec.errors import UnsupportedOpError
    from sparsec.lower import lower_model
    from sparsec.passes import CLEANUP, run_passes

    try:
        lower_model(run_passes(ir.serde.deserialize_model(ir.serde.serialize_model(model)), CLEANUP)[0])
    except UnsupportedOpError as e:
        return e.nodes
    return []


def summarize(model: ir.Model) -> dict:
    """Counts per op type, parameters, MACs, and the nodes compile would refuse (with reasons)."""
    ops = op_counts(model)
    problems = lowering_problems(model)
    return {
        "inputs": [(v.name, static_shape(v), str(v.dtype)) for v in model.graph.inputs],
        "outputs": [(v.name, static_shape(v), str(v.dtype)) for v in model.graph.outputs],
        "nodes": sum(ops.values()),
        "ops": dict(ops.most_common()),
        "params": parameter_count(model),
        "macs": mac_count(model),
        "unsupported": dict(Counter(op for _, op, _ in problems)),
        "problems": problems,
        "opset": model.opset_imports.get("", None),
    }


def inspect_model(path, input_shapes=None, fixed_inputs=None) -> dict:
    """Loads (checker + shape inference) and summarises a model, after constant folding."""
    return summarize(fold_constants(load_model(path, input_shapes, fixed_inputs)))


def inspect_artifact(path) -> dict:
    """Per runtime op of a .spx: the ONNX node it came from, algorithm, kernel variant on the artifact's target,
    shapes, weight and scratch bytes; and the totals (constants, parameters, arena, scratch)."""
    art = parse(open(path, "rb").read())
    rows = []
    for i, op in enumerate(art.ops):
        spec = OP_BY_CODE[op.opcode]
        first = art.tensors[op.inputs[0]] if op.inputs and op.inputs[0] is not None else None
        attrs = spec.unpack(op.iattr, op.fattr, len(first.shape) if first else 0)
        job = spec.kernel(attrs)
        inputs = [art.tensors[t] for t in op.inputs if t is not None]
        rows.append({
            "index": i, "node": op.name, "onnx_op": op.source_op, "runtime_op": spec.name,
            "algorithm": attrs.get("algorithm", attrs.get("layout", "")),
            "kernel": KERNEL_BY_JOB[job].variant(art.target) if job else "(plain C++ loop)",
            "inputs": [list(t.shape) for t in inputs],
            "outputs": [list(art.tensors[t].shape) for t in op.outputs],
            "dtypes": [t.dtype.name for t in inputs],
            "weight_bytes": sum(t.nbytes for t in inputs if t.storage != Storage.ARENA),
            "scratch_bytes": op.scratch_bytes,
        })
    return {
        "target": art.target, "format_version": art.version, "file_bytes": art.file_size,
        "ops": rows,
        "layers": artifact_layers(art),
        "constant_bytes": sum(t.nbytes for t in art.tensors if t.storage == Storage.CONST),
        "param_bytes": art.param_size,
        "arena_bytes": art.arena_size,
        "scratch_bytes": max((op.scratch_bytes for op in art.ops), default=0),
        "inputs": [(art.tensors[t].name, list(art.tensors[t].shape), art.tensors[t].dtype.name) for t in art.inputs],
        "outputs": [(art.tensors[t].name, list(art.tensors[t].shape), art.tensors[t].dtype.name) for t in art.outputs],
        "training": training_summary(path, art),
    }


def training_summary(path, art) -> dict | None:
    """For an artifact compiled with --train: the step's peak memory, saved activations, parameter/state bytes."""
    path = Path(path)
    sidecar, report = path.with_suffix(".train.json"), path.with_suffix(".report.json")
    if not sidecar.exists():
        return None
    meta = json.loads(sidecar.read_text())
    names = {p["name"] for p in meta["params"]}
    params = sum(t.nbytes for t in art.tensors if t.storage == Storage.PARAM and t.name in names)
    state = sum(t.nbytes for t in art.tensors if t.storage == Storage.PARAM and t.name not in names)
    compiled = json.loads(report.read_text()).get("training") or {} if report.exists() else {}
    return {
        "loss": meta["loss"], "optimizer": meta["optimizer"], "updated_parameters": len(names),
        "param_bytes": params, "optimizer_state_bytes": state,
        "saved_activation_bytes": compiled.get("saved_activation_bytes"),
        "peak_step_bytes": art.arena_size + max((op.scratch_bytes for op in art.ops), default=0) + art.param_size,
    }


def _spmm_choice(art, op) -> LayerChoice:
    values = art.tensors[op.inputs[1]]
    info = values.sparse
    rows, cols = info.dense_shape
    if info.format == SparseFormat.N_OF_M:
        fmt, stored = "2:4", 0.5
    else:
        fmt, stored = f"{info.block[0]}x1", (values.data.size - VALUE_PADDING - rows) / (rows * cols)
    return LayerChoice(True, fmt, info.nonzeros / (rows * cols), stored, expected_speedup(art.target, stored, fmt))


def _dense_choice(art, op, attrs: dict) -> LayerChoice:
    """The cost model's reason for a dense Conv / MatMul, from the weight in the artifact."""
    w = art.tensors[op.inputs[1]]
    out = art.tensors[op.outputs[0]].shape
    conv = OP_BY_CODE[op.opcode].name == "Conv"
    structural = ("weight is not constant" if w.storage != Storage.CONST
                  else "depthwise" if conv and str(attrs["algorithm"]).startswith("DEPTHWISE")
                  else f"grouped convolution (group {attrs['group']})" if conv and attrs["group"] != 1
                  else "weight is not a matrix (batched or 1-D)" if not conv and len(w.shape) != 2 else None)
    if structural:
        return dense_because(structural)
    w2 = w.data.reshape(w.shape[0], -1) if conv else w.data.T
    pixels = math.prod(out[2:]) if conv else math.prod(art.tensors[op.inputs[0]].shape[:-1])
    choice = layer_choice(w2, pixels, art.target)
    if choice.sparse:  # the lowering had a reason the artifact does not show
        choice.sparse, choice.reason = False, "left dense by the lowering (its compile report says why)"
    return choice


def artifact_layers(art) -> list[dict]:
    """Per Conv / Gemm / MatMul layer of a .spx: sparse (format, density, expected speed-up) or dense and why."""
    layers = []
    for i, op in enumerate(art.ops):
        spec = OP_BY_CODE[op.opcode]
        if op.source_op not in ("Conv", "Gemm", "MatMul") or spec.name not in ("Spmm", "Conv", "MatMul"):
            continue
        if spec.name == "Spmm":
            choice = _spmm_choice(art, op)
        else:
            first = art.tensors[op.inputs[0]]
            choice = _dense_choice(art, op, spec.unpack(op.iattr, op.fattr, len(first.shape)))
        layers.append({"index": i, "node": op.name, "onnx_op": op.source_op, **choice.to_dict()})
    return layers
