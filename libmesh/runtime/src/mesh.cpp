#include "mesh/mesh.hpp"

#include <signal.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <algorithm>
#include <charconv>
#include <cstdio>
#include <random>
#include <spdlog/spdlog.h>

#include "mesh/logging.hpp"
#include "mesh/swim/membership.hpp"
#include "mesh_core.hpp"

namespace mesh {
namespace detail {

namespace {

std::uint64_t random_u64() {
  std::random_device rd;
  return (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
}

std::int64_t unix_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::optional<std::uint64_t> parse_u64(const std::string& text) {
  std::uint64_t v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc{} || end != text.data() + text.size() || text.empty()) return std::nullopt;
  return v;
}

std::string default_node_name(const NodeConfig& c) {
  return c.node_name.empty() ? local_hostname() + "-" + std::to_string(c.swim_port) : c.node_name;
}

void check_node_name(const std::string& name) {
  if (name.empty() || name.size() > 255) throw std::invalid_argument("node_name must be 1..255 bytes");
  for (unsigned char ch : name) {
    if (ch <= 0x20 || ch == 0x7f || ch == '#') {
      throw std::invalid_argument("node_name \"" + name + "\" holds whitespace, a control character or '#'");
    }
  }
}

PeerEventKind event_kind(DirectoryEventKind k) {
  switch (k) {
    case DirectoryEventKind::AgentAdded: return PeerEventKind::AgentAdded;
    case DirectoryEventKind::AgentRemoved: return PeerEventKind::AgentRemoved;
    case DirectoryEventKind::AgentUpdated: return PeerEventKind::AgentUpdated;
    case DirectoryEventKind::NodeSuspect: return PeerEventKind::NodeSuspect;
    case DirectoryEventKind::NodeAlive: return PeerEventKind::NodeAlive;
  }
  return PeerEventKind::AgentUpdated;
}

}  // namespace

std::int64_t steady_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// ---------------------------------------------------------------- AgentSlot

void AgentSlot::report(const std::exception& error, const IncomingMessage* message) {
  core->stats.agent_failures.fetch_add(1);
  try {
    agent->on_error(error, message);
  } catch (...) {
    // on_error must not throw; one that does changes nothing.
  }
}

void AgentSlot::run_agent(std::stop_token stop) {
  const auto initial = core->options.restart_backoff;
  const auto max = core->options.restart_backoff_max;
  auto backoff = initial;
  running.store(true);
  while (!stop.stop_requested()) {
    bool failed = false;
    const auto began = std::chrono::steady_clock::now();
    try {
      agent->setup();
      agent->run(stop);
    } catch (const HandlerFailed&) {
      failed = true;  // reported by the handler loop already
    } catch (const std::exception& e) {
      failed = true;
      report(e, nullptr);
    } catch (...) {
      failed = true;
      report(std::runtime_error("a non-standard exception"), nullptr);
    }
    try {
      agent->teardown();
    } catch (const std::exception& e) {
      report(e, nullptr);
    } catch (...) {
      report(std::runtime_error("a non-standard exception in teardown"), nullptr);
    }
    if (!failed || stop.stop_requested()) break;
    // A run that lasted a while was healthy: the next failure starts over.
    if (std::chrono::steady_clock::now() - began > max) backoff = initial;
    restarts.fetch_add(1);
    core->stats.agent_restarts.fetch_add(1);
    std::mutex m;
    std::condition_variable_any cv;
    std::unique_lock lock(m);
    cv.wait_for(lock, stop, backoff, [] { return false; });
    backoff = std::min(backoff * 2, max);
  }
  running.store(false);
}

// ---------------------------------------------------------------- MeshCore

MeshCore::MeshCore(NodeConfig cfg, MeshOptions opts)
    : config(std::move(cfg)),
      options(std::move(opts)),
      node_name(default_node_name(config)),
      directory(node_name, options.seed != 0 ? options.seed : random_u64(),
                // Above anything a previous run under this name advertised.
                static_cast<std::uint64_t>(unix_ms())) {
  check_node_name(node_name);
  // load_node_config checks all of this; a NodeConfig built by hand gets
  // the same answers here.
  if (config.max_message_bytes < 4096) throw std::invalid_argument("max_message_bytes must be at least 4096");
  if (config.mailbox_limit == 0) throw std::invalid_argument("mailbox_limit must be positive");
  if (!parse_strategy(config.discovery_strategy)) {
    throw std::invalid_argument("discovery_strategy: unknown strategy \"" + config.discovery_strategy + "\" (" +
                                std::string(kStrategyNames) + ")");
  }
  if (config.request_timeout <= std::chrono::milliseconds(0)) {
    throw std::invalid_argument("request_timeout must be positive");
  }
  if (config.curve_secret_key.empty() != config.curve_public_key.empty()) {
    throw std::invalid_argument("curve_secret_key and curve_public_key: set both or neither");
  }
  if (!config.curve_secret_key.empty()) {
    // The secret is never part of a message.
    std::string derived;
    try {
      derived = transport::curve_public_from_secret(config.curve_secret_key);
    } catch (const std::exception&) {
      throw std::invalid_argument("curve_secret_key is not a Z85 CURVE key");
    }
    if (derived != config.curve_public_key) {
      throw std::invalid_argument("curve_public_key does not belong to curve_secret_key");
    }
  }
  // Room for the envelope's own fields (ids, names, times).
  limits.max_bytes = config.max_message_bytes - 1024;
  directory_token = directory.subscribe([this](const DirectoryEvent& e) {
    if (e.local && (e.kind == DirectoryEventKind::AgentAdded || e.kind == DirectoryEventKind::AgentRemoved ||
                    e.kind == DirectoryEventKind::AgentUpdated)) {
      schedule_tag_update();
    }
    PeerEvent pe{event_kind(e.kind), e.node, std::nullopt, e.local};
    if (!e.card.agent_id.empty()) pe.card = e.card;
    publish(std::move(pe));
  });
  control_thread = std::thread([this] { control_loop(); });
}

MeshCore::~MeshCore() {
  // Agents first: their clients unsubscribe from members declared later.
  agent_order.clear();
  agents.clear();
  node_client.reset();
  directory.unsubscribe(directory_token);
  {
    std::lock_guard lock(control_mu);
    control_stop = true;
  }
  control_cv.notify_all();
  if (control_thread.joinable()) control_thread.join();
}

std::shared_ptr<transport::Transport> MeshCore::get_transport() const {
  std::lock_guard lock(mu);
  return transport;
}

std::shared_ptr<transport::Inbox> MeshCore::inbox_of(const std::string& agent_id) const {
  std::lock_guard lock(mu);
  auto it = inboxes.find(agent_id);
  return it == inboxes.end() ? nullptr : it->second;
}

std::vector<std::uint8_t> MeshCore::encode_context(const Json& ctx) const {
  if (ctx.is_null()) return {};
  if (!ctx.is_object()) throw std::invalid_argument("a message context must be a JSON object");
  if (ctx.empty()) return {};
  return encode_json(ctx);
}

std::optional<IncomingMessage> MeshCore::to_incoming(transport::Incoming&& in) {
  const auto& env = in.envelope;
  const bool request = env.type == transport::MessageType::Request;
  auto data = decode_json(env.payload, Json());
  auto ctx = decode_json(env.context, Json::object());
  if ((!request && env.type != transport::MessageType::Notify) || !data || !ctx || !ctx->is_object()) {
    stats.messages_malformed.fetch_add(1);
    if (request) {
      if (auto t = get_transport()) t->respond_error(in, transport::ErrorCode::Malformed);
    }
    return std::nullopt;
  }
  IncomingMessage m;
  m.id = env.id.to_string();
  m.sender = env.sender_agent;
  m.sender_node = env.sender_node;
  m.target = env.target;
  m.type = request ? MessageKind::Request : MessageKind::Notify;
  m.data = std::move(*data);
  m.context = std::move(*ctx);
  if (request) m.correlation_id = m.id;
  m.timestamp_ms = env.created_ms;
  m.handle = std::make_shared<const transport::Incoming>(std::move(in));
  return m;
}

std::optional<Response> MeshCore::to_response(const transport::Envelope& env) {
  auto data = decode_json(env.payload, Json());
  auto ctx = decode_json(env.context, Json::object());
  if (!data || !ctx || !ctx->is_object()) {
    stats.messages_malformed.fetch_add(1);
    return std::nullopt;
  }
  Response r;
  r.data = std::move(*data);
  r.context = std::move(*ctx);
  r.sender = env.sender_agent;
  r.sender_node = env.sender_node;
  if (env.correlation) r.correlation_id = env.correlation->to_string();
  r.timestamp_ms = env.created_ms;
  return r;
}

RequestOutcome MeshCore::to_outcome(transport::Reply&& reply) {
  RequestOutcome out;
  if (!reply.ok()) {
    out.error = reply.error;
    return out;
  }
  out.response = to_response(reply.envelope);
  if (!out.response) out.error = transport::ErrorCode::Malformed;
  return out;
}

// ---- events

std::uint64_t MeshCore::subscribe(EventCallback cb) {
  std::lock_guard lock(subs_mu);
  const auto token = next_token++;
  subscribers.emplace(token, std::make_shared<EventCallback>(std::move(cb)));
  return token;
}

bool MeshCore::unsubscribe(std::uint64_t token) {
  // Waits for a delivery in progress on another thread.
  std::lock_guard deliver_lock(deliver_mu);
  std::lock_guard lock(subs_mu);
  return subscribers.erase(token) > 0;
}

void MeshCore::publish(PeerEvent event) {
  post([this, e = std::move(event)] { deliver(e); });
}

void MeshCore::deliver(const PeerEvent& event) {
  std::lock_guard deliver_lock(deliver_mu);
  std::vector<std::uint64_t> tokens;
  {
    std::lock_guard lock(subs_mu);
    for (const auto& [t, cb] : subscribers) tokens.push_back(t);
  }
  for (auto t : tokens) {
    std::shared_ptr<EventCallback> cb;
    {
      std::lock_guard lock(subs_mu);
      auto it = subscribers.find(t);
      if (it == subscribers.end()) continue;
      cb = it->second;
    }
    try {
      (*cb)(event);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "mesh: event subscriber threw: %s\n", e.what());
    } catch (...) {
      std::fprintf(stderr, "mesh: event subscriber threw\n");
    }
  }
}

// ---- control thread

void MeshCore::post(std::function<void()> task) {
  {
    std::lock_guard lock(control_mu);
    if (control_stop) return;
    tasks.push_back(std::move(task));
  }
  control_cv.notify_one();
}

void MeshCore::schedule_tag_update() {
  {
    std::lock_guard lock(control_mu);
    if (tag_update_pending) return;
    tag_update_pending = true;
    tag_due = std::chrono::steady_clock::now() + options.tag_coalesce;
  }
  control_cv.notify_one();
}

void MeshCore::control_loop() {
  using Clock = std::chrono::steady_clock;
  std::unique_lock lock(control_mu);
  auto next_repair = Clock::now() + options.repair_interval;
  while (true) {
    auto wake = next_repair;
    if (tag_update_pending) wake = std::min(wake, tag_due);
    control_cv.wait_until(lock, wake, [&] { return control_stop || !tasks.empty(); });
    if (control_stop) break;
    std::deque<std::function<void()>> batch;
    batch.swap(tasks);
    const auto now = Clock::now();
    const bool do_tags = tag_update_pending && now >= tag_due;
    if (do_tags) tag_update_pending = false;
    const bool do_repair = now >= next_repair;
    if (do_repair) next_repair = now + options.repair_interval;
    lock.unlock();
    for (auto& task : batch) {
      try {
        task();
      } catch (const std::exception& e) {
        std::fprintf(stderr, "mesh: control task failed: %s\n", e.what());
      } catch (...) {
        std::fprintf(stderr, "mesh: control task failed\n");
      }
    }
    try {
      if (do_tags) update_tags();
      if (do_repair) repair();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "mesh: control step failed: %s\n", e.what());
    }
    lock.lock();
  }
}

