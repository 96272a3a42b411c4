// Scalar reference direct convolution and im2col (NCHW, groups, stride, padding, dilation).
#include <cstddef>

#include "sparsec/kernels.h"

namespace sparsec {
namespace {

// Input coordinate read by output position o at kernel tap t; negative or >= extent means padding.
inline ptrdiff_t input_coord(size_t o, size_t stride, size_t pad, size_t t, size_t dilation) {
  return static_cast<ptrdiff_t>(o * stride + t * dilation) - static_cast<ptrdiff_t>(pad);
}

inline bool inside(ptrdiff_t coord, size_t extent) {
  return coord >= 0 && coord < static_cast<ptrdiff_t>(extent);
}

}  // namespace

void f32_conv2d__scalar(const Conv2dShape& s, const float* x, const float* w, const float* bias,
                        const ActParams& act, float* y) {
  const size_t group_in = s.C / s.G, group_out = s.M / s.G;
  for (size_t m = 0; m < s.M; ++m) {
    const float* x_group = x + (m / group_out) * group_in * s.H * s.W;
    const float* w_m = w + m * group_in * s.KH * s.KW;
    for (size_t oh = 0; oh < s.OH; ++oh) {
      for (size_t ow = 0; ow < s.OW; ++ow) {
        float acc = 0.0f;
        for (size_t c = 0; c < group_in; ++c) {
          for (size_t kh = 0; kh < s.KH; ++kh) {
            const ptrdiff_t ih = input_coord(oh, s.SH, s.PT, kh, s.DH);
            if (!inside(ih, s.H)) continue;
            for (size_t kw = 0; kw < s.KW; ++kw) {
              const ptrdiff_t iw = input_coord(ow, s.SW, s.PL, kw, s.DW);
              if (!inside(iw, s.W)) continue;
              acc += x_group[(c * s.H + ih) * s.W + iw] * w_m[(c * s.KH + kh) * s.KW + kw];
            }
          }
        }
        if (bias) acc += bias[m];
        y[(m * s.OH + oh) * s.OW + ow] = activate(act, acc);
      }
    }
  }
}

void f32_im2col__scalar(const Conv2dShape& s, const float* x, size_t c0, size_t nc, size_t oh0, size_t oh1,
                        float* cols) {
  const size_t band = (oh1 - oh0) * s.OW;
  for (size_t c = 0; c < nc; ++c) {
    const float* x_c = x + (c0 + c) * s.H * s.W;
    for (size_t kh = 0; kh < s.KH; ++kh) {
      for (size_t kw = 0; kw < s.KW; ++kw) {
        float* row = cols + ((c * s.KH + kh) * s.KW + kw) * band;
        for (size_t oh = oh0; oh < oh1; ++oh) {
          const ptrdiff_t ih = input_coord(oh, s.SH, s.PT, kh, s.DH);
          for (size_t ow = 0; ow < s.OW; ++ow) {
            const ptrdiff_t iw = input_coord(ow, s.SW, s.PL, kw, s.DW);
            row[(oh - oh0) * s.OW + ow] = inside(ih, s.H) && inside(iw, s.W) ? x_c[ih * s.W + iw] : 0.0f;
          }
        }
      }
    }
  }
}

}  // namespace sparsec
