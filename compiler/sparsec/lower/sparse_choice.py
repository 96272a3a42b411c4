"""Dense or sparse per layer, and which packed format: a cost model calibrated on measured kernel speed-ups.

Model: an SpMM's time relative to sparsec's dense GEMM on the same shape is linear in the density d of what it
multiplies, `t(d) = overhead + per_weight * d` (a fixed cost per output pixel and row, plus one per stored weight).
`overhead` and `per_weight` are fitted per target and format by least squares to measured speed-ups s_i at
densities d_i (t_i = 1 / s_i; `measured_points` turns benchmarks/bench_spmm.py's JSON into MEASURED). The expected speed-up is 1 / t(d); the layer goes sparse with the format of the largest
expected speed-up if that is at least MIN_SPEEDUP (1.1: below it the fit's error is as large as the gain;
with it the fitted 1x1 break-evens are host 65 %, arm64 45 %, wasm32 29 % zeros; wider blocks pay earlier), so its
break-even density is (1 / MIN_SPEEDUP - overhead) / per_weight. The stored
density is the format's: 1x1 keeps the nonzeros, 2x1 / 4x1 every output block with a nonzero at an input channel,
2:4 half of each row. A format without measurements uses the 1x1 line, and on a tie the
format with less index data wins (2:4, then wider blocks). The same function explains a dense layer in the compile
report and in `sparsec inspect`: its density against the target's break-even.

Measurements: `measured_points(benchmarks/results/spmm-2026-12-07.json)`, x86_64 refitted to
spmm-host-wasm-2026-12-07-gemm2.json after the dense GEMM got faster (bench_spmm.py: each format's SpMM vs
sparsec's dense GEMM on the MobileNetV1/V2 1x1 shapes, 1 thread; host x86_64 and wasm32 (Node) timed, arm64 as
executed instructions under qemu), geometric means over the shapes at 0/50/70/80/90/95 % zeros. 2:4 measured
0.84x of dense on the host (it never pays there), 1.70x in wasm32, 1.23x on arm64.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import cache

import numpy as np

from sparsec.contract.schema import SparseFormat
from sparsec.lower.sparse_pack import block_rows, two_of_four_fits

# target -> format -> [(density, measured speed-up over dense)]
MEASURED = {
    "x86_64": {  # spmm-host-wasm-2026-12-07-gemm2.json: against the faster dense GEMM of the hostconv work
        "1x1": [(1.00, 0.38), (0.50, 0.79), (0.30, 1.33), (0.20, 1.96), (0.10, 3.62), (0.05, 6.26)],
        "2x1": [(1.00, 0.66), (0.50, 1.29), (0.30, 2.11), (0.20, 3.04), (0.10, 5.48), (0.05, 9.38)],
        "4x1": [(1.00, 0.90), (0.50, 1.75), (0.30, 2.80), (0.20, 4.01), (0.10, 7.17), (0.05, 12.19)],
        "2:4": [(0.50, 0.84)],
    },
    "wasm32": {
        "1x1": [(1.00, 0.76), (0.50, 1.76), (0.30, 2.90), (0.20, 4.25), (0.10, 8.13), (0.05, 14.35)],
        "2x1": [(1.00, 0.91), (0.50, 1.82), (0.30, 3.13), (0.20, 4.47), (0.10, 8.18), (0.05, 13.96)],
        "4x1": [(1.00, 0.87), (0.50, 1.85), (0.30, 3.05), (0.20, 4.36), (0.10, 8.03), (0.05, 13.60)],
        "2:4": [(0.50, 1.70)],
    },
    "arm64": {
        "1x1": [(1.00, 0.61), (0.50, 1.23), (0.30, 2.03), (0.20, 3.02), (0.10, 5.90), (0.05, 11.29)],
        "2x1": [(1.00, 0.92), (0.50, 1.83), (0.30, 3.03), (0.20, 4.50), (0.10, 8.76), (0.05, 16.64)],
        "4x1": [(1.00, 1.25), (0.50, 2.49), (0.30, 4.11), (0.20, 6.09), (0.10, 11.78), (0.05, 22.07)],
        "2:4": [(0.50, 1.23)],
    },
}
MIN_SPEEDUP = 1.1
MAX_DELTA_BYTES = (1 << 31) - 1  # deltas and first are int32 byte offsets into X
FORMATS = ("2:4", "4x1", "2x1", "1x1")  # tie order: less index data first


@cache
def cost_line(target: str, fmt: str = "1x1") -> tuple[float, float]:
    """(overhead, per_weight) of t(d) = overhead + per_weight * d, least squares over the format's measurements."""
    measured = MEASURED[target]
    points = np.array(measured.get(fmt, measured["1x1"]), np.float64)
    if len(set(points[:, 0])) < 2:  # one density (2:4 is always 0.5): the line through the origin and it
        return 0.0, float(np.mean(1.0 / points[:, 1] / points[:, 0]))
    per_weight, overhead = np.polyfit(points[:, 0], 1.0 / points[:, 1], 1)
    return float(overhead), float(per_weight)


