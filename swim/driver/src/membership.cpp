// The public face of the driver: every call hops onto the strand (or runs
// inline when already there) and the state stays with the Impl.
#include "mesh/swim/membership.hpp"

#include <boost/asio/dispatch.hpp>

#include <stdexcept>

#include "driver.hpp"

namespace mesh::swim {

namespace {
MemberInfo info_of(const Member& m) {
  MemberInfo i;
  i.member = m;
  if (auto tags = decode_serf_tags(m.meta)) i.tags = std::move(*tags);
  return i;
}
}  // namespace

Membership::Membership(boost::asio::io_context& io, Config config, NetOptions net,
                       std::uint64_t seed)
    : impl_(std::make_shared<Impl>(io, std::move(config), std::move(net), seed)) {}

Membership::~Membership() { shutdown(); }

void Membership::start(const std::map<std::string, std::string>& tags) {
  Bytes meta = encode_serf_tags(tags);
  if (meta.size() > kMetaMaxSize)
    throw std::invalid_argument("encoded tags take " + std::to_string(meta.size()) +
                                " bytes; node meta is limited to 512");
  asio::dispatch(impl_->strand_, [impl = impl_, meta = std::move(meta)]() mutable {
    impl->start(std::move(meta));
  });
}

void Membership::join(std::vector<std::string> seeds, std::function<void()> on_first_join, JoinRetry retry) {
  asio::dispatch(impl_->strand_, [impl = impl_, seeds = std::move(seeds), cb = std::move(on_first_join),
                                  retry = std::move(retry)]() mutable {
    impl->join(std::move(seeds), std::move(cb), std::move(retry));
  });
}

bool Membership::leave(std::chrono::milliseconds timeout) {
  if (impl_->strand_.running_in_this_thread())
    throw std::logic_error("Membership::leave must not be called from the strand (an event callback)");
  if (impl_->io_.stopped()) {  // nothing runs the strand: nobody can be told
    shutdown();
    return false;
  }
  auto done = std::make_shared<std::promise<bool>>();
  auto fut = done->get_future();
  // The handler holds the only reference to the promise (then the leave
  // does, until it ends): see Impl::await.
  asio::post(impl_->strand_, [impl = impl_, timeout, done = std::move(done)]() mutable {
    impl->begin_leave(timeout, std::move(done));
  });
  // The strand enforces `timeout`; the margin only guards against an
  // io_context that stops running while we wait.
  const auto give_up = std::chrono::steady_clock::now() + timeout + std::chrono::seconds(2);
  if (!impl_->await(fut, give_up)) {
    shutdown();
    return false;
  }
  return fut.get();
}

void Membership::shutdown() {
  if (!impl_) return;
  impl_->sync([impl = impl_] { impl->close_all(); });
}

bool Membership::set_tags(const std::map<std::string, std::string>& tags) {
  Bytes meta = encode_serf_tags(tags);
  if (meta.size() > kMetaMaxSize) return false;
  return impl_->sync([impl = impl_, meta = std::move(meta)]() mutable {
    return impl->set_meta(std::move(meta));
  });
}

std::optional<std::string> Membership::change_keyring(KeyOp op, Bytes key) {
  return impl_->sync([impl = impl_, op, key = std::move(key)]() mutable -> std::optional<std::string> {
    Keyring& ring = impl->net_.keyring;
    if (!ring.enabled()) return std::string("gossip encryption is off on this node (no gossip key)");
    switch (op) {
      case KeyOp::Install: return ring.install(std::move(key));
      case KeyOp::Use: return ring.use(key);
      case KeyOp::Remove: return ring.remove(key);
    }
    return std::string("unknown keyring operation");
  });
}

Membership::ForceLeave Membership::force_leave(const std::string& name) {
  return impl_->sync([impl = impl_, name] {
    return impl->stopped_ || !impl->node_->started() ? ForceLeave::Unknown : impl->force_leave(name);
  });
}

std::vector<Bytes> Membership::keyring() const {
  return impl_->sync([impl = impl_] { return impl->net_.keyring.keys(); });
}

void Membership::on_event(EventHandler handler) {
  asio::dispatch(impl_->strand_, [impl = impl_, h = std::move(handler)]() mutable {
    if (!impl->stopped_) impl->handler_ = std::move(h);
  });
}

std::vector<MemberInfo> Membership::members() const {
  return impl_->sync([impl = impl_] {
    std::vector<MemberInfo> out;
    for (const auto& m : impl->node_->members()) out.push_back(info_of(m));
    return out;
  });
}

MemberInfo Membership::self() const {
  return impl_->sync([impl = impl_] {
    const Member* m = impl->node_->member(impl->name_);
    if (m != nullptr) return info_of(*m);
    // Not started yet: what we would announce.
    MemberInfo i;
    i.member.name = impl->name_;
    i.member.addr = impl->advertise_;
    i.member.vsn = impl->node_->config().vsn;
    return i;
  });
}

NodeStats Membership::node_stats() const {
  return impl_->sync([impl = impl_] { return impl->node_->stats(); });
}

DriverStats Membership::driver_stats() const {
  return impl_->sync([impl = impl_] {
    DriverStats s = impl->dstats_;
    s.stream_buffer_bytes = impl->stream_bytes_;
    return s;
  });
}

int Membership::health_score() const {
  return impl_->sync([impl = impl_] { return impl->node_->health_score(); });
}

const Address& Membership::advertise() const { return impl_->advertise_; }
std::uint16_t Membership::bound_port() const { return impl_->bound_port_; }
const std::string& Membership::name() const { return impl_->name_; }

}  // namespace mesh::swim
