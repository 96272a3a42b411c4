"""Load an ONNX model: parse, check, lift to a common opset, prepare the inputs (frontend.inputs), infer all shapes."""

from __future__ import annotations

import os

import onnx
import onnx_ir as ir
from onnx_ir.passes.common import RemoveInitializersFromInputsPass

from sparsec.errors import ModelLoadError, ShapeError
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
    if isinstance(source, onnx.ModelProto):
        return source
    if isinstance(source, ir.Model):
        return ir.serde.serialize_model(source)
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
    return proto


def _default_opset(proto: onnx.ModelProto) -> int:
    for opset in proto.opset_import:
        if opset.domain in STANDARD_DOMAINS:
            return opset.version
    raise ModelLoadError("model imports no default-domain opset")


def load_model(source, input_shapes: dict[str, list[int]] | None = None, fixed_inputs: dict | None = None) -> ir.Model:
    """Path, bytes-free ModelProto or ir.Model -> checked ir.Model with static, inferred shapes.
    fixed_inputs {name: value} turns inputs into constants (see frontend.inputs)."""
    proto = _read(source)
    try:
        onnx.checker.check_model(proto)
    except onnx.checker.ValidationError as e:
        raise ModelLoadError(f"model fails onnx.checker: {str(e).splitlines()[0]}") from None
    if _default_opset(proto) < MIN_OPSET:
        try:
            proto = onnx.version_converter.convert_version(proto, MIN_OPSET)
        except Exception as e:
            raise ModelLoadError(f"cannot convert opset {_default_opset(proto)} to {MIN_OPSET}: {e}") from None
    model = ir.serde.deserialize_model(proto)
    RemoveInitializersFromInputsPass()(model)  # old exporters list weights as inputs
    proto = ir.serde.serialize_model(model)
    prepare_inputs(proto, input_shapes, fixed_inputs)
    return infer_shapes(ir.serde.deserialize_model(proto))


def infer_shapes(model: ir.Model) -> ir.Model:
    """ONNX shape inference (with data propagation), on an ir.Model."""
    proto = ir.serde.serialize_model(model)
    try:
        proto = onnx.shape_inference.infer_shapes(proto, check_type=True, strict_mode=True, data_prop=True)
    except Exception as e:
        raise ShapeError(f"shape inference failed: {str(e).splitlines()[0]}") from None
    return ir.serde.deserialize_model(proto)
