// The envelope's vocabulary outside the codec: message ids as hex text,
// the names of the enums, and turning a decoded view into an owned
// Envelope.
#include "mesh/transport/envelope.hpp"

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace mesh::transport {

namespace {

constexpr char kHexDigits[] = "0123456789abcdef";

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// A byte at a time, lowest first, from a table of the 256 digit pairs:
// every received message gets its id as text, so this is on each hop.
void put_hex(char* out, std::uint64_t v) {
  static constexpr auto kPairs = [] {
    std::array<char, 512> t{};
    for (std::size_t b = 0; b < 256; ++b) {
      t[2 * b] = kHexDigits[b >> 4];
      t[2 * b + 1] = kHexDigits[b & 0xfu];
    }
    return t;
  }();
  for (std::size_t i = 8; i-- > 0; v >>= 8) {
    const std::size_t b = v & 0xffu;
    out[2 * i] = kPairs[2 * b];
    out[2 * i + 1] = kPairs[2 * b + 1];
  }
}

}  // namespace

// ---------------------------------------------------------------- MessageId

std::string MessageId::to_string() const {
  std::string s;
  write_to(s);
  return s;
}

void MessageId::write_to(std::string& out) const {
  out.resize(32);
  put_hex(out.data(), hi);
  put_hex(out.data() + 16, lo);
}

std::optional<MessageId> MessageId::parse(std::string_view hex) {
  if (hex.size() != 32) return std::nullopt;
  MessageId id;
  for (std::size_t i = 0; i < 32; ++i) {
    const int d = hex_value(hex[i]);
    if (d < 0) return std::nullopt;
    std::uint64_t& half = i < 16 ? id.hi : id.lo;
    half = (half << 4) | static_cast<std::uint64_t>(d);
  }
  return id;
}

// ---------------------------------------------------------------- names

std::string_view to_string(MessageType t) {
  switch (t) {
    case MessageType::Notify: return "notify";
    case MessageType::Request: return "request";
    case MessageType::Response: return "response";
    case MessageType::Error: return "error";
    case MessageType::Control: return "control";
  }
  return "unknown";
}

std::string_view to_string(Priority p) {
  switch (p) {
    case Priority::Low: return "low";
    case Priority::Normal: return "normal";
    case Priority::Urgent: return "urgent";
    case Priority::Critical: return "critical";
  }
  return "unknown";
}

std::string_view to_string(ErrorCode e) {
  switch (e) {
    case ErrorCode::None: return "none";
    case ErrorCode::Timeout: return "timeout";
    case ErrorCode::PeerDead: return "peer_dead";
    case ErrorCode::PeerUnknown: return "peer_unknown";
    case ErrorCode::PeerUnreachable: return "peer_unreachable";
    case ErrorCode::MailboxFull: return "mailbox_full";
    case ErrorCode::Rejected: return "rejected";
    case ErrorCode::TargetUnknown: return "target_unknown";
    case ErrorCode::Malformed: return "malformed";
    case ErrorCode::Oversized: return "oversized";
    case ErrorCode::BadVersion: return "bad_version";
    case ErrorCode::Shutdown: return "shutdown";
    case ErrorCode::Unauthenticated: return "unauthenticated";
    case ErrorCode::PermissionDenied: return "permission_denied";
    case ErrorCode::TurnLimit: return "turn_limit";
    case ErrorCode::Expired: return "expired";
    case ErrorCode::BudgetExceeded: return "budget_exceeded";
    case ErrorCode::Loop: return "loop";
  }
  return "unknown";
}

std::string_view to_string(DecodeError e) {
  switch (e) {
    case DecodeError::None: return "none";
    case DecodeError::Malformed: return "malformed";
    case DecodeError::Oversized: return "oversized";
    case DecodeError::BadVersion: return "bad_version";
  }
  return "unknown";
}

// ---------------------------------------------------------------- EnvelopeView

Envelope EnvelopeView::to_owned() const {
  Envelope e;
  e.id = id;
  e.type = type;
  e.priority = priority;
  e.correlation = correlation;
  e.sender_agent.assign(sender_agent);
  e.sender_node.assign(sender_node);
  e.target.assign(target);
  e.created_ms = created_ms;
  e.deadline_ms = deadline_ms;
  e.error = error;
  e.context.assign(context.begin(), context.end());
  e.payload.assign(payload.begin(), payload.end());
  e.flags = flags;
  e.thread.assign(thread.begin(), thread.end());
  return e;
}

}  // namespace mesh::transport
