// Sparse matrix times dense matrix on CHW data (XNNPACK style): Y[M, N] = act(W[M, K] X[K, N] + bias[M]),
// X is K rows (input channels) of N pixels, Y is M rows of N pixels; W is constant and packed.
// A 1x1 convolution, Gemm or MatMul with sparse constant weights.
#pragma once
#include <cstddef>
#include <cstdint>

#include "sparsec/kernels.h"

namespace sparsec {

// Format BLOCKED. Rows are grouped in blocks of MB (1, 2 or 4) consecutive rows; the trailing M % MB rows
// are single-row blocks. A block keeps an input channel when any of its rows is nonzero there.
//  nnz[b]:  kept channels of block b.
//  values:  per block, its mb biases, then per kept channel mb weights (row order); then 4 floats of padding.
//  deltas:  per kept channel in block order, the byte offset from its X row to the next kept channel's row
//           (the last one wraps to the first kept channel of block 0); then one 0 of padding.
//  first:   byte offset from x to the first kept channel's row (0 when none is kept).
struct SpmmArgs {
  size_t M, K, N;  // output channels, input channels, pixels (row length of X and Y)
  size_t MB;       // 1, 2 or 4
  const float* values;
  const int32_t* deltas;
  const uint32_t* nnz;
  int32_t first;
  const float* x;
  float* y;  // must not alias x
  ActParams act;
};

// Blocks of a BLOCKED matrix: M / MB full blocks and M % MB single rows.
inline size_t spmm_blocks(size_t M, size_t MB) { return M / MB + M % MB; }

// Whether a packed BLOCKED matrix is well formed for its dims and array lengths, so that no kernel reads
// out of bounds (the loader checks untrusted artifacts with it): n_nnz is the block count, the counts sum
// to n_deltas - 1, every X row reached (from first, through every delta, back to first) is a whole row in
// [0, K) at a byte offset below 2^31, and n_values is the biases, weights and padding exactly.
bool spmm_blocked_valid(size_t M, size_t K, size_t N, size_t MB, const uint32_t* nnz, size_t n_nnz,
                        const int32_t* deltas, size_t n_deltas, int32_t first, size_t n_values);

void f32_spmm__scalar(const SpmmArgs& a);  // the reference: any MB

// <tile>x<MB>: pixel tiles of `tile` (halving down to 1 at the row end), output blocks of MB rows (a.MB must
// match). Tiles are the fastest measured per ISA and MB (benchmarks/bench_spmm.py): in WASM, V8 has 16
// vector registers; NEON has 32 but a 32x4 tile (32 accumulators) spills.
void f32_spmm_32x1__portable(const SpmmArgs& a);
void f32_spmm_32x2__portable(const SpmmArgs& a);
void f32_spmm_32x4__portable(const SpmmArgs& a);
#ifdef SPARSEC_KERNELS_NEON
void f32_spmm_32x1__neon(const SpmmArgs& a);
void f32_spmm_32x2__neon(const SpmmArgs& a);
void f32_spmm_16x4__neon(const SpmmArgs& a);
#endif
#ifdef SPARSEC_KERNELS_WASMSIMD
void f32_spmm_16x1__wasmsimd(const SpmmArgs& a);
void f32_spmm_16x2__wasmsimd(const SpmmArgs& a);
void f32_spmm_8x4__wasmsimd(const SpmmArgs& a);
#endif
void f32_spmm(const SpmmArgs& a);  // dispatch: this target's best variant for a.MB

// Format N_OF_M 2:4: two kept weights in every group of 4 input channels of each row.
struct Spmm2of4Args {
  size_t M, K, N;         // K % 4 == 0 (the packer pads K with zero channels)
  const float* values;    // per row: bias, then K / 2 weights (two per group of 4 input channels)
  const uint8_t* index;   // per row, per group: bits 0-1 first kept position, bits 2-3 second (first < second)
  const float* x;
  float* y;  // must not alias x
  ActParams act;
};

// Whether a packed 2:4 matrix is well formed: K % 4 == 0, n_index == M * K / 4 with every byte a valid pair
// (first < second, bits 4-7 zero), n_values == M * (1 + K / 2).
bool spmm_2of4_valid(size_t M, size_t K, const uint8_t* index, size_t n_index, size_t n_values);

void f32_spmm_2of4__scalar(const Spmm2of4Args& a);
void f32_spmm_2of4__portable(const Spmm2of4Args& a);
#ifdef SPARSEC_KERNELS_NEON
void f32_spmm_2of4__neon(const Spmm2of4Args& a);
#endif
#ifdef SPARSEC_KERNELS_WASMSIMD
void f32_spmm_2of4__wasmsimd(const Spmm2of4Args& a);
#endif
void f32_spmm_2of4(const Spmm2of4Args& a);  // dispatch

}  // namespace sparsec
