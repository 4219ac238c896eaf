#include "mesh/metrics.hpp"

#include <algorithm>
#include <array>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <exception>
#include <limits>
#include <mutex>
#include <prometheus/client_metric.h>
#include <prometheus/metric_family.h>
#include <prometheus/metric_type.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <unistd.h>

#include <sstream>
#include <string_view>
#include <utility>

#include "mesh/admin_server.hpp"
#include "mesh/version.hpp"

namespace mesh {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;
using Labels = std::vector<ClientMetric::Label>;

MetricFamily family(std::string name, std::string help, MetricType type) {
  MetricFamily f;
  f.name = std::move(name);
  f.help = std::move(help);
  f.type = type;
  return f;
}

void add(MetricFamily& f, double value, Labels labels = {}) {
  ClientMetric m;
  m.label = std::move(labels);
  if (f.type == MetricType::Counter) {
    m.counter.value = value;
  } else {
    m.gauge.value = value;
  }
  f.metric.push_back(std::move(m));
}

double d(std::uint64_t v) { return static_cast<double>(v); }

MetricFamily counter(std::string name, std::string help, std::uint64_t value) {
  MetricFamily f = family(std::move(name), std::move(help), MetricType::Counter);
  add(f, d(value));
  return f;
}

// A histogram sample from per-bucket counts: buckets[i] counts the
// observations over bounds[i-1] and at most bounds[i]; the one past the
// last bound is in `count` only (Prometheus' buckets are cumulative).
template <class Buckets, class Bounds>
ClientMetric histogram_sample(Labels labels, const Buckets& buckets, const Bounds& bounds, std::uint64_t count,
                              double sum) {
  ClientMetric m;
  m.label = std::move(labels);
  m.histogram.sample_count = count;
  m.histogram.sample_sum = sum;
  std::uint64_t cumulative = 0;
  for (std::size_t b = 0; b < bounds.size(); ++b) {
    cumulative += buckets[b];
    m.histogram.bucket.push_back({cumulative, bounds[b]});
  }
  m.histogram.bucket.push_back({count, std::numeric_limits<double>::infinity()});
  return m;
}

// Message types as TransportStats indexes them.
constexpr std::array<const char*, 5> kTypeLabels = {"notify", "request", "response", "error", "control"};

}  // namespace

MembershipSample sample(const swim::Membership& membership) {
  MembershipSample s;
  s.members = membership.members();
  s.node = membership.node_stats();
  s.driver = membership.driver_stats();
  s.health_score = membership.health_score();
  return s;
}

