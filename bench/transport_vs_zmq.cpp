// transport_vs_zmq: our transport against raw ZeroMQ (cppzmq) doing the
// same work, side by side in one run, 256-byte payloads, 127.0.0.1 only.
//
//   1. tcp round trip, one request in flight: a DEALER->ROUTER echo against
//      Transport::request() answered (a) by an inbox opened with a
//      QuickHandler (the primary ratio) and (b) by an agent-style thread
//      popping the inbox and calling respond() (the "mailbox" ratio);
//   2. one-way throughput: PUSH->PULL against Transport::notify() into an
//      inbox drained by one thread; both counted on the receiving side;
//   3. same-process round trip: an inproc DEALER->ROUTER echo between two
//      threads against a same-node request() answered by a responder
//      thread popping the inbox (one Transport, no socket on the path);
//   4. the Python floor: bench/pyzmq_echo.py, a pyzmq DEALER->ROUTER echo
//      that encodes and decodes a ~256-byte JSON document on each side.
//
// The servers of rows 1-2 are this binary re-executed as a second process
// (`--serve raw-echo|ours-echo|ours-quick|raw-pull|ours-sink`); each prints
// its bound port(s) on stdout and runs until SIGTERM. A throughput sink also
// binds a REP "ctl" socket (plain ZeroMQ for both sinks, so the measurement
// path is the same for raw and ours): "wait <n> <idle_ms>" answers once n
// messages arrived, or none for idle_ms, with the count and the
// CLOCK_MONOTONIC time of the last one (steady_clock is CLOCK_MONOTONIC,
// which every process on the host shares). Throughput is delivered
// messages / (last arrival - first send).
//
// Every row: a warm-up, then a bounded count (--count round trips,
// --notify-count notifies per system) or --max-seconds of measured time,
// whichever comes first. Within a round the systems of a row (raw and ours)
// are all started at once and measured in alternating slices (--slices per
// row; raw, ours, ours, raw, ...), their samples pooled per system, so that
// a burst of load on this shared machine hits both sides. Each round starts
// fresh processes. The report gives the median over rounds of each figure
// (p50, p99, msg/s) and, as each ratio, the median over rounds of that
// round's ours / raw. A transport error (a failed request, an unexpected
// notify error) aborts the run (exit 1).
//
//   transport_vs_zmq [--rounds 5] [--count 20000] [--notify-count 500000]
//                    [--max-seconds 3] [--slices 50] [--json] [--quick] [--only ROWS]
//                    [--python /usr/bin/python3] [--pyzmq-script PATH] [--curve]
// ROWS: comma list of raw-rtt, quick-rtt, mailbox-rtt, raw-push, notify,
// raw-inproc, ours-inproc, python (default: all). Rows left out are null.
// A count below 1 counts as 1, --max-seconds below 0.1 as 0.1. Exit codes:
// 0 after the run, 1 when it aborts (see above), 2 with one line on stderr
// for bad flags.
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <functional>
#include <iomanip>
#include <iostream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>
#include <zmq.hpp>

#include "mesh/cli.hpp"
#include "echo_bench.hpp"
#include "mesh/transport/transport.hpp"
#include "process.hpp"

#ifndef MESH_PYZMQ_ECHO_SCRIPT
#define MESH_PYZMQ_ECHO_SCRIPT "pyzmq_echo.py"
#endif

namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;
using mesh::test::Process;
using namespace mesh::bench;
namespace tr = mesh::transport;

constexpr std::size_t kPayloadBytes = 256;
constexpr const char* kServerNode = "srv";
constexpr const char* kClientNode = "cli";
// A sender that meets MailboxFull waits this long before it tries again.
constexpr std::chrono::microseconds kFullBackoff{50};

// --curve: every socket of rows 1-2, raw and ours, uses CURVE. The parent
// draws a server pair and a client pair and hands the server process its
// secret and the client's public key in MESH_BENCH_CURVE. The raw server
// binds no ZAP handler (libzmq then admits any client key); ours admits the
// client by its key and attributes every frame to it, as a node does.
struct CurveSetup {
  tr::CurveKeyPair server;
  tr::CurveKeyPair client;  // the server process knows its public half only
};
std::optional<CurveSetup> g_curve;
constexpr const char* kCurveEnv = "MESH_BENCH_CURVE";

// In a server process: "<server secret> <client public>" from the parent.
void load_curve_from_environment() {
  const char* text = std::getenv(kCurveEnv);
  if (text == nullptr) return;
  std::istringstream in(text);
  CurveSetup s;
  in >> s.server.secret_key >> s.client.public_key;
  s.server.public_key = tr::curve_public_from_secret(s.server.secret_key);
  g_curve = s;
}

void make_curve_server(zmq::socket_t& s) {
  if (!g_curve) return;
  s.set(zmq::sockopt::curve_server, true);
  s.set(zmq::sockopt::curve_secretkey, g_curve->server.secret_key);
}

void make_curve_client(zmq::socket_t& s) {
  if (!g_curve) return;
  s.set(zmq::sockopt::curve_serverkey, g_curve->server.public_key);
  s.set(zmq::sockopt::curve_publickey, g_curve->client.public_key);
  s.set(zmq::sockopt::curve_secretkey, g_curve->client.secret_key);
}

std::vector<std::uint8_t> make_payload() {
  std::vector<std::uint8_t> p(kPayloadBytes);
  for (std::size_t i = 0; i < p.size(); ++i) p[i] = static_cast<std::uint8_t>('a' + i % 26);
  return p;
}

