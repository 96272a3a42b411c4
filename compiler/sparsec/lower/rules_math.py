"""Lowering rules for losses (NegativeLogLikelihoodLoss, SoftmaxCrossEntropyLoss), linear algebra (Det) and
int8/uint8 quantization, composed of float32 run-time ops where that is exact."""

from __future__ import annotations

import math

import numpy as np
import onnx_ir as ir

from sparsec.contract.schema import (Activation, BinaryOp, LossReduction, ReduceAlgo, ReduceKind, SignalWindow,
                                     SoftmaxMode, UnaryOp)
from sparsec.lower.builder import Builder, Unsupported, axis_of, const_input, input_at, numpy_dtype, static_shape
from sparsec.passes.util import const_array

F32 = np.dtype(np.float32)
QUANT_TYPES = (np.dtype(np.uint8), np.dtype(np.int8))

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
    target = log_prob if log_prob is not None else b.temp(static_shape(scores), F32, f"{b.label}/log_prob")
    b.emit("Softmax", [scores], [target], {"axis": 1, "mode": SoftmaxMode.LOG_SOFTMAX})
    b.emit("NllLoss", [target, node.inputs[1], input_at(node, 2)], [node.outputs[0]], _loss_attrs(node))


def det(b: Builder, node: ir.Node) -> None:
    m = static_shape(node.inputs[0])[-1]
    b.emit("Det", [node.inputs[0]], [node.outputs[0]], scratch_bytes=m * m * 8)


def _op(b: Builder, runtime_op: str, inputs, shape, dtype, name: str, **attrs) -> int:
    """A new temporary written by one run-time op."""
    out = b.temp(shape, dtype, f"{b.label}/{name}")
    b.emit(runtime_op, inputs, [out], attrs)
    return out


def _binary(b: Builder, op: BinaryOp, x, y, shape, name: str, clip=None) -> int:
    act = {"activation": Activation.NONE} if clip is None else {
        "activation": Activation.CLIP, "act_alpha": clip[0], "act_beta": clip[1]}
    return _op(b, "Binary", [x, y], shape, F32, name, op=op, **act)


def _as_float(b: Builder, value: ir.Value, name: str):
    return value if numpy_dtype(value) == F32 else _op(b, "Cast", [value], static_shape(value), F32, name)


def _quant_param(b: Builder, node: ir.Node, value: ir.Value | None, x_shape, name: str):
    """A scale or zero point as float32, shaped to broadcast against x: per tensor, per axis or per block."""
    if value is None:
        return b.constant(np.float32(0.0), f"{b.label}/{name}")
    shape = static_shape(value)
    param = _as_float(b, value, f"{name}_f32")
    block = node.attributes.get_int("block_size", 0)
    if math.prod(shape) == 1 and block == 0:
        return param
    axis = axis_of(node.attributes.get_int("axis", 1), len(x_shape))
    tail = [1] * (len(x_shape) - axis - 1)
    if block == 0:
        if list(shape) != [x_shape[axis]]:
            raise Unsupported(f"{name} {list(shape)} is neither per tensor nor per axis {axis} of {list(x_shape)}")
        return _op(b, "Copy", [param], [x_shape[axis], *tail], F32, f"{name}_per_axis")
    if len(shape) != len(x_shape) or x_shape[axis] != shape[axis] * block:
        raise Unsupported(f"{name} {list(shape)} does not block axis {axis} of {list(x_shape)} by {block} evenly")
    split = [*shape[:axis + 1], 1, *shape[axis + 1:]]
    wide = _op(b, "Copy", [param], split, F32, f"{name}_split")
    wide = _op(b, "Expand", [wide], [*shape[:axis + 1], block, *shape[axis + 1:]], F32, f"{name}_blocks")
    return _op(b, "Copy", [wide], x_shape, F32, f"{name}_per_element")


