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

uint32_t crc32(const uint8_t* data, size_t size) {
  uint32_t crc = 0xFFFFFFFFu;
  for (size_t i = 0; i < size; ++i) crc = kCrcTable.entry[(crc ^ data[i]) & 0xFF] ^ (crc >> 8);
  return crc ^ 0xFFFFFFFFu;
}

namespace {

bool read_quant(Reader& r, TensorDesc& d, uint32_t t, ParseError* err) {
  QuantParams& q = d.quant;
  q.kind = r.read<uint8_t>();
  q.axis = r.read<uint8_t>();
  r.read<uint16_t>();
  const uint32_t count = r.read_count(8);
  if (!r.ok()) return true;  // reported as truncation
  if (d.dtype != SPARSEC_INT8 && d.dtype != SPARSEC_UINT8 && d.dtype != SPARSEC_INT32)
    return fail(err, SPARSEC_ERR_FORMAT, "tensor %u ('%s') is quantized but not an integer tensor", t, d.name);
  const bool per_tensor = q.kind == 1 && count == 1;
  const bool per_channel = q.kind == 2 && q.axis < d.ndim && count == uint64_t(d.dims[q.axis]);
  if (!per_tensor && !per_channel)
    return fail(err, SPARSEC_ERR_FORMAT, "tensor %u ('%s') has invalid quantization parameters", t, d.name);
  if (!q.scale.resize(count) || !q.zero_point.resize(count)) return out_of_memory(err);
  for (float& v : q.scale) v = r.read<float>();
  for (int32_t& v : q.zero_point) v = r.read<int32_t>();
  const int64_t low = d.dtype == SPARSEC_INT8 ? -128 : d.dtype == SPARSEC_UINT8 ? 0 : INT32_MIN;
  const int64_t high = d.dtype == SPARSEC_INT8 ? 127 : d.dtype == SPARSEC_UINT8 ? 255 : INT32_MAX;
  for (uint32_t i = 0; i < count && r.ok(); ++i)
    if (!(q.scale[i] > 0.0f && q.scale[i] <= 3.4e38f) || q.zero_point[i] < low || q.zero_point[i] > high)
      return fail(err, SPARSEC_ERR_FORMAT, "tensor %u ('%s') has a scale or zero point out of range", t, d.name);
  return true;
}

bool read_sparse(Reader& r, TensorDesc& d, uint32_t t, ParseError* err) {
  SparseInfo& s = d.sparse;
  s.format = r.read<uint8_t>();
  s.block_rows = r.read<uint8_t>();
  s.block_cols = r.read<uint8_t>();
  r.read<uint8_t>();
  r.read<uint32_t>();
  s.rows = r.read<int64_t>();
  s.cols = r.read<int64_t>();
  s.nonzeros = r.read<uint64_t>();
  if (!r.ok()) return true;
  auto block_ok = [](uint8_t b) { return b == 1 || b == 2 || b == 4 || b == 8; };
  if ((s.format != 1 && s.format != 2) || !block_ok(s.block_rows) || !block_ok(s.block_cols) || s.rows <= 0 ||
      s.cols <= 0 || s.rows > kMaxDim || s.cols > kMaxDim || s.nonzeros > uint64_t(s.rows) * uint64_t(s.cols))
    return fail(err, SPARSEC_ERR_FORMAT, "tensor %u ('%s') has invalid sparse-format metadata", t, d.name);
  return true;
}

// The memory plan: every arena tensor an op reads was written before (or is a graph input), and two arena
// tensors whose lifetimes meet never share bytes, except an in-place op's output over its first input.
bool check_plan(Artifact* a, ParseError* err) {
  const size_t n = a->tensors.size();
  const int64_t kUnset = INT64_MIN;
  Array<int64_t> first, last;
  if (!first.resize(n) || !last.resize(n)) return out_of_memory(err);
  for (size_t t = 0; t < n; ++t) first[t] = last[t] = kUnset;
  for (uint32_t t : a->inputs) first[t] = last[t] = -1;
  for (size_t o = 0; o < a->ops.size(); ++o) {
    const OpDesc& op = a->ops[o];
    for (uint32_t t : op.inputs) {
      if (t == kAbsent || a->tensors[t].storage != Storage::kArena) continue;
      if (first[t] == kUnset)
        return fail(err, SPARSEC_ERR_FORMAT, "op %zu reads tensor %u ('%s') before anything writes it", o, t,
                    a->tensors[t].name);
      last[t] = int64_t(o);
    }
    for (uint32_t t : op.outputs) {
      if (first[t] == kUnset) first[t] = int64_t(o);
      last[t] = int64_t(o) > last[t] ? int64_t(o) : last[t];
    }
  }
  for (uint32_t t : a->outputs) {
    if (first[t] == kUnset) return fail(err, SPARSEC_ERR_FORMAT, "graph output %u ('%s') is never written", t, a->tensors[t].name);
    last[t] = int64_t(a->ops.size());
  }
  for (size_t i = 0; i < n; ++i) {
    const TensorDesc& ti = a->tensors[i];
    if (ti.storage != Storage::kArena || first[i] == kUnset || ti.nbytes == 0) continue;
    for (size_t j = i + 1; j < n; ++j) {
      const TensorDesc& tj = a->tensors[j];
      if (tj.storage != Storage::kArena || first[j] == kUnset || tj.nbytes == 0) continue;
      if (ti.offset >= tj.offset + tj.nbytes || tj.offset >= ti.offset + ti.nbytes) continue;
      if (last[i] < first[j] || last[j] < first[i]) continue;
      // Lifetimes meet at one op: allowed only as that op's in-place output over its first input.
      const bool meet_once = last[i] == first[j] || last[j] == first[i];
      const int64_t at = last[i] == first[j] ? last[i] : last[j];
      const size_t reader = last[i] == first[j] ? i : j, writer = reader == i ? j : i;
      bool in_place = false;
      if (meet_once && at >= 0 && at < int64_t(a->ops.size()) && ti.offset == tj.offset && ti.nbytes == tj.nbytes) {
        const OpDesc& op = a->ops[size_t(at)];
        in_place = op_meta(op.opcode).in_place && op.inputs.size() &&
                   op.inputs[0] == reader && op.outputs.size() == 1 && op.outputs[0] == writer;
      }
      if (!in_place)
        return fail(err, SPARSEC_ERR_FORMAT, "tensors %zu ('%s') and %zu ('%s') overlap in the arena while both are live",
                    i, ti.name, j, tj.name);
    }
  }
  return true;
}

}  // namespace

