// docs/reference.md §2, done callbacks and the error handler: add_done_callback runs fn(future)
// once, in the completing thread in the order added, or at once in the calling thread when the
// future is already done; a callback's exception goes to the handler set by cf::set_error_handler.
// Ports CPython's test_future.FutureTests B1-B8.
#include <atomic>
#include <exception>
#include <functional>
#include <latch>
#include <memory>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <concurrent/futures.hpp>

#include "test_util.hpp"

namespace {

using ::testing::HasSubstr;

template <class F>
std::string repr(const F& f) {
  std::ostringstream out;
  out << f;
  return out.str();
}

void raise_doh(const cf::Future<int>& /*f*/) { throw std::runtime_error("doh!"); }

// ---------------------------------------------------------------------------------------------
// B1-B8

TEST(DoneCallbackTest, CallbackSeesTheResult) {  // B1 test_done_callback_with_result
  cf::Future<int> f;
  int calls = 0;
  int seen = 0;
  f.add_done_callback([&](const cf::Future<int>& done) {
    ++calls;
    seen = done.result(0s);
  });
  EXPECT_EQ(calls, 0);
  f.set_result(5);
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(seen, 5);
}

TEST(DoneCallbackTest, CallbackSeesTheException) {  // B2 test_done_callback_with_exception
  cf::Future<int> f;
  std::string message;
  f.add_done_callback([&](const cf::Future<int>& done) {
    try {
      std::rethrow_exception(done.exception(0s));
    } catch (const std::runtime_error& e) {
      message = e.what();
    }
  });
  f.set_exception(std::make_exception_ptr(std::runtime_error("test")));
  EXPECT_EQ(message, "test");
}

TEST(DoneCallbackTest, CallbackSeesTheCancel) {  // B3 test_done_callback_with_cancel
  cf::Future<int> f;
  bool was_cancelled = false;
  f.add_done_callback([&](const cf::Future<int>& done) { was_cancelled = done.cancelled(); });
  EXPECT_TRUE(f.cancel());
  EXPECT_TRUE(was_cancelled);
}

TEST(DoneCallbackTest, RaisingCallbackIsReportedAndLaterCallbacksStillRun) {  // B4
  cftest::CapturedErrors errors;
  cf::Future<int> f;
  bool raising_called = false;
  bool other_called = false;
  f.add_done_callback([&](const cf::Future<int>& done) {
    raising_called = true;
    raise_doh(done);
  });
  f.add_done_callback([&](const cf::Future<int>&) { other_called = true; });
  EXPECT_NO_THROW(f.set_result(5));
  EXPECT_TRUE(raising_called);
  EXPECT_TRUE(other_called);
  const auto messages = errors.messages();
  ASSERT_EQ(messages.size(), 1U);
  EXPECT_THAT(messages[0], HasSubstr("exception calling callback for <Future"));
  EXPECT_THAT(messages[0], HasSubstr("exception calling callback for " + repr(f)));
  EXPECT_THAT(messages[0], HasSubstr("doh!"));
  EXPECT_EQ(f.result(), 5);
}

TEST(DoneCallbackTest, CallbackOnSucceededFutureRunsAtOnce) {  // B5
  cf::Future<int> f;
  f.set_result(5);
  int seen = 0;
  f.add_done_callback([&](const cf::Future<int>& done) { seen = done.result(); });
  EXPECT_EQ(seen, 5);
}

TEST(DoneCallbackTest, CallbackOnFailedFutureRunsAtOnce) {  // B6
  cf::Future<int> f;
  f.set_exception(std::make_exception_ptr(std::runtime_error("test")));
  std::string message;
  f.add_done_callback([&](const cf::Future<int>& done) {
    try {
      std::rethrow_exception(done.exception());
    } catch (const std::runtime_error& e) {
      message = e.what();
    }
  });
  EXPECT_EQ(message, "test");
}

TEST(DoneCallbackTest, CallbackOnCancelledFutureRunsAtOnce) {  // B7
  cf::Future<int> f;
  EXPECT_TRUE(f.cancel());
  bool was_cancelled = false;
  f.add_done_callback([&](const cf::Future<int>& done) { was_cancelled = done.cancelled(); });
  EXPECT_TRUE(was_cancelled);
}

TEST(DoneCallbackTest, RaisingCallbackOnDoneFutureIsReportedNotThrown) {  // B8
  cftest::CapturedErrors errors;
  cf::Future<int> f;
  f.set_result(5);
  EXPECT_NO_THROW(f.add_done_callback(raise_doh));
  const auto messages = errors.messages();
  ASSERT_EQ(messages.size(), 1U);
  EXPECT_THAT(messages[0], HasSubstr("exception calling callback for <Future"));
  EXPECT_THAT(messages[0], HasSubstr("doh!"));
}

// ---------------------------------------------------------------------------------------------
// Order, count and thread of callbacks.

TEST(DoneCallbackTest, CallbacksRunOnceInTheOrderAdded) {
  cf::Future<int> f;
  std::vector<int> order;
  for (int i = 0; i < 5; ++i) {
    f.add_done_callback([&order, i](const cf::Future<int>&) { order.push_back(i); });
  }
  f.set_result(1);
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3, 4}));
  // Nothing that happens to a done future runs them again.
  EXPECT_FALSE(f.cancel());
  EXPECT_THROW(f.set_result(2), cf::InvalidStateError);
  EXPECT_EQ(order.size(), 5U);
}

