// SpMM in WebAssembly SIMD128: every output block vectorised (XNNPACK runs its 2- and 4-row blocks scalar).
#include "f32x4_wasmsimd.h"

#ifdef SPARSEC_KERNELS_WASMSIMD
#include "../common/spmm_tiles.h"

namespace sparsec {
namespace {

using V = wasmsimd::F32x4;

// Each weight splatted straight from memory (v128.load32_splat); multiply then add (no FMA in SIMD128).
struct SplatMac {
  template <size_t MB>
  struct W {
    v128_t w[MB];
  };
  template <size_t MB>
  static W<MB> load(const float* w) {
    W<MB> r;
    for (size_t i = 0; i < MB; ++i) r.w[i] = wasm_v128_load32_splat(w + i);
    return r;
  }
  template <size_t R, class Weights>
  static v128_t fma(v128_t acc, v128_t x, const Weights& w) {
    return wasm_f32x4_add(acc, wasm_f32x4_mul(x, w.w[R]));
  }
};

}  // namespace

// 4 (16x1) or 8 accumulator vectors: with V8's 16 vector registers, larger tiles spill (measured in Node).
void f32_spmm_16x1__wasmsimd(const SpmmArgs& a) {
  spmm::blocked<V, SplatMac, 1, 4>(a, f32_spmm_16x1__wasmsimd);
}
void f32_spmm_16x2__wasmsimd(const SpmmArgs& a) {
  spmm::blocked<V, SplatMac, 2, 4>(a, f32_spmm_16x1__wasmsimd);
}
void f32_spmm_8x4__wasmsimd(const SpmmArgs& a) {
  spmm::blocked<V, SplatMac, 4, 2>(a, f32_spmm_16x1__wasmsimd);
}
void f32_spmm_2of4__wasmsimd(const Spmm2of4Args& a) { spmm::two_of_four<V, SplatMac, 4>(a); }

}  // namespace sparsec
#endif
