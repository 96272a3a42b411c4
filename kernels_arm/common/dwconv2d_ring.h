// Depthwise convolution by planes: input rows go once into a small zero-padded ring so every
// output row is one bounds-free pass along OW; rows too wide for the ring take one pass per tap.
// Shared by the portable kernel (any K) and the NEON / SIMD128 3x3 kernels.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstring>

#include "sparsec/kernels.h"

namespace sparsec {
namespace dwconv2d {

constexpr size_t kRingFloats = 4096;  // 16 KB of stack: the rows of one window plus a zero row

inline ptrdiff_t input_row(const Conv2dShape& s, size_t oh, size_t kh) {
  return static_cast<ptrdiff_t>(oh * s.SH + kh * s.DH) - static_cast<ptrdiff_t>(s.PT);
}

// A padded row (input columns shifted right by PL, zeros outside) is stored as SW phases:
// phase p holds padded columns p, p + SW, ... Output ow at tap kw reads padded column
// ow * SW + kw * DW, i.e. phase (kw * DW) % SW at index ow + (kw * DW) / SW: contiguous in ow
// for every stride.
inline size_t phase_length(const Conv2dShape& s) { return s.OW + (s.KW - 1) * s.DW / s.SW; }
inline size_t row_floats(const Conv2dShape& s) { return s.SW * phase_length(s); }

// Rows one window spans; the ring keeps exactly these.
inline size_t window_rows(const Conv2dShape& s) { return (s.KH - 1) * s.DH + 1; }

inline bool ring_fits(const Conv2dShape& s) {
  return (window_rows(s) + 1) * row_floats(s) <= kRingFloats;
}

// out[i] = in[i * step]; kStep 1 or 2 fixes the step at compile time so the loop vectorises.
template <size_t kStep>
void gather(const float* in, size_t step, size_t n, float* out) {
  const size_t stride = kStep ? kStep : step;
  for (size_t i = 0; i < n; ++i) out[i] = in[i * stride];
}

// Phase-split padded copies of the input rows the current output row reads; row ih lives in
// slot ih % slots, and rows only move forward, so a held row is never overwritten while needed.
class RowRing {
 public:
  RowRing(const Conv2dShape& s, const float* x, float* storage)
      : s_(s), x_(x), phase_length_(phase_length(s)), row_floats_(row_floats(s)),
        slots_(window_rows(s)), storage_(storage), zero_row_(storage + slots_ * row_floats_) {
    std::fill(zero_row_, zero_row_ + row_floats_, 0.0f);
  }

  // Points rows[kh] at the stored input row tap kh reads for output row oh.
  template <size_t KH>
  void window(size_t oh, const float* (&rows)[KH]) {
    const ptrdiff_t first = input_row(s_, oh, 0), last = input_row(s_, oh, KH - 1);
    const ptrdiff_t copy_to = std::min(last, static_cast<ptrdiff_t>(s_.H) - 1);
    for (ptrdiff_t ih = std::max({next_, first, ptrdiff_t{0}}); ih <= copy_to; ++ih) copy_row(ih);
    next_ = std::max(next_, last + 1);
    for (size_t kh = 0; kh < KH; ++kh) {
      const ptrdiff_t ih = input_row(s_, oh, kh);
      rows[kh] = ih < 0 || ih >= static_cast<ptrdiff_t>(s_.H) ? zero_row_ : slot(ih);
    }
  }

 private:
  float* slot(ptrdiff_t ih) { return storage_ + static_cast<size_t>(ih) % slots_ * row_floats_; }

  void copy_row(ptrdiff_t ih) {
    const float* src = x_ + ih * s_.W;
    const size_t stride = s_.SW, pad = s_.PL, n = phase_length_;
    for (size_t phase = 0; phase < stride; ++phase) {
      float* out = slot(ih) + phase * n;
      // Entries i whose padded column i * stride + phase holds an input column.
      const size_t lo = phase >= pad ? 0 : std::min(n, (pad - phase + stride - 1) / stride);
      const size_t end = pad + s_.W > phase ? (pad + s_.W - phase - 1) / stride + 1 : 0;
      const size_t hi = std::max(lo, std::min(n, end));
      std::fill(out, out + lo, 0.0f);
      std::fill(out + hi, out + n, 0.0f);
      if (hi == lo) continue;
      const float* in = src + (lo * stride + phase - pad);
      if (stride == 1) gather<1>(in, 1, hi - lo, out + lo);
      else if (stride == 2) gather<2>(in, 2, hi - lo, out + lo);
      else gather<0>(in, stride, hi - lo, out + lo);
    }
  }