std::vector<MetricFamily> membership_families(const MembershipSample& s) {
  using swim::DecodeError;
  std::vector<MetricFamily> out;
  const swim::NodeStats& n = s.node;
  const swim::DriverStats& dr = s.driver;

  MetricFamily members = family("mesh_swim_members", "Members this node knows, by state (itself included).",
                                MetricType::Gauge);
  std::array<std::uint64_t, 4> by_state{};
  for (const auto& m : s.members) {
    const auto i = static_cast<std::size_t>(m.member.state);
    if (i < by_state.size()) ++by_state[i];
  }
  for (auto state : {swim::MemberState::Alive, swim::MemberState::Suspect, swim::MemberState::Dead,
                     swim::MemberState::Left}) {
    add(members, d(by_state[static_cast<std::size_t>(state)]),
        {{"state", std::string(swim::to_string(state))}});
  }
  out.push_back(std::move(members));

  MetricFamily health = family("mesh_swim_health_score",
                               "Lifeguard local health multiplier: 0 is healthy, higher means this node "
                               "is slow to answer probes and waits longer before suspecting others.",
                               MetricType::Gauge);
  add(health, s.health_score);
  out.push_back(std::move(health));

  out.push_back(counter("mesh_swim_probes_total",
                        "Probe rounds started: one per protocol period, a direct ping, then indirect "
                        "probes and a TCP ping if no ack comes.",
                        n.probes));
  out.push_back(counter("mesh_swim_probes_failed_total",
                        "Probe rounds of mesh_swim_probes_total that ended with no ack at all.",
                        n.probes_failed));
  MetricFamily indirect = family("mesh_swim_indirect_probes_total",
                                 "Indirect probes: sent asks other members to probe for us; served "
                                 "probes a target for another member.",
                                 MetricType::Counter);
  add(indirect, d(n.indirect_probes_sent), {{"role", "sent"}});
  add(indirect, d(n.indirect_probes_served), {{"role", "served"}});
  out.push_back(std::move(indirect));
  out.push_back(counter("mesh_swim_suspicions_raised_total", "Suspicions this node started.",
                        n.suspicions_raised));
  out.push_back(counter("mesh_swim_refutations_total",
                        "Claims about this node (suspect, dead) it refuted.", n.refutations));
  out.push_back(counter("mesh_swim_gossip_packets_total", "Gossip packets sent.", n.gossip_packets));
  MetricFamily push_pulls = family("mesh_swim_push_pulls_total",
                                   "Full state exchanges over TCP, started or answered.",
                                   MetricType::Counter);
  add(push_pulls, d(n.push_pulls), {{"role", "initiated"}});
  add(push_pulls, d(n.push_pulls_served), {{"role", "served"}});
  out.push_back(std::move(push_pulls));

  MetricFamily packets = family("mesh_swim_packets_total", "UDP packets.", MetricType::Counter);
  add(packets, d(n.packets_received), {{"direction", "in"}});
  add(packets, d(n.packets_sent), {{"direction", "out"}});
  out.push_back(std::move(packets));
  MetricFamily bytes = family("mesh_swim_bytes_total", "UDP payload bytes.", MetricType::Counter);
  add(bytes, d(n.bytes_received), {{"direction", "in"}});
  add(bytes, d(n.bytes_sent), {{"direction", "out"}});
  out.push_back(std::move(bytes));
  MetricFamily streams = family("mesh_swim_streams_total", "TCP streams (push/pull, stream pings).",
                                MetricType::Counter);
  add(streams, d(n.streams_received), {{"direction", "in"}});
  add(streams, d(n.streams_sent), {{"direction", "out"}});
  out.push_back(std::move(streams));

  // What arrives and is dropped, one family per unit: whole UDP packets
  // and TCP streams the driver refuses before decoding, then messages
  // (a packet's, a compound's parts, a stream's) the core cannot decode.
  MetricFamily packets_dropped = family("mesh_swim_packets_dropped_total",
                                        "UDP packets dropped before decoding, by reason.", MetricType::Counter);
  add(packets_dropped, d(dr.packets_dropped_decrypt), {{"reason", "decrypt_failure"}});
  add(packets_dropped, d(dr.packets_dropped_oversize), {{"reason", "oversized"}});
  out.push_back(std::move(packets_dropped));
  MetricFamily streams_dropped = family("mesh_swim_streams_dropped_total",
                                        "TCP streams dropped before or instead of decoding, by reason.",
                                        MetricType::Counter);
  add(streams_dropped, d(dr.streams_dropped_decrypt), {{"reason", "decrypt_failure"}});
  add(streams_dropped, d(dr.streams_dropped_oversize), {{"reason", "oversized"}});
  add(streams_dropped, d(dr.streams_dropped_malformed), {{"reason", "malformed"}});
  add(streams_dropped, d(dr.streams_dropped_budget), {{"reason", "over_budget"}});
  add(streams_dropped, d(n.push_pull_rejected), {{"reason", "unknown_version"}});
  out.push_back(std::move(streams_dropped));
  // Incomplete is never final (a stream waits for more) and counts nowhere.
  MetricFamily undecodable = family("mesh_swim_messages_undecodable_total",
                                    "SWIM messages (from packets or streams) that did not decode, by error.",
                                    MetricType::Counter);
  for (std::size_t e = 0; e < static_cast<std::size_t>(DecodeError::Count_); ++e) {
    if (static_cast<DecodeError>(e) == DecodeError::Incomplete) continue;
    add(undecodable, d(n.decode_errors[e]), {{"error", std::string(swim::to_string(static_cast<DecodeError>(e)))}});
  }
  out.push_back(std::move(undecodable));
  out.push_back(counter("mesh_swim_streams_evicted_total",
                        "Inbound TCP streams closed to make room for a new one (the slowest "
                        "waiting for its request goes).",
                        dr.streams_evicted));
  MetricFamily buffered = family("mesh_swim_stream_buffer_bytes",
                                 "Bytes held by TCP stream buffers (budget: max_stream_buffer_bytes).",
                                 MetricType::Gauge);
  add(buffered, d(dr.stream_buffer_bytes));
  out.push_back(std::move(buffered));
  return out;
}