TEST(DoneCallbackTest, SameCallableAddedTwiceRunsTwice) {
  cf::Future<int> f;
  int calls = 0;
  const std::function<void(cf::Future<int>)> count = [&](const cf::Future<int>&) { ++calls; };
  f.add_done_callback(count);
  f.add_done_callback(count);
  f.set_result(0);
  EXPECT_EQ(calls, 2);
}

TEST(DoneCallbackTest, CancelPendingFutureRunsCallbacksOnce) {
  cf::Future<int> f;
  int calls = 0;
  f.add_done_callback([&](const cf::Future<int>&) { ++calls; });
  EXPECT_TRUE(f.cancel());
  EXPECT_TRUE(f.cancel());  // cancelling again: true, callbacks not re-run
  EXPECT_FALSE(f.set_running_or_notify_cancel());
  EXPECT_THROW(f.set_result(1), cf::InvalidStateError);
  EXPECT_EQ(calls, 1);
}

TEST(DoneCallbackTest, CancelOfRunningFutureDoesNotRunCallbacks) {
  cf::Future<int> f;
  EXPECT_TRUE(f.set_running_or_notify_cancel());
  int calls = 0;
  f.add_done_callback([&](const cf::Future<int>&) { ++calls; });
  EXPECT_FALSE(f.cancel());
  EXPECT_EQ(calls, 0);
  f.set_result(3);
  EXPECT_EQ(calls, 1);
}

TEST(DoneCallbackTest, CallbacksRunInTheThreadThatSetsTheResult) {
  cf::Future<int> f;
  std::vector<std::thread::id> ran_in;
  for (int i = 0; i < 3; ++i) {
    f.add_done_callback(
        [&](const cf::Future<int>&) { ran_in.push_back(std::this_thread::get_id()); });
  }
  std::thread::id setter_id;
  std::thread setter([&] {
    setter_id = std::this_thread::get_id();
    f.set_result(1);
  });
  setter.join();
  ASSERT_EQ(ran_in.size(), 3U);
  for (const auto& id : ran_in) EXPECT_EQ(id, setter_id);
  EXPECT_NE(setter_id, std::this_thread::get_id());
}

TEST(DoneCallbackTest, CallbacksRunInTheThreadThatCancels) {
  cf::Future<void> f;
  std::thread::id ran_in;
  f.add_done_callback([&](const cf::Future<void>&) { ran_in = std::this_thread::get_id(); });
  std::thread::id canceller_id;
  std::thread canceller([&] {
    canceller_id = std::this_thread::get_id();
    EXPECT_TRUE(f.cancel());
  });
  canceller.join();
  EXPECT_EQ(ran_in, canceller_id);
}

TEST(DoneCallbackTest, CallbacksRunInTheThreadThatSetsTheException) {
  cf::Future<int> f;
  std::thread::id ran_in;
  f.add_done_callback([&](const cf::Future<int>&) { ran_in = std::this_thread::get_id(); });
  std::thread::id setter_id;
  std::thread setter([&] {
    setter_id = std::this_thread::get_id();
    f.set_exception(std::make_exception_ptr(std::runtime_error("x")));
  });
  setter.join();
  EXPECT_EQ(ran_in, setter_id);
}

TEST(DoneCallbackTest, CallbackOnDoneFutureRunsInTheCallingThreadBeforeReturning) {
  cf::Future<int> f;
  f.set_result(1);
  std::thread::id adder_id;
  std::thread::id ran_in;
  bool ran_before_return = false;
  std::thread adder([&] {
    adder_id = std::this_thread::get_id();
    f.add_done_callback([&](const cf::Future<int>&) { ran_in = std::this_thread::get_id(); });
    ran_before_return = ran_in == adder_id;
  });
  adder.join();
  EXPECT_TRUE(ran_before_return);
  EXPECT_EQ(ran_in, adder_id);
}

