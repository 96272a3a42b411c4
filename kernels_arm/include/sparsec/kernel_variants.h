// Every variant of the pooling, element-wise and SpMM jobs compiled for this target, by name: first the
// scalar reference, last the dispatch. The kernel test checks the others against the first; the
// benchmark times all but the last.
#pragma once
#include "sparsec/kernels.h"
#include "sparsec/spmm.h"

namespace sparsec {

struct PoolVariant {
  const char* name;
  Pool2dFn max, avg;
  GavgpoolFn gavg;
};
inline constexpr PoolVariant kPoolVariants[] = {
    {"scalar", f32_maxpool2d__scalar, f32_avgpool2d__scalar, f32_gavgpool_cw__scalar},
    {"portable", f32_maxpool2d_chw__portable, f32_avgpool2d_chw__portable,
     f32_gavgpool_cw__portable},
#ifdef SPARSEC_KERNELS_NEON
    {"neon", f32_maxpool2d_chw_u4__neon, f32_avgpool2d_chw_u4__neon, f32_gavgpool_cw_u8__neon},
#endif
#ifdef SPARSEC_KERNELS_WASMSIMD
    {"wasmsimd", f32_maxpool2d_chw_u4__wasmsimd, f32_avgpool2d_chw_u4__wasmsimd,
     f32_gavgpool_cw_u8__wasmsimd},
#endif
    {"dispatch", f32_maxpool2d, f32_avgpool2d, f32_gavgpool_cw},
};

struct BinaryVariant {
  const char* name;
  VBinaryFn (*lookup)(BinaryKind, BinaryShape);
};
inline constexpr BinaryVariant kBinaryVariants[] = {
    {"scalar", f32_vbinary__scalar},
    {"portable", f32_vbinary__portable},
#ifdef SPARSEC_KERNELS_NEON
    {"neon", f32_vbinary_u8__neon},
#endif
#ifdef SPARSEC_KERNELS_WASMSIMD
    {"wasmsimd", f32_vbinary_u8__wasmsimd},
#endif
    {"dispatch", f32_vbinary},
};

struct SpmmVariant {
  const char* name;
  void (*blocked[3])(const SpmmArgs&);  // MB 1, 2, 4
  void (*two_of_four)(const Spmm2of4Args&);
};
inline constexpr SpmmVariant kSpmmVariants[] = {
    {"scalar", {f32_spmm__scalar, f32_spmm__scalar, f32_spmm__scalar}, f32_spmm_2of4__scalar},
    {"portable", {f32_spmm_32x1__portable, f32_spmm_32x2__portable, f32_spmm_32x4__portable},
     f32_spmm_2of4__portable},
#ifdef SPARSEC_KERNELS_NEON
    {"neon", {f32_spmm_32x1__neon, f32_spmm_32x2__neon, f32_spmm_16x4__neon}, f32_spmm_2of4__neon},
#endif
#ifdef SPARSEC_KERNELS_WASMSIMD
    {"wasmsimd", {f32_spmm_16x1__wasmsimd, f32_spmm_16x2__wasmsimd, f32_spmm_8x4__wasmsimd},
     f32_spmm_2of4__wasmsimd},
#endif
    {"dispatch", {f32_spmm, f32_spmm, f32_spmm}, f32_spmm_2of4},
};

}  // namespace sparsec
