// The executors that the tests of the common cf::Executor contract (docs/reference.md §4) run
// against, and the helpers those tests share.
//
// Tests are written against cf::Executor& and instantiated once per factory in the lists below,
// so a new executor type joins every such test by being added here and nowhere else. Two lists:
//  * AllExecutors: tests that use only plain functions or captureless lambdas over values, which
//    any executor can run, including one whose tasks run in another process;
//  * SharedMemoryExecutors: tests whose tasks share the test's memory (captures, std::ref,
//    blocking on an Event to make an ordering deterministic).
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "concurrent/futures.hpp"
#include "test_util.hpp"

namespace cftest {

struct ThreadPoolFactory {
  static constexpr const char* kName = "ThreadPool";
  static std::unique_ptr<cf::Executor> make(std::size_t max_workers) {
    return std::make_unique<cf::ThreadPoolExecutor>(max_workers);
  }
};

template <cf::StartMethod Method>
struct ProcessPoolFactory {
  static constexpr const char* kName = Method == cf::StartMethod::fork ? "ProcessPoolFork"
                                       : Method == cf::StartMethod::forkserver
                                           ? "ProcessPoolForkserver"
                                           : "ProcessPoolSpawn";
  static std::unique_ptr<cf::Executor> make(std::size_t max_workers) {
    return std::make_unique<cf::ProcessPoolExecutor>(
        cf::ProcessPoolOptions{.max_workers = max_workers, .start_method = Method});
  }
};

// The process pools need main() to call cf::serve_if_worker first (spawn): the test files that
// use this fixture define their own main (see the end of each).
#if defined(CFTEST_ASAN)  // no fork under ASan: see cftest::kForkUnsafeRuntime
using AllExecutors =
    ::testing::Types<ThreadPoolFactory, ProcessPoolFactory<cf::StartMethod::forkserver>,
                     ProcessPoolFactory<cf::StartMethod::spawn>>;
#else
using AllExecutors = ::testing::Types<ThreadPoolFactory, ProcessPoolFactory<cf::StartMethod::fork>,
                                      ProcessPoolFactory<cf::StartMethod::forkserver>,
                                      ProcessPoolFactory<cf::StartMethod::spawn>>;
#endif
using SharedMemoryExecutors = ::testing::Types<ThreadPoolFactory>;

// Names the typed instantiations after the executor ("MapTest/ThreadPool.…") instead of "/0".
struct ExecutorName {
  template <class Factory>
  static std::string GetName(int) {
    return Factory::kName;
  }
};

template <class Factory>
class ExecutorTest : public ::testing::Test {
 protected:
  // CPython's ExecutorMixin.worker_count.
  static constexpr std::size_t kWorkers = 5;

  // The fixture's executor, made on first use and shut down (wait=true) after the test.
  cf::Executor& executor() {
    if (!executor_) executor_ = Factory::make(kWorkers);
    return *executor_;
  }

  // A fresh executor, for tests that need a given number of workers or control its lifetime.
  static std::unique_ptr<cf::Executor> make_executor(std::size_t max_workers = kWorkers) {
    return Factory::make(max_workers);
  }

  void TearDown() override {
    if (executor_) executor_->shutdown();
  }

 private:
  std::unique_ptr<cf::Executor> executor_;
};

// An Event that tasks hold by shared_ptr (so a task still returning from wait() never touches a
// destroyed object) and that opens itself when it goes out of scope. Declared after the
// executor in a test, it is destroyed first, so a failed assertion releases the blocked tasks
// before the executor's destructor waits for them instead of deadlocking.
class Gate {
 public:
  Gate() = default;
  Gate(const Gate&) = delete;
  Gate& operator=(const Gate&) = delete;
  ~Gate() { event_->set(); }

  void open() { event_->set(); }
  bool is_open() const { return event_->is_set(); }
  // For the tasks to capture by value.
  std::shared_ptr<Event> event() const { return event_; }

 private:
  std::shared_ptr<Event> event_ = std::make_shared<Event>();
};

// All of a map range's values, in the order it yields them.
template <class Range>
auto collect(Range&& range) {
  std::vector<std::remove_cvref_t<decltype(*range.begin())>> values;
  for (auto it = range.begin(); it != range.end(); ++it) values.push_back(*it);
  return values;
}

// For what no event can signal (an object another thread drops after publishing a result):
// polls `condition` until it holds, for at most kDeadlock.
template <class Condition>
bool eventually(Condition condition) {
  const auto give_up = std::chrono::steady_clock::now() + kDeadlock;
  while (!condition()) {
    if (std::chrono::steady_clock::now() > give_up) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

}  // namespace cftest
