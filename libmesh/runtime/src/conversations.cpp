// Governed conversations at work (docs/conversations.md): the thread each
// message is stamped with when an agent sends it, the checks a receiving
// node makes before any handler runs, and what an answer brings back.
//
// A message to an agent of this same node is checked as its receiver
// would, here, before it is handed over: this node is its receiver. One
// from another node is checked in admit() on the transport's thread, so
// that a refusal reaches its sender as an error (a request's answer, a
// notify's delivery failure) without ever being queued.
#include <pthread.h>
#include <sys/resource.h>
#include <unistd.h>
#include <spdlog/spdlog.h>

#include <charconv>
#include <chrono>
#include <cmath>
#include <utility>

#include "mesh/text.hpp"
#include "mesh_core.hpp"

namespace mesh::detail {

namespace {

thread_local std::shared_ptr<Handling> tl_current;

std::int64_t unix_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// What `limits` say for a thread at `now_ms`, in its block.
void apply(ThreadBlock& b, const ThreadLimits& limits, std::int64_t now_ms) {
  tighten_limit(b.max_turns, limits.max_turns);
  if (limits.ttl) tighten_limit(b.expires_ms, std::optional<std::int64_t>(now_ms + limits.ttl->count()));
  tighten_limit(b.max_cost, limits.max_cost);
  tighten_limit(b.max_depth, limits.max_depth);
}

// The thread of a message that came without one (a node that predates
// threads, a raw client): a new thread of its own, opened by its sender,
// under this node's defaults. Its id is the message's, so that every look
// at the same message finds the same thread.
ThreadBlock implicit_block(const MeshCore& core, transport::MessageId id, std::string_view sender, std::string_view node,
                           std::int64_t now_ms) {
  ThreadBlock b;
  b.id = ThreadId{id.hi, id.lo};
  b.origin_agent = std::string(sender.substr(0, kMaxOriginBytes));
  b.origin_node = std::string(node.substr(0, kMaxOriginBytes));
  b.turn = 1;
  b.depth = 1;
  apply(b, core.thread_defaults(), now_ms);
  return b;
}

}  // namespace

ErrorCode to_error(Refusal why) {
  switch (why) {
    case Refusal::None: return ErrorCode::None;
    case Refusal::TurnLimit: return ErrorCode::TurnLimit;
    case Refusal::Expired: return ErrorCode::Expired;
    case Refusal::BudgetExceeded: return ErrorCode::BudgetExceeded;
    case Refusal::Loop: return ErrorCode::Loop;
  }
  return ErrorCode::Rejected;
}

Refusal to_refusal(ErrorCode code) {
  switch (code) {
    case ErrorCode::TurnLimit: return Refusal::TurnLimit;
    case ErrorCode::Expired: return Refusal::Expired;
    case ErrorCode::BudgetExceeded: return Refusal::BudgetExceeded;
    case ErrorCode::Loop: return Refusal::Loop;
    default: return Refusal::None;
  }
}

const std::shared_ptr<Handling>& current_handling() { return tl_current; }
const Handling* current_handling(const MeshCore& core) {
  return tl_current && tl_current->mesh == core.instance ? tl_current.get() : nullptr;
}
HandlingScope::HandlingScope(std::shared_ptr<Handling> h) : prev_(std::exchange(tl_current, std::move(h))) {}
HandlingScope::~HandlingScope() { tl_current = std::move(prev_); }
void set_current_handling(std::shared_ptr<Handling> h) { tl_current = std::move(h); }

void Handling::add_cost(double amount) {
  if (!std::isfinite(amount) || amount <= 0) return;
  std::lock_guard lock(mu_);
  cost_ += amount;
}

double Handling::cost() const {
  std::lock_guard lock(mu_);
  return cost_;
}

void MeshCore::open_audit() {
  if (config.audit_dir.empty()) return;
  AuditOptions o;
  o.dir = config.audit_dir;
  o.node = audit_node_name(node_name);
  o.rotate_bytes = config.audit_rotate_bytes;
  o.fsync = config.audit_fsync == "always"     ? AuditFsync::Always
            : config.audit_fsync == "interval" ? AuditFsync::Interval
                                               : AuditFsync::Never;
  audit_sync = o.fsync == AuditFsync::Always;
  try {
    audit = std::make_unique<AuditLog>(std::move(o));
  } catch (const std::exception& e) {
    throw std::invalid_argument(std::string("audit_dir: ") + e.what());
  }
  if (audit_sync) return;  // no writer thread: see audit_message
  audit_thread = std::jthread([this](std::stop_token stop) {
    ::pthread_setname_np(::pthread_self(), "mesh-audit");
    // Background work: on a busy machine the messages' threads go first
    // (a batch is hundreds of records to format and hash, which would
    // otherwise share a core with some request's hops). When the trail
    // falls behind, its queue fills and senders wait: it cannot starve.
    (void)::setpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()), kAuditNice);
    std::vector<AuditItem> batch;  // its first `taken` items are records to write
    std::vector<std::string> records;
    std::unique_lock lock(audit_queue_mu);
    for (;;) {
      if (audit_queued == 0) {
        audit_writer_idle = true;
        audit_queue_cv.wait(lock, stop, [this] { return audit_closing || audit_queued > 0; });
        audit_writer_idle = false;
        if (audit_queued == 0 && (audit_closing || stop.stop_requested())) return;  // everything written
      }
      // The queue gets the last batch's items back, to be overwritten.
      batch.swap(audit_queue);
      const std::size_t taken = std::exchange(audit_queued, 0);
      lock.unlock();
      audit_room_cv.notify_all();
      // Each record's text is written over the last batch's (no
      // allocation once the strings are long enough).
      if (records.size() < taken) records.resize(taken);
      for (std::size_t i = 0; i < taken; ++i) {
        records[i].clear();
        audit_record(batch[i], records[i]);
      }
      try {
        audit->append_objects(std::span<const std::string>(records.data(), taken));
      } catch (const std::exception& e) {
        spdlog::error("{}: audit records were not written: {}", node_name, e.what());
      }
      // What a burst grew is not kept for ever.
      if (records.size() > kAuditKeptItems) {
        records.resize(kAuditKeptItems);
        records.shrink_to_fit();
      }
      if (batch.size() > kAuditKeptItems) {
        batch.resize(kAuditKeptItems);
        batch.shrink_to_fit();
      }
      // Let records gather before the next look, unless the node stops.
      lock.lock();
      if (!audit_closing) audit_queue_cv.wait_for(lock, stop, kAuditGather, [this] { return audit_closing; });
    }
  });
}

