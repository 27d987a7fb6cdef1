// docs/reference.md §1 (errors) and §2 (cf::Future<T>, cf::AnyFuture): the future state machine,
// results and timeouts, repr and InvalidStateError texts, Future<void>, AnyFuture, and concurrent
// use of one future. Ports CPython's test_future.FutureTests A1-A14 (callbacks, B1-B8, are in
// test_callbacks.cpp).
#include <atomic>
#include <chrono>
#include <exception>
#include <functional>
#include <latch>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <unordered_set>
#include <utility>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <concurrent/futures.hpp>

#include "test_util.hpp"

// Named (not anonymous) so that their demangled names, which repr() prints, are predictable.
namespace cftest_types {

struct ValueError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Point {
  int x = 0;
  int y = 0;
};

}  // namespace cftest_types

namespace {

using cftest::cancelled_future;
using cftest::exception_future;
using cftest::pending_future;
using cftest::running_future;
using cftest::successful_future;

template <class F>
std::string repr(const F& f) {
  std::ostringstream out;
  out << f;
  return out.str();
}

// Whole-string POSIX extended regex match (gtest's; std::regex trips GCC 12 warnings under ASan).
bool matches(const std::string& text, const std::string& pattern) {
  return ::testing::Value(text, ::testing::MatchesRegex(pattern));
}

template <class Fn>
std::chrono::steady_clock::duration time_of(Fn&& fn) {
  const auto start = std::chrono::steady_clock::now();
  std::forward<Fn>(fn)();
  return std::chrono::steady_clock::now() - start;
}

// Generous: "returns at once" must hold even on a loaded 2-core machine under a sanitizer.
constexpr auto kPromptly = 2s;

template <class Fut>
concept HasResult = requires(const Fut& f) {
  f.result();
};
template <class Fut>
concept HasSetResult = requires(const Fut& f) {
  f.set_result(1);
};

// ---------------------------------------------------------------------------------------------
// §1 Errors (and CPython's test_class_str, A13, reinterpreted: the type hierarchy is the C++
// counterpart of the classes' module and names).

TEST(ErrorsTest, EveryErrorDerivesFromCfErrorAndRuntimeError) {
  static_assert(std::is_base_of_v<std::runtime_error, cf::Error>);
  static_assert(std::is_base_of_v<cf::Error, cf::CancelledError>);
  static_assert(std::is_base_of_v<cf::Error, cf::TimeoutError>);
  static_assert(std::is_base_of_v<cf::Error, cf::InvalidStateError>);
  static_assert(std::is_base_of_v<cf::Error, cf::BrokenExecutor>);
  static_assert(std::is_base_of_v<cf::BrokenExecutor, cf::BrokenThreadPool>);
  static_assert(std::is_base_of_v<cf::BrokenExecutor, cf::BrokenProcessPool>);
  static_assert(std::is_base_of_v<cf::Error, cf::ShutdownError>);
  static_assert(std::is_base_of_v<cf::Error, cf::SerializationError>);
  static_assert(std::is_base_of_v<cf::Error, cf::RemoteError>);
  SUCCEED();
}

TEST(ErrorsTest, EveryErrorIsConstructibleFromAMessage) {
  EXPECT_STREQ(cf::Error("e").what(), "e");
  EXPECT_STREQ(cf::CancelledError("c").what(), "c");
  EXPECT_STREQ(cf::TimeoutError("t").what(), "t");
  EXPECT_STREQ(cf::InvalidStateError("i").what(), "i");
  EXPECT_STREQ(cf::BrokenExecutor("b").what(), "b");
  EXPECT_STREQ(cf::BrokenThreadPool("bt").what(), "bt");
  EXPECT_STREQ(cf::BrokenProcessPool("bp").what(), "bp");
  EXPECT_STREQ(cf::ShutdownError("s").what(), "s");
  EXPECT_STREQ(cf::SerializationError("se").what(), "se");
  EXPECT_STREQ(cf::RemoteError("r").what(), "r");
}

TEST(ErrorsTest, UserThrownErrorIsCaughtAsItsBases) {
  try {
    throw cf::BrokenThreadPool("initializer failed");
  } catch (const cf::BrokenExecutor& e) {
    EXPECT_STREQ(e.what(), "initializer failed");
    EXPECT_NE(dynamic_cast<const cf::Error*>(&e), nullptr);
    EXPECT_NE(dynamic_cast<const std::runtime_error*>(&e), nullptr);
  }
}

TEST(ErrorsTest, RemoteErrorCarriesTypeNameAndOriginalMessage) {
  static_assert(std::is_same_v<decltype(std::declval<const cf::RemoteError&>().type_name()),
                               const std::string&>);
  const cf::RemoteError e("my_app::ParseError", "bad token at 3");
  EXPECT_EQ(e.type_name(), "my_app::ParseError");
  EXPECT_STREQ(e.what(), "bad token at 3");
  const std::runtime_error& base = e;
  EXPECT_STREQ(base.what(), "bad token at 3");
}

TEST(ErrorsTest, LibraryThrowsTheDocumentedTypes) {
  // A timeout is a cf::TimeoutError, catchable as cf::Error and std::runtime_error.
  EXPECT_THROW(pending_future().result(0s), cf::TimeoutError);
  EXPECT_THROW(pending_future().result(0s), cf::Error);
  EXPECT_THROW(pending_future().result(0s), std::runtime_error);
  EXPECT_THROW(cancelled_future().result(0s), cf::CancelledError);
  EXPECT_THROW(successful_future().set_result(1), cf::InvalidStateError);
}

// ---------------------------------------------------------------------------------------------
// A1 test_repr, plus what cfutures adds (docs/reference.md §2): demangled type names and the shared
// state's address.

TEST(FutureReprTest, ReprOfEachStateMatchesCPython) {  // A1 test_repr
  const std::string at = "<Future at 0x[0-9a-f]+ state=";
  EXPECT_TRUE(matches(repr(pending_future()), at + "pending>")) << repr(pending_future());
  EXPECT_TRUE(matches(repr(running_future()), at + "running>")) << repr(running_future());
  EXPECT_TRUE(matches(repr(cancelled_future()), at + "cancelled>")) << repr(cancelled_future());
  EXPECT_TRUE(matches(repr(exception_future()), at + "finished raised std::runtime_error>"))
      << repr(exception_future());
  EXPECT_TRUE(matches(repr(successful_future()), at + "finished returned int>"))
      << repr(successful_future());
}

TEST(FutureReprTest, ReprNamesTypesDemangled) {
  cf::Future<cftest_types::Point> point;
  point.set_result({1, 2});
  EXPECT_TRUE(matches(repr(point),
                      "<Future at 0x[0-9a-f]+ state=finished returned "
                      "cftest_types::Point>"))
      << repr(point);

  cf::Future<double> failed;
  failed.set_exception(std::make_exception_ptr(cftest_types::ValueError("bad")));
  EXPECT_TRUE(matches(repr(failed),
                      "<Future at 0x[0-9a-f]+ state=finished raised "
                      "cftest_types::ValueError>"))
      << repr(failed);
}

TEST(FutureReprTest, ReprNamesANonStdExceptionType) {
  cf::Future<int> f;
  f.set_exception(std::make_exception_ptr(42));
  EXPECT_TRUE(matches(repr(f), "<Future at 0x[0-9a-f]+ state=finished raised int>")) << repr(f);
}

TEST(FutureReprTest, ReprAddressIsTheSharedStatesSoCopiesPrintAlike) {
  cf::Future<int> f;
  const cf::Future<int> copy = f;
  std::ostringstream address;
  address << static_cast<const void*>(cf::detail::Access::state(f).get());
  EXPECT_EQ(repr(f), "<Future at " + address.str() + " state=pending>");
  EXPECT_EQ(repr(copy), repr(f));
  EXPECT_EQ(repr(cf::AnyFuture(f)), repr(f));
  f.set_result(3);
  EXPECT_EQ(repr(copy), repr(f));
  // Another future in the same state prints another address.
  EXPECT_NE(repr(f), repr(successful_future()));
}

TEST(FutureReprTest, ReprOfFinishedVoidFutureSaysFinished) {
  cf::Future<void> f;
  f.set_result();
  EXPECT_TRUE(matches(repr(f), "<Future at 0x[0-9a-f]+ state=finished( returned [^>]+)?>"))
      << repr(f);
}

// ---------------------------------------------------------------------------------------------
// A2-A5: cancel(), cancelled(), done(), running(), state() in each state.

TEST(FutureStateTest, NewFutureIsPending) {
  const cf::Future<int> f;
  EXPECT_EQ(f.state(), cf::FutureState::pending);
  EXPECT_FALSE(f.done());
  EXPECT_FALSE(f.running());
  EXPECT_FALSE(f.cancelled());
}

TEST(FutureStateTest, CancelInEachState) {  // A2 test_cancel
  auto pending = pending_future();
  EXPECT_TRUE(pending.cancel());
  EXPECT_EQ(pending.state(), cf::FutureState::cancelled);

  auto running = running_future();
  EXPECT_FALSE(running.cancel());
  EXPECT_EQ(running.state(), cf::FutureState::running);

  auto cancelled = cancelled_future();
  EXPECT_TRUE(cancelled.cancel());
  EXPECT_EQ(cancelled.state(), cf::FutureState::cancelled);

  // CPython's CANCELLED_AND_NOTIFIED: cancelled, then acknowledged by an executor.
  auto notified = cancelled_future();
  EXPECT_FALSE(notified.set_running_or_notify_cancel());
  EXPECT_TRUE(notified.cancel());
  EXPECT_EQ(notified.state(), cf::FutureState::cancelled);

  auto failed = exception_future();
  EXPECT_FALSE(failed.cancel());
  EXPECT_EQ(failed.state(), cf::FutureState::finished);

  auto succeeded = successful_future();
  EXPECT_FALSE(succeeded.cancel());
  EXPECT_EQ(succeeded.state(), cf::FutureState::finished);
  EXPECT_EQ(succeeded.result(), 42);
}

TEST(FutureStateTest, CancelledIsTrueOnlyForCancelled) {  // A3 test_cancelled
  EXPECT_FALSE(pending_future().cancelled());
  EXPECT_FALSE(running_future().cancelled());
  EXPECT_TRUE(cancelled_future().cancelled());
  EXPECT_FALSE(exception_future().cancelled());
  EXPECT_FALSE(successful_future().cancelled());
}

TEST(FutureStateTest, DoneIsTrueForCancelledAndFinished) {  // A4 test_done
  EXPECT_FALSE(pending_future().done());
  EXPECT_FALSE(running_future().done());
  EXPECT_TRUE(cancelled_future().done());
  EXPECT_TRUE(exception_future().done());
  EXPECT_TRUE(successful_future().done());
}

TEST(FutureStateTest, RunningIsTrueOnlyForRunning) {  // A5 test_running
  EXPECT_FALSE(pending_future().running());
  EXPECT_TRUE(running_future().running());
  EXPECT_FALSE(cancelled_future().running());
  EXPECT_FALSE(exception_future().running());
  EXPECT_FALSE(successful_future().running());
}

TEST(FutureStateTest, StateNamesEachState) {
  EXPECT_EQ(pending_future().state(), cf::FutureState::pending);
  EXPECT_EQ(running_future().state(), cf::FutureState::running);
  EXPECT_EQ(cancelled_future().state(), cf::FutureState::cancelled);
  EXPECT_EQ(exception_future().state(), cf::FutureState::finished);
  EXPECT_EQ(successful_future().state(), cf::FutureState::finished);
}

TEST(FutureStateTest, SetRunningOrNotifyCancelInEachState) {
  auto pending = pending_future();
  EXPECT_TRUE(pending.set_running_or_notify_cancel());
  EXPECT_EQ(pending.state(), cf::FutureState::running);

  auto cancelled = cancelled_future();
  EXPECT_FALSE(cancelled.set_running_or_notify_cancel());
  EXPECT_EQ(cancelled.state(), cf::FutureState::cancelled);

  // CPython raises RuntimeError('Future in unexpected state') for running and finished.
  auto running = running_future();
  EXPECT_THROW(running.set_running_or_notify_cancel(), std::runtime_error);
  EXPECT_EQ(running.state(), cf::FutureState::running);

  auto succeeded = successful_future();
  EXPECT_THROW(succeeded.set_running_or_notify_cancel(), std::runtime_error);
  EXPECT_EQ(succeeded.result(), 42);

  auto failed = exception_future();
  EXPECT_THROW(failed.set_running_or_notify_cancel(), std::runtime_error);
  EXPECT_EQ(failed.state(), cf::FutureState::finished);
}

TEST(FutureStateTest, SetResultFromPendingOrRunningFinishes) {
  cf::Future<int> direct;  // completed without ever running, as CPython allows
  direct.set_result(1);
  EXPECT_EQ(direct.state(), cf::FutureState::finished);
  EXPECT_EQ(direct.result(), 1);

  auto running = running_future();
  running.set_result(2);
  EXPECT_EQ(running.state(), cf::FutureState::finished);
  EXPECT_EQ(running.result(), 2);

  auto failing = running_future();
  failing.set_exception(std::make_exception_ptr(std::logic_error("x")));
  EXPECT_EQ(failing.state(), cf::FutureState::finished);
  EXPECT_THROW(failing.result(), std::logic_error);
}

TEST(FutureStateTest, CopiesShareOneStateAndCompareEqual) {
  cf::Future<int> f;
  const cf::Future<int> copy = f;
  const cf::Future<int> other;
  EXPECT_TRUE(f == copy);
  EXPECT_FALSE(f == other);
  EXPECT_TRUE(f != other);
  EXPECT_EQ(std::hash<cf::Future<int>>{}(f), std::hash<cf::Future<int>>{}(copy));
  std::unordered_set<cf::Future<int>> set{f, copy, other};
  EXPECT_EQ(set.size(), 2U);

  f.set_result(5);
  EXPECT_TRUE(copy.done());
  EXPECT_EQ(copy.result(), 5);
  // result() is a reference into the one shared state.
  EXPECT_EQ(&copy.result(), &f.result());
}

TEST(FutureStateTest, MoveOnlyValue) {
  cf::Future<std::unique_ptr<int>> f;
  f.set_result(std::make_unique<int>(7));
  ASSERT_NE(f.result(), nullptr);
  EXPECT_EQ(*f.result(), 7);
}

TEST(FutureStateTest, FutureOutlivesItsExecutor) {
  cf::Future<int> f;
  {
    cf::ThreadPoolExecutor pool(1);
    f = pool.submit([] { return 6 * 7; });
  }
  EXPECT_EQ(f.result(cftest::kDeadlock), 42);
}

// ---------------------------------------------------------------------------------------------
// A6-A10: result() and exception(), with and without timeouts.

TEST(FutureResultTest, ResultWithZeroTimeoutInEachState) {  // A6 test_result_with_timeout
  EXPECT_THROW(pending_future().result(0s), cf::TimeoutError);
  EXPECT_THROW(running_future().result(0s), cf::TimeoutError);
  EXPECT_THROW(cancelled_future().result(0s), cf::CancelledError);
  auto notified = cancelled_future();
  notified.set_running_or_notify_cancel();
  EXPECT_THROW(notified.result(0s), cf::CancelledError);
  EXPECT_THROW(exception_future().result(0s), std::runtime_error);
  EXPECT_EQ(successful_future().result(0s), 42);
}

TEST(FutureResultTest, ResultRethrowsTheStoredExceptionObject) {
  cf::Future<int> f;
  f.set_exception(std::make_exception_ptr(cftest_types::ValueError("the message")));
  const std::exception_ptr stored = f.exception();
  const void* stored_address = nullptr;
  try {
    std::rethrow_exception(stored);
  } catch (const cftest_types::ValueError& e) {
    stored_address = &e;
  }
  try {
    (void)f.result();
    ADD_FAILURE() << "result() did not throw";
  } catch (const cftest_types::ValueError& e) {
    EXPECT_STREQ(e.what(), "the message");
    EXPECT_EQ(static_cast<const void*>(&e), stored_address);
  }
}

TEST(FutureResultTest, ZeroAndNegativeTimeoutsPollWithoutBlocking) {
  const auto pending = pending_future();
  const auto running = running_future();
  const auto took = time_of([&] {
    EXPECT_THROW((void)pending.result(0s), cf::TimeoutError);
    EXPECT_THROW((void)pending.result(-1s), cf::TimeoutError);
    EXPECT_THROW((void)running.result(-1ms), cf::TimeoutError);
    EXPECT_THROW((void)pending.exception(0s), cf::TimeoutError);
    EXPECT_THROW((void)running.exception(-5s), cf::TimeoutError);
    EXPECT_THROW((void)pending.result(std::chrono::duration<double>(-0.5)), cf::TimeoutError);
  });
  EXPECT_LT(took, kPromptly);
}

TEST(FutureResultTest, TimeoutOnADoneFutureReturnsAtOnce) {
  const auto succeeded = successful_future();
  const auto failed = exception_future();
  const auto cancelled = cancelled_future();
  const auto took = time_of([&] {
    EXPECT_EQ(succeeded.result(1h), 42);
    EXPECT_EQ(succeeded.result(-1s), 42);
    EXPECT_EQ(succeeded.result(0s), 42);
    EXPECT_EQ(succeeded.exception(-1s), nullptr);
    EXPECT_NE(failed.exception(1h), nullptr);
    EXPECT_THROW((void)failed.result(-1s), std::runtime_error);
    EXPECT_THROW((void)cancelled.result(1h), cf::CancelledError);
    EXPECT_THROW((void)cancelled.exception(-1s), cf::CancelledError);
  });
  EXPECT_LT(took, kPromptly);
}

TEST(FutureResultTest, ResultTimesOutAfterTheTimeout) {
  const auto f = pending_future();
  const auto took = time_of([&] { EXPECT_THROW((void)f.result(50ms), cf::TimeoutError); });
  EXPECT_GE(took, 50ms);
  EXPECT_LT(took, 50ms + kPromptly);

  const auto took_double = time_of([&] {
    EXPECT_THROW((void)f.exception(std::chrono::duration<double>(0.03)), cf::TimeoutError);
  });
  EXPECT_GE(took_double, 30ms);
  EXPECT_FALSE(f.done());
}

TEST(FutureResultTest, HugeTimeoutDoesNotOverflow) {
  cf::Future<int> f;
  std::jthread setter([f] { f.set_result(9); });
  EXPECT_EQ(f.result(std::chrono::nanoseconds::max()), 9);
  EXPECT_EQ(f.result(std::chrono::hours::max()), 9);
  EXPECT_EQ(f.exception(std::chrono::seconds::max()), nullptr);
}

TEST(FutureResultTest, ResultWaitsForAResultSetByAnotherThread) {  // A7 test_result_with_success
  cf::Future<int> f;
  std::jthread setter([f] {
    // Gives the main thread time to block in result(); the test holds either way.
    std::this_thread::sleep_for(20ms);
    f.set_result(42);
  });
  EXPECT_EQ(f.result(cftest::kDeadlock), 42);
}

TEST(FutureResultTest, ResultThrowsCancelledWhenCancelledByAnotherThread) {  // A8
  cf::Future<int> f;
  std::jthread canceller([f] {
    std::this_thread::sleep_for(20ms);  // lets the main thread block first (not required)
    EXPECT_TRUE(f.cancel());
  });
  EXPECT_THROW((void)f.result(cftest::kDeadlock), cf::CancelledError);
}

TEST(FutureResultTest, ResultWithoutTimeoutWaitsForAnotherThread) {
  cf::Future<std::string> f;
  std::jthread setter([f] { f.set_result("done"); });
  EXPECT_EQ(f.result(), "done");
}

TEST(FutureResultTest, ExceptionWithZeroTimeoutInEachState) {  // A9 test_exception_with_timeout
  EXPECT_THROW((void)pending_future().exception(0s), cf::TimeoutError);
  EXPECT_THROW((void)running_future().exception(0s), cf::TimeoutError);
  EXPECT_THROW((void)cancelled_future().exception(0s), cf::CancelledError);
  const auto failed = exception_future();
  const std::exception_ptr e = failed.exception(0s);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e, failed.exception());  // the same stored object each time
  EXPECT_THROW(std::rethrow_exception(e), std::runtime_error);
  EXPECT_EQ(successful_future().exception(0s), nullptr);
}

