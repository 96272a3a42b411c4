// Element-wise Add/Sub/Mul/Div with fused activation, 8 values (two SIMD128 registers) per step.
#include "f32x4_wasmsimd.h"

#ifdef SPARSEC_KERNELS_WASMSIMD
#include "../common/vbinary.h"

namespace sparsec {

VBinaryFn f32_vbinary_u8__wasmsimd(BinaryKind kind, BinaryShape shape) {
  return vbinary::lookup<vbinary::For<wasmsimd::F32x4>::Kernel>(kind, shape);
}

}  // namespace sparsec
#endif
