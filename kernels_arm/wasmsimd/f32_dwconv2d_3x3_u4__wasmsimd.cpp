// Depthwise 3x3 convolution on NCHW planes (stride 1, 2 or any), 4 outputs per SIMD128 register.
#include "f32x4_wasmsimd.h"

#ifdef SPARSEC_KERNELS_WASMSIMD
#include "../common/dwconv2d_3x3.h"

namespace sparsec {

void f32_dwconv2d_3x3_u4__wasmsimd(const Conv2dShape& s, const float* x, const float* w, const float* bias,
                               const ActParams& act, float* y) {
  dwconv2d::dwconv2d_3x3<wasmsimd::F32x4>(s, x, w, bias, act, y);
}

}  // namespace sparsec
#endif
