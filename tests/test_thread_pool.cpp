// cf::ThreadPoolExecutor (docs/reference.md §4.1): options and defaults, lazy threads and idle
// reuse, saturation, thread names, shutdown and thread exit, map specifics, fork, and helping while
// waiting. Ports CPython's test_thread_pool (J1-J7) and the thread-pool half of test_shutdown
// (F8-F13).
#include <pthread.h>
#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <future>
#include <latch>
#include <memory>
#include <mutex>
#include <numeric>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include <concurrent/futures.hpp>

#include "test_util.hpp"

namespace {

using cftest::kDeadlock;

// ThreadSanitizer cannot serve a child that starts threads after a multi-threaded fork, and
// AddressSanitizer (GCC 12) neither one that allocates (another thread may hold its allocator
// lock at the fork) nor one that exits normally (LeakSanitizer then runs without the parent's
// other threads and reports everything they own as leaked).
constexpr bool kThreadSanitizer = cftest::kTsan;
constexpr bool kAddressSanitizer = cftest::kAsan;

std::size_t usable_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  EXPECT_EQ(sched_getaffinity(0, sizeof(set), &set), 0);
  return static_cast<std::size_t>(CPU_COUNT(&set));
}

std::string current_thread_name() {
  char name[16] = {};  // Linux names hold 15 bytes plus the terminator
  EXPECT_EQ(pthread_getname_np(pthread_self(), name, sizeof(name)), 0);
  return name;
}

// Threads of this process, as the kernel sees them.
std::size_t os_thread_count() {
  std::size_t n = 0;
  for ([[maybe_unused]] const auto& entry :
       std::filesystem::directory_iterator("/proc/self/task")) {
    ++n;
  }
  return n;
}

int square(int x) { return x * x; }

// Sets an event when it goes out of scope. Declared after an executor whose tasks block on the
// event, it releases them before the executor's destructor waits for them, so a failed ASSERT
// ends the test instead of hanging it.
class ReleaseOnExit {
 public:
  explicit ReleaseOnExit(cftest::Event& event) : event_(event) {}
  ReleaseOnExit(const ReleaseOnExit&) = delete;
  ReleaseOnExit& operator=(const ReleaseOnExit&) = delete;
  ~ReleaseOnExit() { event_.set(); }

 private:
  cftest::Event& event_;
};

// A countdown whose wait is bounded (std::latch can only wait forever).
class Countdown {
 public:
  explicit Countdown(std::size_t n) : left_(n) {}
  void count_down() {
    std::lock_guard lock(mu_);
    if (left_ > 0 && --left_ == 0) cv_.notify_all();
  }
  bool wait(std::chrono::milliseconds timeout = kDeadlock) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return left_ == 0; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::size_t left_;
};

// Counts the ends of the pool threads that ran an arm()ing task: the destructor of a
// thread_local runs when its thread exits, so before a join of that thread returns.
class ThreadExits {
 public:
  // Called from a task; counts its thread once.
  void arm() {
    if (probe_.shared == shared_) return;
    probe_.shared = shared_;
    std::lock_guard lock(shared_->mu);
    ++shared_->armed;
  }
  std::size_t armed() const {
    std::lock_guard lock(shared_->mu);
    return shared_->armed;
  }
  std::size_t exited() const {
    std::lock_guard lock(shared_->mu);
    return shared_->exited;
  }
  bool wait_exited(std::size_t n, std::chrono::milliseconds timeout = kDeadlock) const {
    std::unique_lock lock(shared_->mu);
    return shared_->cv.wait_for(lock, timeout, [&] { return shared_->exited >= n; });
  }

 private:
  struct Shared {
    std::mutex mu;
    std::condition_variable cv;
    std::size_t armed = 0;
    std::size_t exited = 0;
  };
  struct Probe {
    std::shared_ptr<Shared> shared;
    ~Probe() {
      if (!shared) return;
      std::lock_guard lock(shared->mu);
      ++shared->exited;
      shared->cv.notify_all();
    }
  };
  static inline thread_local Probe probe_;
  std::shared_ptr<Shared> shared_ = std::make_shared<Shared>();
};

std::vector<int> minus_five_to_four() {
  std::vector<int> v(10);
  std::iota(v.begin(), v.end(), -5);
  return v;
}

const std::vector<int> kAbsOfMinusFiveToFour = {5, 4, 3, 2, 1, 0, 1, 2, 3, 4};

}  // namespace

// --- Options and defaults ----------------------------------------------------------------------

// CPython: test_default_workers (J2).
TEST(ThreadPoolOptionsTest, DefaultMaxWorkersIsMinOf32AndUsableCpusPlus4) {
  const std::size_t expected = std::min<std::size_t>(32, usable_cpus() + 4);
  EXPECT_EQ(cf::ThreadPoolExecutor::default_max_workers(), expected);
  cf::ThreadPoolExecutor ex;
  EXPECT_EQ(ex.max_workers(), expected);
  cf::ThreadPoolExecutor from_options(cf::ThreadPoolOptions{.thread_name_prefix = "x"});
  EXPECT_EQ(from_options.max_workers(), expected);
}

