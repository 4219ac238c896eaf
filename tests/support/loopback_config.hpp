// The configuration of a test node in this process: P2P on, SWIM and
// ZeroMQ on 127.0.0.1 at ports the kernel picks, memberlist's local
// profile, a short leave.
#pragma once

#include <chrono>
#include <string>
#include <utility>
#include <vector>

#include "mesh/node_config.hpp"

namespace mesh::test {

inline NodeConfig loopback_config(const std::string& name, std::vector<std::string> seeds = {}) {
  NodeConfig c;
  c.node_name = name;
  c.p2p_enabled = true;
  c.swim_host = "127.0.0.1";
  c.swim_port = 0;
  c.zmq_port = 0;
  c.seeds = std::move(seeds);
  c.profile = swim::Profile::Local;
  c.leave_timeout = std::chrono::seconds(2);
  return c;
}

}  // namespace mesh::test