bool parse_artifact(const uint8_t* data, size_t size, Artifact* out, ParseError* err) {
  if (size < 12 || std::memcmp(data, "SPARSEC\0", 8) != 0)
    return fail(err, SPARSEC_ERR_FORMAT, "not a sparsec artifact (bad magic or too short)");
  Reader header(data, size, 8);
  const uint32_t version = header.read<uint32_t>();
  if (version != kFormatVersion) {
    const char* writer = version < kFormatVersion ? kFirstSparsecWithFormat[kFormatVersion] : nullptr;
    if (writer)
      return fail(err, SPARSEC_ERR_VERSION,
                  "artifact format version %u is older than this runtime reads (%u): rebuild it with sparsec >= %s",
                  version, kFormatVersion, writer);
    return fail(err, SPARSEC_ERR_VERSION,
                "artifact format version %u is newer than this runtime reads (%u): update the sparsec runtime", version,
                kFormatVersion);
  }
  if (size < kHeaderSize) return fail(err, SPARSEC_ERR_FORMAT, "artifact is truncated (shorter than its header)");
  out->target = header.read<uint32_t>();
  const uint64_t file_size = header.read<uint64_t>();
  const uint32_t checksum = header.read<uint32_t>();
  out->features = header.read<uint32_t>();
  out->data_offset = header.read<uint64_t>();
  out->data_size = header.read<uint64_t>();
  out->arena_size = header.read<uint64_t>();
  out->param_offset = header.read<uint64_t>();
  out->param_size = header.read<uint64_t>();
  uint64_t reserved = 0;
  for (int i = 0; i < 3; ++i) reserved |= header.read<uint64_t>();
  if (file_size != size)
    return fail(err, SPARSEC_ERR_FORMAT, "artifact is %zu bytes but its header says %llu (truncated or padded)", size,
                static_cast<unsigned long long>(file_size));
  if (crc32(data + 32, size - 32) != checksum)
    return fail(err, SPARSEC_ERR_CHECKSUM, "artifact checksum mismatch (file is corrupted)");
  if (out->features & ~uint32_t(SPARSEC_FEATURES_KNOWN))
    return fail(err, SPARSEC_ERR_VERSION, "artifact needs features this runtime lacks (flags 0x%x): update the runtime",
                out->features & ~uint32_t(SPARSEC_FEATURES_KNOWN));
  if (reserved != 0) return fail(err, SPARSEC_ERR_FORMAT, "reserved header fields are not zero");
  if (out->data_offset % kAlignment != 0 || out->data_offset < kHeaderSize || out->data_offset > size ||
      out->data_size > size - out->data_offset)
    return fail(err, SPARSEC_ERR_FORMAT, "data section lies outside the file");
  const uint64_t data_end = out->data_offset + out->data_size;
  if (out->param_size == 0 ? out->param_offset != 0
                           : out->param_offset % kAlignment != 0 || out->param_offset < data_end ||
                                 out->param_offset > size || out->param_size > size - out->param_offset)
    return fail(err, SPARSEC_ERR_FORMAT, "param section lies outside the file");
  if (out->param_size > 0 && !(out->features & SPARSEC_FEATURE_PARAMS))
    return fail(err, SPARSEC_ERR_FORMAT, "param section without the PARAMS feature flag");

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
    const uint8_t flags = r.read<uint8_t>();
    if (!r.ok()) break;
    if (sparsec_dtype_size(d.dtype) == 0) return fail(err, SPARSEC_ERR_FORMAT, "tensor %u has an unknown dtype", t);
    if (storage > 2) return fail(err, SPARSEC_ERR_FORMAT, "tensor %u has an unknown storage kind", t);
    if (storage == 2 && !(out->features & SPARSEC_FEATURE_PARAMS))
      return fail(err, SPARSEC_ERR_FORMAT, "tensor %u is a parameter but the PARAMS feature flag is not set", t);
    if (flags & ~3u) return fail(err, SPARSEC_ERR_FORMAT, "tensor %u has unknown flags", t);
    if (((flags & 1) && !(out->features & SPARSEC_FEATURE_QUANT)) ||
        ((flags & 2) && !(out->features & SPARSEC_FEATURE_SPARSE)))
      return fail(err, SPARSEC_ERR_FORMAT, "tensor %u has a record whose feature flag is not set", t);
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
    if (d.nbytes != numel * sparsec_dtype_size(d.dtype))
      return fail(err, SPARSEC_ERR_FORMAT, "tensor %u ('%s') size does not match its shape", t, d.name);
    const uint64_t limit = d.storage == Storage::kConst   ? out->data_size
                           : d.storage == Storage::kArena ? out->arena_size
                                                          : out->param_size;
    if (d.offset > limit || d.nbytes > limit - d.offset || d.offset % kAlignment != 0)
      return fail(err, SPARSEC_ERR_FORMAT, "tensor %u ('%s') lies outside its section", t, d.name);
    if ((flags & 1) && !read_quant(r, d, t, err)) return false;
    if ((flags & 2) && !read_sparse(r, d, t, err)) return false;
  }
  // A plan never needs more than one buffer per activation: a larger arena is a corrupt header.
  uint64_t naive_arena = 0;
  for (const TensorDesc& d : out->tensors)
    if (d.storage == Storage::kArena) naive_arena += (d.nbytes + 63) / 64 * 64 + 64;
  if (r.ok() && out->arena_size > naive_arena)
    return fail(err, SPARSEC_ERR_FORMAT, "arena size exceeds what its tensors can need");
  const uint32_t n_ops = r.read_count(40);
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
    op.scratch_bytes = r.read<uint64_t>();
    op.name = r.read_string(out->names.data(), &names_used);
    op.source_op = r.read_string(out->names.data(), &names_used);
    if (!r.ok()) break;
    if (op.scratch_bytes > kMaxNumel) return fail(err, SPARSEC_ERR_FORMAT, "op %u asks for too much scratch", o);
    for (uint32_t id : op.inputs)
      if (id != kAbsent && id >= n_tensors)
        return fail(err, SPARSEC_ERR_FORMAT, "op %u names a missing input tensor", o);
    for (uint32_t id : op.outputs)
      if (id >= n_tensors || out->tensors[id].storage == Storage::kConst)
        return fail(err, SPARSEC_ERR_FORMAT, "op %u writes a missing or constant tensor", o);
  }
  for (auto* ids : {&out->inputs, &out->outputs}) {
    if (!ids->resize(r.read_count(4))) return out_of_memory(err);
    for (auto& id : *ids) {
      id = r.read<uint32_t>();
      if (r.ok() && (id >= n_tensors || out->tensors[id].storage != Storage::kArena))
        return fail(err, SPARSEC_ERR_FORMAT, "a graph input/output names a missing or non-arena tensor");
    }
  }
  if (!r.ok()) return fail(err, SPARSEC_ERR_FORMAT, "artifact metadata is truncated");
  return check_plan(out, err);
}

}  // namespace sparsec
