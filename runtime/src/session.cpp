// The C API: load (validate everything, allocate once), set inputs, run, read outputs.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "artifact.h"
#include "ops.h"
#include "sparsec_rt.h"

#ifndef SPARSEC_TARGET_ID
#if defined(__aarch64__)
#define SPARSEC_TARGET_ID 2
#elif defined(__wasm__)
#define SPARSEC_TARGET_ID 3
#elif defined(__x86_64__) || defined(_M_X64)
#define SPARSEC_TARGET_ID 1
#else
#define SPARSEC_TARGET_ID 0
#endif
#endif

namespace {

#if defined(__wasm__)
// wasm32 runs one thread, and wasi-libc has no thread-exit destructors for a thread_local string.
std::string g_last_error;
#else
thread_local std::string g_last_error;
#endif

sparsec_status set_error(sparsec_status code, std::string message) {
  g_last_error = std::move(message);
  return code;
}

struct AlignedFree {
  void operator()(uint8_t* p) const { std::free(p); }
};
using AlignedBuffer = std::unique_ptr<uint8_t, AlignedFree>;

// 64-byte aligned; null on failure (a hostile size must not abort the process).
AlignedBuffer allocate(uint64_t size) {
  if (size > (uint64_t(1) << 40)) return AlignedBuffer(nullptr);
  const size_t rounded = size_t((size + 63) / 64 * 64) + 64;
  void* p = nullptr;
#if defined(_WIN32)
  p = _aligned_malloc(rounded, 64);
#else
  if (posix_memalign(&p, 64, rounded) != 0) p = nullptr;
#endif
  return AlignedBuffer(static_cast<uint8_t*>(p));
}

// Runs body; an exception (std::bad_alloc) never crosses the C API. No-op where exceptions are off.
template <typename Body>
sparsec_status guarded(Body&& body) {
#if defined(__cpp_exceptions)
  try {
    return body();
  } catch (...) {
    return set_error(SPARSEC_ERR_OUT_OF_MEMORY, "out of memory");
  }
#else
  return body();
#endif
}

}  // namespace

struct sparsec_session {
  sparsec::Artifact artifact;
  AlignedBuffer file;   // the whole artifact; constants point into its data section
  AlignedBuffer arena;  // activations, then op scratch
  std::vector<sparsec::Tensor> tensors;
  std::vector<sparsec::Op> ops;
  float* scratch = nullptr;
  uint64_t arena_bytes = 0;
  bool profiling = false;
  std::vector<double> op_seconds;  // sized at load: run() allocates nothing
};

