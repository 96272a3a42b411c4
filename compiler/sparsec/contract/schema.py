"""The compiler/runtime contract, once: dtypes, targets, storage kinds, feature flags, enums, ops and kernels.

Everything the C++ runtime, the pybind11 module, sparsec-run and sparsec.js need to agree on is generated from
this file by `python -m sparsec.contract.codegen` (a test fails when a generated file is stale). Adding an op:
one `Op(...)` row here, a lowering rule, a check/run pair in runtime/src, a kernel if it needs one
(docs/adding-an-op.md). Pure Python: `import sparsec` on a device reads it without numpy or onnx.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

FORMAT_VERSION = 2
FIRST_SPARSEC_WITH_FORMAT = {1: "0.1.0", 2: "0.2.0"}  # the loader's advice for files of another version
HEADER_SIZE = 96
ALIGNMENT = 64
ABSENT = 0xFFFFFFFF  # an absent optional input in an op record
MAX_DIMS = 8


@dataclass(frozen=True)
class DType:
    code: int
    name: str  # numpy's name
    size: int
    js_array: str  # the TypedArray that holds it in sparsec.js


DTYPES = (
    DType(1, "float32", 4, "Float32Array"),
    DType(2, "int64", 8, "BigInt64Array"),
    DType(3, "int32", 4, "Int32Array"),
    DType(4, "uint8", 1, "Uint8Array"),
    DType(5, "int8", 1, "Int8Array"),
    DType(6, "bool", 1, "Uint8Array"),  # one byte, 0 or 1
)
DTYPE_BY_NAME = {d.name: d for d in DTYPES}
DTYPE_BY_CODE = {d.code: d for d in DTYPES}
ALL_TYPES = tuple(d.name for d in DTYPES)
INDEX_TYPES = ("int64", "int32")
NUMERIC_TYPES = ("float32", "int64", "int32")
INTEGER_TYPES = ("int64", "int32", "uint8", "int8", "bool")

TARGETS = {"x86_64": 1, "arm64": 2, "wasm32": 3}
# The kernel ISA each target's dispatch prefers (portable where a job has no such variant).
TARGET_ISA = {"x86_64": "portable", "arm64": "neon", "wasm32": "wasmsimd"}


class Storage(IntEnum):
    """Where a tensor's bytes live: the immutable file, the activation arena, or the mutable parameter region."""

    CONST = 0
    ARENA = 1
    PARAM = 2


class Feature(IntEnum):
    """Header feature flags: a runtime refuses a file that needs a feature it does not know."""

    PARAMS = 1  # tensors with Storage.PARAM (trainable parameters, optimizer state)
    QUANT = 2  # tensors with quantization parameters
    SPARSE = 4  # tensors with sparse-format metadata


class TensorFlag(IntEnum):
    """Optional records that follow a tensor record."""

    QUANT = 1
    SPARSE = 2


class QuantKind(IntEnum):
    PER_TENSOR = 1
    PER_CHANNEL = 2


class SparseFormat(IntEnum):
    """Packed sparse weights (the kernel's argument list; see kernels_arm/include/sparsec/spmm.h)."""

    BLOCKED = 1  # nonzero values + input deltas in bytes + nonzero counts per output block
    N_OF_M = 2  # N nonzeros in every M consecutive input channels (2:4)


