// Vectorisable activation: the kind is chosen once per call so each loop body is branch-free.
#include "../ref/activation_math.h"
#include "sparsec/kernels.h"

namespace sparsec {
namespace {

template <typename F>
void apply(float* data, size_t n, F f) {
  for (size_t i = 0; i < n; ++i) data[i] = f(data[i]);
}

}  // namespace

void f32_activation__portable(const ActParams& act, float* data, size_t n) {
  using namespace act_math;
  const float a = act.a, b = act.b;
  switch (act.kind) {
    case Activation::kNone: return;
    case Activation::kRelu: return apply(data, n, relu);
    case Activation::kClip: return apply(data, n, [a, b](float x) { return clip(x, a, b); });
    case Activation::kHardSwish: return apply(data, n, hard_swish);
    case Activation::kHardSigmoid:
      return apply(data, n, [a, b](float x) { return hard_sigmoid(x, a, b); });
    case Activation::kSigmoid: return apply(data, n, sigmoid);
    case Activation::kSiLU: return apply(data, n, silu);
    case Activation::kGelu: return apply(data, n, gelu);
    case Activation::kGeluTanh: return apply(data, n, gelu_tanh);
    case Activation::kTanh: return apply(data, n, [](float x) { return std::tanh(x); });
    case Activation::kLeakyRelu: return apply(data, n, [a](float x) { return leaky_relu(x, a); });
    case Activation::kElu: return apply(data, n, [a](float x) { return elu(x, a); });
    case Activation::kSoftplus: return apply(data, n, softplus);
  }
}

}  // namespace sparsec
