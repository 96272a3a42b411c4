// Runtime ops: opcodes (mirrored in compiler/sparsec/artifact/opcodes.py), attribute layouts,
// load-time validation (every shape an op relies on is re-derived and checked) and execution.
#pragma once
#include <cstddef>
#include <cstdint>

#include "artifact.h"

namespace sparsec {

// Attribute layouts (iattr | fattr). "act" = Activation kind with fattr [a, b].
enum class OpCode : uint32_t {
  kConv = 1,       // in [x, w, bias?]  iattr [G, SH, SW, PT, PL, PB, PR, DH, DW, act] | [a, b]
  kMatMul = 2,     // in [a, b, bias?]  iattr [act] | [a, b]; numpy batch broadcasting, bias per column
  kBinary = 3,     // in [a, b]         iattr [BinaryOp, act] | [a, b]; numpy broadcasting
  kUnary = 4,      // in [x]            iattr [UnaryOp] | [a, b]
  kPool = 5,       // in [x]            iattr [PoolKind, KH, KW, SH, SW, PT, PL, PB, PR, DH, DW, count_include_pad]
  kReduce = 6,     // in [x]            iattr [ReduceKind, axes bitmask]; output has the keepdims size
  kSoftmax = 7,    // in [x]            iattr [axis, log]
  kLayerNorm = 8,  // in [x, scale, bias?] iattr [axis] | [epsilon]
  kChannelAffine = 9,  // in [x, scale[C], shift[C]] iattr [act] | [a, b]; y = x * scale[c] + shift[c], c = dim 1
  kTranspose = 10,  // in [x]           iattr perm[ndim]
  kCopy = 11,       // in [x]           same bytes, new shape (Reshape, Flatten, Squeeze, Unsqueeze)
  kConcat = 12,     // in [x...]        iattr [axis]
  kSplit = 13,      // in [x] out [y...] iattr [axis]
  kSlice = 14,      // in [x]           iattr [starts[ndim], steps[ndim]]
  kGather = 15,     // in [data, indices] iattr [axis]
  kPad = 16,        // in [x]           iattr [PadMode, begins[ndim], ends[ndim]] | [value]
  kExpand = 17,     // in [x]           numpy broadcast to the output shape
  kCast = 18,       // in [x]           to the output's dtype
  kGroupNorm = 19,  // in [x, scale[C], bias[C]] iattr [groups] | [epsilon]; InstanceNorm when groups == C
  kLast = kGroupNorm,
};

enum class BinaryOp : int64_t { kAdd = 0, kSub, kMul, kDiv, kPow, kMax, kMin, kPRelu, kMod, kLast = kMod };
// Unary: values 0..12 are Activation kinds; the rest are math functions.
enum class UnaryOp : int64_t {
  kExp = 100, kLog, kSqrt, kNeg, kAbs, kReciprocal, kErf, kFloor, kCeil, kRound, kSin, kCos, kSign,
  kLast = kSign,
};
enum class PoolKind : int64_t { kMax = 0, kAverage = 1, kLast = kAverage };
enum class ReduceKind : int64_t { kMean = 0, kSum, kMax, kMin, kProd, kL1, kL2, kSumSquare, kLogSumExp, kLast = kLogSumExp };
enum class PadMode : int64_t { kConstant = 0, kReflect = 1, kEdge = 2, kLast = kEdge };

const char* opcode_name(uint32_t opcode);

struct Tensor {
  uint8_t dtype = 0;
  uint32_t ndim = 0;
  int64_t dims[kMaxDims] = {};
  size_t numel = 0;
  size_t nbytes = 0;
  uint8_t* data = nullptr;
  bool is_const = false;

  float* f32() const { return reinterpret_cast<float*>(data); }
};

struct Op {
  OpCode code;
  Array<const Tensor*> in;  // null for an absent optional input
  Array<Tensor*> out;
  Array<int64_t> iattr;
  Array<float> fattr;
  const char* name = "";
};

// Validates op against its tensors; sets the float scratch it needs. On failure, *err says why.
bool check_op(const Op& op, size_t* scratch_floats, Message* err);
// Runs a checked op. Fails only on data-dependent errors (e.g. a gather index out of range).
bool run_op(const Op& op, float* scratch, Message* err);

}  // namespace sparsec
