// Convolution as banded im2col + GEMM (both through the dispatch): y_g[:, band] = W_g * cols(band) + bias, activation fused.
#include <algorithm>

#include "sparsec/kernels.h"

namespace sparsec {
namespace {

size_t band_rows(const Conv2dShape& s) { return std::max<size_t>(1, std::min(s.OH, kIm2colBandColumns / std::max<size_t>(s.OW, 1))); }

}  // namespace

size_t f32_conv2d_im2col_scratch(const Conv2dShape& s) {
  return (s.C / s.G) * s.KH * s.KW * band_rows(s) * s.OW;
}

void f32_conv2d_im2col__portable(const Conv2dShape& s, const float* x, const float* w, const float* bias,
                                 const ActParams& act, float* y, float* scratch) {
  const size_t group_in = s.C / s.G, group_out = s.M / s.G, rows = group_in * s.KH * s.KW;
  const size_t plane = s.OH * s.OW, step = band_rows(s);
  for (size_t g = 0; g < s.G; ++g) {
    for (size_t oh0 = 0; oh0 < s.OH; oh0 += step) {
      const size_t oh1 = std::min(s.OH, oh0 + step), columns = (oh1 - oh0) * s.OW;
      f32_im2col(s, x, g * group_in, group_in, oh0, oh1, scratch);
      f32_gemm({group_out, columns, rows, w + g * group_out * rows, rows, scratch, columns,
                          y + g * group_out * plane + oh0 * s.OW, plane, bias ? bias + g * group_out : nullptr,
                          bias ? BiasMode::kPerRow : BiasMode::kNone, act});
    }
  }
}

}  // namespace sparsec
