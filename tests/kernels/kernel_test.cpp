// Checks every fast kernel variant against its scalar reference on many small and odd shapes.
// Standard library only, so it also builds with the aarch64 and wasm32 cross compilers.
#include <algorithm>
#include <array>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "sparsec/kernel_variants.h"
#include "sparsec/kernels.h"
#include "sparsec/spmm.h"
#include "spmm_pack.h"

using namespace sparsec;

namespace {

constexpr float kRelTol = 1e-5f;  // relative to sum |a*b| (+ |bias|) of each output
constexpr float kActRelTol = 1e-6f;  // f32_activation__portable vs activate(), relative to the value
const float kNaN = std::numeric_limits<float>::quiet_NaN();

size_t g_passed = 0, g_failed = 0;

// Records one case; a failing case prints one line naming it.
void record(bool ok, const std::string& name, const std::string& detail) {
  if (ok) {
    ++g_passed;
  } else {
    ++g_failed;
    std::printf("FAIL %s: %s\n", name.c_str(), detail.c_str());
  }
}

template <typename... Args>
std::string fmt(const char* format, Args... args) {
  char buf[200];
  std::snprintf(buf, sizeof buf, format, args...);
  return buf;
}

std::mt19937 g_rng(12345);

std::vector<float> random_vector(size_t n) {
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = dist(g_rng);
  return v;
}

// rows x cols values at row stride ld; the padding holds NaN so reading it poisons a result.
std::vector<float> random_strided(size_t rows, size_t cols, size_t ld) {
  std::vector<float> v = random_vector(rows * ld);
  for (size_t r = 0; r < rows; ++r)
    for (size_t c = cols; c < ld; ++c) v[r * ld + c] = kNaN;
  return v;
}

std::vector<float> absolute(std::vector<float> v) {
  for (float& x : v) x = std::fabs(x);
  return v;
}

const char* kActivationNames[] = {"none", "relu", "clip", "hardswish", "hardsigmoid",
                                  "sigmoid", "silu", "gelu", "gelu_tanh", "tanh",
                                  "leaky_relu", "elu", "softplus", "selu", "celu",
                                  "thresholded_relu", "shrink", "softsign", "mish", "swish"};
const char* kBiasNames[] = {"none", "row", "column"};

// Every kind, with parameters chosen so each piece of a piecewise kind is reached.
ActParams activation(int kind) {
  ActParams act;
  act.kind = static_cast<Activation>(kind);
  switch (act.kind) {
    case Activation::kClip: act.a = -0.5f; act.b = 0.7f; break;
    case Activation::kHardSigmoid: act.a = 0.2f; act.b = 0.5f; break;
    case Activation::kLeakyRelu: act.a = 0.1f; break;
    case Activation::kElu: act.a = 1.3f; break;
    case Activation::kSelu: act.a = 1.6732632f; act.b = 1.0507010f; break;
    case Activation::kCelu: act.a = 0.7f; break;
    case Activation::kThresholdedRelu: act.a = 0.4f; break;
    case Activation::kShrink: act.a = 0.5f; act.b = 0.25f; break;
    case Activation::kSwish: act.a = 0.6f; break;
    default: break;
  }
  return act;
}
constexpr int kActivationCount = static_cast<int>(Activation::kLast) + 1;

// Bounds how much an activation can magnify an error in its input.
float max_slope(const ActParams& act) {
  return std::max(1.5f, std::fabs(act.a));
}

// Compares got to want within kRelTol * slope * magnitude, magnitude being the reference kernel
// run on absolute values, plus the fast activation formulas' own error (kActRelTol of the value,
// as in check_activation_variants); returns "" or a description of the first mismatch.
std::string compare(const std::vector<float>& got, const std::vector<float>& want,
                    const std::vector<float>& magnitude, float slope) {
  for (size_t i = 0; i < want.size(); ++i) {
    const float tol = kRelTol * slope * magnitude[i] + kActRelTol * std::fabs(want[i]) + 1e-30f;
    if (!(std::fabs(got[i] - want[i]) <= tol))  // negated so NaN fails
      return fmt("element %zu got %.9g want %.9g", i, got[i], want[i]);
  }
  return "";
}

// ---------------------------------------------------------------------------------------------
// Activations

void check_activation_values() {
  struct Known {
    int kind;
    float x;
    double want;
  };
  const Known known[] = {
      {1, -2.0f, 0.0}, {1, 3.0f, 3.0},
      {2, 5.0f, 0.7}, {2, -5.0f, -0.5}, {2, 0.3f, 0.3},
      {3, -3.0f, 0.0}, {3, 3.0f, 3.0}, {3, 1.0f, 2.0 / 3.0}, {3, -4.0f, 0.0},
      {4, 1.0f, 0.7}, {4, 10.0f, 1.0}, {4, -10.0f, 0.0},
      {5, 0.0f, 0.5}, {5, 2.0f, 0.8807970779778823}, {5, -100.0f, 0.0}, {5, 100.0f, 1.0},
      {6, 1.0f, 0.7310585786300049}, {6, 2.0f, 1.7615941559557646},
      {7, 1.0f, 0.8413447460685429}, {7, -1.0f, -0.15865525393145707},
      {8, 1.0f, 0.8411919906082768}, {8, -1.5f, -0.10042842301976707},
      {9, 0.5f, 0.46211715726000974}, {9, -20.0f, -1.0},
      {10, -2.0f, -0.2}, {10, 2.0f, 2.0},
      {11, -1.0f, 1.3 * -0.6321205588285577}, {11, 2.0f, 2.0},
      {12, 0.0f, 0.6931471805599453}, {12, 2.0f, 2.1269280110429727},
      {12, -3.0f, 0.04858735157374206}, {12, 100.0f, 100.0}, {12, -100.0f, 3.720075976020836e-44},
      {13, -1.0f, 1.0507010 * 1.6732632 * -0.6321205588285577}, {13, 2.0f, 2.101402},
      {14, -1.0f, -0.532244274490757}, {14, 2.0f, 2.0},
      {15, 0.3f, 0.0}, {15, 0.5f, 0.5}, {15, -2.0f, 0.0},
      {16, -1.0f, -0.75}, {16, 0.4f, 0.0}, {16, 1.0f, 0.75},
      {17, 3.0f, 0.75}, {17, -1.0f, -0.5},
      {18, 1.0f, 0.8650983882673103}, {18, -2.0f, -0.2525014826957089},
      {19, 2.0f, 1.537049566998035},
  };
  for (const Known& k : known) {
    const float got = activate(activation(k.kind), k.x);
    const bool ok = std::fabs(got - k.want) <= 2e-6 * std::fabs(k.want) + 1e-7;
    record(ok, fmt("activate %s x=%g", kActivationNames[k.kind], k.x),
           fmt("got %.9g want %.9g", got, k.want));
  }
}

void check_activation_variants() {
  for (int kind = 0; kind < kActivationCount; ++kind) {
    const ActParams act = activation(kind);
    for (size_t n : {1, 3, 8, 17, 64, 203}) {
      std::vector<float> want(n);
      for (size_t i = 0; i < n; ++i) want[i] = -12.0f + 24.0f * i / n;
      if (n > 2) want[0] = -100.0f, want[1] = 100.0f, want[2] = kNaN;  // NaN must stay NaN (and be defined)
      std::vector<float> got = want;
      f32_activation__scalar(act, want.data(), n);
      f32_activation(act, got.data(), n);  // the dispatch (the portable variant on every target)
      bool ok = true;  // equal up to FMA contraction, which the compiler may apply to either
      for (size_t i = 0; i < n; ++i)
        ok &= std::isnan(want[i])
                  ? std::isnan(got[i])
                  : std::fabs(got[i] - want[i]) <= kActRelTol * std::fabs(want[i]) + 1e-7f;
      record(ok, fmt("f32_activation (dispatch) %s n=%zu", kActivationNames[kind], n),
             "differs from scalar");
    }
  }
}

// The kinds training graphs differentiate: known derivatives, then every variant against the scalar one.
void check_activation_grad() {
  struct Known {
    int kind;
    float x;
    double want;
  };
  const Known known[] = {
      {1, -1.0f, 0.0}, {1, 2.0f, 1.0}, {2, 0.3f, 1.0}, {2, 5.0f, 0.0}, {3, 1.0f, 5.0 / 6.0}, {3, -4.0f, 0.0},
      {5, 0.0f, 0.25}, {5, 2.0f, 0.10499358540350662}, {6, 1.0f, 0.9276705118714869},
      {7, 1.0f, 1.0833154705876864}, {7, -1.0f, -0.08331547058768629}, {7, -6.0f, -3.5468709453902015e-08},
      {9, 0.5f, 0.7864477329659274}, {12, 1.0f, 0.7310585786300049},
  };
  for (const Known& k : known) {
    const float dy = 1.0f;
    float got = 0.0f;
    f32_activation_grad__scalar(activation(k.kind), &dy, &k.x, &got, 1);
    const bool ok = std::fabs(got - k.want) <= 2e-6 * std::fabs(k.want) + 1e-7;
    record(ok, fmt("activation_derivative %s x=%g", kActivationNames[k.kind], k.x), fmt("got %.9g want %.9g", got, k.want));
  }
  for (int kind : {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}) {
    const ActParams act = activation(kind);
    for (size_t n : {1, 3, 8, 17, 64, 203}) {
      std::vector<float> x(n), dy(n), want(n), got(n);
      for (size_t i = 0; i < n; ++i) x[i] = -12.0f + 24.0f * i / n, dy[i] = 1.0f - 0.37f * float(i % 7);
      if (n > 2) x[0] = -100.0f, x[1] = 100.0f, x[2] = kNaN;
      f32_activation_grad__scalar(act, dy.data(), x.data(), want.data(), n);
      f32_activation_grad(act, dy.data(), x.data(), got.data(), n);
      bool ok = true;
      for (size_t i = 0; i < n; ++i)
        ok &= std::isnan(want[i]) ? std::isnan(got[i])
                                  : std::fabs(got[i] - want[i]) <= kActRelTol * std::fabs(want[i]) + 1e-7f;
      record(ok, fmt("f32_activation_grad (dispatch) %s n=%zu", kActivationNames[kind], n), "differs from scalar");
    }
  }
}

// Softmax rows: every length around the 4- and 8-lane vectors, long rows, values spread over +-40 (exp's range
// matters), a -inf; then rows with a NaN (first or later: the whole row NaN) and an all -inf row (NaN).
void check_softmax() {
  for (size_t rows : {1, 3})
    for (size_t len : {1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 100, 1000}) {
      std::vector<float> x = random_vector(rows * len), want(rows * len), got(rows * len);
      for (float& v : x) v *= 40.0f;
      if (len > 2) x[1] = -INFINITY;
      f32_softmax__scalar(x.data(), want.data(), rows, len);
      f32_softmax(x.data(), got.data(), rows, len);
      bool ok = true;
      for (size_t i = 0; i < want.size(); ++i) ok &= std::fabs(got[i] - want[i]) <= 1e-5f * want[i] + 1e-30f;
      record(ok, fmt("f32_softmax (dispatch) rows=%zu len=%zu", rows, len), "differs from scalar");
    }
  for (size_t len : {1, 4, 9, 33}) {
    const size_t rows = 3;
    std::vector<float> x = random_vector(rows * len), want(rows * len), got(rows * len);
    x[0] = kNaN, x[2 * len - 1] = kNaN;
    for (size_t i = 0; i < len; ++i) x[2 * len + i] = -INFINITY;
    f32_softmax__scalar(x.data(), want.data(), rows, len);
    f32_softmax(x.data(), got.data(), rows, len);
    bool ok = true;
    for (size_t i = 0; i < want.size(); ++i) ok &= std::isnan(want[i]) && std::isnan(got[i]);
    record(ok, fmt("f32_softmax (dispatch) NaN / all -inf rows len=%zu", len), "not NaN as the scalar");
  }
}

// Layer norm and its gradient: every length around the 8-lane blocks, rows offset far from 0 (the variance is of
// the centred values), a constant row, with and without shift.
void check_layer_norm() {
  for (size_t len : {1, 2, 7, 8, 9, 16, 31, 100, 128})
    for (bool shift : {false, true}) {
      const size_t rows = 3;
      std::vector<float> x = random_vector(rows * len), dy = random_vector(rows * len), scale = random_vector(len),
                         bias = random_vector(len);
      for (size_t i = 0; i < len; ++i) x[len + i] += 1000.0f, x[2 * len + i] = 0.5f;
      LayerNormArgs a{x.data(), scale.data(), shift ? bias.data() : nullptr, 1e-5f, nullptr, rows, len};
      std::vector<float> want(rows * len), got(rows * len, kNaN), want_dx(rows * len), got_dx(rows * len, kNaN);
      a.y = want.data();
      f32_layer_norm__scalar(a);
      a.y = got.data();
      f32_layer_norm(a);  // dispatch
      f32_layer_norm_grad__scalar(a, dy.data(), want_dx.data());
      f32_layer_norm_grad(a, dy.data(), got_dx.data());
      bool ok = true, ok_dx = true;
      for (size_t i = 0; i < want.size(); ++i) {
        ok &= std::fabs(got[i] - want[i]) <= 1e-5f * (std::fabs(want[i]) + 1.0f);
        ok_dx &= std::fabs(got_dx[i] - want_dx[i]) <= 1e-5f * (std::fabs(want_dx[i]) + 1.0f);
      }
      record(ok, fmt("f32_layer_norm (dispatch) len=%zu shift=%d", len, int(shift)), "differs from scalar");
      if (!shift) record(ok_dx, fmt("f32_layer_norm_grad (dispatch) len=%zu", len), "differs from scalar");
    }
}

// ---------------------------------------------------------------------------------------------
// GEMM

// batch > 1: the images' B and C blocks lie one NaN row apart (a read or write there shows).
// trans_a: A stored as [K, M].
void check_gemm(size_t M, size_t N, size_t K, size_t pad, BiasMode bias_mode, int act_kind,
                size_t batch = 1, bool trans_a = false) {
  const size_t lda = (trans_a ? M : K) + pad, ldb = N + pad, ldc = N + pad;
  const size_t stride_b = (K + 1) * ldb, stride_c = (M + 1) * ldc;
  const std::vector<float> a = trans_a ? random_strided(K, M, lda) : random_strided(M, K, lda);
  std::vector<float> b = random_strided(batch * (K + 1), N, ldb);
  for (size_t n = 0; n < batch; ++n) std::fill_n(b.begin() + n * stride_b + K * ldb, ldb, kNaN);
  const std::vector<float> bias = random_vector(bias_mode == BiasMode::kPerRow ? M : N);
  const ActParams act = activation(act_kind);
  auto args = [&](const float* a_data, const float* b_data, float* c, size_t ldc_, size_t stride_c_,
                  const float* bias_data, const ActParams& act_) {
    GemmArgs g{M, N, K, a_data, lda, b_data, ldb, c, ldc_, bias_data, bias_mode, act_};
    g.batch = batch, g.batch_stride_b = stride_b, g.batch_stride_c = stride_c_, g.trans_a = trans_a;
    return g;
  };

  std::vector<float> want(batch * M * N), magnitude(batch * M * N);
  f32_gemm__scalar(args(a.data(), b.data(), want.data(), N, M * N, bias.data(), act));
  const std::vector<float> abs_a = absolute(a), abs_b = absolute(b), abs_bias = absolute(bias);
  f32_gemm__scalar(args(abs_a.data(), abs_b.data(), magnitude.data(), N, M * N, abs_bias.data(), ActParams{}));

  std::vector<float> c(batch * stride_c, kNaN);  // NaN also shows a read of C before its first write
  f32_gemm(args(a.data(), b.data(), c.data(), ldc, stride_c, bias.data(), act));  // dispatch
  std::vector<float> got(batch * M * N);
  bool padding_kept = true;
  for (size_t n = 0; n < batch; ++n)
    for (size_t i = 0; i <= M; ++i)
      for (size_t j = 0; j < ldc; ++j) {
        const float v = c[n * stride_c + i * ldc + j];
        if (i < M && j < N) got[(n * M + i) * N + j] = v;
        else padding_kept &= std::isnan(v);
      }
  std::string problem = compare(got, want, magnitude, max_slope(act));
  if (!padding_kept) problem = "wrote past N into the ldc padding or between the images";
  record(problem.empty(),
         fmt("f32_gemm (dispatch) M=%zu N=%zu K=%zu pad=%zu bias=%s act=%s batch=%zu trans_a=%d", M, N, K, pad,
             kBiasNames[static_cast<int>(bias_mode)], kActivationNames[act_kind], batch, int(trans_a)),
         problem);
}

void check_gemm_all() {
  const size_t sizes[] = {1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 33, 64};
  int act_kind = 0;
  for (size_t M : sizes)
    for (size_t N : sizes)
      for (size_t K : sizes)
        for (int bias = 0; bias < 3; ++bias)
          for (size_t pad : {0, 3}) {
            check_gemm(M, N, K, pad, static_cast<BiasMode>(bias), act_kind);
            act_kind = (act_kind + 1) % kActivationCount;
          }
  // Every activation with every bias mode, on tiled and narrow (dot product) shapes.
  for (int kind = 0; kind < kActivationCount; ++kind)
    for (int bias = 0; bias < 3; ++bias) {
      check_gemm(7, 45, 19, 1, static_cast<BiasMode>(bias), kind);
      check_gemm(9, 3, 40, 2, static_cast<BiasMode>(bias), kind);
    }
  // Shapes crossing the K, M and N blocking, and K == 0 (C = act(bias)).
  const size_t big[][3] = {{1, 1000, 300},  {130, 50, 257},  {200, 37, 600}, {5, 300, 513},
                           {129, 1, 700},   {3, 4, 1025},    {64, 200, 256}, {17, 65, 0},
                           {2, 3, 0},       {300, 70, 40},   {1, 97, 1000}};
  for (const auto& s : big)
    for (int bias = 0; bias < 3; ++bias)
      check_gemm(s[0], s[1], s[2], 5, static_cast<BiasMode>(bias), act_kind++ % kActivationCount);
  // Batched: panels crossing images (N not a multiple of the tile), narrow N, K blocks.
  for (size_t batch : {2, 3, 8})
    for (const size_t N : {1, 5, 7, 17, 49, 64})
      for (const auto& mk : {std::array<size_t, 2>{7, 19}, {16, 300}, {1, 3}, {13, 0}})
        for (int bias = 0; bias < 3; ++bias)
          check_gemm(mk[0], N, mk[1], N % 3, static_cast<BiasMode>(bias), act_kind++ % kActivationCount, batch);
  // A transposed: every tile height and edge, narrow N (no dot-product path then), K and M blocks, batches.
  for (size_t M : {1, 2, 5, 6, 7, 13, 64})
    for (size_t N : {1, 3, 16, 17, 40})
      for (size_t K : {0, 1, 7, 33})
        for (size_t pad : {0, 2})
          check_gemm(M, N, K, pad, static_cast<BiasMode>((M + N) % 3), act_kind++ % kActivationCount, 1, true);
  for (const auto& s : big) check_gemm(s[0], s[1], s[2], 3, BiasMode::kPerColumn, 0, 1, true);
  for (size_t batch : {2, 3}) check_gemm(13, 17, 19, 1, BiasMode::kPerRow, 1, batch, true);
  // 64-column tiles (the AVX-512 wide tile: N >= 64, and M <= 6 or K >= 48 with N padded as little as by
  // 16): row tiles and blocks, K blocks, N not a multiple of 64, panels crossing images, A transposed.
  const size_t wide[][3] = {{13, 120, 50}, {20, 64, 400}, {7, 250, 777}, {300, 192, 64}, {3, 100, 60}};
  for (const auto& s : wide)
    for (size_t batch : {1, 3})
      for (bool trans_a : {false, true})
        for (int bias = 0; bias < 3; ++bias)
          check_gemm(s[0], s[1], s[2], 2, static_cast<BiasMode>(bias), act_kind++ % kActivationCount, batch,
                     trans_a);
}

// ---------------------------------------------------------------------------------------------
// Convolution

std::string conv_name(const char* kernel, const Conv2dShape& s) {
  return fmt("%s C=%zu M=%zu G=%zu H=%zu W=%zu OH=%zu OW=%zu K=%zux%zu S=%zux%zu P=%zu,%zu "
             "D=%zux%zu",
             kernel, s.C, s.M, s.G, s.H, s.W, s.OH, s.OW, s.KH, s.KW, s.SH, s.SW, s.PT, s.PL,
             s.DH, s.DW);
}

// f32_im2col__portable copies exactly what the scalar reference computes, band by band.
void check_im2col(const Conv2dShape& s) {
  const std::vector<float> x = random_vector(s.C * s.H * s.W);
  const size_t rows = (s.C / s.G) * s.KH * s.KW;
  for (size_t oh0 = 0; oh0 < s.OH; oh0 += 2) {
    const size_t oh1 = std::min(s.OH, oh0 + 3);
    std::vector<float> want(rows * (oh1 - oh0) * s.OW), got(want.size(), kNaN);
    f32_im2col__scalar(s, x.data(), s.C - s.C / s.G, s.C / s.G, oh0, oh1, want.data());
    f32_im2col__portable(s, x.data(), s.C - s.C / s.G, s.C / s.G, oh0, oh1, got.data());
    record(std::equal(want.begin(), want.end(), got.begin()), conv_name("f32_im2col__portable", s) +
           fmt(" rows %zu..%zu", oh0, oh1), "differs from f32_im2col__scalar");
  }
}

// The executor's im2col path, with its banded scratch buffer.
void conv_by_im2col(const Conv2dShape& s, const float* x, const float* w, const float* bias,
                    const ActParams& act, float* y) {
  std::vector<float> scratch(f32_conv2d_im2col_scratch(s));
  f32_conv2d_im2col(s, x, w, bias, act, y, scratch.data());
}

using ConvFn = void (*)(const Conv2dShape&, const float*, const float*, const float*,
                        const ActParams&, float*);

void check_conv(const char* kernel, ConvFn fast, const Conv2dShape& s, bool with_bias,
                int act_kind) {
  const ActParams act = activation(act_kind);
  const std::vector<float> x = random_vector(s.C * s.H * s.W);
  const std::vector<float> w = random_vector(s.M * (s.C / s.G) * s.KH * s.KW);
  const std::vector<float> bias = random_vector(s.M);
  const float* bias_or_null = with_bias ? bias.data() : nullptr;
  const size_t out = s.M * s.OH * s.OW;
  std::vector<float> want(out), magnitude(out), got(out, kNaN);
  f32_conv2d__scalar(s, x.data(), w.data(), bias_or_null, act, want.data());
  const std::vector<float> abs_x = absolute(x), abs_w = absolute(w), abs_bias = absolute(bias);
  f32_conv2d__scalar(s, abs_x.data(), abs_w.data(), with_bias ? abs_bias.data() : nullptr,
                     ActParams{}, magnitude.data());
  fast(s, x.data(), w.data(), bias_or_null, act, got.data());
  const std::string problem = compare(got, want, magnitude, max_slope(act));
  record(problem.empty(),
         conv_name(kernel, s) + (with_bias ? " bias" : " no-bias") + " act=" +
             kActivationNames[act_kind],
         problem);
}

// Output extent for an input extent with top/left pad `pad` and bottom/right pad `pad_end`;
// 0 when no window fits.
size_t output_extent(size_t in, size_t pad, size_t pad_end, size_t taps, size_t stride,
                     size_t dilation) {
  const size_t span = (taps - 1) * dilation + 1;
  return in + pad + pad_end < span ? 0 : (in + pad + pad_end - span) / stride + 1;
}

struct DwconvVariant {
  const char* name;
  ConvFn fn;
  bool only_3x3;
};
const DwconvVariant kDwconvVariants[] = {
    {"f32_dwconv2d__portable", f32_dwconv2d__portable, false},
#ifdef SPARSEC_KERNELS_NEON
    {"f32_dwconv2d_3x3_u4__neon", f32_dwconv2d_3x3_u4__neon, true},
#endif
#ifdef SPARSEC_KERNELS_WASMSIMD
    {"f32_dwconv2d_3x3_u4__wasmsimd", f32_dwconv2d_3x3_u4__wasmsimd, true},
#endif
    {"f32_dwconv2d (dispatch)", f32_dwconv2d, false},
    {"f32_dwconv2d_3x3 (dispatch)", f32_dwconv2d_3x3, true},
};

void check_dwconv(const Conv2dShape& s, bool with_bias, int act_kind) {
  for (const DwconvVariant& v : kDwconvVariants)
    if (!v.only_3x3 || (s.KH == 3 && s.KW == 3)) check_conv(v.name, v.fn, s, with_bias, act_kind);
}

// 3x3 depthwise on every small width and odd heights, stride 1 and 2, asymmetric padding.
void check_dwconv_3x3_small() {
  const size_t strides[][2] = {{1, 1}, {2, 2}, {1, 2}};
  int act_kind = 0;
  for (size_t H : {1, 2, 3, 4, 5, 7, 17})
    for (size_t W = 1; W <= 17; ++W)
      for (const auto& st : strides)
        for (size_t dilation : {1, 2})
          for (size_t pad_begin = 0; pad_begin < 3; ++pad_begin)
            for (size_t pad_end = 0; pad_end < 3; ++pad_end) {
              const size_t OH = output_extent(H, pad_begin, pad_end, 3, st[0], dilation);
              const size_t OW = output_extent(W, pad_end, pad_begin, 3, st[1], dilation);
              if (OH == 0 || OW == 0) continue;
              const Conv2dShape s{3, H, W, 3, OH, OW, 3, 3, st[0], st[1], pad_begin, pad_end,
                                  dilation, dilation, 3};
              check_dwconv(s, act_kind % 2 == 0, act_kind);
              act_kind = (act_kind + 1) % kActivationCount;
            }
}

void check_conv_all() {
  struct Groups {
    size_t C, M, G;
  };
  const Groups groupings[] = {{3, 4, 1}, {4, 6, 2}, {3, 3, 3}};  // dense, grouped, depthwise
  const size_t kernels[][2] = {{1, 1}, {3, 3}, {5, 5}, {7, 7}, {3, 5}};
  const size_t strides[][2] = {{1, 1}, {2, 2}, {1, 2}, {3, 3}};
  const size_t dilations[][2] = {{1, 1}, {2, 2}, {2, 1}};
  const size_t images[][2] = {{6, 7}, {9, 37}};
  int act_kind = 0;
  for (const Groups& grouping : groupings)
    for (const auto& k : kernels)
      for (const auto& st : strides)
        for (const auto& d : dilations)
          for (const auto& img : images)
            for (size_t pad_top = 0; pad_top < 4; ++pad_top)
              for (size_t pad_bottom = 0; pad_bottom < 4; ++pad_bottom) {
                // Left/right pads mirror bottom/top so both sides see every asymmetry.
                const size_t pad_left = pad_bottom, pad_right = pad_top;
                const size_t OH = output_extent(img[0], pad_top, pad_bottom, k[0], st[0], d[0]);
                const size_t OW = output_extent(img[1], pad_left, pad_right, k[1], st[1], d[1]);
                if (OH == 0 || OW == 0) continue;
                const Conv2dShape s{grouping.C, img[0], img[1], grouping.M, OH, OW, k[0], k[1],
                                    st[0], st[1], pad_top, pad_left, d[0], d[1], grouping.G};
                const bool with_bias = act_kind % 2 == 0;
                check_conv("f32_conv2d_im2col (dispatch)", conv_by_im2col, s, with_bias, act_kind);
                check_im2col(s);
                if (s.G == s.C && s.C == s.M) check_dwconv(s, with_bias, act_kind);
                act_kind = (act_kind + 1) % kActivationCount;
              }
  // Wide depthwise planes: many vector iterations per row, and rows too wide for the ring.
  for (size_t stride : {1, 2})
    for (size_t k : {3, 5, 7})
      for (size_t W : {40, 77, 1500}) {
        const size_t pad = k / 2, OH = output_extent(9, pad, pad, k, stride, 1),
                     OW = output_extent(W, pad, pad, k, stride, 1);
        const Conv2dShape s{3, 9, W, 3, OH, OW, k, k, stride, stride, pad, pad, 1, 1, 3};
        check_dwconv(s, true, 1);
      }
  // Many channels: whole and partial groups of channels per vector (x86 interleaves them), planes
  // around the sizes where the kernels change strategy.
  int act_kind_many = 0;
  for (size_t C : {8, 11, 17})
    for (size_t stride : {1, 2})
      for (size_t k : {3, 5})
        for (size_t HW : {7, 14, 28, 30, 56})
          for (size_t dilation : {1, 2}) {
            const size_t pad = k / 2, OH = output_extent(HW, pad, pad, k, stride, dilation);
            if (OH == 0) continue;
            const Conv2dShape s{C, HW, HW, C, OH, OH, k, k, stride, stride, pad, pad, dilation, dilation, C};
            check_dwconv(s, act_kind_many % 2 == 0, act_kind_many);
            act_kind_many = (act_kind_many + 1) % kActivationCount;
          }
}

// ---------------------------------------------------------------------------------------------
// Pooling and element-wise binary ops: every variant compiled for this target, and the dispatch.

const float kInf = std::numeric_limits<float>::infinity();

// NaN equals NaN; +0 equals -0 (NEON's FMAXNM may pick either zero).
bool same_value(float got, float want) {
  return std::isnan(want) ? std::isnan(got) : got == want;
}

// Random values in [-1, 1]; with specials, about one in six is NaN, +inf or -inf.
std::vector<float> random_with_specials(size_t n, bool specials) {
  std::vector<float> v = random_vector(n);
  if (specials)
    for (float& x : v) {
      const unsigned pick = g_rng() % 18;
      if (pick < 3) x = pick == 0 ? kNaN : pick == 1 ? kInf : -kInf;
    }
  return v;
}

// The variants under test: all but the scalar reference (kPoolVariants[0], kBinaryVariants[0]).
template <typename T, size_t N>
std::vector<T> fast_variants(const T (&all)[N]) {
  return std::vector<T>(all + 1, all + N);
}

constexpr size_t kGuard = 8;  // sentinel floats after each output: a write past the end shows
constexpr float kSentinel = 12345.0f;

// Output (without the guard) or "" when a guard value changed.
std::string guarded_problem(const std::vector<float>& out, size_t n) {
  for (size_t i = n; i < out.size(); ++i)
    if (out[i] != kSentinel) return fmt("wrote past the end at %zu", i);
  return "";
}

// Pooling: the vector interiors add in the reference's order, so results match exactly.
void check_pool(const Pool2dShape& s, size_t planes, bool specials) {
  const std::vector<float> x = random_with_specials(planes * s.H * s.W, specials);
  const size_t n = planes * s.OH * s.OW;
  for (bool is_max : {true, false}) {
    if (!is_max && s.count_include_pad && specials) continue;  // one special sweep per kind suffices
    std::vector<float> want(n);
    (is_max ? f32_maxpool2d__scalar : f32_avgpool2d__scalar)(s, planes, x.data(), want.data());
    for (const PoolVariant& v : fast_variants(kPoolVariants)) {
      std::vector<float> got(n + kGuard, kSentinel);
      (is_max ? v.max : v.avg)(s, planes, x.data(), got.data());
      std::string problem = guarded_problem(got, n);
      for (size_t i = 0; i < n && problem.empty(); ++i)
        if (!same_value(got[i], want[i])) problem = fmt("element %zu got %.9g want %.9g", i, got[i], want[i]);
      record(problem.empty(),
             fmt("f32_%spool2d %s planes=%zu H=%zu W=%zu OH=%zu OW=%zu K=%zux%zu S=%zux%zu "
                 "P=%zu,%zu,%zu,%zu D=%zux%zu include_pad=%d specials=%d",
                 is_max ? "max" : "avg", v.name, planes, s.H, s.W, s.OH, s.OW, s.KH, s.KW, s.SH,
                 s.SW, s.PT, s.PL, s.PB, s.PR, s.DH, s.DW, int(s.count_include_pad), int(specials)),
             problem);
    }
  }
}

void check_pool_all() {
  const size_t heights[] = {1, 2, 3, 4, 7, 17};
  const size_t kernels[][2] = {{1, 1}, {2, 2}, {3, 3}, {3, 2}, {5, 5}};
  const size_t strides[][2] = {{1, 1}, {2, 2}, {3, 3}, {1, 2}};
  const size_t dilations[][2] = {{1, 1}, {2, 2}};
  size_t count = 0;
  for (size_t H : heights)
    for (size_t W = 1; W <= 17; ++W)
      for (const auto& k : kernels)
        for (const auto& st : strides)
          for (const auto& d : dilations)
            for (size_t pad_begin = 0; pad_begin < 3; ++pad_begin)
              for (size_t pad_end = 0; pad_end < 3; ++pad_end)
                for (bool ceil_mode : {false, true}) {
                  // Left/right pads mirror bottom/top; ceil mode may add a window that starts
                  // past the end padding (the runtime allows it and clamps).
                  const size_t PT = pad_begin, PB = pad_end, PL = pad_end, PR = pad_begin;
                  const size_t extra_h = ceil_mode ? st[0] - 1 : 0, extra_w = ceil_mode ? st[1] - 1 : 0;
                  const size_t OH = output_extent(H, PT, PB + extra_h, k[0], st[0], d[0]);
                  const size_t OW = output_extent(W, PL, PR + extra_w, k[1], st[1], d[1]);
                  if (OH == 0 || OW == 0 || (ceil_mode && extra_h + extra_w == 0)) continue;
                  ++count;
                  const Pool2dShape s{H, W, OH, OW, k[0], k[1], st[0], st[1], PT, PL, PB, PR,
                                      d[0], d[1], count % 2 == 0};
                  check_pool(s, 1 + count % 3, count % 5 == 0);
                }
  // Wide rows: many vector blocks per row, as in real networks (3x3/2 max, 3x3/1 average).
  for (size_t W : {56, 113, 224}) {
    check_pool({5, W, 2, (W - 1) / 2 + 1, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, false}, 3, true);
    check_pool({5, W, 5, W, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, true}, 2, false);
  }
}

void check_gavgpool_all() {
  for (size_t channels : {1, 3, 5})
    for (size_t n : {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 31, 49, 64, 100, 257, 1000}) {
      const std::vector<float> x = random_vector(channels * n);
      std::vector<float> want(channels), magnitude(channels);
      f32_gavgpool_cw__scalar(channels, n, x.data(), want.data());
      const std::vector<float> abs_x = absolute(x);
      f32_gavgpool_cw__scalar(channels, n, abs_x.data(), magnitude.data());
      for (const PoolVariant& v : fast_variants(kPoolVariants)) {
        std::vector<float> got(channels + kGuard, kSentinel);
        v.gavg(channels, n, x.data(), got.data());
        std::string problem = guarded_problem(got, channels);
        // Sums in another order: each of the two may be off by n roundings of the mean |x|.
        for (size_t c = 0; c < channels && problem.empty(); ++c)
          if (!(std::fabs(got[c] - want[c]) <= 2.0f * n * FLT_EPSILON * magnitude[c]))
            problem = fmt("channel %zu got %.9g want %.9g", c, got[c], want[c]);
        record(problem.empty(), fmt("f32_gavgpool_cw %s channels=%zu n=%zu", v.name, channels, n), problem);
      }
    }
}

const char* kBinaryNames[] = {"add", "sub", "mul", "div"};
const char* kShapeNames[] = {"vector", "scalar_b", "scalar_a"};

// Arithmetic and the Relu/Clip clamp are exact; other activations use the vectorisable
// formulas of f32_activation__portable, within its tolerance of the scalar ones.
bool close_after(const ActParams& act, float got, float want) {
  const bool exact = act.kind == Activation::kNone || act.kind == Activation::kRelu ||
                     act.kind == Activation::kClip;
  if (exact || std::isnan(want) || std::isinf(want)) return same_value(got, want);
  return std::fabs(got - want) <= kActRelTol * std::fabs(want) + 1e-7f;
}

void check_vbinary(BinaryKind kind, BinaryShape shape, int act_kind, size_t n, bool specials) {
  const ActParams act = activation(act_kind);
  const size_t na = shape == BinaryShape::kScalarA ? 1 : n, nb = shape == BinaryShape::kScalarB ? 1 : n;
  const std::vector<float> a = random_with_specials(na, specials), b = random_with_specials(nb, specials);
  std::vector<float> want(n);
  f32_vbinary__scalar(kind, shape)(n, a.data(), b.data(), want.data(), act);
  for (const BinaryVariant& v : fast_variants(kBinaryVariants)) {
    const VBinaryFn kernel = v.lookup(kind, shape);
    std::vector<float> got(n + kGuard, kSentinel);
    kernel(n, a.data(), b.data(), got.data(), act);
    std::string problem = guarded_problem(got, n);
    if (shape == BinaryShape::kVector) {  // the runtime may write over the first operand
      std::vector<float> in_place = a;
      kernel(n, in_place.data(), b.data(), in_place.data(), act);
      for (size_t i = 0; i < n && problem.empty(); ++i)
        if (!same_value(in_place[i], got[i])) problem = fmt("in place differs at %zu", i);
    }
    for (size_t i = 0; i < n && problem.empty(); ++i)
      if (!close_after(act, got[i], want[i])) problem = fmt("element %zu got %.9g want %.9g", i, got[i], want[i]);
    record(problem.empty(),
           fmt("f32_vbinary %s %s %s act=%s n=%zu specials=%d", v.name, kBinaryNames[int(kind)],
               kShapeNames[int(shape)], kActivationNames[act_kind], n, int(specials)),
           problem);
  }
}

void check_vbinary_all() {
  std::vector<size_t> lengths;
  for (size_t n = 1; n <= 17; ++n) lengths.push_back(n);
  for (size_t n : {31, 64, 100, 1023, 1024, 1025, 2500}) lengths.push_back(n);  // across kBlock
  for (int kind = 0; kind <= int(BinaryKind::kLast); ++kind)
    for (int shape = 0; shape <= int(BinaryShape::kLast); ++shape)
      for (int act_kind = 0; act_kind < kActivationCount; ++act_kind)
        for (size_t n : lengths) {
          const bool exact_act = act_kind <= int(Activation::kClip);
          check_vbinary(BinaryKind(kind), BinaryShape(shape), act_kind, n, false);
          if (exact_act) check_vbinary(BinaryKind(kind), BinaryShape(shape), act_kind, n, true);
        }
}

// ---------------------------------------------------------------------------------------------
// SpMM: a test-only packer, every variant against the scalar reference and the reference against
// the dense GEMM, and the validators on corrupted matrices.

// Random [rows, cols] weights, each nonzero with probability density.
std::vector<float> random_sparse(size_t rows, size_t cols, float density) {
  std::vector<float> w = random_vector(rows * cols);
  std::uniform_real_distribution<float> keep(0.0f, 1.0f);
  for (float& v : w)
    if (!(keep(g_rng) < density)) v = 0.0f;
  return w;
}

bool blocked_valid(const spmm_pack::Blocked& p, size_t M, size_t K, size_t N, size_t MB) {
  return spmm_blocked_valid(M, K, N, MB, p.nnz.data(), p.nnz.size(), p.deltas.data(), p.deltas.size(), p.first,
                            p.values.size());
}

// want = act(w x + bias) by the dense reference GEMM; magnitude = |w| |x| + |bias|.
void dense_reference(const std::vector<float>& w, const std::vector<float>& bias, const std::vector<float>& x,
                     size_t M, size_t K, size_t N, const ActParams& act, std::vector<float>& want,
                     std::vector<float>& magnitude) {
  want.assign(M * N, 0.0f);
  magnitude.assign(M * N, 0.0f);
  f32_gemm__scalar({M, N, K, w.data(), K, x.data(), N, want.data(), N, bias.data(), BiasMode::kPerRow, act});
  const std::vector<float> abs_w = absolute(w), abs_x = absolute(x), abs_bias = absolute(bias);
  f32_gemm__scalar({M, N, K, abs_w.data(), K, abs_x.data(), N, magnitude.data(), N, abs_bias.data(),
                    BiasMode::kPerRow, ActParams{}});
}

// Runs kernel into a guarded output; "" or what differs from want.
template <typename Kernel, typename Args>
std::string spmm_problem(Kernel kernel, Args args, const std::vector<float>& want,
                         const std::vector<float>& magnitude, const ActParams& act) {
  std::vector<float> out(want.size() + kGuard, kSentinel);
  args.y = out.data();
  kernel(args);
  const std::string overrun = guarded_problem(out, want.size());
  if (!overrun.empty()) return overrun;
  out.resize(want.size());
  return compare(out, want, magnitude, max_slope(act));
}

void check_spmm_blocked(size_t M, size_t K, size_t N, size_t MB, float density, int act_kind) {
  const ActParams act = activation(act_kind);
  const std::vector<float> w = random_sparse(M, K, density), bias = random_vector(M), x = random_vector(K * N);
  std::vector<float> want, magnitude;
  dense_reference(w, bias, x, M, K, N, act, want, magnitude);
  const spmm_pack::Blocked p = spmm_pack::blocked(w, bias, M, K, N, MB);
  const std::string shape =
      fmt(" M=%zu K=%zu N=%zu MB=%zu density=%g act=%s", M, K, N, MB, density, kActivationNames[act_kind]);
  record(blocked_valid(p, M, K, N, MB), "spmm_blocked_valid" + shape, "rejected a well-formed matrix");
  const SpmmArgs args{M, K, N, MB, p.values.data(), p.deltas.data(), p.nnz.data(), p.first, x.data(), nullptr, act};
  const size_t mb_index = MB == 1 ? 0 : MB == 2 ? 1 : 2;
  for (const SpmmVariant& v : kSpmmVariants) {  // the scalar reference too, against the dense GEMM
    const std::string problem = spmm_problem(v.blocked[mb_index], args, want, magnitude, act);
    record(problem.empty(), fmt("f32_spmm %s", v.name) + shape, problem);
  }
}

void check_spmm_2of4(size_t M, size_t K, size_t N, float density, int act_kind) {
  const ActParams act = activation(act_kind);
  const spmm_pack::TwoOfFour p = spmm_pack::random_2of4(M, K, density, g_rng);
  const std::vector<float>& w = p.dense;
  std::vector<float> bias(M);
  for (size_t m = 0; m < M; ++m) bias[m] = p.values[m * (1 + K / 2)];
  const std::vector<float> x = random_vector(K * N);
  std::vector<float> want, magnitude;
  dense_reference(w, bias, x, M, K, N, act, want, magnitude);
  const std::string shape = fmt(" M=%zu K=%zu N=%zu density=%g act=%s", M, K, N, density, kActivationNames[act_kind]);
  record(spmm_2of4_valid(M, K, p.index.data(), p.index.size(), p.values.size()), "spmm_2of4_valid" + shape,
         "rejected a well-formed matrix");
  const Spmm2of4Args args{M, K, N, p.values.data(), p.index.data(), x.data(), nullptr, act};
  for (const SpmmVariant& v : kSpmmVariants) {
    const std::string problem = spmm_problem(v.two_of_four, args, want, magnitude, act);
    record(problem.empty(), fmt("f32_spmm_2of4 %s", v.name) + shape, problem);
  }
}

// Every count, delta and first offset pushed out of range, and every array length off by one, is rejected.
void check_spmm_validators(size_t M, size_t K, size_t N, size_t MB) {
  const spmm_pack::Blocked good = spmm_pack::blocked(random_sparse(M, K, 0.5f), random_vector(M), M, K, N, MB);
  const std::string shape = fmt(" M=%zu K=%zu N=%zu MB=%zu", M, K, N, MB);
  auto rejects = [&](const spmm_pack::Blocked& p, const std::string& what, size_t m = 0, size_t n = 0, size_t mb = 0) {
    record(!blocked_valid(p, m ? m : M, K, n ? n : N, mb ? mb : MB), "spmm_blocked_valid" + shape + " " + what,
           "accepted a corrupted matrix");
  };
  const int32_t row_bytes = static_cast<int32_t>(N * sizeof(float));
  for (size_t b = 0; b < good.nnz.size(); ++b)
    for (int64_t change : {int64_t{1}, int64_t{-1}, int64_t(K) + 1, int64_t{0x7fffffff}}) {
      spmm_pack::Blocked p = good;
      if (int64_t(p.nnz[b]) + change < 0) continue;
      p.nnz[b] = static_cast<uint32_t>(int64_t(p.nnz[b]) + change);
      rejects(p, fmt("nnz[%zu] %+lld", b, static_cast<long long>(change)));
    }
  for (size_t i = 0; i + 1 < good.deltas.size(); ++i)
    for (int32_t change : {row_bytes, -row_bytes, 2, -4, INT32_MAX, INT32_MIN}) {
      spmm_pack::Blocked p = good;
      p.deltas[i] = change == INT32_MAX || change == INT32_MIN ? change : p.deltas[i] + change;
      rejects(p, fmt("deltas[%zu] %+d", i, change));
    }
  if (!good.channels.empty()) {
    const auto lowest = *std::min_element(good.channels.begin(), good.channels.end());
    const auto highest = *std::max_element(good.channels.begin(), good.channels.end());
    const int64_t shifts[] = {-int64_t(lowest + 1) * row_bytes, int64_t(K - highest) * row_bytes, 2,
                              INT32_MIN - int64_t(good.first)};
    for (int64_t shift : shifts) {
      spmm_pack::Blocked p = good;
      p.first = static_cast<int32_t>(p.first + shift);
      rejects(p, fmt("first %+lld", static_cast<long long>(shift)));
    }
  } else {
    spmm_pack::Blocked p = good;
    p.first = row_bytes;
    rejects(p, "first of an empty matrix");
  }
  spmm_pack::Blocked p = good;
  p.values.pop_back();
  rejects(p, "values one short");
  p = good, p.values.push_back(0.0f);
  rejects(p, "values one long");
  p = good, p.deltas.pop_back();
  rejects(p, "deltas one short");
  p = good, p.deltas.push_back(0);
  rejects(p, "deltas one long");
  p = good, p.nnz.push_back(0);
  rejects(p, "one block too many");
  rejects(good, "more rows than blocks", M + MB);
  rejects(good, "MB 3", 0, 0, 3);

  // 2:4: every index byte made invalid, lengths off by one, K not a multiple of 4.
  const size_t K4 = 4 * ((K + 3) / 4);
  const spmm_pack::TwoOfFour q = spmm_pack::random_2of4(M, K4, 0.5f, g_rng);
  auto rejects_2of4 = [&](const std::vector<uint8_t>& index, size_t n_values, size_t k, const std::string& what) {
    record(!spmm_2of4_valid(M, k, index.data(), index.size(), n_values), "spmm_2of4_valid" + shape + " " + what,
           "accepted a corrupted matrix");
  };
  for (size_t i = 0; i < q.index.size(); ++i)
    for (uint8_t bad : {0, 5, 10, 15, 1, 4 | 1, 16 | 4, 0xff}) {  // first >= second, or high bits set
      std::vector<uint8_t> index = q.index;
      index[i] = bad;
      rejects_2of4(index, q.values.size(), K4, fmt("index[%zu] = %d", i, bad));
    }
  rejects_2of4(q.index, q.values.size() - 1, K4, "values one short");
  rejects_2of4(q.index, q.values.size() + 1, K4, "values one long");
  rejects_2of4(std::vector<uint8_t>(q.index.begin(), q.index.end() - 1), q.values.size(), K4, "index one short");
  rejects_2of4(q.index, q.values.size(), K4 + 2, "K % 4 != 0");
}

// Rows 0, 1, 2 of 2^30 bytes each: the third starts at 2^31, past an int32 offset, so it is refused; the same
// with rows of 2^29 bytes is accepted.
void check_spmm_validator_offsets() {
  const uint32_t nnz[] = {3};
  const int32_t far[] = {1 << 30, 1 << 30, INT32_MIN, 0}, near[] = {1 << 29, 1 << 29, -(1 << 30), 0};
  record(!spmm_blocked_valid(1, 3, size_t{1} << 28, 1, nnz, 1, far, 4, 0, 1 + 3 + 4),
         "spmm_blocked_valid row offset 2^31", "accepted an offset beyond int32");
  record(spmm_blocked_valid(1, 3, size_t{1} << 27, 1, nnz, 1, near, 4, 0, 1 + 3 + 4),
         "spmm_blocked_valid row offset 2^30", "rejected a well-formed matrix");
}

void check_spmm_all() {
  int act_kind = 0;
  const float densities[] = {0.0f, 0.3f, 1.0f};
  for (size_t M = 1; M <= 9; ++M)
    for (size_t K = 1; K <= 9; ++K)
      for (size_t N = 1; N <= 70; ++N)
        for (float density : densities) {
          for (size_t MB : {1, 2, 4}) check_spmm_blocked(M, K, N, MB, density, act_kind);
          if (K % 4 == 0) check_spmm_2of4(M, K, N, density, act_kind);
          act_kind = (act_kind + 1) % kActivationCount;
        }
  // Every activation on full tiles; many channels and wide rows (several 32-pixel tiles).
  for (int kind = 0; kind < kActivationCount; ++kind)
    for (size_t MB : {1, 2, 4}) check_spmm_blocked(11, 40, 100, MB, 0.5f, kind);
  for (size_t MB : {1, 2, 4}) {
    check_spmm_blocked(37, 150, 197, MB, 0.2f, 1);
    check_spmm_blocked(6, 300, 64, MB, 0.05f, 2);
  }
  check_spmm_2of4(13, 160, 197, 0.9f, 2);
  for (size_t M : {1, 2, 3, 5, 8})
    for (size_t K : {1, 3, 7})
      for (size_t MB : {1, 2, 4}) check_spmm_validators(M, K, 5, MB);
  check_spmm_validator_offsets();
}

}  // namespace

int main() {
  std::printf("kernel isa: %s\n", kernel_isa());
  check_activation_values();
  check_activation_variants();
  check_activation_grad();
  check_softmax();
  check_layer_norm();
  check_gemm_all();
  check_conv_all();
  check_dwconv_3x3_small();
  check_pool_all();
  check_gavgpool_all();
  check_vbinary_all();
  check_spmm_all();
  std::printf("%zu passed, %zu failed\n", g_passed, g_failed);
  return g_failed == 0 ? 0 : 1;
}
