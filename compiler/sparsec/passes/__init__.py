"""Graph passes. Each is a small `ir.Model -> ir.Model` function with a name and a one-line docstring."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from typing import Callable

import onnx_ir as ir

from sparsec.naming import op_label
from sparsec.passes.batchnorm import fold_batchnorm
from sparsec.passes.cleanup import fold_constants, remove_dead_nodes, remove_identities
from sparsec.passes.fusion import fold_transpose_into_matmul, fuse_activations, fuse_gelu, fuse_matmul_bias
from sparsec.passes.shapes import shapes_from_consumers


@dataclass(frozen=True)
class Pass:
    name: str
    run: Callable[[ir.Model], ir.Model]

    @property
    def doc(self) -> str:
        return (self.run.__doc__ or "").strip().splitlines()[0]


CLEANUP = [
    Pass("fold_constants", fold_constants),
    Pass("remove_identities", remove_identities),
    Pass("shapes_from_consumers", shapes_from_consumers),
    Pass("fold_batchnorm", fold_batchnorm),
    Pass("fuse_matmul_bias", fuse_matmul_bias),
    Pass("fuse_gelu", fuse_gelu),
    Pass("fuse_activations", fuse_activations),
    Pass("fold_transpose_into_matmul", fold_transpose_into_matmul),
    Pass("remove_dead_nodes", remove_dead_nodes),
]
PASSES = {p.name: p for p in CLEANUP}


def op_counts(model: ir.Model) -> Counter:
    return Counter(op_label(n) for n in model.graph)


def run_passes(model: ir.Model, passes: list[Pass], progress=None) -> tuple[ir.Model, list[dict]]:
    """Runs passes in order; returns the model and one report row per pass (nodes before/after, changes)."""
    rows = []
    for i, p in enumerate(passes):
        if progress:
            progress(f"pass {i + 1}/{len(passes)}: {p.name}")
        before = op_counts(model)
        start = time.perf_counter()
        model = p.run(model)
        after = op_counts(model)
        changes = {op: after[op] - before[op] for op in sorted(set(before) | set(after)) if after[op] != before[op]}
        rows.append({
            "pass": p.name,
            "does": p.doc,
            "nodes_before": sum(before.values()),
            "nodes_after": sum(after.values()),
            "changes": changes,
            "seconds": round(time.perf_counter() - start, 4),
        })
    return model, rows