# ---- enums used by attributes ------------------------------------------------------------------
# Activation is also the kernels' epilogue (kernels_arm); BinaryOp's first four values are the vbinary kinds.
ENUMS: dict[str, tuple[str, ...]] = {
    "Activation": ("NONE", "RELU", "CLIP", "HARD_SWISH", "HARD_SIGMOID", "SIGMOID", "SILU", "GELU", "GELU_TANH",
                   "TANH", "LEAKY_RELU", "ELU", "SOFTPLUS", "SELU", "CELU", "THRESHOLDED_RELU", "SHRINK", "SOFTSIGN", "MISH",
                   "SWISH"),
    "BinaryOp": ("ADD", "SUB", "MUL", "DIV", "POW", "MAX", "MIN", "PRELU", "MOD", "FMOD"),
    "UnaryOp": ("EXP", "LOG", "SQRT", "NEG", "ABS", "RECIPROCAL", "ERF", "FLOOR", "CEIL", "ROUND", "SIN", "COS",
                "SIGN", "TAN", "ASIN", "ACOS", "ATAN", "SINH", "COSH", "ASINH", "ACOSH", "ATANH"),
    "PoolKind": ("MAX", "AVERAGE"),
    "ReduceKind": ("MEAN", "SUM", "MAX", "MIN", "PROD", "L1", "L2", "SUM_SQUARE", "LOG_SUM_EXP", "LOG_SUM"),
    # ROWS / ROW_MEAN: the reduced axes are innermost, one contiguous row per output (ROW_MEAN: the mean kernel)
    "ReduceAlgo": ("GENERIC", "ROWS", "ROW_MEAN"),
    "PadMode": ("CONSTANT", "REFLECT", "EDGE", "WRAP"),
    "ConvAlgo": ("IM2COL", "GEMM_1X1", "DEPTHWISE", "DEPTHWISE_3X3"),
    "ArgKind": ("MAX", "MIN"),
    # How Spmm reads x: CHW [B, K, H, W] (1x1 conv), IM2COL (any conv: the column matrix in scratch),
    # ROWS [..., K] (Gemm/MatMul: x and y are transposed through scratch)
    "SpmmLayout": ("CHW", "IM2COL", "ROWS"),
    # ops_tensor family (codes 30-49)
    "CompareOp": ("EQUAL", "LESS", "GREATER", "LESS_EQUAL", "GREATER_EQUAL"),
    "BitwiseOp": ("AND", "OR", "XOR", "SHIFT_LEFT", "SHIFT_RIGHT"),
    "ScatterReduction": ("NONE", "ADD", "MUL", "MAX", "MIN"),
    "CumulativeKind": ("SUM", "PROD"),
    # ops_nn_export (codes 60-79)
    "WindowKind": ("MAX", "AVERAGE", "LP"),
    "RecurrentKind": ("RNN", "GRU", "LSTM"),
    "Direction": ("FORWARD", "REVERSE", "BIDIRECTIONAL"),
    "GridMode": ("BILINEAR", "NEAREST", "BICUBIC"),
    "GridPadding": ("ZEROS", "BORDER", "REFLECTION"),
    "SoftmaxMode": ("SOFTMAX", "LOG_SOFTMAX", "HARDMAX"),
    "LossReduction": ("NONE", "SUM", "MEAN"),
    "SignalWindow": ("HANN", "HAMMING", "BLACKMAN"),
    "LossKind": ("CROSS_ENTROPY", "MSE", "BCE_WITH_LOGITS", "L1"),
}
_enums = {name: IntEnum(name, {v: i for i, v in enumerate(values)}) for name, values in ENUMS.items()}
Activation = _enums["Activation"]
BinaryOp = _enums["BinaryOp"]
UnaryOp = _enums["UnaryOp"]
PoolKind = _enums["PoolKind"]
ReduceKind = _enums["ReduceKind"]
ReduceAlgo = _enums["ReduceAlgo"]
PadMode = _enums["PadMode"]
ConvAlgo = _enums["ConvAlgo"]
ArgKind = _enums["ArgKind"]
SpmmLayout = _enums["SpmmLayout"]
CompareOp = _enums["CompareOp"]
BitwiseOp = _enums["BitwiseOp"]
ScatterReduction = _enums["ScatterReduction"]
CumulativeKind = _enums["CumulativeKind"]
WindowKind = _enums["WindowKind"]
RecurrentKind = _enums["RecurrentKind"]
Direction = _enums["Direction"]
GridMode = _enums["GridMode"]
GridPadding = _enums["GridPadding"]
SoftmaxMode = _enums["SoftmaxMode"]
LossReduction = _enums["LossReduction"]
SignalWindow = _enums["SignalWindow"]
LossKind = _enums["LossKind"]

SPATIAL_MAX = 1 << 16  # strides, pads, dilations, windows
ATTR_MAX = 1 << 32


@dataclass(frozen=True)
class Attr:
    """A named attribute. count: an int, or "rank" (the first input's rank). Integers are range-checked at load."""

    name: str
    count: int | str = 1
    enum: str | None = None
    low: int = -ATTR_MAX
    high: int = ATTR_MAX
    default: int | None = None  # the value when an emitter leaves the attribute out (else it is required)

    def bounds(self) -> tuple[int, int]:
        return (0, len(ENUMS[self.enum]) - 1) if self.enum else (self.low, self.high)


def flag(name: str, default: int | None = None) -> Attr:
    return Attr(name, low=0, high=1, default=default)


def spatial(name: str, count: int, low: int = 1) -> Attr:
    return Attr(name, count, low=low, high=SPATIAL_MAX)


ACTIVATION = (Attr("activation", enum="Activation"),)
ACTIVATION_PARAMS = ("act_alpha", "act_beta")


@dataclass(frozen=True)
class Slot:
    """An input or output: its type variable (see Op.types) and whether it may be absent."""

    name: str
    type: str = "T"
    optional: bool = False


