"""Importance of each unit of a group, and the choice of which units go."""

from __future__ import annotations

import math
import numpy as np

from sparsec.passes.pruning.channels import Param
from sparsec.passes.pruning.groups import Group

CRITERIA = ("l1", "l2", "bn_scale", "random", "taylor")
REDUCTIONS = {"mean": np.mean, "max": np.max, "sum": np.sum}


def _per_index(param: Param, power: int) -> np.ndarray:
    """Sum of |w|^power over everything but the pruned axis: one number per index of that axis."""
    data = np.moveaxis(param.value.const_value.numpy().astype(np.float64), param.axis, 0)
    return (np.abs(data) ** power).reshape(data.shape[0], -1).sum(axis=1)


def _over_units(group: Group, param: Param, per_index: np.ndarray) -> np.ndarray:
    return np.array([per_index[idx].sum() for idx in group.param_indices(param)])


def magnitude(group: Group, power: int, reduction: str) -> np.ndarray:
    """L1 (power 1) or L2 (power 2) norm of each unit's weights, reduced over the group's weight tensors."""
    weights = [p for p in group.params if p.role in ("out", "in")]
    per_param = [_over_units(group, p, _per_index(p, power)) ** (1.0 / power) for p in weights]
    return REDUCTIONS[reduction](np.stack(per_param), axis=0)


def bn_scale(group: Group, reduction: str) -> np.ndarray | None:
    """|gamma| of the BatchNormalizations in the group (network-slimming importance); None without one."""
    scales = [p for p in group.params if p.role == "bn_scale"]
    if not scales:
        return None
    per_param = [_over_units(group, p, np.abs(p.value.const_value.numpy().astype(np.float64))) for p in scales]
    return REDUCTIONS[reduction](np.stack(per_param), axis=0)


def taylor(group: Group, activation_norms: dict[str, np.ndarray], reduction: str) -> np.ndarray:
    """First-order estimate of what removing a unit changes in the layers reading it: each consumer's output
    moves by W[:, c] * a_c, so the score is E|a_c| * ||W[:, c]|| summed over the unit (a from calibration)."""
    consumers = [p for p in group.params if p.role == "in" and p.node.inputs[0].name in activation_norms]
    per_param = []
    for p in consumers:
        weight_norm = np.sqrt(_per_index(p, 2))
        per_param.append(_over_units(group, p, weight_norm * activation_norms[p.node.inputs[0].name]))
    return REDUCTIONS[reduction](np.stack(per_param), axis=0)


def unit_scores(group: Group, criterion: str, reduction: str, rng: np.random.Generator,
                activation_norms: dict[str, np.ndarray] | None = None) -> tuple[np.ndarray, str]:
    """Scores (higher = keep) and the criterion actually used (bn_scale and taylor fall back to l2 when a group
    has no BatchNormalization / no consumer with calibration data)."""
    if criterion == "random":
        return rng.random(group.channels), criterion
    if criterion == "bn_scale" and (scores := bn_scale(group, reduction)) is not None:
        return scores, criterion
    if criterion == "taylor" and activation_norms and any(
            p.role == "in" and p.node.inputs[0].name in activation_norms for p in group.params):
        return taylor(group, activation_norms, reduction), criterion
    if criterion == "l1":
        return magnitude(group, 1, reduction), criterion
    return magnitude(group, 2, reduction), "l2"


def _kept_after_rounding(group: Group, kept: int, round_to: int) -> int:
    """Smallest count >= kept whose channel count (kept * unit width) is a multiple of round_to."""
    step = round_to // math.gcd(round_to, group.unit_width)
    return min(group.channels, -(-kept // step) * step)


def select(groups: list[Group], scores: dict[int, np.ndarray], ratio: float, max_ratio: float, round_to: int,
           global_ranking: bool) -> dict[int, np.ndarray]:
    """Units to remove per group index. Per-layer: each group loses `ratio` of its units. Global: units of
    all groups compete on scores normalised by their group's mean. No group loses more than `max_ratio`
    (and every group keeps one unit); kept counts are rounded up to multiples of `round_to` channels."""
    cap = {g.index: min(int(g.channels * max_ratio), g.channels - 1) for g in groups}
    if global_ranking:
        flat = [(s / (scores[g.index].mean() or 1.0), g.index, u) for g in groups for u, s in
                enumerate(scores[g.index])]
        budget = int(ratio * sum(g.channels for g in groups))
        count = {g.index: 0 for g in groups}
        for _, gi, _ in sorted(flat):
            if budget == 0:
                break
            if count[gi] < cap[gi]:
                count[gi] += 1
                budget -= 1
    else:
        count = {g.index: min(int(g.channels * ratio), cap[g.index]) for g in groups}
    chosen = {}
    for g in groups:
        kept = _kept_after_rounding(g, g.channels - count[g.index], round_to)
        if kept < g.channels:
            chosen[g.index] = np.sort(np.argsort(scores[g.index], kind="stable")[:g.channels - kept])
    return chosen

