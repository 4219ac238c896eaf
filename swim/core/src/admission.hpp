// Admission of previously unknown members: how fast gossip may grow the
// member list.
//
// Without a gossip key anyone who can send a UDP packet can announce
// members, 255 to a compound packet; memberlist adds every one of them. We
// let unknown members in through two token buckets, one for all unsolicited
// sources together and one per source address (hashed into a fixed table, so
// spoofed addresses cannot grow it; two sources that share a slot share a
// budget, which only makes the limit stricter). Members learned from a
// push/pull that we opened ourselves pass without tokens: we chose that peer,
// and a node joining a big cluster learns all of it from one such exchange.
// Time comes from the caller; nothing here allocates after construction.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>

#include "mesh/swim/types.hpp"

namespace mesh::swim {

// A token bucket: `burst` tokens at most, refilled at `rate` per second.
// Starts full.
class TokenBucket {
 public:
  TokenBucket() = default;
  TokenBucket(double rate, double burst) : rate_(rate), burst_(burst), tokens_(burst) {}

  // Whether a token is there at `now` (refills first; takes nothing).
  bool available(Time now) {
    refill(now);
    return tokens_ >= 1.0;
  }
  void take() { tokens_ -= 1.0; }

 private:
  void refill(Time now) {
    if (started_ && now > last_) {
      const double secs = std::chrono::duration<double>(now - last_).count();
      tokens_ = std::min(burst_, tokens_ + secs * rate_);
    }
    if (!started_ || now > last_) last_ = now;
    started_ = true;
  }
  double rate_ = 0;
  double burst_ = 0;
  double tokens_ = 0;
  Time last_{};
  bool started_ = false;
};

class Admission {
 public:
  static constexpr std::size_t kSourceSlots = 256;

  Admission(double total_rate, double total_burst, double source_rate, double source_burst)
      : total_(total_rate, total_burst) {
    sources_.fill(TokenBucket(source_rate, source_burst));
  }

  // Whether one more unknown member from `source` may be added at `now`;
  // takes the tokens when it may.
  bool admit(const Address& source, Time now) {
    TokenBucket& mine = sources_[slot(source)];
    if (!mine.available(now) || !total_.available(now)) return false;
    mine.take();
    total_.take();
    return true;
  }

 private:
  // By IP only: a sender picks its port freely.
  static std::size_t slot(const Address& a) {
    std::uint64_t h = 1469598103934665603ull;
    for (std::size_t i = 0; i < a.ip_len; ++i) h = (h ^ a.ip[i]) * 1099511628211ull;
    return static_cast<std::size_t>(h ^ (h >> 29)) % kSourceSlots;
  }
  TokenBucket total_;
  std::array<TokenBucket, kSourceSlots> sources_{};
};

}  // namespace mesh::swim
