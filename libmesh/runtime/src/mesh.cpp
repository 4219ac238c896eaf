#include "mesh/mesh.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <algorithm>
#include <cstdio>
#include <random>
#include <spdlog/spdlog.h>

#include "mesh/logging.hpp"
#include "mesh/swim/membership.hpp"
#include "mesh_core.hpp"

namespace mesh {

// ---------------------------------------------------------------- Mesh

using detail::MeshCore;

Mesh::Mesh(NodeConfig config, MeshOptions options)
    : core_(std::make_unique<MeshCore>(std::move(config), std::move(options))) {
  spdlog::default_logger()->set_level(to_spdlog_level(core_->config.log_level));
  for (const auto& w : core_->config.warnings) spdlog::warn("{}: {}", core_->node_name, w);
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

  auto slot = std::make_shared<detail::AgentSlot>(c, std::move(agent));
  slot->client = std::make_unique<PeerClient>(c, spec.agent_id, spec.role);
  slot->client->slot_ = slot.get();
  if (c.state == MeshCore::State::Running) c.open_mailbox(*slot);
  if (auto err = c.directory.put_local(card)) {
    if (slot->inbox) slot->inbox->close();  // its name is free again
    throw std::invalid_argument("add: " + *err);
  }
  slot->agent->slot_ = slot.get();
  if (spec.authority_only) c.set_authority_only(spec.agent_id, true);
  slot->order = c.next_order++;
  {
    std::lock_guard table(c.agents_mu);
    c.agents[spec.agent_id] = slot;
  }
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
    detail::forbid_blocking("Mesh::remove");
    slot = it->second;
    {
      std::lock_guard table(c.agents_mu);
      c.agents.erase(it);
    }
    inbox = slot->inbox;
  }
  c.directory.remove_local(agent_id);
  c.set_authority_only(std::string(agent_id), false);
  if (slot->running.load()) c.stop_agents({slot});
  if (inbox) {
    inbox->close();
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
  // A message from another node must come from an agent that node holds.
  to.admit = [core = &c](const transport::EnvelopeView& message, std::string_view node, bool second_look) {
    return core->admit(message, node, second_look);
  };
  to.hold_timeout = c.options.registry_fetch_timeout + std::chrono::seconds(2);
  // A connection to each member, kept open, costs heartbeats both ways on
  // each: O(members) of idle traffic per node. Nodes connect when they
  // have something to say and let go after a minute of silence.
  to.idle_disconnect = c.options.connection_idle_timeout;
  if (c.config.p2p_enabled) {
    switch (c.key_source) {
      case detail::KeySource::Made:
        spdlog::info("{}: agent traffic uses CURVE; made a key pair in {}", c.node_name,
                     detail::curve_key_path(c.config));
        break;
      case detail::KeySource::Drawn:
        spdlog::info("{}: agent traffic uses CURVE with a key pair drawn for this run (no data_dir)",
                     c.node_name);
        break;
      default: break;
    }
  }
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
                                     const auto registry = c.directory.local_registry();
                                     out = c.signer ? c.signer->seal(registry, c.own_cert) : encode_registry(registry);
                                     return transport::ErrorCode::None;
                                   });
  c.keys_inbox = t->open_inbox(detail::kKeysInbox, 1,
                               [&c](const transport::EnvelopeView& request, std::vector<std::uint8_t>& out) {
                                 return c.serve_keys(request, out);
                               });
  const auto in_order = c.slots_in_order();
  for (const auto& slot : in_order) c.open_mailbox(*slot);

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
      if (!c.config.gossip_key.empty()) {
        // Keys changed live since the configuration was written are kept
        // in data_dir; the configured key may have been rotated out.
        if (auto kept = detail::read_keyring(c.config)) {
          spdlog::info("{}: gossip keys from {} ({} key(s)), in place of the configured one", c.node_name,
                       detail::keyring_path(c.config), kept->size());
          net.keyring = swim::Keyring(std::move(*kept));
        } else {
          net.keyring = swim::Keyring({c.config.gossip_key});
        }
      }
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
      if (auto warning = detail::insecure_warning(c.config, c.membership->bound_port(), t->bound_port())) {
        spdlog::warn("{}: {}", c.node_name, *warning);
      }
      if (c.config.seeds.empty()) {
        c.joined.store(true);  // alone on purpose
      } else {
        swim::JoinRetry retry;
        retry.first_wait = c.config.retry_join_interval;
        retry.max_attempts = c.config.retry_join_max;
        retry.on_give_up = [&c](const std::string& why) {
          {
            std::lock_guard failure_lock(c.join_mu);
            c.join_failure = why;
          }
          if (c.options.on_join_failed) c.options.on_join_failed(why);
        };
        c.membership->join(c.config.seeds, [&c] { c.joined.store(true); }, std::move(retry));
      }
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
      for (const auto& slot : in_order) slot->inbox.reset();  // no agent has started
      c.registry_inbox.reset();
      c.keys_inbox.reset();
      c.transport.reset();
      throw;
    }
  }
  if (!c.config.p2p_enabled) c.joined.store(true);  // no cluster to join
  c.state = MeshCore::State::Running;
  for (const auto& slot : in_order) c.start_agent(slot);
}

namespace {
// SIGINT / SIGTERM reach run_forever through this pipe (write(2) is safe in
// a signal handler), and so does request_stop(): run_forever sleeps in
// poll(2) on it, with no timeout.
std::atomic<int> g_wake_fd{-1};
extern "C" void on_stop_signal(int) {
  const int fd = g_wake_fd.load();
  if (fd >= 0) {
    const char b = 's';
    [[maybe_unused]] const auto n = ::write(fd, &b, 1);
  }
}
}  // namespace

