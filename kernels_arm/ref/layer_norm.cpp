// Scalar reference layer normalisation and its input gradient over contiguous rows, moments in double.
#include <cmath>

#include "sparsec/kernels.h"

namespace sparsec {
namespace {

void row_moments(const float* x, size_t len, float eps, double* mean, double* inv_std) {
  double sum = 0.0;
  for (size_t i = 0; i < len; ++i) sum += x[i];
  const double m = sum / double(len);
  double var = 0.0;
  for (size_t i = 0; i < len; ++i) var += (x[i] - m) * (x[i] - m);
  *mean = m;
  *inv_std = 1.0 / std::sqrt(var / double(len) + eps);
}

}  // namespace

void f32_layer_norm__scalar(const LayerNormArgs& a) {
  for (size_t r = 0; r < a.rows; ++r) {
    const float* x = a.x + r * a.len;
    float* y = a.y + r * a.len;
    double mean, inv_std;
    row_moments(x, a.len, a.epsilon, &mean, &inv_std);
    for (size_t i = 0; i < a.len; ++i)
      y[i] = (x[i] - float(mean)) * float(inv_std) * a.scale[i] + (a.shift ? a.shift[i] : 0.0f);
  }
}

void f32_layer_norm_grad__scalar(const LayerNormArgs& a, const float* dy, float* dx) {
  for (size_t r = 0; r < a.rows; ++r, dy += a.len, dx += a.len) {
    const float* x = a.x + r * a.len;
    double mean, rstd;
    row_moments(x, a.len, a.epsilon, &mean, &rstd);
    double mean_g = 0.0, mean_gx = 0.0;
    for (size_t i = 0; i < a.len; ++i) {
      const double g = double(dy[i]) * a.scale[i];
      mean_g += g;
      mean_gx += g * (x[i] - mean) * rstd;
    }
    mean_g /= double(a.len);
    mean_gx /= double(a.len);
    for (size_t i = 0; i < a.len; ++i)
      dx[i] = float(rstd * (double(dy[i]) * a.scale[i] - mean_g - (x[i] - mean) * rstd * mean_gx));
  }
}

}  // namespace sparsec
