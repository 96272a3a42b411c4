"""Calibration for data-driven importance: activations measured by running samples through onnxruntime."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from sparsec.errors import InputError
from sparsec.passes.pruning.groups import Group


def _samples(name: str, array: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """array as [samples, *shape]: given samples first, each of the input's shape or stacked along its batch axis."""
    if array.ndim == len(shape) + 1 and array.shape[1:] == shape:
        return array
    if shape and array.ndim == len(shape) and array.shape[1:] == shape[1:] and array.shape[0] % shape[0] == 0:
        return array.reshape(-1, *shape)
    dims, rest = ", ".join(map(str, shape)), ", ".join(map(str, shape[1:]))
    raise InputError(f"calibration data for '{name}' has shape {array.shape}, not a stack of {list(shape)}: give "
                     f"[samples, {dims}] or [samples * {shape[0] if shape else 1}, {rest}] (samples first)")


def _check_finite(name: str, array: np.ndarray) -> None:
    """NaN or inf activations would rank channels by garbage."""
    if np.issubdtype(array.dtype, np.inexact) and not np.isfinite(array).all():
        bad = int(array.size - np.isfinite(array).sum())
        raise InputError(f"calibration data for '{name}' has {bad} NaN or infinite value(s) of {array.size}")


def load_calibration(path, model: ir.Model) -> list[dict[str, np.ndarray]]:
    """Samples from .npy (one input: [samples, *input shape] or stacked along the batch axis) or
    .npz (one array per input name, samples first). Each sample becomes one feed of the model's shape."""
    inputs = {v.name: v for v in model.graph.inputs}
    try:
        loaded = np.load(path)
    except (OSError, ValueError) as e:
        raise InputError(f"cannot read calibration data {path}: {e}") from None
    arrays = dict(loaded) if isinstance(loaded, np.lib.npyio.NpzFile) else {next(iter(inputs)): loaded}
    if set(arrays) != set(inputs):
        raise InputError(f"calibration data must give every model input {sorted(inputs)}; got {sorted(arrays)}")
    counts = set()
    feeds: dict[str, np.ndarray] = {}
    for name, array in arrays.items():
        _check_finite(name, array)
        feeds[name] = _samples(name, array, tuple(inputs[name].shape)).astype(inputs[name].dtype.numpy(), copy=False)
        counts.add(len(feeds[name]))
    if len(counts) != 1:
        raise InputError(f"calibration inputs have different sample counts {sorted(counts)}")
    return [{name: a[i] for name, a in feeds.items()} for i in range(counts.pop())]


def check_feeds(feeds: list[dict], model: ir.Model) -> list[dict[str, np.ndarray]]:
    """Calibration given as feeds: each gives every input, in the input's shape, finite."""
    inputs = {v.name: tuple(v.shape) for v in model.graph.inputs}
    for feed in feeds:
        if not isinstance(feed, dict) or set(feed) != set(inputs):
            got = sorted(map(str, feed)) if isinstance(feed, dict) else type(feed).__name__
            raise InputError(f"each calibration feed must be a dict giving every model input {sorted(inputs)}; "
                             f"got {got}")
        for name, value in feed.items():
            value = np.asarray(value)
            if value.shape != inputs[name]:
                raise InputError(f"calibration feed '{name}' has shape {value.shape}, the input's is {list(inputs[name])}")
            _check_finite(name, value)
    return feeds


def calibration_feeds(calib, model: ir.Model) -> list[dict[str, np.ndarray]] | None:
    """Feeds from a .npy/.npz path, or the given list of feeds, checked."""
    if isinstance(calib, (str, bytes)) or hasattr(calib, "__fspath__"):
        return load_calibration(calib, model)
    return None if calib is None else check_feeds(list(calib), model)


def consumer_activation_norms(model: ir.Model, groups: list[Group], calibration: list[dict],
                              progress=None) -> dict[str, np.ndarray]:
    """Mean |a| per channel of every tensor a pruned consumer (Conv/Gemm/MatMul input weights) reads."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise InputError("the taylor criterion runs calibration through onnxruntime: pip install onnxruntime") from None
    axes = {}
    for g in groups:
        for p in g.params:
            if p.role == "in":
                x = p.node.inputs[0]
                transposed = p.node.op_type == "Gemm" and p.node.attributes.get_int("transA", 0)
                axes[x.name] = 1 if p.node.op_type == "Conv" else 0 if transposed else len(x.shape) - 1
    names = sorted(axes)
    proto = ir.serde.serialize_model(model)
    known = {o.name for o in proto.graph.output}
    proto.graph.output.extend(ir.serde.serialize_value(v) for v in _values(model, names) if v.name not in known)
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    sums = {name: 0.0 for name in names}
    for i, feed in enumerate(calibration):
        if progress:
            progress(f"calibration sample {i + 1}/{len(calibration)}")
        for name, value in zip(names, session.run(names, feed)):
            moved = np.moveaxis(np.abs(value), axes[name], 0)
            sums[name] = sums[name] + moved.reshape(moved.shape[0], -1).mean(axis=1)
    return {name: total / len(calibration) for name, total in sums.items()}


def _values(model: ir.Model, names: list[str]) -> list[ir.Value]:
    wanted = set(names)
    found = {v.name: v for node in model.graph for v in node.inputs if v is not None and v.name in wanted}
    found.update({v.name: v for v in model.graph.inputs if v.name in wanted})
    return [found[n] for n in names]