struct Options {
  int rounds = 5;
  std::size_t count = 20000;          // round trips per RTT row
  std::size_t notify_count = 500000;  // messages per throughput row
  std::size_t rtt_warmup = 2000;
  std::size_t notify_warmup = 20000;
  double max_seconds = 3.0;     // per system and row, in measured time
  std::size_t slices = 50;      // latency rows: slices per system and round
  std::size_t tput_slices = 4;  // throughput row: the same
  bool json_out = false;
  bool quick = false;
  std::set<std::string> only;  // empty: every row
  std::string python = "/usr/bin/python3";
  std::string pyzmq_script = MESH_PYZMQ_ECHO_SCRIPT;
  std::string self_exe;

  bool wants(const std::string& row) const { return only.empty() || only.count(row) > 0; }
  LatencyPlan plan() const { return {count, rtt_warmup, max_seconds, slices}; }
};

const std::vector<std::string> kRows = {"raw-rtt", "quick-rtt",  "mailbox-rtt", "raw-push",
                                        "notify",  "raw-inproc", "ours-inproc", "python"};

// ================================================================ servers
// What the receiving side of a throughput row counts. The consumer stores
// the arrival time before the count (release), so a ctl reader that sees
// count n sees the arrival time of message n or later.
struct SinkCounter {
  std::atomic<std::uint64_t> count{0};
  std::atomic<std::int64_t> last_ns{0};
  void arrived(std::uint64_t n = 1) {
    last_ns.store(now_ns(), std::memory_order_relaxed);
    count.store(count.load(std::memory_order_relaxed) + n, std::memory_order_release);
  }
};

// The ctl socket of a sink: "wait <n> <idle_ms>" -> "<count> <last_ns>".
class SinkControl {
 public:
  explicit SinkControl(SinkCounter& counter)
      : counter_(counter), rep_(ctx_, zmq::socket_type::rep) {
    rep_.set(zmq::sockopt::linger, 0);
    rep_.bind("tcp://127.0.0.1:0");
    port_ = port_of(rep_.get(zmq::sockopt::last_endpoint));
    thread_ = std::thread([this] { run(); });
  }
  ~SinkControl() {
    ctx_.shutdown();
    thread_.join();
  }
  SinkControl(const SinkControl&) = delete;
  SinkControl& operator=(const SinkControl&) = delete;
  std::uint16_t port() const { return port_; }

 private:
  void run() {
    try {
      for (;;) {
        zmq::message_t m;
        if (!rep_.recv(m)) continue;
        std::istringstream in(m.to_string());
        std::string verb;
        std::uint64_t target = 0;
        long idle_ms = 500;
        in >> verb >> target >> idle_ms;
        std::uint64_t seen = counter_.count.load(std::memory_order_acquire);
        auto changed = Clock::now();
        while (seen < target && Clock::now() - changed < std::chrono::milliseconds(idle_ms)) {
          std::this_thread::sleep_for(1ms);
          const auto c = counter_.count.load(std::memory_order_acquire);
          if (c != seen) {
            seen = c;
            changed = Clock::now();
          }
        }
        const std::string reply = std::to_string(seen) + " " +
                                  std::to_string(counter_.last_ns.load(std::memory_order_relaxed));
        rep_.send(zmq::buffer(reply), zmq::send_flags::none);
      }
    } catch (const zmq::error_t&) {
      // ETERM: shutting down.
    }
  }

  SinkCounter& counter_;
  zmq::context_t ctx_{1};
  zmq::socket_t rep_;
  std::uint16_t port_ = 0;
  std::thread thread_;
};

// `client`: the node name of the one client this server process serves
// (under --curve its key is admitted as that node's).
tr::TransportOptions server_options(const std::string& client) {
  tr::TransportOptions o;
  o.node_name = kServerNode;
  o.bind_address = "127.0.0.1";
  o.port = 0;
  if (g_curve) {
    o.curve = g_curve->server;
    o.allowed_clients.push_back({client, g_curve->client.public_key});
  }
  return o;
}

int serve_ours_echo(const sigset_t& stop, bool quick) {
  tr::Transport t(server_options(quick ? "cli-quick" : "cli-mailbox"));
  tr::QuickHandler handler;
  if (quick) {
    handler = [](const tr::EnvelopeView& request, std::vector<std::uint8_t>& response) {
      response.assign(request.payload.begin(), request.payload.end());
      return tr::ErrorCode::None;
    };
  }
  auto inbox = t.open_inbox("echo", 0, handler);
  announce(t.bound_port());
  // Agent-style: one thread pops the inbox and answers each request.
  std::thread responder([&] {
    while (auto in = inbox->pop()) {
      if (!in->is_request()) continue;
      auto payload = std::move(in->envelope.payload);
      t.respond(*in, std::move(payload));
    }
  });
  wait_stop(stop);
  inbox->close();
  responder.join();
  return 0;
}

int serve_raw_pull(const sigset_t& stop) {
  SinkCounter counter;
  zmq::context_t ctx(1);
  zmq::socket_t pull(ctx, zmq::socket_type::pull);
  pull.set(zmq::sockopt::linger, 0);
  make_curve_server(pull);
  pull.bind("tcp://127.0.0.1:0");
  SinkControl ctl(counter);
  announce(port_of(pull.get(zmq::sockopt::last_endpoint)), ctl.port());
  std::thread consumer([&] {
    try {
      for (;;) {
        zmq::message_t m;
        if (pull.recv(m)) counter.arrived();
      }
    } catch (const zmq::error_t&) {
      // ETERM: shutting down.
    }
  });
  wait_stop(stop);
  ctx.shutdown();
  consumer.join();
  return 0;
}

