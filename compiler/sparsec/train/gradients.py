"""Autodiff on the ONNX IR at compile time, with sparse backprop.

`GRADIENTS` is one table, one rule per ONNX op (tinygrad's shape): a rule gets the node and its outputs' gradients
and returns one gradient per input (None where no update needs it). Backward nodes are standard ONNX ops the
lowering already has, or `sparsec.train` ops (rules_train). Only values that depend on a trainable parameter get
a gradient, so the backward graph stops at the earliest layer an update needs and frozen weights get no
weight-gradient node; a partial-channel update computes only its slice. Each parameter's optimizer update follows
the last node that reads it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import onnx_ir as ir

from sparsec.activations import FUSED_DOMAIN, activation_of
from sparsec.contract.schema import Activation, PoolKind
from sparsec.errors import InputError, UnsupportedOpError
from sparsec.lower.builder import Unsupported, axis_of, spatial_pads
from sparsec.lower.lower import node_label
from sparsec.lower.rules_nn_export import conv_transpose_begin_pads, resize_tables
from sparsec.lower.rules_tensor import slice_window
from sparsec.lower.rules_train import TRAIN_DOMAIN
from sparsec.naming import is_standard, op_label
from sparsec.passes.util import add_initializer, const_array
from sparsec.passes.util import static_shape as maybe_shape
from sparsec.train.spec import Optimizer, ParamUpdate

LABELS = "labels"


def shape_of(value: ir.Value) -> tuple[int, ...]:
    shape = maybe_shape(value)
    if shape is None:
        raise Unsupported(f"value '{value.name}' has no static shape")
    return shape


def requires_grad(graph: ir.Graph, params: set[str]) -> set[ir.Value]:
    """Values that depend on a trainable parameter (float outputs of nodes reading one)."""
    found = {v for v in graph.inputs if v.name in params}
    for node in graph:
        if any(i in found for i in node.inputs if i is not None):
            found.update(o for o in node.outputs if o.dtype == ir.DataType.FLOAT)
    return found


@dataclass
class Emitter:
    """Appends (or inserts) IR nodes with static shapes and unique names."""

    graph: ir.Graph
    label: str = ""
    before: ir.Node | None = None  # insert before this node instead of appending
    count: int = 0

    def op(self, op_type: str, inputs, shape, attrs=None, domain: str = "", dtype=ir.DataType.FLOAT,
           outputs: int = 1) -> ir.Value | None:
        self.count += 1
        name = f"{self.label}/{op_type}_{self.count}"
        node = ir.node(op_type, inputs, attrs, domain=domain, num_outputs=outputs, name=name)
        for k, out in enumerate(node.outputs):
            out.name, out.shape, out.type = f"{name}:{k}", ir.Shape(shape), ir.TensorType(dtype)
        if self.before is not None:
            self.graph.insert_before(self.before, node)
        else:
            self.graph.append(node)
        return node.outputs[0] if outputs else None

    def const(self, array, hint: str) -> ir.Value:
        return add_initializer(self.graph, f"{self.label}/{hint}", np.asarray(array))

    def reshape(self, x: ir.Value, shape) -> ir.Value:
        shape = tuple(int(d) for d in shape)
        if shape_of(x) == shape:
            return x
        return self.op("Reshape", [x, self.const(np.array(shape, np.int64), "shape")], shape)

    def transpose(self, x: ir.Value, perm) -> ir.Value:
        shape = shape_of(x)
        if list(perm) == list(range(len(shape))):
            return x
        return self.op("Transpose", [x], tuple(shape[p] for p in perm), {"perm": list(perm)})

    def gather(self, x: ir.Value, indices: list[int], axis: int) -> ir.Value:
        shape = list(shape_of(x))
        shape[axis] = len(indices)
        return self.op("Gather", [x, self.const(np.array(indices, np.int64), "channels")], shape, {"axis": axis})

    def reduce_sum(self, x: ir.Value, axes) -> ir.Value:
        """Sum over axes, keeping them as size 1."""
        shape = shape_of(x)
        axes = sorted({a for a in axes if shape[a] != 1})
        if not axes:
            return x
        keep = tuple(1 if d in axes else n for d, n in enumerate(shape))
        return self.op("ReduceSum", [x, self.const(np.array(axes, np.int64), "axes")], keep, {"keepdims": 1})

    def unbroadcast(self, g: ir.Value, shape) -> ir.Value:
        """g summed down to shape (the reverse of numpy broadcasting)."""
        gs, shape = shape_of(g), tuple(shape)
        lead = len(gs) - len(shape)
        axes = list(range(lead)) + [lead + i for i, d in enumerate(shape) if d == 1 and gs[lead + i] != 1]
        return self.reshape(self.reduce_sum(g, axes), shape)

    def binary(self, op_type: str, a: ir.Value, b: ir.Value) -> ir.Value:
        return self.op(op_type, [a, b], np.broadcast_shapes(shape_of(a), shape_of(b)))


@dataclass
class Autodiff(Emitter):
    params: dict[str, ParamUpdate] = field(default_factory=dict)
    requires: set = field(default_factory=set)
    forward: set = field(default_factory=set)  # the model's own nodes
    grads: dict = field(default_factory=dict)  # ir.Value -> its gradient (a parameter's: its updated slice)

    def needs(self, value: ir.Value | None) -> bool:
        return value is not None and value in self.requires

    def param_slice(self, value: ir.Value) -> ParamUpdate | None:
        """The ParamUpdate of a partially updated parameter, else None."""
        update = self.params.get(value.name) if value.is_graph_input() else None
        return update if update is not None and update.indices is not None else None

    def accumulate(self, value: ir.Value, g: ir.Value) -> None:
        update = self.param_slice(value)
        if update is not None and shape_of(g) == update.shape:  # a rule gave the whole gradient: keep the slice
            g = self.gather(g, update.indices, update.axis)
        previous = self.grads.get(value)
        self.grads[value] = g if previous is None else self.binary("Add", previous, g)


# ---- gradient rules: (ctx, node, output gradients) -> one gradient per input (None: not needed) ---------------

def _conv_attrs(node: ir.Node, shape_x, shape_w) -> dict:
    strides = list(node.attributes.get_ints("strides", [1, 1]))
    dilations = list(node.attributes.get_ints("dilations", [1, 1]))
    return {"group": node.attributes.get_int("group", 1), "strides": strides, "dilations": dilations,
            "pads": spatial_pads(node, shape_x[2:], shape_w[2:], strides, dilations)}


def _bias_grad(ctx: Autodiff, bias: ir.Value, dy: ir.Value) -> ir.Value:
    """A per-channel bias's gradient: dy summed over batch and space (only the updated channels')."""
    update = ctx.param_slice(bias)
    dy_b = ctx.gather(dy, update.indices, 1) if update is not None else dy
    return ctx.reshape(ctx.reduce_sum(dy_b, [0, 2, 3]), [shape_of(dy_b)[1]])


def conv(ctx: Autodiff, node: ir.Node, dys):
    x, w = node.inputs[0], node.inputs[1]
    bias = node.inputs[2] if len(node.inputs) > 2 else None
    dy, sx, sw = dys[0], shape_of(x), shape_of(w)
    if len(sx) != 4:
        raise Unsupported("only 2-D convolution has a gradient rule")
    attrs = _conv_attrs(node, sx, sw)
    grads = [None] * len(node.inputs)
    if ctx.needs(x):
        grads[0] = ctx.op("ConvGradInput", [dy, w], sx, attrs, TRAIN_DOMAIN)
    if ctx.needs(w):
        update, x_w, dy_w, shape = ctx.param_slice(w), x, dy, list(sw)
        if update is not None:  # only the selected output channels' gradient
            dy_w, shape[0] = ctx.gather(dy, update.indices, 1), len(update.indices)
            if attrs["group"] > 1:
                if not attrs["group"] == sx[1] == sw[0]:
                    raise Unsupported("partial channels of a grouped (not depthwise) convolution")
                x_w, attrs = ctx.gather(x, update.indices, 1), {**attrs, "group": len(update.indices)}
        grads[1] = ctx.op("ConvGradWeight", [x_w, dy_w], shape, attrs, TRAIN_DOMAIN)
    if ctx.needs(bias):
        grads[2] = _bias_grad(ctx, bias, dy)
    return grads


def conv_transpose(ctx: Autodiff, node: ir.Node, dys):
    """ConvTranspose is the adjoint of a Conv from its output's shape to its input's with the same weight, strides,
    dilations, group and begin pads: dx is that Conv of dy, dw that Conv's weight gradient with dy as its input."""
    x, w = node.inputs[0], node.inputs[1]
    bias = node.inputs[2] if len(node.inputs) > 2 else None
    dy, sx, sw, sy = dys[0], shape_of(x), shape_of(w), shape_of(node.outputs[0])
    if len(sx) != 4:
        raise Unsupported("only 2-D ConvTranspose has a gradient rule")
    strides = list(node.attributes.get_ints("strides", [1, 1]))
    dilations = list(node.attributes.get_ints("dilations", [1, 1]))
    group = node.attributes.get_int("group", 1)
    begin = conv_transpose_begin_pads(node, sx, sy, sw[2:], strides, dilations)
    end, crop = [], []
    for i in range(2):  # the Conv's end pad: its output must have x's size (any pad in [low, low + stride) does)
        low = strides[i] * (sx[2 + i] - 1) + dilations[i] * (sw[2 + i] - 1) + 1 - begin[i] - sy[2 + i]
        end.append(max(low, 0))
        crop.append(max(-low - strides[i] + 1, 0))  # output_padding past the last input's reach: no x reads it
    attrs = {"group": group, "strides": strides, "dilations": dilations, "pads": begin + end}
    dy_in = dy
    if any(crop):
        ends = ctx.const(np.array([sy[2] - crop[0], sy[3] - crop[1]], np.int64), "ends")
        dy_in = ctx.op("Slice", [dy, ctx.const(np.zeros(2, np.int64), "starts"), ends,
                                 ctx.const(np.array([2, 3], np.int64), "axes")],
                       sy[:2] + (sy[2] - crop[0], sy[3] - crop[1]))
    grads = [None] * len(node.inputs)
    if ctx.needs(x):
        grads[0] = ctx.op("Conv", [dy_in, w], sx, attrs)
    if ctx.needs(w):
        update, dy_w, shape = ctx.param_slice(w), dy_in, list(sw)
        if update is not None and update.axis == 1 and group == 1:  # only the selected output channels' gradient
            dy_w, shape[1] = ctx.gather(dy_in, update.indices, 1), len(update.indices)
        grads[1] = ctx.op("ConvGradWeight", [dy_w, x], shape, attrs, TRAIN_DOMAIN)
    if ctx.needs(bias):
        grads[2] = _bias_grad(ctx, bias, dy)
    return grads


