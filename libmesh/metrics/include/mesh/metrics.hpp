// Metrics: a node's counters in the Prometheus text exposition format
// (version 0.0.4), served as GET /metrics on the admin endpoint.
//
// prometheus-cpp (its core library only) holds the data model and writes
// the text; the values are not kept twice. SWIM, the transport and the
// Mesh already count everything in their own stats snapshots, so a scrape
// takes those snapshots and turns them into prometheus-cpp metric families
// (what a Collectable returns), instead of mirroring every event into
// prometheus-cpp counters, which only count up by increments. Counters are
// therefore exactly the cumulative counts of the snapshots and never go
// down while their source lives.
//
// What is exported: docs/operations.md, "Metrics", lists every family. In
// short: swim_* (members by state, probes, gossip, packets and streams, and
// what arrived and was dropped: swim_packets_dropped_total,
// swim_streams_dropped_total, swim_messages_undecodable_total), transport_*
// (messages by type, request latency, frames dropped, each queue's depth,
// peers known and connected), the Mesh's (agents, payloads malformed,
// registry fetches, policy, threads and the audit trail), per role of the
// node's agents (role_agents, role_mailbox_messages,
// role_handler_duration_seconds), and build_info. Each name has one
// meaning: no family's label values count the same event twice.
// And the process collector's standard families (no mesh_ prefix), read
// from /proc/self: process_cpu_seconds_total, process_resident_memory_bytes,
// process_virtual_memory_bytes, process_open_fds, process_max_fds,
// process_start_time_seconds.
// A source that has nothing to report (a Mesh before start()) adds nothing.
// registry() takes the program's own metrics; they are served too.
//
// Threading: scrape() may be called from any thread but the strand of a
// watched swim::Membership (its snapshots post there and wait), so never
// from an admin handler directly on the I/O thread; MetricsEndpoint scrapes
// on a thread of its own.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "mesh/mesh.hpp"
#include "mesh/swim/membership.hpp"
#include "mesh/transport/transport.hpp"

namespace prometheus {
class Registry;
struct MetricFamily;
}  // namespace prometheus

namespace mesh {

class AdminServer;

// The Content-Type of the text exposition format.
inline constexpr char kMetricsContentType[] = "text/plain; version=0.0.4; charset=utf-8";

// One scrape's view of a membership.
struct MembershipSample {
  std::vector<swim::MemberInfo> members;
  swim::NodeStats node;
  swim::DriverStats driver;
  int health_score = 0;
};
MembershipSample sample(const swim::Membership& membership);

// One scrape's view of a Mesh itself (its transport and membership are
// sampled separately).
struct MeshSample {
  MeshStats stats;
  std::size_t agents = 0;
  std::vector<RoleStats> roles;
};

// The metric families of each sample (pure: no I/O, no clock).
std::vector<prometheus::MetricFamily> membership_families(const MembershipSample& s);
std::vector<prometheus::MetricFamily> transport_families(const transport::TransportStats& s);
std::vector<prometheus::MetricFamily> mesh_families(const MeshSample& s);

class Metrics {
 public:
  // Each source is called at every scrape; nullopt adds nothing.
  using MembershipSource = std::function<std::optional<MembershipSample>()>;
  using TransportSource = std::function<std::optional<transport::TransportStats>()>;
  using MeshSource = std::function<std::optional<MeshSample>()>;

  Metrics();
  ~Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  void add_source(MembershipSource source);
  void add_source(TransportSource source);
  void add_source(MeshSource source);

  // Sources reading these objects, which must outlive every scrape.
  void watch(const swim::Membership& membership);
  void watch(const transport::Transport& transport);
  // The Mesh's own counters, its transport and its membership while it
  // runs (Mesh::with_membership: a scrape during Mesh::stop() is safe and
  // simply has no membership figures). The Mesh must outlive every scrape.
  void watch(const Mesh& mesh);

  // For the program's own metrics (counters, gauges, histograms).
  prometheus::Registry& registry();

  // Every family of every source and of registry(), in the text format.
  // A source that throws is left out of this scrape (and logged).
  std::string scrape() const;

 private:
  mutable std::mutex mu_;  // guards the source lists
  std::vector<MembershipSource> membership_sources_;
  std::vector<TransportSource> transport_sources_;
  std::vector<MeshSource> mesh_sources_;
  std::shared_ptr<prometheus::Registry> registry_;
};

// Serves GET /metrics on an AdminServer from a Metrics, scraping on a
// thread of its own (the admin server's I/O thread must not wait on
// SWIM's strand). Construct before admin.start() or on the admin's I/O
// thread, like any route. The destructor waits for a scrape in progress;
// the AdminServer may outlive the endpoint (/metrics then answers 503).
class MetricsEndpoint {
 public:
  MetricsEndpoint(AdminServer& admin, std::shared_ptr<const Metrics> metrics);
  ~MetricsEndpoint();
  MetricsEndpoint(const MetricsEndpoint&) = delete;
  MetricsEndpoint& operator=(const MetricsEndpoint&) = delete;

 private:
  struct State;
  std::shared_ptr<State> state_;
};

// GET /metrics for a Mesh on `admin`: a Metrics watching `mesh`, and the
// endpoint serving it. Keep the result alive while serving and destroy it
// before the Mesh (stopping the Mesh first is fine).
std::unique_ptr<MetricsEndpoint> attach_metrics(AdminServer& admin, const Mesh& mesh);

}  // namespace mesh