std::vector<MetricFamily> transport_families(const transport::TransportStats& s) {
  std::vector<MetricFamily> out;
  const auto by_type = [&](std::string name, std::string help, const std::uint64_t (&v)[5]) {
    MetricFamily f = family(std::move(name), std::move(help), MetricType::Counter);
    for (std::size_t i = 0; i < kTypeLabels.size(); ++i) add(f, d(v[i]), {{"type", kTypeLabels[i]}});
    out.push_back(std::move(f));
  };
  by_type("mesh_transport_messages_sent_total", "Messages sent to other nodes and to local inboxes.",
          s.sent);
  by_type("mesh_transport_messages_received_total", "Messages received.", s.received);
  by_type("mesh_transport_messages_refused_total",
          "Messages refused (mailbox full, unknown target, expired, ...).", s.refused);
  by_type("mesh_transport_messages_deduplicated_total",
          "Messages dropped as copies of one already received.", s.deduplicated);

  MetricFamily dropped = family("mesh_transport_frames_dropped_total",
                                "ZeroMQ frames dropped on arrival, by reason (before any agent saw them).",
                                MetricType::Counter);
  add(dropped, d(s.frames_malformed), {{"reason", "malformed"}});
  add(dropped, d(s.frames_oversized), {{"reason", "oversized"}});
  add(dropped, d(s.frames_bad_version), {{"reason", "unknown_version"}});
  add(dropped, d(s.frames_unauthenticated), {{"reason", "unauthenticated"}});
  add(dropped, d(s.frames_forged), {{"reason", "forged"}});
  add(dropped, d(s.frames_denied), {{"reason", "denied"}});
  out.push_back(std::move(dropped));
  out.push_back(counter("mesh_transport_handshakes_refused_total",
                        "Our CURVE handshakes a peer refused because it did not know our key yet (each retried).",
                        s.handshakes_refused));

  MetricFamily latency = family("mesh_transport_request_duration_seconds",
                                "Request latency from the call to the reply or the failure.",
                                MetricType::Histogram);
  for (std::size_t o = 0; o < 2; ++o) {
    const transport::LatencyHistogram& h = s.request_latency[o];
    latency.metric.push_back(histogram_sample({{"outcome", o == 0 ? "answered" : "failed"}}, h.buckets,
                                              transport::kRequestLatencyBounds, h.count, h.sum_seconds));
  }
  out.push_back(std::move(latency));

  out.push_back(counter("mesh_transport_connections_revoked_total",
                        "Inbound connections closed because their CURVE key was revoked (the member "
                        "died, left or was re-keyed).",
                        s.connections_revoked));
  out.push_back(counter("mesh_transport_requests_timed_out_total", "Requests that got no reply in time.",
                        s.requests_timed_out));
  out.push_back(counter("mesh_transport_requests_failed_fast_total",
                        "Requests failed at once: peer dead, unreachable or unknown, or shutdown.",
                        s.requests_failed_fast));

  // Each queue holds its own kind of thing: a gauge each, not one family
  // whose sum would mean nothing.
  const auto gauge = [&out](std::string name, std::string help, std::uint64_t v) {
    MetricFamily f = family(std::move(name), std::move(help), MetricType::Gauge);
    add(f, d(v));
    out.push_back(std::move(f));
  };
  gauge("mesh_transport_outbound_messages", "Messages queued to be sent to other nodes.", s.outbound_queued);
  gauge("mesh_transport_pending_requests", "Requests sent and waiting for their reply.", s.pending_requests);
  gauge("mesh_transport_replies_waiting",
        "Replies and refusals deferred until their peer can take them.", s.replies_waiting);
  gauge("mesh_transport_ask_entries", "ask_async requests whose answer is not collected yet.", s.ask_entries);
  gauge("mesh_transport_frames_held",
        "Frames from a peer not admitted yet (its registry or key is being fetched).", s.frames_holding);
  // Bytes beside counts: every queue has a byte budget too
  // (TransportOptions; docs/transport.md, "Budgets").
  MetricFamily queued_bytes = family("mesh_transport_queued_bytes", "Bytes held, by queue.",
                                     MetricType::Gauge);
  add(queued_bytes, d(s.outbound_queued_bytes), {{"queue", "outbound"}});
  add(queued_bytes, d(s.inbox_queued_bytes), {{"queue", "inboxes"}});
  add(queued_bytes, d(s.replies_waiting_bytes), {{"queue", "replies_waiting"}});
  add(queued_bytes, d(s.reply_cache_bytes), {{"queue", "reply_cache"}});
  add(queued_bytes, d(s.ask_bytes), {{"queue", "ask_answers"}});
  out.push_back(std::move(queued_bytes));
  out.push_back(counter("mesh_transport_replies_dropped_total",
                        "Replies and refusals dropped because the deferral budget was full.",
                        s.replies_dropped));
  out.push_back(counter("mesh_transport_notifies_undeliverable_total",
                        "Notifies accepted and later refused or lost; each is reported to its sender.",
                        s.notifies_undeliverable));

  gauge("mesh_transport_peers_known", "Nodes the transport has an address for.", s.peers);
  gauge("mesh_transport_peers_connected", "Of mesh_transport_peers_known, those with an open connection.",
        s.peers_connected);
  out.push_back(counter("mesh_transport_connections_closed_idle_total",
                        "Connections to other nodes closed after carrying nothing for the idle timeout; "
                        "the next message opens one again.",
                        s.connections_closed_idle));
  out.push_back(counter("mesh_transport_memory_trims_total",
                        "Times the free heap was handed back to the system after connections closed.",
                        s.memory_trims));
  return out;
}

