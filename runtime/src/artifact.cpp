// Parsing of .spx files: every read is bounds-checked, so a truncated or hostile file is an error.
#include "artifact.h"

#include <array>
#include <cstring>

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

  std::string read_string() {
    uint32_t n = read_count(1);
    if (!ok_) return {};
    std::string s(reinterpret_cast<const char*>(data_ + pos_), n);
    pos_ += n;
    return s;
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_;
  bool ok_ = true;
};

bool fail(ParseError* err, int code, std::string message) {
  err->code = code;
  err->message = std::move(message);
  return false;
}

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
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  uint32_t crc = 0xFFFFFFFFu;
  for (size_t i = 0; i < size; ++i) crc = table[(crc ^ data[i]) & 0xFF] ^ (crc >> 8);
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
    return fail(err, SPARSEC_ERR_VERSION,
                "artifact format version " + std::to_string(version) + " is not supported (runtime reads " +
                    std::to_string(kFormatVersion) + ")");
  if (file_size != size)
    return fail(err, SPARSEC_ERR_FORMAT,
                "artifact is " + std::to_string(size) + " bytes but its header says " + std::to_string(file_size) +
                    " (truncated or padded)");
  if (crc32(data + 32, size - 32) != checksum)
    return fail(err, SPARSEC_ERR_CHECKSUM, "artifact checksum mismatch (file is corrupted)");
  if (out->data_offset % 64 != 0 || out->data_offset < kHeaderSize || out->data_offset > size ||
      out->data_size > size - out->data_offset)
    return fail(err, SPARSEC_ERR_FORMAT, "data section lies outside the file");

  Reader r(data, out->data_offset, kHeaderSize);  // meta must end before the data section
  const uint32_t n_tensors = r.read_count(28);
  out->tensors.resize(n_tensors);
  for (uint32_t t = 0; t < n_tensors && r.ok(); ++t) {
    TensorDesc& d = out->tensors[t];
    d.dtype = r.read<uint8_t>();
    const uint8_t storage = r.read<uint8_t>();
    d.ndim = r.read<uint8_t>();
    r.read<uint8_t>();
    const std::string where = "tensor " + std::to_string(t);
    if (!r.ok()) break;
    if (dtype_size(d.dtype) == 0) return fail(err, SPARSEC_ERR_FORMAT, where + " has an unknown dtype");
    if (storage > 1) return fail(err, SPARSEC_ERR_FORMAT, where + " has an unknown storage kind");
    if (d.ndim > kMaxDims) return fail(err, SPARSEC_ERR_FORMAT, where + " has too many dimensions");
    d.storage = static_cast<Storage>(storage);
    uint64_t numel = 1;
    for (uint32_t i = 0; i < d.ndim; ++i) {
      d.dims[i] = r.read<int64_t>();
      if (d.dims[i] < 0 || d.dims[i] > kMaxDim || (d.dims[i] > 0 && numel > kMaxNumel / uint64_t(d.dims[i])))
        return fail(err, SPARSEC_ERR_FORMAT, where + " has an invalid dimension");
      numel *= uint64_t(d.dims[i]);
    }
    d.offset = r.read<uint64_t>();
    d.nbytes = r.read<uint64_t>();
    d.name = r.read_string();
    if (!r.ok()) break;
    if (d.nbytes != numel * dtype_size(d.dtype))
      return fail(err, SPARSEC_ERR_FORMAT, where + " ('" + d.name + "') size does not match its shape");
    const uint64_t limit = d.storage == Storage::kConst ? out->data_size : out->arena_size;
    if (d.offset > limit || d.nbytes > limit - d.offset || d.offset % 64 != 0)
      return fail(err, SPARSEC_ERR_FORMAT, where + " ('" + d.name + "') lies outside its section");
  }
  // A plan never needs more than one buffer per activation: a larger arena is a corrupt header.
  uint64_t naive_arena = 0;
  for (const TensorDesc& d : out->tensors)
    if (d.storage == Storage::kArena) naive_arena += (d.nbytes + 63) / 64 * 64 + 64;
  if (r.ok() && out->arena_size > naive_arena)
    return fail(err, SPARSEC_ERR_FORMAT, "arena size exceeds what its tensors can need");
  const uint32_t n_ops = r.read_count(24);
  out->ops.resize(n_ops);
  for (uint32_t o = 0; o < n_ops && r.ok(); ++o) {
    OpDesc& op = out->ops[o];
    op.opcode = r.read<uint32_t>();
    const uint32_t n_in = r.read_count(4);
    const uint32_t n_out = r.read_count(4);
    const uint32_t n_iattr = r.read_count(8);
    const uint32_t n_fattr = r.read_count(4);
    op.inputs.resize(n_in);
    op.outputs.resize(n_out);
    op.iattr.resize(n_iattr);
    op.fattr.resize(n_fattr);
    for (auto& id : op.inputs) id = r.read<uint32_t>();
    for (auto& id : op.outputs) id = r.read<uint32_t>();
    for (auto& v : op.iattr) v = r.read<int64_t>();
    for (auto& v : op.fattr) v = r.read<float>();
    op.name = r.read_string();
    if (!r.ok()) break;
    for (uint32_t id : op.inputs)
      if (id != kAbsent && id >= n_tensors)
        return fail(err, SPARSEC_ERR_FORMAT, "op " + std::to_string(o) + " names a missing input tensor");
    for (uint32_t id : op.outputs)
      if (id >= n_tensors || out->tensors[id].storage != Storage::kArena)
        return fail(err, SPARSEC_ERR_FORMAT, "op " + std::to_string(o) + " writes a missing or constant tensor");
  }
  for (auto* ids : {&out->inputs, &out->outputs}) {
    const uint32_t n = r.read_count(4);
    ids->resize(n);
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
