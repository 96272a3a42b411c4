"""Channel rules, one per ONNX op: which input and output elements must be removed together.

A rule ties elements (ChannelSpace.tie), marks weights pruning slices (param), and may fix axes with
a reason. Any axis of a node's inputs/outputs its rule leaves untouched is fixed afterwards, so an op
without a rule stops propagation instead of being guessed.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import onnx_ir as ir

from sparsec.naming import op_label
from sparsec.passes.pruning.channels import ChannelSpace, ReshapeChoice
from sparsec.passes.util import const_array, static_shape

Rule = Callable[[ir.Node, ChannelSpace], None]

UNARY = {
    "Relu", "Clip", "Sigmoid", "Tanh", "HardSwish", "HardSigmoid", "LeakyRelu", "Elu", "Selu", "Softplus", "Gelu",
    "Erf", "Neg", "Abs", "Sqrt", "Exp", "Log", "Reciprocal", "Cast", "Identity", "Dropout", "Floor", "Ceil",
    "Round", "Sign", "Sin", "Cos", "Mish",
}
ELEMENTWISE = {"Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Where", "Equal", "Less", "Greater", "And", "Or", "PRelu"}
POOLS = {"MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "LpPool", "GlobalLpPool"}
REDUCES = {"ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
           "ReduceSumSquare", "ReduceLogSumExp"}


def _attr(node: ir.Node, name: str, default=None):
    attr = node.attributes.get(name)
    return default if attr is None else attr.value


def _label(node: ir.Node) -> str:
    return f"{op_label(node)} '{node.name}'"


def _same_axes(space: ChannelSpace, a: ir.Value, b: ir.Value, pairs) -> None:
    for a_axis, b_axis in pairs:
        space.tie(a, a_axis, b, b_axis)


def _tie_aligned(space: ChannelSpace, value: ir.Value, out: ir.Value, axes=None) -> list[int]:
    """Numpy broadcasting: ties value's axes (all, or `axes`) to out's right-aligned axes of equal size;
    returns the tied axes (size-1 broadcast axes stay untied, hence fixed)."""
    shape, out_shape = static_shape(value), static_shape(out)
    offset = len(out_shape) - len(shape)
    tied = [a for a in (range(len(shape)) if axes is None else axes) if shape[a] == out_shape[a + offset]]
    for axis in tied:
        space.tie(value, axis, out, axis + offset)
    return tied


def _broadcast(node: ir.Node, space: ChannelSpace) -> None:
    out = node.outputs[0]
    for value in node.inputs:
        if value is None or static_shape(value) is None:
            continue
        for axis in _tie_aligned(space, value, out):
            if static_shape(value)[axis] > 1 and const_array(value) is not None:
                space.param(value, axis, node, "scale")


def _unary(node: ir.Node, space: ChannelSpace) -> None:
    x, y = node.inputs[0], node.outputs[0]
    if static_shape(x) == static_shape(y):
        _same_axes(space, x, y, [(k, k) for k in range(len(static_shape(x)))])


def _conv(node: ir.Node, space: ChannelSpace) -> None:
    x, w, y = node.inputs[0], node.inputs[1], node.outputs[0]
    bias = node.inputs[2] if len(node.inputs) > 2 else None
    if const_array(w) is None:
        return
    groups = _attr(node, "group", 1)
    channels, out_channels = static_shape(x)[1], static_shape(y)[1]
    space.tie(x, 0, y, 0)
    space.tie(w, 0, y, 1)
    space.param(w, 0, node, "out")
    if bias is not None and const_array(bias) is not None:
        space.tie(bias, 0, y, 1)
        space.param(bias, 0, node, "bias")
    if groups == 1:
        space.tie(x, 1, w, 1)
        space.param(w, 1, node, "in")
        return
    # Grouped/depthwise: only whole groups can go (their inputs with their outputs), so every group keeps its width.
    in_group = np.arange(channels) // (channels // groups)
    out_group = np.arange(out_channels) // (out_channels // groups)
    first_out = np.searchsorted(out_group, np.arange(groups))
    space.tie(x, 1, y, 1, np.arange(channels), first_out[in_group])
    space.tie(y, 1, y, 1, np.arange(out_channels), first_out[out_group])


def _gemm(node: ir.Node, space: ChannelSpace) -> None:
    a, b, y = node.inputs[0], node.inputs[1], node.outputs[0]
    a_rows, a_k = (1, 0) if _attr(node, "transA", 0) else (0, 1)
    b_k, b_cols = (1, 0) if _attr(node, "transB", 0) else (0, 1)
    space.tie(a, a_rows, y, 0)
    space.tie(a, a_k, b, b_k)
    space.tie(b, b_cols, y, 1)
    if const_array(b) is not None:
        space.param(b, b_cols, node, "out")
        space.param(b, b_k, node, "in")
    c = node.inputs[2] if len(node.inputs) > 2 else None
    c_shape = static_shape(c)
    if c_shape:
        _tie_aligned(space, c, y)
        if const_array(c) is not None and c_shape[-1] > 1:
            space.param(c, len(c_shape) - 1, node, "bias")


def _matmul(node: ir.Node, space: ChannelSpace) -> None:
    a, b, y = node.inputs[0], node.inputs[1], node.outputs[0]
    a_shape, b_shape, y_shape = static_shape(a), static_shape(b), static_shape(y)
    if len(a_shape) < 2 or len(b_shape) < 2:
        return  # vector products: leave every axis fixed
    space.tie(a, len(a_shape) - 1, b, len(b_shape) - 2)
    space.tie(a, len(a_shape) - 2, y, len(y_shape) - 2)
    space.tie(b, len(b_shape) - 1, y, len(y_shape) - 1)
    for value, shape in ((a, a_shape), (b, b_shape)):  # batch axes broadcast
        _tie_aligned(space, value, y, range(len(shape) - 2))
    if const_array(b) is not None:
        space.param(b, len(b_shape) - 1, node, "out")
        space.param(b, len(b_shape) - 2, node, "in")
    if const_array(a) is not None:
        space.param(a, len(a_shape) - 2, node, "out")
        space.param(a, len(a_shape) - 1, node, "in")


def _batch_norm(node: ir.Node, space: ChannelSpace) -> None:
    y = node.outputs[0]
    _unary(node, space)
    for value, role in zip(node.inputs[1:5], ("bn_scale", "bn", "bn", "bn")):
        space.tie(value, 0, y, 1)
        if const_array(value) is not None:
            space.param(value, 0, node, role)


def _instance_norm(node: ir.Node, space: ChannelSpace) -> None:
    x, y = node.inputs[0], node.outputs[0]
    rank = len(static_shape(x))
    _same_axes(space, x, y, [(0, 0), (1, 1)])
    for value, role in zip(node.inputs[1:3], ("scale", "bn")):
        space.tie(value, 0, y, 1)
        if const_array(value) is not None:
            space.param(value, 0, node, role)
    for axis in range(2, rank):
        space.fix(x, axis, f"{_label(node)} normalises over axis {axis}")


def _group_norm(node: ir.Node, space: ChannelSpace) -> None:
    """GroupNormalization: only whole groups can go (their statistics are their own)."""
    x, y = node.inputs[0], node.outputs[0]
    channels, groups = static_shape(x)[1], _attr(node, "num_groups")
    group_of = np.arange(channels) // (channels // groups)
    first = np.searchsorted(group_of, np.arange(groups))
    space.tie(x, 0, y, 0)
    space.tie(x, 1, y, 1)
    space.tie(y, 1, y, 1, np.arange(channels), first[group_of])
    for value in node.inputs[1:3]:
        size = static_shape(value)[0]
        space.tie(value, 0, y, 1, np.arange(size), first if size == groups else np.arange(channels))
        space.param(value, 0, node, "scale")
    for axis in range(2, len(static_shape(x))):
        space.fix(x, axis, f"{_label(node)} normalises over axis {axis}")


def _layer_norm(node: ir.Node, space: ChannelSpace) -> None:
    x, y = node.inputs[0], node.outputs[0]
    rank = len(static_shape(x))
    axis = _attr(node, "axis", -1) % rank
    _same_axes(space, x, y, [(k, k) for k in range(axis)])
    cause = f"{_label(node)} normalises over the channels (removing some would change its statistics)"
    for k in range(axis, rank):
        space.fix(x, k, cause)
    for value in node.inputs[1:3]:
        for k in range(len(static_shape(value) or ())):
            space.fix(value, k, cause)


def _pool(node: ir.Node, space: ChannelSpace) -> None:
    _same_axes(space, node.inputs[0], node.outputs[0], [(0, 0), (1, 1)])


def _reduced_axes(node: ir.Node, rank: int) -> list[int] | None:
    axes = _attr(node, "axes")
    if axes is None and len(node.inputs) > 1 and node.inputs[1] is not None:
        axes = const_array(node.inputs[1])
        if axes is None:
            return None
    if axes is None or len(axes) == 0:
        return None if _attr(node, "noop_with_empty_axes", 0) else list(range(rank))
    return sorted(int(a) % rank for a in axes)


def _reduce(node: ir.Node, space: ChannelSpace) -> None:
    x, y = node.inputs[0], node.outputs[0]
    rank = len(static_shape(x))
    axes = _reduced_axes(node, rank)
    if axes is None:
        return
    keep = _attr(node, "keepdims", 1)
    out_axis = 0
    for axis in range(rank):
        if axis in axes:
            space.fix(x, axis, f"{_label(node)} reduces over axis {axis}")
            out_axis += keep
        else:
            space.tie(x, axis, y, out_axis)
            out_axis += 1


def _softmax(node: ir.Node, space: ChannelSpace) -> None:
    x, y = node.inputs[0], node.outputs[0]
    rank = len(static_shape(x))
    axis = _attr(node, "axis", -1) % rank
    _same_axes(space, x, y, [(k, k) for k in range(rank) if k != axis])
    space.fix(x, axis, f"{_label(node)} normalises over axis {axis}")


def _transpose(node: ir.Node, space: ChannelSpace) -> None:
    x, y = node.inputs[0], node.outputs[0]
    perm = _attr(node, "perm") or list(reversed(range(len(static_shape(x)))))
    _same_axes(space, x, y, [(p, k) for k, p in enumerate(perm)])


def _blocks(a: tuple[int, ...], b: tuple[int, ...]):
    """Pairs (a_axes, b_axes) of consecutive non-1 axes with equal products; size-1 axes belong to none."""
    a_axes = [k for k, d in enumerate(a) if d != 1]
    b_axes = [k for k, d in enumerate(b) if d != 1]
    i = j = 0
    while i < len(a_axes) and j < len(b_axes):
        ai, bj = [a_axes[i]], [b_axes[j]]
        pa, pb = a[a_axes[i]], b[b_axes[j]]
        i, j = i + 1, j + 1
        while pa != pb:
            if pa < pb:
                ai.append(a_axes[i])
                pa *= a[a_axes[i]]
                i += 1
            else:
                bj.append(b_axes[j])
                pb *= b[b_axes[j]]
                j += 1
        yield ai, bj


def _reshape(node: ir.Node, space: ChannelSpace) -> None:
    """Reshape/Flatten/Squeeze/Unsqueeze. One-to-one axes map index by index. An axis split into several
    (or several merged into one) can lose channels along one factor only: heads for a features-last axis
    (outermost first), else the largest factor; `find_groups` retries the next if that one is fixed."""
    x, y = node.inputs[0], node.outputs[0]
    x_shape, y_shape = static_shape(x), static_shape(y)
    try:
        blocks = list(_blocks(x_shape, y_shape))
    except IndexError:  # sizes that do not factor (an invalid reshape): leave everything fixed
        return
    for x_axes, y_axes in blocks:
        if len(x_axes) == 1 and len(y_axes) == 1:
            space.tie(x, x_axes[0], y, y_axes[0])
        elif len(x_axes) == 1 or len(y_axes) == 1:
            (single, single_axes), (split, split_axes) = sorted(((x, x_axes), (y, y_axes)), key=lambda s: len(s[1]))
            split_shape = static_shape(split)
            dims = [split_shape[a] for a in split_axes]
            if single_axes[0] == len(static_shape(single)) - 1:
                order = list(range(len(dims)))
            else:
                order = sorted(range(len(dims)), key=lambda k: (-dims[k], k))
            choice = ReshapeChoice(node, (single, single_axes[0]), (split, tuple(split_axes)), order)
            space.choices.append(choice)
            space.elements(single, single_axes[0])  # mark the single axis as mapped
            for axis in split_axes:
                space.elements(split, axis)
        # many-to-many regroupings stay unmapped, hence fixed


def _concat(node: ir.Node, space: ChannelSpace) -> None:
    y = node.outputs[0]
    rank = len(static_shape(y))
    axis = _attr(node, "axis") % rank
    offset = 0
    for x in node.inputs:
        size = static_shape(x)[axis]
        space.tie(x, axis, y, axis, np.arange(size), offset + np.arange(size))
        _same_axes(space, x, y, [(k, k) for k in range(rank) if k != axis])
        offset += size


def _split(node: ir.Node, space: ChannelSpace) -> None:
    x = node.inputs[0]
    rank = len(static_shape(x))
    axis = _attr(node, "axis", 0) % rank
    offset = 0
    for y in node.outputs:
        size = static_shape(y)[axis]
        space.tie(x, axis, y, axis, offset + np.arange(size), np.arange(size))
        _same_axes(space, x, y, [(k, k) for k in range(rank) if k != axis])
        offset += size


def slice_ranges(node: ir.Node) -> dict[int, tuple[int, int, int]] | None:
    """Slice's (start, stop, step) per sliced axis, resolved against the static input shape."""
    shape = static_shape(node.inputs[0])
    consts = [const_array(v) if v is not None else None for v in node.inputs[1:5]]
    if consts[0] is None or consts[1] is None:
        return None
    rank = len(shape)
    axes = consts[2] if len(consts) > 2 and consts[2] is not None else np.arange(len(consts[0]))
    steps = consts[3] if len(consts) > 3 and consts[3] is not None else np.ones(len(consts[0]), np.int64)
    ranges = {}
    for start, stop, axis, step in zip(consts[0], consts[1], axes, steps):
        axis = int(axis) % rank
        ranges[axis] = slice(int(start), int(stop), int(step)).indices(shape[axis])
    return ranges