int serve_ours_sink(const sigset_t& stop) {
  SinkCounter counter;
  tr::Transport t(server_options(kClientNode));
  auto inbox = t.open_inbox("sink");
  SinkControl ctl(counter);
  announce(t.bound_port(), ctl.port());
  // Takes what is queued in batches, as a consumer that keeps up with a
  // flood would (one lock per batch, not per message).
  std::thread consumer([&] {
    std::vector<tr::Incoming> batch;
    batch.reserve(256);
    while (inbox->pop_batch(batch, 256) > 0) {
      counter.arrived(batch.size());
      batch.clear();
    }
  });
  wait_stop(stop);
  inbox->close();
  consumer.join();
  return 0;
}

int serve(const std::string& mode) {
  const sigset_t stop = block_stop_signals();
  if (mode == "raw-echo") return serve_raw_echo(stop, make_curve_server);
  if (mode == "ours-echo") return serve_ours_echo(stop, false);
  if (mode == "ours-quick") return serve_ours_echo(stop, true);
  if (mode == "raw-pull") return serve_raw_pull(stop);
  if (mode == "ours-sink") return serve_ours_sink(stop);
  throw std::runtime_error("unknown --serve mode " + mode);
}

// ================================================================ client side
// ---------------------------------------------------------------- servers, clients
// A server process of a row: this binary with --serve <mode> (under
// --curve, given the keys in its environment).
std::unique_ptr<ServerProcess> start_server(const Options& opt, const std::string& mode,
                                            const std::string& log_dir) {
  std::map<std::string, std::string> env;
  if (g_curve) env[kCurveEnv] = g_curve->server.secret_key + " " + g_curve->client.public_key;
  return mesh::bench::start_server({opt.self_exe, "--serve", mode}, env, log_dir, mode);
}

// A raw echo client with the row's payload, CURVE on tcp under --curve.
RawEchoClient raw_client(zmq::context_t& ctx, const std::string& endpoint) {
  return RawEchoClient(ctx, endpoint, make_payload(),
                       endpoint.starts_with("tcp:") ? SocketSetup(make_curve_client) : SocketSetup());
}

tr::OutMessage bench_message(const std::string& node, const std::string& target) {
  tr::OutMessage m;
  m.to = tr::Address{node, target};
  m.sender_agent = "bench";
  m.payload = make_payload();
  return m;
}

tr::TransportOptions client_options(const std::string& name) {
  tr::TransportOptions o;
  o.node_name = name;
  o.bind_address = "127.0.0.1";
  o.port = 0;
  if (g_curve && name != "node") o.curve = g_curve->client;  // "node": the same-process row
  return o;
}

void wait_connected(tr::Transport& t, const std::string& peer) {
  const auto deadline = Clock::now() + 10s;
  while (!t.peer_connected(peer)) {
    check_interrupt();
    if (Clock::now() > deadline) throw std::runtime_error("peer " + peer + " never connected");
    std::this_thread::sleep_for(2ms);
  }
}

// request() on `t` with a copy of `tmpl` each time, as a caller would build
// a fresh message.
void request_once(tr::Transport& t, const tr::OutMessage& tmpl, const char* what) {
  tr::Reply r = t.request(tmpl, 5000ms);
  if (!r.ok())
    throw std::runtime_error(std::string(what) +
                             ": request failed: " + std::string(tr::to_string(r.error)));
  if (r.envelope.payload.size() != kPayloadBytes)
    throw std::runtime_error(std::string(what) + ": wrong reply size");
}

// A client Transport connected to a server process's Transport.
struct OursClient {
  std::unique_ptr<ServerProcess> server;
  tr::Transport transport;
  OursClient(std::unique_ptr<ServerProcess> s, tr::TransportOptions o)
      : server(std::move(s)), transport(std::move(o)) {
    transport.add_peer(
        tr::PeerAddress{kServerNode, "127.0.0.1", server->port, g_curve ? g_curve->server.public_key : ""});
    wait_connected(transport, kServerNode);
  }
  ~OursClient() = default;
  OursClient(const OursClient&) = delete;
  OursClient& operator=(const OursClient&) = delete;
};

// ---------------------------------------------------------------- row 1: tcp RTT
std::map<std::string, Rtt> tcp_rtt(const Options& opt, const std::string& log_dir, int round) {
  std::vector<LatencySystem> systems;
  std::unique_ptr<ServerProcess> raw_server;
  std::optional<zmq::context_t> ctx;
  std::optional<RawEchoClient> raw;
  std::unique_ptr<OursClient> quick, mailbox;
  const tr::OutMessage tmpl = bench_message(kServerNode, "echo");
  if (opt.wants("raw-rtt")) {
    raw_server = start_server(opt, "raw-echo", log_dir);
    ctx.emplace(1);
    raw.emplace(raw_client(*ctx, tcp(raw_server->port)));
    systems.push_back({"raw-rtt", [&] { raw->one(); }, {}, 0});
  }
  if (opt.wants("quick-rtt")) {
    quick = std::make_unique<OursClient>(start_server(opt, "ours-quick", log_dir),
                                         client_options("cli-quick"));
    systems.push_back({"quick-rtt", [&] { request_once(quick->transport, tmpl, "quick"); }, {}, 0});
  }
  if (opt.wants("mailbox-rtt")) {
    mailbox = std::make_unique<OursClient>(start_server(opt, "ours-echo", log_dir),
                                           client_options("cli-mailbox"));
    systems.push_back(
        {"mailbox-rtt", [&] { request_once(mailbox->transport, tmpl, "mailbox"); }, {}, 0});
  }
  std::vector<LatencySystem*> ptrs;
  for (auto& s : systems) ptrs.push_back(&s);
  return run_latency(opt.plan(), ptrs, round);
}