std::vector<MetricFamily> mesh_families(const MeshSample& s) {
  std::vector<MetricFamily> out;
  const MeshStats& m = s.stats;
  MetricFamily agents = family("mesh_agents", "Agents hosted by this node.", MetricType::Gauge);
  add(agents, d(s.agents));
  out.push_back(std::move(agents));
  out.push_back(counter("mesh_payloads_malformed_total",
                        "Messages the transport delivered whose payload or context did not decode for the "
                        "agent (dropped; frames that did not decode are in mesh_transport_frames_dropped_total).",
                        m.messages_malformed));
  out.push_back(counter("mesh_registry_fetches_started_total", "Agent registry fetches from other nodes started.",
                        m.registry_fetches));
  MetricFamily fetches = family("mesh_registry_fetches_total",
                                "Agent registry fetches that ended, by result: applied (newer than the one held), "
                                "unchanged, failed (no answer, garbage or a bad signature).",
                                MetricType::Counter);
  add(fetches, d(m.registry_applied), {{"result", "applied"}});
  add(fetches, d(m.registry_unchanged), {{"result", "unchanged"}});
  add(fetches, d(m.registry_failures), {{"result", "failed"}});
  out.push_back(std::move(fetches));
  out.push_back(counter("mesh_registry_from_tags_total",
                        "Empty agent registries taken from a node's SWIM tags without a fetch.",
                        m.registry_from_tags));
  out.push_back(counter("mesh_registry_bad_signatures_total",
                        "Fetched registries not signed by their node's key (counted in failed too).",
                        m.registry_bad_signatures));
  MetricFamily denied = family("mesh_policy_denied_total",
                               "Messages the trust policy refused, at the receiver or before sending.",
                               MetricType::Counter);
  add(denied, d(m.policy_denied_received), {{"side", "receiver"}});
  add(denied, d(m.policy_denied_sent), {{"side", "sender"}});
  out.push_back(std::move(denied));
  out.push_back(counter("mesh_certificates_refused_total",
                        "Node certificates that failed their check: those nodes' zone claims are ignored.",
                        m.certificates_refused));
  out.push_back(counter("mesh_agent_conflicts_total",
                        "Remote agent cards withheld because another node held their agent id.",
                        m.agent_conflicts));
  out.push_back(counter("mesh_agent_failures_total", "Exceptions thrown by agents.", m.agent_failures));
  out.push_back(counter("mesh_agent_restarts_total", "Agent restarts after a failure.", m.agent_restarts));

  const ThreadTableStats& t = m.threads;
  out.push_back(counter("mesh_threads_opened_total", "Conversation threads this node saw open.", t.opened));
  MetricFamily threads = family("mesh_threads_ended_total",
                                "Conversation threads this node saw end, by how: closed, expired, or evicted "
                                "(forgotten at capacity).",
                                MetricType::Counter);
  add(threads, d(t.closed), {{"how", "closed"}});
  add(threads, d(t.expired), {{"how", "expired"}});
  add(threads, d(t.evicted), {{"how", "evicted"}});
  out.push_back(std::move(threads));
  MetricFamily refusals = family("mesh_thread_refusals_total",
                                 "Messages this node refused for their thread's limits, by reason.",
                                 MetricType::Counter);
  for (std::size_t r = 1; r < kRefusalKinds; ++r) {
    add(refusals, d(t.refusals[r]), {{"reason", std::string(to_string(static_cast<Refusal>(r)))}});
  }
  out.push_back(std::move(refusals));
  out.push_back(counter("mesh_authority_refused_total",
                        "Authority messages refused for their class: sent while handling an advisory message, "
                        "or advisory messages to an authority-only agent.",
                        m.authority_refused));
  // The histograms' counts are cumulative already (ThreadTableStats).
  auto histogram = [&](const char* name, const char* help, const auto& counts, const auto& bounds, double sum) {
    MetricFamily f = family(name, help, MetricType::Histogram);
    ClientMetric c;
    c.histogram.sample_count = counts.back();
    c.histogram.sample_sum = sum;
    for (std::size_t b = 0; b < bounds.size(); ++b) c.histogram.bucket.push_back({counts[b], bounds[b]});
    c.histogram.bucket.push_back({counts.back(), std::numeric_limits<double>::infinity()});
    f.metric.push_back(std::move(c));
    out.push_back(std::move(f));
  };
  histogram("mesh_thread_turns", "Turns of the threads that ended here.", t.turns_histogram, kTurnBuckets,
            static_cast<double>(t.turns_sum));
  histogram("mesh_thread_cost", "Cost of the threads that ended here, in the application's units.",
            t.cost_histogram, kCostBuckets, t.cost_sum);
  out.push_back(counter("mesh_audit_records_total", "Records written to the audit trail.", m.audit_records));
  out.push_back(counter("mesh_audit_bytes_total", "Bytes written to the audit trail.", m.audit_bytes));
  out.push_back(counter("mesh_audit_dropped_total",
                        "Audit records lost: a failed write, or a record too large or too deep.", m.audit_dropped));

  // Per role of the node's agents.
  MetricFamily role_agents = family("mesh_role_agents", "Agents of each role on this node.", MetricType::Gauge);
  MetricFamily mailbox = family("mesh_role_mailbox_messages",
                                "Messages waiting in the mailboxes of each role's agents.", MetricType::Gauge);
  MetricFamily handlers = family("mesh_role_handler_duration_seconds",
                                 "How long each role's message handlers (on_request, on_notify) took, from start "
                                 "to end, their awaits included.",
                                 MetricType::Histogram);
  for (const RoleStats& r : s.roles) {
    add(role_agents, d(r.agents), {{"role", r.role}});
    add(mailbox, d(r.mailbox_depth), {{"role", r.role}});
    handlers.metric.push_back(
        histogram_sample({{"role", r.role}}, r.handler_buckets, kHandlerSecondsBounds, r.handled, r.handler_seconds));
  }
  out.push_back(std::move(role_agents));
  out.push_back(std::move(mailbox));
  out.push_back(std::move(handlers));
  return out;
}

