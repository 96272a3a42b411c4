"""Dependency groups: sets of tensor axes that must lose the same channels together, found on the ONNX graph."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx_ir as ir

from sparsec.naming import is_standard, op_label
from sparsec.passes.pruning.channels import ChannelSpace, Param
from sparsec.passes.pruning.rules import RULES
from sparsec.passes.util import static_shape

_CHOICE_ROUNDS = 4


@dataclass
class Group:
    """Coupled channels. `units[u][m]` are the indices unit u removes from axis `axes[m]`; a unit is one
    channel, one attention head or one conv group. `blocked_by` says why the group cannot be pruned."""

    index: int
    axes: list[tuple[ir.Value, int]]
    units: list[list[np.ndarray]]
    params: list[Param]
    blocked_by: str | None = None
    unit_width: int = 1  # elements a unit has along its first producer axis (1 for channels, head_dim for heads)

    @property
    def prunable(self) -> bool:
        return self.blocked_by is None

    @property
    def channels(self) -> int:
        return len(self.units)

    @property
    def name(self) -> str:
        producers = [p for p in self.params if p.role == "out"]
        return (producers or self.params)[0].node.name if (producers or self.params) else f"group{self.index}"

    def members(self) -> list[str]:
        """'op node (roles)' for each node whose parameters the group slices, in order of first mention."""
        roles: dict[ir.Node, list[str]] = {}
        for p in self.params:
            roles.setdefault(p.node, [])
            if p.role not in roles[p.node]:
                roles[p.node].append(p.role)
        return [f"{op_label(node)} {node.name} ({', '.join(r)})" for node, r in roles.items()]

    def param_indices(self, param: Param) -> list[np.ndarray]:
        m = self.axes.index((param.value, param.axis))
        return [unit[m] for unit in self.units]


def _build_space(graph: ir.Graph) -> ChannelSpace:
    space = ChannelSpace()
    for node in graph:
        space.touched = set()
        rule = RULES.get(node.op_type) if is_standard(node) else None
        cause = f"{op_label(node)} '{node.name}' has no channel rule"
        values = [v for v in (*node.inputs, *node.outputs) if v is not None]
        if rule is not None and all(static_shape(v) is not None for v in values):
            rule(node, space)
            cause = f"{op_label(node)} '{node.name}' does not map this axis"
        elif rule is not None:
            cause = f"{op_label(node)} '{node.name}' has a tensor of unknown shape"
        for value in values:
            shape = static_shape(value) or ()
            for axis in range(len(shape)):
                if (value, axis) not in space.touched:
                    space.fix(value, axis, cause)
    for value, kind in [*((v, "input") for v in graph.inputs), *((v, "output") for v in graph.outputs)]:
        for axis in range(len(static_shape(value) or ())):
            space.fix(value, axis, f"model {kind} '{value.name}'")
    return space


def _fixed_causes(space: ChannelSpace, labels: np.ndarray) -> tuple[dict[int, str], set[int]]:
    """First cause per fixed component (hard causes first), and the components fixed by a hard cause."""
    entries = [(elements, space.causes[cause], hard) for elements, cause, hard in space.fixed]
    for choice in space.choices:  # a factor not chosen keeps all its channels
        value, axes = choice.factors
        cause = f"{op_label(choice.node)} '{choice.node.name}' splits an axis; only one factor can lose channels"
        for k in range(len(axes)):
            if k != choice.candidates[choice.chosen]:
                entries.append((space.elements(value, axes[k]), cause, False))
    causes: dict[int, str] = {}
    hard_labels: set[int] = set()
    for elements, cause, hard in sorted(entries, key=lambda e: not e[2]):
        for label in np.unique(labels[elements]).tolist():
            causes.setdefault(label, cause)
            if hard:
                hard_labels.add(label)
    return causes, hard_labels


def _source_labels(space: ChannelSpace, labels: np.ndarray) -> np.ndarray:
    parts = [labels[space.bases[i]:space.bases[i] + space.sizes[i]] for i in sorted(space.sources)]
    return np.unique(np.concatenate(parts)) if parts else np.zeros(0, np.int64)


def _choose_factors(space: ChannelSpace) -> tuple[np.ndarray, dict[int, str]]:
    """Components, retrying a Reshape's next factor while its chosen one carries weights but is fixed."""
    for last_round in [False] * (_CHOICE_ROUNDS - 1) + [True]:
        labels = space.components()
        causes, hard = _fixed_causes(space, labels)
        if last_round:
            break
        sources = set(_source_labels(space, labels).tolist())
        switched = False
        for choice in space.choices:
            value, axes = choice.factors
            chosen = set(np.unique(labels[space.elements(value, axes[choice.candidates[choice.chosen]])]).tolist())
            if chosen & sources and chosen & hard and choice.chosen + 1 < len(choice.candidates):
                choice.chosen += 1
                switched = True
        if not switched:
            break
    return labels, causes


def find_groups(model: ir.Model) -> list[Group]:
    """Discovers every dependency group of `model` (shapes must be static and inferred)."""
    space = _build_space(model.graph)
    labels, causes = _choose_factors(space)
    sources = _source_labels(space, labels)
    axis_of = np.repeat(np.arange(len(space.sizes)), space.sizes)
    order = np.argsort(labels, kind="stable")
    sorted_labels = labels[order]
    starts = np.searchsorted(sorted_labels, sources)
    stops = np.searchsorted(sorted_labels, sources, side="right")

    by_signature: dict[tuple, list[list[np.ndarray]]] = {}
    blocked: dict[tuple, str] = {}
    for label, start, stop in zip(sources.tolist(), starts.tolist(), stops.tolist()):
        elements = order[start:stop]
        axes = axis_of[elements]
        signature = tuple(np.unique(axes).tolist())
        unit = [elements[axes == a] - space.bases[a] for a in signature]
        by_signature.setdefault(signature, []).append(unit)
        if label in causes:
            blocked.setdefault(signature, causes[label])

    params_by_axis: dict[int, list[Param]] = {}
    for p in space.params:
        params_by_axis.setdefault(space.axis_id(p.value, p.axis), []).append(p)
    groups = []
    for signature, units in by_signature.items():
        params = [p for a in signature for p in params_by_axis.get(a, [])]
        width = next((len(units[0][signature.index(a)]) for a in signature if a in space.sources), 1)
        groups.append(Group(len(groups), [space.axis_keys[a] for a in signature], units, params,
                            blocked.get(signature), width))
    groups.sort(key=lambda g: min(a for a in (space.axis_ids[k] for k in g.axes)))
    for i, g in enumerate(groups):
        g.index = i
    return groups
