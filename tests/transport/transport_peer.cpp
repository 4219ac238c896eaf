// transport_peer: one mesh::transport::Transport in a process of its own,
// the far end of the multi-process transport tests (process_test.cpp), so
// that a peer can be killed, frozen, restarted and flooded for real.
//
//   transport_peer --name NAME [--port N] [--bind 127.0.0.1]
//       [--peer NAME=HOST:PORT[:CURVEKEY]]...  [--curve-secret Z85] [--allow-key NAME=Z85]...
//       [--inbox-limit N] [--peer-queue-limit N] [--max-frame-bytes N]
//       [--heartbeat-ms N] [--heartbeat-timeout-ms N]
//       [--echo INBOX]... [--quick-echo INBOX]... [--slow INBOX:MS]...
//
// Inboxes, each served by a thread of its own:
//   --echo        answers a request with its payload; counts notifies;
//   --quick-echo  answers requests with a quick handler on the transport
//                 thread; the thread only counts notifies;
//   --slow        sleeps MS per message before counting (and answering) it:
//                 a consumer slower than its senders.
//   ctl           always open. The request payload "stats" is answered with
//                 a JSON document (the TransportStats fields and, per inbox,
//                 the messages popped, notifies and requests processed, and
//                 the queue size); "quit" is answered "bye", then we leave.
// A message is counted before it is answered, so a requester that has its
// response sees it in the next "stats".
//
// Prints "ready <port>" once bound. Exit codes: 0 after SIGTERM, SIGINT or
// "quit"; 1 when the transport cannot start (port in use); 2 with one line
// on stderr for bad flags.
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <ctime>
#include <deque>
#include <iostream>
#include <limits>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "mesh/cli.hpp"
#include "mesh/transport/transport.hpp"