std::map<std::string, std::string> MeshCore::tags() const {
  auto tr = get_transport();
  return tags_with(tr ? tr->bound_port() : config.zmq_port);
}

std::map<std::string, std::string> MeshCore::tags_with(std::uint16_t zmq_port) const {
  // Ours win over a user tag of the same name.
  auto t = config.tags;
  t[kMeshTag] = "1";
  t[kZmqPortTag] = std::to_string(zmq_port);
  t[kRegistryVersionTag] = std::to_string(directory.local_version());
  // PeerLink on the other nodes authenticates us by this key.
  if (config.p2p_enabled && !config.curve_public_key.empty()) t[kCurveKeyTag] = config.curve_public_key;
  return t;
}

// membership is read here only after membership_alive (set once it is in
// place, cleared before it goes), so no lock is needed for the pointer.
void MeshCore::update_tags() {
  if (!membership_alive.load() || !membership) return;
  if (membership->set_tags(tags())) stats.tag_updates.fetch_add(1);
}

void MeshCore::repair() {
  if (!membership_alive.load() || !membership) return;
  for (const auto& info : membership->members()) {
    const auto& m = info.member;
    if (m.name == node_name) continue;
    if (m.state != swim::MemberState::Alive && m.state != swim::MemberState::Suspect) continue;
    // Repairs are for members known to exist: one that never answered a
    // probe may be a phantom a stranger announced (its first fetch, on
    // the join event, still happens).
    if (!m.verified) continue;
    if (!info.tags.contains(kMeshTag) || !info.tags.contains(kZmqPortTag)) continue;
    auto it = info.tags.find(kRegistryVersionTag);
    if (it == info.tags.end()) continue;
    if (auto rv = parse_u64(it->second)) want_registry(m.name, *rv);
  }
}