@dataclass(frozen=True)
class Op:
    """One runtime op. inputs/outputs: the last may be variadic (one or more)."""

    code: int
    name: str
    inputs: tuple[Slot, ...]
    outputs: tuple[Slot, ...]
    types: dict[str, tuple[str, ...]]
    iattrs: tuple[Attr, ...] = ()
    fattrs: tuple[str, ...] = ()
    variadic_inputs: bool = False
    variadic_outputs: bool = False
    in_place: bool = False  # the output may share the first input's buffer (element-wise, same size)
    doc: str = ""
    kernels: dict[str, str] = field(default_factory=dict)  # "attr=VALUE" (or "*") -> kernel job

    def pack(self, attrs: dict, rank: int) -> tuple[list[int], list[float]]:
        """Named attributes -> the record's integer and float lists, in schema order, checked."""
        unknown = set(attrs) - {a.name for a in self.iattrs} - set(self.fattrs)
        if unknown:
            raise ValueError(f"{self.name}: unknown attribute(s) {sorted(unknown)}")
        ints: list[int] = []
        for a in self.iattrs:
            if a.name not in attrs and a.default is None:
                raise ValueError(f"{self.name}: attribute '{a.name}' missing")
            count = rank if a.count == "rank" else a.count
            values = attrs.get(a.name, a.default)
            values = list(values) if isinstance(values, (list, tuple)) else [values]
            if len(values) != count:
                raise ValueError(f"{self.name}: attribute '{a.name}' takes {count} value(s), got {len(values)}")
            low, high = a.bounds()
            for v in values:
                if not low <= int(v) <= high:
                    raise ValueError(f"{self.name}: attribute '{a.name}' = {int(v)} outside [{low}, {high}]")
            ints += [int(v) for v in values]
        floats = [float(attrs.get(name, 0.0)) for name in self.fattrs]
        return ints, floats

    def unpack(self, ints: list[int], floats: list[float], rank: int) -> dict:
        """The inverse of pack (for readers such as `sparsec inspect`)."""
        out, i = {}, 0
        for a in self.iattrs:
            count = rank if a.count == "rank" else a.count
            values = ints[i:i + count]
            i += count
            if a.enum:
                values = [ENUMS[a.enum][v] if 0 <= v < len(ENUMS[a.enum]) else v for v in values]
            out[a.name] = values if a.count != 1 else values[0]
        out.update(zip(self.fattrs, floats))
        return out

    def kernel(self, attrs: dict) -> str:
        """The kernel job this op runs with these (unpacked) attributes, or "" for plain C++ loops."""
        for key, job in self.kernels.items():
            if key == "*":
                return job
            name, value = key.split("=")
            if str(attrs.get(name)) == value:
                return job
        return ""


F32 = {"T": ("float32",)}
ANY = {"T": ALL_TYPES}
X = (Slot("x"),)
Y = (Slot("y"),)
POOL_WINDOW = (spatial("kernel", 2), spatial("strides", 2), spatial("pads", 4, 0), spatial("dilations", 2))

