// Membership::Impl's join: resolve the seeds, hand their addresses to the
// core, and retry with exponential backoff (up to 30 s) until one join
// succeeds, then run the caller's on_first_join once; or until the
// attempts JoinRetry allows are spent, then tell its on_give_up.
#include <boost/asio/ip/tcp.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "driver.hpp"
#include "endpoint.hpp"

namespace mesh::swim {

namespace ip = asio::ip;
using boost::system::error_code;

namespace {

constexpr auto kJoinBackoffMax = std::chrono::seconds(30);

}  // namespace

void Membership::Impl::join(std::vector<std::string> seeds, std::function<void()> on_first_join, JoinRetry retry) {
  if (stopped_) return;
  ++join_gen_;
  join_seeds_ = std::move(seeds);
  join_cb_ = std::move(on_first_join);
  join_pending_.clear();
  join_failures_.clear();
  join_backoff_ = std::min<Duration>(retry.first_wait, kJoinBackoffMax);
  join_retry_ = std::move(retry);
  join_attempts_ = 0;
  join_timer_.cancel();
  join_active_ = true;
  if (!node_->started()) {
    join_waiting_for_start_ = true;
    return;
  }
  join_attempt();
}

void Membership::Impl::join_attempt() {
  if (stopped_ || !join_active_) return;
  ++dstats_.join_attempts;
  ++join_attempts_;
  const std::uint64_t gen = join_gen_;
  struct Pending {
    std::size_t remaining = 0;
    std::vector<Address> addrs;
  };
  auto pending = std::make_shared<Pending>();
  pending->remaining = join_seeds_.size();
  auto one_done = [this, gen, pending]() {
    if (--pending->remaining == 0) join_resolved(gen, std::move(pending->addrs));
  };
  if (join_seeds_.empty()) {
    join_resolved(gen, {});
    return;
  }
  for (const auto& text : join_seeds_) {
    auto spec = detail::parse_seed(text, bound_port_);
    if (!spec) {
      spdlog::warn("swim {}: bad seed address '{}'", name_, text);
      one_done();
      continue;
    }
    error_code ec;
    const ip::address literal = ip::make_address(spec->host, ec);
    if (!ec) {
      pending->addrs.push_back(detail::to_address(literal, spec->port));
      one_done();
      continue;
    }
    auto resolver = std::make_shared<ip::tcp::resolver>(strand_);
    resolver->async_resolve(
        spec->host, std::to_string(spec->port),
        [self = shared_from_this(), resolver, pending, one_done, host = spec->host](
            const error_code& rec, const ip::tcp::resolver::results_type& results) {
          if (self->stopped_) return;
          if (rec) {
            spdlog::warn("swim {}: cannot resolve '{}': {}", self->name_, host, rec.message());
          } else {
            for (const auto& r : results)
              pending->addrs.push_back(detail::to_address(r.endpoint().address(), r.endpoint().port()));
          }
          one_done();
        });
  }
}

void Membership::Impl::join_resolved(std::uint64_t gen, std::vector<Address> addrs) {
  if (stopped_ || gen != join_gen_ || !join_active_) return;
  std::vector<Address> usable;
  for (const auto& a : addrs)
    if (reachable(a) && std::find(usable.begin(), usable.end(), a) == usable.end()) usable.push_back(a);
  if (usable.empty()) {
    join_attempt_failed("no usable seed address");
    return;
  }
  join_pending_ = usable;
  node_->join(now(), usable);
  pump();
}

void Membership::Impl::on_join_result(const JoinResult& r) {
  if (!join_active_) return;
  auto it = std::find(join_pending_.begin(), join_pending_.end(), r.seed);
  if (it == join_pending_.end()) return;  // from an earlier join() call
  join_pending_.erase(it);
  if (r.ok) {
    join_succeeded();
    return;
  }
  // The driver's words for it when it has them ("connect: Connection
  // refused"), the core's otherwise.
  std::string why = r.error;
  if (auto f = join_failures_.find(r.seed.to_string()); f != join_failures_.end()) {
    why = f->second;
    join_failures_.erase(f);
  }
  spdlog::debug("swim {}: join through {} failed: {}", name_, r.seed.to_string(), why);
  if (join_pending_.empty()) join_attempt_failed(r.seed.to_string() + ": " + why);
}

void Membership::Impl::join_attempt_failed(const std::string& why) {
  if (join_retry_.max_attempts > 0 && join_attempts_ >= join_retry_.max_attempts) {
    join_active_ = false;
    join_cb_ = nullptr;
    const std::string last = "gave up joining after " + std::to_string(join_attempts_) +
                             (join_attempts_ == 1 ? " attempt" : " attempts") + " (last: " + why + ")";
    spdlog::error("swim {}: {}", name_, last);
    auto give_up = std::move(join_retry_.on_give_up);
    join_retry_.on_give_up = nullptr;
    if (give_up) call_guarded("on_give_up", [&] { give_up(last); });
    return;
  }
  const Duration delay = join_backoff_;
  join_backoff_ = std::min<Duration>(join_backoff_ * 2, kJoinBackoffMax);
  spdlog::warn("swim {}: join failed ({}); retrying in {} ms", name_, why,
               std::chrono::duration_cast<std::chrono::milliseconds>(delay).count());
  const std::uint64_t gen = join_gen_;
  join_timer_.expires_after(delay);
  join_timer_.async_wait([self = shared_from_this(), gen](const error_code& ec) {
    if (ec || self->stopped_ || gen != self->join_gen_) return;
    self->join_attempt();
  });
}

void Membership::Impl::join_succeeded() {
  join_active_ = false;
  join_pending_.clear();
  join_failures_.clear();
  spdlog::info("swim {}: joined the cluster ({} members known)", name_, node_->num_members());
  // Serf broadcasts its join intent once memberlist has joined; by now we
  // have merged the seed's state and witnessed its clocks.
  broadcast_join_intent();
  auto cb = std::move(join_cb_);
  join_cb_ = nullptr;
  if (cb) call_guarded("on_first_join", cb);
}

}  // namespace mesh::swim