def expected_speedup(target: str, density: float, fmt: str = "1x1") -> float:
    overhead, per_weight = cost_line(target, fmt)
    return 1.0 / max(overhead + per_weight * density, 1e-6)


def break_even(target: str, fmt: str = "1x1") -> float:
    """The stored density above which dense is faster."""
    overhead, per_weight = cost_line(target, fmt)
    return min((1.0 / MIN_SPEEDUP - overhead) / per_weight, 1.0)


BENCH_TARGETS = {"host": "x86_64", "wasm32": "wasm32", "arm64": "arm64"}
BENCH_FORMATS = {"mb1": "1x1", "mb2": "2x1", "mb4": "4x1", "2of4": "2:4"}


def measured_points(report: dict) -> dict:
    """MEASURED from benchmarks/bench_spmm.py's JSON: per target and format, the geometric-mean speed-up over its
    shapes at each density."""
    points: dict = {}
    for entry in report["targets"]:
        groups: dict = {}
        for row in entry["rows"]:
            key = (BENCH_FORMATS[row["mb"]], round(1.0 - row["sparsity"], 4))
            groups.setdefault(key, []).append(row["speedup"])
        formats = points.setdefault(BENCH_TARGETS[entry["target"]], {})
        for (fmt, density), speedups in sorted(groups.items(), key=lambda kv: (kv[0][0], -kv[0][1])):
            formats.setdefault(fmt, []).append((density, round(float(np.exp(np.mean(np.log(speedups)))), 3)))
    return points


@dataclass
class LayerChoice:
    sparse: bool
    format: str  # "1x1", "2x1", "4x1", "2:4" (blocked output rows x input channels, or N:M), "-" if none applies
    density: float  # nonzero weights / weights
    stored_density: float  # what the format multiplies / weights
    speedup: float  # expected speed-up of that format over dense
    reason: str | None = None  # why the layer is dense

    def to_dict(self) -> dict:
        row = asdict(self)
        del row["sparse"]
        return {"decision": "sparse" if self.sparse else "dense", **row, "density": round(self.density, 4),
                "stored_density": round(self.stored_density, 4), "speedup": round(self.speedup, 2)}


def dense_because(reason: str) -> LayerChoice:
    """A layer no sparse kernel can run (depthwise, run-time weight, ...)."""
    return LayerChoice(False, "-", 1.0, 1.0, 1.0, reason)


def stored_density(w: np.ndarray, fmt: str) -> float | None:
    """Fraction of W's slots the format multiplies, or None if W cannot take it."""
    M, K = w.shape
    if fmt == "2:4":
        return 0.5 if two_of_four_fits(w) else None
    mb = int(fmt[0])
    if mb > M:
        return None
    nonzero = w != 0
    kept = sum(int(nonzero[r:r + rows].any(axis=0).sum()) * rows for r, rows in block_rows(M, mb))
    return kept / w.size


def choose(w: np.ndarray, target: str) -> LayerChoice:
    """The format with the best expected speed-up for W [M, K] on target, or dense with the reason."""
    density = float(np.count_nonzero(w)) / w.size
    best = None
    for fmt in FORMATS:
        stored = stored_density(w, fmt)
        if stored is None:
            continue
        speedup = expected_speedup(target, stored, fmt)
        if best is None or speedup > best.speedup:
            best = LayerChoice(True, fmt, density, stored, speedup)
    if best.speedup >= MIN_SPEEDUP:
        return best
    best.sparse = False
    best.reason = (f"density {best.stored_density:.2f} above break-even {break_even(target, best.format):.2f} "
                   f"for {target}")
    return best


def layer_choice(w2: np.ndarray | None, pixels: int, target: str, structural: str | None = None) -> LayerChoice:
    """The choice for a layer whose weight is W2 [M, K] over X rows of `pixels`, or dense for a structural reason."""
    if structural:
        return dense_because(structural)
    if w2.shape[1] * pixels * 4 > MAX_DELTA_BYTES:
        return dense_because(f"input of {w2.shape[1]} rows x {pixels} pixels is too large for 32-bit byte deltas")
    return choose(w2, target)


def format_code(fmt: str) -> tuple[SparseFormat, int]:
    """(SparseFormat, rows per block) of a format name."""
    return (SparseFormat.N_OF_M, 1) if fmt == "2:4" else (SparseFormat.BLOCKED, int(fmt[0]))
