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
    get = node.attributes.get_float
    b.emit("ActivationGrad", list(node.inputs), list(node.outputs),
           {"activation": node.attributes.get_int("activation"), "act_alpha": get("act_alpha"),
            "act_beta": get("act_beta")})


def conv_grad(b: Builder, node: ir.Node) -> None:
    b.emit(node.op_type, list(node.inputs), list(node.outputs), _ints(node, _CONV))


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
    "Loss": loss, "ActivationGrad": activation_grad, "ConvGradInput": conv_grad, "ConvGradWeight": conv_grad,
    "PoolGrad": pool_grad, "LayerNormGrad": layer_norm_grad, "GatherGrad": gather_grad, "SgdUpdate": update,
    "AdamwUpdate": update,
}
