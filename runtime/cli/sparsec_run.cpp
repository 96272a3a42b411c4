// sparsec-run: loads an artifact and runs it on raw tensor files, through the C API only.
// C library calls only, no std::string/vector/chrono: they would link libc++'s exception runtime
// (unwinder, demangler) and wide-character formatting into this static binary.
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>

#include "sparsec_rt.h"

namespace {

const char kUsage[] =
    "usage: sparsec-run MODEL.spx [--input X.bin]... [--output Y.bin]... [--repeat N] [--info]\n"
    "                   [--train] [--params-in P.bin] [--params-out P.bin]\n"
    "\n"
    "Runs a sparsec artifact. Tensor files hold raw little-endian element bytes (row-major, no header),\n"
    "e.g. numpy's arr.tofile(path).\n"
    "  --input X.bin   one per model input, in the model's input order\n"
    "  --output Y.bin  one per model output, in the model's output order (may be omitted)\n"
    "  --repeat N      run N times (1 to 1000000000, default 1); prints the mean time per run\n"
    "  --info          print the inputs and outputs (name, dtype, shape, bytes) and exit\n"
    "  --train         the artifact is a training step (sparsec compile --train; the labels are its last\n"
    "                  input): each run is one step, and its loss (output 0, before the update) is printed\n"
    "  --params-in P   start from this param region (trainable parameters and optimizer state, raw bytes)\n"
    "  --params-out P  write the param region after the last run (resume with --params-in)\n"
    "Exit codes: 0 ok, 1 error (message on stderr).\n";

__attribute__((format(printf, 1, 2))) int fail(const char* fmt, ...) {
  std::fputs("sparsec-run: error: ", stderr);
  va_list args;
  va_start(args, fmt);
  std::vfprintf(stderr, fmt, args);
  va_end(args);
  std::fputc('\n', stderr);
  return 1;
}

constexpr long kMaxRepeat = 1000000000;  // a bound on the work one command line can ask for

int fail_runtime(const char* what) { return fail("%s: %s", what, sparsec_last_error()); }

// At most limit bytes of the file in a malloc'd buffer (pipes and devices work too, /dev/zero stops at the
// limit); null on failure. Read limit = expected size + 1 to tell a longer file from an exact one.
unsigned char* read_file(const char* path, size_t limit, size_t* size) {
  std::FILE* f = std::fopen(path, "rb");
  if (!f) return nullptr;
  unsigned char* bytes = static_cast<unsigned char*>(std::malloc(limit));
  *size = 0;
  while (bytes && *size < limit) {
    const size_t got = std::fread(bytes + *size, 1, limit - *size, f);
    if (got == 0) break;
    *size += got;
  }
  const bool ok = bytes && std::ferror(f) == 0;
  std::fclose(f);
  if (!ok) std::free(bytes);
  return ok ? bytes : nullptr;
}

bool write_file(const char* path, const void* data, size_t size) {
  std::FILE* f = std::fopen(path, "wb");
  if (!f) return false;
  const bool written = std::fwrite(data, 1, size, f) == size;
  return std::fclose(f) == 0 && written;
}

void print_tensor(const char* role, const sparsec_tensor_info& info) {
  const char* dtype = sparsec_dtype_name(info.dtype);
  std::printf("%s %s: %s [", role, info.name, dtype ? dtype : "?");
  for (int32_t k = 0; k < info.ndim; ++k) std::printf(k ? ", %lld" : "%lld", static_cast<long long>(info.dims[k]));
  std::printf("] %zu bytes\n", info.nbytes);
}

double monotonic_seconds() {
  timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return double(t.tv_sec) + 1e-9 * double(t.tv_nsec);
}

// Paths given by repeated flags; at most argc of them, so the storage is allocated once.
struct Paths {
  const char** path = nullptr;
  int32_t count = 0;
};

struct Options {
  const char* model = nullptr;
  Paths inputs, outputs;
  long repeat = 1;
  bool info = false;
  bool train = false;
  const char* params_in = nullptr;
  const char* params_out = nullptr;
};

// Returns 0 when the arguments parse, else fail()'s exit code.
int parse(int argc, char** argv, Options* o) {
  o->inputs.path = static_cast<const char**>(std::malloc(sizeof(char*) * size_t(argc)));
  o->outputs.path = static_cast<const char**>(std::malloc(sizeof(char*) * size_t(argc)));
  if (!o->inputs.path || !o->outputs.path) return fail("out of memory");
  for (int i = 1; i < argc; ++i) {
    const char* arg = argv[i];
    const bool has_value = i + 1 < argc;
    if (std::strcmp(arg, "--input") == 0 && has_value) {
      o->inputs.path[o->inputs.count++] = argv[++i];
    } else if (std::strcmp(arg, "--output") == 0 && has_value) {
      o->outputs.path[o->outputs.count++] = argv[++i];
    } else if (std::strcmp(arg, "--repeat") == 0 && has_value) {
      char* end = nullptr;
      errno = 0;
      const long long repeat = std::strtoll(argv[++i], &end, 10);
      if (end == argv[i] || *end != '\0' || repeat < 1)
        return fail("--repeat takes a positive integer, got %s (see --help)", argv[i]);
      if (errno == ERANGE || repeat > kMaxRepeat)
        return fail("--repeat %s is out of range: at most %ld runs", argv[i], kMaxRepeat);
      o->repeat = long(repeat);
    } else if (std::strcmp(arg, "--train") == 0) {
      o->train = true;
    } else if (std::strcmp(arg, "--params-in") == 0 && has_value) {
      o->params_in = argv[++i];
    } else if (std::strcmp(arg, "--params-out") == 0 && has_value) {
      o->params_out = argv[++i];
    } else if (std::strcmp(arg, "--info") == 0) {
      o->info = true;
    } else if (arg[0] != '-' && !o->model) {
      o->model = arg;
    } else {
      return fail("unexpected argument '%s' (see --help)", arg);
    }
  }
  return o->model ? 0 : fail("no model given (see --help)");
}

// Every --input file's bytes, read once; fed again before each run, since the memory plan may reuse an input's
// bytes once its last reader has run.
struct Inputs {
  unsigned char** bytes = nullptr;
  size_t* size = nullptr;
  int32_t count = 0;
  ~Inputs() {
    for (int32_t i = 0; i < count; ++i) std::free(bytes[i]);
    std::free(bytes);
    std::free(size);
  }
};

int read_inputs(const Options& o, sparsec_session* session, Inputs* in) {
  sparsec_tensor_info info;
  const size_t n = size_t(o.inputs.count) + 1;
  in->bytes = static_cast<unsigned char**>(std::calloc(n, sizeof(unsigned char*)));
  in->size = static_cast<size_t*>(std::calloc(n, sizeof(size_t)));
  if (!in->bytes || !in->size) return fail("out of memory");
  in->count = o.inputs.count;  // unread entries stay null
  for (int32_t i = 0; i < o.inputs.count; ++i) {
    if (sparsec_input_info(session, i, &info) != SPARSEC_OK) return fail_runtime("input");
    in->bytes[i] = read_file(o.inputs.path[i], info.nbytes + 1, &in->size[i]);
    if (!in->bytes[i]) return fail("cannot read %s", o.inputs.path[i]);
    if (in->size[i] > info.nbytes)
      return fail("%s is longer than the %zu bytes input '%s' takes", o.inputs.path[i], info.nbytes, info.name);
  }
  return 0;
}

int feed_inputs(const Options& o, const Inputs& in, sparsec_session* session) {
  for (int32_t i = 0; i < in.count; ++i)
    if (sparsec_set_input(session, i, in.bytes[i], in.size[i]) != SPARSEC_OK) return fail_runtime(o.inputs.path[i]);
  return 0;
}

int run(const Options& o, sparsec_session* session) {
  const int32_t num_inputs = sparsec_num_inputs(session), num_outputs = sparsec_num_outputs(session);
  sparsec_tensor_info info;
  if (o.info) {
    std::printf("target %s, arena %llu bytes\n", sparsec_runtime_target(),
                static_cast<unsigned long long>(sparsec_arena_bytes(session)));
    for (int32_t i = 0; i < num_inputs; ++i)
      if (sparsec_input_info(session, i, &info) == SPARSEC_OK) print_tensor("input ", info);
    for (int32_t i = 0; i < num_outputs; ++i)
      if (sparsec_output_info(session, i, &info) == SPARSEC_OK) print_tensor("output", info);
    return 0;
  }
  if (o.inputs.count != num_inputs)
    return fail("the model takes %d input(s), got %d --input", int(num_inputs), int(o.inputs.count));
  if (o.outputs.count != 0 && o.outputs.count != num_outputs)
    return fail("the model has %d output(s), got %d --output", int(num_outputs), int(o.outputs.count));
  Inputs inputs;
  if (read_inputs(o, session, &inputs) != 0 || feed_inputs(o, inputs, session) != 0) return 1;
  const size_t param_bytes = size_t(sparsec_param_bytes(session));
  if (o.train && (param_bytes == 0 || num_outputs < 1))
    return fail("--train needs an artifact compiled with sparsec compile --train");
  if (o.params_in) {
    size_t size = 0;
    unsigned char* bytes = read_file(o.params_in, param_bytes + 1, &size);
    if (!bytes) return fail("cannot read %s", o.params_in);
    const sparsec_status status = sparsec_write_params(session, bytes, size);
    std::free(bytes);
    if (status != SPARSEC_OK) return fail_runtime(o.params_in);
  }
  const double start = monotonic_seconds();
  for (long r = 0; r < o.repeat; ++r) {
    if (r > 0 && feed_inputs(o, inputs, session) != 0) return 1;  // each run (or training step) on the given inputs
    if (sparsec_run(session) != SPARSEC_OK) return fail_runtime("run");
    const void* loss = nullptr;
    size_t nbytes = 0;
    if (o.train && sparsec_get_output(session, 0, &loss, &nbytes) == SPARSEC_OK && nbytes >= sizeof(float))
      std::printf("step %ld: loss %.9g\n", r + 1, double(*static_cast<const float*>(loss)));
  }
  const double seconds = monotonic_seconds() - start;
  if (o.repeat > 1) std::printf("%ld runs, %.3f ms per run\n", o.repeat, 1e3 * seconds / double(o.repeat));
  for (int32_t i = 0; i < o.outputs.count; ++i) {
    const void* data = nullptr;
    size_t nbytes = 0;
    if (sparsec_get_output(session, i, &data, &nbytes) != SPARSEC_OK) return fail_runtime("output");
    if (!write_file(o.outputs.path[i], data, nbytes)) return fail("cannot write %s", o.outputs.path[i]);
  }
  if (o.params_out) {
    void* params = std::malloc(param_bytes ? param_bytes : 1);
    const bool ok = params && sparsec_read_params(session, params, param_bytes) == SPARSEC_OK &&
                    write_file(o.params_out, params, param_bytes);
    std::free(params);
    if (!ok) return fail("cannot write the param region to %s", o.params_out);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0) {
    std::fputs(kUsage, argc < 2 ? stderr : stdout);
    return argc < 2 ? 1 : 0;
  }
  Options options;
  if (parse(argc, argv, &options) != 0) return 1;
  sparsec_session* session = nullptr;
  if (sparsec_load_file(options.model, &session) != SPARSEC_OK) return fail_runtime(options.model);
  const int status = run(options, session);
  sparsec_free(session);
  return status;
}