// ---- membership

void MeshCore::on_member_event(const swim::MemberEvent& event) {
  if (link) link->on_member_event(event);
  const auto& m = event.member;
  if (m.name == node_name) return;
  const auto tags = swim::decode_serf_tags(m.meta);
  const bool is_mesh = tags && tags->contains(kMeshTag) && tags->contains(kZmqPortTag);
  switch (event.kind) {
    case swim::EventKind::Joined:
    case swim::EventKind::Updated:
    case swim::EventKind::Recovered: {
      if (!is_mesh) {
        // A member that dropped its mesh tags (or never had them).
        if (directory.remove_node(m.name)) publish(PeerEvent{PeerEventKind::NodeLeft, m.name, {}, false});
        return;
      }
      const bool known = directory.known_version(m.name).has_value();
      // Announce before fetching: a node removed as dead is accepted again.
      directory.set_node_health(
          m.name, m.state == swim::MemberState::Suspect ? NodeHealth::Suspect : NodeHealth::Alive);
      if (event.kind == swim::EventKind::Joined || !known) {
        publish(PeerEvent{PeerEventKind::NodeJoined, m.name, {}, false});
      }
      const auto it = tags->find(kRegistryVersionTag);
      if (it != tags->end()) {
        if (auto rv = parse_u64(it->second)) want_registry(m.name, *rv);
      }
      break;
    }
    case swim::EventKind::Suspect:
      if (is_mesh) directory.set_node_health(m.name, NodeHealth::Suspect);
      break;
    case swim::EventKind::Dead:
    case swim::EventKind::Left:
      {
        std::lock_guard lock(fetch_mu);
        fetch_backoff.erase(m.name);  // so it holds live members only
      }
      if (directory.remove_node(m.name) || is_mesh) {
        publish(PeerEvent{event.kind == swim::EventKind::Dead ? PeerEventKind::NodeDead : PeerEventKind::NodeLeft,
                          m.name, {}, false});
      }
      break;
    case swim::EventKind::Conflict:
      break;
  }
}