def matmul(ctx: Autodiff, node: ir.Node, dys):
    a, b = node.inputs
    dy, sa, sb = dys[0], shape_of(a), shape_of(b)
    if len(sa) < 2 or len(sb) < 2:
        raise Unsupported("a 1-D MatMul operand has no gradient rule")
    swap = lambda r: list(range(r - 2)) + [r - 1, r - 2]  # noqa: E731
    grads = [None, None]
    source = b.producer()
    transposed = is_standard(source, "Transpose") and list(source.attributes.get_ints("perm", [])) == swap(len(sb))
    if ctx.needs(a):
        # B transposed for the forward (a Gemm weight): read the original, keep no copy alive
        bt = source.inputs[0] if transposed else ctx.transpose(b, swap(len(sb)))
        out = tuple(np.broadcast_shapes(shape_of(dy)[:-2], sb[:-2])) + (shape_of(dy)[-2], sb[-2])
        grads[0] = ctx.unbroadcast(ctx.op("MatMul", [dy, bt], out), sa)
    if ctx.needs(b):
        if len(sb) == 2:  # a layer's weight: every leading axis of A is a row
            rows = int(np.prod(sa[:-1]))
            a2, dy2 = ctx.reshape(a, (rows, sa[-1])), ctx.reshape(dy, (rows, sb[1]))
            # partial channels: the weight's output columns, or the rows of a weight transposed for the forward
            update, axis = ctx.param_slice(b), 1
            if update is None and transposed and source.inputs[0].is_graph_input():
                update, axis = ctx.param_slice(source.inputs[0]), 0
            if update is not None:
                if update.axis != axis:
                    raise Unsupported("partial channels of a layer weight are its output channels")
                dy2 = ctx.gather(dy2, update.indices, 1)
            grads[1] = ctx.op("MatMul", [ctx.transpose(a2, [1, 0]), dy2], (sa[-1], shape_of(dy2)[1]))
        else:
            at = ctx.transpose(a, swap(len(sa)))
            out = tuple(np.broadcast_shapes(sa[:-2], shape_of(dy)[:-2])) + (sa[-1], shape_of(dy)[-1])
            grads[1] = ctx.unbroadcast(ctx.op("MatMul", [at, dy], out), sb)
    return grads


