// 3x3 depthwise convolution with rows vectorised explicitly along OW, for a lane type V with T,
// kLanes, load, store, splat and mul_add(acc, a, b) (acc + a * b, fused where the ISA has FMA).
// The ring makes stride 2 contiguous too (phase-split rows), so one row kernel serves both.
#pragma once
#include "dwconv2d_ring.h"

namespace sparsec {
namespace dwconv2d {

// One output row, OW >= kLanes.
template <class V>
struct Row3 {
  static void run(const float* const (&rows)[3], const float (&weights)[3][3],
                  const size_t (&tap_offsets)[3], float bias, size_t OW, float* y_row) {
    using T = typename V::T;
    T w[3][3];
    for (size_t kh = 0; kh < 3; ++kh)
      for (size_t kw = 0; kw < 3; ++kw) w[kh][kw] = V::splat(weights[kh][kw]);
    const T b = V::splat(bias);
    auto block = [&](size_t ow) {  // taps in GenericRow's order
      T acc = b;
      for (size_t kh = 0; kh < 3; ++kh)
        for (size_t kw = 0; kw < 3; ++kw)
          acc = V::mul_add(acc, V::load(rows[kh] + tap_offsets[kw] + ow), w[kh][kw]);
      V::store(y_row + ow, acc);
    };
    // OW >= kLanes; the last block ends at OW, recomputing a few outputs (same values).
    for (size_t at = 0;; at += V::kLanes) {
      const size_t ow = std::min(at, OW - V::kLanes);
      block(ow);
      if (ow + V::kLanes == OW) break;
    }
  }
};

// KH == KW == 3, any stride, padding and dilation. Rows narrower than a vector take the generic
// row (the portable kernel's, so no new code), rows too wide for the ring the clipped way.
template <class V>
void dwconv2d_3x3(const Conv2dShape& s, const float* x, const float* w, const float* bias,
                  const ActParams& act, float* y) {
  const PlaneFn plane = !ring_fits(s)          ? clipped_plane
                        : s.OW >= V::kLanes    ? ring_plane<3, Row3<V>>
                                               : ring_plane<3>;
  planes(plane, s, x, w, bias, act, y);
}

}  // namespace dwconv2d
}  // namespace sparsec