void MeshCore::want_registry(const std::string& node, std::uint64_t version) {
  const auto known = directory.known_version(node);
  if (known && *known >= version) return;
  post([this, node, version] { start_fetch(node, version); });
}

void MeshCore::start_fetch(const std::string& node, std::uint64_t version) {
  {
    std::lock_guard lock(fetch_mu);
    if (fetching.contains(node)) {
      auto& wanted = fetch_again[node];
      wanted = std::max(wanted, version);
      return;
    }
    // After a failure, wait: the repair round asks again later.
    if (auto b = fetch_backoff.find(node); b != fetch_backoff.end() && steady_ms() < b->second.at) return;
    fetching.insert(node);
  }
  auto t = get_transport();
  if (!t) {
    fetch_done(node);
    return;
  }
  stats.registry_fetches.fetch_add(1);
  transport::OutMessage m;
  m.to = {node, kRegistryInbox};
  m.sender_agent = "$mesh";
  t->request_async(std::move(m), options.registry_fetch_timeout, [this, node](transport::Reply reply) {
    // The transport thread (or ours, when it failed at once): decode and
    // apply; the directory refuses a registry of a node declared dead since.
    bool ok = false;
    if (reply.ok()) {
      auto reg = decode_registry(reply.envelope.payload);
      if (reg && reg->node == node) {
        ok = true;
        if (directory.apply_remote(std::move(*reg))) stats.registry_applied.fetch_add(1);
      }
    }
    if (!ok) stats.registry_failures.fetch_add(1);
    {
      std::lock_guard lock(fetch_mu);
      if (ok) {
        fetch_backoff.erase(node);
      } else {
        auto& b = fetch_backoff[node];
        b.wait = std::clamp(b.wait * 2, kFetchBackoffMin, kFetchBackoffMax);
        b.at = steady_ms() + b.wait;
      }
    }
    post([this, node] { fetch_done(node); });
  });
}

