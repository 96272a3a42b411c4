// The .spx artifact: layout (shared with compiler/sparsec/artifact/format.py) and its validating parser.
//
//   0  magic "SPARSEC\0"          8 B
//   8  u32 format version        12 u32 target id (1 x86_64, 2 arm64, 3 wasm32)
//  16  u64 file size             24 u32 crc32 of bytes [32, file size)   28 u32 reserved
//  32  u64 data offset (64-aligned)   40 u64 data size   48 u64 arena size   56 u64 reserved
//  64  meta: u32 n_tensors, tensor records; u32 n_ops, op records; u32 n_inputs, ids; u32 n_outputs, ids
//      tensor: u8 dtype, u8 storage (0 const, 1 arena), u8 ndim, u8 0, i64 dims[ndim],
//              u64 offset (in data or arena, 64-aligned), u64 nbytes, u32 name length, name
//      op:     u32 opcode, u32 n_in, u32 n_out, u32 n_iattr, u32 n_fattr, u32 in[n_in] (kAbsent = none),
//              u32 out[n_out], i64 iattr[n_iattr], f32 fattr[n_fattr], u32 name length, name
//  data offset: constant tensor bytes (each 64-aligned)
#pragma once
#include <cstddef>
#include <cstdint>

#include "array.h"
#include "message.h"

namespace sparsec {

constexpr uint32_t kFormatVersion = 1;
constexpr size_t kHeaderSize = 64;
constexpr size_t kMaxDims = 8;
constexpr uint32_t kAbsent = 0xFFFFFFFFu;
// Bounds that keep every shape computation far from int64 overflow.
constexpr int64_t kMaxDim = int64_t(1) << 32;
constexpr uint64_t kMaxNumel = uint64_t(1) << 40;
constexpr int64_t kMaxAttr = int64_t(1) << 32;

enum class Storage : uint8_t { kConst = 0, kArena = 1 };

struct TensorDesc {
  uint8_t dtype = 0;
  Storage storage = Storage::kConst;
  uint32_t ndim = 0;
  int64_t dims[kMaxDims] = {};
  uint64_t offset = 0;
  uint64_t nbytes = 0;
  const char* name = "";  // in Artifact::names
};

struct OpDesc {
  uint32_t opcode = 0;
  Array<uint32_t> inputs, outputs;
  Array<int64_t> iattr;
  Array<float> fattr;
  const char* name = "";  // in Artifact::names
};

struct Artifact {
  uint32_t target = 0;
  uint64_t data_offset = 0, data_size = 0, arena_size = 0;
  Array<TensorDesc> tensors;
  Array<OpDesc> ops;
  Array<uint32_t> inputs, outputs;
  Array<char> names;  // every tensor and op name, NUL-terminated
};

struct ParseError {
  int code = 0;  // sparsec_status
  Message message;
};

size_t dtype_size(uint8_t dtype);  // 0 for an unknown dtype
const char* target_name(uint32_t target);
uint32_t crc32(const uint8_t* data, size_t size);

// Checks header, checksum, every count, offset and size; op semantics are checked by ops.cpp.
bool parse_artifact(const uint8_t* data, size_t size, Artifact* out, ParseError* err);

}  // namespace sparsec
