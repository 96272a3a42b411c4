"""Each pass on its own: the graph before and after gives the same outputs (onnxruntime, <= 1e-5 relative),
and the pass really changed what it claims to."""

from __future__ import annotations

import numpy as np
import onnx
import onnx_ir as ir
import pytest
from onnx import TensorProto, helper, numpy_helper

import zoo
from conftest import compile_and_compare, max_rel_error, run_onnxruntime
from sparsec.frontend import load_model
from sparsec.passes import CLEANUP, PASSES, op_counts
from sparsec.passes.fusion import to_standard_onnx

F = np.float32


def ort(model: ir.Model, feed) -> list[np.ndarray]:
    """onnxruntime outputs of an IR model (sparsec-domain nodes expanded to standard ONNX first)."""
    proto = ir.serde.serialize_model(model)
    standard = to_standard_onnx(ir.serde.deserialize_model(proto))
    return run_onnxruntime(ir.serde.serialize_model(standard), feed)


def apply(pass_name: str, model: ir.Model, feed) -> tuple[ir.Model, float]:
    """Runs one pass on a copy; returns the new model and the worst relative difference of outputs."""
    before = ort(model, feed)
    copy = ir.serde.deserialize_model(ir.serde.serialize_model(model))
    after_model = PASSES[pass_name].run(copy)
    onnx.checker.check_model(ir.serde.serialize_model(to_standard_onnx(
        ir.serde.deserialize_model(ir.serde.serialize_model(after_model)))))
    after = ort(after_model, feed)
    return after_model, max(max_rel_error(a, b) for a, b in zip(after, before))


def make(nodes, inputs, outputs, inits=(), opset=17) -> ir.Model:
    graph = helper.make_graph(nodes, "g", inputs, outputs, [numpy_helper.from_array(a, n) for n, a in inits])
    return load_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]))


def vi(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def rand(rng, *shape):
    return rng.standard_normal(shape).astype(F)


def bn_params(rng, c, prefix):
    return [(f"{prefix}_s", rng.uniform(0.5, 1.5, c).astype(F)), (f"{prefix}_b", rand(rng, c)),
            (f"{prefix}_m", rand(rng, c)), (f"{prefix}_v", rng.uniform(0.5, 1.5, c).astype(F))]


def test_fold_constants_removes_shape_arithmetic(rng):
    nodes = [helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("Gather", ["s", "zero"], ["n"], axis=0),
             helper.make_node("Unsqueeze", ["n", "zero1d"], ["n1"]),
             helper.make_node("Concat", ["n1", "minus1"], ["shape"], axis=0),
             helper.make_node("Reshape", ["x", "shape"], ["r"]),
             helper.make_node("Add", ["c1", "c2"], ["c"]),
             helper.make_node("Mul", ["r", "c"], ["y"])]
    inits = [("zero", np.array(0, np.int64)), ("zero1d", np.array([0], np.int64)),
             ("minus1", np.array([-1], np.int64)), ("c1", rand(rng, 12)), ("c2", rand(rng, 12))]
    model = make(nodes, [vi("x", [2, 3, 4])], [vi("y", [2, 12])], inits)
    folded, err = apply("fold_constants", model, {"x": rand(rng, 2, 3, 4)})
    assert err <= 1e-5
    assert dict(op_counts(folded)) == {"Reshape": 1, "Mul": 1}


def test_remove_identities_keeps_output_names(rng):
    nodes = [helper.make_node("Identity", ["x"], ["a"]), helper.make_node("Relu", ["a"], ["b"]),
             helper.make_node("Dropout", ["b"], ["c"]), helper.make_node("Identity", ["c"], ["y"])]
    model = make(nodes, [vi("x", [3, 4])], [vi("y", [3, 4])])
    cleaned, err = apply("remove_identities", model, {"x": rand(rng, 3, 4)})
    assert err == 0
    assert dict(op_counts(cleaned)) == {"Relu": 1}
    assert [v.name for v in cleaned.graph.outputs] == ["y"]


def test_fold_batchnorm_into_conv_and_gemm(rng):
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("BatchNormalization", ["c", "c_s", "c_b", "c_m", "c_v"], ["cb"], epsilon=1e-3),
             helper.make_node("Flatten", ["cb"], ["f"]),
             helper.make_node("Gemm", ["f", "fc", "fc_b"], ["g"], transB=1),
             helper.make_node("BatchNormalization", ["g", "g_s", "g_b", "g_m", "g_v"], ["y"])]
    inits = [("w", rand(rng, 4, 3, 3, 3)), ("fc", rand(rng, 5, 4 * 6 * 6)), ("fc_b", rand(rng, 5)),
             *bn_params(rng, 4, "c"), *bn_params(rng, 5, "g")]
    model = make(nodes, [vi("x", [1, 3, 6, 6])], [vi("y", [1, 5])], inits)
    folded, err = apply("fold_batchnorm", model, {"x": rand(rng, 1, 3, 6, 6)})
    assert err <= 1e-5
    assert "BatchNormalization" not in op_counts(folded)