void MeshCore::close_audit() {
  if (!audit_thread.joinable()) return;
  {
    std::lock_guard lock(audit_queue_mu);
    audit_closing = true;
  }
  audit_queue_cv.notify_all();
  audit_room_cv.notify_all();
  audit_thread.join();
}

void MeshCore::audit_message(const AuditFacts& f) {
  if (!audit) return;
  // Filled here, then swapped with a used item of the queue: the strings'
  // and payload's buffers go round between the senders and the trail's
  // thread and are overwritten, instead of being allocated by a sender
  // and freed by the trail's thread for every record (no allocation at all
  // once the buffers are big enough; whether that helped p99 was within
  // the benchmark's noise, docs/benchmarks.md).
  thread_local AuditItem item;
  item.at_ms = unix_ms();
  item.event = f.event;
  item.kind = f.kind;
  if (f.thread) {
    const ThreadBlock& b = *f.thread;
    if (!item.thread) item.thread.emplace();
    ThreadBlock& t = *item.thread;
    t.id = b.id;
    t.parent = b.parent;
    t.subject = b.subject;
    t.turn = b.turn;
    t.depth = b.depth;
    t.spent = b.spent;
    t.message_class = b.message_class;
    const bool opening = b.turn == 1;  // limits are shown on the opening message only
    t.max_turns = opening ? b.max_turns : std::nullopt;
    t.expires_ms = opening ? b.expires_ms : std::nullopt;
    t.max_cost = opening ? b.max_cost : std::nullopt;
    t.max_depth = opening ? b.max_depth : std::nullopt;
  } else {
    item.thread.reset();
  }
  item.id = f.id;
  item.from = f.from;
  item.to = f.to;
  item.to_role = f.to_role;
  item.priority = f.priority;
  item.outcome = f.outcome;
  item.cost = f.cost;
  item.took_ms = f.took_ms;
  item.payload.assign(f.payload.begin(), f.payload.end());
  if (audit_sync) {
    // The log orders concurrent appends itself.
    thread_local std::string record;
    record.clear();
    audit_record(item, record);
    try {
      audit->append_objects(std::span<const std::string>(&record, 1));
    } catch (const std::exception& e) {
      spdlog::error("{}: an audit record was not written: {}", node_name, e.what());
    }
    return;
  }
  bool wake = false;
  {
    std::unique_lock lock(audit_queue_mu);
    if (audit_queued >= kAuditQueueMax) {
      audit_room_cv.wait(lock, [this] { return audit_queued < kAuditQueueMax || audit_closing; });
    }
    if (audit_closing) return;  // the node is stopping: the trail is closed
    if (audit_queued == audit_queue.size()) audit_queue.emplace_back();
    std::swap(audit_queue[audit_queued++], item);
    wake = audit_writer_idle;
  }
  if (wake) audit_queue_cv.notify_one();
}

