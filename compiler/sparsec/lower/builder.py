"""The lowering's builder: tensors, runtime ops packed through the contract, and helpers the rules share."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import onnx_ir as ir

from sparsec.activations import FUSED_DOMAIN, attached
from sparsec.artifact.format import OpEntry, TensorEntry
from sparsec.contract.schema import DTYPE_BY_NAME, OP_BY_NAME, Activation, Storage
from sparsec.errors import SparsecError
from sparsec.passes.util import const_array


class Unsupported(SparsecError):
    """Raised by a lowering rule: the node cannot run (the reason is collected with all others)."""


@dataclass
class LoweredGraph:
    tensors: list[TensorEntry] = field(default_factory=list)
    ops: list[OpEntry] = field(default_factory=list)
    inputs: list[int] = field(default_factory=list)
    outputs: list[int] = field(default_factory=list)
    layers: list[dict] = field(default_factory=list)  # per Conv/Gemm/MatMul: sparse or dense and why (rules_sparse)


def static_shape(value: ir.Value) -> tuple[int, ...]:
    """The value's shape; every dim must be a known integer (else Unsupported, naming the value)."""
    if value.shape is None or not all(isinstance(d, int) for d in value.shape.dims):
        raise Unsupported(f"value '{value.name}' has no static shape ({value.shape}): its size depends on run-time "
                          "data (--fix-input can pin an input it depends on)")
    return tuple(int(d) for d in value.shape.dims)


def numpy_dtype(value: ir.Value) -> np.dtype:
    dtype = value.dtype.numpy() if value.dtype is not None else None
    if dtype is None or np.dtype(dtype).name not in DTYPE_BY_NAME:
        raise Unsupported(f"'{value.name}' has dtype {value.dtype}, which the runtime does not hold")
    return np.dtype(dtype)


class Builder:
    """Collects tensors and ops; `label`/`source_op` name the node being lowered in every op it emits."""

    def __init__(self, target: str = "x86_64", sparse_kernels: bool = True) -> None:
        self.g = LoweredGraph()
        self.target = target  # the cost model's target (rules_sparse)
        self.sparse_kernels = sparse_kernels
        self._ids: dict[int, int] = {}  # id(ir.Value) -> tensor index
        self._keep: list[ir.Value] = []  # values indexed by id() stay alive
        self.written: set[int] = set()  # tensors some op writes
        self.label = ""
        self.source_op = ""
        self.params: dict[str, np.ndarray] = {}  # trainable parameters (graph inputs held in the param region)

    def tensor(self, value: ir.Value) -> int:
        key = id(value)
        if key not in self._ids:
            data = const_array(value)
            if value.name in self.params and value.is_graph_input():
                self._ids[key] = self.param(self.params[value.name], value.name)
            elif data is not None:
                if data.dtype.name not in DTYPE_BY_NAME:
                    raise Unsupported(f"constant '{value.name}' has dtype {data.dtype}, which the runtime does not hold")
                self._ids[key] = self.constant(data, value.name)
            else:
                self._ids[key] = self.temp(static_shape(value), numpy_dtype(value), value.name)
            self._keep.append(value)
        return self._ids[key]

    def alias(self, value: ir.Value, index: int) -> None:
        """value (one a rule made up, e.g. for a node it composes) names tensor index."""
        self._ids[id(value)] = index
        self._keep.append(value)

    def has_value(self, value: ir.Value) -> bool:
        """value is a constant or written by an emitted op."""
        index = self._ids.get(id(value))
        return index is not None and (self.g.tensors[index].is_const or index in self.written)

    def constant(self, array: np.ndarray, name: str) -> int:
        array = np.array(array, order="C")  # (ascontiguousarray would turn 0-d into 1-d)
        self.g.tensors.append(TensorEntry(name, array.dtype, tuple(array.shape), data=array))
        return len(self.g.tensors) - 1

    def param(self, array: np.ndarray, name: str) -> int:
        """A tensor of the mutable param region (a trainable parameter or optimizer state), initialised to array."""
        array = np.array(array, order="C")
        self.g.tensors.append(TensorEntry(name, array.dtype, tuple(array.shape), data=array, storage=Storage.PARAM))
        return len(self.g.tensors) - 1

    def temp(self, shape, dtype, name: str) -> int:
        self.g.tensors.append(TensorEntry(name, np.dtype(dtype), tuple(int(d) for d in shape)))
        return len(self.g.tensors) - 1

    def emit(self, op: str, inputs, outputs, attrs: dict | None = None, scratch_bytes: int = 0) -> None:
        """One runtime op; attributes by name (the contract packs them) and dtypes checked against the contract."""
        spec = OP_BY_NAME[op]
        ids = [None if i is None else (i if isinstance(i, int) else self.tensor(i)) for i in inputs]
        outs = [o if isinstance(o, int) else self.tensor(o) for o in outputs]
        self._check_types(spec, ids, outs)
        rank = len(self.g.tensors[ids[0]].shape) if ids and ids[0] is not None else 0
        try:
            iattr, fattr = spec.pack(attrs or {}, rank)
        except ValueError as e:  # e.g. an axis far outside the tensor's rank
            raise Unsupported(str(e)) from None
        if op == "Copy" and self.g.tensors[ids[0]].nbytes != self.g.tensors[outs[0]].nbytes:
            raise Unsupported(f"input {list(self.g.tensors[ids[0]].shape)} and output "
                              f"{list(self.g.tensors[outs[0]].shape)} differ in size")
        self.g.ops.append(OpEntry(spec.code, ids, outs, iattr, fattr, self.label, self.source_op, scratch_bytes))
        self.written.update(outs)

    def _check_types(self, spec, ids, outs) -> None:
        chosen: dict[str, str] = {}

        def slot(slots, variadic, i):
            return slots[min(i, len(slots) - 1)] if variadic else slots[i]

        for role, tensor_ids, slots, variadic in (("input", ids, spec.inputs, spec.variadic_inputs),
                                                  ("output", outs, spec.outputs, spec.variadic_outputs)):
            for i, t in enumerate(tensor_ids):
                if t is None:
                    continue
                type_var = slot(slots, variadic, i).type
                dtype = self.g.tensors[t].dtype.name
                if dtype not in spec.types[type_var] or chosen.setdefault(type_var, dtype) != dtype:
                    raise Unsupported(f"{role} '{self.g.tensors[t].name}' is {dtype}; the runtime's {spec.name} takes "
                                      f"{'/'.join(spec.types[type_var])}" +
                                      (f" (matching {chosen[type_var]})" if type_var in chosen else ""))

    def reshaped(self, value: ir.Value, shape, name: str) -> int:
        """value viewed with another shape (a Copy op, or a reshaped constant)."""
        data = const_array(value)
        if data is not None:
            return self.constant(data.reshape(shape), name)
        out = self.temp(shape, numpy_dtype(value), name)
        self.emit("Copy", [value], [out])
        return out


