"""User errors: each is a clear SparsecError subclass naming what is wrong, CLI exit code 1, no partial output."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import sparsec
from conftest import single_op_model
from sparsec.cli import main


def small_model(batch="N") -> onnx.ModelProto:
    node = helper.make_node("Relu", ["x"], ["y"], name="relu")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 4])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_not_an_onnx_file(tmp_path, capsys):
    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"\x00\xffthis is not protobuf" * 10)
    with pytest.raises(sparsec.ModelLoadError, match="not an ONNX model"):
        sparsec.compile(bad, output=tmp_path / "out")
    assert main(["compile", str(bad), "-o", str(tmp_path / "out")]) == 1
    assert "not an ONNX model" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_truncated_onnx_file(tmp_path):
    path = tmp_path / "m.onnx"
    data = single_op_model("Conv", [("x", [1, 3, 8, 8])], None, [("w", np.ones((4, 3, 3, 3), np.float32))]).SerializeToString()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(sparsec.ModelLoadError):
        sparsec.compile(path, output=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_missing_file(tmp_path):
    with pytest.raises(sparsec.ModelLoadError, match="cannot read"):
        sparsec.compile(tmp_path / "nope.onnx")


def test_unsupported_ops_are_all_listed(tmp_path, capsys):
    nodes = [helper.make_node("Bernoulli", ["x"], ["d"], name="bernoulli_node"),
             helper.make_node("RandomUniformLike", ["x"], ["h"], name="random_node"),
             helper.make_node("Relu", ["x"], ["r"], name="fine")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 3])],
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("d", "h", "r")])
    model = onnx.shape_inference.infer_shapes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    with pytest.raises(sparsec.UnsupportedOpError) as info:
        sparsec.compile(model, output=tmp_path / "out")
    assert [(n, op) for n, op, _ in info.value.nodes] == [("bernoulli_node", "Bernoulli"),
                                                           ("random_node", "RandomUniformLike")]
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    assert main(["compile", str(path), "-o", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "bernoulli_node" in err and "random_node" in err and "2 unsupported" in err
    assert not (tmp_path / "out").exists()


def test_dynamic_shape_needs_input_shape(tmp_path, capsys):
    path = tmp_path / "dyn.onnx"
    onnx.save(small_model(), path)
    with pytest.raises(sparsec.ShapeError, match="--input-shape"):
        sparsec.compile(path, output=tmp_path / "out")
    assert main(["compile", str(path), "-o", str(tmp_path / "out"), "-q"]) == 1
    assert "dynamic shape" in capsys.readouterr().err
    assert main(["compile", str(path), "-o", str(tmp_path / "out"), "-q", "--input-shape", "x=2,4"]) == 0
    assert sparsec.load(tmp_path / "out" / "dyn.spx").get_inputs()[0].shape == (2, 4)


@pytest.mark.parametrize("spec,message", [("x=2", "rank 1"), ("z=2,4", "unknown input"), ("x=2,four", "not of the form")])
def test_bad_input_shape_spec(spec, message, tmp_path, capsys):
    path = tmp_path / "dyn.onnx"
    onnx.save(small_model(), path)
    assert main(["compile", str(path), "-o", str(tmp_path / "out"), "-q", "--input-shape", spec]) == 1
    assert message in capsys.readouterr().err


def test_wrong_inputs_at_run_time(tmp_path):
    art = sparsec.compile(small_model(batch=2), output=tmp_path / "m.spx").path
    sess = sparsec.load(art)
    x = np.ones((2, 4), np.float32)
    assert np.array_equal(sess.run(None, {"x": x})[0], x)
    with pytest.raises(sparsec.InputError, match="unknown \\['z'\\]"):
        sess.run(None, {"z": x})
    with pytest.raises(sparsec.InputError, match="shape \\[2, 4\\], got \\[4, 2\\]"):
        sess.run(None, {"x": x.T.copy()})
    with pytest.raises(sparsec.InputError, match="must be float32, got float64"):
        sess.run(None, {"x": x.astype(np.float64)})
    with pytest.raises(sparsec.InputError, match="unknown output"):
        sess.run(["nope"], {"x": x})


def test_gather_index_out_of_range_is_an_error(tmp_path):
    table = onnx.numpy_helper.from_array(np.ones((10, 4), np.float32), "table")
    node = helper.make_node("Gather", ["table", "ids"], ["y"], name="embed")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("ids", TensorProto.INT64, [3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 4])], [table])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    sess = sparsec.load(sparsec.compile(model, output=tmp_path / "g.spx").path)
    with pytest.raises(sparsec.InputError, match="'embed'.*index 10 out of range"):
        sess.run(None, {"ids": np.array([0, 10, 1], np.int64)})


def test_artifact_for_another_target_is_rejected(tmp_path):
    other = "arm64" if sparsec.runtime_target() != "arm64" else "x86_64"
    art = sparsec.compile(small_model(batch=1), target=other, output=tmp_path / "m.spx").path
    with pytest.raises(sparsec.ArtifactError, match=f"built for target {other}"):
        sparsec.load(art)


def test_unknown_target(tmp_path):
    with pytest.raises(sparsec.SparsecError, match="unknown target 'riscv'"):
        sparsec.compile(small_model(batch=1), target="riscv", output=tmp_path)