namespace {

// A record's JSON object text, written member by member: keys must come in
// byte order (the audit format's), which the callers keep.
class RecordText {
 public:
  explicit RecordText(std::string& out) : out_(out) { out_ += '{'; }
  void text(std::string_view key, std::string_view v) {
    name(key);
    append_json_string(out_, v);
  }
  void integer(std::string_view key, std::int64_t v) {
    name(key);
    char buf[24];
    out_.append(buf, std::to_chars(buf, buf + sizeof buf, v).ptr);
  }
  // As nlohmann::json writes a double: shortest form, ".0" on whole numbers.
  void number(std::string_view key, double v) {
    name(key);
    if (!std::isfinite(v)) {
      out_ += "null";
      return;
    }
    char buf[32];
    const char* end = std::to_chars(buf, buf + sizeof buf, v).ptr;
    const std::string_view t(buf, static_cast<std::size_t>(end - buf));
    out_ += t;
    if (t.find_first_of(".e") == std::string_view::npos) out_ += ".0";
  }
  void raw(std::string_view key, std::string_view json) {
    name(key);
    out_ += json;
  }
  // A member whose value is an object, written into the same text: it
  // must be closed before this one's next member.
  RecordText object(std::string_view key) {
    name(key);
    return RecordText(out_);
  }
  void close() { out_ += '}'; }

 private:
  void name(std::string_view key) {
    if (!first_) out_ += ',';
    first_ = false;
    out_ += '"';
    out_ += key;  // our own keys: nothing to escape
    out_ += "\":";
  }
  std::string& out_;
  bool first_ = true;
};

}  // namespace

