"""Hostile and careless input (issue 9): no foreign file read, nothing half-written, user mistakes are
SparsecError subclasses (CLI exit 1, one line), sizes checked before anything is written."""

from __future__ import annotations

import os
import stat

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.external_data_helper import set_external_data

import sparsec
from conftest import single_op_model
from sparsec.cli import main


def compile_cli(capsys, *args) -> tuple[int, str]:
    """Runs `sparsec compile -q ...`; returns the exit code and stderr."""
    code = main(["compile", *map(str, args), "-q"])
    return code, capsys.readouterr().err


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sparsec: error: "), err
    return lines[0]


# --- 1. external data: read next to the model, only inside its folder, never through a symlink ---

def external_weight_model(location: str) -> onnx.ModelProto:
    w = numpy_helper.from_array(np.zeros(4, np.float32), "w")
    set_external_data(w, location)
    w.ClearField("raw_data")
    w.data_location = TensorProto.EXTERNAL
    graph = helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"], name="add")], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])], [w])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.fixture
def model_dir(tmp_path, monkeypatch):
    """A model folder with the real w.bin (7.0) and a working directory holding a decoy w.bin (9999.0)."""
    work, folder, elsewhere = tmp_path / "work", tmp_path / "models", tmp_path / "elsewhere"
    for d in (work, folder, elsewhere):
        d.mkdir()
    np.full(4, 7.0, np.float32).tofile(folder / "w.bin")
    np.full(4, 9999.0, np.float32).tofile(work / "w.bin")
    np.full(4, 1234.0, np.float32).tofile(elsewhere / "secret.bin")
    monkeypatch.chdir(work)
    return folder


def test_external_data_is_read_next_to_the_model(model_dir, tmp_path):
    onnx.save(external_weight_model("w.bin"), model_dir / "m.onnx")
    session = sparsec.load(sparsec.compile(model_dir / "m.onnx", output=tmp_path / "out").path)
    np.testing.assert_array_equal(session.run(None, {"x": np.zeros(4, np.float32)})[0], np.full(4, 7.0, np.float32))


def test_external_data_from_an_empty_working_directory(model_dir, tmp_path):
    (tmp_path / "work" / "w.bin").unlink()
    onnx.save(external_weight_model("w.bin"), model_dir / "m.onnx")
    assert sparsec.compile(model_dir / "m.onnx", output=tmp_path / "out").path.is_file()


@pytest.mark.parametrize("location,message", [
    ("../elsewhere/secret.bin", "outside"),
    ("ABSOLUTE", "absolute"),
    ("link.bin", "symbolic link"),
    ("linkdir/secret.bin", "outside"),
    ("absent.bin", "absent.bin"),
])
def test_external_data_outside_the_model_folder_is_refused(model_dir, tmp_path, capsys, location, message):
    secret = tmp_path / "elsewhere" / "secret.bin"
    (model_dir / "link.bin").symlink_to(secret)
    (model_dir / "linkdir").symlink_to(secret.parent)
    onnx.save(external_weight_model(str(secret) if location == "ABSOLUTE" else location), model_dir / "m.onnx")
    with pytest.raises(sparsec.ModelLoadError, match=message) as info:
        sparsec.compile(model_dir / "m.onnx", output=tmp_path / "out")
    assert "'w'" in str(info.value)
    code, err = compile_cli(capsys, model_dir / "m.onnx", "-o", tmp_path / "out")
    assert code == 1 and message in one_error_line(err)
    assert not (tmp_path / "out").exists()


def test_external_data_in_a_model_proto_says_what_to_do(model_dir, tmp_path):
    with pytest.raises(sparsec.ModelLoadError, match="external data.*'w'.*path"):
        sparsec.compile(external_weight_model("w.bin"), output=tmp_path / "out")
    assert not (tmp_path / "out").exists()


# --- 3. all outputs of a command appear together or none does; files get the usual mode ---