  const Conv2dShape& s_;
  const float* x_;
  size_t phase_length_, row_floats_, slots_;
  float* storage_;
  float* zero_row_;
  ptrdiff_t next_ = 0;  // first input row not copied yet
};

// One output row of a K x K kernel: the taps unroll inside the OW loop, which vectorises with
// contiguous loads and one store per output. Explicit-ISA rows keep this order of the sums.
template <size_t K>
struct GenericRow {
  static void run(const float* const (&rows)[K], const float (&weights)[K][K],
                  const size_t (&tap_offsets)[K], float bias, size_t OW, float* y_row) {
    for (size_t ow = 0; ow < OW; ++ow) {
      float acc = bias;
      for (size_t kh = 0; kh < K; ++kh)
        for (size_t kw = 0; kw < K; ++kw) acc += weights[kh][kw] * rows[kh][tap_offsets[kw] + ow];
      y_row[ow] = acc;
    }
  }
};

// A plane through the ring, one output row at a time by Row::run (GenericRow or an ISA's).
template <size_t K, class Row = GenericRow<K>>
void ring_plane(const Conv2dShape& s, const float* x, const float* w, float bias, float* y) {
  float storage[kRingFloats];
  RowRing ring(s, x, storage);
  float weights[K][K];  // local copy: stores to y could alias w as far as the compiler knows
  std::memcpy(weights, w, sizeof weights);
  size_t tap_offsets[K];
  for (size_t kw = 0; kw < K; ++kw)
    tap_offsets[kw] = kw * s.DW % s.SW * phase_length(s) + kw * s.DW / s.SW;
  for (size_t oh = 0; oh < s.OH; ++oh) {
    const float* rows[K];
    ring.window(oh, rows);
    Row::run(rows, weights, tap_offsets, bias, s.OW, y + oh * s.OW);
  }
}

// Any kernel size, or rows too wide for the ring: one pass per tap over the outputs whose
// input for that tap is inside the image, so padding needs no per-element checks.
inline void clipped_plane(const Conv2dShape& s, const float* x, const float* w, float bias,
                          float* y) {
  for (size_t oh = 0; oh < s.OH; ++oh) {
    float* y_row = y + oh * s.OW;
    std::fill(y_row, y_row + s.OW, bias);
    for (size_t kh = 0; kh < s.KH; ++kh) {
      const ptrdiff_t ih = input_row(s, oh, kh);
      if (ih < 0 || ih >= static_cast<ptrdiff_t>(s.H)) continue;
      const float* x_row = x + ih * s.W;
      for (size_t kw = 0; kw < s.KW; ++kw) {
        // Outputs ow in [lo, hi) read column ow * SW + kw * DW - PL inside [0, W).
        const size_t shift = kw * s.DW;
        const size_t lo = shift >= s.PL ? 0 : (s.PL - shift + s.SW - 1) / s.SW;
        const size_t hi =
            s.W + s.PL <= shift ? 0 : std::min(s.OW, (s.W + s.PL - shift - 1) / s.SW + 1);
        const float weight = w[kh * s.KW + kw];
        for (size_t ow = lo; ow < hi; ++ow) y_row[ow] += weight * x_row[ow * s.SW + shift - s.PL];
      }
    }
  }
}

using PlaneFn = void (*)(const Conv2dShape&, const float*, const float*, float, float*);

// Every channel's plane, bias and activation (fused as a pass over the plane just written).
inline void planes(PlaneFn plane, const Conv2dShape& s, const float* x, const float* w,
                   const float* bias, const ActParams& act, float* y) {
  if (s.OH == 0 || s.OW == 0) return;
  const size_t in_plane = s.H * s.W, out_plane = s.OH * s.OW, taps = s.KH * s.KW;
  for (size_t c = 0; c < s.C; ++c) {
    plane(s, x + c * in_plane, w + c * taps, bias ? bias[c] : 0.0f, y + c * out_plane);
    f32_activation__portable(act, y + c * out_plane, out_plane);
  }
}

}  // namespace dwconv2d
}  // namespace sparsec
