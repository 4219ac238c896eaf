#include "json_py.hpp"

#include <cstddef>
#include <cstdint>
#include <string>

#include "mesh/json_limits.hpp"

namespace py = pybind11;
using nlohmann::json;

namespace mesh::python {

namespace {

json convert(py::handle v, std::size_t depth) {
  if (v.is_none()) return nullptr;
  // bool before int: True is an int to Python.
  if (PyBool_Check(v.ptr())) return v.ptr() == Py_True;
  if (PyLong_Check(v.ptr())) {
    int overflow = 0;
    const long long n = PyLong_AsLongLongAndOverflow(v.ptr(), &overflow);
    if (overflow == 0) {
      if (n == -1 && PyErr_Occurred()) throw py::error_already_set();
      return static_cast<std::int64_t>(n);
    }
    if (overflow > 0) {
      const unsigned long long u = PyLong_AsUnsignedLongLong(v.ptr());
      if (!PyErr_Occurred()) return static_cast<std::uint64_t>(u);
      PyErr_Clear();
    }
    throw py::value_error("mesh: an int beyond 64 bits cannot be sent");
  }
  if (PyFloat_Check(v.ptr())) return PyFloat_AS_DOUBLE(v.ptr());
  if (PyUnicode_Check(v.ptr())) {
    Py_ssize_t size = 0;
    const char* s = PyUnicode_AsUTF8AndSize(v.ptr(), &size);
    if (!s) throw py::error_already_set();
    return std::string(s, static_cast<std::size_t>(size));
  }
  const bool dict = PyDict_Check(v.ptr());
  const bool seq = PyList_Check(v.ptr()) || PyTuple_Check(v.ptr());
  if ((dict || seq) && depth >= kMaxJsonDepth) {
    throw py::value_error("mesh: a message nested deeper than " + std::to_string(kMaxJsonDepth) +
                          " levels cannot be sent");
  }
  if (dict) {
    json out = json::object();
    PyObject* key = nullptr;
    PyObject* value = nullptr;
    Py_ssize_t pos = 0;
    while (PyDict_Next(v.ptr(), &pos, &key, &value)) {
      if (!PyUnicode_Check(key)) {
        throw py::type_error(std::string("mesh: dict keys must be str, not ") + Py_TYPE(key)->tp_name);
      }
      Py_ssize_t size = 0;
      const char* k = PyUnicode_AsUTF8AndSize(key, &size);
      if (!k) throw py::error_already_set();
      out[std::string(k, static_cast<std::size_t>(size))] = convert(value, depth + 1);
    }
    return out;
  }
  if (seq) {
    json out = json::array();
    const py::sequence s = py::reinterpret_borrow<py::sequence>(v);
    for (py::handle item : s) out.push_back(convert(item, depth + 1));
    return out;
  }
  throw py::type_error(std::string("mesh: cannot send a ") + Py_TYPE(v.ptr())->tp_name +
                       " (dict, list, tuple, str, int, float, bool and None can be sent)");
}

}  // namespace

py::object text(const std::string& s) {
  // A peer's string that is not UTF-8 arrives with the bad bytes replaced
  // rather than failing the whole message.
  PyObject* o = PyUnicode_DecodeUTF8(s.data(), static_cast<Py_ssize_t>(s.size()), "replace");
  if (!o) throw py::error_already_set();
  return py::reinterpret_steal<py::object>(o);
}

json to_json(py::handle value) { return convert(value, 0); }

json context_to_json(py::handle value) {
  if (value.is_none()) return json::object();
  if (!PyDict_Check(value.ptr())) {
    throw py::type_error(std::string("mesh: a context must be a dict or None, not ") + Py_TYPE(value.ptr())->tp_name);
  }
  return convert(value, 0);
}

py::object from_json(const json& v) {
  switch (v.type()) {
    case json::value_t::null:
    case json::value_t::discarded:
      return py::none();
    case json::value_t::boolean:
      return py::bool_(v.get<bool>());
    case json::value_t::number_integer:
      return py::int_(v.get<std::int64_t>());
    case json::value_t::number_unsigned:
      return py::int_(v.get<std::uint64_t>());
    case json::value_t::number_float:
      return py::float_(v.get<double>());
    case json::value_t::string:
      return text(v.get_ref<const std::string&>());
    case json::value_t::binary: {
      const auto& b = v.get_binary();
      return py::bytes(reinterpret_cast<const char*>(b.data()), b.size());
    }
    case json::value_t::array: {
      py::list out(v.size());
      std::size_t i = 0;
      for (const auto& item : v) out[i++] = from_json(item);
      return out;
    }
    case json::value_t::object: {
      py::dict out;
      for (auto it = v.begin(); it != v.end(); ++it) out[text(it.key())] = from_json(it.value());
      return out;
    }
  }
  return py::none();
}

}  // namespace mesh::python