def test_report_that_cannot_be_written_leaves_no_artifact(tmp_path, capsys):
    path = tmp_path / "model.onnx"
    onnx.save(single_op_model("Relu", [("x", [2, 3])]), path)
    out = tmp_path / "out"
    (out / "model.report.json").mkdir(parents=True)
    with pytest.raises(sparsec.SparsecError, match="model.report.json"):
        sparsec.compile(path, output=out)
    code, err = compile_cli(capsys, path, "-o", out)
    assert code == 1 and "model.report.json" in one_error_line(err)
    assert sorted(p.name for p in out.iterdir()) == ["model.report.json"]  # no .spx, no temporaries


def test_existing_outputs_stay_when_a_rename_fails(tmp_path, capsys, monkeypatch):
    path = tmp_path / "model.onnx"
    onnx.save(single_op_model("Relu", [("x", [2, 3])]), path)
    assert compile_cli(capsys, path, "-o", tmp_path / "out")[0] == 0
    before = {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()}
    onnx.save(single_op_model("Sigmoid", [("x", [2, 3])]), path)
    replace = os.replace

    def replace_but_not_the_report(src, dst):
        if str(dst).endswith(".report.json"):
            raise PermissionError(13, "Permission denied", str(dst))
        replace(src, dst)

    monkeypatch.setattr(os, "replace", replace_but_not_the_report)
    code, err = compile_cli(capsys, path, "-o", tmp_path / "out")
    assert code == 1 and "model.report.json" in one_error_line(err)
    assert {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()} == before


