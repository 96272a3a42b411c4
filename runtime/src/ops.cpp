// The op table (from the contract's SPARSEC_OPS list) and the checks every op shares: arity, dtypes and
// attributes as the contract declares them, before the op's own shape rules.
#include "ops.h"

#include "op_util.h"

namespace sparsec {

#define SPX_DECLARE(Name, fn)            \
  bool check_##fn(const Op&, Message*); \
  bool run_##fn(const Op&, uint8_t*, Message*);
SPARSEC_OPS(SPX_DECLARE)

namespace {
using CheckFn = bool (*)(const Op&, Message*);
using RunFn = bool (*)(const Op&, uint8_t*, Message*);

struct OpEntry {
  CheckFn check;
  RunFn run;
};

// Built at compile time: a function-local static would need a thread-safe guard from libc++abi.
constexpr struct OpTable {
  OpEntry entry[sizeof(kOpMeta) / sizeof(kOpMeta[0])] = {};  // by kOpIndex row
  constexpr OpTable() {
#define SPX_ENTRY(Name, fn) entry[kOpIndex[size_t(OpCode::k##Name)]] = {check_##fn, run_##fn};
    SPARSEC_OPS(SPX_ENTRY)
  }
} kOpTable;

const OpEntry* entry(uint32_t opcode) {
  if (opcode < 1 || opcode > uint32_t(OpCode::kLast)) return nullptr;
  const OpEntry& e = kOpTable.entry[kOpIndex[opcode]];
  return e.run ? &e : nullptr;
}

const SlotMeta& slot(const SlotMeta* slots, uint32_t n, bool variadic, size_t i) {
  return slots[variadic && i >= n ? n - 1 : i];
}

// Counts, optional slots and type variables of inputs and outputs, as the contract declares them.
bool check_slots(const OpMeta& m, const Op& op, Message* err) {
  uint32_t required = 0;
  for (uint32_t i = 0; i < m.n_in; ++i) required += m.in[i].optional ? 0 : 1;
  SPX_REQUIRE(op.in.size() >= required && (m.variadic_in || op.in.size() <= m.n_in),
              "takes %u..%u inputs, got %zu", required, m.n_in, op.in.size());
  uint32_t required_out = 0;  // trailing optional outputs may be left out
  for (uint32_t i = 0; i < m.n_out; ++i) required_out = m.out[i].optional ? required_out : i + 1;
  SPX_REQUIRE(m.variadic_out ? op.out.size() >= m.n_out : op.out.size() >= required_out && op.out.size() <= m.n_out,
              "takes %u output(s), got %zu", m.n_out, op.out.size());
  int dtype_of[4] = {-1, -1, -1, -1};
  auto typed = [&](const Tensor* t, const SlotMeta& s, const char* role, size_t i) {
    if (!t) {
      if (!s.optional) err->format("%s %zu is required", role, i);
      return s.optional;
    }
    if (!((m.types[s.type] >> t->dtype) & 1u)) {
      err->format("%s %zu has dtype %s, which this op does not take", role, i, sparsec_dtype_name(t->dtype));
      return false;
    }
    if (dtype_of[s.type] >= 0 && dtype_of[s.type] != t->dtype) {
      err->format("%s %zu has dtype %s where %s is expected", role, i, sparsec_dtype_name(t->dtype),
                  sparsec_dtype_name(dtype_of[s.type]));
      return false;
    }
    dtype_of[s.type] = t->dtype;
    return true;
  };
  for (size_t i = 0; i < op.in.size(); ++i)
    if (!typed(op.in[i], slot(m.in, m.n_in, m.variadic_in, i), "input", i)) return false;
  for (size_t i = 0; i < op.out.size(); ++i)
    if (!typed(op.out[i], slot(m.out, m.n_out, m.variadic_out, i), "output", i)) return false;
  return true;
}

bool check_attributes(const OpMeta& m, const Op& op, Message* err) {
  const size_t rank = op.in.size() && op.in[0] ? op.in[0]->ndim : 0;
  size_t expected = 0;
  const AttrMeta* attrs = kAttrMeta + m.first_iattr;
  for (uint32_t a = 0; a < m.n_iattr; ++a) expected += attrs[a].count ? attrs[a].count : rank;
  SPX_REQUIRE(op.iattr.size() == expected, "has %zu integer attributes, expected %zu", op.iattr.size(), expected);
  SPX_REQUIRE(op.fattr.size() == m.n_fattr, "has %zu float attributes, expected %u", op.fattr.size(), m.n_fattr);
  size_t i = 0;
  for (uint32_t a = 0; a < m.n_iattr; ++a) {
    const AttrMeta& attr = attrs[a];
    for (size_t k = 0; k < (attr.count ? attr.count : rank); ++k, ++i)
      SPX_REQUIRE(op.iattr[i] >= attr.low && op.iattr[i] <= attr.high, "attribute %s = %lld is outside [%lld, %lld]",
                  attr.name, static_cast<long long>(op.iattr[i]), static_cast<long long>(attr.low),
                  static_cast<long long>(attr.high));
  }
  return true;
}
// No op's work buffer (im2col columns, attention score rows, transposes) outgrows its tensors by more than this:
// a hostile artifact cannot make the session allocate gigabytes for a small op.
constexpr uint64_t kScratchPerTensorByte = 256, kScratchSlack = uint64_t(64) << 20;

bool check_scratch_bound(const Op& op, Message* err) {
  uint64_t tensor_bytes = 0;
  for (size_t i = 0; i < op.in.size(); ++i) tensor_bytes += op.in[i] ? op.in[i]->nbytes : 0;
  for (size_t i = 0; i < op.out.size(); ++i) tensor_bytes += op.out[i]->nbytes;
  SPX_REQUIRE(op.scratch_bytes <= kScratchPerTensorByte * tensor_bytes + kScratchSlack,
              "scratch of %llu bytes is far beyond what an op on %llu bytes of tensors needs",
              static_cast<unsigned long long>(op.scratch_bytes), static_cast<unsigned long long>(tensor_bytes));
  return true;
}
}  // namespace

const char* opcode_name(uint32_t opcode) { return entry(opcode) ? op_meta(opcode).name : nullptr; }

bool check_op(const Op& op, Message* err) {
  const OpEntry* e = entry(uint32_t(op.code));
  SPX_REQUIRE(e || !op_meta(uint32_t(op.code)).name, "op %s is not in this runtime build (its op family was left out):"
              " use the runtime sparsec compile wrote beside this artifact", op_meta(uint32_t(op.code)).name);
  SPX_REQUIRE(e, "unknown opcode %u", uint32_t(op.code));
  const OpMeta& m = op_meta(uint32_t(op.code));
  return check_slots(m, op, err) && check_attributes(m, op, err) && check_scratch_bound(op, err) && e->check(op, err);
}

bool run_op(const Op& op, uint8_t* scratch, Message* err) { return entry(uint32_t(op.code))->run(op, scratch, err); }

bool op_in_place_safe(OpCode code) { return entry(uint32_t(code)) && op_meta(uint32_t(code)).in_place; }

}  // namespace sparsec
