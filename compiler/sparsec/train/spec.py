"""What a training step updates and how: update specs (resolved to the model's initializers), loss, optimizer.

Update spec entries (CLI `--update`, or a JSON/YAML file's "update" list):
  bias:all                        every bias-like vector (Conv/ConvTranspose/Gemm bias, the shift B of
                                  Batch/Layer/Instance/GroupNormalization, the vector added after a MatMul)
  weight:last=K                   the constant weights of the last K Conv/ConvTranspose/Gemm/MatMul nodes in node order
  weight:GLOB / bias:GLOB         weights / biases whose initializer or node name matches GLOB
  GLOB                            float initializers (not scalars, not BatchNorm statistics) whose name matches
and any entry may end with `:channels=R` (a ratio, the channels of largest L1 weight magnitude) or
`:channels=i;j;k` (indices): only those output channels are updated. Everything not listed is frozen.
"""

from __future__ import annotations

import fnmatch
import json
import math
import os
from dataclasses import dataclass, field

import numpy as np
import onnx_ir as ir

from sparsec.errors import InputError
from sparsec.naming import is_standard
from sparsec.passes.util import const_array

LOSSES = ("cross_entropy", "mse", "bce_with_logits", "l1")
OPTIMIZERS = {"sgd": {"lr": None, "momentum": 0.0, "weight_decay": 0.0},
              "adamw": {"lr": 0.001, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.01}}
_BIAS_INPUT = {"Conv": 2, "ConvTranspose": 2, "Gemm": 2, "BatchNormalization": 2, "LayerNormalization": 2,
               "InstanceNormalization": 2, "GroupNormalization": 2}
_LAYERS = ("Conv", "ConvTranspose", "Gemm", "MatMul")


@dataclass(frozen=True)
class Optimizer:
    kind: str  # "sgd" or "adamw"
    params: dict  # lr, momentum, weight_decay (sgd); lr, beta1, beta2, eps, weight_decay (adamw)

    def to_dict(self) -> dict:
        return {"kind": self.kind, **self.params}


def parse_optimizer(text: str | dict | Optimizer) -> Optimizer:
    """"sgd:lr=0.01,momentum=0.9" or "adamw:lr=1e-3,weight_decay=0.01" (torch.optim's defaults otherwise)."""
    if isinstance(text, Optimizer):
        return text
    if isinstance(text, dict):
        text = dict(text)
        kind, options = str(text.pop("kind", "")), text
    else:
        kind, _, rest = str(text).partition(":")
        options = {}
        for item in filter(None, rest.split(",")):
            key, sep, value = item.partition("=")
            if not sep:
                raise InputError(f"optimizer option '{item}' is not key=value (e.g. sgd:lr=0.01,momentum=0.9)")
            options[key.strip()] = value
    kind = kind.strip().lower()
    if kind not in OPTIMIZERS:
        raise InputError(f"unknown optimizer '{kind}'; choose one of {', '.join(OPTIMIZERS)}")
    params = dict(OPTIMIZERS[kind])
    unknown = set(options) - set(params)
    if unknown:
        raise InputError(f"optimizer {kind} takes {', '.join(params)}; unknown {sorted(unknown)}")
    for key, value in options.items():
        try:
            params[key] = float(value)
        except (TypeError, ValueError):
            raise InputError(f"optimizer option {key}={value!r} is not a number") from None
    if params["lr"] is None or not params["lr"] > 0:
        raise InputError(f"optimizer {kind} needs a positive lr (e.g. {kind}:lr=0.01), got {params['lr']}")
    if any(params[k] < 0 for k in ("momentum", "weight_decay", "eps") if k in params):
        raise InputError(f"optimizer {kind}: momentum, weight_decay and eps must be >= 0")
    if kind == "adamw" and not (0 <= params["beta1"] < 1 and 0 <= params["beta2"] < 1):
        raise InputError("optimizer adamw: beta1 and beta2 must be in [0, 1)")
    return Optimizer(kind, params)


