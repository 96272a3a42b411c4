"""Lowering rules for losses (NegativeLogLikelihoodLoss, SoftmaxCrossEntropyLoss) and linear algebra (Det)."""

from __future__ import annotations

import onnx_ir as ir

from sparsec.contract.schema import LossReduction, SoftmaxMode
from sparsec.lower.builder import Builder, Unsupported, input_at, numpy_dtype, static_shape

REDUCTIONS = {"none": LossReduction.NONE, "sum": LossReduction.SUM, "mean": LossReduction.MEAN}


def _loss_attrs(node: ir.Node) -> dict:
    reduction = node.attributes.get_string("reduction", "mean")
    if reduction not in REDUCTIONS:
        raise Unsupported(f"reduction '{reduction}' is not one of none/sum/mean")
    ignore = node.attributes.get_int("ignore_index", None)
    return {"reduction": REDUCTIONS[reduction], "ignore_index": 0 if ignore is None else ignore,
            "has_ignore_index": ignore is not None}


def nll_loss(b: Builder, node: ir.Node) -> None:
    b.emit("NllLoss", [node.inputs[0], node.inputs[1], input_at(node, 2)], [node.outputs[0]], _loss_attrs(node))


def softmax_cross_entropy_loss(b: Builder, node: ir.Node) -> None:
    """A log-softmax over the class axis (the log_prob output when read) and the NllLoss of it."""
    scores = node.inputs[0]
    if len(static_shape(scores)) < 2:
        raise Unsupported("scores must be [N, C, d...]")
    log_prob = node.outputs[1] if len(node.outputs) > 1 and node.outputs[1] is not None else None
    target = log_prob if log_prob is not None else b.temp(static_shape(scores), numpy_dtype(scores), f"{b.label}/log_prob")
    b.emit("Softmax", [scores], [target], {"axis": 1, "mode": SoftmaxMode.LOG_SOFTMAX})
    b.emit("NllLoss", [target, node.inputs[1], input_at(node, 2)], [node.outputs[0]], _loss_attrs(node))


def det(b: Builder, node: ir.Node) -> None:
    m = static_shape(node.inputs[0])[-1]
    b.emit("Det", [node.inputs[0]], [node.outputs[0]], scratch_bytes=m * m * 8)


RULES = {"NegativeLogLikelihoodLoss": nll_loss, "SoftmaxCrossEntropyLoss": softmax_cross_entropy_loss, "Det": det}
