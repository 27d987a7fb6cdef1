// The thread pool's initializer (docs/reference.md §4.1 ThreadPoolOptions::initializer, §1
// BrokenThreadPool): it runs once in each worker before any task there; if it throws, the pool is
// broken. Ports CPython's test_init (H1, H2) for threads.
#include <atomic>
#include <exception>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include <concurrent/futures.hpp>

#include "test_util.hpp"

namespace {

using cftest::kDeadlock;

constexpr const char* kBrokenText =
    "A thread initializer failed, the thread pool is not usable anymore";

// CPython's init/get_init_status pair, with the per-worker "global" a thread_local.
thread_local bool initialized = false;

bool get_init_status() { return initialized; }

// Sets an event when it goes out of scope, so that tasks or initializers blocked on it are
// released before the executor declared earlier waits for them, even after a failed ASSERT.
class ReleaseOnExit {
 public:
  explicit ReleaseOnExit(cftest::Event& event) : event_(event) {}
  ReleaseOnExit(const ReleaseOnExit&) = delete;
  ReleaseOnExit& operator=(const ReleaseOnExit&) = delete;
  ~ReleaseOnExit() { event_.set(); }

 private:
  cftest::Event& event_;
};

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

bool any_message_contains(const std::vector<std::string>& messages, const std::string& part) {
  for (const std::string& m : messages) {
    if (contains(m, part)) return true;
  }
  return false;
}

}  // namespace

// --- The error type ----------------------------------------------------------------------------

TEST(BrokenThreadPoolTest, IsABrokenExecutorAndARuntimeError) {
  static_assert(std::is_base_of_v<cf::BrokenExecutor, cf::BrokenThreadPool>);
  static_assert(std::is_base_of_v<cf::Error, cf::BrokenThreadPool>);
  static_assert(std::is_base_of_v<std::runtime_error, cf::BrokenThreadPool>);
  try {
    throw cf::BrokenThreadPool("spam");
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "spam");
    EXPECT_NE(dynamic_cast<const cf::BrokenExecutor*>(&e), nullptr);
  }
}

// --- A working initializer ---------------------------------------------------------------------

// CPython: *InitializerTest.test_initializer (H1).
TEST(ThreadPoolInitializerTest, EveryWorkerIsInitializedBeforeItsTasks) {
  cftest::Event release;
  std::atomic<int> calls{0};
  cf::ThreadPoolExecutor ex({.max_workers = 2, .initializer = [&] {
                               initialized = true;
                               calls.fetch_add(1);
                             }});
  ReleaseOnExit release_on_exit(release);
  // Both tasks hold their thread until the other has started, so both workers run one.
  std::atomic<int> started{0};
  auto hold = [&] {
    const bool status = get_init_status();
    if (started.fetch_add(1) + 1 == 2) release.set();
    release.wait();
    return status;
  };
  auto f1 = ex.submit(hold);
  auto f2 = ex.submit(hold);
  EXPECT_TRUE(f1.result(kDeadlock));
  EXPECT_TRUE(f2.result(kDeadlock));
  EXPECT_EQ(ex.thread_count(), 2u);
  EXPECT_EQ(calls.load(), 2);
}

TEST(ThreadPoolInitializerTest, InitializerRunsOncePerWorkerThreadNotPerTask) {
  std::mutex mu;
  std::multiset<std::thread::id> initialized_threads;
  std::set<std::thread::id> task_threads;
  std::atomic<int> uninitialized_tasks{0};
  {
    cf::ThreadPoolExecutor ex({.max_workers = 4, .initializer = [&] {
                                 initialized = true;
                                 std::lock_guard lock(mu);
                                 initialized_threads.insert(std::this_thread::get_id());
                               }});
    std::vector<cf::Future<void>> futures;
    for (int i = 0; i < 200; ++i) {
      futures.push_back(ex.submit([&] {
        if (!initialized) uninitialized_tasks.fetch_add(1);
        std::lock_guard lock(mu);
        task_threads.insert(std::this_thread::get_id());
      }));
    }
    for (auto& f : futures) f.result(kDeadlock);
    ex.shutdown();
    EXPECT_EQ(initialized_threads.size(), ex.thread_count());
  }
  EXPECT_EQ(uninitialized_tasks.load(), 0);
  // Each worker thread ran the initializer exactly once, and only worker threads ran it.
  EXPECT_EQ(
      std::set<std::thread::id>(initialized_threads.begin(), initialized_threads.end()).size(),
      initialized_threads.size());
  for (const auto& id : task_threads) EXPECT_EQ(initialized_threads.count(id), 1u);
  EXPECT_EQ(initialized_threads.count(std::this_thread::get_id()), 0u);
}