def binary(ctx: Autodiff, node: ir.Node, dys):
    a, b = node.inputs
    dy, op = dys[0], node.op_type
    grads = [None, None]
    if ctx.needs(a):
        ga = dy if op in ("Add", "Sub") else ctx.binary(op, dy, b)
        grads[0] = ctx.unbroadcast(ga, shape_of(a))
    if ctx.needs(b):
        if op == "Add":
            gb = dy
        elif op == "Sub":
            gb = ctx.op("Neg", [dy], shape_of(dy))
        elif op == "Mul":
            gb = ctx.binary("Mul", dy, a)
        else:  # d(a / b) / db = -dy * a / b^2
            q = ctx.binary("Div", ctx.binary("Div", ctx.binary("Mul", dy, a), b), b)
            gb = ctx.op("Neg", [q], shape_of(q))
        grads[1] = ctx.unbroadcast(gb, shape_of(b))
    return grads


def extremum(ctx: Autodiff, node: ir.Node, dys):
    """Max/Min: each input equal to the result gets dy shared evenly among the tied ones (torch.maximum gives
    each of two tied inputs half; amax/amin share among all)."""
    y, dy = node.outputs[0], dys[0]
    if len(node.inputs) == 1:
        return [dy]
    masks = [ctx.op("Cast", [ctx.op("Equal", [x, y], shape_of(y), dtype=ir.DataType.BOOL)], shape_of(y),
                    {"to": int(ir.DataType.FLOAT)}) for x in node.inputs]
    count = masks[0]
    for mask in masks[1:]:
        count = ctx.binary("Add", count, mask)
    share = ctx.binary("Div", dy, count)
    return [ctx.unbroadcast(ctx.binary("Mul", share, mask), shape_of(x)) if ctx.needs(x) else None
            for x, mask in zip(node.inputs, masks)]


