// Kernel timing driver for bench_kernels.py: prints "<kernel> <variant> <shape> <GFLOP/s>" lines.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "sparsec/kernel_variants.h"
#include "sparsec/kernels.h"
#include "sparsec/spmm.h"
#include "../tests/kernels/spmm_pack.h"

using namespace sparsec;

namespace {

std::vector<float> random_vector(size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

// Best time of repeated runs, repeating until about min_seconds have been spent.
double best_seconds(const std::function<void()>& run, double min_seconds) {
  using clock = std::chrono::steady_clock;
  run();  // warm caches and page in buffers
  double best = 1e30, total = 0.0;
  int runs = 0;
  while (total < min_seconds || runs < 3) {
    const auto start = clock::now();
    run();
    const double t = std::chrono::duration<double>(clock::now() - start).count();
    best = std::min(best, t);
    total += t;
    ++runs;
  }
  return best;
}

const char* g_only = nullptr;  // --only VARIANT: run just that variant (instruction counting)

// Times run and prints its row, unless --only names another variant.
void measure(const char* kernel, const char* variant, const std::string& shape, double flops,
             const std::function<void()>& run, double min_seconds) {
  if (g_only && std::strcmp(g_only, variant) != 0) return;
  const double seconds = best_seconds(run, min_seconds);
  std::printf("%s %s %s %.3f\n", kernel, variant, shape.c_str(), flops / seconds * 1e-9);
  std::fflush(stdout);
}

void bench_gemm(size_t M, size_t N, size_t K, double min_seconds) {
  const std::vector<float> a = random_vector(M * K, 1), b = random_vector(K * N, 2),
                           bias = random_vector(M, 3);
  std::vector<float> c(M * N);
  GemmArgs g{M, N, K, a.data(), K, b.data(), N, c.data(), N, bias.data(), BiasMode::kPerRow, {}};
  const std::string shape = "M=" + std::to_string(M) + ",N=" + std::to_string(N) +
                            ",K=" + std::to_string(K);
  const double flops = 2.0 * M * N * K;
  measure("gemm", "scalar", shape, flops, [&] { f32_gemm__scalar(g); }, min_seconds);
  measure("gemm", "portable", shape, flops, [&] { f32_gemm__portable(g); }, min_seconds);
}

using ConvFn = void (*)(const Conv2dShape&, const float*, const float*, const float*,
                        const ActParams&, float*);

// Depthwise conv, square kernel k, stride s, "same" padding.
void bench_dwconv(size_t C, size_t H, size_t k, size_t stride, double min_seconds) {
  const size_t pad = k / 2, out = (H + 2 * pad - k) / stride + 1;
  const Conv2dShape s{C, H, H, C, out, out, k, k, stride, stride, pad, pad, 1, 1, C};
  const std::vector<float> x = random_vector(C * H * H, 4), w = random_vector(C * k * k, 5),
                           bias = random_vector(C, 6);
  std::vector<float> y(C * out * out);
  const ActParams relu{Activation::kRelu, 0.0f, 0.0f};
  const std::string shape = "C=" + std::to_string(C) + ",H=W=" + std::to_string(H) +
                            ",k=" + std::to_string(k) + ",s=" + std::to_string(stride);
  const double flops = 2.0 * C * out * out * k * k;
  measure("dwconv", "scalar", shape, flops, [&] {
    f32_conv2d__scalar(s, x.data(), w.data(), bias.data(), relu, y.data());
  }, min_seconds);
  const std::pair<const char*, ConvFn> variants[] = {
      {"portable", f32_dwconv2d__portable},
#ifdef SPARSEC_KERNELS_NEON
      {"neon", k == 3 ? f32_dwconv2d_3x3_u4__neon : nullptr},
#endif
#ifdef SPARSEC_KERNELS_WASMSIMD
      {"wasmsimd", k == 3 ? f32_dwconv2d_3x3_u4__wasmsimd : nullptr},
#endif
  };
  for (const auto& variant : variants)
    if (variant.second)
      measure("dwconv", variant.first, shape, flops, [&] {
        variant.second(s, x.data(), w.data(), bias.data(), relu, y.data());
      }, min_seconds);
}

// Every variant but the last (the dispatch, the same code as one before it).
template <typename T, size_t N>
const T* timed_end(const T (&all)[N]) {
  return all + N - 1;
}

// Pooling, square window k, stride s, padding k / 2; ops = outputs x taps.
void bench_pool(bool is_max, size_t C, size_t H, size_t k, size_t stride, double min_seconds) {
  const size_t pad = k / 2, out = (H + 2 * pad - k) / stride + 1;
  const Pool2dShape s{H, H, out, out, k, k, stride, stride, pad, pad, pad, pad, 1, 1, false};
  const std::vector<float> x = random_vector(C * H * H, 7);
  std::vector<float> y(C * out * out);
  const std::string shape = "C=" + std::to_string(C) + ",H=W=" + std::to_string(H) +
                            ",k=" + std::to_string(k) + ",s=" + std::to_string(stride);
  for (const PoolVariant* v = kPoolVariants; v != timed_end(kPoolVariants); ++v) {
    const Pool2dFn f = is_max ? v->max : v->avg;
    measure(is_max ? "maxpool" : "avgpool", v->name, shape, double(C) * out * out * k * k,
            [&] { f(s, C, x.data(), y.data()); }, min_seconds);
  }
}

void bench_gavgpool(size_t C, size_t n, double min_seconds) {
  const std::vector<float> x = random_vector(C * n, 8);
  std::vector<float> y(C);
  const std::string shape = "C=" + std::to_string(C) + ",HW=" + std::to_string(n);
  for (const PoolVariant* v = kPoolVariants; v != timed_end(kPoolVariants); ++v)
    measure("gavgpool", v->name, shape, double(C) * n, [&] { v->gavg(C, n, x.data(), y.data()); },
            min_seconds);
}

// C planes of n values; shape 0 same-shape, 1 per-channel [C,1,1] (one call per plane); ops = outputs.
void bench_vbinary(size_t kind, size_t shape_kind, size_t C, size_t n, size_t act_kind, double min_seconds) {
  const BinaryShape shape = shape_kind ? BinaryShape::kScalarB : BinaryShape::kVector;
  const std::vector<float> a = random_vector(C * n, 9), b = random_vector(shape_kind ? C : C * n, 10);
  std::vector<float> y(C * n);
  const ActParams act{static_cast<Activation>(act_kind), 0.0f, 6.0f};
  const char* names[] = {"add", "sub", "mul", "div"};
  const std::string shape_name = std::string(names[kind]) + (shape_kind ? "c" : "") + ",C=" +
                                 std::to_string(C) + ",HW=" + std::to_string(n) + ",act=" +
                                 std::to_string(act_kind);
  for (const BinaryVariant* v = kBinaryVariants; v != timed_end(kBinaryVariants); ++v) {
    const VBinaryFn f = v->lookup(static_cast<BinaryKind>(kind), shape);
    measure("vbinary", v->name, shape_name, double(C) * n, [&] {
      if (shape_kind)
        for (size_t c = 0; c < C; ++c) f(n, a.data() + c * n, b.data() + c, y.data() + c * n, act);
      else
        f(C * n, a.data(), b.data(), y.data(), act);
    }, min_seconds);
  }
}

// W[M, K] with whole blocks of MB rows pruned at one input channel (the 1x1 pattern when MB == 1), exactly
// round(sparsity * blocks * K) of them, beside the dense GEMM on the same shape; 2:4 at sparsity 50%.
// Rows "spmm <variant> M,K,N,percent,nonzeros GFLOP/s" count 2 * nonzeros * N operations (dense: 2 * M * K * N).
void bench_spmm(size_t M, size_t K, size_t N, size_t percent, double min_seconds) {
  const std::vector<float> x = random_vector(K * N, 1), bias = random_vector(M, 2);
  std::vector<float> y(M * N);
  std::vector<float> dense = random_vector(M * K, 3);
  const GemmArgs g{M, N, K, dense.data(), K, x.data(), N, y.data(), N, bias.data(), BiasMode::kPerRow, ActParams{}};
  auto shape = [&](size_t nonzeros) {
    return std::to_string(M) + "," + std::to_string(K) + "," + std::to_string(N) + "," + std::to_string(percent) +
           "," + std::to_string(nonzeros);
  };
  measure("spmm", "dense", shape(M * K), 2.0 * M * K * N, [&] { f32_gemm(g); }, min_seconds);
  std::mt19937 rng(4);
  for (size_t mb_index = 0; mb_index < 3; ++mb_index) {
    const size_t MB = size_t{1} << mb_index, blocks = spmm_blocks(M, MB);
    std::vector<size_t> units(blocks * K);  // (block, channel) pairs, the first `pruned` of a shuffle zeroed
    for (size_t u = 0; u < units.size(); ++u) units[u] = u;
    std::shuffle(units.begin(), units.end(), rng);
    const size_t pruned = static_cast<size_t>(percent / 100.0 * units.size() + 0.5);
    std::vector<float> w = dense;
    for (size_t i = 0; i < pruned; ++i) {
      const size_t b = units[i] / K, k = units[i] % K, row = b < M / MB ? b * MB : (M / MB) * MB + b - M / MB;
      for (size_t r = 0; r < (b < M / MB ? MB : 1); ++r) w[(row + r) * K + k] = 0.0f;
    }
    const size_t nonzeros = static_cast<size_t>(std::count_if(w.begin(), w.end(), [](float v) { return v != 0.0f; }));
    const spmm_pack::Blocked p = spmm_pack::blocked(w, bias, M, K, N, MB);
    const SpmmArgs a{M, K, N, MB, p.values.data(), p.deltas.data(), p.nnz.data(), p.first, x.data(), y.data(),
                     ActParams{}};
    for (const SpmmVariant& v : kSpmmVariants) {
      if (std::strcmp(v.name, "scalar") == 0 || std::strcmp(v.name, "dispatch") == 0) continue;
      const std::string variant = std::string(v.name) + ":mb" + std::to_string(MB);
      measure("spmm", variant.c_str(), shape(nonzeros), 2.0 * nonzeros * N, [&] { v.blocked[mb_index](a); },
              min_seconds);
    }
  }
  if (percent != 50 || K % 4 != 0) return;
  const spmm_pack::TwoOfFour q = spmm_pack::random_2of4(M, K, 1.0f, rng);
  const Spmm2of4Args a{M, K, N, q.values.data(), q.index.data(), x.data(), y.data(), ActParams{}};
  for (const SpmmVariant& v : kSpmmVariants) {
    if (std::strcmp(v.name, "scalar") == 0 || std::strcmp(v.name, "dispatch") == 0) continue;
    const std::string variant = std::string(v.name) + ":2of4";
    measure("spmm", variant.c_str(), shape(M * K / 2), 1.0 * M * K * N, [&] { v.two_of_four(a); }, min_seconds);
  }
}

}  // namespace

// Usage: kernels_bench MIN_SECONDS [--only VARIANT] (gemm M N K | dwconv C H k stride | maxpool|avgpool C H k stride |
//                                   gavgpool C HW | vbinary kind shape C HW act |
//                                   spmm M K N sparsity_percent)...
int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s MIN_SECONDS [--only VARIANT] (gemm M N K | dwconv C H k stride | maxpool|avgpool C H k stride | "
                 "gavgpool C HW | vbinary kind shape C HW act | spmm M K N sparsity_percent)...\n", argv[0]);
    return 2;
  }
  const double min_seconds = std::atof(argv[1]);
  int i = 2;
  if (i + 1 < argc && std::strcmp(argv[i], "--only") == 0) g_only = argv[i + 1], i += 2;
  auto next = [&] { return i < argc ? std::strtoul(argv[i++], nullptr, 10) : 0ul; };
  while (i < argc) {
    const std::string kernel = argv[i++];
    if (kernel == "gemm") {
      const size_t M = next(), N = next(), K = next();
      bench_gemm(M, N, K, min_seconds);
    } else if (kernel == "dwconv") {
      const size_t C = next(), H = next(), k = next(), stride = next();
      bench_dwconv(C, H, k, stride, min_seconds);
    } else if (kernel == "maxpool" || kernel == "avgpool") {
      const size_t C = next(), H = next(), k = next(), stride = next();
      bench_pool(kernel == "maxpool", C, H, k, stride, min_seconds);
    } else if (kernel == "gavgpool") {
      const size_t C = next(), n = next();
      bench_gavgpool(C, n, min_seconds);
    } else if (kernel == "vbinary") {
      const size_t kind = next(), shape = next(), C = next(), n = next(), act = next();
      bench_vbinary(kind, shape, C, n, act, min_seconds);
    } else if (kernel == "spmm") {
      const size_t M = next(), K = next(), N = next(), percent = next();
      bench_spmm(M, K, N, percent, min_seconds);
    } else {
      std::fprintf(stderr, "unknown kernel %s\n", kernel.c_str());
      return 2;
    }
  }
  return 0;
}
