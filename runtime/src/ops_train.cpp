// Training ops: losses, backward ops and in-place optimizer updates (the compiler's sparsec.train graphs).
// Plain loops: a training step runs them on the few layers a sparse update reaches.
#include <algorithm>
#include <cmath>

#include "../../kernels_arm/ref/activation_math.h"
#include "../../kernels_arm/ref/pool2d_window.h"
#include "op_util.h"

namespace sparsec {
namespace {

struct ConvGeom {
  size_t N, C, H, W, M, OH, OW, KH, KW, G, SH, SW, PT, PL, DH, DW;
};

// x: [N, C, H, W], y: [N, M, OH, OW], w: [M, C/G, KH, KW], attributes as Conv's.
template <typename A>
ConvGeom conv_geom(const Tensor& x, const Tensor& y, const Tensor& w, const A& a) {
  return {size_t(x.dims[0]), size_t(x.dims[1]), size_t(x.dims[2]), size_t(x.dims[3]), size_t(y.dims[1]),
          size_t(y.dims[2]), size_t(y.dims[3]), size_t(w.dims[2]), size_t(w.dims[3]), size_t(a.group),
          size_t(a.strides[0]), size_t(a.strides[1]), size_t(a.pads[0]), size_t(a.pads[1]), size_t(a.dilations[0]),
          size_t(a.dilations[1])};
}

bool check_conv_geom(const Tensor& x, const Tensor& y, const Tensor& w, int64_t group, Message* err) {
  SPX_REQUIRE(x.ndim == 4 && y.ndim == 4 && w.ndim == 4, "supports 2-D convolution on NCHW only");
  SPX_REQUIRE(x.dims[1] % group == 0 && w.dims[0] % group == 0 && w.dims[1] * group == x.dims[1] &&
                  y.dims[1] == w.dims[0] && y.dims[0] == x.dims[0],
              "weight %s does not fit input %s and output %s with group %lld", shape_str(w).text, shape_str(x).text,
              shape_str(y).text, static_cast<long long>(group));
  return true;
}

// First and one-past-last output index o with o * stride + offset in [0, extent): no per-element bounds test.
void tap_range(size_t outputs, size_t stride, ptrdiff_t offset, size_t extent, size_t* lo, size_t* hi) {
  const ptrdiff_t s = ptrdiff_t(stride);
  const ptrdiff_t first = offset >= 0 ? 0 : (-offset + s - 1) / s;
  const ptrdiff_t last = ptrdiff_t(extent) - 1 - offset < 0 ? -1 : (ptrdiff_t(extent) - 1 - offset) / s;
  *lo = size_t(std::min<ptrdiff_t>(first, ptrdiff_t(outputs)));
  *hi = size_t(std::max<ptrdiff_t>(ptrdiff_t(*lo), std::min<ptrdiff_t>(last + 1, ptrdiff_t(outputs))));
}

// Calls f(x_index, y_index, w_index) for every (input tap, output, weight) triple of a depthwise convolution.
template <typename F>
void for_each_depthwise_tap(const ConvGeom& s, F&& f) {
  for (size_t n = 0; n < s.N; ++n)
    for (size_t c = 0; c < s.C; ++c)
      for (size_t kh = 0; kh < s.KH; ++kh)
        for (size_t kw = 0; kw < s.KW; ++kw) {
          const size_t wi = (c * s.KH + kh) * s.KW + kw;
          const ptrdiff_t col0 = ptrdiff_t(kw * s.DW) - ptrdiff_t(s.PL);
          size_t lo, hi;
          tap_range(s.OW, s.SW, col0, s.W, &lo, &hi);
          for (size_t oh = 0; oh < s.OH; ++oh) {
            const ptrdiff_t ih = ptrdiff_t(oh * s.SH + kh * s.DH) - ptrdiff_t(s.PT);
            if (ih < 0 || ih >= ptrdiff_t(s.H)) continue;
            const size_t xrow = ((n * s.C + c) * s.H + size_t(ih)) * s.W;
            const size_t yrow = ((n * s.C + c) * s.OH + oh) * s.OW;
            for (size_t ow = lo; ow < hi; ++ow) f(xrow + size_t(ptrdiff_t(ow * s.SW) + col0), yrow + ow, wi);
          }
        }
}

bool is_depthwise(const ConvGeom& s) { return s.G == s.C && s.G == s.M; }
bool is_pointwise(const ConvGeom& s) {
  return s.KH == 1 && s.KW == 1 && s.SH == 1 && s.SW == 1 && s.PT == 0 && s.PL == 0 && s.H == s.OH && s.W == s.OW;
}

Conv2dShape image_shape(const ConvGeom& s) {
  Conv2dShape c;
  c.C = s.C; c.H = s.H; c.W = s.W; c.M = s.M; c.OH = s.OH; c.OW = s.OW; c.KH = s.KH; c.KW = s.KW;
  c.SH = s.SH; c.SW = s.SW; c.PT = s.PT; c.PL = s.PL; c.DH = s.DH; c.DW = s.DW; c.G = s.G;
  return c;
}

void gemm(size_t M, size_t N, size_t K, const float* a, const float* b, float* c) {
  f32_gemm({M, N, K, a, K, b, N, c, N, nullptr, BiasMode::kNone, ActParams{Activation::kNone, 0.0f, 0.0f}});
}

// Scratch floats of the GEMM algorithms (the compiler plans the same: lower/rules_train.conv_grad_scratch_bytes).
size_t grad_input_scratch(const ConvGeom& s) {
  if (is_depthwise(s)) return 0;
  const size_t rows = s.C / s.G * s.KH * s.KW;
  return rows * s.M + (is_pointwise(s) ? 0 : rows * s.OH * s.OW);
}

size_t grad_weight_scratch(const ConvGeom& s) {
  if (is_depthwise(s)) return 0;
  const size_t rows = s.C / s.G * s.KH * s.KW;
  return rows * s.OH * s.OW * (is_pointwise(s) ? 1 : 2) + rows * s.M;
}

bool check_scratch(const Op& op, size_t floats, Message* err) {
  SPX_REQUIRE(op.scratch_bytes >= floats * sizeof(float), "needs %zu scratch bytes, the artifact plans %llu",
              floats * sizeof(float), static_cast<unsigned long long>(op.scratch_bytes));
  return true;
}

// The updated entries of param: grad's element (o, k, i) updates param's (o, indices[k] or k, i) along axis.
struct Slice {
  size_t outer = 1, channels = 1, count = 1, inner = 1;
  const int64_t* indices = nullptr;