// ---- Metrics ----------------------------------------------------------------

Metrics::Metrics() : registry_(std::make_shared<prometheus::Registry>()) {}
Metrics::~Metrics() = default;

void Metrics::add_source(MembershipSource source) {
  std::lock_guard lock(mu_);
  membership_sources_.push_back(std::move(source));
}
void Metrics::add_source(TransportSource source) {
  std::lock_guard lock(mu_);
  transport_sources_.push_back(std::move(source));
}
void Metrics::add_source(MeshSource source) {
  std::lock_guard lock(mu_);
  mesh_sources_.push_back(std::move(source));
}

void Metrics::watch(const swim::Membership& membership) {
  add_source(MembershipSource([&membership]() -> std::optional<MembershipSample> {
    return sample(membership);
  }));
}

void Metrics::watch(const transport::Transport& transport) {
  add_source(TransportSource([&transport]() -> std::optional<transport::TransportStats> {
    return transport.stats();
  }));
}

void Metrics::watch(const Mesh& mesh) {
  add_source(MeshSource([&mesh]() -> std::optional<MeshSample> {
    MeshSample s{mesh.stats(), 0, mesh.role_stats()};
    for (const RoleStats& r : s.roles) s.agents += r.agents;  // every agent has a role
    return s;
  }));
  add_source(TransportSource([&mesh] { return mesh.transport_stats(); }));
  add_source(MembershipSource([&mesh]() -> std::optional<MembershipSample> {
    std::optional<MembershipSample> out;
    mesh.with_membership([&out](const swim::Membership& m) { out = sample(m); });
    return out;
  }));
}

