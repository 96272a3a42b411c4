"""Logic, comparison, index and tensor-manipulation ops against onnxruntime (onnx's reference where onnxruntime
lacks the case): integer and bool dtypes exact, refusals named, run-time index errors caught."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator

import sparsec
from conftest import run_onnxruntime, target_outputs_error

TYPES = {np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.int64): TensorProto.INT64,
         np.dtype(np.int32): TensorProto.INT32, np.dtype(np.uint8): TensorProto.UINT8,
         np.dtype(np.int8): TensorProto.INT8, np.dtype(np.bool_): TensorProto.BOOL}
INT_TYPES = [np.int64, np.int32, np.uint8, np.int8]


def graph_model(nodes, inputs: dict, outputs: dict, initializers: dict | None = None, opset: int = 18,
                value_info: dict | None = None):
    """A model from nodes; inputs name -> example array; outputs (and value_info) name -> (dtype, shape)."""
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info(n, TYPES[a.dtype], a.shape) for n, a in inputs.items()],
        [helper.make_tensor_value_info(n, TYPES[np.dtype(t)], s) for n, (t, s) in outputs.items()],
        [onnx.numpy_helper.from_array(np.asarray(a), n) for n, a in (initializers or {}).items()],
        value_info=[helper.make_tensor_value_info(n, TYPES[np.dtype(t)], s) for n, (t, s) in (value_info or {}).items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    onnx.checker.check_model(model, full_check=True)
    return model


def run_both(model, feed: dict, tmp_path, reference: str = "onnxruntime"):
    artifact = sparsec.compile(model, output=tmp_path / "model.spx").path
    ours = sparsec.load(artifact).run(None, feed)
    expected = (run_onnxruntime(model, feed) if reference == "onnxruntime"
                else ReferenceEvaluator(model).run(None, feed))
    return ours, expected


def assert_same(model, feed: dict, tmp_path, reference: str = "onnxruntime") -> None:
    """Same dtype and shape; integers and bools equal, floats within 1e-6 relative (NaN where NaN)."""
    ours, expected = run_both(model, feed, tmp_path, reference)
    assert len(ours) == len(expected)
    for a, e in zip(ours, expected):
        assert a.dtype == e.dtype and a.shape == e.shape, (a.dtype, a.shape, e.dtype, e.shape)
        if a.dtype == np.float32:
            np.testing.assert_allclose(a, e, rtol=1e-6, atol=1e-7)
        else:
            np.testing.assert_array_equal(a, e)


def ints(rng, dtype, shape, low=-20, high=20):
    info = np.iinfo(dtype) if dtype != np.bool_ else None
    if info is not None:
        low, high = max(low, int(info.min)), min(high, int(info.max))
    return rng.integers(low, high, size=shape, endpoint=True).astype(dtype)


def sample(rng, dtype, shape):
    if dtype == np.float32:
        x = rng.integers(-3, 4, size=shape).astype(np.float32) / 2  # ties for the comparisons
        x.reshape(-1)[:2] = [np.nan, np.inf]
        return x
    if dtype == np.bool_:
        return rng.integers(0, 2, size=shape).astype(bool)
    return ints(rng, dtype, shape, -3, 3)


# ---- comparisons, logic, bitwise, where ------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, *INT_TYPES, np.bool_], ids=lambda d: np.dtype(d).name)
def test_comparisons_broadcast(dtype, rng, tmp_path):
    ops = ["Equal"] if dtype == np.bool_ else ["Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual"]
    nodes = [helper.make_node(op, ["a", "b"], [op]) for op in ops]
    feed = {"a": sample(rng, dtype, (2, 3, 4)), "b": sample(rng, dtype, (3, 1))}
    assert_same(graph_model(nodes, feed, {op: (np.bool_, [2, 3, 4]) for op in ops}), feed, tmp_path)


def test_logic_ops_on_bool(rng, tmp_path):
    nodes = [helper.make_node(op, ["a", "b"], [op]) for op in ("And", "Or", "Xor")]
    nodes.append(helper.make_node("Not", ["a"], ["Not"]))
    feed = {"a": sample(rng, np.bool_, (2, 3, 4)), "b": sample(rng, np.bool_, (1, 4))}
    outputs = {op: (np.bool_, [2, 3, 4]) for op in ("And", "Or", "Xor", "Not")}
    assert_same(graph_model(nodes, feed, outputs), feed, tmp_path)


@pytest.mark.parametrize("dtype", INT_TYPES, ids=lambda d: np.dtype(d).name)
def test_bitwise_ops(dtype, rng, tmp_path):
    ops = ("BitwiseAnd", "BitwiseOr", "BitwiseXor")
    nodes = [helper.make_node(op, ["a", "b"], [op]) for op in ops] + [helper.make_node("BitwiseNot", ["a"], ["Not"])]
    feed = {"a": ints(rng, dtype, (3, 4), -100, 100), "b": ints(rng, dtype, (4,), -100, 100)}
    outputs = {op: (dtype, [3, 4]) for op in (*ops, "Not")}
    assert_same(graph_model(nodes, feed, outputs), feed, tmp_path)


@pytest.mark.parametrize("dtype", [np.uint8, np.int32, np.int64, np.int8], ids=lambda d: np.dtype(d).name)
def test_bit_shift_including_out_of_range_amounts(dtype, rng, tmp_path):
    """Signed types and shifts outside [0, bits) as onnx's reference defines them (onnxruntime takes unsigned only)."""
    bits = np.iinfo(dtype).bits
    nodes = [helper.make_node("BitShift", ["a", "s"], [d], direction=d) for d in ("LEFT", "RIGHT")]
    a = ints(rng, dtype, (4, 6), -1000, 1000)
    s = np.array([0, 1, 3, bits - 1, bits, -1 if np.iinfo(dtype).min < 0 else bits + 2], dtype)
    feed = {"a": a, "s": s}
    model = graph_model(nodes, feed, {d: (dtype, [4, 6]) for d in ("LEFT", "RIGHT")}, opset=28 if dtype != np.uint8 else 18)
    assert_same(model, feed, tmp_path, reference="onnx" if dtype != np.uint8 else "onnxruntime")


