// Scalar reference activations: one value at a time, the truth the fast loops are tested against.
#include "activation_math.h"
#include "sparsec/kernels.h"

namespace sparsec {

float activate(const ActParams& act, float x) {
  using namespace act_math;
  switch (act.kind) {
    case Activation::kNone: return x;
    case Activation::kRelu: return relu(x);
    case Activation::kClip: return clip(x, act.a, act.b);
    case Activation::kHardSwish: return hard_swish(x);
    case Activation::kHardSigmoid: return hard_sigmoid(x, act.a, act.b);
    case Activation::kSigmoid: return sigmoid(x);
    case Activation::kSilu: return silu(x);
    case Activation::kGelu: return gelu(x);
    case Activation::kGeluTanh: return gelu_tanh(x);
    case Activation::kTanh: return std::tanh(x);
    case Activation::kLeakyRelu: return leaky_relu(x, act.a);
    case Activation::kElu: return elu(x, act.a);
    case Activation::kSoftplus: return softplus(x);
    case Activation::kSelu: return selu(x, act.a, act.b);
    case Activation::kCelu: return celu(x, act.a);
    case Activation::kThresholdedRelu: return thresholded_relu(x, act.a);
    case Activation::kShrink: return shrink(x, act.a, act.b);
    case Activation::kSoftsign: return softsign(x);
    case Activation::kMish: return mish(x);
    case Activation::kSwish: return swish(x, act.a);
  }
  return x;
}

void f32_activation__scalar(const ActParams& act, float* data, size_t n) {
  for (size_t i = 0; i < n; ++i) data[i] = activate(act, data[i]);
}

}  // namespace sparsec
