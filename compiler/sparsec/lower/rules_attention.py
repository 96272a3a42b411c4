"""Lowering rules for transformer ops: Attention, LinearAttention, RotaryEmbedding, RMSNormalization, SwiGLU,
TensorScatter, CausalConvWithState (the onnx reference, onnx/reference/ops/op_<name>.py, defines the semantics matched here)."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from sparsec.contract.schema import Activation, BinaryOp
from sparsec.lower.builder import Builder, Unsupported, axis_of, input_at, numpy_dtype, static_shape
from sparsec.lower.rules_nn import conv_algorithm
from sparsec.passes.util import const_array

_HEADS_PERM = [0, 2, 1, 3]  # [B, S, H, D] <-> [B, H, S, D]
# The run-time softmax (float32 exps, summed and divided in double) matches either precision to float32 rounding.
_SOFTMAX_PRECISIONS = (0, ir.DataType.FLOAT.value, ir.DataType.DOUBLE.value)


ATTENTION_QUERY_BLOCK = 64  # ops_attention.cpp kQueryBlock


def attention_scratch_bytes(q_seq: int, kv_seq: int, head_dim: int) -> int:
    """Scratch of the Attention op: K^T of one kv head and a block of score rows (ops_attention.cpp)."""
    return (head_dim + min(q_seq, ATTENTION_QUERY_BLOCK)) * kv_seq * 4


def _read(value: ir.Value | None) -> bool:
    return value is not None and bool(value.uses() or value.is_graph_output())


def _split_heads(shape, heads: int, what: str) -> tuple[int, int, int, int]:
    """[B, S, heads*D] (rank 3, heads given) or [B, H, S, D] (rank 4) -> (B, H, S, D)."""
    if len(shape) == 4:
        return tuple(shape)
    if heads <= 0:
        raise Unsupported(f"3-D {what} needs a positive head count attribute")
    if shape[2] % heads:
        raise Unsupported(f"{what}'s hidden size {shape[2]} is not a multiple of {heads} heads")
    return shape[0], heads, shape[1], shape[2] // heads


def _to_heads(b: Builder, value: ir.Value, bhsd, out=None):
    """value as [B, H, S, D] (written to out when given): a rank-3 [B, S, H*D] is reshaped and transposed."""
    if len(static_shape(value)) == 4:
        if out is not None:
            b.emit("Copy", [value], [out])
        return out if out is not None else value
    batch, heads, seq, dim = bhsd
    split = b.reshaped(value, (batch, seq, heads, dim), f"{b.label}/{value.name}/split")
    out = out if out is not None else b.temp(bhsd, np.float32, f"{b.label}/{value.name}/heads")
    b.emit("Transpose", [split], [out], {"perm": _HEADS_PERM})
    return out


def _check_mask(mask: ir.Value, target) -> None:
    shape = static_shape(mask)
    if not 1 <= len(shape) <= 4 or shape[-1] > target[3]:
        raise Unsupported(f"attn_mask {list(shape)} does not broadcast to [B, q_heads, Sq, total_kv] {list(target)}")
    for n, want in zip(shape[-2::-1], target[-2::-1]):
        if n not in (1, want):
            raise Unsupported(f"attn_mask {list(shape)} does not broadcast to [B, q_heads, Sq, total_kv] {list(target)}")


def attention(b: Builder, node: ir.Node) -> None:
    """Attention-23/24/25: one fused run-time op; the KV cache concatenation and 3-D head splitting around it."""
    q, k, v = node.inputs[:3]
    mask, past_k, past_v, nonpad = (input_at(node, i) for i in range(3, 7))
    y, present_k, present_v, scores = (node.outputs[i] if len(node.outputs) > i else None for i in range(4))
    shapes = [static_shape(x) for x in (q, k, v)]
    if {len(s) for s in shapes} not in ({3}, {4}):
        raise Unsupported(f"Q, K and V must all be 3-D or all 4-D (got {[list(s) for s in shapes]})")
    a = node.attributes
    rank3 = len(shapes[0]) == 3
    hq_attr, hkv_attr = (a.get_int("q_num_heads", 0), a.get_int("kv_num_heads", 0)) if rank3 else (0, 0)
    (batch, hq, sq, d), (kb, hkv, skv, dk), (vb, hv, sv, dv) = (
        _split_heads(s, h, name) for s, h, name in zip(shapes, (hq_attr, hkv_attr, hkv_attr), "QKV"))
    if not (batch == kb == vb and hkv == hv and skv == sv and d == dk):
        raise Unsupported(f"Q {list(shapes[0])}, K {list(shapes[1])}, V {list(shapes[2])} do not fit together")
    if hq % hkv:
        raise Unsupported(f"q heads ({hq}) must be a multiple of kv heads ({hkv})")
    precision = a.get_int("softmax_precision", 0)
    if precision not in _SOFTMAX_PRECISIONS:
        raise Unsupported(f"softmax_precision {ir.DataType(precision).name} is below float32: sparsec's softmax "
                          "would not round like it")
    left, right = a.get_int("left_window_size", -1), a.get_int("right_window_size", -1)
    if left < -1 or right < -1:
        raise Unsupported("left_window_size and right_window_size must be -1 or nonnegative")
    if (past_k is None) != (past_v is None):
        raise Unsupported("past_key and past_value must be given together")
    if nonpad is not None and past_k is not None:
        raise Unsupported("nonpad_kv_seqlen cannot be combined with past_key/past_value")
    past_len = 0
    if past_k is None:
        k_in, v_in = k, v
        for value, out, bhsd in ((k, present_k, (batch, hkv, skv, dk)), (v, present_v, (batch, hkv, skv, dv))):
            if _read(out):
                _to_heads(b, value, bhsd, out)
    else:
        pk, pv = static_shape(past_k), static_shape(past_v)
        past_len = pk[2] if len(pk) == 4 else -1
        if pk != (batch, hkv, past_len, dk) or pv != (batch, hkv, past_len, dv):
            raise Unsupported(f"past_key {list(pk)} / past_value {list(pv)} must be [B, kv_heads, P, head size]")
        k_in, v_in = (b.temp((batch, hkv, past_len + skv, dim), np.float32, f"{b.label}/present_{name}")
                      if not _read(out) else b.tensor(out)
                      for name, out, dim in (("key", present_k, dk), ("value", present_v, dv)))
        for past, new, total, bhsd in ((past_k, k, k_in, (batch, hkv, skv, dk)), (past_v, v, v_in, (batch, hkv, skv, dv))):
            b.emit("Concat", [past, _to_heads(b, new, bhsd)], [total], {"axis": 2})
    total_kv = past_len + skv
    if mask is not None:
        _check_mask(mask, (batch, hq, sq, total_kv))
    scale = a.get_float("scale", None)
    scale = 1 / np.sqrt(d) if scale is None else scale
    outputs = [y]
    mode = a.get_int("qk_matmul_output_mode", 0)
    softcap = a.get_float("softcap", 0.0)
    if _read(scores):
        if mode == 0 and softcap > 0:
            raise Unsupported("qk_matmul_output_mode 0 with softcap: the spec and onnxruntime give the raw scores, the "
                              "onnx reference the softcapped ones (mode 1 is unambiguous)")
        outputs.append(scores)
    b.emit("Attention", [q, k_in, v_in, mask, nonpad], outputs,
           {"q_heads": hq, "kv_heads": hkv, "causal": a.get_int("is_causal", 0), "past_len": past_len,
            "left_window": left, "right_window": right, "qk_mode": mode,
            "scale_sqrt": float(np.float32(np.sqrt(scale))), "softcap": softcap},
           attention_scratch_bytes(sq, total_kv, d))


def rms_normalization(b: Builder, node: ir.Node) -> None:
    x, scale = node.inputs[0], node.inputs[1]
    if node.attributes.get_int("stash_type", 1) != ir.DataType.FLOAT.value:
        raise Unsupported("only stash_type float32 is supported (as in the onnx reference)")
    shape = static_shape(x)
    axis = axis_of(node.attributes.get_int("axis", -1), len(shape))
    norm_shape = shape[axis:]
    scale_shape = static_shape(scale)
    if np.broadcast_shapes(scale_shape, norm_shape) != norm_shape and np.broadcast_shapes(scale_shape, shape) != shape:
        raise Unsupported(f"scale {list(scale_shape)} does not broadcast to the input {list(shape)}")
    trimmed = scale_shape[next((i for i, n in enumerate(scale_shape) if n != 1), len(scale_shape)):]
    if len(trimmed) > len(norm_shape):
        raise Unsupported(f"scale {list(scale_shape)} varies along the axes before axis {axis}")
    data = const_array(scale)
    if data is not None:
        scale_id = b.constant(np.broadcast_to(data.reshape(trimmed), norm_shape).astype(np.float32), f"{b.label}/scale")
    elif tuple(trimmed) == tuple(norm_shape):
        scale_id = b.reshaped(scale, norm_shape, f"{b.label}/scale")
    else:
        scale_id = b.temp(norm_shape, np.float32, f"{b.label}/scale")
        b.emit("Expand", [b.reshaped(scale, trimmed, f"{b.label}/scale_trimmed")], [scale_id])
    b.emit("RmsNorm", [x, scale_id], [node.outputs[0]],
           {"axis": axis, "epsilon": node.attributes.get_float("epsilon", 1e-5)})


def rotary_embedding(b: Builder, node: ir.Node) -> None:
    x, cos_cache, sin_cache = node.inputs[:3]
    positions = input_at(node, 3)
    a = node.attributes
    batch, heads, seq, dim = _split_heads(static_shape(x), a.get_int("num_heads", 0), "input")
    rotary_dim = a.get_int("rotary_embedding_dim", 0) or dim
    if rotary_dim % 2 or rotary_dim > dim:
        raise Unsupported(f"rotary_embedding_dim {rotary_dim} must be even and at most the head size {dim}")
    want = (batch, seq, rotary_dim // 2)
    tables = []
    for cache in (cos_cache, sin_cache):
        cache_shape = static_shape(cache)
        if cache_shape[-1] != rotary_dim // 2:
            raise Unsupported(f"the last dim of {cache.name} {list(cache_shape)} must be rotary_embedding_dim/2 "
                              f"({rotary_dim // 2})")
        if positions is not None:
            table = b.temp(want, np.float32, f"{b.label}/{cache.name}")
            if len(cache_shape) != 2 or static_shape(positions) != want[:2]:
                raise Unsupported(f"with position_ids {list(static_shape(positions))}, {cache.name} must be 2-D "
                                  f"(got {list(cache_shape)}) and position_ids [B, S]")
            b.emit("Gather", [cache, positions], [table], {"axis": 0})
        elif cache_shape == want:
            table = cache
        elif len(cache_shape) == 3 and np.broadcast_shapes(cache_shape, want) == want:
            table = b.temp(want, np.float32, f"{b.label}/{cache.name}")
            b.emit("Expand", [cache], [table])
        else:
            raise Unsupported(f"without position_ids, {cache.name} {list(cache_shape)} must be [B, S, "
                              f"rotary_embedding_dim/2] = {list(want)}")
        tables.append(table)
    b.emit("Rotary", [x, *tables], [node.outputs[0]],
           {"heads": heads, "rotary_dim": rotary_dim, "interleaved": a.get_int("interleaved", 0)})


_UPDATE_RULES = {"linear": (False, False), "gated": (True, False), "delta": (False, True), "gated_delta": (True, True)}


def linear_attention(b: Builder, node: ir.Node) -> None:
    q, k, v = node.inputs[:3]
    past, decay, beta = (input_at(node, i) for i in range(3, 6))
    a = node.attributes
    rule = a.get_string("update_rule", "gated_delta")
    if rule not in _UPDATE_RULES:
        raise Unsupported(f"update_rule '{rule}' is not one of {sorted(_UPDATE_RULES)}")
    gating, delta = _UPDATE_RULES[rule]
    if gating != (decay is not None) or delta != (beta is not None):
        raise Unsupported(f"update_rule '{rule}' {'needs' if gating else 'forbids'} decay and "
                          f"{'needs' if delta else 'forbids'} beta")
    hq, hkv = a.get_int("q_num_heads", 0), a.get_int("kv_num_heads", 0)
    if hq <= 0 or hkv <= 0 or hq % hkv:
        raise Unsupported(f"q_num_heads ({hq}) must be a positive multiple of kv_num_heads ({hkv})")
    shapes = [static_shape(x) for x in (q, k, v)]
    if any(len(s) != 3 for s in shapes):
        raise Unsupported(f"query, key and value must be [B, T, heads*D] (got {[list(s) for s in shapes]})")
    _, _, _, dk = _split_heads(shapes[0], hq, "query")
    _, _, _, dv = _split_heads(shapes[2], hkv, "value")
    batch, seq = shapes[0][:2]
    for name, value, allowed in (("decay", decay, (hkv, hkv * dk)), ("beta", beta, (hkv, 1))):
        if value is not None and (static_shape(value)[:2] != (batch, seq) or len(static_shape(value)) != 3
                                  or static_shape(value)[2] not in allowed):
            raise Unsupported(f"{name} {list(static_shape(value))} must be [B, T, n] with n in {list(allowed)}")
    if past is not None and static_shape(past) != (batch, hkv, dk, dv):
        raise Unsupported(f"past_state {list(static_shape(past))} must be {[batch, hkv, dk, dv]}")
    state = node.outputs[1] if len(node.outputs) > 1 and node.outputs[1] is not None else None
    if state is None or numpy_dtype(state) != np.float32:
        state = b.temp((batch, hkv, dk, dv), np.float32, f"{b.label}/state")
    scale = a.get_float("scale", 0.0) or 1 / np.sqrt(dk)
    b.emit("LinearAttention", [q, k, v, past, decay, beta], [node.outputs[0], state],
           {"q_heads": hq, "kv_heads": hkv, "scale": float(scale)}, dv * 4)


def causal_conv_with_state(b: Builder, node: ir.Node) -> None:
    """Depthwise 1-D causal conv as a [B, C, 1, k-1+L] depthwise Conv over concat(past_state or zeros, input)."""
    x, w = node.inputs[:2]
    bias, past = input_at(node, 2), input_at(node, 3)
    activation = node.attributes.get_string("activation", "none")
    acts = {"none": Activation.NONE, "silu": Activation.SILU, "swish": Activation.SILU}
    if activation not in acts:
        raise Unsupported(f"activation '{activation}' is not one of none, silu, swish")
    (batch, channels, length), (wc, wi, kernel) = static_shape(x), static_shape(w)
    if (wc, wi) != (channels, 1):
        raise Unsupported(f"weight {[wc, wi, kernel]} must be [C, 1, k] with C = {channels}")
    state_shape = (batch, channels, kernel - 1)
    if past is not None and static_shape(past) != state_shape:
        raise Unsupported(f"past_state {list(static_shape(past))} must be {list(state_shape)}")
    padded = x
    if kernel > 1:
        pad = past if past is not None else b.constant(np.zeros(state_shape, np.float32), f"{b.label}/zeros")
        padded = b.temp((batch, channels, kernel - 1 + length), np.float32, f"{b.label}/padded")
        b.emit("Concat", [pad, x], [padded], {"axis": 2})
    present = node.outputs[1] if len(node.outputs) > 1 else None
    if _read(present):
        b.emit("Slice", [padded], [present], {"starts": [0, 0, length], "steps": [1, 1, 1]})
    plane = b.temp((batch, channels, 1, kernel - 1 + length), np.float32, f"{b.label}/plane")
    b.emit("Copy", [padded], [plane])
    out4 = b.temp((batch, channels, 1, length), np.float32, f"{b.label}/conv")
    w4 = b.reshaped(w, (channels, 1, 1, kernel), f"{b.label}/weight")
    algorithm = conv_algorithm((batch, channels, 1, kernel - 1 + length), (channels, 1, 1, kernel), channels,
                               [1, 1], [0, 0, 0, 0])
    b.emit("Conv", [plane, w4, bias], [out4],
           {"algorithm": algorithm, "group": channels, "strides": [1, 1], "pads": [0, 0, 0, 0],
            "dilations": [1, 1], "activation": acts[activation], "act_alpha": 0.0, "act_beta": 0.0})
    b.emit("Copy", [out4], [node.outputs[0]])


def swish(b: Builder, node: ir.Node) -> None:
    """SwiGLU: swish(a) * b (shapes equal), swish(x) = x * sigmoid(alpha * x). (Swish alone: rules_elementwise.)"""
    x = node.inputs[0]
    shape = static_shape(x)
    if node.op_type == "SwiGLU" and static_shape(node.inputs[1]) != shape:
        raise Unsupported(f"SwiGLU needs A and B of one shape (got {list(shape)} and "
                          f"{list(static_shape(node.inputs[1]))})")
    alpha = b.constant(np.array(node.attributes.get_float("alpha", 1.0), np.float32), f"{b.label}/alpha")
    gate = b.temp(shape, np.float32, f"{b.label}/gate")
    b.emit("Binary", [x, alpha], [gate], {"op": BinaryOp.MUL, "activation": Activation.SIGMOID})
    swished = node.outputs[0] if node.op_type == "Swish" else b.temp(shape, np.float32, f"{b.label}/swish")
    b.emit("Binary", [x, gate], [swished], {"op": BinaryOp.MUL, "activation": Activation.NONE})
    if node.op_type == "SwiGLU":
        b.emit("Binary", [swished, node.inputs[1]], [node.outputs[0]],
               {"op": BinaryOp.MUL, "activation": Activation.NONE})


def tensor_scatter(b: Builder, node: ir.Node) -> None:
    shape = static_shape(node.inputs[0])
    axis = axis_of(node.attributes.get_int("axis", -2), len(shape))
    mode = node.attributes.get_string("mode", "linear")
    if mode not in ("linear", "circular"):
        raise Unsupported(f"mode '{mode}' is not linear or circular")
    if axis == 0:
        raise Unsupported("axis 0 is the batch axis (the onnx reference indexes write_indices by batch)")
    b.emit("TensorScatter", [node.inputs[0], node.inputs[1], input_at(node, 2)], [node.outputs[0]],
           {"axis": axis, "circular": mode == "circular"})


RULES = {
    "Attention": attention, "RMSNormalization": rms_normalization, "RotaryEmbedding": rotary_embedding,
    "LinearAttention": linear_attention, "CausalConvWithState": causal_conv_with_state,
    "SwiGLU": swish, "TensorScatter": tensor_scatter,
}