@pytest.mark.parametrize("dtype", [np.float32, np.int64, np.uint8, np.int32], ids=lambda d: np.dtype(d).name)
def test_where_broadcasts_three_operands(dtype, rng, tmp_path):
    feed = {"c": sample(rng, np.bool_, (2, 1, 4)), "x": sample(rng, dtype, (3, 4)), "y": sample(rng, dtype, (2, 3, 1))}
    model = graph_model([helper.make_node("Where", ["c", "x", "y"], ["z"])], feed, {"z": (dtype, [2, 3, 4])})
    assert_same(model, feed, tmp_path)


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint8], ids=lambda d: np.dtype(d).name)
def test_transpose_moving_the_last_axis_of_integers(dtype, rng, tmp_path):
    """4-byte elements share the float blocks (bits copied), other sizes the element loop."""
    feed = {"x": sample(rng, dtype, (3, 6, 9))}
    model = graph_model([helper.make_node("Transpose", ["x"], ["y"], perm=[2, 0, 1])], feed, {"y": (dtype, [9, 3, 6])})
    assert_same(model, feed, tmp_path)


# ---- element-wise arithmetic on small integers, Clip, Mean, IsNaN/IsInf ------------------------------------------

@pytest.mark.parametrize("dtype", [np.uint8, np.int8], ids=lambda d: np.dtype(d).name)
def test_small_integer_arithmetic_wraps_and_truncates(dtype, rng, tmp_path):
    ops = ["Add", "Sub", "Mul", "Div", "Max", "Min"]
    nodes = [helper.make_node(op, ["a", "b"], [op]) for op in ops]
    nodes += [helper.make_node("Mod", ["a", "b"], ["Mod"]), helper.make_node("Mod", ["a", "b"], ["Fmod"], fmod=1)]
    a = ints(rng, dtype, (3, 8), -128, 255)
    b = ints(rng, dtype, (8,), -128, 255)
    b[b == 0] = 3
    b[:2] = [np.iinfo(dtype).max, -1 if dtype == np.int8 else 1]  # uint8 255 is a divisor, not -1
    feed = {"a": a, "b": b}
    outputs = {op: (dtype, [3, 8]) for op in (*ops, "Mod", "Fmod")}
    assert_same(graph_model(nodes, feed, outputs), feed, tmp_path)


