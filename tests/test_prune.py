"""Dependency-group rules on small hand-built graphs, importance criteria, selection, CLI and errors."""

from __future__ import annotations

import io
import json
import warnings

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from conftest import prune_and_check, run_onnxruntime

import sparsec
from sparsec.cli import main

torch = pytest.importorskip("torch")
nn = torch.nn
TOLERANCE = 1e-4


def export(module, *shapes) -> onnx.ModelProto:
    torch.manual_seed(0)
    module.eval()
    for p in module.parameters():  # non-trivial BN/bias values, so a wrongly sliced vector shows
        with torch.no_grad():
            p.add_(torch.randn_like(p) * 0.1)
    args = tuple(torch.randn(*s) for s in shapes)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, args, buffer, dynamo=False, opset_version=17, input_names=["x"],
                          output_names=["y"], training=torch.onnx.TrainingMode.PRESERVE)
    return onnx.load_from_string(buffer.getvalue())


def feed_for(model: onnx.ModelProto, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {i.name: rng.standard_normal([d.dim_value for d in i.type.tensor_type.shape.dim]).astype(np.float32)
            for i in model.graph.input}


def conv_bn(cin, cout, k=3, groups=1):
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=k // 2, groups=groups), nn.BatchNorm2d(cout), nn.ReLU())


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem, self.a, self.b, self.head = conv_bn(3, 16), conv_bn(16, 16), conv_bn(16, 16), nn.Conv2d(16, 4, 1)

    def forward(self, x):
        x = self.stem(x)
        return self.head(x + self.b(self.a(x)))


class CascadedConcat(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b, self.c, self.head = conv_bn(3, 6), conv_bn(3, 10), conv_bn(3, 8), nn.Conv2d(24, 4, 1)

    def forward(self, x):
        return self.head(torch.cat([torch.cat([self.a(x), self.b(x)], 1), self.c(x)], 1))


class SplitSlice(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem, self.left, self.right = conv_bn(3, 16), nn.Conv2d(8, 4, 1), nn.Conv2d(3, 4, 1)

    def forward(self, x):
        left, right = self.stem(x).chunk(2, dim=1)
        return self.left(left) + self.right(right[:, 2:5])


class FlattenLinear(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem, self.fc, self.out = conv_bn(3, 12), nn.Linear(12 * 4 * 4, 20), nn.Linear(20, 5)

    def forward(self, x):
        return self.out(torch.relu(self.fc(torch.flatten(self.stem(x), 1))))


class ChannelShuffle(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem, self.mix, self.head = conv_bn(3, 12), conv_bn(12, 12), nn.Conv2d(12, 4, 1)

    def forward(self, x):
        x = self.stem(x)
        n, c, h, w = x.shape
        x = x.reshape(n, 2, c // 2, h, w).transpose(1, 2).reshape(n, c, h, w)
        return self.head(self.mix(x))


class DepthwiseGroups(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = conv_bn(3, 16)
        self.depthwise = conv_bn(16, 16, groups=16)
        self.grouped = conv_bn(16, 16, groups=4)
        self.head = nn.Conv2d(16, 4, 1)

    def forward(self, x):
        return self.head(self.grouped(self.depthwise(self.stem(x))))


class GemmMatMul(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 24)  # Gemm, weight [out, in] (transB)
        self.weight = nn.Parameter(torch.randn(24, 16))  # MatMul, weight [in, out]
        self.out = nn.Linear(16, 3)

    def forward(self, x):
        return self.out(torch.relu(torch.relu(self.fc(x)) @ self.weight))


class SqueezeExcite(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem, self.fc1, self.fc2, self.head = conv_bn(3, 16), nn.Conv2d(16, 4, 1), nn.Conv2d(4, 16, 1), nn.Conv2d(16, 4, 1)

    def forward(self, x):
        x = self.stem(x)
        gate = torch.sigmoid(self.fc2(torch.relu(self.fc1(x.mean((2, 3), keepdim=True)))))
        return self.head(x * gate)


class LayerNormMLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.inp, self.norm, self.up, self.down = nn.Linear(8, 16), nn.LayerNorm(16), nn.Linear(16, 32), nn.Linear(32, 4)

    def forward(self, x):
        return self.down(torch.nn.functional.gelu(self.up(self.norm(self.inp(x)))))


def attention():
    import zoo

    return zoo._build_bert_encoder(vocab=50, seq=8, hidden=32, heads=4, ffn=64, layers=1)


# (module, input shape, [(units, unit width) of every prunable group])
CASES = {
    "residual_add": (Residual, (1, 3, 8, 8), [(16, 1), (16, 1)]),
    "cascaded_concat": (CascadedConcat, (1, 3, 8, 8), [(6, 1), (10, 1), (8, 1)]),
    "split_slice": (SplitSlice, (1, 3, 8, 8), [(8, 1), (3, 1), (5, 1)]),  # left half, the slice, the unread rest
    "flatten_linear": (FlattenLinear, (1, 3, 4, 4), [(12, 1), (20, 1)]),
    "channel_shuffle": (ChannelShuffle, (1, 3, 8, 8), [(6, 2), (12, 1)]),  # a unit: one channel per shuffle group
    # depthwise ties each input channel to its output; the 4-group conv makes whole groups of 4 the unit
    "depthwise_group_conv": (DepthwiseGroups, (1, 3, 8, 8), [(4, 4)]),
    "gemm_matmul": (GemmMatMul, (2, 8), [(24, 1), (16, 1)]),
    "broadcast_mul": (SqueezeExcite, (1, 3, 8, 8), [(16, 1), (4, 1)]),
    "layernorm": (LayerNormMLP, (2, 8), [(32, 1)]),
}


def _signature(groups):
    return sorted((g.channels, g.unit_width) for g in groups if g.prunable)


@pytest.mark.parametrize("case", sorted(CASES))
def test_rule_groups_and_prune(case, tmp_path):
    build, shape, expected = CASES[case]
    model = export(build(), shape)
    assert _signature(sparsec.dependency_groups(model)) == sorted(expected)
    report, mask_error, sparsec_error = prune_and_check(model, feed_for(model), tmp_path, 0.5)
    assert mask_error < TOLERANCE and sparsec_error < TOLERANCE
    assert report.params_after < report.params_before


def test_attention_prunes_whole_heads(tmp_path):
    path = tmp_path / "bert.onnx"
    torch.manual_seed(0)
    module = attention().eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (torch.randint(0, 50, (1, 8)),), str(path), dynamo=False, opset_version=17,
                          input_names=["ids"], output_names=["y"])
    heads = [g for g in sparsec.dependency_groups(path) if sum(p.role == "out" for p in g.params) == 3]
    assert [(g.channels, g.unit_width) for g in heads] == [(4, 8)]  # 4 heads of 8; q, k, v of a head go together
    feed = {"ids": np.arange(8, dtype=np.int64)[None] % 50}
    report, mask_error, sparsec_error = prune_and_check(path, feed, tmp_path, 0.5)
    assert mask_error < TOLERANCE and sparsec_error < TOLERANCE
    head_row = next(r for r in report.rows if r["group"] == heads[0].index)
    assert head_row["kept"] == 2


def _group_norm_model(channels=8, groups=4) -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    inits = [onnx.numpy_helper.from_array(a.astype(np.float32), n) for n, a in [
        ("w1", rng.standard_normal((channels, 3, 3, 3))), ("scale", rng.uniform(0.5, 1.5, channels)),
        ("bias", rng.standard_normal(channels)), ("w2", rng.standard_normal((4, channels, 1, 1)))]]
    nodes = [helper.make_node("Conv", ["x", "w1"], ["a"], pads=[1, 1, 1, 1], name="conv1"),
             helper.make_node("GroupNormalization", ["a", "scale", "bias"], ["b"], num_groups=groups, name="gn"),
             helper.make_node("Conv", ["b", "w2"], ["y"], name="conv2")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 6, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 6, 6])], inits,
                              value_info=[helper.make_tensor_value_info("b", TensorProto.FLOAT, [1, channels, 6, 6])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])


def test_group_norm_prunes_whole_groups(tmp_path):
    model = _group_norm_model()
    assert _signature(sparsec.dependency_groups(model)) == [(4, 2)]
    report, mask_error, sparsec_error = prune_and_check(model, feed_for(model), tmp_path, 0.5)
    assert mask_error < TOLERANCE and sparsec_error < TOLERANCE
    pruned, _ = sparsec.prune(model, 0.5)
    gn = next(n for n in pruned.graph.node if n.op_type == "GroupNormalization")
    assert helper.get_attribute_value(gn.attribute[0]) == 2


def test_unknown_op_blocks_its_group_and_says_which():
    rng = np.random.default_rng(0)
    inits = [onnx.numpy_helper.from_array(rng.standard_normal(s).astype(np.float32), n)
             for n, s in [("w1", (8, 3, 1, 1)), ("w2", (8, 8, 1, 1)), ("w3", (4, 8, 1, 1))]]
    nodes = [helper.make_node("Conv", ["x", "w1"], ["a"], name="conv1"),
             helper.make_node("Mystery", ["a"], ["b"], domain="acme", name="mystery"),
             helper.make_node("Conv", ["b", "w2"], ["c"], name="conv2"),
             helper.make_node("Conv", ["c", "w3"], ["y"], name="conv3")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 4, 4])], inits,
                              value_info=[helper.make_tensor_value_info("b", TensorProto.FLOAT, [1, 8, 4, 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("acme", 1)])
    groups = {g.name: g for g in sparsec.dependency_groups(model)}
    assert not groups["conv1"].prunable and "acme.Mystery 'mystery' has no channel rule" in groups["conv1"].blocked_by
    assert groups["conv2"].prunable  # propagation stops at the unknown op, it does not poison the next layer
    assert "model output" in groups["conv3"].blocked_by


class DeadChannels(nn.Module):
    """Three channels with zero filters: after BN and ReLU each is a constant, which is all a reader sees."""

    def __init__(self, reader_kernel):
        super().__init__()
        self.stem = conv_bn(3, 8)
        self.reader = nn.Conv2d(8, 4, reader_kernel, padding=reader_kernel // 2)

    def forward(self, x):
        return self.reader(self.stem(x))


@pytest.mark.parametrize("reader_kernel, folded", [(1, 3), (3, 0)])
def test_constant_channels_fold_into_unpadded_readers(reader_kernel, folded, tmp_path):
    model = export(DeadChannels(reader_kernel), (1, 3, 6, 6))
    weight = next(i for i in model.graph.initializer if i.name == "stem.0.weight")
    data = onnx.numpy_helper.to_array(weight).copy()
    data[[1, 4, 6]] = 0
    weight.CopyFrom(onnx.numpy_helper.from_array(data, weight.name))
    report, mask_error, sparsec_error = prune_and_check(model, feed_for(model), tmp_path, 3 / 8, criterion="l1")
    assert sorted(report.removed[("stem.0.weight", 0)].tolist()) == [1, 4, 6]
    assert len(report.folded.get(("stem.0.weight", 0), [])) == folded
    assert mask_error < TOLERANCE and sparsec_error < TOLERANCE
    if folded:  # the readers' biases took the constants: the pruned model is the original, exactly
        pruned, _ = sparsec.prune(model, 3 / 8, criterion="l1")
        feed = feed_for(model)
        original, smaller = run_onnxruntime(model, feed)[0], run_onnxruntime(pruned, feed)[0]
        np.testing.assert_allclose(smaller, original, rtol=1e-5, atol=1e-5)


def test_criteria_rank_units():
    w1 = np.ones((4, 2, 1, 1), np.float32) * np.array([3, 1, 4, 2], np.float32)[:, None, None, None]
    gamma = np.array([0.1, 5, 1, 3], np.float32)
    inits = [onnx.numpy_helper.from_array(a, n) for n, a in [
        ("w1", w1), ("gamma", gamma), ("beta", np.zeros(4, np.float32)), ("mean", np.zeros(4, np.float32)),
        ("var", np.ones(4, np.float32)), ("w2", np.ones((1, 4, 1, 1), np.float32))]]
    nodes = [helper.make_node("Conv", ["x", "w1"], ["a"], name="conv1"),
             helper.make_node("BatchNormalization", ["a", "gamma", "beta", "mean", "var"], ["b"], name="bn"),
             helper.make_node("Conv", ["b", "w2"], ["y"], name="conv2")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 2, 2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 2, 2])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])

    def removed(ratio=0.5, **options):
        _, report = sparsec.prune(model, ratio, **options)
        return sorted(report.removed.get(("w1", 0), np.zeros(0, int)).tolist())

    assert removed(criterion="l1") == [1, 3]  # smallest |w|
    assert removed(criterion="l2") == [1, 3]
    assert removed(criterion="bn_scale") == [0, 2]  # smallest |gamma|
    assert removed(criterion="random", seed=1) == removed(criterion="random", seed=1)
    x = np.ones((3, 2, 2, 2), np.float32)
    assert removed(criterion="taylor", calib=[{"x": s[None]} for s in x]) == [0, 2]  # |a| ~ gamma * w: 0.3, 5, 4, 6
    assert removed(criterion="l2", ratio=0.5, round_to=4) == []  # 2 kept channels round up to 4
    assert len(removed(criterion="l2", ratio=0.9, max_ratio=0.5)) == 2


def test_global_ranking_prunes_the_weakest_layer_more(tmp_path):
    model = export(Residual(), (1, 3, 8, 8))
    for init in model.graph.initializer:
        if init.name == "a.0.weight":  # make one layer's filters tiny
            init.CopyFrom(onnx.numpy_helper.from_array(onnx.numpy_helper.to_array(init) * 1e-3, init.name))
    _, report = sparsec.prune(model, 0.3, global_ranking=True)
    kept = {r["name"]: r["kept"] for r in report.rows if r["prunable"]}
    assert kept[min(kept, key=kept.get)] < 16 * 0.7
    assert sum(r["units"] - r["kept"] for r in report.rows if r["prunable"]) == int(0.3 * 32)


def test_ignore_keeps_a_group_whole():
    model = export(Residual(), (1, 3, 8, 8))
    _, report = sparsec.prune(model, 0.5, ignore=["/a/"])
    rows = {r["name"]: r for r in report.rows}
    assert rows["/a/a.0/Conv"]["kept"] == rows["/a/a.0/Conv"]["units"]
    assert any(r["kept"] < r["units"] for r in report.rows)


def test_prune_errors_name_the_problem(tmp_path):
    model = export(Residual(), (1, 3, 8, 8))
    with pytest.raises(sparsec.InputError, match="ratio must be in"):
        sparsec.prune(model, 1.5)
    with pytest.raises(sparsec.InputError, match="taylor criterion needs calibration"):
        sparsec.prune(model, 0.5, criterion="taylor")
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros((2, 5), np.float32))
    with pytest.raises(sparsec.InputError, match="not a stack of"):
        sparsec.prune(model, 0.5, criterion="taylor", calib=str(bad))


