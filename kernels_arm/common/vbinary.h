// Element-wise binary microkernels for any lane type V with T, kLanes, load, store, splat, add,
// sub, mul, div and clamp(x, lo, hi) (a NaN x stays NaN, as std::min(std::max(x, lo), hi)).
// Each ISA's file instantiates them with its own V; F32x1 is the scalar reference's.
#pragma once
#include <algorithm>
#include <cstring>
#include <limits>

#include "sparsec/kernels.h"

namespace sparsec {
namespace vbinary {

// Plain floats, for the scalar reference's combine().
struct F32x1 {
  using T = float;
  static T add(T a, T b) { return a + b; }
  static T sub(T a, T b) { return a - b; }
  static T mul(T a, T b) { return a * b; }
  static T div(T a, T b) { return a / b; }
};

template <class V, BinaryKind kKind>
inline typename V::T combine(typename V::T a, typename V::T b) {
  if constexpr (kKind == BinaryKind::kAdd) return V::add(a, b);
  else if constexpr (kKind == BinaryKind::kSub) return V::sub(a, b);
  else if constexpr (kKind == BinaryKind::kMul) return V::mul(a, b);
  else return V::div(a, b);
}

// y[0, n): 2 * kLanes values per step, then kLanes; the last n % kLanes go through one vector
// in a stack buffer, so no read passes an operand's end and the tail is not a second loop.
template <class V, BinaryKind kKind, BinaryShape kShape>
void lanes(size_t n, const float* a, const float* b, float* y, float lo, float hi) {
  using T = typename V::T;
  constexpr bool kScalarA = kShape == BinaryShape::kScalarA, kScalarB = kShape == BinaryShape::kScalarB;
  const T vlo = V::splat(lo), vhi = V::splat(hi);
  const T va = kScalarA ? V::splat(*a) : vlo, vb = kScalarB ? V::splat(*b) : vlo;
  auto one = [&](const float* ai, const float* bi, float* yi) {
    const T x = kScalarA ? va : V::load(ai), z = kScalarB ? vb : V::load(bi);
    V::store(yi, V::clamp(combine<V, kKind>(x, z), vlo, vhi));
  };
  size_t i = 0;
  for (; i + 2 * V::kLanes <= n; i += 2 * V::kLanes) {
    one(a + (kScalarA ? 0 : i), b + (kScalarB ? 0 : i), y + i);
    one(a + (kScalarA ? 0 : i + V::kLanes), b + (kScalarB ? 0 : i + V::kLanes), y + i + V::kLanes);
  }
  for (; i + V::kLanes <= n; i += V::kLanes) one(a + (kScalarA ? 0 : i), b + (kScalarB ? 0 : i), y + i);
  if (i == n) return;
  float ta[V::kLanes] = {}, tb[V::kLanes] = {}, ty[V::kLanes];  // unused lanes are 0 (0/0 traps nothing)
  if (!kScalarA) std::memcpy(ta, a + i, (n - i) * sizeof(float));
  if (!kScalarB) std::memcpy(tb, b + i, (n - i) * sizeof(float));
  one(ta, tb, ty);
  std::memcpy(y + i, ty, (n - i) * sizeof(float));
}

constexpr size_t kBlock = 1024;  // 4 KB of output: still in L1 when a non-clamp activation runs on it

// Relu and Clip are a clamp in registers; other activations run over each block just written.
template <class V, BinaryKind kKind, BinaryShape kShape>
struct Kernel {
  // Not inlined into the commutative kScalarA wrapper below, which would be a second copy.
  __attribute__((noinline)) static void run(size_t n, const float* a, const float* b, float* y,
                                            const ActParams& act) {
    // c + x and c * x are x + c and x * c: one kernel fewer per commutative op.
    constexpr bool kCommutative = kKind == BinaryKind::kAdd || kKind == BinaryKind::kMul;
    if constexpr (kCommutative && kShape == BinaryShape::kScalarA) {
      return Kernel<V, kKind, BinaryShape::kScalarB>::run(n, b, a, y, act);
    } else {
      constexpr float kInf = std::numeric_limits<float>::infinity();
      const bool relu = act.kind == Activation::kRelu, clip = act.kind == Activation::kClip;
      const bool separate = !relu && !clip && act.kind != Activation::kNone;
      const float lo = relu ? 0.0f : clip ? act.a : -kInf, hi = clip ? act.b : kInf;
      for (size_t start = 0; start < n; start += kBlock) {
        const size_t len = std::min(kBlock, n - start);
        lanes<V, kKind, kShape>(len, kShape == BinaryShape::kScalarA ? a : a + start,
                                kShape == BinaryShape::kScalarB ? b : b + start, y + start, lo, hi);
        if (separate) f32_activation__portable(act, y + start, len);
      }
    }
  }
};

// The kernel of one op and operand shape, from a template Kernel<kind, shape>::run.
template <template <BinaryKind, BinaryShape> class K, BinaryKind kKind>
VBinaryFn for_shape(BinaryShape shape) {
  switch (shape) {
    case BinaryShape::kVector: return K<kKind, BinaryShape::kVector>::run;
    case BinaryShape::kScalarB: return K<kKind, BinaryShape::kScalarB>::run;
    case BinaryShape::kScalarA: return K<kKind, BinaryShape::kScalarA>::run;
  }
  return nullptr;
}

template <template <BinaryKind, BinaryShape> class K>
VBinaryFn lookup(BinaryKind kind, BinaryShape shape) {
  switch (kind) {
    case BinaryKind::kAdd: return for_shape<K, BinaryKind::kAdd>(shape);
    case BinaryKind::kSub: return for_shape<K, BinaryKind::kSub>(shape);
    case BinaryKind::kMul: return for_shape<K, BinaryKind::kMul>(shape);
    case BinaryKind::kDiv: return for_shape<K, BinaryKind::kDiv>(shape);
  }
  return nullptr;
}

// Kernel<V, ...> with V bound, as the two-parameter template lookup() takes.
template <class V>
struct For {
  template <BinaryKind kKind, BinaryShape kShape>
  using Kernel = vbinary::Kernel<V, kKind, kShape>;
};

}  // namespace vbinary
}  // namespace sparsec
