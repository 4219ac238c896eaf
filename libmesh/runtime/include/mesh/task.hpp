// mesh::Task<T>: what an agent's coroutines return, the C++ counterpart of
// a Python `async def` (docs/peerclient.md, "Coroutines").
//
//   mesh::Task<std::optional<mesh::Json>> on_request(const mesh::IncomingMessage& m) override {
//     auto review = co_await peers().request("reviewer", m.data);  // other messages are handled meanwhile
//     co_return review ? review->data : mesh::Json();
//   }
//
// A Task is lazy: calling a coroutine that returns one runs nothing until
// it is co_awaited (Python runs nothing of a coroutine until it is awaited
// either). Awaiting it runs it on the awaiting thread up to its first
// suspension; it resumes wherever what it awaits completes, which for the
// PeerClient's awaitables is the agent's own strand. A Task is awaited
// once; its result (or the exception it threw) goes to the awaiter.
//
// Why our own type and not Asio's awaitable<T>: the agent's handlers are
// started and resumed by the Mesh, never by user code, so Asio's
// co_spawn/use_awaitable plumbing would be in every signature for nothing,
// and Boost 1.74's awaitable needs compiler-specific switches for Clang.
// This is the whole of it: a lazy task with symmetric transfer.
#pragma once

#include <coroutine>
#include <exception>
#include <optional>
#include <stdexcept>
#include <type_traits>
#include <utility>

namespace mesh {

template <class T = void>
class Task;

namespace detail {

struct TaskPromiseBase {
  std::coroutine_handle<> continuation;
  std::exception_ptr error;

  struct FinalAwaiter {
    bool await_ready() const noexcept { return false; }
    template <class P>
    std::coroutine_handle<> await_suspend(std::coroutine_handle<P> done) const noexcept {
      // Straight back to whoever awaited (symmetric transfer: no stack growth).
      auto next = done.promise().continuation;
      return next ? next : std::noop_coroutine();
    }
    void await_resume() const noexcept {}
  };

  std::suspend_always initial_suspend() const noexcept { return {}; }
  FinalAwaiter final_suspend() const noexcept { return {}; }
  void unhandled_exception() noexcept { error = std::current_exception(); }
};

template <class T>
struct TaskPromise : TaskPromiseBase {
  std::optional<T> value;
  Task<T> get_return_object() noexcept;
  template <class U>
  void return_value(U&& v) {
    value.emplace(std::forward<U>(v));
  }
  T take() {
    if (error) std::rethrow_exception(error);
    return std::move(*value);
  }
};

template <>
struct TaskPromise<void> : TaskPromiseBase {
  Task<void> get_return_object() noexcept;
  void return_void() const noexcept {}
  void take() const {
    if (error) std::rethrow_exception(error);
  }
};

}  // namespace detail

template <class T>
class [[nodiscard]] Task {
 public:
  using promise_type = detail::TaskPromise<T>;
  using Handle = std::coroutine_handle<promise_type>;

  Task() = default;
  explicit Task(Handle h) noexcept : h_(h) {}
  Task(Task&& other) noexcept : h_(std::exchange(other.h_, {})) { take_completed(other); }
  Task& operator=(Task&& other) noexcept {
    if (this != &other) {
      if (h_) h_.destroy();
      h_ = std::exchange(other.h_, {});
      take_completed(other);
    }
    return *this;
  }
  Task(const Task&) = delete;
  Task& operator=(const Task&) = delete;
  ~Task() {
    if (h_) h_.destroy();
  }

  // A task that is done already, with its result and no coroutine behind
  // it: what a function returns that answers at once (CustomAgent's
  // default handlers, which call the plain ones). The runtime sees it is
  // done and ends the handling there, without a coroutine of its own.
  template <class U = T>
    requires(!std::is_void_v<U>)
  static Task completed(U value) {
    Task t;
    t.completed_.emplace(std::move(value));
    return t;
  }
  static Task completed()
    requires std::is_void_v<T>
  {
    Task t;
    t.completed_ = true;
    return t;
  }

  bool valid() const noexcept { return static_cast<bool>(h_) || is_completed(); }
  // Made by completed(): its result is there, nothing is left to run.
  bool is_completed() const noexcept {
    if constexpr (std::is_void_v<T>) {
      return completed_;
    } else {
      return completed_.has_value();
    }
  }

  // Awaiting: start (or continue) the coroutine, resume the awaiter with
  // its result when it is done.
  bool await_ready() const noexcept { return !h_ || h_.done(); }
  std::coroutine_handle<> await_suspend(std::coroutine_handle<> awaiter) noexcept {
    h_.promise().continuation = awaiter;
    return h_;
  }
  T await_resume() {
    if (!h_) {
      if (!is_completed()) throw std::logic_error("mesh::Task: awaited an empty task");
      if constexpr (std::is_void_v<T>) {
        completed_ = false;  // awaited once, as a coroutine's task is
        return;
      } else {
        T value = std::move(*completed_);
        completed_.reset();
        return value;
      }
    }
    return h_.promise().take();
  }

 private:
  // Moves other's completed result here and leaves other without one. The
  // value is moved only when there is one: moving a disengaged optional
  // whole makes GCC 12 at -O1 warn that its payload may be uninitialized.
  void take_completed(Task& other) noexcept {
    if constexpr (std::is_void_v<T>) {
      completed_ = std::exchange(other.completed_, false);
    } else if (other.completed_) {
      completed_.emplace(std::move(*other.completed_));
      other.completed_.reset();
    } else {
      completed_.reset();
    }
  }

  Handle h_{};
  // A completed() task's result (for Task<void>: whether it is one).
  std::conditional_t<std::is_void_v<T>, bool, std::optional<T>> completed_{};
};

namespace detail {

template <class T>
Task<T> TaskPromise<T>::get_return_object() noexcept {
  return Task<T>(std::coroutine_handle<TaskPromise<T>>::from_promise(*this));
}
inline Task<void> TaskPromise<void>::get_return_object() noexcept {
  return Task<void>(std::coroutine_handle<TaskPromise<void>>::from_promise(*this));
}

// A coroutine nobody awaits: it starts at once and frees itself at the
// end. The runtime wraps each handler in one (spawn below).
struct Detached {
  struct promise_type {
    Detached get_return_object() const noexcept { return {}; }
    std::suspend_never initial_suspend() const noexcept { return {}; }
    std::suspend_never final_suspend() const noexcept { return {}; }
    void return_void() const noexcept {}
    void unhandled_exception() const noexcept { std::terminate(); }  // spawn catches everything
  };
};

// Runs `task` to its end, then `done(result, error)` (result empty when it
// threw). `done` must not throw.
template <class T, class Done>
Detached spawn(Task<T> task, Done done) {
  std::exception_ptr error;
  if constexpr (std::is_void_v<T>) {
    try {
      co_await task;
    } catch (...) {
      error = std::current_exception();
    }
    done(error);
  } else {
    std::optional<T> result;
    try {
      result.emplace(co_await task);
    } catch (...) {
      error = std::current_exception();
    }
    done(std::move(result), error);
  }
}

}  // namespace detail
}  // namespace mesh
