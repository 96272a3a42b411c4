"""Packs a dense weight W [M, K] (+ bias [M]) into the SpMM kernels' argument arrays, and back.

The layout is the kernels' (kernels_arm/include/sparsec/spmm.h); Y[M, N] = W X + bias with X of K rows of N pixels:

BLOCKED (mb in 1, 2, 4): rows in blocks of mb, the trailing M % mb rows single-row blocks. A block keeps an
  input channel if any of its rows is nonzero there. values: per block its mb biases, then mb weights per kept
  channel; + 4 floats of padding. deltas (int32): per kept channel in block order, the bytes from its X row to the
  next kept channel's row (the last wraps to the first), then one 0. nnz: kept channels per block. first: bytes
  from X to the first kept row.
N_OF_M (2:4): K % 4 == 0, at most 2 nonzeros in every 4 consecutive input channels of a row. values per row: bias,
  then K / 2 weights (no padding); index (uint8) per row and group of 4: bits 0-1 the first kept position, bits 2-3 the second.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sparsec.contract.schema import SparseFormat

VALUE_PADDING = 4  # floats the kernels may read past the last value


@dataclass
class Packed:
    format: SparseFormat
    mb: int  # rows per block (1 for N_OF_M)
    M: int
    K: int
    N: int
    values: np.ndarray  # float32
    deltas: np.ndarray | None = None  # int32 (BLOCKED)
    nnz: np.ndarray | None = None  # uint32 (BLOCKED)
    first: int = 0
    index: np.ndarray | None = None  # uint8 [M, K / 4] (N_OF_M)

    @property
    def stored_weights(self) -> int:
        """Weights the kernel multiplies (kept block channels x block rows, or K / 2 per row)."""
        return self.values.size - VALUE_PADDING - self.M if self.format == SparseFormat.BLOCKED else self.M * self.K // 2


def block_rows(M: int, mb: int) -> list[tuple[int, int]]:
    """(first row, rows) of every block: full blocks of mb, then single rows."""
    full = M - M % mb
    return [(r, mb) for r in range(0, full, mb)] + [(r, 1) for r in range(full, M)]


def pack_blocked(w: np.ndarray, bias: np.ndarray | None, mb: int, n: int) -> Packed:
    """W [M, K] in blocks of mb rows, deltas scaled to bytes for X rows of n floats."""
    M, K = w.shape
    bias = np.zeros(M, np.float32) if bias is None else np.asarray(bias, np.float32)
    values, channels, nnz = [], [], []
    for r, rows in block_rows(M, mb):
        block = w[r:r + rows]
        kept = np.flatnonzero((block != 0).any(axis=0))
        values += [bias[r:r + rows], block[:, kept].T.reshape(-1)]
        channels.append(kept)
        nnz.append(kept.size)
    values.append(np.zeros(VALUE_PADDING, np.float32))
    order = np.concatenate(channels).astype(np.int64) if channels else np.zeros(0, np.int64)
    row_bytes = n * 4
    if order.size:
        deltas = (np.roll(order, -1) - order) * row_bytes
        first = int(order[0]) * row_bytes
    else:
        deltas, first = np.zeros(0, np.int64), 0
    if np.abs(deltas).max(initial=0) > np.iinfo(np.int32).max or first > np.iinfo(np.int32).max:
        raise ValueError(f"X of {K} rows x {n} pixels is too large for 32-bit byte deltas")
    return Packed(SparseFormat.BLOCKED, mb, M, K, n, np.concatenate(values).astype(np.float32),
                  np.append(deltas, 0).astype(np.int32), np.asarray(nnz, np.uint32), first)


def two_of_four_fits(w: np.ndarray) -> bool:
    """Every group of 4 consecutive input channels of every row has at most 2 nonzeros."""
    M, K = w.shape
    return K % 4 == 0 and bool(((w.reshape(M, K // 4, 4) != 0).sum(axis=2) <= 2).all())


def pack_two_of_four(w: np.ndarray, bias: np.ndarray | None, n: int) -> Packed:
    """W [M, K] (two_of_four_fits) as 2 values + a position byte per group of 4 input channels."""
    M, K = w.shape
    if not two_of_four_fits(w):
        raise ValueError("weight does not fit 2:4 (K % 4 == 0 and at most 2 nonzeros per group of 4)")
    groups = w.reshape(M, K // 4, 4)
    # Nonzeros first (stable, so positions ascend), then zeros to fill two slots; sort the two picks.
    picks = np.sort(np.argsort(groups == 0, axis=2, kind="stable")[:, :, :2], axis=2)
    kept = np.take_along_axis(groups, picks, axis=2).reshape(M, K // 2)
    bias = np.zeros(M, np.float32) if bias is None else np.asarray(bias, np.float32)
    values = np.column_stack([bias, kept]).reshape(-1).astype(np.float32)
    index = (picks[:, :, 0] | (picks[:, :, 1] << 2)).astype(np.uint8)
    return Packed(SparseFormat.N_OF_M, 1, M, K, n, values, index=index)


def unpack(p: Packed) -> tuple[np.ndarray, np.ndarray]:
    """(W [M, K], bias [M]) from a packed weight, by walking it as the kernel does."""
    w = np.zeros((p.M, p.K), np.float32)
    bias = np.zeros(p.M, np.float32)
    if p.format == SparseFormat.N_OF_M:
        rows = p.values[:p.M * (1 + p.K // 2)].reshape(p.M, 1 + p.K // 2)
        bias[:] = rows[:, 0]
        positions = np.stack([p.index & 3, p.index >> 2], axis=2).astype(np.int64) + 4 * np.arange(p.K // 4)[:, None]
        np.put_along_axis(w, positions.reshape(p.M, -1), rows[:, 1:], axis=1)
        return w, bias
    row_bytes = p.N * 4
    offset, v, d = p.first, 0, 0
    for b, (r, rows) in enumerate(block_rows(p.M, p.mb)):
        bias[r:r + rows] = p.values[v:v + rows]
        v += rows
        for _ in range(int(p.nnz[b])):
            w[r:r + rows, offset // row_bytes] = p.values[v:v + rows]
            v += rows
            offset += int(p.deltas[d])
            d += 1
    return w, bias


def spmm_reference(p: Packed, x: np.ndarray) -> np.ndarray:
    """Y [M, N] = W X + bias computed from the packed arrays (X [K, N]), in float64."""
    w, bias = unpack(p)
    return w.astype(np.float64) @ x.astype(np.float64) + bias[:, None]
