// Max pooling on NCHW planes, kLanes output columns per generic vector.
#include "../common/pool2d_chw.h"
#include "f32_vec.h"

namespace sparsec {

void f32_maxpool2d_chw__portable(const Pool2dShape& s, size_t planes, const float* x, float* y) {
  pool2d::pool2d_chw<portable::F32Vec, true>(s, planes, x, y);
}

}  // namespace sparsec