// os.process_cpu_count() counts the CPUs the process may run on, not the machine's.
TEST(ThreadPoolOptionsTest, DefaultMaxWorkersFollowsCpuAffinityNotMachineCpuCount) {
  std::size_t default_workers = 0;
  std::size_t pool_workers = 0;
  int affinity_error = 0;
  std::thread pinned([&] {
    cpu_set_t set;
    CPU_ZERO(&set);
    sched_getaffinity(0, sizeof(set), &set);
    int first = 0;
    while (!CPU_ISSET(first, &set)) ++first;
    CPU_ZERO(&set);
    CPU_SET(first, &set);
    affinity_error = pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
    default_workers = cf::ThreadPoolExecutor::default_max_workers();
    pool_workers = cf::ThreadPoolExecutor().max_workers();
  });
  pinned.join();
  ASSERT_EQ(affinity_error, 0);
  EXPECT_EQ(default_workers, 5u);  // one usable CPU + 4
  EXPECT_EQ(pool_workers, 5u);
}

// CPython: test_max_workers_negative (E17).
TEST(ThreadPoolOptionsTest, ZeroMaxWorkersThrowsInvalidArgumentWithCPythonText) {
  try {
    cf::ThreadPoolExecutor ex(0);
    ADD_FAILURE() << "ThreadPoolExecutor(0) did not throw";
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "max_workers must be greater than 0");
  }
  try {
    cf::ThreadPoolExecutor ex({.max_workers = 0, .thread_name_prefix = "io"});
    ADD_FAILURE() << "ThreadPoolExecutor({.max_workers = 0}) did not throw";
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "max_workers must be greater than 0");
  }
}

TEST(ThreadPoolOptionsTest, ExplicitMaxWorkersIsKept) {
  cf::ThreadPoolExecutor ex(4);
  EXPECT_EQ(ex.max_workers(), 4u);
  cf::ThreadPoolExecutor one(1);
  EXPECT_EQ(one.max_workers(), 1u);
  cf::ThreadPoolExecutor many(100);  // no cap on an explicit value, as in CPython
  EXPECT_EQ(many.max_workers(), 100u);
}

TEST(ThreadPoolOptionsTest, DesignatedInitializerOptionsSetWorkersAndPrefix) {
  cf::ThreadPoolExecutor ex({.max_workers = 4, .thread_name_prefix = "io"});
  EXPECT_EQ(ex.max_workers(), 4u);
  EXPECT_EQ(ex.submit(current_thread_name).result(kDeadlock), "io_0");
}

TEST(ThreadPoolOptionsTest, ThreadPoolIsUsableThroughExecutorReference) {
  static_assert(std::is_base_of_v<cf::Executor, cf::ThreadPoolExecutor>);
  cf::ThreadPoolExecutor pool(3);
  cf::Executor& ex = pool;
  EXPECT_EQ(ex.max_workers(), 3u);
  EXPECT_EQ(ex.submit(square, 9).result(kDeadlock), 81);
}

// --- Thread creation: lazy start, idle reuse, saturation ------------------------------------

TEST(ThreadPoolThreadsTest, NoThreadStartsBeforeTheFirstSubmit) {
  const std::size_t before = os_thread_count();
  cf::ThreadPoolExecutor ex(4);
  EXPECT_EQ(ex.thread_count(), 0u);
  EXPECT_EQ(os_thread_count(), before);
  EXPECT_EQ(ex.submit(square, 3).result(kDeadlock), 9);
  EXPECT_EQ(ex.thread_count(), 1u);
  if (kThreadSanitizer) {
    EXPECT_GE(os_thread_count(), before + 1);  // TSan starts a thread of its own when it likes
  } else {
    EXPECT_EQ(os_thread_count(), before + 1);
  }
}

// CPython: test_idle_thread_reuse (J4). CPython skips it without the GIL because its reuse is a
// race; here the worker counts itself idle before publishing the result, so it is exact. Run
// several times so that a race would show.
TEST(ThreadPoolThreadsTest, SequentialSubmitThenResultReusesTheIdleThread) {
  for (int round = 0; round < 20; ++round) {
    cf::ThreadPoolExecutor ex;
    ASSERT_GE(ex.max_workers(), 3u);
    for (int i = 0; i < 3; ++i) EXPECT_EQ(ex.submit(square, i).result(kDeadlock), i * i);
    EXPECT_EQ(ex.thread_count(), 1u) << "round " << round;
  }
}

TEST(ThreadPoolThreadsTest, SequentialVoidTasksReuseTheIdleThread) {
  for (int round = 0; round < 20; ++round) {
    cf::ThreadPoolExecutor ex(8);
    for (int i = 0; i < 10; ++i) ex.submit([] {}).result(kDeadlock);
    EXPECT_EQ(ex.thread_count(), 1u) << "round " << round;
  }
}

// CPython: test_saturation (J3).
TEST(ThreadPoolThreadsTest, BacklogStartsExactlyMaxWorkersThreads) {
  cftest::Event release;
  Countdown four_running(4);
  std::atomic<int> running{0};
  std::atomic<int> most_running{0};
  std::mutex ids_mu;
  std::set<std::thread::id> ids;
  cf::ThreadPoolExecutor ex(4);
  ReleaseOnExit release_on_exit(release);
  std::vector<cf::Future<void>> futures;
  for (int i = 0; i < 60; ++i) {
    futures.push_back(ex.submit([&] {
      const int now = running.fetch_add(1) + 1;
      int seen = most_running.load();
      while (now > seen && !most_running.compare_exchange_weak(seen, now)) {
      }
      {
        std::lock_guard lock(ids_mu);
        ids.insert(std::this_thread::get_id());
      }
      four_running.count_down();
      release.wait();
      running.fetch_sub(1);
    }));
  }
  EXPECT_EQ(ex.thread_count(), 4u);
  ASSERT_TRUE(four_running.wait()) << "4 tasks never ran at once";
  release.set();
  for (auto& f : futures) f.result(kDeadlock);
  EXPECT_EQ(ex.thread_count(), 4u);
  EXPECT_EQ(most_running.load(), 4);
  EXPECT_EQ(ids.size(), 4u);
}