void MeshCore::fetch_done(const std::string& node) {
  std::optional<std::uint64_t> wanted;
  {
    std::lock_guard lock(fetch_mu);
    fetching.erase(node);
    if (auto it = fetch_again.find(node); it != fetch_again.end()) {
      wanted = it->second;
      fetch_again.erase(it);
    }
  }
  // The fetch that just ended may already have brought that version.
  if (!wanted) return;
  const auto known = directory.known_version(node);
  if (!known || *known < *wanted) start_fetch(node, *wanted);
}

// ---- agents

void MeshCore::start_agent(const std::shared_ptr<AgentSlot>& slot) {
  AgentSlot* s = slot.get();
  slot->thread = std::jthread([s](std::stop_token stop) { s->run_agent(stop); });
}

}  // namespace detail

// ---------------------------------------------------------------- Mesh

using detail::MeshCore;

Mesh::Mesh(NodeConfig config, MeshOptions options)
    : core_(std::make_unique<MeshCore>(std::move(config), std::move(options))) {
  spdlog::default_logger()->set_level(to_spdlog_level(core_->config.log_level));
  core_->node_client->set_default_strategy(core_->config.discovery_strategy);
}

std::unique_ptr<Mesh> Mesh::from_environment(MeshOptions options) {
  return std::make_unique<Mesh>(load_node_config({}, current_environment()), std::move(options));
}

Mesh::~Mesh() {
  try {
    stop();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mesh: stop in destructor failed: %s\n", e.what());
  }
}

namespace {

std::string fresh_agent_id(const std::string& role) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::random_device rd;
  std::string id = role + "-";
  std::uint32_t v = rd();
  for (int i = 0; i < 8; ++i) {
    id.push_back(kHex[v & 0xf]);
    v >>= 4;
  }
  return id;
}

}  // namespace

Agent& Mesh::add(std::unique_ptr<Agent> agent) {
  if (!agent) throw std::invalid_argument("add: null agent");
  if (agent->slot_) throw std::invalid_argument("add: agent " + agent->id() + " is already in a mesh");
  AgentSpec& spec = agent->spec_;
  if (spec.concurrency == 0) throw std::invalid_argument("add: concurrency must be at least 1");
  MeshCore& c = *core_;
  std::lock_guard lock(c.mu);
  if (c.state == MeshCore::State::Stopped) throw std::logic_error("add: the mesh is stopped");
  if (spec.agent_id.empty()) {
    AgentCard probe = agent->card();
    probe.agent_id = "x";  // the role must be valid before it names the agent
    if (auto err = validate_card(probe)) throw std::invalid_argument("add: " + *err);
    do {
      spec.agent_id = fresh_agent_id(spec.role);
    } while (c.agents.contains(spec.agent_id));
  } else if (c.agents.contains(spec.agent_id)) {
    throw std::invalid_argument("add: agent_id \"" + spec.agent_id + "\" is already in use on this node");
  }
  if (!spec.agent_id.empty() && spec.agent_id.front() == '$') {
    throw std::invalid_argument("add: agent_id \"" + spec.agent_id + "\" is reserved ('$' prefix)");
  }
  const AgentCard card = agent->card();
  if (auto err = validate_card(card)) throw std::invalid_argument("add: " + *err);

  auto slot = std::make_shared<detail::AgentSlot>();
  slot->core = &c;
  slot->client = std::make_unique<PeerClient>(c, spec.agent_id, spec.role);
  slot->client->set_default_strategy(c.config.discovery_strategy);
  slot->agent = std::move(agent);
  if (c.state == MeshCore::State::Running) {
    c.inboxes[spec.agent_id] =
        c.transport->open_inbox(spec.agent_id, spec.mailbox_limit ? spec.mailbox_limit : c.config.mailbox_limit);
  }
  if (auto err = c.directory.put_local(card)) {
    c.inboxes.erase(spec.agent_id);
    throw std::invalid_argument("add: " + *err);
  }
  slot->agent->slot_ = slot.get();
  c.agents[spec.agent_id] = slot;
  c.agent_order.push_back(spec.agent_id);
  if (c.state == MeshCore::State::Running) c.start_agent(slot);
  return *slot->agent;
}