void Mesh::run_forever() {
  MeshCore& c = *core_;
  detail::forbid_blocking("Mesh::run_forever");
  {
    std::unique_lock lock(c.mu);
    const bool created = c.state == MeshCore::State::Created;
    lock.unlock();
    if (created) start();
  }
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) throw std::runtime_error("run_forever: pipe failed");
  {
    std::lock_guard lock(c.wait_mu);
    c.wake_fd = fds[1];
  }
  g_wake_fd.store(fds[1]);
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  struct sigaction old_int {}, old_term {};
  sigaction(SIGINT, &action, &old_int);
  sigaction(SIGTERM, &action, &old_term);
  for (;;) {
    {
      std::lock_guard lock(c.wait_mu);
      if (c.stop_requested) break;
    }
    pollfd p{fds[0], POLLIN, 0};
    if (::poll(&p, 1, -1) > 0) break;  // a signal or request_stop (EINTR: look again)
  }
  sigaction(SIGINT, &old_int, nullptr);
  sigaction(SIGTERM, &old_term, nullptr);
  g_wake_fd.store(-1);
  {
    std::lock_guard lock(c.wait_mu);
    c.wake_fd = -1;
  }
  ::close(fds[0]);
  ::close(fds[1]);
  stop();
}

void Mesh::request_stop() {
  MeshCore& c = *core_;
  std::lock_guard lock(c.wait_mu);
  c.stop_requested = true;
  if (c.wake_fd >= 0) {
    const char b = 'r';
    [[maybe_unused]] const auto n = ::write(c.wake_fd, &b, 1);
  }
}

void Mesh::stop() {
  MeshCore& c = *core_;
  detail::forbid_blocking("Mesh::stop (use request_stop from an agent)");
  std::lock_guard stop_lock(c.stop_mu);
  std::vector<std::shared_ptr<detail::AgentSlot>> slots;
  {
    std::lock_guard lock(c.mu);
    if (c.state == MeshCore::State::Stopped) return;
    for (auto& slot : c.slots_in_order()) {
      if (slot->thread.get_id() == std::this_thread::get_id()) {
        throw std::logic_error("stop: called from agent " + slot->agent->id() + "'s thread; use request_stop()");
      }
      if (slot->running.load()) slots.push_back(std::move(slot));
    }
    c.state = MeshCore::State::Stopped;
  }
  request_stop();
  // 1. Agents: every await of theirs completes now (a request with
  // Shutdown, receive with nullopt), their coroutines end, teardown runs;
  // a ThreadAgent's stop is requested, its mailbox closed, its thread
  // joined. All of them at once.
  c.stop_agents(slots);
  c.node_scope.stop();
  // 2. The control strand (it reads membership).
  c.stop_control();
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
    // An agent's inbox goes with its slot (its strand may still look at it).
    for (const auto& [id, slot] : c.agents) {
      if (slot->inbox) slot->inbox->close();
    }
    if (c.registry_inbox) c.registry_inbox->close();
    if (c.keys_inbox) c.keys_inbox->close();
    c.registry_inbox.reset();
    c.keys_inbox.reset();
    t = std::move(c.transport);
    c.link.reset();
  }
  t.reset();
  // 5. The executor: what is still queued on it runs (the transport's last
  // answers, each completing nothing now), then its threads end.
  c.stop_pool();
  c.stop_done.store(true);
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
  for (const auto& slot : core_->slots_in_order()) out.push_back(slot->agent.get());
  return out;
}

AgentDirectory& Mesh::directory() { return core_->directory; }

PeerClient& Mesh::node_client() { return *core_->node_client; }

void Mesh::sign_registry_with_for_test(const std::string& curve_secret_z85) {
  MeshCore& c = *core_;
  std::lock_guard lock(c.mu);
  if (c.state != MeshCore::State::Created) throw std::logic_error("sign_registry_with_for_test: before start()");
  c.signer = std::make_unique<detail::RegistrySigner>(curve_secret_z85);
}

std::optional<transport::TransportStats> Mesh::transport_stats() const {
  const auto t = core_->get_transport();
  if (!t) return std::nullopt;
  return t->stats();
}

bool Mesh::with_membership(const std::function<void(const swim::Membership&)>& fn) const {
  std::shared_lock readers(core_->membership_readers);
  const swim::Membership* m = core_->live_membership();
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
  out.registry_unchanged = s.registry_unchanged.load();
  out.registry_from_tags = s.registry_from_tags.load();
  out.registry_failures = s.registry_failures.load();
  out.registry_bad_signatures = s.registry_bad_signatures.load();
  out.certificates_refused = s.certificates_refused.load();
  out.policy_denied_received = s.policy_denied_received.load();
  out.policy_denied_sent = s.policy_denied_sent.load();
  out.agent_conflicts = core_->directory.conflicts();
  out.tag_updates = s.tag_updates.load();
  out.agent_failures = s.agent_failures.load();
  out.agent_restarts = s.agent_restarts.load();
  out.authority_refused = s.authority_refused.load();
  out.threads = core_->thread_stats();
  if (core_->audit) {
    out.audit_records = core_->audit->records_written();
    out.audit_bytes = core_->audit->bytes_written();
    out.audit_dropped = core_->audit->dropped_records();
  }
  return out;
}

std::vector<ThreadRecord> Mesh::threads() const { return core_->thread_list(); }

std::optional<ThreadRecord> Mesh::thread(const ThreadId& id) const { return core_->thread_record(id); }

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