// CPython verified: a burst of 5 tasks with max_workers=2 gives 2 threads.
TEST(ThreadPoolThreadsTest, BurstLargerThanMaxWorkersStartsMaxWorkersThreads) {
  cftest::Event release;
  cf::ThreadPoolExecutor ex(2);
  ReleaseOnExit release_on_exit(release);
  std::vector<cf::Future<bool>> futures;
  for (int i = 0; i < 5; ++i) futures.push_back(ex.submit([&] { return release.wait(); }));
  EXPECT_EQ(ex.thread_count(), 2u);
  release.set();
  for (auto& f : futures) EXPECT_TRUE(f.result(kDeadlock));
  EXPECT_EQ(ex.thread_count(), 2u);
}

// --- Thread names -------------------------------------------------------------------------------

namespace {

// Runs `n` tasks that each hold their thread until all `n` run, so each runs on its own thread,
// and returns the OS names of those threads.
std::multiset<std::string> names_of_n_concurrent_tasks(cf::ThreadPoolExecutor& ex, std::size_t n) {
  Countdown all_started(n);
  std::vector<cf::Future<std::string>> futures;
  for (std::size_t i = 0; i < n; ++i) {
    futures.push_back(ex.submit([&all_started] {
      all_started.count_down();
      all_started.wait();
      return current_thread_name();
    }));
  }
  std::multiset<std::string> names;
  for (auto& f : futures) names.insert(f.result(kDeadlock));
  return names;
}

}  // namespace

// CPython: test_thread_names_assigned (F12).
TEST(ThreadPoolNamesTest, WorkersAreNamedPrefixUnderscoreIndex) {
  cf::ThreadPoolExecutor ex({.max_workers = 5, .thread_name_prefix = "SpecialPool"});
  const std::multiset<std::string> expected = {"SpecialPool_0", "SpecialPool_1", "SpecialPool_2",
                                               "SpecialPool_3", "SpecialPool_4"};
  EXPECT_EQ(names_of_n_concurrent_tasks(ex, 5), expected);
}

// CPython: test_thread_names_default (F13). The default name is "ThreadPoolExecutor-<k>_<n>",
// longer than the 15 bytes Linux keeps, so the OS shows its first 15 bytes.
TEST(ThreadPoolNamesTest, DefaultNamesAreThreadPoolExecutorPrefixCutTo15Bytes) {
  cf::ThreadPoolExecutor ex(5);
  const std::string shown = std::string("ThreadPoolExecutor-").substr(0, 15);
  for (const std::string& name : names_of_n_concurrent_tasks(ex, 5)) EXPECT_EQ(name, shown);
}

TEST(ThreadPoolNamesTest, LongNamesAreCutTo15Bytes) {
  cf::ThreadPoolExecutor ex({.max_workers = 1, .thread_name_prefix = "abcdefghijklmnopqrstuvwxyz"});
  EXPECT_EQ(ex.submit(current_thread_name).result(kDeadlock), "abcdefghijklmno");
}

TEST(ThreadPoolNamesTest, NameOfExactly15BytesIsKeptWhole) {
  cf::ThreadPoolExecutor ex({.max_workers = 2, .thread_name_prefix = "0123456789abc"});
  const std::multiset<std::string> expected = {"0123456789abc_0", "0123456789abc_1"};
  EXPECT_EQ(names_of_n_concurrent_tasks(ex, 2), expected);
}

// --- Shutdown and thread exit --------------------------------------------------------------

// CPython: test_threads_terminate (F8).
TEST(ThreadPoolShutdownTest, ShutdownJoinsEveryStartedThread) {
  cftest::Event release;
  Countdown three_started(3);
  ThreadExits exits;
  cf::ThreadPoolExecutor ex(5);
  ReleaseOnExit release_on_exit(release);
  for (int i = 0; i < 3; ++i) {
    ex.submit([&] {
      exits.arm();
      three_started.count_down();
      release.wait();
    });
  }
  ASSERT_TRUE(three_started.wait());
  EXPECT_EQ(ex.thread_count(), 3u);
  release.set();
  ex.shutdown();
  EXPECT_EQ(exits.armed(), 3u);
  EXPECT_EQ(exits.exited(), 3u) << "shutdown(wait=true) returned before its threads ended";
}

// CPython: test_context_manager_shutdown (F9); the destructor is the `with` block's end.
TEST(ThreadPoolShutdownTest, DestructorAtScopeEndJoinsThreads) {
  ThreadExits exits;
  std::vector<int> results;
  std::size_t threads = 0;
  {
    cf::ThreadPoolExecutor ex(5);
    for (int v : ex.map(
             [&exits](int x) {
               exits.arm();
               return std::abs(x);
             },
             minus_five_to_four())) {
      results.push_back(v);
    }
    threads = ex.thread_count();
  }
  EXPECT_EQ(results, kAbsOfMinusFiveToFour);
  EXPECT_GE(threads, 1u);
  EXPECT_EQ(exits.exited(), exits.armed());
  EXPECT_GE(exits.armed(), 1u);
}

