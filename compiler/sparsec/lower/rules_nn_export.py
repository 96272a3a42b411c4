"""Lowering rules for what exporters emit beyond the 2-D CNN core: Resize/Upsample, 1-D/3-D and transposed
convolution, N-D and Lp pooling, LRN, RNN/GRU/LSTM, GridSample/AffineGrid, MaxUnpool, CenterCropPad, and
normalisations whose parameters or extra outputs are computed at run time."""

from __future__ import annotations

import math

import numpy as np
import onnx_ir as ir

from sparsec.contract.schema import (IM2COL_BAND_COLUMNS, Activation, BinaryOp, CompareOp, Direction, GridMode,
                                     GridPadding, PadMode, PoolKind, RecurrentKind, ReduceKind, UnaryOp, WindowKind)
from sparsec.lower import rules_nn
from sparsec.lower.builder import (Builder, Unsupported, axis_of, const_input, fused_activation, input_at, numpy_dtype,
                                   rank, spatial_pads, static_shape)
from sparsec.lower.rules_elementwise import reduce_algorithm
from sparsec.passes.util import const_array


def _left3(values, fill: int) -> list[int]:
    """Spatial values of a 1-D/2-D/3-D op as the runtime's three ([D, H, W]; missing leading dims get `fill`)."""
    return [fill] * (3 - len(values)) + [int(v) for v in values]


def _nd_pads(node: ir.Node, in_sizes, kernel, strides, dilations) -> tuple[list[int], list[int]]:
    """(begin, end) pads of a sliding-window op with auto_pad resolved."""
    pads = spatial_pads(node, in_sizes, kernel, strides, dilations)
    return pads[:len(in_sizes)], pads[len(in_sizes):]


def _output_or_temp(b: Builder, node: ir.Node, i: int, shape, name: str):
    """The node's output i when the graph has it, else a temporary of shape (an output the op must still write)."""
    value = node.outputs[i] if len(node.outputs) > i else None
    if value is not None and value.name:
        return value
    return b.temp(shape, np.float32, f"{b.label}/{name}")


def _float_only(node: ir.Node) -> None:
    if node.inputs[0].dtype != ir.DataType.FLOAT:
        raise Unsupported(f"{node.op_type} runs on float32 only (input is {node.inputs[0].dtype})")


# ---- convolution ---------------------------------------------------------------------------------

def _conv_nd_scratch(rows: int, positions: int, transposed_weight: int) -> int:
    band = max(1, min(positions, IM2COL_BAND_COLUMNS))
    return (rows * band + transposed_weight) * 4


def _conv_geometry(node: ir.Node):
    """Shapes of x, w, y and the kernel, strides, dilations and group of a 1-D to 3-D (transposed) convolution."""
    x, w, y = node.inputs[0], node.inputs[1], node.outputs[0]
    shape_x, shape_w, shape_y = static_shape(x), static_shape(w), static_shape(y)
    if not 3 <= len(shape_x) <= 5:
        raise Unsupported(f"{node.op_type} needs 1 to 3 spatial dims (input rank {len(shape_x)})")
    n = len(shape_x) - 2
    return (shape_x, shape_w, shape_y, list(shape_w[2:]), node.attributes.get_ints("strides", [1] * n),
            node.attributes.get_ints("dilations", [1] * n), node.attributes.get_int("group", 1))


def conv(b: Builder, node: ir.Node) -> None:
    """2-D Conv keeps its tuned algorithms; 1-D and 3-D run as ConvNd (im2col + GEMM)."""
    if rank(node.inputs[0]) == 4:
        rules_nn.conv(b, node)
        return
    x, w, y = node.inputs[0], node.inputs[1], node.outputs[0]
    shape_x, shape_w, shape_y, kernel, strides, dilations, group = _conv_geometry(node)
    if group < 1 or shape_x[1] != shape_w[1] * group or shape_w[0] % group:
        raise Unsupported(f"weight {list(shape_w)} does not fit input {list(shape_x)} with group {group}")
    begin, end = _nd_pads(node, shape_x[2:], kernel, strides, dilations)
    rows = shape_w[1] * int(np.prod(kernel))
    b.emit("ConvNd", [x, w, input_at(node, 2)], [y],
           {"transposed": 0, "group": group, "kernel": _left3(kernel, 1), "strides": _left3(strides, 1),
            "pads": _left3(begin, 0), "dilations": _left3(dilations, 1), **fused_activation(node)},
           _conv_nd_scratch(rows, int(np.prod(shape_y[2:])), 0))


