// Parsing of .spx files: every read is bounds-checked, so a truncated or hostile file is an error.
#include "artifact.h"

#include <cstdarg>
#include <cstring>
#include <initializer_list>

#include "sparsec_rt.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the .spx format is little-endian and the loader reads it in place: big-endian hosts need byte swaps"
#endif

namespace sparsec {
namespace {

// Sequential little-endian reader that fails (sticky) instead of reading past the end.
class Reader {
 public:
  Reader(const uint8_t* data, size_t size, size_t pos) : data_(data), size_(size), pos_(pos) {}
  bool ok() const { return ok_; }
  size_t remaining() const { return ok_ ? size_ - pos_ : 0; }

  template <typename T>
  T read() {
    T value{};
    if (!ok_ || size_ - pos_ < sizeof(T)) {
      ok_ = false;
      return value;
    }
    std::memcpy(&value, data_ + pos_, sizeof(T));  // host is little-endian (checked above)
    pos_ += sizeof(T);
    return value;
  }

  // A count of records that each take at least min_record_bytes: bounded by what is left.
  uint32_t read_count(size_t min_record_bytes) {
    uint32_t n = read<uint32_t>();
    if (ok_ && uint64_t(n) * min_record_bytes > remaining()) ok_ = false;
    return ok_ ? n : 0;
  }

