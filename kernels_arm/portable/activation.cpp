// Vectorisable activation: the kind is chosen once per call so each loop body is branch-free.
#include <cmath>

#include "../ref/activation_math.h"
#include "exp_poly.h"
#include "sparsec/kernels.h"

namespace sparsec {
namespace {

using portable::exp_poly;

inline float sigmoid_poly(float x) { return 1.0f / (1.0f + exp_poly(-x)); }

// Numerical Recipes' erfcc (fractional error < 1.2e-7): erfc(z) = t exp(erfc_exponent(t) - z^2) for z >= 0, with
// t = 1 / (1 + z / 2). The exponent, a Chebyshev fit in t, lies in [-1.2656, 0].
inline float erfc_exponent(float t) {
  float p = 0.17087277f;
  p = p * t - 0.82215223f;
  p = p * t + 1.48851587f;
  p = p * t - 1.13520398f;
  p = p * t + 0.27886807f;
  p = p * t - 0.18628806f;
  p = p * t + 0.09678418f;
  p = p * t + 0.37409196f;
  p = p * t + 1.00002368f;
  return p * t - 1.26551223f;
}

// erfc(z) for z >= 0 without a libm call (the argument of exp is <= 0; a NaN z gives a finite value: GELU's
// x * Phi(x) carries the NaN).
inline float erfc_poly(float z) {
  const float t = 1.0f / (1.0f + 0.5f * z);
  return t * portable::exp_poly_upto88(erfc_exponent(t) - z * z);
}

// exp(p) on erfc_exponent's range: Taylor polynomial of degree 9 around its middle (relative error 5e-9), for
// GELU's derivative, which needs exp(-z^2) on its own and so splits erfc's exp in two.
inline float exp_of_erfc_exponent(float p) {
  const float d = p + 0.6327561f;
  float e = 1.463640723e-6f;
  e = e * d + 1.317276651e-5f;
  e = e * d + 1.053821321e-4f;
  e = e * d + 7.376749246e-4f;
  e = e * d + 4.426049547e-3f;
  e = e * d + 2.213024774e-2f;
  e = e * d + 8.852099095e-2f;
  e = e * d + 2.655629728e-1f;
  e = e * d + 5.311259457e-1f;
  return e * d + 5.311259457e-1f;
}

// Phi(x) = 0.5 erfc(-x / sqrt 2), reflected for x > 0 (so the negative tail keeps its relative accuracy).
inline float normal_cdf_poly(float x) {
  const float tail = 0.5f * erfc_poly(std::fabs(x) * 0.70710678118654752f);
  return x < 0.0f ? tail : 1.0f - tail;
}

inline float gelu_poly(float x) { return x * normal_cdf_poly(x); }

template <typename F>
void apply(float* data, size_t n, F f) {
  for (size_t i = 0; i < n; ++i) data[i] = f(data[i]);
}

template <typename F>
void apply_grad(const float* dy, const float* x, float* dx, size_t n, F derivative) {
  for (size_t i = 0; i < n; ++i) dx[i] = dy[i] * derivative(x[i]);
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
    case Activation::kSigmoid: return apply(data, n, sigmoid_poly);
    case Activation::kSilu: return apply(data, n, [](float x) { return x * sigmoid_poly(x); });
    case Activation::kGelu: return apply(data, n, gelu_poly);
    case Activation::kGeluTanh: return apply(data, n, gelu_tanh);
    case Activation::kTanh: return apply(data, n, [](float x) { return std::tanh(x); });
    case Activation::kLeakyRelu: return apply(data, n, [a](float x) { return leaky_relu(x, a); });
    case Activation::kElu: return apply(data, n, [a](float x) { return elu(x, a); });
    case Activation::kSoftplus: return apply(data, n, softplus);
    // Rare in models: the scalar loop, shared (each vectorised loop costs the wasm build its size).
    case Activation::kSelu: case Activation::kCelu: case Activation::kThresholdedRelu: case Activation::kShrink:
    case Activation::kSoftsign: case Activation::kMish: case Activation::kSwish:
      return f32_activation__scalar(act, data, n);
  }
}

void f32_activation_grad__portable(const ActParams& act, const float* dy, const float* x, float* dx, size_t n) {
  switch (act.kind) {
    case Activation::kRelu: return apply_grad(dy, x, dx, n, [](float v) { return v > 0.0f ? 1.0f : 0.0f; });
    case Activation::kSigmoid:
      return apply_grad(dy, x, dx, n, [](float v) {
        const float s = sigmoid_poly(v);
        return s * (1.0f - s);
      });
    case Activation::kSilu:
      return apply_grad(dy, x, dx, n, [](float v) {
        const float s = sigmoid_poly(v);
        return s * (1.0f + v * (1.0f - s));
      });
    case Activation::kGelu:  // Phi(v) + v phi(v), both from one exp(-v^2 / 2)
      return apply_grad(dy, x, dx, n, [](float v) {
        const float z = std::fabs(v) * 0.70710678118654752f, t = 1.0f / (1.0f + 0.5f * z);
        const float gauss = portable::exp_poly_upto88(-z * z);
        const float tail = 0.5f * t * exp_of_erfc_exponent(erfc_exponent(t)) * gauss;
        return (v < 0.0f ? tail : 1.0f - tail) + v * 0.39894228040143268f * gauss;
      });
    // The rest: cheap already or rare in training graphs; the scalar loop, shared.
    default: return f32_activation_grad__scalar(act, dy, x, dx, n);
  }
}

}  // namespace sparsec
