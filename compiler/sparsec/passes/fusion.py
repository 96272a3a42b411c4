"""Fusions into `sparsec` domain nodes the kernels run in one pass (bias and activation epilogues)."""

from __future__ import annotations

import math

import onnx_ir as ir
from onnxscript.rewriter import pattern

from sparsec.activations import FUSED_DOMAIN, activation_of, attach, attached, standard_nodes
from sparsec.contract.schema import Activation
from sparsec.naming import is_standard
from sparsec.passes.util import bypass, const_array, only_consumer

# Producers whose kernels apply an activation in their epilogue.
FUSABLE = {"Conv", "Gemm", "MatMul", "Add"}


def _fused(node: ir.Node, op_type: str, inputs: list) -> ir.Node:
    """A sparsec-domain copy of node (same attributes) with the given inputs, inserted before it."""
    fused = ir.Node(FUSED_DOMAIN, op_type, inputs, attributes=list(node.attributes.values()), name=node.name)
    node.graph.insert_before(node, fused)
    return fused


def _ensure_domain(model: ir.Model) -> None:
    model.opset_imports.setdefault(FUSED_DOMAIN, 1)


def fuse_matmul_bias(model: ir.Model) -> ir.Model:
    """MatMul by a 2-D weight (a constant, or a training step's parameter) then Add of a constant [N] bias ->
    sparsec.FusedMatMul."""
    for add in list(model.graph):
        if not is_standard(add, "Add"):
            continue
        for i in (0, 1):
            matmul, bias = add.inputs[i].producer(), add.inputs[1 - i]
            bias_data = const_array(bias)
            weight_shape = matmul.inputs[1].shape if is_standard(matmul, "MatMul") else None
            if (weight_shape is None or bias_data is None or len(weight_shape) != 2
                    or only_consumer(add.inputs[i]) is not add):
                continue
            if bias_data.size != weight_shape[1] or bias_data.ndim > 1 and bias_data.shape[-1] != bias_data.size:
                continue
            if tuple(add.outputs[0].shape or ()) != tuple(matmul.outputs[0].shape or (None,)):
                continue  # the bias must not broadcast the result to a larger shape
            _ensure_domain(model)
            fused = _fused(matmul, "FusedMatMul", [matmul.inputs[0], matmul.inputs[1], bias])
            fused.outputs[0].shape, fused.outputs[0].type = add.outputs[0].shape, add.outputs[0].type
            if bypass(add, fused.outputs[0]):
                model.graph.remove(matmul, safe=True)
            break
    return model


def fold_transpose_into_matmul(model: ir.Model) -> ir.Model:
    """MatMul of a Transpose swapping the last two axes (read only there) -> sparsec.FusedMatMul(trans_a=1); and a
    transposed product (X^T Y)^T -> Y^T X, also trans_a (a Gemm weight's gradient, in the weight's own layout)."""
    for node in list(model.graph):
        is_matmul = is_standard(node, "MatMul") or (node.domain == FUSED_DOMAIN and node.op_type == "FusedMatMul")
        if not is_matmul or node.attributes.get_int("trans_a", 0):
            continue
        transpose = node.inputs[0].producer()
        b_shape = node.inputs[1].shape
        if (not _swaps_last_two(transpose) or only_consumer(node.inputs[0]) is not node or b_shape is None
                or len(b_shape) < 2):  # numpy's 1-D operand rules
            continue
        _ensure_domain(model)
        _trans_a_matmul(node, [transpose.inputs[0], *node.inputs[1:]], node, transpose)
    for transpose in list(model.graph):
        product = transpose.inputs[0].producer() if is_standard(transpose, "Transpose") else None
        if (product is None or product.domain != FUSED_DOMAIN or product.op_type != "FusedMatMul"
                or not product.attributes.get_int("trans_a", 0) or len(product.inputs) > 2
                or attached(product)[0] != Activation.NONE or not _swaps_last_two(transpose)
                or only_consumer(transpose.inputs[0]) is not transpose):
            continue
        a, b = product.inputs  # product = a^T b, so its transpose is b^T a
        _trans_a_matmul(product, [b, a], transpose, product)
    return model


def _trans_a_matmul(like: ir.Node, inputs: list, replaced: ir.Node, dropped: ir.Node) -> None:
    """A trans_a FusedMatMul of inputs (like's attributes) takes replaced's place; dropped goes if nothing reads it."""
    graph = like.graph
    fused = _fused(like, "FusedMatMul", inputs)
    fused.attributes["trans_a"] = ir.AttrInt64("trans_a", 1)
    fused.outputs[0].shape, fused.outputs[0].type = replaced.outputs[0].shape, replaced.outputs[0].type
    graph.remove(dropped if bypass(replaced, fused.outputs[0]) else fused, safe=True)


def _last_two_swapped(rank: int) -> list[int]:
    return [*range(rank - 2), rank - 1, rank - 2]


def _swaps_last_two(transpose: ir.Node | None) -> bool:
    """A Transpose whose perm swaps the last two axes of an input of rank >= 2 and keeps the others."""
    if not is_standard(transpose, "Transpose") or transpose.inputs[0].shape is None:
        return False
    rank = len(transpose.inputs[0].shape)
    return rank >= 2 and list(transpose.attributes.get_ints("perm", range(rank - 1, -1, -1))) == _last_two_swapped(rank)


