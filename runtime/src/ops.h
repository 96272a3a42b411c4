// Runtime ops: the tensors and op records the executor runs. Opcodes, attribute layouts and dtype rules come
// from the contract (contract.h, op_attrs.h: generated from compiler/sparsec/contract/schema.py); each op adds
// its shape checks (check_<op>) and its execution (run_<op>) in ops_nn.cpp / ops_tensor.cpp.
#pragma once
#include <cstddef>
#include <cstdint>

#include "artifact.h"
#include "contract.h"

namespace sparsec {

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
  template <typename T>
  T* as() const { return reinterpret_cast<T*>(data); }
};

struct Op {
  OpCode code;
  Array<const Tensor*> in;  // null for an absent optional input
  Array<Tensor*> out;
  Array<int64_t> iattr;
  Array<float> fattr;
  uint64_t scratch_bytes = 0;  // planned by the compiler; check_op verifies it is enough
  const char* name = "";
};

// Validates op against the contract (arity, dtypes, attribute counts and ranges) and its own shape rules.
bool check_op(const Op& op, Message* err);
// Runs a checked op. Fails only on data-dependent errors (e.g. a gather index out of range).
bool run_op(const Op& op, uint8_t* scratch, Message* err);
// Whether the op may write its output over its first input (element-wise, same size).
bool op_in_place_safe(OpCode code);

}  // namespace sparsec
