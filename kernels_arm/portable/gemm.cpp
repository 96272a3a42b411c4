// Portable register-tiled GEMM on GCC/Clang generic vectors (SSE/AVX, NEON, wasm simd128).
#include <algorithm>
#include <array>
#include <cstring>
#include <utility>

#include "f32_vec.h"
#include "sparsec/kernels.h"

namespace sparsec {
namespace {

constexpr size_t kKC = 384;  // K block: a packed KC x NR panel of B (24 KB on AVX) stays in L1 (96 KB wide: L2)

// Tile sized to the vector register file: MR x NV accumulator vectors of type V, plus NV vectors of
// B and one broadcast A value per step. GCC and Clang vector extensions (rather than loops left to
// the auto-vectoriser) make both compilers keep the accumulators in registers.
template <class V, size_t MR, size_t NV>
struct Tiling {
  using Vec = V;
  static constexpr size_t kLanes = sizeof(V) / sizeof(float), kMR = MR, kNV = NV, kNR = NV * kLanes;
  // Packed B block: one KC x NR panel, or more (NC columns) when K is short, up to 256 x NR floats.
  static constexpr size_t kPackFloats = kKC * kNR, kBlockFloats = 256 * kNR;
};
#if defined(__AVX__)
using Tile = Tiling<portable::Vec, 6, 2>;  // 12 + 2 + 1 of 16 x 256-bit registers
#elif defined(__aarch64__)
using Tile = Tiling<portable::Vec, 8, 3>;  // 24 + 3 + 1 of 32 x 128-bit registers
#else
using Tile = Tiling<portable::Vec, 6, 2>;  // 16 x 128-bit registers (SSE2, wasm simd128)
#endif
#if defined(__AVX512F__)
// Wide C on AVX-512: 24 + 4 + 1 of 32 x 512-bit registers, 64 columns (see use_wide_tile).
typedef float Vec16 __attribute__((vector_size(64)));
using WideTile = Tiling<Vec16, 6, 4>;
constexpr size_t kWideMinK = 48;
#endif
// ReLU and Clip in the tile's registers on x86; elsewhere the activation pass over C does them, as
// the six tile sizes' copies would cost wasm32 0.8 KB.
#if defined(__AVX__)
constexpr bool kClampInTile = true;
#else
constexpr bool kClampInTile = false;
#endif

constexpr size_t kPrefetchFloats = 256;  // 1 KB ahead in each row of B
// M block: the MC x KC block of A stays in L2 across the blocks of B. x86 cores have 1-2 MB of L2: 256 rows (a
// sequence batch of tokens) pack each B block once (BERT-sized GEMMs 2-3 % faster); small ARM L2s keep 128.
#if defined(__AVX__)
constexpr size_t kMC = 256;
#else
constexpr size_t kMC = 128;
#endif
// Up to this many columns, dot products along K beat tiles padded to NR columns (measured
// crossover with AVX2: 5 of 16).
constexpr size_t kDotMaxN = Tile::kNR / 3;
constexpr size_t kDotLanes = 32;  // partial sums; > 16 so GCC vectorises across lanes, not K
constexpr size_t kDotKC = 1024;   // K block of the copied B column: few lane reductions per row

// acc = first ? row_bias[i] + col_bias[j] : C;  acc += A[0:MR, 0:kc] * B[0:kc, 0:NR];
// C = clamp ? min(max(acc, clamp[0]), clamp[1]) : acc  (NaN kept, as by the activation kernels).
// A[i, k] is at a[i * a_row + k * a_k]: row-major (a_row = lda, a_k = 1) or transposed (1, lda).
template <class T, size_t MR>
void micro_tile(const float* a, size_t a_row, size_t a_k, size_t kc, const float* b, size_t ldb, float* c,
                size_t ldc, bool first, const float* row_bias, const float* col_bias,
                const float* clamp) {
  // Short tiles have too few accumulators to hide FMA latency: they take turns over K between
  // independent copies, summed at the end.
  using Vec = typename T::Vec;
  constexpr size_t kNV = T::kNV, kLanes = T::kLanes;
  constexpr size_t kChains = MR * kNV >= 8 ? 1 : MR * kNV >= 4 ? 2 : 4;
  Vec acc[kChains][MR][kNV] = {};
  if (first) {
    for (size_t v = 0; v < kNV; ++v) {
      const Vec col = portable::load<Vec>(col_bias + v * kLanes);
      for (size_t i = 0; i < MR; ++i) acc[0][i][v] = row_bias[i] + col;
    }
  } else {
    for (size_t i = 0; i < MR; ++i)
      for (size_t v = 0; v < kNV; ++v) acc[0][i][v] = portable::load<Vec>(c + i * ldc + v * kLanes);
  }
  auto step = [&](Vec(&sum)[MR][kNV], size_t k) {
    Vec b_row[kNV];
    for (size_t v = 0; v < kNV; ++v) b_row[v] = portable::load<Vec>(b + k * ldb + v * kLanes);
    for (size_t i = 0; i < MR; ++i) {
      const float a_ik = a[i * a_row + k * a_k];
      for (size_t v = 0; v < kNV; ++v) sum[i][v] += a_ik * b_row[v];
    }
  };
  size_t k = 0;
  // Clang would unroll further and run out of registers for the addresses and accumulators.
#pragma GCC unroll 1
  for (; k + kChains <= kc; k += kChains)
    for (size_t chain = 0; chain < kChains; ++chain) step(acc[chain], k + chain);
  for (; k < kc; ++k) step(acc[0], k);
  for (size_t chain = 1; chain < kChains; ++chain)
    for (size_t i = 0; i < MR; ++i)
      for (size_t v = 0; v < kNV; ++v) acc[0][i][v] += acc[chain][i][v];
  if (kClampInTile && clamp) {
    const Vec lo = Vec{} + clamp[0], hi = Vec{} + clamp[1];
    for (size_t i = 0; i < MR; ++i)
      for (size_t v = 0; v < kNV; ++v) acc[0][i][v] = portable::clamp(acc[0][i][v], lo, hi);
  }
  for (size_t i = 0; i < MR; ++i)
    for (size_t v = 0; v < kNV; ++v) portable::store(c + i * ldc + v * kLanes, acc[0][i][v]);
}

using MicroTile = void (*)(const float*, size_t, size_t, size_t, const float*, size_t, float*, size_t,
                           bool, const float*, const float*, const float*);
template <class T, size_t... I>
constexpr std::array<MicroTile, sizeof...(I)> micro_tiles(std::index_sequence<I...>) {
  return {&micro_tile<T, I + 1>...};
}
// kMicroTiles<T>[mr - 1] handles mr rows, so edge rows cost no wasted work.
template <class T>
constexpr std::array<MicroTile, T::kMR> kMicroTiles = micro_tiles<T>(std::make_index_sequence<T::kMR>());

// Calls f(image, col, offset, len) for the runs of columns jr .. jr + nr - 1 (of all images in a
// row) that lie in one image.
template <class F>
void for_each_run(const GemmArgs& g, size_t jr, size_t nr, F f) {
  for (size_t j = jr; j < jr + nr;) {
    const size_t image = j / g.N, col = j % g.N, len = std::min(g.N - col, jr + nr - j);
    f(image, col, j - jr, len);
    j += len;
  }
}

// B[pc : pc + kc, columns jc : jc + nc] (possibly across images) as NR-wide panels, each kc x NR
// and contiguous, the last zero-padded.
template <class T>
void pack_block(const GemmArgs& g, size_t pc, size_t kc, size_t jc, size_t nc, float* packed) {
  constexpr size_t kNR = T::kNR;
  for_each_run(g, jc, nc, [&](size_t image, size_t col, size_t offset, size_t len) {
    const float* b = g.B + image * g.batch_stride_b + pc * g.ldb + col;
    for (size_t done = 0; done < len;) {  // the run's pieces of panels
      const size_t j = offset + done, lane = j % kNR, take = std::min(len - done, kNR - lane);
      float* out = packed + j / kNR * kc * kNR + lane;
      const float* in = b + done;
      if (take == kNR) {  // whole vectors: a variable-length memcpy would cost as much as the FMAs
        // Prefetched ahead in each row: kc rows are more streams than the hardware follows.
        const bool prefetch = col + done + kPrefetchFloats < g.N;
        for (size_t k = 0; k < kc; ++k, in += g.ldb, out += kNR) {
          if (prefetch) __builtin_prefetch(in + kPrefetchFloats);
          for (size_t v = 0; v < T::kNV; ++v)
            portable::store(out + v * T::kLanes, portable::load<typename T::Vec>(in + v * T::kLanes));
        }
      } else {
        for (size_t k = 0; k < kc; ++k) std::memcpy(out + k * kNR, in + k * g.ldb, take * sizeof(float));
      }
      done += take;
    }
  });
  if (nc % kNR)
    for (size_t k = 0; k < kc; ++k) {
      float* tail = packed + (nc / kNR * kc + k) * kNR;
      std::fill(tail + nc % kNR, tail + kNR, 0.0f);
    }
}

// Rows ic .. ic + mr - 1 of C at columns jr .. jr + nr - 1 to (or from) an mr x NR tile.
template <class T>
void copy_tile_columns(const GemmArgs& g, size_t ic, size_t mr, size_t jr, size_t nr, float* tile,
                       bool to_tile) {
  for_each_run(g, jr, nr, [&](size_t image, size_t col, size_t offset, size_t len) {
    float* c = g.C + image * g.batch_stride_c + ic * g.ldc + col;
    for (size_t i = 0; i < mr; ++i) {
      float* t = tile + i * T::kNR + offset;
      if (to_tile) std::memcpy(t, c + i * g.ldc, len * sizeof(float));
      else std::memcpy(c + i * g.ldc, t, len * sizeof(float));
    }
  });
}

float dot(const float* a, const float* b, size_t n) {
  float lanes[kDotLanes] = {};
  size_t k = 0;
  for (; k + kDotLanes <= n; k += kDotLanes)
    for (size_t l = 0; l < kDotLanes; ++l) lanes[l] += a[k + l] * b[k + l];
  for (size_t width = kDotLanes / 2; width > 0; width /= 2)  // pairwise: vectorises, short chain
    for (size_t l = 0; l < width; ++l) lanes[l] += lanes[l + width];
  float sum = lanes[0];
  for (; k < n; ++k) sum += a[k] * b[k];
  return sum;
}

// Narrow C (N <= kDotMaxN, e.g. a 1x1 conv on a pooled 1x1 map): each element is a dot product
// of a row of A with a column of B, copied contiguous in K blocks.
void gemm_narrow(const GemmArgs& g) {
  float b_col[kDotKC];
  for (size_t j = 0; j < g.N; ++j) {
    for (size_t i = 0; i < g.M; ++i)
      g.C[i * g.ldc + j] = g.bias_mode == BiasMode::kPerRow      ? g.bias[i]
                           : g.bias_mode == BiasMode::kPerColumn ? g.bias[j]
                                                                 : 0.0f;
    for (size_t pc = 0; pc < g.K; pc += kDotKC) {
      const size_t kc = std::min(kDotKC, g.K - pc);
      for (size_t k = 0; k < kc; ++k) b_col[k] = g.B[(pc + k) * g.ldb + j];
      for (size_t i = 0; i < g.M; ++i)
        g.C[i * g.ldc + j] += dot(g.A + i * g.lda + pc, b_col, kc);
    }
  }
  for (size_t i = 0; i < g.M; ++i) f32_activation__portable(g.act, g.C + i * g.ldc, g.N);
}

// C = act(A B + bias) in MR x NR register tiles over packed blocks of B.
template <class T>
void gemm_tiled(const GemmArgs& g) {
  constexpr size_t kMR = T::kMR, kNR = T::kNR;
  static const float kZeros[std::max(kMR, kNR)] = {};
  const bool per_row = g.bias_mode == BiasMode::kPerRow;
  const bool per_column = g.bias_mode == BiasMode::kPerColumn;
  // ReLU and Clip are applied in registers by the tile (kClampInTile); the rest by a pass over C.
  float bounds[2];
  const float* clamp = kClampInTile ? portable::clamp_bounds(g.act, bounds) : nullptr;
  const bool act_pass = !clamp && g.act.kind != Activation::kNone;
  // One activation call per C row of a row tile and column block (long vector loops); per tile when the block's
  // columns cross images (their C rows are not contiguous).
  const bool act_rows = act_pass && g.batch == 1;
  // A single row block reads each panel once, so copying it only pays at the padded N edge.
  const bool pack_all = g.M > kMR;
  // Columns j of all images in a row, image j / N: a panel is direct when it lies in one image.
  const size_t columns = g.N * g.batch;
  const size_t a_row = g.trans_a ? 1 : g.lda, a_k = g.trans_a ? g.lda : 1;
  float packed[T::kPackFloats];
  // K == 0 still runs one (empty) block so C receives bias and activation.
  // Equal K blocks of at most KC: K = 320 as one block, not 256 + 64 (C stored and reloaded).
  const size_t k_blocks = std::max<size_t>((g.K + kKC - 1) / kKC, 1), k_step = (g.K + k_blocks - 1) / k_blocks;
  for (size_t pc = 0; pc < std::max<size_t>(g.K, 1); pc += std::max<size_t>(k_step, 1)) {
    const size_t kc = std::min(k_step, g.K - pc);
    const bool first = pc == 0, last = pc + kc >= g.K;
    // Column blocks as wide as the packing buffer holds: few K rows, long row streams.
    const size_t nc_max = pack_all ? std::max(kNR, T::kBlockFloats / std::max<size_t>(kc, 1) / kNR * kNR) : kNR;
    for (size_t icb = 0; icb < g.M; icb += kMC) {
      const size_t mc = std::min(kMC, g.M - icb);
      for (size_t jc = 0; jc < columns; jc += nc_max) {
        const size_t nc = std::min(nc_max, columns - jc);
        if (pack_all) pack_block<T>(g, pc, kc, jc, nc, packed);
        // Tiles of rows outside the panels: each C row is written along the whole block, a few
        // long store streams rather than a 64-byte piece in each of mc rows per panel.
        for (size_t ic = icb; ic < icb + mc; ic += kMR) {
          const size_t mr = std::min(kMR, icb + mc - ic);
          const float* a = g.trans_a ? g.A + pc * g.lda + ic : g.A + ic * g.lda + pc;
          const float* row_bias = per_row ? g.bias + ic : kZeros;
          const MicroTile tile_fn = kMicroTiles<T>[mr - 1];
          const float* tile_clamp = last ? clamp : nullptr;
          // Panel jr starts at column col of image; stepped, not divided, per panel (small K).
          size_t image = jc / g.N, col = jc % g.N;
          for (size_t jr = jc; jr < jc + nc; jr += kNR, col += kNR) {
            for (; col >= g.N; col -= g.N) ++image;
            const size_t nr = std::min(kNR, jc + nc - jr);
            const bool scattered = nr < kNR || col + nr > g.N;  // padded or crossing an image
            const float* b_panel = packed + (jr - jc) / kNR * kc * kNR;
            size_t ld_panel = kNR;
            if (!pack_all && scattered) {
              pack_block<T>(g, pc, kc, jr, nr, packed);
            } else if (!pack_all) {
              b_panel = g.B + image * g.batch_stride_b + pc * g.ldb + col;
              ld_panel = g.ldb;
            }
            float scattered_col_bias[kNR] = {};
            if (scattered && per_column)
              for (size_t j = 0; j < nr; ++j) scattered_col_bias[j] = g.bias[(jr + j) % g.N];
            const float* col_bias = !per_column ? kZeros : scattered ? scattered_col_bias : g.bias + col;
            // A scattered panel runs a full-width tile on a scratch copy; the valid columns go back
            // image by image.
            float tile[kMR * kNR];
            float* c = scattered ? tile : g.C + image * g.batch_stride_c + ic * g.ldc + col;
            const size_t ldc = scattered ? kNR : g.ldc;
            if (scattered) {
              std::fill(tile, tile + kMR * kNR, 0.0f);
              if (!first) copy_tile_columns<T>(g, ic, mr, jr, nr, tile, /*to_tile=*/true);
            }
            tile_fn(a, a_row, a_k, kc, b_panel, ld_panel, c, ldc, first, row_bias, col_bias, tile_clamp);
            if (last && act_pass && !act_rows)
              for (size_t i = 0; i < mr; ++i) f32_activation__portable(g.act, c + i * ldc, nr);
            if (scattered) copy_tile_columns<T>(g, ic, mr, jr, nr, tile, /*to_tile=*/false);
          }
          if (last && act_rows)
            for (size_t i = ic; i < ic + mr; ++i) f32_activation__portable(g.act, g.C + i * g.ldc + jc, nc);
        }
      }
    }
  }
}

#if defined(__AVX512F__)
// Measured on Zen 4 (512-bit ops double-pumped): the wide tile is 1-4 % faster where it pads no more columns than
// Tile, but slower where it pads more (N = 32: 2.3x, 256x784x64: -6 %) or K is short (96x3136x24: -4 %, C
// loaded and stored per tile). A single row tile reads B unpacked: wider loads gain even padded (1x1000x1280:
// +32 %).
bool use_wide_tile(const GemmArgs& g) {
  const auto round_up = [](size_t n, size_t to) { return (n + to - 1) / to * to; };
  if (g.N < WideTile::kNR) return false;
  if (g.M <= WideTile::kMR) return true;
  return round_up(g.N, WideTile::kNR) == round_up(g.N, Tile::kNR) && g.K >= kWideMinK;
}
#endif

}  // namespace

void f32_gemm__portable(const GemmArgs& g) {
  if (g.M == 0 || g.N == 0) return;
  if (g.N <= kDotMaxN && !g.trans_a) {
    for (size_t n = 0; n < g.batch; ++n) {
      GemmArgs image = g;
      image.B += n * g.batch_stride_b;
      image.C += n * g.batch_stride_c;
      gemm_narrow(image);
    }
    return;
  }
#if defined(__AVX512F__)
  if (use_wide_tile(g)) return gemm_tiled<WideTile>(g);
#endif
  gemm_tiled<Tile>(g);
}

}  // namespace sparsec