// One line, appended to `out`: what happened to one message here, when,
// in which thread, with its payload's digest (or, with audit_payloads, the
// payload). Its members in byte order, as nlohmann::json would write them,
// without building a json value (the trail's cost per record).
void MeshCore::audit_record(const AuditItem& f, std::string& out) const {
  out.reserve(512 + f.from.size() + f.to.size() + f.to_role.size());
  RecordText r(out);
  const ThreadBlock* b = f.thread ? &*f.thread : nullptr;
  r.integer("at_ms", f.at_ms);
  if (b) r.text("class", to_string(b->message_class));
  if (f.cost) r.number("cost", *f.cost);
  if (b) r.integer("depth", b->depth);
  r.text("event", f.event);
  r.text("from", f.from);
  r.text("kind", f.kind);
  if (b && b->turn == 1) {  // the opening message: the thread's limits, for a replay
    RecordText l = r.object("limits");
    if (b->expires_ms) l.integer("expires_ms", *b->expires_ms);
    if (b->max_cost) l.number("max_cost", *b->max_cost);
    if (b->max_depth) l.integer("max_depth", *b->max_depth);
    if (b->max_turns) l.integer("max_turns", *b->max_turns);
    l.close();
  }
  r.text("msg", f.id.to_string());
  r.text("node", node_name);
  r.text("outcome", transport::to_string(f.outcome));
  if (b && b->parent) r.text("parent", b->parent->to_string());
  if (!f.payload.empty()) {
    if (config.audit_payloads) {
      r.raw("payload", decode_json(f.payload, Json())
                           .value_or(Json("(undecodable)"))
                           .dump(-1, ' ', false, Json::error_handler_t::replace));
    } else {
      r.text("payload_sha256",
             audit_digest(std::string_view(reinterpret_cast<const char*>(f.payload.data()), f.payload.size())));
    }
  }
  r.text("priority", transport::to_string(f.priority));
  if (b) {
    r.number("spent", b->spent);
    if (!b->subject.empty()) r.text("subject", b->subject);
    r.text("thread", b->id.to_string());
  }
  r.text("to", f.to);
  if (!f.to_role.empty()) r.text("to_role", f.to_role);
  if (f.took_ms) r.integer("took_ms", *f.took_ms);
  if (b) r.integer("turn", b->turn);
  r.close();
}

ThreadLimits MeshCore::thread_defaults() const {
  ThreadLimits l;
  if (config.thread_max_turns > 0) l.max_turns = config.thread_max_turns;
  if (config.thread_ttl.count() > 0) l.ttl = config.thread_ttl;
  if (config.thread_max_cost > 0) l.max_cost = config.thread_max_cost;
  if (config.thread_max_depth > 0) l.max_depth = config.thread_max_depth;
  return l;
}

bool MeshCore::authority_only(std::string_view agent) const {
  if (authority_only_count.load(std::memory_order_acquire) == 0) return false;
  std::shared_lock lock(authority_mu);
  return authority_only_agents.find(agent) != authority_only_agents.end();
}

void MeshCore::set_authority_only(const std::string& agent, bool on) {
  std::unique_lock lock(authority_mu);
  if (on) {
    authority_only_agents.insert(agent);
  } else {
    authority_only_agents.erase(agent);
  }
  authority_only_count.store(authority_only_agents.size(), std::memory_order_release);
}

