// SpMM microkernels (sparsec/spmm.h) for any lane type V with T, kLanes, load, store, splat and
// clamp(x, lo, hi), and a multiply-add policy Mac: Mac::load<MB>(w) reads the MB weights of one kept
// channel into a register form W, Mac::fma<R>(acc, x, W) returns acc + x * w[R] (R a constant, so NEON
// can multiply by a lane). Each ISA's file instantiates them; pixel tiles halve down to one float.
#pragma once
#include <cstring>
#include <limits>
#include <utility>

#include "sparsec/spmm.h"

namespace sparsec {
namespace spmm {

// One float: the lane type of the tiles narrower than a vector.
struct F32x1 {
  using T = float;
  static constexpr size_t kLanes = 1;
  static T load(const float* p) { return *p; }
  static void store(float* p, T v) { *p = v; }
  static T splat(float x) { return x; }
  static T clamp(T x, T lo, T hi) {
    const T low = x < lo ? lo : x;  // NaN stays NaN, as std::min(std::max(x, lo), hi)
    return hi < low ? hi : low;
  }
};

// Weights as MB splatted registers (ISAs without a multiply by lane).
template <class V>
struct SplatMac {
  using T = typename V::T;
  template <size_t MB>
  struct W {
    T w[MB];
  };
  template <size_t MB>
  static W<MB> load(const float* w) {
    W<MB> r;
    for (size_t i = 0; i < MB; ++i) r.w[i] = V::splat(w[i]);
    return r;
  }
  template <size_t R, class Weights>
  static T fma(T acc, T x, const Weights& w) {
    return acc + x * w.w[R];
  }
};

template <size_t... R, class F>
inline void unroll(std::index_sequence<R...>, F f) {
  (f(std::integral_constant<size_t, R>{}), ...);
}

// The clamp the epilogue applies in registers; other activations run over the stored tile.
struct Epilogue {
  float lo = -std::numeric_limits<float>::infinity(), hi = std::numeric_limits<float>::infinity();
  bool after = false;  // f32_activation__portable on each stored row segment
  explicit Epilogue(const ActParams& act) {
    if (act.kind == Activation::kRelu) lo = 0.0f;
    else if (act.kind == Activation::kClip) lo = act.a, hi = act.b;
    else after = act.kind != Activation::kNone;
  }
};

// Pixels [j, j + NV * kLanes) of the M / MB full blocks of MB rows (the rest: trailing_rows).
template <class V, class Mac, size_t MB, size_t NV>
void blocked_tile(const SpmmArgs& a, const Epilogue& e, size_t j) {
  using T = typename V::T;
  constexpr size_t kTile = NV * V::kLanes;
  const T lo = V::splat(e.lo), hi = V::splat(e.hi);
  const char* xp = reinterpret_cast<const char*>(a.x + j) + a.first;
  const float* w = a.values;
  const int32_t* delta = a.deltas;
  for (size_t b = 0; b < a.M / MB; ++b) {
    T acc[MB][NV];
    for (size_t r = 0; r < MB; ++r)
      for (size_t v = 0; v < NV; ++v) acc[r][v] = V::splat(w[r]);
    w += MB;
    for (uint32_t n = a.nnz[b]; n != 0; --n) {
      const float* xrow = reinterpret_cast<const float*>(xp);
      T x[NV];
      for (size_t v = 0; v < NV; ++v) x[v] = V::load(xrow + v * V::kLanes);
      const auto wv = Mac::template load<MB>(w);
      w += MB;
      xp += *delta++;
      unroll(std::make_index_sequence<MB>(), [&](auto r) {
        for (size_t v = 0; v < NV; ++v) acc[r][v] = Mac::template fma<decltype(r)::value>(acc[r][v], x[v], wv);
      });
    }
    for (size_t r = 0; r < MB; ++r) {
      float* y = a.y + (b * MB + r) * a.N + j;
      for (size_t v = 0; v < NV; ++v) V::store(y + v * V::kLanes, V::clamp(acc[r][v], lo, hi));
      if (e.after) f32_activation__portable(a.act, y, kTile);
    }
  }
}

// The trailing M % MB single-row blocks as a matrix of their own (MB 1), for the one-row kernel.
inline SpmmArgs trailing_rows(const SpmmArgs& a) {
  const size_t full = a.M / a.MB;
  size_t kept = 0;
  for (size_t b = 0; b < full; ++b) kept += a.nnz[b];
  int64_t first = a.first;  // a valid matrix's rows stay within int32 byte offsets
  for (size_t i = 0; i < kept; ++i) first += a.deltas[i];
  SpmmArgs rest = a;
  rest.M = a.M % a.MB;
  rest.MB = 1;
  rest.values = a.values + full * a.MB + kept * a.MB;
  rest.deltas = a.deltas + kept;
  rest.nnz = a.nnz + full;
  rest.first = static_cast<int32_t>(first);
  rest.y = a.y + full * a.MB * a.N;
  return rest;
}

// Pixels [j, j + NV * kLanes) of every row of a 2:4 matrix: per group of 4 input channels, two rows of X.
template <class V, class Mac, size_t NV>
void two_of_four_tile(const Spmm2of4Args& a, const Epilogue& e, size_t j) {
  using T = typename V::T;
  constexpr size_t kTile = NV * V::kLanes;
  const T lo = V::splat(e.lo), hi = V::splat(e.hi);
  const size_t groups = a.K / 4, row_bytes = a.N * sizeof(float);
  const float* w = a.values;
  const uint8_t* index = a.index;
  for (size_t m = 0; m < a.M; ++m) {
    T acc[NV];
    for (size_t v = 0; v < NV; ++v) acc[v] = V::splat(*w);
    ++w;
    const char* xg = reinterpret_cast<const char*>(a.x + j);
    for (size_t g = 0; g < groups; ++g) {
      const unsigned pair = *index++;
      const float* x0 = reinterpret_cast<const float*>(xg + (pair & 3) * row_bytes);
      const float* x1 = reinterpret_cast<const float*>(xg + (pair >> 2) * row_bytes);
      const auto wv = Mac::template load<2>(w);
      w += 2;
      xg += 4 * row_bytes;
      for (size_t v = 0; v < NV; ++v) acc[v] = Mac::template fma<0>(acc[v], V::load(x0 + v * V::kLanes), wv);
      for (size_t v = 0; v < NV; ++v) acc[v] = Mac::template fma<1>(acc[v], V::load(x1 + v * V::kLanes), wv);
    }
    float* y = a.y + m * a.N + j;
    for (size_t v = 0; v < NV; ++v) V::store(y + v * V::kLanes, V::clamp(acc[v], lo, hi));
    if (e.after) f32_activation__portable(a.act, y, kTile);
  }
}

template <size_t MB>
struct BlockedTiles {
  const SpmmArgs& a;
  Epilogue e;
  template <class V, class Mac, size_t NV>
  void run(size_t j) const { blocked_tile<V, Mac, MB, NV>(a, e, j); }
};

struct TwoOfFourTiles {
  const Spmm2of4Args& a;
  Epilogue e;
  template <class V, class Mac, size_t NV>
  void run(size_t j) const { two_of_four_tile<V, Mac, NV>(a, e, j); }
};

// Pixels [0, n) in tiles of kMaxNV vectors, then of one vector, then of one float: three tile widths, not a
// halving series of them (code size: each width is a copy of the kernel, and the wasm runtime is small).
template <class V, class Mac, size_t kMaxNV, class Tiles>
void for_tiles(size_t n, const Tiles& tiles) {
  size_t j = 0;
  for (; j + kMaxNV * V::kLanes <= n; j += kMaxNV * V::kLanes) tiles.template run<V, Mac, kMaxNV>(j);
  if constexpr (kMaxNV > 1)
    for (; j + V::kLanes <= n; j += V::kLanes) tiles.template run<V, Mac, 1>(j);
  for (; j < n; ++j) tiles.template run<F32x1, SplatMac<F32x1>, 1>(j);
}

// MB-row blocks, then the trailing M % MB rows by one_row (this ISA's MB 1 kernel).
template <class V, class Mac, size_t MB, size_t kMaxNV>
void blocked(const SpmmArgs& a, void (*one_row)(const SpmmArgs&)) {
  for_tiles<V, Mac, kMaxNV>(a.N, BlockedTiles<MB>{a, Epilogue(a.act)});
  if (MB > 1 && a.M % MB != 0) one_row(trailing_rows(a));
}

template <class V, class Mac, size_t kMaxNV>
void two_of_four(const Spmm2of4Args& a) {
  for_tiles<V, Mac, kMaxNV>(a.N, TwoOfFourTiles{a, Epilogue(a.act)});
}

}  // namespace spmm
}  // namespace sparsec