extern "C" {

const char* sparsec_last_error(void) { return g_last_error.c_str(); }
const char* sparsec_runtime_target(void) { return sparsec::target_name(SPARSEC_TARGET_ID); }
uint32_t sparsec_format_version(void) { return sparsec::kFormatVersion; }

// Takes the artifact's bytes (64-byte aligned) and validates everything before anything uses them.
static sparsec_status load_owned(AlignedBuffer file, size_t size, sparsec_session** out) {
  using namespace sparsec;
  std::unique_ptr<sparsec_session> s(new (std::nothrow) sparsec_session());
  if (!s) return set_error(SPARSEC_ERR_OUT_OF_MEMORY, "out of memory");
  s->file = std::move(file);
  ParseError perr;
  if (!parse_artifact(s->file.get(), size, &s->artifact, &perr))
    return set_error(sparsec_status(perr.code), perr.message);
  const Artifact& a = s->artifact;
  if (a.target != SPARSEC_TARGET_ID)
    return set_error(SPARSEC_ERR_TARGET, std::string("artifact was built for target ") + target_name(a.target) +
                                             ", this runtime is " + target_name(SPARSEC_TARGET_ID));

  s->tensors.resize(a.tensors.size());
  for (size_t i = 0; i < a.tensors.size(); ++i) {
    const TensorDesc& d = a.tensors[i];
    Tensor& t = s->tensors[i];
    t.dtype = d.dtype;
    t.ndim = d.ndim;
    t.numel = 1;
    for (uint32_t k = 0; k < d.ndim; ++k) {
      t.dims[k] = d.dims[k];
      t.numel *= size_t(d.dims[k]);
    }
    t.nbytes = size_t(d.nbytes);
    t.is_const = d.storage == Storage::kConst;
    t.name = &d.name;
  }
  size_t scratch_floats = 0;
  s->ops.resize(a.ops.size());
  for (size_t i = 0; i < a.ops.size(); ++i) {
    const OpDesc& d = a.ops[i];
    Op& op = s->ops[i];
    op.code = static_cast<OpCode>(d.opcode);
    for (uint32_t id : d.inputs) op.in.push_back(id == kAbsent ? nullptr : &s->tensors[id]);
    for (uint32_t id : d.outputs) op.out.push_back(&s->tensors[id]);
    op.iattr = d.iattr;
    op.fattr = d.fattr;
    op.name = &d.name;
    size_t need = 0;
    std::string why;
    if (!check_op(op, &need, &why)) {
      const char* kind = opcode_name(d.opcode);
      return set_error(SPARSEC_ERR_FORMAT, "op " + std::to_string(i) + " '" + d.name + "' (" +
                                               (kind ? kind : "?") + "): " + why);
    }
    scratch_floats = std::max(scratch_floats, need);
  }
  const uint64_t scratch_offset = (a.arena_size + 63) / 64 * 64;
  s->arena_bytes = scratch_offset + uint64_t(scratch_floats) * sizeof(float);
  s->arena = allocate(s->arena_bytes);
  if (!s->arena) return set_error(SPARSEC_ERR_OUT_OF_MEMORY, "cannot allocate an arena of " + std::to_string(s->arena_bytes) + " bytes");
  uint8_t* constants = s->file.get() + a.data_offset;
  for (size_t i = 0; i < a.tensors.size(); ++i)
    s->tensors[i].data = (s->tensors[i].is_const ? constants : s->arena.get()) + a.tensors[i].offset;
  s->scratch = reinterpret_cast<float*>(s->arena.get() + scratch_offset);
  s->op_seconds.assign(s->ops.size(), 0.0);
  *out = s.release();
  return SPARSEC_OK;
}

static sparsec_status load_copy(const void* data, size_t size, sparsec_session** out) {
  if (!data || !out) return set_error(SPARSEC_ERR_INVALID_ARGUMENT, "null argument");
  *out = nullptr;
  AlignedBuffer file = allocate(size);
  if (!file) return set_error(SPARSEC_ERR_OUT_OF_MEMORY, "cannot allocate " + std::to_string(size) + " bytes");
  std::memcpy(file.get(), data, size);
  return load_owned(std::move(file), size, out);
}

sparsec_status sparsec_load(const void* data, size_t size, sparsec_session** out) {
  return guarded([&] { return load_copy(data, size, out); });
}

// Reads the file straight into the session's buffer: one copy of the weights in memory.
static sparsec_status load_file_unguarded(const char* path, sparsec_session** out) {
  if (!path || !out) return set_error(SPARSEC_ERR_INVALID_ARGUMENT, "null argument");
  *out = nullptr;
  std::FILE* f = std::fopen(path, "rb");
  if (!f) return set_error(SPARSEC_ERR_IO, std::string("cannot open ") + path);
  long size = -1;
  if (std::fseek(f, 0, SEEK_END) == 0) size = std::ftell(f);
  AlignedBuffer file(nullptr);
  if (size >= 0 && std::fseek(f, 0, SEEK_SET) == 0) file = allocate(uint64_t(size));
  const bool read = file && std::fread(file.get(), 1, size_t(size), f) == size_t(size);
  std::fclose(f);
  if (size >= 0 && !file) return set_error(SPARSEC_ERR_OUT_OF_MEMORY, "cannot allocate " + std::to_string(size) + " bytes");
  if (!read) return set_error(SPARSEC_ERR_IO, std::string("cannot read ") + path);
  return load_owned(std::move(file), size_t(size), out);
}

sparsec_status sparsec_load_file(const char* path, sparsec_session** out) {
  return guarded([&] { return load_file_unguarded(path, out); });
}

void sparsec_free(sparsec_session* session) { delete session; }

int32_t sparsec_num_inputs(const sparsec_session* s) { return s ? int32_t(s->artifact.inputs.size()) : 0; }
int32_t sparsec_num_outputs(const sparsec_session* s) { return s ? int32_t(s->artifact.outputs.size()) : 0; }
uint64_t sparsec_arena_bytes(const sparsec_session* s) { return s ? s->arena_bytes : 0; }

static sparsec_status tensor_info(const sparsec_session* s, const std::vector<uint32_t>& ids, int32_t index,
                                  sparsec_tensor_info* info) {
  if (!s || !info || index < 0 || size_t(index) >= ids.size())
    return set_error(SPARSEC_ERR_INVALID_ARGUMENT, "no such input/output index " + std::to_string(index));
  const sparsec::TensorDesc& d = s->artifact.tensors[ids[size_t(index)]];
  info->name = d.name.c_str();
  info->dtype = d.dtype;
  info->ndim = int32_t(d.ndim);
  info->dims = d.dims;
  info->nbytes = size_t(d.nbytes);
  return SPARSEC_OK;
}

sparsec_status sparsec_input_info(const sparsec_session* s, int32_t index, sparsec_tensor_info* info) {
  return s ? tensor_info(s, s->artifact.inputs, index, info) : set_error(SPARSEC_ERR_INVALID_ARGUMENT, "null session");
}

sparsec_status sparsec_output_info(const sparsec_session* s, int32_t index, sparsec_tensor_info* info) {
  return s ? tensor_info(s, s->artifact.outputs, index, info) : set_error(SPARSEC_ERR_INVALID_ARGUMENT, "null session");
}

sparsec_status sparsec_set_input(sparsec_session* s, int32_t index, const void* data, size_t nbytes) {
  sparsec_tensor_info info;
  const sparsec_status st = sparsec_input_info(s, index, &info);
  if (st != SPARSEC_OK) return st;
  if (!data || nbytes != info.nbytes)
    return set_error(SPARSEC_ERR_INVALID_ARGUMENT, std::string("input '") + info.name + "' takes " +
                                                       std::to_string(info.nbytes) + " bytes, got " + std::to_string(nbytes));
  std::memcpy(s->tensors[s->artifact.inputs[size_t(index)]].data, data, nbytes);
  return SPARSEC_OK;
}

static sparsec_status run_unguarded(sparsec_session* s) {
  if (!s) return set_error(SPARSEC_ERR_INVALID_ARGUMENT, "null session");
  using Clock = std::chrono::steady_clock;
  std::string why;
  for (size_t i = 0; i < s->ops.size(); ++i) {
    const Clock::time_point start = s->profiling ? Clock::now() : Clock::time_point();
    const bool ok = sparsec::run_op(s->ops[i], s->scratch, &why);
    if (s->profiling) s->op_seconds[i] = std::chrono::duration<double>(Clock::now() - start).count();
    if (!ok)
      return set_error(SPARSEC_ERR_INVALID_ARGUMENT, "op " + std::to_string(i) + " '" + *s->ops[i].name + "' (" +
                                                         sparsec::opcode_name(uint32_t(s->ops[i].code)) + "): " + why);
  }
  return SPARSEC_OK;
}

sparsec_status sparsec_run(sparsec_session* s) {
  return guarded([&] { return run_unguarded(s); });
}

sparsec_status sparsec_set_profiling(sparsec_session* s, int32_t enabled) {
  if (!s) return set_error(SPARSEC_ERR_INVALID_ARGUMENT, "null session");
  s->profiling = enabled != 0;
  return SPARSEC_OK;
}

int32_t sparsec_num_ops(const sparsec_session* s) { return s ? int32_t(s->ops.size()) : 0; }

sparsec_status sparsec_op_info(const sparsec_session* s, int32_t index, const char** name, const char** kind,
                               double* last_run_seconds) {
  if (!s || index < 0 || size_t(index) >= s->ops.size() || !name || !kind || !last_run_seconds)
    return set_error(SPARSEC_ERR_INVALID_ARGUMENT, "no such op index " + std::to_string(index));
  *name = s->ops[size_t(index)].name->c_str();
  *kind = sparsec::opcode_name(uint32_t(s->ops[size_t(index)].code));
  *last_run_seconds = s->op_seconds[size_t(index)];
  return SPARSEC_OK;
}

sparsec_status sparsec_get_output(const sparsec_session* s, int32_t index, const void** data, size_t* nbytes) {
  sparsec_tensor_info info;
  const sparsec_status st = sparsec_output_info(s, index, &info);
  if (st != SPARSEC_OK) return st;
  if (!data || !nbytes) return set_error(SPARSEC_ERR_INVALID_ARGUMENT, "null argument");
  *data = s->tensors[s->artifact.outputs[size_t(index)]].data;
  *nbytes = info.nbytes;
  return SPARSEC_OK;
}

}  // extern "C"
