// Gossip keys changed live across the cluster, with `serf keys`' verbs:
// each node applies an operation to its own SWIM keyring when asked on its
// reserved inbox "$keys"; Mesh::keys_async asks every member and gathers
// the answers.
//
// On the wire (MessagePack of JSON): the request {"op": "list" | "install"
// | "use" | "remove", "key": <base64>}, the answer {"error": <text, empty
// when done>, "keys": [<base64>, the primary first]}. The inbox is reached
// only over the transport, so, with a gossip key, only by members whose
// CURVE key the cluster's authenticated gossip vouches for.
#include <spdlog/spdlog.h>

#include <memory>
#include <mutex>

#include "mesh/base64.hpp"
#include "mesh/mesh.hpp"
#include "mesh/swim/membership.hpp"
#include "mesh_core.hpp"

namespace mesh {

using detail::MeshCore;

namespace detail {

// Mesh::keys_async's answers, this node's first, then the others' as they
// come, each in its slot.
struct KeyGather {
  std::mutex mu;
  std::vector<Mesh::KeyResult> results;
  std::size_t waiting = 0;
  std::function<void(std::vector<Mesh::KeyResult>)> done;
  std::vector<std::uint8_t> payload;
  std::chrono::steady_clock::time_point deadline;

  void finish_one() {
    std::function<void(std::vector<Mesh::KeyResult>)> call;
    {
      std::lock_guard lock(mu);
      if (--waiting != 0) return;
      call = std::move(done);
    }
    if (call) call(std::move(results));
  }
};

namespace {

// How long a refused node waits before it is asked again: the transport's
// first reconnect step.
constexpr std::chrono::milliseconds kKeysRetry{100};

void record_answer(Mesh::KeyResult& r, const transport::Reply& reply) {
  if (!reply.ok()) {
    r.error = "no answer: " + std::string(transport::to_string(reply.error));
    return;
  }
  const auto a = decode_json(reply.envelope.payload, Json());
  if (!a || !a->is_object() || !a->contains("error") || !(*a)["error"].is_string()) {
    r.error = "a malformed answer";
    return;
  }
  r.error = (*a)["error"].get<std::string>();
  if (const auto k = a->find("keys"); k != a->end() && k->is_array()) {
    for (const auto& v : *k) {
      if (v.is_string()) r.keys.push_back(v.get<std::string>());
    }
  }
}

// One node's answer is in: recorded in its slot, and the gather told.
void settle(KeyGather& g, std::size_t slot, const transport::Reply& reply) {
  {
    std::lock_guard lock(g.mu);
    record_answer(g.results[slot], reply);
  }
  g.finish_one();
}

}  // namespace

// Asks one node, until the deadline. A node that joined a moment ago may
// not know this one yet and refuse its connection (it takes CURVE keys
// only from members it knows); the transport then fails requests to it
// at once (PeerUnreachable) and tries the connection again after a
// backoff. Asked again meanwhile, such a node answers once it has learnt
// of us, well within any sensible timeout; an unreachable one is
// reported at the deadline, with the last error.
void ask_keys(MeshCore& c, const std::shared_ptr<transport::Transport>& t, const std::shared_ptr<KeyGather>& g,
              std::size_t slot, const std::string& node) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(g->deadline - std::chrono::steady_clock::now());
  transport::OutMessage m;
  m.to = {node, kKeysInbox};
  m.sender_agent = "$mesh";
  m.payload = g->payload;
  t->request_async(std::move(m), std::max(left, std::chrono::milliseconds(1)),
                   [&c, g, slot, node, weak = std::weak_ptr<transport::Transport>(t)](transport::Reply reply) {
    const bool again = reply.error == transport::ErrorCode::PeerUnreachable &&
                       std::chrono::steady_clock::now() + kKeysRetry < g->deadline;
    if (again) {
      // On the mesh's executor, which outlives the transport: at the
      // retry, a node that stopped meanwhile has no transport any more.
      auto timer = std::make_shared<boost::asio::steady_timer>(c.pool->get_executor(), kKeysRetry);
      timer->async_wait([&c, g, slot, node, weak, timer](const boost::system::error_code&) {
        if (auto transport = weak.lock()) {
          ask_keys(c, transport, g, slot, node);
        } else {
          settle(*g, slot, transport::Reply{transport::ErrorCode::Shutdown, {}});
        }
      });
      return;
    }
    settle(*g, slot, reply);
  });
}

Mesh::KeyResult MeshCore::apply_key_op(Mesh::KeyOp op, const std::string& key_base64) {
  Mesh::KeyResult r;
  r.node = node_name;
  std::shared_lock readers(membership_readers);
  swim::Membership* m = live_membership();
  if (!m) {
    r.error = "membership is not running on this node";
    return r;
  }
  if (op != Mesh::KeyOp::List) {
    auto key = swim::Keyring::decode_base64_key(key_base64);
    if (!key) {
      r.error = "not a base64 key of 16, 24 or 32 bytes";
      return r;
    }
    // One change at a time, so that the keyring saved is the one in use.
    std::lock_guard change(keyring_mu);
    const auto kind = op == Mesh::KeyOp::Install ? swim::Membership::KeyOp::Install
                      : op == Mesh::KeyOp::Use   ? swim::Membership::KeyOp::Use
                                                 : swim::Membership::KeyOp::Remove;
    if (auto err = m->change_keyring(kind, std::move(*key))) {
      r.error = *err;
    } else if (!config.data_dir.empty()) {
      try {
        write_keyring(config, m->keyring());
      } catch (const std::exception& e) {
        r.error = std::string("changed, but not saved: ") + e.what();
      }
    }
  }
  for (const auto& k : m->keyring()) r.keys.push_back(encode_base64(k));
  if (r.ok() && op != Mesh::KeyOp::List) {
    spdlog::info("{}: gossip keyring: {} done, {} key(s)", node_name, Mesh::to_string(op), r.keys.size());
  }
  return r;
}

transport::ErrorCode MeshCore::serve_keys(const transport::EnvelopeView& request, std::vector<std::uint8_t>& out) {
  Mesh::KeyResult r;
  const auto body = decode_json(request.payload, Json());
  std::optional<Mesh::KeyOp> op;
  if (body && body->is_object() && body->contains("op") && (*body)["op"].is_string()) {
    op = Mesh::key_op_from((*body)["op"].get<std::string>());
  }
  if (!op) {
    r.error = "the request names no operation (list, install, use or remove)";
  } else {
    std::string key;
    if (const auto k = body->find("key"); k != body->end() && k->is_string()) key = k->get<std::string>();
    r = apply_key_op(*op, key);
  }
  out = encode_json(Json{{"error", r.error}, {"keys", r.keys}});
  return transport::ErrorCode::None;
}

}  // namespace detail

