// The part of Serf (hashicorp/serf 0.9.4, serf/messages.go) that a member
// must speak for `serf agent`s to list it properly: tags in the node meta,
// and the join and leave intents that carry a Lamport time of the member's
// status. Serf's messages ride as memberlist user messages:
//
//   user message := [serf type u8][go-msgpack body]
//   0 leave      {LTime uint64, Node string, Prune bool}
//   1 join       {LTime uint64, Node string}
//   2 push/pull  {LTime, StatusLTimes map[string]uint64, LeftMembers []string,
//                 EventLTime, Events, QueryLTime}  (the user state of a push/pull)
//
// go-msgpack writes struct fields as a map in the order of the field
// names; readers here accept any order and skip what they do not use.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "mesh/swim/types.hpp"

namespace mesh::swim::serf {

enum class MessageType : std::uint8_t { Leave = 0, Join = 1, PushPull = 2 };


struct Intent {
  MessageType type = MessageType::Join;  // Join or Leave
  std::uint64_t ltime = 0;
  std::string node;
  bool prune = false;  // Leave only
};

Bytes encode_join_intent(std::uint64_t ltime, std::string_view node);
Bytes encode_leave_intent(std::uint64_t ltime, std::string_view node, bool prune);
// A whole Serf user message; nullopt when it is not a well-formed intent.
std::optional<Intent> decode_intent(ByteView message);

// The clocks in a Serf push/pull state (type byte included).
struct PushPullClocks {
  std::uint64_t ltime = 0;
  std::vector<std::pair<std::string, std::uint64_t>> status_ltimes;
  std::vector<std::string> left_members;
};
std::optional<PushPullClocks> decode_push_pull_clocks(ByteView state);

// Serf's LamportClock: Witness(v) moves the clock past v.
class LamportClock {
 public:
  std::uint64_t time() const { return counter_; }
  std::uint64_t increment() { return ++counter_; }
  void witness(std::uint64_t v) {
    if (v >= counter_) counter_ = v + 1;
  }

 private:
  std::uint64_t counter_ = 0;
};

}  // namespace mesh::swim::serf
