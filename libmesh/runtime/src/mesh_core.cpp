// MeshCore: construction and teardown of the state a Mesh shares with its
// agents and PeerClients, and the helpers every part of it uses.
#include "mesh_core.hpp"

#include <boost/asio/io_context.hpp>
#include <algorithm>
#include <charconv>
#include <chrono>
#include <random>
#include <spdlog/spdlog.h>
#include <stdexcept>

#include "mesh/swim/membership.hpp"
#include "mesh/text.hpp"

namespace mesh::detail {

std::uint64_t random_u64() {
  std::random_device rd;
  return (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
}

std::optional<std::uint64_t> parse_u64(const std::string& text) {
  std::uint64_t v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc{} || end != text.data() + text.size() || text.empty()) return std::nullopt;
  return v;
}

std::int64_t steady_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

namespace {

// Each MeshCore of the process its own number, never reused (an address
// could be, by the next Mesh).
std::uint64_t next_instance() {
  static std::atomic<std::uint64_t> last{0};
  return last.fetch_add(1, std::memory_order_relaxed) + 1;
}

std::int64_t unix_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
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
    case DirectoryEventKind::AgentConflict: return PeerEventKind::AgentConflict;
  }
  return PeerEventKind::AgentUpdated;
}

}  // namespace

// The policy, the trust key and this node's certificate: each a reason not
// to start when it is wrong (std::invalid_argument, one line).
void MeshCore::load_trust() {
  if (!config.policy_file.empty()) {
    policy = std::make_shared<const Policy>(Policy::load(config.policy_file));  // names the file and line when wrong
    policy_on = true;
  }
  if (!config.trust_key.empty()) {
    trust_key = parse_trust_key(config.trust_key);
    if (!trust_key) throw std::invalid_argument("trust_key: not base64 of a 32-byte Ed25519 public key");
  }
  if (config.node_cert.empty()) return;
  if (!trust_key) throw std::invalid_argument("node_cert: a certificate needs trust_key (JC_TRUST_KEY) to check it");
  if (config.curve_public_key.empty()) {
    throw std::invalid_argument(
        "node_cert: a certificate names a CURVE key, and this node has none (set gossip_key, or the CURVE keys)");
  }
  CertCheck check{};
  const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                       std::chrono::system_clock::now().time_since_epoch()).count();
  auto cert = open_cert(config.node_cert, *trust_key, node_name, config.curve_public_key, now, check);
  if (check != CertCheck::Ok) {
    std::string detail;
    if (check == CertCheck::WrongNode && cert) detail = " (it names " + cert->name + ")";
    if (check == CertCheck::WrongKey) {
      detail = " (this node's key is " + config.curve_public_key +
               (config.data_dir.empty() ? ", drawn for this run: keep it in data_dir" : "") + ")";
    }
    throw std::invalid_argument("node_cert: " + std::string(to_string(check)) + detail);
  }
  own_cert = config.node_cert;
  own_claims = std::move(cert->zones);
}

MeshCore::MeshCore(NodeConfig cfg, MeshOptions opts)
    : key_source(detail::resolve_curve_keys(cfg)),
      config(std::move(cfg)),
      options(std::move(opts)),
      instance(next_instance()),
      node_name(default_node_name(config)),
      directory(node_name, options.seed != 0 ? options.seed : random_u64(),
                // Above anything a previous run under this name advertised.
                static_cast<std::uint64_t>(unix_ms())) {
  check_node_name(node_name);
  user_tags = config.tags;
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
  default_strategy = static_cast<int>(*parse_strategy(config.discovery_strategy));
  request_timeout_ms = config.request_timeout.count();
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
  if (config.p2p_enabled && !config.curve_secret_key.empty()) {
    signer = std::make_unique<RegistrySigner>(config.curve_secret_key);
    signing_key_tag = signer->public_key_base64();
  }
  load_trust();
  open_audit();
  // Room for the envelope's own fields (ids, names, times).
  limits.max_bytes = config.max_message_bytes - 1024;
  pool = std::make_unique<boost::asio::io_context>();
  node_scope.pool = pool.get();
  start_pool();
  start_control();
  directory_token = directory.subscribe([this](const DirectoryEvent& e) {
    if (e.local && (e.kind == DirectoryEventKind::AgentAdded || e.kind == DirectoryEventKind::AgentRemoved ||
                    e.kind == DirectoryEventKind::AgentUpdated)) {
      schedule_tag_update();
    }
    if (e.kind == DirectoryEventKind::AgentConflict) {
      spdlog::warn("{}: node {} advertises agent {}, which {} holds: its card is withheld", node_name,
                   escape_text(e.node), escape_text(e.card.agent_id), escape_text(e.holder));
    }
    PeerEvent pe{event_kind(e.kind), e.node, std::nullopt, e.local};
    if (!e.card.agent_id.empty()) pe.card = e.card;
    publish(std::move(pe));
  });
}

MeshCore::~MeshCore() {
  // Agents first: their clients unsubscribe from members declared later.
  {
    decltype(agents) gone;
    {
      std::lock_guard table(agents_mu);
      gone.swap(agents);
    }
  }
  node_client.reset();
  directory.unsubscribe(directory_token);
  // Mesh::stop did this unless the constructor threw after starting them.
  stop_control();
  node_scope.stop();
  stop_pool();
  tag_timer.reset();
  repair_timer.reset();
  close_audit();  // every agent has stopped: what waits is the last
}

std::shared_ptr<transport::Transport> MeshCore::get_transport() const {
  std::lock_guard lock(mu);
  return transport;
}

void RoleCounters::observe(std::chrono::steady_clock::duration took) {
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(took).count();
  const double seconds = static_cast<double>(ns) / 1e9;
  std::size_t b = 0;
  while (b < kHandlerSecondsBounds.size() && seconds > kHandlerSecondsBounds[b]) ++b;
  buckets[b].fetch_add(1, std::memory_order_relaxed);
  nanos.fetch_add(static_cast<std::uint64_t>(std::max<std::int64_t>(ns, 0)), std::memory_order_relaxed);
}

RoleCounters& MeshCore::role_counters(std::string_view role) {
  std::lock_guard lock(roles_mu);
  if (auto it = roles.find(role); it != roles.end()) return *it->second;
  const std::string name = roles.size() < RoleStats::kMaxRoleSeries ? std::string(role) : std::string("_other");
  auto& slot = roles[name];
  if (!slot) slot = std::make_unique<RoleCounters>(name);
  return *slot;
}

std::shared_ptr<transport::Inbox> MeshCore::inbox_of(const std::string& agent_id) const {
  std::lock_guard lock(mu);
  auto it = agents.find(agent_id);
  if (it == agents.end() || !it->second->inbox || it->second->inbox->closed()) return nullptr;  // stopped
  return it->second->inbox;
}

std::vector<std::shared_ptr<AgentSlot>> MeshCore::slots_in_order() const {
  std::vector<std::shared_ptr<AgentSlot>> out;
  out.reserve(agents.size());
  for (const auto& [id, slot] : agents) out.push_back(slot);
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a->order < b->order; });
  return out;
}

void MeshCore::open_mailbox(AgentSlot& slot) {
  const auto& spec = slot.agent->spec();
  slot.inbox = transport->open_inbox(spec.agent_id, spec.mailbox_limit ? spec.mailbox_limit : config.mailbox_limit);
}

}  // namespace mesh::detail
