// The owner's say on each notify and request from another node
// (TransportOptions::admit): admitted, refused with a code, or held until
// the owner knows more (Transport::readmit) or hold_timeout has passed.
#include "loop.hpp"

#include <algorithm>
#include <limits>
#include <string>

namespace mesh::transport::detail {

bool Loop::admitted(const EnvelopeView& v, std::span<const std::uint8_t> frame, const Origin& origin,
                    const Held* held) {
  if (!options_.admit) return true;
  const auto a = options_.admit(v, origin.node, held != nullptr);
  switch (a.verdict) {
    case TransportOptions::Admission::Admit:
      return true;
    case TransportOptions::Admission::Hold:
      if (hold(frame, origin, held ? held->since_ms : steady_now_ms())) return false;
      // No room to wait in: the sender may try again later.
      refuse(v, origin, ErrorCode::MailboxFull);
      return false;
    case TransportOptions::Admission::Refuse:
      refuse(v, origin, a.code == ErrorCode::None ? ErrorCode::Unauthenticated : a.code);
      return false;
  }
  return false;
}

void Loop::refuse(const EnvelopeView& v, const Origin& origin, ErrorCode code) {
  if (code == ErrorCode::Unauthenticated) {
    bump(core_->counters.frames_forged);
  } else if (code != ErrorCode::MailboxFull) {
    bump(core_->counters.frames_denied);
  }
  bump(core_->counters.refused[type_index(v.type)]);
  send_error(origin, v.id, v.target, v.sender_agent, code, v.type == MessageType::Request);
}

bool Loop::hold(std::span<const std::uint8_t> frame, const Origin& origin, std::int64_t since_ms) {
  auto& queue = held_[std::string(origin.node)];
  if (queue.size() >= kMaxHeldPerNode || held_count_ >= kMaxHeld || held_bytes_ + frame.size() > kMaxHeldBytes) {
    if (queue.empty()) held_.erase(std::string(origin.node));
    return false;
  }
  queue.push_back(Held{std::vector<std::uint8_t>(frame.begin(), frame.end()), std::string(origin.identity), since_ms});
  // A frame held again (readmit) keeps its first since_ms, so it may be
  // due before every other.
  next_held_ms_ = std::min(next_held_ms_, hold_ends(since_ms));
  ++held_count_;
  held_bytes_ += frame.size();
  bump(core_->counters.frames_held);
  bump(core_->counters.frames_holding);
  return true;
}

void Loop::on_readmit(CmdReadmit& c) {
  auto it = held_.find(c.node);
  if (it == held_.end()) return;
  std::deque<Held> queue = std::move(it->second);
  held_.erase(it);
  for (const Held& h : queue) {
    --held_count_;
    held_bytes_ -= h.bytes.size();
    drop(core_->counters.frames_holding);
  }
  // In their order of arrival; one still undecided is held again.
  for (const Held& h : queue) {
    const Origin origin{h.identity, c.node};
    handle_frame(h.bytes, &origin, nullptr, &h);
  }
  flush_deliveries();
}

void Loop::expire_held(const std::string& node, std::int64_t before_ms) {
  auto it = held_.find(node);
  if (it == held_.end()) return;
  auto& queue = it->second;
  while (!queue.empty() && queue.front().since_ms < before_ms) {
    Held h = std::move(queue.front());
    queue.pop_front();
    --held_count_;
    held_bytes_ -= h.bytes.size();
    drop(core_->counters.frames_holding);
    DecodeResult r = decode(h.bytes, std::numeric_limits<std::size_t>::max());
    if (r.ok()) refuse(r.view, Origin{h.identity, node}, ErrorCode::Unauthenticated);
  }
  if (queue.empty()) held_.erase(it);
}

void Loop::expire_held_all(std::int64_t now_ms) {
  next_held_ms_ = INT64_MAX;
  if (held_.empty()) return;
  const std::int64_t before = now_ms - static_cast<std::int64_t>(options_.hold_timeout.count());
  std::vector<std::string> nodes;
  for (const auto& [node, queue] : held_) {
    if (!queue.empty() && queue.front().since_ms < before) nodes.push_back(node);
  }
  for (const auto& node : nodes) expire_held(node, before);
  // Each queue is oldest first: its front is the next one due.
  for (const auto& [node, queue] : held_) {
    if (!queue.empty()) next_held_ms_ = std::min(next_held_ms_, hold_ends(queue.front().since_ms));
  }
}

}  // namespace mesh::transport::detail
