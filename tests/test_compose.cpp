// docs/reference.md §5, composing futures: Future<T>::then (both forms), cf::when_all and
// cf::when_any, each under success, errors, cancellation and timeouts. No CPython counterpart:
// these go beyond the module. Every wait is bounded (kDeadlock); pools that must hold a task back
// use an Event.
#include <pthread.h>

#include <atomic>
#include <exception>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <variant>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <concurrent/futures.hpp>

#include "test_util.hpp"

namespace {

using cftest::BlockedPool;

using cftest::kDeadlock;
using ::testing::HasSubstr;
using ::testing::StartsWith;

std::string current_thread_name() {
  char name[32] = {};
  pthread_getname_np(pthread_self(), name, sizeof(name));
  return name;
}

std::exception_ptr error(const char* what) {
  return std::make_exception_ptr(std::runtime_error(what));
}

using cftest::what_of;

// ---------------------------------------------------------------------------------------------
// then(fn): the value form

TEST(ThenTest, ValueFormGetsTheValue) {
  cf::Future<int> f;
  cf::Future<int> doubled = f.then([](int x) { return 2 * x; });
  EXPECT_FALSE(doubled.done());
  f.set_result(21);
  EXPECT_EQ(doubled.result(kDeadlock), 42);
}

TEST(ThenTest, ResultTypeFollowsFn) {
  cf::Future<int> f;
  cf::Future<std::string> s = f.then([](const int& x) { return std::to_string(x); });
  cf::Future<void> v = f.then([](int) {});
  f.set_result(7);
  EXPECT_EQ(s.result(kDeadlock), "7");
  EXPECT_NO_THROW(v.result(kDeadlock));
}

TEST(ThenTest, VoidFutureTakesFnWithoutArguments) {
  cf::Future<void> f;
  cf::Future<int> g = f.then([] { return 5; });
  f.set_result();
  EXPECT_EQ(g.result(kDeadlock), 5);
}

TEST(ThenTest, FnReturningAReferenceGivesACopy) {
  auto held = std::make_shared<std::string>("kept");
  cf::Future<int> f;
  cf::Future<std::string> g = f.then([held](int) -> const std::string& { return *held; });
  f.set_result(0);
  *held = "changed";
  EXPECT_EQ(g.result(kDeadlock), "kept");
}

TEST(ThenTest, GenericLambdaGetsTheValue) {
  cf::Future<int> f;
  auto g = f.then([](const auto& x) { return x + 1; });
  static_assert(std::is_same_v<decltype(g), cf::Future<int>>);
  f.set_result(1);
  EXPECT_EQ(g.result(kDeadlock), 2);
}

TEST(ThenTest, ChainsRunInOrder) {
  cf::Future<int> f;
  auto g = f.then([](int x) { return x + 1; }).then([](int x) { return x * 10; }).then([](int x) {
    return std::to_string(x);
  });
  f.set_result(4);
  EXPECT_EQ(g.result(kDeadlock), "50");
}

TEST(ThenTest, ValueFormPassesTheErrorUnchangedWithoutRunningFn) {
  cf::Future<int> f;
  std::atomic<int> calls{0};
  cf::Future<int> g = f.then([&](int x) {
    ++calls;
    return x;
  });
  const std::exception_ptr e = error("boom");
  f.set_exception(e);
  EXPECT_EQ(g.exception(kDeadlock), e);  // the same exception object
  EXPECT_EQ(calls.load(), 0);
  EXPECT_FALSE(g.cancelled());
}

TEST(ThenTest, ValueFormCancelledInputCancelsTheResult) {
  cf::Future<int> f;
  std::atomic<int> calls{0};
  cf::Future<int> g = f.then([&](int x) {
    ++calls;
    return x;
  });
  EXPECT_TRUE(f.cancel());
  EXPECT_TRUE(g.cancelled());
  EXPECT_THROW(g.result(kDeadlock), cf::CancelledError);
  EXPECT_EQ(calls.load(), 0);
}

TEST(ThenTest, ExceptionFromFnFailsTheResult) {
  cf::Future<int> f;
  cf::Future<int> g = f.then([](int) -> int { throw std::out_of_range("from fn"); });
  f.set_result(1);
  EXPECT_THROW(g.result(kDeadlock), std::out_of_range);
  EXPECT_EQ(what_of(g.exception(kDeadlock)), "from fn");
}

TEST(ThenTest, ValueFormAcceptsMoveOnlyValuesByReference) {
  cf::Future<std::unique_ptr<int>> f;
  cf::Future<int> g = f.then([](const std::unique_ptr<int>& p) { return *p; });
  f.set_result(std::make_unique<int>(9));
  EXPECT_EQ(g.result(kDeadlock), 9);
}

// ---------------------------------------------------------------------------------------------
// then(fn): the Future<T> form

TEST(ThenTest, FutureFormRunsOnSuccess) {
  cf::Future<int> f;
  cf::Future<int> g = f.then([](const cf::Future<int>& done) { return done.result() + 1; });
  f.set_result(1);
  EXPECT_EQ(g.result(kDeadlock), 2);
}

TEST(ThenTest, FutureFormRunsOnError) {
  cf::Future<int> f;
  cf::Future<std::string> g =
      f.then([](const cf::Future<int>& done) { return what_of(done.exception()); });
  f.set_exception(error("bad input"));
  EXPECT_EQ(g.result(kDeadlock), "bad input");
}

TEST(ThenTest, FutureFormRunsOnCancel) {
  cf::Future<int> f;
  cf::Future<bool> g = f.then([](cf::Future<int> done) { return done.cancelled(); });
  f.cancel();
  EXPECT_TRUE(g.result(kDeadlock));
}

TEST(ThenTest, FutureFormOfVoidFuture) {
  cf::Future<void> f;
  cf::Future<cf::FutureState> g = f.then([](const cf::Future<void>& done) { return done.state(); });
  f.set_exception(error("x"));
  EXPECT_EQ(g.result(kDeadlock), cf::FutureState::finished);
}

// ---------------------------------------------------------------------------------------------
// then(fn): which thread runs fn, cancellation of the result, timeouts

TEST(ThenTest, RunsAtOnceInTheCallingThreadWhenAlreadyDone) {
  cf::Future<int> f = cftest::successful_future();
  std::thread::id ran_in;
  cf::Future<int> g = f.then([&](int x) {
    ran_in = std::this_thread::get_id();
    return x;
  });
  EXPECT_TRUE(g.done());  // before then() returned
  EXPECT_EQ(ran_in, std::this_thread::get_id());
  EXPECT_EQ(g.result(kDeadlock), 42);
}

TEST(ThenTest, RunsInTheThreadThatCompletesTheFuture) {
  cf::Future<int> f;
  std::thread::id ran_in;
  cf::Future<int> g = f.then([&](int x) {
    ran_in = std::this_thread::get_id();
    return x;
  });
  std::thread::id completer;
  std::thread t([&] {
    completer = std::this_thread::get_id();
    f.set_result(3);
  });
  t.join();
  EXPECT_EQ(g.result(kDeadlock), 3);
  EXPECT_EQ(ran_in, completer);
}

TEST(ThenTest, RunsOnThePoolWorkerThatRanTheTask) {
  cf::ThreadPoolExecutor ex({.max_workers = 1, .thread_name_prefix = "inline"});
  cftest::Event go;  // the task must still be running when then() is called
  cf::Future<int> task = ex.submit([&go] {
    go.wait();
    return 1;
  });
  cf::Future<std::string> g = task.then([](int) { return current_thread_name(); });
  go.set();
  EXPECT_EQ(g.result(kDeadlock), "inline_0");
}

TEST(ThenTest, CancellingTheResultFirstMeansFnNeverRunsAndInputGoesOn) {
  cf::Future<int> f;
  std::atomic<int> calls{0};
  cf::Future<int> g = f.then([&](int x) {
    ++calls;
    return x;
  });
  EXPECT_TRUE(g.cancel());
  EXPECT_FALSE(f.cancelled());  // cancelling the result does not cancel the input
  f.set_result(1);
  EXPECT_EQ(f.result(kDeadlock), 1);
  EXPECT_EQ(calls.load(), 0);
  EXPECT_TRUE(g.cancelled());
}

TEST(ThenTest, FutureFormAlsoSkipsFnWhenResultCancelledFirst) {
  cf::Future<int> f;
  std::atomic<int> calls{0};
  cf::Future<int> g = f.then([&](const cf::Future<int>&) { return ++calls; });
  g.cancel();
  f.set_exception(error("e"));
  EXPECT_EQ(calls.load(), 0);
  EXPECT_TRUE(g.cancelled());
}

TEST(ThenTest, ResultIsRunningWhileFnRunsAndCannotBeCancelled) {
  cf::Future<int> f;
  cftest::Event entered;
  cftest::Event release;
  cf::Future<int> g = f.then([&](int x) {
    entered.set();
    release.wait();
    return x;
  });
  std::thread t([&] { f.set_result(5); });
  ASSERT_TRUE(entered.wait());
  EXPECT_TRUE(g.running());
  EXPECT_FALSE(g.cancel());
  release.set();
  t.join();
  EXPECT_EQ(g.result(kDeadlock), 5);
}

TEST(ThenTest, ResultTimesOutWhileTheInputIsPending) {
  cf::Future<int> f;
  cf::Future<int> g = f.then([](int x) { return x; });
  EXPECT_THROW(g.result(10ms), cf::TimeoutError);
  EXPECT_THROW(g.result(0s), cf::TimeoutError);
  f.set_result(8);
  EXPECT_EQ(g.result(kDeadlock), 8);
}

TEST(ThenTest, ResultCompletedByHandKeepsThatOutcome) {
  cf::Future<int> f;
  std::atomic<int> calls{0};
  cf::Future<int> g = f.then([&](int x) {
    ++calls;
    return x;
  });
  g.set_result(100);
  f.set_result(1);
  EXPECT_EQ(g.result(kDeadlock), 100);
  EXPECT_EQ(calls.load(), 0);
}

TEST(ThenTest, DropsFnOnceItHasRun) {
  auto token = std::make_shared<int>(0);
  std::weak_ptr<int> weak = token;
  cf::Future<int> f;
  cf::Future<int> g = f.then([token = std::move(token)](int x) { return x; });
  EXPECT_FALSE(weak.expired());
  f.set_result(1);
  EXPECT_EQ(g.result(kDeadlock), 1);
  EXPECT_TRUE(weak.expired());
}

// ---------------------------------------------------------------------------------------------
// then(executor, fn)

TEST(ThenOnExecutorTest, RunsFnOnTheExecutor) {
  cf::ThreadPoolExecutor other({.max_workers = 1, .thread_name_prefix = "then"});
  cf::Future<int> f;
  cf::Future<std::string> g =
      f.then(other, [](int x) { return current_thread_name() + ":" + std::to_string(x); });
  std::thread t([&] { f.set_result(4); });
  t.join();
  EXPECT_EQ(g.result(kDeadlock), "then_0:4");
}

TEST(ThenOnExecutorTest, AlreadyDoneFutureStillRunsFnOnTheExecutor) {
  cf::ThreadPoolExecutor other({.max_workers = 1, .thread_name_prefix = "then"});
  cf::Future<std::string> g =
      cftest::successful_future().then(other, [](int) { return current_thread_name(); });
  EXPECT_EQ(g.result(kDeadlock), "then_0");
}

TEST(ThenOnExecutorTest, NoWorkerIsBlockedWhileTheInputIsPending) {
  cf::ThreadPoolExecutor ex(1);
  cf::Future<int> f;
  cf::Future<int> g = f.then(ex, [](int x) { return x + 1; });
  // The only worker is free: a task submitted now runs although g's input is still pending.
  EXPECT_EQ(ex.submit([] { return 7; }).result(kDeadlock), 7);
  EXPECT_FALSE(g.done());
  f.set_result(1);
  EXPECT_EQ(g.result(kDeadlock), 2);
}

TEST(ThenOnExecutorTest, PassesTheErrorWithoutSubmitting) {
  BlockedPool blocked;  // fn would never run before release(): the error must not need it
  cf::Future<int> f;
  std::atomic<int> calls{0};
  cf::Future<int> g = f.then(blocked.pool(), [&](int x) {
    ++calls;
    return x;
  });
  const std::exception_ptr e = error("input failed");
  f.set_exception(e);
  EXPECT_EQ(g.exception(kDeadlock), e);
  f = cf::Future<int>();
  cf::Future<int> h = f.then(blocked.pool(), [&](int x) { return x; });
  f.cancel();
  EXPECT_TRUE(h.cancelled());
  blocked.release();
  blocked.pool().shutdown();
  EXPECT_EQ(calls.load(), 0);
}

TEST(ThenOnExecutorTest, FutureFormRunsOnErrorOnTheExecutor) {
  cf::ThreadPoolExecutor other({.max_workers = 1, .thread_name_prefix = "then"});
  cf::Future<int> f;
  cf::Future<std::string> g = f.then(other, [](const cf::Future<int>& done) {
    return current_thread_name() + ":" + what_of(done.exception());
  });
  f.set_exception(error("oops"));
  EXPECT_EQ(g.result(kDeadlock), "then_0:oops");
}

TEST(ThenOnExecutorTest, ExceptionFromFnFailsTheResult) {
  cf::ThreadPoolExecutor ex(1);
  cf::Future<int> g =
      cftest::successful_future().then(ex, [](int) -> int { throw std::logic_error("fn failed"); });
  EXPECT_THROW(g.result(kDeadlock), std::logic_error);
}

TEST(ThenOnExecutorTest, CancellingTheResultBeforeFnStartsMeansFnNeverRuns) {
  BlockedPool blocked;
  std::atomic<int> calls{0};
  cf::Future<int> f = cftest::successful_future();
  cf::Future<int> g = f.then(blocked.pool(), [&](int x) {
    ++calls;
    return x;
  });
  EXPECT_FALSE(g.running());  // queued behind the blocker
  EXPECT_TRUE(g.cancel());
  blocked.release();
  blocked.pool().shutdown();  // the queued task has run (and found g cancelled)
  EXPECT_EQ(calls.load(), 0);
  EXPECT_TRUE(g.cancelled());
  EXPECT_FALSE(f.cancelled());
}

TEST(ThenOnExecutorTest, ShutDownExecutorFailsTheResultWithShutdownError) {
  cf::ThreadPoolExecutor ex(1);
  cf::Future<int> f;
  cf::Future<int> g = f.then(ex, [](int x) { return x; });
  ex.shutdown();
  f.set_result(1);
  EXPECT_THROW(g.result(kDeadlock), cf::ShutdownError);
}

TEST(ThenOnExecutorTest, TaskDroppedByShutdownCancelFuturesCancelsTheResult) {
  BlockedPool blocked;
  std::atomic<int> calls{0};
  cf::Future<int> g = cftest::successful_future().then(blocked.pool(), [&](int x) {
    ++calls;
    return x;
  });
  blocked.pool().shutdown(/*wait=*/false, /*cancel_futures=*/true);
  EXPECT_TRUE(g.cancelled());
  blocked.release();
  blocked.pool().shutdown();
  EXPECT_EQ(calls.load(), 0);
}

TEST(ThenOnExecutorTest, BrokenExecutorFailsTheResult) {
  cftest::CapturedErrors quiet;  // the initializer's failure is reported
  cf::ThreadPoolExecutor ex(
      {.max_workers = 1, .initializer = [] { throw std::runtime_error("init"); }});
  EXPECT_THROW(ex.submit([] {}).result(kDeadlock), cf::BrokenThreadPool);
  cf::Future<int> g = cftest::successful_future().then(ex, [](int x) { return x; });
  EXPECT_THROW(g.result(kDeadlock), cf::BrokenExecutor);
}

TEST(ThenOnExecutorTest, ResultTimesOutUntilFnHasRun) {
  BlockedPool blocked;
  cf::Future<int> g = cftest::successful_future().then(blocked.pool(), [](int x) { return x + 1; });
  EXPECT_THROW(g.result(20ms), cf::TimeoutError);
  blocked.release();
  EXPECT_EQ(g.result(kDeadlock), 43);
}

// ---------------------------------------------------------------------------------------------
// when_all

TEST(WhenAllTest, TupleOfValuesInArgumentOrderWithVoidAsMonostate) {
  cf::Future<int> a;
  cf::Future<std::string> b;
  cf::Future<void> c;
  auto all = cf::when_all(a, b, c);
  static_assert(
      std::is_same_v<decltype(all), cf::Future<std::tuple<int, std::string, std::monostate>>>);
  c.set_result();
  b.set_result("two");
  EXPECT_FALSE(all.done());
  a.set_result(1);
  const auto& [x, y, z] = all.result(kDeadlock);
  EXPECT_EQ(x, 1);
  EXPECT_EQ(y, "two");
  EXPECT_EQ(z, std::monostate{});
}

TEST(WhenAllTest, NoArgumentsIsDoneAtOnce) {
  cf::Future<std::tuple<>> all = cf::when_all();
  EXPECT_TRUE(all.done());
  EXPECT_NO_THROW(all.result(0s));
}

TEST(WhenAllTest, TimesOutWhileAnInputIsPending) {
  cf::Future<int> a = cftest::successful_future();
  cf::Future<int> b;
  auto all = cf::when_all(a, b);
  EXPECT_THROW(all.result(20ms), cf::TimeoutError);
  b.set_result(2);
  EXPECT_EQ(all.result(kDeadlock), std::make_tuple(42, 2));
}

TEST(WhenAllTest, FailsWithTheFirstFailureInArgumentOrder) {
  cf::Future<int> a;
  cf::Future<int> b;
  cf::Future<int> c;
  auto all = cf::when_all(a, b, c);
  const std::exception_ptr eb = error("b");
  const std::exception_ptr ec = error("c");
  c.set_exception(ec);  // fails first in time, but comes after b in argument order
  b.set_exception(eb);
  EXPECT_FALSE(all.done());  // a is still pending
  a.set_result(1);
  EXPECT_EQ(all.exception(kDeadlock), eb);
}

TEST(WhenAllTest, WaitsForEveryInputEvenAfterAFailure) {
  cf::Future<int> a;
  cf::Future<int> b;
  auto all = cf::when_all(a, b);
  a.set_exception(error("a"));
  EXPECT_THROW(all.result(20ms), cf::TimeoutError);
  b.set_result(2);
  EXPECT_THROW(all.result(kDeadlock), std::runtime_error);
}

TEST(WhenAllTest, CancelledInputFailsItWithCancelledError) {
  cf::Future<int> a;
  cf::Future<int> b;
  auto all = cf::when_all(a, b);
  b.cancel();
  a.set_result(1);
  EXPECT_THROW(all.result(kDeadlock), cf::CancelledError);
  EXPECT_FALSE(all.cancelled());  // it failed; only its owner can cancel it
}

TEST(WhenAllTest, CancelBeforeAFailureInArgumentOrderWins) {
  cf::Future<int> a;
  cf::Future<int> b;
  auto all = cf::when_all(a, b);
  b.set_exception(error("b"));
  a.cancel();
  EXPECT_THROW(all.result(kDeadlock), cf::CancelledError);
}

TEST(WhenAllTest, RangeGivesVectorInInputOrder) {
  std::vector<cf::Future<int>> futures(5);
  auto all = cf::when_all(futures);
  static_assert(std::is_same_v<decltype(all), cf::Future<std::vector<int>>>);
  for (int i = 4; i >= 0; --i) futures[static_cast<std::size_t>(i)].set_result(i * i);
  EXPECT_EQ(all.result(kDeadlock), (std::vector<int>{0, 1, 4, 9, 16}));
}

TEST(WhenAllTest, RangeFailsWithFirstFailureInInputOrder) {
  std::vector<cf::Future<int>> futures(3);
  auto all = cf::when_all(futures);
  futures[2].set_exception(error("late in order"));
  futures[1].set_exception(error("early in order"));
  futures[0].set_result(0);
  EXPECT_EQ(what_of(all.exception(kDeadlock)), "early in order");
}

TEST(WhenAllTest, EmptyRangeIsDoneAtOnceWithEmptyVector) {
  std::vector<cf::Future<int>> none;
  auto all = cf::when_all(none);
  EXPECT_TRUE(all.done());
  EXPECT_TRUE(all.result(0s).empty());
}

TEST(WhenAllTest, RangeOfVoidFuturesGivesMonostates) {
  std::vector<cf::Future<void>> futures(2);
  auto all = cf::when_all(futures);
  static_assert(std::is_same_v<decltype(all), cf::Future<std::vector<std::monostate>>>);
  for (auto& f : futures) f.set_result();
  EXPECT_EQ(all.result(kDeadlock).size(), 2u);
}

TEST(WhenAllTest, DuplicateFuturesKeepTheirPositions) {
  cf::Future<int> f;
  std::vector<cf::Future<int>> futures{f, f, f};
  auto all = cf::when_all(futures);
  f.set_result(3);
  EXPECT_EQ(all.result(kDeadlock), (std::vector<int>{3, 3, 3}));
}

TEST(WhenAllTest, MixedTypesAsAnyFutureGiveTheFinishedInputs) {
  cf::Future<int> a;
  cf::Future<std::string> b;
  auto all = cf::when_all({a, b});
  static_assert(std::is_same_v<decltype(all), cf::Future<std::vector<cf::AnyFuture>>>);
  a.set_result(1);
  b.set_result("b");
  const std::vector<cf::AnyFuture>& done = all.result(kDeadlock);
  ASSERT_EQ(done.size(), 2u);
  EXPECT_TRUE(done[0] == a);
  EXPECT_TRUE(done[1] == b);
}

TEST(WhenAllTest, MixedAnyFutureAndTypedArguments) {
  cf::Future<int> a;
  cf::Future<double> b;
  auto all = cf::when_all(cf::AnyFuture(a), b);
  static_assert(std::is_same_v<decltype(all), cf::Future<std::tuple<cf::AnyFuture, double>>>);
  a.set_result(1);
  b.set_result(0.5);
  EXPECT_EQ(std::get<1>(all.result(kDeadlock)), 0.5);
}

TEST(WhenAllTest, AnyFutureRangeFailsWithTheInputsError) {
  cf::Future<int> a;
  cf::Future<std::string> b;
  std::vector<cf::AnyFuture> futures{a, b};
  auto all = cf::when_all(futures);
  a.set_result(1);
  b.set_exception(error("b failed"));
  EXPECT_EQ(what_of(all.exception(kDeadlock)), "b failed");
}

TEST(WhenAllTest, CancellingTheResultLeavesTheInputsAlone) {
  cf::Future<int> a;
  cf::Future<int> b;
  auto all = cf::when_all(a, b);
  EXPECT_TRUE(all.cancel());
  EXPECT_FALSE(a.cancelled());
  EXPECT_FALSE(b.cancelled());
  a.set_result(1);
  b.set_result(2);  // completing the cancelled result is quietly skipped
  EXPECT_TRUE(all.cancelled());
}

TEST(WhenAllTest, KeepsNoReferenceToAnInputOnceItIsDone) {
  cf::Future<int> pending;
  std::weak_ptr<cf::detail::StateBase> weak;
  cf::Future<std::tuple<int, int>> all;
  {
    cf::Future<int> a;
    weak = cf::detail::Access::state(a);
    all = cf::when_all(a, pending);
    a.set_result(1);
  }
  EXPECT_TRUE(weak.expired());
  pending.set_result(2);
  EXPECT_EQ(all.result(kDeadlock), std::make_tuple(1, 2));
}

TEST(WhenAllTest, OfPoolTasksCompletingConcurrently) {
  cf::ThreadPoolExecutor ex(4);
  std::vector<cf::Future<int>> futures;
  for (int i = 0; i < 200; ++i) futures.push_back(ex.submit([i] { return i; }));
  const std::vector<int> values = cf::when_all(futures).result(kDeadlock);
  ASSERT_EQ(values.size(), 200u);
  for (int i = 0; i < 200; ++i) EXPECT_EQ(values[static_cast<std::size_t>(i)], i);
}

// ---------------------------------------------------------------------------------------------
// when_any

TEST(WhenAnyTest, GivesTheIndexOfTheFirstToFinish) {
  std::vector<cf::Future<int>> futures(3);
  cf::Future<std::size_t> any = cf::when_any(futures);
  EXPECT_FALSE(any.done());
  futures[2].set_result(0);
  futures[0].set_result(0);
  EXPECT_EQ(any.result(kDeadlock), 2u);
}

TEST(WhenAnyTest, AnErrorCountsAsFinishing) {
  std::vector<cf::Future<int>> futures(2);
  auto any = cf::when_any(futures);
  futures[1].set_exception(error("x"));
  EXPECT_EQ(any.result(kDeadlock), 1u);
}

TEST(WhenAnyTest, ACancelCountsAsFinishing) {
  std::vector<cf::Future<int>> futures(2);
  auto any = cf::when_any(futures);
  futures[1].cancel();
  EXPECT_EQ(any.result(kDeadlock), 1u);
}

TEST(WhenAnyTest, AlreadyDoneInputsWinInInputOrder) {
  std::vector<cf::Future<int>> futures{cftest::pending_future(), cftest::exception_future(),
                                       cftest::successful_future()};
  auto any = cf::when_any(futures);
  EXPECT_TRUE(any.done());
  EXPECT_EQ(any.result(0s), 1u);
}

TEST(WhenAnyTest, EmptyRangeThrowsInvalidArgument) {
  std::vector<cf::Future<int>> none;
  EXPECT_THROW(cf::when_any(none), std::invalid_argument);
  EXPECT_THROW(cf::when_any(std::initializer_list<cf::AnyFuture>{}), std::invalid_argument);
}

TEST(WhenAnyTest, TimesOutWhileEveryInputIsPending) {
  std::vector<cf::Future<int>> futures(2);
  auto any = cf::when_any(futures);
  EXPECT_THROW(any.result(20ms), cf::TimeoutError);
  futures[0].set_result(1);
  EXPECT_EQ(any.result(kDeadlock), 0u);
}

TEST(WhenAnyTest, MixedTypes) {
  cf::Future<int> a;
  cf::Future<std::string> b;
  cf::Future<void> c;
  auto any = cf::when_any(a, b, c);
  auto any_list = cf::when_any({a, b, c});
  c.set_result();
  EXPECT_EQ(any.result(kDeadlock), 2u);
  EXPECT_EQ(any_list.result(kDeadlock), 2u);
}

TEST(WhenAnyTest, CancellingTheResultLeavesTheInputsAlone) {
  std::vector<cf::Future<int>> futures(2);
  auto any = cf::when_any(futures);
  EXPECT_TRUE(any.cancel());
  futures[0].set_result(1);
  EXPECT_TRUE(any.cancelled());
  EXPECT_FALSE(futures[1].cancelled());
}

TEST(WhenAnyTest, ConcurrentFinishersPickExactlyOne) {
  for (int round = 0; round < 20; ++round) {
    std::vector<cf::Future<int>> futures(4);
    auto any = cf::when_any(futures);
    std::vector<std::thread> threads;
    for (std::size_t i = 0; i < futures.size(); ++i) {
      threads.emplace_back([&futures, i] { futures[i].set_result(static_cast<int>(i)); });
    }
    for (auto& t : threads) t.join();
    EXPECT_LT(any.result(kDeadlock), futures.size());
  }
}

TEST(WhenAnyTest, WithPoolTasks) {
  BlockedPool blocked;
  cf::ThreadPoolExecutor fast(1);
  cf::Future<int> slow = blocked.pool().submit([] { return 1; });
  cf::Future<int> quick = fast.submit([] { return 2; });
  EXPECT_EQ(cf::when_any(slow, quick).result(kDeadlock), 1u);
  blocked.release();
}

// then, when_all and when_any compose without any thread waiting in between.
TEST(ComposeTest, WhenAllOfThenChainsOnAPool) {
  cf::ThreadPoolExecutor ex(2);
  std::vector<cf::Future<int>> chained;
  for (int i = 0; i < 10; ++i) {
    chained.push_back(ex.submit([i] { return i; }).then(ex, [](int x) { return x * x; }));
  }
  auto total = cf::when_all(chained).then([](const std::vector<int>& v) {
    int sum = 0;
    for (int x : v) sum += x;
    return sum;
  });
  EXPECT_EQ(total.result(kDeadlock), 285);
}

}  // namespace

// The executor of then(executor, fn) may be gone when f finishes: the returned future fails
// with ShutdownError instead of touching the destroyed executor (ASan would see it).
TEST(ThenExecutorLifetimeTest, ExecutorDestroyedBeforeCompletionGivesShutdownError) {
  cf::Future<int> f;
  cf::Future<int> next;
  {
    cf::ThreadPoolExecutor ex(1);
    next = f.then(ex, [](int x) { return x + 1; });
  }
  f.set_result(1);
  EXPECT_THROW(next.result(cftest::kDeadlock), cf::ShutdownError);
}
