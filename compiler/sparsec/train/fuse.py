"""Training-only rewrites that run before constant folding, so that folding keeps trainable parameters by name."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from sparsec.naming import is_standard
from sparsec.passes.util import const_array, only_consumer
from sparsec.passes.util import static_shape as maybe_shape


def _constant(value: ir.Value | None) -> np.ndarray | None:
    """value's data if it is an initializer or a Constant node's output."""
    if value is None:
        return None
    data = const_array(value)
    producer = value.producer()
    if data is None and producer is not None and is_standard(producer, "Constant") and "value" in producer.attributes:
        data = producer.attributes["value"].as_tensor().numpy()
    return data


def _channel_parameter(value: ir.Value, channels: int, rank: int) -> ir.Value | None:
    """The [channels] initializer that value is, seen through Identity/Unsqueeze/Reshape as [channels, 1, ...]."""
    if maybe_shape(value) not in ((channels,) + (1,) * (rank - 2), (1, channels) + (1,) * (rank - 2)):
        return None
    while value.producer() is not None and is_standard(value.producer()) and \
            value.producer().op_type in ("Identity", "Unsqueeze", "Reshape"):
        value = value.producer().inputs[0]
    if value.is_initializer() and value.dtype == ir.DataType.FLOAT and maybe_shape(value) == (channels,):
        return value
    return None


def _other_input(node: ir.Node, value: ir.Value) -> ir.Value:
    """The input of a binary node that is not value."""
    return node.inputs[1] if node.inputs[0] is value else node.inputs[0]


def fuse_exported_group_norm(model: ir.Model) -> int:
    """torch's GroupNorm export (Reshape [N, G, -1], InstanceNormalization with scale 1 and bias 0, Reshape back,
    Mul by weight, Add bias) -> one GroupNormalization with the [C] weight and bias; returns the count."""
    graph, fused = model.graph, 0
    for norm in list(graph):
        if not is_standard(norm, "InstanceNormalization"):
            continue
        grouped, ones, zeros = norm.inputs[:3]
        split = grouped.producer()
        back = only_consumer(norm.outputs[0])
        scale_node = only_consumer(back.outputs[0]) if back is not None and is_standard(back, "Reshape") else None
        shift_node = (only_consumer(scale_node.outputs[0])
                      if scale_node is not None and is_standard(scale_node, "Mul") else None)
        if (split is None or not is_standard(split, "Reshape") or shift_node is None
                or not is_standard(shift_node, "Add")):
            continue
        x = split.inputs[0]
        shape, flat = maybe_shape(x), maybe_shape(grouped)
        one, zero = _constant(ones), _constant(zeros)
        if (shape is None or flat is None or len(shape) < 3 or len(flat) != 3 or flat[0] != shape[0]
                or shape[1] % flat[1]  # each group must be whole channels
                or maybe_shape(back.outputs[0]) != shape or one is None or zero is None
                or not (np.all(one == 1) and np.all(zero == 0))):
            continue
        weight = _channel_parameter(_other_input(scale_node, back.outputs[0]), shape[1], len(shape))
        bias = _channel_parameter(_other_input(shift_node, scale_node.outputs[0]), shape[1], len(shape))
        if weight is None or bias is None or maybe_shape(shift_node.outputs[0]) != shape:
            continue
        node = ir.node("GroupNormalization", [x, weight, bias],
                       {"num_groups": flat[1], "epsilon": norm.attributes.get_float("epsilon", 1e-5)},
                       name=f"{norm.name or 'GroupNormalization'}/fused")
        out, old = node.outputs[0], shift_node.outputs[0]
        out.name, old.name = old.name, f"{old.name}/unfused"
        out.shape, out.type = ir.Shape(shape), ir.TensorType(ir.DataType.FLOAT)
        graph.insert_before(shift_node, node)
        old.replace_all_uses_with(out, replace_graph_outputs=True)
        fused += 1
    return fused
