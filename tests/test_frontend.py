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
