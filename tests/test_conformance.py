"""ONNX backend node conformance: every node case of the installed onnx through sparsec on the host.

A case passes (right result), or is a refusal recorded in conformance_expected.tsv. It fails on an unexpected
pass (delete the line), an unexpected or changed refusal, a wrong result, a run-time failure after a successful
compile, a crash, and (unless SPARSEC_CONFORMANCE_ALLOW_BUGS=1) an InternalError or any exception outside
SparsecError. The counts
are printed at the end of the pytest run and written as JSON to $SPARSEC_CONFORMANCE_JSON if set.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

import conformance

INDEX = conformance.ensure_cases()
EXPECTED = conformance.read_expectations()


class _Summary:
    """A pytest plugin registered by the `outcomes` fixture: prints the counts after the run."""

    def __init__(self, results):
        self.results = results

    def pytest_terminal_summary(self, terminalreporter):
        summary = conformance.counts(self.results, INDEX)
        terminalreporter.section("ONNX node conformance")
        for line in conformance.summary_lines(summary):
            terminalreporter.write_line(line)
        if os.environ.get("SPARSEC_CONFORMANCE_JSON"):
            with open(os.environ["SPARSEC_CONFORMANCE_JSON"], "w") as f:
                json.dump(summary, f, indent=1)


@pytest.fixture(scope="session")
def outcomes(request):
    """Runs the selected cases once (2 worker processes) and registers the summary printer."""
    selected = [item.callspec.params["case"] for item in request.session.items
                if getattr(item, "originalname", None) in ("test_node_case", "test_light_model")]
    results = conformance.run_cases(selected)
    request.config.pluginmanager.register(_Summary(results), "sparsec-conformance-summary")
    return results


@pytest.mark.parametrize("case", sorted(INDEX))
def test_node_case(case, outcomes):
    failure = conformance.check(case, outcomes[case], EXPECTED.get(case))
    assert not failure, failure


# The light models with 60M+ weights take up to a minute each (2 cores): CI runs them, `-m "not slow"` skips them.
_BIG_LIGHT = {"light/light_bvlc_alexnet", "light/light_vgg19", "light/light_zfnet512"}


@pytest.mark.parametrize("case", [pytest.param(n, marks=pytest.mark.slow) if n in _BIG_LIGHT else n
                                  for n in conformance.light_models()])
def test_light_model(case, outcomes):
    """onnx's light models (opset 9, ConstantOfShape weights) with seeded random weights, against onnxruntime."""
    failure = conformance.check(case, outcomes[case], EXPECTED.get(case))
    assert not failure, failure


def test_light_models_get_random_weights():
    model = conformance.randomize_weights(conformance.onnx.load(conformance.LIGHT_DIR / "light_squeezenet.onnx"))
    assert not [n for n in model.graph.node if n.op_type == "ConstantOfShape"]
    weights = [conformance.numpy_helper.to_array(i) for i in model.graph.initializer if i.dims and len(i.dims) == 4]
    assert weights and all(np.unique(w).size > 1 for w in weights)
    conformance.onnx.checker.check_model(model)


def test_expectations_name_existing_cases():
    """A line for a case the installed onnx does not have is stale (the list can only shrink)."""
    assert sorted(set(EXPECTED) - set(INDEX) - set(conformance.light_models())) == []
    assert {e.status for e in EXPECTED.values()} <= {"rejected", "bug"}


def test_typed_selection_matches_the_issue():
    """The issue's denominator: float32/int64/int32/bool/uint8/int8 inputs and outputs, default domain."""
    typed = [n for n, info in INDEX.items() if info["typed"]]
    if conformance.onnx.__version__.startswith("1.23."):
        assert (len(INDEX), len(typed)) == (1884, 1424)
    assert "test_relu" in typed and "test_cast_FLOAT_to_FLOAT16" not in typed


