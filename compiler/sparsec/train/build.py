"""The training step as one graph: trainable parameters become param-region inputs, layers whose parameters train
are written in differentiable form (Gemm -> MatMul, BatchNorm with a trainable scale/shift -> Mul/Add, unfolded),
then loss, backward and update nodes are appended (gradients.add_backward)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

import numpy as np
import onnx_ir as ir

from sparsec.lower.builder import Unsupported
from sparsec.lower.lower import node_label
from sparsec.lower.rules_train import TRAIN_DOMAIN
from sparsec.naming import is_standard
from sparsec.passes import Pass, run_passes
from sparsec.passes.batchnorm import fold_batchnorm
from sparsec.passes.cleanup import fold_constants, remove_dead_nodes, remove_identities
from sparsec.passes.fusion import fold_transpose_into_matmul, fuse_activations, fuse_gelu, fuse_matmul_bias
from sparsec.passes.util import const_array
from sparsec.train.fuse import fuse_exported_group_norm
from sparsec.train.gradients import LABELS, BackwardResult, Emitter, add_backward, requires_grad, shape_of
from sparsec.train.spec import ParamUpdate, TrainOptions, resolve_updates

STATE_VERSION = 1
# Before the backward: constant folding, removal of identities and dead nodes, and GELU as one activation (its
# gradient is one ActivationGrad instead of the Erf formula's five); a folded BatchNorm would change what a trained
# scale/shift means.
TRAIN_PASSES = [Pass("fold_constants", fold_constants), Pass("remove_identities", remove_identities),
                Pass("remove_dead_nodes", remove_dead_nodes), Pass("fuse_gelu", fuse_gelu)]
# After it, the inference fusions: each fuses only a value no other node reads and folds only constants, so the
# values the backward reads and the trainable parameters (graph inputs) stay as they are; the frozen part of the
# network runs as fast as in inference.
TRAIN_FUSIONS = [Pass("fold_batchnorm", fold_batchnorm), Pass("fuse_matmul_bias", fuse_matmul_bias),
                 Pass("fuse_activations", fuse_activations),
                 Pass("fold_transpose_into_matmul", fold_transpose_into_matmul)]


def lift_parameters(model: ir.Model, updates: list[ParamUpdate]) -> dict[str, np.ndarray]:
    """Trainable initializers become graph inputs (so no pass folds them); returns their initial values."""
    graph = model.graph
    arrays = {}
    for update in updates:
        value = graph.initializers.pop(update.name)
        arrays[update.name] = np.array(value.const_value.numpy(), np.float32)
        value.const_value = None
        graph.inputs.append(value)
    return arrays


def decompose_gemm(model: ir.Model, requires: set) -> None:
    """Gemm on a gradient path -> MatMul (+ Transpose, scale, Add): the autodiff has one rule for matrix products."""
    graph = model.graph
    for index, node in enumerate(list(graph)):
        if not is_standard(node, "Gemm") or not any(v in requires for v in node.inputs if v is not None):
            continue
        em = Emitter(graph, label=node_label(node, index), before=node)
        a, b = node.inputs[0], node.inputs[1]
        c = node.inputs[2] if len(node.inputs) > 2 else None
        alpha, beta = node.attributes.get_float("alpha", 1.0), node.attributes.get_float("beta", 1.0)
        if node.attributes.get_int("transA", 0):
            a = em.transpose(a, [1, 0])
        weight = const_array(b)
        if weight is not None and b not in requires:  # a frozen weight: transpose and scale once, here
            b = em.const(((weight.T if node.attributes.get_int("transB", 0) else weight) * np.float32(alpha)), "B")
            alpha = 1.0
        elif node.attributes.get_int("transB", 0):
            b = em.transpose(b, [1, 0])
        y = em.op("MatMul", [a, b], (shape_of(a)[0], shape_of(b)[1]))
        if alpha != 1.0:
            y = em.binary("Mul", y, em.const(np.float32(alpha), "alpha"))
        if c is not None:
            if beta != 1.0:
                c = em.binary("Mul", c, em.const(np.float32(beta), "beta"))
            y = em.binary("Add", y, c)
        node.outputs[0].replace_all_uses_with(y, replace_graph_outputs=True)
        graph.remove(node, safe=True)


def decompose_batchnorm(model: ir.Model, params: set[str]) -> None:
    """Eval-mode BatchNormalization whose scale or shift trains -> x * a + b with the trained vector kept separate."""
    graph = model.graph
    for index, node in enumerate(list(graph)):
        if not is_standard(node, "BatchNormalization") or not any(v.name in params for v in node.inputs[1:3]):
            continue
        em = Emitter(graph, label=node_label(node, index), before=node)
        x, gamma, beta, mean, var = node.inputs[:5]
        mean_a, var_a = const_array(mean), const_array(var)
        if mean_a is None or var_a is None:
            raise Unsupported(f"BatchNormalization '{em.label}': running mean and variance must be constant")
        channel = (-1,) + (1,) * (len(shape_of(x)) - 2)
        inv = (np.float32(1) / np.sqrt(var_a + np.float32(node.attributes.get_float("epsilon", 1e-5)))).astype(np.float32)
        beta_a = None if beta.name in params else const_array(beta)
        if gamma.name in params:  # y = ((x - mean) * inv) * gamma + beta
            xhat = em.binary("Add", em.binary("Mul", x, em.const(inv.reshape(channel), "inv_std")),
                             em.const((-mean_a * inv).reshape(channel), "shift"))
            y = em.binary("Mul", xhat, em.reshape(gamma, shape_of(gamma) + (1,) * (len(channel) - 1)))
            if beta_a is not None:
                y = em.binary("Add", y, em.const(beta_a.reshape(channel), "beta"))
        else:  # as torch's inference kernel: x * (gamma * inv) + (beta - mean * gamma * inv)
            scale = (const_array(gamma) * inv).astype(np.float32)
            shift = (-mean_a * scale) if beta_a is None else (beta_a - mean_a * scale)
            y = em.binary("Add", em.binary("Mul", x, em.const(scale.reshape(channel), "scale")),
                          em.const(shift.astype(np.float32).reshape(channel), "shift"))
        if beta_a is None:
            y = em.binary("Add", y, em.reshape(beta, shape_of(beta) + (1,) * (len(channel) - 1)))
        node.outputs[0].replace_all_uses_with(y, replace_graph_outputs=True)
        graph.remove(node, safe=True)


@dataclass
class TrainingGraph:
    model: ir.Model
    options: TrainOptions
    updates: list[ParamUpdate]
    params: dict[str, np.ndarray]  # initial values of the trainable parameters
    backward: BackwardResult
    pass_rows: list[dict] = field(default_factory=list)
    seconds: float = 0.0

    def label_info(self) -> dict:
        value = next(v for v in self.model.graph.inputs if v.name == LABELS)
        return {"name": LABELS, "shape": list(shape_of(value)), "dtype": value.dtype.numpy().name}

    def backward_nodes(self) -> int:
        """Nodes from the loss on: loss, gradients and updates."""
        nodes = list(self.model.graph)
        return len(nodes) - nodes.index(self.backward.loss.producer())

    def saved_activation_bytes(self) -> int:
        """Bytes of forward values (not parameters) that backward nodes read: what the step keeps for backprop."""
        graph = self.model.graph
        nodes = list(graph)
        backward = nodes[len(nodes) - self.backward_nodes():]
        produced_later = {id(o) for n in backward for o in n.outputs}
        saved = {id(v): v for n in backward for v in n.inputs
                 if v is not None and id(v) not in produced_later and const_array(v) is None
                 and v.name not in self.params and v.name != LABELS}
        return int(sum(np.prod(shape_of(v)) * v.dtype.itemsize for v in saved.values()))

    def metadata(self, source_name: str) -> dict:
        """The trainer's sidecar: what the artifact's outputs and param region hold."""
        return {
            "version": STATE_VERSION,
            "source": source_name,
            "loss": self.options.loss,
            "optimizer": self.options.optimizer.to_dict(),
            "update": list(self.options.update),
            "labels": self.label_info(),
            "params": [u.to_dict() for u in self.updates],
            "gradients": list(self.backward.gradients),
        }


def build_training_graph(model: ir.Model, options: TrainOptions, progress=None) -> TrainingGraph:
    """The whole training step (forward, loss, backward, in-place updates) as one IR graph."""
    start = time.perf_counter()
    options = options.resolved()
    fuse_exported_group_norm(model)  # before folding, which would fold GroupNorm's weight and bias away
    sources = set(model.graph.initializers)
    model, rows = run_passes(model, TRAIN_PASSES, progress)  # first: folding must not see parameters as inputs
    updates = resolve_updates(model, options.update, sources)
    params = lift_parameters(model, updates)
    names = set(params)
    decompose_batchnorm(model, names)
    decompose_gemm(model, requires_grad(model.graph, names))
    backward = add_backward(model, {u.name: u for u in updates}, options.loss, options.optimizer)
    model.opset_imports[TRAIN_DOMAIN] = 1
    model, fusion_rows = run_passes(model, TRAIN_FUSIONS, progress)
    rows += fusion_rows
    return TrainingGraph(model, options, updates, params, backward, rows, time.perf_counter() - start)


def _source_bytes(model) -> bytes:
    """The original ONNX model's bytes (export() rewrites its updated initializers)."""
    import onnx

    if isinstance(model, onnx.ModelProto):
        return model.SerializeToString()
    if isinstance(model, ir.Model):
        return ir.serde.serialize_model(model).SerializeToString()
    with open(model, "rb") as f:
        return f.read()