TEST(FutureResultTest, ExceptionWaitsForAnExceptionSetByAnotherThread) {  // A10
  cf::Future<int> f;
  const auto error = std::make_exception_ptr(cftest_types::ValueError("os error"));
  std::jthread setter([f, error] {
    std::this_thread::sleep_for(20ms);  // lets the main thread block first (not required)
    f.set_exception(error);
  });
  const std::exception_ptr got = f.exception(cftest::kDeadlock);
  EXPECT_EQ(got, error);
  EXPECT_THROW(std::rethrow_exception(got), cftest_types::ValueError);
}

// ---------------------------------------------------------------------------------------------
// A11-A12: a second completion is rejected with CPython's message and the first outcome kept.

TEST(FutureInvalidStateTest, SecondSetResultRaisesAndKeepsFirstValue) {  // A11
  cf::Future<int> f;
  f.set_result(1);
  try {
    f.set_result(2);
    ADD_FAILURE() << "second set_result did not throw";
  } catch (const cf::InvalidStateError& e) {
    EXPECT_TRUE(matches(e.what(), "FINISHED: <Future at 0x[0-9a-f]+ state=finished returned int>"))
        << e.what();
    EXPECT_EQ(std::string(e.what()), "FINISHED: " + repr(f));
  }
  EXPECT_TRUE(f.done());
  EXPECT_EQ(f.result(), 1);
}

