// Bounds-checked convolution window arithmetic, shared by the reference conv and fast-kernel borders.
#pragma once
#include <cstddef>

#include "sparsec/kernels.h"

namespace sparsec {
namespace conv_window {

// Input coordinate read by output position o at kernel tap t; negative or >= extent means padding.
inline ptrdiff_t input_coord(size_t o, size_t stride, size_t pad, size_t t, size_t dilation) {
  return static_cast<ptrdiff_t>(o * stride + t * dilation) - static_cast<ptrdiff_t>(pad);
}

inline bool inside(ptrdiff_t coord, size_t extent) {
  return coord >= 0 && coord < static_cast<ptrdiff_t>(extent);
}

// acc + the window of one input plane x_c at output (oh, ow) times one KH x KW filter w_c.
inline float accumulate_window(const Conv2dShape& s, const float* x_c, const float* w_c, size_t oh,
                               size_t ow, float acc) {
  for (size_t kh = 0; kh < s.KH; ++kh) {
    const ptrdiff_t ih = input_coord(oh, s.SH, s.PT, kh, s.DH);
    if (!inside(ih, s.H)) continue;
    for (size_t kw = 0; kw < s.KW; ++kw) {
      const ptrdiff_t iw = input_coord(ow, s.SW, s.PL, kw, s.DW);
      if (inside(iw, s.W)) acc += x_c[ih * s.W + iw] * w_c[kh * s.KW + kw];
    }
  }
  return acc;
}

}  // namespace conv_window
}  // namespace sparsec