def where(ctx: Autodiff, node: ir.Node, dys):
    """dy goes to the input the condition picked (the condition itself has no gradient)."""
    condition, a, b = node.inputs
    dy, zero = dys[0], ctx.const(np.float32(0), "zero")
    grads = [None, None, None]
    for i, picked in ((1, [condition, dy, zero]), (2, [condition, zero, dy])):
        if ctx.needs(node.inputs[i]):
            grads[i] = ctx.unbroadcast(ctx.op("Where", picked, shape_of(dy)), shape_of(node.inputs[i]))
    return grads


def activation(ctx: Autodiff, node: ir.Node, dys):
    act = activation_of(node)
    if act is None:
        raise Unsupported("Clip bounds must be constant")
    kind, alpha, beta = act
    if kind not in DIFFERENTIABLE:  # a sparsec Activation of another kind
        raise Unsupported(f"no gradient rule for activation {kind.name}")
    attrs = {"activation": int(kind), "act_alpha": float(alpha), "act_beta": float(beta)}
    source = node.inputs[0]
    if kind in (Activation.RELU, Activation.CLIP):
        # The output decides the mask as well as the input does. If no backward node reads it (the layers after
        # are frozen), a 1-byte mask made in the forward replaces it and the activation is freed early.
        source = node.outputs[0]
        if not any(use.node not in ctx.forward for use in source.uses()):
            mask = Emitter(ctx.graph, label=ctx.label, before=_next_node(ctx, node))
            source = mask.op("ActivationMask", [source], shape_of(source), attrs, TRAIN_DOMAIN, ir.DataType.UINT8)
    dx = ctx.op("ActivationGrad", [dys[0], source], shape_of(node.inputs[0]), attrs, TRAIN_DOMAIN)
    return [dx] + [None] * (len(node.inputs) - 1)


def _next_node(ctx: Autodiff, node: ir.Node) -> ir.Node:
    """The node after node in the graph (there is always one: the loss follows the forward)."""
    nodes = list(ctx.graph)
    return nodes[nodes.index(node) + 1]


def erf(ctx: Autodiff, node: ir.Node, dys):
    x = node.inputs[0]
    shape = shape_of(x)
    neg_square = ctx.op("Neg", [ctx.binary("Mul", x, x)], shape)
    slope = ctx.binary("Mul", ctx.op("Exp", [neg_square], shape), ctx.const(np.float32(2 / math.sqrt(math.pi)), "k"))
    return [ctx.binary("Mul", dys[0], slope)]


def sqrt(ctx: Autodiff, node: ir.Node, dys):
    twice = ctx.binary("Mul", node.outputs[0], ctx.const(np.float32(2.0), "two"))
    return [ctx.binary("Div", dys[0], twice)]


def power(ctx: Autodiff, node: ir.Node, dys):
    x, exponent = node.inputs
    p = const_array(exponent)
    if p is None or p.size != 1 or ctx.needs(exponent):
        raise Unsupported("Pow has a gradient rule for a constant scalar exponent only")
    p = float(p.reshape(-1)[0])
    slope = ctx.binary("Pow", x, ctx.const(np.float32(p - 1), "exponent")) if p != 2 else x
    slope = ctx.binary("Mul", slope, ctx.const(np.float32(p), "p"))
    return [ctx.binary("Mul", dys[0], slope), None]


def _reduce_axes(node: ir.Node, rank: int) -> list[int]:
    if node.op_type.startswith("Global"):
        return list(range(2, rank))
    axes = node.attributes.get_ints("axes", None)
    if axes is None:
        data = const_array(node.inputs[1]) if len(node.inputs) > 1 and node.inputs[1] is not None else None
        axes = [] if data is None else data.reshape(-1).tolist()
    if not axes and node.attributes.get_int("noop_with_empty_axes", 0):
        return []
    return sorted(axis_of(int(a), rank) for a in axes) if axes else list(range(rank))


def reduce(ctx: Autodiff, node: ir.Node, dys):
    x = node.inputs[0]
    shape = shape_of(x)
    axes = _reduce_axes(node, len(shape))
    keep = tuple(1 if d in axes else n for d, n in enumerate(shape))
    g = ctx.op("Expand", [ctx.reshape(dys[0], keep), ctx.const(np.array(shape, np.int64), "shape")], shape)
    if node.op_type in ("ReduceMean", "GlobalAveragePool"):
        count = int(np.prod([shape[a] for a in axes]))
        g = ctx.binary("Mul", g, ctx.const(np.float32(1.0 / count), "inverse_count"))
    return [g] + [None] * (len(node.inputs) - 1)