@pytest.mark.parametrize("samples,message", [
    (np.zeros((2, 8, 8, 3), np.float32), r"shape \(2, 8, 8, 3\).*\[1, 3, 8, 8\]"),  # NHWC: same size, wrong layout
    (np.zeros((3, 8, 8), np.float32), r"shape \(3, 8, 8\).*samples first"),  # one sample, no samples axis
    (np.full((2, 3, 8, 8), np.nan, np.float32), "NaN or infinite"),
    (np.where(np.arange(384).reshape(2, 3, 8, 8) == 7, np.inf, 1.0).astype(np.float32), "NaN or infinite"),
], ids=["nhwc", "no-batch-axis", "all-nan", "one-inf"])
def test_taylor_calibration_is_checked(samples, message, tmp_path):
    model = export(Residual(), (1, 3, 8, 8))
    np.save(tmp_path / "calib.npy", samples)
    with pytest.raises(sparsec.InputError, match=message):
        sparsec.prune(model, 0.5, criterion="taylor", calib=str(tmp_path / "calib.npy"))


@pytest.mark.parametrize("feed,message", [({"x": np.zeros((3, 8, 8), np.float32)}, r"'x' has shape \(3, 8, 8\)"),
                                          ({"x": np.full((1, 3, 8, 8), np.nan, np.float32)}, "NaN or infinite"),
                                          ({"y": np.zeros((1, 3, 8, 8), np.float32)}, "every model input")])
