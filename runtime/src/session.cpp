// The C API: load (validate everything, allocate once), set inputs, run, read outputs.
#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <memory>
#include <new>
#if !defined(__wasm__)
#include <pthread.h>
#endif

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

thread_local sparsec::Message g_last_error;  // trivially destructible: no thread-exit hook

__attribute__((format(printf, 2, 3))) sparsec_status set_error(sparsec_status code, const char* fmt, ...) {
  va_list args;
  va_start(args, fmt);
  g_last_error.vformat(fmt, args);
  va_end(args);
  return code;
}

sparsec_status out_of_memory() { return set_error(SPARSEC_ERR_OUT_OF_MEMORY, "out of memory"); }

double monotonic_seconds() {
  timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return double(t.tv_sec) + 1e-9 * double(t.tv_nsec);
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

// One session's calls are serialised: the arena holds one run's state at a time.
class Lock {
 public:
#if defined(__wasm__)  // single-threaded: nothing to serialise
  void lock() {}
  void unlock() {}
#else
  Lock() { pthread_mutex_init(&mutex_, nullptr); }
  ~Lock() { pthread_mutex_destroy(&mutex_); }
  void lock() { pthread_mutex_lock(&mutex_); }
  void unlock() { pthread_mutex_unlock(&mutex_); }

 private:
  pthread_mutex_t mutex_;
#endif
};

class Held {
 public:
  explicit Held(Lock& lock) : lock_(lock) { lock_.lock(); }
  ~Held() { lock_.unlock(); }
  Held(const Held&) = delete;
  Held& operator=(const Held&) = delete;

 private:
  Lock& lock_;
};

}  // namespace

struct sparsec_session {
  sparsec::Artifact artifact;
  AlignedBuffer file;    // the whole artifact; constants point into its data section
  AlignedBuffer arena;   // activations, then op scratch
  AlignedBuffer params;  // the mutable param region, initialised from the file
  sparsec::Array<sparsec::Tensor> tensors;
  sparsec::Array<sparsec::Op> ops;
  uint8_t* scratch = nullptr;
  uint64_t arena_bytes = 0;
  bool profiling = false;
  sparsec::Array<double> op_seconds;  // sized at load: run() allocates nothing
  Lock lock;
};

namespace {
// Sessions live on malloc too, not on operator new (see array.h).
struct SessionFree {
  void operator()(sparsec_session* s) const {
    s->~sparsec_session();
    std::free(s);
  }
};
}  // namespace

extern "C" {

const char* sparsec_last_error(void) { return g_last_error.text; }
const char* sparsec_runtime_target(void) { return sparsec_target_name(SPARSEC_TARGET_ID); }
uint32_t sparsec_format_version(void) { return sparsec::kFormatVersion; }

// Builds the tensor and op tables of a parsed artifact and checks every op; *scratch_bytes = the largest need.
static sparsec_status build_ops(sparsec_session* s, uint64_t* scratch_bytes) {
  using namespace sparsec;
  const Artifact& a = s->artifact;
  if (!s->tensors.resize(a.tensors.size()) || !s->ops.resize(a.ops.size()) || !s->op_seconds.resize(a.ops.size()))
    return out_of_memory();
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
    if (t.is_const) t.data = s->file.get() + a.data_offset + d.offset;  // checks validate packed constants
  }
  *scratch_bytes = 0;
  for (size_t i = 0; i < a.ops.size(); ++i) {
    const OpDesc& d = a.ops[i];
    Op& op = s->ops[i];
    op.code = static_cast<OpCode>(d.opcode);
    if (!op.in.resize(d.inputs.size()) || !op.out.resize(d.outputs.size()) || !op.iattr.assign(d.iattr) ||
        !op.fattr.assign(d.fattr))
      return out_of_memory();
    for (size_t k = 0; k < d.inputs.size(); ++k) op.in[k] = d.inputs[k] == kAbsent ? nullptr : &s->tensors[d.inputs[k]];
    for (size_t k = 0; k < d.outputs.size(); ++k) op.out[k] = &s->tensors[d.outputs[k]];
    op.name = d.name;
    op.scratch_bytes = d.scratch_bytes;
    Message why;
    if (!check_op(op, &why)) {
      const char* kind = opcode_name(d.opcode);
      return set_error(SPARSEC_ERR_FORMAT, "op %zu '%s' (%s, from %s): %s", i, d.name, kind ? kind : "?", d.source_op,
                       why.text);
    }
    *scratch_bytes = std::max(*scratch_bytes, d.scratch_bytes);
  }
  return SPARSEC_OK;
}

