// Runs one agent: on its strand (Agent, CustomAgent) or on a thread of its
// own (ThreadAgent). Starts it, hands it its messages, restarts it after a
// failure, and stops it.
//
// A CustomAgent's messages: the inbox calls back (on_ready) when a message
// arrives while the agent had nothing to do; pump() then takes messages
// one by one, each to a handler coroutine started on the strand. A handler
// that suspends (co_await) frees the strand, and pump() goes on with the
// next message, up to in_flight_cap handlers in progress; one that ends
// lets pump() take more. Nothing here waits on a clock.
#include <future>
#include <spdlog/spdlog.h>

#include "mesh_core.hpp"

namespace mesh::detail {

namespace {

// Messages taken per turn before pump() yields the thread to other agents.
constexpr int kPumpBatch = 64;

// A worker's spare message. A handler that ends without suspending (every
// plain one) gives its message back, and the next message of any agent on
// this thread is built in it: its strings keep their room and its context
// its empty object, three allocations fewer per message. One per thread,
// so an idle agent holds none.
thread_local std::unique_ptr<IncomingMessage> t_spare_message;

std::unique_ptr<IncomingMessage> take_message() {
  if (t_spare_message) return std::move(t_spare_message);
  // Default-initialized (new T, not make_unique's new T()): its members
  // are all set by their initializers, and value-initialization would
  // clear the whole message byte by byte first.
  return std::unique_ptr<IncomingMessage>(new IncomingMessage);
}

// What refers to the node (the handle, the handling), the payload and a
// context go now; the rest stays for the next message.
void give_back(std::unique_ptr<IncomingMessage> m) {
  if (!m) return;  // a coroutine kept it
  m->handle.reset();
  m->handling.reset();
  m->data = Json();
  if (!m->context.is_object() || !m->context.empty()) m->context = Json::object();
  if (!t_spare_message) t_spare_message = std::move(m);
}

AgentSlot::Kind kind_of(const Agent& a) {
  if (dynamic_cast<const CustomAgent*>(&a)) return AgentSlot::Kind::Custom;
  if (dynamic_cast<const ThreadAgent*>(&a)) return AgentSlot::Kind::Thread;
  return AgentSlot::Kind::Plain;
}

// Runs a coroutine of the agent to its end, then `done(error)` on the
// thread it ended on. Holds the slot (and so the agent) until then.
template <class Done>
Detached run_coroutine(std::shared_ptr<AgentSlot> slot, Task<void> task, Done done) {
  std::exception_ptr error;
  try {
    co_await task;
  } catch (...) {
    error = std::current_exception();
  }
  done(*slot, error);
  slot->end_coroutine();
}

}  // namespace

// A handler is started on the slot's thread. One that completes without
// suspending (a plain handler, through CustomAgent's defaults) is ended
// right there; one that suspends is awaited to its end by a coroutine of
// the runtime's, which owns the message meanwhile. Either way the same
// ending: on_error, the audit record, the role's handling time, the answer.
void AgentSlot::start_request(std::unique_ptr<IncomingMessage>& message) {
  const auto started = std::chrono::steady_clock::now();
  Task<std::optional<Json>> task;
  try {
    task = static_cast<CustomAgent&>(*agent).on_request(*message);
  } catch (...) {
    finish_request(*message, started, std::nullopt, std::current_exception());
    return;
  }
  if (task.is_completed()) {
    finish_request(*message, started, task.await_resume(), nullptr);  // done: await_resume only takes the result
    return;
  }
  await_request(shared_from_this(), std::move(message), std::move(task), started);
}

void AgentSlot::start_notify(std::unique_ptr<IncomingMessage>& message) {
  const auto started = std::chrono::steady_clock::now();
  Task<void> task;
  try {
    task = static_cast<CustomAgent&>(*agent).on_notify(*message);
  } catch (...) {
    finish_notify(*message, started, std::current_exception());
    return;
  }
  if (task.is_completed()) {
    finish_notify(*message, started, nullptr);
    return;
  }
  await_notify(shared_from_this(), std::move(message), std::move(task), started);
}

Detached AgentSlot::await_request(std::shared_ptr<AgentSlot> slot, std::unique_ptr<IncomingMessage> message,
                                  Task<std::optional<Json>> task, std::chrono::steady_clock::time_point started) {
  std::optional<Json> answer;
  std::exception_ptr error;
  try {
    answer = co_await std::move(task);
  } catch (...) {
    error = std::current_exception();
  }
  slot->finish_request(*message, started, std::move(answer), error);
}

Detached AgentSlot::await_notify(std::shared_ptr<AgentSlot> slot, std::unique_ptr<IncomingMessage> message,
                                 Task<void> task, std::chrono::steady_clock::time_point started) {
  std::exception_ptr error;
  try {
    co_await std::move(task);
  } catch (...) {
    error = std::current_exception();
  }
  slot->finish_notify(*message, started, error);
}

void AgentSlot::finish_request(const IncomingMessage& message, std::chrono::steady_clock::time_point started,
                               std::optional<Json> answer, std::exception_ptr error) {
  if (!error && answer) {
    try {
      client->respond(message, *answer);
    } catch (...) {
      // An answer that cannot be sent (nested deeper than a message may
      // be): the handler failed, and the caller is told so now rather
      // than at its deadline.
      error = std::current_exception();
    }
  }
  if (error) {
    // on_error first: by the time the caller learns of the failure, the
    // agent has been told.
    report_error(error, &message);
    if (message.handle) {
      core->audit_handled(message, "answered", transport::ErrorCode::Rejected);
      if (auto t = core->get_transport()) t->respond_error(*message.handle, transport::ErrorCode::Rejected);
    }
  }
  role->observe(std::chrono::steady_clock::now() - started);
  handler_done(error ? 1 : 0);
  end_coroutine();
}

void AgentSlot::finish_notify(const IncomingMessage& message, std::chrono::steady_clock::time_point started,
                              std::exception_ptr error) {
  if (error) report_error(error, &message);
  core->audit_handled(message, "handled", error ? transport::ErrorCode::Rejected : transport::ErrorCode::None);
  role->observe(std::chrono::steady_clock::now() - started);
  handler_done(error ? 1 : 0);
  end_coroutine();
}

AgentSlot::AgentSlot(MeshCore& c, std::unique_ptr<Agent> a)
    : core(&c),
      agent(std::move(a)),
      kind(kind_of(*agent)),
      strand(boost::asio::make_strand(c.pool->get_executor())),
      role(&c.role_counters(agent->spec().role)) {
  const std::size_t n = agent->spec().concurrency;
  if (kind == Kind::Custom && n > 1) {
    parallel = true;
    scope.pool = c.pool.get();
    in_flight_cap = n;
  } else {
    scope.strand = &strand;
    // Handlers awaiting at once; past it the mailbox holds the rest (and
    // pushes back on senders) until one ends.
    in_flight_cap = c.config.mailbox_limit;
  }
  backoff = c.options.restart_backoff;
}

AgentSlot::~AgentSlot() = default;

void AgentSlot::report(const std::exception& error, const IncomingMessage* message) {
  core->stats.agent_failures.fetch_add(1);
  try {
    agent->on_error(error, message);
  } catch (...) {
    // on_error must not throw; one that does changes nothing.
  }
}

void AgentSlot::report_current(const IncomingMessage* message) {
  try {
    throw;
  } catch (const std::exception& e) {
    report(e, message);
  } catch (...) {
    report(std::runtime_error("a non-standard exception"), message);
  }
}

void AgentSlot::report_error(std::exception_ptr error, const IncomingMessage* message) {
  try {
    std::rethrow_exception(error);
  } catch (...) {
    report_current(message);
  }
}

void AgentSlot::end_coroutine() {
  if (live.fetch_sub(1) != 1) return;  // others of the agent still run: no stop waits for this one
  // The agent's last: a stop may wait for it. Nobody waits at almost every
  // handler's end, which then takes no lock. A waiter counts itself
  // (live_waiters) before it checks `live`, both sequentially consistent,
  // so one of the two sees the other; the lock then keeps the notify from
  // falling between the waiter's check and its wait.
  if (core->live_waiters.load() == 0) return;
  { std::lock_guard lock(core->live_mu); }
  core->live_cv.notify_all();
}

void AgentSlot::start() {
  running.store(true);
  if (inbox) {
    // Called by the pushing thread when a message arrives while the agent
    // had nothing to do: hand it over on the strand.
    // It holds only the slot's weak pointer: every agent keeps one, and a
    // copy of the strand and the pool's executor as well took 64 bytes more.
    inbox->set_ready_callback([weak = weak_from_this()] {
      const auto self = weak.lock();
      if (!self) return;
      auto run = [weak] {
        if (auto s = weak.lock()) s->pump();
      };
      // From a worker of this node (an agent sending to another), the
      // receiver runs next on the same worker, after the sender's handler:
      // no other worker is woken for it (a system call and a context
      // switch, more than the rest of a hop). The pool still spreads work:
      // a worker that finds more than one task queued wakes another.
      if (self->strand.get_inner_executor().running_in_this_thread()) {
        boost::asio::defer(self->strand, std::move(run));
      } else {
        boost::asio::post(self->strand, std::move(run));
      }
    });
  }
  if (kind == Kind::Thread) {
    thread = std::jthread([this](std::stop_token stop) { run_thread(stop); });
    return;
  }
  boost::asio::post(strand, [self = shared_from_this()] { self->begin(); });
}

void AgentSlot::begin() {
  if (stopping.load()) return;
  began = std::chrono::steady_clock::now();
  try {
    agent->setup();
    set_up = true;
  } catch (...) {
    set_up = true;  // teardown runs after a failed setup too, as it always did
    report_current(nullptr);
    fail();
    return;
  }
  if (kind == Kind::Custom) schedule_pump();
  {
    live.fetch_add(1);
    run_coroutine(shared_from_this(), agent->run(), [](AgentSlot& s, std::exception_ptr error) {
      if (!error) return;  // run() returned: its work is over
      try {
        std::rethrow_exception(error);
      } catch (...) {
        s.report_current(nullptr);
      }
      boost::asio::post(s.strand, [self = s.shared_from_this()] { self->fail(); });
    });
  }
}

void AgentSlot::schedule_pump() {
  if (pump_posted) return;
  pump_posted = true;
  boost::asio::post(strand, [weak = weak_from_this()] {
    if (auto s = weak.lock()) {
      s->pump_posted = false;
      s->pump();
    }
  });
}

void AgentSlot::pump() {
  if (!inbox) return;
  if (receiver) {
    // A plain agent's receive() is waiting.
    transport::Incoming raw;
    bool armed = false;
    while (receiver) {
      if (!inbox->try_pop_or_arm(raw, armed)) return;
      if (auto m = core->to_incoming(std::move(raw))) {
        auto wait = std::move(receiver);
        if (wait->timer) wait->timer->cancel();
        wait->completion->handling = m->handling;  // run() resumes handling it
        wait->completion->complete(std::move(m));
      }
    }
    return;
  }
  if (kind != Kind::Custom || stopping.load() || paused || !set_up) return;
  if (pumping) return;  // a handler started below ended at once and pumps again: the loop goes on
  pumping = true;
  struct Unset {
    bool& flag;
    ~Unset() { flag = false; }
  } unset{pumping};
  transport::Incoming raw;
  bool armed = false;  // the inbox is empty and armed: the next message posts pump()
  for (int i = 0; i < kPumpBatch && !armed; ++i) {
    if (in_flight >= in_flight_cap) return;  // handler_done pumps again
    if (!inbox->try_pop_or_arm(raw, armed)) return;
    // Made where it stays: a handler that suspends keeps a reference to it.
    std::unique_ptr<IncomingMessage> m = take_message();
    if (!core->to_incoming(std::move(raw), *m)) {
      give_back(std::move(m));
      continue;
    }
    ++in_flight;
    live.fetch_add(1);
    const bool request = m->is_request();
    // The handler runs, up to each suspension, in its message's handling:
    // what it sends belongs to that message's thread.
    if (!parallel) {
      {
        // Runs here, to its end or up to its first suspension.
        HandlingScope in_handling(m->handling);
        if (request) {
          start_request(m);
        } else {
          start_notify(m);
        }
      }
      give_back(std::move(m));
    } else {
      boost::asio::post(*core->pool, [self = shared_from_this(), request, msg = std::move(m)]() mutable {
        {
          HandlingScope in_handling(msg->handling);
          if (request) {
            self->start_request(msg);
          } else {
            self->start_notify(msg);
          }
        }
        give_back(std::move(msg));
      });
    }
    if (paused || stopping.load()) return;  // that handler failed at once
  }
  if (!armed) schedule_pump();  // more may wait: let other agents have the thread first
}

void AgentSlot::handler_done(std::size_t failed) {
  auto finish = [self = shared_from_this(), failed] {
    --self->in_flight;
    if (failed) {
      self->fail();
    } else if (!self->pumping) {
      // A handler that ended inside pump() (it never suspended) is
      // followed by the loop there; posting a pump would cost a wake-up
      // of another worker per message.
      self->schedule_pump();
    }
  };
  if (strand.running_in_this_thread()) {
    finish();
  } else {
    boost::asio::post(strand, std::move(finish));
  }
}

void AgentSlot::fail() {
  if (stopping.load() || paused) return;
  paused = true;
  if (set_up) {
    set_up = false;
    try {
      agent->teardown();
    } catch (...) {
      report_current(nullptr);
    }
  }
  const auto max = core->options.restart_backoff_max;
  // A run that lasted a while was healthy: the next failure starts over.
  if (std::chrono::steady_clock::now() - began > max) backoff = core->options.restart_backoff;
  restarts.fetch_add(1);
  core->stats.agent_restarts.fetch_add(1);
  if (!backoff_timer) backoff_timer = std::make_unique<boost::asio::steady_timer>(strand);
  backoff_timer->expires_after(backoff);
  backoff = std::min(backoff * 2, max);
  backoff_timer->async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
    if (ec || self->stopping.load()) return;
    self->paused = false;
    self->begin();
  });
}

