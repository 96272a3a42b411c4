// pybind11 binding of the C API: sparsec._rt. Python-side checks and errors live in sparsec/runtime.py.
#include <pybind11/eval.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>
#include <string>
#include <vector>

#include "../src/ops.h"
#include "sparsec_rt.h"

namespace py = pybind11;

namespace {

py::dtype numpy_dtype(int32_t dtype) {
  switch (dtype) {
    case SPARSEC_F32: return py::dtype::of<float>();
    case SPARSEC_I64: return py::dtype::of<int64_t>();
    case SPARSEC_I32: return py::dtype::of<int32_t>();
    case SPARSEC_U8: return py::dtype::of<uint8_t>();
    default: return py::dtype::of<int8_t>();
  }
}

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

  // Inputs in artifact order, already of the right dtype and shape (checked in Python).
  py::list run(const std::vector<py::array>& inputs) {
    for (size_t i = 0; i < inputs.size(); ++i) {
      py::array a = py::array::ensure(inputs[i], py::array::c_style);
      check(sparsec_set_input(session_, int32_t(i), a.data(), size_t(a.nbytes())));
    }
    {
      py::gil_scoped_release release;
      const sparsec_status status = sparsec_run(session_);
      if (status != SPARSEC_OK) {
        py::gil_scoped_acquire acquire;
        check(status);
      }
    }
    py::list out;
    for (int32_t i = 0; i < sparsec_num_outputs(session_); ++i) {
      sparsec_tensor_info info;
      check(sparsec_output_info(session_, i, &info));
      const void* data;
      size_t nbytes;
      check(sparsec_get_output(session_, i, &data, &nbytes));
      py::array array(numpy_dtype(info.dtype), std::vector<int64_t>(info.dims, info.dims + info.ndim));
      std::memcpy(array.mutable_data(), data, nbytes);
      out.append(array);
    }
    return out;
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
    for (uint32_t code = 1; code <= uint32_t(sparsec::OpCode::kLast); ++code) names[py::int_(code)] = sparsec::opcode_name(code);
    return names;
  });
  py::class_<Session>(m, "Session")
      .def(py::init<py::bytes>(), py::arg("artifact"))
      .def_static("from_file", [](const std::string& path) { return std::make_unique<Session>(path); }, py::arg("path"))
      .def("inputs", [](const Session& s) { return s.infos(true); })
      .def("outputs", [](const Session& s) { return s.infos(false); })
      .def("run", &Session::run, py::arg("inputs"))
      .def("set_profiling", &Session::set_profiling, py::arg("enabled"))
      .def("op_times", &Session::op_times)
      .def_property_readonly("arena_bytes", &Session::arena_bytes);
}