bool Mesh::remove(std::string_view agent_id) {
  MeshCore& c = *core_;
  std::shared_ptr<detail::AgentSlot> slot;
  std::shared_ptr<transport::Inbox> inbox;
  {
    std::lock_guard lock(c.mu);
    auto it = c.agents.find(agent_id);
    if (it == c.agents.end()) return false;
    if (it->second->thread.get_id() == std::this_thread::get_id()) {
      throw std::logic_error("remove: an agent cannot remove itself");
    }
    slot = it->second;
    c.agents.erase(it);
    std::erase(c.agent_order, std::string(agent_id));
    if (auto in = c.inboxes.find(agent_id); in != c.inboxes.end()) {
      inbox = in->second;
      c.inboxes.erase(in);
    }
  }
  c.directory.remove_local(agent_id);
  // Closing the mailbox wakes a run() blocked in receive() without timeout.
  if (slot->thread.joinable()) slot->thread.request_stop();
  if (inbox) inbox->close();
  if (slot->thread.joinable()) slot->thread.join();
  if (inbox) {
    // Requests still waiting learn at once that nobody will answer.
    auto t = c.get_transport();
    while (auto in = inbox->pop(std::chrono::milliseconds(0))) {
      if (t && in->is_request()) t->respond_error(*in, transport::ErrorCode::TargetUnknown);
    }
  }
  return true;
}

