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

void transpose_matrices_f32(const float* x, float* y, size_t batch, size_t rows, size_t cols) {
  constexpr size_t kTile = 16;
  for (size_t b = 0; b < batch; ++b, x += rows * cols, y += rows * cols)
    for (size_t r0 = 0; r0 < rows; r0 += kTile)
      for (size_t c0 = 0; c0 < cols; c0 += kTile) {
        const size_t r1 = std::min(rows, r0 + kTile), c1 = std::min(cols, c0 + kTile);
        for (size_t c = c0; c < c1; ++c)
          for (size_t r = r0; r < r1; ++r) y[c * rows + r] = x[r * cols + c];
      }
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
