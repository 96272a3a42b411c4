"""BatchNorm folding into the preceding Conv or Gemm."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from sparsec.naming import is_standard
from sparsec.passes.util import add_initializer, bypass, const_array, only_consumer


def _bn_scale_shift(bn: ir.Node) -> tuple[np.ndarray, np.ndarray] | None:
    params = [const_array(v) for v in bn.inputs[1:5]]
    if any(p is None for p in params) or len(bn.outputs) > 1 and any(o.uses() for o in bn.outputs[1:]):
        return None
    gamma, beta, mean, var = (p.astype(np.float64) for p in params)
    scale = gamma / np.sqrt(var + bn.attributes.get_float("epsilon", 1e-5))
    return scale, beta - mean * scale


def _fold_into_conv(conv: ir.Node, scale: np.ndarray, shift: np.ndarray) -> bool:
    weight = const_array(conv.inputs[1])
    bias = const_array(conv.inputs[2]) if len(conv.inputs) > 2 else None
    if weight is None or (len(conv.inputs) > 2 and conv.inputs[2] is not None and bias is None):
        return False
    bias = np.zeros(weight.shape[0]) if bias is None else bias.astype(np.float64)
    new_w = (weight * scale.reshape(-1, *[1] * (weight.ndim - 1))).astype(weight.dtype)
    new_b = (bias * scale + shift).astype(weight.dtype)
    graph = conv.graph
    conv.replace_input_with(1, add_initializer(graph, f"{conv.name}.weight_bn", new_w))
    if len(conv.inputs) < 3:
        conv.resize_inputs(3)
    conv.replace_input_with(2, add_initializer(graph, f"{conv.name}.bias_bn", new_b))
    return True


def _fold_into_gemm(gemm: ir.Node, scale: np.ndarray, shift: np.ndarray) -> bool:
    b = const_array(gemm.inputs[1])
    c = const_array(gemm.inputs[2]) if len(gemm.inputs) > 2 and gemm.inputs[2] is not None else np.zeros(1)
    if b is None or c is None or gemm.outputs[0].shape is None or len(gemm.outputs[0].shape) != 2:
        return False
    trans_b = gemm.attributes.get_int("transB", 0)
    beta = gemm.attributes.get_float("beta", 1.0)
    new_b = (b * (scale[:, None] if trans_b else scale[None, :])).astype(b.dtype)
    n = scale.shape[0]
    new_c = ((np.broadcast_to(c, c.shape[:-1] + (n,)) * beta) * scale + shift).astype(b.dtype)
    graph = gemm.graph
    gemm.replace_input_with(1, add_initializer(graph, f"{gemm.name}.B_bn", new_b))
    if len(gemm.inputs) < 3:
        gemm.resize_inputs(3)
    gemm.replace_input_with(2, add_initializer(graph, f"{gemm.name}.C_bn", new_c))
    gemm.attributes["beta"] = ir.AttrFloat32("beta", 1.0)
    return True


def fold_batchnorm(model: ir.Model) -> ir.Model:
    """Folds inference BatchNormalization into the Conv/Gemm producing its input (scaled weights, new bias)."""
    for bn in list(model.graph):
        if not is_standard(bn, "BatchNormalization"):
            continue
        producer = bn.inputs[0].producer()
        if not is_standard(producer) or only_consumer(bn.inputs[0]) is not bn:
            continue
        params = _bn_scale_shift(bn)
        if params is None:
            continue
        fold = {"Conv": _fold_into_conv, "Gemm": _fold_into_gemm}.get(producer.op_type)
        if fold and fold(producer, *params):
            bypass(bn, producer.outputs[0])
    return model
