"""Lowering rules for index and tensor-manipulation ops: gathers and scatters, TopK, cumulative sums, Range, and
what composes exactly from data movement (Tile, DepthToSpace/SpaceToDepth, ReverseSequence, EyeLike,
ConstantOfShape, BitCast). Ops whose output shape depends on data (Compress, NonZero, Unique) are refused."""

from __future__ import annotations

import math

import numpy as np
import onnx_ir as ir

from sparsec.contract.schema import BinaryOp, CompareOp, CumulativeKind, ScatterReduction
from sparsec.lower.builder import Builder, Unsupported, axis_of, input_at, numpy_dtype, rank, static_shape
from sparsec.passes.util import const_array

REDUCTIONS = {"none": ScatterReduction.NONE, "add": ScatterReduction.ADD, "mul": ScatterReduction.MUL,
              "max": ScatterReduction.MAX, "min": ScatterReduction.MIN}


def _reduction(node: ir.Node) -> ScatterReduction:
    name = node.attributes.get_string("reduction", "none")
    if name not in REDUCTIONS:
        raise Unsupported(f"reduction '{name}' is not supported")
    return REDUCTIONS[name]


def _scalar(value: ir.Value | None) -> int | None:
    """The one integer a constant input holds, None when it is a run-time input."""
    data = const_array(value)
    return None if data is None else int(data.reshape(-1)[0])


def require_values(b: Builder, vector: ir.Value, declared: list[int]) -> None:
    """Fails at run time unless the int64 vector holds the declared values: Range(0, v[i], 1) into [declared[i]]."""
    if numpy_dtype(vector) != np.int64 or static_shape(vector) != (len(declared),):
        raise Unsupported(f"'{vector.name}' is not an int64 vector of {len(declared)} values")
    zero, one = (b.constant(np.array(v, np.int64), f"{b.label}/{v}") for v in (0, 1))
    for i, value in enumerate(declared):
        element = b.temp((), np.int64, f"{b.label}/{vector.name}[{i}]")
        b.emit("Gather", [vector, b.constant(np.array(i, np.int64), f"{b.label}/{i}")], [element], {"axis": 0})
        b.emit("Range", [zero, element, one], [b.temp((value,), np.int64, f"{b.label}/check{i}")])


def gather_elements(b: Builder, node: ir.Node) -> None:
    axis = axis_of(node.attributes.get_int("axis", 0), rank(node.inputs[0]))
    b.emit("GatherElements", node.inputs[:2], [node.outputs[0]], {"axis": axis})


def scatter_elements(b: Builder, node: ir.Node) -> None:
    axis = axis_of(node.attributes.get_int("axis", 0), rank(node.inputs[0]))
    b.emit("ScatterElements", node.inputs[:3], [node.outputs[0]], {"axis": axis, "reduction": _reduction(node)})


def gather_nd(b: Builder, node: ir.Node) -> None:
    b.emit("GatherND", node.inputs[:2], [node.outputs[0]], {"batch_dims": node.attributes.get_int("batch_dims", 0)})


def scatter_nd(b: Builder, node: ir.Node) -> None:
    b.emit("ScatterND", node.inputs[:3], [node.outputs[0]], {"reduction": _reduction(node)})


def top_k(b: Builder, node: ir.Node) -> None:
    x, values = node.inputs[0], node.outputs[0]
    shape = static_shape(x)
    axis = axis_of(node.attributes.get_int("axis", -1), len(shape))
    k, declared = _scalar(node.inputs[1]), static_shape(values)[axis]
    if k is not None and k != declared:
        raise Unsupported(f"k = {k} differs from the output's dim {declared}")
    outputs = [values, node.outputs[1]]
    for i, value in enumerate(outputs):  # an unread output still needs a buffer
        if value is None or not (value.uses() or value.is_graph_output()):
            outputs[i] = b.temp(static_shape(values), np.int64 if i else numpy_dtype(x), f"{b.label}/unused{i}")
    b.emit("TopK", [x, None if k is not None else node.inputs[1]], outputs,
           {"axis": axis, "largest": node.attributes.get_int("largest", 1)}, scratch_bytes=4 * shape[axis])


