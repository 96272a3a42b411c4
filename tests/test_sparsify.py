"""Sparsify: magnitude pruning to exact zeros per pattern, zero detection, sparse initializers, API and CLI."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from conftest import compile_and_compare, run_onnxruntime

import sparsec
from sparsec.cli import main
from sparsec.passes.sparsify import SparsifyOptions
from sparsec.frontend import load_model
from sparsec.passes import CLEANUP, run_passes
from sparsec.passes.sparsity import Orientation, orientation_of, unfit_reason, weight_sparsity

TOLERANCE = 1e-4
PATTERNS = ["unstructured", "1x4", "4x1", "8x1", "2:4"]
# (output channels, input channels) of one block, in each op's own weight layout (see `native_view`)
BLOCK = {"unstructured": (1, 1), "1x4": (1, 4), "4x1": (4, 1), "8x1": (8, 1)}


def _init(name, array):
    return numpy_helper.from_array(np.asarray(array, np.float32), name)


def layered_model(seed: int = 0) -> onnx.ModelProto:
    """Every kind of layer: first conv, pointwise, depthwise, grouped 3x3, squeeze-excite 1x1 convs on a 1x1 map,
    Gemm with transB 1 and 0, MatMul with a constant right operand, and a MatMul of two activations (no layer).
    Gemm/MatMul shapes are chosen so that 8x1 fits only if the output axis is the right one."""
    rng = np.random.default_rng(seed)
    weights = {"w_first": (16, 3, 3, 3), "w_pw": (32, 16, 1, 1), "w_dw": (32, 1, 3, 3), "w_grp": (32, 8, 3, 3),
               "w_se1": (8, 32, 1, 1), "w_se2": (32, 8, 1, 1),
               "w_fc1": (20, 32),  # transB=1: [N=20, K=32]
               "w_fc2": (20, 40),  # transB=0: [K=20, N=40]
               "w_mm": (40, 12)}  # [K=40, N=12]
    inits = [_init(name, rng.standard_normal(shape)) for name, shape in weights.items()]
    inits += [_init("b_fc1", rng.standard_normal(20)), _init("b_pw", rng.standard_normal(32)),
              numpy_helper.from_array(np.array([40, 1], np.int64), "column"),
              numpy_helper.from_array(np.array([1, 40], np.int64), "row")]
    n = helper.make_node
    nodes = [
        n("Conv", ["x", "w_first"], ["a"], pads=[1] * 4, name="first"),
        n("Conv", ["a", "w_pw", "b_pw"], ["b"], name="pw"),
        n("Relu", ["b"], ["b_relu"], name="relu"),
        n("Conv", ["b_relu", "w_dw"], ["c"], pads=[1] * 4, group=32, name="dw"),
        n("Conv", ["c", "w_grp"], ["d"], pads=[1] * 4, group=4, name="grp"),
        n("GlobalAveragePool", ["d"], ["pooled"], name="se_pool"),
        n("Conv", ["pooled", "w_se1"], ["s1"], name="se1"),
        n("Relu", ["s1"], ["s1_relu"], name="se_relu"),
        n("Conv", ["s1_relu", "w_se2"], ["s2"], name="se2"),
        n("Sigmoid", ["s2"], ["gate"], name="se_gate"),
        n("Mul", ["d", "gate"], ["e"], name="se_mul"),
        n("GlobalAveragePool", ["e"], ["f"], name="pool"),
        n("Flatten", ["f"], ["g"], name="flatten"),
        n("Gemm", ["g", "w_fc1", "b_fc1"], ["h"], transB=1, name="fc1"),
        n("Gemm", ["h", "w_fc2"], ["i"], name="fc2"),
        n("Reshape", ["i", "column"], ["i_column"], name="to_column"),
        n("Reshape", ["i", "row"], ["i_row"], name="to_row"),
        n("MatMul", ["i_column", "i_row"], ["outer"], name="outer"),  # two activations: not a layer
        n("MatMul", ["outer", "w_mm"], ["y"], name="mm"),
    ]
    graph = helper.make_graph(nodes, "layers", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 6, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [40, 12])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def initializers(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    return {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}


def native_view(weight: np.ndarray, node: onnx.NodeProto) -> np.ndarray:
    """[outputs, inputs, positions] written out per op from the ONNX definitions (not via sparsec)."""
    if node.op_type == "Conv":  # [M, C/group, kh, kw]
        return weight.reshape(weight.shape[0], weight.shape[1], -1)
    if node.op_type == "Gemm":  # Y = A B' with B' = B^T if transB: B' is [K, N]
        trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
        return (weight if trans_b else weight.T)[:, :, None]
    assert node.op_type == "MatMul"  # [..., K, N]
    return np.moveaxis(weight.reshape(-1, *weight.shape[-2:]), 0, -1).transpose(1, 0, 2)


def blocks(view: np.ndarray, pattern: str) -> np.ndarray:
    """[blocks, elements of a block]: each block of the pattern (2:4: each group of 4 input channels) as a row."""
    outputs, inputs, positions = view.shape
    block_out, block_in = BLOCK.get(pattern, (1, 4))
    grid = view.reshape(outputs // block_out, block_out, inputs // block_in, block_in, positions)
    return grid.transpose(0, 2, 4, 1, 3).reshape(-1, block_out * block_in)


def assert_pattern(original: np.ndarray, sparse: np.ndarray, pattern: str, sparsity: float) -> None:
    """The zeros form whole blocks, the right number of them, and exactly the weakest ones (by L2 norm)."""
    old, new = blocks(original, pattern), blocks(sparse, pattern)
    zero = new == 0
    if pattern == "2:4":
        assert (zero.sum(axis=1) == 2).all()
        magnitude = np.abs(old)
        assert (np.where(zero, magnitude, 0).max(axis=1) <= np.where(zero, np.inf, magnitude).min(axis=1)).all()
        assert np.array_equal(new[~zero], old[~zero])
        return
    dead = zero.all(axis=1)
    assert np.array_equal(new[~dead], old[~dead]), "a block is partly zero or a kept weight changed"
    assert dead.sum() == int(np.floor(sparsity * len(dead) + 0.5))
    norms = np.linalg.norm(old.astype(np.float64), axis=1)
    if dead.any() and not dead.all():
        assert norms[dead].max() <= norms[~dead].min()


def feed_for(model: onnx.ModelProto, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {i.name: rng.standard_normal([d.dim_value for d in i.type.tensor_type.shape.dim]).astype(np.float32)
            for i in model.graph.input}


LAYERS = {"first", "pw", "dw", "grp", "se1", "se2", "fc1", "fc2", "mm"}


@pytest.mark.parametrize("pattern", PATTERNS)
def test_each_pattern_holds_exactly_and_runs_like_onnxruntime(pattern, tmp_path):
    model = layered_model()
    sparsity = 0.5 if pattern == "2:4" else 0.75
    sparse, report = sparsec.sparsify(model, sparsity, pattern)
    onnx.checker.check_model(sparse, full_check=True)
    assert not sparse.graph.sparse_initializer
    assert compile_and_compare(sparse, feed_for(sparse), tmp_path) < TOLERANCE  # onnxruntime runs it too
    before, after = initializers(model), initializers(sparse)
    nodes = {n.name: n for n in sparse.graph.node}
    rows = {r["node"]: r for r in report.rows}
    assert set(rows) == LAYERS  # the MatMul of two activations is no layer
    expected_dense = {"first", "dw"} | ({"fc1", "mm"} if pattern == "8x1" else set())  # N = 20 and 12
    assert {name for name, r in rows.items() if r["skipped"]} == expected_dense
    for name, row in rows.items():
        weight = row["weight"]
        if row["skipped"]:
            assert np.array_equal(after[weight], before[weight]) and row["pattern"] is None
            continue
        assert_pattern(native_view(before[weight], nodes[name]), native_view(after[weight], nodes[name]), pattern,
                       sparsity)
        assert pattern in row["patterns_after"] and row["density_before"] == 1.0
        assert row["density_after"] == pytest.approx(np.count_nonzero(after[weight]) / after[weight].size)
    for bias in ("b_pw", "b_fc1"):
        assert np.array_equal(after[bias], before[bias])
    if pattern == "8x1":
        assert "multiple of 8 output channels, the weight has 20" in rows["fc1"]["skipped"]
        assert "multiple of 8 output channels, the weight has 12" in rows["mm"]["skipped"]
    assert report.zeros_after == sum(int((after[r["weight"]] == 0).sum()) for r in report.rows)


def test_first_and_depthwise_convs_stay_dense_unless_included():
    model = layered_model()
    _, report = sparsec.sparsify(model, 0.75)
    rows = {r["node"]: r for r in report.rows}
    assert "first conv: reads graph input 'x'" in rows["first"]["skipped"]
    assert "depthwise" in rows["dw"]["skipped"]
    assert rows["se1"]["skipped"] is None and rows["se2"]["skipped"] is None  # 1x1 convs on a 1x1 map count
    sparse, report = sparsec.sparsify(model, 0.75, include_first=True, include_depthwise=True)
    rows = {r["node"]: r for r in report.rows}
    nodes = {n.name: n for n in sparse.graph.node}
    for name in ("first", "dw"):
        assert rows[name]["skipped"] is None
        original, new = initializers(model)[rows[name]["weight"]], initializers(sparse)[rows[name]["weight"]]
        assert_pattern(native_view(original, nodes[name]), native_view(new, nodes[name]), "unstructured", 0.75)
    _, report = sparsec.sparsify(model, 0.5, "2:4", include_first=True)
    first = next(r for r in report.rows if r["node"] == "first")
    assert first["skipped"] == "pattern 2:4 needs a multiple of 4 input channels, the weight has 3"


def test_global_ranking_zeros_the_smallest_weights_of_all_layers():
    model = layered_model()
    for init in model.graph.initializer:
        if init.name == "w_se1":  # one layer of tiny weights: global ranking empties it first
            init.CopyFrom(_init(init.name, numpy_helper.to_array(init) * 1e-3))
    sparse, report = sparsec.sparsify(model, 0.5, global_ranking=True)
    before, after = initializers(model), initializers(sparse)
    sparsified = [r["weight"] for r in report.rows if r["skipped"] is None]
    old = np.concatenate([np.abs(before[w]).ravel() for w in sparsified])
    new = np.concatenate([after[w].ravel() for w in sparsified])
    assert (new == 0).sum() == int(np.floor(0.5 * old.size + 0.5))
    assert old[new == 0].max() <= old[new != 0].min()
    rows = {r["node"]: r for r in report.rows}
    assert rows["se1"]["density_after"] == 0.0
    densities = [r["density_after"] for r in report.rows if r["skipped"] is None]
    assert max(densities) - min(densities) > 0.2  # per layer they would all be 0.5
    _, per_layer = sparsec.sparsify(model, 0.5)
    assert {r["density_after"] for r in per_layer.rows if r["skipped"] is None} == {0.5}


def test_ignore_by_node_or_weight_name():
    model = layered_model()
    sparse, report = sparsec.sparsify(model, 0.75, ignore=["pw", "w_fc2"])
    rows = {r["node"]: r for r in report.rows}
    assert rows["pw"]["skipped"] == "ignored (matches 'pw')"
    assert rows["fc2"]["skipped"] == "ignored (matches 'w_fc2')"
    assert np.array_equal(initializers(sparse)["w_pw"], initializers(model)["w_pw"])
    assert rows["fc1"]["skipped"] is None
    with pytest.raises(sparsec.InputError, match="ignore pattern 'nope' matches no Conv/Gemm/MatMul"):
        sparsec.sparsify(model, 0.75, ignore=["nope"])
    with pytest.raises(sparsec.InputError, match="empty ignore pattern"):
        sparsec.sparsify(model, 0.75, ignore=[""])


def test_option_errors():
    model = layered_model()
    with pytest.raises(sparsec.InputError, match=r"sparsity must be in \[0, 1\), got 1.0"):
        sparsec.sparsify(model, 1.0)
    with pytest.raises(sparsec.InputError, match="unknown sparsity pattern '3:4'"):
        sparsec.sparsify(model, 0.5, "3:4")
    with pytest.raises(sparsec.InputError, match="2:4 zeros 2 of every 4 input channels, i.e. sparsity 0.5; got 0.9"):
        sparsec.sparsify(model, 0.9, "2:4")
    with pytest.raises(sparsec.InputError, match="global ranking does not apply"):
        sparsec.sparsify(model, pattern="2:4", global_ranking=True)
    assert SparsifyOptions(pattern="2:4").target == 0.5 and SparsifyOptions().target == 0.9


def _two_layer_model(nodes, inits, x_shape, y_shape, extra_inputs=()):
    inputs = [helper.make_tensor_value_info(name, TensorProto.FLOAT, shape) for name, shape in [("x", x_shape),
                                                                                              *extra_inputs]]
    graph = helper.make_graph(nodes, "g", inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT, y_shape)],
                              inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_layers_that_stay_dense_say_why_naming_node_and_op():
    rng = np.random.default_rng(0)
    w = _init("w", rng.standard_normal((16, 16)))
    shared = _two_layer_model(
        [helper.make_node("Gemm", ["x", "w"], ["a"], transB=1, name="fc"),
         helper.make_node("MatMul", ["a", "w"], ["y"], name="mm")], [w], [2, 16], [2, 16])
    rows = sparsec.sparsify(shared, 0.5)[1].rows
    assert [r["skipped"] for r in rows] == ["weight 'w' is read in different orientations by node 'fc' (Gemm), "
                                            "node 'mm' (MatMul)"] * 2
    w1 = _init("w1", rng.standard_normal((8, 8, 1, 1)))
    with_first = _two_layer_model(
        [helper.make_node("Conv", ["x", "w1"], ["a"], name="stem"),
         helper.make_node("Conv", ["a", "w1"], ["y"], name="body")], [w1], [1, 8, 4, 4], [1, 8, 4, 4])
    rows = {r["node"]: r for r in sparsec.sparsify(with_first, 0.5)[1].rows}
    assert rows["body"]["skipped"] == "weight 'w1' is shared with node 'stem' (Conv), which stays dense"
    computed = _two_layer_model(
        [helper.make_node("Conv", ["x", "k"], ["a"], name="dynamic_conv"),
         helper.make_node("MatMul", ["m", "a"], ["y"], name="left_constant")],
        [_init("m", rng.standard_normal((4, 4)))], [1, 2, 4, 4], [1, 3, 4, 4], [("k", [3, 2, 1, 1])])
    rows = {r["node"]: r for r in sparsec.sparsify(computed, 0.5)[1].rows}
    assert rows["dynamic_conv"]["skipped"] == "weight 'k' is not a constant (a graph input or computed)"
    assert "constant is the left operand" in rows["left_constant"]["skipped"]


def test_batched_matmul_weight_blocks_along_n(tmp_path):
    rng = np.random.default_rng(0)
    model = _two_layer_model([helper.make_node("MatMul", ["x", "w"], ["y"], name="bmm")],
                             [_init("w", rng.standard_normal((2, 12, 8)))], [2, 3, 12], [2, 3, 8])
    sparse, report = sparsec.sparsify(model, 0.5, "8x1")
    assert report.rows[0]["skipped"] is None
    new = initializers(sparse)["w"]
    for b in range(2):
        for k in range(12):
            assert (new[b, k] == 0).all() or (new[b, k] != 0).all()  # 8 outputs N of one (batch, k) together
    assert compile_and_compare(sparse, feed_for(sparse), tmp_path) < TOLERANCE


def test_weight_sparsity_detects_patterns_in_op_orientation():
    conv = Orientation(0, 1)
    w = np.ones((8, 8, 1, 1), np.float32)
    assert weight_sparsity(w, conv).patterns == () and weight_sparsity(w, conv).density == 1.0
    w[0:4, 2] = 0  # a 4x1 block: 4 output channels at input channel 2
    found = weight_sparsity(w, conv)
    assert found.patterns == ("unstructured", "4x1") and found.zeros == 4
    assert found.block_density == {"unstructured": 60 / 64, "1x4": 1.0, "4x1": 15 / 16, "8x1": 1.0}
    w[0:4, 2] = -0.0  # -0.0 == 0
    assert weight_sparsity(w, conv).zeros == 4
    w[0, 2] = 1e-38  # tiny is not zero
    assert weight_sparsity(w, conv).patterns == ("unstructured",)
    b = np.ones((8, 12), np.float32)  # Gemm transB=0: B [K=8, N=12]
    b[3, 4:8] = 0  # 4 consecutive outputs at one input
    assert weight_sparsity(b, Orientation(1, 0)).patterns == ("unstructured", "4x1")
    assert weight_sparsity(b, Orientation(0, 1)).patterns == ("unstructured", "1x4")  # read as transB=1
    two_four = np.tile(np.array([1, 0, 2, 0], np.float32), (3, 2))  # [O=3, I=8]
    assert "2:4" in weight_sparsity(two_four, Orientation(0, 1)).patterns
    two_four[1, 1] = 5
    assert "2:4" not in weight_sparsity(two_four, Orientation(0, 1)).patterns
    grouped = np.ones((32, 4, 3, 3), np.float32)
    grouped[0:8, 0] = 0
    assert "8x1" in weight_sparsity(grouped, Orientation(0, 1, groups=4)).patterns
    assert "8x1" not in weight_sparsity(grouped, Orientation(0, 1, groups=8)).block_density  # 4 outputs per group
    assert unfit_reason("8x1", grouped.shape, Orientation(0, 1, groups=8)) == (
        "pattern 8x1 needs a multiple of 8 output channels per group, the weight has 4")


def test_existing_zeros_count_and_stay():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((16, 16)).astype(np.float32)
    w[rng.random(w.shape) < 0.95] = 0
    model = _two_layer_model([helper.make_node("Gemm", ["x", "w"], ["y"], transB=1, name="fc")], [_init("w", w)],
                             [2, 16], [2, 16])
    sparse, report = sparsec.sparsify(model, 0.9)
    assert np.array_equal(initializers(sparse)["w"], w)  # already sparser than asked: nothing more goes
    assert report.rows[0]["density_before"] == report.rows[0]["density_after"] == np.count_nonzero(w) / w.size
    blocky = rng.standard_normal((16, 16)).astype(np.float32)
    blocky[0:8] = 0  # output channels 0-7: half of all 4x1 blocks
    model = _two_layer_model([helper.make_node("Gemm", ["x", "w"], ["y"], transB=1, name="fc")],
                             [_init("w", blocky)], [2, 16], [2, 16])
    sparse, report = sparsec.sparsify(model, 0.75, "4x1")
    new = initializers(sparse)["w"]
    assert (new[0:8] == 0).all() and (new == 0).sum() == 0.75 * new.size
    assert report.rows[0]["patterns_before"] == ["unstructured", "1x4", "4x1", "8x1"]  # whole rows: not 2:4


def _sparse_tensor(array: np.ndarray, name: str, linear: bool) -> onnx.SparseTensorProto:
    nonzero = np.argwhere(array != 0)
    indices = np.ravel_multi_index(tuple(nonzero.T), array.shape) if linear else nonzero
    return helper.make_sparse_tensor(numpy_helper.from_array(array[array != 0], name),
                                     numpy_helper.from_array(indices.astype(np.int64), f"{name}_indices"),
                                     array.shape)


@pytest.mark.parametrize("linear", [False, True], ids=["coordinates", "linear"])
def test_sparse_initializers_load_and_run_like_onnxruntime(linear, tmp_path):
    rng = np.random.default_rng(0)
    conv = rng.standard_normal((8, 4, 3, 3)).astype(np.float32) * (rng.random((8, 4, 3, 3)) < 0.3)
    dense_layer = rng.standard_normal((8, 6)).astype(np.float32) * (rng.random((8, 6)) < 0.5)
    nodes = [helper.make_node("Conv", ["x", "conv_w"], ["a"], pads=[1] * 4, name="conv"),
             helper.make_node("GlobalAveragePool", ["a"], ["p"], name="pool"),
             helper.make_node("Flatten", ["p"], ["f"], name="flatten"),
             helper.make_node("Constant", [], ["fc_w"], sparse_value=_sparse_tensor(dense_layer, "fc_w", linear),
                              name="fc_weight"),
             helper.make_node("MatMul", ["f", "fc_w"], ["y"], name="fc")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 5, 5])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 6])],
                              sparse_initializer=[_sparse_tensor(conv, "conv_w", linear)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    feed = feed_for(model)
    assert compile_and_compare(model, feed, tmp_path) < TOLERANCE  # onnxruntime reads the sparse tensors itself
    sparse, report = sparsec.sparsify(model, 0.9, include_first=True)
    rows = {r["node"]: r for r in report.rows}
    assert rows["conv"]["density_before"] == np.count_nonzero(conv) / conv.size  # the zeros were found
    assert rows["fc"]["density_before"] == np.count_nonzero(dense_layer) / dense_layer.size
    assert not sparse.graph.sparse_initializer and rows["conv"]["density_after"] == pytest.approx(0.1, abs=0.01)
    assert compile_and_compare(sparse, feed, tmp_path / "sparse") < TOLERANCE


def test_cli_sparsify_and_compile_round_trip(tmp_path, capsys):
    path = tmp_path / "layers.onnx"
    onnx.save(layered_model(), path)
    out = tmp_path / "sparse.onnx"
    assert main(["sparsify", str(path), "--sparsity", "0.8", "--pattern", "4x1", "--ignore", "fc2", "-q",
                 "-o", str(out), "--report", str(tmp_path / "r.json")]) == 0
    printed = capsys.readouterr().out
    assert "ignored (matches 'fc2')" in printed and f"wrote {out}" in printed and "6 of 9 layers sparsified" in printed
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["options"]["pattern"] == "4x1" and report["options"]["sparsity"] == 0.8
    rows = {r["node"]: r for r in report["layers"]}
    assert rows["pw"]["patterns_after"] == ["unstructured", "4x1"] and rows["fc2"]["skipped"]
    sparse = onnx.load(out)
    onnx.checker.check_model(sparse, full_check=True)
    feed = feed_for(sparse)
    expected = run_onnxruntime(sparse, feed)[0]
    # compile --sparsity/--pattern in one step gives the same model as sparsify then compile
    for source, flags, build in [(out, [], "two_steps"), (path, ["--sparsity", "0.8", "--pattern", "4x1",
                                                                 "--ignore", "fc2"], "one_step")]:
        assert main(["compile", str(source), *flags, "-q", "-o", str(tmp_path / build / "m.spx")]) == 0
        ours = sparsec.load(tmp_path / build / "m.spx").run(None, feed)[0]
        np.testing.assert_allclose(ours, expected, rtol=TOLERANCE, atol=TOLERANCE * np.abs(expected).max())
    assert "sparsified 6 of 9 layers (4x1, 80%)" in capsys.readouterr().out
    compiled = json.loads((tmp_path / "one_step" / "m.report.json").read_text())
    assert compiled["sparsify"]["zeros_after"] == report["zeros_after"]
    for argv, message in [(["--sparsity", "1.5"], "sparsity must be in [0, 1), got 1.5"),
                          (["--pattern", "3:4"], "unknown sparsity pattern '3:4'"),
                          (["--pattern", "2:4", "--sparsity", "0.9"], "i.e. sparsity 0.5; got 0.9"),
                          (["--ignore", "nope"], "ignore pattern 'nope' matches no")]:
        assert main(["sparsify", str(path), *argv, "-q", "-o", str(tmp_path / "x.onnx")]) == 1
        assert message in capsys.readouterr().err
        assert not (tmp_path / "x.onnx").exists()
    assert main(["sparsify", str(tmp_path / "missing.onnx"), "-o", str(tmp_path / "x.onnx")]) == 1
    assert "cannot read" in capsys.readouterr().err


def test_zoo_mobilenet_v3_small(tmp_path):
    """Squeeze-excite 1x1 convs and the classifier Gemms sparsify; the stem and depthwise convs stay dense."""
    pytest.importorskip("torchvision")
    import zoo

    model = onnx.load(zoo.cached("mobilenet_v3_small"))
    sparse, report = sparsec.sparsify(model, 0.9, "4x1")
    onnx.checker.check_model(sparse, full_check=True)
    assert compile_and_compare(sparse, zoo.example_inputs("mobilenet_v3_small"), tmp_path) < TOLERANCE
    rows = report.rows
    skipped = [r for r in rows if r["skipped"]]
    assert "first conv" in skipped[0]["skipped"] and all("depthwise" in r["skipped"] for r in skipped[1:])
    assert len(skipped) == 12
    assert sum("fc1" in r["node"] or "fc2" in r["node"] for r in rows if r["skipped"] is None) == 18  # 9 SE blocks
    assert [r["op"] for r in rows if r["skipped"] is None].count("Gemm") == 2
    before, after = initializers(model), initializers(sparse)
    nodes = {n.name: n for n in sparse.graph.node}
    for r in rows:
        if r["skipped"] is None:
            assert_pattern(native_view(before[r["weight"]], nodes[r["node"]]),
                           native_view(after[r["weight"]], nodes[r["node"]]), "4x1", 0.9)
    # What the lowering will see: after BatchNorm folding and fusion the zeros and their pattern are still found.
    cleaned, _ = run_passes(load_model(sparse), CLEANUP)
    layers = {n.name: n for n in cleaned.graph if n.op_type.removeprefix("Fused") in ("Conv", "Gemm", "MatMul")}
    assert {n.domain for n in layers.values()} == {"", "sparsec"}
    for r in rows:
        node = layers[r["node"]]
        found = weight_sparsity(node.inputs[1].const_value.numpy(), orientation_of(node))
        assert ("4x1" in found.patterns) == (r["skipped"] is None)
        assert found.density == pytest.approx(r["density_after"])


def test_compile_sparsify_option_equals_sparsify_then_compile(tmp_path):
    model = layered_model()
    feed = feed_for(model)
    options = SparsifyOptions(pattern="2:4", include_depthwise=True)
    one_step = sparsec.compile(model, output=tmp_path / "one.spx", sparsify=options)
    sparse, report = sparsec.sparsify(model, pattern="2:4", include_depthwise=True)
    two_steps = sparsec.compile(sparse, output=tmp_path / "two.spx")
    assert np.array_equal(sparsec.load(one_step.path).run(None, feed)[0],
                          sparsec.load(two_steps.path).run(None, feed)[0])
    assert one_step.report["sparsify"] == report.to_dict()
    assert sparsec.compile(model, output=tmp_path / "ratio.spx", sparsify=0.6).report["sparsify"]["options"][
        "sparsity"] == 0.6
