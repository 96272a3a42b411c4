// GCC/Clang generic float vectors (SSE/AVX, NEON, wasm simd128), the lane type of the portable
// kernels: one AVX register where the build has AVX, else 128 bits.
#pragma once
#include <cstddef>
#include <cstring>
#include <limits>

#include "sparsec/kernels.h"

namespace sparsec {
namespace portable {

#if defined(__AVX__)
constexpr size_t kLanes = 8;
#else
constexpr size_t kLanes = 4;
#endif
typedef float Vec __attribute__((vector_size(kLanes * sizeof(float))));

// Unaligned vector access (of Vec or a wider vector type); memcpy compiles to a single vector load or store.
template <class V = Vec>
inline V load(const float* p) {
  V v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
template <class V>
inline void store(float* p, V v) { std::memcpy(p, &v, sizeof v); }
// min(max(x, lo), hi), NaN kept (as by the activation kernels).
template <class V>
inline V clamp(V x, V lo, V hi) {
  const V low = x < lo ? lo : x;
  return hi < low ? hi : low;
}

// The lane type of common/pool2d_chw.h and common/vbinary.h.
struct F32Vec {
  using T = Vec;
  static constexpr size_t kLanes = portable::kLanes;
  static T load(const float* p) { return portable::load(p); }
  static void store(float* p, T v) { portable::store(p, v); }
  static T splat(float x) { return T{} + x; }
  static T gather(const float* p, size_t stride) {
    T v;
    for (size_t i = 0; i < kLanes; ++i) v[i] = p[i * stride];
    return v;
  }
  // Even lanes of two loads (reads p[2 * kLanes - 1]); a shuffle, not kLanes scalar loads.
  static T load_even(const float* p) {
    const T lo = load(p), hi = load(p + kLanes);
#if defined(__AVX__)
    return __builtin_shufflevector(lo, hi, 0, 2, 4, 6, 8, 10, 12, 14);
#else
    return __builtin_shufflevector(lo, hi, 0, 2, 4, 6);
#endif
  }
  static T add(T a, T b) { return a + b; }
  static T sub(T a, T b) { return a - b; }
  static T mul(T a, T b) { return a * b; }
  static T div(T a, T b) { return a / b; }
  static T mul_add(T acc, T a, T b) { return acc + a * b; }  // fused where the build has FMA
  static T max_ignoring_nan(T acc, T v) { return acc < v ? v : acc; }
  static T clamp(T x, T lo, T hi) { return portable::clamp(x, lo, hi); }
  static float sum(T v) {
    float s = 0.0f;
    for (size_t i = 0; i < kLanes; ++i) s += v[i];
    return s;
  }
};

// ReLU and Clip as the bounds of a clamp a kernel can apply in registers; null for the others.
inline const float* clamp_bounds(const ActParams& act, float (&bounds)[2]) {
  if (act.kind == Activation::kRelu) bounds[0] = 0.0f, bounds[1] = std::numeric_limits<float>::infinity();
  else if (act.kind == Activation::kClip) bounds[0] = act.a, bounds[1] = act.b;
  else return nullptr;
  return bounds;
}

}  // namespace portable
}  // namespace sparsec