TEST(FutureInvalidStateTest, SecondSetExceptionRaisesAndKeepsFirstException) {  // A12
  cf::Future<int> f;
  const auto first = std::make_exception_ptr(cftest_types::ValueError("first"));
  f.set_exception(first);
  try {
    f.set_exception(std::make_exception_ptr(std::runtime_error("second")));
    ADD_FAILURE() << "second set_exception did not throw";
  } catch (const cf::InvalidStateError& e) {
    EXPECT_TRUE(matches(e.what(),
                        "FINISHED: <Future at 0x[0-9a-f]+ state=finished raised "
                        "cftest_types::ValueError>"))
        << e.what();
  }
  EXPECT_EQ(f.exception(), first);
}

TEST(FutureInvalidStateTest, SetResultAfterExceptionAndViceVersaRaise) {
  auto failed = exception_future();
  EXPECT_THROW(failed.set_result(1), cf::InvalidStateError);
  EXPECT_THROW((void)failed.result(), std::runtime_error);

  auto succeeded = successful_future();
  EXPECT_THROW(succeeded.set_exception(std::make_exception_ptr(std::runtime_error("x"))),
               cf::InvalidStateError);
  EXPECT_EQ(succeeded.result(), 42);
}

TEST(FutureInvalidStateTest, CompletingACancelledFutureRaisesCancelledText) {
  auto f = cancelled_future();
  try {
    f.set_result(1);
    ADD_FAILURE() << "set_result on a cancelled future did not throw";
  } catch (const cf::InvalidStateError& e) {
    EXPECT_TRUE(matches(e.what(), "CANCELLED: <Future at 0x[0-9a-f]+ state=cancelled>"))
        << e.what();
  }
  try {
    f.set_exception(std::make_exception_ptr(std::runtime_error("x")));
    ADD_FAILURE() << "set_exception on a cancelled future did not throw";
  } catch (const cf::InvalidStateError& e) {
    EXPECT_TRUE(matches(e.what(), "CANCELLED: <Future at 0x[0-9a-f]+ state=cancelled>"))
        << e.what();
  }
  EXPECT_TRUE(f.cancelled());
  EXPECT_THROW((void)f.result(0s), cf::CancelledError);
}

