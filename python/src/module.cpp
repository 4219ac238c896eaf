// mesh._mesh: the compiled half of the Python package `mesh` (python/mesh
// is the other half, docs/python.md the manual).
//
// How C++ and asyncio meet: the mesh's threads never touch Python. What
// they have for Python (a message for one of its agents, a request's
// outcome, a gather's result) goes into the Bridge's queue with a token,
// and the first item of a burst writes an eventfd. The package watches
// that descriptor on its event loop (loop.add_reader) and drains the queue
// there, with the GIL, resolving each token's future or handing the
// message to its agent. So an await completes on the caller's loop, no
// thread of the mesh ever waits for the GIL (a busy Python cannot stall
// the transport, and stopping never deadlocks on it), and nothing polls.
// Every call into the mesh converts its Python arguments first, then
// releases the GIL while C++ works.
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>
#include <variant>
#include <vector>

#include "json_py.hpp"
#include "mesh/mesh.hpp"
#include "mesh/node_config.hpp"
#include "mesh/peer_tools.hpp"

namespace py = pybind11;
using mesh::Json;
using mesh::python::context_to_json;
using mesh::python::from_json;
using mesh::python::text;
using mesh::python::to_json;

namespace {

// ---- the hand-off from the mesh's threads to the event loop ----------------

struct Completion {
  std::uint64_t token = 0;
  std::variant<mesh::RequestOutcome, mesh::IncomingMessage, mesh::GatherResult> value;
  // A message's place in its agent's mailbox, given back once Python is
  // done with it (Incoming).
  std::function<void()> release{};
};

class Bridge {
 public:
  Bridge() : fd_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
    if (fd_ < 0) throw std::system_error(errno, std::generic_category(), "mesh: eventfd");
  }
  ~Bridge() { ::close(fd_); }
  Bridge(const Bridge&) = delete;
  Bridge& operator=(const Bridge&) = delete;

  int fd() const { return fd_; }

  // Any thread. Only the first item after a drain wakes the loop.
  void push(Completion c) {
    bool wake = false;
    {
      std::lock_guard lock(mu_);
      wake = queue_.empty();
      queue_.push_back(std::move(c));
    }
    if (wake) {
      const std::uint64_t one = 1;
      // Cannot fail short of a counter at 2^64 - 1; a lost wake-up would
      // only delay this item to the next one's.
      [[maybe_unused]] const auto n = ::write(fd_, &one, sizeof one);
    }
  }

  // The loop's thread. The counter is reset before the queue is taken, so
  // an item pushed in between is either taken now or wakes the loop again.
  std::deque<Completion> take() {
    std::uint64_t count = 0;
    [[maybe_unused]] const auto n = ::read(fd_, &count, sizeof count);
    std::deque<Completion> out;
    std::lock_guard lock(mu_);
    out.swap(queue_);
    return out;
  }

 private:
  const int fd_;
  std::mutex mu_;
  std::deque<Completion> queue_;
};

// A Python agent as the mesh sees it: a CustomAgent whose handlers hand
// each message to the event loop and return at once (a request is answered
// later, by respond or respond_error), so the executor's threads never
// wait for Python. Each message keeps its place in the agent's mailbox
// until Python has handled it (or taken it with receive()), so the bound
// counts what waits for Python, and a sender to a full Python agent is
// refused as for a C++ one (notify false, or its delivery failure).
class PyAgent : public mesh::CustomAgent {
 public:
  PyAgent(mesh::AgentSpec spec, std::shared_ptr<Bridge> bridge, std::uint64_t token)
      : CustomAgent(std::move(spec)), bridge_(std::move(bridge)), token_(token) {}

 protected:
  std::optional<Json> on_peer_request(const mesh::IncomingMessage& message) override {
    bridge_->push({token_, message, hold_mailbox_place()});
    return std::nullopt;
  }
  void on_peer_notify(const mesh::IncomingMessage& message) override {
    bridge_->push({token_, message, hold_mailbox_place()});
  }

