// One output of a 2-D pooling window, scalar and checking every tap: the reference. Its helpers
// (tap ranges, divisors) are shared with the vector variants in common/pool2d_chw.h.
#pragma once
#include <algorithm>
#include <cstddef>
#include <limits>

#include "sparsec/kernels.h"

namespace sparsec {
namespace pool2d {

// Taps t in [*t_lo, *t_hi) of [0, K) are those whose coordinate start + t * dilation lies in
// [lo, hi); closed form, as a loop here is vectorised into much wasm32 code.
inline void tap_range(ptrdiff_t start, size_t K, size_t dilation, ptrdiff_t lo, ptrdiff_t hi,
                      size_t* t_lo, size_t* t_hi) {
  *t_lo = start >= lo ? 0 : std::min(K, (static_cast<size_t>(lo - start) + dilation - 1) / dilation);
  *t_hi = start >= hi ? *t_lo
                      : std::max(*t_lo, std::min(K, static_cast<size_t>(hi - 1 - start) / dilation + 1));
}

inline size_t taps_inside(ptrdiff_t start, size_t K, size_t dilation, ptrdiff_t lo, ptrdiff_t hi) {
  size_t t_lo, t_hi;
  tap_range(start, K, dilation, lo, hi, &t_lo, &t_hi);
  return t_hi - t_lo;
}

inline ptrdiff_t window_start(size_t o, size_t stride, size_t pad) {
  return static_cast<ptrdiff_t>(o * stride) - static_cast<ptrdiff_t>(pad);
}

// Taps of an output row or column that the average divides by.
inline size_t divisor_taps(ptrdiff_t start, size_t K, size_t dilation, size_t extent, size_t pad_begin,
                           size_t pad_end, bool include_pad) {
  return include_pad ? taps_inside(start, K, dilation, -static_cast<ptrdiff_t>(pad_begin),
                                   static_cast<ptrdiff_t>(extent + pad_end))
                     : taps_inside(start, K, dilation, 0, static_cast<ptrdiff_t>(extent));
}

// std::max's order (acc < v ? v : acc): a NaN input never replaces the running maximum.
inline float max_ignoring_nan(float acc, float v) { return acc < v ? v : acc; }

// Row sums go kh-major, kw-minor: the vector variants add in this order and match bit for bit.
template <bool kMax>
float window(const Pool2dShape& s, const float* x, size_t oh, size_t ow) {
  const ptrdiff_t h0 = window_start(oh, s.SH, s.PT), w0 = window_start(ow, s.SW, s.PL);
  float acc = kMax ? -std::numeric_limits<float>::infinity() : 0.0f;
  for (size_t kh = 0; kh < s.KH; ++kh) {
    const ptrdiff_t h = h0 + static_cast<ptrdiff_t>(kh * s.DH);
    if (h < 0 || h >= static_cast<ptrdiff_t>(s.H)) continue;
    for (size_t kw = 0; kw < s.KW; ++kw) {
      const ptrdiff_t w = w0 + static_cast<ptrdiff_t>(kw * s.DW);
      if (w < 0 || w >= static_cast<ptrdiff_t>(s.W)) continue;
      const float v = x[h * static_cast<ptrdiff_t>(s.W) + w];
      acc = kMax ? max_ignoring_nan(acc, v) : acc + v;
    }
  }
  if (kMax) return acc;
  const size_t count = divisor_taps(h0, s.KH, s.DH, s.H, s.PT, s.PB, s.count_include_pad) *
                       divisor_taps(w0, s.KW, s.DW, s.W, s.PL, s.PR, s.count_include_pad);
  return count > 0 ? acc / static_cast<float>(count) : 0.0f;
}

}  // namespace pool2d
}  // namespace sparsec