def _quantize(b: Builder, x, scale, zero_point, shape, y: ir.Value) -> None:
    """y = saturate(round_half_even(x / scale) + zero_point), as onnxruntime computes it."""
    info = np.iinfo(numpy_dtype(y))
    scaled = _binary(b, BinaryOp.DIV, x, scale, shape, "scaled")
    rounded = _op(b, "Unary", [scaled], shape, F32, "rounded", op=UnaryOp.ROUND)
    shifted = _binary(b, BinaryOp.ADD, rounded, zero_point, shape, "shifted", clip=(info.min, info.max))
    b.emit("Cast", [shifted], [y])


def _check_quant(value: ir.Value, role: str) -> None:
    if numpy_dtype(value) not in QUANT_TYPES:
        raise Unsupported(f"{role} is {numpy_dtype(value)}: sparsec quantizes to uint8/int8 only")


def quantize_linear(b: Builder, node: ir.Node) -> None:
    x, y = node.inputs[0], node.outputs[0]
    _check_quant(y, "the output")
    if numpy_dtype(x) != F32 or numpy_dtype(node.inputs[1]) != F32:
        raise Unsupported("x and y_scale must be float32")
    shape = static_shape(x)
    scale = _quant_param(b, node, node.inputs[1], shape, "y_scale")
    _quantize(b, x, scale, _quant_param(b, node, input_at(node, 2), shape, "y_zero_point"), shape, y)


def dequantize_linear(b: Builder, node: ir.Node) -> None:
    x = node.inputs[0]
    _check_quant(x, "x")
    if numpy_dtype(node.outputs[0]) != F32:
        raise Unsupported("the output must be float32")
    shape = static_shape(x)
    centred = _binary(b, BinaryOp.SUB, _as_float(b, x, "x_f32"),
                      _quant_param(b, node, input_at(node, 2), shape, "x_zero_point"), shape, "centred")
    b.emit("Binary", [centred, _quant_param(b, node, node.inputs[1], shape, "x_scale")], [node.outputs[0]],
           {"op": BinaryOp.MUL, "activation": Activation.NONE})


def dynamic_quantize_linear(b: Builder, node: ir.Node) -> None:
    """uint8 with scale = (max(x, 0) - min(x, 0)) / 255 (1 when that is 0, as onnxruntime) and a rounded zero point."""
    x = node.inputs[0]
    shape = static_shape(x)
    everything = {"algorithm": ReduceAlgo.GENERIC, "axes_mask": (1 << len(shape)) - 1, "keepdims": 0,
                  "noop_with_empty_axes": 0}
    zero = b.constant(np.float32(0.0), f"{b.label}/zero")
    low = _op(b, "Reduce", [x], (), F32, "min", kind=ReduceKind.MIN, **everything)
    high = _op(b, "Reduce", [x], (), F32, "max", kind=ReduceKind.MAX, **everything)
    span = _binary(b, BinaryOp.SUB, _binary(b, BinaryOp.MAX, high, zero, (), "high"),
                   _binary(b, BinaryOp.MIN, low, zero, (), "low"), (), "span")
    unit = _binary(b, BinaryOp.SUB, b.constant(np.float32(1.0), f"{b.label}/one"),
                   _op(b, "Unary", [span], (), F32, "nonzero", op=UnaryOp.SIGN), (), "unit_if_zero")
    scale = node.outputs[1] if len(node.outputs) > 1 and node.outputs[1] is not None else b.temp((), F32, "scale")
    b.emit("Binary", [_binary(b, BinaryOp.DIV, span, b.constant(np.float32(255.0), f"{b.label}/255"), (), "step"),
                      unit], [scale], {"op": BinaryOp.ADD, "activation": Activation.NONE})
    low = _binary(b, BinaryOp.MIN, low, zero, (), "low0")
    low_steps = _binary(b, BinaryOp.DIV, low, scale, (), "low_steps")
    raw = _binary(b, BinaryOp.SUB, zero, low_steps, (), "zero_point_raw", clip=(0.0, 255.0))
    zero_point_f = _op(b, "Unary", [raw], (), F32, "zero_point", op=UnaryOp.ROUND)
    if len(node.outputs) > 2 and node.outputs[2] is not None:
        b.emit("Cast", [zero_point_f], [node.outputs[2]])
    _quantize(b, x, scale, zero_point_f, shape, node.outputs[0])


