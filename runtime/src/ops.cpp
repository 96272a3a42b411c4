// The op table: opcode -> name, load-time check, run.
#include "ops.h"

#include <array>
#include <string>

namespace sparsec {

using CheckFn = bool (*)(const Op&, size_t*, std::string*);
using RunFn = bool (*)(const Op&, float*, std::string*);

#define SPX_OPS(X)                                   \
  X(kConv, "Conv", conv)                             \
  X(kMatMul, "MatMul", matmul)                       \
  X(kBinary, "Binary", binary)                       \
  X(kUnary, "Unary", unary)                          \
  X(kPool, "Pool", pool)                             \
  X(kReduce, "Reduce", reduce)                       \
  X(kSoftmax, "Softmax", softmax)                    \
  X(kLayerNorm, "LayerNorm", layernorm)              \
  X(kChannelAffine, "ChannelAffine", channel_affine) \
  X(kTranspose, "Transpose", transpose)              \
  X(kCopy, "Copy", copy)                             \
  X(kConcat, "Concat", concat)                       \
  X(kSplit, "Split", split)                          \
  X(kSlice, "Slice", slice)                          \
  X(kGather, "Gather", gather)                       \
  X(kPad, "Pad", pad)                                \
  X(kExpand, "Expand", expand)                       \
  X(kCast, "Cast", cast)                             \
  X(kGroupNorm, "GroupNorm", group_norm)

#define SPX_DECLARE(code, name, fn)                          \
  bool check_##fn(const Op&, size_t*, std::string*);       \
  bool run_##fn(const Op&, float*, std::string*);
SPX_OPS(SPX_DECLARE)

namespace {
struct OpEntry {
  const char* name;
  CheckFn check;
  RunFn run;
};

const OpEntry* entry(uint32_t opcode) {
  static const auto table = [] {
    std::array<OpEntry, size_t(OpCode::kLast) + 1> t{};
#define SPX_ENTRY(code, name, fn) t[size_t(OpCode::code)] = {name, check_##fn, run_##fn};
    SPX_OPS(SPX_ENTRY)
    return t;
  }();
  return opcode >= 1 && opcode <= uint32_t(OpCode::kLast) && table[opcode].run ? &table[opcode] : nullptr;
}
}  // namespace

const char* opcode_name(uint32_t opcode) {
  const OpEntry* e = entry(opcode);
  return e ? e->name : nullptr;
}

bool check_op(const Op& op, size_t* scratch_floats, std::string* err) {
  const OpEntry* e = entry(uint32_t(op.code));
  if (!e) {
    *err = "unknown opcode " + std::to_string(uint32_t(op.code));
    return false;
  }
  *scratch_floats = 0;
  if (op.in.empty() || !op.in[0] || op.out.empty()) {
    *err = "needs at least one input and one output";
    return false;
  }
  for (int64_t v : op.iattr) {
    if (v > kMaxAttr || v < -kMaxAttr) {
      *err = "attribute value out of range";
      return false;
    }
  }
  return e->check(op, scratch_floats, err);
}

bool run_op(const Op& op, float* scratch, std::string* err) { return entry(uint32_t(op.code))->run(op, scratch, err); }

}  // namespace sparsec
