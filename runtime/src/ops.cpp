// The op table: opcode -> name, load-time check, run.
#include "ops.h"

#include "op_util.h"

namespace sparsec {

using CheckFn = bool (*)(const Op&, size_t*, Message*);
using RunFn = bool (*)(const Op&, float*, Message*);

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

#define SPX_DECLARE(code, name, fn)             \
  bool check_##fn(const Op&, size_t*, Message*); \
  bool run_##fn(const Op&, float*, Message*);
SPX_OPS(SPX_DECLARE)

namespace {
struct OpEntry {
  const char* name;
  CheckFn check;
  RunFn run;
};

// Built at compile time: a function-local static would need a thread-safe guard from libc++abi.
constexpr struct OpTable {
  OpEntry entry[size_t(OpCode::kLast) + 1] = {};
  constexpr OpTable() {
#define SPX_ENTRY(code, name, fn) entry[size_t(OpCode::code)] = {name, check_##fn, run_##fn};
    SPX_OPS(SPX_ENTRY)
  }
} kOpTable;

const OpEntry* entry(uint32_t opcode) {
  if (opcode < 1 || opcode > uint32_t(OpCode::kLast)) return nullptr;
  return kOpTable.entry[opcode].run ? &kOpTable.entry[opcode] : nullptr;
}
}  // namespace

const char* opcode_name(uint32_t opcode) {
  const OpEntry* e = entry(opcode);
  return e ? e->name : nullptr;
}

bool check_op(const Op& op, size_t* scratch_floats, Message* err) {
  const OpEntry* e = entry(uint32_t(op.code));
  SPX_REQUIRE(e, "unknown opcode %u", uint32_t(op.code));
  *scratch_floats = 0;
  SPX_REQUIRE(!op.in.empty() && op.in[0] && !op.out.empty(), "needs at least one input and one output");
  for (int64_t v : op.iattr) SPX_REQUIRE(v <= kMaxAttr && v >= -kMaxAttr, "attribute value out of range");
  return e->check(op, scratch_floats, err);
}

bool run_op(const Op& op, float* scratch, Message* err) { return entry(uint32_t(op.code))->run(op, scratch, err); }

}  // namespace sparsec
