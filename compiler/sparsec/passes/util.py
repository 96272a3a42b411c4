"""Small graph-editing helpers shared by passes."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir


def static_shape(value: ir.Value | None) -> tuple[int, ...] | None:
    """The value's shape if every dimension is a known integer."""
    if value is None or value.shape is None or not all(isinstance(d, int) for d in value.shape.dims):
        return None
    return tuple(value.shape.dims)


def const_array(value: ir.Value | None) -> np.ndarray | None:
    """The value's constant data (initializer or folded), or None."""
    if value is None or value.const_value is None:
        return None
    return value.const_value.numpy()


def only_consumer(value: ir.Value) -> ir.Node | None:
    """The single node reading value, if value is read once and is not a graph output."""
    uses = list(value.uses())
    if len(uses) != 1 or value.is_graph_output():
        return None
    return uses[0][0]


def add_initializer(graph: ir.Graph, name: str, array: np.ndarray) -> ir.Value:
    """Registers a new initializer with a name not yet used in graph."""
    taken = {v.name for v in graph.initializers.values()}
    unique, k = name, 0
    while unique in taken:
        k += 1
        unique = f"{name}_{k}"
    value = ir.Value(name=unique, shape=ir.Shape(array.shape), type=ir.TensorType(ir.DataType.from_numpy(array.dtype)),
                     const_value=ir.tensor(array, name=unique))
    graph.register_initializer(value)
    return value


def bypass(node: ir.Node, replacement: ir.Value) -> bool:
    """Makes node's first output's readers read replacement, then removes node.

    A graph output keeps its name: replacement is renamed, unless it is itself a graph input,
    initializer or output (then node stays and False is returned).
    """
    old = node.outputs[0]
    graph = node.graph
    if old.is_graph_output():
        if replacement.is_graph_input() or replacement.is_initializer() or replacement.is_graph_output():
            return False
        name = old.name
        old.replace_all_uses_with(replacement, replace_graph_outputs=True)
        graph.remove(node, safe=True)
        replacement.name = name
        return True
    old.replace_all_uses_with(replacement)
    graph.remove(node, safe=True)
    return True
