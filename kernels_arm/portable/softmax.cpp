// Softmax over contiguous rows: exp without libm and the max / sum reductions over independent lanes vectorise.
#include "exp_poly.h"
#include "sparsec/kernels.h"

namespace sparsec {

void f32_softmax__portable(const float* x, float* y, size_t rows, size_t len) {
  constexpr size_t kLanes = 16;  // partial maxima and sums: more than one vector, so GCC vectorises across them
  for (size_t r = 0; r < rows; ++r, x += len, y += len) {
    float lane_max[kLanes], lane_sum[kLanes] = {};
    for (size_t l = 0; l < kLanes; ++l) lane_max[l] = x[0];
    size_t k = 0;
    for (; k + kLanes <= len; k += kLanes)
      for (size_t l = 0; l < kLanes; ++l) lane_max[l] = x[k + l] > lane_max[l] ? x[k + l] : lane_max[l];
    float m = x[0];
    for (size_t l = 0; l < kLanes; ++l) m = lane_max[l] > m ? lane_max[l] : m;
    for (; k < len; ++k) m = x[k] > m ? x[k] : m;
    for (k = 0; k + kLanes <= len; k += kLanes)
      for (size_t l = 0; l < kLanes; ++l) lane_sum[l] += y[k + l] = portable::exp_poly(x[k + l] - m);
    float sum = 0.0f;
    for (; k < len; ++k) sum += y[k] = portable::exp_poly(x[k] - m);
    for (size_t l = 0; l < kLanes; ++l) sum += lane_sum[l];
    const float inv = 1.0f / sum;
    for (k = 0; k < len; ++k) y[k] *= inv;
  }
}

}  // namespace sparsec
