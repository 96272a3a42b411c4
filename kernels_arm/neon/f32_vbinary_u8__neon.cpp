// Element-wise Add/Sub/Mul/Div with fused activation, 8 values (two NEON registers) per step.
#include "f32x4_neon.h"

#ifdef SPARSEC_KERNELS_NEON
#include "../common/vbinary.h"

namespace sparsec {

VBinaryFn f32_vbinary_u8__neon(BinaryKind kind, BinaryShape shape) {
  return vbinary::lookup<vbinary::For<neon::F32x4>::Kernel>(kind, shape);
}

}  // namespace sparsec
#endif
