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

// The kinds the compiler's gradient rules emit (compiler/sparsec/train/gradients.py DIFFERENTIABLE).
bool activation_differentiable(Activation kind) {
  switch (kind) {
    case Activation::kNone: case Activation::kRelu: case Activation::kClip: case Activation::kHardSwish:
    case Activation::kHardSigmoid: case Activation::kSigmoid: case Activation::kSilu: case Activation::kGelu:
    case Activation::kGeluTanh: case Activation::kTanh: case Activation::kLeakyRelu: case Activation::kElu:
    case Activation::kSoftplus:
      return true;
    default: return false;
  }
}

float activation_derivative(const ActParams& act, float x) {
  using namespace act_math;
  switch (act.kind) {
    case Activation::kRelu: return x > 0.0f ? 1.0f : 0.0f;
    case Activation::kClip: return x > act.a && x < act.b ? 1.0f : 0.0f;
    case Activation::kHardSwish: return x < -3.0f ? 0.0f : x <= 3.0f ? x / 3.0f + 0.5f : 1.0f;
    case Activation::kHardSigmoid: {
      const float z = act.a * x + act.b;
      return z > 0.0f && z < 1.0f ? act.a : 0.0f;
    }
    case Activation::kSigmoid: {
      const float s = sigmoid(x);
      return s * (1.0f - s);
    }
    case Activation::kSilu: {
      const float s = sigmoid(x);
      return s * (1.0f + x * (1.0f - s));
    }
    case Activation::kGelu:  // Phi(x) + x phi(x)
      return 0.5f * std::erfc(x * -0.70710678118654752f) + x * 0.39894228040143268f * std::exp(-0.5f * x * x);
    case Activation::kGeluTanh: {
      const float k = 0.79788456080286536f, c = 0.044715f;
      const float t = std::tanh(k * (x + c * x * x * x));
      return 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * k * (1.0f + 3.0f * c * x * x);
    }
    case Activation::kTanh: {
      const float t = std::tanh(x);
      return 1.0f - t * t;
    }
    case Activation::kLeakyRelu: return x > 0.0f ? 1.0f : act.a;
    case Activation::kElu: return x > 0.0f ? 1.0f : act.a * std::exp(x);
    case Activation::kSoftplus: return sigmoid(x);
    default: return 1.0f;  // kNone (activation_differentiable refuses the rest)
  }
}

void f32_activation_grad__scalar(const ActParams& act, const float* dy, const float* x, float* dx, size_t n) {
  for (size_t i = 0; i < n; ++i) dx[i] = dy[i] * activation_derivative(act, x[i]);
}

}  // namespace sparsec
