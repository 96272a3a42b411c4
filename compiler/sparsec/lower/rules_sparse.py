"""Lowering of Conv / Gemm / MatMul with a constant weight to Spmm where the cost model (sparse_choice) says it pays.

Every such layer gets a row in the lowering's `layers` (the compile report): sparse with its format, density and
expected speed-up, or dense with the reason; a dense layer is lowered by rules_nn_export (any conv rank) or rules_nn.
"""

from __future__ import annotations

import math

import numpy as np
import onnx_ir as ir

from sparsec.artifact.format import SparseInfo
from sparsec.contract.schema import Activation, BinaryOp, ConvAlgo, SparseFormat, SpmmLayout
from sparsec.lower import rules_nn, rules_nn_export
from sparsec.lower.builder import Builder, fused_activation, input_at, spatial_pads, static_shape
from sparsec.lower.sparse_choice import LayerChoice, format_code, layer_choice
from sparsec.lower.sparse_pack import Packed, pack_blocked, pack_two_of_four
from sparsec.passes.util import const_array


def _record(b: Builder, node: ir.Node, weight: ir.Value | None, shape, choice: LayerChoice) -> None:
    b.g.layers.append({"node": b.label, "onnx_op": b.source_op, "weight": weight.name if weight is not None else "",
                       "shape": list(shape), **choice.to_dict()})


def _unless_off(b: Builder, structural: str | None) -> str | None:
    return structural or (None if b.sparse_kernels else "sparse kernels are off (--dense)")


def _pack(w2: np.ndarray, bias, n: int, fmt: str) -> Packed:
    code, mb = format_code(fmt)
    return pack_two_of_four(w2, bias, n) if code == SparseFormat.N_OF_M else pack_blocked(w2, bias, mb, n)


def _emit_spmm(b: Builder, x, y, packed: Packed, nonzeros: int, layout: SpmmLayout, node: ir.Node,
               conv_attrs: dict | None = None, scratch: int = 0, act: dict | None = None) -> None:
    name = f"{b.label}/spmm"
    values = b.constant(packed.values, f"{name}/values")
    block = (2, 4) if packed.format == SparseFormat.N_OF_M else (packed.mb, 1)
    b.g.tensors[values].sparse = SparseInfo(int(packed.format), block, (packed.M, packed.K), nonzeros)
    if packed.format == SparseFormat.BLOCKED:
        inputs = [x, values, b.constant(packed.deltas, f"{name}/deltas"),
                  b.constant(packed.nnz.view(np.int32), f"{name}/nnz"), None]
    else:
        inputs = [x, values, None, None, b.constant(packed.index, f"{name}/index")]
    attrs = conv_attrs or {"kernel": [1, 1], "strides": [1, 1], "pads": [0, 0, 0, 0], "dilations": [1, 1]}
    b.emit("Spmm", inputs, [y], {"format": packed.format, "mb": packed.mb, "first": packed.first, "layout": layout,
                                 **attrs, **(act or fused_activation(node))}, scratch)


def conv(b: Builder, node: ir.Node) -> None:
    x, weight, y = node.inputs[0], node.inputs[1], node.outputs[0]
    w = const_array(weight)
    bias_value = input_at(node, 2)
    bias = const_array(bias_value) if bias_value is not None else None
    group = node.attributes.get_int("group", 1)
    shape_x = static_shape(x)
    structural = ("weight is not constant" if w is None
                  else "not a 2-D convolution" if len(shape_x) != 4 or w.ndim != 4
                  else "depthwise" if group == shape_x[1] == w.shape[0] and group > 1
                  else f"grouped convolution (group {group})" if group != 1
                  else "bias is not constant" if bias_value is not None and bias is None else None)
    shape_y = static_shape(y)
    n = math.prod(shape_y[2:]) if len(shape_y) == 4 else 0
    w2 = w.reshape(w.shape[0], -1) if w is not None else None
    choice = layer_choice(w2, n, b.target, _unless_off(b, structural))
    _record(b, node, weight, w2.shape if w2 is not None else (), choice)
    if not choice.sparse:
        return rules_nn_export.conv(b, node)
    strides = node.attributes.get_ints("strides", [1, 1])
    dilations = node.attributes.get_ints("dilations", [1, 1])
    pads = spatial_pads(node, shape_x[2:], w.shape[2:], strides, dilations)
    one_by_one = rules_nn.conv_algorithm(shape_x, w.shape, group, strides, pads) == ConvAlgo.GEMM_1X1
    layout = SpmmLayout.CHW if one_by_one else SpmmLayout.IM2COL
    scratch = 0 if one_by_one else w2.shape[1] * n * 4  # the whole column matrix: deltas are scaled to its rows
    _emit_spmm(b, x, y, _pack(w2, bias, n, choice.format), int(np.count_nonzero(w2)), layout, node,
               {"kernel": list(w.shape[2:]), "strides": strides, "pads": pads, "dilations": dilations}, scratch)