def test_clip_with_run_time_and_integer_bounds(rng, tmp_path):
    nodes = [helper.make_node("Clip", ["x", "lo", "hi"], ["both"]), helper.make_node("Clip", ["x", "lo"], ["low"]),
             helper.make_node("Clip", ["x", "", "hi"], ["high"]), helper.make_node("Clip", ["i", "ilo", "ihi"], ["int"]),
             helper.make_node("Clip", ["b"], ["none"])]
    feed = {"x": rng.standard_normal((3, 5)).astype(np.float32), "lo": np.array(-0.5, np.float32),
            "hi": np.array(0.7, np.float32), "i": ints(rng, np.int32, (3, 5)), "b": ints(rng, np.int8, (4,), -128, 127)}
    outputs = {"both": (np.float32, [3, 5]), "low": (np.float32, [3, 5]), "high": (np.float32, [3, 5]),
               "int": (np.int32, [3, 5]), "none": (np.int8, [4])}
    model = graph_model(nodes, feed, outputs, {"ilo": np.array(-4, np.int32), "ihi": np.array(6, np.int32)})
    assert_same(model, feed, tmp_path)


def test_mean_isnan_isinf(rng, tmp_path):
    nodes = [helper.make_node("Mean", ["a", "b", "c"], ["mean"]), helper.make_node("IsNaN", ["a"], ["nan"]),
             helper.make_node("IsInf", ["a"], ["inf"]),
             helper.make_node("IsInf", ["a"], ["neg"], detect_positive=0)]
    a = rng.standard_normal((2, 4)).astype(np.float32)
    a[0, :3] = [np.nan, np.inf, -np.inf]
    feed = {"a": a, "b": rng.standard_normal((4,)).astype(np.float32), "c": rng.standard_normal((2, 1)).astype(np.float32)}
    outputs = {"mean": (np.float32, [2, 4]), "nan": (np.bool_, [2, 4]), "inf": (np.bool_, [2, 4]),
               "neg": (np.bool_, [2, 4])}
    assert_same(graph_model(nodes, feed, outputs), feed, tmp_path)


# ---- masks and one-hot: Trilu, Hardmax, OneHot, EyeLike ----------------------------------------------------------

@pytest.mark.parametrize("upper", [0, 1])
def test_trilu_constant_and_run_time_k(upper, rng, tmp_path):
    nodes = [helper.make_node("Trilu", ["x", "k"], ["run_time"], upper=upper),
             helper.make_node("Trilu", ["i", "kc"], ["constant"], upper=upper),
             helper.make_node("Trilu", ["x"], ["default"], upper=upper)]
    feed = {"x": rng.standard_normal((2, 4, 5)).astype(np.float32), "k": np.array(-1, np.int64),
            "i": ints(rng, np.int64, (3, 6))}
    outputs = {"run_time": (np.float32, [2, 4, 5]), "constant": (np.int64, [3, 6]), "default": (np.float32, [2, 4, 5])}
    assert_same(graph_model(nodes, feed, outputs, {"kc": np.array(2, np.int64)}), feed, tmp_path)


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_hardmax_takes_the_first_maximum(axis, rng, tmp_path):
    x = rng.integers(0, 3, size=(3, 4, 5)).astype(np.float32)  # many ties
    model = graph_model([helper.make_node("Hardmax", ["x"], ["y"], axis=axis)], {"x": x}, {"y": (np.float32, [3, 4, 5])})
    assert_same(model, {"x": x}, tmp_path)