ErrorCode MeshCore::stamp_thread(std::string_view self, std::string_view self_role, TargetView target,
                                 const SendOptions& o, bool request, transport::OutMessage& m, SentRequest* sent) {
  if (!options.conversations) {
    m.priority = o.priority;
    return ErrorCode::None;
  }
  static const std::shared_ptr<Handling> kNone;
  const std::shared_ptr<Handling>& current = current_handling();
  const std::shared_ptr<Handling>& h = current && current->mesh == instance ? current : kNone;
  const std::int64_t now = unix_ms();
  if (o.subject.size() > kMaxSubjectBytes) {
    throw std::invalid_argument("a thread's subject is at most " + std::to_string(kMaxSubjectBytes) + " bytes");
  }
  if (o.message_class == MessageClass::Authority) {
    // An answer, a status or a question is never turned into an order on
    // its way through: whoever handles an advisory message speaks
    // advisory, in that thread or any other.
    if (h && h->block.message_class == MessageClass::Advisory) {
      stats.authority_refused.fetch_add(1);
      return ErrorCode::PermissionDenied;
    }
    if (!may_send(self, self_role, target, PolicyAction::Authority)) return ErrorCode::PermissionDenied;
  }
  const bool local = m.to.node.empty() || m.to.node == node_name;
  // A same-node receiver takes the block as stamped: it is built in the
  // body it travels in rather than moved there (a few hundred bytes).
  auto* body = local ? decoded_body(m.local.get()) : nullptr;
  ThreadBlock own;  // for another node: encoded into the message below
  if (body) {
    if (body->stamped) body->block = ThreadBlock{};  // stamped again: afresh, as the first time
    body->stamped = true;
  }
  ThreadBlock& b = body ? body->block : own;
  bool opens = false;
  if (o.thread) {
    b.id = *o.thread;
    b.depth = 1;
  } else if (h && !o.new_thread) {
    b.id = h->block.id;
    b.depth = h->block.depth + (request ? 1 : 0);
    if (request && h->request) b.lineage = h->block.lineage;
  } else {
    opens = true;
    const transport::MessageId fresh = ids.next();
    b.id = ThreadId{fresh.hi, fresh.lo};
    if (h) b.parent = h->block.id;
    b.origin_agent = std::string(self);
    b.origin_node = node_name;
    b.subject = o.subject;
    b.depth = 1;
    apply(b, thread_defaults(), now);
  }
  apply(b, o.limits, now);
  if (request) {
    if (b.lineage.size() >= kMaxLineage) return ErrorCode::BudgetExceeded;
    b.lineage.push_back(lineage_entry(self, node_name));
  }
  b.message_class = o.message_class;
  if (m.id.empty()) m.id = ids.next();  // named here, for the audit trail
  Refusal why = Refusal::None;
  {
    // Only a request's path is checked against its target (Loop).
    const std::string path_entry = local && request ? lineage_entry(target.agent_id, node_name) : std::string();
    std::lock_guard lock(threads_mu);
    if (local) {
      // Its receiver is here: stamped and admitted in one.
      const std::optional<Refusal> admitted = threads.stamp_and_admit(b, opens, path_entry, request, now);
      if (!admitted) return ErrorCode::Expired;
      why = *admitted;
    } else if (!threads.stamp(b, opens, now)) {
      return ErrorCode::Expired;
    }
  }
  ErrorCode refused = to_error(why);
  if (refused == ErrorCode::None && local && b.message_class == MessageClass::Advisory &&
      authority_only(target.agent_id)) {
    stats.authority_refused.fetch_add(1);
    refused = ErrorCode::PermissionDenied;
  }
  if (audit) {
    const std::string from = lineage_entry(self, node_name);
    const std::string to = lineage_entry(target.agent_id, target.node);
    AuditFacts f{.event = refused != ErrorCode::None ? "refused" : "sent",
                 .kind = request ? "request" : "notify",
                 .thread = &b,
                 .id = m.id,
                 .from = from,
                 .to = to,
                 .to_role = target.role,
                 .priority = o.priority,
                 .outcome = refused,
                 .payload = m.payload};
    audit_message(f);
    if (local && refused == ErrorCode::None) {
      f.event = "received";  // this node is its receiver too
      audit_message(f);
    }
  }
  if (refused != ErrorCode::None) return refused;
  m.priority = o.priority;
  m.created_ms = now;  // the envelope's time: one clock reading per send
  if (sent) {
    sent->thread = b.id;
    sent->opened = opens;
    sent->parent = h;
    sent->sent_ms = now;
    sent->id = m.id;
    sent->turn = b.turn;
    sent->depth = b.depth;
    sent->message_class = b.message_class;
    sent->priority = o.priority;
    if (audit) {
      sent->from = lineage_entry(self, node_name);
      sent->to = lineage_entry(target.agent_id, target.node);
    }
  }
  if (!body) m.thread = encode_thread_block(b);
  return ErrorCode::None;
}

