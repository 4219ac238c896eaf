// Waiting on a cluster in multi-process tests: poll a condition until it
// holds, or fail the test with what was awaited and a description of the
// cluster at that moment (each node's view, log tails...).
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <stdexcept>
#include <string>
#include <thread>

namespace mesh::test {

// Returns once `pred` holds. On timeout: ADD_FAILURE naming `what`, with
// describe()'s text, then throws std::runtime_error so that the test body
// stops (fixtures clean up in their destructors).
inline void wait_for_or_fail(const std::string& what, std::chrono::milliseconds timeout,
                             const std::function<bool()>& pred, const std::function<std::string()>& describe,
                             std::chrono::milliseconds poll) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= deadline) {
      ADD_FAILURE() << "timed out waiting for " << what << "\n" << describe();
      throw std::runtime_error("timed out waiting for " + what);
    }
    std::this_thread::sleep_for(poll);
  }
}

}  // namespace mesh::test