// CPython: test_del_shutdown (F10). The map range outlives the executor.
TEST(ThreadPoolShutdownTest, DestroyingTheExecutorFinishesWorkAndEndsThreads) {
  ThreadExits exits;
  auto ex = std::make_unique<cf::ThreadPoolExecutor>(5);
  auto results = ex->map(
      [&exits](int x) {
        exits.arm();
        return std::abs(x);
      },
      minus_five_to_four());
  ex.reset();
  EXPECT_EQ(exits.exited(), exits.armed());
  EXPECT_GE(exits.armed(), 1u);
  std::vector<int> got;
  for (int v : results) got.push_back(v);
  EXPECT_EQ(got, kAbsOfMinusFiveToFour);
}

// CPython: test_shutdown_no_wait (F11).
TEST(ThreadPoolShutdownTest, ShutdownWithoutWaitStillFinishesWorkAndThreadsEnd) {
  ThreadExits exits;
  cf::ThreadPoolExecutor ex(5);
  auto results = ex.map(
      [&exits](int x) {
        exits.arm();
        return std::abs(x);
      },
      minus_five_to_four());
  const std::size_t threads = ex.thread_count();
  ex.shutdown(/*wait=*/false);
  std::vector<int> got;
  for (int v : results) got.push_back(v);
  EXPECT_EQ(got, kAbsOfMinusFiveToFour);
  EXPECT_LE(exits.armed(), threads);
  EXPECT_TRUE(exits.wait_exited(exits.armed())) << "threads did not end after shutdown(wait=false)";
}

TEST(ThreadPoolShutdownTest, SubmitAfterShutdownThrowsShutdownError) {  // CPython: F1
  cf::ThreadPoolExecutor ex(2);
  ex.shutdown();
  try {
    ex.submit(square, 2);
    ADD_FAILURE() << "submit after shutdown did not throw";
  } catch (const cf::ShutdownError& e) {
    EXPECT_STREQ(e.what(), "cannot schedule new futures after shutdown");
  }
}

// --- map specifics (J1, J7) --------------------------------------------------------------------

// CPython: test_map_submits_without_iteration (J1).
TEST(ThreadPoolMapTest, MapSubmitsEverythingWithoutIteration) {
  std::mutex mu;
  std::multiset<int> record;
  cf::ThreadPoolExecutor ex(4);
  std::vector<int> inputs(10);
  std::iota(inputs.begin(), inputs.end(), 0);
  auto results = ex.map(
      [&](int i) {
        std::lock_guard lock(mu);
        record.insert(i);
        return i;
      },
      inputs);
  ex.shutdown(/*wait=*/true);
  EXPECT_EQ(record, std::multiset<int>(inputs.begin(), inputs.end()));
}

// CPython: test_executor_map_current_future_cancel (J7, gh-95166): a timed-out map cancels the
// item it waited on and the queued ones.
TEST(ThreadPoolMapTest, MapTimeoutCancelsTheAwaitedItemAndTheQueuedOnes) {
  std::mutex mu;
  std::vector<std::string> log;
  cftest::Event release;
  auto log_n_wait = [&](const std::string& ident) {
    {
      std::lock_guard lock(mu);
      log.push_back(ident + " started");
    }
    release.wait();
    std::lock_guard lock(mu);
    log.push_back(ident + " stopped");
    return ident;
  };
  cf::ThreadPoolExecutor ex(1);
  ReleaseOnExit release_on_exit(release);
  auto first = ex.submit(log_n_wait, std::string("first"));
  {
    auto results = ex.map(log_n_wait, std::vector<std::string>{"second", "third"},
                          cf::MapOptions{.timeout = std::chrono::nanoseconds(0)});
    auto it = results.begin();
    EXPECT_THROW(static_cast<void>(*it), cf::TimeoutError);
    ++it;
    EXPECT_TRUE(it == results.end());
  }
  release.set();
  EXPECT_EQ(first.result(kDeadlock), "first");
  ex.shutdown();
  EXPECT_EQ(log, (std::vector<std::string>{"first started", "first stopped"}));
}

// --- fork (J5, J6) -----------------------------------------------------------------------------

// CPython: test_hang_global_shutdown_lock (J5, bpo-45021). A fork taken while a pool is busy
// must leave no library lock held in the child: the child makes its own pool and uses it.
TEST(ThreadPoolForkTest, ChildForkedWhileAPoolIsBusyCanUseANewPool) {
  if (kThreadSanitizer || kAddressSanitizer) {
    GTEST_SKIP() << "the sanitizer's runtime cannot run a child that starts threads and "
                    "allocates after a multi-threaded fork";
  }
  std::atomic<bool> stop{false};
  std::atomic<int> spins{0};
  std::function<void()> resubmit;  // declared before the pool: its tasks use it until the end
  cf::ThreadPoolExecutor ex(1);
  struct StopOnExit {
    std::atomic<bool>& stop;
    ~StopOnExit() { stop.store(true); }
  } stop_on_exit{stop};
  resubmit = [&] {
    spins.fetch_add(1);
    if (!stop.load()) ex.submit(resubmit);
  };
  ex.submit(resubmit);
  for (int i = 0; i < 50; ++i) {
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      alarm(10);  // a hang in the child fails the test through SIGALRM instead of hanging it
      int result = 0;
      {
        cf::ThreadPoolExecutor child_pool(1);
        result = child_pool.submit([](int a, int b) { return a + b; }, 1, 2).result();
      }
      _exit(result == 3 ? 0 : 1);
    }
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status)) << "child " << i << " was killed by signal "
                                   << (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    ASSERT_EQ(WEXITSTATUS(status), 0) << "child " << i;
  }
  stop.store(true);
  ex.shutdown();
  EXPECT_GT(spins.load(), 0);
}