# ---- helpers on nodes ------------------------------------------------------------------------

def input_at(node: ir.Node, i: int) -> ir.Value | None:
    return node.inputs[i] if len(node.inputs) > i else None


def const_input(node: ir.Node, i: int, what: str, default=None) -> np.ndarray | None:
    value = input_at(node, i)
    if value is None:
        return default
    data = const_array(value)
    if data is None:
        raise Unsupported(f"{what} (input {i}) must be a constant: sparsec does not take it at run time")
    return data


def rank(value: ir.Value) -> int:
    return len(static_shape(value))


def axis_of(axis: int, rank_: int) -> int:
    return axis + rank_ if axis < 0 else axis


def fused_activation(node: ir.Node) -> dict:
    """The activation a fusion pass attached to node, as contract attributes."""
    kind, a, b = attached(node) if node.domain == FUSED_DOMAIN else (Activation.NONE, 0.0, 0.0)
    return {"activation": kind, "act_alpha": a, "act_beta": b}


def spatial_pads(node: ir.Node, in_hw, kernel, strides, dilations) -> list[int]:
    """Begin pads then end pads ([top, left, bottom, right] in 2-D) with auto_pad resolved, any number of dims."""
    auto_pad = node.attributes.get_string("auto_pad", "NOTSET")
    if auto_pad in ("NOTSET", ""):
        pads = node.attributes.get_ints("pads", [0] * 2 * len(in_hw))
        return [int(p) for p in pads]
    if auto_pad == "VALID":
        return [0] * 2 * len(in_hw)
    begin, end = [], []
    for size, k, s, d in zip(in_hw, kernel, strides, dilations):
        total = max((math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size, 0)
        small, large = total // 2, total - total // 2
        begin.append(large if auto_pad == "SAME_LOWER" else small)
        end.append(small if auto_pad == "SAME_LOWER" else large)
    return begin + end
