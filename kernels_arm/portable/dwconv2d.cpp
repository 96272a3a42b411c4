// Portable depthwise convolution: each output row accumulates whole-row, bounds-free tap passes.
#include <algorithm>
#include <cstddef>

#include "sparsec/kernels.h"

namespace sparsec {
namespace {

// Outputs o in [lo, hi) read input o * stride + offset inside [0, extent): the clipped range
// replaces per-element bounds checks, so padding costs nothing and loops stay branch-free.
struct Range {
  size_t lo, hi;
};
inline Range valid_outputs(size_t out, size_t extent, size_t stride, ptrdiff_t offset) {
  const ptrdiff_t s = static_cast<ptrdiff_t>(stride);
  const ptrdiff_t lo = offset >= 0 ? 0 : (-offset + s - 1) / s;
  const ptrdiff_t last_input = static_cast<ptrdiff_t>(extent) - 1 - offset;
  const ptrdiff_t hi = last_input < 0 ? 0 : last_input / s + 1;
  const size_t clipped_hi = std::min(out, static_cast<size_t>(hi));
  return {std::min(static_cast<size_t>(lo), clipped_hi), clipped_hi};
}

// y_row[lo:hi] += weight * x_row[o * step + offset]; a compile-time stride (0 = runtime)
// lets the loads vectorise (contiguous, or even/odd deinterleave for stride 2).
template <size_t kStride>
void accumulate_tap(float weight, const float* x_row, size_t step, ptrdiff_t offset, Range r,
                    float* y_row) {
  const float* x = x_row + (static_cast<ptrdiff_t>(r.lo * step) + offset);  // first input read
  float* y = y_row + r.lo;
  const size_t n = r.hi - r.lo;
  for (size_t o = 0; o < n; ++o) y[o] += weight * x[o * step];
}

template <size_t kStride>
void dwconv_plane(const Conv2dShape& s, const float* x, const float* w, float bias, float* y) {
  const size_t step = kStride ? kStride : s.SW;  // constant strides also make the range cheap
  for (size_t oh = 0; oh < s.OH; ++oh) {
    float* y_row = y + oh * s.OW;
    std::fill(y_row, y_row + s.OW, bias);
    for (size_t kh = 0; kh < s.KH; ++kh) {
      const ptrdiff_t ih = static_cast<ptrdiff_t>(oh * s.SH + kh * s.DH) - static_cast<ptrdiff_t>(s.PT);
      if (ih < 0 || ih >= static_cast<ptrdiff_t>(s.H)) continue;
      const float* x_row = x + ih * s.W;
      for (size_t kw = 0; kw < s.KW; ++kw) {
        const ptrdiff_t offset = static_cast<ptrdiff_t>(kw * s.DW) - static_cast<ptrdiff_t>(s.PL);
        const Range r = valid_outputs(s.OW, s.W, step, offset);
        accumulate_tap<kStride>(w[kh * s.KW + kw], x_row, step, offset, r, y_row);
      }
    }
  }
}

}  // namespace

void f32_dwconv2d__portable(const Conv2dShape& s, const float* x, const float* w,
                            const float* bias, const ActParams& act, float* y) {
  const size_t in_plane = s.H * s.W, out_plane = s.OH * s.OW, taps = s.KH * s.KW;
  for (size_t c = 0; c < s.C; ++c) {
    const float* x_c = x + c * in_plane;
    const float* w_c = w + c * taps;
    float* y_c = y + c * out_plane;
    const float b = bias ? bias[c] : 0.0f;
    if (s.SW == 1) dwconv_plane<1>(s, x_c, w_c, b, y_c);
    else if (s.SW == 2) dwconv_plane<2>(s, x_c, w_c, b, y_c);
    else dwconv_plane<0>(s, x_c, w_c, b, y_c);
    f32_activation__portable(act, y_c, out_plane);
  }
}

}  // namespace sparsec
