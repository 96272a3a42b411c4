// Layer normalisation and its input gradient over contiguous rows. The moments stay in double, as in the reference,
// but over independent lanes: the adds vectorise lane by lane instead of waiting on one chain.
#include <cmath>

#include "sparsec/kernels.h"

namespace sparsec {
namespace {

constexpr size_t kLanes = 16;

// Sum over i < len of f(i), in double.
template <class F>
double lane_sum(size_t len, F f) {
  double lanes[kLanes] = {};
  size_t i = 0;
  for (; i + kLanes <= len; i += kLanes)
    for (size_t l = 0; l < kLanes; ++l) lanes[l] += f(i + l);
  double sum = 0.0;
  for (; i < len; ++i) sum += f(i);
  for (size_t l = 0; l < kLanes; ++l) sum += lanes[l];
  return sum;
}

void row_moments(const float* x, size_t len, float eps, double* mean, double* inv_std) {
  const double m = lane_sum(len, [x](size_t i) { return double(x[i]); }) / double(len);
  const double var = lane_sum(len, [x, m](size_t i) { return (x[i] - m) * (x[i] - m); });
  *mean = m;
  *inv_std = 1.0 / std::sqrt(var / double(len) + eps);
}

}  // namespace

void f32_layer_norm__portable(const LayerNormArgs& a) {
  for (size_t r = 0; r < a.rows; ++r) {
    const float* x = a.x + r * a.len;
    float* y = a.y + r * a.len;
    double mean, inv_std;
    row_moments(x, a.len, a.epsilon, &mean, &inv_std);
    const float m = float(mean), s = float(inv_std);
    if (a.shift)
      for (size_t i = 0; i < a.len; ++i) y[i] = (x[i] - m) * s * a.scale[i] + a.shift[i];
    else
      for (size_t i = 0; i < a.len; ++i) y[i] = (x[i] - m) * s * a.scale[i];
  }
}

void f32_layer_norm_grad__portable(const LayerNormArgs& a, const float* dy, float* dx) {
  const float* scale = a.scale;
  for (size_t r = 0; r < a.rows; ++r, dy += a.len, dx += a.len) {
    const float* x = a.x + r * a.len;
    double mean, rstd;
    row_moments(x, a.len, a.epsilon, &mean, &rstd);
    const double n = double(a.len);
    const double mean_g = lane_sum(a.len, [&](size_t i) { return double(dy[i]) * scale[i]; }) / n;
    const double mean_gx =
        lane_sum(a.len, [&](size_t i) { return double(dy[i]) * scale[i] * (x[i] - mean); }) * rstd / n;
    for (size_t i = 0; i < a.len; ++i)
      dx[i] = float(rstd * (double(dy[i]) * scale[i] - mean_g - (x[i] - mean) * rstd * mean_gx));
  }
}

}  // namespace sparsec
