// Max pooling on NCHW planes, 4 output columns per NEON register.
#include "f32x4_neon.h"

#ifdef SPARSEC_KERNELS_NEON
#include "../common/pool2d_chw.h"

namespace sparsec {

void f32_maxpool2d_chw_u4__neon(const Pool2dShape& s, size_t planes, const float* x, float* y) {
  pool2d::pool2d_chw<neon::F32x4, true>(s, planes, x, y);
}

}  // namespace sparsec
#endif
