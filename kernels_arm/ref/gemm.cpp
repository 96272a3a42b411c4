// Scalar reference GEMM: the plain triple loop every fast variant is checked against.
#include "sparsec/kernels.h"

namespace sparsec {

void f32_gemm__scalar(const GemmArgs& g) {
  for (size_t n = 0; n < g.batch; ++n) {
    const float* B = g.B + n * g.batch_stride_b;
    float* C = g.C + n * g.batch_stride_c;
    for (size_t i = 0; i < g.M; ++i) {
      for (size_t j = 0; j < g.N; ++j) {
        float acc = 0.0f;
        for (size_t k = 0; k < g.K; ++k) acc += (g.trans_a ? g.A[k * g.lda + i] : g.A[i * g.lda + k]) * B[k * g.ldb + j];
        if (g.bias_mode == BiasMode::kPerRow) acc += g.bias[i];
        if (g.bias_mode == BiasMode::kPerColumn) acc += g.bias[j];
        C[i * g.ldc + j] = activate(g.act, acc);
      }
    }
  }
}

}  // namespace sparsec
