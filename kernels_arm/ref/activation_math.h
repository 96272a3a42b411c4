// Per-kind activation formulas, shared by the scalar reference and the vectorisable loops.
#pragma once
#include <algorithm>
#include <cmath>

#include "sparsec/kernels.h"

namespace sparsec {
namespace act_math {

inline float clip(float x, float lo, float hi) { return std::min(std::max(x, lo), hi); }
inline float relu(float x) { return std::max(x, 0.0f); }
inline float hard_swish(float x) { return x * clip(x * (1.0f / 6.0f) + 0.5f, 0.0f, 1.0f); }
inline float hard_sigmoid(float x, float a, float b) { return clip(a * x + b, 0.0f, 1.0f); }
inline float sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }
inline float silu(float x) { return x * sigmoid(x); }
// erfc, not 1 + erf: keeps the relative accuracy of the negative tail.
inline float gelu(float x) { return 0.5f * x * std::erfc(x * -0.70710678118654752f); }
inline float gelu_tanh(float x) {
  constexpr float kSqrt2OverPi = 0.79788456080286536f;
  return 0.5f * x * (1.0f + std::tanh(kSqrt2OverPi * (x + 0.044715f * x * x * x)));
}
inline float leaky_relu(float x, float a) { return x < 0.0f ? a * x : x; }
// expm1 keeps exp(x) - 1 accurate near zero.
inline float elu(float x, float a) { return x < 0.0f ? a * std::expm1(x) : x; }
// log(1 + exp(x)) without overflow for large x.
inline float softplus(float x) { return std::log1p(std::exp(-std::fabs(x))) + std::max(x, 0.0f); }
// a: alpha, b: gamma (ONNX Selu)
inline float selu(float x, float a, float b) { return x > 0.0f ? b * x : b * a * std::expm1(x); }
inline float celu(float x, float a) { return x > 0.0f ? x : a * std::expm1(x / a); }
inline float thresholded_relu(float x, float a) { return x > a ? x : 0.0f; }
// a: lambd, b: bias (ONNX Shrink)
inline float shrink(float x, float a, float b) { return x < -a ? x + b : x > a ? x - b : 0.0f; }
inline float softsign(float x) { return x / (1.0f + std::fabs(x)); }
inline float mish(float x) { return x * std::tanh(softplus(x)); }
inline float swish(float x, float a) { return x * sigmoid(a * x); }

}  // namespace act_math
}  // namespace sparsec