prometheus::Registry& Metrics::registry() { return *registry_; }

namespace {

// Families of the same name (from two watched transports, say) become one family: the text
// format allows a name's HELP and TYPE once.
void merge_into(std::vector<MetricFamily>& all, std::vector<MetricFamily>&& more) {
  for (auto& f : more) {
    auto same = std::find_if(all.begin(), all.end(), [&](const MetricFamily& g) { return g.name == f.name; });
    if (same == all.end()) {
      all.push_back(std::move(f));
    } else if (same->type == f.type) {
      for (auto& m : f.metric) same->metric.push_back(std::move(m));
    }
  }
}

template <class Source, class Fn>
void collect(const std::vector<Source>& sources, std::vector<MetricFamily>& all, Fn&& families) {
  for (const auto& source : sources) {
    try {
      if (auto s = source()) merge_into(all, families(*s));
    } catch (const std::exception& e) {
      spdlog::warn("metrics: a source failed: {}", e.what());
    }
  }
}

}  // namespace

namespace {

// mesh_build_info and the process_* families every Prometheus client
// library exports (its "process collector"), read from /proc/self at each
// scrape. A file that cannot be read leaves its families out.
std::vector<MetricFamily> process_families() {
  std::vector<MetricFamily> out;
  MetricFamily info = family("mesh_build_info", "The build this node runs: always 1, labelled with its version.",
                             MetricType::Gauge);
  add(info, 1, {{"version", std::string(kVersion)}});
  out.push_back(std::move(info));
  auto gauge = [&out](std::string name, std::string help, double v) {
    MetricFamily f = family(std::move(name), std::move(help), MetricType::Gauge);
    add(f, v);
    out.push_back(std::move(f));
  };
  const double ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
  const double page = static_cast<double>(::sysconf(_SC_PAGESIZE));
  // /proc/self/stat: the fields after the command's closing parenthesis
  // (the command may hold spaces and parentheses itself).
  std::ifstream stat_file("/proc/self/stat");
  std::string stat((std::istreambuf_iterator<char>(stat_file)), std::istreambuf_iterator<char>());
  const auto close = stat.rfind(')');
  if (close != std::string::npos && ticks > 0) {
    std::istringstream rest(stat.substr(close + 2));
    std::vector<std::string> f;
    for (std::string w; rest >> w;) f.push_back(w);
    // Counting from field 3 (state) as f[0]: utime 14, stime 15,
    // starttime 22, vsize 23, rss 24 (proc(5)).
    if (f.size() > 21) {
      MetricFamily cpu = family("process_cpu_seconds_total", "User and system CPU time spent, in seconds.",
                                MetricType::Counter);
      add(cpu, (std::stod(f[11]) + std::stod(f[12])) / ticks);
      out.push_back(std::move(cpu));
      gauge("process_virtual_memory_bytes", "Virtual memory size in bytes.", std::stod(f[20]));
      gauge("process_resident_memory_bytes", "Resident memory size in bytes.", std::stod(f[21]) * page);
      std::ifstream proc_stat("/proc/stat");
      for (std::string line; std::getline(proc_stat, line);) {
        if (line.rfind("btime ", 0) != 0) continue;
        gauge("process_start_time_seconds", "Start time of the process since the Unix epoch, in seconds.",
              std::stod(line.substr(6)) + std::stod(f[19]) / ticks);
        break;
      }
    }
  }
  std::error_code ec;
  std::size_t fds = 0;
  for (std::filesystem::directory_iterator it("/proc/self/fd", ec), end; !ec && it != end; it.increment(ec)) ++fds;
  if (!ec) gauge("process_open_fds", "Number of open file descriptors.", d(fds));
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY) {
    gauge("process_max_fds", "Maximum number of open file descriptors.", d(limit.rlim_cur));
  }
  return out;
}

}  // namespace

