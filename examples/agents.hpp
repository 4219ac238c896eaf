// The example agents: the scout / analyst pair of the original framework's
// docs, written against the public API (mesh/mesh.hpp).
//
//   ScoutAgent    role "scout", capabilities "search", "validate".
//                 On each tick (or on a {"kind": "search"} notify) it
//                 "finds" an item, asks another scout to validate it
//                 (request), and notifies an analyst of the finding with
//                 the verdict. It answers {"kind": "validate"} requests.
//   AnalystAgent  role "analyst", capabilities "analysis", "summary".
//                 Keeps the findings it is notified of and answers
//                 {"kind": "summary"} requests with a tally.
//
// Both print what they do through say(): one plain line each, prefixed
// with the node's name, e.g.
//   [n1] scout-1a2b3c4d → analyst-5e6f7a8b: finding #3 "a dry cave" (validated by scout-9c0d1e2f on node n2)
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include "mesh/mesh.hpp"

namespace examples {

// Prints one line to stdout (whole lines, even from several threads) and
// flushes, so that output piped to a file or a test reads in order.
void say(std::string_view line);

class ScoutAgent : public mesh::CustomAgent {
 public:
  // `tick`: how often the scout searches by itself; zero: only when told
  // (a {"kind": "search"} notify).
  explicit ScoutAgent(std::chrono::milliseconds tick = std::chrono::milliseconds(0), std::string agent_id = {});

  std::uint64_t findings_reported() const;

 protected:
  // Searches every tick until the agent stops.
  mesh::Task<void> run() override;
  // Validates another scout's find: quick, so a plain function.
  std::optional<mesh::Json> on_peer_request(const mesh::IncomingMessage& message) override;
  // {"kind": "search"} searches once; anything else is printed.
  mesh::Task<void> on_notify(const mesh::IncomingMessage& message) override;

 private:
  // One search: find, ask another scout to validate (awaiting its answer:
  // the scout keeps answering others meanwhile), report to an analyst.
  mesh::Task<void> search();

  const std::chrono::milliseconds tick_;
  mutable std::mutex mu_;
  std::uint64_t next_item_ = 1;
  std::uint64_t reported_ = 0;
};

class AnalystAgent : public mesh::CustomAgent {
 public:
  explicit AnalystAgent(std::string agent_id = {});

  std::uint64_t findings() const;

 protected:
  std::optional<mesh::Json> on_peer_request(const mesh::IncomingMessage& message) override;
  void on_peer_notify(const mesh::IncomingMessage& message) override;

 private:
  mutable std::mutex mu_;
  std::uint64_t findings_ = 0;
  std::uint64_t validated_ = 0;
  std::map<std::string, std::uint64_t> by_scout_;  // scout agent_id -> findings
  mesh::Json latest_;
};

}  // namespace examples
