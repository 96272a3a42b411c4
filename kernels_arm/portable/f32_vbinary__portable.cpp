// Element-wise Add/Sub/Mul/Div with fused activation, two generic vectors per step.
#include "../common/vbinary.h"
#include "f32_vec.h"

namespace sparsec {

VBinaryFn f32_vbinary__portable(BinaryKind kind, BinaryShape shape) {
  return vbinary::lookup<vbinary::For<portable::F32Vec>::Kernel>(kind, shape);
}

}  // namespace sparsec