def test_taylor_calibration_feeds_are_checked(feed, message):
    with pytest.raises(sparsec.InputError, match=message):
        sparsec.prune(export(Residual(), (1, 3, 8, 8)), 0.5, criterion="taylor", calib=[feed])


@pytest.mark.parametrize("pattern,message", [("no_such_layer", "matches no node or weight"), ("", "empty")])
def test_ignore_pattern_must_match(pattern, message, tmp_path, capsys):
    model = export(Residual(), (1, 3, 8, 8))
    with pytest.raises(sparsec.InputError, match=message):
        sparsec.prune(model, 0.5, ignore=["/a/", pattern])
    path = tmp_path / "residual.onnx"
    onnx.save(model, path)
    assert main(["prune", str(path), "-q", "--ignore", pattern, "-o", str(tmp_path / "p.onnx")]) == 1
    assert message in capsys.readouterr().err
    assert main(["compile", str(path), "-q", "--prune", "0.5", "--ignore", pattern, "-o", str(tmp_path / "b")]) == 1
    assert message in capsys.readouterr().err
    assert not (tmp_path / "p.onnx").exists() and not (tmp_path / "b").exists()


def test_cli_groups_prune_and_compile(tmp_path, capsys):
    path = tmp_path / "residual.onnx"
    onnx.save(export(Residual(), (1, 3, 8, 8)), path)
    assert main(["groups", str(path)]) == 0
    out = capsys.readouterr().out
    assert "2 prunable" in out and "model output 'y'" in out
    calib = tmp_path / "calib.npy"
    np.save(calib, np.random.default_rng(0).standard_normal((3, 3, 8, 8)).astype(np.float32))
    pruned = tmp_path / "pruned.onnx"
    assert main(["prune", str(path), "--ratio", "0.5", "--criterion", "taylor", "--calib", str(calib), "-q",
                 "-o", str(pruned), "--report", str(tmp_path / "r.json")]) == 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["params_after"] < report["params_before"]
    onnx.checker.check_model(onnx.load(pruned), full_check=True)
    feed = {"x": np.ones((1, 3, 8, 8), np.float32)}
    assert run_onnxruntime(onnx.load(pruned), feed)[0].shape == (1, 4, 8, 8)
    assert main(["compile", str(path), "--prune", "0.5", "--criterion", "taylor", "--calib", str(calib), "-q",
                 "-o", str(tmp_path / "build")]) == 0
    compiled = json.loads((tmp_path / "build" / "residual.report.json").read_text())
    assert compiled["prune"]["params_after"] == report["params_after"]
    assert main(["prune", str(path), "--ratio", "2", "-o", str(tmp_path / "x.onnx")]) == 1
    assert "ratio must be in" in capsys.readouterr().err
    assert not (tmp_path / "x.onnx").exists()
