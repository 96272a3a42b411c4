"""Every lowering rule + runtime op against onnxruntime on small one-node models (odd shapes, all attribute forms)."""

from __future__ import annotations

import numpy as np
import pytest
import onnx
from onnx import TensorProto, helper

import sparsec

from conftest import compile_and_compare, single_op_model

F = np.float32


def randn(rng, *shape):
    return np.asarray(rng.standard_normal(shape), dtype=F)


CONV_CASES = [
    # (input NCHW, weight, attrs)
    ((1, 3, 9, 11), (4, 3, 3, 3), {}),
    ((2, 4, 8, 8), (6, 4, 1, 1), {}),
    ((1, 4, 9, 7), (8, 4, 3, 3), {"strides": [2, 2], "pads": [1, 1, 1, 1]}),
    ((1, 6, 10, 10), (6, 1, 3, 3), {"group": 6, "pads": [1, 1, 1, 1]}),
    ((1, 6, 11, 10), (6, 1, 5, 5), {"group": 6, "strides": [2, 2], "pads": [2, 2, 2, 2]}),
    ((1, 8, 7, 7), (12, 2, 3, 3), {"group": 4, "pads": [0, 1, 2, 1]}),
    ((1, 3, 12, 12), (5, 3, 3, 3), {"dilations": [2, 2], "pads": [2, 2, 2, 2]}),
    ((1, 3, 13, 10), (4, 3, 3, 2), {"auto_pad": "SAME_UPPER", "strides": [2, 3]}),
    ((1, 3, 13, 10), (4, 3, 4, 4), {"auto_pad": "SAME_LOWER"}),
    ((1, 4, 8, 8), (4, 4, 2, 2), {"auto_pad": "VALID", "strides": [2, 2]}),
    ((1, 4, 8, 8), (6, 4, 1, 1), {"strides": [2, 2]}),
    ((1, 3, 16, 16), (8, 3, 16, 16), {"strides": [16, 16]}),
]


@pytest.mark.parametrize("x_shape,w_shape,attrs", CONV_CASES)
@pytest.mark.parametrize("bias", [True, False])
def test_conv(x_shape, w_shape, attrs, bias, rng, tmp_path):
    inits = [("w", randn(rng, *w_shape))] + ([("b", randn(rng, w_shape[0]))] if bias else [])
    model = single_op_model("Conv", [("x", list(x_shape))], None, inits, attrs)
    assert compile_and_compare(model, {"x": randn(rng, *x_shape)}, tmp_path) < 1e-5


@pytest.mark.parametrize("a_shape,b_shape,c_shape,attrs", [
    ((3, 5), (5, 4), (4,), {}),
    ((3, 5), (4, 5), (1, 4), {"transB": 1}),
    ((5, 3), (5, 4), (3, 4), {"transA": 1, "alpha": 0.5, "beta": 2.0}),
    ((1, 7), (9, 7), None, {"transB": 1}),
    ((2, 6), (6, 3), (2, 1), {"beta": 0.5}),
    ((1, 6), (6, 3), (), {}),
])
def test_gemm(a_shape, b_shape, c_shape, attrs, rng, tmp_path):
    inits = [("B", randn(rng, *b_shape))] + ([("C", randn(rng, *c_shape))] if c_shape is not None else [])
    model = single_op_model("Gemm", [("A", list(a_shape))], None, inits, attrs)
    assert compile_and_compare(model, {"A": randn(rng, *a_shape)}, tmp_path) < 1e-5


@pytest.mark.parametrize("a_shape,b_shape,b_const", [
    ((3, 5), (5, 4), True),
    ((2, 3, 5), (5, 4), True),
    ((2, 3, 5), (2, 5, 4), False),
    ((2, 1, 3, 5), (4, 5, 6), False),
    ((5,), (5, 4), True),
    ((2, 3, 5), (5,), True),
    ((1, 4, 8, 16), (1, 4, 16, 8), False),
])
def test_matmul(a_shape, b_shape, b_const, rng, tmp_path):
    b = randn(rng, *b_shape)
    if b_const:
        model = single_op_model("MatMul", [("a", list(a_shape))], None, [("b", b)])
        feed = {"a": randn(rng, *a_shape)}
    else:
        model = single_op_model("MatMul", [("a", list(a_shape)), ("b", list(b_shape))])
        feed = {"a": randn(rng, *a_shape), "b": b}
    assert compile_and_compare(model, feed, tmp_path) < 1e-5


