// Global average pooling of NCHW channels, two generic vectors of partial sums.
#include "../common/pool2d_chw.h"
#include "f32_vec.h"

namespace sparsec {

void f32_gavgpool_cw__portable(size_t channels, size_t n, const float* x, float* y) {
  pool2d::gavgpool_cw<portable::F32Vec>(channels, n, x, y);
}

}  // namespace sparsec
