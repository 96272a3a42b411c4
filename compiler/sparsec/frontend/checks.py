"""Checks on hostile or careless models before anything is compiled: where external weights come from,
names, node order, opset, and tensor sizes (exact integers, so nothing overflows to a wrong size)."""

from __future__ import annotations

import math
import os
from numbers import Integral
from collections.abc import Iterator

import onnx
import onnx_ir as ir
from onnx.external_data_helper import load_external_data_for_tensor, uses_external_data

from sparsec.errors import ModelLoadError, ShapeError

# The runtime's limits (runtime/src/artifact.h: kMaxDim, kMaxNumel): the compiler never writes what it refuses.
MAX_DIM = 2**32
MAX_ELEMENTS = 2**40
# Types that pack several elements into a byte: their raw_data holds ceil(elements * bits / 8) bytes.
_PACKED_BITS = {getattr(onnx.TensorProto, name): bits for name, bits in
                [("INT4", 4), ("UINT4", 4), ("FLOAT4E2M1", 4), ("INT2", 2), ("UINT2", 2)]
                if hasattr(onnx.TensorProto, name)}


def _graphs(graph: onnx.GraphProto) -> Iterator[onnx.GraphProto]:
    """graph and every subgraph (If/Loop/Scan bodies), depth first."""
    yield graph
    for node in graph.node:
        for attr in node.attribute:
            for sub in [attr.g] if attr.HasField("g") else attr.graphs:
                yield from _graphs(sub)


def _tensors(graph: onnx.GraphProto) -> Iterator[onnx.TensorProto]:
    """Initializers and tensor attributes (Constant values) of graph and its subgraphs."""
    for g in _graphs(graph):
        yield from g.initializer
        for node in g.node:
            for attr in node.attribute:
                if attr.HasField("t"):
                    yield attr.t
                yield from attr.tensors


def _location(tensor: onnx.TensorProto) -> str:
    return {e.key: e.value for e in tensor.external_data}.get("location", "?")


def read_external_data(proto: onnx.ModelProto, model_path: str | None) -> None:
    """Reads external weights from the model file's folder only: onnx refuses absolute paths, `..`, symlinks
    and files outside it. A model given in memory has no folder: it must say where its data is."""
    external = [t for t in _tensors(proto.graph) if uses_external_data(t)]
    if not external:
        return
    if model_path is None:
        where = _location(external[0])
        raise ModelLoadError(
            f"the model has external data (tensor '{external[0].name}' in '{where}') but was given in memory, so "
            "sparsec does not know its folder: pass the model's path instead (its data is read from the model's "
            "folder), or load it with onnx.load(path), which reads the data next to the file")
    folder = os.path.dirname(os.path.abspath(model_path))
    for tensor in external:
        location = _location(tensor)
        try:
            load_external_data_for_tensor(tensor, folder)
        except (onnx.checker.ValidationError, OSError, ValueError) as e:
            raise ModelLoadError(f"{model_path}: external data of tensor '{tensor.name}' ('{location}') is "
                                 f"refused: {e}") from None


def _node_label(node: onnx.NodeProto, index: int) -> str:
    name = f"'{node.name}'" if node.name else f"#{index} (output '{node.output[0] if node.output else ''}')"
    op = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}.{node.op_type}"
    return f"node {name} ({op})"


def check_names(proto: onnx.ModelProto) -> None:
    """A NUL inside a name would cut it short in the artifact (C strings): refused, shown escaped."""
    for graph in _graphs(proto.graph):
        names = [("input", v.name) for v in graph.input] + [("output", v.name) for v in graph.output]
        names += [("initializer", t.name) for t in graph.initializer]
        for node in graph.node:
            names += [("node", node.name)] + [("tensor", n) for n in (*node.input, *node.output)]
        for kind, name in names:
            if "\0" in name:
                raise ModelLoadError(f"{kind} name {name!r} contains a NUL character; rename it (names are C strings "
                                     "in the artifact)")


