// Depthwise convolution of small planes, kLanes channels at a time: their padded planes are
// interleaved (one vector per pixel holds the channels), so every output pixel is K * K vector
// FMAs with per-channel weight vectors and nothing is wasted on row edges or short rows; the
// result is de-interleaved into the planes. For a lane type V as in dwconv2d_3x3.h.
#pragma once
#include <algorithm>
#include <cstddef>

#include "sparsec/kernels.h"

namespace sparsec {
namespace dwconv2d {

constexpr size_t kInterleavedFloats = 16384;  // 64 KB of stack: padded input plus output pixels

// Padded extent the windows of `out` outputs span.
inline size_t padded_extent(size_t out, size_t k, size_t stride, size_t dilation) {
  return (out - 1) * stride + (k - 1) * dilation + 1;
}

// Output rows per band whose padded input and output pixels fit the buffer; 0 if not even one.
template <size_t kLanes>
size_t band_rows(const Conv2dShape& s) {
  const size_t Wp = padded_extent(s.OW, s.KW, s.SW, s.DW);
  auto fits = [&](size_t rows) {
    return (padded_extent(rows, s.KH, s.SH, s.DH) * Wp + rows * s.OW) * kLanes <= kInterleavedFloats;
  };
  size_t rows = s.OH;
  while (rows > 0 && !fits(rows)) --rows;
  return rows;
}

// r[i][j] -> r[j][i] for 8 x 8 floats in 8 vectors (unpack, 2 x 2 blocks, then 128-bit halves).
template <class T>
inline __attribute__((always_inline)) void transpose8(T (&r)[8]) {  // inlined: r stays in registers
  T t[8], u[8];
  for (size_t i = 0; i < 8; i += 2) {
    t[i] = __builtin_shufflevector(r[i], r[i + 1], 0, 8, 1, 9, 4, 12, 5, 13);
    t[i + 1] = __builtin_shufflevector(r[i], r[i + 1], 2, 10, 3, 11, 6, 14, 7, 15);
  }
  for (size_t i = 0; i < 8; i += 4)
    for (size_t h = 0; h < 2; ++h) {
      u[i + 2 * h] = __builtin_shufflevector(t[i + h], t[i + h + 2], 0, 1, 8, 9, 4, 5, 12, 13);
      u[i + 2 * h + 1] = __builtin_shufflevector(t[i + h], t[i + h + 2], 2, 3, 10, 11, 6, 7, 14, 15);
    }
  for (size_t j = 0; j < 4; ++j) {
    r[j] = __builtin_shufflevector(u[j], u[j + 4], 0, 1, 2, 3, 8, 9, 10, 11);
    r[j + 4] = __builtin_shufflevector(u[j], u[j + 4], 4, 5, 6, 7, 12, 13, 14, 15);
  }
}

// Output rows oh0 .. oh1 - 1 of channels c0 .. c0 + nc - 1 (nc <= kLanes) of one image, clamped
// to clamp[0], clamp[1] if given.
template <size_t K, class V>
void interleaved_band(const Conv2dShape& s, size_t c0, size_t nc, size_t oh0, size_t oh1, const float* x,
                      const float* w, const float* bias, const float* clamp, float* y) {
  using T = typename V::T;
  constexpr size_t L = V::kLanes;
  const size_t Hp = padded_extent(oh1 - oh0, K, s.SH, s.DH), Wp = padded_extent(s.OW, K, s.SW, s.DW);
  float storage[kInterleavedFloats];
  float* padded = storage;
  float* out = storage + Hp * Wp * L;
  std::fill(padded, padded + Hp * Wp * L, 0.0f);
  const size_t cols = std::min(s.W, Wp > s.PL ? Wp - s.PL : 0);
  static_assert(L == 8, "the transposes are 8 x 8");
  const float* planes[L];
  for (size_t c = 0; c < L; ++c) planes[c] = x + (c0 + std::min(c, nc - 1)) * s.H * s.W;  // spare lanes: any channel
  for (size_t r = 0; r < Hp; ++r) {  // padded row oh0 * SH + r
    const ptrdiff_t ih = static_cast<ptrdiff_t>(oh0 * s.SH + r) - static_cast<ptrdiff_t>(s.PT);
    if (ih < 0 || ih >= static_cast<ptrdiff_t>(s.H)) continue;
    float* row = padded + (r * Wp + s.PL) * L;
    size_t iw = 0;
    for (; iw + L <= cols; iw += L) {
      T block[L];
      for (size_t c = 0; c < L; ++c) block[c] = V::load(planes[c] + ih * s.W + iw);
      transpose8(block);
      for (size_t j = 0; j < L; ++j) V::store(row + (iw + j) * L, block[j]);
    }
    for (; iw < cols; ++iw)
      for (size_t c = 0; c < L; ++c) row[iw * L + c] = planes[c][ih * s.W + iw];
  }
  T weights[K][K], b;
  const T lo = V::splat(clamp ? clamp[0] : 0.0f), hi = V::splat(clamp ? clamp[1] : 0.0f);
  for (size_t lane = 0; lane < L; ++lane) {
    const bool used = lane < nc;
    b[lane] = used && bias ? bias[c0 + lane] : 0.0f;
    for (size_t kh = 0; kh < K; ++kh)
      for (size_t kw = 0; kw < K; ++kw) weights[kh][kw][lane] = used ? w[(c0 + lane) * K * K + kh * K + kw] : 0.0f;
  }
  for (size_t oh = 0; oh < oh1 - oh0; ++oh) {
    for (size_t ow = 0; ow < s.OW; ++ow) {
      const float* window = padded + (oh * s.SH * Wp + ow * s.SW) * L;
      T acc = b;
      for (size_t kh = 0; kh < K; ++kh)
        for (size_t kw = 0; kw < K; ++kw)
          acc = V::mul_add(acc, V::load(window + (kh * s.DH * Wp + kw * s.DW) * L), weights[kh][kw]);
      V::store(out + (oh * s.OW + ow) * L, clamp ? V::clamp(acc, lo, hi) : acc);
    }
  }
  const size_t pixels = (oh1 - oh0) * s.OW, plane = s.OH * s.OW;
  float* y_band = y + c0 * plane + oh0 * s.OW;
  size_t p = 0;
  for (; p + L <= pixels; p += L) {
    T block[L];
    for (size_t j = 0; j < L; ++j) block[j] = V::load(out + (p + j) * L);
    transpose8(block);
    for (size_t c = 0; c < nc; ++c) V::store(y_band + c * plane + p, block[c]);
  }
  for (; p < pixels; ++p)
    for (size_t c = 0; c < nc; ++c) y_band[c * plane + p] = out[p * L + c];
}

// Every channel, kLanes at a time; clamped in registers when clamp is given (ReLU, Clip), else
// act over the planes.
// Needs band_rows(s) > 0.
template <size_t K, class V>
void interleaved(const Conv2dShape& s, const float* x, const float* w, const float* bias,
                 const ActParams& act, const float* clamp, float* y) {
  const size_t band = band_rows<V::kLanes>(s);
  for (size_t c0 = 0; c0 < s.C; c0 += V::kLanes)
    for (size_t oh0 = 0; oh0 < s.OH; oh0 += band)
      interleaved_band<K, V>(s, c0, std::min(V::kLanes, s.C - c0), oh0, std::min(s.OH, oh0 + band), x, w, bias,
                             clamp, y);
  if (!clamp) f32_activation__portable(act, y, s.C * s.OH * s.OW);
}

}  // namespace dwconv2d
}  // namespace sparsec