def _slice(node: ir.Node, space: ChannelSpace) -> None:
    x, y = node.inputs[0], node.outputs[0]
    ranges = slice_ranges(node)
    if ranges is None:
        return
    for axis in range(len(static_shape(x))):
        if axis not in ranges:
            space.tie(x, axis, y, axis)
        elif ranges[axis][2] == 1:
            start, stop, _ = ranges[axis]
            space.tie(x, axis, y, axis, np.arange(start, stop), np.arange(stop - start))


def _gather(node: ir.Node, space: ChannelSpace) -> None:
    data, indices, y = node.inputs[0], node.inputs[1], node.outputs[0]
    rank = len(static_shape(data))
    axis = _attr(node, "axis", 0) % rank
    index_rank = len(static_shape(indices))
    for k in range(rank):
        if k < axis:
            space.tie(data, k, y, k)
        elif k > axis:
            space.tie(data, k, y, k - 1 + index_rank)
    for k in range(index_rank):
        space.tie(indices, k, y, axis + k)
    space.fix(data, axis, f"{_label(node)} picks indices along axis {axis}")


def _expand(node: ir.Node, space: ChannelSpace) -> None:
    x, y = node.inputs[0], node.outputs[0]
    offset = len(static_shape(y)) - len(static_shape(x))
    copied = {axis + offset for axis in _tie_aligned(space, x, y)}
    for axis in set(range(len(static_shape(y)))) - copied:
        space.fix(y, axis, f"{_label(node)} broadcasts axis {axis}")