@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_one_hot_negative_and_out_of_range_indices(axis, tmp_path):
    indices = np.array([[0, -1, 3], [9, 12, -11]], np.int64)  # 12 and -11 are out of range: all off
    values = np.array([-2, 5], np.float32)
    out_shape = [2, 3]
    out_shape.insert(axis if axis >= 0 else 2, 10)
    model = graph_model([helper.make_node("OneHot", ["i", "depth", "v"], ["y"], axis=axis)], {"i": indices, "v": values},
                        {"y": (np.float32, out_shape)}, {"depth": np.array(10, np.int64)})
    assert_same(model, {"i": indices, "v": values}, tmp_path)


def test_eye_like(tmp_path):
    x = np.zeros((3, 5), np.int32)
    nodes = [helper.make_node("EyeLike", ["x"], ["y"], k=1), helper.make_node("EyeLike", ["x"], ["f"], k=-2, dtype=1)]
    assert_same(graph_model(nodes, {"x": x}, {"y": (np.int32, [3, 5]), "f": (np.float32, [3, 5])}), {"x": x}, tmp_path)


# ---- Range, cumulative sums, TopK ---------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype,start,limit,delta", [(np.int32, 10, -3, -4), (np.int64, -5, 7, 3),
                                                     (np.float32, 0.5, 3.0, 0.75)])
def test_range_at_run_time(dtype, start, limit, delta, tmp_path):
    feed = {"s": np.array(start, dtype), "l": np.array(limit, dtype), "d": np.array(delta, dtype)}
    count = int(np.ceil((limit - start) / delta))
    model = graph_model([helper.make_node("Range", ["s", "l", "d"], ["y"])], feed, {"y": (dtype, [count])})
    assert_same(model, feed, tmp_path)
    wrong = dict(feed, d=np.array(delta * 2, dtype))
    with pytest.raises(Exception, match="Range: start, limit and delta give"):
        sparsec.load(tmp_path / "model.spx").run(None, wrong)


@pytest.mark.parametrize("op", ["CumSum", "CumProd"])
@pytest.mark.parametrize("exclusive,reverse", [(0, 0), (1, 0), (0, 1), (1, 1)])
def test_cumulative(op, exclusive, reverse, rng, tmp_path):
    nodes = [helper.make_node(op, ["x", "axis"], ["y"], exclusive=exclusive, reverse=reverse),
             helper.make_node(op, ["i", "one"], ["iy"], exclusive=exclusive, reverse=reverse)]
    feed = {"x": rng.uniform(0.5, 1.5, (3, 4)).astype(np.float32), "axis": np.array(0, np.int32),
            "i": ints(rng, np.int64, (2, 3, 4), -5, 5)}
    model = graph_model(nodes, feed, {"y": (np.float32, [3, 4]), "iy": (np.int64, [2, 3, 4])},
                        {"one": np.array(-2, np.int64)}, opset=26)
    assert_same(model, feed, tmp_path, reference="onnx" if op == "CumProd" else "onnxruntime")


@pytest.mark.parametrize("largest", [1, 0])
@pytest.mark.parametrize("dtype", [np.float32, np.int64, np.int32], ids=lambda d: np.dtype(d).name)
def test_top_k_ties_by_lower_index(largest, dtype, rng, tmp_path):
    x = rng.integers(-3, 4, size=(3, 7, 2)).astype(dtype)
    nodes = [helper.make_node("TopK", ["x", "k"], ["v", "i"], axis=1, largest=largest),
             helper.make_node("TopK", ["x", "kr"], ["v2", "i2"], axis=-1, largest=largest)]
    feed = {"x": x, "kr": np.array([2], np.int64)}
    outputs = {"v": (dtype, [3, 4, 2]), "i": (np.int64, [3, 4, 2]), "v2": (dtype, [3, 7, 2]), "i2": (np.int64, [3, 7, 2])}
    model = graph_model(nodes, feed, outputs, {"k": np.array([4], np.int64)})
    assert_same(model, feed, tmp_path)
    with pytest.raises(Exception, match="TopK: k = 1; the model declared 2"):
        sparsec.load(tmp_path / "model.spx").run(None, dict(feed, kr=np.array([1], np.int64)))