void AgentSlot::start_receive(const std::shared_ptr<ReceiveWait>& wait) {
  if (stopping.load() || !inbox) {
    wait->completion->complete(std::nullopt);
    return;
  }
  if (receiver) {
    wait->completion->complete(std::nullopt);
    spdlog::error("{}: agent {}: a second receive() while one is waiting returns nullopt", core->node_name,
                  agent->id());
    return;
  }
  transport::Incoming raw;
  bool armed = false;
  while (inbox->try_pop_or_arm(raw, armed)) {
    if (auto m = core->to_incoming(std::move(raw))) {
      wait->completion->handling = m->handling;  // run() resumes handling it
      wait->completion->complete(std::move(m));
      return;
    }
  }
  if (wait->timeout && wait->timeout->count() <= 0) {
    wait->completion->complete(std::nullopt);
    return;
  }
  receiver = wait;
  if (wait->timeout) {
    wait->timer.emplace(strand);
    wait->timer->expires_after(*wait->timeout);
    wait->timer->async_wait([self = shared_from_this(), w = std::weak_ptr<ReceiveWait>(wait)](
                                const boost::system::error_code& ec) {
      auto expired = w.lock();
      if (ec || !expired || self->receiver != expired) return;
      self->receiver.reset();
      expired->completion->complete(std::nullopt);
    });
  }
}