def pool(ctx: Autodiff, node: ir.Node, dys):
    x = node.inputs[0]
    shape = shape_of(x)
    if len(shape) != 4:
        raise Unsupported("only 2-D pooling has a gradient rule")
    kernel = list(node.attributes.get_ints("kernel_shape"))
    strides = list(node.attributes.get_ints("strides", [1, 1]))
    dilations = list(node.attributes.get_ints("dilations", [1, 1]))
    attrs = {"kind": int(PoolKind.MAX if node.op_type == "MaxPool" else PoolKind.AVERAGE), "kernel": kernel,
             "strides": strides, "pads": spatial_pads(node, shape[2:], kernel, strides, dilations),
             "dilations": dilations, "count_include_pad": node.attributes.get_int("count_include_pad", 0)}
    return [ctx.op("PoolGrad", [x, dys[0]], shape, attrs, TRAIN_DOMAIN)]


def reshape(ctx: Autodiff, node: ir.Node, dys):
    return [ctx.reshape(dys[0], shape_of(node.inputs[0]))] + [None] * (len(node.inputs) - 1)


def transpose(ctx: Autodiff, node: ir.Node, dys):
    rank = len(shape_of(node.inputs[0]))
    perm = node.attributes.get_ints("perm", list(range(rank))[::-1])
    return [ctx.transpose(dys[0], [int(i) for i in np.argsort(perm)])]


def concat(ctx: Autodiff, node: ir.Node, dys):
    rank = len(shape_of(node.outputs[0]))
    axis = axis_of(node.attributes.get_int("axis"), rank)
    grads, offset = [], 0
    for value in node.inputs:
        size = shape_of(value)[axis]
        if ctx.needs(value):
            window = [ctx.const(np.array([v], np.int64), n) for v, n in ((offset, "start"), (offset + size, "end"), (axis, "axis"))]
            grads.append(ctx.op("Slice", [dys[0], *window], shape_of(value)))
        else:
            grads.append(None)
        offset += size
    return grads


def split(ctx: Autodiff, node: ir.Node, dys):
    axis = axis_of(node.attributes.get_int("axis", 0), len(shape_of(node.inputs[0])))
    parts = [g if g is not None else ctx.const(np.zeros(shape_of(o), np.float32), "zeros")
             for g, o in zip(dys, node.outputs)]
    return [ctx.op("Concat", parts, shape_of(node.inputs[0]), {"axis": axis})] + [None] * (len(node.inputs) - 1)


def _spread(ctx: Autodiff, g: ir.Value, axis: int, step: int) -> ir.Value:
    """g with step - 1 zeros after each entry along axis (length n * step)."""
    shape = shape_of(g)
    column = ctx.reshape(g, shape[:axis + 1] + (1,) + shape[axis + 1:])
    pads = [0] * (2 * len(shape) + 2)
    pads[len(shape) + 1 + axis + 1] = step - 1
    wide = shape[:axis + 1] + (step,) + shape[axis + 1:]
    padded = ctx.op("Pad", [column, ctx.const(np.array(pads, np.int64), "pads")], wide)
    return ctx.reshape(padded, shape[:axis] + (shape[axis] * step,) + shape[axis + 1:])


def slice_(ctx: Autodiff, node: ir.Node, dys):
    """dy placed back where the Slice read it, zeros elsewhere: reversed along negative steps, spread along steps
    above 1, then padded (negative end pads crop a spread's trailing zeros)."""
    shape, g = shape_of(node.inputs[0]), dys[0]
    begin, steps, lengths = slice_window(node)
    if 0 in lengths:
        return [ctx.const(np.zeros(shape, np.float32), "zeros")] + [None] * (len(node.inputs) - 1)
    ends = []
    for axis, (dim, n) in enumerate(zip(shape, lengths)):
        step = steps[axis] if n > 1 else 1
        if step < 0:  # the entries read, in ascending order, start at the last one read
            g = ctx.gather(g, list(range(n - 1, -1, -1)), axis)
            begin[axis], step = begin[axis] + (n - 1) * step, -step
        if step > 1:
            g = _spread(ctx, g, axis, step)
        ends.append(dim - begin[axis] - n * step)
    pads = begin + ends
    return [ctx.op("Pad", [g, ctx.const(np.array(pads, np.int64), "pads")], shape)] + [None] * (len(node.inputs) - 1)