def training_files(training: TrainingGraph, model, path, lowered, memory: dict) -> tuple[dict, dict]:
    """(the report's training section, {path: bytes} of the trainer's sidecar and the source model)."""
    from sparsec.contract.schema import Storage
    from sparsec.lower.memory import _aligned

    source = path.with_suffix(".source.onnx")
    param_bytes = sum(t.nbytes for t in lowered.tensors if t.storage == Storage.PARAM and t.name in training.params)
    state_bytes = sum(t.nbytes for t in lowered.tensors if t.storage == Storage.PARAM) - param_bytes
    param_region = sum(_aligned(t.nbytes) for t in lowered.tensors if t.storage == Storage.PARAM)
    report = {
        "loss": training.options.loss,
        "optimizer": training.options.optimizer.to_dict(),
        "updated_parameters": len(training.updates),
        "updated_values": int(sum(np.prod(u.shape) if u.indices is None else
                                  np.prod(u.shape) // u.shape[u.axis] * len(u.indices) for u in training.updates)),
        "backward_nodes": training.backward_nodes(),
        "saved_activation_bytes": training.saved_activation_bytes(),
        "param_bytes": param_bytes,
        "optimizer_state_bytes": state_bytes,
        "peak_step_bytes": memory["arena_bytes"] + memory["scratch_bytes"] + param_region,
        "seconds": round(training.seconds, 3),
    }
    files = {path.with_suffix(".train.json"): json.dumps(training.metadata(source.name), indent=2).encode(),
             source: _source_bytes(model)}
    return report, files
