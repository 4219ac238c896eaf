// A node's record of its threads and the receiving side's checks
// (mesh/thread_table.hpp says how turns and cost are counted).
#include "mesh/thread_table.hpp"

#include <algorithm>

namespace mesh {

std::string_view to_string(Refusal r) {
  switch (r) {
    case Refusal::None: return "none";
    case Refusal::TurnLimit: return "turn_limit";
    case Refusal::Expired: return "expired";
    case Refusal::BudgetExceeded: return "budget_exceeded";
    case Refusal::Loop: return "loop";
  }
  return "unknown";
}

std::string_view to_string(ThreadState s) {
  switch (s) {
    case ThreadState::Open: return "open";
    case ThreadState::Closed: return "closed";
    case ThreadState::Expired: return "expired";
    case ThreadState::Refused: return "refused";
  }
  return "unknown";
}

namespace {

template <std::size_t N>
void observe(std::array<std::uint64_t, N + 1>& histogram, const std::array<double, N>& bounds, double v) {
  for (std::size_t i = 0; i < N; ++i) {
    if (v <= bounds[i]) ++histogram[i];
  }
  ++histogram[N];
}

}  // namespace

ThreadTable::ThreadTable(std::size_t capacity) : capacity_(std::max<std::size_t>(capacity, 1)) {}

ThreadRecord& ThreadTable::record_of(const ThreadBlock& b, std::int64_t now_ms) {
  auto it = records_.find(b.id);
  if (it == records_.end()) {
    if (records_.size() >= capacity_) make_room();
    ThreadRecord r;
    r.id = b.id;
    r.parent = b.parent;
    r.origin_agent = b.origin_agent;
    r.origin_node = b.origin_node;
    r.subject = b.subject;
    r.opened_ms = now_ms;
    r.max_turns = b.max_turns;
    r.expires_ms = b.expires_ms;
    r.max_cost = b.max_cost;
    r.max_depth = b.max_depth;
    it = records_.emplace(b.id, std::move(r)).first;
    ++stats_.opened;
  }
  it->second.last_ms = now_ms;
  return it->second;
}

void ThreadTable::tighten(ThreadRecord& r, const ThreadBlock& b) {
  tighten_limit(r.max_turns, b.max_turns);
  tighten_limit(r.expires_ms, b.expires_ms);
  tighten_limit(r.max_cost, b.max_cost);
  tighten_limit(r.max_depth, b.max_depth);
}

void ThreadTable::inform(ThreadBlock& b) const {
  const ThreadRecord* r = find(b.id);
  if (r == nullptr) return;
  tighten_limit(b.max_turns, r->max_turns);
  tighten_limit(b.expires_ms, r->expires_ms);
  tighten_limit(b.max_cost, r->max_cost);
  tighten_limit(b.max_depth, r->max_depth);
  b.spent = std::max(b.spent, r->spent);
}

Refusal ThreadTable::admit(ThreadBlock& b, std::string_view target, bool is_request, std::int64_t now_ms) {
  return admit_to(record_of(b, now_ms), b, target, is_request, now_ms);
}

std::optional<Refusal> ThreadTable::stamp_and_admit(ThreadBlock& b, bool opens, std::string_view target,
                                                    bool is_request, std::int64_t now_ms) {
  ThreadRecord* r = stamped(b, opens, now_ms, /*count_turn=*/false);
  if (r == nullptr) return std::nullopt;
  return admit_to(*r, b, target, is_request, now_ms);
}

Refusal ThreadTable::admit_to(ThreadRecord& r, ThreadBlock& b, std::string_view target, bool is_request,
                              std::int64_t now_ms) {
  tighten(r, b);
  const std::uint32_t turn = std::max(b.turn, r.turns == UINT32_MAX ? r.turns : r.turns + 1);
  const double spent = std::max(b.spent, r.spent);
  Refusal why = Refusal::None;
  if (r.expires_ms && now_ms > *r.expires_ms) {
    why = Refusal::Expired;
  } else if (r.max_turns && turn > *r.max_turns) {
    why = Refusal::TurnLimit;
  } else if (r.max_depth && b.depth > *r.max_depth) {
    why = Refusal::BudgetExceeded;
  } else if (r.max_cost && spent >= *r.max_cost) {
    why = Refusal::BudgetExceeded;
  } else if (is_request && std::find(b.lineage.begin(), b.lineage.end(), target) != b.lineage.end()) {
    why = Refusal::Loop;
  }
  if (why != Refusal::None) {
    ++r.refused;
    r.last_refusal = why;
    ++stats_.refusals[static_cast<std::size_t>(why)];
    if (why == Refusal::Expired) {
      finish(r, ThreadState::Expired);
    } else if (r.state == ThreadState::Open) {
      r.state = ThreadState::Refused;
    }
    return why;
  }
  r.turns = turn;
  r.spent = spent;
  r.max_depth_seen = std::max(r.max_depth_seen, b.depth);
  ++r.received;
  if (b.message_class == MessageClass::Authority) r.authority = true;
  b.turn = turn;
  b.spent = spent;
  b.max_turns = r.max_turns;
  b.expires_ms = r.expires_ms;
  b.max_cost = r.max_cost;
  b.max_depth = r.max_depth;
  return Refusal::None;
}

bool ThreadTable::stamp(ThreadBlock& b, bool opens, std::int64_t now_ms) {
  return stamped(b, opens, now_ms, /*count_turn=*/true) != nullptr;
}

ThreadRecord* ThreadTable::stamped(ThreadBlock& b, bool opens, std::int64_t now_ms, bool count_turn) {
  ThreadRecord* r = nullptr;
  if (opens) {
    r = &record_of(b, now_ms);
  } else {
    const auto it = records_.find(b.id);
    if (it == records_.end()) return nullptr;
    r = &it->second;
    r->last_ms = now_ms;
    tighten(*r, b);
  }
  if (r->expires_ms && now_ms > *r->expires_ms) {
    finish(*r, ThreadState::Expired);
    return nullptr;
  }
  if (count_turn && r->turns < UINT32_MAX) ++r->turns;
  if (r->state == ThreadState::Closed) r->state = ThreadState::Open;  // continued after its first answer
  ++r->sent;
  if (b.message_class == MessageClass::Authority) r->authority = true;
  r->max_depth_seen = std::max(r->max_depth_seen, b.depth);
  b.turn = r->turns;
  b.spent = r->spent;
  b.parent = r->parent;
  b.origin_agent = r->origin_agent;
  b.origin_node = r->origin_node;
  b.subject = r->subject;
  b.max_turns = r->max_turns;
  b.expires_ms = r->expires_ms;
  b.max_cost = r->max_cost;
  b.max_depth = r->max_depth;
  return r;
}

void ThreadTable::on_response(const ThreadBlock& b, std::int64_t now_ms, bool add_cost) {
  const auto it = records_.find(b.id);
  if (it == records_.end()) return;
  ThreadRecord& r = it->second;
  r.last_ms = now_ms;
  r.turns = std::max(r.turns, b.turn);
  if (add_cost) r.spent += b.cost;
}

ThreadBlock ThreadTable::response_block(const ThreadBlock& request, double cost, std::int64_t now_ms) {
  ThreadBlock out;
  out.id = request.id;
  out.message_class = request.message_class;
  out.depth = request.depth;
  out.cost = cost;
  if (const auto it = records_.find(request.id); it != records_.end()) {
    ThreadRecord& r = it->second;
    r.last_ms = now_ms;
    r.spent += cost;
    out.turn = r.turns;
    out.spent = r.spent;
  } else {
    out.turn = request.turn;
    out.spent = request.spent + cost;
  }
  return out;
}

void ThreadTable::close(const ThreadId& id, std::int64_t now_ms) {
  const auto it = records_.find(id);
  if (it == records_.end()) return;
  it->second.last_ms = now_ms;
  if (it->second.state == ThreadState::Open || it->second.state == ThreadState::Refused) {
    finish(it->second, ThreadState::Closed);
  }
}

void ThreadTable::note_refusal(const ThreadId& id, Refusal why, std::int64_t now_ms) {
  const auto it = records_.find(id);
  if (it == records_.end() || why == Refusal::None) return;
  ThreadRecord& r = it->second;
  r.last_ms = now_ms;
  r.last_refusal = why;
  if (why == Refusal::Expired) {
    finish(r, ThreadState::Expired);
  } else if (r.state == ThreadState::Open || r.state == ThreadState::Closed) {
    r.state = ThreadState::Refused;
  }
}

void ThreadTable::expire(std::int64_t now_ms) {
  for (auto& [id, r] : records_) {
    if ((r.state == ThreadState::Open || r.state == ThreadState::Refused) && r.expires_ms && now_ms > *r.expires_ms) {
      finish(r, ThreadState::Expired);
    }
  }
}

void ThreadTable::finish(ThreadRecord& r, ThreadState state) {
  if (r.state == ThreadState::Expired) return;  // final
  r.state = state;
  if (r.ended) return;  // counted once, when it first ended
  r.ended = true;
  if (state == ThreadState::Closed) ++stats_.closed;
  if (state == ThreadState::Expired) ++stats_.expired;
  observe_end(r);
}

void ThreadTable::observe_end(const ThreadRecord& r) {
  observe<kTurnBuckets.size()>(stats_.turns_histogram, kTurnBuckets, static_cast<double>(r.turns));
  observe<kCostBuckets.size()>(stats_.cost_histogram, kCostBuckets, r.spent);
  stats_.turns_sum += r.turns;
  stats_.cost_sum += r.spent;
}

const ThreadRecord* ThreadTable::find(const ThreadId& id) const {
  const auto it = records_.find(id);
  return it == records_.end() ? nullptr : &it->second;
}

std::vector<ThreadRecord> ThreadTable::list() const {
  std::vector<ThreadRecord> out;
  out.reserve(records_.size());
  for (const auto& [id, r] : records_) out.push_back(r);
  std::sort(out.begin(), out.end(), [](const ThreadRecord& a, const ThreadRecord& b) {
    return a.last_ms != b.last_ms ? a.last_ms > b.last_ms : a.id < b.id;
  });
  return out;
}

// Frees a tenth of the table: finished threads first, least recently
// active first; an open thread goes only when finished ones do not free
// enough. One sort per tenth keeps a flood of new threads O(1) each on
// average.
void ThreadTable::make_room() {
  std::vector<std::pair<std::int64_t, ThreadId>> order;
  order.reserve(records_.size());
  for (const auto& [id, r] : records_) {
    const bool ended = r.state == ThreadState::Closed || r.state == ThreadState::Expired;
    // Finished threads sort before every open one.
    order.emplace_back(ended ? r.last_ms : r.last_ms + (std::int64_t{1} << 52), id);
  }
  std::sort(order.begin(), order.end());
  const std::size_t drop = std::max<std::size_t>(records_.size() / 10, 1);
  for (std::size_t i = 0; i < drop && i < order.size(); ++i) {
    const auto it = records_.find(order[i].second);
    if (!it->second.ended) observe_end(it->second);
    ++stats_.evicted;
    records_.erase(it);
  }
}

}  // namespace mesh