// CPython: test_process_fork_from_a_threadpool (J6, bpo-43944). A worker forks; the child, a
// copy of that worker thread alone, ends with a normal exit() (atexit handlers and static
// destructors run) without waiting for the parent's pool threads, which do not exist there.
TEST(ThreadPoolForkTest, ChildForkedFromAWorkerExitsNormally) {
  if (kAddressSanitizer) {
    GTEST_SKIP()
        << "LeakSanitizer reports the parent threads' objects as leaks at the child's exit";
  }
  cf::ThreadPoolExecutor ex(2);
  auto status = ex.submit([] {
    const pid_t pid = fork();
    if (pid == 0) {
      alarm(10);
      std::exit(0);
    }
    int s = -1;
    if (pid > 0) waitpid(pid, &s, 0);
    return s;
  });
  const int s = status.result(kDeadlock);
  ASSERT_TRUE(WIFEXITED(s)) << "child was killed by signal " << (WIFSIGNALED(s) ? WTERMSIG(s) : 0);
  EXPECT_EQ(WEXITSTATUS(s), 0);
}

// --- Helping while waiting (the waiting worker runs pending tasks of its pool) --------------

namespace {

// In a task of `ex`, submits square(7) to the same pool and waits for it with `wait_on`. If that
// wait deadlocks, the inner future is cancelled so that the worker gets free and the test fails
// instead of hanging in the executor's destructor.
template <class WaitOn>
void expect_nested_wait_completes(cf::ThreadPoolExecutor& ex, WaitOn wait_on) {
  cf::Future<cf::Future<int>> handoff;
  auto outer = ex.submit([&ex, handoff, wait_on] {
    cf::Future<int> inner = ex.submit(square, 7);
    handoff.set_result(inner);
    return wait_on(inner);
  });
  try {
    EXPECT_EQ(outer.result(kDeadlock), 49);
  } catch (const cf::TimeoutError&) {
    ADD_FAILURE() << "a task waiting on its own pool deadlocked";
    handoff.result(kDeadlock).cancel();
    outer.exception(kDeadlock);
  }
}

int fib(cf::ThreadPoolExecutor& ex, int n) {
  if (n < 2) return n;
  auto a = ex.submit(fib, std::ref(ex), n - 1);
  auto b = ex.submit(fib, std::ref(ex), n - 2);
  return a.result(kDeadlock) + b.result(kDeadlock);
}

}  // namespace

TEST(ThreadPoolHelpWhileWaitingTest, OneWorkerWaitingViaResultRunsTheTaskItWaitsFor) {
  cf::ThreadPoolExecutor ex(1);
  expect_nested_wait_completes(ex, [](const cf::Future<int>& f) { return f.result(); });
  EXPECT_EQ(ex.thread_count(), 1u);
}

TEST(ThreadPoolHelpWhileWaitingTest, OneWorkerWaitingViaResultWithTimeoutDoesNotDeadlock) {
  cf::ThreadPoolExecutor ex(1);
  expect_nested_wait_completes(ex, [](const cf::Future<int>& f) { return f.result(kDeadlock); });
}

TEST(ThreadPoolHelpWhileWaitingTest, OneWorkerWaitingViaExceptionDoesNotDeadlock) {
  cf::ThreadPoolExecutor ex(1);
  expect_nested_wait_completes(ex, [](const cf::Future<int>& f) {
    return f.exception(kDeadlock) == nullptr ? f.result(0s) : -1;
  });
}

TEST(ThreadPoolHelpWhileWaitingTest, OneWorkerWaitingViaWaitDoesNotDeadlock) {
  cf::ThreadPoolExecutor ex(1);
  expect_nested_wait_completes(ex, [](const cf::Future<int>& f) {
    const std::vector<cf::Future<int>> fs = {f};
    auto r = cf::wait(fs);
    return r.done.size() == 1 && r.not_done.empty() ? f.result(0s) : -1;
  });
  expect_nested_wait_completes(ex, [](const cf::Future<int>& f) {
    const std::vector<cf::Future<int>> fs = {f};
    auto r = cf::wait(fs, kDeadlock, cf::FIRST_COMPLETED);
    return r.done.size() == 1 ? f.result(0s) : -1;
  });
}

TEST(ThreadPoolHelpWhileWaitingTest, OneWorkerWaitingViaAsCompletedDoesNotDeadlock) {
  cf::ThreadPoolExecutor ex(1);
  expect_nested_wait_completes(ex, [](const cf::Future<int>& f) {
    const std::vector<cf::Future<int>> fs = {f};
    int total = 0;
    for (const cf::Future<int>& done : cf::as_completed(fs, kDeadlock)) total += done.result(0s);
    return total;
  });
  expect_nested_wait_completes(ex, [](const cf::Future<int>& f) {
    const std::vector<cf::Future<int>> fs = {f};
    int total = 0;
    for (const cf::Future<int>& done : cf::as_completed(fs)) total += done.result(0s);
    return total;
  });
}

TEST(ThreadPoolHelpWhileWaitingTest, OneWorkerIteratingAMapOfItsOwnPoolDoesNotDeadlock) {
  cf::ThreadPoolExecutor ex(1);
  auto outer = ex.submit([&ex] {
    std::vector<int> got;
    // The map's own timeout bounds a deadlock: iteration then throws and the task ends.
    for (int v :
         ex.map(square, std::vector<int>{1, 2, 3, 4}, cf::MapOptions{.timeout = kDeadlock})) {
      got.push_back(v);
    }
    return got;
  });
  EXPECT_EQ(outer.result(kDeadlock), (std::vector<int>{1, 4, 9, 16}));
}

