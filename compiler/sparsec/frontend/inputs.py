"""Graph inputs before shape inference: tensors only, --input-shape for any dim, --fix-input constants, no stale shapes."""

from __future__ import annotations

import logging

import numpy as np
import onnx
import onnx_ir as ir
from onnx import numpy_helper

from sparsec.errors import ShapeError, UnsupportedInputError

log = logging.getLogger("sparsec")


def parse_fixed_inputs(specs: list[str] | None) -> dict[str, list[float | int]]:
    """["sr=16000", "k=1,2"] -> {"sr": [16000], "k": [1, 2]} (the values of --fix-input, flat)."""
    fixed = {}
    for spec in specs or []:
        name, sep, values = spec.partition("=")
        try:
            if not sep or not name:
                raise ValueError
            fixed[name] = [_number(v) for v in values.split(",")]
        except ValueError:
            raise ShapeError(f"--fix-input '{spec}' is not of the form name=value[,value...] (e.g. sr=16000)") from None
    return fixed


def _number(text: str) -> float | int:
    text = text.strip()
    try:
        return int(text)
    except ValueError:
        return float(text)


def _dims(value: onnx.ValueInfoProto) -> list[int | str] | None:
    """Declared dims (int, or the symbol / '?' of an unknown or negative one); None if the shape is unknown."""
    tensor_type = value.type.tensor_type
    if not tensor_type.HasField("shape"):
        return None
    return [d.dim_value if d.HasField("dim_value") and d.dim_value >= 0 else (d.dim_param or "?")
            for d in tensor_type.shape.dim]


def _kind(type_proto: onnx.TypeProto) -> str:
    kind = type_proto.WhichOneof("value")
    return {"sequence_type": "a sequence", "optional_type": "an optional", "map_type": "a map",
            "sparse_tensor_type": "a sparse tensor"}.get(kind, kind or "untyped")


def check_tensor_values(graph: onnx.GraphProto) -> None:
    """Every graph input and output must be a (dense) tensor: the runtime has no sequence, optional or map values."""
    bad = [f"{role} '{v.name}' is {_kind(v.type)} ({ir.serde.deserialize_type_proto_for_type(v.type)})"
           for role, values in (("input", graph.input), ("output", graph.output)) for v in values
           if not v.type.HasField("tensor_type")]
    if bad:
        raise UnsupportedInputError(
            "; ".join(bad) + ": sparsec compiles models whose inputs and outputs are tensors (no sequence, optional "
            "or map values); export the model with tensor inputs and outputs")


def clear_negative_dims(graph: onnx.GraphProto) -> dict[str, list[int]]:
    """A dim_value of -1 (as paddle2onnx writes) means unknown: make it an unknown dim; returns the inputs' old dims."""
    negative = {}
    for value in [*graph.input, *graph.output, *graph.value_info]:
        dims = value.type.tensor_type.shape.dim if value.type.HasField("tensor_type") else ()
        if any(d.HasField("dim_value") and d.dim_value < 0 for d in dims) and value in graph.input:
            negative[value.name] = [d.dim_value if d.HasField("dim_value") else d.dim_param or "?" for d in dims]
        for dim in dims:
            if dim.HasField("dim_value") and dim.dim_value < 0:
                dim.Clear()
    return negative


def clear_inferred_shapes(graph: onnx.GraphProto) -> None:
    """Drops value_info and the outputs' shapes (keeping dtypes): they describe the model's old input shapes."""
    del graph.value_info[:]
    for value in graph.output:
        if value.type.HasField("tensor_type"):
            value.type.tensor_type.ClearField("shape")


def set_input_shapes(inputs: dict[str, onnx.ValueInfoProto], shapes: dict[str, list[int]]) -> list[str]:
    """Replaces the whole shape of each named input, symbolic, unknown or static (a static one with a note).
    Returns a note per input whose static dims changed."""
    replaced = []
    for name, dims in shapes.items():
        old = _dims(inputs[name])
        if old is not None and len(old) != len(dims):
            raise ShapeError(f"--input-shape {name}: rank {len(dims)} given, the model's input has rank {len(old)}")
        if old is not None and any(isinstance(o, int) and o != d for o, d in zip(old, dims)):
            replaced.append(f"--input-shape {name}: replacing the model's static shape {old} by {dims}")
            log.warning("%s", replaced[-1])
        tensor_type = inputs[name].type.tensor_type
        tensor_type.shape.Clear()
        for d in dims:
            tensor_type.shape.dim.add().dim_value = d
    return replaced


