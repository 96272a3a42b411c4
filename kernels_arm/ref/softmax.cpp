// Scalar reference softmax over contiguous rows.
#include <cmath>

#include "sparsec/kernels.h"

namespace sparsec {

void f32_softmax__scalar(const float* x, float* y, size_t rows, size_t len) {
  for (size_t r = 0; r < rows; ++r, x += len, y += len) {
    float m = x[0];
    for (size_t k = 1; k < len; ++k) m = x[k] > m ? x[k] : m;
    float sum = 0.0f;
    for (size_t k = 0; k < len; ++k) sum += y[k] = std::exp(x[k] - m);
    const float inv = 1.0f / sum;
    for (size_t k = 0; k < len; ++k) y[k] *= inv;
  }
}

}  // namespace sparsec
