// exp without a libm call, so loops using it vectorise (activations, softmax).
#pragma once
#include <cstdint>
#include <cstring>

namespace sparsec {
namespace portable {

// 2^n for whole-number n in [-127, 128] (a float, or a generic float vector): built from the exponent bits.
inline float pow2_int(float n) {
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return scale;
}
template <class T>
inline T pow2_int(T n) {
  typedef int32_t I __attribute__((vector_size(sizeof(T))));
  const I bits = (__builtin_convertvector(n, I) + 127) << 23;
  T scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return scale;
}

// x = n ln2 + r (Cody-Waite), exp(r) by the Cephes polynomial on |r| <= ln2/2, 2^n from the exponent bits.
// Relative error ~2 ulp. T is float or a generic float vector (lane by lane, the same result). For x <= 88 and
// without a NaN pass (a NaN x gives a finite value): for callers whose result carries x's NaN anyway, e.g. GELU's
// x * Phi(x); everyone else calls exp_poly.
template <class T>
inline T exp_poly_upto88(T x) {
  // NaN clamps to -87 (the int conversion below must see a finite value). A ternary, not std::max: GCC
  // if-converts it.
  const T lo = T{} - 87.0f;
  const T xc = x > lo ? x : lo;
  const T n = (xc * 1.44269504089f + 12582912.0f) - 12582912.0f;  // round to nearest (1.5 * 2^23 trick)
  const T r = (xc - n * 0.693145751953125f) - n * 1.428606765330187e-6f;
  T p = T{} + 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  return p * pow2_int(n);
}

// exp(x) for every x: clamped to 88 above, NaN passed through.
template <class T>
inline T exp_poly(T x) {
  const T hi = T{} + 88.0f;
  return x == x ? exp_poly_upto88(x < hi ? x : hi) : x;
}

}  // namespace portable
}  // namespace sparsec
