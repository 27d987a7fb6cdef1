// docs/reference.md §3, cf::as_completed: every future once, those already done first (in input
// order), then in completion order; a timeout that runs from the call and says "N (of M) futures
// unfinished"; duplicates counting once; the types it yields; and no reference kept to a future
// once it is yielded. Ports CPython's test_as_completed.AsCompletedTests D1-D5, with cfutures'
// deliberate difference: a cancelled future counts as completed at once (CPython's plain
// CANCELLED_FUTURE stays pending).
#include <array>
#include <chrono>
#include <cstddef>
#include <latch>
#include <list>
#include <memory>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include <concurrent/futures.hpp>

#include "test_util.hpp"

namespace {

using cftest::cancelled_future;
using cftest::exception_future;
using cftest::pending_future;
using cftest::running_future;
using cftest::successful_future;

using cftest::as_set;
using cftest::cancelled_and_notified_future;
using cftest::FutureSet;
using cftest::GeneratedRange;
using cftest::kPromptly;
using cftest::time_of;

template <class Fut>
struct Collected {
  std::vector<Fut> yielded;
  std::optional<std::string> timeout;  // the TimeoutError's text, if iteration ended with one
};

// Iterates an as_completed range to its end or its TimeoutError.
template <class Range>
auto collect(Range&& range) {
  Collected<typename decltype(range.begin())::value_type> out;
  try {
    for (auto f : range) out.yielded.push_back(std::move(f));
  } catch (const cf::TimeoutError& e) {
    out.timeout = e.what();
  }
  return out;
}

// CPython's ExecutorMixin with worker_count = 5. The events are declared before the pools so
// that they outlive the workers blocked on them, and TearDown opens the gate so that a failing
// test never leaves a pool joining a blocked task.
class AsCompletedTest : public ::testing::Test {
 protected:
  void TearDown() override { gate_.set(); }

  cf::Future<int> blocked() {
    return pool_.submit([this] {
      gate_.wait();
      return 0;
    });
  }
  cf::Future<int> mul(int x, int y) {
    return pool_.submit([x, y] { return x * y; });
  }