# ---- gathers and scatters -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("index_type", [np.int64, np.int32], ids=lambda d: np.dtype(d).name)
def test_gather_and_scatter_elements(index_type, rng, tmp_path):
    data = ints(rng, np.int64, (3, 4))
    indices = np.array([[1, -1, 0], [2, 2, -4]], index_type)
    updates = ints(rng, np.int64, (2, 3))
    nodes = [helper.make_node("GatherElements", ["data", "idx"], ["g"], axis=1),
             helper.make_node("ScatterElements", ["data", "idx", "upd"], ["s"], axis=1),
             *[helper.make_node("ScatterElements", ["data", "idx", "upd"], [r], axis=1, reduction=r)
               for r in ("add", "mul", "max", "min")]]
    feed = {"data": data, "idx": indices, "upd": updates}
    outputs = {"g": (np.int64, [2, 3]), **{n: (np.int64, [3, 4]) for n in ("s", "add", "mul", "max", "min")}}
    assert_same(graph_model(nodes, feed, outputs), feed, tmp_path)


def test_scatter_elements_on_bool_and_float(rng, tmp_path):
    nodes = [helper.make_node("ScatterElements", ["b", "idx", "bu"], ["sb"], axis=0),
             helper.make_node("ScatterElements", ["f", "idx", "fu"], ["sf"], axis=0, reduction="add")]
    feed = {"b": sample(rng, np.bool_, (4, 3)), "idx": np.array([[3, 0, 1], [3, -4, 2]], np.int64),
            "bu": sample(rng, np.bool_, (2, 3)), "f": rng.standard_normal((4, 3)).astype(np.float32),
            "fu": rng.standard_normal((2, 3)).astype(np.float32)}
    assert_same(graph_model(nodes, feed, {"sb": (np.bool_, [4, 3]), "sf": (np.float32, [4, 3])}), feed, tmp_path)


@pytest.mark.parametrize("batch_dims", [0, 1])
def test_gather_nd(batch_dims, rng, tmp_path):
    data = ints(rng, np.int32, (2, 3, 4))
    indices = np.array([[[1, 2], [0, -1]], [[-2, 0], [2, 3]]], np.int64)  # [2, 2, 2]
    out = [2, 2, 4] if batch_dims == 0 else [2, 2]
    if batch_dims == 0:
        indices = np.array([[[1, 2], [0, -1]], [[-2, 0], [1, 1]]], np.int64)
    model = graph_model([helper.make_node("GatherND", ["d", "i"], ["y"], batch_dims=batch_dims)],
                        {"d": data, "i": indices}, {"y": (np.int32, out)})
    assert_same(model, {"d": data, "i": indices}, tmp_path)


@pytest.mark.parametrize("reduction", ["none", "add", "mul", "max", "min"])
def test_scatter_nd(reduction, rng, tmp_path):
    data = ints(rng, np.int64, (4, 3, 2))
    indices = np.array([[1], [3], [1]] if reduction != "none" else [[1], [-1]], np.int64)
    updates = ints(rng, np.int64, (len(indices), 3, 2))
    model = graph_model([helper.make_node("ScatterND", ["d", "i", "u"], ["y"], reduction=reduction)],
                        {"d": data, "i": indices, "u": updates}, {"y": (np.int64, [4, 3, 2])})
    assert_same(model, {"d": data, "i": indices, "u": updates}, tmp_path)


def test_index_out_of_range_is_a_run_time_error(rng, tmp_path):
    data, indices = ints(rng, np.int64, (3, 4)), np.array([[0, 4]], np.int64)
    model = graph_model([helper.make_node("GatherElements", ["d", "i"], ["y"], axis=1)], {"d": data, "i": indices},
                        {"y": (np.int64, [1, 2])})
    artifact = sparsec.compile(model, output=tmp_path / "model.spx").path
    with pytest.raises(Exception, match="GatherElements: index 4 out of range"):
        sparsec.load(artifact).run(None, {"d": data, "i": indices})


# ---- data movement: Tile, DepthToSpace/SpaceToDepth, ReverseSequence, ConstantOfShape, BitCast, Slice, Pad ---------

