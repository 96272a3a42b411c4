"""Clean-up passes: constant folding, identity/dropout removal, dead-node removal."""

from __future__ import annotations

import onnx_ir as ir
import onnxscript.optimizer
from onnx_ir.passes.common import LiftConstantsToInitializersPass, RemoveUnusedNodesPass

from sparsec.naming import is_standard
from sparsec.passes.util import bypass, const_array

_FOLD_LIMIT = 1 << 26  # elements: static models fold whole shape subgraphs and weight transforms


def _fold_shape_constants(node: ir.Node) -> bool | None:
    # onnxscript keeps ConstantOfShape to save space; the runtime has no such op, so it must fold.
    return True if is_standard(node, "ConstantOfShape") else None


def fold_constants(model: ir.Model) -> ir.Model:
    """Evaluates every node whose inputs are constant (shape subgraphs too) and keeps the results as initializers."""
    onnxscript.optimizer.fold_constants_ir(
        model, onnx_shape_inference=True, input_size_limit=_FOLD_LIMIT, output_size_limit=_FOLD_LIMIT,
        should_fold=_fold_shape_constants,
    )
    LiftConstantsToInitializersPass(lift_all_constants=True, size_limit=0)(model)
    RemoveUnusedNodesPass()(model)
    return model


def remove_identities(model: ir.Model) -> ir.Model:
    """Removes Identity nodes and inference-mode Dropout (its mask output unused)."""
    for node in list(model.graph):
        if not is_standard(node):
            continue
        is_dropout = (
            node.op_type == "Dropout"
            and (len(node.outputs) < 2 or not node.outputs[1].uses())
            and not _training_mode(node)
        )
        if node.op_type == "Identity" or is_dropout:
            bypass(node, node.inputs[0])
    return model


def _training_mode(dropout: ir.Node) -> bool:
    """True unless training_mode is absent or a constant false (a run-time flag may turn training on)."""
    value = dropout.inputs[2] if len(dropout.inputs) > 2 else None
    if value is None:
        return False
    flag = const_array(value)
    return flag is None or bool(flag)


def remove_dead_nodes(model: ir.Model) -> ir.Model:
    """Removes nodes whose outputs reach no graph output, and unused initializers."""
    RemoveUnusedNodesPass()(model)
    return model
