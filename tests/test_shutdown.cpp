// docs/reference.md §4: Executor::shutdown and the executor's destructor — no new work after
// shutdown (ShutdownError, from submit and from map), wait, cancel_futures, calling it twice, and
// map ranges and futures that outlive their executor. Ports CPython's test_shutdown cases for the
// thread pool (F1, F4, F5, F7, F9–F11, F14).
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "executor_fixture.hpp"

namespace {

using cftest::collect;

int power(int base, int exponent) {
  int result = 1;
  for (int i = 0; i < exponent; ++i) result *= base;
  return result;
}

int square(int x) { return x * x; }

int absolute(int x) { return x < 0 ? -x : x; }

int add(int x, int y) { return x + y; }

// CPython's sleep tasks: here the sleep is the work, not a synchronisation.
int sleep_then_return(int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return ms;
}

// Runs `fn` (which may deadlock if the library is wrong) and aborts the test program if it has
// not returned within kDeadlock: a failed run, never a hung one.
template <class Fn>
void run_bounded(const char* what, Fn&& fn) {
  auto returned = std::make_shared<cftest::Event>();
  std::thread runner([&fn, returned] {
    fn();
    returned->set();
  });
  if (!returned->wait()) {
    std::fprintf(stderr, "deadlock: %s did not return in time\n", what);
    std::abort();
  }
  runner.join();
}

template <class Factory>
class ShutdownTest : public cftest::ExecutorTest<Factory> {};
TYPED_TEST_SUITE(ShutdownTest, cftest::AllExecutors, cftest::ExecutorName);

template <class Factory>
class ShutdownSharedMemoryTest : public cftest::ExecutorTest<Factory> {};
TYPED_TEST_SUITE(ShutdownSharedMemoryTest, cftest::SharedMemoryExecutors, cftest::ExecutorName);

// --- No new work after shutdown (F1 test_run_after_shutdown) ----------------------------------

// F1, with CPython's message.
TYPED_TEST(ShutdownTest, SubmitAfterShutdownThrowsShutdownError) {
  cf::Executor& ex = this->executor();
  ex.shutdown();
  try {
    ex.submit(power, 2, 5);
    FAIL() << "submit after shutdown did not throw";
  } catch (const cf::ShutdownError& e) {
    EXPECT_STREQ(e.what(), "cannot schedule new futures after shutdown");
  }
  EXPECT_THROW(ex.submit(power, 2, 5), cf::Error);
}

TYPED_TEST(ShutdownTest, SubmitAfterShutdownWithoutWaitThrowsShutdownError) {
  cf::Executor& ex = this->executor();
  cf::Future<int> before = ex.submit(power, 2, 5);
  ex.shutdown(/*wait=*/false);
  EXPECT_THROW(ex.submit(power, 2, 5), cf::ShutdownError);
  EXPECT_EQ(before.result(cftest::kDeadlock), 32);
}

// CPython raises at the map() call (its eager submit); with buffersize the first chunks are
// submitted by the call too.
TYPED_TEST(ShutdownTest, MapAfterShutdownThrowsShutdownErrorFromTheCall) {
  cf::Executor& ex = this->executor();
  ex.shutdown();
  for (std::size_t chunksize : {1u, 3u, 0u}) {
    for (std::size_t buffersize : {0u, 2u}) {
      SCOPED_TRACE(testing::Message() << "chunksize " << chunksize << " buffersize " << buffersize);
      const cf::MapOptions options{.chunksize = chunksize, .buffersize = buffersize};
      try {
        auto results = ex.map(square, cftest::ints(0, 10), options);
        ADD_FAILURE() << "map after shutdown did not throw";
      } catch (const cf::ShutdownError& e) {
        EXPECT_STREQ(e.what(), "cannot schedule new futures after shutdown");
      }
      EXPECT_THROW((void)ex.map_unordered(square, cftest::ints(0, 10), options), cf::ShutdownError);
      const std::vector<std::pair<int, int>> pairs{{1, 2}, {3, 4}};
      EXPECT_THROW((void)ex.starmap(add, pairs, options), cf::ShutdownError);
    }
  }
}

// --- shutdown(wait=true) (F4 test_hang_issue12364, F9, F10) ----------------------------------

// F4: shutdown(wait=true) runs the whole queue before it returns.
TYPED_TEST(ShutdownTest, ShutdownWaitRunsAllQueuedWorkBeforeReturning) {
  cf::Executor& ex = this->executor();
  std::vector<cf::Future<int>> futures;
  for (int i = 0; i < 50; ++i) futures.push_back(ex.submit(sleep_then_return, 2));
  run_bounded("shutdown(wait=true)", [&] { ex.shutdown(); });
  for (const cf::Future<int>& f : futures) {
    EXPECT_TRUE(f.done());
    EXPECT_EQ(f.result(0s), 2);
  }
}

TYPED_TEST(ShutdownTest, ShutdownTwiceIsHarmless) {
  cf::Executor& ex = this->executor();
  cf::Future<int> f = ex.submit(power, 3, 3);
  ex.shutdown();
  EXPECT_NO_THROW(ex.shutdown());
  EXPECT_NO_THROW(ex.shutdown(/*wait=*/false));
  EXPECT_NO_THROW(ex.shutdown(/*wait=*/true, /*cancel_futures=*/true));
  EXPECT_EQ(f.result(0s), 27);
  EXPECT_THROW(ex.submit(power, 2, 2), cf::ShutdownError);
}

TYPED_TEST(ShutdownTest, ConcurrentShutdownsAllReturnAfterTheWork) {
  auto ex = this->make_executor(2);
  std::vector<cf::Future<int>> futures;
  for (int i = 0; i < 10; ++i) futures.push_back(ex->submit(sleep_then_return, 2));
  run_bounded("two concurrent shutdowns", [&] {
    std::jthread a([&] { ex->shutdown(); });
    std::jthread b([&] { ex->shutdown(); });
  });
  for (const cf::Future<int>& f : futures) EXPECT_TRUE(f.done());
}

// docs/reference.md §4 ("Several threads"): submits from several threads racing with shutdown are
// each either accepted, and then run before shutdown(wait=true) returns, or refused with
// ShutdownError; none is lost.
TYPED_TEST(ShutdownTest, SubmitsRacingShutdownEitherRunOrThrowShutdownError) {
  constexpr int kSubmitters = 4;
  constexpr int kEach = 200;
  auto ex = this->make_executor(2);
  std::mutex mu;
  std::vector<std::pair<int, cf::Future<int>>> accepted;
  std::atomic<int> accepted_count{0};
  std::atomic<int> refused{0};
  run_bounded("submits racing shutdown", [&] {
    std::vector<std::thread> submitters;
    for (int t = 0; t < kSubmitters; ++t) {
      submitters.emplace_back([&, t] {
        for (int i = 0; i < kEach; ++i) {
          const int x = t * kEach + i;
          try {
            cf::Future<int> f = ex->submit(add, x, 1);
            std::lock_guard lock(mu);
            accepted.emplace_back(x, std::move(f));
            accepted_count.fetch_add(1);
          } catch (const cf::ShutdownError&) {
            refused.fetch_add(1);
          }
        }
      });
    }
    // Shut down while the submitters are at it: once some work is in, not all of it.
    while (accepted_count.load() < kSubmitters * kEach / 8 &&
           accepted_count.load() + refused.load() < kSubmitters * kEach) {
      std::this_thread::yield();
    }
    ex->shutdown();
    for (std::thread& t : submitters) t.join();
  });
  EXPECT_EQ(static_cast<int>(accepted.size()) + refused.load(), kSubmitters * kEach);
  for (const auto& [x, f] : accepted) {
    ASSERT_TRUE(f.done()) << "accepted before shutdown(wait=true) returned, yet not done: " << x;
    EXPECT_EQ(f.result(0s), x + 1);
  }
  EXPECT_THROW(ex->submit(add, 1, 1), cf::ShutdownError);
}

// The destructor is shutdown(wait=true): the pending work runs, and the futures outlive the
// executor.
TYPED_TEST(ShutdownTest, DestructorRunsPendingWork) {
  std::vector<cf::Future<int>> futures;
  {
    auto ex = this->make_executor(1);
    for (int i = 0; i < 20; ++i) futures.push_back(ex->submit(sleep_then_return, 1));
  }
  for (const cf::Future<int>& f : futures) {
    EXPECT_TRUE(f.done());
    EXPECT_EQ(f.result(0s), 1);
  }
}

// F9 test_context_manager_shutdown
TYPED_TEST(ShutdownTest, ScopedExecutorMapGivesAllResults) {
  std::vector<int> results;
  {
    auto ex = this->make_executor();
    results = collect(ex->map(absolute, cftest::ints(-5, 5)));
  }
  EXPECT_EQ(results, (std::vector<int>{5, 4, 3, 2, 1, 0, 1, 2, 3, 4}));
}

// F10 test_del_shutdown: the executor is destroyed (no shutdown call) with a map range alive;
// every result was computed.
TYPED_TEST(ShutdownTest, EagerMapRangeOutlivesItsExecutor) {
  for (std::size_t chunksize : {1u, 3u, 0u}) {
    SCOPED_TRACE(chunksize);
    auto ex = this->make_executor();
    auto results = ex->map(absolute, cftest::ints(-5, 5), cf::MapOptions{.chunksize = chunksize});
    ex.reset();
    EXPECT_EQ(collect(results), (std::vector<int>{5, 4, 3, 2, 1, 0, 1, 2, 3, 4}));
  }
}

// F11 test_shutdown_no_wait: shutdown(wait=false) with a map in flight; all results computed.
TYPED_TEST(ShutdownTest, ShutdownWithoutWaitStillComputesEveryMapResult) {
  auto ex = this->make_executor();
  auto results = ex->map(absolute, cftest::ints(-5, 5));
  ex->shutdown(/*wait=*/false);
  EXPECT_EQ(collect(results), (std::vector<int>{5, 4, 3, 2, 1, 0, 1, 2, 3, 4}));
}

// A lazy map range whose executor is gone: the items already submitted are there, the ++ that
// has to submit more throws ShutdownError (CPython gh-146392 asks for an error, not a silent
// truncation), and nothing crashes.
TYPED_TEST(ShutdownTest, LazyMapRangeOutlivingItsExecutorThrowsShutdownErrorOnIncrement) {
  auto ex = this->make_executor(2);
  auto results = ex->map(square, cftest::Count(0), cf::MapOptions{.buffersize = 2});
  ex.reset();
  auto it = results.begin();
  EXPECT_EQ(*it, 0);
  EXPECT_THROW(++it, cf::ShutdownError);
}

TYPED_TEST(ShutdownTest, LazyMapRangeAfterShutdownThrowsShutdownErrorOnIncrement) {
  auto ex = this->make_executor(2);
  auto results = ex->map(square, cftest::Count(0), cf::MapOptions{.buffersize = 2});
  ex->shutdown();
  auto it = results.begin();
  EXPECT_EQ(*it, 0);
  EXPECT_THROW(++it, cf::ShutdownError);
}

TYPED_TEST(ShutdownTest, LazyMapUnorderedRangeOutlivingItsExecutorThrowsShutdownError) {
  auto ex = this->make_executor(2);
  auto results = ex->map_unordered(square, cftest::Count(0), cf::MapOptions{.buffersize = 2});
  ex.reset();
  auto it = results.begin();
  auto [index, future] = *it;
  EXPECT_EQ(future.result(0s), static_cast<int>(index * index));
  EXPECT_THROW(++it, cf::ShutdownError);
}

// A future outlives the executor that made it.
TYPED_TEST(ShutdownTest, FutureOutlivesItsExecutor) {
  cf::Future<int> f;
  {
    auto ex = this->make_executor();
    f = ex->submit(power, 2, 10);
  }
  EXPECT_EQ(f.result(0s), 1024);
}

// --- cancel_futures (F5 test_cancel_futures) -------------------------------------------------

// F5 as CPython has it: 5 workers, 50 tasks of 0.1 s, shutdown(cancel_futures=true). Most were
// still queued and are cancelled; every other one finished normally. The 0.1 s is CPython's, and
// it matters: with 10 ms tasks, 50 submits under ThreadSanitizer on a loaded 2-CPU machine took
// long enough that every task had started, and nothing was left to cancel.
TYPED_TEST(ShutdownTest, CancelFuturesCancelsMostOfAQueue) {
  auto ex = this->make_executor(5);
  std::vector<cf::Future<int>> futures;
  for (int i = 0; i < 50; ++i) futures.push_back(ex->submit(sleep_then_return, 100));
  run_bounded("shutdown(cancel_futures=true)", [&] { ex->shutdown(true, true); });
  int cancelled = 0;
  for (const cf::Future<int>& f : futures) {
    if (f.cancelled()) {
      ++cancelled;
    } else {
      EXPECT_TRUE(f.done());
      EXPECT_EQ(f.exception(0s), nullptr);
    }
  }
  EXPECT_GT(cancelled, 20);
}

// F5, made deterministic: 2 workers blocked, 10 queued. shutdown(wait=true, cancel_futures=true)
// cancels the queued ones at once — threads waiting on them wake with CancelledError while the
// running tasks are still blocked — then waits for the running ones, which finish normally.
TYPED_TEST(ShutdownSharedMemoryTest, CancelFuturesCancelsQueuedWorkAndRunningWorkFinishes) {
  cftest::Event started[2];
  auto ex = this->make_executor(2);
  cftest::Gate gate;
  std::vector<cf::Future<int>> running;
  for (int i = 0; i < 2; ++i) {
    running.push_back(ex->submit([&started, i, g = gate.event()] {
      started[i].set();
      g->wait();
      return i;
    }));
  }
  ASSERT_TRUE(started[0].wait());
  ASSERT_TRUE(started[1].wait());
  std::vector<cf::Future<int>> queued;
  for (int i = 0; i < 10; ++i) queued.push_back(ex->submit([] { return -1; }));

  int woken_cancelled = 0;
  std::jthread waiter([&] {
    for (const cf::Future<int>& f : queued) {
      try {
        f.result(cftest::kDeadlock);
      } catch (const cf::CancelledError&) {
        ++woken_cancelled;
      } catch (...) {
      }
    }
  });
  std::jthread shutter([&] { ex->shutdown(/*wait=*/true, /*cancel_futures=*/true); });
  waiter.join();
  EXPECT_EQ(woken_cancelled, 10);
  for (const cf::Future<int>& f : queued) EXPECT_TRUE(f.cancelled());
  EXPECT_FALSE(running[0].done());
  EXPECT_FALSE(running[1].done());

  gate.open();
  run_bounded("shutdown(wait=true, cancel_futures=true)", [&] { shutter.join(); });
  EXPECT_EQ(running[0].result(0s), 0);
  EXPECT_EQ(running[1].result(0s), 1);
}

// F14 test_cancel_futures_wait_false: shutdown(wait=false, cancel_futures=true) returns at once
// with the queue cancelled; the running task still completes.
TYPED_TEST(ShutdownSharedMemoryTest, CancelFuturesWithoutWaitReturnsAtOnce) {
  cftest::Event started;
  auto ex = this->make_executor(1);
  cftest::Gate gate;
  cf::Future<int> running = ex->submit([&started, g = gate.event()] {
    started.set();
    g->wait();
    return 7;
  });
  ASSERT_TRUE(started.wait());
  std::vector<cf::Future<int>> queued;
  for (int i = 0; i < 5; ++i) queued.push_back(ex->submit([] { return -1; }));
  ex->shutdown(/*wait=*/false, /*cancel_futures=*/true);
  for (const cf::Future<int>& f : queued) EXPECT_TRUE(f.cancelled());
  EXPECT_FALSE(running.done());
  gate.open();
  EXPECT_EQ(running.result(cftest::kDeadlock), 7);
}

// docs/reference.md §3/§4, unlike CPython: futures cancelled by shutdown(cancel_futures=true) count
// as completed, so wait() and as_completed() blocked on them return.
TYPED_TEST(ShutdownSharedMemoryTest, CancelFuturesWakesWaitAndAsCompleted) {
  cftest::Event started;
  auto ex = this->make_executor(1);
  cftest::Gate gate;
  cf::Future<int> running = ex->submit([&started, g = gate.event()] {
    started.set();
    g->wait();
    return 0;
  });
  ASSERT_TRUE(started.wait());
  std::vector<cf::Future<int>> queued;
  for (int i = 0; i < 5; ++i) queued.push_back(ex->submit([i] { return i; }));

  std::size_t wait_done = 0;
  std::size_t wait_not_done = 99;
  int yielded = 0;
  bool as_completed_timed_out = false;
  std::jthread waiter([&] {
    auto r = cf::wait(queued, cftest::kDeadlock);
    wait_done = r.done.size();
    wait_not_done = r.not_done.size();
  });
  std::jthread iterator([&] {
    try {
      for (const cf::Future<int>& f : cf::as_completed(queued, cftest::kDeadlock)) {
        if (f.cancelled()) ++yielded;
      }
    } catch (const cf::TimeoutError&) {
      as_completed_timed_out = true;
    }
  });
  ex->shutdown(/*wait=*/false, /*cancel_futures=*/true);
  waiter.join();
  iterator.join();
  EXPECT_EQ(wait_done, 5u);
  EXPECT_EQ(wait_not_done, 0u);
  EXPECT_EQ(yielded, 5);
  EXPECT_FALSE(as_completed_timed_out);
  EXPECT_FALSE(running.done());
}

// A map's pending items are cancelled by shutdown(cancel_futures=true): each *it throws
// CancelledError for them and the iteration still reaches its end.
TYPED_TEST(ShutdownSharedMemoryTest, CancelFuturesCancelsPendingMapItems) {
  cftest::Event started;
  auto ex = this->make_executor(1);
  cftest::Gate gate;
  ex->submit([&started, g = gate.event()] {
    started.set();
    g->wait();
  });
  ASSERT_TRUE(started.wait());
  auto results = ex->map(square, cftest::ints(0, 3));
  ex->shutdown(/*wait=*/false, /*cancel_futures=*/true);
  gate.open();
  int items = 0;
  for (auto it = results.begin(); it != results.end() && items < 10; ++it, ++items) {
    EXPECT_THROW((void)*it, cf::CancelledError);
  }
  EXPECT_EQ(items, 3);
}

// --- shutdown(wait=false) (F11) --------------------------------------------------------------

// shutdown(wait=false) returns while work is still pending (the first task is blocked), and the
// pending work then completes.
TYPED_TEST(ShutdownSharedMemoryTest, ShutdownWithoutWaitReturnsAtOnceAndTheWorkCompletes) {
  std::mutex mu;
  std::vector<int> ran;
  cftest::Event started;
  auto ex = this->make_executor(1);
  cftest::Gate gate;
  cf::Future<void> blocker = ex->submit([&started, g = gate.event()] {
    started.set();
    g->wait();
  });
  ASSERT_TRUE(started.wait());
  std::vector<cf::Future<void>> queued;
  for (int i = 0; i < 5; ++i) {
    queued.push_back(ex->submit([&mu, &ran, i] {
      std::lock_guard lock(mu);
      ran.push_back(i);
    }));
  }
  ex->shutdown(/*wait=*/false);
  EXPECT_FALSE(blocker.done());
  gate.open();
  for (const cf::Future<void>& f : queued) EXPECT_NO_THROW(f.result(cftest::kDeadlock));
  std::lock_guard lock(mu);
  EXPECT_EQ(ran, (std::vector<int>{0, 1, 2, 3, 4}));
}

// The destructor waits for work that is still queued behind a running task.
TYPED_TEST(ShutdownSharedMemoryTest, DestructorWaitsForWorkQueuedBehindARunningTask) {
  std::mutex mu;
  std::vector<int> ran;
  cftest::Event started;
  {
    auto ex = this->make_executor(1);
    ex->submit([&started] {
      started.set();
      std::this_thread::sleep_for(20ms);  // still running when the destructor starts
    });
    for (int i = 0; i < 5; ++i) {
      ex->submit([&mu, &ran, i] {
        std::lock_guard lock(mu);
        ran.push_back(i);
      });
    }
    ASSERT_TRUE(started.wait());
  }
  std::lock_guard lock(mu);
  EXPECT_EQ(ran, (std::vector<int>{0, 1, 2, 3, 4}));
}

// --- F7 test_hang_gh94440 --------------------------------------------------------------------

// F7 as CPython has it: a future cancelled after a round trip does not stall shutdown.
TYPED_TEST(ShutdownTest, CancelledFutureDoesNotStallShutdown) {
  auto ex = this->make_executor(1);
  EXPECT_EQ(ex->submit(square, 3).result(cftest::kDeadlock), 9);
  ex->submit(square, 4).cancel();
  run_bounded("shutdown after a cancel", [&] { ex->shutdown(); });
}

// F7, made deterministic: the cancelled task is certainly still queued when cancelled.
TYPED_TEST(ShutdownSharedMemoryTest, CancelledQueuedTaskDoesNotStallShutdownAndNeverRuns) {
  std::atomic<bool> cancelled_ran{false};
  cftest::Event started;
  auto ex = this->make_executor(1);
  cftest::Gate gate;
  ex->submit([&started, g = gate.event()] {
    started.set();
    g->wait();
  });
  ASSERT_TRUE(started.wait());
  cf::Future<void> f = ex->submit([&cancelled_ran] { cancelled_ran = true; });
  ASSERT_TRUE(f.cancel());
  gate.open();
  run_bounded("shutdown after a cancel", [&] { ex->shutdown(); });
  EXPECT_TRUE(f.cancelled());
  EXPECT_FALSE(cancelled_ran.load());
}

}  // namespace

// A task may shut its own pool down (shutdown() waits by default); the pool's destructor, run
// by another thread afterwards, must still join that task's thread (ASan finds it otherwise).
TEST(ShutdownFromInsideTest, TaskShuttingDownItsOwnPoolThenDestructorIsSafe) {
  cftest::Event shut_down;
  {
    cf::ThreadPoolExecutor ex(2);
    ex.submit([&] { return 1; }).result(cftest::kDeadlock);
    auto f = ex.submit([&] {
      ex.shutdown();
      shut_down.set();
    });
    ASSERT_TRUE(shut_down.wait());
    f.result(cftest::kDeadlock);
    EXPECT_THROW(ex.submit([] {}), cf::ShutdownError);
  }
  SUCCEED();
}

int main(int argc, char** argv) {
  cf::serve_if_worker(argc, argv);  // the process-pool instances' spawn workers start here
  testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
