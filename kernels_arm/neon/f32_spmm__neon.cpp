// SpMM with NEON FMA: the weights of one kept channel in one register, multiplied by lane.
#include "f32x4_neon.h"

#ifdef SPARSEC_KERNELS_NEON
#include <type_traits>

#include "../common/spmm_tiles.h"

namespace sparsec {
namespace {

using V = neon::F32x4;

// MB weights in one register (4 or 2 lanes); FMLA by element.
struct LaneMac {
  template <size_t MB>
  static auto load(const float* w) {
    if constexpr (MB == 4) return vld1q_f32(w);
    else if constexpr (MB == 2) return vld1_f32(w);
    else return vld1_dup_f32(w);
  }
  template <size_t R, class W>
  static float32x4_t fma(float32x4_t acc, float32x4_t x, W w) {
    if constexpr (std::is_same_v<W, float32x4_t>) return vfmaq_laneq_f32(acc, x, w, R);
    else return vfmaq_lane_f32(acc, x, w, R);
  }
};

}  // namespace

void f32_spmm_32x1__neon(const SpmmArgs& a) {
  spmm::blocked<V, LaneMac, 1, 8>(a, f32_spmm_32x1__neon);
}
void f32_spmm_32x2__neon(const SpmmArgs& a) {
  spmm::blocked<V, LaneMac, 2, 8>(a, f32_spmm_32x1__neon);
}
void f32_spmm_16x4__neon(const SpmmArgs& a) {
  spmm::blocked<V, LaneMac, 4, 4>(a, f32_spmm_32x1__neon);
}
void f32_spmm_2of4__neon(const Spmm2of4Args& a) { spmm::two_of_four<V, LaneMac, 8>(a); }

}  // namespace sparsec
#endif
