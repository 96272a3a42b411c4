"""Lowering rules for element-wise ops, activations, reductions and casts."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from sparsec.activations import activation_of
from sparsec.contract.schema import Activation, ArgKind, BinaryOp, ReduceAlgo, ReduceKind, UnaryOp
from sparsec.lower.builder import (Builder, Unsupported, axis_of, const_input, fused_activation, input_at, numpy_dtype,
                                   rank, static_shape)
from sparsec.passes.util import const_array

BINARY = {"Add": BinaryOp.ADD, "Sub": BinaryOp.SUB, "Mul": BinaryOp.MUL, "Div": BinaryOp.DIV, "Pow": BinaryOp.POW,
          "Max": BinaryOp.MAX, "Min": BinaryOp.MIN, "PRelu": BinaryOp.PRELU, "Sum": BinaryOp.ADD,
          "FusedAdd": BinaryOp.ADD}


def binary(b: Builder, node: ir.Node) -> None:
    op = BINARY.get(node.op_type)
    if node.op_type == "Mod":
        op = BinaryOp.FMOD if node.attributes.get_int("fmod", 0) else BinaryOp.MOD
    if op == BinaryOp.PRELU and node.outputs[0].dtype != ir.DataType.FLOAT:
        raise Unsupported(f"{node.op_type} runs on float32 only (this node is {node.outputs[0].dtype})")
    if op == BinaryOp.POW and node.inputs[0].dtype != node.inputs[1].dtype:
        raise Unsupported(f"Pow of {node.inputs[0].dtype} by {node.inputs[1].dtype}: sparsec takes operands of one "
                          "dtype (a converted exponent or base would not be exact)")
    act = fused_activation(node)
    inputs = list(node.inputs)
    if len(inputs) == 1:
        b.emit("Copy", inputs, [node.outputs[0]])
        return
    acc = inputs[0]
    out = node.outputs[0]
    for k, other in enumerate(inputs[1:], start=1):  # variadic Sum/Max/Min: a chain of pairs
        last = k == len(inputs) - 1
        target = out if last else b.temp(static_shape(out), b.g.tensors[b.tensor(out)].dtype, f"{b.label}/{k}")
        b.emit("Binary", [acc, other], [target], {"op": op, **(act if last else {"activation": Activation.NONE})})
        acc = target


UNARY = {"Exp": UnaryOp.EXP, "Log": UnaryOp.LOG, "Sqrt": UnaryOp.SQRT, "Neg": UnaryOp.NEG, "Abs": UnaryOp.ABS,
         "Reciprocal": UnaryOp.RECIPROCAL, "Erf": UnaryOp.ERF, "Floor": UnaryOp.FLOOR, "Ceil": UnaryOp.CEIL,
         "Round": UnaryOp.ROUND, "Sin": UnaryOp.SIN, "Cos": UnaryOp.COS, "Sign": UnaryOp.SIGN, "Tan": UnaryOp.TAN,
         "Asin": UnaryOp.ASIN, "Acos": UnaryOp.ACOS, "Atan": UnaryOp.ATAN, "Sinh": UnaryOp.SINH, "Cosh": UnaryOp.COSH,
         "Asinh": UnaryOp.ASINH, "Acosh": UnaryOp.ACOSH, "Atanh": UnaryOp.ATANH}


def unary(b: Builder, node: ir.Node) -> None:
    b.emit("Unary", [node.inputs[0]], [node.outputs[0]], {"op": UNARY[node.op_type]})


def activation(b: Builder, node: ir.Node) -> None:
    act = activation_of(node)
    if act is None:
        raise Unsupported("Clip bounds must be constant")
    kind, a, b_param = act
    b.emit("Activation", [node.inputs[0]], [node.outputs[0]], {"activation": kind, "act_alpha": a, "act_beta": b_param})


REDUCE = {"ReduceMean": ReduceKind.MEAN, "ReduceSum": ReduceKind.SUM, "ReduceMax": ReduceKind.MAX,
          "ReduceMin": ReduceKind.MIN, "ReduceProd": ReduceKind.PROD, "ReduceL1": ReduceKind.L1,
          "ReduceL2": ReduceKind.L2, "ReduceSumSquare": ReduceKind.SUM_SQUARE,
          "ReduceLogSumExp": ReduceKind.LOG_SUM_EXP, "ReduceLogSum": ReduceKind.LOG_SUM,
          "GlobalAveragePool": ReduceKind.MEAN,
          "GlobalMaxPool": ReduceKind.MAX}


def reduce_algorithm(shape, axes: set[int], kind: ReduceKind) -> ReduceAlgo:
    """Row kernels when every reduced axis (of size > 1) follows every kept one: one contiguous row per output."""
    reducing, rows = False, all(d > 0 for d in shape)
    for d, extent in enumerate(shape):
        if extent == 1:
            continue
        rows &= not (reducing and d not in axes)
        reducing |= d in axes
    if rows and kind == ReduceKind.MEAN:
        return ReduceAlgo.ROW_MEAN
    if rows and kind in (ReduceKind.SUM, ReduceKind.MAX, ReduceKind.MIN):
        return ReduceAlgo.ROWS
    return ReduceAlgo.GENERIC


INTEGER_REDUCE = {ReduceKind.SUM, ReduceKind.PROD, ReduceKind.MAX, ReduceKind.MIN, ReduceKind.L1, ReduceKind.SUM_SQUARE}


def reduce(b: Builder, node: ir.Node) -> None:
    x = node.inputs[0]
    shape = static_shape(x)
    kind = REDUCE[node.op_type]
    dtype = numpy_dtype(x)
    bool_ok = kind in (ReduceKind.MAX, ReduceKind.MIN)
    if dtype != np.float32 and (kind not in INTEGER_REDUCE or (dtype == np.bool_ and not bool_ok)):
        raise Unsupported(f"{node.op_type} of {dtype} input: sparsec computes it on float32 only")
    flags = {"keepdims": node.attributes.get_int("keepdims", 1),
             "noop_with_empty_axes": node.attributes.get_int("noop_with_empty_axes", 0)}
    if node.op_type.startswith("Global"):
        axes = list(range(2, len(shape)))
    else:
        axes = node.attributes.get_ints("axes", None)
        if axes is None and input_at(node, 1) is not None and const_array(node.inputs[1]) is None:
            static_shape(node.outputs[0])  # the run-time axes must give this shape (the runtime checks)
            b.emit("Reduce", [x, node.inputs[1]], [node.outputs[0]],
                   {"kind": kind, "algorithm": ReduceAlgo.GENERIC, "axes_mask": 0, **flags})
            return
        if axes is None:
            data = const_input(node, 1, "axes")
            axes = [] if data is None else data.reshape(-1).tolist()
        if not axes:
            if flags["noop_with_empty_axes"]:
                b.emit("Copy", [x], [node.outputs[0]])
                return
            axes = list(range(len(shape)))
    axes = {axis_of(int(a), len(shape)) for a in axes}
    algorithm = reduce_algorithm(shape, axes, kind) if dtype == np.float32 else ReduceAlgo.GENERIC
    b.emit("Reduce", [x], [node.outputs[0]], {"kind": kind, "algorithm": algorithm,
                                              "axes_mask": sum(1 << a for a in axes), **flags})


def arg_reduce(b: Builder, node: ir.Node) -> None:
    x = node.inputs[0]
    b.emit("ArgReduce", [x], [node.outputs[0]],
           {"kind": ArgKind.MAX if node.op_type == "ArgMax" else ArgKind.MIN,
            "axis": axis_of(node.attributes.get_int("axis", 0), rank(x)),
            "select_last_index": node.attributes.get_int("select_last_index", 0)})


def cast(b: Builder, node: ir.Node) -> None:
    b.emit("Cast", [node.inputs[0]], [node.outputs[0]])


ACTIVATIONS = ["Relu", "Sigmoid", "Tanh", "HardSwish", "HardSigmoid", "LeakyRelu", "Elu", "Softplus", "Gelu",
               "Selu", "Celu", "ThresholdedRelu", "Shrink", "Softsign", "Mish", "Swish",
               "Activation"]  # Clip: rules_logic (integer and run-time bounds too)
RULES = {
    **{op: binary for op in [*BINARY, "Mod"]},
    **{op: unary for op in UNARY},
    **{op: activation for op in ACTIVATIONS},
    **{op: reduce for op in REDUCE},
    "ArgMax": arg_reduce, "ArgMin": arg_reduce, "Cast": cast,
}