TEST(ThreadPoolInitializerTest, InitializerDoesNotRunBeforeTheFirstSubmit) {
  std::atomic<int> calls{0};
  cf::ThreadPoolExecutor ex({.max_workers = 3, .initializer = [&] { calls.fetch_add(1); }});
  EXPECT_EQ(calls.load(), 0);
  ex.submit([] {}).result(kDeadlock);
  EXPECT_EQ(calls.load(), 1);
}

// --- A failing initializer ---------------------------------------------------------------------

// CPython: *FailingInitializerTest.test_initializer (H2). The initializer waits until tasks are
// queued, as CPython's sleeps 0.1 s, so that there are pending futures to fail.
TEST(ThreadPoolInitializerTest, FailingInitializerBreaksPendingFuturesAndLaterSubmits) {
  cftest::CapturedErrors errors;
  cftest::Event queued;
  cf::ThreadPoolExecutor ex({.max_workers = 2, .initializer = [&] {
                               queued.wait();
                               throw std::runtime_error("error in initializer");
                             }});
  ReleaseOnExit release_on_exit(queued);
  std::vector<cf::Future<int>> futures;
  for (int i = 0; i < 5; ++i) futures.push_back(ex.submit([i] { return i; }));
  queued.set();
  for (auto& f : futures) {
    try {
      static_cast<void>(f.result(kDeadlock));
      ADD_FAILURE() << "a task ran although every initializer failed";
    } catch (const cf::BrokenThreadPool& e) {
      EXPECT_STREQ(e.what(), kBrokenText);
    }
  }
  try {
    ex.submit([] { return 0; });
    ADD_FAILURE() << "submit on a broken pool did not throw";
  } catch (const cf::BrokenThreadPool& e) {
    EXPECT_STREQ(e.what(), kBrokenText);
  }
  // CPython logs "Exception in initializer:" with the traceback ("ValueError: error in
  // initializer"); here the handler gets one message with the exception's what().
  const std::vector<std::string> messages = errors.messages();
  EXPECT_TRUE(any_message_contains(messages, "Exception in initializer"));
  EXPECT_TRUE(any_message_contains(messages, "error in initializer"));
}

// Every failed future carries its own exception object (CPython gh-101267 for the same
// problem in process pools: one shared object accumulates tracebacks).
TEST(ThreadPoolInitializerTest, EachBrokenFutureHasItsOwnExceptionObject) {
  cftest::CapturedErrors errors;
  cftest::Event queued;
  cf::ThreadPoolExecutor ex({.max_workers = 1, .initializer = [&] {
                               queued.wait();
                               throw std::runtime_error("error in initializer");
                             }});
  ReleaseOnExit release_on_exit(queued);
  std::vector<cf::Future<int>> futures;
  for (int i = 0; i < 4; ++i) futures.push_back(ex.submit([i] { return i; }));
  queued.set();
  std::vector<std::exception_ptr> errors_seen;
  std::set<const void*> objects;
  for (auto& f : futures) {
    std::exception_ptr e = f.exception(kDeadlock);
    ASSERT_NE(e, nullptr);
    errors_seen.push_back(e);
    try {
      std::rethrow_exception(e);
    } catch (const cf::BrokenThreadPool& broken) {
      objects.insert(&broken);
    } catch (...) {
      ADD_FAILURE() << "not a BrokenThreadPool";
    }
  }
  for (std::size_t i = 0; i < errors_seen.size(); ++i) {
    for (std::size_t j = i + 1; j < errors_seen.size(); ++j) {
      EXPECT_NE(errors_seen[i], errors_seen[j]) << "futures " << i << " and " << j;
    }
  }
  EXPECT_EQ(objects.size(), futures.size());
}

// CPython checks the broken state before the shutdown state in submit.
TEST(ThreadPoolInitializerTest, SubmitOnABrokenPoolAfterShutdownThrowsBrokenThreadPool) {
  cftest::CapturedErrors errors;
  cf::ThreadPoolExecutor ex(
      {.max_workers = 1, .initializer = [] { throw std::runtime_error("error in initializer"); }});
  auto f = ex.submit([] { return 1; });
  EXPECT_THROW(static_cast<void>(f.result(kDeadlock)), cf::BrokenThreadPool);
  ex.shutdown();
  try {
    ex.submit([] { return 0; });
    ADD_FAILURE() << "submit did not throw";
  } catch (const cf::BrokenThreadPool& e) {
    EXPECT_STREQ(e.what(), kBrokenText);
  } catch (const cf::ShutdownError&) {
    ADD_FAILURE() << "ShutdownError instead of BrokenThreadPool";
  }
}