// ---------------------------------------------------------------- row 2: one-way throughput
struct Throughput {
  double msg_per_s = 0;
  std::uint64_t sent = 0;
  std::uint64_t delivered = 0;
  double seconds = 0;
  std::uint64_t mailbox_full_retries = 0;  // ours only
  std::uint64_t undeliverable = 0;         // ours only
};

class Ctl {
 public:
  Ctl(zmq::context_t& ctx, std::uint16_t port) : req_(ctx, zmq::socket_type::req) {
    req_.set(zmq::sockopt::linger, 0);
    req_.set(zmq::sockopt::rcvtimeo, 60000);
    req_.connect(tcp(port));
  }
  // Until the sink counted `target` messages or none arrived for idle_ms:
  // {count, arrival time of the last one}.
  std::pair<std::uint64_t, std::int64_t> wait(std::uint64_t target, int idle_ms) {
    const std::string q = "wait " + std::to_string(target) + " " + std::to_string(idle_ms);
    req_.send(zmq::buffer(q), zmq::send_flags::none);
    zmq::message_t m;
    if (!req_.recv(m)) throw std::runtime_error("sink ctl did not answer");
    std::istringstream in(m.to_string());
    std::uint64_t count = 0;
    std::int64_t last = 0;
    in >> count >> last;
    return {count, last};
  }

 private:
  zmq::socket_t req_;
};

// One system of the throughput row: `send` sends one message and returns
// once it was accepted; the sink behind `ctl` counts arrivals.
struct OneWaySystem {
  std::string row;
  std::function<void()> send;
  Ctl* ctl = nullptr;
  std::uint64_t base = 0;  // the sink's count before the next slice
  Throughput t;

  bool done(const Options& opt) const {
    return t.sent >= opt.notify_count || t.seconds >= opt.max_seconds;
  }
};

// Warm-up, then slices of notify_count / tput_slices messages; each slice
// is timed from its first send to the sink's last arrival (the sink is
// drained before the next slice starts, so slices do not overlap).
void run_one_way(const Options& opt, const std::vector<OneWaySystem*>& systems, int round) {
  for (auto* s : systems) {
    for (std::size_t i = 0; i < opt.notify_warmup; ++i) s->send();
    s->base = s->ctl->wait(opt.notify_warmup, 2000).first;
  }
  const std::size_t slice = (opt.notify_count + opt.tput_slices - 1) / opt.tput_slices;
  for (std::size_t k = 0;; ++k) {
    std::vector<OneWaySystem*> order = systems;
    if ((k + static_cast<std::size_t>(round)) % 2 == 1) std::reverse(order.begin(), order.end());
    bool any = false;
    for (auto* s : order) {
      if (s->done(opt)) continue;
      any = true;
      const std::size_t n = std::min<std::size_t>(slice, opt.notify_count - s->t.sent);
      const auto deadline =
          Clock::now() + std::chrono::duration_cast<Clock::duration>(
                             std::chrono::duration<double>(opt.max_seconds - s->t.seconds));
      const std::int64_t t0 = now_ns();
      std::uint64_t sent = 0;
      for (std::size_t i = 0; i < n; ++i) {
        s->send();
        ++sent;
        if ((i & 1023) == 1023) {
          check_interrupt();
          if (Clock::now() > deadline) break;
        }
      }
      const auto [count, last_ns] = s->ctl->wait(s->base + sent, 500);
      s->t.sent += sent;
      s->t.delivered += count - s->base;
      s->t.seconds += static_cast<double>(std::max<std::int64_t>(last_ns - t0, 0)) / 1e9;
      s->base = count;
    }
    if (!any) break;
  }
  for (auto* s : systems) {
    if (s->t.delivered == 0 || s->t.seconds <= 0)
      throw std::runtime_error(s->row + ": nothing delivered");
    s->t.msg_per_s = static_cast<double>(s->t.delivered) / s->t.seconds;
  }
}

std::map<std::string, Throughput> one_way(const Options& opt, const std::string& log_dir,
                                          int round) {
  std::vector<OneWaySystem> systems;
  systems.reserve(2);
  zmq::context_t ctx(1);
  const auto payload = make_payload();
  std::unique_ptr<ServerProcess> raw_server;
  std::optional<zmq::socket_t> push;
  std::optional<Ctl> raw_ctl, ours_ctl;
  if (opt.wants("raw-push")) {
    raw_server = start_server(opt, "raw-pull", log_dir);
    push.emplace(ctx, zmq::socket_type::push);
    push->set(zmq::sockopt::linger, 0);
    make_curve_client(*push);
    push->connect(tcp(raw_server->port));
    raw_ctl.emplace(ctx, raw_server->ctl);
    systems.push_back({"raw-push",
                       [&] { push->send(zmq::buffer(payload), zmq::send_flags::none); },
                       &*raw_ctl,
                       0,
                       {}});
  }
  // Declared before the client so that it outlives the transport's thread.
  std::atomic<std::uint64_t> undeliverable{0};
  std::uint64_t retries = 0;
  std::unique_ptr<OursClient> ours;
  const tr::OutMessage tmpl = bench_message(kServerNode, "sink");
  if (opt.wants("notify")) {
    auto o = client_options(kClientNode);
    o.on_undeliverable = [&undeliverable](const tr::MessageId&, std::string_view, std::string_view,
                                          tr::ErrorCode) { undeliverable.fetch_add(1); };
    ours = std::make_unique<OursClient>(start_server(opt, "ours-sink", log_dir), std::move(o));
    ours_ctl.emplace(ctx, ours->server->ctl);
    systems.push_back({"notify",
                       [&] {
                         for (;;) {
                           const auto e = ours->transport.notify(tmpl);
                           if (e == tr::ErrorCode::None) return;
                           if (e != tr::ErrorCode::MailboxFull)
                             throw std::runtime_error("notify failed: " +
                                                      std::string(tr::to_string(e)));
                           // Backs off as a blocked zmq_send waits: without
                           // using CPU. Spinning on yield took about a
                           // quarter of a 2-core machine from the receiver.
                           ++retries;
                           std::this_thread::sleep_for(kFullBackoff);
                         }
                       },
                       &*ours_ctl,
                       0,
                       {}});
  }
  std::vector<OneWaySystem*> ptrs;
  for (auto& s : systems) ptrs.push_back(&s);
  run_one_way(opt, ptrs, round);
  std::map<std::string, Throughput> out;
  for (auto& s : systems) {
    if (s.row == "notify") {
      // Refusals come back asynchronously; the sink was drained, so they are in.
      s.t.mailbox_full_retries = retries;
      s.t.undeliverable = undeliverable.load();
    }
    out[s.row] = s.t;
  }
  return out;
}