TEST(ThreadPoolHelpWhileWaitingTest, RecursiveFanOutCompletesWithOneWorker) {
  cf::ThreadPoolExecutor ex(1);
  EXPECT_EQ(ex.submit(fib, std::ref(ex), 15).result(kDeadlock), 610);
  EXPECT_EQ(ex.thread_count(), 1u);
}

TEST(ThreadPoolHelpWhileWaitingTest, RecursiveFanOutCompletesWithTwoWorkers) {
  cf::ThreadPoolExecutor ex(2);
  EXPECT_EQ(ex.submit(fib, std::ref(ex), 15).result(kDeadlock), 610);
  EXPECT_LE(ex.thread_count(), 2u);
}

// The waiting worker must wake for work queued after it went to sleep, not only run what was
// queued when it began to wait. Each delay gives the waiter a different amount of time to
// settle into its wait before the late task arrives.
TEST(ThreadPoolHelpWhileWaitingTest, WaitingWorkerRunsATaskSubmittedAfterItStartedWaiting) {
  for (const auto delay : {0ms, 1ms, 20ms}) {
    cftest::Event waiting;
    cf::Future<int> gate;  // from no pool: only the late task completes it
    cf::ThreadPoolExecutor ex(1);
    auto outer = ex.submit([&] {
      waiting.set();
      return gate.result(kDeadlock) + 1;
    });
    ASSERT_TRUE(waiting.wait());
    // Not synchronisation: the test passes only if the single worker runs the late task, with
    // or without this pause; the pause makes it likely the worker is asleep in result() by then.
    std::this_thread::sleep_for(delay);
    std::thread::id late_runner;
    const std::thread::id outer_runner = ex.submit([] {
                                             return std::this_thread::get_id();
                                           }).result(kDeadlock);  // also submitted late
    auto late = ex.submit([&] {
      late_runner = std::this_thread::get_id();
      gate.set_result(41);
    });
    EXPECT_EQ(outer.result(kDeadlock), 42) << "delay " << delay.count() << "ms";
    late.result(kDeadlock);
    EXPECT_EQ(late_runner, outer_runner);
    EXPECT_EQ(ex.thread_count(), 1u);
  }
}

// Only the pool's own workers help: a thread outside the pool that waits just waits, and the
// task still runs on a pool thread.
TEST(ThreadPoolHelpWhileWaitingTest, NonWorkerThreadWaitingDoesNotRunPoolTasks) {
  cftest::Event release;
  cf::ThreadPoolExecutor ex({.max_workers = 1, .thread_name_prefix = "helper"});
  ReleaseOnExit release_on_exit(release);
  auto blocker = ex.submit([&] { return release.wait(); });
  auto queued = ex.submit(current_thread_name);
  EXPECT_THROW(queued.result(50ms), cf::TimeoutError);
  EXPECT_FALSE(queued.done());
  release.set();
  EXPECT_TRUE(blocker.result(kDeadlock));
  EXPECT_EQ(queued.result(kDeadlock), "helper_0");
}

// A worker of one pool waiting on another pool's future does not run the other pool's tasks.
TEST(ThreadPoolHelpWhileWaitingTest, WorkerWaitingOnAnotherPoolDoesNotRunThatPoolsTasks) {
  cftest::Event release;
  cf::ThreadPoolExecutor a({.max_workers = 1, .thread_name_prefix = "poolA"});
  cf::ThreadPoolExecutor b({.max_workers = 1, .thread_name_prefix = "poolB"});
  ReleaseOnExit release_on_exit(release);
  auto blocker = b.submit([&] { return release.wait(); });
  auto on_b = b.submit(current_thread_name);
  auto waiter = a.submit([&] {
    try {
      static_cast<void>(on_b.result(50ms));
      return std::string("ran");
    } catch (const cf::TimeoutError&) {
      return std::string("timed out");
    }
  });
  EXPECT_EQ(waiter.result(kDeadlock), "timed out");
  release.set();
  EXPECT_EQ(on_b.result(kDeadlock), "poolB_0");
}

// submit keeps small calls in the future's own allocation and large ones (over 128 bytes with
// their result slots) apart; either way the callable and its arguments are dropped once run, and
// when a cancelled task is discarded, while the future lives on.
template <std::size_t Bytes>
void check_callable_dropped() {
  cf::ThreadPoolExecutor ex(1);
  auto token = std::make_shared<int>(0);
  std::array<char, Bytes> payload{};
  auto ran = ex.submit([token, payload] { return payload.size(); });
  EXPECT_EQ(ran.result(kDeadlock), Bytes);
  EXPECT_EQ(token.use_count(), 1) << "the callable outlived its run";

  cftest::Event release;
  auto blocker = ex.submit([&release] { return release.wait(); });
  auto cancelled = ex.submit([token, payload] { return payload.size(); });
  EXPECT_EQ(token.use_count(), 2);
  ASSERT_TRUE(cancelled.cancel());
  release.set();
  EXPECT_TRUE(blocker.result(kDeadlock));
  ex.submit([] {}).result(kDeadlock);  // FIFO: the cancelled task has been taken and discarded
  EXPECT_EQ(token.use_count(), 1) << "a cancelled task kept its callable";
  EXPECT_TRUE(cancelled.cancelled());
}

TEST(ThreadPoolSubmitTest, SmallCallableIsDroppedOnceRunOrCancelled) {
  check_callable_dropped<16>();
}

