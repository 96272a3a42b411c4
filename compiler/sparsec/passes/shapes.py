"""Shape passes: what ONNX shape inference leaves unknown but the graph still determines."""

from __future__ import annotations

import onnx_ir as ir

from sparsec.naming import is_standard

# Ops whose first output has the shape of their first input (element-wise on one tensor).
SHAPE_PRESERVING = {
    "Abs", "Acos", "Acosh", "Asin", "Asinh", "Atan", "Atanh", "Cast", "CastLike", "Ceil", "Celu", "Cos", "Cosh", "Elu",
    "Erf", "Exp", "Floor", "Gelu", "HardSigmoid", "HardSwish", "Identity", "LeakyRelu", "Log", "Mish", "Neg",
    "Reciprocal", "Relu", "Round", "Selu", "Shrink", "Sigmoid", "Sign", "Sin", "Sinh", "Softplus", "Softsign", "Sqrt",
    "Swish", "Tan", "Tanh", "ThresholdedRelu",
}


def _static(value: ir.Value | None) -> bool:
    return value is not None and value.shape is not None and all(isinstance(d, int) for d in value.shape.dims)


def shapes_from_consumers(model: ir.Model) -> ir.Model:
    """Gives a value of unknown shape the static shape of an element-wise op's output it feeds (e.g. a ReduceSum
    with run-time axes followed by Log into a graph output)."""
    for node in reversed(list(model.graph)):
        if not (is_standard(node) and node.op_type in SHAPE_PRESERVING and node.inputs and node.outputs):
            continue
        x, y = node.inputs[0], node.outputs[0]
        if x is not None and not _static(x) and _static(y):
            x.shape = ir.Shape(list(y.shape.dims))
    return model
