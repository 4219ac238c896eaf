// Python objects <-> nlohmann::json, for payloads and contexts. Both
// directions need the GIL.
#pragma once

#include <nlohmann/json.hpp>
#include <pybind11/pybind11.h>
#include <string>

namespace mesh::python {

// dict (str keys), list, tuple, str, int, float, bool and None. Anything
// else raises TypeError, an int beyond 64 bits OverflowError, nesting
// deeper than the transport accepts ValueError.
nlohmann::json to_json(pybind11::handle value);
// A context: a dict, or None meaning {}. Anything else raises TypeError.
nlohmann::json context_to_json(pybind11::handle value);
// MessagePack binary (from a C++ sender) becomes bytes.
pybind11::object from_json(const nlohmann::json& value);
// A str from bytes a peer sent: invalid UTF-8 replaced, never an error.
pybind11::object text(const std::string& s);

}  // namespace mesh::python
