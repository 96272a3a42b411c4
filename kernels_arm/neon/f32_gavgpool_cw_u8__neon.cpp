// Global average pooling of NCHW channels, 8 partial sums in two NEON registers.
#include "f32x4_neon.h"

#ifdef SPARSEC_KERNELS_NEON
#include "../common/pool2d_chw.h"

namespace sparsec {

void f32_gavgpool_cw_u8__neon(size_t channels, size_t n, const float* x, float* y) {
  pool2d::gavgpool_cw<neon::F32x4>(channels, n, x, y);
}

}  // namespace sparsec
#endif