def test_fold_batchnorm_leaves_shared_conv_output(rng):
    # The conv output is also read by an Add: folding would change the Add's input.
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"]),
             helper.make_node("BatchNormalization", ["c", "c_s", "c_b", "c_m", "c_v"], ["cb"]),
             helper.make_node("Add", ["c", "cb"], ["y"])]
    inits = [("w", rand(rng, 4, 4, 1, 1)), *bn_params(rng, 4, "c")]
    model = make(nodes, [vi("x", [1, 4, 5, 5])], [vi("y", [1, 4, 5, 5])], inits)
    folded, err = apply("fold_batchnorm", model, {"x": rand(rng, 1, 4, 5, 5)})
    assert err <= 1e-5
    assert op_counts(folded)["BatchNormalization"] == 1


def test_fuse_matmul_bias(rng):
    nodes = [helper.make_node("MatMul", ["x", "w"], ["m"]), helper.make_node("Add", ["m", "b"], ["y"])]
    model = make(nodes, [vi("x", [2, 7, 8])], [vi("y", [2, 7, 5])], [("w", rand(rng, 8, 5)), ("b", rand(rng, 5))])
    fused, err = apply("fuse_matmul_bias", model, {"x": rand(rng, 2, 7, 8)})
    assert err <= 1e-5
    assert dict(op_counts(fused)) == {"sparsec.FusedMatMul": 1}


def test_fuse_matmul_bias_with_a_run_time_weight(rng):
    # A training step's trainable weight is a graph input: its bias still goes into the MatMul.
    nodes = [helper.make_node("MatMul", ["x", "w"], ["m"]), helper.make_node("Add", ["b", "m"], ["y"])]
    model = make(nodes, [vi("x", [2, 7, 8]), vi("w", [8, 5])], [vi("y", [2, 7, 5])], [("b", rand(rng, 5))])
    fused, err = apply("fuse_matmul_bias", model, {"x": rand(rng, 2, 7, 8), "w": rand(rng, 8, 5)})
    assert err <= 1e-5
    assert dict(op_counts(fused)) == {"sparsec.FusedMatMul": 1}


@pytest.mark.parametrize("rank", [2, 3])
def test_fold_transpose_into_matmul(rank, rng, tmp_path):
    # X^T dY of a weight gradient: the kernel reads X transposed; a Transpose with another reader stays.
    shape, perm = ([6, 4], [1, 0]) if rank == 2 else ([2, 6, 4], [0, 2, 1])
    nodes = [helper.make_node("Transpose", ["x"], ["xt"], perm=perm), helper.make_node("MatMul", ["xt", "d"], ["y"])]
    d_shape = [6, 5] if rank == 2 else [2, 6, 5]
    y_shape = [4, 5] if rank == 2 else [2, 4, 5]
    model = make(nodes, [vi("x", shape), vi("d", d_shape)], [vi("y", y_shape)])
    folded, err = apply("fold_transpose_into_matmul", model, {"x": rand(rng, *shape), "d": rand(rng, *d_shape)})
    assert err <= 1e-6
    assert dict(op_counts(folded)) == {"sparsec.FusedMatMul": 1}
    feed = {"x": rand(rng, *shape), "d": rand(rng, *d_shape)}
    assert compile_and_compare(ir.serde.serialize_model(model), feed, tmp_path) <= 1e-5
    shared = make([*nodes, helper.make_node("Relu", ["xt"], ["r"])], [vi("x", shape), vi("d", d_shape)],
                  [vi("y", y_shape), vi("r", shape[:-2] + shape[:-3:-1])])
    kept, _ = apply("fold_transpose_into_matmul", shared, {"x": rand(rng, *shape), "d": rand(rng, *d_shape)})
    assert op_counts(kept)["Transpose"] == 1


def test_transposed_product_becomes_the_swapped_product(rng, tmp_path):
    # (X^T dY)^T, the gradient of a Gemm's transposed weight in the weight's layout: dY^T X, no Transpose left.
    nodes = [helper.make_node("Transpose", ["x"], ["xt"], perm=[1, 0]), helper.make_node("MatMul", ["xt", "d"], ["p"]),
             helper.make_node("Transpose", ["p"], ["y"], perm=[1, 0])]
    model = make(nodes, [vi("x", [6, 4]), vi("d", [6, 5])], [vi("y", [5, 4])])
    feed = {"x": rand(rng, 6, 4), "d": rand(rng, 6, 5)}
    folded, err = apply("fold_transpose_into_matmul", model, feed)
    assert err <= 1e-6
    assert dict(op_counts(folded)) == {"sparsec.FusedMatMul": 1}
    assert compile_and_compare(ir.serde.serialize_model(model), feed, tmp_path) <= 1e-5


