// Helpers shared by the op implementations: shape checks with messages, broadcasting, odometers.
#pragma once
#include <cstring>

#include "op_attrs.h"
#include "ops.h"
#include "sparsec/kernels.h"
#include "sparsec_rt.h"

namespace sparsec {

// "[1,3,224,224]"; a temporary, so shape_str(t).text lives until the end of the full expression.
struct ShapeText {
  char text[kMaxDims * 21 + 3];
};
ShapeText shape_str(const Tensor& t);

// Evaluates to false from the enclosing check function with *err set to the printf-style message.
#define SPX_REQUIRE(cond, ...)     \
  do {                             \
    if (!(cond)) {                 \
      err->format(__VA_ARGS__);    \
      return false;                \
    }                              \
  } while (0)

// The fused activation of an op's attributes (activation, act_alpha, act_beta).
template <typename A>
ActParams act_params(const A& a) {
  return ActParams{a.activation, a.act_alpha, a.act_beta};
}
bool same_numel(const Op& op, Message* err);  // output 0 has input 0's element count
bool same_shape(const Tensor& a, const Tensor& b);
const Tensor* optional_input(const Op& op, size_t i);  // null when absent
size_t product(const int64_t* dims, size_t begin, size_t end);

constexpr size_t kMaxOperands = 3;

// Output iterated as runs along its innermost (collapsed) dimension; operand strides in elements,
// 0 where an operand is broadcast.
struct Broadcast {
  size_t ndim = 0;
  int64_t dims[kMaxDims] = {};
  int64_t stride[kMaxOperands][kMaxDims] = {};
  size_t n_operands = 0;
};

bool make_broadcast(const Tensor& out, const Tensor* const* operands, size_t n, Broadcast* b);

// Calls run(out_offset, operand_offsets, run_length) for each innermost run.
template <typename F>
void for_each_run(const Broadcast& b, F&& run) {
  const size_t nd = b.ndim;
  const int64_t n = b.dims[nd - 1];
  size_t outer = product(b.dims, 0, nd - 1);
  int64_t idx[kMaxDims] = {};
  int64_t off[kMaxOperands] = {};
  size_t out_off = 0;
  for (size_t o = 0; o < outer; ++o, out_off += size_t(n)) {
    run(out_off, off, n);
    for (int d = int(nd) - 2; d >= 0; --d) {
      for (size_t k = 0; k < b.n_operands; ++k) off[k] += b.stride[k][d];
      if (++idx[d] < b.dims[d]) break;
      for (size_t k = 0; k < b.n_operands; ++k) off[k] -= b.stride[k][d] * b.dims[d];
      idx[d] = 0;
    }
  }
}

// Element i of an int64 or int32 index tensor.
inline int64_t index_value(const Tensor& t, size_t i) {
  return t.dtype == SPARSEC_INT64 ? t.as<const int64_t>()[i] : int64_t(t.as<const int32_t>()[i]);
}

// Integer and bool elements widened to int64 (sign- or zero-extended) and narrowed back (wrapping; bool: v != 0):
// one loop serves every integer dtype, which keeps the wasm runtime small.
int64_t load_integer(const uint8_t* data, uint8_t dtype, size_t i);
void store_integer(uint8_t* data, uint8_t dtype, size_t i, int64_t v);

// y[c * ldy + r] = x[r * ldx + c] for r < rows, c < cols: square tiles (reads and writes stay within a few cache
// lines per row) of 4 x 4 blocks transposed in registers.
void transpose_f32(const float* x, size_t ldx, float* y, size_t ldy, size_t rows, size_t cols);
// y[b][cols, rows] = x[b][rows, cols] for batch matrices.
void transpose_matrices_f32(const float* x, float* y, size_t batch, size_t rows, size_t cols);

// Row-major element strides of a tensor's dims.
void contiguous_strides(const Tensor& t, int64_t* strides);

}  // namespace sparsec