static sparsec_status parse_into(sparsec_session* s, size_t size) {
  sparsec::ParseError perr;
  if (!sparsec::parse_artifact(s->file.get(), size, &s->artifact, &perr))
    return set_error(sparsec_status(perr.code), "%s", perr.message.text);
  return SPARSEC_OK;
}

// Takes the artifact's bytes (64-byte aligned) and validates everything before anything uses them.
static sparsec_status load_owned(AlignedBuffer file, size_t size, sparsec_session** out) {
  using namespace sparsec;
  void* memory = std::malloc(sizeof(sparsec_session));
  if (!memory) return out_of_memory();
  std::unique_ptr<sparsec_session, SessionFree> s(new (memory) sparsec_session());
  s->file = std::move(file);
  sparsec_status status = parse_into(s.get(), size);
  if (status != SPARSEC_OK) return status;
  const Artifact& a = s->artifact;
  if (a.target != SPARSEC_TARGET_ID)
    return set_error(SPARSEC_ERR_TARGET, "artifact was built for target %s, this runtime is %s",
                     sparsec_target_name(a.target), sparsec_target_name(SPARSEC_TARGET_ID));
  uint64_t scratch_bytes = 0;
  if ((status = build_ops(s.get(), &scratch_bytes)) != SPARSEC_OK) return status;
  const uint64_t scratch_offset = (a.arena_size + 63) / 64 * 64;
  s->arena_bytes = scratch_offset + scratch_bytes;
  s->arena = allocate(s->arena_bytes);
  if (!s->arena)
    return set_error(SPARSEC_ERR_OUT_OF_MEMORY, "cannot allocate an arena of %llu bytes",
                     static_cast<unsigned long long>(s->arena_bytes));
  s->params = allocate(a.param_size);
  if (!s->params)
    return set_error(SPARSEC_ERR_OUT_OF_MEMORY, "cannot allocate %llu bytes of parameters",
                     static_cast<unsigned long long>(a.param_size));
  if (a.param_size) std::memcpy(s->params.get(), s->file.get() + a.param_offset, size_t(a.param_size));
  uint8_t* constants = s->file.get() + a.data_offset;
  for (size_t i = 0; i < a.tensors.size(); ++i) {
    const Storage storage = a.tensors[i].storage;
    uint8_t* base = storage == Storage::kConst ? constants : storage == Storage::kArena ? s->arena.get() : s->params.get();
    s->tensors[i].data = base + a.tensors[i].offset;
  }
  s->scratch = s->arena.get() + scratch_offset;
  *out = s.release();
  return SPARSEC_OK;
}

sparsec_status sparsec_validate(const void* data, size_t size) {
  if (!data) return set_error(SPARSEC_ERR_INVALID_ARGUMENT, "null argument");
  void* memory = std::malloc(sizeof(sparsec_session));
  if (!memory) return out_of_memory();
  std::unique_ptr<sparsec_session, SessionFree> s(new (memory) sparsec_session());
  s->file = allocate(size);
  if (!s->file) return set_error(SPARSEC_ERR_OUT_OF_MEMORY, "cannot allocate %zu bytes", size);
  std::memcpy(s->file.get(), data, size);
  sparsec_status status = parse_into(s.get(), size);
  uint64_t scratch_bytes = 0;
  return status != SPARSEC_OK ? status : build_ops(s.get(), &scratch_bytes);
}

