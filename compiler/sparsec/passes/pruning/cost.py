"""Model size and work: parameter count and multiply-accumulates of the dense compute ops."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from sparsec.passes.pruning.channels import static_shape


def parameter_count(model: ir.Model) -> int:
    """Elements of the floating-point initializers (int64 shape constants are not parameters)."""
    return sum(int(np.prod(v.shape)) for v in model.graph.initializers.values()
               if v.const_value is not None and v.const_value.dtype.is_floating_point())


def _macs(node: ir.Node) -> int:
    y = static_shape(node.outputs[0])
    if y is None or node.op_type not in ("Conv", "Gemm", "MatMul"):
        return 0
    if node.op_type == "Conv":
        w = static_shape(node.inputs[1])
        return int(np.prod(y)) * int(np.prod(w[1:])) if w else 0
    a = static_shape(node.inputs[0])
    if a is None:
        return 0
    transposed = node.op_type == "Gemm" and node.attributes.get("transA") is not None and node.attributes["transA"].value
    depth = a[0] if transposed else a[-1]
    return int(np.prod(y)) * depth


def mac_count(model: ir.Model) -> int:
    """Multiply-accumulates of Conv, Gemm and MatMul for one inference at the model's static shapes."""
    return sum(_macs(node) for node in model.graph)