TEST(ThreadPoolSubmitTest, LargeCallableIsDroppedOnceRunOrCancelled) {
  check_callable_dropped<256>();
}

// --- Batches and stealing ----------------------------------------------------------------------
//
// A worker takes its share of the queue in one lock (up to 64 tasks) and runs it in order; an
// idle worker takes tasks from a busy worker's share. Each test below holds both workers of a
// 2-worker pool on gates while a long task and many short ones are queued, then lets one worker
// take the long task first, so that its share holds short tasks behind it.

namespace {

constexpr int kShortTasks = 200;

// Gate 1 and 2 hold the two workers; `long_task` then blocks its worker on `long_release`.
struct LongTaskBehindGates {
  // Members, not locals of the constructor: a task may still be inside set() when wait() returns.
  cftest::Event started1, started2, gate1, gate2, long_started, long_release;
  cf::Future<bool> held1, held2, long_task;
  std::vector<cf::Future<int>> shorts;
  // Last: destroyed first, so its threads are joined while the events above still exist.
  cf::ThreadPoolExecutor ex{2};

  LongTaskBehindGates() {
    held1 = ex.submit([this] {
      started1.set();
      return gate1.wait();
    });
    held2 = ex.submit([this] {
      started2.set();
      return gate2.wait();
    });
    EXPECT_TRUE(started1.wait());
    EXPECT_TRUE(started2.wait());
    long_task = ex.submit([this] {
      long_started.set();
      return long_release.wait();
    });
    for (int i = 0; i < kShortTasks; ++i) shorts.push_back(ex.submit(square, i));
  }
  ~LongTaskBehindGates() {
    gate1.set();
    gate2.set();
    long_release.set();
  }
};

TEST(ThreadPoolBatchTest, IdleWorkerTakesShortTasksQueuedBehindALongOne) {
  LongTaskBehindGates pool;
  pool.gate1.set();  // that worker takes the long task and its share of the short ones
  ASSERT_TRUE(pool.long_started.wait());
  pool.gate2.set();
  // The long task ends only when released: every short task must be run by the other worker.
  for (int i = 0; i < kShortTasks; ++i) {
    EXPECT_EQ(pool.shorts[static_cast<std::size_t>(i)].result(kDeadlock), i * i) << "task " << i;
  }
  EXPECT_FALSE(pool.long_task.done());
  pool.long_release.set();
  EXPECT_TRUE(pool.long_task.result(kDeadlock));
}

TEST(ThreadPoolBatchTest, ShutdownCancelFuturesCancelsTasksInAWorkersShare) {
  LongTaskBehindGates pool;
  pool.gate1.set();
  ASSERT_TRUE(pool.long_started.wait());
  // One worker runs the long task with short ones in its share; the other is still held.
  pool.ex.shutdown(/*wait=*/false, /*cancel_futures=*/true);
  for (int i = 0; i < kShortTasks; ++i) {
    EXPECT_TRUE(pool.shorts[static_cast<std::size_t>(i)].cancelled()) << "task " << i;
  }
  pool.gate2.set();
  pool.long_release.set();
  pool.ex.shutdown();
  EXPECT_TRUE(pool.long_task.result(kDeadlock));
  EXPECT_TRUE(pool.held2.result(kDeadlock));
}

TEST(ThreadPoolBatchTest, OneWorkerRunsTasksInSubmissionOrder) {
  cf::ThreadPoolExecutor ex(1);
  cftest::Event gate;
  ReleaseOnExit release(gate);
  auto held = ex.submit([&gate] { return gate.wait(); });
  std::mutex mu;
  std::vector<int> order;
  std::vector<cf::Future<void>> tasks;
  for (int i = 0; i < 500; ++i) {
    tasks.push_back(ex.submit([&mu, &order, i] {
      std::lock_guard lock(mu);
      order.push_back(i);
    }));
  }
  gate.set();
  for (auto& task : tasks) task.result(kDeadlock);
  std::vector<int> expected(500);
  std::iota(expected.begin(), expected.end(), 0);
  EXPECT_EQ(order, expected);
  EXPECT_TRUE(held.result(kDeadlock));
}

TEST(ThreadPoolBatchTest, WorkerWaitingOnATaskInItsOwnShareRunsIt) {
  // One worker: its share holds the task that the running task then waits for.
  cf::ThreadPoolExecutor ex(1);
  cftest::Event gate;
  ReleaseOnExit release(gate);
  auto held = ex.submit([&gate] { return gate.wait(); });
  std::promise<cf::Future<int>> later_promise;
  std::shared_future<cf::Future<int>> later = later_promise.get_future().share();
  auto waiter = ex.submit([later] { return later.get().result(kDeadlock) + 1; });
  later_promise.set_value(ex.submit(square, 7));
  for (int i = 0; i < 100; ++i) ex.submit(square, i);
  gate.set();
  EXPECT_EQ(waiter.result(kDeadlock), 50);
  EXPECT_TRUE(held.result(kDeadlock));
}

// --- submitting without the pool's lock --------------------------------------------------------
// submit() pushes onto a lock-free inbox and takes the pool's lock only when it must start a
// thread, wake a sleeper, notify a parked helper, or settle a race with shutdown (thread_pool.cpp,
// "Submitting"). These tests fail if any of those is skipped when it was needed: a task would stay
// queued with nobody coming for it, and its result() would time out.

// Several threads submit into a 2-worker pool whose workers keep falling idle and asleep between
// the submits (each thread now and then pauses, long enough for the spinning worker to give up).
TEST(ThreadPoolInboxTest, TasksSubmittedWhileWorkersFallAsleepAllRun) {
  cf::ThreadPoolExecutor ex(2);
  constexpr int kThreads = 3;
  const int rounds = kThreadSanitizer ? 300 : 3000;
  std::atomic<int> ran{0};
  std::atomic<int> lost{0};
  std::vector<std::thread> submitters;
  for (int t = 0; t < kThreads; ++t) {
    submitters.emplace_back([&, t] {
      for (int i = 0; i < rounds; ++i) {
        // Not a synchronisation: idle time, so that submits meet sleeping workers.
        if (i % 4 == t) std::this_thread::sleep_for(std::chrono::microseconds(200));
        // One to three tasks at once: the pool decides how many sleepers the queue needs.
        std::vector<cf::Future<int>> futures;
        for (int k = 0; k <= (i + t) % 3; ++k) {
          futures.push_back(ex.submit([&ran, k] {
            ran.fetch_add(1, std::memory_order_relaxed);
            return k;
          }));
        }
        for (int k = 0; k < static_cast<int>(futures.size()); ++k) {
          try {
            if (futures[static_cast<std::size_t>(k)].result(kDeadlock) != k) lost.fetch_add(1);
          } catch (const cf::TimeoutError&) {
            lost.fetch_add(1);
          }
        }
      }
    });
  }
  for (std::thread& t : submitters) t.join();
  EXPECT_EQ(lost.load(), 0) << "tasks whose result never came";
  int expected = 0;
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < rounds; ++i) expected += 1 + (i + t) % 3;
  }
  EXPECT_EQ(ran.load(), expected);
}