def test_tile_depth_space_reverse_sequence(rng, tmp_path):
    x = ints(rng, np.int64, (1, 8, 2, 3)).astype(np.float32)
    nodes = [helper.make_node("Tile", ["x", "reps"], ["tile"]),
             helper.make_node("DepthToSpace", ["x"], ["dcr"], blocksize=2, mode="DCR"),
             helper.make_node("DepthToSpace", ["x"], ["crd"], blocksize=2, mode="CRD"),
             helper.make_node("SpaceToDepth", ["z"], ["s2d"], blocksize=2),
             helper.make_node("ReverseSequence", ["r", "lens"], ["rev"], batch_axis=1, time_axis=0)]
    feed = {"x": x, "z": rng.standard_normal((2, 3, 4, 6)).astype(np.float32), "r": ints(rng, np.int32, (5, 3, 2)),
            "lens": np.array([5, 1, 3], np.int64)}
    outputs = {"tile": (np.float32, [2, 8, 6, 3]), "dcr": (np.float32, [1, 2, 4, 6]), "crd": (np.float32, [1, 2, 4, 6]),
               "s2d": (np.float32, [2, 12, 2, 3]), "rev": (np.int32, [5, 3, 2])}
    model = graph_model(nodes, feed, outputs, {"reps": np.array([2, 1, 3, 1], np.int64)})
    assert_same(model, feed, tmp_path)


def test_large_constant_of_shape_is_a_run_time_fill(tmp_path):
    """80 MB of constant would be a fill in the artifact, not data (the opset-9 VGG stores weights this way)."""
    value = helper.make_tensor("value", TensorProto.INT32, [1], [7])
    x = np.zeros((2, 3), np.float32)
    nodes = [helper.make_node("ConstantOfShape", ["shape"], ["big"], value=value),
             helper.make_node("ReduceMax", ["big"], ["peak"], keepdims=0),
             helper.make_node("Cast", ["peak"], ["peakf"], to=TensorProto.FLOAT),
             helper.make_node("Add", ["x", "peakf"], ["y"])]
    model = graph_model(nodes, {"x": x}, {"y": (np.float32, [2, 3])}, {"shape": np.array([5000, 4000], np.int64)})
    ours, expected = run_both(model, {"x": x}, tmp_path)
    np.testing.assert_array_equal(ours[0], expected[0])
    assert (tmp_path / "model.spx").stat().st_size < 1 << 20


def test_bit_cast(tmp_path):
    x = np.array([1.0, -2.5, np.inf, 0.0], np.float32)
    i8 = np.array([-1, 0, 127, -128], np.int8)
    nodes = [helper.make_node("BitCast", ["x"], ["i"], to=TensorProto.INT32),
             helper.make_node("BitCast", ["b"], ["u"], to=TensorProto.UINT8)]
    model = graph_model(nodes, {"x": x, "b": i8}, {"i": (np.int32, [4]), "u": (np.uint8, [4])}, opset=26)
    assert_same(model, {"x": x, "b": i8}, tmp_path, reference="onnx")


def test_slice_with_run_time_starts_ends_axes_steps(rng, tmp_path):
    x = ints(rng, np.int32, (6, 5, 4))
    feed = {"x": x, "starts": np.array([-1, 1], np.int64), "ends": np.array([-100, 1000], np.int64),
            "axes": np.array([0, -1], np.int64), "steps": np.array([-2, 2], np.int64)}
    model = graph_model([helper.make_node("Slice", ["x", "starts", "ends", "axes", "steps"], ["y"])], feed,
                        {"y": (np.int32, [3, 5, 2])})
    assert_same(model, feed, tmp_path)
    with pytest.raises(Exception, match="Slice: starts/ends/axes/steps give 2 elements along axis 0"):
        sparsec.load(tmp_path / "model.spx").run(None, dict(feed, steps=np.array([-3, 2], np.int64)))


