"""The CLI end to end: compile (report), run (.npy in/out), inspect."""

from __future__ import annotations

import json

import numpy as np

import sparsec
from conftest import run_onnxruntime, single_op_model
from sparsec.cli import main


def test_compile_run_inspect(tmp_path, capsys, rng):
    model = single_op_model("Conv", [("x", [1, 3, 8, 8])], None,
                            [("w", rng.standard_normal((4, 3, 3, 3)).astype(np.float32))], {"pads": [1, 1, 1, 1]})
    path = tmp_path / "conv.onnx"
    path.write_bytes(model.SerializeToString())
    assert main(["compile", str(path), "--target", "host", "-o", str(tmp_path / "build"), "-q"]) == 0
    out = capsys.readouterr().out
    assert "fold_constants" in out and "activation memory" in out
    artifact = tmp_path / "build" / "conv.spx"
    report = json.loads((tmp_path / "build" / "conv.report.json").read_text())
    assert report["artifact_bytes"] == artifact.stat().st_size
    assert [row["pass"] for row in report["passes"]][0] == "fold_constants"
    assert report["passes"][0]["does"].startswith("Evaluates every node whose inputs are constant")

    x = rng.standard_normal((1, 3, 8, 8)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    assert main(["run", str(artifact), "--input", str(tmp_path / "x.npy"), "--output", str(tmp_path / "y.npy")]) == 0
    y = np.load(tmp_path / "y.npy")
    np.testing.assert_allclose(y, run_onnxruntime(model, {"x": x})[0], rtol=1e-5, atol=1e-5)

    assert main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert "Conv" in out and "all ops supported" in out and f"{4 * 3 * 3 * 3 * 8 * 8:,} MACs" in out


def test_run_with_missing_input_file(tmp_path, capsys):
    model = single_op_model("Relu", [("x", [2, 2])])
    art = sparsec.compile(model, output=tmp_path / "r.spx").path
    assert main(["run", str(art), "--input", str(tmp_path / "absent.npy")]) == 1
    assert "cannot read input file" in capsys.readouterr().err


def test_profile_names_every_op(tmp_path, rng):
    model = single_op_model("Conv", [("x", [1, 3, 8, 8])], None,
                            [("w", rng.standard_normal((4, 3, 3, 3)).astype(np.float32))])
    sess = sparsec.load(sparsec.compile(model, output=tmp_path / "p.spx").path)
    rows = sess.profile({"x": np.ones((1, 3, 8, 8), np.float32)}, repeats=3)
    assert [(name, kind) for name, kind, _ in rows] == [("Conv_0", "Conv")]
    assert rows[0][2] > 0
