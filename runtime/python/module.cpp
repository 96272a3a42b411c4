// pybind11 binding of the C API: sparsec._rt. Python-side checks and errors live in sparsec/runtime.py.
#include <pybind11/eval.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "../src/ops.h"
#include "sparsec_rt.h"

namespace py = pybind11;

namespace {

// dtype codes and numpy names come from the contract (sparsec_contract.h).
py::dtype numpy_dtype(int32_t dtype) { return py::dtype(std::string(sparsec_dtype_name(dtype))); }

// Names come from the artifact: never trust them to be valid UTF-8.
py::str text(const char* s) { return py::reinterpret_steal<py::str>(PyUnicode_DecodeUTF8(s, Py_ssize_t(std::strlen(s)), "replace")); }

py::dict info_dict(const sparsec_tensor_info& info) {
  py::dict d;
  d["name"] = text(info.name);
  d["dtype"] = numpy_dtype(info.dtype);
  d["shape"] = std::vector<int64_t>(info.dims, info.dims + info.ndim);
  return d;
}

class Session {
 public:
  explicit Session(py::bytes data) {
    const std::string_view bytes = data;
    check(sparsec_load(bytes.data(), bytes.size(), &session_));
  }
  explicit Session(const std::string& path) { check(sparsec_load_file(path.c_str(), &session_)); }
  ~Session() { sparsec_free(session_); }
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  static void check(sparsec_status status) {
    if (status != SPARSEC_OK) {
      static py::object error = py::module_::import("sparsec._rt").attr("StatusError");
      PyErr_SetObject(error.ptr(), py::make_tuple(int(status), text(sparsec_last_error())).ptr());
      throw py::error_already_set();
    }
  }

  py::list infos(bool inputs) const {
    py::list out;
    const int32_t n = inputs ? sparsec_num_inputs(session_) : sparsec_num_outputs(session_);
    for (int32_t i = 0; i < n; ++i) {
      sparsec_tensor_info info;
      check(inputs ? sparsec_input_info(session_, i, &info) : sparsec_output_info(session_, i, &info));
      out.append(info_dict(info));
    }
    return out;
  }

  // Inputs in artifact order, already of the right dtype and shape (checked in Python). One sparsec_run_io call:
  // several Python threads may run one session (the C API serialises them). The outputs go to new arrays, or to
  // `into` (arrays of the outputs' dtypes and shapes, reused across runs: a training step allocates nothing; None
  // skips an output, which output() copies later).
  py::list run(const std::vector<py::array>& inputs, std::optional<py::list> into) {
    std::vector<py::array> contiguous;
    std::vector<const void*> in_data;
    std::vector<size_t> in_sizes;
    for (const py::array& input : inputs) {
      contiguous.push_back(py::array::ensure(input, py::array::c_style));
      in_data.push_back(contiguous.back().data());
      in_sizes.push_back(size_t(contiguous.back().nbytes()));
    }
    py::list out;
    std::vector<void*> out_data;
    std::vector<size_t> out_sizes;
    const int32_t outputs = sparsec_num_outputs(session_);
    if (into && py::len(*into) != size_t(outputs))
      throw py::value_error("run: `into` must hold one array per output");
    for (int32_t i = 0; i < outputs; ++i) {
      sparsec_tensor_info info;
      check(sparsec_output_info(session_, i, &info));
      const py::dtype dtype = numpy_dtype(info.dtype);
      const std::vector<int64_t> shape(info.dims, info.dims + info.ndim);
      if (into && (*into)[size_t(i)].is_none()) {
        out_data.push_back(nullptr);
        out_sizes.push_back(0);
        out.append(py::none());
        continue;
      }
      py::array array = into ? py::array((*into)[size_t(i)]) : py::array(dtype, shape);
      if (into && (array.dtype().kind() != dtype.kind() || array.dtype().itemsize() != dtype.itemsize()))
        throw py::value_error("run: `into` array " + std::to_string(i) + " has another dtype than the output");
      if (into && (!array.writeable() || !(array.flags() & py::array::c_style) || size_t(array.nbytes()) != info.nbytes))
        throw py::value_error("run: `into` array " + std::to_string(i) + " is not a writeable C-contiguous array of " +
                              std::to_string(info.nbytes) + " bytes");
      out_data.push_back(array.mutable_data());
      out_sizes.push_back(info.nbytes);
      out.append(array);
    }
    sparsec_status status;
    {
      py::gil_scoped_release release;
      status = sparsec_run_io(session_, in_data.data(), in_sizes.data(), out_data.data(), out_sizes.data());
    }
    check(status);
    return out;
  }