  // Copies a length-prefixed string to pool + *used with a NUL. A string takes 4 + n bytes here and
  // n + 1 in the pool, so a pool as large as what this reader covers always has room.
  const char* read_string(char* pool, size_t* used) {
    uint32_t n = read_count(1);
    if (!ok_) return "";
    char* s = pool + *used;
    std::memcpy(s, data_ + pos_, n);
    s[n] = '\0';
    *used += n + 1;
    pos_ += n;
    return s;
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_;
  bool ok_ = true;
};

__attribute__((format(printf, 3, 4))) bool fail(ParseError* err, int code, const char* fmt, ...) {
  err->code = code;
  va_list args;
  va_start(args, fmt);
  err->message.vformat(fmt, args);
  va_end(args);
  return false;
}

bool out_of_memory(ParseError* err) { return fail(err, SPARSEC_ERR_OUT_OF_MEMORY, "out of memory"); }

// Built at compile time: a function-local static would need a thread-safe guard from libc++abi.
constexpr struct CrcTable {
  uint32_t entry[256] = {};
  constexpr CrcTable() {
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      entry[i] = c;
    }
  }
} kCrcTable;

}  // namespace

size_t dtype_size(uint8_t dtype) {
  switch (dtype) {
    case SPARSEC_F32: return 4;
    case SPARSEC_I64: return 8;
    case SPARSEC_I32: return 4;
    case SPARSEC_U8: return 1;
    case SPARSEC_I8: return 1;
    default: return 0;
  }
}

const char* target_name(uint32_t target) {
  switch (target) {
    case 1: return "x86_64";
    case 2: return "arm64";
    case 3: return "wasm32";
    default: return "unknown";
  }
}

uint32_t crc32(const uint8_t* data, size_t size) {
  uint32_t crc = 0xFFFFFFFFu;
  for (size_t i = 0; i < size; ++i) crc = kCrcTable.entry[(crc ^ data[i]) & 0xFF] ^ (crc >> 8);
  return crc ^ 0xFFFFFFFFu;
}

bool parse_artifact(const uint8_t* data, size_t size, Artifact* out, ParseError* err) {
  if (size < kHeaderSize || std::memcmp(data, "SPARSEC\0", 8) != 0)
    return fail(err, SPARSEC_ERR_FORMAT, "not a sparsec artifact (bad magic or too short)");
  Reader header(data, size, 8);
  const uint32_t version = header.read<uint32_t>();
  out->target = header.read<uint32_t>();
  const uint64_t file_size = header.read<uint64_t>();
  const uint32_t checksum = header.read<uint32_t>();
  header.read<uint32_t>();
  out->data_offset = header.read<uint64_t>();
  out->data_size = header.read<uint64_t>();
  out->arena_size = header.read<uint64_t>();
  if (version != kFormatVersion)
    return fail(err, SPARSEC_ERR_VERSION, "artifact format version %u is not supported (runtime reads %u)", version,
                kFormatVersion);
  if (file_size != size)
    return fail(err, SPARSEC_ERR_FORMAT, "artifact is %zu bytes but its header says %llu (truncated or padded)", size,
                static_cast<unsigned long long>(file_size));
  if (crc32(data + 32, size - 32) != checksum)
    return fail(err, SPARSEC_ERR_CHECKSUM, "artifact checksum mismatch (file is corrupted)");
  if (out->data_offset % 64 != 0 || out->data_offset < kHeaderSize || out->data_offset > size ||
      out->data_size > size - out->data_offset)
    return fail(err, SPARSEC_ERR_FORMAT, "data section lies outside the file");

  Reader r(data, out->data_offset, kHeaderSize);  // meta must end before the data section
  if (!out->names.resize(out->data_offset - kHeaderSize)) return out_of_memory(err);
  size_t names_used = 0;
  const uint32_t n_tensors = r.read_count(28);
  if (!out->tensors.resize(n_tensors)) return out_of_memory(err);
  for (uint32_t t = 0; t < n_tensors && r.ok(); ++t) {
    TensorDesc& d = out->tensors[t];
    d.dtype = r.read<uint8_t>();
    const uint8_t storage = r.read<uint8_t>();
    d.ndim = r.read<uint8_t>();
    r.read<uint8_t>();
    if (!r.ok()) break;
    if (dtype_size(d.dtype) == 0) return fail(err, SPARSEC_ERR_FORMAT, "tensor %u has an unknown dtype", t);
    if (storage > 1) return fail(err, SPARSEC_ERR_FORMAT, "tensor %u has an unknown storage kind", t);
    if (d.ndim > kMaxDims) return fail(err, SPARSEC_ERR_FORMAT, "tensor %u has too many dimensions", t);
    d.storage = static_cast<Storage>(storage);
    uint64_t numel = 1;
    for (uint32_t i = 0; i < d.ndim; ++i) {
      d.dims[i] = r.read<int64_t>();
      if (d.dims[i] < 0 || d.dims[i] > kMaxDim || (d.dims[i] > 0 && numel > kMaxNumel / uint64_t(d.dims[i])))
        return fail(err, SPARSEC_ERR_FORMAT, "tensor %u has an invalid dimension", t);
      numel *= uint64_t(d.dims[i]);
    }
    d.offset = r.read<uint64_t>();
    d.nbytes = r.read<uint64_t>();
    d.name = r.read_string(out->names.data(), &names_used);
    if (!r.ok()) break;
    if (d.nbytes != numel * dtype_size(d.dtype))
      return fail(err, SPARSEC_ERR_FORMAT, "tensor %u ('%s') size does not match its shape", t, d.name);
    const uint64_t limit = d.storage == Storage::kConst ? out->data_size : out->arena_size;
    if (d.offset > limit || d.nbytes > limit - d.offset || d.offset % 64 != 0)
      return fail(err, SPARSEC_ERR_FORMAT, "tensor %u ('%s') lies outside its section", t, d.name);
  }
  // A plan never needs more than one buffer per activation: a larger arena is a corrupt header.
  uint64_t naive_arena = 0;
  for (const TensorDesc& d : out->tensors)
    if (d.storage == Storage::kArena) naive_arena += (d.nbytes + 63) / 64 * 64 + 64;
  if (r.ok() && out->arena_size > naive_arena)
    return fail(err, SPARSEC_ERR_FORMAT, "arena size exceeds what its tensors can need");
  const uint32_t n_ops = r.read_count(24);
  if (!out->ops.resize(n_ops)) return out_of_memory(err);
  for (uint32_t o = 0; o < n_ops && r.ok(); ++o) {
    OpDesc& op = out->ops[o];
    op.opcode = r.read<uint32_t>();
    const uint32_t n_in = r.read_count(4);
    const uint32_t n_out = r.read_count(4);
    const uint32_t n_iattr = r.read_count(8);
    const uint32_t n_fattr = r.read_count(4);
    if (!op.inputs.resize(n_in) || !op.outputs.resize(n_out) || !op.iattr.resize(n_iattr) || !op.fattr.resize(n_fattr))
      return out_of_memory(err);
    for (auto& id : op.inputs) id = r.read<uint32_t>();
    for (auto& id : op.outputs) id = r.read<uint32_t>();
    for (auto& v : op.iattr) v = r.read<int64_t>();
    for (auto& v : op.fattr) v = r.read<float>();
    op.name = r.read_string(out->names.data(), &names_used);
    if (!r.ok()) break;
    for (uint32_t id : op.inputs)
      if (id != kAbsent && id >= n_tensors)
        return fail(err, SPARSEC_ERR_FORMAT, "op %u names a missing input tensor", o);
    for (uint32_t id : op.outputs)
      if (id >= n_tensors || out->tensors[id].storage != Storage::kArena)
        return fail(err, SPARSEC_ERR_FORMAT, "op %u writes a missing or constant tensor", o);
  }
  for (auto* ids : {&out->inputs, &out->outputs}) {
    if (!ids->resize(r.read_count(4))) return out_of_memory(err);
    for (auto& id : *ids) {
      id = r.read<uint32_t>();
      if (r.ok() && (id >= n_tensors || out->tensors[id].storage != Storage::kArena))
        return fail(err, SPARSEC_ERR_FORMAT, "a graph input/output names a missing or constant tensor");
    }
  }
  if (!r.ok()) return fail(err, SPARSEC_ERR_FORMAT, "artifact metadata is truncated");
  return true;
}

}  // namespace sparsec
