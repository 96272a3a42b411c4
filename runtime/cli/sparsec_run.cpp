// sparsec-run: loads an artifact and runs it on raw tensor files, through the C API only.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "sparsec_rt.h"

namespace {

const char kUsage[] =
    "usage: sparsec-run MODEL.spx [--input X.bin]... [--output Y.bin]... [--repeat N] [--info]\n"
    "\n"
    "Runs a sparsec artifact. Tensor files hold raw little-endian element bytes (row-major, no header),\n"
    "e.g. numpy's arr.tofile(path).\n"
    "  --input X.bin   one per model input, in the model's input order\n"
    "  --output Y.bin  one per model output, in the model's output order (may be omitted)\n"
    "  --repeat N      run N times (default 1); prints the mean time per run\n"
    "  --info          print the inputs and outputs (name, dtype, shape, bytes) and exit\n"
    "Exit codes: 0 ok, 1 error (message on stderr).\n";

int fail(const std::string& message) {
  std::fprintf(stderr, "sparsec-run: error: %s\n", message.c_str());
  return 1;
}

int fail_runtime(const std::string& what) { return fail(what + ": " + sparsec_last_error()); }

const char* dtype_name(int32_t dtype) {
  switch (dtype) {
    case SPARSEC_F32: return "float32";
    case SPARSEC_I64: return "int64";
    case SPARSEC_I32: return "int32";
    case SPARSEC_U8: return "uint8";
    case SPARSEC_I8: return "int8";
    default: return "?";
  }
}

bool read_file(const char* path, std::vector<unsigned char>* bytes) {
  std::FILE* f = std::fopen(path, "rb");
  if (!f) return false;
  unsigned char chunk[1 << 16];
  size_t n;
  while ((n = std::fread(chunk, 1, sizeof chunk, f)) > 0) bytes->insert(bytes->end(), chunk, chunk + n);
  const bool ok = std::ferror(f) == 0;
  std::fclose(f);
  return ok;
}

bool write_file(const char* path, const void* data, size_t size) {
  std::FILE* f = std::fopen(path, "wb");
  if (!f) return false;
  const bool written = std::fwrite(data, 1, size, f) == size;
  return std::fclose(f) == 0 && written;
}

void print_tensor(const char* role, const sparsec_tensor_info& info) {
  std::printf("%s %s: %s [", role, info.name, dtype_name(info.dtype));
  for (int32_t k = 0; k < info.ndim; ++k) std::printf(k ? ", %lld" : "%lld", static_cast<long long>(info.dims[k]));
  std::printf("] %zu bytes\n", info.nbytes);
}

struct Options {
  const char* model = nullptr;
  std::vector<const char*> inputs, outputs;
  long repeat = 1;
  bool info = false;
};

// Returns an error message, or "" when the arguments parse.
std::string parse(int argc, char** argv, Options* o) {
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const bool has_value = i + 1 < argc;
    if (arg == "--input" && has_value) {
      o->inputs.push_back(argv[++i]);
    } else if (arg == "--output" && has_value) {
      o->outputs.push_back(argv[++i]);
    } else if (arg == "--repeat" && has_value) {
      char* end = nullptr;
      o->repeat = std::strtol(argv[++i], &end, 10);
      if (*end != '\0' || o->repeat < 1) return std::string("--repeat takes a positive integer, got ") + argv[i];
    } else if (arg == "--info") {
      o->info = true;
    } else if (arg[0] != '-' && !o->model) {
      o->model = argv[i];
    } else {
      return "unexpected argument '" + arg + "'";
    }
  }
  return o->model ? "" : "no model given";
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
  if (int32_t(o.inputs.size()) != num_inputs)
    return fail("the model takes " + std::to_string(num_inputs) + " input(s), got " + std::to_string(o.inputs.size()) +
                " --input");
  if (!o.outputs.empty() && int32_t(o.outputs.size()) != num_outputs)
    return fail("the model has " + std::to_string(num_outputs) + " output(s), got " +
                std::to_string(o.outputs.size()) + " --output");
  for (int32_t i = 0; i < num_inputs; ++i) {
    std::vector<unsigned char> bytes;
    if (!read_file(o.inputs[size_t(i)], &bytes)) return fail(std::string("cannot read ") + o.inputs[size_t(i)]);
    if (sparsec_set_input(session, i, bytes.data(), bytes.size()) != SPARSEC_OK)
      return fail_runtime(o.inputs[size_t(i)]);
  }
  const auto start = std::chrono::steady_clock::now();
  for (long r = 0; r < o.repeat; ++r)
    if (sparsec_run(session) != SPARSEC_OK) return fail_runtime("run");
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (o.repeat > 1) std::printf("%ld runs, %.3f ms per run\n", o.repeat, 1e3 * seconds / double(o.repeat));
  for (size_t i = 0; i < o.outputs.size(); ++i) {
    const void* data = nullptr;
    size_t nbytes = 0;
    if (sparsec_get_output(session, int32_t(i), &data, &nbytes) != SPARSEC_OK) return fail_runtime("output");
    if (!write_file(o.outputs[i], data, nbytes)) return fail(std::string("cannot write ") + o.outputs[i]);
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
  const std::string error = parse(argc, argv, &options);
  if (!error.empty()) return fail(error + " (see --help)");
  sparsec_session* session = nullptr;
  if (sparsec_load_file(options.model, &session) != SPARSEC_OK) return fail_runtime(options.model);
  const int status = run(options, session);
  sparsec_free(session);
  return status;
}