TEST(DoneCallbackTest, CallbackOfAnExecutorTaskRunsInTheWorkerThread) {
  // Declared before the pool so that they outlive its worker.
  cftest::Event release;
  cftest::Event called;
  std::thread::id task_thread;
  std::thread::id callback_thread;
  cf::ThreadPoolExecutor pool(1);
  auto f = pool.submit([&] {
    task_thread = std::this_thread::get_id();
    release.wait();
    return 1;
  });
  f.add_done_callback([&](const cf::Future<int>&) {
    callback_thread = std::this_thread::get_id();
    called.set();
  });
  release.set();
  ASSERT_TRUE(called.wait());
  EXPECT_EQ(callback_thread, task_thread);
  EXPECT_NE(callback_thread, std::this_thread::get_id());
}

TEST(DoneCallbackTest, CallbackSeesADoneFutureEqualToTheOriginal) {
  cf::Future<std::string> f;
  bool equal = false;
  bool done = false;
  std::string value;
  f.add_done_callback([&](const cf::Future<std::string>& got) {
    equal = got == f;
    done = got.done();
    value = got.result(0s);  // must not block: the future is done before callbacks run
  });
  f.set_result("v");
  EXPECT_TRUE(equal);
  EXPECT_TRUE(done);
  EXPECT_EQ(value, "v");
}

TEST(DoneCallbackTest, CallbackMayUseItsFutureWithoutDeadlock) {
  // Callbacks run outside the future's lock, so re-entering the future from one is fine.
  cf::Future<int> f;
  bool inner_ran = false;
  bool second_set_rejected = false;
  f.add_done_callback([&](const cf::Future<int>& done) {
    done.add_done_callback([&](const cf::Future<int>&) { inner_ran = true; });
    try {
      done.set_result(2);
    } catch (const cf::InvalidStateError&) {
      second_set_rejected = true;
    }
    EXPECT_FALSE(done.cancel());
  });
  f.set_result(1);
  EXPECT_TRUE(inner_ran);
  EXPECT_TRUE(second_set_rejected);
  EXPECT_EQ(f.result(), 1);
}

TEST(DoneCallbackTest, MoveOnlyCallbackIsAccepted) {
  cf::Future<int> f;
  auto owned = std::make_unique<int>(7);
  int seen = 0;
  f.add_done_callback([p = std::move(owned), &seen](const cf::Future<int>&) { seen = *p; });
  f.set_result(0);
  EXPECT_EQ(seen, 7);
}

TEST(DoneCallbackTest, CallbackIsReleasedOnceItHasRun) {
  cf::Future<int> f;
  auto token = std::make_shared<int>(0);
  const std::weak_ptr<int> weak = token;
  f.add_done_callback([token = std::move(token)](const cf::Future<int>&) { ++*token; });
  EXPECT_FALSE(weak.expired());
  f.set_result(1);
  EXPECT_TRUE(weak.expired()) << "the future still owns a callback that has run";

  auto later = std::make_shared<int>(0);
  const std::weak_ptr<int> weak_later = later;
  f.add_done_callback([later = std::move(later)](const cf::Future<int>&) { ++*later; });
  EXPECT_TRUE(weak_later.expired());
}

TEST(DoneCallbackTest, CallbackReleasedOnCancel) {
  cf::Future<int> f;
  auto token = std::make_shared<int>(0);
  const std::weak_ptr<int> weak = token;
  f.add_done_callback([token = std::move(token)](const cf::Future<int>&) {});
  EXPECT_TRUE(f.cancel());
  EXPECT_TRUE(weak.expired());
}

TEST(DoneCallbackTest, VoidFutureCallback) {
  cf::Future<void> f;
  int calls = 0;
  f.add_done_callback([&](const cf::Future<void>& done) {
    ++calls;
    done.result();
  });
  f.set_result();
  EXPECT_EQ(calls, 1);
}

