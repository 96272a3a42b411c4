// Loss and linear-algebra ops: NllLoss (ONNX NegativeLogLikelihoodLoss, also SoftmaxCrossEntropyLoss after a
// log-softmax) and Det.
#include <cmath>
#include <utility>

#include "op_util.h"

namespace sparsec {
namespace {

template <typename I>
bool nll_loss(const Op& op, Message* err) {
  const Tensor& x = *op.in[0];
  const I* target = op.in[1]->as<I>();
  const Tensor* weight = optional_input(op, 2);
  const NllLossAttrs a = nll_loss_attrs(op);
  const size_t n = size_t(x.dims[0]), c = size_t(x.dims[1]), inner = product(x.dims, 2, x.ndim);
  float* loss = op.out[0]->f32();
  double total = 0.0, weights = 0.0;
  for (size_t i = 0; i < n * inner; ++i) {
    const int64_t t = int64_t(target[i]);
    float value = 0.0f, w = 0.0f;
    if (!(a.has_ignore_index && t == a.ignore_index)) {
      SPX_REQUIRE(t >= 0 && t < int64_t(c), "target %lld is outside [0, %zu)", static_cast<long long>(t), c);
      w = weight ? weight->f32()[t] : 1.0f;
      value = -x.f32()[(i / inner * c + size_t(t)) * inner + i % inner] * w;
    }
    if (a.reduction == LossReduction::kNone) loss[i] = value;
    total += value;
    weights += w;
  }
  if (a.reduction == LossReduction::kSum) loss[0] = float(total);
  if (a.reduction == LossReduction::kMean) loss[0] = float(total / weights);
  return true;
}

}  // namespace

bool check_nll_loss(const Op& op, Message* err) {
  const Tensor& x = *op.in[0];
  const Tensor& t = *op.in[1];
  SPX_REQUIRE(x.ndim >= 2 && t.ndim == x.ndim - 1, "log_prob must be [N, C, d...] and target [N, d...]");
  for (uint32_t d = 0; d < t.ndim; ++d)
    SPX_REQUIRE(t.dims[d] == x.dims[d == 0 ? 0 : d + 1], "target %s does not match log_prob %s", shape_str(t).text,
                shape_str(x).text);
  if (const Tensor* w = optional_input(op, 2)) SPX_REQUIRE(w->ndim == 1 && w->dims[0] == x.dims[1], "weight must be [C]");
  const bool none = nll_loss_attrs(op).reduction == LossReduction::kNone;
  SPX_REQUIRE(op.out[0]->numel == (none ? t.numel : 1), "loss has the wrong size");
  return true;
}

bool run_nll_loss(const Op& op, uint8_t*, Message* err) {
  return op.in[1]->dtype == SPARSEC_INT64 ? nll_loss<int64_t>(op, err) : nll_loss<int32_t>(op, err);
}

bool check_det(const Op& op, Message* err) {
  const Tensor& x = *op.in[0];
  SPX_REQUIRE(x.ndim >= 2 && x.dims[x.ndim - 1] == x.dims[x.ndim - 2], "input must be [..., M, M]");
  SPX_REQUIRE(op.out[0]->numel == product(x.dims, 0, x.ndim - 2), "output must have the batch size");
  const uint64_t m = uint64_t(x.dims[x.ndim - 1]);
  SPX_REQUIRE(op.scratch_bytes >= m * m * sizeof(double), "scratch too small for one [M, M] matrix");
  return true;
}

bool run_det(const Op& op, uint8_t* scratch, Message*) {
  const Tensor& x = *op.in[0];
  const size_t m = size_t(x.dims[x.ndim - 1]), batch = op.out[0]->numel;
  double* a = reinterpret_cast<double*>(scratch);
  for (size_t b = 0; b < batch; ++b) {
    for (size_t i = 0; i < m * m; ++i) a[i] = x.f32()[b * m * m + i];
    double det = 1.0;
    for (size_t k = 0; k < m && det != 0.0; ++k) {
      size_t pivot = k;
      for (size_t r = k + 1; r < m; ++r) pivot = std::fabs(a[r * m + k]) > std::fabs(a[pivot * m + k]) ? r : pivot;
      if (pivot != k) {
        for (size_t j = 0; j < m; ++j) std::swap(a[k * m + j], a[pivot * m + j]);
        det = -det;
      }
      det *= a[k * m + k];
      if (a[k * m + k] == 0.0) break;
      for (size_t r = k + 1; r < m; ++r) {
        const double f = a[r * m + k] / a[k * m + k];
        for (size_t j = k; j < m; ++j) a[r * m + j] -= f * a[k * m + j];
      }
    }
    op.out[0]->f32()[b] = float(det);
  }
  return true;
}

}  // namespace sparsec