BROADCASTS = [((2, 3, 4, 5), (2, 3, 4, 5)), ((2, 3, 4, 5), (3, 1, 1)), ((2, 3, 4, 5), ()), ((4, 5), (5,))]


@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div", "Max", "Min", "PRelu"])
@pytest.mark.parametrize("a_shape,b_shape", BROADCASTS)
def test_binary(op, a_shape, b_shape, rng, tmp_path):
    model = single_op_model(op, [("a", list(a_shape)), ("b", list(b_shape))])
    b = np.asarray(randn(rng, *b_shape) + (F(3) if op == "Div" else F(0)), dtype=F)
    assert compile_and_compare(model, {"a": randn(rng, *a_shape), "b": b}, tmp_path) < 1e-5


@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div", "Max", "Min"])
def test_binary_broadcasts_both_operands(op, rng, tmp_path):
    model = single_op_model(op, [("a", [1, 3, 1, 5]), ("b", [2, 1, 4, 1])])
    feed = {"a": randn(rng, 1, 3, 1, 5), "b": randn(rng, 2, 1, 4, 1) + F(3)}
    assert compile_and_compare(model, feed, tmp_path) < 1e-5


@pytest.mark.parametrize("op", ["Sub", "Div"])
@pytest.mark.parametrize("a_shape", [(), (3, 1, 1)])
def test_binary_scalar_or_channel_first_operand(op, a_shape, rng, tmp_path):
    """a[0] op b[i]: the reversed-operand microkernels (vrsubc, vrdivc)."""
    model = single_op_model(op, [("a", list(a_shape)), ("b", [2, 3, 4, 5])])
    feed = {"a": randn(rng, *a_shape), "b": randn(rng, 2, 3, 4, 5) + F(3)}
    assert compile_and_compare(model, feed, tmp_path) < 1e-5