// ---------------------------------------------------------------------------------------------
// Future<void>

TEST(FutureVoidTest, SetResultFinishesAndResultReturns) {
  cf::Future<void> f;
  static_assert(std::is_void_v<decltype(f.result())>);
  EXPECT_THROW(f.result(0s), cf::TimeoutError);
  f.set_result();
  EXPECT_EQ(f.state(), cf::FutureState::finished);
  EXPECT_NO_THROW(f.result());
  EXPECT_NO_THROW(f.result(0s));
  EXPECT_EQ(f.exception(), nullptr);
  EXPECT_THROW(f.set_result(), cf::InvalidStateError);
}

TEST(FutureVoidTest, ExceptionAndCancelBehaveAsForValues) {
  cf::Future<void> failed;
  failed.set_exception(std::make_exception_ptr(std::out_of_range("oops")));
  EXPECT_THROW(failed.result(), std::out_of_range);
  EXPECT_NE(failed.exception(), nullptr);

  cf::Future<void> cancelled;
  EXPECT_TRUE(cancelled.cancel());
  EXPECT_THROW(cancelled.result(), cf::CancelledError);
  EXPECT_THROW(cancelled.set_result(), cf::InvalidStateError);
}

TEST(FutureVoidTest, ResultWaitsForAnotherThread) {
  cf::Future<void> f;
  std::jthread setter([f] { f.set_result(); });
  EXPECT_NO_THROW(f.result(cftest::kDeadlock));
  EXPECT_TRUE(f.done());
}