# Integer products summed in float32 are exact while every partial sum stays below 2^24.
EXACT_FLOAT_INTEGER = 1 << 24


def _centred(b: Builder, value: ir.Value, zero_point: ir.Value | None, zp_shape, name: str) -> int:
    """Cast(value) - zero_point (reshaped to zp_shape when per row/channel), in float32."""
    _check_quant(value, name)
    shape = static_shape(value)
    as_float = _op(b, "Cast", [value], shape, F32, f"{name}_f32")
    if zero_point is None:
        return as_float
    zp = _as_float(b, zero_point, f"{name}_zero_point_f32")
    if math.prod(static_shape(zero_point)) > 1:
        zp = _op(b, "Copy", [zp], zp_shape, F32, f"{name}_zero_point")
    return _binary(b, BinaryOp.SUB, as_float, zp, shape, f"{name}_centred")


def _check_exact_sum(terms: int) -> None:
    if terms * 255 * 255 > EXACT_FLOAT_INTEGER:
        raise Unsupported(f"sums of {terms} products of 8-bit values may exceed 2^24, where sparsec's float32 "
                          "accumulation stops being exact")


def _as_value(b: Builder, index: int) -> ir.Value:
    t = b.g.tensors[index]
    value = ir.Value(name=t.name, shape=ir.Shape(t.shape), type=ir.TensorType(ir.DataType.FLOAT))
    b.alias(value, index)
    return value


def matmul_integer(b: Builder, node: ir.Node) -> None:
    """(A - a_zero_point) @ (B - b_zero_point) in float32 (exact for these sums), cast to int32."""
    a, w, y = node.inputs[0], node.inputs[1], node.outputs[0]
    sa, sw = static_shape(a), static_shape(w)
    if len(sa) < 2 or len(sw) < 2:
        raise Unsupported("A and B must have rank >= 2")
    _check_exact_sum(sa[-1])
    a_f = _centred(b, a, input_at(node, 2), [sa[-2], 1], "A")
    w_f = _centred(b, w, input_at(node, 3), [sw[-1]], "B")
    product = _op(b, "MatMul", [a_f, w_f, None], static_shape(y), F32, "product", activation=Activation.NONE)
    b.emit("Cast", [product], [y])


def conv_integer(b: Builder, node: ir.Node) -> None:
    """Conv of (x - x_zero_point) and (w - w_zero_point) in float32 (exact for these sums), cast to int32."""
    from sparsec.lower.rules_nn import conv

    x, w, y = node.inputs[0], node.inputs[1], node.outputs[0]
    sw = static_shape(w)
    _check_exact_sum(math.prod(sw[1:]))
    x_f = _centred(b, x, input_at(node, 2), [], "x")
    w_f = _centred(b, w, input_at(node, 3), [sw[0], *[1] * (len(sw) - 1)], "w")
    as_conv = ir.Node("", "Conv", [_as_value(b, x_f), _as_value(b, w_f)], list(node.attributes.values()),
                      num_outputs=1, name=node.name)
    out = b.temp(static_shape(y), F32, f"{b.label}/float")
    b.alias(as_conv.outputs[0], out)
    as_conv.outputs[0].shape, as_conv.outputs[0].type = ir.Shape(static_shape(y)), ir.TensorType(ir.DataType.FLOAT)
    conv(b, as_conv)
    b.emit("Cast", [out], [y])