def _fuse_silu(model: ir.Model) -> None:
    """x * Sigmoid(x) -> sparsec.Activation(SILU)."""
    for mul in list(model.graph):
        if not is_standard(mul, "Mul"):
            continue
        for i in (0, 1):
            sig = mul.inputs[i].producer()
            if is_standard(sig, "Sigmoid") and sig.inputs[0] is mul.inputs[1 - i] and only_consumer(sig.outputs[0]) is mul:
                _ensure_domain(model)
                node = ir.Node(FUSED_DOMAIN, "Activation", [sig.inputs[0]], name=mul.name)
                attach(node, (Activation.SILU, 0.0, 0.0))
                model.graph.insert_before(mul, node)
                node.outputs[0].shape, node.outputs[0].type = mul.outputs[0].shape, mul.outputs[0].type
                if bypass(mul, node.outputs[0]):
                    model.graph.remove(sig, safe=True)
                else:
                    model.graph.remove(node, safe=True)
                break


def _gelu(op, x, erf):
    y = op.Activation(x, _domain=FUSED_DOMAIN, activation=Activation.GELU.name, activation_params=[0.0, 0.0])
    name = erf.producer().name or "Erf"  # the user's module ("/ffn/act/Erf" -> "/ffn/act/Gelu")
    y.producer().name = name[:-len("/Erf")] + "/Gelu" if name.endswith("/Erf") else name + "/Gelu"
    return y


def _erf_gelu_rule(product, divide: bool) -> pattern.RewriteRule:
    def target(op, x):
        scaled = x / math.sqrt(2) if divide else x * math.sqrt(0.5)
        return product(x, op.Erf(scaled, _outputs=["erf"]) + 1.0)

    return pattern.RewriteRule(target, _gelu)


# GELU as exporters write it with Erf (torch before opset 20): the 0.5 on either product, x / sqrt 2 or x * (1 / sqrt 2).
_PRODUCTS = (lambda x, e: x * e * 0.5, lambda x, e: x * (e * 0.5), lambda x, e: (x * 0.5) * e)
_ERF_GELU = pattern.RewriteRuleSet([_erf_gelu_rule(p, d) for p in _PRODUCTS for d in (True, False)], commute=True)


def fuse_gelu(model: ir.Model) -> ir.Model:
    """x * 0.5 * (1 + Erf(x / sqrt 2)) in any operand order -> sparsec.Activation(GELU), when no other node reads a part."""
    if _ERF_GELU.apply_to_model(model):
        _ensure_domain(model)
    return model


def fuse_activations(model: ir.Model) -> ir.Model:
    """Activation after Conv/Gemm/MatMul/Add -> one sparsec.Fused* node applying it in the epilogue; x*Sigmoid(x) -> SiLU."""
    _fuse_silu(model)
    for act_node in list(model.graph):
        act = activation_of(act_node)
        producer = act_node.inputs[0].producer() if act and act_node.inputs else None
        if producer is None or only_consumer(act_node.inputs[0]) is not act_node:
            continue
        standard = is_standard(producer) and producer.op_type in FUSABLE
        refusable = producer.domain == FUSED_DOMAIN and producer.op_type.startswith("Fused")
        if not (standard or refusable) or (refusable and attached(producer)[0] != Activation.NONE):
            continue
        _ensure_domain(model)
        fused = producer if refusable else _fused(producer, "Fused" + producer.op_type, list(producer.inputs))
        attach(fused, act)
        fused.outputs[0].shape, fused.outputs[0].type = act_node.outputs[0].shape, act_node.outputs[0].type
        if bypass(act_node, fused.outputs[0]):
            if not refusable:
                model.graph.remove(producer, safe=True)
        elif not refusable:
            model.graph.remove(fused, safe=True)
    return model


def to_standard_onnx(model: ir.Model) -> ir.Model:
    """Expands every sparsec-domain node back into standard ONNX ops (to check fused graphs with onnxruntime)."""
    graph = model.graph
    for node in list(graph):
        if node.domain != FUSED_DOMAIN:
            continue
        act = attached(node)
        if node.op_type == "Activation":
            nodes, y = standard_nodes(node.inputs[0], act, node.name)
        else:
            op = node.op_type.removeprefix("Fused")
            attrs = [a for a in node.attributes.values() if a.name not in ("activation", "activation_params", "trans_a")]
            inputs = list(node.inputs[:2]) if op == "MatMul" else list(node.inputs)
            nodes = []
            if node.attributes.get_int("trans_a", 0):
                nodes.append(ir.node("Transpose", [inputs[0]], {"perm": _last_two_swapped(len(inputs[0].shape))},
                                     name=node.name + "/a_t"))
                inputs[0] = nodes[-1].outputs[0]
            base = ir.Node("", op, inputs, attributes=attrs, name=node.name + "/base")
            nodes.append(base)
            z = base.outputs[0]
            if op == "MatMul" and len(node.inputs) > 2:
                nodes.append(ir.node("Add", [z, node.inputs[2]], name=node.name + "/bias"))
                z = nodes[-1].outputs[0]
            act_nodes, y = standard_nodes(z, act, node.name)
            nodes += act_nodes
        graph.insert_before(node, nodes)
        old = node.outputs[0]
        name = old.name
        y.shape, y.type = old.shape, old.type
        old.replace_all_uses_with(y, replace_graph_outputs=True)
        graph.remove(node, safe=True)
        y.name = name
    model.opset_imports.pop(FUSED_DOMAIN, None)
    return model
