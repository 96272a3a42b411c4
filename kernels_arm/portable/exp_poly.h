// exp without a libm call, so loops using it vectorise (activations, softmax).
#pragma once
#include <cstdint>
#include <cstring>

namespace sparsec {
namespace portable {

// x = n ln2 + r (Cody-Waite), exp(r) by the Cephes polynomial on |r| <= ln2/2, 2^n from the exponent bits.
// Relative error ~2 ulp. For x <= 88 and without a NaN pass (a NaN x gives a finite value): for callers whose
// result carries x's NaN anyway, e.g. GELU's x * Phi(x); everyone else calls exp_poly.
inline float exp_poly_upto88(float x) {
  // NaN clamps to -87 (the int conversion below must see a finite value). A ternary, not std::max: GCC
  // if-converts it.
  const float xc = x > -87.0f ? x : -87.0f;
  const float n = (xc * 1.44269504089f + 12582912.0f) - 12582912.0f;  // round to nearest (1.5 * 2^23 trick)
  const float r = (xc - n * 0.693145751953125f) - n * 1.428606765330187e-6f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return p * scale;
}

// exp(x) for every x: clamped to 88 above, NaN passed through.
inline float exp_poly(float x) { return x == x ? exp_poly_upto88(x < 88.0f ? x : 88.0f) : x; }

}  // namespace portable
}  // namespace sparsec