@pytest.mark.parametrize("act", ["Relu", "Clip", "HardSwish", "Sigmoid"])
@pytest.mark.parametrize("a_shape,b_shape", BROADCASTS[:3])
def test_add_with_fused_activation(act, a_shape, b_shape, rng, tmp_path):
    """Add + activation compiles to one Add whose microkernel applies the activation."""
    bounds = [helper.make_tensor(n, TensorProto.FLOAT, [], [v]) for n, v in (("lo", 0.0), ("hi", 0.6))]
    nodes = [helper.make_node("Add", ["a", "b"], ["s"]),
             helper.make_node(act, ["s", "lo", "hi"] if act == "Clip" else ["s"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("a", TensorProto.FLOAT, a_shape),
                                           helper.make_tensor_value_info("b", TensorProto.FLOAT, b_shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, a_shape)],
                              bounds if act == "Clip" else [])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    feed = {"a": randn(rng, *a_shape) * 3, "b": randn(rng, *b_shape)}
    assert compile_and_compare(model, feed, tmp_path) < 1e-5
    assert sparsec.compile(model, output=tmp_path / "again.spx").report["runtime_ops"] == 1


def test_pow_and_variadic_sum(rng, tmp_path):
    model = single_op_model("Pow", [("a", [2, 3]), ("b", [2, 3])])
    feed = {"a": np.abs(randn(rng, 2, 3)) + F(0.5), "b": randn(rng, 2, 3)}
    assert compile_and_compare(model, feed, tmp_path) < 1e-5
    model = single_op_model("Sum", [("a", [2, 3]), ("b", [3]), ("c", [2, 1])])
    feed = {"a": randn(rng, 2, 3), "b": randn(rng, 3), "c": randn(rng, 2, 1)}
    assert compile_and_compare(model, feed, tmp_path) < 1e-5


UNARY = [("Relu", {}), ("Sigmoid", {}), ("Tanh", {}), ("HardSwish", {}), ("HardSigmoid", {"alpha": 0.3, "beta": 0.4}),
         ("LeakyRelu", {"alpha": 0.2}), ("Elu", {"alpha": 0.7}), ("Softplus", {}), ("Exp", {}), ("Neg", {}),
         ("Abs", {}), ("Erf", {}), ("Floor", {}), ("Ceil", {}), ("Round", {}), ("Sin", {}), ("Cos", {}), ("Sign", {}),
         ("Gelu", {}), ("Gelu", {"approximate": "tanh"})]


@pytest.mark.parametrize("op,attrs", UNARY, ids=[f"{o}-{a}" for o, a in UNARY])
def test_unary(op, attrs, rng, tmp_path):
    opset = 20 if op == "Gelu" else 17
    model = single_op_model(op, [("x", [2, 3, 7])], None, (), attrs, opset=opset)
    assert compile_and_compare(model, {"x": randn(rng, 2, 3, 7) * 3}, tmp_path) < 1e-5


@pytest.mark.parametrize("op", ["Sqrt", "Log", "Reciprocal"])
def test_unary_positive(op, rng, tmp_path):
    model = single_op_model(op, [("x", [3, 5])])
    assert compile_and_compare(model, {"x": np.abs(randn(rng, 3, 5)) + F(0.1)}, tmp_path) < 1e-5


def test_clip_bounds(rng, tmp_path):
    model = single_op_model("Clip", [("x", [4, 6])], None, [("lo", np.array(-0.5, F)), ("hi", np.array(0.7, F))])
    assert compile_and_compare(model, {"x": randn(rng, 4, 6)}, tmp_path) < 1e-6


@pytest.mark.parametrize("op,attrs", [
    ("MaxPool", {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}),
    ("MaxPool", {"kernel_shape": [3, 3], "strides": [2, 2], "ceil_mode": 1}),
    ("MaxPool", {"kernel_shape": [2, 2], "strides": [2, 2], "dilations": [2, 2]}),
    ("MaxPool", {"kernel_shape": [3, 3], "auto_pad": "SAME_UPPER", "strides": [2, 2]}),
    ("AveragePool", {"kernel_shape": [3, 3], "strides": [1, 1], "pads": [1, 1, 1, 1]}),
    ("AveragePool", {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1], "count_include_pad": 1}),
    ("AveragePool", {"kernel_shape": [2, 2], "strides": [2, 2], "ceil_mode": 1}),
    ("GlobalAveragePool", {}),
    ("GlobalMaxPool", {}),
])
def test_pool(op, attrs, rng, tmp_path):
    model = single_op_model(op, [("x", [1, 3, 11, 10])], None, (), attrs)
    assert compile_and_compare(model, {"x": randn(rng, 1, 3, 11, 10)}, tmp_path) < 1e-6


@pytest.mark.parametrize("op", ["ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1",
                                "ReduceL2", "ReduceSumSquare", "ReduceLogSumExp"])
@pytest.mark.parametrize("axes,keepdims", [([1], 1), ([-1], 0), ([0, 2], 1), (None, 0)])
def test_reduce(op, axes, keepdims, rng, tmp_path):
    inits = [("axes", np.array(axes, np.int64))] if axes is not None else []
    model = single_op_model(op, [("x", [2, 3, 4])], None, inits, {"keepdims": keepdims}, opset=18)
    assert compile_and_compare(model, {"x": randn(rng, 2, 3, 4)}, tmp_path) < 1e-5


def test_reduce_opset17_axes_attribute(rng, tmp_path):
    model = single_op_model("ReduceMean", [("x", [2, 3, 4, 5])], None, (), {"axes": [2, 3], "keepdims": 1})
    assert compile_and_compare(model, {"x": randn(rng, 2, 3, 4, 5)}, tmp_path) < 1e-6


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
@pytest.mark.parametrize("axis", [-1, 1, 0])
def test_softmax(op, axis, rng, tmp_path):
    model = single_op_model(op, [("x", [2, 5, 3])], None, (), {"axis": axis})
    assert compile_and_compare(model, {"x": randn(rng, 2, 5, 3) * 4}, tmp_path) < 1e-5