 private:
  const std::shared_ptr<Bridge> bridge_;
  const std::uint64_t token_;
};

// ---- what Python sees ---------------------------------------------------------

// A received message; data and context converted once, on the loop.
struct Incoming {
  mesh::IncomingMessage m;
  py::object data;
  py::object context;
  std::string sender_role;
  std::function<void()> release;  // its mailbox place; called once (release())

  Incoming() = default;
  Incoming(const Incoming&) = delete;
  Incoming& operator=(const Incoming&) = delete;
  ~Incoming() { release_place(); }
  void release_place() {
    if (auto r = std::exchange(release, nullptr)) r();
  }
};

std::chrono::milliseconds to_ms(double seconds, const char* what) {
  if (!std::isfinite(seconds) || seconds < 0 || seconds > 1e9) {
    throw py::value_error(std::string("mesh: ") + what + " must be a number of seconds >= 0");
  }
  return std::chrono::milliseconds(static_cast<std::int64_t>(std::llround(seconds * 1000.0)));
}

std::optional<std::chrono::milliseconds> to_opt_ms(const std::optional<double>& seconds, const char* what) {
  if (!seconds) return std::nullopt;
  return to_ms(*seconds, what);
}

std::string code_name(mesh::ErrorCode e) { return std::string(mesh::transport::to_string(e)); }

py::dict peer_dict(const mesh::PeerInfo& p) { return from_json(mesh::peer_to_json(p)); }

class Client;

class PyMesh {
 public:
  // The node's configuration as the C++ programs load it: defaults < YAML
  // (JC_CONFIG) < the environment; `overrides` replace environment
  // variables of the same name, `args` are the programs' flags.
  PyMesh(const std::map<std::string, std::string>& overrides, const std::vector<std::string>& args,
         std::uint64_t seed)
      : bridge_(std::make_shared<Bridge>()) {
    auto env = mesh::current_environment();
    for (const auto& [k, v] : overrides) env[k] = v;
    mesh::NodeConfig config;
    try {
      config = mesh::load_node_config(args, env);
    } catch (const mesh::ConfigError& e) {
      throw py::value_error(e.what());
    }
    mesh::MeshOptions options;
    options.seed = seed;
    try {
      mesh_ = std::make_unique<mesh::Mesh>(std::move(config), options);
    } catch (const std::invalid_argument& e) {
      throw py::value_error(e.what());
    }
  }

  // Returns the agent's id.
  std::string add_agent(const std::string& role, const std::vector<std::string>& capabilities,
                        const std::string& description, const std::string& agent_id, std::size_t concurrency,
                        std::size_t mailbox_limit, std::uint64_t token, py::handle input_schema,
                        py::handle output_schema) {
    mesh::AgentSpec spec;
    // None: no schema; anything else is checked by the runtime's add
    // (a JSON object, bounded: ValueError otherwise).
    if (!input_schema.is_none()) spec.input_schema = to_json(input_schema);
    if (!output_schema.is_none()) spec.output_schema = to_json(output_schema);
    spec.role = role;
    spec.capabilities = capabilities;
    spec.description = description;
    spec.agent_id = agent_id;
    spec.concurrency = concurrency == 0 ? 1 : concurrency;
    spec.mailbox_limit = mailbox_limit;
    auto agent = std::make_unique<PyAgent>(std::move(spec), bridge_, token);
    py::gil_scoped_release nogil;
    try {
      return mesh_->add(std::move(agent)).id();
    } catch (const std::logic_error& e) {
      // After stop(): not a bad argument, but nothing Python can fix either.
      if (dynamic_cast<const std::invalid_argument*>(&e)) throw;
      throw std::runtime_error(e.what());
    }
  }