namespace {

namespace mt = mesh::transport;
using namespace std::chrono_literals;

enum class InboxKind { Echo, QuickEcho, Slow };

struct InboxSpec {
  std::string name;
  InboxKind kind = InboxKind::Echo;
  std::chrono::milliseconds delay{0};
};

struct Flags {
  mt::TransportOptions options;
  std::vector<mt::PeerAddress> peers;
  std::vector<InboxSpec> inboxes;
};

// The parsers of the values below throw mesh::UsageError with a message
// that does not name the flag: CLI11 puts the flag's name in front
// ("--port: '70000' is not a number in [0, 65535]").

template <typename T>
T parse_number(std::string_view text, T min, T max) {
  T value{};
  const auto* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (text.empty() || ec != std::errc() || ptr != end || value < min || value > max) {
    throw mesh::UsageError("'" + std::string(text) + "' is not a number in [" +
                           std::to_string(min) + ", " + std::to_string(max) + "]");
  }
  return value;
}

std::string checked_key(std::string key);

// NAME=Z85: a client admitted under CURVE.
mt::TransportOptions::ClientKey parse_client_key(const std::string& text) {
  const auto eq = text.find('=');
  if (eq == std::string::npos || eq == 0) throw mesh::UsageError("'" + text + "' is not NAME=Z85");
  return {text.substr(0, eq), checked_key(text.substr(eq + 1))};
}

std::string checked_key(std::string key) {
  if (!mt::is_valid_curve_key(key)) {
    throw mesh::UsageError("'" + key + "' is not a 40-character Z85 CURVE key");
  }
  return key;
}

// NAME=HOST:PORT[:KEY]. Z85 keys may themselves contain ':' and '=', so the
// key is whatever follows the port; an IPv6 host is written [addr].
mt::PeerAddress parse_peer(std::string_view text) {
  const auto bad = [&](const std::string& why) {
    return mesh::UsageError("'" + std::string(text) + "': " + why +
                            " (expected NAME=HOST:PORT[:CURVEKEY])");
  };
  mt::PeerAddress peer;
  const auto eq = text.find('=');
  if (eq == std::string_view::npos || eq == 0) throw bad("no name");
  peer.name = std::string(text.substr(0, eq));
  std::string_view rest = text.substr(eq + 1);
  std::size_t host_end = 0;
  if (!rest.empty() && rest.front() == '[') {
    const auto close = rest.find(']');
    if (close == std::string_view::npos) throw bad("unterminated [");
    peer.host = std::string(rest.substr(1, close - 1));
    host_end = close + 1;
  } else {
    host_end = rest.find(':');
    if (host_end == std::string_view::npos) throw bad("no port");
    peer.host = std::string(rest.substr(0, host_end));
  }
  if (peer.host.empty()) throw bad("no host");
  if (host_end >= rest.size() || rest[host_end] != ':') throw bad("no port");
  rest = rest.substr(host_end + 1);
  const auto colon = rest.find(':');
  peer.port = parse_number<std::uint16_t>(rest.substr(0, colon), 1, 65535);
  if (colon != std::string_view::npos) {
    peer.curve_public_key = checked_key(std::string(rest.substr(colon + 1)));
  }
  return peer;
}

mt::CurveKeyPair parse_curve_secret(const std::string& text) {
  mt::CurveKeyPair pair;
  pair.secret_key = checked_key(text);
  try {
    pair.public_key = mt::curve_public_from_secret(pair.secret_key);
  } catch (const mt::TransportError& e) {
    throw mesh::UsageError(e.what());
  }
  return pair;
}

// INBOX:MS.
InboxSpec parse_slow(const std::string& text) {
  const auto colon = text.rfind(':');
  if (colon == std::string::npos) throw mesh::UsageError("expected INBOX:MS, got '" + text + "'");
  return {text.substr(0, colon), InboxKind::Slow,
          std::chrono::milliseconds(
              parse_number<int>(std::string_view(text).substr(colon + 1), 0, 3600000))};
}

// A CLI11 check of each value of an option: `parse` throws UsageError.
template <typename Parse>
CLI::Validator check(Parse parse) {
  return CLI::Validator(
      [parse](std::string& value) -> std::string {
        try {
          parse(value);
          return "";
        } catch (const mesh::UsageError& e) {
          return e.what();
        }
      },
      "");
}

// nullopt: go on with `f`; a number: exit with it (after --help).
// Throws mesh::UsageError.
std::optional<int> parse_flags(int argc, char** argv, Flags& f) {
  constexpr auto kMaxU64 = std::numeric_limits<std::uint64_t>::max();
  CLI::App app(
      "One mesh::transport::Transport in a process of its own, the far end of the\n"
      "multi-process transport tests. Prints \"ready <port>\" once bound. The inbox\n"
      "\"ctl\" is always open: its request \"stats\" is answered with a JSON document,\n"
      "\"quit\" with \"bye\", then the program exits.");
  mesh::cli::setup(app, "transport_peer");
  std::string name, port, bind, curve_secret, inbox_limit, peer_queue_limit, max_frame_bytes,
      heartbeat_ms, heartbeat_timeout_ms;
  std::vector<std::string> peers, allow_keys, echo, quick_echo, slow;
  // A flag given twice: the last one counts.
  const auto single = [&](const std::string& flag, std::string& value, const std::string& help,
                          const std::string& type) {
    return app.add_option(flag, value, help)
        ->type_name(type)
        ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  };
  // Repeatable: one value per occurrence, every occurrence kept.
  const auto repeated = [&](const std::string& flag, std::vector<std::string>& values,
                            const std::string& help, const std::string& type) {
    return app.add_option(flag, values, help)->type_name(type)->allow_extra_args(false);
  };
  single("--name", name, "node name of this transport (1 to 255 bytes)", "NAME")
      ->required()
      ->check(check([](const std::string& v) {
        if (v.empty() || v.size() > 255) throw mesh::UsageError("1 to 255 bytes");
      }));
  single("--port", port, "port to bind (default 0: chosen by the kernel)", "N")
      ->check(check([](const std::string& v) { parse_number<std::uint16_t>(v, 0, 65535); }));
  single("--bind", bind, "address to bind (default 127.0.0.1)", "ADDRESS")
      ->check(check([](const std::string& v) {
        if (v.empty()) throw mesh::UsageError("an address is required");
      }));
  repeated("--peer", peers, "a peer to know (repeatable; with --curve-secret, KEY is required)",
           "NAME=HOST:PORT[:CURVEKEY]")
      ->check(check([](const std::string& v) { parse_peer(v); }));
  single("--curve-secret", curve_secret, "CURVE secret key: encrypt and authenticate", "Z85")
      ->check(check([](const std::string& v) { parse_curve_secret(v); }));
  repeated("--allow-key", allow_keys, "a client allowed in: its node name and public key (repeatable)", "NAME=Z85")
      ->check(check([](const std::string& v) { parse_client_key(v); }));
  single("--inbox-limit", inbox_limit, "messages an inbox holds", "N")
      ->check(check([](const std::string& v) { parse_number<std::size_t>(v, 1, kMaxU64); }));
  single("--peer-queue-limit", peer_queue_limit, "messages queued per peer", "N")
      ->check(check([](const std::string& v) { parse_number<std::size_t>(v, 1, kMaxU64); }));
  single("--max-frame-bytes", max_frame_bytes, "largest frame accepted", "N")
      ->check(check([](const std::string& v) { parse_number<std::size_t>(v, 64, kMaxU64); }));
  single("--heartbeat-ms", heartbeat_ms, "ZeroMQ heartbeat interval", "N")
      ->check(check([](const std::string& v) { parse_number<int>(v, 1, 3600000); }));
  single("--heartbeat-timeout-ms", heartbeat_timeout_ms,
         "ZeroMQ heartbeat timeout (default 3 x --heartbeat-ms)", "N")
      ->check(check([](const std::string& v) { parse_number<int>(v, 1, 3600000); }));
  auto* echo_opt = repeated(
      "--echo", echo, "an inbox answering a request with its payload; counts notifies", "INBOX");
  auto* quick_opt = repeated("--quick-echo", quick_echo,
                             "an inbox answering requests with a quick handler on the transport "
                             "thread; counts notifies",
                             "INBOX");
  auto* slow_opt =
      repeated("--slow", slow,
               "an inbox sleeping MS per message before counting (and answering) it", "INBOX:MS")
          ->check(check([](const std::string& v) { parse_slow(v); }));
  if (auto done = mesh::cli::parse(app, argc, argv)) return done;

  mt::TransportOptions& o = f.options;
  o.node_name = name;
  if (!port.empty()) o.port = parse_number<std::uint16_t>(port, 0, 65535);
  if (!bind.empty()) o.bind_address = bind;
  for (const auto& p : peers) f.peers.push_back(parse_peer(p));
  if (!curve_secret.empty()) o.curve = parse_curve_secret(curve_secret);
  for (const auto& k : allow_keys) o.allowed_clients.push_back(parse_client_key(k));
  if (!inbox_limit.empty()) o.inbox_limit = parse_number<std::size_t>(inbox_limit, 1, kMaxU64);
  if (!peer_queue_limit.empty()) {
    o.peer_queue_limit = parse_number<std::size_t>(peer_queue_limit, 1, kMaxU64);
  }
  if (!max_frame_bytes.empty()) {
    o.max_frame_bytes = parse_number<std::size_t>(max_frame_bytes, 64, kMaxU64);
  }
  if (!heartbeat_ms.empty()) {
    o.heartbeat_interval = std::chrono::milliseconds(parse_number<int>(heartbeat_ms, 1, 3600000));
  }
  // ZeroMQ's own default relation between the two, unless told otherwise.
  o.heartbeat_timeout =
      heartbeat_timeout_ms.empty()
          ? 3 * o.heartbeat_interval
          : std::chrono::milliseconds(parse_number<int>(heartbeat_timeout_ms, 1, 3600000));

  // The inboxes in command-line order, whatever their kind.
  std::set<std::string> inbox_names{"ctl"};
  std::size_t next_echo = 0, next_quick = 0, next_slow = 0;
  for (const CLI::Option* opt : app.parse_order()) {
    InboxSpec spec;
    if (opt == echo_opt) {
      spec = {echo.at(next_echo++), InboxKind::Echo, {}};
    } else if (opt == quick_opt) {
      spec = {quick_echo.at(next_quick++), InboxKind::QuickEcho, {}};
    } else if (opt == slow_opt) {
      spec = parse_slow(slow.at(next_slow++));
    } else {
      continue;
    }
    if (spec.name.empty()) throw mesh::UsageError("an inbox name must not be empty");
    if (!inbox_names.insert(spec.name).second) {
      throw mesh::UsageError("inbox '" + spec.name + "' is given twice (or is the reserved 'ctl')");
    }
    f.inboxes.push_back(std::move(spec));
  }
  if (o.curve) {
    for (const auto& p : f.peers) {
      if (p.curve_public_key.empty()) {
        throw mesh::UsageError("--peer " + p.name +
                               ": a CURVE key is required with --curve-secret");
      }
    }
  }
  return std::nullopt;
}

// Lets serving threads sleep for a slow consumer's delay yet stop at once.
class StopFlag {
 public:
  void set() {
    {
      std::lock_guard lock(mu_);
      stopped_ = true;
    }
    cv_.notify_all();
  }
  bool is_set() const {
    std::lock_guard lock(mu_);
    return stopped_;
  }
  // Returns false when stopped during the sleep.
  bool sleep_for(std::chrono::milliseconds d) {
    std::unique_lock lock(mu_);
    return !cv_.wait_for(lock, d, [&] { return stopped_; });
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopped_ = false;
};

struct ServedInbox {
  InboxSpec spec;
  std::shared_ptr<mt::Inbox> inbox;
  std::atomic<std::uint64_t> popped{0};
  std::atomic<std::uint64_t> notifies{0};
  std::atomic<std::uint64_t> requests{0};
};

template <std::size_t N>
nlohmann::json counters(const std::uint64_t (&values)[N]) {
  nlohmann::json a = nlohmann::json::array();
  for (const auto v : values) a.push_back(v);
  return a;
}

nlohmann::json stats_json(const mt::Transport& t, const std::deque<ServedInbox>& inboxes) {
  // Inboxes first: a message counted there was received before, so the
  // transport's counters read afterwards include it.
  nlohmann::json per_inbox = nlohmann::json::object();
  for (const auto& served : inboxes) {
    per_inbox[served.spec.name] = {
        {"popped", served.popped.load()},
        {"notifies", served.notifies.load()},
        {"requests", served.requests.load()},
        {"size", served.inbox->size()},
    };
  }
  const mt::TransportStats s = t.stats();
  nlohmann::json j = {
      {"name", t.node_name()},
      {"pid", static_cast<std::int64_t>(::getpid())},
      {"port", t.bound_port()},
      {"sent", counters(s.sent)},
      {"received", counters(s.received)},
      {"refused", counters(s.refused)},
      {"deduplicated", counters(s.deduplicated)},
      {"frames_malformed", s.frames_malformed},
      {"frames_oversized", s.frames_oversized},
      {"frames_bad_version", s.frames_bad_version},
      {"frames_unauthenticated", s.frames_unauthenticated},
      {"frames_forged", s.frames_forged},
      {"replies_unroutable", s.replies_unroutable},
      {"replies_dropped", s.replies_dropped},
      {"replies_unmatched", s.replies_unmatched},
      {"replies_deferred", s.replies_deferred},
      {"requests_answered_again", s.requests_answered_again},
      {"requests_timed_out", s.requests_timed_out},
      {"expired_on_arrival", s.expired_on_arrival},
      {"requests_failed_fast", s.requests_failed_fast},
      {"requests_direct", s.requests_direct},
      {"replies_direct", s.replies_direct},
      {"async_requests_direct", s.async_requests_direct},
      {"peers", s.peers},
      {"peers_connected", s.peers_connected},
      {"outbound_queued", s.outbound_queued},
      {"outbound_queued_bytes", s.outbound_queued_bytes},
      {"inbox_queued_bytes", s.inbox_queued_bytes},
      {"replies_waiting_bytes", s.replies_waiting_bytes},
      {"pending_requests", s.pending_requests},
      {"ask_entries", s.ask_entries},
  };
  j["inboxes"] = std::move(per_inbox);
  return j;
}

std::vector<std::uint8_t> to_bytes(std::string_view s) { return {s.begin(), s.end()}; }

// Pops until stopped. A quick inbox sees only notifies here: its requests
// are answered by the handler.
void serve(mt::Transport& t, ServedInbox& served, StopFlag& stop) {
  while (!stop.is_set()) {
    auto m = served.inbox->pop(100ms);
    if (!m) {
      if (served.inbox->closed()) return;
      continue;
    }
    served.popped.fetch_add(1);
    if (served.spec.delay.count() > 0 && !stop.sleep_for(served.spec.delay)) return;
    if (m->is_request()) {
      served.requests.fetch_add(1);
      std::vector<std::uint8_t> payload = m->envelope.payload;
      t.respond(*m, std::move(payload));
    } else if (m->is_notify()) {
      served.notifies.fetch_add(1);
    }
  }
}

void serve_ctl(mt::Transport& t, mt::Inbox& ctl, const std::deque<ServedInbox>& inboxes,
               StopFlag& stop, std::atomic<bool>& quit) {
  while (!stop.is_set()) {
    auto m = ctl.pop(100ms);
    if (!m) {
      if (ctl.closed()) return;
      continue;
    }
    if (!m->is_request()) continue;
    const std::string_view command(reinterpret_cast<const char*>(m->envelope.payload.data()),
                                   m->envelope.payload.size());
    if (command == "stats") {
      t.respond(*m, to_bytes(stats_json(t, inboxes).dump()));
    } else if (command == "quit") {
      t.respond(*m, to_bytes("bye"));
      quit = true;
    } else {
      t.respond_error(*m, mt::ErrorCode::Rejected);
    }
  }
}

int run(Flags flags) {
  auto transport = std::make_unique<mt::Transport>(std::move(flags.options));
  for (auto& p : flags.peers) transport->add_peer(std::move(p));

  // A deque: ServedInbox holds atomics and must not move.
  std::deque<ServedInbox> inboxes;
  for (auto& spec : flags.inboxes) {
    ServedInbox& served = inboxes.emplace_back();
    served.spec = std::move(spec);
    mt::QuickHandler quick;
    if (served.spec.kind == InboxKind::QuickEcho) {
      quick = [&served](const mt::EnvelopeView& request, std::vector<std::uint8_t>& response) {
        served.requests.fetch_add(1);
        response.assign(request.payload.begin(), request.payload.end());
        return mt::ErrorCode::None;
      };
    }
    served.inbox = transport->open_inbox(served.spec.name, 0, std::move(quick));
  }
  auto ctl = transport->open_inbox("ctl");

  StopFlag stop;
  std::atomic<bool> quit{false};
  std::vector<std::thread> threads;
  for (auto& served : inboxes) {
    threads.emplace_back([&, s = &served] { serve(*transport, *s, stop); });
  }
  threads.emplace_back([&] { serve_ctl(*transport, *ctl, inboxes, stop, quit); });

  std::cout << "ready " << transport->bound_port() << std::endl;

  // SIGTERM and SIGINT are blocked in every thread (see main) and taken
  // here synchronously: no handler, nothing async-signal-unsafe.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  const timespec poll{0, 100 * 1000 * 1000};
  while (!quit) {
    if (sigtimedwait(&stop_signals, nullptr, &poll) > 0) break;
  }

  stop.set();
  for (auto& served : inboxes) served.inbox->close();
  ctl->close();
  for (auto& th : threads) th.join();
  transport.reset();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // Blocked before any thread exists (the transport's and libzmq's inherit
  // the mask), so that only the main thread's sigtimedwait takes them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  Flags flags;
  try {
    if (auto done = parse_flags(argc, argv, flags)) return *done;
  } catch (const std::exception& e) {  // mesh::UsageError, and anything else a flag caused
    std::cerr << "transport_peer: " << e.what() << std::endl;
    return 2;
  }
  try {
    return run(std::move(flags));
  } catch (const std::exception& e) {
    std::cerr << "transport_peer: " << e.what() << std::endl;
    return 1;
  }
}