// A pool with one idle thread gets a task that blocks and then one that must run beside it. The
// idle worker may move the second task from the inbox into its own share before that task's
// submit decides whether to start a thread; the decision must still count it, or it waits behind
// the blocked task forever.
TEST(ThreadPoolInboxTest, ATaskSubmittedBesideABlockedOneGetsAThread) {
  const int rounds = kThreadSanitizer ? 200 : 1000;
  for (int round = 0; round < rounds; ++round) {
    cf::ThreadPoolExecutor ex(4);
    // One thread started and now idle: it spins for work, ready to race the next submits.
    ASSERT_EQ(ex.submit(square, 1).result(kDeadlock), 1);
    cftest::Event gate;
    ReleaseOnExit release(gate);
    auto blocked = ex.submit([&gate] { return gate.wait(); });
    auto beside = ex.submit(square, 5);
    ASSERT_EQ(beside.result(kDeadlock), 25) << "round " << round;
    gate.set();
    EXPECT_TRUE(blocked.result(kDeadlock));
  }
}

// Once every thread has started, submit() no longer takes the lock first; a submit after
// shutdown must still be refused, with or without waiting for the shutdown.
TEST(ThreadPoolInboxTest, SubmitAfterShutdownOfAPoolWithAllThreadsStartedThrows) {
  for (const bool wait : {true, false}) {
    cf::ThreadPoolExecutor ex(2);
    std::latch both(2);
    auto a = ex.submit([&both] { both.arrive_and_wait(); });
    auto b = ex.submit([&both] { both.arrive_and_wait(); });
    a.result(kDeadlock);
    b.result(kDeadlock);
    ASSERT_EQ(ex.thread_count(), 2u);
    ex.shutdown(wait);
    EXPECT_THROW(ex.submit(square, 3), cf::ShutdownError) << "wait " << wait;
  }
}

// Threads submit in a loop while the pool is shut down, with each combination of wait and
// cancel_futures: every submit either throws ShutdownError or returns a future that ends (with
// its value, or cancelled when cancel_futures is set). None is left pending.
TEST(ThreadPoolInboxTest, SubmitsRacingWithShutdownAreRefusedOrEnd) {
  constexpr int kThreads = 3;
  const int rounds = kThreadSanitizer ? 40 : 200;
  for (int round = 0; round < rounds; ++round) {
    const bool wait = round % 2 == 0;
    const bool cancel = round % 4 >= 2;
    auto ex = std::make_unique<cf::ThreadPoolExecutor>(2);
    std::latch started(kThreads + 1);
    std::vector<std::vector<cf::Future<int>>> accepted(kThreads);
    std::atomic<int> refused{0};
    std::vector<std::thread> submitters;
    for (int t = 0; t < kThreads; ++t) {
      submitters.emplace_back([&, t] {
        started.arrive_and_wait();
        for (int i = 0;; ++i) {
          try {
            accepted[static_cast<std::size_t>(t)].push_back(ex->submit(square, i));
          } catch (const cf::ShutdownError&) {
            refused.fetch_add(1);
            return;
          }
        }
      });
    }
    started.arrive_and_wait();
    ex->shutdown(wait, cancel);
    for (std::thread& t : submitters) t.join();
    EXPECT_EQ(refused.load(), kThreads);
    int pending = 0;
    int wrong = 0;
    for (const std::vector<cf::Future<int>>& futures : accepted) {
      for (std::size_t i = 0; i < futures.size(); ++i) {
        try {
          if (futures[i].result(kDeadlock) != square(static_cast<int>(i))) ++wrong;
        } catch (const cf::CancelledError&) {
          if (!cancel) ++wrong;
        } catch (const cf::TimeoutError&) {
          ++pending;
        }
      }
    }
    ASSERT_EQ(pending, 0) << "round " << round << " (wait " << wait << ", cancel_futures " << cancel
                          << "): accepted futures that never ended";
    ASSERT_EQ(wrong, 0) << "round " << round;
  }
}

}  // namespace