  void start() {
    py::gil_scoped_release nogil;
    mesh_->start();
  }
  void stop() {
    py::gil_scoped_release nogil;
    mesh_->stop();
  }
  bool running() const { return mesh_->running(); }
  py::tuple readiness() const {
    auto r = mesh_->readiness();
    return py::make_tuple(r.ready, r.status, r.reason);
  }
  const std::string& node_name() const { return mesh_->node_name(); }
  bool p2p() const { return mesh_->config().p2p_enabled; }
  std::uint16_t swim_port() const { return mesh_->swim_port(); }
  std::uint16_t zmq_port() const { return mesh_->zmq_port(); }
  std::size_t mailbox_limit() const { return mesh_->config().mailbox_limit; }
  int fd() const { return bridge_->fd(); }

  // (token, kind, value) for each completion: kind 0 a request's outcome
  // (error, data, context, sender, sender_node), 1 an Incoming, 2 a
  // gather's (satisfied, [(peer dict, data, sender)], [(peer dict, error)]).
  py::list drain() {
    std::deque<Completion> items = bridge_->take();
    py::list out;
    for (auto& c : items) {
      if (auto* o = std::get_if<mesh::RequestOutcome>(&c.value)) {
        py::tuple value;
        if (o->ok()) {
          auto& r = *o->response;
          value = py::make_tuple(py::none(), from_json(r.data), from_json(r.context), text(r.sender),
                                 text(r.sender_node));
        } else {
          value = py::make_tuple(code_name(o->error), py::none(), py::none(), py::none(), py::none());
        }
        out.append(py::make_tuple(c.token, 0, std::move(value)));
      } else if (auto* m = std::get_if<mesh::IncomingMessage>(&c.value)) {
        auto in = std::make_unique<Incoming>();
        in->data = from_json(m->data);
        in->context = from_json(m->context);
        if (auto peer = mesh_->directory().find(m->sender)) in->sender_role = peer->card.role;
        in->m = std::move(*m);
        in->release = std::move(c.release);
        out.append(py::make_tuple(c.token, 1, py::cast(std::move(in))));
      } else {
        auto& g = std::get<mesh::GatherResult>(c.value);
        py::list answers;
        for (auto& a : g.responses) {
          answers.append(py::make_tuple(peer_dict(a.peer), from_json(a.response.data), text(a.response.sender)));
        }
        py::list missing;
        for (auto& miss : g.missing) missing.append(py::make_tuple(peer_dict(miss.peer), code_name(miss.error)));
        out.append(py::make_tuple(c.token, 2, py::make_tuple(g.satisfied, answers, missing)));
      }
    }
    return out;
  }

  std::unique_ptr<Client> client(const std::string& agent_id);
  std::unique_ptr<Client> node_client();

 private:
  std::shared_ptr<Bridge> bridge_;
  std::unique_ptr<mesh::Mesh> mesh_;
};

// One agent's PeerClient (or the node's). Python keeps its PyMesh alive
// (py::keep_alive), so the PeerClient outlives this.
class Client {
 public:
  Client(mesh::PeerClient& pc, std::shared_ptr<Bridge> bridge) : pc_(pc), bridge_(std::move(bridge)) {}

  const std::string& my_id() const { return pc_.my_id(); }
  const std::string& my_role() const { return pc_.my_role(); }
  const std::string& node_name() const { return pc_.node_name(); }
  void set_default_strategy(const std::string& s) { pc_.set_default_strategy(s); }
  std::string default_strategy() const { return std::string(mesh::to_string(pc_.default_strategy())); }

