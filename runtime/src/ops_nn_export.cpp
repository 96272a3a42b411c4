// Ops that exporters emit for detection/OCR heads, audio models and classic CNNs: Resample (Resize/Upsample),
// N-D pooling, N-D (transposed) convolution, RNN/GRU/LSTM, GridSample, MaxUnpool.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "op_util.h"

namespace sparsec {
namespace {

// [N, C, s...] with up to 3 spatial dims, viewed as [N, C, D, H, W] (missing leading spatial dims are 1).
struct Volume {
  size_t n = 1, c = 1;
  size_t d[3] = {1, 1, 1};
  size_t size() const { return d[0] * d[1] * d[2]; }
};

Volume volume_of(const Tensor& t) {
  Volume v;
  v.n = size_t(t.dims[0]);
  v.c = size_t(t.dims[1]);
  for (uint32_t i = 2; i < t.ndim; ++i) v.d[3 - (t.ndim - i)] = size_t(t.dims[i]);
  return v;
}

bool spatial_rank_ok(const Tensor& t) { return t.ndim >= 3 && t.ndim <= 5; }

bool enough_scratch(const Op& op, uint64_t floats, Message* err) {
  SPX_REQUIRE(op.scratch_bytes >= floats * sizeof(float), "needs %llu scratch bytes, the artifact plans %llu",
              static_cast<unsigned long long>(floats * sizeof(float)),
              static_cast<unsigned long long>(op.scratch_bytes));
  return true;
}

}  // namespace

// ---- Resample ---------------------------------------------------------------------------------------

namespace {

// The element count of the largest intermediate (all resampled axes but the last applied).
size_t resample_intermediate(const Op& op) {
  const Tensor& x = *op.in[0];
  const Tensor& y = *op.out[0];
  const int64_t* taps = resample_attrs(op).taps;
  int64_t dims[kMaxDims];
  std::memcpy(dims, x.dims, sizeof(dims));
  size_t largest = 0;
  for (uint32_t a = 0; a < x.ndim; ++a) {
    if (!taps[a]) continue;
    dims[a] = y.dims[a];
    largest = std::max(largest, product(dims, 0, x.ndim));
  }
  return largest;
}

}  // namespace

bool check_resample(const Op& op, Message* err) {
  const Tensor& x = *op.in[0];
  const Tensor& y = *op.out[0];
  const int64_t* taps = resample_attrs(op).taps;
  SPX_REQUIRE(y.ndim == x.ndim, "rank differs");
  size_t entries = 0;
  for (uint32_t a = 0; a < x.ndim; ++a) {
    SPX_REQUIRE(taps[a] || y.dims[a] == x.dims[a], "axis %u changes size", a);
    entries += size_t(taps[a]) * size_t(y.dims[a]);
  }
  SPX_REQUIRE(op.in[1]->numel == entries && op.in[2]->numel == entries, "tables hold %zu entries, expected %zu",
              op.in[1]->numel, entries);
  return enough_scratch(op, 2 * uint64_t(resample_intermediate(op)), err);
}

bool run_resample(const Op& op, uint8_t* scratch, Message* err) {
  const Tensor& x = *op.in[0];
  const Tensor& y = *op.out[0];
  const ResampleAttrs attrs = resample_attrs(op);
  const int32_t* index = op.in[1]->as<int32_t>();
  const float* weight = op.in[2]->f32();
  float* buffers[2] = {reinterpret_cast<float*>(scratch),
                       reinterpret_cast<float*>(scratch) + resample_intermediate(op)};
  int last_axis = -1;
  for (uint32_t a = 0; a < x.ndim; ++a)
    if (attrs.taps[a]) last_axis = int(a);
  if (last_axis < 0) {
    std::memcpy(y.data, x.data, x.nbytes);
    return true;
  }
  int64_t dims[kMaxDims];
  std::memcpy(dims, x.dims, sizeof(dims));
  const float* src = x.f32();
  int step = 0;
  for (uint32_t a = 0; a < x.ndim; ++a) {
    const size_t taps = size_t(attrs.taps[a]);
    if (!taps) continue;
    const size_t outer = product(dims, 0, a), in_len = size_t(dims[a]), out_len = size_t(y.dims[a]);
    const size_t inner = product(dims, a + 1, x.ndim);
    for (size_t i = 0; i < out_len * taps; ++i)
      if (!(index[i] >= 0 && size_t(index[i]) < in_len) && !(index[i] == -1 && i % taps == 0)) {
        err->format("resample index %d outside [0, %zu) on axis %u", index[i], in_len, a);
        return false;
      }
    float* dst = int(a) == last_axis ? y.f32() : buffers[step++ % 2];
    for (size_t o = 0; o < outer; ++o) {
      for (size_t j = 0; j < out_len; ++j) {
        float* out = dst + (o * out_len + j) * inner;
        const int32_t* id = index + j * taps;
        const float* w = weight + j * taps;
        if (id[0] < 0) {
          std::fill(out, out + inner, attrs.extrapolation_value);
          continue;
        }
        std::fill(out, out + inner, 0.0f);
        for (size_t k = 0; k < taps; ++k) {
          const float* in = src + (o * in_len + size_t(id[k])) * inner;
          const float wk = w[k];
          for (size_t i = 0; i < inner; ++i) out[i] += wk * in[i];
        }
      }
    }
    index += out_len * taps;
    weight += out_len * taps;
    dims[a] = int64_t(out_len);
    src = dst;
  }
  return true;
}

// ---- PoolNd -----------------------------------------------------------------------------------------

bool check_pool_nd(const Op& op, Message* err) {
  const Tensor& x = *op.in[0];
  const Tensor& y = *op.out[0];
  SPX_REQUIRE(spatial_rank_ok(x) && y.ndim == x.ndim && y.dims[0] == x.dims[0] && y.dims[1] == x.dims[1],
              "output %s does not match input %s", shape_str(y).text, shape_str(x).text);
  const PoolNdAttrs a = pool_nd_attrs(op);
  const Volume vx = volume_of(x), vy = volume_of(y);
  for (int i = 0; i < 3; ++i) {
    // ceil mode may add a window that starts in the end padding; none starts past it
    const int64_t last_start = int64_t(vy.d[i] - 1) * a.strides[i] - a.pads[i];
    SPX_REQUIRE(vy.d[i] >= 1 && last_start < int64_t(vx.d[i]) + a.pads[3 + i],
                "output %s does not match input %s", shape_str(y).text, shape_str(x).text);
  }
  if (op.out.size() > 1 && op.out[1])
    SPX_REQUIRE(a.kind == WindowKind::kMax && op.out[1]->numel == y.numel, "indices need MAX and y's shape");
  return true;
}

bool run_pool_nd(const Op& op, uint8_t*, Message*) {
  const Tensor& x = *op.in[0];
  const Tensor& y = *op.out[0];
  const PoolNdAttrs a = pool_nd_attrs(op);
  int64_t* indices = op.out.size() > 1 && op.out[1] ? op.out[1]->as<int64_t>() : nullptr;
  const Volume vx = volume_of(x), vy = volume_of(y);
  const float p = float(a.p);
  int64_t lo[3], hi[3];  // the padded extent windows may cover
  for (int i = 0; i < 3; ++i) lo[i] = -a.pads[i], hi[i] = int64_t(vx.d[i]) + a.pads[3 + i];
  const size_t planes = vx.n * vx.c, in_plane = vx.size(), out_plane = vy.size();
  for (size_t pl = 0; pl < planes; ++pl) {
    const float* in = x.f32() + pl * in_plane;
    size_t o = pl * out_plane;
    for (size_t od = 0; od < vy.d[0]; ++od)
      for (size_t oh = 0; oh < vy.d[1]; ++oh)
        for (size_t ow = 0; ow < vy.d[2]; ++ow, ++o) {
          const size_t out_pos[3] = {od, oh, ow};
          int64_t start[3];
          for (int i = 0; i < 3; ++i) start[i] = int64_t(out_pos[i]) * a.strides[i] - a.pads[i];
          float acc = a.kind == WindowKind::kMax ? -std::numeric_limits<float>::infinity() : 0.0f;
          int64_t best = -1;
          size_t valid = 0, padded = 0;
          for (int64_t kd = 0; kd < a.kernel[0]; ++kd) {
            const int64_t d = start[0] + kd * a.dilations[0];
            for (int64_t kh = 0; kh < a.kernel[1]; ++kh) {
              const int64_t h = start[1] + kh * a.dilations[1];
              for (int64_t kw = 0; kw < a.kernel[2]; ++kw) {
                const int64_t w = start[2] + kw * a.dilations[2];
                if (d < lo[0] || d >= hi[0] || h < lo[1] || h >= hi[1] || w < lo[2] || w >= hi[2]) continue;
                ++padded;
                if (d < 0 || d >= int64_t(vx.d[0]) || h < 0 || h >= int64_t(vx.d[1]) || w < 0 ||
                    w >= int64_t(vx.d[2]))
                  continue;
                ++valid;
                const int64_t at = (d * int64_t(vx.d[1]) + h) * int64_t(vx.d[2]) + w;
                const float v = in[at];
                switch (a.kind) {
                  case WindowKind::kMax:
                    if (v > acc || best < 0)  // 2-D column-major indices: w * H + h
                      acc = v, best = a.column_major ? w * int64_t(vx.d[1]) + h : at;
                    break;
                  case WindowKind::kAverage: acc += v; break;
                  case WindowKind::kLp: acc += std::pow(std::fabs(v), p); break;
                }
              }
            }
          }
          if (a.kind == WindowKind::kAverage) acc /= float(a.count_include_pad ? padded : std::max<size_t>(valid, 1));
          if (a.kind == WindowKind::kLp) acc = std::pow(acc, 1.0f / p);
          y.f32()[o] = acc;
          if (indices) indices[o] = best < 0 ? -1 : int64_t(pl * in_plane) + best;
        }
  }
  return true;
}

// ---- ConvNd -----------------------------------------------------------------------------------------

namespace {

struct ConvGeometry {
  Volume in, out;  // of the convolution's input and output (transposed: of its y and x)
  size_t k[3] = {1, 1, 1};
  size_t kvol = 1;
  size_t group_in = 1, group_out = 1;  // channels per group of x and y
};

ConvGeometry conv_geometry(const Op& op) {
  const ConvNdAttrs a = conv_nd_attrs(op);
  ConvGeometry g;
  g.in = volume_of(*op.in[0]);
  g.out = volume_of(*op.out[0]);
  for (int i = 0; i < 3; ++i) g.k[i] = size_t(a.kernel[i]), g.kvol *= g.k[i];
  g.group_in = g.in.c / size_t(a.group);
  g.group_out = g.out.c / size_t(a.group);
  return g;
}

// Column rows (channel, kernel offset) x a band [p0, p1) of the "image" positions: conv gathers x into cols
// (positions are y's), transposed conv scatters cols into y (positions are x's). `image` is the other side.
void columns(bool scatter, const ConvNdAttrs& a, const ConvGeometry& g, size_t channels, const Volume& image,
             const Volume& cols_vol, size_t p0, size_t p1, float* image_data, float* cols) {
  const size_t band = p1 - p0, image_plane = image.size();
  for (size_t c = 0; c < channels; ++c)
    for (size_t kd = 0; kd < g.k[0]; ++kd)
      for (size_t kh = 0; kh < g.k[1]; ++kh)
        for (size_t kw = 0; kw < g.k[2]; ++kw) {
          float* row = cols + ((c * g.k[0] + kd) * g.k[1] * g.k[2] + kh * g.k[2] + kw) * band;
          float* plane = image_data + c * image_plane;
          const size_t koff[3] = {kd, kh, kw};
          for (size_t p = p0; p < p1; ++p) {
            const size_t pos[3] = {p / (cols_vol.d[1] * cols_vol.d[2]), p / cols_vol.d[2] % cols_vol.d[1],
                                   p % cols_vol.d[2]};
            int64_t at = 0;
            bool inside = true;
            for (int i = 0; i < 3; ++i) {
              const int64_t v = int64_t(pos[i]) * a.strides[i] - a.pads[i] + int64_t(koff[i]) * a.dilations[i];
              inside = inside && v >= 0 && v < int64_t(image.d[i]);
              at = at * int64_t(image.d[i]) + v;
            }
            if (scatter) {
              if (inside) plane[at] += row[p - p0];
            } else {
              row[p - p0] = inside ? plane[at] : 0.0f;
            }
          }
        }
}

size_t conv_band(const ConvGeometry& g, bool transposed) {
  const size_t positions = transposed ? g.in.size() : g.out.size();
  return std::max<size_t>(1, std::min(positions, kIm2colBandColumns));
}

// Scratch in floats: the band of columns, and (transposed) every group's weight transposed to [M/g * k, C/g].
uint64_t conv_nd_scratch(const Op& op) {
  const bool transposed = conv_nd_attrs(op).transposed != 0;
  const ConvGeometry g = conv_geometry(op);
  const size_t rows = (transposed ? g.group_out : g.group_in) * g.kvol;
  return uint64_t(rows) * conv_band(g, transposed) + (transposed ? uint64_t(op.in[1]->numel) : 0);
}

}  // namespace

bool check_conv_nd(const Op& op, Message* err) {
  const Tensor& x = *op.in[0];
  const Tensor& w = *op.in[1];
  const Tensor& y = *op.out[0];
  const ConvNdAttrs a = conv_nd_attrs(op);
  SPX_REQUIRE(spatial_rank_ok(x) && y.ndim == x.ndim && w.ndim == x.ndim,
              "expects x, w, y of rank 3 to 5");
  const Volume vx = volume_of(x), vy = volume_of(y), vw = volume_of(w);
  const size_t G = size_t(a.group);
  const bool transposed = a.transposed != 0;
  const size_t c_in = transposed ? vw.n : vw.c * G, c_out = transposed ? vw.c * G : vw.n;
  SPX_REQUIRE(vx.c == c_in && vy.c == c_out && vx.n == vy.n && c_in % G == 0 && c_out % G == 0,
              "weight %s does not fit input %s, output %s with group %zu", shape_str(w).text, shape_str(x).text,
              shape_str(y).text, G);
  for (int i = 0; i < 3; ++i)
    SPX_REQUIRE(int64_t(vw.d[i]) == a.kernel[i] && vy.d[i] >= 1, "kernel/output mismatch on axis %d", i);
  if (const Tensor* bias = optional_input(op, 2)) SPX_REQUIRE(bias->numel == c_out, "bias size differs from output channels");
  return enough_scratch(op, conv_nd_scratch(op), err);
}

bool run_conv_nd(const Op& op, uint8_t* scratch, Message*) {
  const ConvNdAttrs a = conv_nd_attrs(op);
  const ConvGeometry g = conv_geometry(op);
  const bool transposed = a.transposed != 0;
  const size_t G = size_t(a.group), band = conv_band(g, transposed);
  const Tensor* bias_tensor = optional_input(op, 2);
  const float* bias = bias_tensor ? bias_tensor->f32() : nullptr;
  const ActParams act = act_params(a);
  const float* w = op.in[1]->f32();
  float* cols = reinterpret_cast<float*>(scratch);
  const size_t in_plane = g.in.size(), out_plane = g.out.size();
  if (!transposed) {
    const size_t K = g.group_in * g.kvol;
    for (size_t n = 0; n < g.in.n; ++n)
      for (size_t grp = 0; grp < G; ++grp) {
        float* x = op.in[0]->f32() + (n * g.in.c + grp * g.group_in) * in_plane;
        float* y = op.out[0]->f32() + (n * g.out.c + grp * g.group_out) * out_plane;
        for (size_t p0 = 0; p0 < out_plane; p0 += band) {
          const size_t p1 = std::min(out_plane, p0 + band);
          columns(false, a, g, g.group_in, g.in, g.out, p0, p1, x, cols);
          f32_gemm({g.group_out, p1 - p0, K, w + grp * g.group_out * K, K, cols, p1 - p0, y + p0, out_plane,
                    bias ? bias + grp * g.group_out : nullptr, bias ? BiasMode::kPerRow : BiasMode::kNone, act});
        }
      }
    return true;
  }
  // Transposed: x [C, in] -> cols [M/g * k, in] = w_g^T x_g, scattered into y.
  const size_t rows = g.group_out * g.kvol;
  float* wt = cols + rows * band;
  for (size_t grp = 0; grp < G; ++grp)
    for (size_t c = 0; c < g.group_in; ++c)
      for (size_t r = 0; r < rows; ++r) wt[(grp * rows + r) * g.group_in + c] = w[(grp * g.group_in + c) * rows + r];
  for (size_t n = 0; n < g.in.n; ++n) {
    float* y_n = op.out[0]->f32() + n * g.out.c * out_plane;
    for (size_t m = 0; m < g.out.c; ++m) std::fill(y_n + m * out_plane, y_n + (m + 1) * out_plane, bias ? bias[m] : 0.0f);
    for (size_t grp = 0; grp < G; ++grp) {
      const float* x = op.in[0]->f32() + (n * g.in.c + grp * g.group_in) * in_plane;
      for (size_t p0 = 0; p0 < in_plane; p0 += band) {
        const size_t p1 = std::min(in_plane, p0 + band);
        f32_gemm({rows, p1 - p0, g.group_in, wt + grp * rows * g.group_in, g.group_in, x + p0, in_plane, cols, p1 - p0,
                  nullptr, BiasMode::kNone, ActParams{}});
        columns(true, a, g, g.group_out, g.out, g.in, p0, p1, y_n + grp * g.group_out * out_plane, cols);
      }
    }
    if (act.kind != Activation::kNone) f32_activation(act, y_n, g.out.c * out_plane);
  }
  return true;
}

// ---- Recurrent --------------------------------------------------------------------------------------

namespace {

struct RecurrentShape {
  size_t T, B, I, H, D, G;  // steps, batch, input size, hidden size, directions, gates
};

RecurrentShape recurrent_shape(const Op& op) {
  const RecurrentAttrs a = recurrent_attrs(op);
  const Tensor& x = *op.in[0];
  RecurrentShape s;
  s.T = size_t(x.dims[a.layout ? 1 : 0]);
  s.B = size_t(x.dims[a.layout ? 0 : 1]);
  s.I = size_t(x.dims[2]);
  s.D = size_t(op.in[1]->dims[0]);
  s.H = size_t(op.in[2]->dims[2]);
  s.G = a.kind == RecurrentKind::kLstm ? 4 : a.kind == RecurrentKind::kGru ? 3 : 1;
  return s;
}

// Floats: W^T [I, GH], R^T [H, GH], x W^T [T*B, GH], h R^T [B, GH], h, c, a row of H.
uint64_t recurrent_scratch(const RecurrentShape& s) {
  const uint64_t gh = s.G * s.H;
  return gh * (s.I + s.H + s.T * s.B + s.B) + 2 * s.B * s.H + s.H;
}

// A gate: clip the pre-activation (clip <= 0: none), then the activation, in place.
void gate(float* v, size_t n, float clip, const ActParams& act) {
  if (clip > 0.0f)
    for (size_t i = 0; i < n; ++i) v[i] = std::min(std::max(v[i], -clip), clip);
  f32_activation(act, v, n);
}

void transpose_into(const float* m, size_t rows, size_t cols, float* out) {
  for (size_t r = 0; r < rows; ++r)
    for (size_t c = 0; c < cols; ++c) out[c * rows + r] = m[r * cols + c];
}

}  // namespace

bool check_recurrent(const Op& op, Message* err) {
  const Tensor& x = *op.in[0];
  const RecurrentAttrs a = recurrent_attrs(op);
  SPX_REQUIRE(x.ndim == 3 && op.in[1]->ndim == 3 && op.in[2]->ndim == 3, "expects rank-3 x, w, r");
  const RecurrentShape s = recurrent_shape(op);
  SPX_REQUIRE(s.D == (a.direction == Direction::kBidirectional ? 2u : 1u), "W has %zu directions", s.D);
  SPX_REQUIRE(size_t(op.in[1]->dims[1]) == s.G * s.H && size_t(op.in[1]->dims[2]) == s.I &&
                  size_t(op.in[2]->dims[0]) == s.D && size_t(op.in[2]->dims[1]) == s.G * s.H,
              "W %s / R %s do not fit X %s", shape_str(*op.in[1]).text, shape_str(*op.in[2]).text, shape_str(x).text);
  const size_t state = s.D * s.B * s.H;
  const size_t sizes[5] = {s.D * 2 * s.G * s.H, s.B, state, state, s.D * 3 * s.H};  // B, lens, h, c, P
  for (size_t i = 3; i < op.in.size(); ++i)
    if (const Tensor* t = optional_input(op, i))
      SPX_REQUIRE(t->numel == sizes[i - 3], "input %zu has %zu values, expected %zu", i, t->numel, sizes[i - 3]);
  SPX_REQUIRE(op.out[0]->numel == s.T * state && op.out[1]->numel == state && op.out[2]->numel == state,
              "outputs do not fit");
  return enough_scratch(op, recurrent_scratch(s), err);
}

bool run_recurrent(const Op& op, uint8_t* scratch, Message* err) {
  const RecurrentAttrs a = recurrent_attrs(op);
  const RecurrentShape s = recurrent_shape(op);
  const size_t T = s.T, B = s.B, H = s.H, GH = s.G * s.H;
  const ActParams f{Activation(a.activations[0]), a.alpha_f, a.beta_f};
  const ActParams g{Activation(a.activations[1]), a.alpha_g, a.beta_g};
  const ActParams h_act{Activation(a.activations[2]), a.alpha_h, a.beta_h};
  const Tensor* bias = optional_input(op, 3);
  const Tensor* lens = optional_input(op, 4);
  const Tensor* init_h = optional_input(op, 5);
  const Tensor* init_c = optional_input(op, 6);
  const Tensor* peep = optional_input(op, 7);
  for (size_t b = 0; b < B; ++b)
    if (lens && (lens->as<int32_t>()[b] < 0 || size_t(lens->as<int32_t>()[b]) > T)) {
      err->format("sequence_lens[%zu] = %d outside [0, %zu]", b, lens->as<int32_t>()[b], T);
      return false;
    }
  float* wt = reinterpret_cast<float*>(scratch);
  float* rt = wt + s.I * GH;
  float* xw = rt + H * GH;
  float* hr = xw + T * B * GH;
  float* h = hr + B * GH;
  float* c = h + B * H;
  float* tmp = c + B * H;
  float* y = op.out[0]->f32();
  std::fill(y, y + op.out[0]->numel, 0.0f);
  for (size_t d = 0; d < s.D; ++d) {
    const bool reverse = a.direction == Direction::kReverse || d == 1;
    transpose_into(op.in[1]->f32() + d * GH * s.I, GH, s.I, wt);
    transpose_into(op.in[2]->f32() + d * GH * H, GH, H, rt);
    const float* wb = bias ? bias->f32() + d * 2 * GH : nullptr;
    const float* rb = wb ? wb + GH : nullptr;
    // x W^T + Wb (+ Rb but for GRU's h gate with linear_before_reset, which adds it inside r * (...)) for all steps
    f32_gemm({T * B, GH, s.I, op.in[0]->f32(), s.I, wt, GH, xw, GH, nullptr, BiasMode::kNone, ActParams{}});
    if (wb)
      for (size_t r = 0; r < T * B; ++r)
        for (size_t j = 0; j < GH; ++j)
          xw[r * GH + j] += wb[j] + (a.kind == RecurrentKind::kGru && j >= 2 * H ? 0.0f : rb[j]);
    for (size_t b = 0; b < B; ++b) {  // states are [D, B, H], or [B, D, H] in layout 1
      const size_t at = (a.layout ? b * s.D + d : d * B + b) * H;
      for (size_t j = 0; j < H; ++j) {
        h[b * H + j] = init_h ? init_h->f32()[at + j] : 0.0f;
        c[b * H + j] = init_c ? init_c->f32()[at + j] : 0.0f;
      }
    }
    const float* p = peep ? peep->f32() + d * 3 * H : nullptr;
    for (size_t step = 0; step < T; ++step) {
      f32_gemm({B, GH, H, h, H, rt, GH, hr, GH, nullptr, BiasMode::kNone, ActParams{}});
      for (size_t b = 0; b < B; ++b) {
        const size_t len = lens ? size_t(lens->as<int32_t>()[b]) : T;
        if (step >= len) continue;
        const size_t t = reverse ? len - 1 - step : step;
        float* gates = xw + (a.layout ? b * T + t : t * B + b) * GH;
        float* hb = h + b * H;
        float* cb = c + b * H;
        const float* hrb = hr + b * GH;
        const size_t direct = a.kind == RecurrentKind::kGru ? 2 * H : GH;  // GRU's h gate adds h R^T below
        for (size_t j = 0; j < direct; ++j) gates[j] += hrb[j];
        if (a.kind == RecurrentKind::kLstm) {  // gates i, o, f, c
          float *gi = gates, *go = gates + H, *gf = gates + 2 * H, *gc = gates + 3 * H;
          for (size_t j = 0; p && j < H; ++j) gi[j] += p[j] * cb[j], gf[j] += p[2 * H + j] * cb[j];
          gate(gi, H, a.clip, f);  // o waits for its peephole term on the new c
          gate(gf, H, a.clip, f);
          gate(gc, H, a.clip, g);
          for (size_t j = 0; j < H; ++j) {
            cb[j] = (a.input_forget ? 1.0f - gi[j] : gf[j]) * cb[j] + gi[j] * gc[j];
            tmp[j] = cb[j];
            if (p) go[j] += p[H + j] * cb[j];
          }
          gate(go, H, a.clip, f);
          f32_activation(h_act, tmp, H);
          for (size_t j = 0; j < H; ++j) hb[j] = go[j] * tmp[j];
        } else if (a.kind == RecurrentKind::kGru) {  // gates z, r, h
          float *gz = gates, *gr = gates + H, *gh = gates + 2 * H;
          gate(gates, 2 * H, a.clip, f);
          for (size_t j = 0; j < H; ++j) {
            float acc = rb ? rb[2 * H + j] : 0.0f;
            if (a.linear_before_reset) acc = gr[j] * (acc + hrb[2 * H + j]);
            else
              for (size_t k = 0; k < H; ++k) acc += gr[k] * hb[k] * rt[k * GH + 2 * H + j];
            gh[j] += acc;
          }
          gate(gh, H, a.clip, g);
          for (size_t j = 0; j < H; ++j) hb[j] = (1.0f - gz[j]) * gh[j] + gz[j] * hb[j];
        } else {
          gate(gates, H, a.clip, f);
          std::memcpy(hb, gates, H * sizeof(float));
        }
        float* out = y + (a.layout ? (b * T + t) * s.D + d : (t * s.D + d) * B + b) * H;
        std::memcpy(out, hb, H * sizeof(float));
      }
    }
    for (size_t b = 0; b < B; ++b) {
      if (lens && lens->as<int32_t>()[b] == 0) {  // an empty sequence has a zero state (as onnxruntime)
        std::fill(h + b * H, h + (b + 1) * H, 0.0f);
        std::fill(c + b * H, c + (b + 1) * H, 0.0f);
      }
      const size_t at = (a.layout ? b * s.D + d : d * B + b) * H;
      std::memcpy(op.out[1]->f32() + at, h + b * H, H * sizeof(float));
      if (a.kind == RecurrentKind::kLstm) std::memcpy(op.out[2]->f32() + at, c + b * H, H * sizeof(float));
    }
  }
  return true;
}

// ---- GridSample -------------------------------------------------------------------------------------

namespace {

float reflect(float v, float lo, float hi) {
  const float range = hi - lo;
  if (v < lo) {
    const float dx = lo - v;
    const int n = int(dx / range);
    const float r = dx - float(n) * range;
    return n % 2 == 0 ? lo + r : hi - r;
  }
  if (v > hi) {
    const float dx = v - hi;
    const int n = int(dx / range);
    const float r = dx - float(n) * range;
    return n % 2 == 0 ? hi - r : lo + r;
  }
  return v;
}

void cubic_coeffs(float t, float* w) {
  constexpr float A = -0.75f;
  const float x0 = t + 1, x1 = t, x2 = 1 - t, x3 = 2 - t;
  w[0] = ((A * x0 - 5 * A) * x0 + 8 * A) * x0 - 4 * A;
  w[1] = ((A + 2) * x1 - (A + 3)) * x1 * x1 + 1;
  w[2] = ((A + 2) * x2 - (A + 3)) * x2 * x2 + 1;
  w[3] = ((A * x3 - 5 * A) * x3 + 8 * A) * x3 - 4 * A;
}

// Taps of one axis: up to 4 input indices (-1: a zero from padding) and their weights.
struct AxisTaps {
  int64_t index[4];
  float weight[4];
  int n;
};

AxisTaps axis_taps(float coord, int64_t len, GridMode mode, GridPadding padding, bool align_corners) {
  if (std::isnan(coord)) return AxisTaps{{0}, {coord}, 1};  // NaN in, NaN out
  coord = std::min(std::max(coord, -1e6f), 1e6f);  // far outside stays outside; float -> int stays defined
  float v = align_corners ? (coord + 1) / 2 * float(len - 1) : ((coord + 1) * float(len) - 1) / 2;
  const float lo = align_corners ? 0.0f : -0.5f, hi = align_corners ? float(len - 1) : float(len) - 0.5f;
  if (mode == GridMode::kNearest) v = std::nearbyint(v);
  if (v < lo || v > hi) {
    if (padding == GridPadding::kBorder) v = std::min(std::max(v, 0.0f), float(len - 1));
    if (padding == GridPadding::kReflection) v = reflect(v, lo, hi);
  }
  AxisTaps t;
  int64_t first;
  if (mode == GridMode::kNearest) {
    t.n = 1, first = int64_t(v), t.weight[0] = 1.0f;
  } else if (mode == GridMode::kBilinear) {
    first = int64_t(std::floor(v));
    const float r = v - float(first);
    t.n = 2, t.weight[0] = 1 - r, t.weight[1] = r;
  } else {
    const int64_t base = int64_t(std::floor(v));
    cubic_coeffs(v - float(base), t.weight);
    t.n = 4, first = base - 1;
  }
  for (int k = 0; k < t.n; ++k) {
    int64_t i = first + k;
    if (i < 0 || i >= len) {
      if (padding == GridPadding::kZeros) i = -1;
      else if (padding == GridPadding::kBorder) i = std::min<int64_t>(std::max<int64_t>(i, 0), len - 1);
      else i = std::min<int64_t>(std::max<int64_t>(int64_t(reflect(float(i), lo, hi)), 0), len - 1);
    }
    t.index[k] = i;
  }
  return t;
}

}  // namespace

bool check_grid_sample(const Op& op, Message* err) {
  const Tensor& x = *op.in[0];
  const Tensor& grid = *op.in[1];
  const Tensor& y = *op.out[0];
  SPX_REQUIRE((x.ndim == 4 || x.ndim == 5) && grid.ndim == x.ndim && y.ndim == x.ndim, "expects 2-D or 3-D sampling");
  SPX_REQUIRE(grid.dims[0] == x.dims[0] && grid.dims[x.ndim - 1] == int64_t(x.ndim) - 2 && y.dims[0] == x.dims[0] &&
                  y.dims[1] == x.dims[1],
              "grid %s does not fit input %s", shape_str(grid).text, shape_str(x).text);
  for (uint32_t i = 2; i < y.ndim; ++i) SPX_REQUIRE(y.dims[i] == grid.dims[i - 1], "output does not match the grid");
  return true;
}

bool run_grid_sample(const Op& op, uint8_t*, Message*) {
  const Tensor& x = *op.in[0];
  const GridSampleAttrs a = grid_sample_attrs(op);
  const Volume vx = volume_of(x), vy = volume_of(*op.out[0]);
  const size_t dims = x.ndim - 2, in_plane = vx.size(), out_plane = vy.size();
  for (size_t n = 0; n < vx.n; ++n)
    for (size_t o = 0; o < out_plane; ++o) {
      const float* coords = op.in[1]->f32() + (n * out_plane + o) * dims;  // (x, y[, z]): W first
      AxisTaps taps[3];
      taps[0] = AxisTaps{{0}, {1.0f}, 1};
      for (size_t i = 0; i < dims; ++i)
        taps[2 - i] = axis_taps(coords[i], int64_t(vx.d[2 - i]), a.mode, a.padding, a.align_corners != 0);
      for (size_t ch = 0; ch < vx.c; ++ch) {
        const float* plane = x.f32() + (n * vx.c + ch) * in_plane;
        float acc = 0.0f;
        for (int i = 0; i < taps[0].n; ++i) {
          for (int j = 0; j < taps[1].n; ++j) {
            float row = 0.0f;
            for (int k = 0; k < taps[2].n; ++k) {
              const int64_t d = taps[0].index[i], h = taps[1].index[j], w = taps[2].index[k];
              if (d >= 0 && h >= 0 && w >= 0) row += taps[2].weight[k] * plane[(d * int64_t(vx.d[1]) + h) * int64_t(vx.d[2]) + w];
            }
            acc += taps[0].weight[i] * taps[1].weight[j] * row;
          }
        }
        op.out[0]->f32()[(n * vx.c + ch) * out_plane + o] = acc;
      }
    }
  return true;
}

// ---- MaxUnpool --------------------------------------------------------------------------------------

bool check_max_unpool(const Op& op, Message* err) {
  SPX_REQUIRE(op.in[1]->numel == op.in[0]->numel, "indices and x differ in size");
  return true;
}

bool run_max_unpool(const Op& op, uint8_t*, Message* err) {
  const Tensor& y = *op.out[0];
  std::fill(y.f32(), y.f32() + y.numel, 0.0f);
  const int64_t* indices = op.in[1]->as<int64_t>();
  for (size_t i = 0; i < op.in[0]->numel; ++i) {
    if (indices[i] < 0 || uint64_t(indices[i]) >= y.numel) {
      err->format("index %lld outside the output's %zu elements", static_cast<long long>(indices[i]), y.numel);
      return false;
    }
    y.f32()[indices[i]] = op.in[0]->f32()[i];
  }
  return true;
}

}  // namespace sparsec