def test_prune_report_that_cannot_be_written_leaves_no_model(tmp_path, capsys):
    from test_prune import Residual, export

    path = tmp_path / "residual.onnx"
    onnx.save(export(Residual(), (1, 3, 8, 8)), path)
    (tmp_path / "report.json").mkdir()
    code = main(["prune", str(path), "-q", "-o", str(tmp_path / "pruned.onnx"), "--report", str(tmp_path / "report.json")])
    err = capsys.readouterr().err
    assert code == 1 and "report.json" in one_error_line(err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json", "residual.onnx"]


def test_outputs_get_the_usual_file_mode(tmp_path):
    old = os.umask(0o022)
    try:
        result = sparsec.compile(single_op_model("Relu", [("x", [2, 3])]), output=tmp_path / "m.spx")
    finally:
        os.umask(old)
    for path in (result.path, tmp_path / "m.report.json"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path


# --- 4. sizes: checked with exact arithmetic in the front end, naming the tensor ---

def wide_input_model(dims) -> onnx.ModelProto:
    graph = helper.make_graph([helper.make_node("Relu", ["big"], ["y"], name="relu")], "g",
                              [helper.make_tensor_value_info("big", TensorProto.FLOAT, dims)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, dims)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def outer_product_model() -> onnx.ModelProto:
    """Inputs of 2^21 elements whose product has 2^42: only the node output is too large."""
    graph = helper.make_graph([helper.make_node("MatMul", ["col", "row"], ["outer"], name="outer_product")], "g",
                              [helper.make_tensor_value_info("col", TensorProto.FLOAT, [2**21, 1]),
                               helper.make_tensor_value_info("row", TensorProto.FLOAT, [1, 2**21])],
                              [helper.make_tensor_value_info("outer", TensorProto.FLOAT, ["m", "n"])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def bad_initializer_model(raw: bytes) -> onnx.ModelProto:
    w = helper.make_tensor("weights", TensorProto.FLOAT, [2, 3], b"\0" * 24, raw=True)
    w.raw_data = raw  # make_tensor checks the size; a hostile file does not
    graph = helper.make_graph([helper.make_node("Add", ["x", "weights"], ["y"], name="add")], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])], [w])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("model,error,message", [
    (wide_input_model([2**32, 2**32]), sparsec.ShapeError, "'big'"),
    (wide_input_model([2**62, 4]), sparsec.ShapeError, "'big'"),
    (wide_input_model([2**31, 2**31]), sparsec.ShapeError, "'big'"),
    (wide_input_model([-3, 4]), sparsec.ShapeError, "'big'.*declares \\[-3, 4\\].*negative.*--input-shape big=1,4"),
    (outer_product_model(), sparsec.ShapeError, "'outer' \\(output of node 'outer_product' \\(MatMul\\)\\).*too large"),
    (bad_initializer_model(b"\0" * 28), sparsec.ModelLoadError, "'weights'.*28 bytes.*24"),
    (bad_initializer_model(b"\0" * 20), sparsec.ModelLoadError, "'weights'.*20 bytes.*24"),
], ids=["2^32x2^32", "2^62x4", "2^31x2^31", "negative", "node-output", "raw-longer", "raw-shorter"])
def test_sizes_are_checked_naming_the_tensor(model, error, message, tmp_path, capsys):
    with pytest.raises(error, match=message):
        sparsec.compile(model, output=tmp_path / "out")
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    code, err = compile_cli(capsys, path, "-o", tmp_path / "out")
    assert code == 1, err
    one_error_line(err)
    assert not (tmp_path / "out").exists()


# --- 5. user mistakes are exit 1 with one line; the Python API raises SparsecError subclasses ---

@pytest.fixture
def relu_path(tmp_path):
    path = tmp_path / "relu.onnx"
    onnx.save(single_op_model("Relu", [("x", [2, 3])]), path)
    return path


@pytest.mark.parametrize("output", ["a_file", "a_file/below", "a_file.spx/below.spx", "/proc/no/such/dir"])
def test_impossible_output_paths(relu_path, tmp_path, capsys, output):
    (tmp_path / "a_file").write_text("not a directory")
    (tmp_path / "a_file.spx").write_text("not a directory")
    target = output if output.startswith("/") else tmp_path / output
    with pytest.raises(sparsec.SparsecError, match="cannot write"):
        sparsec.compile(relu_path, output=target)
    code, err = compile_cli(capsys, relu_path, "-o", target)
    assert code == 1 and "cannot write" in one_error_line(err)
    assert (tmp_path / "a_file").read_text() == "not a directory"
    code = main(["prune", str(relu_path), "-q", "-o", str(tmp_path / "a_file" / "p.onnx")])
    assert code == 1 and "cannot write" in one_error_line(capsys.readouterr().err)
    artifact = sparsec.compile(relu_path, output=tmp_path / "ok.spx").path
    np.save(tmp_path / "x.npy", np.zeros((2, 3), np.float32))
    code = main(["run", str(artifact), "--input", str(tmp_path / "x.npy"), "--output", str(tmp_path / "a_file" / "y")])
    assert code == 1 and "cannot write" in one_error_line(capsys.readouterr().err)


@pytest.mark.parametrize("args,message", [
    (["--prune", "-0.5"], "ratio"), (["--prune", "nan"], "ratio"), (["--prune", "inf"], "ratio"),
    (["--prune", "0.5", "--max-ratio", "nan"], "max_ratio"), (["--prune", "0.5", "--round-to", "-8"], "round_to"),
    (["--input-shape", "x=2,3,"], "not of the form"), (["--input-shape", "=2,3"], "not of the form"),
    (["--input-shape", "x=2,-3"], "positive"), (["--input-shape", "x=99999999999999999999999,3"], "x"),
    (["--target", "z80"], "unknown target"),
])
def test_bad_argument_values(relu_path, tmp_path, capsys, args, message):
    code, err = compile_cli(capsys, relu_path, "-o", tmp_path / "out", *args)
    assert code == 1 and message in one_error_line(err)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("options,error,message", [
    ({"passes": ["no_such_pass"]}, sparsec.SparsecError, "unknown pass"),
    ({"prune": "half"}, sparsec.InputError, "ratio"), ({"prune": float("nan")}, sparsec.InputError, "ratio"),
    ({"input_shapes": {"x": [2, 2**40]}}, sparsec.ShapeError, "dimensions"),
    ({"input_shapes": {"x": 6}}, sparsec.ShapeError, "dimensions"),
    ({"target": "z80"}, sparsec.SparsecError, "unknown target"),
])
def test_bad_api_arguments(relu_path, tmp_path, options, error, message):
    with pytest.raises(error, match=message):
        sparsec.compile(relu_path, output=tmp_path / "out", **options)
    assert not (tmp_path / "out").exists()


def test_load_a_directory_says_so(tmp_path):
    with pytest.raises(sparsec.ArtifactError, match="is a directory"):
        sparsec.load(tmp_path)


# --- 8. run-time errors: consistent with what the user passed ---

@pytest.fixture
def relu_session(tmp_path):
    model = single_op_model("Softmax", [("x", [2, 3])], outputs=["probs"])
    return sparsec.load(sparsec.compile(model, output=tmp_path / "s.spx").path)


@pytest.mark.parametrize("feed", [[np.zeros((2, 3), np.float32)], {0: np.zeros((2, 3), np.float32)}, "x", None],
                         ids=["list", "int-key", "str", "none"])
def test_feed_that_is_not_a_dict_of_names(relu_session, feed):
    with pytest.raises(sparsec.InputError, match="dict"):
        relu_session.run(None, feed)


def test_output_names_as_one_string(relu_session):
    x = np.zeros((2, 3), np.float32)
    expected = relu_session.run(None, {"x": x})
    np.testing.assert_array_equal(relu_session.run("probs", {"x": x})[0], expected[0])
    assert len(relu_session.run("probs", {"x": x})) == 1
    with pytest.raises(sparsec.InputError, match="'prob'"):
        relu_session.run("prob", {"x": x})


def test_gather_reports_the_index_the_user_passed(tmp_path):
    model = single_op_model("Gather", [("data", [5, 2]), ("idx", [2])], dtypes={"idx": TensorProto.INT64})
    session = sparsec.load(sparsec.compile(model, output=tmp_path / "g.spx").path)
    with pytest.raises(sparsec.InputError, match="index -9 out of range"):
        session.run(None, {"data": np.zeros((5, 2), np.float32), "idx": np.array([0, -9], np.int64)})


# --- 9. names: NUL refused at load, cycle / undefined tensor messages name the node and op ---

@pytest.mark.parametrize("where", ["input", "output", "node", "initializer"])
def test_nul_in_a_name_is_refused(where, tmp_path):
    x, y, node, w = ("in\0put" if where == "input" else "x", "out\0put" if where == "output" else "y",
                     "no\0de" if where == "node" else "add", "wei\0ght" if where == "initializer" else "w")
    graph = helper.make_graph([helper.make_node("Add", [x, w], [y], name=node)], "g",
                              [helper.make_tensor_value_info(x, TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info(y, TensorProto.FLOAT, [2])],
                              [numpy_helper.from_array(np.ones(2, np.float32), w)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    escaped = {"input": r"in\x00put", "output": r"out\x00put", "node": r"no\x00de", "initializer": r"wei\x00ght"}[where]
    with pytest.raises(sparsec.ModelLoadError, match="NUL") as info:
        sparsec.compile(model, output=tmp_path / "out")
    assert escaped in str(info.value) and "\0" not in str(info.value)


def test_undefined_tensor_and_cycle_name_the_node(tmp_path, capsys):
    undefined = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["a"], name="first"), helper.make_node("Add", ["a", "c"], ["y"], name="adder")],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    cycle = helper.make_graph(
        [helper.make_node("Add", ["x", "b"], ["a"], name="loop_a"), helper.make_node("Relu", ["a"], ["b"], name="loop_b"),
         helper.make_node("Relu", ["a"], ["y"], name="out")],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    for graph, expected in [(undefined, "'c' of node 'adder' (Add)"), (cycle, "'b' of node 'loop_a' (Add)")]:
        path = tmp_path / "m.onnx"
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
        with pytest.raises(sparsec.ModelLoadError) as info:
            sparsec.compile(path, output=tmp_path / "out")
        assert expected in str(info.value)
        code, err = compile_cli(capsys, path, "-o", tmp_path / "out")
        assert code == 1 and expected in one_error_line(err)


# --- 11. an opset newer than the installed onnx knows is refused ---

def test_opset_newer_than_onnx_knows_is_refused(tmp_path):
    newest = onnx.defs.onnx_opset_version()
    model = single_op_model("Relu", [("x", [2, 3])], output_shape=[2, 3], opset=newest)
    model.opset_import[0].version = newest + 2
    with pytest.raises(sparsec.ModelLoadError, match=f"opset {newest + 2}.*{newest}"):
        sparsec.compile(model, output=tmp_path / "out")
    assert not (tmp_path / "out").exists()
