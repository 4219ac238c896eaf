#include "agents.hpp"

#include <array>
#include <iostream>

namespace examples {

using namespace std::chrono_literals;
using mesh::Json;

void say(std::string_view line) {
  static std::mutex mu;
  std::lock_guard lock(mu);
  std::cout << line << '\n' << std::flush;
}

namespace {

// What a scout can find: item #n is kFinds[n % size].
constexpr std::array<std::string_view, 6> kFinds = {"a dry cave",   "fresh water",  "a mountain pass",
                                                     "an old bridge", "a safe camp", "a fallen tree"};

// How long a scout waits for a fellow scout's verdict.
constexpr auto kValidateTimeout = 3s;

std::string prefix(const mesh::PeerClient& peers) { return "[" + peers.node_name() + "] "; }

// JSON text of what a peer sent; invalid UTF-8 is replaced, not thrown on.
std::string show(const Json& j) { return j.dump(-1, ' ', false, Json::error_handler_t::replace); }

// Messages may come from other processes: read them without trusting their
// shape (nlohmann's value() throws on a non-object or a wrong type, and
// const operator[] on a missing key is undefined).
const Json& field(const Json& object, const std::string& key) {
  static const Json kNull;
  if (!object.is_object()) return kNull;
  const auto it = object.find(key);
  return it == object.end() ? kNull : *it;
}
std::string text(const Json& j) { return j.is_string() ? j.get<std::string>() : std::string(); }
std::uint64_t number(const Json& j) { return j.is_number_unsigned() ? j.get<std::uint64_t>() : 0; }
bool flag(const Json& j) { return j.is_boolean() && j.get<bool>(); }
std::string kind_of(const mesh::IncomingMessage& m) { return text(field(m.data, "kind")); }

}  // namespace

// ---- ScoutAgent -------------------------------------------------------------

ScoutAgent::ScoutAgent(std::chrono::milliseconds tick, std::string agent_id)
    : CustomAgent({.role = "scout",
                   .capabilities = {"search", "validate"},
                   .description = "finds items and validates other scouts' finds",
                   .agent_id = std::move(agent_id)}),
      tick_(tick) {}

mesh::Task<void> ScoutAgent::run() {
  if (tick_.count() <= 0) co_return;
  while (!stop_requested()) {
    co_await peers().sleep(tick_);  // ends at once when the agent stops
    if (stop_requested()) break;
    co_await search();
  }
}

std::uint64_t ScoutAgent::findings_reported() const {
  std::lock_guard lock(mu_);
  return reported_;
}

mesh::Task<void> ScoutAgent::search() {
  mesh::PeerClient& p = peers();
  std::uint64_t n = 0;
  {
    std::lock_guard lock(mu_);
    n = next_item_++;
  }
  const Json item = {{"number", n},
                     {"what", kFinds[n % kFinds.size()]},
                     {"found_by", id()},
                     {"node", p.node_name()}};

  // Ask another scout (round robin over those that can validate) for a
  // verdict. The caller is never among the peers it discovers.
  std::string verdict;
  Json validation = nullptr;
  const auto validator = p.discover_one({.role = "scout", .capability = "validate"}, mesh::Strategy::RoundRobin);
  if (!validator) {
    verdict = "not validated: no other scout";
  } else {
    const Json ask = {{"kind", "validate"}, {"item", item}};
    const auto out = co_await p.request_detailed(validator->card.agent_id, ask, kValidateTimeout);
    if (out.ok()) {
      validation = out.response->data;
      verdict = std::string(flag(field(validation, "valid")) ? "validated" : "rejected") + " by " +
                out.response->sender + " on node " + out.response->sender_node;
    } else {
      verdict = "validation by " + validator->card.agent_id + " failed: " +
                std::string(mesh::transport::to_string(out.error));
    }
  }

  const std::string what = "finding #" + std::to_string(n) + " " + show(item["what"]) + " (" + verdict + ")";
  const auto analyst = p.get_peer("analyst");
  if (!analyst) {
    say(prefix(p) + id() + ": " + what + ", but no analyst to tell");
    co_return;
  }
  if (!p.notify(analyst->card.agent_id, {{"kind", "finding"}, {"item", item}, {"validation", validation}})) {
    say(prefix(p) + id() + " → " + analyst->card.agent_id + ": " + what + " NOT delivered");
    co_return;
  }
  {
    std::lock_guard lock(mu_);
    ++reported_;
  }
  say(prefix(p) + id() + " → " + analyst->card.agent_id + ": " + what);
}

std::optional<Json> ScoutAgent::on_peer_request(const mesh::IncomingMessage& message) {
  if (kind_of(message) != "validate") {
    return Json{{"error", "a scout answers {\"kind\": \"validate\"} requests"}};
  }
  // A made-up but deterministic check: every fifth kind of find is refused.
  const Json& item = field(message.data, "item");
  const bool valid = (number(field(item, "number")) * 7 + text(field(item, "what")).size()) % 5 != 0;
  return Json{{"valid", valid}, {"checked_by", id()}, {"node", peers().node_name()}};
}

mesh::Task<void> ScoutAgent::on_notify(const mesh::IncomingMessage& message) {
  if (kind_of(message) == "search") {
    co_await search();
    co_return;
  }
  say(prefix(peers()) + id() + " ← " + message.sender + " (node " + message.sender_node + "): " + show(message.data));
}

// ---- AnalystAgent -----------------------------------------------------------

AnalystAgent::AnalystAgent(std::string agent_id)
    : CustomAgent({.role = "analyst",
                   .capabilities = {"analysis", "summary"},
                   .description = "collects the scouts' findings",
                   .agent_id = std::move(agent_id)}) {}

std::uint64_t AnalystAgent::findings() const {
  std::lock_guard lock(mu_);
  return findings_;
}

void AnalystAgent::on_peer_notify(const mesh::IncomingMessage& message) {
  if (kind_of(message) != "finding") {
    say(prefix(peers()) + id() + " ← " + message.sender + " (node " + message.sender_node + "): " +
        show(message.data));
    return;
  }
  const Json& item = field(message.data, "item");
  const bool valid = flag(field(field(message.data, "validation"), "valid"));
  std::uint64_t total = 0;
  {
    std::lock_guard lock(mu_);
    total = ++findings_;
    if (valid) ++validated_;
    ++by_scout_[message.sender];
    latest_ = item;
  }
  say(prefix(peers()) + id() + " ← " + message.sender + " (node " + message.sender_node + "): finding #" +
      show(field(item, "number")) + (valid ? ", validated" : ", not validated") + "; " +
      std::to_string(total) + " so far");
}

std::optional<Json> AnalystAgent::on_peer_request(const mesh::IncomingMessage& message) {
  if (kind_of(message) != "summary") {
    return Json{{"error", "an analyst answers {\"kind\": \"summary\"} requests"}};
  }
  std::lock_guard lock(mu_);
  return Json{{"findings", findings_},
              {"validated", validated_},
              {"by_scout", by_scout_},
              {"latest", latest_},
              {"analyst", id()},
              {"node", peers().node_name()}};
}

}  // namespace examples