void Mesh::start() {
  MeshCore& c = *core_;
  std::lock_guard stop_lock(c.stop_mu);
  std::lock_guard lock(c.mu);
  if (c.state != MeshCore::State::Created) throw std::logic_error("start: the mesh was started already");

  transport::TransportOptions to;
  to.node_name = c.node_name;
  to.max_frame_bytes = c.config.max_message_bytes;
  to.inbox_limit = c.config.mailbox_limit;
  to.inbox_bytes = c.config.mailbox_bytes;
  to.default_request_timeout = c.config.request_timeout;
  // Refused and lost notifies go back to the agent that sent them
  // (PeerClient::on_delivery_failure); before, nobody was told.
  to.on_notify_undeliverable = [core = &c](const transport::UndeliverableNotify& report) {
    PeerClient::report_delivery_failure(*core, report);
  };
  if (c.config.p2p_enabled) {
    const auto& host = c.config.swim_host;
    to.bind_address = (host == "0.0.0.0" || host == "::") ? "*" : host;
    to.port = c.config.zmq_port;
    to.ipc_dir = c.config.ipc_dir;
    if (!c.config.curve_secret_key.empty()) {
      to.curve = transport::CurveKeyPair{c.config.curve_public_key, c.config.curve_secret_key};
    }
  } else {
    to.local_only = true;
    to.bind_address = "127.0.0.1";
    to.port = 0;
  }
  std::shared_ptr<transport::Transport> t;
  try {
    t = std::make_shared<transport::Transport>(std::move(to));
  } catch (const std::exception& e) {
    throw std::runtime_error(std::string("transport: ") + e.what());
  }
  c.transport = t;
  // The registry is answered on the transport thread, from the directory.
  c.registry_inbox = t->open_inbox(detail::kRegistryInbox, 1,
                                   [&c](const transport::EnvelopeView&, std::vector<std::uint8_t>& out) {
                                     out = encode_registry(c.directory.local_registry());
                                     return transport::ErrorCode::None;
                                   });
  for (const auto& id : c.agent_order) {
    const auto& spec = c.agents[id]->agent->spec();
    c.inboxes[id] = t->open_inbox(id, spec.mailbox_limit ? spec.mailbox_limit : c.config.mailbox_limit);
  }

  if (c.config.p2p_enabled) {
    try {
      swim::Config sc = c.options.swim_config ? *c.options.swim_config : swim::Config::for_profile(c.config.profile);
      sc.name = c.node_name;
      swim::NetOptions net;
      net.bind_host = c.config.swim_host;
      net.bind_port = c.config.swim_port;
      net.advertise_host = c.config.advertise_host;
      if (net.advertise_host.empty() && (net.bind_host == "0.0.0.0" || net.bind_host == "::")) {
        if (auto h = default_advertise_host(c.config)) net.advertise_host = *h;
      }
      net.advertise_port = c.config.advertise_port;
      if (!c.config.gossip_key.empty()) net.keyring = swim::Keyring({c.config.gossip_key});
      c.io = std::make_unique<boost::asio::io_context>();
      c.link = std::make_unique<PeerLink>(*t);
      c.membership = std::make_unique<swim::Membership>(*c.io, sc, net,
                                                        c.options.seed != 0 ? c.options.seed : detail::random_u64());
      c.membership->on_event([&c](const swim::MemberEvent& e) { c.on_member_event(e); });
      c.membership->start(c.tags_with(t->bound_port()));
      c.io_thread = std::thread([io = c.io.get()] {
        auto guard = boost::asio::make_work_guard(*io);
        io->run();
      });
      if (!c.config.seeds.empty()) c.membership->join(c.config.seeds);
      c.membership_alive.store(true);
    } catch (...) {
      c.membership_alive.store(false);
      c.membership.reset();
      if (c.io_thread.joinable()) {
        c.io->stop();
        c.io_thread.join();
      }
      c.io.reset();
      c.link.reset();
      c.inboxes.clear();
      c.registry_inbox.reset();
      c.transport.reset();
      throw;
    }
  }
  c.state = MeshCore::State::Running;
  for (const auto& id : c.agent_order) c.start_agent(c.agents[id]);
}

namespace {
std::atomic<bool> g_signalled{false};
extern "C" void on_stop_signal(int) { g_signalled.store(true); }
}  // namespace

void Mesh::run_forever() {
  MeshCore& c = *core_;
  {
    std::unique_lock lock(c.mu);
    const bool created = c.state == MeshCore::State::Created;
    lock.unlock();
    if (created) start();
  }
  g_signalled.store(false);
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  struct sigaction old_int {}, old_term {};
  sigaction(SIGINT, &action, &old_int);
  sigaction(SIGTERM, &action, &old_term);
  {
    std::unique_lock lock(c.wait_mu);
    while (!c.stop_requested && !g_signalled.load()) {
      c.wait_cv.wait_for(lock, std::chrono::milliseconds(100));
    }
  }
  sigaction(SIGINT, &old_int, nullptr);
  sigaction(SIGTERM, &old_term, nullptr);
  stop();
}

void Mesh::request_stop() {
  MeshCore& c = *core_;
  {
    std::lock_guard lock(c.wait_mu);
    c.stop_requested = true;
  }
  c.wait_cv.notify_all();
}