  // Calls run(grad offset, param offset, length) for each contiguous run of updated entries (one run if whole).
  template <class Run>
  void for_each_run(Run run) const {
    if (!indices) return run(size_t(0), size_t(0), outer * count * inner);
    for (size_t o = 0, j = 0; o < outer; ++o)
      for (size_t k = 0; k < count; ++k, j += inner) run(j, (o * channels + size_t(indices[k])) * inner, inner);
  }
};

bool check_update(const Op& op, int64_t axis, size_t state_per_entry, Message* err) {
  const Tensor& grad = *op.in[0];
  const Tensor& param = *op.out[0];
  const Tensor* indices = optional_input(op, 1);
  SPX_REQUIRE(grad.ndim == param.ndim && axis < int64_t(param.ndim), "gradient %s does not fit parameter %s",
              shape_str(grad).text, shape_str(param).text);
  for (uint32_t d = 0; d < param.ndim; ++d) {
    const int64_t want = indices && int64_t(d) == axis ? int64_t(indices->numel) : param.dims[d];
    SPX_REQUIRE(grad.dims[d] == want, "gradient %s does not fit parameter %s", shape_str(grad).text,
                shape_str(param).text);
  }
  SPX_REQUIRE(op.out[1]->numel == 1 + state_per_entry * grad.numel, "state has %zu values, expected %zu",
              op.out[1]->numel, 1 + state_per_entry * grad.numel);
  return true;
}

bool make_slice(const Op& op, int64_t axis, Slice* s, Message* err) {
  const Tensor& param = *op.out[0];
  const Tensor* indices = optional_input(op, 1);
  s->outer = product(param.dims, 0, size_t(axis));
  s->channels = size_t(param.dims[axis]);
  s->inner = product(param.dims, size_t(axis) + 1, param.ndim);
  s->count = indices ? indices->numel : s->channels;
  s->indices = indices ? indices->as<int64_t>() : nullptr;
  for (size_t k = 0; indices && k < s->count; ++k)
    SPX_REQUIRE(s->indices[k] >= 0 && size_t(s->indices[k]) < s->channels, "index %lld is outside [0, %zu)",
                static_cast<long long>(s->indices[k]), s->channels);
  return true;
}

}  // namespace

bool check_loss(const Op& op, Message* err) {
  const Tensor& pred = *op.in[0];
  const Tensor& target = *op.in[1];
  SPX_REQUIRE(op.out[0]->numel == 1 && same_shape(*op.out[1], pred), "outputs must be the loss [1] and pred's shape");
  if (LossKind(loss_attrs(op).kind) == LossKind::kCrossEntropy) {
    SPX_REQUIRE(pred.ndim == 2 && target.ndim == 1 && target.dims[0] == pred.dims[0] && target.dtype == SPARSEC_INT64,
                "cross entropy takes logits [N, C] and int64 labels [N], got %s and %s", shape_str(pred).text,
                shape_str(target).text);
  } else {
    SPX_REQUIRE(same_shape(pred, target) && target.dtype == SPARSEC_FLOAT32,
                "the float32 target must have pred's shape %s, got %s", shape_str(pred).text, shape_str(target).text);
  }
  return true;
}

bool run_loss(const Op& op, uint8_t*, Message* err) {
  const Tensor& pred = *op.in[0];
  const float* p = pred.f32();
  float* d = op.out[1]->f32();
  double total = 0.0;
  const LossKind kind = loss_attrs(op).kind;
  if (kind == LossKind::kCrossEntropy) {
    const size_t n = size_t(pred.dims[0]), c = size_t(pred.dims[1]);
    const int64_t* labels = op.in[1]->as<int64_t>();
    for (size_t r = 0; r < n; ++r, p += c, d += c) {
      SPX_REQUIRE(labels[r] >= 0 && labels[r] < int64_t(c), "label %lld of row %zu is outside [0, %zu)",
                  static_cast<long long>(labels[r]), r, c);
      const float top = *std::max_element(p, p + c);
      double sum = 0.0;  // float exp/log: the runtime links them anyway (double ones would grow wasm32)
      for (size_t j = 0; j < c; ++j) sum += double(std::exp(p[j] - top));
      total += double(std::log(float(sum))) + double(top) - double(p[labels[r]]);
      for (size_t j = 0; j < c; ++j) d[j] = float(double(std::exp(p[j] - top)) / sum) / float(n);
      d[labels[r]] -= 1.0f / float(n);
    }
    op.out[0]->f32()[0] = float(total / double(n));
    return true;
  }
  const float* t = op.in[1]->f32();
  const size_t n = pred.numel;
  const float scale = 1.0f / float(n);
  if (kind == LossKind::kMse) {  // the common regression loss: 4 partial sums, not one chain of double adds
    double sums[4] = {};
    auto at = [&](size_t i, double& sum) {
      const float diff = p[i] - t[i];
      sum += double(diff) * diff;
      d[i] = 2.0f * diff * scale;
    };
    size_t i = 0;
    for (; i + 4 <= n; i += 4)
      for (size_t l = 0; l < 4; ++l) at(i + l, sums[l]);
    for (; i < n; ++i) at(i, sums[0]);
    op.out[0]->f32()[0] = float((sums[0] + sums[1] + sums[2] + sums[3]) / double(n));
    return true;
  }
  for (size_t i = 0; i < n; ++i) {
    const float x = p[i], diff = x - t[i];
    switch (kind) {
      case LossKind::kL1: total += std::fabs(double(diff)); d[i] = float((diff > 0) - (diff < 0)) * scale; break;
      default:  // BCE with logits, in torch's stable form
        total += double(std::max(x, 0.0f) - x * t[i] + std::log1p(std::exp(-std::fabs(x))));
        d[i] = (act_math::sigmoid(x) - t[i]) * scale;
    }
  }
  op.out[0]->f32()[0] = float(total / double(n));
  return true;
}

bool check_activation_grad(const Op& op, Message* err) {
  SPX_REQUIRE(same_shape(*op.in[0], *op.in[1]) && same_shape(*op.in[0], *op.out[0]), "dy, x and dx must share a shape");
  const Activation kind = activation_grad_attrs(op).activation;
  SPX_REQUIRE(activation_differentiable(kind), "activation kind %d has no derivative in this runtime", int(kind));
  return true;
}

bool run_activation_grad(const Op& op, uint8_t*, Message*) {
  const ActParams act = act_params(activation_grad_attrs(op));
  const float* dy = op.in[0]->f32();
  float* dx = op.out[0]->f32();
  if (op.in[1]->dtype == SPARSEC_UINT8) {
    const uint8_t* mask = op.in[1]->as<uint8_t>();
    for (size_t i = 0; i < op.out[0]->numel; ++i) dx[i] = mask[i] ? dy[i] : 0.0f;
    return true;
  }
  f32_activation_grad(act, dy, op.in[1]->f32(), dx, op.out[0]->numel);
  return true;
}

bool check_activation_mask(const Op& op, Message* err) {
  const Activation kind = activation_mask_attrs(op).activation;
  SPX_REQUIRE(kind == Activation::kRelu || kind == Activation::kClip, "masks RELU and CLIP only");
  return same_numel(op, err);
}

bool run_activation_mask(const Op& op, uint8_t*, Message*) {
  const ActParams act = act_params(activation_mask_attrs(op));
  const float* x = op.in[0]->f32();
  uint8_t* mask = op.out[0]->as<uint8_t>();
  // RELU: x > 0; CLIP: a < x < b (check_activation_mask). Inline, not a call per value.
  const bool relu = act.kind == Activation::kRelu;
  const float low = relu ? 0.0f : act.a;
  for (size_t i = 0; i < op.in[0]->numel; ++i) mask[i] = x[i] > low && (relu || x[i] < act.b);
  return true;
}

bool check_conv_grad_input(const Op& op, Message* err) {
  const ConvGradInputAttrs a = conv_grad_input_attrs(op);
  return check_conv_geom(*op.out[0], *op.in[0], *op.in[1], a.group, err) &&
         check_scratch(op, grad_input_scratch(conv_geom(*op.out[0], *op.in[0], *op.in[1], a)), err);
}

// Per image and group: dcols[C/G*KH*KW, OH*OW] = W^T dY, added back to the input positions (col2im).
bool run_conv_grad_input(const Op& op, uint8_t* scratch, Message*) {
  const ConvGeom s = conv_geom(*op.out[0], *op.in[0], *op.in[1], conv_grad_input_attrs(op));
  const float* dy = op.in[0]->f32();
  const float* w = op.in[1]->f32();
  float* dx = op.out[0]->f32();
  std::fill(dx, dx + op.out[0]->numel, 0.0f);
  if (is_depthwise(s)) {
    for_each_depthwise_tap(s, [&](size_t xi, size_t yi, size_t wi) { dx[xi] += w[wi] * dy[yi]; });
    return true;
  }
  const size_t cg = s.C / s.G, mg = s.M / s.G, rows = cg * s.KH * s.KW, plane = s.OH * s.OW;
  float* wt = reinterpret_cast<float*>(scratch);  // per group: W_g^T [rows, mg]
  float* cols = wt + rows * s.M;
  transpose_matrices_f32(w, wt, s.G, mg, rows);  // per group: W_g^T
  const Conv2dShape shape = image_shape(s);
  for (size_t n = 0; n < s.N; ++n)
    for (size_t g = 0; g < s.G; ++g) {
      const float* dy_g = dy + (n * s.M + g * mg) * plane;
      float* dx_g = dx + (n * s.C + g * cg) * s.H * s.W;
      if (is_pointwise(s)) {
        gemm(rows, plane, mg, wt + g * rows * mg, dy_g, dx_g);
        continue;
      }
      gemm(rows, plane, mg, wt + g * rows * mg, dy_g, cols);
      for (size_t r = 0; r < rows; ++r) {  // col2im: the transpose of f32_im2col
        const size_t c = r / (s.KH * s.KW), kh = r / s.KW % s.KH, kw = r % s.KW;
        const ptrdiff_t col0 = ptrdiff_t(kw * s.DW) - ptrdiff_t(s.PL);
        size_t lo, hi;
        tap_range(s.OW, s.SW, col0, s.W, &lo, &hi);
        for (size_t oh = 0; oh < s.OH; ++oh) {
          const ptrdiff_t ih = ptrdiff_t(oh * shape.SH + kh * s.DH) - ptrdiff_t(s.PT);
          if (ih < 0 || ih >= ptrdiff_t(s.H)) continue;
          float* row = dx_g + (c * s.H + size_t(ih)) * s.W;
          const float* src = cols + r * plane + oh * s.OW;
          for (size_t ow = lo; ow < hi; ++ow) row[ptrdiff_t(ow * s.SW) + col0] += src[ow];
        }
      }
    }
  return true;
}

bool check_conv_grad_weight(const Op& op, Message* err) {
  const ConvGradWeightAttrs a = conv_grad_weight_attrs(op);
  return check_conv_geom(*op.in[0], *op.in[1], *op.out[0], a.group, err) &&
         check_scratch(op, grad_weight_scratch(conv_geom(*op.in[0], *op.in[1], *op.out[0], a)), err);
}

// Per image and group: dW_g += dY_g [mg, OH*OW] * cols^T [OH*OW, rows] (f32_im2col, transposed).
bool run_conv_grad_weight(const Op& op, uint8_t* scratch, Message*) {
  const ConvGeom s = conv_geom(*op.in[0], *op.in[1], *op.out[0], conv_grad_weight_attrs(op));
  const float* x = op.in[0]->f32();
  const float* dy = op.in[1]->f32();
  float* dw = op.out[0]->f32();
  std::fill(dw, dw + op.out[0]->numel, 0.0f);
  if (is_depthwise(s)) {
    for_each_depthwise_tap(s, [&](size_t xi, size_t yi, size_t wi) { dw[wi] += x[xi] * dy[yi]; });
    return true;
  }
  const size_t cg = s.C / s.G, mg = s.M / s.G, rows = cg * s.KH * s.KW, plane = s.OH * s.OW;
  float* rows_t = reinterpret_cast<float*>(scratch);  // [plane, rows]
  float* cols = rows_t + rows * plane;                // [rows, plane] (not for pointwise: x is its own cols)
  float* partial = cols + (is_pointwise(s) ? 0 : rows * plane);
  const Conv2dShape shape = image_shape(s);
  for (size_t n = 0; n < s.N; ++n)
    for (size_t g = 0; g < s.G; ++g) {
      const float* x_n = x + n * s.C * s.H * s.W;
      const float* source = x_n + g * cg * s.H * s.W;
      if (!is_pointwise(s)) {
        f32_im2col(shape, x_n, g * cg, cg, 0, s.OH, cols);
        source = cols;
      }
      transpose_matrices_f32(source, rows_t, 1, rows, plane);
      gemm(mg, rows, plane, dy + (n * s.M + g * mg) * plane, rows_t, partial);
      float* dw_g = dw + g * mg * rows;
      for (size_t i = 0; i < mg * rows; ++i) dw_g[i] += partial[i];
    }
  return true;
}

bool check_pool_grad(const Op& op, Message* err) {
  const Tensor& x = *op.in[0];
  const Tensor& dy = *op.in[1];
  SPX_REQUIRE(x.ndim == 4 && dy.ndim == 4 && dy.dims[0] == x.dims[0] && dy.dims[1] == x.dims[1] &&
                  same_shape(x, *op.out[0]),
              "x %s, dy %s and dx must be NCHW of one batch and channel count", shape_str(x).text, shape_str(dy).text);
  return true;
}

bool run_pool_grad(const Op& op, uint8_t*, Message*) {
  const Tensor& x = *op.in[0];
  const Tensor& dy = *op.in[1];
  const PoolGradAttrs a = pool_grad_attrs(op);
  const size_t H = size_t(x.dims[2]), W = size_t(x.dims[3]), OH = size_t(dy.dims[2]), OW = size_t(dy.dims[3]);
  const size_t KH = size_t(a.kernel[0]), KW = size_t(a.kernel[1]), DH = size_t(a.dilations[0]),
               DW = size_t(a.dilations[1]);
  const bool is_max = a.kind == PoolKind::kMax;
  float* dx = op.out[0]->f32();
  std::fill(dx, dx + x.numel, 0.0f);
  for (size_t plane = 0; plane < size_t(x.dims[0] * x.dims[1]); ++plane) {
    const float* xp = x.f32() + plane * H * W;
    const float* g = dy.f32() + plane * OH * OW;
    float* d = dx + plane * H * W;
    for (size_t oh = 0; oh < OH; ++oh)
      for (size_t ow = 0; ow < OW; ++ow) {
        const ptrdiff_t h0 = pool2d::window_start(oh, size_t(a.strides[0]), size_t(a.pads[0]));
        const ptrdiff_t w0 = pool2d::window_start(ow, size_t(a.strides[1]), size_t(a.pads[1]));
        const size_t count = pool2d::divisor_taps(h0, KH, DH, H, size_t(a.pads[0]), size_t(a.pads[2]), a.count_include_pad) *
                             pool2d::divisor_taps(w0, KW, DW, W, size_t(a.pads[1]), size_t(a.pads[3]), a.count_include_pad);
        ptrdiff_t best = -1;
        for (size_t kh = 0; kh < KH; ++kh) {
          const ptrdiff_t h = h0 + ptrdiff_t(kh * DH);
          if (h < 0 || h >= ptrdiff_t(H)) continue;
          for (size_t kw = 0; kw < KW; ++kw) {
            const ptrdiff_t w = w0 + ptrdiff_t(kw * DW);
            if (w < 0 || w >= ptrdiff_t(W)) continue;
            const ptrdiff_t i = h * ptrdiff_t(W) + w;
            if (!is_max) d[i] += g[oh * OW + ow] / float(count);
            else if (best < 0 || xp[i] > xp[best] || std::isnan(xp[i])) best = i;  // torch: first maximum
          }
        }
        if (is_max && best >= 0) d[best] += g[oh * OW + ow];
      }
  }
  return true;
}

bool check_layer_norm_grad(const Op& op, Message* err) {
  const Tensor& x = *op.in[0];
  const size_t axis = size_t(layer_norm_grad_attrs(op).axis);
  SPX_REQUIRE(axis < x.ndim && op.in[1]->numel == product(x.dims, axis, x.ndim), "scale must cover axes [%zu, %u)",
              axis, x.ndim);
  SPX_REQUIRE(same_shape(x, *op.in[2]) && same_shape(x, *op.out[0]), "x, dy and dx must share a shape");
  return true;
}

bool run_layer_norm_grad(const Op& op, uint8_t*, Message*) {
  const Tensor& x = *op.in[0];
  const LayerNormGradAttrs a = layer_norm_grad_attrs(op);
  const size_t d = product(x.dims, size_t(a.axis), x.ndim), rows = x.numel / std::max<size_t>(d, 1);
  f32_layer_norm_grad({x.f32(), op.in[1]->f32(), nullptr, a.epsilon, nullptr, rows, d}, op.in[2]->f32(),
                      op.out[0]->f32());
  return true;
}

bool check_gather_grad(const Op& op, Message* err) {
  const Tensor& out = *op.out[0];
  SPX_REQUIRE(out.ndim >= 1 && op.in[1]->numel == op.in[0]->numel * (out.numel / size_t(out.dims[0])),
              "dy %s does not fit indices %s and table %s", shape_str(*op.in[1]).text, shape_str(*op.in[0]).text,
              shape_str(out).text);
  return true;
}

bool run_gather_grad(const Op& op, uint8_t*, Message* err) {
  const Tensor& idx = *op.in[0];
  Tensor& out = *op.out[0];
  const int64_t rows = out.dims[0];
  const size_t row = out.numel / size_t(rows);
  std::fill(out.f32(), out.f32() + out.numel, 0.0f);
  for (size_t k = 0; k < idx.numel; ++k) {
    int64_t i = idx.dtype == SPARSEC_INT64 ? idx.as<int64_t>()[k] : idx.as<int32_t>()[k];
    if (i < 0) i += rows;
    SPX_REQUIRE(i >= 0 && i < rows, "index %lld is outside [0, %lld)", static_cast<long long>(i), static_cast<long long>(rows));
    const float* g = op.in[1]->f32() + k * row;
    float* o = out.f32() + size_t(i) * row;
    for (size_t j = 0; j < row; ++j) o[j] += g[j];
  }
  return true;
}

bool check_sgd_update(const Op& op, Message* err) {
  const SgdUpdateAttrs a = sgd_update_attrs(op);
  return check_update(op, a.axis, a.momentum != 0.0f ? 1 : 0, err);
}

namespace {

enum class Momentum { kNone, kFirst, kLater };

// One contiguous run of torch.optim.SGD; the choices are template arguments so that the loop vectorises.
template <bool kDecay, Momentum kMomentum>
void sgd_run(const SgdUpdateAttrs& a, const float* __restrict grad, float* __restrict w, float* __restrict buf,
             size_t n) {
  for (size_t i = 0; i < n; ++i) {
    float g = kDecay ? grad[i] + a.weight_decay * w[i] : grad[i];
    if (kMomentum == Momentum::kFirst) buf[i] = g;
    if (kMomentum == Momentum::kLater) g = buf[i] = a.momentum * buf[i] + g;
    w[i] = w[i] + -a.lr * g;
  }
}

template <bool kDecay>
void sgd_run(const SgdUpdateAttrs& a, Momentum momentum, const float* grad, float* w, float* buf, size_t n) {
  if (momentum == Momentum::kNone) sgd_run<kDecay, Momentum::kNone>(a, grad, w, buf, n);
  else if (momentum == Momentum::kFirst) sgd_run<kDecay, Momentum::kFirst>(a, grad, w, buf, n);
  else sgd_run<kDecay, Momentum::kLater>(a, grad, w, buf, n);
}

}  // namespace

// torch.optim.SGD (dampening 0, not nesterov): g += wd * p; buf = g on the first step, else momentum * buf + g.
bool run_sgd_update(const Op& op, uint8_t*, Message* err) {
  const SgdUpdateAttrs a = sgd_update_attrs(op);
  Slice s;
  if (!make_slice(op, a.axis, &s, err)) return false;
  const float* grad = op.in[0]->f32();
  float* p = op.out[0]->f32();
  float* state = op.out[1]->f32();
  const Momentum momentum = a.momentum == 0.0f ? Momentum::kNone : state[0] == 0.0f ? Momentum::kFirst : Momentum::kLater;
  float* const buf = state + 1;
  s.for_each_run([&](size_t j0, size_t p0, size_t length) {
    if (a.weight_decay != 0.0f) sgd_run<true>(a, momentum, grad + j0, p + p0, buf + j0, length);
    else sgd_run<false>(a, momentum, grad + j0, p + p0, buf + j0, length);
  });
  state[0] += 1.0f;
  return true;
}

bool check_adamw_update(const Op& op, Message* err) { return check_update(op, adamw_update_attrs(op).axis, 2, err); }

// b^n by squaring: the step count is an integer (no libm pow in the runtime).
static double integer_power(double b, uint64_t n) {
  double result = 1.0;
  for (; n; n >>= 1, b *= b)
    if (n & 1) result *= b;
  return result;
}

// torch.optim.AdamW (amsgrad off): decoupled decay, bias-corrected moments.
bool run_adamw_update(const Op& op, uint8_t*, Message* err) {
  const AdamwUpdateAttrs a = adamw_update_attrs(op);
  Slice s;
  if (!make_slice(op, a.axis, &s, err)) return false;
  const size_t n = op.in[0]->numel;
  const float* grad = op.in[0]->f32();
  float* p = op.out[0]->f32();
  float* state = op.out[1]->f32();
  float* m = state + 1;
  float* v = m + n;
  const double step = double(state[0]) + 1.0, lr = a.lr;
  const float decay = float(1.0 - lr * double(a.weight_decay));
  const float step_size = float(lr / (1.0 - integer_power(a.beta1, uint64_t(step))));
  const float correction2_sqrt = float(std::sqrt(1.0 - integer_power(a.beta2, uint64_t(step))));
  s.for_each_run([&](size_t j0, size_t p0, size_t length) {
    for (size_t i = 0; i < length; ++i) {
      const size_t j = j0 + i;
      float& w = p[p0 + i];
      const float g = grad[j];
      w *= decay;
      m[j] += (1.0f - a.beta1) * (g - m[j]);
      v[j] = v[j] * a.beta2 + (1.0f - a.beta2) * g * g;
      const float denom = std::sqrt(v[j]) / correction2_sqrt + a.eps;
      w += -step_size * (m[j] / denom);
    }
  });
  state[0] = float(step);
  return true;
}

}  // namespace sparsec