def check_replaced_shapes(proto: onnx.ModelProto, replaced: list[str]) -> None:
    """After static dims were replaced, the model must still infer: else it hard-codes its old shape somewhere."""
    try:
        onnx.shape_inference.infer_shapes(proto, check_type=True, strict_mode=True, data_prop=True)
    except Exception as e:  # onnx raises InferenceError and friends
        raise ShapeError("; ".join(replaced) + ": the model does not compute with the new shape (it hard-codes the old "
                         f"one, e.g. in a Reshape): {str(e).splitlines()[0]}") from None


def fixed_array(value_info: onnx.ValueInfoProto, value) -> np.ndarray:
    """The constant for a fixed input, in the input's dtype: a numpy array keeps its shape (it must fit the declared
    one); numbers and flat lists fill the declared shape (one unknown dim is inferred from the count)."""
    name = value_info.name
    dtype = onnx.helper.tensor_dtype_to_np_dtype(value_info.type.tensor_type.elem_type)
    source = np.asarray(value)
    array = source.astype(dtype)
    if not np.array_equal(array, source):
        raise ShapeError(f"fixed input '{name}': {value!r} is not exactly representable as {dtype}")
    declared = _dims(value_info)
    if isinstance(value, np.ndarray):
        fits = declared is None or (len(declared) == array.ndim and all(
            not isinstance(d, int) or d == n for d, n in zip(declared, array.shape)))
        if not fits:
            raise ShapeError(f"fixed input '{name}': shape {list(array.shape)} does not fit the model's {declared}")
        return array
    if declared is None:
        return array.reshape(()) if array.size == 1 else array.ravel()
    target = [d if isinstance(d, int) else -1 for d in declared]
    try:
        return array.reshape(target)
    except ValueError:
        raise ShapeError(f"fixed input '{name}': {array.size} value(s) do not fill the model's shape {declared}"
                         " (in Python, pass a numpy array of the shape you mean)") from None


def fix_inputs(graph: onnx.GraphProto, inputs: dict[str, onnx.ValueInfoProto], fixed: dict) -> None:
    """Each fixed input becomes an initializer: it is a constant of the artifact, no longer an input."""
    for name, value in fixed.items():
        array = fixed_array(inputs[name], value)
        graph.input.remove(inputs.pop(name))
        graph.initializer.append(numpy_helper.from_array(array, name))
        log.info("input '%s' fixed to %s %s", name, array.dtype, array.tolist())


def require_static(inputs: dict[str, onnx.ValueInfoProto], negative: dict[str, list[int]]) -> None:
    """Every remaining input has a static shape; else say which (and which declared negative dims) and show an
    --input-shape to try."""
    dynamic = {name: _dims(v) for name, v in inputs.items()
               if _dims(v) is None or any(not isinstance(d, int) for d in _dims(v))}
    if not dynamic:
        return
    shown = ", ".join(f"'{name}' {dims if dims is not None else '(unknown rank)'}" for name, dims in dynamic.items())
    name, dims = next(iter(dynamic.items()))
    example = ",".join(str(d) if isinstance(d, int) else "1" for d in dims) if dims is not None else "d0,d1,..."
    declared = "".join(f"; '{n}' declares {d} (a negative dim is read as unknown)"
                       for n, d in negative.items() if n in dynamic)
    raise ShapeError(f"input(s) with dynamic shape: {shown}{declared}; give static shapes, e.g. --input-shape "
                     f"{name}={example} (Python: input_shapes={{'{name}': [...]}})")


def prepare_inputs(proto: onnx.ModelProto, shapes: dict[str, list[int]] | None = None,
                   fixed: dict | None = None) -> None:
    """In place, before shape inference: tensor inputs/outputs only, shapes given, inputs fixed, stale shapes gone."""
    shapes, fixed = shapes or {}, fixed or {}
    graph = proto.graph
    check_tensor_values(graph)
    initializers = {i.name for i in graph.initializer}
    inputs = {i.name: i for i in graph.input if i.name not in initializers}
    for option, names in (("--input-shape", shapes), ("--fix-input", fixed)):
        unknown = sorted(set(names) - set(inputs))
        if unknown:
            raise ShapeError(f"{option} names unknown input(s) {unknown}; the model's inputs are {sorted(inputs)}")
    both = sorted(set(shapes) & set(fixed))
    if both:
        raise ShapeError(f"input(s) {both} are both shaped and fixed: a fixed input takes its value's shape")
    negative = clear_negative_dims(graph)
    replaced = set_input_shapes(inputs, shapes)
    fix_inputs(graph, inputs, fixed)
    if shapes or fixed:
        clear_inferred_shapes(graph)
    require_static(inputs, negative)
    if replaced:
        check_replaced_shapes(proto, replaced)