ErrorCode MeshCore::admit_thread(const transport::EnvelopeView& v, std::string_view node) {
  const bool request = v.type == transport::MessageType::Request;
  if (!options.conversations || (!request && v.type != transport::MessageType::Notify)) return ErrorCode::None;
  const std::int64_t now = unix_ms();
  ThreadBlock b;
  if (v.thread.empty()) {
    b = implicit_block(*this, v.id, v.sender_agent, node, now);
  } else {
    std::string why;
    auto decoded = decode_thread_block(v.thread, &why);
    if (!decoded) {
      stats.messages_malformed.fetch_add(1);
      spdlog::debug("{}: refused a {} from {}: its thread block is malformed: {}", node_name,
                    transport::to_string(v.type), escape_text(node), why);
      return ErrorCode::Malformed;
    }
    b = std::move(*decoded);
  }
  ErrorCode outcome = ErrorCode::None;
  if (b.message_class == MessageClass::Authority &&
      !may_receive(node, v.sender_agent, v.target, PolicyAction::Authority)) {
    outcome = ErrorCode::PermissionDenied;
  } else if (b.message_class == MessageClass::Advisory && authority_only(v.target)) {
    stats.authority_refused.fetch_add(1);
    outcome = ErrorCode::PermissionDenied;
  } else {
    std::lock_guard lock(threads_mu);
    outcome = to_error(threads.admit(b, request ? lineage_entry(v.target, node_name) : std::string(), request, now));
  }
  if (audit) {
    const std::string from = lineage_entry(v.sender_agent, node);
    const std::string to = lineage_entry(v.target, node_name);
    audit_message(AuditFacts{.event = outcome == ErrorCode::None ? "received" : "refused",
                             .kind = request ? "request" : "notify",
                             .thread = &b,
                             .id = v.id,
                             .from = from,
                             .to = to,
                             .priority = v.priority,
                             .outcome = outcome,
                             .payload = v.payload});
  }
  return outcome;
}

void MeshCore::fill_handling(Handling& h, const transport::Envelope& env, ThreadBlock* given) {
  h.mesh = instance;
  // The clock is read only for what needs it: a block made here, and the
  // audit trail's handling time. A same-node message without audit needs
  // neither, and a clock reading is a good part of its hop in a VM.
  std::int64_t now = 0;
  const auto now_ms = [&now] { return now != 0 ? now : (now = unix_ms()); };
  // Straight into the handling: a block is a few hundred bytes with
  // strings in it, and a same-node one was moved four times on its way.
  // A block decoded is held only where one is decoded: an empty optional
  // of one is cleared byte by byte (a few hundred) all the same.
  ThreadBlock& b = h.block;
  bool have = false;
  if (given) {
    b = std::move(*given);
    have = true;
  } else if (!env.thread.empty()) {
    if (auto decoded = decode_thread_block(env.thread)) {
      b = std::move(*decoded);
      have = true;
    }
  }
  if (!have) b = implicit_block(*this, env.id, env.sender_agent, env.sender_node, now_ms());
  {
    std::lock_guard lock(threads_mu);
    threads.inform(b);
  }
  h.request = env.type == transport::MessageType::Request;
  if (audit) {
    h.self = lineage_entry(env.target, node_name);  // the audit's name of the handler
    h.received_ms = now_ms();
  }
  std::int64_t deadline = h.request ? env.deadline_ms : 0;
  if (b.expires_ms && (deadline == 0 || *b.expires_ms < deadline)) deadline = *b.expires_ms;
  h.deadline_ms = deadline;
}

std::vector<std::uint8_t> MeshCore::response_thread(const IncomingMessage& incoming,
                                                    std::span<const std::uint8_t> payload, ErrorCode outcome) {
  if (!incoming.handling) return {};
  const Handling& h = *incoming.handling;
  const std::int64_t now = unix_ms();
  ThreadBlock b;
  {
    std::lock_guard lock(threads_mu);
    b = threads.response_block(h.block, h.cost(), now);
  }
  audit_handled(incoming, "answered", outcome, payload);
  return encode_thread_block(b);
}