@pytest.mark.parametrize("act", ["Relu", "Clip", "HardSwish", "Sigmoid", "LeakyRelu", "SiLU"])
def test_fuse_activations(act, rng):
    conv = helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1])
    if act == "Clip":
        acts = [helper.make_node("Clip", ["c", "lo", "hi"], ["y"])]
    elif act == "SiLU":
        acts = [helper.make_node("Sigmoid", ["c"], ["s"]), helper.make_node("Mul", ["c", "s"], ["y"])]
    else:
        acts = [helper.make_node(act, ["c"], ["y"])]
    inits = [("w", rand(rng, 4, 3, 3, 3)), ("b", rand(rng, 4)), ("lo", np.array(0, F)), ("hi", np.array(6, F))]
    model = make([conv, *acts], [vi("x", [1, 3, 5, 5])], [vi("y", [1, 4, 5, 5])], inits)
    fused, err = apply("fuse_activations", model, {"x": rand(rng, 1, 3, 5, 5) * 3})
    assert err <= 1e-5
    assert dict(op_counts(fused)) == {"sparsec.FusedConv": 1}
    assert [v.name for v in fused.graph.outputs] == ["y"]


def _erf_gelu(torch_order: bool, erf_is_output: bool = False) -> ir.Model:
    """GELU with Erf: torch's export (x / sqrt 2, (x * (erf + 1)) * 0.5) or the operands of every node swapped."""
    if torch_order:
        nodes = [helper.make_node("Div", ["x", "k"], ["s"]), helper.make_node("Erf", ["s"], ["e"]),
                 helper.make_node("Add", ["e", "one"], ["p"]), helper.make_node("Mul", ["x", "p"], ["xp"]),
                 helper.make_node("Mul", ["xp", "half"], ["y"])]
        k = np.array(np.sqrt(2), F)
    else:
        nodes = [helper.make_node("Mul", ["k", "x"], ["s"]), helper.make_node("Erf", ["s"], ["e"]),
                 helper.make_node("Add", ["one", "e"], ["p"]), helper.make_node("Mul", ["half", "x"], ["hx"]),
                 helper.make_node("Mul", ["p", "hx"], ["y"])]
        k = np.array(np.sqrt(0.5), F)
    inits = [("k", k), ("one", np.array(1, F)), ("half", np.array(0.5, F))]
    outputs = [vi("y", [2, 8])] + ([vi("e", [2, 8])] if erf_is_output else [])
    return make(nodes, [vi("x", [2, 8])], outputs, inits)


@pytest.mark.parametrize("torch_order", [True, False])
def test_fuse_gelu(torch_order, rng):
    fused, err = apply("fuse_gelu", _erf_gelu(torch_order), {"x": rand(rng, 2, 8) * 3})
    assert err <= 1e-6
    assert dict(op_counts(fused)) == {"sparsec.Activation": 1}
    assert [v.name for v in fused.graph.outputs] == ["y"]


def test_fuse_gelu_leaves_a_formula_whose_parts_are_read(rng):
    fused, err = apply("fuse_gelu", _erf_gelu(True, erf_is_output=True), {"x": rand(rng, 2, 8)})
    assert err == 0 and "sparsec.Activation" not in op_counts(fused)


def test_fuse_residual_add_relu(rng):
    nodes = [helper.make_node("Add", ["a", "b"], ["s"]), helper.make_node("Relu", ["s"], ["y"])]
    model = make(nodes, [vi("a", [1, 4, 3, 3]), vi("b", [1, 4, 3, 3])], [vi("y", [1, 4, 3, 3])])
    fused, err = apply("fuse_activations", model, {"a": rand(rng, 1, 4, 3, 3), "b": rand(rng, 1, 4, 3, 3)})
    assert err == 0
    assert dict(op_counts(fused)) == {"sparsec.FusedAdd": 1}


def test_remove_dead_nodes(rng):
    nodes = [helper.make_node("Relu", ["x"], ["y"]), helper.make_node("Exp", ["x"], ["unused"])]
    model = make(nodes, [vi("x", [3])], [vi("y", [3])])
    cleaned, err = apply("remove_dead_nodes", model, {"x": rand(rng, 3)})
    assert err == 0
    assert dict(op_counts(cleaned)) == {"Relu": 1}


@pytest.mark.parametrize("name", ["mobilenet_v3_small", "efficientnet_b0"])
def test_each_pass_on_zoo_models(name):
    """The cleanup pipeline, pass by pass, on real exported graphs (HardSwish, SE blocks, SiLU, BN)."""
    pytest.importorskip("torchvision")
    feed = zoo.example_inputs(name)
    model = load_model(zoo.cached(name))
    for p in CLEANUP:
        model, err = apply(p.name, model, feed)
        assert err <= 1e-5, p.name
    counts = op_counts(model)
    assert "BatchNormalization" not in counts and counts["sparsec.FusedConv"] > 10
