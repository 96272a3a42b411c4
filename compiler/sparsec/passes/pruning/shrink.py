"""Physically removes chosen units: slices initializers, updates shapes, rewrites shape-carrying constants."""

from __future__ import annotations

from typing import Callable

import numpy as np
import onnx_ir as ir

from sparsec.passes.pruning.groups import Group
from sparsec.passes.pruning.rules import slice_ranges
from sparsec.passes.util import add_initializer, const_array, static_shape

Removal = dict[tuple[ir.Value, int], np.ndarray]  # sorted unique indices removed from each axis


def removal_of(selection: list[tuple[Group, list[int]]]) -> Removal:
    """Indices each tensor axis loses when the listed units of each group go."""
    parts: dict[tuple[ir.Value, int], list[np.ndarray]] = {}
    for group, units in selection:
        for m, key in enumerate(group.axes):
            parts.setdefault(key, []).extend(group.units[u][m] for u in units)
    return {key: np.unique(np.concatenate(chunks)) for key, chunks in parts.items() if chunks}


def _new_dims(value: ir.Value, removal: Removal) -> list[int]:
    return [d - len(removal.get((value, axis), ())) for axis, d in enumerate(static_shape(value))]


def _set_input(node: ir.Node, index: int, name: str, array: np.ndarray) -> None:
    node.replace_input_with(index, add_initializer(node.graph, f"{node.name or node.op_type}_{name}", array))


def _reshape(node: ir.Node, removal: Removal) -> Callable[[], None] | None:
    if node.op_type != "Reshape":
        return None
    old = const_array(node.inputs[1])
    new = np.array(_new_dims(node.outputs[0], removal), np.int64)
    new[old == -1] = -1
    return None if np.array_equal(new, old) else lambda: _set_input(node, 1, "shape", new)


def _split(node: ir.Node, removal: Removal) -> Callable[[], None] | None:
    axis = node.attributes["axis"].value if "axis" in node.attributes else 0
    axis %= len(static_shape(node.inputs[0]))
    sizes = np.array([_new_dims(y, removal)[axis] for y in node.outputs], np.int64)
    if (node.inputs[0], axis) not in removal:
        return None

    def apply():
        node.attributes.pop("num_outputs", None)
        node.attributes.pop("split", None)
        if len(node.inputs) > 1:
            _set_input(node, 1, "split", sizes)
        else:
            node.resize_inputs(2)
            node.replace_input_with(1, add_initializer(node.graph, f"{node.name}_split", sizes))

    return apply


def _slice(node: ir.Node, removal: Removal) -> Callable[[], None] | None:
    x, y = node.inputs[0], node.outputs[0]
    ranges = slice_ranges(node)
    changed = [a for a in ranges if (x, a) in removal or (y, a) in removal]
    if not changed:
        return None
    axes = sorted(ranges)
    starts = np.array([ranges[a][0] for a in axes], np.int64)
    ends = np.array([ranges[a][1] for a in axes], np.int64)
    for i, a in enumerate(axes):
        if a in changed:
            kept_before = starts[i] - np.count_nonzero(removal.get((x, a), np.zeros(0)) < starts[i])
            starts[i], ends[i] = kept_before, kept_before + _new_dims(y, removal)[a]
    steps = np.array([ranges[a][2] for a in axes], np.int64)

    def apply():
        node.resize_inputs(5)
        for index, name, array in ((1, "starts", starts), (2, "ends", ends), (3, "axes", np.array(axes, np.int64)),
                                   (4, "steps", steps)):
            _set_input(node, index, name, array)

    return apply


def _expand(node: ir.Node, removal: Removal) -> Callable[[], None] | None:
    y = node.outputs[0]
    old = const_array(node.inputs[1])
    new = old.copy()
    offset = len(static_shape(y)) - len(old)
    for axis, dim in enumerate(_new_dims(y, removal)):
        if axis >= offset and (y, axis) in removal and old[axis - offset] != 1:
            new[axis - offset] = dim
    return None if np.array_equal(new, old) else lambda: _set_input(node, 1, "shape", new)


def _groups_attribute(name: str, in_value: Callable[[ir.Node], ir.Value], width: Callable[[ir.Node], int]):
    """Grouped ops keep each group's width, so their group count follows the channels left."""

    def hook(node: ir.Node, removal: Removal) -> Callable[[], None] | None:
        x = in_value(node)
        if (x, 1) not in removal or name not in node.attributes or node.attributes[name].value == 1:
            return None
        groups = _new_dims(x, removal)[1] // width(node)
        return lambda: node.attributes.__setitem__(name, ir.AttrInt64(name, groups))

    return hook


_HOOKS = {
    "Reshape": _reshape, "Split": _split, "Slice": _slice, "Expand": _expand,
    "Conv": _groups_attribute("group", lambda n: n.inputs[0], lambda n: static_shape(n.inputs[1])[1]),
    "GroupNormalization": _groups_attribute(
        "num_groups", lambda n: n.inputs[0],
        lambda n: static_shape(n.inputs[0])[1] // n.attributes["num_groups"].value),
}


def shrink(model: ir.Model, removal: Removal) -> ir.Model:
    """Removes the given indices from every tensor axis and rewrites what depends on the sizes."""
    edits = [hook(node, removal) for node in model.graph if (hook := _HOOKS.get(node.op_type))]
    for (value, axis), indices in removal.items():
        if value.const_value is not None:
            data = np.delete(value.const_value.numpy(), indices, axis=axis)
            value.const_value = ir.tensor(data, name=value.name)
    new_shapes = {value: _new_dims(value, removal) for value, _ in removal}
    for value, dims in new_shapes.items():
        value.shape = ir.Shape(dims)
    for edit in edits:
        if edit is not None:
            edit()
    return model


def removal_names(removal: Removal) -> dict[tuple[str, int], np.ndarray]:
    """The removal keyed by tensor name, to apply to another copy of the model."""
    return {(value.name, axis): indices for (value, axis), indices in removal.items()}


def mask(model: ir.Model, removal: dict[tuple[str, int], np.ndarray]) -> ir.Model:
    """The reference for `shrink`: the same model with every weight entry of the removed units set to zero."""
    for (name, axis), indices in removal.items():
        value = model.graph.initializers.get(name)
        data = const_array(value)
        if data is not None and np.issubdtype(data.dtype, np.floating):
            data = data.copy()
            index = [slice(None)] * data.ndim
            index[axis] = indices
            data[tuple(index)] = 0
            value.const_value = ir.tensor(data, name=value.name)
    return model
