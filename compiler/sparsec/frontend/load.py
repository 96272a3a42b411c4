"""Load an ONNX model: parse, check, lift to a common opset, prepare the inputs (frontend.inputs), infer all shapes."""

from __future__ import annotations

import os

import numpy as np
import onnx
import onnx_ir as ir
from onnx_ir.passes.common import RemoveInitializersFromInputsPass

from sparsec.errors import ModelLoadError, ShapeError
from sparsec.frontend import checks
from sparsec.frontend.inputs import prepare_inputs
from sparsec.naming import STANDARD_DOMAINS

MIN_OPSET = 17  # older models are converted up; the lowering reads opset >= 17 forms


def parse_input_shapes(specs: list[str] | None) -> dict[str, list[int]]:
    """["x=1,3,224,224", ...] -> {"x": [1, 3, 224, 224]}."""
    shapes = {}
    for spec in specs or []:
        name, sep, dims = spec.partition("=")
        try:
            if not sep or not name:
                raise ValueError
            shapes[name] = [int(d) for d in dims.split(",")]
        except ValueError:
            raise ShapeError(f"--input-shape '{spec}' is not of the form name=d0,d1,... (e.g. input=1,3,224,224)") from None
        if any(d <= 0 for d in shapes[name]):
            raise ShapeError(f"--input-shape '{spec}': dimensions must be positive")
    return shapes


def _read(source) -> onnx.ModelProto:
    if isinstance(source, (onnx.ModelProto, ir.Model)):
        proto = source if isinstance(source, onnx.ModelProto) else ir.serde.serialize_model(source)
        checks.read_external_data(proto, None)
        return proto
    path = os.fspath(source)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ModelLoadError(f"cannot read {path}: {e.strerror}") from None
    try:
        proto = onnx.load_model_from_string(data)
    except Exception as e:  # protobuf raises DecodeError and friends
        raise ModelLoadError(f"{path} is not an ONNX model (protobuf parse failed: {e})") from None
    if not proto.graph.node and not proto.graph.output:
        raise ModelLoadError(f"{path} is not an ONNX model (no graph)")
    checks.read_external_data(proto, path)
    return proto


def _default_opset(proto: onnx.ModelProto) -> int:
    for opset in proto.opset_import:
        if opset.domain in STANDARD_DOMAINS:
            return opset.version
    raise ModelLoadError("model imports no default-domain opset")


def _dense_array(sparse: onnx.SparseTensorProto) -> np.ndarray:
    values, indices = onnx.numpy_helper.to_array(sparse.values), onnx.numpy_helper.to_array(sparse.indices)
    array = np.zeros(tuple(sparse.dims), values.dtype)
    try:  # indices: linear [NNZ] or coordinates [NNZ, rank]
        flat = indices if indices.ndim == 1 else np.ravel_multi_index(tuple(indices.T), array.shape)
        array.reshape(-1)[flat] = values
    except (ValueError, IndexError) as e:
        raise ModelLoadError(f"sparse tensor '{sparse.values.name}' is malformed: {e}") from None
    return array


def _densify_sparse_tensors(proto: onnx.ModelProto) -> onnx.ModelProto:
    """Sparse initializers and Constant(sparse_value) as dense tensors: onnx-ir and shape inference skip them."""
    constants = [i for i, n in enumerate(proto.graph.node) if n.op_type == "Constant" and
                 n.domain in STANDARD_DOMAINS and n.attribute and n.attribute[0].name == "sparse_value"]
    if not proto.graph.sparse_initializer and not constants:
        return proto
    dense = onnx.ModelProto()
    dense.CopyFrom(proto)
    for sparse in dense.graph.sparse_initializer:
        dense.graph.initializer.append(onnx.numpy_helper.from_array(_dense_array(sparse), sparse.values.name))
    del dense.graph.sparse_initializer[:]
    for node in (dense.graph.node[i] for i in constants):
        array = _dense_array(node.attribute[0].sparse_tensor)
        del node.attribute[:]
        node.attribute.append(onnx.helper.make_attribute("value", onnx.numpy_helper.from_array(array)))
    return dense


def load_model(source, input_shapes: dict[str, list[int]] | None = None, fixed_inputs: dict | None = None) -> ir.Model:
    """Path, bytes-free ModelProto or ir.Model -> checked ir.Model with static, inferred shapes.
    fixed_inputs {name: value} turns inputs into constants (see frontend.inputs)."""
    proto = _read(source)
    checks.check_names(proto)
    checks.check_opset(_default_opset(proto))
    checks.check_initializer_sizes(proto)
    checks.check_input_shapes(input_shapes or {})
    try:
        onnx.checker.check_model(proto)
    except onnx.checker.ValidationError as e:  # its message on node order stops before the node: say it whole
        reason = checks.node_order_problem(proto.graph) or str(e).splitlines()[0]
        raise ModelLoadError(f"model fails onnx.checker: {reason}") from None
    proto = _densify_sparse_tensors(proto)
    if _default_opset(proto) < MIN_OPSET:
        try:
            proto = onnx.version_converter.convert_version(proto, MIN_OPSET)
        except Exception as e:
            raise ModelLoadError(f"cannot convert opset {_default_opset(proto)} to {MIN_OPSET}: {e}") from None
    model = ir.serde.deserialize_model(proto)
    RemoveInitializersFromInputsPass()(model)  # old exporters list weights as inputs
    proto = ir.serde.serialize_model(model)
    prepare_inputs(proto, input_shapes, fixed_inputs)
    model = infer_shapes(ir.serde.deserialize_model(proto))
    checks.check_value_sizes(model)
    return model


def infer_shapes(model: ir.Model) -> ir.Model:
    """ONNX shape inference (with data propagation), on an ir.Model."""
    proto = ir.serde.serialize_model(model)
    try:
        proto = onnx.shape_inference.infer_shapes(proto, check_type=True, strict_mode=True, data_prop=True)
    except Exception as e:
        raise ShapeError(f"shape inference failed: {str(e).splitlines()[0]}") from None
    return ir.serde.deserialize_model(proto)
