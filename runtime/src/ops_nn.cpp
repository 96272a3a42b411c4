// Neural-network ops: convolution, matmul, pooling, normalisation, softmax.
#include <algorithm>
#include <cmath>
#include <limits>

#include "op_util.h"

namespace sparsec {
namespace {

int64_t conv_out_extent(int64_t in, int64_t pad_begin, int64_t pad_end, int64_t k, int64_t stride, int64_t dil) {
  const int64_t span = dil * (k - 1) + 1;
  if (in + pad_begin + pad_end < span) return 0;
  return (in + pad_begin + pad_end - span) / stride + 1;
}

Conv2dShape conv_shape(const Op& op, const ConvAttrs& a) {
  const Tensor& x = *op.in[0];
  const Tensor& w = *op.in[1];
  const Tensor& y = *op.out[0];
  Conv2dShape s;
  s.C = size_t(x.dims[1]); s.H = size_t(x.dims[2]); s.W = size_t(x.dims[3]);
  s.M = size_t(y.dims[1]); s.OH = size_t(y.dims[2]); s.OW = size_t(y.dims[3]);
  s.KH = size_t(w.dims[2]); s.KW = size_t(w.dims[3]);
  s.G = size_t(a.group); s.SH = size_t(a.strides[0]); s.SW = size_t(a.strides[1]);
  s.PT = size_t(a.pads[0]); s.PL = size_t(a.pads[1]);
  s.DH = size_t(a.dilations[0]); s.DW = size_t(a.dilations[1]);
  return s;
}

}  // namespace

bool check_conv(const Op& op, Message* err) {
  const Tensor& x = *op.in[0];
  const Tensor& w = *op.in[1];
  const Tensor& y = *op.out[0];
  SPX_REQUIRE(x.ndim == 4 && w.ndim == 4 && y.ndim == 4, "supports 2-D convolution on NCHW only");
  const ConvAttrs a = conv_attrs(op);
  const int64_t G = a.group;
  SPX_REQUIRE(x.dims[1] % G == 0 && w.dims[0] % G == 0 && w.dims[1] * G == x.dims[1],
              "weight %s does not fit input %s with group %lld", shape_str(w).text, shape_str(x).text,
              static_cast<long long>(G));
  const int64_t oh = conv_out_extent(x.dims[2], a.pads[0], a.pads[2], w.dims[2], a.strides[0], a.dilations[0]);
  const int64_t ow = conv_out_extent(x.dims[3], a.pads[1], a.pads[3], w.dims[3], a.strides[1], a.dilations[1]);
  SPX_REQUIRE(y.dims[0] == x.dims[0] && y.dims[1] == w.dims[0] && y.dims[2] == oh && y.dims[3] == ow && oh > 0 && ow > 0,
              "output %s does not match input %s and weight %s", shape_str(y).text, shape_str(x).text, shape_str(w).text);
  if (const Tensor* bias = optional_input(op, 2))
    SPX_REQUIRE(bias->numel == size_t(w.dims[0]), "bias size differs from output channels");
  const Conv2dShape s = conv_shape(op, a);
  const bool depthwise = s.G == s.C && s.G == s.M;
  switch (a.algorithm) {
    case ConvAlgo::kGemm1x1:
      SPX_REQUIRE(s.KH == 1 && s.KW == 1 && s.SH == 1 && s.SW == 1 && a.pads[0] == 0 && a.pads[1] == 0 &&
                      a.pads[2] == 0 && a.pads[3] == 0,
                  "algorithm GEMM_1X1 needs a 1x1 kernel, stride 1 and no padding");
      break;
    case ConvAlgo::kDepthwise3x3:
      SPX_REQUIRE(s.KH == 3 && s.KW == 3, "algorithm DEPTHWISE_3X3 needs a 3x3 kernel");
      [[fallthrough]];
    case ConvAlgo::kDepthwise:
      SPX_REQUIRE(depthwise, "algorithm DEPTHWISE needs group == input channels == output channels");
      break;
    case ConvAlgo::kIm2col: {
      const double rows = double(s.C / s.G) * double(s.KH * s.KW);
      SPX_REQUIRE(rows * double(kIm2colBandColumns + s.OW) <= double(kMaxNumel), "im2col buffer would be too large");
      const uint64_t need = uint64_t(f32_conv2d_im2col_scratch(s)) * sizeof(float);
      SPX_REQUIRE(op.scratch_bytes >= need, "algorithm IM2COL needs %llu scratch bytes, the artifact plans %llu",
                  static_cast<unsigned long long>(need), static_cast<unsigned long long>(op.scratch_bytes));
      break;
    }
  }
  return true;
}

bool run_conv(const Op& op, uint8_t* scratch, Message*) {
  const ConvAttrs a = conv_attrs(op);
  const Conv2dShape s = conv_shape(op, a);
  const float* w = op.in[1]->f32();
  const Tensor* bias_tensor = optional_input(op, 2);
  const float* bias = bias_tensor ? bias_tensor->f32() : nullptr;
  const ActParams act = act_params(a);
  const size_t in_size = s.C * s.H * s.W, out_plane = s.OH * s.OW;
  const size_t Cg = s.C / s.G, Mg = s.M / s.G, Kg = Cg * s.KH * s.KW;
  const size_t images = size_t(op.in[0]->dims[0]);
  if (a.algorithm == ConvAlgo::kGemm1x1) {  // the input already is the column matrix; one GEMM per group
    for (size_t g = 0; g < s.G; ++g) {
      GemmArgs gemm{Mg, out_plane, Kg, w + g * Mg * Kg, Kg, op.in[0]->f32() + g * Cg * s.H * s.W, out_plane,
                    op.out[0]->f32() + g * Mg * out_plane, out_plane, bias ? bias + g * Mg : nullptr,
                    bias ? BiasMode::kPerRow : BiasMode::kNone, act};
      gemm.batch = images, gemm.batch_stride_b = in_size, gemm.batch_stride_c = s.M * out_plane;
      f32_gemm(gemm);
    }
    return true;
  }
  for (size_t n = 0; n < images; ++n) {
    const float* x = op.in[0]->f32() + n * in_size;
    float* y = op.out[0]->f32() + n * s.M * out_plane;
    switch (a.algorithm) {
      case ConvAlgo::kDepthwise3x3: f32_dwconv2d_3x3(s, x, w, bias, act, y); break;
      case ConvAlgo::kDepthwise: f32_dwconv2d(s, x, w, bias, act, y); break;
      case ConvAlgo::kIm2col: f32_conv2d_im2col(s, x, w, bias, act, y, reinterpret_cast<float*>(scratch)); break;
      case ConvAlgo::kGemm1x1: break;  // above
    }
  }
  return true;
}

bool check_mat_mul(const Op& op, Message* err) {
  const Tensor& a = *op.in[0];
  const Tensor& b = *op.in[1];
  const Tensor& y = *op.out[0];
  SPX_REQUIRE(a.ndim >= 2 && b.ndim >= 2 && y.ndim == std::max(a.ndim, b.ndim), "expects operands of rank >= 2");
  const bool trans_a = mat_mul_attrs(op).trans_a;
  const int64_t M = a.dims[a.ndim - (trans_a ? 1 : 2)], K = a.dims[a.ndim - (trans_a ? 2 : 1)], N = b.dims[b.ndim - 1];
  SPX_REQUIRE(b.dims[b.ndim - 2] == K && y.dims[y.ndim - 2] == M && y.dims[y.ndim - 1] == N,
              "shapes %s x %s -> %s do not multiply", shape_str(a).text, shape_str(b).text, shape_str(y).text);
  for (uint32_t d = 0; d + 2 < y.ndim; ++d) {
    const int ad = int(d) - int(y.ndim - a.ndim), bd = int(d) - int(y.ndim - b.ndim);
    const int64_t ae = ad >= 0 ? a.dims[ad] : 1, be = bd >= 0 ? b.dims[bd] : 1;
    SPX_REQUIRE((ae == y.dims[d] || ae == 1) && (be == y.dims[d] || be == 1), "batch dimensions do not broadcast");
  }
  if (const Tensor* bias = optional_input(op, 2)) SPX_REQUIRE(bias->numel == size_t(N), "bias size differs from N");
  return true;
}

bool run_mat_mul(const Op& op, uint8_t*, Message*) {
  const Tensor& a = *op.in[0];
  const Tensor& b = *op.in[1];
  const Tensor& y = *op.out[0];
  const MatMulAttrs attrs = mat_mul_attrs(op);
  const bool trans_a = attrs.trans_a;  // a holds A^T: [..., K, M]
  const size_t M = size_t(y.dims[y.ndim - 2]), N = size_t(y.dims[y.ndim - 1]), K = size_t(b.dims[b.ndim - 2]);
  const Tensor* bias_tensor = optional_input(op, 2);
  const float* bias = bias_tensor ? bias_tensor->f32() : nullptr;
  const ActParams act = act_params(attrs);
  // Batch strides in matrices, 0 where an operand's batch dim is broadcast.
  const size_t nb = y.ndim - 2;
  int64_t sa[kMaxDims], sb[kMaxDims];
  int64_t acc_a = 1, acc_b = 1;
  for (int d = int(nb) - 1; d >= 0; --d) {
    const int ad = d - int(y.ndim - a.ndim), bd = d - int(y.ndim - b.ndim);
    const int64_t ae = ad >= 0 ? a.dims[ad] : 1, be = bd >= 0 ? b.dims[bd] : 1;
    sa[d] = ae == 1 ? 0 : acc_a;
    sb[d] = be == 1 ? 0 : acc_b;
    acc_a *= ae;
    acc_b *= be;
  }
  const size_t batches = product(y.dims, 0, nb);
  // One B for all of A's rows (a Linear over a sequence): one GEMM, B packed once.
  if (acc_b == 1 && size_t(acc_a) == batches && !trans_a) {
    f32_gemm({batches * M, N, K, a.f32(), K, b.f32(), N, y.f32(), N, bias,
              bias ? BiasMode::kPerColumn : BiasMode::kNone, act});
    return true;
  }
  int64_t idx[kMaxDims] = {};
  size_t off_a = 0, off_b = 0;
  for (size_t i = 0; i < batches; ++i) {
    GemmArgs g{M, N, K, a.f32() + off_a * M * K, trans_a ? M : K, b.f32() + off_b * K * N, N, y.f32() + i * M * N, N,
               bias, bias ? BiasMode::kPerColumn : BiasMode::kNone, act};
    g.trans_a = trans_a;
    f32_gemm(g);
    for (int d = int(nb) - 1; d >= 0; --d) {
      off_a += sa[d];
      off_b += sb[d];
      if (++idx[d] < y.dims[d]) break;
      off_a -= sa[d] * y.dims[d];
      off_b -= sb[d] * y.dims[d];
      idx[d] = 0;
    }
  }
  return true;
}

bool check_pool(const Op& op, Message* err) {
  const Tensor& x = *op.in[0];
  const Tensor& y = *op.out[0];
  const PoolAttrs a = pool_attrs(op);
  SPX_REQUIRE(x.ndim == 4 && y.ndim == 4, "supports 2-D pooling on NCHW only");
  // Ceil mode may add one window; the kernel clamps every window to the input.
  const int64_t oh = conv_out_extent(x.dims[2], a.pads[0], a.pads[2] + a.strides[0] - 1, a.kernel[0], a.strides[0],
                                     a.dilations[0]);
  const int64_t ow = conv_out_extent(x.dims[3], a.pads[1], a.pads[3] + a.strides[1] - 1, a.kernel[1], a.strides[1],
                                     a.dilations[1]);
  SPX_REQUIRE(y.dims[0] == x.dims[0] && y.dims[1] == x.dims[1] && y.dims[2] >= 1 && y.dims[3] >= 1 &&
                  y.dims[2] <= oh && y.dims[3] <= ow,
              "output %s does not match input %s", shape_str(y).text, shape_str(x).text);
  return true;
}

bool run_pool(const Op& op, uint8_t*, Message*) {
  const Tensor& x = *op.in[0];
  const Tensor& y = *op.out[0];
  const PoolAttrs a = pool_attrs(op);
  const Pool2dShape s{size_t(x.dims[2]), size_t(x.dims[3]), size_t(y.dims[2]), size_t(y.dims[3]),
                      size_t(a.kernel[0]), size_t(a.kernel[1]), size_t(a.strides[0]), size_t(a.strides[1]),
                      size_t(a.pads[0]), size_t(a.pads[1]), size_t(a.pads[2]), size_t(a.pads[3]),
                      size_t(a.dilations[0]), size_t(a.dilations[1]), a.count_include_pad != 0};
  const size_t planes = size_t(x.dims[0] * x.dims[1]);
  if (a.kind == PoolKind::kMax) f32_maxpool2d(s, planes, x.f32(), y.f32());
  else f32_avgpool2d(s, planes, x.f32(), y.f32());
  return true;
}

bool check_softmax(const Op& op, Message* err) {
  const Tensor& x = *op.in[0];
  SPX_REQUIRE(softmax_attrs(op).axis < int64_t(x.ndim), "axis out of range");
  SPX_REQUIRE(op.out[0]->numel == x.numel, "output size differs from input");
  return true;
}

bool run_softmax(const Op& op, uint8_t*, Message*) {
  const Tensor& x = *op.in[0];
  const SoftmaxAttrs a = softmax_attrs(op);
  const size_t axis = size_t(a.axis);
  const size_t outer = product(x.dims, 0, axis), len = size_t(x.dims[axis]), inner = product(x.dims, axis + 1, x.ndim);
  if (inner == 1 && len > 0 && a.mode == SoftmaxMode::kSoftmax) {
    f32_softmax(x.f32(), op.out[0]->f32(), outer, len);
    return true;
  }
  for (size_t o = 0; o < outer; ++o) {
    for (size_t i = 0; i < inner; ++i) {
      const float* in = x.f32() + o * len * inner + i;
      float* out = op.out[0]->f32() + o * len * inner + i;
      size_t first_max = 0;
      for (size_t k = 1; k < len; ++k) first_max = in[k * inner] > in[first_max * inner] ? k : first_max;
      const float m = in[first_max * inner];
      if (a.mode == SoftmaxMode::kHardmax) {
        for (size_t k = 0; k < len; ++k) out[k * inner] = k == first_max ? 1.0f : 0.0f;
        continue;
      }
      float sum = 0.0f;
      for (size_t k = 0; k < len; ++k) {
        const float e = std::exp(in[k * inner] - m);
        out[k * inner] = e;
        sum += e;
      }
      if (a.mode == SoftmaxMode::kLogSoftmax) {
        const float log_sum = std::log(sum);
        for (size_t k = 0; k < len; ++k) out[k * inner] = in[k * inner] - m - log_sum;
      } else {
        const float inv = 1.0f / sum;
        for (size_t k = 0; k < len; ++k) out[k * inner] *= inv;
      }
    }
  }
  return true;
}

bool check_layer_norm(const Op& op, Message* err) {
  const Tensor& x = *op.in[0];
  const int64_t axis = layer_norm_attrs(op).axis;
  SPX_REQUIRE(axis < int64_t(x.ndim), "axis out of range");
  const size_t norm = product(x.dims, size_t(axis), x.ndim);
  SPX_REQUIRE(op.in[1]->numel == norm, "scale size differs from the normalised size");
  if (const Tensor* bias = optional_input(op, 2))
    SPX_REQUIRE(bias->numel == norm, "bias size differs from the normalised size");
  SPX_REQUIRE(op.out[0]->numel == x.numel, "output size differs from input");
  return true;
}

// Sum of f(x[i]) in double, over four independent partial sums (one chain of adds would wait on each add).
template <class F>
double sum_of(const float* x, size_t n, F f) {
  double s[4] = {0.0, 0.0, 0.0, 0.0};
  size_t i = 0;
  for (; i + 4 <= n; i += 4)
    for (size_t k = 0; k < 4; ++k) s[k] += f(x[i + k]);
  for (; i < n; ++i) s[0] += f(x[i]);
  return (s[0] + s[1]) + (s[2] + s[3]);
}

// Mean and 1/sqrt(variance + eps) of n values, accumulated in double for long rows.
void moments(const float* x, size_t n, float eps, float* mean, float* inv_std) {
  const double m = sum_of(x, n, [](float v) { return double(v); }) / double(n);
  const double var = sum_of(x, n, [m](float v) { return (v - m) * (v - m); });
  *mean = float(m);
  *inv_std = float(1.0 / std::sqrt(var / double(n) + eps));
}

bool run_layer_norm(const Op& op, uint8_t*, Message*) {
  const Tensor& x = *op.in[0];
  const LayerNormAttrs a = layer_norm_attrs(op);
  const size_t norm = product(x.dims, size_t(a.axis), x.ndim), rows = x.numel / std::max<size_t>(norm, 1);
  const Tensor* bias = optional_input(op, 2);
  f32_layer_norm({x.f32(), op.in[1]->f32(), bias ? bias->f32() : nullptr, a.epsilon, op.out[0]->f32(), rows, norm});
  return true;
}

bool check_group_norm(const Op& op, Message* err) {
  const Tensor& x = *op.in[0];
  SPX_REQUIRE(x.ndim >= 2, "expects [N, C, ...] input");
  const int64_t C = x.dims[1], groups = group_norm_attrs(op).groups;
  SPX_REQUIRE(C % groups == 0, "groups must divide channels");
  SPX_REQUIRE(op.in[1]->numel == size_t(C) && op.in[2]->numel == size_t(C), "scale/bias must have C values");
  SPX_REQUIRE(op.out[0]->numel == x.numel, "output size differs from input");
  return true;
}

bool run_group_norm(const Op& op, uint8_t*, Message*) {
  const Tensor& x = *op.in[0];
  const GroupNormAttrs a = group_norm_attrs(op);
  const size_t C = size_t(x.dims[1]), groups = size_t(a.groups), spatial = product(x.dims, 2, x.ndim);
  const size_t cg = C / groups, n = cg * spatial;
  for (size_t b = 0; b < size_t(x.dims[0]); ++b) {
    for (size_t g = 0; g < groups; ++g) {
      const size_t off = (b * C + g * cg) * spatial;
      float mean, inv_std;
      moments(x.f32() + off, n, a.epsilon, &mean, &inv_std);
      for (size_t c = g * cg; c < (g + 1) * cg; ++c) {
        const float s = inv_std * op.in[1]->f32()[c], t = op.in[2]->f32()[c] - mean * s;
        const float* in = x.f32() + (b * C + c) * spatial;
        float* out = op.out[0]->f32() + (b * C + c) * spatial;
        for (size_t i = 0; i < spatial; ++i) out[i] = in[i] * s + t;
      }
    }
  }
  return true;
}

bool check_channel_affine(const Op& op, Message* err) {
  const Tensor& x = *op.in[0];
  SPX_REQUIRE(x.ndim >= 2, "expects [N, C, ...] input");
  SPX_REQUIRE(op.in[1]->numel == size_t(x.dims[1]) && op.in[2]->numel == size_t(x.dims[1]), "scale/shift must have C values");
  SPX_REQUIRE(op.out[0]->numel == x.numel, "output size differs from input");
  return true;
}

bool run_channel_affine(const Op& op, uint8_t*, Message*) {
  const Tensor& x = *op.in[0];
  const size_t C = size_t(x.dims[1]), inner = product(x.dims, 2, x.ndim);
  const ActParams act = act_params(channel_affine_attrs(op));
  for (size_t b = 0; b < size_t(x.dims[0]); ++b) {
    for (size_t c = 0; c < C; ++c) {
      const float s = op.in[1]->f32()[c], t = op.in[2]->f32()[c];
      const float* in = x.f32() + (b * C + c) * inner;
      float* out = op.out[0]->f32() + (b * C + c) * inner;
      for (size_t i = 0; i < inner; ++i) out[i] = in[i] * s + t;
      if (act.kind != Activation::kNone) f32_activation(act, out, inner);
    }
  }
  return true;
}

}  // namespace sparsec