// ---------------------------------------------------------------------------------------------
// cf::AnyFuture

TEST(AnyFutureTest, ImplicitFromFutureAndEqualToIt) {
  cf::Future<int> f;
  const cf::AnyFuture a = f;
  const cf::AnyFuture copy = a;
  EXPECT_TRUE(a == f);
  EXPECT_TRUE(f == a);
  EXPECT_TRUE(a == copy);
  EXPECT_FALSE(a == cf::AnyFuture(cf::Future<int>()));
  EXPECT_FALSE(cf::Future<int>() == a);
  EXPECT_TRUE(a != cf::Future<int>());
}

TEST(AnyFutureTest, HashesLikeEqualHandles) {
  cf::Future<int> i;
  cf::Future<std::string> s;
  cf::Future<void> v;
  const std::hash<cf::AnyFuture> hash;
  EXPECT_EQ(hash(cf::AnyFuture(i)), hash(cf::AnyFuture(cf::Future<int>(i))));
  std::unordered_set<cf::AnyFuture> set{i, s, v, i, cf::AnyFuture(s)};
  EXPECT_EQ(set.size(), 3U);
  EXPECT_EQ(set.count(i), 1U);
  EXPECT_EQ(set.count(v), 1U);
  EXPECT_EQ(set.count(cf::Future<int>()), 0U);
}

