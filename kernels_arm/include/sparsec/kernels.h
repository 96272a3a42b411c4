// sparsec microkernels: one job each, float32, NCHW data.
// Naming: <type>_<op>[_<tile>]__<isa>. Every variant is tested against its __scalar reference
// (tests/kernels/kernel_test.cpp). The executor picks a variant; kernels never allocate.
#pragma once
#include <cstddef>
#include <cstdint>

#include "sparsec/kernel_contract.h"  // Activation, kIm2colBandColumns, each job's variant per ISA

namespace sparsec {

struct ActParams {
  Activation kind = Activation::kNone;
  float a = 0.0f;
  float b = 0.0f;
};

float activate(const ActParams& act, float x);
// In place over n contiguous values.
void f32_activation__scalar(const ActParams& act, float* data, size_t n);
void f32_activation__portable(const ActParams& act, float* data, size_t n);  // kind hoisted, vectorisable
void f32_activation(const ActParams& act, float* data, size_t n);

// act'(x) at the activation's input x (RELU, CLIP: its output works as well), for the kinds activation_differentiable
// accepts (the ones the compiler's gradient rules emit).
bool activation_differentiable(Activation kind);
float activation_derivative(const ActParams& act, float x);
// dx = dy * act'(x) over n contiguous values (training: an activation's input gradient).
void f32_activation_grad__scalar(const ActParams& act, const float* dy, const float* x, float* dx, size_t n);
void f32_activation_grad__portable(const ActParams& act, const float* dy, const float* x, float* dx, size_t n);
void f32_activation_grad(const ActParams& act, const float* dy, const float* x, float* dx, size_t n);

// y[r, :] = softmax(x[r, :]) over rows of len contiguous values (the row's maximum subtracted first).
void f32_softmax__scalar(const float* x, float* y, size_t rows, size_t len);
void f32_softmax__portable(const float* x, float* y, size_t rows, size_t len);
void f32_softmax(const float* x, float* y, size_t rows, size_t len);

// Layer normalisation over rows of len contiguous values: y = (x - mean) / sqrt(var + eps) * scale + shift
// (shift may be null); the moments in double. The gradient: dx of y's gradient dy (scale is a constant there).
struct LayerNormArgs {
  const float* x;
  const float* scale;  // [len]
  const float* shift;  // [len] or null
  float epsilon;
  float* y;
  size_t rows, len;
};
void f32_layer_norm__scalar(const LayerNormArgs& a);
void f32_layer_norm__portable(const LayerNormArgs& a);
void f32_layer_norm(const LayerNormArgs& a);
void f32_layer_norm_grad__scalar(const LayerNormArgs& a, const float* dy, float* dx);
void f32_layer_norm_grad__portable(const LayerNormArgs& a, const float* dy, float* dx);
void f32_layer_norm_grad(const LayerNormArgs& a, const float* dy, float* dx);

enum class BiasMode : int32_t { kNone = 0, kPerRow = 1, kPerColumn = 2 };

// C[M,N] = A[M,K] * B[K,N] (+ bias[M] per row or bias[N] per column), then act.
// Row-major with leading dimensions lda, ldb, ldc (in elements). batch > 1 repeats it with the
// same A for B + n * batch_stride_b and C + n * batch_stride_c (e.g. a 1x1 conv over the images):
// one call lets the kernel reuse A across the images. trans_a: A is stored as its transpose [K, M]
// (A[i, k] at A[k * lda + i]): a training step's weight gradient X^T dY without a transposed copy.
struct GemmArgs {
  size_t M, N, K;
  const float* A; size_t lda;
  const float* B; size_t ldb;
  float* C; size_t ldc;
  const float* bias; BiasMode bias_mode;
  ActParams act;
  size_t batch = 1, batch_stride_b = 0, batch_stride_c = 0;
  bool trans_a = false;
};
void f32_gemm__scalar(const GemmArgs& g);
void f32_gemm__portable(const GemmArgs& g);  // register-tiled, auto-vectorised C++
void f32_gemm(const GemmArgs& g);

// 2-D convolution of one image, NCHW. Weights [M, C/G, KH, KW], bias [M] or null.
struct Conv2dShape {
  size_t C, H, W;        // input channels, height, width
  size_t M, OH, OW;      // output channels, height, width
  size_t KH, KW;
  size_t SH, SW;         // strides
  size_t PT, PL;         // top / left padding (bottom/right follow from OH/OW)
  size_t DH, DW;         // dilations
  size_t G;              // groups
};
void f32_conv2d__scalar(const Conv2dShape& s, const float* x, const float* w, const float* bias,
                        const ActParams& act, float* y);
// cols[((c-c0)*KH+kh)*KW+kw, (oh-oh0)*OW+ow] for channels [c0, c0+nc) and output rows [oh0, oh1);
// zero where the window is in padding. Bands of rows keep the buffer small.
void f32_im2col__scalar(const Conv2dShape& s, const float* x, size_t c0, size_t nc, size_t oh0, size_t oh1,
                        float* cols);
void f32_im2col__portable(const Conv2dShape& s, const float* x, size_t c0, size_t nc, size_t oh0, size_t oh1,
                          float* cols);  // contiguous runs copied, padding filled
void f32_im2col(const Conv2dShape& s, const float* x, size_t c0, size_t nc, size_t oh0, size_t oh1, float* cols);
// Any convolution as f32_im2col + f32_gemm per group, over bands of output rows so the column buffer
// stays near kIm2colBandColumns columns. scratch holds f32_conv2d_im2col_scratch(s) floats.
size_t f32_conv2d_im2col_scratch(const Conv2dShape& s);
void f32_conv2d_im2col__portable(const Conv2dShape& s, const float* x, const float* w, const float* bias,
                                 const ActParams& act, float* y, float* scratch);
void f32_conv2d_im2col(const Conv2dShape& s, const float* x, const float* w, const float* bias,
                       const ActParams& act, float* y, float* scratch);
// Depthwise: G == C == M, weights [C, 1, KH, KW].
void f32_dwconv2d(const Conv2dShape& s, const float* x, const float* w, const float* bias,
                  const ActParams& act, float* y);  // any window
void f32_dwconv2d__portable(const Conv2dShape& s, const float* x, const float* w,
                            const float* bias, const ActParams& act, float* y);

// ---------------------------------------------------------------------------------------------
// Variants of one job: __scalar (the reference), __portable (GCC/Clang generic vectors, every
// target), __neon (aarch64 only) and __wasmsimd (wasm32 with -msimd128 only). The unsuffixed
// function is the dispatch: the fastest variant compiled for this target, fixed at compile time.
#if defined(__aarch64__) && defined(__ARM_NEON)
#define SPARSEC_KERNELS_NEON 1
#endif
#if defined(__wasm_simd128__)
#define SPARSEC_KERNELS_WASMSIMD 1
#endif
const char* kernel_isa();  // "neon", "wasmsimd" or "portable": the variant the dispatch picks

// Depthwise 3x3 (KH == KW == 3), any stride, padding and dilation; rows vectorised explicitly.
#ifdef SPARSEC_KERNELS_NEON
void f32_dwconv2d_3x3_u4__neon(const Conv2dShape& s, const float* x, const float* w,
                               const float* bias, const ActParams& act, float* y);
#endif
#ifdef SPARSEC_KERNELS_WASMSIMD
void f32_dwconv2d_3x3_u4__wasmsimd(const Conv2dShape& s, const float* x, const float* w,
                                   const float* bias, const ActParams& act, float* y);
#endif
void f32_dwconv2d_3x3(const Conv2dShape& s, const float* x, const float* w, const float* bias,
                      const ActParams& act, float* y);  // KH == KW == 3

// 2-D pooling over `planes` NCHW planes. Max skips padding and NaN inputs (an empty window gives
// -inf); average divides by the taps inside the input, or, with count_include_pad, inside the
// padded input (an empty window gives 0).
struct Pool2dShape {
  size_t H, W, OH, OW;
  size_t KH, KW;
  size_t SH, SW;
  size_t PT, PL, PB, PR;  // bottom/right padding only bounds count_include_pad windows
  size_t DH, DW;
  bool count_include_pad;
};
using Pool2dFn = void (*)(const Pool2dShape& s, size_t planes, const float* x, float* y);
void f32_maxpool2d__scalar(const Pool2dShape& s, size_t planes, const float* x, float* y);
void f32_maxpool2d_chw__portable(const Pool2dShape& s, size_t planes, const float* x, float* y);
void f32_avgpool2d__scalar(const Pool2dShape& s, size_t planes, const float* x, float* y);
void f32_avgpool2d_chw__portable(const Pool2dShape& s, size_t planes, const float* x, float* y);
// y[c] = mean of x[c * n, (c + 1) * n): GlobalAveragePool on NCHW.
using GavgpoolFn = void (*)(size_t channels, size_t n, const float* x, float* y);
void f32_gavgpool_cw__scalar(size_t channels, size_t n, const float* x, float* y);
void f32_gavgpool_cw__portable(size_t channels, size_t n, const float* x, float* y);
#ifdef SPARSEC_KERNELS_NEON
void f32_maxpool2d_chw_u4__neon(const Pool2dShape& s, size_t planes, const float* x, float* y);
void f32_avgpool2d_chw_u4__neon(const Pool2dShape& s, size_t planes, const float* x, float* y);
void f32_gavgpool_cw_u8__neon(size_t channels, size_t n, const float* x, float* y);
#endif
#ifdef SPARSEC_KERNELS_WASMSIMD
void f32_maxpool2d_chw_u4__wasmsimd(const Pool2dShape& s, size_t planes, const float* x, float* y);
void f32_avgpool2d_chw_u4__wasmsimd(const Pool2dShape& s, size_t planes, const float* x, float* y);
void f32_gavgpool_cw_u8__wasmsimd(size_t channels, size_t n, const float* x, float* y);
#endif
void f32_maxpool2d(const Pool2dShape& s, size_t planes, const float* x, float* y);
void f32_avgpool2d(const Pool2dShape& s, size_t planes, const float* x, float* y);
void f32_gavgpool_cw(size_t channels, size_t n, const float* x, float* y);

// Element-wise binary op with fused activation, in XNNPACK's three operand shapes:
// kVector y[i] = act(a[i] op b[i]), kScalarB y[i] = act(a[i] op b[0]) (also a [C,1,1] operand,
// one call per channel), kScalarA y[i] = act(a[0] op b[i]). Values match the runtime's BinaryOp.
enum class BinaryKind : int32_t { kAdd = 0, kSub = 1, kMul = 2, kDiv = 3, kLast = kDiv };
enum class BinaryShape : int32_t { kVector = 0, kScalarB = 1, kScalarA = 2, kLast = kScalarA };
using VBinaryFn = void (*)(size_t n, const float* a, const float* b, float* y, const ActParams& act);
// Each returns the microkernel of one op and operand shape (f32_vsubc, f32_vrdivc, ... in XNNPACK).
VBinaryFn f32_vbinary__scalar(BinaryKind kind, BinaryShape shape);
VBinaryFn f32_vbinary__portable(BinaryKind kind, BinaryShape shape);
#ifdef SPARSEC_KERNELS_NEON
VBinaryFn f32_vbinary_u8__neon(BinaryKind kind, BinaryShape shape);
#endif
#ifdef SPARSEC_KERNELS_WASMSIMD
VBinaryFn f32_vbinary_u8__wasmsimd(BinaryKind kind, BinaryShape shape);
#endif
VBinaryFn f32_vbinary(BinaryKind kind, BinaryShape shape);

}  // namespace sparsec