std::string Metrics::scrape() const {
  std::vector<MembershipSource> ms;
  std::vector<TransportSource> ts;
  std::vector<MeshSource> mesh;
  {
    std::lock_guard lock(mu_);
    ms = membership_sources_;
    ts = transport_sources_;
    mesh = mesh_sources_;
  }
  std::vector<MetricFamily> all;
  collect(ms, all, [](const MembershipSample& s) { return membership_families(s); });
  collect(ts, all, [](const transport::TransportStats& s) { return transport_families(s); });
  collect(mesh, all, [](const MeshSample& s) { return mesh_families(s); });
  merge_into(all, registry_->Collect());
  try {
    merge_into(all, process_families());
  } catch (const std::exception& e) {  // a /proc field that is not a number
    spdlog::warn("metrics: process metrics failed: {}", e.what());
  }
  std::ostringstream text;
  prometheus::TextSerializer().Serialize(text, all);
  return text.str();
}

// ---- MetricsEndpoint --------------------------------------------------------

struct MetricsEndpoint::State {
  std::shared_ptr<const Metrics> metrics;
  boost::asio::thread_pool worker{1};
  // Under mu, so that nothing is posted to the worker once it is joined
  // (a task left in a joined pool would own the pool's State: a cycle).
  std::mutex mu;
  bool closed = false;
};

MetricsEndpoint::MetricsEndpoint(AdminServer& admin, std::shared_ptr<const Metrics> metrics)
    : state_(std::make_shared<State>()) {
  state_->metrics = std::move(metrics);
  std::weak_ptr<State> weak = state_;
  admin.route_async("/metrics", [weak](const HttpRequest&, AdminServer::Respond respond) {
    auto state = weak.lock();
    std::unique_lock<std::mutex> lock;
    if (state) lock = std::unique_lock(state->mu);
    if (!state || state->closed) {
      respond(HttpResponse::error(503, "metrics are not served any more"));
      return;
    }
    boost::asio::post(state->worker, [state, respond = std::move(respond)] {
      HttpResponse r;
      try {
        r.body = state->metrics->scrape();
        r.content_type = kMetricsContentType;
      } catch (const std::exception& e) {
        r = HttpResponse::error(500, std::string("scrape failed: ") + e.what());
      }
      respond(std::move(r));
    });
  });
}

MetricsEndpoint::~MetricsEndpoint() {
  {
    std::lock_guard lock(state_->mu);
    state_->closed = true;
  }
  state_->worker.join();
}

std::unique_ptr<MetricsEndpoint> attach_metrics(AdminServer& admin, const Mesh& mesh) {
  auto metrics = std::make_shared<Metrics>();
  metrics->watch(mesh);
  return std::make_unique<MetricsEndpoint>(admin, std::move(metrics));
}

}  // namespace mesh
