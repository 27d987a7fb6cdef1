// docs/reference.md §5, `f.then(executor, fn)` on a ProcessPoolExecutor: "the second form runs fn
// on the executor", so on a process pool fn runs in a worker process with f's value as a serialized
// argument, whether then is called on the concrete pool or through cf::Executor&. Errors and
// cancellation of f pass to the returned future without fn running. What cannot run in a worker
// (a capturing lambda, fn taking the Future<T>, a value that cannot be serialized) fails the
// returned future with SerializationError through cf::Executor&; on the concrete pool type it is
// a compile-time error, checked by the compile_fail tests (tests/compile_fail/).
//
// The pools use the default start method (forkserver), so no serve_if_worker is needed. Every
// wait is bounded (kDeadlock).
#include <unistd.h>

#include <chrono>
#include <exception>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <concurrent/futures.hpp>

#include "process_test_util.hpp"
#include "test_util.hpp"

namespace {

using cftest::kDeadlock;
using proctest::ProcessGate;
using ::testing::HasSubstr;

// --- what runs in the workers: plain functions, sent by name --------------------------------

// The value and the pid of the process that ran it.
std::pair<int, int> value_and_pid(int x) { return {x, static_cast<int>(getpid())}; }

long times_ten(int x) { return 10L * x; }

int pid_of_worker() { return static_cast<int>(getpid()); }

std::string shout(std::string s) { return s + "!"; }

int throws_invalid_argument(int) { throw std::invalid_argument("fn failed in the worker"); }

// Reports on the gate whose directory is the value, then returns the worker's pid: lets the test
// see whether (and where) fn ran.
int report_and_pid(std::string gate_dir) {
  proctest::report_started(gate_dir);
  return static_cast<int>(getpid());
}

// A value type the process pool cannot send: not trivially copyable, no cereal function.
struct NotSerializable {
  std::string text;
};
int text_size(NotSerializable v) { return static_cast<int>(v.text.size()); }

cf::ProcessPoolOptions one_worker() { return {.max_workers = 1}; }

// `g` fails with the SerializationError of a callable that cannot run in a worker process.
template <class T>
void expect_cannot_run_in_a_worker(const cf::Future<T>& g) {
  try {
    g.result(kDeadlock);
    ADD_FAILURE() << "no exception";
  } catch (const cf::SerializationError& e) {
    EXPECT_THAT(e.what(), HasSubstr("cannot run in a worker process"));
  }
}

const int kTestPid = static_cast<int>(getpid());

// ---------------------------------------------------------------------------------------------
// fn runs in a worker process with the value

TEST(ThenOnProcessPoolTest, FunctionPointerRunsInAWorkerWithTheValue) {
  cf::ProcessPoolExecutor pool(one_worker());
  cf::Future<int> f;
  cf::Future<std::pair<int, int>> g = f.then(pool, value_and_pid);
  EXPECT_FALSE(g.done());
  f.set_result(7);
  const auto [value, pid] = g.result(kDeadlock);
  EXPECT_EQ(value, 7);
  EXPECT_NE(pid, kTestPid);
  EXPECT_EQ(pool.worker_pids(), std::vector<int>{pid});
}

TEST(ThenOnProcessPoolTest, FunctionPointerThroughExecutorReference) {
  cf::ProcessPoolExecutor pool(one_worker());
  cf::Executor& ex = pool;
  cf::Future<int> f;
  cf::Future<std::pair<int, int>> g = f.then(ex, value_and_pid);
  f.set_result(8);
  const auto [value, pid] = g.result(kDeadlock);
  EXPECT_EQ(value, 8);
  EXPECT_NE(pid, kTestPid);
}

TEST(ThenOnProcessPoolTest, CaptureLessLambdaOnTheConcretePoolAndThroughExecutorReference) {
  cf::ProcessPoolExecutor pool(one_worker());
  cf::Executor& ex = pool;
  cf::Future<int> f;
  cf::Future<int> direct = f.then(pool, [](int x) { return x + static_cast<int>(getpid()); });
  cf::Future<int> erased = f.then(ex, [](int x) { return x - static_cast<int>(getpid()); });
  f.set_result(1000);
  const int a = direct.result(kDeadlock);
  const int b = erased.result(kDeadlock);
  EXPECT_EQ(a + b, 2000);  // both ran in the same (only) worker
  EXPECT_NE(a - 1000, kTestPid);
  EXPECT_EQ(pool.worker_pids(), std::vector<int>{a - 1000});
}

TEST(ThenOnProcessPoolTest, AlreadyDoneFutureStillRunsFnInAWorker) {
  cf::ProcessPoolExecutor pool(one_worker());
  cf::Future<long> g = cftest::successful_future().then(pool, times_ten);
  EXPECT_EQ(g.result(kDeadlock), 420);
}

TEST(ThenOnProcessPoolTest, VoidFutureRunsFnWithoutArguments) {
  cf::ProcessPoolExecutor pool(one_worker());
  cf::Future<void> f;
  cf::Future<int> g = f.then(pool, pid_of_worker);
  f.set_result();
  EXPECT_NE(g.result(kDeadlock), kTestPid);
}

TEST(ThenOnProcessPoolTest, ValuesThatNeedSerializingTravel) {
  cf::ProcessPoolExecutor pool(one_worker());
  cf::Future<std::string> f;
  cf::Future<std::string> g = f.then(pool, shout);
  f.set_result(std::string(100000, 'x'));
  EXPECT_EQ(g.result(kDeadlock), std::string(100000, 'x') + "!");
}

// f's done callback runs in the pool's manager thread, which then submits fn to the same pool.
TEST(ThenOnProcessPoolTest, ChainsOfTasksOnTheSamePool) {
  cf::ProcessPoolExecutor pool({.max_workers = 2});
  cf::Future<long> g = pool.submit(proctest::square, 4).then(pool, times_ten);
  cf::Future<std::pair<int, int>> h = pool.submit(proctest::square, 3)
                                          .then(pool, [](int x) { return x + 1; })
                                          .then(pool, value_and_pid);
  EXPECT_EQ(g.result(kDeadlock), 160);
  EXPECT_EQ(h.result(kDeadlock).first, 10);
  EXPECT_NE(h.result(kDeadlock).second, kTestPid);
}

TEST(ThenOnProcessPoolTest, ExceptionFromFnInTheWorkerFailsTheResult) {
  cf::ProcessPoolExecutor pool(one_worker());
  cf::Future<int> g = cftest::successful_future().then(pool, throws_invalid_argument);
  try {
    g.result(kDeadlock);
    ADD_FAILURE() << "no exception";
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "fn failed in the worker");
  }
}

