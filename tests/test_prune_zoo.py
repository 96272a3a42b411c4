"""Pruning the zoo at 30% and 50%: mask == shrink, the pruned model runs in onnxruntime and sparsec, sizes drop."""

from __future__ import annotations

import pytest

import zoo
from conftest import prune_and_check

pytest.importorskip("torchvision")

TOLERANCE = 1e-4


@pytest.mark.parametrize("ratio", [0.3, 0.5])
@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n in zoo.SLOW else n for n in zoo.ZOO]
)
def test_zoo_model_prunes(name, ratio, tmp_path):
    report, mask_error, sparsec_error = prune_and_check(zoo.cached(name), zoo.example_inputs(name), tmp_path, ratio)
    pruned_units = sum(r["units"] - r["kept"] for r in report.rows)
    print(f"{name} @ {ratio}: params {report.params_after / report.params_before:.2f}, "
          f"MACs {report.macs_after / report.macs_before:.2f}, mask error {mask_error:.1e}, sparsec {sparsec_error:.1e}")
    assert pruned_units > 0
    assert report.params_after < report.params_before and report.macs_after < report.macs_before
    assert mask_error < TOLERANCE
    assert sparsec_error < TOLERANCE