// ---------------------------------------------------------------- row 3: same process
std::map<std::string, Rtt> same_process(const Options& opt, int round) {
  std::vector<LatencySystem> systems;
  // Raw: an inproc ROUTER echo on its own thread.
  std::optional<zmq::context_t> ctx;
  std::optional<zmq::socket_t> router;
  std::optional<RawEchoClient> raw;
  std::thread echo;
  // Ours: one Transport; a responder thread pops the inbox and answers.
  std::unique_ptr<tr::Transport> t;
  std::shared_ptr<tr::Inbox> inbox;
  std::thread responder;
  const tr::OutMessage tmpl = bench_message("", "echo");
  auto stop = [&] {
    if (ctx) ctx->shutdown();
    if (echo.joinable()) echo.join();
    if (inbox) inbox->close();
    if (responder.joinable()) responder.join();
  };
  try {
    if (opt.wants("raw-inproc")) {
      ctx.emplace(1);
      router.emplace(*ctx, zmq::socket_type::router);
      router->set(zmq::sockopt::linger, 0);
      router->bind("inproc://echo");
      echo = std::thread([&r = *router] {
        try {
          for (;;) {
            zmq::message_t id, body;
            if (!r.recv(id) || !r.recv(body)) continue;
            r.send(id, zmq::send_flags::sndmore);
            r.send(body, zmq::send_flags::none);
          }
        } catch (const zmq::error_t&) {
          // ETERM: shutting down.
        }
      });
      raw.emplace(raw_client(*ctx, "inproc://echo"));
      systems.push_back({"raw-inproc", [&] { raw->one(); }, {}, 0});
    }
    if (opt.wants("ours-inproc")) {
      t = std::make_unique<tr::Transport>(client_options("node"));
      inbox = t->open_inbox("echo");
      responder = std::thread([&] {
        while (auto in = inbox->pop()) {
          if (!in->is_request()) continue;
          auto payload = std::move(in->envelope.payload);
          t->respond(*in, std::move(payload));
        }
      });
      systems.push_back({"ours-inproc", [&] { request_once(*t, tmpl, "same-node"); }, {}, 0});
    }
    std::vector<LatencySystem*> ptrs;
    for (auto& s : systems) ptrs.push_back(&s);
    auto out = run_latency(opt.plan(), ptrs, round);
    raw.reset();
    stop();
    return out;
  } catch (...) {
    raw.reset();
    stop();
    throw;
  }
}

// ---------------------------------------------------------------- python
std::optional<Rtt> python_floor(const Options& opt, std::string& note) {
  return mesh::bench::python_floor(opt.python, opt.pyzmq_script, opt.plan(), note);
}

// ================================================================ report
// Per-round samples of one row.
struct RttSeries {
  std::vector<double> p50, p99;
  std::vector<std::size_t> n;
  void add(const Rtt& r) {
    p50.push_back(r.p50_us);
    p99.push_back(r.p99_us);
    n.push_back(r.count);
  }
  json to_json() const { return {{"p50_us", p50}, {"p99_us", p99}, {"count", n}}; }
};

struct TputSeries {
  std::vector<double> rate;
  std::vector<std::uint64_t> sent, delivered, retries, undeliverable;
  std::vector<double> seconds;
  void add(const Throughput& t) {
    rate.push_back(t.msg_per_s);
    sent.push_back(t.sent);
    delivered.push_back(t.delivered);
    retries.push_back(t.mailbox_full_retries);
    undeliverable.push_back(t.undeliverable);
    seconds.push_back(t.seconds);
  }
  json to_json() const {
    return {{"msg_per_s", rate},
            {"sent", sent},
            {"delivered", delivered},
            {"seconds", seconds},
            {"mailbox_full_retries", retries},
            {"undeliverable", undeliverable}};
  }
};

const CLI::Validator kRow(
    [](std::string& row) -> std::string {
      return std::find(kRows.begin(), kRows.end(), row) == kRows.end() ? "unknown row " + row : "";
    },
    "");