TEST(AnyFutureTest, HasNoResultOrSetResult) {
  static_assert(!HasResult<cf::AnyFuture>);
  static_assert(!HasSetResult<cf::AnyFuture>);
  static_assert(HasResult<cf::Future<int>>);
  static_assert(HasSetResult<cf::Future<int>>);
  SUCCEED();
}

TEST(AnyFutureTest, StateQueriesFollowTheFuture) {
  cf::Future<std::string> f;
  const cf::AnyFuture a = f;
  EXPECT_EQ(a.state(), cf::FutureState::pending);
  EXPECT_FALSE(a.done());
  EXPECT_THROW((void)a.exception(0s), cf::TimeoutError);
  EXPECT_TRUE(a.set_running_or_notify_cancel());
  EXPECT_TRUE(a.running());
  EXPECT_TRUE(f.running());
  EXPECT_FALSE(a.cancel());
  f.set_result("x");
  EXPECT_TRUE(a.done());
  EXPECT_FALSE(a.cancelled());
  EXPECT_EQ(a.exception(0s), nullptr);
  EXPECT_EQ(a.state(), cf::FutureState::finished);
}

TEST(AnyFutureTest, CancelAndSetExceptionReachTheFuture) {
  cf::Future<int> c;
  const cf::AnyFuture ac = c;
  EXPECT_TRUE(ac.cancel());
  EXPECT_TRUE(c.cancelled());
  EXPECT_TRUE(ac.cancelled());
  EXPECT_FALSE(ac.set_running_or_notify_cancel());
  EXPECT_THROW((void)ac.exception(), cf::CancelledError);

  cf::Future<void> e;
  const cf::AnyFuture ae = e;
  ae.set_exception(std::make_exception_ptr(std::runtime_error("via any")));
  EXPECT_THROW(e.result(), std::runtime_error);
  EXPECT_EQ(ae.exception(), e.exception());
  EXPECT_THROW(ae.set_exception(std::make_exception_ptr(std::runtime_error("again"))),
               cf::InvalidStateError);
}