TEST(DoneCallbackTest, CallbacksAddedWhileCompletingRunExactlyOnce) {
  constexpr int kAdders = 3;
  constexpr int kPerAdder = 200;
  for (int round = 0; round < 5; ++round) {
    cf::Future<int> f;
    std::atomic<int> calls{0};
    std::latch start(kAdders + 1);
    {
      std::vector<std::jthread> adders;
      for (int t = 0; t < kAdders; ++t) {
        adders.emplace_back([&] {
          start.arrive_and_wait();
          for (int i = 0; i < kPerAdder; ++i) {
            f.add_done_callback([&](const cf::Future<int>&) { calls.fetch_add(1); });
          }
        });
      }
      start.arrive_and_wait();
      f.set_result(1);
    }
    ASSERT_EQ(calls.load(), kAdders * kPerAdder) << "round " << round;
  }
}

// ---------------------------------------------------------------------------------------------
// The error handler

TEST(ErrorHandlerTest, SetErrorHandlerReturnsThePreviousHandler) {
  std::vector<std::string> first_got;
  std::vector<std::string> second_got;
  auto original = cf::set_error_handler([&](std::string_view m) { first_got.emplace_back(m); });
  auto was_first = cf::set_error_handler([&](std::string_view m) { second_got.emplace_back(m); });
  auto was_second = cf::set_error_handler(original);
  ASSERT_TRUE(was_first);
  ASSERT_TRUE(was_second);
  ASSERT_TRUE(original);
  was_first("to first");
  was_second("to second");
  EXPECT_EQ(first_got, std::vector<std::string>{"to first"});
  EXPECT_EQ(second_got, std::vector<std::string>{"to second"});
}

TEST(ErrorHandlerTest, EachRaisingCallbackIsReportedOnceWithItsMessage) {
  cftest::CapturedErrors errors;
  cf::Future<int> f;
  f.add_done_callback([](const cf::Future<int>&) { throw std::logic_error("first failure"); });
  f.add_done_callback([](const cf::Future<int>&) { throw std::out_of_range("second failure"); });
  int ran = 0;
  f.add_done_callback([&](const cf::Future<int>&) { ++ran; });
  f.set_exception(std::make_exception_ptr(std::runtime_error("task failed")));
  EXPECT_EQ(ran, 1);
  const auto messages = errors.messages();
  ASSERT_EQ(messages.size(), 2U);
  EXPECT_THAT(messages[0], HasSubstr("exception calling callback for <Future"));
  EXPECT_THAT(messages[0], HasSubstr("first failure"));
  EXPECT_THAT(messages[1], HasSubstr("exception calling callback for <Future"));
  EXPECT_THAT(messages[1], HasSubstr("second failure"));
}

TEST(ErrorHandlerTest, NonStdExceptionFromCallbackIsReported) {
  cftest::CapturedErrors errors;
  cf::Future<int> f;
  f.add_done_callback([](const cf::Future<int>&) { throw 42; });
  EXPECT_NO_THROW(f.cancel());
  const auto messages = errors.messages();
  ASSERT_EQ(messages.size(), 1U);
  EXPECT_THAT(messages[0], HasSubstr("exception calling callback for <Future"));
}

TEST(ErrorHandlerTest, RaisingCallbackOfAnyFutureIsReported) {
  cftest::CapturedErrors errors;
  cf::Future<void> f;
  const cf::AnyFuture any = f;
  any.add_done_callback([](const cf::AnyFuture&) { throw std::runtime_error("any doh"); });
  EXPECT_NO_THROW(f.set_result());
  const auto messages = errors.messages();
  ASSERT_EQ(messages.size(), 1U);
  EXPECT_THAT(messages[0], HasSubstr("exception calling callback for <Future"));
  EXPECT_THAT(messages[0], HasSubstr("any doh"));
}

TEST(ErrorHandlerTest, DefaultHandlerWritesToStderr) {
  // Whatever handler is in place outside CapturedErrors is the default one.
  auto current = cf::set_error_handler([](std::string_view) {});
  cf::set_error_handler(current);
  ::testing::internal::CaptureStderr();
  {
    cf::Future<int> f;
    f.add_done_callback(raise_doh);
    f.set_result(5);
  }
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_THAT(err, HasSubstr("exception calling callback for <Future"));
  EXPECT_THAT(err, HasSubstr("doh!"));
}

TEST(ErrorHandlerTest, ErrorsFromManyThreadsAreAllReported) {
  cftest::CapturedErrors errors;
  constexpr int kThreads = 4;
  constexpr int kPerThread = 25;
  {
    std::vector<std::jthread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([] {
        for (int i = 0; i < kPerThread; ++i) {
          cf::Future<int> f;
          f.add_done_callback(raise_doh);
          f.set_result(i);
        }
      });
    }
  }
  EXPECT_EQ(errors.messages().size(), static_cast<std::size_t>(kThreads * kPerThread));
}

}  // namespace
