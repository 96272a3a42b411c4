"""Model summary for `sparsec inspect`: ops, shapes, parameters, MACs, and what sparsec can run."""

from __future__ import annotations

import math
from collections import Counter

import onnx_ir as ir

from sparsec.frontend import load_model
from sparsec.lower.lower import rule_for
from sparsec.naming import op_label
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
        trans_a = node.op_type.endswith("Gemm") and node.attributes.get_int("transA", 0)
        return math.prod(out) * (a[0] if trans_a else a[-1]) if a else 0
    return 0


def parameter_count(model: ir.Model) -> int:
    """Elements of all initializers."""
    return sum(int(const_array(v).size) for v in model.graph.initializers.values())


def mac_count(model: ir.Model) -> int:
    """Multiply-accumulates of one inference at the model's static shapes."""
    return sum(node_macs(n) for n in model.graph)


def summarize(model: ir.Model) -> dict:
    """Counts per op type, parameters, MACs, and the nodes sparsec has no rule for."""
    ops = op_counts(model)
    unsupported = Counter(op_label(n) for n in model.graph if rule_for(n) is None)
    return {
        "inputs": [(v.name, static_shape(v), str(v.dtype)) for v in model.graph.inputs],
        "outputs": [(v.name, static_shape(v), str(v.dtype)) for v in model.graph.outputs],
        "nodes": sum(ops.values()),
        "ops": dict(ops.most_common()),
        "params": parameter_count(model),
        "macs": mac_count(model),
        "unsupported": dict(unsupported),
        "opset": model.opset_imports.get("", None),
    }


def inspect_model(path, input_shapes=None, fixed_inputs=None) -> dict:
    """Loads (checker + shape inference) and summarises a model, after constant folding."""
    return summarize(fold_constants(load_model(path, input_shapes, fixed_inputs)))
