"""Frontend: opsets 9..21 (ops whose form changed between opsets), old-style initializer inputs, checker errors."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from conftest import compile_and_compare

F = np.float32


def versioned_model(opset: int, rng) -> onnx.ModelProto:
    """Conv -> BN -> Clip(0,6) -> Pad -> MaxPool -> ReduceMean -> Squeeze -> Unsqueeze -> Split -> Concat ->
    Reshape -> Gemm -> Softmax, each written in the form its opset defines."""
    inits = {"w": rng.standard_normal((4, 3, 3, 3)).astype(F), "fc": rng.standard_normal((6, 4)).astype(F),
             "fc_b": rng.standard_normal(6).astype(F),
             "scale": rng.uniform(0.5, 1.5, 4).astype(F), "bias": rng.standard_normal(4).astype(F),
             "mean": rng.standard_normal(4).astype(F), "var": rng.uniform(0.5, 1.5, 4).astype(F)}
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("BatchNormalization", ["c", "scale", "bias", "mean", "var"], ["bn"])]
    if opset < 11:
        nodes.append(helper.make_node("Clip", ["bn"], ["r"], min=0.0, max=6.0))
        nodes.append(helper.make_node("Pad", ["r"], ["p"], pads=[0, 0, 1, 1, 0, 0, 1, 1]))
    else:
        inits.update({"lo": np.array(0, F), "hi": np.array(6, F), "pads": np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64)})
        nodes.append(helper.make_node("Clip", ["bn", "lo", "hi"], ["r"]))
        nodes.append(helper.make_node("Pad", ["r", "pads"], ["p"]))
    nodes.append(helper.make_node("MaxPool", ["p"], ["mp"], kernel_shape=[2, 2], strides=[2, 2]))
    if opset < 18:
        nodes.append(helper.make_node("ReduceMean", ["mp"], ["gap"], axes=[3], keepdims=1))
    else:
        inits["axes3"] = np.array([3], np.int64)
        nodes.append(helper.make_node("ReduceMean", ["mp", "axes3"], ["gap"], keepdims=1))
    if opset < 13:
        nodes += [helper.make_node("Squeeze", ["gap"], ["sq"], axes=[3]),
                  helper.make_node("Unsqueeze", ["sq"], ["us"], axes=[3]),
                  helper.make_node("Split", ["us"], ["s0", "s1"], axis=1, split=[1, 3])]
    else:
        inits.update({"ax3": np.array([3], np.int64), "split": np.array([1, 3], np.int64)})
        nodes += [helper.make_node("Squeeze", ["gap", "ax3"], ["sq"]),
                  helper.make_node("Unsqueeze", ["sq", "ax3"], ["us"]),
                  helper.make_node("Split", ["us", "split"], ["s0", "s1"], axis=1)]
    inits["shape"] = np.array([1, -1], np.int64)
    nodes += [helper.make_node("Concat", ["s1", "s0"], ["cat"], axis=1),
              helper.make_node("ReduceMax", ["cat"], ["rm"], axes=[2], keepdims=1) if opset < 18 else
              helper.make_node("ReduceMax", ["cat", "axes2"], ["rm"], keepdims=1),
              helper.make_node("Reshape", ["rm", "shape"], ["flat"]),
              helper.make_node("Gemm", ["flat", "fc", "fc_b"], ["logits"], transB=1),
              helper.make_node("Softmax", ["logits"], ["y"], axis=1)]
    if opset >= 18:
        inits["axes2"] = np.array([2], np.int64)
    graph = helper.make_graph(nodes, "versioned", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 6])],
                              [numpy_helper.from_array(v, k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 7 if opset < 15 else 8
    onnx.checker.check_model(model)
    return model


@pytest.mark.parametrize("opset", [9, 10, 11, 12, 13, 15, 17, 18, 19, 20, 21])
def test_opsets(opset, rng, tmp_path):
    model = versioned_model(opset, rng)
    assert compile_and_compare(model, {"x": rng.standard_normal((1, 3, 8, 8)).astype(F)}, tmp_path) < 1e-5


def test_initializers_listed_as_inputs(rng, tmp_path):
    """Old exporters list every weight as a graph input too: they are constants, not run-time inputs."""
    model = versioned_model(9, rng)
    model.graph.input.extend(helper.make_tensor_value_info(i.name, i.data_type, list(i.dims)) for i in model.graph.initializer)
    onnx.checker.check_model(model)
    import sparsec

    art = sparsec.compile(model, output=tmp_path / "m.spx")
    assert [i.name for i in sparsec.load(art.path).get_inputs()] == ["x"]


def test_checker_failure_is_reported(tmp_path):
    import sparsec

    node = helper.make_node("Relu", ["x"], ["y"])
    graph = helper.make_graph([node], "g", [], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(sparsec.ModelLoadError, match="onnx.checker"):
        sparsec.compile(model, output=tmp_path / "bad.spx")


def conv_model(input_dims, output_dims, value_info_dims=None) -> onnx.ModelProto:
    """x -> Conv(4 filters, 3x3, pad 1) -> Flatten -> y, with the declared dims given (ints, symbols or -1)."""
    rng = np.random.default_rng(0)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]), helper.make_node("Flatten", ["c"], ["y"])],
        "conv", [helper.make_tensor_value_info("x", TensorProto.FLOAT, input_dims)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, output_dims)],
        [numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(F), "w")],
        value_info=[helper.make_tensor_value_info("c", TensorProto.FLOAT, value_info_dims)] if value_info_dims else [])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_input_shape_replaces_minus_one(rng, tmp_path):
    """paddle2onnx writes an unknown batch as dim_value -1, in the inputs, value_info and outputs."""
    model = conv_model([-1, 3, 8, 8], [-1, 256], [-1, 4, 8, 8])
    x = rng.standard_normal((2, 3, 8, 8)).astype(F)
    assert compile_and_compare(model, {"x": x}, tmp_path, input_shapes={"x": [2, 3, 8, 8]}) < 1e-5


def test_minus_one_without_input_shape_is_dynamic(tmp_path):
    import sparsec

    with pytest.raises(sparsec.ShapeError, match=r"'x' \['\?', 3, 8, 8\].*--input-shape x=1,3,8,8"):
        sparsec.compile(conv_model([-1, 3, 8, 8], [-1, 256]), output=tmp_path / "m.spx")


def test_input_shape_replaces_symbolic_dims(rng, tmp_path):
    model = conv_model(["N", 3, "H", "W"], ["N", "F"], ["N", 4, "H", "W"])
    x = rng.standard_normal((1, 3, 5, 7)).astype(F)
    assert compile_and_compare(model, {"x": x}, tmp_path, input_shapes={"x": [1, 3, 5, 7]}) < 1e-5


def test_input_shape_replaces_static_dims_with_a_note(rng, tmp_path, caplog):
    """A static [10,3,8,8] model run at batch 1: the stale value_info and output shapes are re-inferred."""
    model = conv_model([10, 3, 8, 8], [10, 256], [10, 4, 8, 8])
    x = rng.standard_normal((1, 3, 8, 8)).astype(F)
    with caplog.at_level("WARNING", logger="sparsec"):
        import sparsec

        art = sparsec.compile(model, output=tmp_path / "m.spx", input_shapes={"x": [1, 3, 8, 8]})
    assert "replacing the model's static shape [10, 3, 8, 8] by [1, 3, 8, 8]" in caplog.text
    (y,) = sparsec.load(art.path).run(None, {"x": x})
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 1
    del model.graph.value_info[:]
    model.graph.output[0].type.tensor_type.shape.dim[0].dim_value = 1
    from conftest import run_onnxruntime

    np.testing.assert_allclose(y, run_onnxruntime(model, {"x": x})[0], rtol=1e-5, atol=1e-5)


def test_input_shape_of_another_rank_is_refused(tmp_path):
    import sparsec

    with pytest.raises(sparsec.ShapeError, match="rank 3 given, the model's input has rank 4"):
        sparsec.compile(conv_model([1, 3, 8, 8], [1, 256]), output=tmp_path / "m.spx", input_shapes={"x": [3, 8, 8]})


def sample_rate_model() -> onnx.ModelProto:
    """A voice-activity detector's pattern: If(sr == 16000) picks a branch; the window length is sr / 100."""
    then = helper.make_graph([helper.make_node("Mul", ["x", "two"], ["t"])], "then", [],
                             [helper.make_tensor_value_info("t", TensorProto.FLOAT, [1, 4])],
                             [numpy_helper.from_array(np.array(2, F), "two")])
    other = helper.make_graph([helper.make_node("Mul", ["x", "three"], ["e"])], "else", [],
                              [helper.make_tensor_value_info("e", TensorProto.FLOAT, [1, 4])],
                              [numpy_helper.from_array(np.array(3, F), "three")])
    nodes = [helper.make_node("Equal", ["sr", "k16"], ["is16k"]),
             helper.make_node("If", ["is16k"], ["scaled"], then_branch=then, else_branch=other),
             helper.make_node("ReduceSum", ["scaled"], ["scaled_sum"], keepdims=0),
             helper.make_node("Div", ["sr", "k100"], ["window"]),
             helper.make_node("Reshape", ["window", "one"], ["window1"]),
             helper.make_node("Concat", ["one", "window1"], ["shape"], axis=0),
             helper.make_node("Expand", ["scaled_sum", "shape"], ["frames"])]
    graph = helper.make_graph(
        nodes, "vad", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4]),
                       helper.make_tensor_value_info("sr", TensorProto.INT64, [])],
        [helper.make_tensor_value_info("scaled", TensorProto.FLOAT, [1, 4]),
         helper.make_tensor_value_info("frames", TensorProto.FLOAT, ["one", "window"])],
        [numpy_helper.from_array(np.array(v, np.int64), n) for n, v in
         (("k16", 16000), ("k100", 100), ("one", [1]))])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return model


