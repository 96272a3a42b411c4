"""ONNX (opset >= 17) nodes -> runtime ops with static shapes and normalised attributes (runtime/src/ops.h)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import onnx_ir as ir

from sparsec.activations import FUSED_DOMAIN, activation_of, attached
from sparsec.artifact.format import DTYPE_CODES, OpEntry, TensorEntry
from sparsec.artifact.opcodes import Activation, BinaryOp, OpCode, PadMode, PoolKind, ReduceKind, UnaryOp
from sparsec.errors import ShapeError, UnsupportedOpError, node_label
from sparsec.naming import is_standard, op_label
from sparsec.passes.util import const_array


class Unsupported(Exception):
    """Raised by a lowering rule: the node cannot run (the reason is collected with all others)."""


@dataclass
class LoweredGraph:
    tensors: list[TensorEntry] = field(default_factory=list)
    ops: list[OpEntry] = field(default_factory=list)
    inputs: list[int] = field(default_factory=list)
    outputs: list[int] = field(default_factory=list)


def _static_shape(value: ir.Value) -> tuple[int, ...]:
    if value.shape is None or not all(isinstance(d, int) for d in value.shape.dims):
        producer = value.producer()
        where = f" produced by {node_label(producer)}" if producer else ""
        raise ShapeError(f"value '{value.name}'{where} has no static shape ({value.shape}); pass --input-shape")
    return tuple(int(d) for d in value.shape.dims)


def _numpy_dtype(value: ir.Value) -> np.dtype:
    dtype = value.dtype.numpy() if value.dtype is not None else None
    if dtype == np.bool_:
        return np.dtype(np.uint8)
    if dtype is None or np.dtype(dtype) not in DTYPE_CODES:
        raise Unsupported(f"dtype {value.dtype} of '{value.name}' is not supported")
    return np.dtype(dtype)


class _Builder:
    def __init__(self) -> None:
        self.g = LoweredGraph()
        self._ids: dict[int, int] = {}  # id(ir.Value) -> tensor index
        self._keep: list[ir.Value] = []  # values indexed by id() stay alive

    def tensor(self, value: ir.Value) -> int:
        key = id(value)
        if key not in self._ids:
            data = const_array(value)
            if data is not None:
                dtype = np.dtype(np.uint8) if data.dtype == np.bool_ else data.dtype
                if dtype not in DTYPE_CODES:
                    raise Unsupported(f"constant '{value.name}' has unsupported dtype {data.dtype}")
                self._ids[key] = self.constant(data.astype(dtype), value.name)
            else:
                self._ids[key] = self.temp(_static_shape(value), _numpy_dtype(value), value.name)
            self._keep.append(value)
        return self._ids[key]

    def constant(self, array: np.ndarray, name: str) -> int:
        array = np.array(array, order="C")  # (ascontiguousarray would turn 0-d into 1-d)
        self.g.tensors.append(TensorEntry(name, array.dtype, tuple(array.shape), data=array))
        return len(self.g.tensors) - 1

    def temp(self, shape, dtype, name: str) -> int:
        self.g.tensors.append(TensorEntry(name, np.dtype(dtype), tuple(int(d) for d in shape)))
        return len(self.g.tensors) - 1

    def emit(self, opcode: OpCode, inputs, outputs, iattr=(), fattr=(), name="") -> None:
        ids = [None if i is None else (i if isinstance(i, int) else self.tensor(i)) for i in inputs]
        outs = [o if isinstance(o, int) else self.tensor(o) for o in outputs]
        self.g.ops.append(OpEntry(int(opcode), ids, outs, [int(v) for v in iattr], [float(v) for v in fattr], name))

    def reshaped(self, value: ir.Value, shape, name: str) -> int:
        """value viewed with another shape (a Copy op, or a reshaped constant)."""
        data = const_array(value)
        if data is not None:
            return self.constant(data.reshape(shape), name)
        out = self.temp(shape, _numpy_dtype(value), name)
        self.emit(OpCode.COPY, [value], [out], name=name)
        return out


# ---- helpers on nodes ------------------------------------------------------------------------

def _input(node: ir.Node, i: int) -> ir.Value | None:
    return node.inputs[i] if len(node.inputs) > i else None


def _const_input(node: ir.Node, i: int, what: str, default=None) -> np.ndarray | None:
    value = _input(node, i)
    if value is None:
        return default
    data = const_array(value)
    if data is None:
        raise Unsupported(f"{what} (input {i}) must be constant")
    return data


def _rank(value: ir.Value) -> int:
    return len(_static_shape(value))


def _axis(axis: int, rank: int) -> int:
    return axis + rank if axis < 0 else axis


def _act(node: ir.Node) -> tuple[Activation, float, float]:
    return attached(node) if node.domain == FUSED_DOMAIN else (Activation.NONE, 0.0, 0.0)


def _require_float(node: ir.Node) -> None:
    """Run-time tensors must be float32 (constant inputs read as attributes are exempt)."""
    for v in list(node.inputs) + list(node.outputs):
        if v is not None and v.const_value is None and v.dtype is not None and v.dtype != ir.DataType.FLOAT:
            raise Unsupported(f"only float32 is supported at run time ('{v.name}' is {v.dtype})")


def _spatial_pads(node: ir.Node, in_hw, kernel, strides, dilations) -> list[int]:
    """[top, left, bottom, right] with auto_pad resolved."""
    auto_pad = node.attributes.get_string("auto_pad", "NOTSET")
    if auto_pad in ("NOTSET", ""):
        pads = node.attributes.get_ints("pads", [0, 0, 0, 0])
        return [int(p) for p in pads]
    if auto_pad == "VALID":
        return [0, 0, 0, 0]
    begin, end = [], []
    for size, k, s, d in zip(in_hw, kernel, strides, dilations):
        total = max((math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size, 0)
        small, large = total // 2, total - total // 2
        begin.append(large if auto_pad == "SAME_LOWER" else small)
        end.append(small if auto_pad == "SAME_LOWER" else large)
    return begin + end


# ---- rules -----------------------------------------------------------------------------------

def _conv(b: _Builder, node: ir.Node) -> None:
    _require_float(node)
    x, w = node.inputs[0], node.inputs[1]
    if _rank(x) != 4:
        raise Unsupported(f"only 2-D convolution is supported (input rank {_rank(x)})")
    shape_w = _static_shape(w)
    strides = node.attributes.get_ints("strides", [1, 1])
    dilations = node.attributes.get_ints("dilations", [1, 1])
    pads = _spatial_pads(node, _static_shape(x)[2:], shape_w[2:], strides, dilations)
    act = _act(node)
    iattr = [node.attributes.get_int("group", 1), *strides, pads[0], pads[1], pads[2], pads[3], *dilations, act[0]]
    b.emit(OpCode.CONV, [x, w, _input(node, 2)], [node.outputs[0]], iattr, act[1:], node.name)


def _gemm(b: _Builder, node: ir.Node) -> None:
    _require_float(node)
    a_value, b_value, c_value = node.inputs[0], node.inputs[1], _input(node, 2)
    alpha, beta = node.attributes.get_float("alpha", 1.0), node.attributes.get_float("beta", 1.0)
    shape_a = _static_shape(a_value)
    a = a_value
    if node.attributes.get_int("transA", 0):
        a = b.temp(shape_a[::-1], np.float32, f"{node.name}/A_t")
        b.emit(OpCode.TRANSPOSE, [a_value], [a], [1, 0], name=f"{node.name}/transA")
    weight = const_array(b_value)
    trans_b = node.attributes.get_int("transB", 0)
    if weight is None:
        if trans_b or alpha != 1.0:
            raise Unsupported("a run-time B needs transB=0 and alpha=1")
        weight_id = b_value
    else:
        weight_id = b.constant((weight.T if trans_b else weight) * np.float32(alpha), f"{b_value.name}/packed")
    n = _static_shape(node.outputs[0])[1]
    bias_id, add_c = None, None
    c = const_array(c_value) if c_value is not None else None
    if c is not None and c.size in (1, n) and (c.ndim < 2 or c.shape[0] == 1):
        bias_id = b.constant(np.broadcast_to(c.reshape(-1) * np.float32(beta), (n,)).astype(np.float32), f"{node.name}/bias")
    elif c_value is not None:
        if beta != 1.0 and c is None:
            raise Unsupported("a run-time C needs beta=1")
        add_c = c_value if c is None else b.constant((c * np.float32(beta)).astype(np.float32), f"{node.name}/C")
    act = _act(node)
    if add_c is None:
        b.emit(OpCode.MATMUL, [a, weight_id, bias_id], [node.outputs[0]], [act[0]], act[1:], node.name)
        return
    y = b.temp(_static_shape(node.outputs[0]), np.float32, f"{node.name}/AB")
    b.emit(OpCode.MATMUL, [a, weight_id, None], [y], [Activation.NONE], [0, 0], node.name)
    b.emit(OpCode.BINARY, [y, add_c], [node.outputs[0]], [BinaryOp.ADD, act[0]], act[1:], f"{node.name}/C")


def _matmul(b: _Builder, node: ir.Node) -> None:
    _require_float(node)
    a, w, y = node.inputs[0], node.inputs[1], node.outputs[0]
    sa, sw = _static_shape(a), _static_shape(w)
    act = _act(node)
    bias = _input(node, 2)
    bias_id = b.constant(const_array(bias).reshape(-1), f"{bias.name}/flat") if bias is not None else None
    if len(sa) > 1 and len(sw) > 1:
        b.emit(OpCode.MATMUL, [a, w, bias_id], [y], [act[0]], act[1:], node.name)
        return
    # numpy semantics for 1-D operands: [K] acts as [1, K] (left) or [K, 1] (right), then that axis drops.
    a2 = sa if len(sa) > 1 else (1,) + sa
    w2 = sw if len(sw) > 1 else sw + (1,)
    a_id = b.reshaped(a, a2, f"{node.name}/a2d") if a2 != sa else a
    w_id = b.reshaped(w, w2, f"{node.name}/b2d") if w2 != sw else w
    out2 = tuple(np.broadcast_shapes(a2[:-2], w2[:-2])) + (a2[-2], w2[-1])
    tmp = b.temp(out2, np.float32, f"{node.name}/y2d")
    b.emit(OpCode.MATMUL, [a_id, w_id, bias_id], [tmp], [act[0]], act[1:], node.name)
    b.emit(OpCode.COPY, [tmp], [y], name=f"{node.name}/reshape")


_BINARY = {"Add": BinaryOp.ADD, "Sub": BinaryOp.SUB, "Mul": BinaryOp.MUL, "Div": BinaryOp.DIV, "Pow": BinaryOp.POW,
           "Max": BinaryOp.MAX, "Min": BinaryOp.MIN, "PRelu": BinaryOp.PRELU, "Mod": BinaryOp.MOD, "Sum": BinaryOp.ADD,
           "FusedAdd": BinaryOp.ADD}


def _binary(b: _Builder, node: ir.Node) -> None:
    _require_float(node)
    op = _BINARY[node.op_type]
    act = _act(node)
    if node.op_type == "Mod" and not node.attributes.get_int("fmod", 0):
        raise Unsupported("integer Mod (fmod=0) is not supported")
    inputs = list(node.inputs)
    if len(inputs) == 1:
        b.emit(OpCode.COPY, inputs, [node.outputs[0]], name=node.name)
        return
    acc = inputs[0]
    out_shape = _static_shape(node.outputs[0])
    for k, other in enumerate(inputs[1:], start=1):  # variadic Sum/Max/Min: a chain of pairs
        last = k == len(inputs) - 1
        out = node.outputs[0] if last else b.temp(out_shape, np.float32, f"{node.name}/{k}")
        b.emit(OpCode.BINARY, [acc, other], [out], [op, act[0] if last else 0], act[1:] if last else [0, 0], node.name)
        acc = out


_UNARY = {"Exp": UnaryOp.EXP, "Log": UnaryOp.LOG, "Sqrt": UnaryOp.SQRT, "Neg": UnaryOp.NEG, "Abs": UnaryOp.ABS,
          "Reciprocal": UnaryOp.RECIPROCAL, "Erf": UnaryOp.ERF, "Floor": UnaryOp.FLOOR, "Ceil": UnaryOp.CEIL,
          "Round": UnaryOp.ROUND, "Sin": UnaryOp.SIN, "Cos": UnaryOp.COS, "Sign": UnaryOp.SIGN}


def _unary(b: _Builder, node: ir.Node) -> None:
    _require_float(node)
    act = activation_of(node)
    if act is None and node.op_type in _UNARY:
        act = (_UNARY[node.op_type], 0.0, 0.0)
    if act is None:
        raise Unsupported("Clip bounds must be constant")
    b.emit(OpCode.UNARY, [node.inputs[0]], [node.outputs[0]], [act[0]], act[1:], node.name)


def _pool(b: _Builder, node: ir.Node) -> None:
    _require_float(node)
    x = node.inputs[0]
    if _rank(x) != 4:
        raise Unsupported(f"only 2-D pooling is supported (input rank {_rank(x)})")
    if len(node.outputs) > 1 and node.outputs[1] is not None and node.outputs[1].uses():
        raise Unsupported("MaxPool Indices output is not supported")
    kernel = node.attributes.get_ints("kernel_shape")
    strides = node.attributes.get_ints("strides", [1, 1])
    dilations = node.attributes.get_ints("dilations", [1, 1])
    pads = _spatial_pads(node, _static_shape(x)[2:], kernel, strides, dilations)
    kind = PoolKind.MAX if node.op_type == "MaxPool" else PoolKind.AVERAGE
    include_pad = node.attributes.get_int("count_include_pad", 0)
    iattr = [kind, *kernel, *strides, pads[0], pads[1], pads[2], pads[3], *dilations, include_pad]
    b.emit(OpCode.POOL, [x], [node.outputs[0]], iattr, name=node.name)


_REDUCE = {"ReduceMean": ReduceKind.MEAN, "ReduceSum": ReduceKind.SUM, "ReduceMax": ReduceKind.MAX,
           "ReduceMin": ReduceKind.MIN, "ReduceProd": ReduceKind.PROD, "ReduceL1": ReduceKind.L1,
           "ReduceL2": ReduceKind.L2, "ReduceSumSquare": ReduceKind.SUM_SQUARE,
           "ReduceLogSumExp": ReduceKind.LOG_SUM_EXP, "GlobalAveragePool": ReduceKind.MEAN,
           "GlobalMaxPool": ReduceKind.MAX}


def _reduce(b: _Builder, node: ir.Node) -> None:
    _require_float(node)
    x = node.inputs[0]
    rank = _rank(x)
    if node.op_type.startswith("Global"):
        axes = list(range(2, rank))
    else:
        axes = node.attributes.get_ints("axes", None)
        if axes is None:
            data = _const_input(node, 1, "axes")
            axes = [] if data is None else data.reshape(-1).tolist()
        if not axes:
            if node.attributes.get_int("noop_with_empty_axes", 0):
                b.emit(OpCode.COPY, [x], [node.outputs[0]], name=node.name)
                return
            axes = list(range(rank))
    mask = sum(1 << _axis(int(a), rank) for a in set(axes))
    b.emit(OpCode.REDUCE, [x], [node.outputs[0]], [_REDUCE[node.op_type], mask], name=node.name)


def _softmax(b: _Builder, node: ir.Node) -> None:
    _require_float(node)
    axis = _axis(node.attributes.get_int("axis", -1), _rank(node.inputs[0]))
    b.emit(OpCode.SOFTMAX, [node.inputs[0]], [node.outputs[0]], [axis, node.op_type == "LogSoftmax"], name=node.name)


def _layer_norm(b: _Builder, node: ir.Node) -> None:
    _require_float(node)
    if any(o is not None and o.uses() for o in node.outputs[1:]):
        raise Unsupported("LayerNormalization Mean/InvStdDev outputs are not supported")
    axis = _axis(node.attributes.get_int("axis", -1), _rank(node.inputs[0]))
    norm_shape = _static_shape(node.inputs[0])[axis:]
    scale = b.reshaped(node.inputs[1], norm_shape, f"{node.name}/scale")
    bias = _input(node, 2)
    bias_id = b.reshaped(bias, norm_shape, f"{node.name}/bias") if bias is not None else None
    b.emit(OpCode.LAYER_NORM, [node.inputs[0], scale, bias_id], [node.outputs[0]], [axis],
           [node.attributes.get_float("epsilon", 1e-5)], node.name)


def _batch_norm(b: _Builder, node: ir.Node) -> None:
    _require_float(node)
    if node.attributes.get_int("training_mode", 0):
        raise Unsupported("training-mode BatchNormalization is not supported")
    gamma, beta, mean, var = (_const_input(node, i, "BatchNorm parameters") for i in range(1, 5))
    scale = gamma / np.sqrt(var + node.attributes.get_float("epsilon", 1e-5))
    shift = beta - mean * scale
    b.emit(OpCode.CHANNEL_AFFINE,
           [node.inputs[0], b.constant(scale.astype(np.float32), f"{node.name}/scale"),
            b.constant(shift.astype(np.float32), f"{node.name}/shift")],
           [node.outputs[0]], [Activation.NONE], [0, 0], node.name)


def _group_norm(b: _Builder, node: ir.Node) -> None:
    _require_float(node)
    channels = _static_shape(node.inputs[0])[1]
    scale, bias = _const_input(node, 1, "scale"), _const_input(node, 2, "bias")
    groups = channels if node.op_type == "InstanceNormalization" else node.attributes.get_int("num_groups")
    if scale.size == groups and groups != channels:  # opset 18 GroupNormalization: one value per group
        scale, bias = np.repeat(scale, channels // groups), np.repeat(bias, channels // groups)
    b.emit(OpCode.GROUP_NORM,
           [node.inputs[0], b.constant(scale.astype(np.float32).reshape(-1), f"{node.name}/scale"),
            b.constant(bias.astype(np.float32).reshape(-1), f"{node.name}/bias")],
           [node.outputs[0]], [groups], [node.attributes.get_float("epsilon", 1e-5)], node.name)


def _transpose(b: _Builder, node: ir.Node) -> None:
    rank = _rank(node.inputs[0])
    perm = node.attributes.get_ints("perm", list(range(rank))[::-1])
    b.emit(OpCode.TRANSPOSE, [node.inputs[0]], [node.outputs[0]], perm, name=node.name)


def _copy(b: _Builder, node: ir.Node) -> None:
    b.emit(OpCode.COPY, [node.inputs[0]], [node.outputs[0]], name=node.name)


def _concat(b: _Builder, node: ir.Node) -> None:
    axis = _axis(node.attributes.get_int("axis"), _rank(node.outputs[0]))
    inputs = [v for v in node.inputs if v is not None and math.prod(_static_shape(v)) > 0]
    b.emit(OpCode.CONCAT, inputs, [node.outputs[0]], [axis], name=node.name)


def _split(b: _Builder, node: ir.Node) -> None:
    axis = _axis(node.attributes.get_int("axis", 0), _rank(node.inputs[0]))
    b.emit(OpCode.SPLIT, [node.inputs[0]], list(node.outputs), [axis], name=node.name)


def _slice(b: _Builder, node: ir.Node) -> None:
    shape = _static_shape(node.inputs[0])
    rank = len(shape)
    starts = _const_input(node, 1, "starts").reshape(-1).tolist()
    ends = _const_input(node, 2, "ends").reshape(-1).tolist()
    axes = _const_input(node, 3, "axes", np.arange(len(starts))).reshape(-1).tolist()
    steps = _const_input(node, 4, "steps", np.ones(len(starts), dtype=np.int64)).reshape(-1).tolist()
    begin, stride = [0] * rank, [1] * rank
    for start, end, axis, step in zip(starts, ends, axes, steps):
        axis, dim = _axis(int(axis), rank), shape[_axis(int(axis), rank)]
        start, end, step = int(start), int(end), int(step)
        start, end = (start + dim if start < 0 else start), (end + dim if end < 0 else end)
        if step > 0:
            start, end = min(max(start, 0), dim), min(max(end, 0), dim)
        else:
            start, end = min(max(start, 0), dim - 1), min(max(end, -1), dim - 1)
        length = max(0, -(-(end - start) // step)) if step > 0 else max(0, -(-(start - end) // -step))
        begin[axis], stride[axis] = (start if length else 0), step
    b.emit(OpCode.SLICE, [node.inputs[0]], [node.outputs[0]], begin + stride, name=node.name)


def _gather(b: _Builder, node: ir.Node) -> None:
    axis = _axis(node.attributes.get_int("axis", 0), _rank(node.inputs[0]))
    b.emit(OpCode.GATHER, [node.inputs[0], node.inputs[1]], [node.outputs[0]], [axis], name=node.name)


def _pad(b: _Builder, node: ir.Node) -> None:
    _require_float(node)
    rank = _rank(node.inputs[0])
    modes = {"constant": PadMode.CONSTANT, "reflect": PadMode.REFLECT, "edge": PadMode.EDGE}
    mode = node.attributes.get_string("mode", "constant")
    if mode not in modes:
        raise Unsupported(f"pad mode '{mode}' is not supported")
    pads = _const_input(node, 1, "pads").reshape(-1).tolist()
    value = _const_input(node, 2, "constant_value", np.zeros(1)).reshape(-1)
    axes = _const_input(node, 3, "axes", np.arange(rank)).reshape(-1).tolist()
    begins, ends = [0] * rank, [0] * rank
    for k, axis in enumerate(axes):
        begins[_axis(int(axis), rank)], ends[_axis(int(axis), rank)] = int(pads[k]), int(pads[k + len(axes)])
    if min(begins + ends) < 0:
        raise Unsupported("negative pads are not supported")
    b.emit(OpCode.PAD, [node.inputs[0]], [node.outputs[0]], [modes[mode], *begins, *ends],
           [float(value[0]) if value.size else 0.0], node.name)


def _expand(b: _Builder, node: ir.Node) -> None:
    b.emit(OpCode.EXPAND, [node.inputs[0]], [node.outputs[0]], name=node.name)


def _cast(b: _Builder, node: ir.Node) -> None:
    b.emit(OpCode.CAST, [node.inputs[0]], [node.outputs[0]], name=node.name)


def _constant(b: _Builder, node: ir.Node) -> None:
    """Constants become tensors when an op reads them (Builder.tensor)."""


_ACTIVATIONS = ["Relu", "Sigmoid", "Tanh", "HardSwish", "HardSigmoid", "LeakyRelu", "Elu", "Softplus", "Gelu", "Clip"]
RULES: dict[str, Callable[[_Builder, ir.Node], None]] = {
    "Conv": _conv, "FusedConv": _conv, "Gemm": _gemm, "FusedGemm": _gemm, "MatMul": _matmul, "FusedMatMul": _matmul,
    **{op: _binary for op in _BINARY},
    **{op: _unary for op in [*_UNARY, *_ACTIVATIONS, "Activation"]},
    "MaxPool": _pool, "AveragePool": _pool,
    **{op: _reduce for op in _REDUCE},
    "Softmax": _softmax, "LogSoftmax": _softmax, "LayerNormalization": _layer_norm,
    "BatchNormalization": _batch_norm, "InstanceNormalization": _group_norm, "GroupNormalization": _group_norm,
    "Transpose": _transpose, "Reshape": _copy, "Flatten": _copy, "Squeeze": _copy, "Unsqueeze": _copy,
    "Identity": _copy, "Dropout": _copy, "Concat": _concat, "Split": _split, "Slice": _slice, "Gather": _gather,
    "Pad": _pad, "Expand": _expand, "Cast": _cast, "Constant": _constant,
}
_FUSED_RULES = {"FusedConv", "FusedGemm", "FusedMatMul", "FusedAdd", "Activation"}
SUPPORTED_OPS = sorted(op for op in RULES if op not in _FUSED_RULES)


def rule_for(node: ir.Node) -> Callable | None:
    if node.domain == FUSED_DOMAIN:
        return RULES.get(node.op_type) if node.op_type in _FUSED_RULES else None
    if is_standard(node) and node.op_type not in _FUSED_RULES:
        return RULES.get(node.op_type)
    return None


def lower_model(model: ir.Model, progress=None) -> LoweredGraph:
    """Lowers every node; raises UnsupportedOpError listing all nodes that cannot run."""
    b = _Builder()
    graph = model.graph
    for value in graph.inputs:
        b.g.inputs.append(b.tensor(value))
    unsupported = []
    nodes = list(graph)
    for i, node in enumerate(nodes):
        if progress and (i % 200 == 0 or i == len(nodes) - 1):
            progress(f"lowering node {i + 1}/{len(nodes)}")
        rule = rule_for(node)
        if rule is None:
            unsupported.append((node.name, op_label(node), "no lowering rule for this op"))
            continue
        try:
            rule(b, node)
        except Unsupported as e:
            unsupported.append((node.name, node.op_type, str(e)))
    if unsupported:
        raise UnsupportedOpError(unsupported)
    for value in graph.outputs:
        out = b.tensor(value)
        if b.g.tensors[out].is_const or out in b.g.inputs:  # outputs live in the arena
            copy = b.temp(b.g.tensors[out].shape, b.g.tensors[out].dtype, value.name)
            b.emit(OpCode.COPY, [out], [copy], name=f"{value.name}/output")
            out = copy
        b.g.outputs.append(out)
    return b.g
