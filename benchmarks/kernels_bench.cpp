// Kernel timing driver for bench_kernels.py: prints "<kernel> <variant> <shape> <GFLOP/s>" lines.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "sparsec/kernels.h"

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

void report(const char* kernel, const char* variant, const std::string& shape, double flops,
            double seconds) {
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
  report("gemm", "scalar", shape, flops, best_seconds([&] { f32_gemm__scalar(g); }, min_seconds));
  report("gemm", "portable", shape, flops,
         best_seconds([&] { f32_gemm__portable(g); }, min_seconds));
}

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
  report("dwconv", "scalar", shape, flops, best_seconds([&] {
           f32_conv2d__scalar(s, x.data(), w.data(), bias.data(), relu, y.data());
         }, min_seconds));
  report("dwconv", "portable", shape, flops, best_seconds([&] {
           f32_dwconv2d__portable(s, x.data(), w.data(), bias.data(), relu, y.data());
         }, min_seconds));
}

}  // namespace

// Usage: kernels_bench MIN_SECONDS (gemm M N K | dwconv C H k stride)...
int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s MIN_SECONDS (gemm M N K | dwconv C H k stride)...\n", argv[0]);
    return 2;
  }
  const double min_seconds = std::atof(argv[1]);
  int i = 2;
  auto next = [&] { return i < argc ? std::strtoul(argv[i++], nullptr, 10) : 0ul; };
  while (i < argc) {
    const std::string kernel = argv[i++];
    if (kernel == "gemm") {
      const size_t M = next(), N = next(), K = next();
      bench_gemm(M, N, K, min_seconds);
    } else if (kernel == "dwconv") {
      const size_t C = next(), H = next(), k = next(), stride = next();
      bench_dwconv(C, H, k, stride, min_seconds);
    } else {
      std::fprintf(stderr, "unknown kernel %s\n", kernel.c_str());
      return 2;
    }
  }
  return 0;
}
