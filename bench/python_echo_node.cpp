// python-echo-node: the C++ side of bench/python_binding.py. A node
// configured from the environment (P2P_ENABLED, JC_SWIM_HOST, JC_SWIM_PORT,
// JC_SEED_NODES, ...).
//
//   python-echo-node
//       hosts one agent of role "echo" that answers each request with its
//       payload, as the pyzmq + json echo the benchmark compares with does.
//       Prints "ready <agent_id>" once started; runs until SIGINT / SIGTERM
//       (a graceful leave).
//   python-echo-node --ask COUNT WARMUP MAX_SECONDS DOC_JSON
//   python-echo-node --ask-async COUNT WARMUP MAX_SECONDS DOC_JSON
//       the same requests from C++ (the node's client; --ask blocking,
//       --ask-async through request_then, the call the Python binding
//       makes, waiting on a future for each outcome): finds an
//       "echo" agent, sends WARMUP then up to COUNT requests of DOC_JSON
//       (or until MAX_SECONDS), one in flight, and prints
//       {"p50_us", "p99_us", "count"}: the runtime's own round trip, with
//       no Python in it.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <future>
#include <iostream>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "mesh/mesh.hpp"

namespace {

class Echo : public mesh::CustomAgent {
 public:
  Echo() : CustomAgent({.role = "echo", .capabilities = {"echo"}, .description = "answers with the request"}) {}

 protected:
  std::optional<mesh::Json> on_peer_request(const mesh::IncomingMessage& message) override { return message.data; }
};

// The same rank as bench/pyzmq_echo.py's percentile().
double percentile_us(const std::vector<std::int64_t>& sorted_ns, double q) {
  const auto n = static_cast<double>(sorted_ns.size());
  auto k = static_cast<std::ptrdiff_t>(std::ceil(q * n)) - 1;
  k = std::clamp<std::ptrdiff_t>(k, 0, static_cast<std::ptrdiff_t>(sorted_ns.size()) - 1);
  return static_cast<double>(sorted_ns[static_cast<std::size_t>(k)]) / 1000.0;
}

int ask(int argc, char** argv, bool async) {
  if (argc != 6) {
    throw std::invalid_argument("usage: python-echo-node --ask|--ask-async COUNT WARMUP MAX_SECONDS DOC_JSON");
  }
  const long count = std::stol(argv[2]);
  const long warmup = std::stol(argv[3]);
  const double max_seconds = std::stod(argv[4]);
  const mesh::Json doc = mesh::Json::parse(argv[5]);
  auto mesh = mesh::Mesh::from_environment();
  mesh->start();
  auto& client = mesh->node_client();
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  std::optional<mesh::PeerInfo> echo;
  while (!(echo = client.get_peer("echo"))) {
    if (std::chrono::steady_clock::now() > give_up) throw std::runtime_error("no echo agent within 30 s");
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  const std::string target = echo->card.agent_id;
  const auto one = [&] {
    std::optional<mesh::Response> r;
    if (async) {
      std::promise<mesh::RequestOutcome> done;
      auto outcome = done.get_future();
      client.request_then(target, doc, mesh::SendOptions{.timeout = std::chrono::seconds(5)},
                          [&done](mesh::RequestOutcome o) { done.set_value(std::move(o)); });
      r = outcome.get().response;
    } else {
      r = client.request_blocking(target, doc, std::chrono::seconds(5));
    }
    if (!r || r->data != doc) throw std::runtime_error("no or wrong echo");
  };
  for (long i = 0; i < warmup; ++i) one();
  std::vector<std::int64_t> samples;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(max_seconds);
  for (long i = 0; i < count; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    one();
    const auto t1 = std::chrono::steady_clock::now();
    samples.push_back(std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count());
    if (t1 > deadline) break;
  }
  mesh->stop();
  std::sort(samples.begin(), samples.end());
  std::cout << mesh::Json{{"p50_us", percentile_us(samples, 0.50)},
                          {"p99_us", percentile_us(samples, 0.99)},
                          {"count", samples.size()}}
                   .dump()
            << std::endl;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    if (argc > 1 && std::string(argv[1]) == "--ask") return ask(argc, argv, false);
    if (argc > 1 && std::string(argv[1]) == "--ask-async") return ask(argc, argv, true);
    auto mesh = mesh::Mesh::from_environment();
    auto& echo = mesh->add<Echo>();
    mesh->start();
    std::cout << "ready " << echo.id() << std::endl;
    mesh->run_forever();
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "python-echo-node: " << e.what() << "\n";
    return 1;
  }
}