sparsec_status sparsec_load(const void* data, size_t size, sparsec_session** out) {
  if (!data || !out) return set_error(SPARSEC_ERR_INVALID_ARGUMENT, "null argument");
  *out = nullptr;
  AlignedBuffer file = allocate(size);
  if (!file) return set_error(SPARSEC_ERR_OUT_OF_MEMORY, "cannot allocate %zu bytes", size);
  std::memcpy(file.get(), data, size);
  return load_owned(std::move(file), size, out);
}

// Reads the file straight into the session's buffer: one copy of the weights in memory.
sparsec_status sparsec_load_file(const char* path, sparsec_session** out) {
  if (!path || !out) return set_error(SPARSEC_ERR_INVALID_ARGUMENT, "null argument");
  *out = nullptr;
  std::FILE* f = std::fopen(path, "rb");
  if (!f) return set_error(SPARSEC_ERR_IO, "cannot open %s", path);
  long size = -1;
  if (std::fseek(f, 0, SEEK_END) == 0) size = std::ftell(f);
  AlignedBuffer file(nullptr);
  if (size >= 0 && std::fseek(f, 0, SEEK_SET) == 0) file = allocate(uint64_t(size));
  const bool read = file && std::fread(file.get(), 1, size_t(size), f) == size_t(size);
  std::fclose(f);
  if (size >= 0 && !file) return set_error(SPARSEC_ERR_OUT_OF_MEMORY, "cannot allocate %ld bytes", size);
  if (!read) return set_error(SPARSEC_ERR_IO, "cannot read %s", path);
  return load_owned(std::move(file), size_t(size), out);
}

void sparsec_free(sparsec_session* session) {
  if (session) SessionFree()(session);
}

int32_t sparsec_num_inputs(const sparsec_session* s) { return s ? int32_t(s->artifact.inputs.size()) : 0; }
int32_t sparsec_num_outputs(const sparsec_session* s) { return s ? int32_t(s->artifact.outputs.size()) : 0; }
uint64_t sparsec_arena_bytes(const sparsec_session* s) { return s ? s->arena_bytes : 0; }