OPS = (
    Op(1, "Conv", (Slot("x"), Slot("w"), Slot("bias", optional=True)), Y, F32,
       (Attr("algorithm", enum="ConvAlgo"), spatial("group", 1), spatial("strides", 2), spatial("pads", 4, 0),
        spatial("dilations", 2), *ACTIVATION), ACTIVATION_PARAMS,
       doc="2-D convolution, NCHW; weight [M, C/group, KH, KW]; pads top, left, bottom, right",
       kernels={"algorithm=IM2COL": "f32_conv2d_im2col", "algorithm=GEMM_1X1": "f32_gemm",
                "algorithm=DEPTHWISE": "f32_dwconv2d", "algorithm=DEPTHWISE_3X3": "f32_dwconv2d_3x3"}),
    Op(2, "MatMul", (Slot("a"), Slot("b"), Slot("bias", optional=True)), Y, F32, (*ACTIVATION, flag("trans_a", 0)),
       ACTIVATION_PARAMS, doc="numpy matmul of rank >= 2 operands with batch broadcasting; bias per column; trans_a: "
       "a holds A with its last two axes swapped",
       kernels={"*": "f32_gemm"}),
    Op(3, "Binary", (Slot("a"), Slot("b")), Y, {"T": NUMERIC_TYPES + ("uint8", "int8")},
       (Attr("op", enum="BinaryOp"), *ACTIVATION), ACTIVATION_PARAMS, doc="numpy broadcasting; integers: no activation, DIV truncates; MOD takes the divisor's sign, FMOD C's fmod",
       kernels={"op=ADD": "f32_vbinary", "op=SUB": "f32_vbinary", "op=MUL": "f32_vbinary", "op=DIV": "f32_vbinary"}),
    Op(4, "Unary", X, Y, F32, (Attr("op", enum="UnaryOp"),), in_place=True, doc="element-wise math function"),
    Op(5, "Pool", X, Y, F32, (Attr("kind", enum="PoolKind"), *POOL_WINDOW, flag("count_include_pad")),
       doc="2-D max/average pooling, NCHW; ceil mode shows in the output shape",
       kernels={"kind=MAX": "f32_maxpool2d", "kind=AVERAGE": "f32_avgpool2d"}),
    Op(6, "Reduce", (Slot("x"), Slot("axes", "I", optional=True)), Y, {"T": ALL_TYPES, "I": ("int64",)},
       (Attr("kind", enum="ReduceKind"), Attr("algorithm", enum="ReduceAlgo"), Attr("axes_mask", low=0, high=255),
        flag("keepdims"), flag("noop_with_empty_axes")),
       doc="reduction over the axes in axes_mask (0: the run-time axes input, read as ONNX does with keepdims and "
           "noop_with_empty_axes; the output shape must match); integers: SUM/PROD/MAX/MIN/L1/SUM_SQUARE wrap like "
           "ONNX Runtime, bool: MAX/MIN",
       kernels={"algorithm=ROW_MEAN": "f32_gavgpool_cw"}),
    Op(7, "Softmax", X, Y, F32, (Attr("axis", low=0, high=MAX_DIMS - 1), Attr("mode", enum="SoftmaxMode")),
       doc="HARDMAX: 1 at the first maximum along axis, else 0"),
    Op(8, "LayerNorm", (Slot("x"), Slot("scale"), Slot("bias", optional=True)), Y, F32,
       (Attr("axis", low=0, high=MAX_DIMS - 1),), ("epsilon",), doc="normalises over axes [axis, rank)"),
    Op(9, "ChannelAffine", (Slot("x"), Slot("scale"), Slot("shift")), Y, F32, ACTIVATION, ACTIVATION_PARAMS,
       doc="y = act(x * scale[c] + shift[c]), c = dim 1 (inference BatchNormalization)",
       kernels={"*": "f32_activation"}),
    Op(10, "Transpose", X, Y, ANY, (Attr("perm", "rank", low=0, high=MAX_DIMS - 1),)),
    Op(11, "Copy", X, Y, ANY, in_place=True, doc="same bytes, another shape (Reshape, Flatten, Squeeze, Unsqueeze, Identity)"),
    Op(12, "Concat", X, Y, ANY, (Attr("axis", low=0, high=MAX_DIMS - 1),), variadic_inputs=True),
    Op(13, "Split", X, Y, ANY, (Attr("axis", low=0, high=MAX_DIMS - 1),), variadic_outputs=True),
    Op(14, "Slice", X, Y, ANY, (Attr("starts", "rank", low=0), Attr("steps", "rank")),
       doc="y[i] = x[starts + i * steps] per axis"),
    Op(15, "Gather", (Slot("data"), Slot("indices", "I")), Y, {"T": ALL_TYPES, "I": INDEX_TYPES},
       (Attr("axis", low=0, high=MAX_DIMS - 1),), doc="negative indices count from the end"),
    Op(16, "Pad", (Slot("x"), Slot("value", optional=True), Slot("pads", "I", optional=True),
                   Slot("axes", "I", optional=True)), Y, {"T": ALL_TYPES, "I": INDEX_TYPES},
       (Attr("mode", enum="PadMode"), Attr("begins", "rank"), Attr("ends", "rank")),
       doc="negative pads crop; value: a scalar (else 0); pads/axes inputs (ONNX layout) replace begins/ends at run time"),
    Op(17, "Expand", X, Y, ANY, doc="numpy broadcast to the output shape"),
    Op(18, "Cast", (Slot("x", "T1"),), (Slot("y", "T2"),), {"T1": ALL_TYPES, "T2": ALL_TYPES},
       doc="to the output's dtype like numpy's astype, except to bool: x != 0"),
    Op(19, "GroupNorm", (Slot("x"), Slot("scale"), Slot("bias")), Y, F32, (Attr("groups", low=1),), ("epsilon",),
       doc="InstanceNormalization when groups == C; scale/bias per channel"),
    Op(20, "ArgReduce", (Slot("x"),), (Slot("y", "I"),), {"T": NUMERIC_TYPES, "I": ("int64",)},
       (Attr("kind", enum="ArgKind"), Attr("axis", low=0, high=MAX_DIMS - 1), flag("select_last_index")),
       doc="ArgMax/ArgMin along axis; the output has the keepdims size"),
    Op(21, "Activation", X, Y, F32, ACTIVATION, ACTIVATION_PARAMS, in_place=True, doc="element-wise activation",
       kernels={"*": "f32_activation"}),
    # ---- sparse (codes 22-29) ----
    Op(22, "Spmm", (Slot("x"), Slot("values"), Slot("deltas", "I", optional=True), Slot("nnz", "I", optional=True),
                    Slot("index", "U", optional=True)), Y, {"T": ("float32",), "I": ("int32",), "U": ("uint8",)},
       (Attr("format", low=SparseFormat.BLOCKED, high=SparseFormat.N_OF_M), Attr("mb", low=1, high=4),
        Attr("first", low=0, high=(1 << 31) - 1), Attr("layout", enum="SpmmLayout"), spatial("kernel", 2),
        spatial("strides", 2), spatial("pads", 4, 0), spatial("dilations", 2), *ACTIVATION), ACTIVATION_PARAMS,
       doc="y = act(W x + bias), W packed (kernels_arm/include/sparsec/spmm.h; bias inside values): BLOCKED takes "
           "deltas and nnz (uint32 counts), N_OF_M (2:4) takes index; all three constant",
       kernels={"format=2": "f32_spmm_2of4", "mb=1": "f32_spmm_mb1", "mb=2": "f32_spmm_mb2", "mb=4": "f32_spmm_mb4"}),
    # ---- ops_tensor family: logic, comparison, index and tensor manipulation (codes 30-49) ----
    Op(30, "Compare", (Slot("a"), Slot("b")), (Slot("y", "B"),), {"T": ALL_TYPES, "B": ("bool",)},
       (Attr("op", enum="CompareOp"),), doc="numpy broadcasting; y = a <op> b (NaN compares false)"),
    Op(31, "Bitwise", (Slot("a"), Slot("b")), Y, {"T": INTEGER_TYPES}, (Attr("op", enum="BitwiseOp"),),
       doc="numpy broadcasting; a shift by b outside [0, bits) gives 0 (-1 for a right shift of a negative a)"),
    Op(32, "Where", (Slot("condition", "B"), Slot("x"), Slot("y")), (Slot("z"),), {"T": ALL_TYPES, "B": ("bool",)},
       doc="numpy broadcasting; z = condition ? x : y"),
    Op(33, "Range", (Slot("start"), Slot("limit"), Slot("delta")), Y, {"T": NUMERIC_TYPES},
       doc="y[i] = start + i * delta; the run-time element count must equal the output's"),
    Op(34, "Cumulative", (Slot("x"), Slot("axis", "I", optional=True)), Y, {"T": NUMERIC_TYPES, "I": INDEX_TYPES},
       (Attr("kind", enum="CumulativeKind"), Attr("axis", low=0, high=MAX_DIMS - 1), flag("exclusive"),
        flag("reverse")), doc="running sum/product along axis (an axis input, read at run time, replaces it)"),
    Op(35, "TopK", (Slot("x"), Slot("k", "I", optional=True)), (Slot("values"), Slot("indices", "I")),
       {"T": NUMERIC_TYPES + ("uint8", "int8"), "I": ("int64",)},
       (Attr("axis", low=0, high=MAX_DIMS - 1), flag("largest")),
       doc="the k = values.dims[axis] largest/smallest along axis, sorted, ties by the lower index; a k input must agree"),
    Op(36, "GatherElements", (Slot("data"), Slot("indices", "I")), Y, {"T": ALL_TYPES, "I": INDEX_TYPES},
       (Attr("axis", low=0, high=MAX_DIMS - 1),), doc="y[..i..] = data[..indices[..i..]..] along axis"),
    Op(37, "ScatterElements", (Slot("data"), Slot("indices", "I"), Slot("updates")), Y,
       {"T": ALL_TYPES, "I": INDEX_TYPES},
       (Attr("axis", low=0, high=MAX_DIMS - 1), Attr("reduction", enum="ScatterReduction")),
       doc="y = data, then y[..indices[..i..]..] (op)= updates[..i..] along axis, in order"),
    Op(38, "GatherND", (Slot("data"), Slot("indices", "I")), Y, {"T": ALL_TYPES, "I": INDEX_TYPES},
       (Attr("batch_dims", low=0, high=MAX_DIMS - 1),), doc="ONNX GatherND"),
    Op(39, "ScatterND", (Slot("data"), Slot("indices", "I"), Slot("updates")), Y, {"T": ALL_TYPES, "I": INDEX_TYPES},
       (Attr("reduction", enum="ScatterReduction"),), doc="ONNX ScatterND, updates applied in order"),
    Op(40, "BitCast", (Slot("x", "T1"),), (Slot("y", "T2"),), {"T1": ALL_TYPES, "T2": ALL_TYPES},
       doc="the same bytes read as another dtype of the same size"),
    Op(41, "DynamicSlice", (Slot("x"), Slot("starts", "I"), Slot("ends", "I"), Slot("axes", "I", optional=True),
                            Slot("steps", "I", optional=True)), Y, {"T": ALL_TYPES, "I": INDEX_TYPES},
       doc="ONNX Slice with run-time starts/ends/axes/steps; the result must have the output's shape"),
    # ---- ops_nn_export: what exporters emit for detection/OCR heads, audio and classic CNNs (codes 60-79) ----
    Op(60, "Resample", (Slot("x"), Slot("indices", "I"), Slot("weights")), Y, {"T": ("float32",), "I": ("int32",)},
       (Attr("taps", "rank", low=0, high=SPATIAL_MAX),), ("extrapolation_value",),
       doc="separable resampling: per axis with taps > 0, y[o] = sum_k weights[o,k] * x[indices[o,k]] (tables "
           "concatenated over the resampled axes, in axis order); an index of -1 writes extrapolation_value"),
    Op(62, "PoolNd", X, (Slot("y"), Slot("indices", "I", optional=True)), {"T": ("float32",), "I": ("int64",)},
       (Attr("kind", enum="WindowKind"), spatial("kernel", 3), spatial("strides", 3), spatial("pads", 6, 0),
        spatial("dilations", 3), flag("count_include_pad"), spatial("p", 1), flag("column_major")),
       doc="1-D/2-D/3-D max/average/Lp pooling on [N, C, D, H, W] (fewer spatial dims: leading windows of 1); "
           "pads begin then end; indices (max): flat index into x (column_major, 2-D: plane offset + w * H + h)"),
    Op(63, "ConvNd", (Slot("x"), Slot("w"), Slot("bias", optional=True)), Y, F32,
       (flag("transposed"), spatial("group", 1), spatial("kernel", 3), spatial("strides", 3), spatial("pads", 3, 0),
        spatial("dilations", 3), *ACTIVATION), ACTIVATION_PARAMS,
       doc="1-D/2-D/3-D convolution (im2col + GEMM) or transposed convolution (GEMM + col2im) on [N, C, D, H, W]; "
           "w [M, C/group, k...] (transposed: [C, M/group, k...]); pads: begin (the end follows from y)",
       kernels={"*": "f32_gemm"}),
    Op(64, "Recurrent",
       (Slot("x"), Slot("w"), Slot("r"), Slot("b", optional=True), Slot("sequence_lens", "S", optional=True),
        Slot("initial_h", optional=True), Slot("initial_c", optional=True), Slot("p", optional=True)),
       (Slot("y"), Slot("y_h"), Slot("y_c")), {"T": ("float32",), "S": ("int32",)},
       (Attr("kind", enum="RecurrentKind"), Attr("direction", enum="Direction"), flag("layout"),
        flag("linear_before_reset"), flag("input_forget"), Attr("activations", 3, enum="Activation")),
       ("clip", "alpha_f", "alpha_g", "alpha_h", "beta_f", "beta_g", "beta_h"),
       doc="ONNX RNN/GRU/LSTM (gates iofc / zrh); activations f, g, h; clip <= 0: none; y_c unused but for LSTM",
       kernels={"*": "f32_gemm"}),
    Op(65, "GridSample", (Slot("x"), Slot("grid")), Y, F32,
       (Attr("mode", enum="GridMode"), Attr("padding", enum="GridPadding"), flag("align_corners")),
       doc="2-D/3-D GridSample; grid [N, oh, ow, 2] (x, y) or [N, od, oh, ow, 3] in [-1, 1]"),
    Op(66, "MaxUnpool", (Slot("x"), Slot("indices", "I")), Y, {"T": ("float32",), "I": ("int64",)},
       doc="y = 0, then y.flat[indices] = x (indices from MaxPool)"),
    # ---- transformer ops (codes 80-89) ----
    Op(80, "Attention", (Slot("q"), Slot("k"), Slot("v"), Slot("mask", "M", optional=True),
                         Slot("nonpad_kv_seqlen", "I", optional=True)), Y,
       {"T": ("float32",), "M": ("float32", "bool"), "I": ("int64",)},
       (Attr("q_heads", low=1), Attr("kv_heads", low=1), flag("causal"), Attr("past_len", low=0),
        Attr("left_window", low=-1), Attr("right_window", low=-1), Attr("qk_mode", low=0, high=3)),
       ("scale_sqrt", "softcap"), variadic_outputs=True, kernels={"*": "f32_gemm"},
       doc="softmax((q*s)(k*s)^T softcapped + mask/causal/window/padding bias) v per head; rank 3 = [B, S, heads*D], "
           "rank 4 = [B, heads, S, D]; GQA maps q head h to kv head h / (q_heads / kv_heads); mask columns past its "
           "width are masked; a row whose bias is all -inf gives 0; an optional 2nd output [B, Hq, Sq, Skv] takes "
           "qk_mode's stage (1 after softcap, 0 the same without softcap, 2 + bias, 3 probabilities)"),
    Op(81, "RmsNorm", (Slot("x"), Slot("scale")), Y, F32, (Attr("axis", low=0, high=MAX_DIMS - 1),), ("epsilon",),
       doc="x / sqrt(mean(x^2 over axes [axis, rank)) + epsilon) * scale; scale has the normalised size"),
    Op(82, "Rotary", (Slot("x"), Slot("cos"), Slot("sin")), Y, F32,
       (Attr("heads", low=1), Attr("rotary_dim", low=2), flag("interleaved")),
       doc="rotary position embedding; x rank 3 [B, S, heads*D] or 4 [B, heads, S, D]; cos/sin [B, S, rotary_dim/2]"),
    Op(83, "LinearAttention", (Slot("q"), Slot("k"), Slot("v"), Slot("past_state", optional=True),
                               Slot("decay", optional=True), Slot("beta", optional=True)),
       (Slot("y"), Slot("present_state")), F32, (Attr("q_heads", low=1), Attr("kv_heads", low=1)), ("scale",),
       doc="recurrent linear attention over [B, T, heads*D] inputs; state [B, kv_heads, Dk, Dv]; decay (gating: "
           "state *= exp(decay)) per head or per key dim; beta (delta rule) per head or one value"),
    Op(84, "TensorScatter", (Slot("cache"), Slot("update"), Slot("write_indices", "I", optional=True)), Y,
       {"T": ALL_TYPES, "I": ("int64",)}, (Attr("axis", low=1, high=MAX_DIMS - 1), flag("circular")),
       doc="KV-cache write: y = cache with update's rows along axis written from write_indices[batch] (0 when "
           "absent), modulo the cache length when circular; a linear index outside the cache is a run-time error"),
    # ---- ops_math (codes 90-99) ----
    Op(90, "NllLoss", (Slot("log_prob"), Slot("target", "I"), Slot("weight", optional=True)), (Slot("loss"),),
       {"T": ("float32",), "I": INDEX_TYPES},
       (Attr("reduction", enum="LossReduction"), Attr("ignore_index", low=-(1 << 62), high=1 << 62),
        flag("has_ignore_index")),
       doc="ONNX NegativeLogLikelihoodLoss: log_prob [N, C, d...], target [N, d...], weight [C]; a target outside "
           "[0, C) other than ignore_index fails the run"),
    Op(91, "Det", X, Y, F32, doc="determinant of each trailing [M, M] matrix (LU with partial pivoting in double)"),
    Op(92, "Dft", (Slot("x"), Slot("axis", "I", optional=True)), Y, {"T": ("float32",), "I": ("int64",)},
       (Attr("axis", low=0, high=MAX_DIMS - 2), flag("inverse"), flag("onesided"), Attr("length", low=0)),
       doc="ONNX DFT of x [..., 1 or 2] along axis (or the run-time axis input, checked against the output shape), "
           "zero-padded or cut to length (0: ONNX's default from the input); inverse onesided: the real inverse of a "
           "one-sided spectrum; scratch: the length's twiddles"),
    Op(93, "Window", (Slot("size", "I"),), Y, {"T": ("float32",), "I": INDEX_TYPES},
       (Attr("kind", enum="SignalWindow"), flag("periodic")),
       doc="HannWindow/HammingWindow/BlackmanWindow of the run-time size (which must equal the output length)"),
    # ---- training (codes 100-119): backward ops and in-place optimizer updates (sparsec.train) ----
    Op(100, "Loss", (Slot("pred"), Slot("target", "L")), (Slot("loss"), Slot("dpred")),
       {"T": ("float32",), "L": ("float32", "int64")}, (Attr("kind", enum="LossKind"),),
       doc="mean-reduced loss [1] and its gradient; CROSS_ENTROPY: pred [N, C], int64 target [N] (class indices)"),
    Op(101, "ActivationGrad", (Slot("dy"), Slot("x", "M")), (Slot("dx"),), {"T": ("float32",), "M": ("float32", "uint8")},
       ACTIVATION, ACTIVATION_PARAMS,
       doc="dx = dy * act'(x); x is the activation's input (RELU/CLIP: its output, or its uint8 ActivationMask)"),
    Op(102, "ConvGradInput", (Slot("dy"), Slot("w")), (Slot("dx"),), F32,
       (spatial("group", 1), spatial("strides", 2), spatial("pads", 4, 0), spatial("dilations", 2)),
       doc="gradient of Conv with respect to its input x (the output's shape is x's)"),
    Op(103, "ConvGradWeight", (Slot("x"), Slot("dy")), (Slot("dw"),), F32,
       (spatial("group", 1), spatial("strides", 2), spatial("pads", 4, 0), spatial("dilations", 2)),
       doc="gradient of Conv with respect to its weight, summed over the batch"),
    Op(104, "PoolGrad", (Slot("x"), Slot("dy")), (Slot("dx"),), F32,
       (Attr("kind", enum="PoolKind"), *POOL_WINDOW, flag("count_include_pad")),
       doc="gradient of Pool; MAX routes to the first maximum of each window (as PyTorch)"),
    Op(105, "LayerNormGrad", (Slot("x"), Slot("scale"), Slot("dy")), (Slot("dx"),), F32,
       (Attr("axis", low=0, high=MAX_DIMS - 1),), ("epsilon",), doc="gradient of LayerNorm with respect to x"),
    Op(106, "GatherGrad", (Slot("indices", "I"), Slot("dy")), (Slot("ddata"),),
       {"T": ("float32",), "I": INDEX_TYPES}, doc="gradient of Gather on axis 0 (embeddings): rows summed by index"),
    Op(107, "SgdUpdate", (Slot("grad"), Slot("indices", "I", optional=True)), (Slot("param"), Slot("state")),
       {"T": ("float32",), "I": ("int64",)}, (Attr("axis", low=0, high=MAX_DIMS - 1),),
       ("lr", "momentum", "weight_decay"),
       doc="torch.optim.SGD step in place; indices: the updated slice of param along axis; state [1 (+ grad size with momentum)]"),
    Op(108, "AdamwUpdate", (Slot("grad"), Slot("indices", "I", optional=True)), (Slot("param"), Slot("state")),
       {"T": ("float32",), "I": ("int64",)}, (Attr("axis", low=0, high=MAX_DIMS - 1),),
       ("lr", "beta1", "beta2", "eps", "weight_decay"),
       doc="torch.optim.AdamW step in place; indices as SGD; state [1 + 2 * grad size]"),
    Op(109, "ActivationMask", X, (Slot("mask", "M"),), {"T": ("float32",), "M": ("uint8",)}, ACTIVATION,
       ACTIVATION_PARAMS, doc="1 where a RELU/CLIP passes its gradient (the backward keeps 1 byte, not 4)"),
    Op(94, "Stft", (Slot("signal"), Slot("frame_step", "I"), Slot("window", optional=True),
                    Slot("frame_length", "I", optional=True)), Y, {"T": ("float32",), "I": ("int64",)},
       (flag("onesided"),),
       doc="ONNX STFT of signal [B, L, 1 or 2]: run-time frame_step and frame length (window size or frame_length) "
           "must give the output [B, frames, bins, 2]; scratch: the frame length's twiddles"),
)
OP_BY_NAME = {op.name: op for op in OPS}
OP_BY_CODE = {op.code: op for op in OPS}

