"""Sparse patterns of layer weights, in the orientation their op reads them: detection and magnitude pruning.

Every layer weight is viewed as [O, I, S]: O output channels (what the layer computes), I input channels
(what it sums over), S the other positions (kernel taps of a conv, batch of a MatMul):

  Conv    W [M, C/group, *kernel]           O = M (axis 0), I = C/group (axis 1), S = kernel taps
  Gemm    B [K, N] (transB=0), [N, K] (1)   O = N, I = K
  MatMul  constant right operand [..., K, N]  O = N (axis -1), I = K (axis -2), S = batch

Patterns (a block is O x I elements at one position s):
  unstructured  any element may be zero
  4x1, 8x1      4 / 8 consecutive output channels are zero together (one input channel, one position);
                in a grouped conv a block never straddles two groups
  1x4           4 consecutive input channels are zero together (one output channel, one position)
  2:4           in every group of 4 consecutive input channels (one output, one position) at least 2 are zero

Exact zeros only (== 0, so -0.0 too): a tiny weight is not a zero.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

PATTERNS = ("unstructured", "1x4", "4x1", "8x1", "2:4")
# (output channels, input channels) per block; 2:4 decides inside groups of 4 input channels.
BLOCKS = {"unstructured": (1, 1), "1x4": (1, 4), "4x1": (4, 1), "8x1": (8, 1), "2:4": (1, 4)}


@dataclass(frozen=True)
class Orientation:
    """Which weight axis is the output and which the input channel axis (negative counts from the end)."""

    out_axis: int
    in_axis: int
    groups: int = 1  # conv groups: output blocks stay inside one group


def _moved_shape(shape: tuple[int, ...], orientation: Orientation) -> tuple[int, ...]:
    """The shape with the output axis first, the input axis second, the others in order."""
    first = (orientation.out_axis % len(shape), orientation.in_axis % len(shape))
    return (*(shape[a] for a in first), *(d for a, d in enumerate(shape) if a not in first))


def canonical(array: np.ndarray, orientation: Orientation) -> np.ndarray:
    """The weight as [O, I, S] (a view where numpy can)."""
    moved = np.moveaxis(array, (orientation.out_axis, orientation.in_axis), (0, 1))
    return moved.reshape(moved.shape[0], moved.shape[1], -1)


def from_canonical(canon: np.ndarray, shape: tuple[int, ...], orientation: Orientation) -> np.ndarray:
    """Inverse of `canonical` for a weight of `shape`."""
    moved = canon.reshape(_moved_shape(shape, orientation))
    return np.moveaxis(moved, (0, 1), (orientation.out_axis, orientation.in_axis))


def unfit_reason(pattern: str, shape: tuple[int, ...], orientation: Orientation) -> str | None:
    """Why a weight of this shape cannot hold the pattern, or None if it can."""
    moved = _moved_shape(shape, orientation)
    outputs, inputs = moved[0] // orientation.groups, moved[1]
    per_group = " per group" if orientation.groups > 1 else ""
    block_out, block_in = BLOCKS[pattern]
    if inputs % block_in:
        return f"pattern {pattern} needs a multiple of {block_in} input channels{per_group}, the weight has {inputs}"
    if outputs % block_out:
        return f"pattern {pattern} needs a multiple of {block_out} output channels{per_group}, the weight has {outputs}"
    return None


def blocks_of(canon: np.ndarray, pattern: str) -> np.ndarray:
    """[O/bo, bo, I/bi, bi, S]: axes 1 and 3 run inside a block."""
    outputs, inputs, positions = canon.shape
    block_out, block_in = BLOCKS[pattern]
    return canon.reshape(outputs // block_out, block_out, inputs // block_in, block_in, positions)


def block_norms(canon: np.ndarray, pattern: str) -> np.ndarray:
    """L2 norm of every block of the pattern (|w| for unstructured), shape [O/bo, I/bi, S], float64."""
    blocks = blocks_of(canon, pattern).astype(np.float64)
    return np.sqrt(np.square(blocks).sum(axis=(1, 3)))


@dataclass(frozen=True)
class WeightSparsity:
    """Exact zeros of one weight. `block_density[p]`: fraction of p's blocks with a nonzero (what a
    block format stores); `patterns`: the patterns whose structure the zeros satisfy exactly (every zero
    lies in an all-zero block; 2:4: every group of 4 has >= 2 zeros). A weight without zeros has none."""

    size: int
    zeros: int
    block_density: dict[str, float] = field(default_factory=dict)
    patterns: tuple[str, ...] = ()

    @property
    def density(self) -> float:
        return (self.size - self.zeros) / self.size if self.size else 1.0


def weight_sparsity(array: np.ndarray, orientation: Orientation) -> WeightSparsity:
    """Density of `array` (read in `orientation`) and which patterns its exact zeros satisfy."""
    zero = canonical(np.asarray(array), orientation) == 0
    zeros = int(zero.sum())
    block_density, patterns = {}, []
    for pattern in PATTERNS:
        if unfit_reason(pattern, array.shape, orientation) is not None:
            continue
        blocks = blocks_of(zero, pattern)
        if pattern == "2:4":
            if zeros and bool((blocks.sum(axis=3) >= 2).all()):
                patterns.append(pattern)
            continue
        all_zero = blocks.all(axis=(1, 3))
        block_density[pattern] = 1.0 - float(all_zero.mean()) if all_zero.size else 1.0
        block_size = blocks.shape[1] * blocks.shape[3]
        if zeros and int(all_zero.sum()) * block_size == zeros:
            patterns.append(pattern)
    return WeightSparsity(int(zero.size), zeros, block_density, tuple(patterns))


def orientation_of(node) -> Orientation:
    """How a Conv, Gemm or MatMul node (or its sparsec.Fused* form) reads its weight (input 1): see above."""
    op = node.op_type.removeprefix("Fused") if node.domain == "sparsec" else node.op_type
    if op == "Conv":
        return Orientation(0, 1, node.attributes.get_int("group", 1))
    if op == "Gemm":
        return Orientation(0, 1) if node.attributes.get_int("transB", 0) else Orientation(1, 0)
    if op == "MatMul":
        return Orientation(-1, -2)
    raise ValueError(f"{node.op_type} has no layer weight")


def zero_weakest(canon: np.ndarray, pattern: str, count: int) -> np.ndarray:
    """[O, I, S] weight with its `count` blocks of smallest L2 norm set to zero (ties: first in order)."""
    blocks = blocks_of(canon, pattern)
    scores = block_norms(canon, pattern).ravel()
    keep = np.ones(scores.size, dtype=np.bool_)
    keep[np.argsort(scores, kind="stable")[:count]] = False
    keep = keep.reshape(blocks.shape[0], 1, blocks.shape[2], 1, blocks.shape[4])
    return np.where(keep, blocks, 0).astype(canon.dtype).reshape(canon.shape)


def zero_two_of_four(canon: np.ndarray) -> np.ndarray:
    """[O, I, S] weight with the 2 smallest |w| of every group of 4 input channels set to zero."""
    groups = blocks_of(canon, "2:4").copy()
    weakest = np.argsort(np.abs(groups.astype(np.float64)), axis=3, kind="stable")[:, :, :, :2]
    np.put_along_axis(groups, weakest, 0, axis=3)
    return groups.reshape(canon.shape)
