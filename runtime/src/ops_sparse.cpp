// Sparse ops: Spmm, a Conv / Gemm / MatMul whose constant weight is packed for the SpMM kernels (spmm.h).
#include "op_util.h"
#include "sparsec/spmm.h"

namespace sparsec {
namespace {

constexpr int64_t kBlocked = 1;  // schema.SparseFormat.BLOCKED (else N_OF_M)

// The product's dims: Y[M, N] = W[M, K] X[K, N] per batch item (rows layout: one item of N = all rows).
struct SpmmShape {
  size_t M = 0, K = 0, N = 0, batch = 0;
  Conv2dShape conv{};  // IM2COL only
};

SpmmShape spmm_shape(const Op& op, const SpmmAttrs& a) {
  const Tensor& x = *op.in[0];
  const Tensor& y = *op.out[0];
  SpmmShape s;
  if (a.layout == SpmmLayout::kRows) {
    s.K = size_t(x.dims[x.ndim - 1]);
    s.M = size_t(y.dims[y.ndim - 1]);
    s.N = s.K ? x.numel / s.K : 0;
    s.batch = 1;
    return s;
  }
  s.batch = size_t(x.dims[0]);
  s.M = size_t(y.dims[1]);
  s.N = size_t(y.dims[2] * y.dims[3]);
  s.K = size_t(x.dims[1] * a.kernel[0] * a.kernel[1]);
  Conv2dShape& c = s.conv;
  c.C = size_t(x.dims[1]); c.H = size_t(x.dims[2]); c.W = size_t(x.dims[3]);
  c.M = s.M; c.OH = size_t(y.dims[2]); c.OW = size_t(y.dims[3]);
  c.KH = size_t(a.kernel[0]); c.KW = size_t(a.kernel[1]);
  c.SH = size_t(a.strides[0]); c.SW = size_t(a.strides[1]);
  c.PT = size_t(a.pads[0]); c.PL = size_t(a.pads[1]);
  c.DH = size_t(a.dilations[0]); c.DW = size_t(a.dilations[1]);
  c.G = 1;
  return s;
}

// out is the largest extent whose last window (span taps) still fits the padded input.
bool window_fits(int64_t in, int64_t pads, int64_t k, int64_t stride, int64_t dil, int64_t out) {
  const int64_t padded = in + pads, span = dil * (k - 1) + 1;
  return out > 0 && (out - 1) * stride + span <= padded && out * stride + span > padded;
}

}  // namespace

bool check_spmm(const Op& op, Message* err) {
  const Tensor& x = *op.in[0];
  const Tensor& y = *op.out[0];
  const SpmmAttrs a = spmm_attrs(op);
  const Tensor* values = op.in[1];
  const Tensor* deltas = optional_input(op, 2);
  const Tensor* nnz = optional_input(op, 3);
  const Tensor* index = optional_input(op, 4);
  SPX_REQUIRE(values->is_const && (!deltas || deltas->is_const) && (!nnz || nnz->is_const) &&
                  (!index || index->is_const),
              "packed weights must be constants");
  if (a.layout == SpmmLayout::kRows) {
    SPX_REQUIRE(x.ndim >= 1 && y.ndim == x.ndim, "rows layout needs x and y of the same rank");
    for (uint32_t d = 0; d + 1 < x.ndim; ++d) SPX_REQUIRE(x.dims[d] == y.dims[d], "x and y differ in a row dimension");
  } else {
    SPX_REQUIRE(x.ndim == 4 && y.ndim == 4 && x.dims[0] == y.dims[0], "needs NCHW x and y with the same batch");
    if (a.layout == SpmmLayout::kChw)
      SPX_REQUIRE(a.kernel[0] == 1 && a.kernel[1] == 1 && x.dims[2] == y.dims[2] && x.dims[3] == y.dims[3],
                  "layout CHW is a 1x1 convolution with stride 1 and no padding");
    else
      SPX_REQUIRE(window_fits(x.dims[2], a.pads[0] + a.pads[2], a.kernel[0], a.strides[0], a.dilations[0], y.dims[2]) &&
                      window_fits(x.dims[3], a.pads[1] + a.pads[3], a.kernel[1], a.strides[1], a.dilations[1], y.dims[3]),
                  "output %s does not match input %s and the convolution window", shape_str(y).text, shape_str(x).text);
  }
  const SpmmShape s = spmm_shape(op, a);
  const uint64_t scratch = a.layout == SpmmLayout::kChw    ? 0
                           : a.layout == SpmmLayout::kIm2col ? uint64_t(s.K) * s.N * sizeof(float)
                                                             : uint64_t(s.K + s.M) * s.N * sizeof(float);
  SPX_REQUIRE(op.scratch_bytes == scratch, "needs %llu scratch bytes, the artifact plans %llu",
              static_cast<unsigned long long>(scratch), static_cast<unsigned long long>(op.scratch_bytes));
  if (a.format == kBlocked) {
    SPX_REQUIRE(deltas && nnz && !index, "format BLOCKED takes deltas and nnz, no index");
    SPX_REQUIRE(spmm_blocked_valid(s.M, s.K, s.N, size_t(a.mb), nnz->as<uint32_t>(), nnz->numel, deltas->as<int32_t>(),
                                   deltas->numel, int32_t(a.first), values->numel),
                "packed weight (%zu x %zu in blocks of %lld rows) is malformed or reads outside the input", s.M, s.K,
                static_cast<long long>(a.mb));
  } else {
    SPX_REQUIRE(index && !deltas && !nnz && a.mb == 1, "format N_OF_M takes an index, no deltas or nnz, mb 1");
    SPX_REQUIRE(spmm_2of4_valid(s.M, s.K, index->as<uint8_t>(), index->numel, values->numel),
                "packed 2:4 weight (%zu x %zu) is malformed", s.M, s.K);
  }
  return true;
}

bool run_spmm(const Op& op, uint8_t* scratch, Message*) {
  const SpmmAttrs a = spmm_attrs(op);
  const SpmmShape s = spmm_shape(op, a);
  const float* values = op.in[1]->f32();
  const ActParams act = act_params(a);
  float* cols = reinterpret_cast<float*>(scratch);
  const auto multiply = [&](const float* x, float* y) {
    if (a.format == kBlocked)
      f32_spmm({s.M, s.K, s.N, size_t(a.mb), values, op.in[2]->as<int32_t>(), op.in[3]->as<uint32_t>(),
                int32_t(a.first), x, y, act});
    else
      f32_spmm_2of4({s.M, s.K, s.N, values, op.in[4]->as<uint8_t>(), x, y, act});
  };
  const float* x = op.in[0]->f32();
  float* y = op.out[0]->f32();
  if (a.layout == SpmmLayout::kRows) {  // x [N, K] -> cols [K, N]; product [M, N] after it -> y [N, M]
    float* product = cols + s.K * s.N;
    for (size_t n = 0; n < s.N; ++n)
      for (size_t k = 0; k < s.K; ++k) cols[k * s.N + n] = x[n * s.K + k];
    multiply(cols, product);
    for (size_t n = 0; n < s.N; ++n)
      for (size_t m = 0; m < s.M; ++m) y[n * s.M + m] = product[m * s.N + n];
    return true;
  }
  const size_t in_size = size_t(op.in[0]->dims[1] * op.in[0]->dims[2] * op.in[0]->dims[3]);
  for (size_t b = 0; b < s.batch; ++b, x += in_size, y += s.M * s.N) {
    if (a.layout == SpmmLayout::kIm2col) {
      f32_im2col(s.conv, x, 0, s.conv.C, 0, s.conv.OH, cols);
      multiply(cols, y);
    } else {
      multiply(x, y);
    }
  }
  return true;
}

}  // namespace sparsec