TEST(AnyFutureTest, ExceptionWaitsForAnotherThread) {
  cf::Future<double> f;
  const cf::AnyFuture a = f;
  std::jthread setter([f] { f.set_exception(std::make_exception_ptr(std::range_error("r"))); });
  const auto e = a.exception(cftest::kDeadlock);
  EXPECT_THROW(std::rethrow_exception(e), std::range_error);
}

TEST(AnyFutureTest, DoneCallbackReceivesAnAnyFutureEqualToTheOriginal) {
  cf::Future<int> f;
  const cf::AnyFuture a = f;
  int calls = 0;
  bool saw_equal = false;
  bool saw_done = false;
  a.add_done_callback([&](cf::AnyFuture got) {
    ++calls;
    saw_equal = (got == f);
    saw_done = got.done();
  });
  EXPECT_EQ(calls, 0);
  f.set_result(1);
  EXPECT_EQ(calls, 1);
  EXPECT_TRUE(saw_equal);
  EXPECT_TRUE(saw_done);
}

// ---------------------------------------------------------------------------------------------
// A14 test_get_snapshot, reinterpreted: cfutures has no snapshot, but every observer must see one
// consistent outcome, even while the future completes under them.

TEST(FutureConcurrencyTest, ConcurrentReadersOfAFinishedFutureAgree) {  // A14
  cf::Future<int> f;
  f.set_result(100);
  std::atomic<int> mismatches{0};
  {
    std::vector<std::jthread> readers;
    for (int t = 0; t < 4; ++t) {
      readers.emplace_back([&] {
        for (int i = 0; i < 1000; ++i) {
          const bool ok = f.done() && !f.cancelled() && !f.running() && f.result(0s) == 100 &&
                          f.exception(0s) == nullptr;
          if (!ok) mismatches.fetch_add(1);
        }
      });
    }
  }
  EXPECT_EQ(mismatches.load(), 0);
}

TEST(FutureConcurrencyTest, ReaderThatSeesDoneAlsoSeesTheValue) {
  for (int round = 0; round < 20; ++round) {
    cf::Future<std::vector<int>> f;
    std::atomic<int> torn{0};
    std::latch start(3);
    {
      std::vector<std::jthread> readers;
      for (int t = 0; t < 2; ++t) {
        readers.emplace_back([&] {
          start.arrive_and_wait();
          for (;;) {
            if (!f.done()) {
              std::this_thread::yield();  // a 2-core machine: let the setter run
              continue;
            }
            const std::vector<int>& v = f.result(0s);
            if (v.size() != 3 || v[2] != 3) torn.fetch_add(1);
            return;
          }
        });
      }
      start.arrive_and_wait();
      f.set_result({1, 2, 3});
    }
    ASSERT_EQ(torn.load(), 0) << "round " << round;
  }
}

