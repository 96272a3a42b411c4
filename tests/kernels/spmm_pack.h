// Test-only packers of sparsec/spmm.h's formats from dense weights (the kernel test and kernels_bench.cpp);
// the compiler has its own (compiler/sparsec), these only make inputs for the kernels.
#pragma once
#include <cstddef>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

namespace sparsec {
namespace spmm_pack {

struct Blocked {
  std::vector<float> values;
  std::vector<int32_t> deltas;
  std::vector<uint32_t> nnz;
  int32_t first = 0;
  std::vector<size_t> channels;  // the kept channels in block order
};

// The BLOCKED format from dense w[M, K]; the read-ahead padding is NaN, so using it shows in a result.
inline Blocked blocked(const std::vector<float>& w, const std::vector<float>& bias, size_t M, size_t K, size_t N,
                       size_t MB) {
  Blocked p;
  for (size_t row = 0; row < M;) {
    const size_t mb = row + MB <= M ? MB : 1;
    for (size_t r = 0; r < mb; ++r) p.values.push_back(bias[row + r]);
    uint32_t kept = 0;
    for (size_t k = 0; k < K; ++k) {
      bool any = false;
      for (size_t r = 0; r < mb; ++r) any |= w[(row + r) * K + k] != 0.0f;
      if (!any) continue;
      for (size_t r = 0; r < mb; ++r) p.values.push_back(w[(row + r) * K + k]);
      p.channels.push_back(k);
      ++kept;
    }
    p.nnz.push_back(kept);
    row += mb;
  }
  p.values.insert(p.values.end(), 4, std::numeric_limits<float>::quiet_NaN());
  const int64_t row_bytes = static_cast<int64_t>(N * sizeof(float));
  const std::vector<size_t>& c = p.channels;
  if (!c.empty()) p.first = static_cast<int32_t>(c[0] * row_bytes);
  for (size_t i = 0; i < c.size(); ++i)
    p.deltas.push_back(static_cast<int32_t>((int64_t(c[(i + 1) % c.size()]) - int64_t(c[i])) * row_bytes));
  p.deltas.push_back(0);
  return p;
}

struct TwoOfFour {
  std::vector<float> values;
  std::vector<uint8_t> index;
  std::vector<float> dense;  // the same weights as w[M, K]
};

// Random 2:4 weights (K % 4 == 0) in [-1, 1]; each kept weight is nonzero with probability density.
inline TwoOfFour random_2of4(size_t M, size_t K, float density, std::mt19937& rng) {
  static const uint8_t kPairs[6] = {0 | 1 << 2, 0 | 2 << 2, 0 | 3 << 2, 1 | 2 << 2, 1 | 3 << 2, 2 | 3 << 2};
  std::uniform_real_distribution<float> value(-1.0f, 1.0f), unit(0.0f, 1.0f);
  TwoOfFour p;
  p.dense.assign(M * K, 0.0f);
  for (size_t m = 0; m < M; ++m) {
    p.values.push_back(value(rng));  // bias
    for (size_t g = 0; g < K / 4; ++g) {
      const uint8_t pair = kPairs[rng() % 6];
      p.index.push_back(pair);
      for (size_t i = 0; i < 2; ++i) {
        const float w = value(rng), kept = unit(rng) < density ? w : 0.0f;
        p.values.push_back(kept);
        p.dense[m * K + 4 * g + (i == 0 ? pair & 3 : pair >> 2)] = kept;
      }
    }
  }
  return p;
}

}  // namespace spmm_pack
}  // namespace sparsec
