// The dispatch: each job's fastest variant compiled for this target, chosen at compile time. Which variant
// that is comes from the contract (SPARSEC_DISPATCH_* in sparsec/kernel_contract.h, generated).
#include "sparsec/kernels.h"
#include "sparsec/spmm.h"

#if defined(SPARSEC_KERNELS_NEON)
#define SPARSEC_BEST(neon, wasmsimd, portable) neon
#elif defined(SPARSEC_KERNELS_WASMSIMD)
#define SPARSEC_BEST(neon, wasmsimd, portable) wasmsimd
#else
#define SPARSEC_BEST(neon, wasmsimd, portable) portable
#endif

namespace sparsec {

const char* kernel_isa() { return SPARSEC_BEST("neon", "wasmsimd", "portable"); }

void f32_gemm(const GemmArgs& g) { SPARSEC_DISPATCH_F32_GEMM(g); }

void f32_im2col(const Conv2dShape& s, const float* x, size_t c0, size_t nc, size_t oh0, size_t oh1, float* cols) {
  SPARSEC_DISPATCH_F32_IM2COL(s, x, c0, nc, oh0, oh1, cols);
}

void f32_conv2d_im2col(const Conv2dShape& s, const float* x, const float* w, const float* bias,
                       const ActParams& act, float* y, float* scratch) {
  SPARSEC_DISPATCH_F32_CONV2D_IM2COL(s, x, w, bias, act, y, scratch);
}

void f32_dwconv2d(const Conv2dShape& s, const float* x, const float* w, const float* bias,
                  const ActParams& act, float* y) {
  SPARSEC_DISPATCH_F32_DWCONV2D(s, x, w, bias, act, y);
}

void f32_dwconv2d_3x3(const Conv2dShape& s, const float* x, const float* w, const float* bias,
                      const ActParams& act, float* y) {
  SPARSEC_DISPATCH_F32_DWCONV2D_3X3(s, x, w, bias, act, y);
}

void f32_maxpool2d(const Pool2dShape& s, size_t planes, const float* x, float* y) {
  SPARSEC_DISPATCH_F32_MAXPOOL2D(s, planes, x, y);
}

void f32_avgpool2d(const Pool2dShape& s, size_t planes, const float* x, float* y) {
  SPARSEC_DISPATCH_F32_AVGPOOL2D(s, planes, x, y);
}

void f32_gavgpool_cw(size_t channels, size_t n, const float* x, float* y) {
  SPARSEC_DISPATCH_F32_GAVGPOOL_CW(channels, n, x, y);
}

VBinaryFn f32_vbinary(BinaryKind kind, BinaryShape shape) { return SPARSEC_DISPATCH_F32_VBINARY(kind, shape); }

void f32_activation(const ActParams& act, float* data, size_t n) { SPARSEC_DISPATCH_F32_ACTIVATION(act, data, n); }

void f32_softmax(const float* x, float* y, size_t rows, size_t len) { SPARSEC_DISPATCH_F32_SOFTMAX(x, y, rows, len); }

void f32_layer_norm(const LayerNormArgs& a) { SPARSEC_DISPATCH_F32_LAYER_NORM(a); }

void f32_layer_norm_grad(const LayerNormArgs& a, const float* dy, float* dx) {
  SPARSEC_DISPATCH_F32_LAYER_NORM_GRAD(a, dy, dx);
}

void f32_activation_grad(const ActParams& act, const float* dy, const float* x, float* dx, size_t n) {
  SPARSEC_DISPATCH_F32_ACTIVATION_GRAD(act, dy, x, dx, n);
}

void f32_spmm(const SpmmArgs& a) {
  switch (a.MB) {
    case 1: return SPARSEC_DISPATCH_F32_SPMM_MB1(a);
    case 2: return SPARSEC_DISPATCH_F32_SPMM_MB2(a);
    default: return SPARSEC_DISPATCH_F32_SPMM_MB4(a);
  }
}

void f32_spmm_2of4(const Spmm2of4Args& a) { SPARSEC_DISPATCH_F32_SPMM_2OF4(a); }

}  // namespace sparsec
