// Softmax over contiguous rows, whole vectors per row plus a scalar tail: exp without libm, and the row's max and
// sum folded across lanes by shuffles (short rows, e.g. attention's 32, spend little outside the vector loops).
#include "exp_poly.h"
#include "f32_vec.h"
#include "sparsec/kernels.h"

namespace sparsec {
namespace {

using portable::kLanes;
using portable::Vec;
typedef float Vec4 __attribute__((vector_size(4 * sizeof(float))));

// op over all lanes of v by halving shuffles.
template <class Op>
inline float fold_lanes(Vec v, Op op) {
#if defined(__AVX__)
  Vec4 q = op(__builtin_shufflevector(v, v, 0, 1, 2, 3), __builtin_shufflevector(v, v, 4, 5, 6, 7));
#else
  Vec4 q = v;
#endif
  q = op(q, __builtin_shufflevector(q, q, 2, 3, 0, 1));
  q = op(q, __builtin_shufflevector(q, q, 1, 0, 3, 2));
  return q[0];
}

}  // namespace

void f32_softmax__portable(const float* x, float* y, size_t rows, size_t len) {
  // A NaN anywhere in a row makes its sum, so the whole row, NaN whichever maximum is picked (as the reference).
  const auto max = [](auto a, auto b) { return a > b ? a : b; };
  const auto add = [](auto a, auto b) { return a + b; };
  for (size_t r = 0; r < rows; ++r, x += len, y += len) {
    float m = x[0];
    size_t k = 0;
    if (len >= kLanes) {
      Vec vm = portable::load(x);
      for (k = kLanes; k + kLanes <= len; k += kLanes) vm = max(portable::load(x + k), vm);
      m = fold_lanes(vm, max);
    }
    for (; k < len; ++k) m = max(x[k], m);
    Vec vsum{};
    for (k = 0; k + kLanes <= len; k += kLanes) {
      const Vec e = portable::exp_poly(portable::load(x + k) - m);
      portable::store(y + k, e);
      vsum += e;
    }
    float sum = fold_lanes(vsum, add);
    for (; k < len; ++k) sum += y[k] = portable::exp_poly(x[k] - m);
    const float inv = 1.0f / sum;
    for (k = 0; k + kLanes <= len; k += kLanes) portable::store(y + k, portable::load(y + k) * inv);
    for (; k < len; ++k) y[k] *= inv;
  }
}

}  // namespace sparsec