@dataclass
class ParamUpdate:
    """One trainable initializer; `indices` (along `axis`) when only some output channels are updated."""

    name: str
    shape: tuple[int, ...]
    axis: int = 0
    indices: list[int] | None = None
    reasons: list[str] = field(default_factory=list)  # the spec entries that selected it

    def to_dict(self) -> dict:
        return {"name": self.name, "shape": list(self.shape), "axis": self.axis, "indices": self.indices,
                "selected_by": self.reasons}


@dataclass(frozen=True)
class TrainOptions:
    loss: str = "cross_entropy"
    optimizer: Optimizer | str = "sgd:lr=0.01"
    update: tuple[str, ...] = ("bias:all",)

    def resolved(self) -> TrainOptions:
        if self.loss not in LOSSES:
            raise InputError(f"unknown loss '{self.loss}'; choose one of {', '.join(LOSSES)}")
        update = (self.update,) if isinstance(self.update, str) else tuple(self.update)
        if not update:
            raise InputError("the update spec is empty: name at least one parameter to train (e.g. --update bias:all)")
        return TrainOptions(self.loss, parse_optimizer(self.optimizer), update)


def read_spec_file(path: str | os.PathLike) -> dict:
    """A JSON (or, with PyYAML installed, YAML) file: {"update": [...], "loss": ..., "optimizer": ...}."""
    path = os.fspath(path)
    try:
        text = open(path, encoding="utf-8").read()
    except OSError as e:
        raise InputError(f"cannot read update spec {path}: {e.strerror}") from None
    if path.endswith((".yaml", ".yml")):
        try:
            import yaml
        except ImportError:
            raise InputError(f"{path}: reading YAML needs PyYAML (pip install pyyaml); or write the spec as JSON") from None
        data = yaml.safe_load(text)
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise InputError(f"{path} is not valid JSON: {e}") from None
    if isinstance(data, list):
        data = {"update": data}
    if not isinstance(data, dict) or not isinstance(data.get("update", []), list):
        raise InputError(f"{path}: expected a list of update entries or {{\"update\": [...], \"loss\": ..., \"optimizer\": ...}}")
    unknown = set(data) - {"update", "loss", "optimizer"}
    if unknown:
        raise InputError(f"{path}: unknown keys {sorted(unknown)} (allowed: update, loss, optimizer)")
    return data


def _weight_of(node: ir.Node) -> tuple[ir.Value, int] | None:
    """(constant weight, its output-channel axis) of a Conv/Gemm/MatMul layer, or None (MatMul of activations)."""
    if not is_standard(node) or node.op_type not in _LAYERS or len(node.inputs) < 2:
        return None
    w = node.inputs[1]
    if w is None or const_array(w) is None or not w.is_initializer():
        return None
    if node.op_type == "Gemm":
        return w, 0 if node.attributes.get_int("transB", 0) else 1
    return w, {"Conv": 0, "ConvTranspose": 1}.get(node.op_type, len(w.shape) - 1)


def _bias_values(graph: ir.Graph) -> list[ir.Value]:
    found = []
    for node in graph:
        if not is_standard(node):
            continue
        index = _BIAS_INPUT.get(node.op_type)
        if index is not None and len(node.inputs) > index and node.inputs[index] is not None:
            found.append(node.inputs[index])
        elif node.op_type == "Add":
            for i, v in enumerate(node.inputs):
                other = node.inputs[1 - i]
                producer = other.producer() if other is not None else None
                if (producer is not None and is_standard(producer, "MatMul") and _weight_of(producer)
                        and const_array(v) is not None and sum(d > 1 for d in v.shape) <= 1):
                    found.append(v)
    return [v for v in found if v.is_initializer() and const_array(v) is not None]


def _channel_axis(graph: ir.Graph, value: ir.Value) -> int:
    for node in graph:
        found = _weight_of(node)
        if found and found[0] is value:
            return found[1]
    return 0 if len(value.shape) != 2 or not any(is_standard(u.node, "MatMul") for u in value.uses()) else 1


