"""The NN ops exporters emit (lower/rules_nn_export.py, runtime/src/ops_nn_export.cpp) against onnxruntime:
Resize, 1-D/3-D and transposed convolution, N-D/Lp pooling, LRN, RNN/GRU/LSTM, GridSample, AffineGrid,
CenterCropPad, MaxUnpool, normalisations with run-time parameters or extra outputs, Gemm with a run-time B;
refusals name the node, its op and the reason; one model of the new run-time ops on arm64 (qemu) and wasm32 (Node)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import sparsec
from conftest import compile_and_compare, run_onnxruntime, single_op_model, target_outputs_error

TOLERANCE = 1e-4


def const_model(op_type, x_shape, consts, attrs=None, opset=18, outputs=None, x_name="x"):
    """One node on one float input `x` and constant initializers (named inputs in order; None: an absent input)."""
    names = [x_name] + [name if array is not None else "" for name, array in consts]
    inits = [onnx.numpy_helper.from_array(array, name) for name, array in consts if array is not None]
    outs = outputs or ["y"]
    node = helper.make_node(op_type, names, outs, name=f"{op_type}_0", **(attrs or {}))
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info(x_name, TensorProto.FLOAT, x_shape)],
                              [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outs], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    return onnx.shape_inference.infer_shapes(model, strict_mode=True)


def check(model, feed, tmp_path, tolerance=TOLERANCE):
    error = compile_and_compare(model, feed, tmp_path)
    assert error < tolerance, error


# ---- Resize --------------------------------------------------------------------------------------

RESIZE_CASES = [
    ({"mode": "nearest", "coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"}, [1, 1, 2, 2]),
    ({"mode": "nearest"}, [1, 1, 2, 3]),
    ({"mode": "nearest", "coordinate_transformation_mode": "half_pixel", "nearest_mode": "round_prefer_ceil"},
     [1, 1, 0.6, 1.7]),
    ({"mode": "linear"}, [1, 1, 2, 2]),
    ({"mode": "linear", "coordinate_transformation_mode": "align_corners"}, [1, 1, 2.5, 1.6]),
    ({"mode": "linear", "coordinate_transformation_mode": "pytorch_half_pixel"}, [1, 1, 0.5, 2]),
    ({"mode": "linear", "coordinate_transformation_mode": "asymmetric"}, [1, 1, 3, 2]),
    ({"mode": "cubic"}, [1, 1, 2, 0.75]),
    ({"mode": "cubic", "cubic_coeff_a": -0.5, "exclude_outside": 1}, [1, 1, 1.5, 0.5]),
    ({"mode": "linear", "antialias": 1}, [1, 1, 0.5, 0.4]),
]


@pytest.mark.parametrize("attrs,scales", RESIZE_CASES)
def test_resize_scales_match_onnxruntime(attrs, scales, rng, tmp_path):
    model = const_model("Resize", [1, 2, 6, 5], [("roi", None), ("scales", np.array(scales, np.float32))], attrs)
    check(model, {"x": rng.standard_normal((1, 2, 6, 5), dtype=np.float32)}, tmp_path)


@pytest.mark.parametrize("attrs", [{"mode": "nearest"}, {"mode": "linear"}, {"mode": "cubic"},
                                   {"mode": "nearest", "keep_aspect_ratio_policy": "not_larger", "axes": [2, 3]},
                                   {"mode": "linear", "keep_aspect_ratio_policy": "not_smaller", "axes": [3, 2]}])
def test_resize_sizes_match_onnxruntime(attrs, rng, tmp_path):
    sizes = [1, 3, 9, 4] if "axes" not in attrs else [9, 4]
    model = const_model("Resize", [1, 3, 5, 7], [("roi", None), ("scales", None), ("sizes", np.array(sizes, np.int64))],
                        attrs)
    check(model, {"x": rng.standard_normal((1, 3, 5, 7), dtype=np.float32)}, tmp_path)


def test_resize_tf_crop_and_resize_extrapolates(rng, tmp_path):
    roi = np.array([0, 0, -0.2, 0.1, 1, 1, 0.9, 1.3], np.float32)
    model = const_model("Resize", [1, 1, 4, 4], [("roi", roi), ("scales", None),
                                                 ("sizes", np.array([1, 1, 5, 3], np.int64))],
                        {"mode": "linear", "coordinate_transformation_mode": "tf_crop_and_resize",
                         "extrapolation_value": 7.0})
    check(model, {"x": rng.standard_normal((1, 1, 4, 4), dtype=np.float32)}, tmp_path)


def test_upsample_opset9_is_resize(rng, tmp_path):
    model = const_model("Upsample", [1, 2, 3, 4], [("scales", np.array([1, 1, 2, 3], np.float32))],
                        {"mode": "nearest"}, opset=9)
    check(model, {"x": rng.standard_normal((1, 2, 3, 4), dtype=np.float32)}, tmp_path)


def test_resize_align_corners_with_a_fractional_output_is_refused(tmp_path):
    model = const_model("Resize", [1, 1, 4, 5], [("roi", None), ("scales", np.array([1, 1, 2, 1.5], np.float32))],
                        {"mode": "linear", "coordinate_transformation_mode": "align_corners"})
    with pytest.raises(sparsec.SparsecError, match=r"Resize_0.*Resize.*axis 3: scale 1.5 x 5 is not the output size 7"):
        sparsec.compile(model, output=tmp_path / "m.spx")


def resize_with_sizes_input(out_shape, attrs, n_sizes=4):
    """Resize(x, "", "", sizes) with sizes a graph input and the output shape declared."""
    node = helper.make_node("Resize", ["x", "", "", "sizes"], ["y"], name="Resize_0", **attrs)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 3, 5]),
                                            helper.make_tensor_value_info("sizes", TensorProto.INT64, [n_sizes])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def test_resize_with_run_time_sizes_uses_the_static_output_shape(rng, tmp_path):
    feed = {"x": rng.standard_normal((1, 2, 3, 5), dtype=np.float32), "sizes": np.array([1, 2, 7, 4], np.int64)}
    check(resize_with_sizes_input([1, 2, 7, 4], {"mode": "linear"}), feed, tmp_path)
    policy = resize_with_sizes_input([1, 2, 7, 12], {"mode": "linear", "axes": [2, 3],
                                                     "keep_aspect_ratio_policy": "not_larger"}, n_sizes=2)
    with pytest.raises(sparsec.SparsecError, match=r"sizes \(input 3\) must be a constant with keep_aspect_ratio"):
        sparsec.compile(policy, output=tmp_path / "policy.spx")


def test_resize_with_run_time_scales_is_refused(tmp_path):
    model = single_op_model("Resize", [("x", [1, 1, 2, 2]), ("roi", [0]), ("scales", [4])], [1, 1, 4, 4],
                            attrs={"mode": "nearest"}, opset=18)
    with pytest.raises(sparsec.SparsecError, match=r"Resize_0.*Resize.*scales \(input 2\) must be a constant"):
        sparsec.compile(model, output=tmp_path / "m.spx")


# ---- convolution ---------------------------------------------------------------------------------

CONV_TRANSPOSE_CASES = [
    ([1, 4, 7], [4, 3, 3], {"strides": [2]}),
    ([2, 4, 5, 6], [4, 2, 3, 2], {"strides": [2, 3], "pads": [1, 0, 0, 1], "output_padding": [1, 0], "group": 2}),
    ([1, 3, 4, 4], [3, 2, 3, 3], {"dilations": [2, 1], "auto_pad": "SAME_UPPER", "strides": [2, 2]}),
    ([1, 2, 3, 4], [2, 3, 3, 3], {"strides": [2, 2], "output_shape": [8, 9]}),
    ([1, 2, 3, 4, 3], [2, 2, 2, 3, 2], {"strides": [1, 2, 2], "pads": [0, 1, 0, 1, 0, 0]}),
]


@pytest.mark.parametrize("weight_at_run_time", [False, True])
@pytest.mark.parametrize("x_shape,w_shape,attrs", CONV_TRANSPOSE_CASES)
def test_conv_transpose_matches_onnxruntime(x_shape, w_shape, attrs, weight_at_run_time, rng, tmp_path):
    w = rng.standard_normal(w_shape, dtype=np.float32)
    bias = rng.standard_normal(w_shape[1] * attrs.get("group", 1), dtype=np.float32)
    feed = {"x": rng.standard_normal(x_shape, dtype=np.float32)}
    if weight_at_run_time:
        model = single_op_model("ConvTranspose", [("x", x_shape), ("w", w_shape)], initializers=[("b", bias)],
                                attrs=attrs)
        feed["w"] = w
    else:
        model = const_model("ConvTranspose", x_shape, [("w", w), ("b", bias)], attrs, opset=17)
    check(model, feed, tmp_path)


@pytest.mark.parametrize("x_shape,w_shape,attrs", [
    ([2, 4, 20], [6, 2, 5], {"strides": [2], "pads": [2, 1], "group": 2}),
    ([1, 3, 17], [4, 3, 3], {"dilations": [3], "pads": [3, 2]}),
    ([1, 3, 17], [4, 3, 4], {"auto_pad": "SAME_LOWER", "strides": [2]}),
    ([1, 2, 5, 6, 4], [3, 2, 3, 3, 2], {"strides": [1, 2, 1], "pads": [1, 1, 0, 1, 0, 1]}),
])
def test_conv_1d_and_3d_match_onnxruntime(x_shape, w_shape, attrs, rng, tmp_path):
    w = rng.standard_normal(w_shape, dtype=np.float32)
    model = const_model("Conv", x_shape, [("w", w), ("b", rng.standard_normal(w_shape[0], dtype=np.float32))], attrs,
                        opset=17)
    check(model, {"x": rng.standard_normal(x_shape, dtype=np.float32)}, tmp_path)


@pytest.mark.parametrize("with_state", [False, True])
def test_causal_conv_with_state_matches_onnx_reference(with_state, rng, tmp_path):
    """Opset 27's CausalConvWithState (onnxruntime has no kernel for it): ONNX's reference evaluator judges."""
    from onnx.reference import ReferenceEvaluator

    inputs = [("x", [2, 3, 6]), ("w", [3, 1, 4]), ("b", [3])] + ([("past", [2, 3, 3])] if with_state else [])
    model = single_op_model("CausalConvWithState", inputs, opset=27, attrs={"activation": "silu"},
                            outputs=["y", "present"])
    feed = {name: rng.standard_normal(shape, dtype=np.float32) for name, shape in inputs}
    ours = sparsec.load(sparsec.compile(model, output=tmp_path / "m.spx").path).run(None, feed)
    for a, r in zip(ours, ReferenceEvaluator(model).run(None, feed), strict=True):
        np.testing.assert_allclose(a, r, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("with_mask", [False, True])
def test_deform_conv_matches_onnxruntime(with_mask, rng, tmp_path):
    inputs = [("x", [2, 3, 6, 7]), ("w", [4, 3, 3, 2]), ("offset", [2, 12, 3, 6]), ("b", [4])]
    inputs += [("mask", [2, 6, 3, 6])] if with_mask else []
    model = single_op_model("DeformConv", inputs, [2, 4, 3, 6], opset=19,
                            attrs={"strides": [2, 1], "pads": [1, 0, 1, 1], "dilations": [1, 2]})
    feed = {name: rng.standard_normal(shape, dtype=np.float32) for name, shape in inputs}
    feed["offset"] *= 2
    check(model, feed, tmp_path)


# ---- pooling and LRN -----------------------------------------------------------------------------

@pytest.mark.parametrize("op,shape,attrs", [
    ("MaxPool", [1, 2, 11], {"kernel_shape": [3], "strides": [2], "pads": [1, 1]}),
    ("MaxPool", [1, 2, 5, 6, 5], {"kernel_shape": [2, 3, 2], "dilations": [2, 1, 1], "ceil_mode": 1, "strides": [2, 2, 2]}),
    ("AveragePool", [1, 2, 9], {"kernel_shape": [4], "strides": [3], "pads": [2, 1], "count_include_pad": 1}),
    ("AveragePool", [1, 2, 6, 5, 6], {"kernel_shape": [3, 2, 3], "pads": [1, 0, 1, 1, 1, 0], "ceil_mode": 1,
                                      "strides": [2, 2, 2]}),
    ("LpPool", [1, 3, 6, 7], {"kernel_shape": [3, 2], "p": 3, "strides": [2, 1], "auto_pad": "SAME_UPPER"}),
    ("LpPool", [1, 3, 10], {"kernel_shape": [3], "p": 1}),
    ("GlobalLpPool", [2, 3, 4, 5], {"p": 2}),
])
def test_pooling_matches_onnxruntime(op, shape, attrs, rng, tmp_path):
    check(const_model(op, shape, [], attrs), {"x": rng.standard_normal(shape, dtype=np.float32)}, tmp_path)


def test_maxpool_column_major_indices_match_onnxruntime(rng, tmp_path):
    node = helper.make_node("MaxPool", ["x"], ["y", "i"], kernel_shape=[2, 3], strides=[2, 2], pads=[1, 0, 0, 1],
                            storage_order=1)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 5, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None),
                               helper.make_tensor_value_info("i", TensorProto.INT64, None)])
    model = onnx.shape_inference.infer_shapes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    check(model, {"x": rng.standard_normal((2, 3, 5, 6), dtype=np.float32)}, tmp_path)


def test_maxpool_indices_and_maxunpool_match_onnxruntime(rng, tmp_path):
    pool = helper.make_node("MaxPool", ["x"], ["p", "i"], kernel_shape=[2, 2], strides=[2, 2])
    unpool = helper.make_node("MaxUnpool", ["p", "i"], ["y"], kernel_shape=[2, 2], strides=[2, 2])
    graph = helper.make_graph([pool, unpool], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 4, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None),
                               helper.make_tensor_value_info("i", TensorProto.INT64, None)])
    model = onnx.shape_inference.infer_shapes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    check(model, {"x": rng.standard_normal((2, 3, 4, 6), dtype=np.float32)}, tmp_path)


def test_lrn_matches_onnxruntime(rng, tmp_path):
    model = const_model("LRN", [2, 7, 3, 4], [], {"size": 5, "alpha": 0.01, "beta": 0.6, "bias": 1.5})
    check(model, {"x": rng.standard_normal((2, 7, 3, 4), dtype=np.float32)}, tmp_path)


# ---- recurrent -----------------------------------------------------------------------------------

GATES = {"RNN": 1, "GRU": 3, "LSTM": 4}


def recurrent_model(op, steps, batch, size, hidden, direction="forward", layout=0, initial=True, lens=None,
                    seed=0, **attrs):
    rng = np.random.default_rng(seed)
    dirs = 2 if direction == "bidirectional" else 1
    g = GATES[op]
    weights = [("W", rng.standard_normal((dirs, g * hidden, size), dtype=np.float32) * 0.5),
               ("R", rng.standard_normal((dirs, g * hidden, hidden), dtype=np.float32) * 0.5),
               ("B", rng.standard_normal((dirs, 2 * g * hidden), dtype=np.float32) * 0.5)]
    state = (batch, dirs, hidden) if layout else (dirs, batch, hidden)
    inputs = [("sequence_lens", np.array(lens, np.int32) if lens else None)]
    if initial:
        inputs.append(("initial_h", rng.standard_normal(state, dtype=np.float32)))
        if op == "LSTM":
            inputs += [("initial_c", rng.standard_normal(state, dtype=np.float32)),
                       ("P", rng.standard_normal((dirs, 3 * hidden), dtype=np.float32))]
    outputs = ["Y", "Y_h"] + (["Y_c"] if op == "LSTM" else [])
    x_shape = [batch, steps, size] if layout else [steps, batch, size]
    return const_model(op, x_shape, weights + inputs, {"hidden_size": hidden, "direction": direction,
                                                       "layout": layout, **attrs}, opset=17, outputs=outputs)


@pytest.mark.parametrize("op", ["RNN", "GRU", "LSTM"])
@pytest.mark.parametrize("options", [
    {"direction": "forward", "initial": False},
    {"direction": "reverse"},
    {"direction": "bidirectional"},
    {"direction": "bidirectional", "lens": [5, 2, 0]},
    {"direction": "forward", "clip": 0.7},
])
def test_recurrent_matches_onnxruntime(op, options, rng, tmp_path):
    model = recurrent_model(op, 5, 3, 4, 6, **options)
    x_shape = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    check(model, {"x": rng.standard_normal(x_shape, dtype=np.float32)}, tmp_path)


@pytest.mark.parametrize("op", ["RNN", "GRU", "LSTM"])
def test_recurrent_batchwise_layout_matches_onnx_reference(op, rng, tmp_path):
    """layout=1 ([batch, steps, ...]): onnxruntime's CPU kernels refuse it, so ONNX's reference evaluator judges."""
    from onnx.reference import ReferenceEvaluator

    model = recurrent_model(op, 5, 3, 4, 6, direction="bidirectional", layout=1)
    x = rng.standard_normal((3, 5, 4), dtype=np.float32)
    ours = sparsec.load(sparsec.compile(model, output=tmp_path / "m.spx").path).run(None, {"x": x})
    for a, r in zip(ours, ReferenceEvaluator(model).run(None, {"x": x}), strict=True):
        np.testing.assert_allclose(a, r, rtol=1e-4, atol=1e-5)


def test_gru_linear_before_reset_matches_onnxruntime(rng, tmp_path):
    model = recurrent_model("GRU", 4, 2, 3, 5, direction="bidirectional", linear_before_reset=1)
    check(model, {"x": rng.standard_normal((4, 2, 3), dtype=np.float32)}, tmp_path)


def test_lstm_from_torch_matches_onnxruntime(tmp_path):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(8, 16, num_layers=2, bidirectional=True, batch_first=True)
    x = torch.randn(2, 7, 8)
    torch.onnx.export(lstm, (x,), tmp_path / "lstm.onnx", dynamo=False, opset_version=17)
    check(onnx.load(tmp_path / "lstm.onnx"), {"input": x.numpy()}, tmp_path)


def torch_head_and_audio_models():
    """A segmentation/OCR-style head (interpolate nearest/bilinear/bicubic, ConvTranspose2d) and an audio front end
    (Conv1d, AvgPool1d, bidirectional GRU), as PyTorch users write them."""
    import torch
    import torch.nn.functional as F

    class Head(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.up, self.conv = torch.nn.ConvTranspose2d(4, 4, 2, stride=2), torch.nn.Conv2d(4, 4, 3, padding=1)

        def forward(self, x):
            near = F.interpolate(x, scale_factor=2, mode="nearest")
            linear = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
            cubic = F.interpolate(x, scale_factor=2, mode="bicubic", align_corners=False)
            corners = F.interpolate(x, size=(13, 9), mode="bilinear", align_corners=True)
            return self.conv(near + linear + cubic + self.up(x)), corners

    class Audio(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.pool = torch.nn.Conv1d(3, 8, 5, stride=2, padding=2), torch.nn.AvgPool1d(3, 2)
            self.gru = torch.nn.GRU(8, 6, batch_first=True, bidirectional=True)

        def forward(self, x):
            return self.gru(self.pool(torch.relu(self.conv(x))).transpose(1, 2))[0]

    torch.manual_seed(0)
    return {"head": (Head(), torch.randn(1, 4, 6, 5)), "audio": (Audio(), torch.randn(2, 3, 40))}


@pytest.mark.parametrize("name,dynamo", [("head", False), ("head", True), ("audio", False)])
def test_torch_exports_match_onnxruntime(name, dynamo, tmp_path):
    torch = pytest.importorskip("torch")
    module, x = torch_head_and_audio_models()[name]
    path = tmp_path / "model.onnx"
    torch.onnx.export(module.eval(), (x,), path, dynamo=dynamo, opset_version=18,
                      **({"external_data": False} if dynamo else {}))
    model = onnx.load(path)
    check(model, {model.graph.input[0].name: x.numpy()}, tmp_path)


def test_recurrent_activation_parameters_are_refused(tmp_path):
    model = recurrent_model("RNN", 3, 1, 2, 2, activations=["HardSigmoid"], activation_alpha=[0.3])
    with pytest.raises(sparsec.SparsecError, match=r"RNN_0.*RNN.*activation_alpha/activation_beta are not supported"):
        sparsec.compile(model, output=tmp_path / "m.spx")


# ---- sampling ------------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["bilinear", "nearest", "bicubic"])
@pytest.mark.parametrize("padding_mode", ["zeros", "border", "reflection"])
@pytest.mark.parametrize("align_corners", [0, 1])
def test_grid_sample_matches_onnxruntime(mode, padding_mode, align_corners, rng, tmp_path):
    model = single_op_model("GridSample", [("x", [2, 3, 5, 4]), ("grid", [2, 6, 7, 2])], opset=17,
                            attrs={"mode": mode, "padding_mode": padding_mode, "align_corners": align_corners})
    feed = {"x": rng.standard_normal((2, 3, 5, 4), dtype=np.float32),
            "grid": rng.uniform(-1.4, 1.4, (2, 6, 7, 2)).astype(np.float32)}
    if mode == "bicubic" and padding_mode == "border":  # the reference and onnxruntime disagree: refused
        with pytest.raises(sparsec.SparsecError, match=r"GridSample_0.*GridSample.*bicubic sampling with border"):
            sparsec.compile(model, output=tmp_path / "m.spx")
        return
    check(model, feed, tmp_path)


@pytest.mark.parametrize("padding_mode", ["zeros", "border", "reflection"])
def test_grid_sample_with_non_finite_coordinates(padding_mode, rng, tmp_path):
    """inf is sampled as a far-away point (+-1e6, compared with onnxruntime there), NaN gives NaN; no crash."""
    model = single_op_model("GridSample", [("x", [1, 2, 3, 4]), ("grid", [1, 2, 3, 2])], opset=17,
                            attrs={"padding_mode": padding_mode})
    grid = rng.uniform(-1, 1, (1, 2, 3, 2)).astype(np.float32)
    grid[0, 0, 0, 0], grid[0, 1, 2, 1], grid[0, 1, 1, 0] = np.inf, -np.inf, np.nan
    feed = {"x": rng.standard_normal((1, 2, 3, 4), dtype=np.float32), "grid": grid}
    ours = sparsec.load(sparsec.compile(model, output=tmp_path / "m.spx").path).run(None, feed)[0]
    assert np.isnan(ours[0, :, 1, 1]).all() and np.isfinite(np.delete(ours.reshape(2, 6), 4, axis=1)).all()
    finite = np.nan_to_num(grid, nan=0.0, posinf=1e6, neginf=-1e6)  # what inf clamps to
    ref = run_onnxruntime(model, {"x": feed["x"], "grid": finite})[0]
    np.testing.assert_allclose(ours[0, :, 0, 0], ref[0, :, 0, 0], atol=1e-6)
    np.testing.assert_allclose(ours[0, :, 1, 2], ref[0, :, 1, 2], atol=1e-6)


@pytest.mark.parametrize("size,align_corners", [([2, 3, 4, 5], 0), ([1, 1, 3, 2, 4], 1)])
def test_affine_grid_matches_onnxruntime(size, align_corners, rng, tmp_path):
    dims = len(size) - 2
    model = const_model("AffineGrid", [size[0], dims, dims + 1], [("size", np.array(size, np.int64))],
                        {"align_corners": align_corners}, opset=20, x_name="theta")
    check(model, {"theta": rng.standard_normal((size[0], dims, dims + 1), dtype=np.float32)}, tmp_path)


def test_center_crop_pad_matches_onnxruntime(rng, tmp_path):
    model = const_model("CenterCropPad", [3, 8, 5], [("shape", np.array([5, 8], np.int64))], {"axes": [1, 2]})
    check(model, {"x": rng.standard_normal((3, 8, 5), dtype=np.float32)}, tmp_path)


# ---- normalisation and Gemm with run-time parameters -----------------------------------------------

def test_layer_norm_mean_and_inv_std_dev_match_onnxruntime(rng, tmp_path):
    scale = rng.standard_normal((4, 5), dtype=np.float32)
    model = const_model("LayerNormalization", [2, 3, 4, 5], [("scale", scale)], {"axis": -2, "epsilon": 1e-3},
                        outputs=["y", "mean", "inv_std"])
    check(model, {"x": rng.standard_normal((2, 3, 4, 5), dtype=np.float32) + 1}, tmp_path)


@pytest.mark.parametrize("axis", [-1, 1])
def test_rms_normalization_matches_onnxruntime(axis, rng, tmp_path):
    scale = rng.standard_normal((3, 4, 5)[axis:] if axis > 0 else (5,), dtype=np.float32)
    model = const_model("RMSNormalization", [2, 3, 4, 5], [("scale", scale)], {"axis": axis, "epsilon": 1e-3},
                        opset=23)
    check(model, {"x": rng.standard_normal((2, 3, 4, 5), dtype=np.float32)}, tmp_path)


@pytest.mark.parametrize("p", [1, 2])
def test_lp_normalization_matches_onnxruntime(p, rng, tmp_path):
    model = const_model("LpNormalization", [3, 4, 5], [], {"axis": 1, "p": p})
    x = rng.standard_normal((3, 4, 5), dtype=np.float32)
    x[1, :, 2] = 0  # a zero norm gives 0, not 0/0
    check(model, {"x": x}, tmp_path)


def test_norms_with_run_time_parameters_match_onnxruntime(rng, tmp_path):
    c = 4
    bn = single_op_model("BatchNormalization", [("x", [2, c, 3]), ("s", [c]), ("b", [c]), ("m", [c]), ("v", [c])])
    feed = {k: rng.standard_normal(shape, dtype=np.float32) for k, shape in
            (("x", (2, c, 3)), ("s", (c,)), ("b", (c,)), ("m", (c,)))}
    feed["v"] = rng.uniform(0.5, 2, c).astype(np.float32)
    check(bn, feed, tmp_path / "bn")
    inorm = single_op_model("InstanceNormalization", [("x", [2, c, 5]), ("s", [c]), ("b", [c])])
    check(inorm, {k: feed[k] for k in ("s", "b")} | {"x": rng.standard_normal((2, c, 5), dtype=np.float32)},
          tmp_path / "in")
    gn = single_op_model("GroupNormalization", [("x", [2, c, 5]), ("s", [c]), ("b", [c])], [2, c, 5],
                         attrs={"num_groups": 2}, opset=21)
    check(gn, {"x": rng.standard_normal((2, c, 5), dtype=np.float32), "s": feed["s"], "b": feed["b"]}, tmp_path / "gn")


def test_training_mode_batch_norm_matches_onnxruntime(rng, tmp_path):
    c = 3
    model = single_op_model("BatchNormalization", [("x", [2, c, 4, 5]), ("s", [c]), ("b", [c]), ("m", [c]), ("v", [c])],
                            attrs={"training_mode": 1, "momentum": 0.8, "epsilon": 1e-3}, opset=15,
                            outputs=["y", "running_mean", "running_var"])
    feed = {"x": rng.standard_normal((2, c, 4, 5), dtype=np.float32) * 2 + 1,
            **{k: rng.standard_normal(c, dtype=np.float32) for k in ("s", "b", "m")},
            "v": rng.uniform(0.5, 2, c).astype(np.float32)}
    check(model, feed, tmp_path)


def test_gemm_with_run_time_b_matches_onnxruntime(rng, tmp_path):
    model = single_op_model("Gemm", [("a", [4, 3]), ("b", [5, 4]), ("c", [1, 5])],
                            attrs={"transA": 1, "transB": 1, "alpha": 0.5, "beta": 2.0})
    feed = {"a": rng.standard_normal((4, 3), dtype=np.float32), "b": rng.standard_normal((5, 4), dtype=np.float32),
            "c": rng.standard_normal((1, 5), dtype=np.float32)}
    check(model, feed, tmp_path)


def test_maxunpool_with_another_output_shape_is_refused(tmp_path):
    model = single_op_model("MaxUnpool", [("x", [1, 1, 2, 2]), ("i", [1, 1, 2, 2])], [1, 1, 5, 5],
                            initializers=[("shape", np.array([1, 1, 5, 5], np.int64))],
                            attrs={"kernel_shape": [2, 2], "strides": [2, 2]}, dtypes={"i": TensorProto.INT64})
    with pytest.raises(sparsec.SparsecError, match=r"MaxUnpool_0.*MaxUnpool.*output_shape \[1, 1, 5, 5\] differs"):
        sparsec.compile(model, output=tmp_path / "m.spx")


# ---- the new run-time ops on the device targets ----------------------------------------------------

def export_ops_model():
    """One model through Resample, ConvNd (transposed and 1-D), PoolNd, Lrn, Recurrent and GridSample."""
    rng = np.random.default_rng(1)
    inits = {"scales": np.array([1, 1, 2, 1.5], np.float32), "wt": rng.standard_normal((3, 2, 3, 3), dtype=np.float32),
             "w1": rng.standard_normal((4, 2, 3), dtype=np.float32),
             "W": rng.standard_normal((1, 16, 4), dtype=np.float32) * 0.5,
             "R": rng.standard_normal((1, 16, 4), dtype=np.float32) * 0.5,
             "shape3": np.array([1, 2, 48], np.int64)}
    nodes = [helper.make_node("Resize", ["x", "", "scales"], ["r"], mode="linear"),
             helper.make_node("ConvTranspose", ["r", "wt"], ["t"], strides=[2, 2], pads=[1, 1, 1, 1]),
             helper.make_node("LRN", ["t"], ["n"], size=3),
             helper.make_node("GridSample", ["n", "grid"], ["g"]),
             helper.make_node("Reshape", ["g", "shape3"], ["g1"]),
             helper.make_node("Conv", ["g1", "w1"], ["c1"], pads=[1, 1]),
             helper.make_node("MaxPool", ["c1"], ["p1"], kernel_shape=[3], strides=[3]),
             helper.make_node("Transpose", ["p1"], ["seq"], perm=[2, 0, 1]),
             helper.make_node("LSTM", ["seq", "W", "R"], ["y", "y_h"], hidden_size=4)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4]),
                                           helper.make_tensor_value_info("grid", TensorProto.FLOAT, [1, 6, 8, 2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None),
                               helper.make_tensor_value_info("y_h", TensorProto.FLOAT, None)],
                              [onnx.numpy_helper.from_array(v, k) for k, v in inits.items()])
    model = onnx.shape_inference.infer_shapes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    feed = {"x": rng.standard_normal((1, 3, 4, 4), dtype=np.float32),
            "grid": rng.uniform(-1, 1, (1, 6, 8, 2)).astype(np.float32)}
    return model, feed


def test_export_ops_model_on_host(tmp_path):
    model, feed = export_ops_model()
    check(model, feed, tmp_path)


@pytest.mark.parametrize("target", ["arm64", "wasm32"])
def test_export_ops_model_on_target(target, tmp_path):
    model, feed = export_ops_model()
    assert target_outputs_error(model, feed, run_onnxruntime(model, feed), target, tmp_path)[0] < TOLERANCE
