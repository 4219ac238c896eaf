// One-way sends: notify (same-node straight into the inbox, otherwise
// encoded here and sent directly or queued for the transport thread),
// broadcast, and the raw frames tests send.
#include "transport_impl.hpp"

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "command_queue.hpp"
#include "core.hpp"
#include "mesh/transport/envelope.hpp"
#include "out_envelope.hpp"
#include "peer_shared.hpp"

namespace mesh::transport {

using detail::Core;
using detail::make_envelope;
using detail::PeerShared;

namespace {

// A per-address id for a broadcast with a caller-chosen id: resending the
// broadcast under the same id then repeats the same ids per address (and
// is deduplicated), while two targets on one node do not collide.
MessageId derive_id(const MessageId& base, const Address& a) {
  std::uint64_t h = 1469598103934665603ull;  // FNV-1a
  auto mix = [&h](std::string_view s) {
    for (unsigned char ch : s) {
      h ^= ch;
      h *= 1099511628211ull;
    }
  };
  mix(a.node);
  mix(std::string_view("\0", 1));
  mix(a.target);
  return MessageId{base.hi ^ h, base.lo};
}

}  // namespace

ErrorCode Transport::notify(OutMessage message) {
  Core& core = *impl_->core;
  impl_->tick();
  if (core.stopping.load()) return ErrorCode::Shutdown;
  if (core.is_local(message.to.node)) {
    auto inbox = core.find_inbox(message.to.target);
    if (!inbox) return ErrorCode::TargetUnknown;
    // Member by member: an Incoming{...} clears all its 300 bytes first.
    Incoming in;
    in.envelope = make_envelope(core, message, MessageType::Notify, 0);
    in.local = std::move(message.local);
    return inbox->push(std::move(in));
  }
  std::shared_ptr<PeerShared> peer;
  if (const ErrorCode e = impl_->reserve(message.to.node, peer); e != ErrorCode::None) return e;
  Envelope env = make_envelope(core, message, MessageType::Notify, 0);
  detail::OutFrame frame;
  encode(env, frame.bytes);
  if (frame.bytes.size() > core.options.max_frame_bytes) {
    impl_->unreserve(*peer);
    return ErrorCode::Oversized;
  }
  if (const ErrorCode e = impl_->charge(*peer, frame.bytes.size()); e != ErrorCode::None) return e;
  if (impl_->send_direct(*peer, frame.bytes)) {
    impl_->uncharge(*peer, frame.bytes.size());
    impl_->unreserve(*peer);
    return ErrorCode::None;
  }
  frame.type = MessageType::Notify;
  frame.priority = env.priority;
  frame.id = env.id;
  frame.target = std::move(env.target);
  frame.sender_agent = std::move(env.sender_agent);
  core.commands.push(detail::CmdSend{std::move(peer), std::move(frame)});
  return ErrorCode::None;
}

std::vector<SendOutcome> Transport::broadcast(const std::vector<Address>& to, const OutMessage& message) {
  std::vector<SendOutcome> out;
  out.reserve(to.size());
  for (const auto& address : to) {
    OutMessage copy = message;
    copy.to = address;
    copy.flags |= kFlagBroadcast;  // a receiver's policy tells copies from notifies
    if (!message.id.empty()) copy.id = derive_id(message.id, address);
    out.push_back(SendOutcome{address, notify(std::move(copy))});
  }
  return out;
}

ErrorCode Transport::send_raw_for_test(const std::string& peer_name, std::vector<std::uint8_t> frame) {
  Core& core = *impl_->core;
  if (core.stopping.load()) return ErrorCode::Shutdown;
  std::shared_ptr<PeerShared> peer;
  if (const ErrorCode e = impl_->reserve(peer_name, peer); e != ErrorCode::None) return e;
  if (const ErrorCode e = impl_->charge(*peer, frame.size()); e != ErrorCode::None) return e;
  detail::OutFrame out;
  out.bytes = std::move(frame);
  out.type = MessageType::Control;
  out.raw = true;
  core.commands.push(detail::CmdSend{std::move(peer), std::move(out)});
  return ErrorCode::None;
}

}  // namespace mesh::transport
