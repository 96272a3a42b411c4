"""Lowering rules for the training ops (domain sparsec.train) that sparsec.train.gradients appends."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from sparsec.lower.builder import Builder, static_shape

TRAIN_DOMAIN = "sparsec.train"
_CONV = ("group", "strides", "pads", "dilations")
_POOL = ("kind", "kernel", "strides", "pads", "dilations", "count_include_pad")
_OPTIMIZER_FLOATS = {"SgdUpdate": ("lr", "momentum", "weight_decay"),
                     "AdamwUpdate": ("lr", "beta1", "beta2", "eps", "weight_decay")}


def _ints(node: ir.Node, names) -> dict:
    attrs = node.attributes
    return {n: (attrs.get_ints(n) if isinstance(attrs[n].value, (list, tuple)) else attrs.get_int(n)) for n in names}


def loss(b: Builder, node: ir.Node) -> None:
    b.emit("Loss", list(node.inputs), list(node.outputs), {"kind": node.attributes.get_int("kind")})


def activation_grad(b: Builder, node: ir.Node) -> None:
    """ActivationGrad and ActivationMask: same attributes."""
    get = node.attributes.get_float
    b.emit(node.op_type, list(node.inputs), list(node.outputs),
           {"activation": node.attributes.get_int("activation"), "act_alpha": get("act_alpha"),
            "act_beta": get("act_beta")})


def conv_grad_scratch_bytes(op_type: str, x, dy, w, group: int, strides, pads) -> int:
    """Scratch of ConvGradInput/ConvGradWeight (runtime/src/ops_train.cpp): transposed weights, columns."""
    (_, c, h, width), (_, m, oh, ow), (kh, kw) = x, dy, w[2:]
    if group == c == m:  # depthwise: direct loops
        return 0
    pointwise = (kh, kw) == (1, 1) and list(strides) == [1, 1] and pads[:2] == [0, 0] and (h, width) == (oh, ow)
    rows = c // group * kh * kw
    if op_type == "ConvGradInput":
        return 4 * (rows * m + (0 if pointwise else rows * oh * ow))
    return 4 * (rows * oh * ow * (1 if pointwise else 2) + rows * m)


def conv_grad(b: Builder, node: ir.Node) -> None:
    attrs = _ints(node, _CONV)
    if node.op_type == "ConvGradInput":
        (dy, w), x = node.inputs, node.outputs[0]
    else:
        (x, dy), w = node.inputs, node.outputs[0]
    scratch = conv_grad_scratch_bytes(node.op_type, static_shape(x), static_shape(dy), static_shape(w),
                                      attrs["group"], attrs["strides"], list(attrs["pads"]))
    b.emit(node.op_type, list(node.inputs), list(node.outputs), attrs, scratch)


def pool_grad(b: Builder, node: ir.Node) -> None:
    b.emit("PoolGrad", list(node.inputs), list(node.outputs), _ints(node, _POOL))


def layer_norm_grad(b: Builder, node: ir.Node) -> None:
    b.emit("LayerNormGrad", list(node.inputs), list(node.outputs),
           {"axis": node.attributes.get_int("axis"), "epsilon": node.attributes.get_float("epsilon")})


def gather_grad(b: Builder, node: ir.Node) -> None:
    b.emit("GatherGrad", list(node.inputs), list(node.outputs))


def update(b: Builder, node: ir.Node) -> None:
    """In-place optimizer step: writes the parameter and its state (both in the param region)."""
    grad, indices, param = node.inputs
    floats = _OPTIMIZER_FLOATS[node.op_type]
    per_entry = 2 if node.op_type == "AdamwUpdate" else int(node.attributes.get_float("momentum") != 0)
    size = 1 + per_entry * int(np.prod(static_shape(grad)))
    state = b.param(np.zeros(size, np.float32), f"{param.name}/{node.op_type}_state")
    b.emit(node.op_type, [grad, indices], [param, state],
           {"axis": node.attributes.get_int("axis"), **{f: node.attributes.get_float(f) for f in floats}})


RULES = {
    "Loss": loss, "ActivationGrad": activation_grad, "ActivationMask": activation_grad, "ConvGradInput": conv_grad,
    "ConvGradWeight": conv_grad,
    "PoolGrad": pool_grad, "LayerNormGrad": layer_norm_grad, "GatherGrad": gather_grad, "SgdUpdate": update,
    "AdamwUpdate": update,
}