  // Output `index` of the last run, copied (valid until the next run on this session).
  py::array output(int32_t index) const {
    sparsec_tensor_info info;
    check(sparsec_output_info(session_, index, &info));
    const void* data;
    size_t nbytes;
    check(sparsec_get_output(session_, index, &data, &nbytes));
    py::array array(numpy_dtype(info.dtype), std::vector<int64_t>(info.dims, info.dims + info.ndim));
    std::memcpy(array.mutable_data(), data, nbytes);
    return array;
  }

  py::bytes read_params() {
    std::string bytes(size_t(sparsec_param_bytes(session_)), '\0');
    check(sparsec_read_params(session_, bytes.data(), bytes.size()));
    return py::bytes(bytes);
  }

  void write_params(py::bytes data) {
    const std::string_view bytes = data;
    check(sparsec_write_params(session_, bytes.data(), bytes.size()));
  }

  uint64_t arena_bytes() const { return sparsec_arena_bytes(session_); }

  void set_profiling(bool enabled) { check(sparsec_set_profiling(session_, enabled)); }

  // [(node name, runtime op kind, seconds of the last run)] in execution order.
  py::list op_times() const {
    py::list out;
    for (int32_t i = 0; i < sparsec_num_ops(session_); ++i) {
      const char *name, *kind;
      double seconds;
      check(sparsec_op_info(session_, i, &name, &kind, &seconds));
      out.append(py::make_tuple(text(name), text(kind), seconds));
    }
    return out;
  }

 private:
  sparsec_session* session_ = nullptr;
};

}  // namespace

PYBIND11_MODULE(_rt, m) {
  m.doc() = "sparsec runtime (C++), bound to Python";
  py::exec(R"(
class StatusError(Exception):
    """A failed runtime call: args are (status code, message)."""
)", m.attr("__dict__"));
  m.def("runtime_target", [] { return std::string(sparsec_runtime_target()); });
  m.def("format_version", [] { return sparsec_format_version(); });
  m.def("opcode_names", [] {
    py::dict names;
    for (uint32_t code = 1; code <= uint32_t(sparsec::OpCode::kLast); ++code)
      if (const char* name = sparsec::opcode_name(code)) names[py::int_(code)] = name;  // codes between families: none
    return names;
  });
  m.def("validate", [](py::bytes artifact) {
    const std::string_view bytes = artifact;
    Session::check(sparsec_validate(bytes.data(), bytes.size()));
  }, py::arg("artifact"), "Checks an artifact like load does, for any target (raises StatusError).");
  py::class_<Session>(m, "Session")
      .def(py::init<py::bytes>(), py::arg("artifact"))
      .def_static("from_file", [](const std::string& path) { return std::make_unique<Session>(path); }, py::arg("path"))
      .def("inputs", [](const Session& s) { return s.infos(true); })
      .def("outputs", [](const Session& s) { return s.infos(false); })
      .def("run", &Session::run, py::arg("inputs"), py::arg("into") = py::none())
      .def("output", &Session::output, py::arg("index"))
      .def("set_profiling", &Session::set_profiling, py::arg("enabled"))
      .def("read_params", &Session::read_params)
      .def("write_params", &Session::write_params, py::arg("data"))
      .def("op_times", &Session::op_times)
      .def_property_readonly("arena_bytes", &Session::arena_bytes);
}
