// The fixture of the single-node tests: node A (10.0.0.1) under test, peers
// B, C, D present only as the packets a test writes on their behalf.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "mesh/swim/codec.hpp"
#include "mesh/swim/node.hpp"

namespace mesh::swim::test {

using std::chrono::milliseconds;
using std::chrono::seconds;

inline Address addr(std::uint8_t last) { return Address::v4(10, 0, 0, last, 7946); }

inline Alive alive_msg(const std::string& name, std::uint8_t last, std::uint32_t inc, Bytes meta = {},
                Bytes vsn = {1, 5, 2, 2, 5, 5}) {
  Alive a;
  a.incarnation = inc;
  a.node = name;
  a.addr = {10, 0, 0, last};
  a.port = 7946;
  a.meta = std::move(meta);
  a.vsn = std::move(vsn);
  return a;
}

struct Sent {
  Address to;
  std::vector<PacketMessage> messages;
  bool crc = false;
};

class NodeTest : public ::testing::Test {
 protected:
  NodeTest() : node_(make_config(), 7) {
    node_.start(now_);
    drain();
  }

  static Config make_config() {
    Config c = Config::lan();
    c.name = "a";
    c.advertise = addr(1);
    return c;
  }

  void feed(const PacketMessage& m, std::uint8_t from = 2) {
    Bytes b;
    encode(m, b);
    node_.on_packet(now_, addr(from), b);
    drain();
  }

  void feed_bytes(const Bytes& b, std::uint8_t from = 2) {
    node_.on_packet(now_, addr(from), b);
    drain();
  }

  // Run every timer up to now + d, in order.
  void advance(Duration d) {
    const Time target = now_ + d;
    for (;;) {
      const Time next = node_.next_deadline();
      if (next > target) break;
      now_ = std::max(now_, next);
      node_.on_timer(now_);
      drain();
    }
    now_ = target;
  }

  void drain() {
    std::vector<std::pair<Address, Ack>> replies;
    for (auto& p : node_.drain_packets()) {
      auto d = decode_packet(p.bytes);
      ASSERT_TRUE(d.ok()) << d.error().reason;
      sent_.push_back({p.to, d->messages, !p.bytes.empty() && p.bytes[0] == 12});
      if (responders_.count(p.to) == 0) continue;
      for (const auto& m : d->messages)
        if (const auto* ping = std::get_if<Ping>(&m)) replies.push_back({p.to, Ack{ping->seq_no, {}}});
    }
    // Peers marked as responders answer every ping at once.
    for (auto& [from, ack] : replies) {
      Bytes b;
      encode(ack, b);
      node_.on_packet(now_, from, b);
    }
    if (!replies.empty()) drain();
    for (auto& s : node_.drain_streams()) streams_.push_back(std::move(s));
    for (auto& e : node_.drain_events()) events_.push_back(std::move(e));
  }

  // Add B, C, D as alive members that answer pings, forgetting what that
  // produced.
  // Each then pings A, which verifies it (gossip_abuse_test.cpp).
  void add_peers() {
    responders_ = {addr(2), addr(3), addr(4)};
    feed(alive_msg("b", 2, 1));
    feed(alive_msg("c", 3, 1));
    feed(alive_msg("d", 4, 1));
    for (std::uint8_t p = 2; p <= 4; ++p) ping_from(p);
    clear();
  }

  // A ping to A from peer 10.0.0.<last>, named by its letter.
  void ping_from(std::uint8_t last) {
    Ping p;
    p.seq_no = 1;
    p.node = "a";
    p.source_addr = {10, 0, 0, last};
    p.source_port = 7946;
    p.source_node = std::string(1, static_cast<char>('a' + last - 1));
    feed(p, last);
  }

  void clear() {
    sent_.clear();
    streams_.clear();
    events_.clear();
  }

  template <class M>
  std::vector<M> sent_of(std::optional<Address> to = std::nullopt) const {
    std::vector<M> out;
    for (const auto& s : sent_) {
      if (to && s.to != *to) continue;
      for (const auto& m : s.messages)
        if (const auto* x = std::get_if<M>(&m)) out.push_back(*x);
    }
    return out;
  }

  bool has_event(EventKind k, const std::string& name) const {
    return std::any_of(events_.begin(), events_.end(), [&](const MemberEvent& e) {
      return e.kind == k && e.member.name == name;
    });
  }

  MemberState state_of(const std::string& name) const {
    const Member* m = node_.member(name);
    EXPECT_NE(m, nullptr) << name;
    return m ? m->state : MemberState::Dead;
  }

  // Every peer of add_peers() answers pings, except `name`.
  void silence(const std::string& name) {
    responders_ = {addr(2), addr(3), addr(4)};
    responders_.erase(addr(static_cast<std::uint8_t>(name[0] - 'a' + 1)));
  }

  Time now_ = Time{} + seconds(1000);
  Node node_;
  std::vector<Sent> sent_;
  std::vector<OutStream> streams_;
  std::vector<MemberEvent> events_;
  std::set<Address> responders_;
};

}  // namespace mesh::swim::test
