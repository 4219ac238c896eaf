// Answering a request: the reply envelope, the quick handler, and the
// route a reply takes back to the requester.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "mesh/transport/envelope.hpp"
#include "mesh/transport/transport.hpp"
#include "pending_call.hpp"

namespace mesh::transport {
namespace detail {

struct Core;

// Envelope helpers used on both sides.
EnvelopeView view_of(const Envelope& e);
// The reply to `request` (a Response, or an Error when `error` != None):
// correlation = the request's id, target = its sender agent, sender agent
// = the inbox it was addressed to.
Envelope make_reply(Core& core, const EnvelopeView& request, ErrorCode error,
                    std::vector<std::uint8_t> payload, std::vector<std::uint8_t> context,
                    Priority priority, std::vector<std::uint8_t> thread = {});
// Runs a quick handler, containing whatever it throws (as Rejected).
ErrorCode run_quick(const QuickHandler& handler, const EnvelopeView& request,
                    std::vector<std::uint8_t>& payload);

}  // namespace detail

// Where a reply goes. Remote: the routing id at our ROUTER the request
// came in from, and the transport that owns that ROUTER. Same node: the
// waiting request itself.
struct ReplyRoute {
  std::atomic<bool> answered{false};
  std::string identity;
  std::weak_ptr<detail::Core> core;
  std::shared_ptr<detail::PendingCall> local;
};

}  // namespace mesh::transport
