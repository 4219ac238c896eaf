// meshctl's membership commands, as Serf's operators know them:
//
//   meshctl members [--detailed] [--status S]... [--tag K=V]... [--json]
//       the members a node knows (GET /v1/members), sorted by name; the
//       table hides the mesh's own tags (mesh, zmq, rv, zkey, skey) unless
//       --detailed, which also shows incarnation and protocol versions.
//       --status keeps the members in one of the given states, --tag those
//       carrying every given tag with that exact value. --json prints the
//       members kept, whole.
#pragma once

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

// `where` names the node in an error line ("127.0.0.1:9946").
int members(const Call& call, const MembersArgs& args, bool json, const std::string& where);

}  // namespace mesh::meshctl
