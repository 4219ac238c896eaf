// Agents and helpers shared by the facade's tests (mesh_test.cpp, P2P off;
// mesh_cluster_test.cpp, several nodes with P2P on).
#pragma once

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "mesh/mesh.hpp"

namespace mesh::test {

// Polls `pred` until it holds or `limit` passes (generous: tests never
// fail on a wall-clock figure, only on a condition that never came).
inline bool eventually(const std::function<bool()>& pred,
                       std::chrono::milliseconds limit = std::chrono::seconds(45)) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > until) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

// A plain agent whose run() does nothing: the test thread drives its client.
class Probe : public Agent {
 public:
  explicit Probe(std::string id, std::string role = "probe", std::size_t mailbox = 0)
      : Agent({.role = std::move(role), .agent_id = std::move(id), .mailbox_limit = mailbox}) {}
};

// Answers {"echo": <data>, "by": <its id>, "node": <its node>}; keeps the
// notifies it got.
class Echo : public CustomAgent {
 public:
  explicit Echo(std::string id, std::string role = "echo", std::vector<std::string> caps = {})
      : CustomAgent({.role = std::move(role), .capabilities = std::move(caps), .agent_id = std::move(id)}) {}
  std::optional<Json> on_peer_request(const IncomingMessage& m) override {
    return Json{{"echo", m.data}, {"by", id()}, {"node", peers().node_name()}};
  }
  void on_peer_notify(const IncomingMessage& m) override {
    std::lock_guard lock(mu);
    notifies.push_back(m);
  }
  std::size_t notify_count() {
    std::lock_guard lock(mu);
    return notifies.size();
  }
  std::vector<IncomingMessage> notifies_copy() {
    std::lock_guard lock(mu);
    return notifies;
  }
  std::mutex mu;
  std::vector<IncomingMessage> notifies;
};

// Never answers (returns nullopt) and counts the requests it got.
class Silent : public CustomAgent {
 public:
  explicit Silent(std::string id, std::string role = "silent")
      : CustomAgent({.role = std::move(role), .agent_id = std::move(id)}) {}
  std::optional<Json> on_peer_request(const IncomingMessage&) override {
    ++requests;
    return std::nullopt;
  }
  std::atomic<int> requests{0};
};

inline std::vector<std::string> ids(const std::vector<PeerInfo>& peers) {
  std::vector<std::string> out;
  for (const auto& p : peers) out.push_back(p.card.agent_id);
  return out;
}

// True when no listing `client` offers mentions an id starting with '$'
// (the node's own client, "$node", or any other reserved name) or an empty
// role.
inline bool lists_no_reserved_id(const PeerClient& client) {
  for (const auto& p : client.list_peers()) {
    if (p.card.agent_id.empty() || p.card.agent_id.front() == '$') return false;
  }
  for (const auto& [id, p] : client.registry()) {
    if (id.empty() || id.front() == '$') return false;
  }
  for (const auto& role : client.list_roles()) {
    if (role.empty() || role.front() == '$') return false;
  }
  return true;
}

// Registry repair and fetches quick enough for tests of a few nodes.
inline MeshOptions fast_options() {
  MeshOptions o;
  o.repair_interval = std::chrono::milliseconds(500);
  o.registry_fetch_timeout = std::chrono::seconds(2);
  return o;
}

// A directory of its own under the system's temporary one, removed with
// everything in it at the end of the scope; path is empty if it could not
// be made.
struct ScratchDir {
  std::string path;
  ScratchDir() {
    std::string t = (std::filesystem::temp_directory_path() / "mesh-test-XXXXXX").string();
    path = ::mkdtemp(t.data()) ? t : std::string();
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  // Writes `text` to the file `name` in it; returns the file's path.
  std::string write(const std::string& name, const std::string& text) const {
    const std::string p = path + "/" + name;
    std::ofstream(p) << text;
    return p;
  }
};

// The seed address of a started P2P mesh on 127.0.0.1.
inline std::string seed_of(const Mesh& m) { return "127.0.0.1:" + std::to_string(m.swim_port()); }

}  // namespace mesh::test
