"""An ONNX graph run by PyTorch ops, so that autograd and torch.optim give reference gradients and updates for any
ONNX model (no name mapping back to a torch module). Covers the op set of the training tests' models."""

from __future__ import annotations

import math

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import numpy_helper


def _attrs(node: onnx.NodeProto) -> dict:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _pads(a: dict, x, kernel):
    pads = list(a.get("pads", [0] * 4))
    auto = a.get("auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    if auto not in ("NOTSET", "", "VALID"):
        raise NotImplementedError(f"auto_pad {auto}")
    return pads


def _padded(x, pads, value=0.0):
    top, left, bottom, right = pads
    return F.pad(x, (left, right, top, bottom), value=value) if any(pads) else x


def _conv(x, w, b=None, **a):
    pads = _pads(a, x, w.shape[2:])
    top, left, bottom, right = pads
    symmetric = top == bottom and left == right  # conv2d pads itself, without a padded copy of x
    return F.conv2d(x if symmetric else _padded(x, pads), w, b, stride=a.get("strides", [1, 1]),
                    padding=(top, left) if symmetric else 0, dilation=a.get("dilations", [1, 1]),
                    groups=a.get("group", 1))


def _conv_transpose(x, w, b=None, **a):
    pads = list(a.get("pads", [0] * 4))
    if pads[:2] != pads[2:] or "output_shape" in a or _text(a.get("auto_pad", "NOTSET")) not in ("NOTSET", ""):
        raise NotImplementedError("ConvTranspose with asymmetric pads, auto_pad or output_shape")
    return F.conv_transpose2d(x, w, b, stride=a.get("strides", [1, 1]), padding=pads[:2],
                              output_padding=a.get("output_padding", [0, 0]), groups=a.get("group", 1),
                              dilation=a.get("dilations", [1, 1]))


def _group_norm(x, scale, bias, **a):  # GroupNormalization-21: scale and bias per channel
    return F.group_norm(x, a["num_groups"], scale, bias, a.get("epsilon", 1e-5))


def _extremum(reduce):
    """Max/Min of broadcast inputs; ties share the gradient evenly (amax/amin; as torch.maximum for two)."""
    return lambda *xs: reduce(torch.stack(torch.broadcast_tensors(*xs)), 0)


def _pad(x, pads, value=None, axes=None, **a):
    if _text(a.get("mode", "constant")) != "constant":
        raise NotImplementedError("Pad modes other than constant")
    axes = list(range(x.dim())) if axes is None else [int(v) % x.dim() for v in axes.tolist()]
    pads = pads.tolist()
    full = [0] * (2 * x.dim())
    for k, axis in enumerate(axes):
        full[2 * (x.dim() - 1 - axis)], full[2 * (x.dim() - 1 - axis) + 1] = pads[k], pads[k + len(axes)]
    return F.pad(x, full, value=0.0 if value is None else float(value))


def _resize(x, roi=None, scales=None, sizes=None, **a):
    """The Resize modes torch exports for F.interpolate (nearest; bilinear with or without align_corners)."""
    mode, coords = _text(a.get("mode", "nearest")), _text(a.get("coordinate_transformation_mode", "half_pixel"))
    size = [int(v) for v in sizes.tolist()[2:]] if sizes is not None and sizes.numel() else None
    factor = None if size else [float(v) for v in scales.tolist()[2:]]
    if mode == "nearest" and coords == "asymmetric" and _text(a.get("nearest_mode", "")) == "floor":
        return F.interpolate(x, size, factor, mode="nearest")
    if mode == "linear" and coords in ("half_pixel", "pytorch_half_pixel", "align_corners") and x.dim() == 4:
        return F.interpolate(x, size, factor, mode="bilinear", align_corners=coords == "align_corners")
    raise NotImplementedError(f"Resize {mode} {coords}")


def _pool(kind):
    def run(x, **a):
        kernel, strides = a["kernel_shape"], a.get("strides", [1, 1])
        pads = _pads(a, x, kernel)
        top, left, bottom, right = pads
        ceil = bool(a.get("ceil_mode", 0))
        if kind == "max":
            if top == bottom and left == right:
                return F.max_pool2d(x, kernel, strides, (top, left), a.get("dilations", [1, 1]), ceil_mode=ceil)
            return F.max_pool2d(_padded(x, pads, -math.inf), kernel, strides, ceil_mode=ceil)
        if top == bottom and left == right:
            return F.avg_pool2d(x, kernel, strides, (top, left), ceil_mode=ceil,
                                count_include_pad=bool(a.get("count_include_pad", 0)))
        raise NotImplementedError("asymmetric average pooling")
    return run


def _gemm(a_, b, c=None, **a):
    a_ = a_.t() if a.get("transA", 0) else a_
    b = b.t() if a.get("transB", 0) else b
    y = a.get("alpha", 1.0) * (a_ @ b)
    return y if c is None else y + a.get("beta", 1.0) * c


def _batchnorm(x, scale, bias, mean, var, **a):
    return F.batch_norm(x, mean, var, scale, bias, False, 0.0, a.get("epsilon", 1e-5))


def _layernorm(x, scale, bias=None, **a):
    axis = a.get("axis", -1) % x.dim()
    return F.layer_norm(x, x.shape[axis:], scale, bias, a.get("epsilon", 1e-5))


def _axes(a, axes, rank):
    """Axes from the attribute (a list, before opset 18) or the input (a tensor)."""
    axes = axes.tolist() if isinstance(axes, torch.Tensor) else axes
    return None if axes is None else [int(v) % rank for v in axes]


def _reduce(fn):
    def run(x, axes=None, **a):
        axes = _axes(a, axes, x.dim())
        if axes is None or not len(axes):
            axes = list(range(x.dim()))
        return fn(x, dim=axes, keepdim=bool(a.get("keepdims", 1)))
    return run


def _reshape(x, shape, **a):
    shape = [int(s) for s in shape.tolist()]
    shape = [x.shape[i] if s == 0 and not a.get("allowzero", 0) else s for i, s in enumerate(shape)]
    return x.reshape(shape)


def _slice(x, starts, ends, axes=None, steps=None, **a):
    axes = range(len(starts)) if axes is None else axes.tolist()
    steps = [1] * len(starts) if steps is None else steps.tolist()
    for s, e, ax, st in zip(starts.tolist(), ends.tolist(), axes, steps):
        ax = ax % x.dim()
        x = x.index_select(ax, torch.arange(*slice(s, e, st).indices(x.shape[ax]), dtype=torch.int64))
    return x


def _split(x, split=None, **a):
    axis = a.get("axis", 0)
    sizes = split.tolist() if split is not None else [x.shape[axis] // a["num_outputs"]] * a["num_outputs"]
    return list(torch.split(x, sizes, dim=axis))


def _clip(x, low=None, high=None, **a):
    return torch.clamp(x, None if low is None else float(low), None if high is None else float(high))


def _gather(data, indices, **a):
    axis = a.get("axis", 0) % data.dim()
    idx = indices.long()
    idx = torch.where(idx < 0, idx + data.shape[axis], idx)
    if idx.dim() == 0:
        return data.select(axis, int(idx))
    out = torch.index_select(data, axis, idx.reshape(-1))
    return out.reshape(data.shape[:axis] + idx.shape + data.shape[axis + 1:])


def _cast(x, **a):
    dtype = onnx.helper.tensor_dtype_to_np_dtype(a["to"])
    return x.to({np.dtype("float32"): torch.float32, np.dtype("int64"): torch.int64,
                 np.dtype("bool"): torch.bool, np.dtype("int32"): torch.int32}[np.dtype(dtype)])


OPS = {
    "Conv": _conv, "Gemm": _gemm, "MatMul": torch.matmul, "Add": torch.add, "Sub": torch.sub, "Mul": torch.mul,
    "Div": lambda a, b: a / b if a.is_floating_point() else torch.div(a, b, rounding_mode="trunc"),
    "Pow": torch.pow, "Sqrt": torch.sqrt, "Erf": torch.erf, "Exp": torch.exp, "Neg": torch.neg, "Tanh": torch.tanh,
    "Relu": torch.relu, "Sigmoid": torch.sigmoid, "HardSwish": F.hardswish, "Clip": _clip,
    "Gelu": lambda x, **a: F.gelu(x, approximate=_text(a.get("approximate", "none"))),
    "HardSigmoid": lambda x, **a: torch.clamp(a.get("alpha", 0.2) * x + a.get("beta", 0.5), 0, 1),
    "BatchNormalization": _batchnorm, "LayerNormalization": _layernorm,
    "MaxPool": _pool("max"), "AveragePool": _pool("avg"),
    "GlobalAveragePool": lambda x: x.mean((2, 3), keepdim=True),
    "ReduceMean": _reduce(torch.mean), "ReduceSum": _reduce(torch.sum),
    "Reshape": _reshape, "Flatten": lambda x, **a: x.flatten(a.get("axis", 1)) if a.get("axis", 1) else x.reshape(1, -1),
    "Squeeze": lambda x, axes=None: x.squeeze(tuple(axes.tolist())) if axes is not None else x.squeeze(),
    "Unsqueeze": lambda x, axes: x.reshape([*_unsqueezed(x.shape, axes.tolist())]),
    "Transpose": lambda x, **a: x.permute(a.get("perm", list(range(x.dim()))[::-1])),
    "Concat": lambda *xs, **a: torch.cat(xs, a["axis"]), "Split": _split, "Slice": _slice, "Gather": _gather,
    "Softmax": lambda x, **a: torch.softmax(x, a.get("axis", -1)),
    "LogSoftmax": lambda x, **a: torch.log_softmax(x, a.get("axis", -1)),
    "Identity": lambda x: x, "Dropout": lambda x, *rest, **a: x, "Cast": _cast,
    "Shape": lambda x, **a: torch.tensor(x.shape[a.get("start", 0):a.get("end", None)], dtype=torch.int64),
    "Expand": lambda x, shape: x.expand(torch.broadcast_shapes(x.shape, tuple(shape.tolist()))),
    "Equal": torch.eq, "Where": torch.where, "Sign": torch.sign, "Greater": torch.gt, "Less": torch.lt,
    "ConvTranspose": _conv_transpose, "GroupNormalization": _group_norm, "Pad": _pad, "Resize": _resize,
    "InstanceNormalization": lambda x, scale, bias, **a: F.instance_norm(x, weight=scale, bias=bias,
                                                                         eps=a.get("epsilon", 1e-5)),
    "Max": _extremum(torch.amax), "Min": _extremum(torch.amin),
    "ConstantOfShape": lambda shape, **a: torch.full(
        tuple(shape.tolist()), float(numpy_helper.to_array(a["value"]).reshape(-1)[0]) if "value" in a else 0.0),
}


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _unsqueezed(shape, axes):
    out = list(shape)
    for axis in sorted(a % (len(shape) + len(axes)) for a in axes):
        out.insert(axis, 1)
    return out


def run(model: onnx.ModelProto, feeds: dict, overrides: dict) -> list[torch.Tensor]:
    """Outputs of model on feeds; overrides {initializer name: torch tensor} replace initializers (leaves, slices)."""
    values = {i.name: torch.from_numpy(numpy_helper.to_array(i).copy()) for i in model.graph.initializer
              if i.name not in overrides}
    values.update(overrides)
    values.update({k: torch.as_tensor(v) for k, v in feeds.items()})
    for node in model.graph.node:
        a = _attrs(node)
        if node.op_type == "Constant":
            values[node.output[0]] = torch.from_numpy(numpy_helper.to_array(a["value"]).copy())
            continue
        args = [values[n] if n else None for n in node.input]
        while args and args[-1] is None:
            args.pop()
        out = OPS[node.op_type](*args, **a)
        for name, value in zip(node.output, out if isinstance(out, (list, tuple)) else [out]):
            values[name] = value
    return [values[o.name] for o in model.graph.output]
