#include "dedup_window.hpp"

#include <algorithm>
#include <random>

namespace mesh::transport {

namespace {

// The finaliser of MurmurHash3: a bijection on 64 bits in which every
// input bit changes about half of the output bits.
std::uint64_t avalanche(std::uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ull;
  x ^= x >> 33;
  return x;
}

std::uint64_t random_seed() {
  std::random_device rd;
  return (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
}

constexpr std::size_t kFirstTableSlots = 64;
constexpr std::size_t kFirstRingEntries = 64;

}  // namespace

DedupWindow::DedupWindow(std::size_t capacity, std::int64_t window_ms, std::uint64_t seed)
    // Ring positions are stored in 32 bits.
    : capacity_(std::min<std::size_t>(capacity, std::size_t{1} << 31)), window_ms_(window_ms) {
  if (seed == 0) seed = random_seed();
  seed_[0] = avalanche(seed);
  seed_[1] = avalanche(seed_[0] ^ 0x9e3779b97f4a7c15ull);
}

// Keyed: both halves of the id are mixed with a secret before they are
// combined, and the first goes through a bijection first, so that no
// relation between ids a sender can choose survives into the hash.
std::uint32_t DedupWindow::hash(const MessageId& id, std::uint32_t source) const {
  const std::uint64_t h =
      avalanche(avalanche(id.hi ^ seed_[0]) + (id.lo ^ seed_[1]) + source * 0x9e3779b97f4a7c15ull);
  return static_cast<std::uint32_t>(h ^ (h >> 32));
}

std::size_t DedupWindow::probe(const MessageId& id, std::uint32_t source, std::uint32_t h) const {
  for (std::size_t i = h & mask_;; i = (i + 1) & mask_) {
    const Slot& s = table_[i];
    if (s.at == 0) return i;
    if (s.hash == h) {
      const Seen& seen = ring_[s.at - 1];
      if (seen.source == source && seen.id == id) return i;
    }
  }
}

std::size_t DedupWindow::slot_of(std::size_t at) const {
  const std::uint32_t h = ring_[at].hash;
  for (std::size_t i = h & mask_;; i = (i + 1) & mask_) {
    if (table_[i].at == at + 1) return i;
  }
}

// Puts the id at ring position `at`, known to be absent, in the table.
void DedupWindow::place(std::size_t at) {
  const std::uint32_t h = ring_[at].hash;
  std::size_t i = h & mask_;
  while (table_[i].at != 0) i = (i + 1) & mask_;
  table_[i] = Slot{static_cast<std::uint32_t>(at + 1), h};
}

// Linear probing without tombstones: the entries after the hole that
// could live in it move back, so every entry stays reachable from its home
// slot without crossing an empty one.
void DedupWindow::erase_slot(std::size_t hole) {
  for (std::size_t j = (hole + 1) & mask_; table_[j].at != 0; j = (j + 1) & mask_) {
    const std::size_t home = table_[j].hash & mask_;
    // Moves when its home is not after the hole (cyclically, up to j).
    if (((j - home) & mask_) >= ((j - hole) & mask_)) {
      table_[hole] = table_[j];
      hole = j;
    }
  }
  table_[hole].at = 0;
}

void DedupWindow::forget_oldest() {
  erase_slot(slot_of(head_));
  release(ring_[head_].source);
  if (++head_ == ring_.size()) head_ = 0;
  --count_;
  // The next one to go is known: start fetching its slot now.
  if (count_ != 0) __builtin_prefetch(&table_[ring_[head_].hash & mask_]);
}

// Both make the table anew from the ring: growing the ring moves its ids,
// and with them what the slots point at.
void DedupWindow::grow_table() {
  table_.assign(table_.empty() ? kFirstTableSlots : table_.size() * 2, Slot{});
  mask_ = table_.size() - 1;
  for (std::size_t k = 0; k < count_; ++k) place((head_ + k) % ring_.size());
}

void DedupWindow::grow_ring() {
  std::vector<Seen> bigger;
  bigger.reserve(std::min(capacity_, std::max(kFirstRingEntries, ring_.size() * 2)));
  for (std::size_t k = 0; k < count_; ++k) bigger.push_back(ring_[(head_ + k) % ring_.size()]);
  bigger.resize(bigger.capacity());
  ring_ = std::move(bigger);
  head_ = 0;
  std::fill(table_.begin(), table_.end(), Slot{});
  for (std::size_t k = 0; k < count_; ++k) place(k);
}

std::uint32_t DedupWindow::number_of(std::string_view source) {
  if (last_source_ != 0 && sources_[last_source_].name == source) return last_source_;
  if (const auto it = source_numbers_.find(source); it != source_numbers_.end()) {
    return last_source_ = it->second;
  }
  std::uint32_t n = 0;
  if (!free_numbers_.empty()) {
    n = free_numbers_.back();
    free_numbers_.pop_back();
  } else {
    n = static_cast<std::uint32_t>(sources_.size());
    sources_.emplace_back();
  }
  sources_[n].name.assign(source);
  sources_[n].ids = 0;
  source_numbers_.emplace(sources_[n].name, n);
  return last_source_ = n;
}

void DedupWindow::release(std::uint32_t source) {
  Source& s = sources_[source];
  if (--s.ids != 0) return;
  source_numbers_.erase(s.name);
  s.name.clear();
  free_numbers_.push_back(source);
  if (last_source_ == source) last_source_ = 0;
}

bool DedupWindow::insert(std::string_view source, const MessageId& id, std::int64_t now_ms) {
  if (capacity_ == 0) return true;
  // Ids are in first-seen order and now_ms does not go backwards, so the
  // expired ones are the oldest.
  while (count_ != 0 && now_ms - ring_[head_].seen_ms >= window_ms_) forget_oldest();
  if (table_.empty()) grow_table();
  const std::uint32_t n = number_of(source);
  const std::uint32_t h = hash(id, n);
  if (table_[probe(id, n, h)].at != 0) return false;
  // Counted before the oldest goes, so that forgetting it cannot forget
  // this id's source as well.
  ++sources_[n].ids;
  if (count_ == capacity_) forget_oldest();
  if (count_ == ring_.size()) grow_ring();
  if ((count_ + 1) * 2 > table_.size()) grow_table();
  std::size_t tail = head_ + count_;
  if (tail >= ring_.size()) tail -= ring_.size();
  ring_[tail] = Seen{id, n, h, now_ms};
  // Placed anew: forgetting and growing may have moved the slot found.
  place(tail);
  ++count_;
  return true;
}

}  // namespace mesh::transport