void AgentSlot::stop_begin() {
  stopping.store(true);
  scope.stop();  // every await of the agent completes now
  if (kind == Kind::Thread) thread.request_stop();
  boost::asio::post(strand, [self = shared_from_this()] {
    if (self->backoff_timer) self->backoff_timer->cancel();
    if (auto wait = std::move(self->receiver)) {
      if (wait->timer) wait->timer->cancel();
      wait->completion->complete(std::nullopt);
    }
  });
}

bool AgentSlot::stop_wait(std::chrono::steady_clock::time_point until) {
  if (kind == Kind::Thread) {
    if (thread.joinable()) thread.join();
    running.store(false);
    return true;
  }
  std::unique_lock lock(core->live_mu);
  core->live_waiters.fetch_add(1);
  const bool ended = core->live_cv.wait_until(lock, until, [this] { return live.load() == 0; });
  core->live_waiters.fetch_sub(1);
  if (!ended) {
    spdlog::error("{}: agent {} did not end within the stop deadline (a coroutine ignores the stop); "
                  "it is abandoned",
                  core->node_name, agent->id());
    return false;
  }
  return true;
}

void AgentSlot::teardown_then(std::function<void()> done) {
  // On the strand, after whatever is queued there.
  boost::asio::post(strand, [self = shared_from_this(), done = std::move(done)] {
    if (self->set_up) {
      self->set_up = false;
      try {
        self->agent->teardown();
      } catch (...) {
        self->report_current(nullptr);
      }
    }
    self->running.store(false);
    done();
  });
}

