// docs/reference.md §4: Executor::submit and what every executor promises about it — arguments
// decay-copied, std::ref passing a reference, void tasks, exceptions reaching the future, and
// the callable, arguments and result dropped once no longer needed. Ports CPython's
// executor.ExecutorTest submit cases (E1, E2, E16, E19).
#include <atomic>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "executor_fixture.hpp"

namespace {

int power(int base, int exponent) {
  int result = 1;
  for (int i = 0; i < exponent; ++i) result *= base;
  return result;
}

int multiply(int x, int y) { return x * y; }

void do_nothing() {}

void throw_invalid_argument() { throw std::invalid_argument("no good"); }

int throw_domain_error(int x) { throw std::domain_error("bad value " + std::to_string(x)); }

std::size_t length(std::string s) { return s.size(); }

template <class Factory>
class SubmitTest : public cftest::ExecutorTest<Factory> {};
TYPED_TEST_SUITE(SubmitTest, cftest::AllExecutors, cftest::ExecutorName);

template <class Factory>
class SubmitSharedMemoryTest : public cftest::ExecutorTest<Factory> {};
TYPED_TEST_SUITE(SubmitSharedMemoryTest, cftest::SharedMemoryExecutors, cftest::ExecutorName);

// --- Results (CPython test_submit, test_submit_keyword) -------------------------------------

// E1 test_submit
TYPED_TEST(SubmitTest, SubmitReturnsTheResult) {
  cf::Executor& ex = this->executor();
  cf::Future<int> f = ex.submit(power, 2, 8);
  EXPECT_EQ(f.result(cftest::kDeadlock), 256);
  EXPECT_EQ(f.state(), cf::FutureState::finished);
}

// E2 test_submit_keyword, minus keywords: positional arguments reach the callable in order.
TYPED_TEST(SubmitTest, SubmitPassesArgumentsInOrder) {
  cf::Executor& ex = this->executor();
  EXPECT_EQ(ex.submit(multiply, 2, 8).result(cftest::kDeadlock), 16);
  EXPECT_EQ(ex.submit([](int a, int b, int c) { return a * 100 + b * 10 + c; }, 1, 2, 3)
                .result(cftest::kDeadlock),
            123);
}

TYPED_TEST(SubmitTest, SubmitCallsACaptureLessLambda) {
  cf::Executor& ex = this->executor();
  EXPECT_EQ(ex.submit([] { return std::string("spam"); }).result(cftest::kDeadlock), "spam");
}

TYPED_TEST(SubmitTest, SubmitOfAVoidFunctionGivesAFutureVoid) {
  cf::Executor& ex = this->executor();
  cf::Future<void> f = ex.submit(do_nothing);
  ASSERT_NO_THROW(f.result(cftest::kDeadlock));
  EXPECT_TRUE(f.done());
  EXPECT_EQ(f.exception(), nullptr);
}

// --- Exceptions ------------------------------------------------------------------------------

TYPED_TEST(SubmitTest, ExceptionFromTheCallableGoesToTheFuture) {
  cf::Executor& ex = this->executor();
  cf::Future<int> f;
  ASSERT_NO_THROW(f = ex.submit(throw_domain_error, 7));
  try {
    f.result(cftest::kDeadlock);
    FAIL() << "result() did not rethrow";
  } catch (const std::domain_error& e) {
    EXPECT_STREQ(e.what(), "bad value 7");
  }
  EXPECT_NE(f.exception(), nullptr);
  EXPECT_EQ(f.state(), cf::FutureState::finished);
}

TYPED_TEST(SubmitTest, ExceptionFromAVoidCallableGoesToTheFuture) {
  cf::Executor& ex = this->executor();
  cf::Future<void> f = ex.submit(throw_invalid_argument);
  EXPECT_THROW(f.result(cftest::kDeadlock), std::invalid_argument);
}

// A task that throws one of the library's own errors: it is that task's error, nothing more.
TYPED_TEST(SubmitTest, TimeoutErrorThrownByTheCallableIsTheTasksError) {
  cf::Executor& ex = this->executor();
  cf::Future<int> f = ex.submit([]() -> int { throw cf::TimeoutError("from the task"); });
  try {
    f.result(cftest::kDeadlock);
    FAIL() << "result() did not rethrow";
  } catch (const cf::TimeoutError& e) {
    EXPECT_STREQ(e.what(), "from the task");
  }
  EXPECT_FALSE(f.cancelled());
}

// docs/reference.md §4: every failed future carries its own exception object.
TYPED_TEST(SubmitTest, EachFailedFutureCarriesItsOwnException) {
  cf::Executor& ex = this->executor();
  cf::Future<int> a = ex.submit(throw_domain_error, 1);
  cf::Future<int> b = ex.submit(throw_domain_error, 2);
  const std::exception_ptr ea = a.exception(cftest::kDeadlock);
  const std::exception_ptr eb = b.exception(cftest::kDeadlock);
  ASSERT_NE(ea, nullptr);
  ASSERT_NE(eb, nullptr);
  EXPECT_NE(ea, eb);
}

// Submitting from several threads at once: every future gets its own task's result.
TYPED_TEST(SubmitTest, ConcurrentSubmitsFromSeveralThreadsAllComplete) {
  cf::Executor& ex = this->executor();
  constexpr int kThreads = 4;
  constexpr int kPerThread = 200;
  std::vector<std::vector<cf::Future<int>>> futures(kThreads);
  {
    std::vector<std::jthread> submitters;
    for (int t = 0; t < kThreads; ++t) {
      submitters.emplace_back([&ex, &futures, t] {
        for (int i = 0; i < kPerThread; ++i) {
          futures[t].push_back(ex.submit(multiply, t, i));
        }
      });
    }
  }
  for (int t = 0; t < kThreads; ++t) {
    ASSERT_EQ(futures[t].size(), static_cast<std::size_t>(kPerThread));
    for (int i = 0; i < kPerThread; ++i) EXPECT_EQ(futures[t][i].result(cftest::kDeadlock), t * i);
  }
}

// --- Arguments: decay-copied, std::ref (tasks that share memory) ------------------------------

// The task sees the value the argument had at submit time, not what the caller changed it to
// later: the argument was copied into the task.
TYPED_TEST(SubmitSharedMemoryTest, ArgumentsAreCopiedAtSubmitTime) {
  auto ex = this->make_executor(1);
  cftest::Gate gate;
  int value = 1;
  std::string text = "before";
  cf::Future<std::pair<int, std::string>> f = ex->submit(
      [g = gate.event()](int v, std::string s) {
        g->wait();
        return std::make_pair(v, s);
      },
      value, text);
  value = 2;
  text = "after";
  gate.open();
  EXPECT_EQ(f.result(cftest::kDeadlock), std::make_pair(1, std::string("before")));
}

// Decay-copying turns a string literal into a const char*, as std::thread does (a pointer, so
// only for executors that share memory).
TYPED_TEST(SubmitSharedMemoryTest, SubmitDecaysAStringLiteralArgument) {
  auto ex = this->make_executor();
  cf::Future<std::size_t> f = ex->submit(length, "eggs");
  EXPECT_EQ(f.result(cftest::kDeadlock), 4u);
}

TYPED_TEST(SubmitSharedMemoryTest, StdRefPassesAReference) {
  auto ex = this->make_executor();
  int value = 0;
  cf::Future<void> f = ex->submit([](int& v) { v = 42; }, std::ref(value));
  f.result(cftest::kDeadlock);
  EXPECT_EQ(value, 42);
}

TYPED_TEST(SubmitSharedMemoryTest, StdCrefPassesAConstReferenceThatSeesLaterChanges) {
  auto ex = this->make_executor(1);
  cftest::Gate gate;
  int value = 1;
  cf::Future<int> f = ex->submit(
      [g = gate.event()](const int& v) {
        g->wait();
        return v;
      },
      std::cref(value));
  value = 5;
  gate.open();
  EXPECT_EQ(f.result(cftest::kDeadlock), 5);
}

// The callable itself is copied too: changing the original after submit does not reach the task.
TYPED_TEST(SubmitSharedMemoryTest, TheCallableIsCopiedAtSubmitTime) {
  struct Adder {
    int amount;
    int operator()(int x) const { return x + amount; }
  };
  auto ex = this->make_executor(1);
  cftest::Gate gate;
  ex->submit([g = gate.event()] { g->wait(); });
  Adder add{10};
  cf::Future<int> f = ex->submit(add, 1);
  add.amount = 1000;
  gate.open();
  EXPECT_EQ(f.result(cftest::kDeadlock), 11);
}

TYPED_TEST(SubmitSharedMemoryTest, MoveOnlyArgumentAndResultAreMovedThrough) {
  auto ex = this->make_executor();
  auto f = ex->submit(
      [](std::unique_ptr<int> p) {
        *p += 1;
        return p;
      },
      std::make_unique<int>(41));
  static_assert(std::is_same_v<decltype(f), cf::Future<std::unique_ptr<int>>>);
  ASSERT_NE(f.result(cftest::kDeadlock), nullptr);
  EXPECT_EQ(*f.result(), 42);
}

// A mutable callable is called on its own copy; calling it is allowed to change that copy.
TYPED_TEST(SubmitSharedMemoryTest, MutableLambdaRuns) {
  auto ex = this->make_executor();
  cf::Future<int> f = ex->submit([n = 1]() mutable { return ++n; });
  EXPECT_EQ(f.result(cftest::kDeadlock), 2);
}

// std::invoke rules: a member function pointer with its object.
TYPED_TEST(SubmitSharedMemoryTest, MemberFunctionPointerWithObjectRuns) {
  struct Counter {
    int base;
    int plus(int x) const { return base + x; }
  };
  auto ex = this->make_executor();
  cf::Future<int> f = ex->submit(&Counter::plus, Counter{40}, 2);
  EXPECT_EQ(f.result(cftest::kDeadlock), 42);
}

TYPED_TEST(SubmitSharedMemoryTest, VoidFunctionRunsItsSideEffect) {
  auto ex = this->make_executor();
  std::atomic<int> calls{0};
  cf::Future<void> f = ex->submit([&calls] { calls.fetch_add(1); });
  f.result(cftest::kDeadlock);
  EXPECT_EQ(calls.load(), 1);
}

// A user exception type comes back as itself (a thread pool rethrows the very object).
TYPED_TEST(SubmitSharedMemoryTest, UserExceptionTypeIsRethrownUnchanged) {
  struct Oops : std::exception {
    int code = 7;
    const char* what() const noexcept override { return "oops"; }
  };
  auto ex = this->make_executor();
  cf::Future<int> f = ex->submit([]() -> int { throw Oops{}; });
  try {
    f.result(cftest::kDeadlock);
    FAIL() << "result() did not rethrow";
  } catch (const Oops& e) {
    EXPECT_EQ(e.code, 7);
  }
}

// --- No stale references (E16 test_no_stale_references) --------------------------------------

// E16: once the task's result is visible, the executor holds neither the callable nor its
// arguments (the task drops them before it publishes the result).
TYPED_TEST(SubmitSharedMemoryTest, CallableAndArgumentsAreDroppedOnceTheResultIsVisible) {
  auto ex = this->make_executor();
  auto captured = std::make_shared<int>(1);
  auto argument = std::make_shared<int>(2);
  std::weak_ptr<int> weak_captured = captured;
  std::weak_ptr<int> weak_argument = argument;
  cf::Future<int> f = ex->submit(
      [c = std::move(captured)](std::shared_ptr<int> a) { return *c + *a; }, std::move(argument));
  EXPECT_EQ(f.result(cftest::kDeadlock), 3);
  EXPECT_TRUE(weak_captured.expired());
  EXPECT_TRUE(weak_argument.expired());
}

TYPED_TEST(SubmitSharedMemoryTest, CallableAndArgumentsOfAFailedTaskAreDropped) {
  auto ex = this->make_executor();
  auto argument = std::make_shared<int>(2);
  std::weak_ptr<int> weak_argument = argument;
  cf::Future<int> f = ex->submit([](std::shared_ptr<int>) -> int { throw std::runtime_error("x"); },
                                 std::move(argument));
  EXPECT_NE(f.exception(cftest::kDeadlock), nullptr);
  EXPECT_TRUE(weak_argument.expired());
}

// E16 with a bound object: submit(obj.method), then drop the future and obj: obj goes away.
TYPED_TEST(SubmitSharedMemoryTest, BoundObjectIsReleasedAfterTheFutureIsDropped) {
  struct Object {
    int method() const { return 3; }
  };
  auto ex = this->make_executor();
  auto object = std::make_shared<Object>();
  std::weak_ptr<Object> weak = object;
  {
    cf::Future<int> f = ex->submit(&Object::method, object);
    object.reset();
    EXPECT_EQ(f.result(cftest::kDeadlock), 3);
  }
  EXPECT_TRUE(weak.expired());
}

// The result lives in the future's shared state only: once every handle to that future is
// gone, so is the result. (The worker may still hold its task handle for an instant after
// publishing, so this polls.)
TYPED_TEST(SubmitSharedMemoryTest, ResultIsReleasedOnceTheFutureIsDropped) {
  auto ex = this->make_executor();
  std::weak_ptr<int> weak;
  {
    cf::Future<std::shared_ptr<int>> f = ex->submit([] { return std::make_shared<int>(5); });
    weak = f.result(cftest::kDeadlock);
    EXPECT_FALSE(weak.expired());
  }
  EXPECT_TRUE(cftest::eventually([&] { return weak.expired(); }));
}

// A task that never runs (cancelled in the queue) drops its callable and arguments too.
TYPED_TEST(SubmitSharedMemoryTest, CallableOfACancelledTaskIsDropped) {
  auto ex = this->make_executor(1);
  cftest::Gate gate;
  ex->submit([g = gate.event()] { g->wait(); });
  auto captured = std::make_shared<int>(1);
  std::weak_ptr<int> weak = captured;
  cf::Future<int> f = ex->submit([c = std::move(captured)] { return *c; });
  ASSERT_TRUE(f.cancel());
  gate.open();
  ex->shutdown();
  EXPECT_TRUE(weak.expired());
}

// Through the interface: a reference to the base class is all the caller needs.
TYPED_TEST(SubmitSharedMemoryTest, SubmitThroughExecutorReferenceRunsOnTheExecutor) {
  auto ex = this->make_executor(2);
  cf::Executor& base = *ex;
  const std::thread::id caller = std::this_thread::get_id();
  cf::Future<std::thread::id> f = base.submit([] { return std::this_thread::get_id(); });
  EXPECT_NE(f.result(cftest::kDeadlock), caller);
}

}  // namespace

int main(int argc, char** argv) {
  cf::serve_if_worker(argc, argv);  // the process-pool instances' spawn workers start here
  testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