def conv_transpose_begin_pads(node: ir.Node, shape_x, shape_y, kernel, strides, dilations) -> list[int]:
    """The padding before each spatial axis of a ConvTranspose, from pads, auto_pad or output_shape."""
    n = len(kernel)
    output_padding = node.attributes.get_ints("output_padding", [0] * n)
    auto_pad = node.attributes.get_string("auto_pad", "NOTSET")
    pads = node.attributes.get_ints("pads", None)
    if pads is not None and auto_pad in ("NOTSET", ""):
        begin = [int(p) for p in pads[:n]]
    elif auto_pad in ("SAME_UPPER", "SAME_LOWER") or node.attributes.get_ints("output_shape", None) is not None:
        # total padding from the output size; the larger half at the end for SAME_UPPER, else at the start (spec)
        begin = []
        for i in range(n):
            total = strides[i] * (shape_x[2 + i] - 1) + output_padding[i] + (kernel[i] - 1) * dilations[i] + 1 - shape_y[2 + i]
            begin.append(total // 2 if auto_pad == "SAME_UPPER" else total - total // 2)
    else:
        begin = [0] * n
    if min(begin) < 0:
        raise Unsupported(f"the output {list(shape_y)} needs negative padding")
    return begin


def conv_transpose(b: Builder, node: ir.Node) -> None:
    x, w, y = node.inputs[0], node.inputs[1], node.outputs[0]
    _float_only(node)
    shape_x, shape_w, shape_y, kernel, strides, dilations, group = _conv_geometry(node)
    if group < 1 or shape_x[1] != shape_w[0] or shape_w[0] % group or shape_y[1] != shape_w[1] * group:
        raise Unsupported(f"weight {list(shape_w)} does not fit input {list(shape_x)} with group {group}")
    begin = conv_transpose_begin_pads(node, shape_x, shape_y, kernel, strides, dilations)
    rows = shape_w[1] * int(np.prod(kernel))
    b.emit("ConvNd", [x, w, input_at(node, 2)], [y],
           {"transposed": 1, "group": group, "kernel": _left3(kernel, 1), "strides": _left3(strides, 1),
            "pads": _left3(begin, 0), "dilations": _left3(dilations, 1), **fused_activation(node)},
           _conv_nd_scratch(rows, int(np.prod(shape_x[2:])), int(np.prod(shape_w))))


# ---- pooling -------------------------------------------------------------------------------------

def _reads_output(node: ir.Node, i: int) -> bool:
    value = node.outputs[i] if len(node.outputs) > i else None
    return value is not None and bool(value.name) and (bool(value.uses()) or value.is_graph_output())


def pool(b: Builder, node: ir.Node) -> None:
    """2-D Max/AveragePool keep the tuned kernels; 1-D/3-D, Lp and MaxPool's Indices run as PoolNd."""
    x = node.inputs[0]
    with_indices = node.op_type == "MaxPool" and _reads_output(node, 1)
    if node.op_type in ("MaxPool", "AveragePool") and rank(x) == 4 and not with_indices:
        rules_nn.pool(b, node)
        return
    _float_only(node)
    shape = static_shape(x)
    if not 3 <= len(shape) <= 5:
        raise Unsupported(f"pooling needs 1 to 3 spatial dims (input rank {len(shape)})")
    n = len(shape) - 2
    if node.op_type == "GlobalLpPool":
        kernel, strides, dilations, begin, end = list(shape[2:]), [1] * n, [1] * n, [0] * n, [0] * n
    else:
        kernel = node.attributes.get_ints("kernel_shape")
        strides = node.attributes.get_ints("strides", [1] * n)
        dilations = node.attributes.get_ints("dilations", [1] * n)
        begin, end = _nd_pads(node, shape[2:], kernel, strides, dilations)
    column_major = with_indices and node.attributes.get_int("storage_order", 0)
    if column_major and n != 2:
        raise Unsupported("MaxPool Indices in column-major order (storage_order=1) need 2 spatial dims")
    out_sizes = static_shape(node.outputs[0])[2:]
    for i in range(n):
        if (out_sizes[i] - 1) * strides[i] - begin[i] >= shape[2 + i]:
            raise Unsupported(f"spatial axis {i}: the last window starts in the end padding (ceil_mode); onnx's shape "
                              "inference keeps it, onnxruntime drops it")
    kind = {"MaxPool": WindowKind.MAX, "AveragePool": WindowKind.AVERAGE}.get(node.op_type, WindowKind.LP)
    outputs = [node.outputs[0]] + ([node.outputs[1]] if with_indices else [])
    b.emit("PoolNd", [x], outputs,
           {"kind": kind, "kernel": _left3(kernel, 1), "strides": _left3(strides, 1),
            "pads": _left3(begin, 0) + _left3(end, 0), "dilations": _left3(dilations, 1),
            "count_include_pad": node.attributes.get_int("count_include_pad", 0), "p": node.attributes.get_int("p", 2),
            "column_major": column_major})


def max_unpool(b: Builder, node: ir.Node) -> None:
    _float_only(node)
    shape_x, shape_y = static_shape(node.inputs[0]), static_shape(node.outputs[0])
    kernel = node.attributes.get_ints("kernel_shape")
    n = len(kernel)
    strides = node.attributes.get_ints("strides", [1] * n)
    pads = node.attributes.get_ints("pads", [0] * 2 * n)
    inferred = [(shape_x[2 + i] - 1) * strides[i] - pads[i] - pads[n + i] + kernel[i] for i in range(n)]
    if list(shape_y[2:]) != inferred:
        raise Unsupported(f"output_shape {list(shape_y)} differs from the unpooled shape {list(shape_x[:2]) + inferred}: "
                          "ONNX's reference and onnxruntime place the values differently then")
    b.emit("MaxUnpool", [node.inputs[0], node.inputs[1]], [node.outputs[0]])


def lrn(b: Builder, node: ir.Node) -> None:
    """y = x / (bias + alpha * mean of x^2 over `size` channels)^beta: the channel window is a 2-D average pool
    (padding counted, so every window divides by size) on x^2 viewed as [N, 1, C, rest]."""
    _float_only(node)
    x = node.inputs[0]
    shape = static_shape(x)
    size = node.attributes.get_int("size")
    n, c, rest = shape[0], shape[1], int(np.prod(shape[2:]))
    square = _binary(b, BinaryOp.MUL, x, x, shape, "square")
    column = b.temp((n, 1, c, rest), np.float32, f"{b.label}/square_nchw")
    b.emit("Copy", [square], [column])
    mean = b.temp((n, 1, c, rest), np.float32, f"{b.label}/window_mean")
    before = (size - 1) // 2
    b.emit("Pool", [column], [mean], {"kind": PoolKind.AVERAGE, "kernel": [size, 1], "strides": [1, 1],
                                      "pads": [before, 0, size - 1 - before, 0], "dilations": [1, 1],
                                      "count_include_pad": 1})
    scalars = {k: b.constant(np.array(node.attributes.get_float(k, d), np.float32), f"{b.label}/{k}")
               for k, d in (("alpha", 1e-4), ("bias", 1.0), ("beta", 0.75))}
    scaled = _binary(b, BinaryOp.MUL, mean, scalars["alpha"], (n, 1, c, rest), "scaled")
    base = _binary(b, BinaryOp.ADD, scaled, scalars["bias"], (n, 1, c, rest), "base")
    power = _binary(b, BinaryOp.POW, base, scalars["beta"], (n, 1, c, rest), "power")
    denominator = b.temp(shape, np.float32, f"{b.label}/denominator")
    b.emit("Copy", [power], [denominator])
    b.emit("Binary", [x, denominator], [node.outputs[0]], {"op": BinaryOp.DIV, "activation": Activation.NONE})


# ---- Resize / Upsample ---------------------------------------------------------------------------

def _source_coords(mode: str, out_len: int, in_len: int, scale: float, roi) -> tuple[np.ndarray, np.ndarray | None]:
    """Each output index's coordinate in the input (ONNX coordinate_transformation_mode), and which lie outside
    the input for tf_crop_and_resize."""
    y = np.arange(out_len, dtype=np.float64)
    out_width = scale * in_len
    if mode == "align_corners":
        return (np.zeros(out_len) if out_width == 1 else y * (in_len - 1) / (out_width - 1)), None
    if mode == "asymmetric":
        return y / scale, None
    if mode == "tf_crop_and_resize":
        x = (np.full(out_len, (roi[1] - roi[0]) * (in_len - 1) / 2) if out_width == 1
             else y * (roi[1] - roi[0]) * (in_len - 1) / (out_width - 1)) + roi[0] * (in_len - 1)
        return x, (x < 0) | (x > in_len - 1)
    if mode == "pytorch_half_pixel":
        return (np.full(out_len, -0.5) if out_width == 1 else (y + 0.5) / scale - 0.5), None
    if mode == "half_pixel":
        return (y + 0.5) / scale - 0.5, None
    if mode == "half_pixel_symmetric":
        offset = in_len / 2 * (1 - out_len / out_width)
        return offset + (y + 0.5) / scale - 0.5, None
    raise Unsupported(f"coordinate_transformation_mode '{mode}' is not supported")


def _resize_coeffs(node: ir.Node, ratio: float, scale: float) -> np.ndarray:
    """The interpolation weights of the taps around a source coordinate (ratio in (0, 1] past the tap left of it)."""
    mode = node.attributes.get_string("mode", "nearest")
    antialias = node.attributes.get_int("antialias", 0)
    a = node.attributes.get_float("cubic_coeff_a", -0.75)
    if mode == "nearest":
        if antialias:
            raise Unsupported("antialias needs mode linear or cubic")
        nearest = node.attributes.get_string("nearest_mode", "round_prefer_floor")
        if ratio == 1:
            return np.array([0.0, 1.0])
        right = {"round_prefer_floor": ratio > 0.5, "round_prefer_ceil": ratio >= 0.5, "floor": False,
                 "ceil": True}.get(nearest)
        if right is None:
            raise Unsupported(f"nearest_mode '{nearest}' is not supported")
        return np.array([0.0, 1.0]) if right else np.array([1.0, 0.0])
    if mode == "linear":
        if antialias and scale < 1:
            start = int(np.floor(-1 / scale) + 1)
            c = np.clip(1 - np.abs((np.arange(start, 2 - start) - ratio) * scale), 0, 1)
            return c / c.sum()
        return np.array([1 - ratio, ratio])
    if mode == "cubic":
        def keys(x):
            x = abs(x)
            if x <= 1:
                return (a + 2) * x ** 3 - (a + 3) * x ** 2 + 1
            return a * x ** 3 - 5 * a * x ** 2 + 8 * a * x - 4 * a if x < 2 else 0.0

        s = min(scale, 1.0) if antialias else 1.0
        start = int(np.floor(-2 / s) + 1)
        c = np.array([keys(s * (i - ratio)) for i in range(start, 2 - start)])
        return c / c.sum() if antialias else c
    raise Unsupported(f"mode '{mode}' is not supported")


def resize_table(node: ir.Node, in_len: int, out_len: int, scale: float, roi) -> np.ndarray:
    """The [out_len, in_len] matrix of one axis (ONNX Resize's 1-D interpolation, as onnx.reference computes it);
    NaN rows: tf_crop_and_resize's extrapolated outputs."""
    coords, outside = _source_coords(node.attributes.get_string("coordinate_transformation_mode", "half_pixel"),
                                     out_len, in_len, scale, roi)
    matrix = np.zeros((out_len, in_len))
    for o, x in enumerate(coords):
        ratio = 1.0 if x == np.floor(x) else x - np.floor(x)
        coeffs = _resize_coeffs(node, ratio, scale)
        n = len(coeffs)
        pad = math.ceil(n / 2)
        padded = x + pad
        p = math.floor(padded)
        frac = padded - p
        if n % 2 == 0:
            offset = -(n // 2) if frac == 0 else -(n // 2) + 1
        else:
            offset = -((n - 1) // 2) + (0 if frac <= 0.5 else 1)
        idx = p + offset + np.arange(n) - pad
        if node.attributes.get_int("exclude_outside", 0):
            coeffs = np.where((idx < 0) | (idx >= in_len), 0.0, coeffs)
            coeffs = coeffs / (coeffs.sum() or 1.0)
        np.add.at(matrix[o], np.clip(idx, 0, in_len - 1), coeffs)
    if outside is not None:
        matrix[outside] = np.nan
    return matrix


def _taps(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A table's nonzero entries as [out, taps] indices (int32) and weights; -1: an extrapolated row."""
    rows = [np.flatnonzero(r) if not np.isnan(r).any() else None for r in matrix]
    taps = max(1, max((len(r) for r in rows if r is not None), default=1))
    index = np.zeros((len(rows), taps), np.int32)
    weight = np.zeros((len(rows), taps), np.float32)
    for o, r in enumerate(rows):
        if r is None:
            index[o, 0] = -1
            continue
        index[o, :len(r)] = r
        weight[o, :len(r)] = matrix[o, r]
    return index, weight


def resize_tables(node: ir.Node) -> dict[int, np.ndarray]:
    """Resize/Upsample as one [out, in] interpolation matrix per axis that changes (resize_table); others copy."""
    x, y = node.inputs[0], node.outputs[0]
    shape_x, shape_y = static_shape(x), static_shape(y)
    r = len(shape_x)
    axes = [axis_of(int(a), r) for a in node.attributes.get_ints("axes", list(range(r)))]
    scales = const_input(node, 2, "scales", np.zeros(0)) if len(node.inputs) > 2 else np.zeros(0)
    policy = node.attributes.get_string("keep_aspect_ratio_policy", "stretch")
    sizes_value = input_at(node, 3)
    sizes = const_array(sizes_value) if sizes_value is not None else np.zeros(0)
    if sizes is None:  # run-time sizes: with "stretch" they are the output's static shape (else refused)
        if policy != "stretch":
            raise Unsupported(f"sizes (input 3) must be a constant with keep_aspect_ratio_policy '{policy}'")
        sizes = np.array([shape_y[a] for a in axes], np.int64)
    roi = const_input(node, 1, "roi", np.zeros(0))
    if node.op_type == "Upsample":
        scales, axes = const_input(node, 1, "scales"), list(range(r))
        roi = np.zeros(0)
    scale_of = [1.0] * r
    if sizes is not None and sizes.size:
        for a, s in zip(axes, sizes):
            scale_of[a] = int(s) / shape_x[a]
        if policy != "stretch":
            chosen = (min if policy == "not_larger" else max)(scale_of[a] for a in axes)
            for a in axes:
                scale_of[a] = chosen
    else:
        for a, s in zip(axes, scales):
            scale_of[a] = float(s)
    full_roi = None
    if node.attributes.get_string("coordinate_transformation_mode", "half_pixel") == "tf_crop_and_resize":
        full_roi = [0.0] * r + [1.0] * r
        for k, a in enumerate(axes):
            full_roi[a], full_roi[r + a] = float(roi[k]), float(roi[len(axes) + k])
    tables = {}
    for a in range(r):
        axis_roi = None if full_roi is None else (full_roi[a], full_roi[r + a])
        if (a not in axes or math.isclose(scale_of[a], 1.0) and shape_y[a] == shape_x[a]
                and (axis_roi is None or math.isclose(axis_roi[0], 0.0) and math.isclose(axis_roi[1], 1.0))):
            if shape_y[a] != shape_x[a]:
                raise Unsupported(f"axis {a} changes size without a scale")
            continue
        corner_mode = node.attributes.get_string("coordinate_transformation_mode", "") in ("align_corners",
                                                                                            "tf_crop_and_resize")
        if corner_mode and not math.isclose(scale_of[a] * shape_x[a], shape_y[a], rel_tol=1e-6):
            raise Unsupported(f"axis {a}: scale {scale_of[a]:g} x {shape_x[a]} is not the output size {shape_y[a]}; "
                              "ONNX's reference and onnxruntime map corners differently then")
        tables[a] = resize_table(node, shape_x[a], shape_y[a], scale_of[a], axis_roi)
    return tables


def resize(b: Builder, node: ir.Node) -> None:
    _float_only(node)
    x, y = node.inputs[0], node.outputs[0]
    shape_x, shape_y = static_shape(x), static_shape(y)
    tables = resize_tables(node)
    if not tables:
        b.emit("Copy", [x], [y])
        return
    taps, indices, weights = [0] * len(shape_x), [], []
    for a, table in sorted(tables.items()):
        index, weight = _taps(table)
        taps[a] = index.shape[1]
        indices.append(index.reshape(-1))
        weights.append(weight.reshape(-1))
    largest, dims = 0, list(shape_x)
    for a in range(len(shape_x)):
        if taps[a]:
            dims[a] = shape_y[a]
            largest = max(largest, int(np.prod(dims)))
    b.emit("Resample", [x, b.constant(np.concatenate(indices), f"{b.label}/indices"),
                        b.constant(np.concatenate(weights), f"{b.label}/weights")], [y],
           {"taps": taps, "extrapolation_value": node.attributes.get_float("extrapolation_value", 0.0)},
           2 * largest * 4)


# ---- recurrent -----------------------------------------------------------------------------------

_RNN_ACTIVATIONS = {"Sigmoid": Activation.SIGMOID, "Tanh": Activation.TANH, "Relu": Activation.RELU}
_RNN_DEFAULTS = {"RNN": ["Tanh"], "GRU": ["Sigmoid", "Tanh"], "LSTM": ["Sigmoid", "Tanh", "Tanh"]}


def recurrent(b: Builder, node: ir.Node) -> None:
    _float_only(node)
    kind = node.op_type
    x, shape_x = node.inputs[0], static_shape(node.inputs[0])
    direction = node.attributes.get_string("direction", "forward")
    dirs = 2 if direction == "bidirectional" else 1
    layout = node.attributes.get_int("layout", 0)
    hidden = static_shape(node.inputs[2])[2]
    if node.attributes.get_floats("activation_alpha", None) or node.attributes.get_floats("activation_beta", None):
        raise Unsupported("activation_alpha/activation_beta are not supported")
    names = list(node.attributes.get_strings("activations", [])) or _RNN_DEFAULTS[kind] * dirs
    per_dir = len(_RNN_DEFAULTS[kind])
    if len(names) != per_dir * dirs or (dirs == 2 and names[:per_dir] != names[per_dir:]):
        raise Unsupported(f"activations {names}: sparsec needs the same {per_dir} per direction")
    unknown = [n for n in names if n not in _RNN_ACTIVATIONS]
    if unknown:
        raise Unsupported(f"activation(s) {unknown} are not supported (only {sorted(_RNN_ACTIVATIONS)})")
    acts = [_RNN_ACTIVATIONS[n] for n in names[:per_dir]] + [Activation.NONE] * (3 - per_dir)
    steps, batch = (shape_x[1], shape_x[0]) if layout else (shape_x[0], shape_x[1])
    state_shape = (batch, dirs, hidden) if layout else (dirs, batch, hidden)
    y_shape = (batch, steps, dirs, hidden) if layout else (steps, dirs, batch, hidden)
    outputs = [_output_or_temp(b, node, 0, y_shape, "Y"), _output_or_temp(b, node, 1, state_shape, "Y_h"),
               _output_or_temp(b, node, 2, state_shape, "Y_c") if kind == "LSTM"
               else b.temp(state_shape, np.float32, f"{b.label}/Y_c")]
    lens = input_at(node, 4)
    if lens is not None and lens.name and numpy_dtype(lens) != np.int32:
        raise Unsupported("sequence_lens must be int32")
    inputs = [input_at(node, i) if input_at(node, i) is not None and input_at(node, i).name else None
              for i in range(8 if kind == "LSTM" else 6)]
    gates = {"RNN": 1, "GRU": 3, "LSTM": 4}[kind]
    gh = gates * hidden
    scratch = (gh * (shape_x[2] + hidden + steps * batch + batch) + 2 * batch * hidden + hidden) * 4
    clip = node.attributes.get_float("clip", 0.0)
    b.emit("Recurrent", inputs, outputs,
           {"kind": RecurrentKind[kind], "direction": Direction[direction.upper()], "layout": layout,
            "linear_before_reset": node.attributes.get_int("linear_before_reset", 0),
            "input_forget": node.attributes.get_int("input_forget", 0), "activations": acts, "clip": clip,
            "alpha_f": 0.0, "alpha_g": 0.0, "alpha_h": 0.0, "beta_f": 0.0, "beta_g": 0.0, "beta_h": 0.0}, scratch)


# ---- sampling grids ------------------------------------------------------------------------------

def grid_sample(b: Builder, node: ir.Node) -> None:
    _float_only(node)
    modes = {"bilinear": GridMode.BILINEAR, "linear": GridMode.BILINEAR, "nearest": GridMode.NEAREST,
             "bicubic": GridMode.BICUBIC, "cubic": GridMode.BICUBIC}
    mode = node.attributes.get_string("mode", "linear")
    padding = node.attributes.get_string("padding_mode", "zeros")
    if modes.get(mode) == GridMode.BICUBIC and padding == "border":
        raise Unsupported("bicubic sampling with border padding: ONNX's reference clamps the coordinates, onnxruntime "
                          "only the pixels")
    if rank(node.inputs[0]) == 5 and modes.get(mode) == GridMode.BICUBIC:
        raise Unsupported("3-D GridSample has no cubic mode")
    b.emit("GridSample", [node.inputs[0], node.inputs[1]], [node.outputs[0]],
           {"mode": modes[mode], "padding": GridPadding[padding.upper()],
            "align_corners": node.attributes.get_int("align_corners", 0)})


def affine_grid(b: Builder, node: ir.Node) -> None:
    """grid[n] = base @ theta[n]^T: the base grid (x, y[, z], 1) is a constant, the product a MatMul."""
    theta, grid = node.inputs[0], node.outputs[0]
    # the sizes are the grid's (static) shape: a run-time `size` input must agree with it
    size = [int(v) for v in const_array(node.inputs[1])] if const_array(node.inputs[1]) is not None else None
    spatial = list(static_shape(grid)[1:-1])
    if size is not None and size[2:] != spatial:
        raise Unsupported(f"size {size} does not match the grid {list(static_shape(grid))}")
    size = [static_shape(grid)[0], 0, *spatial]
    align = node.attributes.get_int("align_corners", 0)

    def axis(n):
        return np.linspace(-1, 1, n) if align else (np.arange(n) * 2 + 1) / n - 1 if n > 1 else np.zeros(1)

    coords = np.meshgrid(*[axis(n) for n in spatial], indexing="ij")[::-1]  # x (last axis) first
    base = np.stack([c.reshape(-1) for c in coords] + [np.ones(int(np.prod(spatial)))], axis=1).astype(np.float32)
    dims = len(spatial)
    theta_t = b.temp((size[0], dims + 1, dims), np.float32, f"{b.label}/theta_t")
    b.emit("Transpose", [theta], [theta_t], {"perm": [0, 2, 1]})
    flat = b.temp((size[0], base.shape[0], dims), np.float32, f"{b.label}/grid_flat")
    b.emit("MatMul", [b.constant(base, f"{b.label}/base"), theta_t, None], [flat], {"activation": Activation.NONE})
    b.emit("Copy", [flat], [grid])


def deform_conv(b: Builder, node: ir.Node) -> None:
    """2-D DeformConv as GridSample (bilinear, zeros outside) at the offset taps, times the mask, then a MatMul with
    the weight: the sampling grid is offset (dx, dy) * 2/size + the taps' normalised positions."""
    _float_only(node)
    x, w, offset, y = node.inputs[0], node.inputs[1], node.inputs[2], node.outputs[0]
    (n, c, h, wd), shape_w, shape_y = static_shape(x), static_shape(w), static_shape(y)
    if len(shape_w) != 4 or node.attributes.get_int("group", 1) != 1 or node.attributes.get_int("offset_group", 1) != 1:
        raise Unsupported("only 2-D DeformConv with group = offset_group = 1 is supported")
    m, kh, kw = shape_w[0], shape_w[2], shape_w[3]
    oh, ow, k = shape_y[2], shape_y[3], shape_w[2] * shape_w[3]
    sh, sw = node.attributes.get_ints("strides", [1, 1])
    dh, dw = node.attributes.get_ints("dilations", [1, 1])
    pt, pl = node.attributes.get_ints("pads", [0, 0, 0, 0])[:2]
    rows, cols = np.meshgrid(np.arange(kh) * dh, np.arange(kw) * dw, indexing="ij")  # tap offsets, [kh, kw]
    tap_y = rows.reshape(k, 1, 1) + (np.arange(oh) * sh - pt).reshape(1, oh, 1) + np.zeros((1, 1, ow))
    tap_x = cols.reshape(k, 1, 1) + (np.arange(ow) * sw - pl).reshape(1, 1, ow) + np.zeros((1, oh, 1))
    scale = np.array([2 / wd, 2 / h])  # pixel p -> GridSample's coordinate (2p + 1) / size - 1 (align_corners=0)
    base = np.stack([tap_x, tap_y], axis=-1) * scale + (1 / np.array([wd, h]) - 1)
    pairs = b.reshaped(offset, (n, k, 2, oh, ow), f"{b.label}/offset_pairs")
    yx = b.temp((n, k, oh, ow, 2), np.float32, f"{b.label}/offset_yx")
    b.emit("Transpose", [pairs], [yx], {"perm": [0, 1, 3, 4, 2]})
    xy = b.temp((n, k, oh, ow, 2), np.float32, f"{b.label}/offset_xy")
    b.emit("Slice", [yx], [xy], {"starts": [0, 0, 0, 0, 1], "steps": [1, 1, 1, 1, -1]})
    scaled = _binary(b, BinaryOp.MUL, xy, b.constant(scale.astype(np.float32), f"{b.label}/scale"), (n, k, oh, ow, 2),
                     "offset_scaled")
    grid = b.temp((n, k * oh, ow, 2), np.float32, f"{b.label}/grid")
    summed = _binary(b, BinaryOp.ADD, scaled, b.constant(base.astype(np.float32), f"{b.label}/taps"),
                     (n, k, oh, ow, 2), "grid5")
    b.emit("Copy", [summed], [grid])
    sampled = b.temp((n, c, k * oh, ow), np.float32, f"{b.label}/sampled")
    b.emit("GridSample", [x, grid], [sampled], {"mode": GridMode.BILINEAR, "padding": GridPadding.ZEROS,
                                               "align_corners": 0})
    mask = input_at(node, 4)
    if mask is not None and mask.name:
        sampled = _binary(b, BinaryOp.MUL, sampled, b.reshaped(mask, (n, 1, k * oh, ow), f"{b.label}/mask"),
                          (n, c, k * oh, ow), "masked")
    columns = b.temp((n, c * k, oh * ow), np.float32, f"{b.label}/columns")
    b.emit("Copy", [sampled], [columns])
    product = b.temp((n, m, oh * ow), np.float32, f"{b.label}/product")
    b.emit("MatMul", [b.reshaped(w, (m, c * k), f"{b.label}/w2d"), columns, None], [product],
           {"activation": Activation.NONE})
    bias = input_at(node, 3)
    if bias is not None and bias.name:
        product = _binary(b, BinaryOp.ADD, product, b.reshaped(bias, (m, 1), f"{b.label}/bias"), (n, m, oh * ow),
                          "biased")
    b.emit("Copy", [product], [y])


def center_crop_pad(b: Builder, node: ir.Node) -> None:
    x, y = node.inputs[0], node.outputs[0]
    shape_x = static_shape(x)
    r = len(shape_x)
    axes = [axis_of(int(a), r) for a in node.attributes.get_ints("axes", list(range(r)))]
    shape = const_array(node.inputs[1])  # else the output's static shape says what the run-time shape is
    target = [int(v) for v in shape] if shape is not None else [static_shape(y)[a] for a in axes]
    starts, cropped, begins, ends = [0] * r, list(shape_x), [0] * r, [0] * r
    for a, size in zip(axes, target):
        if size < shape_x[a]:
            starts[a], cropped[a] = (shape_x[a] - size) // 2, size
        elif size > shape_x[a]:
            begins[a] = (size - shape_x[a]) // 2
            ends[a] = size - shape_x[a] - begins[a]
    padded = any(begins) or any(ends)
    mid = b.temp(cropped, numpy_dtype(x), f"{b.label}/cropped") if padded else y
    b.emit("Slice", [x], [mid], {"starts": starts, "steps": [1] * r})
    if padded:
        b.emit("Pad", [mid], [y], {"mode": PadMode.CONSTANT, "begins": begins, "ends": ends})


# ---- normalisation -------------------------------------------------------------------------------

def _binary(b: Builder, op: BinaryOp, a, c, shape, name: str) -> int:
    out = b.temp(shape, np.float32, f"{b.label}/{name}")
    b.emit("Binary", [a, c], [out], {"op": op, "activation": Activation.NONE})
    return out


def _unary(b: Builder, op: UnaryOp, a, shape, name: str) -> int:
    out = b.temp(shape, np.float32, f"{b.label}/{name}")
    b.emit("Unary", [a], [out], {"op": op})
    return out


def _reduce(b: Builder, kind: ReduceKind, x, shape, axes, name: str, out=None) -> int:
    kept = tuple(1 if i in axes else d for i, d in enumerate(shape))
    out = b.temp(kept, np.float32, f"{b.label}/{name}") if out is None else out
    b.emit("Reduce", [x], [out], {"kind": kind, "algorithm": reduce_algorithm(shape, axes, kind),
                                  "axes_mask": sum(1 << a for a in axes), "keepdims": 1, "noop_with_empty_axes": 0})
    return out


def layer_norm(b: Builder, node: ir.Node) -> None:
    """LayerNorm; its Mean and InvStdDev outputs (when read) computed beside it by reductions."""
    rules_nn.layer_norm(b, node)
    if not (_reads_output(node, 1) or _reads_output(node, 2)):
        return
    x = node.inputs[0]
    shape = static_shape(x)
    axes = set(range(axis_of(node.attributes.get_int("axis", -1), len(shape)), len(shape)))
    stat_shape = tuple(1 if i in axes else d for i, d in enumerate(shape))
    mean = _reduce(b, ReduceKind.MEAN, x, shape, axes, "mean", node.outputs[1] if _reads_output(node, 1) else None)
    if _reads_output(node, 2):
        centred = _binary(b, BinaryOp.SUB, x, mean, shape, "centred")
        var = _reduce(b, ReduceKind.MEAN, _binary(b, BinaryOp.MUL, centred, centred, shape, "square"), shape, axes,
                      "variance")
        eps = b.constant(np.array(node.attributes.get_float("epsilon", 1e-5), np.float32), f"{b.label}/epsilon")
        std = _unary(b, UnaryOp.SQRT, _binary(b, BinaryOp.ADD, var, eps, stat_shape, "var_eps"), stat_shape, "std")
        b.emit("Unary", [std], [node.outputs[2]], {"op": UnaryOp.RECIPROCAL})


def lp_normalization(b: Builder, node: ir.Node) -> None:
    _float_only(node)
    x = node.inputs[0]
    shape = static_shape(x)
    p = node.attributes.get_int("p", 2)
    if p not in (1, 2):
        raise Unsupported(f"p = {p}: only 1 and 2 are defined")
    axis = axis_of(node.attributes.get_int("axis", -1), len(shape))
    norm = _reduce(b, ReduceKind.L2 if p == 2 else ReduceKind.L1, x, shape, {axis}, "norm")
    quotient = b.temp(shape, np.float32, f"{b.label}/quotient")
    b.emit("Binary", [x, norm], [quotient], {"op": BinaryOp.DIV, "activation": Activation.NONE})
    zero = b.constant(np.zeros((), np.float32), f"{b.label}/zero")
    norm_is_zero = b.temp(b.g.tensors[norm].shape, np.bool_, f"{b.label}/norm_is_zero")
    b.emit("Compare", [norm, zero], [norm_is_zero], {"op": CompareOp.EQUAL})
    b.emit("Where", [norm_is_zero, zero, quotient], [node.outputs[0]])  # 0 where the norm is 0, as onnx defines


def _flat(b: Builder, value, channels: int, name: str) -> int:
    """A [1, C, 1, ...] statistic or a [C] parameter as [C]."""
    if isinstance(value, ir.Value):
        return b.reshaped(value, (channels,), f"{b.label}/{name}")
    flat = b.temp((channels,), np.float32, f"{b.label}/{name}")
    b.emit("Copy", [value], [flat])
    return flat


def batch_norm(b: Builder, node: ir.Node) -> None:
    """Constant parameters fold into the channel affine; run-time ones compute it: scale = gamma / sqrt(var + eps).
    Training mode normalises with the batch's statistics and outputs the running mean/variance updated by them."""
    training = node.attributes.get_int("training_mode", 0)
    if all(const_array(v) is not None for v in node.inputs[1:5]) and not training:
        rules_nn.batch_norm(b, node)
        return
    _float_only(node)
    shape = static_shape(node.inputs[0])
    channels = shape[1]
    gamma, beta, mean, var = (_flat(b, node.inputs[i], channels, f"p{i}") for i in range(1, 5))
    c = (channels,)
    if training:
        axes = set(range(len(shape))) - {1}
        batch_mean = _reduce(b, ReduceKind.MEAN, node.inputs[0], shape, axes, "batch_mean")
        centred = _binary(b, BinaryOp.SUB, node.inputs[0], batch_mean, shape, "centred")
        batch_var = _reduce(b, ReduceKind.MEAN, _binary(b, BinaryOp.MUL, centred, centred, shape, "square"), shape,
                            axes, "batch_var")
        momentum = node.attributes.get_float("momentum", 0.9)
        for k, (running, batch) in enumerate(((mean, batch_mean), (var, batch_var)), start=1):
            if _reads_output(node, k):
                kept = _binary(b, BinaryOp.MUL, running, b.constant(np.array(momentum, np.float32), f"{b.label}/m"),
                               c, f"kept{k}")
                new = _binary(b, BinaryOp.MUL, _flat(b, batch, channels, f"batch{k}"),
                              b.constant(np.array(1 - momentum, np.float32), f"{b.label}/1-m"), c, f"new{k}")
                b.emit("Binary", [kept, new], [node.outputs[k]], {"op": BinaryOp.ADD, "activation": Activation.NONE})
        mean, var = _flat(b, batch_mean, channels, "mean"), _flat(b, batch_var, channels, "var")
    eps = b.constant(np.array(node.attributes.get_float("epsilon", 1e-5), np.float32), f"{b.label}/epsilon")
    std = _unary(b, UnaryOp.SQRT, _binary(b, BinaryOp.ADD, var, eps, c, "var_eps"), c, "std")
    scale = _binary(b, BinaryOp.DIV, gamma, std, c, "scale")
    shift = _binary(b, BinaryOp.SUB, beta, _binary(b, BinaryOp.MUL, mean, scale, c, "mean_scale"), c, "shift")
    b.emit("ChannelAffine", [node.inputs[0], scale, shift], [node.outputs[0]], {"activation": Activation.NONE})


def group_norm(b: Builder, node: ir.Node) -> None:
    """Run-time scale/bias (one per channel) pass to GroupNorm as they are."""
    if const_array(node.inputs[1]) is not None and const_array(node.inputs[2]) is not None:
        rules_nn.group_norm(b, node)
        return
    _float_only(node)
    channels = static_shape(node.inputs[0])[1]
    groups = channels if node.op_type == "InstanceNormalization" else node.attributes.get_int("num_groups")
    params = []
    for i, name in ((1, "scale"), (2, "bias")):
        size = int(np.prod(static_shape(node.inputs[i])))
        if size != channels:
            raise Unsupported(f"{name} has {size} values for {channels} channels")
        params.append(b.reshaped(node.inputs[i], (channels,), f"{b.label}/{name}"))
    b.emit("GroupNorm", [node.inputs[0], *params], [node.outputs[0]],
           {"groups": groups, "epsilon": node.attributes.get_float("epsilon", 1e-5)})


def gemm(b: Builder, node: ir.Node) -> None:
    """Gemm with a run-time B (transposed or scaled) or a scaled run-time C: Transpose, MatMul, Mul, Add."""
    b_value, c_value = node.inputs[1], input_at(node, 2)
    alpha, beta = node.attributes.get_float("alpha", 1.0), node.attributes.get_float("beta", 1.0)
    trans_a, trans_b = node.attributes.get_int("transA", 0), node.attributes.get_int("transB", 0)
    runtime_c = c_value is not None and const_array(c_value) is None
    if const_array(b_value) is not None or (not trans_b and alpha == 1.0 and not (runtime_c and beta != 1.0)):
        rules_nn.gemm(b, node)
        return
    _float_only(node)
    shape_y = static_shape(node.outputs[0])
    operands = []
    for value, transposed, name in ((node.inputs[0], trans_a, "A_t"), (b_value, trans_b, "B_t")):
        if transposed:
            t = b.temp(static_shape(value)[::-1], np.float32, f"{b.label}/{name}")
            b.emit("Transpose", [value], [t], {"perm": [1, 0]})
            value = t
        operands.append(value)
    act = fused_activation(node)
    last = c_value is None and alpha == 1.0
    product = node.outputs[0] if last else b.temp(shape_y, np.float32, f"{b.label}/AB")
    b.emit("MatMul", [*operands, None], [product], act if last else {"activation": Activation.NONE})
    if alpha != 1.0:
        scaled = node.outputs[0] if c_value is None else b.temp(shape_y, np.float32, f"{b.label}/alphaAB")
        b.emit("Binary", [product, b.constant(np.array(alpha, np.float32), f"{b.label}/alpha")], [scaled],
               {"op": BinaryOp.MUL, **(act if c_value is None else {"activation": Activation.NONE})})
        product = scaled
    if c_value is not None:
        c = c_value
        if beta != 1.0:
            c = _binary(b, BinaryOp.MUL, c_value, b.constant(np.array(beta, np.float32), f"{b.label}/beta"),
                        static_shape(c_value), "betaC")
        b.emit("Binary", [product, c], [node.outputs[0]], {"op": BinaryOp.ADD, **act})


# Ops rules_nn lowers too: these rules handle the ranks and attributes rules_nn does not and hand the rest to it.
OVERRIDES = ("Conv", "FusedConv", "Gemm", "FusedGemm", "MaxPool", "AveragePool", "LayerNormalization",
             "BatchNormalization", "InstanceNormalization", "GroupNormalization")
RULES = {
    "Conv": conv, "FusedConv": conv, "ConvTranspose": conv_transpose,
    "MaxPool": pool, "AveragePool": pool, "LpPool": pool, "GlobalLpPool": pool, "MaxUnpool": max_unpool,
    "LRN": lrn, "Resize": resize, "Upsample": resize, "RNN": recurrent, "GRU": recurrent, "LSTM": recurrent,
    "GridSample": grid_sample, "AffineGrid": affine_grid, "DeformConv": deform_conv, "CenterCropPad": center_crop_pad,
    "LayerNormalization": layer_norm, "LpNormalization": lp_normalization, "BatchNormalization": batch_norm,
    "InstanceNormalization": group_norm, "GroupNormalization": group_norm, "Gemm": gemm, "FusedGemm": gemm,
}
