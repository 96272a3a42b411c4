// Loss, linear-algebra and signal ops: NllLoss (ONNX NegativeLogLikelihoodLoss, also SoftmaxCrossEntropyLoss after
// a log-softmax), Det, Dft, Stft and the window functions.
#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

#include "op_util.h"

namespace sparsec {

bool run_nll_loss(const Op& op, uint8_t*, Message* err) {
  const Tensor& x = *op.in[0];
  const Tensor& target = *op.in[1];
  const Tensor* weight = optional_input(op, 2);
  const NllLossAttrs a = nll_loss_attrs(op);
  const size_t n = size_t(x.dims[0]), c = size_t(x.dims[1]), inner = product(x.dims, 2, x.ndim);
  float* loss = op.out[0]->f32();
  double total = 0.0, weights = 0.0;
  for (size_t i = 0; i < n * inner; ++i) {
    const int64_t t = target.dtype == SPARSEC_INT64 ? target.as<int64_t>()[i] : target.as<int32_t>()[i];
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

namespace {

// cos and sin of 2 pi t / n in double precision without libm's double sin/cos (kilobytes of wasm): the quarter
// turn by integer arithmetic, then Taylor series (to x^23) on [0, pi/2).
void turn(size_t t, size_t n, double* c, double* s) {
  const size_t quarters = 4 * (t % n) / n, rest = 4 * (t % n) - quarters * n;
  const double a = 1.5707963267948966192313216916398 * double(rest) / double(n);
  double sin_a = 0.0, cos_a = 0.0, sin_term = a, cos_term = 1.0;
  for (int k = 1; k < 24; k += 2) {
    sin_a += sin_term;
    cos_a += cos_term;
    sin_term *= -a * a / double((k + 1) * (k + 2));
    cos_term *= -a * a / double(k * (k + 1));
  }
  const double cs[4][2] = {{cos_a, sin_a}, {-sin_a, cos_a}, {-cos_a, -sin_a}, {sin_a, -cos_a}};
  *c = cs[quarters][0];
  *s = cs[quarters][1];
}

// Fills scratch with cos, sin of 2 pi t / length, t < length (fails when scratch is too small).
bool twiddles(const Op& op, size_t length, double* twiddle, Message* err) {
  SPX_REQUIRE(length > 0 && op.scratch_bytes >= uint64_t(length) * 2 * sizeof(double),
              "scratch too small for a DFT of length %zu", length);
  for (size_t t = 0; t < length; ++t) turn(t, length, &twiddle[2 * t], &twiddle[2 * t + 1]);
  return true;
}

// out[k * stride] (re, im if c_out == 2) = scale * sum_{j < terms} term(j) e^(sign 2 pi i j k / length), k < n_out.
template <typename Term>
void transform(const double* twiddle, size_t length, size_t terms, size_t n_out, double sign, double scale, Term term,
               float* out, size_t stride, size_t c_out) {
  for (size_t k = 0; k < n_out; ++k) {
    double re = 0.0, im = 0.0;
    for (size_t j = 0; j < terms; ++j) {
      double xr, xi;
      term(j, &xr, &xi);
      const size_t t = size_t(uint64_t(j) * k % length);  // 64-bit: size_t is 32 bits in wasm32
      const double c = twiddle[2 * t], s = sign * twiddle[2 * t + 1];
      re += xr * c - xi * s;
      im += xr * s + xi * c;
    }
    out[k * stride] = float(re * scale);
    if (c_out == 2) out[k * stride + 1] = float(im * scale);
  }
}

// The DFT axis: the attribute, or the run-time axis input (negative counts from the end), which must give the
// compiled output shape.
bool dft_axis(const Op& op, size_t* axis, Message* err) {
  const Tensor& x = *op.in[0];
  const Tensor& y = *op.out[0];
  const DftAttrs a = dft_attrs(op);
  int64_t value = a.axis;
  if (const Tensor* input = optional_input(op, 1)) {
    value = input->as<int64_t>()[0];
    value = value < 0 ? value + int64_t(x.ndim) : value;
  }
  SPX_REQUIRE(value >= 0 && value + 2 <= int64_t(x.ndim), "axis %lld is outside [0, %u)", static_cast<long long>(value),
              x.ndim - 1);
  for (uint32_t d = 0; d + 1 < x.ndim; ++d)
    SPX_REQUIRE(int64_t(d) == value || y.dims[d] == x.dims[d], "axis %lld gives another output shape than the compiled %s",
                static_cast<long long>(value), shape_str(y).text);
  *axis = size_t(value);
  return true;
}

}  // namespace

bool check_dft(const Op& op, Message* err) {
  const Tensor& x = *op.in[0];
  const Tensor& y = *op.out[0];
  const DftAttrs a = dft_attrs(op);
  const bool real_out = a.inverse && a.onesided;
  SPX_REQUIRE(x.ndim >= 2 && y.ndim == x.ndim && (x.dims[x.ndim - 1] == 1 || x.dims[x.ndim - 1] == 2) &&
                  y.dims[y.ndim - 1] == (real_out ? 1 : 2),
              "input must be [..., 1 or 2] and output [..., %d]", real_out ? 1 : 2);
  if (const Tensor* axis = optional_input(op, 1)) SPX_REQUIRE(axis->numel == 1, "axis input must be one value");
  else SPX_REQUIRE(a.axis + 2 <= int64_t(x.ndim), "axis out of range");
  return true;
}

bool run_dft(const Op& op, uint8_t* scratch, Message* err) {
  const Tensor& x = *op.in[0];
  const Tensor& y = *op.out[0];
  const DftAttrs a = dft_attrs(op);
  size_t axis = 0;
  if (!dft_axis(op, &axis, err)) return false;
  const bool hermitian = a.inverse && a.onesided;
  const size_t n_in = size_t(x.dims[axis]), n_out = size_t(y.dims[axis]);
  const size_t length = a.length ? size_t(a.length) : hermitian ? 2 * (n_in - 1) : n_in;
  SPX_REQUIRE(n_out == (a.onesided && !a.inverse ? length / 2 + 1 : length), "output length %zu does not fit the DFT",
              n_out);
  double* twiddle = reinterpret_cast<double*>(scratch);
  if (!twiddles(op, length, twiddle, err)) return false;
  const size_t c_in = size_t(x.dims[x.ndim - 1]), c_out = size_t(y.dims[y.ndim - 1]);
  const size_t outer = product(x.dims, 0, axis), inner = product(x.dims, axis + 1, x.ndim - 1);
  const double sign = a.inverse ? 1.0 : -1.0, scale = a.inverse ? 1.0 / double(length) : 1.0;
  // Input term j of the transform: x[j], zero past the input; the one-sided inverse mirrors the spectrum.
  const size_t terms = hermitian ? length : std::min(n_in, length);
  for (size_t o = 0; o < outer; ++o) {
    for (size_t i = 0; i < inner; ++i) {
      const float* in = x.f32() + (o * n_in * inner + i) * c_in;
      auto term = [&](size_t j, double* re, double* im) {
        const bool mirrored = hermitian && j > length / 2;  // conj(x[length - j])
        const size_t k = mirrored ? length - j : j;
        *re = k < n_in ? in[k * inner * c_in] : 0.0;
        *im = k < n_in && c_in == 2 ? in[k * inner * c_in + 1] * (mirrored ? -1.0 : 1.0) : 0.0;
      };
      transform(twiddle, length, terms, n_out, sign, scale, term, y.f32() + (o * n_out * inner + i) * c_out,
                inner * c_out, c_out);
    }
  }
  return true;
}

bool check_stft(const Op& op, Message* err) {
  const Tensor& x = *op.in[0];
  const Tensor& y = *op.out[0];
  SPX_REQUIRE(x.ndim == 3 && (x.dims[2] == 1 || x.dims[2] == 2) && y.ndim == 4 && y.dims[0] == x.dims[0] &&
                  y.dims[3] == 2 && op.in[1]->numel == 1,
              "signal must be [B, L, 1 or 2], frame_step one value and the output [B, frames, bins, 2]");
  const Tensor* window = optional_input(op, 2);
  const Tensor* length = optional_input(op, 3);
  SPX_REQUIRE((window || length) && (!window || window->ndim == 1) && (!length || length->numel == 1),
              "needs a 1-D window or one frame_length value");
  return true;
}

bool run_stft(const Op& op, uint8_t* scratch, Message* err) {
  const Tensor& x = *op.in[0];
  const Tensor& y = *op.out[0];
  const Tensor* window = optional_input(op, 2);
  const Tensor* length_input = optional_input(op, 3);
  const int64_t step = op.in[1]->as<int64_t>()[0];
  const int64_t length = length_input ? length_input->as<int64_t>()[0] : int64_t(window->numel);
  const int64_t signal = x.dims[1], frames = y.dims[1], bins = y.dims[2];
  SPX_REQUIRE(step > 0 && length > 0 && length <= signal && (!window || int64_t(window->numel) == length) &&
                  frames == 1 + (signal - length) / step && bins == (stft_attrs(op).onesided ? length / 2 + 1 : length),
              "frame_step %lld and frame length %lld give another output shape than the compiled %s",
              static_cast<long long>(step), static_cast<long long>(length), shape_str(y).text);
  double* twiddle = reinterpret_cast<double*>(scratch);
  if (!twiddles(op, size_t(length), twiddle, err)) return false;
  const size_t c_in = size_t(x.dims[2]);
  for (int64_t b = 0; b < x.dims[0]; ++b) {
    for (int64_t f = 0; f < frames; ++f) {
      const float* in = x.f32() + size_t(b * signal + f * step) * c_in;
      auto term = [&](size_t j, double* re, double* im) {
        const double w = window ? window->f32()[j] : 1.0;
        *re = in[j * c_in] * w;
        *im = c_in == 2 ? in[j * c_in + 1] * w : 0.0;
      };
      transform(twiddle, size_t(length), size_t(length), size_t(bins), -1.0, 1.0, term,
                y.f32() + size_t((b * frames + f) * bins) * 2, 2, 2);
    }
  }
  return true;
}

bool check_window(const Op& op, Message* err) {
  SPX_REQUIRE(op.in[0]->numel == 1 && op.out[0]->ndim == 1, "size must be one value and the output 1-D");
  return true;
}

bool run_window(const Op& op, uint8_t*, Message* err) {
  const Tensor& y = *op.out[0];
  const WindowAttrs a = window_attrs(op);
  const int64_t size = op.in[0]->dtype == SPARSEC_INT64 ? op.in[0]->as<int64_t>()[0] : op.in[0]->as<int32_t>()[0];
  SPX_REQUIRE(size == y.dims[0], "size %lld differs from the compiled output length %lld", static_cast<long long>(size),
              static_cast<long long>(y.dims[0]));
  const size_t n = size_t(a.periodic ? size : size - 1);
  // a0 - a1 cos(2 pi k / n) + a2 cos(4 pi k / n)
  const double coef[3][3] = {{0.5, 0.5, 0.0}, {25.0 / 46.0, 21.0 / 46.0, 0.0}, {0.42, 0.5, 0.08}};
  const double* c = coef[int(a.kind)];
  for (size_t k = 0; k < size_t(size); ++k) {
    if (n == 0) {  // one symmetric sample: 0 / 0 in ONNX's formula
      y.f32()[k] = std::numeric_limits<float>::quiet_NaN();
      continue;
    }
    double cos1, cos2, unused;
    turn(k, n, &cos1, &unused);
    turn(2 * k, n, &cos2, &unused);
    y.f32()[k] = float(c[0] - c[1] * cos1 + c[2] * cos2);
  }
  return true;
}

}  // namespace sparsec
