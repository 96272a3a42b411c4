// Global average pooling of NCHW channels, 8 partial sums in two SIMD128 registers.
#include "f32x4_wasmsimd.h"

#ifdef SPARSEC_KERNELS_WASMSIMD
#include "../common/pool2d_chw.h"

namespace sparsec {

void f32_gavgpool_cw_u8__wasmsimd(size_t channels, size_t n, const float* x, float* y) {
  pool2d::gavgpool_cw<wasmsimd::F32x4>(channels, n, x, y);
}

}  // namespace sparsec
#endif
