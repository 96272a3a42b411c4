// Depthwise convolution of a small plane as one long vector loop: the padded plane is split into
// SH x SW phase planes of Hq rows x Wq columns, so output (oh, ow) at every tap reads index
// oh * Wq + ow + (tap offset) of one phase plane. All OH * Wq outputs (Wq - OW of each row are
// discarded) then run as a single flat loop without per-row overhead, which dominates the ring on
// 7x7 and 14x14 planes. For a lane type V as in dwconv2d_3x3.h.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstring>

#include "dwconv2d_ring.h"

namespace sparsec {
namespace dwconv2d {

constexpr size_t kFlatFloats = 8192;  // 32 KB of stack: the phase planes plus the flat output

struct FlatLayout {
  size_t Hq, Wq, phase_floats, phases;
};

// Phase planes with kSlack floats after each, read by the last (partial) vector.
template <size_t kSlack>
FlatLayout flat_layout(const Conv2dShape& s) {
  const size_t Hq = s.OH + (s.KH - 1) * s.DH / s.SH, Wq = phase_length(s);
  return {Hq, Wq, Hq * Wq + kSlack, s.SH * s.SW};
}

template <size_t kSlack>
bool flat_fits(const Conv2dShape& s) {
  const FlatLayout l = flat_layout<kSlack>(s);
  return l.phases * l.phase_floats + s.OH * l.Wq + kSlack <= kFlatFloats;
}

template <size_t K, class V>
void flat_plane(const Conv2dShape& s, const float* x, const float* w, float bias, float* y) {
  using T = typename V::T;
  constexpr size_t kL = V::kLanes;
  const FlatLayout l = flat_layout<kL>(s);
  float storage[kFlatFloats];
  float* out = storage + l.phases * l.phase_floats;
  // Padded row r = q * SH + rp goes to row q of phase planes (rp, 0..SW-1).
  for (size_t rp = 0; rp < s.SH; ++rp) {
    float* plane = storage + rp * s.SW * l.phase_floats;
    for (size_t q = 0; q < l.Hq; ++q) {
      const ptrdiff_t ih = static_cast<ptrdiff_t>(q * s.SH + rp) - static_cast<ptrdiff_t>(s.PT);
      const bool inside = ih >= 0 && ih < static_cast<ptrdiff_t>(s.H);
      copy_padded_row(s, inside ? x + ih * s.W : nullptr, l.Wq, l.phase_floats, plane + q * l.Wq);
    }
    for (size_t cp = 0; cp < s.SW; ++cp)  // the slack: finite values for the discarded lanes
      std::fill_n(plane + cp * l.phase_floats + l.Hq * l.Wq, kL, 0.0f);
  }
  const float* taps[K][K];
  T weights[K][K];
  for (size_t kh = 0; kh < K; ++kh)
    for (size_t kw = 0; kw < K; ++kw) {
      const size_t rp = kh * s.DH % s.SH, cp = kw * s.DW % s.SW;
      taps[kh][kw] = storage + (rp * s.SW + cp) * l.phase_floats + kh * s.DH / s.SH * l.Wq +
                     kw * s.DW / s.SW;
      weights[kh][kw] = V::splat(w[kh * K + kw]);
    }
  const T b = V::splat(bias);
  const size_t count = (s.OH - 1) * l.Wq + s.OW;
  for (size_t i = 0; i < count; i += kL) {
    T acc = b;
    for (size_t kh = 0; kh < K; ++kh)
      for (size_t kw = 0; kw < K; ++kw) acc = V::mul_add(acc, V::load(taps[kh][kw] + i), weights[kh][kw]);
    V::store(out + i, acc);
  }
  for (size_t oh = 0; oh < s.OH; ++oh) std::memcpy(y + oh * s.OW, out + oh * l.Wq, s.OW * sizeof(float));
}

}  // namespace dwconv2d
}  // namespace sparsec
