// WebAssembly SIMD128 lane type for common/pool2d_chw.h and common/vbinary.h.
#pragma once
#include "sparsec/kernels.h"

#ifdef SPARSEC_KERNELS_WASMSIMD
#include <wasm_simd128.h>

namespace sparsec {
namespace wasmsimd {

struct F32x4 {
  using T = v128_t;
  static constexpr size_t kLanes = 4;
  static T load(const float* p) { return wasm_v128_load(p); }
  static void store(float* p, T v) { wasm_v128_store(p, v); }
  static T splat(float x) { return wasm_f32x4_splat(x); }
  static T load_even(const float* p) { return wasm_i32x4_shuffle(load(p), load(p + 4), 0, 2, 4, 6); }
  static T gather(const float* p, size_t stride) {
    return wasm_f32x4_make(p[0], p[stride], p[2 * stride], p[3 * stride]);
  }
  static T add(T a, T b) { return wasm_f32x4_add(a, b); }
  static T sub(T a, T b) { return wasm_f32x4_sub(a, b); }
  static T mul(T a, T b) { return wasm_f32x4_mul(a, b); }
  static T div(T a, T b) { return wasm_f32x4_div(a, b); }
  static T mul_add(T acc, T a, T b) { return add(acc, mul(a, b)); }  // no FMA in SIMD128
  // pmax(a, b) is a < b ? b : a and pmin(a, b) is b < a ? b : a: std::max/min exactly, NaN
  // handling included, and one instruction each on x86 engines (f32x4.max/min are not).
  static T max_ignoring_nan(T acc, T v) { return wasm_f32x4_pmax(acc, v); }
  static T clamp(T x, T lo, T hi) { return wasm_f32x4_pmin(wasm_f32x4_pmax(x, lo), hi); }
  static float sum(T v) {
    const T pairs = wasm_f32x4_add(v, wasm_i32x4_shuffle(v, v, 2, 3, 0, 1));
    return wasm_f32x4_extract_lane(pairs, 0) + wasm_f32x4_extract_lane(pairs, 1);
  }
};

}  // namespace wasmsimd
}  // namespace sparsec

#endif  // SPARSEC_KERNELS_WASMSIMD
