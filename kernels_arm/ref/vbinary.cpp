// Scalar reference element-wise binary ops: one value at a time, activation by activate().
#include "../common/vbinary.h"

namespace sparsec {
namespace {

template <BinaryKind kKind, BinaryShape kShape>
struct Reference {
  static void run(size_t n, const float* a, const float* b, float* y, const ActParams& act) {
    for (size_t i = 0; i < n; ++i) {
      const float ai = kShape == BinaryShape::kScalarA ? a[0] : a[i];
      const float bi = kShape == BinaryShape::kScalarB ? b[0] : b[i];
      y[i] = activate(act, vbinary::combine<vbinary::F32x1, kKind>(ai, bi));
    }
  }
};

}  // namespace

VBinaryFn f32_vbinary__scalar(BinaryKind kind, BinaryShape shape) {
  return vbinary::lookup<Reference>(kind, shape);
}

}  // namespace sparsec
