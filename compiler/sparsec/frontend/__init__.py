"""Frontend: ONNX file -> checked, opset-normalised, statically shaped onnx_ir model."""

from sparsec.frontend.inputs import parse_fixed_inputs
from sparsec.frontend.load import MIN_OPSET, load_model, parse_input_shapes

__all__ = ["MIN_OPSET", "load_model", "parse_fixed_inputs", "parse_input_shapes"]