@pytest.mark.parametrize("sr", [16000, 8000])
def test_fixed_input_folds_if_and_shapes(sr, rng, tmp_path):
    import sparsec
    from conftest import run_onnxruntime

    model = sample_rate_model()
    x = rng.standard_normal((1, 4)).astype(F)
    session = sparsec.load(sparsec.compile(model, output=tmp_path / "m.spx", fixed_inputs={"sr": sr}).path)
    assert [i.name for i in session.get_inputs()] == ["x"]
    ours = session.run(None, {"x": x})
    ref = run_onnxruntime(model, {"x": x, "sr": np.array(sr, np.int64)})
    assert ours[1].shape == (1, sr // 100)
    for a, r in zip(ours, ref):
        np.testing.assert_allclose(a, r, rtol=1e-6)


def test_unfixed_input_behind_if_is_refused(tmp_path):
    import sparsec

    with pytest.raises(sparsec.SparsecError):
        sparsec.compile(sample_rate_model(), output=tmp_path / "m.spx")


def test_fix_input_cli(tmp_path, capsys):
    from sparsec.cli import main

    path = tmp_path / "vad.onnx"
    onnx.save(sample_rate_model(), path)
    assert main(["compile", str(path), "--fix-input", "sr=8000", "-o", str(tmp_path), "-q"]) == 0
    assert main(["inspect", str(path), "--fix-input", "sr=16000"]) == 0
    out = capsys.readouterr().out
    assert "input  x: [1, 4] FLOAT" in out and "input  sr" not in out and "output frames: [1, 160]" in out
    assert main(["compile", str(path), "--fix-input", "sr=8000.5", "-o", str(tmp_path), "-q"]) == 1
    assert "not exactly representable as int64" in capsys.readouterr().err
    assert main(["compile", str(path), "--fix-input", "rate=8000", "-o", str(tmp_path), "-q"]) == 1
    assert "--fix-input names unknown input(s) ['rate']" in capsys.readouterr().err


def test_fixed_input_takes_arrays_and_fills_shapes():
    from sparsec.frontend.inputs import fixed_array, parse_fixed_inputs

    info = helper.make_tensor_value_info("k", TensorProto.FLOAT, ["n", 2])
    assert parse_fixed_inputs(["k=1,2.5,3,4"]) == {"k": [1, 2.5, 3, 4]}
    assert fixed_array(info, [1, 2.5, 3, 4]).shape == (2, 2)
    assert fixed_array(info, np.ones((3, 2))).dtype == np.float32
    import sparsec

    with pytest.raises(sparsec.ShapeError, match="do not fill"):
        fixed_array(info, [1, 2, 3])
    with pytest.raises(sparsec.ShapeError, match="does not fit"):
        fixed_array(info, np.ones((2, 3)))
    with pytest.raises(sparsec.ShapeError, match="not of the form"):
        parse_fixed_inputs(["k"])


@pytest.mark.parametrize("make_type, kind", [
    (lambda: helper.make_tensor_sequence_value_info("x", TensorProto.FLOAT, [2]), "a sequence"),
    (lambda: helper.make_value_info("x", helper.make_optional_type_proto(
        helper.make_tensor_type_proto(TensorProto.FLOAT, [2]))), "an optional"),
])
def test_sequence_and_optional_inputs_have_their_own_message(make_type, kind, tmp_path):
    import sparsec

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [make_type()],
                              [helper.make_value_info("y", make_type().type)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    with pytest.raises(sparsec.UnsupportedInputError, match=f"input 'x' is {kind}") as error:
        sparsec.compile(model, output=tmp_path / "m.spx")
    assert "--input-shape" not in str(error.value)


def test_replaced_static_shape_that_the_model_hard_codes(tmp_path):
    """A Reshape to the old batch cannot take the new one: say so, not only onnx's raw inference error."""
    import sparsec

    graph = helper.make_graph([helper.make_node("Reshape", ["x", "s"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [10, 3, 4, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [10, 48])],
                              [numpy_helper.from_array(np.array([10, -1], np.int64), "s")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(sparsec.ShapeError, match=r"replacing the model's static shape \[10, 3, 4, 4\] by \[1, 3, 4, 4\]"
                                                 r": the model does not compute with the new shape .*Reshape"):
        sparsec.compile(model, output=tmp_path / "m.spx", input_shapes={"x": [1, 3, 4, 4]})