def node_order_problem(graph: onnx.GraphProto) -> str | None:
    """Which node reads a tensor that is undefined or computed only later (a cycle), naming the node; or None."""
    defined = {"", *(v.name for v in graph.input), *(t.name for t in graph.initializer)}
    producers = {out: (i, node) for i, node in enumerate(graph.node) for out in node.output}
    for index, node in enumerate(graph.node):
        for name in node.input:
            if name in defined:
                continue
            if name in producers:
                later = _node_label(producers[name][1], producers[name][0])
                return (f"input '{name}' of {_node_label(node, index)} is computed by a later node ({later}): the "
                        "graph has a cycle or is not topologically sorted")
            return (f"input '{name}' of {_node_label(node, index)} is undefined: no graph input, initializer or "
                    "node output has that name")
        defined.update(node.output)
    return None


def check_opset(version: int) -> None:
    """Ops of an opset newer than the installed onnx may mean something else than the schemas onnx knows."""
    known = onnx.defs.onnx_opset_version()
    if version > known:
        raise ModelLoadError(
            f"the model imports opset {version}; the installed onnx {onnx.__version__} knows opsets up to {known}, so "
            "its ops could be compiled with the wrong meaning: upgrade onnx (pip install -U onnx) or export with "
            f"opset <= {known}")


def _size_problem(dims) -> str | None:
    """Why a tensor of these dims cannot be stored, or None. Python ints: no overflow."""
    if any(d < 0 for d in dims):
        return f"has a negative dimension {list(dims)}"
    if any(d > MAX_DIM for d in dims) or math.prod(dims) > MAX_ELEMENTS:
        return f"of shape {list(dims)} is too large (at most {MAX_DIM:,} per dimension, {MAX_ELEMENTS:,} elements)"
    return None


def check_initializer_sizes(proto: onnx.ModelProto) -> None:
    """Each stored tensor has a storable shape and exactly the bytes (or elements) its shape needs."""
    for tensor in _tensors(proto.graph):
        dims = list(tensor.dims)
        problem = _size_problem(dims)
        if problem:
            raise ModelLoadError(f"initializer '{tensor.name}' {problem}")
        if tensor.data_type in (onnx.TensorProto.STRING, onnx.TensorProto.UNDEFINED):
            continue
        count = math.prod(dims)
        if tensor.HasField("raw_data"):
            bits = _PACKED_BITS.get(tensor.data_type)
            expected = -(-count * bits // 8) if bits else count * onnx.helper.tensor_dtype_to_np_dtype(
                tensor.data_type).itemsize
            got = len(tensor.raw_data)
            unit = "bytes"
        elif tensor.data_type in _PACKED_BITS:
            continue
        else:
            field = onnx.helper.tensor_dtype_to_field(tensor.data_type)
            complex_parts = 2 if tensor.data_type in (onnx.TensorProto.COMPLEX64, onnx.TensorProto.COMPLEX128) else 1
            expected, got, unit = count * complex_parts, len(getattr(tensor, field)), f"values in {field}"
        if got != expected:
            raise ModelLoadError(f"initializer '{tensor.name}' of shape {dims} holds {got} {unit}; its shape needs "
                                 f"{expected}")


def check_value_sizes(model: ir.Model) -> None:
    """After shape inference: every graph input, output and node output has a storable static shape."""
    values = [*model.graph.inputs, *(v for node in model.graph for v in node.outputs)]
    for value in values:
        if value.shape is None:
            continue
        problem = _size_problem([d for d in value.shape if isinstance(d, int)])
        if problem:
            producer = value.producer()
            where = (f" (output of node '{producer.name}' ({producer.op_type}))" if producer is not None
                     else f" (a graph input: give its shape with --input-shape {value.name}=...)")
            raise ShapeError(f"tensor '{value.name}'{where} {problem}")


def check_input_shapes(shapes: dict[str, list[int]]) -> None:
    """Shapes the user gives (--input-shape, input_shapes=) are positive integers the runtime can hold."""
    for name, dims in shapes.items():
        if not isinstance(dims, (list, tuple)) or not all(isinstance(d, Integral) and 0 < d <= MAX_DIM for d in dims):
            raise ShapeError(f"input shape {name}={dims}: dimensions must be integers in 1..{MAX_DIM}")