// ---------------------------------------------------------------------------------------------
// errors and cancellation pass through without fn running

// Whether fn ran: with one worker, tasks run in order, so once `sentinel` (submitted after the
// point in question) has reported, an earlier fn would have reported before it.
std::size_t reports_up_to_sentinel(cf::ProcessPoolExecutor& pool, ProcessGate& gate) {
  pool.submit(report_and_pid, gate.dir()).result(kDeadlock);
  return gate.wait_started(2, std::chrono::milliseconds(200)).size();
}

TEST(ThenOnProcessPoolTest, FailedInputFailsTheResultWithTheSameExceptionWithoutRunningFn) {
  cf::ProcessPoolExecutor pool(one_worker());
  ProcessGate gate;
  for (const bool erased : {false, true}) {
    cf::Future<std::string> f;
    cf::Future<int> g = erased ? f.then(static_cast<cf::Executor&>(pool), report_and_pid)
                               : f.then(pool, report_and_pid);
    const std::exception_ptr e = std::make_exception_ptr(std::runtime_error("input failed"));
    f.set_exception(e);
    EXPECT_EQ(g.exception(kDeadlock), e);
    EXPECT_EQ(reports_up_to_sentinel(pool, gate), 1U) << "fn ran; erased=" << erased;
  }
}

TEST(ThenOnProcessPoolTest, CancelledInputCancelsTheResultWithoutRunningFn) {
  cf::ProcessPoolExecutor pool(one_worker());
  ProcessGate gate;
  for (const bool erased : {false, true}) {
    cf::Future<std::string> f;
    cf::Future<int> g = erased ? f.then(static_cast<cf::Executor&>(pool), report_and_pid)
                               : f.then(pool, report_and_pid);
    EXPECT_TRUE(f.cancel());
    EXPECT_TRUE(g.cancelled());
    EXPECT_EQ(reports_up_to_sentinel(pool, gate), 1U) << "fn ran; erased=" << erased;
  }
}

