// Portable depthwise convolution: the ring of common/dwconv2d_ring.h with rows the compiler
// vectorises along OW; bias and activation fused. x86 hosts run inputs up to 64 wide 8 channels
// at a time instead (common/dwconv2d_interleaved.h), in bands of output rows.
#include "../common/dwconv2d_interleaved.h"
#include "../common/dwconv2d_ring.h"
#include "f32_vec.h"

namespace sparsec {
namespace {

using dwconv2d::PlaneFn;

// Square 3, 5 and 7 kernels (MobileNet, EfficientNet, ConvNeXt) get the unrolled ring path.
PlaneFn select_plane(const Conv2dShape& s) {
  if (s.KH != s.KW || !dwconv2d::ring_fits(s)) return dwconv2d::clipped_plane;
  switch (s.KH) {
    case 3: return dwconv2d::ring_plane<3>;
    case 5: return dwconv2d::ring_plane<5>;
    case 7: return dwconv2d::ring_plane<7>;
    default: return dwconv2d::clipped_plane;
  }
}

}  // namespace

void f32_dwconv2d__portable(const Conv2dShape& s, const float* x, const float* w,
                            const float* bias, const ActParams& act, float* y) {
#if defined(__AVX2__)  // 8 lanes for the 8 x 8 transposes; measured on x86 only
  // Input rows wider than 64 stream faster through the ring, one plane at a time (measured on
  // mobilenet_v2's 112 x 112 planes, read from memory rather than cache).
  if (s.KH == s.KW && s.OH > 0 && s.OW > 0 && s.W <= 64 && dwconv2d::band_rows<portable::kLanes>(s) > 0) {
    float bounds[2];
    const float* clamp = portable::clamp_bounds(act, bounds);
    switch (s.KH) {
      case 3: return dwconv2d::interleaved<3, portable::F32Vec>(s, x, w, bias, act, clamp, y);
      case 5: return dwconv2d::interleaved<5, portable::F32Vec>(s, x, w, bias, act, clamp, y);
      case 7: return dwconv2d::interleaved<7, portable::F32Vec>(s, x, w, bias, act, clamp, y);
    }
  }
#endif
  dwconv2d::planes(select_plane(s), s, x, w, bias, act, y);
}

}  // namespace sparsec