def _pad(node: ir.Node, space: ChannelSpace) -> None:
    x, y = node.inputs[0], node.outputs[0]
    pads = const_array(node.inputs[1]) if len(node.inputs) > 1 else _attr(node, "pads")
    if pads is None or (len(node.inputs) > 3 and node.inputs[3] is not None):
        return
    rank = len(static_shape(x))
    pads = np.asarray(pads).reshape(2, rank)
    _same_axes(space, x, y, [(k, k) for k in range(rank) if not pads[:, k].any()])


RULES: dict[str, Rule] = {
    **{op: _unary for op in UNARY},
    **{op: _broadcast for op in ELEMENTWISE},
    **{op: _pool for op in POOLS},
    **{op: _reduce for op in REDUCES},
    "Conv": _conv, "Gemm": _gemm, "MatMul": _matmul,
    "BatchNormalization": _batch_norm, "InstanceNormalization": _instance_norm,
    "GroupNormalization": _group_norm, "LayerNormalization": _layer_norm,
    "Softmax": _softmax, "LogSoftmax": _softmax, "Transpose": _transpose,
    "Reshape": _reshape, "Flatten": _reshape, "Squeeze": _reshape, "Unsqueeze": _reshape,
    "Concat": _concat, "Split": _split, "Slice": _slice, "Gather": _gather, "Expand": _expand, "Pad": _pad,
}