@pytest.mark.parametrize("actual, expected, ok", [
    (np.array([1.0, np.nan], np.float32), np.array([1.0005, np.nan], np.float32), True),
    (np.array([1.0, 2.0], np.float32), np.array([1.0, np.nan], np.float32), False),  # NaN positions must agree
    (np.array([np.inf], np.float32), np.array([np.inf], np.float32), True),
    (np.array([1.0], np.float32), np.array([1.002], np.float32), False),  # beyond rtol 1e-3
    (np.array([1e-8], np.float32), np.array([0.0], np.float32), True),  # within atol 1e-7
    (np.array([3], np.int64), np.array([3], np.int64), True),
    (np.array([3], np.int64), np.array([4], np.int64), False),  # integers are exact
    (np.array([1], np.uint8), np.array([True]), False),  # a bool output must come back as bool
    (np.zeros((2, 1), np.float32), np.zeros((2,), np.float32), False),
])
def test_compare(actual, expected, ok):
    assert (conformance.compare(actual, expected) == "") == ok


@pytest.mark.parametrize("status, expected, fails", [
    ("pass", None, False),
    ("pass", conformance.Expectation("rejected", "UnsupportedOpError", ""), True),  # the list must shrink
    ("rejected", None, True),
    ("rejected", conformance.Expectation("rejected", "UnsupportedOpError", "x"), False),
    ("rejected", conformance.Expectation("rejected", "ShapeError", "x"), True),
    ("wrong", conformance.Expectation("rejected", "UnsupportedOpError", ""), True),  # never an expected outcome
    ("run_failure", None, True),
    ("crash", None, True),
])
def test_check(status, expected, fails):
    outcome = conformance.Outcome(status, "UnsupportedOpError" if status == "rejected" else "", "detail")
    assert bool(conformance.check("test_x", outcome, expected)) == fails


def test_recorded_bug_fails_unless_allowed(monkeypatch):
    bug = conformance.Outcome("bug", "builtins.RuntimeError", "boom")
    expected = conformance.Expectation("bug", "builtins.RuntimeError", "boom")
    monkeypatch.setattr(conformance, "ALLOW_RECORDED_BUGS", False)
    assert "a bug in sparsec" in conformance.check("test_x", bug, expected)
    monkeypatch.setattr(conformance, "ALLOW_RECORDED_BUGS", True)
    assert conformance.check("test_x", bug, expected) == ""


def test_a_dying_worker_costs_one_case():
    """A case that kills its worker process is recorded as a crash; the next case runs in a new worker."""
    results = conformance.run_cases(["test_no_such_case", "test_relu"], workers=1)
    assert results["test_no_such_case"].status == "crash"
    assert "worker died" in results["test_no_such_case"].detail
    assert results["test_relu"].status == "pass"


def test_update_records_refusals_only(tmp_path, monkeypatch):
    results = {"a": conformance.Outcome("rejected", "UnsupportedOpError", "node 'n' (LRN): no lowering rule"),
               "b": conformance.Outcome("bug", "builtins.KeyError", "'x'"),
               "c": conformance.Outcome("wrong", "", "output 'y': 3 of 4 elements differ"),
               "d": conformance.Outcome("pass")}
    path = tmp_path / "expected.tsv"
    monkeypatch.setattr(conformance, "ALLOW_RECORDED_BUGS", False)
    conformance.write_expectations(results, path)
    assert conformance.read_expectations(path) == {
        "a": conformance.Expectation("rejected", "UnsupportedOpError", "node 'n' (LRN): no lowering rule")}
    monkeypatch.setattr(conformance, "ALLOW_RECORDED_BUGS", True)
    conformance.write_expectations(results, path)
    assert sorted(conformance.read_expectations(path)) == ["a", "b"]


def test_internal_error_is_a_bug(tmp_path, monkeypatch):
    """sparsec's InternalError is a SparsecError, but it says "a bug in sparsec": never an expected refusal."""
    import sparsec

    def refuse(*args, **kwargs):
        raise sparsec.InternalError("the runtime refuses the compiled artifact")

    monkeypatch.setattr(sparsec, "compile", refuse)
    outcome = conformance.compile_refusal(conformance.onnx.ModelProto(), tmp_path / "m.spx")
    assert (outcome.status, outcome.error) == ("bug", "InternalError")