@pytest.mark.parametrize("axis,bias", [(-1, True), (1, False), (2, True)])
def test_layer_norm(axis, bias, rng, tmp_path):
    shape = [2, 3, 8]
    norm = shape[axis:]
    inits = [("scale", randn(rng, *norm))] + ([("bias", randn(rng, *norm))] if bias else [])
    model = single_op_model("LayerNormalization", [("x", shape)], None, inits, {"axis": axis, "epsilon": 1e-3})
    assert compile_and_compare(model, {"x": randn(rng, *shape)}, tmp_path) < 1e-5


def test_batch_norm_standalone(rng, tmp_path):
    c = 5
    inits = [("s", randn(rng, c)), ("b", randn(rng, c)), ("m", randn(rng, c)), ("v", np.abs(randn(rng, c)) + F(0.5))]
    model = single_op_model("BatchNormalization", [("x", [2, c, 3, 4])], None, inits, {"epsilon": 1e-3})
    assert compile_and_compare(model, {"x": randn(rng, 2, c, 3, 4)}, tmp_path) < 1e-5


def test_instance_and_group_norm(rng, tmp_path):
    inits = [("s", randn(rng, 6)), ("b", randn(rng, 6))]
    model = single_op_model("InstanceNormalization", [("x", [2, 6, 4, 5])], None, inits)
    assert compile_and_compare(model, {"x": randn(rng, 2, 6, 4, 5)}, tmp_path) < 1e-5
    model = single_op_model("GroupNormalization", [("x", [2, 6, 4, 5])], [2, 6, 4, 5], inits, {"num_groups": 3}, opset=21)
    assert compile_and_compare(model, {"x": randn(rng, 2, 6, 4, 5)}, tmp_path) < 1e-5


@pytest.mark.parametrize("perm", [[0, 2, 3, 1], [3, 2, 1, 0], [0, 1, 3, 2], None])
def test_transpose(perm, rng, tmp_path):
    model = single_op_model("Transpose", [("x", [2, 3, 4, 5])], None, (), {"perm": perm} if perm else {})
    assert compile_and_compare(model, {"x": randn(rng, 2, 3, 4, 5)}, tmp_path) == 0


@pytest.mark.parametrize("shape", [[17, 33], [3, 16, 32], [2, 1, 40, 5]])
def test_transpose_of_matrices_in_tiles(shape, rng, tmp_path):
    perm = list(range(len(shape) - 2)) + [len(shape) - 1, len(shape) - 2]
    model = single_op_model("Transpose", [("x", shape)], None, (), {"perm": perm})
    assert compile_and_compare(model, {"x": randn(rng, *shape)}, tmp_path) == 0


@pytest.mark.parametrize("shape,perm", [([8, 32, 4, 32], [0, 2, 3, 1]), ([2, 37, 3, 70], [0, 2, 3, 1]),
                                        ([70, 2, 37], [2, 1, 0]), ([130, 9], [1, 0]), ([9, 130], [1, 0]),
                                        ([3, 5, 2, 6, 7], [4, 0, 3, 1, 2])])
def test_transpose_moving_the_last_axis_in_blocks(shape, perm, rng, tmp_path):
    """The input's last axis moves: small matrix transposes in 4 x 4 blocks, tile and block edges, both loop orders."""
    model = single_op_model("Transpose", [("x", shape)], None, (), {"perm": perm})
    assert compile_and_compare(model, {"x": randn(rng, *shape)}, tmp_path) == 0