  std::optional<mesh::PeerInfo> get_peer(const std::string& role) { return pc_.get_peer(role); }
  std::vector<mesh::PeerInfo> discover(const std::string& role, const std::string& capability,
                                       const std::string& strategy) {
    return pc_.discover(mesh::PeerQuery{role, capability}, strategy);
  }
  std::optional<mesh::PeerInfo> discover_one(const std::string& role, const std::string& capability,
                                             const std::string& strategy) {
    return pc_.discover_one(mesh::PeerQuery{role, capability}, strategy);
  }
  bool record_peer_usage(const std::string& agent_id) { return pc_.record_peer_usage(agent_id); }
  std::vector<std::string> list_roles() const {
    auto roles = pc_.list_roles();
    return {roles.begin(), roles.end()};
  }
  py::list list_peers() const {
    py::list out;
    for (const auto& p : pc_.list_peers()) out.append(peer_dict(p));
    return out;
  }
  py::dict registry() const {
    py::dict out;
    for (const auto& [id, p] : pc_.registry()) out[text(id)] = peer_dict(p);
    return out;
  }

  py::object as_tools(const std::string& role, const std::string& capability, const std::string& format) const {
    const auto f = mesh::tool_format_from(format);
    if (!f) throw py::value_error("mesh: unknown tool format '" + format + "' (mcp, openai)");
    return from_json(mesh::peers_as_tools(pc_, mesh::PeerQuery{role, capability}, *f));
  }
  std::string cognitive_context(const std::string& role, const std::string& capability) const {
    return mesh::cognitive_context(pc_, mesh::PeerQuery{role, capability});
  }
  // A peer's own tool (peers_as_tools): (target, wrapped), or None.
  py::object peer_tool(const std::string& name) const {
    auto t = mesh::find_peer_tool(pc_, name);
    if (!t) return py::none();
    return py::make_tuple(text(t->target), t->wrapped);
  }

  // "none" when accepted, otherwise why not.
  std::string notify(const std::string& target, py::handle data, py::handle ctx, const Incoming* parent) {
    mesh::SendOptions options = send_options(ctx, std::nullopt, parent);
    const Json payload = to_json(data);
    py::gil_scoped_release nogil;
    return code_name(pc_.notify_detailed(target, payload, options));
  }

  // The outcome arrives on the loop as `token`'s completion (drain).
  void request(std::uint64_t token, const std::string& target, py::handle data, std::optional<double> timeout_s,
               py::handle ctx, const Incoming* parent) {
    mesh::SendOptions options = send_options(ctx, to_opt_ms(timeout_s, "timeout"), parent);
    const Json payload = to_json(data);
    auto bridge = bridge_;
    py::gil_scoped_release nogil;
    pc_.request_then(target, payload, options, [bridge, token](mesh::RequestOutcome outcome) {
      bridge->push({token, std::move(outcome)});
    });
  }

  bool respond(const Incoming& incoming, py::handle data, py::handle ctx) {
    const Json payload = to_json(data);
    std::optional<Json> context;
    if (!ctx.is_none()) context = context_to_json(ctx);
    py::gil_scoped_release nogil;
    return pc_.respond(incoming.m, payload, context);
  }

  bool respond_error(const Incoming& incoming, const std::string& code) {
    static const std::map<std::string, mesh::ErrorCode> codes = {
        {"rejected", mesh::ErrorCode::Rejected},
        {"mailbox_full", mesh::ErrorCode::MailboxFull},
        {"shutdown", mesh::ErrorCode::Shutdown},
    };
    auto it = codes.find(code);
    if (it == codes.end()) throw py::value_error("mesh: respond_error takes rejected, mailbox_full or shutdown");
    py::gil_scoped_release nogil;
    return pc_.respond_error(incoming.m, it->second);
  }

  std::size_t broadcast(py::handle data, py::handle ctx, const std::string& role, const std::string& capability) {
    const Json payload = to_json(data);
    const Json context = context_to_json(ctx);
    py::gil_scoped_release nogil;
    if (role.empty() && capability.empty()) return pc_.broadcast(payload, context);
    return pc_.broadcast_to(mesh::PeerQuery{role, capability}, payload, context);
  }