TEST(ThenOnProcessPoolTest, CancellingTheResultFirstMeansFnNeverRunsAndInputGoesOn) {
  cf::ProcessPoolExecutor pool(one_worker());
  ProcessGate gate;
  cf::Future<std::string> f;
  cf::Future<int> g = f.then(pool, report_and_pid);
  EXPECT_TRUE(g.cancel());
  f.set_result(gate.dir());
  EXPECT_TRUE(g.cancelled());
  EXPECT_EQ(f.result(kDeadlock), gate.dir());
  EXPECT_EQ(reports_up_to_sentinel(pool, gate), 1U);
}

TEST(ThenOnProcessPoolTest, ShutDownPoolFailsTheResultWithShutdownError) {
  cf::ProcessPoolExecutor pool(one_worker());
  cf::Future<int> f;
  cf::Future<long> g = f.then(pool, times_ten);
  pool.shutdown();
  f.set_result(1);
  EXPECT_THROW(g.result(kDeadlock), cf::ShutdownError);
}

TEST(ThenOnProcessPoolTest, PoolDestroyedBeforeTheInputFinishesGivesShutdownError) {
  cf::Future<int> f;
  cf::Future<long> g;
  {
    cf::ProcessPoolExecutor pool(one_worker());
    g = f.then(pool, times_ten);
  }
  f.set_result(1);
  EXPECT_THROW(g.result(kDeadlock), cf::ShutdownError);
}

// ---------------------------------------------------------------------------------------------
// what cannot run in a worker: SerializationError through cf::Executor&

TEST(ThenOnProcessPoolTest, CapturingLambdaThroughExecutorReferenceFailsWithSerializationError) {
  cf::ProcessPoolExecutor pool(one_worker());
  cf::Executor& ex = pool;
  // A lambda with captures: the library cannot check what it captured.
  const std::string suffix = "!";
  cf::Future<int> f;
  cf::Future<std::string> g = f.then(ex, [suffix](int x) { return std::to_string(x) + suffix; });
  f.set_result(1);
  expect_cannot_run_in_a_worker(g);
}

TEST(ThenOnProcessPoolTest, FutureFormThroughExecutorReferenceFailsWithSerializationError) {
  cf::ProcessPoolExecutor pool(one_worker());
  cf::Executor& ex = pool;
  cf::Future<int> f;
  cf::Future<bool> g = f.then(ex, [](const cf::Future<int>& done) { return done.done(); });
  f.set_result(1);
  expect_cannot_run_in_a_worker(g);
}

TEST(ThenOnProcessPoolTest, ValueThatCannotBeSerializedFailsWithSerializationError) {
  cf::ProcessPoolExecutor pool(one_worker());
  cf::Executor& ex = pool;
  cf::Future<NotSerializable> f;
  cf::Future<int> g = f.then(ex, text_size);
  f.set_result(NotSerializable{"abc"});
  EXPECT_THROW(g.result(kDeadlock), cf::SerializationError);
}

// The thread pool still runs closures in this process: the same calls keep working there.
TEST(ThenOnProcessPoolTest, ThreadPoolStillRunsCapturingLambdasAndTheFutureForm) {
  cf::ThreadPoolExecutor pool(1);
  cf::Executor& ex = pool;
  const std::string suffix = "!";
  cf::Future<int> f;
  cf::Future<std::string> g = f.then(ex, [suffix](int x) { return std::to_string(x) + suffix; });
  cf::Future<bool> h = f.then(ex, [](const cf::Future<int>& done) { return done.done(); });
  cf::Future<std::pair<int, int>> i = f.then(pool, value_and_pid);
  f.set_result(1);
  EXPECT_EQ(g.result(kDeadlock), "1!");
  EXPECT_TRUE(h.result(kDeadlock));
  EXPECT_EQ(i.result(kDeadlock), std::make_pair(1, kTestPid));
}

}  // namespace
