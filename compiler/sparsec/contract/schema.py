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
                   "TANH", "LEAKY_RELU", "ELU", "SOFTPLUS"),
    "BinaryOp": ("ADD", "SUB", "MUL", "DIV", "POW", "MAX", "MIN", "PRELU", "MOD", "FMOD"),
    "UnaryOp": ("EXP", "LOG", "SQRT", "NEG", "ABS", "RECIPROCAL", "ERF", "FLOOR", "CEIL", "ROUND", "SIN", "COS",
                "SIGN"),
    "PoolKind": ("MAX", "AVERAGE"),
    "ReduceKind": ("MEAN", "SUM", "MAX", "MIN", "PROD", "L1", "L2", "SUM_SQUARE", "LOG_SUM_EXP"),
    # ROWS / ROW_MEAN: the reduced axes are innermost, one contiguous row per output (ROW_MEAN: the mean kernel)
    "ReduceAlgo": ("GENERIC", "ROWS", "ROW_MEAN"),
    "PadMode": ("CONSTANT", "REFLECT", "EDGE"),
    "ConvAlgo": ("IM2COL", "GEMM_1X1", "DEPTHWISE", "DEPTHWISE_3X3"),
    "ArgKind": ("MAX", "MIN"),
    # How Spmm reads x: CHW [B, K, H, W] (1x1 conv), IM2COL (any conv: the column matrix in scratch),
    # ROWS [..., K] (Gemm/MatMul: x and y are transposed through scratch)
    "SpmmLayout": ("CHW", "IM2COL", "ROWS"),
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

    def bounds(self) -> tuple[int, int]:
        return (0, len(ENUMS[self.enum]) - 1) if self.enum else (self.low, self.high)


def flag(name: str) -> Attr:
    return Attr(name, low=0, high=1)


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
            if a.name not in attrs:
                raise ValueError(f"{self.name}: attribute '{a.name}' missing")
            count = rank if a.count == "rank" else a.count
            values = attrs[a.name]
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
    Op(2, "MatMul", (Slot("a"), Slot("b"), Slot("bias", optional=True)), Y, F32, ACTIVATION, ACTIVATION_PARAMS,
       doc="numpy matmul of rank >= 2 operands with batch broadcasting; bias per column",
       kernels={"*": "f32_gemm"}),
    Op(3, "Binary", (Slot("a"), Slot("b")), Y, {"T": NUMERIC_TYPES}, (Attr("op", enum="BinaryOp"), *ACTIVATION),
       ACTIVATION_PARAMS, doc="numpy broadcasting; integers: no activation, DIV truncates; MOD takes the divisor's sign, FMOD C's fmod",
       kernels={"op=ADD": "f32_vbinary", "op=SUB": "f32_vbinary", "op=MUL": "f32_vbinary", "op=DIV": "f32_vbinary"}),
    Op(4, "Unary", X, Y, F32, (Attr("op", enum="UnaryOp"),), in_place=True, doc="element-wise math function"),
    Op(5, "Pool", X, Y, F32, (Attr("kind", enum="PoolKind"), *POOL_WINDOW, flag("count_include_pad")),
       doc="2-D max/average pooling, NCHW; ceil mode shows in the output shape",
       kernels={"kind=MAX": "f32_maxpool2d", "kind=AVERAGE": "f32_avgpool2d"}),
    Op(6, "Reduce", X, Y, F32,
       (Attr("kind", enum="ReduceKind"), Attr("algorithm", enum="ReduceAlgo"), Attr("axes_mask", low=1, high=255)),
       doc="reduction over the axes in axes_mask; the output has the keepdims size",
       kernels={"algorithm=ROW_MEAN": "f32_gavgpool_cw"}),
    Op(7, "Softmax", X, Y, F32, (Attr("axis", low=0, high=MAX_DIMS - 1), flag("log"))),
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
    Op(16, "Pad", X, Y, F32, (Attr("mode", enum="PadMode"), Attr("begins", "rank", low=0),
                              Attr("ends", "rank", low=0)), ("value",)),
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
)
OP_BY_NAME = {op.name: op for op in OPS}
OP_BY_CODE = {op.code: op for op in OPS}


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
