"""Opcodes and attribute enums, mirrored from runtime/src/ops.h and kernels.h (a test checks they agree)."""

from enum import IntEnum


class OpCode(IntEnum):
    CONV = 1
    MATMUL = 2
    BINARY = 3
    UNARY = 4
    POOL = 5
    REDUCE = 6
    SOFTMAX = 7
    LAYER_NORM = 8
    CHANNEL_AFFINE = 9
    TRANSPOSE = 10
    COPY = 11
    CONCAT = 12
    SPLIT = 13
    SLICE = 14
    GATHER = 15
    PAD = 16
    EXPAND = 17
    CAST = 18
    GROUP_NORM = 19


# C++ names of the opcodes (ops.cpp), for the agreement test and reports.
RUNTIME_NAMES = {
    OpCode.CONV: "Conv", OpCode.MATMUL: "MatMul", OpCode.BINARY: "Binary", OpCode.UNARY: "Unary",
    OpCode.POOL: "Pool", OpCode.REDUCE: "Reduce", OpCode.SOFTMAX: "Softmax", OpCode.LAYER_NORM: "LayerNorm",
    OpCode.CHANNEL_AFFINE: "ChannelAffine", OpCode.TRANSPOSE: "Transpose", OpCode.COPY: "Copy",
    OpCode.CONCAT: "Concat", OpCode.SPLIT: "Split", OpCode.SLICE: "Slice", OpCode.GATHER: "Gather",
    OpCode.PAD: "Pad", OpCode.EXPAND: "Expand", OpCode.CAST: "Cast", OpCode.GROUP_NORM: "GroupNorm",
}


class Activation(IntEnum):
    NONE = 0
    RELU = 1
    CLIP = 2
    HARD_SWISH = 3
    HARD_SIGMOID = 4
    SIGMOID = 5
    SILU = 6
    GELU = 7
    GELU_TANH = 8
    TANH = 9
    LEAKY_RELU = 10
    ELU = 11
    SOFTPLUS = 12


class BinaryOp(IntEnum):
    ADD = 0
    SUB = 1
    MUL = 2
    DIV = 3
    POW = 4
    MAX = 5
    MIN = 6
    PRELU = 7
    MOD = 8


class UnaryOp(IntEnum):
    EXP = 100
    LOG = 101
    SQRT = 102
    NEG = 103
    ABS = 104
    RECIPROCAL = 105
    ERF = 106
    FLOOR = 107
    CEIL = 108
    ROUND = 109
    SIN = 110
    COS = 111
    SIGN = 112


class PoolKind(IntEnum):
    MAX = 0
    AVERAGE = 1


class ReduceKind(IntEnum):
    MEAN = 0
    SUM = 1
    MAX = 2
    MIN = 3
    PROD = 4
    L1 = 5
    L2 = 6
    SUM_SQUARE = 7
    LOG_SUM_EXP = 8


class PadMode(IntEnum):
    CONSTANT = 0
    REFLECT = 1
    EDGE = 2
