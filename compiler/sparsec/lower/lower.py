"""ONNX (opset >= 17) nodes -> runtime ops with static shapes, named attributes and the algorithm each runs.

One rule per op type, in small modules by op family (rules_<family>.py); every runtime op
is packed and type-checked through the contract (sparsec.contract.schema).
"""

from __future__ import annotations

from typing import Callable

import onnx_ir as ir

from sparsec.activations import FUSED_DOMAIN, source_op_type
from sparsec.errors import UnsupportedOpError
from sparsec.lower import (rules_attention, rules_elementwise, rules_index, rules_logic, rules_math, rules_nn,
                           rules_nn_export, rules_sparse, rules_tensor, rules_train)
from sparsec.lower.builder import Builder, LoweredGraph, Unsupported
from sparsec.naming import is_standard, op_label
from sparsec.passes.util import const_array


def layered_rules(*modules) -> dict[str, Callable[[Builder, ir.Node], None]]:
    """Each op's rule; a later module replaces an earlier one's rule only for the ops in its OVERRIDES (lowering
    with the earlier rule what it does not handle itself), so two op families never claim one op by accident."""
    rules: dict[str, Callable[[Builder, ir.Node], None]] = {}
    for module in modules:
        overrides = set(getattr(module, "OVERRIDES", ()))
        for op, rule in module.RULES.items():
            if op in rules and op not in overrides:
                raise ImportError(f"{module.__name__} and an earlier rules module both lower {op}")
            rules[op] = rule
    return rules


RULES = layered_rules(rules_nn, rules_elementwise, rules_tensor, rules_logic, rules_index, rules_math, rules_attention,
                      rules_nn_export, rules_sparse)
_FUSED_RULES = {"FusedConv", "FusedGemm", "FusedMatMul", "FusedAdd", "Activation"}
SUPPORTED_OPS = sorted(op for op in RULES if op not in _FUSED_RULES)


def rule_for(node: ir.Node) -> Callable | None:
    if node.domain == rules_train.TRAIN_DOMAIN:
        return rules_train.RULES.get(node.op_type)
    if node.domain == FUSED_DOMAIN:
        return RULES.get(node.op_type) if node.op_type in _FUSED_RULES else None
    if is_standard(node) and node.op_type not in _FUSED_RULES:
        return RULES.get(node.op_type)
    return None


def node_label(node: ir.Node, index: int) -> str:
    """The node's name, or "#index:first output" for an unnamed node."""
    if node.name:
        return node.name
    first = next((v.name for v in node.outputs if v is not None), "")
    return f"#{index}:{first}"


def _unproduced_output(b: Builder, node: ir.Node) -> str | None:
    """Why a read output of node has no value after its rule ran (a rule must compute every output it is asked for)."""
    for k, value in enumerate(node.outputs):
        if value is None or not (value.uses() or value.is_graph_output()):
            continue
        if const_array(value) is None and not b.has_value(value):
            return f"output {k} '{value.name}' is not computed by sparsec"
    return None


def lower_model(model: ir.Model, progress=None, target: str = "x86_64", sparse_kernels: bool = True,
                params: dict | None = None) -> LoweredGraph:
    """Lowers every node for target; raises UnsupportedOpError listing every node (and graph input/output) that
    cannot run. params {name: initial value}: graph inputs that are trainable parameters (param region, not run-time
    inputs)."""
    b = Builder(target, sparse_kernels)
    b.params = dict(params or {})
    graph = model.graph
    unsupported = []
    for value in graph.inputs:
        if value.name in b.params:
            continue
        try:
            b.g.inputs.append(b.tensor(value))
        except Unsupported as e:
            unsupported.append((f"graph input '{value.name}'", "-", str(e)))
    nodes = list(graph)
    for i, node in enumerate(nodes):
        if progress and (i % 200 == 0 or i == len(nodes) - 1):
            progress(f"lowering node {i + 1}/{len(nodes)}")
        b.label, b.source_op = node_label(node, i), source_op_type(node)
        rule = rule_for(node)
        if rule is None:
            unsupported.append((b.label, op_label(node), "no lowering rule for this op"))
            continue
        try:
            rule(b, node)
            missing = _unproduced_output(b, node)
            if missing:
                raise Unsupported(missing)
        except Unsupported as e:
            unsupported.append((b.label, b.source_op, str(e)))
    if unsupported:
        raise UnsupportedOpError(unsupported)
    b.source_op = "output"
    for value in graph.outputs:
        out = b.tensor(value)
        if b.g.tensors[out].is_const or out in b.g.inputs:  # outputs live in the arena
            copy = b.temp(b.g.tensors[out].shape, b.g.tensors[out].dtype, value.name)
            b.label = f"{value.name}/output"
            b.emit("Copy", [out], [copy])
            out = copy
        b.g.outputs.append(out)
    return b.g
