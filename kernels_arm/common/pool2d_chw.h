// Pooling on NCHW planes vectorised along the output row, for any lane type V with:
//   T, kLanes, load(p), load_even(p) (p[0], p[2], ...; reads up to p[2 * kLanes - 1]),
//   gather(p, stride), splat(x), store(p, v), add, div, max_ignoring_nan(acc, v) (acc < v ? v : acc),
//   sum(v) (all lanes added). Each ISA's file instantiates these with its own V.
#pragma once
#include <algorithm>
#include <limits>

#include "../ref/pool2d_window.h"

namespace sparsec {
namespace pool2d {

enum class Step { kOne, kTwo, kAny };  // input columns between neighbouring outputs

template <class V, Step kStep>
inline typename V::T load_columns(const float* p, size_t stride) {
  if constexpr (kStep == Step::kOne) return V::load(p);
  else if constexpr (kStep == Step::kTwo) return V::load_even(p);
  else return V::gather(p, stride);
}

// Output columns [*lo, *hi) whose window row lies inside [0, W), counting the extra column a
// stride-2 vector read touches: these need no padding checks.
inline void interior_columns(const Pool2dShape& s, size_t* lo, size_t* hi) {
  *lo = std::min(s.OW, (s.PL + s.SW - 1) / s.SW);
  const size_t reach = (s.KW - 1) * s.DW + (s.SW == 2 ? 1 : 0);  // last column read - window start
  *hi = s.W + s.PL <= reach ? *lo : std::max(*lo, std::min(s.OW, (s.W + s.PL - reach - 1) / s.SW + 1));
}

// One output at a left or right edge, the taps inside the image found once (taps [kh_lo, kh_hi)
// of the row, count_h of them counted by the average) instead of checked one by one.
template <bool kMax>
__attribute__((noinline)) float edge_output(const Pool2dShape& s, const float* x, ptrdiff_t h0,
                                            size_t kh_lo, size_t kh_hi, size_t count_h, size_t ow) {
  const ptrdiff_t w0 = window_start(ow, s.SW, s.PL), W = static_cast<ptrdiff_t>(s.W);
  size_t kw_lo, kw_hi;
  tap_range(w0, s.KW, s.DW, 0, W, &kw_lo, &kw_hi);
  float acc = kMax ? -std::numeric_limits<float>::infinity() : 0.0f;
  for (size_t kh = kh_lo; kh < kh_hi; ++kh) {
    const ptrdiff_t row = (h0 + static_cast<ptrdiff_t>(kh * s.DH)) * W + w0;
    for (size_t kw = kw_lo; kw < kw_hi; ++kw) {
      const float v = x[row + static_cast<ptrdiff_t>(kw * s.DW)];
      acc = kMax ? max_ignoring_nan(acc, v) : acc + v;
    }
  }
  if (kMax) return acc;
  const size_t count = count_h * divisor_taps(w0, s.KW, s.DW, s.W, s.PL, s.PR, s.count_include_pad);
  return count > 0 ? acc / static_cast<float>(count) : 0.0f;
}

// One output row: edge outputs one by one, interior ones kLanes at a time with the taps in the
// reference's order (so sums match it exactly).
template <class V, bool kMax, Step kStep>
void pool_row(const Pool2dShape& s, const float* x, size_t oh, size_t lo, size_t hi, float* y) {
  using T = typename V::T;
  const ptrdiff_t h0 = window_start(oh, s.SH, s.PT);
  size_t kh_lo, kh_hi;  // taps whose input row is inside the image
  tap_range(h0, s.KH, s.DH, 0, static_cast<ptrdiff_t>(s.H), &kh_lo, &kh_hi);
  // Interior columns have every kw tap inside; an empty window (count 0) averages to 0, not 0/0.
  const size_t count_h = divisor_taps(h0, s.KH, s.DH, s.H, s.PT, s.PB, s.count_include_pad);
  const T divisor = V::splat(count_h > 0 ? static_cast<float>(count_h * s.KW) : 1.0f);
  const T init = V::splat(kMax ? -std::numeric_limits<float>::infinity() : 0.0f);
  // Locals, not s.*: stores to y could alias s as far as the compiler knows, and it would
  // reload every field per block.
  const size_t KW = s.KW, SW = s.SW, DW = s.DW, PL = s.PL, row_step = s.DH * s.W;
  const ptrdiff_t first_row = (h0 + static_cast<ptrdiff_t>(kh_lo * s.DH)) * static_cast<ptrdiff_t>(s.W);
  auto block = [&](size_t ow) {
    ptrdiff_t at = first_row + static_cast<ptrdiff_t>(ow * SW - PL);  // window's first input
    T acc = init;
    for (size_t kh = kh_lo; kh < kh_hi; ++kh, at += row_step) {
      for (size_t kw = 0; kw < KW; ++kw) {
        const T v = load_columns<V, kStep>(x + at + kw * DW, SW);
        if constexpr (kMax) acc = V::max_ignoring_nan(acc, v);
        else acc = V::add(acc, v);
      }
    }
    if constexpr (!kMax) acc = V::div(acc, divisor);
    V::store(y + ow, acc);
  };
  size_t ow = 0;
  for (; ow < lo; ++ow) y[ow] = edge_output<kMax>(s, x, h0, kh_lo, kh_hi, count_h, ow);
  if (hi - lo >= V::kLanes) {
    // The last block ends at hi, recomputing a few outputs (same values); one call site of
    // block() keeps wasm32 code small.
    for (size_t at = lo;; at += V::kLanes) {
      const size_t start = std::min(at, hi - V::kLanes);
      block(start);
      if (start + V::kLanes == hi) break;
    }
    ow = hi;
  }
  for (; ow < s.OW; ++ow) y[ow] = edge_output<kMax>(s, x, h0, kh_lo, kh_hi, count_h, ow);
}

template <class V, bool kMax, Step kStep>
void pool_planes(const Pool2dShape& s, size_t planes, const float* x, float* y) {
  size_t lo, hi;
  interior_columns(s, &lo, &hi);
  for (size_t p = 0; p < planes; ++p, x += s.H * s.W)
    for (size_t oh = 0; oh < s.OH; ++oh, y += s.OW) pool_row<V, kMax, kStep>(s, x, oh, lo, hi, y);
}

// The stride is fixed per call, so it is chosen once: contiguous, deinterleaved or gathered loads.
template <class V, bool kMax>
void pool2d_chw(const Pool2dShape& s, size_t planes, const float* x, float* y) {
  if (s.SW == 1) pool_planes<V, kMax, Step::kOne>(s, planes, x, y);
  else if (s.SW == 2) pool_planes<V, kMax, Step::kTwo>(s, planes, x, y);
  else pool_planes<V, kMax, Step::kAny>(s, planes, x, y);
}

// Two accumulators (2 * kLanes values per step) hide the add latency.
template <class V>
void gavgpool_cw(size_t channels, size_t n, const float* x, float* y) {
  using T = typename V::T;
  for (size_t c = 0; c < channels; ++c, x += n) {
    T acc0 = V::splat(0.0f), acc1 = V::splat(0.0f);
    size_t i = 0;
    for (; i + 2 * V::kLanes <= n; i += 2 * V::kLanes) {
      acc0 = V::add(acc0, V::load(x + i));
      acc1 = V::add(acc1, V::load(x + i + V::kLanes));
    }
    if (i + V::kLanes <= n) acc0 = V::add(acc0, V::load(x + i)), i += V::kLanes;
    float sum = V::sum(V::add(acc0, acc1));
    for (; i < n; ++i) sum += x[i];
    y[c] = sum / static_cast<float>(n);
  }
}

}  // namespace pool2d
}  // namespace sparsec
