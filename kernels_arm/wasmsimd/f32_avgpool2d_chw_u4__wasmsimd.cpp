// Average pooling on NCHW planes, 4 output columns per SIMD128 register.
#include "f32x4_wasmsimd.h"

#ifdef SPARSEC_KERNELS_WASMSIMD
#include "../common/pool2d_chw.h"

namespace sparsec {

void f32_avgpool2d_chw_u4__wasmsimd(const Pool2dShape& s, size_t planes, const float* x, float* y) {
  pool2d::pool2d_chw<wasmsimd::F32x4, false>(s, planes, x, y);
}

}  // namespace sparsec
#endif
