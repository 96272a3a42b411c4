"""Structured pruning on the ONNX graph: dependency groups -> importance -> selection -> shrink."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx_ir as ir

from sparsec.errors import InputError, InternalError
from sparsec.inspect import mac_count, parameter_count
from sparsec.passes.cleanup import remove_dead_nodes
from sparsec.passes.pruning.fold import add_to_biases, fold_constant_channels
from sparsec.passes.pruning.calibration import consumer_activation_norms
from sparsec.passes.pruning.groups import Group, find_groups
from sparsec.passes.pruning.importance import CRITERIA, REDUCTIONS, select, unit_scores
from sparsec.passes.pruning.shrink import removal_names, removal_of, shrink

__all__ = ["PruneOptions", "PruneReport", "Group", "find_groups", "prune_model", "CRITERIA"]


@dataclass(frozen=True)
class PruneOptions:
    ratio: float = 0.5  # fraction of each group's units to remove (of all units, with global_ranking)
    criterion: str = "l2"
    reduction: str = "mean"  # how a unit's scores over the group's tensors combine
    round_to: int = 1  # kept channel counts become multiples of this (e.g. 8 for SIMD)
    max_ratio: float = 0.9  # no group loses more than this fraction
    global_ranking: bool = False
    ignore: tuple[str, ...] = ()  # groups produced by a node or weight whose name contains one of these stay whole
    seed: int = 0  # for the random criterion

    def validate(self) -> None:
        if not 0.0 <= self.ratio < 1.0:
            raise InputError(f"prune ratio must be in [0, 1), got {self.ratio}")
        if not 0.0 < self.max_ratio <= 1.0:
            raise InputError(f"max_ratio must be in (0, 1], got {self.max_ratio}")
        if self.criterion not in CRITERIA:
            raise InputError(f"unknown criterion '{self.criterion}'; choose one of {', '.join(CRITERIA)}")
        if self.reduction not in REDUCTIONS:
            raise InputError(f"unknown reduction '{self.reduction}'; choose one of {', '.join(REDUCTIONS)}")
        if self.round_to < 1:
            raise InputError(f"round_to must be >= 1, got {self.round_to}")


@dataclass
class PruneReport:
    """What pruning did: per group the units before/after, and the model's parameters and MACs."""

    options: PruneOptions
    rows: list[dict] = field(default_factory=list)
    params_before: int = 0
    params_after: int = 0
    macs_before: int = 0
    macs_after: int = 0
    removed: dict[tuple[str, int], np.ndarray] = field(default_factory=dict)  # (tensor, axis) -> indices removed
    folded: dict[tuple[str, int], np.ndarray] = field(default_factory=dict)  # of those, constants folded into readers

    def to_dict(self) -> dict:
        return {"options": self.options.__dict__, "params_before": self.params_before,
                "params_after": self.params_after, "macs_before": self.macs_before, "macs_after": self.macs_after,
                "groups": self.rows}

    def table(self) -> str:
        lines = [f"{'group':<6} {'first node':<48} {'units':>6} {'kept':>6}  criterion / why not"]
        for r in self.rows:
            why = r["criterion"] if r["prunable"] else r["blocked_by"] or "ignored"
            lines.append(f"{r['group']:<6} {r['name'][-48:]:<48} {r['units']:>6} {r['kept']:>6}  {why}")
        lines.append(f"params {self.params_before:,} -> {self.params_after:,} "
                     f"({self.params_after / max(self.params_before, 1):.1%}); "
                     f"MACs {self.macs_before:,} -> {self.macs_after:,} ({self.macs_after / max(self.macs_before, 1):.1%})")
        return "\n".join(lines)


def _ignored(group: Group, patterns: tuple[str, ...]) -> bool:
    names = {n for p in group.params if p.role == "out" for n in (p.node.name, p.value.name)}
    return any(pattern in name for pattern in patterns for name in names)


def prune_model(model: ir.Model, options: PruneOptions, calibration: list[dict] | None = None,
                progress=None) -> tuple[ir.Model, PruneReport]:
    """Prunes a cleaned-up model with static shapes in place; returns it and the report.
    `calibration` (feeds for onnxruntime) is what the taylor criterion measures activations on."""
    options.validate()
    if options.criterion == "taylor" and not calibration:
        raise InputError("the taylor criterion needs calibration data (--calib samples.npy)")
    if progress:
        progress("finding dependency groups")
    groups = find_groups(model)
    report = PruneReport(options, params_before=parameter_count(model), macs_before=mac_count(model))
    eligible = [g for g in groups if g.prunable and not _ignored(g, options.ignore)]
    activation_norms = None
    if options.criterion == "taylor":
        activation_norms = consumer_activation_norms(model, eligible, calibration, progress)
    rng = np.random.default_rng(options.seed)
    scores, used = {}, {}
    for g in eligible:
        scores[g.index], used[g.index] = unit_scores(g, options.criterion, options.reduction, rng, activation_norms)
    chosen = select(eligible, scores, options.ratio, options.max_ratio, options.round_to, options.global_ranking)
    by_index = {g.index: g for g in groups}
    folds = {i: fold_constant_channels(by_index[i], units) for i, units in chosen.items()}
    for g in groups:
        removed = len(chosen.get(g.index, ()))
        report.rows.append({
            "group": g.index, "name": g.name, "members": g.members(), "units": g.channels,
            "unit_width": g.unit_width, "kept": g.channels - removed, "prunable": g.index in scores,
            "blocked_by": g.blocked_by, "criterion": used.get(g.index),
            "folded": len(folds[g.index][0]) if g.index in folds else 0,
        })
    if progress:
        progress(f"removing {sum(map(len, chosen.values()))} units from {len(chosen)} groups")
    removal = removal_of([(by_index[i], units.tolist()) for i, units in chosen.items()])
    report.removed = removal_names(removal)
    report.folded = removal_names(removal_of([(by_index[i], dead) for i, (dead, _) in folds.items()]))
    try:
        shrink(model, removal)
        add_to_biases([edit for _, edits in folds.values() for edit in edits], removal)
    except (ValueError, IndexError, KeyError) as e:
        raise InternalError(f"pruning could not rewrite the graph: {e}") from e
    remove_dead_nodes(model)  # the shape constants that were replaced
    report.params_after, report.macs_after = parameter_count(model), mac_count(model)
    return model, report
