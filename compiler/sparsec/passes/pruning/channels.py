"""Channel space: every index of every axis of every tensor is an element; rules tie elements together.

Two elements tied by a rule must be kept or removed together (a Conv's output channel c, its bias[c],
the next Conv's input channel c, ...). Connected components are the units pruning removes. An
element a rule cannot map (a Conv's spatial axis, a normalised axis, a model output) is fixed, and so
is its whole component.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx_ir as ir

from sparsec.passes.util import static_shape


@dataclass(frozen=True)
class Param:
    """An initializer axis that pruning slices, and the node/role it plays there (for reports and criteria)."""

    value: ir.Value
    axis: int
    node: ir.Node
    role: str  # "out" (producer weights), "in" (consumer weights), "bias", "bn_scale", "bn", "scale"


@dataclass
class ReshapeChoice:
    """A Reshape that splits one axis into several (or merges several into one): only one factor can be
    pruned. `candidates` are the factor axes in order of preference; `edges(k)` ties for candidate k."""

    node: ir.Node
    single: tuple[ir.Value, int]  # the unsplit side
    factors: tuple[ir.Value, tuple[int, ...]]  # the split side: value and its axes (outer to inner)
    candidates: list[int]  # positions into factors[1]
    chosen: int = 0


@dataclass
class ChannelSpace:
    """Elements of (value, axis) pairs, ties between them, fixed elements with a cause, and params."""

    axis_ids: dict[tuple[ir.Value, int], int] = field(default_factory=dict)
    axis_keys: list[tuple[ir.Value, int]] = field(default_factory=list)
    bases: list[int] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    total: int = 0
    tie_a: list[np.ndarray] = field(default_factory=list)
    tie_b: list[np.ndarray] = field(default_factory=list)
    fixed: list[tuple[np.ndarray, int, bool]] = field(default_factory=list)  # (elements, cause id, hard)
    causes: list[str] = field(default_factory=list)
    params: list[Param] = field(default_factory=list)
    sources: set[int] = field(default_factory=set)  # axis ids whose elements are producer output channels
    choices: list[ReshapeChoice] = field(default_factory=list)
    touched: set[tuple[ir.Value, int]] = field(default_factory=set)  # axes the current rule mapped

    def axis_id(self, value: ir.Value, axis: int) -> int:
        key = (value, axis)
        found = self.axis_ids.get(key)
        if found is None:
            shape = static_shape(value)
            size = shape[axis] if shape is not None else 1
            found = len(self.axis_keys)
            self.axis_ids[key] = found
            self.axis_keys.append(key)
            self.bases.append(self.total)
            self.sizes.append(size)
            self.total += size
        return found

    def elements(self, value: ir.Value, axis: int, index=None) -> np.ndarray:
        self.touched.add((value, axis))
        i = self.axis_id(value, axis)
        base = self.bases[i]
        return base + (np.arange(self.sizes[i]) if index is None else np.asarray(index))

    def tie(self, a: ir.Value, a_axis: int, b: ir.Value, b_axis: int, a_index=None, b_index=None) -> None:
        """Ties a[a_index[k]] to b[b_index[k]] (whole axes, index by index, when no index is given)."""
        self.tie_a.append(self.elements(a, a_axis, a_index))
        self.tie_b.append(self.elements(b, b_axis, b_index))

    def fix(self, value: ir.Value, axis: int, cause: str, hard: bool = True) -> None:
        self.causes.append(cause)
        self.fixed.append((self.elements(value, axis), len(self.causes) - 1, hard))

    def param(self, value: ir.Value, axis: int, node: ir.Node, role: str) -> None:
        self.params.append(Param(value, axis, node, role))
        if role == "out":
            self.sources.add(self.axis_id(value, axis))

    def components(self) -> np.ndarray:
        """Component label of every element (the smallest element of its component)."""
        ties_a, ties_b = list(self.tie_a), list(self.tie_b)
        for choice in self.choices:
            a, b = choice_ties(self, choice)
            ties_a.append(a)
            ties_b.append(b)
        a = np.concatenate(ties_a) if ties_a else np.zeros(0, np.int64)
        b = np.concatenate(ties_b) if ties_b else np.zeros(0, np.int64)
        return connected_components(self.total, a, b)


def choice_ties(space: ChannelSpace, choice: ReshapeChoice) -> tuple[np.ndarray, np.ndarray]:
    """Ties for the chosen factor: single-side element e goes with factor index of e along that factor."""
    single, single_axis = choice.single
    value, axes = choice.factors
    shape = static_shape(value)
    dims = [shape[a] for a in axes]
    k = choice.candidates[choice.chosen]
    stride = int(np.prod(dims[k + 1:], dtype=np.int64))
    e = np.arange(int(np.prod(dims, dtype=np.int64)))
    return space.elements(single, single_axis, e), space.elements(value, axes[k], (e // stride) % dims[k])


def connected_components(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Labels (smallest member) of the components of the graph with n nodes and edges a[i]-b[i]."""
    parent = np.arange(n)
    while True:
        pa, pb = parent[a], parent[b]
        differ = pa != pb
        if not differ.any():
            return parent
        lo, hi = np.minimum(pa[differ], pb[differ]), np.maximum(pa[differ], pb[differ])
        np.minimum.at(parent, hi, lo)  # hook roots onto smaller roots, then flatten the trees
        while True:
            grand = parent[parent]
            if np.array_equal(grand, parent):
                break
            parent = grand