@pytest.mark.parametrize("op,inits,attrs", [
    ("Reshape", [("shape", np.array([6, -1], np.int64))], {}),
    ("Flatten", [], {"axis": 2}),
    ("Squeeze", [("axes", np.array([0], np.int64))], {}),
    ("Unsqueeze", [("axes", np.array([1, -1], np.int64))], {}),
])
def test_reshapes(op, inits, attrs, rng, tmp_path):
    model = single_op_model(op, [("x", [1, 2, 3, 4])], None, inits, attrs)
    assert compile_and_compare(model, {"x": randn(rng, 1, 2, 3, 4)}, tmp_path) == 0


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_concat(axis, rng, tmp_path):
    shapes = {0: ([2, 3, 4], [1, 3, 4]), 1: ([2, 3, 4], [2, 5, 4]), -1: ([2, 3, 4], [2, 3, 1])}[axis]
    model = single_op_model("Concat", [("a", shapes[0]), ("b", shapes[1])], None, (), {"axis": axis})
    assert compile_and_compare(model, {"a": randn(rng, *shapes[0]), "b": randn(rng, *shapes[1])}, tmp_path) == 0


@pytest.mark.parametrize("split", [[2, 4], None])
def test_split(split, rng, tmp_path):
    inits = [("split", np.array(split, np.int64))] if split else []
    attrs = {"axis": 1} if split else {"axis": 1, "num_outputs": 2}
    model = single_op_model("Split", [("x", [2, 6, 3])], None, inits, attrs, opset=18, outputs=["y0", "y1"])
    assert compile_and_compare(model, {"x": randn(rng, 2, 6, 3)}, tmp_path) == 0


@pytest.mark.parametrize("starts,ends,axes,steps", [
    ([1], [3], [1], [1]),
    ([0, -3], [2, 100], [0, 2], [1, 2]),
    ([-1], [-100], [2], [-1]),
    ([5], [0], [1], [-2]),
])
def test_slice(starts, ends, axes, steps, rng, tmp_path):
    inits = [("starts", np.array(starts, np.int64)), ("ends", np.array(ends, np.int64)),
             ("axes", np.array(axes, np.int64)), ("steps", np.array(steps, np.int64))]
    model = single_op_model("Slice", [("x", [3, 6, 7])], None, inits)
    assert compile_and_compare(model, {"x": randn(rng, 3, 6, 7)}, tmp_path) == 0


def test_gather_runtime_indices(rng, tmp_path):
    table = onnx.numpy_helper.from_array(randn(rng, 10, 4), "table")
    node = helper.make_node("Gather", ["table", "ids"], ["y"], name="embed", axis=0)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("ids", TensorProto.INT64, [2, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3, 4])], [table])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    ids = np.array([[0, 9, -1], [3, 3, 5]], np.int64)
    assert compile_and_compare(model, {"ids": ids}, tmp_path) == 0


def test_gather_constant_index_axis1(rng, tmp_path):
    model = single_op_model("Gather", [("x", [2, 5, 3])], None, [("i", np.array(0, np.int64))], {"axis": 1})
    assert compile_and_compare(model, {"x": randn(rng, 2, 5, 3)}, tmp_path) == 0


@pytest.mark.parametrize("mode", ["constant", "reflect", "edge"])
def test_pad(mode, rng, tmp_path):
    inits = [("pads", np.array([0, 1, 2, 0, 0, 2, 1, 1], np.int64)), ("value", np.array(1.5, F))]
    model = single_op_model("Pad", [("x", [1, 3, 4, 5])], None, inits, {"mode": mode})
    assert compile_and_compare(model, {"x": randn(rng, 1, 3, 4, 5)}, tmp_path) == 0


def test_expand_and_cast(rng, tmp_path):
    model = single_op_model("Expand", [("x", [3, 1])], None, [("shape", np.array([2, 3, 4], np.int64))])
    assert compile_and_compare(model, {"x": randn(rng, 3, 1)}, tmp_path) == 0
    model = single_op_model("Cast", [("x", [3, 4])], None, (), {"to": TensorProto.INT32}, dtypes={"y": TensorProto.INT32})
    assert compile_and_compare(model, {"x": randn(rng, 3, 4) * 10}, tmp_path) == 0
