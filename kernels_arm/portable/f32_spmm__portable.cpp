// SpMM on GCC/Clang generic vectors: 32-pixel tiles (four AVX or eight 128-bit vectors).
#include "../common/spmm_tiles.h"
#include "f32_vec.h"

namespace sparsec {
namespace {

using V = portable::F32Vec;
using Mac = spmm::SplatMac<V>;
constexpr size_t kTileVectors = 32 / V::kLanes;

}  // namespace

void f32_spmm_32x1__portable(const SpmmArgs& a) {
  spmm::blocked<V, Mac, 1, kTileVectors>(a, f32_spmm_32x1__portable);
}
void f32_spmm_32x2__portable(const SpmmArgs& a) {
  spmm::blocked<V, Mac, 2, kTileVectors>(a, f32_spmm_32x1__portable);
}
void f32_spmm_32x4__portable(const SpmmArgs& a) {
  spmm::blocked<V, Mac, 4, kTileVectors>(a, f32_spmm_32x1__portable);
}
void f32_spmm_2of4__portable(const Spmm2of4Args& a) { spmm::two_of_four<V, Mac, kTileVectors>(a); }

}  // namespace sparsec
