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

inline const char* advance(const char* p, int32_t bytes) { return p + bytes; }

// Pixels [j, j + NV * kLanes) of every row: blocks of MB rows, then the trailing single rows.
template <class V, class Mac, size_t MB, size_t NV>
void blocked_tile(const SpmmArgs& a, const Epilogue& e, size_t j) {
  using T = typename V::T;
  constexpr size_t kTile = NV * V::kLanes;
  const T lo = V::splat(e.lo), hi = V::splat(e.hi);
  const char* xp = advance(reinterpret_cast<const char*>(a.x + j), a.first);
  const float* w = a.values;
  const int32_t* delta = a.deltas;
  const uint32_t* nnz = a.nnz;
  auto block = [&](auto rows, size_t row) {
    constexpr size_t kRows = decltype(rows)::value;
    T acc[kRows][NV];
    for (size_t r = 0; r < kRows; ++r)
      for (size_t v = 0; v < NV; ++v) acc[r][v] = V::splat(w[r]);
    w += kRows;
    for (uint32_t n = *nnz++; n != 0; --n) {
      const float* xrow = reinterpret_cast<const float*>(xp);
      T x[NV];
      for (size_t v = 0; v < NV; ++v) x[v] = V::load(xrow + v * V::kLanes);
      const auto wv = Mac::template load<kRows>(w);
      w += kRows;
      xp = advance(xp, *delta++);
      unroll(std::make_index_sequence<kRows>(), [&](auto r) {
        for (size_t v = 0; v < NV; ++v) acc[r][v] = Mac::template fma<decltype(r)::value>(acc[r][v], x[v], wv);
      });
    }
    for (size_t r = 0; r < kRows; ++r) {
      float* y = a.y + (row + r) * a.N + j;
      for (size_t v = 0; v < NV; ++v) V::store(y + v * V::kLanes, V::clamp(acc[r][v], lo, hi));
      if (e.after) f32_activation__portable(a.act, y, kTile);
    }
  };
  const size_t full = a.M / MB;
  for (size_t b = 0; b < full; ++b) block(std::integral_constant<size_t, MB>{}, b * MB);
  for (size_t row = full * MB; row < a.M; ++row) block(std::integral_constant<size_t, 1>{}, row);
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

// The tiles narrower than NV vectors at the row end: one of each halving width with pixels left.
template <class V, class Mac, size_t NV, class Tiles>
void tail_tiles(size_t n, size_t& j, const Tiles& tiles) {
  if constexpr (NV > 0) {
    if (n - j >= NV * V::kLanes) {
      tiles.template run<V, Mac, NV>(j);
      j += NV * V::kLanes;
    }
    tail_tiles<V, Mac, NV / 2>(n, j, tiles);
  }
}

// Pixels [0, n) in tiles of kMaxNV vectors, then halving down to one vector, then to one float.
template <class V, class Mac, size_t kMaxNV, class Tiles>
void for_tiles(size_t n, const Tiles& tiles) {
  static_assert((kMaxNV & (kMaxNV - 1)) == 0, "the halving tail covers any remainder of a power of two");
  size_t j = 0;
  for (; j + kMaxNV * V::kLanes <= n; j += kMaxNV * V::kLanes) tiles.template run<V, Mac, kMaxNV>(j);
  tail_tiles<V, Mac, kMaxNV / 2>(n, j, tiles);
  tail_tiles<F32x1, SplatMac<F32x1>, V::kLanes / 2>(n, j, tiles);
}

template <class V, class Mac, size_t MB, size_t kMaxNV>
void blocked(const SpmmArgs& a) {
  for_tiles<V, Mac, kMaxNV>(a.N, BlockedTiles<MB>{a, Epilogue(a.act)});
}

template <class V, class Mac, size_t kMaxNV>
void two_of_four(const Spmm2of4Args& a) {
  for_tiles<V, Mac, kMaxNV>(a.N, TwoOfFourTiles{a, Epilogue(a.act)});
}

}  // namespace spmm
}  // namespace sparsec
