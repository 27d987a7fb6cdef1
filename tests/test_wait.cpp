// docs/reference.md §3, cf::wait: ALL_COMPLETED / FIRST_COMPLETED / FIRST_EXCEPTION, timeouts that
// return instead of throwing, duplicates counting once, the types it gives back, and no references
// kept. Ports CPython's test_wait.WaitTests C1-C9, with cfutures' deliberate difference: a
// cancelled future counts as completed (not as raising) from the moment cancel() returns, where
// CPython's plain CANCELLED_FUTURE stays in not_done.
#include <chrono>
#include <cstddef>
#include <deque>
#include <latch>
#include <list>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <gtest/gtest.h>

#include <concurrent/futures.hpp>

#include "test_util.hpp"

namespace {

using cftest::cancelled_future;
using cftest::exception_future;
using cftest::pending_future;
using cftest::successful_future;

using cftest::as_set;
using cftest::cancelled_and_notified_future;
using cftest::FutureSet;
using cftest::GeneratedRange;
using cftest::kPromptly;
using cftest::time_of;

// CPython's ExecutorMixin with worker_count = 5. The gates are declared before the pools so that
// they outlive the workers blocked on them, and TearDown opens them so that a failing test never
// leaves a pool joining a blocked task.
class WaitTest : public ::testing::Test {
 protected:
  void TearDown() override {
    gate_.set();
    second_gate_.set();
  }

  // A task that runs until gate_ opens (CPython: a task blocked on an event).
  cf::Future<int> blocked() {
    return pool_.submit([this] {
      gate_.wait();
      return 0;
    });
  }
  cf::Future<int> mul(int x, int y) {
    return pool_.submit([x, y] { return x * y; });
  }
  cf::Future<int> raising() {
    return pool_.submit([]() -> int { throw std::domain_error("division by zero"); });
  }

