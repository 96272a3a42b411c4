"""The zoo, end to end: export from PyTorch (random seeded weights), compile, run, compare with onnxruntime."""

from __future__ import annotations

import pytest

import zoo
from conftest import max_rel_error, run_onnxruntime

import sparsec

pytest.importorskip("torchvision")

TOLERANCE = 1e-4  # max|sparsec - onnxruntime| / max|onnxruntime|


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n in zoo.SLOW else n for n in zoo.ZOO]
)
def test_zoo_model_matches_onnxruntime(name, tmp_path, record_property):
    path = zoo.cached(name)
    feed = zoo.example_inputs(name)
    result = sparsec.compile(path, output=tmp_path)
    ours = sparsec.load(result.path).run(None, feed)
    ref = run_onnxruntime(path, feed)
    error = max(max_rel_error(a, r) for a, r in zip(ours, ref))
    record_property("max_rel_error", error)
    print(f"{name}: max relative error {error:.2e}, arena {result.report['peak_activation_bytes']:,} B "
          f"(naive {result.report['naive_activation_bytes']:,} B)")
    assert error < TOLERANCE