  cftest::Event gate_;
  cftest::Event started_;
  cf::ThreadPoolExecutor pool_{5};
  cf::ThreadPoolExecutor single_{1};
};

// ---------------------------------------------------------------------------------------------
// D1-D5

TEST_F(AsCompletedTest, YieldsEveryFutureOnce) {  // D1 test_no_timeout
  const std::vector inputs{cancelled_and_notified_future(), exception_future(), successful_future(),
                           mul(1, 2), mul(3, 4)};
  const auto got = collect(cf::as_completed(inputs));
  EXPECT_FALSE(got.timeout);
  EXPECT_EQ(got.yielded.size(), inputs.size());
  EXPECT_EQ(as_set(got.yielded), as_set(inputs));
}

TEST_F(AsCompletedTest, AlreadyDoneFuturesComeOutBeforeTheTimeout) {  // D2 test_future_times_out
  const std::vector pre_done{cancelled_and_notified_future(), exception_future(),
                             successful_future()};
  for (const auto timeout : {0ms, 100ms}) {
    auto f = blocked();
    std::vector inputs = pre_done;
    inputs.push_back(f);
    const auto got = collect(cf::as_completed(inputs, timeout));
    EXPECT_EQ(as_set(got.yielded), as_set(pre_done)) << "timeout " << timeout.count() << "ms";
    EXPECT_EQ(got.yielded.size(), 3U);
    EXPECT_EQ(got.timeout, "1 (of 4) futures unfinished");
  }
}

TEST_F(AsCompletedTest, DuplicateFuturesYieldOnce) {  // D3 test_duplicate_futures
  auto f = mul(2, 3);
  const auto got = collect(cf::as_completed(std::vector{f, f, f}));
  ASSERT_EQ(got.yielded.size(), 1U);
  EXPECT_EQ(got.yielded[0], f);

  // Any input range will do (CPython: itertools.repeat(f, 3)).
  const GeneratedRange<cf::Future<int>> repeated({f, f, f});
  EXPECT_EQ(collect(cf::as_completed(repeated, cftest::kDeadlock)).yielded.size(), 1U);
}

TEST(AsCompletedReferenceTest, FreesEachYieldedFutureWithTimeoutZero) {  // D4, first part
  std::vector<cf::Future<int>> futures(8);
  futures.push_back(cancelled_and_notified_future());
  futures.push_back(successful_future());
  int yielded = 0;
  bool timed_out = false;
  {
    auto completed = cf::as_completed(futures, 0s);
    try {
      for (auto it = completed.begin(); it != completed.end(); ++it) {
        std::weak_ptr<cf::detail::StateBase> weak;
        {
          cf::Future<int> f = *it;
          weak = cf::detail::Access::state(f);
          std::erase(futures, f);
        }
        EXPECT_TRUE(weak.expired()) << "as_completed still owns the future it yielded";
        ++yielded;
      }
    } catch (const cf::TimeoutError&) {
      timed_out = true;
    }
  }
  EXPECT_EQ(yielded, 2);
  EXPECT_TRUE(timed_out);
  EXPECT_EQ(futures.size(), 8U);
}

TEST(AsCompletedReferenceTest, FreesEachYieldedFutureAsTheyComplete) {  // D4, second part
  std::vector<cf::Future<int>> futures(8);
  futures.front().set_result(0);
  int yielded = 0;
  for (auto f : cf::as_completed(futures, cftest::kDeadlock)) {
    const std::weak_ptr<cf::detail::StateBase> weak = cf::detail::Access::state(f);
    std::erase(futures, f);
    f = cf::Future<int>();
    EXPECT_TRUE(weak.expired()) << "as_completed still owns the future it yielded";
    ++yielded;
    if (!futures.empty()) futures.front().set_result(yielded);
  }
  EXPECT_EQ(yielded, 8);
  EXPECT_TRUE(futures.empty());
}

TEST_F(AsCompletedTest, TimeoutMessageCountsTheUnfinished) {  // D5
  // Plain cancelled, unlike CPython's C&N: cfutures counts it as completed, so the text is the
  // same as CPython's.
  const auto got = collect(cf::as_completed(
      std::vector{cancelled_future(), pending_future(), running_future(), successful_future()},
      0s));
  EXPECT_EQ(got.yielded.size(), 2U);
  ASSERT_TRUE(got.timeout);
  EXPECT_EQ(*got.timeout, "2 (of 4) futures unfinished");

  const auto notified =
      collect(cf::as_completed(std::vector{cancelled_and_notified_future(), pending_future(),
                                           running_future(), successful_future()},
                               0s));
  EXPECT_EQ(notified.timeout, "2 (of 4) futures unfinished");
}

// ---------------------------------------------------------------------------------------------
// Order

TEST_F(AsCompletedTest, AlreadyDoneComeFirstInInputOrder) {
  auto p1 = pending_future();
  auto d1 = successful_future();
  auto p2 = pending_future();
  auto d2 = exception_future();
  auto c = cancelled_future();
  auto completed = cf::as_completed(std::vector{p1, d1, p2, d2, c}, cftest::kDeadlock);
  // Completed after the call: these come after every future that was done at the call.
  p2.set_result(2);
  p1.set_result(1);
  std::vector<cf::Future<int>> order;
  for (auto f : completed) order.push_back(f);
  EXPECT_EQ(order, (std::vector{d1, d2, c, p2, p1}));
}

TEST_F(AsCompletedTest, YieldsInCompletionOrder) {
  std::vector<cf::Future<int>> futures(3);
  auto completed = cf::as_completed(futures, cftest::kDeadlock);
  std::jthread completer([futures] {
    futures[2].set_result(2);
    futures[0].set_result(0);
    futures[1].set_result(1);
  });
  std::vector<int> order;
  for (auto f : completed) order.push_back(f.result());
  EXPECT_EQ(order, (std::vector{2, 0, 1}));
}

TEST_F(AsCompletedTest, YieldsEachCompletionWhileTheIteratorWaits) {
  // The completer waits for each yield before the next completion, so the iterating thread is
  // blocked (or about to block) when each future completes.
  std::vector<cf::Future<int>> futures(3);
  std::array<cftest::Event, 3> yielded;
  std::vector<int> order;
  {
    auto completed = cf::as_completed(futures, cftest::kDeadlock);
    std::jthread completer([&, futures] {
      futures[2].set_result(2);
      if (!yielded[0].wait()) return;
      futures[0].set_result(0);
      if (!yielded[1].wait()) return;
      futures[1].set_result(1);
    });
    std::size_t n = 0;
    for (auto f : completed) {
      order.push_back(f.result());
      yielded[n++].set();
    }
  }
  EXPECT_EQ(order, (std::vector{2, 0, 1}));
}

TEST_F(AsCompletedTest, PoolTasksComeOutAsTheyFinish) {
  auto slow = blocked();
  auto fast = mul(6, 7);
  std::vector<cf::Future<int>> order;
  for (auto f : cf::as_completed(std::vector{slow, fast}, cftest::kDeadlock)) {
    order.push_back(f);
    if (f == fast) gate_.set();  // only once fast has come out may slow finish
  }
  EXPECT_EQ(order, (std::vector{fast, slow}));
}

// ---------------------------------------------------------------------------------------------
// Timeouts

TEST_F(AsCompletedTest, TimeoutRunsFromTheCall) {
  auto done = successful_future();
  auto pending = pending_future();
  auto completed = cf::as_completed(std::vector{done, pending}, 1000ms);
  // Time passing between the call and the iteration is the point of this test.
  std::this_thread::sleep_for(1100ms);
  auto it = completed.begin();  // the done one still comes out after the deadline
  ASSERT_TRUE(it != completed.end());
  EXPECT_EQ(*it, done);
  std::optional<std::string> message;
  const auto took = time_of([&] {
    try {
      ++it;
    } catch (const cf::TimeoutError& e) {
      message = e.what();
    }
  });
  EXPECT_EQ(message, "1 (of 2) futures unfinished");
  // Had the clock started at the first iteration, ++ would have waited ~1 s more. The bound
  // leaves 700 ms for a loaded machine to take the thread off its CPU.
  EXPECT_LT(took, 700ms);
}

TEST_F(AsCompletedTest, TimeoutWithNothingDoneThrowsFromBegin) {
  auto p = pending_future();
  std::optional<std::string> message;
  const auto took = time_of([&] {
    auto completed = cf::as_completed(std::vector{p}, 30ms);
    try {
      (void)completed.begin();
    } catch (const cf::TimeoutError& e) {
      message = e.what();
    }
  });
  EXPECT_EQ(message, "1 (of 1) futures unfinished");
  EXPECT_GE(took, 30ms);
  EXPECT_LT(took, 30ms + kPromptly);
}

TEST_F(AsCompletedTest, TimeoutCountsDeduplicatedFutures) {
  auto p = pending_future();
  auto d = successful_future();
  const auto got = collect(cf::as_completed(std::vector{p, p, d, d}, 0s));
  EXPECT_EQ(got.yielded, std::vector{d});
  EXPECT_EQ(got.timeout, "1 (of 2) futures unfinished");
}

TEST_F(AsCompletedTest, TimeoutAfterSomeCompletedDuringIteration) {
  std::vector<cf::Future<int>> futures(3);
  std::jthread completer([f = futures[1]] { f.set_result(1); });
  const auto got = collect(cf::as_completed(futures, 100ms));
  EXPECT_EQ(got.yielded, std::vector{futures[1]});
  EXPECT_EQ(got.timeout, "2 (of 3) futures unfinished");
}

TEST_F(AsCompletedTest, NegativeTimeoutYieldsDoneThenThrows) {
  const auto got = collect(cf::as_completed(
      std::vector{pending_future(), successful_future(), exception_future()}, -1s));
  EXPECT_EQ(got.yielded.size(), 2U);
  EXPECT_EQ(got.timeout, "1 (of 3) futures unfinished");
}

TEST_F(AsCompletedTest, NoTimeoutErrorWhenAllAreDoneInTime) {
  auto f = mul(2, 2);
  const auto got = collect(cf::as_completed(std::vector{f, successful_future()}, 10s));
  EXPECT_FALSE(got.timeout);
  EXPECT_EQ(got.yielded.size(), 2U);
}

// ---------------------------------------------------------------------------------------------
// Cancelled and failed futures

TEST_F(AsCompletedTest, CancelledFutureIsYieldedAtOnce) {
  // CPython: as_completed([cancelled_future], timeout=.05) raises "1 (of 1) futures unfinished".
  auto c = cancelled_future();
  const auto got = collect(cf::as_completed(std::vector{c}, 0s));
  EXPECT_FALSE(got.timeout);
  EXPECT_EQ(got.yielded, std::vector{c});
}

TEST_F(AsCompletedTest, CancelFromAnotherThreadIsYielded) {
  auto p = pending_future();
  std::jthread canceller([p] { EXPECT_TRUE(p.cancel()); });
  const auto got = collect(cf::as_completed(std::vector{p}, cftest::kDeadlock));
  ASSERT_EQ(got.yielded.size(), 1U);
  EXPECT_TRUE(got.yielded[0].cancelled());
}

TEST_F(AsCompletedTest, FuturesCancelledByShutdownAreYielded) {
  auto running = single_.submit([this] {
    started_.set();
    gate_.wait();
    return 0;
  });
  ASSERT_TRUE(started_.wait());  // else shutdown would cancel this one too
  std::vector<cf::Future<int>> queued;
  for (int i = 0; i < 3; ++i) queued.push_back(single_.submit([i] { return i; }));
  single_.shutdown(/*wait=*/false, /*cancel_futures=*/true);
  const auto got = collect(cf::as_completed(queued, cftest::kDeadlock));
  EXPECT_FALSE(got.timeout);
  EXPECT_EQ(as_set(got.yielded), as_set(queued));
  for (const auto& f : got.yielded) EXPECT_TRUE(f.cancelled());
  EXPECT_FALSE(running.done());
}

TEST_F(AsCompletedTest, FailedFuturesAreYieldedNotThrown) {
  auto failing = pool_.submit([]() -> int { throw std::runtime_error("task failed"); });
  const auto got = collect(cf::as_completed(std::vector{failing, exception_future()}));
  EXPECT_FALSE(got.timeout);
  ASSERT_EQ(got.yielded.size(), 2U);
  for (const auto& f : got.yielded) EXPECT_NE(f.exception(), nullptr);
}

TEST_F(AsCompletedTest, EmptyRangeEndsAtOnce) {
  const std::vector<cf::Future<int>> none;
  auto completed = cf::as_completed(none, 0s);
  EXPECT_TRUE(completed.begin() == completed.end());
  EXPECT_TRUE(collect(cf::as_completed(none)).yielded.empty());
}

// ---------------------------------------------------------------------------------------------
// What as_completed takes and yields

TEST_F(AsCompletedTest, RangeOfFutureYieldsFutures) {
  const std::vector futures{successful_future()};
  auto completed = cf::as_completed(futures);
  static_assert(std::is_same_v<decltype(*completed.begin()), cf::Future<int>>);
  for (auto f : completed) EXPECT_EQ(f.result(), 42);
}

TEST_F(AsCompletedTest, RangeOfAnyFutureYieldsAnyFutures) {
  cf::Future<std::string> s;
  s.set_result("s");
  const std::vector<cf::AnyFuture> futures{s, successful_future()};
  auto completed = cf::as_completed(futures, 0s);
  static_assert(std::is_same_v<decltype(*completed.begin()), cf::AnyFuture>);
  EXPECT_EQ(collect(std::move(completed)).yielded.size(), 2U);
}

TEST_F(AsCompletedTest, BracedListOfMixedTypes) {
  cf::Future<int> i;
  cf::Future<std::string> s;
  cf::Future<void> v;
  v.set_result();
  auto completed = cf::as_completed({i, s, v}, cftest::kDeadlock);
  static_assert(std::is_same_v<decltype(*completed.begin()), cf::AnyFuture>);
  std::jthread setter([i, s] {
    s.set_result("s");
    i.set_result(1);
  });
  const auto got = collect(std::move(completed));
  EXPECT_FALSE(got.timeout);
  ASSERT_EQ(got.yielded.size(), 3U);
  EXPECT_TRUE(got.yielded[0] == v);  // done at the call
  EXPECT_TRUE(got.yielded[1] == s);  // then in completion order
  EXPECT_TRUE(got.yielded[2] == i);

  const auto without_timeout = collect(cf::as_completed({v, i, v}));
  EXPECT_EQ(without_timeout.yielded.size(), 2U);
}

TEST_F(AsCompletedTest, AcceptsOtherContainers) {
  const std::list<cf::Future<int>> list{successful_future(), exception_future()};
  EXPECT_EQ(collect(cf::as_completed(list)).yielded.size(), 2U);
}

// ---------------------------------------------------------------------------------------------
// No stale references, abandoned ranges

TEST(AsCompletedReferenceTest, AbandonedRangeUnregistersFromPendingFutures) {
  // If the range left its waiter registered, completing the futures after it is gone would reach
  // freed memory (AddressSanitizer reports it).
  std::vector<cf::Future<int>> futures(3);
  futures[0].set_result(0);
  {
    auto completed = cf::as_completed(futures, cftest::kDeadlock);
    auto it = completed.begin();
    EXPECT_EQ(*it, futures[0]);
  }
  { auto never_iterated = cf::as_completed(futures); }
  futures[1].set_result(1);
  futures[2].cancel();
  EXPECT_TRUE(futures[2].cancelled());
}

TEST(AsCompletedReferenceTest, AbandonedRangeReleasesTheFutures) {
  std::vector<cf::Future<int>> futures(2);
  const auto weak0 = std::weak_ptr(cf::detail::Access::state(futures[0]));
  const auto weak1 = std::weak_ptr(cf::detail::Access::state(futures[1]));
  futures[1].set_result(1);
  {
    auto completed = cf::as_completed(futures, 0s);
    futures.clear();
    auto it = completed.begin();
    (void)*it;  // yielded and dropped at once
    EXPECT_TRUE(weak1.expired());
  }
  EXPECT_TRUE(weak0.expired());
}

// ---------------------------------------------------------------------------------------------
// Concurrency

TEST(AsCompletedRaceTest, ConcurrentCompletionsAreEachYieldedOnce) {
  constexpr int kFutures = 100;
  constexpr int kSetters = 4;
  for (int round = 0; round < 5; ++round) {
    std::vector<cf::Future<int>> futures(kFutures);
    auto completed = cf::as_completed(futures, cftest::kDeadlock);
    std::latch start(kSetters + 1);
    std::vector<std::jthread> setters;
    for (int t = 0; t < kSetters; ++t) {
      setters.emplace_back([&, t] {
        start.arrive_and_wait();
        for (int i = t; i < kFutures; i += kSetters) {
          if (i % 9 == 0) {
            futures[i].cancel();
          } else {
            futures[i].set_result(i);
          }
        }
      });
    }
    start.arrive_and_wait();
    const auto got = collect(std::move(completed));
    ASSERT_FALSE(got.timeout) << *got.timeout;
    ASSERT_EQ(got.yielded.size(), static_cast<std::size_t>(kFutures));
    EXPECT_EQ(as_set(got.yielded), as_set(futures));
  }
}

TEST(AsCompletedRaceTest, RangeDestroyedRightAfterItsLastYieldIsSafe) {
  // The completing thread may still be inside its notification when the iterating thread takes
  // the future, finishes the loop and destroys the range; the range must not be freed under it
  // (ThreadSanitizer / AddressSanitizer report it).
  for (int round = 0; round < 200; ++round) {
    cf::Future<int> f;
    std::latch start(2);
    std::jthread setter([&] {
      start.arrive_and_wait();
      f.set_result(round);
    });
    std::size_t yielded = 0;
    {
      auto completed = cf::as_completed(std::vector{f}, cftest::kDeadlock);
      start.arrive_and_wait();
      for (auto got : completed) yielded += got == f ? 1 : 0;
    }
    ASSERT_EQ(yielded, 1U) << "round " << round;
  }
}

TEST_F(AsCompletedTest, InsideAOneWorkerPoolOnItsOwnTasksDoesNotDeadlock) {
  auto outer = single_.submit([this] {
    std::vector<cf::Future<int>> inner;
    for (int i = 0; i < 3; ++i) inner.push_back(single_.submit([i] { return i; }));
    int sum = 0;
    for (auto f : cf::as_completed(inner, cftest::kDeadlock)) sum += f.result();
    return sum;
  });
  EXPECT_EQ(outer.result(cftest::kDeadlock), 3);
}

}  // namespace

// Python's idiom: as_completed({executor.submit(f, x): x for x in xs}) iterates the dict's keys.
TEST(AsCompletedMapTest, MapKeyedByFuturesYieldsEachKeyOnce) {
  std::unordered_map<cf::Future<int>, int> future_to_input;
  for (int i = 0; i < 5; ++i) {
    cf::Future<int> f;
    f.set_result(i * i);
    future_to_input.emplace(f, i);
  }
  std::set<int> inputs;
  for (cf::Future<int> f : cf::as_completed(future_to_input, cftest::kDeadlock)) {
    const int input = future_to_input.at(f);
    EXPECT_EQ(f.result(), input * input);
    inputs.insert(input);
  }
  EXPECT_EQ(inputs, (std::set<int>{0, 1, 2, 3, 4}));
}