def cumulative(b: Builder, node: ir.Node) -> None:
    x = node.inputs[0]
    axis = _scalar(node.inputs[1])
    attrs = {"kind": CumulativeKind.SUM if node.op_type == "CumSum" else CumulativeKind.PROD,
             "axis": 0 if axis is None else axis_of(axis, rank(x)),
             "exclusive": node.attributes.get_int("exclusive", 0), "reverse": node.attributes.get_int("reverse", 0)}
    b.emit("Cumulative", [x, None if axis is not None else node.inputs[1]], [node.outputs[0]], attrs)


def range_(b: Builder, node: ir.Node) -> None:
    b.emit("Range", node.inputs[:3], [node.outputs[0]])


def eye_like(b: Builder, node: ir.Node) -> None:
    out = node.outputs[0]
    shape = static_shape(out)
    if len(shape) != 2:
        raise Unsupported("EyeLike takes a 2-D input")
    eye = np.eye(shape[0], shape[1], node.attributes.get_int("k", 0), dtype=numpy_dtype(out))
    b.emit("Copy", [b.constant(eye, f"{b.label}/eye")], [out])


def constant_of_shape(b: Builder, node: ir.Node) -> None:
    """A fill at run time (Expand of the one value): a large constant never enters the artifact."""
    attr = node.attributes.get("value")
    value = attr.value.numpy().reshape(()) if attr is not None else np.zeros((), np.float32)
    if const_array(node.inputs[0]) is None:
        require_values(b, node.inputs[0], list(static_shape(node.outputs[0])))
    b.emit("Expand", [b.constant(value, f"{b.label}/value")], [node.outputs[0]])