def dft(b: Builder, node: ir.Node) -> None:
    """DFT with a constant dft_length (or none) and a constant or run-time axis (any axis the shapes allow that
    gives the same length; the runtime checks the one it gets)."""
    x, y = node.inputs[0], node.outputs[0]
    sx, sy = static_shape(x), static_shape(y)
    inverse, onesided = node.attributes.get_int("inverse", 0), node.attributes.get_int("onesided", 0)
    given = const_input(node, 1, "dft_length")

    def length(d: int) -> int:
        return int(given) if given is not None else 2 * (sx[d] - 1) if inverse and onesided else sx[d]

    def fits(d: int) -> bool:
        n_out = length(d) // 2 + 1 if onesided and not inverse else length(d)
        return sy[d] == n_out and all(sx[e] == sy[e] for e in range(len(sx) - 1) if e != d)

    axis_value = input_at(node, 2)
    run_time_axis = axis_value is not None and const_array(axis_value) is None
    if run_time_axis:
        candidates = [d for d in range(len(sx) - 1) if fits(d)]
    else:
        default = node.attributes.get_int("axis", 1) if len(node.inputs) < 3 else -2
        candidates = [axis_of(int(const_input(node, 2, "axis", np.int64(default))), len(sx))]
    if not candidates or not fits(candidates[0]):
        raise Unsupported(f"no DFT axis turns {list(sx)} into {list(sy)}")
    b.emit("Dft", [x, axis_value if run_time_axis else None], [y],
           {"axis": candidates[0], "inverse": inverse, "onesided": onesided,
            "length": 0 if given is None else int(given)},
           scratch_bytes=16 * max(length(d) for d in candidates))


def stft(b: Builder, node: ir.Node) -> None:
    """STFT; frame_step and the frame length may be run-time values (the runtime checks they give the output)."""
    window, length = input_at(node, 2), input_at(node, 3)
    bins = static_shape(node.outputs[0])[2]
    onesided = node.attributes.get_int("onesided", 1)
    if window is not None:
        longest = static_shape(window)[0]
    elif length is not None and const_array(length) is not None:
        longest = int(const_array(length))
    else:  # the frame lengths that give this many bins
        longest = 2 * bins - 1 if onesided else bins
    b.emit("Stft", [node.inputs[0], node.inputs[1], window, length], [node.outputs[0]], {"onesided": onesided},
           scratch_bytes=16 * longest)


WINDOWS = {"HannWindow": SignalWindow.HANN, "HammingWindow": SignalWindow.HAMMING, "BlackmanWindow": SignalWindow.BLACKMAN}


def window(b: Builder, node: ir.Node) -> None:
    b.emit("Window", [node.inputs[0]], [node.outputs[0]],
           {"kind": WINDOWS[node.op_type], "periodic": node.attributes.get_int("periodic", 1)})