def _rows_choice(b: Builder, node: ir.Node, weight: ir.Value, w2, pixels: int, structural: str | None) -> LayerChoice:
    choice = layer_choice(w2, pixels, b.target, _unless_off(b, structural))
    _record(b, node, weight, w2.shape if w2 is not None else (), choice)
    return choice


def _emit_rows(b: Builder, node: ir.Node, a, y, w2, bias, fmt: str, pixels: int, act: dict | None = None) -> None:
    """y[..., M] = a[..., K] W^T (+ bias): Spmm on the transposes (in scratch)."""
    M, K = w2.shape
    _emit_spmm(b, a, y, _pack(w2, bias, pixels, fmt), int(np.count_nonzero(w2)), SpmmLayout.ROWS, node,
               scratch=(K + M) * pixels * 4, act=act)


def gemm(b: Builder, node: ir.Node) -> None:
    """Y = alpha A' B' + beta C: a per-column C is the Spmm's bias, any other C an Add after it."""
    a, weight, c_value, y = node.inputs[0], node.inputs[1], input_at(node, 2), node.outputs[0]
    w = const_array(weight)
    alpha, beta = node.attributes.get_float("alpha", 1.0), node.attributes.get_float("beta", 1.0)
    rows, n = static_shape(y)
    c = const_array(c_value) if c_value is not None else None
    bias_vector = c_value is None or (c is not None and c.size in (1, n) and (c.ndim < 2 or c.shape[0] == 1))
    structural = ("weight is not constant" if w is None
                  else "a run-time C needs beta=1" if c_value is not None and c is None and beta != 1.0 else None)
    w2 = None if w is None else (w if node.attributes.get_int("transB", 0) else w.T) * np.float32(alpha)
    choice = _rows_choice(b, node, weight, w2, rows, structural)
    if not choice.sparse:
        return rules_nn_export.gemm(b, node)
    if node.attributes.get_int("transA", 0):
        a = b.temp(static_shape(a)[::-1], np.float32, f"{b.label}/A_t")
        b.emit("Transpose", [node.inputs[0]], [a], {"perm": [1, 0]})
    if bias_vector:
        bias = np.broadcast_to(c.reshape(-1) * np.float32(beta), (n,)) if c is not None else None
        return _emit_rows(b, node, a, y, w2, bias, choice.format, rows)
    product = b.temp((rows, n), np.float32, f"{b.label}/AB")
    _emit_rows(b, node, a, product, w2, None, choice.format, rows, {"activation": Activation.NONE})
    add_c = c_value if c is None else b.constant((c * np.float32(beta)).astype(np.float32), f"{b.label}/C")
    b.emit("Binary", [product, add_c], [y], {"op": BinaryOp.ADD, **fused_activation(node)})


def matmul(b: Builder, node: ir.Node) -> None:
    a, weight = node.inputs[0], node.inputs[1]
    w = const_array(weight)
    bias_value = input_at(node, 2)
    structural = ("weight is not constant" if w is None
                  else "weight is not a matrix (batched or 1-D)" if w.ndim != 2
                  else "A is transposed" if node.attributes.get_int("trans_a", 0) else None)
    pixels = math.prod(static_shape(a)[:-1])
    choice = _rows_choice(b, node, weight, w.T if structural is None else None, pixels, structural)
    if not choice.sparse:
        return rules_nn.matmul(b, node)
    bias = const_array(bias_value).reshape(-1) if bias_value is not None else None
    _emit_rows(b, node, a, node.outputs[0], w.T, bias, choice.format, pixels)


# Layers whose weights are sparse enough run here; the dense ones go on to rules_nn_export / rules_nn.
OVERRIDES = ("Conv", "FusedConv", "Gemm", "FusedGemm", "MatMul", "FusedMatMul")
RULES = {"Conv": conv, "FusedConv": conv, "Gemm": gemm, "FusedGemm": gemm, "MatMul": matmul, "FusedMatMul": matmul}