def tile(b: Builder, node: ir.Node) -> None:
    """x viewed as [1, d0, 1, d1, ...], expanded to [r0, d0, r1, d1, ...] (no pair where r or d is 1), viewed as out."""
    x, out = node.inputs[0], node.outputs[0]
    shape, out_shape = static_shape(x), static_shape(out)
    repeats = [o // d if d else 1 for d, o in zip(shape, out_shape)]
    given = const_array(node.inputs[1])
    if given is not None and [int(r) for r in given.reshape(-1)] != repeats and math.prod(out_shape):
        raise Unsupported(f"repeats {given.tolist()} do not give the output shape {list(out_shape)}")
    if any(d * r != o for d, r, o in zip(shape, repeats, out_shape)):
        raise Unsupported(f"output {list(out_shape)} is not a tiling of input {list(shape)}")
    if given is None:
        require_values(b, node.inputs[1], repeats)
    view, wide = [], []
    for d, r in zip(shape, repeats):
        view += [1, d] if r != 1 and d != 1 else [d]
        wide += [r, d] if r != 1 and d != 1 else [d * r]
    if len(wide) > 8:
        raise Unsupported("more than 8 dims after interleaving the repeats")
    expanded = b.temp(wide, numpy_dtype(x), f"{b.label}/tiled")
    b.emit("Expand", [b.reshaped(x, view, f"{b.label}/view")], [expanded])
    b.emit("Copy", [expanded], [out])


def _permute(b: Builder, x: ir.Value, out: ir.Value, view, perm) -> None:
    """out = reshape(transpose(reshape(x, view), perm), out's shape)."""
    moved = b.temp([view[p] for p in perm], numpy_dtype(x), f"{b.label}/moved")
    b.emit("Transpose", [b.reshaped(x, view, f"{b.label}/view")], [moved], {"perm": perm})
    b.emit("Copy", [moved], [out])


def depth_to_space(b: Builder, node: ir.Node) -> None:
    n, c, h, w = static_shape(node.inputs[0])
    s = node.attributes.get_int("blocksize")
    if node.attributes.get_string("mode", "DCR") == "DCR":
        _permute(b, node.inputs[0], node.outputs[0], [n, s, s, c // (s * s), h, w], [0, 3, 4, 1, 5, 2])
    else:
        _permute(b, node.inputs[0], node.outputs[0], [n, c // (s * s), s, s, h, w], [0, 1, 4, 2, 5, 3])


def space_to_depth(b: Builder, node: ir.Node) -> None:
    n, c, h, w = static_shape(node.inputs[0])
    s = node.attributes.get_int("blocksize")
    view = [n, c, h // s, s, w // s, s]
    if node.attributes.get_string("mode", "DCR") == "DCR":
        _permute(b, node.inputs[0], node.outputs[0], view, [0, 3, 5, 1, 2, 4])
    else:
        _permute(b, node.inputs[0], node.outputs[0], view, [0, 1, 3, 5, 2, 4])


def reverse_sequence(b: Builder, node: ir.Node) -> None:
    """GatherElements along time with index t < len[b] ? len[b] - 1 - t : t."""
    x, lengths, out = node.inputs[0], node.inputs[1], node.outputs[0]
    shape = static_shape(x)
    batch_axis, time_axis = node.attributes.get_int("batch_axis", 1), node.attributes.get_int("time_axis", 0)
    grid = [1] * len(shape)
    grid[batch_axis], grid[time_axis] = shape[batch_axis], shape[time_axis]
    per_batch = [shape[batch_axis] if d == batch_axis else 1 for d in range(len(shape))]
    times = b.constant(np.arange(shape[time_axis], dtype=np.int64).reshape(
        [-1 if d == time_axis else 1 for d in range(len(shape))]), f"{b.label}/t")
    length = b.temp(per_batch, np.int64, f"{b.label}/len")
    b.emit("Cast" if numpy_dtype(lengths) != np.int64 else "Copy", [lengths], [length])
    last = b.temp(per_batch, np.int64, f"{b.label}/last")
    b.emit("Binary", [length, b.constant(np.array(1, np.int64), f"{b.label}/1")], [last],
           {"op": BinaryOp.SUB, "activation": 0})
    reversed_ = b.temp(grid, np.int64, f"{b.label}/reversed")
    b.emit("Binary", [last, times], [reversed_], {"op": BinaryOp.SUB, "activation": 0})
    inside = b.temp(grid, np.bool_, f"{b.label}/inside")
    b.emit("Compare", [times, length], [inside], {"op": CompareOp.LESS})
    source = b.temp(grid, np.int64, f"{b.label}/source")
    b.emit("Where", [inside, reversed_, times], [source])
    full = b.temp(shape, np.int64, f"{b.label}/index")
    b.emit("Expand", [source], [full])
    b.emit("GatherElements", [x, full], [out], {"axis": time_axis})


def bit_cast(b: Builder, node: ir.Node) -> None:
    b.emit("BitCast", [node.inputs[0]], [node.outputs[0]])


def data_dependent(b: Builder, node: ir.Node) -> None:
    condition = input_at(node, 1) if node.op_type == "Compress" else None
    raise Unsupported(f"{node.op_type}'s output shape depends on the values of its input"
                      + (" (the condition is not a constant)" if condition is not None else "")
                      + ": sparsec plans every shape at compile time")


def compress(b: Builder, node: ir.Node) -> None:
    """A constant condition: a Gather of the selected positions."""
    condition = const_array(node.inputs[1])
    if condition is None:
        data_dependent(b, node)
    x = node.inputs[0]
    axis = node.attributes.get_int("axis", None)
    if axis is None:  # the flattened input
        x, axis = b.reshaped(x, (math.prod(static_shape(x)),), f"{b.label}/flat"), 0
    else:
        axis = axis_of(axis, rank(x))
    picked = np.flatnonzero(condition.reshape(-1).astype(bool)).astype(np.int64)
    b.emit("Gather", [x, b.constant(picked, f"{b.label}/picked")], [node.outputs[0]], {"axis": axis})


RULES = {
    "GatherElements": gather_elements, "ScatterElements": scatter_elements, "Scatter": scatter_elements,
    "GatherND": gather_nd, "ScatterND": scatter_nd, "TopK": top_k, "CumSum": cumulative, "CumProd": cumulative,
    "Range": range_, "EyeLike": eye_like, "ConstantOfShape": constant_of_shape, "Tile": tile,
    "DepthToSpace": depth_to_space, "SpaceToDepth": space_to_depth, "ReverseSequence": reverse_sequence,
    "BitCast": bit_cast, "Compress": compress, "NonZero": data_dependent, "Unique": data_dependent,
}
