"""Sparsify: magnitude pruning of every constant Conv / Gemm / MatMul weight to exact zeros in one pattern.

A layer is a Conv, Gemm or MatMul whose weight (input 1, see sparsity.py for the orientation) is a
constant; a MatMul of two activations is not one. Per layer by default, each layer's weight reaches the
target sparsity (in units of the pattern's blocks, rounded to the nearest block); with global_ranking
the blocks of all layers compete on their L2 norm. The first conv (reading a graph input) and depthwise
convs stay dense unless asked for. Every layer left dense is in the report with the reason.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field

import numpy as np
import onnx_ir as ir

from sparsec.errors import InputError, InternalError, node_label
from sparsec.naming import is_standard, op_label
from sparsec.passes.sparsity import (
    PATTERNS,
    Orientation,
    block_norms,
    canonical,
    from_canonical,
    orientation_of,
    unfit_reason,
    WeightSparsity,
    weight_sparsity,
    zero_two_of_four,
    zero_weakest,
)

DEFAULT_SPARSITY = 0.9
LAYER_OPS = ("Conv", "Gemm", "MatMul")


@dataclass(frozen=True)
class SparsifyOptions:
    sparsity: float | None = None  # fraction of each layer's weights to zero; None: 0.9, or 0.5 for 2:4
    pattern: str = "unstructured"
    global_ranking: bool = False  # one magnitude ranking over all layers' blocks instead of one per layer
    ignore: tuple[str, ...] = ()  # layers whose node or weight name contains one of these stay dense
    include_first: bool = False  # sparsify convs that read a graph input too
    include_depthwise: bool = False

    @property
    def target(self) -> float:
        if self.sparsity is not None:
            return self.sparsity
        return 0.5 if self.pattern == "2:4" else DEFAULT_SPARSITY

    def validate(self) -> None:
        if self.pattern not in PATTERNS:
            raise InputError(f"unknown sparsity pattern '{self.pattern}'; choose one of {', '.join(PATTERNS)}")
        if not 0.0 <= self.target < 1.0:
            raise InputError(f"sparsity must be in [0, 1), got {self.target}")
        if self.pattern == "2:4" and self.target != 0.5:
            raise InputError(f"pattern 2:4 zeros 2 of every 4 input channels, i.e. sparsity 0.5; got {self.target}")
        if self.pattern == "2:4" and self.global_ranking:
            raise InputError("pattern 2:4 decides inside each group of 4 input channels: global ranking does not apply")
        if any(not pattern for pattern in self.ignore):
            raise InputError("an empty ignore pattern would match every layer")


@dataclass
class Layer:
    """A Conv/Gemm/MatMul with its weight; `dense_because` says why it is not sparsified."""

    node: ir.Node
    weight: ir.Value
    orientation: Orientation | None = None
    dense_because: str | None = None


@dataclass
class SparsifyReport:
    """Per layer: weight, shape, density before/after, the patterns its zeros satisfy, or why it stayed dense."""

    options: SparsifyOptions
    rows: list[dict] = field(default_factory=list)
    weights: int = 0  # elements of all layer weights (each shared weight once)
    zeros_before: int = 0
    zeros_after: int = 0

    def to_dict(self) -> dict:
        return {"options": {**asdict(self.options), "sparsity": self.options.target}, "weights": self.weights,
                "zeros_before": self.zeros_before, "zeros_after": self.zeros_after, "layers": self.rows}

    def table(self) -> str:
        lines = [f"{'node':<40} {'op':<7} {'weight shape':<18} {'density':>8} {'after':>7}  pattern / why dense"]
        for r in self.rows:
            before = "-" if r["density_before"] is None else f"{r['density_before']:.1%}"
            after = "-" if r["density_after"] is None else f"{r['density_after']:.1%}"
            lines.append(f"{r['node'][-40:]:<40} {r['op']:<7} {str(r['shape']):<18} {before:>8} {after:>7}  "
                         f"{r['skipped'] or r['pattern']}")
        sparsified = sum(r["skipped"] is None for r in self.rows)
        total = max(self.weights, 1)
        lines.append(f"{sparsified} of {len(self.rows)} layers sparsified ({self.options.pattern}); layer weights "
                     f"{self.weights:,}, zeros {self.zeros_before / total:.1%} -> {self.zeros_after / total:.1%}")
        return "\n".join(lines)


def _find_layer(node: ir.Node) -> Layer | None:
    """The node as a layer (with a reason if it cannot be sparsified), or None if it is no layer."""
    if not is_standard(node) or node.op_type not in LAYER_OPS:
        return None
    data, weight = node.inputs[0], node.inputs[1]
    if weight.const_value is not None:
        layer = Layer(node, weight, orientation_of(node))
        dtype = weight.const_value.dtype
        if not dtype.is_floating_point():
            layer.dense_because = f"weight '{weight.name}' is {dtype.name}, not floating point"
        elif node.op_type == "MatMul" and len(weight.const_value.shape) < 2:
            layer.dense_because = f"weight '{weight.name}' is a vector: no output channels"
        return layer
    if node.op_type == "Conv":
        why = f"weight '{weight.name}' is not a constant (a graph input or computed)"
        return Layer(node, weight, dense_because=why)
    if data.const_value is not None:
        return Layer(node, data, dense_because="the constant is the left operand; only right-operand weights are "
                                               "sparsified")
    return None  # two activations (attention): no weight


def _dense_reason(layer: Layer, options: SparsifyOptions) -> str | None:
    node, weight = layer.node, layer.weight
    matched = [p for p in options.ignore if p in node.name or p in weight.name]
    if matched:
        return f"ignored (matches '{matched[0]}')"
    if node.op_type == "Conv":
        data = node.inputs[0]
        if data.is_graph_input() and not options.include_first:
            return f"first conv: reads graph input '{data.name}' (include_first sparsifies it)"
        channels = data.shape[1] if data.shape is not None and len(data.shape) > 1 else None
        groups = layer.orientation.groups
        if groups > 1 and groups == channels and not options.include_depthwise:
            return "depthwise conv (include_depthwise sparsifies it)"
    return unfit_reason(options.pattern, tuple(weight.const_value.shape), layer.orientation)


def _views(shared: list[Layer]) -> set[tuple[int, int, int]]:
    """The distinct (output axis, input axis, groups) in which the layers read their common constant weight."""
    rank = len(shared[0].weight.const_value.shape)
    return {(layer.orientation.out_axis % rank, layer.orientation.in_axis % rank, layer.orientation.groups)
            for layer in shared}


def find_layers(model: ir.Model, options: SparsifyOptions) -> list[Layer]:
    """Every layer of the graph in order, each with the reason it stays dense, if any."""
    layers = [layer for node in model.graph if (layer := _find_layer(node))]
    for pattern in options.ignore:
        if not any(pattern in name for layer in layers for name in (layer.node.name, layer.weight.name)):
            raise InputError(f"ignore pattern '{pattern}' matches no Conv/Gemm/MatMul node or weight name")
    for layer in layers:
        if layer.dense_because is None:
            layer.dense_because = _dense_reason(layer, options)
    readers = defaultdict(list)
    for layer in layers:
        readers[layer.weight].append(layer)
    for shared in (group for group in readers.values() if len(group) > 1):
        dense = next((layer for layer in shared if layer.dense_because), None)
        if dense:
            why = f"weight '{dense.weight.name}' is shared with {node_label(dense.node)}, which stays dense"
        elif len(_views(shared)) > 1:
            why = (f"weight '{shared[0].weight.name}' is read in different orientations by "
                   + ", ".join(node_label(layer.node) for layer in shared))
        else:
            continue
        for layer in shared:
            layer.dense_because = layer.dense_because or why
    return layers


def _counts(weights: list[ir.Value], canons: dict, options: SparsifyOptions) -> dict[ir.Value, int]:
    """How many blocks each weight loses: its own share of the target, or its blocks among the weakest overall."""
    scores = [block_norms(canons[w], options.pattern).ravel() for w in weights]
    if not options.global_ranking:
        return {w: int(np.floor(options.target * s.size + 0.5)) for w, s in zip(weights, scores)}
    if not weights:
        return {}
    owner = np.repeat(np.arange(len(weights)), [s.size for s in scores])
    scores = np.concatenate(scores)
    weakest = np.argsort(scores, kind="stable")[:int(np.floor(options.target * scores.size + 0.5))]
    per_weight = np.bincount(owner[weakest], minlength=len(weights))
    return {w: int(n) for w, n in zip(weights, per_weight)}


def _sparsity(value: ir.Value, orientation: Orientation | None) -> WeightSparsity | None:
    """The weight's zeros (and their patterns where its orientation is known); None for a computed weight."""
    if value.const_value is None:
        return None
    data = value.const_value.numpy()
    if orientation is None or data.ndim < 2:
        return WeightSparsity(data.size, data.size - int(np.count_nonzero(data)))
    return weight_sparsity(data, orientation)