int run(int argc, char** argv) {
  Options opt;
  CLI::App app(
      "Our transport against raw ZeroMQ (cppzmq) doing the same work, side by side in\n"
      "one run, 256-byte payloads, 127.0.0.1 only: tcp round trip, one-way throughput,\n"
      "same-process round trip, and a pyzmq + json floor (docs/benchmarks.md). Rows:\n"
      "raw-rtt, quick-rtt, mailbox-rtt, raw-push, notify, raw-inproc, ours-inproc,\n"
      "python. Counts below their minimum count as the minimum.");
  mesh::cli::setup(app, "transport_vs_zmq");
  // A flag given twice: the last one counts.
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  std::string serve_mode;
  app.add_option("--serve", serve_mode,
                 "run as the server process of a row (used by the bench itself)")
      ->type_name("MODE")
      ->check(CLI::IsMember({"raw-echo", "ours-echo", "ours-quick", "raw-pull", "ours-sink"}));
  auto* rounds =
      app.add_option("--rounds", opt.rounds, "rounds, at least 1 (default 5; --quick: 1)")
          ->type_name("N")
          ->transform(mesh::cli::whole_number(0, 1000000000));
  auto* count =
      app.add_option("--count", opt.count,
                     "round trips per system and RTT row, at least 1 (default 20000; --quick: 500)")
          ->type_name("N")
          ->transform(mesh::cli::whole_number(0, 1000000000000));
  auto* notify_count = app.add_option("--notify-count", opt.notify_count,
                                      "notifies per system in the throughput row, at least 1 "
                                      "(default 500000; --quick: 5000)")
                           ->type_name("N")
                           ->transform(mesh::cli::whole_number(0, 1000000000000));
  auto* max_seconds =
      app.add_option("--max-seconds", opt.max_seconds,
                     "measured seconds per system and row, at least 0.1 (default 3; --quick: 1)")
          ->type_name("S")
          ->transform(mesh::cli::number(0, 86400, "seconds"));
  app.add_option("--slices", opt.slices,
                 "latency rows: slices per system and round, at least 1 (default 50)")
      ->type_name("N")
      ->transform(mesh::cli::whole_number(0, 1000000000000));
  app.add_flag("--json", opt.json_out, "one JSON object on stdout (the rest goes to stderr)");
  app.add_flag("--quick", opt.quick, "a smoke run: small counts, one round, 2 slices");
  std::vector<std::string> only;
  app.add_option("--only", only, "rows to run, comma-separated (default: all); the others are null")
      ->type_name("ROWS")
      ->delimiter(',')
      ->allow_extra_args(false)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll)
      ->check(kRow);
  app.add_option("--python", opt.python, "the Python of the python row (default /usr/bin/python3)")
      ->type_name("PATH");
  app.add_option("--pyzmq-script", opt.pyzmq_script,
                 "the python row's script (default bench/pyzmq_echo.py)")
      ->type_name("PATH");
  bool curve = false;
  app.add_flag("--curve", curve,
               "rows 1-2 with CURVE on every socket, raw and ours (ours also checks each sender)");
  if (auto done = mesh::cli::parse(app, argc, argv)) return *done;
  if (!serve_mode.empty()) {
    load_curve_from_environment();
    return serve(serve_mode);
  }
  if (curve) g_curve = CurveSetup{tr::generate_curve_keypair(), tr::generate_curve_keypair()};
  const bool rounds_set = rounds->count() > 0, count_set = count->count() > 0;
  const bool notify_set = notify_count->count() > 0, seconds_set = max_seconds->count() > 0;
  opt.rounds = std::max(1, opt.rounds);
  opt.count = std::max<std::size_t>(1, opt.count);
  opt.notify_count = std::max<std::size_t>(1, opt.notify_count);
  opt.max_seconds = std::max(0.1, opt.max_seconds);
  opt.slices = std::max<std::size_t>(1, opt.slices);
  opt.only.insert(only.begin(), only.end());
  if (opt.quick) {
    if (!rounds_set) opt.rounds = 1;
    if (!count_set) opt.count = 500;
    if (!notify_set) opt.notify_count = 5000;
    if (!seconds_set) opt.max_seconds = 1.0;
    opt.rtt_warmup = 100;
    opt.notify_warmup = 1000;
    opt.slices = 2;
    opt.tput_slices = 2;
  }
  opt.rtt_warmup = std::min(opt.rtt_warmup, std::max<std::size_t>(opt.count / 10, 10));
  opt.notify_warmup =
      std::min(opt.notify_warmup, std::max<std::size_t>(opt.notify_count / 10, 100));
  opt.self_exe = self_exe();

  mesh::test::TempDir logs;
  RttSeries raw_rtt, quick_rtt, mailbox_rtt, raw_inp, ours_inp, py;
  TputSeries raw_tp, ours_tp;
  std::vector<std::string> notes;
  std::map<std::string, RttSeries*> rtt_series = {{"raw-rtt", &raw_rtt},
                                                  {"quick-rtt", &quick_rtt},
                                                  {"mailbox-rtt", &mailbox_rtt},
                                                  {"raw-inproc", &raw_inp},
                                                  {"ours-inproc", &ours_inp}};
  std::map<std::string, TputSeries*> tput_series = {{"raw-push", &raw_tp}, {"notify", &ours_tp}};
  auto wants_any = [&](std::initializer_list<const char*> rows) {
    for (const char* r : rows)
      if (opt.wants(r)) return true;
    return false;
  };
  for (int round = 0; round < opt.rounds; ++round) {
    const std::string tag = "[round " + std::to_string(round + 1) + "] ";
    auto record_rtt = [&](const std::map<std::string, Rtt>& results) {
      for (const auto& row : kRows) {
        const auto it = results.find(row);
        if (it == results.end()) continue;
        rtt_series.at(row)->add(it->second);
        std::cerr << tag << row << ": " << rtt_line(it->second) << "\n";
      }
    };
    // 1. tcp round trip.
    check_interrupt();
    if (wants_any({"raw-rtt", "quick-rtt", "mailbox-rtt"}))
      record_rtt(tcp_rtt(opt, logs.path(), round));
    // 2. one-way throughput.
    check_interrupt();
    if (wants_any({"raw-push", "notify"})) {
      const auto results = one_way(opt, logs.path(), round);
      for (const auto& row : kRows) {
        const auto it = results.find(row);
        if (it == results.end()) continue;
        const Throughput& t = it->second;
        tput_series.at(row)->add(t);
        std::cerr << tag << row << ": " << fmt(t.msg_per_s, 0) << " msg/s (" << t.delivered << "/"
                  << t.sent << " delivered in " << fmt(t.seconds, 2) << " s, MailboxFull retries "
                  << t.mailbox_full_retries << ", undeliverable " << t.undeliverable << ")\n";
      }
    }
    // 3. same process.
    check_interrupt();
    if (wants_any({"raw-inproc", "ours-inproc"})) record_rtt(same_process(opt, round));
    // 4. the Python floor.
    check_interrupt();
    if (opt.wants("python")) {
      std::string note;
      if (auto r = python_floor(opt, note)) {
        py.add(*r);
        std::cerr << tag << "python: " << rtt_line(*r) << "\n";
      } else if (std::find(notes.begin(), notes.end(), note) == notes.end()) {
        std::cerr << note << "\n";
        notes.push_back(note);
      }
    }
  }
  for (const auto& row : kRows)
    if (!opt.wants(row)) notes.push_back(row + " row not run (--only)");

  const auto raw_p50 = median(raw_rtt.p50), raw_p99 = median(raw_rtt.p99);
  const auto q_p50 = median(quick_rtt.p50), q_p99 = median(quick_rtt.p99);
  const auto m_p50 = median(mailbox_rtt.p50), m_p99 = median(mailbox_rtt.p99);
  const auto rtp = median(raw_tp.rate), otp = median(ours_tp.rate);
  const auto ri_p50 = median(raw_inp.p50), ri_p99 = median(raw_inp.p99);
  const auto oi_p50 = median(ours_inp.p50), oi_p99 = median(ours_inp.p99);
  const auto py_p50 = median(py.p50), py_p99 = median(py.p99);
  auto median_u = [](const std::vector<std::uint64_t>& v) {
    std::vector<double> d(v.begin(), v.end());
    return median(d);
  };

  // A ratio is the median over rounds of that round's ours / raw: within a
  // round the two ran interleaved, so each round is a paired comparison.
  // (A ratio of the medians would pair figures from different rounds: the
  // processes' placement on the vCPUs changes from round to round and moves
  // a system's p50 by up to 2x, see docs/benchmarks.md.)
  auto per_round = [](const std::vector<double>& ours, const std::vector<double>& raw) {
    std::vector<double> r;
    for (std::size_t i = 0; i < ours.size() && i < raw.size(); ++i)
      if (raw[i] != 0) r.push_back(ours[i] / raw[i]);
    return r;
  };
  auto paired = [&](const std::vector<double>& ours, const std::vector<double>& raw) {
    return median(per_round(ours, raw));
  };
  const auto r_p50 = paired(quick_rtt.p50, raw_rtt.p50), r_p99 = paired(quick_rtt.p99, raw_rtt.p99);
  const auto rm_p50 = paired(mailbox_rtt.p50, raw_rtt.p50);
  const auto rm_p99 = paired(mailbox_rtt.p99, raw_rtt.p99);
  const auto r_tp = paired(ours_tp.rate, raw_tp.rate);
  const auto r_inp = paired(ours_inp.p50, raw_inp.p50), r_inp99 = paired(ours_inp.p99, raw_inp.p99);
  const auto r_py = paired(quick_rtt.p50, py.p50), r_py99 = paired(quick_rtt.p99, py.p99);

  json out;
  out["rtt_p50_ratio"] = opt_json(r_p50);
  out["rtt_p99_ratio"] = opt_json(r_p99);
  out["rtt_p50_ratio_mailbox"] = opt_json(rm_p50);
  out["rtt_p99_ratio_mailbox"] = opt_json(rm_p99);
  out["notify_throughput_ratio"] = opt_json(r_tp);
  out["inproc_ratio"] = opt_json(r_inp);
  out["inproc_p99_ratio"] = opt_json(r_inp99);
  out["python_floor_ratio"] = opt_json(r_py);
  out["raw_rtt_p50_us"] = opt_json(raw_p50);
  out["raw_rtt_p99_us"] = opt_json(raw_p99);
  out["ours_rtt_p50_us"] = opt_json(q_p50);
  out["ours_rtt_p99_us"] = opt_json(q_p99);
  out["ours_mailbox_rtt_p50_us"] = opt_json(m_p50);
  out["ours_mailbox_rtt_p99_us"] = opt_json(m_p99);
  out["raw_push_pull_msg_per_s"] = opt_json(rtp);
  out["ours_notify_msg_per_s"] = opt_json(otp);
  out["ours_notify_mailbox_full_retries"] = opt_json(median_u(ours_tp.retries));
  out["ours_notify_undeliverable"] = opt_json(median_u(ours_tp.undeliverable));
  out["raw_inproc_p50_us"] = opt_json(ri_p50);
  out["raw_inproc_p99_us"] = opt_json(ri_p99);
  out["ours_inproc_p50_us"] = opt_json(oi_p50);
  out["ours_inproc_p99_us"] = opt_json(oi_p99);
  out["python_p50_us"] = opt_json(py_p50);
  out["python_p99_us"] = opt_json(py_p99);
  out["goals"] = {{"rtt_p50_ratio", "<= 1.3"},
                  {"rtt_p99_ratio", "<= 2.0"},
                  {"notify_throughput_ratio", ">= 0.5"},
                  {"inproc_ratio", "<= 1.5"}};
  auto met = [](const std::optional<double>& r, double bound, bool upper) -> json {
    if (!r) return nullptr;
    return upper ? *r <= bound : *r >= bound;
  };
  out["goals_met"] = {{"rtt_p50_ratio", met(r_p50, 1.3, true)},
                      {"rtt_p99_ratio", met(r_p99, 2.0, true)},
                      {"notify_throughput_ratio", met(r_tp, 0.5, false)},
                      {"inproc_ratio", met(r_inp, 1.5, true)}};
  out["rounds"] = {{"raw_rtt", raw_rtt.to_json()},
                   {"ours_quick_rtt", quick_rtt.to_json()},
                   {"ours_mailbox_rtt", mailbox_rtt.to_json()},
                   {"raw_push_pull", raw_tp.to_json()},
                   {"ours_notify", ours_tp.to_json()},
                   {"raw_inproc", raw_inp.to_json()},
                   {"ours_inproc", ours_inp.to_json()},
                   {"python", py.to_json()}};
  out["rounds"]["ratios"] = {{"rtt_p50_ratio", per_round(quick_rtt.p50, raw_rtt.p50)},
                             {"rtt_p99_ratio", per_round(quick_rtt.p99, raw_rtt.p99)},
                             {"rtt_p50_ratio_mailbox", per_round(mailbox_rtt.p50, raw_rtt.p50)},
                             {"rtt_p99_ratio_mailbox", per_round(mailbox_rtt.p99, raw_rtt.p99)},
                             {"notify_throughput_ratio", per_round(ours_tp.rate, raw_tp.rate)},
                             {"inproc_ratio", per_round(ours_inp.p50, raw_inp.p50)},
                             {"python_floor_ratio", per_round(quick_rtt.p50, py.p50)}};
  out["method"] = {
      {"payload_bytes", kPayloadBytes},
      {"host", "127.0.0.1, client and server in two processes (rows 1, 2, 4)"},
      {"rounds", opt.rounds},
      {"count", opt.count},
      {"notify_count", opt.notify_count},
      {"rtt_warmup", opt.rtt_warmup},
      {"notify_warmup", opt.notify_warmup},
      {"max_seconds_per_row", opt.max_seconds},
      {"slices", opt.slices},
      {"throughput_slices", opt.tput_slices},
      {"figures",
       "median over rounds of each round's p50 / p99 / msg/s; within a round, raw and "
       "ours of a row alternate in slices and their samples are pooled per system"},
      {"rtt",
       "one request in flight; raw DEALER->ROUTER echo vs Transport::request(); "
       "rtt_*_ratio: QuickHandler inbox, *_mailbox: thread popping the inbox + respond()"},
      {"throughput",
       "raw PUSH->PULL vs Transport::notify() (MailboxFull -> yield, retry); "
       "delivered messages counted by the receiver / (last arrival - first send)"},
      {"inproc",
       "raw inproc DEALER->ROUTER, two threads vs same-node request(), "
       "responder thread popping the inbox"},
      {"python",
       "pyzmq DEALER->ROUTER, json.dumps/loads of a ~256-byte document on both sides; "
       "python_floor_ratio = ours (quick) p50 / python p50"}};
  out["method"]["curve"] = g_curve.has_value();
  if (g_curve) notes.push_back("--curve: rows 1-2 with CURVE on every tcp socket, raw and ours");
  out["notes"] = notes;

  std::ostream& table = opt.json_out ? std::cerr : std::cout;
  table << "\n"
        << opt.rounds
        << " round(s); figures: medians over rounds; ours/raw: median of the per-round ratios\n\n"
        << "| row | raw | ours | ours/raw | goal |\n|---|---|---|---|---|\n";
  auto row = [&](const std::string& name, const std::optional<double>& raw,
                 const std::optional<double>& ours, const std::optional<double>& r, int prec,
                 const std::string& goal) {
    table << "| " << name << " | " << fmt(raw, prec) << " | " << fmt(ours, prec) << " | "
          << fmt(r, 2) << " | " << goal << " |\n";
  };
  row("tcp RTT p50 (us), quick handler", raw_p50, q_p50, r_p50, 1, "<= 1.3");
  row("tcp RTT p99 (us), quick handler", raw_p99, q_p99, r_p99, 1, "<= 2.0");
  row("tcp RTT p50 (us), mailbox responder", raw_p50, m_p50, rm_p50, 1, "");
  row("tcp RTT p99 (us), mailbox responder", raw_p99, m_p99, rm_p99, 1, "");
  row("one-way 256 B (msg/s), PUSH->PULL vs notify", rtp, otp, r_tp, 0, ">= 0.5");
  row("same process RTT p50 (us), inproc vs same-node", ri_p50, oi_p50, r_inp, 1, "<= 1.5");
  row("same process RTT p99 (us), inproc vs same-node", ri_p99, oi_p99, r_inp99, 1, "");
  row("Python floor p50 (us): pyzmq+json vs ours quick", py_p50, q_p50, r_py, 1, "");
  row("Python floor p99 (us): pyzmq+json vs ours quick", py_p99, q_p99, r_py99, 1, "");
  table << "\nnotify: MailboxFull retries " << fmt(median_u(ours_tp.retries), 0)
        << ", undeliverable " << fmt(median_u(ours_tp.undeliverable), 0) << " (medians)\n";
  for (const auto& n : notes) table << "note: " << n << "\n";
  if (opt.json_out) std::cout << out.dump(2) << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  install_interrupt_handlers();
  try {
    return run(argc, argv);
  } catch (const mesh::UsageError& e) {
    std::cerr << "transport_vs_zmq: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "transport_vs_zmq: " << e.what() << "\n";
    return 1;
  }
}