// CPython H2: submit either throws BrokenExecutor or returns a future that fails with it; soon
// every submit throws, and nothing is ever run.
TEST(ThreadPoolInitializerTest, SubmitsRacingTheFailureEitherThrowOrFailTheirFuture) {
  cftest::CapturedErrors errors;
  std::atomic<int> ran{0};
  cf::ThreadPoolExecutor ex(
      {.max_workers = 2, .initializer = [] { throw std::runtime_error("error in initializer"); }});
  std::vector<cf::Future<void>> accepted;
  const auto deadline = std::chrono::steady_clock::now() + kDeadlock;
  bool threw = false;
  while (!threw && std::chrono::steady_clock::now() < deadline) {
    try {
      accepted.push_back(ex.submit([&ran] { ran.fetch_add(1); }));
    } catch (const cf::BrokenExecutor& e) {
      threw = true;
      EXPECT_STREQ(e.what(), kBrokenText);
    }
  }
  ASSERT_TRUE(threw) << "the pool never reported itself broken";
  EXPECT_THROW(ex.submit([] {}), cf::BrokenThreadPool);
  EXPECT_THROW(ex.submit([] {}), cf::BrokenThreadPool);
  for (auto& f : accepted) EXPECT_THROW(f.result(kDeadlock), cf::BrokenExecutor);
  EXPECT_EQ(ran.load(), 0);
}

// CPython: tasks already running on other threads are unaffected by another worker's failure.
TEST(ThreadPoolInitializerTest, RunningTaskFinishesWhenAnotherWorkersInitializerFails) {
  cftest::CapturedErrors errors;
  cftest::Event task_running;
  cftest::Event fail_now;
  cftest::Event finish_task;
  std::atomic<int> calls{0};
  cf::ThreadPoolExecutor ex({.max_workers = 2, .initializer = [&] {
                               if (calls.fetch_add(1) == 0) return;  // the first worker is fine
                               fail_now.wait();
                               throw std::runtime_error("error in initializer");
                             }});
  ReleaseOnExit release_fail(fail_now);
  ReleaseOnExit release_finish(finish_task);
  auto running = ex.submit([&] {
    task_running.set();
    finish_task.wait();
    return 7;
  });
  ASSERT_TRUE(task_running.wait());
  auto pending = ex.submit([] { return 8; });  // starts the second worker, which will fail
  fail_now.set();
  EXPECT_THROW(static_cast<void>(pending.result(kDeadlock)), cf::BrokenThreadPool);
  EXPECT_THROW(ex.submit([] { return 9; }), cf::BrokenThreadPool);
  EXPECT_TRUE(running.running());
  finish_task.set();
  EXPECT_EQ(running.result(kDeadlock), 7);
}

TEST(ThreadPoolInitializerTest, InitializerThrowingANonStdExceptionAlsoBreaksThePool) {
  cftest::CapturedErrors errors;
  cf::ThreadPoolExecutor ex({.max_workers = 1, .initializer = [] { throw 42; }});
  auto f = ex.submit([] { return 1; });
  EXPECT_THROW(static_cast<void>(f.result(kDeadlock)), cf::BrokenThreadPool);
  EXPECT_THROW(ex.submit([] { return 0; }), cf::BrokenThreadPool);
  EXPECT_TRUE(any_message_contains(errors.messages(), "Exception in initializer"));
}

// A broken pool still shuts down and its destructor returns (no thread left blocked).
TEST(ThreadPoolInitializerTest, BrokenPoolShutsDownCleanly) {
  cftest::CapturedErrors errors;
  auto ex = std::make_unique<cf::ThreadPoolExecutor>(cf::ThreadPoolOptions{
      .max_workers = 3, .initializer = [] { throw std::runtime_error("error in initializer"); }});
  std::vector<cf::Future<int>> futures;
  for (int i = 0; i < 10; ++i) {
    try {
      futures.push_back(ex->submit([i] { return i; }));
    } catch (const cf::BrokenThreadPool&) {
    }
  }
  ex->shutdown(/*wait=*/true);
  ex.reset();
  for (auto& f : futures) {
    ASSERT_TRUE(f.done());
    EXPECT_THROW(static_cast<void>(f.result(0s)), cf::BrokenThreadPool);
  }
}