  void request_all(std::uint64_t token, const std::string& role, const std::string& capability, py::handle data,
                   const std::string& policy, std::size_t k, double deadline_s, py::handle ctx) {
    mesh::GatherPolicy p;
    const auto deadline = to_ms(deadline_s, "timeout");
    if (policy == "all") {
      p = mesh::GatherPolicy::all(deadline);
    } else if (policy == "first_k") {
      p = mesh::GatherPolicy::first_k(k, deadline);
    } else if (policy == "quorum") {
      p = mesh::GatherPolicy::quorum(deadline);
    } else {
      throw py::value_error("mesh: unknown gather policy '" + policy + "' (all, first_k, quorum)");
    }
    const Json payload = to_json(data);
    const Json context = context_to_json(ctx);
    auto bridge = bridge_;
    py::gil_scoped_release nogil;
    pc_.request_all_then(mesh::PeerQuery{role, capability}, payload, p, context,
                         [bridge, token](mesh::GatherResult r) { bridge->push({token, std::move(r)}); });
  }

 private:
  mesh::SendOptions send_options(py::handle ctx, std::optional<std::chrono::milliseconds> timeout,
                                 const Incoming* parent) {
    mesh::SendOptions o;
    o.context = context_to_json(ctx);
    o.timeout = timeout;
    // Sent while a handler of ours works on `parent`: the same
    // conversation, so its limits (turns, depth, budget) hold across
    // Python agents as they do across C++ ones (docs/conversations.md).
    if (parent) {
      const auto& id = parent->m.thread().id;
      if (!id.empty()) o.thread = id;
    }
    return o;
  }

  mesh::PeerClient& pc_;
  std::shared_ptr<Bridge> bridge_;
};

std::unique_ptr<Client> PyMesh::client(const std::string& agent_id) {
  mesh::Agent* a = mesh_->agent(agent_id);
  if (!a) throw py::key_error("mesh: no agent '" + agent_id + "' on this node");
  return std::make_unique<Client>(a->peers(), bridge_);
}

std::unique_ptr<Client> PyMesh::node_client() { return std::make_unique<Client>(mesh_->node_client(), bridge_); }

}  // namespace