def pad(ctx: Autodiff, node: ir.Node, dys):
    """Constant mode: dx is dy with the pads taken off again (negative pads: the cropped entries get zeros)."""
    mode = node.attributes.get_string("mode", "constant")
    if mode != "constant":
        raise Unsupported(f"Pad mode '{mode}' has no gradient rule (constant mode only)")
    if len(node.inputs) > 2 and ctx.needs(node.inputs[2]):
        raise Unsupported("a trainable pad value has no gradient rule")
    rank_ = len(shape_of(node.inputs[0]))
    pads = const_array(node.inputs[1])
    axes = const_array(node.inputs[3]) if len(node.inputs) > 3 and node.inputs[3] is not None else np.arange(rank_)
    if pads is None or axes is None:
        raise Unsupported("Pad's pads and axes must be constant")
    full = [0] * (2 * rank_)
    pads, axes = pads.reshape(-1).tolist(), axes.reshape(-1).tolist()
    for k, axis in enumerate(axes):
        axis = axis_of(int(axis), rank_)
        full[axis], full[rank_ + axis] = -int(pads[k]), -int(pads[k + len(axes)])
    dx = ctx.op("Pad", [dys[0], ctx.const(np.array(full, np.int64), "pads")], shape_of(node.inputs[0]))
    return [dx] + [None] * (len(node.inputs) - 1)


def gather(ctx: Autodiff, node: ir.Node, dys):
    """Rows of dy summed into the gathered rows (GatherGrad); another axis is moved to the front and back."""
    data, indices = node.inputs
    shape = shape_of(data)
    axis, k = axis_of(node.attributes.get_int("axis", 0), len(shape)), len(shape_of(indices))
    rest = shape[:axis] + shape[axis + 1:]
    front = list(range(axis, axis + k)) + list(range(axis)) + list(range(axis + k, len(shape_of(dys[0]))))
    table = ctx.op("GatherGrad", [indices, ctx.transpose(dys[0], front)], (shape[axis],) + rest, None, TRAIN_DOMAIN)
    return [ctx.transpose(table, list(range(1, axis + 1)) + [0] + list(range(axis + 1, len(shape)))), None]


def resize(ctx: Autodiff, node: ir.Node, dys):
    """Resize is one interpolation matrix per axis (the lowering's tables): dx applies each transposed."""
    g = dys[0]
    for axis, table in resize_tables(node).items():
        if np.isnan(table).any():
            raise Unsupported("tf_crop_and_resize's extrapolated outputs have no gradient rule")
        shape, table = list(shape_of(g)), table.astype(np.float32)
        last = len(shape) - 1
        if axis == last - 1:  # [in, out] @ g: rows of the axis before last
            shape[axis] = table.shape[1]
            g = ctx.op("MatMul", [ctx.const(np.ascontiguousarray(table.T), "resize_t"), g], shape)
            continue
        swap = list(range(len(shape)))
        swap[axis], swap[last] = last, axis
        moved = ctx.transpose(g, swap)
        product = ctx.op("MatMul", [moved, ctx.const(table, "resize")], shape_of(moved)[:-1] + (table.shape[1],))
        g = ctx.transpose(product, swap)
    return [g] + [None] * (len(node.inputs) - 1)


def layer_norm(ctx: Autodiff, node: ir.Node, dys):
    x, scale = node.inputs[0], node.inputs[1]
    bias = node.inputs[2] if len(node.inputs) > 2 else None
    shape, dy = shape_of(x), dys[0]
    axis = axis_of(node.attributes.get_int("axis", -1), len(shape))
    epsilon = node.attributes.get_float("epsilon", 1e-5)
    grads = [None] * len(node.inputs)
    if ctx.needs(x):
        grads[0] = ctx.op("LayerNormGrad", [x, scale, dy], shape, {"axis": axis, "epsilon": epsilon}, TRAIN_DOMAIN)
    if ctx.needs(scale):
        norm = shape[axis:]
        xhat = ctx.op("LayerNormalization", [x, ctx.const(np.ones(norm, np.float32), "ones"),
                                             ctx.const(np.zeros(norm, np.float32), "zeros")], shape,
                      {"axis": axis, "epsilon": epsilon})
        grads[1] = ctx.unbroadcast(ctx.binary("Mul", dy, xhat), shape_of(scale))
    if ctx.needs(bias):
        grads[2] = ctx.unbroadcast(dy, shape_of(bias))
    return grads


