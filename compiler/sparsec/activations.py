"""Activation functions the kernels apply in place: ONNX node <-> runtime Activation (kind, a, b)."""

from __future__ import annotations

import math

import numpy as np
import onnx_ir as ir

from sparsec.contract.schema import Activation
from sparsec.naming import is_standard

FUSED_DOMAIN = "sparsec"


def _clip_bound(node: ir.Node, index: int, default: float) -> float | None:
    if len(node.inputs) <= index or node.inputs[index] is None:
        return default
    value = node.inputs[index].const_value
    return None if value is None else float(value.numpy())


def activation_of(node: ir.Node) -> tuple[Activation, float, float] | None:
    """(kind, a, b) if node is an element-wise activation of its first input, else None."""
    op = node.op_type
    if node.domain == FUSED_DOMAIN and op == "Activation":
        a, b = node.attributes.get_floats("activation_params", [0.0, 0.0])
        return Activation[node.attributes.get_string("activation")], a, b
    if not is_standard(node):
        return None
    get = node.attributes.get_float
    simple = {"Relu": Activation.RELU, "Sigmoid": Activation.SIGMOID, "Tanh": Activation.TANH,
              "HardSwish": Activation.HARD_SWISH, "Softplus": Activation.SOFTPLUS, "Softsign": Activation.SOFTSIGN,
              "Mish": Activation.MISH}
    if op in simple:
        return simple[op], 0.0, 0.0
    if op == "Selu":
        return Activation.SELU, get("alpha", 1.67326319217681884765625), get("gamma", 1.05070102214813232421875)
    if op == "Shrink":
        return Activation.SHRINK, get("lambd", 0.5), get("bias", 0.0)
    one_param = {"Celu": Activation.CELU, "ThresholdedRelu": Activation.THRESHOLDED_RELU, "Swish": Activation.SWISH}
    if op in one_param:
        return one_param[op], get("alpha", 1.0), 0.0
    if op == "Clip":
        low, high = _clip_bound(node, 1, -math.inf), _clip_bound(node, 2, math.inf)
        return None if low is None or high is None else (Activation.CLIP, low, high)
    if op == "HardSigmoid":
        return Activation.HARD_SIGMOID, get("alpha", 0.2), get("beta", 0.5)
    if op == "LeakyRelu":
        return Activation.LEAKY_RELU, get("alpha", 0.01), 0.0
    if op == "Elu":
        return Activation.ELU, get("alpha", 1.0), 0.0
    if op == "Gelu":
        tanh = node.attributes.get_string("approximate", "none") == "tanh"
        return (Activation.GELU_TANH if tanh else Activation.GELU), 0.0, 0.0
    return None


def attach(node: ir.Node, act: tuple[Activation, float, float]) -> None:
    """Records act on a fused node as attributes activation / activation_params."""
    kind, a, b = act
    node.attributes["activation"] = ir.AttrString("activation", kind.name)
    node.attributes["activation_params"] = ir.AttrFloat32s("activation_params", [a, b])


def attached(node: ir.Node) -> tuple[Activation, float, float]:
    """The activation recorded on a fused node (NONE if it has none)."""
    name = node.attributes.get_string("activation", "NONE")
    a, b = node.attributes.get_floats("activation_params", [0.0, 0.0])
    return Activation[name], a, b


def _const(graph_nodes: list, value: float, name: str) -> ir.Value:
    node = ir.node("Constant", [], {"value": ir.tensor(np.array(value, dtype=np.float32))}, name=name)
    graph_nodes.append(node)
    return node.outputs[0]