def _einsum_terms(equation: str, ranks: list[int]) -> tuple[list[str], str]:
    """Operand and output subscripts with "..." spelled out as letters the equation does not use."""
    equation = equation.replace(" ", "")
    inputs, arrow, output = equation.partition("->")
    terms = inputs.split(",")
    if len(terms) != len(ranks):
        raise Unsupported(f"equation '{equation}' has {len(terms)} operand(s), the node {len(ranks)}")
    spare = [c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz" if c not in equation]
    widths = [r - len(t.replace("...", "")) for t, r in zip(terms, ranks)]
    dots = "".join(spare[:max([w for t, w in zip(terms, widths) if "..." in t], default=0)])
    terms = [t.replace("...", dots[len(dots) - w:] if w > 0 else "") for t, w in zip(terms, widths)]
    if not arrow:  # implicit output: the ellipsis, then the letters used once, sorted
        letters = "".join(terms)
        output = dots + "".join(sorted(c for c in set(letters) if letters.count(c) == 1 and c not in dots))
    output = output.replace("...", dots)
    for t, r in zip(terms, ranks):
        if len(t) != r or len(set(t)) != len(t):
            raise Unsupported(f"subscripts '{t}' of a rank-{r} operand (a repeated index, a diagonal, is not "
                              "supported)")
    if set(output) - set("".join(terms)) or len(set(output)) != len(output):
        raise Unsupported(f"output subscripts '{output}' are not distinct letters of the operands")
    return terms, output


def einsum(b: Builder, node: ir.Node) -> None:
    """One or two float32 operands: sums, transposes and one batched MatMul (operand subscripts without repeats)."""
    operands = list(node.inputs)
    if not 1 <= len(operands) <= 2 or any(numpy_dtype(v) != F32 for v in operands):
        raise Unsupported("sparsec composes Einsum of one or two float32 operands")
    terms, output = _einsum_terms(node.attributes.get_string("equation"), [len(static_shape(v)) for v in operands])

    def shape_of(value) -> tuple[int, ...]:
        return b.g.tensors[value].shape if isinstance(value, int) else static_shape(value)

    def summed(value, term: str, keep: str):
        """value with its letters that are not in keep summed out, and the letters left."""
        rest = "".join(c for c in term if c in keep)
        if rest == term:
            return value, term
        shape = [n for c, n in zip(term, shape_of(value)) if c in keep]
        mask = sum(1 << i for i, c in enumerate(term) if c not in keep)
        return _op(b, "Reduce", [value], shape, F32, f"sum_{term}", kind=ReduceKind.SUM, algorithm=ReduceAlgo.GENERIC,
                   axes_mask=mask, keepdims=0, noop_with_empty_axes=0), rest

    def arranged(value, term: str, order: str, name: str):
        """value transposed from term's letter order to order's."""
        if term == order:
            return value
        shape = [shape_of(value)[term.index(c)] for c in order]
        return _op(b, "Transpose", [value], shape, F32, name, perm=[term.index(c) for c in order])

    y = node.outputs[0]
    if len(operands) == 1:
        value, term = summed(operands[0], terms[0], output)
        b.emit("Copy", [arranged(value, term, output, "transposed")], [y])
        return
    a, ta = summed(operands[0], terms[0], output + terms[1])
    w, tw = summed(operands[1], terms[1], output + terms[0])
    batch = "".join(c for c in output if c in ta and c in tw)
    left = "".join(c for c in ta if c in output and c not in tw)
    right = "".join(c for c in tw if c in output and c not in ta)
    inner = "".join(c for c in ta if c in tw and c not in output)
    size = {**dict(zip(tw, shape_of(w))), **dict(zip(ta, shape_of(a)))}
    if any(shape_of(w)[tw.index(c)] != size[c] for c in inner):
        raise Unsupported(f"contracted indices '{inner}' differ in size between the operands")

    def matrix(value, term: str, rows: str, cols: str, name: str) -> int:
        """value as [batch..., prod(rows), prod(cols)]."""
        value = arranged(value, term, batch + rows + cols, f"{name}_transposed")
        shape = [*shape_of(value)[:len(batch)], math.prod(size[c] for c in rows), math.prod(size[c] for c in cols)]
        return _op(b, "Copy", [value], shape, F32, f"{name}_matrix")

    lhs, rhs = matrix(a, ta, left, inner, "lhs"), matrix(w, tw, inner, right, "rhs")
    batch_dims = list(np.broadcast_shapes(shape_of(lhs)[:-2], shape_of(rhs)[:-2]))
    product = _op(b, "MatMul", [lhs, rhs, None], [*batch_dims, shape_of(lhs)[-2], shape_of(rhs)[-1]], F32, "product",
                  activation=Activation.NONE)
    unfolded = _op(b, "Copy", [product], [*batch_dims, *(size[c] for c in left + right)], F32, "unfolded")
    b.emit("Copy", [arranged(unfolded, batch + left + right, output, "output")], [y])


RULES = {"NegativeLogLikelihoodLoss": nll_loss, "SoftmaxCrossEntropyLoss": softmax_cross_entropy_loss, "Det": det,
         "QuantizeLinear": quantize_linear, "DequantizeLinear": dequantize_linear,
         "DynamicQuantizeLinear": dynamic_quantize_linear, "MatMulInteger": matmul_integer,
         "ConvInteger": conv_integer, "DFT": dft, "STFT": stft, "Einsum": einsum,
         **{op: window for op in WINDOWS}}