  cftest::Event gate_;
  cftest::Event second_gate_;
  cftest::Event started_;
  cf::ThreadPoolExecutor pool_{5};
  cf::ThreadPoolExecutor single_{1};
};

// ---------------------------------------------------------------------------------------------
// C1-C9

TEST_F(WaitTest, DuplicateFuturesCountOnce) {  // C1 test_20369
  auto f = mul(1, 2);
  const auto r = cf::wait(std::vector{f, f}, cf::ALL_COMPLETED);
  ASSERT_EQ(r.done.size(), 1U);
  EXPECT_EQ(r.done[0], f);
  EXPECT_TRUE(r.not_done.empty());
  EXPECT_EQ(f.result(), 2);
}

TEST_F(WaitTest, DuplicatePendingFuturesCountOnce) {
  auto p = pending_future();
  auto d = successful_future();
  const auto r = cf::wait(std::vector{p, d, p, d, p}, 10ms);
  EXPECT_EQ(r.done.size(), 1U);
  EXPECT_EQ(r.not_done.size(), 1U);
  EXPECT_EQ(as_set(r.done), FutureSet{d});
  EXPECT_EQ(as_set(r.not_done), FutureSet{p});
}

TEST_F(WaitTest, FirstCompletedReturnsTheFinishedOne) {  // C2 test_first_completed
  auto f1 = mul(21, 2);
  auto f2 = blocked();
  const auto r = cf::wait(std::vector{f1, f2}, cftest::kDeadlock, cf::FIRST_COMPLETED);
  EXPECT_EQ(as_set(r.done), FutureSet{f1});
  EXPECT_EQ(as_set(r.not_done), FutureSet{f2});
}

TEST_F(WaitTest, FirstCompletedCountsACancelledFutureAsDone) {  // C2, cfutures' rule
  // CPython leaves its plain CANCELLED_FUTURE in not_done; cfutures counts it as completed
  // (docs/reference.md §3).
  auto cancelled = cancelled_future();
  auto f1 = mul(21, 2);
  auto f2 = blocked();
  const auto r = cf::wait(std::vector{cancelled, f1, f2}, cftest::kDeadlock, cf::FIRST_COMPLETED);
  EXPECT_EQ(as_set(r.done).count(cancelled), 1U);
  EXPECT_EQ(as_set(r.not_done).count(f2), 1U);
  EXPECT_EQ(r.done.size() + r.not_done.size(), 3U);  // f1 may or may not have finished yet
}

TEST_F(WaitTest, FirstCompletedReturnsAtOnceWhenSomeAreDone) {  // C3
  auto notified = cancelled_and_notified_future();
  auto succeeded = successful_future();
  auto f1 = blocked();
  cf::WaitResult<cf::Future<int>> r;
  const auto took = time_of([&] {
    r = cf::wait(std::vector{notified, succeeded, f1}, cf::FIRST_COMPLETED);
  });
  EXPECT_LT(took, kPromptly);
  EXPECT_EQ(as_set(r.done), (FutureSet{notified, succeeded}));
  EXPECT_EQ(as_set(r.not_done), FutureSet{f1});
}

TEST_F(WaitTest, FirstExceptionReturnsWhenOneRaises) {  // C4 test_first_exception
  auto f1 = mul(2, 21);
  auto f2 = pool_.submit([this]() -> int {
    second_gate_.wait();
    throw std::runtime_error("f2 failed");
  });
  auto f3 = blocked();
  // CPython: a helper thread lets f2 raise once f1 has completed.
  f1.add_done_callback([this](const cf::Future<int>&) { second_gate_.set(); });
  const auto r = cf::wait(std::vector{f1, f2, f3}, cftest::kDeadlock, cf::FIRST_EXCEPTION);
  EXPECT_EQ(as_set(r.done), (FutureSet{f1, f2}));
  EXPECT_EQ(as_set(r.not_done), FutureSet{f3});
}

TEST_F(WaitTest, FirstExceptionWithSomeAlreadyComplete) {  // C5
  auto succeeded = successful_future();
  auto cancelled = cancelled_future();
  auto notified = cancelled_and_notified_future();
  auto f1 = raising();
  auto f2 = blocked();
  const auto r = cf::wait(std::vector{succeeded, cancelled, notified, f1, f2}, cftest::kDeadlock,
                          cf::FIRST_EXCEPTION);
  // CPython keeps the plain CANCELLED future in not_done; in cfutures it is completed.
  EXPECT_EQ(as_set(r.done), (FutureSet{succeeded, cancelled, notified, f1}));
  EXPECT_EQ(as_set(r.not_done), FutureSet{f2});
}

TEST_F(WaitTest, FirstExceptionReturnsAtOnceWhenOneAlreadyFailed) {  // C6
  auto failed = exception_future();
  auto f1 = blocked();
  cf::WaitResult<cf::Future<int>> r;
  const auto took = time_of([&] { r = cf::wait(std::vector{failed, f1}, cf::FIRST_EXCEPTION); });
  EXPECT_LT(took, kPromptly);
  EXPECT_EQ(as_set(r.done), FutureSet{failed});
  EXPECT_EQ(as_set(r.not_done), FutureSet{f1});
}

TEST_F(WaitTest, AllCompletedCountsFailuresAndCancelsAsCompleted) {  // C7 test_all_completed
  auto succeeded = successful_future();
  auto notified = cancelled_and_notified_future();
  auto cancelled = cancelled_future();
  auto failed = exception_future();
  auto f1 = raising();
  auto f2 = mul(2, 21);
  const std::vector all{succeeded, notified, cancelled, failed, f1, f2};
  const auto r = cf::wait(all, cf::ALL_COMPLETED);
  EXPECT_EQ(as_set(r.done), as_set(all));
  EXPECT_EQ(r.done.size(), all.size());
  EXPECT_TRUE(r.not_done.empty());
}

TEST_F(WaitTest, TimeoutReturnsWithoutThrowing) {  // C8 test_timeout
  auto notified = cancelled_and_notified_future();
  auto failed = exception_future();
  auto succeeded = successful_future();
  auto f = blocked();
  cf::WaitResult<cf::Future<int>> r;
  const auto took = time_of([&] {
    EXPECT_NO_THROW(
        r = cf::wait(std::vector{notified, failed, succeeded, f}, 50ms, cf::ALL_COMPLETED));
  });
  EXPECT_GE(took, 50ms);
  EXPECT_LT(took, 50ms + kPromptly);
  EXPECT_EQ(as_set(r.done), (FutureSet{notified, failed, succeeded}));
  EXPECT_EQ(as_set(r.not_done), FutureSet{f});
}

TEST_F(WaitTest, HundredTasksReleasedTogetherAllComplete) {  // C9 test_pending_calls_race
  std::vector<cf::Future<int>> futures;
  for (int i = 0; i < 100; ++i) {
    futures.push_back(pool_.submit([this, i] {
      gate_.wait();
      return i;
    }));
  }
  gate_.set();
  const auto r = cf::wait(futures, cftest::kDeadlock, cf::ALL_COMPLETED);
  EXPECT_EQ(r.done.size(), 100U);
  EXPECT_TRUE(r.not_done.empty());
}

TEST(WaitRaceTest, HundredFuturesCompletedConcurrentlyWakeTheWaiter) {  // C9, without a pool
  constexpr int kFutures = 100;
  constexpr int kSetters = 4;
  for (int round = 0; round < 10; ++round) {
    std::vector<cf::Future<int>> futures(kFutures);
    std::latch start(kSetters + 1);
    std::vector<std::jthread> setters;
    for (int t = 0; t < kSetters; ++t) {
      setters.emplace_back([&, t] {
        start.arrive_and_wait();
        for (int i = t; i < kFutures; i += kSetters) {
          if (i % 7 == 0) {
            futures[i].cancel();
          } else if (i % 5 == 0) {
            futures[i].set_exception(std::make_exception_ptr(std::runtime_error("x")));
          } else {
            futures[i].set_result(i);
          }
        }
      });
    }
    start.arrive_and_wait();
    const auto r = cf::wait(futures, cftest::kDeadlock);
    ASSERT_EQ(r.done.size(), static_cast<std::size_t>(kFutures)) << "round " << round;
    ASSERT_TRUE(r.not_done.empty()) << "round " << round;
  }
}

TEST(WaitRaceTest, FirstCompletedRacingCompletions) {
  for (int round = 0; round < 20; ++round) {
    std::vector<cf::Future<int>> futures(8);
    std::latch start(2);
    std::jthread setter([&] {
      start.arrive_and_wait();
      for (std::size_t i = futures.size(); i-- > 0;) futures[i].set_result(0);
    });
    start.arrive_and_wait();
    const auto r = cf::wait(futures, cftest::kDeadlock, cf::FIRST_COMPLETED);
    ASSERT_GE(r.done.size(), 1U) << "round " << round;
    ASSERT_EQ(r.done.size() + r.not_done.size(), futures.size());
    for (const auto& f : r.done) EXPECT_TRUE(f.done());
  }
}

// ---------------------------------------------------------------------------------------------
// Cancellation: completed, not raising, from the moment cancel() returns.

TEST_F(WaitTest, CancelledFutureDoesNotSatisfyFirstException) {
  auto cancelled = cancelled_future();
  auto pending = pending_future();
  cf::WaitResult<cf::Future<int>> r;
  const auto took = time_of([&] {
    r = cf::wait(std::vector{cancelled, pending}, 50ms, cf::FIRST_EXCEPTION);
  });
  EXPECT_GE(took, 50ms);
  EXPECT_EQ(as_set(r.done), FutureSet{cancelled});
  EXPECT_EQ(as_set(r.not_done), FutureSet{pending});
}

TEST_F(WaitTest, CancelFromAnotherThreadWakesFirstCompleted) {
  auto a = pending_future();
  auto b = pending_future();
  std::jthread canceller([a] { EXPECT_TRUE(a.cancel()); });
  const auto r = cf::wait(std::vector{a, b}, cftest::kDeadlock, cf::FIRST_COMPLETED);
  EXPECT_EQ(as_set(r.done), FutureSet{a});
  EXPECT_EQ(as_set(r.not_done), FutureSet{b});
}

TEST_F(WaitTest, CancelFromAnotherThreadCompletesAllCompletedAndFirstException) {
  auto a = pending_future();
  auto b = pending_future();
  std::jthread completer([a, b] {
    a.cancel();
    b.set_result(1);
  });
  const auto r = cf::wait(std::vector{a, b}, cftest::kDeadlock, cf::FIRST_EXCEPTION);
  EXPECT_EQ(as_set(r.done), (FutureSet{a, b}));
  EXPECT_TRUE(r.not_done.empty());
  EXPECT_TRUE(a.cancelled());
}

TEST_F(WaitTest, FuturesCancelledByShutdownCompleteAWait) {
  // CPython's quirk: shutdown(cancel_futures=True) leaves such futures blocking wait forever.
  auto running = single_.submit([this] {
    started_.set();
    gate_.wait();
    return 0;
  });
  ASSERT_TRUE(started_.wait());  // else shutdown would cancel this one too
  std::vector<cf::Future<int>> queued;
  for (int i = 0; i < 3; ++i) queued.push_back(single_.submit([i] { return i; }));
  single_.shutdown(/*wait=*/false, /*cancel_futures=*/true);
  cf::WaitResult<cf::Future<int>> r;
  const auto took = time_of([&] { r = cf::wait(queued, cftest::kDeadlock); });
  EXPECT_LT(took, kPromptly);
  EXPECT_EQ(r.done.size(), 3U);
  EXPECT_TRUE(r.not_done.empty());
  for (const auto& f : queued) EXPECT_TRUE(f.cancelled());
  EXPECT_FALSE(running.done());
}

// ---------------------------------------------------------------------------------------------
// FIRST_EXCEPTION and FIRST_COMPLETED woken from other threads.

TEST_F(WaitTest, FirstExceptionWithoutFailuresWaitsForAll) {
  auto a = successful_future();
  auto b = pending_future();
  // a succeeded: that does not satisfy FIRST_EXCEPTION, so the wait runs to its timeout.
  const auto r1 = cf::wait(std::vector{a, b}, 50ms, cf::FIRST_EXCEPTION);
  EXPECT_EQ(as_set(r1.done), FutureSet{a});
  EXPECT_EQ(as_set(r1.not_done), FutureSet{b});

  std::jthread setter([b] { b.set_result(2); });
  const auto r2 = cf::wait(std::vector{a, b}, cftest::kDeadlock, cf::FIRST_EXCEPTION);
  EXPECT_EQ(as_set(r2.done), (FutureSet{a, b}));
  EXPECT_TRUE(r2.not_done.empty());
}

TEST_F(WaitTest, FirstExceptionWokenByAFailureInAnotherThread) {
  auto a = pending_future();
  auto b = pending_future();
  std::jthread failer([b] { b.set_exception(std::make_exception_ptr(std::runtime_error("b"))); });
  const auto r = cf::wait(std::vector{a, b}, cftest::kDeadlock, cf::FIRST_EXCEPTION);
  EXPECT_EQ(as_set(r.done), FutureSet{b});
  EXPECT_EQ(as_set(r.not_done), FutureSet{a});
}

TEST_F(WaitTest, FirstCompletedWokenByAResultInAnotherThread) {
  auto a = pending_future();
  auto b = pending_future();
  std::jthread setter([a] { a.set_result(1); });
  const auto r = cf::wait(std::vector{a, b}, cf::FIRST_COMPLETED);
  EXPECT_EQ(as_set(r.done), FutureSet{a});
  EXPECT_EQ(as_set(r.not_done), FutureSet{b});
}

TEST_F(WaitTest, AllCompletedWithoutTimeoutWaitsForEveryFuture) {
  std::vector<cf::Future<int>> futures(3);
  std::jthread setter([futures] {
    for (const auto& f : futures) f.set_result(1);
  });
  const auto r = cf::wait(futures);
  EXPECT_EQ(r.done.size(), 3U);
  EXPECT_TRUE(r.not_done.empty());
}

// ---------------------------------------------------------------------------------------------
// Timeouts

TEST_F(WaitTest, ZeroAndNegativeTimeoutsPoll) {
  auto d = successful_future();
  auto p = pending_future();
  const auto took = time_of([&] {
    for (const auto when : {cf::ALL_COMPLETED, cf::FIRST_COMPLETED, cf::FIRST_EXCEPTION}) {
      const auto zero = cf::wait(std::vector{d, p}, 0s, when);
      EXPECT_EQ(as_set(zero.done), FutureSet{d});
      EXPECT_EQ(as_set(zero.not_done), FutureSet{p});
      const auto negative = cf::wait(std::vector{d, p}, -1s, when);
      EXPECT_EQ(as_set(negative.done), FutureSet{d});
      EXPECT_EQ(as_set(negative.not_done), FutureSet{p});
    }
  });
  EXPECT_LT(took, kPromptly);
}

TEST_F(WaitTest, TimeoutNeverThrowsWhateverReturnWhen) {
  const std::vector<cf::Future<int>> pending(3);
  for (const auto when : {cf::ALL_COMPLETED, cf::FIRST_COMPLETED, cf::FIRST_EXCEPTION}) {
    cf::WaitResult<cf::Future<int>> r;
    EXPECT_NO_THROW(r = cf::wait(pending, 10ms, when));
    EXPECT_TRUE(r.done.empty());
    EXPECT_EQ(r.not_done.size(), 3U);
  }
}

TEST_F(WaitTest, EmptyRangeReturnsAtOnce) {
  const std::vector<cf::Future<int>> none;
  for (const auto when : {cf::ALL_COMPLETED, cf::FIRST_COMPLETED, cf::FIRST_EXCEPTION}) {
    const auto r = cf::wait(none, when);
    EXPECT_TRUE(r.done.empty());
    EXPECT_TRUE(r.not_done.empty());
  }
  const auto r = cf::wait(none, 0s);
  EXPECT_TRUE(r.done.empty());
}

TEST_F(WaitTest, AllDoneReturnsAtOnceWithoutTimeout) {
  const std::vector all{successful_future(), exception_future(), cancelled_future()};
  for (const auto when : {cf::ALL_COMPLETED, cf::FIRST_COMPLETED, cf::FIRST_EXCEPTION}) {
    const auto r = cf::wait(all, when);
    EXPECT_EQ(r.done.size(), 3U);
    EXPECT_TRUE(r.not_done.empty());
  }
}

// ---------------------------------------------------------------------------------------------
// What wait takes and gives back

TEST_F(WaitTest, RangeOfFutureGivesBackFutures) {
  std::vector<cf::Future<int>> futures{successful_future(), pending_future()};
  const auto r = cf::wait(futures, 0s);
  static_assert(std::is_same_v<std::remove_cvref_t<decltype(r)>, cf::WaitResult<cf::Future<int>>>);
  ASSERT_EQ(r.done.size(), 1U);
  EXPECT_EQ(r.done[0].result(), 42);  // a Future<int>, so result() is there

  const auto& as_const = futures;
  static_assert(std::is_same_v<decltype(cf::wait(as_const)), cf::WaitResult<cf::Future<int>>>);
  static_assert(std::is_same_v<decltype(cf::wait(std::vector<cf::Future<std::string>>{},
                                                 cf::FIRST_COMPLETED)),
                               cf::WaitResult<cf::Future<std::string>>>);
}

TEST_F(WaitTest, RangeOfAnyFutureGivesBackAnyFutures) {
  cf::Future<int> i = successful_future();
  cf::Future<std::string> s;
  const std::vector<cf::AnyFuture> futures{i, s};
  const auto r = cf::wait(futures, 10ms);
  static_assert(std::is_same_v<std::remove_cvref_t<decltype(r)>, cf::WaitResult<cf::AnyFuture>>);
  EXPECT_EQ(as_set(r.done), FutureSet{i});
  EXPECT_EQ(as_set(r.not_done), FutureSet{s});
}

TEST_F(WaitTest, BracedListOfMixedTypes) {
  cf::Future<int> i = successful_future();
  cf::Future<std::string> s;
  s.set_result("s");
  cf::Future<void> v;
  const auto r = cf::wait({i, s, v}, 10ms);
  static_assert(std::is_same_v<std::remove_cvref_t<decltype(r)>, cf::WaitResult<cf::AnyFuture>>);
  EXPECT_EQ(as_set(r.done), (FutureSet{i, s}));
  ASSERT_EQ(r.not_done.size(), 1U);
  EXPECT_TRUE(r.not_done[0] == v);
}

TEST_F(WaitTest, BracedListWithReturnWhenAndDuplicates) {
  cf::Future<double> d;
  cf::Future<void> v;
  std::jthread setter([d, v] {
    d.set_result(1.5);
    v.set_exception(std::make_exception_ptr(std::runtime_error("v")));
  });
  const auto all = cf::wait({d, v, d});
  EXPECT_EQ(all.done.size(), 2U);
  EXPECT_TRUE(all.not_done.empty());
  const auto first = cf::wait({d, v, v}, cf::FIRST_EXCEPTION);
  EXPECT_EQ(as_set(first.done), (FutureSet{d, v}));
  const auto timed = cf::wait({v, d}, 1s, cf::FIRST_COMPLETED);
  EXPECT_EQ(timed.done.size(), 2U);
}

TEST_F(WaitTest, AcceptsAnyInputRange) {
  auto d = successful_future();
  auto p = pending_future();
  const std::list<cf::Future<int>> list{d, p};
  EXPECT_EQ(cf::wait(list, 0s).done.size(), 1U);
  const std::deque<cf::AnyFuture> deque{d, p};
  EXPECT_EQ(cf::wait(deque, 0s).not_done.size(), 1U);
  const GeneratedRange<cf::Future<int>> generated({d, p});
  const auto r = cf::wait(generated, 0s, cf::FIRST_COMPLETED);
  static_assert(std::is_same_v<std::remove_cvref_t<decltype(r)>, cf::WaitResult<cf::Future<int>>>);
  EXPECT_EQ(as_set(r.done), FutureSet{d});
  EXPECT_EQ(as_set(r.not_done), FutureSet{p});
}

TEST_F(WaitTest, VoidFutures) {
  std::vector<cf::Future<void>> futures(2);
  std::jthread setter([futures] {
    for (const auto& f : futures) f.set_result();
  });
  const auto r = cf::wait(futures, cftest::kDeadlock);
  EXPECT_EQ(r.done.size(), 2U);
}

// ---------------------------------------------------------------------------------------------
// No stale references

TEST_F(WaitTest, KeepsNoReferenceToTheFuturesItReturned) {
  cf::Future<int> done = successful_future();
  cf::Future<int> pending;
  const auto weak_done = std::weak_ptr(cf::detail::Access::state(done));
  const auto weak_pending = std::weak_ptr(cf::detail::Access::state(pending));
  {
    auto r = cf::wait(std::vector{done, pending}, 10ms);
    EXPECT_EQ(r.done.size(), 1U);
  }
  done = cf::Future<int>();
  pending = cf::Future<int>();
  EXPECT_TRUE(weak_done.expired());
  EXPECT_TRUE(weak_pending.expired());
}

TEST_F(WaitTest, KeepsNoReferenceAfterWaitingForACompletion) {
  std::weak_ptr<cf::detail::StateBase> weak;
  {
    cf::Future<int> f;
    weak = cf::detail::Access::state(f);
    std::jthread setter([f] { f.set_result(1); });
    const auto r = cf::wait(std::vector{f}, cftest::kDeadlock);
    EXPECT_EQ(r.done.size(), 1U);
  }
  EXPECT_TRUE(weak.expired());
}

TEST_F(WaitTest, TimedOutWaitUnregistersFromPendingFutures) {
  // If wait left its waiter registered, completing the futures after it returned would reach a
  // waiter that no longer exists (AddressSanitizer reports it).
  std::vector<cf::Future<int>> futures(3);
  for (const auto when : {cf::ALL_COMPLETED, cf::FIRST_COMPLETED, cf::FIRST_EXCEPTION}) {
    const auto r = cf::wait(futures, 5ms, when);
    EXPECT_EQ(r.not_done.size(), 3U);
  }
  futures[0].set_result(1);
  futures[1].set_exception(std::make_exception_ptr(std::runtime_error("x")));
  futures[2].cancel();
  const auto r = cf::wait(futures, 0s);
  EXPECT_EQ(r.done.size(), 3U);
}

TEST_F(WaitTest, FirstCompletedUnregistersFromTheOthers) {
  std::vector<cf::Future<int>> futures(3);
  futures[1].set_result(1);
  const auto r = cf::wait(futures, cf::FIRST_COMPLETED);
  EXPECT_EQ(r.done.size(), 1U);
  futures[0].set_result(0);
  futures[2].set_result(2);
  EXPECT_EQ(cf::wait(futures, 0s).done.size(), 3U);
}

// ---------------------------------------------------------------------------------------------
// Inside a pool worker (docs/reference.md §4.1): waiting on the pool's own work does not deadlock.

TEST_F(WaitTest, WaitInsideAOneWorkerPoolOnItsOwnTaskDoesNotDeadlock) {
  auto outer = single_.submit([this] {
    auto inner = single_.submit([] { return 42; });
    const auto r = cf::wait(std::vector{inner}, cftest::kDeadlock);
    return r.done.size() == 1 ? inner.result() : -1;
  });
  EXPECT_EQ(outer.result(cftest::kDeadlock), 42);
}

}  // namespace

TEST(WaitMapTest, MapKeyedByFuturesWaitsOnItsKeys) {
  std::unordered_map<cf::Future<int>, std::string> future_to_name;
  cf::Future<int> done;
  done.set_result(1);
  cf::Future<int> pending;
  future_to_name.emplace(done, "done");
  future_to_name.emplace(pending, "pending");
  const auto result = cf::wait(future_to_name, 0s);
  static_assert(
      std::is_same_v<std::remove_cvref_t<decltype(result)>, cf::WaitResult<cf::Future<int>>>);
  ASSERT_EQ(result.done.size(), 1u);
  EXPECT_EQ(future_to_name.at(result.done[0]), "done");
  ASSERT_EQ(result.not_done.size(), 1u);
  EXPECT_EQ(future_to_name.at(result.not_done[0]), "pending");
}