TEST(FutureConcurrencyTest, ManyThreadsWaitingInResultAllGetTheValue) {
  constexpr int kThreads = 8;
  cf::Future<std::string> f;
  std::latch started(kThreads + 1);
  std::vector<const std::string*> seen(kThreads, nullptr);
  std::atomic<int> failures{0};
  {
    std::vector<std::jthread> waiters;
    for (int t = 0; t < kThreads; ++t) {
      waiters.emplace_back([&, t] {
        started.arrive_and_wait();
        try {
          seen[t] = &f.result(cftest::kDeadlock);
        } catch (...) {
          failures.fetch_add(1);
        }
      });
    }
    started.arrive_and_wait();
    std::jthread setter([f] { f.set_result(std::string(1000, 'x')); });
  }
  EXPECT_EQ(failures.load(), 0);
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_EQ(seen[t], &f.result()) << "thread " << t;
  }
  EXPECT_EQ(f.result(), std::string(1000, 'x'));
}

TEST(FutureConcurrencyTest, ManyThreadsWaitingInExceptionAllSeeTheError) {
  constexpr int kThreads = 6;
  cf::Future<int> f;
  const auto error = std::make_exception_ptr(std::runtime_error("shared"));
  std::latch started(kThreads + 1);
  std::atomic<int> saw_error{0};
  {
    std::vector<std::jthread> waiters;
    for (int t = 0; t < kThreads; ++t) {
      waiters.emplace_back([&] {
        started.arrive_and_wait();
        try {
          if (f.exception(cftest::kDeadlock) == error) saw_error.fetch_add(1);
        } catch (...) {
        }
      });
    }
    started.arrive_and_wait();
    f.set_exception(error);
  }
  EXPECT_EQ(saw_error.load(), kThreads);
}

TEST(FutureConcurrencyTest, RacingSetResultsExactlyOneWins) {
  constexpr int kThreads = 8;
  for (int round = 0; round < 10; ++round) {
    cf::Future<int> f;
    std::latch start(kThreads);
    std::atomic<int> winners{0};
    std::atomic<int> winner_value{-1};
    std::atomic<int> rejected{0};
    {
      std::vector<std::jthread> setters;
      for (int t = 0; t < kThreads; ++t) {
        setters.emplace_back([&, t] {
          start.arrive_and_wait();
          try {
            f.set_result(t);
            winners.fetch_add(1);
            winner_value.store(t);
          } catch (const cf::InvalidStateError&) {
            rejected.fetch_add(1);
          }
        });
      }
    }
    ASSERT_EQ(winners.load(), 1);
    EXPECT_EQ(rejected.load(), kThreads - 1);
    EXPECT_EQ(f.result(0s), winner_value.load());
  }
}

TEST(FutureConcurrencyTest, CancelRacingSetRunningHasOneWinner) {
  for (int round = 0; round < 50; ++round) {
    cf::Future<int> f;
    std::latch start(2);
    bool cancelled = false;
    bool started_running = false;
    {
      std::jthread canceller([&] {
        start.arrive_and_wait();
        cancelled = f.cancel();
      });
      std::jthread runner([&] {
        start.arrive_and_wait();
        started_running = f.set_running_or_notify_cancel();
      });
    }
    ASSERT_NE(cancelled, started_running) << "round " << round;
    EXPECT_EQ(f.state(), cancelled ? cf::FutureState::cancelled : cf::FutureState::running);
  }
}

TEST(FutureConcurrencyTest, CancelRacingSetResultHasOneWinner) {
  for (int round = 0; round < 50; ++round) {
    cf::Future<int> f;
    std::latch start(2);
    bool cancelled = false;
    bool set = false;
    {
      std::jthread canceller([&] {
        start.arrive_and_wait();
        cancelled = f.cancel();
      });
      std::jthread setter([&] {
        start.arrive_and_wait();
        try {
          f.set_result(1);
          set = true;
        } catch (const cf::InvalidStateError&) {
        }
      });
    }
    ASSERT_NE(cancelled, set) << "round " << round;
    EXPECT_EQ(f.cancelled(), cancelled);
  }
}

}  // namespace