void Mesh::stop() {
  MeshCore& c = *core_;
  std::lock_guard stop_lock(c.stop_mu);
  std::vector<std::shared_ptr<detail::AgentSlot>> slots;
  {
    std::lock_guard lock(c.mu);
    if (c.state == MeshCore::State::Stopped) return;
    for (const auto& id : c.agent_order) {
      if (c.agents[id]->thread.get_id() == std::this_thread::get_id()) {
        throw std::logic_error("stop: called from agent " + id + "'s thread; use request_stop()");
      }
      slots.push_back(c.agents[id]);
    }
    c.state = MeshCore::State::Stopped;
  }
  request_stop();
  // 1. Agents: every run() sees its stop request, teardown runs. Closed
  // mailboxes wake a run() blocked in receive() without timeout.
  for (auto& s : slots) s->thread.request_stop();
  {
    std::lock_guard lock(c.mu);
    for (auto& [id, inbox] : c.inboxes) inbox->close();
  }
  for (auto& s : slots) {
    if (s->thread.joinable()) s->thread.join();
  }
  // 2. The control thread (it reads membership).
  {
    std::lock_guard lock(c.control_mu);
    c.control_stop = true;
  }
  c.control_cv.notify_all();
  if (c.control_thread.joinable()) c.control_thread.join();
  // 3. Membership: a graceful leave, bounded.
  if (c.membership) {
    bool was_alive = false;
    {
      std::unique_lock no_readers(c.membership_readers);  // with_membership callers done
      was_alive = c.membership_alive.exchange(false);
    }
    if (was_alive) {
      try {
        c.membership->leave(c.config.leave_timeout);
      } catch (const std::exception& e) {
        std::fprintf(stderr, "mesh: leave failed: %s\n", e.what());
      }
    }
    c.membership->shutdown();
    c.membership.reset();
  }
  if (c.io) {
    c.io->stop();
    if (c.io_thread.joinable()) c.io_thread.join();
    c.io.reset();
  }
  // 4. Mailboxes and the transport.
  std::shared_ptr<transport::Transport> t;
  {
    std::lock_guard lock(c.mu);
    for (auto& [id, inbox] : c.inboxes) inbox->close();
    if (c.registry_inbox) c.registry_inbox->close();
    c.inboxes.clear();
    c.registry_inbox.reset();
    t = std::move(c.transport);
    c.link.reset();
  }
  t.reset();
}

bool Mesh::running() const {
  std::lock_guard lock(core_->mu);
  return core_->state == MeshCore::State::Running;
}

const NodeConfig& Mesh::config() const { return core_->config; }
const std::string& Mesh::node_name() const { return core_->node_name; }

Agent* Mesh::agent(std::string_view agent_id) const {
  std::lock_guard lock(core_->mu);
  auto it = core_->agents.find(agent_id);
  return it == core_->agents.end() ? nullptr : it->second->agent.get();
}

std::vector<Agent*> Mesh::agents() const {
  std::lock_guard lock(core_->mu);
  std::vector<Agent*> out;
  for (const auto& id : core_->agent_order) out.push_back(core_->agents.at(id)->agent.get());
  return out;
}

AgentDirectory& Mesh::directory() { return core_->directory; }

PeerClient& Mesh::node_client() { return *core_->node_client; }

std::optional<transport::TransportStats> Mesh::transport_stats() const {
  const auto t = core_->get_transport();
  if (!t) return std::nullopt;
  return t->stats();
}

bool Mesh::with_membership(const std::function<void(const swim::Membership&)>& fn) const {
  std::shared_lock readers(core_->membership_readers);
  const swim::Membership* m = nullptr;
  {
    std::lock_guard lock(core_->mu);
    if (core_->membership_alive.load()) m = core_->membership.get();
  }
  if (!m) return false;
  fn(*m);
  return true;
}

MeshStats Mesh::stats() const {
  const auto& s = core_->stats;
  MeshStats out;
  out.messages_malformed = s.messages_malformed.load();
  out.registry_fetches = s.registry_fetches.load();
  out.registry_applied = s.registry_applied.load();
  out.registry_failures = s.registry_failures.load();
  out.tag_updates = s.tag_updates.load();
  out.agent_failures = s.agent_failures.load();
  out.agent_restarts = s.agent_restarts.load();
  return out;
}

std::uint16_t Mesh::swim_port() const {
  std::lock_guard lock(core_->mu);
  return core_->membership ? core_->membership->bound_port() : 0;
}

std::uint16_t Mesh::zmq_port() const {
  auto t = core_->get_transport();
  return t ? t->bound_port() : 0;
}

void Mesh::kill_membership_for_test() {
  swim::Membership* m = membership_for_test();
  if (!m) return;
  core_->membership_alive.store(false);
  m->shutdown();  // not under mu: it waits for our event handler
}

transport::Transport* Mesh::transport_for_test() { return core_->get_transport().get(); }

swim::Membership* Mesh::membership_for_test() {
  std::lock_guard lock(core_->mu);
  return core_->membership.get();
}

}  // namespace mesh