void AgentSlot::run_thread(std::stop_token stop) {
  auto& agent_ref = static_cast<ThreadAgent&>(*agent);
  const auto initial = core->options.restart_backoff;
  const auto max = core->options.restart_backoff_max;
  auto wait = initial;
  while (!stop.stop_requested()) {
    bool failed = false;
    const auto start_time = std::chrono::steady_clock::now();
    try {
      agent_ref.setup();
      agent_ref.run_blocking(stop);
    } catch (...) {
      failed = true;
      report_current(nullptr);
    }
    try {
      agent_ref.teardown();
    } catch (...) {
      report_current(nullptr);
    }
    if (!failed || stop.stop_requested()) break;
    if (std::chrono::steady_clock::now() - start_time > max) wait = initial;
    restarts.fetch_add(1);
    core->stats.agent_restarts.fetch_add(1);
    std::mutex m;
    std::condition_variable_any cv;
    std::unique_lock lock(m);
    cv.wait_for(lock, stop, wait, [] { return false; });
    wait = std::min(wait * 2, max);
  }
}

void MeshCore::start_agent(const std::shared_ptr<AgentSlot>& slot) {
  slot->start();
}

void MeshCore::stop_agents(const std::vector<std::shared_ptr<AgentSlot>>& slots) {
  for (const auto& s : slots) s->stop_begin();
  // Closed mailboxes wake a ThreadAgent blocked in receive_blocking.
  for (const auto& s : slots) {
    if (s->inbox) s->inbox->close();
  }
  const auto until = std::chrono::steady_clock::now() + options.agent_stop_timeout;
  // Their coroutines end, all at once; then every teardown is posted
  // before the first is waited for.
  std::vector<AgentSlot*> ended;
  for (const auto& s : slots) {
    if (s->stop_wait(until) && s->kind != AgentSlot::Kind::Thread) ended.push_back(s.get());
  }
  std::mutex done_mu;
  std::condition_variable done_cv;
  std::size_t left = ended.size();
  for (AgentSlot* s : ended) {
    s->teardown_then([&] {
      std::lock_guard lock(done_mu);
      if (--left == 0) done_cv.notify_all();
    });
  }
  std::unique_lock lock(done_mu);
  done_cv.wait(lock, [&] { return left == 0; });
}

}  // namespace mesh::detail
