// The .spx artifact, format version 2: layout (written by compiler/sparsec/artifact/format.py) and its
// validating parser. Constants and codes come from the contract (contract.h / sparsec_contract.h).
//
//   0  magic "SPARSEC\0"              8 u32 format version          12 u32 target id
//  16  u64 file size                 24 u32 crc32 of bytes [32, file size)   28 u32 feature flags
//  32  u64 data offset (64-aligned)  40 u64 data size               48 u64 arena size (activations)
//  56  u64 param offset (64-aligned) 64 u64 param size (initial values of the mutable param region)
//  72  24 reserved bytes (0)
//  96  meta: u32 n_tensors, tensor records; u32 n_ops, op records; u32 n_inputs, ids; u32 n_outputs, ids
//      tensor: u8 dtype, u8 storage (0 const, 1 arena, 2 param), u8 ndim, u8 flags (1 quant, 2 sparse),
//              i64 dims[ndim], u64 offset (in data, arena or param region; 64-aligned), u64 nbytes, name,
//              [quant: u8 kind (1 per tensor, 2 per channel), u8 axis, u16 0, u32 count,
//                      f32 scale[count], i32 zero_point[count]]
//              [sparse: u8 format (1 blocked, 2 N:M), u8 block rows, u8 block cols, u8 0, u32 0,
//                       i64 dense rows, i64 dense cols, u64 nonzeros]
//      op:     u32 opcode, u32 n_in, u32 n_out, u32 n_iattr, u32 n_fattr, u32 in[n_in] (kAbsent = none),
//              u32 out[n_out], i64 iattr[n_iattr], f32 fattr[n_fattr], u64 scratch bytes, name, source op type
//      name:   u32 length, UTF-8 bytes
//  data offset: constant tensor bytes (each 64-aligned); param offset: the param region's initial bytes
#pragma once
#include <cstddef>
#include <cstdint>

#include "array.h"
#include "contract.h"
#include "message.h"

namespace sparsec {

// Bounds that keep every shape computation far from int64 overflow.
constexpr int64_t kMaxDim = int64_t(1) << 32;
constexpr uint64_t kMaxNumel = uint64_t(1) << 40;

enum class Storage : uint8_t { kConst = 0, kArena = 1, kParam = 2 };

struct QuantParams {
  uint8_t kind = 0;  // 0 none, 1 per tensor, 2 per channel
  uint8_t axis = 0;
  Array<float> scale;
  Array<int32_t> zero_point;
};

struct SparseInfo {
  uint8_t format = 0;  // 0 dense
  uint8_t block_rows = 0, block_cols = 0;
  int64_t rows = 0, cols = 0;
  uint64_t nonzeros = 0;
};

struct TensorDesc {
  uint8_t dtype = 0;
  Storage storage = Storage::kConst;
  uint32_t ndim = 0;
  int64_t dims[kMaxDims] = {};
  uint64_t offset = 0;
  uint64_t nbytes = 0;
  const char* name = "";  // in Artifact::names
  QuantParams quant;
  SparseInfo sparse;
};

struct OpDesc {
  uint32_t opcode = 0;
  Array<uint32_t> inputs, outputs;
  Array<int64_t> iattr;
  Array<float> fattr;
  uint64_t scratch_bytes = 0;
  const char* name = "";       // in Artifact::names: the ONNX node it came from
  const char* source_op = "";  // that node's ONNX op type
};

struct Artifact {
  uint32_t target = 0;
  uint32_t features = 0;
  uint64_t data_offset = 0, data_size = 0, arena_size = 0, param_offset = 0, param_size = 0;
  Array<TensorDesc> tensors;
  Array<OpDesc> ops;
  Array<uint32_t> inputs, outputs;
  Array<char> names;  // every tensor and op name, NUL-terminated
};

struct ParseError {
  int code = 0;  // sparsec_status
  Message message;
};

uint32_t crc32(const uint8_t* data, size_t size);

// Checks header, checksum, every count, offset and size, and the memory plan (no two live buffers overlap,
// nothing is read before it is written); op semantics are checked by ops.cpp.
bool parse_artifact(const uint8_t* data, size_t size, Artifact* out, ParseError* err);

}  // namespace sparsec
