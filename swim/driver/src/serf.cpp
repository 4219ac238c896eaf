#include "serf.hpp"

#include "mesh/msgpack_lite.hpp"
#include "mesh/swim/membership.hpp"

namespace mesh::swim::serf {

Bytes encode_join_intent(std::uint64_t ltime, std::string_view node) {
  Bytes out{static_cast<std::uint8_t>(MessageType::Join)};
  mp::Writer w(out);
  w.map_header(2);
  w.raw("LTime");
  w.uint(ltime);
  w.raw("Node");
  w.raw(node);
  return out;
}

Bytes encode_leave_intent(std::uint64_t ltime, std::string_view node, bool prune) {
  Bytes out{static_cast<std::uint8_t>(MessageType::Leave)};
  mp::Writer w(out);
  w.map_header(3);
  w.raw("LTime");
  w.uint(ltime);
  w.raw("Node");
  w.raw(node);
  w.raw("Prune");
  w.boolean(prune);
  return out;
}

std::optional<Intent> decode_intent(ByteView message) {
  if (message.empty()) return std::nullopt;
  Intent in;
  if (message[0] == static_cast<std::uint8_t>(MessageType::Leave)) in.type = MessageType::Leave;
  else if (message[0] == static_cast<std::uint8_t>(MessageType::Join)) in.type = MessageType::Join;
  else return std::nullopt;
  mp::Reader r(message.subspan(1));
  bool have_ltime = false, have_node = false;
  const bool ok = r.for_each_entry([&](std::string_view key) {
    if (key == "LTime") {
      auto v = r.uint();
      if (v) in.ltime = *v;
      have_ltime = v.has_value();
      return have_ltime;
    }
    if (key == "Node") {
      auto v = r.str();
      if (v) in.node.assign(*v);
      have_node = v.has_value();
      return have_node;
    }
    if (key == "Prune") {
      auto v = r.boolean();
      if (v) in.prune = *v;
      return v.has_value();
    }
    return r.skip();
  });
  if (!ok) return std::nullopt;
  if (!have_ltime || !have_node) return std::nullopt;
  return in;
}

std::optional<PushPullClocks> decode_push_pull_clocks(ByteView state) {
  if (state.empty() || state[0] != static_cast<std::uint8_t>(MessageType::PushPull))
    return std::nullopt;
  mp::Reader r(state.subspan(1));
  PushPullClocks out;
  const bool ok = r.for_each_entry([&](std::string_view key) {
    if (key == "LTime") {
      auto v = r.uint();
      if (v) out.ltime = *v;
      return v.has_value();
    }
    if (key == "StatusLTimes") {
      return r.for_each_entry([&](std::string_view name) {
        auto v = r.uint();
        if (v) out.status_ltimes.emplace_back(std::string(name), *v);
        return v.has_value();
      });
    }
    if (key == "LeftMembers") {
      auto a = r.array_header();
      if (!a) return false;
      out.left_members.reserve(*a);
      for (std::size_t j = 0; j < *a; ++j) {
        auto name = r.str();
        if (!name) return false;
        out.left_members.emplace_back(*name);
      }
      return true;
    }
    return r.skip();
  });
  if (!ok) return std::nullopt;
  return out;
}

}  // namespace mesh::swim::serf
