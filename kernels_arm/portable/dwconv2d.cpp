// Portable depthwise convolution: bounds-free vectorisable interior, checked border, fused epilogue.
#include <algorithm>
#include <cstddef>

#include "../ref/conv_window.h"
#include "sparsec/kernels.h"

namespace sparsec {
namespace {

// Interior outputs computed together; 16 floats fill a few vector registers on every target.
constexpr size_t kBlock = 16;

// Half-open range [lo, hi) of outputs whose whole window lies inside an input of this extent.
struct Range {
  size_t lo, hi;
};
Range interior_range(size_t out, size_t in, size_t stride, size_t pad, size_t taps, size_t dilation) {
  const size_t lo = std::min(out, (pad + stride - 1) / stride);
  const size_t span = (taps - 1) * dilation;  // input extent of a window minus one
  const size_t hi = in + pad < span + 1 ? 0 : std::min(out, (in - 1 + pad - span) / stride + 1);
  return {lo, std::max(lo, hi)};
}

// Outputs [cols.lo, cols.hi) of row oh with bounds checks, for windows overlapping the padding.
void border_outputs(const Conv2dShape& s, const float* x, const float* w, float bias, size_t oh,
                    Range cols, float* y_row) {
  for (size_t ow = cols.lo; ow < cols.hi; ++ow) y_row[ow] = conv_window::accumulate_window(s, x, w, oh, ow, bias);
}

// WIDTH adjacent interior outputs starting at (oh, ow); kStride 0 means the stride is s.SW.
// A compile-time stride lets the loads along OW vectorise (contiguous or even/odd pairs).
template <size_t WIDTH, size_t kStride>
void interior_outputs(const Conv2dShape& s, const float* x, const float* w, float bias, size_t oh,
                      size_t ow, float* y) {
  const size_t stride = kStride ? kStride : s.SW;
  float acc[WIDTH];
  for (size_t j = 0; j < WIDTH; ++j) acc[j] = bias;
  const float* x_origin = x + (oh * s.SH - s.PT) * s.W + (ow * stride - s.PL);
  for (size_t kh = 0; kh < s.KH; ++kh) {
    const float* x_row = x_origin + kh * s.DH * s.W;
    for (size_t kw = 0; kw < s.KW; ++kw) {
      const float weight = w[kh * s.KW + kw];
      const float* x_tap = x_row + kw * s.DW;
      for (size_t j = 0; j < WIDTH; ++j) acc[j] += weight * x_tap[j * stride];
    }
  }
  for (size_t j = 0; j < WIDTH; ++j) y[j] = acc[j];
}

template <size_t kStride>
void interior_row(const Conv2dShape& s, const float* x, const float* w, float bias, size_t oh,
                  Range cols, float* y_row) {
  size_t ow = cols.lo;
  for (; ow + kBlock <= cols.hi; ow += kBlock)
    interior_outputs<kBlock, kStride>(s, x, w, bias, oh, ow, y_row + ow);
  for (; ow < cols.hi; ++ow) interior_outputs<1, kStride>(s, x, w, bias, oh, ow, y_row + ow);
}

}  // namespace

void f32_dwconv2d__portable(const Conv2dShape& s, const float* x, const float* w,
                            const float* bias, const ActParams& act, float* y) {
  const Range rows = interior_range(s.OH, s.H, s.SH, s.PT, s.KH, s.DH);
  const Range cols = interior_range(s.OW, s.W, s.SW, s.PL, s.KW, s.DW);
  for (size_t c = 0; c < s.C; ++c) {
    const float* x_c = x + c * s.H * s.W;
    const float* w_c = w + c * s.KH * s.KW;
    const float b = bias ? bias[c] : 0.0f;
    for (size_t oh = 0; oh < s.OH; ++oh) {
      float* y_row = y + (c * s.OH + oh) * s.OW;
      if (oh < rows.lo || oh >= rows.hi) {
        border_outputs(s, x_c, w_c, b, oh, {0, s.OW}, y_row);
      } else {
        border_outputs(s, x_c, w_c, b, oh, {0, cols.lo}, y_row);
        if (s.SW == 1) interior_row<1>(s, x_c, w_c, b, oh, cols, y_row);
        else if (s.SW == 2) interior_row<2>(s, x_c, w_c, b, oh, cols, y_row);
        else interior_row<0>(s, x_c, w_c, b, oh, cols, y_row);
        border_outputs(s, x_c, w_c, b, oh, {cols.hi, s.OW}, y_row);
      }
      f32_activation__portable(act, y_row, s.OW);
    }
  }
}

}  // namespace sparsec
