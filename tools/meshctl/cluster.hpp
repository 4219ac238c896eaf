// meshctl's membership commands, as Serf's operators know them:
//
//   meshctl members [--detailed] [--status S]... [--tag K=V]... [--json]
//       the members a node knows (GET /v1/members), sorted by name; the
//       table hides the mesh's own tags (mesh, zmq, rv, zkey, skey) unless
//       --detailed, which also shows incarnation and protocol versions.
//       --status keeps the members in one of the given states, --tag those
//       carrying every given tag with that exact value. --json prints the
//       members kept, whole.
//   meshctl force-leave NODE
//       a failed member becomes left everywhere (POST /v1/force-leave)
//   meshctl query ROLE MESSAGE | --capability C MESSAGE [--policy P] [--timeout-ms N]
//       the same request to every agent matching, answers gathered (POST
//       /v1/query): one line per agent; exit 0 when the policy (all,
//       first:K, quorum) was met, 1 when not
//   meshctl broadcast MESSAGE [--role R] [--capability C]
//       a notify to every agent (or every one matching)
//   meshctl monitor [--count N] [--json]
//       what the node sees happen, as it happens (GET /v1/events, a
//       blocking query asked again and again): nodes joining, failing,
//       leaving, agents added and removed; one line each, until Ctrl-C or
//       N events
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "threads.hpp"  // meshctl::Call

namespace mesh::meshctl {

struct MembersArgs {
  bool detailed = false;
  std::vector<std::string> statuses;  // empty: any
  std::vector<std::string> tags;      // "key=value", each required
};

// The tags a Mesh sets on its own member for other nodes (not the user's).
bool internal_tag(const std::string& key);

struct QueryArgs {
  std::vector<std::string> words;  // [ROLE] MESSAGE
  std::string capability;
  std::string context;  // JSON object text, empty when not given
  std::string policy = "all";
  std::uint64_t timeout_ms = 30'000;
};

struct BroadcastArgs {
  std::string message;
  std::string role;
  std::string capability;
  std::string context;
};

struct MonitorArgs {
  std::uint64_t count = 0;  // 0: until interrupted
};

// `where` names the node in an error line ("127.0.0.1:9946").
int members(const Call& call, const MembersArgs& args, bool json, const std::string& where);
int force_leave(const Call& call, const std::string& node, bool json);
int query(const Call& call, const QueryArgs& args, bool json, const std::string& where);
int broadcast(const Call& call, const BroadcastArgs& args, bool json, const std::string& where);
int monitor(const Call& call, const MonitorArgs& args, bool json, const std::string& where);

}  // namespace mesh::meshctl
