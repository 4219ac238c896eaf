// What meshctl's commands share to lay out their output.
#pragma once

#include <cstddef>
#include <string>

namespace mesh::meshctl {

// `s` padded with blanks to `w` columns (left as it is when wider).
inline std::string pad(std::string s, std::size_t w) {
  if (s.size() < w) s.resize(w, ' ');
  return s;
}

// "host:port", or "[v6]:port".
inline std::string endpoint_text(const std::string& host, unsigned port) {
  const bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

}  // namespace mesh::meshctl
