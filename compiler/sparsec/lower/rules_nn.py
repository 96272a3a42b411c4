"""Lowering rules for neural-network ops: convolution, matmul, pooling, normalisation, softmax."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from sparsec.contract.schema import Activation, BinaryOp, ConvAlgo, PoolKind, SoftmaxMode, im2col_scratch_bytes
from sparsec.lower.builder import (Builder, Unsupported, axis_of, const_input, fused_activation, input_at, rank,
                                   spatial_pads, static_shape)
from sparsec.passes.util import const_array


def conv_algorithm(shape_x, shape_w, group: int, strides, pads) -> ConvAlgo:
    """Depthwise (3x3 or any window), 1x1 as GEMM on the input itself, else banded im2col + GEMM."""
    channels, outputs, kh, kw = shape_x[1], shape_w[0], shape_w[2], shape_w[3]
    if group == channels == outputs:
        return ConvAlgo.DEPTHWISE_3X3 if (kh, kw) == (3, 3) else ConvAlgo.DEPTHWISE
    if (kh, kw) == (1, 1) and list(strides) == [1, 1] and not any(pads):
        return ConvAlgo.GEMM_1X1
    return ConvAlgo.IM2COL


def conv(b: Builder, node: ir.Node) -> None:
    x, w, y = node.inputs[0], node.inputs[1], node.outputs[0]
    if rank(x) != 4:
        raise Unsupported(f"only 2-D convolution is supported (input rank {rank(x)})")
    shape_x, shape_w, shape_y = static_shape(x), static_shape(w), static_shape(y)
    strides = node.attributes.get_ints("strides", [1, 1])
    dilations = node.attributes.get_ints("dilations", [1, 1])
    group = node.attributes.get_int("group", 1)
    if group < 1 or shape_x[1] != shape_w[1] * group or shape_w[0] % group:
        raise Unsupported(f"weight {list(shape_w)} does not fit input {list(shape_x)} with group {group}")
    pads = spatial_pads(node, shape_x[2:], shape_w[2:], strides, dilations)
    algorithm = conv_algorithm(shape_x, shape_w, group, strides, pads)
    scratch = (im2col_scratch_bytes(shape_x[1] // group, shape_w[2], shape_w[3], shape_y[2], shape_y[3])
               if algorithm == ConvAlgo.IM2COL else 0)
    b.emit("Conv", [x, w, input_at(node, 2)], [y],
           {"algorithm": algorithm, "group": group, "strides": strides, "pads": pads, "dilations": dilations,
            **fused_activation(node)}, scratch)


def gemm(b: Builder, node: ir.Node) -> None:
    a_value, b_value, c_value = node.inputs[0], node.inputs[1], input_at(node, 2)
    alpha, beta = node.attributes.get_float("alpha", 1.0), node.attributes.get_float("beta", 1.0)
    shape_a = static_shape(a_value)
    a = a_value
    if node.attributes.get_int("transA", 0):
        a = b.temp(shape_a[::-1], np.float32, f"{b.label}/A_t")
        b.emit("Transpose", [a_value], [a], {"perm": [1, 0]})
    weight = const_array(b_value)
    trans_b = node.attributes.get_int("transB", 0)
    if weight is None:
        if trans_b or alpha != 1.0:
            raise Unsupported("a run-time B needs transB=0 and alpha=1")
        weight_id = b_value
    else:
        weight_id = b.constant((weight.T if trans_b else weight) * np.float32(alpha), f"{b_value.name}/packed")
    n = static_shape(node.outputs[0])[1]
    bias_id, add_c = None, None
    c = const_array(c_value) if c_value is not None else None
    if c is not None and c.size in (1, n) and (c.ndim < 2 or c.shape[0] == 1):
        bias_id = b.constant(np.broadcast_to(c.reshape(-1) * np.float32(beta), (n,)).astype(np.float32), f"{b.label}/bias")
    elif c_value is not None:
        if beta != 1.0 and c is None:
            raise Unsupported("a run-time C needs beta=1")
        add_c = c_value if c is None else b.constant((c * np.float32(beta)).astype(np.float32), f"{b.label}/C")
    act = fused_activation(node)
    if add_c is None:
        b.emit("MatMul", [a, weight_id, bias_id], [node.outputs[0]], act)
        return
    y = b.temp(static_shape(node.outputs[0]), np.float32, f"{b.label}/AB")
    b.emit("MatMul", [a, weight_id, None], [y], {"activation": Activation.NONE})
    b.emit("Binary", [y, add_c], [node.outputs[0]], {"op": BinaryOp.ADD, **act})


def matmul(b: Builder, node: ir.Node) -> None:
    a, w, y = node.inputs[0], node.inputs[1], node.outputs[0]
    sa, sw = static_shape(a), static_shape(w)
    act = fused_activation(node)
    bias = input_at(node, 2)
    bias_id = b.constant(const_array(bias).reshape(-1), f"{bias.name}/flat") if bias is not None else None
    if len(sa) > 1 and len(sw) > 1:
        b.emit("MatMul", [a, w, bias_id], [y], {**act, "trans_a": node.attributes.get_int("trans_a", 0)})
        return
    # numpy semantics for 1-D operands: [K] acts as [1, K] (left) or [K, 1] (right), then that axis drops.
    a2 = sa if len(sa) > 1 else (1,) + sa
    w2 = sw if len(sw) > 1 else sw + (1,)
    a_id = b.reshaped(a, a2, f"{b.label}/a2d") if a2 != sa else a
    w_id = b.reshaped(w, w2, f"{b.label}/b2d") if w2 != sw else w
    out2 = tuple(np.broadcast_shapes(a2[:-2], w2[:-2])) + (a2[-2], w2[-1])
    tmp = b.temp(out2, np.float32, f"{b.label}/y2d")
    b.emit("MatMul", [a_id, w_id, bias_id], [tmp], act)
    b.emit("Copy", [tmp], [y])


def pool(b: Builder, node: ir.Node) -> None:
    x = node.inputs[0]
    if rank(x) != 4:
        raise Unsupported(f"only 2-D pooling is supported (input rank {rank(x)})")
    kernel = node.attributes.get_ints("kernel_shape")
    strides = node.attributes.get_ints("strides", [1, 1])
    dilations = node.attributes.get_ints("dilations", [1, 1])
    pads = spatial_pads(node, static_shape(x)[2:], kernel, strides, dilations)
    b.emit("Pool", [x], [node.outputs[0]],
           {"kind": PoolKind.MAX if node.op_type == "MaxPool" else PoolKind.AVERAGE, "kernel": kernel,
            "strides": strides, "pads": pads, "dilations": dilations,
            "count_include_pad": node.attributes.get_int("count_include_pad", 0)})


def softmax(b: Builder, node: ir.Node) -> None:
    axis = axis_of(node.attributes.get_int("axis", -1), rank(node.inputs[0]))
    mode = {"Softmax": SoftmaxMode.SOFTMAX, "LogSoftmax": SoftmaxMode.LOG_SOFTMAX, "Hardmax": SoftmaxMode.HARDMAX}
    b.emit("Softmax", [node.inputs[0]], [node.outputs[0]], {"axis": axis, "mode": mode[node.op_type]})


def layer_norm(b: Builder, node: ir.Node) -> None:
    axis = axis_of(node.attributes.get_int("axis", -1), rank(node.inputs[0]))
    norm_shape = static_shape(node.inputs[0])[axis:]
    scale = b.reshaped(node.inputs[1], norm_shape, f"{b.label}/scale")
    bias = input_at(node, 2)
    bias_id = b.reshaped(bias, norm_shape, f"{b.label}/bias") if bias is not None else None
    b.emit("LayerNorm", [node.inputs[0], scale, bias_id], [node.outputs[0]],
           {"axis": axis, "epsilon": node.attributes.get_float("epsilon", 1e-5)})


def batch_norm(b: Builder, node: ir.Node) -> None:
    if node.attributes.get_int("training_mode", 0):
        raise Unsupported("training-mode BatchNormalization is not supported")
    gamma, beta, mean, var = (const_input(node, i, "BatchNorm parameters") for i in range(1, 5))
    scale = gamma / np.sqrt(var + node.attributes.get_float("epsilon", 1e-5))
    shift = beta - mean * scale
    b.emit("ChannelAffine",
           [node.inputs[0], b.constant(scale.astype(np.float32), f"{b.label}/scale"),
            b.constant(shift.astype(np.float32), f"{b.label}/shift")],
           [node.outputs[0]], {"activation": Activation.NONE})


def group_norm(b: Builder, node: ir.Node) -> None:
    channels = static_shape(node.inputs[0])[1]
    scale, bias = const_input(node, 1, "scale"), const_input(node, 2, "bias")
    groups = channels if node.op_type == "InstanceNormalization" else node.attributes.get_int("num_groups")
    if scale.size == groups and groups != channels:  # opset 18 GroupNormalization: one value per group
        scale, bias = np.repeat(scale, channels // groups), np.repeat(bias, channels // groups)
    b.emit("GroupNorm",
           [node.inputs[0], b.constant(scale.astype(np.float32).reshape(-1), f"{b.label}/scale"),
            b.constant(bias.astype(np.float32).reshape(-1), f"{b.label}/bias")],
           [node.outputs[0]], {"groups": groups, "epsilon": node.attributes.get_float("epsilon", 1e-5)})


RULES = {
    "Conv": conv, "FusedConv": conv, "Gemm": gemm, "FusedGemm": gemm, "MatMul": matmul, "FusedMatMul": matmul,
    "MaxPool": pool, "AveragePool": pool, "Softmax": softmax, "LogSoftmax": softmax, "Hardmax": softmax,
    "LayerNormalization": layer_norm, "BatchNormalization": batch_norm, "InstanceNormalization": group_norm,
    "GroupNormalization": group_norm,
}