# Op families: a family's code range, plus older ops that belong with it. A cross-target runtime (wasm32, arm64) is
# built with only the families its artifact uses, so a CNN does not carry the attention or training code; "core"
# (every other code) is always built. Build switches only: moving an op between families changes no artifact.
OP_FAMILIES = {"sparse": range(22, 30), "index": (20, *range(30, 50)), "nn_export": (19, *range(60, 80)),
               "attention": range(80, 90), "math": range(90, 100), "train": range(100, 120)}


def op_family(code: int) -> str:
    return next((name for name, codes in OP_FAMILIES.items() if code in codes), "core")


def family_define(family: str) -> str:
    """The preprocessor switch of an optional family (1 by default; sparsec's cross builds set 0 for unused ones)."""
    return f"SPARSEC_WITH_{family.upper()}"


# ---- kernels: one row per job; the dispatch of each target runs its ISA's variant (else portable) --------------
@dataclass(frozen=True)
class Kernel:
    job: str  # the dispatch function's name in kernels_arm/include/sparsec/kernels.h
    scalar: str  # the reference every variant is tested against
    portable: str
    neon: str | None = None
    wasmsimd: str | None = None

    def variant(self, target: str) -> str:
        return getattr(self, TARGET_ISA[target]) or self.portable


KERNELS = (
    Kernel("f32_gemm", "f32_gemm__scalar", "f32_gemm__portable"),
    Kernel("f32_im2col", "f32_im2col__scalar", "f32_im2col__portable"),
    Kernel("f32_conv2d_im2col", "f32_conv2d__scalar", "f32_conv2d_im2col__portable"),
    Kernel("f32_dwconv2d", "f32_conv2d__scalar", "f32_dwconv2d__portable"),
    Kernel("f32_dwconv2d_3x3", "f32_conv2d__scalar", "f32_dwconv2d__portable", "f32_dwconv2d_3x3_u4__neon",
           "f32_dwconv2d_3x3_u4__wasmsimd"),
    Kernel("f32_maxpool2d", "f32_maxpool2d__scalar", "f32_maxpool2d_chw__portable", "f32_maxpool2d_chw_u4__neon",
           "f32_maxpool2d_chw_u4__wasmsimd"),
    Kernel("f32_avgpool2d", "f32_avgpool2d__scalar", "f32_avgpool2d_chw__portable", "f32_avgpool2d_chw_u4__neon",
           "f32_avgpool2d_chw_u4__wasmsimd"),
    Kernel("f32_gavgpool_cw", "f32_gavgpool_cw__scalar", "f32_gavgpool_cw__portable", "f32_gavgpool_cw_u8__neon",
           "f32_gavgpool_cw_u8__wasmsimd"),
    Kernel("f32_vbinary", "f32_vbinary__scalar", "f32_vbinary__portable", "f32_vbinary_u8__neon",
           "f32_vbinary_u8__wasmsimd"),
    Kernel("f32_activation", "f32_activation__scalar", "f32_activation__portable"),
    Kernel("f32_activation_grad", "f32_activation_grad__scalar", "f32_activation_grad__portable"),
    Kernel("f32_softmax", "f32_softmax__scalar", "f32_softmax__portable"),
    Kernel("f32_layer_norm", "f32_layer_norm__scalar", "f32_layer_norm__portable"),
    Kernel("f32_layer_norm_grad", "f32_layer_norm_grad__scalar", "f32_layer_norm_grad__portable"),
    # SpMM (kernels_arm/include/sparsec/spmm.h): one job per output block MB of format BLOCKED, and 2:4.
    Kernel("f32_spmm_mb1", "f32_spmm__scalar", "f32_spmm_32x1__portable", "f32_spmm_32x1__neon",
           "f32_spmm_16x1__wasmsimd"),
    Kernel("f32_spmm_mb2", "f32_spmm__scalar", "f32_spmm_32x2__portable", "f32_spmm_32x2__neon",
           "f32_spmm_16x2__wasmsimd"),
    Kernel("f32_spmm_mb4", "f32_spmm__scalar", "f32_spmm_32x4__portable", "f32_spmm_16x4__neon",
           "f32_spmm_8x4__wasmsimd"),
    Kernel("f32_spmm_2of4", "f32_spmm_2of4__scalar", "f32_spmm_2of4__portable", "f32_spmm_2of4__neon",
           "f32_spmm_2of4__wasmsimd"),
)
KERNEL_BY_JOB = {k.job: k for k in KERNELS}

# Convolution as banded im2col + GEMM keeps the column buffer near this many columns (scratch sizing).
IM2COL_BAND_COLUMNS = 1024


def im2col_scratch_bytes(group_in: int, kh: int, kw: int, oh: int, ow: int) -> int:
    """Scratch of the IM2COL algorithm: one band of the column matrix (kernels_arm f32_conv2d_im2col)."""
    band_rows = max(1, min(oh, IM2COL_BAND_COLUMNS // max(ow, 1)))
    return group_in * kh * kw * band_rows * ow * 4
