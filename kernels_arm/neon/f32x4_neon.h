// NEON lane type (aarch64) for common/pool2d_chw.h and common/vbinary.h.
#pragma once
#include "sparsec/kernels.h"

#ifdef SPARSEC_KERNELS_NEON
#include <arm_neon.h>

namespace sparsec {
namespace neon {

struct F32x4 {
  using T = float32x4_t;
  static constexpr size_t kLanes = 4;
  static T load(const float* p) { return vld1q_f32(p); }
  static void store(float* p, T v) { vst1q_f32(p, v); }
  static T splat(float x) { return vdupq_n_f32(x); }
  static T load_even(const float* p) { return vld2q_f32(p).val[0]; }  // one deinterleaving load
  static T gather(const float* p, size_t stride) {
    T v = vdupq_n_f32(p[0]);
    v = vld1q_lane_f32(p + stride, v, 1);
    v = vld1q_lane_f32(p + 2 * stride, v, 2);
    return vld1q_lane_f32(p + 3 * stride, v, 3);
  }
  static T add(T a, T b) { return vaddq_f32(a, b); }
  static T sub(T a, T b) { return vsubq_f32(a, b); }
  static T mul(T a, T b) { return vmulq_f32(a, b); }
  static T div(T a, T b) { return vdivq_f32(a, b); }
  static T mul_add(T acc, T a, T b) { return vfmaq_f32(acc, a, b); }
  // FMAXNM returns the number when one operand is NaN; acc is never NaN.
  static T max_ignoring_nan(T acc, T v) { return vmaxnmq_f32(acc, v); }
  // FMAX/FMIN return NaN for a NaN x, as std::min(std::max(x, lo), hi) does.
  static T clamp(T x, T lo, T hi) { return vminq_f32(vmaxq_f32(x, lo), hi); }
  static float sum(T v) { return vaddvq_f32(v); }
};

}  // namespace neon
}  // namespace sparsec

#endif  // SPARSEC_KERNELS_NEON