void MeshCore::audit_handled(const IncomingMessage& m, std::string_view event, ErrorCode outcome,
                             std::span<const std::uint8_t> payload) {
  if (!audit || !m.handling || !m.handle) return;
  const Handling& h = *m.handling;
  const auto& env = m.handle->envelope;
  const std::string to = lineage_entry(env.sender_agent, env.sender_node.empty() ? node_name : env.sender_node);
  const bool answer = event == "answered";
  audit_message(AuditFacts{.event = event,
                           .kind = answer ? "response" : (h.request ? "request" : "notify"),
                           .thread = &h.block,
                           .id = env.id,
                           .from = h.self,
                           .to = to,
                           .priority = env.priority,
                           .outcome = outcome,
                           .cost = h.cost(),
                           .payload = payload,
                           .took_ms = unix_ms() - h.received_ms});
}

void MeshCore::take_answer_thread(const transport::Envelope& env, Response& r) {
  if (env.thread.empty() || !options.conversations) return;
  auto b = decode_thread_block(env.thread);
  if (!b) return;  // an answer's block only informs: a broken one is ignored
  r.thread = b->id;
  r.cost = b->cost;
  r.message_class = b->message_class;
  std::lock_guard lock(threads_mu);
  threads.on_response(*b, unix_ms(), /*add_cost=*/env.sender_node != node_name);
}

void MeshCore::on_answer(const SentRequest& sent, const RequestOutcome& out) {
  if (sent.thread.empty()) return;
  if (out.response && sent.parent) sent.parent->add_cost(out.response->cost);
  if (audit) {
    ThreadBlock b;
    b.id = sent.thread;
    b.turn = sent.turn;
    b.depth = sent.depth;
    b.message_class = out.response ? out.response->message_class : sent.message_class;
    audit_message(AuditFacts{.event = "answer",
                             .kind = "response",
                             .thread = &b,
                             .id = sent.id,
                             .from = sent.to,
                             .to = sent.from,
                             .priority = sent.priority,
                             .outcome = out.error,
                             .cost = out.response ? std::optional<double>(out.response->cost) : std::nullopt,
                             .took_ms = unix_ms() - sent.sent_ms});
  }
  const Refusal why = to_refusal(out.error);
  std::lock_guard lock(threads_mu);
  if (why != Refusal::None) {
    threads.note_refusal(sent.thread, why, unix_ms());
  } else if (sent.opened) {
    threads.close(sent.thread, unix_ms());
  }
}

std::vector<ThreadRecord> MeshCore::thread_list() {
  std::lock_guard lock(threads_mu);
  threads.expire(unix_ms());
  return threads.list();
}

std::optional<ThreadRecord> MeshCore::thread_record(const ThreadId& id) {
  std::lock_guard lock(threads_mu);
  threads.expire(unix_ms());
  const ThreadRecord* r = threads.find(id);
  return r ? std::optional<ThreadRecord>(*r) : std::nullopt;
}

ThreadTableStats MeshCore::thread_stats() {
  std::lock_guard lock(threads_mu);
  threads.expire(unix_ms());
  return threads.stats();
}

}  // namespace mesh::detail

namespace mesh {

namespace {
const ThreadBlock kNoThread{};
}

const ThreadBlock& IncomingMessage::thread() const { return handling ? handling->block : kNoThread; }

MessageClass IncomingMessage::message_class() const {
  return handling ? handling->block.message_class : MessageClass::Advisory;
}

std::optional<std::chrono::system_clock::time_point> IncomingMessage::deadline() const {
  if (!handling || handling->deadline_ms == 0) return std::nullopt;
  return std::chrono::system_clock::time_point(std::chrono::milliseconds(handling->deadline_ms));
}

bool IncomingMessage::past_deadline() const {
  const auto d = deadline();
  return d && std::chrono::system_clock::now() > *d;
}

void IncomingMessage::report_cost(double amount) const {
  if (handling) handling->add_cost(amount);
}

}  // namespace mesh