def sparsify_model(model: ir.Model, options: SparsifyOptions, progress=None) -> tuple[ir.Model, SparsifyReport]:
    """Zeros the weakest weights of every eligible layer in place; returns the model and the report."""
    options.validate()
    layers = find_layers(model, options)
    weights = list(dict.fromkeys(layer.weight for layer in layers if layer.dense_because is None))
    orientation = {layer.weight: layer.orientation for layer in layers}
    before = {w: _sparsity(w, orientation[w]) for w in orientation}
    canons = {w: canonical(w.const_value.numpy(), orientation[w]) for w in weights}
    counts = {} if options.pattern == "2:4" else _counts(weights, canons, options)
    reader = {layer.weight: layer.node for layer in reversed(layers)}
    for i, w in enumerate(weights):
        if progress:
            progress(f"sparsifying weight {i + 1}/{len(weights)}: {w.name}")
        try:
            canon = zero_two_of_four(canons[w]) if options.pattern == "2:4" else zero_weakest(
                canons[w], options.pattern, counts[w])
            dense = from_canonical(canon, tuple(w.const_value.shape), orientation[w])
        except (ValueError, IndexError) as e:
            raise InternalError(f"sparsify failed on {node_label(reader[w])}, weight '{w.name}': {e}") from e
        w.const_value = ir.tensor(np.ascontiguousarray(dense), name=w.name)
    after = {w: _sparsity(w, orientation[w]) for w in orientation}
    report = SparsifyReport(options)
    for layer in layers:
        old, new = before[layer.weight], after[layer.weight]
        report.rows.append({
            "node": layer.node.name, "op": op_label(layer.node), "weight": layer.weight.name,
            "shape": list(layer.weight.shape) if layer.weight.shape is not None else None,
            "pattern": None if layer.dense_because else options.pattern,
            "density_before": None if old is None else old.density,
            "density_after": None if new is None else new.density,
            "patterns_before": list(old.patterns) if old else [], "patterns_after": list(new.patterns) if new else [],
            "skipped": layer.dense_because,
        })
    for w in orientation:
        if before[w] is not None:
            report.weights += before[w].size
            report.zeros_before += before[w].zeros
            report.zeros_after += after[w].zeros
    return model, report
