// Scalar reference SpMM (BLOCKED and 2:4) and the validators of the packed formats.
#include <cstdint>

#include "sparsec/spmm.h"

namespace sparsec {
namespace {

const float* row_at(const float* x, int64_t byte_offset) {
  return reinterpret_cast<const float*>(reinterpret_cast<const char*>(x) + byte_offset);
}

}  // namespace

bool spmm_blocked_valid(size_t M, size_t K, size_t N, size_t MB, const uint32_t* nnz, size_t n_nnz,
                        const int32_t* deltas, size_t n_deltas, int32_t first, size_t n_values) {
  if (MB != 1 && MB != 2 && MB != 4) return false;
  const size_t blocks = spmm_blocks(M, MB);
  if (n_nnz != blocks || (blocks > 0 && !nnz)) return false;
  size_t kept = 0, weights = 0;
  for (size_t b = 0; b < blocks; ++b) {
    if (nnz[b] > K) return false;
    const size_t mb = b < M / MB ? MB : 1;
    kept += nnz[b];
    weights += mb * (1 + size_t{nnz[b]});
  }
  if (n_deltas != kept + 1 || !deltas || n_values != weights + 4) return false;
  // Every row reached must be a whole row of X: offset r * row_bytes with r in [0, K), and an int32 (as first is:
  // a kernel may restart from any of them).
  const int64_t row_bytes = static_cast<int64_t>(N * sizeof(float));
  const auto whole_row = [&](int64_t offset) {
    if (row_bytes == 0) return offset == 0;
    return offset >= 0 && offset <= INT32_MAX && offset % row_bytes == 0 &&
           offset / row_bytes < static_cast<int64_t>(K);
  };
  if (kept == 0) return first == 0;
  int64_t offset = first;
  for (size_t i = 0; i < kept; ++i) {
    if (!whole_row(offset)) return false;
    offset += deltas[i];
  }
  return offset == first;  // the last delta wraps to the first kept channel (the next pixel tile starts there)
}

void f32_spmm__scalar(const SpmmArgs& a) {
  const float* w = a.values;
  const int32_t* delta = a.deltas;
  int64_t offset = a.first;
  for (size_t row = 0, b = 0; row < a.M; ++b) {
    const size_t mb = row + a.MB <= a.M ? a.MB : 1;
    const float* bias = w;
    w += mb;
    for (size_t r = 0; r < mb; ++r)
      for (size_t j = 0; j < a.N; ++j) a.y[(row + r) * a.N + j] = bias[r];
    for (uint32_t c = 0; c < a.nnz[b]; ++c) {
      const float* xrow = row_at(a.x, offset);
      for (size_t r = 0; r < mb; ++r)
        for (size_t j = 0; j < a.N; ++j) a.y[(row + r) * a.N + j] += w[r] * xrow[j];
      w += mb;
      offset += *delta++;
    }
    for (size_t r = 0; r < mb; ++r) f32_activation__scalar(a.act, a.y + (row + r) * a.N, a.N);
    row += mb;
  }
}

bool spmm_2of4_valid(size_t M, size_t K, const uint8_t* index, size_t n_index, size_t n_values) {
  if (K % 4 != 0 || n_index != M * K / 4 || n_values != M * (1 + K / 2)) return false;
  if (n_index > 0 && !index) return false;
  for (size_t i = 0; i < n_index; ++i)
    if (index[i] > 15 || (index[i] & 3) >= (index[i] >> 2)) return false;
  return true;
}

void f32_spmm_2of4__scalar(const Spmm2of4Args& a) {
  const size_t groups = a.K / 4;
  for (size_t m = 0; m < a.M; ++m) {
    const float* w = a.values + m * (1 + a.K / 2);
    const uint8_t* index = a.index + m * groups;
    float* y = a.y + m * a.N;
    for (size_t j = 0; j < a.N; ++j) y[j] = w[0];
    for (size_t g = 0; g < groups; ++g) {
      const float* x0 = a.x + (4 * g + (index[g] & 3)) * a.N;
      const float* x1 = a.x + (4 * g + (index[g] >> 2)) * a.N;
      const float w0 = w[1 + 2 * g], w1 = w[2 + 2 * g];
      for (size_t j = 0; j < a.N; ++j) y[j] = y[j] + w0 * x0[j] + w1 * x1[j];
    }
    f32_activation__scalar(a.act, y, a.N);
  }
}

}  // namespace sparsec