@pytest.mark.parametrize("mode", ["constant", "reflect", "edge", "wrap"])
@pytest.mark.parametrize("dtype", [np.float32, np.int64, np.uint8], ids=lambda d: np.dtype(d).name)
def test_pad_modes_and_dtypes(mode, dtype, rng, tmp_path):
    x = sample(rng, dtype, (2, 4, 5)) if dtype != np.float32 else rng.standard_normal((2, 4, 5)).astype(np.float32)
    nodes = [helper.make_node("Pad", ["x", "pads", "value"], ["y"], mode=mode),
             helper.make_node("Pad", ["x", "rt_pads", "value", "axes"], ["rt"], mode=mode)]
    feed = {"x": x, "rt_pads": np.array([3, -1, 1, 2], np.int64)}
    pads = np.array([0, 2, -1, 1, 3, 2], np.int64)  # a negative pad crops
    outputs = {"y": (dtype, [3, 9, 6]), "rt": (dtype, [2, 8, 6])}
    model = graph_model(nodes, feed, outputs, {"pads": pads, "value": np.array(3, dtype), "axes": np.array([1, -1])},
                        opset=19)
    assert_same(model, feed, tmp_path)


# ---- what is refused ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("op,inputs,reason", [
    ("Compress", ["x", "c"], "Compress's output shape depends on the values of its input (the condition is not a"),
    ("NonZero", ["x"], "NonZero's output shape depends on the values of its input"),
    ("Unique", ["x"], "Unique's output shape depends on the values of its input"),
])
def test_data_dependent_shapes_are_refused_by_name(op, inputs, reason, tmp_path):
    feed = {"x": np.zeros((3,), np.float32), "c": np.zeros((3,), bool)}
    node = helper.make_node(op, inputs, ["y"], name=f"my_{op.lower()}")
    out_type = TensorProto.INT64 if op == "NonZero" else TensorProto.FLOAT
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info(n, TYPES[feed[n].dtype], [3]) for n in inputs],
                              [helper.make_tensor_value_info("y", out_type, [1, 2] if op == "NonZero" else [2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    with pytest.raises(sparsec.UnsupportedOpError) as info:
        sparsec.compile(model, output=tmp_path / "m.spx")
    [(name, op_type, why)] = info.value.nodes
    assert (name, op_type) == (f"my_{op.lower()}", op) and why.startswith(reason)


def test_compress_with_a_constant_condition_is_a_gather(rng, tmp_path):
    x = ints(rng, np.int64, (3, 4))
    nodes = [helper.make_node("Compress", ["x", "c"], ["rows"], axis=0), helper.make_node("Compress", ["x", "c"], ["flat"])]
    model = graph_model(nodes, {"x": x}, {"rows": (np.int64, [2, 4]), "flat": (np.int64, [2])},
                        {"c": np.array([1, 0, 1], bool)})
    assert_same(model, {"x": x}, tmp_path)


# ---- the new run-time ops on the device targets ------------------------------------------------------------------

def device_model():
    """One model through Compare, Bitwise, Where, Range, Cumulative, TopK, Gather/ScatterElements, Gather/ScatterND,
    BitCast, DynamicSlice and an int64 Pad."""
    nodes = [
        helper.make_node("Less", ["a", "b"], ["less"]), helper.make_node("Not", ["less"], ["ge"]),
        helper.make_node("Where", ["ge", "a", "b"], ["max"]),
        helper.make_node("Range", ["start", "limit", "delta"], ["range"]),
        helper.make_node("CumSum", ["max", "axis"], ["cum"], exclusive=1),
        helper.make_node("TopK", ["cum", "k"], ["top", "top_i"], axis=1),
        helper.make_node("GatherElements", ["cum", "top_i"], ["gathered"], axis=1),
        helper.make_node("ScatterElements", ["cum", "top_i", "gathered"], ["scattered"], axis=1, reduction="add"),
        helper.make_node("GatherND", ["scattered", "nd"], ["gnd"]),
        helper.make_node("ScatterND", ["scattered", "nd", "gnd"], ["snd"], reduction="max"),
        helper.make_node("BitCast", ["snd"], ["bits"], to=TensorProto.INT64),
        helper.make_node("Slice", ["bits", "starts", "ends"], ["sliced"]),
        helper.make_node("Pad", ["sliced", "pads"], ["padded"], mode="wrap"),
    ]
    feed = {"a": np.arange(-6, 6, dtype=np.int64).reshape(3, 4) * 3 % 7, "b": np.full((4,), 2, np.int64),
            "start": np.array(4, np.int64), "limit": np.array(-4, np.int64), "delta": np.array(-3, np.int64),
            "starts": np.array([0, 1], np.int64), "ends": np.array([2, 4], np.int64)}
    outputs = {"range": (np.int64, [3]), "top": (np.int64, [3, 2]), "padded": (np.int64, [4, 5])}
    consts = {"axis": np.array(1, np.int32), "k": np.array([2], np.int64), "nd": np.array([[0, 1], [2, 0]], np.int64),
              "pads": np.array([1, 1, 1, 1], np.int64)}
    return graph_model(nodes, feed, outputs, consts, opset=26, value_info={"sliced": (np.int64, [2, 3])}), feed


def test_device_model_matches_on_host(tmp_path):
    model, feed = device_model()
    assert_same(model, feed, tmp_path, reference="onnx")


@pytest.mark.parametrize("target", ["arm64", "wasm32"])
def test_device_model_on_target(target, tmp_path):
    model, feed = device_model()
    expected = ReferenceEvaluator(model).run(None, feed)
    assert target_outputs_error(model, feed, expected, target, tmp_path)[0] == 0.0


def test_pads_the_runtime_would_refuse_are_refused_by_name(tmp_path):
    x = np.zeros((2, 3), np.float32)
    model = graph_model([helper.make_node("Pad", ["x", "pads"], ["y"], mode="reflect", name="wide_pad")], {"x": x},
                        {"y": (np.float32, [2, 9])}, {"pads": np.array([0, 3, 0, 3])})
    with pytest.raises(sparsec.UnsupportedOpError) as info:
        sparsec.compile(model, output=tmp_path / "m.spx")
    assert info.value.nodes == [("wide_pad", "Pad", "pads 3, 3 do not fit an axis of size 3 in reflect mode")]


def test_tile_of_rank_5(rng, tmp_path):
    x = ints(rng, np.int64, (1, 2, 1, 3, 2))
    model = graph_model([helper.make_node("Tile", ["x", "r"], ["y"])], {"x": x}, {"y": (np.int64, [2, 4, 3, 3, 4])},
                        {"r": np.array([2, 2, 3, 1, 2], np.int64)})
    assert_same(model, {"x": x}, tmp_path)


def test_one_hot_run_time_depth_must_be_the_declared_one(tmp_path):
    indices, depth = np.array([1, -1, 7], np.int64), np.array(4.0, np.float32)
    feed = {"i": indices, "depth": depth, "v": np.array([0, 1], np.float32)}
    model = graph_model([helper.make_node("OneHot", ["i", "depth", "v"], ["y"])], feed, {"y": (np.float32, [3, 4])})
    assert_same(model, feed, tmp_path)
    with pytest.raises(Exception, match="Range: start, limit and delta give 5 elements; the model declared 4"):
        sparsec.load(tmp_path / "model.spx").run(None, dict(feed, depth=np.array(5.0, np.float32)))


@pytest.mark.parametrize("op", ["Tile", "ConstantOfShape"])
def test_run_time_repeats_and_shapes_must_be_the_declared_ones(op, tmp_path):
    x = np.arange(6, dtype=np.int64).reshape(2, 3)
    if op == "Tile":
        feed, node, good, bad = {"x": x, "r": np.array([2, 1], np.int64)}, ["x", "r"], [4, 3], "r"
    else:
        feed, node, good, bad = {"r": np.array([4, 3], np.int64)}, ["r"], [4, 3], "r"
    model = graph_model([helper.make_node(op, node, ["y"])], feed, {"y": (np.int64 if op == "Tile" else np.float32, good)})
    assert_same(model, feed, tmp_path)
    with pytest.raises(Exception, match="Range: start, limit and delta give 3 elements; the model declared"):
        sparsec.load(tmp_path / "model.spx").run(None, dict(feed, **{bad: np.array([3, 1] if op == "Tile" else [3, 3])}))