static sparsec_status tensor_info(const sparsec_session* s, const sparsec::Array<uint32_t>& ids, int32_t index,
                                  sparsec_tensor_info* info) {
  if (!s || !info || index < 0 || size_t(index) >= ids.size())
    return set_error(SPARSEC_ERR_INVALID_ARGUMENT, "no such input/output index %d", int(index));
  const sparsec::TensorDesc& d = s->artifact.tensors[ids[size_t(index)]];
  info->name = d.name;
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

static sparsec_status set_input_locked(sparsec_session* s, int32_t index, const void* data, size_t nbytes) {
  sparsec_tensor_info info;
  const sparsec_status st = sparsec_input_info(s, index, &info);
  if (st != SPARSEC_OK) return st;
  if (!data || nbytes != info.nbytes)
    return set_error(SPARSEC_ERR_INVALID_ARGUMENT, "input '%s' takes %zu bytes, got %zu", info.name, info.nbytes, nbytes);
  std::memcpy(s->tensors[s->artifact.inputs[size_t(index)]].data, data, nbytes);
  return SPARSEC_OK;
}

static sparsec_status run_locked(sparsec_session* s) {
  sparsec::Message why;
  for (size_t i = 0; i < s->ops.size(); ++i) {
    const double start = s->profiling ? monotonic_seconds() : 0.0;
    const bool ok = sparsec::run_op(s->ops[i], s->scratch, &why);
    if (s->profiling) s->op_seconds[i] = monotonic_seconds() - start;
    if (!ok)
      return set_error(SPARSEC_ERR_INVALID_ARGUMENT, "op %zu '%s' (%s): %s", i, s->ops[i].name,
                       sparsec::opcode_name(uint32_t(s->ops[i].code)), why.text);
  }
  return SPARSEC_OK;
}

sparsec_status sparsec_set_input(sparsec_session* s, int32_t index, const void* data, size_t nbytes) {
  if (!s) return set_error(SPARSEC_ERR_INVALID_ARGUMENT, "null session");
  Held held(s->lock);
  return set_input_locked(s, index, data, nbytes);
}

sparsec_status sparsec_run(sparsec_session* s) {
  if (!s) return set_error(SPARSEC_ERR_INVALID_ARGUMENT, "null session");
  Held held(s->lock);
  return run_locked(s);
}

sparsec_status sparsec_run_io(sparsec_session* s, const void* const* inputs, const size_t* input_sizes,
                              void* const* outputs, const size_t* output_sizes) {
  if (!s || (!inputs && s->artifact.inputs.size()) || (!input_sizes && s->artifact.inputs.size()) ||
      (!outputs && s->artifact.outputs.size()) || (!output_sizes && s->artifact.outputs.size()))
    return set_error(SPARSEC_ERR_INVALID_ARGUMENT, "null argument");
  Held held(s->lock);
  for (size_t i = 0; i < s->artifact.inputs.size(); ++i) {
    const sparsec_status st = set_input_locked(s, int32_t(i), inputs[i], input_sizes[i]);
    if (st != SPARSEC_OK) return st;
  }
  const sparsec_status st = run_locked(s);
  if (st != SPARSEC_OK) return st;
  for (size_t i = 0; i < s->artifact.outputs.size(); ++i) {
    const sparsec::Tensor& t = s->tensors[s->artifact.outputs[i]];
    if (!outputs[i] && !output_sizes[i]) continue;  // not wanted now (sparsec_get_output reads it until the next run)
    if (!outputs[i] || output_sizes[i] != t.nbytes)
      return set_error(SPARSEC_ERR_INVALID_ARGUMENT, "output %zu takes a buffer of %zu bytes, got %zu", i, t.nbytes,
                       output_sizes[i]);
    std::memcpy(outputs[i], t.data, t.nbytes);
  }
  return SPARSEC_OK;
}

uint64_t sparsec_param_bytes(const sparsec_session* s) { return s ? s->artifact.param_size : 0; }

sparsec_status sparsec_read_params(sparsec_session* s, void* data, size_t nbytes) {
  if (!s || (!data && nbytes)) return set_error(SPARSEC_ERR_INVALID_ARGUMENT, "null argument");
  Held held(s->lock);
  if (nbytes != s->artifact.param_size)
    return set_error(SPARSEC_ERR_INVALID_ARGUMENT, "the param region has %llu bytes, got a buffer of %zu",
                     static_cast<unsigned long long>(s->artifact.param_size), nbytes);
  if (nbytes) std::memcpy(data, s->params.get(), nbytes);
  return SPARSEC_OK;
}

sparsec_status sparsec_write_params(sparsec_session* s, const void* data, size_t nbytes) {
  if (!s || (!data && nbytes)) return set_error(SPARSEC_ERR_INVALID_ARGUMENT, "null argument");
  Held held(s->lock);
  if (nbytes != s->artifact.param_size)
    return set_error(SPARSEC_ERR_INVALID_ARGUMENT, "the param region has %llu bytes, got %zu",
                     static_cast<unsigned long long>(s->artifact.param_size), nbytes);
  if (nbytes) std::memcpy(s->params.get(), data, nbytes);
  return SPARSEC_OK;
}

sparsec_status sparsec_set_profiling(sparsec_session* s, int32_t enabled) {
  if (!s) return set_error(SPARSEC_ERR_INVALID_ARGUMENT, "null session");
  Held held(s->lock);
  s->profiling = enabled != 0;
  return SPARSEC_OK;
}

int32_t sparsec_num_ops(const sparsec_session* s) { return s ? int32_t(s->ops.size()) : 0; }

sparsec_status sparsec_op_info(const sparsec_session* s, int32_t index, const char** name, const char** kind,
                               double* last_run_seconds) {
  if (!s || index < 0 || size_t(index) >= s->ops.size() || !name || !kind || !last_run_seconds)
    return set_error(SPARSEC_ERR_INVALID_ARGUMENT, "no such op index %d", int(index));
  *name = s->ops[size_t(index)].name;
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