std::optional<Mesh::KeyOp> Mesh::key_op_from(std::string_view name) {
  if (name == "list") return KeyOp::List;
  if (name == "install") return KeyOp::Install;
  if (name == "use") return KeyOp::Use;
  if (name == "remove") return KeyOp::Remove;
  return std::nullopt;
}

std::string_view Mesh::to_string(KeyOp op) {
  switch (op) {
    case KeyOp::List: return "list";
    case KeyOp::Install: return "install";
    case KeyOp::Use: return "use";
    case KeyOp::Remove: return "remove";
  }
  return "?";
}

void Mesh::keys_async(KeyOp op, const std::string& key, std::chrono::milliseconds timeout,
                      std::function<void(std::vector<KeyResult>)> done) {
  MeshCore& c = *core_;
  if (op != KeyOp::List && !swim::Keyring::decode_base64_key(key)) {
    throw std::invalid_argument("not a base64 gossip key of 16, 24 or 32 bytes");
  }
  std::vector<swim::MemberInfo> members;
  if (!with_membership([&](const swim::Membership& m) { members = m.members(); })) {
    throw std::logic_error("keys: membership is not running on this node");
  }
  auto t = c.get_transport();
  if (!t) throw std::logic_error("keys: the mesh is not running");

  auto g = std::make_shared<detail::KeyGather>();
  g->done = std::move(done);
  g->results.push_back(c.apply_key_op(op, key));
  std::vector<std::pair<std::size_t, std::string>> asks;
  for (const auto& info : members) {
    const auto& m = info.member;
    if (m.name == c.node_name) continue;
    if (m.state != swim::MemberState::Alive && m.state != swim::MemberState::Suspect) continue;
    KeyResult r;
    r.node = m.name;
    if (!info.tags.contains(detail::kMeshTag)) {
      r.error = "not a mesh node: change its keys with `serf keys`";
    } else {
      asks.emplace_back(g->results.size(), m.name);
    }
    g->results.push_back(std::move(r));
  }
  g->waiting = asks.size() + 1;  // the +1 is released below, after every ask went out
  const Json body = op == KeyOp::List ? Json{{"op", "list"}} : Json{{"op", std::string(to_string(op))}, {"key", key}};
  g->payload = detail::encode_json(body);
  g->deadline = std::chrono::steady_clock::now() + timeout;
  for (const auto& [slot, node] : asks) detail::ask_keys(c, t, g, slot, node);
  g->finish_one();
}

}  // namespace mesh
