// Scalar reference pooling: every output from its own window, no edge/interior split.
#include "pool2d_window.h"

namespace sparsec {
namespace {

template <bool kMax>
void pool_planes(const Pool2dShape& s, size_t planes, const float* x, float* y) {
  for (size_t p = 0; p < planes; ++p, x += s.H * s.W)
    for (size_t oh = 0; oh < s.OH; ++oh)
      for (size_t ow = 0; ow < s.OW; ++ow) *y++ = pool2d::window<kMax>(s, x, oh, ow);
}

}  // namespace

void f32_maxpool2d__scalar(const Pool2dShape& s, size_t planes, const float* x, float* y) {
  pool_planes<true>(s, planes, x, y);
}

void f32_avgpool2d__scalar(const Pool2dShape& s, size_t planes, const float* x, float* y) {
  pool_planes<false>(s, planes, x, y);
}

void f32_gavgpool_cw__scalar(size_t channels, size_t n, const float* x, float* y) {
  for (size_t c = 0; c < channels; ++c, x += n) {
    float sum = 0.0f;
    for (size_t i = 0; i < n; ++i) sum += x[i];
    y[c] = sum / static_cast<float>(n);
  }
}

}  // namespace sparsec
