"""Lowering rules for data movement: transpose, reshape-like copies, concat, split, slice, gather, pad, expand."""

from __future__ import annotations

import math

import numpy as np
import onnx_ir as ir

from sparsec.contract.schema import PadMode
from sparsec.lower.builder import (Builder, Unsupported, axis_of, const_input, input_at, numpy_dtype, rank,
                                   static_shape)
from sparsec.passes.util import const_array


def transpose(b: Builder, node: ir.Node) -> None:
    perm = node.attributes.get_ints("perm", list(range(rank(node.inputs[0])))[::-1])
    b.emit("Transpose", [node.inputs[0]], [node.outputs[0]], {"perm": perm})


def copy(b: Builder, node: ir.Node) -> None:
    b.emit("Copy", [node.inputs[0]], [node.outputs[0]])


def dropout(b: Builder, node: ir.Node) -> None:
    """Inference Dropout (or ratio 0) is the identity; its mask output (if read) is all true."""
    training = input_at(node, 2)
    if training is not None and (const_array(training) is None or bool(const_array(training))):
        ratio = input_at(node, 1)
        ratio = const_array(ratio) if ratio is not None else 0.5
        if ratio is None or float(ratio) != 0.0:
            raise Unsupported("Dropout in training mode (training_mode true or a run-time input) is random unless "
                              "ratio is the constant 0: sparsec does not reproduce onnxruntime's random masks")
    b.emit("Copy", [node.inputs[0]], [node.outputs[0]])
    mask = node.outputs[1] if len(node.outputs) > 1 else None
    if mask is not None and (mask.uses() or mask.is_graph_output()):
        ones = b.constant(np.ones(static_shape(mask), bool), f"{b.label}/mask")
        b.emit("Copy", [ones], [mask])


def concat(b: Builder, node: ir.Node) -> None:
    axis = axis_of(node.attributes.get_int("axis"), rank(node.outputs[0]))
    inputs = [v for v in node.inputs if v is not None and math.prod(static_shape(v)) > 0]
    if not inputs:
        raise Unsupported("every input is empty")
    b.emit("Concat", inputs, [node.outputs[0]], {"axis": axis})


def split(b: Builder, node: ir.Node) -> None:
    axis = axis_of(node.attributes.get_int("axis", 0), rank(node.inputs[0]))
    b.emit("Split", [node.inputs[0]], list(node.outputs), {"axis": axis})


def slice_window(node: ir.Node) -> tuple[list[int], list[int], list[int]]:
    """(first index, step, length) per axis of a Slice with constant starts/ends/axes/steps."""
    shape = static_shape(node.inputs[0])
    rank_ = len(shape)
    starts = const_input(node, 1, "starts").reshape(-1).tolist()
    ends = const_input(node, 2, "ends").reshape(-1).tolist()
    axes = const_input(node, 3, "axes", np.arange(len(starts))).reshape(-1).tolist()
    steps = const_input(node, 4, "steps", np.ones(len(starts), dtype=np.int64)).reshape(-1).tolist()
    begin, stride, lengths = [0] * rank_, [1] * rank_, list(shape)
    for start, end, axis, step in zip(starts, ends, axes, steps):
        axis, dim = axis_of(int(axis), rank_), shape[axis_of(int(axis), rank_)]
        start, end, step = int(start), int(end), int(step)
        start, end = (start + dim if start < 0 else start), (end + dim if end < 0 else end)
        if step > 0:
            start, end = min(max(start, 0), dim), min(max(end, 0), dim)
        else:
            start, end = min(max(start, 0), dim - 1), min(max(end, -1), dim - 1)
        length = max(0, -(-(end - start) // step)) if step > 0 else max(0, -(-(start - end) // -step))
        begin[axis], stride[axis], lengths[axis] = (start if length else 0), step, length
    return begin, stride, lengths


def slice_(b: Builder, node: ir.Node) -> None:
    """Constant starts/ends/axes/steps: resolved here; else DynamicSlice resolves them at run time."""
    if any(v is not None and const_array(v) is None for v in node.inputs[1:5]):
        b.emit("DynamicSlice", list(node.inputs[:5]), [node.outputs[0]])
        return
    begin, stride, _ = slice_window(node)
    b.emit("Slice", [node.inputs[0]], [node.outputs[0]], {"starts": begin, "steps": stride})


def gather(b: Builder, node: ir.Node) -> None:
    axis = axis_of(node.attributes.get_int("axis", 0), rank(node.inputs[0]))
    b.emit("Gather", [node.inputs[0], node.inputs[1]], [node.outputs[0]], {"axis": axis})


def pad(b: Builder, node: ir.Node) -> None:
    """Every mode and dtype; negative pads crop; run-time pads (and axes) are read by the runtime."""
    x = node.inputs[0]
    rank_ = rank(x)
    modes = {"constant": PadMode.CONSTANT, "reflect": PadMode.REFLECT, "edge": PadMode.EDGE, "wrap": PadMode.WRAP}
    mode = node.attributes.get_string("mode", "constant")
    if mode not in modes:
        raise Unsupported(f"pad mode '{mode}' is not supported")
    pads, value, axes = (input_at(node, i) for i in (1, 2, 3))
    inputs = [x, value if value is not None and mode == "constant" else None]
    begins, ends = [0] * rank_, [0] * rank_
    if const_array(pads) is None or (axes is not None and const_array(axes) is None):
        inputs += [pads, axes]
    else:
        pads = const_array(pads).reshape(-1).tolist()
        axes = np.arange(rank_) if axes is None else const_array(axes)
        for k, axis in enumerate(axes.reshape(-1).tolist()):
            begins[axis_of(int(axis), rank_)] = int(pads[k])
            ends[axis_of(int(axis), rank_)] = int(pads[k + len(pads) // 2])
    for size, begin, end in zip(static_shape(x), begins, ends):  # what the runtime's check_pad refuses
        kept = size - max(-begin, 0) - max(-end, 0)
        too_wide = mode == "reflect" and max(begin, end) >= kept
        if kept < 0 or too_wide or (mode != "constant" and kept == 0 < size + begin + end):
            raise Unsupported(f"pads {begin}, {end} do not fit an axis of size {size} in {mode} mode")
    if inputs[1] is not None and const_array(inputs[1]) is not None:  # a constant value: a scalar of x's dtype
        inputs[1] = b.constant(const_array(inputs[1]).reshape(()).astype(numpy_dtype(x)), f"{b.label}/value")
    b.emit("Pad", inputs, [node.outputs[0]], {"mode": modes[mode], "begins": begins, "ends": ends})


def expand(b: Builder, node: ir.Node) -> None:
    b.emit("Expand", [node.inputs[0]], [node.outputs[0]])


def constant(b: Builder, node: ir.Node) -> None:
    """Constants become tensors when an op reads them (Builder.tensor)."""


RULES = {
    "Transpose": transpose, "Reshape": copy, "Flatten": copy, "Squeeze": copy, "Unsqueeze": copy, "Identity": copy,
    "Dropout": dropout, "Concat": concat, "Split": split, "Slice": slice_, "Gather": gather, "Pad": pad,
    "Expand": expand, "Constant": constant,
}
