"""A removed channel whose producer weights are all zero is a constant (its bias after BN/activation);
where every reader is linear and unpadded, that constant is added to the readers' biases, so removing
the channel changes nothing."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from sparsec.passes.pruning.groups import Group
from sparsec.passes.util import add_initializer, const_array, static_shape


def _per_channel(value: ir.Value | None, channels: np.ndarray, axis: int, rank: int) -> np.ndarray | None:
    """A constant operand's values at `channels` if it varies along the channel axis only (else None)."""
    data = const_array(value)
    if data is None:
        return None
    if data.size == 1:
        return np.full(len(channels), data.item(), np.float64)
    shape = (1,) * (rank - data.ndim) + data.shape
    if [d for k, d in enumerate(shape) if k != axis and d != 1]:
        return None
    return data.reshape(-1)[channels].astype(np.float64) if shape[axis] > 1 else np.full(len(channels), data.item())


def _attr(node: ir.Node, name: str, default: float) -> float:
    return node.attributes[name].value if name in node.attributes else default


def _step(node: ir.Node, k: np.ndarray, channels: np.ndarray, axis: int, rank: int) -> np.ndarray | None:
    """The node applied to per-channel constants k, or None if it is not a per-channel elementwise op."""
    op = node.op_type
    if op == "BatchNormalization":
        scale, bias, mean, var = (const_array(v)[channels].astype(np.float64) for v in node.inputs[1:5])
        return scale * (k - mean) / np.sqrt(var + _attr(node, "epsilon", 1e-5)) + bias
    if op == "Relu":
        return np.maximum(k, 0)
    if op == "LeakyRelu":
        return np.where(k >= 0, k, _attr(node, "alpha", 0.01) * k)
    if op == "Clip":
        low, high = (const_array(node.inputs[i]) if len(node.inputs) > i else None for i in (1, 2))
        return np.clip(k, -np.inf if low is None else low, np.inf if high is None else high)
    if op == "Sigmoid":
        return 1 / (1 + np.exp(-k))
    if op == "Tanh":
        return np.tanh(k)
    if op == "HardSigmoid":
        return np.clip(_attr(node, "alpha", 0.2) * k + _attr(node, "beta", 0.5), 0, 1)
    if op == "HardSwish":
        return k * np.clip(k / 6 + 0.5, 0, 1)
    if op in ("Add", "Mul") and len(node.inputs) == 2:
        other = next((v for v in node.inputs if v is not None and v.const_value is not None), None)
        values = _per_channel(other, channels, axis, rank) if other is not None else None
        if values is None:
            return None
        return k + values if op == "Add" else k * values
    return None


def _readers(value: ir.Value) -> list[ir.Node] | None:
    """The nodes reading value if all can take a constant channel into their bias exactly (no padding)."""
    if value.is_graph_output():
        return None
    readers = [node for node, _ in value.uses()]
    for node in readers:
        if node.op_type not in ("Conv", "Gemm") or node.inputs[0] is not value or const_array(node.inputs[1]) is None:
            return None
        if node.op_type == "Conv":
            pads = _attr(node, "pads", None)
            if _attr(node, "group", 1) != 1 or (pads is not None and any(pads)) or "auto_pad" in node.attributes:
                return None
        elif node.op_type == "Gemm":
            bias = node.inputs[2] if len(node.inputs) > 2 else None
            if _attr(node, "transA", 0) or (bias is not None and (const_array(bias) is None or const_array(bias).ndim != 1)):
                return None
    return readers


def _bias_delta(reader: ir.Node, channels: np.ndarray, k: np.ndarray) -> np.ndarray:
    """What constant input channels k contribute to each output channel of a linear, unpadded reader."""
    weight = const_array(reader.inputs[1]).astype(np.float64)
    if reader.op_type == "Conv":
        return weight[:, channels].sum(axis=tuple(range(2, weight.ndim))) @ k  # a constant sees every tap
    taken = weight[:, channels].T if _attr(reader, "transB", 0) else weight[channels]
    return _attr(reader, "alpha", 1.0) * (k @ taken) / _attr(reader, "beta", 1.0)  # Y = alpha A B + beta C


BiasEdit = tuple[ir.Node, np.ndarray]


def add_to_biases(edits: list[BiasEdit], removal) -> None:
    """Adds each reader's delta to its bias, after shrink (so the reader's own removed outputs are dropped)."""
    for reader, delta in edits:
        delta = np.delete(delta, removal.get((reader.outputs[0], 1), np.zeros(0, int)))
        bias = reader.inputs[2] if len(reader.inputs) > 2 else None
        old = const_array(bias) if bias is not None else np.zeros(len(delta), np.float32)
        new = (old.astype(np.float64) + delta).astype(np.float32)
        if len(reader.inputs) < 3:
            reader.resize_inputs(3)
        reader.replace_input_with(2, add_initializer(reader.graph, f"{reader.name}_folded_bias", new))


def fold_constant_channels(group: Group, units: np.ndarray) -> tuple[list[int], list[BiasEdit]]:
    """The removed units whose producer weights are zero, and what their constant values add to the biases
    of their readers. Needs one Conv/Gemm producer followed by per-channel ops and unpadded linear readers;
    otherwise nothing is folded."""
    producers = [p for p in group.params if p.role == "out"]
    if len(producers) != 1 or producers[0].node.op_type not in ("Conv", "Gemm") or not len(units):
        return [], []
    producer = producers[0]
    weight = const_array(producer.value)
    indices = group.param_indices(producer)
    dead = [u for u in units if not np.take(weight, indices[u], axis=producer.axis).any()]
    if not dead:
        return [], []
    channels = np.concatenate([indices[u] for u in dead])
    node = producer.node
    value = node.outputs[0]
    rank = len(static_shape(value))
    bias = const_array(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2] is not None else None
    if bias is not None and bias.ndim != 1:
        return [], []
    k = bias[channels].astype(np.float64) if bias is not None else np.zeros(len(channels))
    if node.op_type == "Gemm":
        k = k * _attr(node, "beta", 1.0)
    while (readers := _readers(value)) is None:
        uses = list(value.uses())
        if len(uses) != 1 or value.is_graph_output():
            return [], []
        step = _step(uses[0][0], k, channels, 1, rank)
        if step is None:
            return [], []
        k, value = step, uses[0][0].outputs[0]
    return dead, [(reader, _bias_delta(reader, channels, k)) for reader in readers]
