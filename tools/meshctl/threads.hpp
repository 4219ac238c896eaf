// meshctl's conversation commands (docs/conversations.md, "Seeing threads"):
//
//   meshctl threads [--json]
//       the threads a node knows (GET /v1/threads)
//   meshctl thread ID [--audit DIR ...] [--json]
//       the node's record of one thread; with audit directories, the
//       thread's messages from every node's trail merged in time order,
//       and the latency of each hop (p50/p99 of answers and of handling)
//   meshctl thread ID --audit DIR ... --replay
//       sends the thread's opening message again, to the same role, with
//       the recorded limits, and shows the new thread beside the old one
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace mesh::meshctl {

// GET `target` (body null) or POST `body` to it on the node's admin API;
// nullopt after printing one line on failure.
using Call = std::function<std::optional<std::string>(const std::string& target, const std::string* body,
                                                      std::chrono::milliseconds timeout)>;

struct ThreadArgs {
  std::string id;
  std::vector<std::string> audit_dirs;
  bool replay = false;
};

int threads(const Call& call, bool json);
int thread(const Call& call, const ThreadArgs& args, bool json);

}  // namespace mesh::meshctl
