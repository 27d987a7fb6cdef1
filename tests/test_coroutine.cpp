// docs/reference.md §5, `co_await f` in C++20 coroutines (coroutine.hpp): a coroutine suspends
// without blocking a thread, resumes where the header says (the completing thread, or the executor
// given to cf::resume_on), gets the value or the rethrown error; cf::Future<T> as a coroutine type.
// No CPython counterpart (asyncio.wrap_future is the nearest).
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <exception>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <concurrent/futures.hpp>

#include "test_util.hpp"

namespace {

using cftest::BlockedPool;

using cftest::kDeadlock;

// Thread identity through system calls: Clang 14 may reuse a pthread_self() (and so
// std::this_thread::get_id()) computed before a co_await after it, on another thread (LLVM
// issue 47177); a system call is never merged that way.
long thread_tid() { return static_cast<long>(::syscall(SYS_gettid)); }

std::string current_thread_name() {
  char name[17] = {};
  ::prctl(PR_GET_NAME, name);
  return name;
}

// The coroutines under test take everything by value (see coroutine.hpp on lifetimes); results
// that must be seen from outside go through shared_ptrs.

cf::Future<int> add_one(cf::Future<int> f) { co_return co_await f + 1; }

struct Where {
  long before = 0;
  long after = 0;
  std::string after_name;
};

cf::Future<Where> record_threads(cf::Future<int> f) {
  Where w;
  w.before = thread_tid();
  co_await f;
  w.after = thread_tid();
  w.after_name = current_thread_name();
  co_return w;
}

// ---------------------------------------------------------------------------------------------
// co_await f: value, suspension, which thread resumes

TEST(CoAwaitTest, DoneFutureDoesNotSuspend) {
  cf::Future<Where> w = record_threads(cftest::successful_future());
  ASSERT_TRUE(w.done());  // ran to the end inside the call
  EXPECT_EQ(w.result(0s).before, thread_tid());
  EXPECT_EQ(w.result(0s).after, thread_tid());
}

TEST(CoAwaitTest, PendingFutureSuspendsAndTheCallReturnsAtOnce) {
  cf::Future<int> f;
  cf::Future<int> g = add_one(f);  // returns although f is pending: nothing blocks
  EXPECT_FALSE(g.done());
  EXPECT_TRUE(g.running());
  f.set_result(41);
  // Resumed inside set_result, in this thread, and ran to the end.
  EXPECT_TRUE(g.done());
  EXPECT_EQ(g.result(kDeadlock), 42);
}

TEST(CoAwaitTest, ResumesInTheThreadThatCompletesTheFuture) {
  cf::Future<int> f;
  cf::Future<Where> w = record_threads(f);
  long completer = 0;
  std::thread t([&] {
    completer = thread_tid();
    f.set_result(1);
  });
  t.join();
  EXPECT_EQ(w.result(kDeadlock).after, completer);
  EXPECT_NE(w.result(kDeadlock).after, w.result(kDeadlock).before);
}

TEST(CoAwaitTest, ResumesOnThePoolWorkerThatRanTheTask) {
  cf::ThreadPoolExecutor ex({.max_workers = 1, .thread_name_prefix = "work"});
  cftest::Event go;
  cf::Future<int> task = ex.submit([&go] {
    go.wait();
    return 1;
  });
  cf::Future<Where> w = record_threads(task);
  go.set();
  EXPECT_EQ(w.result(kDeadlock).after_name, "work_0");
}

TEST(CoAwaitTest, GivesACopyOfTheValue) {
  cf::Future<std::string> f;
  auto seen = std::make_shared<std::string>();
  auto co = [](cf::Future<std::string> f, std::shared_ptr<std::string> seen) -> cf::Future<void> {
    std::string s = co_await f;
    s += "!";
    *seen = s;
  };
  cf::Future<void> done = co(f, seen);
  f.set_result("hi");
  done.result(kDeadlock);
  EXPECT_EQ(*seen, "hi!");
  EXPECT_EQ(f.result(0s), "hi");
}

TEST(CoAwaitTest, MoveOnlyValueIsGivenByReference) {
  cf::Future<std::unique_ptr<int>> f;
  auto co = [](cf::Future<std::unique_ptr<int>> f) -> cf::Future<int> {
    const std::unique_ptr<int>& p = co_await f;
    co_return *p;
  };
  cf::Future<int> g = co(f);
  f.set_result(std::make_unique<int>(5));
  EXPECT_EQ(g.result(kDeadlock), 5);
}

TEST(CoAwaitTest, VoidAndAnyFuture) {
  cf::Future<void> v;
  cf::Future<std::string> s;
  auto co = [](cf::Future<void> v, cf::AnyFuture s) -> cf::Future<int> {
    co_await v;
    co_await s;
    co_return 3;
  };
  cf::Future<int> g = co(v, s);
  v.set_result();
  EXPECT_FALSE(g.done());
  s.set_result("x");
  EXPECT_EQ(g.result(kDeadlock), 3);
}

TEST(CoAwaitTest, WhenAllIsAwaitable) {
  cf::ThreadPoolExecutor ex(2);
  auto co = [](cf::Executor& ex) -> cf::Future<int> {
    auto [a, b] = co_await cf::when_all(ex.submit([] { return 20; }), ex.submit([] { return 22; }));
    co_return a + b;
  };
  EXPECT_EQ(co(ex).result(kDeadlock), 42);
}

// ---------------------------------------------------------------------------------------------
// co_await f: errors, cancellation, timeouts

TEST(CoAwaitTest, RethrowsTheSameError) {
  cf::Future<int> f;
  auto caught = std::make_shared<std::exception_ptr>();
  auto co = [](cf::Future<int> f, std::shared_ptr<std::exception_ptr> caught) -> cf::Future<void> {
    try {
      co_await f;
    } catch (const std::runtime_error&) {
      *caught = std::current_exception();
    }
  };
  cf::Future<void> g = co(f, caught);
  const std::exception_ptr e = std::make_exception_ptr(std::runtime_error("awaited"));
  f.set_exception(e);
  g.result(kDeadlock);
  EXPECT_EQ(*caught, e);
}

TEST(CoAwaitTest, CancelledFutureThrowsCancelledError) {
  cf::Future<int> f;
  cf::Future<int> g = add_one(f);
  f.cancel();
  EXPECT_THROW(g.result(kDeadlock), cf::CancelledError);
}

TEST(CoAwaitTest, UncaughtErrorFailsTheCoroutinesFuture) {
  cf::Future<int> f;
  cf::Future<int> g = add_one(f);
  f.set_exception(std::make_exception_ptr(std::domain_error("passes through")));
  EXPECT_THROW(g.result(kDeadlock), std::domain_error);
  EXPECT_FALSE(g.cancelled());
}

TEST(CoAwaitTest, ResultTimesOutWhileTheCoroutineIsSuspended) {
  cf::Future<int> f;
  cf::Future<int> g = add_one(f);
  EXPECT_THROW(g.result(20ms), cf::TimeoutError);
  f.set_result(1);
  EXPECT_EQ(g.result(kDeadlock), 2);
}

TEST(CoAwaitTest, CompletionRacingWithSuspensionResumesExactlyOnce) {
  // The future is completed by another thread while the coroutine is on its way to suspend.
  auto resumes = std::make_shared<std::atomic<int>>(0);
  auto co = [](cf::Future<int> f, std::shared_ptr<std::atomic<int>> resumes) -> cf::Future<int> {
    const int x = co_await f;
    resumes->fetch_add(1);
    co_return x;
  };
  for (int round = 0; round < 200; ++round) {
    cf::Future<int> f;
    std::thread t([f] { f.set_result(7); });
    cf::Future<int> g = co(f, resumes);
    t.join();
    EXPECT_EQ(g.result(kDeadlock), 7);
  }
  EXPECT_EQ(resumes->load(), 200);
}

// ---------------------------------------------------------------------------------------------
// cf::resume_on

cf::Future<std::vector<std::string>> hop(cf::Executor& first, cf::Executor& second) {
  std::vector<std::string> names;
  co_await cf::resume_on(first);
  names.push_back(current_thread_name());
  co_await cf::resume_on(second);
  names.push_back(current_thread_name());
  co_return names;
}

TEST(ResumeOnTest, ResumesOnTheGivenExecutor) {
  cf::ThreadPoolExecutor a({.max_workers = 1, .thread_name_prefix = "hopA"});
  cf::ThreadPoolExecutor b({.max_workers = 1, .thread_name_prefix = "hopB"});
  EXPECT_EQ(hop(a, b).result(kDeadlock), (std::vector<std::string>{"hopA_0", "hopB_0"}));
}

TEST(ResumeOnTest, AfterAwaitingAnotherPoolsTaskComesBackToItsOwnExecutor) {
  cf::ThreadPoolExecutor io({.max_workers = 1, .thread_name_prefix = "io"});
  cf::ThreadPoolExecutor cpu({.max_workers = 1, .thread_name_prefix = "cpu"});
  cf::Future<int> gate;  // completed by an io task once the coroutine waits on it
  auto co = [](cf::Executor& cpu, cf::Future<int> gate) -> cf::Future<std::string> {
    co_await cf::resume_on(cpu);
    std::string trail = current_thread_name();
    co_await gate;  // resumes on the io worker that completes it ...
    trail += " " + current_thread_name();
    co_await cf::resume_on(cpu);  // ... and comes back
    trail += " " + current_thread_name();
    co_return trail;
  };
  cf::Future<std::string> g = co(cpu, gate);
  // cpu's only worker runs tasks in order: once this one has run, the coroutine has left it,
  // suspended on the gate.
  cpu.submit([] {}).result(kDeadlock);
  EXPECT_FALSE(g.done());
  io.submit([gate] { gate.set_result(0); });
  EXPECT_EQ(g.result(kDeadlock), "cpu_0 io_0 cpu_0");
}

TEST(ResumeOnTest, ShutDownExecutorThrowsShutdownErrorWithoutSuspending) {
  cf::ThreadPoolExecutor ex(1);
  ex.shutdown();
  auto co = [](cf::Executor& ex) -> cf::Future<long> {
    try {
      co_await cf::resume_on(ex);
    } catch (const cf::ShutdownError&) {
      co_return thread_tid();
    }
    co_return 0L;
  };
  cf::Future<long> g = co(ex);
  ASSERT_TRUE(g.done());
  EXPECT_EQ(g.result(0s), thread_tid());
}

TEST(ResumeOnTest, TaskDroppedByShutdownCancelFuturesThrowsCancelledError) {
  BlockedPool blocked;
  auto co = [](cf::Executor& ex) -> cf::Future<std::string> {
    try {
      co_await cf::resume_on(ex);
    } catch (const cf::CancelledError&) {
      co_return "cancelled";
    }
    co_return "resumed";
  };
  cf::Future<std::string> g = co(blocked.pool());
  EXPECT_FALSE(g.done());
  blocked.pool().shutdown(/*wait=*/false, /*cancel_futures=*/true);
  EXPECT_EQ(g.result(kDeadlock), "cancelled");
  blocked.release();
}

TEST(ResumeOnTest, ManyCoroutinesShareOneWorkerWithoutDeadlock) {
  cf::ThreadPoolExecutor ex(1);
  auto co = [](cf::Executor& ex, int i) -> cf::Future<int> {
    co_await cf::resume_on(ex);
    int x = co_await ex.submit([i] { return i; });
    co_await cf::resume_on(ex);
    co_return x * 2;
  };
  std::vector<cf::Future<int>> futures;
  for (int i = 0; i < 50; ++i) futures.push_back(co(ex, i));
  const std::vector<int> values = cf::when_all(futures).result(kDeadlock);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(values[static_cast<std::size_t>(i)], 2 * i);
}

// ---------------------------------------------------------------------------------------------
// cf::Future<T> as a coroutine type

TEST(FutureCoroutineTest, IsRunningAndCannotBeCancelled) {
  cf::Future<int> f;
  cf::Future<int> g = add_one(f);
  EXPECT_TRUE(g.running());
  EXPECT_FALSE(g.cancel());
  f.set_result(0);
  EXPECT_EQ(g.result(kDeadlock), 1);
}

TEST(FutureCoroutineTest, LocalsAreDestroyedBeforeTheFutureFinishes) {
  struct SetOnDestroy {
    std::shared_ptr<std::atomic<bool>> flag;
    ~SetOnDestroy() { flag->store(true); }
  };
  auto destroyed = std::make_shared<std::atomic<bool>>(false);
  auto co = [](cf::Future<int> f, std::shared_ptr<std::atomic<bool>> destroyed) -> cf::Future<int> {
    SetOnDestroy local{destroyed};
    co_return co_await f;
  };
  cf::Future<int> f;
  cf::Future<int> g = co(f, destroyed);
  bool destroyed_when_done = false;
  g.add_done_callback([&](const cf::Future<int>&) { destroyed_when_done = destroyed->load(); });
  f.set_result(1);
  EXPECT_TRUE(destroyed_when_done);
}

TEST(FutureCoroutineTest, ExceptionBeforeAnySuspensionFailsTheFuture) {
  auto co = []() -> cf::Future<int> {
    throw std::invalid_argument("early");
    co_return 0;
  };
  cf::Future<int> g = co();
  ASSERT_TRUE(g.done());
  EXPECT_THROW(g.result(0s), std::invalid_argument);
}

TEST(FutureCoroutineTest, AwaitsAnotherCoroutine) {
  cf::Future<int> f;
  auto outer = [](cf::Future<int> f) -> cf::Future<int> { co_return co_await add_one(f) * 10; };
  cf::Future<int> g = outer(f);
  f.set_result(1);
  EXPECT_EQ(g.result(kDeadlock), 20);
}

TEST(FutureCoroutineTest, ReturnsAMoveOnlyValue) {
  auto co = [](cf::Future<int> f) -> cf::Future<std::unique_ptr<int>> {
    co_return std::make_unique<int>(co_await f);
  };
  cf::Future<int> f;
  cf::Future<std::unique_ptr<int>> g = co(f);
  f.set_result(4);
  EXPECT_EQ(*g.result(kDeadlock), 4);
}

}  // namespace