def _channels(option: str, weight: np.ndarray, axis: int, entry: str) -> list[int]:
    count = weight.shape[axis]
    text = option.removeprefix("channels=")
    try:
        if ";" in text or "," in text or text.isdigit():
            indices = sorted({int(t) for t in text.replace(",", ";").split(";") if t})
            if any(not 0 <= i < count for i in indices):
                raise InputError(f"update '{entry}': channel indices must be in [0, {count})")
            return indices
        ratio = float(text)
    except ValueError:
        raise InputError(f"update '{entry}': channels= takes a ratio in (0, 1] or indices i;j;k") from None
    if not 0 < ratio <= 1:
        raise InputError(f"update '{entry}': channel ratio {ratio} is not in (0, 1]")
    magnitude = np.abs(weight).sum(axis=tuple(d for d in range(weight.ndim) if d != axis))
    keep = max(1, math.ceil(ratio * count - 1e-9))
    return sorted(int(i) for i in np.argsort(-magnitude, kind="stable")[:keep])


def resolve_updates(model: ir.Model, entries, sources=None) -> list[ParamUpdate]:
    """The model's initializers that entries select, in graph order (raises InputError on an entry that selects none).
    sources: the source model's initializer names; only those train (a folded Constant, e.g. the zero shift of a
    non-affine InstanceNorm, or an Identity of a merged initializer, is no parameter the export could write)."""
    graph = model.graph
    statistics = {n.inputs[i].name for n in graph if is_standard(n, "BatchNormalization") for i in (3, 4)}
    initializers = {v.name: v for v in graph.initializers.values()
                    if const_array(v) is not None and v.name not in statistics and v.dtype == ir.DataType.FLOAT
                    and (sources is None or v.name in sources)}
    weights = [found for node in graph if (found := _weight_of(node)) and found[0].name in initializers]
    selected: dict[str, ParamUpdate] = {}
    for entry in entries:
        if not isinstance(entry, str) or not entry.strip():
            raise InputError(f"update entry {entry!r} is not a non-empty string")
        parts = entry.strip().split(":")
        options = [p for p in parts if p.startswith("channels=")]
        parts = [p for p in parts if not p.startswith("channels=")]
        if len(options) > 1 or len(parts) > 2:
            raise InputError(f"update '{entry}' is not of the form [weight|bias:]SELECTOR[:channels=R]")
        kind, selector = (parts[0], parts[1]) if len(parts) == 2 else ("", parts[0])
        if kind == "bias":
            pool = [v for v in _bias_values(graph) if v.name in initializers]
        elif kind == "weight":
            pool = [w for w, _ in weights]
        elif kind == "":  # scalars are constants of the graph (Clip bounds, scales), not parameters
            pool = [v for v in initializers.values() if len(v.shape) >= 1]
        else:
            raise InputError(f"update '{entry}': unknown kind '{kind}' (weight, bias, or a name/glob alone)")
        if selector.startswith("last="):
            if kind != "weight":
                raise InputError(f"update '{entry}': last=K selects layer weights (weight:last=K)")
            try:
                k = int(selector[5:])
            except ValueError:
                k = -1
            if k < 1:
                raise InputError(f"update '{entry}': K in last=K must be a positive integer")
            chosen = pool[-k:]
        elif selector == "all":
            chosen = pool
        else:
            consumers = lambda v: [u.node.name or "" for u in v.uses()]  # noqa: E731
            chosen = [v for v in pool if fnmatch.fnmatchcase(v.name, selector)
                      or any(fnmatch.fnmatchcase(n, selector) for n in consumers(v))]
        chosen = list(dict.fromkeys(chosen))
        if not chosen:
            raise InputError(f"update '{entry}' selects no parameter of the model" +
                             (f" (no initializer or node name matches '{selector}')" if kind != "bias" or selector != "all" else ""))
        for v in chosen:
            if v.dtype != ir.DataType.FLOAT:
                raise InputError(f"update '{entry}': parameter '{v.name}' is {v.dtype}; only float32 parameters train")
            data = const_array(v)
            update = selected.setdefault(v.name, ParamUpdate(v.name, tuple(data.shape)))
            update.reasons.append(entry)
            if options:
                axis = _channel_axis(graph, v) if data.ndim > 1 else 0
                update.axis, update.indices = axis, _channels(options[0], data, axis, entry)
    order = {name: i for i, name in enumerate(initializers)}
    return sorted(selected.values(), key=lambda u: order.get(u.name, 0))