def standard_nodes(x: ir.Value, act: tuple[Activation, float, float], name: str) -> tuple[list[ir.Node], ir.Value]:
    """Standard-ONNX nodes computing act(x) (opset 17), for checking fused graphs with onnxruntime."""
    kind, a, b = act
    nodes: list[ir.Node] = []

    def add(op, inputs, attrs=None):
        nodes.append(ir.node(op, inputs, attrs, name=f"{name}/{op}_{len(nodes)}"))
        return nodes[-1].outputs[0]

    if kind == Activation.NONE:
        return nodes, x
    if kind == Activation.CLIP:
        y = add("Clip", [x, _const(nodes, a, f"{name}/min"), _const(nodes, b, f"{name}/max")])
    elif kind == Activation.HARD_SIGMOID:
        y = add("HardSigmoid", [x], {"alpha": a, "beta": b})
    elif kind in (Activation.LEAKY_RELU, Activation.ELU):
        y = add("LeakyRelu" if kind == Activation.LEAKY_RELU else "Elu", [x], {"alpha": a})
    elif kind == Activation.SILU:
        y = add("Mul", [x, add("Sigmoid", [x])])
    elif kind == Activation.SWISH:
        y = add("Mul", [x, add("Sigmoid", [add("Mul", [x, _const(nodes, a, f"{name}/alpha")])])])
    elif kind in (Activation.CELU, Activation.THRESHOLDED_RELU):
        y = add("Celu" if kind == Activation.CELU else "ThresholdedRelu", [x], {"alpha": a})
    elif kind == Activation.SELU:
        y = add("Selu", [x], {"alpha": a, "gamma": b})
    elif kind == Activation.SHRINK:
        y = add("Shrink", [x], {"lambd": a, "bias": b})
    elif kind == Activation.GELU:
        erf = add("Erf", [add("Mul", [x, _const(nodes, 1 / math.sqrt(2), f"{name}/k")])])
        y = add("Mul", [add("Mul", [x, _const(nodes, 0.5, f"{name}/half")]), add("Add", [erf, _const(nodes, 1.0, f"{name}/one")])])
    elif kind == Activation.GELU_TANH:
        cube = add("Mul", [add("Mul", [x, x]), x])
        inner = add("Add", [x, add("Mul", [cube, _const(nodes, 0.044715, f"{name}/c")])])
        t = add("Tanh", [add("Mul", [inner, _const(nodes, math.sqrt(2 / math.pi), f"{name}/k")])])
        y = add("Mul", [add("Mul", [x, _const(nodes, 0.5, f"{name}/half")]), add("Add", [t, _const(nodes, 1.0, f"{name}/one")])])
    else:
        op = {Activation.RELU: "Relu", Activation.SIGMOID: "Sigmoid", Activation.TANH: "Tanh",
              Activation.HARD_SWISH: "HardSwish", Activation.SOFTPLUS: "Softplus", Activation.SOFTSIGN: "Softsign",
              Activation.MISH: "Mish"}[kind]
        y = add(op, [x])
    return nodes, y


_ONNX_NAMES = {Activation.RELU: "Relu", Activation.CLIP: "Clip", Activation.HARD_SWISH: "HardSwish",
               Activation.HARD_SIGMOID: "HardSigmoid", Activation.SIGMOID: "Sigmoid", Activation.SILU: "Mul",
               Activation.GELU: "Gelu", Activation.GELU_TANH: "Gelu", Activation.TANH: "Tanh",
               Activation.LEAKY_RELU: "LeakyRelu", Activation.ELU: "Elu", Activation.SOFTPLUS: "Softplus",
               Activation.SELU: "Selu", Activation.CELU: "Celu", Activation.THRESHOLDED_RELU: "ThresholdedRelu",
               Activation.SHRINK: "Shrink", Activation.SOFTSIGN: "Softsign", Activation.MISH: "Mish",
               Activation.SWISH: "Swish"}


def source_op_type(node: ir.Node) -> str:
    """The ONNX op type the user wrote for a node (a fused node reports the op it was fused from)."""
    if node.domain != FUSED_DOMAIN:
        return node.op_type if is_standard(node) else f"{node.domain}.{node.op_type}"
    if node.op_type == "Activation":
        return _ONNX_NAMES.get(attached(node)[0], "Activation")
    return node.op_type.removeprefix("Fused")
