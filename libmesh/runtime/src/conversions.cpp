// Between the transport's frames and the facade's messages: payloads and
// contexts as MessagePack, requests, responses and outcomes.
#include "mesh_core.hpp"

namespace mesh::detail {

std::vector<std::uint8_t> MeshCore::encode_context(const Json& ctx) const {
  if (ctx.is_null()) return {};
  if (!ctx.is_object()) throw std::invalid_argument("a message context must be a JSON object");
  if (ctx.empty()) return {};
  return encode_json(ctx);
}

std::optional<IncomingMessage> MeshCore::to_incoming(transport::Incoming&& in) {
  std::optional<IncomingMessage> out(std::in_place);
  if (!to_incoming(std::move(in), *out)) out.reset();
  return out;
}

// No std::optional here, of the message or of a block: GCC value-
// initializes both, clearing a few hundred bytes each (rep stos, slow to
// start on this hardware) before the members are set anyway.
bool MeshCore::to_incoming(transport::Incoming&& in, IncomingMessage& m) {
  const auto& env = in.envelope;
  const bool request = env.type == transport::MessageType::Request;
  std::optional<Json> data;
  std::optional<Json> ctx;
  // The thread block a same-node sender stamped: in the body, moved from
  // by fill_handling (so the body is dropped only after that), or a copy.
  std::unique_ptr<ThreadBlock> copied;
  ThreadBlock* block = nullptr;
  bool no_context = false;  // a same-node sender gave none: the message's own {} stays
  if (auto* body = decoded_body(in.local.get())) {
    // From this node: what the sender had, moved when nobody else holds
    // it (a broadcast's copies share one).
    if (in.local.use_count() == 1) {
      data = std::move(body->data);
      ctx = std::move(body->context);
      block = body->stamped_block();
    } else {
      data = body->data;
      ctx = body->context;
      if (body->stamped) {
        copied = std::make_unique<ThreadBlock>(body->block);
        block = copied.get();
      }
    }
    no_context = ctx->is_null();
  } else {
    data = decode_json(env.payload, Json());
    ctx = decode_json(env.context, Json::object());
  }
  if ((!request && env.type != transport::MessageType::Notify) || !data || !ctx ||
      !(no_context || ctx->is_object())) {
    in.local.reset();
    stats.messages_malformed.fetch_add(1);
    if (request) {
      if (auto t = get_transport()) t->respond_error(in, transport::ErrorCode::Malformed);
    }
    return false;
  }
  // Every field is set: `m` may be a message handled before, whose
  // strings keep their room (AgentSlot::pump reuses them).
  env.id.write_to(m.id);
  m.sender = env.sender_agent;
  m.sender_node = env.sender_node;
  m.target = env.target;
  m.type = request ? MessageKind::Request : MessageKind::Notify;
  m.data = std::move(*data);
  if (!no_context) {
    m.context = std::move(*ctx);
  } else if (!m.context.is_object() || !m.context.empty()) {
    m.context = Json::object();
  }
  if (request) {
    m.correlation_id = m.id;
  } else {
    m.correlation_id.clear();
  }
  m.timestamp_ms = env.created_ms;
  m.priority = env.priority;
  if (!options.conversations) {
    in.local.reset();  // the handle does not keep the sender's body
    m.handling.reset();
    m.handle = std::make_shared<const transport::Incoming>(std::move(in));
    return true;
  }
  if (request) {
    // Apart: a request's handle holds its reply route, which must go when
    // the last copy of the message does, not when its handling does (a
    // child request's SentRequest or receive()'s thread keep that).
    auto h = std::make_shared<Handling>();
    fill_handling(*h, env, block);
    m.handling = std::move(h);
    in.local.reset();
    m.handle = std::make_shared<const transport::Incoming>(std::move(in));
    return true;
  }
  // A notify's handling and handle in one allocation: the handle holds
  // only the envelope, which may as well live as long as either.
  struct Both {
    // User-provided: make_shared value-initializes, which for an implicit
    // constructor clears the whole block (600 bytes) first.
    Both() {}
    Handling handling;
    transport::Incoming incoming;
  };
  auto both = std::make_shared<Both>();
  fill_handling(both->handling, env, block);
  in.local.reset();
  both->incoming = std::move(in);
  m.handling = std::shared_ptr<Handling>(both, &both->handling);
  const transport::Incoming* incoming = &both->incoming;
  m.handle = std::shared_ptr<const transport::Incoming>(std::move(both), incoming);
  return true;
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
  take_answer_thread(env, r);
  return r;
}

RequestOutcome MeshCore::to_outcome(transport::Reply&& reply, const SentRequest* sent) {
  RequestOutcome out;
  if (!reply.ok()) {
    out.error = reply.error;
  } else {
    out.response = to_response(reply.envelope);
    if (!out.response) out.error = transport::ErrorCode::Malformed;
  }
  if (sent) on_answer(*sent, out);
  return out;
}

}  // namespace mesh::detail