PYBIND11_MODULE(_mesh, m) {
  m.doc() = "The compiled half of the mesh package (see mesh/__init__.py and docs/python.md).";

  py::class_<mesh::PeerInfo>(m, "PeerInfo")
      .def_property_readonly("agent_id", [](const mesh::PeerInfo& p) { return p.card.agent_id; })
      .def_property_readonly("role", [](const mesh::PeerInfo& p) { return p.card.role; })
      .def_property_readonly("node_id", [](const mesh::PeerInfo& p) { return p.card.node; })
      .def_property_readonly("capabilities", [](const mesh::PeerInfo& p) { return p.card.capabilities; })
      .def_property_readonly("description", [](const mesh::PeerInfo& p) { return p.card.description; })
      .def_property_readonly("status", [](const mesh::PeerInfo& p) { return p.card.status; })
      .def_property_readonly("location", [](const mesh::PeerInfo& p) { return p.local ? "local" : "remote"; })
      .def_property_readonly("node_health",
                             [](const mesh::PeerInfo& p) { return std::string(mesh::to_string(p.node_health)); })
      .def("to_dict", [](const mesh::PeerInfo& p) { return peer_dict(p); })
      .def("__repr__", [](const mesh::PeerInfo& p) {
        return "<PeerInfo " + p.card.agent_id + " role=" + p.card.role + " node=" + p.card.node + ">";
      })
      .def("__eq__", [](const mesh::PeerInfo& a, const mesh::PeerInfo& b) { return a == b; })
      .def("__hash__", [](const mesh::PeerInfo& p) { return py::hash(py::str(p.card.agent_id)); });

  py::class_<Incoming>(m, "IncomingMessage")
      .def_property_readonly("id", [](const Incoming& i) { return i.m.id; })
      .def_property_readonly("sender", [](const Incoming& i) { return i.m.sender; })
      .def_property_readonly("sender_id", [](const Incoming& i) { return i.m.sender; })
      .def_property_readonly("sender_role", [](const Incoming& i) { return i.sender_role; })
      .def_property_readonly("sender_node", [](const Incoming& i) { return i.m.sender_node; })
      .def_property_readonly("target", [](const Incoming& i) { return i.m.target; })
      .def_readonly("data", &Incoming::data)
      .def_readonly("context", &Incoming::context)
      .def_property_readonly("is_request", [](const Incoming& i) { return i.m.is_request(); })
      .def_property_readonly("is_notify", [](const Incoming& i) { return i.m.is_notify(); })
      .def_property_readonly("type", [](const Incoming& i) { return i.m.is_request() ? "request" : "notify"; })
      .def_property_readonly("correlation_id", [](const Incoming& i) { return i.m.correlation_id; })
      .def_property_readonly("timestamp", [](const Incoming& i) { return static_cast<double>(i.m.timestamp_ms) / 1000.0; })
      .def_property_readonly("thread_id", [](const Incoming& i) { return i.m.thread().id.to_string(); })
      .def("_release", &Incoming::release_place)
      .def("__repr__", [](const Incoming& i) {
        return std::string("<IncomingMessage ") + (i.m.is_request() ? "request" : "notify") + " from " + i.m.sender +
               "@" + i.m.sender_node + ">";
      });

  py::class_<Client>(m, "Client")
      .def_property_readonly("my_id", &Client::my_id)
      .def_property_readonly("my_role", &Client::my_role)
      .def_property_readonly("node_name", &Client::node_name)
      .def("set_default_strategy", &Client::set_default_strategy)
      .def("default_strategy", &Client::default_strategy)
      .def("get_peer", &Client::get_peer)
      .def("discover", &Client::discover)
      .def("discover_one", &Client::discover_one)
      .def("record_peer_usage", &Client::record_peer_usage)
      .def("list_roles", &Client::list_roles)
      .def("list_peers", &Client::list_peers)
      .def("registry", &Client::registry)
      .def("as_tools", &Client::as_tools)
      .def("cognitive_context", &Client::cognitive_context)
      .def("peer_tool", &Client::peer_tool)
      .def("notify", &Client::notify, py::arg("target"), py::arg("data"), py::arg("ctx"), py::arg("parent").none(true))
      .def("request", &Client::request, py::arg("token"), py::arg("target"), py::arg("data"), py::arg("timeout"),
           py::arg("ctx"), py::arg("parent").none(true))
      .def("respond", &Client::respond)
      .def("respond_error", &Client::respond_error)
      .def("broadcast", &Client::broadcast)
      .def("request_all", &Client::request_all);

  py::class_<PyMesh>(m, "Mesh")
      .def(py::init<const std::map<std::string, std::string>&, const std::vector<std::string>&, std::uint64_t>())
      .def("add_agent", &PyMesh::add_agent)
      .def("start", &PyMesh::start)
      .def("stop", &PyMesh::stop)
      .def("running", &PyMesh::running)
      .def("readiness", &PyMesh::readiness)
      .def_property_readonly("node_name", &PyMesh::node_name)
      .def_property_readonly("p2p", &PyMesh::p2p)
      .def_property_readonly("swim_port", &PyMesh::swim_port)
      .def_property_readonly("zmq_port", &PyMesh::zmq_port)
      .def_property_readonly("fd", &PyMesh::fd)
      .def_property_readonly("mailbox_limit", &PyMesh::mailbox_limit)
      .def("drain", &PyMesh::drain)
      .def("client", &PyMesh::client, py::keep_alive<0, 1>())
      .def("node_client", &PyMesh::node_client, py::keep_alive<0, 1>());

  m.attr("DEFAULT_REQUEST_TIMEOUT") = std::chrono::duration<double>(mesh::kDefaultRequestTimeout).count();
  m.attr("DEFAULT_ASK_TIMEOUT") = std::chrono::duration<double>(mesh::kDefaultAskTimeout).count();
}
