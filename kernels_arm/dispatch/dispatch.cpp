// The dispatch: each job's fastest variant compiled for this target, chosen at compile time.
#include "sparsec/kernels.h"

#if defined(SPARSEC_KERNELS_NEON)
#define SPARSEC_BEST(neon, wasmsimd, portable) neon
#elif defined(SPARSEC_KERNELS_WASMSIMD)
#define SPARSEC_BEST(neon, wasmsimd, portable) wasmsimd
#else
#define SPARSEC_BEST(neon, wasmsimd, portable) portable
#endif

namespace sparsec {

const char* kernel_isa() { return SPARSEC_BEST("neon", "wasmsimd", "portable"); }

void f32_dwconv2d(const Conv2dShape& s, const float* x, const float* w, const float* bias,
                  const ActParams& act, float* y) {
  if (s.KH == 3 && s.KW == 3)
    return SPARSEC_BEST(f32_dwconv2d_3x3_u4__neon, f32_dwconv2d_3x3_u4__wasmsimd,
                        f32_dwconv2d__portable)(s, x, w, bias, act, y);
  f32_dwconv2d__portable(s, x, w, bias, act, y);
}

void f32_maxpool2d(const Pool2dShape& s, size_t planes, const float* x, float* y) {
  SPARSEC_BEST(f32_maxpool2d_chw_u4__neon, f32_maxpool2d_chw_u4__wasmsimd,
               f32_maxpool2d_chw__portable)(s, planes, x, y);
}

void f32_avgpool2d(const Pool2dShape& s, size_t planes, const float* x, float* y) {
  SPARSEC_BEST(f32_avgpool2d_chw_u4__neon, f32_avgpool2d_chw_u4__wasmsimd,
               f32_avgpool2d_chw__portable)(s, planes, x, y);
}

void f32_gavgpool_cw(size_t channels, size_t n, const float* x, float* y) {
  SPARSEC_BEST(f32_gavgpool_cw_u8__neon, f32_gavgpool_cw_u8__wasmsimd,
               f32_gavgpool_cw__portable)(channels, n, x, y);
}

VBinaryFn f32_vbinary(BinaryKind kind, BinaryShape shape) {
  return SPARSEC_BEST(f32_vbinary_u8__neon, f32_vbinary_u8__wasmsimd, f32_vbinary__portable)(kind, shape);
}

}  // namespace sparsec