def group_norm(ctx: Autodiff, node: ir.Node, dys):
    """Instance/GroupNormalization as LayerNorm over each group viewed as [N, G, rest]: dx = LayerNormGrad of
    dy * scale (scale per channel), dscale = sum of dy * xhat, dbias = sum of dy."""
    x, scale, bias = node.inputs[:3]
    shape, dy = shape_of(x), dys[0]
    channels = shape[1]
    groups = channels if node.op_type == "InstanceNormalization" else node.attributes.get_int("num_groups")
    epsilon = node.attributes.get_float("epsilon", 1e-5)
    flat = (shape[0], groups, int(np.prod(shape[1:])) // groups)
    channel, sums = (channels,) + (1,) * (len(shape) - 2), [0] + list(range(2, len(shape)))
    grads = [None] * len(node.inputs)
    if int(np.prod(shape_of(scale))) != channels:  # GroupNormalization-18 (one per group) fails onnx.checker
        raise Unsupported("the gradient rule needs a scale per channel")
    if ctx.needs(x):
        gamma = ctx.reshape(scale, channel)
        ones = ctx.const(np.ones(flat[2:], np.float32), "ones")
        dx = ctx.op("LayerNormGrad", [ctx.reshape(x, flat), ones, ctx.reshape(ctx.binary("Mul", dy, gamma), flat)],
                    flat, {"axis": 2, "epsilon": epsilon}, TRAIN_DOMAIN)
        grads[0] = ctx.reshape(dx, shape)
    if ctx.needs(scale):
        xhat = ctx.op("LayerNormalization", [ctx.reshape(x, flat), ctx.const(np.ones(flat[2:], np.float32), "ones"),
                                             ctx.const(np.zeros(flat[2:], np.float32), "zeros")], flat,
                      {"axis": 2, "epsilon": epsilon})
        product = ctx.binary("Mul", dy, ctx.reshape(xhat, shape))
        grads[1] = ctx.reshape(ctx.reduce_sum(product, sums), shape_of(scale))
    if ctx.needs(bias):
        grads[2] = ctx.reshape(ctx.reduce_sum(dy, sums), shape_of(bias))
    return grads


def softmax(ctx: Autodiff, node: ir.Node, dys):
    y, dy = node.outputs[0], dys[0]
    axis = axis_of(node.attributes.get_int("axis", -1), len(shape_of(y)))
    if node.op_type == "LogSoftmax":  # dx = dy - exp(y) * sum(dy)
        shape = shape_of(y)
        return [ctx.binary("Sub", dy, ctx.binary("Mul", ctx.op("Exp", [y], shape), ctx.reduce_sum(dy, [axis])))]
    return [ctx.binary("Mul", ctx.binary("Sub", dy, ctx.reduce_sum(ctx.binary("Mul", dy, y), [axis])), y)]


def batch_norm(ctx: Autodiff, node: ir.Node, dys):
    """Eval-mode BatchNormalization with frozen parameters: dx = dy * gamma / sqrt(var + eps)."""
    x = node.inputs[0]
    gamma, var = const_array(node.inputs[1]), const_array(node.inputs[4])
    if gamma is None or var is None:
        raise Unsupported("BatchNormalization parameters must be constant")
    scale = gamma / np.sqrt(var + np.float32(node.attributes.get_float("epsilon", 1e-5)))
    scale = scale.astype(np.float32).reshape((-1,) + (1,) * (len(shape_of(x)) - 2))
    return [ctx.binary("Mul", dys[0], ctx.const(scale, "bn_scale"))] + [None] * 4


def identity(ctx: Autodiff, node: ir.Node, dys):
    if node.op_type == "Cast" and node.inputs[0].dtype != ir.DataType.FLOAT:
        raise Unsupported("a gradient through a Cast from a non-float type")
    return [dys[0]] + [None] * (len(node.inputs) - 1)


def expand(ctx: Autodiff, node: ir.Node, dys):
    return [ctx.unbroadcast(dys[0], shape_of(node.inputs[0])), None]


ACTIVATIONS = ("Relu", "Clip", "HardSwish", "HardSigmoid", "Sigmoid", "Tanh", "Gelu", "LeakyRelu", "Elu", "Softplus")
# The kinds ActivationGrad differentiates (runtime: activation_differentiable).
DIFFERENTIABLE = {Activation.RELU, Activation.CLIP, Activation.HARD_SWISH, Activation.HARD_SIGMOID, Activation.SIGMOID,
                  Activation.SILU, Activation.GELU, Activation.GELU_TANH, Activation.TANH, Activation.LEAKY_RELU,
                  Activation.ELU, Activation.SOFTPLUS}
GRADIENTS = {
    "Conv": conv, "MatMul": matmul, "Add": binary, "Sub": binary, "Mul": binary, "Div": binary,
    **{op: activation for op in ACTIVATIONS}, "Erf": erf, "Sqrt": sqrt, "Pow": power,
    "ReduceMean": reduce, "ReduceSum": reduce, "GlobalAveragePool": reduce, "MaxPool": pool, "AveragePool": pool,
    "Reshape": reshape, "Flatten": reshape, "Squeeze": reshape, "Unsqueeze": reshape, "Transpose": transpose,
    "Concat": concat, "Split": split, "Slice": slice_, "Gather": gather, "LayerNormalization": layer_norm,
    "Softmax": softmax, "LogSoftmax": softmax, "BatchNormalization": batch_norm, "Identity": identity,
    "Cast": identity, "Expand": expand, "ConvTranspose": conv_transpose, "InstanceNormalization": group_norm,
    "GroupNormalization": group_norm, "Max": extremum, "Min": extremum, "Where": where, "Pad": pad, "Resize": resize,
}


# ---- the training graph ------------------------------------------------------------------------------------

def _loss_node(ctx: Autodiff, pred: ir.Value, loss: str) -> tuple[ir.Value, ir.Value, ir.Value]:
    """(labels input, loss [1], dpred): labels are int64 [N] for cross entropy, else pred's shape."""
    shape = shape_of(pred)
    if loss == "cross_entropy":
        if len(shape) != 2:
            raise InputError(f"cross_entropy takes logits [N, classes]; the model's output '{pred.name}' is {list(shape)}")
        labels = ir.Value(name=LABELS, shape=ir.Shape([shape[0]]), type=ir.TensorType(ir.DataType.INT64))
    else:
        labels = ir.Value(name=LABELS, shape=ir.Shape(shape), type=ir.TensorType(ir.DataType.FLOAT))
    ctx.graph.inputs.append(labels)
    from sparsec.contract.schema import LossKind

    ctx.count += 1
    node = ir.node("Loss", [pred, labels], {"kind": int(LossKind[loss.upper()])}, domain=TRAIN_DOMAIN, num_outputs=2,
                   name="loss")
    for out, name, s in zip(node.outputs, ("loss", "loss/dpred"), ((1,), shape)):
        out.name, out.shape, out.type = name, ir.Shape(s), ir.TensorType(ir.DataType.FLOAT)
    ctx.graph.append(node)
    return labels, node.outputs[0], node.outputs[1]


@dataclass
class BackwardResult:
    loss: ir.Value
    gradients: dict[str, ir.Value]  # parameter name -> its gradient (the updated slice)


def gradient_rule(node: ir.Node):
    """node's rule in GRADIENTS; sparsec's Activation (GELU fused before the backward) is an activation."""
    if node.domain == FUSED_DOMAIN and node.op_type == "Activation":
        return activation
    return GRADIENTS.get(node.op_type) if is_standard(node) else None


def add_backward(model: ir.Model, params: dict[str, ParamUpdate], loss: str, optimizer: Optimizer) -> BackwardResult:
    """Appends loss, backward and update nodes to model (whose trainable parameters are graph inputs)."""
    graph = model.graph
    if len(graph.outputs) != 1:
        raise InputError(f"training needs a model with one output (the loss's input); this one has "
                         f"{[v.name for v in graph.outputs]}")
    pred = graph.outputs[0]
    ctx = Autodiff(graph, label="backward", params=params, requires=requires_grad(graph, set(params)),
                   forward=set(graph))
    if pred not in ctx.requires:
        raise InputError("no updated parameter affects the model's output: nothing would train")
    forward = list(graph)
    uses = {v: len({id(u.node) for u in v.uses()}) for v in graph.inputs if v.name in params}
    _, loss_value, dpred = _loss_node(ctx, pred, loss)
    ctx.grads[pred] = dpred
    unsupported, gradients = [], {}
    for index in range(len(forward) - 1, -1, -1):
        node = forward[index]
        out_grads = [ctx.grads.get(o) for o in node.outputs]
        if any(g is not None for g in out_grads) and any(ctx.needs(v) for v in node.inputs):
            ctx.label = node_label(node, index)
            rule = gradient_rule(node)
            try:
                if rule is None:
                    raise Unsupported("no gradient rule for this op")
                for value, g in zip(node.inputs, rule(ctx, node, out_grads)):
                    if g is not None and ctx.needs(value):
                        ctx.accumulate(value, g)
            except Unsupported as e:
                unsupported.append((ctx.label, op_label(node), f"(gradient) {e}"))
        for value in dict.fromkeys(v for v in node.inputs if v in uses):
            uses[value] -= 1
            if uses[value] == 0 and value in ctx.grads:  # the last reader has run: update in place now
                gradients[value.name] = _emit_update(ctx, value, optimizer)
    if unsupported:
        raise UnsupportedOpError(unsupported)
    missing = [name for name in params if name not in gradients]
    if missing:
        raise InputError(f"updated parameter(s) {missing} do not affect the loss")
    graph.outputs.clear()
    graph.outputs.extend([loss_value, *gradients.values()])
    return BackwardResult(loss_value, gradients)


def _emit_update(ctx: Autodiff, param: ir.Value, optimizer: Optimizer) -> ir.Value:
    update = ctx.params[param.name]
    grad = ctx.grads[param]
    ctx.label = f"update/{param.name}"
    indices = ctx.const(np.array(update.indices, np.int64), "indices") if update.indices is not None else None
    op_type = "SgdUpdate" if optimizer.kind == "sgd" else "AdamwUpdate"
    ctx.op(op_type, [grad, indices, param], (), {"axis": update.axis, **optimizer.params}, TRAIN_DOMAIN, outputs=0)
    return grad
