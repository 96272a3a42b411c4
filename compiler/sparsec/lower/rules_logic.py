"""Lowering rules for comparisons, logic and bitwise ops, selection (Where) and what composes from them exactly:
Clip with run-time or integer bounds, Mean, IsNaN/IsInf, Trilu, OneHot."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from sparsec.activations import activation_of
from sparsec.contract.schema import BinaryOp, BitwiseOp, CompareOp
from sparsec.lower import rules_elementwise
from sparsec.lower.builder import Builder, Unsupported, axis_of, const_input, input_at, numpy_dtype, static_shape
from sparsec.passes.util import const_array

COMPARE = {"Equal": CompareOp.EQUAL, "Less": CompareOp.LESS, "Greater": CompareOp.GREATER,
           "LessOrEqual": CompareOp.LESS_EQUAL, "GreaterOrEqual": CompareOp.GREATER_EQUAL}
BITWISE = {"And": BitwiseOp.AND, "Or": BitwiseOp.OR, "Xor": BitwiseOp.XOR, "BitwiseAnd": BitwiseOp.AND,
           "BitwiseOr": BitwiseOp.OR, "BitwiseXor": BitwiseOp.XOR}


def temp_like(b: Builder, shape, dtype, suffix: str) -> int:
    return b.temp(shape, dtype, f"{b.label}/{suffix}")


def compare(b: Builder, node: ir.Node) -> None:
    b.emit("Compare", [node.inputs[0], node.inputs[1]], [node.outputs[0]], {"op": COMPARE[node.op_type]})


def bitwise(b: Builder, node: ir.Node) -> None:
    op = BITWISE.get(node.op_type)
    if node.op_type == "BitShift":
        op = BitwiseOp.SHIFT_LEFT if node.attributes.get_string("direction") == "LEFT" else BitwiseOp.SHIFT_RIGHT
    b.emit("Bitwise", [node.inputs[0], node.inputs[1]], [node.outputs[0]], {"op": op})


def invert(b: Builder, node: ir.Node) -> None:
    """Not and BitwiseNot: x XOR all-ones (true for bool)."""
    dtype = numpy_dtype(node.inputs[0])
    ones = b.constant(np.array(True if dtype == np.bool_ else -1).astype(dtype), f"{b.label}/ones")
    b.emit("Bitwise", [node.inputs[0], ones], [node.outputs[0]], {"op": BitwiseOp.XOR})


def where(b: Builder, node: ir.Node) -> None:
    b.emit("Where", list(node.inputs[:3]), [node.outputs[0]])


def clip(b: Builder, node: ir.Node) -> None:
    """float32 with constant bounds: the Clip activation; otherwise max(x, min) then min(., max), exact for integers."""
    x, out = node.inputs[0], node.outputs[0]
    if numpy_dtype(x) == np.float32 and activation_of(node) is not None:
        rules_elementwise.activation(b, node)
        return
    bounds = [(BinaryOp.MAX, input_at(node, 1)), (BinaryOp.MIN, input_at(node, 2))]
    bounds = [(op, v) for op, v in bounds if v is not None]
    if not bounds:
        b.emit("Copy", [x], [out])
        return
    acc = x
    for k, (op, bound) in enumerate(bounds):
        target = out if k == len(bounds) - 1 else temp_like(b, static_shape(out), numpy_dtype(out), "lower")
        b.emit("Binary", [acc, bound], [target], {"op": op, "activation": 0})
        acc = target


def mean(b: Builder, node: ir.Node) -> None:
    inputs, out = [v for v in node.inputs if v is not None], node.outputs[0]
    if numpy_dtype(out) != np.float32:
        raise Unsupported(f"Mean runs on float32 only (this node is {node.outputs[0].dtype})")
    if len(inputs) == 1:
        b.emit("Copy", inputs, [out])
        return
    acc = inputs[0]
    for k, other in enumerate(inputs[1:], start=1):
        target = temp_like(b, static_shape(out), np.float32, f"sum{k}")
        b.emit("Binary", [acc, other], [target], {"op": BinaryOp.ADD, "activation": 0})
        acc = target
    count = b.constant(np.array(len(inputs), np.float32), f"{b.label}/count")
    b.emit("Binary", [acc, count], [out], {"op": BinaryOp.DIV, "activation": 0})


def is_nan(b: Builder, node: ir.Node) -> None:
    """x != x, as NOT (x == x)."""
    x, out = node.inputs[0], node.outputs[0]
    same = temp_like(b, static_shape(out), np.bool_, "equal")
    b.emit("Compare", [x, x], [same], {"op": CompareOp.EQUAL})
    b.emit("Bitwise", [same, b.constant(np.array(True), f"{b.label}/true")], [out], {"op": BitwiseOp.XOR})


def is_inf(b: Builder, node: ir.Node) -> None:
    x, out = node.inputs[0], node.outputs[0]
    signs = [s for s, attr in ((np.inf, "detect_positive"), (-np.inf, "detect_negative"))
             if node.attributes.get_int(attr, 1)]
    if not signs:
        b.emit("Copy", [b.constant(np.zeros(static_shape(out), bool), f"{b.label}/none")], [out])
        return
    hits = []
    for sign in signs:
        target = out if len(signs) == 1 else temp_like(b, static_shape(out), np.bool_, f"is{sign}")
        inf = b.constant(np.array(sign, numpy_dtype(x)), f"{b.label}/{sign}")
        b.emit("Compare", [x, inf], [target], {"op": CompareOp.EQUAL})
        hits.append(target)
    if len(hits) == 2:
        b.emit("Bitwise", hits, [out], {"op": BitwiseOp.OR})


def trilu(b: Builder, node: ir.Node) -> None:
    """Where(mask, x, 0); the mask is a constant, or j - i compared with a run-time k."""
    x, out = node.inputs[0], node.outputs[0]
    shape, dtype = static_shape(x), numpy_dtype(x)
    if len(shape) < 2:
        raise Unsupported("Trilu needs a rank >= 2 input")
    rows, cols = shape[-2:]
    upper = node.attributes.get_int("upper", 1)
    diagonal = np.arange(cols)[None, :] - np.arange(rows)[:, None]  # j - i
    k_value = input_at(node, 1)
    if k_value is None or k_value.const_value is not None:
        k = 0 if k_value is None else int(const_array(k_value).reshape(-1)[0])
        mask = b.constant(diagonal >= k if upper else diagonal <= k, f"{b.label}/mask")
    else:
        mask = temp_like(b, (rows, cols), np.bool_, "mask")
        k_scalar = b.reshaped(k_value, (), f"{b.label}/k")
        b.emit("Compare", [b.constant(diagonal.astype(np.int64), f"{b.label}/j-i"), k_scalar], [mask],
               {"op": CompareOp.GREATER_EQUAL if upper else CompareOp.LESS_EQUAL})
    b.emit("Where", [mask, x, b.constant(np.zeros((), dtype), f"{b.label}/zero")], [out])


def run_time_positions(b: Builder, depth: ir.Value, declared: int, shape) -> int:
    """0 .. depth - 1 as int64 in shape: Range(0, depth, 1), which fails at run time unless depth is the declared one."""
    dtype = numpy_dtype(depth)
    if dtype not in (np.float32, np.int64, np.int32):
        raise Unsupported(f"a run-time depth of dtype {dtype} (float32, int64 or int32 only)")
    count = temp_like(b, (declared,), dtype, "count")
    b.emit("Range", [b.constant(np.array(0, dtype), f"{b.label}/0"), b.reshaped(depth, (), f"{b.label}/depth"),
                     b.constant(np.array(1, dtype), f"{b.label}/1")], [count])
    positions = temp_like(b, shape, np.int64, "positions")
    b.emit("Copy" if dtype == np.int64 else "Cast", [count], [positions])
    return positions


def one_hot(b: Builder, node: ir.Node) -> None:
    """on where (index mod depth, for index in [-depth, depth)) equals the position along axis, else off."""
    indices, values, out = node.inputs[0], node.inputs[2], node.outputs[0]
    out_shape = static_shape(out)
    axis = axis_of(node.attributes.get_int("axis", -1), len(out_shape))
    depth = out_shape[axis]
    given = const_input(node, 1, "depth") if node.inputs[1].const_value is not None else None
    if given is not None and int(np.asarray(given).reshape(-1)[0]) != depth:
        raise Unsupported(f"depth {given} differs from the output's dim {depth}")
    index_shape = static_shape(indices)
    expanded = tuple(index_shape[:axis]) + (1,) + tuple(index_shape[axis:])
    as_int = temp_like(b, expanded, np.int64, "indices")  # with the one-hot axis inserted
    b.emit("Cast" if numpy_dtype(indices) != np.int64 else "Copy", [indices], [as_int])
    indices = as_int
    wrapped = temp_like(b, expanded, np.int64, "wrapped")
    b.emit("Binary", [indices, b.constant(np.array(depth, np.int64), f"{b.label}/depth")], [wrapped],
           {"op": BinaryOp.MOD, "activation": 0})  # -1 -> depth - 1; out-of-range indices are masked below
    along_axis = [-1 if d == axis else 1 for d in range(len(out_shape))]
    positions = b.constant(np.arange(depth, dtype=np.int64).reshape(along_axis), f"{b.label}/positions")
    if given is None:
        positions = run_time_positions(b, node.inputs[1], depth, [depth if n == -1 else n for n in along_axis])
    hit = temp_like(b, out_shape, np.bool_, "hit")
    b.emit("Compare", [wrapped, positions], [hit], {"op": CompareOp.EQUAL})
    in_range = []
    for op, bound in ((CompareOp.GREATER_EQUAL, -depth), (CompareOp.LESS, depth)):
        flag = temp_like(b, expanded, np.bool_, f"range{len(in_range)}")
        b.emit("Compare", [indices, b.constant(np.array(bound, np.int64), f"{b.label}/bound")], [flag], {"op": op})
        in_range.append(flag)
    valid = temp_like(b, expanded, np.bool_, "valid")
    b.emit("Bitwise", in_range, [valid], {"op": BitwiseOp.AND})
    selected = temp_like(b, out_shape, np.bool_, "selected")
    b.emit("Bitwise", [hit, valid], [selected], {"op": BitwiseOp.AND})
    dtype = numpy_dtype(values)
    off, on = (temp_like(b, (), dtype, name) for name in ("off", "on"))
    b.emit("Gather", [values, b.constant(np.array(0, np.int64), f"{b.label}/0")], [off], {"axis": 0})
    b.emit("Gather", [values, b.constant(np.array(1, np.int64), f"{b.label}/1")], [on], {"axis": 0})
    b.emit("Where", [selected, on, off], [out])


RULES = {
    **{op: compare for op in COMPARE},
    **{op: bitwise for op in BITWISE}, "BitShift": bitwise, "Not": invert, "BitwiseNot": invert,
    "Where": where, "Clip": clip, "Mean": mean, "IsNaN": is_nan, "IsInf": is_inf, "Trilu": trilu,
    "OneHot": one_hot,
}
