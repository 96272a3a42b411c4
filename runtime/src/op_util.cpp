// Shape checks, broadcasting plans and activation parameters shared by all ops.
#include "op_util.h"

#include <algorithm>


namespace sparsec {

ShapeText shape_str(const Tensor& t) {
  ShapeText s;
  size_t n = 0;
  s.text[n++] = '[';
  for (uint32_t i = 0; i < t.ndim && n < sizeof s.text; ++i)
    n += format_into(s.text + n, sizeof s.text - n, i ? ",%lld" : "%lld", static_cast<long long>(t.dims[i]));
  if (n < sizeof s.text) format_into(s.text + n, sizeof s.text - n, "]");
  return s;
}

size_t product(const int64_t* dims, size_t begin, size_t end) {
  size_t p = 1;
  for (size_t i = begin; i < end; ++i) p *= size_t(dims[i]);
  return p;
}

bool same_numel(const Op& op, Message* err) {
  SPX_REQUIRE(op.out[0]->numel == op.in[0]->numel, "output size differs from input");
  return true;
}

const Tensor* optional_input(const Op& op, size_t i) { return i < op.in.size() ? op.in[i] : nullptr; }

bool same_shape(const Tensor& a, const Tensor& b) {
  if (a.ndim != b.ndim) return false;
  for (uint32_t d = 0; d < a.ndim; ++d)
    if (a.dims[d] != b.dims[d]) return false;
  return true;
}

namespace {

typedef float F4 __attribute__((vector_size(4 * sizeof(float))));  // SSE2, NEON, wasm simd128

F4 load4(const float* p) {
  F4 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// y[j * ldy + i] = x[i * ldx + j] for a 4 x 4 block, in registers (unpack pairs, then halves).
inline void transpose4x4(const float* x, size_t ldx, float* y, size_t ldy) {
  const F4 a = load4(x), b = load4(x + ldx), c = load4(x + 2 * ldx), d = load4(x + 3 * ldx);
  const F4 ab_lo = __builtin_shufflevector(a, b, 0, 4, 1, 5), ab_hi = __builtin_shufflevector(a, b, 2, 6, 3, 7);
  const F4 cd_lo = __builtin_shufflevector(c, d, 0, 4, 1, 5), cd_hi = __builtin_shufflevector(c, d, 2, 6, 3, 7);
  const F4 out[4] = {__builtin_shufflevector(ab_lo, cd_lo, 0, 1, 4, 5), __builtin_shufflevector(ab_lo, cd_lo, 2, 3, 6, 7),
                     __builtin_shufflevector(ab_hi, cd_hi, 0, 1, 4, 5), __builtin_shufflevector(ab_hi, cd_hi, 2, 3, 6, 7)};
  for (size_t j = 0; j < 4; ++j) std::memcpy(y + j * ldy, &out[j], sizeof out[j]);
}

}  // namespace

void transpose_f32(const float* x, size_t ldx, float* y, size_t ldy, size_t rows, size_t cols) {
  constexpr size_t kTile = 32;
  // The inner block loop steps along the side with the smaller stride: long power-of-two strides (512 floats and
  // up) in the inner loop thrash a few cache sets (a 512 x 128 transpose twice as slow).
  const bool down = ldy > ldx;
  const size_t x_inner = down ? 4 * ldx : 4, y_inner = down ? 4 : 4 * ldy;
  for (size_t r0 = 0; r0 < rows; r0 += kTile)
    for (size_t c0 = 0; c0 < cols; c0 += kTile) {
      const size_t r1 = std::min(rows, r0 + kTile), c1 = std::min(cols, c0 + kTile);
      const size_t r4 = r0 + (r1 - r0) / 4 * 4, c4 = c0 + (c1 - c0) / 4 * 4;
      const size_t n_outer = (down ? c4 - c0 : r4 - r0) / 4, n_inner = (down ? r4 - r0 : c4 - c0) / 4;
      for (size_t o = 0; o < n_outer; ++o) {
        const float* xb = x + r0 * ldx + c0 + o * (down ? 4 : 4 * ldx);
        float* yb = y + c0 * ldy + r0 + o * (down ? 4 * ldy : 4);
        for (size_t i = 0; i < n_inner; ++i) transpose4x4(xb + i * x_inner, ldx, yb + i * y_inner, ldy);
      }
      for (size_t c = c0; c < c1; ++c)  // the edges: rows past r4, then every row of the columns past c4
        for (size_t r = c < c4 ? r4 : r0; r < r1; ++r) y[c * ldy + r] = x[r * ldx + c];
    }
}

void transpose_matrices_f32(const float* x, float* y, size_t batch, size_t rows, size_t cols) {
  for (size_t b = 0; b < batch; ++b, x += rows * cols, y += rows * cols) transpose_f32(x, cols, y, rows, rows, cols);
}

int64_t load_integer(const uint8_t* data, uint8_t dtype, size_t i) {
  switch (dtype) {
    case SPARSEC_INT64: return reinterpret_cast<const int64_t*>(data)[i];
    case SPARSEC_INT32: return reinterpret_cast<const int32_t*>(data)[i];
    case SPARSEC_INT8: return reinterpret_cast<const int8_t*>(data)[i];
    default: return data[i];  // uint8, bool
  }
}

void store_integer(uint8_t* data, uint8_t dtype, size_t i, int64_t v) {
  switch (dtype) {
    case SPARSEC_INT64: reinterpret_cast<int64_t*>(data)[i] = v; break;
    case SPARSEC_INT32: reinterpret_cast<int32_t*>(data)[i] = int32_t(uint32_t(uint64_t(v))); break;
    case SPARSEC_BOOL: data[i] = v != 0; break;
    default: data[i] = uint8_t(uint64_t(v)); break;  // uint8, int8
  }
}

void contiguous_strides(const Tensor& t, int64_t* strides) {
  int64_t s = 1;
  for (int d = int(t.ndim) - 1; d >= 0; --d) {
    strides[d] = s;
    s *= t.dims[d];
  }
}

bool make_broadcast(const Tensor& out, const Tensor* const* operands, size_t n, Broadcast* b) {
  int64_t dims[kMaxDims];
  int64_t stride[kMaxOperands][kMaxDims];
  const size_t nd = out.ndim == 0 ? 1 : out.ndim;
  for (size_t d = 0; d < nd; ++d) dims[d] = out.ndim == 0 ? 1 : out.dims[d];
  for (size_t k = 0; k < n; ++k) {
    const Tensor& t = *operands[k];
    if (t.ndim > nd) return false;
    int64_t s = 1;
    for (int d = int(nd) - 1; d >= 0; --d) {
      const int td = d - int(nd - t.ndim);
      const int64_t extent = td >= 0 ? t.dims[td] : 1;
      if (extent != dims[d] && extent != 1) return false;
      stride[k][d] = extent == 1 ? 0 : s;
      s *= extent;
    }
  }
  // Merge neighbouring dims that every operand walks contiguously; drop size-1 dims.
  b->n_operands = n;
  b->ndim = 0;
  for (size_t d = 0; d < nd; ++d) {
    if (dims[d] == 1 && nd > 1) continue;
    bool merge = b->ndim > 0;
    for (size_t k = 0; k < n && merge; ++k)
      merge = b->stride[k][b->ndim - 1] == stride[k][d] * dims[d];
    if (merge) {
      b->dims[b->ndim - 1] *= dims[d];
      for (size_t k = 0; k < n; ++k) b->stride[k][b->ndim - 1] = stride[k][d];
    } else {
      b->dims[b->ndim] = dims[d];
      for (size_t k = 0; k < n; ++k) b->stride[k][b->ndim] = stride[k][d];
      ++b->ndim;
    }
  }
  if (b->ndim == 0) {
    b->ndim = 1;
    b->dims[0] = 1;
    for (size_t k = 0; k < n; ++k) b->stride[k][0] = 0;
  }
  return true;
}

}  // namespace sparsec
